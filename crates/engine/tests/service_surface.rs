//! The service is a surface too: its scheduled and event-driven runs go
//! through the application layer's one check, so an action that waits for
//! approval is never applied by it, whatever triggers the run.

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::{ConnectionId, Email, EmployeeId, EmploymentStatus, Person, Policy, Principal};
use roster_engine::app::RunOptions;
use roster_engine::service::{self, Event, ServiceOptions};
use roster_engine::{Engine, ExecutorOptions, PersonRef, Roster};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use roster_store::Store;
use tokio::sync::{mpsc, watch};

const USER: &str = "svc@example.com";
const SECRET: &str = "svc-secret";
const POLICY_ID: &str = "AAAA000000000001";

fn person(i: usize, status: EmploymentStatus) -> Person {
    Person {
        employee_id: EmployeeId::new(format!("E{i}")),
        email: Email::parse(&format!("p{i}@acme.example")).unwrap(),
        aliases: vec![],
        first_name: format!("P{i}"),
        last_name: "Test".into(),
        department: "Finance".into(),
        cost_center: "CC-1".into(),
        manager_email: Some(Email::parse("boss@acme.example").unwrap()),
        status,
        start_date: None,
        end_date: None,
        groups: vec![],
        attributes: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_never_applies_what_waits_for_approval() {
    // p3 is an Expensify admin; p3 and p7 leave (2 of 50: not a source
    // change that would withhold every deactivation).
    let mut policy = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..50 {
        let mut e = SimEmployee::new(
            format!("p{i}@acme.example"),
            "boss@acme.example",
            format!("E{i}"),
        );
        if i == 3 {
            e.role = "admin".into();
        }
        policy = policy.with_employee(e);
    }
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([policy]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let rules = format!(
        "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nset = {{ manager_email = \"{{manager_email}}\", policy_id = \"{POLICY_ID}\" }}\n"
    );
    let mut engine = Engine::new(store, Policy::parse("p.toml", &rules).unwrap());
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(sim.url());
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(config).unwrap()));
    engine.executor = ExecutorOptions {
        idle_poll: Duration::from_millis(100),
        ..ExecutorOptions::default()
    };
    let roster = Arc::new(Roster::new(engine));
    let svc_principal = Principal::service();
    let mut people: Vec<Person> = (0..50)
        .map(|i| person(i, EmploymentStatus::Active))
        .collect();
    roster
        .import_people(&svc_principal, &people, "hr")
        .await
        .unwrap();
    // A first run leaves the connection's first plan (nothing to change),
    // so only the privileged-removal guard holds anything below.
    let first = roster
        .reconcile(
            &svc_principal,
            &RunOptions {
                hr_csv: None,
                auto_apply: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.actions, 0, "{first:?}");

    people[3].status = EmploymentStatus::Terminated;
    people[7].status = EmploymentStatus::Terminated;
    roster
        .import_people(&svc_principal, &people, "hr")
        .await
        .unwrap();

    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let svc = tokio::spawn(service::run(
        roster.clone(),
        ServiceOptions {
            full_interval: Duration::from_secs(3600),
            hr_csv: None,
            auto_apply: true,
        },
        rx,
        stop_rx,
    ));
    // The scheduled full run, then an event about the admin, then another
    // full run: the ordinary leaver goes, the admin's removal is held.
    tx.send(Event::Person(PersonRef::EmployeeId(EmployeeId::new("E3"))))
        .unwrap();
    tx.send(Event::Full).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim
        .handle()
        .employee(POLICY_ID, "p7@acme.example")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the ordinary leaver was not removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the worker time to run anything else it (wrongly) queued.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop_tx.send(true).unwrap();
    svc.await.unwrap().unwrap();

    assert!(
        sim.handle()
            .employee(POLICY_ID, "p3@acme.example")
            .is_some(),
        "the admin's removal waits for a person's approval"
    );
    assert_eq!(
        sim.handle().effects().len(),
        1,
        "only the leaver was touched"
    );
    let events = roster.store().audit_since(0).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "plan.awaiting_approval" && e.actor == "service:roster"),
        "the service says what waits, as itself"
    );
    assert!(
        events
            .iter()
            .filter(|e| e.kind == "plan.created")
            .all(|e| e.actor == "service:roster")
    );
}
