//! Dated joiners and leavers through the engine: a date passing changes
//! the next plan with no change in any source, and the service's periodic
//! full run carries it out. And `Roster::person_access`, which only reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use roster_core::{Calendar, Email, EmploymentStatus, Person, Principal};
use roster_engine::options::AppBinding;
use roster_engine::service::{self, ServiceOptions};
use roster_engine::{PersonRef, PlanScope, Roster};
use roster_sim::expensify::SimEmployee;
use time::OffsetDateTime;
use time::macros::{date, datetime};
use tokio::sync::{mpsc, watch};

mod common;

/// The engine's clock in these tests (ms since the epoch), moved by hand.
static NOW_MS: AtomicI64 = AtomicI64::new(0);

fn clock() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(NOW_MS.load(Ordering::SeqCst)) * 1_000_000)
        .unwrap()
}

fn set_now(t: OffsetDateTime) {
    NOW_MS.store(
        (t.unix_timestamp_nanos() / 1_000_000) as i64,
        Ordering::SeqCst,
    );
}

fn employees(n: usize) -> Vec<SimEmployee> {
    (0..n)
        .map(|i| {
            SimEmployee::new(
                format!("p{i}@acme.example"),
                "boss@acme.example",
                format!("E{i}"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_closes_access_when_an_end_date_passes_with_no_source_change() {
    // A leaver in Los Angeles whose last day is 2026-12-07, still listed as
    // active: at 23:30 local (07:30 UTC the next day) nothing happens.
    set_now(datetime!(2026-12-08 07:30 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees(5)).await;
    let mut engine = engine.with_clock(clock);
    engine.calendar = Calendar::new("America/Los_Angeles", 0).unwrap();
    let mut people: Vec<Person> = (0..5)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    people[3].end_date = Some(date!(2026 - 12 - 07));
    let roster = Arc::new(Roster::new(engine));
    roster
        .import_people(&Principal::service(), &people, "hr")
        .await
        .unwrap();

    let (_tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let svc = tokio::spawn(service::run(
        roster.clone(),
        ServiceOptions {
            full_interval: Duration::from_millis(200),
            hr_csv: None,
            auto_apply: true,
            poll_interval: None,
        },
        rx,
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        sim.handle().effects().is_empty(),
        "their day is not over: {:?}",
        sim.handle().effects()
    );
    let before = roster
        .person_access(&PersonRef::Email(Email::parse("p3@acme.example").unwrap()))
        .await
        .unwrap();
    assert_eq!(before.dates.kind, "leaving");
    assert_eq!(before.planned.status, EmploymentStatus::Active);
    assert_eq!(before.accounts.len(), 1);
    assert!(before.accounts[0].account.active);
    assert_eq!(before.accounts[0].rules, vec!["all".to_string()]);

    // 00:01 local on the 8th: the next periodic run closes their access,
    // though nothing in any source changed.
    set_now(datetime!(2026-12-08 08:01 UTC));
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim
        .handle()
        .employee(common::SERVICE_POLICY_ID, "p3@acme.example")
        .is_some()
    {
        assert!(Instant::now() < deadline, "the leaver was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    svc.await.unwrap().unwrap();
    assert_eq!(
        sim.handle().effects().len(),
        1,
        "only the leaver was touched"
    );

    let after = roster
        .person_access(&PersonRef::Email(Email::parse("p3@acme.example").unwrap()))
        .await
        .unwrap();
    assert_eq!(after.dates.kind, "ended");
    assert_eq!(after.planned.status, EmploymentStatus::Terminated);
    assert_eq!(
        after.source.as_ref().map(|s| s.status),
        Some(EmploymentStatus::Active),
        "the source still says active"
    );
    assert!(
        after.audit.iter().any(|r| r.kind == "action.applied"),
        "{:?}",
        after.audit.iter().map(|r| &r.kind).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dated_leavers_are_still_held_by_the_deprovision_limit() {
    // Four end dates pass on the same day, nobody's status changed; the
    // policy allows two deactivations per plan without approval.
    set_now(datetime!(2027-01-01 08:00 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees(8)).await;
    let rules = format!(
        "[approvals]\nmax_deprovisions_per_plan = 2\n\n[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nset = {{ manager_email = \"{{manager_email}}\", policy_id = \"{}\" }}\n",
        common::SERVICE_POLICY_ID
    );
    let mut engine = engine.with_clock(clock);
    engine.policy = roster_core::Policy::parse("p.toml", &rules).unwrap();
    engine.calendar = Calendar::new("Europe/Paris", 0).unwrap();
    let mut people: Vec<Person> = (0..8)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    for p in &mut people[..4] {
        p.end_date = Some(date!(2026 - 12 - 31));
    }
    let roster = Roster::new(engine);
    let by = Principal::service();
    roster.import_people(&by, &people, "hr").await.unwrap();
    // A first applied plan, so the first-plan guard is out of the way.
    let summary = roster
        .reconcile(
            &by,
            &roster_engine::app::RunOptions {
                hr_csv: None,
                auto_apply: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.actions, 4, "{summary:?}");
    assert_eq!(summary.awaiting_approval, 4, "{summary:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sim.handle().effects().is_empty(),
        "nothing goes without approval: {:?}",
        sim.handle().effects()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn person_access_names_identities_paths_and_rules_and_changes_nothing() {
    set_now(datetime!(2026-12-01 12:00 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees(3)).await;
    let mut engine = engine
        .with_clock(clock)
        .with_catalog(roster_catalog::Catalog::builtin().unwrap());
    // The connection holds Expensify's partner credentials, as
    // `roster.toml`'s `secret` would say.
    let mut binding = AppBinding {
        app: "expensify".into(),
        ..AppBinding::default()
    };
    binding
        .settings
        .credentials
        .insert(roster_catalog::CredentialKind::parse("partner-credentials").unwrap());
    engine.bind(roster_core::ConnectionId::new("expensify"), binding);
    engine.calendar = Calendar::new("Europe/Paris", 0).unwrap();
    let mut people: Vec<Person> = (0..3)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    people[1].aliases = vec![Email::parse("alias1@acme.example").unwrap()];
    people[1].groups = vec!["Finance".into()];
    people[1].end_date = Some(date!(2026 - 12 - 31));
    people[1].attributes.insert("idp_id".into(), "00u1".into());
    people[1]
        .attributes
        .insert("idp_state".into(), "ACTIVE".into());
    let roster = Roster::new(engine);
    let by = Principal::service();
    roster.import_people(&by, &people, "hr").await.unwrap();
    roster.read(&by, &mut |_, _| {}).await.unwrap();

    let head = roster.store().audit_head().await.unwrap();
    let plans = roster.store().recent_plans(100).await.unwrap().len();
    // By alias, by employee ID: the same person.
    let by_alias = roster
        .person_access(&PersonRef::Email(
            Email::parse("ALIAS1@acme.example").unwrap(),
        ))
        .await
        .unwrap();
    let by_id = roster.person_access(&PersonRef::parse("E1")).await.unwrap();
    assert_eq!(by_alias, by_id);
    let a = by_alias;
    assert_eq!(a.planned.employee_id.as_str(), "E1");
    assert_eq!(a.dates.kind, "leaving");
    assert!(
        a.dates.detail.contains("ends 2026-12-31 (Europe/Paris)"),
        "{}",
        a.dates.detail
    );
    let idp = a.idp.as_ref().unwrap();
    assert_eq!(
        (idp.id.as_deref(), idp.state.as_deref()),
        (Some("00u1"), Some("ACTIVE"))
    );
    assert_eq!(a.accounts.len(), 1);
    let acc = &a.accounts[0];
    assert_eq!(acc.app.as_deref(), Some("expensify"));
    assert!(acc.grant.contains("\"all\""), "{}", acc.grant);
    let path = acc.path.as_ref().unwrap();
    assert_eq!(path.operation, roster_core::Operation::Deactivate);
    assert_eq!(path.path, "api");
    assert_eq!(path.connector.as_deref(), Some("expensify-api"));
    assert_eq!(
        a.next_plan.as_deref(),
        Some(&[][..]),
        "{:?}",
        a.next_plan_error
    );

    // Plain data: JSON both ways.
    let json = serde_json::to_string(&a).unwrap();
    let back: roster_engine::app::PersonAccess = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);

    // It only reads: no audit event, no plan, no request that writes.
    assert_eq!(roster.store().audit_head().await.unwrap(), head);
    assert_eq!(roster.store().recent_plans(100).await.unwrap().len(), plans);
    assert!(sim.handle().effects().is_empty());

    // Someone unknown is an error naming them, not an empty answer.
    let err = roster
        .person_access(&PersonRef::parse("nobody@acme.example"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ENG-0009");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offboarding_is_not_postponed_by_an_end_date_still_ahead() {
    // HR already says terminated, last day at the end of the month; the
    // calendar keeps such a person's access until then. An operator's
    // offboarding must not wait for it.
    set_now(datetime!(2026-12-10 09:00 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees(3)).await;
    let mut engine = engine.with_clock(clock);
    engine.calendar = Calendar::new("Europe/Paris", 0).unwrap();
    let mut people: Vec<Person> = (0..3)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    people[2].status = EmploymentStatus::Terminated;
    people[2].end_date = Some(date!(2026 - 12 - 31));
    let roster = Roster::new(engine);
    let by = Principal::service();
    roster.import_people(&by, &people, "hr").await.unwrap();
    let who = PersonRef::Email(Email::parse("p2@acme.example").unwrap());
    roster.read(&by, &mut |_, _| {}).await.unwrap();
    let (_, preview) = roster.preview_offboard(&who).await.unwrap();
    assert_eq!(preview.actions.len(), 1, "{preview:?}");
    // Left alone, they keep access until the end of the 31st.
    let plain = roster.preview(&PlanScope::All).await.unwrap();
    assert!(plain.actions.is_empty(), "{:?}", plain.actions);

    let off = roster
        .offboard(
            &Principal::new(roster_core::PrincipalKind::User, "alice"),
            &who,
            "left early",
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(off.report.applied_total(), 1, "{:?}", off.report);
    assert!(
        sim.handle()
            .employee(common::SERVICE_POLICY_ID, "p2@acme.example")
            .is_none()
    );
    let a = roster.person_access(&who).await.unwrap();
    assert!(a.offboarded);
    assert_eq!(a.planned.status, EmploymentStatus::Terminated);
}

/// The findings and guards of a plan that say the source change held its
/// deactivations.
fn held_by_source_change(plan: &roster_core::Plan) -> bool {
    plan.findings
        .iter()
        .any(|f| f.kind == roster_core::FindingKind::SourceChange)
        && !plan
            .actions
            .iter()
            .any(|a| a.operation == roster_core::Operation::Deactivate)
}

#[tokio::test(flavor = "multi_thread")]
async fn many_end_dates_passing_at_once_are_a_source_change_until_confirmed() {
    // Ten of forty people end on 2026-12-10, all still listed as active;
    // imported on the 8th, when nobody has left yet.
    set_now(datetime!(2026-12-08 12:00 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (_sim, engine) = common::expensify_service_engine(dir.path(), employees(40)).await;
    let mut engine = engine.with_clock(clock);
    engine.calendar = Calendar::new("Europe/Paris", 0).unwrap();
    let mut people: Vec<Person> = (0..40)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    for p in &mut people[..10] {
        p.end_date = Some(date!(2026 - 12 - 10));
    }
    let roster = Roster::new(engine);
    let by = Principal::service();
    roster.import_people(&by, &people, "hr").await.unwrap();
    roster.read(&by, &mut |_, _| {}).await.unwrap();
    let before = roster.plan(&by, PlanScope::All).await.unwrap();
    assert!(
        before.plan.actions.is_empty(),
        "nobody has left yet: {:?}",
        before.plan.actions
    );

    // The 11th in Paris: a quarter of the company left at once with no
    // change in the source. That is a source change, held like a batch of
    // terminations, until a person confirms it.
    set_now(datetime!(2026-12-11 09:00 UTC));
    let after = roster.plan(&by, PlanScope::All).await.unwrap();
    assert!(held_by_source_change(&after.plan), "{:#?}", after.plan);
    roster.accept_source_change(&by).await.unwrap();
    let confirmed = roster.plan(&by, PlanScope::All).await.unwrap();
    let closing = confirmed
        .plan
        .actions
        .iter()
        .filter(|a| a.operation == roster_core::Operation::Deactivate)
        .count();
    assert_eq!(closing, 10, "{:#?}", confirmed.plan);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typo_that_puts_every_end_date_in_the_past_is_held() {
    set_now(datetime!(2026-12-08 12:00 UTC));
    let dir = tempfile::tempdir().unwrap();
    let (sim, engine) = common::expensify_service_engine(dir.path(), employees(40)).await;
    let mut engine = engine.with_clock(clock);
    engine.calendar = Calendar::new("Europe/Paris", 0).unwrap();
    let mut people: Vec<Person> = (0..40)
        .map(|i| common::numbered(i, EmploymentStatus::Active))
        .collect();
    let roster = Roster::new(engine);
    let by = Principal::service();
    roster.import_people(&by, &people, "hr").await.unwrap();
    // The next HR export fills every end date with yesterday (a column
    // mapped wrongly), statuses untouched.
    for p in &mut people {
        p.end_date = Some(date!(2026 - 12 - 07));
    }
    roster.import_people(&by, &people, "hr").await.unwrap();
    roster.read(&by, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&by, PlanScope::All).await.unwrap();
    assert!(held_by_source_change(&planned.plan), "{:#?}", planned.plan);
    let approved = roster.check_planned(&by, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert!(
        sim.handle().effects().is_empty(),
        "nobody's access was taken: {:?}",
        sim.handle().effects()
    );
}
