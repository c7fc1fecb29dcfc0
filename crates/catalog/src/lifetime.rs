//! When a stored credential reaches the lifetime its app's record gives.
//!
//! A record's `[credentials] max_days` says how long the app lets an API
//! credential live (Spendesk: API keys last at most a year). roster knows
//! when it stored each secret's current value; [`expiry`] puts the two
//! together so `roster secret list` can warn before the vendor turns the
//! credential off and every run of that connection starts failing.
//!
//! Pure: the caller passes the stored time and the clock.

use serde::Serialize;

use crate::model::App;

/// Warn this many days before a credential reaches its lifetime.
pub const WARN_DAYS: i64 = 30;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Where a stored credential stands against its app's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryState {
    /// More than [`WARN_DAYS`] left.
    Fine,
    /// [`WARN_DAYS`] or fewer left: rotate it.
    Soon,
    /// Past its lifetime: the vendor has probably turned it off.
    Expired,
}

/// A stored credential's expiry, by its app's most cautious claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// The lifetime the record gives, in days.
    pub max_days: u32,
    /// When the lifetime ends, in Unix milliseconds.
    pub expires_ms: i64,
    /// Whole days from now until then; negative once past.
    pub days_left: i64,
    pub state: ExpiryState,
}

/// When a credential stored at `stored_ms` for `app` reaches its lifetime,
/// seen at `now_ms`. `None` when the record gives no lifetime.
pub fn expiry(app: &App, stored_ms: i64, now_ms: i64) -> Option<Expiry> {
    let max_days = app.credentials.as_ref()?.shortest_max_days()?;
    let expires_ms = stored_ms.saturating_add(i64::from(max_days) * DAY_MS);
    let left_ms = expires_ms - now_ms;
    // Round toward "sooner": 1.5 days left is 1 day left.
    let days_left = left_ms.div_euclid(DAY_MS);
    let state = if left_ms <= 0 {
        ExpiryState::Expired
    } else if days_left <= WARN_DAYS {
        ExpiryState::Soon
    } else {
        ExpiryState::Fine
    };
    Some(Expiry {
        max_days,
        expires_ms,
        days_left,
        state,
    })
}

/// One warning line for a credential that is due (soon or past), naming
/// the secret, the connection, the app and the source of the lifetime.
pub fn warning(secret: &str, connection: &str, app: &App, e: &Expiry) -> Option<String> {
    let why = app
        .credentials
        .as_ref()
        .and_then(|c| c.max_days.as_ref())
        .map(|f| {
            let c = f.preferred();
            match &c.note {
                Some(n) => format!("{} [{}]: {n}", app.short(), c.source),
                None => format!("{} [{}]", app.short(), c.source),
            }
        })
        .unwrap_or_default();
    match e.state {
        ExpiryState::Fine => None,
        ExpiryState::Soon => Some(format!(
            "secret {secret:?} (connection {connection}) reaches its {}-day lifetime in {} day(s): store a new one with `roster secret set {secret}` ({why})",
            e.max_days, e.days_left
        )),
        ExpiryState::Expired => Some(format!(
            "secret {secret:?} (connection {connection}) is past its {}-day lifetime ({} day(s) ago): the app has probably revoked it; store a new one with `roster secret set {secret}` ({why})",
            e.max_days, -e.days_left
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    const NOW: i64 = 1_800_000_000_000;

    fn spendesk() -> App {
        Catalog::builtin().unwrap().get("spendesk").unwrap().clone()
    }

    #[test]
    fn a_year_old_spendesk_key_is_expired_and_an_eleven_month_one_is_due() {
        let app = spendesk();
        let fresh = expiry(&app, NOW - 10 * DAY_MS, NOW).unwrap();
        assert_eq!((fresh.max_days, fresh.days_left), (365, 355));
        assert_eq!(fresh.state, ExpiryState::Fine);
        assert!(warning("sp", "spendesk", &app, &fresh).is_none());

        let due = expiry(&app, NOW - 340 * DAY_MS, NOW).unwrap();
        assert_eq!((due.days_left, due.state), (25, ExpiryState::Soon));
        let w = warning("sp", "spendesk", &app, &due).unwrap();
        assert!(
            w.contains("in 25 day(s)") && w.contains("roster secret set sp"),
            "{w}"
        );
        assert!(w.contains("at most one year"), "names why: {w}");

        let past = expiry(&app, NOW - 400 * DAY_MS, NOW).unwrap();
        assert_eq!(past.state, ExpiryState::Expired);
        assert!(
            warning("sp", "spendesk", &app, &past)
                .unwrap()
                .contains("35 day(s) ago")
        );
    }

    #[test]
    fn the_boundaries_are_conservative() {
        let app = spendesk();
        // Exactly at the lifetime: expired, not "0 days left".
        let at = expiry(&app, NOW - 365 * DAY_MS, NOW).unwrap();
        assert_eq!(at.state, ExpiryState::Expired);
        // Half a day left rounds down to 0 and is due.
        let half = expiry(&app, NOW - 365 * DAY_MS + DAY_MS / 2, NOW).unwrap();
        assert_eq!((half.days_left, half.state), (0, ExpiryState::Soon));
        // 30 days and a bit left: due; 31: fine.
        let thirty = expiry(&app, NOW - 335 * DAY_MS + 1, NOW).unwrap();
        assert_eq!(thirty.state, ExpiryState::Soon);
        let thirty_one = expiry(&app, NOW - 334 * DAY_MS + 1, NOW).unwrap();
        assert_eq!(thirty_one.state, ExpiryState::Fine);
    }

    #[test]
    fn no_lifetime_no_expiry() {
        let c = Catalog::builtin().unwrap();
        assert!(expiry(c.get("slack").unwrap(), 0, NOW).is_none());
        // Chainguard's tokens may never expire: no max_days, no warning.
        assert!(expiry(c.get("chainguard").unwrap(), 0, NOW).is_none());
    }
}
