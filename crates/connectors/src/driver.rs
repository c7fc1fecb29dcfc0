//! The engine side of the connector interface: the read loop and pacing.
//!
//! Connectors answer one request per call; this module turns that into
//! whole reads, and paces every call.
//!
//! * [`read_all`] follows page tokens to the end and reports honestly how
//!   complete the listing is. A read that fails on the first page is an
//!   error (nothing was learned). A read that fails later, repeats a token,
//!   runs past [`DriverOptions::max_pages`], lists fewer accounts than the
//!   app's reported total, or sees one account twice with conflicting
//!   content still returns what it read, with `complete = false` and the
//!   reason. Reconciliation never deprovisions on an incomplete read. A
//!   page that fails is asked for again as the [`RetryPolicy`] says (the
//!   one policy; the engine passes the executor's).
//! * Every call, first attempt or retry, goes through the connection's
//!   [`RateBudget`] ([`wait_turn`]): the in-memory [`crate::RateLimiter`],
//!   or the engine's store-backed budget shared by every process. So the
//!   app's documented limits hold for the whole run. A wait longer than a
//!   second is reported as [`Progress::Waiting`], so a person sees why
//!   nothing moves.
//! * Writes with retries are not here: the engine's executor owns them,
//!   because a retry that lives in memory is lost with the process and a
//!   durable one is not. [`apply_once`] is the single paced pass over a
//!   change set (batched by the connector's capabilities, never two actions
//!   for one account in a batch) that reports each action's first answer
//!   and never retries, for callers that set up state or check one answer
//!   (the demo seeding a simulator, connector tests).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use roster_core::{Account, Action, Observed, Operation};

use crate::retry::{GiveUp, Next, RetryPolicy};
use crate::{
    ActionResult, ApplyRequest, Connector, ConnectorError, ListRequest, Merge, PageToken,
    RateBudget, RateLimitInfo, Turn,
};

/// Waits shorter than this are not reported: pacing inside a burst is
/// routine, a stall is news.
pub const REPORT_WAITS_OVER: Duration = Duration::from_secs(1);

/// How the driver reads. How hard it retries is the [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// A read that needs more pages than this is cut short (incomplete).
    pub max_pages: u32,
    /// Page size hint passed to the connector.
    pub page_size: Option<u32>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            max_pages: 100_000,
            page_size: None,
        }
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

/// Why retrying a read call stopped.
struct GaveUp {
    error: ConnectorError,
    why: GiveUp,
}

impl GaveUp {
    fn describe(&self) -> String {
        self.why.describe(&self.error)
    }
}

/// Runs one read call through the budget, retrying as `retry` says.
async fn with_retry<T, F, Fut>(
    budget: &dyn RateBudget,
    retry: &RetryPolicy,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
    mut call: F,
) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        wait_turn(budget, progress).await;
        let error = match call().await {
            Ok(v) => return Ok(v),
            Err(error) => error,
        };
        match retry.after_error(attempt, &error) {
            Next::Retry { delay, hold } => {
                if let Some(hold) = hold {
                    // Everyone sharing the budget waits, not only this caller.
                    budget.hold_for(hold).await;
                }
                tracing::debug!(attempt, ?delay, %error, "retrying connector call");
                progress(&Progress::Retrying {
                    attempt,
                    delay,
                    error: &error,
                });
                tokio::time::sleep(delay).await;
            }
            Next::GiveUp(why) => return Err(GaveUp { error, why }),
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
    budget: &dyn RateBudget,
    retry: &RetryPolicy,
    opts: &DriverOptions,
) -> Result<Observed, ConnectorError> {
    read_all_with_progress(connector, budget, retry, opts, &mut |_| {}).await
}

/// [`read_all`] with a progress callback.
pub async fn read_all_with_progress(
    connector: &dyn Connector,
    budget: &dyn RateBudget,
    retry: &RetryPolicy,
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
        let page = match with_retry(budget, retry, progress, || {
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
        note_rate_limit(budget, page.rate_limit).await;
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
    budget: &dyn RateBudget,
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
    // A read retries like every read (the one policy's defaults); only
    // the writes of `apply_once` go out once.
    let observed = match read_all_with_progress(
        connector,
        budget,
        &RetryPolicy::default(),
        &DriverOptions::default(),
        progress,
    )
    .await
    {
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

/// Applies `actions` through `connector` once, returning one result per
/// action in the same order: batched by the connector's capabilities, each
/// call paced through `budget`, and **no retries** (a retryable failure is
/// returned as it is; retrying is the executor's). For setting up state
/// and for checking a connector's first answer.
///
/// Unsupported operations fail without a call. A whole-call failure fails
/// its batch (a `Retry-After` in it holds the budget, as the app asked);
/// if it is `Unauthorized` or `Config`, later batches are not attempted
/// (they would fail the same way) and say so.
pub async fn apply_once(
    connector: &dyn Connector,
    actions: Vec<Action>,
    dry_run: bool,
    budget: &dyn RateBudget,
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
        for (i, r) in enrich_deactivations(connector, &mut actions, budget, progress).await {
            results[i] = Some(r);
        }
    }
    let todo: Vec<usize> = (0..total).filter(|i| results[*i].is_none()).collect();
    let mut fatal: Option<&'static str> = None;
    for batch in batches(connector, &actions, &todo) {
        if let Some(code) = fatal {
            for i in batch {
                results[i] = Some(ActionResult::failed(
                    format!("not attempted: an earlier batch failed with {code}"),
                    false,
                ));
            }
            continue;
        }
        wait_turn(budget, progress).await;
        let req = ApplyRequest::new(
            batch
                .iter()
                .filter_map(|i| actions.get(*i).cloned())
                .collect(),
            dry_run,
        );
        match connector.apply(req).await {
            Ok(resp) if resp.results.len() != batch.len() => {
                let why = format!(
                    "the connector answered {} results for {} actions",
                    resp.results.len(),
                    batch.len()
                );
                for &i in &batch {
                    results[i] = Some(ActionResult::failed(why.clone(), false));
                }
            }
            Ok(resp) => {
                note_rate_limit(budget, resp.rate_limit).await;
                for (&i, r) in batch.iter().zip(resp.results) {
                    results[i] = Some(r);
                }
            }
            Err(error) => {
                if let Some(after) = error.retry_after() {
                    // Pacing, not retrying: the app asked every caller to
                    // wait, so the budget holds the later batches (and
                    // anyone else sharing it).
                    budget.hold_for(after).await;
                }
                for &i in &batch {
                    results[i] = Some(ActionResult::failed(
                        error.to_string(),
                        error.is_retryable(),
                    ));
                }
                if matches!(
                    error,
                    ConnectorError::Unauthorized { .. } | ConnectorError::Config { .. }
                ) {
                    fatal = Some(error.code());
                }
            }
        }
        let done = results.iter().filter(|r| r.is_some()).count();
        progress(&Progress::Applied { done, total });
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| ActionResult::failed("not attempted", true)))
        .collect()
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
        /// Popped before each listing call.
        list_errors: Mutex<Vec<ConnectorError>>,
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
                list_errors: Mutex::new(Vec::new()),
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
            if let Some(e) = self.list_errors.lock().unwrap().pop() {
                return Err(e);
            }
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

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        }
    }

    async fn read(f: &Fake) -> Result<Observed, ConnectorError> {
        read_all(
            f,
            &RateLimiter::unlimited(),
            &fast(),
            &DriverOptions::default(),
        )
        .await
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
        let o = read(&f).await.unwrap();
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
        let o = read(&f).await.unwrap();
        assert!(!o.complete);
        assert_eq!(o.accounts.len(), 1);
        assert!(o.incomplete_reason.unwrap().contains("CONN-0004"));
        // The first page failing is an error: nothing was learned.
        f.fail_page = Some(0);
        assert!(read(&f).await.is_err());
    }

    #[tokio::test]
    async fn conflicting_duplicates_make_the_read_incomplete() {
        let mut f = Fake::new();
        f.pages = vec![
            (vec!["a@x.com"], Some("1"), None),
            (vec!["a@x.com"], None, None),
        ];
        let o = read(&f).await.unwrap();
        assert!(o.complete, "identical duplicates merge");
        assert_eq!(o.accounts.len(), 1);

        f.pages = vec![
            (vec!["a@x.com"], Some("1"), None),
            (vec!["!a@x.com"], None, None),
        ];
        let o = read(&f).await.unwrap();
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
        let e = read(&f).await.unwrap_err();
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
        let results = apply_once(&f, actions, false, &RateLimiter::unlimited(), &mut |_| {}).await;
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
        let results = apply_once(
            &f,
            vec![
                action(Operation::Create, "a@x.com"),
                action(Operation::Create, "b@x.com"),
                action(Operation::Create, "c@x.com"),
            ],
            false,
            &l,
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
        apply_once(
            &f,
            vec![
                action(Operation::Create, "a@x.com"),
                action(Operation::Create, "b@x.com"),
                action(Operation::Create, "c@x.com"),
            ],
            false,
            &l,
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
    async fn apply_once_never_retries_and_stops_after_a_refusal() {
        let f = Fake::new();
        f.apply_errors
            .lock()
            .unwrap()
            .push(ConnectorError::Transient {
                detail: "503".into(),
            });
        let mut retries = 0;
        let results = apply_once(
            &f,
            vec![action(Operation::Create, "a@x.com")],
            false,
            &RateLimiter::unlimited(),
            &mut |p| {
                if matches!(p, Progress::Retrying { .. }) {
                    retries += 1;
                }
            },
        )
        .await;
        assert!(
            matches!(&results[..], [ActionResult::Failed { reason, retryable: true }] if reason.contains("CONN-0003")),
            "{results:?}"
        );
        assert_eq!(retries, 0);
        assert!(f.applied.lock().unwrap().is_empty(), "one call, no second");

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
        let results = apply_once(&f, actions, false, &RateLimiter::unlimited(), &mut |_| {}).await;
        assert!(
            matches!(&results[0], ActionResult::Failed { reason, retryable: false } if reason.contains("CONN-0001"))
        );
        assert!(
            matches!(&results[2], ActionResult::Failed { reason, .. } if reason.contains("not attempted"))
        );
        assert!(f.applied.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_retries_a_failed_page_as_the_policy_says() {
        let mut f = Fake::new();
        f.pages = vec![
            (vec!["a@x.com"], Some("1"), None),
            (vec!["b@x.com"], None, None),
        ];
        // Popped from the end: a rate limit with Retry-After, then a 503.
        *f.list_errors.lock().unwrap() = vec![
            ConnectorError::Transient {
                detail: "503".into(),
            },
            ConnectorError::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            },
        ];
        let l = RateLimiter::unlimited();
        let mut retries = Vec::new();
        let started = tokio::time::Instant::now();
        let o = read_all_with_progress(&f, &l, &fast(), &DriverOptions::default(), &mut |p| {
            if let Progress::Retrying { attempt, delay, .. } = p {
                retries.push((*attempt, *delay));
            }
        })
        .await
        .unwrap();
        assert!(o.complete);
        assert_eq!(o.accounts.len(), 2);
        assert_eq!(retries.len(), 2, "{retries:?}");
        assert_eq!(
            retries[0],
            (1, Duration::from_secs(30)),
            "Retry-After is the floor"
        );
        assert!(started.elapsed() >= Duration::from_secs(30));

        // Out of attempts: the policy's bound ends the read.
        *f.list_errors.lock().unwrap() = (0..3)
            .map(|_| ConnectorError::Transient {
                detail: "503".into(),
            })
            .collect();
        let two = RetryPolicy {
            max_attempts: 2,
            ..fast()
        };
        let e = read_all(&f, &l, &two, &DriverOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "CONN-0003");

        // A Retry-After over the ceiling ends the retries at once.
        *f.list_errors.lock().unwrap() = vec![ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(3_600)),
        }];
        let started = tokio::time::Instant::now();
        let e = read_all(&f, &l, &fast(), &DriverOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "CONN-0002");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
