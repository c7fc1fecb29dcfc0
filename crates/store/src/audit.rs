//! The audit log: append-only and hash-chained.
//!
//! Every event gets the next sequence number (1, 2, 3, ...) and a hash.
//! Events written by this version use **hash version 2**:
//!
//! ```text
//! data_hash(n) = hex(SHA-256( "roster-audit-payload/v2" || field(salt) || field(data) ))
//! hash(n)      = hex(SHA-256( prev_hash || field("v2") || field(seq) || field(at_ms)
//!                             || field(actor) || field(kind) || field(subject)
//!                             || field(data_hash) ))
//! field(x)     = big-endian u64 byte length of x, then x's UTF-8 bytes
//! ```
//!
//! where `prev_hash` is the hex hash of event n-1 ([`GENESIS_HASH`] for the
//! first), `seq` and `at_ms` are written in decimal, `salt` is 32 random hex
//! digits per event, and `data` is the event's JSON in canonical form
//! (object keys sorted, no whitespace). The length prefixes keep field
//! boundaries unambiguous. The canonical JSON is what is stored, and the
//! stored text is what is hashed, so verification never depends on how a
//! JSON library orders keys.
//!
//! Events written before schema 8 keep **hash version 1**, whose hash covers
//! the payload itself (`... || field(subject) || field(data)`, no version
//! field); both versions verify, per event, so existing chains stay valid
//! without being rewritten. Version-1 payloads cannot be erased.
//!
//! # Erasure
//!
//! Because a version-2 chain covers only the payload's salted hash, a
//! payload can be replaced by a tombstone (`{"erased":true,"reason":...}`)
//! and its salt dropped ([`Store::erase_audit_payloads`]), for a retention
//! policy or a person's erasure request: the chain still verifies, and
//! without the salt the kept hash cannot confirm a guess of the erased
//! data. Every erasure appends an `audit.erased` event naming the erased
//! sequence numbers (never the data); verification refuses a tombstone that
//! no later `audit.erased` event declares, so erasure is never silent.
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
//! before it), events added past the head, and undeclared erasures. Someone
//! able to rewrite the whole table *and* the head (cut the last events and
//! point the head at the new last one) forges a consistent chain: that is
//! caught only against signed checkpoints kept outside the database (the
//! engine's `anchor` module; the store queues them in `audit_checkpoint`,
//! see [`crate::Store::queue_checkpoint`]).

use crate::reader::Read as _;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{AuditError, StoreError};
use crate::sql::{Val, insert_rows};
use crate::{Backend, Store};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events written before schema 8: the hash covers the payload.
pub const HASH_V1: u8 = 1;
/// Events written since: the hash covers the payload's salted hash.
pub const HASH_V2: u8 = 2;

/// The kind of the event every erasure appends.
pub const ERASED_KIND: &str = "audit.erased";

/// Events read per query while verifying or selecting.
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
    /// The payload, or a tombstone when `erased`.
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
    /// [`HASH_V1`] or [`HASH_V2`].
    #[serde(default = "v1")]
    pub hash_version: u8,
    /// The payload's salted hash, which the chain covers (version 2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// The payload was erased; `data` is the tombstone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub erased: bool,
}

fn v1() -> u8 {
    HASH_V1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Events checked (the whole log).
    pub events: u64,
    /// The hash of the last event ([`GENESIS_HASH`] for an empty log).
    pub head: String,
    /// Events whose payload was erased (each declared by an `audit.erased` event).
    #[serde(default)]
    pub erased: u64,
    /// Events with hash version 1 (written before payload hashing).
    #[serde(default)]
    pub legacy: u64,
}

/// What [`Store::erase_audit_payloads`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditErasure {
    /// The sequence numbers whose payloads were erased now.
    pub erased: Vec<u64>,
    /// The `audit.erased` event recording it (none when nothing was erased).
    pub record: Option<AuditRecord>,
}

/// Which events [`Store::audit_erasure_candidates`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasureCandidates {
    /// Version-2 events with an intact payload: erasable.
    pub erasable: Vec<u64>,
    /// Matching events already erased.
    pub already_erased: u64,
    /// Matching version-1 events, which cannot be erased without breaking
    /// the chain.
    pub legacy: u64,
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

fn hash_fields(h: &mut Sha256, fields: &[&str]) {
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
}

/// The chain hash of one version-1 event (see the module docs): it covers
/// the canonical payload itself.
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
    hash_fields(&mut h, &[&seq, &at, actor, kind, subject, data_canonical]);
    hex::encode(h.finalize())
}

/// The salted hash of a canonical payload (version 2).
pub fn payload_hash(salt: &str, data_canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"roster-audit-payload/v2");
    hash_fields(&mut h, &[salt, data_canonical]);
    hex::encode(h.finalize())
}

/// The chain hash of one version-2 event: it covers the payload's hash,
/// so the payload can be erased later.
pub fn event_hash_v2(
    prev_hash: &str,
    seq: u64,
    at_ms: i64,
    actor: &str,
    kind: &str,
    subject: &str,
    data_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    let seq = seq.to_string();
    let at = at_ms.to_string();
    hash_fields(&mut h, &["v2", &seq, &at, actor, kind, subject, data_hash]);
    hex::encode(h.finalize())
}

/// The payload an erased event keeps.
pub fn tombstone(reason: &str) -> serde_json::Value {
    serde_json::json!({ "erased": true, "reason": reason })
}

fn is_tombstone(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("erased").and_then(serde_json::Value::as_bool))
        == Some(true)
}

/// `[[first, last], ...]` for sorted, distinct `seqs`.
fn ranges(seqs: &[u64]) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some(r) if r[1] + 1 == s => r[1] = s,
            _ => out.push([s, s]),
        }
    }
    out
}

/// Does `text` (lower-cased) mention `term` (lower-cased) as a whole token:
/// not preceded or followed by a character that could continue an email
/// address or an ID? So `e1` does not match `e10`, and `a@x.com` does not
/// match `ba@x.com`.
fn mentions(text: &str, term: &str) -> bool {
    if term.is_empty() {
        return false;
    }
    let continues = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
    let mut from = 0;
    while let Some(i) = text[from..].find(term) {
        let start = from + i;
        let end = start + term.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !continues(c));
        // A trailing '.' ends a sentence, not an address.
        let after_ok = text[end..].chars().next().is_none_or(|c| {
            !continues(c)
                || (c == '.' && !text[end + 1..].starts_with(|c: char| c.is_alphanumeric()))
        });
        if before_ok && after_ok {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
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
            "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash, hash_version, \
             data_hash, data_salt FROM audit_event WHERE at_ms >= $1 ORDER BY seq",
        )
        .bind(at_ms)
        .read_all(self)
        .await?;
        rows.iter().map(decode_record).collect()
    }

    /// The chain head: the last sequence number and its hash.
    pub async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .read_optional(self)
            .await?
            .ok_or_else(|| {
                StoreError::corrupt("audit_head", "1", "the audit head row is missing")
            })?;
        let seq: i64 = row.try_get("seq")?;
        Ok((
            u64::try_from(seq)
                .map_err(|_| StoreError::corrupt("audit_head", "1", "negative seq"))?,
            row.try_get("hash")?,
        ))
    }

    /// The stored hashes of the events at `seqs` (those that exist).
    pub async fn audit_hashes_at(&self, seqs: &[u64]) -> Result<BTreeMap<u64, String>, StoreError> {
        let mut out = BTreeMap::new();
        for chunk in seqs.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT seq, hash FROM audit_event WHERE seq IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for s in chunk {
                q = q.bind(i64::try_from(*s).unwrap_or(i64::MAX));
            }
            for row in q.read_all(self).await? {
                let seq: i64 = row.try_get("seq")?;
                out.insert(u64::try_from(seq).unwrap_or(0), row.try_get("hash")?);
            }
        }
        Ok(out)
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
        let mut erased: Vec<u64> = Vec::new();
        let mut declared: Vec<[u64; 2]> = Vec::new();
        let mut legacy: u64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash, hash_version, \
                 data_hash, data_salt FROM audit_event WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(expected)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let page_len = rows.len();
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let useq = u64::try_from(expected).unwrap_or(0);
                let at = |reason: String| AuditError::Broken { seq: useq, reason };
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
                let at_ms: i64 = row.try_get("at_ms")?;
                let actor: String = row.try_get("actor")?;
                let kind: String = row.try_get("kind")?;
                let subject: String = row.try_get("subject")?;
                let version: i64 = row.try_get("hash_version")?;
                let recomputed = match u8::try_from(version).unwrap_or(0) {
                    HASH_V1 => {
                        legacy += 1;
                        event_hash(&prev, useq, at_ms, &actor, &kind, &subject, &data)
                    }
                    HASH_V2 => {
                        let data_hash: Option<String> = row.try_get("data_hash")?;
                        let salt: Option<String> = row.try_get("data_salt")?;
                        let Some(data_hash) = data_hash else {
                            return Err(at(
                                "has no payload hash: the event was altered".to_string()
                            ));
                        };
                        match salt {
                            Some(salt) => {
                                if payload_hash(&salt, &data) != data_hash {
                                    return Err(at("payload does not match its hash: the \
                                                   event's data was altered"
                                        .to_string()));
                                }
                                if kind == ERASED_KIND {
                                    declared.extend(declared_ranges(&data));
                                }
                            }
                            None if is_tombstone(&data) => erased.push(useq),
                            None => {
                                return Err(at("payload has no salt but is not an erasure \
                                               tombstone: the event's data was altered"
                                    .to_string()));
                            }
                        }
                        event_hash_v2(&prev, useq, at_ms, &actor, &kind, &subject, &data_hash)
                    }
                    _ => return Err(at(format!("unknown hash version {version}"))),
                };
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
        if let Some(seq) = erased
            .iter()
            .find(|s| !declared.iter().any(|r| r[0] <= **s && **s <= r[1]))
        {
            return Err(AuditError::Broken {
                seq: *seq,
                reason: format!(
                    "the payload was erased, but no `{ERASED_KIND}` event records that \
                     erasure: the event's data was removed outside roster"
                ),
            });
        }
        Ok(AuditReport {
            events: u64::try_from(last).unwrap_or(0),
            head: prev,
            erased: erased.len() as u64,
            legacy,
        })
    }

    /// Events that may be erased: those before `before_ms` (if given)
    /// that mention any of `terms` (if any; matched case-insensitively as
    /// whole tokens in the subject or payload). `audit.erased` events are
    /// never candidates: they are the record of erasures.
    pub async fn audit_erasure_candidates(
        &self,
        before_ms: Option<i64>,
        terms: &[String],
    ) -> Result<ErasureCandidates, StoreError> {
        let terms: Vec<String> = terms
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let mut out = ErasureCandidates::default();
        let mut from: i64 = 1;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, kind, subject, data, hash_version, data_salt FROM audit_event \
                 WHERE seq >= $1 AND at_ms < $2 ORDER BY seq LIMIT $3",
            )
            .bind(from)
            .bind(before_ms.unwrap_or(i64::MAX))
            .bind(VERIFY_PAGE)
            .read_all(self)
            .await?;
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                from = seq + 1;
                let kind: String = row.try_get("kind")?;
                if kind == ERASED_KIND {
                    continue;
                }
                if !terms.is_empty() {
                    let subject = row.try_get::<String, _>("subject")?.to_lowercase();
                    let data = row.try_get::<String, _>("data")?.to_lowercase();
                    if !terms
                        .iter()
                        .any(|t| mentions(&subject, t) || mentions(&data, t))
                    {
                        continue;
                    }
                }
                let version: i64 = row.try_get("hash_version")?;
                let salt: Option<String> = row.try_get("data_salt")?;
                match (u8::try_from(version).unwrap_or(0), salt) {
                    (HASH_V2, Some(_)) => out.erasable.push(u64::try_from(seq).unwrap_or(0)),
                    (HASH_V2, None) => out.already_erased += 1,
                    _ => out.legacy += 1,
                }
            }
            if i64::try_from(rows.len()).unwrap_or(i64::MAX) < VERIFY_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Replaces the payloads of the version-2 events at `seqs` with a
    /// tombstone and drops their salts, and appends one `audit.erased`
    /// event (by `actor`, at `at_ms`) recording `reason`, `selector` (what
    /// the operator asked for, without personal data) and the erased
    /// sequence numbers, all in one transaction. Version-1 events,
    /// already-erased events and `audit.erased` events are left alone.
    pub async fn erase_audit_payloads(
        &self,
        seqs: &[u64],
        reason: &str,
        selector: serde_json::Value,
        actor: &str,
        at_ms: i64,
    ) -> Result<AuditErasure, StoreError> {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        let stone = canonical_json(&tombstone(reason));
        let mut tx = self.write.begin().await?;
        let mut done = Vec::new();
        for seq in seqs {
            let n = sqlx::query(
                "UPDATE audit_event SET data = $1, data_salt = NULL WHERE seq = $2 \
                 AND hash_version = 2 AND data_salt IS NOT NULL AND kind <> $3",
            )
            .bind(&stone)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(ERASED_KIND)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let seq_i = i64::try_from(seq).unwrap_or(i64::MAX);
                let subject: String = sqlx::query("SELECT subject FROM audit_event WHERE seq = $1")
                    .bind(seq_i)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("subject")?;
                // The index must not keep what the erasure removed.
                crate::mentions::reindex_erased_in_tx(&mut tx, seq_i, &subject).await?;
                done.push(seq);
            }
        }
        if done.is_empty() {
            tx.rollback().await?;
            return Ok(AuditErasure {
                erased: done,
                record: None,
            });
        }
        let event = AuditEvent {
            at_ms,
            actor: actor.to_string(),
            kind: ERASED_KIND.to_string(),
            subject: "audit".to_string(),
            data: serde_json::json!({
                "reason": reason,
                "selector": selector,
                "events": done.len(),
                "seqs": ranges(&done),
            }),
        };
        let mut records = append_in_tx(&mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        Ok(AuditErasure {
            erased: done,
            record: records.pop(),
        })
    }
}

/// The `seqs` ranges an `audit.erased` payload declares.
fn declared_ranges(data: &str) -> Vec<[u64; 2]> {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("seqs").cloned())
        .and_then(|v| serde_json::from_value::<Vec<[u64; 2]>>(v).ok())
        .unwrap_or_default()
}

pub(crate) fn decode_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let data: String = row.try_get("data")?;
    let data = serde_json::from_str(&data)
        .map_err(|e| StoreError::corrupt("audit_event", seq.to_string(), e))?;
    let version: i64 = row.try_get("hash_version")?;
    let hash_version = u8::try_from(version)
        .map_err(|_| StoreError::corrupt("audit_event", seq.to_string(), "bad hash version"))?;
    let salt: Option<String> = row.try_get("data_salt")?;
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
        hash_version,
        data_hash: row.try_get("data_hash")?,
        erased: hash_version == HASH_V2 && salt.is_none(),
    })
}

/// Appends `events` to the chain inside the caller's transaction, so they
/// commit (or not) with the state change they record. The head row is
/// advanced by `events.len()` in one statement, which also locks it until
/// commit — concurrent appenders queue there — and the hashes are chained
/// in memory. Every append in roster goes through here, always with hash
/// version 2.
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
    let mut mentioned = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let seq_i = last - n + 1 + i as i64;
        let seq = u64::try_from(seq_i)
            .map_err(|_| StoreError::corrupt("audit_head", "1", format!("negative seq {seq_i}")))?;
        let data = canonical_json(&e.data);
        // 122 random bits from the OS generator: enough that a kept hash
        // of an erased payload cannot be used to test guesses.
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let data_hash = payload_hash(&salt, &data);
        let hash = event_hash_v2(
            &prev, seq, e.at_ms, &e.actor, &e.kind, &e.subject, &data_hash,
        );
        mentioned.push((seq_i, crate::mentions::mention_terms(&e.subject, &e.data)));
        rows.push(vec![
            Val::Int(seq_i),
            Val::Int(e.at_ms),
            Val::Text(e.actor.clone()),
            Val::Text(e.kind.clone()),
            Val::Text(e.subject.clone()),
            Val::Text(data),
            Val::Text(prev.clone()),
            Val::Text(hash.clone()),
            Val::Int(i64::from(HASH_V2)),
            Val::Text(data_hash.clone()),
            Val::Text(salt),
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
            hash_version: HASH_V2,
            data_hash: Some(data_hash),
            erased: false,
        });
        prev = hash;
    }
    insert_rows(
        conn,
        "INSERT INTO audit_event (seq, at_ms, actor, kind, subject, data, prev_hash, hash, \
         hash_version, data_hash, data_salt)",
        "",
        11,
        rows,
    )
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev)
        .execute(&mut *conn)
        .await?;
    crate::mentions::index_in_tx(conn, &mentioned).await?;
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
        let a2 = event_hash_v2(GENESIS_HASH, 1, 0, "ab", "c", "", "{}");
        assert_ne!(a2, event_hash_v2(GENESIS_HASH, 1, 0, "a", "bc", "", "{}"));
        assert_ne!(a2, a, "versions never share a hash");
    }

    #[test]
    fn the_payload_hash_depends_on_the_salt() {
        assert_ne!(payload_hash("s1", "{}"), payload_hash("s2", "{}"));
        assert_ne!(payload_hash("s1", "{\"a\":1}"), payload_hash("s1", "{}"));
    }

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), [[1, 3], [5, 5], [7, 8]]);
        assert!(ranges(&[]).is_empty());
    }

    #[test]
    fn mentions_matches_whole_tokens_only() {
        assert!(mentions("{\"employee_id\":\"e1\"}", "e1"));
        assert!(!mentions("{\"employee_id\":\"e10\"}", "e1"));
        assert!(mentions("expensify:a@x.com", "a@x.com"));
        assert!(!mentions("expensify:ba@x.com", "a@x.com"));
        assert!(mentions("deactivate a@x.com.", "a@x.com"));
        assert!(!mentions("a@x.com.au", "a@x.com"));
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn tombstones_are_recognised() {
        assert!(is_tombstone(&canonical_json(&tombstone("gdpr"))));
        assert!(!is_tombstone("{\"n\":1}"));
        assert!(!is_tombstone("not json"));
    }
}
