//! Governance records: approvals (bound to a plan's hash) and match
//! resolutions (a person's word on an uncertain account).
//!
//! Both are append-or-replace facts a person states; the engine reads them
//! when it plans and applies. Neither is ever inferred by roster itself.

use crate::reader::Read as _;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use roster_core::{AccountKey, ConnectionId, EmployeeId};

use crate::{PlanId, Store, StoreError};

/// Approve or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approved,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
        }
    }
}

/// One recorded decision on a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub plan_id: PlanId,
    /// The hash of the plan the person looked at.
    pub plan_hash: String,
    /// `None`: every action of the plan that needs approval.
    pub action_idx: Option<usize>,
    pub decision: Decision,
    pub actor: String,
    pub reason: String,
    pub at_ms: i64,
}

/// A person's resolution of an uncertain match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchResolution {
    pub connection: ConnectionId,
    pub account: AccountKey,
    /// The person the account belongs to; `None` = not a managed person
    /// (a shared or service account): never link, never act.
    pub employee_id: Option<EmployeeId>,
    pub actor: String,
    pub reason: String,
    pub at_ms: i64,
}

impl Store {
    /// Records a decision. The caller checks the hash against the stored
    /// plan; the store refuses a hash that does not match it.
    pub async fn record_approval(&self, record: &ApprovalRecord) -> Result<(), StoreError> {
        let stored = self
            .plan(&record.plan_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "plan",
                key: record.plan_id.to_string(),
            })?;
        if stored.hash != record.plan_hash {
            return Err(StoreError::Invalid(format!(
                "approval is for plan hash {} but plan {} has hash {}",
                record.plan_hash, record.plan_id, stored.hash
            )));
        }
        let id = format!(
            "{}:{}:{}:{}",
            record.plan_id,
            record
                .action_idx
                .map(|i| i.to_string())
                .unwrap_or_else(|| "*".into()),
            record.at_ms,
            record.actor
        );
        sqlx::query(
            "INSERT INTO approval (id, plan_id, plan_hash, action_idx, decision, actor, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(record.plan_id.as_str().to_string())
        .bind(record.plan_hash.clone())
        .bind(record.action_idx.map(|i| i as i64))
        .bind(record.decision.as_str())
        .bind(record.actor.clone())
        .bind(record.reason.clone())
        .bind(record.at_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every decision on a plan, oldest first.
    pub async fn approvals(&self, plan_id: &PlanId) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.approvals_of_plans(std::slice::from_ref(plan_id)).await
    }

    /// Every decision on any of `plan_ids`, oldest first, in one statement
    /// (one person's page looks at the recent plans together).
    pub async fn approvals_of_plans(
        &self,
        plan_ids: &[PlanId],
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        if plan_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=plan_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT plan_id, plan_hash, action_idx, decision, actor, reason, at_ms \
             FROM approval WHERE plan_id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in plan_ids {
            q = q.bind(id.as_str().to_string());
        }
        let rows = q.read_all(self).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let plan_id = PlanId::new(r.try_get::<String, _>("plan_id")?);
            let decision: String = r.try_get("decision")?;
            let idx: Option<i64> = r.try_get("action_idx")?;
            out.push(ApprovalRecord {
                plan_hash: r.try_get("plan_hash")?,
                action_idx: idx.map(|i| i as usize),
                decision: match decision.as_str() {
                    "approved" => Decision::Approved,
                    "rejected" => Decision::Rejected,
                    other => {
                        return Err(StoreError::Corrupt {
                            table: "approval",
                            key: plan_id.to_string(),
                            detail: format!("unknown decision {other:?}"),
                        });
                    }
                },
                plan_id,
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                at_ms: r.try_get("at_ms")?,
            });
        }
        out.sort_by_key(|a| a.at_ms);
        Ok(out)
    }

    /// Records (or replaces) a resolution for one account.
    pub async fn resolve_match(&self, r: &MatchResolution) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO match_resolution (connection, account_key, employee_id, actor, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (connection, account_key) DO UPDATE SET employee_id = excluded.employee_id, \
             actor = excluded.actor, reason = excluded.reason, at_ms = excluded.at_ms",
        )
        .bind(r.connection.as_str().to_string())
        .bind(r.account.as_str().to_string())
        .bind(r.employee_id.as_ref().map(|e| e.as_str().to_string()))
        .bind(r.actor.clone())
        .bind(r.reason.clone())
        .bind(r.at_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every resolution, ordered by connection and account.
    pub async fn match_resolutions(&self) -> Result<Vec<MatchResolution>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, account_key, employee_id, actor, reason, at_ms FROM match_resolution",
        )
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let emp: Option<String> = r.try_get("employee_id")?;
            out.push(MatchResolution {
                connection: ConnectionId::new(r.try_get::<String, _>("connection")?),
                account: AccountKey::new(r.try_get::<String, _>("account_key")?),
                employee_id: emp.map(EmployeeId::new),
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                at_ms: r.try_get("at_ms")?,
            });
        }
        out.sort_by(|a, b| (&a.connection, &a.account).cmp(&(&b.connection, &b.account)));
        Ok(out)
    }
}
