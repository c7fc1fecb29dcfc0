//! Bearer tokens for inbound SCIM: create, list, revoke, verify.
//!
//! A token is `rst_` followed by 32 random bytes in unpadded base64url
//! (47 characters in all). Only its SHA-256 is stored. Its first
//! [`PREFIX_LEN`] characters (`rst_` + 8) are its public name, the
//! *prefix*: listings show it, revocation takes it, and audit records use
//! it (`scim:<connection>:<prefix>`). Guessing a token from its prefix
//! still leaves 35 random characters (≈208 bits).
//!
//! Verification looks the token up by prefix (an index, not a scan), then
//! compares the SHA-256 of the presented token with the stored hash in
//! constant time (`subtle`). A verified token is cached in memory for
//! [`ScimConfig::token_cache_ttl`](crate::ScimConfig) (2 s by default), so a
//! revocation made by another process (the CLI) takes effect within that
//! time; `last_used` is written at most once a minute per token so reads
//! do not turn into writes.
//!
//! The functions here take a [`Store`] and plain values (no clap types) so
//! the CLI can call them directly: `roster scim token create|list|revoke`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use roster_scim::ScimError;
use roster_store::{AuditEvent, ScimTokenRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "rst_";
/// Characters of a token that name it (`rst_` + 8).
pub const PREFIX_LEN: usize = 12;
/// Total token length: `rst_` + 43 base64url characters for 32 bytes.
pub const TOKEN_LEN: usize = 47;
/// How often `last_used` is written for one token.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A token as listed: never the secret, never its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub prefix: String,
    pub connection: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl From<ScimTokenRecord> for TokenInfo {
    fn from(r: ScimTokenRecord) -> Self {
        TokenInfo {
            prefix: r.prefix,
            connection: r.connection,
            created_ms: r.created_ms,
            last_used_ms: r.last_used_ms,
            revoked_ms: r.revoked_ms,
        }
    }
}

/// A newly created token. `token` is shown once and is not recoverable.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug output.
        f.debug_struct("CreatedToken")
            .field("token", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error(
        "SCIM-TOKEN-0001 invalid connection name {0:?}: use 1-64 letters, digits, '.', '_' or '-'"
    )]
    InvalidConnection(String),
    #[error("SCIM-TOKEN-0002 no active SCIM token {0:?}")]
    NotFound(String),
    #[error("SCIM-TOKEN-0003 {0}")]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidConnection(_) => "SCIM-TOKEN-0001",
            TokenError::NotFound(_) => "SCIM-TOKEN-0002",
            TokenError::Store(_) => "SCIM-TOKEN-0003",
        }
    }
}

/// Whether `name` is acceptable as a connection name in SCIM URLs.
pub fn valid_connection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// SHA-256 of a token, lower-case hex (what the store keeps).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates a token for `connection` and records `scim.token.created` in
/// the audit log as `actor`. The returned secret is not stored anywhere.
pub async fn create_token(
    store: &Store,
    connection: &str,
    actor: &str,
    now_ms: i64,
) -> Result<CreatedToken, TokenError> {
    if !valid_connection_name(connection) {
        return Err(TokenError::InvalidConnection(connection.to_string()));
    }
    // A prefix collision (48 random bits) is astronomically rare; retry a
    // few times rather than fail.
    let mut attempt = 0;
    let (token, record) = loop {
        let token = new_secret();
        let record = ScimTokenRecord {
            prefix: token[..PREFIX_LEN].to_string(),
            connection: connection.to_string(),
            hash: hash_token(&token),
            created_ms: now_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        match store.scim_token_insert(&record).await {
            Ok(()) => break (token, record),
            Err(StoreError::Invalid(_)) if attempt < 3 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    store
        .append_audit(AuditEvent {
            at_ms: now_ms,
            actor: actor.to_string(),
            kind: roster_store::AuditKind::ScimTokenCreated.as_str().into(),
            subject: format!("scim:{connection}:{}", record.prefix),
            data: serde_json::json!({"connection": connection, "prefix": record.prefix}),
        })
        .await?;
    Ok(CreatedToken {
        token,
        info: record.into(),
    })
}

/// Tokens (of one connection, or all), oldest first, including revoked ones.
pub async fn list_tokens(
    store: &Store,
    connection: Option<&str>,
) -> Result<Vec<TokenInfo>, TokenError> {
    Ok(store
        .scim_tokens(connection)
        .await?
        .into_iter()
        .map(TokenInfo::from)
        .collect())
}

/// Revokes the token named `prefix` (a whole token is accepted too and cut
/// to its prefix) and records `scim.token.revoked` as `actor`.
pub async fn revoke_token(
    store: &Store,
    prefix: &str,
    actor: &str,
    now_ms: i64,
) -> Result<TokenInfo, TokenError> {
    let prefix = prefix.get(..PREFIX_LEN).unwrap_or(prefix);
    let Some(record) = store.scim_token(prefix).await? else {
        return Err(TokenError::NotFound(prefix.to_string()));
    };
    if !store.scim_token_revoke(prefix, now_ms).await? {
        return Err(TokenError::NotFound(prefix.to_string()));
    }
    store
        .append_audit(AuditEvent {
            at_ms: now_ms,
            actor: actor.to_string(),
            kind: roster_store::AuditKind::ScimTokenRevoked.as_str().into(),
            subject: format!("scim:{}:{prefix}", record.connection),
            data: serde_json::json!({"connection": record.connection, "prefix": prefix}),
        })
        .await?;
    let mut info = TokenInfo::from(record);
    info.revoked_ms = Some(now_ms);
    Ok(info)
}

/// Who is calling: the connection the token belongs to and its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub connection: String,
    pub prefix: String,
}

impl Caller {
    /// The audit actor: `scim:<connection>:<prefix>`.
    pub fn actor(&self) -> String {
        format!("scim:{}:{}", self.connection, self.prefix)
    }
}

#[derive(Clone)]
struct Cached {
    hash: [u8; 32],
    connection: String,
    live: bool,
    fetched: Instant,
    touched: Option<Instant>,
}

/// Verifies bearer tokens against the store with a short-lived cache.
pub(crate) struct TokenVerifier {
    ttl: Duration,
    cache: RwLock<HashMap<String, Cached>>,
}

fn decode_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let v = hex::decode(hex_hash).ok()?;
    v.try_into().ok()
}

impl TokenVerifier {
    pub(crate) fn new(ttl: Duration) -> Self {
        TokenVerifier {
            ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Checks an `Authorization` header value for `connection`: 401 when
    /// missing, malformed, unknown or revoked; 403 when the token belongs
    /// to another connection.
    pub(crate) async fn verify(
        &self,
        store: &Store,
        authorization: Option<&str>,
        connection: &str,
        now_ms: i64,
    ) -> Result<Caller, ScimError> {
        let unauthorized = || ScimError::unauthorized("a valid bearer token is required");
        let header = authorization.ok_or_else(unauthorized)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized());
        }
        let token = token.trim();
        if token.len() != TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) || !token.is_ascii() {
            return Err(unauthorized());
        }
        let prefix = &token[..PREFIX_LEN];
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();

        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(prefix).cloned())
            .filter(|c| c.fetched.elapsed() < self.ttl);
        let entry = match cached {
            Some(c) => c,
            None => {
                let record = store
                    .scim_token(prefix)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "token lookup failed");
                        ScimError::internal("internal error while checking the token")
                    })?
                    .ok_or_else(unauthorized)?;
                let hash = decode_hash(&record.hash).ok_or_else(|| {
                    tracing::error!(prefix, "stored SCIM token hash is not SHA-256 hex");
                    unauthorized()
                })?;
                let touched = self
                    .cache
                    .read()
                    .ok()
                    .and_then(|c| c.get(prefix).and_then(|e| e.touched));
                let entry = Cached {
                    hash,
                    connection: record.connection,
                    live: record.revoked_ms.is_none(),
                    fetched: Instant::now(),
                    touched,
                };
                if let Ok(mut c) = self.cache.write() {
                    // Bound the cache: entries only come from valid-prefix
                    // tokens that exist, but be safe against many tokens.
                    if c.len() > 10_000 {
                        c.clear();
                    }
                    c.insert(prefix.to_string(), entry.clone());
                }
                entry
            }
        };
        if !bool::from(entry.hash.ct_eq(&presented)) || !entry.live {
            return Err(unauthorized());
        }
        if entry.connection != connection {
            return Err(ScimError::forbidden(
                "this token is not valid for this SCIM connection",
            ));
        }
        let due = entry.touched.is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
        if due {
            if let Ok(mut c) = self.cache.write()
                && let Some(e) = c.get_mut(prefix)
            {
                e.touched = Some(Instant::now());
            }
            let store = store.clone();
            let p = prefix.to_string();
            // Off the request path: a slow write must not delay the call.
            tokio::spawn(async move {
                if let Err(e) = store.scim_token_touch(&p, now_ms).await {
                    tracing::warn!(error = %e, "recording SCIM token use failed");
                }
            });
        }
        Ok(Caller {
            connection: connection.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn connection_names() {
        for ok in ["okta", "entra-prod", "a.b_c", "X1"] {
            assert!(valid_connection_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_connection_name(bad), "{bad}");
        }
    }
}
