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

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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
        let shortest = windows.iter().map(|w| w.per).min().unwrap_or_default();
        let margin = (shortest / 100).max(Duration::from_millis(5));
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

    /// Waits until a request may go, then records it as sent.
    pub async fn until_ready(&self) {
        loop {
            let wait_until = {
                let mut state = self.lock();
                let now = Instant::now();
                let at = self.earliest(&state, now);
                if at <= now {
                    state.sent.push_back(now);
                    let keep =
                        self.windows.iter().map(|w| w.per).max().unwrap_or_default() + self.margin;
                    while let Some(&t) = state.sent.front() {
                        if now.saturating_duration_since(t) >= keep {
                            state.sent.pop_front();
                        } else {
                            break;
                        }
                    }
                    return;
                }
                at
            };
            tokio::time::sleep_until(wait_until).await;
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

#[cfg(test)]
mod tests {
    use super::*;

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
