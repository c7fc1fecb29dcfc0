//! Erasing personal data from the audit log without breaking it.
//!
//! Version-2 audit events chain a salted hash of their payload, not the
//! payload (see [`roster_store::audit`]), so a payload can be replaced by a
//! tombstone for a retention policy (`before`) or a person's erasure
//! request (`person`) while the chain, and every checkpoint a witness
//! holds, still verifies. Each erasure appends one `audit.erased` event
//! that records the reason, what kind of selection was made and which
//! sequence numbers were erased, never the identifiers or the data.
//!
//! A person is found by employee ID or email: the store's current record
//! adds their other identifiers (email, aliases, employee ID), and an event
//! matches when its subject or payload mentions any of them as a whole
//! token. Version-1 events (written before payload hashing) cannot be
//! erased; they are counted in the report.

use roster_core::{Email, EmployeeId};
use roster_store::{Store, StoreError};
use serde_json::json;

/// Which events to erase. Both given: events matching both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EraseSelector {
    /// An employee ID or an email address.
    pub person: Option<String>,
    /// Events strictly before this time (unix ms).
    pub before_ms: Option<i64>,
}

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraseReport {
    /// Payloads erased now.
    pub erased: usize,
    /// Matching events already erased earlier.
    pub already_erased: u64,
    /// Matching version-1 events left as they are.
    pub legacy: u64,
    /// The `audit.erased` event's sequence number (none if nothing was erased).
    pub record_seq: Option<u64>,
}

/// Erases the payloads `selector` matches, recording `reason` and `actor`.
pub async fn erase(
    store: &Store,
    selector: &EraseSelector,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> Result<EraseReport, StoreError> {
    if selector.person.is_none() && selector.before_ms.is_none() {
        return Err(StoreError::Invalid(
            "say which events to erase: a person, a date, or both".into(),
        ));
    }
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid(
            "an erasure needs a reason (it is recorded)".into(),
        ));
    }
    let terms = match &selector.person {
        None => Vec::new(),
        Some(who) => person_terms(store, who).await?,
    };
    let found = store
        .audit_erasure_candidates(selector.before_ms, &terms)
        .await?;
    let mut recorded = json!({});
    if selector.person.is_some() {
        // Which person is exactly what must not be kept.
        recorded["person"] = json!(true);
    }
    if let Some(ms) = selector.before_ms {
        recorded["before"] = json!(crate::anchor::rfc3339(ms));
    }
    let done = store
        .erase_audit_payloads(&found.erasable, reason.trim(), recorded, actor, now_ms)
        .await?;
    Ok(EraseReport {
        erased: done.erased.len(),
        already_erased: found.already_erased,
        legacy: found.legacy,
        record_seq: done.record.map(|r| r.seq),
    })
}

/// Every identifier of the person `who` names: what was given, plus the
/// store's record (email, aliases, employee ID) when there is one.
async fn person_terms(store: &Store, who: &str) -> Result<Vec<String>, StoreError> {
    let who = who.trim();
    if who.is_empty() {
        return Err(StoreError::Invalid("the person to erase is empty".into()));
    }
    let mut terms = vec![who.to_string()];
    let person = match Email::parse(who) {
        Ok(email) => store.person_by_email(&email).await?,
        Err(_) => store.person_by_employee_id(&EmployeeId::new(who)).await?,
    };
    if let Some(p) = person {
        terms.push(p.employee_id.as_str().to_string());
        terms.push(p.email.as_str().to_string());
        terms.extend(p.aliases.iter().map(|a| a.as_str().to_string()));
    }
    terms.sort();
    terms.dedup();
    Ok(terms)
}
