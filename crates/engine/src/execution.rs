//! Carrying out an approved plan: enqueue its actions as durable tasks
//! (after routing what no connector can do to people), then run them
//! through the executor ([`crate::executor`]).
//!
//! Every function here takes an [`Approved`] plan, which only the one check
//! in [`crate::approval`] makes: there is no way to queue or run a plan's
//! actions without it. Actions it holds for approval get no task and no
//! checklist; the rest of the plan runs.

use std::collections::BTreeMap;

use roster_connectors::driver::Progress;
use roster_core::ConnectionId;
use roster_store::{ActionState, AuditKind, HumanTask, PlanId};
use serde_json::json;
use tokio::sync::watch;

use crate::approval::Approved;
use crate::engine::{Engine, EngineError, ms};
use crate::executor::{Executor, Mode};

/// How applying a plan went, per connection.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub applied: BTreeMap<ConnectionId, usize>,
    pub failed: Vec<(ConnectionId, String, String)>,
    pub skipped: usize,
    pub manual: usize,
    /// Actions still queued when `apply` returned: retries due later than
    /// [`crate::ExecutorOptions::apply_max_wait`], or held by a quarantine.
    /// The next `apply` (or a running worker) carries them on.
    pub pending: usize,
    /// Actions waiting for a person's approval: not run, no task. Approve
    /// them and `apply` again (see [`crate::approval`]).
    pub held: usize,
    /// Connections quarantined, with the reason.
    pub quarantined: Vec<(ConnectionId, String)>,
    /// Connections a person paused (`roster pause`), with who and why:
    /// their actions stay queued until `roster resume`.
    pub paused: Vec<(ConnectionId, String)>,
}

impl ApplyReport {
    pub fn applied_total(&self) -> usize {
        self.applied.values().sum()
    }
}

/// What handing an approved plan to the queue did.
#[derive(Clone, Debug, Default)]
pub struct Enqueued {
    /// Human tasks for what no connector can do (new or already open for
    /// the same intent).
    pub tasks: Vec<HumanTask>,
    /// Actions queued for a worker (new tasks).
    pub queued: usize,
    /// Actions that had a task already (a resumed plan).
    pub existing: usize,
    /// Actions with no connector at all: marked manual.
    pub manual: usize,
    /// Actions held for approval: not queued.
    pub held: usize,
    /// Leavers' IdP sessions ended before their accounts were queued for
    /// closing (see [`crate::revoke`]); empty when no source may revoke.
    pub revocations: Vec<crate::revoke::Revocation>,
}

impl Engine {
    /// Records that a plan is being carried out: the connections it covers
    /// leave their first plan (see [`roster_core::guard`]).
    pub(crate) async fn mark_applied(&self, plan_id: &PlanId) -> Result<(), EngineError> {
        let Some(stored) = self.store.plan(plan_id).await? else {
            return Err(EngineError::PlanNotFound(plan_id.to_string()));
        };
        // A connection with an action still waiting for approval stays in
        // its first plan: otherwise applying a first plan's grants would
        // let its held removals through unguarded next time.
        let waiting = self.approval_status(plan_id).await?.waiting;
        let connections: Vec<ConnectionId> = stored
            .plan
            .classification
            .keys()
            .filter(|c| {
                !waiting.keys().any(|i| {
                    stored
                        .plan
                        .actions
                        .get(*i)
                        .is_some_and(|a| &a.connection == *c)
                })
            })
            .cloned()
            .collect();
        self.store
            .mark_connections_applied(&connections, plan_id.as_str(), ms(self.now()))
            .await?;
        Ok(())
    }

    /// Applies an approved plan durably, resuming wherever an earlier apply
    /// (or a crashed process) left it.
    ///
    /// Its pending and failed actions are enqueued as tasks (once: an
    /// action that already has a task keeps it, and dead letters of this
    /// plan get a fresh attempt budget, since asking again is what an
    /// operator re-running `apply` means). Actions for a connection with no
    /// connector become manual. The executor then runs this plan's tasks
    /// until they are settled, or only retries due later than
    /// [`ExecutorOptions::apply_max_wait`] or a quarantined connection
    /// remain. The report covers the whole plan, not only this call.
    pub(crate) async fn apply(
        &self,
        approved: Approved,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<(ApplyReport, Enqueued), EngineError> {
        let plan_id = approved.plan_id();
        let actor = approved.by().actor();
        self.audit_as(
            &actor,
            AuditKind::PlanApplyStarted,
            plan_id.as_str(),
            json!({ "hash": approved.hash(), "held": approved.held().len() }),
        )
        .await?;
        let enqueued = self.enqueue(&approved).await?;
        tracing::info!(
            plan = %plan_id,
            new = enqueued.queued,
            existing = enqueued.existing,
            manual = enqueued.manual,
            tasks = enqueued.tasks.len(),
            "plan tasks enqueued"
        );

        let connections = self.connector_ids();
        let (_stop_tx, stop_rx) = watch::channel(false);
        Executor::new(self, Some(plan_id.clone()), progress)
            .run(connections.clone(), Mode::UntilSettled, stop_rx)
            .await?;
        // What the IdP took but could not provision, retried to the end, is
        // a person's work now, with the IdP's error.
        let escalated = self.failures_to_people(plan_id).await?;
        if !escalated.is_empty() {
            tracing::warn!(plan = %plan_id, tasks = escalated.len(), "provisioning failures became people's tasks");
        }

        let mut report = ApplyReport::default();
        for a in self.store.actions(plan_id).await? {
            let connection = a.action.connection.clone();
            if a.state == ActionState::Pending && approved.held().contains(&a.index) {
                report.held += 1;
                continue;
            }
            match a.state {
                ActionState::Done => *report.applied.entry(connection).or_insert(0) += 1,
                ActionState::Failed => report.failed.push((
                    connection,
                    a.action.email.to_string(),
                    a.detail.unwrap_or_default(),
                )),
                ActionState::Skipped => report.skipped += 1,
                ActionState::Pending | ActionState::Running => report.pending += 1,
                ActionState::Manual => report.manual += 1,
            }
        }
        for c in &connections {
            let status = self.store.queue_status(c, None).await?;
            if let Some(reason) = status.quarantined {
                report.quarantined.push((c.clone(), reason));
            }
            if let Some(why) = status.paused {
                report.paused.push((c.clone(), why));
            }
        }
        self.audit_as(
            &actor,
            AuditKind::PlanApplyFinished,
            plan_id.as_str(),
            json!({
                "applied": report.applied_total(),
                "failed": report.failed.len(),
                "skipped": report.skipped,
                "manual": report.manual,
                "pending": report.pending,
                "quarantined": report.quarantined.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                "paused": report.paused.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                "worker": self.executor.worker_id,
            }),
        )
        .await?;
        Ok((report, enqueued))
    }

    /// Hands an approved plan to the task queue without running it (a
    /// worker, [`Engine::run_worker`], picks it up). Idempotent: actions
    /// that have a task keep it. This plan's dead letters get a fresh
    /// attempt budget, and actions for a connection with no connector
    /// become manual. Returns what was enqueued and how many actions became
    /// manual.
    pub(crate) async fn enqueue(&self, approved: &Approved) -> Result<Enqueued, EngineError> {
        let plan_id = approved.plan_id();
        // A leaver's IdP sessions end before any of their accounts is
        // closed, so SSO-only and JIT apps stop admitting them. Only for
        // removals that run now: a guard that withholds or holds them
        // holds the revocation too.
        let revocations = self.revoke_for_leavers(approved).await?;
        // What no connector can do goes to people first (held actions get
        // no task, no checklist).
        let tasks = self.route_manual(plan_id).await?;
        // From here on the plan counts as applied: the next plan compares
        // its policy with this one's.
        self.store
            .mark_plan_applied(plan_id, ms(self.now()))
            .await?;
        // Actions waiting for approval are left out, and only they: a
        // held removal never keeps a leaver's deactivation (or anything
        // else that needs no approval) from running now.
        let held = approved.held();
        let stored = self.store.actions(plan_id).await?;
        let mut manual = 0usize;
        for a in &stored {
            if matches!(a.state, ActionState::Pending | ActionState::Failed)
                && !held.contains(&a.index)
                && !self.connectors.contains_key(&a.action.connection)
            {
                let detail = format!(
                    "no automated path for {}: {} {} by hand",
                    a.action.connection, a.action.operation, a.action.email
                );
                self.store
                    .set_action_state(
                        plan_id,
                        a.index,
                        ActionState::Manual,
                        Some(detail),
                        ms(self.now()),
                    )
                    .await?;
                crate::metrics::action_finished("manual", "manual");
                manual += 1;
            }
        }
        let connections = self.connector_ids();
        let now = ms(self.now());
        self.store.requeue_dead_tasks(plan_id, None, now).await?;
        let enqueued = self
            .store
            .enqueue_plan_tasks_except(
                plan_id,
                &connections,
                held,
                self.executor.retry.max_attempts,
                now,
            )
            .await?;
        self.mark_applied(plan_id).await?;
        Ok(Enqueued {
            tasks,
            queued: enqueued.inserted,
            existing: enqueued.existing,
            manual,
            held: held.len(),
            revocations,
        })
    }

    /// Runs every plan's tasks, for every connection, until `stop`
    /// completes (`roster run`). Batches in flight when `stop` fires are
    /// finished and recorded first.
    ///
    /// Leases of an earlier process with the same
    /// [`ExecutorOptions::worker_id`] are released at start: that process
    /// is known to be gone, so its tasks need not wait for the lease to
    /// expire.
    pub(crate) async fn run_worker(
        &self,
        stop: impl Future<Output = ()>,
    ) -> Result<(), EngineError> {
        let released = self
            .store
            .release_leases_of(&self.executor.worker_id, ms(self.now()))
            .await?;
        if released > 0 {
            tracing::warn!(
                released,
                worker = %self.executor.worker_id,
                "released the leases of this worker's previous run"
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut quiet = |_: &ConnectionId, _: &Progress<'_>| {};
        let executor = Executor::new(self, None, &mut quiet);
        let work = executor.run(self.connector_ids(), Mode::Forever, stop_rx);
        let mut work = std::pin::pin!(work);
        tokio::select! {
            done = &mut work => return done,
            () = stop => {
                let _ = stop_tx.send(true);
            }
        }
        work.await
    }
}
