//! What every simulator after Expensify shares: the fault switchboard, the
//! request counters, the effect log's shape, and the loopback server.
//!
//! # Faults
//!
//! A [`Fault`] is chosen for each request before the vendor logic runs:
//! first from a deterministic *schedule* (one fault per request, in order,
//! set with `schedule_faults`), then from the *standing* fault (`set_fault`,
//! optionally for the next *n* requests only). Scheduling is what lets a
//! conformance suite replay exactly the same hostile sequence on every run.
//!
//! Faults are applied by one axum middleware ([`fault_layer`]) so each
//! simulator only says how its vendor spells an error
//! ([`FaultHost::vendor_error`], [`FaultHost::rate_limited`]) and how its
//! listing can shift ([`FaultHost::shift_listing`]).
//!
//! # Invariant
//!
//! A faulted request changes nothing, except [`Fault::LoseResponse`] (the
//! change is applied, the answer is lost) and [`Fault::ShiftListing`] (the
//! listing changes under the reader, as another admin would change it).
//! That is what lets tests say "applied exactly once" from the effect log.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::expensify::limits::Windows;

pub use crate::expensify::limits::RateWindow;

/// An injected failure, for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// HTTP 500 with the vendor's error body; nothing is applied.
    ServerError,
    /// HTTP 429 with the vendor's body, with or without `Retry-After`
    /// (whole seconds). Counted as faulted, not as a violation.
    RateLimitStorm { retry_after_secs: Option<u64> },
    /// Answer normally, but only after this delay (client timeouts).
    Slow(Duration),
    /// The connection is cut before a complete response: the client sees a
    /// transport error. Nothing is applied.
    DropConnection,
    /// The request is processed, then the body is cut in half (a page
    /// truncated in transit). Writes are applied.
    TruncatedBody,
    /// HTTP 200 whose body is the vendor's error (status 500 inside).
    /// Nothing is applied.
    ErrorIn200,
    /// The request is processed (changes applied), then answered 500 as if
    /// the response was lost. Exercises idempotent retries.
    LoseResponse,
    /// List endpoints ignore the cursor / start index and answer the first
    /// page again, with the same continuation. Other requests are normal.
    RepeatPage,
    /// Before this request is served, a new account appears that sorts
    /// first in the listing (another admin at work), shifting every offset.
    ShiftListing,
}

impl Fault {
    /// Faults that answer without running the vendor logic.
    fn short_circuits(self) -> bool {
        matches!(
            self,
            Fault::ServerError
                | Fault::RateLimitStorm { .. }
                | Fault::DropConnection
                | Fault::ErrorIn200
        )
    }
}

/// What a simulator has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request that reached the server.
    pub requests: u64,
    /// Requests refused because the caller was over a documented limit
    /// (rate or concurrency). A well-behaved client keeps this at 0.
    pub rate_limit_violations: u64,
    /// Of those, the ones refused for concurrency.
    pub concurrency_violations: u64,
    /// Requests answered by an injected [`Fault`] (other than `Slow`,
    /// `RepeatPage` and `ShiftListing`).
    pub faulted: u64,
    /// Requests refused for bad or missing credentials.
    pub unauthorized: u64,
    /// Requests that reached the vendor logic, by `METHOD /route`.
    pub routes: BTreeMap<String, u64>,
    /// The most requests that were in flight at once.
    pub max_in_flight: u64,
}

impl Counters {
    /// Requests to one route (`"GET /Users"`), 0 if none.
    pub fn route(&self, key: &str) -> u64 {
        self.routes.get(key).copied().unwrap_or(0)
    }
}

/// What an applied change did to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EffectKind {
    Created,
    /// Fields changed (wire names, sorted).
    Updated {
        fields: Vec<String>,
    },
    Deactivated,
    Reactivated,
    /// Removed for good (SCIM DELETE).
    Deleted,
    /// Assigned to an app (Okta).
    Assigned {
        app: String,
    },
    /// Unassigned from an app (Okta).
    Unassigned {
        app: String,
    },
    /// Added to a group (an IdP's group or OneLogin role that assigns an
    /// app).
    MemberAdded {
        group: String,
    },
    /// Removed from such a group.
    MemberRemoved {
        group: String,
    },
    /// The user's sign-in sessions (and, where the IdP says so, the
    /// tokens issued to them) were revoked: an IdP's offboarding step.
    /// Logged for every accepted call, since each one ends whatever
    /// sessions exist at that moment. `tokens`: the OAuth/OIDC tokens
    /// issued to the user were revoked too.
    SessionsRevoked {
        tokens: bool,
    },
}

impl EffectKind {
    /// A short stable name: `created`, `updated`, ...
    pub fn name(&self) -> &'static str {
        match self {
            EffectKind::Created => "created",
            EffectKind::Updated { .. } => "updated",
            EffectKind::Deactivated => "deactivated",
            EffectKind::Reactivated => "reactivated",
            EffectKind::Deleted => "deleted",
            EffectKind::Assigned { .. } => "assigned",
            EffectKind::Unassigned { .. } => "unassigned",
            EffectKind::MemberAdded { .. } => "member-added",
            EffectKind::MemberRemoved { .. } => "member-removed",
            EffectKind::SessionsRevoked { .. } => "sessions_revoked",
        }
    }
}

/// One applied change, in the order the simulator applied it. Re-sending
/// a change that matches the current state logs nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// Position in the log, from 0.
    pub seq: u64,
    /// The vendor's id of the account.
    pub id: String,
    /// The account's address, lower-cased.
    pub email: String,
    pub kind: EffectKind,
    /// Who made it: `api` (a client call) or `console` (the simulated
    /// human in the admin console, or first-login JIT).
    pub via: &'static str,
}

/// An append-only effect log.
#[derive(Clone, Debug, Default)]
pub struct EffectLog(Vec<Effect>);

impl EffectLog {
    pub fn push(&mut self, id: &str, email: &str, kind: EffectKind, via: &'static str) {
        let seq = self.0.len() as u64;
        self.0.push(Effect {
            seq,
            id: id.to_string(),
            email: email.to_lowercase(),
            kind,
            via,
        });
    }
    pub fn all(&self) -> Vec<Effect> {
        self.0.clone()
    }
}

#[derive(Debug, Default)]
struct FaultState {
    standing: Fault,
    /// `Some(n)`: the standing fault applies to the next `n` requests.
    remaining: Option<u64>,
    /// One fault per request, consumed before the standing one.
    schedule: VecDeque<Fault>,
}

#[derive(Debug, Default)]
struct CoreState {
    faults: FaultState,
    counters: Counters,
    in_flight: u64,
    windows: Option<Windows>,
}

/// Fault switchboard, counters and limits shared by a simulator's handler
/// and its test handle.
#[derive(Debug)]
pub struct Core {
    state: Mutex<CoreState>,
    rate_limits: Vec<RateWindow>,
    max_concurrent: Option<u64>,
    /// Added to every admitted request (so concurrency is observable).
    latency: Duration,
}

impl Core {
    /// `rate_limits`: sliding windows over accepted requests (empty: none).
    /// `max_concurrent`: more requests in flight than this get 429.
    pub fn new(rate_limits: Vec<RateWindow>, max_concurrent: Option<u64>) -> Self {
        Core {
            state: Mutex::new(CoreState::default()),
            rate_limits,
            max_concurrent,
            latency: Duration::ZERO,
        }
    }

    /// Every admitted request takes at least `latency`.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn lock(&self) -> MutexGuard<'_, CoreState> {
        // Only a bug in the simulator itself can poison the lock; keep
        // serving with whatever state is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_fault(&self, fault: Fault) {
        let mut s = self.lock();
        s.faults.standing = fault;
        s.faults.remaining = None;
    }

    pub fn set_fault_for(&self, fault: Fault, requests: u64) {
        let mut s = self.lock();
        s.faults.standing = fault;
        s.faults.remaining = Some(requests);
    }

    /// Replaces the schedule: request *k* from now gets `faults[k]`.
    pub fn schedule_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.schedule = faults.into_iter().collect();
    }

    /// No standing fault, no schedule.
    pub fn clear_faults(&self) {
        self.lock().faults = FaultState::default();
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub(crate) fn count_unauthorized(&self) {
        self.lock().counters.unauthorized += 1;
    }

    /// Picks the fault for the request arriving now.
    fn next_fault(&self) -> Fault {
        let mut s = self.lock();
        s.counters.requests += 1;
        if let Some(f) = s.faults.schedule.pop_front() {
            return f;
        }
        let f = s.faults.standing;
        if let Some(n) = s.faults.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.faults.standing = Fault::None;
                s.faults.remaining = None;
            }
        }
        f
    }

    /// Admits a request against the limits, or says how long until the
    /// rate windows would admit one (`None` inside: concurrency).
    fn admit(&self) -> Result<(), Option<Duration>> {
        let mut s = self.lock();
        if let Some(max) = self.max_concurrent
            && s.in_flight >= max
        {
            s.counters.rate_limit_violations += 1;
            s.counters.concurrency_violations += 1;
            return Err(None);
        }
        if !self.rate_limits.is_empty() {
            let limits = self.rate_limits.clone();
            let windows = s.windows.get_or_insert_with(|| Windows::new(limits));
            if let Err(wait) = windows.admit(tokio::time::Instant::now()) {
                s.counters.rate_limit_violations += 1;
                return Err(Some(wait));
            }
        }
        s.in_flight += 1;
        s.counters.max_in_flight = s.counters.max_in_flight.max(s.in_flight);
        Ok(())
    }

    /// The first rate window's size, requests left in it, and when it
    /// next frees a slot; `None` without limits.
    pub(crate) fn rate_usage(&self) -> Option<(u32, u32, Duration)> {
        let s = self.lock();
        match &s.windows {
            Some(w) => w.usage(tokio::time::Instant::now()),
            None => self.rate_limits.first().map(|w| (w.max_requests, 0, w.per)),
        }
        .map(|(max, used, reset)| (max, max.saturating_sub(used), reset))
    }

    fn done(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    fn count_route(&self, key: String) {
        *self.lock().counters.routes.entry(key).or_insert(0) += 1;
    }

    fn count_faulted(&self) {
        self.lock().counters.faulted += 1;
    }
}

/// Whole seconds, rounded up, never 0: a client that honours it is then
/// guaranteed to find room.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// How one vendor spells its failures; implemented by each simulator.
pub(crate) trait FaultHost: Send + Sync + 'static {
    fn core(&self) -> &Core;
    /// The vendor's error response for `status` (the body may say another
    /// status when `http_status` differs, for errors inside an HTTP 200).
    fn vendor_error(&self, http_status: StatusCode, status: u16, message: &str) -> Response;
    /// The vendor's 429.
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response;
    /// Checks credentials; `Err` is the vendor's 401.
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response>;
    /// Makes an account appear that sorts first in every listing.
    fn shift_listing(&self);
    /// Extra headers for every answered request (Okta's X-Rate-Limit-*).
    fn decorate(&self, _response: &mut Response) {}
}

/// The [`Fault`] a handler is running under (for `RepeatPage`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActiveFault(pub Fault);

impl ActiveFault {
    pub(crate) fn repeat_page(fault: Option<axum::Extension<ActiveFault>>) -> bool {
        matches!(fault, Some(axum::Extension(ActiveFault(Fault::RepeatPage))))
    }
}

/// The middleware that applies faults, limits and auth in front of a
/// simulator's routes.
pub(crate) async fn fault_layer(
    State(host): State<Arc<dyn FaultHost>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let core = host.core();
    let fault = core.next_fault();
    if fault.short_circuits() {
        core.count_faulted();
    }
    let mut response = match fault {
        Fault::ServerError => host.vendor_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            "Internal server error (injected)",
        ),
        Fault::ErrorIn200 => host.vendor_error(
            StatusCode::OK,
            500,
            "Internal server error (injected, inside an HTTP 200)",
        ),
        Fault::RateLimitStorm { retry_after_secs } => host.rate_limited(retry_after_secs),
        Fault::DropConnection => dropped_connection(),
        _ => {
            if fault == Fault::ShiftListing {
                host.shift_listing();
            }
            match core.admit() {
                Err(wait) => host.rate_limited(wait.map(ceil_secs)),
                Ok(()) => {
                    let path = req.uri().path().to_string();
                    let answer = match host.authorize(req.headers(), &path) {
                        Err(r) => {
                            core.count_unauthorized();
                            r
                        }
                        Ok(()) => {
                            let key = format!(
                                "{} {}",
                                req.method(),
                                matched.as_ref().map(|m| m.as_str()).unwrap_or(&path)
                            );
                            core.count_route(key);
                            // Inside the admitted span, so a slow request
                            // occupies a concurrency slot like a real one.
                            let delay = match fault {
                                Fault::Slow(d) => d,
                                _ => core.latency,
                            };
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            req.extensions_mut().insert(ActiveFault(fault));
                            next.run(req).await
                        }
                    };
                    core.done();
                    match fault {
                        Fault::LoseResponse => {
                            core.count_faulted();
                            host.vendor_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                500,
                                "Internal server error (response lost)",
                            )
                        }
                        Fault::TruncatedBody => {
                            core.count_faulted();
                            truncate(answer).await
                        }
                        _ => answer,
                    }
                }
            }
        }
    };
    host.decorate(&mut response);
    response
}

/// Keeps the status and headers, cuts the body in half (at least one
/// byte short), so a JSON client fails to parse it.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let keep = (bytes.len() / 2).min(bytes.len().saturating_sub(1));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes.slice(..keep)))
}

/// A response whose body fails on its first frame: hyper aborts the
/// connection, and the client sees the transfer break.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped (injected)",
        ))
    });
    (StatusCode::OK, Body::from_stream(stream)).into_response()
}

/// Errors starting a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("SIM-0001 cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The OpenID Connect signing key could not be made or read.
    #[error("SIM-0002 cannot use {0} as the OpenID Connect signing key")]
    Key(&'static str),
}

impl SimError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::Bind { .. } => "SIM-0001",
            SimError::Key(_) => "SIM-0002",
        }
    }
}

/// A simulator listening on loopback, with its handle. Stops when dropped.
pub struct Running<H> {
    addr: SocketAddr,
    handle: H,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl<H> Running<H> {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn handle(&self) -> &H {
        &self.handle
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl<H> std::ops::Deref for Running<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.handle
    }
}

impl<H> Drop for Running<H> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1:`port` (0 picks a free one) and serves `app` until the
/// returned [`Running`] is dropped.
pub(crate) async fn serve<H>(
    name: &'static str,
    port: u16,
    app: Router,
    handle: H,
) -> Result<Running<H>, SimError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, simulator = name, "simulator stopped");
        }
    });
    tracing::info!(%addr, simulator = name, "simulator listening");
    Ok(Running {
        addr,
        handle,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Wraps `routes` with the fault/limit/auth middleware of `host`.
pub(crate) fn with_faults<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    host: Arc<dyn FaultHost>,
) -> Router<S> {
    routes.route_layer(axum::middleware::from_fn_with_state(host, fault_layer))
}

/// Implements the fault and counter methods of a handle type whose field
/// `.0` derefs to something with a `core: Core` field.
macro_rules! fault_controls {
    ($handle:ty) => {
        impl $handle {
            /// Sets a fault for all further requests until changed.
            pub fn set_fault(&self, fault: $crate::common::Fault) {
                self.0.core.set_fault(fault);
            }
            /// Sets a fault for the next `requests` requests only.
            pub fn set_fault_for(&self, fault: $crate::common::Fault, requests: u64) {
                self.0.core.set_fault_for(fault, requests);
            }
            /// Request *k* from now gets `faults[k]`; then the standing
            /// fault applies again.
            pub fn schedule_faults(&self, faults: impl IntoIterator<Item = $crate::common::Fault>) {
                self.0.core.schedule_faults(faults);
            }
            /// No standing fault and no schedule.
            pub fn clear_faults(&self) {
                self.0.core.clear_faults();
            }
            pub fn counters(&self) -> $crate::common::Counters {
                self.0.core.counters()
            }
        }
    };
}
pub(crate) use fault_controls;

/// Constant-time-ish comparison is not needed in a simulator; this only
/// keeps the intent readable.
pub(crate) fn bearer(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim().to_string())
}

/// The public half of a PKCS#8 RSA key (PEM), as ring verifies with it.
pub(crate) fn rsa_public_key(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).ok()?;
    Some(key.public_key().as_ref().to_vec())
}

/// The claims of an RS256 JWT whose signature `public_key` verifies.
pub(crate) fn verify_rs256(jwt: &str, public_key: &[u8]) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts.as_slice() else {
        return None;
    };
    let sig = b64.decode(sig).ok()?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    )
    .verify(format!("{h}.{c}").as_bytes(), &sig)
    .ok()?;
    serde_json::from_slice(&b64.decode(c).ok()?).ok()
}
