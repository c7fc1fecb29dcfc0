//! The Spendesk connector: read-only, through the public API
//! (vendor-apis.md §5).
//!
//! Spendesk has no endpoint that creates or deactivates members, so this
//! connector only reads. Its capabilities say create, update, deactivate
//! and reactivate are unsupported; the driver fails those actions without a
//! call and the engine turns them into manual tasks (deactivate in
//! Settings → Members) or JIT follow-ups (a member created at first SSO
//! login has no role, team or approval policy until someone sets them).
//!
//! * Auth: `POST /auth/token` with `Authorization: Basic base64(id:secret)`
//!   gives an access token valid for 60 minutes. The connector keeps it and
//!   fetches a new one shortly before it expires, so a read costs one extra
//!   request per hour. If the app refuses a token early (401), the token is
//!   dropped and the call fails as transient, so the driver's retry
//!   authenticates again; refused credentials at the token endpoint are
//!   `Unauthorized` (nothing to retry).
//! * **Read**: `GET /users?limit=…&cursor=…` → `{"data":[…],
//!   "meta":{"nextCursor"}}`. One account per member; key = member id;
//!   active = `status == "active"`; attributes `first_name`, `last_name`,
//!   `role`, `team`, `cost_center`, `approval_policy` (absent when unset,
//!   which is how a JIT-created member looks).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use roster_core::{Account, AccountKey, ConnectionId, Email, Operation};
use serde_json::Value;
use tokio::time::Instant;

use crate::http::{self, Answer, text, wire_attributes};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, OperationSupport, Page, PageToken, RateWindow, SecretString, Validation,
    ValidationCheck,
};

pub const DEFAULT_BASE_URL: &str = "https://public-api.spendesk.com/v1";

pub mod attr {
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const ROLE: &str = "role";
    pub const TEAM: &str = "team";
    pub const COST_CENTER: &str = "cost_center";
    pub const APPROVAL_POLICY: &str = "approval_policy";
    pub const EMAIL: &str = "email";
}

#[derive(Clone)]
pub struct SpendeskConfig {
    pub connection: ConnectionId,
    /// `https://public-api.spendesk.com/v1`.
    pub base_url: String,
    /// The API key id.
    pub client_id: String,
    /// The API key secret.
    pub client_secret: SecretString,
    pub page_size: u32,
    pub timeout: Duration,
    /// The endpoint may be on a private or link-local network (host names
    /// are checked when resolved; see [`crate::egress`]).
    pub allow_private_network: bool,
    pub rate_limits: Vec<RateWindow>,
}

impl SpendeskConfig {
    pub fn new(
        connection: ConnectionId,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        SpendeskConfig {
            connection,
            base_url: DEFAULT_BASE_URL.into(),
            client_id: client_id.into(),
            client_secret,
            page_size: 100,
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            rate_limits: Vec::new(),
        }
    }
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

impl std::fmt::Debug for SpendeskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendeskConfig")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

struct AccessToken {
    token: SecretString,
    /// Renew after this instant (a margin before the real expiry).
    renew_at: Instant,
}

pub struct SpendeskConnector {
    config: SpendeskConfig,
    base: String,
    client: reqwest::Client,
    token: Mutex<Option<AccessToken>>,
}

const VENDOR: &str = "Spendesk";
const TOKEN_PREFIX: &str = "spendesk-v1:";

fn error_message(body: &Value) -> Option<String> {
    let e = body.get("error")?;
    match e {
        Value::String(s) => Some(s.clone()),
        o => text(o, "message").or_else(|| text(o, "code")),
    }
}

impl SpendeskConnector {
    pub fn new(config: SpendeskConfig) -> Result<Self, ConnectorError> {
        let base = http::base_url(&config.base_url, VENDOR)?;
        if config.client_id.is_empty() || config.client_secret.expose_secret().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: a Spendesk API key id and secret are required (Settings → Integrations → API keys; Spendesk approves access)",
                    config.connection
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(SpendeskConnector {
            config,
            base,
            client,
            token: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &SpendeskConfig {
        &self.config
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<AccessToken>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn secrets(&self) -> Vec<SecretString> {
        let mut s = vec![self.config.client_secret.clone()];
        if let Some(t) = self.slot().as_ref() {
            s.push(t.token.clone());
        }
        s
    }

    fn error_for(&self, answer: &Answer) -> ConnectorError {
        let secrets = self.secrets();
        let refs: Vec<&SecretString> = secrets.iter().collect();
        let message = serde_json::from_str::<Value>(&answer.text)
            .ok()
            .as_ref()
            .and_then(error_message)
            .unwrap_or_else(|| answer.status.to_string());
        http::status_error(
            VENDOR,
            answer.status,
            &answer.headers,
            &http::scrub(&message, &refs),
            &format!(
                "check the API key id and secret of {} (keys last at most a year)",
                self.config.connection
            ),
        )
    }

    /// A valid access token: the kept one, or a new one (one request).
    async fn access_token(&self) -> Result<SecretString, ConnectorError> {
        if let Some(t) = self.slot().as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.token.clone());
        }
        let req = self
            .client
            .post(format!("{}/auth/token", self.base))
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            );
        let answer = Answer::of(VENDOR, req, &[&self.config.client_secret]).await?;
        if !answer.status.is_success() {
            return Err(self.error_for(&answer));
        }
        let body = answer.json(VENDOR)?;
        let token = text(&body, "access_token").ok_or_else(|| ConnectorError::Protocol {
            detail: "Spendesk's token answer has no access_token".into(),
        })?;
        let ttl = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(3600));
        // Renew a minute early (or a tenth of a short lifetime), so a token
        // never expires between our check and the app's.
        let margin = (ttl / 10).min(Duration::from_secs(60));
        let token = SecretString::new(token);
        *self.slot() = Some(AccessToken {
            token: token.clone(),
            renew_at: Instant::now() + ttl.saturating_sub(margin),
        });
        Ok(token)
    }

    fn account_from(&self, m: &Value) -> Option<Account> {
        let id = text(m, "id")?;
        let attributes = wire_attributes(
            m,
            &[
                ("firstName", attr::FIRST_NAME),
                ("lastName", attr::LAST_NAME),
                ("role", attr::ROLE),
                ("team", attr::TEAM),
                ("costCenter", attr::COST_CENTER),
                ("approvalPolicy", attr::APPROVAL_POLICY),
                ("email", attr::EMAIL),
            ],
        );
        Some(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(id),
            email: text(m, "email").and_then(|e| Email::parse(&e).ok()),
            employee_id: None,
            active: text(m, "status").is_some_and(|s| s.eq_ignore_ascii_case("active")),
            attributes,
        })
    }
}

#[async_trait]
impl Connector for SpendeskConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.page_size.clamp(1, 100)),
            )
            .with(Operation::Create, OperationSupport::unsupported())
            .with(Operation::Update, OperationSupport::unsupported())
            .with(Operation::Deactivate, OperationSupport::unsupported())
            .with(Operation::Reactivate, OperationSupport::unsupported())
            .with_rate_limits(self.config.rate_limits.clone())
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        *self.slot() = None;
        match self.access_token().await {
            Ok(_) => Ok(Validation::new(vec![
                ValidationCheck::pass(
                    "credentials",
                    format!(
                        "API key {:?} exchanged for an access token",
                        self.config.client_id
                    ),
                ),
                ValidationCheck::pass(
                    "writes",
                    "Spendesk's API only reads members: roster creates manual tasks for creates, updates and deactivations",
                ),
            ])),
            Err(ConnectorError::Unauthorized { detail }) => {
                Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]))
            }
            Err(e) => Err(e),
        }
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let limit = req
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size.clamp(1, 100));
        let cursor = match &req.page_token {
            None => None,
            Some(t) => Some(
                t.as_str()
                    .strip_prefix(TOKEN_PREFIX)
                    .ok_or_else(|| ConnectorError::Config {
                        detail: "the page token was not issued by the Spendesk connector".into(),
                    })?
                    .to_string(),
            ),
        };
        let token = self.access_token().await?;
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let r = self
            .client
            .get(format!("{}/users", self.base))
            .bearer_auth(token.expose_secret())
            .query(&query);
        let answer = Answer::of(VENDOR, r, &[&self.config.client_secret, &token]).await?;
        if answer.status.as_u16() == 401 {
            // Expired or revoked early: forget it; the retry gets a new one.
            *self.slot() = None;
            return Err(ConnectorError::Transient {
                detail:
                    "Spendesk refused the access token (expired); a new one is requested on retry"
                        .into(),
            });
        }
        if !answer.status.is_success() {
            return Err(self.error_for(&answer));
        }
        let body = answer.json(VENDOR)?;
        if let Some(e) = error_message(&body) {
            return Err(ConnectorError::Transient {
                detail: format!("Spendesk answered HTTP 200 with an error: {e}"),
            });
        }
        let data =
            body.get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| ConnectorError::Protocol {
                    detail: "Spendesk answered the member list without `data`".into(),
                })?;
        let mut accounts = Vec::with_capacity(data.len());
        for m in data {
            accounts.push(
                self.account_from(m)
                    .ok_or_else(|| ConnectorError::Protocol {
                        detail: "Spendesk listed a member without an id".into(),
                    })?,
            );
        }
        let next = crate::http::continuation_at(&body, "/meta/nextCursor")
            .map_err(|why| ConnectorError::Protocol {
                detail: format!("Spendesk answered a garbled member list: {why}"),
            })?
            .map(|c| PageToken::new(format!("{TOKEN_PREFIX}{c}")));
        Ok(Page::new(accounts, next))
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        // The driver never sends unsupported operations; answer honestly if
        // someone calls directly.
        Ok(ApplyResponse::new(
            req.actions
                .iter()
                .map(|a| {
                    ActionResult::failed(
                        format!(
                            "Spendesk's API cannot {} members; do it in Settings → Members",
                            a.operation
                        ),
                        false,
                    )
                })
                .collect(),
        ))
    }
}
