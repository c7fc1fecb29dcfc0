//! Targeted reconciliation plans one person and nobody else.

use std::sync::{Arc, Mutex};

use roster_core::principal::PrincipalKind;
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Operation, Person,
    Policy, Principal,
};
use roster_engine::{Engine, EngineError, PersonRef, PlanScope, Roster};
use roster_store::Store;

mod common;
use common::ReadOnly as Fixed;

fn person(i: usize, status: EmploymentStatus) -> Person {
    common::person(
        &format!("E{i}"),
        &format!("p{i}@acme.example"),
        &format!("P{i}"),
        status,
    )
}

fn account(key: &str, email: &str, emp: Option<&str>) -> Account {
    Account {
        connection: ConnectionId::new("app"),
        key: AccountKey::new(key),
        email: Some(Email::parse(email).unwrap()),
        employee_id: emp.map(EmployeeId::new),
        active: true,
        attributes: [("role".to_string(), "user".to_string())]
            .into_iter()
            .collect(),
    }
}

#[tokio::test]
async fn a_targeted_plan_covers_one_person_and_respects_whole_app_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    // 10% of the app may be deprovisioned at once: one leaver of 50 is fine.
    let policy = Policy::parse(
        "p.toml",
        "[connections.app]\nmax_deprovision_percent = 10\n[[rules]]\nname = \"all\"\nconnection = \"app\"\nset = { role = \"user\" }\n",
    )
    .unwrap();
    let mut people: Vec<Person> = (0..50)
        .map(|i| person(i, EmploymentStatus::Active))
        .collect();
    people[7].status = EmploymentStatus::Terminated;
    let mut accounts: Vec<Account> = (0..50)
        .map(|i| {
            account(
                &format!("k{i}"),
                &format!("p{i}@acme.example"),
                Some(&format!("E{i}")),
            )
        })
        .collect();
    // An orphan and an account two people could own (email says p3, ID says p4).
    accounts.push(account("ghost", "ghost@acme.example", None));
    accounts.push(account("shared", "p3@acme.example", Some("E4")));
    let roster = {
        let mut e = Engine::new(store, policy);
        e.add_connector(Arc::new(Fixed {
            id: ConnectionId::new("app"),
            accounts: Arc::new(Mutex::new(accounts)),
        }));
        Roster::new(e)
    };
    let op = Principal::new(PrincipalKind::User, "operator");
    roster.import_people(&op, &people, "test").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    // An earlier plan for the app was applied: it is past its first plan,
    // where every removal would wait (the first_plan guard).
    roster
        .store()
        .mark_connections_applied(&[ConnectionId::new("app")], "earlier", 0)
        .await
        .unwrap();

    let planned = roster
        .plan(
            &op,
            PlanScope::Person(PersonRef::Email(Email::parse("P7@ACME.example").unwrap())),
        )
        .await
        .expect("known person");
    assert_eq!(
        planned.person.as_ref().map(|p| p.employee_id.as_str()),
        Some("E7")
    );
    let plan = planned.plan;
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    assert_eq!(plan.actions[0].operation, Operation::Deactivate);
    assert_eq!(plan.actions[0].employee_id.as_ref().unwrap().as_str(), "E7");
    assert!(
        plan.approvals.is_empty(),
        "1 of 52 is under 10%: {:?}",
        plan.approvals
    );
    assert!(
        plan.findings.is_empty(),
        "orphans are not a targeted run's business: {:?}",
        plan.findings
    );

    // p3: the ambiguous account is left out, their own account is fine.
    let plan = roster
        .plan(
            &op,
            PlanScope::Person(PersonRef::EmployeeId(EmployeeId::new("E3"))),
        )
        .await
        .unwrap()
        .plan;
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);

    let nobody = roster
        .plan(
            &op,
            PlanScope::Person(PersonRef::Email(
                Email::parse("nobody@acme.example").unwrap(),
            )),
        )
        .await;
    assert!(
        matches!(nobody, Err(EngineError::PersonNotFound(_))),
        "{nobody:?}"
    );
}
