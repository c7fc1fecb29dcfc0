//! The Expensify connector: reads policy membership and provisions through
//! the Integration Server's Advanced Employee Updater (vendor-apis.md §1).
//!
//! # The app's model, in roster's terms
//!
//! Expensify has no user directory API. An employee *is* their membership
//! in one or more policies (workspaces), each with a manager (`submitsTo`),
//! a role and approval settings. So:
//!
//! * **Read** = `policyList`, then `policy` with `fields:["employees"]` for
//!   a slice of the policy ids per page. The page token carries the policy
//!   id snapshot and an offset, so every call makes exactly one request and
//!   a read sees one consistent list of policies.
//! * One [`Account`] per address (key = lower-cased email). Someone in
//!   several policies is one account whose `policy_id` (and the per-policy
//!   attributes) come from the lowest policy id, and whose `policy_ids` lists
//!   every policy, comma-joined and sorted.
//! * **Create / Reactivate / Update** send an employee record (an upsert).
//!   An update that moves the person to another policy also sends
//!   `isTerminated` for the old policy, after the new one so they are never
//!   left without a workspace. An address change is sent as the same
//!   `employeeID` with the new `employeeEmail`; Expensify merges the two.
//!   Since Expensify renames only through a matching `employeeID`, a
//!   rename first sends the account's own address with the person's
//!   `employeeID` (a no-op when it already carries it), so the rename
//!   always lands on that account and never creates a second one.
//! * Records are upserts by address: a create for an address some account
//!   already holds would take that account over. The connector declares
//!   [`Capabilities::upserts_by_address`]: plans never create over a held
//!   address, and the executor reads the app before re-sending a create and
//!   refuses one whose address is now taken.
//! * **Deactivate** sends `isTerminated` for every policy the account is in
//!   (`policy_ids`, else `policy_id`). Plans carry no attributes on a
//!   deactivation, so the connector declares
//!   [`Capabilities::deactivate_needs_current_attributes`] and the driver
//!   fills them from a fresh read. Failing that it terminates in every
//!   configured policy.
//! * Per-person problems come back in `skippedEmployees`; each becomes a
//!   `Failed` result (not retryable) for the action that sent that address,
//!   with Expensify's own reason.
//!
//! # Errors
//!
//! The vendor answers HTTP 200 with a `responseCode` in the body; some
//! deployments also use real HTTP statuses. Both are read: 401/403 →
//! [`ConnectorError::Unauthorized`], 429 → `RateLimited` (honouring
//! `Retry-After`), 5xx → `Transient`, other codes (404, 410) → `Vendor`.
//!
//! # What this connector does not do
//!
//! It never sleeps, retries or paces itself (the driver does), never sends
//! `onFinish` emails, and never touches domain groups or
//! `setEmployeePrimaryPolicy`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, EmployeeId, Operation};
use serde_json::{Map, Value, json};
use url::Url;

use crate::http::{text, wire_attributes};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, Merge, OperationSupport, Page, PageToken, RateWindow, SecretString, Validation,
    ValidationCheck,
};

/// The production endpoint.
pub const DEFAULT_ENDPOINT: &str =
    "https://integrations.expensify.com/Integration-Server/ExpensifyIntegrations";

/// Where to get credentials, for error messages.
const CREDENTIALS_PAGE: &str = "https://www.expensify.com/tools/integrations/";

/// The attribute names this connector reads and writes (roster's
/// vocabulary; the wire names are in the comments).
pub mod attr {
    /// `policyID`: the primary (lowest) policy.
    pub const POLICY_ID: &str = "policy_id";
    /// Every policy the account is in, comma-joined and sorted (read only).
    pub const POLICY_IDS: &str = "policy_ids";
    /// `managerEmail` on write, `submitsTo` on read.
    pub const MANAGER_EMAIL: &str = "manager_email";
    /// `role`: `user`, `auditor` or `admin`.
    pub const ROLE: &str = "role";
    /// `approvesTo` on write, `forwardsTo` on read.
    pub const APPROVES_TO: &str = "approves_to";
    /// `approvalLimit`, integer cents.
    pub const APPROVAL_LIMIT: &str = "approval_limit";
    /// `overLimitApprover` on write, `overLimitForwardsTo` on read.
    pub const OVER_LIMIT_APPROVER: &str = "over_limit_approver";
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const CUSTOM_FIELD1: &str = "custom_field1";
    pub const CUSTOM_FIELD2: &str = "custom_field2";
    /// Used for `employeeID` when the action has no employee id.
    pub const EMPLOYEE_ID: &str = "employee_id";
}

/// The documented limits: at most 5 requests per 10 s and 20 per 60 s.
pub fn documented_rate_limits() -> Vec<RateWindow> {
    vec![
        RateWindow::new(5, Duration::from_secs(10)),
        RateWindow::new(20, Duration::from_secs(60)),
    ]
}

/// How to reach one Expensify tenant.
#[derive(Clone)]
pub struct ExpensifyConfig {
    pub connection: ConnectionId,
    /// The full endpoint URL; [`DEFAULT_ENDPOINT`] in production.
    pub base_url: String,
    pub partner_user_id: String,
    pub partner_user_secret: SecretString,
    /// Restrict reads to these policies (and use them for deactivation
    /// when the account's policies are unknown). `None`: every policy the
    /// credentials administer.
    pub policy_ids: Option<Vec<String>>,
    /// Employee records per update request.
    pub batch_size: u32,
    /// Policies per read request.
    pub policies_per_page: u32,
    /// Sent as `managerEmail` when an action sets no `manager_email` (the
    /// field is required by Expensify; typically the finance approver).
    pub default_manager_email: Option<String>,
    pub timeout: Duration,
    /// The endpoint may be on a private or link-local network (host names
    /// are checked when resolved; see [`crate::egress`]).
    pub allow_private_network: bool,
    /// Reported in [`Capabilities::rate_limits`]; override only to test.
    pub rate_limits: Vec<RateWindow>,
}

impl ExpensifyConfig {
    /// Production endpoint and defaults: batches of 500, 50 policies per
    /// read, 60 s timeout, documented limits.
    pub fn new(
        connection: ConnectionId,
        partner_user_id: impl Into<String>,
        partner_user_secret: SecretString,
    ) -> Self {
        ExpensifyConfig {
            connection,
            base_url: DEFAULT_ENDPOINT.to_string(),
            partner_user_id: partner_user_id.into(),
            partner_user_secret,
            policy_ids: None,
            batch_size: 500,
            policies_per_page: 50,
            default_manager_email: None,
            timeout: Duration::from_secs(60),
            allow_private_network: false,
            rate_limits: documented_rate_limits(),
        }
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

impl fmt::Debug for ExpensifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpensifyConfig")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("partner_user_id", &self.partner_user_id)
            .field("partner_user_secret", &self.partner_user_secret)
            .field("policy_ids", &self.policy_ids)
            .field("batch_size", &self.batch_size)
            .field("policies_per_page", &self.policies_per_page)
            .finish_non_exhaustive()
    }
}

/// The connector. Cheap to share (`Arc<dyn Connector>`).
#[derive(Debug)]
pub struct ExpensifyConnector {
    config: ExpensifyConfig,
    url: Url,
    client: reqwest::Client,
}

impl ExpensifyConnector {
    pub fn new(config: ExpensifyConfig) -> Result<Self, ConnectorError> {
        let url = Url::parse(&config.base_url).map_err(|e| ConnectorError::Config {
            detail: format!("base_url {:?} is not a URL: {e}", config.base_url),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConnectorError::Config {
                detail: format!("base_url {:?} must be http(s)", config.base_url),
            });
        }
        if config.partner_user_id.is_empty()
            || config.partner_user_secret.expose_secret().is_empty()
        {
            return Err(ConnectorError::Config {
                detail: format!(
                    "partner_user_id and partner_user_secret are required; generate them at {CREDENTIALS_PAGE}"
                ),
            });
        }
        let client = crate::http::client(config.timeout, config.allow_private_network)?;
        Ok(ExpensifyConnector {
            config,
            url,
            client,
        })
    }

    pub fn config(&self) -> &ExpensifyConfig {
        &self.config
    }

    fn credentials(&self) -> Value {
        json!({
            "partnerUserID": self.config.partner_user_id,
            "partnerUserSecret": self.config.partner_user_secret.expose_secret(),
        })
    }

    fn scrub(&self, s: &str) -> String {
        self.config.partner_user_secret.scrub(s)
    }

    fn transport_error(&self, e: reqwest::Error) -> ConnectorError {
        let is_decode = e.is_decode();
        let detail = self.scrub(&e.without_url().to_string());
        if is_decode {
            ConnectorError::Protocol { detail }
        } else {
            ConnectorError::Transient {
                detail: format!("request to Expensify failed: {detail}"),
            }
        }
    }

    fn unauthorized(&self, message: &str) -> ConnectorError {
        ConnectorError::Unauthorized {
            detail: format!(
                "Expensify refused the credentials of partnerUserID {:?} ({}); check partner_user_id and \
                 partner_user_secret, or generate new ones at {CREDENTIALS_PAGE}",
                self.config.partner_user_id,
                self.scrub(message)
            ),
        }
    }

    /// One POST: the job, plus the `data` form field when given. Returns
    /// the body of a successful (200/207) job.
    async fn call(&self, job: Value, data: Option<String>) -> Result<Value, ConnectorError> {
        let mut form = vec![("requestJobDescription", job.to_string())];
        if let Some(d) = data {
            form.push(("data", d));
        }
        let resp = self
            .client
            .post(self.url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let retry_after = crate::http::retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        // Strictly UTF-8 (as `http::Answer` reads): a lenient decoding of a
        // garbled body could pass for a genuine one.
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("responseMessage"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let http = status.as_u16();
        if http == 429 {
            return Err(ConnectorError::RateLimited { retry_after });
        }
        if http == 401 || http == 403 {
            return Err(self.unauthorized(if message.is_empty() {
                status.as_str()
            } else {
                &message
            }));
        }
        if status.is_server_error() || http == 408 {
            return Err(ConnectorError::Transient {
                detail: format!("Expensify answered HTTP {http}: {}", self.scrub(&message)),
            });
        }
        if !status.is_success() {
            return Err(ConnectorError::Vendor {
                code: http.to_string(),
                detail: format!("HTTP {http}: {}", self.scrub(&message)),
            });
        }
        let Some(body) = body else {
            return Err(ConnectorError::Protocol {
                detail: format!("Expensify answered HTTP {http} with a body that is not JSON"),
            });
        };
        let Some(code) = body.get("responseCode").and_then(Value::as_i64) else {
            return Err(ConnectorError::Protocol {
                detail: "Expensify's answer has no responseCode".into(),
            });
        };
        match code {
            200 | 207 => Ok(body),
            401 | 403 => Err(self.unauthorized(&message)),
            429 => Err(ConnectorError::RateLimited { retry_after }),
            500..=599 => Err(ConnectorError::Transient {
                detail: format!("Expensify job failed with {code}: {}", self.scrub(&message)),
            }),
            other => Err(ConnectorError::Vendor {
                code: other.to_string(),
                detail: self.scrub(&message),
            }),
        }
    }

    async fn policy_list(&self, admin_only: bool) -> Result<Vec<PolicySummary>, ConnectorError> {
        let job = json!({
            "type": "get",
            "credentials": self.credentials(),
            "inputSettings": {"type": "policyList", "adminOnly": admin_only},
        });
        let body = self.call(job, None).await?;
        let list = body
            .get("policyList")
            .and_then(Value::as_array)
            .ok_or_else(|| ConnectorError::Protocol {
                detail: "policyList answer has no policyList array".into(),
            })?;
        // A policy without an id is a garbled answer: skipping it would
        // leave its employees out of a read that looks complete.
        list.iter()
            .map(|p| {
                let id = p.get("id").and_then(Value::as_str).ok_or_else(|| {
                    ConnectorError::Protocol {
                        detail: "policyList answer lists a policy without an id".into(),
                    }
                })?;
                Ok(PolicySummary {
                    id: id.to_string(),
                    name: p
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    role: p
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                })
            })
            .collect()
    }

    /// Reads the employees of `ids` (one request).
    async fn read_policies(&self, ids: &[String]) -> Result<Vec<Account>, ConnectorError> {
        let job = json!({
            "type": "get",
            "credentials": self.credentials(),
            "inputSettings": {"type": "policy", "policyIDList": ids, "fields": ["employees"]},
        });
        let body = self.call(job, None).await?;
        let info = body
            .get("policyInfo")
            .and_then(Value::as_object)
            .ok_or_else(|| ConnectorError::Protocol {
                detail: "policy answer has no policyInfo object".into(),
            })?;
        let mut by_key: BTreeMap<String, Account> = BTreeMap::new();
        for id in ids {
            let employees = info
                .get(id)
                .and_then(|p| p.get("employees"))
                .and_then(Value::as_array)
                .ok_or_else(|| ConnectorError::Protocol {
                    detail: format!("policyInfo lacks the employees of policy {id}"),
                })?;
            for e in employees {
                // Not an object, or an email that is not text: garbled, and
                // skipping it would leave the employee out of a read that
                // looks complete.
                if !e.is_object()
                    || e.get("email")
                        .is_some_and(|m| !m.is_string() && !m.is_null())
                {
                    return Err(ConnectorError::Protocol {
                        detail: format!("policyInfo lists a garbled employee in policy {id}"),
                    });
                }
                let Some(account) = self.account_from(id, e) else {
                    tracing::warn!(policy = %id, "skipping an Expensify employee without an email");
                    continue;
                };
                match by_key.get_mut(account.key.as_str()) {
                    Some(existing) => merge_memberships(existing, account),
                    None => {
                        by_key.insert(account.key.as_str().to_string(), account);
                    }
                }
            }
        }
        Ok(by_key.into_values().collect())
    }

    fn account_from(&self, policy_id: &str, e: &Value) -> Option<Account> {
        let email = text(e, "email")?;
        let mut attributes = wire_attributes(
            e,
            &[
                ("submitsTo", attr::MANAGER_EMAIL),
                ("role", attr::ROLE),
                ("forwardsTo", attr::APPROVES_TO),
                ("approvalLimit", attr::APPROVAL_LIMIT),
                ("overLimitForwardsTo", attr::OVER_LIMIT_APPROVER),
                ("firstName", attr::FIRST_NAME),
                ("lastName", attr::LAST_NAME),
                ("customField1", attr::CUSTOM_FIELD1),
                ("customField2", attr::CUSTOM_FIELD2),
            ],
        );
        attributes.insert(attr::POLICY_ID.to_string(), policy_id.to_string());
        attributes.insert(attr::POLICY_IDS.to_string(), policy_id.to_string());
        Some(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(email.to_lowercase()),
            email: Email::parse(&email).ok(),
            employee_id: text(e, "employeeID").map(EmployeeId::new),
            // Expensify has no disabled state: a listed member is active,
            // a removed one is simply absent.
            active: true,
            attributes,
        })
    }

    fn page_size(&self, req: &ListRequest) -> usize {
        let max = self.config.policies_per_page.max(1);
        req.page_size.unwrap_or(max).clamp(1, max) as usize
    }

    async fn page_at(
        &self,
        ids: &[String],
        at: usize,
        size: usize,
    ) -> Result<Page, ConnectorError> {
        let end = (at + size).min(ids.len());
        let slice = ids.get(at..end).unwrap_or(&[]);
        if slice.is_empty() {
            return Ok(Page::new(Vec::new(), None));
        }
        let accounts = self.read_policies(slice).await?;
        let next = (end < ids.len()).then(|| encode_token(ids, end));
        Ok(Page::new(accounts, next))
    }

    /// The employee records for one action, or why it can't be sent.
    fn records(&self, a: &Action) -> Result<Vec<Value>, String> {
        let get = |name: &str| {
            a.attributes
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let employee_id = a
            .employee_id
            .as_ref()
            .map(|id| id.as_str().to_string())
            .or_else(|| get(attr::EMPLOYEE_ID).map(str::to_string));
        match a.operation {
            Operation::Create | Operation::Reactivate | Operation::Update => {
                let policy = get(attr::POLICY_ID).ok_or_else(|| {
                    format!(
                        "no policy_id for {}: Expensify needs a policy (workspace) for every employee; set policy_id for {} in the policy",
                        a.email, a.connection
                    )
                })?;
                let manager = get(attr::MANAGER_EMAIL)
                    .map(str::to_string)
                    .or_else(|| self.config.default_manager_email.clone())
                    .ok_or_else(|| {
                        format!(
                            "no manager_email for {}: Expensify requires managerEmail; set manager_email in the policy or default_manager_email on the connection",
                            a.email
                        )
                    })?;
                let employee_id = employee_id.ok_or_else(|| {
                    format!(
                        "no employee id for {}: Expensify requires employeeID",
                        a.email
                    )
                })?;
                let mut rec = Map::new();
                rec.insert("employeeEmail".into(), json!(a.email.as_str()));
                rec.insert("managerEmail".into(), json!(manager));
                rec.insert("employeeID".into(), json!(employee_id));
                rec.insert("policyID".into(), json!(policy));
                for (name, wire) in [
                    (attr::ROLE, "role"),
                    (attr::APPROVES_TO, "approvesTo"),
                    (attr::FIRST_NAME, "firstName"),
                    (attr::LAST_NAME, "lastName"),
                    (attr::CUSTOM_FIELD1, "customField1"),
                    (attr::CUSTOM_FIELD2, "customField2"),
                ] {
                    if let Some(v) = get(name) {
                        rec.insert(wire.into(), json!(v));
                    }
                }
                if let Some(limit) = get(attr::APPROVAL_LIMIT) {
                    let cents: i64 = limit.parse().map_err(|_| {
                        format!(
                            "approval_limit {limit:?} for {} is not an integer number of cents",
                            a.email
                        )
                    })?;
                    let approver = get(attr::OVER_LIMIT_APPROVER).ok_or_else(|| {
                        format!("approval_limit for {} needs over_limit_approver (Expensify requires both)", a.email)
                    })?;
                    rec.insert("approvalLimit".into(), json!(cents));
                    rec.insert("overLimitApprover".into(), json!(approver));
                }
                rec.insert("isTerminated".into(), json!(false));
                let mut out = Vec::new();
                if let Some(key) = &a.account
                    && key.as_str() != a.email.normalized()
                {
                    // A rename. Expensify keys records by address and only
                    // renames through a matching employeeID; sent alone,
                    // the new address would become a second, empty
                    // account. So the account is first keyed to its
                    // person under its own address, then renamed.
                    let home = a
                        .changes
                        .iter()
                        .find(|c| c.name == attr::POLICY_ID)
                        .and_then(|c| c.before.as_deref())
                        .filter(|old| !old.is_empty())
                        .unwrap_or(policy);
                    out.push(json!({
                        "employeeEmail": key.as_str(),
                        "managerEmail": manager,
                        "employeeID": employee_id,
                        "policyID": home,
                    }));
                }
                out.push(Value::Object(rec));
                if a.operation == Operation::Update
                    && let Some(old) = a
                        .changes
                        .iter()
                        .find(|c| c.name == attr::POLICY_ID)
                        .and_then(|c| c.before.as_deref())
                        .filter(|old| !old.is_empty() && *old != policy)
                {
                    // The move: new membership first (above), then the old
                    // one ends, so the person always has a workspace.
                    out.push(json!({
                        "employeeEmail": a.email.as_str(),
                        "managerEmail": manager,
                        "employeeID": employee_id,
                        "policyID": old,
                        "isTerminated": true,
                    }));
                }
                Ok(out)
            }
            Operation::Deactivate => {
                let policies: Vec<String> = if let Some(list) = get(attr::POLICY_IDS) {
                    split_ids(list)
                } else if let Some(p) = get(attr::POLICY_ID) {
                    vec![p.to_string()]
                } else if let Some(configured) = &self.config.policy_ids {
                    configured.clone()
                } else {
                    return Err(format!(
                        "don't know which policies {} is in: read {} first, or configure policy_ids",
                        a.email, a.connection
                    ));
                };
                Ok(policies
                    .into_iter()
                    .map(|p| {
                        let mut rec = Map::new();
                        rec.insert("employeeEmail".into(), json!(a.email.as_str()));
                        rec.insert("policyID".into(), json!(p));
                        rec.insert("isTerminated".into(), json!(true));
                        if let Some(m) = get(attr::MANAGER_EMAIL) {
                            rec.insert("managerEmail".into(), json!(m));
                        }
                        if let Some(id) = &employee_id {
                            rec.insert("employeeID".into(), json!(id));
                        }
                        Value::Object(rec)
                    })
                    .collect())
            }
            Operation::Read => Err("read is not a change".into()),
            // Terminating already removes the employee from the workspace;
            // Expensify keeps no suspended state to delete afterwards.
            Operation::Delete => Err(format!(
                "Expensify has no delete beyond termination; {} was already removed from its workspaces",
                a.email
            )),
        }
    }
}

struct PolicySummary {
    id: String,
    name: String,
    role: String,
}

fn split_ids(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Folds another policy's membership into `existing`: `policy_ids` is the
/// union, and the per-policy attributes come from the lowest policy id.
fn merge_memberships(existing: &mut Account, other: Account) {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for a in [&*existing, &other] {
        if let Some(list) = a
            .attributes
            .get(attr::POLICY_IDS)
            .or_else(|| a.attributes.get(attr::POLICY_ID))
        {
            ids.extend(split_ids(list));
        }
    }
    let lower = |a: &Account| {
        a.attributes
            .get(attr::POLICY_ID)
            .cloned()
            .unwrap_or_default()
    };
    if lower(&other) < lower(existing) {
        let keep_id = existing.employee_id.take();
        *existing = Account {
            employee_id: other.employee_id.clone().or(keep_id),
            ..other
        };
    } else if existing.employee_id.is_none() {
        existing.employee_id = other.employee_id;
    }
    existing.attributes.insert(
        attr::POLICY_IDS.to_string(),
        ids.into_iter().collect::<Vec<_>>().join(","),
    );
}

const TOKEN_PREFIX: &str = "expensify-v1:";

/// `expensify-v1:<offset>:<json array of policy ids>`: the snapshot of the
/// policy list travels with the token, so later pages need no re-listing.
fn encode_token(ids: &[String], at: usize) -> PageToken {
    PageToken::new(format!("{TOKEN_PREFIX}{at}:{}", json!(ids)))
}

fn decode_token(t: &PageToken) -> Result<(Vec<String>, usize), ConnectorError> {
    let bad = || ConnectorError::Config {
        detail: "the page token was not issued by the Expensify connector".into(),
    };
    let rest = t.as_str().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (at, ids) = rest.split_once(':').ok_or_else(bad)?;
    let at: usize = at.parse().map_err(|_| bad())?;
    let ids: Vec<String> = serde_json::from_str(ids).map_err(|_| bad())?;
    Ok((ids, at))
}

#[async_trait]
impl Connector for ExpensifyConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        let write = OperationSupport::supported(self.config.batch_size);
        Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.policies_per_page),
            )
            .with(Operation::Create, write)
            .with(Operation::Update, write)
            .with(Operation::Reactivate, write)
            .with(Operation::Deactivate, write)
            .with_rate_limits(self.config.rate_limits.clone())
            .with_dry_run(true)
            .with_deactivate_needs_current_attributes(true)
            .with_upserts_by_address(true)
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let policies = match self.policy_list(false).await {
            Ok(p) => p,
            Err(ConnectorError::Unauthorized { detail }) => {
                return Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]));
            }
            Err(e) => return Err(e),
        };
        let mut checks = vec![ValidationCheck::pass(
            "credentials",
            format!("partnerUserID {:?} accepted", self.config.partner_user_id),
        )];
        match &self.config.policy_ids {
            Some(ids) => {
                for id in ids {
                    let name = format!("policy:{id}");
                    checks.push(match policies.iter().find(|p| &p.id == id) {
                        None => ValidationCheck::fail(
                            name,
                            format!("policy {id} is not visible to these credentials; check the id or the account's access"),
                        ),
                        Some(p) if p.role != "admin" => ValidationCheck::fail(
                            name,
                            format!(
                                "the credentials are {:?} on {:?} ({id}); the Employee Updater needs admin",
                                p.role, p.name
                            ),
                        ),
                        Some(p) => ValidationCheck::pass(name, format!("admin on {:?}", p.name)),
                    });
                }
            }
            None => {
                let admin = policies.iter().filter(|p| p.role == "admin").count();
                checks.push(if admin > 0 {
                    ValidationCheck::pass("policies", format!("admin on {admin} of {} policies", policies.len()))
                } else {
                    ValidationCheck::fail(
                        "policies",
                        "these credentials administer no policy, so roster can't read or change employees",
                    )
                });
            }
        }
        Ok(Validation::new(checks))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let size = self.page_size(&req);
        match &req.page_token {
            Some(t) => {
                let (ids, at) = decode_token(t)?;
                self.page_at(&ids, at, size).await
            }
            None => match &self.config.policy_ids {
                Some(configured) => {
                    let ids: Vec<String> = configured
                        .iter()
                        .cloned()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    self.page_at(&ids, 0, size).await
                }
                None => {
                    // First call: list the policies only (one request per
                    // call); employees follow page by page.
                    let ids: Vec<String> = self
                        .policy_list(true)
                        .await?
                        .into_iter()
                        .map(|p| p.id)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let next = (!ids.is_empty()).then(|| encode_token(&ids, 0));
                    Ok(Page::new(Vec::new(), next))
                }
            },
        }
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let mut results: Vec<Option<ActionResult>> = vec![None; req.actions.len()];
        let mut sent: Vec<Vec<String>> = vec![Vec::new(); req.actions.len()];
        let mut records: Vec<Value> = Vec::new();
        for (i, a) in req.actions.iter().enumerate() {
            match self.records(a) {
                Ok(recs) => {
                    for r in recs {
                        if let Some(e) = r.get("employeeEmail").and_then(Value::as_str) {
                            sent[i].push(e.to_lowercase());
                        }
                        records.push(r);
                    }
                }
                Err(reason) => results[i] = Some(ActionResult::failed(reason, false)),
            }
        }
        if !records.is_empty() {
            let job = json!({
                "type": "update",
                "dry-run": req.dry_run,
                "credentials": self.credentials(),
                "dataSource": "request",
                "inputSettings": {"type": "employees", "entity": "generic"},
            });
            let body = self
                .call(job, Some(Value::Array(records).to_string()))
                .await?;
            let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in body
                .get("skippedEmployees")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let email = s
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_lowercase();
                let reason = s
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                skipped.entry(email).or_default().push(self.scrub(reason));
            }
            for (i, emails) in sent.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                let reasons: Vec<String> = emails
                    .iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .flat_map(|e| {
                        skipped
                            .get(e)
                            .into_iter()
                            .flatten()
                            .map(move |r| format!("{e}: {r}"))
                    })
                    .collect();
                results[i] = Some(if reasons.is_empty() {
                    ActionResult::Applied
                } else {
                    ActionResult::failed(format!("Expensify skipped {}", reasons.join("; ")), false)
                });
            }
        }
        Ok(ApplyResponse::new(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| ActionResult::failed("no record was built", false)))
                .collect(),
        ))
    }

    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        merge_memberships(existing, duplicate);
        Merge::Merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(policy: &str, manager: &str) -> Account {
        let mut attributes = BTreeMap::new();
        attributes.insert(attr::POLICY_ID.into(), policy.into());
        attributes.insert(attr::POLICY_IDS.into(), policy.into());
        attributes.insert(attr::MANAGER_EMAIL.into(), manager.into());
        Account {
            connection: ConnectionId::new("expensify"),
            key: AccountKey::new("a@x.com"),
            email: Email::parse("a@x.com").ok(),
            employee_id: None,
            active: true,
            attributes,
        }
    }

    #[test]
    fn merging_memberships_keeps_the_lowest_policy_primary() {
        let mut a = acc("P2", "m2@x.com");
        merge_memberships(&mut a, acc("P1", "m1@x.com"));
        merge_memberships(&mut a, acc("P3", "m3@x.com"));
        assert_eq!(a.attributes[attr::POLICY_ID], "P1");
        assert_eq!(a.attributes[attr::MANAGER_EMAIL], "m1@x.com");
        assert_eq!(a.attributes[attr::POLICY_IDS], "P1,P2,P3");
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_rejected() {
        let ids = vec!["A".to_string(), "B".to_string()];
        let t = encode_token(&ids, 1);
        assert_eq!(decode_token(&t).unwrap(), (ids, 1));
        assert!(decode_token(&PageToken::new("3")).is_err());
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let c = ExpensifyConfig::new(ConnectionId::new("e"), "user", SecretString::new("s3cr3t"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
