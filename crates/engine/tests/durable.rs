//! Durable execution against the Expensify simulator, in one process:
//! retries after lost responses, `Retry-After`, dead letters, quarantine
//! and its lifting, idempotent re-application, and the long-running worker.
//! Each verdict comes from the simulator's effect log and the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_connectors::driver::Progress;
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector, attr};
use roster_connectors::{RateWindow, SecretString};
use roster_core::plan::Action;
use roster_core::{ConnectionId, Email, EmployeeId, Operation, Plan, Policy};
use roster_engine::{Engine, ExecutorOptions};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, Fault, RunningSim, seed_policies,
};
use roster_store::{ActionState, ExecState, PlanId, Store, TaskFilter, TaskOutcome};

const USER: &str = "roster_durable@example.com";
const SECRET: &str = "durable-secret";

struct Fx {
    sim: RunningSim,
    engine: Engine,
    _dir: tempfile::TempDir,
    policy: String,
}

async fn fixture(sim_config: impl FnOnce(ExpensifySimConfig) -> ExpensifySimConfig) -> Fx {
    let sim = ExpensifySim::start(sim_config(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_seed(2, 5),
    ))
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("roster.db").display().to_string())
        .await
        .expect("store");
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(sim.url());
    config.batch_size = 10;
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    let mut engine = Engine::new(store, Policy::default());
    engine.add_connector(Arc::new(
        ExpensifyConnector::new(config).expect("connector"),
    ));
    engine.executor = ExecutorOptions {
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(500),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        idle_poll: Duration::from_millis(20),
        quarantine_after_auth_failures: 2,
        ..ExecutorOptions::default()
    };
    engine.driver.initial_backoff = Duration::from_millis(20);
    engine.driver.max_attempts = 2;
    let policy = seed_policies(2, 0)[0].id.clone();
    Fx {
        sim,
        engine,
        _dir: dir,
        policy,
    }
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

async fn save(engine: &Engine, actions: Vec<Action>) -> PlanId {
    let plan = Plan {
        actions,
        findings: vec![],
        classification: BTreeMap::new(),
        observed_digest: "d".into(),
        approvals: BTreeMap::new(),
        guards: Default::default(),
    };
    engine
        .store
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
    let fx = fixture(|c| c).await;
    let plan = save(&fx.engine, (0..30).map(|n| create(n, &fx.policy)).collect()).await;
    // The first two calls are processed by the app, but the answers are
    // lost (HTTP 500 after applying).
    fx.sim.set_fault_for(Fault::LoseResponse, 2);
    let report = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(report.applied_total(), 30, "{report:?}");
    assert!(report.failed.is_empty() && report.pending == 0);
    assert_eq!(added(&fx), 30, "each hire added exactly once");
    assert_eq!(fx.sim.effects().len(), 30);
    let tasks = fx.engine.store.tasks(&TaskFilter::default()).await.unwrap();
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
    let plan = save(&fx.engine, (0..5).map(|n| create(n, &fx.policy)).collect()).await;
    fx.sim.set_fault_for(Fault::RateLimitStorm, 1);
    let mut retries = Vec::new();
    let started = Instant::now();
    let report = fx
        .engine
        .apply(&plan, &mut |_, p| {
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
    let t = &fx.engine.store.tasks(&TaskFilter::default()).await.unwrap()[0];
    assert_eq!(t.attempts, 2, "the 429 counted as one attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_become_dead_letters_with_the_vendors_reason() {
    let fx = fixture(|c| c).await;
    let mut bad = create(99, "FFFFFFFFFFFFFFFF");
    bad.email = Email::parse("nobody@example.com").unwrap();
    let mut manual = create(98, &fx.policy);
    manual.connection = ConnectionId::new("slack");
    let plan = save(&fx.engine, vec![create(0, &fx.policy), bad, manual]).await;
    let report = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(report.applied_total(), 1);
    assert_eq!(report.manual, 1);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].2.contains("No policy found"),
        "{:?}",
        report.failed
    );
    let actions = fx.engine.store.actions(&plan).await.unwrap();
    assert_eq!(
        actions.iter().map(|a| a.state).collect::<Vec<_>>(),
        vec![ActionState::Done, ActionState::Failed, ActionState::Manual]
    );
    let dead = fx
        .engine
        .store
        .tasks(&TaskFilter {
            state: Some(ExecState::Dead),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "a refusal is not retried");
    let audit = fx.engine.store.audit_since(0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.kind == "action.failed" && e.subject == "expensify:nobody@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_quarantine_the_connection_until_resumed() {
    let fx = fixture(|c| c).await;
    let plan = save(&fx.engine, (0..25).map(|n| create(n, &fx.policy)).collect()).await;
    fx.sim.set_fault(Fault::Unauthorized);
    let report = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
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
        requests, 2,
        "quarantined after two refused batches, not hammering"
    );
    let conn = fx
        .engine
        .store
        .connection(&ConnectionId::new("expensify"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.status, "quarantined");
    let tasks = fx.engine.store.tasks(&TaskFilter::default()).await.unwrap();
    assert!(
        tasks.iter().all(|t| t.attempts == 0),
        "refusals are refunded"
    );

    // Applying again while quarantined sends nothing.
    let again = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(again.pending, 25);
    assert_eq!(fx.sim.counters().requests, requests);

    // Fixed and resumed: everything goes through.
    fx.sim.set_fault(Fault::None);
    let id = ConnectionId::new("expensify");
    let now = 1_900_000_000_000;
    assert!(fx.engine.store.resume_connection(&id, now).await.unwrap());
    let report = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(report.applied_total(), 25);
    assert!(report.quarantined.is_empty());
    assert_eq!(added(&fx), 25);
    let audit = fx.engine.store.audit_since(0).await.unwrap();
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
    let plan = save(&fx.engine, (0..12).map(|n| create(n, &fx.policy)).collect()).await;
    let first = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    let requests = fx.sim.counters().requests;
    let second = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(first.applied_total(), 12);
    assert_eq!(
        second.applied_total(),
        12,
        "the report covers the whole plan"
    );
    assert_eq!(fx.sim.counters().requests, requests, "nothing sent again");
    assert_eq!(
        fx.engine
            .store
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        12
    );
    assert_eq!(added(&fx), 12);
    fx.engine
        .store
        .verify_audit()
        .await
        .expect("audit verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_enqueued_plans_until_stopped() {
    let fx = fixture(|c| c).await;
    let a = save(&fx.engine, (0..8).map(|n| create(n, &fx.policy)).collect()).await;
    let b = save(&fx.engine, (8..20).map(|n| create(n, &fx.policy)).collect()).await;
    for p in [&a, &b] {
        let (enqueued, manual) = fx.engine.enqueue_plan(p).await.expect("enqueue");
        assert_eq!(manual, 0);
        assert!(enqueued.inserted > 0);
    }
    let store = fx.engine.store.clone();
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
    tokio::time::timeout(Duration::from_secs(30), fx.engine.run_worker(stop))
        .await
        .expect("the worker stops when asked")
        .expect("worker");
    assert_eq!(added(&fx), 20);
    for p in [&a, &b] {
        let actions = fx.engine.store.actions(p).await.unwrap();
        assert!(actions.iter().all(|x| x.state == ActionState::Done));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_actions_keep_failing_is_quarantined() {
    let fx = fixture(|c| c).await;
    // Every action names a workspace that does not exist: Expensify skips
    // each one. Batches of 10; the fifth failed batch trips the ratio.
    let plan = save(
        &fx.engine,
        (0..70).map(|n| create(n, "FFFFFFFFFFFFFFFF")).collect(),
    )
    .await;
    let report = fx.engine.apply(&plan, &mut |_, _| {}).await.expect("apply");
    assert_eq!(report.failed.len(), 50, "{report:?}");
    assert_eq!(report.pending, 20);
    assert_eq!(report.quarantined.len(), 1);
    assert!(report.quarantined[0].1.contains("5 of the last 5 batches"));
    assert_eq!(fx.sim.counters().jobs.get("update:employees"), Some(&5));
    assert!(fx.sim.effects().is_empty());
}
