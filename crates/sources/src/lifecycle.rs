//! Every identity provider's lifecycle states, mapped to roster's
//! [`EmploymentStatus`] in one table. No other module decides what a
//! state means; sources call [`map`] with the IdP's raw state.
//!
//! # The rule
//!
//! Only a state that means the person **left** maps to `terminated`, and
//! only `terminated` takes access away. A state that says something about
//! the *credential* (locked out, password expired, recovery, awaiting a
//! reset) keeps the person `active`: a lockout storm (a password-spraying
//! attack locks out half the company) must never become mass
//! deprovisioning. A *suspension* (an administrator blocked sign-in,
//! possibly for a while: parental leave, an investigation) maps to
//! `leave`, which [`EmploymentStatus::Leave`] defines as "still employed,
//! access kept unless policy says otherwise": rules that do not name
//! `status` keep granting to people on leave, and a policy that wants
//! suspended people out says so with a rule on `status = "leave"`. A state
//! this table does not know is kept `active` and flagged, never guessed to
//! be a leaver.
//!
//! | IdP | raw state | status | flag | why |
//! |---|---|---|---|---|
//! | Okta | `STAGED` | active | `not_activated` | created, not yet activated: a joiner |
//! | Okta | `PROVISIONED` | active | `not_activated` | activated, the person has not set a password yet: a joiner |
//! | Okta | `ACTIVE` | active | | |
//! | Okta | `RECOVERY` | active | `credential` | the person is resetting a password |
//! | Okta | `PASSWORD_EXPIRED` | active | `credential` | a credential state, not employment |
//! | Okta | `LOCKED_OUT` | active | `locked_out` | too many failed sign-ins; lockout storms must not deprovision |
//! | Okta | `SUSPENDED` | leave | `suspended` | sign-in blocked by an admin, app assignments kept (Okta's own meaning) |
//! | Okta | `DEPROVISIONED` | terminated | | deactivated: Okta removes app assignments; the person left |
//! | Okta | user gone (404 after deletion) | terminated | `removed` | Okta deletes only deactivated users |
//! | Entra | `accountEnabled=true` | active | | |
//! | Entra | `accountEnabled=false` | terminated | `sign_in_blocked` | Entra has no suspension: blocking sign-in is its deactivation (Microsoft's offboarding step, and what HR-driven provisioning writes for a leaver) |
//! | Entra | `@removed` `changed` | terminated | `restorable` | deleted, restorable for 30 days: if restored, the person reappears with the same id and roster reactivates |
//! | Entra | `@removed` `deleted` | terminated | `removed` | permanently deleted |
//! | Google | `active` | active | | neither suspended nor archived |
//! | Google | `suspended` | leave | `suspended` | sign-in blocked, data kept |
//! | Google | `archived` | terminated | | Archived User licences exist for people who left |
//! | Google | user gone (`deleted`) | terminated | `removed` | |
//! | OneLogin | `0` unactivated | active | `not_activated` | a joiner |
//! | OneLogin | `1` active | active | | |
//! | OneLogin | `2` suspended | leave | `suspended` | |
//! | OneLogin | `3` locked | active | `locked_out` | |
//! | OneLogin | `4` password expired | active | `credential` | |
//! | OneLogin | `5` awaiting password reset | active | `credential` | |
//! | OneLogin | `7` password pending | active | `not_activated` | the person has not set a password yet |
//! | OneLogin | `8` security questions required | active | `credential` | |
//! | OneLogin | user gone (deleted) | terminated | `removed` | OneLogin has no "left" status: deletion is how a leaver shows |
//! | any | anything else (Okta's future states, OneLogin `6`, `9`) | active | `unknown_state` | never guess a leaver |
//!
//! Entra is the one IdP where a blocked sign-in terminates: it has no
//! other deactivation, and no lockout ever sets `accountEnabled=false`
//! (Entra's smart lockout is a sign-in throttle, not a state). A company
//! that blocks sign-in for leave and deletes leavers can say so in policy
//! (rules on `status`), or the engine can be told per source; the table
//! says what the IdP's state means by default.

use std::fmt;

use roster_core::EmploymentStatus;

use crate::SourceKind;

/// Something about a person's IdP state worth showing beside the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleFlag {
    /// Created but not activated, or no password set yet: a joiner.
    NotActivated,
    /// A credential state (password expired, recovery, reset pending).
    Credential,
    /// Locked out after failed sign-ins.
    LockedOut,
    /// Sign-in blocked by an administrator; accounts kept.
    Suspended,
    /// Entra: sign-in blocked (its deactivation).
    SignInBlocked,
    /// Deleted, but restorable (Entra's `@removed: changed`).
    Restorable,
    /// Gone from the directory.
    Removed,
    /// A state this table does not know.
    UnknownState,
}

impl LifecycleFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleFlag::NotActivated => "not_activated",
            LifecycleFlag::Credential => "credential",
            LifecycleFlag::LockedOut => "locked_out",
            LifecycleFlag::Suspended => "suspended",
            LifecycleFlag::SignInBlocked => "sign_in_blocked",
            LifecycleFlag::Restorable => "restorable",
            LifecycleFlag::Removed => "removed",
            LifecycleFlag::UnknownState => "unknown_state",
        }
    }
}

impl fmt::Display for LifecycleFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raw state in roster's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub status: EmploymentStatus,
    pub flag: Option<LifecycleFlag>,
    /// Why, in words, for plans and `roster person show`.
    pub reason: String,
}

impl Lifecycle {
    pub fn terminates(&self) -> bool {
        self.status == EmploymentStatus::Terminated
    }
}

use EmploymentStatus::{Active, Leave, Terminated};
use LifecycleFlag::*;

/// One row: IdP, raw state (as the source spells it, see [`map`]), status,
/// flag, reason.
type Row = (
    SourceKind,
    &'static str,
    EmploymentStatus,
    Option<LifecycleFlag>,
    &'static str,
);

/// The table. Raw states are matched case-insensitively. Removal rows use
/// the raw states [`REMOVED`] and (Entra) `@removed:changed` /
/// `@removed:deleted`.
#[rustfmt::skip]
pub const TABLE: &[Row] = &[
    (SourceKind::Okta, "STAGED", Active, Some(NotActivated), "created in Okta, not yet activated (a joiner)"),
    (SourceKind::Okta, "PROVISIONED", Active, Some(NotActivated), "activated in Okta, password not set yet (a joiner)"),
    (SourceKind::Okta, "ACTIVE", Active, None, "active in Okta"),
    (SourceKind::Okta, "RECOVERY", Active, Some(Credential), "resetting a password in Okta (still employed)"),
    (SourceKind::Okta, "PASSWORD_EXPIRED", Active, Some(Credential), "password expired in Okta (still employed)"),
    (SourceKind::Okta, "LOCKED_OUT", Active, Some(LockedOut), "locked out of Okta after failed sign-ins (still employed; a lockout never removes access)"),
    (SourceKind::Okta, "SUSPENDED", Leave, Some(Suspended), "suspended in Okta: sign-in blocked, assignments kept (treated as leave)"),
    (SourceKind::Okta, "DEPROVISIONED", Terminated, None, "deactivated in Okta (left)"),
    (SourceKind::Okta, REMOVED, Terminated, Some(Removed), "deleted from Okta (Okta deletes only deactivated users)"),
    (SourceKind::Entra, "accountEnabled=true", Active, None, "enabled in Entra ID"),
    (SourceKind::Entra, "accountEnabled=false", Terminated, Some(SignInBlocked), "sign-in blocked in Entra ID (its deactivation: left)"),
    (SourceKind::Entra, "@removed:changed", Terminated, Some(Restorable), "deleted from Entra ID (restorable for 30 days; a restore reactivates)"),
    (SourceKind::Entra, "@removed:deleted", Terminated, Some(Removed), "permanently deleted from Entra ID"),
    (SourceKind::Google, "active", Active, None, "active in Google Workspace"),
    (SourceKind::Google, "suspended", Leave, Some(Suspended), "suspended in Google Workspace: sign-in blocked, data kept (treated as leave)"),
    (SourceKind::Google, "archived", Terminated, None, "archived in Google Workspace (an Archived User: left)"),
    (SourceKind::Google, REMOVED, Terminated, Some(Removed), "deleted from Google Workspace"),
    (SourceKind::OneLogin, "0", Active, Some(NotActivated), "unactivated in OneLogin (a joiner)"),
    (SourceKind::OneLogin, "1", Active, None, "active in OneLogin"),
    (SourceKind::OneLogin, "2", Leave, Some(Suspended), "suspended in OneLogin (treated as leave)"),
    (SourceKind::OneLogin, "3", Active, Some(LockedOut), "locked in OneLogin (still employed; a lockout never removes access)"),
    (SourceKind::OneLogin, "4", Active, Some(Credential), "password expired in OneLogin (still employed)"),
    (SourceKind::OneLogin, "5", Active, Some(Credential), "awaiting a password reset in OneLogin (still employed)"),
    (SourceKind::OneLogin, "7", Active, Some(NotActivated), "password pending in OneLogin (a joiner)"),
    (SourceKind::OneLogin, "8", Active, Some(Credential), "security questions required in OneLogin (still employed)"),
    (SourceKind::OneLogin, REMOVED, Terminated, Some(Removed), "deleted from OneLogin"),
];

/// The raw state of a person who is gone from the directory.
pub const REMOVED: &str = "removed";

/// Maps one raw state. Unknown states are `active` with
/// [`LifecycleFlag::UnknownState`]: never a leaver by guesswork.
pub fn map(kind: SourceKind, raw: &str) -> Lifecycle {
    let raw = raw.trim();
    TABLE
        .iter()
        .find(|(k, state, ..)| *k == kind && state.eq_ignore_ascii_case(raw))
        .map(|(_, _, status, flag, reason)| Lifecycle {
            status: *status,
            flag: *flag,
            reason: (*reason).to_string(),
        })
        .unwrap_or_else(|| Lifecycle {
            status: Active,
            flag: Some(UnknownState),
            reason: format!(
                "{kind} state {raw:?} is not in roster's lifecycle table; kept as still employed"
            ),
        })
}

/// Entra's raw state for `accountEnabled`.
pub fn entra_enabled(enabled: bool) -> &'static str {
    if enabled {
        "accountEnabled=true"
    } else {
        "accountEnabled=false"
    }
}

/// Google's raw state: archived wins over suspended (an archived user is
/// also suspended).
pub fn google_state(suspended: bool, archived: bool) -> &'static str {
    match (archived, suspended) {
        (true, _) => "archived",
        (false, true) => "suspended",
        (false, false) => "active",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented state, with what it must map to. The table above
    /// must agree row for row; a new row needs a line here.
    #[test]
    fn every_state_maps_exactly() {
        let cases: &[(SourceKind, &str, EmploymentStatus, Option<LifecycleFlag>)] = &[
            (SourceKind::Okta, "STAGED", Active, Some(NotActivated)),
            (SourceKind::Okta, "PROVISIONED", Active, Some(NotActivated)),
            (SourceKind::Okta, "ACTIVE", Active, None),
            (SourceKind::Okta, "RECOVERY", Active, Some(Credential)),
            (
                SourceKind::Okta,
                "PASSWORD_EXPIRED",
                Active,
                Some(Credential),
            ),
            (SourceKind::Okta, "LOCKED_OUT", Active, Some(LockedOut)),
            (SourceKind::Okta, "SUSPENDED", Leave, Some(Suspended)),
            (SourceKind::Okta, "DEPROVISIONED", Terminated, None),
            (SourceKind::Okta, REMOVED, Terminated, Some(Removed)),
            (SourceKind::Okta, "locked_out", Active, Some(LockedOut)),
            (SourceKind::Entra, entra_enabled(true), Active, None),
            (
                SourceKind::Entra,
                entra_enabled(false),
                Terminated,
                Some(SignInBlocked),
            ),
            (
                SourceKind::Entra,
                "@removed:changed",
                Terminated,
                Some(Restorable),
            ),
            (
                SourceKind::Entra,
                "@removed:deleted",
                Terminated,
                Some(Removed),
            ),
            (SourceKind::Google, google_state(false, false), Active, None),
            (
                SourceKind::Google,
                google_state(true, false),
                Leave,
                Some(Suspended),
            ),
            (
                SourceKind::Google,
                google_state(false, true),
                Terminated,
                None,
            ),
            (
                SourceKind::Google,
                google_state(true, true),
                Terminated,
                None,
            ),
            (SourceKind::Google, REMOVED, Terminated, Some(Removed)),
            (SourceKind::OneLogin, "0", Active, Some(NotActivated)),
            (SourceKind::OneLogin, "1", Active, None),
            (SourceKind::OneLogin, "2", Leave, Some(Suspended)),
            (SourceKind::OneLogin, "3", Active, Some(LockedOut)),
            (SourceKind::OneLogin, "4", Active, Some(Credential)),
            (SourceKind::OneLogin, "5", Active, Some(Credential)),
            (SourceKind::OneLogin, "7", Active, Some(NotActivated)),
            (SourceKind::OneLogin, "8", Active, Some(Credential)),
            (SourceKind::OneLogin, REMOVED, Terminated, Some(Removed)),
            // Unknown states never terminate.
            (SourceKind::OneLogin, "6", Active, Some(UnknownState)),
            (SourceKind::OneLogin, "9", Active, Some(UnknownState)),
            (
                SourceKind::Okta,
                "DELETED_SOMEHOW",
                Active,
                Some(UnknownState),
            ),
            (SourceKind::Entra, "", Active, Some(UnknownState)),
        ];
        for (kind, raw, status, flag) in cases {
            let got = map(*kind, raw);
            assert_eq!(
                (got.status, got.flag),
                (*status, *flag),
                "{kind} {raw:?}: {}",
                got.reason
            );
            assert!(!got.reason.is_empty());
        }
        // Every table row is covered by a case above.
        for (kind, state, ..) in TABLE {
            assert!(
                cases
                    .iter()
                    .any(|(k, r, ..)| k == kind && r.eq_ignore_ascii_case(state)),
                "{kind} {state} has no test case"
            );
        }
    }

    #[test]
    fn only_states_that_mean_left_terminate() {
        let terminating: Vec<(SourceKind, &str)> = TABLE
            .iter()
            .filter(|(_, _, s, ..)| *s == Terminated)
            .map(|(k, s, ..)| (*k, *s))
            .collect();
        assert_eq!(
            terminating,
            vec![
                (SourceKind::Okta, "DEPROVISIONED"),
                (SourceKind::Okta, REMOVED),
                (SourceKind::Entra, "accountEnabled=false"),
                (SourceKind::Entra, "@removed:changed"),
                (SourceKind::Entra, "@removed:deleted"),
                (SourceKind::Google, "archived"),
                (SourceKind::Google, REMOVED),
                (SourceKind::OneLogin, REMOVED),
            ]
        );
        // No row that locks, expires or suspends terminates.
        for (kind, state, status, flag, _) in TABLE {
            if matches!(
                flag,
                Some(LockedOut | Credential | Suspended | NotActivated)
            ) {
                assert_ne!(*status, Terminated, "{kind} {state}");
            }
        }
    }
}
