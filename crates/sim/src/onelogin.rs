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
//! * Roles as app access, for roster's `idp` path: `GET /api/2/roles?name=`
//!   (exact name); `GET /api/2/roles/{id}/users` (same paging) → the role's
//!   users; `POST /api/2/roles/{id}/users` with `[userId, …]` → 200
//!   `[{id}]` (adding a member again changes nothing);
//!   `DELETE /api/2/roles/{id}/users` with `[userId, …]` → 204.
//!   `GET /api/2/users?email=` filters by address.
//! * Apps ([`OneLoginApp`]) with provisioning: `GET /api/2/apps/{id}` →
//!   `{id, name, provisioning:{enabled}}`; `GET /api/2/users/{id}/apps` →
//!   the apps the user holds through their roles, each with
//!   `provisioning_enabled`, `provisioning_status` (`provisioned` or
//!   `failed`), `provisioning_state` and `provisioning_error`. A role change
//!   runs provisioning inline; [`OneLoginHandle::fail_provisioning`] makes
//!   it fail for a user (a failed deprovisioning leaves the app listed as
//!   `failed`). [S]: the provisioning fields on a user's apps follow the
//!   names OneLogin's SDKs use; their values are the simulator's.
//!   Membership changes are in the effect log.
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
    pub apps: Vec<OneLoginApp>,
}

/// An app whose access comes from roles, provisioning downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneLoginApp {
    pub id: u64,
    pub name: String,
    pub provisioning_enabled: bool,
    /// Names of the roles that grant the app.
    pub roles: Vec<String>,
}

impl OneLoginApp {
    pub fn new(id: u64, name: &str, roles: &[&str]) -> Self {
        OneLoginApp {
            id,
            name: name.to_string(),
            provisioning_enabled: true,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// One user's provisioning state in one app.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AppState {
    status: String,
    state: String,
    error: Option<String>,
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
            apps: Vec::new(),
        }
    }
    pub fn with_app(mut self, app: OneLoginApp) -> Self {
        self.apps.push(app);
        self
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
    apps: Vec<OneLoginApp>,
    /// (app id, user id) → provisioning state; absent = not provisioned.
    app_states: BTreeMap<(u64, u64), AppState>,
    /// email (lower-cased) → why provisioning fails.
    failing: BTreeMap<String, String>,
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
    fn role_named(&self, name: &str) -> Option<u64> {
        self.roles
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
    }

    /// Runs provisioning of the user for every app, as a role change would.
    fn sync_apps(&mut self, uid: u64) {
        let Some(u) = self.users.get(&uid).cloned() else {
            return;
        };
        let failure = self.failing.get(&u.email.to_lowercase()).cloned();
        for app in self.apps.clone() {
            let in_scope = app
                .roles
                .iter()
                .filter_map(|r| self.role_named(r))
                .any(|r| u.role_ids.contains(&r));
            let key = (app.id, uid);
            let present = self.app_states.contains_key(&key);
            if !app.provisioning_enabled {
                continue;
            }
            match (in_scope, &failure) {
                (true, None) => {
                    self.app_states.insert(
                        key,
                        AppState {
                            status: "provisioned".into(),
                            state: "provisioned".into(),
                            error: None,
                        },
                    );
                }
                (true, Some(f)) => {
                    self.app_states.insert(
                        key,
                        AppState {
                            status: "failed".into(),
                            state: "provisioning".into(),
                            error: Some(f.clone()),
                        },
                    );
                }
                (false, None) => {
                    self.app_states.remove(&key);
                }
                (false, Some(f)) if present => {
                    self.app_states.insert(
                        key,
                        AppState {
                            status: "failed".into(),
                            state: "deprovisioning".into(),
                            error: Some(f.clone()),
                        },
                    );
                }
                (false, Some(_)) => {}
            }
        }
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
    /// Every change made through the API (memberships added and removed,
    /// sessions revoked), in order.
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
    /// The emails of a role's members.
    pub fn role_members(&self, name: &str) -> Vec<String> {
        let a = self.0.lock();
        let Some(rid) = a.role_named(name) else {
            return Vec::new();
        };
        a.users
            .values()
            .filter(|u| u.role_ids.contains(&rid))
            .map(|u| u.email.clone())
            .collect()
    }
    /// The user's provisioning status in the app (`provisioned`,
    /// `failed`), `None` when not provisioned.
    pub fn app_status(&self, app: u64, email: &str) -> Option<String> {
        let a = self.0.lock();
        let uid = a.find(email)?;
        a.app_states.get(&(app, uid)).map(|s| s.status.clone())
    }
    pub fn set_provisioning(&self, app: u64, enabled: bool) -> bool {
        let mut a = self.0.lock();
        match a.apps.iter_mut().find(|x| x.id == app) {
            Some(x) => {
                x.provisioning_enabled = enabled;
                true
            }
            None => false,
        }
    }
    /// Provisioning this user fails from now on with `reason`.
    pub fn fail_provisioning(&self, email: &str, reason: &str) {
        self.0
            .lock()
            .failing
            .insert(email.to_lowercase(), reason.to_string());
    }
    /// The mapping is fixed: the user's provisioning runs again.
    pub fn clear_provisioning_failure(&self, email: &str) {
        let mut a = self.0.lock();
        a.failing.remove(&email.to_lowercase());
        if let Some(uid) = a.find(email) {
            a.sync_apps(uid);
        }
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
        a.apps = config.apps.clone();
        let uids: Vec<u64> = a.users.keys().copied().collect();
        for uid in uids {
            a.sync_apps(uid);
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
            .route(
                "/api/2/roles/{id}/users",
                get(role_users)
                    .post(add_role_users)
                    .delete(remove_role_users),
            )
            .route("/api/2/apps/{id}", get(get_app))
            .route("/api/2/users/{id}/apps", get(user_apps))
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
        .filter(|u| {
            q.get("email")
                .is_none_or(|e| u.email.eq_ignore_ascii_case(e.trim()))
        })
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
        .filter(|(_, name)| q.get("name").is_none_or(|n| n == *name))
        .map(|(id, name)| (*id, json!({"id": id, "name": name})))
        .collect();
    page(rows, &q, ActiveFault::repeat_page(fault))
}

fn not_found(what: &str) -> Response {
    ol_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("{what} not found"),
    )
}

async fn role_users(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Path(id): Path<u64>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let a = sh.lock();
    if !a.roles.contains_key(&id) {
        return not_found("role");
    }
    let rows: Vec<(u64, Value)> = a
        .users
        .values()
        .filter(|u| u.role_ids.contains(&id))
        .map(|u| {
            (
                u.id,
                json!({"id": u.id, "email": u.email, "username": u.username,
                       "name": format!("{} {}", u.firstname, u.lastname)}),
            )
        })
        .collect();
    drop(a);
    page(rows, &q, ActiveFault::repeat_page(fault))
}

fn user_ids(body: &[u8]) -> Option<Vec<u64>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
        .collect()
}

async fn add_role_users(State(sh): St, Path(id): Path<u64>, body: axum::body::Bytes) -> Response {
    change_role(&sh, id, &body, true)
}

async fn remove_role_users(
    State(sh): St,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    change_role(&sh, id, &body, false)
}

fn change_role(sh: &Shared, rid: u64, body: &[u8], add: bool) -> Response {
    let Some(ids) = user_ids(body) else {
        return ol_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UnprocessableEntityError",
            "Validation failed: the body must be an array of user ids",
        );
    };
    let mut a = sh.lock();
    let Some(role) = a.roles.get(&rid).cloned() else {
        return not_found("role");
    };
    if let Some(missing) = ids.iter().find(|u| !a.users.contains_key(u)) {
        return not_found(&format!("user {missing}"));
    }
    for uid in &ids {
        let Some(u) = a.users.get_mut(uid) else {
            continue;
        };
        let had = u.role_ids.contains(&rid);
        if had == add {
            continue;
        }
        if add {
            u.role_ids.push(rid);
        } else {
            u.role_ids.retain(|r| *r != rid);
        }
        u.updated_at = Some(OffsetDateTime::now_utc());
        let email = u.email.clone();
        let kind = if add {
            EffectKind::MemberAdded {
                group: role.clone(),
            }
        } else {
            EffectKind::MemberRemoved {
                group: role.clone(),
            }
        };
        a.effects.push(&uid.to_string(), &email, kind, "api");
        a.sync_apps(*uid);
    }
    if add {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Value::Array(ids.iter().map(|i| json!({"id": i})).collect()).to_string(),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn get_app(State(sh): St, Path(id): Path<u64>) -> Response {
    let a = sh.lock();
    match a.apps.iter().find(|x| x.id == id) {
        Some(app) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"id": app.id, "name": app.name, "visible": true,
                   "provisioning": {"enabled": app.provisioning_enabled}})
            .to_string(),
        )
            .into_response(),
        None => not_found("app"),
    }
}

async fn user_apps(State(sh): St, Path(id): Path<u64>) -> Response {
    let a = sh.lock();
    if !a.users.contains_key(&id) {
        return not_found("user");
    }
    let list: Vec<Value> = a
        .apps
        .iter()
        .filter_map(|app| {
            let s = a.app_states.get(&(app.id, id))?;
            Some(json!({
                "id": app.id,
                "name": app.name,
                "provisioning_enabled": app.provisioning_enabled,
                "provisioning_status": s.status,
                "provisioning_state": s.state,
                "provisioning_error": s.error,
            }))
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Array(list).to_string(),
    )
        .into_response()
}
