//! Health for the operations endpoints: readiness (`/readyz`) and the
//! gauges `/metrics` refreshes when it is scraped.
//!
//! These are aggregate reads with no personal data in their answers (a
//! schema version, task counts, how many leavers still have access), for
//! probes and scrapers that hold no roster credential, so they take no
//! [`Principal`](roster_core::Principal). They change nothing.

use std::time::Duration;

use serde::Serialize;

use crate::app::Roster;
use crate::engine::{EngineError, ms};

/// Whether this process can serve: the store answers and its schema is
/// the one this build reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub store_reachable: bool,
    /// The schema version the database records (`None`: not read).
    pub schema_version: Option<i64>,
    /// [`roster_store::SCHEMA_VERSION`].
    pub expected_schema_version: i64,
    /// What is wrong, in words (empty when ready).
    pub problems: Vec<String>,
}

/// The durable task queue as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueGauge {
    /// Tasks not yet final (ready, retry_wait, running).
    pub depth: u64,
    /// How long the oldest of them has waited since it was enqueued.
    pub oldest_age_ms: Option<i64>,
}

/// Leavers who still have access (from the leavers report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeaversGauge {
    pub leavers: usize,
    pub with_open_access: usize,
    pub open_accounts: usize,
}

/// How long [`Roster::readiness`] waits for the store before calling it
/// unreachable (a probe must answer quickly).
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

impl Roster {
    /// Readiness: a trivial query reaches the store, and the schema
    /// version it records equals [`roster_store::SCHEMA_VERSION`] (a
    /// database another build migrated further, or one rolled back, is
    /// not served).
    pub async fn readiness(&self) -> Readiness {
        let expected = roster_store::SCHEMA_VERSION;
        let mut problems = Vec::new();
        let store = self.store();
        let reachable = match tokio::time::timeout(READINESS_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                problems.push(format!(
                    "the store ({}) is unreachable: {e}",
                    store.describe()
                ));
                false
            }
            Err(_) => {
                problems.push(format!(
                    "the store ({}) did not answer within {} s",
                    store.describe(),
                    READINESS_TIMEOUT.as_secs()
                ));
                false
            }
        };
        let mut version = None;
        if reachable {
            match tokio::time::timeout(READINESS_TIMEOUT, store.schema_version()).await {
                Ok(Ok(v)) => {
                    version = Some(v);
                    if v != expected {
                        problems.push(format!(
                            "the store's schema is version {v}, this build needs {expected}{}",
                            if v < expected {
                                " (migrations not applied: restart roster to apply them)"
                            } else {
                                " (a newer roster migrated it: run that version)"
                            }
                        ));
                    }
                }
                Ok(Err(e)) => problems.push(format!("cannot read the schema version: {e}")),
                Err(_) => problems.push("reading the schema version timed out".to_string()),
            }
        }
        Readiness {
            ready: problems.is_empty(),
            store_reachable: reachable,
            schema_version: version,
            expected_schema_version: expected,
            problems,
        }
    }

    /// The durable task queue's depth and the age of its oldest open task.
    pub async fn queue_gauge(&self) -> Result<QueueGauge, EngineError> {
        let q = self.store().queue_depth().await?;
        let now = ms(self.engine().now());
        Ok(QueueGauge {
            depth: q.open,
            oldest_age_ms: q.oldest_created_ms.map(|t| (now - t).max(0)),
        })
    }

    /// How many leavers still have an open account, as the leavers report
    /// (`roster report leavers`) counts them. Reads every stored account:
    /// callers refresh it at most every so often.
    pub async fn leavers_gauge(&self) -> Result<LeaversGauge, EngineError> {
        let data = crate::reports::load(self.store())
            .await
            .map_err(|e| match e {
                crate::reports::ReportError::Store(s) => EngineError::Store(s),
                other => EngineError::Refused(other.to_string()),
            })?;
        let engine = self.engine();
        let r = crate::reports::leavers(&data, &engine.policy, engine.now());
        Ok(LeaversGauge {
            leavers: r.summary.leavers,
            with_open_access: r.summary.leavers_with_open_accounts,
            open_accounts: r.summary.open_accounts,
        })
    }

    /// Sets the queue gauges ([`crate::metrics::QUEUE_DEPTH`],
    /// [`crate::metrics::QUEUE_OLDEST_AGE`]) from the store.
    pub async fn refresh_queue_gauges(&self) -> Result<QueueGauge, EngineError> {
        let q = self.queue_gauge().await?;
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(q.depth as f64);
        metrics::gauge!(crate::metrics::QUEUE_OLDEST_AGE)
            .set(q.oldest_age_ms.unwrap_or(0) as f64 / 1000.0);
        Ok(q)
    }

    /// Sets the leavers gauges ([`crate::metrics::LEAVERS_OPEN`],
    /// [`crate::metrics::LEAVER_ACCOUNTS_OPEN`]) from the leavers report.
    pub async fn refresh_leavers_gauges(&self) -> Result<LeaversGauge, EngineError> {
        let l = self.leavers_gauge().await?;
        metrics::gauge!(crate::metrics::LEAVERS_OPEN).set(l.with_open_access as f64);
        metrics::gauge!(crate::metrics::LEAVER_ACCOUNTS_OPEN).set(l.open_accounts as f64);
        Ok(l)
    }
}
