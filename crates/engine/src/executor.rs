//! Durable execution: plan actions run as tasks in the store, so a worker
//! can die at any instant and a restarted one finishes the job without
//! applying any effect twice or losing one.
//!
//! # How a task runs
//!
//! [`Roster::apply`](crate::Roster::apply) (through [`crate::execution`],
//! with an [`crate::Approved`] plan) enqueues a plan's pending actions as
//! tasks ([`Store::enqueue_plan_tasks`]; idempotent, one task per plan
//! action) and runs the executor until the plan's tasks are settled.
//! [`Roster::run_worker`](crate::Roster::run_worker) runs the same loop for
//! every plan until told to stop (`roster run`).
//!
//! Each connection gets its own loop, so a slow or quarantined app never
//! holds up another. One round of a loop:
//!
//! 1. **Reap** tasks whose lease expired (their worker died): they go back
//!    to `ready`, marked *uncertain* (see below).
//! 2. **Claim** up to one batch of due tasks, leased to this worker
//!    ([`Store::claim_tasks`]: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the
//!    single writer on SQLite). The batch size is the connector's documented
//!    `max_batch` (Expensify takes hundreds of employees per request),
//!    capped by [`ExecutorOptions::batch_size`].
//! 3. **Check before acting** where the app's state decides what to send:
//!    a deactivation without the account's current attributes, and every
//!    create, reactivate or deactivate that is uncertain, is preceded by a
//!    fresh read. An account already gone (or already present as desired)
//!    makes the task `done` without sending anything.
//! 4. **Call** the connector once for the batch, after taking a turn in
//!    the connection's rate budget (the connector's documented limits,
//!    counted in the store so every process shares them; see
//!    [`crate::budget`]), while a heartbeat extends the leases every
//!    [`ExecutorOptions::heartbeat`]. If a person paused the connection
//!    while the batch waited for its turn, nothing is sent: the tasks go
//!    back to the queue with their attempt refunded. The pause is looked
//!    up before each turn is asked for, never between a turn and the
//!    call: a turn is counted at the instant it is given, the app counts
//!    the request when it arrives, and every moment spent between the two
//!    (a database round trip, a connection made again after an outage)
//!    would let the other processes' windows count it early. For the same
//!    reason the heartbeat runs alongside the call instead of pausing it.
//! 5. **Settle** every task in one transaction with its plan action and
//!    audit event ([`Store::finish_tasks`]): `done`, `retry_wait` (the
//!    delay the one retry policy gives, [`ExecutorOptions::retry`]:
//!    exponential backoff with jitter, never sooner than the app's
//!    `Retry-After`; the wait is a `run_at` in the database, so it holds
//!    across restarts) or `dead` (a dead letter with the reason, after the
//!    policy's `max_attempts`, on a `Retry-After` over its ceiling, or on a
//!    refusal retrying cannot fix).
//!
//! # The one retry owner
//!
//! The executor is the only code that applies actions with retries: it
//! calls [`Connector::apply`] once per claimed batch and keeps every retry
//! in the task table, where a crash cannot lose it. What is retryable and
//! how long to wait is [`roster_connectors::retry::RetryPolicy`], the same
//! policy the reads it triggers use (`driver::read_all` for checks);
//! pacing is the connection's rate budget (`driver::wait_turn`), the
//! store-backed one in [`crate::budget`]. The driver's `apply_once` (one
//! paced pass, no retries) is for setting up simulators and tests, never
//! for applying a plan.
//!
//! # Why no effect is applied twice or lost
//!
//! * **Nothing is lost.** A task leaves the queue only through
//!   [`Store::finish_tasks`], which runs *after* the app answered. A worker
//!   that dies before that leaves the task `running` with a lease that
//!   stops being renewed; the reaper returns it to `ready` and another
//!   attempt runs. The database transactions are atomic, so a kill during
//!   a claim or a finish leaves either the old state or the new one.
//! * **Nothing is applied twice.** The one window where the app may have
//!   applied a change that the store does not know about is between the
//!   app processing the call and the finish committing. A task interrupted
//!   there comes back *uncertain*, and its re-execution is harmless:
//!   - connector writes are upserts of the desired state (the Expensify
//!     Employee Updater is one; SCIM `PUT`/`PATCH` set values): re-sending
//!     a record the app already holds changes nothing, and the app records
//!     no new effect. The Expensify simulator's effect log shows this: it
//!     logs a change only when state actually changed;
//!   - operations that are not upserts are checked first: an uncertain
//!     create whose account now exists with the desired attributes, or a
//!     deactivation whose account is gone or inactive, is marked done
//!     ([`TaskOutcome::AlreadyApplied`]) and not sent again;
//!   - a finished task is never run again: finishing is fenced on the
//!     lease owner *and* the attempt number, so a worker that lost its lease
//!     cannot overwrite the newer attempt, and `done` plan actions never
//!     reopen.
//! * **Ordering.** Two tasks for the same account never share a batch; the
//!   later one is released (its attempt refunded) and claimed in a later
//!   round, after the first has settled.
//!
//! Limits of the argument: it needs each connector write to be an upsert
//! of desired state or visible to a read. A connector whose writes are
//! neither would need the app's own idempotency support; every task carries
//! a stable `idempotency_key` for that. And a re-sent upsert restores the
//! plan's desired state even if someone changed the account in the app
//! between the lost attempt and the retry, as any late apply would; the
//! next read and plan show it.
//!
//! The crash test (`tests/crash.rs`) checks all of this against the
//! simulator's effect log: thousands of actions, a worker killed with
//! SIGKILL at random points and restarted, every intended effect present
//! exactly once and nothing else.
//!
//! # Quarantine
//!
//! A connection is quarantined (status [`roster_store::QUARANTINED`], with
//! the reason) when [`ExecutorOptions::quarantine_after_auth_failures`]
//! batches in a row are refused for credentials or configuration
//! (`CONN-0001`, `CONN-0006`), or when in at least
//! [`ExecutorOptions::failure_ratio`] of the last
//! [`ExecutorOptions::failure_window`] batches most actions ended as dead
//! letters (refused by the app, or out of attempts). Failures that are
//! still being retried do not count: backoff already keeps an outage or a
//! rate limit from hammering the app. No worker claims its tasks
//! until an operator lifts it with [`Store::resume_connection`] (the CLI's
//! `roster connections resume NAME`); waiting tasks then run at once.
//! Credential refusals do not use up attempts, so nothing is dead-lettered
//! while the credentials are being fixed.
//!
//! The failure window lives in the worker's memory; a restart starts it
//! afresh, which only delays a quarantine.
//!
//! # Pause (the kill switch)
//!
//! A pause is a person's decision, not roster's: `roster pause [NAME]`
//! ([`Engine::pause_writes`]) makes every worker in every process stop
//! claiming the connection's tasks (all connections without a name) until
//! `roster resume`. Batches already sent finish and are recorded; a batch
//! claimed but still waiting for its rate turn is released unsent. While
//! paused, `apply` returns with the work queued and says who paused it.
//!
//! [`Store::claim_tasks`]: roster_store::Store::claim_tasks
//! [`Store::enqueue_plan_tasks`]: roster_store::Store::enqueue_plan_tasks
//! [`Store::finish_tasks`]: roster_store::Store::finish_tasks
//! [`Store::resume_connection`]: roster_store::Store::resume_connection

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster_connectors::driver::{self, Progress};
use roster_connectors::retry::{Next, Verdict};
use roster_connectors::{ActionResult, ApplyRequest, Connector, ConnectorError, RateBudget, Turn};
use roster_core::{Account, Action, ConnectionId, Observed, Operation};
use roster_store::AuditKind;
use roster_store::tasks::idempotency_key;
use roster_store::{
    AuditEvent, ExecState, PauseRecord, PlanId, StoredPlan, Task, TaskFilter, TaskFinish,
    TaskOutcome, TaskResult,
};
use serde_json::json;
use tokio::sync::watch;

use crate::engine::{Engine, EngineError, ms};

pub use crate::options::ExecutorOptions;

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a loop drains its queue and returns, or runs until stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Until every task in scope is settled (or only far-off retries, or a
    /// quarantine, remain).
    UntilSettled,
    /// Until the stop signal.
    Forever,
}

type ProgressFn<'p> = dyn FnMut(&ConnectionId, &Progress<'_>) + Send + 'p;

/// One run of the executor over some connections.
pub(crate) struct Executor<'e, 'p> {
    engine: &'e Engine,
    opts: ExecutorOptions,
    /// Only this plan's tasks, or every plan's.
    scope: Option<PlanId>,
    plans: Mutex<HashMap<PlanId, Arc<StoredPlan>>>,
    progress: Mutex<&'p mut ProgressFn<'p>>,
}

/// Per-connection memory of recent failures.
#[derive(Default)]
struct Health {
    auth_failures_in_a_row: u32,
    /// true = the action failed.
    window: VecDeque<bool>,
}

impl Health {
    fn record(&mut self, failed: bool, cap: usize) {
        self.window.push_back(failed);
        while self.window.len() > cap {
            self.window.pop_front();
        }
    }
}

/// One claimed task with its action.
struct Work {
    task: Task,
    action: Action,
}

impl<'e, 'p> Executor<'e, 'p> {
    pub(crate) fn new(
        engine: &'e Engine,
        scope: Option<PlanId>,
        progress: &'p mut ProgressFn<'p>,
    ) -> Self {
        Executor {
            opts: engine.executor.clone(),
            engine,
            scope,
            plans: Mutex::new(HashMap::new()),
            progress: Mutex::new(progress),
        }
    }

    fn now_ms(&self) -> i64 {
        ms(self.engine.now())
    }

    fn report(&self, connection: &ConnectionId, p: &Progress<'_>) {
        let mut sink = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        (*sink)(connection, p);
    }

    /// Runs one loop per connection (concurrently) until `mode` says stop.
    pub(crate) async fn run(
        &self,
        connections: Vec<ConnectionId>,
        mode: Mode,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let loops = connections
            .iter()
            .map(|c| self.connection_loop(c, mode, stop.clone()));
        futures_util::future::try_join_all(loops).await?;
        Ok(())
    }

    async fn connection_loop(
        &self,
        connection: &ConnectionId,
        mode: Mode,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let Some((connector, limiter)) = self.engine.connection_parts(connection) else {
            return Ok(());
        };
        let mut health = Health::default();
        let mut last_reap: Option<Instant> = None;
        // Real time, not the engine's clock: a clock that stands still (a
        // test's) must not keep `apply` waiting forever for a retry.
        let mut idle_since: Option<Instant> = None;
        let idle_cap = self.opts.apply_max_wait + self.opts.lease;
        let reap_every = (self.opts.lease / 4).max(Duration::from_millis(50));
        let total = self
            .engine
            .store
            .tasks(&TaskFilter {
                plan_id: self.scope.clone(),
                connection: Some(connection.clone()),
                state: None,
            })
            .await?;
        let total_n = total.len();
        let mut done_n = total.iter().filter(|t| t.state.is_final()).count();
        drop(total);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let now = self.now_ms();
            if last_reap.is_none_or(|t| t.elapsed() >= reap_every) {
                self.reap(now).await?;
                last_reap = Some(Instant::now());
            }
            let limit = self.batch_limit(connector);
            let claimed = self
                .engine
                .store
                .claim_tasks(
                    connection,
                    self.scope.as_ref(),
                    &self.opts.worker_id,
                    limit,
                    self.opts.lease_ms(),
                    now,
                )
                .await?;
            if claimed.is_empty() {
                let status = self
                    .engine
                    .store
                    .queue_status(connection, self.scope.as_ref())
                    .await?;
                let mut nap = self.opts.idle_poll;
                if let Some(next) = status.next_run_at_ms
                    && status.quarantined.is_none()
                    && status.paused.is_none()
                {
                    let until = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
                    nap = nap.min(until.max(Duration::from_millis(10)));
                }
                if mode == Mode::UntilSettled {
                    let far = now.saturating_add(dur_ms(self.opts.apply_max_wait));
                    let only_far_retries =
                        status.running == 0 && status.next_run_at_ms.is_none_or(|t| t > far);
                    let idle_too_long =
                        idle_since.get_or_insert_with(Instant::now).elapsed() > idle_cap;
                    if status.quarantined.is_some()
                        || status.paused.is_some()
                        || status.open() == 0
                        || only_far_retries
                        || idle_too_long
                    {
                        return Ok(());
                    }
                    if status.running > 0 {
                        // Someone else's (or a dead worker's) lease: look
                        // again for expiry soon.
                        nap = nap.min(reap_every);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(nap) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            idle_since = None;
            let settled = self
                .execute(connection, connector, limiter, claimed, &mut health)
                .await?;
            done_n += settled;
            if mode == Mode::UntilSettled {
                self.report(
                    connection,
                    &Progress::Applied {
                        done: done_n.min(total_n),
                        total: total_n,
                    },
                );
            }
        }
    }

    /// Tasks per claim: the smallest `max_batch` among the connector's
    /// write operations, capped by the options.
    fn batch_limit(&self, connector: &dyn Connector) -> usize {
        let caps = connector.capabilities();
        let max = [
            Operation::Create,
            Operation::Update,
            Operation::Deactivate,
            Operation::Reactivate,
        ]
        .into_iter()
        .map(|op| caps.support(op))
        .filter(|s| s.supported)
        .map(|s| s.max_batch)
        .min()
        .unwrap_or(1);
        let capped = self.opts.batch_size.map_or(max, |b| b.min(max)).max(1);
        usize::try_from(capped).unwrap_or(1)
    }

    async fn reap(&self, now: i64) -> Result<(), EngineError> {
        let reaped = self.engine.store.reap_expired_leases(now).await?;
        if reaped.is_empty() {
            return Ok(());
        }
        let owners: BTreeSet<String> = reaped
            .iter()
            .filter_map(|r| r.previous_owner.clone())
            .collect();
        let dead = reaped.iter().filter(|r| r.now == ExecState::Dead).count();
        tracing::warn!(
            tasks = reaped.len(),
            dead,
            ?owners,
            "re-queued tasks whose worker stopped"
        );
        self.engine
            .audit(
                AuditKind::TaskLeaseExpired,
                &self.opts.worker_id,
                json!({
                    "tasks": reaped.iter().map(|r| r.id).collect::<Vec<_>>(),
                    "previous_owners": owners,
                    "dead_lettered": dead,
                }),
            )
            .await?;
        Ok(())
    }

    async fn plan(&self, id: &PlanId) -> Result<Option<Arc<StoredPlan>>, EngineError> {
        if let Some(p) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(Some(p.clone()));
        }
        let Some(stored) = self.engine.store.plan(id).await? else {
            return Ok(None);
        };
        let stored = Arc::new(stored);
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), stored.clone());
        Ok(Some(stored))
    }

    /// Runs one claimed batch to the end and settles every task. Returns
    /// how many tasks reached a final state.
    async fn execute(
        &self,
        connection: &ConnectionId,
        connector: &dyn Connector,
        limiter: &dyn RateBudget,
        claimed: Vec<Task>,
        health: &mut Health,
    ) -> Result<usize, EngineError> {
        let caps = connector.capabilities();
        let mut settled: Vec<(Task, Option<Action>, TaskResult)> = Vec::new();
        let mut work: Vec<Work> = Vec::new();
        let mut seen_accounts: BTreeSet<String> = BTreeSet::new();
        let mut clashed = false;
        for task in claimed {
            let Some(stored) = self.plan(&task.plan_id).await? else {
                settled.push((task, None, dead("the task's plan no longer exists")));
                continue;
            };
            let Some(action) = stored.plan.actions.get(task.action_idx).cloned() else {
                settled.push((task, None, dead("the task points past the end of its plan")));
                continue;
            };
            if idempotency_key(&task.plan_id, &stored.hash, task.action_idx, &action)
                != task.idempotency_key
            {
                settled.push((
                    task,
                    Some(action),
                    dead("the task does not match its plan action (idempotency key differs)"),
                ));
                continue;
            }
            if !caps.supports(action.operation) {
                let why = format!(
                    "{} cannot {} accounts through its API",
                    action.connection, action.operation
                );
                settled.push((task, Some(action), dead(&why)));
                continue;
            }
            // Two tasks for one account never share a call: the later one
            // waits for a later round, after the first has settled. So do
            // all tasks after it, to keep the queue's order.
            let keys = account_keys(&action);
            if clashed || keys.iter().any(|k| seen_accounts.contains(k)) {
                clashed = true;
                let run_at_ms = self.now_ms();
                settled.push((
                    task,
                    Some(action),
                    TaskResult::Retry {
                        run_at_ms,
                        error: "deferred: an earlier task for the same account ran first".into(),
                        uncertain: false,
                        refund: true,
                    },
                ));
                continue;
            }
            seen_accounts.extend(keys);
            work.push(Work { task, action });
        }

        // Check before acting.
        let needs_read = |w: &Work| {
            let op = w.action.operation;
            (op == Operation::Deactivate
                && w.action.attributes.is_empty()
                && caps.deactivate_needs_current_attributes)
                // A first attempt runs on the plan's read (checked fresh by
                // `apply`); a re-send comes later, so it looks again.
                || (op == Operation::Create && caps.upserts_by_address && w.task.attempts > 1)
                || (w.task.uncertain
                    && matches!(
                        op,
                        Operation::Create | Operation::Reactivate | Operation::Deactivate
                    ))
        };
        if caps.supports(Operation::Read) && work.iter().any(needs_read) {
            let ids: Vec<i64> = work.iter().map(|w| w.task.id).collect();
            let mut report = |p: &Progress<'_>| self.report(connection, p);
            let read = self
                .with_heartbeat(
                    &ids,
                    driver::read_all_with_progress(
                        connector,
                        limiter,
                        &self.opts.retry,
                        &self.engine.driver,
                        &mut report,
                    ),
                )
                .await;
            match read {
                Ok(observed) => {
                    let mut rest = Vec::with_capacity(work.len());
                    for mut w in work {
                        if needs_read(&w)
                            && let Some(result) = check_current(&mut w, &observed)
                        {
                            settled.push((w.task, Some(w.action), result));
                        } else {
                            rest.push(w);
                        }
                    }
                    work = rest;
                }
                Err(e) => {
                    // Without the current state the checked tasks can't be
                    // sent safely; the rest can.
                    let (checked, rest): (Vec<Work>, Vec<Work>) =
                        work.into_iter().partition(|w| needs_read(w));
                    for w in checked {
                        let r = self.failure_result(&w.task, &e, limiter, health).await;
                        settled.push((w.task, Some(w.action), r));
                    }
                    work = rest;
                }
            }
        }

        if !work.is_empty() {
            let ids: Vec<i64> = work.iter().map(|w| w.task.id).collect();
            let call_start = settled.len();
            let req = ApplyRequest::new(work.iter().map(|w| w.action.clone()).collect(), false);
            let sent = self
                .with_heartbeat(&ids, async {
                    // The kill switch may be pulled while we wait.
                    if let Some(pause) = self.turn_unless_paused(connection, limiter).await? {
                        return Ok::<_, EngineError>(Err(pause));
                    }
                    // At once: the turn was counted as of now.
                    Ok(Ok(connector.apply(req).await))
                })
                .await?;
            let answer = match sent {
                Ok(answer) => answer,
                Err(pause) => {
                    let why = format!(
                        "not sent: {} paused by {}",
                        pause.scope_label(),
                        pause.actor
                    );
                    let now = self.now_ms();
                    for w in work {
                        settled.push((
                            w.task,
                            Some(w.action),
                            TaskResult::Retry {
                                run_at_ms: now,
                                error: why.clone(),
                                uncertain: false,
                                refund: true,
                            },
                        ));
                    }
                    return self.settle(settled).await;
                }
            };
            match answer {
                Ok(resp) if resp.results.len() != work.len() => {
                    let why = format!(
                        "the connector answered {} results for {} actions",
                        resp.results.len(),
                        work.len()
                    );
                    for w in work {
                        settled.push((w.task, Some(w.action), dead(&why)));
                    }
                }
                Ok(resp) => {
                    health.auth_failures_in_a_row = 0;
                    driver::note_rate_limit(limiter, resp.rate_limit).await;
                    for (w, r) in work.into_iter().zip(resp.results) {
                        let result = match r {
                            ActionResult::Applied => TaskResult::Done {
                                outcome: TaskOutcome::Applied,
                                detail: None,
                            },
                            ActionResult::Skipped { reason } => TaskResult::Done {
                                outcome: TaskOutcome::Skipped,
                                detail: Some(reason),
                            },
                            ActionResult::Failed {
                                reason,
                                retryable: true,
                            } => self.retry_or_dead(&w.task, reason, None, false),
                            ActionResult::Failed {
                                reason,
                                retryable: false,
                            } => TaskResult::Dead { reason },
                        };
                        settled.push((w.task, Some(w.action), result));
                    }
                }
                Err(e) => {
                    if Verdict::of(&e) == Verdict::Refused {
                        health.auth_failures_in_a_row += 1;
                    }
                    let now = self.now_ms();
                    let mut retry: Option<(u32, i64)> = None;
                    for w in work {
                        let r = self.failure_result(&w.task, &e, limiter, health).await;
                        if let TaskResult::Retry { run_at_ms, .. } = &r {
                            retry.get_or_insert((w.task.attempts, *run_at_ms));
                        }
                        settled.push((w.task, Some(w.action), r));
                    }
                    if let Some((attempt, run_at_ms)) = retry {
                        let delay =
                            Duration::from_millis(u64::try_from(run_at_ms - now).unwrap_or(0));
                        self.report(
                            connection,
                            &Progress::Retrying {
                                attempt,
                                delay,
                                error: &e,
                            },
                        );
                    }
                }
            }

            // The batch counts against the connection when most of its
            // actions ended as dead letters. Retries pending (outages, rate
            // limits, refused credentials) don't: backoff and the
            // credentials rule handle those.
            let results = settled.get(call_start..).unwrap_or_default();
            let dead_n = results
                .iter()
                .filter(|(_, _, r)| matches!(r, TaskResult::Dead { .. }))
                .count();
            let done_n = results
                .iter()
                .filter(|(_, _, r)| matches!(r, TaskResult::Done { .. }))
                .count();
            if !results.is_empty() && dead_n * 2 >= results.len() {
                health.record(true, self.opts.failure_window);
            } else if done_n > 0 {
                health.record(false, self.opts.failure_window);
            }
        }

        let final_n = self.settle(settled).await?;
        if let Some(reason) = self.quarantine_reason(health) {
            tracing::error!(%connection, %reason, "quarantining connection");
            self.engine
                .store
                .quarantine_connection(connection, &reason)
                .await?;
            self.engine
                .audit(
                    AuditKind::ConnectionQuarantined,
                    connection.as_str(),
                    json!({ "reason": reason, "worker": self.opts.worker_id }),
                )
                .await?;
            *health = Health::default();
        }
        Ok(final_n)
    }

    /// What a whole-call failure means for one task.
    async fn failure_result(
        &self,
        task: &Task,
        e: &ConnectorError,
        limiter: &dyn RateBudget,
        health: &mut Health,
    ) -> TaskResult {
        match Verdict::of(e) {
            // Nothing was judged: the task waits, without spending an
            // attempt, while a person fixes the connection.
            Verdict::Refused => TaskResult::Retry {
                run_at_ms: self.now_ms().saturating_add(dur_ms(
                    self.opts.retry.backoff(health.auth_failures_in_a_row),
                )),
                error: e.to_string(),
                uncertain: false,
                refund: true,
            },
            Verdict::Retryable {
                retry_after,
                maybe_applied,
            } => {
                if let Some(hold) = self.opts.retry.hold(retry_after) {
                    // Everyone sharing the budget waits, in every process.
                    limiter.hold_for(hold).await;
                }
                self.retry_or_dead(task, e.to_string(), retry_after, maybe_applied)
            }
            Verdict::Fatal => TaskResult::Dead {
                reason: e.to_string(),
            },
        }
    }

    /// A retryable failure: due again when the policy says, or a dead
    /// letter when it gives up. The bound is the one the task was queued
    /// with.
    fn retry_or_dead(
        &self,
        task: &Task,
        error: String,
        retry_after: Option<Duration>,
        maybe_applied: bool,
    ) -> TaskResult {
        match self
            .opts
            .retry
            .next(task.attempts, task.max_attempts, retry_after)
        {
            Next::Retry { delay, .. } => TaskResult::Retry {
                run_at_ms: self.now_ms().saturating_add(dur_ms(delay)),
                error,
                uncertain: maybe_applied,
                refund: false,
            },
            Next::GiveUp(why) => TaskResult::Dead {
                reason: why.describe(&error),
            },
        }
    }

    fn quarantine_reason(&self, health: &Health) -> Option<String> {
        let o = &self.opts;
        if o.quarantine_after_auth_failures > 0
            && health.auth_failures_in_a_row >= o.quarantine_after_auth_failures
        {
            return Some(format!(
                "{} batches in a row were refused for credentials or configuration; fix the \
                 connection's settings, then resume it",
                health.auth_failures_in_a_row
            ));
        }
        let n = health.window.len();
        let failed = health.window.iter().filter(|f| **f).count();
        if n >= o.failure_min_sample.max(1) && (failed as f64) >= o.failure_ratio * n as f64 {
            return Some(format!(
                "most actions failed in {failed} of the last {n} batches; check the failed \
                 actions (dead letters), then resume the connection"
            ));
        }
        None
    }

    /// Writes the results (with plan action states and audit events) in
    /// one transaction. Returns how many tasks reached a final state.
    async fn settle(
        &self,
        settled: Vec<(Task, Option<Action>, TaskResult)>,
    ) -> Result<usize, EngineError> {
        if settled.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms();
        let mut finishes = Vec::with_capacity(settled.len());
        let mut finals = Vec::with_capacity(settled.len());
        let mut outcomes = Vec::with_capacity(settled.len());
        for (task, action, result) in settled {
            let audit = self.audit_event(&task, action.as_ref(), &result, now);
            finals.push(!matches!(result, TaskResult::Retry { .. }));
            outcomes.push(match &result {
                TaskResult::Retry { .. } => None,
                TaskResult::Done { outcome, .. } => Some((
                    task.connection.clone(),
                    action.as_ref().map(|a| a.operation),
                    if *outcome == TaskOutcome::Skipped {
                        "skipped"
                    } else {
                        "done"
                    },
                )),
                TaskResult::Dead { .. } => Some((
                    task.connection.clone(),
                    action.as_ref().map(|a| a.operation),
                    "failed",
                )),
            });
            finishes.push(TaskFinish {
                id: task.id,
                attempt: task.attempts,
                result,
                audit,
            });
        }
        let ids: Vec<i64> = finishes.iter().map(|f| f.id).collect();
        let accepted = self
            .engine
            .store
            .finish_tasks(&self.opts.worker_id, finishes, now)
            .await?;
        let mut final_n = 0;
        for (ok, outcome) in accepted.iter().zip(&outcomes) {
            if let (true, Some((connection, op, outcome))) = (ok, outcome) {
                let path = self.engine.path_label(connection, *op);
                crate::metrics::action_finished(path, outcome);
            }
        }
        for ((id, ok), is_final) in ids.iter().zip(&accepted).zip(finals) {
            if !ok {
                // Our lease expired and the task was taken over: the newer
                // attempt's result stands. Our call was an idempotent
                // re-send at worst.
                tracing::warn!(task = id, "result discarded: the lease was lost");
            } else if is_final {
                final_n += 1;
            }
        }
        Ok(final_n)
    }

    fn audit_event(
        &self,
        task: &Task,
        action: Option<&Action>,
        result: &TaskResult,
        now: i64,
    ) -> Option<AuditEvent> {
        let (kind, outcome, detail) = match result {
            TaskResult::Retry { .. } => return None,
            TaskResult::Done { outcome, detail } => (
                match outcome {
                    TaskOutcome::Skipped => AuditKind::ActionSkipped,
                    _ => AuditKind::ActionApplied,
                },
                Some(outcome.as_str()),
                detail.clone(),
            ),
            TaskResult::Dead { reason } => (AuditKind::ActionFailed, None, Some(reason.clone())),
        };
        let subject = match action {
            Some(a) => format!("{}:{}", task.connection, a.email.normalized()),
            None => format!("{}:task-{}", task.connection, task.id),
        };
        Some(AuditEvent {
            at_ms: now,
            actor: self.engine.actor.clone(),
            kind: kind.as_str().to_string(),
            subject,
            data: json!({
                "plan": task.plan_id.as_str(),
                "action": task.action_idx,
                "operation": task.operation,
                "reason": action.map(|a| a.reason.clone()),
                "detail": detail,
                "outcome": outcome,
                "deprovision": task.operation == Operation::Deactivate.as_str(),
                "task": task.id,
                "attempt": task.attempts,
                "idempotency_key": task.idempotency_key,
                "worker": self.opts.worker_id,
            }),
        })
    }

    /// Awaits `fut`, extending the leases on `ids` every heartbeat.
    async fn with_heartbeat<F: Future>(&self, ids: &[i64], fut: F) -> F::Output {
        // Both polled together: a heartbeat waiting for the database must
        // not hold up the work (a request given its turn goes at once; see
        // the module docs).
        let beat = async {
            loop {
                tokio::time::sleep(self.opts.heartbeat).await;
                let now = self.now_ms();
                let until = now.saturating_add(self.opts.lease_ms());
                match self
                    .engine
                    .store
                    .heartbeat_tasks(&self.opts.worker_id, ids, until, now)
                    .await
                {
                    Ok(held) if held < ids.len() as u64 => tracing::warn!(
                        held,
                        claimed = ids.len(),
                        "some leases were lost while working; their results will be discarded"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        };
        tokio::select! {
            out = fut => out,
            () = beat => unreachable!("the heartbeat loops until the work is done"),
        }
    }

    /// Waits for a turn in `limiter` unless `connection` is paused (then
    /// the pause). The pause is looked up before the first turn is asked
    /// for and again after every wait, so the call follows its turn with
    /// nothing in between. While the database is away the lookup waits as
    /// the store-backed budget does ([`crate::budget`]).
    async fn turn_unless_paused(
        &self,
        connection: &ConnectionId,
        limiter: &dyn RateBudget,
    ) -> Result<Option<PauseRecord>, EngineError> {
        let mut first = true;
        loop {
            match self.engine.store.pause_of(connection).await {
                Ok(Some(pause)) => return Ok(Some(pause)),
                Ok(None) => {}
                // A failure before any wait ends the batch, as any store
                // failure does; after a wait the budget has been waiting
                // for the database too, and so does this.
                Err(e) if first => return Err(e.into()),
                Err(e) => {
                    tracing::debug!(error = %e, "the kill switch cannot be read yet");
                    tokio::time::sleep(crate::budget::UNAVAILABLE_RETRY).await;
                    continue;
                }
            }
            first = false;
            match limiter.try_turn().await {
                Turn::Go => return Ok(None),
                Turn::Wait(delay) => {
                    if delay > driver::REPORT_WAITS_OVER {
                        self.report(connection, &Progress::Waiting { delay });
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn dead(reason: &str) -> TaskResult {
    TaskResult::Dead {
        reason: reason.to_string(),
    }
}

/// The lower-cased names an action's account goes by.
fn account_keys(a: &Action) -> Vec<String> {
    let mut keys = vec![a.email.normalized()];
    if let Some(k) = &a.account {
        keys.push(k.as_str().to_lowercase());
    }
    keys
}

fn find<'o>(observed: &'o Observed, a: &Action) -> Option<&'o Account> {
    observed.accounts.iter().find(|acc| {
        a.account.as_ref() == Some(&acc.key)
            || acc
                .email
                .as_ref()
                .is_some_and(|e| e.normalized() == a.email.normalized())
    })
}

/// Decides a task from the app's current state, or fills in what the call
/// needs. `Some` settles the task without a call.
fn check_current(w: &mut Work, observed: &Observed) -> Option<TaskResult> {
    let found = find(observed, &w.action);
    // Someone (most likely an earlier attempt of this very task) already
    // made the change, versus nothing to do from the start.
    let earlier_attempt = w.task.uncertain || w.task.attempts > 1;
    match w.action.operation {
        Operation::Deactivate => match found {
            Some(acc) if acc.active => {
                if w.action.attributes.is_empty() {
                    w.action.attributes = acc.attributes.clone();
                }
                None
            }
            Some(_) => Some(already(
                earlier_attempt,
                format!(
                    "{} is already inactive in {}",
                    w.action.email, w.action.connection
                ),
            )),
            None if observed.complete => Some(already(
                earlier_attempt,
                format!(
                    "{} has no account in {}; nothing to deactivate",
                    w.action.email, w.action.connection
                ),
            )),
            // An incomplete read proves nothing; the connector decides
            // what it can do without the current state.
            None => None,
        },
        // An app that upserts by address would overwrite whatever account
        // holds it: a create lands only on a free address (or on the
        // account an earlier attempt of this very create made).
        Operation::Create
            if let Some(acc) = found
                && acc.employee_id.as_ref() != w.action.employee_id.as_ref() =>
        {
            Some(TaskResult::Dead {
                reason: format!(
                    "{} already holds {} (employee ID {}); creating it for {} would take that account over, so nothing was sent",
                    w.action.connection,
                    w.action.email,
                    acc.employee_id
                        .as_ref()
                        .map(|e| e.as_str())
                        .unwrap_or("none"),
                    w.action
                        .employee_id
                        .as_ref()
                        .map(|e| e.as_str())
                        .unwrap_or("no one")
                ),
            })
        }
        Operation::Create | Operation::Reactivate if w.task.uncertain => match found {
            Some(acc)
                if acc.active
                    && w.action
                        .attributes
                        .iter()
                        .all(|(k, v)| acc.attributes.get(k).is_none_or(|have| have == v)) =>
            {
                Some(TaskResult::Done {
                    outcome: TaskOutcome::AlreadyApplied,
                    detail: Some(format!(
                        "{} already exists as desired in {} (an earlier attempt reached the app)",
                        w.action.email, w.action.connection
                    )),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

fn already(earlier_attempt: bool, detail: String) -> TaskResult {
    TaskResult::Done {
        outcome: if earlier_attempt {
            TaskOutcome::AlreadyApplied
        } else {
            TaskOutcome::Skipped
        },
        detail: Some(detail),
    }
}

impl Engine {
    /// The catalog path roster takes for `op` on `connection`, as a metric
    /// label: `connector` when the deployment has no catalog record for
    /// the app (a connector registered by hand, as in tests).
    pub(crate) fn path_label(
        &self,
        connection: &ConnectionId,
        op: Option<roster_core::Operation>,
    ) -> &'static str {
        let (Some(catalog), Some(op)) = (self.catalog.as_ref(), op) else {
            return "connector";
        };
        let binding = self.bindings.get(connection);
        let Some(app) = catalog.get(
            binding
                .map(|b| b.app.as_str())
                .unwrap_or(connection.as_str()),
        ) else {
            return "connector";
        };
        let settings = binding.map(|b| b.settings.clone()).unwrap_or_default();
        roster_catalog::select_path(app, &settings, op)
            .path
            .as_str()
    }
}
