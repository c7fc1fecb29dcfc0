//! What a proposed plan was asked for (migration 0018): the record
//! `roster_engine::proposals` keeps beside a plan an AI agent (or anyone
//! with the propose scope) proposed.
//!
//! The plan itself is stored as every plan is ([`Store::save_plan_proposed`],
//! with its proposer). This record adds what the plan alone does not say:
//! whom or which connections it is about, so its freshness check can
//! re-read the same part of the apps it was computed from, and the note
//! the proposer wrote, kept verbatim. The store only records; what a note
//! is worth (an agent's is untrusted text) is the engine's to say.

use crate::reader::Read as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{PlanId, Store, StoreError};

/// One proposal's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalRecord {
    pub plan_id: PlanId,
    /// `offboarding`, `person` or `connections`.
    pub kind: String,
    /// The employee ID an `offboarding` or `person` proposal is about.
    pub person: Option<String>,
    /// Space-separated connection ids of a `connections` proposal.
    pub connections: Option<String>,
    /// Free text the proposer wrote, verbatim.
    pub note: Option<String>,
    /// The actor that proposed it (`agent:claude`).
    pub proposed_by: String,
    pub created_ms: i64,
}

impl Store {
    /// Records what plan `r.plan_id` was proposed for (once per plan).
    pub async fn proposal_insert(&self, r: &ProposalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plan_proposal (plan_id, kind, person, connections, note, proposed_by, \
             created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.plan_id.as_str().to_string())
        .bind(r.kind.clone())
        .bind(r.person.clone())
        .bind(r.connections.clone())
        .bind(r.note.clone())
        .bind(r.proposed_by.clone())
        .bind(r.created_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The proposal record of a plan, if it was stored as one.
    pub async fn proposal(&self, plan_id: &PlanId) -> Result<Option<ProposalRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT plan_id, kind, person, connections, note, proposed_by, created_ms \
             FROM plan_proposal WHERE plan_id = $1",
        )
        .bind(plan_id.as_str().to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode).transpose()
    }
}

fn decode(row: &AnyRow) -> Result<ProposalRecord, StoreError> {
    Ok(ProposalRecord {
        plan_id: PlanId::new(row.try_get::<String, _>("plan_id")?),
        kind: row.try_get("kind")?,
        person: row.try_get("person")?,
        connections: row.try_get("connections")?,
        note: row.try_get("note")?,
        proposed_by: row.try_get("proposed_by")?,
        created_ms: row.try_get("created_ms")?,
    })
}
