//! Sign-in to the web UI through the company's identity provider: who may
//! come in, and as whom. The OpenID Connect exchange itself is
//! [`crate::oidc`]; the session the web UI then opens is its own business.
//!
//! [`Roster::oidc_begin`] starts a sign-in (the authorize URL; the pending
//! state stays server-side, good once, for ten minutes).
//! [`Roster::oidc_complete`] finishes it and decides:
//!
//! 1. the ID token must verify (signature, issuer, audience, expiry,
//!    nonce, and `auth_time` for a fresh sign-in): otherwise
//!    `ENG-0010` with the `OIDC-` code that says why;
//! 2. **no access by default**: the person's IdP groups and email must map
//!    to at least one role in `[web.roles]`, else `ENG-0008` naming their
//!    groups and the table to edit;
//! 3. **roster governs its own users**: someone the sources of truth say
//!    has left (terminated, or past their end date) cannot sign in, even
//!    while the IdP still lets them; `ENG-0008`. A person the sources do
//!    not know (a contractor, a break-glass admin) is judged by the role
//!    map alone.
//!
//! Both a sign-in and a refusal of a verified identity are audited
//! (`ui.oidc.signin`, `ui.oidc.refused`), with the IdP groups and roles,
//! never a token. A token that does not verify is not audited (its claims
//! are not trustworthy) but logged as a warning.

use std::collections::BTreeSet;

use roster_core::{Email, EmploymentStatus, Principal, PrincipalKind, Scope};
use roster_store::AuditKind;
use serde_json::json;

use super::Roster;
use crate::engine::{EngineError, ms};
use crate::oidc::{OidcCallback, OidcError, OidcProvider, Role, SignInPurpose, SignInStart};

/// A person signed in through the IdP, verified and let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSignedIn {
    /// `session:<email>`, with the IdP groups (so `approvers =
    /// ["group:finance"]` in the policy works with IdP groups).
    pub principal: Principal,
    pub email: String,
    pub name: Option<String>,
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
        let settings = provider.settings();
        let principal = Principal::new(PrincipalKind::UiSession, identity.email.to_lowercase())
            .with_groups(identity.groups.iter().cloned());
        // Roster governs its own users: a leaver stays out.
        let known = match Email::parse(&identity.email) {
            Ok(email) => engine.store.person_by_email(&email).await?,
            Err(_) => None,
        };
        if let Some(person) = known
            && engine.calendar.effective_status(&person, engine.now())
                == EmploymentStatus::Terminated
        {
            return refuse(self, &identity, format!(
                "{} has left according to the source of truth (employee {}); a leaver cannot sign in to roster",
                identity.email, person.employee_id
            ))
            .await;
        }

        let roles = settings.roles.roles_of(&identity.email, &identity.groups);
        if roles.is_empty() {
            return refuse(self, &identity, format!(
                "{} holds no role in roster: none of their IdP groups ({}) nor their email is listed in [web.roles]; an administrator adds one of them there",
                identity.email,
                if identity.groups.is_empty() {
                    "none".to_string()
                } else {
                    identity
                        .groups
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
            .await;
        }
        let scopes: BTreeSet<Scope> = roles.iter().flat_map(|r| r.scopes()).collect();
        engine
            .audit_as(
                &principal.actor(),
                AuditKind::OidcSignIn,
                &identity.email,
                json!({
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                    "groups": identity.groups,
                    "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    "fresh": identity.fresh,
                    "at_ms": ms(engine.now()),
                }),
            )
            .await?;
        Ok(OidcSignedIn {
            principal,
            email: identity.email.clone(),
            name: identity.name,
            roles,
            scopes,
            auth_time_ms: identity.auth_time.map(|t| t.saturating_mul(1000)),
            fresh: identity.fresh,
            return_to: identity.return_to,
        })
    }
}

/// Audits the refusal of a verified identity and returns it.
async fn refuse(
    roster: &Roster,
    identity: &crate::oidc::VerifiedIdentity,
    reason: String,
) -> Result<OidcSignedIn, EngineError> {
    let actor = Principal::new(PrincipalKind::UiSession, identity.email.to_lowercase()).actor();
    roster
        .engine()
        .audit_as(
            &actor,
            AuditKind::OidcSignInRefused,
            &identity.email,
            json!({
                "issuer": identity.issuer,
                "subject": identity.subject,
                "groups": identity.groups,
                "reason": reason,
            }),
        )
        .await?;
    Err(EngineError::NotPermitted(reason))
}
