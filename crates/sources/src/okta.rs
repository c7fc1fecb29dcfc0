//! Okta as a source of people (vendor-apis.md §3).
//!
//! # Full read
//!
//! One walk, one request per call, its position in an opaque token:
//!
//! 1. `GET /api/v1/users?filter=status eq "DEPROVISIONED"`: the
//!    deactivated users the default listing hides. Without this pass a
//!    leaver would look like a person who vanished.
//! 2. `GET /api/v1/users?limit=N`: every user Okta lists by default (all
//!    statuses but DEPROVISIONED), following `Link: <…>; rel="next"`.
//!
//! The deactivated go first on purpose. A person whose status flips
//! between the two passes is listed twice (the later, newer listing wins)
//! or not at all; in this order the one who can go unlisted is someone
//! being deactivated, never someone being reactivated, so the race can't
//! take access from a person who is employed. The incremental read that
//! follows (its cursor predates the walk) sees the flip either way.
//! 3. `GET /api/v1/groups`, then `GET /api/v1/groups/{id}/users` for each
//!    group: memberships, folded into each person's groups by the read
//!    loop (one listing per group rather than one per person).
//!
//! Before the first request the walk notes the time (one minute back, for
//! clock skew); that becomes the cursor of the next incremental read, so a
//! change made while the full read runs is read again, never lost.
//!
//! # Incremental read: System Log polling
//!
//! `GET /api/v1/logs?since=T&sortOrder=ASCENDING&limit=N`, following the
//! polling `next` link while pages come back full (a polling query always
//! has one; an emptier page means the log is drained). Events are deduped
//! by `uuid` against those seen at the cursor's instant (`since` is
//! inclusive and events share milliseconds). Each user named as a target of
//! a `user.lifecycle.*`, `user.account.*` or `group.user_membership.*`
//! event is then read whole (`GET /api/v1/users/{id}`, its groups from
//! `GET /api/v1/users/{id}/groups`): the log says *who* changed, never
//! *what* they are now (events arrive late and out of order). A user Okta
//! answers 404 for was deleted (Okta deletes only deactivated users).
//!
//! # Reading one person
//!
//! [`Source::read_person`] (an event hook named them) makes the same two
//! reads as an incremental read does for a changed user: the user, then
//! their groups; a 404 is a removal. It never looks at the log.
//!
//! A cursor older than the log's retention (90 days) is
//! [`SourceError::CursorExpired`]: checked against the clock before
//! asking, and when Okta refuses `since` with a 400 naming it.
//!
//! # Person fields
//!
//! | roster | Okta |
//! |---|---|
//! | id | `id` |
//! | email | `profile.email` (else `profile.login` when it is an address) |
//! | aliases | `profile.login`, `profile.secondEmail` (when different) |
//! | employee id | `profile.employeeNumber` |
//! | department, cost center | `profile.department`, `profile.costCenter` |
//! | manager | `profile.managerId` (resolved to an address by the read loop), else `profile.manager` when it is an address |
//! | start / end date | the profile attributes named by `start_date_attribute` / `end_date_attribute` (`YYYY-MM-DD`; default `startDate`, `endDate`) |
//! | attributes | every other scalar profile attribute, custom ones included |
//! | state | `status`, mapped by [`crate::lifecycle`] |
//!
//! # Configuration
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `org_url` | `https://<org>.okta.com` | required |
//! | `api_token` | a secret reference to an API token (sent as `SSWS`) | required unless OAuth |
//! | `oauth_client_id`, `oauth_private_key`, `oauth_key_id` | an OAuth service app and its key (instead of `api_token`) | none |
//! | `page_size` | users per page (≤ 200) | 200 |
//! | `log_page_size` | System Log events per page (≤ 1000) | 1000 |
//! | `rate_limit` | the org's limit for `/api/v1/users` per minute | 600 |
//! | `rate_share` | the share of that limit (and of what `X-Rate-Limit-*` report) roster may use | 0.5 |
//! | `start_date_attribute`, `end_date_attribute` | profile attributes holding dates | `startDate`, `endDate` |
//! | `max_incremental_people` | past this many changed people (a lockout storm) an incremental read asks for a full read (`SRC-0010`) | 1000 |
//! | `allow_private_network` | the org URL may resolve to a private address | false |
//!
//! # Least privilege
//!
//! The API token acts with its creator's rights: create it as an admin
//! holding only the **Read-only Administrator** role (it reads users,
//! groups and the System Log, and can change nothing). Better, as Okta
//! recommends: an OAuth 2.0 **service app** ([`OktaOAuth`]: `oauth_client_id`,
//! `oauth_private_key`, optional `oauth_key_id`) granted only the scopes
//! `okta.users.read`, `okta.groups.read` and `okta.logs.read`, and the
//! Read-only Administrator role. roster authenticates it with a private-key
//! JWT (client credentials; `POST /oauth2/v1/token`), caches the access
//! token until a minute before it expires, and fetches a new one when Okta
//! refuses an older one.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use roster_connectors::http::{Answer, scalar, text};
use roster_connectors::okta_assign::next_link;
use roster_connectors::{SecretString, Validation, ValidationCheck};
use roster_core::{ConnectionId, Email, EmployeeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::http::{self, enc, rate_headers, same_origin};
use crate::lifecycle::{self, REMOVED};
use crate::{
    ChangesPage, ChangesRequest, ManagerRef, Membership, PageRequest, PageToken, PeoplePage,
    PersonRequest, RateWindow, Removal, Source, SourceCapabilities, SourceError, SourceKind,
    SourcePerson, SyncCursor,
};

const VENDOR: &str = "Okta";
/// How far back the System Log reaches.
const LOG_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// The walk starts this far back, for clock skew between roster and Okta.
const SKEW: Duration = Duration::from_secs(60);
/// The events whose target users are re-read.
/// The System Log event types whose target users an incremental read
/// re-reads (and an event hook may name).
pub const EVENT_PREFIXES: [&str; 3] =
    ["user.lifecycle.", "user.account.", "group.user_membership."];
/// Profile attributes with a place of their own in [`SourcePerson`].
const MAPPED: [&str; 9] = [
    "email",
    "login",
    "secondEmail",
    "firstName",
    "lastName",
    "employeeNumber",
    "department",
    "costCenter",
    "managerId",
];

/// An OAuth 2.0 service app authenticating with a private-key JWT.
#[derive(Clone)]
pub struct OktaOAuth {
    pub client_id: String,
    /// The app's private key (PEM, PKCS#8 or PKCS#1).
    pub private_key: SecretString,
    /// The key's id (`kid`) as registered with the app, if any.
    pub key_id: Option<String>,
    /// The scopes to ask for; the read-only three by default.
    pub scopes: Vec<String>,
}

impl OktaOAuth {
    pub fn new(client_id: impl Into<String>, private_key: SecretString) -> Self {
        OktaOAuth {
            client_id: client_id.into(),
            private_key,
            key_id: None,
            scopes: ["okta.users.read", "okta.groups.read", "okta.logs.read"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Clone)]
pub struct OktaSourceConfig {
    pub source: ConnectionId,
    pub org_url: String,
    /// Sent as `SSWS`; unused when `oauth` is set.
    pub api_token: SecretString,
    /// Authenticate as an OAuth service app instead of with the API token.
    pub oauth: Option<OktaOAuth>,
    pub page_size: u32,
    pub log_page_size: u32,
    /// The org's documented limit for the users endpoints.
    pub rate_limit: RateWindow,
    /// Of that limit (and of the window Okta reports), the share roster
    /// may use; the rest is the org's other integrations'.
    pub rate_share: f64,
    pub start_date_attribute: Option<String>,
    pub end_date_attribute: Option<String>,
    /// More changed people than this in one incremental read is
    /// [`SourceError::TooManyChanges`]: each costs two requests, a full
    /// read one per 200 people.
    pub max_incremental_people: usize,
    pub timeout: Duration,
    pub allow_private_network: bool,
}

impl OktaSourceConfig {
    pub fn new(source: ConnectionId, org_url: impl Into<String>, api_token: SecretString) -> Self {
        OktaSourceConfig {
            source,
            org_url: org_url.into(),
            api_token,
            oauth: None,
            page_size: 200,
            log_page_size: 1000,
            rate_limit: RateWindow::new(600, Duration::from_secs(60)),
            rate_share: 0.5,
            start_date_attribute: Some("startDate".into()),
            end_date_attribute: Some("endDate".into()),
            max_incremental_people: 1000,
            timeout: Duration::from_secs(30),
            allow_private_network: false,
        }
    }
}

impl std::fmt::Debug for OktaSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSourceConfig")
            .field("source", &self.source)
            .field("org_url", &self.org_url)
            .field("api_token", &self.api_token)
            .finish_non_exhaustive()
    }
}

/// Where a full read is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Walk {
    /// The default user listing (`url`: its next page).
    Users {
        url: Option<String>,
    },
    /// The DEPROVISIONED pass.
    Deprovisioned {
        url: Option<String>,
    },
    Groups {
        url: Option<String>,
    },
    /// Members of `groups[0]`, then the rest.
    Members {
        groups: Vec<(String, String)>,
        url: Option<String>,
        /// More groups remain to be listed after these (`Groups` again).
        more_groups: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FullToken {
    v: u8,
    okta: Walk,
    /// The incremental cursor this read will hand out.
    since: String,
}

/// The incremental cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LogCursor {
    v: u8,
    /// `published` of the last event read (inclusive bound of the next).
    since: String,
    /// uuids of the events already read at `since`.
    seen: Vec<String>,
}

/// Where an incremental read is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ChangesToken {
    v: u8,
    /// The log's next page while it is still being read.
    log_url: Option<String>,
    log_done: bool,
    /// Users still to read, in order.
    pending: Vec<String>,
    /// The user whose groups are read next, and the page.
    groups_for: Option<String>,
    groups_url: Option<String>,
    /// The cursor the read will hand out.
    next: LogCursor,
}

pub struct OktaSource {
    config: OktaSourceConfig,
    base: String,
    client: reqwest::Client,
    oauth_key: Option<ring::signature::RsaKeyPair>,
    token: std::sync::Mutex<Option<(SecretString, tokio::time::Instant)>>,
}

fn okta_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

fn parse_date(s: &str) -> Option<time::Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.get(..10).unwrap_or(s), &f).ok()
}

fn encode<T: Serialize>(t: &T) -> Result<String, SourceError> {
    serde_json::to_string(t).map_err(|e| SourceError::Protocol {
        detail: format!("cannot encode a page token: {e}"),
    })
}

impl OktaSource {
    pub fn new(config: OktaSourceConfig) -> Result<Self, SourceError> {
        let base = http::base_url(&config.org_url, VENDOR)?;
        if config.api_token.expose_secret().is_empty() && config.oauth.is_none() {
            return Err(SourceError::Config {
                detail: format!(
                    "{}: an Okta API token is required (Admin Console → Security → API → Tokens, created by a Read-only Administrator)",
                    config.source
                ),
            });
        }
        if !(config.rate_share > 0.0 && config.rate_share <= 1.0) {
            return Err(SourceError::Config {
                detail: format!(
                    "{}: rate_share must be above 0 and at most 1, not {}",
                    config.source, config.rate_share
                ),
            });
        }
        let oauth_key = match &config.oauth {
            Some(o) => {
                Some(
                    crate::jwt::rsa_key(&o.private_key).map_err(|e| SourceError::Config {
                        detail: format!("{}: the OAuth app's private key: {e}", config.source),
                    })?,
                )
            }
            None => None,
        };
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(OktaSource {
            config,
            base,
            client,
            oauth_key,
            token: std::sync::Mutex::new(None),
        })
    }

    /// The `Authorization` value, and whether it was just issued (a 401
    /// on an older OAuth token means it expired: fetch another).
    async fn authorization(&self) -> Result<(SecretString, bool), SourceError> {
        let (Some(o), Some(key)) = (&self.config.oauth, &self.oauth_key) else {
            return Ok((
                SecretString::new(format!("SSWS {}", self.config.api_token.expose_secret())),
                true,
            ));
        };
        if let Some((t, until)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && tokio::time::Instant::now() < until
        {
            return Ok((t, false));
        }
        let url = format!("{}/oauth2/v1/token", self.base);
        let now = crate::jwt::now_secs();
        let assertion = crate::jwt::sign(
            key,
            o.key_id.as_deref(),
            &serde_json::json!({
                "iss": o.client_id, "sub": o.client_id, "aud": url,
                "iat": now, "exp": now + 300,
                "jti": format!("{now:x}{:x}", std::process::id()),
            }),
        )?;
        let scope = o.scopes.join(" ");
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let answer = http::send(VENDOR, self.client.post(&url).form(&form), &[]).await?;
        let body = answer.json(VENDOR)?;
        if !answer.status.is_success() {
            let message = match (text(&body, "error"), text(&body, "error_description")) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                _ => answer.status.to_string(),
            };
            return Err(match answer.status.as_u16() {
                400 | 401 | 403 => SourceError::Unauthorized {
                    detail: format!(
                        "Okta refused source {}'s OAuth service app ({message}); check the client id, its public key, and that the scopes {scope} are granted",
                        self.config.source
                    ),
                },
                _ => roster_connectors::http::status_error(
                    VENDOR,
                    answer.status,
                    &answer.headers,
                    &message,
                    "",
                )
                .into(),
            });
        }
        let token = text(&body, "access_token").ok_or_else(|| SourceError::Protocol {
            detail: "Okta's token answer has no access_token".into(),
        })?;
        let ttl = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        let until =
            tokio::time::Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        let value = SecretString::new(format!("Bearer {token}"));
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((value.clone(), until));
        Ok((value, true))
    }

    fn page_size(&self, hint: Option<u32>) -> u32 {
        hint.unwrap_or(self.config.page_size).clamp(1, 200)
    }

    /// GETs `url` (absolute, checked to stay on the org).
    async fn get(&self, url: &str) -> Result<(Answer, Value), SourceError> {
        same_origin(url, &self.base)?;
        let (auth, fresh) = self.authorization().await?;
        let req = self
            .client
            .get(url)
            .header(AUTHORIZATION, auth.expose_secret())
            .header(ACCEPT, "application/json");
        let answer = http::send(VENDOR, req, &[&self.config.api_token, &auth]).await?;
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "Okta refused the OAuth access token; a new one is fetched".into(),
            });
        }
        if answer.status.as_u16() == 429 {
            let info = rate_headers(&answer.headers);
            return Err(SourceError::RateLimited {
                retry_after: roster_connectors::http::retry_after(&answer.headers).or_else(|| {
                    // Only a spent window says when to come back.
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
        if !answer.status.is_success() {
            let code = text(&body, "errorCode");
            let summary = text(&body, "errorSummary");
            let message = match (&code, &summary) {
                (Some(c), Some(s)) => format!("{c}: {s}"),
                _ => answer.status.to_string(),
            };
            let message = roster_connectors::http::scrub(&message, &[&self.config.api_token]);
            return Err(roster_connectors::http::status_error(
                VENDOR,
                answer.status,
                &answer.headers,
                &message,
                &format!(
                    "check the Okta API token of source {} (it may be expired, or its admin may lack read access)",
                    self.config.source
                ),
            )
            .into());
        }
        if let (Some(code), Some(s)) = (text(&body, "errorCode"), text(&body, "errorSummary")) {
            return Err(SourceError::Transient {
                detail: format!("Okta answered HTTP 200 with error {code}: {s}"),
            });
        }
        Ok((answer, body))
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// One Okta user as a person.
    fn person(&self, u: &Value) -> Option<SourcePerson> {
        let id = text(u, "id")?;
        let status = text(u, "status").unwrap_or_default();
        let mut p = SourcePerson::new(id, &status, lifecycle::map(SourceKind::Okta, &status));
        let profile = u.get("profile").cloned().unwrap_or(Value::Null);
        let t = |k: &str| text(&profile, k);
        let login = t("login");
        p.email = t("email")
            .and_then(|e| Email::parse(&e).ok())
            .or_else(|| login.as_deref().and_then(|l| Email::parse(l).ok()));
        for alias in [login, t("secondEmail")].into_iter().flatten() {
            if let Ok(a) = Email::parse(&alias)
                && Some(&a) != p.email.as_ref()
                && !p.aliases.contains(&a)
            {
                p.aliases.push(a);
            }
        }
        p.first_name = t("firstName").unwrap_or_default();
        p.last_name = t("lastName").unwrap_or_default();
        p.employee_id = t("employeeNumber").map(EmployeeId::new);
        p.department = t("department");
        p.cost_center = t("costCenter");
        p.manager = t("managerId").map(ManagerRef::Id).or_else(|| {
            t("manager")
                .and_then(|m| Email::parse(&m).ok())
                .map(ManagerRef::Email)
        });
        let date =
            |attr: &Option<String>| attr.as_deref().and_then(&t).and_then(|v| parse_date(&v));
        p.start_date = date(&self.config.start_date_attribute);
        p.end_date = date(&self.config.end_date_attribute);
        if let Value::Object(o) = &profile {
            for (k, v) in o {
                if MAPPED.contains(&k.as_str()) {
                    continue;
                }
                if let Some(v) = scalar(v, true) {
                    p.attributes.insert(k.clone(), v);
                }
            }
        }
        Some(p)
    }

    fn people(&self, body: &Value) -> Result<Vec<SourcePerson>, SourceError> {
        let Some(rows) = body.as_array() else {
            return Err(SourceError::Protocol {
                detail: "Okta answered a user listing that is not a JSON array".into(),
            });
        };
        Ok(rows.iter().filter_map(|u| self.person(u)).collect())
    }

    fn start_walk(&self) -> FullToken {
        let since = OffsetDateTime::now_utc() - SKEW;
        FullToken {
            v: 1,
            okta: Walk::Deprovisioned { url: None },
            since: okta_time(since),
        }
    }

    fn cursor_from(&self, since: &str) -> Result<SyncCursor, SourceError> {
        Ok(SyncCursor::new(encode(&LogCursor {
            v: 1,
            since: since.to_string(),
            seen: Vec::new(),
        })?))
    }
}

#[async_trait]
impl Source for OktaSource {
    /// `DELETE /api/v1/users/{id}/sessions?oauthTokens=true`: ends the
    /// user's Okta sessions and revokes the OAuth/OIDC tokens issued to
    /// them (204). Needs `okta.users.manage`.
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let url = self.url(&format!(
            "/api/v1/users/{}/sessions?oauthTokens=true",
            enc(person_id)
        ));
        let (auth, fresh) = self.authorization().await?;
        let req = self
            .client
            .delete(&url)
            .header(AUTHORIZATION, auth.expose_secret())
            .header(ACCEPT, "application/json");
        let answer = http::send(VENDOR, req, &[&self.config.api_token, &auth]).await?;
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "Okta refused the OAuth access token; a new one is fetched".into(),
            });
        }
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        let message = match (text(&body, "errorCode"), text(&body, "errorSummary")) {
            (Some(c), Some(s)) => format!("{c}: {s}"),
            _ => answer.status.to_string(),
        };
        let message = roster_connectors::http::scrub(&message, &[&self.config.api_token, &auth]);
        http::write_outcome(
            VENDOR,
            &answer,
            &message,
            &format!(
                "source {} may not clear user sessions: grant its OAuth service app okta.users.manage (or use an API token of an admin who may manage users), or set revoke_sessions = false",
                self.config.source
            ),
        )
    }

    fn id(&self) -> &ConnectionId {
        &self.config.source
    }

    fn capabilities(&self) -> SourceCapabilities {
        let share = self.config.rate_share.clamp(0.01, 1.0);
        let limit = self.config.rate_limit;
        SourceCapabilities::new(SourceKind::Okta)
            .with_incremental(true)
            .with_max_page_size(200)
            .with_rate_limits(vec![RateWindow::new(
                ((f64::from(limit.max_requests) * share).floor() as u32).max(1),
                limit.per,
            )])
            .with_header_share(share)
    }

    async fn validate(&self) -> Result<Validation, SourceError> {
        let mut checks = Vec::new();
        match self.get(&self.url("/api/v1/users?limit=1")).await {
            Ok(_) => checks.push(ValidationCheck::pass("users", "the token can list users")),
            Err(SourceError::Unauthorized { detail }) => {
                checks.push(ValidationCheck::fail("users", detail));
                return Ok(Validation::new(checks));
            }
            Err(e) => return Err(e),
        }
        match self.get(&self.url("/api/v1/logs?limit=1")).await {
            Ok(_) => checks.push(ValidationCheck::pass(
                "system_log",
                "the token can read the System Log (incremental reads)",
            )),
            Err(SourceError::Unauthorized { detail }) => checks.push(ValidationCheck::fail(
                "system_log",
                format!("{detail}; incremental reads need the System Log (Read-only Administrator, or okta.logs.read)"),
            )),
            Err(e) => return Err(e),
        }
        Ok(Validation::new(checks))
    }

    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError> {
        let token = match &req.page_token {
            None => self.start_walk(),
            Some(t) => serde_json::from_str::<FullToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Okta source's full read".into(),
                })?,
        };
        let limit = self.page_size(req.page_size);
        let mut page = PeoplePage::default();
        let next_walk: Option<Walk> = match &token.okta {
            Walk::Users { url } | Walk::Deprovisioned { url } => {
                let deprovisioned = matches!(token.okta, Walk::Deprovisioned { .. });
                let url = match url {
                    Some(u) => u.clone(),
                    None if deprovisioned => self.url(&format!(
                        "/api/v1/users?limit={limit}&filter={}",
                        enc("status eq \"DEPROVISIONED\"")
                    )),
                    None => self.url(&format!("/api/v1/users?limit={limit}")),
                };
                let (answer, body) = self.get(&url).await?;
                page.rate_limit = rate_headers(&answer.headers);
                page.people = self.people(&body)?;
                match (next_link(&answer.headers), deprovisioned) {
                    (Some(n), false) => Some(Walk::Users { url: Some(n) }),
                    (Some(n), true) => Some(Walk::Deprovisioned { url: Some(n) }),
                    (None, true) => Some(Walk::Users { url: None }),
                    (None, false) => Some(Walk::Groups { url: None }),
                }
            }
            Walk::Groups { url } => {
                let url = url
                    .clone()
                    .unwrap_or_else(|| self.url(&format!("/api/v1/groups?limit={limit}")));
                let (answer, body) = self.get(&url).await?;
                page.rate_limit = rate_headers(&answer.headers);
                let groups: Vec<(String, String)> = body
                    .as_array()
                    .ok_or_else(|| SourceError::Protocol {
                        detail: "Okta answered a group listing that is not a JSON array".into(),
                    })?
                    .iter()
                    .filter_map(|g| {
                        let id = text(g, "id")?;
                        let name = g.get("profile").and_then(|p| text(p, "name"))?;
                        Some((id, name))
                    })
                    .collect();
                let more = next_link(&answer.headers);
                if groups.is_empty() {
                    more.map(|n| Walk::Groups { url: Some(n) })
                } else {
                    Some(Walk::Members {
                        groups,
                        url: None,
                        more_groups: more,
                    })
                }
            }
            Walk::Members {
                groups,
                url,
                more_groups,
            } => {
                let Some((gid, name)) = groups.first() else {
                    return Err(SourceError::BadToken {
                        detail: "an Okta page token with no group left".into(),
                    });
                };
                let url = url.clone().unwrap_or_else(|| {
                    self.url(&format!("/api/v1/groups/{}/users?limit={limit}", enc(gid)))
                });
                let (answer, body) = self.get(&url).await?;
                page.rate_limit = rate_headers(&answer.headers);
                let members = body.as_array().ok_or_else(|| SourceError::Protocol {
                    detail: "Okta answered a member listing that is not a JSON array".into(),
                })?;
                page.memberships = members
                    .iter()
                    .filter_map(|u| text(u, "id"))
                    .map(|id| Membership::new(id, name.clone()))
                    .collect();
                match next_link(&answer.headers) {
                    Some(n) => Some(Walk::Members {
                        groups: groups.clone(),
                        url: Some(n),
                        more_groups: more_groups.clone(),
                    }),
                    None if groups.len() > 1 => Some(Walk::Members {
                        groups: groups[1..].to_vec(),
                        url: None,
                        more_groups: more_groups.clone(),
                    }),
                    None => more_groups.clone().map(|n| Walk::Groups { url: Some(n) }),
                }
            }
        };
        match next_walk {
            Some(walk) => {
                page.next = Some(PageToken::new(encode(&FullToken {
                    v: 1,
                    okta: walk,
                    since: token.since.clone(),
                })?));
            }
            None => page.cursor = Some(self.cursor_from(&token.since)?),
        }
        Ok(page)
    }

    async fn read_changes(&self, req: ChangesRequest) -> Result<ChangesPage, SourceError> {
        let expired = |detail: String| SourceError::CursorExpired { detail };
        let cursor: LogCursor = serde_json::from_str(req.cursor.as_str())
            .ok()
            .filter(|c: &LogCursor| c.v == 1)
            .ok_or_else(|| expired("the cursor is not an Okta System Log cursor".into()))?;
        let since = parse_time(&cursor.since).ok_or_else(|| {
            expired(format!(
                "the cursor's time {:?} is unreadable",
                cursor.since
            ))
        })?;
        if OffsetDateTime::now_utc() - since > LOG_RETENTION {
            return Err(expired(format!(
                "the cursor is from {}, beyond the System Log's 90-day retention",
                cursor.since
            )));
        }
        let token = match &req.page_token {
            None => ChangesToken {
                v: 1,
                next: cursor.clone(),
                ..ChangesToken::default()
            },
            Some(t) => serde_json::from_str::<ChangesToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Okta source's incremental read".into(),
                })?,
        };
        self.changes_step(token, Some(&cursor), req.page_size).await
    }

    async fn read_person(&self, req: PersonRequest) -> Result<ChangesPage, SourceError> {
        // The walk of an incremental read with the log already drained and
        // one person pending: the same two reads (the user, their groups),
        // so a person named by a hook is read exactly as a changed one.
        let token = match &req.page_token {
            None => ChangesToken {
                v: 1,
                log_done: true,
                pending: vec![req.id.clone()],
                ..ChangesToken::default()
            },
            Some(t) => serde_json::from_str::<ChangesToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1 && t.log_done)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Okta source's person read".into(),
                })?,
        };
        let mut page = self.changes_step(token, None, None).await?;
        // A person read hands out no cursor: it says nothing of the log.
        page.cursor = None;
        Ok(page)
    }
}

impl OktaSource {
    /// One request of an incremental read (or of a person read, which
    /// starts with the log drained and `cursor` `None`).
    async fn changes_step(
        &self,
        mut token: ChangesToken,
        cursor: Option<&LogCursor>,
        page_size: Option<u32>,
    ) -> Result<ChangesPage, SourceError> {
        let expired = |detail: String| SourceError::CursorExpired { detail };
        let mut page = ChangesPage::default();
        if let (false, Some(cursor)) = (token.log_done, cursor) {
            let limit = page_size
                .unwrap_or(self.config.log_page_size)
                .clamp(1, 1000);
            let url = token.log_url.clone().unwrap_or_else(|| {
                self.url(&format!(
                    "/api/v1/logs?since={}&sortOrder=ASCENDING&limit={limit}",
                    enc(&cursor.since)
                ))
            });
            let (answer, body) = match self.get(&url).await {
                Err(SourceError::Vendor { code, detail })
                    if code == "400" && detail.contains("since") =>
                {
                    return Err(expired(detail));
                }
                other => other?,
            };
            page.rate_limit = rate_headers(&answer.headers);
            let events = body.as_array().ok_or_else(|| SourceError::Protocol {
                detail: "Okta answered a System Log page that is not a JSON array".into(),
            })?;
            for e in events {
                let (Some(uuid), Some(published)) = (text(e, "uuid"), text(e, "published")) else {
                    continue;
                };
                if published == cursor.since && cursor.seen.contains(&uuid) {
                    continue;
                }
                // Track the newest instant read and the events read at it.
                let newer = match (parse_time(&published), parse_time(&token.next.since)) {
                    (Some(a), Some(b)) => a > b,
                    _ => false,
                };
                if newer {
                    token.next.since = published.clone();
                    token.next.seen.clear();
                }
                if published == token.next.since && !token.next.seen.contains(&uuid) {
                    token.next.seen.push(uuid);
                }
                let kind = text(e, "eventType").unwrap_or_default();
                if !EVENT_PREFIXES.iter().any(|p| kind.starts_with(p)) {
                    continue;
                }
                let targets = e.get("target").and_then(Value::as_array);
                for t in targets.into_iter().flatten() {
                    if text(t, "type").as_deref() == Some("User")
                        && let Some(id) = text(t, "id")
                        && !token.pending.contains(&id)
                    {
                        token.pending.push(id);
                    }
                }
            }
            if token.pending.len() > self.config.max_incremental_people {
                return Err(SourceError::TooManyChanges {
                    changed: token.pending.len(),
                    max: self.config.max_incremental_people,
                });
            }
            // A polling query always has a next link; a page that is not
            // full means the log is drained for now.
            match next_link(&answer.headers) {
                Some(n) if events.len() as u32 >= limit => token.log_url = Some(n),
                _ => {
                    token.log_done = true;
                    token.log_url = None;
                }
            }
        } else if let Some(uid) = token.groups_for.clone() {
            let url = token.groups_url.clone().unwrap_or_else(|| {
                self.url(&format!("/api/v1/users/{}/groups?limit=200", enc(&uid)))
            });
            match self.get(&url).await {
                Ok((answer, body)) => {
                    page.rate_limit = rate_headers(&answer.headers);
                    let groups = body.as_array().ok_or_else(|| SourceError::Protocol {
                        detail: "Okta answered a group listing that is not a JSON array".into(),
                    })?;
                    page.memberships = groups
                        .iter()
                        .filter_map(|g| g.get("profile").and_then(|p| text(p, "name")))
                        .map(|name| Membership::new(uid.clone(), name))
                        .collect();
                    match next_link(&answer.headers) {
                        Some(n) => token.groups_url = Some(n),
                        None => {
                            token.groups_for = None;
                            token.groups_url = None;
                        }
                    }
                }
                // Deleted between the two reads: the next read sees it.
                Err(SourceError::Vendor { code, .. }) if code == "404" => {
                    token.groups_for = None;
                    token.groups_url = None;
                }
                Err(e) => return Err(e),
            }
        } else if !token.pending.is_empty() {
            let uid = token.pending.remove(0);
            match self
                .get(&self.url(&format!("/api/v1/users/{}", enc(&uid))))
                .await
            {
                Ok((answer, body)) => {
                    page.rate_limit = rate_headers(&answer.headers);
                    let person = self.person(&body).ok_or_else(|| SourceError::Protocol {
                        detail: "Okta answered a user without an id".into(),
                    })?;
                    page.changed.push(person);
                    token.groups_for = Some(uid);
                }
                Err(SourceError::Vendor { code, .. }) if code == "404" => {
                    page.removed.push(Removal::new(
                        uid,
                        REMOVED,
                        lifecycle::map(SourceKind::Okta, REMOVED),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let done = token.log_done && token.groups_for.is_none() && token.pending.is_empty();
        if done {
            page.cursor = Some(SyncCursor::new(encode(&token.next)?));
        } else {
            page.next = Some(PageToken::new(encode(&token)?));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_times_round_trip_to_the_millisecond() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let s = okta_time(t);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time(&s).unwrap().millisecond(), 123);
        assert_eq!(
            parse_date("2026-03-01"),
            time::Date::from_calendar_date(2026, time::Month::March, 1).ok()
        );
        assert_eq!(
            parse_date("2026-03-01T00:00:00Z"),
            time::Date::from_calendar_date(2026, time::Month::March, 1).ok()
        );
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn profiles_map_to_people() {
        let s = OktaSource::new(OktaSourceConfig::new(
            ConnectionId::new("okta"),
            "https://acme.okta.com",
            SecretString::new("t"),
        ))
        .unwrap();
        let u = serde_json::json!({
            "id": "00u1", "status": "LOCKED_OUT",
            "profile": {"login": "ann@acme.example", "email": "Ann@Acme.example",
                "secondEmail": "ann@old.example", "firstName": "Ann", "lastName": "Lee",
                "employeeNumber": "E7", "department": "Finance", "costCenter": "CC1",
                "managerId": "00u9", "startDate": "2026-02-01", "title": "Controller",
                "nickName": null}
        });
        let p = s.person(&u).unwrap();
        assert_eq!(p.email.as_ref().unwrap().as_str(), "Ann@Acme.example");
        // The login equals the address case-insensitively: not an alias.
        assert_eq!(p.aliases.len(), 1);
        assert_eq!(p.aliases[0].as_str(), "ann@old.example");
        assert_eq!(p.employee_id.as_ref().unwrap().as_str(), "E7");
        assert_eq!(p.manager, Some(ManagerRef::Id("00u9".into())));
        assert_eq!(p.raw_state, "LOCKED_OUT");
        assert_eq!(p.status(), roster_core::EmploymentStatus::Active);
        assert_eq!(
            p.attributes.get("title").map(String::as_str),
            Some("Controller")
        );
        assert!(!p.attributes.contains_key("nickName"));
        assert!(p.start_date.is_some() && p.end_date.is_none());
    }
}
