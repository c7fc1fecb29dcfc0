//! A faithful local Expensify Integration Server.
//!
//! One endpoint, `POST /Integration-Server/ExpensifyIntegrations`, with
//! `application/x-www-form-urlencoded` fields `requestJobDescription` (a JSON
//! job) and, for the employee feed, `data`. Built from vendor-apis.md §1 and
//! the Okta Workflows guide; where the sources disagree it accepts every
//! documented variant (see below).
//!
//! # Wire behaviour
//!
//! * Errors come back as HTTP 200 with `{"responseCode":N,"responseMessage":..}`:
//!   401 bad or missing credentials, 410 a missing or malformed `type`,
//!   `inputSettings`, `policyIDList`, `fields` or employee data, 404 an
//!   unknown policy, 500 generic.
//! * Rate limits are sliding windows per `partnerUserID`, by default at
//!   most 5 requests per 10 s and 20 per 60 s. A request over either window
//!   is answered HTTP **429** with body `responseCode` 429 and a
//!   `Retry-After` header (whole seconds), and counted as a violation. Only
//!   accepted requests occupy a window, so a client that backs off is not
//!   punished for its rejected attempts.
//! * The employee feed may be a bare array, `{"Employees":[..]}`, or (the
//!   Okta guide's form) `inputSettings.data`. `dataSource` may sit at the top
//!   level or inside `inputSettings`.
//!
//! # Test hooks
//!
//! [`ExpensifyHandle`] inspects and mutates the tenant, reads [`Counters`]
//! and the [`Effect`] log, and injects a [`Fault`] (for all requests, or for
//! the next *n*). Windows are configurable ([`ExpensifySimConfig::scaled`])
//! so rate-limit tests run in a second instead of a minute.

pub(crate) mod limits;
pub mod model;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use limits::RateWindow;
pub use model::{Effect, EffectKind, SimEmployee, SimPolicy, seed_policies};

use limits::Windows;
use model::{JobError, Tenant};

/// The path the real service listens on.
pub const ENDPOINT_PATH: &str = "/Integration-Server/ExpensifyIntegrations";

/// The message the vendor's older docs quote for a rate-limited call.
pub const RATE_LIMIT_MESSAGE: &str = "You have been rate-limited. Please try again later or contact help@expensify.com for assistance.";

/// How the simulator is set up.
#[derive(Clone, Debug)]
pub struct ExpensifySimConfig {
    /// 127.0.0.1 port; 0 picks a free one.
    pub port: u16,
    pub partner_user_id: String,
    pub partner_user_secret: String,
    /// Sliding windows per `partnerUserID`; all must admit a request.
    pub rate_limits: Vec<RateWindow>,
    /// `Retry-After` to send on 429, in seconds. `None` computes it from
    /// the windows (rounded up, at least 1).
    pub retry_after_secs: Option<u64>,
    pub policies: Vec<SimPolicy>,
}

impl ExpensifySimConfig {
    /// Real limits (5/10 s, 20/60 s), no policies, the given credentials.
    pub fn new(partner_user_id: impl Into<String>, partner_user_secret: impl Into<String>) -> Self {
        ExpensifySimConfig {
            port: 0,
            partner_user_id: partner_user_id.into(),
            partner_user_secret: partner_user_secret.into(),
            rate_limits: RateWindow::expensify(),
            retry_after_secs: None,
            policies: Vec::new(),
        }
    }

    /// Multiplies every window by `factor` (e.g. 0.025 turns 10 s into
    /// 250 ms) so rate-limit behaviour can be tested quickly.
    pub fn scaled(mut self, factor: f64) -> Self {
        self.rate_limits = self
            .rate_limits
            .iter()
            .map(|w| RateWindow {
                max_requests: w.max_requests,
                per: w.per.mul_f64(factor),
            })
            .collect();
        self
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn with_policies(mut self, policies: impl IntoIterator<Item = SimPolicy>) -> Self {
        self.policies.extend(policies);
        self
    }

    /// Adds [`seed_policies`]`(n, per_policy)`.
    pub fn with_seed(self, n: usize, per_policy: usize) -> Self {
        self.with_policies(seed_policies(n, per_policy))
    }

    pub fn with_retry_after_secs(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

/// An injected failure. Applies before any other processing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// HTTP 500 with body `responseCode` 500; nothing is applied.
    ServerError,
    /// Every request is answered 429 (counted apart from violations).
    RateLimitStorm,
    /// Answer normally, but only after this delay. The request takes its
    /// place in the rate windows when it arrives, as at a front-door
    /// limiter, not when the answer is finally made.
    Slow(Duration),
    /// Body `responseCode` 401 whatever the credentials.
    Unauthorized,
    /// Process the job (changes are applied), then answer HTTP 500 as if
    /// the response was lost. Exercises idempotent retries.
    LoseResponse,
    /// HTTP 429 like `RateLimitStorm`, but without `Retry-After`.
    RateLimitNoRetryAfter,
    /// HTTP 200 with body `responseCode` 500 (the vendor's habit); nothing
    /// is applied.
    ErrorIn200,
    /// The connection breaks before a complete response; nothing applied.
    DropConnection,
    /// Process the job, then cut the response body in half (a page
    /// truncated in transit).
    TruncatedBody,
}

/// What the simulator has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request that reached the endpoint.
    pub requests: u64,
    /// Requests that arrived while their `partnerUserID` was over a window
    /// and were answered 429.
    pub rate_limit_violations: u64,
    /// Requests answered by an injected [`Fault`] (other than `Slow`).
    pub faulted: u64,
    /// Requests rejected for bad credentials.
    pub unauthorized: u64,
    /// Jobs processed, by `type:inputSettings.type` (e.g. `update:employees`,
    /// `get:policy`), counting only requests that got past auth and limits.
    pub jobs: BTreeMap<String, u64>,
}

struct SimState {
    tenant: Tenant,
    counters: Counters,
    fault: Fault,
    /// `Some(n)`: the fault applies to the next `n` requests, then clears.
    fault_remaining: Option<u64>,
    /// One fault per request, consumed before the standing one.
    schedule: std::collections::VecDeque<Fault>,
    windows: BTreeMap<String, Windows>,
}

struct Shared {
    config: ExpensifySimConfig,
    state: Mutex<SimState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock can only come from a bug in the
        // simulator itself; keep serving with whatever state is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Inspect and steer a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct ExpensifyHandle(Arc<Shared>);

impl ExpensifyHandle {
    /// Sets a fault for all further requests until changed.
    pub fn set_fault(&self, fault: Fault) {
        let mut s = self.0.lock();
        s.fault = fault;
        s.fault_remaining = None;
    }

    /// Sets a fault for the next `requests` requests only.
    pub fn set_fault_for(&self, fault: Fault, requests: u64) {
        let mut s = self.0.lock();
        s.fault = fault;
        s.fault_remaining = Some(requests);
    }

    /// Request *k* from now gets `faults[k]`; then the standing fault
    /// applies again. Deterministic hostile sequences for conformance.
    pub fn schedule_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.0.lock().schedule = faults.into_iter().collect();
    }

    /// No standing fault and no schedule.
    pub fn clear_faults(&self) {
        let mut s = self.0.lock();
        s.fault = Fault::None;
        s.fault_remaining = None;
        s.schedule.clear();
    }

    pub fn fault(&self) -> Fault {
        self.0.lock().fault
    }

    pub fn counters(&self) -> Counters {
        self.0.lock().counters.clone()
    }

    /// Every applied change so far, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().tenant.effects.clone()
    }

    pub fn policies(&self) -> Vec<SimPolicy> {
        self.0.lock().tenant.policies.values().cloned().collect()
    }

    pub fn policy(&self, id: &str) -> Option<SimPolicy> {
        self.0.lock().tenant.policies.get(id).cloned()
    }

    /// Adds or replaces a policy (with its members).
    pub fn put_policy(&self, policy: SimPolicy) {
        self.0
            .lock()
            .tenant
            .policies
            .insert(policy.id.clone(), policy);
    }

    /// The membership of `email` in `policy_id`.
    pub fn employee(&self, policy_id: &str, email: &str) -> Option<SimEmployee> {
        self.0
            .lock()
            .tenant
            .policies
            .get(policy_id)
            .and_then(|p| p.employee(email).cloned())
    }

    /// Adds or replaces a membership directly (no effect is logged: this is
    /// test setup, not an API call). Returns false if the policy is unknown.
    pub fn put_employee(&self, policy_id: &str, employee: SimEmployee) -> bool {
        let mut s = self.0.lock();
        match s.tenant.policies.get_mut(policy_id) {
            Some(p) => {
                p.employees.insert(employee.email.to_lowercase(), employee);
                true
            }
            None => false,
        }
    }

    /// The policies `email` belongs to, sorted.
    pub fn policies_of(&self, email: &str) -> Vec<String> {
        self.0.lock().tenant.policies_of(email)
    }
}

/// A simulator listening on loopback. Stops when dropped.
pub struct RunningSim {
    addr: SocketAddr,
    handle: ExpensifyHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The full endpoint URL, e.g.
    /// `http://127.0.0.1:4711/Integration-Server/ExpensifyIntegrations`.
    pub fn url(&self) -> String {
        format!("http://{}{ENDPOINT_PATH}", self.addr)
    }

    pub fn handle(&self) -> &ExpensifyHandle {
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

impl std::ops::Deref for RunningSim {
    type Target = ExpensifyHandle;
    fn deref(&self) -> &ExpensifyHandle {
        &self.handle
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub use crate::common::SimError;

/// The simulator's entry point.
pub struct ExpensifySim;

impl ExpensifySim {
    /// Binds 127.0.0.1:`config.port` and serves until the returned
    /// [`RunningSim`] is dropped or shut down.
    pub async fn start(config: ExpensifySimConfig) -> Result<RunningSim, SimError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(SimState {
                tenant: Tenant::new(config.policies.clone()),
                counters: Counters::default(),
                fault: Fault::None,
                fault_remaining: None,
                schedule: Default::default(),
                windows: BTreeMap::new(),
            }),
            config,
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "expensify simulator stopped");
            }
        });
        tracing::info!(%addr, "expensify simulator listening");
        Ok(RunningSim {
            addr,
            handle: ExpensifyHandle(shared),
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(ENDPOINT_PATH, post(endpoint))
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(shared)
}

fn body(code: u16, message: &str) -> Response {
    Json200(json!({"responseCode": code, "responseMessage": message})).into_response()
}

/// JSON with HTTP 200, the vendor's habit even for failures.
struct Json200(Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn too_many(retry_after_secs: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"responseCode": 429, "responseMessage": RATE_LIMIT_MESSAGE}).to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"responseCode": 500, "responseMessage": "Internal server error"}).to_string(),
    )
        .into_response()
}

async fn endpoint(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fault = {
        let mut s = shared.lock();
        s.counters.requests += 1;
        let fault = match s.schedule.pop_front() {
            Some(f) => f,
            None => {
                let fault = s.fault;
                if let Some(n) = s.fault_remaining.as_mut() {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        s.fault = Fault::None;
                        s.fault_remaining = None;
                    }
                }
                fault
            }
        };
        if !matches!(
            fault,
            Fault::None | Fault::Slow(_) | Fault::LoseResponse | Fault::TruncatedBody
        ) {
            s.counters.faulted += 1;
        }
        fault
    };
    match fault {
        Fault::ServerError => return server_error(),
        Fault::RateLimitStorm => return too_many(shared.config.retry_after_secs.unwrap_or(1)),
        Fault::RateLimitNoRetryAfter => {
            let mut r = too_many(1);
            r.headers_mut().remove(header::RETRY_AFTER);
            return r;
        }
        Fault::ErrorIn200 => return body(500, "Internal error (injected)"),
        Fault::DropConnection => return dropped_connection(),
        Fault::Unauthorized => return body(401, "Incorrect or missing credentials"),
        Fault::Slow(d) => {
            // Counted when it arrives, however long the answer then takes
            // (and whether or not the caller is still waiting for it).
            let refused = over_limit(&shared, &mut shared.lock(), &claimed_user(&form));
            if let Some(refused) = refused {
                return refused;
            }
            tokio::time::sleep(d).await;
            return process(&shared, &form, true);
        }
        Fault::None | Fault::LoseResponse | Fault::TruncatedBody => {}
    }
    let response = process(&shared, &form, false);
    match fault {
        Fault::LoseResponse => {
            shared.lock().counters.faulted += 1;
            server_error()
        }
        Fault::TruncatedBody => {
            shared.lock().counters.faulted += 1;
            truncate(response).await
        }
        _ => response,
    }
}

/// Keeps status and headers, cuts the body in half.
async fn truncate(response: Response) -> Response {
    let (mut parts, b) = response.into_parts();
    let bytes = axum::body::to_bytes(b, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let keep = (bytes.len() / 2).min(bytes.len().saturating_sub(1));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes.slice(..keep)))
}

/// A body that fails on its first frame: the connection is aborted.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped (injected)",
        ))
    });
    (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
}

fn form_field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The partnerUserID a request claims (empty when it claims none).
fn claimed_user(form: &[(String, String)]) -> String {
    form_field(form, "requestJobDescription")
        .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
        .and_then(|job| {
            job.get("credentials")?
                .get("partnerUserID")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The rate limits, keyed by the claimed partnerUserID and checked before
/// the credentials, like a front-door limiter: `Some(429)` (a violation)
/// when `user` is over a window, else the request takes its place in them
/// as of now.
fn over_limit(shared: &Shared, s: &mut SimState, user: &str) -> Option<Response> {
    let window = s
        .windows
        .entry(user.to_string())
        .or_insert_with(|| Windows::new(shared.config.rate_limits.clone()));
    let wait = window.admit(tokio::time::Instant::now()).err()?;
    s.counters.rate_limit_violations += 1;
    let secs = match shared.config.retry_after_secs {
        Some(secs) => secs,
        // Whole seconds, rounded up, never 0: a client that honours it
        // is then guaranteed to find room in the window.
        None => (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
    };
    Some(too_many(secs))
}

/// Answers one request. `admitted`: its place in the rate windows was
/// already taken (when it arrived).
fn process(shared: &Shared, form: &[(String, String)], admitted: bool) -> Response {
    let Some(raw) = form_field(form, "requestJobDescription") else {
        return body(410, "Required parameter 'requestJobDescription' is missing");
    };
    let Ok(job) = serde_json::from_str::<Value>(raw) else {
        return body(410, "Argument 'requestJobDescription' is not valid JSON");
    };
    let creds = job.get("credentials");
    let user = creds
        .and_then(|c| c.get("partnerUserID"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let secret = creds
        .and_then(|c| c.get("partnerUserSecret"))
        .and_then(Value::as_str)
        .unwrap_or("");

    let mut s = shared.lock();
    if !admitted && let Some(refused) = over_limit(shared, &mut s, user) {
        return refused;
    }
    if user.is_empty()
        || user != shared.config.partner_user_id
        || secret != shared.config.partner_user_secret
    {
        s.counters.unauthorized += 1;
        return body(
            401,
            "Incorrect or missing credentials (partnerUserID/partnerUserSecret)",
        );
    }
    let job_type = job.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(input) = job.get("inputSettings").and_then(Value::as_object) else {
        if job_type.is_empty() {
            return body(410, "Argument 'type' is missing or malformed");
        }
        return body(410, "Required parameter 'inputSettings' is missing");
    };
    let input_type = input.get("type").and_then(Value::as_str).unwrap_or("");
    let key = format!("{job_type}:{input_type}");
    let result = match (job_type, input_type) {
        ("get", "policyList") => {
            let admin_only = input
                .get("adminOnly")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(s.tenant.policy_list(admin_only))
        }
        ("get", "policy") => get_policy(&s.tenant, input),
        ("update", "employees") => {
            update_employees(&mut s.tenant, &job, input, form_field(form, "data"))
        }
        ("", _) => Err(JobError::invalid("Argument 'type' is missing or malformed")),
        ("get" | "update", _) => Err(JobError::invalid(
            "Argument 'inputSettings.type' is missing or malformed",
        )),
        (other, _) if ["file", "download", "create", "reconciliation"].contains(&other) => {
            Err(JobError {
                code: 500,
                message: format!("Job type '{other}' is not simulated"),
            })
        }
        _ => Err(JobError::invalid("Argument 'type' is missing or malformed")),
    };
    match result {
        Ok(v) => {
            *s.counters.jobs.entry(key).or_insert(0) += 1;
            Json200(v).into_response()
        }
        Err(e) => body(e.code, &e.message),
    }
}

fn get_policy(tenant: &Tenant, input: &serde_json::Map<String, Value>) -> Result<Value, JobError> {
    let strings = |name: &str| -> Result<Vec<String>, JobError> {
        let missing = || JobError::invalid(format!("Required parameter '{name}' is missing"));
        let list = input
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(missing)?;
        if list.is_empty() {
            return Err(missing());
        }
        list.iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| JobError::invalid(format!("Argument '{name}' is malformed")))
    };
    let ids = strings("policyIDList")?;
    let fields = strings("fields")?;
    tenant.policy_info(&ids, &fields)
}

fn update_employees(
    tenant: &mut Tenant,
    job: &Value,
    input: &serde_json::Map<String, Value>,
    data: Option<&str>,
) -> Result<Value, JobError> {
    if input.get("entity").and_then(Value::as_str) != Some("generic") {
        return Err(JobError::invalid(
            "Argument 'entity' is missing or malformed: it must be 'generic'",
        ));
    }
    let source = job
        .get("dataSource")
        .or_else(|| input.get("dataSource"))
        .and_then(Value::as_str)
        .unwrap_or("request");
    if source != "request" {
        return Err(JobError {
            code: 500,
            message: format!("dataSource '{source}' is not simulated"),
        });
    }
    let feed: Value = match (data, input.get("data")) {
        (Some(raw), _) => serde_json::from_str(raw)
            .map_err(|_| JobError::invalid("Invalid input data: 'data' is not valid JSON"))?,
        (None, Some(inline)) => inline.clone(),
        (None, None) => {
            return Err(JobError::invalid(
                "Invalid input data, e.g. employee data is missing",
            ));
        }
    };
    let records = match feed {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("Employees").or_else(|| o.remove("employees")) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(JobError::invalid(
                    "Invalid input data, e.g. employee data is missing",
                ));
            }
        },
        _ => {
            return Err(JobError::invalid(
                "Invalid input data, e.g. employee data is missing",
            ));
        }
    };
    let dry_run = match job.get("dry-run") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let outcome = tenant.update_employees(&records, dry_run)?;
    Ok(outcome.to_json(dry_run))
}
