//! The SCIM 2.0 client connector (RFC 7643/7644): the `scim` path, used
//! for any app with a SCIM server roster may call directly (a generic SCIM
//! app, Bill.com Enterprise SCIM, BILL S&E direct SCIM).
//!
//! # The app's model, in roster's terms
//!
//! * One [`Account`] per SCIM User; key = the SCIM `id`. The address is
//!   `userName` when it is an email, else the primary (or work) email.
//!   `employee_id` comes from the enterprise extension's `employeeNumber`.
//! * Attributes (roster name → SCIM path): `first_name` → `name.givenName`,
//!   `last_name` → `name.familyName`, `display_name` → `displayName`,
//!   `department` / `cost_center` / `division` / `organization` → the
//!   enterprise extension, `manager_email` ← `manager.displayName` when it is
//!   an address (read only: SCIM wants the manager's SCIM id), `user_name`
//!   and `external_id` (read only). Any other attribute name is written as a
//!   top-level SCIM attribute of the same name (`title`, `userType`, ...).
//! * **Read**: `GET /Users?startIndex&count&attributes=…` (only the
//!   attributes roster maps, to keep pages small). Offset paging can shift
//!   under the reader, so every page after the first re-reads the last
//!   account of the previous page as an *anchor*: if it is not there, the
//!   listing moved and the read fails that page with
//!   [`ConnectorError::ListingChanged`] (the driver then reports the read
//!   incomplete; nothing is deprovisioned on it). The page token carries the
//!   next index and the anchor id.
//! * **Create**: `POST /Users`. A 409 `uniqueness` means the user already
//!   exists (e.g. the first attempt's answer was lost): the action is
//!   `Skipped`, and the next read links the existing account.
//! * **Update / Reactivate / Deactivate**: one `PATCH` with `replace`
//!   operations for what changed (`active=false` to deactivate, `true` to
//!   reactivate). Never DELETE: IdPs don't, and inactive users stay listed.
//! * **ETags**: when the server sends `meta.version`, the connector keeps
//!   the version it last saw for each user and sends `If-Match` on writes.
//!   A 412 means someone changed the user since roster read it: the action
//!   fails (not retryable) so the plan is recomputed from a fresh read
//!   instead of overwriting that change. When a write's outcome is unknown
//!   (timeout, 5xx, cut connection) the remembered version is dropped, so a
//!   retry of a write that did land is not refused by its own effect.
//!
//! # Configured by data
//!
//! Vendors differ in a few ways the catalog record's `[scim.client]` (and a
//! connection's `options`, which win) can say, so a new SCIM app needs no
//! code: [`ScimAuth`] (a bearer token; HTTP Basic with the connection's
//! `username` where a vendor insists; or OAuth client credentials, the
//! connection's `username` as client id and its secret exchanged at a
//! token endpoint for short-lived access tokens, [`crate::oauth`]), [`PatchStyle`] (`path` operations,
//! or one path-less `replace` whose value object is keyed by the paths, as
//! Okta sends and some servers require), [`Deprovision`] (`active` =
//! PATCH `active=false`, the default; `delete` = `DELETE /Users/{id}` for
//! servers whose DELETE is their deactivation, such as Slack's), whether
//! the server supports `filter` (without it, [`ScimConnector::find_by_user_name`]
//! answers `None` without a request) and the page size.
//!
//! What goes on the wire and comes back is roster-scim's, the protocol
//! library the SCIM server uses too: [`User`] for the resources sent and
//! read (leniently, as real servers need), [`ListResponse`] for pages,
//! [`PatchOp`] / [`PatchOperation`] for updates (paths parsed by its
//! grammar, so a path the server's parser would refuse is never sent),
//! [`ScimError`] for error bodies, and its schema URNs.
//!
//! One call makes one HTTP request (batches of one), so the driver's
//! limiter sees every request. An error body inside an HTTP 200 (some
//! servers do that) is read as the error it is, never as an empty page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, EmployeeId, Operation};
use roster_scim::patch::{PatchOpKind, PatchOperation};
use roster_scim::{
    AttrPath, EnterpriseUser, Filter, ListResponse, MultiValue, Name, PatchOp, PatchPath,
    ScimError, User,
};
use serde_json::{Value, json};

use crate::http::{self, Answer};
use crate::oauth::{ClientAuth, ClientCredentials, TokenSource};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, Observation, OperationSupport, Page, PageToken, RateWindow, SecretString,
    Validation, ValidationCheck,
};

// The schema URNs are the protocol library's.
pub use roster_scim::{
    ENTERPRISE_USER_SCHEMA as ENTERPRISE_SCHEMA, ERROR_SCHEMA, PATCH_OP_SCHEMA as PATCH_SCHEMA,
    USER_SCHEMA,
};
const MEDIA_TYPE: &str = "application/scim+json";

/// Attribute names this connector reads and writes.
pub mod attr {
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const DISPLAY_NAME: &str = "display_name";
    pub const DEPARTMENT: &str = "department";
    pub const COST_CENTER: &str = "cost_center";
    pub const DIVISION: &str = "division";
    pub const ORGANIZATION: &str = "organization";
    /// Read only (from `manager.displayName` when it is an address).
    pub const MANAGER_EMAIL: &str = "manager_email";
    /// Read only: the SCIM `userName`.
    pub const USER_NAME: &str = "user_name";
    /// Read only: the SCIM `externalId`.
    pub const EXTERNAL_ID: &str = "external_id";
    /// The account's address (roster's reconcile sets it on every write).
    pub const EMAIL: &str = "email";
    /// The enterprise extension's `employeeNumber`; written only when a
    /// match resolution re-keys an account to its person.
    pub const EMPLOYEE_ID: &str = "employee_id";
}

/// How the connector authenticates to the SCIM server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ScimAuth {
    /// `Authorization: Bearer <token>` (RFC 7644's common case).
    #[default]
    Bearer,
    /// `Authorization: Basic base64(username:token)`.
    Basic { username: String },
    /// OAuth 2.0 client credentials ([`crate::oauth`]): the connection's
    /// token is the client secret, exchanged at `token_url` for access
    /// tokens that are kept until shortly before they expire.
    OAuthClientCredentials {
        token_url: String,
        client_id: String,
        scope: Option<String>,
    },
}

/// How updates are spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PatchStyle {
    /// One operation per attribute, each with its `path`.
    #[default]
    Path,
    /// One path-less `replace` whose value is an object keyed by the paths
    /// (`{"active": false, "name.givenName": "Ann"}`). Clearing an
    /// attribute needs a path, so such a change fails clearly.
    ValueObject,
}

impl PatchStyle {
    pub fn parse(s: &str) -> Option<PatchStyle> {
        match s.trim() {
            "path" => Some(PatchStyle::Path),
            "value-object" | "no-path" => Some(PatchStyle::ValueObject),
            _ => None,
        }
    }
}

/// What a deactivation sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Deprovision {
    /// `PATCH active=false`: the user stays, inactive.
    #[default]
    Active,
    /// `DELETE /Users/{id}`: for servers whose DELETE is their
    /// deactivation. Whether that keeps the user is the app's; the
    /// catalog's `[deactivation]` says, and the `hard_delete` guard holds
    /// it where a source says it deletes.
    Delete,
}

impl Deprovision {
    pub fn parse(s: &str) -> Option<Deprovision> {
        match s.trim() {
            "active" => Some(Deprovision::Active),
            "delete" => Some(Deprovision::Delete),
            _ => None,
        }
    }
}

/// How to reach one SCIM server.
#[derive(Clone)]
pub struct ScimConfig {
    pub connection: ConnectionId,
    /// The SCIM base URL (the one `/Users` is under), e.g.
    /// `https://app.example.com/scim/v2`.
    pub base_url: String,
    pub token: SecretString,
    /// Users per page (`count`); 100 is what Okta asks for.
    pub page_size: u32,
    pub timeout: Duration,
    /// The endpoint may be on a private or link-local network (host names
    /// are checked when resolved; see [`crate::egress`]).
    pub allow_private_network: bool,
    /// Send `If-Match` when the server offers versions.
    pub use_etags: bool,
    /// Ask for only the mapped attributes. Turn off for servers that
    /// mishandle `attributes`.
    pub narrow_reads: bool,
    /// The app's limits, if it documents any (SCIM itself defines none).
    pub rate_limits: Vec<RateWindow>,
    /// The app's name in messages.
    pub app_name: String,
    pub auth: ScimAuth,
    pub patch_style: PatchStyle,
    pub deprovision: Deprovision,
    /// The server supports `filter` on `GET /Users`.
    pub filter: bool,
}

impl ScimConfig {
    pub fn new(connection: ConnectionId, base_url: impl Into<String>, token: SecretString) -> Self {
        ScimConfig {
            app_name: connection.to_string(),
            connection,
            base_url: base_url.into(),
            token,
            page_size: 100,
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            use_etags: true,
            narrow_reads: true,
            rate_limits: Vec::new(),
            auth: ScimAuth::Bearer,
            patch_style: PatchStyle::Path,
            deprovision: Deprovision::Active,
            filter: true,
        }
    }
}

impl std::fmt::Debug for ScimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimConfig")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .field("page_size", &self.page_size)
            .field("use_etags", &self.use_etags)
            .field("auth", &self.auth)
            .field("patch_style", &self.patch_style)
            .field("deprovision", &self.deprovision)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

/// A SCIM client for one connection.
pub struct ScimConnector {
    config: ScimConfig,
    base: String,
    client: reqwest::Client,
    /// SCIM id → the `meta.version` last seen (for `If-Match`).
    versions: Mutex<HashMap<String, String>>,
    /// The access tokens of [`ScimAuth::OAuthClientCredentials`].
    oauth: Option<TokenSource>,
}

impl std::fmt::Debug for ScimConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The attributes asked for on reads.
fn read_attributes() -> String {
    [
        "userName".to_string(),
        "externalId".into(),
        "name".into(),
        "displayName".into(),
        "emails".into(),
        "active".into(),
        "meta".into(),
        format!("{ENTERPRISE_SCHEMA}:employeeNumber"),
        format!("{ENTERPRISE_SCHEMA}:department"),
        format!("{ENTERPRISE_SCHEMA}:costCenter"),
        format!("{ENTERPRISE_SCHEMA}:division"),
        format!("{ENTERPRISE_SCHEMA}:organization"),
        format!("{ENTERPRISE_SCHEMA}:manager"),
    ]
    .join(",")
}

const TOKEN_PREFIX: &str = "scim-v1:";

/// `scim-v1:<next startIndex>:<anchor id>`.
fn encode_token(next: u64, anchor: &str) -> PageToken {
    PageToken::new(format!("{TOKEN_PREFIX}{next}:{anchor}"))
}

fn decode_token(t: &PageToken) -> Result<(u64, String), ConnectorError> {
    let bad = || ConnectorError::Config {
        detail: "the page token was not issued by the SCIM connector".into(),
    };
    let rest = t.as_str().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (next, anchor) = rest.split_once(':').ok_or_else(bad)?;
    let next: u64 = next.parse().map_err(|_| bad())?;
    if next < 2 || anchor.is_empty() {
        return Err(bad());
    }
    Ok((next, anchor.to_string()))
}

/// A case-insensitive field lookup, for the discovery document
/// (`/ServiceProviderConfig`), which roster-scim only writes.
fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Maps a SCIM User (as [`User::from_json`] read it) to an account.
pub fn account_from_user(connection: &ConnectionId, u: &User) -> Option<Account> {
    let id = u.id.clone()?;
    let user_name = u.user_name.clone();
    let email = user_name
        .as_deref()
        .and_then(|n| Email::parse(n).ok())
        .or_else(|| u.preferred_email().and_then(|e| Email::parse(e).ok()));
    let ext = u.enterprise.as_ref();
    let name = u.name.as_ref();
    let mut attributes = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            attributes.insert(k.to_string(), v);
        }
    };
    put(attr::FIRST_NAME, name.and_then(|n| n.given_name.clone()));
    put(attr::LAST_NAME, name.and_then(|n| n.family_name.clone()));
    put(attr::DISPLAY_NAME, u.display_name.clone());
    put(attr::DEPARTMENT, ext.and_then(|e| e.department.clone()));
    put(attr::COST_CENTER, ext.and_then(|e| e.cost_center.clone()));
    put(attr::DIVISION, ext.and_then(|e| e.division.clone()));
    put(attr::ORGANIZATION, ext.and_then(|e| e.organization.clone()));
    put(
        attr::MANAGER_EMAIL,
        ext.and_then(|e| e.manager.as_ref())
            .and_then(|m| m.display_name.clone())
            .filter(|m| Email::parse(m).is_ok()),
    );
    put(attr::USER_NAME, user_name.clone());
    put(attr::EXTERNAL_ID, u.external_id.clone());
    if let Some(e) = &email {
        put(attr::EMAIL, Some(e.to_string()));
    }
    Some(Account {
        connection: connection.clone(),
        key: AccountKey::new(id),
        email,
        employee_id: ext
            .and_then(|e| e.employee_number.clone())
            .map(EmployeeId::new),
        active: u.active.unwrap_or(true),
        attributes,
    })
}

/// The SCIM path of a roster attribute (`None`: read only).
fn scim_path(name: &str) -> Option<String> {
    Some(match name {
        attr::FIRST_NAME => "name.givenName".into(),
        attr::LAST_NAME => "name.familyName".into(),
        // Re-keying an account to the person a resolution linked it to.
        attr::EMPLOYEE_ID => format!("{ENTERPRISE_SCHEMA}:employeeNumber"),
        attr::DISPLAY_NAME => "displayName".into(),
        attr::DEPARTMENT => format!("{ENTERPRISE_SCHEMA}:department"),
        attr::COST_CENTER => format!("{ENTERPRISE_SCHEMA}:costCenter"),
        attr::DIVISION => format!("{ENTERPRISE_SCHEMA}:division"),
        attr::ORGANIZATION => format!("{ENTERPRISE_SCHEMA}:organization"),
        attr::MANAGER_EMAIL | attr::USER_NAME | attr::EXTERNAL_ID | attr::EMAIL => return None,
        other => other.to_string(),
    })
}

/// One PATCH operation on `path`; a path roster-scim's grammar refuses
/// would be refused by the server too, so it is never sent.
fn operation(op: PatchOpKind, path: &str, value: Option<Value>) -> Result<PatchOperation, String> {
    let path = PatchPath::parse(path).map_err(|e| e.detail)?;
    Ok(PatchOperation {
        op,
        path: Some(path),
        value,
    })
}

fn replace(path: &str, value: Value) -> Result<PatchOperation, String> {
    operation(PatchOpKind::Replace, path, Some(value))
}

/// The operations as one path-less `replace` (for servers that take no
/// `path`): each replaced path becomes a key of the value object.
fn value_object(ops: Vec<PatchOperation>) -> Result<Vec<PatchOperation>, String> {
    if ops.is_empty() {
        return Ok(ops);
    }
    let mut value = serde_json::Map::new();
    for op in ops {
        let path = op.path.map(|p| p.to_string()).unwrap_or_default();
        match (op.op, op.value) {
            (PatchOpKind::Replace | PatchOpKind::Add, Some(v)) => {
                value.insert(path, v);
            }
            _ => {
                return Err(format!(
                    "clearing {path} needs a PATCH path, and this server takes PATCH without one"
                ));
            }
        }
    }
    Ok(vec![PatchOperation {
        op: PatchOpKind::Replace,
        path: None,
        value: Some(Value::Object(value)),
    }])
}

fn work_email(a: &Action) -> Vec<MultiValue> {
    vec![MultiValue::primary_work(a.email.as_str())]
}

impl ScimConnector {
    pub fn new(config: ScimConfig) -> Result<Self, ConnectorError> {
        let base = http::base_url(&config.base_url, "SCIM")?;
        if config.token.expose_secret().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: a SCIM bearer token is required (generate one in the app's SCIM/provisioning settings)",
                    config.connection
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        let oauth = match &config.auth {
            ScimAuth::OAuthClientCredentials {
                token_url,
                client_id,
                scope,
            } => Some(TokenSource::new(
                ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: config.token.clone(),
                    grant_type: "client_credentials".into(),
                    scope: scope.clone(),
                    extra: Vec::new(),
                    client_auth: ClientAuth::Basic,
                },
                &config.app_name,
                config.connection.as_str(),
            )?),
            _ => None,
        };
        Ok(ScimConnector {
            config,
            base,
            client,
            versions: Mutex::new(HashMap::new()),
            oauth,
        })
    }

    pub fn config(&self) -> &ScimConfig {
        &self.config
    }

    fn vendor(&self) -> String {
        format!("the SCIM server of {}", self.config.app_name)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request to `path` under the base, not yet authenticated: [`Self::authed`]
    /// adds the credentials when it is sent.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, MEDIA_TYPE)
    }

    /// Adds the credentials. The flag says whether an OAuth access token
    /// was kept from an earlier call (a 401 on it is worth one new token).
    async fn authed(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, bool), ConnectorError> {
        Ok(match &self.config.auth {
            ScimAuth::Bearer => (req.bearer_auth(self.config.token.expose_secret()), false),
            ScimAuth::Basic { username } => (
                req.basic_auth(username, Some(self.config.token.expose_secret())),
                false,
            ),
            ScimAuth::OAuthClientCredentials { .. } => {
                let oauth = self.oauth.as_ref().ok_or_else(|| ConnectorError::Config {
                    detail: format!("{}: no OAuth client", self.config.connection),
                })?;
                let (token, kept) = oauth.token(&self.client).await?;
                (req.bearer_auth(token.expose_secret()), kept)
            }
        })
    }

    /// What messages must never show: the token or client secret, and a
    /// kept access token.
    fn secrets(&self) -> Vec<SecretString> {
        let mut out = vec![self.config.token.clone()];
        if let Some(o) = &self.oauth {
            out.extend(o.secrets());
        }
        out
    }

    /// Authenticates and sends, without reading the answer as SCIM (the
    /// probe's discovery requests).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, ConnectorError> {
        let (req, _) = self.authed(req).await?;
        let secrets = self.secrets();
        let secrets: Vec<&SecretString> = secrets.iter().collect();
        Answer::of(&self.vendor(), req, &secrets).await
    }

    /// Sends and reads; maps error statuses and error bodies (also inside
    /// an HTTP 200) to errors. Returns the answer and its JSON (`Null` for
    /// an empty body).
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(Answer, Value), ConnectorError> {
        let vendor = self.vendor();
        let (req, kept_token) = self.authed(req).await?;
        let secrets = self.secrets();
        let secrets: Vec<&SecretString> = secrets.iter().collect();
        let answer = Answer::of(&vendor, req, &secrets).await?;
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            answer.json(&vendor)?
        };
        let error = ScimError::from_json(&body);
        let detail = http::scrub(
            &error
                .as_ref()
                .map(|e| e.detail.clone())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| answer.status.to_string()),
            &secrets,
        );
        if answer.status == StatusCode::UNAUTHORIZED
            && kept_token
            && let Some(oauth) = &self.oauth
        {
            // The kept access token was revoked or expired early: drop it,
            // and the retry fetches a new one.
            oauth.forget().await;
            return Err(ConnectorError::Transient {
                detail: format!(
                    "{vendor} refused the kept access token (HTTP 401); a new one is fetched on the next attempt"
                ),
            });
        }
        if !answer.status.is_success() {
            return Err(self.status_error(answer.status, &answer, error.as_ref(), &detail));
        }
        if ScimError::is_error_body(&body) {
            // An error wrapped in a 200: classify by the status inside.
            let inner = error
                .as_ref()
                .and_then(|e| StatusCode::from_u16(e.status).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(self.status_error(
                inner,
                &answer,
                error.as_ref(),
                &format!("{detail} (an error inside an HTTP 200)"),
            ));
        }
        Ok((answer, body))
    }

    fn status_error(
        &self,
        status: StatusCode,
        answer: &Answer,
        error: Option<&ScimError>,
        detail: &str,
    ) -> ConnectorError {
        let scim_type = error.and_then(|e| e.scim_type);
        match status.as_u16() {
            409 | 412 | 404 => ConnectorError::Vendor {
                code: match scim_type {
                    Some(t) => format!("{}:{t}", status.as_u16()),
                    None => status.as_u16().to_string(),
                },
                detail: detail.to_string(),
            },
            _ => http::status_error(
                &self.vendor(),
                status,
                &answer.headers,
                detail,
                &self.credential_fix(),
            ),
        }
    }

    /// What to check when the server refuses the credentials.
    fn credential_fix(&self) -> String {
        let c = &self.config.connection;
        match &self.config.auth {
            ScimAuth::Bearer => {
                format!("check the SCIM bearer token of {c} (it may have been regenerated)")
            }
            ScimAuth::Basic { .. } => format!("check the SCIM user name and password of {c}"),
            ScimAuth::OAuthClientCredentials { .. } => {
                format!("check the OAuth client id, secret and scope of {c}")
            }
        }
    }

    fn remember(&self, user: &User, answer: &Answer) {
        if !self.config.use_etags {
            return;
        }
        let Some(id) = user.id.clone() else {
            return;
        };
        let version = answer
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| user.meta.as_ref().and_then(|m| m.version.clone()));
        if let Some(v) = version {
            self.versions().insert(id, v);
        }
    }

    /// Reads a ListResponse (and its Users) from a server's answer.
    fn list_response(&self, body: &Value) -> Result<(ListResponse, Vec<User>), ConnectorError> {
        let list = ListResponse::from_json(body).map_err(|e| ConnectorError::Protocol {
            detail: format!("{} answered a malformed list: {}", self.vendor(), e.detail),
        })?;
        let users = list
            .resources
            .iter()
            .map(User::from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConnectorError::Protocol {
                detail: format!(
                    "{} listed a user that is not one: {}",
                    self.vendor(),
                    e.detail
                ),
            })?;
        Ok((list, users))
    }

    /// Looks a user up by `userName` (one request). Public for callers that
    /// link a 409'd create to its account.
    pub async fn find_by_user_name(
        &self,
        user_name: &str,
    ) -> Result<Option<Account>, ConnectorError> {
        if !self.config.filter {
            // The server cannot search; the next full read links it.
            return Ok(None);
        }
        let filter = Filter::eq(AttrPath::new("userName"), user_name).to_string();
        let mut req = self.request(reqwest::Method::GET, "/Users").query(&[
            ("filter", filter.as_str()),
            ("startIndex", "1"),
            ("count", "2"),
        ]);
        if self.config.narrow_reads {
            req = req.query(&[("attributes", read_attributes())]);
        }
        let (_, body) = self.call(req).await?;
        let (_, users) = self.list_response(&body)?;
        Ok(users
            .first()
            .and_then(|u| account_from_user(&self.config.connection, u)))
    }

    fn create_body(&self, a: &Action) -> User {
        let get = |k: &str| {
            a.attributes
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let name = Name {
            given_name: get(attr::FIRST_NAME).map(str::to_string),
            family_name: get(attr::LAST_NAME).map(str::to_string),
            ..Name::default()
        };
        let display = get(attr::DISPLAY_NAME).map(str::to_string).or_else(|| {
            let n = format!(
                "{} {}",
                get(attr::FIRST_NAME).unwrap_or(""),
                get(attr::LAST_NAME).unwrap_or("")
            );
            let n = n.trim().to_string();
            (!n.is_empty()).then_some(n)
        });
        let mut user = User {
            user_name: Some(a.email.to_string()),
            name: (!name.is_empty()).then_some(name),
            display_name: display,
            emails: work_email(a),
            active: Some(true),
            external_id: a.employee_id.as_ref().map(|id| id.to_string()),
            ..User::default()
        };
        let mut ext = EnterpriseUser {
            employee_number: a.employee_id.as_ref().map(|id| id.to_string()),
            ..EnterpriseUser::default()
        };
        for (k, v) in &a.attributes {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match scim_path(k) {
                None => {}
                Some(p) if p.starts_with(ENTERPRISE_SCHEMA) => {
                    let field = p.rsplit(':').next().unwrap_or(&p);
                    if let Some(slot) = ext.field_mut(field) {
                        *slot = Some(v.to_string());
                    }
                }
                Some(p) if p.contains('.') || p == "displayName" => {}
                Some(p) => {
                    user.extra.insert(p, json!(v));
                }
            }
        }
        user.schemas = vec![USER_SCHEMA.to_string()];
        if !ext.is_empty() {
            user.schemas.push(ENTERPRISE_SCHEMA.to_string());
            user.enterprise = Some(ext);
        }
        user
    }

    /// The PATCH operations for an update, reactivation or deactivation;
    /// `Err` names an attribute no SCIM path can spell.
    fn patch_ops(&self, a: &Action) -> Result<Vec<PatchOperation>, String> {
        let mut ops = Vec::new();
        match a.operation {
            Operation::Deactivate => ops.push(replace("active", json!(false))?),
            Operation::Reactivate | Operation::Update => {
                if a.operation == Operation::Reactivate {
                    ops.push(replace("active", json!(true))?);
                }
                // What changed; a reactivation without a diff rewrites the
                // whole desired set (it may have drifted while inactive).
                let names: Vec<(&str, Option<&str>)> = if a.changes.is_empty() {
                    a.attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                        .collect()
                } else {
                    a.changes
                        .iter()
                        .map(|c| (c.name.as_str(), c.after.as_deref()))
                        .collect()
                };
                for (name, after) in names {
                    if name == attr::EMAIL {
                        if a.changes.iter().any(|c| c.name == attr::EMAIL) {
                            ops.push(replace("userName", json!(a.email.as_str()))?);
                            let emails =
                                serde_json::to_value(work_email(a)).map_err(|e| e.to_string())?;
                            ops.push(replace("emails", emails)?);
                        }
                        continue;
                    }
                    let Some(path) = scim_path(name) else {
                        continue;
                    };
                    match after.map(str::trim).filter(|v| !v.is_empty()) {
                        Some(v) => ops.push(replace(&path, json!(v))?),
                        None => ops.push(operation(PatchOpKind::Remove, &path, None)?),
                    }
                }
            }
            Operation::Create | Operation::Read | Operation::Delete => {}
        }
        match self.config.patch_style {
            PatchStyle::Path => Ok(ops),
            PatchStyle::ValueObject => value_object(ops),
        }
    }

    /// One action, one request.
    async fn apply_one(&self, a: &Action, dry_run: bool) -> Result<ActionResult, ConnectorError> {
        if dry_run {
            return Ok(ActionResult::skipped("dry run: SCIM has no preview"));
        }
        // A server whose DELETE is its deactivation gets one.
        let wire = if a.operation == Operation::Deactivate
            && self.config.deprovision == Deprovision::Delete
        {
            Operation::Delete
        } else {
            a.operation
        };
        match wire {
            Operation::Read => Ok(ActionResult::skipped("read is not a change")),
            Operation::Delete => {
                let Some(id) = &a.account else {
                    return Ok(ActionResult::failed(
                        format!("no SCIM id for {}: read {} first", a.email, a.connection),
                        false,
                    ));
                };
                let req = self.request(reqwest::Method::DELETE, &format!("/Users/{}", id.as_str()));
                match self.call(req).await {
                    Ok(_) => {
                        self.versions().remove(id.as_str());
                        Ok(ActionResult::Applied)
                    }
                    Err(ConnectorError::Vendor { code, .. }) if code.starts_with("404") => {
                        Ok(ActionResult::skipped(format!(
                            "{} no longer exists in {}; nothing to delete",
                            a.email, self.config.app_name
                        )))
                    }
                    Err(ConnectorError::Vendor { code, detail }) => Ok(ActionResult::failed(
                        format!(
                            "{} refused to delete {} (HTTP {code}): {detail}",
                            self.config.app_name, a.email
                        ),
                        false,
                    )),
                    Err(e) => Err(e),
                }
            }
            Operation::Create => {
                let body = self.create_body(a).to_json();
                let req = self
                    .request(reqwest::Method::POST, "/Users")
                    .header(CONTENT_TYPE, MEDIA_TYPE)
                    .body(body.to_string());
                match self.call(req).await {
                    Ok((answer, body)) => {
                        let user = User::from_json(&body).unwrap_or_default();
                        if user.id.is_none() {
                            // Okta treats an empty 201 as an error too: the
                            // account can't be linked without its id.
                            return Err(ConnectorError::Protocol {
                                detail: format!(
                                    "{} answered the create with no user id",
                                    self.vendor()
                                ),
                            });
                        }
                        self.remember(&user, &answer);
                        Ok(ActionResult::Applied)
                    }
                    Err(ConnectorError::Vendor { code, detail }) if code.starts_with("409") => {
                        Ok(ActionResult::skipped(format!(
                            "{} already has a user named {} ({detail}); the next read links it and plans any change",
                            self.config.app_name, a.email
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
            Operation::Update | Operation::Reactivate | Operation::Deactivate => {
                let Some(id) = &a.account else {
                    return Ok(ActionResult::failed(
                        format!("no SCIM id for {}: read {} first", a.email, a.connection),
                        false,
                    ));
                };
                let ops = match self.patch_ops(a) {
                    Ok(ops) => ops,
                    Err(why) => {
                        return Ok(ActionResult::failed(
                            format!(
                                "cannot change {} in {}: {why}",
                                a.email, self.config.app_name
                            ),
                            false,
                        ));
                    }
                };
                if ops.is_empty() {
                    return Ok(ActionResult::skipped("nothing to change"));
                }
                let body = serde_json::to_string(&PatchOp::new(ops)).map_err(|e| {
                    ConnectorError::Protocol {
                        detail: format!("cannot encode the PATCH request: {e}"),
                    }
                })?;
                let mut req = self
                    .request(reqwest::Method::PATCH, &format!("/Users/{}", id.as_str()))
                    .header(CONTENT_TYPE, MEDIA_TYPE)
                    .body(body);
                let version = self
                    .config
                    .use_etags
                    .then(|| self.versions().get(id.as_str()).cloned())
                    .flatten();
                if let Some(v) = &version {
                    req = req.header(IF_MATCH, v.as_str());
                }
                match self.call(req).await {
                    Ok((answer, user)) => {
                        if user.is_null() {
                            // 204: only the ETag header (if any) tells the
                            // new version.
                            let tag = answer
                                .headers
                                .get(ETAG)
                                .and_then(|v| v.to_str().ok())
                                .filter(|_| self.config.use_etags)
                                .map(str::to_string);
                            match tag {
                                Some(t) => self.versions().insert(id.as_str().to_string(), t),
                                None => self.versions().remove(id.as_str()),
                            };
                        } else if let Ok(user) = User::from_json(&user) {
                            self.remember(&user, &answer);
                        }
                        Ok(ActionResult::Applied)
                    }
                    Err(ConnectorError::Vendor { code, detail }) if code.starts_with("412") => {
                        self.versions().remove(id.as_str());
                        Ok(ActionResult::failed(
                            format!(
                                "{} changed in {} since roster read it ({detail}); re-run the plan from a fresh read",
                                a.email, self.config.app_name
                            ),
                            false,
                        ))
                    }
                    Err(ConnectorError::Vendor { code, .. })
                        if code.starts_with("404") && a.operation == Operation::Deactivate =>
                    {
                        Ok(ActionResult::skipped(format!(
                            "{} no longer exists in {}; nothing to deactivate",
                            a.email, self.config.app_name
                        )))
                    }
                    Err(ConnectorError::Vendor { code, detail }) => Ok(ActionResult::failed(
                        format!(
                            "{} refused the change for {} (HTTP {code}): {detail}",
                            self.config.app_name, a.email
                        ),
                        false,
                    )),
                    Err(e) => {
                        // The outcome is unknown: the version may be stale.
                        self.versions().remove(id.as_str());
                        Err(e)
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Connector for ScimConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        let one = OperationSupport::supported(1);
        Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.page_size),
            )
            .with(Operation::Create, one)
            .with(Operation::Update, one)
            .with(Operation::Reactivate, one)
            .with(Operation::Deactivate, one)
            .with(Operation::Delete, one)
            .with_rate_limits(self.config.rate_limits.clone())
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        // Discovery endpoints may be public (RFC 7644 §4), so the token is
        // checked on /Users.
        let probe = self.request(reqwest::Method::GET, "/Users").query(&[
            ("startIndex", "1"),
            ("count", "1"),
            ("attributes", "userName"),
        ]);
        match self.call(probe).await {
            Ok(_) => {}
            Err(ConnectorError::Unauthorized { detail }) => {
                return Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]));
            }
            Err(e) => return Err(e),
        }
        let mut checks = vec![ValidationCheck::pass(
            "credentials",
            format!(
                "the SCIM credentials of {} ({}) were accepted",
                self.config.connection,
                match self.config.auth {
                    ScimAuth::Bearer => "bearer token",
                    ScimAuth::Basic { .. } => "HTTP Basic",
                    ScimAuth::OAuthClientCredentials { .. } => "OAuth client credentials",
                }
            ),
        )];
        let spc = match self
            .call(self.request(reqwest::Method::GET, "/ServiceProviderConfig"))
            .await
        {
            Ok((_, body)) => body,
            Err(ConnectorError::Vendor { code, .. }) if code.starts_with("404") => Value::Null,
            Err(e) => return Err(e),
        };
        let supported = |k: &str| {
            get_ci(&spc, k)
                .and_then(|v| get_ci(v, "supported"))
                .and_then(Value::as_bool)
        };
        checks.push(match supported("patch") {
            Some(false) => ValidationCheck::fail(
                "patch",
                format!(
                    "{} says it does not support PATCH; roster updates and deactivates users with PATCH",
                    self.config.app_name
                ),
            ),
            _ => ValidationCheck::pass("patch", "PATCH is supported"),
        });
        checks.push(ValidationCheck::pass(
            "etag",
            match supported("etag") {
                Some(true) => "ETags are supported; writes carry If-Match",
                _ => "ETags are not advertised; writes go without If-Match",
            },
        ));
        Ok(Validation::new(checks))
    }

    async fn probe(&self) -> Result<Vec<Observation>, ConnectorError> {
        let mut out = Vec::new();
        let mut seen_headers: Vec<String> = Vec::new();
        let mut note_headers = |answer: &Answer| {
            for (name, _) in answer.headers.iter() {
                let n = name.as_str().to_ascii_lowercase();
                let rate = n.starts_with("x-ratelimit")
                    || n.starts_with("ratelimit")
                    || n.starts_with("x-rate-limit")
                    || n == "retry-after";
                if rate && !seen_headers.contains(&n) {
                    seen_headers.push(n);
                }
            }
        };
        // Discovery (RFC 7644 §4): served or not, and what it claims.
        for (path, field) in [
            ("/ServiceProviderConfig", "probe.service_provider_config"),
            ("/ResourceTypes", "probe.resource_types"),
            ("/Schemas", "probe.schemas"),
        ] {
            let req = self.request(reqwest::Method::GET, path);
            let answer = self.send(req).await?;
            note_headers(&answer);
            let served = answer.status.is_success();
            out.push(Observation {
                field: field.into(),
                value: json!(served),
                detail: format!("GET {path} answered HTTP {}", answer.status.as_u16()),
            });
            if path == "/ServiceProviderConfig" && served {
                let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
                for feature in ["patch", "filter", "etag", "bulk", "sort"] {
                    if let Some(b) = get_ci(&body, feature)
                        .and_then(|v| get_ci(v, "supported"))
                        .and_then(Value::as_bool)
                    {
                        out.push(Observation {
                            field: format!("scim.client.{feature}"),
                            value: json!(b),
                            detail: format!("ServiceProviderConfig {feature}.supported = {b}"),
                        });
                    }
                }
                let schemes: Vec<String> = get_ci(&body, "authenticationSchemes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| get_ci(s, "type").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                if !schemes.is_empty() {
                    out.push(Observation {
                        field: "api.auth_method".into(),
                        value: json!(schemes.join(", ")),
                        detail: "ServiceProviderConfig authenticationSchemes".into(),
                    });
                }
            }
        }
        // Auth and paging: one small page of users.
        let req = self.request(reqwest::Method::GET, "/Users").query(&[
            ("startIndex", "1"),
            ("count", "1"),
            ("attributes", "userName"),
        ]);
        let answer = self.send(req).await?;
        note_headers(&answer);
        let status = answer.status.as_u16();
        out.push(Observation {
            field: "probe.auth".into(),
            value: json!(answer.status.is_success()),
            detail: format!(
                "GET /Users?startIndex=1&count=1 with the connection's credential answered HTTP {status}"
            ),
        });
        if answer.status.is_success() {
            out.push(Observation {
                field: "scim.available".into(),
                value: json!("yes"),
                detail: "GET /Users answered a SCIM list".into(),
            });
            let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
            let int = |k: &str| get_ci(&body, k).and_then(Value::as_i64);
            let (total, per_page, start) =
                (int("totalResults"), int("itemsPerPage"), int("startIndex"));
            let paging = if start.is_some() && total.is_some() {
                "start-index"
            } else {
                "undocumented"
            };
            out.push(Observation {
                field: "pagination.method".into(),
                value: json!(paging),
                detail: format!(
                    "count=1 gave totalResults {total:?}, itemsPerPage {per_page:?}, startIndex {start:?}"
                ),
            });
        }
        out.push(Observation {
            field: "rate_limits.header_names".into(),
            value: json!(seen_headers),
            detail: if seen_headers.is_empty() {
                "no rate-limit header on any probe answer".into()
            } else {
                "rate-limit headers seen on the probe's answers".into()
            },
        });
        Ok(out)
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let size = req
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size.max(1)) as u64;
        let (start, anchor) = match &req.page_token {
            None => (1, None),
            Some(t) => {
                let (next, anchor) = decode_token(t)?;
                // Re-read the previous page's last user as the anchor.
                (next - 1, Some(anchor))
            }
        };
        let count = size + u64::from(anchor.is_some());
        let mut r = self.request(reqwest::Method::GET, "/Users").query(&[
            ("startIndex", start.to_string()),
            ("count", count.to_string()),
        ]);
        if self.config.narrow_reads {
            r = r.query(&[("attributes", read_attributes())]);
        }
        let (answer, body) = self.call(r).await?;
        let (list, users) = self.list_response(&body)?;
        let total = list.total_results as u64;
        if users.is_empty() && start <= total {
            // A page that should hold users but has none (or no Resources
            // at all) would end the read early and look complete.
            return Err(ConnectorError::Protocol {
                detail: format!(
                    "{} answered a list without its Resources (totalResults {total}, startIndex {start})",
                    self.vendor()
                ),
            });
        }
        let mut users = users.into_iter();
        if let Some(anchor) = &anchor {
            let first = users.next();
            let first_id = first.as_ref().and_then(|u| u.id.clone());
            if first_id.as_deref() != Some(anchor.as_str()) {
                return Err(ConnectorError::ListingChanged {
                    detail: format!(
                        "{} listed {} at index {start} where the previous page ended with {anchor}; users were added or removed during the read (or the server ignored startIndex)",
                        self.vendor(),
                        first_id.unwrap_or_else(|| "nothing".into()),
                    ),
                });
            }
        }
        let users: Vec<User> = users.collect();
        let mut accounts = Vec::with_capacity(users.len());
        for u in &users {
            self.remember(u, &answer);
            match account_from_user(&self.config.connection, u) {
                Some(a) => accounts.push(a),
                None => {
                    return Err(ConnectorError::Protocol {
                        detail: format!("{} listed a user without an id", self.vendor()),
                    });
                }
            }
        }
        // Advance by what was actually returned: a server that pages
        // shorter than asked loses nothing.
        let next_index = start + u64::from(anchor.is_some()) + users.len() as u64;
        let next = match accounts.last() {
            Some(last) if next_index <= total => Some(encode_token(next_index, last.key.as_str())),
            _ => None,
        };
        Ok(Page::new(accounts, next).with_total(total))
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
    fn users_map_to_accounts() {
        let u = json!({
            "id": "abc", "userName": "Ann@Example.com",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@example.com", "type": "work", "primary": true}],
            "active": false,
            ENTERPRISE_SCHEMA: {"employeeNumber": "E7", "department": "Ops",
                "manager": {"value": "m1", "displayName": "boss@example.com"}},
        });
        let a = account_from_user(&ConnectionId::new("s"), &User::from_json(&u).unwrap()).unwrap();
        assert_eq!(a.key.as_str(), "abc");
        assert_eq!(a.email.unwrap().as_str(), "Ann@Example.com");
        assert_eq!(a.employee_id.unwrap().as_str(), "E7");
        assert!(!a.active);
        assert_eq!(a.attributes[attr::DEPARTMENT], "Ops");
        assert_eq!(a.attributes[attr::MANAGER_EMAIL], "boss@example.com");
        assert_eq!(a.attributes[attr::FIRST_NAME], "Ann");
        // A non-email userName falls back to the primary email.
        let u = json!({"id": "x", "userName": "ann", "emails": [{"value": "a@x.com", "primary": true}]});
        let a = account_from_user(&ConnectionId::new("s"), &User::from_json(&u).unwrap()).unwrap();
        assert_eq!(a.email.unwrap().as_str(), "a@x.com");
        assert!(a.active);
    }

    fn connector() -> ScimConnector {
        ScimConnector::new(ScimConfig::new(
            ConnectionId::new("s"),
            "http://127.0.0.1:1/scim/v2",
            SecretString::new("t"),
        ))
        .unwrap()
    }

    fn action(op: Operation, changes: &[(&str, Option<&str>)]) -> Action {
        Action {
            connection: ConnectionId::new("s"),
            operation: op,
            employee_id: Some(EmployeeId::new("E1")),
            email: Email::parse("ann@x.com").unwrap(),
            account: Some(AccountKey::new("u1")),
            attributes: [
                ("first_name", "Ann"),
                ("last_name", "Lee"),
                ("department", "Ops"),
                ("title", "Boss"),
                ("manager_email", "boss@x.com"),
                ("email", "ann@x.com"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            changes: changes
                .iter()
                .map(|(n, after)| roster_core::AttributeChange {
                    name: n.to_string(),
                    before: Some("old".into()),
                    after: after.map(str::to_string),
                })
                .collect(),
            reason: "test".into(),
            cause: roster_core::Cause::Grant,
        }
    }

    /// What goes on the wire, built from roster-scim's types: the same
    /// documents the hand-built JSON was.
    #[test]
    fn create_and_patch_bodies_on_the_wire() {
        let c = connector();
        assert_eq!(
            c.create_body(&action(Operation::Create, &[])).to_json(),
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
                "userName": "ann@x.com",
                "name": {"givenName": "Ann", "familyName": "Lee"},
                "displayName": "Ann Lee",
                "emails": [{"value": "ann@x.com", "type": "work", "primary": true}],
                "active": true,
                "externalId": "E1",
                "title": "Boss",
                ENTERPRISE_SCHEMA: {"employeeNumber": "E1", "department": "Ops"},
            })
        );
        let update = action(
            Operation::Update,
            &[
                ("department", None),
                ("email", Some("ann@x.com")),
                ("title", Some("CEO")),
            ],
        );
        let ops = c.patch_ops(&update).unwrap();
        assert_eq!(
            serde_json::to_value(PatchOp::new(ops)).unwrap(),
            json!({
                "schemas": [PATCH_SCHEMA],
                "Operations": [
                    {"op": "remove", "path": format!("{ENTERPRISE_SCHEMA}:department")},
                    {"op": "replace", "path": "userName", "value": "ann@x.com"},
                    {"op": "replace", "path": "emails",
                     "value": [{"value": "ann@x.com", "type": "work", "primary": true}]},
                    {"op": "replace", "path": "title", "value": "CEO"},
                ],
            })
        );
        let off = c.patch_ops(&action(Operation::Deactivate, &[])).unwrap();
        assert_eq!(
            serde_json::to_value(&off[0]).unwrap(),
            json!({"op": "replace", "path": "active", "value": false})
        );
        // A name no SCIM path can spell is refused before anything is sent.
        let bad = action(Operation::Update, &[("cost center!", Some("x"))]);
        assert!(c.patch_ops(&bad).is_err());
    }

    /// A loopback server that answers every request with `body` (HTTP 200).
    async fn answering(body: Value) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/scim/v2", listener.local_addr().unwrap());
        let body = body.to_string();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            }
        });
        url
    }

    /// A server that claims users but sends none must not yield a complete
    /// (empty) read: that read would deprovision everyone.
    #[tokio::test]
    async fn a_page_that_claims_users_but_holds_none_is_never_a_complete_read() {
        for body in [
            json!({"schemas": [roster_scim::LIST_RESPONSE_SCHEMA], "totalResults": 3}),
            json!({"totalResults": 3, "Resources": []}),
            json!({"totalResults": "3", "Resources": null}),
        ] {
            let url = answering(body.clone()).await;
            let c = ScimConnector::new(ScimConfig::new(
                ConnectionId::new("s"),
                url,
                SecretString::new("t"),
            ))
            .unwrap();
            let e = c.list_accounts(ListRequest::default()).await.err();
            assert!(
                matches!(&e, Some(ConnectorError::Protocol { detail }) if detail.contains("without its Resources")),
                "{body}: {e:?}"
            );
            let read = crate::driver::read_all(
                &c,
                &crate::RateLimiter::unlimited(),
                &crate::retry::RetryPolicy {
                    max_attempts: 2,
                    initial_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(1),
                    ..crate::retry::RetryPolicy::default()
                },
                &crate::driver::DriverOptions::default(),
            )
            .await;
            assert!(
                read.as_ref().map_or(true, |o| !o.complete),
                "{body}: {read:?}"
            );
        }
        // An empty directory is a complete, empty read.
        let url = answering(json!({"totalResults": 0, "Resources": []})).await;
        let c = ScimConnector::new(ScimConfig::new(
            ConnectionId::new("s"),
            url,
            SecretString::new("t"),
        ))
        .unwrap();
        let page = c.list_accounts(ListRequest::default()).await.unwrap();
        assert!(page.accounts.is_empty() && page.next.is_none());
    }

    #[test]
    fn tokens_round_trip() {
        let t = encode_token(101, "id-1");
        assert_eq!(decode_token(&t).unwrap(), (101, "id-1".to_string()));
        assert!(decode_token(&PageToken::new("scim-v1:1:x")).is_err());
        assert!(decode_token(&PageToken::new("other")).is_err());
    }
}
