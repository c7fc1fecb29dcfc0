//! Plans and the execution state of their actions.
//!
//! A saved plan is immutable: its JSON and its content hash
//! ([`Plan::hash`]) are written once, and loading re-checks the hash, so an
//! approval bound to a hash always refers to the content it was given for.
//! What changes is each action's [`ActionState`], one row per action keyed
//! by (plan, index in `plan.actions`).
//!
//! A plan's [`PlanStatus`] is derived from its actions' states when read,
//! so it can never disagree with them.

use crate::reader::Read as _;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use roster_core::{Action, Plan};

use crate::sql::{Val, insert_rows};
use crate::{Store, StoreError, to_i64};

/// Plan action rows per insert statement (see [`Store::save_plan`]).
const ACTION_ROWS_PER_STATEMENT: usize = 25;

/// A saved plan's identifier: a UUIDv7 whose time part is the plan's
/// creation time, so IDs sort by age. A public contract (shown in the CLI
/// and UI, used in approvals).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanId(String);

impl PlanId {
    pub fn new(s: impl Into<String>) -> Self {
        PlanId(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn generate(created_ms: i64) -> Self {
        let ms = u64::try_from(created_ms).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            u32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
        );
        PlanId(uuid::Uuid::new_v7(ts).to_string())
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanId({})", self.0)
    }
}

/// Where one action of a plan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionState {
    /// Not started.
    Pending,
    /// Being executed now.
    Running,
    /// Applied and confirmed. Final: never changes again.
    Done,
    /// Tried and failed; may be retried (set back to `running`).
    Failed,
    /// Deliberately not executed (excluded at approval, precondition gone).
    Skipped,
    /// Handed to a person as a task; set to `done` when they finish.
    Manual,
}

impl ActionState {
    pub const ALL: [ActionState; 6] = [
        ActionState::Pending,
        ActionState::Running,
        ActionState::Done,
        ActionState::Failed,
        ActionState::Skipped,
        ActionState::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Running => "running",
            ActionState::Done => "done",
            ActionState::Failed => "failed",
            ActionState::Skipped => "skipped",
            ActionState::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan's overall state, derived from its actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// No action has started.
    Pending,
    /// Some actions are running or still to run.
    InProgress,
    /// Nothing left to run; at least one action failed.
    Failed,
    /// Nothing left to run, none failed; some wait on a person.
    AwaitingManual,
    /// Every action is done or skipped (or there were none).
    Done,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::InProgress => "in_progress",
            PlanStatus::Failed => "failed",
            PlanStatus::AwaitingManual => "awaiting_manual",
            PlanStatus::Done => "done",
        }
    }

    /// The status of a plan whose actions are in `states` (state → count).
    pub fn from_counts(counts: &HashMap<ActionState, u64>) -> PlanStatus {
        let n = |s| counts.get(&s).copied().unwrap_or(0);
        let total: u64 = counts.values().sum();
        if total == 0 {
            PlanStatus::Done
        } else if n(ActionState::Pending) == total {
            PlanStatus::Pending
        } else if n(ActionState::Running) > 0 || n(ActionState::Pending) > 0 {
            PlanStatus::InProgress
        } else if n(ActionState::Failed) > 0 {
            PlanStatus::Failed
        } else if n(ActionState::Manual) > 0 {
            PlanStatus::AwaitingManual
        } else {
            PlanStatus::Done
        }
    }
}

impl fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan as saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub id: PlanId,
    /// [`Plan::hash`] of `plan`, checked on load.
    pub hash: String,
    pub created_ms: i64,
    pub plan: Plan,
    pub status: PlanStatus,
    /// The principal that proposed it (`user:alice`, `agent:claude`), as
    /// the audit log names it; `None` for plans saved before schema 11 or
    /// without one.
    pub proposed_by: Option<String>,
    /// When it was first handed to execution ([`Store::mark_plan_applied`]).
    pub applied_ms: Option<i64>,
}

/// The policy a plan was computed under: the hash of its text, and the
/// text, so a later plan can re-evaluate under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPolicy {
    pub hash: String,
    pub text: String,
}

/// The last plan handed to execution, with the policy it was computed
/// under (`None` for a plan saved without one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedPlan {
    pub id: PlanId,
    pub applied_ms: i64,
    pub policy: Option<PlanPolicy>,
}

/// One action of a saved plan with its execution state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAction {
    pub plan_id: PlanId,
    /// Position in `plan.actions`.
    pub index: usize,
    pub action: Action,
    pub state: ActionState,
    /// What the executor said (an error, a task link, ...).
    pub detail: Option<String>,
    /// When the state last changed (the save time until then).
    pub updated_ms: i64,
}

impl Store {
    /// Saves `plan` with every action `pending`, and returns its new ID.
    pub async fn save_plan(&self, plan: &Plan, created_ms: i64) -> Result<PlanId, StoreError> {
        self.save_plan_under(plan, created_ms, None).await
    }

    /// [`Store::save_plan`], recording the policy the plan was computed
    /// under (see [`Store::last_applied_plan`]).
    pub async fn save_plan_under(
        &self,
        plan: &Plan,
        created_ms: i64,
        policy: Option<&PlanPolicy>,
    ) -> Result<PlanId, StoreError> {
        self.save_plan_proposed(plan, created_ms, policy, None)
            .await
    }

    /// [`Store::save_plan_under`], recording who proposed the plan.
    pub async fn save_plan_proposed(
        &self,
        plan: &Plan,
        created_ms: i64,
        policy: Option<&PlanPolicy>,
        proposed_by: Option<&str>,
    ) -> Result<PlanId, StoreError> {
        let id = PlanId::generate(created_ms);
        let hash = plan.hash();
        let data = serde_json::to_string(plan)
            .map_err(|e| StoreError::Invalid(format!("plan cannot be serialized: {e}")))?;
        let rows: Vec<Vec<Val>> = plan
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![
                    Val::Text(id.0.clone()),
                    Val::Int(to_i64(i)),
                    Val::Text(a.connection.as_str().to_string()),
                    Val::Text(a.operation.as_str().to_string()),
                    Val::Text(a.key()),
                    Val::Text(ActionState::Pending.as_str().to_string()),
                    Val::OptText(None),
                    Val::Int(created_ms),
                ]
            })
            .collect();

        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO plan (id, hash, created_ms, data, policy_hash, policy_text, proposed_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.0.clone())
        .bind(hash)
        .bind(created_ms)
        .bind(data)
        .bind(policy.map(|p| p.hash.clone()))
        .bind(policy.map(|p| p.text.clone()))
        .bind(proposed_by.map(str::to_string))
        .execute(&mut *tx)
        .await?;
        // Small statements: sqlx-sqlite looks up every parameter's name and
        // SQLite walks the parameter list to answer, so binding costs
        // O(params²) per statement (see `sql::MAX_PARAMS`). At 8 columns the
        // shared limit allows 125 rows; 25 rows cut that cost fivefold, which
        // showed in profiles of saving a 77k-action plan.
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Val>> = rows.by_ref().take(ACTION_ROWS_PER_STATEMENT).collect();
            insert_rows(
                &mut tx,
                "INSERT INTO plan_action (plan_id, idx, connection, operation, action_key, \
                 state, detail, updated_ms)",
                "",
                8,
                chunk,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// A saved plan, or `None` if there is no plan with this ID.
    pub async fn plan(&self, id: &PlanId) -> Result<Option<StoredPlan>, StoreError> {
        let row = sqlx::query(
            "SELECT id, hash, created_ms, data, proposed_by, applied_ms FROM plan WHERE id = $1",
        )
        .bind(id.0.clone())
        .read_optional(self)
        .await?;
        match row {
            Some(row) => self.finish_plan(&row).await.map(Some),
            None => Ok(None),
        }
    }

    /// The most recently created plan.
    pub async fn latest_plan(&self) -> Result<Option<StoredPlan>, StoreError> {
        // Plans created in the same millisecond are told apart by ID; that
        // tie-break is stable but not meaningful.
        let row = sqlx::query(
            "SELECT id, hash, created_ms, data, proposed_by, applied_ms FROM plan ORDER BY created_ms DESC, id DESC LIMIT 1",
        )
        .read_optional(self)
        .await?;
        match row {
            Some(row) => self.finish_plan(&row).await.map(Some),
            None => Ok(None),
        }
    }

    /// The `limit` most recently created plans, newest first (same order
    /// and tie-break as [`Store::latest_plan`]).
    pub async fn recent_plans(&self, limit: usize) -> Result<Vec<StoredPlan>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hash, created_ms, data, proposed_by, applied_ms FROM plan ORDER BY created_ms DESC, id DESC LIMIT $1",
        )
        .bind(to_i64(limit))
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.finish_plan(row).await?);
        }
        Ok(out)
    }

    /// The IDs and content hashes of the `limit` most recent plans, newest
    /// first, without reading their contents (a plan's content never
    /// changes, so a caller may keep what it decoded by ID and hash).
    pub async fn recent_plan_ids(&self, limit: usize) -> Result<Vec<(PlanId, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT id, hash FROM plan ORDER BY created_ms DESC, id DESC LIMIT $1")
                .bind(to_i64(limit))
                .read_all(self)
                .await?;
        rows.iter()
            .map(|r| Ok((PlanId(r.try_get("id")?), r.try_get("hash")?)))
            .collect()
    }

    /// The states of some of a plan's actions, by position; positions the
    /// plan does not have are left out.
    pub async fn states_of_actions(
        &self,
        plan_id: &PlanId,
        indexes: &[usize],
    ) -> Result<Vec<(usize, ActionState)>, StoreError> {
        let wanted = [(plan_id.clone(), indexes.to_vec())];
        Ok(self
            .states_of_actions_in(&wanted)
            .await?
            .into_iter()
            .map(|(_, index, state)| (index, state))
            .collect())
    }

    /// [`Store::states_of_actions`] for several plans in one statement:
    /// `(plan, position, state)`, positions a plan does not have left out.
    pub async fn states_of_actions_in(
        &self,
        wanted: &[(PlanId, Vec<usize>)],
    ) -> Result<Vec<(PlanId, usize, ActionState)>, StoreError> {
        let wanted: Vec<&(PlanId, Vec<usize>)> =
            wanted.iter().filter(|(_, idx)| !idx.is_empty()).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let clauses: Vec<String> = wanted
            .iter()
            .map(|(_, idx)| {
                let plan = next();
                let list: Vec<String> = idx.iter().map(|_| next()).collect();
                format!("(plan_id = {plan} AND idx IN ({}))", list.join(", "))
            })
            .collect();
        let sql = format!(
            "SELECT plan_id, idx, state FROM plan_action WHERE {} ORDER BY plan_id, idx",
            clauses.join(" OR ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (plan, idx) in &wanted {
            q = q.bind(plan.0.clone());
            for i in idx {
                q = q.bind(to_i64(*i));
            }
        }
        let rows = q.read_all(self).await?;
        rows.iter()
            .map(|r| {
                let plan = PlanId(r.try_get("plan_id")?);
                let idx: i64 = r.try_get("idx")?;
                let state = parse_state(r, &plan)?;
                Ok((plan, usize::try_from(idx).unwrap_or(usize::MAX), state))
            })
            .collect()
    }

    /// Records that a plan was handed to execution (applied, or queued for
    /// a worker). The first time counts; later calls change nothing.
    /// [`StoreError::NotFound`] if there is no such plan.
    pub async fn mark_plan_applied(&self, id: &PlanId, at_ms: i64) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE plan SET applied_ms = COALESCE(applied_ms, $1) WHERE id = $2")
                .bind(at_ms)
                .bind(id.0.clone())
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "plan",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// The plan most recently handed to execution, with its policy.
    pub async fn last_applied_plan(&self) -> Result<Option<AppliedPlan>, StoreError> {
        let row = sqlx::query(
            "SELECT id, applied_ms, policy_hash, policy_text FROM plan \
             WHERE applied_ms IS NOT NULL ORDER BY applied_ms DESC, id DESC LIMIT 1",
        )
        .read_optional(self)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Option<String> = row.try_get("policy_hash")?;
        let text: Option<String> = row.try_get("policy_text")?;
        Ok(Some(AppliedPlan {
            id: PlanId(row.try_get("id")?),
            applied_ms: row.try_get("applied_ms")?,
            policy: hash.zip(text).map(|(hash, text)| PlanPolicy { hash, text }),
        }))
    }

    /// Moves action `action_index` of plan `plan_id` to `state`, recording
    /// `detail` and the time. A `done` action cannot change
    /// ([`StoreError::InvalidTransition`]); setting the state it already has
    /// only updates the detail.
    pub async fn set_action_state(
        &self,
        plan_id: &PlanId,
        action_index: usize,
        state: ActionState,
        detail: Option<String>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        // One statement: the guard and the write are atomic on both engines.
        let done = sqlx::query(
            "UPDATE plan_action SET state = $1, detail = $2, updated_ms = $3 \
             WHERE plan_id = $4 AND idx = $5 AND (state <> 'done' OR state = $1)",
        )
        .bind(state.as_str().to_string())
        .bind(detail)
        .bind(now_ms)
        .bind(plan_id.0.clone())
        .bind(to_i64(action_index))
        .execute(&self.write)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let current = sqlx::query("SELECT state FROM plan_action WHERE plan_id = $1 AND idx = $2")
            .bind(plan_id.0.clone())
            .bind(to_i64(action_index))
            .fetch_optional(&self.write)
            .await?;
        match current {
            None => Err(StoreError::NotFound {
                what: "plan action",
                key: format!("{plan_id}#{action_index}"),
            }),
            Some(row) => {
                let from = parse_state(&row, plan_id)?;
                Err(StoreError::InvalidTransition {
                    plan: plan_id.to_string(),
                    index: action_index,
                    from: from.as_str(),
                    to: state.as_str(),
                })
            }
        }
    }

    /// Every action of a plan with its state, in plan order.
    /// [`StoreError::NotFound`] if there is no such plan.
    pub async fn actions(&self, plan_id: &PlanId) -> Result<Vec<StoredAction>, StoreError> {
        let stored = self
            .plan(plan_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "plan",
                key: plan_id.to_string(),
            })?;
        let rows = sqlx::query(
            "SELECT idx, state, detail, updated_ms FROM plan_action WHERE plan_id = $1 \
             ORDER BY idx",
        )
        .bind(plan_id.0.clone())
        .read_all(self)
        .await?;
        if rows.len() != stored.plan.actions.len() {
            return Err(StoreError::corrupt(
                "plan_action",
                plan_id.to_string(),
                format!(
                    "{} action rows for a plan with {} actions",
                    rows.len(),
                    stored.plan.actions.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(rows.len());
        for (row, action) in rows.iter().zip(stored.plan.actions) {
            let idx: i64 = row.try_get("idx")?;
            let index = usize::try_from(idx)
                .ok()
                .filter(|i| *i == out.len())
                .ok_or_else(|| {
                    StoreError::corrupt(
                        "plan_action",
                        plan_id.to_string(),
                        "action indexes have gaps",
                    )
                })?;
            out.push(StoredAction {
                plan_id: plan_id.clone(),
                index,
                action,
                state: parse_state(row, plan_id)?,
                detail: row.try_get("detail")?,
                updated_ms: row.try_get("updated_ms")?,
            });
        }
        Ok(out)
    }

    pub(crate) async fn finish_plan(&self, row: &AnyRow) -> Result<StoredPlan, StoreError> {
        let id = PlanId(row.try_get("id")?);
        let hash: String = row.try_get("hash")?;
        let data: String = row.try_get("data")?;
        let plan: Plan = serde_json::from_str(&data)
            .map_err(|e| StoreError::corrupt("plan", id.to_string(), e))?;
        let actual = plan.hash();
        if actual != hash {
            return Err(StoreError::corrupt(
                "plan",
                id.to_string(),
                format!("content hash is {actual}, but the plan was saved with {hash}"),
            ));
        }
        let counts_rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM plan_action WHERE plan_id = $1 GROUP BY state",
        )
        .bind(id.0.clone())
        .read_all(self)
        .await?;
        let mut counts = HashMap::new();
        for r in &counts_rows {
            let n: i64 = r.try_get("n")?;
            counts.insert(parse_state(r, &id)?, u64::try_from(n).unwrap_or(0));
        }
        Ok(StoredPlan {
            status: PlanStatus::from_counts(&counts),
            created_ms: row.try_get("created_ms")?,
            id,
            hash,
            plan,
            proposed_by: row.try_get("proposed_by")?,
            applied_ms: row.try_get("applied_ms")?,
        })
    }
}

fn parse_state(row: &AnyRow, plan_id: &PlanId) -> Result<ActionState, StoreError> {
    let s: String = row.try_get("state")?;
    ActionState::parse(&s).ok_or_else(|| {
        StoreError::corrupt(
            "plan_action",
            plan_id.to_string(),
            format!("unknown state {s:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(ActionState, u64)]) -> HashMap<ActionState, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn plan_status_follows_action_states() {
        use ActionState::*;
        assert_eq!(PlanStatus::from_counts(&counts(&[])), PlanStatus::Done);
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Pending, 3)])),
            PlanStatus::Pending
        );
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Pending, 2), (Done, 1)])),
            PlanStatus::InProgress
        );
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Failed, 1), (Running, 1)])),
            PlanStatus::InProgress
        );
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Failed, 1), (Manual, 1), (Done, 4)])),
            PlanStatus::Failed
        );
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Manual, 1), (Skipped, 1)])),
            PlanStatus::AwaitingManual
        );
        assert_eq!(
            PlanStatus::from_counts(&counts(&[(Done, 3), (Skipped, 1)])),
            PlanStatus::Done
        );
    }

    #[test]
    fn plan_ids_sort_by_creation_time() {
        let a = PlanId::generate(1_700_000_000_000);
        let b = PlanId::generate(1_700_000_000_001);
        assert!(a < b, "{a} < {b}");
        assert_ne!(PlanId::generate(5), PlanId::generate(5));
    }

    #[test]
    fn action_state_names_round_trip() {
        for s in ActionState::ALL {
            assert_eq!(ActionState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ActionState::parse("bogus"), None);
    }
}
