//! Google Workspace as a source of people, through the Admin SDK
//! Directory API (vendor-apis.md §5).
//!
//! # Reads
//!
//! A full read is one walk, one request per call:
//! `GET /admin/directory/v1/users?customer=my_customer&maxResults=500`
//! (following `nextPageToken`), then `GET /admin/directory/v1/groups` and
//! `GET /admin/directory/v1/groups/{id}/members` per group. Groups are
//! named by their email address (unique, and how admins refer to them).
//!
//! Incremental reads are not supported: the Directory API offers push
//! channels (`users.watch`), not a change feed to poll, so the engine reads
//! Google in full on its schedule. A deleted user is simply absent from the
//! next full read (whose result passes the engine's shrink guard).
//!
//! # Authentication
//!
//! A service account with domain-wide delegation: roster signs an RS256
//! assertion (`iss` = the service account, `sub` = the admin it acts as,
//! `scope` = the two read-only scopes below, `aud` = the token endpoint)
//! and trades it for an access token (RFC 7523 `jwt-bearer` grant), cached
//! until a minute before it expires.
//!
//! # Person fields
//!
//! | roster | Google |
//! |---|---|
//! | id | `id` |
//! | email | `primaryEmail` (aliases: `aliases`, other `emails`) |
//! | employee id | `externalIds` of type `organization` |
//! | department, cost center | the primary `organizations` entry's `department`, `costCenter` |
//! | manager | `relations` of type `manager` |
//! | attributes | `orgUnitPath` |
//! | state | `suspended`, `archived`, mapped by [`crate::lifecycle`] (archived wins) |
//!
//! # Configuration
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `service_account` | the service account's email | required |
//! | `private_key` | a secret reference to its PEM key (the JSON key file's `private_key`) | required |
//! | `admin` | the admin the service account acts as | required |
//! | `customer` | the customer id | `my_customer` |
//! | `api_url`, `token_url` | `https://admin.googleapis.com`, `https://oauth2.googleapis.com/token` | |
//! | `rate_limit` | requests per minute roster may send | 1200 |
//!
//! # Least privilege
//!
//! In the Admin console (Security → API controls → Domain-wide
//! delegation), grant the service account's client id only
//! `https://www.googleapis.com/auth/admin.directory.user.readonly` and
//! `https://www.googleapis.com/auth/admin.directory.group.readonly`; the
//! `admin` it acts as needs no more than an admin role with *Users: Read*
//! and *Groups: Read*.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use roster_connectors::http::{Answer, text};
use roster_connectors::{SecretString, Validation, ValidationCheck};
use roster_core::{ConnectionId, Email, EmployeeId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::http::{self, enc};
use crate::lifecycle::{self, google_state};
use crate::{
    ChangesPage, ChangesRequest, ManagerRef, Membership, PageRequest, PageToken, PeoplePage,
    RateWindow, Source, SourceCapabilities, SourceError, SourceKind, SourcePerson, jwt,
};

const VENDOR: &str = "Google Workspace";
pub const USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUP_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// The scope `users.signOut` needs (only with `revoke_sessions`).
pub const SECURITY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const RATE_REASONS: [&str; 3] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
];

#[derive(Clone)]
pub struct GoogleSourceConfig {
    pub source: ConnectionId,
    pub service_account: String,
    pub private_key: SecretString,
    pub admin: String,
    pub customer: String,
    pub api_url: String,
    pub token_url: String,
    pub page_size: u32,
    pub rate_limit: RateWindow,
    pub timeout: Duration,
    pub allow_private_network: bool,
    /// Ask for [`SECURITY_SCOPE`] too, so offboardings can sign people
    /// out ([`Source::revoke_sessions`]). Domain-wide delegation must
    /// grant it, or Google refuses every token (reads too).
    pub revoke_sessions: bool,
}

impl GoogleSourceConfig {
    pub fn new(
        source: ConnectionId,
        service_account: impl Into<String>,
        private_key: SecretString,
        admin: impl Into<String>,
    ) -> Self {
        GoogleSourceConfig {
            source,
            service_account: service_account.into(),
            private_key,
            admin: admin.into(),
            customer: "my_customer".into(),
            api_url: "https://admin.googleapis.com".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            page_size: 500,
            rate_limit: RateWindow::new(1200, Duration::from_secs(60)),
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            revoke_sessions: false,
        }
    }
}

impl std::fmt::Debug for GoogleSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSourceConfig")
            .field("source", &self.source)
            .field("service_account", &self.service_account)
            .field("private_key", &self.private_key)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Walk {
    Users {
        page: Option<String>,
    },
    Groups {
        page: Option<String>,
    },
    Members {
        groups: Vec<(String, String)>,
        page: Option<String>,
        more_groups: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FullToken {
    v: u8,
    google: Walk,
}

pub struct GoogleSource {
    config: GoogleSourceConfig,
    api: String,
    key: ring::signature::RsaKeyPair,
    client: reqwest::Client,
    token: Mutex<Option<(SecretString, Instant)>>,
}

fn encode<T: Serialize>(t: &T) -> Result<String, SourceError> {
    serde_json::to_string(t).map_err(|e| SourceError::Protocol {
        detail: format!("cannot encode a page token: {e}"),
    })
}

impl GoogleSource {
    pub fn new(config: GoogleSourceConfig) -> Result<Self, SourceError> {
        let api = http::base_url(&config.api_url, VENDOR)?;
        http::base_url(&config.token_url, VENDOR)?;
        if config.service_account.trim().is_empty() || config.admin.trim().is_empty() {
            return Err(SourceError::Config {
                detail: format!(
                    "{}: service_account and admin are required (a service account with domain-wide delegation, acting as a read-only admin)",
                    config.source
                ),
            });
        }
        let key = jwt::rsa_key(&config.private_key).map_err(|e| SourceError::Config {
            detail: format!("{}: private_key: {e}", config.source),
        })?;
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(GoogleSource {
            config,
            api,
            key,
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
        let now = jwt::now_secs();
        let assertion = jwt::sign(
            &self.key,
            None,
            &json!({
                "iss": self.config.service_account.trim(),
                "sub": self.config.admin.trim(),
                "scope": if self.config.revoke_sessions {
                    format!("{USER_SCOPE} {GROUP_SCOPE} {SECURITY_SCOPE}")
                } else {
                    format!("{USER_SCOPE} {GROUP_SCOPE}")
                },
                "aud": self.config.token_url,
                "iat": now,
                "exp": now + 3600,
            }),
        )?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let answer = http::send(
            "Google's token endpoint",
            self.client.post(&self.config.token_url).form(&form),
            &[],
        )
        .await?;
        let body = answer.json("Google's token endpoint")?;
        if !answer.status.is_success() {
            let message = match (text(&body, "error"), text(&body, "error_description")) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                _ => answer.status.to_string(),
            };
            return Err(match answer.status.as_u16() {
                400 | 401 | 403 => SourceError::Unauthorized {
                    detail: format!(
                        "Google refused source {}'s service account ({message}); check the key, and that domain-wide delegation grants its client id the directory read-only scopes for {}",
                        self.config.source, self.config.admin
                    ),
                },
                _ => roster_connectors::http::status_error(
                    "Google's token endpoint",
                    answer.status,
                    &answer.headers,
                    &message,
                    "",
                )
                .into(),
            });
        }
        let token = text(&body, "access_token").ok_or_else(|| SourceError::Protocol {
            detail: "Google's token answer has no access_token".into(),
        })?;
        let ttl = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3599);
        let until = Instant::now() + Duration::from_secs(ttl.saturating_sub(60).max(1));
        let token = SecretString::new(token);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), until));
        Ok((token, true))
    }

    async fn get(&self, path_and_query: &str) -> Result<(Answer, Value), SourceError> {
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .get(format!("{}{path_and_query}", self.api))
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(ACCEPT, "application/json");
        let secrets = [&token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            answer.json(VENDOR)?
        };
        if answer.status.is_success() {
            return Ok((answer, body));
        }
        let err = body.get("error").cloned().unwrap_or(Value::Null);
        let reason = err
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| text(e, "reason"))
            .unwrap_or_default();
        let status = answer.status.as_u16();
        // Google says "slow down" with 429, or with 403 and a rate reason.
        if status == 429 || (status == 403 && RATE_REASONS.contains(&reason.as_str())) {
            return Err(SourceError::RateLimited {
                retry_after: roster_connectors::http::retry_after(&answer.headers),
            });
        }
        if status == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "Google refused the access token; a new one is fetched".into(),
            });
        }
        let message = roster_connectors::http::scrub(
            &text(&err, "message").unwrap_or_else(|| answer.status.to_string()),
            &secrets,
        );
        Err(roster_connectors::http::status_error(
            VENDOR,
            answer.status,
            &answer.headers,
            &message,
            &format!(
                "check source {}'s domain-wide delegation scopes and that {} may read users and groups",
                self.config.source, self.config.admin
            ),
        )
        .into())
    }

    fn person(u: &Value) -> Option<SourcePerson> {
        let id = text(u, "id")?;
        let flag = |k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
        let raw = google_state(flag("suspended"), flag("archived"));
        let mut p = SourcePerson::new(id, raw, lifecycle::map(SourceKind::Google, raw));
        p.email = text(u, "primaryEmail").and_then(|e| Email::parse(&e).ok());
        let aliases = u
            .get("aliases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string));
        let emails = u
            .get("emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| text(e, "address"));
        for a in aliases.chain(emails) {
            if let Ok(a) = Email::parse(&a)
                && Some(&a) != p.email.as_ref()
                && !p.aliases.contains(&a)
            {
                p.aliases.push(a);
            }
        }
        if let Some(n) = u.get("name") {
            p.first_name = text(n, "givenName").unwrap_or_default();
            p.last_name = text(n, "familyName").unwrap_or_default();
        }
        let typed = |key: &str, kind: &str| {
            u.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| text(e, "type").as_deref() == Some(kind))
                .and_then(|e| text(e, "value"))
        };
        p.employee_id = typed("externalIds", "organization").map(EmployeeId::new);
        p.manager = typed("relations", "manager")
            .and_then(|m| Email::parse(&m).ok())
            .map(ManagerRef::Email);
        let orgs: Vec<&Value> = u
            .get("organizations")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let org = orgs
            .iter()
            .find(|o| o.get("primary").and_then(Value::as_bool) == Some(true))
            .or(orgs.first());
        if let Some(o) = org {
            p.department = text(o, "department");
            p.cost_center = text(o, "costCenter");
        }
        if let Some(path) = text(u, "orgUnitPath") {
            p.attributes.insert("orgUnitPath".into(), path);
        }
        Some(p)
    }
}

fn list<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    // Google leaves the key out of an empty page.
    body.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[async_trait]
impl Source for GoogleSource {
    /// `POST /admin/directory/v1/users/{userKey}/signOut`: signs the user
    /// out of every web and device session and resets their sign-in
    /// cookies (204). Needs `admin.directory.user.security`.
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let (token, fresh) = self.access_token().await?;
        let req = self
            .client
            .post(format!(
                "{}/admin/directory/v1/users/{}/signOut",
                self.api,
                enc(person_id)
            ))
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .header(ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let secrets = [&token];
        let answer = http::send(VENDOR, req, &secrets).await?;
        if answer.status.as_u16() == 401 && !fresh {
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SourceError::Transient {
                detail: "Google refused the access token; a new one is fetched".into(),
            });
        }
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        let err = body.get("error").cloned().unwrap_or(Value::Null);
        let reason = err
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| text(e, "reason"))
            .unwrap_or_default();
        if answer.status.as_u16() == 403 && RATE_REASONS.contains(&reason.as_str()) {
            return Err(SourceError::RateLimited {
                retry_after: roster_connectors::http::retry_after(&answer.headers),
            });
        }
        let message = roster_connectors::http::scrub(
            &text(&err, "message").unwrap_or_else(|| answer.status.to_string()),
            &secrets,
        );
        http::write_outcome(
            VENDOR,
            &answer,
            &message,
            &format!(
                "domain-wide delegation must grant source {}'s service account {SECURITY_SCOPE} (or set revoke_sessions = false)",
                self.config.source
            ),
        )
    }

    fn id(&self) -> &ConnectionId {
        &self.config.source
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::new(SourceKind::Google)
            .with_max_page_size(500)
            .with_rate_limits(vec![self.config.rate_limit])
    }

    async fn validate(&self) -> Result<Validation, SourceError> {
        let mut checks = Vec::new();
        for (name, path) in [
            (
                "users",
                format!(
                    "/admin/directory/v1/users?customer={}&maxResults=1",
                    enc(&self.config.customer)
                ),
            ),
            (
                "groups",
                format!(
                    "/admin/directory/v1/groups?customer={}&maxResults=1",
                    enc(&self.config.customer)
                ),
            ),
        ] {
            match self.get(&path).await {
                Ok(_) => checks.push(ValidationCheck::pass(name, format!("{name} can be read"))),
                Err(SourceError::Unauthorized { detail }) => {
                    checks.push(ValidationCheck::fail(name, detail))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Validation::new(checks))
    }

    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError> {
        let walk = match &req.page_token {
            None => Walk::Users { page: None },
            Some(t) => serde_json::from_str::<FullToken>(t.as_str())
                .ok()
                .filter(|t| t.v == 1)
                .map(|t| t.google)
                .ok_or_else(|| SourceError::BadToken {
                    detail: "not a page token of this Google source".into(),
                })?,
        };
        let customer = enc(&self.config.customer);
        let page_q = |p: &Option<String>| {
            p.as_deref()
                .map(|t| format!("&pageToken={}", enc(t)))
                .unwrap_or_default()
        };
        let mut out = PeoplePage::default();
        let next: Option<Walk> = match &walk {
            Walk::Users { page } => {
                let max = req.page_size.unwrap_or(self.config.page_size).clamp(1, 500);
                let (_, body) = self
                    .get(&format!(
                        "/admin/directory/v1/users?customer={customer}&maxResults={max}&projection=full{}",
                        page_q(page)
                    ))
                    .await?;
                out.people = list(&body, "users")
                    .iter()
                    .filter_map(Self::person)
                    .collect();
                Some(match text(&body, "nextPageToken") {
                    Some(n) => Walk::Users { page: Some(n) },
                    None => Walk::Groups { page: None },
                })
            }
            Walk::Groups { page } => {
                let max = req.page_size.unwrap_or(200).clamp(1, 200);
                let (_, body) = self
                    .get(&format!(
                        "/admin/directory/v1/groups?customer={customer}&maxResults={max}{}",
                        page_q(page)
                    ))
                    .await?;
                let groups: Vec<(String, String)> = list(&body, "groups")
                    .iter()
                    .filter_map(|g| Some((text(g, "id")?, text(g, "email")?)))
                    .collect();
                let more = text(&body, "nextPageToken");
                if groups.is_empty() {
                    more.map(|n| Walk::Groups { page: Some(n) })
                } else {
                    Some(Walk::Members {
                        groups,
                        page: None,
                        more_groups: more,
                    })
                }
            }
            Walk::Members {
                groups,
                page,
                more_groups,
            } => {
                let Some((gid, name)) = groups.first() else {
                    return Err(SourceError::BadToken {
                        detail: "a Google page token with no group left".into(),
                    });
                };
                let max = req.page_size.unwrap_or(200).clamp(1, 200);
                let (_, body) = self
                    .get(&format!(
                        "/admin/directory/v1/groups/{}/members?maxResults={max}{}",
                        enc(gid),
                        page_q(page)
                    ))
                    .await?;
                out.memberships = list(&body, "members")
                    .iter()
                    .filter(|m| text(m, "type").is_none_or(|t| t == "USER"))
                    .filter_map(|m| text(m, "id"))
                    .map(|id| Membership::new(id, name.clone()))
                    .collect();
                match text(&body, "nextPageToken") {
                    Some(n) => Some(Walk::Members {
                        groups: groups.clone(),
                        page: Some(n),
                        more_groups: more_groups.clone(),
                    }),
                    None if groups.len() > 1 => Some(Walk::Members {
                        groups: groups[1..].to_vec(),
                        page: None,
                        more_groups: more_groups.clone(),
                    }),
                    None => more_groups.clone().map(|n| Walk::Groups { page: Some(n) }),
                }
            }
        };
        if let Some(w) = next {
            out.next = Some(PageToken::new(encode(&FullToken { v: 1, google: w })?));
        }
        Ok(out)
    }

    async fn read_changes(&self, _req: ChangesRequest) -> Result<ChangesPage, SourceError> {
        Err(SourceError::Unsupported {
            what: "incremental reads from Google Workspace (read it in full)".into(),
        })
    }
}
