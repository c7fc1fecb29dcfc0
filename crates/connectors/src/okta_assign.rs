//! The `idp` path through Okta: roster assigns a person to the app's
//! integration in Okta (`/api/v1/apps/{appId}/users`), and Okta's own SCIM
//! connector provisions the app (vendor-apis.md §2–3).
//!
//! # The model, in roster's terms
//!
//! * One [`Account`] per app assignment; key = the Okta user id, address =
//!   `credentials.userName`. Attributes: `user_name`, `sync_state`
//!   (`SYNCHRONIZED`, `ERROR`, `DISABLED`), `okta_status`, `external_id`
//!   (the app's own id, once provisioned) and the app-user `profile` fields
//!   by their Okta names.
//! * **Create / Reactivate** = assign: look the person up by login
//!   (`GET /api/v1/users/{login}`, skipped when the action already carries
//!   the Okta id), then `POST /api/v1/apps/{appId}/users` with
//!   `{id, scope:"USER", credentials:{userName}, profile}`. Assigning is an
//!   upsert in Okta, so a retry after a lost answer changes nothing.
//! * **Update** = `POST /api/v1/apps/{appId}/users/{userId}` with the new
//!   `credentials`/`profile`; Okta pushes it with *Update User Attributes*.
//! * **Deactivate** = unassign (`DELETE …/users/{userId}`); Okta deactivates
//!   the user in the app with *Deactivate Users*. A 404 (already
//!   unassigned) is `Skipped`.
//! * When Okta reports the push failed (`syncState: ERROR`), the action
//!   fails as retryable: assigning again makes Okta retry the push.
//!
//! # Validation
//!
//! Assignment only helps if the Okta app pushes. [`Connector::validate`]
//! reads the app and fails a check, naming the switch to turn on in the
//! Okta Admin Console, for each of *Create Users* (`PUSH_NEW_USERS`),
//! *Update User Attributes* (`PUSH_PROFILE_UPDATES`) and *Deactivate Users*
//! (`PUSH_USER_DEACTIVATION`) that is off.
//!
//! # Requests and limits
//!
//! A create may take two requests (lookup, assign), so the limits declared
//! for the driver are half the configured Okta limit, keeping the org's
//! count within its limit. Okta's `X-Rate-Limit-Remaining`/`-Reset` come back
//! as [`RateLimitInfo`] on reads.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LINK};
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, Operation};
use serde_json::{Map, Value, json};

use crate::http::{self, Answer, scalar, text};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, OperationSupport, Page, PageToken, RateLimitInfo, RateWindow, SecretString,
    Validation, ValidationCheck,
};

pub const PUSH_NEW_USERS: &str = "PUSH_NEW_USERS";
pub const PUSH_PROFILE_UPDATES: &str = "PUSH_PROFILE_UPDATES";
pub const PUSH_USER_DEACTIVATION: &str = "PUSH_USER_DEACTIVATION";

pub mod attr {
    pub const USER_NAME: &str = "user_name";
    pub const SYNC_STATE: &str = "sync_state";
    pub const OKTA_STATUS: &str = "okta_status";
    pub const EXTERNAL_ID: &str = "external_id";
    pub const EMAIL: &str = "email";
}

/// Attributes roster computes that are not app-user profile fields.
const NOT_PROFILE: [&str; 5] = [
    attr::USER_NAME,
    attr::SYNC_STATE,
    attr::OKTA_STATUS,
    attr::EXTERNAL_ID,
    attr::EMAIL,
];

#[derive(Clone)]
pub struct OktaAssignConfig {
    pub connection: ConnectionId,
    /// The org URL, e.g. `https://acme.okta.com`.
    pub org_url: String,
    /// An API token (sent as `SSWS`).
    pub api_token: SecretString,
    /// The id of the app integration in Okta (e.g. `0oa1b2c3…`).
    pub app_id: String,
    /// The app's name, for messages (e.g. "BILL Spend & Expense").
    pub app_name: String,
    /// Assignments per page (≤ 500 in Okta; 200 is its users default).
    pub page_size: u32,
    pub timeout: Duration,
    /// The endpoint may be on a private or link-local network (host names
    /// are checked when resolved; see [`crate::egress`]).
    pub allow_private_network: bool,
    /// The org's limit for these endpoints; the driver gets half of it.
    pub okta_rate_limit: RateWindow,
}

impl OktaAssignConfig {
    pub fn new(
        connection: ConnectionId,
        org_url: impl Into<String>,
        api_token: SecretString,
        app_id: impl Into<String>,
    ) -> Self {
        OktaAssignConfig {
            app_name: connection.to_string(),
            connection,
            org_url: org_url.into(),
            api_token,
            app_id: app_id.into(),
            page_size: 200,
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            okta_rate_limit: RateWindow::new(600, Duration::from_secs(60)),
        }
    }
}

impl std::fmt::Debug for OktaAssignConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaAssignConfig")
            .field("connection", &self.connection)
            .field("org_url", &self.org_url)
            .field("api_token", &self.api_token)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

pub struct OktaAssignConnector {
    config: OktaAssignConfig,
    base: String,
    client: reqwest::Client,
    /// Okta's `X-Rate-Limit-*` from the latest answer, handed to the
    /// driver with the page or batch it belongs to (one batch may take
    /// several requests; the latest word counts).
    last_rate: std::sync::Mutex<Option<RateLimitInfo>>,
}

const VENDOR: &str = "Okta";
const TOKEN_PREFIX: &str = "okta-v1:";

/// The `rel="next"` target of `Link` headers (one comma-joined header or
/// several).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                p.trim()
                    .replace(' ', "")
                    .eq_ignore_ascii_case("rel=\"next\"")
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

fn rate_info(headers: &HeaderMap) -> Option<RateLimitInfo> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let remaining = num("x-rate-limit-remaining")?;
    // The reset is an epoch second; wait until that second has begun,
    // measured against the sub-second clock (truncating now would end the
    // wait up to a second early).
    let reset_after = num("x-rate-limit-reset").map(|at| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_secs(at).saturating_sub(now)
    });
    Some(RateLimitInfo::new(
        Some(remaining.min(u32::MAX as u64) as u32),
        reset_after,
    ))
}

/// The feature flags, with the Admin Console's name for each.
const FEATURES: [(&str, &str, &str); 3] = [
    (PUSH_NEW_USERS, "create", "Create Users"),
    (PUSH_PROFILE_UPDATES, "update", "Update User Attributes"),
    (PUSH_USER_DEACTIVATION, "deactivate", "Deactivate Users"),
];

impl OktaAssignConnector {
    pub fn new(config: OktaAssignConfig) -> Result<Self, ConnectorError> {
        let base = http::base_url(&config.org_url, VENDOR)?;
        if config.api_token.expose_secret().is_empty() || config.app_id.trim().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: an Okta API token and the Okta app id are required (Admin Console → Security → API → Tokens; the app id is in the app's URL)",
                    config.connection
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(OktaAssignConnector {
            config,
            base,
            client,
            last_rate: std::sync::Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OktaAssignConfig {
        &self.config
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("SSWS {}", self.config.api_token.expose_secret()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn app_users_path(&self) -> String {
        format!("/api/v1/apps/{}/users", self.config.app_id)
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(Answer, Value), ConnectorError> {
        let answer = Answer::of(VENDOR, req, &[&self.config.api_token]).await?;
        let info = rate_info(&answer.headers);
        if info.is_some() {
            *self.last_rate.lock().unwrap_or_else(|p| p.into_inner()) = info;
        }
        if answer.status.as_u16() == 429 {
            // Okta says when the window resets rather than `Retry-After`;
            // either tells the driver how long to hold everyone back.
            return Err(ConnectorError::RateLimited {
                retry_after: http::retry_after(&answer.headers).or_else(|| {
                    // Only a spent window says when to come back; a 429
                    // with requests left (concurrency, a burst rule) gets
                    // the usual backoff.
                    info.filter(|i| i.remaining == Some(0))
                        .and_then(|i| i.reset_after)
                }),
            });
        }
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            answer.json(VENDOR)?
        };
        let summary = text(&body, "errorSummary");
        if !answer.status.is_success() {
            let code = text(&body, "errorCode");
            let message = match (&code, &summary) {
                (Some(c), Some(s)) => format!("{c}: {s}"),
                _ => answer.status.to_string(),
            };
            return Err(http::status_error(
                VENDOR,
                answer.status,
                &answer.headers,
                &http::scrub(&message, &[&self.config.api_token]),
                &format!(
                    "check the Okta API token of {} (it may be expired or lack app admin rights)",
                    self.config.connection
                ),
            ));
        }
        if let (Some(code), Some(s)) = (text(&body, "errorCode"), summary) {
            return Err(ConnectorError::Transient {
                detail: format!("Okta answered HTTP 200 with error {code}: {s}"),
            });
        }
        Ok((answer, body))
    }

    fn account_from(&self, au: &Value) -> Option<Account> {
        let id = text(au, "id")?;
        let user_name = au.get("credentials").and_then(|c| text(c, "userName"));
        let mut attributes = BTreeMap::new();
        if let Some(Value::Object(p)) = au.get("profile") {
            for (k, v) in p {
                if let Some(v) = scalar(v, true) {
                    attributes.insert(k.clone(), v);
                }
            }
        }
        for (name, v) in [
            (attr::USER_NAME, user_name.clone()),
            (attr::SYNC_STATE, text(au, "syncState")),
            (attr::OKTA_STATUS, text(au, "status")),
            (attr::EXTERNAL_ID, text(au, "externalId")),
        ] {
            if let Some(v) = v {
                attributes.insert(name.to_string(), v);
            }
        }
        let email = user_name.as_deref().and_then(|n| Email::parse(n).ok());
        if let Some(e) = &email {
            attributes.insert(attr::EMAIL.to_string(), e.to_string());
        }
        let status = text(au, "status").unwrap_or_default();
        Some(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(id),
            email,
            employee_id: None,
            // An assignment exists; Okta's own inactive states mean the
            // app account is off.
            active: !matches!(status.as_str(), "DEPROVISIONED" | "INACTIVE" | "SUSPENDED"),
            attributes,
        })
    }

    fn profile(a: &Action) -> Value {
        let p: Map<String, Value> = a
            .attributes
            .iter()
            .filter(|(k, v)| !NOT_PROFILE.contains(&k.as_str()) && !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        Value::Object(p)
    }

    /// The result of an assignment answer: Okta's push state decides.
    fn pushed(&self, a: &Action, au: &Value) -> ActionResult {
        match text(au, "syncState").as_deref() {
            Some("ERROR") => ActionResult::failed(
                format!(
                    "{} is assigned to {} in Okta, but Okta's push to the app failed (syncState ERROR); assigning again retries it",
                    a.email, self.config.app_name
                ),
                true,
            ),
            _ => ActionResult::Applied,
        }
    }

    async fn okta_user_id(
        &self,
        a: &Action,
    ) -> Result<Result<String, ActionResult>, ConnectorError> {
        if let Some(k) = &a.account {
            return Ok(Ok(k.as_str().to_string()));
        }
        let url = self.url(&format!("/api/v1/users/{}", urlencode(a.email.as_str())));
        match self.call(self.request(reqwest::Method::GET, &url)).await {
            Ok((_, u)) => match text(&u, "id") {
                Some(id) if text(&u, "status").as_deref() != Some("DEPROVISIONED") => Ok(Ok(id)),
                Some(_) => Ok(Err(ActionResult::failed(
                    format!(
                        "{} is deactivated in Okta; reactivate them there first",
                        a.email
                    ),
                    false,
                ))),
                None => Err(ConnectorError::Protocol {
                    detail: "Okta answered a user without an id".into(),
                }),
            },
            Err(ConnectorError::Vendor { code, .. }) if code == "404" => {
                Ok(Err(ActionResult::failed(
                    format!(
                        "no Okta user has login {}; the person must exist in Okta before {} can be assigned",
                        a.email, self.config.app_name
                    ),
                    false,
                )))
            }
            Err(e) => Err(e),
        }
    }

    async fn apply_one(&self, a: &Action, dry_run: bool) -> Result<ActionResult, ConnectorError> {
        if dry_run {
            return Ok(ActionResult::skipped("dry run: Okta has no preview"));
        }
        let vendor_failed = |code: String, detail: String| {
            ActionResult::failed(
                format!(
                    "Okta refused the change for {} (HTTP {code}): {detail}",
                    a.email
                ),
                false,
            )
        };
        match a.operation {
            Operation::Delete => Ok(ActionResult::failed(
                format!(
                    "deleting {} is not an Okta assignment: unassigning already deprovisions; delete it in {} by hand",
                    a.email, self.config.app_name
                ),
                false,
            )),
            Operation::Create | Operation::Reactivate => {
                let id = match self.okta_user_id(a).await? {
                    Ok(id) => id,
                    Err(result) => return Ok(result),
                };
                let body = json!({
                    "id": id,
                    "scope": "USER",
                    "credentials": {"userName": a.email.as_str()},
                    "profile": Self::profile(a),
                });
                let req = self
                    .request(reqwest::Method::POST, &self.url(&self.app_users_path()))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
                match self.call(req).await {
                    Ok((_, au)) => Ok(self.pushed(a, &au)),
                    Err(ConnectorError::Vendor { code, detail }) => Ok(vendor_failed(code, detail)),
                    Err(e) => Err(e),
                }
            }
            Operation::Update => {
                let Some(id) = &a.account else {
                    return Ok(ActionResult::failed(
                        format!(
                            "no Okta user id for {}: read {} first",
                            a.email, a.connection
                        ),
                        false,
                    ));
                };
                let body = json!({
                    "credentials": {"userName": a.email.as_str()},
                    "profile": Self::profile(a),
                });
                let url = self.url(&format!("{}/{}", self.app_users_path(), id.as_str()));
                let req = self
                    .request(reqwest::Method::POST, &url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
                match self.call(req).await {
                    Ok((_, au)) => Ok(self.pushed(a, &au)),
                    Err(ConnectorError::Vendor { code, detail }) => Ok(vendor_failed(code, detail)),
                    Err(e) => Err(e),
                }
            }
            Operation::Deactivate => {
                let Some(id) = &a.account else {
                    return Ok(ActionResult::failed(
                        format!(
                            "no Okta user id for {}: read {} first",
                            a.email, a.connection
                        ),
                        false,
                    ));
                };
                let url = self.url(&format!("{}/{}", self.app_users_path(), id.as_str()));
                match self.call(self.request(reqwest::Method::DELETE, &url)).await {
                    Ok(_) => Ok(ActionResult::Applied),
                    Err(ConnectorError::Vendor { code, .. }) if code == "404" => {
                        Ok(ActionResult::skipped(format!(
                            "{} is not assigned to {} in Okta; nothing to unassign",
                            a.email, self.config.app_name
                        )))
                    }
                    Err(ConnectorError::Vendor { code, detail }) => Ok(vendor_failed(code, detail)),
                    Err(e) => Err(e),
                }
            }
            Operation::Read => Ok(ActionResult::skipped("read is not a change")),
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Connector for OktaAssignConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        let one = OperationSupport::supported(1);
        let w = self.config.okta_rate_limit;
        Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.page_size.clamp(1, 500)),
            )
            .with(Operation::Create, one)
            .with(Operation::Update, one)
            .with(Operation::Reactivate, one)
            .with(Operation::Deactivate, one)
            .with_rate_limits(vec![RateWindow::new((w.max_requests / 2).max(1), w.per)])
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let url = self.url(&format!("/api/v1/apps/{}", self.config.app_id));
        let app = match self.call(self.request(reqwest::Method::GET, &url)).await {
            Ok((_, app)) => app,
            Err(ConnectorError::Unauthorized { detail }) => {
                return Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]));
            }
            Err(ConnectorError::Vendor { code, .. }) if code == "404" => {
                return Ok(Validation::new(vec![
                    ValidationCheck::pass("credentials", "the Okta API token was accepted"),
                    ValidationCheck::fail(
                        "app",
                        format!(
                            "Okta has no app with id {}; copy the id from the app's page in the Okta Admin Console (Applications → {} → the URL's last part)",
                            self.config.app_id, self.config.app_name
                        ),
                    ),
                ]));
            }
            Err(e) => return Err(e),
        };
        let label = text(&app, "label").unwrap_or_else(|| self.config.app_id.clone());
        let features: Vec<String> = app
            .get("features")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut checks = vec![
            ValidationCheck::pass("credentials", "the Okta API token was accepted"),
            ValidationCheck::pass(
                "app",
                format!("found the Okta app {label:?} ({})", self.config.app_id),
            ),
        ];
        for (flag, op, console) in FEATURES {
            let name = format!("provisioning:{op}");
            checks.push(if features.iter().any(|f| f == flag) {
                ValidationCheck::pass(name, format!("{console} is enabled ({flag})"))
            } else {
                ValidationCheck::fail(
                    name,
                    format!(
                        "the Okta app {label:?} does not have {console} enabled ({flag}), so roster's {op} through Okta would not reach {}: in the Okta Admin Console open Applications → {label} → Provisioning → To App, click Edit and enable {console}",
                        self.config.app_name
                    ),
                )
            });
        }
        Ok(Validation::new(checks))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let limit = req
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size.clamp(1, 500));
        let url = match &req.page_token {
            None => format!("{}?limit={limit}", self.url(&self.app_users_path())),
            Some(t) => {
                let next = t.as_str().strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
                    ConnectorError::Config {
                        detail: "the page token was not issued by the Okta connector".into(),
                    }
                })?;
                // Follow Okta's own link, but only within this org.
                if !next.starts_with(&self.base) {
                    return Err(ConnectorError::Protocol {
                        detail: format!("Okta's next link points outside the org ({next})"),
                    });
                }
                next.to_string()
            }
        };
        let (answer, body) = self.call(self.request(reqwest::Method::GET, &url)).await?;
        let items = body.as_array().ok_or_else(|| ConnectorError::Protocol {
            detail: "Okta answered the app-user list with something other than an array".into(),
        })?;
        let mut accounts = Vec::with_capacity(items.len());
        for au in items {
            accounts.push(
                self.account_from(au)
                    .ok_or_else(|| ConnectorError::Protocol {
                        detail: "Okta listed an app user without an id".into(),
                    })?,
            );
        }
        let next = next_link(&answer.headers).map(|n| PageToken::new(format!("{TOKEN_PREFIX}{n}")));
        let mut page = Page::new(accounts, next);
        if let Some(info) = rate_info(&answer.headers) {
            page = page.with_rate_limit(info);
        }
        Ok(page)
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        *self.last_rate.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut results = Vec::with_capacity(req.actions.len());
        for a in &req.actions {
            results.push(self.apply_one(a, req.dry_run).await?);
        }
        let mut resp = ApplyResponse::new(results);
        if let Some(info) = *self.last_rate.lock().unwrap_or_else(|p| p.into_inner()) {
            resp = resp.with_rate_limit(info);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found_in_every_header_shape() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            "<https://o/api/v1/users?limit=2>; rel=\"self\""
                .parse()
                .unwrap(),
        );
        h.append(
            LINK,
            "<https://o/api/v1/users?after=00u2&limit=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).unwrap(),
            "https://o/api/v1/users?after=00u2&limit=2"
        );
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            "<https://o/a?limit=2>; rel=\"self\", <https://o/a?after=x&limit=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).unwrap(), "https://o/a?after=x&limit=2");
        let mut h = HeaderMap::new();
        h.insert(LINK, "<https://o/a>; rel=\"self\"".parse().unwrap());
        assert!(next_link(&h).is_none());
    }
}
