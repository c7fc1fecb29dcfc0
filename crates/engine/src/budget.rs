//! The rate budget the engine installs for every connector: the app's
//! documented windows, counted in the store, so every roster process that
//! uses the same database shares one budget per connection.
//!
//! `roster plan` then `roster apply` a few seconds later, a worker
//! restarted after a crash, `roster serve` and several `roster run`
//! workers all take their turns from the same record of recent requests
//! ([`Store::take_rate_turn`]: one small transaction per request, pruning
//! old rows as it goes), and a hold the app asked for (`Retry-After`,
//! `X-Rate-Limit-Remaining: 0`) holds every process back.
//!
//! Times are wall-clock milliseconds, since they are compared across
//! processes (and, on PostgreSQL, across hosts: keep their clocks in sync;
//! the margin absorbs small skew).
//!
//! If the database cannot be reached the budget **waits** for it, asking
//! again every [`UNAVAILABLE_RETRY`], and says so in the log (once every
//! ten seconds at most): the record of what other processes sent is
//! there, and a process that paced itself alone meanwhile could, with its
//! peers doing the same, send several times the app's limit. (It did: the
//! chaos suite's database outages caught a rate-limit violation when this
//! budget fell back to an in-memory limiter.) A process that cannot reach
//! its database cannot record what it sends either, so waiting costs
//! nothing it could otherwise have done safely. A hold the app asked for
//! is kept in memory too, so it is honoured as soon as the store is back
//! even if sharing it failed.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use roster_connectors::limiter::{default_margin, keep_for, next_turn_ms};
use roster_connectors::{RateBudget, RateWindow, Turn};
use roster_core::ConnectionId;
use roster_store::Store;

/// A connection's rate budget in the store.
pub struct StoreBudget {
    store: Store,
    connection: ConnectionId,
    windows: Vec<RateWindow>,
    margin: Duration,
    /// A hold the app asked for, kept here too (wall ms): honoured even
    /// when sharing it through the store failed.
    held_until: Mutex<i64>,
    /// When the store last failed a turn was reported (log pacing).
    reported: Mutex<Option<Instant>>,
}

/// How soon a turn is asked for again while the store is unreachable.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_millis(250);
/// At most one warning this often while the store stays unreachable.
const REPORT_EVERY: Duration = Duration::from_secs(10);

impl StoreBudget {
    pub fn new(store: Store, connection: ConnectionId, windows: Vec<RateWindow>) -> Self {
        let windows: Vec<RateWindow> = windows.into_iter().filter(|w| w.max_requests > 0).collect();
        let margin = default_margin(&windows);
        StoreBudget {
            store,
            connection,
            windows,
            margin,
            held_until: Mutex::new(0),
            reported: Mutex::new(None),
        }
    }

    /// Extra wait past each window boundary (the app measures arrival
    /// times; the network and busy machines add jitter).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateBudget for StoreBudget {
    fn windows(&self) -> &[RateWindow] {
        &self.windows
    }

    async fn try_turn(&self) -> Turn {
        let now = wall_ms();
        let held = *self.held_until.lock().unwrap_or_else(|p| p.into_inner());
        if held > now {
            return Turn::Wait(Duration::from_millis(
                u64::try_from(held - now).unwrap_or(0).max(1),
            ));
        }
        let keep = ms_of(keep_for(&self.windows, self.margin));
        let (windows, margin) = (&self.windows, self.margin);
        // The store reads the clock once it holds the budget's lock, not
        // now: see `Store::take_rate_turn`.
        let taken = self
            .store
            .take_rate_turn(&self.connection, keep, wall_ms, |sent, hold, now| {
                next_turn_ms(windows, margin, sent, hold, now)
            })
            .await;
        match taken {
            Ok(None) => Turn::Go,
            Ok(Some(at)) => Turn::Wait(Duration::from_millis(
                u64::try_from(at.saturating_sub(wall_ms()))
                    .unwrap_or(0)
                    .max(1),
            )),
            Err(e) => {
                let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
                if reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                    *reported = Some(Instant::now());
                    tracing::warn!(
                        connection = %self.connection,
                        error = %e,
                        "the shared rate budget is unavailable; requests to this app wait until the database answers again"
                    );
                }
                Turn::Wait(UNAVAILABLE_RETRY)
            }
        }
    }

    async fn hold_for(&self, d: Duration) {
        let until = wall_ms().saturating_add(ms_of(d));
        {
            let mut held = self.held_until.lock().unwrap_or_else(|p| p.into_inner());
            *held = (*held).max(until);
        }
        if let Err(e) = self.store.hold_rate_budget(&self.connection, until).await {
            tracing::warn!(
                connection = %self.connection,
                error = %e,
                "could not share the app's request to wait; only this process waits"
            );
        }
    }
}
