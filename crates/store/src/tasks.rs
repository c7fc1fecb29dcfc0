//! Durable execution: the task queue.
//!
//! Every plan action that a connector will carry out becomes one [`Task`]
//! row. The executor (in `roster-engine`) claims due tasks in batches,
//! calls the connector, and finishes each task. Everything that must
//! survive a crash lives here, in the database, so a worker killed at any
//! instant loses nothing and a restarted worker picks up where it left off.
//!
//! # States
//!
//! ```text
//!            enqueue                claim (lease, attempts+1)
//!   (none) ─────────▶ ready ───────────────────────────────▶ running
//!                      ▲  ▲                                   │ │ │
//!          lease expired│  │ released (auth/config failure,   │ │ │
//!          (reaper,     │  │ attempt refunded)                │ │ │
//!          uncertain)   └──┴──────────────────────────────────┘ │ │
//!   retry_wait ◀── retryable failure, run_at = now + backoff ───┘ │
//!       │  (claimable again once run_at_ms has passed)            │
//!       └─────────────▶ running                                   │
//!   done ◀── applied / skipped / already applied ─────────────────┤
//!   dead ◀── refused, or out of attempts (a dead letter) ─────────┘
//!   cancelled ◀── cancel_plan_tasks (ready / retry_wait only)
//! ```
//!
//! `done`, `dead` and `cancelled` are final, except that
//! [`Store::requeue_dead_tasks`] gives dead letters a fresh attempt budget
//! when an operator asks for another try.
//!
//! # Invariants
//!
//! * **One task per plan action.** `idempotency_key` (see
//!   [`idempotency_key`]) and `(plan_id, action_idx)` are unique, so
//!   [`Store::enqueue_plan_tasks`] run twice creates nothing new.
//! * **Claims never overlap.** A claim is one `UPDATE ... WHERE id IN
//!   (SELECT ... LIMIT n) RETURNING` statement: on PostgreSQL the inner
//!   select takes `FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each
//!   other's rows; on SQLite the store's single writer connection makes the
//!   statement atomic.
//! * **Fenced completion.** A worker may finish a task only while it still
//!   holds it: [`Store::finish_tasks`] matches `lease_owner`, `state =
//!   'running'` *and* the attempt number it claimed. A worker whose lease
//!   expired and whose task was re-claimed cannot overwrite the newer
//!   attempt's result.
//! * **The plan mirrors the queue.** Every transition updates the plan
//!   action's [`ActionState`] in the same transaction (ready and
//!   retry_wait → `pending`, running → `running`, done → `done` or
//!   `skipped`, dead → `failed`, cancelled → `skipped`), and a finished
//!   task's audit event is appended in that transaction too, so the plan,
//!   the queue and the audit log never disagree, whatever instant the
//!   process dies at.
//! * **Quarantine and pause are enforced here.** Claims skip every
//!   connection whose status is [`QUARANTINED`], for every worker process,
//!   until [`Store::resume_connection`] lifts it, and every connection a
//!   person paused ([`Store::pause_writes`]) until [`Store::resume_writes`].

use crate::reader::Read as _;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use roster_core::{Action, ConnectionId};

use crate::audit::AuditEvent;
use crate::plans::{ActionState, PlanId};
use crate::rates::ALL_CONNECTIONS;
use crate::sql::{Val, bind_val, get_bool, values_placeholders};
use crate::{Backend, Store, StoreError, to_i64};

/// The connection status that stops all claims for a connection.
pub const QUARANTINED: &str = "quarantined";

/// The columns every task query returns, in [`decode_task`]'s order.
const TASK_COLUMNS: &str = "id, plan_id, action_idx, connection, operation, idempotency_key, \
     state, attempts, max_attempts, run_at_ms, lease_owner, lease_until_ms, uncertain, outcome, \
     last_error, created_ms, updated_ms";

/// Rows per statement for bulk inserts and `IN` lists.
const CHUNK: usize = 200;

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecState {
    /// Waiting to be claimed (now, or since `run_at_ms`).
    Ready,
    /// Claimed by a worker holding a lease.
    Running,
    /// Failed in a way that may pass; claimable again from `run_at_ms`.
    RetryWait,
    /// Finished: applied, found already applied, or nothing to do.
    Done,
    /// A dead letter: refused by the app or out of attempts.
    Dead,
    /// Withdrawn before it ran.
    Cancelled,
}

impl ExecState {
    pub const ALL: [ExecState; 6] = [
        ExecState::Ready,
        ExecState::Running,
        ExecState::RetryWait,
        ExecState::Done,
        ExecState::Dead,
        ExecState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecState::Ready => "ready",
            ExecState::Running => "running",
            ExecState::RetryWait => "retry_wait",
            ExecState::Done => "done",
            ExecState::Dead => "dead",
            ExecState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ExecState> {
        ExecState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// No worker will touch the task again on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecState::Done | ExecState::Dead | ExecState::Cancelled
        )
    }
}

impl fmt::Display for ExecState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a `done` task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The app accepted the change.
    Applied,
    /// A check before a repeated attempt found the change already made
    /// (an earlier attempt reached the app before its worker died).
    AlreadyApplied,
    /// Nothing to do (e.g. the account to deactivate does not exist).
    Skipped,
}

impl TaskOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Applied => "applied",
            TaskOutcome::AlreadyApplied => "already_applied",
            TaskOutcome::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<TaskOutcome> {
        [
            TaskOutcome::Applied,
            TaskOutcome::AlreadyApplied,
            TaskOutcome::Skipped,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One task row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub plan_id: PlanId,
    /// Position of the action in its plan.
    pub action_idx: usize,
    pub connection: ConnectionId,
    /// The action's operation (`create`, ...), for listings.
    pub operation: String,
    pub idempotency_key: String,
    pub state: ExecState,
    /// Claims so far (each claim is one attempt).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimable before this time.
    pub run_at_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    /// An earlier attempt may have reached the app without its result being
    /// recorded (its worker died, or the call failed after sending). The
    /// next attempt checks the app's state before acting.
    pub uncertain: bool,
    /// Set when `done`.
    pub outcome: Option<TaskOutcome>,
    /// The last failure, or the dead letter's reason.
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The task's idempotency key: a hex SHA-256 over the plan ID, the plan's
/// content hash, the action's index and [`Action::key`].
///
/// The plan hash and action key bind the task to the approved content; the
/// plan ID and index keep two saved copies of the same plan (same hash)
/// apart, since each has its own action rows to settle. The key is stable,
/// so it can also be sent to apps that accept an idempotency header.
pub fn idempotency_key(plan_id: &PlanId, plan_hash: &str, index: usize, action: &Action) -> String {
    let mut h = Sha256::new();
    for part in [
        plan_id.as_str(),
        plan_hash,
        &index.to_string(),
        &action.key(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What [`Store::enqueue_plan_tasks`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnqueueReport {
    /// New tasks.
    pub inserted: usize,
    /// Actions that already had a task (left as they were).
    pub existing: usize,
}

/// How a worker settles one claimed task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskResult {
    /// Finished; the plan action becomes `done` (or `skipped` for
    /// [`TaskOutcome::Skipped`]) with `detail`.
    Done {
        outcome: TaskOutcome,
        detail: Option<String>,
    },
    /// Try again from `run_at_ms`. `uncertain`: the failed call may have
    /// reached the app. `refund`: the app never judged the action (bad
    /// credentials, misconfiguration), so the attempt does not count.
    Retry {
        run_at_ms: i64,
        error: String,
        uncertain: bool,
        refund: bool,
    },
    /// A dead letter with its reason; the plan action becomes `failed`.
    Dead { reason: String },
}

/// One task's result, for [`Store::finish_tasks`].
#[derive(Clone, Debug)]
pub struct TaskFinish {
    pub id: i64,
    /// The attempt number the worker claimed (the fence).
    pub attempt: u32,
    pub result: TaskResult,
    /// Appended to the audit log in the same transaction, if the finish is
    /// accepted.
    pub audit: Option<AuditEvent>,
}

/// A task returned to the queue by [`Store::reap_expired_leases`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReapedTask {
    pub id: i64,
    pub plan_id: PlanId,
    pub action_idx: usize,
    pub connection: ConnectionId,
    pub previous_owner: Option<String>,
    /// `Dead` when the task had used its last attempt (a worker dies on it
    /// every time), else `Ready`.
    pub now: ExecState,
}

/// What is left to do for one connection (optionally one plan).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStatus {
    pub ready: u64,
    pub retry_wait: u64,
    pub running: u64,
    /// The earliest `run_at_ms` among ready and retry_wait tasks.
    pub next_run_at_ms: Option<i64>,
    /// The connection's status reason, when it is quarantined.
    pub quarantined: Option<String>,
    /// Who paused writes to the connection and why, when a person did
    /// (`roster pause`).
    pub paused: Option<String>,
}

impl QueueStatus {
    /// Tasks not yet final.
    pub fn open(&self) -> u64 {
        self.ready + self.retry_wait + self.running
    }
}

/// Which tasks [`Store::tasks`] lists.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub plan_id: Option<PlanId>,
    pub connection: Option<ConnectionId>,
    pub state: Option<ExecState>,
}

/// The plan action state that mirrors a task state.
fn mirror(state: ExecState, outcome: Option<TaskOutcome>) -> ActionState {
    match state {
        ExecState::Ready | ExecState::RetryWait => ActionState::Pending,
        ExecState::Running => ActionState::Running,
        ExecState::Done if outcome == Some(TaskOutcome::Skipped) => ActionState::Skipped,
        ExecState::Done => ActionState::Done,
        ExecState::Dead => ActionState::Failed,
        ExecState::Cancelled => ActionState::Skipped,
    }
}

impl Store {
    /// Creates a `ready` task for every action of `plan_id` that is
    /// `pending` or `failed` and whose connection is in `connections` (the
    /// ones a connector serves). Actions that already have a task are left
    /// alone, so calling this twice creates nothing new.
    pub async fn enqueue_plan_tasks(
        &self,
        plan_id: &PlanId,
        connections: &[ConnectionId],
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<EnqueueReport, StoreError> {
        self.enqueue_plan_tasks_except(
            plan_id,
            connections,
            &std::collections::BTreeSet::new(),
            max_attempts,
            now_ms,
        )
        .await
    }

    /// [`Store::enqueue_plan_tasks`], leaving out the actions in `held`
    /// (by index): those waiting for a person's approval. They stay
    /// pending with no task, so a later call can enqueue them once decided.
    pub async fn enqueue_plan_tasks_except(
        &self,
        plan_id: &PlanId,
        connections: &[ConnectionId],
        held: &std::collections::BTreeSet<usize>,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<EnqueueReport, StoreError> {
        let stored = self
            .plan(plan_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "plan",
                key: plan_id.to_string(),
            })?;
        let actions = self.actions(plan_id).await?;
        let rows: Vec<Vec<Val>> = actions
            .iter()
            .filter(|a| matches!(a.state, ActionState::Pending | ActionState::Failed))
            .filter(|a| connections.contains(&a.action.connection))
            .filter(|a| !held.contains(&a.index))
            .map(|a| {
                vec![
                    Val::Text(plan_id.as_str().to_string()),
                    Val::Int(to_i64(a.index)),
                    Val::Text(a.action.connection.as_str().to_string()),
                    Val::Text(a.action.operation.as_str().to_string()),
                    Val::Text(idempotency_key(plan_id, &stored.hash, a.index, &a.action)),
                    Val::Text(ExecState::Ready.as_str().to_string()),
                    Val::Int(0),
                    Val::Int(i64::from(max_attempts.max(1))),
                    Val::Int(now_ms),
                    Val::Bool(false),
                    Val::Int(now_ms),
                    Val::Int(now_ms),
                ]
            })
            .collect();
        let candidates = rows.len();
        let mut inserted = 0usize;
        let mut tx = self.write.begin().await?;
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO task (plan_id, action_idx, connection, operation, idempotency_key, \
                 state, attempts, max_attempts, run_at_ms, uncertain, created_ms, updated_ms) \
                 VALUES {} ON CONFLICT DO NOTHING",
                values_placeholders(12, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for row in chunk {
                for v in row.iter().cloned() {
                    q = bind_val(q, v);
                }
            }
            let done = q.execute(&mut *tx).await?;
            inserted += usize::try_from(done.rows_affected()).unwrap_or(usize::MAX);
        }
        tx.commit().await?;
        Ok(EnqueueReport {
            inserted,
            existing: candidates - inserted.min(candidates),
        })
    }

    /// Claims up to `limit` due tasks of `connection` for `owner`, oldest
    /// first, leasing them until `now_ms + lease_ms` and counting one
    /// attempt each. With `plan`, only that plan's tasks. Nothing is
    /// claimed for a quarantined or paused connection.
    pub async fn claim_tasks(
        &self,
        connection: &ConnectionId,
        plan: Option<&PlanId>,
        owner: &str,
        limit: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Task>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The only dialect-specific SQL in the store: PostgreSQL locks the
        // chosen rows and lets concurrent claimers skip them; SQLite's
        // single writer makes the statement atomic on its own.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let plan_clause = if plan.is_some() {
            " AND plan_id = $6"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE task SET state = 'running', lease_owner = $1, lease_until_ms = $2, \
             attempts = attempts + 1, updated_ms = $3 \
             WHERE id IN (SELECT id FROM task WHERE connection = $4 \
             AND state IN ('ready', 'retry_wait') AND run_at_ms <= $3{plan_clause} \
             AND NOT EXISTS (SELECT 1 FROM connection c WHERE c.id = task.connection \
             AND c.status = '{QUARANTINED}') \
             AND NOT EXISTS (SELECT 1 FROM connection_pause p \
             WHERE p.scope = task.connection OR p.scope = '{ALL_CONNECTIONS}') \
             ORDER BY id LIMIT $5{lock}) \
             RETURNING {TASK_COLUMNS}"
        );
        let mut tx = self.write.begin().await?;
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(owner.to_string())
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .bind(connection.as_str().to_string())
            .bind(to_i64(limit));
        if let Some(p) = plan {
            q = q.bind(p.as_str().to_string());
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut tasks = rows
            .iter()
            .map(decode_task)
            .collect::<Result<Vec<_>, _>>()?;
        tasks.sort_by_key(|t| t.id);
        for t in &tasks {
            mirror_action(&mut tx, t, ActionState::Running, None, now_ms).await?;
        }
        tx.commit().await?;
        Ok(tasks)
    }

    /// Extends the leases `owner` holds on `ids` to `lease_until_ms`.
    /// Returns how many it still held: fewer than asked means some leases
    /// expired and were reaped, and their results will be refused.
    pub async fn heartbeat_tasks(
        &self,
        owner: &str,
        ids: &[i64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut held = 0;
        for chunk in ids.chunks(CHUNK) {
            let list = placeholders_from(4, chunk.len());
            let sql = format!(
                "UPDATE task SET lease_until_ms = $1, updated_ms = $2 \
                 WHERE lease_owner = $3 AND state = 'running' AND id IN ({list})"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(lease_until_ms)
                .bind(now_ms)
                .bind(owner.to_string());
            for id in chunk {
                q = q.bind(*id);
            }
            held += q.execute(&self.write).await?.rows_affected();
        }
        Ok(held)
    }

    /// Settles claimed tasks in one transaction: each task's row, its plan
    /// action and its audit event. A finish is accepted only if `owner`
    /// still holds the task at the claimed attempt; the returned vector
    /// says, per finish, whether it was.
    pub async fn finish_tasks(
        &self,
        owner: &str,
        finishes: Vec<TaskFinish>,
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut accepted = Vec::with_capacity(finishes.len());
        let mut tx = self.write.begin().await?;
        for f in finishes {
            let (state, outcome, run_at, error, uncertain, refund) = match &f.result {
                TaskResult::Done { outcome, detail } => (
                    ExecState::Done,
                    Some(*outcome),
                    None,
                    detail.clone(),
                    false,
                    false,
                ),
                TaskResult::Retry {
                    run_at_ms,
                    error,
                    uncertain,
                    refund,
                } => (
                    if *refund {
                        ExecState::Ready
                    } else {
                        ExecState::RetryWait
                    },
                    None,
                    Some(*run_at_ms),
                    Some(error.clone()),
                    *uncertain,
                    *refund,
                ),
                TaskResult::Dead { reason } => (
                    ExecState::Dead,
                    None,
                    None,
                    Some(reason.clone()),
                    false,
                    false,
                ),
            };
            // `uncertain` only ever grows until the task is done: a later
            // clean failure does not prove an earlier lost call never
            // landed.
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE task SET state = $1, outcome = $2, run_at_ms = COALESCE($3, run_at_ms), \
                 last_error = $4, uncertain = (CASE WHEN $1 = 'done' THEN FALSE \
                 WHEN $5 THEN TRUE ELSE uncertain END), \
                 attempts = attempts - $6, lease_owner = NULL, lease_until_ms = NULL, \
                 updated_ms = $7 \
                 WHERE id = $8 AND lease_owner = $9 AND state = 'running' AND attempts = $10 \
                 RETURNING {TASK_COLUMNS}"
            )))
            .bind(state.as_str().to_string())
            .bind(outcome.map(|o| o.as_str().to_string()))
            .bind(run_at)
            .bind(error.clone())
            .bind(uncertain)
            .bind(i64::from(refund))
            .bind(now_ms)
            .bind(f.id)
            .bind(owner.to_string())
            .bind(i64::from(f.attempt))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                accepted.push(false);
                continue;
            };
            let task = decode_task(&row)?;
            let detail = match (&f.result, state) {
                (TaskResult::Retry { error, .. }, _) => Some(format!(
                    "attempt {} of {} failed, will retry: {error}",
                    f.attempt, task.max_attempts
                )),
                _ => error,
            };
            mirror_action(&mut tx, &task, mirror(state, outcome), detail, now_ms).await?;
            if let Some(event) = &f.audit {
                crate::audit::append_in_tx(&mut tx, std::slice::from_ref(event)).await?;
            }
            accepted.push(true);
        }
        tx.commit().await?;
        Ok(accepted)
    }

    /// Returns `running` tasks whose lease ended before `now_ms` to the
    /// queue: their worker died or lost contact. They become `ready` and
    /// `uncertain` (the call may have reached the app), or `dead` if that
    /// was their last attempt, so an action that kills its worker every
    /// time cannot loop forever.
    pub async fn reap_expired_leases(&self, now_ms: i64) -> Result<Vec<ReapedTask>, StoreError> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM task WHERE state = 'running' AND lease_until_ms < $1 \
             ORDER BY id"
        )))
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut reaped = Vec::with_capacity(rows.len());
        for row in &rows {
            let t = decode_task(row)?;
            let owner = t.lease_owner.clone().unwrap_or_default();
            let until = t.lease_until_ms.unwrap_or_default();
            let (next, error) = if t.attempts >= t.max_attempts {
                (
                    ExecState::Dead,
                    format!(
                        "the worker {owner:?} stopped while running attempt {} of {} (lease \
                         expired at {until}); no attempts left",
                        t.attempts, t.max_attempts
                    ),
                )
            } else {
                (
                    ExecState::Ready,
                    format!(
                        "the worker {owner:?} stopped while running attempt {} of {} (lease \
                         expired at {until}); the app may have applied it, so the next attempt \
                         checks first",
                        t.attempts, t.max_attempts
                    ),
                )
            };
            // Guarded by the lease we read, so a heartbeat that lands in
            // between wins and the task is left alone.
            let done = sqlx::query(
                "UPDATE task SET state = $1, uncertain = TRUE, last_error = $2, run_at_ms = $3, \
                 lease_owner = NULL, lease_until_ms = NULL, updated_ms = $3 \
                 WHERE id = $4 AND state = 'running' AND lease_until_ms < $3",
            )
            .bind(next.as_str().to_string())
            .bind(error.clone())
            .bind(now_ms)
            .bind(t.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            let detail = match next {
                ExecState::Dead => error,
                _ => format!("interrupted, will retry: {error}"),
            };
            mirror_action(&mut tx, &t, mirror(next, None), Some(detail), now_ms).await?;
            reaped.push(ReapedTask {
                id: t.id,
                plan_id: t.plan_id,
                action_idx: t.action_idx,
                connection: t.connection,
                previous_owner: t.lease_owner,
                now: next,
            });
        }
        tx.commit().await?;
        Ok(reaped)
    }

    /// Returns every `running` task leased by `owner` to `ready` at once
    /// (uncertain), without waiting for the leases to expire. For a worker
    /// that restarts under a stable name: its previous incarnation is
    /// known to be dead. Returns how many were released.
    pub async fn release_leases_of(&self, owner: &str, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE task SET state = 'ready', uncertain = TRUE, lease_owner = NULL, \
             lease_until_ms = NULL, run_at_ms = $1, updated_ms = $1, \
             last_error = 'the worker restarted while running this attempt' \
             WHERE state = 'running' AND lease_owner = $2 RETURNING {TASK_COLUMNS}"
        )))
        .bind(now_ms)
        .bind(owner.to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let t = decode_task(row)?;
            mirror_action(
                &mut tx,
                &t,
                ActionState::Pending,
                Some("interrupted by a worker restart, will retry".into()),
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Gives the dead letters of `plan_id` (optionally of one connection)
    /// a fresh attempt budget: they become `ready` with `attempts = 0`.
    /// Returns how many were re-queued.
    pub async fn requeue_dead_tasks(
        &self,
        plan_id: &PlanId,
        connection: Option<&ConnectionId>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let conn_clause = if connection.is_some() {
            " AND connection = $3"
        } else {
            ""
        };
        let mut tx = self.write.begin().await?;
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE task SET state = 'ready', attempts = 0, run_at_ms = $1, updated_ms = $1 \
             WHERE plan_id = $2 AND state = 'dead'{conn_clause} RETURNING {TASK_COLUMNS}"
        )))
        .bind(now_ms)
        .bind(plan_id.as_str().to_string());
        if let Some(c) = connection {
            q = q.bind(c.as_str().to_string());
        }
        let rows = q.fetch_all(&mut *tx).await?;
        for row in &rows {
            let t = decode_task(row)?;
            let detail = t
                .last_error
                .as_ref()
                .map(|e| format!("re-queued after: {e}"));
            mirror_action(&mut tx, &t, ActionState::Pending, detail, now_ms).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Cancels the tasks of `plan_id` that have not started (`ready`,
    /// `retry_wait`); their actions become `skipped`. Running tasks finish.
    pub async fn cancel_plan_tasks(
        &self,
        plan_id: &PlanId,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE task SET state = 'cancelled', updated_ms = $1 \
             WHERE plan_id = $2 AND state IN ('ready', 'retry_wait') RETURNING {TASK_COLUMNS}"
        )))
        .bind(now_ms)
        .bind(plan_id.as_str().to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let t = decode_task(row)?;
            mirror_action(
                &mut tx,
                &t,
                ActionState::Skipped,
                Some("cancelled before it ran".into()),
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// What is left to do for `connection` (and `plan`, if given).
    pub async fn queue_status(
        &self,
        connection: &ConnectionId,
        plan: Option<&PlanId>,
    ) -> Result<QueueStatus, StoreError> {
        let plan_clause = if plan.is_some() {
            " AND plan_id = $2"
        } else {
            ""
        };
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT state, COUNT(*) AS n, MIN(run_at_ms) AS next FROM task \
             WHERE connection = $1 AND state IN ('ready', 'retry_wait', 'running'){plan_clause} \
             GROUP BY state"
        )))
        .bind(connection.as_str().to_string());
        if let Some(p) = plan {
            q = q.bind(p.as_str().to_string());
        }
        let rows = q.fetch_all(&self.write).await?;
        let mut status = QueueStatus::default();
        for row in &rows {
            let state: String = row.try_get("state")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            let next: Option<i64> = row.try_get("next")?;
            match ExecState::parse(&state) {
                Some(ExecState::Ready) => status.ready = n,
                Some(ExecState::RetryWait) => status.retry_wait = n,
                Some(ExecState::Running) => {
                    status.running = n;
                    continue;
                }
                _ => continue,
            }
            status.next_run_at_ms = match (status.next_run_at_ms, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(c) = self.connection(connection).await?
            && c.status == QUARANTINED
        {
            status.quarantined = Some(c.status_reason.unwrap_or_default());
        }
        if let Some(p) = self.pause_of(connection).await? {
            status.paused = Some(format!(
                "paused by {}{}",
                p.actor,
                p.reason.map(|r| format!(": {r}")).unwrap_or_default()
            ));
        }
        Ok(status)
    }

    /// Tasks matching `filter`, by ID.
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        if let Some(p) = &filter.plan_id {
            binds.push(p.as_str().to_string());
            clauses.push(format!("plan_id = ${}", binds.len()));
        }
        if let Some(c) = &filter.connection {
            binds.push(c.as_str().to_string());
            clauses.push(format!("connection = ${}", binds.len()));
        }
        if let Some(s) = filter.state {
            binds.push(s.as_str().to_string());
            clauses.push(format!("state = ${}", binds.len()));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM task{filter_sql} ORDER BY id"
        )));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.read_all(self).await?;
        rows.iter().map(decode_task).collect()
    }

    /// How many tasks of `plan_id` are in each state.
    pub async fn task_counts(
        &self,
        plan_id: &PlanId,
    ) -> Result<BTreeMap<ExecState, u64>, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM task WHERE plan_id = $1 GROUP BY state")
                .bind(plan_id.as_str().to_string())
                .read_all(self)
                .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let s: String = row.try_get("state")?;
            let state = ExecState::parse(&s).ok_or_else(|| {
                StoreError::corrupt("task", plan_id.to_string(), format!("unknown state {s:?}"))
            })?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            out.insert(state, n);
        }
        Ok(out)
    }

    /// Quarantines a connection: sets its status to [`QUARANTINED`] with
    /// `reason`, which stops every worker from claiming its tasks. A
    /// connection the store has no record of gets one (app unknown, empty
    /// settings), so the quarantine still holds.
    pub async fn quarantine_connection(
        &self,
        id: &ConnectionId,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO connection (id, app, settings_json, status, status_reason) \
             VALUES ($1, '', '{{}}', '{QUARANTINED}', $2) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             status_reason = excluded.status_reason"
        )))
        .bind(id.as_str().to_string())
        .bind(reason.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Lifts a quarantine: the connection becomes `ok` and its waiting
    /// tasks are due at once (their attempts are kept). Returns false if
    /// the connection was not quarantined (nothing changed).
    pub async fn resume_connection(
        &self,
        id: &ConnectionId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE connection SET status = 'ok', status_reason = NULL \
             WHERE id = $1 AND status = '{QUARANTINED}'"
        )))
        .bind(id.as_str().to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Reads start counting failures afresh: a resumed connection gets
        // the full allowance before it is quarantined again.
        sqlx::query("UPDATE read_health SET failures_in_a_row = 0 WHERE connection = $1")
            .bind(id.as_str().to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE task SET run_at_ms = $1, updated_ms = $1 \
             WHERE connection = $2 AND state IN ('ready', 'retry_wait') AND run_at_ms > $1",
        )
        .bind(now_ms)
        .bind(id.as_str().to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// `$first, $first+1, ...` for an `IN` list of `n` values.
fn placeholders_from(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets the plan action behind `task` to `state`, unless it is `done`
/// (finished work is never reopened; see [`Store::set_action_state`]).
async fn mirror_action(
    conn: &mut AnyConnection,
    task: &Task,
    state: ActionState,
    detail: Option<String>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE plan_action SET state = $1, detail = $2, updated_ms = $3 \
         WHERE plan_id = $4 AND idx = $5 AND state <> 'done'",
    )
    .bind(state.as_str().to_string())
    .bind(detail)
    .bind(now_ms)
    .bind(task.plan_id.as_str().to_string())
    .bind(to_i64(task.action_idx))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn decode_task(row: &AnyRow) -> Result<Task, StoreError> {
    let id: i64 = row.try_get("id")?;
    let key = || id.to_string();
    let state: String = row.try_get("state")?;
    let state = ExecState::parse(&state)
        .ok_or_else(|| StoreError::corrupt("task", key(), format!("unknown state {state:?}")))?;
    let outcome = row
        .try_get::<Option<String>, _>("outcome")?
        .map(|o| {
            TaskOutcome::parse(&o)
                .ok_or_else(|| StoreError::corrupt("task", key(), format!("unknown outcome {o:?}")))
        })
        .transpose()?;
    let count = |col: &str| -> Result<u32, StoreError> {
        let v: i64 = row.try_get(col)?;
        u32::try_from(v).map_err(|_| StoreError::corrupt("task", key(), format!("{col} is {v}")))
    };
    let idx: i64 = row.try_get("action_idx")?;
    Ok(Task {
        id,
        plan_id: PlanId::new(row.try_get::<String, _>("plan_id")?),
        action_idx: usize::try_from(idx)
            .map_err(|_| StoreError::corrupt("task", key(), format!("action_idx is {idx}")))?,
        connection: ConnectionId::new(row.try_get::<String, _>("connection")?),
        operation: row.try_get("operation")?,
        idempotency_key: row.try_get("idempotency_key")?,
        state,
        attempts: count("attempts")?,
        max_attempts: count("max_attempts")?,
        run_at_ms: row.try_get("run_at_ms")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_ms: row.try_get("lease_until_ms")?,
        uncertain: get_bool(row, "uncertain")?,
        outcome,
        last_error: row.try_get("last_error")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states_round_trip_and_mirror_plan_states() {
        for s in ExecState::ALL {
            assert_eq!(ExecState::parse(s.as_str()), Some(s));
        }
        assert_eq!(mirror(ExecState::RetryWait, None), ActionState::Pending);
        assert_eq!(mirror(ExecState::Dead, None), ActionState::Failed);
        assert_eq!(
            mirror(ExecState::Done, Some(TaskOutcome::AlreadyApplied)),
            ActionState::Done
        );
        assert_eq!(
            mirror(ExecState::Done, Some(TaskOutcome::Skipped)),
            ActionState::Skipped
        );
    }

    #[test]
    fn in_list_placeholders_continue_numbering() {
        assert_eq!(placeholders_from(4, 3), "$4, $5, $6");
    }
}
