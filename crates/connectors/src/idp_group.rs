//! The `idp` path by group membership: roster adds a person to, or removes
//! them from, an **allowlisted** group that assigns the app in the IdP, and
//! the IdP's own provisioning connector (SCIM) carries the change into the
//! app. This is how most companies assign apps. Okta (groups), Entra ID
//! (groups) and OneLogin (roles, OneLogin's groups for app access).
//!
//! # The allowlist
//!
//! A connection names the groups it may touch (`groups = ["BILL Users"]`,
//! display names; the first is where new members go). roster only ever
//! adds or removes members of those groups, never of any other group: an
//! action that asks for another group (`group` attribute) is refused
//! before any request, with [`REFUSED_GROUP`] in its reason. Names are
//! resolved to ids once (exact match; a name two groups share is refused,
//! since either might be the wrong one).
//!
//! # Requests
//!
//! | | Okta | Entra ID (Graph) | OneLogin |
//! |---|---|---|---|
//! | find group | `GET /api/v1/groups?q=` | `GET /groups?$filter=displayName eq ''` | `GET /api/2/roles?name=` |
//! | members | `GET /api/v1/groups/{g}/users` | `GET /groups/{g}/members/microsoft.graph.user` | `GET /api/2/roles/{r}/users` |
//! | add | `PUT /api/v1/groups/{g}/users/{u}` | `POST /groups/{g}/members/$ref` | `POST /api/2/roles/{r}/users` `[u]` |
//! | remove | `DELETE /api/v1/groups/{g}/users/{u}` | `DELETE /groups/{g}/members/{u}/$ref` | `DELETE /api/2/roles/{r}/users` `[u]` |
//! | provisioning on? | `GET /api/v1/apps/{app}`: `status` ACTIVE and the push `features` | `GET /servicePrincipals/{sp}/synchronization/jobs`: `status.code` Active | `GET /api/2/apps/{app}`: `provisioning.enabled` |
//! | outcome | `GET /api/v1/apps/{app}/users/{u}`: `syncState` | `GET /auditLogs/provisioning?$filter=servicePrincipal/id eq '' and sourceIdentity/id eq ''` | `GET /api/2/users/{u}/apps`: the app's `provisioning_status` |
//!
//! # Verifying the IdP's provisioning outcome
//!
//! A group change only matters if the IdP then provisions the app, and
//! "attribute mismatches silently fail provisioning". So a write is
//! `Applied` only when the IdP's own record says provisioning succeeded:
//! after the membership change, the same call reads the outcome for that
//! person. A failure (Okta `syncState` ERROR, an Entra provisioning log
//! with status `failure`, OneLogin's failed provisioning status) comes
//! back as a **retryable** failure carrying the IdP's error text, so the
//! engine's executor retries it on its one retry policy (re-sending the
//! membership change is harmless: adds and removes are idempotent here),
//! and once attempts run out the dead letter becomes a person's task
//! ([`Capabilities::failures_to_people`]). No outcome yet (the IdP's cycle
//! has not run; Entra's runs every ~40 minutes) is retryable too.
//!
//! Removing a person who still holds the app another way is not reported
//! as done: a direct assignment is removed where the IdP has one roster
//! may remove (Okta app users with `scope: USER`); an assignment through a
//! group outside the allowlist fails, non-retryable, naming it. Entra's
//! direct `appRoleAssignments` are not touched (that needs
//! `AppRoleAssignment.ReadWrite.All`, which can grant itself anything):
//! assign Entra apps to groups.
//!
//! # Provisioning switched off
//!
//! [`Connector::validate`] fails, naming the switch to turn on, when the
//! IdP app does not provision. Every read checks it too (its first request)
//! and remembers the answer; while it is off, [`Connector::capabilities`]
//! offers no writes, so the engine turns the connection's changes into
//! people's tasks instead of changing groups that provision nothing.
//!
//! # Calls
//!
//! One connector call makes a bounded handful of requests (token, group
//! lookup once, the change, the outcome read), so the limits declared to
//! the driver are a quarter of the IdP's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use roster_core::{Account, AccountKey, Action, ConnectionId, Email, Operation};
use serde_json::{Value, json};

use crate::http::{self, Answer, text};
use crate::okta_assign::next_link;
use crate::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, Merge, OperationSupport, Page, PageToken, RateWindow, SecretString, Validation,
    ValidationCheck,
};

/// The code in the reason of an action refused because it names a group
/// outside the connection's allowlist.
pub const REFUSED_GROUP: &str = "CONN-IDP-0001";
/// The code in the reason of a write refused because the IdP app does not
/// provision.
pub const PROVISIONING_OFF: &str = "CONN-IDP-0002";
/// The code in the reason of a provisioning failure the IdP reported.
pub const PROVISIONING_FAILED: &str = "CONN-IDP-0003";

pub mod attr {
    /// The allowlisted groups the person is in, comma-joined (read), or the
    /// one group an action asks for (write).
    pub const GROUP: &str = "group";
    pub const GROUPS: &str = "groups";
    pub const EMAIL: &str = "email";
}

/// Which IdP a connection drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idp {
    Okta,
    Entra,
    OneLogin,
}

impl Idp {
    /// `okta`; `entra-id` (also `entra`, `azure-ad`); `onelogin`.
    pub fn parse(s: &str) -> Option<Idp> {
        match s.trim().to_ascii_lowercase().as_str() {
            "okta" => Some(Idp::Okta),
            "entra" | "entra-id" | "entra_id" | "azure-ad" | "azuread" => Some(Idp::Entra),
            "onelogin" | "one-login" => Some(Idp::OneLogin),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Idp::Okta => "Okta",
            Idp::Entra => "Entra ID",
            Idp::OneLogin => "OneLogin",
        }
    }
    fn group_word(self) -> &'static str {
        match self {
            Idp::OneLogin => "role",
            _ => "group",
        }
    }
}

#[derive(Clone)]
pub struct IdpGroupConfig {
    pub connection: ConnectionId,
    pub idp: Idp,
    /// Okta: the org URL. Entra: Graph's base with its version
    /// (`https://graph.microsoft.com/v1.0`). OneLogin: `https://<sub>.onelogin.com`.
    pub base_url: String,
    /// Entra: the identity platform (`https://login.microsoftonline.com`).
    pub login_url: Option<String>,
    /// Entra: the tenant id or domain.
    pub tenant: Option<String>,
    /// Entra and OneLogin: the API client id.
    pub client_id: Option<String>,
    /// Okta: API token (`SSWS`). Entra and OneLogin: the client secret.
    pub secret: SecretString,
    /// The app in the IdP: Okta app id, Entra servicePrincipal object id,
    /// OneLogin app id.
    pub app_id: String,
    /// The allowlist, by display name; new members go to the first.
    pub groups: Vec<String>,
    /// The app's name, for messages.
    pub app_name: String,
    pub page_size: u32,
    pub timeout: Duration,
    pub allow_private_network: bool,
    /// The IdP's limit for these endpoints; the driver gets a quarter.
    pub rate_limit: RateWindow,
}

impl IdpGroupConfig {
    pub fn new(
        connection: ConnectionId,
        idp: Idp,
        base_url: impl Into<String>,
        secret: SecretString,
        app_id: impl Into<String>,
        groups: Vec<String>,
    ) -> Self {
        IdpGroupConfig {
            app_name: connection.to_string(),
            connection,
            idp,
            base_url: base_url.into(),
            login_url: None,
            tenant: None,
            client_id: None,
            secret,
            app_id: app_id.into(),
            groups,
            page_size: 100,
            timeout: Duration::from_secs(30),
            allow_private_network: false,
            rate_limit: match idp {
                Idp::Okta => RateWindow::new(600, Duration::from_secs(60)),
                // Graph's directory writes and OneLogin's API allow more;
                // these stay well inside both.
                Idp::Entra => RateWindow::new(3000, Duration::from_secs(300)),
                Idp::OneLogin => RateWindow::new(5000, Duration::from_secs(3600)),
            },
        }
    }
}

impl std::fmt::Debug for IdpGroupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpGroupConfig")
            .field("connection", &self.connection)
            .field("idp", &self.idp)
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("app_id", &self.app_id)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// What the latest read found about the IdP app's provisioning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProvisioningState {
    On,
    /// Off, with what to do about it.
    Off(String),
}

pub struct IdpGroupConnector {
    config: IdpGroupConfig,
    base: String,
    client: reqwest::Client,
    token: Mutex<Option<(SecretString, Instant)>>,
    /// Allowlisted group name → id, once resolved.
    group_ids: Mutex<Option<Vec<(String, String)>>>,
    provisioning: Mutex<Option<ProvisioningState>>,
}

const TOKEN_PREFIX: &str = "idpg:";

/// One page position: the allowlisted group (by index) and the IdP's own
/// continuation for it (a next link or cursor).
fn encode_token(group: usize, next: Option<&str>) -> PageToken {
    PageToken::new(format!("{TOKEN_PREFIX}{group}:{}", next.unwrap_or("")))
}

fn decode_token(t: &PageToken) -> Option<(usize, Option<String>)> {
    let rest = t.as_str().strip_prefix(TOKEN_PREFIX)?;
    let (g, next) = rest.split_once(':')?;
    Some((
        g.parse().ok()?,
        (!next.is_empty()).then(|| next.to_string()),
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What one outcome read found.
enum Outcome {
    Done,
    Failed(String),
    Pending(String),
    /// Still assigned in a way roster may not change.
    Blocked(String),
}

impl IdpGroupConnector {
    pub fn new(config: IdpGroupConfig) -> Result<Self, ConnectorError> {
        let base = http::base_url(&config.base_url, config.idp.name())?;
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConnectorError::Config {
                    detail: format!("{}: {what} is required", config.connection),
                })
            }
        };
        need(!config.secret.expose_secret().is_empty(), "a secret")?;
        need(
            !config.app_id.trim().is_empty(),
            "idp_app_id (the app's id in the IdP)",
        )?;
        need(
            !config.groups.is_empty() && config.groups.iter().all(|g| !g.trim().is_empty()),
            "groups (the allowlisted groups roster may change)",
        )?;
        match config.idp {
            Idp::Entra => {
                need(config.tenant.is_some(), "options.tenant (the Entra tenant)")?;
                need(config.client_id.is_some(), "username (the app's client id)")?;
            }
            Idp::OneLogin => need(config.client_id.is_some(), "username (the API client id)")?,
            Idp::Okta => {}
        }
        let client = http::client(config.timeout, config.allow_private_network)?;
        Ok(IdpGroupConnector {
            config,
            base,
            client,
            token: Mutex::new(None),
            group_ids: Mutex::new(None),
            provisioning: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &IdpGroupConfig {
        &self.config
    }

    /// What the latest read or validation found about provisioning.
    pub fn provisioning(&self) -> Option<ProvisioningState> {
        lock(&self.provisioning).clone()
    }

    fn idp(&self) -> Idp {
        self.config.idp
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn secrets(&self) -> Vec<&SecretString> {
        vec![&self.config.secret]
    }

    /// An access token (Entra, OneLogin), cached until a minute before it
    /// expires.
    async fn access_token(&self) -> Result<SecretString, ConnectorError> {
        if let Some((t, until)) = lock(&self.token).clone()
            && Instant::now() < until
        {
            return Ok(t);
        }
        let client_id = self.config.client_id.clone().unwrap_or_default();
        let req = match self.idp() {
            Idp::Entra => {
                let login = self
                    .config
                    .login_url
                    .clone()
                    .unwrap_or_else(|| "https://login.microsoftonline.com".into());
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    http::base_url(&login, "Entra login_url")?,
                    self.config.tenant.clone().unwrap_or_default()
                );
                let form = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    enc(&client_id),
                    enc(self.config.secret.expose_secret()),
                    enc("https://graph.microsoft.com/.default")
                );
                self.client
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form)
            }
            Idp::OneLogin => self
                .client
                .post(self.url("/auth/oauth2/v2/token"))
                .basic_auth(&client_id, Some(self.config.secret.expose_secret()))
                .header(CONTENT_TYPE, "application/json")
                .body(json!({"grant_type": "client_credentials"}).to_string()),
            Idp::Okta => return Ok(self.config.secret.clone()),
        };
        let answer = Answer::of(self.idp().name(), req, &self.secrets()).await?;
        if !answer.status.is_success() {
            return Err(http::status_error(
                self.idp().name(),
                answer.status,
                &answer.headers,
                &http::scrub(&answer.text, &self.secrets()),
                &format!(
                    "check the client id and secret of {} in {}",
                    self.config.connection,
                    self.idp().name()
                ),
            ));
        }
        let body = answer.json(self.idp().name())?;
        let token = text(&body, "access_token").ok_or_else(|| ConnectorError::Protocol {
            detail: format!(
                "{} answered a token without access_token",
                self.idp().name()
            ),
        })?;
        let secs = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        let until = Instant::now() + Duration::from_secs(secs.saturating_sub(60).max(1));
        let token = SecretString::new(token);
        *lock(&self.token) = Some((token.clone(), until));
        Ok(token)
    }

    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        let auth = match self.idp() {
            Idp::Okta => format!("SSWS {}", self.config.secret.expose_secret()),
            _ => format!("Bearer {}", self.access_token().await?.expose_secret()),
        };
        Ok(self
            .client
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json"))
    }

    /// Sends, classifies the status and parses the body (`Null` when empty).
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(Answer, Value), ConnectorError> {
        let vendor = self.idp().name();
        let token = lock(&self.token).clone().map(|(t, _)| t);
        let mut secrets = self.secrets();
        if let Some(t) = &token {
            secrets.push(t);
        }
        let answer = Answer::of(vendor, req, &secrets).await?;
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            answer.json(vendor)?
        };
        let message = match self.idp() {
            Idp::Okta => match (text(&body, "errorCode"), text(&body, "errorSummary")) {
                (Some(c), Some(s)) => Some(format!("{c}: {s}")),
                _ => None,
            },
            Idp::Entra => body.get("error").and_then(|e| {
                Some(format!(
                    "{}: {}",
                    text(e, "code").unwrap_or_default(),
                    text(e, "message")?
                ))
            }),
            Idp::OneLogin => text(&body, "message").map(|m| {
                format!(
                    "{}{m}",
                    text(&body, "name")
                        .map(|n| format!("{n}: "))
                        .unwrap_or_default()
                )
            }),
        };
        if !answer.status.is_success() {
            if answer.status.as_u16() == 401 && self.idp() != Idp::Okta {
                // A cached token may have expired under us: drop it; a
                // retry fetches a new one.
                *lock(&self.token) = None;
            }
            return Err(http::status_error(
                vendor,
                answer.status,
                &answer.headers,
                &http::scrub(
                    &message.unwrap_or_else(|| answer.status.to_string()),
                    &secrets,
                ),
                &format!(
                    "check the {vendor} credentials of {} and their permissions (see the README's idp section)",
                    self.config.connection
                ),
            ));
        }
        if let Some(m) = message {
            // An error inside a success answer.
            return Err(ConnectorError::Transient {
                detail: format!(
                    "{vendor} answered HTTP {} with an error: {m}",
                    answer.status
                ),
            });
        }
        Ok((answer, body))
    }

    async fn get(&self, url: &str) -> Result<(Answer, Value), ConnectorError> {
        self.call(self.request(reqwest::Method::GET, url).await?)
            .await
    }

    // ----- groups ---------------------------------------------------------

    /// The allowlist as (name, id), resolving names on first use.
    async fn groups(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        if let Some(g) = lock(&self.group_ids).clone() {
            return Ok(g);
        }
        let mut out = Vec::new();
        for name in &self.config.groups {
            let url = match self.idp() {
                Idp::Okta => self.url(&format!("/api/v1/groups?q={}&limit=200", enc(name))),
                Idp::Entra => self.url(&format!(
                    "/groups?$filter={}&$select=id,displayName",
                    enc(&format!("displayName eq '{}'", name.replace('\'', "''")))
                )),
                Idp::OneLogin => self.url(&format!("/api/2/roles?name={}", enc(name))),
            };
            let (_, body) = self.get(&url).await?;
            let list = match self.idp() {
                Idp::Entra => body.get("value").cloned().unwrap_or(Value::Null),
                _ => body,
            };
            let items = list.as_array().ok_or_else(|| ConnectorError::Protocol {
                detail: format!("{} answered a group search with no list", self.idp().name()),
            })?;
            let mut found: Vec<String> = Vec::new();
            for g in items {
                let n = match self.idp() {
                    Idp::Okta => g.get("profile").and_then(|p| text(p, "name")),
                    Idp::Entra => text(g, "displayName"),
                    Idp::OneLogin => text(g, "name"),
                };
                // An entry without a name or id is a garbled answer, not
                // a missing group (which would blame the configuration).
                let (Some(n), Some(id)) = (n, text(g, "id")) else {
                    return Err(ConnectorError::Protocol {
                        detail: format!(
                            "{} answered a group search with an entry without a name or id",
                            self.idp().name()
                        ),
                    });
                };
                if n == *name {
                    found.push(id);
                }
            }
            let word = self.idp().group_word();
            match found.as_slice() {
                [id] => out.push((name.clone(), id.clone())),
                [] => {
                    return Err(ConnectorError::Config {
                        detail: format!(
                            "{}: {} has no {word} named {name:?}; create it (and assign {} to it) or fix groups in the connection",
                            self.config.connection,
                            self.idp().name(),
                            self.config.app_name
                        ),
                    });
                }
                _ => {
                    return Err(ConnectorError::Config {
                        detail: format!(
                            "{}: {} {word}s are named {name:?}; roster will not guess which one is allowlisted: rename one",
                            self.config.connection,
                            found.len()
                        ),
                    });
                }
            }
        }
        *lock(&self.group_ids) = Some(out.clone());
        Ok(out)
    }

    /// The allowlisted group an action asks for: its `group` attribute, or
    /// the first allowlisted group. `Err` when it names another group.
    fn target_group<'g>(
        &self,
        a: &Action,
        groups: &'g [(String, String)],
    ) -> Result<&'g (String, String), ActionResult> {
        match a.attributes.get(attr::GROUP).map(|g| g.trim()) {
            None | Some("") => groups.first().ok_or_else(|| {
                ActionResult::failed("no allowlisted group is configured", false)
            }),
            Some(wanted) => groups.iter().find(|(n, id)| n == wanted || id == wanted).ok_or_else(|| {
                ActionResult::failed(
                    format!(
                        "{REFUSED_GROUP} {} {} {wanted:?} is not in the allowlist of {} ({}); roster only changes allowlisted {}s: add it to groups in the connection if it should",
                        self.idp().name(),
                        self.idp().group_word(),
                        self.config.connection,
                        self.config.groups.join(", "),
                        self.idp().group_word()
                    ),
                    false,
                )
            }),
        }
    }

    // ----- provisioning switch --------------------------------------------

    /// Reads whether the IdP app provisions (one request).
    async fn check_provisioning(&self) -> Result<ProvisioningState, ConnectorError> {
        let app = &self.config.app_id;
        let name = &self.config.app_name;
        let state = match self.idp() {
            Idp::Okta => {
                let (_, body) = self.get(&self.url(&format!("/api/v1/apps/{app}"))).await?;
                let label = text(&body, "label").unwrap_or_else(|| app.clone());
                let features: BTreeSet<String> = body
                    .get("features")
                    .and_then(Value::as_array)
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let missing: Vec<&str> = [
                    ("PUSH_NEW_USERS", "Create Users"),
                    ("PUSH_USER_DEACTIVATION", "Deactivate Users"),
                ]
                .into_iter()
                .filter(|(f, _)| !features.contains(*f))
                .map(|(_, c)| c)
                .collect();
                if text(&body, "status").is_some_and(|s| s != "ACTIVE") {
                    ProvisioningState::Off(format!(
                        "the Okta app {label:?} is not ACTIVE: activate it in the Okta Admin Console (Applications → {label})"
                    ))
                } else if !missing.is_empty() {
                    ProvisioningState::Off(format!(
                        "the Okta app {label:?} does not push to {name} ({} off): in the Okta Admin Console open Applications → {label} → Provisioning → To App, click Edit and enable {}",
                        missing.join(", "),
                        missing.join(" and ")
                    ))
                } else {
                    ProvisioningState::On
                }
            }
            Idp::Entra => {
                let (_, body) = self
                    .get(&self.url(&format!("/servicePrincipals/{app}/synchronization/jobs")))
                    .await?;
                let codes: Vec<String> = body
                    .get("value")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(|j| j.get("status").and_then(|s| text(s, "code")))
                            .collect()
                    })
                    .unwrap_or_default();
                if codes.iter().any(|c| c == "Active") {
                    ProvisioningState::On
                } else {
                    ProvisioningState::Off(format!(
                        "the Entra enterprise app {app} has no active provisioning job (found: {}): in the Entra admin center open Enterprise applications → {name} → Provisioning, set Provisioning Status to On and save (a job in quarantine: fix its error, then restart provisioning)",
                        if codes.is_empty() {
                            "none".to_string()
                        } else {
                            codes.join(", ")
                        }
                    ))
                }
            }
            Idp::OneLogin => {
                let (_, body) = self.get(&self.url(&format!("/api/2/apps/{app}"))).await?;
                let on = body
                    .get("provisioning")
                    .and_then(|p| p.get("enabled"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if on {
                    ProvisioningState::On
                } else {
                    ProvisioningState::Off(format!(
                        "the OneLogin app {app} does not provision: in OneLogin open Applications → {name} → Provisioning, check Enable provisioning and save"
                    ))
                }
            }
        };
        *lock(&self.provisioning) = Some(state.clone());
        Ok(state)
    }

    // ----- reads -----------------------------------------------------------

    fn members_url(&self, group_id: &str, limit: u32) -> String {
        match self.idp() {
            Idp::Okta => self.url(&format!("/api/v1/groups/{group_id}/users?limit={limit}")),
            Idp::Entra => self.url(&format!(
                "/groups/{group_id}/members/microsoft.graph.user?$select=id,userPrincipalName,mail,accountEnabled&$top={limit}"
            )),
            Idp::OneLogin => self.url(&format!("/api/2/roles/{group_id}/users?limit={limit}")),
        }
    }

    fn account_from(&self, group: &str, v: &Value) -> Option<Account> {
        let id = text(v, "id")?;
        let address = match self.idp() {
            Idp::Okta => v
                .get("profile")
                .and_then(|p| text(p, "login").or_else(|| text(p, "email"))),
            Idp::Entra => text(v, "mail").or_else(|| text(v, "userPrincipalName")),
            Idp::OneLogin => text(v, "email").or_else(|| text(v, "username")),
        };
        let email = address.as_deref().and_then(|a| Email::parse(a).ok());
        let mut attributes = BTreeMap::new();
        attributes.insert(attr::GROUPS.to_string(), group.to_string());
        if let Some(e) = &email {
            attributes.insert(attr::EMAIL.to_string(), e.to_string());
        }
        Some(Account {
            connection: self.config.connection.clone(),
            key: AccountKey::new(id),
            email,
            employee_id: None,
            // Membership is the assignment: a member holds the app.
            active: true,
            attributes,
        })
    }

    // ----- writes ----------------------------------------------------------

    /// The IdP's id of the action's person.
    async fn user_id(&self, a: &Action) -> Result<Result<String, ActionResult>, ConnectorError> {
        if let Some(k) = &a.account {
            return Ok(Ok(k.as_str().to_string()));
        }
        let email = a.email.as_str();
        let url = match self.idp() {
            Idp::Okta => self.url(&format!("/api/v1/users/{}", enc(email))),
            Idp::Entra => self.url(&format!(
                "/users/{}?$select=id,userPrincipalName",
                enc(email)
            )),
            Idp::OneLogin => self.url(&format!("/api/2/users?email={}", enc(email))),
        };
        let missing = || {
            ActionResult::failed(
                format!(
                    "no {} user has the address {}; the person must exist in {} before {} can be assigned",
                    self.idp().name(),
                    a.email,
                    self.idp().name(),
                    self.config.app_name
                ),
                false,
            )
        };
        match self.get(&url).await {
            Ok((_, body)) => {
                let user = match self.idp() {
                    Idp::OneLogin => body.as_array().and_then(|l| l.first()).cloned(),
                    _ => Some(body),
                };
                match user.as_ref().and_then(|u| text(u, "id")) {
                    Some(id) => Ok(Ok(id)),
                    None => Ok(Err(missing())),
                }
            }
            Err(ConnectorError::Vendor { code, .. }) if code == "404" => Ok(Err(missing())),
            Err(e) => Err(e),
        }
    }

    /// Adds `uid` to the group; `true` if it changed anything.
    async fn add(&self, gid: &str, uid: &str) -> Result<(), ConnectorError> {
        let req = match self.idp() {
            Idp::Okta => {
                self.request(
                    reqwest::Method::PUT,
                    &self.url(&format!("/api/v1/groups/{gid}/users/{uid}")),
                )
                .await?
            }
            Idp::Entra => {
                let graph_root = self
                    .base
                    .rsplit_once('/')
                    .map(|(root, _)| root)
                    .unwrap_or(&self.base);
                let version = self.base.rsplit('/').next().unwrap_or("v1.0");
                self.request(
                    reqwest::Method::POST,
                    &self.url(&format!("/groups/{gid}/members/$ref")),
                )
                .await?
                .header(CONTENT_TYPE, "application/json")
                .body(
                    json!({"@odata.id": format!("{graph_root}/{version}/directoryObjects/{uid}")})
                        .to_string(),
                )
            }
            Idp::OneLogin => self
                .request(
                    reqwest::Method::POST,
                    &self.url(&format!("/api/2/roles/{gid}/users")),
                )
                .await?
                .header(CONTENT_TYPE, "application/json")
                .body(
                    json!([uid.parse::<u64>().map(Value::from).unwrap_or(json!(uid))]).to_string(),
                ),
        };
        match self.call(req).await {
            Ok(_) => Ok(()),
            // Graph's answer to adding a member twice: already done (a
            // re-sent add after a lost answer lands here).
            Err(ConnectorError::Vendor { code, detail })
                if code == "400" && detail.contains("already exist") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn remove(&self, gid: &str, uid: &str) -> Result<(), ConnectorError> {
        let req = match self.idp() {
            Idp::Okta => {
                self.request(
                    reqwest::Method::DELETE,
                    &self.url(&format!("/api/v1/groups/{gid}/users/{uid}")),
                )
                .await?
            }
            Idp::Entra => {
                self.request(
                    reqwest::Method::DELETE,
                    &self.url(&format!("/groups/{gid}/members/{uid}/$ref")),
                )
                .await?
            }
            Idp::OneLogin => self
                .request(
                    reqwest::Method::DELETE,
                    &self.url(&format!("/api/2/roles/{gid}/users")),
                )
                .await?
                .header(CONTENT_TYPE, "application/json")
                .body(
                    json!([uid.parse::<u64>().map(Value::from).unwrap_or(json!(uid))]).to_string(),
                ),
        };
        match self.call(req).await {
            Ok(_) => Ok(()),
            // Not a member (any more): nothing to remove.
            Err(ConnectorError::Vendor { code, .. }) if code == "404" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The IdP's record of provisioning `uid` into (`assigned`) or out of
    /// the app.
    async fn outcome(&self, uid: &str, assigned: bool) -> Result<Outcome, ConnectorError> {
        let app = &self.config.app_id;
        let name = &self.config.app_name;
        match self.idp() {
            Idp::Okta => {
                let url = self.url(&format!("/api/v1/apps/{app}/users/{uid}"));
                let au = match self.get(&url).await {
                    Ok((_, au)) => Some(au),
                    Err(ConnectorError::Vendor { code, .. }) if code == "404" => None,
                    Err(e) => return Err(e),
                };
                let Some(au) = au else {
                    return Ok(if assigned {
                        Outcome::Pending(format!(
                            "Okta has not assigned {name} to the user yet (is the group assigned to the app?)"
                        ))
                    } else {
                        Outcome::Done
                    });
                };
                let sync = text(&au, "syncState").unwrap_or_default();
                let error = au
                    .get("_embedded")
                    .and_then(|e| e.get("syncError"))
                    .and_then(|e| text(e, "errorSummary"))
                    .or_else(|| text(&au, "lastSyncError"));
                let scope = text(&au, "scope").unwrap_or_default();
                match (assigned, sync.as_str()) {
                    (_, "ERROR") => Ok(Outcome::Failed(format!(
                        "Okta's push to {name} failed (syncState ERROR){}",
                        error.map(|e| format!(": {e}")).unwrap_or_default()
                    ))),
                    (true, "SYNCHRONIZED") => Ok(Outcome::Done),
                    (true, other) => Ok(Outcome::Pending(format!(
                        "Okta has not pushed the user to {name} yet (syncState {other})"
                    ))),
                    (false, _) if scope == "USER" => Ok(Outcome::Blocked("USER".into())),
                    (false, _) => Ok(Outcome::Blocked(format!(
                        "the user is still assigned {name} in Okta through a group outside the allowlist ({})",
                        self.config.groups.join(", ")
                    ))),
                }
            }
            Idp::Entra => {
                let filter =
                    format!("servicePrincipal/id eq '{app}' and sourceIdentity/id eq '{uid}'");
                let url = self.url(&format!(
                    "/auditLogs/provisioning?$filter={}&$top=1",
                    enc(&filter)
                ));
                let (_, body) = self.get(&url).await?;
                let Some(e) = body
                    .get("value")
                    .and_then(Value::as_array)
                    .and_then(|v| v.first())
                    .cloned()
                else {
                    return Ok(Outcome::Pending(format!(
                        "Entra has logged no provisioning of this user to {name} yet (its provisioning cycle runs about every 40 minutes)"
                    )));
                };
                let action = text(&e, "provisioningAction").unwrap_or_default();
                let info = e
                    .get("provisioningStatusInfo")
                    .cloned()
                    .unwrap_or(Value::Null);
                let status = text(&info, "status").unwrap_or_default();
                let wanted = if assigned {
                    matches!(action.as_str(), "create" | "update")
                } else {
                    matches!(action.as_str(), "disable" | "delete" | "stagedDelete")
                };
                if !wanted {
                    return Ok(Outcome::Pending(format!(
                        "Entra's latest provisioning of this user to {name} was a {action}, not yet the {} this change needs",
                        if assigned {
                            "create"
                        } else {
                            "disable or delete"
                        }
                    )));
                }
                match status.as_str() {
                    "success" => Ok(Outcome::Done),
                    "skipped" => Ok(Outcome::Failed(format!(
                        "Entra skipped provisioning the user to {name} (out of scope or not matched)"
                    ))),
                    "failure" | "warning" => {
                        let err = info.get("errorInformation").cloned().unwrap_or(Value::Null);
                        Ok(Outcome::Failed(format!(
                            "Entra's provisioning {action} to {name} failed{}{}",
                            text(&err, "errorCode")
                                .map(|c| format!(" ({c})"))
                                .unwrap_or_default(),
                            text(&err, "reason")
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        )))
                    }
                    other => Ok(Outcome::Pending(format!(
                        "Entra's provisioning of the user to {name} is {other:?}"
                    ))),
                }
            }
            Idp::OneLogin => {
                let (_, body) = self
                    .get(&self.url(&format!("/api/2/users/{uid}/apps")))
                    .await?;
                let entry = body.as_array().and_then(|l| {
                    l.iter()
                        .find(|x| text(x, "id").as_deref() == Some(app.as_str()))
                        .cloned()
                });
                let Some(entry) = entry else {
                    return Ok(if assigned {
                        Outcome::Pending(format!(
                            "OneLogin does not show {name} for the user yet (is the role assigned to the app?)"
                        ))
                    } else {
                        Outcome::Done
                    });
                };
                let status = text(&entry, "provisioning_status").unwrap_or_default();
                let state = text(&entry, "provisioning_state").unwrap_or_default();
                match (assigned, status.to_ascii_lowercase().as_str()) {
                    (_, "failed" | "error") => Ok(Outcome::Failed(format!(
                        "OneLogin's provisioning ({state}) to {name} failed{}",
                        text(&entry, "provisioning_error")
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ))),
                    (true, "provisioned" | "success") => Ok(Outcome::Done),
                    (true, other) => Ok(Outcome::Pending(format!(
                        "OneLogin's provisioning to {name} is {other:?}"
                    ))),
                    (false, _) => Ok(Outcome::Blocked(format!(
                        "the user still has {name} in OneLogin through a role outside the allowlist ({})",
                        self.config.groups.join(", ")
                    ))),
                }
            }
        }
    }

    fn result_of(&self, a: &Action, o: Outcome) -> ActionResult {
        match o {
            Outcome::Done => ActionResult::Applied,
            Outcome::Failed(why) => {
                ActionResult::failed(format!("{PROVISIONING_FAILED} {}: {why}", a.email), true)
            }
            Outcome::Pending(why) => ActionResult::failed(
                format!(
                    "{} for {}: {why}; checking again",
                    self.config.app_name, a.email
                ),
                true,
            ),
            Outcome::Blocked(why) => ActionResult::failed(
                format!(
                    "{} keeps {}: {why}; remove that assignment by hand",
                    a.email, self.config.app_name
                ),
                false,
            ),
        }
    }

    async fn apply_one(&self, a: &Action, dry_run: bool) -> Result<ActionResult, ConnectorError> {
        let groups = self.groups().await?;
        // The allowlist is checked before anything else is asked.
        let target = match self.target_group(a, &groups) {
            Ok(g) => g.clone(),
            Err(refused) => return Ok(refused),
        };
        if let Some(ProvisioningState::Off(why)) = self.provisioning() {
            return Ok(ActionResult::failed(
                format!("{PROVISIONING_OFF} not changed: {why}"),
                false,
            ));
        }
        if dry_run {
            return Ok(ActionResult::skipped(format!(
                "dry run: {} has no preview",
                self.idp().name()
            )));
        }
        match a.operation {
            Operation::Create | Operation::Reactivate => {
                let uid = match self.user_id(a).await? {
                    Ok(id) => id,
                    Err(r) => return Ok(r),
                };
                self.add(&target.1, &uid).await?;
                let o = self.outcome(&uid, true).await?;
                Ok(self.result_of(a, o))
            }
            Operation::Deactivate => {
                let uid = match self.user_id(a).await? {
                    Ok(id) => id,
                    Err(r) => return Ok(r),
                };
                // Every allowlisted group, and only those: a person may be
                // in more than one.
                let named: Option<BTreeSet<&str>> = a
                    .attributes
                    .get(attr::GROUPS)
                    .map(|g| g.split(',').map(str::trim).collect());
                for (name, gid) in &groups {
                    if named.as_ref().is_none_or(|n| n.contains(name.as_str())) {
                        self.remove(gid, &uid).await?;
                    }
                }
                let mut o = self.outcome(&uid, false).await?;
                if let Outcome::Blocked(kind) = &o
                    && kind == "USER"
                {
                    // A direct Okta assignment: remove it too.
                    let url = self.url(&format!("/api/v1/apps/{}/users/{uid}", self.config.app_id));
                    match self
                        .call(self.request(reqwest::Method::DELETE, &url).await?)
                        .await
                    {
                        Ok(_) => {}
                        Err(ConnectorError::Vendor { code, .. }) if code == "404" => {}
                        Err(e) => return Err(e),
                    }
                    o = self.outcome(&uid, false).await?;
                    if matches!(&o, Outcome::Blocked(k) if k == "USER") {
                        o = Outcome::Pending("Okta still lists the direct assignment".into());
                    }
                }
                Ok(self.result_of(a, o))
            }
            Operation::Update => Ok(ActionResult::failed(
                format!(
                    "{} masters {}'s attributes; group membership carries none: change them in {}",
                    self.idp().name(),
                    a.email,
                    self.idp().name()
                ),
                false,
            )),
            Operation::Delete => Ok(ActionResult::failed(
                format!(
                    "deleting {} is not a group change: removing the membership already deprovisions; delete it in {} by hand",
                    a.email, self.config.app_name
                ),
                false,
            )),
            Operation::Read => Ok(ActionResult::skipped("read is not a change")),
        }
    }
}

#[async_trait]
impl Connector for IdpGroupConnector {
    fn id(&self) -> &ConnectionId {
        &self.config.connection
    }

    fn capabilities(&self) -> Capabilities {
        let w = self.config.rate_limit;
        let mut caps = Capabilities::new()
            .with(
                Operation::Read,
                OperationSupport::supported(self.config.page_size.clamp(1, 200)),
            )
            .with_rate_limits(vec![RateWindow::new((w.max_requests / 4).max(1), w.per)])
            .with_failures_to_people(true);
        // While the IdP app does not provision, offer no writes: the
        // engine makes them people's tasks.
        if !matches!(self.provisioning(), Some(ProvisioningState::Off(_))) {
            let one = OperationSupport::supported(1);
            caps = caps
                .with(Operation::Create, one)
                .with(Operation::Reactivate, one)
                .with(Operation::Deactivate, one);
        }
        caps
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let mut checks = Vec::new();
        let vendor = self.idp().name();
        match self.check_provisioning().await {
            Ok(state) => {
                checks.push(ValidationCheck::pass(
                    "credentials",
                    format!("{vendor} accepted the credentials"),
                ));
                checks.push(match state {
                    ProvisioningState::On => ValidationCheck::pass(
                        "provisioning",
                        format!("{vendor} provisions {}", self.config.app_name),
                    ),
                    ProvisioningState::Off(why) => ValidationCheck::fail(
                        "provisioning",
                        format!("{PROVISIONING_OFF} {why}; until then roster's changes become people's tasks"),
                    ),
                });
            }
            Err(ConnectorError::Unauthorized { detail }) => {
                checks.push(ValidationCheck::fail("credentials", detail));
                return Ok(Validation::new(checks));
            }
            Err(ConnectorError::Vendor { code, detail }) if code == "404" => {
                checks.push(ValidationCheck::fail(
                    "app",
                    format!(
                        "{vendor} has no app {} ({detail}): set idp_app_id to the app's id in {vendor}",
                        self.config.app_id
                    ),
                ));
                return Ok(Validation::new(checks));
            }
            Err(e) => return Err(e),
        }
        match self.groups().await {
            Ok(g) => checks.push(ValidationCheck::pass(
                "groups",
                format!(
                    "allowlisted {}s found: {}",
                    self.idp().group_word(),
                    g.iter()
                        .map(|(n, id)| format!("{n} ({id})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Err(ConnectorError::Config { detail }) => {
                checks.push(ValidationCheck::fail("groups", detail))
            }
            Err(e) => return Err(e),
        }
        Ok(Validation::new(checks))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        let most = match self.idp() {
            // OneLogin pages hold at most 50.
            Idp::OneLogin => 50,
            _ => 200,
        };
        let limit = req
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, self.config.page_size.clamp(1, most));
        let (index, next) = match &req.page_token {
            None => {
                // Every read starts by asking whether the app provisions.
                self.check_provisioning().await?;
                (0, None)
            }
            Some(t) => decode_token(t).ok_or_else(|| ConnectorError::Config {
                detail: "the page token was not issued by the idp-group connector".into(),
            })?,
        };
        let groups = self.groups().await?;
        let Some((name, gid)) = groups.get(index) else {
            return Ok(Page::new(Vec::new(), None));
        };
        let url = match &next {
            None => self.members_url(gid, limit),
            Some(n) => {
                // Follow the IdP's own link or cursor, within this IdP.
                match self.idp() {
                    Idp::OneLogin => format!("{}&cursor={}", self.members_url(gid, limit), enc(n)),
                    _ if n.starts_with(&self.base) => n.clone(),
                    _ => {
                        return Err(ConnectorError::Protocol {
                            detail: format!("the next link points outside the IdP ({n})"),
                        });
                    }
                }
            }
        };
        let (answer, body) = self.get(&url).await?;
        let (items, more) = match self.idp() {
            Idp::Okta => (body.clone(), next_link(&answer.headers)),
            Idp::Entra => (
                body.get("value").cloned().unwrap_or(Value::Null),
                crate::http::continuation_at(&body, "/@odata.nextLink").map_err(|why| {
                    ConnectorError::Protocol {
                        detail: format!("Entra ID answered a garbled member list: {why}"),
                    }
                })?,
            ),
            Idp::OneLogin => (
                body.clone(),
                answer
                    .headers
                    .get("after-cursor")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            ),
        };
        let items = items.as_array().ok_or_else(|| ConnectorError::Protocol {
            detail: format!(
                "{} answered the member list with no list",
                self.idp().name()
            ),
        })?;
        let mut accounts = Vec::with_capacity(items.len());
        for v in items {
            accounts.push(
                self.account_from(name, v)
                    .ok_or_else(|| ConnectorError::Protocol {
                        detail: format!("{} listed a member without an id", self.idp().name()),
                    })?,
            );
        }
        let token = match more {
            Some(n) => Some(encode_token(index, Some(&n))),
            None if index + 1 < groups.len() => Some(encode_token(index + 1, None)),
            None => None,
        };
        Ok(Page::new(accounts, token))
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let mut results = Vec::with_capacity(req.actions.len());
        for a in &req.actions {
            results.push(self.apply_one(a, req.dry_run).await?);
        }
        Ok(ApplyResponse::new(results))
    }

    /// A person in two allowlisted groups is listed once per group: one
    /// account, its groups joined.
    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        if existing.email != duplicate.email {
            return Merge::Conflict;
        }
        let split = |a: &Account| -> BTreeSet<String> {
            a.attributes
                .get(attr::GROUPS)
                .map(|g| g.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        };
        let mut groups = split(existing);
        let more = split(&duplicate);
        // Listed twice by the same group: the listing repeated or moved
        // under the reader, not a second membership.
        if !groups.is_disjoint(&more) {
            return Merge::Conflict;
        }
        groups.extend(more);
        existing.attributes.insert(
            attr::GROUPS.to_string(),
            groups.into_iter().collect::<Vec<_>>().join(","),
        );
        Merge::Merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idp_names_and_tokens() {
        assert_eq!(Idp::parse("entra"), Some(Idp::Entra));
        assert_eq!(Idp::parse("Entra-ID"), Some(Idp::Entra));
        assert_eq!(Idp::parse("onelogin"), Some(Idp::OneLogin));
        assert_eq!(Idp::parse("google"), None);
        let t = encode_token(2, Some("https://x/y?a=b:c"));
        assert_eq!(
            decode_token(&t),
            Some((2, Some("https://x/y?a=b:c".to_string())))
        );
        assert_eq!(decode_token(&encode_token(1, None)), Some((1, None)));
        assert_eq!(decode_token(&PageToken::new("okta-v1:x")), None);
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = IdpGroupConfig::new(
            ConnectionId::new("bill"),
            Idp::Entra,
            "https://graph.microsoft.com/v1.0",
            SecretString::new("s3cret"),
            "sp",
            vec!["BILL Users".into()],
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
