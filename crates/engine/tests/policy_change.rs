//! A plan checks its policy against the deployment, and says what a policy
//! change alone causes since the last applied plan.

use std::sync::{Arc, Mutex};

use roster_core::principal::PrincipalKind;
use roster_core::vocabulary::Vocabulary;
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Policy, Principal,
};
use roster_engine::{Engine, EngineError, PlanScope, Planned, Roster};
use roster_store::Store;

mod common;
use common::ReadOnly;

const V1: &str = r#"[[rules]]
name = "finance-and-sales"
connection = "app"
when = { department = ["Finance", "Sales"] }
set = { role = "user" }
"#;

/// Sales loses the app, Finance becomes "power" users, Marketing gains it.
const V2: &str = r#"[[rules]]
name = "finance"
connection = "app"
when = { department = ["Finance"] }
set = { role = "power" }

[[rules]]
name = "marketing"
connection = "app"
when = { department = ["Marketing"] }
set = { role = "user" }
"#;

fn account(i: usize) -> Account {
    Account {
        connection: ConnectionId::new("app"),
        key: AccountKey::new(format!("k{i}")),
        email: Some(Email::parse(&format!("p{i}@acme.example")).unwrap()),
        employee_id: Some(EmployeeId::new(format!("E{i}"))),
        active: true,
        attributes: [("role".to_string(), "user".to_string())]
            .into_iter()
            .collect(),
    }
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

/// Roster over `store` with `policy` and a read-only "app" holding
/// `accounts`. Its configuration is fixed once behind [`Roster`]: a new
/// policy is a new one over the same store, as a new process would be.
fn wire(store: Store, policy: &str, accounts: &Arc<Mutex<Vec<Account>>>) -> Roster {
    let mut engine = Engine::new(store, Policy::parse("policy.toml", policy).unwrap());
    engine.vocabulary = Some(Vocabulary::new([ConnectionId::new("app")], []));
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new("app"),
        accounts: accounts.clone(),
    }));
    Roster::new(engine)
}

/// Hands a plan just made to the queue (the plan counts as applied).
async fn enqueue(roster: &Roster, planned: Planned) {
    let approved = roster.check_planned(&operator(), planned).await.unwrap();
    roster.enqueue(approved).await.unwrap();
}

#[tokio::test]
async fn a_policy_change_is_reported_with_what_it_alone_causes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    // p0-p2 Finance, p3-p5 Sales, all with accounts; p6 is a Finance
    // joiner (a grant under either policy), p7 in Marketing has nothing.
    let mut people = Vec::new();
    for (i, dept) in [
        "Finance",
        "Finance",
        "Finance",
        "Sales",
        "Sales",
        "Sales",
        "Finance",
        "Marketing",
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = common::person(
            &format!("E{i}"),
            &format!("p{i}@acme.example"),
            &format!("P{i}"),
            EmploymentStatus::Active,
        );
        p.department = dept.to_string();
        people.push(p);
    }
    let accounts = Arc::new(Mutex::new((0..6).map(account).collect()));
    let roster = wire(store, V1, &accounts);
    let op = operator();
    roster.import_people(&op, &people, "test").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();

    // Nothing applied yet: nothing to compare with.
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let (first, plan) = (planned.id.clone(), planned.plan.clone());
    assert_eq!(plan.actions.len(), 1, "the joiner: {:?}", plan.actions);
    assert_eq!(plan.policy_change, None);
    enqueue(&roster, planned).await;

    // The same policy again: no change to report.
    let plan = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    assert_eq!(plan.policy_change, None);

    let roster = wire(roster.store().clone(), V2, &accounts);
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let (second, plan) = (planned.id.clone(), planned.plan.clone());
    let change = plan.policy_change.clone().expect("the policy changed");
    assert_eq!(change.since_plan, first.to_string());
    assert_ne!(change.previous_policy_hash, change.policy_hash);
    // 3 Sales removals, 3 Finance role updates, 1 Marketing grant; the
    // Finance joiner would be created under either policy.
    assert_eq!(
        (
            change.effect.removals,
            change.effect.grants,
            change.effect.updates
        ),
        (3, 1, 3),
        "{:?}",
        plan.actions
    );
    let text = roster_core::plan::render(&plan);
    assert!(
        text.contains(&format!("policy changed since plan {first} (applied "))
            && text.contains("the change alone causes 3 removals, 1 grant, 3 updates."),
        "{text}"
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["policy_change"]["effect"]["removals"], 3, "{json}");

    // The stored plan keeps the report.
    let stored = roster.store().plan(&second).await.unwrap().unwrap();
    assert_eq!(stored.plan.policy_change, Some(change));

    // Once a plan under the new policy is applied, there is nothing to
    // report any more.
    enqueue(&roster, planned).await;
    let plan = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    assert_eq!(plan.policy_change, None);
}

#[tokio::test]
async fn a_policy_naming_what_the_deployment_lacks_plans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "policy.toml",
        "[[rules]]\nname = \"a\"\nconnection = \"app\"\nwhen = { staus = [\"active\"] }\n",
    )
    .unwrap();
    let mut engine = Engine::new(store, policy);
    engine.vocabulary = Some(Vocabulary::new([ConnectionId::new("app")], []));
    engine.add_connector(Arc::new(ReadOnly {
        id: ConnectionId::new("app"),
        accounts: Arc::new(Mutex::new((0..3).map(account).collect())),
    }));
    let roster = Roster::new(engine);
    roster.read(&operator(), &mut |_, _| {}).await.unwrap();
    let err = roster.plan(&operator(), PlanScope::All).await.unwrap_err();
    assert!(matches!(err, EngineError::PolicyUnsound(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("policy.toml:4:10:"), "{text}");
    assert!(text.contains("did you mean \"status\"?"), "{text}");
    assert!(
        roster.store().latest_plan().await.unwrap().is_none(),
        "no plan was stored"
    );
}
