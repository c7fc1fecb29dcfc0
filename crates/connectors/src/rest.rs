//! The declarative REST connector: one implementation (`rest`, on the `api`
//! path) for any app whose user API is simple enough to describe as data.
//! The app's catalog record holds the description in its `[rest]` table
//! ([`roster_catalog::rest`]), so such an app needs a data file, not code.
//! Zoom, Atlassian (organization user management), Zendesk, Asana and
//! HubSpot use it; each is tested against a simulator built from that
//! vendor's documented shapes (`roster_sim::rest_apps`).
//!
//! # The record format (`[rest]`)
//!
//! | key | what |
//! |---|---|
//! | `source` | the `[sources]` key the shapes follow from |
//! | `base_url` | the API base, a template (`https://{subdomain}.zendesk.com`); a connection's `base_url` wins |
//! | `auth` | `{ kind = "bearer" \| "basic" \| "oauth2-client-credentials", token_url, grant_type, params, scope }` |
//! | `list` | `path`, fixed `query`, `items` (JSON pointer to the users array), `page_size`, `paging` |
//! | `list.paging` | `style` = `none`, `cursor` (token at body pointer `next`, sent as query `param`; `has_more` pointer optional), `next-url` (a full URL at `next`), `link-header` (`Link: <…>; rel="next"`), `offset`, `page`; `size_param`; `total` |
//! | `fields` | `id`, `email` (JSON pointers), `active = { pointer, active = [..], inactive = [..] }`, `attributes = { roster name = pointer }` |
//! | `create`, `update`, `deactivate`, `reactivate` | `{ method, path, body, id }`: path and body are templates (`{id}`, `{email}`, attributes, connection options) |
//! | `errors` | `[{ status, contains, kind }]`, kind = `exists`, `gone`, `invalid`, `unauthorized`, `rate-limited`, `transient` |
//! | `error_in_body`, `error_message` | JSON pointers: an error inside an HTTP 200; the vendor's message |
//! | `rate_limit` | header names `limit`, `remaining`, `reset` (+ `reset_unit`), documented `windows` |
//!
//! # Behaviour
//!
//! * **One request per call**, so the driver's limiter sees every request.
//!   The exception, declared: with `oauth2-client-credentials` a call may
//!   first fetch an access token (one extra request, about once an hour),
//!   so the connector declares half of each documented window, as
//!   [`crate::okta_assign`] does for its lookup.
//! * **Reads never guess.** A body that is not JSON, has no users array at
//!   `items`, lists a user without an id, or gives a status value in
//!   neither the `active` nor the `inactive` list is a protocol error: the
//!   page fails and the driver reports the read incomplete, so nobody is
//!   deprovisioned because a page was garbled. A `next-url` or `Link` to
//!   another origin than the base URL is refused (the credentials would go
//!   with it).
//! * **Offset paging re-reads an anchor** (the previous page's last user)
//!   as the SCIM connector does; if it moved, the page fails with
//!   [`ConnectorError::ListingChanged`]. Page-number paging carries the
//!   first page's `total` and fails the same way if it changes. Cursor and
//!   URL paging are the vendor's keyset and need neither.
//! * **Writes**: a create the app answers `exists` is skipped (the next
//!   read links the account); a deactivation of a user that is `gone` is
//!   skipped; an update of an attribute the `update.body` does not name
//!   fails before anything is sent (it would never converge). An error
//!   inside an HTTP 200 (`error_in_body`) is retried, never `Applied`.
//! * **Rate limits**: `429` becomes [`ConnectorError::RateLimited`] with
//!   `Retry-After`, or failing that the `reset` header; `remaining` and
//!   `reset` flow back as [`RateLimitInfo`] on every answer.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use roster_catalog::rest::{RestCall, RestClient};
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, Operation};
use serde_json::{Value, json};

use crate::http::{self, Answer};
use crate::oauth::{ClientAuth, ClientCredentials, TokenSource};
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, Observation, OperationSupport, Page, PageToken, RateLimitInfo, RateWindow,
    SecretString, Validation, ValidationCheck,
};

/// How to reach one app through its described API.
#[derive(Clone)]
pub struct RestConfig {
    pub connection: ConnectionId,
    /// The app's name in messages.
    pub app_name: String,
    /// The description (the record's `[rest]`).
    pub api: RestClient,
    /// The API base; `None` = the record's `base_url` template.
    pub base_url: Option<String>,
    /// Basic user name, or the OAuth client id.
    pub username: Option<String>,
    /// The token, password or client secret.
    pub secret: SecretString,
    /// Values for templates (`workspace_gid`, `org_id`, `subdomain`,
    /// `account_id`) and `token_url`, `page_size`.
    pub options: BTreeMap<String, String>,
    pub timeout: Duration,
    pub allow_private_network: bool,
}

impl RestConfig {
    pub fn new(connection: ConnectionId, api: RestClient, secret: SecretString) -> Self {
        RestConfig {
            app_name: connection.to_string(),
            connection,
            api,
            base_url: None,
            username: None,
            secret,
            options: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            allow_private_network: false,
        }
    }
}

impl std::fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConfig")
            .field("connection", &self.connection)
            .field("app_name", &self.app_name)
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("secret", &self.secret)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The declarative REST connector for one connection.
pub struct RestConnector {
    config: RestConfig,
    base: String,
    origin: String,
    page_size: u32,
    client: reqwest::Client,
    /// The access tokens of `oauth2-client-credentials`.
    oauth: Option<TokenSource>,
}

/// The token exchange `oauth2-client-credentials` describes: the endpoint
/// (the connection's `token_url` option wins over the record's), the
/// record's grant type and scope, and the connection options its `params`
/// name (Zoom's `account_id`).
fn token_source(config: &RestConfig) -> Result<TokenSource, ConnectorError> {
    let auth = &config.api.auth;
    let token_url = config
        .options
        .get("token_url")
        .cloned()
        .or_else(|| auth.token_url.clone())
        .ok_or_else(|| ConnectorError::Config {
            detail: format!(
                "{}: no token_url (a connection option, or the record's [rest.auth])",
                config.connection
            ),
        })?;
    let extra = auth
        .params
        .iter()
        .map(|p| {
            let v = config
                .options
                .get(p)
                .ok_or_else(|| ConnectorError::Config {
                    detail: format!(
                        "{}: the token endpoint needs the connection option {p}",
                        config.connection
                    ),
                })?;
            Ok((p.clone(), v.clone()))
        })
        .collect::<Result<Vec<_>, ConnectorError>>()?;
    TokenSource::new(
        ClientCredentials {
            token_url,
            client_id: config.username.clone().unwrap_or_default(),
            client_secret: config.secret.clone(),
            grant_type: auth
                .grant_type
                .clone()
                .unwrap_or_else(|| "client_credentials".into()),
            scope: auth.scope.clone(),
            extra,
            client_auth: ClientAuth::Basic,
        },
        &config.app_name,
        config.connection.as_str(),
    )
}

impl std::fmt::Debug for RestConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a value for a path segment.
fn encode_segment(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fills `{name}` placeholders; `Err(name)` for the first one without a
/// value.
pub fn fill(
    template: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    encode: bool,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| template.to_string())?;
        let name = &after[..close];
        let v = vars(name).ok_or_else(|| name.to_string())?;
        out.push_str(&if encode { encode_segment(&v) } else { v });
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The names a template refers to.
fn names_in(template: &str, out: &mut Vec<String>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { return };
        out.push(after[..close].to_string());
        rest = &after[close + 1..];
    }
}

fn body_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => names_in(s, out),
        Value::Array(a) => a.iter().for_each(|x| body_names(x, out)),
        Value::Object(m) => m.values().for_each(|x| body_names(x, out)),
        _ => {}
    }
}

/// A string that is exactly one placeholder.
fn lone_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.contains('{') && !inner.contains('}')).then_some(inner)
}

/// Fills a body template: a string that is exactly one placeholder
/// without a value drops its key (or array element); any other missing
/// placeholder is `Err(name)`.
pub fn fill_body(
    v: &Value,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Value>, String> {
    Ok(match v {
        Value::String(s) => match lone_placeholder(s) {
            Some(name) => vars(name).map(Value::String),
            None => Some(Value::String(fill(s, vars, false)?)),
        },
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                if let Some(x) = fill_body(x, vars)? {
                    out.push(x);
                }
            }
            Some(Value::Array(out))
        }
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                if let Some(x) = fill_body(x, vars)? {
                    out.insert(k.clone(), x);
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    })
}

/// The value at a JSON pointer as text (strings, numbers, booleans).
fn text_at(v: &Value, pointer: &str) -> Option<String> {
    http::scalar(v.pointer(pointer)?, true)
}

/// `rel="next"` of an RFC 8288 `Link` header.
pub fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let Some(target) = pieces.next() else {
                continue;
            };
            let target = target.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                    .unwrap_or(false)
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

/// `scheme://host:port` of a URL.
fn origin_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

const TOKEN_PREFIX: &str = "rest-v1:";

/// Where the next page starts.
#[derive(Debug, PartialEq, Eq)]
enum Position {
    Cursor(String),
    Url(String),
    Offset { next: u64, anchor: String },
    Page { number: u64, total: Option<u64> },
}

impl Position {
    fn token(&self) -> PageToken {
        PageToken::new(match self {
            Position::Cursor(c) => format!("{TOKEN_PREFIX}c:{c}"),
            Position::Url(u) => format!("{TOKEN_PREFIX}u:{u}"),
            Position::Offset { next, anchor } => format!("{TOKEN_PREFIX}o:{next}:{anchor}"),
            Position::Page { number, total } => format!(
                "{TOKEN_PREFIX}p:{number}:{}",
                total.map(|t| t.to_string()).unwrap_or_default()
            ),
        })
    }

    fn parse(t: &PageToken) -> Result<Position, ConnectorError> {
        let bad = || ConnectorError::Config {
            detail: "the page token was not issued by the REST connector".into(),
        };
        let rest = t.as_str().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
        let (kind, v) = rest.split_once(':').ok_or_else(bad)?;
        Ok(match kind {
            "c" if !v.is_empty() => Position::Cursor(v.to_string()),
            "u" if !v.is_empty() => Position::Url(v.to_string()),
            "o" => {
                let (n, anchor) = v.split_once(':').ok_or_else(bad)?;
                let next: u64 = n.parse().map_err(|_| bad())?;
                if next == 0 || anchor.is_empty() {
                    return Err(bad());
                }
                Position::Offset {
                    next,
                    anchor: anchor.to_string(),
                }
            }
            "p" => {
                let (n, total) = v.split_once(':').ok_or_else(bad)?;
                Position::Page {
                    number: n.parse().map_err(|_| bad())?,
                    total: if total.is_empty() {
                        None
                    } else {
                        Some(total.parse().map_err(|_| bad())?)
                    },
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// What one list request found.
struct Listed {
    answer: Answer,
    body: Value,
    items: Vec<Value>,
}

impl RestConnector {
    pub fn new(config: RestConfig) -> Result<Self, ConnectorError> {
        let opts = config.options.clone();
        let raw = match (&config.base_url, &config.api.base_url) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => fill(t, &|n| opts.get(n).cloned(), false).map_err(|name| {
                ConnectorError::Config {
                    detail: format!(
                        "{}: the API base {t:?} needs the connection option {name}",
                        config.connection
                    ),
                }
            })?,
            (None, None) => {
                return Err(ConnectorError::Config {
                    detail: format!(
                        "{}: base_url is required (the catalog record gives none)",
                        config.connection
                    ),
                });
            }
        };
        let base = http::base_url(&raw, &config.app_name)?;
        let origin = origin_of(&base).ok_or_else(|| ConnectorError::Config {
            detail: format!("{}: base_url {base:?} has no host", config.connection),
        })?;
        if config.secret.expose_secret().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!("{}: a secret is required", config.connection),
            });
        }
        let needs_user = matches!(
            config.api.auth.kind.as_str(),
            "basic" | "oauth2-client-credentials"
        );
        if needs_user && config.username.as_deref().is_none_or(str::is_empty) {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: username is required ({})",
                    config.connection,
                    if config.api.auth.kind == "basic" {
                        "the HTTP Basic user"
                    } else {
                        "the OAuth client id"
                    }
                ),
            });
        }
        if !roster_catalog::rest::RestAuth::KINDS.contains(&config.api.auth.kind.as_str()) {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: unknown auth kind {:?}",
                    config.connection, config.api.auth.kind
                ),
            });
        }
        let record_size = config.api.list.page_size.unwrap_or(100).max(1);
        let page_size = match config.options.get("page_size") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| ConnectorError::Config {
                    detail: format!(
                        "{}: page_size {v:?} is not a whole number",
                        config.connection
                    ),
                })?,
            None => record_size,
        }
        .max(1);
        let client = http::client(config.timeout, config.allow_private_network)?;
        let oauth = if config.api.auth.kind == "oauth2-client-credentials" {
            Some(token_source(&config)?)
        } else {
            None
        };
        Ok(RestConnector {
            config,
            base,
            origin,
            page_size,
            client,
            oauth,
        })
    }

    fn vendor(&self) -> String {
        format!("the API of {}", self.config.app_name)
    }

    fn api(&self) -> &RestClient {
        &self.config.api
    }

    fn is_oauth(&self) -> bool {
        self.api().auth.kind == "oauth2-client-credentials"
    }

    fn secrets(&self) -> Vec<SecretString> {
        let mut out = vec![self.config.secret.clone()];
        if let Some(o) = &self.oauth {
            out.extend(o.secrets());
        }
        out
    }

    /// An authenticated request; the flag says whether an OAuth token was
    /// reused from an earlier call.
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<(reqwest::RequestBuilder, bool), ConnectorError> {
        let req = self
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        Ok(match self.api().auth.kind.as_str() {
            "basic" => (
                req.basic_auth(
                    self.config.username.as_deref().unwrap_or_default(),
                    Some(self.config.secret.expose_secret()),
                ),
                false,
            ),
            "oauth2-client-credentials" => {
                let oauth = self.oauth.as_ref().ok_or_else(|| ConnectorError::Config {
                    detail: format!("{}: no OAuth client", self.config.connection),
                })?;
                let (token, kept) = oauth.token(&self.client).await?;
                (req.bearer_auth(token.expose_secret()), kept)
            }
            _ => (req.bearer_auth(self.config.secret.expose_secret()), false),
        })
    }

    fn var(&self, name: &str) -> Option<String> {
        match name {
            "page_size" => Some(self.page_size.to_string()),
            _ => self.config.options.get(name).cloned(),
        }
    }

    fn rate_info(&self, headers: &HeaderMap) -> Option<RateLimitInfo> {
        let r = self.api().rate_limit.as_ref()?;
        let get = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| headers.get(n.as_str()))
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        let remaining = get(&r.remaining).and_then(|v| v.parse::<u32>().ok());
        let reset = get(&r.reset).and_then(|v| {
            let n: f64 = v.parse().ok()?;
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            Some(match r.reset_unit.as_deref().unwrap_or("seconds") {
                "milliseconds" => Duration::from_millis(n as u64),
                "epoch-seconds" => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .ok()?
                        .as_secs_f64();
                    Duration::from_secs_f64((n - now).max(0.0))
                }
                _ => Duration::from_secs_f64(n.min(86_400.0)),
            })
        });
        (remaining.is_some() || reset.is_some()).then(|| RateLimitInfo::new(remaining, reset))
    }

    /// Sends, reads and classifies. A refusal an `errors` rule maps to
    /// `exists` or `gone` comes back as `Vendor { code: "exists:409" }`.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        reused_token: bool,
    ) -> Result<(Answer, Value), ConnectorError> {
        let vendor = self.vendor();
        let secrets = self.secrets();
        let secrets: Vec<&SecretString> = secrets.iter().collect();
        let answer = Answer::of(&vendor, req, &secrets).await?;
        let body: Option<Value> = if answer.text.trim().is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_str(&answer.text).ok()
        };
        let message = body
            .as_ref()
            .and_then(|b| {
                self.api()
                    .error_message
                    .as_ref()
                    .and_then(|p| text_at(b, p))
            })
            .unwrap_or_else(|| answer.text.chars().take(200).collect());
        let message = http::scrub(&message, &secrets);
        let status = answer.status.as_u16();
        if !answer.status.is_success() {
            for rule in &self.api().errors {
                if rule.status == status
                    && rule
                        .contains
                        .as_ref()
                        .is_none_or(|c| answer.text.contains(c.as_str()))
                {
                    return Err(match rule.kind.as_str() {
                        "exists" | "gone" => ConnectorError::Vendor {
                            code: format!("{}:{status}", rule.kind),
                            detail: message,
                        },
                        "unauthorized" => ConnectorError::Unauthorized { detail: message },
                        "rate-limited" => ConnectorError::RateLimited {
                            retry_after: self.retry_after(&answer.headers),
                        },
                        "transient" => ConnectorError::Transient {
                            detail: format!("{vendor} answered HTTP {status}: {message}"),
                        },
                        _ => ConnectorError::Vendor {
                            code: status.to_string(),
                            detail: message,
                        },
                    });
                }
            }
            if status == 401 && reused_token {
                // The kept token was revoked or expired early: drop it, and
                // the retry fetches a new one.
                if let Some(o) = &self.oauth {
                    o.forget().await;
                }
                return Err(ConnectorError::Transient {
                    detail: format!(
                        "{vendor} refused the kept access token (HTTP 401); a new one is fetched on the next attempt"
                    ),
                });
            }
            if status == 429 {
                return Err(ConnectorError::RateLimited {
                    retry_after: self.retry_after(&answer.headers),
                });
            }
            return Err(http::status_error(
                &vendor,
                answer.status,
                &answer.headers,
                &message,
                &format!("check the credentials of {}", self.config.connection),
            ));
        }
        let Some(body) = body else {
            return Err(ConnectorError::Protocol {
                detail: format!(
                    "{vendor} answered HTTP {status} with a body that is not complete JSON"
                ),
            });
        };
        if let Some(p) = &self.api().error_in_body
            && body.pointer(p).is_some_and(|v| !v.is_null())
        {
            return Err(ConnectorError::Transient {
                detail: format!("{vendor} answered HTTP {status} with an error inside: {message}"),
            });
        }
        Ok((answer, body))
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        http::retry_after(headers).or_else(|| self.rate_info(headers).and_then(|i| i.reset_after))
    }

    fn url(
        &self,
        path_template: &str,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        Ok(format!("{}{}", self.base, fill(path_template, vars, true)?))
    }

    fn config_error(&self, what: &str, name: &str) -> ConnectorError {
        ConnectorError::Config {
            detail: format!(
                "{}: {what} of {} needs {name}, which is neither an attribute nor a connection option",
                self.config.connection, self.config.app_name
            ),
        }
    }

    /// One list request from `pos` (`None`: the first page), asking for
    /// `count` users.
    async fn list_request(
        &self,
        pos: Option<&Position>,
        count: u64,
    ) -> Result<Listed, ConnectorError> {
        let l = &self.api().list;
        let p = &l.paging;
        let url = match pos {
            Some(Position::Url(u)) => {
                if origin_of(u).as_deref() != Some(self.origin.as_str()) {
                    return Err(ConnectorError::Protocol {
                        detail: format!(
                            "{} sent a next-page link to another origin ({}); roster sends its credentials only to {}",
                            self.vendor(),
                            origin_of(u).unwrap_or_else(|| "an unreadable URL".into()),
                            self.origin
                        ),
                    });
                }
                u.clone()
            }
            _ => self
                .url(&l.path, &|n| self.var(n))
                .map_err(|n| self.config_error("the list path", &n))?,
        };
        let (mut req, reused) = self.request(reqwest::Method::GET, &url).await?;
        if !matches!(pos, Some(Position::Url(_))) {
            let mut query: Vec<(String, String)> = Vec::new();
            for (k, v) in &l.query {
                let v = fill(v, &|n| self.var(n), false)
                    .map_err(|n| self.config_error("the list query", &n))?;
                query.push((k.clone(), v));
            }
            if let Some(sp) = &p.size_param {
                query.push((sp.clone(), count.to_string()));
            }
            match pos {
                Some(Position::Cursor(c)) => {
                    if let Some(param) = &p.param {
                        query.push((param.clone(), c.clone()));
                    }
                }
                Some(Position::Offset { next, .. }) => {
                    if let Some(param) = &p.param {
                        // Re-read the anchor: one before `next`.
                        query.push((param.clone(), (next - 1).to_string()));
                    }
                }
                Some(Position::Page { number, .. }) => {
                    if let Some(param) = &p.param {
                        query.push((param.clone(), number.to_string()));
                    }
                }
                None => match p.style.as_str() {
                    "offset" => {
                        if let Some(param) = &p.param {
                            query.push((param.clone(), p.start.unwrap_or(0).to_string()));
                        }
                    }
                    "page" => {
                        if let Some(param) = &p.param {
                            query.push((param.clone(), p.start.unwrap_or(1).to_string()));
                        }
                    }
                    _ => {}
                },
                Some(Position::Url(_)) => {}
            }
            req = req.query(&query);
        }
        let (answer, body) = self.call(req, reused).await?;
        let items = if l.items.is_empty() {
            Some(&body)
        } else {
            body.pointer(&l.items)
        };
        let Some(Value::Array(items)) = items else {
            return Err(ConnectorError::Protocol {
                detail: format!(
                    "{} answered a list without its users (nothing at {:?} is a list)",
                    self.vendor(),
                    l.items
                ),
            });
        };
        let items = items.clone();
        Ok(Listed {
            answer,
            body,
            items,
        })
    }

    /// Maps one vendor user to an account; `Err` says why it can't be read.
    pub fn account_from(&self, u: &Value) -> Result<Account, String> {
        let f = &self.api().fields;
        // Text or a number; a boolean is no id (garbled).
        let id = u
            .pointer(&f.id)
            .and_then(|v| http::scalar(v, false))
            .ok_or_else(|| format!("a user without an id at {}", f.id))?;
        let email_text = text_at(u, &f.email);
        let email = email_text.as_deref().and_then(|e| Email::parse(e).ok());
        let active = match &f.active {
            None => true,
            Some(s) => {
                let v = text_at(u, &s.pointer).ok_or_else(|| {
                    format!(
                        "user {id} has no status at {} (the connector never guesses)",
                        s.pointer
                    )
                })?;
                if s.active.iter().any(|a| a.eq_ignore_ascii_case(&v)) {
                    true
                } else if s.inactive.iter().any(|a| a.eq_ignore_ascii_case(&v)) {
                    false
                } else {
                    return Err(format!(
                        "user {id} has status {v:?}, which the record maps neither to active ({}) nor inactive ({})",
                        s.active.join(", "),
                        s.inactive.join(", ")
                    ));
                }
            }
        };
        let mut attributes: BTreeMap<String, String> = f
            .attributes
            .iter()
            .filter_map(|(name, p)| text_at(u, p).map(|v| (name.clone(), v)))
            .collect();
        if let Some(e) = &email {
            attributes.insert("email".into(), e.to_string());
        }
        Ok(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(id),
            email,
            employee_id: None,
            active,
            attributes,
        })
    }

    /// The template value of `name` for an action.
    fn action_var(&self, a: &Action, name: &str) -> Option<String> {
        let attr = |k: &str| {
            a.attributes
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match name {
            "id" => a.account.as_ref().map(|k| k.as_str().to_string()),
            "email" => Some(a.email.to_string()),
            "employee_id" => a.employee_id.as_ref().map(|e| e.to_string()),
            "display_name" => attr("display_name").or_else(|| {
                let n = format!(
                    "{} {}",
                    attr("first_name").unwrap_or_default(),
                    attr("last_name").unwrap_or_default()
                );
                let n = n.trim().to_string();
                (!n.is_empty()).then_some(n)
            }),
            other => attr(other).or_else(|| self.var(other)),
        }
    }

    async fn send(&self, call: &RestCall, a: &Action) -> Result<(Answer, Value), ConnectorError> {
        let vars = |n: &str| self.action_var(a, n);
        let url = self
            .url(&call.path, &vars)
            .map_err(|n| self.config_error(&format!("{} {}", call.method, call.path), &n))?;
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|_| {
            ConnectorError::Config {
                detail: format!("{}: method {:?}", self.config.connection, call.method),
            }
        })?;
        let (mut req, reused) = self.request(method, &url).await?;
        if let Some(t) = &call.body {
            let body = fill_body(t, &vars)
                .map_err(|n| self.config_error("the request body", &n))?
                .unwrap_or(Value::Null);
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        self.call(req, reused).await
    }

    /// The attributes an update's body template can write.
    fn writable(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(u) = &self.api().update {
            names_in(&u.path, &mut names);
            if let Some(b) = &u.body {
                body_names(b, &mut names);
            }
        }
        names
    }

    async fn apply_one(&self, a: &Action, dry_run: bool) -> Result<ActionResult, ConnectorError> {
        if dry_run {
            return Ok(ActionResult::skipped("dry run: this API has no preview"));
        }
        let app = &self.config.app_name;
        let api = self.api();
        let call = match a.operation {
            Operation::Create => api.create.as_ref(),
            Operation::Update => api.update.as_ref(),
            Operation::Deactivate => api.deactivate.as_ref(),
            Operation::Reactivate => api.reactivate.as_ref(),
            Operation::Read | Operation::Delete => None,
        };
        let Some(call) = call else {
            return Ok(ActionResult::failed(
                format!(
                    "{app}'s API (as its catalog record describes it) cannot {}",
                    a.operation
                ),
                false,
            ));
        };
        if a.operation != Operation::Create && a.account.is_none() {
            return Ok(ActionResult::failed(
                format!("no {app} id for {}: read {} first", a.email, a.connection),
                false,
            ));
        }
        if a.operation == Operation::Update {
            let writable = self.writable();
            let can = |n: &str| writable.iter().any(|w| w.as_str() == n);
            // (attribute, whether it gets a value); without a diff, the
            // whole desired set (the address always travels with it).
            let changed: Vec<(&str, bool)> = if a.changes.is_empty() {
                a.attributes
                    .keys()
                    .map(|k| (k.as_str(), true))
                    .filter(|(k, _)| can(k))
                    .collect()
            } else {
                a.changes
                    .iter()
                    .map(|c| {
                        (
                            c.name.as_str(),
                            c.after.as_deref().is_some_and(|v| !v.trim().is_empty()),
                        )
                    })
                    .collect()
            };
            let unwritable: Vec<&str> = changed.iter().map(|c| c.0).filter(|n| !can(n)).collect();
            if !unwritable.is_empty() {
                return Ok(ActionResult::failed(
                    format!(
                        "{app}'s API (as its catalog record describes it) cannot change {} for {}; change it by hand",
                        unwritable.join(", "),
                        a.email
                    ),
                    false,
                ));
            }
            let cleared: Vec<&str> = changed.iter().filter(|c| !c.1).map(|c| c.0).collect();
            if !cleared.is_empty() {
                return Ok(ActionResult::failed(
                    format!(
                        "{app}'s API cannot clear {} for {}",
                        cleared.join(", "),
                        a.email
                    ),
                    false,
                ));
            }
            if changed.is_empty() {
                return Ok(ActionResult::skipped("nothing this API can change"));
            }
        }
        match self.send(call, a).await {
            Ok((_, body)) => {
                if a.operation == Operation::Create
                    && let Some(p) = &call.id
                    && text_at(&body, p).is_none()
                {
                    return Err(ConnectorError::Protocol {
                        detail: format!(
                            "{} answered the create with no user id at {p}",
                            self.vendor()
                        ),
                    });
                }
                Ok(ActionResult::Applied)
            }
            Err(ConnectorError::Vendor { code, detail }) if code.starts_with("exists:") => {
                Ok(if a.operation == Operation::Create {
                    ActionResult::skipped(format!(
                        "{app} already has {} ({detail}); the next read links it and plans any change",
                        a.email
                    ))
                } else {
                    ActionResult::failed(
                        format!("{app} refused the change for {}: {detail}", a.email),
                        false,
                    )
                })
            }
            Err(ConnectorError::Vendor { code, detail }) if code.starts_with("gone:") => {
                Ok(if a.operation == Operation::Deactivate {
                    ActionResult::skipped(format!(
                        "{} no longer exists in {app} ({detail}); nothing to deactivate",
                        a.email
                    ))
                } else {
                    ActionResult::failed(
                        format!(
                            "{} no longer exists in {app} ({detail}); read again",
                            a.email
                        ),
                        false,
                    )
                })
            }
            Err(ConnectorError::Vendor { code, detail }) => Ok(ActionResult::failed(
                format!(
                    "{app} refused the change for {} (HTTP {code}): {detail}",
                    a.email
                ),
                false,
            )),
            Err(e) => Err(e),
        }
    }

    /// The next position after a page of `returned` users (`asked` asked
    /// for, excluding a re-read anchor).
    fn next_position(
        &self,
        listed: &Listed,
        pos: Option<&Position>,
        accounts: &[Account],
        asked: u64,
        total: Option<u64>,
    ) -> Result<Option<Position>, ConnectorError> {
        let p = &self.api().list.paging;
        let garbled = |why: String| ConnectorError::Protocol {
            detail: format!("{} answered a garbled page: {why}", self.vendor()),
        };
        let more = p
            .has_more
            .as_ref()
            .map(|ptr| http::flag_at(&listed.body, ptr).map(|f| f.unwrap_or(false)))
            .transpose()
            .map_err(garbled)?;
        let next_at = || {
            p.next
                .as_ref()
                .map(|ptr| http::continuation_at(&listed.body, ptr))
                .transpose()
                .map(Option::flatten)
                .map_err(garbled)
        };
        if more == Some(false) {
            return Ok(None);
        }
        let returned = accounts.len() as u64;
        Ok(match p.style.as_str() {
            "cursor" => next_at()?.map(Position::Cursor),
            "next-url" => next_at()?.map(|u| self.absolute(&u)).map(Position::Url),
            "link-header" => link_next(&listed.answer.headers)
                .map(|u| self.absolute(&u))
                .map(Position::Url),
            "offset" => {
                let start = match pos {
                    Some(Position::Offset { next, .. }) => *next,
                    _ => p.start.unwrap_or(0),
                };
                let next = start + returned;
                let more = match total {
                    Some(t) => next < t + p.start.unwrap_or(0),
                    None => returned >= asked && returned > 0,
                };
                match accounts.last() {
                    Some(last) if more => Some(Position::Offset {
                        next,
                        anchor: last.key.as_str().to_string(),
                    }),
                    _ => None,
                }
            }
            "page" => {
                let number = match pos {
                    Some(Position::Page { number, .. }) => *number,
                    _ => p.start.unwrap_or(1),
                };
                let more = returned >= asked && returned > 0;
                more.then_some(Position::Page {
                    number: number + 1,
                    total,
                })
            }
            _ => None,
        })
    }

    /// A relative next link made absolute against the base's origin.
    fn absolute(&self, u: &str) -> String {
        if u.starts_with('/') {
            format!("{}{u}", self.origin)
        } else {
            u.to_string()
        }
    }
}

#[async_trait]
impl Connector for RestConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        let one = OperationSupport::supported(1);
        let api = self.api();
        let mut caps =
            Capabilities::new().with(Operation::Read, OperationSupport::supported(self.page_size));
        for (op, call) in [
            (Operation::Create, &api.create),
            (Operation::Update, &api.update),
            (Operation::Deactivate, &api.deactivate),
            (Operation::Reactivate, &api.reactivate),
        ] {
            if call.is_some() {
                caps = caps.with(op, one);
            }
        }
        let share = if self.is_oauth() { 2 } else { 1 };
        let windows = api
            .rate_limit
            .as_ref()
            .map(|r| {
                r.windows
                    .iter()
                    .map(|w| {
                        RateWindow::new(
                            (w.requests / share).max(1),
                            Duration::from_secs(u64::from(w.seconds)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        caps.with_rate_limits(windows)
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        match self.list_request(None, 1).await {
            Ok(_) => Ok(Validation::new(vec![ValidationCheck::pass(
                "credentials",
                format!(
                    "{} listed users with the credentials of {}",
                    self.vendor(),
                    self.config.connection
                ),
            )])),
            Err(ConnectorError::Unauthorized { detail }) => {
                Ok(Validation::new(vec![ValidationCheck::fail(
                    "credentials",
                    detail,
                )]))
            }
            Err(e) => Err(e),
        }
    }

    async fn probe(&self) -> Result<Vec<Observation>, ConnectorError> {
        let mut out = Vec::new();
        let listed = match self.list_request(None, 2).await {
            Err(ConnectorError::Unauthorized { detail }) => {
                out.push(Observation {
                    field: "probe.auth".into(),
                    value: json!(false),
                    detail,
                });
                return Ok(out);
            }
            r => r?,
        };
        out.push(Observation {
            field: "probe.auth".into(),
            value: json!(true),
            detail: format!(
                "GET {} with the connection's credential ({}) answered HTTP {}",
                self.api().list.path,
                self.api().auth.kind,
                listed.answer.status.as_u16()
            ),
        });
        out.push(Observation {
            field: "api.has_user_api".into(),
            value: json!("yes"),
            detail: format!(
                "the first page listed {} user(s) at {:?}",
                listed.items.len(),
                self.api().list.items
            ),
        });
        let accounts: Vec<Account> = listed
            .items
            .iter()
            .filter_map(|u| self.account_from(u).ok())
            .collect();
        let next = self.next_position(&listed, None, &accounts, 2, None)?;
        let style = self.api().list.paging.style.as_str();
        let method = match style {
            "offset" => "offset",
            "page" => "page",
            "none" => "none",
            _ => "cursor",
        };
        out.push(Observation {
            field: "pagination.method".into(),
            value: json!(method),
            detail: match next {
                Some(_) => format!("a page of 2 carried a continuation ({style} paging, as the record describes)"),
                None => format!("a page of 2 carried no continuation ({style} paging; the tenant may hold 2 users or fewer)"),
            },
        });
        let mut seen: Vec<String> = Vec::new();
        let configured: Vec<String> = self
            .api()
            .rate_limit
            .iter()
            .flat_map(|r| [&r.limit, &r.remaining, &r.reset])
            .flatten()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        for (name, _) in listed.answer.headers.iter() {
            let n = name.as_str().to_ascii_lowercase();
            let rate = n.contains("ratelimit") || n.contains("rate-limit") || n == "retry-after";
            if (rate || configured.contains(&n)) && !seen.contains(&n) {
                seen.push(n);
            }
        }
        out.push(Observation {
            field: "rate_limits.header_names".into(),
            value: json!(seen),
            detail: if seen.is_empty() {
                "no rate-limit header on the probe's answer".into()
            } else {
                "rate-limit headers seen on the probe's answer".into()
            },
        });
        Ok(out)
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let size = u64::from(
            req.page_size
                .unwrap_or(self.page_size)
                .clamp(1, self.page_size),
        );
        let pos = req.page_token.as_ref().map(Position::parse).transpose()?;
        let anchor = match &pos {
            Some(Position::Offset { anchor, .. }) => Some(anchor.clone()),
            _ => None,
        };
        let count = size + u64::from(anchor.is_some());
        let listed = self.list_request(pos.as_ref(), count).await?;
        let total = self
            .api()
            .list
            .paging
            .total
            .as_ref()
            .and_then(|p| listed.body.pointer(p))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            });
        let mut items = listed.items.iter();
        if let Some(anchor) = &anchor {
            let first = items.next().and_then(|u| self.account_from(u).ok());
            let first_id = first.as_ref().map(|a| a.key.as_str().to_string());
            if first_id.as_deref() != Some(anchor.as_str()) {
                return Err(ConnectorError::ListingChanged {
                    detail: format!(
                        "{} listed {} where the previous page ended with {anchor}; users were added or removed during the read",
                        self.vendor(),
                        first_id.unwrap_or_else(|| "nothing".into())
                    ),
                });
            }
        }
        if let Some(Position::Page {
            total: Some(was), ..
        }) = &pos
            && total.is_some_and(|t| t != *was)
        {
            return Err(ConnectorError::ListingChanged {
                detail: format!(
                    "{} reported {} users where the first page reported {was}; users were added or removed during the read",
                    self.vendor(),
                    total.unwrap_or_default()
                ),
            });
        }
        let mut accounts = Vec::new();
        for u in items {
            match self.account_from(u) {
                Ok(a) => accounts.push(a),
                Err(why) => {
                    return Err(ConnectorError::Protocol {
                        detail: format!("{} listed {why}", self.vendor()),
                    });
                }
            }
        }
        if accounts.is_empty() && total.is_some_and(|t| t > 0) && pos.is_none() {
            return Err(ConnectorError::Protocol {
                detail: format!(
                    "{} answered an empty first page but reports {} users",
                    self.vendor(),
                    total.unwrap_or_default()
                ),
            });
        }
        let first_total = match &pos {
            Some(Position::Page { total, .. }) => *total,
            _ => total,
        };
        let next = self.next_position(&listed, pos.as_ref(), &accounts, size, first_total)?;
        let mut page = Page::new(accounts, next.map(|p| p.token()));
        if let Some(t) = total {
            page = page.with_total(t);
        }
        if let Some(info) = self.rate_info(&listed.answer.headers) {
            page = page.with_rate_limit(info);
        }
        Ok(page)
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
    fn templates_fill_and_drop() {
        let vars = |n: &str| match n {
            "id" => Some("a b/c".to_string()),
            "first_name" => Some("Ann".to_string()),
            _ => None,
        };
        assert_eq!(
            fill("/users/{id}/status", &vars, true).unwrap(),
            "/users/a%20b%2Fc/status"
        );
        assert_eq!(fill("/users/{nope}", &vars, true).unwrap_err(), "nope");
        let body = json!({"user": {"first_name": "{first_name}", "last_name": "{last_name}", "type": 1,
            "note": "hi {first_name}"}, "emails": ["{last_name}"]});
        assert_eq!(
            fill_body(&body, &vars).unwrap().unwrap(),
            json!({"user": {"first_name": "Ann", "type": 1, "note": "hi Ann"}, "emails": []})
        );
        let bad = json!({"note": "hi {last_name}"});
        assert_eq!(fill_body(&bad, &vars).unwrap_err(), "last_name");
    }

    #[test]
    fn link_headers_and_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            r#"<https://x.test/u?page=1>; rel="prev", <https://x.test/u?page=3>; rel="next""#
                .parse()
                .unwrap(),
        );
        assert_eq!(link_next(&h).as_deref(), Some("https://x.test/u?page=3"));
        assert_eq!(link_next(&HeaderMap::new()), None);
        for p in [
            Position::Cursor("abc:def".into()),
            Position::Url("https://x.test/u?a=1".into()),
            Position::Offset {
                next: 5,
                anchor: "u4".into(),
            },
            Position::Page {
                number: 3,
                total: Some(7),
            },
            Position::Page {
                number: 3,
                total: None,
            },
        ] {
            assert_eq!(Position::parse(&p.token()).unwrap(), p);
        }
        assert!(Position::parse(&PageToken::new("scim-v1:1:x")).is_err());
        assert!(Position::parse(&PageToken::new("rest-v1:o:0:x")).is_err());
    }
}
