//! The connector conformance suite (cargo feature `testkit`).
//!
//! Every connector runs the same three checks against its simulator,
//! through the [`driver`](crate::driver) and the one
//! [`RetryPolicy`], as the engine would (writes through
//! [`apply_resending`], the in-memory stand-in for the executor's retries):
//!
//! * [`exhaust_pagination`]: a clean multi-page read is complete and lists
//!   exactly what the app holds; a read whose later pages repeat, shift,
//!   arrive truncated or carry an error inside an HTTP 200 is **never**
//!   reported complete (or fails outright).
//! * [`round_trip`]: create → read → update → deactivate → read, each step
//!   confirmed in the app's own record. A read-only connector instead shows
//!   that writes are refused without a request, and that the simulated
//!   human's changes (JIT creation, a deactivation by hand) are seen by the
//!   next read.
//! * [`fault_schedule`]: a deterministic hostile sequence — 429 with and
//!   without `Retry-After`, 5xx, a timeout, an error inside an HTTP 200, a
//!   dropped connection, a lost response, a truncated page — during writes
//!   and a read; every change must land **exactly once** and the read must
//!   come back complete.
//!
//! # The oracle rule
//!
//! Verdicts come from the simulator's own record ([`Oracle`]: its state,
//! effect log and counters), never from what the connector or driver says
//! about itself. A connector that reports `Applied` for a change the app
//! never made fails; so does one that makes a change twice.
//!
//! Each simulator has an [`Oracle`] here ([`ScimOracle`], [`BillOracle`],
//! [`OktaOracle`], [`SpendeskOracle`], [`ExpensifyOracle`],
//! [`EntraGroupOracle`], [`OktaGroupOracle`], [`OneLoginRoleOracle`],
//! [`RestAppOracle`] for the five REST simulators); a new
//! connector adds one for its simulator and calls the three checks from its
//! tests. Checks return `Err(description)` rather than panicking, so the
//! suite is usable outside `#[test]` too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use roster_core::{
    AccountKey, Action, AttributeChange, ConnectionId, Email, EmployeeId, Observed, Operation,
};
use roster_sim::common::{Effect, EffectKind, Fault};

use crate::driver::{self, DriverOptions, Progress};
use crate::retry::{Next, RetryPolicy};
use crate::{ActionResult, Connector, ConnectorError, RateBudget, RateLimiter};

/// A fault the suite asks for; each oracle maps it to its simulator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuiteFault {
    RateLimited {
        retry_after: bool,
    },
    ServerError,
    /// Slower than the connector's timeout.
    Timeout,
    TruncatedBody,
    ErrorIn200,
    DroppedConnection,
    LoseResponse,
    RepeatPage,
    ShiftListing,
}

/// One account as the app itself records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleAccount {
    /// The key the connector is expected to use for it.
    pub key: String,
    /// Lower-cased address.
    pub email: String,
    pub active: bool,
    /// In roster's vocabulary, for the attributes the suite checks.
    pub attributes: BTreeMap<String, String>,
}

/// The simulator's side of the suite.
pub trait Oracle: Send + Sync {
    /// Every account the app holds (an account that is gone is absent).
    fn accounts(&self) -> Vec<OracleAccount>;
    /// The changes made through the API to the account with this address,
    /// in order, normalised to `created`, `updated`, `deactivated`,
    /// `reactivated`.
    fn api_effects(&self, email: &str) -> Vec<String>;
    fn requests(&self) -> u64;
    fn rate_limit_violations(&self) -> u64;
    /// Request *k* from now gets `faults[k]`. False if the simulator can't
    /// produce one of them (the check is then skipped).
    fn schedule(&self, faults: &[SuiteFault]) -> bool;
    /// Every request from now on gets `fault`. False if unsupported.
    fn set_standing(&self, fault: SuiteFault) -> bool;
    fn clear_faults(&self);
    /// The simulated human creates an account by first login (JIT).
    /// False if the app has no such path.
    fn console_create(&self, _email: &str) -> bool {
        false
    }
    /// The simulated human deactivates an account in the admin console.
    fn console_deactivate(&self, _email: &str) -> bool {
        false
    }
}

/// Builds the desired attributes for an address.
pub type AttributesFor = Box<dyn Fn(&str) -> BTreeMap<String, String> + Send + Sync>;

/// A connector under test, with what the suite needs to drive it.
pub struct Subject {
    pub connector: Arc<dyn Connector>,
    pub oracle: Arc<dyn Oracle>,
    /// The full desired attribute set for creating `email`.
    pub create_attributes: AttributesFor,
    /// One attribute to change in the round trip, and its new value
    /// (`None`: the connector can't update).
    pub update: Option<(String, String)>,
    /// Addresses the suite may create (at least 4), e.g. people who exist
    /// in the IdP but have no app account yet.
    pub new_emails: Vec<String>,
    /// A page-size hint that makes the seeded data span several pages.
    pub page_size: Option<u32>,
    /// How reads and re-sends retry.
    pub retry: RetryPolicy,
    /// One limiter for the whole suite, as the engine keeps one per
    /// connection: the app counts every request, not per read.
    limiter: RateLimiter,
}

impl Subject {
    pub fn new(connector: Arc<dyn Connector>, oracle: Arc<dyn Oracle>) -> Self {
        Subject {
            oracle,
            create_attributes: Box::new(|_| BTreeMap::new()),
            update: None,
            new_emails: (0..4)
                .map(|i| format!("suite-new{i}@example.com"))
                .collect(),
            page_size: None,
            retry: fast_retry(),
            // A wider margin than production's: scaled test windows are
            // short, and two busy cores delay requests between our limiter
            // and the simulator's clock by more than the default 5 ms.
            limiter: RateLimiter::new(connector.capabilities().rate_limits)
                .with_margin(Duration::from_millis(40)),
            connector,
        }
    }

    fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    fn opts(&self) -> DriverOptions {
        DriverOptions {
            page_size: self.page_size,
            ..DriverOptions::default()
        }
    }

    fn connection(&self) -> ConnectionId {
        self.connector.id().clone()
    }

    async fn read(&self) -> Result<Observed, ConnectorError> {
        driver::read_all(
            self.connector.as_ref(),
            self.limiter(),
            &self.retry,
            &self.opts(),
        )
        .await
    }

    async fn apply(&self, actions: Vec<Action>) -> Vec<ActionResult> {
        apply_resending(
            self.connector.as_ref(),
            actions,
            self.limiter(),
            &self.retry,
            &mut |_| {},
        )
        .await
    }

    fn action(&self, op: Operation, email: &str, key: Option<&str>) -> Result<Action, String> {
        let mut attributes = if op == Operation::Deactivate {
            BTreeMap::new()
        } else {
            (self.create_attributes)(email)
        };
        if op != Operation::Deactivate {
            attributes.insert("email".into(), email.to_string());
        }
        Ok(Action {
            connection: self.connection(),
            operation: op,
            employee_id: Some(EmployeeId::new(format!(
                "EMP-{}",
                email.split('@').next().unwrap_or(email)
            ))),
            email: Email::parse(email).map_err(|e| format!("bad test address: {e}"))?,
            account: key.map(AccountKey::new),
            attributes,
            changes: Vec::new(),
            reason: "conformance suite".into(),
            cause: roster_core::Cause::default(),
        })
    }
}

/// Fast retries: the suite's faults are deterministic, not load.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        jitter: false,
        max_retry_after: Duration::from_secs(5),
    }
}

/// Applies `actions` as the engine's executor would, in memory, for
/// tests: one paced pass ([`driver::apply_once`]), then the actions that
/// failed retryably are sent again after `retry`'s delay (a `Retry-After`
/// already holds the budget, so the next turn waits it out), until each has
/// a final answer or the policy gives up. Results in the order given.
///
/// Test support only (the crate's writes with retries are the executor's):
/// connectors can't depend on the engine, yet their conformance is about
/// surviving re-sends. It is blunter than the executor, which reads the
/// app before re-sending an uncertain create or deactivation: here every
/// re-send is blind, so a connector that passes is idempotent on its own.
pub async fn apply_resending(
    connector: &dyn Connector,
    actions: Vec<Action>,
    budget: &dyn RateBudget,
    retry: &RetryPolicy,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Vec<ActionResult> {
    let mut pending: Vec<usize> = (0..actions.len()).collect();
    let mut results: Vec<ActionResult> =
        vec![ActionResult::failed("not attempted", true); actions.len()];
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let batch = pending
            .iter()
            .filter_map(|i| actions.get(*i).cloned())
            .collect();
        let answers = driver::apply_once(connector, batch, false, budget, progress).await;
        let mut again = Vec::new();
        for (&i, r) in pending.iter().zip(answers) {
            if matches!(
                r,
                ActionResult::Failed {
                    retryable: true,
                    ..
                }
            ) {
                again.push(i);
            }
            results[i] = r;
        }
        if again.is_empty() {
            break;
        }
        match retry.next(attempt, retry.max_attempts, None) {
            Next::Retry { delay, .. } => tokio::time::sleep(delay).await,
            Next::GiveUp(why) => {
                for &i in &again {
                    if let Some(ActionResult::Failed { reason, .. }) = results.get_mut(i) {
                        *reason = why.describe(&reason.clone());
                    }
                }
                break;
            }
        }
        pending = again;
    }
    results
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

fn keys(o: &Observed) -> BTreeSet<String> {
    o.accounts
        .iter()
        .map(|a| a.key.as_str().to_string())
        .collect()
}

fn oracle_keys(oracle: &dyn Oracle) -> BTreeSet<String> {
    oracle.accounts().into_iter().map(|a| a.key).collect()
}

/// Reads with `fault` switched on once the first page is in. The verdict:
/// the read is never complete while missing something the app held before
/// the read started.
async fn hostile_read(
    s: &Subject,
    fault: SuiteFault,
    standing: bool,
) -> Result<Option<String>, String> {
    let before = oracle_keys(s.oracle.as_ref());
    s.oracle.clear_faults();
    let oracle = s.oracle.clone();
    let mut armed = false;
    let mut supported = true;
    let mut arm = |p: &Progress<'_>| {
        if let Progress::PageRead { page: 1, .. } = p
            && !armed
        {
            armed = true;
            supported = if standing {
                oracle.set_standing(fault)
            } else {
                oracle.schedule(&[fault])
            };
        }
    };
    let result = driver::read_all_with_progress(
        s.connector.as_ref(),
        s.limiter(),
        &s.retry,
        &s.opts(),
        &mut arm,
    )
    .await;
    s.oracle.clear_faults();
    if !supported {
        return Ok(None);
    }
    match result {
        Err(e) => Ok(Some(format!("failed: {e}"))),
        Ok(o) if !o.complete => Ok(Some(o.incomplete_reason.unwrap_or_default())),
        Ok(o) => {
            let seen = keys(&o);
            let missing: Vec<&String> = before.difference(&seen).collect();
            check(missing.is_empty(), || {
                format!("{fault:?}: the read claims to be complete but misses {missing:?}")
            })?;
            // Complete and nothing missing: the connector coped (e.g. a
            // keyset cursor is immune to a shift). Only acceptable when
            // the fault could not hide data.
            check(matches!(fault, SuiteFault::ShiftListing), || {
                format!("{fault:?} on every later page, yet the read is complete")
            })?;
            Ok(Some("complete; nothing missed".into()))
        }
    }
}

/// Pagination: exhaustive and honest. Returns one line per case.
pub async fn exhaust_pagination(s: &Subject) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    s.oracle.clear_faults();
    let before = s.oracle.requests();
    let o = s
        .read()
        .await
        .map_err(|e| format!("clean read failed: {e}"))?;
    let pages = s.oracle.requests() - before;
    check(o.complete, || {
        format!("clean read incomplete: {:?}", o.incomplete_reason)
    })?;
    check(pages >= 2, || {
        format!(
            "the clean read took {pages} request(s); seed more accounts or lower page_size so paging is exercised"
        )
    })?;
    let want = oracle_keys(s.oracle.as_ref());
    check(keys(&o) == want, || {
        format!("clean read listed {:?}, the app holds {:?}", keys(&o), want)
    })?;
    check(o.accounts.len() == want.len(), || {
        "an account was listed twice".into()
    })?;
    report.push(format!(
        "clean read: {} accounts in {pages} requests",
        o.accounts.len()
    ));
    for (fault, standing) in [
        (SuiteFault::RepeatPage, true),
        (SuiteFault::TruncatedBody, true),
        (SuiteFault::ErrorIn200, true),
        (SuiteFault::ShiftListing, false),
    ] {
        match hostile_read(s, fault, standing).await? {
            None => report.push(format!(
                "{fault:?}: not producible by this simulator; skipped"
            )),
            Some(r) => report.push(format!("{fault:?}: {r}")),
        }
    }
    check(s.oracle.rate_limit_violations() == 0, || {
        format!(
            "{} requests broke the app's rate limit",
            s.oracle.rate_limit_violations()
        )
    })?;
    Ok(report)
}

fn find(oracle: &dyn Oracle, email: &str) -> Option<OracleAccount> {
    let email = email.to_lowercase();
    oracle.accounts().into_iter().find(|a| a.email == email)
}

/// Create → read → update → deactivate → read (or, for a read-only
/// connector, refusals plus console changes seen by the next read).
pub async fn round_trip(s: &Subject) -> Result<Vec<String>, String> {
    s.oracle.clear_faults();
    let caps = s.connector.capabilities();
    let email = s
        .new_emails
        .first()
        .cloned()
        .ok_or("Subject.new_emails is empty")?;
    let mut report = Vec::new();
    if !caps.supports(Operation::Create) {
        return read_only_round_trip(s, &email).await;
    }
    let r = s
        .apply(vec![s.action(Operation::Create, &email, None)?])
        .await;
    check(r == vec![ActionResult::Applied], || {
        format!("create answered {r:?}")
    })?;
    let acc = find(s.oracle.as_ref(), &email)
        .ok_or_else(|| format!("the app has no account for {email} after the create"))?;
    check(acc.active, || format!("{email} was created inactive"))?;
    check(s.oracle.api_effects(&email) == ["created"], || {
        format!("effects after create: {:?}", s.oracle.api_effects(&email))
    })?;
    report.push(format!("created {email} as {}", acc.key));

    let o = s
        .read()
        .await
        .map_err(|e| format!("read after create failed: {e}"))?;
    let seen = o
        .accounts
        .iter()
        .find(|a| a.key.as_str() == acc.key)
        .ok_or_else(|| format!("the read does not list {} ({email})", acc.key))?;
    check(
        seen.active && seen.email.as_ref().is_some_and(|e| e.normalized() == email),
        || format!("the read shows {seen:?}"),
    )?;

    if let Some((name, value)) = &s.update
        && caps.supports(Operation::Update)
    {
        let mut a = s.action(Operation::Update, &email, Some(&acc.key))?;
        a.changes = vec![AttributeChange {
            name: name.clone(),
            before: seen.attributes.get(name).cloned(),
            after: Some(value.clone()),
        }];
        a.attributes.insert(name.clone(), value.clone());
        let r = s.apply(vec![a]).await;
        check(r == vec![ActionResult::Applied], || {
            format!("update answered {r:?}")
        })?;
        let now = find(s.oracle.as_ref(), &email).ok_or("the account vanished on update")?;
        check(now.attributes.get(name) == Some(value), || {
            format!(
                "after the update the app has {name} = {:?}",
                now.attributes.get(name)
            )
        })?;
        report.push(format!("updated {name} to {value}"));
    }

    let r = s
        .apply(vec![s.action(
            Operation::Deactivate,
            &email,
            Some(&acc.key),
        )?])
        .await;
    check(r == vec![ActionResult::Applied], || {
        format!("deactivate answered {r:?}")
    })?;
    check(
        find(s.oracle.as_ref(), &email).is_none_or(|a| !a.active),
        || format!("{email} is still active in the app after the deactivation"),
    )?;
    let effects = s.oracle.api_effects(&email);
    check(
        effects.first().map(String::as_str) == Some("created")
            && effects.last().map(String::as_str) == Some("deactivated"),
        || format!("effects after the round trip: {effects:?}"),
    )?;
    let o = s
        .read()
        .await
        .map_err(|e| format!("read after deactivate failed: {e}"))?;
    check(o.complete, || {
        format!("final read incomplete: {:?}", o.incomplete_reason)
    })?;
    check(
        o.accounts
            .iter()
            .filter(|a| a.key.as_str() == acc.key)
            .all(|a| !a.active),
        || format!("the final read still shows {email} active"),
    )?;
    report.push(format!("deactivated; effects {effects:?}"));
    Ok(report)
}

async fn read_only_round_trip(s: &Subject, email: &str) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let before = s.oracle.requests();
    let r = s
        .apply(vec![
            s.action(Operation::Create, email, None)?,
            s.action(Operation::Deactivate, email, Some("x"))?,
        ])
        .await;
    check(
        r.iter().all(|x| {
            matches!(
                x,
                ActionResult::Failed {
                    retryable: false,
                    ..
                }
            )
        }),
        || format!("a read-only connector answered writes with {r:?}"),
    )?;
    check(s.oracle.requests() == before, || {
        "writes reached the app".into()
    })?;
    report.push("writes refused without a request".into());
    if !s.oracle.console_create(email) {
        return Err("the oracle has no console to create accounts with".into());
    }
    let o = s
        .read()
        .await
        .map_err(|e| format!("read after JIT failed: {e}"))?;
    let acc = find(s.oracle.as_ref(), email).ok_or("console create left no account")?;
    check(
        o.accounts
            .iter()
            .any(|a| a.key.as_str() == acc.key && a.active),
        || format!("the read does not show the JIT-created {email}"),
    )?;
    report.push(format!("JIT-created {email} seen by the next read"));
    if !s.oracle.console_deactivate(email) {
        return Err("the oracle has no console to deactivate accounts with".into());
    }
    let o = s
        .read()
        .await
        .map_err(|e| format!("read after manual deactivation failed: {e}"))?;
    check(
        o.accounts
            .iter()
            .any(|a| a.key.as_str() == acc.key && !a.active),
        || format!("the read does not show {email} deactivated by hand"),
    )?;
    report.push("manual deactivation seen by the next read".into());
    Ok(report)
}

/// The hostile write sequence, then a hostile read. Every change exactly
/// once; the read complete.
pub async fn fault_schedule(s: &Subject) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    s.oracle.clear_faults();
    let caps = s.connector.capabilities();
    let write_faults = [
        SuiteFault::RateLimited { retry_after: true },
        SuiteFault::RateLimited { retry_after: false },
        SuiteFault::ServerError,
        SuiteFault::Timeout,
        SuiteFault::ErrorIn200,
        SuiteFault::DroppedConnection,
        SuiteFault::LoseResponse,
    ];
    if caps.supports(Operation::Create) {
        let emails: Vec<String> = s.new_emails.iter().skip(1).take(3).cloned().collect();
        check(emails.len() == 3, || {
            "Subject.new_emails needs at least 4 addresses".into()
        })?;
        let actions = emails
            .iter()
            .map(|e| s.action(Operation::Create, e, None))
            .collect::<Result<Vec<_>, _>>()?;
        check(s.oracle.schedule(&write_faults), || {
            "the simulator can't produce the write faults".into()
        })?;
        let results = s.apply(actions).await;
        s.oracle.clear_faults();
        for (e, r) in emails.iter().zip(&results) {
            check(
                matches!(r, ActionResult::Applied | ActionResult::Skipped { .. }),
                || format!("create {e} under faults answered {r:?}"),
            )?;
            let effects = s.oracle.api_effects(e);
            check(effects == ["created"], || {
                format!("{e}: expected exactly one create in the app, saw {effects:?}")
            })?;
            check(find(s.oracle.as_ref(), e).is_some_and(|a| a.active), || {
                format!("{e} is not active in the app after the faulted create")
            })?;
        }
        report.push(format!(
            "3 creates through {} faults: each applied exactly once",
            write_faults.len()
        ));
    }
    let read_faults = [
        SuiteFault::ServerError,
        SuiteFault::TruncatedBody,
        SuiteFault::RateLimited { retry_after: false },
        SuiteFault::DroppedConnection,
        SuiteFault::ErrorIn200,
        SuiteFault::Timeout,
    ];
    check(s.oracle.schedule(&read_faults), || {
        "the simulator can't produce the read faults".into()
    })?;
    let o = s
        .read()
        .await
        .map_err(|e| format!("read under faults failed: {e}"));
    s.oracle.clear_faults();
    let o = o?;
    check(o.complete, || {
        format!(
            "read under retryable faults incomplete: {:?}",
            o.incomplete_reason
        )
    })?;
    let want = oracle_keys(s.oracle.as_ref());
    check(keys(&o) == want, || {
        format!(
            "read under faults listed {:?}, the app holds {want:?}",
            keys(&o)
        )
    })?;
    report.push(format!(
        "read through {} faults: complete, {} accounts",
        read_faults.len(),
        o.accounts.len()
    ));
    check(s.oracle.rate_limit_violations() == 0, || {
        format!(
            "{} requests broke the app's rate limit",
            s.oracle.rate_limit_violations()
        )
    })?;
    Ok(report)
}

/// Runs all three checks; the report has one line per case.
pub async fn run_all(s: &Subject) -> Result<Vec<String>, String> {
    let mut report = exhaust_pagination(s)
        .await
        .map_err(|e| format!("exhaust_pagination: {e}"))?;
    report.extend(
        round_trip(s)
            .await
            .map_err(|e| format!("round_trip: {e}"))?,
    );
    report.extend(
        fault_schedule(s)
            .await
            .map_err(|e| format!("fault_schedule: {e}"))?,
    );
    Ok(report)
}

// ------------------------------------------------------------ oracles

/// Maps a suite fault to the shared simulator fault. `slow` must exceed
/// the connector's timeout.
pub fn common_fault(f: SuiteFault, slow: Duration) -> Fault {
    match f {
        SuiteFault::RateLimited { retry_after } => Fault::RateLimitStorm {
            retry_after_secs: retry_after.then_some(1),
        },
        SuiteFault::ServerError => Fault::ServerError,
        SuiteFault::Timeout => Fault::Slow(slow),
        SuiteFault::TruncatedBody => Fault::TruncatedBody,
        SuiteFault::ErrorIn200 => Fault::ErrorIn200,
        SuiteFault::DroppedConnection => Fault::DropConnection,
        SuiteFault::LoseResponse => Fault::LoseResponse,
        SuiteFault::RepeatPage => Fault::RepeatPage,
        SuiteFault::ShiftListing => Fault::ShiftListing,
    }
}

fn api_kinds(effects: Vec<Effect>, email: &str) -> Vec<String> {
    let email = email.to_lowercase();
    effects
        .into_iter()
        .filter(|e| e.via == "api" && e.email == email)
        .map(|e| {
            match e.kind {
                EffectKind::Created
                | EffectKind::Assigned { .. }
                | EffectKind::MemberAdded { .. } => "created",
                EffectKind::Updated { .. } => "updated",
                EffectKind::Deactivated
                | EffectKind::Unassigned { .. }
                | EffectKind::MemberRemoved { .. }
                | EffectKind::Deleted => "deactivated",
                EffectKind::Reactivated => "reactivated",
                // An IdP's, never an app connector's.
                EffectKind::SessionsRevoked { .. } => "sessions_revoked",
            }
            .to_string()
        })
        .collect()
}

macro_rules! fault_methods {
    () => {
        fn requests(&self) -> u64 {
            self.handle.counters().requests
        }
        fn rate_limit_violations(&self) -> u64 {
            self.handle.counters().rate_limit_violations
        }
        fn schedule(&self, faults: &[SuiteFault]) -> bool {
            self.handle
                .schedule_faults(faults.iter().map(|f| common_fault(*f, self.slow)));
            true
        }
        fn set_standing(&self, fault: SuiteFault) -> bool {
            self.handle.set_fault(common_fault(fault, self.slow));
            true
        }
        fn clear_faults(&self) {
            self.handle.clear_faults();
        }
    };
}

/// The SCIM simulator's record.
pub struct ScimOracle {
    pub handle: roster_sim::scim_app::ScimHandle,
    pub slow: Duration,
}

impl Oracle for ScimOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        use roster_sim::scim_app::ENTERPRISE_SCHEMA;
        self.handle
            .users()
            .into_iter()
            .map(|u| {
                let s =
                    |v: Option<&serde_json::Value>| v.and_then(|x| x.as_str()).map(str::to_string);
                let mut attributes = BTreeMap::new();
                for (k, v) in [
                    ("first_name", s(u.pointer("/name/givenName"))),
                    ("last_name", s(u.pointer("/name/familyName"))),
                    ("display_name", s(u.get("displayName"))),
                    (
                        "department",
                        s(u.get(ENTERPRISE_SCHEMA).and_then(|e| e.get("department"))),
                    ),
                    (
                        "cost_center",
                        s(u.get(ENTERPRISE_SCHEMA).and_then(|e| e.get("costCenter"))),
                    ),
                ] {
                    if let Some(v) = v {
                        attributes.insert(k.to_string(), v);
                    }
                }
                OracleAccount {
                    key: s(u.get("id")).unwrap_or_default(),
                    email: s(u.get("userName")).unwrap_or_default().to_lowercase(),
                    active: u.get("active").and_then(|a| a.as_bool()).unwrap_or(true),
                    attributes,
                }
            })
            .collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}

/// The BILL S&E simulator's record. Retired users are inactive accounts.
pub struct BillOracle {
    pub handle: roster_sim::bill_spend::BillHandle,
    pub slow: Duration,
}

impl Oracle for BillOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        self.handle
            .users()
            .into_iter()
            .map(|u| OracleAccount {
                key: u.id.clone(),
                email: u.email.to_lowercase(),
                active: !u.retired,
                attributes: [
                    ("first_name".to_string(), u.first_name.clone()),
                    ("last_name".to_string(), u.last_name.clone()),
                    ("role".to_string(), u.role.clone()),
                ]
                .into_iter()
                .collect(),
            })
            .collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}

/// The Okta simulator's record of one app's assignments (an unassigned
/// person has no account).
pub struct OktaOracle {
    pub handle: roster_sim::okta::OktaHandle,
    pub app_id: String,
    pub slow: Duration,
}

impl Oracle for OktaOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        self.handle
            .assignments(&self.app_id)
            .into_iter()
            .map(|a| OracleAccount {
                key: a.user_id.clone(),
                email: a.user_name.to_lowercase(),
                active: true,
                attributes: a.profile.clone(),
            })
            .collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}

/// The Graph simulator's record of the members of a connection's
/// allowlisted groups (the `idp` path through Entra ID: a member holds the
/// app, a non-member has no account).
pub struct EntraGroupOracle {
    pub handle: roster_sim::graph::GraphHandle,
    pub groups: Vec<String>,
    pub slow: Duration,
}

impl Oracle for EntraGroupOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        let mut out: BTreeMap<String, OracleAccount> = BTreeMap::new();
        for g in &self.groups {
            for upn in self.handle.members(g) {
                if let Some(u) = self.handle.user(&upn) {
                    out.entry(u.id.clone()).or_insert(OracleAccount {
                        key: u.id.clone(),
                        email: u.mail.unwrap_or(u.user_principal_name).to_lowercase(),
                        active: true,
                        attributes: BTreeMap::new(),
                    });
                }
            }
        }
        out.into_values().collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}

/// The Okta simulator's record of the members of a connection's
/// allowlisted groups.
pub struct OktaGroupOracle {
    pub handle: roster_sim::okta::OktaHandle,
    pub groups: Vec<String>,
    pub slow: Duration,
}

impl Oracle for OktaGroupOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        let mut out: BTreeMap<String, OracleAccount> = BTreeMap::new();
        for g in &self.groups {
            for login in self.handle.group_members(g) {
                if let Some(u) = self.handle.user(&login) {
                    out.entry(u.id.clone()).or_insert(OracleAccount {
                        key: u.id.clone(),
                        email: u.login.to_lowercase(),
                        active: true,
                        attributes: BTreeMap::new(),
                    });
                }
            }
        }
        out.into_values().collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        let member_changes = self
            .handle
            .effects()
            .into_iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EffectKind::MemberAdded { .. } | EffectKind::MemberRemoved { .. }
                )
            })
            .collect();
        api_kinds(member_changes, email)
    }
    fault_methods!();
}

/// The OneLogin simulator's record of the members of a connection's
/// allowlisted roles.
pub struct OneLoginRoleOracle {
    pub handle: roster_sim::onelogin::OneLoginHandle,
    pub roles: Vec<String>,
    pub slow: Duration,
}

impl Oracle for OneLoginRoleOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        let mut out: BTreeMap<String, OracleAccount> = BTreeMap::new();
        for r in &self.roles {
            for email in self.handle.role_members(r) {
                if let Some(u) = self.handle.user(&email) {
                    out.entry(u.id.to_string()).or_insert(OracleAccount {
                        key: u.id.to_string(),
                        email: u.email.to_lowercase(),
                        active: true,
                        attributes: BTreeMap::new(),
                    });
                }
            }
        }
        out.into_values().collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}

/// The Spendesk simulator's record, and its admin console.
pub struct SpendeskOracle {
    pub handle: roster_sim::spendesk::SpendeskHandle,
    pub slow: Duration,
}

impl Oracle for SpendeskOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        self.handle
            .members()
            .into_iter()
            .map(|m| {
                let mut attributes = BTreeMap::new();
                for (k, v) in [
                    ("role", &m.role),
                    ("team", &m.team),
                    ("cost_center", &m.cost_center),
                ] {
                    if let Some(v) = v {
                        attributes.insert(k.to_string(), v.clone());
                    }
                }
                OracleAccount {
                    key: m.id.clone(),
                    email: m.email.to_lowercase(),
                    active: m.status == "active",
                    attributes,
                }
            })
            .collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
    fn console_create(&self, email: &str) -> bool {
        self.handle.jit_login(email, "Jit", "Person");
        true
    }
    fn console_deactivate(&self, email: &str) -> bool {
        self.handle.deactivate_by_hand(email)
    }
}

/// The Expensify simulator's record: one account per address with at
/// least one policy membership (removal from every policy = gone).
pub struct ExpensifyOracle {
    pub handle: roster_sim::expensify::ExpensifyHandle,
    pub slow: Duration,
}

impl Oracle for ExpensifyOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        let mut by_email: BTreeMap<String, OracleAccount> = BTreeMap::new();
        for p in self.handle.policies() {
            for (email, e) in &p.employees {
                by_email
                    .entry(email.clone())
                    .or_insert_with(|| OracleAccount {
                        key: email.clone(),
                        email: email.clone(),
                        active: true,
                        attributes: [
                            ("role".to_string(), e.role.clone()),
                            ("manager_email".to_string(), e.submits_to.clone()),
                            ("policy_id".to_string(), p.id.clone()),
                        ]
                        .into_iter()
                        .collect(),
                    });
            }
        }
        by_email.into_values().collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        use roster_sim::expensify::EffectKind as K;
        let email = email.to_lowercase();
        self.handle
            .effects()
            .into_iter()
            .filter(|e| e.email == email)
            .map(|e| {
                match e.kind {
                    K::Added => "created",
                    K::Removed => "deactivated",
                    K::Updated { .. } | K::EmailChanged { .. } => "updated",
                }
                .to_string()
            })
            .collect()
    }
    fn requests(&self) -> u64 {
        self.handle.counters().requests
    }
    fn rate_limit_violations(&self) -> u64 {
        self.handle.counters().rate_limit_violations
    }
    fn schedule(&self, faults: &[SuiteFault]) -> bool {
        let mapped: Option<Vec<_>> = faults
            .iter()
            .map(|f| expensify_fault(*f, self.slow))
            .collect();
        match mapped {
            Some(m) => {
                self.handle.schedule_faults(m);
                true
            }
            None => false,
        }
    }
    fn set_standing(&self, fault: SuiteFault) -> bool {
        match expensify_fault(fault, self.slow) {
            Some(f) => {
                self.handle.set_fault(f);
                true
            }
            None => false,
        }
    }
    fn clear_faults(&self) {
        self.handle.clear_faults();
    }
}

/// Expensify's simulator has no server-side paging, so it can't repeat or
/// shift a page (its page tokens live in the connector).
fn expensify_fault(f: SuiteFault, slow: Duration) -> Option<roster_sim::expensify::Fault> {
    use roster_sim::expensify::Fault as F;
    Some(match f {
        SuiteFault::RateLimited { retry_after: true } => F::RateLimitStorm,
        SuiteFault::RateLimited { retry_after: false } => F::RateLimitNoRetryAfter,
        SuiteFault::ServerError => F::ServerError,
        SuiteFault::Timeout => F::Slow(slow),
        SuiteFault::TruncatedBody => F::TruncatedBody,
        SuiteFault::ErrorIn200 => F::ErrorIn200,
        SuiteFault::DroppedConnection => F::DropConnection,
        SuiteFault::LoseResponse => F::LoseResponse,
        SuiteFault::RepeatPage | SuiteFault::ShiftListing => return None,
    })
}

/// The record of one of the five REST simulators (`roster_sim::rest_apps`):
/// the users its listing shows, in roster's attribute names as the
/// vendor's `[rest]` record maps them.
pub struct RestAppOracle {
    pub handle: roster_sim::rest_apps::RestAppHandle,
    pub slow: Duration,
}

impl Oracle for RestAppOracle {
    fn accounts(&self) -> Vec<OracleAccount> {
        use roster_sim::rest_apps::Vendor;
        let vendor = self.handle.vendor();
        self.handle
            .listed()
            .into_iter()
            .map(|u| {
                let attributes: BTreeMap<String, String> = match vendor {
                    Vendor::Zoom | Vendor::HubSpot => [
                        ("first_name".to_string(), u.first_name.clone()),
                        ("last_name".to_string(), u.last_name.clone()),
                    ]
                    .into_iter()
                    .collect(),
                    Vendor::Atlassian | Vendor::Zendesk | Vendor::Asana => {
                        [("display_name".to_string(), u.name.clone())]
                            .into_iter()
                            .collect()
                    }
                };
                OracleAccount {
                    key: u.id.clone(),
                    email: u.email.to_lowercase(),
                    active: u.active,
                    attributes,
                }
            })
            .collect()
    }
    fn api_effects(&self, email: &str) -> Vec<String> {
        api_kinds(self.handle.effects(), email)
    }
    fault_methods!();
}
