//! The engine side of the connector interface: loops, retries and pacing.
//!
//! Connectors answer one request per call; this module turns that into
//! whole reads and whole change sets.
//!
//! * [`read_all`] follows page tokens to the end and reports honestly how
//!   complete the listing is. A read that fails on the first page is an
//!   error (nothing was learned). A read that fails later, repeats a token,
//!   runs past [`DriverOptions::max_pages`], lists fewer accounts than the
//!   app's reported total, or sees one account twice with conflicting
//!   content still returns what it read, with `complete = false` and the
//!   reason. Reconciliation never deprovisions on an incomplete read.
//! * [`apply_all`] batches actions by the connector's capabilities (never
//!   two actions for the same account in one batch, so per-person results
//!   stay unambiguous), paces every call through the connection's
//!   [`RateBudget`] (in-memory [`crate::RateLimiter`], or the engine's
//!   store-backed budget shared by every process), and
//!   retries retryable failures with exponential backoff and jitter
//!   (`backon`), waiting at least as long as the app's `Retry-After`.
//!   Retries are safe because connector writes are idempotent upserts of
//!   desired state.
//! * Every call, first attempt or retry, goes through the budget
//!   ([`wait_turn`]), so the app's documented limits hold for the whole
//!   run. A wait longer than a second is reported as
//!   [`Progress::Waiting`], so a person sees why nothing moves.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use roster_core::{Account, Action, Observed, Operation};

use crate::{
    ActionResult, ApplyRequest, Connector, ConnectorError, ListRequest, Merge, PageToken,
    RateBudget, RateLimitInfo, Turn,
};

/// Waits shorter than this are not reported: pacing inside a burst is
/// routine, a stall is news.
pub const REPORT_WAITS_OVER: Duration = Duration::from_secs(1);

/// How hard the driver tries.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Randomise backoff delays so parallel runs don't retry in lockstep.
    pub jitter: bool,
    /// A `Retry-After` longer than this ends the retries instead of
    /// stalling the run.
    pub max_retry_after: Duration,
    /// A read that needs more pages than this is cut short (incomplete).
    pub max_pages: u32,
    /// Page size hint passed to the connector.
    pub page_size: Option<u32>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            jitter: true,
            max_retry_after: Duration::from_secs(300),
            max_pages: 100_000,
            page_size: None,
        }
    }
}

impl DriverOptions {
    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut b = ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

/// What the driver is doing, for progress bars and logs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A call failed and will be tried again after `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        error: &'a ConnectorError,
    },
    /// A page was read.
    PageRead { page: u32, accounts: usize },
    /// `done` of `total` actions have a final result.
    Applied { done: usize, total: usize },
    /// The next request waits `delay` for the app's rate window (its
    /// documented limits, or a hold it asked for). Reported only for waits
    /// over [`REPORT_WAITS_OVER`].
    Waiting { delay: Duration },
}

/// Waits for a turn in `budget`, reporting long waits.
pub async fn wait_turn(budget: &dyn RateBudget, progress: &mut (dyn FnMut(&Progress<'_>) + Send)) {
    while let Turn::Wait(delay) = budget.try_turn().await {
        if delay > REPORT_WAITS_OVER {
            progress(&Progress::Waiting { delay });
        }
        tokio::time::sleep(delay).await;
    }
}

/// Applies the app's own rate-limit signal to the shared budget: nothing
/// left in its window means everyone waits for the reset.
pub async fn note_rate_limit(budget: &dyn RateBudget, info: Option<RateLimitInfo>) {
    if let Some(info) = info
        && info.remaining == Some(0)
        && let Some(reset) = info.reset_after
    {
        budget.hold_for(reset).await;
    }
}

/// Why retrying stopped.
struct GaveUp {
    error: ConnectorError,
    attempts: u32,
}

impl GaveUp {
    fn describe(&self) -> String {
        if self.attempts > 1 {
            format!("{} (gave up after {} attempts)", self.error, self.attempts)
        } else {
            self.error.to_string()
        }
    }
}

/// The delay before the next attempt, or `None` to stop.
async fn next_delay(
    backoff: &mut (impl Iterator<Item = Duration> + Send),
    error: &ConnectorError,
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
) -> Option<Duration> {
    if !error.is_retryable() {
        return None;
    }
    let delay = backoff.next()?;
    match error.retry_after() {
        Some(after) if after > opts.max_retry_after => None,
        Some(after) => {
            // Everyone sharing the budget waits, not only this caller.
            limiter.hold_for(after).await;
            Some(delay.max(after))
        }
        None => Some(delay),
    }
}

/// Runs one call through the limiter with retries.
async fn with_retry<T, F, Fut>(
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
    mut call: F,
) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let mut backoff = opts.backoff();
    let mut attempt = 0;
    loop {
        attempt += 1;
        wait_turn(limiter, progress).await;
        match call().await {
            Ok(v) => return Ok(v),
            Err(error) => {
                let Some(delay) = next_delay(&mut backoff, &error, limiter, opts).await else {
                    return Err(GaveUp {
                        error,
                        attempts: attempt,
                    });
                };
                tracing::debug!(attempt, ?delay, %error, "retrying connector call");
                progress(&Progress::Retrying {
                    attempt,
                    delay,
                    error: &error,
                });
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Reads every account of the connection.
///
/// `Err` when a page fails before any account was read. Anything read
/// before a later failure is returned with `complete = false` and the
/// reason.
pub async fn read_all(
    connector: &dyn Connector,
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
) -> Result<Observed, ConnectorError> {
    read_all_with_progress(connector, limiter, opts, &mut |_| {}).await
}

/// [`read_all`] with a progress callback.
pub async fn read_all_with_progress(
    connector: &dyn Connector,
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<Observed, ConnectorError> {
    let connection = connector.id().clone();
    let mut accounts: Vec<Account> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_tokens: HashSet<PageToken> = HashSet::new();
    let mut token: Option<PageToken> = None;
    let mut total: Option<u64> = None;
    let mut incomplete: Vec<String> = Vec::new();
    let mut pages: u32 = 0;
    loop {
        if pages >= opts.max_pages {
            incomplete.push(format!(
                "stopped after {pages} pages (max_pages); more remained"
            ));
            break;
        }
        let req = ListRequest {
            page_token: token.clone(),
            page_size: opts.page_size,
        };
        let page = match with_retry(limiter, opts, progress, || {
            connector.list_accounts(req.clone())
        })
        .await
        {
            Ok(p) => p,
            // Nothing learned yet (no page, or only empty ones such as a
            // listing of containers): an empty "incomplete" read would look
            // like an app with no accounts, so this is an error.
            Err(gave_up) if accounts.is_empty() => return Err(gave_up.error),
            Err(gave_up) => {
                incomplete.push(format!("page {} failed: {}", pages + 1, gave_up.describe()));
                break;
            }
        };
        pages += 1;
        note_rate_limit(limiter, page.rate_limit).await;
        if page.total.is_some() {
            total = page.total;
        }
        progress(&Progress::PageRead {
            page: pages,
            accounts: page.accounts.len(),
        });
        for account in page.accounts {
            match index.get(account.key.as_str()) {
                None => {
                    index.insert(account.key.as_str().to_string(), accounts.len());
                    accounts.push(account);
                }
                Some(&i) => {
                    let key = account.key.clone();
                    if let Some(existing) = accounts.get_mut(i)
                        && connector.merge_duplicate(existing, account) == Merge::Conflict
                    {
                        incomplete.push(format!(
                            "account {key} was listed twice with different content (the listing changed during the read)"
                        ));
                    }
                }
            }
        }
        match page.next {
            None => break,
            Some(next) => {
                if !seen_tokens.insert(next.clone()) {
                    incomplete.push(format!(
                        "the app returned page token {} twice; stopped to avoid a loop",
                        next.as_str()
                    ));
                    break;
                }
                token = Some(next);
            }
        }
    }
    if let Some(total) = total
        && (accounts.len() as u64) < total
    {
        incomplete.push(format!(
            "listed {} accounts but the app reported {total}",
            accounts.len()
        ));
    }
    let complete = incomplete.is_empty();
    Ok(Observed {
        connection,
        accounts,
        complete,
        incomplete_reason: (!complete).then(|| incomplete.join("; ")),
    })
}

/// Fills empty `Deactivate` actions with the account's current attributes
/// from a fresh read. Returns results for actions that turned out to have
/// nothing to do.
async fn enrich_deactivations(
    connector: &dyn Connector,
    actions: &mut [Action],
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> BTreeMap<usize, ActionResult> {
    let mut done = BTreeMap::new();
    let needy: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.operation == Operation::Deactivate && a.attributes.is_empty())
        .map(|(i, _)| i)
        .collect();
    if needy.is_empty() {
        return done;
    }
    let observed = match read_all_with_progress(connector, limiter, opts, progress).await {
        Ok(o) => o,
        Err(e) => {
            // Leave the actions as they are: the connector decides what it
            // can do without the current state.
            tracing::warn!(error = %e, "could not read current state before deactivating");
            return done;
        }
    };
    for i in needy {
        let Some(action) = actions.get_mut(i) else {
            continue;
        };
        let found = observed.accounts.iter().find(|acc| {
            action.account.as_ref() == Some(&acc.key) || acc.email.as_ref() == Some(&action.email)
        });
        match found {
            Some(acc) => action.attributes = acc.attributes.clone(),
            None if observed.complete => {
                done.insert(
                    i,
                    ActionResult::skipped(format!(
                        "{} has no account in {}; nothing to deactivate",
                        action.email, action.connection
                    )),
                );
            }
            None => {}
        }
    }
    done
}

/// Splits action indices into batches: consecutive, at most the smallest
/// `max_batch` of the operations inside, and never the same account twice.
fn batches(connector: &dyn Connector, actions: &[Action], todo: &[usize]) -> Vec<Vec<usize>> {
    let caps = connector.capabilities();
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut cap = u32::MAX;
    let mut keys: HashSet<String> = HashSet::new();
    for &i in todo {
        let Some(a) = actions.get(i) else { continue };
        let max = caps.support(a.operation).max_batch.max(1);
        let key = a.email.normalized();
        let account = a.account.as_ref().map(|k| k.as_str().to_lowercase());
        let clash = keys.contains(&key) || account.as_ref().is_some_and(|k| keys.contains(k));
        if !current.is_empty() && (clash || current.len() as u32 >= cap.min(max)) {
            out.push(std::mem::take(&mut current));
            keys.clear();
            cap = u32::MAX;
        }
        cap = cap.min(max);
        keys.insert(key);
        if let Some(k) = account {
            keys.insert(k);
        }
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Applies `actions` through `connector`, returning one result per action
/// in the same order.
///
/// Unsupported operations fail without a call. A non-retryable whole-call
/// failure fails its batch; if it is `Unauthorized` or `Config`, later
/// batches are not attempted (they would fail the same way) and say so.
pub async fn apply_all(
    connector: &dyn Connector,
    actions: Vec<Action>,
    dry_run: bool,
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Vec<ActionResult> {
    let caps = connector.capabilities();
    let mut actions = actions;
    let total = actions.len();
    let mut results: Vec<Option<ActionResult>> = vec![None; total];
    if dry_run && !caps.dry_run {
        return actions
            .iter()
            .map(|a| {
                ActionResult::skipped(format!(
                    "dry run: {} cannot preview changes, so nothing was sent",
                    a.connection
                ))
            })
            .collect();
    }
    for (i, a) in actions.iter().enumerate() {
        if !caps.supports(a.operation) {
            results[i] = Some(ActionResult::failed(
                format!(
                    "{} cannot {} accounts through its API",
                    a.connection, a.operation
                ),
                false,
            ));
        }
    }
    if caps.deactivate_needs_current_attributes {
        for (i, r) in enrich_deactivations(connector, &mut actions, limiter, opts, progress).await {
            results[i] = Some(r);
        }
    }
    let todo: Vec<usize> = (0..total).filter(|i| results[*i].is_none()).collect();
    let mut fatal: Option<String> = None;
    for batch in batches(connector, &actions, &todo) {
        if let Some(why) = &fatal {
            for i in batch {
                results[i] = Some(ActionResult::failed(
                    format!("not attempted: an earlier batch failed with {why}"),
                    false,
                ));
            }
            continue;
        }
        apply_batch(
            connector,
            &actions,
            batch,
            dry_run,
            limiter,
            opts,
            progress,
            &mut results,
            &mut fatal,
        )
        .await;
        let done = results.iter().filter(|r| r.is_some()).count();
        progress(&Progress::Applied { done, total });
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| ActionResult::failed("not attempted", true)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn apply_batch(
    connector: &dyn Connector,
    actions: &[Action],
    batch: Vec<usize>,
    dry_run: bool,
    limiter: &dyn RateBudget,
    opts: &DriverOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
    results: &mut [Option<ActionResult>],
    fatal: &mut Option<String>,
) {
    let mut pending = batch;
    let mut backoff = opts.backoff();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        wait_turn(limiter, progress).await;
        let req = ApplyRequest::new(
            pending
                .iter()
                .filter_map(|i| actions.get(*i).cloned())
                .collect(),
            dry_run,
        );
        let error = match connector.apply(req).await {
            Ok(resp) if resp.results.len() != pending.len() => {
                let why = format!(
                    "the connector answered {} results for {} actions",
                    resp.results.len(),
                    pending.len()
                );
                for &i in &pending {
                    results[i] = Some(ActionResult::failed(why.clone(), false));
                }
                return;
            }
            Ok(resp) => {
                note_rate_limit(limiter, resp.rate_limit).await;
                let mut retry = Vec::new();
                for (&i, r) in pending.iter().zip(resp.results) {
                    if matches!(
                        r,
                        ActionResult::Failed {
                            retryable: true,
                            ..
                        }
                    ) {
                        retry.push(i);
                    }
                    // Provisional for retryable failures: kept if retries
                    // run out.
                    results[i] = Some(r);
                }
                if retry.is_empty() {
                    return;
                }
                pending = retry;
                let Some(delay) = backoff.next() else { return };
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => e,
        };
        match next_delay(&mut backoff, &error, limiter, opts).await {
            Some(delay) => {
                tracing::debug!(attempt, ?delay, %error, "retrying apply");
                progress(&Progress::Retrying {
                    attempt,
                    delay,
                    error: &error,
                });
                tokio::time::sleep(delay).await;
            }
            None => {
                let gave_up = GaveUp {
                    error,
                    attempts: attempt,
                };
                let why = gave_up.describe();
                for &i in &pending {
                    results[i] = Some(ActionResult::failed(
                        why.clone(),
                        gave_up.error.is_retryable(),
                    ));
                }
                if matches!(
                    gave_up.error,
                    ConnectorError::Unauthorized { .. } | ConnectorError::Config { .. }
                ) {
                    *fatal = Some(gave_up.error.code().to_string());
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use roster_core::{AccountKey, ConnectionId, Email};

    use super::*;
    use crate::{ApplyResponse, Capabilities, OperationSupport, Page, RateLimiter, Validation};

    /// A scripted connector: pages by index, apply answers from a queue.
    struct Fake {
        id: ConnectionId,
        pages: Vec<(Vec<&'static str>, Option<&'static str>, Option<u64>)>,
        fail_page: Option<usize>,
        apply_errors: Mutex<Vec<ConnectorError>>,
        applied: Mutex<Vec<Vec<String>>>,
        max_batch: u32,
    }

    impl Fake {
        fn new() -> Self {
            Fake {
                id: ConnectionId::new("fake"),
                pages: Vec::new(),
                fail_page: None,
                apply_errors: Mutex::new(Vec::new()),
                applied: Mutex::new(Vec::new()),
                max_batch: 2,
            }
        }
    }

    fn account(key: &str) -> Account {
        Account {
            connection: ConnectionId::new("fake"),
            key: AccountKey::new(key),
            email: Email::parse(key).ok(),
            employee_id: None,
            active: true,
            attributes: BTreeMap::new(),
        }
    }

    #[async_trait]
    impl Connector for Fake {
        fn id(&self) -> &ConnectionId {
            &self.id
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new()
                .with(
                    Operation::Create,
                    OperationSupport::supported(self.max_batch),
                )
                .with(
                    Operation::Deactivate,
                    OperationSupport::supported(self.max_batch),
                )
        }
        async fn validate(&self) -> Result<Validation, ConnectorError> {
            Ok(Validation::default())
        }
        async fn list_accounts(&self, req: ListRequest) -> Result<crate::Page, ConnectorError> {
            let i: usize = req
                .page_token
                .map(|t| t.as_str().parse().unwrap_or(0))
                .unwrap_or(0);
            if self.fail_page == Some(i) {
                return Err(ConnectorError::Vendor {
                    code: "500".into(),
                    detail: "boom".into(),
                });
            }
            let (keys, next, total) = &self.pages[i];
            // A leading '!' lists the account as inactive.
            let accounts = keys
                .iter()
                .map(|k| match k.strip_prefix('!') {
                    Some(k) => Account {
                        active: false,
                        ..account(k)
                    },
                    None => account(k),
                })
                .collect();
            let mut p = Page::new(accounts, next.map(PageToken::new));
            if let Some(t) = total {
                p = p.with_total(*t);
            }
            Ok(p)
        }
        async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
            if let Some(e) = self.apply_errors.lock().unwrap().pop() {
                return Err(e);
            }
            self.applied
                .lock()
                .unwrap()
                .push(req.actions.iter().map(|a| a.email.to_string()).collect());
            Ok(ApplyResponse::new(vec![
                ActionResult::Applied;
                req.actions.len()
            ]))
        }
    }

    fn fast() -> DriverOptions {
        DriverOptions {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..DriverOptions::default()
        }
    }

    fn action(op: Operation, email: &str) -> Action {
        Action {
            connection: ConnectionId::new("fake"),
            operation: op,
            employee_id: None,
            email: Email::parse(email).unwrap(),
            account: None,
            attributes: BTreeMap::new(),
            changes: Vec::new(),
            reason: "test".into(),
            cause: roster_core::Cause::default(),
        }
    }

    #[tokio::test]
    async fn repeated_token_and_short_total_make_the_read_incomplete() {
        let mut f = Fake::new();
        f.pages = vec![
            (vec!["a@x.com"], Some("1"), Some(5)),
            (vec!["b@x.com"], Some("1"), None),
        ];
        let o = read_all(&f, &RateLimiter::unlimited(), &fast())
            .await
            .unwrap();
        assert!(!o.complete);
        let why = o.incomplete_reason.unwrap();
        assert!(why.contains("twice"), "{why}");
        assert!(why.contains("reported 5"), "{why}");
        assert_eq!(o.accounts.len(), 2);
    }

    #[tokio::test]
    async fn a_failed_later_page_keeps_what_was_read() {
        let mut f = Fake::new();
        f.pages = vec![(vec!["a@x.com"], Some("1"), None), (vec![], None, None)];
        f.fail_page = Some(1);
        let o = read_all(&f, &RateLimiter::unlimited(), &fast())
            .await
            .unwrap();
        assert!(!o.complete);
        assert_eq!(o.accounts.len(), 1);
        assert!(o.incomplete_reason.unwrap().contains("CONN-0004"));
        // The first page failing is an error: nothing was learned.
        f.fail_page = Some(0);
        assert!(
            read_all(&f, &RateLimiter::unlimited(), &fast())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn conflicting_duplicates_make_the_read_incomplete() {
        let mut f = Fake::new();
        f.pages = vec![
            (vec!["a@x.com"], Some("1"), None),
            (vec!["a@x.com"], None, None),
        ];
        let o = read_all(&f, &RateLimiter::unlimited(), &fast())
            .await
            .unwrap();
        assert!(o.complete, "identical duplicates merge");
        assert_eq!(o.accounts.len(), 1);

        f.pages = vec![
            (vec!["a@x.com"], Some("1"), None),
            (vec!["!a@x.com"], None, None),
        ];
        let o = read_all(&f, &RateLimiter::unlimited(), &fast())
            .await
            .unwrap();
        assert!(!o.complete);
        assert!(o.incomplete_reason.unwrap().contains("listed twice"));
        assert_eq!(o.accounts.len(), 1);
        assert!(o.accounts[0].active, "the first listing is kept");
    }

    #[tokio::test]
    async fn a_failure_before_any_account_is_an_error() {
        let mut f = Fake::new();
        f.pages = vec![(vec![], Some("1"), None), (vec![], None, None)];
        f.fail_page = Some(1);
        let e = read_all(&f, &RateLimiter::unlimited(), &fast())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "CONN-0004");
    }

    #[tokio::test]
    async fn batches_respect_size_and_never_repeat_an_account() {
        let f = Fake::new();
        let actions = vec![
            action(Operation::Create, "a@x.com"),
            action(Operation::Create, "b@x.com"),
            action(Operation::Create, "c@x.com"),
            action(Operation::Deactivate, "C@x.com"),
            action(Operation::Update, "d@x.com"),
        ];
        let results = apply_all(
            &f,
            actions,
            false,
            &RateLimiter::unlimited(),
            &fast(),
            &mut |_| {},
        )
        .await;
        assert_eq!(results.len(), 5);
        assert!(results[..4].iter().all(ActionResult::is_applied));
        assert!(matches!(
            &results[4],
            ActionResult::Failed {
                retryable: false,
                ..
            }
        ));
        let applied = f.applied.lock().unwrap().clone();
        assert_eq!(
            applied,
            vec![vec!["a@x.com", "b@x.com"], vec!["c@x.com"], vec!["C@x.com"]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn long_waits_for_the_window_are_reported() {
        let f = Fake::new();
        // One request per 7 s: the second batch waits about 7 s.
        let l = RateLimiter::new(vec![crate::RateWindow::new(1, Duration::from_secs(7))]);
        let mut waits = Vec::new();
        let results = apply_all(
            &f,
            vec![
                action(Operation::Create, "a@x.com"),
                action(Operation::Create, "b@x.com"),
                action(Operation::Create, "c@x.com"),
            ],
            false,
            &l,
            &fast(),
            &mut |p| {
                if let Progress::Waiting { delay } = p {
                    waits.push(*delay);
                }
            },
        )
        .await;
        assert!(results.iter().all(ActionResult::is_applied));
        assert_eq!(waits.len(), 1, "{waits:?}");
        assert!(
            waits[0] > Duration::from_secs(6) && waits[0] <= Duration::from_millis(7_070),
            "{waits:?}"
        );

        // Short waits are routine pacing, not news.
        let f = Fake::new();
        let l = RateLimiter::new(vec![crate::RateWindow::new(1, Duration::from_millis(300))]);
        let mut reported = 0;
        apply_all(
            &f,
            vec![
                action(Operation::Create, "a@x.com"),
                action(Operation::Create, "b@x.com"),
                action(Operation::Create, "c@x.com"),
            ],
            false,
            &l,
            &fast(),
            &mut |p| {
                if matches!(p, Progress::Waiting { .. }) {
                    reported += 1;
                }
            },
        )
        .await;
        assert_eq!(reported, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_window_holds_every_caller_until_its_reset() {
        let l = RateLimiter::unlimited();
        note_rate_limit(
            &l,
            Some(RateLimitInfo::new(Some(3), Some(Duration::from_secs(9)))),
        )
        .await;
        assert_eq!(l.try_turn().await, Turn::Go, "requests left: no hold");
        note_rate_limit(
            &l,
            Some(RateLimitInfo::new(Some(0), Some(Duration::from_secs(9)))),
        )
        .await;
        let mut waits = Vec::new();
        let started = tokio::time::Instant::now();
        wait_turn(&l, &mut |p| {
            if let Progress::Waiting { delay } = p {
                waits.push(*delay);
            }
        })
        .await;
        assert!(started.elapsed() >= Duration::from_secs(9));
        assert_eq!(waits, vec![Duration::from_secs(9)]);
    }

    #[tokio::test]
    async fn retries_transient_errors_then_gives_up_on_fatal_ones() {
        let f = Fake::new();
        f.apply_errors
            .lock()
            .unwrap()
            .push(ConnectorError::Transient {
                detail: "503".into(),
            });
        let mut retries = 0;
        let results = apply_all(
            &f,
            vec![action(Operation::Create, "a@x.com")],
            false,
            &RateLimiter::unlimited(),
            &fast(),
            &mut |p| {
                if matches!(p, Progress::Retrying { .. }) {
                    retries += 1;
                }
            },
        )
        .await;
        assert_eq!(results, vec![ActionResult::Applied]);
        assert_eq!(retries, 1);

        let f = Fake::new();
        f.apply_errors
            .lock()
            .unwrap()
            .push(ConnectorError::Unauthorized {
                detail: "no".into(),
            });
        let actions = vec![
            action(Operation::Create, "a@x.com"),
            action(Operation::Create, "b@x.com"),
            action(Operation::Create, "c@x.com"),
        ];
        let results = apply_all(
            &f,
            actions,
            false,
            &RateLimiter::unlimited(),
            &fast(),
            &mut |_| {},
        )
        .await;
        assert!(
            matches!(&results[0], ActionResult::Failed { reason, retryable: false } if reason.contains("CONN-0001"))
        );
        assert!(
            matches!(&results[2], ActionResult::Failed { reason, .. } if reason.contains("not attempted"))
        );
        assert!(f.applied.lock().unwrap().is_empty());
    }
}
