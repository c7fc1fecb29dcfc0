//! Microsoft Entra ID as a source of people, through Microsoft Graph v1.0
//! (vendor-apis.md §4).
//!
//! # Full read
//!
//! One walk, one Graph request per call:
//!
//! 1. `GET /users/delta?$select=…&$deltatoken=latest`: a deltaLink for
//!    *now*, taken first, so the incremental read that follows this full
//!    read sees every change made while it ran.
//! 2. `GET /users?$select=…&$top=999&$expand=manager($select=id)`,
//!    following `@odata.nextLink`. `accountEnabled`, `employeeId`,
//!    `department` and the rest are only returned when selected, so the
//!    selection is explicit.
//! 3. `GET /groups?$select=id,displayName`, then
//!    `GET /groups/{id}/members/microsoft.graph.user?$select=id` per group.
//!    Memberships are direct, as Entra assigns apps by group: a person in a
//!    nested group is not listed in the outer one.
//!
//! # Incremental read: delta query
//!
//! Follow the stored deltaLink, then each `@odata.nextLink`, until a new
//! `@odata.deltaLink` (the next cursor). Changed users come whole (their
//! selected properties, `manager@delta`); removed ones as `@removed` with
//! reason `changed` (deleted, restorable for 30 days) or `deleted`. Each
//! changed user's groups are then read with
//! `GET /users/{id}/memberOf/microsoft.graph.group` (delta does not carry
//! memberships). An expired deltaLink (HTTP 410, or the codes
//! `syncStateNotFound`, `resyncRequired`, `syncStateInvalid`) is
//! [`SourceError::CursorExpired`]: do a full read.
//!
//! # Throttling and tokens
//!
//! Graph answers 429 with `Retry-After` (seconds); it becomes
//! [`SourceError::RateLimited`] for the read loop. Graph documents no fixed
//! request numbers for these endpoints, so none are declared unless
//! configured. The access token comes from the client-credentials grant
//! and is cached until a minute before it expires; a 401 on a cached token
//! drops it and the call is retryable (a fresh token is fetched), a 401 on
//! a fresh one is [`SourceError::Unauthorized`].
//!
//! # Person fields
//!
//! | roster | Graph |
//! |---|---|
//! | id | `id` (object id) |
//! | email | `mail` (else `userPrincipalName` when it is an address) |
//! | aliases | `userPrincipalName`, `otherMails` (when different) |
//! | employee id | `employeeId` |
//! | department, cost center | `department`, `employeeOrgData.costCenter` |
//! | manager | `manager` / `manager@delta` id, resolved to an address by the read loop |
//! | start / end date | `employeeHireDate`, `employeeLeaveDateTime` |
//! | attributes | `jobTitle`, `displayName`, and any configured `extra_properties` |
//! | state | `accountEnabled`, `@removed`, mapped by [`crate::lifecycle`] |
//!
//! # Configuration
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `tenant_id` | the directory (tenant) id or domain | required |
//! | `client_id` | the app registration's application id | required |
//! | `client_secret` | a secret reference to its client secret | required |
//! | `graph_url` | Graph's base | `https://graph.microsoft.com/v1.0` |
//! | `login_url` | the identity platform | `https://login.microsoftonline.com` |
//! | `page_size` | users per page (≤ 999) | 999 |
//! | `extra_properties` | further user properties to read into attributes | none |
//! | `rate_limit` | a request window to pace to | none |
//! | `allow_private_network` | the URLs may resolve to private addresses | false |
//!
//! # Least privilege
//!
//! An app registration with the **application** permissions
//! `User.Read.All` (users, their managers, delta) and
//! `GroupMember.Read.All` (groups and memberships), granted by an admin.
//! Nothing that writes: `Directory.ReadWrite.All` or
//! `AppRoleAssignment.ReadWrite.All` must not be granted to a source.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use roster_connectors::http::{Answer, text};
use roster_connectors::{SecretString, Validation, ValidationCheck};
use roster_core::{ConnectionId, Email, EmployeeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::http::{self, enc, same_origin};
use crate::lifecycle::{self, entra_enabled};
use crate::{
    ChangesPage, ChangesRequest, ManagerRef, Membership, PageRequest, PageToken, PeoplePage,
    RateWindow, Removal, Source, SourceCapabilities, SourceError, SourceKind, SourcePerson,
    SyncCursor,
};

const VENDOR: &str = "Microsoft Graph";
const SELECT: &str = "id,userPrincipalName,mail,otherMails,givenName,surname,displayName,accountEnabled,employeeId,department,jobTitle,employeeOrgData,employeeHireDate,employeeLeaveDateTime";
const EXPIRED_CODES: [&str; 3] = ["syncStateNotFound", "resyncRequired", "syncStateInvalid"];

#[derive(Clone)]
pub struct EntraSourceConfig {
    pub source: ConnectionId,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub graph_url: String,
    pub login_url: String,
    pub page_size: u32,
    pub extra_properties: Vec<String>,
    pub rate_limits: Vec<RateWindow>,
    pub timeout: Duration,
    pub allow_private_network: bool,
}

impl EntraSourceConfig {
    pub fn new(
        source: ConnectionId,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        EntraSourceConfig {
            source,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            graph_url: "https://graph.microsoft.com/v1.0".into(),
            login_url: "https://login.microsoftonline.com".into(),
            page_size: 999,
            extra_properties: Vec::new(),
            rate_limits: Vec::new(),
            timeout: Duration::from_secs(30),
            allow_private_network: false,
        }
    }
}

impl std::fmt::Debug for EntraSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraSourceConfig")
            .field("source", &self.source)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Walk {
    Latest,
    Users {
        url: Option<String>,
    },
    Groups {
        url: Option<String>,
    },
    Members {
        groups: Vec<(String, String)>,
        url: Option<String>,
        more_groups: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FullToken {
    v: u8,
    entra: Walk,
    delta_link: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DeltaCursor {
    v: u8,
    delta_link: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ChangesToken {
    v: u8,
    url: Option<String>,
    delta_done: bool,
    pending: Vec<String>,
    groups_for: Option<String>,
    groups_url: Option<String>,
    next_cursor: Option<String>,
}

pub struct EntraSource {
    config: EntraSourceConfig,
    graph: String,
    login: String,
    client: reqwest::Client,
    token: Mutex<Option<(SecretString, Instant)>>,
}

fn encode<T: Serialize>(t: &T) -> Result<String, SourceError> {
    serde_json::to_string(t).map_err(|e| SourceError::Protocol {
        detail: format!("cannot encode a page token: {e}"),
    })
}

fn parse_date(s: &str) -> Option<time::Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.get(..10).unwrap_or(s), &f).ok()
}

fn array<'a>(body: &'a Value, what: &str) -> Result<&'a Vec<Value>, SourceError> {
    body.get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| SourceError::Protocol {
            detail: format!("Graph answered a {what} listing without a value array"),
        })
}

fn link(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

impl EntraSource {
    pub fn new(config: EntraSourceConfig) -> Result<Self, SourceError> {
        let graph = http::base_url(&config.graph_url, VENDOR)?;
        let login = http::base_url(&config.login_url, "the Microsoft identity platform")?;
        if config.tenant_id.trim().is_empty()
            || config.client_id.trim().is_empty()
            || config.client_secret.expose_secret().is_empty()
        {
            return Err(SourceError::Config {
                detail: format!(
                    "{}: tenant_id, client_id and client_secret are required (Entra admin center → App registrations; grant User.Read.All and GroupMember.Read.All as application permissions)",
                    config.source
                ),
            });
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(EntraSource {
            config,
            graph,
            login,
            client,
            token: Mutex::new(None),
        })
    }

    fn select(&self, with_manager: bool) -> String {
        let mut s = SELECT.to_string();
        for p in &self.config.extra_properties {
            s.push(',');
            s.push_str(p);
        }
        if with_manager {
            s.push_str(",manager");
        }
        s
    }

    /// A cached access token, or a new one (`true`: just fetched).
    async fn access_token(&self) -> Result<(SecretString, bool), SourceError> {
        if let Some((t, until)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && Instant::now() < until
        {
            return Ok((t, false));
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.login,
            enc(self.config.tenant_id.trim())
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.trim()),
            ("client_secret", self.config.client_secret.expose_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let answer = http::send(
            "the Microsoft identity platform",
            self.client.post(&url).form(&form),
            &[&self.config.client_secret],
        )
        .await?;
        let body = answer.json("the Microsoft identity platform")?;
        if !answer.status.is_success() {
            let message = match (text(&body, "error"), text(&body, "error_description")) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                _ => answer.status.to_string(),
            };
            let message = roster_connectors::http::scrub(&message, &[&self.config.client_secret]);
            return Err(match answer.status.as_u16() {
                400 | 401 | 403 => SourceError::Unauthorized {
                    detail: format!(
                        "the Microsoft identity platform refused source {}'s client credentials ({message}); check tenant_id, client_id and the client secret (it may have expired)",
                        self.config.source
                    ),
                },
                _ => roster_connectors::http::status_error(
                    "the Microsoft identity platform",
                    answer.status,
                    &answer.headers,
                    &message,
                    "",
                )
                .into(),
            });
        }
        let token = text(&body, "access_token").ok_or_else(|| SourceError::Protocol {
            detail: "the token answer has no access_token".into(),
        })?;
        let ttl = body
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(3599);
        // Renew a minute early, so a token never expires mid-read.
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        let token = SecretString::new(token);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), until));
        Ok((token, true))
    }

    async fn get(&self, url: &str) -> Result<(Answer, Value), SourceError> {
        same_origin(url, &self.graph)?;
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(ACCEPT, "application/json");
        let secrets = [&self.config.client_secret, &token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        let status = answer.status.as_u16();
        if status == 429 {
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
        let err = body.get("error").cloned().unwrap_or(Value::Null);
        let code = text(&err, "code").unwrap_or_default();
        let message = roster_connectors::http::scrub(
            &format!(
                "{code}: {}",
                text(&err, "message").unwrap_or_else(|| answer.status.to_string())
            ),
            &secrets,
        );
        if status == 410 || EXPIRED_CODES.iter().any(|c| c.eq_ignore_ascii_case(&code)) {
            return Err(SourceError::CursorExpired {
                detail: format!("Graph answered HTTP {status}: {message}"),
            });
        }
        if status == 401 && !fresh {
            // The cached token expired under us: drop it; the retry
            // fetches a new one.
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: format!("the access token was refused ({message}); a new one is fetched"),
            });
        }
        Err(roster_connectors::http::status_error(
            VENDOR,
            answer.status,
            &answer.headers,
            &message,
            &format!(
                "check that source {}'s app registration has the application permissions User.Read.All and GroupMember.Read.All, admin-consented",
                self.config.source
            ),
        )
        .into())
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.graph)
    }

    fn person(&self, u: &Value) -> Option<SourcePerson> {
        let id = text(u, "id")?;
        let raw = match u.get("accountEnabled").and_then(Value::as_bool) {
            Some(enabled) => entra_enabled(enabled).to_string(),
            None => String::new(),
        };
        let mut p = SourcePerson::new(id, &raw, lifecycle::map(SourceKind::Entra, &raw));
        let upn = text(u, "userPrincipalName");
        p.email = text(u, "mail")
            .and_then(|m| Email::parse(&m).ok())
            .or_else(|| upn.as_deref().and_then(|l| Email::parse(l).ok()));
        let others = u
            .get("otherMails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string));
        for alias in upn.into_iter().chain(others) {
            if let Ok(a) = Email::parse(&alias)
                && Some(&a) != p.email.as_ref()
                && !p.aliases.contains(&a)
            {
                p.aliases.push(a);
            }
        }
        p.first_name = text(u, "givenName").unwrap_or_default();
        p.last_name = text(u, "surname").unwrap_or_default();
        p.employee_id = text(u, "employeeId").map(EmployeeId::new);
        p.department = text(u, "department");
        p.cost_center = u.get("employeeOrgData").and_then(|o| text(o, "costCenter"));
        let manager = u.get("manager").and_then(|m| text(m, "id")).or_else(|| {
            u.get("manager@delta")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|m| text(m, "id"))
        });
        p.manager = manager.map(ManagerRef::Id);
        p.start_date = text(u, "employeeHireDate").and_then(|d| parse_date(&d));
        p.end_date = text(u, "employeeLeaveDateTime").and_then(|d| parse_date(&d));
        for k in ["jobTitle", "displayName"]
            .into_iter()
            .chain(self.config.extra_properties.iter().map(String::as_str))
        {
            if let Some(v) = u
                .get(k)
                .and_then(|v| roster_connectors::http::scalar(v, true))
            {
                p.attributes.insert(k.to_string(), v);
            }
        }
        Some(p)
    }
}

#[async_trait]
impl Source for EntraSource {
    /// `POST /users/{id}/revokeSignInSessions`: invalidates the refresh
    /// tokens and session cookies issued to the user (200, `{"value":
    /// true}`). Needs the application permission `User.RevokeSessions.All`.
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let url = format!(
            "{}/users/{}/revokeSignInSessions",
            self.graph,
            enc(person_id)
        );
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .post(&url)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let secrets = [&self.config.client_secret, &token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "the access token was refused; a new one is fetched".into(),
            });
        }
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        let err = body.get("error").cloned().unwrap_or(Value::Null);
        let message = roster_connectors::http::scrub(
            &format!(
                "{}: {}",
                text(&err, "code").unwrap_or_default(),
                text(&err, "message").unwrap_or_else(|| answer.status.to_string())
            ),
            &secrets,
        );
        http::write_outcome(
            VENDOR,
            &answer,
            &message,
            &format!(
                "source {}'s app registration needs the application permission User.RevokeSessions.All, admin-consented (or set revoke_sessions = false)",
                self.config.source
            ),
        )?;
        // Graph says whether it did.
        match body.get("value").and_then(Value::as_bool) {
            Some(true) => Ok(()),
            _ => Err(SourceError::Protocol {
                detail: format!(
                    "Graph answered revokeSignInSessions with HTTP {} but not {{\"value\": true}}",
                    answer.status.as_u16()
                ),
            }),
        }
    }

    fn id(&self) -> &ConnectionId {
        &self.config.source
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::new(SourceKind::Entra)
            .with_incremental(true)
            .with_max_page_size(999)
            .with_rate_limits(self.config.rate_limits.clone())
    }

    async fn validate(&self) -> Result<Validation, SourceError> {
        let mut checks = Vec::new();
        match self.access_token().await {
            Ok(_) => checks.push(ValidationCheck::pass(
                "token",
                "the client credentials work",
            )),
            Err(SourceError::Unauthorized { detail }) => {
                checks.push(ValidationCheck::fail("token", detail));
                return Ok(Validation::new(checks));
            }
            Err(e) => return Err(e),
        }
        for (name, path, need) in [
            (
                "users",
                format!("/users?$top=1&$select={}", enc("id,accountEnabled")),
                "User.Read.All",
            ),
            (
                "groups",
                "/groups?$top=1&$select=id".to_string(),
                "GroupMember.Read.All",
            ),
        ] {
            match self.get(&self.url(&path)).await {
                Ok(_) => checks.push(ValidationCheck::pass(name, format!("{name} can be read"))),
                Err(SourceError::Unauthorized { detail }) => checks.push(ValidationCheck::fail(
                    name,
                    format!("{detail}; grant {need} (application permission, admin consent)"),
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(Validation::new(checks))
    }

    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError> {
        let token = match &req.page_token {
            None => FullToken {
                v: 1,
                entra: Walk::Latest,
                delta_link: None,
            },
            Some(t) => serde_json::from_str::<FullToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Entra source's full read".into(),
                })?,
        };
        let top = req.page_size.unwrap_or(self.config.page_size).clamp(1, 999);
        let mut page = PeoplePage::default();
        let mut delta_link = token.delta_link.clone();
        let next_walk: Option<Walk> = match &token.entra {
            Walk::Latest => {
                let url = self.url(&format!(
                    "/users/delta?$select={}&$deltatoken=latest",
                    enc(&self.select(true))
                ));
                let (_, body) = self.get(&url).await?;
                delta_link =
                    Some(
                        link(&body, "@odata.deltaLink").ok_or_else(|| SourceError::Protocol {
                            detail: "Graph answered $deltatoken=latest without a deltaLink".into(),
                        })?,
                    );
                Some(Walk::Users { url: None })
            }
            Walk::Users { url } => {
                let url = url.clone().unwrap_or_else(|| {
                    self.url(&format!(
                        "/users?$select={}&$top={top}&$expand={}",
                        enc(&self.select(false)),
                        enc("manager($select=id)")
                    ))
                });
                let (_, body) = self.get(&url).await?;
                page.people = array(&body, "user")?
                    .iter()
                    .filter_map(|u| self.person(u))
                    .collect();
                Some(match link(&body, "@odata.nextLink") {
                    Some(n) => Walk::Users { url: Some(n) },
                    None => Walk::Groups { url: None },
                })
            }
            Walk::Groups { url } => {
                let url = url.clone().unwrap_or_else(|| {
                    self.url(&format!(
                        "/groups?$select={}&$top={top}",
                        enc("id,displayName")
                    ))
                });
                let (_, body) = self.get(&url).await?;
                let groups: Vec<(String, String)> = array(&body, "group")?
                    .iter()
                    .filter_map(|g| Some((text(g, "id")?, text(g, "displayName")?)))
                    .collect();
                let more = link(&body, "@odata.nextLink");
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
                        detail: "an Entra page token with no group left".into(),
                    });
                };
                let url = url.clone().unwrap_or_else(|| {
                    self.url(&format!(
                        "/groups/{}/members/microsoft.graph.user?$select=id&$top={top}",
                        enc(gid)
                    ))
                });
                let (_, body) = self.get(&url).await?;
                page.memberships = array(&body, "member")?
                    .iter()
                    .filter_map(|m| text(m, "id"))
                    .map(|id| Membership::new(id, name.clone()))
                    .collect();
                match link(&body, "@odata.nextLink") {
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
                    entra: walk,
                    delta_link,
                })?));
            }
            None => {
                let delta_link = delta_link.ok_or_else(|| SourceError::Protocol {
                    detail: "the full read ended without a deltaLink".into(),
                })?;
                page.cursor = Some(SyncCursor::new(encode(&DeltaCursor { v: 1, delta_link })?));
            }
        }
        Ok(page)
    }

    async fn read_changes(&self, req: ChangesRequest) -> Result<ChangesPage, SourceError> {
        let cursor: DeltaCursor = serde_json::from_str(req.cursor.as_str())
            .ok()
            .filter(|c: &DeltaCursor| c.v == 1)
            .ok_or_else(|| SourceError::CursorExpired {
                detail: "the cursor is not a Graph deltaLink of this source".into(),
            })?;
        let mut token = match &req.page_token {
            None => ChangesToken {
                v: 1,
                ..ChangesToken::default()
            },
            Some(t) => serde_json::from_str::<ChangesToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Entra source's incremental read".into(),
                })?,
        };
        let mut page = ChangesPage::default();
        if !token.delta_done {
            let url = token
                .url
                .clone()
                .unwrap_or_else(|| cursor.delta_link.clone());
            let (_, body) = self.get(&url).await?;
            for u in array(&body, "delta")? {
                let Some(id) = text(u, "id") else { continue };
                if let Some(removed) = u.get("@removed") {
                    let reason = text(removed, "reason").unwrap_or_else(|| "deleted".into());
                    let raw = format!("@removed:{reason}");
                    let lifecycle = lifecycle::map(SourceKind::Entra, &raw);
                    token.pending.retain(|p| p != &id);
                    page.removed.push(Removal::new(id, raw, lifecycle));
                } else if let Some(p) = self.person(u) {
                    if !token.pending.contains(&id) {
                        token.pending.push(id);
                    }
                    page.changed.push(p);
                }
            }
            match (
                link(&body, "@odata.nextLink"),
                link(&body, "@odata.deltaLink"),
            ) {
                (Some(n), _) => token.url = Some(n),
                (None, Some(d)) => {
                    same_origin(&d, &self.graph)?;
                    token.delta_done = true;
                    token.url = None;
                    token.next_cursor = Some(d);
                }
                (None, None) => {
                    return Err(SourceError::Protocol {
                        detail: "a delta page had neither a nextLink nor a deltaLink".into(),
                    });
                }
            }
        } else if let Some(uid) = token.groups_for.clone() {
            let url = token.groups_url.clone().unwrap_or_else(|| {
                self.url(&format!(
                    "/users/{}/memberOf/microsoft.graph.group?$select={}",
                    enc(&uid),
                    enc("id,displayName")
                ))
            });
            match self.get(&url).await {
                Ok((_, body)) => {
                    page.memberships = array(&body, "group")?
                        .iter()
                        .filter_map(|g| text(g, "displayName"))
                        .map(|name| Membership::new(uid.clone(), name))
                        .collect();
                    match link(&body, "@odata.nextLink") {
                        Some(n) => token.groups_url = Some(n),
                        None => {
                            token.groups_for = None;
                            token.groups_url = None;
                        }
                    }
                }
                // Deleted since the delta page: the next round says so.
                Err(SourceError::Vendor { code, .. }) if code == "404" => {
                    token.groups_for = None;
                    token.groups_url = None;
                }
                Err(e) => return Err(e),
            }
        }
        if token.delta_done && token.groups_for.is_none() && !token.pending.is_empty() {
            token.groups_for = Some(token.pending.remove(0));
        }
        if token.delta_done && token.groups_for.is_none() {
            let delta_link = token
                .next_cursor
                .clone()
                .ok_or_else(|| SourceError::Protocol {
                    detail: "the delta round ended without a deltaLink".into(),
                })?;
            page.cursor = Some(SyncCursor::new(encode(&DeltaCursor { v: 1, delta_link })?));
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
    fn graph_users_map_to_people() {
        let s = EntraSource::new(EntraSourceConfig::new(
            ConnectionId::new("entra"),
            "tenant",
            "client",
            SecretString::new("secret"),
        ))
        .unwrap();
        let u = serde_json::json!({
            "id": "u1", "userPrincipalName": "ann@acme.example", "mail": null,
            "otherMails": ["ann@old.example"], "givenName": "Ann", "surname": "Lee",
            "accountEnabled": false, "employeeId": "E7", "department": "Finance",
            "employeeOrgData": {"costCenter": "CC1"}, "jobTitle": "Controller",
            "employeeLeaveDateTime": "2026-03-31T17:00:00Z",
            "manager@delta": [{"id": "u9"}]
        });
        let p = s.person(&u).unwrap();
        assert_eq!(p.email.as_ref().unwrap().as_str(), "ann@acme.example");
        assert_eq!(p.aliases.len(), 1);
        assert_eq!(p.raw_state, "accountEnabled=false");
        assert_eq!(p.status(), roster_core::EmploymentStatus::Terminated);
        assert_eq!(p.cost_center.as_deref(), Some("CC1"));
        assert_eq!(p.manager, Some(ManagerRef::Id("u9".into())));
        assert_eq!(
            p.end_date,
            time::Date::from_calendar_date(2026, time::Month::March, 31).ok()
        );
        // Without accountEnabled (not selected) the state is unknown, and
        // unknown never terminates.
        let p = s.person(&serde_json::json!({"id": "u2"})).unwrap();
        assert_eq!(p.status(), roster_core::EmploymentStatus::Active);
    }
}
