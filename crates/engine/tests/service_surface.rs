//! The service is a surface too: its scheduled and event-driven runs go
//! through the application layer's one check, so an action that waits for
//! approval is never applied by it, whatever triggers the run.

use std::sync::Arc;
use std::time::Duration;

use roster_core::{EmployeeId, EmploymentStatus, Person, Principal};
use roster_engine::app::RunOptions;
use roster_engine::service::{self, Event, ServiceOptions};
use roster_engine::{PersonRef, Roster};
use roster_sim::expensify::SimEmployee;
use tokio::sync::{mpsc, watch};

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn the_service_never_applies_what_waits_for_approval() {
    // p3 is an Expensify admin; p3 and p7 leave (2 of 50: not a source
    // change that would withhold every deactivation).
    let employees = (0..50)
        .map(|i| {
            let mut e = SimEmployee::new(
                format!("p{i}@acme.example"),
                "boss@acme.example",
                format!("E{i}"),
            );
            if i == 3 {
                e.role = "admin".into();
            }
            e
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees).await;
    let roster = Arc::new(Roster::new(engine));
    let svc_principal = Principal::service();
    let mut people: Vec<Person> = (0..50)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
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
            ..ServiceOptions::default()
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
        .employee(common::SERVICE_POLICY_ID, "p7@acme.example")
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
            .employee(common::SERVICE_POLICY_ID, "p3@acme.example")
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
