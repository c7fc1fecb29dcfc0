//! The manual path end to end: an app roster can read but not write
//! (Spendesk-like). Offboarding becomes a task with the catalog's checklist;
//! the person's "done" is verified — or refuted — by the next read.

use std::sync::{Arc, Mutex};

use roster_catalog::Catalog;
use roster_core::principal::PrincipalKind;
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmploymentStatus, Operation, Person, Policy,
    Principal,
};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, PlanScope, Roster};
use roster_store::{ActionState, HumanTask, HumanTaskState, Store};

mod common;
use common::ReadOnly;

fn person(id: &str, email: &str, status: EmploymentStatus) -> Person {
    let mut p = common::person(id, email, "Bob", status);
    p.last_name = "Jones".into();
    p
}

fn member(key: &str, email: &str, active: bool) -> Account {
    Account {
        connection: ConnectionId::new("spendesk"),
        key: AccountKey::new(key),
        email: Some(Email::parse(email).unwrap()),
        employee_id: None,
        active,
        attributes: Default::default(),
    }
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

/// Plans everything and verifies human tasks against the read, as a full
/// run does.
async fn plan_and_verify(roster: &Roster) -> roster_engine::Planned {
    let planned = roster.plan(&operator(), PlanScope::All).await.unwrap();
    roster.verify_tasks(&operator(), &planned).await.unwrap();
    planned
}

/// Carries out a plan just made: what no connector can do goes to people.
/// Returns the plan's human tasks.
async fn hand_over(roster: &Roster, planned: roster_engine::Planned) -> Vec<HumanTask> {
    let approved = roster.check_planned(&operator(), planned).await.unwrap();
    roster.enqueue(approved).await.unwrap().tasks
}

/// Marks `connection` as having had a plan applied: these tests are about
/// routing manual work, not the first_plan guard (which holds every
/// removal in a connection's first plan).
async fn past_first_plan(engine: &Engine, connection: &str) {
    engine
        .store
        .mark_connections_applied(&[ConnectionId::new(connection)], "earlier", 0)
        .await
        .unwrap();
}

#[tokio::test]
async fn manual_offboarding_is_a_task_verified_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"finance-spendesk\"\nconnection = \"spendesk\"\nwhen = { department = [\"Finance\"] }\n",
    )
    .unwrap();
    let accounts = Arc::new(Mutex::new(vec![
        member("m-1", "alice@acme.example", true),
        member("m-2", "bob@acme.example", true),
    ]));
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    past_first_plan(&engine, "spendesk").await;
    engine.bind(
        ConnectionId::new("spendesk"),
        AppBinding {
            app: "spendesk".into(),
            assignee: Some("it-ops@acme.example".into()),
            ..AppBinding::default()
        },
    );
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new("spendesk"),
        accounts: accounts.clone(),
    }));
    let roster = Roster::new(engine);
    let op = operator();
    roster
        .import_people(
            &op,
            &[
                person("E1", "alice@acme.example", EmploymentStatus::Active),
                person("E2", "bob@acme.example", EmploymentStatus::Terminated),
            ],
            "test",
        )
        .await
        .unwrap();

    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = plan_and_verify(&roster).await;
    let (plan_id, plan) = (planned.id.clone(), planned.plan.clone());
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].operation, Operation::Deactivate);

    // No connector can deactivate in Spendesk: a task, with the checklist.
    let tasks = hand_over(&roster, planned).await;
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task.state, HumanTaskState::Open);
    assert_eq!(task.assignee.as_deref(), Some("it-ops@acme.example"));
    let steps = task.checklist.join("\n");
    assert!(
        steps.contains("pending approvals")
            && steps.contains("open cards")
            && steps.contains("Settings → Members"),
        "{steps}"
    );
    assert!(task.due_ms.unwrap() > task.created_ms, "has a due date");
    let actions = roster.store().actions(&plan_id).await.unwrap();
    assert_eq!(actions[0].state, ActionState::Manual);
    // Routing again opens nothing new.
    assert_eq!(roster.store().human_tasks(&[]).await.unwrap().len(), 1);

    // The person says done, but did not actually deactivate Bob.
    let it_ops = Principal::new(PrincipalKind::User, "it-ops");
    roster
        .complete_task(
            &it_ops,
            &task.id,
            Some("done".into()),
            Some("screenshot.png".into()),
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    plan_and_verify(&roster).await;
    let t = roster.store().human_task(&task.id).await.unwrap().unwrap();
    assert_eq!(t.state, HumanTaskState::Reopened, "the read disagreed");
    assert!(t.flagged);

    // Now they really do it; the next read verifies.
    accounts.lock().unwrap()[1].active = false;
    roster
        .complete_task(&it_ops, &task.id, None, None)
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let plan = plan_and_verify(&roster).await.plan;
    assert!(plan.actions.is_empty());
    let t = roster.store().human_task(&task.id).await.unwrap().unwrap();
    assert_eq!(t.state, HumanTaskState::Verified);
    let kinds: Vec<String> = roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    for k in ["task.opened", "task.done", "task.reopened", "task.verified"] {
        assert!(kinds.iter().any(|x| x == k), "audit has {k}: {kinds:?}");
    }
    roster.store().verify_audit().await.unwrap();
}

#[tokio::test]
async fn bill_spend_without_enterprise_gets_an_add_only_csv_and_a_manual_offboarding() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"finance-bill\"\nconnection = \"bill\"\nwhen = { department = [\"Finance\"] }\nset = { role = \"MEMBER\" }\n",
    )
    .unwrap();
    // Roster can read BILL S&E (say, from an export a person attests), not write it.
    let accounts = Arc::new(Mutex::new(vec![member("u-2", "bob@acme.example", true)]));
    for a in accounts.lock().unwrap().iter_mut() {
        a.connection = ConnectionId::new("bill");
    }
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    past_first_plan(&engine, "bill").await;
    engine.exports_dir = Some(dir.path().to_path_buf());
    engine.bind(
        ConnectionId::new("bill"),
        AppBinding {
            app: "bill-spend-expense".into(),
            ..AppBinding::default()
        },
    );
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new("bill"),
        accounts,
    }));
    let mut alice = person("E1", "alice@acme.example", EmploymentStatus::Active);
    alice.first_name = "Alice".into();
    alice.last_name = "Smith".into();
    let roster = Roster::new(engine);
    let op = operator();
    roster
        .import_people(
            &op,
            &[
                alice,
                person("E2", "bob@acme.example", EmploymentStatus::Terminated),
            ],
            "test",
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = plan_and_verify(&roster).await;
    let plan_id = planned.id.clone();
    let tasks = hand_over(&roster, planned).await;
    let create = tasks
        .iter()
        .find(|t| t.kind == "create")
        .expect("a create task");
    let file = dir
        .path()
        .join("exports")
        .join(plan_id.as_str())
        .join("bill.csv");
    let csv = std::fs::read_to_string(&file).expect("the add-only import file");
    assert!(csv.starts_with("First Name,Last Name,Email,Role"), "{csv}");
    assert!(
        csv.contains("Alice,Smith,alice@acme.example,MEMBER"),
        "{csv}"
    );
    assert!(
        create.checklist[0].contains("bill.csv") && create.checklist[0].contains("cannot remove"),
        "{:?}",
        create.checklist
    );
    let off = tasks
        .iter()
        .find(|t| t.kind == "deactivate")
        .expect("offboarding is manual");
    assert_eq!(off.subject_email, "bob@acme.example");
    assert!(!off.checklist.is_empty());
}

/// A task whose need vanished without anyone doing it is cancelled with
/// the reason, never "verified": a leaver's account closed outside roster,
/// and an onboarding for someone who left before it happened.
#[tokio::test]
async fn a_task_nobody_did_whose_need_vanished_is_cancelled_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"finance-spendesk\"\nconnection = \"spendesk\"\nwhen = { department = [\"Finance\"] }\n",
    )
    .unwrap();
    let accounts = Arc::new(Mutex::new(vec![member("m-2", "bob@acme.example", true)]));
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    past_first_plan(&engine, "spendesk").await;
    engine.bind(
        ConnectionId::new("spendesk"),
        AppBinding {
            app: "spendesk".into(),
            ..AppBinding::default()
        },
    );
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new("spendesk"),
        accounts: accounts.clone(),
    }));
    let mut carol = person("E3", "carol@acme.example", EmploymentStatus::Active);
    carol.first_name = "Carol".into();
    let roster = Roster::new(engine);
    let op = operator();
    roster
        .import_people(
            &op,
            &[
                person("E2", "bob@acme.example", EmploymentStatus::Terminated),
                carol.clone(),
            ],
            "test",
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = plan_and_verify(&roster).await;
    let plan = planned.plan.clone();
    assert_eq!(plan.actions.len(), 2, "{plan:?}");
    let tasks = hand_over(&roster, planned).await;
    assert_eq!(tasks.len(), 2);
    let task_for = |email: &str| {
        tasks
            .iter()
            .find(|t| t.subject_email == email)
            .unwrap()
            .id
            .clone()
    };
    let (bob_task, carol_task) = (task_for("bob@acme.example"), task_for("carol@acme.example"));

    // Someone closes Bob's account in the app, never touching the task;
    // Carol leaves before she was ever onboarded.
    accounts.lock().unwrap()[0].active = false;
    carol.status = EmploymentStatus::Terminated;
    roster
        .import_people(
            &op,
            &[
                person("E2", "bob@acme.example", EmploymentStatus::Terminated),
                carol,
            ],
            "test",
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let plan = plan_and_verify(&roster).await.plan;
    assert!(plan.actions.is_empty(), "{plan:?}");

    let bob = roster.store().human_task(&bob_task).await.unwrap().unwrap();
    assert_eq!(bob.state, HumanTaskState::Cancelled);
    let carol = roster
        .store()
        .human_task(&carol_task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.state, HumanTaskState::Cancelled);
    assert!(
        carol
            .note
            .as_deref()
            .unwrap()
            .contains("carol@acme.example is no longer active"),
        "{:?}",
        carol.note
    );
    assert!(
        bob.note.as_deref().unwrap().contains("made outside roster"),
        "{:?}",
        bob.note
    );
    let kinds: Vec<String> = roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "task.cancelled").count(),
        2,
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "task.verified"), "{kinds:?}");
}
