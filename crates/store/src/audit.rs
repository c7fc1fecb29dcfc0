//! The audit log: append-only and hash-chained.
//!
//! Every event gets the next sequence number (1, 2, 3, ...) and a hash:
//!
//! ```text
//! hash(n) = hex(SHA-256( prev_hash || field(seq) || field(at_ms) || field(actor)
//!                        || field(kind) || field(subject) || field(data) ))
//! field(x) = big-endian u64 byte length of x, then x's UTF-8 bytes
//! ```
//!
//! where `prev_hash` is the hex hash of event n-1 ([`GENESIS_HASH`] for the
//! first), `seq` and `at_ms` are written in decimal, and `data` is the
//! event's JSON in canonical form (object keys sorted, no whitespace). The
//! length prefixes keep field boundaries unambiguous. The canonical JSON is
//! what is stored, and the stored text is what is hashed, so verification
//! never depends on how a JSON library orders keys.
//!
//! A one-row `audit_head` table holds the last sequence number and hash. An
//! append updates it first (`UPDATE ... RETURNING`), which locks it until
//! the transaction commits: on PostgreSQL that serializes concurrent
//! appenders, on SQLite the single writer already does.
//!
//! # What verification catches, and what it cannot
//!
//! [`Store::verify_audit`] walks the chain in one consistent read and names
//! the first bad sequence number: an edited event (its hash no longer
//! matches its content), a removed event (a gap, or a chain shorter than the
//! head says), reordered events (an event that does not link to the one
//! before it), and events added past the head. Someone able to rewrite the
//! whole table *and* the head could forge a consistent chain; the head hash
//! [`AuditReport::head`] is what to record elsewhere (a ticket, a log
//! shipper) to detect that.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{AuditError, StoreError};
use crate::sql::{Val, insert_rows};
use crate::{Backend, Store};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events read per query while verifying.
const VERIFY_PAGE: i64 = 2_000;

/// Something that happened, to be recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened (unix ms, chosen by the caller).
    pub at_ms: i64,
    /// Who did it: a user, `roster` for the engine, a connector.
    pub actor: String,
    /// What kind of thing happened, e.g. `plan.approved`, `account.deactivated`.
    pub kind: String,
    /// What it happened to, e.g. a plan ID or `expensify:alice@example.com`.
    pub subject: String,
    /// Details.
    pub data: serde_json::Value,
}

/// A recorded event with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Events checked (the whole log).
    pub events: u64,
    /// The hash of the last event ([`GENESIS_HASH`] for an empty log).
    pub head: String,
}

/// Serializes `v` canonically: object keys sorted by their UTF-8 bytes, no
/// insignificant whitespace. Independent of serde_json's map ordering
/// features, so the same value always gives the same text.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Scalars have one serde_json rendering; it cannot fail.
            out.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(val, out);
            }
            out.push('}');
        }
    }
}

/// The chain hash of one event (see the module docs for the layout).
pub fn event_hash(
    prev_hash: &str,
    seq: u64,
    at_ms: i64,
    actor: &str,
    kind: &str,
    subject: &str,
    data_canonical: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    let seq = seq.to_string();
    let at = at_ms.to_string();
    for field in [
        seq.as_str(),
        at.as_str(),
        actor,
        kind,
        subject,
        data_canonical,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Appends `event` to the log and returns it with its sequence number
    /// and hashes.
    pub async fn append_audit(&self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut records = append_in_tx(&mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        records
            .pop()
            .ok_or_else(|| StoreError::corrupt("audit_event", "?", "no record appended"))
    }

    /// Events that happened at or after `at_ms`, in sequence order.
    pub async fn audit_since(&self, at_ms: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash FROM audit_event \
             WHERE at_ms >= $1 ORDER BY seq",
        )
        .bind(at_ms)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode_record).collect()
    }

    /// Checks the whole chain. See the module docs for what is detected.
    pub async fn verify_audit(&self) -> Result<AuditReport, AuditError> {
        let mut tx = self.read.begin().await?;
        if self.backend == Backend::Postgres {
            // One snapshot for the head and every page, so appends that
            // commit while we read are simply not seen. (A SQLite read
            // transaction is a snapshot already.)
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::corrupt("audit_head", "1", "the audit head row is missing")
            })?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;

        let mut expected: i64 = 1;
        let mut prev = GENESIS_HASH.to_string();
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash FROM audit_event \
                 WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(expected)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let page_len = rows.len();
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let at = |reason: String| AuditError::Broken {
                    seq: u64::try_from(expected).unwrap_or(0),
                    reason,
                };
                if seq > head_seq {
                    return Err(at(format!(
                        "event {seq} lies beyond the recorded head (event {head_seq}); \
                         it was added outside roster"
                    )));
                }
                if seq != expected {
                    return Err(at(format!(
                        "event {expected} is missing (the next stored event is {seq})"
                    )));
                }
                let stored_prev: String = row.try_get("prev_hash")?;
                let stored_hash: String = row.try_get("hash")?;
                if stored_prev != prev {
                    return Err(at(format!(
                        "does not link to the event before it (prev_hash {stored_prev}, \
                         expected {prev}): events were reordered, removed or rewritten"
                    )));
                }
                let data: String = row.try_get("data")?;
                let recomputed = event_hash(
                    &prev,
                    u64::try_from(seq).unwrap_or(0),
                    row.try_get("at_ms")?,
                    &row.try_get::<String, _>("actor")?,
                    &row.try_get::<String, _>("kind")?,
                    &row.try_get::<String, _>("subject")?,
                    &data,
                );
                if recomputed != stored_hash {
                    return Err(at(
                        "content does not match its hash: the event was altered".to_string()
                    ));
                }
                prev = stored_hash;
                expected += 1;
            }
            if i64::try_from(page_len).unwrap_or(i64::MAX) < VERIFY_PAGE {
                break;
            }
        }
        tx.rollback().await?;

        let last = expected - 1;
        if last != head_seq {
            return Err(AuditError::Broken {
                seq: u64::try_from(expected).unwrap_or(0),
                reason: format!(
                    "the log ends at event {last} but the head records {head_seq} events: \
                     events were removed from the end"
                ),
            });
        }
        if prev != head_hash {
            return Err(AuditError::Broken {
                seq: u64::try_from(last).unwrap_or(0),
                reason: format!("the last event's hash {prev} differs from the head's {head_hash}"),
            });
        }
        Ok(AuditReport {
            events: u64::try_from(last).unwrap_or(0),
            head: prev,
        })
    }
}

fn decode_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let data: String = row.try_get("data")?;
    let data = serde_json::from_str(&data)
        .map_err(|e| StoreError::corrupt("audit_event", seq.to_string(), e))?;
    Ok(AuditRecord {
        seq: u64::try_from(seq)
            .map_err(|_| StoreError::corrupt("audit_event", seq.to_string(), "negative seq"))?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        data,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends `events` to the chain inside the caller's transaction, so they
/// commit (or not) with the state change they record. The head row is
/// advanced by `events.len()` in one statement, which also locks it until
/// commit — concurrent appenders queue there — and the hashes are chained
/// in memory. Every append in roster goes through here.
pub(crate) async fn append_in_tx(
    conn: &mut sqlx::AnyConnection,
    events: &[AuditEvent],
) -> Result<Vec<AuditRecord>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = i64::try_from(events.len())
        .map_err(|_| StoreError::Invalid("too many audit events in one append".into()))?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::corrupt("audit_head", "1", "the audit head row is missing"))?;
    let last: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    let mut rows = Vec::with_capacity(events.len());
    let mut records = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let seq_i = last - n + 1 + i as i64;
        let seq = u64::try_from(seq_i)
            .map_err(|_| StoreError::corrupt("audit_head", "1", format!("negative seq {seq_i}")))?;
        let data = canonical_json(&e.data);
        let hash = event_hash(&prev, seq, e.at_ms, &e.actor, &e.kind, &e.subject, &data);
        rows.push(vec![
            Val::Int(seq_i),
            Val::Int(e.at_ms),
            Val::Text(e.actor.clone()),
            Val::Text(e.kind.clone()),
            Val::Text(e.subject.clone()),
            Val::Text(data),
            Val::Text(prev.clone()),
            Val::Text(hash.clone()),
        ]);
        records.push(AuditRecord {
            seq,
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            subject: e.subject.clone(),
            data: e.data.clone(),
            prev_hash: prev.clone(),
            hash: hash.clone(),
        });
        prev = hash;
    }
    insert_rows(
        conn,
        "INSERT INTO audit_event (seq, at_ms, actor, kind, subject, data, prev_hash, hash)",
        "",
        8,
        rows,
    )
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev)
        .execute(&mut *conn)
        .await?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": "x", "x": 1.5}], "c": "é\"q"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"é\"q","z":[true,null,{"x":1.5,"y":"x"}]},"b":1}"#
        );
    }

    #[test]
    fn field_boundaries_matter_to_the_hash() {
        let a = event_hash(GENESIS_HASH, 1, 0, "ab", "c", "", "{}");
        let b = event_hash(GENESIS_HASH, 1, 0, "a", "bc", "", "{}");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(a, event_hash(GENESIS_HASH, 1, 0, "ab", "c", "", "{}"));
    }
}
