//! Options the engine is wired with: how the executor runs tasks, and
//! which catalog app each connection is. A leaf module, so the wiring
//! ([`crate::engine`]) and the parts that read these ([`crate::executor`],
//! [`crate::human`]) depend on it and not on each other.

use std::time::Duration;

use rand::Rng;
use roster_catalog::ConnectionSettings;
use roster_connectors::retry::RetryPolicy;
use serde::Deserialize;

/// How the executor runs tasks.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// This worker's name in leases. Unique per process by default. A
    /// stable name lets a restarted worker release its previous
    /// incarnation's leases at once instead of waiting for them to expire
    /// (see `Roster::run_worker`); never give two live workers the same
    /// name.
    pub worker_id: String,
    /// How long a claim holds a task without a heartbeat. A dead worker's
    /// tasks run again this long after it stopped.
    pub lease: Duration,
    /// How often a working worker extends its leases (well under `lease`).
    pub heartbeat: Duration,
    /// Caps the connector's own `max_batch`.
    pub batch_size: Option<u32>,
    /// The one retry policy: attempts per task before it becomes a dead
    /// letter, the backoff between them, the `Retry-After` ceiling. The
    /// engine's reads use it too (`Engine::read` and the executor's
    /// checks), so it is configured here and nowhere else.
    pub retry: RetryPolicy,
    /// How long an idle loop sleeps before looking for work again.
    pub idle_poll: Duration,
    /// `Roster::apply` returns when all that is left are retries due
    /// later than this (they stay queued for the next apply or worker).
    pub apply_max_wait: Duration,
    /// Quarantine after this many batches in a row refused for credentials
    /// or configuration.
    pub quarantine_after_auth_failures: u32,
    /// Batches remembered for the failure ratio. A batch failed when at
    /// least half of its actions ended as dead letters.
    pub failure_window: usize,
    /// No ratio quarantine before this many batches.
    pub failure_min_sample: usize,
    /// Quarantine when this share of the remembered batches failed.
    pub failure_ratio: f64,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            worker_id: default_worker_id(),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            batch_size: None,
            retry: RetryPolicy::default(),
            idle_poll: Duration::from_millis(500),
            apply_max_wait: Duration::from_secs(120),
            quarantine_after_auth_failures: 3,
            failure_window: 10,
            failure_min_sample: 5,
            failure_ratio: 0.8,
        }
    }
}

/// `host-pid-random`: unique per process, readable in `roster tasks`.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "roster".to_string());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::rng().random::<u32>()
    )
}

impl ExecutorOptions {
    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Which catalog app a connection is, and how it is set up.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AppBinding {
    pub app: String,
    #[serde(default)]
    pub settings: ConnectionSettings,
    /// Hours a person has for a manual task on this connection.
    pub task_sla_hours: Option<u32>,
    /// Who manual tasks go to (an email or a team name).
    pub assignee: Option<String>,
    /// Who hears when a task is overdue.
    pub escalate_to: Option<String>,
    /// Who receives this app's tasks and approvals (addresses or
    /// `group:NAME`; see [`crate::notify`]).
    #[serde(default)]
    pub owners: Vec<String>,
}
