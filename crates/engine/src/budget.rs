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
//! **A turn is good for a moment only.** The turn is recorded at the time
//! read once the budget's row is locked, but the request leaves only after
//! the transaction commits and the caller gets back to it: a commit that
//! waits for a slow disk, a busy machine, a pooled connection that must be
//! made again after the database was away. The app counts the request when
//! it arrives, so every millisecond between the two is a millisecond the
//! other processes' windows are counted wrong by: a request recorded at
//! `t` and sent at `t + 60 ms`, followed by others sent promptly, puts one
//! more request into a window than the record shows (the chaos suite's
//! database outages and server restarts caught exactly this, with commits
//! taking up to 400 ms). So a turn whose grant comes back more than
//! [`LATE_TURN_FRACTION`] of the margin after its recorded time is not
//! used: it stays counted (a budget that counts a request that was never
//! sent is merely conservative) and the caller asks again at once. Callers
//! send as soon as they are given a turn (see the executor).
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
use std::sync::atomic::{AtomicI64, Ordering};
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
    /// When a turn that came back too late was last reported (log pacing).
    reported_late: Mutex<Option<Instant>>,
    /// Wall-clock milliseconds ([`wall_ms`]; tests step it).
    clock: fn() -> i64,
}

/// How soon a turn is asked for again while the store is unreachable.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_millis(250);
/// At most one warning this often while the store stays unreachable.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A granted turn is used only if it comes back within the margin divided
/// by this after the time it was recorded at: the rest of the margin is
/// left for the way from here to the app.
pub const LATE_TURN_FRACTION: u32 = 2;
/// Turns that came back too late are taken again at once this many times
/// in one [`RateBudget::try_turn`] before the caller is told to ask again.
const LATE_TURN_TRIES: usize = 3;

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
            reported_late: Mutex::new(None),
            clock: wall_ms,
        }
    }

    /// Says (at most once every [`REPORT_EVERY`]) that a turn came back
    /// too late to use.
    fn report_late(&self, late_ms: i64) {
        let mut reported = self.reported_late.lock().unwrap_or_else(|p| p.into_inner());
        if reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            *reported = Some(Instant::now());
            tracing::warn!(
                connection = %self.connection,
                late_ms,
                margin_ms = ms_of(self.margin),
                "a rate turn came back from the database too late to use; taking another \
                 (a database this slow for long wants a larger margin)"
            );
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
        let now = (self.clock)();
        let held = *self.held_until.lock().unwrap_or_else(|p| p.into_inner());
        if held > now {
            return Turn::Wait(Duration::from_millis(
                u64::try_from(held - now).unwrap_or(0).max(1),
            ));
        }
        let keep = ms_of(keep_for(&self.windows, self.margin));
        let (windows, margin) = (&self.windows, self.margin);
        for _ in 0..LATE_TURN_TRIES {
            // The store reads the clock once it holds the budget's lock,
            // not now: see `Store::take_rate_turn`. The time it read is
            // kept to see how late the grant comes back.
            let recorded = AtomicI64::new(0);
            let taken = self
                .store
                .take_rate_turn(
                    &self.connection,
                    keep,
                    || {
                        let now = (self.clock)();
                        recorded.store(now, Ordering::Relaxed);
                        now
                    },
                    |sent, hold, now| next_turn_ms(windows, margin, sent, hold, now),
                )
                .await;
            match taken {
                Ok(None) => {
                    let late_ms = (self.clock)().saturating_sub(recorded.load(Ordering::Relaxed));
                    if late_ms <= ms_of(self.margin / LATE_TURN_FRACTION) {
                        return Turn::Go;
                    }
                    // Too late to go (see the module docs): the turn stays
                    // counted, and a fresh one is asked for at once.
                    self.report_late(late_ms);
                }
                Ok(Some(at)) => {
                    return Turn::Wait(Duration::from_millis(
                        u64::try_from(at.saturating_sub((self.clock)()))
                            .unwrap_or(0)
                            .max(1),
                    ));
                }
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
                    return Turn::Wait(UNAVAILABLE_RETRY);
                }
            }
        }
        // Late again and again: the caller asks again (after yielding).
        Turn::Wait(Duration::ZERO)
    }

    async fn hold_for(&self, d: Duration) {
        let until = (self.clock)().saturating_add(ms_of(d));
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

#[cfg(test)]
mod tests {

    use super::*;

    const T0: i64 = 1_700_000_000_000;

    /// Every reading 30 ms after the one before: each turn comes back 30 ms
    /// after the time it was recorded at.
    fn slow_clock() -> i64 {
        static NOW: AtomicI64 = AtomicI64::new(T0);
        NOW.fetch_add(30, Ordering::SeqCst)
    }

    fn another_slow_clock() -> i64 {
        static NOW: AtomicI64 = AtomicI64::new(T0);
        NOW.fetch_add(30, Ordering::SeqCst)
    }

    async fn budget(margin_ms: u64, clock: fn() -> i64) -> (Store, StoreBudget) {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let mut budget = StoreBudget::new(
            store.clone(),
            ConnectionId::new("app"),
            vec![RateWindow::new(100, Duration::from_secs(1))],
        )
        .with_margin(Duration::from_millis(margin_ms));
        budget.clock = clock;
        (store, budget)
    }

    #[tokio::test]
    async fn a_turn_that_comes_back_too_late_is_not_used_but_stays_counted() {
        // 30 ms late is more than half a 40 ms margin.
        let (store, budget) = budget(40, slow_clock).await;
        assert_eq!(budget.try_turn().await, Turn::Wait(Duration::ZERO));
        let counted = store
            .rate_requests_since(&ConnectionId::new("app"), 0)
            .await
            .unwrap();
        assert_eq!(
            counted, LATE_TURN_TRIES as u64,
            "every late turn is counted"
        );
    }

    #[tokio::test]
    async fn a_turn_within_half_the_margin_goes() {
        let (store, budget) = budget(100, another_slow_clock).await;
        assert_eq!(budget.try_turn().await, Turn::Go);
        let counted = store
            .rate_requests_since(&ConnectionId::new("app"), 0)
            .await
            .unwrap();
        assert_eq!(counted, 1);
    }
}
