//! Tokens for the REST API and for AI agents: create, list, revoke,
//! authenticate. The application layer's half of `roster token …`,
//! `/api/v1` and `/mcp`.
//!
//! A token is `rat_` followed by 32 random bytes in unpadded base64url (47
//! characters). It is shown once, when created; only its SHA-256 is
//! stored. Its first [`PREFIX_LEN`] characters (`rat_` + 8) are its public
//! name, the *prefix*: listings show it, revocation takes it, audit
//! records name it. Authentication looks the record up by prefix and
//! compares the SHA-256 of the presented token with the stored one in
//! constant time (`subtle`).
//!
//! Every token acts as one [`Principal`]: `token:<name>` for a REST
//! client, `agent:<name>` for an AI agent, so the audit log and separation
//! of duties tell them apart from people. It carries [`Scope`]s; each
//! route and tool declares the scope it needs ([`Authenticated::require`]).
//! An agent token can carry only `read` and `propose`
//! ([`Scope::agent_may`]): creating one with more is refused, and
//! [`Authenticated::allows`] refuses an agent anything else even if a
//! record were edited by hand.
//!
//! Every token expires (default 90 days, at most [`MAX_TTL`]); an expired
//! or revoked token authenticates nothing. `last_used` is written at most
//! once a minute per token, so reads do not turn into writes.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use roster_core::{Principal, PrincipalKind, Scope};
use roster_store::{ApiTokenRecord, AuditKind, StoreError};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Roster;
use crate::engine::{EngineError, ms};

/// Every API token starts with this.
pub const TOKEN_PREFIX: &str = "rat_";
/// Characters of a token that name it (`rat_` + 8).
pub const PREFIX_LEN: usize = 12;
/// Total length: `rat_` + 43 base64url characters for 32 bytes.
pub const TOKEN_LEN: usize = 47;
/// A token's lifetime unless the creator says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// The longest lifetime a token may have.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
/// `last_used` is written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// What to create.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    /// The principal's name it acts as (`ci-deploy`, `claude`).
    pub name: String,
    /// An AI agent's token (`agent:<name>`, read and propose only) rather
    /// than a REST client's (`token:<name>`).
    pub agent: bool,
    pub scopes: BTreeSet<Scope>,
    /// How long it lives; [`DEFAULT_TTL`] when `None`.
    pub ttl: Option<Duration>,
}

/// A token as listings show it: never the token, never its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiTokenInfo {
    pub prefix: String,
    /// The principal it acts as (`token:ci`, `agent:claude`).
    pub principal: String,
    pub scopes: Vec<Scope>,
    pub created_by: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// A token just created: the only time the secret exists outside the
/// caller's hands.
#[derive(Debug)]
pub struct CreatedApiToken {
    pub info: ApiTokenInfo,
    /// The token itself. Show it once; it cannot be recovered.
    pub secret: String,
}

/// A request's authenticated caller: the principal the token acts as and
/// what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    scopes: BTreeSet<Scope>,
    /// The token's public prefix.
    pub token: String,
}

impl Authenticated {
    /// Whether the caller may use `scope`. An agent never may approve,
    /// apply, offboard or administer, whatever its record says.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            && (self.principal.kind != PrincipalKind::Agent || scope.agent_may())
    }

    /// The principal, if the caller may use `scope`; else a refusal that
    /// names the missing scope (`ENG-0008`).
    pub fn require(&self, scope: Scope) -> Result<&Principal, EngineError> {
        if self.allows(scope) {
            Ok(&self.principal)
        } else {
            Err(EngineError::NotPermitted(format!(
                "token {} ({}) lacks the scope `{scope}`{}",
                self.token,
                self.principal,
                if self.principal.kind == PrincipalKind::Agent && !scope.agent_may() {
                    "; an agent token can never carry it"
                } else {
                    "; create a token with it: roster token create --scope …"
                }
            )))
        }
    }

    /// The scopes it may use.
    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().copied().filter(|s| self.allows(*s))
    }

    /// A caller for tests and in-process surfaces (the MCP server over
    /// stdio started by an operator): `principal` with `scopes`, agent
    /// limits applied.
    pub fn local(principal: Principal, scopes: impl IntoIterator<Item = Scope>) -> Authenticated {
        Authenticated {
            principal,
            scopes: scopes.into_iter().collect(),
            token: "local".into(),
        }
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn scopes_text(scopes: &BTreeSet<Scope>) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn info(r: &ApiTokenRecord) -> ApiTokenInfo {
    ApiTokenInfo {
        prefix: r.prefix.clone(),
        principal: format!("{}:{}", r.kind, r.name),
        scopes: r
            .scopes
            .split_whitespace()
            .filter_map(Scope::parse)
            .collect(),
        created_by: r.created_by.clone(),
        created_ms: r.created_ms,
        expires_ms: r.expires_ms,
        last_used_ms: r.last_used_ms,
        revoked_ms: r.revoked_ms,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

impl Roster {
    /// Creates a token for `req.name` with `req.scopes`, as `by` asked
    /// (audited `api.token.created`; the token itself is never logged).
    /// Refused for an agent caller, an agent token with a scope beyond
    /// read and propose, no scope, or a lifetime beyond [`MAX_TTL`].
    pub async fn create_api_token(
        &self,
        by: &Principal,
        req: &NewApiToken,
    ) -> Result<CreatedApiToken, EngineError> {
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(
                "an agent cannot create tokens".into(),
            ));
        }
        if !valid_name(&req.name) {
            return Err(EngineError::Refused(format!(
                "token name {:?} is not valid: use 1–64 letters, digits, '-', '_', '.' or '@'",
                req.name
            )));
        }
        if req.scopes.is_empty() {
            return Err(EngineError::Refused(
                "a token needs at least one scope: read, propose, approve, apply, offboard, admin"
                    .into(),
            ));
        }
        if req.agent {
            let beyond: Vec<&str> = req
                .scopes
                .iter()
                .filter(|s| !s.agent_may())
                .map(|s| s.as_str())
                .collect();
            if !beyond.is_empty() {
                return Err(EngineError::Refused(format!(
                    "an agent token can carry only read and propose, not {}: approving, applying, offboarding and administering stay with people",
                    beyond.join(", ")
                )));
            }
        }
        let ttl = req.ttl.unwrap_or(DEFAULT_TTL);
        if ttl > MAX_TTL || ttl.is_zero() {
            return Err(EngineError::Refused(format!(
                "a token lives between a second and {} days",
                MAX_TTL.as_secs() / 86_400
            )));
        }
        let engine = self.engine();
        let now = ms(engine.now());
        let kind = if req.agent {
            PrincipalKind::Agent
        } else {
            PrincipalKind::ApiToken
        };
        // A prefix collision (2^-48 per pair) draws again.
        for _ in 0..5 {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            let record = ApiTokenRecord {
                prefix: secret[..PREFIX_LEN].to_string(),
                hash: hash(&secret),
                kind: kind.as_str().to_string(),
                name: req.name.clone(),
                scopes: scopes_text(&req.scopes),
                created_by: by.actor(),
                created_ms: now,
                expires_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
                last_used_ms: None,
                revoked_ms: None,
            };
            match engine.store.api_token_insert(&record).await {
                Ok(()) => {}
                Err(StoreError::Invalid(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            engine
                .audit_as(
                    &by.actor(),
                    AuditKind::ApiTokenCreated,
                    &record.prefix,
                    json!({
                        "principal": format!("{}:{}", record.kind, record.name),
                        "scopes": record.scopes,
                        "expires_ms": record.expires_ms,
                    }),
                )
                .await?;
            return Ok(CreatedApiToken {
                info: info(&record),
                secret,
            });
        }
        Err(EngineError::Refused(
            "could not draw an unused token prefix; try again".into(),
        ))
    }

    /// Every token, oldest first: prefixes, principals, scopes and dates;
    /// never a token or its hash.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, EngineError> {
        Ok(self
            .engine()
            .store
            .api_tokens()
            .await?
            .iter()
            .map(info)
            .collect())
    }

    /// Revokes the token named `prefix` (audited). Refused for an agent
    /// caller; `Ok(false)` when there is no such live token.
    pub async fn revoke_api_token(
        &self,
        by: &Principal,
        prefix: &str,
    ) -> Result<bool, EngineError> {
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(
                "an agent cannot revoke tokens".into(),
            ));
        }
        let engine = self.engine();
        let revoked = engine
            .store
            .api_token_revoke(prefix, ms(engine.now()))
            .await?;
        if revoked {
            engine
                .audit_as(&by.actor(), AuditKind::ApiTokenRevoked, prefix, json!({}))
                .await?;
        }
        Ok(revoked)
    }

    /// Who `presented` (the bearer token of a request) is, and what it may
    /// do. `ENG-0010` for anything but a live, unexpired token; the
    /// message never says which check failed beyond "expired" and
    /// "revoked", and never echoes the token.
    pub async fn authenticate(&self, presented: &str) -> Result<Authenticated, EngineError> {
        let presented = presented.trim();
        let unknown = || EngineError::Unauthenticated("the token is not valid".into());
        if presented.len() != TOKEN_LEN || !presented.starts_with(TOKEN_PREFIX) {
            return Err(unknown());
        }
        let engine = self.engine();
        let Some(record) = engine.store.api_token(&presented[..PREFIX_LEN]).await? else {
            return Err(unknown());
        };
        let matches: bool = hash(presented)
            .as_bytes()
            .ct_eq(record.hash.as_bytes())
            .into();
        if !matches {
            return Err(unknown());
        }
        let now = ms(engine.now());
        if record.revoked_ms.is_some() {
            return Err(EngineError::Unauthenticated(format!(
                "token {} was revoked",
                record.prefix
            )));
        }
        if record.expires_ms <= now {
            return Err(EngineError::Unauthenticated(format!(
                "token {} expired; create a new one with `roster token create`",
                record.prefix
            )));
        }
        let Some(kind) = PrincipalKind::parse(&record.kind)
            .filter(|k| matches!(k, PrincipalKind::ApiToken | PrincipalKind::Agent))
        else {
            return Err(unknown());
        };
        if record
            .last_used_ms
            .is_none_or(|t| now.saturating_sub(t) >= TOUCH_EVERY_MS)
        {
            engine.store.api_token_touch(&record.prefix, now).await?;
        }
        Ok(Authenticated {
            principal: Principal::new(kind, record.name.clone()),
            scopes: record
                .scopes
                .split_whitespace()
                .filter_map(Scope::parse)
                .collect(),
            token: record.prefix,
        })
    }
}
