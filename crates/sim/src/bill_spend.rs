//! A local BILL Spend & Expense v3 spend-users API (vendor-apis.md §5).
//!
//! Served under `/connect` like `https://gateway.prod.bill.com/connect`:
//!
//! * Auth: header `apiToken: <token>`; no login step. Missing or wrong →
//!   401.
//! * `POST /v3/spend/users` `{firstName, lastName, email, role}` with
//!   `role` ∈ `ADMIN | AUDITOR | BOOKKEEPER | MEMBER` → 200 with the user.
//!   An address that an unretired user already has → 400.
//! * `GET /v3/spend/users?max=1..100&nextPage=<token>` → `{"results":[..],
//!   "nextPage": <token|null>, "prevPage": ..}`; `max` defaults to 20 and
//!   outside 1–100 is a 400. Retired users are listed only with
//!   `filters=retired:eq:true` (and then only they are). Tokens are keyset
//!   cursors: a user created mid-read never shifts a page.
//! * `GET /v3/spend/users/{id}` by id or uuid; `DELETE` retires (idempotent:
//!   retiring a retired user answers 200 and changes nothing).
//! * Limits: `requests_per_hour` (20,000 documented) and **3 concurrent
//!   requests**; a 4th in flight gets 429 and counts as a violation.
//!
//! The same server serves a small admin console as HTML ([`console`]:
//! sign-in, People → Employees with search, an employee page with
//! Deactivate behind a confirmation) sharing this tenant.
//!
//! Errors are BILL v3's array form:
//! `[{"timestamp","code":"BDC_…","severity":"ERROR","category","message"}]`.
//! Where the vendor's exact code is unknown the simulator says so in the
//! message, not with an invented code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

/// The admin console as HTML (People → Employees), for browser runbooks.
pub mod console;
pub use console::BillConsoleEvent;

/// Where the API lives under the server root.
pub const BASE_PATH: &str = "/connect";
/// The roles BILL S&E accepts.
pub const ROLES: [&str; 4] = ["ADMIN", "AUDITOR", "BOOKKEEPER", "MEMBER"];
/// The documented rate-limit code.
pub const RATE_LIMIT_CODE: &str = "BDC_1144";

#[derive(Clone, Debug)]
pub struct BillSimConfig {
    pub port: u16,
    pub api_token: String,
    /// Accepted requests per hour (documented: 20,000 per developer key).
    pub requests_per_hour: u32,
    /// The hour, shortened for tests.
    pub hour: Duration,
    /// Requests in flight at once (documented: 3).
    pub max_concurrent: u64,
    /// The role of the token's own user (`/users/current`).
    pub token_user_role: String,
    /// Time every request takes (makes concurrency observable).
    pub latency: Duration,
    pub users: Vec<BillUser>,
}

impl BillSimConfig {
    pub fn new(api_token: impl Into<String>) -> Self {
        BillSimConfig {
            port: 0,
            api_token: api_token.into(),
            requests_per_hour: 20_000,
            hour: Duration::from_secs(3600),
            max_concurrent: 3,
            token_user_role: "ADMIN".into(),
            latency: Duration::ZERO,
            users: Vec::new(),
        }
    }
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Adds `n` members `member{i}@example.com`.
    pub fn with_seed(mut self, n: usize) -> Self {
        for i in 0..n {
            self.users.push(BillUser::new(
                &format!("member{i}@example.com"),
                &format!("First{i}"),
                &format!("Last{i}"),
                "MEMBER",
            ));
        }
        self
    }
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    pub fn with_user(mut self, user: BillUser) -> Self {
        self.users.push(user);
        self
    }
    /// At most `n` requests per `per` instead of 20,000 per hour.
    pub fn with_rate_limit(mut self, n: u32, per: Duration) -> Self {
        self.requests_per_hour = n;
        self.hour = per;
        self
    }
}

/// One spend user. `id` and `uuid` are assigned by the simulator when
/// empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillUser {
    pub id: String,
    pub uuid: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub role: String,
    pub retired: bool,
    pub created_time: String,
}

impl BillUser {
    pub fn new(email: &str, first: &str, last: &str, role: &str) -> Self {
        BillUser {
            email: email.to_string(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            role: role.to_string(),
            ..BillUser::default()
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "uuid": self.uuid,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "role": self.role,
            "retired": self.retired,
            "createdTime": self.created_time,
        })
    }
}

#[derive(Debug, Default)]
struct Tenant {
    /// Keyed by listing order (creation order; negative for shifted-in).
    users: BTreeMap<i64, BillUser>,
    effects: EffectLog,
    next: i64,
    next_front: i64,
    console: console::ConsoleState,
}

impl Tenant {
    fn insert(&mut self, mut u: BillUser, order: Option<i64>) -> BillUser {
        self.next += 1;
        let n = self.next;
        if u.id.is_empty() {
            u.id = URL_SAFE_NO_PAD.encode(format!("User:{:06}", n + 100_000));
        }
        if u.uuid.is_empty() {
            u.uuid = format!("usr_{:08x}-b111-4e00-8000-{:012x}", n, n);
        }
        if u.created_time.is_empty() {
            u.created_time = now_text();
        }
        self.users.insert(order.unwrap_or(n), u.clone());
        u
    }

    fn find(&self, id: &str) -> Option<(i64, &BillUser)> {
        self.users
            .iter()
            .find(|(_, u)| u.id == id || u.uuid == id)
            .map(|(k, u)| (*k, u))
    }
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

struct Shared {
    config: BillSimConfig,
    core: Core,
    tenant: Mutex<Tenant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Inspect and steer a running BILL simulator. Cheap to clone.
#[derive(Clone)]
pub struct BillHandle(Arc<Shared>);

common::fault_controls!(BillHandle);

impl BillHandle {
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    /// Every user, retired ones included, in listing order.
    pub fn users(&self) -> Vec<BillUser> {
        self.0.lock().users.values().cloned().collect()
    }
    /// The unretired user with this address, else the latest retired one.
    pub fn user_by_email(&self, email: &str) -> Option<BillUser> {
        let t = self.0.lock();
        let all: Vec<&BillUser> = t
            .users
            .values()
            .filter(|u| u.email.eq_ignore_ascii_case(email))
            .collect();
        all.iter()
            .find(|u| !u.retired)
            .or(all.last())
            .map(|u| (*u).clone())
    }
    /// Adds a user directly (setup; no effect logged).
    pub fn put_user(&self, user: BillUser) -> BillUser {
        self.0.lock().insert(user, None)
    }
}

pub type RunningBill = Running<BillHandle>;

impl Running<BillHandle> {
    /// The API base URL, e.g. `http://127.0.0.1:4711/connect`.
    pub fn url(&self) -> String {
        format!("{}{BASE_PATH}", self.base_url())
    }
}

pub struct BillSim;

impl BillSim {
    pub async fn start(config: BillSimConfig) -> Result<RunningBill, SimError> {
        let mut tenant = Tenant::default();
        for u in &config.users {
            tenant.insert(u.clone(), None);
        }
        let shared = Arc::new(Shared {
            core: Core::new(
                vec![RateWindow {
                    max_requests: config.requests_per_hour,
                    per: config.hour,
                }],
                Some(config.max_concurrent),
            )
            .with_latency(config.latency),
            tenant: Mutex::new(tenant),
            config,
        });
        let routes = Router::new()
            .route(
                &format!("{BASE_PATH}/v3/spend/users"),
                get(list_users).post(create_user),
            )
            .route(
                &format!("{BASE_PATH}/v3/spend/users/current"),
                get(current_user),
            )
            .route(
                &format!("{BASE_PATH}/v3/spend/users/{{id}}"),
                get(get_user).delete(retire_user),
            );
        let host: Arc<dyn FaultHost> = shared.clone();
        // The console's pages are outside the API's token check: they have
        // their own sign-in.
        let app = common::with_faults(routes, host)
            .merge(console::routes())
            .with_state(shared.clone());
        let port = shared.config.port;
        common::serve("bill_spend", port, app, BillHandle(shared)).await
    }
}

fn bill_error(http: StatusCode, code: &str, category: &str, message: &str) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!([{
            "timestamp": now_text(),
            "code": code,
            "severity": "ERROR",
            "category": category,
            "message": message,
        }])
        .to_string(),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    bill_error(StatusCode::BAD_REQUEST, "BDC_1001", "VALIDATION", message)
}

fn ok_json(v: Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

impl FaultHost for Shared {
    fn core(&self) -> &Core {
        &self.core
    }
    fn vendor_error(&self, http: StatusCode, status: u16, message: &str) -> Response {
        bill_error(http, &format!("HTTP_{status}"), "DOWNSTREAM", message)
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = bill_error(
            StatusCode::TOO_MANY_REQUESTS,
            RATE_LIMIT_CODE,
            "RATE_LIMIT",
            "Max requests or concurrent requests exceeded for this developer key",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, _path: &str) -> Result<(), Response> {
        match headers.get("apiToken").and_then(|v| v.to_str().ok()) {
            Some(t) if t == self.config.api_token => Ok(()),
            _ => Err(bill_error(
                StatusCode::UNAUTHORIZED,
                "BDC_1109",
                "AUTHENTICATION",
                "Invalid or missing apiToken header",
            )),
        }
    }
    fn shift_listing(&self) {
        let mut t = self.lock();
        t.next_front -= 1;
        let n = -t.next_front;
        let order = t.next_front;
        let u = t.insert(
            BillUser::new(
                &format!("shifted{n}@example.com"),
                "Shifted",
                "In",
                "MEMBER",
            ),
            Some(order),
        );
        t.effects
            .push(&u.id, &u.email, EffectKind::Created, "console");
    }
}

type St = State<Arc<Shared>>;

fn encode_cursor(order: i64, retired: bool) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{order}:{retired}"))
}

fn decode_cursor(t: &str) -> Option<(i64, bool)> {
    let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let mut it = s.strip_prefix("after:")?.split(':');
    let order = it.next()?.parse().ok()?;
    let retired = it.next()?.parse().ok()?;
    Some((order, retired))
}

async fn list_users(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let max = match q.get("max").map(|m| m.trim().parse::<usize>()) {
        None => 20,
        Some(Ok(m)) if (1..=100).contains(&m) => m,
        Some(_) => return bad_request("max must be an integer from 1 to 100"),
    };
    let retired = match q.get("filters").map(String::as_str) {
        None | Some("") => false,
        Some(f) if f.replace(' ', "").eq_ignore_ascii_case("retired:eq:true") => true,
        Some(f) if f.replace(' ', "").eq_ignore_ascii_case("retired:eq:false") => false,
        Some(f) => return bad_request(&format!("unsupported filters value {f:?}")),
    };
    let mut after: Option<i64> = None;
    if let Some(tok) = q.get("nextPage").filter(|t| !t.is_empty())
        && !ActiveFault::repeat_page(fault)
    {
        match decode_cursor(tok) {
            Some((order, r)) if r == retired => after = Some(order),
            _ => return bad_request("nextPage is not a valid page token for this query"),
        }
    }
    let t = sh.lock();
    let mut rows = t
        .users
        .iter()
        .filter(|(k, u)| u.retired == retired && after.is_none_or(|a| **k > a));
    let page: Vec<(i64, &BillUser)> = rows.by_ref().take(max).map(|(k, u)| (*k, u)).collect();
    let more = rows.next().is_some();
    let next = match (more, page.last()) {
        (true, Some((k, _))) => json!(encode_cursor(*k, retired)),
        _ => Value::Null,
    };
    ok_json(json!({
        "results": page.iter().map(|(_, u)| u.to_json()).collect::<Vec<_>>(),
        "nextPage": next,
        "prevPage": Value::Null,
    }))
}

async fn create_user(State(sh): St, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON");
    };
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let (first, last, email, role) = (
        field("firstName"),
        field("lastName"),
        field("email"),
        field("role"),
    );
    for (name, v) in [
        ("firstName", &first),
        ("lastName", &last),
        ("email", &email),
        ("role", &role),
    ] {
        if v.is_empty() {
            return bad_request(&format!("{name} is required"));
        }
    }
    if !email.contains('@') || email.contains(' ') {
        return bad_request(&format!("{email:?} is not a valid email address"));
    }
    if !ROLES.contains(&role.as_str()) {
        return bad_request(&format!(
            "role {role:?} is invalid; expected one of ADMIN, AUDITOR, BOOKKEEPER, MEMBER"
        ));
    }
    let mut t = sh.lock();
    if t.users
        .values()
        .any(|u| !u.retired && u.email.eq_ignore_ascii_case(&email))
    {
        return bad_request(&format!("A user with email {email} already exists"));
    }
    let u = t.insert(BillUser::new(&email, &first, &last, &role), None);
    t.effects.push(&u.id, &u.email, EffectKind::Created, "api");
    ok_json(u.to_json())
}

fn not_found(id: &str) -> Response {
    bill_error(
        StatusCode::NOT_FOUND,
        "BDC_1145",
        "NOT_FOUND",
        &format!("User {id} not found"),
    )
}

/// The token's own user: an integration user with the configured role.
async fn current_user(State(sh): St) -> Response {
    ok_json(json!({
        "id": "VXNlcjpBUEk",
        "uuid": "usr_api-token-owner",
        "firstName": "API",
        "lastName": "Token",
        "email": "api-owner@example.com",
        "role": sh.config.token_user_role,
        "retired": false,
    }))
}

async fn get_user(State(sh): St, Path(id): Path<String>) -> Response {
    let t = sh.lock();
    match t.find(&id) {
        Some((_, u)) => ok_json(u.to_json()),
        None => not_found(&id),
    }
}

async fn retire_user(State(sh): St, Path(id): Path<String>) -> Response {
    let mut t = sh.lock();
    let Some((key, _)) = t.find(&id) else {
        return not_found(&id);
    };
    let Some(u) = t.users.get_mut(&key) else {
        return not_found(&id);
    };
    if u.retired {
        return ok_json(u.to_json());
    }
    u.retired = true;
    let u = u.clone();
    t.effects
        .push(&u.id, &u.email, EffectKind::Deactivated, "api");
    ok_json(u.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(-3, true)), Some((-3, true)));
        assert_eq!(decode_cursor("garbage"), None);
    }
}
