//! The one retry policy: which connector failures are worth another
//! attempt, how long to wait before it, and when to stop.
//!
//! Two places retry, and both ask this module: the driver's reads
//! ([`crate::driver::read_all`] re-asks for a page that failed) and the
//! engine's executor, which owns every write (a failed action becomes a
//! task due again at `now + delay`, so the wait survives a restart). No
//! other code computes a backoff or interprets `Retry-After`; the engine
//! configures one [`RetryPolicy`] and hands it to both.
//!
//! The rules:
//!
//! * **What is retryable** ([`Verdict::of`]): rate limits, transient
//!   failures (5xx, timeouts, dropped connections) and garbled answers.
//!   Credentials or configuration refused are [`Verdict::Refused`]: trying
//!   again cannot help until a person fixes them (the executor keeps such
//!   work queued without spending attempts). Everything else is final.
//! * **How long** ([`RetryPolicy::backoff`]): exponential from
//!   `initial_backoff`, doubling per attempt, capped at `max_backoff`, with
//!   jitter (a uniform draw between half and all of the delay) so workers
//!   and parallel runs don't retry in lockstep. Never sooner than the app's
//!   `Retry-After`, which connectors read in either of its forms
//!   ([`parse_retry_after`]: seconds or an HTTP date).
//! * **When to stop** ([`RetryPolicy::next`]): after `max_attempts`, on a
//!   failure that is not retryable, or when the app asks for a pause longer
//!   than `max_retry_after`: a vendor answering "come back tomorrow" (or a
//!   broken header promising years) must not stall every caller sharing
//!   the connection's budget, so the work fails with the app's request in
//!   its reason instead.
//!
//! Pacing is not here: every attempt, first or not, takes a turn in the
//! connection's [`crate::RateBudget`] (see [`crate::driver::wait_turn`]).
//! A `Retry-After` is also a hold on that budget (`hold` in [`Next::Retry`]),
//! because the app asked everyone to wait, not only the caller who heard it.

use std::fmt;
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::ConnectorError;

/// How hard roster tries, for reads and writes alike.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per page read or per action, the first included.
    pub max_attempts: u32,
    /// The first retry's delay; doubles with every attempt.
    pub initial_backoff: Duration,
    /// No backoff delay is longer than this.
    pub max_backoff: Duration,
    /// Draw each delay between half and all of the backoff.
    pub jitter: bool,
    /// A `Retry-After` longer than this ends the retries.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about two minutes (1 s, 2 s, ... 64 s, each
    /// between half and all of that): long enough to ride out a vendor's
    /// brief outage or a rate-limit window, short enough that a read of a
    /// dead app fails within minutes. The executor's waits live in the
    /// database, so its longer gaps cost nothing while they pass.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            jitter: true,
            max_retry_after: Duration::from_secs(15 * 60),
        }
    }
}

/// What a failed call means for retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Credentials or configuration refused: nothing was judged, and
    /// nothing changes until a person fixes the connection.
    Refused,
    /// May pass later.
    Retryable {
        /// The app's requested pause, if it gave one.
        retry_after: Option<Duration>,
        /// The app may have applied the change before the failure reached
        /// us (a timeout or a lost answer): a re-send must be harmless, and
        /// the executor checks the app before re-sending what is not an
        /// upsert.
        maybe_applied: bool,
    },
    /// Trying again cannot help.
    Fatal,
}

impl Verdict {
    /// Classifies a whole-call failure. [`ConnectorError::is_retryable`]
    /// is true exactly for [`Verdict::Retryable`].
    pub fn of(e: &ConnectorError) -> Verdict {
        match e {
            ConnectorError::Unauthorized { .. } | ConnectorError::Config { .. } => Verdict::Refused,
            ConnectorError::RateLimited { retry_after } => Verdict::Retryable {
                retry_after: *retry_after,
                maybe_applied: false,
            },
            // A timeout or a lost response may come after the app applied
            // the change; a garbled body usually is a transport accident.
            ConnectorError::Transient { .. } | ConnectorError::Protocol { .. } => {
                Verdict::Retryable {
                    retry_after: None,
                    maybe_applied: true,
                }
            }
            _ => Verdict::Fatal,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after `delay` (at least the app's `Retry-After`).
    Retry {
        delay: Duration,
        /// The app's `Retry-After`: every caller sharing the connection's
        /// budget waits it out, not only this one.
        hold: Option<Duration>,
    },
    /// Stop.
    GiveUp(GiveUp),
}

/// Why retrying stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The failure is not one a later attempt can fix.
    NotRetryable,
    /// `attempts` of at most `max` were made.
    OutOfAttempts { attempts: u32, max: u32 },
    /// The app asked for a pause longer than the policy's ceiling.
    RetryAfterTooLong { asked: Duration, ceiling: Duration },
}

impl GiveUp {
    /// `error`'s message with why no further attempt was made.
    pub fn describe(&self, error: &dyn fmt::Display) -> String {
        match self {
            GiveUp::NotRetryable => error.to_string(),
            GiveUp::OutOfAttempts { attempts, max } if *attempts > 1 || *max > 1 => {
                format!("{error} (gave up after {attempts} of {max} attempts)")
            }
            GiveUp::OutOfAttempts { .. } => error.to_string(),
            GiveUp::RetryAfterTooLong { asked, ceiling } => format!(
                "{error} (the app asked to wait {} s, longer than the {} s roster waits; try \
                 again later)",
                asked.as_secs(),
                ceiling.as_secs()
            ),
        }
    }
}

impl RetryPolicy {
    /// One attempt, never a retry: for callers that want each call's
    /// answer as it is (setting up a simulator, a single paced call).
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before attempt `attempt + 1`, given attempt `attempt`
    /// (1-based; 0 counts as 1) failed: `initial_backoff · 2^(attempt-1)`,
    /// capped at `max_backoff`, jittered between half and all of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        if self.jitter && !base.is_zero() {
            let half = base / 2;
            half + half.mul_f64(rand::rng().random::<f64>())
        } else {
            base
        }
    }

    /// After attempt `attempt` (1-based) of at most `max_attempts` failed
    /// in a way a later attempt may fix, with the app's `Retry-After` if it
    /// gave one. `max_attempts` is the caller's: the executor keeps the
    /// bound each task was enqueued with.
    pub fn next(&self, attempt: u32, max_attempts: u32, retry_after: Option<Duration>) -> Next {
        if let Some(asked) = retry_after
            && asked > self.max_retry_after
        {
            return Next::GiveUp(GiveUp::RetryAfterTooLong {
                asked,
                ceiling: self.max_retry_after,
            });
        }
        if attempt >= max_attempts {
            return Next::GiveUp(GiveUp::OutOfAttempts {
                attempts: attempt,
                max: max_attempts,
            });
        }
        Next::Retry {
            delay: self.backoff(attempt).max(retry_after.unwrap_or_default()),
            hold: self.hold(retry_after),
        }
    }

    /// The pause every caller sharing the connection's budget takes after
    /// the app answered with `retry_after`: all of it, unless it is over
    /// the ceiling (then no one waits for it; the work that heard it gives
    /// up instead). Applies whether or not the caller retries: the app
    /// asked everyone.
    pub fn hold(&self, retry_after: Option<Duration>) -> Option<Duration> {
        retry_after.filter(|after| *after <= self.max_retry_after)
    }

    /// After attempt `attempt` of a call failed with `error`, within this
    /// policy's `max_attempts`.
    pub fn after_error(&self, attempt: u32, error: &ConnectorError) -> Next {
        match Verdict::of(error) {
            Verdict::Retryable { retry_after, .. } => {
                self.next(attempt, self.max_attempts, retry_after)
            }
            Verdict::Refused | Verdict::Fatal => Next::GiveUp(GiveUp::NotRetryable),
        }
    }
}

/// A `Retry-After` value as a wait from `now`, in either of its forms (RFC
/// 9110 §10.2.3): delta-seconds (`120`) or an HTTP-date (`Sun, 06 Nov 1994
/// 08:49:37 GMT`, and the obsolete RFC 850 and asctime forms). A date in
/// the past means "now" (zero); an unreadable value is `None` (ignored:
/// the backoff alone decides).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            jitter: false,
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_inside_bounds() {
        let p = RetryPolicy {
            max_attempts: 20,
            ..plain()
        };
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_millis(1_000));
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(1_000));
        let j = RetryPolicy {
            jitter: true,
            ..p.clone()
        };
        let mut distinct = std::collections::BTreeSet::new();
        for attempt in 1..8 {
            let full = p.backoff(attempt);
            for _ in 0..20 {
                let d = j.backoff(attempt);
                assert!(d >= full / 2 && d <= full, "{attempt}: {d:?} vs {full:?}");
                distinct.insert(d);
            }
        }
        assert!(distinct.len() > 7, "jitter varies the delays");
    }

    #[test]
    fn retry_after_is_a_floor_and_a_hold() {
        let p = plain();
        let after = Duration::from_secs(7);
        assert_eq!(
            p.next(1, 4, Some(after)),
            Next::Retry {
                delay: after,
                hold: Some(after)
            }
        );
        // A short Retry-After does not shorten the backoff.
        assert_eq!(
            p.next(3, 4, Some(Duration::from_millis(10))),
            Next::Retry {
                delay: Duration::from_millis(400),
                hold: Some(Duration::from_millis(10))
            }
        );
        assert_eq!(
            p.next(1, 4, None),
            Next::Retry {
                delay: Duration::from_millis(100),
                hold: None
            }
        );
    }

    #[test]
    fn gives_up_after_the_last_attempt_or_an_excessive_retry_after() {
        let p = plain();
        assert_eq!(
            p.next(4, 4, None),
            Next::GiveUp(GiveUp::OutOfAttempts {
                attempts: 4,
                max: 4
            })
        );
        // The caller's bound wins (a task keeps the bound it was queued with).
        assert!(matches!(p.next(4, 6, None), Next::Retry { .. }));
        assert_eq!(
            p.hold(Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            p.hold(Some(Duration::from_secs(61))),
            None,
            "over the ceiling"
        );
        assert_eq!(p.hold(None), None);
        let asked = Duration::from_secs(61);
        let stop = p.next(1, 4, Some(asked));
        assert_eq!(
            stop,
            Next::GiveUp(GiveUp::RetryAfterTooLong {
                asked,
                ceiling: Duration::from_secs(60)
            })
        );
        let Next::GiveUp(why) = stop else {
            unreachable!()
        };
        let e = ConnectorError::RateLimited {
            retry_after: Some(asked),
        };
        let text = why.describe(&e);
        assert!(
            text.starts_with("CONN-0002") && text.contains("61 s"),
            "{text}"
        );
        assert_eq!(
            GiveUp::OutOfAttempts {
                attempts: 3,
                max: 3
            }
            .describe(&"CONN-0003 x"),
            "CONN-0003 x (gave up after 3 of 3 attempts)"
        );
        assert_eq!(
            GiveUp::OutOfAttempts {
                attempts: 1,
                max: 1
            }
            .describe(&"CONN-0003 x"),
            "CONN-0003 x"
        );
    }

    #[test]
    fn only_failures_a_later_attempt_can_fix_are_retried() {
        let p = plain();
        let transient = ConnectorError::Transient {
            detail: "503".into(),
        };
        assert_eq!(
            Verdict::of(&transient),
            Verdict::Retryable {
                retry_after: None,
                maybe_applied: true
            }
        );
        assert!(matches!(p.after_error(1, &transient), Next::Retry { .. }));
        assert!(matches!(
            p.after_error(4, &transient),
            Next::GiveUp(GiveUp::OutOfAttempts { .. })
        ));
        let limited = ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            Verdict::of(&limited),
            Verdict::Retryable {
                retry_after: Some(Duration::from_secs(7)),
                maybe_applied: false
            }
        );
        for refused in [
            ConnectorError::Unauthorized { detail: "x".into() },
            ConnectorError::Config { detail: "x".into() },
        ] {
            assert_eq!(Verdict::of(&refused), Verdict::Refused);
            assert_eq!(
                p.after_error(1, &refused),
                Next::GiveUp(GiveUp::NotRetryable)
            );
        }
        for fatal in [
            ConnectorError::Vendor {
                code: "410".into(),
                detail: "bad".into(),
            },
            ConnectorError::ListingChanged { detail: "x".into() },
            ConnectorError::Unsupported {
                operation: roster_core::Operation::Create,
            },
        ] {
            assert_eq!(Verdict::of(&fatal), Verdict::Fatal);
            assert_eq!(p.after_error(1, &fatal), Next::GiveUp(GiveUp::NotRetryable));
        }
        // The error's own flag agrees with the policy.
        for e in [
            transient,
            limited,
            ConnectorError::Protocol { detail: "x".into() },
            ConnectorError::Unauthorized { detail: "x".into() },
            ConnectorError::Vendor {
                code: "4".into(),
                detail: "x".into(),
            },
        ] {
            assert_eq!(
                e.is_retryable(),
                matches!(Verdict::of(&e), Verdict::Retryable { .. }),
                "{e}"
            );
        }
        assert_eq!(
            RetryPolicy::no_retries()
                .after_error(1, &ConnectorError::Transient { detail: "x".into() }),
            Next::GiveUp(GiveUp::OutOfAttempts {
                attempts: 1,
                max: 1
            })
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = now - Duration::from_secs(30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
