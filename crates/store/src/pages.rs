//! Keyset pages of the large listings (people, plans, one connection's
//! accounts) for the REST and MCP surfaces: each page is one bounded query
//! that starts after the last key of the previous page, so a listing of
//! 100k people costs a page, not the whole snapshot.
//!
//! Keys are compared by the database (`>` / `<` with the same collation
//! its `ORDER BY` uses), so pages follow each other exactly on either
//! backend, although PostgreSQL and SQLite may order text differently.

use crate::reader::Read as _;
use sqlx::Row;

use roster_core::{Account, ConnectionId, Person};

use crate::people::decode_person;
use crate::plans::StoredPlan;
use crate::{Store, StoreError, to_i64};

/// `%text%` for `LIKE … ESCAPE '\'`, with the wildcards in `text` escaped.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// People whose stored record contains `needle` (compared in lower
    /// case; ASCII case only in the database), with an employee ID after
    /// `after`, ordered by employee ID, at most `limit`. A superset of a
    /// search by address, name or employee ID: the caller filters the
    /// rows exactly. An empty `needle` matches everyone.
    pub async fn people_containing(
        &self,
        needle: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Person>, StoreError> {
        // SQLite answers from its trigram index (search.rs).
        if let Some(found) = self.people_by_trigram(needle, after, limit).await? {
            return Ok(found);
        }
        let pattern = contains_pattern(&needle.to_lowercase());
        let rows = sqlx::query(
            "SELECT employee_id, data FROM person \
             WHERE employee_id > $1 AND lower(data) LIKE $2 ESCAPE '\\' \
             ORDER BY employee_id LIMIT $3",
        )
        .bind(after.unwrap_or("").to_string())
        .bind(pattern)
        .bind(to_i64(limit))
        .read_all(self)
        .await?;
        rows.iter().map(decode_person).collect()
    }

    /// Stored plans older than `before` (`(created_ms, id)` of the last
    /// plan of the previous page), newest first, at most `limit`; the
    /// order of [`Store::recent_plans`].
    pub async fn plans_before(
        &self,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredPlan>, StoreError> {
        let (ms, id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT id, hash, created_ms, data, proposed_by, applied_ms FROM plan \
             WHERE ($1 = 1 OR created_ms < $2 OR (created_ms = $2 AND id < $3)) \
             ORDER BY created_ms DESC, id DESC LIMIT $4",
        )
        .bind(i64::from(before.is_none()))
        .bind(ms)
        .bind(id.to_string())
        .bind(to_i64(limit))
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.finish_plan(row).await?);
        }
        Ok(out)
    }

    /// Accounts the last read of `connection` returned, with an account
    /// key after `after`, ordered by key, at most `limit`. Empty when the
    /// connection was never read.
    pub async fn accounts_after(
        &self,
        connection: &ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Account)>, StoreError> {
        let Some(info) = self.observation(connection).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT account_key, data FROM account \
             WHERE connection = $1 AND seen_gen = $2 AND account_key > $3 \
             ORDER BY account_key LIMIT $4",
        )
        .bind(connection.as_str().to_string())
        .bind(info.generation)
        .bind(after.unwrap_or("").to_string())
        .bind(to_i64(limit))
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("account_key")?;
            let data: String = row.try_get("data")?;
            let account: Account = serde_json::from_str(&data)
                .map_err(|e| StoreError::corrupt("account", key.clone(), e))?;
            out.push((key, account));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn wildcards_are_escaped() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(contains_pattern(""), "%%");
    }
}
