//! Outbound pacing: the engine's side of an app's documented rate limits.
//!
//! Apps document limits as sliding windows ("at most 5 requests per 10 s
//! and at most 20 per 60 s"). [`RateLimiter`] enforces exactly that: it
//! remembers when it let recent requests through and makes a caller wait
//! until every window has room.
//!
//! # Why not a token bucket
//!
//! A GCRA/token bucket such as `governor`'s `Quota::with_period(per / n)
//! .allow_burst(n)` admits a burst of `n` and then one request every
//! `per / n`, so some span of `per` sees up to `2n - 1` requests: the app
//! would answer 429. Narrowing the bucket to a burst of 1 is compliant but
//! throws away the documented burst (20 Expensify requests would take 57 s
//! instead of 30 s). A sliding-window log is exact and tiny, and each
//! connector has only a handful of windows.
//!
//! A small `margin` is added to every wait, because the app measures
//! arrival times and the network adds jitter between our send and its
//! clock.
//!
//! The app's own signals ([`crate::RateLimitInfo`], `Retry-After`) are
//! applied with [`RateLimiter::pause_for`], which holds back every caller
//! sharing the limiter, not just the one that was told.
//!
//! # One budget per connection, wherever the callers run
//!
//! The driver and the engine pace through the [`RateBudget`] trait, not
//! this type: an app counts every request made with a credential, whichever
//! process sent it, so `roster plan` followed by `roster apply`, a restarted
//! worker, `roster serve` and several workers must share one record of
//! recent requests. The engine installs a store-backed budget (the same
//! sliding windows, computed by [`next_turn_ms`] over request times kept in
//! the database); [`RateLimiter`] is the in-memory budget for one process
//! (unit tests, the demo, tools).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

/// What a [`RateBudget`] says to a caller who wants to send a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Send now; the request is already counted.
    Go,
    /// No room yet: ask again after this long.
    Wait(Duration),
}

/// The pacing of one connection's requests, shared by every caller that
/// uses the same credential.
///
/// Implementations count a request when they answer [`Turn::Go`], so a
/// caller that goes must send (or the budget is merely conservative).
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// The documented windows this budget enforces.
    fn windows(&self) -> &[RateWindow];
    /// Takes a turn now if every window has room, else says how long
    /// until one may free up.
    async fn try_turn(&self) -> Turn;
    /// Holds every caller sharing the budget back for `d` from now (the
    /// app asked: `Retry-After`, `X-Rate-Limit-Remaining: 0`).
    async fn hold_for(&self, d: Duration);
}

/// The margin added past each window boundary by default: 1% of the
/// shortest window, at least 5 ms.
pub fn default_margin(windows: &[RateWindow]) -> Duration {
    let shortest = windows
        .iter()
        .filter(|w| w.max_requests > 0)
        .map(|w| w.per)
        .min()
        .unwrap_or_default();
    (shortest / 100).max(Duration::from_millis(5))
}

/// The sliding-window rule on wall-clock milliseconds, for budgets whose
/// log lives outside the process: the earliest instant (ms) a request may
/// go, given when recent requests went (`sent_ms`, any order), a hold
/// (`not_before_ms`) and `now_ms`. A result `<= now_ms` means "now".
pub fn next_turn_ms(
    windows: &[RateWindow],
    margin: Duration,
    sent_ms: &[i64],
    not_before_ms: Option<i64>,
    now_ms: i64,
) -> i64 {
    let margin_ms = duration_ms(margin);
    let mut at = not_before_ms.unwrap_or(now_ms).max(now_ms);
    let mut sent: Vec<i64> = sent_ms.to_vec();
    sent.sort_unstable();
    for w in windows.iter().filter(|w| w.max_requests > 0) {
        let per = duration_ms(w.per);
        let max = w.max_requests as usize;
        let recent: Vec<i64> = sent
            .iter()
            .copied()
            .filter(|t| now_ms.saturating_sub(*t) < per + margin_ms)
            .collect();
        if recent.len() >= max
            && let Some(t) = recent.get(recent.len() - max)
        {
            at = at.max(t + per + margin_ms);
        }
    }
    at
}

/// How long a log of sent requests must be kept for these windows: the
/// longest window plus the margin. Older entries never matter again.
pub fn keep_for(windows: &[RateWindow], margin: Duration) -> Duration {
    windows.iter().map(|w| w.per).max().unwrap_or_default() + margin
}

fn duration_ms(d: Duration) -> i64 {
    // Rounded up: a window a fraction of a millisecond long still counts.
    i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// At most `max_requests` in any span of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateWindow {
    pub max_requests: u32,
    pub per: Duration,
}

impl RateWindow {
    pub const fn new(max_requests: u32, per: Duration) -> Self {
        RateWindow { max_requests, per }
    }

    /// The same window with `per` multiplied by `factor`, for tests that
    /// exercise pacing without waiting a minute.
    pub fn scaled(self, factor: f64) -> Self {
        RateWindow {
            max_requests: self.max_requests,
            per: self.per.mul_f64(factor),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// When recent requests were let through, oldest first.
    sent: VecDeque<Instant>,
    /// Nobody goes before this (set by [`RateLimiter::pause_for`]).
    not_before: Option<Instant>,
}

/// Paces requests to a set of sliding windows. Share one per connection
/// (and per credential): the app counts per caller, not per task.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<RateWindow>,
    margin: Duration,
    state: Mutex<State>,
}

impl RateLimiter {
    /// A limiter for these windows, with a margin of 1% of the shortest
    /// window (at least 5 ms).
    pub fn new(windows: Vec<RateWindow>) -> Self {
        let windows: Vec<RateWindow> = windows.into_iter().filter(|w| w.max_requests > 0).collect();
        let margin = default_margin(&windows);
        RateLimiter {
            windows,
            margin,
            state: Mutex::new(State::default()),
        }
    }

    /// No limits (still honours [`RateLimiter::pause_for`]).
    pub fn unlimited() -> Self {
        RateLimiter::new(Vec::new())
    }

    /// Extra wait added past each window boundary.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    pub fn windows(&self) -> &[RateWindow] {
        &self.windows
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain log; a poisoned lock still holds a usable one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The earliest instant a request may go, given the log.
    fn earliest(&self, state: &State, now: Instant) -> Instant {
        let mut at = state.not_before.unwrap_or(now).max(now);
        for w in &self.windows {
            let max = w.max_requests as usize;
            let recent: Vec<Instant> = state
                .sent
                .iter()
                .copied()
                .filter(|t| now.saturating_duration_since(*t) < w.per + self.margin)
                .collect();
            if recent.len() >= max
                && let Some(t) = recent.get(recent.len() - max)
            {
                at = at.max(*t + w.per + self.margin);
            }
        }
        at
    }

    /// Takes a turn if every window has room (recording the request as
    /// sent), else says how long until one may.
    pub fn take_turn(&self) -> Turn {
        let mut state = self.lock();
        let now = Instant::now();
        let at = self.earliest(&state, now);
        if at > now {
            return Turn::Wait(at - now);
        }
        state.sent.push_back(now);
        let keep = keep_for(&self.windows, self.margin);
        while let Some(&t) = state.sent.front() {
            if now.saturating_duration_since(t) >= keep {
                state.sent.pop_front();
            } else {
                break;
            }
        }
        Turn::Go
    }

    /// Waits until a request may go, then records it as sent.
    pub async fn until_ready(&self) {
        while let Turn::Wait(d) = self.take_turn() {
            tokio::time::sleep(d).await;
        }
    }

    /// Holds every caller back for `d` from now (the app asked us to).
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut state = self.lock();
        state.not_before = Some(state.not_before.map_or(until, |t| t.max(until)));
    }

    /// The shortest time `n` back-to-back requests can take under these
    /// windows (from the first send to the last), ignoring the margin.
    pub fn minimum_span(&self, n: usize) -> Duration {
        let mut times: Vec<Duration> = Vec::with_capacity(n);
        for k in 0..n {
            let mut t = Duration::ZERO;
            for w in &self.windows {
                let max = w.max_requests as usize;
                if k >= max
                    && let Some(prev) = times.get(k - max)
                {
                    t = t.max(*prev + w.per);
                }
            }
            times.push(t);
        }
        times.last().copied().unwrap_or_default()
    }
}

#[async_trait]
impl RateBudget for RateLimiter {
    fn windows(&self) -> &[RateWindow] {
        &self.windows
    }

    async fn try_turn(&self) -> Turn {
        self.take_turn()
    }

    async fn hold_for(&self, d: Duration) {
        self.pause_for(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_millisecond_rule_matches_the_documented_windows() {
        let w = [
            RateWindow::new(5, Duration::from_secs(10)),
            RateWindow::new(20, Duration::from_secs(60)),
        ];
        let margin = Duration::from_millis(100);
        // Five in the last 10 s: the sixth waits for the first to age out.
        let sent = [0, 1_000, 2_000, 3_000, 4_000];
        assert_eq!(next_turn_ms(&w, margin, &sent, None, 5_000), 10_100);
        // Four: room now.
        assert_eq!(next_turn_ms(&w, margin, &sent[1..], None, 5_000), 5_000);
        // Twenty in the last minute, spread out: the long window decides.
        let sent: Vec<i64> = (0..20).map(|i| i * 2_500).collect();
        assert_eq!(next_turn_ms(&w, margin, &sent, None, 50_000), 60_100);
        // A hold from the app wins when it is later.
        assert_eq!(next_turn_ms(&w, margin, &[], Some(70_000), 50_000), 70_000);
        // Old requests no longer count, in any order.
        assert_eq!(
            next_turn_ms(&w, margin, &[4_000, 0, 3_000, 2_000, 1_000], None, 20_000),
            20_000
        );
        assert_eq!(keep_for(&w, margin), Duration::from_millis(60_100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_is_counted_when_taken() {
        let l = RateLimiter::new(vec![RateWindow::new(2, ms(100))]).with_margin(ms(1));
        assert_eq!(l.try_turn().await, Turn::Go);
        assert_eq!(l.try_turn().await, Turn::Go);
        assert_eq!(l.try_turn().await, Turn::Wait(ms(101)));
        l.hold_for(ms(500)).await;
        tokio::time::advance(ms(200)).await;
        assert_eq!(l.try_turn().await, Turn::Wait(ms(300)));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn minimum_span_matches_the_documented_windows() {
        let l = RateLimiter::new(vec![
            RateWindow::new(5, Duration::from_secs(10)),
            RateWindow::new(20, Duration::from_secs(60)),
        ]);
        assert_eq!(l.minimum_span(5), Duration::ZERO);
        assert_eq!(l.minimum_span(6), Duration::from_secs(10));
        assert_eq!(l.minimum_span(20), Duration::from_secs(30));
        assert_eq!(l.minimum_span(21), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_any_window() {
        let l = RateLimiter::new(vec![
            RateWindow::new(3, ms(100)),
            RateWindow::new(5, ms(1000)),
        ])
        .with_margin(ms(1));
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..11 {
            l.until_ready().await;
            sent.push(Instant::now() - start);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_100 = sent[..=i].iter().filter(|s| *t - **s < ms(100)).count();
            let in_1000 = sent[..=i].iter().filter(|s| *t - **s < ms(1000)).count();
            assert!(
                in_100 <= 3 && in_1000 <= 5,
                "request {i} at {t:?}: {sent:?}"
            );
        }
        // 11 requests: 5 by ~100 ms, the next 5 one second after their
        // counterparts, the 11th two seconds in.
        assert!(sent[10] >= l.minimum_span(11));
        assert!(sent[10] < l.minimum_span(11) + ms(20));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everyone_back() {
        let l = RateLimiter::unlimited();
        l.pause_for(ms(500));
        let start = Instant::now();
        l.until_ready().await;
        assert!(Instant::now() - start >= ms(500));
    }
}
