//! OneLogin as a source of people, through API v2 (vendor-apis.md §5).
//!
//! # Reads
//!
//! A full read is one walk, one request per call: `GET /api/2/roles`
//! (role ids to names, carried in the page token), then
//! `GET /api/2/users?limit=50`, following the `After-Cursor` response
//! header. Roles are the groups: each user's `role_ids` become group names.
//!
//! An incremental read is the same walk with
//! `updated_since=<cursor>`; the cursor is the time the previous walk began
//! (one minute back, for clock skew). OneLogin never shows a deletion
//! through `updated_since`, and it has no "left" status (status `2`,
//! suspended, keeps accounts): a deleted user simply stops appearing, so
//! only a full read (whose result passes the engine's shrink guard) notices
//! a leaver who was deleted. The cursor never expires.
//!
//! # Person fields
//!
//! | roster | OneLogin |
//! |---|---|
//! | id | `id` |
//! | email | `email` (aliases: `username` when it is another address) |
//! | employee id, cost center, start / end date | the `custom_attributes` named by `employee_id_attribute`, `cost_center_attribute`, `start_date_attribute`, `end_date_attribute` (defaults `employee_id`, `cost_center`, `start_date`, `end_date`) |
//! | department | `department` |
//! | manager | `manager_user_id` |
//! | groups | role names, from `role_ids` |
//! | attributes | `title`, `company`, and the other custom attributes |
//! | state | `status` (0–8), mapped by [`crate::lifecycle`] |
//!
//! # Configuration
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `url` | `https://<subdomain>.onelogin.com` | required |
//! | `client_id`, `client_secret` | an API credential (secret references) | required |
//! | `rate_limit` | requests per hour | 5000 |
//! | the four `*_attribute` keys above | custom attribute names | see above |
//!
//! # Least privilege
//!
//! An API credential with the scope **Read users** (Developers → API
//! Credentials); it reads users and roles and can change nothing. Not
//! *Manage users* or *Manage all*.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use roster_connectors::http::{Answer, scalar, text};
use roster_connectors::{SecretString, Validation, ValidationCheck};
use roster_core::{ConnectionId, Email, EmployeeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::http::{self, enc};
use crate::lifecycle;
use crate::{
    ChangesPage, ChangesRequest, ManagerRef, PageRequest, PageToken, PeoplePage, RateWindow,
    Source, SourceCapabilities, SourceError, SourceKind, SourcePerson, SyncCursor,
};

const VENDOR: &str = "OneLogin";
const SKEW: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct OneLoginSourceConfig {
    pub source: ConnectionId,
    pub url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub rate_limit: RateWindow,
    pub employee_id_attribute: String,
    pub cost_center_attribute: String,
    pub start_date_attribute: String,
    pub end_date_attribute: String,
    pub timeout: Duration,
    pub allow_private_network: bool,
}

impl OneLoginSourceConfig {
    pub fn new(
        source: ConnectionId,
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        OneLoginSourceConfig {
            source,
            url: url.into(),
            client_id: client_id.into(),
            client_secret,
            rate_limit: RateWindow::new(5000, Duration::from_secs(3600)),
            employee_id_attribute: "employee_id".into(),
            cost_center_attribute: "cost_center".into(),
            start_date_attribute: "start_date".into(),
            end_date_attribute: "end_date".into(),
            timeout: Duration::from_secs(30),
            allow_private_network: false,
        }
    }
}

impl std::fmt::Debug for OneLoginSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneLoginSourceConfig")
            .field("source", &self.source)
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    Roles,
    Users,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WalkToken {
    v: u8,
    phase: Phase,
    /// The listing's `After-Cursor`.
    cursor: Option<String>,
    roles: BTreeMap<String, String>,
    /// When this walk began (the next incremental cursor).
    started: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SinceCursor {
    v: u8,
    since: String,
}

pub struct OneLoginSource {
    config: OneLoginSourceConfig,
    base: String,
    client: reqwest::Client,
    token: Mutex<Option<(SecretString, Instant)>>,
}

fn encode<T: Serialize>(t: &T) -> Result<String, SourceError> {
    serde_json::to_string(t).map_err(|e| SourceError::Protocol {
        detail: format!("cannot encode a page token: {e}"),
    })
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse_date(s: &str) -> Option<time::Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.get(..10).unwrap_or(s), &f).ok()
}

impl OneLoginSource {
    pub fn new(config: OneLoginSourceConfig) -> Result<Self, SourceError> {
        let base = http::base_url(&config.url, VENDOR)?;
        if config.client_id.trim().is_empty() || config.client_secret.expose_secret().is_empty() {
            return Err(SourceError::Config {
                detail: format!(
                    "{}: client_id and client_secret are required (OneLogin → Developers → API Credentials, scope Read users)",
                    config.source
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(OneLoginSource {
            config,
            base,
            client,
            token: Mutex::new(None),
        })
    }

    async fn access_token(&self) -> Result<(SecretString, bool), SourceError> {
        if let Some((t, until)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && Instant::now() < until
        {
            return Ok((t, false));
        }
        let req = self
            .client
            .post(format!("{}/auth/oauth2/v2/token", self.base))
            .header(
                AUTHORIZATION,
                format!(
                    "client_id:{}, client_secret:{}",
                    self.config.client_id.trim(),
                    self.config.client_secret.expose_secret()
                ),
            )
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"grant_type":"client_credentials"}"#);
        let answer = http::send(VENDOR, req, &[&self.config.client_secret]).await?;
        if answer.status.as_u16() == 429 {
            return Err(SourceError::RateLimited {
                retry_after: roster_connectors::http::retry_after(&answer.headers),
            });
        }
        let body = answer.json(VENDOR)?;
        if !answer.status.is_success() {
            return Err(match answer.status.as_u16() {
                400 | 401 | 403 => SourceError::Unauthorized {
                    detail: format!(
                        "OneLogin refused source {}'s API credential (HTTP {}); check client_id and client_secret",
                        self.config.source,
                        answer.status.as_u16()
                    ),
                },
                _ => roster_connectors::http::status_error(
                    VENDOR,
                    answer.status,
                    &answer.headers,
                    &text(&body, "message").unwrap_or_default(),
                    "",
                )
                .into(),
            });
        }
        let token = text(&body, "access_token").ok_or_else(|| SourceError::Protocol {
            detail: "OneLogin's token answer has no access_token".into(),
        })?;
        let ttl = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(36000);
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        let token = SecretString::new(token);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), until));
        Ok((token, true))
    }

    async fn get(&self, path_and_query: &str) -> Result<(Answer, Value), SourceError> {
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(ACCEPT, "application/json");
        let secrets = [&self.config.client_secret, &token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        if answer.status.as_u16() == 429 {
            return Err(SourceError::RateLimited {
                retry_after: roster_connectors::http::retry_after(&answer.headers),
            });
        }
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            answer.json(VENDOR)?
        };
        if answer.status.is_success() {
            return Ok((answer, body));
        }
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "OneLogin refused the access token; a new one is fetched".into(),
            });
        }
        let message = roster_connectors::http::scrub(
            &text(&body, "message").unwrap_or_else(|| answer.status.to_string()),
            &secrets,
        );
        Err(roster_connectors::http::status_error(
            VENDOR,
            answer.status,
            &answer.headers,
            &message,
            &format!(
                "check that source {}'s API credential has the Read users scope",
                self.config.source
            ),
        )
        .into())
    }

    fn person(&self, u: &Value, roles: &BTreeMap<String, String>) -> Option<SourcePerson> {
        let id = scalar(u.get("id")?, false)?;
        let status = u
            .get("status")
            .and_then(|s| scalar(s, false))
            .unwrap_or_default();
        let mut p = SourcePerson::new(id, &status, lifecycle::map(SourceKind::OneLogin, &status));
        p.email = text(u, "email").and_then(|e| Email::parse(&e).ok());
        if let Some(a) = text(u, "username").and_then(|n| Email::parse(&n).ok())
            && Some(&a) != p.email.as_ref()
        {
            p.aliases.push(a);
        }
        p.first_name = text(u, "firstname").unwrap_or_default();
        p.last_name = text(u, "lastname").unwrap_or_default();
        p.department = text(u, "department");
        p.manager = u
            .get("manager_user_id")
            .and_then(|m| scalar(m, false))
            .map(ManagerRef::Id);
        p.groups = u
            .get("role_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| scalar(r, false))
            .filter_map(|r| roles.get(&r).cloned())
            .collect();
        let custom = u.get("custom_attributes").cloned().unwrap_or(Value::Null);
        let c = |k: &str| text(&custom, k);
        p.employee_id = c(&self.config.employee_id_attribute).map(EmployeeId::new);
        p.cost_center = c(&self.config.cost_center_attribute);
        p.start_date = c(&self.config.start_date_attribute).and_then(|d| parse_date(&d));
        p.end_date = c(&self.config.end_date_attribute).and_then(|d| parse_date(&d));
        let mapped = [
            &self.config.employee_id_attribute,
            &self.config.cost_center_attribute,
            &self.config.start_date_attribute,
            &self.config.end_date_attribute,
        ];
        if let Value::Object(o) = &custom {
            for (k, v) in o {
                if !mapped.contains(&k)
                    && let Some(v) = scalar(v, true)
                {
                    p.attributes.insert(k.clone(), v);
                }
            }
        }
        for k in ["title", "company"] {
            if let Some(v) = text(u, k) {
                p.attributes.insert(k.to_string(), v);
            }
        }
        Some(p)
    }

    /// One step of the walk; `since` for incremental reads.
    async fn step(
        &self,
        token: Option<&PageToken>,
        since: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<(Vec<SourcePerson>, Option<WalkToken>, String), SourceError> {
        let limit = page_size.unwrap_or(50).clamp(1, 50);
        let mut walk = match token {
            None => WalkToken {
                v: 1,
                phase: Phase::Roles,
                cursor: None,
                roles: BTreeMap::new(),
                started: iso(OffsetDateTime::now_utc() - SKEW),
            },
            Some(t) => serde_json::from_str::<WalkToken>(t.as_str())
                .ok()
                .filter(|w| w.v == 1)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this OneLogin source".into(),
                })?,
        };
        let cursor_q = walk
            .cursor
            .as_deref()
            .map(|c| format!("&cursor={}", enc(c)))
            .unwrap_or_default();
        let mut people = Vec::new();
        let answer = match walk.phase {
            Phase::Roles => {
                let (answer, body) = self
                    .get(&format!("/api/2/roles?limit={limit}{cursor_q}"))
                    .await?;
                let rows = body.as_array().ok_or_else(|| SourceError::Protocol {
                    detail: "OneLogin answered a role listing that is not a JSON array".into(),
                })?;
                for r in rows {
                    if let (Some(id), Some(name)) =
                        (r.get("id").and_then(|i| scalar(i, false)), text(r, "name"))
                    {
                        walk.roles.insert(id, name);
                    }
                }
                answer
            }
            Phase::Users => {
                let since_q = since
                    .map(|s| format!("&updated_since={}", enc(s)))
                    .unwrap_or_default();
                let (answer, body) = self
                    .get(&format!("/api/2/users?limit={limit}{since_q}{cursor_q}"))
                    .await?;
                let rows = body.as_array().ok_or_else(|| SourceError::Protocol {
                    detail: "OneLogin answered a user listing that is not a JSON array".into(),
                })?;
                people = rows
                    .iter()
                    .filter_map(|u| self.person(u, &walk.roles))
                    .collect();
                answer
            }
        };
        let after = answer
            .headers
            .get("after-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let started = walk.started.clone();
        let next = match (after, &walk.phase) {
            (Some(c), _) => Some(WalkToken {
                cursor: Some(c),
                ..walk
            }),
            (None, Phase::Roles) => Some(WalkToken {
                phase: Phase::Users,
                cursor: None,
                ..walk
            }),
            (None, Phase::Users) => None,
        };
        Ok((people, next, started))
    }
}

#[async_trait]
impl Source for OneLoginSource {
    /// `PUT /api/1/users/{id}/logout` (API v1 "Log User Out"; v2 has no
    /// equivalent): ends the user's OneLogin session, so they can start
    /// no new SAML or OIDC sign-in (sessions apps opened before are the
    /// apps' own). Needs an API credential with *Manage users*.
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .put(format!(
                "{}/api/1/users/{}/logout",
                self.base,
                enc(person_id)
            ))
            // API v1's spelling of a bearer token.
            .header(AUTHORIZATION, format!("bearer:{}", token.expose_secret()))
            .header(ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let secrets = [&self.config.client_secret, &token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "OneLogin refused the access token; a new one is fetched".into(),
            });
        }
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        let status = body.get("status").cloned().unwrap_or(Value::Null);
        let message = roster_connectors::http::scrub(
            &status
                .get("message")
                .map(|m| {
                    m.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| m.to_string())
                })
                .or_else(|| text(&body, "message"))
                .unwrap_or_else(|| answer.status.to_string()),
            &secrets,
        );
        http::write_outcome(
            VENDOR,
            &answer,
            &message,
            &format!(
                "source {}'s API credential needs the Manage users scope (or set revoke_sessions = false)",
                self.config.source
            ),
        )?;
        // v1 reports failure inside a 200 too.
        if status.get("error").and_then(Value::as_bool) == Some(true) {
            return Err(SourceError::Vendor {
                code: status
                    .get("code")
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                detail: format!("OneLogin refused the log-out: {message}"),
            });
        }
        Ok(())
    }

    fn id(&self) -> &ConnectionId {
        &self.config.source
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::new(SourceKind::OneLogin)
            .with_incremental(true)
            .with_incremental_removals(false)
            .with_max_page_size(50)
            .with_rate_limits(vec![self.config.rate_limit])
    }

    async fn validate(&self) -> Result<Validation, SourceError> {
        match self.get("/api/2/users?limit=1").await {
            Ok(_) => Ok(Validation::new(vec![ValidationCheck::pass(
                "users",
                "the API credential can read users",
            )])),
            Err(SourceError::Unauthorized { detail }) => {
                Ok(Validation::new(vec![ValidationCheck::fail(
                    "users", detail,
                )]))
            }
            Err(e) => Err(e),
        }
    }

    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError> {
        let (people, next, started) = self
            .step(req.page_token.as_ref(), None, req.page_size)
            .await?;
        let mut page = PeoplePage {
            people,
            ..PeoplePage::default()
        };
        match next {
            Some(w) => page.next = Some(PageToken::new(encode(&w)?)),
            None => {
                page.cursor = Some(SyncCursor::new(encode(&SinceCursor {
                    v: 1,
                    since: started,
                })?));
            }
        }
        Ok(page)
    }

    async fn read_changes(&self, req: ChangesRequest) -> Result<ChangesPage, SourceError> {
        let cursor: SinceCursor = serde_json::from_str(req.cursor.as_str())
            .ok()
            .filter(|c: &SinceCursor| c.v == 1)
            .ok_or_else(|| SourceError::CursorExpired {
                detail: "the cursor is not a OneLogin cursor".into(),
            })?;
        let (people, next, started) = self
            .step(req.page_token.as_ref(), Some(&cursor.since), req.page_size)
            .await?;
        let mut page = ChangesPage {
            changed: people,
            ..ChangesPage::default()
        };
        match next {
            Some(w) => page.next = Some(PageToken::new(encode(&w)?)),
            None => {
                page.cursor = Some(SyncCursor::new(encode(&SinceCursor {
                    v: 1,
                    since: started,
                })?));
            }
        }
        Ok(page)
    }
}
