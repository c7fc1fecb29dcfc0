//! Sign-in to the web UI through the company's identity provider: who may
//! come in, and as whom. The OpenID Connect exchange itself is
//! [`crate::oidc`]; sessions are [`super::web_users`].
//!
//! [`Roster::oidc_begin`] starts a sign-in (the authorize URL; the pending
//! state stays server-side, good once, for ten minutes).
//! [`Roster::oidc_complete`] finishes it and decides:
//!
//! 1. the ID token must verify (signature, issuer, audience, expiry,
//!    nonce, an `auth_time` within `max_age`, and for a fresh sign-in one
//!    after the request): otherwise `ENG-0010` with the `OIDC-` code that
//!    says why;
//! 2. **roster governs its own users**: someone the sources of truth say
//!    has left (terminated, or past their end date) cannot sign in, even
//!    while the IdP still lets them; `ENG-0008`. A person the sources do
//!    not know (a contractor, a break-glass admin) is judged by the role
//!    map alone;
//! 3. **no access by default**: the person's IdP groups and email must map
//!    to at least one role in `[web.roles]`, else `ENG-0008` naming their
//!    groups and the table to edit.
//!
//! A refusal of a verified identity is audited (`web.sign_in_refused`, via
//! `oidc`, with the IdP groups and the reason, never a token); a token
//! that does not verify is not audited (its claims are not trustworthy)
//! but logged as a warning. [`Roster::oidc_sign_in`] then opens the
//! session through [`Roster::start_web_session`] (audited `web.sign_in`),
//! ending the browser's previous session, if it sent one.

use std::collections::BTreeSet;

use roster_core::{Email, EmploymentStatus, Principal, PrincipalKind, Role, Scope};
use roster_store::AuditKind;
use serde_json::json;

use super::Roster;
use super::web_users::{SessionLimits, SignInVia, WebIdentity, WebSession};
use crate::engine::EngineError;
use crate::oidc::{
    OidcCallback, OidcError, OidcProvider, SignInPurpose, SignInStart, VerifiedIdentity,
};

/// A person signed in through the IdP, verified and let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSignedIn {
    /// `user:<email>`, with the IdP groups (so `approvers =
    /// ["group:finance"]` in the policy works with IdP groups).
    pub principal: Principal,
    pub email: String,
    pub name: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub roles: BTreeSet<Role>,
    /// The union of the roles' scopes.
    pub scopes: BTreeSet<Scope>,
    /// When they authenticated at the IdP (ms since the epoch), if said.
    pub auth_time_ms: Option<i64>,
    /// A fresh sign-in was asked for and proven (approve, apply).
    pub fresh: bool,
    /// Where the UI wanted to go (as given to [`Roster::oidc_begin`]).
    pub return_to: String,
}

impl OidcSignedIn {
    /// What [`Roster::start_web_session`] takes: the email is the user's
    /// name and ties the session to a person of the sources.
    pub fn web_identity(&self) -> WebIdentity {
        WebIdentity {
            name: self.email.to_lowercase(),
            email: Some(self.email.to_lowercase()),
            via: SignInVia::Oidc {
                issuer: self.issuer.clone(),
                subject: self.subject.clone(),
            },
            roles: self.roles.clone(),
        }
    }
}

fn oidc_refusal(e: OidcError) -> EngineError {
    EngineError::Unauthenticated(e.to_string())
}

impl Roster {
    /// Starts a sign-in through the IdP: where to send the browser.
    /// `fresh` asks the IdP to authenticate again (before approving or
    /// applying).
    pub fn oidc_begin(
        &self,
        provider: &OidcProvider,
        fresh: bool,
        return_to: &str,
    ) -> Result<SignInStart, EngineError> {
        let purpose = if fresh {
            SignInPurpose::Fresh
        } else {
            SignInPurpose::Normal
        };
        provider.begin(purpose, return_to).map_err(oidc_refusal)
    }

    /// Finishes a sign-in from the callback's parameters (module docs):
    /// the verified person with their roles, or a refusal that says why.
    /// Opens no session: [`Roster::oidc_sign_in`] does.
    pub async fn oidc_complete(
        &self,
        provider: &OidcProvider,
        callback: &OidcCallback,
    ) -> Result<OidcSignedIn, EngineError> {
        let identity = match provider.finish(callback).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "OIDC sign-in refused");
                return Err(oidc_refusal(e));
            }
        };
        let engine = self.engine();

        // Roster governs its own users: a leaver stays out.
        let known = match Email::parse(&identity.email) {
            Ok(email) => engine.store.person_by_email(&email).await?,
            Err(_) => None,
        };
        if let Some(person) = known
            && engine.calendar.effective_status(&person, engine.now())
                == EmploymentStatus::Terminated
        {
            let reason = format!(
                "{} has left according to the source of truth (employee {}); a leaver cannot sign in to roster",
                identity.email, person.employee_id
            );
            return refuse(self, &identity, "left the company", reason).await;
        }

        let roles = provider
            .settings()
            .roles
            .roles_of(&identity.email, &identity.groups);
        if roles.is_empty() {
            let groups = if identity.groups.is_empty() {
                "none".to_string()
            } else {
                identity
                    .groups
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let reason = format!(
                "{} holds no role in roster: none of their IdP groups ({groups}) nor their email is listed in [web.roles]; an administrator adds one of them there",
                identity.email
            );
            return refuse(self, &identity, "no role", reason).await;
        }
        let scopes: BTreeSet<Scope> = roles
            .iter()
            .flat_map(|r| r.scopes().iter().copied())
            .collect();
        let email = identity.email.to_lowercase();
        Ok(OidcSignedIn {
            principal: Principal::new(PrincipalKind::User, email.clone())
                .with_groups(identity.groups.iter().cloned()),
            email,
            name: identity.name,
            issuer: identity.issuer,
            subject: identity.subject,
            roles,
            scopes,
            auth_time_ms: identity.auth_time.map(|t| t.saturating_mul(1000)),
            fresh: identity.fresh,
            return_to: identity.return_to,
        })
    }

    /// [`Roster::oidc_complete`], then a web session for the person
    /// ([`Roster::start_web_session`]): the cookie's value, the session
    /// and where to go. `previous` is the browser's session cookie, if it
    /// sent one: that session ends, so a fresh sign-in replaces it rather
    /// than adding a second one.
    pub async fn oidc_sign_in(
        &self,
        provider: &OidcProvider,
        callback: &OidcCallback,
        limits: &SessionLimits,
        previous: Option<&str>,
    ) -> Result<(String, WebSession, OidcSignedIn), EngineError> {
        let signed = self.oidc_complete(provider, callback).await?;
        let (id, session) = self
            .start_web_session(&signed.web_identity(), limits)
            .await?;
        if let Some(old) = previous {
            self.sign_out_web(old).await?;
        }
        Ok((id, session, signed))
    }
}

/// Audits the refusal of a verified identity and returns it.
async fn refuse(
    roster: &Roster,
    identity: &VerifiedIdentity,
    why: &str,
    reason: String,
) -> Result<OidcSignedIn, EngineError> {
    let actor = Principal::new(PrincipalKind::User, identity.email.to_lowercase()).actor();
    roster
        .engine()
        .audit_as(
            &actor,
            AuditKind::WebSignInRefused,
            &identity.email,
            json!({
                "via": "oidc",
                "why": why,
                "issuer": identity.issuer,
                "subject": identity.subject,
                "groups": identity.groups,
            }),
        )
        .await?;
    Err(EngineError::NotPermitted(reason))
}
