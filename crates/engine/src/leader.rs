//! Leadership among the processes that share one database.
//!
//! `roster serve` and `roster run` each run the service ([`crate::service`]);
//! several may share a PostgreSQL database, with any number of `roster
//! worker` processes that only drain the queue. The queue needs no leader.
//! The scheduled jobs do: a full reconciliation started by two processes at
//! once would plan the same changes twice. So they run only in the process
//! that holds the [`SCHEDULER`] lease ([`roster_store::Lease`]: a row with a
//! fencing token, see `roster_store::leases`), and the one write that starts
//! a full run ([`roster_store::Store::claim_due`]) and the enqueueing of its
//! plan ([`crate::Roster::reconcile_fenced`]) are fenced by the token, so a
//! process that lost the lease while paused cannot act on it.
//!
//! [`hold`] is the loop that takes the lease when it is free and renews it
//! every [`LeaseOptions::renew_every`]; it publishes the lease on a watch
//! channel while held, and `None` the moment a renewal fails or the lease
//! would expire before the next renewal could land. A process that is
//! SIGKILLed stops renewing; another takes over once the lease expires
//! ([`LeaseOptions::ttl`], 30 s by default). A clean stop releases it at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roster_store::{Lease, Store};
use tokio::sync::watch;

/// The lease that makes a process the scheduler.
pub const SCHEDULER: &str = "scheduler";
/// The scheduled job that starts full reconciliations.
pub const FULL_RUN: &str = "full-reconciliation";

/// How a process holds a lease.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// This process's name in the lease (unique per process).
    pub holder: String,
    /// How long a lease lasts without renewal: how long the scheduler's
    /// jobs pause after its process dies.
    pub ttl: Duration,
    /// How often the holder renews (and a non-holder tries to take it).
    pub renew_every: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            holder: crate::options::ExecutorOptions::default().worker_id,
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// Wall-clock unix milliseconds, as the lease rows and rate budgets use.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Holds the lease `name` for as long as it can, until `stop` turns true:
/// `leader` carries `Some(lease)` while this process holds it. Database
/// errors count as not holding it (logged), and the loop goes on.
pub async fn hold(
    store: Store,
    name: &'static str,
    opts: LeaseOptions,
    leader: watch::Sender<Option<Lease>>,
    mut stop: watch::Receiver<bool>,
) {
    let ttl = ms(opts.ttl);
    let mut tick = tokio::time::interval(opts.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held: Option<Lease> = None;
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        held = match held.take() {
            // Renew only while the renewal can still land before expiry;
            // a lease this close to its end (the process was paused) is
            // treated as lost, which the fence would find anyway.
            Some(lease) if lease.expires_ms > now => {
                match store.renew_lease(&lease, now, ttl).await {
                    Ok(true) => Some(Lease {
                        expires_ms: now.saturating_add(ttl),
                        ..lease
                    }),
                    Ok(false) => {
                        tracing::warn!(
                            lease = name,
                            token = lease.token,
                            "lost the lease: another process leads now"
                        );
                        None
                    }
                    Err(e) => {
                        tracing::error!(lease = name, error = %e, "cannot renew the lease; stepping down");
                        None
                    }
                }
            }
            Some(lease) => {
                tracing::warn!(
                    lease = name,
                    token = lease.token,
                    "the lease expired before it could be renewed; stepping down"
                );
                None
            }
            None => match store.acquire_lease(name, &opts.holder, now, ttl).await {
                Ok(Some(lease)) => {
                    tracing::info!(lease = name, token = lease.token, holder = %lease.holder, "took the lease: this process runs the scheduled jobs");
                    Some(lease)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(lease = name, error = %e, "cannot take the lease");
                    None
                }
            },
        };
        leader.send_if_modified(|current| {
            let changed = current.as_ref().map(|l| l.token) != held.as_ref().map(|l| l.token);
            *current = held.clone();
            changed
        });
    }
    if let Some(lease) = held {
        let _ = leader.send(None);
        if let Err(e) = store.release_lease(&lease).await {
            tracing::warn!(lease = name, error = %e, "cannot release the lease; it expires on its own");
        }
    }
}

/// The lease currently held, if it has not expired by the local clock.
pub fn current(leader: &watch::Receiver<Option<Lease>>) -> Option<Lease> {
    leader
        .borrow()
        .as_ref()
        .filter(|l| l.expires_ms > now_ms())
        .cloned()
}
