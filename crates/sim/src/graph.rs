//! A local Microsoft Graph (v1.0) tenant: the directory reads roster's
//! Entra ID source makes, and the Microsoft identity platform's token
//! endpoint (vendor-apis.md §4).
//!
//! # API
//!
//! * `POST /{tenant}/oauth2/v2.0/token` (form: `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `scope=https://graph.microsoft.com/.default`)
//!   → `{token_type:"Bearer", expires_in, access_token}`; bad client → 401
//!   `invalid_client`. Every other route wants `Authorization: Bearer`; an
//!   unknown or expired token → 401 `InvalidAuthenticationToken`
//!   ([`GraphHandle::expire_access_tokens`]).
//! * `GET /v1.0/users` (`$select`, `$top` 1–999 default 100, `$expand=manager`,
//!   `$skiptoken`): `{value:[…], "@odata.nextLink"}`. Without `$select`
//!   only Graph's default set comes back; `accountEnabled`, `employeeId`,
//!   `department` and the rest must be selected, as in Graph.
//! * `GET /v1.0/users/delta` (`$select`, `$deltatoken`, `$skiptoken`):
//!   the first round lists every user and ends with `@odata.deltaLink`;
//!   a round from a deltaLink lists the users changed since it (current
//!   state; `manager@delta` when `manager` is selected) and the users
//!   removed since, as `{id, "@removed":{reason:"changed"|"deleted"}}`.
//!   `$deltatoken=latest` answers no users and a deltaLink for now. An
//!   expired token → 410 `syncStateNotFound`
//!   ([`GraphHandle::expire_delta_tokens`]).
//! * `GET /v1.0/users/{id}/memberOf/microsoft.graph.group`,
//!   `GET /v1.0/groups`, `GET /v1.0/groups/{id}/members/microsoft.graph.user`
//!   (`$select`, `$top`, `$skiptoken`).
//! * `GET /v1.0/users/{idOrUpn}` (`$select`); `GET /v1.0/groups` also
//!   takes `$filter=displayName eq '…'`.
//! * Group membership writes, for roster's `idp` path:
//!   `POST /v1.0/groups/{id}/members/$ref` with
//!   `{"@odata.id":"…/directoryObjects/{userId}"}` → 204 (already a member
//!   → 400 `Request_BadRequest` "One or more added object references
//!   already exist…", as Graph answers); `DELETE
//!   /v1.0/groups/{id}/members/{userId}/$ref` → 204 (not a member → 404).
//!   Each change is in the effect log ([`GraphHandle::effects`]).
//! * Enterprise apps ([`GraphServicePrincipal`]) with provisioning:
//!   `GET /v1.0/servicePrincipals/{id}/synchronization/jobs` →
//!   `{value:[{id, templateId, schedule:{state}, status:{code}}]}` (`code`:
//!   `NotConfigured`, `NotRun`, `Active`, `Paused`, `Quarantine`); and
//!   `GET /v1.0/auditLogs/provisioning` (`$filter` with `eq` clauses on
//!   `servicePrincipal/id` and `sourceIdentity/id` joined by `and`; `$top`)
//!   → provisioningObjectSummary records, newest first:
//!   `{id, activityDateTime, provisioningAction, servicePrincipal:{id},
//!   sourceIdentity:{id, displayName}, provisioningStatusInfo:{status,
//!   errorInformation:{errorCode, reason}}}`.
//!
//!   Provisioning runs inline (real Entra runs a cycle every ~40 minutes):
//!   a membership change that moves a user into or out of the scope of an
//!   app whose job is `Active` logs a `create` (in scope) or `disable` (out
//!   of scope) event, `success`, or `failure` with the reason
//!   [`GraphHandle::fail_provisioning`] set (the "attribute mismatch"
//!   switch). [`GraphHandle::clear_provisioning_failure`] stands for the
//!   next cycle after the mapping is fixed: the failed export is retried
//!   and logs its success. [S]: the event shapes follow Graph's
//!   provisioningObjectSummary; which action Entra logs when a user leaves
//!   scope depends on the app's settings (this simulator: `disable`).
//! * `POST /v1.0/users/{id|userPrincipalName}/revokeSignInSessions`
//!   (application permission `User.RevokeSessions.All`): 200
//!   `{"@odata.context":…,"value":true}` and a `SessionsRevoked { tokens:
//!   true }` effect (Graph invalidates the refresh tokens and the browser
//!   session cookies); an unknown user → 404 `Request_ResourceNotFound`.
//! * Throttling: over a configured window, or under a 429 storm → 429
//!   `TooManyRequests` with `Retry-After` (seconds).
//!
//! Paging is keyset (`$skiptoken` names the last row), so a user created
//! mid-read never shifts a page.

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

/// Graph's default `$select` for users.
const DEFAULT_SELECT: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

#[derive(Clone, Debug)]
pub struct GraphSimConfig {
    pub port: u16,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub rate_limits: Vec<RateWindow>,
    pub users: Vec<GraphUser>,
    /// Group names with the userPrincipalNames of their members.
    pub groups: Vec<(String, Vec<String>)>,
    /// Enterprise apps that provision downstream.
    pub service_principals: Vec<GraphServicePrincipal>,
}

/// An enterprise app (servicePrincipal) with a provisioning job: the
/// groups assigned to it put their members in its provisioning scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphServicePrincipal {
    pub id: String,
    pub display_name: String,
    /// The synchronization job's `status.code` (`Active` provisions).
    pub job_status: String,
    /// Display names of the groups assigned to the app.
    pub groups: Vec<String>,
}

impl GraphServicePrincipal {
    /// An app whose provisioning job is `Active`.
    pub fn new(id: &str, display_name: &str, groups: &[&str]) -> Self {
        GraphServicePrincipal {
            id: id.to_string(),
            display_name: display_name.to_string(),
            job_status: "Active".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
    pub fn with_job_status(mut self, code: &str) -> Self {
        self.job_status = code.to_string();
        self
    }
}

/// One provisioning log record (provisioningObjectSummary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisioningEvent {
    pub id: String,
    pub seq: u64,
    pub service_principal: String,
    pub user_id: String,
    pub user_principal_name: String,
    /// `create` or `disable`.
    pub action: String,
    /// `success` or `failure`.
    pub status: String,
    pub error_code: Option<String>,
    pub reason: Option<String>,
}

impl GraphSimConfig {
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        GraphSimConfig {
            port: 0,
            tenant: tenant.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            rate_limits: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            service_principals: Vec::new(),
        }
    }
    pub fn with_service_principal(mut self, sp: GraphServicePrincipal) -> Self {
        self.service_principals.push(sp);
        self
    }
    pub fn with_user(mut self, u: GraphUser) -> Self {
        self.users.push(u);
        self
    }
    pub fn with_group(mut self, name: &str, upns: &[&str]) -> Self {
        self.groups.push((
            name.to_string(),
            upns.iter().map(|u| u.to_string()).collect(),
        ));
        self
    }
    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }
}

/// A user in the tenant. `id` is assigned when empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphUser {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub other_mails: Vec<String>,
    pub given_name: String,
    pub surname: String,
    pub account_enabled: bool,
    pub employee_id: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    /// `employeeOrgData.costCenter`.
    pub cost_center: Option<String>,
    /// The manager's object id.
    pub manager_id: Option<String>,
    /// `employeeHireDate` (RFC 3339).
    pub hire_date: Option<String>,
    /// `employeeLeaveDateTime` (RFC 3339).
    pub leave_date: Option<String>,
}

impl GraphUser {
    pub fn new(upn: &str, given: &str, surname: &str) -> Self {
        GraphUser {
            id: String::new(),
            user_principal_name: upn.to_string(),
            mail: Some(upn.to_string()),
            other_mails: Vec::new(),
            given_name: given.to_string(),
            surname: surname.to_string(),
            account_enabled: true,
            employee_id: None,
            department: None,
            job_title: None,
            cost_center: None,
            manager_id: None,
            hire_date: None,
            leave_date: None,
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
    pub fn with_cost_center(mut self, c: &str) -> Self {
        self.cost_center = Some(c.to_string());
        self
    }
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.account_enabled = enabled;
        self
    }
    pub fn with_manager_id(mut self, id: &str) -> Self {
        self.manager_id = Some(id.to_string());
        self
    }

    /// Every property, by its Graph name (without `manager`).
    fn full_json(&self) -> Value {
        json!({
            "id": self.id,
            "userPrincipalName": self.user_principal_name,
            "mail": self.mail,
            "otherMails": self.other_mails,
            "givenName": self.given_name,
            "surname": self.surname,
            "displayName": format!("{} {}", self.given_name, self.surname),
            "accountEnabled": self.account_enabled,
            "employeeId": self.employee_id,
            "department": self.department,
            "jobTitle": self.job_title,
            "employeeOrgData": {"costCenter": self.cost_center, "division": null},
            "employeeHireDate": self.hire_date,
            "employeeLeaveDateTime": self.leave_date,
            "businessPhones": [],
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": null,
        })
    }

    /// The selected properties (Graph's default set when none are).
    fn to_json(&self, select: &[String]) -> Value {
        let full = self.full_json();
        let mut out = serde_json::Map::new();
        let wanted: Vec<&str> = if select.is_empty() {
            DEFAULT_SELECT.to_vec()
        } else {
            select.iter().map(String::as_str).collect()
        };
        for k in wanted {
            if let Some(v) = full.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
        out.insert("id".into(), json!(self.id));
        Value::Object(out)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphGroup {
    pub id: String,
    pub display_name: String,
    pub members: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Tenant {
    /// By listing order, with the version of their last change.
    users: BTreeMap<i64, (GraphUser, u64)>,
    groups: BTreeMap<i64, GraphGroup>,
    /// Removed users: id → (reason, version).
    removed: BTreeMap<String, (String, u64)>,
    version: u64,
    next: i64,
    next_front: i64,
    tokens: BTreeSet<String>,
    /// Delta tokens below this are expired.
    delta_floor: u64,
    service_principals: Vec<GraphServicePrincipal>,
    /// Newest last.
    provisioning: Vec<ProvisioningEvent>,
    /// userPrincipalName (lower-cased) → why provisioning fails for them.
    failing: BTreeMap<String, String>,
    effects: EffectLog,
}

impl Tenant {
    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
    fn insert_user(&mut self, mut u: GraphUser, order: Option<i64>) -> GraphUser {
        self.next += 1;
        if u.id.is_empty() {
            u.id = format!("{:08x}-0000-4000-8000-{:012x}", self.next, self.next);
        }
        let v = self.bump();
        self.removed.remove(&u.id);
        self.users
            .insert(order.unwrap_or(self.next), (u.clone(), v));
        u
    }
    /// Whether the user is in the provisioning scope of `sp` (a member of
    /// a group assigned to it).
    fn in_scope(&self, sp: &GraphServicePrincipal, uid: &str) -> bool {
        self.groups
            .values()
            .any(|g| sp.groups.contains(&g.display_name) && g.members.contains(uid))
    }

    /// Runs provisioning of `uid` for every active app whose scope the
    /// membership change moved them into or out of. `before` is the scope
    /// per app before the change.
    fn provision_changes(&mut self, uid: &str, before: &BTreeMap<String, bool>) {
        let sps = self.service_principals.clone();
        for sp in sps {
            let now = self.in_scope(&sp, uid);
            if before.get(&sp.id).copied() == Some(now) || sp.job_status != "Active" {
                continue;
            }
            self.provision(&sp.id, uid, if now { "create" } else { "disable" });
        }
    }

    fn scopes(&self, uid: &str) -> BTreeMap<String, bool> {
        self.service_principals
            .iter()
            .map(|sp| (sp.id.clone(), self.in_scope(sp, uid)))
            .collect()
    }

    fn provision(&mut self, sp: &str, uid: &str, action: &str) {
        let upn = self
            .users
            .values()
            .find(|(u, _)| u.id == uid)
            .map(|(u, _)| u.user_principal_name.clone())
            .unwrap_or_default();
        let failure = self.failing.get(&upn.to_lowercase()).cloned();
        let seq = self.provisioning.len() as u64;
        self.provisioning.push(ProvisioningEvent {
            id: format!("prov-{seq:06}"),
            seq,
            service_principal: sp.to_string(),
            user_id: uid.to_string(),
            user_principal_name: upn,
            action: action.to_string(),
            status: if failure.is_some() {
                "failure"
            } else {
                "success"
            }
            .into(),
            error_code: failure
                .as_ref()
                .map(|_| "SystemForCrossDomainIdentityManagementBadRequest".to_string()),
            reason: failure,
        });
    }

    fn find(&self, id_or_upn: &str) -> Option<i64> {
        self.users
            .iter()
            .find(|(_, (u, _))| {
                u.id == id_or_upn || u.user_principal_name.eq_ignore_ascii_case(id_or_upn)
            })
            .map(|(k, _)| *k)
    }
}

struct Shared {
    config: GraphSimConfig,
    core: Core,
    tenant: Mutex<Tenant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct GraphHandle(Arc<Shared>);

common::fault_controls!(GraphHandle);

impl GraphHandle {
    /// Every change made through the API (memberships added and removed,
    /// sessions revoked), in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.0.lock().effects.all()
    }
    pub fn users(&self) -> Vec<GraphUser> {
        self.0
            .lock()
            .users
            .values()
            .map(|(u, _)| u.clone())
            .collect()
    }
    pub fn user(&self, id_or_upn: &str) -> Option<GraphUser> {
        let t = self.0.lock();
        let k = t.find(id_or_upn)?;
        t.users.get(&k).map(|(u, _)| u.clone())
    }
    pub fn groups(&self) -> Vec<GraphGroup> {
        self.0.lock().groups.values().cloned().collect()
    }
    /// Adds a user; returns it with its id.
    pub fn add_user(&self, u: GraphUser) -> GraphUser {
        self.0.lock().insert_user(u, None)
    }
    /// Edits a user (a change the next delta round reports).
    pub fn update_user(&self, id_or_upn: &str, edit: impl FnOnce(&mut GraphUser)) -> bool {
        let mut t = self.0.lock();
        let Some(k) = t.find(id_or_upn) else {
            return false;
        };
        let v = t.bump();
        match t.users.get_mut(&k) {
            Some((u, ver)) => {
                edit(u);
                *ver = v;
                true
            }
            None => false,
        }
    }
    /// Blocks or allows sign-in.
    pub fn set_enabled(&self, id_or_upn: &str, enabled: bool) -> bool {
        self.update_user(id_or_upn, |u| u.account_enabled = enabled)
    }
    /// Deletes a user: soft (`restorable`, reported as `changed`) or for
    /// good (`deleted`).
    pub fn delete_user(&self, id_or_upn: &str, restorable: bool) -> bool {
        let mut t = self.0.lock();
        let Some(k) = t.find(id_or_upn) else {
            return false;
        };
        let Some((u, _)) = t.users.remove(&k) else {
            return false;
        };
        for g in t.groups.values_mut() {
            g.members.remove(&u.id);
        }
        let v = t.bump();
        let reason = if restorable { "changed" } else { "deleted" };
        t.removed.insert(u.id, (reason.to_string(), v));
        true
    }
    pub fn add_member(&self, group: &str, id_or_upn: &str) -> bool {
        let mut t = self.0.lock();
        let Some(k) = t.find(id_or_upn) else {
            return false;
        };
        let Some(uid) = t.users.get(&k).map(|(u, _)| u.id.clone()) else {
            return false;
        };
        match t
            .groups
            .values_mut()
            .find(|g| g.display_name == group || g.id == group)
        {
            Some(g) => {
                g.members.insert(uid);
                true
            }
            None => false,
        }
    }
    /// The userPrincipalNames of a group's members (by name or id).
    pub fn members(&self, group: &str) -> Vec<String> {
        let t = self.0.lock();
        let Some(g) = t
            .groups
            .values()
            .find(|g| g.display_name == group || g.id == group)
        else {
            return Vec::new();
        };
        t.users
            .values()
            .filter(|(u, _)| g.members.contains(&u.id))
            .map(|(u, _)| u.user_principal_name.clone())
            .collect()
    }
    /// A group's object id.
    pub fn group_id(&self, name: &str) -> Option<String> {
        let t = self.0.lock();
        t.groups
            .values()
            .find(|g| g.display_name == name)
            .map(|g| g.id.clone())
    }
    /// Adds a group (setup); returns its id.
    pub fn add_group(&self, name: &str) -> String {
        let mut t = self.0.lock();
        t.next += 1;
        let n = t.next;
        let id = format!("{n:08x}-0000-4000-9000-{n:012x}");
        t.groups.insert(
            n,
            GraphGroup {
                id: id.clone(),
                display_name: name.to_string(),
                members: BTreeSet::new(),
            },
        );
        id
    }
    /// Sets the app's provisioning job status (`Active`, `Paused`, ...).
    pub fn set_job_status(&self, sp: &str, code: &str) -> bool {
        let mut t = self.0.lock();
        match t.service_principals.iter_mut().find(|s| s.id == sp) {
            Some(s) => {
                s.job_status = code.to_string();
                true
            }
            None => false,
        }
    }
    /// From now on, provisioning this user fails with `reason` (an
    /// attribute mapping the app refuses).
    pub fn fail_provisioning(&self, upn: &str, reason: &str) {
        self.0
            .lock()
            .failing
            .insert(upn.to_lowercase(), reason.to_string());
    }
    /// The mapping is fixed: the next cycle retries this user's failed
    /// exports, each logging its outcome.
    pub fn clear_provisioning_failure(&self, upn: &str) {
        let mut t = self.0.lock();
        t.failing.remove(&upn.to_lowercase());
        let Some(k) = t.find(upn) else { return };
        let Some(uid) = t.users.get(&k).map(|(u, _)| u.id.clone()) else {
            return;
        };
        let sps: Vec<String> = t.service_principals.iter().map(|s| s.id.clone()).collect();
        for sp in sps {
            let last = t
                .provisioning
                .iter()
                .rev()
                .find(|e| e.service_principal == sp && e.user_id == uid)
                .cloned();
            if let Some(e) = last.filter(|e| e.status == "failure") {
                t.provision(&sp, &uid, &e.action);
            }
        }
    }
    /// The provisioning log, oldest first.
    pub fn provisioning_events(&self) -> Vec<ProvisioningEvent> {
        self.0.lock().provisioning.clone()
    }
    /// Every deltaLink handed out so far stops working (410).
    pub fn expire_delta_tokens(&self) {
        let mut t = self.0.lock();
        t.delta_floor = t.version + 1;
    }
    /// Every access token handed out so far stops working (401).
    pub fn expire_access_tokens(&self) {
        self.0.lock().tokens.clear();
    }
}

pub type RunningGraph = Running<GraphHandle>;

impl Running<GraphHandle> {
    /// Graph's base, e.g. `http://127.0.0.1:4711/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }
    /// The identity platform's base (the tenant follows), e.g.
    /// `http://127.0.0.1:4711`.
    pub fn login_url(&self) -> String {
        self.base_url()
    }
}

pub struct GraphSim;

impl GraphSim {
    pub async fn start(config: GraphSimConfig) -> Result<RunningGraph, SimError> {
        let mut t = Tenant::default();
        for u in &config.users {
            t.insert_user(u.clone(), None);
        }
        for (name, upns) in &config.groups {
            t.next += 1;
            let members = upns
                .iter()
                .filter_map(|u| t.find(u))
                .filter_map(|k| t.users.get(&k).map(|(u, _)| u.id.clone()))
                .collect();
            let id = format!("{:08x}-0000-4000-9000-{:012x}", t.next, t.next);
            t.groups.insert(
                t.next,
                GraphGroup {
                    id,
                    display_name: name.clone(),
                    members,
                },
            );
        }
        t.service_principals = config.service_principals.clone();
        let shared = Arc::new(Shared {
            core: Core::new(config.rate_limits.clone(), None),
            tenant: Mutex::new(t),
            config,
        });
        let routes = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users", get(list_users))
            .route("/v1.0/users/delta", get(delta))
            .route(
                "/v1.0/users/{id}/revokeSignInSessions",
                post(revoke_sign_in_sessions),
            )
            .route(
                "/v1.0/users/{id}/memberOf/microsoft.graph.group",
                get(member_of),
            )
            .route("/v1.0/users/{id}", get(get_user))
            .route("/v1.0/groups", get(list_groups))
            .route(
                "/v1.0/groups/{id}/members/microsoft.graph.user",
                get(group_members),
            )
            .route("/v1.0/groups/{id}/members/$ref", post(add_member))
            .route(
                "/v1.0/groups/{id}/members/{user}/$ref",
                axum::routing::delete(remove_member),
            )
            .route(
                "/v1.0/servicePrincipals/{id}/synchronization/jobs",
                get(sync_jobs),
            )
            .route("/v1.0/auditLogs/provisioning", get(provisioning_logs));
        let host: Arc<dyn FaultHost> = shared.clone();
        let app = common::with_faults(routes, host).with_state(shared.clone());
        let port = shared.config.port;
        common::serve("graph", port, app, GraphHandle(shared)).await
    }
}

fn graph_error(http: StatusCode, code: &str, message: &str) -> Response {
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-01-05T09:00:00",
                "request-id": format!("{:032x}", rand::random::<u128>()),
                "client-request-id": format!("{:032x}", rand::random::<u128>()),
            }
        }})
        .to_string(),
    )
        .into_response()
}

/// `POST /v1.0/users/{id}/revokeSignInSessions`.
async fn revoke_sign_in_sessions(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let mut t = sh.lock();
    let Some(k) = t.find(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let Some((u, _)) = t.users.get(&k) else {
        return graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &id);
    };
    let (uid, upn) = (u.id.clone(), u.user_principal_name.clone());
    t.effects.push(
        &uid,
        &upn,
        EffectKind::SessionsRevoked { tokens: true },
        "api",
    );
    ok_json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
        "value": true,
    }))
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
        graph_error(http, "generalException", message)
    }
    fn rate_limited(&self, retry_after_secs: Option<u64>) -> Response {
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        );
        if let Some(s) = retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
    fn authorize(&self, headers: &HeaderMap, path: &str) -> Result<(), Response> {
        if path.ends_with("/oauth2/v2.0/token") {
            return Ok(());
        }
        match common::bearer(headers, "Bearer") {
            Some(t) if self.lock().tokens.contains(&t) => Ok(()),
            _ => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            )),
        }
    }
    fn shift_listing(&self) {
        let mut t = self.lock();
        t.next_front -= 1;
        let n = -t.next_front;
        let order = t.next_front;
        t.insert_user(
            GraphUser::new(&format!("shifted{n}@example.com"), "Shifted", "In"),
            Some(order),
        );
    }
}

type St = State<Arc<Shared>>;

async fn token(
    State(sh): St,
    Path(tenant): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let c = &sh.config;
    if tenant != c.tenant {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}).to_string(),
        )
            .into_response();
    }
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials"
        || field("client_id") != c.client_id
        || field("client_secret") != c.client_secret
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}).to_string(),
        )
            .into_response();
    }
    let token = format!("eyJ0eXAiOiJKV1Qi.{:032x}", rand::random::<u128>());
    sh.lock().tokens.insert(token.clone());
    ok_json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

fn base_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

fn select_of(q: &BTreeMap<String, String>) -> Vec<String> {
    q.get("$select")
        .map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn top_of(q: &BTreeMap<String, String>, default: usize) -> Result<usize, Response> {
    match q.get("$top").map(|t| t.trim().parse::<usize>()) {
        None => Ok(default),
        Some(Ok(t)) if (1..=999).contains(&t) => Ok(t),
        Some(_) => Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Invalid page size specified: '$top' must be between 1 and 999.",
        )),
    }
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

/// `path?q` with `$skiptoken` (or `$deltatoken`) replaced.
fn link(path: &str, q: &BTreeMap<String, String>, key: &str, value: &str) -> String {
    let mut pairs: Vec<String> = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "$skiptoken" | "$deltatoken"))
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    pairs.push(format!("{}={}", enc(key), enc(value)));
    format!("{path}?{}", pairs.join("&"))
}

/// A keyset page: rows after the `$skiptoken` key, at most `top`.
fn keyset<T: Clone>(
    rows: Vec<(i64, T)>,
    q: &BTreeMap<String, String>,
    top: usize,
    repeat: bool,
) -> Result<(Vec<T>, Option<i64>), Response> {
    let after = match q.get("$skiptoken").filter(|_| !repeat) {
        None => None,
        Some(s) => Some(s.trim_start_matches('k').parse::<i64>().map_err(|_| {
            graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Invalid $skiptoken.",
            )
        })?),
    };
    let mut it = rows
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| *k > a));
    let page: Vec<(i64, T)> = it.by_ref().take(top).collect();
    let more = it.next().is_some();
    let last = page.last().map(|(k, _)| *k);
    Ok((
        page.into_iter().map(|(_, t)| t).collect(),
        if more { last } else { None },
    ))
}

fn manager_json(id: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.user", "id": id})
}

async fn list_users(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let top = match top_of(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let select = select_of(&q);
    let expand_manager = q.get("$expand").is_some_and(|e| e.starts_with("manager"));
    let rows: Vec<(i64, GraphUser)> = sh
        .lock()
        .users
        .iter()
        .map(|(k, (u, _))| (*k, u.clone()))
        .collect();
    let (page, next) = match keyset(rows, &q, top, ActiveFault::repeat_page(fault)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let value: Vec<Value> = page
        .iter()
        .map(|u| {
            let mut v = u.to_json(&select);
            if expand_manager {
                v["manager"] = u
                    .manager_id
                    .as_deref()
                    .map(manager_json)
                    .unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    let path = format!("{}/v1.0/users", base_of(&headers));
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": value});
    if let Some(k) = next {
        body["@odata.nextLink"] = json!(link(&path, &q, "$skiptoken", &format!("k{k}")));
    }
    ok_json(body)
}

/// A delta round's position: the version it reports changes after, the
/// version it will hand out, and the last row listed.
fn parse_skip(s: &str) -> Option<(u64, u64, i64)> {
    let mut it = s.split('_');
    let from = it.next()?.strip_prefix('d')?.parse().ok()?;
    let upto = it.next()?.parse().ok()?;
    let after = it.next()?.parse().ok()?;
    Some((from, upto, after))
}

async fn delta(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let path = format!("{}/v1.0/users/delta", base_of(&headers));
    let select = select_of(&q);
    let with_manager = select.iter().any(|s| s == "manager");
    let page_size = 100;
    let t = sh.lock();
    let expired = || {
        graph_error(
            StatusCode::GONE,
            "syncStateNotFound",
            "The sync state is not found; the delta token has expired. Start a new round of delta.",
        )
    };
    let bad = || {
        graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid delta or skip token.",
        )
    };
    // (from, upto, after): report rows changed after `from`, hand out `upto`.
    let (from, upto, after) = match (q.get("$deltatoken"), q.get("$skiptoken")) {
        (Some(d), _) if d == "latest" => {
            let body = json!({"value": [], "@odata.deltaLink": link(&path, &q, "$deltatoken", &format!("v{}", t.version))});
            return ok_json(body);
        }
        (Some(d), _) => match d.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) {
            Some(v) if v < t.delta_floor => return expired(),
            Some(v) => (Some(v), t.version, None),
            None => return bad(),
        },
        (None, Some(s)) => match parse_skip(s) {
            Some((from, _, _)) if from > 0 && from - 1 < t.delta_floor => return expired(),
            Some((from, upto, after)) => {
                let after = if ActiveFault::repeat_page(fault) {
                    None
                } else {
                    Some(after)
                };
                ((from > 0).then_some(from - 1), upto, after)
            }
            None => return bad(),
        },
        (None, None) => (None, t.version, None),
    };
    let rows: Vec<(i64, Value)> = t
        .users
        .iter()
        .filter(|(k, (_, v))| after.is_none_or(|a| **k > a) && from.is_none_or(|f| *v > f))
        .map(|(k, (u, _))| {
            let mut v = u.to_json(&select);
            if with_manager && let Some(m) = &u.manager_id {
                v["manager@delta"] = json!([manager_json(m)]);
            }
            (*k, v)
        })
        .collect();
    let more = rows.len() > page_size;
    let page: Vec<(i64, Value)> = rows.into_iter().take(page_size).collect();
    let mut value: Vec<Value> = page.iter().map(|(_, v)| v.clone()).collect();
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users"});
    // `from` is encoded +1 so that 0 means "initial round".
    let from_enc = from.map(|f| f + 1).unwrap_or(0);
    match (more, page.last()) {
        (true, Some((k, _))) => {
            body["@odata.nextLink"] = json!(link(
                &path,
                &q,
                "$skiptoken",
                &format!("d{from_enc}_{upto}_{k}")
            ));
        }
        _ => {
            if let Some(f) = from {
                for (id, (reason, v)) in &t.removed {
                    if *v > f {
                        value.push(json!({"id": id, "@removed": {"reason": reason}}));
                    }
                }
            }
            body["@odata.deltaLink"] = json!(link(&path, &q, "$deltatoken", &format!("v{upto}")));
        }
    }
    body["value"] = Value::Array(value);
    ok_json(body)
}

async fn member_of(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let top = match top_of(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let t = sh.lock();
    let Some(k) = t.find(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist."),
        );
    };
    let uid = t
        .users
        .get(&k)
        .map(|(u, _)| u.id.clone())
        .unwrap_or_default();
    let rows: Vec<(i64, Value)> = t
        .groups
        .iter()
        .filter(|(_, g)| g.members.contains(&uid))
        .map(|(k, g)| (*k, json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.display_name})))
        .collect();
    drop(t);
    let (page, next) = match keyset(rows, &q, top, ActiveFault::repeat_page(fault)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let path = format!(
        "{}/v1.0/users/{id}/memberOf/microsoft.graph.group",
        base_of(&headers)
    );
    let mut body = json!({"value": page});
    if let Some(k) = next {
        body["@odata.nextLink"] = json!(link(&path, &q, "$skiptoken", &format!("k{k}")));
    }
    ok_json(body)
}

async fn list_groups(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let top = match top_of(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let wanted = q.get("$filter").map(|f| filter_eq(f, "displayName"));
    if let Some(None) = wanted {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported query.",
        );
    }
    let wanted = wanted.flatten();
    let rows: Vec<(i64, Value)> = sh
        .lock()
        .groups
        .iter()
        .filter(|(_, g)| wanted.as_ref().is_none_or(|w| &g.display_name == w))
        .map(|(k, g)| (*k, json!({"id": g.id, "displayName": g.display_name})))
        .collect();
    let (page, next) = match keyset(rows, &q, top, ActiveFault::repeat_page(fault)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let path = format!("{}/v1.0/groups", base_of(&headers));
    let mut body = json!({"value": page});
    if let Some(k) = next {
        body["@odata.nextLink"] = json!(link(&path, &q, "$skiptoken", &format!("k{k}")));
    }
    ok_json(body)
}

async fn group_members(
    State(sh): St,
    headers: HeaderMap,
    fault: Option<Extension<ActiveFault>>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let top = match top_of(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let select = select_of(&q);
    let t = sh.lock();
    let Some(g) = t.groups.values().find(|g| g.id == id).cloned() else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist."),
        );
    };
    let rows: Vec<(i64, Value)> = t
        .users
        .iter()
        .filter(|(_, (u, _))| g.members.contains(&u.id))
        .map(|(k, (u, _))| {
            let mut v = if select.is_empty() {
                json!({"id": u.id})
            } else {
                u.to_json(&select)
            };
            v["@odata.type"] = json!("#microsoft.graph.user");
            (*k, v)
        })
        .collect();
    drop(t);
    let (page, next) = match keyset(rows, &q, top, ActiveFault::repeat_page(fault)) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let path = format!(
        "{}/v1.0/groups/{id}/members/microsoft.graph.user",
        base_of(&headers)
    );
    let mut body = json!({"value": page});
    if let Some(k) = next {
        body["@odata.nextLink"] = json!(link(&path, &q, "$skiptoken", &format!("k{k}")));
    }
    ok_json(body)
}

/// The value of a `$filter` of one `field eq 'value'` clause; `None` when
/// the filter is anything else.
fn filter_eq(filter: &str, field: &str) -> Option<String> {
    clauses(filter)?.remove(field)
}

/// `a eq 'x' and b eq 'y'` as a map; `None` if it is not of that form.
fn clauses(filter: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in filter.split(" and ") {
        let (field, value) = part.trim().split_once(" eq ")?;
        let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        out.insert(field.trim().to_string(), value.replace("''", "'"));
    }
    Some(out)
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn get_user(
    State(sh): St,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    match t.find(&id).and_then(|k| t.users.get(&k)) {
        Some((u, _)) => ok_json(u.to_json(&select_of(&q))),
        None => not_found(&id),
    }
}

async fn add_member(State(sh): St, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let Some(reference) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("@odata.id")
            .and_then(Value::as_str)
            .map(str::to_string)
    }) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid request body: an @odata.id reference is required.",
        );
    };
    let uid = reference.rsplit('/').next().unwrap_or_default().to_string();
    let mut t = sh.lock();
    let Some(gk) = t.groups.iter().find(|(_, g)| g.id == id).map(|(k, _)| *k) else {
        return not_found(&id);
    };
    let Some((upn, uid)) = t
        .find(&uid)
        .and_then(|k| t.users.get(&k))
        .map(|(u, _)| (u.user_principal_name.clone(), u.id.clone()))
    else {
        return not_found(&uid);
    };
    let before = t.scopes(&uid);
    let Some(g) = t.groups.get_mut(&gk) else {
        return not_found(&id);
    };
    if !g.members.insert(uid.clone()) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        );
    }
    let name = g.display_name.clone();
    t.effects
        .push(&uid, &upn, EffectKind::MemberAdded { group: name }, "api");
    t.provision_changes(&uid, &before);
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_member(State(sh): St, Path((id, user)): Path<(String, String)>) -> Response {
    let mut t = sh.lock();
    let Some(gk) = t.groups.iter().find(|(_, g)| g.id == id).map(|(k, _)| *k) else {
        return not_found(&id);
    };
    let Some((upn, uid)) = t
        .find(&user)
        .and_then(|k| t.users.get(&k))
        .map(|(u, _)| (u.user_principal_name.clone(), u.id.clone()))
    else {
        return not_found(&user);
    };
    let before = t.scopes(&uid);
    let Some(g) = t.groups.get_mut(&gk) else {
        return not_found(&id);
    };
    if !g.members.remove(&uid) {
        return not_found(&user);
    }
    let name = g.display_name.clone();
    t.effects
        .push(&uid, &upn, EffectKind::MemberRemoved { group: name }, "api");
    t.provision_changes(&uid, &before);
    StatusCode::NO_CONTENT.into_response()
}

async fn sync_jobs(State(sh): St, Path(id): Path<String>) -> Response {
    let t = sh.lock();
    let Some(sp) = t.service_principals.iter().find(|s| s.id == id) else {
        return not_found(&id);
    };
    let schedule = if sp.job_status == "Active" {
        "Active"
    } else {
        "Disabled"
    };
    ok_json(json!({"value": [{
        "id": format!("scim.{}", sp.id),
        "templateId": "scim",
        "schedule": {"interval": "PT40M", "state": schedule},
        "status": {"code": sp.job_status},
    }]}))
}

async fn provisioning_logs(State(sh): St, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let top = match top_of(&q, 50) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let filter = match q.get("$filter").map(|f| clauses(f)) {
        None => BTreeMap::new(),
        Some(Some(c)) => c,
        Some(None) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Unsupported $filter.",
            );
        }
    };
    let t = sh.lock();
    let value: Vec<Value> = t
        .provisioning
        .iter()
        .rev()
        .filter(|e| {
            filter.iter().all(|(k, v)| match k.as_str() {
                "servicePrincipal/id" => &e.service_principal == v,
                "sourceIdentity/id" => &e.user_id == v,
                "provisioningStatusInfo/status" => &e.status == v,
                _ => false,
            })
        })
        .take(top)
        .map(|e| {
            let mut status = json!({"status": e.status});
            if let Some(r) = &e.reason {
                status["errorInformation"] = json!({
                    "errorCode": e.error_code,
                    "reason": r,
                    "errorCategory": "NonServiceFailure",
                });
            }
            json!({
                "id": e.id,
                "activityDateTime": format!("2026-01-05T09:{:02}:{:02}Z", (e.seq / 60) % 60, e.seq % 60),
                "provisioningAction": e.action,
                "servicePrincipal": {"id": e.service_principal},
                "sourceIdentity": {"id": e.user_id, "displayName": e.user_principal_name, "identityType": "User"},
                "provisioningStatusInfo": status,
            })
        })
        .collect();
    ok_json(json!({"value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_gates_properties_like_graph() {
        let mut u = GraphUser::new("a@x.example", "A", "B").with_department("Ops");
        u.id = "1".into();
        let default = u.to_json(&[]);
        assert!(default.get("accountEnabled").is_none());
        assert!(default.get("department").is_none());
        assert_eq!(default["userPrincipalName"], "a@x.example");
        let picked = u.to_json(&["accountEnabled".into(), "department".into()]);
        assert_eq!(picked["accountEnabled"], true);
        assert_eq!(picked["department"], "Ops");
        assert_eq!(picked["id"], "1");
        assert!(picked.get("mail").is_none());
    }

    #[test]
    fn skip_tokens_round_trip() {
        assert_eq!(parse_skip("d0_7_12"), Some((0, 7, 12)));
        assert_eq!(parse_skip("d3_9_-2"), Some((3, 9, -2)));
        assert_eq!(parse_skip("k4"), None);
    }
}
