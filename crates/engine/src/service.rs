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
use crate::leader::{self, LeaseOptions};
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
/// run, and events from `events`. The scheduled jobs run only while this
/// process holds the scheduler lease ([`run_with_lease`] with the default
/// [`LeaseOptions`]).
pub async fn run(
    roster: Arc<Roster>,
    opts: ServiceOptions,
    events: mpsc::UnboundedReceiver<Event>,
    stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    run_with_lease(roster, opts, LeaseOptions::default(), events, stop).await
}

/// How often a process checks whether a scheduled full run is due (the
/// schedule lives in the database, shared by every process).
const SCHEDULE_CHECK: Duration = Duration::from_millis(500);

/// [`run`] with explicit lease options. Several processes may run this on
/// one database (PostgreSQL): each runs a worker and handles its own
/// events, and the one holding the [`leader::SCHEDULER`] lease runs the
/// scheduled jobs — full reconciliations when the shared schedule says
/// one is due (claimed and enqueued under the lease's fencing token),
/// source polls, notifications, ticket mirroring and audit checkpoints.
/// When it dies, another process takes the lease over once it expires and
/// the schedule goes on where it was.
pub async fn run_with_lease(
    roster: Arc<Roster>,
    opts: ServiceOptions,
    lease_opts: LeaseOptions,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let service = Principal::service();
    let run_options = opts.run_options();
    let (leader_tx, leader_rx) = watch::channel(None);
    let mut leader_watch = leader_rx.clone();
    let holder = tokio::spawn(leader::hold(
        roster.store().clone(),
        leader::SCHEDULER,
        lease_opts,
        leader_tx,
        stop.clone(),
    ));
    let full_every = i64::try_from(opts.full_interval.as_millis()).unwrap_or(i64::MAX);
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
    let mut tick = tokio::time::interval(SCHEDULE_CHECK.min(opts.full_interval));
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
    // Tasks mirrored to the ITSM tool on the same beat.
    let mirrors = roster.engine().tickets.is_some();
    let mut last_leaver_sweep: Option<std::time::Instant> = None;
    let mut notify_tick = tokio::time::interval(crate::notify::DELIVER_EVERY);
    notify_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The scheduled jobs below run only in the lease holder.
        let leading = leader::current(&leader_rx).is_some();
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            // Leadership came or went: look at the branches again.
            Ok(()) = leader_watch.changed() => {}
            _ = notify_tick.tick(), if leading && (notifies || mirrors) => {
                if mirrors {
                    match roster.mirror_tickets().await {
                        Ok(m) if m.opened + m.completed + m.reopened + m.resolved + m.failed > 0 => tracing::info!(opened = m.opened, completed = m.completed, reopened = m.reopened, resolved = m.resolved, failed = m.failed, "tickets mirrored"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "mirroring tasks to tickets failed"),
                    }
                }
                if !notifies {
                    continue;
                }
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
            _ = anchor_tick.tick(), if leading && roster.engine().anchor.is_some() => checkpoint(&roster).await,
            _ = poll_tick.tick(), if leading && poll_every.is_some() && roster.engine().has_sources() => {
                match roster.poll_sources(&service, &run_options).await {
                    Ok(s) => if s.plan.is_some() {
                        tracing::info!(plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, "reconciled what the sources changed");
                    },
                    Err(e) => tracing::error!(error = %e, "reading the sources' changes failed"),
                }
            }
            _ = tick.tick(), if leading => {
                // Due by the shared schedule, and claimed under this
                // tenure's fencing token: one process starts each run.
                let Some(lease) = leader::current(&leader_rx) else { continue };
                match roster.store().claim_due(leader::FULL_RUN, &lease, leader::now_ms(), full_every).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the schedule");
                        continue;
                    }
                }
                match roster.reconcile_fenced(&service, &run_options, &lease).await {
                    Ok(s) => tracing::info!(plan = ?s.plan, actions = s.actions, queued = s.queued, tasks = s.tasks, waiting = s.awaiting_approval, token = lease.token, "full reconciliation"),
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
    // Whatever the last moments appended (the leader's job; the lease is
    // released once the holder sees the stop).
    if leader::current(&leader_rx).is_some() {
        checkpoint(&roster).await;
        if notifies && let Err(e) = roster.deliver_notifications().await {
            tracing::error!(error = %e, "delivering notifications failed");
        }
    }
    let _ = holder.await;
    match worker.await {
        Ok(r) => r,
        Err(e) => Err(EngineError::Refused(format!(
            "the worker stopped abnormally: {e}"
        ))),
    }
}
