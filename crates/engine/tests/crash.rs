//! The crash test for durable execution.
//!
//! A plan of 2,250 Expensify actions (creates, manager changes, moves
//! between workspaces, deactivations) is applied by a worker *process*
//! that is killed with SIGKILL several times at random points and
//! restarted, then left to finish. The verdict comes from the simulator,
//! not from roster: its effect log must hold every intended change exactly
//! once and nothing else, and its final state must be the plan's.
//!
//! Half of the kills are aimed: the test waits until the simulator has just
//! applied a batch and kills the worker before it can record the result
//! (the worker's connector lingers a little after each call, as a slow
//! network or a busy database would). That is the one window where an
//! effect exists at the vendor but not in the store; the test checks that
//! it was hit, and that the restarted worker did not apply it twice.
//!
//! Every worker takes its rate turns from the store, so the restarts
//! together stay within the app's window: the simulator must count no
//! request over its limits. Every worker goes through the one check
//! `roster apply` makes before applying (there is no other way to apply):
//! the first checks the plan as a fresh one, and a restarted worker resumes
//! a plan whose apply has started rather than re-judging it. (That a
//! started plan's own effects never make it stale is shown with a real
//! plan in `durable.rs`; this hand-made plan covers no governed
//! connection, so a re-read finds it current either way.)
//!
//! The worker is this test binary itself, re-run with `--ignored --exact
//! crash_worker_process` and its instructions in environment variables, so
//! no extra binary ships with the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector, attr};
use roster_connectors::{
    ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError, ListRequest, Merge, Page,
    RateWindow, SecretString, Validation,
};
use roster_core::plan::{Action, AttributeChange};
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, Operation, Plan, Policy, Principal,
};
use roster_engine::{Engine, ExecutorOptions, Roster, StoreBudget};
use roster_sim::expensify::{Effect, EffectKind, ExpensifySim, ExpensifySimConfig, seed_policies};
use roster_store::{ActionState, ExecState, PlanId, PlanStatus, Store, TaskFilter, TaskOutcome};

const USER: &str = "roster_crash@example.com";
const SECRET: &str = "crash-test-secret";
const CONNECTION: &str = "expensify";
/// Real windows × this: 5 requests per 100 ms, 20 per 600 ms.
const RATE_SCALE: f64 = 0.01;
const POLICIES: usize = 10;
const PER_POLICY: usize = 175;
const BATCH: u32 = 20;
const LEASE_MS: u64 = 1_500;
/// How long the worker's connector lingers after the app answered, before
/// the result can be recorded: the window aimed kills land in.
const LINGER_MS: u64 = 60;
const KILLS: usize = 6;
const SEED: u64 = 0x5EED_C0A5;

const ENV_STORE: &str = "ROSTER_CRASH_STORE";
const ENV_URL: &str = "ROSTER_CRASH_SIM_URL";
const ENV_PLAN: &str = "ROSTER_CRASH_PLAN";
const ENV_WORKER: &str = "ROSTER_CRASH_WORKER_ID";

fn policy_id(i: usize) -> String {
    seed_policies(POLICIES, 0)[i].id.clone()
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("test email")
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The plan, and the effects the simulator must show for it.
fn plan_and_expected_effects() -> (Plan, Vec<(String, String, &'static str)>) {
    let conn = ConnectionId::new(CONNECTION);
    let pids: Vec<String> = (0..POLICIES).map(policy_id).collect();
    let mut actions = Vec::new();
    let mut expected: Vec<(String, String, &'static str)> = Vec::new();
    // Deactivations first, so they are in flight early and often.
    for (i, pid) in pids.iter().enumerate() {
        for j in 75..125 {
            let mail = format!("p{i}-e{j}@example.com");
            actions.push(Action {
                connection: conn.clone(),
                operation: Operation::Deactivate,
                employee_id: Some(EmployeeId::new(format!("E{i}-{j}"))),
                email: email(&mail),
                account: Some(AccountKey::new(mail.clone())),
                attributes: BTreeMap::new(),
                changes: vec![],
                reason: "left the company".into(),
                cause: roster_core::Cause::Left,
            });
            expected.push((pid.clone(), mail, "removed"));
        }
    }
    for n in 0..1_000 {
        let mail = format!("new{n}@example.com");
        let p = &pids[n % POLICIES];
        actions.push(Action {
            connection: conn.clone(),
            operation: Operation::Create,
            employee_id: Some(EmployeeId::new(format!("N{n}"))),
            email: email(&mail),
            account: None,
            attributes: attrs(&[
                (attr::POLICY_ID, p),
                (attr::MANAGER_EMAIL, "manager@example.com"),
                (attr::ROLE, "user"),
                (attr::FIRST_NAME, "New"),
                (attr::LAST_NAME, &format!("Hire{n}")),
            ]),
            changes: vec![],
            reason: "joined".into(),
            cause: roster_core::Cause::Grant,
        });
        expected.push((p.clone(), mail, "added"));
    }
    for i in 0..POLICIES {
        for j in 0..50 {
            let mail = format!("p{i}-e{j}@example.com");
            actions.push(Action {
                connection: conn.clone(),
                operation: Operation::Update,
                employee_id: Some(EmployeeId::new(format!("E{i}-{j}"))),
                email: email(&mail),
                account: Some(AccountKey::new(mail.clone())),
                attributes: attrs(&[
                    (attr::POLICY_ID, &pids[i]),
                    (attr::MANAGER_EMAIL, "new-boss@example.com"),
                ]),
                changes: vec![AttributeChange {
                    name: attr::MANAGER_EMAIL.into(),
                    before: Some("manager@example.com".into()),
                    after: Some("new-boss@example.com".into()),
                }],
                reason: "new manager".into(),
                cause: roster_core::Cause::Drift,
            });
            expected.push((pids[i].clone(), mail, "updated:managerEmail"));
        }
        for j in 50..75 {
            let mail = format!("p{i}-e{j}@example.com");
            let to = &pids[(i + 1) % POLICIES];
            actions.push(Action {
                connection: conn.clone(),
                operation: Operation::Update,
                employee_id: Some(EmployeeId::new(format!("E{i}-{j}"))),
                email: email(&mail),
                account: Some(AccountKey::new(mail.clone())),
                attributes: attrs(&[
                    (attr::POLICY_ID, to),
                    (attr::MANAGER_EMAIL, "manager@example.com"),
                ]),
                changes: vec![AttributeChange {
                    name: attr::POLICY_ID.into(),
                    before: Some(pids[i].clone()),
                    after: Some(to.clone()),
                }],
                reason: "moved department".into(),
                cause: roster_core::Cause::Drift,
            });
            expected.push((to.clone(), mail.clone(), "added"));
            expected.push((pids[i].clone(), mail, "removed"));
        }
    }
    let plan = Plan {
        actions,
        findings: vec![],
        classification: BTreeMap::new(),
        // It covers no governed connection: the digest of nothing.
        observed_digest: roster_core::plan::observed_digest(&[]),
        approvals: BTreeMap::new(),
        ..Plan::default()
    };
    (plan, expected)
}

fn describe(e: &Effect) -> (String, String, String) {
    let kind = match &e.kind {
        EffectKind::Added => "added".to_string(),
        EffectKind::Removed => "removed".to_string(),
        EffectKind::Updated { fields } => format!("updated:{}", fields.join(",")),
        EffectKind::EmailChanged { from } => format!("renamed-from:{from}"),
    };
    (e.policy_id.clone(), e.email.clone(), kind)
}

/// The Expensify connector, lingering after each apply as if the network
/// or the database were slow to hand the answer on.
struct Lingering {
    inner: ExpensifyConnector,
    linger: Duration,
}

#[async_trait]
impl Connector for Lingering {
    fn id(&self) -> &ConnectionId {
        self.inner.id()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn validate(&self) -> Result<Validation, ConnectorError> {
        self.inner.validate().await
    }
    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        self.inner.list_accounts(req).await
    }
    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let out = self.inner.apply(req).await;
        tokio::time::sleep(self.linger).await;
        out
    }
    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        self.inner.merge_duplicate(existing, duplicate)
    }
}

/// The worker process. Not a test of its own: `crash_test` runs it in a
/// child process (hence `#[ignore]`, so the suite never runs it directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by crash_test"]
async fn crash_worker_process() {
    let (Ok(store_path), Ok(url), Ok(plan), Ok(worker_id)) = (
        std::env::var(ENV_STORE),
        std::env::var(ENV_URL),
        std::env::var(ENV_PLAN),
        std::env::var(ENV_WORKER),
    ) else {
        panic!("crash_worker_process runs only as crash_test's child");
    };
    let store = Store::open(&store_path)
        .await
        .expect("worker opens the store");
    let mut config = ExpensifyConfig::new(
        ConnectionId::new(CONNECTION),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(url);
    config.batch_size = BATCH;
    config.timeout = Duration::from_secs(10);
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(RATE_SCALE))
        .collect();
    let connector = Lingering {
        inner: ExpensifyConnector::new(config).expect("connector"),
        linger: Duration::from_millis(LINGER_MS),
    };
    let mut engine = Engine::new(store.clone(), Policy::default());
    let connector = Arc::new(connector);
    // The engine's store-backed budget, with a wider margin than the
    // default for these 100 ms test windows on a busy machine.
    let budget = StoreBudget::new(
        store.clone(),
        connector.id().clone(),
        connector.capabilities().rate_limits,
    )
    .with_margin(Duration::from_millis(40));
    engine.add_connector_with_budget(connector, Arc::new(budget));
    engine.executor = ExecutorOptions {
        worker_id,
        lease: Duration::from_millis(LEASE_MS),
        heartbeat: Duration::from_millis(LEASE_MS / 5),
        retry: roster_connectors::retry::RetryPolicy {
            max_attempts: 12,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            ..Default::default()
        },
        idle_poll: Duration::from_millis(50),
        ..ExecutorOptions::default()
    };
    let plan = PlanId::new(plan);
    let roster = Roster::new(engine);
    // What `roster apply` checks first: a started plan resumes.
    let approved = roster
        .check(&Principal::service(), &plan, &mut |_, _| {})
        .await
        .expect("the plan passes the check (a started one resumes)");
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.expect("apply");
    println!(
        "worker finished: applied {}, failed {}, pending {}",
        report.applied_total(),
        report.failed.len(),
        report.pending
    );
    store.close().await;
}

fn spawn_worker(store: &str, url: &str, plan: &PlanId, worker_id: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--ignored",
            "--exact",
            "crash_worker_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_STORE, store)
        .env(ENV_URL, url)
        .env(ENV_PLAN, plan.as_str())
        .env(ENV_WORKER, worker_id)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

/// Plan actions whose effect the simulator already shows while their task
/// is still `running` under the killed worker's lease: applied at the
/// vendor, not yet recorded.
async fn applied_but_unrecorded(
    store: &Store,
    plan: &Plan,
    plan_id: &PlanId,
    killed: &str,
    effects: &[Effect],
) -> usize {
    let seen: BTreeSet<String> = effects.iter().map(|e| e.email.clone()).collect();
    let running = store
        .tasks(&TaskFilter {
            plan_id: Some(plan_id.clone()),
            state: Some(ExecState::Running),
            ..TaskFilter::default()
        })
        .await
        .expect("tasks");
    running
        .iter()
        .filter(|t| t.lease_owner.as_deref() == Some(killed))
        .filter(|t| seen.contains(&plan.actions[t.action_idx].email.normalized()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test() {
    let started = Instant::now();
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(RATE_SCALE)
            .with_seed(POLICIES, PER_POLICY),
    )
    .await
    .expect("simulator");
    let before = sim.policies();

    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("roster.db").display().to_string();
    let store = Store::open(&store_path).await.expect("store");
    let (plan, expected) = plan_and_expected_effects();
    assert!(plan.actions.len() >= 2_000);
    let plan_id = store
        .save_plan(&plan, 1_700_000_000_000)
        .await
        .expect("save plan");

    let mut rng = StdRng::seed_from_u64(SEED);
    let mut kills = 0usize;
    let mut caught_in_window = 0usize;
    let mut finished_early = false;
    for k in 0..KILLS {
        let worker_id = format!("crash-worker-{k}");
        let mut child = spawn_worker(&store_path, &sim.url(), &plan_id, &worker_id);
        let aimed = k % 2 == 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        if aimed {
            // Let it get going, then strike right after the simulator
            // applied something: the worker is lingering before recording.
            tokio::time::sleep(Duration::from_millis(rng.random_range(400..1_200))).await;
            let n = sim.effects().len();
            while sim.effects().len() == n && Instant::now() < deadline {
                if child.try_wait().expect("try_wait").is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..LINGER_MS / 2))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_500))).await;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "worker failed on its own: {status}");
            finished_early = true;
            break;
        }
        child.kill().expect("SIGKILL the worker");
        let status = child.wait().expect("wait for the killed worker");
        assert!(!status.success(), "the worker was killed, not finished");
        kills += 1;
        let effects = sim.effects();
        let window = applied_but_unrecorded(&store, &plan, &plan_id, &worker_id, &effects).await;
        caught_in_window += window;
        let done = store.task_counts(&plan_id).await.expect("counts");
        eprintln!(
            "kill {k} ({}) at {:.1?}: {} effects at the vendor, tasks {:?}, {window} applied but unrecorded",
            if aimed { "aimed" } else { "random" },
            started.elapsed(),
            effects.len(),
            done
        );
    }
    assert!(
        !finished_early,
        "the plan finished before all kills; slow the worker down"
    );
    assert_eq!(kills, KILLS);
    assert!(
        caught_in_window > 0,
        "no kill landed between the vendor applying a batch and roster recording it"
    );

    // The last worker runs to the end.
    let mut child = spawn_worker(&store_path, &sim.url(), &plan_id, "crash-worker-last");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the final worker did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "final worker: {status}");
    let elapsed = started.elapsed();

    // The verdict, from the vendor's side: every intended effect exactly
    // once, nothing else.
    let effects = sim.effects();
    let mut actual: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in &effects {
        *actual.entry(describe(e)).or_insert(0) += 1;
    }
    let mut want: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (p, m, k) in &expected {
        *want
            .entry((p.clone(), m.clone(), k.to_string()))
            .or_insert(0) += 1;
    }
    let twice: Vec<_> = actual.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "effects applied more than once: {twice:?}"
    );
    let missing: Vec<_> = want.keys().filter(|k| !actual.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} effects missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<_> = actual.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "unintended effects: {:?}",
        &extra[..extra.len().min(5)]
    );
    assert_eq!(effects.len(), expected.len());

    // And the vendor's state is the plan's.
    let pids: Vec<String> = (0..POLICIES).map(policy_id).collect();
    for i in 0..POLICIES {
        for j in 0..PER_POLICY {
            let mail = format!("p{i}-e{j}@example.com");
            let now_in = sim.policies_of(&mail);
            match j {
                0..50 => {
                    assert_eq!(now_in, vec![pids[i].clone()]);
                    let e = sim.employee(&pids[i], &mail).expect("member");
                    assert_eq!(e.submits_to, "new-boss@example.com");
                }
                50..75 => assert_eq!(now_in, vec![pids[(i + 1) % POLICIES].clone()], "{mail}"),
                75..125 => assert!(now_in.is_empty(), "{mail} still in {now_in:?}"),
                _ => {
                    let was = before.iter().find(|p| p.id == pids[i]).expect("policy");
                    assert_eq!(sim.employee(&pids[i], &mail).as_ref(), was.employee(&mail));
                }
            }
        }
    }
    for n in 0..1_000 {
        let mail = format!("new{n}@example.com");
        assert_eq!(sim.policies_of(&mail), vec![pids[n % POLICIES].clone()]);
    }

    // roster's side agrees: every task done, every action done, the audit
    // log intact with exactly one "applied" event per action.
    let tasks = store
        .tasks(&TaskFilter {
            plan_id: Some(plan_id.clone()),
            ..TaskFilter::default()
        })
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), plan.actions.len());
    assert!(
        tasks.iter().all(|t| t.state == ExecState::Done),
        "not all tasks done"
    );
    let retried = tasks.iter().filter(|t| t.attempts > 1).count();
    let already = tasks
        .iter()
        .filter(|t| t.outcome == Some(TaskOutcome::AlreadyApplied))
        .count();
    assert!(
        retried > 0,
        "no task needed a second attempt; the kills missed"
    );
    let actions = store.actions(&plan_id).await.expect("actions");
    assert!(actions.iter().all(|a| a.state == ActionState::Done));
    assert_eq!(
        store
            .plan(&plan_id)
            .await
            .expect("plan")
            .expect("plan")
            .status,
        PlanStatus::Done
    );
    let audit = store.verify_audit().await.expect("audit chain verifies");
    let events = store.audit_since(0).await.expect("audit");
    let mut applied_per_action: BTreeMap<u64, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == "action.applied") {
        let idx = e.data["action"].as_u64().expect("action index");
        *applied_per_action.entry(idx).or_insert(0) += 1;
    }
    assert_eq!(applied_per_action.len(), plan.actions.len());
    assert!(applied_per_action.values().all(|n| *n == 1));
    let counters = sim.counters();
    assert_eq!(
        counters.rate_limit_violations, 0,
        "restarted workers share one rate budget: no request over the app's window"
    );
    eprintln!(
        "crash test: {} actions, {kills} kills ({caught_in_window} caught applied-but-unrecorded), \
         {retried} tasks retried, {already} found already applied, {} effects, {} requests \
         ({} answered 429), {} audit events, {elapsed:.1?}",
        plan.actions.len(),
        effects.len(),
        counters.requests,
        counters.rate_limit_violations,
        audit.events,
    );
    store.close().await;
}
