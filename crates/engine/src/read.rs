//! Reading every connection through its connector, and the read health
//! that quarantines a connection whose reads keep failing.
//!
//! The driver follows pages and reports completeness; the outcome (ok,
//! incomplete, failed) is recorded per connection in the store and logged
//! at WARN when it is not ok. A connection whose read fails is left out of
//! the plan entirely: no action is planned against a state roster could
//! not see. After [`Engine::read_quarantine_after`] failed reads in a row
//! (3 by default) the connection is quarantined, like one whose writes
//! keep failing: reads skip it (and say so) until `roster connections
//! resume`, so a refused credential is not hammered every cycle.

use roster_connectors::driver::{self, Progress};
use roster_core::ConnectionId;
use roster_store::{AuditKind, ReadHealth, ReadStatus};
use serde_json::json;

use crate::engine::{Engine, EngineError, ms};

/// How reading one connection went.
#[derive(Clone, Debug)]
pub struct ReadOutcome {
    pub connection: ConnectionId,
    pub accounts: usize,
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// Set when the read failed outright; the previous read is kept.
    pub error: Option<String>,
}

impl Engine {
    /// Reads every connection. A failed read is reported, not fatal.
    pub(crate) async fn read(
        &self,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<Vec<ReadOutcome>, EngineError> {
        let mut outcomes = Vec::new();
        let health = self.store.read_health().await?;
        for (id, wired) in &self.connectors {
            if let Some(reason) = self.read_quarantine(id, &health).await? {
                let error = format!(
                    "quarantined after {reason}; not read until `roster connections resume {id}`"
                );
                tracing::warn!(connection = %id, "{error}");
                outcomes.push(ReadOutcome {
                    connection: id.clone(),
                    accounts: 0,
                    complete: false,
                    incomplete_reason: None,
                    error: Some(error),
                });
                continue;
            }
            let mut p = |pr: &Progress<'_>| progress(id, pr);
            let result = driver::read_all_with_progress(
                &*wired.connector,
                &*wired.budget,
                &self.executor.retry,
                &self.driver,
                &mut p,
            )
            .await;
            match result {
                Ok(observed) => {
                    self.store
                        .replace_accounts(&observed, ms(self.now()))
                        .await?;
                    let status = if observed.complete {
                        ReadStatus::Ok
                    } else {
                        tracing::warn!(
                            connection = %id,
                            reason = observed.incomplete_reason.as_deref().unwrap_or("no reason given"),
                            "read incomplete: deactivations withheld for this connection"
                        );
                        ReadStatus::Incomplete
                    };
                    self.store
                        .record_read(
                            id,
                            status,
                            observed.incomplete_reason.as_deref(),
                            ms(self.now()),
                        )
                        .await?;
                    self.audit(
                        AuditKind::ConnectionRead,
                        id.as_str(),
                        json!({
                            "accounts": observed.accounts.len(),
                            "complete": observed.complete,
                            "incomplete_reason": observed.incomplete_reason,
                        }),
                    )
                    .await?;
                    outcomes.push(ReadOutcome {
                        connection: id.clone(),
                        accounts: observed.accounts.len(),
                        complete: observed.complete,
                        incomplete_reason: observed.incomplete_reason.clone(),
                        error: None,
                    });
                }
                Err(e) => {
                    let in_a_row = self
                        .store
                        .record_read(id, ReadStatus::Failed, Some(&e.to_string()), ms(self.now()))
                        .await?;
                    tracing::warn!(
                        connection = %id,
                        error = %e,
                        failed_reads_in_a_row = in_a_row,
                        "read failed: the connection is left out of this plan"
                    );
                    self.audit(
                        AuditKind::ConnectionReadFailed,
                        id.as_str(),
                        json!({ "error": e.to_string(), "code": e.code(), "in_a_row": in_a_row }),
                    )
                    .await?;
                    if self.read_quarantine_after > 0 && in_a_row >= self.read_quarantine_after {
                        let reason = format!("{in_a_row} failed reads in a row (last: {e})");
                        tracing::error!(connection = %id, %reason, "quarantining connection");
                        self.store.quarantine_connection(id, &reason).await?;
                        self.audit(
                            AuditKind::ConnectionQuarantined,
                            id.as_str(),
                            json!({ "reason": reason, "cause": "reads" }),
                        )
                        .await?;
                    }
                    outcomes.push(ReadOutcome {
                        connection: id.clone(),
                        accounts: 0,
                        complete: false,
                        incomplete_reason: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        Ok(outcomes)
    }

    /// Why `id`'s reads are quarantined: it is quarantined and its reads
    /// are what failed (a quarantine for failing writes alone still lets
    /// plans read it).
    async fn read_quarantine(
        &self,
        id: &ConnectionId,
        health: &[ReadHealth],
    ) -> Result<Option<String>, EngineError> {
        let failing = health.iter().find(|h| &h.connection == id).filter(|h| {
            self.read_quarantine_after > 0 && h.failures_in_a_row >= self.read_quarantine_after
        });
        let Some(h) = failing else {
            return Ok(None);
        };
        Ok(self
            .store
            .connection(id)
            .await?
            .filter(|c| c.status == roster_store::QUARANTINED)
            .map(|_| {
                format!(
                    "{} failed reads in a row (last: {})",
                    h.failures_in_a_row,
                    h.detail.as_deref().unwrap_or("no detail")
                )
            }))
    }
}
