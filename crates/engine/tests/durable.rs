//! Durable execution against the Expensify simulator, in one process:
//! retries after lost responses, `Retry-After`, dead letters, quarantine
//! and its lifting, idempotent re-application, and the long-running worker.
//! Each verdict comes from the simulator's effect log and the store.
//!
//! Plans are carried out the only way there is, through [`Roster`]: the
//! one check, then apply. Most plans here are made by hand (these tests are
//! about executing actions, not planning them); they cover no governed
//! connection, so the check's re-read finds them current. Faults are set
//! after the check, so that its read does not take them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_connectors::driver::Progress;
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector, attr};
use roster_connectors::retry::RetryPolicy;
use roster_connectors::{Connector, RateLimiter, RateWindow, SecretString};
use roster_core::plan::Action;
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Email, EmployeeId, Operation, Plan, Policy, Principal};
use roster_engine::{
    ApplyReport, Approved, Engine, EngineError, ExecutorOptions, PlanScope, Roster, StoreBudget,
};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, Fault, RunningSim, seed_policies,
};
use roster_store::{ActionState, ExecState, PlanId, Store, TaskFilter, TaskOutcome};

const USER: &str = "roster_durable@example.com";
const SECRET: &str = "durable-secret";

struct Fx {
    sim: RunningSim,
    roster: Roster,
    _dir: tempfile::TempDir,
    policy: String,
}

async fn fixture(sim_config: impl FnOnce(ExpensifySimConfig) -> ExpensifySimConfig) -> Fx {
    fixture_with(sim_config, |_| {}).await
}

/// [`fixture`], with `tweak` setting the engine up before it goes behind
/// [`Roster`].
async fn fixture_with(
    sim_config: impl FnOnce(ExpensifySimConfig) -> ExpensifySimConfig,
    tweak: impl FnOnce(&mut Engine),
) -> Fx {
    let sim = ExpensifySim::start(sim_config(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_seed(2, 5),
    ))
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = engine_over(&db_path(&dir), &sim.url(), 0.01).await;
    tweak(&mut engine);
    let policy = seed_policy();
    Fx {
        sim,
        roster: Roster::new(engine),
        _dir: dir,
        policy,
    }
}

/// The first seeded Expensify workspace.
fn seed_policy() -> String {
    seed_policies(2, 0)[0].id.clone()
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

/// The one check of a stored plan (re-reading the apps).
async fn check(roster: &Roster, plan: &PlanId) -> Approved {
    roster
        .check(&operator(), plan, &mut |_, _| {})
        .await
        .expect("check")
}

/// Checks and applies a stored plan.
async fn apply(roster: &Roster, plan: &PlanId) -> ApplyReport {
    let approved = check(roster, plan).await;
    roster
        .apply(approved, &mut |_, _| {})
        .await
        .expect("apply")
        .0
}

fn db_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("roster.db").display().to_string()
}

/// An engine over the store at `db` (its own handle, as another process
/// would have) with its own connector to the simulator at `url`, windows
/// scaled by `scale`, paced by the store-backed budget.
async fn engine_over(db: &str, url: &str, scale: f64) -> Engine {
    let store = Store::open(db).await.expect("store");
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(url);
    config.batch_size = 10;
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(scale))
        .collect();
    let connector = Arc::new(ExpensifyConnector::new(config).expect("connector"));
    // The store-backed budget the engine installs by default, with a wider
    // margin: scaled windows are short, and two busy cores delay requests
    // between our clock and the simulator's by more than the default 5 ms.
    let budget = StoreBudget::new(
        store.clone(),
        connector.id().clone(),
        connector.capabilities().rate_limits,
    )
    .with_margin(Duration::from_millis(40));
    let mut engine = Engine::new(store, Policy::default());
    engine.add_connector_with_budget(connector, Arc::new(budget));
    engine.executor = ExecutorOptions {
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(500),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        idle_poll: Duration::from_millis(20),
        quarantine_after_auth_failures: 2,
        ..ExecutorOptions::default()
    };
    engine
}

fn create(n: usize, policy: &str) -> Action {
    let mail = format!("hire{n}@example.com");
    Action {
        connection: ConnectionId::new("expensify"),
        operation: Operation::Create,
        employee_id: Some(EmployeeId::new(format!("H{n}"))),
        email: Email::parse(&mail).expect("email"),
        account: None,
        attributes: BTreeMap::from([
            (attr::POLICY_ID.to_string(), policy.to_string()),
            (
                attr::MANAGER_EMAIL.to_string(),
                "manager@example.com".to_string(),
            ),
        ]),
        changes: vec![],
        reason: "joined".into(),
        cause: roster_core::Cause::Grant,
    }
}

/// Stores a hand-made plan. It covers no governed connection (its
/// classification is empty), so its observed digest is that of nothing
/// and the check's re-read finds it current.
async fn save(roster: &Roster, actions: Vec<Action>) -> PlanId {
    let plan = Plan {
        actions,
        findings: vec![],
        classification: BTreeMap::new(),
        observed_digest: roster_core::plan::observed_digest(&[]),
        approvals: BTreeMap::new(),
        ..Plan::default()
    };
    roster
        .store()
        .save_plan(&plan, 1_700_000_000_000)
        .await
        .expect("save")
}

fn added(fx: &Fx) -> usize {
    fx.sim
        .effects()
        .iter()
        .filter(|e| e.kind == EffectKind::Added)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_are_retried_without_applying_twice() {
    // The order is deterministic, not a race with the retry timer: the
    // first two batches are lost, the third goes through, and only then
    // (a fixed 2 s later, no jitter) are the lost ones retried. With a
    // short jittered backoff a loaded machine let a retry of batch 1 (and
    // its check-read) take the second fault instead, changing how many
    // tasks were rechecked.
    let fx = fixture_with(
        |c| c,
        |e| {
            e.executor.retry.initial_backoff = Duration::from_secs(2);
            e.executor.retry.jitter = false;
        },
    )
    .await;
    let plan = save(&fx.roster, (0..30).map(|n| create(n, &fx.policy)).collect()).await;
    let approved = check(&fx.roster, &plan).await;
    // The first two calls are processed by the app, but the answers are
    // lost (HTTP 500 after applying).
    fx.sim.set_fault_for(Fault::LoseResponse, 2);
    let (report, _) = fx
        .roster
        .apply(approved, &mut |_, _| {})
        .await
        .expect("apply");
    assert_eq!(report.applied_total(), 30, "{report:?}");
    assert!(report.failed.is_empty() && report.pending == 0);
    assert_eq!(added(&fx), 30, "each hire added exactly once");
    assert_eq!(fx.sim.effects().len(), 30);
    let tasks = fx
        .roster
        .store()
        .tasks(&TaskFilter::default())
        .await
        .unwrap();
    let rechecked = tasks
        .iter()
        .filter(|t| t.outcome == Some(TaskOutcome::AlreadyApplied))
        .count();
    // The lost batches came back uncertain; a read showed their hires
    // present, so they were settled without sending them again.
    assert_eq!(rechecked, 20, "{tasks:#?}");
    assert!(tasks.iter().all(|t| t.state == ExecState::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_durably() {
    let fx = fixture(|c| c.with_retry_after_secs(1)).await;
    let plan = save(&fx.roster, (0..5).map(|n| create(n, &fx.policy)).collect()).await;
    let approved = check(&fx.roster, &plan).await;
    fx.sim.set_fault_for(Fault::RateLimitStorm, 1);
    let mut retries = Vec::new();
    let started = Instant::now();
    let (report, _) = fx
        .roster
        .apply(approved, &mut |_, p| {
            if let Progress::Retrying { delay, .. } = p {
                retries.push(*delay);
            }
        })
        .await
        .expect("apply");
    assert_eq!(report.applied_total(), 5);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the app asked for 1 s; roster came back after {:?}",
        started.elapsed()
    );
    assert_eq!(retries.len(), 1);
    assert!(retries[0] >= Duration::from_millis(900), "{retries:?}");
    assert_eq!(added(&fx), 5);
    let t = &fx
        .roster
        .store()
        .tasks(&TaskFilter::default())
        .await
        .unwrap()[0];
    assert_eq!(t.attempts, 2, "the 429 counted as one attempt");
}

/// The retry policy's ceiling on `Retry-After`: an app asking for a longer
/// pause than roster waits ends the task with the app's request in its
/// reason, instead of holding every caller of the connection that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_over_the_ceiling_ends_the_task_without_stalling() {
    let fx = fixture_with(
        |c| c.with_retry_after_secs(30),
        |e| e.executor.retry.max_retry_after = Duration::from_secs(5),
    )
    .await;
    let plan = save(&fx.roster, vec![create(0, &fx.policy)]).await;
    let approved = check(&fx.roster, &plan).await;
    fx.sim.set_fault_for(Fault::RateLimitStorm, 1);
    let started = Instant::now();
    let (report, _) = fx
        .roster
        .apply(approved, &mut |_, _| {})
        .await
        .expect("apply");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "nothing waited for the 30 s: {:?}",
        started.elapsed()
    );
    assert_eq!(report.applied_total(), 0);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let why = &report.failed[0].2;
    assert!(
        why.contains("CONN-0002") && why.contains("30 s") && why.contains("longer than"),
        "{why}"
    );
    assert_eq!(added(&fx), 0);
    let t = &fx
        .roster
        .store()
        .tasks(&TaskFilter::default())
        .await
        .unwrap()[0];
    assert_eq!((t.state, t.attempts), (ExecState::Dead, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_become_dead_letters_with_the_vendors_reason() {
    let fx = fixture(|c| c).await;
    let mut bad = create(99, "FFFFFFFFFFFFFFFF");
    bad.email = Email::parse("nobody@example.com").unwrap();
    let mut manual = create(98, &fx.policy);
    manual.connection = ConnectionId::new("slack");
    let plan = save(&fx.roster, vec![create(0, &fx.policy), bad, manual]).await;
    let report = apply(&fx.roster, &plan).await;
    assert_eq!(report.applied_total(), 1);
    assert_eq!(report.manual, 1);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].2.contains("No policy found"),
        "{:?}",
        report.failed
    );
    let actions = fx.roster.store().actions(&plan).await.unwrap();
    assert_eq!(
        actions.iter().map(|a| a.state).collect::<Vec<_>>(),
        vec![ActionState::Done, ActionState::Failed, ActionState::Manual]
    );
    let dead = fx
        .roster
        .store()
        .tasks(&TaskFilter {
            state: Some(ExecState::Dead),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "a refusal is not retried");
    let audit = fx.roster.store().audit_since(0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.kind == "action.failed" && e.subject == "expensify:nobody@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_quarantine_the_connection_until_resumed() {
    let fx = fixture(|c| c).await;
    let plan = save(&fx.roster, (0..25).map(|n| create(n, &fx.policy)).collect()).await;
    let approved = check(&fx.roster, &plan).await;
    // Requests from here on: the check's read went through before the fault.
    let read_requests = fx.sim.counters().requests;
    fx.sim.set_fault(Fault::Unauthorized);
    let (report, _) = fx
        .roster
        .apply(approved, &mut |_, _| {})
        .await
        .expect("apply");
    assert_eq!(report.applied_total(), 0);
    assert_eq!(report.pending, 25, "{report:?}");
    assert!(
        report.failed.is_empty(),
        "nothing is dead-lettered for bad credentials"
    );
    assert_eq!(report.quarantined.len(), 1);
    assert!(report.quarantined[0].1.contains("refused"), "{report:?}");
    let requests = fx.sim.counters().requests;
    assert_eq!(
        requests - read_requests,
        2,
        "quarantined after two refused batches, not hammering"
    );
    let conn = fx
        .roster
        .store()
        .connection(&ConnectionId::new("expensify"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.status, "quarantined");
    let tasks = fx
        .roster
        .store()
        .tasks(&TaskFilter::default())
        .await
        .unwrap();
    assert!(
        tasks.iter().all(|t| t.attempts == 0),
        "refusals are refunded"
    );

    // Applying again while quarantined sends nothing (the plan has
    // started, so the check resumes it without reading).
    let again = apply(&fx.roster, &plan).await;
    assert_eq!(again.pending, 25);
    assert_eq!(fx.sim.counters().requests, requests);

    // Fixed and resumed: everything goes through.
    fx.sim.set_fault(Fault::None);
    let id = ConnectionId::new("expensify");
    let now = 1_900_000_000_000;
    assert!(fx.roster.store().resume_connection(&id, now).await.unwrap());
    let report = apply(&fx.roster, &plan).await;
    assert_eq!(report.applied_total(), 25);
    assert!(report.quarantined.is_empty());
    assert_eq!(added(&fx), 25);
    let audit = fx.roster.store().audit_since(0).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == "connection.quarantined")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_twice_changes_nothing_the_second_time() {
    let fx = fixture(|c| c).await;
    let plan = save(&fx.roster, (0..12).map(|n| create(n, &fx.policy)).collect()).await;
    let first = apply(&fx.roster, &plan).await;
    let requests = fx.sim.counters().requests;
    // Everything ran: the one check refuses to carry the plan out again.
    let second = fx.roster.check(&operator(), &plan, &mut |_, _| {}).await;
    assert_eq!(first.applied_total(), 12);
    assert!(
        matches!(second, Err(EngineError::AlreadyApplied { .. })),
        "{second:?}"
    );
    assert_eq!(fx.sim.counters().requests, requests, "nothing sent again");
    assert_eq!(
        fx.roster
            .store()
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        12
    );
    assert_eq!(added(&fx), 12);
    fx.roster
        .store()
        .verify_audit()
        .await
        .expect("audit verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_enqueued_plans_until_stopped() {
    let fx = fixture(|c| c).await;
    let a = save(&fx.roster, (0..8).map(|n| create(n, &fx.policy)).collect()).await;
    let b = save(&fx.roster, (8..20).map(|n| create(n, &fx.policy)).collect()).await;
    for p in [&a, &b] {
        let approved = check(&fx.roster, p).await;
        let enqueued = fx.roster.enqueue(approved).await.expect("enqueue");
        assert_eq!(enqueued.manual, 0);
        assert!(enqueued.queued > 0);
    }
    let store = fx.roster.store().clone();
    let stop = async move {
        loop {
            let open = store
                .tasks(&TaskFilter::default())
                .await
                .unwrap()
                .iter()
                .any(|t| t.state != ExecState::Done);
            if !open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fx.roster.run_worker(stop))
        .await
        .expect("the worker stops when asked")
        .expect("worker");
    assert_eq!(added(&fx), 20);
    for p in [&a, &b] {
        let actions = fx.roster.store().actions(p).await.unwrap();
        assert!(actions.iter().all(|x| x.state == ActionState::Done));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_actions_keep_failing_is_quarantined() {
    let fx = fixture(|c| c).await;
    // Every action names a workspace that does not exist: Expensify skips
    // each one. Batches of 10; the fifth failed batch trips the ratio.
    let plan = save(
        &fx.roster,
        (0..70).map(|n| create(n, "FFFFFFFFFFFFFFFF")).collect(),
    )
    .await;
    let report = apply(&fx.roster, &plan).await;
    assert_eq!(report.failed.len(), 50, "{report:?}");
    assert_eq!(report.pending, 20);
    assert_eq!(report.quarantined.len(), 1);
    assert!(report.quarantined[0].1.contains("5 of the last 5 batches"));
    assert_eq!(fx.sim.counters().jobs.get("update:employees"), Some(&5));
    assert!(fx.sim.effects().is_empty());
}

fn hires(plan: &str, range: std::ops::Range<usize>) -> Vec<Action> {
    range.map(|n| create(n, plan)).collect()
}

/// Two engines on one store, as two processes (say `roster run` and a
/// `roster apply`), each with its own connector: together they never
/// exceed the app's window, because their turns come from the store. The
/// control shows the same work with a budget per process trips the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_sharing_a_store_share_the_rate_budget() {
    const SCALE: f64 = 0.05; // 5 per 500 ms, 20 per 3 s
    let fx = fixture(|c| c).await;
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(SCALE)
            .with_seed(2, 5),
    )
    .await
    .expect("simulator");
    let db = db_path(&fx._dir);
    let mut a = engine_over(&db, &sim.url(), SCALE).await;
    let mut b = engine_over(&db, &sim.url(), SCALE).await;
    for e in [&mut a, &mut b] {
        e.executor.worker_id = format!("w-{}", rand_suffix());
    }
    let (a, b) = (Roster::new(a), Roster::new(b));
    let pa = save(&a, hires(&fx.policy, 0..50)).await;
    let pb = save(&b, hires(&fx.policy, 50..100)).await;
    let (aa, ab) = (check(&a, &pa).await, check(&b, &pb).await);
    // The checks' reads count too (within the window); the writes follow.
    let read_requests = sim.counters().requests;
    let started = Instant::now();
    let (mut qa, mut qb) = (
        |_: &ConnectionId, _: &Progress<'_>| {},
        |_: &ConnectionId, _: &Progress<'_>| {},
    );
    let (ra, rb) = tokio::join!(a.apply(aa, &mut qa), b.apply(ab, &mut qb));
    let elapsed = started.elapsed();
    assert_eq!(
        ra.unwrap().0.applied_total() + rb.unwrap().0.applied_total(),
        100
    );
    let counters = sim.counters();
    assert_eq!(counters.rate_limit_violations, 0, "{counters:?}");
    assert_eq!(
        counters.requests - read_requests,
        10,
        "one request per batch of 10"
    );
    // Ten requests under 5 per 500 ms: the second five waited for the
    // first to leave the window, whichever engine sent them.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");

    // Control: a budget per process, the same work, the app pushes back.
    let control = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(SCALE)
            .with_seed(2, 5),
    )
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let mut engines = Vec::new();
    for _ in 0..2 {
        let mut e = engine_over(&db_path(&dir), &control.url(), SCALE).await;
        let mut config = ExpensifyConfig::new(
            ConnectionId::new("expensify"),
            USER,
            SecretString::new(SECRET),
        )
        .with_base_url(control.url());
        config.batch_size = 10;
        config.rate_limits = roster_connectors::expensify::documented_rate_limits()
            .into_iter()
            .map(|w: RateWindow| w.scaled(SCALE))
            .collect();
        let c = Arc::new(ExpensifyConnector::new(config).unwrap());
        let own = Arc::new(RateLimiter::new(c.capabilities().rate_limits));
        e.add_connector_with_budget(c, own);
        e.executor.worker_id = format!("w-{}", rand_suffix());
        engines.push(Roster::new(e));
    }
    let pa = save(&engines[0], hires(&fx.policy, 0..50)).await;
    let pb = save(&engines[1], hires(&fx.policy, 50..100)).await;
    let (aa, ab) = (check(&engines[0], &pa).await, check(&engines[1], &pb).await);
    let (mut qa, mut qb) = (
        |_: &ConnectionId, _: &Progress<'_>| {},
        |_: &ConnectionId, _: &Progress<'_>| {},
    );
    let (ra, rb) = tokio::join!(engines[0].apply(aa, &mut qa), engines[1].apply(ab, &mut qb));
    assert_eq!(
        ra.unwrap().0.applied_total() + rb.unwrap().0.applied_total(),
        100
    );
    assert!(
        control.counters().rate_limit_violations > 0,
        "without a shared budget two processes exceed the window"
    );
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Successive commands (each a new engine on the same store, as `roster
/// plan` then `roster apply` are new processes) read back to back and stay
/// within the window together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successive_commands_stay_within_the_window() {
    const SCALE: f64 = 0.05;
    let fx = fixture(|c| c).await;
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(SCALE)
            .with_seed(3, 5),
    )
    .await
    .expect("simulator");
    let db = db_path(&fx._dir);
    let mut waited = Vec::new();
    for _ in 0..4 {
        let e = Roster::new(engine_over(&db, &sim.url(), SCALE).await);
        let outcomes = e
            .read(&operator(), &mut |_, p| {
                if let Progress::Waiting { delay } = p {
                    waited.push(*delay);
                }
            })
            .await
            .expect("read");
        assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");
        e.store().close().await;
    }
    let counters = sim.counters();
    assert!(
        counters.requests > 5,
        "the reads together need more than one window: {counters:?}"
    );
    assert_eq!(counters.rate_limit_violations, 0, "{counters:?}");
    assert!(waited.is_empty(), "waits under a second are not reported");
}

/// The kill switch: while paused, apply leaves the work queued and sends
/// nothing; resumed, the same plan runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_connection_gets_no_writes_until_resumed() {
    let fx = fixture(|c| c).await;
    let id = ConnectionId::new("expensify");
    let alice = Principal::new(PrincipalKind::User, "alice");
    let bob = Principal::new(PrincipalKind::User, "bob");
    let plan = save(&fx.roster, hires(&fx.policy, 0..12)).await;
    assert!(
        fx.roster
            .pause(&alice, Some(&id), Some("vendor incident"))
            .await
            .unwrap()
    );
    // Reads are not writes: the check reads the app while it is paused.
    let approved = check(&fx.roster, &plan).await;
    let read_requests = fx.sim.counters().requests;
    let (report, _) = fx
        .roster
        .apply(approved, &mut |_, _| {})
        .await
        .expect("apply");
    assert_eq!(report.applied_total(), 0);
    assert_eq!(report.pending, 12, "{report:?}");
    assert_eq!(report.paused.len(), 1, "{report:?}");
    assert!(report.paused[0].1.contains("alice"), "{report:?}");
    assert!(report.quarantined.is_empty(), "a pause is not a quarantine");
    assert_eq!(
        fx.sim.counters().requests,
        read_requests,
        "nothing was sent"
    );
    let tasks = fx
        .roster
        .store()
        .tasks(&TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 12);
    assert!(tasks.iter().all(|t| t.state == ExecState::Ready));

    // Plans still compute while paused: reads are not writes.
    let outcomes = fx.roster.read(&alice, &mut |_, _| {}).await.unwrap();
    assert!(outcomes[0].error.is_none());
    assert!(fx.sim.effects().is_empty());

    // A pause of everything holds too, and lifting expensify's own pause
    // does not lift it.
    assert!(fx.roster.pause(&bob, None, None).await.unwrap());
    assert!(fx.roster.resume(&alice, Some(&id)).await.unwrap());
    let report = apply(&fx.roster, &plan).await;
    assert_eq!(report.pending, 12);
    assert!(report.paused[0].1.contains("bob"), "{report:?}");
    assert!(fx.sim.effects().is_empty());

    assert!(fx.roster.resume(&bob, None).await.unwrap());
    let report = apply(&fx.roster, &plan).await;
    assert_eq!(report.applied_total(), 12, "{report:?}");
    assert!(report.paused.is_empty());
    assert_eq!(added(&fx), 12);

    let audit = fx.roster.store().audit_since(0).await.unwrap();
    let switches: Vec<(String, String, String)> = audit
        .iter()
        .filter(|e| e.kind.starts_with("connection.paused") || e.kind == "connection.resumed")
        .map(|e| (e.kind.clone(), e.subject.clone(), e.actor.clone()))
        .collect();
    let want = |k: &str, s: &str, a: &str| (k.to_string(), s.to_string(), a.to_string());
    assert_eq!(
        switches,
        vec![
            want("connection.paused", "expensify", "user:alice"),
            want("connection.paused", "*", "user:bob"),
            want("connection.resumed", "expensify", "user:alice"),
            want("connection.resumed", "*", "user:bob"),
        ]
    );
}

const HR: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date";

/// A process dies mid-apply (here: the apply is dropped once the app has
/// applied something, its leases left behind). A new process's apply
/// resumes the plan instead of calling it stale, finishes it, applies no
/// effect twice and stays within the app's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_after_a_crash_resumes_instead_of_calling_the_plan_stale() {
    let policy = format!(
        "[tables.ws]\n\"CC-1\" = \"{}\"\n\n[[rules]]\nname = \"everyone\"\nconnection = \"expensify\"\n\
         set = {{ role = \"user\", manager_email = \"boss@example.com\", policy_id = {{ lookup = \"cost_center\", table = \"ws\" }} }}\n",
        seed_policy()
    );
    let policy = Policy::parse("policy.toml", &policy).expect("policy");
    let fx = fixture_with(
        |c| c,
        |e| {
            e.executor.lease = Duration::from_millis(800);
            e.executor.heartbeat = Duration::from_millis(200);
            e.policy = policy.clone();
        },
    )
    .await;
    let op = operator();
    let mut csv = format!("{HR}\n");
    for n in 0..60 {
        csv.push_str(&format!(
            "J{n},joiner{n}@example.com,Jo,Iner{n},Finance,CC-1,,active,2020-01-01,\n"
        ));
    }
    let people = roster_core::hr_csv::parse("people.csv", &csv).expect("people");
    fx.roster
        .import_people(&op, &people, "people.csv")
        .await
        .unwrap();
    let outcomes = fx.roster.read(&op, &mut |_, _| {}).await.unwrap();
    let readable: Vec<ConnectionId> = outcomes.iter().map(|o| o.connection.clone()).collect();
    let made = fx
        .roster
        .plan(&op, PlanScope::Connections(readable.clone()))
        .await
        .expect("plan");
    let (plan, planned) = (made.id.clone(), made.plan.clone());
    drop(made);
    let creates = planned
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Create)
        .count();
    assert_eq!(creates, 60, "{planned:?}");
    if !fx
        .roster
        .approval_status(&plan)
        .await
        .unwrap()
        .waiting
        .is_empty()
    {
        let approver = Principal::new(PrincipalKind::User, "test");
        fx.roster
            .approve(&approver, &plan, None, "hires")
            .await
            .unwrap();
    }
    let approved = check(&fx.roster, &plan).await;

    // The crash: stop the apply as soon as the app shows an effect.
    let sim = fx.sim.handle().clone();
    let crash = async move {
        while sim.effects().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let mut quiet = |_: &ConnectionId, _: &Progress<'_>| {};
    tokio::select! {
        r = fx.roster.apply(approved, &mut quiet) => panic!("finished before the crash: {r:?}"),
        () = crash => {}
    }
    let before = fx.sim.effects().len();
    assert!(before < 60, "the crash left work to do");

    // A new process: its own store handle, engine and worker id.
    let mut again = engine_over(&db_path(&fx._dir), &fx.sim.url(), 0.01).await;
    again.policy = fx.roster.engine().policy.clone();
    again.executor.lease = Duration::from_millis(800);
    let again = Roster::new(again);
    let approved = again
        .check(&op, &plan, &mut |_, _| {})
        .await
        .expect("a started plan resumes; its own effects do not make it stale");
    let (report, _) = again.apply(approved, &mut |_, _| {}).await.expect("apply");
    assert_eq!(report.applied_total(), 60, "{report:?}");
    assert!(report.failed.is_empty() && report.pending == 0);
    let mut seen = std::collections::BTreeMap::new();
    for e in fx.sim.effects() {
        assert_eq!(e.kind, EffectKind::Added, "{e:?}");
        *seen.entry(e.email.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 60);
    assert!(
        seen.values().all(|n| *n == 1),
        "an effect applied twice: {seen:?}"
    );
    assert_eq!(fx.sim.counters().rate_limit_violations, 0);

    // A plan that has not started applying is still checked: the app
    // changed since this one was computed (the hires above).
    let stale = fx
        .roster
        .plan(&op, PlanScope::Connections(readable))
        .await
        .expect("plan")
        .id;
    assert!(fx.sim.handle().put_employee(
        &fx.policy,
        roster_sim::expensify::SimEmployee::new("late@example.com", "boss@example.com", "L1"),
    ));
    let err = again.check(&op, &stale, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, EngineError::Stale { .. }), "{err}");
    assert!(err.to_string().contains("stale"), "{err}");
}

/// The shared budget never lets a request go when it cannot reach the
/// record of what every process sent: with the store gone it says wait,
/// again and again, and goes again once a store answers. (Pacing alone
/// instead let several processes together exceed the app's limit; the
/// chaos suite's database outages caught it.) A hold the app asked for is
/// honoured even when sharing it failed.
#[tokio::test]
async fn the_shared_budget_waits_while_the_store_is_unreachable() {
    use roster_connectors::{RateBudget, Turn};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_path(&dir)).await.expect("store");
    let windows = vec![RateWindow::new(100, Duration::from_secs(1))];
    let budget = StoreBudget::new(store.clone(), ConnectionId::new("app"), windows.clone());
    assert!(matches!(budget.try_turn().await, Turn::Go));
    store.close().await;
    for _ in 0..5 {
        match budget.try_turn().await {
            Turn::Wait(d) => assert!(d <= Duration::from_secs(1), "{d:?}"),
            Turn::Go => panic!("a turn was given without the shared record"),
        }
    }
    budget.hold_for(Duration::from_millis(300)).await;
    let fresh = Store::open(&db_path(&dir)).await.expect("store again");
    let budget = StoreBudget::new(fresh.clone(), ConnectionId::new("app"), windows);
    assert!(
        matches!(budget.try_turn().await, Turn::Go),
        "back with the store"
    );
    budget.hold_for(Duration::from_millis(200)).await;
    assert!(
        matches!(budget.try_turn().await, Turn::Wait(_)),
        "the hold counts"
    );
    fresh.close().await;
}
