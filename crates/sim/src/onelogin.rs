//! A local OneLogin account: API v2 users and roles, and the token
//! endpoint (vendor-apis.md §5).
//!
//! # API
//!
//! * `POST /auth/oauth2/v2/token` with `{"grant_type":"client_credentials"}`
//!   and either `Authorization: client_id:<id>, client_secret:<secret>`
//!   (OneLogin's own form) or `Basic base64(id:secret)` →
//!   `{access_token, token_type:"bearer", expires_in, …}`. Other routes want
//!   `Authorization: Bearer <token>`; otherwise 401
//!   `{"statusCode":401,"name":"Unauthorized","message":"Authentication Failure"}`.
//! * `GET /api/2/users` (`limit` ≤ 50, default 50; `cursor`;
//!   `updated_since`, ISO 8601): a JSON array; the next page's cursor in
//!   the `After-Cursor` response header (absent on the last page),
//!   `Total-Count` the number of matching users. Users: `id` (number),
//!   `email`, `username`, `firstname`, `lastname`, `status` (0–8, see
//!   roster's lifecycle table), `state`, `department`, `title`,
//!   `manager_user_id`, `role_ids`, `custom_attributes`, `updated_at`.
//! * `GET /api/2/roles` (same paging): `[{id, name}]`.
//! * `PUT /api/1/users/{id}/logout` (API v1 "Log User Out"; a credential
//!   with *Manage users* or *Manage All*): 200 `{"status":{"error":false,
//!   "code":200,"type":"success","message":"Success"}}` and a
//!   `SessionsRevoked { tokens: false }` effect (it ends the OneLogin
//!   session, not sessions the apps opened); a non-numeric id → 400, an
//!   unknown user → 404, in v1's `status` envelope.
//!
//! [S]/[U]: the role ids on the user and the header names follow
//! OneLogin's v2 docs as quoted in vendor-apis.md; details not found there
//! are the simulator's choice. Deleted users simply vanish: `updated_since`
//! never shows a deletion.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

pub const TOKEN_PATH: &str = "/auth/oauth2/v2/token";

#[derive(Clone, Debug)]
pub struct OneLoginSimConfig {
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    pub rate_limits: Vec<RateWindow>,
    pub users: Vec<OneLoginUser>,
    /// Role names with the emails of their members.
    pub roles: Vec<(String, Vec<String>)>,
}

impl OneLoginSimConfig {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        OneLoginSimConfig {
            port: 0,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            rate_limits: Vec::new(),
            users: Vec::new(),
            roles: Vec::new(),
        }
    }
    pub fn with_user(mut self, u: OneLoginUser) -> Self {
        self.users.push(u);
        self
    }
    pub fn with_role(mut self, name: &str, emails: &[&str]) -> Self {
        self.roles.push((
            name.to_string(),
            emails.iter().map(|e| e.to_string()).collect(),
        ));
        self
    }
    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }
}

/// A OneLogin user. `id` is assigned when 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneLoginUser {
    pub id: u64,
    pub email: String,
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    /// 0 unactivated, 1 active, 2 suspended, 3 locked, 4 password
    /// expired, 5 awaiting password reset, 7 password pending, 8 security
    /// questions required.
    pub status: u8,
    pub department: Option<String>,
    pub title: Option<String>,
    pub manager_user_id: Option<u64>,
    pub role_ids: Vec<u64>,
    pub custom_attributes: BTreeMap<String, String>,
    updated_at: Option<OffsetDateTime>,
}

impl OneLoginUser {
    pub fn new(email: &str, first: &str, last: &str) -> Self {
        OneLoginUser {
            id: 0,
            email: email.to_string(),
            username: email.to_string(),
            firstname: first.to_string(),
            lastname: last.to_string(),
            status: 1,
            department: None,
            title: None,
            manager_user_id: None,
            role_ids: Vec::new(),
            custom_attributes: BTreeMap::new(),
            updated_at: None,
        }
    }
    pub fn with_status(mut self, status: u8) -> Self {
        self.status = status;
        self
    }
    pub fn with_department(mut self, d: &str) -> Self {
        self.department = Some(d.to_string());
        self
    }
    pub fn with_custom(mut self, k: &str, v: &str) -> Self {
        self.custom_attributes.insert(k.to_string(), v.to_string());
        self
    }

    fn to_json(&self) -> Value {
        let at = self
            .updated_at
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        json!({
            "id": self.id,
            "email": self.email,
            "username": self.username,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "status": self.status,
            "state": 1,
            "department": self.department,
            "title": self.title,
            "company": null,
            "manager_user_id": self.manager_user_id,
            "external_id": null,
            "role_ids": self.role_ids,
            "custom_attributes": self.custom_attributes,
            "created_at": "2026-01-05T09:00:00.000Z",
            "updated_at": at,
        })
    }
}

#[derive(Debug, Default)]
struct Account {
    users: BTreeMap<u64, OneLoginUser>,
    roles: BTreeMap<u64, String>,
    tokens: std::collections::BTreeSet<String>,
    next: u64,
    /// Log-outs, in order (the simulator's effect log).
    effects: EffectLog,
}

impl Account {
    fn insert(&mut self, mut u: OneLoginUser) -> OneLoginUser {
        self.next += 1;
        if u.id == 0 {
            u.id = 50_000 + self.next;
        }
        u.updated_at = Some(OffsetDateTime::now_utc());
        self.users.insert(u.id, u.clone());
        u
    }
    fn find(&self, id_or_email: &str) -> Option<u64> {
        self.users
            .values()
            .find(|u| u.id.to_string() == id_or_email || u.email.eq_ignore_ascii_case(id_or_email))
            .map(|u| u.id)
    }
}

struct Shared {
    config: OneLoginSimConfig,
    core: Core,
    account: Mutex<Account>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct OneLoginHandle(Arc<Shared>);

/// v1's answer envelope.
fn v1_status(http: StatusCode, kind: &str, message: &str) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"status": {
            "error": !http.is_success(),
            "code": http.as_u16(),
            "type": kind,
            "message": message,
        }})
        .to_string(),
    )
        .into_response()
}

/// `PUT /api/1/users/{id}/logout`.
async fn log_out(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u64>() else {
        return v1_status(StatusCode::BAD_REQUEST, "bad request", "ID is incorrect");
    };
    let mut a = sh.lock();
    let Some(u) = a.users.get(&n) else {
        return v1_status(StatusCode::NOT_FOUND, "not found", "User not found");
    };
    let email = u.email.clone();
    a.effects.push(
        &id,
        &email,
        EffectKind::SessionsRevoked { tokens: false },
        "api",
    );
    v1_status(StatusCode::OK, "success", "Success")
}

common::fault_controls!(OneLoginHandle);

impl OneLoginHandle {
    /// Log-outs (`PUT /api/1/users/{id}/logout`), in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    pub fn users(&self) -> Vec<OneLoginUser> {
        self.0.lock().users.values().cloned().collect()
    }
    pub fn user(&self, id_or_email: &str) -> Option<OneLoginUser> {
        let a = self.0.lock();
        a.find(id_or_email).and_then(|id| a.users.get(&id).cloned())
    }
    /// Role id → name.
    pub fn roles(&self) -> BTreeMap<u64, String> {
        self.0.lock().roles.clone()
    }
    pub fn add_user(&self, u: OneLoginUser) -> OneLoginUser {
        self.0.lock().insert(u)
    }
    /// Edits a user; `updated_at` moves to now.
    pub fn update_user(&self, id_or_email: &str, edit: impl FnOnce(&mut OneLoginUser)) -> bool {
        let mut a = self.0.lock();
        let Some(id) = a.find(id_or_email) else {
            return false;
        };
        match a.users.get_mut(&id) {
            Some(u) => {
                edit(u);
                u.updated_at = Some(OffsetDateTime::now_utc());
                true
            }
            None => false,
        }
    }
    pub fn set_status(&self, id_or_email: &str, status: u8) -> bool {
        self.update_user(id_or_email, |u| u.status = status)
    }
    /// Deletes a user: it vanishes from every listing.
    pub fn delete_user(&self, id_or_email: &str) -> bool {
        let mut a = self.0.lock();
        match a.find(id_or_email) {
            Some(id) => a.users.remove(&id).is_some(),
            None => false,
        }
    }
    /// Locks out the first `n` active users (status 3); their ids.
    pub fn lockout_storm(&self, n: usize) -> Vec<u64> {
        let mut a = self.0.lock();
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for u in a.users.values_mut().filter(|u| u.status == 1).take(n) {
            u.status = 3;
            u.updated_at = Some(now);
            ids.push(u.id);
        }
        ids
    }
}

pub type RunningOneLogin = Running<OneLoginHandle>;

impl Running<OneLoginHandle> {
    /// The account's base, e.g. `http://127.0.0.1:4711` (paths `/api/2`).
    pub fn url(&self) -> String {
        self.base_url()
    }
}

pub struct OneLoginSim;

impl OneLoginSim {
    pub async fn start(config: OneLoginSimConfig) -> Result<RunningOneLogin, SimError> {
        let mut a = Account::default();
        for u in &config.users {
            a.insert(u.clone());
        }
        for (i, (name, emails)) in config.roles.iter().enumerate() {
            let rid = 900 + i as u64;
            a.roles.insert(rid, name.clone());
            for e in emails {
                if let Some(id) = a.find(e)
                    && let Some(u) = a.users.get_mut(&id)
                {
                    u.role_ids.push(rid);
                }
            }
        }
        let shared = Arc::new(Shared {
            core: Core::new(config.rate_limits.clone(), None),
            account: Mutex::new(a),
            config,
        });
        let routes = Router::new()
            .route(TOKEN_PATH, post(token))
            .route("/api/2/users", get(list_users))
            .route("/api/2/roles", get(list_roles))
            .route("/api/1/users/{id}/logout", axum::routing::put(log_out));
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve("onelogin", port, app, OneLoginHandle(shared)).await
    }
}

fn ol_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"statusCode": status.as_u16(), "name": name, "message": message}).to_string(),
    )
        .into_response()
}

impl FaultHost for Shared {
    fn core(&self) -> &Core {
        &self.core
    }
    fn vendor_error(&self, http: StatusCode, _status: u16, message: &str) -> Response {
        ol_error(http, "Internal Server Error", message)
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = ol_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Rate limit exceeded",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        if path == TOKEN_PATH {
            return Ok(());
        }
        // API v1 spells it `bearer:<token>`; v2 `Bearer <token>`.
        let v1 = || {
            let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, rest) = v.split_once(':')?;
            (path.starts_with("/api/1/") && scheme.trim().eq_ignore_ascii_case("bearer"))
                .then(|| rest.trim().to_string())
        };
        match common::bearer(headers, "Bearer").or_else(v1) {
            Some(t) if self.lock().tokens.contains(&t) => Ok(()),
            _ => Err(ol_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Authentication Failure",
            )),
        }
    }
    fn shift_listing(&self) {
        // Ids are numbers that only grow: a new user sorts last, and a
        // keyset cursor never shifts. Add one anyway (another admin).
        let mut a = self.lock();
        let n = a.next + 1;
        a.insert(OneLoginUser::new(
            &format!("shifted{n}@example.com"),
            "Shifted",
            "In",
        ));
    }
}

type St = State<Arc<Shared>>;

async fn token(State(sh): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let c = &sh.config;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = if let Some(b) = auth.strip_prefix("Basic ") {
        STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            == Some(format!("{}:{}", c.client_id, c.client_secret))
    } else {
        let parts: BTreeMap<&str, &str> = auth
            .split(',')
            .filter_map(|p| p.trim().split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        parts.get("client_id") == Some(&c.client_id.as_str())
            && parts.get("client_secret") == Some(&c.client_secret.as_str())
    };
    let grant = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("grant_type")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if !ok || grant.as_deref() != Some("client_credentials") {
        return ol_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authentication Failure",
        );
    }
    let token = format!("{:040x}", rand::random::<u128>());
    sh.lock().tokens.insert(token.clone());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "access_token": token,
            "created_at": "2026-01-05T09:00:00.000Z",
            "expires_in": 36000,
            "refresh_token": format!("{:040x}", rand::random::<u128>()),
            "token_type": "bearer",
            "account_id": 1,
        })
        .to_string(),
    )
        .into_response()
}

/// One keyset page of `rows` (id, JSON) after `cursor`, with OneLogin's
/// headers.
fn page(rows: Vec<(u64, Value)>, q: &BTreeMap<String, String>, repeat: bool) -> Response {
    let limit = match q.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => 50,
        Some(Ok(l)) if (1..=50).contains(&l) => l,
        Some(_) => {
            return ol_error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "limit must be 1..50",
            );
        }
    };
    let after = match q.get("cursor").filter(|_| !repeat) {
        None => None,
        Some(c) => match c.strip_prefix("c").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return ol_error(StatusCode::BAD_REQUEST, "Bad Request", "Invalid cursor"),
        },
    };
    let total = rows.len();
    let mut it = rows
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|a| *id > a));
    let items: Vec<(u64, Value)> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    let body = Value::Array(items.iter().map(|(_, v)| v.clone()).collect());
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        h.insert("total-count", v);
    }
    if more
        && let Some((id, _)) = items.last()
        && let Ok(v) = HeaderValue::from_str(&format!("c{id}"))
    {
        h.insert("after-cursor", v);
    }
    r
}

async fn list_users(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let since = match q.get("updated_since") {
        None => None,
        Some(s) => match OffsetDateTime::parse(s.trim(), &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                return ol_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "updated_since must be an ISO 8601 time",
                );
            }
        },
    };
    let rows: Vec<(u64, Value)> = sh
        .lock()
        .users
        .values()
        .filter(|u| since.is_none_or(|s| u.updated_at.is_some_and(|t| t >= s)))
        .map(|u| (u.id, u.to_json()))
        .collect();
    page(rows, &q, ActiveFault::repeat_page(fault))
}

async fn list_roles(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let rows: Vec<(u64, Value)> = sh
        .lock()
        .roles
        .iter()
        .map(|(id, name)| (*id, json!({"id": id, "name": name})))
        .collect();
    page(rows, &q, ActiveFault::repeat_page(fault))
}
