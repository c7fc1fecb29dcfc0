//! Five vendors' user APIs, each in the shapes its public documentation
//! gives, for the declarative REST connector (`roster_connectors::rest`):
//! Zoom, Atlassian (organization user management), Zendesk, Asana and
//! HubSpot. One tenant model (users with an order, an effect log, the
//! shared fault switchboard of [`crate::common`]); each [`Vendor`] speaks
//! its own paths, JSON field names, paging, errors, rate-limit headers and
//! deactivation semantics.
//!
//! Documented shapes (as of 2026-12-07; `[U]` marks what the simulator had
//! to choose where no source was found):
//!
//! * **Zoom** (developers.zoom.us/docs/api/pagination; the users API
//!   reference, marketplace.zoom.us/docs/api-reference/zoom-api/users):
//!   server-to-server OAuth, `POST /oauth/token` with Basic client
//!   credentials, `grant_type=account_credentials&account_id=…`.
//!   `GET /v2/users?status=active&page_size=1..300&next_page_token=` →
//!   `{page_size, total_records, next_page_token ("" at the end), users:
//!   [{id, first_name, last_name, display_name, email, type, status}]}`;
//!   `status` defaults to `active`, so deactivated users are listed only
//!   with `status=inactive`. `POST /v2/users {action, user_info}`
//!   (`ssoCreate` makes an active user; `create` a pending one, who must
//!   confirm by email). `PATCH /v2/users/{userId}` → 204.
//!   `PUT /v2/users/{userId}/status {"action": "deactivate" | "activate"}`
//!   → 204 (deactivation removes the licences; reversible). Errors
//!   `{code, message}`: 404 code 1001 "User does not exist", 409 code 1005
//!   "User already in the account" `[U: the status of 1005]`. No
//!   rate-limit headers are documented (the api-evangelist summary of
//!   developers.zoom.us/docs/api/rate-limits); a 429 ends a burst.
//! * **Atlassian** (developer.atlassian.com/cloud/admin/organization/rest;
//!   jira.atlassian.com/browse/ID-8618 on the two paging shapes): bearer
//!   API key. `GET /admin/v1/orgs/{orgId}/users?cursor=` → `{data:
//!   [{account_id, account_type, account_status (active | inactive |
//!   closed), name, email, access_billable, links}], links: {self, next}}`
//!   where `links.next` is a full URL. Invite: `POST
//!   /admin/v2/orgs/{orgId}/users/invite {emails, sendNotification}`
//!   (jira.js `admin.inviteUsers`) `[U: invitees are listed active at
//!   once]`. `PATCH /users/{accountId}/manage/profile`; `POST
//!   /users/{accountId}/manage/lifecycle/disable` (and `/enable`) → 204.
//!   Errors `{code, message}` `[U]`.
//! * **Zendesk** (developer.zendesk.com/api-reference/introduction/pagination):
//!   Basic `{email}/token:{api_token}`. `GET
//!   /api/v2/users?page[size]=1..100&page[after]=` → `{users, meta:
//!   {has_more, after_cursor, before_cursor}, links: {next, prev}}`.
//!   `POST /api/v2/users {"user": {...}}` → 201 `{"user"}`; a taken email is
//!   422 `RecordInvalid` with `DuplicateValue`. `PUT /api/v2/users/{id}
//!   {"user": {"suspended": true}}` suspends (reversible). 404
//!   `{"error": "RecordNotFound"}`. Headers `X-Rate-Limit`,
//!   `X-Rate-Limit-Remaining`, `ratelimit-reset` (seconds) on list
//!   endpoints (developer.zendesk.com best practices for avoiding rate
//!   limiting); 429 with `Retry-After`.
//! * **Asana** (the workspaces API: developers.asana.com, as mirrored by
//!   the asana crates' OpenAPI docs): bearer PAT. `GET
//!   /api/1.0/workspaces/{gid}/users?limit=1..100&offset=&opt_fields=` →
//!   `{data: [{gid, resource_type, name}], next_page: {offset, path, uri} |
//!   null}`; `email` only when `opt_fields` asks for it. `POST
//!   /workspaces/{gid}/addUser {"data": {"user": email}}` returns the user
//!   (adding a member again changes nothing); `POST
//!   /workspaces/{gid}/removeUser {"data": {"user": gid | email}}` → `{"data":
//!   {}}` and the user leaves the listing. Errors `{"errors": [{message}]}`;
//!   429 with `Retry-After`.
//! * **HubSpot** (developers.hubspot.com settings user provisioning v3):
//!   bearer private-app token. `GET /settings/v3/users?limit=&after=` →
//!   `{results: [{id, email, firstName, lastName, roleIds, superAdmin}],
//!   paging: {next: {after, link}}}` (no `paging` on the last page).
//!   `POST /settings/v3/users {email, firstName, lastName,
//!   sendWelcomeEmail}` → 201; `PUT /settings/v3/users/{userId}` → 200;
//!   `DELETE /settings/v3/users/{userId}` → 204, the user is gone. Errors
//!   `{status: "error", message, category}`; an existing email is 409
//!   `CONFLICT` `[U]`. Headers `X-HubSpot-RateLimit-Max`,
//!   `X-HubSpot-RateLimit-Remaining`, `X-HubSpot-RateLimit-Interval-Milliseconds`
//!   (HubSpot developer changelog, 2018-11-06 and the OAuth follow-up).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

/// Which vendor the simulator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Zoom,
    Atlassian,
    Zendesk,
    Asana,
    HubSpot,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Zoom => "zoom",
            Vendor::Atlassian => "atlassian",
            Vendor::Zendesk => "zendesk",
            Vendor::Asana => "asana",
            Vendor::HubSpot => "hubspot",
        }
    }

    /// Whether a removed user leaves the listing (Asana, HubSpot) rather
    /// than staying listed inactive; Zoom's default listing shows active
    /// users only.
    pub fn lists_inactive(self) -> bool {
        matches!(self, Vendor::Atlassian | Vendor::Zendesk)
    }
}

/// One user of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimUser {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The one name field (Zendesk, Atlassian, Asana).
    pub name: String,
    pub active: bool,
    /// Zoom: created with `action=create`, not yet confirmed.
    pub pending: bool,
    /// Asana: removed from the workspace (kept, so a re-add finds it).
    pub removed: bool,
}

#[derive(Clone, Debug)]
pub struct RestAppConfig {
    pub vendor: Vendor,
    pub port: u16,
    /// The API token, password or OAuth client secret.
    pub secret: String,
    /// The Basic user (Zendesk `admin@x/token`) or OAuth client id (Zoom).
    pub user: String,
    /// The org id (Atlassian), workspace gid (Asana) or account id (Zoom).
    pub tenant: String,
    /// Page size of endpoints that take none (Atlassian).
    pub fixed_page_size: usize,
    pub rate_limits: Vec<RateWindow>,
    pub seed: usize,
}

impl RestAppConfig {
    pub fn new(vendor: Vendor) -> Self {
        RestAppConfig {
            vendor,
            port: 0,
            secret: "sim-secret".into(),
            user: match vendor {
                Vendor::Zendesk => "admin@example.com/token".into(),
                _ => "sim-client".into(),
            },
            tenant: "T1".into(),
            fixed_page_size: 100,
            rate_limits: Vec::new(),
            seed: 0,
        }
    }
    pub fn with_seed(mut self, n: usize) -> Self {
        self.seed = n;
        self
    }
    pub fn with_fixed_page_size(mut self, n: usize) -> Self {
        self.fixed_page_size = n.max(1);
        self
    }
    pub fn with_rate_limits(mut self, w: Vec<RateWindow>) -> Self {
        self.rate_limits = w;
        self
    }
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

#[derive(Debug, Default)]
struct Tenant {
    users: BTreeMap<i64, SimUser>,
    effects: EffectLog,
    tokens: BTreeMap<String, Instant>,
    tokens_issued: u64,
    next: i64,
    next_front: i64,
}

impl Tenant {
    fn insert(&mut self, vendor: Vendor, mut u: SimUser, order: Option<i64>) -> SimUser {
        self.next += 1;
        let n = self.next;
        if u.id.is_empty() {
            u.id = match vendor {
                Vendor::Zoom => format!("z8{n:06}KqA"),
                Vendor::Atlassian => format!("5b10ac8d82e05b22cc7d{n:04}"),
                Vendor::Zendesk => format!("{}", 35_436_000 + n),
                Vendor::Asana => format!("12000000{n:05}"),
                Vendor::HubSpot => format!("{}", 2_000_000 + n),
            };
        }
        if u.name.is_empty() {
            u.name = format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_string();
        }
        self.users.insert(order.unwrap_or(n), u.clone());
        u
    }

    fn find(&mut self, id_or_email: &str) -> Option<&mut SimUser> {
        self.users
            .values_mut()
            .find(|u| u.id == id_or_email || u.email.eq_ignore_ascii_case(id_or_email))
    }
}

struct Shared {
    config: RestAppConfig,
    core: Core,
    tenant: Mutex<Tenant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn vendor(&self) -> Vendor {
        self.config.vendor
    }
}

/// Inspects and changes a running simulator.
#[derive(Clone)]
pub struct RestAppHandle(Arc<Shared>);

common::fault_controls!(RestAppHandle);

impl RestAppHandle {
    pub fn vendor(&self) -> Vendor {
        self.0.vendor()
    }
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    /// Every user the tenant holds (removed Asana members included, with
    /// `removed` set).
    pub fn users(&self) -> Vec<SimUser> {
        self.0.lock().users.values().cloned().collect()
    }
    /// The users the connector's listing shows: Zoom's default listing is
    /// active users; Asana's is workspace members.
    pub fn listed(&self) -> Vec<SimUser> {
        let v = self.vendor();
        self.users()
            .into_iter()
            .filter(|u| match v {
                Vendor::Zoom => u.active && !u.pending,
                Vendor::Asana => !u.removed,
                _ => true,
            })
            .collect()
    }
    pub fn tokens_issued(&self) -> u64 {
        self.0.lock().tokens_issued
    }
}

pub type RunningRestApp = Running<RestAppHandle>;

impl Running<RestAppHandle> {
    /// The API base the connector is configured with.
    pub fn url(&self) -> String {
        match self.vendor() {
            Vendor::Zoom => format!("{}/v2", self.base_url()),
            Vendor::Asana => format!("{}/api/1.0", self.base_url()),
            _ => self.base_url(),
        }
    }
    /// The OAuth token endpoint (Zoom).
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }
}

pub struct RestAppSim;

impl RestAppSim {
    pub async fn start(config: RestAppConfig) -> Result<RunningRestApp, SimError> {
        let v = config.vendor;
        let mut tenant = Tenant::default();
        for i in 0..config.seed {
            tenant.insert(
                v,
                SimUser {
                    email: format!("user{i}@example.com"),
                    first_name: format!("First{i}"),
                    last_name: format!("Last{i}"),
                    active: true,
                    ..SimUser::default()
                },
                None,
            );
        }
        let shared = Arc::new(Shared {
            core: Core::new(config.rate_limits.clone(), None),
            tenant: Mutex::new(tenant),
            config,
        });
        let routes: Router<Arc<Shared>> = match v {
            Vendor::Zoom => Router::new()
                .route("/oauth/token", post(zoom_token))
                .route("/v2/users", get(list).post(zoom_create))
                .route("/v2/users/{id}", patch(zoom_update))
                .route("/v2/users/{id}/status", put(zoom_status)),
            Vendor::Atlassian => Router::new()
                .route("/admin/v1/orgs/{org}/users", get(list_in))
                .route("/admin/v2/orgs/{org}/users/invite", post(atlassian_invite))
                .route("/users/{id}/manage/profile", patch(atlassian_profile))
                .route(
                    "/users/{id}/manage/lifecycle/{what}",
                    post(atlassian_lifecycle),
                ),
            Vendor::Zendesk => Router::new()
                .route("/api/v2/users", get(list).post(zendesk_create))
                .route("/api/v2/users/{id}", put(zendesk_update)),
            Vendor::Asana => Router::new()
                .route("/api/1.0/workspaces/{ws}/users", get(list_in))
                .route("/api/1.0/workspaces/{ws}/addUser", post(asana_add))
                .route("/api/1.0/workspaces/{ws}/removeUser", post(asana_remove)),
            Vendor::HubSpot => Router::new()
                .route("/settings/v3/users", get(list).post(hubspot_create))
                .route(
                    "/settings/v3/users/{id}",
                    put(hubspot_update).delete(hubspot_delete),
                ),
        };
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve(v.name(), port, app, RestAppHandle(shared)).await
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// The vendor's error body for `status`.
fn error_body(v: Vendor, status: u16, message: &str) -> Value {
    match v {
        Vendor::Zoom | Vendor::Atlassian => json!({"code": status, "message": message}),
        Vendor::Zendesk => json!({
            "error": if status == 404 { "RecordNotFound" } else if status == 422 { "RecordInvalid" } else { "InternalError" },
            "description": message,
        }),
        Vendor::Asana => {
            json!({"errors": [{"message": message, "help": "See https://developers.asana.com/docs/errors"}]})
        }
        Vendor::HubSpot => json!({
            "status": "error",
            "message": message,
            "correlationId": "00000000-0000-4000-8000-000000000000",
            "category": match status { 404 => "OBJECT_NOT_FOUND", 409 => "CONFLICT", 429 => "RATE_LIMITS", 400 => "VALIDATION_ERROR", _ => "INTERNAL_ERROR" },
        }),
    }
}

fn error(v: Vendor, status: StatusCode, message: &str) -> Response {
    json_response(status, error_body(v, status.as_u16(), message))
}

impl FaultHost for Shared {
    fn core(&self) -> &Core {
        &self.core
    }
    fn vendor_error(&self, http: StatusCode, status: u16, message: &str) -> Response {
        json_response(http, error_body(self.vendor(), status, message))
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = error(
            self.vendor(),
            StatusCode::TOO_MANY_REQUESTS,
            "You have reached the rate limit for this API. Try again later.",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        let v = self.vendor();
        let unauthorized = |m: &str| error(v, StatusCode::UNAUTHORIZED, m);
        match v {
            Vendor::Zoom => {
                if path == "/oauth/token" {
                    return Ok(());
                }
                let Some(token) = common::bearer(headers, "Bearer") else {
                    return Err(unauthorized("Invalid access token."));
                };
                match self.lock().tokens.get(&token) {
                    Some(exp) if Instant::now() < *exp => Ok(()),
                    Some(_) => Err(unauthorized("Access token is expired.")),
                    None => Err(unauthorized("Invalid access token.")),
                }
            }
            Vendor::Zendesk => {
                let ok = common::bearer(headers, "Basic")
                    .and_then(|b| STANDARD.decode(b).ok())
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .is_some_and(|c| c == format!("{}:{}", self.config.user, self.config.secret));
                if ok {
                    Ok(())
                } else {
                    Err(unauthorized("Couldn't authenticate you"))
                }
            }
            _ => match common::bearer(headers, "Bearer") {
                Some(t) if t == self.config.secret => Ok(()),
                _ => Err(unauthorized(
                    "Authentication credentials are missing or invalid",
                )),
            },
        }
    }
    fn shift_listing(&self) {
        let v = self.vendor();
        let mut t = self.lock();
        t.next_front -= 1;
        let n = -t.next_front;
        let order = t.next_front;
        let u = t.insert(
            v,
            SimUser {
                email: format!("shifted{n}@example.com"),
                first_name: "Shifted".into(),
                last_name: "In".into(),
                active: true,
                ..SimUser::default()
            },
            Some(order),
        );
        t.effects
            .push(&u.id, &u.email, EffectKind::Created, "console");
    }
    fn decorate(&self, response: &mut Response) {
        let Some((max, left, reset)) = self.core.rate_usage() else {
            return;
        };
        let names: &[(&'static str, String)] = &match self.vendor() {
            // Zoom documents no rate-limit headers (only the 429); no
            // source found for Atlassian's organization API; Asana sends
            // Retry-After on 429 only.
            Vendor::Zoom | Vendor::Atlassian | Vendor::Asana => vec![],
            Vendor::Zendesk => vec![
                ("x-rate-limit", max.to_string()),
                ("x-rate-limit-remaining", left.to_string()),
                ("ratelimit-reset", common::ceil_secs(reset).to_string()),
            ],
            Vendor::HubSpot => vec![
                ("x-hubspot-ratelimit-max", max.to_string()),
                ("x-hubspot-ratelimit-remaining", left.to_string()),
                (
                    "x-hubspot-ratelimit-interval-milliseconds",
                    reset.as_millis().to_string(),
                ),
            ],
        };
        for (k, v) in names {
            if let Ok(v) = HeaderValue::from_str(v) {
                response.headers_mut().insert(*k, v);
            }
        }
    }
}

type St = State<Arc<Shared>>;

fn user_json(v: Vendor, u: &SimUser, with_email: bool, base: &str) -> Value {
    match v {
        Vendor::Zoom => json!({
            "id": u.id, "first_name": u.first_name, "last_name": u.last_name,
            "display_name": u.name, "email": u.email, "type": 1,
            "status": if u.pending { "pending" } else if u.active { "active" } else { "inactive" },
            "role_id": "2", "created_at": "2026-01-05T09:00:00Z",
        }),
        Vendor::Atlassian => json!({
            "account_id": u.id, "account_type": "atlassian",
            "account_status": if u.active { "active" } else { "inactive" },
            "name": u.name, "picture": format!("{base}/avatar/{}", u.id), "email": u.email,
            "access_billable": u.active, "last_active": null, "product_access": [],
            "links": {"self": format!("{base}/users/{}/manage/profile", u.id)},
        }),
        Vendor::Zendesk => {
            let id: i64 = u.id.parse().unwrap_or_default();
            json!({
                "id": id, "url": format!("{base}/api/v2/users/{id}.json"), "name": u.name,
                "email": u.email, "role": "agent", "active": true, "suspended": !u.active,
                "created_at": "2026-01-05T09:00:00Z",
            })
        }
        Vendor::Asana => {
            let mut m = json!({"gid": u.id, "resource_type": "user", "name": u.name});
            if with_email {
                m["email"] = json!(u.email);
            }
            m
        }
        Vendor::HubSpot => json!({
            "id": u.id, "email": u.email, "firstName": u.first_name, "lastName": u.last_name,
            "roleIds": [], "primaryTeamId": null, "superAdmin": false,
        }),
    }
}

fn encode_cursor(order: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{order}"))
}

fn decode_cursor(t: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("k:")?
        .parse()
        .ok()
}

fn host_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn list_in(
    state: St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(tenant): Path<String>,
    q: Query<BTreeMap<String, String>>,
) -> Response {
    if tenant != state.config.tenant {
        return error(
            state.vendor(),
            StatusCode::NOT_FOUND,
            "No such organization or workspace",
        );
    }
    list(state, headers, fault, q).await
}

/// Every vendor's listing: keyset cursors over the tenant's order.
async fn list(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let v = sh.vendor();
    let bad = |m: &str| error(v, StatusCode::BAD_REQUEST, m);
    let (size_param, cursor_param, default, max) = match v {
        Vendor::Zoom => ("page_size", "next_page_token", 30, 300),
        Vendor::Atlassian => (
            "",
            "cursor",
            sh.config.fixed_page_size,
            sh.config.fixed_page_size,
        ),
        Vendor::Zendesk => ("page[size]", "page[after]", 100, 100),
        Vendor::Asana => ("limit", "offset", 100, 100),
        Vendor::HubSpot => ("limit", "after", 100, 100),
    };
    let size = match q.get(size_param).map(|s| s.trim().parse::<usize>()) {
        None => default,
        Some(Ok(n)) if (1..=max).contains(&n) => n,
        Some(_) => {
            return bad(&format!(
                "{size_param} must be a whole number from 1 to {max}"
            ));
        }
    };
    let status = q.get("status").map(String::as_str).unwrap_or("active");
    if v == Vendor::Zoom && !matches!(status, "active" | "inactive" | "pending") {
        return bad("Invalid field: status");
    }
    let mut after: Option<i64> = None;
    if let Some(c) = q.get(cursor_param).filter(|c| !c.is_empty())
        && !ActiveFault::repeat_page(fault)
    {
        match decode_cursor(c) {
            Some(n) => after = Some(n),
            None => return bad(&format!("Invalid {cursor_param}")),
        }
    }
    let with_email = q
        .get("opt_fields")
        .is_some_and(|f| f.split(',').any(|x| x.trim() == "email"));
    let base = host_base(&headers);
    let t = sh.lock();
    let mut rows = t.users.iter().filter(|(k, u)| {
        let listed = match v {
            Vendor::Zoom => match status {
                "pending" => u.pending,
                "inactive" => !u.active && !u.pending,
                _ => u.active && !u.pending,
            },
            Vendor::Asana => !u.removed,
            _ => true,
        };
        listed && after.is_none_or(|a| **k > a)
    });
    let page: Vec<(i64, &SimUser)> = rows.by_ref().take(size).map(|(k, u)| (*k, u)).collect();
    let more = rows.next().is_some();
    let next = match (more, page.last()) {
        (true, Some((k, _))) => Some(encode_cursor(*k)),
        _ => None,
    };
    let users: Vec<Value> = page
        .iter()
        .map(|(_, u)| user_json(v, u, with_email, &base))
        .collect();
    let total = t
        .users
        .values()
        .filter(|u| v != Vendor::Zoom || (u.active && !u.pending))
        .count();
    let body = match v {
        Vendor::Zoom => json!({
            "page_count": total.div_ceil(size), "page_number": 1, "page_size": size,
            "total_records": total, "next_page_token": next.clone().unwrap_or_default(),
            "users": users,
        }),
        Vendor::Atlassian => {
            let self_url = format!("{base}/admin/v1/orgs/{}/users", sh.config.tenant);
            let mut links = json!({"self": self_url});
            if let Some(n) = &next {
                links["next"] = json!(format!("{self_url}?cursor={n}"));
            }
            json!({"data": users, "links": links})
        }
        Vendor::Zendesk => {
            let url = format!("{base}/api/v2/users.json?page%5Bsize%5D={size}");
            json!({
                "users": users,
                "meta": {"has_more": more, "after_cursor": page.last().map(|(k, _)| encode_cursor(*k)),
                         "before_cursor": page.first().map(|(k, _)| encode_cursor(*k))},
                "links": {"next": next.as_ref().map(|n| format!("{url}&page%5Bafter%5D={n}")), "prev": null},
            })
        }
        Vendor::Asana => {
            let path = format!("/workspaces/{}/users?limit={size}", sh.config.tenant);
            json!({
                "data": users,
                "next_page": next.as_ref().map(|n| json!({
                    "offset": n, "path": format!("{path}&offset={n}"),
                    "uri": format!("{base}/api/1.0{path}&offset={n}"),
                })),
            })
        }
        Vendor::HubSpot => {
            let mut b = json!({"results": users});
            if let Some(n) = &next {
                b["paging"] = json!({"next": {"after": n,
                    "link": format!("{base}/settings/v3/users?limit={size}&after={n}")}});
            }
            b
        }
    };
    json_response(StatusCode::OK, body)
}

fn parse(v: Vendor, body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            error(
                v,
                StatusCode::BAD_REQUEST,
                "The request body is not a JSON object",
            )
        })
}

fn s(v: &Value, p: &str) -> Option<String> {
    v.pointer(p)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// Creates (or, for `revive`, re-adds) a user by email; `None` when the
/// email is taken.
fn create(
    sh: &Shared,
    email: &str,
    first: &str,
    last: &str,
    name: &str,
    pending: bool,
) -> Option<SimUser> {
    let v = sh.vendor();
    let mut t = sh.lock();
    if t.find(email).is_some() {
        return None;
    }
    let u = t.insert(
        v,
        SimUser {
            email: email.to_string(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            name: name.to_string(),
            active: true,
            pending,
            ..SimUser::default()
        },
        None,
    );
    t.effects.push(&u.id, &u.email, EffectKind::Created, "api");
    Some(u)
}

/// Sets `active` and logs the change (none when already so); `None` when
/// there is no such user.
fn set_active(sh: &Shared, id: &str, active: bool) -> Option<SimUser> {
    let mut t = sh.lock();
    let u = t.find(id)?;
    if u.pending || u.removed {
        return None;
    }
    let changed = u.active != active;
    u.active = active;
    let u = u.clone();
    if changed {
        let kind = if active {
            EffectKind::Reactivated
        } else {
            EffectKind::Deactivated
        };
        t.effects.push(&u.id, &u.email, kind, "api");
    }
    Some(u)
}

/// Applies field changes (wire name, setter) and logs them.
fn update(sh: &Shared, id: &str, changes: Vec<(&str, Option<String>)>) -> Option<SimUser> {
    let mut t = sh.lock();
    let u = t.find(id)?;
    if u.removed {
        return None;
    }
    let mut fields = Vec::new();
    for (wire, value) in changes {
        let Some(value) = value else { continue };
        let slot = match wire {
            "first_name" | "firstName" => &mut u.first_name,
            "last_name" | "lastName" => &mut u.last_name,
            _ => &mut u.name,
        };
        if *slot != value {
            *slot = value;
            fields.push(wire.to_string());
        }
    }
    if fields.iter().any(|f| f != "name") {
        u.name = format!("{} {}", u.first_name, u.last_name)
            .trim()
            .to_string();
    }
    let u = u.clone();
    if !fields.is_empty() {
        fields.sort();
        t.effects
            .push(&u.id, &u.email, EffectKind::Updated { fields }, "api");
    }
    Some(u)
}

// ------------------------------------------------------------------ Zoom

async fn zoom_token(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let creds_ok = common::bearer(&headers, "Basic")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|c| c == format!("{}:{}", sh.config.user, sh.config.secret));
    let form: BTreeMap<String, String> = url_form(&body);
    let field = |k: &str| {
        form.get(k)
            .or_else(|| q.get(k))
            .cloned()
            .unwrap_or_default()
    };
    if !creds_ok {
        sh.core.count_unauthorized();
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}),
        );
    }
    if field("grant_type") != "account_credentials" || field("account_id") != sh.config.tenant {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"reason": "Invalid request: grant_type or account_id", "error": "invalid_request"}),
        );
    }
    let mut t = sh.lock();
    t.tokens_issued += 1;
    let token = format!("eyJzoom.{:016x}.{}", rand::random::<u64>(), t.tokens_issued);
    t.tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(3600));
    json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "expires_in": 3599, "scope": "user:read:admin user:write:admin", "api_url": "https://api.zoom.us"}),
    )
}

/// `application/x-www-form-urlencoded` fields.
fn url_form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn zoom_create(State(sh): St, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let action = s(&b, "/action").unwrap_or_default();
    if !matches!(
        action.as_str(),
        "create" | "autoCreate" | "custCreate" | "ssoCreate"
    ) {
        return error(v, StatusCode::BAD_REQUEST, "Invalid field: action");
    }
    let Some(email) = s(&b, "/user_info/email") else {
        return error(v, StatusCode::BAD_REQUEST, "Invalid field: user_info.email");
    };
    let first = s(&b, "/user_info/first_name").unwrap_or_default();
    let last = s(&b, "/user_info/last_name").unwrap_or_default();
    match create(&sh, &email, &first, &last, "", action == "create") {
        None => json_response(
            StatusCode::CONFLICT,
            json!({"code": 1005, "message": format!("User already in the account: {email}")}),
        ),
        Some(u) => json_response(
            StatusCode::CREATED,
            json!({"id": u.id, "first_name": u.first_name, "last_name": u.last_name, "email": u.email, "type": 1}),
        ),
    }
}

fn zoom_gone(id: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"code": 1001, "message": format!("User does not exist: {id}")}),
    )
}

async fn zoom_update(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    let b = match parse(sh.vendor(), &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match update(
        &sh,
        &id,
        vec![
            ("first_name", s(&b, "/first_name")),
            ("last_name", s(&b, "/last_name")),
        ],
    ) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => zoom_gone(&id),
    }
}

async fn zoom_status(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let active = match s(&b, "/action").as_deref() {
        Some("activate") => true,
        Some("deactivate") => false,
        _ => return error(v, StatusCode::BAD_REQUEST, "Invalid field: action"),
    };
    match set_active(&sh, &id, active) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => zoom_gone(&id),
    }
}

// ------------------------------------------------------------- Atlassian

async fn atlassian_invite(State(sh): St, Path(org): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    if org != sh.config.tenant {
        return error(v, StatusCode::NOT_FOUND, "No such organization");
    }
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(emails) = b
        .get("emails")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return error(v, StatusCode::BAD_REQUEST, "emails is required");
    };
    let mut out = Vec::new();
    for e in emails.iter().filter_map(Value::as_str) {
        let local = e.split('@').next().unwrap_or(e);
        // Inviting someone already in the org changes nothing.
        let _ = create(&sh, e, "", "", local, false);
        out.push(json!({"email": e, "status": "INVITED"}));
    }
    json_response(StatusCode::OK, json!({"data": out}))
}

async fn atlassian_profile(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match update(&sh, &id, vec![("name", s(&b, "/name"))]) {
        Some(u) => json_response(
            StatusCode::OK,
            json!({"account": user_json(v, &u, true, "")}),
        ),
        None => error(v, StatusCode::NOT_FOUND, "Account not found"),
    }
}

async fn atlassian_lifecycle(State(sh): St, Path((id, what)): Path<(String, String)>) -> Response {
    let v = sh.vendor();
    let active = match what.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return error(v, StatusCode::NOT_FOUND, "Not found"),
    };
    match set_active(&sh, &id, active) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(v, StatusCode::NOT_FOUND, "Account not found"),
    }
}

// --------------------------------------------------------------- Zendesk

async fn zendesk_create(State(sh): St, headers: HeaderMap, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(name), Some(email)) = (s(&b, "/user/name"), s(&b, "/user/email")) else {
        return error(
            v,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Record validation errors: name and email are required",
        );
    };
    match create(&sh, &email, "", "", &name, false) {
        None => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "RecordInvalid", "description": "Record validation errors",
                   "details": {"email": [{"description": format!("Email: {email} is already being used by another user"), "error": "DuplicateValue"}]}}),
        ),
        Some(u) => json_response(
            StatusCode::CREATED,
            json!({"user": user_json(v, &u, true, &host_base(&headers))}),
        ),
    }
}

async fn zendesk_update(
    State(sh): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let exists = sh.lock().find(&id).is_some();
    if !exists {
        return error(v, StatusCode::NOT_FOUND, "Not found");
    }
    if let Some(susp) = b.pointer("/user/suspended").and_then(Value::as_bool) {
        set_active(&sh, &id, !susp);
    }
    match update(&sh, &id, vec![("name", s(&b, "/user/name"))]) {
        Some(u) => json_response(
            StatusCode::OK,
            json!({"user": user_json(v, &u, true, &host_base(&headers))}),
        ),
        None => error(v, StatusCode::NOT_FOUND, "Not found"),
    }
}

// ----------------------------------------------------------------- Asana

async fn asana_add(State(sh): St, Path(ws): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    if ws != sh.config.tenant {
        return error(v, StatusCode::NOT_FOUND, "workspace: Not a recognized ID");
    }
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(who) = s(&b, "/data/user") else {
        return error(v, StatusCode::BAD_REQUEST, "data.user: Missing input");
    };
    let existing = {
        let mut t = sh.lock();
        match t.find(&who) {
            Some(u) if u.removed => {
                u.removed = false;
                let u = u.clone();
                t.effects.push(&u.id, &u.email, EffectKind::Created, "api");
                Some(u)
            }
            Some(u) => Some(u.clone()),
            None => None,
        }
    };
    let u = match existing {
        Some(u) => u,
        None => {
            if !who.contains('@') {
                return error(v, StatusCode::NOT_FOUND, "user: Not a recognized ID");
            }
            let local = who.split('@').next().unwrap_or(&who).to_string();
            match create(&sh, &who, "", "", &local, false) {
                Some(u) => u,
                None => return error(v, StatusCode::INTERNAL_SERVER_ERROR, "conflict"),
            }
        }
    };
    json_response(StatusCode::OK, json!({"data": user_json(v, &u, true, "")}))
}

async fn asana_remove(State(sh): St, Path(ws): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    if ws != sh.config.tenant {
        return error(v, StatusCode::NOT_FOUND, "workspace: Not a recognized ID");
    }
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(who) = s(&b, "/data/user") else {
        return error(v, StatusCode::BAD_REQUEST, "data.user: Missing input");
    };
    let mut t = sh.lock();
    match t.find(&who) {
        Some(u) if !u.removed => {
            u.removed = true;
            let u = u.clone();
            t.effects
                .push(&u.id, &u.email, EffectKind::Deactivated, "api");
            json_response(StatusCode::OK, json!({"data": {}}))
        }
        _ => error(
            v,
            StatusCode::NOT_FOUND,
            "user: Not a member of the workspace",
        ),
    }
}

// --------------------------------------------------------------- HubSpot

async fn hubspot_create(State(sh): St, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(email) = s(&b, "/email") else {
        return error(v, StatusCode::BAD_REQUEST, "email is required");
    };
    let first = s(&b, "/firstName").unwrap_or_default();
    let last = s(&b, "/lastName").unwrap_or_default();
    match create(&sh, &email, &first, &last, "", false) {
        None => error(
            v,
            StatusCode::CONFLICT,
            &format!("A user with email {email} already exists"),
        ),
        Some(u) => json_response(StatusCode::CREATED, user_json(v, &u, true, "")),
    }
}

async fn hubspot_update(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    let v = sh.vendor();
    let b = match parse(v, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match update(
        &sh,
        &id,
        vec![
            ("firstName", s(&b, "/firstName")),
            ("lastName", s(&b, "/lastName")),
        ],
    ) {
        Some(u) => json_response(StatusCode::OK, user_json(v, &u, true, "")),
        None => error(v, StatusCode::NOT_FOUND, &format!("User {id} not found")),
    }
}

async fn hubspot_delete(State(sh): St, Path(id): Path<String>) -> Response {
    let v = sh.vendor();
    let mut t = sh.lock();
    let key = t.users.iter().find(|(_, u)| u.id == id).map(|(k, _)| *k);
    match key.and_then(|k| t.users.remove(&k)) {
        Some(u) => {
            t.effects.push(&u.id, &u.email, EffectKind::Deleted, "api");
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(v, StatusCode::NOT_FOUND, &format!("User {id} not found")),
    }
}
