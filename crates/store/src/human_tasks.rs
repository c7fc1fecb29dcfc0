//! Human tasks: work only a person can do — a manual offboarding with the
//! catalog's checklist, a follow-up after a JIT account appears — tracked
//! until the next read of the app confirms it.
//!
//! States: `open` → `done` (the person says so, with evidence) →
//! `verified` (the next read agrees). If the read disagrees (the account is
//! still active), the task goes to `reopened` and is flagged. `cancelled`
//! when the need went away (the person was rehired, say).
//!
//! A task's `dedupe_key` names the intent (connection, operation, account),
//! so planning the same change twice never opens a second task.

use crate::reader::Read as _;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::get_bool;
use crate::{Store, StoreError};

/// Where a human task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HumanTaskState {
    Open,
    Done,
    Verified,
    Reopened,
    Cancelled,
}

impl HumanTaskState {
    pub const ALL: [HumanTaskState; 5] = [
        HumanTaskState::Open,
        HumanTaskState::Done,
        HumanTaskState::Verified,
        HumanTaskState::Reopened,
        HumanTaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HumanTaskState::Open => "open",
            HumanTaskState::Done => "done",
            HumanTaskState::Verified => "verified",
            HumanTaskState::Reopened => "reopened",
            HumanTaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<HumanTaskState> {
        HumanTaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Still needs a person's work.
    pub fn is_outstanding(self) -> bool {
        matches!(self, HumanTaskState::Open | HumanTaskState::Reopened)
    }
}

impl std::fmt::Display for HumanTaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One human task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanTask {
    pub id: String,
    pub dedupe_key: String,
    pub connection: String,
    /// What kind of work: `deactivate`, `create`, `update`, `reactivate`,
    /// `jit-follow-up`, ...
    pub kind: String,
    pub subject_email: String,
    pub employee_id: Option<String>,
    pub account_key: Option<String>,
    pub plan_id: Option<String>,
    pub action_idx: Option<usize>,
    pub title: String,
    pub checklist: Vec<String>,
    pub assignee: Option<String>,
    pub state: HumanTaskState,
    /// Set when verification failed: the person said done, the app disagrees.
    pub flagged: bool,
    pub note: Option<String>,
    /// What the person attached: a note, or a file's name and SHA-256.
    pub evidence: Option<String>,
    pub due_ms: Option<i64>,
    pub reminded_ms: Option<i64>,
    pub escalated_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const COLUMNS: &str = "id, dedupe_key, connection, kind, subject_email, employee_id, account_key, \
    plan_id, action_idx, title, checklist, assignee, state, flagged, note, evidence, due_ms, \
    reminded_ms, escalated_ms, created_ms, updated_ms";

fn decode(r: &AnyRow) -> Result<HumanTask, StoreError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    let checklist: String = r.try_get("checklist")?;
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "human_task",
        key: id.clone(),
        detail,
    };
    Ok(HumanTask {
        dedupe_key: r.try_get("dedupe_key")?,
        connection: r.try_get("connection")?,
        kind: r.try_get("kind")?,
        subject_email: r.try_get("subject_email")?,
        employee_id: r.try_get("employee_id")?,
        account_key: r.try_get("account_key")?,
        plan_id: r.try_get("plan_id")?,
        action_idx: r
            .try_get::<Option<i64>, _>("action_idx")?
            .map(|i| i as usize),
        title: r.try_get("title")?,
        checklist: serde_json::from_str(&checklist)
            .map_err(|e| corrupt(format!("checklist is not a JSON list: {e}")))?,
        assignee: r.try_get("assignee")?,
        state: HumanTaskState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
        flagged: get_bool(r, "flagged")?,
        note: r.try_get("note")?,
        evidence: r.try_get("evidence")?,
        due_ms: r.try_get("due_ms")?,
        reminded_ms: r.try_get("reminded_ms")?,
        escalated_ms: r.try_get("escalated_ms")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        id,
    })
}

impl Store {
    /// Opens a task unless one with the same `dedupe_key` exists. Returns
    /// the task as stored and whether it was created now. An existing task
    /// that was cancelled or verified is reopened (the need came back).
    pub async fn open_human_task(&self, task: &HumanTask) -> Result<(HumanTask, bool), StoreError> {
        if let Some(existing) = self.human_task_by_key(&task.dedupe_key).await? {
            if matches!(
                existing.state,
                HumanTaskState::Cancelled | HumanTaskState::Verified
            ) {
                self.set_human_task_state(
                    &existing.id,
                    HumanTaskState::Open,
                    None,
                    None,
                    task.created_ms,
                )
                .await?;
                let again = self.human_task(&existing.id).await?.unwrap_or(existing);
                return Ok((again, false));
            }
            return Ok((existing, false));
        }
        let checklist = serde_json::to_string(&task.checklist)
            .map_err(|e| StoreError::Invalid(format!("checklist: {e}")))?;
        sqlx::query(
            "INSERT INTO human_task (id, dedupe_key, connection, kind, subject_email, employee_id, \
             account_key, plan_id, action_idx, title, checklist, assignee, state, flagged, note, \
             evidence, due_ms, reminded_ms, escalated_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(task.id.clone())
        .bind(task.dedupe_key.clone())
        .bind(task.connection.clone())
        .bind(task.kind.clone())
        .bind(task.subject_email.clone())
        .bind(task.employee_id.clone())
        .bind(task.account_key.clone())
        .bind(task.plan_id.clone())
        .bind(task.action_idx.map(|i| i as i64))
        .bind(task.title.clone())
        .bind(checklist)
        .bind(task.assignee.clone())
        .bind(task.state.as_str())
        .bind(task.flagged)
        .bind(task.note.clone())
        .bind(task.evidence.clone())
        .bind(task.due_ms)
        .bind(task.reminded_ms)
        .bind(task.escalated_ms)
        .bind(task.created_ms)
        .bind(task.updated_ms)
        .execute(&self.write)
        .await?;
        let stored = self
            .human_task_by_key(&task.dedupe_key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "human task",
                key: task.dedupe_key.clone(),
            })?;
        Ok((stored.clone(), stored.id == task.id))
    }

    pub async fn human_task(&self, id: &str) -> Result<Option<HumanTask>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM human_task WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id.to_string())
            .read_optional(self)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn human_task_by_key(&self, key: &str) -> Result<Option<HumanTask>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM human_task WHERE dedupe_key = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(key.to_string())
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Tasks in the given states (all when empty), oldest first.
    pub async fn human_tasks(
        &self,
        states: &[HumanTaskState],
    ) -> Result<Vec<HumanTask>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM human_task");
        let rows = sqlx::query(sqlx::AssertSqlSafe(q)).read_all(self).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.retain(|t| states.is_empty() || states.contains(&t.state));
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// Moves a task to `state`, recording a note and evidence when given.
    /// Reopening flags the task; any other move keeps the flag as it was.
    pub async fn set_human_task_state(
        &self,
        id: &str,
        state: HumanTaskState,
        note: Option<String>,
        evidence: Option<String>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let flag_now = state == HumanTaskState::Reopened;
        let done = sqlx::query(
            "UPDATE human_task SET state = $1, note = COALESCE($2, note), \
             evidence = COALESCE($3, evidence), updated_ms = $4, \
             flagged = CASE WHEN $5 THEN $5 ELSE flagged END WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(note)
        .bind(evidence)
        .bind(now_ms)
        .bind(flag_now)
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "human task",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// Records that a reminder (or an escalation) was sent.
    pub async fn mark_human_task_nudged(
        &self,
        id: &str,
        escalated: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let q = if escalated {
            "UPDATE human_task SET escalated_ms = $1 WHERE id = $2"
        } else {
            "UPDATE human_task SET reminded_ms = $1 WHERE id = $2"
        };
        sqlx::query(q)
            .bind(now_ms)
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

impl Store {
    /// The tasks about one person (by employee ID, or by any of
    /// `addresses`, lower-cased) in `states` (all when empty), oldest
    /// first: [`Store::human_tasks`] for one person, through the indexes
    /// of migration 0021.
    pub async fn human_tasks_about(
        &self,
        employee_id: &str,
        addresses: &[String],
        states: &[HumanTaskState],
    ) -> Result<Vec<HumanTask>, StoreError> {
        let placeholders: Vec<String> = (0..addresses.len())
            .map(|i| format!("${}", i + 2))
            .collect();
        let by_address = if placeholders.is_empty() {
            String::new()
        } else {
            format!(" OR lower(subject_email) IN ({})", placeholders.join(", "))
        };
        let q = format!("SELECT {COLUMNS} FROM human_task WHERE employee_id = $1{by_address}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(employee_id.to_string());
        for a in addresses {
            query = query.bind(a.to_lowercase());
        }
        let rows = query.read_all(self).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.retain(|t| states.is_empty() || states.contains(&t.state));
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }
}
