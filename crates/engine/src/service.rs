//! The long-running service: a worker draining the task queue, a periodic
//! full reconciliation, and event-driven reconciliation of single people.
//!
//! Everything goes through the application layer ([`Roster`]) as roster's
//! own principal ([`Principal::service`]). Events (an IdP push through the
//! SCIM gateway, say) name a person; the service plans just that person,
//! turns what no connector can do into human tasks, and queues the rest,
//! which the worker picks up within its idle poll (half a second by
//! default). Actions that need approval are held for `roster approve` and
//! never applied here; the rest of their plan is.
//!
//! Identity providers: every `poll_interval` (the shortest configured, or
//! [`ServiceOptions::poll_interval`]) the service reads the incremental
//! sources' changes ([`Roster::poll_sources`]) and reconciles the people
//! they changed; an event hook's [`Event::SourcePeople`] re-reads the
//! people it names ([`Roster::reread_people`]) and reconciles them. Both
//! import through the same guarded import as a full run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roster_core::Principal;
use tokio::sync::{mpsc, watch};

use crate::app::{Roster, RunOptions};
use crate::engine::EngineError;
use crate::planning::PersonRef;

/// What makes the service reconcile.
#[derive(Clone, Debug)]
pub enum Event {
    /// Something changed for one person.
    Person(PersonRef),
    /// Run a full reconciliation now.
    Full,
    /// An identity provider's event hook named these people (by the
    /// IdP's id) as changed. Never their state: they are re-read.
    SourcePeople {
        source: roster_core::ConnectionId,
        ids: Vec<String>,
    },
    /// Read the sources' changes now (what the poll tick does).
    Poll,
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
    /// Time between polls of the sources' changes; `None`: the shortest
    /// `[sources.<name>] poll_interval` configured, if any.
    pub poll_interval: Option<Duration>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            full_interval: Duration::from_secs(15 * 60),
            hr_csv: None,
            auto_apply: true,
            poll_interval: None,
        }
    }
}

impl ServiceOptions {
    fn run_options(&self) -> RunOptions {
        RunOptions {
            hr_csv: self.hr_csv.clone(),
            auto_apply: self.auto_apply,
        }
    }
}

/// One audit checkpoint pass; problems are logged (a witness that is down
/// never stops the service).
async fn checkpoint(roster: &Roster) {
    match roster.checkpoint_audit().await {
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
    roster: Arc<Roster>,
    opts: ServiceOptions,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let service = Principal::service();
    let run_options = opts.run_options();
    let worker = {
        let roster = roster.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            roster
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
    let anchor_every = roster
        .engine()
        .anchor
        .as_ref()
        .map_or(Duration::from_secs(3600), |a| a.interval);
    let poll_every = opts
        .poll_interval
        .or_else(|| roster.engine().source_poll_interval());
    let mut poll_tick = tokio::time::interval(poll_every.unwrap_or(Duration::from_secs(3600)));
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once; the first full run reads whole anyway.
    poll_tick.tick().await;
    let mut anchor_tick = tokio::time::interval(anchor_every);
    anchor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Notifications read the audit log: whatever the runs, the worker and
    // the gateway recorded goes out within DELIVER_EVERY.
    let notifies = roster
        .engine()
        .notifier
        .as_ref()
        .is_some_and(|n| !n.is_empty());
    let mut last_leaver_sweep: Option<std::time::Instant> = None;
    let mut notify_tick = tokio::time::interval(crate::notify::DELIVER_EVERY);
    notify_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            _ = notify_tick.tick(), if notifies => {
                // The leavers report reads every account: at most every
                // LEAVER_SWEEP_EVERY.
                let leavers = last_leaver_sweep.is_none_or(|t: std::time::Instant| t.elapsed() >= crate::notify::LEAVER_SWEEP_EVERY);
                match roster.notify_sweep(leavers).await {
                    Ok(s) => {
                        if leavers {
                            last_leaver_sweep = Some(std::time::Instant::now());
                        }
                        if s.leavers + s.approvals > 0 {
                            tracing::info!(leavers = s.leavers, approvals = s.approvals, "raised what waited past its SLA");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "checking SLAs for notifications failed"),
                }
                match roster.deliver_notifications().await {
                    Ok(d) if d.sent + d.failed > 0 => tracing::info!(sent = d.sent, failed = d.failed, "notifications"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "delivering notifications failed"),
                }
            }
            _ = anchor_tick.tick(), if roster.engine().anchor.is_some() => checkpoint(&roster).await,
            _ = poll_tick.tick(), if poll_every.is_some() && roster.engine().has_sources() => {
                match roster.poll_sources(&service, &run_options).await {
                    Ok(s) => if s.plan.is_some() {
                        tracing::info!(plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, "reconciled what the sources changed");
                    },
                    Err(e) => tracing::error!(error = %e, "reading the sources' changes failed"),
                }
            }
            _ = tick.tick() => {
                match roster.reconcile(&service, &run_options).await {
                    Ok(s) => tracing::info!(plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, waiting = s.awaiting_approval, "full reconciliation"),
                    Err(e) => tracing::error!(error = %e, "full reconciliation failed"),
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                let result = match &event {
                    Event::Full => roster.reconcile(&service, &run_options).await,
                    Event::Person(who) => roster.reconcile_person(&service, who, opts.auto_apply).await,
                    Event::SourcePeople { source, ids } => roster.reread_people(&service, source, ids, &run_options).await,
                    Event::Poll => roster.poll_sources(&service, &run_options).await,
                };
                match result {
                    Ok(s) => tracing::info!(?event, plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, "reconciled on event"),
                    Err(e) => tracing::error!(?event, error = %e, "event reconciliation failed"),
                }
            }
        }
    }
    // Whatever the last moments appended.
    checkpoint(&roster).await;
    if notifies && let Err(e) = roster.deliver_notifications().await {
        tracing::error!(error = %e, "delivering notifications failed");
    }
    match worker.await {
        Ok(r) => r,
        Err(e) => Err(EngineError::Refused(format!(
            "the worker stopped abnormally: {e}"
        ))),
    }
}
