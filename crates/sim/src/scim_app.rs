//! A generic SCIM 2.0 service provider for Users (RFC 7643/7644), as an
//! app with a SCIM server exposes it (vendor-apis.md §2).
//!
//! Served under `/scim/v2` with a single bearer token and
//! `application/scim+json`. Enough of the protocol for a real client, and
//! the quirks Okta's and Entra's clients send:
//!
//! * `POST /Users` → 201 with `Location` and `ETag`; a duplicate `userName`
//!   (compared case-insensitively) → 409 `uniqueness`.
//! * `GET /Users` with `filter` (`eq` comparisons joined by `and`/`or` on
//!   `userName`, `externalId`, `id`, `active`, `emails.value`,
//!   `emails[type eq "work"].value`, `displayName`, `employeeNumber`),
//!   `startIndex` (1-based) and `count` paging in a stable order (creation
//!   order), `attributes` / `excludedAttributes`.
//! * `GET/PUT/PATCH/DELETE /Users/{id}`; PATCH accepts `op` in any case,
//!   path-less values with dotted and URN keys, value-path filters
//!   (`emails[type eq "work"].value`) and `active` as a bool or
//!   `"True"`/`"False"`. DELETE removes for good (IdPs never DELETE; they
//!   PATCH `active=false`, and inactive users are still listed).
//! * ETags: `meta.version` = `ETag`; `If-Match` that doesn't match → 412;
//!   `If-None-Match` that matches on GET → 304.
//! * Errors are the RFC 7644 §3.12 JSON with `status` as a string, incl.
//!   401 for a bad token.
//! * `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (minimal).
//!
//! The handle logs every applied change as an [`Effect`]; a write that
//! changes nothing logs nothing.
//!
//! [`ScimQuirks`] turn it into the servers real vendors run, so the
//! data-configured client can be tested against each: HTTP Basic instead
//! of a bearer token, PATCH only without `path` (value objects), DELETE
//! that deactivates instead of removing (Slack's `DELETE /Users/<id>`),
//! no `filter` support (400, and `filter.supported = false`), and access
//! through OAuth client credentials (`POST /oauth/token`, then short-lived
//! bearer tokens) instead of one static token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Map, Value, json};

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

/// Where the API lives under the server root.
pub const BASE_PATH: &str = "/scim/v2";
/// The OAuth token endpoint (with [`ScimQuirks::oauth_client_id`]).
pub const OAUTH_TOKEN_PATH: &str = "/oauth/token";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const MEDIA_TYPE: &str = "application/scim+json";

/// How the simulator is set up.
#[derive(Clone, Debug)]
pub struct ScimSimConfig {
    /// 127.0.0.1 port; 0 picks a free one.
    pub port: u16,
    /// The bearer token clients must send.
    pub token: String,
    /// The most resources one page returns, whatever `count` asks.
    pub max_page_size: usize,
    /// Sliding windows over accepted requests (none by default).
    pub rate_limits: Vec<RateWindow>,
    /// Users present at start (setup, not logged as effects).
    pub users: Vec<Value>,
    /// Vendor behaviours (all off: a by-the-book server).
    pub quirks: ScimQuirks,
}

/// Ways a vendor's SCIM server departs from the common case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScimQuirks {
    /// Accept only `Authorization: Basic base64(<this user>:<token>)`.
    pub basic_auth_user: Option<String>,
    /// Refuse PATCH operations that carry a `path` (400 `invalidPath`).
    pub patch_without_path_only: bool,
    /// DELETE sets `active = false` and keeps the user (Slack).
    pub delete_deactivates: bool,
    /// Refuse `filter` on `GET /Users` (400 `invalidFilter`).
    pub no_filter: bool,
    /// Accept only access tokens issued by `POST /oauth/token` (OAuth 2.0
    /// client credentials, RFC 6749 §4.4) to this client id with the
    /// config's `token` as client secret, sent as HTTP Basic or as form
    /// fields. The static token itself is then refused on `/scim/v2`.
    pub oauth_client_id: Option<String>,
    /// How long an issued access token lives, in seconds (0: 3600).
    pub oauth_token_lifetime_secs: u64,
}

impl ScimSimConfig {
    pub fn new(token: impl Into<String>) -> Self {
        ScimSimConfig {
            port: 0,
            token: token.into(),
            max_page_size: 100,
            rate_limits: Vec::new(),
            users: Vec::new(),
            quirks: ScimQuirks::default(),
        }
    }
    pub fn with_quirks(mut self, quirks: ScimQuirks) -> Self {
        self.quirks = quirks;
        self
    }
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn with_user(mut self, user: Value) -> Self {
        self.users.push(user);
        self
    }
    /// Adds `n` users `user{i}@example.com` (employeeNumber `E{i}`).
    pub fn with_seed(mut self, n: usize) -> Self {
        for i in 0..n {
            self.users.push(user_json(
                &format!("user{i}@example.com"),
                &format!("First{i}"),
                &format!("Last{i}"),
                Some(&format!("E{i}")),
            ));
        }
        self
    }
    pub fn with_max_page_size(mut self, n: usize) -> Self {
        self.max_page_size = n.max(1);
        self
    }
    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }
}

/// A realistic SCIM User body (as Okta would POST it).
pub fn user_json(email: &str, first: &str, last: &str, employee_number: Option<&str>) -> Value {
    let mut u = json!({
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": first, "familyName": last},
        "displayName": format!("{first} {last}"),
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
    });
    if let Some(n) = employee_number {
        u["schemas"] = json!([USER_SCHEMA, ENTERPRISE_SCHEMA]);
        u[ENTERPRISE_SCHEMA] = json!({"employeeNumber": n});
    }
    u
}

#[derive(Clone, Debug)]
struct Stored {
    /// The resource without `meta` (and with `id`).
    resource: Value,
    version: u64,
    /// Listing order: creation order, or negative for shifted-in users.
    order: i64,
    created: String,
    modified: String,
}

#[derive(Debug, Default)]
struct Tenant {
    users: BTreeMap<String, Stored>,
    effects: EffectLog,
    next_id: u64,
    /// Next order for a shifted-in user (counts down from -1).
    next_front: i64,
    /// Access tokens issued by `/oauth/token`, with their expiry.
    access_tokens: BTreeMap<String, std::time::Instant>,
    tokens_issued: u64,
}

struct Shared {
    config: ScimSimConfig,
    core: Core,
    tenant: Mutex<Tenant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Inspect and steer a running SCIM simulator. Cheap to clone.
#[derive(Clone)]
pub struct ScimHandle(Arc<Shared>);

common::fault_controls!(ScimHandle);

impl ScimHandle {
    /// Every applied change so far, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }

    /// Every user (with `meta`), in listing order.
    pub fn users(&self) -> Vec<Value> {
        let t = self.0.lock();
        sorted(&t).into_iter().map(|s| with_meta(s, "")).collect()
    }

    /// The user whose `userName` is `user_name` (case-insensitive).
    pub fn user_by_name(&self, user_name: &str) -> Option<Value> {
        let t = self.0.lock();
        find_by_name(&t, user_name).map(|s| with_meta(s, ""))
    }

    pub fn user(&self, id: &str) -> Option<Value> {
        self.0.lock().users.get(id).map(|s| with_meta(s, ""))
    }

    /// Adds a user directly (setup: no effect is logged). Returns its id.
    pub fn put_user(&self, user: Value) -> String {
        let mut t = self.0.lock();
        insert(&mut t, user, None)
    }

    /// Access tokens `/oauth/token` has issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.0.lock().tokens_issued
    }

    /// Revokes every issued access token, as an admin rotating the OAuth
    /// client would: the next request with one gets a 401.
    pub fn revoke_access_tokens(&self) {
        self.0.lock().access_tokens.clear();
    }

    /// Changes a user as another admin would, out of band (bumps the
    /// version, logs nothing): for ETag tests.
    pub fn touch(&self, id: &str, field: &str, value: Value) -> bool {
        let mut t = self.0.lock();
        match t.users.get_mut(id) {
            Some(s) => {
                if let Some(o) = s.resource.as_object_mut() {
                    o.insert(field.to_string(), value);
                }
                s.version += 1;
                true
            }
            None => false,
        }
    }
}

/// A SCIM simulator listening on loopback.
pub type RunningScim = Running<ScimHandle>;

impl Running<ScimHandle> {
    /// The SCIM base URL, e.g. `http://127.0.0.1:4711/scim/v2`.
    pub fn url(&self) -> String {
        format!("{}{BASE_PATH}", self.base_url())
    }

    /// The OAuth token endpoint (served with
    /// [`ScimQuirks::oauth_client_id`]).
    pub fn token_url(&self) -> String {
        format!("{}{OAUTH_TOKEN_PATH}", self.base_url())
    }
}

/// The simulator's entry point.
pub struct ScimSim;

impl ScimSim {
    /// Binds 127.0.0.1:`config.port` and serves until the returned handle
    /// is dropped.
    pub async fn start(config: ScimSimConfig) -> Result<RunningScim, SimError> {
        let mut tenant = Tenant::default();
        for u in &config.users {
            insert(&mut tenant, u.clone(), None);
        }
        let shared = Arc::new(Shared {
            core: Core::new(config.rate_limits.clone(), None),
            tenant: Mutex::new(tenant),
            config,
        });
        let routes = Router::new()
            .route(
                &format!("{BASE_PATH}/Users"),
                get(list_users).post(create_user),
            )
            .route(
                &format!("{BASE_PATH}/Users/{{id}}"),
                get(get_user)
                    .put(put_user)
                    .patch(patch_user)
                    .delete(delete_user),
            )
            .route(
                &format!("{BASE_PATH}/ServiceProviderConfig"),
                get(service_provider_config),
            )
            .route(&format!("{BASE_PATH}/ResourceTypes"), get(resource_types))
            .route(OAUTH_TOKEN_PATH, axum::routing::post(issue_token))
            .route(&format!("{BASE_PATH}/Schemas"), get(schemas));
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve("scim_app", port, app, ScimHandle(shared)).await
    }
}

/// `POST /oauth/token`: the client credentials grant. Answers as RFC 6749
/// §5.1/§5.2 say: `{access_token, token_type, expires_in}`, or 400/401 with
/// `{error}`.
async fn issue_token(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    use base64::Engine as _;
    let oauth_error = |status: StatusCode, error: &str| {
        (status, axum::Json(json!({"error": error}))).into_response()
    };
    let Some(client_id) = sh.config.quirks.oauth_client_id.as_deref() else {
        return oauth_error(StatusCode::NOT_FOUND, "unsupported");
    };
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let from_basic = common::bearer(&headers, "Basic")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|c| {
            c.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let from_body = form
        .get("client_id")
        .zip(form.get("client_secret"))
        .map(|(u, p)| (u.clone(), p.clone()));
    let Some((id, secret)) = from_basic.or(from_body) else {
        sh.core.count_unauthorized();
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if id != client_id || secret != sh.config.token {
        sh.core.count_unauthorized();
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let lifetime = match sh.config.quirks.oauth_token_lifetime_secs {
        0 => 3600,
        n => n,
    };
    let mut t = sh.lock();
    t.tokens_issued += 1;
    let token = format!("scim-at.{:016x}.{}", rand::random::<u64>(), t.tokens_issued);
    t.access_tokens.insert(
        token.clone(),
        std::time::Instant::now() + std::time::Duration::from_secs(lifetime),
    );
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime})),
    )
        .into_response()
}

impl FaultHost for Shared {
    fn core(&self) -> &Core {
        &self.core
    }
    fn vendor_error(&self, http: StatusCode, status: u16, message: &str) -> Response {
        scim_error_with(http, status, None, message)
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = scim_error(429, None, "Too many requests");
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        if path == OAUTH_TOKEN_PATH {
            // The client authenticates in the request itself.
            return Ok(());
        }
        if self.config.quirks.oauth_client_id.is_some() {
            let token = common::bearer(headers, "Bearer");
            let t = self.lock();
            return match token.and_then(|tok| t.access_tokens.get(&tok).copied()) {
                Some(expires) if std::time::Instant::now() < expires => Ok(()),
                Some(_) => Err(scim_error(
                    401,
                    None,
                    "Authorization failure: the access token has expired",
                )),
                None => Err(scim_error(
                    401,
                    None,
                    "Authorization failure: an access token from /oauth/token is required",
                )),
            };
        }
        if let Some(user) = &self.config.quirks.basic_auth_user {
            use base64::Engine as _;
            let want = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", self.config.token));
            return match common::bearer(headers, "Basic") {
                Some(t) if t == want => Ok(()),
                _ => Err(scim_error(
                    401,
                    None,
                    "Authorization failure: HTTP Basic credentials are required",
                )),
            };
        }
        match common::bearer(headers, "Bearer") {
            Some(t) if t == self.config.token => Ok(()),
            _ => Err(scim_error(
                401,
                None,
                "Authorization failure: a valid bearer token is required",
            )),
        }
    }
    fn shift_listing(&self) {
        let mut t = self.lock();
        let n = t.next_front.abs() + 1;
        let order = t.next_front - 1;
        t.next_front = order;
        let email = format!("shifted{n}@example.com");
        let id = insert(
            &mut t,
            user_json(&email, "Shifted", &format!("In{n}"), None),
            Some(order),
        );
        t.effects.push(&id, &email, EffectKind::Created, "console");
    }
}

// ---------------------------------------------------------------- model

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn insert(t: &mut Tenant, mut user: Value, order: Option<i64>) -> String {
    t.next_id += 1;
    let id = format!("{:08x}-5c1e-4a11-9000-{:012x}", t.next_id, t.next_id);
    if let Some(o) = user.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.remove("meta");
        o.entry("active").or_insert(json!(true));
    }
    let now = now_text();
    t.users.insert(
        id.clone(),
        Stored {
            resource: user,
            version: 1,
            order: order.unwrap_or(t.next_id as i64),
            created: now.clone(),
            modified: now,
        },
    );
    id
}

fn sorted(t: &Tenant) -> Vec<&Stored> {
    let mut v: Vec<&Stored> = t.users.values().collect();
    v.sort_by_key(|s| s.order);
    v
}

fn user_name(v: &Value) -> Option<&str> {
    v.get("userName").and_then(Value::as_str)
}

fn find_by_name<'a>(t: &'a Tenant, name: &str) -> Option<&'a Stored> {
    t.users
        .values()
        .find(|s| user_name(&s.resource).is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

fn with_meta(s: &Stored, base: &str) -> Value {
    let mut r = s.resource.clone();
    let id = r
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(o) = r.as_object_mut() {
        o.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": s.created,
                "lastModified": s.modified,
                "location": format!("{base}{BASE_PATH}/Users/{id}"),
                "version": etag(s.version),
            }),
        );
    }
    r
}

fn is_active(v: &Value) -> bool {
    v.get("active").and_then(Value::as_bool).unwrap_or(true)
}

fn email_of(v: &Value) -> String {
    user_name(v).unwrap_or("").to_lowercase()
}

/// Logs what changed between two versions of a user; true if anything did.
fn log_changes(t: &mut Tenant, id: &str, before: &Value, after: &Value) -> bool {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return false;
    };
    let mut fields: Vec<String> = a
        .iter()
        .filter(|(k, v)| k.as_str() != "active" && b.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(
            b.keys()
                .filter(|k| k.as_str() != "active" && !a.contains_key(k.as_str()))
                .cloned(),
        )
        .collect();
    fields.sort();
    fields.dedup();
    let email = email_of(after);
    let mut changed = false;
    if !fields.is_empty() {
        t.effects
            .push(id, &email, EffectKind::Updated { fields }, "api");
        changed = true;
    }
    match (is_active(before), is_active(after)) {
        (true, false) => {
            t.effects.push(id, &email, EffectKind::Deactivated, "api");
            changed = true;
        }
        (false, true) => {
            t.effects.push(id, &email, EffectKind::Reactivated, "api");
            changed = true;
        }
        _ => {}
    }
    changed
}

// ---------------------------------------------------------------- wire

fn scim_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
        body.to_string(),
    )
        .into_response()
}

fn scim_error_with(
    http: StatusCode,
    status: u16,
    scim_type: Option<&str>,
    detail: &str,
) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim_json(http, body)
}

fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> Response {
    let http = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    scim_error_with(http, status, scim_type, detail)
}

fn resource_response(status: StatusCode, s: &Stored, base: &str) -> Response {
    let body = with_meta(s, base);
    let mut r = scim_json(status, body);
    if let Ok(v) = HeaderValue::from_str(&etag(s.version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn base_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(scim_error(
            400,
            Some("invalidSyntax"),
            "The request body is not a JSON object",
        )),
    }
}

/// `If-Match` check: absent or `*` passes.
fn check_if_match(headers: &HeaderMap, s: &Stored) -> Result<(), Response> {
    let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let current = etag(s.version);
    let ok = want.split(',').map(str::trim).any(|w| {
        w == "*" || w == current || w.trim_start_matches("W/") == current.trim_start_matches("W/")
    });
    if ok {
        Ok(())
    } else {
        Err(scim_error(
            412,
            None,
            &format!("The resource changed: its version is {current}, not {want}"),
        ))
    }
}

// ---------------------------------------------------------------- filter

/// One `attr op "value"` comparison. Only `eq` (and `pr`) are supported.
#[derive(Debug)]
enum Cond {
    Eq(String, Value),
    Present(String),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

fn tokens(input: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => s.push(c),
                }
            }
            if !closed {
                return Err("unterminated string".into());
            }
            out.push(s);
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut s = String::new();
            let mut depth = 0;
            while let Some(&c) = chars.peek() {
                if depth == 0 && (c.is_whitespace() || c == '(' || c == ')') {
                    break;
                }
                if c == '[' {
                    depth += 1;
                } else if c == ']' {
                    depth -= 1;
                } else if c == '"' && depth > 0 {
                    // keep quoted text inside a value path as is
                }
                s.push(c);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn parse_filter(input: &str) -> Result<Cond, String> {
    let toks = tokens(input)?;
    let mut pos = 0;
    let c = parse_or(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("unexpected {:?}", toks[pos]));
    }
    Ok(c)
}

fn parse_or(t: &[String], pos: &mut usize) -> Result<Cond, String> {
    let mut lhs = parse_and(t, pos)?;
    while t.get(*pos).is_some_and(|s| s.eq_ignore_ascii_case("or")) {
        *pos += 1;
        let rhs = parse_and(t, pos)?;
        lhs = Cond::Or(Box::new(lhs), Box::new(rhs));
    }
    Ok(lhs)
}

fn parse_and(t: &[String], pos: &mut usize) -> Result<Cond, String> {
    let mut lhs = parse_atom(t, pos)?;
    while t.get(*pos).is_some_and(|s| s.eq_ignore_ascii_case("and")) {
        *pos += 1;
        let rhs = parse_atom(t, pos)?;
        lhs = Cond::And(Box::new(lhs), Box::new(rhs));
    }
    Ok(lhs)
}

fn parse_atom(t: &[String], pos: &mut usize) -> Result<Cond, String> {
    let first = t.get(*pos).ok_or("the filter ends too early")?;
    if first == "(" {
        *pos += 1;
        let c = parse_or(t, pos)?;
        if t.get(*pos).map(String::as_str) != Some(")") {
            return Err("missing ')'".into());
        }
        *pos += 1;
        return Ok(c);
    }
    let attr = first.clone();
    let op = t
        .get(*pos + 1)
        .ok_or("missing operator")?
        .to_ascii_lowercase();
    if op == "pr" {
        *pos += 2;
        return Ok(Cond::Present(attr));
    }
    if op != "eq" {
        return Err(format!("operator {op:?} is not supported (only eq and pr)"));
    }
    let raw = t.get(*pos + 2).ok_or("missing value")?;
    *pos += 3;
    let value = if let Some(s) = raw.strip_prefix('"') {
        json!(s)
    } else if raw.eq_ignore_ascii_case("true") {
        json!(true)
    } else if raw.eq_ignore_ascii_case("false") {
        json!(false)
    } else if raw == "null" {
        Value::Null
    } else if let Ok(n) = raw.parse::<i64>() {
        json!(n)
    } else {
        return Err(format!("value {raw:?} is not a string, number or boolean"));
    };
    Ok(Cond::Eq(attr, value))
}

/// The values at `path` in `user` (a path may pass through arrays and
/// carry a `[sub eq "x"]` value filter).
fn values_at(user: &Value, path: &str) -> Vec<Value> {
    let (obj, rest) = split_urn(user, path);
    let Some(obj) = obj else { return Vec::new() };
    let mut current: Vec<Value> = vec![obj.clone()];
    for seg in split_path(rest) {
        let (name, filter) = match seg.split_once('[') {
            Some((n, f)) => (n.to_string(), Some(f.trim_end_matches(']').to_string())),
            None => (seg.clone(), None),
        };
        let mut next = Vec::new();
        for v in current {
            let Some(found) = get_ci(&v, &name) else {
                continue;
            };
            let items: Vec<Value> = match found {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for item in items {
                let keep = match &filter {
                    None => true,
                    Some(f) => parse_filter(f).is_ok_and(|c| eval(&c, &item)),
                };
                if keep {
                    next.push(item);
                }
            }
        }
        current = next;
    }
    current
}

/// Splits `a.b[c eq "x.y"].d` on dots outside brackets.
fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Resolves a schema-URN prefix: returns the object the rest of the path
/// is relative to.
fn split_urn<'a, 'p>(user: &'a Value, path: &'p str) -> (Option<&'a Value>, &'p str) {
    let lower = path.to_ascii_lowercase();
    for (schema, ext) in [(ENTERPRISE_SCHEMA, true), (USER_SCHEMA, false)] {
        let prefix = format!("{}:", schema.to_ascii_lowercase());
        if lower.starts_with(&prefix) {
            let rest = &path[prefix.len()..];
            return if ext {
                (get_ci(user, schema), rest)
            } else {
                (Some(user), rest)
            };
        }
    }
    // Bare enterprise attribute names filter on the extension too.
    if [
        "employeenumber",
        "department",
        "costcenter",
        "organization",
        "division",
    ]
    .contains(&lower.as_str())
    {
        return (get_ci(user, ENTERPRISE_SCHEMA), path);
    }
    (Some(user), path)
}

fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn values_equal(attr: &str, have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            // userName, emails and ids are caseExact=false in RFC 7643
            // except `id` and `externalId`.
            let exact = ["id", "externalid"].contains(&attr.to_ascii_lowercase().as_str());
            if exact {
                h == w
            } else {
                h.eq_ignore_ascii_case(w)
            }
        }
        (Value::Bool(h), Value::String(w)) => w.eq_ignore_ascii_case(&h.to_string()),
        _ => have == want,
    }
}

fn eval(c: &Cond, user: &Value) -> bool {
    match c {
        Cond::Eq(attr, want) => {
            let have = values_at(user, attr);
            if want.is_null() {
                return have.is_empty();
            }
            let last = attr.rsplit(['.', ':']).next().unwrap_or(attr);
            have.iter().any(|h| values_equal(last, h, want))
        }
        Cond::Present(attr) => values_at(user, attr)
            .iter()
            .any(|v| !v.is_null() && v != &json!("") && v != &json!([])),
        Cond::And(a, b) => eval(a, user) && eval(b, user),
        Cond::Or(a, b) => eval(a, user) || eval(b, user),
    }
}

// ---------------------------------------------------------------- projection

fn project(mut r: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect()
    };
    let Some(o) = r.as_object_mut() else { return r };
    if let Some(attrs) = attributes.map(list).filter(|l| !l.is_empty()) {
        let mut keep: Vec<String> = vec!["id".into(), "schemas".into(), "meta".into()];
        let mut ext: Vec<String> = Vec::new();
        let mut whole_ext = false;
        for a in attrs {
            let lower = a.to_ascii_lowercase();
            let ent = format!("{}:", ENTERPRISE_SCHEMA.to_ascii_lowercase());
            if let Some(rest) = lower.strip_prefix(&ent) {
                ext.push(rest.split('.').next().unwrap_or(rest).to_string());
                keep.push(ENTERPRISE_SCHEMA.to_ascii_lowercase());
            } else if lower == ENTERPRISE_SCHEMA.to_ascii_lowercase() {
                whole_ext = true;
                keep.push(lower);
            } else {
                let core = format!("{}:", USER_SCHEMA.to_ascii_lowercase());
                let rest = lower.strip_prefix(&core).unwrap_or(&lower);
                keep.push(rest.split('.').next().unwrap_or(rest).to_string());
            }
        }
        o.retain(|k, _| keep.contains(&k.to_ascii_lowercase()));
        if !ext.is_empty()
            && !whole_ext
            && let Some(Value::Object(e)) = o.get_mut(ENTERPRISE_SCHEMA)
        {
            e.retain(|k, _| ext.contains(&k.to_ascii_lowercase()));
        }
    }
    if let Some(ex) = excluded {
        let ex = list(ex);
        o.retain(|k, _| k == "id" || !ex.iter().any(|e| e.eq_ignore_ascii_case(k)));
    }
    r
}

// ---------------------------------------------------------------- patch

/// Coerces `"True"`/`"False"` for `active` (Entra sends strings).
fn coerce(name: &str, v: Value) -> Value {
    if name.eq_ignore_ascii_case("active")
        && let Value::String(s) = &v
    {
        if s.eq_ignore_ascii_case("true") {
            return json!(true);
        }
        if s.eq_ignore_ascii_case("false") {
            return json!(false);
        }
    }
    v
}

fn key_ci(o: &Map<String, Value>, name: &str) -> String {
    o.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// Applies one operation at `path` (`None`: path-less, value is an object
/// of paths).
fn apply_op(
    user: &mut Value,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), String> {
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        let Some(Value::Object(map)) = value else {
            return Err("a PATCH operation without a path needs an object value".into());
        };
        for (k, v) in map {
            if k.eq_ignore_ascii_case(ENTERPRISE_SCHEMA)
                && let Value::Object(inner) = v
            {
                for (ik, iv) in inner {
                    apply_op(
                        user,
                        op,
                        Some(&format!("{ENTERPRISE_SCHEMA}:{ik}")),
                        Some(iv),
                    )?;
                }
                continue;
            }
            apply_op(user, op, Some(&k), Some(v))?;
        }
        return Ok(());
    };
    // Route enterprise paths into the extension object.
    let lower = path.to_ascii_lowercase();
    let ent = format!("{}:", ENTERPRISE_SCHEMA.to_ascii_lowercase());
    let core_prefix = format!("{}:", USER_SCHEMA.to_ascii_lowercase());
    let root = user.as_object_mut().ok_or("the user is not an object")?;
    let (target, rest): (&mut Map<String, Value>, String) =
        if let Some(r) = lower.strip_prefix(&ent) {
            let rest = path[path.len() - r.len()..].to_string();
            let key = key_ci(root, ENTERPRISE_SCHEMA);
            if let Some(Value::Array(s)) = root.get_mut("schemas")
                && !s.iter().any(|x| x == ENTERPRISE_SCHEMA)
            {
                s.push(json!(ENTERPRISE_SCHEMA));
            }
            let e = root.entry(key).or_insert_with(|| json!({}));
            (
                e.as_object_mut()
                    .ok_or("the enterprise extension is not an object")?,
                rest,
            )
        } else if let Some(r) = lower.strip_prefix(&core_prefix) {
            (root, path[path.len() - r.len()..].to_string())
        } else {
            (root, path.to_string())
        };
    let segs = split_path(&rest);
    match segs.as_slice() {
        [one] if !one.contains('[') => {
            let key = key_ci(target, one);
            match op {
                "remove" => {
                    target.remove(&key);
                }
                "add" => {
                    let v = coerce(one, value.ok_or("add needs a value")?);
                    match (target.get_mut(&key), v) {
                        (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
                        (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
                        (_, v) => {
                            target.insert(key, v);
                        }
                    }
                }
                _ => {
                    let v = coerce(one, value.ok_or("replace needs a value")?);
                    target.insert(key, v);
                }
            }
            Ok(())
        }
        [parent, sub] if !parent.contains('[') => {
            let key = key_ci(target, parent);
            let obj = target.entry(key).or_insert_with(|| json!({}));
            let obj = obj
                .as_object_mut()
                .ok_or(format!("{parent} is not complex"))?;
            let skey = key_ci(obj, sub);
            if op == "remove" {
                obj.remove(&skey);
            } else {
                obj.insert(skey, value.ok_or("needs a value")?);
            }
            Ok(())
        }
        [filtered, tail @ ..] if filtered.contains('[') => {
            let (name, f) = filtered.split_once('[').ok_or("bad value path")?;
            let cond = parse_filter(f.trim_end_matches(']'))
                .map_err(|e| format!("invalid path filter: {e}"))?;
            let key = key_ci(target, name);
            let arr = target.entry(key).or_insert_with(|| json!([]));
            let Value::Array(items) = arr else {
                return Err(format!("{name} is not multi-valued"));
            };
            let sub = tail.first();
            if op == "remove" && sub.is_none() {
                items.retain(|i| !eval(&cond, i));
                return Ok(());
            }
            let mut hit = false;
            for item in items.iter_mut().filter(|i| eval(&cond, i)) {
                hit = true;
                if let (Some(sub), Some(o)) = (sub, item.as_object_mut()) {
                    let skey = key_ci(o, sub);
                    if op == "remove" {
                        o.remove(&skey);
                    } else if let Some(v) = value.clone() {
                        o.insert(skey, v);
                    }
                }
            }
            if !hit && op != "remove" {
                // Entra's `emails[type eq "work"].value` on a user with no
                // work email: create the entry the filter describes.
                let mut new = Map::new();
                if let Cond::Eq(a, v) = &cond {
                    new.insert(a.clone(), v.clone());
                }
                if let (Some(sub), Some(v)) = (sub, value) {
                    new.insert(sub.clone(), v);
                }
                items.push(Value::Object(new));
            }
            Ok(())
        }
        _ => Err(format!("path {path:?} is not supported")),
    }
}

fn apply_patch(user: &mut Value, body: &Value) -> Result<(), Response> {
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            scim_error(
                400,
                Some("invalidSyntax"),
                "PATCH needs an Operations array",
            )
        })?;
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if !["add", "replace", "remove"].contains(&name.as_str()) {
            return Err(scim_error(
                400,
                Some("invalidSyntax"),
                &format!("unknown op {name:?}"),
            ));
        }
        let path = op.get("path").and_then(Value::as_str);
        if name == "remove" && path.is_none() {
            return Err(scim_error(400, Some("noTarget"), "remove needs a path"));
        }
        apply_op(user, &name, path, op.get("value").cloned())
            .map_err(|e| scim_error(400, Some("invalidPath"), &e))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- handlers

type St = State<Arc<Shared>>;

async fn list_users(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let param = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if sh.config.quirks.no_filter && param("filter").is_some() {
        return scim_error(400, Some("invalidFilter"), "filtering is not supported");
    }
    let cond = match param("filter").map(parse_filter).transpose() {
        Ok(c) => c,
        Err(e) => return scim_error(400, Some("invalidFilter"), &format!("invalid filter: {e}")),
    };
    let int = |name: &str, default: i64| -> Result<i64, Response> {
        match param(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<i64>().map_err(|_| {
                scim_error(
                    400,
                    Some("invalidValue"),
                    &format!("{name} must be an integer"),
                )
            }),
        }
    };
    let mut start = match int("startIndex", 1) {
        Ok(v) => v.max(1) as usize,
        Err(r) => return r,
    };
    if ActiveFault::repeat_page(fault) {
        start = 1;
    }
    let count = match int("count", sh.config.max_page_size as i64) {
        Ok(v) => (v.max(0) as usize).min(sh.config.max_page_size),
        Err(r) => return r,
    };
    let base = base_of(&headers);
    let t = sh.lock();
    let matching: Vec<&Stored> = sorted(&t)
        .into_iter()
        .filter(|s| cond.as_ref().is_none_or(|c| eval(c, &s.resource)))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|s| {
            project(
                with_meta(s, &base),
                param("attributes"),
                param("excludedAttributes"),
            )
        })
        .collect();
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": matching.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

async fn create_user(State(sh): St, headers: HeaderMap, body: Bytes) -> Response {
    let user = match parse_body(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(name) = user_name(&user).map(str::trim).filter(|n| !n.is_empty()) else {
        return scim_error(400, Some("invalidValue"), "userName is required");
    };
    let mut t = sh.lock();
    if find_by_name(&t, name).is_some() {
        return scim_error(
            409,
            Some("uniqueness"),
            &format!("userName {name:?} is already taken"),
        );
    }
    let email = name.to_lowercase();
    let id = insert(&mut t, user, None);
    t.effects.push(&id, &email, EffectKind::Created, "api");
    let Some(s) = t.users.get(&id) else {
        return scim_error(500, None, "the user vanished");
    };
    let base = base_of(&headers);
    let mut r = resource_response(StatusCode::CREATED, s, &base);
    if let Ok(v) = HeaderValue::from_str(&format!("{base}{BASE_PATH}/Users/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn not_found(id: &str) -> Response {
    scim_error(404, None, &format!("Resource {id} not found"))
}

async fn get_user(
    State(sh): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    let Some(s) = t.users.get(&id) else {
        return not_found(&id);
    };
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && inm.split(',').any(|e| e.trim() == etag(s.version))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let base = base_of(&headers);
    let mut r = resource_response(StatusCode::OK, s, &base);
    if q.contains_key("attributes") || q.contains_key("excludedAttributes") {
        let body = project(
            with_meta(s, &base),
            q.get("attributes").map(String::as_str),
            q.get("excludedAttributes").map(String::as_str),
        );
        let tag = r.headers().get(header::ETAG).cloned();
        r = scim_json(StatusCode::OK, body);
        if let Some(tag) = tag {
            r.headers_mut().insert(header::ETAG, tag);
        }
    }
    r
}

/// Shared tail of PUT and PATCH: uniqueness, version bump, effects.
fn store_update(t: &mut Tenant, id: &str, new: Value, headers: &HeaderMap) -> Response {
    let Some(before) = t.users.get(id).map(|s| s.resource.clone()) else {
        return not_found(id);
    };
    if let Some(name) = user_name(&new)
        && t.users.iter().any(|(other, s)| {
            other != id && user_name(&s.resource).is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    {
        return scim_error(
            409,
            Some("uniqueness"),
            &format!("userName {name:?} is already taken"),
        );
    }
    let changed = log_changes(t, id, &before, &new);
    let Some(s) = t.users.get_mut(id) else {
        return not_found(id);
    };
    if changed {
        s.resource = new;
        s.version += 1;
        s.modified = now_text();
    }
    resource_response(StatusCode::OK, s, &base_of(headers))
}

async fn put_user(
    State(sh): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut new = match parse_body(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut t = sh.lock();
    let Some(s) = t.users.get(&id) else {
        return not_found(&id);
    };
    if let Err(r) = check_if_match(&headers, s) {
        return r;
    }
    if user_name(&new).is_none_or(|n| n.trim().is_empty()) {
        return scim_error(400, Some("invalidValue"), "userName is required");
    }
    if let Some(o) = new.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.remove("meta");
        if let Some(a) = o.get("active").cloned() {
            o.insert("active".into(), coerce("active", a));
        } else {
            o.insert("active".into(), json!(true));
        }
    }
    store_update(&mut t, &id, new, &headers)
}

async fn patch_user(
    State(sh): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut t = sh.lock();
    let Some(s) = t.users.get(&id) else {
        return not_found(&id);
    };
    if let Err(r) = check_if_match(&headers, s) {
        return r;
    }
    if sh.config.quirks.patch_without_path_only
        && body
            .get("Operations")
            .and_then(Value::as_array)
            .is_some_and(|ops| ops.iter().any(|o| o.get("path").is_some()))
    {
        return scim_error(
            400,
            Some("invalidPath"),
            "this server takes PATCH operations without a path only",
        );
    }
    let mut new = s.resource.clone();
    if let Err(r) = apply_patch(&mut new, &body) {
        return r;
    }
    if let Some(o) = new.as_object_mut() {
        o.insert("id".into(), json!(id));
    }
    if user_name(&new).is_none_or(|n| n.trim().is_empty()) {
        return scim_error(400, Some("mutability"), "userName can't be removed");
    }
    store_update(&mut t, &id, new, &headers)
}

async fn delete_user(State(sh): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut t = sh.lock();
    let Some(s) = t.users.get(&id) else {
        return not_found(&id);
    };
    if let Err(r) = check_if_match(&headers, s) {
        return r;
    }
    if sh.config.quirks.delete_deactivates {
        let mut new = s.resource.clone();
        new["active"] = json!(false);
        let r = store_update(&mut t, &id, new, &headers);
        return if r.status().is_success() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            r
        };
    }
    let email = email_of(&s.resource);
    t.users.remove(&id);
    t.effects.push(&id, &email, EffectKind::Deleted, "api");
    StatusCode::NO_CONTENT.into_response()
}

async fn service_provider_config(State(sh): St) -> Response {
    let q = &sh.config.quirks;
    let scheme = if q.basic_auth_user.is_some() {
        json!({
            "type": "httpbasic",
            "name": "HTTP Basic",
            "description": "Authentication with a user name and the token as password",
        })
    } else if q.oauth_client_id.is_some() {
        json!({
            "type": "oauth2",
            "name": "OAuth 2.0",
            "description": "Access tokens from /oauth/token (client credentials grant)",
        })
    } else {
        json!({
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a static bearer token",
        })
    };
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": !q.no_filter, "maxResults": 100},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [scheme],
        }),
    )
}

async fn resource_types() -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": 1, "startIndex": 1, "itemsPerPage": 1,
            "Resources": [{
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "User", "name": "User", "endpoint": "/Users",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            }],
        }),
    )
}

async fn schemas() -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": 2, "startIndex": 1, "itemsPerPage": 2,
            "Resources": [
                {"id": USER_SCHEMA, "name": "User", "attributes": []},
                {"id": ENTERPRISE_SCHEMA, "name": "EnterpriseUser", "attributes": []},
            ],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Value {
        user_json("Alice@Example.com", "Alice", "A", Some("E1"))
    }

    #[test]
    fn filters_match_case_insensitively_and_on_value_paths() {
        let u = alice();
        for f in [
            r#"userName eq "alice@example.com""#,
            r#"USERNAME Eq "ALICE@example.COM""#,
            r#"emails[type eq "work"].value eq "alice@example.com""#,
            r#"emails.value eq "alice@example.com" and active eq true"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "E1""#,
            r#"userName eq "x" or employeeNumber eq "E1""#,
        ] {
            assert!(eval(&parse_filter(f).unwrap(), &u), "{f}");
        }
        assert!(!eval(
            &parse_filter(r#"userName eq "bob@example.com""#).unwrap(),
            &u
        ));
        assert!(parse_filter(r#"userName co "a""#).is_err());
        assert!(parse_filter(r#"userName eq"#).is_err());
    }

    #[test]
    fn patch_accepts_entra_and_okta_shapes() {
        let mut u = alice();
        // Okta: path-less replace.
        apply_patch(
            &mut u,
            &json!({"Operations":[{"op":"replace","value":{"active":false}}]}),
        )
        .unwrap();
        assert_eq!(u["active"], json!(false));
        // Entra: capitalised op, string boolean, dotted and URN paths.
        apply_patch(
            &mut u,
            &json!({"Operations":[
                {"op":"Replace","path":"active","value":"True"},
                {"op":"Replace","path":"name.givenName","value":"Ally"},
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"ally@example.com"},
                {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Sales"},
            ]}),
        )
        .unwrap();
        assert_eq!(u["active"], json!(true));
        assert_eq!(u["name"]["givenName"], "Ally");
        assert_eq!(u["emails"][0]["value"], "ally@example.com");
        assert_eq!(u[ENTERPRISE_SCHEMA]["department"], "Sales");
        assert_eq!(u[ENTERPRISE_SCHEMA]["employeeNumber"], "E1");
        // Path-less with dotted and URN keys.
        apply_patch(
            &mut u,
            &json!({"Operations":[{"op":"replace","value":{
                "name.familyName":"Zed",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"E9"}}]}),
        )
        .unwrap();
        assert_eq!(u["name"]["familyName"], "Zed");
        assert_eq!(u[ENTERPRISE_SCHEMA]["employeeNumber"], "E9");
        assert!(apply_patch(&mut u, &json!({"Operations":[{"op":"frob"}]})).is_err());
    }

    #[test]
    fn projection_keeps_id_and_requested_attributes() {
        let mut u = alice();
        u["id"] = json!("x");
        let p = project(u.clone(), Some("userName,active"), None);
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["active", "id", "schemas", "userName"]);
        let p = project(
            u,
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            None,
        );
        assert_eq!(p[ENTERPRISE_SCHEMA]["employeeNumber"], "E1");
        assert!(p.get("name").is_none());
    }
}
