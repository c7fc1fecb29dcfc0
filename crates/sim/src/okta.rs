//! A local Okta org: the Management API endpoints roster uses for IdP
//! reads and app assignment (vendor-apis.md §3), and Okta's own SCIM client
//! provisioning a downstream app (§2, "Okta as client").
//!
//! # API
//!
//! * Auth: `Authorization: SSWS <api_token>`, or `Bearer` with a token
//!   from `POST /oauth2/v1/token` (a service app's client credentials
//!   with a private-key JWT; the token allows what its scopes allow: see
//!   `okta/oauth.rs`); otherwise 401 `E0000011`, or 403 `E0000006` for a
//!   missing scope.
//! * `GET /api/v1/users` (`limit` ≤ 200, default 200; `after`; `filter` with
//!   `eq` clauses on `status`, `id`, `profile.login`, `profile.email` joined
//!   by `and`). DEPROVISIONED users are hidden unless the filter names a
//!   status. Paging by `Link: <…>; rel="next"` (separate `self` and `next`
//!   headers); `after` is an opaque keyset cursor.
//! * `GET /api/v1/users/{idOrLogin}`.
//! * `DELETE /api/v1/users/{id}/sessions?oauthTokens=true` (Users →
//!   Revoke all user sessions; OAuth scope `okta.users.manage`): 204, and
//!   a `SessionsRevoked { tokens }` effect (`tokens` when `oauthTokens`
//!   is `true`); an unknown id → 404 `E0000007`. Only the user's id is
//!   accepted here, as in Okta.
//! * `GET /api/v1/apps/{appId}`: the app with its provisioning `features`
//!   (`PUSH_NEW_USERS`, `PUSH_PROFILE_UPDATES`, `PUSH_USER_DEACTIVATION`).
//! * `GET /api/v1/apps/{appId}/users` (same paging): AppUser objects.
//! * `POST /api/v1/apps/{appId}/users` `{id, scope:"USER",
//!   credentials:{userName}}` assigns (assigning again updates and answers
//!   200; no second effect). `POST /api/v1/apps/{appId}/users/{userId}`
//!   updates the app user's `credentials`/`profile`.
//!   `DELETE /api/v1/apps/{appId}/users/{userId}` unassigns (204; 404 if not
//!   assigned).
//! * Groups, memberships and the System Log, for roster's Okta *source*:
//!   see `okta/directory.rs` (`GET /api/v1/groups`, `/groups/{id}/users`,
//!   `/users/{id}/groups`, `/logs`). The handle's changes write the events
//!   Okta would, and [`OktaHandle::lockout_storm`] locks many out at once.
//!   `GET /api/v1/groups?q=` finds groups whose name starts with `q`.
//! * Group membership writes, for roster's `idp` path by groups:
//!   `PUT /api/v1/groups/{id}/users/{userId}` and `DELETE` (both 204, also
//!   when nothing changes; effects only on a change). An app assigned to
//!   groups ([`OktaApp::with_groups`]) follows its groups: a member gets an
//!   app user with `scope: GROUP`, `syncState: SYNCHRONIZED`; leaving the
//!   last such group removes it. [`OktaHandle::fail_provisioning`] makes the
//!   push fail for a user: the app user shows `syncState: ERROR` and
//!   `lastSyncError` (a failed deprovisioning stays listed that way). [S]:
//!   real Okta surfaces the push error in its Admin Console tasks; the
//!   field name is the simulator's. Group-driven pushes are modelled, not
//!   sent to a downstream SCIM app.
//! * Every response carries `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`
//!   (UTC epoch seconds); over the limit → 429 `E0000047`.
//!
//! # Downstream provisioning
//!
//! An app may be bound to a SCIM server ([`ScimDownstream`], e.g. a
//! [`crate::scim_app`] simulator). Then, like Okta, the simulator calls it
//! *before answering* (real Okta does it asynchronously; doing it inline
//! keeps tests deterministic):
//!
//! * assign, with `PUSH_NEW_USERS`: `GET /Users?filter=userName eq "…"`,
//!   then `POST /Users`, or PATCH `active=true` for an existing inactive
//!   user;
//! * update, with `PUSH_PROFILE_UPDATES`: `PATCH` the names;
//! * unassign, with `PUSH_USER_DEACTIVATION`: path-less `PATCH
//!   {"op":"replace","value":{"active":false}}` (Okta never DELETEs).
//!
//! A feature that is off does nothing downstream, which is exactly the gap
//! roster's validation must catch. A downstream failure leaves the app
//! user's `syncState` as `ERROR`; assigning again retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Value, json};

use crate::common::{
    self, ActiveFault, Core, Effect, EffectKind, EffectLog, FaultHost, RateWindow, Running,
    SimError,
};

pub use crate::common::{Counters, Fault};

pub const PUSH_NEW_USERS: &str = "PUSH_NEW_USERS";
pub const PUSH_PROFILE_UPDATES: &str = "PUSH_PROFILE_UPDATES";
pub const PUSH_USER_DEACTIVATION: &str = "PUSH_USER_DEACTIVATION";

/// Okta's rate-limit error code.
pub const RATE_LIMIT_CODE: &str = "E0000047";

#[derive(Clone, Debug)]
pub struct OktaSimConfig {
    pub port: u16,
    pub api_token: String,
    /// Requests per `window` (a per-minute org limit by default).
    pub rate_limit: u32,
    pub window: Duration,
    pub users: Vec<OktaUser>,
    pub apps: Vec<OktaApp>,
    /// Group names with the logins of their members.
    pub groups: Vec<(String, Vec<String>)>,
    /// OAuth 2.0 service apps (private-key JWT client authentication).
    pub oauth_clients: Vec<oauth::OktaOAuthClient>,
    /// OpenID Connect web apps people sign in to (see `okta/oidc.rs`).
    pub oidc_apps: Vec<oidc::OktaOidcApp>,
    /// Sign-in passwords by login.
    pub passwords: Vec<(String, String)>,
    /// The ID-token signing key (PKCS#8 PEM); `None`: a fresh 2048-bit key
    /// is generated at start when an OIDC app is configured.
    pub oidc_signing_key_pem: Option<String>,
}

impl OktaSimConfig {
    pub fn new(api_token: impl Into<String>) -> Self {
        OktaSimConfig {
            port: 0,
            api_token: api_token.into(),
            rate_limit: 600,
            window: Duration::from_secs(60),
            users: Vec::new(),
            apps: Vec::new(),
            groups: Vec::new(),
            oauth_clients: Vec::new(),
            oidc_apps: Vec::new(),
            passwords: Vec::new(),
            oidc_signing_key_pem: None,
        }
    }
    /// An OpenID Connect web app people sign in to.
    pub fn with_oidc_app(mut self, app: oidc::OktaOidcApp) -> Self {
        self.oidc_apps.push(app);
        self
    }
    /// The password `login` signs in with at the OIDC sign-in form.
    pub fn with_password(mut self, login: &str, password: &str) -> Self {
        self.passwords
            .push((login.to_string(), password.to_string()));
        self
    }
    /// Signs ID tokens with this key (PKCS#8 PEM) instead of a fresh one.
    pub fn with_oidc_signing_key(mut self, pem: &str) -> Self {
        self.oidc_signing_key_pem = Some(pem.to_string());
        self
    }
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn with_user(mut self, u: OktaUser) -> Self {
        self.users.push(u);
        self
    }
    /// `n` ACTIVE users `person{i}@example.com`.
    pub fn with_seed(mut self, n: usize) -> Self {
        for i in 0..n {
            self.users.push(OktaUser::new(
                &format!("person{i}@example.com"),
                &format!("First{i}"),
                &format!("Last{i}"),
            ));
        }
        self
    }
    /// A group with these members (by login).
    pub fn with_group(mut self, name: &str, logins: &[&str]) -> Self {
        self.groups.push((
            name.to_string(),
            logins.iter().map(|l| l.to_string()).collect(),
        ));
        self
    }
    /// An OAuth service app allowed these scopes.
    pub fn with_oauth_client(mut self, client: oauth::OktaOAuthClient) -> Self {
        self.oauth_clients.push(client);
        self
    }
    pub fn with_app(mut self, app: OktaApp) -> Self {
        self.apps.push(app);
        self
    }
    pub fn with_rate_limit(mut self, n: u32, per: Duration) -> Self {
        self.rate_limit = n;
        self.window = per;
        self
    }
}

/// An Okta user. `id` is assigned when empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaUser {
    pub id: String,
    /// `ACTIVE`, `SUSPENDED`, `DEPROVISIONED`, ...
    pub status: String,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `profile.employeeNumber`.
    pub employee_number: Option<String>,
    pub department: Option<String>,
    /// `profile.costCenter`.
    pub cost_center: Option<String>,
    /// `profile.managerId`: the manager's Okta id.
    pub manager_id: Option<String>,
    /// `profile.secondEmail`.
    pub second_email: Option<String>,
    /// Custom profile attributes (strings).
    pub custom: BTreeMap<String, String>,
    /// `lastUpdated`, set by the simulator on every change.
    pub last_updated: String,
}

impl OktaUser {
    pub fn new(login: &str, first: &str, last: &str) -> Self {
        OktaUser {
            id: String::new(),
            status: "ACTIVE".into(),
            login: login.to_string(),
            email: login.to_string(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            employee_number: None,
            department: None,
            cost_center: None,
            manager_id: None,
            second_email: None,
            custom: BTreeMap::new(),
            last_updated: "2026-01-05T09:00:00.000Z".into(),
        }
    }
    pub fn with_status(mut self, status: &str) -> Self {
        self.status = status.to_string();
        self
    }
    pub fn with_employee_number(mut self, n: &str) -> Self {
        self.employee_number = Some(n.to_string());
        self
    }
    pub fn with_department(mut self, d: &str) -> Self {
        self.department = Some(d.to_string());
        self
    }
    pub fn with_cost_center(mut self, c: &str) -> Self {
        self.cost_center = Some(c.to_string());
        self
    }
    pub fn with_manager_id(mut self, id: &str) -> Self {
        self.manager_id = Some(id.to_string());
        self
    }
    pub fn with_custom(mut self, k: &str, v: &str) -> Self {
        self.custom.insert(k.to_string(), v.to_string());
        self
    }

    fn to_json(&self, base: &str) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "created": "2026-01-05T09:00:00.000Z",
            "activated": "2026-01-05T09:00:00.000Z",
            "statusChanged": "2026-01-05T09:00:00.000Z",
            "lastLogin": null,
            "lastUpdated": self.last_updated,
            "passwordChanged": null,
            "profile": self.profile(),
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": format!("{base}/api/v1/users/{}", self.id)}},
        })
    }

    fn profile(&self) -> Value {
        let mut p = json!({
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "login": self.login,
        });
        for (k, v) in [
            ("employeeNumber", &self.employee_number),
            ("department", &self.department),
            ("costCenter", &self.cost_center),
            ("managerId", &self.manager_id),
            ("secondEmail", &self.second_email),
        ] {
            if let Some(v) = v {
                p[k] = json!(v);
            }
        }
        for (k, v) in &self.custom {
            p[k.as_str()] = json!(v);
        }
        p
    }
}

/// Where an app's SCIM connector points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimDownstream {
    /// The SCIM base URL, e.g. `http://127.0.0.1:4711/scim/v2`.
    pub base_url: String,
    pub token: String,
}

/// An app integration in the org.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaApp {
    pub id: String,
    pub name: String,
    pub label: String,
    /// Enabled provisioning features.
    pub features: Vec<String>,
    pub downstream: Option<ScimDownstream>,
    /// Names of the groups assigned to the app: their members get an app
    /// user with `scope: GROUP`.
    pub groups: Vec<String>,
}

impl OktaApp {
    /// An app with Create, Update and Deactivate all enabled.
    pub fn new(id: &str, label: &str) -> Self {
        OktaApp {
            id: id.to_string(),
            name: label.to_lowercase().replace(' ', "_"),
            label: label.to_string(),
            features: vec![
                PUSH_NEW_USERS.into(),
                PUSH_PROFILE_UPDATES.into(),
                PUSH_USER_DEACTIVATION.into(),
            ],
            downstream: None,
            groups: Vec::new(),
        }
    }
    /// Assigns the app to these groups (by name).
    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }
    pub fn with_features(mut self, features: &[&str]) -> Self {
        self.features = features.iter().map(|f| f.to_string()).collect();
        self
    }
    pub fn with_downstream(
        mut self,
        base_url: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        self.downstream = Some(ScimDownstream {
            base_url: base_url.into(),
            token: token.into(),
        });
        self
    }
}

/// One user's assignment to one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppUser {
    pub user_id: String,
    pub user_name: String,
    pub scope: String,
    /// `PROVISIONED` once pushed downstream, else `ACTIVE`.
    pub status: String,
    /// `SYNCHRONIZED`, `ERROR` or `DISABLED` (no push).
    pub sync_state: String,
    /// The downstream SCIM id, once provisioned.
    pub external_id: Option<String>,
    pub profile: BTreeMap<String, String>,
    /// Why the last push failed.
    pub last_error: Option<String>,
}

impl AppUser {
    fn to_json(&self, base: &str, app_id: &str) -> Value {
        json!({
            "id": self.user_id,
            "externalId": self.external_id,
            "created": "2026-01-05T09:00:00.000Z",
            "lastUpdated": "2026-01-05T09:00:00.000Z",
            "scope": self.scope,
            "status": self.status,
            "statusChanged": "2026-01-05T09:00:00.000Z",
            "passwordChanged": null,
            "syncState": self.sync_state,
            "lastSyncError": self.last_error,
            "lastSync": null,
            "credentials": {"userName": self.user_name},
            "profile": self.profile,
            "_links": {
                "app": {"href": format!("{base}/api/v1/apps/{app_id}")},
                "user": {"href": format!("{base}/api/v1/users/{}", self.user_id)},
            },
        })
    }
}

#[derive(Debug, Default)]
struct Org {
    /// Keyed by listing order.
    users: BTreeMap<i64, OktaUser>,
    apps: BTreeMap<String, OktaApp>,
    /// app id → (listing order of the user → assignment).
    assignments: BTreeMap<String, BTreeMap<i64, AppUser>>,
    effects: EffectLog,
    next: i64,
    next_front: i64,
    /// Groups by listing order.
    groups: BTreeMap<i64, OktaGroup>,
    /// The System Log, oldest first.
    log: Vec<LogEvent>,
    /// Events published before this are gone (Okta keeps 90 days);
    /// `since` earlier than it is refused.
    log_retained_from: Option<time::OffsetDateTime>,
    /// OAuth access tokens and their scopes.
    oauth_tokens: BTreeMap<String, Vec<String>>,
    /// login (lower-cased) → why pushing them to an app fails.
    failing: BTreeMap<String, String>,
}

impl Org {
    fn insert_user(&mut self, mut u: OktaUser, order: Option<i64>) -> OktaUser {
        self.next += 1;
        if u.id.is_empty() {
            u.id = format!("00u{:017}", self.next);
        }
        self.users.insert(order.unwrap_or(self.next), u.clone());
        u
    }
    /// Whether the user is in a group assigned to the app.
    fn in_group_scope(&self, app: &OktaApp, uid: &str) -> bool {
        self.groups
            .values()
            .any(|g| app.groups.contains(&g.name) && g.members.contains(uid))
    }

    /// Brings the user's group-scoped assignments in line with their
    /// memberships, as Okta does when a group membership changes. The push
    /// is modelled, not sent: success, or `ERROR` with the reason the
    /// failure switch holds ([`OktaHandle::fail_provisioning`]). A failed
    /// deprovisioning leaves the app user in place with `syncState: ERROR`.
    fn sync_group_assignments(&mut self, order: i64) {
        let Some(user) = self.users.get(&order).cloned() else {
            return;
        };
        let failure = self.failing.get(&user.login.to_lowercase()).cloned();
        let apps: Vec<OktaApp> = self.apps.values().cloned().collect();
        for app in apps.iter().filter(|a| !a.groups.is_empty()) {
            let in_scope = self.in_group_scope(app, &user.id);
            let assigned = self.assignments.entry(app.id.clone()).or_default();
            match (in_scope, assigned.get_mut(&order)) {
                (true, None) => {
                    assigned.insert(
                        order,
                        AppUser {
                            user_id: user.id.clone(),
                            user_name: user.login.clone(),
                            scope: "GROUP".into(),
                            status: "PROVISIONED".into(),
                            sync_state: if failure.is_some() {
                                "ERROR"
                            } else {
                                "SYNCHRONIZED"
                            }
                            .into(),
                            external_id: None,
                            profile: BTreeMap::new(),
                            last_error: failure.clone(),
                        },
                    );
                }
                (true, Some(au)) if au.sync_state == "ERROR" && failure.is_none() => {
                    au.sync_state = "SYNCHRONIZED".into();
                    au.last_error = None;
                }
                (false, Some(au)) if au.scope == "GROUP" => match &failure {
                    Some(f) => {
                        au.sync_state = "ERROR".into();
                        au.last_error = Some(f.clone());
                    }
                    None => {
                        assigned.remove(&order);
                    }
                },
                _ => {}
            }
        }
    }

    fn user(&self, id_or_login: &str) -> Option<(i64, &OktaUser)> {
        self.users
            .iter()
            .find(|(_, u)| u.id == id_or_login || u.login.eq_ignore_ascii_case(id_or_login))
            .map(|(k, u)| (*k, u))
    }
}

struct Shared {
    config: OktaSimConfig,
    core: Core,
    org: Mutex<Org>,
    http: Option<reqwest::Client>,
    oidc: Mutex<oidc::OidcState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn oidc(&self) -> MutexGuard<'_, oidc::OidcState> {
        self.oidc.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct OktaHandle(Arc<Shared>);

common::fault_controls!(OktaHandle);

impl OktaHandle {
    /// Assignments and unassignments (and app-user updates), in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    pub fn users(&self) -> Vec<OktaUser> {
        self.0.lock().users.values().cloned().collect()
    }
    pub fn user(&self, id_or_login: &str) -> Option<OktaUser> {
        self.0.lock().user(id_or_login).map(|(_, u)| u.clone())
    }
    /// Adds a user (setup). Returns it with its id.
    pub fn add_user(&self, user: OktaUser) -> OktaUser {
        let mut org = self.0.lock();
        let u = org.insert_user(user, None);
        org.log_event("user.lifecycle.create", &u.id, &u.login, None);
        u
    }
    /// Sets a user's status, e.g. `DEPROVISIONED` (a deactivation in Okta).
    pub fn set_user_status(&self, id_or_login: &str, status: &str) -> bool {
        let mut org = self.0.lock();
        let Some((k, _)) = org.user(id_or_login) else {
            return false;
        };
        let Some(u) = org.users.get_mut(&k) else {
            return false;
        };
        let was = std::mem::replace(&mut u.status, status.to_string());
        u.last_updated = directory::now_text();
        let (id, login) = (u.id.clone(), u.login.clone());
        if was != status {
            org.log_event(directory::status_event(&was, status), &id, &login, None);
        }
        true
    }
    pub fn app(&self, app_id: &str) -> Option<OktaApp> {
        self.0.lock().apps.get(app_id).cloned()
    }
    /// Replaces an app's enabled provisioning features.
    pub fn set_features(&self, app_id: &str, features: &[&str]) -> bool {
        let mut org = self.0.lock();
        match org.apps.get_mut(app_id) {
            Some(a) => {
                a.features = features.iter().map(|f| f.to_string()).collect();
                true
            }
            None => false,
        }
    }
    /// The app's assignments, in listing order.
    pub fn assignments(&self, app_id: &str) -> Vec<AppUser> {
        self.0
            .lock()
            .assignments
            .get(app_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
    /// Pushing this user to any app fails from now on with `reason` (an
    /// attribute mapping the app refuses).
    pub fn fail_provisioning(&self, login: &str, reason: &str) {
        self.0
            .lock()
            .failing
            .insert(login.to_lowercase(), reason.to_string());
    }
    /// The mapping is fixed: the user's failed group pushes are retried.
    pub fn clear_provisioning_failure(&self, login: &str) {
        let mut org = self.0.lock();
        org.failing.remove(&login.to_lowercase());
        if let Some((k, _)) = org.user(login) {
            org.sync_group_assignments(k);
        }
    }
    /// The logins of a group's members.
    pub fn group_members(&self, name: &str) -> Vec<String> {
        let org = self.0.lock();
        let Some(g) = org.groups.values().find(|g| g.name == name) else {
            return Vec::new();
        };
        org.users
            .values()
            .filter(|u| g.members.contains(&u.id))
            .map(|u| u.login.clone())
            .collect()
    }
    /// The assignment of the user with this login, if any.
    pub fn assignment(&self, app_id: &str, login: &str) -> Option<AppUser> {
        let org = self.0.lock();
        let (k, _) = org.user(login)?;
        org.assignments.get(app_id)?.get(&k).cloned()
    }
}

pub type RunningOkta = Running<OktaHandle>;

impl Running<OktaHandle> {
    /// The org URL, e.g. `http://127.0.0.1:4711` (paths start `/api/v1`).
    pub fn url(&self) -> String {
        self.base_url()
    }
}

pub struct OktaSim;

impl OktaSim {
    pub async fn start(config: OktaSimConfig) -> Result<RunningOkta, SimError> {
        let mut org = Org::default();
        for u in &config.users {
            org.insert_user(u.clone(), None);
        }
        for g in &config.groups {
            org.insert_group(g);
        }
        for a in &config.apps {
            org.apps.insert(a.id.clone(), a.clone());
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("Okta SCIM Client 1.0.0")
            .build()
            .ok();
        let key = match (&config.oidc_signing_key_pem, config.oidc_apps.is_empty()) {
            (Some(pem), _) => {
                Some(oidc::SigningKey::from_pem(pem).ok_or(SimError::Key("oidc_signing_key_pem"))?)
            }
            (None, false) => Some(
                tokio::task::spawn_blocking(oidc::SigningKey::generate)
                    .await
                    .ok()
                    .flatten()
                    .ok_or(SimError::Key("a generated RSA key"))?,
            ),
            (None, true) => None,
        };
        let passwords = config
            .passwords
            .iter()
            .map(|(l, p)| (l.to_lowercase(), p.clone()))
            .collect();
        let shared = Arc::new(Shared {
            core: Core::new(
                vec![RateWindow {
                    max_requests: config.rate_limit,
                    per: config.window,
                }],
                None,
            ),
            org: Mutex::new(org),
            http,
            oidc: Mutex::new(oidc::OidcState::new(
                key,
                config.oidc_apps.clone(),
                passwords,
            )),
            config,
        });
        let routes = Router::new()
            .route("/api/v1/users", get(list_users))
            .route("/api/v1/users/{id}", get(get_user))
            .route("/api/v1/users/{id}/groups", get(directory::user_groups))
            .route(
                "/api/v1/users/{id}/sessions",
                axum::routing::delete(revoke_sessions),
            )
            .route("/api/v1/groups", get(directory::list_groups))
            .route("/api/v1/groups/{id}/users", get(directory::group_users))
            .route(
                "/api/v1/groups/{id}/users/{user}",
                axum::routing::put(add_group_member).delete(remove_group_member),
            )
            .route("/api/v1/logs", get(directory::list_logs))
            .route(oauth::TOKEN_PATH, axum::routing::post(oauth::token))
            .route(
                "/.well-known/openid-configuration",
                get(oidc::discovery_org),
            )
            .route(
                "/oauth2/default/.well-known/openid-configuration",
                get(oidc::discovery_default),
            )
            .route("/oauth2/v1/authorize", get(oidc::authorize_org))
            .route("/oauth2/default/v1/authorize", get(oidc::authorize_default))
            .route(
                "/oauth2/default/v1/token",
                axum::routing::post(oidc::token_default),
            )
            .route("/oauth2/v1/keys", get(oidc::keys))
            .route("/oauth2/default/v1/keys", get(oidc::keys))
            .route(oidc::LOGIN_PATH, axum::routing::post(oidc::sign_in))
            .route("/api/v1/apps/{app}", get(get_app))
            .route("/api/v1/apps/{app}/users", get(list_app_users).post(assign))
            .route(
                "/api/v1/apps/{app}/users/{user}",
                get(get_app_user).post(update_app_user).delete(unassign),
            );
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve("okta", port, app, OktaHandle(shared)).await
    }
}

fn okta_error(http: StatusCode, code: &str, summary: &str) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{:016x}", rand::random::<u64>()),
            "errorCauses": [],
        })
        .to_string(),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {what}"),
    )
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
        okta_error(
            http,
            "E0000009",
            &format!("Internal Server Error: {message}"),
        )
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            RATE_LIMIT_CODE,
            "API call exceeded rate limit due to too many requests.",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        if oidc::is_public(path) {
            return Ok(());
        }
        if let Some(t) = common::bearer(headers, "Bearer") {
            return oauth::authorize(self, &t, path);
        }
        match common::bearer(headers, "SSWS") {
            Some(t) if t == self.config.api_token => Ok(()),
            _ => Err(okta_error(
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided",
            )),
        }
    }
    fn shift_listing(&self) {
        let mut org = self.lock();
        org.next_front -= 1;
        let n = -org.next_front;
        let order = org.next_front;
        org.insert_user(
            OktaUser::new(&format!("shifted{n}@example.com"), "Shifted", "In"),
            Some(order),
        );
    }
    fn decorate(&self, response: &mut Response) {
        let Some((limit, remaining, reset)) = self.core.rate_usage() else {
            return;
        };
        // The epoch second by which the window has room again, rounded
        // up from the precise instant: a client that waits for it never
        // comes back early.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let reset_at = common::ceil_secs(now + reset);
        let h = response.headers_mut();
        for (name, v) in [
            ("x-rate-limit-limit", limit as u64),
            ("x-rate-limit-remaining", remaining as u64),
            ("x-rate-limit-reset", reset_at),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                h.insert(name, v);
            }
        }
    }
}

type St = State<Arc<Shared>>;

fn base_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

/// Parses `a eq "x" and b eq "y"`.
fn parse_filter(f: &str) -> Result<Vec<(String, String)>, Response> {
    let bad = || {
        okta_error(
            StatusCode::BAD_REQUEST,
            "E0000031",
            &format!("Invalid search criteria: {f}"),
        )
    };
    let mut out = Vec::new();
    let lower = f.to_string();
    for clause in lower.split(" and ") {
        let clause = clause.trim();
        let mut it = clause.splitn(3, ' ');
        let (Some(attr), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        if !op.eq_ignore_ascii_case("eq") {
            return Err(bad());
        }
        let value = value.trim().trim_matches('"').to_string();
        if !["status", "id", "profile.login", "profile.email"].contains(&attr) {
            return Err(bad());
        }
        out.push((attr.to_string(), value));
    }
    Ok(out)
}

fn matches(u: &OktaUser, clauses: &[(String, String)]) -> bool {
    clauses.iter().all(|(a, v)| match a.as_str() {
        "status" => u.status.eq_ignore_ascii_case(v),
        "id" => u.id == *v,
        "profile.login" => u.login.eq_ignore_ascii_case(v),
        "profile.email" => u.email.eq_ignore_ascii_case(v),
        _ => false,
    })
}

/// The page's `limit` and keyset position.
struct PageQuery {
    limit: usize,
    after: Option<String>,
}

fn page_query(
    q: &BTreeMap<String, String>,
    fault: Option<Extension<ActiveFault>>,
) -> Result<PageQuery, Response> {
    let limit = match q.get("limit").map(|l| l.trim().parse::<usize>()) {
        None => 200,
        Some(Ok(l)) if l >= 1 => l.min(200),
        Some(_) => {
            return Err(okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: limit",
            ));
        }
    };
    let after = q
        .get("after")
        .filter(|a| !a.is_empty() && !ActiveFault::repeat_page(fault))
        .cloned();
    Ok(PageQuery { limit, after })
}

fn with_links(mut r: Response, self_url: String, next_url: Option<String>) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{self_url}>; rel=\"self\"")) {
        h.append(header::LINK, v);
    }
    if let Some(n) = next_url
        && let Ok(v) = HeaderValue::from_str(&format!("<{n}>; rel=\"next\""))
    {
        h.append(header::LINK, v);
    }
    r
}

fn query_string(q: &BTreeMap<String, String>, after: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "after")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(a) = after {
        pairs.push(("after".into(), a.to_string()));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn list_users(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let pq = match page_query(&q, fault) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let clauses = match q.get("filter").map(|f| parse_filter(f)).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(r) => return r,
    };
    let names_status = clauses.iter().any(|(a, _)| a == "status");
    let base = base_of(&headers);
    let org = sh.lock();
    let start = match &pq.after {
        None => None,
        Some(a) => match org.users.iter().find(|(_, u)| &u.id == a) {
            Some((k, _)) => Some(*k),
            None => {
                return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Invalid after cursor");
            }
        },
    };
    let mut rows = org.users.iter().filter(|(k, u)| {
        start.is_none_or(|s| **k > s)
            && (names_status || u.status != "DEPROVISIONED")
            && matches(u, &clauses)
    });
    let page: Vec<&OktaUser> = rows.by_ref().take(pq.limit).map(|(_, u)| u).collect();
    let more = rows.next().is_some();
    let body = Value::Array(page.iter().map(|u| u.to_json(&base)).collect());
    let next = match (more, page.last()) {
        (true, Some(u)) => Some(format!(
            "{base}/api/v1/users?{}",
            query_string(&q, Some(&u.id))
        )),
        _ => None,
    };
    with_links(
        ok_json(body),
        format!(
            "{base}/api/v1/users?{}",
            query_string(&q, pq.after.as_deref())
        ),
        next,
    )
}

async fn get_user(State(sh): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let base = base_of(&headers);
    match sh.lock().user(&id) {
        Some((_, u)) => ok_json(u.to_json(&base)),
        None => not_found(&format!("{id} (User)")),
    }
}

/// `DELETE /api/v1/users/{id}/sessions`: ends the user's Okta sessions
/// (and with `oauthTokens=true` the tokens issued to them).
async fn revoke_sessions(
    State(sh): St,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut org = sh.lock();
    let Some((_, u)) = org.users.iter().find(|(_, u)| u.id == id) else {
        return not_found(&format!("{id} (User)"));
    };
    let login = u.login.clone();
    let tokens = q
        .get("oauthTokens")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    org.effects
        .push(&id, &login, EffectKind::SessionsRevoked { tokens }, "api");
    StatusCode::NO_CONTENT.into_response()
}

async fn get_app(State(sh): St, headers: HeaderMap, Path(app): Path<String>) -> Response {
    let base = base_of(&headers);
    let org = sh.lock();
    let Some(a) = org.apps.get(&app) else {
        return not_found(&format!("{app} (AppInstance)"));
    };
    ok_json(json!({
        "id": a.id,
        "name": a.name,
        "label": a.label,
        "status": "ACTIVE",
        "signOnMode": "SAML_2_0",
        "features": a.features,
        "_links": {"users": {"href": format!("{base}/api/v1/apps/{}/users", a.id)}},
    }))
}

async fn list_app_users(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(app): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let pq = match page_query(&q, fault) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let base = base_of(&headers);
    let org = sh.lock();
    if !org.apps.contains_key(&app) {
        return not_found(&format!("{app} (AppInstance)"));
    }
    let empty = BTreeMap::new();
    let assigned = org.assignments.get(&app).unwrap_or(&empty);
    let start = match &pq.after {
        None => None,
        Some(a) => match assigned.iter().find(|(_, au)| &au.user_id == a) {
            Some((k, _)) => Some(*k),
            None => {
                return okta_error(StatusCode::BAD_REQUEST, "E0000001", "Invalid after cursor");
            }
        },
    };
    let mut rows = assigned
        .iter()
        .filter(|(k, _)| start.is_none_or(|s| **k > s));
    let page: Vec<&AppUser> = rows.by_ref().take(pq.limit).map(|(_, a)| a).collect();
    let more = rows.next().is_some();
    let body = Value::Array(page.iter().map(|a| a.to_json(&base, &app)).collect());
    let path = format!("{base}/api/v1/apps/{app}/users");
    let next = match (more, page.last()) {
        (true, Some(a)) => Some(format!("{path}?{}", query_string(&q, Some(&a.user_id)))),
        _ => None,
    };
    with_links(
        ok_json(body),
        format!("{path}?{}", query_string(&q, pq.after.as_deref())),
        next,
    )
}

/// `PUT /api/v1/groups/{id}/users/{userId}` (204, also when already a
/// member) and `DELETE` (204, also when not a member), as Okta answers.
async fn add_group_member(State(sh): St, Path((group, user)): Path<(String, String)>) -> Response {
    change_membership(&sh, &group, &user, true)
}

async fn remove_group_member(
    State(sh): St,
    Path((group, user)): Path<(String, String)>,
) -> Response {
    change_membership(&sh, &group, &user, false)
}

fn change_membership(sh: &Shared, group: &str, user: &str, add: bool) -> Response {
    let mut guard = sh.lock();
    let org = &mut *guard;
    let Some((order, u)) = org.user(user).map(|(k, u)| (k, u.clone())) else {
        return not_found(&format!("{user} (User)"));
    };
    if u.id != user {
        return not_found(&format!("{user} (User)"));
    }
    let Some(g) = org.groups.values_mut().find(|g| g.id == group) else {
        return not_found(&format!("{group} (UserGroup)"));
    };
    let changed = if add {
        g.members.insert(u.id.clone())
    } else {
        g.members.remove(&u.id)
    };
    let name = g.name.clone();
    if changed {
        let kind = if add {
            EffectKind::MemberAdded {
                group: name.clone(),
            }
        } else {
            EffectKind::MemberRemoved {
                group: name.clone(),
            }
        };
        org.effects.push(&u.id, &u.login, kind, "api");
        org.log_event(
            if add {
                "group.user_membership.add"
            } else {
                "group.user_membership.remove"
            },
            &u.id,
            &u.login,
            Some(&name),
        );
        org.sync_group_assignments(order);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_app_user(
    State(sh): St,
    headers: HeaderMap,
    Path((app, user)): Path<(String, String)>,
) -> Response {
    let base = base_of(&headers);
    let org = sh.lock();
    let found = org
        .user(&user)
        .and_then(|(k, _)| org.assignments.get(&app)?.get(&k));
    match found {
        Some(a) => ok_json(a.to_json(&base, &app)),
        None => not_found(&format!("{user} (AppUser)")),
    }
}

fn text_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Null => None,
                    other => Some((k.clone(), other.to_string())),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What Okta's SCIM client must do after an assignment change.
enum Push {
    Provision {
        user: OktaUser,
        user_name: String,
        profile: BTreeMap<String, String>,
    },
    Profile {
        external_id: String,
        user: OktaUser,
        user_name: String,
        profile: BTreeMap<String, String>,
    },
    Deactivate {
        external_id: String,
    },
}

async fn assign(
    State(sh): St,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000003",
            "The request body was not well-formed.",
        );
    };
    let Some(user_id) = body.get("id").and_then(Value::as_str) else {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: id",
        );
    };
    let scope = body.get("scope").and_then(Value::as_str).unwrap_or("USER");
    let wanted_name = body
        .get("credentials")
        .and_then(|c| c.get("userName"))
        .and_then(Value::as_str);
    let profile = text_map(body.get("profile"));
    let base = base_of(&headers);
    let (order, push, downstream) = {
        let mut guard = sh.lock();
        // Disjoint field borrows need the plain struct, not the guard.
        let org = &mut *guard;
        let Some(a) = org.apps.get(&app).cloned() else {
            return not_found(&format!("{app} (AppInstance)"));
        };
        let Some((order, user)) = org.user(user_id).map(|(k, u)| (k, u.clone())) else {
            return not_found(&format!("{user_id} (User)"));
        };
        if user.id != user_id {
            // Okta wants the user id, not the login.
            return not_found(&format!("{user_id} (User)"));
        }
        if user.status == "DEPROVISIONED" {
            return okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: the user is deactivated",
            );
        }
        let user_name = wanted_name.unwrap_or(&user.login).to_string();
        let push_new = a.features.iter().any(|f| f == PUSH_NEW_USERS) && a.downstream.is_some();
        let assigned = org.assignments.entry(app.clone()).or_default();
        let push = match assigned.get_mut(&order) {
            Some(existing) => {
                let mut fields = Vec::new();
                if existing.user_name != user_name {
                    existing.user_name = user_name.clone();
                    fields.push("credentials.userName".to_string());
                }
                for (k, v) in &profile {
                    if existing.profile.get(k) != Some(v) {
                        existing.profile.insert(k.clone(), v.clone());
                        fields.push(format!("profile.{k}"));
                    }
                }
                let retry = existing.sync_state == "ERROR" && push_new;
                if !fields.is_empty() {
                    org.effects
                        .push(&user.id, &user.login, EffectKind::Updated { fields }, "api");
                }
                retry.then(|| Push::Provision {
                    user: user.clone(),
                    user_name,
                    profile: existing.profile.clone(),
                })
            }
            None => {
                let app_profile = profile.clone();
                assigned.insert(
                    order,
                    AppUser {
                        user_id: user.id.clone(),
                        user_name: user_name.clone(),
                        scope: scope.to_string(),
                        status: if push_new { "PROVISIONED" } else { "ACTIVE" }.into(),
                        sync_state: if push_new { "SYNCHRONIZED" } else { "DISABLED" }.into(),
                        external_id: None,
                        profile,
                        last_error: None,
                    },
                );
                org.effects.push(
                    &user.id,
                    &user.login,
                    EffectKind::Assigned { app: app.clone() },
                    "api",
                );
                push_new.then(|| Push::Provision {
                    user: user.clone(),
                    user_name,
                    profile: app_profile,
                })
            }
        };
        (order, push, a.downstream.clone())
    };
    if let (Some(push), Some(ds)) = (push, downstream) {
        let outcome = push_downstream(&sh, &ds, push).await;
        record_sync(&sh, &app, order, outcome);
    }
    let org = sh.lock();
    match org.assignments.get(&app).and_then(|m| m.get(&order)) {
        Some(au) => ok_json(au.to_json(&base, &app)),
        None => not_found(&format!("{user_id} (AppUser)")),
    }
}

async fn update_app_user(
    State(sh): St,
    headers: HeaderMap,
    Path((app, user_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000003",
            "The request body was not well-formed.",
        );
    };
    let wanted_name = body
        .get("credentials")
        .and_then(|c| c.get("userName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let profile = text_map(body.get("profile"));
    let base = base_of(&headers);
    let (order, push, downstream) = {
        let mut guard = sh.lock();
        // Disjoint field borrows need the plain struct, not the guard.
        let org = &mut *guard;
        let Some(a) = org.apps.get(&app).cloned() else {
            return not_found(&format!("{app} (AppInstance)"));
        };
        let Some((order, user)) = org.user(&user_id).map(|(k, u)| (k, u.clone())) else {
            return not_found(&format!("{user_id} (User)"));
        };
        let Some(existing) = org
            .assignments
            .get_mut(&app)
            .and_then(|m| m.get_mut(&order))
        else {
            return not_found(&format!("{user_id} (AppUser)"));
        };
        let mut fields = Vec::new();
        if let Some(n) = &wanted_name
            && &existing.user_name != n
        {
            existing.user_name = n.clone();
            fields.push("credentials.userName".to_string());
        }
        for (k, v) in &profile {
            if existing.profile.get(k) != Some(v) {
                existing.profile.insert(k.clone(), v.clone());
                fields.push(format!("profile.{k}"));
            }
        }
        let push = match (&existing.external_id, fields.is_empty()) {
            (Some(ext), false) if a.features.iter().any(|f| f == PUSH_PROFILE_UPDATES) => {
                Some(Push::Profile {
                    external_id: ext.clone(),
                    user: user.clone(),
                    user_name: existing.user_name.clone(),
                    profile: existing.profile.clone(),
                })
            }
            _ => None,
        };
        if !fields.is_empty() {
            org.effects
                .push(&user.id, &user.login, EffectKind::Updated { fields }, "api");
        }
        (order, push, a.downstream.clone())
    };
    if let (Some(push), Some(ds)) = (push, downstream) {
        let outcome = push_downstream(&sh, &ds, push).await;
        record_sync(&sh, &app, order, outcome);
    }
    let org = sh.lock();
    match org.assignments.get(&app).and_then(|m| m.get(&order)) {
        Some(au) => ok_json(au.to_json(&base, &app)),
        None => not_found(&format!("{user_id} (AppUser)")),
    }
}

async fn unassign(State(sh): St, Path((app, user_id)): Path<(String, String)>) -> Response {
    let (push, downstream) = {
        let mut guard = sh.lock();
        // Disjoint field borrows need the plain struct, not the guard.
        let org = &mut *guard;
        let Some(a) = org.apps.get(&app).cloned() else {
            return not_found(&format!("{app} (AppInstance)"));
        };
        let Some((order, user)) = org.user(&user_id).map(|(k, u)| (k, u.clone())) else {
            return not_found(&format!("{user_id} (User)"));
        };
        let Some(removed) = org.assignments.get_mut(&app).and_then(|m| m.remove(&order)) else {
            return not_found(&format!("{user_id} (AppUser)"));
        };
        org.effects.push(
            &user.id,
            &user.login,
            EffectKind::Unassigned { app: app.clone() },
            "api",
        );
        let push = match removed.external_id {
            Some(ext) if a.features.iter().any(|f| f == PUSH_USER_DEACTIVATION) => {
                Some(Push::Deactivate { external_id: ext })
            }
            _ => None,
        };
        (push, a.downstream.clone())
    };
    if let (Some(push), Some(ds)) = (push, downstream)
        && let Err(e) = push_downstream(&sh, &ds, push).await
    {
        // The assignment is gone either way; Okta reports the failed push
        // in its own task list, which this simulator does not model.
        tracing::warn!(error = %e, "okta simulator: downstream deactivation failed");
    }
    StatusCode::NO_CONTENT.into_response()
}

fn record_sync(sh: &Shared, app: &str, order: i64, outcome: Result<Option<String>, String>) {
    let mut org = sh.lock();
    if let Some(au) = org.assignments.get_mut(app).and_then(|m| m.get_mut(&order)) {
        match outcome {
            Ok(ext) => {
                if ext.is_some() {
                    au.external_id = ext;
                }
                au.sync_state = "SYNCHRONIZED".into();
                au.status = "PROVISIONED".into();
                au.last_error = None;
            }
            Err(e) => {
                au.sync_state = "ERROR".into();
                au.last_error = Some(e);
            }
        }
    }
}

/// The app-user profile fields Okta's SCIM mapping pushes, by SCIM path
/// (`department`, `costCenter`, `division`, `organization` go to the
/// enterprise extension; `title` and `userType` are core).
fn scim_profile(profile: &BTreeMap<String, String>) -> Vec<(String, String)> {
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    profile
        .iter()
        .filter_map(|(k, v)| {
            let path = match k.as_str() {
                "department" | "costCenter" | "division" | "organization" => {
                    format!("{ENTERPRISE}:{k}")
                }
                "cost_center" => format!("{ENTERPRISE}:costCenter"),
                "title" | "userType" => k.clone(),
                _ => return None,
            };
            Some((path, v.clone()))
        })
        .collect()
}

/// Okta's SCIM client: one push. Returns the downstream id when known.
async fn push_downstream(
    sh: &Shared,
    ds: &ScimDownstream,
    push: Push,
) -> Result<Option<String>, String> {
    let Some(http) = &sh.http else {
        return Err("no HTTP client".into());
    };
    let base = ds.base_url.trim_end_matches('/');
    let auth = format!("Bearer {}", ds.token);
    let patch = |id: &str, value: Value| {
        http.patch(format!("{base}/Users/{id}"))
            .header(header::AUTHORIZATION, auth.clone())
            .header(header::CONTENT_TYPE, "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": value}],
                })
                .to_string(),
            )
    };
    let check = |r: reqwest::Response| -> Result<reqwest::Response, String> {
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(format!("downstream answered HTTP {}", r.status().as_u16()))
        }
    };
    match push {
        Push::Provision {
            user,
            user_name,
            profile,
        } => {
            let found: Value = check(
                http.get(format!("{base}/Users"))
                    .header(header::AUTHORIZATION, auth.clone())
                    .query(&[
                        ("filter", format!("userName eq \"{user_name}\"")),
                        ("startIndex", "1".into()),
                        ("count", "100".into()),
                    ])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
            )?
            .json()
            .await
            .map_err(|e| e.to_string())?;
            if let Some(existing) = found
                .get("Resources")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
            {
                let id = existing
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if existing.get("active") == Some(&json!(false)) {
                    check(
                        patch(&id, json!({"active": true}))
                            .send()
                            .await
                            .map_err(|e| e.to_string())?,
                    )?;
                }
                return Ok(Some(id));
            }
            let mut body = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "name": {"givenName": user.first_name, "familyName": user.last_name},
                "emails": [{"primary": true, "value": user.email, "type": "work"}],
                "displayName": format!("{} {}", user.first_name, user.last_name),
                "externalId": user.id,
                "groups": [],
                "active": true,
            });
            if let Some(o) = body.as_object_mut() {
                for (k, v) in scim_profile(&profile) {
                    if let Some((ext, field)) = k.rsplit_once(':') {
                        let e = o.entry(ext.to_string()).or_insert_with(|| json!({}));
                        e[field] = json!(v);
                    } else {
                        o.insert(k, json!(v));
                    }
                }
            }
            let created: Value = check(
                http.post(format!("{base}/Users"))
                    .header(header::AUTHORIZATION, auth.clone())
                    .header(header::CONTENT_TYPE, "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
            )?
            .json()
            .await
            .map_err(|e| e.to_string())?;
            Ok(created
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string))
        }
        Push::Profile {
            external_id,
            user,
            user_name,
            profile,
        } => {
            let mut value = json!({
                "userName": user_name,
                "name.givenName": user.first_name,
                "name.familyName": user.last_name,
            });
            for (k, v) in scim_profile(&profile) {
                value[k] = json!(v);
            }
            check(
                patch(&external_id, value)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
            )?;
            Ok(Some(external_id))
        }
        Push::Deactivate { external_id } => {
            check(
                patch(&external_id, json!({"active": false}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
            )?;
            Ok(Some(external_id))
        }
    }
}

mod directory;
mod oauth;
pub mod oidc;

pub use directory::{LogEvent, OktaGroup};
pub use oauth::{OktaOAuthClient, TEST_OAUTH_KEY};
pub use oidc::OktaOidcApp;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let c = parse_filter(r#"profile.login eq "A@x.com" and status eq "ACTIVE""#).unwrap();
        let u = OktaUser::new("a@x.com", "A", "B");
        assert!(matches(&u, &c));
        assert!(parse_filter(r#"profile.login sw "a""#).is_err());
        assert!(parse_filter(r#"profile.nickName eq "a""#).is_err());
    }

    #[test]
    fn query_strings_are_encoded() {
        let mut q = BTreeMap::new();
        q.insert("filter".to_string(), "status eq \"X\"".to_string());
        q.insert("after".to_string(), "old".to_string());
        assert_eq!(
            query_string(&q, Some("00u1")),
            "filter=status%20eq%20%22X%22&after=00u1"
        );
    }
}
