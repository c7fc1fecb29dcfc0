//! The connector interface, the engine-side driver that runs it, and one
//! implementation per provisioning path: the Expensify Integration Server
//! ([`expensify`]), SCIM 2.0 ([`scim`]), BILL Spend & Expense's v3 API
//! ([`bill_spend`]), app assignment through Okta ([`okta_assign`]),
//! membership in allowlisted IdP groups (Okta, Entra ID, OneLogin:
//! [`idp_group`]) and
//! Spendesk's read-only API ([`spendesk`]), and the declarative REST
//! connector any simple user API can be described for as data ([`rest`]).
//! [`registry::build`] makes the one the app's catalog record names for the
//! path a connection takes; [`oauth`] is the client-credentials token
//! exchange the REST and SCIM connectors share; the `testkit` feature adds
//! the conformance suite every connector runs against its simulator.
//!
//! # Concepts
//!
//! * A [`Connector`] talks to one configured app instance (a *connection*).
//!   It answers **one request per call**: one page of accounts, one batch of
//!   actions. It never loops, sleeps, retries or paces itself.
//! * The [`driver`] owns the read loop: it exhausts pagination
//!   ([`driver::read_all`]), retrying a failed page, and paces every call
//!   through the connection's [`RateBudget`] (a [`limiter::RateLimiter`]
//!   configured from the connector's documented limits,
//!   [`Capabilities::rate_limits`], or the engine's store-backed budget).
//!   Writes with retries belong to the engine's executor;
//!   [`driver::apply_once`] is the single paced pass without retries.
//! * [`retry::RetryPolicy`] is the one retry policy (what is retryable,
//!   backoff with jitter, `Retry-After`), used by reads and the executor.
//! * Rate-limit information flows back as data ([`RateLimitInfo`],
//!   [`ConnectorError::RateLimited`]) for the driver and the executor to
//!   act on.
//! * Request and response types are small structs marked
//!   `#[non_exhaustive]` with constructors, so fields can be added without
//!   breaking connectors or callers (the lesson of baton's V2 interfaces).
//!
//! # Invariants
//!
//! * [`ApplyResponse::results`] has exactly one entry per requested action,
//!   in the same order.
//! * One connector call makes at most one HTTP request, so the driver's
//!   limiter sees every request the app sees. The exceptions say so and
//!   declare a share of the app's limit to match: [`okta_assign`] (a
//!   lookup, then the assignment) and [`idp_group`] (a token, the group
//!   lookup once, the change, the IdP's provisioning outcome).
//! * Secrets never appear in `Debug` output or error messages
//!   ([`SecretString`]).
//!
//! # Public contracts
//!
//! [`PageToken`] values are opaque: only the connector that issued one may
//! interpret it. [`ConnectorError::code`] strings (`CONN-0001`...) are
//! stable and may be matched on by operators and scripts.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod bill_spend;
pub mod driver;
pub mod egress;
mod error;
pub mod expensify;
pub mod http;
pub mod idp_group;
pub mod limiter;
pub mod oauth;
pub mod okta_assign;
pub mod registry;
pub mod rest;
pub mod retry;
pub mod scim;
mod secret;
pub mod spendesk;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use roster_core::{Account, Action, ConnectionId, Operation};

pub use error::ConnectorError;
pub use limiter::{RateBudget, RateLimiter, RateWindow, Turn};
pub use secret::SecretString;

/// An opaque continuation token issued by a connector.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageToken(String);

impl PageToken {
    pub fn new(s: impl Into<String>) -> Self {
        PageToken(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageToken({})", self.0)
    }
}

/// How one operation is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationSupport {
    pub supported: bool,
    /// The most actions (or, for `Read`, page items) one call may carry.
    pub max_batch: u32,
}

impl OperationSupport {
    pub fn supported(max_batch: u32) -> Self {
        OperationSupport {
            supported: true,
            max_batch: max_batch.max(1),
        }
    }
    pub fn unsupported() -> Self {
        OperationSupport {
            supported: false,
            max_batch: 0,
        }
    }
}

/// What a connector can do, and under which documented limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    pub operations: BTreeMap<Operation, OperationSupport>,
    /// The app's documented request limits; all apply at once.
    pub rate_limits: Vec<RateWindow>,
    /// The app can compute a change without making it.
    pub dry_run: bool,
    /// A `Deactivate` action with no attributes needs the account's current
    /// attributes (e.g. Expensify: which policies to remove it from); the
    /// driver fills them from a fresh read before applying.
    pub deactivate_needs_current_attributes: bool,
    /// Writes are upserts keyed by address (Expensify): a create for an
    /// address some account already holds would overwrite that account.
    /// Plans never create over a held address; the executor reads the app
    /// again before re-sending such a create (a retry comes later than the
    /// plan's read) and refuses it when the address is taken by an account
    /// that is not the action's person's.
    pub upserts_by_address: bool,
    /// A change the app finally refused (a dead letter) is a person's
    /// task, carrying the failure: the `idp` path, where the IdP took the
    /// change but its provisioning into the app failed, so someone must
    /// fix the mapping or make the change by hand.
    pub failures_to_people: bool,
}

impl Capabilities {
    /// Nothing supported, no limits.
    pub fn new() -> Self {
        Capabilities {
            operations: BTreeMap::new(),
            rate_limits: Vec::new(),
            dry_run: false,
            deactivate_needs_current_attributes: false,
            upserts_by_address: false,
            failures_to_people: false,
        }
    }

    pub fn with(mut self, op: Operation, support: OperationSupport) -> Self {
        self.operations.insert(op, support);
        self
    }

    pub fn with_rate_limits(mut self, limits: Vec<RateWindow>) -> Self {
        self.rate_limits = limits;
        self
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn with_deactivate_needs_current_attributes(mut self, needs: bool) -> Self {
        self.deactivate_needs_current_attributes = needs;
        self
    }

    pub fn with_upserts_by_address(mut self, upserts: bool) -> Self {
        self.upserts_by_address = upserts;
        self
    }

    pub fn with_failures_to_people(mut self, yes: bool) -> Self {
        self.failures_to_people = yes;
        self
    }

    pub fn support(&self, op: Operation) -> OperationSupport {
        self.operations
            .get(&op)
            .copied()
            .unwrap_or_else(OperationSupport::unsupported)
    }

    pub fn supports(&self, op: Operation) -> bool {
        self.support(op).supported
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// One check performed by [`Connector::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationCheck {
    /// Short and stable, e.g. `credentials`, `policy:ABC123`.
    pub name: String,
    pub passed: bool,
    /// What was found, and what to do about it if it failed.
    pub detail: String,
}

impl ValidationCheck {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationCheck {
            name: name.into(),
            passed: true,
            detail: detail.into(),
        }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationCheck {
            name: name.into(),
            passed: false,
            detail: detail.into(),
        }
    }
}

/// One thing a probe saw a live tenant do.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Observation {
    /// The catalog field the observation speaks to (`scim.available`,
    /// `pagination.method`, `rate_limits.header_names`), or a probe name
    /// of its own (`probe.auth`).
    pub field: String,
    /// What was seen, as the catalog would write it.
    pub value: serde_json::Value,
    /// How it was seen (the request and the answer).
    pub detail: String,
}

/// Whether the configured credentials can do what roster needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validation {
    pub checks: Vec<ValidationCheck>,
}

impl Validation {
    pub fn new(checks: Vec<ValidationCheck>) -> Self {
        Validation { checks }
    }
    /// True when every check passed (and there was at least one).
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

/// The app's own word on its rate limit, when it gives one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// Requests left in the current window.
    pub remaining: Option<u32>,
    /// When the window resets, from now.
    pub reset_after: Option<Duration>,
}

impl RateLimitInfo {
    pub fn new(remaining: Option<u32>, reset_after: Option<Duration>) -> Self {
        RateLimitInfo {
            remaining,
            reset_after,
        }
    }
}

/// A request for one page of accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListRequest {
    /// `None` for the first page.
    pub page_token: Option<PageToken>,
    /// A hint; connectors clamp it to what the app allows.
    pub page_size: Option<u32>,
}

impl ListRequest {
    pub fn first() -> Self {
        ListRequest::default()
    }
    pub fn after(token: PageToken) -> Self {
        ListRequest {
            page_token: Some(token),
            page_size: None,
        }
    }
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }
}

/// One page of accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    pub accounts: Vec<Account>,
    /// `None` on the last page.
    pub next: Option<PageToken>,
    /// The app's total, if it reports one; the driver checks the listing
    /// against it.
    pub total: Option<u64>,
    pub rate_limit: Option<RateLimitInfo>,
}

impl Page {
    pub fn new(accounts: Vec<Account>, next: Option<PageToken>) -> Self {
        Page {
            accounts,
            next,
            total: None,
            rate_limit: None,
        }
    }
    pub fn with_total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }
    pub fn with_rate_limit(mut self, info: RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }
}

/// A batch of actions to apply in one call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyRequest {
    pub actions: Vec<Action>,
    /// Ask the app to compute the change without making it. Connectors
    /// without [`Capabilities::dry_run`] answer every action `Skipped`.
    pub dry_run: bool,
}

impl ApplyRequest {
    pub fn new(actions: Vec<Action>, dry_run: bool) -> Self {
        ApplyRequest { actions, dry_run }
    }
}

/// What happened to one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionResult {
    /// The app accepted the change (or, in a dry run, would).
    Applied,
    /// The app (or the connector, before sending) refused it.
    Failed { reason: String, retryable: bool },
    /// Deliberately not done, e.g. nothing to do or not supported.
    Skipped { reason: String },
}

impl ActionResult {
    pub fn failed(reason: impl Into<String>, retryable: bool) -> Self {
        ActionResult::Failed {
            reason: reason.into(),
            retryable,
        }
    }
    pub fn skipped(reason: impl Into<String>) -> Self {
        ActionResult::Skipped {
            reason: reason.into(),
        }
    }
    pub fn is_applied(&self) -> bool {
        matches!(self, ActionResult::Applied)
    }
}

/// The answer to an [`ApplyRequest`]: one result per action, same order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyResponse {
    pub results: Vec<ActionResult>,
    pub rate_limit: Option<RateLimitInfo>,
}

impl ApplyResponse {
    pub fn new(results: Vec<ActionResult>) -> Self {
        ApplyResponse {
            results,
            rate_limit: None,
        }
    }
    pub fn with_rate_limit(mut self, info: RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }
}

/// Two listings of the same account key, as [`Connector::merge_duplicate`]
/// resolved them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The second listing was folded into the first.
    Merged,
    /// The two disagree and can't be combined: the listing probably moved
    /// under the reader, so the read is marked incomplete.
    Conflict,
}

/// One configured app instance. Stateless per call: everything a call
/// needs is in its request, so calls may be retried or run concurrently.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connection this connector serves.
    fn id(&self) -> &ConnectionId;

    /// What it can do. Cheap; called by the driver before every run.
    fn capabilities(&self) -> Capabilities;

    /// Checks credentials and permissions. Failed checks come back as data;
    /// `Err` means the check itself could not be made.
    async fn validate(&self) -> Result<Validation, ConnectorError>;

    /// Read-only checks of what the live tenant actually does, for
    /// `roster apps probe`: discovery, auth, paging, rate-limit headers.
    /// Makes no change. Connectors without a probe return an empty list.
    async fn probe(&self) -> Result<Vec<Observation>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Reads one page of accounts.
    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError>;

    /// Applies one batch; `Err` means the whole call failed and nothing can
    /// be said per action.
    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError>;

    /// Folds a second listing of the same account key into the first. Apps
    /// that list one account in several places (Expensify: once per policy)
    /// override this. The default accepts identical duplicates only.
    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        if *existing == duplicate {
            Merge::Merged
        } else {
            Merge::Conflict
        }
    }
}
