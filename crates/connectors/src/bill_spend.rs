//! The BILL Spend & Expense connector: the `api` path through BILL's v3
//! spend users API (vendor-apis.md §5).
//!
//! * Auth: header `apiToken: <token>` on every request; no login step.
//! * **Read**: `GET /v3/spend/users?max=…&nextPage=…`, then the same with
//!   `filters=retired:eq:true` (retired users are listed apart), so a
//!   retired member shows as an inactive account rather than vanishing.
//!   The page token carries the phase and BILL's own `nextPage`.
//! * **Create**: `POST /v3/spend/users` with `firstName`, `lastName`,
//!   `email` and `role` (`ADMIN | AUDITOR | BOOKKEEPER | MEMBER`; from the
//!   `role` attribute, else the configured default). An "already exists"
//!   answer means an earlier attempt landed: `Skipped`, the next read links
//!   it.
//! * **Deactivate**: `DELETE /v3/spend/users/{id}` (BILL retires the
//!   user). A 404 is `Skipped`: nothing left to retire.
//! * Update and reactivate are not in the API: the driver turns them into
//!   failures without a call, and the engine into manual tasks.
//!
//! # Limits
//!
//! BILL documents 20,000 requests per hour per developer key and **3
//! concurrent requests** per key and organisation. The hourly limit is a
//! [`RateWindow`] for the driver; concurrency is enforced here with a
//! semaphore shared by every call on this connector, because the driver may
//! run reads and writes of one connection side by side.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, Operation};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::http::{self, Answer, text, wire_attributes};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, OperationSupport, Page, PageToken, RateWindow, SecretString, Validation,
    ValidationCheck,
};

pub const DEFAULT_BASE_URL: &str = "https://gateway.prod.bill.com/connect";
pub const ROLES: [&str; 4] = ["ADMIN", "AUDITOR", "BOOKKEEPER", "MEMBER"];

pub mod attr {
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    /// `ADMIN`, `AUDITOR`, `BOOKKEEPER` or `MEMBER` (case-insensitive on
    /// write; as BILL spells it on read).
    pub const ROLE: &str = "role";
    /// Read only: BILL's UUID for the user.
    pub const UUID: &str = "uuid";
    pub const EMAIL: &str = "email";
}

/// The documented hourly limit.
pub fn documented_rate_limits() -> Vec<RateWindow> {
    vec![RateWindow::new(20_000, Duration::from_secs(3600))]
}

#[derive(Clone)]
pub struct BillSpendConfig {
    pub connection: ConnectionId,
    /// `https://gateway.prod.bill.com/connect` (sandbox:
    /// `https://gateway.stage.bill.com/connect`).
    pub base_url: String,
    pub api_token: SecretString,
    /// Users per page, 1–100.
    pub page_size: u32,
    /// Requests in flight at once (documented: 3).
    pub max_concurrent: usize,
    /// Role for created users without a `role` attribute.
    pub default_role: String,
    pub timeout: Duration,
    /// The endpoint may be on a private or link-local network (host names
    /// are checked when resolved; see [`crate::egress`]).
    pub allow_private_network: bool,
    pub rate_limits: Vec<RateWindow>,
}

impl BillSpendConfig {
    pub fn new(connection: ConnectionId, api_token: SecretString) -> Self {
        BillSpendConfig {
            connection,
            base_url: DEFAULT_BASE_URL.into(),
            api_token,
            page_size: 100,
            max_concurrent: 3,
            default_role: "MEMBER".into(),
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            rate_limits: documented_rate_limits(),
        }
    }
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

impl std::fmt::Debug for BillSpendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillSpendConfig")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("api_token", &self.api_token)
            .field("page_size", &self.page_size)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

pub struct BillSpendConnector {
    config: BillSpendConfig,
    base: String,
    client: reqwest::Client,
    /// BILL's concurrency limit, shared by every call on this connector.
    in_flight: Arc<Semaphore>,
}

const VENDOR: &str = "BILL Spend & Expense";

const TOKEN_PREFIX: &str = "bill-v1:";

/// `bill-v1:<a|r>:<BILL nextPage or empty>`: phase a lists active users,
/// phase r retired ones.
fn encode_token(retired: bool, next: &str) -> PageToken {
    PageToken::new(format!(
        "{TOKEN_PREFIX}{}:{next}",
        if retired { "r" } else { "a" }
    ))
}

fn decode_token(t: &PageToken) -> Result<(bool, Option<String>), ConnectorError> {
    let bad = || ConnectorError::Config {
        detail: "the page token was not issued by the BILL connector".into(),
    };
    let rest = t.as_str().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (phase, next) = rest.split_once(':').ok_or_else(bad)?;
    let retired = match phase {
        "a" => false,
        "r" => true,
        _ => return Err(bad()),
    };
    Ok((retired, (!next.is_empty()).then(|| next.to_string())))
}

/// BILL's error body: an array of `{code, message}` (or one object).
fn error_message(body: &Value) -> Option<String> {
    let first = match body {
        Value::Array(a) => a.first()?,
        o @ Value::Object(_) => o,
        _ => return None,
    };
    let code = text(first, "code");
    let message = text(first, "message")?;
    Some(match code {
        Some(c) => format!("{c}: {message}"),
        None => message,
    })
}

impl BillSpendConnector {
    pub fn new(config: BillSpendConfig) -> Result<Self, ConnectorError> {
        let base = http::base_url(&config.base_url, VENDOR)?;
        if config.api_token.expose_secret().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: an apiToken is required; generate one in BILL Spend & Expense under Settings → Integrations → API",
                    config.connection
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        let permits = config.max_concurrent.max(1);
        Ok(BillSpendConnector {
            config,
            base,
            client,
            in_flight: Arc::new(Semaphore::new(permits)),
        })
    }

    pub fn config(&self) -> &BillSpendConfig {
        &self.config
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("apiToken", self.config.api_token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// One request under the concurrency limit; error statuses and error
    /// bodies become errors.
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ConnectorError::Transient {
                detail: "the connector is shutting down".into(),
            })?;
        let answer = Answer::of(VENDOR, req, &[&self.config.api_token]).await?;
        let body = answer.json(VENDOR);
        if !answer.status.is_success() {
            let message = body
                .as_ref()
                .ok()
                .and_then(error_message)
                .unwrap_or_else(|| answer.status.to_string());
            return Err(http::status_error(
                VENDOR,
                answer.status,
                &answer.headers,
                &http::scrub(&message, &[&self.config.api_token]),
                &format!(
                    "check the apiToken of {} (Settings → Integrations → API in BILL Spend & Expense)",
                    self.config.connection
                ),
            ));
        }
        let body = body?;
        if matches!(&body, Value::Array(a) if a.iter().any(|e| e.get("code").is_some())) {
            // An error list inside an HTTP 200.
            return Err(ConnectorError::Transient {
                detail: format!(
                    "{VENDOR} answered HTTP 200 with an error: {}",
                    error_message(&body).unwrap_or_default()
                ),
            });
        }
        Ok(body)
    }

    fn account_from(&self, u: &Value) -> Option<Account> {
        let id = text(u, "id")?;
        let attributes = wire_attributes(
            u,
            &[
                ("firstName", attr::FIRST_NAME),
                ("lastName", attr::LAST_NAME),
                ("role", attr::ROLE),
                ("uuid", attr::UUID),
                ("email", attr::EMAIL),
            ],
        );
        Some(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(id),
            email: text(u, "email").and_then(|e| Email::parse(&e).ok()),
            employee_id: None,
            active: !u.get("retired").and_then(Value::as_bool).unwrap_or(false),
            attributes,
        })
    }

    async fn apply_one(&self, a: &Action, dry_run: bool) -> Result<ActionResult, ConnectorError> {
        if dry_run {
            return Ok(ActionResult::skipped("dry run: BILL has no preview"));
        }
        match a.operation {
            Operation::Create => {
                let get = |k: &str| {
                    a.attributes
                        .get(k)
                        .map(|v| v.trim())
                        .filter(|v| !v.is_empty())
                };
                let (Some(first), Some(last)) = (get(attr::FIRST_NAME), get(attr::LAST_NAME))
                else {
                    return Ok(ActionResult::failed(
                        format!(
                            "BILL requires a first and last name for {}; set first_name and last_name for {} in the policy",
                            a.email, a.connection
                        ),
                        false,
                    ));
                };
                let role = get(attr::ROLE)
                    .unwrap_or(&self.config.default_role)
                    .to_ascii_uppercase();
                if !ROLES.contains(&role.as_str()) {
                    return Ok(ActionResult::failed(
                        format!(
                            "role {role:?} for {} is not a BILL role (ADMIN, AUDITOR, BOOKKEEPER, MEMBER)",
                            a.email
                        ),
                        false,
                    ));
                }
                let body = json!({
                    "firstName": first,
                    "lastName": last,
                    "email": a.email.as_str(),
                    "role": role,
                });
                let req = self
                    .request(reqwest::Method::POST, "/v3/spend/users")
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
                match self.call(req).await {
                    Ok(u) if text(&u, "id").is_some() => Ok(ActionResult::Applied),
                    Ok(_) => Err(ConnectorError::Protocol {
                        detail: format!("{VENDOR} answered the create without a user id"),
                    }),
                    Err(ConnectorError::Vendor { detail, .. })
                        if detail.to_ascii_lowercase().contains("already exists") =>
                    {
                        Ok(ActionResult::skipped(format!(
                            "{} already exists in {VENDOR} ({detail}); the next read links it",
                            a.email
                        )))
                    }
                    Err(ConnectorError::Vendor { code, detail }) => Ok(ActionResult::failed(
                        format!(
                            "{VENDOR} refused to create {} (HTTP {code}): {detail}",
                            a.email
                        ),
                        false,
                    )),
                    Err(e) => Err(e),
                }
            }
            Operation::Deactivate => {
                let Some(id) = &a.account else {
                    return Ok(ActionResult::failed(
                        format!(
                            "no BILL user id for {}: read {} first",
                            a.email, a.connection
                        ),
                        false,
                    ));
                };
                let req = self.request(
                    reqwest::Method::DELETE,
                    &format!("/v3/spend/users/{}", id.as_str()),
                );
                match self.call(req).await {
                    Ok(_) => Ok(ActionResult::Applied),
                    Err(ConnectorError::Vendor { code, .. }) if code == "404" => {
                        Ok(ActionResult::skipped(format!(
                            "{} no longer exists in {VENDOR}; nothing to retire",
                            a.email
                        )))
                    }
                    Err(ConnectorError::Vendor { code, detail }) => Ok(ActionResult::failed(
                        format!(
                            "{VENDOR} refused to retire {} (HTTP {code}): {detail}",
                            a.email
                        ),
                        false,
                    )),
                    Err(e) => Err(e),
                }
            }
            op => Err(ConnectorError::Unsupported { operation: op }),
        }
    }
}

#[async_trait]
impl Connector for BillSpendConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.page_size.clamp(1, 100)),
            )
            .with(Operation::Create, OperationSupport::supported(1))
            .with(Operation::Deactivate, OperationSupport::supported(1))
            .with_rate_limits(self.config.rate_limits.clone())
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let me = match self
            .call(self.request(reqwest::Method::GET, "/v3/spend/users/current"))
            .await
        {
            Ok(u) => u,
            Err(ConnectorError::Unauthorized { detail }) => {
                return Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]));
            }
            Err(e) => return Err(e),
        };
        let role = text(&me, "role").unwrap_or_default();
        Ok(Validation::new(vec![
            ValidationCheck::pass(
                "credentials",
                format!(
                    "the apiToken belongs to {}",
                    text(&me, "email").unwrap_or_else(|| "an unnamed user".into())
                ),
            ),
            if role.eq_ignore_ascii_case("ADMIN") {
                ValidationCheck::pass("role", "the token's user is an ADMIN")
            } else {
                ValidationCheck::fail(
                    "role",
                    format!(
                        "the token's user is {role:?}; creating and retiring users needs an ADMIN's apiToken"
                    ),
                )
            },
        ]))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let max = req
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size.clamp(1, 100));
        let (retired, next_page) = match &req.page_token {
            None => (false, None),
            Some(t) => decode_token(t)?,
        };
        let mut query = vec![("max", max.to_string())];
        if retired {
            query.push(("filters", "retired:eq:true".into()));
        }
        if let Some(n) = &next_page {
            query.push(("nextPage", n.clone()));
        }
        let body = self
            .call(
                self.request(reqwest::Method::GET, "/v3/spend/users")
                    .query(&query),
            )
            .await?;
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| ConnectorError::Protocol {
                detail: format!("{VENDOR} answered a user list without `results`"),
            })?;
        let mut accounts = Vec::with_capacity(results.len());
        for u in results {
            accounts.push(
                self.account_from(u)
                    .ok_or_else(|| ConnectorError::Protocol {
                        detail: format!("{VENDOR} listed a user without an id"),
                    })?,
            );
        }
        let next_page = crate::http::continuation_at(&body, "/nextPage").map_err(|why| {
            ConnectorError::Protocol {
                detail: format!("{VENDOR} answered a garbled user list: {why}"),
            }
        })?;
        let next = match next_page {
            Some(n) => Some(encode_token(retired, &n)),
            None if !retired => Some(encode_token(true, "")),
            None => None,
        };
        Ok(Page::new(accounts, next))
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let mut results = Vec::with_capacity(req.actions.len());
        for a in &req.actions {
            results.push(self.apply_one(a, req.dry_run).await?);
        }
        Ok(ApplyResponse::new(results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(
            decode_token(&encode_token(true, "abc")).unwrap(),
            (true, Some("abc".into()))
        );
        assert_eq!(
            decode_token(&encode_token(false, "")).unwrap(),
            (false, None)
        );
        assert!(decode_token(&PageToken::new("x")).is_err());
    }

    #[test]
    fn error_bodies_read_as_code_and_message() {
        let b = json!([{"code": "BDC_1144", "message": "slow down"}]);
        assert_eq!(error_message(&b).unwrap(), "BDC_1144: slow down");
    }
}
