//! The operator's controls that are not plans: the kill switch
//! ([`Engine::pause_writes`], a person's stop on every write, audited with
//! who pulled it) and the match queue (accounts roster would not link on
//! its own, and a person's resolutions).

use std::collections::BTreeSet;

use roster_core::{ConnectionId, FindingKind};
use roster_store::{AuditKind, MatchResolution};
use serde_json::json;

use crate::engine::{Engine, EngineError, ms};

/// One entry of the match queue.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueuedMatch {
    pub connection: ConnectionId,
    pub account: String,
    pub email: Option<String>,
    pub kind: &'static str,
    pub detail: String,
}

impl Engine {
    /// The kill switch: stops every write to `connection` (`None`: to every
    /// connection) in every process sharing the store, until
    /// [`Engine::resume_writes`]. Batches already sent finish; nothing new
    /// is claimed. Reads and plans go on. Audited with `actor`. Returns
    /// false if that scope was already paused (the actor and reason are
    /// updated).
    pub(crate) async fn pause_writes(
        &self,
        connection: Option<&ConnectionId>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<bool, EngineError> {
        let now = ms(self.now());
        let new = self
            .store
            .pause_writes(connection, actor, reason, now)
            .await?;
        self.audit_as(
            actor,
            AuditKind::ConnectionPaused,
            connection.map_or("*", |c| c.as_str()),
            json!({ "reason": reason, "already_paused": !new }),
        )
        .await?;
        Ok(new)
    }

    /// Lifts a pause set by [`Engine::pause_writes`] for the same scope
    /// (`None` lifts the all-connections pause only). Audited with
    /// `actor`. Returns false if that scope was not paused.
    pub(crate) async fn resume_writes(
        &self,
        connection: Option<&ConnectionId>,
        actor: &str,
    ) -> Result<bool, EngineError> {
        let now = ms(self.now());
        let lifted = self.store.resume_writes(connection, now).await?;
        if lifted {
            self.audit_as(
                actor,
                AuditKind::ConnectionResumed,
                connection.map_or("*", |c| c.as_str()),
                json!({}),
            )
            .await?;
        }
        Ok(lifted)
    }

    /// The match queue: accounts from the latest plan that roster would not
    /// link on its own, minus those already resolved.
    pub async fn match_queue(&self) -> Result<Vec<QueuedMatch>, EngineError> {
        let Some(latest) = self.store.latest_plan().await? else {
            return Ok(Vec::new());
        };
        let resolved: BTreeSet<(ConnectionId, String)> = self
            .store
            .match_resolutions()
            .await?
            .into_iter()
            .map(|r| (r.connection, r.account.to_string()))
            .collect();
        Ok(latest
            .plan
            .findings
            .iter()
            .filter(|f| matches!(f.kind, FindingKind::Ambiguous | FindingKind::Duplicate))
            .filter_map(|f| {
                let key = f.account.as_ref()?.to_string();
                (!resolved.contains(&(f.connection.clone(), key.clone()))).then(|| QueuedMatch {
                    connection: f.connection.clone(),
                    account: key,
                    email: f.email.as_ref().map(|e| e.to_string()),
                    kind: f.kind.as_str(),
                    detail: f.detail.clone(),
                })
            })
            .collect())
    }

    /// Resolves one queued match.
    pub(crate) async fn resolve_match(
        &self,
        resolution: MatchResolution,
    ) -> Result<(), EngineError> {
        if let Some(e) = &resolution.employee_id
            && self.store.person_by_employee_id(e).await?.is_none()
        {
            return Err(EngineError::Refused(format!(
                "no person with employee ID {e} in the source of truth"
            )));
        }
        self.store.resolve_match(&resolution).await?;
        self.audit_as(
            &resolution.actor,
            AuditKind::MatchResolved,
            &format!("{}:{}", resolution.connection, resolution.account),
            json!({
                "employee_id": resolution.employee_id.as_ref().map(|e| e.to_string()),
                "reason": resolution.reason,
            }),
        )
        .await?;
        Ok(())
    }
}
