//! The web UI's people and sessions: local users, sign-in, sessions, and
//! the end of a leaver's own access to roster. The application layer's
//! half of `roster user …` and the UI's sign-in (`roster_web`).
//!
//! # Users and roles
//! A local user (`roster user add NAME --role ROLE`) has a name, a
//! [`Role`] (no default: every user is given one, and an OpenID Connect
//! identity whose groups map to no role cannot sign in), an optional email
//! and an argon2id password hash (PHC string; the password is never
//! stored). The role's scopes ([`Role::scopes`], the one table) are what a
//! signed-in person may do; each page and form checks its scope
//! ([`WebSession::require`]).
//!
//! # Sessions
//! A sign-in ([`Roster::sign_in_local`], or [`Roster::start_web_session`]
//! for an identity an OIDC sign-in established) draws a session id of 32
//! random bytes (base64url), the cookie's value. Only its SHA-256 is
//! stored. A session ends when signed out, after [`SessionLimits::idle`]
//! without use, at [`SessionLimits::absolute`] after sign-in, when its
//! user is removed or changes role, and when the sources say its person
//! has left. Approving and applying need a *fresh* sign-in: the person
//! proved who they are within [`SessionLimits::fresh`]
//! ([`Roster::reauthenticate_local`], or [`Roster::renew_web_sign_in`]
//! after an IdP sign-in with `prompt=login`).
//!
//! The CSRF token of a session is derived from its id (SHA-256 with a
//! label of its own), so it is stable for the session, unknown to anyone
//! without the cookie, and needs no storage.
//!
//! # roster governs its own users
//! When an import says a person has left (status `terminated`, after
//! offboarding overrides), [`Roster::end_leavers_roster_access`] ends
//! every UI session with their address, and revokes every API token that
//! acts as a web user with that address or was created by one (they saw
//! its secret once). [`Roster::import_people`] and [`Roster::offboard`]
//! call it; it is audited `web.access_ended`.

use std::collections::BTreeSet;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use roster_core::{Email, EmploymentStatus, Person, Principal, PrincipalKind, Role, Scope};
use roster_store::{AuditKind, StoreError, WebSessionRecord, WebUserRecord};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Roster;
use super::tokens::Authenticated;
use crate::engine::{EngineError, ms};
use crate::planning::PersonRef;

/// How long sessions live and how fresh a sign-in must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Approving and applying need a sign-in at most this old.
    pub fresh: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            fresh: Duration::from_secs(5 * 60),
        }
    }
}

/// `last_seen_ms` is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60_000;
/// A generated password: 18 random bytes, 24 base64url characters.
const GENERATED_PASSWORD_BYTES: usize = 18;
/// The shortest password `roster user add` takes.
pub const MIN_PASSWORD_LEN: usize = 12;

/// How a person signed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignInVia {
    /// A local user's password.
    Local,
    /// The company's IdP over OpenID Connect.
    Oidc { issuer: String, subject: String },
}

/// Who a sign-in established: what [`Roster::start_web_session`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentity {
    /// The principal's name (`user:<name>` in the audit log).
    pub name: String,
    /// Their address, which ties them to a person of the sources.
    pub email: Option<String>,
    pub via: SignInVia,
    /// Their roles (for OIDC: the IdP groups mapped through the config).
    /// Empty: no access, the sign-in is refused.
    pub roles: BTreeSet<Role>,
}

/// A live, signed-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    /// `user:<name>`.
    pub principal: Principal,
    pub roles: BTreeSet<Role>,
    pub email: Option<String>,
    pub via: SignInVia,
    pub created_ms: i64,
    /// When the person last proved who they are.
    pub authenticated_ms: i64,
    pub expires_ms: i64,
    /// Whether that proof is fresh enough to approve or apply.
    pub fresh: bool,
    /// The token every form of this session carries.
    pub csrf_token: String,
    /// SHA-256 of the session id (what the store holds).
    id_hash: String,
}

impl WebSession {
    /// Whether the roles grant `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.roles.iter().any(|r| r.scopes().contains(&scope))
    }

    /// Every scope the roles grant.
    pub fn scopes(&self) -> BTreeSet<Scope> {
        self.roles
            .iter()
            .flat_map(|r| r.scopes().iter().copied())
            .collect()
    }

    /// The principal, if the roles grant `scope`; else `ENG-0008` naming
    /// the role that would.
    pub fn require(&self, scope: Scope) -> Result<&Principal, EngineError> {
        if self.allows(scope) {
            return Ok(&self.principal);
        }
        let granting: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| r.scopes().contains(&scope))
            .map(|r| r.as_str())
            .collect();
        Err(EngineError::NotPermitted(format!(
            "{} (role {}) may not {scope}: that needs the role {} (an admin sets it: roster user set-role {} --role …)",
            self.principal,
            self.roles_text(),
            granting.join(" or "),
            self.principal.name
        )))
    }

    /// The principal, if the roles grant `scope` and the sign-in is
    /// fresh (approving, applying, offboarding).
    pub fn require_fresh(&self, scope: Scope) -> Result<&Principal, EngineError> {
        let p = self.require(scope)?;
        if !self.fresh {
            return Err(EngineError::NotPermitted(
                "this needs a fresh sign-in: confirm who you are again".into(),
            ));
        }
        Ok(p)
    }

    /// The caller as the REST API and MCP see theirs.
    pub fn authenticated(&self) -> Authenticated {
        Authenticated::local(self.principal.clone(), self.scopes())
    }

    /// `viewer`, `approver operator`, ...
    pub fn roles_text(&self) -> String {
        roles_text(&self.roles)
    }

    /// The stored session's key, for sign-out.
    pub fn id_hash(&self) -> &str {
        &self.id_hash
    }
}

/// A local user as listings show it: never the password or its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebUserInfo {
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub has_password: bool,
    pub created_by: String,
    pub created_ms: i64,
}

/// What to add.
#[derive(Clone)]
pub struct NewWebUser {
    pub name: String,
    pub role: Role,
    pub email: Option<String>,
    /// `None`: one is generated and returned, shown once.
    pub password: Option<String>,
}

/// What ending a leaver's access did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessEnded {
    pub sessions: u64,
    /// Prefixes of the API tokens revoked.
    pub tokens: Vec<String>,
}

fn hash_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The CSRF token of the session whose id is `id`.
fn csrf_of(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"roster-web-csrf\0");
    h.update(id.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

fn roles_text(roles: &BTreeSet<Role>) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_roles(text: &str) -> BTreeSet<Role> {
    text.split_whitespace().filter_map(Role::parse).collect()
}

fn random_text(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn hash_password(password: &str) -> Result<String, EngineError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Refused(format!("cannot hash the password: {e}")))
}

/// A PHC string no password matches, verified against for unknown users
/// so that the answer takes as long as for a known one.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_text(32)).unwrap_or_default())
}

fn password_matches(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).ok().is_some_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn user_info(r: &WebUserRecord) -> WebUserInfo {
    WebUserInfo {
        name: r.name.clone(),
        email: r.email.clone(),
        role: Role::parse(&r.role).unwrap_or(Role::Viewer),
        has_password: r.password_hash.is_some(),
        created_by: r.created_by.clone(),
        created_ms: r.created_ms,
    }
}

fn refused_sign_in() -> EngineError {
    EngineError::Unauthenticated("the name or the password is not right".into())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Roster {
    /// Adds a local user, as `by` asked (audited `web.user.added`; the
    /// password never is). Returns the generated password when none was
    /// given: show it once. Refused for an agent, a bad name or address,
    /// a password shorter than [`MIN_PASSWORD_LEN`], a name taken.
    pub async fn add_web_user(
        &self,
        by: &Principal,
        new: &NewWebUser,
    ) -> Result<(WebUserInfo, Option<String>), EngineError> {
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(
                "an agent cannot manage web users".into(),
            ));
        }
        if !valid_user_name(&new.name) {
            return Err(EngineError::InvalidInput(format!(
                "user name {:?} is not valid: use 1–64 letters, digits, '-', '_', '.' or '@'",
                new.name
            )));
        }
        let email = match new
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => None,
            Some(e) => Some(
                Email::parse(e)
                    .map_err(|why| {
                        EngineError::InvalidInput(format!("--email {e:?} is not an address: {why}"))
                    })?
                    .normalized(),
            ),
        };
        let (password, generated) = match &new.password {
            Some(p) if p.chars().count() < MIN_PASSWORD_LEN => {
                return Err(EngineError::InvalidInput(format!(
                    "the password is too short: use at least {MIN_PASSWORD_LEN} characters, or give none and roster generates one"
                )));
            }
            Some(p) => (p.clone(), None),
            None => {
                let p = random_text(GENERATED_PASSWORD_BYTES);
                (p.clone(), Some(p))
            }
        };
        let engine = self.engine();
        let now = ms(engine.now());
        let record = WebUserRecord {
            name: new.name.clone(),
            email,
            role: new.role.as_str().to_string(),
            password_hash: Some(hash_password(&password)?),
            created_by: by.actor(),
            created_ms: now,
            updated_ms: now,
        };
        match engine.store.web_user_insert(&record).await {
            Ok(()) => {}
            Err(StoreError::Invalid(m)) => return Err(EngineError::Refused(m)),
            Err(e) => return Err(e.into()),
        }
        engine
            .audit_as(
                &by.actor(),
                AuditKind::WebUserAdded,
                &record.name,
                json!({ "role": record.role, "email": record.email }),
            )
            .await?;
        Ok((user_info(&record), generated))
    }

    /// Every local user, by name.
    pub async fn web_users(&self) -> Result<Vec<WebUserInfo>, EngineError> {
        Ok(self
            .engine()
            .store
            .web_users()
            .await?
            .iter()
            .map(user_info)
            .collect())
    }

    /// Removes a local user and ends their sessions (audited); false if
    /// there was none.
    pub async fn remove_web_user(&self, by: &Principal, name: &str) -> Result<bool, EngineError> {
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(
                "an agent cannot manage web users".into(),
            ));
        }
        let engine = self.engine();
        let removed = engine.store.web_user_delete(name).await?;
        if removed {
            let now = ms(engine.now());
            let ended = engine
                .store
                .web_sessions_end_for(Some(name), None, now, "user removed")
                .await?;
            engine
                .audit_as(
                    &by.actor(),
                    AuditKind::WebUserRemoved,
                    name,
                    json!({ "sessions_ended": ended }),
                )
                .await?;
        }
        Ok(removed)
    }

    /// Sets a local user's role and ends their sessions, so the new role
    /// holds from their next sign-in (audited); false if no such user.
    pub async fn set_web_user_role(
        &self,
        by: &Principal,
        name: &str,
        role: Role,
    ) -> Result<bool, EngineError> {
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(
                "an agent cannot manage web users".into(),
            ));
        }
        let engine = self.engine();
        let now = ms(engine.now());
        let set = engine
            .store
            .web_user_set_role(name, role.as_str(), now)
            .await?;
        if set {
            engine
                .store
                .web_sessions_end_for(Some(name), None, now, "role changed")
                .await?;
            engine
                .audit_as(
                    &by.actor(),
                    AuditKind::WebUserRoleSet,
                    name,
                    json!({ "role": role.as_str() }),
                )
                .await?;
        }
        Ok(set)
    }

    /// Whether the sources say the person with `email` has left.
    async fn has_left(&self, email: &str) -> Result<bool, EngineError> {
        let Ok(parsed) = Email::parse(email) else {
            return Ok(false);
        };
        Ok(self
            .engine()
            .find_person(&PersonRef::Email(parsed))
            .await?
            .is_some_and(|p| p.status == EmploymentStatus::Terminated))
    }

    /// Signs a local user in with their password: a new session (the
    /// cookie's value and the session). `ENG-0010` with one message for
    /// an unknown name and a wrong password (both take an argon2
    /// verification); refused for someone the sources say has left.
    pub async fn sign_in_local(
        &self,
        name: &str,
        password: &str,
        limits: &SessionLimits,
    ) -> Result<(String, WebSession), EngineError> {
        let engine = self.engine();
        let user = engine.store.web_user(name.trim()).await?;
        let phc = user
            .as_ref()
            .and_then(|u| u.password_hash.as_deref())
            .unwrap_or_else(|| dummy_hash());
        let matches = password_matches(phc, password);
        let Some(user) = user.filter(|u| matches && u.password_hash.is_some()) else {
            // Whatever was typed is not a principal: recorded only when it
            // could be a name (never a password typed into the name field).
            let typed = name.trim();
            let who = if valid_user_name(typed) {
                typed
            } else {
                "(not a user name)"
            };
            engine
                .audit_as(
                    &format!("user:{who}"),
                    AuditKind::WebSignInRefused,
                    who,
                    json!({ "via": "local" }),
                )
                .await?;
            return Err(refused_sign_in());
        };
        let roles: BTreeSet<Role> = Role::parse(&user.role).into_iter().collect();
        self.start_web_session(
            &WebIdentity {
                name: user.name.clone(),
                email: user.email.clone(),
                via: SignInVia::Local,
                roles,
            },
            limits,
        )
        .await
    }

    /// Starts a session for an identity a sign-in established (a local
    /// password above, or an OpenID Connect sign-in whose ID token the
    /// caller verified): returns the cookie's value, shown to nobody else,
    /// and the session. Refused (`ENG-0008`) without a role (no access by
    /// default) and for someone the sources say has left. Audited
    /// `web.sign_in`.
    pub async fn start_web_session(
        &self,
        identity: &WebIdentity,
        limits: &SessionLimits,
    ) -> Result<(String, WebSession), EngineError> {
        let engine = self.engine();
        let actor = format!("user:{}", identity.name);
        let via_text = match &identity.via {
            SignInVia::Local => "local",
            SignInVia::Oidc { .. } => "oidc",
        };
        if !valid_user_name(&identity.name) {
            return Err(EngineError::InvalidInput(format!(
                "{:?} is not a valid user name",
                identity.name
            )));
        }
        if identity.roles.is_empty() {
            engine
                .audit_as(
                    &actor,
                    AuditKind::WebSignInRefused,
                    &identity.name,
                    json!({ "via": via_text, "why": "no role" }),
                )
                .await?;
            return Err(EngineError::NotPermitted(format!(
                "{} has no roster role: an admin grants one (roster user set-role, or map an IdP group to a role in [web.oidc])",
                identity.name
            )));
        }
        let email = identity.email.as_deref().map(|e| e.trim().to_lowercase());
        if let Some(e) = &email
            && self.has_left(e).await?
        {
            engine
                .audit_as(
                    &actor,
                    AuditKind::WebSignInRefused,
                    &identity.name,
                    json!({ "via": via_text, "why": "left the company" }),
                )
                .await?;
            return Err(EngineError::NotPermitted(format!(
                "{} has left according to the sources; roster no longer admits them",
                identity.name
            )));
        }
        let id = random_text(32);
        let now = ms(engine.now());
        let (issuer, subject) = match &identity.via {
            SignInVia::Local => (None, None),
            SignInVia::Oidc { issuer, subject } => (Some(issuer.clone()), Some(subject.clone())),
        };
        let record = WebSessionRecord {
            id_hash: hash_id(&id),
            user_name: identity.name.clone(),
            email: email.clone(),
            via: via_text.to_string(),
            issuer,
            subject,
            role: roles_text(&identity.roles),
            created_ms: now,
            authenticated_ms: now,
            last_seen_ms: now,
            expires_ms: now.saturating_add(millis(limits.absolute)),
            ended_ms: None,
            ended_reason: None,
        };
        engine.store.web_session_insert(&record).await?;
        engine
            .audit_as(
                &actor,
                AuditKind::WebSignIn,
                &identity.name,
                json!({ "via": via_text, "roles": record.role }),
            )
            .await?;
        let session = session_of(&record, &id, now, limits);
        Ok((id, session))
    }

    /// The live session the cookie value `id` names. `ENG-0010` for an
    /// unknown, ended, idle or expired one; an idle or expired one is
    /// ended on the way. Touches `last_seen` at most once a minute.
    pub async fn web_session(
        &self,
        id: &str,
        limits: &SessionLimits,
    ) -> Result<WebSession, EngineError> {
        let engine = self.engine();
        let gone = || EngineError::Unauthenticated("sign in again".into());
        if id.is_empty() || id.len() > 128 {
            return Err(gone());
        }
        let id_hash = hash_id(id);
        let Some(record) = engine.store.web_session(&id_hash).await? else {
            return Err(gone());
        };
        // The lookup was by the hash; compare again in constant time.
        if !bool::from(record.id_hash.as_bytes().ct_eq(id_hash.as_bytes())) {
            return Err(gone());
        }
        if record.ended_ms.is_some() {
            return Err(gone());
        }
        let now = ms(engine.now());
        let idle_end = record.last_seen_ms.saturating_add(millis(limits.idle));
        if record.expires_ms <= now || idle_end <= now {
            engine
                .store
                .web_session_end(&id_hash, now, "expired")
                .await?;
            return Err(EngineError::Unauthenticated(
                "your session expired; sign in again".into(),
            ));
        }
        if now.saturating_sub(record.last_seen_ms) >= TOUCH_EVERY_MS {
            engine.store.web_session_touch(&id_hash, now).await?;
        }
        Ok(session_of(&record, id, now, limits))
    }

    /// A local user proves who they are again (their password), making
    /// the session fresh for approving and applying.
    pub async fn reauthenticate_local(
        &self,
        id: &str,
        password: &str,
        limits: &SessionLimits,
    ) -> Result<WebSession, EngineError> {
        let session = self.web_session(id, limits).await?;
        if session.via != SignInVia::Local {
            return Err(EngineError::Refused(
                "this session signed in through the IdP: sign in there again".into(),
            ));
        }
        let engine = self.engine();
        let user = engine.store.web_user(&session.principal.name).await?;
        let ok = user
            .as_ref()
            .and_then(|u| u.password_hash.as_deref())
            .is_some_and(|phc| password_matches(phc, password));
        if !ok {
            engine
                .audit_as(
                    &session.principal.actor(),
                    AuditKind::WebSignInRefused,
                    &session.principal.name,
                    json!({ "via": "local", "why": "re-authentication failed" }),
                )
                .await?;
            return Err(refused_sign_in());
        }
        self.renew_web_sign_in(id, limits).await
    }

    /// Records that the person of session `id` just proved who they are:
    /// for the OpenID Connect sign-in, after an authorization with
    /// `prompt=login` whose ID token (and its `auth_time`) the caller
    /// verified for the session's issuer and subject. Nothing else may
    /// call it: it is what makes approving possible.
    pub async fn renew_web_sign_in(
        &self,
        id: &str,
        limits: &SessionLimits,
    ) -> Result<WebSession, EngineError> {
        let engine = self.engine();
        let now = ms(engine.now());
        let id_hash = hash_id(id);
        if !engine
            .store
            .web_session_reauthenticated(&id_hash, now)
            .await?
        {
            return Err(EngineError::Unauthenticated("sign in again".into()));
        }
        self.web_session(id, limits).await
    }

    /// Ends the session `id` (audited `web.sign_out`); false if it was
    /// not live.
    pub async fn sign_out_web(&self, id: &str) -> Result<bool, EngineError> {
        let engine = self.engine();
        let id_hash = hash_id(id);
        let Some(record) = engine.store.web_session(&id_hash).await? else {
            return Ok(false);
        };
        let ended = engine
            .store
            .web_session_end(&id_hash, ms(engine.now()), "signed out")
            .await?;
        if ended {
            engine
                .audit_as(
                    &format!("user:{}", record.user_name),
                    AuditKind::WebSignOut,
                    &record.user_name,
                    json!({}),
                )
                .await?;
        }
        Ok(ended)
    }

    /// Ends roster access of everyone in `people` the sources say has
    /// left (module docs): their UI sessions (matched by address, primary
    /// or alias) and the API tokens acting as, or created by, a web user
    /// with their address. Audited `web.access_ended` per person.
    pub async fn end_leavers_roster_access(
        &self,
        by: &Principal,
        people: &[Person],
    ) -> Result<AccessEnded, EngineError> {
        let engine = self.engine();
        let now = ms(engine.now());
        let users = engine.store.web_users().await?;
        let sessions = engine.store.web_sessions_live(now).await?;
        // Cheap when nobody could match: no user, no session with an address.
        let known: BTreeSet<String> = users
            .iter()
            .filter_map(|u| u.email.clone())
            .chain(sessions.iter().filter_map(|s| s.email.clone()))
            .map(|e| e.to_lowercase())
            .collect();
        let mut total = AccessEnded::default();
        if known.is_empty() {
            return Ok(total);
        }
        let mut tokens = None;
        for person in people {
            if person.status != EmploymentStatus::Terminated {
                continue;
            }
            let addresses: BTreeSet<String> = std::iter::once(person.email.normalized())
                .chain(person.aliases.iter().map(|a| a.normalized()))
                .filter(|a| known.contains(a))
                .collect();
            if addresses.is_empty() {
                continue;
            }
            let mut ended = AccessEnded::default();
            let names: BTreeSet<String> = users
                .iter()
                .filter(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| addresses.contains(&e.to_lowercase()))
                })
                .map(|u| u.name.clone())
                .chain(
                    sessions
                        .iter()
                        .filter(|s| {
                            s.email
                                .as_deref()
                                .is_some_and(|e| addresses.contains(&e.to_lowercase()))
                        })
                        .map(|s| s.user_name.clone()),
                )
                .collect();
            for address in &addresses {
                ended.sessions += engine
                    .store
                    .web_sessions_end_for(None, Some(address), now, "left the company")
                    .await?;
            }
            for name in &names {
                ended.sessions += engine
                    .store
                    .web_sessions_end_for(Some(name), None, now, "left the company")
                    .await?;
            }
            if tokens.is_none() {
                tokens = Some(engine.store.api_tokens().await?);
            }
            for t in tokens.iter().flatten() {
                if t.revoked_ms.is_some() {
                    continue;
                }
                let theirs = names.iter().any(|n| {
                    t.name == *n
                        || t.created_by == format!("user:{n}")
                        || t.created_by == format!("session:{n}")
                }) || addresses.contains(&t.name.to_lowercase());
                if theirs && engine.store.api_token_revoke(&t.prefix, now).await? {
                    engine
                        .audit_as(
                            &by.actor(),
                            AuditKind::ApiTokenRevoked,
                            &t.prefix,
                            json!({ "why": "its person left the company" }),
                        )
                        .await?;
                    ended.tokens.push(t.prefix.clone());
                }
            }
            if ended.sessions > 0 || !ended.tokens.is_empty() {
                engine
                    .audit_as(
                        &by.actor(),
                        AuditKind::WebAccessEnded,
                        person.employee_id.as_str(),
                        json!({
                            "users": names,
                            "sessions": ended.sessions,
                            "tokens": ended.tokens,
                        }),
                    )
                    .await?;
            }
            total.sessions += ended.sessions;
            total.tokens.extend(ended.tokens);
        }
        Ok(total)
    }
}

fn session_of(record: &WebSessionRecord, id: &str, now: i64, limits: &SessionLimits) -> WebSession {
    WebSession {
        principal: Principal::new(PrincipalKind::User, record.user_name.clone()),
        roles: parse_roles(&record.role),
        email: record.email.clone(),
        via: match (&record.issuer, &record.subject) {
            (Some(issuer), Some(subject)) if record.via == "oidc" => SignInVia::Oidc {
                issuer: issuer.clone(),
                subject: subject.clone(),
            },
            _ => SignInVia::Local,
        },
        created_ms: record.created_ms,
        authenticated_ms: record.authenticated_ms,
        expires_ms: record.expires_ms,
        fresh: now.saturating_sub(record.authenticated_ms) < millis(limits.fresh),
        csrf_token: csrf_of(id),
        id_hash: record.id_hash.clone(),
    }
}
