//! Who each audit event mentions, indexed (`audit_mention`, migration 0021).
//!
//! A person's page shows the last events about them. Finding those by
//! reading every event of the last 90 days costs a scan of the whole log
//! per page view; instead every append records the event's **terms** (the
//! lower-cased tokens of its subject and of its payload's string values,
//! as [`mention_terms`] cuts them) in the same transaction, and
//! [`Store::audit_mentioning`] reads the newest events holding any of a
//! person's terms (employee ID, addresses) through the index.
//!
//! A token is a maximal run of characters that could continue an email
//! address or an ID (letters, digits, `. _ - @ +`), with sentence-ending
//! dots dropped: the same boundaries the erasure search's `mentions` uses,
//! so `a@x.com` finds `expensify:a@x.com` and `deactivate a@x.com.` but
//! not `ba@x.com` or `a@x.com.au`, and `e1` does not find `e10`.
//!
//! Erasing an event's payload ([`crate::Store::erase_audit_payloads`])
//! drops the terms its payload gave (the index must not keep what the
//! erasure removed); its subject's terms stay, as the subject does.
//! Events written before schema 21 are indexed once, when a store first
//! opens at that schema ([`Store::backfill_audit_mentions`]), in pages.

use crate::reader::Read as _;
use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::Row;

use crate::audit::{AuditRecord, decode_record};
use crate::sql::{Val, insert_rows};
use crate::{Store, StoreError, to_i64};

/// Longest token kept: nothing longer is an address (RFC 5321 caps a path
/// at 256) or an ID.
const MAX_TERM: usize = 256;

/// Events read per step while indexing events written before schema 21.
const BACKFILL_PAGE: i64 = 2_000;

fn continues(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')
}

/// Adds the tokens of `text` (lower-cased) to `out` (module docs).
fn tokens_into(text: &str, out: &mut BTreeSet<String>) {
    let lower = text.to_lowercase();
    for run in lower.split(|c: char| !continues(c)) {
        // Sentence-ending dots are not part of the address before them.
        let token = run.trim_end_matches('.');
        if !token.is_empty() && token.len() <= MAX_TERM {
            out.insert(token.to_string());
        }
    }
}

fn value_tokens(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => tokens_into(s, out),
        Value::Array(items) => items.iter().for_each(|i| value_tokens(i, out)),
        Value::Object(map) => map.values().for_each(|i| value_tokens(i, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The terms an event with this subject and payload is found by.
pub fn mention_terms(subject: &str, data: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    tokens_into(subject, &mut out);
    value_tokens(data, &mut out);
    out
}

/// Records the terms of the event at `seq` (inside the caller's
/// transaction).
pub(crate) async fn index_in_tx(
    conn: &mut sqlx::AnyConnection,
    events: &[(i64, BTreeSet<String>)],
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val>> = events
        .iter()
        .flat_map(|(seq, terms)| {
            terms
                .iter()
                .map(move |t| vec![Val::Text(t.clone()), Val::Int(*seq)])
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "INSERT INTO audit_mention (term, seq)",
        "ON CONFLICT (term, seq) DO NOTHING",
        2,
        rows,
    )
    .await
}

/// Replaces the terms of an erased event by its subject's alone.
pub(crate) async fn reindex_erased_in_tx(
    conn: &mut sqlx::AnyConnection,
    seq: i64,
    subject: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM audit_mention WHERE seq = $1")
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    let mut terms = BTreeSet::new();
    tokens_into(subject, &mut terms);
    index_in_tx(conn, &[(seq, terms)]).await
}

impl Store {
    /// The newest `limit` events at or after `since_ms` that mention any
    /// of `terms` (lower-cased employee IDs or addresses), oldest first.
    pub async fn audit_mentioning(
        &self,
        terms: &[String],
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let terms: BTreeSet<String> = terms
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..terms.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash, hash_version, \
             data_hash, data_salt FROM audit_event WHERE at_ms >= $1 AND seq IN \
             (SELECT seq FROM audit_mention WHERE term IN ({})) ORDER BY seq DESC LIMIT $2",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since_ms)
            .bind(to_i64(limit));
        for t in terms {
            q = q.bind(t);
        }
        let rows = q.read_all(self).await?;
        let mut out = rows
            .iter()
            .map(decode_record)
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Indexes the events written before schema 21 (module docs): those
    /// up to the head the migration found, from where the last call
    /// stopped. Idempotent, and safe beside another process doing the
    /// same (terms already recorded are skipped). Returns how many events
    /// it indexed.
    pub async fn backfill_audit_mentions(&self) -> Result<u64, StoreError> {
        let mut indexed = 0u64;
        loop {
            let Some(row) =
                sqlx::query("SELECT done_upto, target FROM audit_mention_backfill WHERE id = 1")
                    .fetch_optional(&self.write)
                    .await?
            else {
                return Ok(indexed);
            };
            let done: i64 = row.try_get("done_upto")?;
            let target: i64 = row.try_get("target")?;
            if done >= target {
                return Ok(indexed);
            }
            let rows = sqlx::query(
                "SELECT seq, subject, data FROM audit_event WHERE seq > $1 AND seq <= $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(done)
            .bind(target)
            .bind(BACKFILL_PAGE)
            .fetch_all(&self.write)
            .await?;
            let mut events = Vec::with_capacity(rows.len());
            let mut last = target;
            for r in &rows {
                let seq: i64 = r.try_get("seq")?;
                let subject: String = r.try_get("subject")?;
                let data: String = r.try_get("data")?;
                let data: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                events.push((seq, mention_terms(&subject, &data)));
                last = seq;
            }
            if (rows.len() as i64) < BACKFILL_PAGE {
                last = target;
            }
            let mut tx = self.write.begin().await?;
            index_in_tx(&mut tx, &events).await?;
            sqlx::query(
                "UPDATE audit_mention_backfill SET done_upto = $1 WHERE id = 1 AND done_upto < $1",
            )
            .bind(last)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            indexed += events.len() as u64;
            tracing::info!(
                indexed,
                upto = last,
                of = target,
                "indexing earlier audit events by who they mention"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terms(subject: &str, data: Value) -> Vec<String> {
        mention_terms(subject, &data).into_iter().collect()
    }

    #[test]
    fn tokens_keep_whole_addresses_and_ids_only() {
        let t = terms(
            "expensify:A@X.com",
            json!({"employee_id": "E1", "note": "deactivate b@x.com. then c@x.com.au", "n": 3}),
        );
        for want in ["a@x.com", "e1", "b@x.com", "c@x.com.au", "expensify"] {
            assert!(t.contains(&want.to_string()), "{want} in {t:?}");
        }
        // Keys and numbers are not terms; a shorter address inside a
        // longer one is not either.
        for not in ["employee_id", "3", "c@x.com", "x.com", "e10"] {
            assert!(!t.contains(&not.to_string()), "{not} not in {t:?}");
        }
    }

    #[test]
    fn nested_values_count() {
        let t = terms("plan-1", json!({"actions": [{"email": "d@x.com"}]}));
        assert!(t.contains(&"d@x.com".to_string()));
        assert!(t.contains(&"plan-1".to_string()));
    }
}
