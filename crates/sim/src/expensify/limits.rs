//! Sliding-window rate limits, the way the vendor documents them: "at most
//! 5 requests per 10 s and at most 20 requests per 60 s". Each window counts
//! the accepted requests in the last `per`; a request is admitted only if
//! every window has room.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// At most `max_requests` in any span of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    pub max_requests: u32,
    pub per: Duration,
}

impl RateWindow {
    /// Expensify's documented pair: 5 per 10 s and 20 per 60 s.
    pub fn expensify() -> Vec<RateWindow> {
        vec![
            RateWindow {
                max_requests: 5,
                per: Duration::from_secs(10),
            },
            RateWindow {
                max_requests: 20,
                per: Duration::from_secs(60),
            },
        ]
    }
}

/// The accepted-request log of one caller.
#[derive(Debug)]
pub(crate) struct Windows {
    windows: Vec<RateWindow>,
    accepted: VecDeque<Instant>,
}

impl Windows {
    pub(crate) fn new(windows: Vec<RateWindow>) -> Self {
        Windows {
            windows,
            accepted: VecDeque::new(),
        }
    }

    /// For the first window: its size, the accepted requests inside it at
    /// `now`, and when its oldest one leaves (for `X-Rate-Limit-*`).
    pub(crate) fn usage(&self, now: Instant) -> Option<(u32, u32, Duration)> {
        let w = self.windows.first()?;
        let inside: Vec<&Instant> = self
            .accepted
            .iter()
            .filter(|t| now.duration_since(**t) < w.per)
            .collect();
        let reset = inside
            .first()
            .map(|t| (**t + w.per).saturating_duration_since(now))
            .unwrap_or(w.per);
        Some((w.max_requests, inside.len() as u32, reset))
    }

    /// Admits a request at `now`, or says how long until one would be.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let longest = self.windows.iter().map(|w| w.per).max().unwrap_or_default();
        while let Some(&t) = self.accepted.front() {
            if now.duration_since(t) >= longest {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
        let mut wait = Duration::ZERO;
        for w in &self.windows {
            let max = w.max_requests as usize;
            // Accepted requests strictly inside (now - per, now].
            let inside: Vec<&Instant> = self
                .accepted
                .iter()
                .filter(|t| now.duration_since(**t) < w.per)
                .collect();
            if inside.len() >= max {
                // The window frees a slot when the request `max` places back
                // leaves it.
                let idx = inside.len() - max;
                if let Some(t) = inside.get(idx) {
                    wait = wait.max((**t + w.per).saturating_duration_since(now));
                }
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        self.accepted.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_windows_apply() {
        let ms = Duration::from_millis;
        let mut w = Windows::new(vec![
            RateWindow {
                max_requests: 2,
                per: ms(100),
            },
            RateWindow {
                max_requests: 3,
                per: ms(1000),
            },
        ]);
        let t0 = Instant::now();
        assert!(w.admit(t0).is_ok());
        assert!(w.admit(t0).is_ok());
        let wait = w.admit(t0 + ms(10)).unwrap_err();
        assert_eq!(wait, ms(90));
        assert!(w.admit(t0 + ms(100)).is_ok());
        // The long window is now full: 3 in the last second.
        let wait = w.admit(t0 + ms(300)).unwrap_err();
        assert_eq!(wait, ms(700));
        assert!(w.admit(t0 + ms(1000)).is_ok());
    }
}
