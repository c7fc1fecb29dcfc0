//! REST API and AI-agent tokens (migration 0015): the record of each one.
//!
//! The store only records: a token's public prefix, the SHA-256 of the
//! whole token, who it acts as and with which scopes, when it expires,
//! was revoked and was last used. Drawing tokens, hashing, constant-time
//! comparison and the scope rules are the engine's
//! (`roster_engine::app::tokens`); the token itself is never stored.

use crate::reader::Read as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// One API or agent token, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// The token's first characters: its public name (unique).
    pub prefix: String,
    /// SHA-256 of the whole token, lower-case hex.
    pub hash: String,
    /// `token` (REST) or `agent` (MCP), as `PrincipalKind::as_str`.
    pub kind: String,
    /// The principal's name it acts as.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Who created it (an actor string, `user:alice`).
    pub created_by: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl std::fmt::Debug for ApiTokenRecord {
    // The hash grants nothing, but logs have no use for it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenRecord")
            .field("prefix", &self.prefix)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("expires_ms", &self.expires_ms)
            .field("revoked_ms", &self.revoked_ms)
            .finish()
    }
}

const COLUMNS: &str = "prefix, hash, kind, name, scopes, created_by, created_ms, expires_ms, \
                       last_used_ms, revoked_ms";

impl Store {
    /// Stores a new token record. Fails with [`StoreError::Invalid`] if the
    /// prefix is already used (the caller draws a new token and retries).
    pub async fn api_token_insert(&self, r: &ApiTokenRecord) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO api_token (prefix, hash, kind, name, scopes, created_by, created_ms, \
             expires_ms, last_used_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.prefix.clone())
        .bind(r.hash.clone())
        .bind(r.kind.clone())
        .bind(r.name.clone())
        .bind(r.scopes.clone())
        .bind(r.created_by.clone())
        .bind(r.created_ms)
        .bind(r.expires_ms)
        .bind(r.last_used_ms)
        .bind(r.revoked_ms)
        .execute(&self.write)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if crate::scim::is_unique_violation(&e) => Err(StoreError::Invalid(format!(
                "token prefix {} already exists",
                r.prefix
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The token named `prefix`, revoked or not.
    pub async fn api_token(&self, prefix: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_token WHERE prefix = $1"
        )))
        .bind(prefix.to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Every token, oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_token ORDER BY created_ms, prefix"
        )))
        .read_all(self)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Revokes the token `prefix` at `at_ms`. Returns false if there is no
    /// such live token (unknown, or already revoked).
    pub async fn api_token_revoke(&self, prefix: &str, at_ms: i64) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE api_token SET revoked_ms = $2 WHERE prefix = $1 AND revoked_ms IS NULL",
        )
        .bind(prefix.to_string())
        .bind(at_ms)
        .execute(&self.write)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Records that token `prefix` was used at `at_ms`.
    pub async fn api_token_touch(&self, prefix: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_token SET last_used_ms = $2 WHERE prefix = $1")
            .bind(prefix.to_string())
            .bind(at_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

fn decode(row: &AnyRow) -> Result<ApiTokenRecord, StoreError> {
    Ok(ApiTokenRecord {
        prefix: row.try_get("prefix")?,
        hash: row.try_get("hash")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_by: row.try_get("created_by")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}
