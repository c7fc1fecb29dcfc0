//! The web UI's users and sessions (migration 0020): the record of each.
//!
//! The store only records: a local user's name, role, email and argon2
//! password hash (a PHC string), and each sign-in's session under the
//! SHA-256 of its id. Hashing passwords, drawing session ids, expiry and
//! the role rules are the engine's (`roster_engine::app::web_users`); a
//! password or a session id is never stored.

use crate::reader::Read as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// One local web UI user, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct WebUserRecord {
    pub name: String,
    /// The address that ties the user to a person of the sources.
    pub email: Option<String>,
    /// `viewer`, `operator`, `approver` or `admin`.
    pub role: String,
    /// argon2id PHC string; `None`: no password sign-in.
    pub password_hash: Option<String>,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl std::fmt::Debug for WebUserRecord {
    // The hash grants nothing directly, but logs have no use for it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebUserRecord")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("has_password", &self.password_hash.is_some())
            .finish()
    }
}

/// One web UI session, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSessionRecord {
    /// SHA-256 (hex) of the session id the browser holds.
    pub id_hash: String,
    pub user_name: String,
    pub email: Option<String>,
    /// `local` or `oidc`.
    pub via: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    /// The role at sign-in.
    pub role: String,
    pub created_ms: i64,
    /// When the person last proved who they are.
    pub authenticated_ms: i64,
    pub last_seen_ms: i64,
    /// The absolute end.
    pub expires_ms: i64,
    pub ended_ms: Option<i64>,
    pub ended_reason: Option<String>,
}

const USER_COLUMNS: &str = "name, email, role, password_hash, created_by, created_ms, updated_ms";
const SESSION_COLUMNS: &str = "id_hash, user_name, email, via, issuer, subject, role, created_ms, \
                               authenticated_ms, last_seen_ms, expires_ms, ended_ms, ended_reason";

impl Store {
    /// Adds a user. [`StoreError::Invalid`] if the name is taken.
    pub async fn web_user_insert(&self, u: &WebUserRecord) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO web_user (name, email, role, password_hash, created_by, created_ms, \
             updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.name.clone())
        .bind(u.email.clone())
        .bind(u.role.clone())
        .bind(u.password_hash.clone())
        .bind(u.created_by.clone())
        .bind(u.created_ms)
        .bind(u.updated_ms)
        .execute(&self.write)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if crate::scim::is_unique_violation(&e) => Err(StoreError::Invalid(format!(
                "a web user named {} already exists",
                u.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The user named `name`.
    pub async fn web_user(&self, name: &str) -> Result<Option<WebUserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM web_user WHERE name = $1"
        )))
        .bind(name.to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode_user).transpose()
    }

    /// Every user, by name.
    pub async fn web_users(&self) -> Result<Vec<WebUserRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM web_user ORDER BY name"
        )))
        .read_all(self)
        .await?;
        rows.iter().map(decode_user).collect()
    }

    /// Removes the user; false if there was none.
    pub async fn web_user_delete(&self, name: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM web_user WHERE name = $1")
            .bind(name.to_string())
            .execute(&self.write)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Sets the user's role; false if there is no such user.
    pub async fn web_user_set_role(
        &self,
        name: &str,
        role: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE web_user SET role = $2, updated_ms = $3 WHERE name = $1")
            .bind(name.to_string())
            .bind(role.to_string())
            .bind(at_ms)
            .execute(&self.write)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Stores a new session.
    pub async fn web_session_insert(&self, s: &WebSessionRecord) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO web_session ({SESSION_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(s.id_hash.clone())
        .bind(s.user_name.clone())
        .bind(s.email.clone())
        .bind(s.via.clone())
        .bind(s.issuer.clone())
        .bind(s.subject.clone())
        .bind(s.role.clone())
        .bind(s.created_ms)
        .bind(s.authenticated_ms)
        .bind(s.last_seen_ms)
        .bind(s.expires_ms)
        .bind(s.ended_ms)
        .bind(s.ended_reason.clone())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The session stored under `id_hash`, ended or not.
    pub async fn web_session(&self, id_hash: &str) -> Result<Option<WebSessionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM web_session WHERE id_hash = $1"
        )))
        .bind(id_hash.to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode_session).transpose()
    }

    /// Records that the session was used at `at_ms`.
    pub async fn web_session_touch(&self, id_hash: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_session SET last_seen_ms = $2 WHERE id_hash = $1")
            .bind(id_hash.to_string())
            .bind(at_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records a fresh proof of identity for a live session.
    pub async fn web_session_reauthenticated(
        &self,
        id_hash: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE web_session SET authenticated_ms = $2, last_seen_ms = $2 \
             WHERE id_hash = $1 AND ended_ms IS NULL",
        )
        .bind(id_hash.to_string())
        .bind(at_ms)
        .execute(&self.write)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Ends one live session; false if it was not live.
    pub async fn web_session_end(
        &self,
        id_hash: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE web_session SET ended_ms = $2, ended_reason = $3 \
             WHERE id_hash = $1 AND ended_ms IS NULL",
        )
        .bind(id_hash.to_string())
        .bind(at_ms)
        .bind(reason.to_string())
        .execute(&self.write)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Ends every live session of the user `name` or (when given) with
    /// the address `email` (lower case); returns how many.
    pub async fn web_sessions_end_for(
        &self,
        name: Option<&str>,
        email: Option<&str>,
        at_ms: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let mut ended = 0;
        if let Some(name) = name {
            ended += sqlx::query(
                "UPDATE web_session SET ended_ms = $2, ended_reason = $3 \
                 WHERE ended_ms IS NULL AND user_name = $1",
            )
            .bind(name.to_string())
            .bind(at_ms)
            .bind(reason.to_string())
            .execute(&self.write)
            .await?
            .rows_affected();
        }
        if let Some(email) = email {
            ended += sqlx::query(
                "UPDATE web_session SET ended_ms = $2, ended_reason = $3 \
                 WHERE ended_ms IS NULL AND LOWER(email) = $1",
            )
            .bind(email.to_lowercase())
            .bind(at_ms)
            .bind(reason.to_string())
            .execute(&self.write)
            .await?
            .rows_affected();
        }
        Ok(ended)
    }

    /// Every live session (not ended, not past its absolute end), by
    /// address, for matching against leavers.
    pub async fn web_sessions_live(
        &self,
        now_ms: i64,
    ) -> Result<Vec<WebSessionRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM web_session WHERE ended_ms IS NULL AND expires_ms > $1 \
             ORDER BY created_ms"
        )))
        .bind(now_ms)
        .read_all(self)
        .await?;
        rows.iter().map(decode_session).collect()
    }
}

fn decode_user(row: &AnyRow) -> Result<WebUserRecord, StoreError> {
    Ok(WebUserRecord {
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        password_hash: row.try_get("password_hash")?,
        created_by: row.try_get("created_by")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn decode_session(row: &AnyRow) -> Result<WebSessionRecord, StoreError> {
    Ok(WebSessionRecord {
        id_hash: row.try_get("id_hash")?,
        user_name: row.try_get("user_name")?,
        email: row.try_get("email")?,
        via: row.try_get("via")?,
        issuer: row.try_get("issuer")?,
        subject: row.try_get("subject")?,
        role: row.try_get("role")?,
        created_ms: row.try_get("created_ms")?,
        authenticated_ms: row.try_get("authenticated_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        ended_reason: row.try_get("ended_reason")?,
    })
}
