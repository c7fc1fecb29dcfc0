//! A local Spendesk public API (read-only members) plus the admin console
//! a human uses (vendor-apis.md §5).
//!
//! # API (what roster can call)
//!
//! * `POST /v1/auth/token` with `Authorization: Basic base64(id:secret)` →
//!   `{"access_token","token_type":"Bearer","expires_in"}`. Tokens live 60
//!   minutes by default (configurable); an expired or unknown token → 401.
//! * `GET /v1/users?limit=1..100&cursor=<c>` → `{"data":[member..],
//!   "meta":{"nextCursor": <c|null>}}`. Cursors are keyset: members created
//!   mid-read never shift a page. [U] The path and paging are inferred from
//!   code samples; the wire names are the simulator's choice.
//! * Members: `id`, `email`, `firstName`, `lastName`, `role`, `status`
//!   (`active` | `deactivated`), `team`, `costCenter`, `approvalPolicy`.
//! * There is no endpoint that creates or deactivates a member: the public
//!   API only retrieves.
//!
//! # Admin console (what a human does, as handle methods)
//!
//! * [`SpendeskHandle::jit_login`]: the person's first SAML login creates
//!   the member with **no role, team or approval policy** (Spendesk's JIT).
//! * [`SpendeskHandle::deactivate_by_hand`] and
//!   [`SpendeskHandle::set_by_hand`]: Settings → Members.
//!
//! Console changes are logged as effects with `via = "console"`.
//!
//! # Admin console as HTML
//!
//! The same server serves the admin console a browser drives
//! ([`console`]: sign-in with a password and TOTP or SSO, Settings →
//! Members, approvals, cards, a confirmation dialog, and friction). It
//! shares this tenant, so what the console changes the members API reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::time::Instant;

pub mod console;

pub use console::{
    Approval, Card, ConsoleAdmin, ConsoleConfig, ConsoleEvent, ConsolePacing, ConsoleSso, Layout,
};

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

pub const TOKEN_PATH: &str = "/v1/auth/token";
pub const USERS_PATH: &str = "/v1/users";

#[derive(Clone, Debug)]
pub struct SpendeskSimConfig {
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    /// Access-token lifetime (60 minutes documented).
    pub token_ttl: Duration,
    pub rate_limits: Vec<RateWindow>,
    pub members: Vec<Member>,
    /// The HTML admin console's admins and friction.
    pub console: ConsoleConfig,
}

impl SpendeskSimConfig {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        SpendeskSimConfig {
            port: 0,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            token_ttl: Duration::from_secs(3600),
            rate_limits: Vec::new(),
            members: Vec::new(),
            console: ConsoleConfig::default(),
        }
    }
    /// An admin of the HTML console.
    pub fn with_console_admin(mut self, admin: ConsoleAdmin) -> Self {
        self.console.admins.push(admin);
        self
    }
    pub fn with_console(mut self, console: ConsoleConfig) -> Self {
        let admins = std::mem::take(&mut self.console.admins);
        self.console = console;
        self.console.admins.splice(0..0, admins);
        self
    }
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }
    pub fn with_member(mut self, m: Member) -> Self {
        self.members.push(m);
        self
    }
    /// `n` fully set-up members `member{i}@example.com`.
    pub fn with_seed(mut self, n: usize) -> Self {
        for i in 0..n {
            let mut m = Member::new(
                &format!("member{i}@example.com"),
                &format!("First{i}"),
                &format!("Last{i}"),
            );
            m.role = Some("requester".into());
            m.team = Some("Operations".into());
            m.cost_center = Some("CC-100".into());
            m.approval_policy = Some("Default".into());
            self.members.push(m);
        }
        self
    }
}

/// One member. `id` is assigned when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `None` after JIT creation.
    pub role: Option<String>,
    /// `active` or `deactivated`.
    pub status: String,
    pub team: Option<String>,
    pub cost_center: Option<String>,
    pub approval_policy: Option<String>,
}

impl Member {
    /// An active member with no role, team or policy.
    pub fn new(email: &str, first: &str, last: &str) -> Self {
        Member {
            email: email.to_string(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            status: "active".into(),
            ..Member::default()
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "role": self.role,
            "status": self.status,
            "team": self.team,
            "costCenter": self.cost_center,
            "approvalPolicy": self.approval_policy,
        })
    }
}

/// Which member field [`SpendeskHandle::set_by_hand`] changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberField {
    Role,
    Team,
    CostCenter,
    ApprovalPolicy,
}

#[derive(Debug, Default)]
struct Tenant {
    members: BTreeMap<i64, Member>,
    effects: EffectLog,
    tokens: BTreeMap<String, Instant>,
    next: i64,
    next_front: i64,
    tokens_issued: u64,
    console: console::ConsoleState,
}

impl Tenant {
    fn insert(&mut self, mut m: Member, order: Option<i64>) -> Member {
        self.next += 1;
        if m.id.is_empty() {
            m.id = format!("usr_{:010}", 4_200_000_000_i64 + self.next);
        }
        if m.status.is_empty() {
            m.status = "active".into();
        }
        self.members.insert(order.unwrap_or(self.next), m.clone());
        m
    }

    fn by_email_mut(&mut self, email: &str) -> Option<&mut Member> {
        self.members
            .values_mut()
            .find(|m| m.email.eq_ignore_ascii_case(email))
    }
}

struct Shared {
    config: SpendeskSimConfig,
    core: Core,
    tenant: Mutex<Tenant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct SpendeskHandle(Arc<Shared>);

common::fault_controls!(SpendeskHandle);

impl SpendeskHandle {
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    pub fn members(&self) -> Vec<Member> {
        self.0.lock().members.values().cloned().collect()
    }
    pub fn member(&self, email: &str) -> Option<Member> {
        self.0
            .lock()
            .members
            .values()
            .find(|m| m.email.eq_ignore_ascii_case(email))
            .cloned()
    }
    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.0.lock().tokens_issued
    }
    /// Expires every issued token now (as if an hour passed).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for exp in self.0.lock().tokens.values_mut() {
            *exp = now;
        }
    }

    /// The person's first SAML login: Spendesk creates the member (JIT)
    /// with no role, team, cost center or approval policy. A second login
    /// changes nothing. Returns the member.
    pub fn jit_login(&self, email: &str, first: &str, last: &str) -> Member {
        let mut t = self.0.lock();
        if let Some(m) = t
            .members
            .values()
            .find(|m| m.email.eq_ignore_ascii_case(email))
        {
            return m.clone();
        }
        let m = t.insert(Member::new(email, first, last), None);
        t.effects
            .push(&m.id, &m.email, EffectKind::Created, "console");
        m
    }

    /// A human deactivates the member in Settings → Members. Returns false
    /// if there is no such member; deactivating twice logs once.
    pub fn deactivate_by_hand(&self, email: &str) -> bool {
        let mut t = self.0.lock();
        let Some(m) = t.by_email_mut(email) else {
            return false;
        };
        if m.status != "deactivated" {
            m.status = "deactivated".into();
            let (id, email) = (m.id.clone(), m.email.clone());
            t.effects
                .push(&id, &email, EffectKind::Deactivated, "console");
        }
        true
    }

    /// A human sets one field in Settings → Members.
    pub fn set_by_hand(&self, email: &str, field: MemberField, value: &str) -> bool {
        let mut t = self.0.lock();
        let Some(m) = t.by_email_mut(email) else {
            return false;
        };
        let (slot, wire) = match field {
            MemberField::Role => (&mut m.role, "role"),
            MemberField::Team => (&mut m.team, "team"),
            MemberField::CostCenter => (&mut m.cost_center, "costCenter"),
            MemberField::ApprovalPolicy => (&mut m.approval_policy, "approvalPolicy"),
        };
        if slot.as_deref() == Some(value) {
            return true;
        }
        *slot = Some(value.to_string());
        let (id, email) = (m.id.clone(), m.email.clone());
        t.effects.push(
            &id,
            &email,
            EffectKind::Updated {
                fields: vec![wire.to_string()],
            },
            "console",
        );
        true
    }
}

pub type RunningSpendesk = Running<SpendeskHandle>;

impl Running<SpendeskHandle> {
    /// The API base, e.g. `http://127.0.0.1:4711/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.base_url())
    }
}

pub struct SpendeskSim;

impl SpendeskSim {
    pub async fn start(config: SpendeskSimConfig) -> Result<RunningSpendesk, SimError> {
        let mut tenant = Tenant {
            console: console::ConsoleState::new(config.console.clone()),
            ..Tenant::default()
        };
        for m in &config.members {
            tenant.insert(m.clone(), None);
        }
        let shared = Arc::new(Shared {
            core: Core::new(config.rate_limits.clone(), None),
            tenant: Mutex::new(tenant),
            config,
        });
        let routes = Router::new()
            .route(TOKEN_PATH, post(token))
            .route(USERS_PATH, get(list_users));
        let host: Arc<dyn FaultHost> = shared.clone();
        // The console's pages are outside the API's bearer-token check:
        // they have their own sign-in.
        let app = common::with_faults(routes, host)
            .merge(console::routes())
            .with_state(shared.clone());
        let port = shared.config.port;
        common::serve("spendesk", port, app, SpendeskHandle(shared)).await
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

impl FaultHost for Shared {
    fn core(&self) -> &Core {
        &self.core
    }
    fn vendor_error(&self, http: StatusCode, status: u16, message: &str) -> Response {
        json_response(
            http,
            json!({"error": {"code": "internal_error", "status": status, "message": message}}),
        )
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests",
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
            // The token endpoint checks Basic credentials itself.
            return Ok(());
        }
        let unauthorized = |m: &str| error(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let Some(token) = common::bearer(headers, "Bearer") else {
            return Err(unauthorized("A bearer access token is required"));
        };
        match self.lock().tokens.get(&token) {
            Some(exp) if Instant::now() < *exp => Ok(()),
            Some(_) => Err(unauthorized("The access token has expired")),
            None => Err(unauthorized("The access token is invalid")),
        }
    }
    fn shift_listing(&self) {
        let mut t = self.lock();
        t.next_front -= 1;
        let n = -t.next_front;
        let order = t.next_front;
        let m = t.insert(
            Member::new(&format!("shifted{n}@example.com"), "Shifted", "In"),
            Some(order),
        );
        t.effects
            .push(&m.id, &m.email, EffectKind::Created, "console");
    }
}

type St = State<Arc<Shared>>;

async fn token(State(sh): St, headers: HeaderMap) -> Response {
    let creds = common::bearer(&headers, "Basic")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = creds
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(id, secret)| id == sh.config.client_id && secret == sh.config.client_secret);
    if !ok {
        sh.core.count_unauthorized();
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid API key id or secret",
        );
    }
    let mut t = sh.lock();
    t.tokens_issued += 1;
    let token = format!(
        "sdk_at_{:016x}{:08x}",
        rand::random::<u64>(),
        t.tokens_issued
    );
    t.tokens
        .insert(token.clone(), Instant::now() + sh.config.token_ttl);
    json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": sh.config.token_ttl.as_secs(),
        }),
    )
}

async fn list_users(
    State(sh): St,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => 50,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "limit must be an integer from 1 to 100",
            );
        }
    };
    let mut after: Option<i64> = None;
    if let Some(c) = q.get("cursor").filter(|c| !c.is_empty())
        && !ActiveFault::repeat_page(fault)
    {
        let decoded = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.strip_prefix("m:").and_then(|n| n.parse::<i64>().ok()));
        match decoded {
            Some(n) => after = Some(n),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    "invalid cursor",
                );
            }
        }
    }
    let t = sh.lock();
    let mut rows = t
        .members
        .iter()
        .filter(|(k, _)| after.is_none_or(|a| **k > a));
    let page: Vec<(i64, &Member)> = rows.by_ref().take(limit).map(|(k, m)| (*k, m)).collect();
    let more = rows.next().is_some();
    let next = match (more, page.last()) {
        (true, Some((k, _))) => json!(URL_SAFE_NO_PAD.encode(format!("m:{k}"))),
        _ => Value::Null,
    };
    json_response(
        StatusCode::OK,
        json!({
            "data": page.iter().map(|(_, m)| m.to_json()).collect::<Vec<_>>(),
            "meta": {"nextCursor": next},
        }),
    )
}
