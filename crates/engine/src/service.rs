//! The long-running service: a worker draining the task queue, a periodic
//! full reconciliation, and event-driven reconciliation of single people.
//!
//! Events (an IdP push through the SCIM gateway, say) name a person; the
//! service plans just that person ([`Engine::plan_person`]), turns what no
//! connector can do into human tasks, and queues the rest, which the worker
//! picks up within its idle poll (half a second by default). Actions that
//! need approval are held for `roster approve` and never applied here; the
//! rest of their plan is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roster_core::hr_csv;
use roster_store::PlanId;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::run::{Engine, EngineError};
use crate::targeted::PersonRef;

/// What makes the service reconcile.
#[derive(Clone, Debug)]
pub enum Event {
    /// Something changed for one person.
    Person(PersonRef),
    /// Run a full reconciliation now.
    Full,
}

#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Time between full reconciliations.
    pub full_interval: Duration,
    /// The HR file to import before each full run, if the source is a file.
    pub hr_csv: Option<PathBuf>,
    /// Apply plans without a person's go-ahead when nothing in them needs
    /// approval. Off: every plan waits for `roster apply`.
    pub auto_apply: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            full_interval: Duration::from_secs(15 * 60),
            hr_csv: None,
            auto_apply: true,
        }
    }
}

/// What one reconciliation did, for logs and tests.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub plan: Option<PlanId>,
    pub actions: usize,
    pub queued: usize,
    pub tasks: usize,
    pub awaiting_approval: usize,
}

impl Engine {
    /// After planning: route manual work to people and queue the rest.
    /// Actions that need approval are held (no task, no checklist) until a
    /// person approves them; they never hold back the others.
    async fn act_on(&self, plan_id: &PlanId, auto_apply: bool) -> Result<RunSummary, EngineError> {
        let stored = self
            .store
            .plan(plan_id)
            .await?
            .ok_or_else(|| EngineError::PlanNotFound(plan_id.to_string()))?;
        let mut summary = RunSummary {
            plan: Some(plan_id.clone()),
            actions: stored.plan.actions.len(),
            ..RunSummary::default()
        };
        if stored.plan.actions.is_empty() {
            // Nothing to do is a plan carried out: its connections leave
            // their first plan.
            if auto_apply {
                self.mark_applied(plan_id).await?;
            }
            return Ok(summary);
        }
        let waiting = self.approval_status(plan_id).await?.waiting;
        if !waiting.is_empty() || !auto_apply {
            summary.awaiting_approval = waiting.len();
            self.audit(
                "plan.awaiting_approval",
                plan_id.as_str(),
                json!({ "waiting": waiting.len(), "auto_apply": auto_apply }),
            )
            .await?;
        }
        if !auto_apply {
            return Ok(summary);
        }
        // Held actions are left out of the queue; the rest (a leaver's
        // deactivation above all) goes now.
        summary.tasks = self.route_manual(plan_id).await?.len();
        summary.queued = self.enqueue_plan(plan_id).await?.1;
        Ok(summary)
    }

    /// A full run: import the HR file (if any), read every app, plan, act.
    pub async fn full_run(&self, opts: &ServiceOptions) -> Result<RunSummary, EngineError> {
        if let Some(path) = &opts.hr_csv {
            let text = std::fs::read_to_string(path).map_err(|e| {
                EngineError::Refused(format!("cannot read HR file {}: {e}", path.display()))
            })?;
            let people = hr_csv::parse(&path.display().to_string(), &text)
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            self.import_people(&people, &path.display().to_string())
                .await?;
        }
        let outcomes = self.read(&mut |_, _| {}).await?;
        let readable: Vec<_> = outcomes
            .iter()
            .filter(|o| o.error.is_none())
            .map(|o| o.connection.clone())
            .collect();
        if readable.is_empty() && !outcomes.is_empty() {
            return Err(EngineError::NothingRead);
        }
        let (id, _) = self.plan(Some(&readable)).await?;
        let summary = self.act_on(&id, opts.auto_apply).await?;
        self.nudge_tasks().await?;
        Ok(summary)
    }

    /// One person, now.
    pub async fn person_run(
        &self,
        who: &PersonRef,
        auto_apply: bool,
    ) -> Result<RunSummary, EngineError> {
        match self.plan_person(who).await? {
            None => {
                tracing::info!(person = %who, "event for a person the source of truth does not know");
                Ok(RunSummary::default())
            }
            Some((id, _)) => self.act_on(&id, auto_apply).await,
        }
    }
}

/// One audit checkpoint pass; problems are logged (a witness that is down
/// never stops the service).
async fn checkpoint(engine: &Engine) {
    match engine.checkpoint_audit().await {
        Ok(Some(outcome)) => {
            for w in outcome.warnings() {
                tracing::warn!("{w}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
    }
}

/// Runs the service until `stop` turns true: a worker, the periodic full
/// run, and events from `events`.
pub async fn run(
    engine: Arc<Engine>,
    opts: ServiceOptions,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let worker = {
        let engine = engine.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            engine
                .run_worker(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let mut tick = tokio::time::interval(opts.full_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Audit checkpoints: the chain head is signed and sent to the witnesses
    // on their own schedule, so events from the worker and the SCIM
    // gateway are anchored even between reconciliations.
    let anchor_every = engine
        .anchor
        .as_ref()
        .map_or(Duration::from_secs(3600), |a| a.interval);
    let mut anchor_tick = tokio::time::interval(anchor_every);
    anchor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            _ = anchor_tick.tick(), if engine.anchor.is_some() => checkpoint(&engine).await,
            _ = tick.tick() => {
                match engine.full_run(&opts).await {
                    Ok(s) => tracing::info!(plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, waiting = s.awaiting_approval, "full reconciliation"),
                    Err(e) => tracing::error!(error = %e, "full reconciliation failed"),
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                let result = match &event {
                    Event::Full => engine.full_run(&opts).await,
                    Event::Person(who) => engine.person_run(who, opts.auto_apply).await,
                };
                match result {
                    Ok(s) => tracing::info!(?event, plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, "reconciled on event"),
                    Err(e) => tracing::error!(?event, error = %e, "event reconciliation failed"),
                }
            }
        }
    }
    // Whatever the last moments appended.
    checkpoint(&engine).await;
    match worker.await {
        Ok(r) => r,
        Err(e) => Err(EngineError::Refused(format!(
            "the worker stopped abnormally: {e}"
        ))),
    }
}
