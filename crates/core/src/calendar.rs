//! The company calendar: when a dated joiner or leaver gains or loses
//! access, in the company's time zone.
//!
//! People carry a `start_date` and an `end_date` (HR columns; some IdPs fill
//! them). Dates are local: "ends 2026-12-31" in Paris means something other
//! than in Los Angeles. The [`Calendar`] holds the company's IANA time zone
//! (`[company] time_zone` in `roster.toml`, UTC by default) and
//! `provision_days_before_start`, and [`Calendar::standing`] says where a
//! person stands at `now`:
//!
//! * **Joiners.** A person whose start date is in the future is provisioned
//!   from the local midnight that begins day `start − N`
//!   ([`Calendar::access_from`]; `N` is `provision_days_before_start`, 0 by
//!   default, so access begins the day employment does). Before that the
//!   plan creates and reactivates nothing for them and says when it will
//!   ([`Standing::NotYetStarted`]).
//! * **Leavers.** An end date is the last working day: access closes at the
//!   local midnight that follows it ([`Calendar::access_until`]). Until
//!   then a person the source already marks terminated keeps their access
//!   (they are planned as active); from then on the person is planned as
//!   terminated even while the source still says active or on leave
//!   ([`Standing::Ended`]). The deactivations that follow are ordinary
//!   leaver actions (`left`): every guard judges them as it judges any other.
//!
//! Day boundaries follow the zone's rules, daylight saving included: a day
//! begins at the first instant whose local date is that day (on a day
//! whose midnight a clock change skips, that is the instant after the gap).
//!
//! The zone database is bundled into the binary (jiff's `tzdb-bundle-always`);
//! nothing is read from disk or the network, so this stays pure. The
//! clock is never read here: `now` is a parameter.

use std::fmt;

use jiff::civil;
use jiff::tz::TimeZone;
use time::{Date, Duration, OffsetDateTime};

use crate::model::{EmploymentStatus, Person};

/// A time zone name that is not in the bundled database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "CAL-0001: unknown time zone {name:?}: use an IANA name such as \"Europe/Paris\", \"America/Los_Angeles\" or \"UTC\" (see `[company] time_zone` in roster.toml)"
)]
pub struct CalendarError {
    pub name: String,
}

impl CalendarError {
    pub fn code(&self) -> &'static str {
        "CAL-0001"
    }
}

/// The company's time zone and how early joiners are provisioned.
#[derive(Clone, Debug)]
pub struct Calendar {
    zone: TimeZone,
    zone_name: String,
    provision_days_before_start: u32,
}

impl Default for Calendar {
    /// UTC, provisioning on the start date.
    fn default() -> Self {
        Calendar {
            zone: TimeZone::UTC,
            zone_name: "UTC".to_string(),
            provision_days_before_start: 0,
        }
    }
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.zone_name == other.zone_name
            && self.provision_days_before_start == other.provision_days_before_start
    }
}

/// Where a person stands, by their dates, at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Nothing about the dates changes what the source says.
    Current,
    /// The start date is ahead: nothing is provisioned before `from`.
    NotYetStarted { start: Date, from: OffsetDateTime },
    /// The end date is ahead: access stays until `until`, then closes.
    Leaving { end: Date, until: OffsetDateTime },
    /// The end date has passed: access closed at `at`.
    Ended { end: Date, at: OffsetDateTime },
}

impl Calendar {
    /// A calendar in the IANA zone `zone` (e.g. `"Europe/Paris"`, `"UTC"`).
    pub fn new(zone: &str, provision_days_before_start: u32) -> Result<Calendar, CalendarError> {
        let tz = jiff::tz::db().get(zone.trim()).map_err(|_| CalendarError {
            name: zone.to_string(),
        })?;
        Ok(Calendar {
            zone: tz,
            zone_name: zone.trim().to_string(),
            provision_days_before_start,
        })
    }

    /// The zone's IANA name, as configured.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    pub fn provision_days_before_start(&self) -> u32 {
        self.provision_days_before_start
    }

    /// The first instant of `date` in the company's zone.
    pub fn start_of(&self, date: Date) -> OffsetDateTime {
        let civil = civil::date(date.year() as i16, date.month() as i8, date.day() as i8);
        // `Zoned::start_of_day` handles a midnight a clock change skips.
        let secs = civil
            .to_zoned_datetime(self.zone.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp().as_second())
            // Out of jiff's range (years beyond ±9999): UTC midnight.
            .unwrap_or_else(|_| date.midnight().assume_utc().unix_timestamp());
        OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|_| date.midnight().assume_utc())
    }

    /// The local date at `now` in the company's zone.
    pub fn local_date(&self, now: OffsetDateTime) -> Date {
        let local = jiff::Timestamp::from_second(now.unix_timestamp())
            .map(|t| t.to_zoned_datetime(self.zone.clone()).date());
        match local {
            Ok(d) => Date::from_calendar_date(
                i32::from(d.year()),
                time::Month::try_from(d.month() as u8).unwrap_or(time::Month::January),
                d.day() as u8,
            )
            .unwrap_or(now.date()),
            Err(_) => now.date(),
        }
    }

    /// When a joiner starting on `start` is provisioned: the start of day
    /// `start − provision_days_before_start`, locally.
    pub fn access_from(&self, start: Date) -> OffsetDateTime {
        let day = start
            .checked_sub(Duration::days(i64::from(self.provision_days_before_start)))
            .unwrap_or(start);
        self.start_of(day)
    }

    /// When a leaver whose last day is `end` loses access: the local
    /// midnight that follows it.
    pub fn access_until(&self, end: Date) -> OffsetDateTime {
        match end.next_day() {
            Some(next) => self.start_of(next),
            None => OffsetDateTime::from_unix_timestamp(i64::MAX / 4)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// Where `person` stands at `now` by their dates.
    pub fn standing(&self, person: &Person, now: OffsetDateTime) -> Standing {
        if let Some(end) = person.end_date {
            let at = self.access_until(end);
            if now >= at {
                return Standing::Ended { end, at };
            }
        }
        if let Some(start) = person.start_date
            && person.status != EmploymentStatus::Terminated
        {
            let from = self.access_from(start);
            if now < from {
                return Standing::NotYetStarted { start, from };
            }
        }
        if let Some(end) = person.end_date {
            return Standing::Leaving {
                end,
                until: self.access_until(end),
            };
        }
        Standing::Current
    }

    /// The status `person` is planned with at `now`: terminated once their
    /// end date has passed, active while a terminated person's end date is
    /// still ahead, else what the source says.
    pub fn effective_status(&self, person: &Person, now: OffsetDateTime) -> EmploymentStatus {
        match self.standing(person, now) {
            Standing::Ended { .. } => EmploymentStatus::Terminated,
            Standing::Leaving { .. } if person.status == EmploymentStatus::Terminated => {
                EmploymentStatus::Active
            }
            _ => person.status,
        }
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (provisioned {} day(s) before the start date)",
            self.zone_name, self.provision_days_before_start
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn unknown_zones_are_refused_with_the_fix() {
        let err = Calendar::new("Europe/Pariss", 0).unwrap_err();
        assert_eq!(err.code(), "CAL-0001");
        assert!(err.to_string().contains("Europe/Paris"));
        assert!(Calendar::new("Asia/Tokyo", 3).is_ok());
        assert!(Calendar::new("UTC", 0).is_ok());
    }

    #[test]
    fn a_day_begins_at_local_midnight() {
        let paris = Calendar::new("Europe/Paris", 0).unwrap();
        // Winter: UTC+1.
        assert_eq!(
            paris.start_of(date!(2027 - 01 - 01)),
            datetime!(2026-12-31 23:00 UTC)
        );
        // Summer: UTC+2.
        assert_eq!(
            paris.start_of(date!(2026 - 07 - 01)),
            datetime!(2026-06-30 22:00 UTC)
        );
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_after_the_gap() {
        // Santiago moved clocks from 00:00 to 01:00 on 2022-09-11.
        let cal = Calendar::new("America/Santiago", 0).unwrap();
        let start = cal.start_of(date!(2022 - 09 - 11));
        // 01:00 local at UTC-3 is 04:00 UTC.
        assert_eq!(start, datetime!(2022-09-11 04:00 UTC));
    }

    #[test]
    fn local_dates_follow_the_zone() {
        let la = Calendar::new("America/Los_Angeles", 0).unwrap();
        assert_eq!(
            la.local_date(datetime!(2026-12-08 05:00 UTC)),
            date!(2026 - 12 - 07)
        );
    }
}
