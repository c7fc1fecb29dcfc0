//! Harm test for the `hard_delete` guard through the application layer: a
//! routine leaver in an app whose catalog record says deactivating deletes
//! the account for good (Box) waits for a person's approval; the same
//! leaver in an app that suspends (Slack) goes at once.

use std::sync::{Arc, Mutex};

use roster_catalog::Catalog;
use roster_core::principal::PrincipalKind;
use roster_core::{Account, AccountKey, ConnectionId, Email, EmploymentStatus, Policy, Principal};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, PlanScope, Roster};
use roster_store::Store;

mod common;
use common::ReadOnly;

fn member(connection: &str, key: &str, email: &str) -> Account {
    Account {
        connection: ConnectionId::new(connection),
        key: AccountKey::new(key),
        email: Some(Email::parse(email).unwrap()),
        employee_id: None,
        active: true,
        attributes: Default::default(),
    }
}

/// Plans a leaver's removal in `connection`, bound to the catalog's `app`,
/// after a first plan was applied (so only the guard under test can hold
/// it); `policy_extra` is appended to the policy.
async fn leaver_plan(app: &str, policy_extra: &str) -> (tempfile::TempDir, roster_engine::Planned) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let connection = "files";
    let policy = Policy::parse(
        "p.toml",
        &format!(
            "[[rules]]\nname = \"everyone\"\nconnection = \"{connection}\"\nwhen = {{ department = [\"Finance\"] }}\n{policy_extra}"
        ),
    )
    .unwrap();
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    engine
        .store
        .mark_connections_applied(&[ConnectionId::new(connection)], "earlier", 0)
        .await
        .unwrap();
    engine.bind(
        ConnectionId::new(connection),
        AppBinding {
            app: app.into(),
            ..AppBinding::default()
        },
    );
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new(connection),
        accounts: Arc::new(Mutex::new(vec![
            member(connection, "u-1", "alice@acme.example"),
            member(connection, "u-2", "bob@acme.example"),
        ])),
    }));
    let roster = Roster::new(engine);
    let op = Principal::new(PrincipalKind::User, "operator");
    let mut alice = common::person(
        "E1",
        "alice@acme.example",
        "Alice",
        EmploymentStatus::Active,
    );
    alice.last_name = "Smith".into();
    let mut bob = common::person(
        "E2",
        "bob@acme.example",
        "Bob",
        EmploymentStatus::Terminated,
    );
    bob.last_name = "Jones".into();
    roster
        .import_people(&op, &[alice, bob], "test")
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    (dir, planned)
}

#[tokio::test]
async fn a_leaver_in_a_hard_deleting_app_waits_for_approval() {
    let (_dir, planned) = leaver_plan("box", "").await;
    let plan = &planned.plan;
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    let why = plan
        .approvals
        .get(&0)
        .unwrap_or_else(|| panic!("Box's deletion went without approval: {plan:?}"));
    assert!(why.contains("hard_delete"), "{why}");
}

#[tokio::test]
async fn a_leaver_in_a_suspending_app_goes_at_once() {
    let (_dir, planned) = leaver_plan("slack", "").await;
    assert_eq!(planned.plan.actions.len(), 1);
    assert!(
        planned.plan.approvals.is_empty(),
        "{:?}",
        planned.plan.approvals
    );
}

#[tokio::test]
async fn a_policy_can_let_hard_deletes_go_and_the_plan_says_so() {
    let (_dir, planned) = leaver_plan("box", "[approvals]\nhard_deletes = false\n").await;
    assert!(
        planned.plan.approvals.is_empty(),
        "{:?}",
        planned.plan.approvals
    );
    assert!(
        planned
            .plan
            .guards
            .settings
            .iter()
            .any(|s| s == "approvals.hard_deletes = false (default true)"),
        "{:?}",
        planned.plan.guards.settings
    );
}
