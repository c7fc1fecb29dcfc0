//! Reports and targeted reconciliation over a small SQLite store.

use std::collections::BTreeMap;

use roster_catalog::{Catalog, Path};
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, FindingKind, Observed,
    Operation, Person, Policy, reconcile,
};
use roster_engine::bench::{PersonSelector, reconcile_person};
use roster_engine::reports::{
    self, AccountStatus, ClosureEvidence, Coverage, OrphanReason, ReportData,
};
use roster_store::{ActionState, AuditEvent, ConnectionRecord, Store};
use serde_json::json;
use time::{Date, Month, OffsetDateTime};

const DAY: i64 = 86_400_000;

fn date(y: i32, m: Month, d: u8) -> Date {
    Date::from_calendar_date(y, m, d).unwrap()
}

fn ms_of(d: Date) -> i64 {
    (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn person(id: &str, email: &str, status: EmploymentStatus, end: Option<Date>) -> Person {
    Person {
        employee_id: EmployeeId::new(id),
        email: Email::parse(email).unwrap(),
        aliases: Vec::new(),
        first_name: email.split('@').next().unwrap().to_string(),
        last_name: "Test".into(),
        department: "Finance".into(),
        cost_center: "CC-100".into(),
        manager_email: None,
        status,
        start_date: None,
        end_date: end,
        groups: Vec::new(),
        attributes: BTreeMap::new(),
    }
}

fn account(conn: &str, email: &str, id: Option<&str>, active: bool) -> Account {
    Account {
        connection: ConnectionId::new(conn),
        key: AccountKey::new(email),
        email: Some(Email::parse(email).unwrap()),
        employee_id: id.map(EmployeeId::new),
        active,
        attributes: [("role".to_string(), "user".to_string())]
            .into_iter()
            .collect(),
    }
}

const POLICY: &str = r#"
[[rules]]
name = "staff-expensify"
connection = "expensify"
set = { role = "user" }

[[rules]]
name = "staff-spendesk"
connection = "spendesk"
set = { role = "user" }
"#;

/// Times of the fixture's story (unix ms).
struct Story {
    first_read: i64,
    carol_closed: i64,
    second_read: i64,
    now: OffsetDateTime,
}

/// alice (active), dave (active), bob (left 2026-10-19, still everywhere),
/// carol (left 2026-10-01, Expensify closed through a plan);
/// ghost@ is in Expensify and nobody in HR.
async fn fixture(store: &Store) -> Story {
    let first_read = ms_of(date(2026, Month::October, 20));
    let carol_closed = ms_of(date(2026, Month::October, 22)) + 3_600_000;
    let second_read = ms_of(date(2026, Month::November, 20));
    let now = date(2026, Month::November, 25).midnight().assume_utc();

    let people = vec![
        person("E1", "alice@acme.example", EmploymentStatus::Active, None),
        person(
            "E2",
            "bob@acme.example",
            EmploymentStatus::Terminated,
            // Before the first plan (2026-10-20): the calendar keeps a
            // leaver's access until the end of their end date.
            Some(date(2026, Month::October, 19)),
        ),
        person(
            "E3",
            "carol@acme.example",
            EmploymentStatus::Terminated,
            Some(date(2026, Month::October, 1)),
        ),
        person("E4", "dave@acme.example", EmploymentStatus::Active, None),
    ];
    store.replace_people(&people).await.unwrap();
    store
        .upsert_connection(ConnectionRecord::new(
            ConnectionId::new("expensify"),
            "expensify",
            r#"{"credentials":["partner-credentials"],"partner_user_id":"x"}"#,
            "ok",
        ))
        .await
        .unwrap();
    store
        .upsert_connection(ConnectionRecord::new(
            ConnectionId::new("spendesk"),
            "spendesk",
            "",
            "ok",
        ))
        .await
        .unwrap();

    let expensify = |carol_active: bool| {
        Observed::complete(
            ConnectionId::new("expensify"),
            vec![
                account("expensify", "alice@acme.example", Some("E1"), true),
                account("expensify", "bob@acme.example", Some("E2"), true),
                account("expensify", "carol@acme.example", Some("E3"), carol_active),
                account("expensify", "ghost@acme.example", None, true),
            ],
        )
    };
    store
        .replace_accounts(&expensify(true), first_read)
        .await
        .unwrap();
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("spendesk"),
                vec![
                    account("spendesk", "alice@acme.example", None, true),
                    account("spendesk", "bob@acme.example", None, true),
                    account("spendesk", "dave@acme.example", None, true),
                ],
            ),
            first_read,
        )
        .await
        .unwrap();

    // The planner deactivates bob and carol; carol's is applied.
    let policy = Policy::parse("p.toml", POLICY).unwrap();
    let observed = store.all_observed().await.unwrap();
    let plan = reconcile(
        &store.people().await.unwrap(),
        &observed,
        &policy,
        OffsetDateTime::from_unix_timestamp(first_read / 1000).unwrap(),
    );
    let plan_id = store.save_plan(&plan, first_read + 1_000).await.unwrap();
    let carol = plan
        .actions
        .iter()
        .position(|a| {
            a.operation == Operation::Deactivate
                && a.connection.as_str() == "expensify"
                && a.email.as_str() == "carol@acme.example"
        })
        .expect("carol's deactivation is planned");
    store
        .set_action_state(&plan_id, carol, ActionState::Done, None, carol_closed)
        .await
        .unwrap();
    store
        .append_audit(AuditEvent {
            at_ms: carol_closed,
            actor: "roster".into(),
            kind: "action.applied".into(),
            subject: "expensify:carol@acme.example".into(),
            data: json!({ "plan": plan_id.as_str(), "action": carol, "operation": "deactivate" }),
        })
        .await
        .unwrap();
    // A month later Expensify is read again: carol now inactive.
    store
        .replace_accounts(&expensify(false), second_read)
        .await
        .unwrap();
    Story {
        first_read,
        carol_closed,
        second_read,
        now,
    }
}

async fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    (dir, store)
}

fn policy() -> Policy {
    Policy::parse("p.toml", POLICY).unwrap()
}

async fn data() -> (tempfile::TempDir, Store, Story, ReportData) {
    let (dir, store) = open_store().await;
    let story = fixture(&store).await;
    let data = reports::load(&store).await.unwrap();
    (dir, store, story, data)
}

#[tokio::test]
async fn an_orphan_appears_with_when_it_was_first_and_last_seen() {
    let (_dir, _store, story, data) = data().await;
    let r = reports::orphans(&data, &policy());
    let exp = r
        .by_connection
        .iter()
        .find(|c| c.connection.as_str() == "expensify")
        .unwrap();
    let ghost = exp
        .accounts
        .iter()
        .find(|a| a.account.as_str() == "ghost@acme.example")
        .expect("ghost is an orphan");
    assert_eq!(ghost.reason, OrphanReason::NoPerson);
    assert_eq!(ghost.first_seen_ms, Some(story.first_read));
    assert_eq!(ghost.last_seen_ms, Some(story.second_read));

    // bob left and still has both accounts; carol's is inactive, so not
    // orphaned; alice and dave are employees.
    let bob: Vec<_> = r
        .by_connection
        .iter()
        .flat_map(|c| &c.accounts)
        .filter(|a| a.reason == OrphanReason::TerminatedPerson)
        .map(|a| {
            (
                a.connection.as_str(),
                a.person.as_ref().unwrap().employee_id.as_str(),
            )
        })
        .collect();
    assert_eq!(bob, vec![("expensify", "E2"), ("spendesk", "E2")]);
    assert_eq!(r.total, 3);
    assert_eq!(exp.active_accounts, 3);
    let text = reports::render_orphans(&r);
    assert!(text.contains("ghost@acme.example"), "{text}");
    assert!(
        text.contains("3 orphaned accounts in 2 connections."),
        "{text}"
    );
}

#[tokio::test]
async fn orphans_use_the_policys_correlation_settings() {
    let (_dir, store) = open_store().await;
    store
        .replace_people(&[person(
            "E1",
            "alice@acme.com",
            EmploymentStatus::Active,
            None,
        )])
        .await
        .unwrap();
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("expensify"),
                vec![account("expensify", "alice@acme.io", None, true)],
            ),
            1,
        )
        .await
        .unwrap();
    let data = reports::load(&store).await.unwrap();
    assert_eq!(reports::orphans(&data, &Policy::default()).total, 1);
    let equivalent = Policy::parse(
        "p.toml",
        "[correlation]\nequivalent_domains = [[\"acme.com\", \"acme.io\"]]\n",
    )
    .unwrap();
    assert_eq!(reports::orphans(&data, &equivalent).total, 0);
}

#[tokio::test]
async fn a_leaver_whose_account_was_deactivated_shows_closure_time_and_duration() {
    let (_dir, _store, story, data) = data().await;
    let r = reports::leavers(&data, &policy(), story.now);
    // bob has open accounts, so he comes first even though carol left
    // earlier.
    let order: Vec<&str> = r
        .leavers
        .iter()
        .map(|l| l.person.employee_id.as_str())
        .collect();
    assert_eq!(order, vec!["E2", "E3"]);

    let carol = &r.leavers[1];
    assert_eq!((carol.open, carol.closed), (0, 1));
    let acc = &carol.accounts[0];
    assert_eq!(acc.status, AccountStatus::Closed);
    assert_eq!(acc.evidence, Some(ClosureEvidence::AppliedAction));
    assert_eq!(acc.closed_at_ms, Some(story.carol_closed));
    assert!(acc.exact);
    // Left 2026-10-01, closed 2026-10-22 01:00 UTC: 21 days and an hour.
    assert_eq!(acc.since_termination_ms, Some(21 * DAY + 3_600_000));

    let bob = &r.leavers[0];
    assert_eq!((bob.open, bob.closed), (2, 0));
    let exp = bob
        .accounts
        .iter()
        .find(|a| a.connection.as_str() == "expensify")
        .unwrap();
    assert_eq!(exp.pending_action, Some(ActionState::Pending));
    // Open since 2026-10-19, now is 2026-11-25.
    assert_eq!(exp.since_termination_ms, Some(37 * DAY));

    assert_eq!(r.summary.open_accounts, 2);
    assert_eq!(r.summary.closed_accounts, 1);
    assert_eq!(
        r.summary.median_time_to_close_ms,
        Some(21 * DAY + 3_600_000)
    );
    assert_eq!(r.summary.oldest_open_ms, Some(37 * DAY));
    let text = reports::render_leavers(&r);
    assert!(text.contains("21d 1h after termination"), "{text}");
}

#[tokio::test]
async fn a_deleted_account_closed_by_a_plan_still_counts_as_closed() {
    let (_dir, store) = open_store().await;
    let story = fixture(&store).await;
    // Expensify deletes carol's account altogether.
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("expensify"),
                vec![account("expensify", "alice@acme.example", Some("E1"), true)],
            ),
            story.second_read + 1,
        )
        .await
        .unwrap();
    let data = reports::load(&store).await.unwrap();
    let r = reports::leavers(&data, &policy(), story.now);
    let carol = r
        .leavers
        .iter()
        .find(|l| l.person.employee_id.as_str() == "E3")
        .unwrap();
    assert_eq!(carol.accounts.len(), 1);
    assert!(!carol.accounts[0].present);
    assert_eq!(carol.accounts[0].closed_at_ms, Some(story.carol_closed));
}

#[tokio::test]
async fn coverage_marks_spendesk_deactivation_manual_and_counts_its_people() {
    let (_dir, _store, _story, data) = data().await;
    let catalog = Catalog::builtin().unwrap();
    let r = reports::coverage(&data, &catalog, &policy());
    let spendesk = r
        .connections
        .iter()
        .find(|c| c.connection.as_str() == "spendesk")
        .unwrap();
    let deactivate = spendesk
        .operations
        .iter()
        .find(|o| o.operation == Operation::Deactivate)
        .unwrap();
    // The browser runbook is off by default, so a person does it.
    assert_eq!(deactivate.coverage, Coverage::Manual);
    assert_eq!(deactivate.path, Some(Path::Manual));
    assert!(spendesk.removal_by_hand);
    assert_eq!(spendesk.active_accounts, 3);
    assert_eq!(spendesk.people_with_active_accounts, 3);

    let expensify = r
        .connections
        .iter()
        .find(|c| c.connection.as_str() == "expensify")
        .unwrap();
    assert!(
        expensify
            .operations
            .iter()
            .all(|o| o.coverage == Coverage::Automated && o.path == Some(Path::Api)),
        "{expensify:?}"
    );
    assert!(
        r.gap_nodes
            .iter()
            .any(|g| g.connection.as_str() == "spendesk" && g.operation == Operation::Deactivate)
    );
    assert!(
        r.gap_nodes
            .iter()
            .all(|g| g.connection.as_str() != "expensify")
    );
    // alice, bob, dave can lose Spendesk only by hand.
    assert_eq!(r.people_removable_only_by_hand, 3);
    assert_eq!(r.accounts_removable_only_by_hand, 3);
    let text = reports::render_coverage(&r);
    assert!(
        text.contains("3 people can lose access only by hand"),
        "{text}"
    );
}

#[tokio::test]
async fn coverage_without_settings_or_catalog_entry() {
    let (_dir, store) = open_store().await;
    // No connection records at all: expensify without credentials falls
    // back to the CSV import or a checklist; an unknown app has no path.
    for conn in ["expensify", "homegrown"] {
        store
            .replace_accounts(
                &Observed::complete(
                    ConnectionId::new(conn),
                    vec![account(conn, "alice@acme.example", None, true)],
                ),
                1,
            )
            .await
            .unwrap();
    }
    let data = reports::load(&store).await.unwrap();
    let r = reports::coverage(&data, &Catalog::builtin().unwrap(), &Policy::default());
    let cov = |conn: &str, op: Operation| {
        r.connections
            .iter()
            .find(|c| c.connection.as_str() == conn)
            .unwrap()
            .operations
            .iter()
            .find(|o| o.operation == op)
            .unwrap()
            .clone()
    };
    assert_eq!(cov("expensify", Operation::Create).path, Some(Path::Csv));
    assert_eq!(
        cov("expensify", Operation::Create).coverage,
        Coverage::Manual
    );
    assert_eq!(
        cov("homegrown", Operation::Deactivate).coverage,
        Coverage::None
    );
    assert_eq!(r.gap_nodes.len(), 8);
    assert_eq!(r.accounts_removable_only_by_hand, 2);
    assert_eq!(r.people_removable_only_by_hand, 0);
}

#[tokio::test]
async fn audit_export_gives_one_json_line_per_event_since_the_time() {
    let (_dir, store, story, _data) = data().await;
    store
        .append_audit(AuditEvent {
            at_ms: story.second_read,
            actor: "roster".into(),
            kind: "connection.read".into(),
            subject: "expensify".into(),
            data: json!({ "accounts": 4 }),
        })
        .await
        .unwrap();
    let since = reports::parse_since("2026-11-01T00:00:00Z").unwrap();
    let lines = reports::audit_jsonl(&store.audit_since(since).await.unwrap());
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "connection.read");
    assert_eq!(records[0]["seq"], 2);
    assert!(records[0]["hash"].as_str().unwrap().len() == 64);
    let all = reports::audit_jsonl(&store.audit_since(0).await.unwrap());
    assert_eq!(all.lines().count(), 2);
}

#[tokio::test]
async fn a_targeted_run_plans_exactly_the_persons_part_of_the_full_plan() {
    let (_dir, store, story, _data) = data().await;
    let policy = policy();
    let full = reconcile(
        &store.people().await.unwrap(),
        &store.all_observed().await.unwrap(),
        &policy,
        story.now,
    );
    for who in [
        "bob@acme.example",
        "E1",
        "carol@acme.example",
        "dave@acme.example",
    ] {
        let sel = PersonSelector::parse(who);
        let run = reconcile_person(&store, &policy, &sel, story.now, true)
            .await
            .unwrap();
        let id = run.person.employee_id.clone();
        let expected: Vec<_> = full
            .actions
            .iter()
            .filter(|a| a.employee_id.as_ref() == Some(&id))
            .cloned()
            .collect();
        assert_eq!(run.plan.actions, expected, "{who}");
        assert!(
            run.plan
                .findings
                .iter()
                .all(|f| f.kind != FindingKind::Orphan),
            "{who}: {:?}",
            run.plan.findings
        );
        let saved = store
            .plan(run.plan_id.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(saved.plan, run.plan);
    }
    // dave has Spendesk only: Expensify is a create.
    let dave = reconcile_person(
        &store,
        &policy,
        &PersonSelector::parse("E4"),
        story.now,
        false,
    )
    .await
    .unwrap();
    assert_eq!(dave.plan.actions.len(), 1);
    assert_eq!(dave.plan.actions[0].operation, Operation::Create);
    assert_eq!(dave.plan.actions[0].connection.as_str(), "expensify");
    assert!(
        reconcile_person(
            &store,
            &policy,
            &PersonSelector::parse("nobody@acme.example"),
            story.now,
            false
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn a_targeted_run_sees_the_same_conflicts_as_the_full_run() {
    let (_dir, store) = open_store().await;
    store
        .replace_people(&[
            person("E1", "alice@acme.example", EmploymentStatus::Active, None),
            person("E2", "erin@acme.example", EmploymentStatus::Active, None),
        ])
        .await
        .unwrap();
    // The app says employee E2 but address alice@: the rules disagree.
    store
        .replace_accounts(
            &Observed::complete(
                ConnectionId::new("expensify"),
                vec![account("expensify", "alice@acme.example", Some("E2"), true)],
            ),
            1,
        )
        .await
        .unwrap();
    let policy = Policy::parse("p.toml", POLICY).unwrap();
    let now = date(2026, Month::November, 25).midnight().assume_utc();
    let full = reconcile(
        &store.people().await.unwrap(),
        &store.all_observed().await.unwrap(),
        &policy,
        now,
    );
    for who in ["E1", "E2"] {
        let run = reconcile_person(&store, &policy, &PersonSelector::parse(who), now, false)
            .await
            .unwrap();
        assert_eq!(run.others, 1, "{who}");
        let id = run.person.employee_id.clone();
        let expected: Vec<_> = full
            .actions
            .iter()
            .filter(|a| a.employee_id.as_ref() == Some(&id))
            .cloned()
            .collect();
        assert_eq!(run.plan.actions, expected, "{who}");
        // Held: no Expensify create for either while the match is open.
        assert!(
            run.plan
                .actions
                .iter()
                .all(|a| a.connection.as_str() != "expensify"),
            "{who}: {:?}",
            run.plan.actions
        );
        assert!(
            run.plan
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::Ambiguous),
            "{who}"
        );
    }
}

fn november_25() -> OffsetDateTime {
    date(2026, Month::November, 25).midnight().assume_utc()
}

#[tokio::test]
async fn a_leavers_access_open_past_the_sla_is_raised_once_per_period() {
    let (_dir, store) = open_store().await;
    fixture(&store).await;
    let raw: roster_engine::notify::RawNotify = toml::from_str(
        "leaver_sla_hours = 48\n[channels.it]\nkind = \"slack\"\n\
         url = \"https://hooks.slack.example/never-called\"\nevents = [\"leaver_access_open\"]\n",
    )
    .unwrap();
    let notifier = roster_engine::notify::Notifier::from_config(
        &raw,
        std::path::Path::new("."),
        false,
        &|_| None,
    )
    .unwrap();
    let mut engine = roster_engine::Engine::new(store.clone(), policy()).with_clock(november_25);
    engine.notifier = Some(notifier);
    let roster = roster_engine::Roster::new(engine);

    let swept = roster.notify_sweep(true).await.unwrap();
    assert_eq!(swept.leavers, 1, "bob only: carol's access is closed");
    let raised: Vec<_> = store
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "leaver.access_overdue")
        .collect();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].subject, "bob@acme.example");
    assert_eq!(raised[0].data["employee_id"], "E2");
    assert_eq!(
        raised[0].data["connections"],
        json!(["expensify", "spendesk"])
    );
    assert_eq!(raised[0].data["sla_hours"], 48);
    // Within the same period it is not raised again.
    assert_eq!(roster.notify_sweep(true).await.unwrap().leavers, 0);
    // Without the leavers pass (the service runs it every ten minutes),
    // nothing about leavers is looked at.
    assert_eq!(roster.notify_sweep(false).await.unwrap().leavers, 0);
}
