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
//! If the database cannot be reached the budget falls back to an
//! in-memory limiter with the same windows: the process then stays within
//! the limits on its own, which is the best it can do, and it says so in
//! the log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use roster_connectors::limiter::{default_margin, keep_for, next_turn_ms};
use roster_connectors::{RateBudget, RateLimiter, RateWindow, Turn};
use roster_core::ConnectionId;
use roster_store::Store;

/// A connection's rate budget in the store.
pub struct StoreBudget {
    store: Store,
    connection: ConnectionId,
    windows: Vec<RateWindow>,
    margin: Duration,
    /// Used only while the store fails.
    fallback: RateLimiter,
}

impl StoreBudget {
    pub fn new(store: Store, connection: ConnectionId, windows: Vec<RateWindow>) -> Self {
        let windows: Vec<RateWindow> = windows.into_iter().filter(|w| w.max_requests > 0).collect();
        let margin = default_margin(&windows);
        StoreBudget {
            store,
            connection,
            fallback: RateLimiter::new(windows.clone()).with_margin(margin),
            windows,
            margin,
        }
    }

    /// Extra wait past each window boundary (the app measures arrival
    /// times; the network and busy machines add jitter).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self.fallback = RateLimiter::new(self.windows.clone()).with_margin(margin);
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
        let keep = ms_of(keep_for(&self.windows, self.margin));
        let (windows, margin) = (&self.windows, self.margin);
        let taken = self
            .store
            .take_rate_turn(&self.connection, keep, now, |sent, hold| {
                next_turn_ms(windows, margin, sent, hold, now)
            })
            .await;
        match taken {
            Ok(None) => Turn::Go,
            Ok(Some(at)) => Turn::Wait(Duration::from_millis(
                u64::try_from(at.saturating_sub(now)).unwrap_or(0).max(1),
            )),
            Err(e) => {
                tracing::warn!(
                    connection = %self.connection,
                    error = %e,
                    "the shared rate budget is unavailable; pacing this process on its own"
                );
                self.fallback.take_turn()
            }
        }
    }

    async fn hold_for(&self, d: Duration) {
        self.fallback.pause_for(d);
        let until = wall_ms().saturating_add(ms_of(d));
        if let Err(e) = self.store.hold_rate_budget(&self.connection, until).await {
            tracing::warn!(
                connection = %self.connection,
                error = %e,
                "could not share the app's request to wait; only this process waits"
            );
        }
    }
}
