//! Sources of truth for people: the [`Source`] interface beside the
//! connectors' [`roster_connectors::Connector`], the one table that maps
//! every identity provider's lifecycle states to roster's
//! [`EmploymentStatus`] ([`lifecycle`]), and one implementation per IdP:
//! Okta ([`okta`]), Microsoft Entra ID through Graph ([`entra`]), Google
//! Workspace ([`google`]) and OneLogin ([`onelogin`]).
//!
//! # Concepts
//!
//! * A [`Source`] reads one configured IdP tenant (a *source*, named by a
//!   [`ConnectionId`]). Like a connector it answers **one request per
//!   call**: one page of a full read ([`Source::read_page`]) or one page of
//!   an incremental read ([`Source::read_changes`]), or one step of reading
//!   one named person ([`Source::read_person`], for an event hook that only
//!   names who changed). It never loops,
//!   sleeps, retries or paces itself; [`read::read_all`] and
//!   [`read::read_changes`] do (the engine will own that loop, as it owns
//!   the connectors' through `roster_connectors::driver`).
//! * A full read is a walk of several listings (Okta: users, then the
//!   DEPROVISIONED users its default listing hides, then groups and their
//!   members). Its [`PageToken`] is an opaque, versioned record of where the
//!   walk is, in the manner of baton's pagination bag, so one call still
//!   makes one request.
//! * A full read also yields the [`SyncCursor`] that an incremental read
//!   starts from, taken *before* the listing so nothing that changes during
//!   the read is missed (changes seen twice are harmless: a changed person is
//!   re-read whole).
//! * An incremental read returns the people who changed (re-read whole,
//!   with their groups), the ids that were removed, and the next cursor. An
//!   expired cursor is [`SourceError::CursorExpired`] (`SRC-0008`), and
//!   more changed people than an incremental read re-reads one by one (a
//!   lockout storm) is [`SourceError::TooManyChanges`] (`SRC-0010`); for
//!   both ([`SourceError::needs_full_read`]) do a full read, whose result
//!   then passes the engine's shrink guard like any other.
//! * Rate-limit information flows back as data ([`SourceRateInfo`]) and
//!   [`SourceError::RateLimited`].
//!
//! # Invariants
//!
//! * Every person carries the IdP's raw state and the mapped
//!   [`Lifecycle`]; the mapping lives in [`lifecycle`] and nowhere else.
//!   Only a state that means "left" maps to
//!   [`EmploymentStatus::Terminated`]: locked out, password expired and
//!   suspended people keep their accounts, so a lockout storm never
//!   becomes mass deprovisioning. An unknown state never terminates.
//! * One source call makes at most one request to the directory API, so
//!   the budget sees every request the IdP counts. (Fetching an OAuth access
//!   token from the authorization server is the one exception: another
//!   host, another limit, once an hour.)
//! * Secrets never appear in `Debug` output or error messages.
//!
//! # Configuration and least-privilege credentials
//!
//! Each source documents its configuration keys and the narrowest
//! credential that can read it: [`okta`] (a read-only admin's API token,
//! or an OAuth service app with `okta.users.read`, `okta.groups.read`,
//! `okta.logs.read`), [`entra`] (an app registration with the application
//! permissions `User.Read.All` and `GroupMember.Read.All`, admin-consented;
//! nothing that can write), [`google`] (a service account with
//! domain-wide delegation of the two directory read-only scopes),
//! [`onelogin`] (an API credential with the *Read users* scope).
//!
//! Revoking a leaver's sessions ([`Source::revoke_sessions`]) is the one
//! write, opt-in per source, and needs one more permission: Okta
//! `okta.users.manage` (an OAuth service app; an API token's admin needs a
//! role that may clear user sessions), Entra `User.RevokeSessions.All`
//! (application), Google `admin.directory.user.security` (delegated to the
//! service account), OneLogin an API credential with *Manage users*.
//!
//! # Public contracts
//!
//! [`PageToken`] and [`SyncCursor`] values are opaque: only the source that
//! issued one may interpret it; a cursor may be stored and handed back
//! across process restarts. [`SourceError::code`] strings (`SRC-0001`...)
//! are stable.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod entra;
mod error;
pub mod google;
mod http;
mod jwt;
pub mod lifecycle;
pub mod okta;
pub mod onelogin;
pub mod read;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use roster_core::{ConnectionId, Email, EmployeeId, EmploymentStatus};
use time::Date;

pub use error::SourceError;
pub use lifecycle::{Lifecycle, LifecycleFlag};
pub use read::{ReadOptions, SourceChanges, SourceRead, read_all, read_changes, read_people};
pub use roster_connectors::{PageToken, RateBudget, RateLimiter, RateWindow, Validation};

/// Which identity provider a source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Okta,
    Entra,
    Google,
    OneLogin,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Okta => "okta",
            SourceKind::Entra => "entra",
            SourceKind::Google => "google",
            SourceKind::OneLogin => "onelogin",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an incremental read starts. Opaque and storable: the engine
/// persists it after each read and hands it back.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SyncCursor(String);

impl SyncCursor {
    pub fn new(s: impl Into<String>) -> Self {
        SyncCursor(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SyncCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Graph's deltaLink is a URL with a token in it; it grants nothing
        // without the credential, but there's no reason to print it whole.
        let s = &self.0;
        if s.len() > 48 {
            write!(f, "SyncCursor({}…)", &s[..s.floor_char_boundary(48)])
        } else {
            write!(f, "SyncCursor({s})")
        }
    }
}

/// Who a person's manager is, as the IdP says it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManagerRef {
    Email(Email),
    /// The IdP's id of the manager (resolved to an address by
    /// [`read::read_all`] when the manager is among the people read).
    Id(String),
}

/// One person as an identity provider describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourcePerson {
    /// The IdP's stable id (Okta `00u…`, Entra object id).
    pub id: String,
    pub employee_id: Option<EmployeeId>,
    /// The primary address (Okta `profile.email`, Entra `mail`, falling back
    /// to the sign-in name when that is an address).
    pub email: Option<Email>,
    /// Other addresses that identify the person (login, secondEmail,
    /// userPrincipalName, proxyAddresses), without the primary.
    pub aliases: Vec<Email>,
    pub first_name: String,
    pub last_name: String,
    pub department: Option<String>,
    pub cost_center: Option<String>,
    pub manager: Option<ManagerRef>,
    /// Group names, sorted, without duplicates.
    pub groups: Vec<String>,
    /// Further profile attributes (custom ones included), by the IdP's
    /// names.
    pub attributes: BTreeMap<String, String>,
    /// The IdP's own state, verbatim (`LOCKED_OUT`, `accountEnabled=false`).
    pub raw_state: String,
    /// The state in roster's terms, from [`lifecycle`].
    pub lifecycle: Lifecycle,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
}

impl SourcePerson {
    /// A person with an id and a mapped state; everything else empty.
    pub fn new(id: impl Into<String>, raw_state: impl Into<String>, lifecycle: Lifecycle) -> Self {
        SourcePerson {
            id: id.into(),
            employee_id: None,
            email: None,
            aliases: Vec::new(),
            first_name: String::new(),
            last_name: String::new(),
            department: None,
            cost_center: None,
            manager: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
            raw_state: raw_state.into(),
            lifecycle,
            start_date: None,
            end_date: None,
        }
    }

    /// The mapped employment status.
    pub fn status(&self) -> EmploymentStatus {
        self.lifecycle.status
    }

    /// The person as roster's core knows people, for the engine's import.
    ///
    /// A person needs an address; one without is an error naming the IdP
    /// id. Without an employee id, `<kind>:<IdP id>` stands in (stable, and
    /// never equal to an HR employee id). A manager known only by an id
    /// that the read could not resolve is left out. The IdP's own view is
    /// kept as attributes policy rules can select on: `idp_id`,
    /// `idp_state` (the raw state) and, when set, `idp_flag`
    /// ([`LifecycleFlag`]).
    pub fn to_person(&self, kind: SourceKind) -> Result<roster_core::Person, String> {
        let email = self.email.clone().ok_or_else(|| {
            format!(
                "{kind} user {} has no email address; roster cannot correlate them",
                self.id
            )
        })?;
        let mut attributes = self.attributes.clone();
        attributes.insert("idp_id".into(), self.id.clone());
        attributes.insert("idp_state".into(), self.raw_state.clone());
        if let Some(f) = self.lifecycle.flag {
            attributes.insert("idp_flag".into(), f.as_str().into());
        }
        Ok(roster_core::Person {
            employee_id: self
                .employee_id
                .clone()
                .unwrap_or_else(|| EmployeeId::new(format!("{kind}:{}", self.id))),
            email,
            aliases: self.aliases.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            department: self.department.clone().unwrap_or_default(),
            cost_center: self.cost_center.clone().unwrap_or_default(),
            manager_email: match &self.manager {
                Some(ManagerRef::Email(e)) => Some(e.clone()),
                _ => None,
            },
            status: self.lifecycle.status,
            start_date: self.start_date,
            end_date: self.end_date,
            groups: self.groups.clone(),
            attributes,
        })
    }
}

/// A person gone from the directory (Graph's `@removed`, an Okta user
/// deleted after deactivation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Removal {
    pub id: String,
    /// The IdP's own word (`changed`, `deleted`, `404`).
    pub raw_state: String,
    pub lifecycle: Lifecycle,
}

impl Removal {
    pub fn new(id: impl Into<String>, raw_state: impl Into<String>, lifecycle: Lifecycle) -> Self {
        Removal {
            id: id.into(),
            raw_state: raw_state.into(),
            lifecycle,
        }
    }
}

/// A person's membership of a group, for sources that list groups apart
/// from people. The read loop folds them into [`SourcePerson::groups`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Membership {
    pub person_id: String,
    pub group: String,
}

impl Membership {
    pub fn new(person_id: impl Into<String>, group: impl Into<String>) -> Self {
        Membership {
            person_id: person_id.into(),
            group: group.into(),
        }
    }
}

/// The IdP's own word on its rate limit (Okta's `X-Rate-Limit-*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceRateInfo {
    /// The window's size in requests.
    pub limit: Option<u32>,
    /// Requests left in the current window.
    pub remaining: Option<u32>,
    /// When the window resets, from now.
    pub reset_after: Option<Duration>,
}

impl SourceRateInfo {
    pub fn new(limit: Option<u32>, remaining: Option<u32>, reset_after: Option<Duration>) -> Self {
        SourceRateInfo {
            limit,
            remaining,
            reset_after,
        }
    }
}

/// What a source can do, and under which limits.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SourceCapabilities {
    pub kind: SourceKind,
    /// [`Source::read_changes`] works.
    pub incremental: bool,
    /// An incremental read reports people the IdP deleted. When it cannot
    /// (OneLogin's `updated_since`), only a full read finds a deleted
    /// leaver, so the engine reads such a source whole at full runs and
    /// reads its changes only between them.
    pub incremental_removals: bool,
    /// The largest page the IdP serves.
    pub max_page_size: u32,
    /// The windows the read loop paces to (already the configured share
    /// of the IdP's limit).
    pub rate_limits: Vec<RateWindow>,
    /// Of the limit the IdP reports in its headers, the share roster may
    /// use before it waits for the window to reset (0 < share ≤ 1).
    pub header_share: f64,
}

impl SourceCapabilities {
    pub fn new(kind: SourceKind) -> Self {
        SourceCapabilities {
            kind,
            incremental: false,
            incremental_removals: true,
            max_page_size: 100,
            rate_limits: Vec::new(),
            header_share: 1.0,
        }
    }
    pub fn with_incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }
    pub fn with_incremental_removals(mut self, sees: bool) -> Self {
        self.incremental_removals = sees;
        self
    }
    pub fn with_max_page_size(mut self, n: u32) -> Self {
        self.max_page_size = n.max(1);
        self
    }
    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }
    pub fn with_header_share(mut self, share: f64) -> Self {
        self.header_share = share;
        self
    }
}

/// A request for one page of a full read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageRequest {
    /// `None` for the first page.
    pub page_token: Option<PageToken>,
    /// A hint; sources clamp it to what the IdP allows.
    pub page_size: Option<u32>,
}

impl PageRequest {
    pub fn first() -> Self {
        PageRequest::default()
    }
    pub fn after(token: PageToken) -> Self {
        PageRequest {
            page_token: Some(token),
            page_size: None,
        }
    }
    pub fn with_page_size(mut self, size: Option<u32>) -> Self {
        self.page_size = size;
        self
    }
}

/// One page of a full read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeoplePage {
    pub people: Vec<SourcePerson>,
    pub memberships: Vec<Membership>,
    /// `None` on the last page.
    pub next: Option<PageToken>,
    /// Where an incremental read may start after this full read; given on
    /// (at least) the last page.
    pub cursor: Option<SyncCursor>,
    pub rate_limit: Option<SourceRateInfo>,
}

/// A request for one page of an incremental read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangesRequest {
    pub cursor: SyncCursor,
    /// `None` for the first page of this incremental read.
    pub page_token: Option<PageToken>,
    pub page_size: Option<u32>,
}

impl ChangesRequest {
    pub fn since(cursor: SyncCursor) -> Self {
        ChangesRequest {
            cursor,
            page_token: None,
            page_size: None,
        }
    }
    pub fn with_page_token(mut self, token: Option<PageToken>) -> Self {
        self.page_token = token;
        self
    }
    pub fn with_page_size(mut self, size: Option<u32>) -> Self {
        self.page_size = size;
        self
    }
}

/// One page of an incremental read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangesPage {
    /// People who changed, each read whole.
    pub changed: Vec<SourcePerson>,
    /// The complete group memberships of the people in `changed` (of this
    /// or earlier pages of the same read).
    pub memberships: Vec<Membership>,
    pub removed: Vec<Removal>,
    /// `None` on the last page.
    pub next: Option<PageToken>,
    /// The cursor for the next incremental read; given on the last page.
    pub cursor: Option<SyncCursor>,
    pub rate_limit: Option<SourceRateInfo>,
}

/// A request for one step of reading one named person whole (a hook
/// named them; the engine never trusts the hook for what they are now).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PersonRequest {
    /// The IdP's id of the person.
    pub id: String,
    /// `None` for the first step.
    pub page_token: Option<PageToken>,
}

impl PersonRequest {
    pub fn new(id: impl Into<String>) -> Self {
        PersonRequest {
            id: id.into(),
            page_token: None,
        }
    }
    pub fn with_page_token(mut self, token: Option<PageToken>) -> Self {
        self.page_token = token;
        self
    }
}

/// One configured identity-provider tenant. Stateless per call apart from
/// a cached access token: everything a call needs is in its request.
#[async_trait]
pub trait Source: Send + Sync {
    /// The source this reads (its name in the configuration).
    fn id(&self) -> &ConnectionId;

    fn capabilities(&self) -> SourceCapabilities;

    /// Checks credentials and permissions. Failed checks come back as
    /// data; `Err` means the check itself could not be made.
    async fn validate(&self) -> Result<Validation, SourceError>;

    /// One page of a full read.
    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError>;

    /// One page of an incremental read. [`SourceError::CursorExpired`]
    /// means the cursor can't be used any more: do a full read.
    async fn read_changes(&self, req: ChangesRequest) -> Result<ChangesPage, SourceError>;

    /// Ends one person's sign-in sessions in the IdP (and, where the IdP
    /// can, revokes the tokens it issued them), so apps that trust the
    /// IdP (SSO-only, JIT) stop admitting them: one request, never
    /// retried here (the engine retries under its policy). `person_id`
    /// is the IdP's own id ([`SourcePerson::id`]).
    ///
    /// This is the one write a source makes. It needs a write permission
    /// the read-only credential lacks (each source's docs name the
    /// narrowest), so the engine calls it only for a source configured to
    /// (`revoke_sessions = true`), and only from an authenticated
    /// offboarding of that one person. The default is
    /// [`SourceError::Unsupported`].
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let _ = person_id;
        Err(SourceError::Unsupported {
            what: "revoking sessions".into(),
        })
    }

    /// One step of reading one person whole, by the IdP's id: the person
    /// (in `changed`, their groups in `memberships`) or their removal (the
    /// IdP no longer knows them), one request per call; `next` while more
    /// steps remain (a person's groups), no cursor. Sources that cannot
    /// answer [`SourceError::Unsupported`]: read whole instead.
    async fn read_person(&self, req: PersonRequest) -> Result<ChangesPage, SourceError> {
        let _ = req;
        Err(SourceError::Unsupported {
            what: "reading one person".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_person_becomes_a_core_person() {
        let mut p = SourcePerson::new(
            "00u1",
            "LOCKED_OUT",
            lifecycle::map(SourceKind::Okta, "LOCKED_OUT"),
        );
        assert!(p.to_person(SourceKind::Okta).unwrap_err().contains("00u1"));
        p.email = Email::parse("ann@acme.example").ok();
        p.manager = Some(ManagerRef::Id("00u9".into()));
        p.groups = vec!["Finance".into()];
        let person = p.to_person(SourceKind::Okta).unwrap();
        assert_eq!(person.employee_id.as_str(), "okta:00u1");
        assert_eq!(person.status, EmploymentStatus::Active);
        assert_eq!(person.manager_email, None);
        assert_eq!(person.groups, vec!["Finance".to_string()]);
        assert_eq!(person.attribute("idp_state").as_deref(), Some("LOCKED_OUT"));
        assert_eq!(person.attribute("idp_flag").as_deref(), Some("locked_out"));
        p.employee_id = Some(EmployeeId::new("E7"));
        assert_eq!(
            p.to_person(SourceKind::Okta).unwrap().employee_id.as_str(),
            "E7"
        );
    }
}
