//! A local Google Workspace: the Admin SDK Directory API reads and
//! Google's OAuth token endpoint for service accounts (vendor-apis.md §5).
//!
//! # API
//!
//! * `POST /token` (form: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//!   `assertion=<RS256 JWT>`): the assertion must be signed by the service
//!   account's key, with `iss` = its email, `sub` = an admin to impersonate
//!   (domain-wide delegation), `scope` naming the directory read-only
//!   scopes, and an unexpired `exp`. → `{access_token, expires_in,
//!   token_type:"Bearer"}`; otherwise 400/401 `invalid_grant`.
//! * `GET /admin/directory/v1/users?customer=my_customer` (or `domain=`;
//!   `maxResults` 1–500, default 100; `pageToken`): `{users:[…],
//!   nextPageToken}`. Users: `id`, `primaryEmail`, `name{givenName,
//!   familyName}`, `suspended`, `archived`, `orgUnitPath`, `externalIds`,
//!   `relations` (manager), `organizations` (department, costCenter),
//!   `aliases`. Deleted users are not listed.
//! * `GET /admin/directory/v1/groups?customer=…` → `{groups:[{id, email,
//!   name}], nextPageToken}`; `GET /admin/directory/v1/groups/{key}/members`
//!   → `{members:[{id, email, type}], nextPageToken}`.
//! * `POST /admin/directory/v1/users/{userKey}/signOut` (userKey: the id
//!   or primary address; empty body): 204 and a `SessionsRevoked {
//!   tokens: false }` effect (Google signs the user out of web and device
//!   sessions and resets their sign-in cookies; OAuth tokens are revoked
//!   by another call). The access token must have been issued with
//!   [`SECURITY_SCOPE`], otherwise 403 `insufficientPermissions`; an
//!   unknown user → 404 `notFound`.
//! * Errors: `{"error":{"code","message","errors":[{reason}],"status"}}`;
//!   over the limit → 429 with reason `rateLimitExceeded`.
//!
//! [`TEST_SERVICE_ACCOUNT_KEY`] is a key made for these tests only: it
//! signs nothing anywhere but loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::{Value, json};

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

/// A service-account key for loopback tests only (PKCS#8 PEM).
pub const TEST_SERVICE_ACCOUNT_KEY: &str = include_str!("testdata/test-rsa-key.pem");
/// The read-only scopes a source asks for.
pub const USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUP_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// The scope `users.signOut` needs.
pub const SECURITY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";

#[derive(Clone, Debug)]
pub struct GoogleSimConfig {
    pub port: u16,
    pub service_account: String,
    /// The admin the service account may impersonate.
    pub admin: String,
    /// The service account's key (PEM); its public half checks assertions.
    pub key_pem: String,
    pub rate_limits: Vec<RateWindow>,
    pub users: Vec<GoogleUser>,
    /// Group emails with the primary emails of their members.
    pub groups: Vec<(String, Vec<String>)>,
}

impl GoogleSimConfig {
    pub fn new(service_account: impl Into<String>, admin: impl Into<String>) -> Self {
        GoogleSimConfig {
            port: 0,
            service_account: service_account.into(),
            admin: admin.into(),
            key_pem: TEST_SERVICE_ACCOUNT_KEY.to_string(),
            rate_limits: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
        }
    }
    pub fn with_user(mut self, u: GoogleUser) -> Self {
        self.users.push(u);
        self
    }
    pub fn with_group(mut self, email: &str, members: &[&str]) -> Self {
        self.groups.push((
            email.to_string(),
            members.iter().map(|m| m.to_string()).collect(),
        ));
        self
    }
    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleUser {
    pub id: String,
    pub primary_email: String,
    pub given_name: String,
    pub family_name: String,
    pub suspended: bool,
    pub archived: bool,
    pub org_unit_path: String,
    /// `externalIds` of type `organization`.
    pub employee_id: Option<String>,
    pub department: Option<String>,
    pub cost_center: Option<String>,
    /// `relations` of type `manager`.
    pub manager_email: Option<String>,
    pub aliases: Vec<String>,
}

impl GoogleUser {
    pub fn new(email: &str, given: &str, family: &str) -> Self {
        GoogleUser {
            id: String::new(),
            primary_email: email.to_string(),
            given_name: given.to_string(),
            family_name: family.to_string(),
            suspended: false,
            archived: false,
            org_unit_path: "/".into(),
            employee_id: None,
            department: None,
            cost_center: None,
            manager_email: None,
            aliases: Vec::new(),
        }
    }
    pub fn with_employee_id(mut self, id: &str) -> Self {
        self.employee_id = Some(id.to_string());
        self
    }
    pub fn with_department(mut self, d: &str) -> Self {
        self.department = Some(d.to_string());
        self
    }
    pub fn with_suspended(mut self, s: bool) -> Self {
        self.suspended = s;
        self
    }
    pub fn with_archived(mut self, a: bool) -> Self {
        self.archived = a;
        self
    }
    pub fn with_manager(mut self, email: &str) -> Self {
        self.manager_email = Some(email.to_string());
        self
    }
    pub fn with_org_unit(mut self, path: &str) -> Self {
        self.org_unit_path = path.to_string();
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "admin#directory#user",
            "id": self.id,
            "primaryEmail": self.primary_email,
            "name": {"givenName": self.given_name, "familyName": self.family_name,
                     "fullName": format!("{} {}", self.given_name, self.family_name)},
            "isAdmin": false,
            "suspended": self.suspended,
            "archived": self.archived,
            "orgUnitPath": self.org_unit_path,
            "emails": [{"address": self.primary_email, "primary": true}],
            "creationTime": "2026-01-05T09:00:00.000Z",
        });
        if !self.aliases.is_empty() {
            v["aliases"] = json!(self.aliases);
        }
        if let Some(e) = &self.employee_id {
            v["externalIds"] = json!([{"value": e, "type": "organization"}]);
        }
        if let Some(m) = &self.manager_email {
            v["relations"] = json!([{"value": m, "type": "manager"}]);
        }
        if self.department.is_some() || self.cost_center.is_some() {
            v["organizations"] = json!([{"department": self.department, "costCenter": self.cost_center, "primary": true}]);
        }
        v
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleGroup {
    pub id: String,
    pub email: String,
    pub members: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Directory {
    users: BTreeMap<i64, GoogleUser>,
    groups: BTreeMap<i64, GoogleGroup>,
    tokens: BTreeSet<String>,
    /// Tokens issued with [`SECURITY_SCOPE`].
    security_tokens: BTreeSet<String>,
    next: i64,
    next_front: i64,
    /// Sign-outs, in order (the simulator's effect log).
    effects: EffectLog,
}

impl Directory {
    fn insert(&mut self, mut u: GoogleUser, order: Option<i64>) -> GoogleUser {
        self.next += 1;
        if u.id.is_empty() {
            u.id = format!("1{:020}", self.next);
        }
        self.users.insert(order.unwrap_or(self.next), u.clone());
        u
    }
    fn find(&self, id_or_email: &str) -> Option<i64> {
        self.users
            .iter()
            .find(|(_, u)| u.id == id_or_email || u.primary_email.eq_ignore_ascii_case(id_or_email))
            .map(|(k, _)| *k)
    }
}

struct Shared {
    config: GoogleSimConfig,
    public_key: Vec<u8>,
    core: Core,
    dir: Mutex<Directory>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Directory> {
        self.dir.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct GoogleHandle(Arc<Shared>);

common::fault_controls!(GoogleHandle);

impl GoogleHandle {
    /// Sign-outs (`users.signOut`), in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    pub fn users(&self) -> Vec<GoogleUser> {
        self.0.lock().users.values().cloned().collect()
    }
    pub fn groups(&self) -> Vec<GoogleGroup> {
        self.0.lock().groups.values().cloned().collect()
    }
    pub fn add_user(&self, u: GoogleUser) -> GoogleUser {
        self.0.lock().insert(u, None)
    }
    pub fn update_user(&self, id_or_email: &str, edit: impl FnOnce(&mut GoogleUser)) -> bool {
        let mut d = self.0.lock();
        let Some(k) = d.find(id_or_email) else {
            return false;
        };
        match d.users.get_mut(&k) {
            Some(u) => {
                edit(u);
                true
            }
            None => false,
        }
    }
    pub fn delete_user(&self, id_or_email: &str) -> bool {
        let mut d = self.0.lock();
        let Some(k) = d.find(id_or_email) else {
            return false;
        };
        let Some(u) = d.users.remove(&k) else {
            return false;
        };
        for g in d.groups.values_mut() {
            g.members.remove(&u.id);
        }
        true
    }
    pub fn add_member(&self, group_email: &str, id_or_email: &str) -> bool {
        let mut d = self.0.lock();
        let Some(uid) = d
            .find(id_or_email)
            .and_then(|k| d.users.get(&k))
            .map(|u| u.id.clone())
        else {
            return false;
        };
        match d
            .groups
            .values_mut()
            .find(|g| g.email.eq_ignore_ascii_case(group_email))
        {
            Some(g) => {
                g.members.insert(uid);
                true
            }
            None => false,
        }
    }
}

pub type RunningGoogle = Running<GoogleHandle>;

impl Running<GoogleHandle> {
    /// The Directory API's base, e.g. `http://127.0.0.1:4711` (paths
    /// `/admin/directory/v1`).
    pub fn api_url(&self) -> String {
        self.base_url()
    }
    /// The token endpoint (the assertion's audience).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }
}

pub struct GoogleSim;

impl GoogleSim {
    pub async fn start(config: GoogleSimConfig) -> Result<RunningGoogle, SimError> {
        let mut d = Directory::default();
        for u in &config.users {
            d.insert(u.clone(), None);
        }
        for (email, members) in &config.groups {
            d.next += 1;
            let members = members
                .iter()
                .filter_map(|m| d.find(m))
                .filter_map(|k| d.users.get(&k).map(|u| u.id.clone()))
                .collect();
            d.groups.insert(
                d.next,
                GoogleGroup {
                    id: format!("0{:014x}", d.next),
                    email: email.clone(),
                    members,
                },
            );
        }
        let shared = Arc::new(Shared {
            public_key: common::rsa_public_key(&config.key_pem).unwrap_or_default(),
            core: Core::new(config.rate_limits.clone(), None),
            dir: Mutex::new(d),
            config,
        });
        let routes = Router::new()
            .route("/token", post(token))
            .route("/admin/directory/v1/users", get(list_users))
            .route("/admin/directory/v1/users/{key}/signOut", post(sign_out))
            .route("/admin/directory/v1/groups", get(list_groups))
            .route(
                "/admin/directory/v1/groups/{key}/members",
                get(list_members),
            );
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve("google", port, app, GoogleHandle(shared)).await
    }
}

fn google_error(http: StatusCode, reason: &str, message: &str) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"error": {
            "code": http.as_u16(),
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": http.canonical_reason().unwrap_or("").to_uppercase().replace(' ', "_"),
        }})
        .to_string(),
    )
        .into_response()
}

/// `POST /admin/directory/v1/users/{userKey}/signOut`.
async fn sign_out(State(sh): St, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let mut d = sh.lock();
    let scoped = common::bearer(&headers, "Bearer").is_some_and(|t| d.security_tokens.contains(&t));
    if !scoped {
        return google_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        );
    }
    let Some(u) = d.find(&key).and_then(|k| d.users.get(&k)) else {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Resource Not Found: userKey",
        );
    };
    let (id, email) = (u.id.clone(), u.primary_email.clone());
    d.effects.push(
        &id,
        &email,
        EffectKind::SessionsRevoked { tokens: false },
        "api",
    );
    StatusCode::NO_CONTENT.into_response()
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
    fn vendor_error(&self, http: StatusCode, _status: u16, message: &str) -> Response {
        google_error(http, "backendError", message)
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries'.",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        if path == "/token" {
            return Ok(());
        }
        match common::bearer(headers, "Bearer") {
            Some(t) if self.lock().tokens.contains(&t) => Ok(()),
            _ => Err(google_error(
                StatusCode::UNAUTHORIZED,
                "authError",
                "Invalid Credentials",
            )),
        }
    }
    fn shift_listing(&self) {
        let mut d = self.lock();
        d.next_front -= 1;
        let n = -d.next_front;
        let order = d.next_front;
        d.insert(
            GoogleUser::new(&format!("shifted{n}@example.com"), "Shifted", "In"),
            Some(order),
        );
    }
}

type St = State<Arc<Shared>>;

fn invalid_grant(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "invalid_grant", "error_description": why}).to_string(),
    )
        .into_response()
}

async fn token(State(sh): St, Form(form): Form<BTreeMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return invalid_grant("unsupported grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return invalid_grant("no assertion");
    };
    let Some(claims) = common::verify_rs256(assertion, &sh.public_key) else {
        return invalid_grant("Invalid JWT Signature.");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    if s("iss") != sh.config.service_account {
        return invalid_grant("unknown service account");
    }
    if !s("sub").eq_ignore_ascii_case(&sh.config.admin) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}).to_string(),
        )
            .into_response();
    }
    if !s("scope").split(' ').any(|x| x == USER_SCOPE) || !s("aud").ends_with("/token") {
        return invalid_grant("scope or audience");
    }
    if claims.get("exp").and_then(Value::as_u64).unwrap_or(0) <= now {
        return invalid_grant(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
        );
    }
    let token = format!("ya29.{:032x}", rand::random::<u128>());
    let mut d = sh.lock();
    d.tokens.insert(token.clone());
    if s("scope").split(' ').any(|x| x == SECURITY_SCOPE) {
        d.security_tokens.insert(token.clone());
    }
    drop(d);
    ok_json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

/// A keyset page; `pageToken` names the last key served.
fn page<T: Clone>(
    rows: Vec<(i64, T)>,
    q: &BTreeMap<String, String>,
    default: usize,
    max: usize,
    repeat: bool,
) -> Result<(Vec<T>, Option<String>), Response> {
    let limit = match q.get("maxResults").map(|l| l.trim().parse::<usize>()) {
        None => default,
        Some(Ok(l)) if (1..=max).contains(&l) => l,
        Some(_) => {
            return Err(google_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid value for maxResults",
            ));
        }
    };
    let after = match q.get("pageToken").filter(|_| !repeat) {
        None => None,
        Some(t) => match t.strip_prefix('p').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => Some(n),
            None => {
                return Err(google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "Invalid page token",
                ));
            }
        },
    };
    let mut it = rows
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| *k > a));
    let items: Vec<(i64, T)> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    let next = if more {
        items.last().map(|(k, _)| format!("p{k}"))
    } else {
        None
    };
    Ok((items.into_iter().map(|(_, t)| t).collect(), next))
}

fn customer_ok(q: &BTreeMap<String, String>) -> Result<(), Response> {
    if q.contains_key("customer") || q.contains_key("domain") {
        Ok(())
    } else {
        Err(google_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Bad Request: customer or domain is required",
        ))
    }
}

async fn list_users(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = customer_ok(&q) {
        return r;
    }
    let rows: Vec<(i64, Value)> = sh
        .lock()
        .users
        .iter()
        .map(|(k, u)| (*k, u.to_json()))
        .collect();
    match page(rows, &q, 100, 500, ActiveFault::repeat_page(fault)) {
        Ok((users, next)) => {
            let mut body = json!({"kind": "admin#directory#users", "users": users});
            if let Some(n) = next {
                body["nextPageToken"] = json!(n);
            }
            ok_json(body)
        }
        Err(r) => r,
    }
}

async fn list_groups(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = customer_ok(&q) {
        return r;
    }
    let rows: Vec<(i64, Value)> = sh
        .lock()
        .groups
        .iter()
        .map(|(k, g)| (*k, json!({"kind": "admin#directory#group", "id": g.id, "email": g.email, "name": g.email.split('@').next().unwrap_or("")})))
        .collect();
    match page(rows, &q, 200, 200, ActiveFault::repeat_page(fault)) {
        Ok((groups, next)) => {
            let mut body = json!({"kind": "admin#directory#groups", "groups": groups});
            if let Some(n) = next {
                body["nextPageToken"] = json!(n);
            }
            ok_json(body)
        }
        Err(r) => r,
    }
}

async fn list_members(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Path(key): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let d = sh.lock();
    let Some(g) = d
        .groups
        .values()
        .find(|g| g.id == key || g.email.eq_ignore_ascii_case(&key))
        .cloned()
    else {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            "Resource Not Found: groupKey",
        );
    };
    let rows: Vec<(i64, Value)> = d
        .users
        .iter()
        .filter(|(_, u)| g.members.contains(&u.id))
        .map(|(k, u)| (*k, json!({"kind": "admin#directory#member", "id": u.id, "email": u.primary_email, "role": "MEMBER", "type": "USER", "status": "ACTIVE"})))
        .collect();
    drop(d);
    match page(rows, &q, 200, 200, ActiveFault::repeat_page(fault)) {
        Ok((members, next)) => {
            let mut body = json!({"kind": "admin#directory#members", "members": members});
            if let Some(n) = next {
                body["nextPageToken"] = json!(n);
            }
            ok_json(body)
        }
        Err(r) => r,
    }
}
