//! Prometheus metrics the engine emits, through the `metrics` facade.
//!
//! The engine only *records*: whichever process embeds it installs a
//! recorder (`roster serve` installs the Prometheus one and serves it at
//! `/metrics`, see `roster_server::ops`); without one every call here is a
//! no-op. Names are stable, prefixed `roster_`, and listed in
//! ARCHITECTURE.md ("Metrics"). Labels are bounded: connection ids (from
//! the config), catalog paths, outcomes, error kinds and scope kinds,
//! never a person, an address or an account key.
//!
//! This module is a leaf (it imports no other module of the engine);
//! where each series is emitted:
//! * plans: `Engine::save_plan` via [`plan_created`];
//! * actions: the executor's settle step (done, skipped, failed) and the
//!   routing of actions to people (manual), via [`action_finished`];
//! * connector latency, errors and rate-limit waits: every registered
//!   connector and its budget are wrapped ([`Metered`], [`MeteredBudget`])
//!   in `Engine::add_connector_with_budget`, so every call, whoever makes
//!   it (reads, the executor, checks), is measured once;
//! * queue depth and leavers with access still open: gauges set by
//!   the `Roster::refresh_*_gauges` methods (app/health.rs) when `/metrics` is scraped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use roster_connectors::{
    ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError, ListRequest, Merge, Page,
    RateBudget, RateWindow, Turn, Validation,
};
use roster_core::{Account, ConnectionId};

/// Counter: plans computed and stored, by `scope` (`all`, `connections`,
/// `person`).
pub const PLANS_CREATED: &str = "roster_plans_created_total";
/// Counter: plan actions that reached an outcome, by `path` (the catalog
/// path: `scim`, `api`, `idp`, `csv`, `jit`, `browser`, `manual`) and
/// `outcome` (`done`, `failed`, `skipped`, `manual`).
pub const ACTIONS: &str = "roster_actions_total";
/// Gauge: durable tasks not yet final (ready, retry_wait, running).
pub const QUEUE_DEPTH: &str = "roster_queue_depth";
/// Gauge: seconds since the oldest open task was enqueued (0: none).
pub const QUEUE_OLDEST_AGE: &str = "roster_queue_oldest_task_age_seconds";
/// Histogram: connector calls, by `connection` and `call` (`list`,
/// `apply`, `validate`), in seconds.
pub const CONNECTOR_DURATION: &str = "roster_connector_request_duration_seconds";
/// Counter: connector calls that failed, and actions an app refused, by
/// `connection` and `kind` (see [`error_kind`]; `refused` for an action).
pub const CONNECTOR_ERRORS: &str = "roster_connector_errors_total";
/// Counter: times a call waited for its connection's rate window, by
/// `connection`.
pub const RATE_LIMIT_WAITS: &str = "roster_rate_limit_waits_total";
/// Histogram: how long each of those waits was, by `connection`, in
/// seconds (its `_sum` is the total time spent waiting).
pub const RATE_LIMIT_WAIT_SECONDS: &str = "roster_rate_limit_wait_seconds";
/// Gauge: terminated people who still have at least one open account
/// (the leavers report's `leavers_with_open_accounts`).
pub const LEAVERS_OPEN: &str = "roster_leavers_with_open_access";
/// Gauge: the open accounts of those leavers.
pub const LEAVER_ACCOUNTS_OPEN: &str = "roster_leaver_open_accounts";

/// Records a stored plan of scope `kind` (`all`, `connections`, `person`).
pub(crate) fn plan_created(kind: &'static str) {
    metrics::counter!(PLANS_CREATED, "scope" => kind).increment(1);
}

/// Records an action's outcome on `path`.
pub(crate) fn action_finished(path: &'static str, outcome: &'static str) {
    metrics::counter!(ACTIONS, "path" => path, "outcome" => outcome).increment(1);
}

/// A short, stable name for a connector error's kind (a label value).
pub fn error_kind(e: &ConnectorError) -> &'static str {
    match e {
        ConnectorError::Unauthorized { .. } => "unauthorized",
        ConnectorError::RateLimited { .. } => "rate_limited",
        ConnectorError::Transient { .. } => "transient",
        ConnectorError::Vendor { .. } => "vendor",
        ConnectorError::Protocol { .. } => "protocol",
        ConnectorError::Config { .. } => "config",
        ConnectorError::Unsupported { .. } => "unsupported",
        ConnectorError::ListingChanged { .. } => "listing_changed",
        _ => "other",
    }
}

/// A connector that measures every call of the one it wraps; behaviour is
/// the inner connector's, unchanged.
pub struct Metered {
    inner: Arc<dyn Connector>,
    connection: String,
}

impl Metered {
    pub fn wrap(inner: Arc<dyn Connector>) -> Arc<dyn Connector> {
        let connection = inner.id().as_str().to_string();
        Arc::new(Metered { inner, connection })
    }

    fn observe<T>(&self, call: &'static str, started: Instant, r: &Result<T, ConnectorError>) {
        metrics::histogram!(CONNECTOR_DURATION, "connection" => self.connection.clone(), "call" => call)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = r {
            metrics::counter!(CONNECTOR_ERRORS, "connection" => self.connection.clone(), "kind" => error_kind(e))
                .increment(1);
        }
    }
}

#[async_trait]
impl Connector for Metered {
    fn id(&self) -> &ConnectionId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let started = Instant::now();
        let r = self.inner.validate().await;
        self.observe("validate", started, &r);
        r
    }

    async fn probe(&self) -> Result<Vec<roster_connectors::Observation>, ConnectorError> {
        self.inner.probe().await
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let started = Instant::now();
        let r = self.inner.list_accounts(req).await;
        self.observe("list", started, &r);
        r
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let started = Instant::now();
        let r = self.inner.apply(req).await;
        self.observe("apply", started, &r);
        if let Ok(resp) = &r {
            let refused = resp
                .results
                .iter()
                .filter(|a| matches!(a, roster_connectors::ActionResult::Failed { .. }))
                .count();
            if refused > 0 {
                metrics::counter!(CONNECTOR_ERRORS, "connection" => self.connection.clone(), "kind" => "refused")
                    .increment(refused as u64);
            }
        }
        r
    }

    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        self.inner.merge_duplicate(existing, duplicate)
    }
}

/// A rate budget that counts the waits it asks for.
pub struct MeteredBudget {
    inner: Arc<dyn RateBudget>,
    connection: String,
}

impl MeteredBudget {
    pub fn wrap(inner: Arc<dyn RateBudget>, connection: &ConnectionId) -> Arc<dyn RateBudget> {
        Arc::new(MeteredBudget {
            inner,
            connection: connection.as_str().to_string(),
        })
    }
}

#[async_trait]
impl RateBudget for MeteredBudget {
    fn windows(&self) -> &[RateWindow] {
        self.inner.windows()
    }

    async fn try_turn(&self) -> Turn {
        let turn = self.inner.try_turn().await;
        if let Turn::Wait(delay) = turn {
            record_wait(&self.connection, delay);
        }
        turn
    }

    async fn hold_for(&self, d: Duration) {
        self.inner.hold_for(d).await
    }
}

fn record_wait(connection: &str, delay: Duration) {
    metrics::counter!(RATE_LIMIT_WAITS, "connection" => connection.to_string()).increment(1);
    metrics::histogram!(RATE_LIMIT_WAIT_SECONDS, "connection" => connection.to_string())
        .record(delay.as_secs_f64());
}
