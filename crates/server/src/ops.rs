//! The operations endpoints: liveness, readiness and Prometheus metrics.
//!
//! | path       | answer |
//! |------------|--------|
//! | `/healthz` | `200 ok` while the process serves HTTP at all |
//! | `/readyz`  | `200` with [`Readiness`] as JSON when the store answers and its schema version is this build's; `503` with the same body naming what is wrong otherwise |
//! | `/metrics` | the Prometheus text exposition of every `roster_*` series |
//!
//! None of them needs a credential (probes and scrapers hold none), so
//! none answers anything about a person: readiness is a version and a
//! list of problems, metrics are counts with bounded labels (see
//! `roster_engine::metrics`). Bind roster to an address only your
//! monitoring reaches if the counts themselves are sensitive.
//!
//! Everything goes through [`Roster`]: readiness is
//! [`Roster::readiness`], and a scrape refreshes the queue gauges
//! ([`Roster::refresh_queue_gauges`], one aggregate query) and, at most
//! every [`LEAVERS_REFRESH`], the leavers gauge
//! ([`Roster::refresh_leavers_gauges`], which reads every stored account:
//! in the background, so a scrape waits for it at most a moment, the
//! first time).
//!
//! The Prometheus recorder is process-wide and installed once
//! ([`metrics_handle`]); every router built in the process renders the
//! same registry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use roster_engine::Roster;
use roster_engine::health::Readiness;

/// Counter: requests the SCIM service provider answered, by `status`
/// (the HTTP status code). Emitted by the SCIM router's outermost layer,
/// so rejections, timeouts and panics count too.
pub const SCIM_REQUESTS: &str = "roster_scim_requests_total";

/// The longest the leavers gauge may be stale before a scrape refreshes it.
pub const LEAVERS_REFRESH: Duration = Duration::from_secs(60);

/// Buckets for every `*_seconds` histogram: connector calls and rate-limit
/// waits, from a fast loopback call to a long vendor hold.
const SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder's handle, installing the recorder
/// on first use. If another recorder was installed first (a test harness,
/// an embedding program), the handle renders an empty registry of its own
/// and a warning says so.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "histogram buckets refused; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed; /metrics serves an empty registry"
                );
            }
            handle
        })
        .clone()
}

/// What the ops routes share.
#[derive(Clone)]
pub struct OpsState {
    roster: Arc<Roster>,
    handle: PrometheusHandle,
    leavers: Arc<LeaversRefresh>,
}

#[derive(Default)]
struct LeaversRefresh {
    last: Mutex<Option<Instant>>,
    running: AtomicBool,
}

impl OpsState {
    pub fn new(roster: Arc<Roster>) -> OpsState {
        OpsState {
            roster,
            handle: metrics_handle(),
            leavers: Arc::default(),
        }
    }
}

/// The ops router (module docs): `/healthz`, `/readyz`, `/metrics`.
pub fn ops_router(roster: Arc<Roster>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState::new(roster))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let r: Readiness = state.roster.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        tracing::warn!(problems = ?r.problems, "not ready");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    if let Err(e) = state.roster.refresh_queue_gauges().await {
        tracing::warn!(error = %e, "cannot read the task queue for /metrics");
    }
    refresh_leavers(&state).await;
    state.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}

/// How long the first scrape waits for the first leavers count.
const FIRST_LEAVERS_WAIT: Duration = Duration::from_secs(2);

/// Refreshes the leavers gauge in the background when older than
/// [`LEAVERS_REFRESH`], one refresh at a time; the first scrape waits up
/// to [`FIRST_LEAVERS_WAIT`] for it.
async fn refresh_leavers(state: &OpsState) {
    let last = *state.leavers.last.lock().unwrap_or_else(|p| p.into_inner());
    let due = last.is_none_or(|t| t.elapsed() >= LEAVERS_REFRESH);
    if !due
        || state
            .leavers
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    let job = {
        let roster = state.roster.clone();
        let leavers = state.leavers.clone();
        async move {
            if let Err(e) = roster.refresh_leavers_gauges().await {
                tracing::warn!(error = %e, "cannot compute the leavers gauge for /metrics");
            }
            *leavers.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            leavers.running.store(false, Ordering::Release);
        }
    };
    let handle = tokio::spawn(job);
    if last.is_none() {
        // The first scrape waits a little, so a small deployment has the
        // gauge at once; a large one is never held past a scrape timeout.
        let _ = tokio::time::timeout(FIRST_LEAVERS_WAIT, handle).await;
    }
}

/// Counts a SCIM response by status ([`SCIM_REQUESTS`]).
pub(crate) async fn count_scim_response(resp: Response) -> Response {
    metrics::counter!(SCIM_REQUESTS, "status" => resp.status().as_str().to_string()).increment(1);
    resp
}
