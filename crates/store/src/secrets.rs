//! Sealed secrets: vendor credentials kept in the database, encrypted.
//!
//! The store never sees a secret in the clear. Callers seal values with
//! `roster-secrets` (a master key that lives outside the database, the
//! secret's name bound in as authenticated data) and hand the store the
//! sealed string, `v1:<key-id>:<base64url>`. The store keeps it by name with
//! its creation and last-update times, and hands it back unchanged.
//!
//! As a guard against a caller storing plaintext by mistake, the store
//! refuses any value that does not have the sealed shape
//! (`v<digits>:<key-id>:<data>`). It cannot tell a real sealed value from a
//! forged one; opening (which authenticates) is the caller's job.

use crate::reader::Read as _;
use sqlx::Row;

use crate::{Store, StoreError};

/// A stored secret's name and times; never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    pub name: String,
    /// When the name was first stored (unix ms, the caller's clock).
    pub created_ms: i64,
    /// When the value was last replaced.
    pub updated_ms: i64,
}

impl Store {
    /// Stores (or replaces) the sealed value of the secret `name`. A
    /// replacement keeps the original `created_ms`.
    pub async fn put_secret(
        &self,
        name: &str,
        sealed: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid("a secret needs a name".into()));
        }
        if !looks_sealed(sealed) {
            // The message names the secret but never echoes the value: it
            // may be the plaintext this check exists to keep out.
            return Err(StoreError::Invalid(format!(
                "the value for secret {name:?} is not sealed (expected v1:<key-id>:<data>); \
                 the store keeps only encrypted secrets"
            )));
        }
        sqlx::query(
            "INSERT INTO secret (name, sealed, created_ms, updated_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms",
        )
        .bind(name.to_string())
        .bind(sealed.to_string())
        .bind(now_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The sealed value of the secret `name`, if stored.
    pub async fn secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM secret WHERE name = $1")
            .bind(name.to_string())
            .read_optional(self)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("sealed")?),
            None => None,
        })
    }

    /// Every stored secret's name and times, ordered by name.
    pub async fn secret_names(&self) -> Result<Vec<SecretMeta>, StoreError> {
        let rows = sqlx::query("SELECT name, created_ms, updated_ms FROM secret ORDER BY name")
            .read_all(self)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(SecretMeta {
                    name: r.try_get("name")?,
                    created_ms: r.try_get("created_ms")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// Every stored secret's name and sealed value, ordered by name: what
    /// a master-key rotation re-seals.
    pub async fn sealed_secrets(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, sealed FROM secret ORDER BY name")
            .read_all(self)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("sealed")?)))
            .collect()
    }

    /// Replaces sealed values in one transaction: each `(name, old, new)`
    /// is written only if the secret still holds `old` (so a `secret set`
    /// that raced the rotation is never overwritten with a stale value).
    /// If any one no longer matches, nothing is written and the error
    /// names it. `updated_ms` is kept: the credential itself is unchanged,
    /// and its age is what the credential-lifetime warnings count.
    pub async fn reseal_secrets(
        &self,
        changes: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        if let Some((name, _, _)) = changes.iter().find(|(_, _, new)| !looks_sealed(new)) {
            return Err(StoreError::Invalid(format!(
                "the new value for secret {name:?} is not sealed; nothing re-sealed"
            )));
        }
        let mut tx = self.write.begin().await?;
        for (name, old, new) in changes {
            let done = sqlx::query("UPDATE secret SET sealed = $1 WHERE name = $2 AND sealed = $3")
                .bind(new.clone())
                .bind(name.clone())
                .bind(old.clone())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(StoreError::Invalid(format!(
                    "the secret {name:?} changed or was removed while it was being re-sealed; \
                     nothing re-sealed, run the rotation again"
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the secret `name`; `false` if there was none.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secret WHERE name = $1")
            .bind(name.to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// `v<digits>:<key-id>:<data>` with non-empty parts and no whitespace.
fn looks_sealed(s: &str) -> bool {
    let mut parts = s.splitn(3, ':');
    let (Some(version), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    version.len() > 1
        && version.starts_with('v')
        && version[1..].bytes().all(|b| b.is_ascii_digit())
        && !id.is_empty()
        && !data.is_empty()
        && !s.bytes().any(|b| b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::looks_sealed;

    #[test]
    fn only_sealed_shapes_pass() {
        assert!(looks_sealed("v1:k1a2b3c4:AAAAbbbb-_"));
        assert!(looks_sealed("v12:2027:abc"));
        for plain in [
            "",
            "hunter2",
            "v1:k1:",
            "v1::abc",
            "vx:k1:abc",
            "v:k1:abc",
            "v1:k1:abc def",
            "Bearer:abc:def",
        ] {
            assert!(!looks_sealed(plain), "{plain:?}");
        }
    }
}
