//! The `idp` path by allowlisted group membership, end to end through the
//! application layer against the Graph simulator: BILL Spend & Expense
//! assigned through the Entra group "BILL Users".
//!
//! * A leaver is removed from the allowlisted group, and the action is done
//!   only once Entra's provisioning log shows the deprovisioning succeeded.
//! * A joiner whose provisioning fails (an attribute mapping the app
//!   refuses) is a visible failure, retried on the engine's retry policy
//!   (the group change is made once), then a person's task carrying
//!   Entra's error text.
//! * No other group is touched.

use std::sync::Arc;
use std::time::Duration;

use roster_catalog::{Catalog, ConnectionSettings};
use roster_connectors::SecretString;
use roster_connectors::idp_group::{Idp, IdpGroupConfig, IdpGroupConnector};
use roster_connectors::retry::RetryPolicy;
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, EmploymentStatus, Operation, Policy, Principal};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, PlanScope, Roster};
use roster_sim::common::EffectKind;
use roster_sim::graph::{GraphServicePrincipal, GraphSim, GraphSimConfig, GraphUser};
use roster_store::{ActionState, HumanTaskState, Store};

mod common;

const SP: &str = "sp-bill";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_path_offboards_verifies_and_escalates_provisioning_failures() {
    let sim = GraphSim::start(
        GraphSimConfig::new("contoso", "roster-client", "client-s3cret")
            .with_user(GraphUser::new("alice@acme.example", "Alice", "A"))
            .with_user(GraphUser::new("bob@acme.example", "Bob", "B"))
            .with_user(GraphUser::new("carol@acme.example", "Carol", "C"))
            .with_group("BILL Users", &["alice@acme.example", "bob@acme.example"])
            .with_group("Domain Admins", &["bob@acme.example"])
            .with_service_principal(GraphServicePrincipal::new(
                SP,
                "BILL Spend & Expense",
                &["BILL Users"],
            )),
    )
    .await
    .unwrap();
    let graph = sim.handle().clone();
    graph.fail_provisioning(
        "carol@acme.example",
        "Attribute 'name.familyName' is required by BILL Spend & Expense",
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"finance-bill\"\nconnection = \"bill\"\nwhen = { department = [\"Finance\"] }\n",
    )
    .unwrap();
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    engine
        .store
        .mark_connections_applied(&[ConnectionId::new("bill")], "earlier", 0)
        .await
        .unwrap();
    engine.bind(
        ConnectionId::new("bill"),
        AppBinding {
            app: "bill-spend-expense".into(),
            settings: ConnectionSettings::new()
                .with_plan("Enterprise")
                .with_idp("entra-id"),
            assignee: Some("it-ops@acme.example".into()),
            ..AppBinding::default()
        },
    );
    let mut c = IdpGroupConfig::new(
        ConnectionId::new("bill"),
        Idp::Entra,
        sim.graph_url(),
        SecretString::new("client-s3cret"),
        SP,
        vec!["BILL Users".into()],
    );
    c.login_url = Some(sim.login_url());
    c.tenant = Some("contoso".into());
    c.client_id = Some("roster-client".into());
    c.app_name = "BILL Spend & Expense".into();
    engine.add_connector(Arc::new(IdpGroupConnector::new(c).unwrap()));
    engine.executor = roster_engine::ExecutorOptions {
        idle_poll: Duration::from_millis(20),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            jitter: false,
            max_retry_after: Duration::from_secs(5),
        },
        ..roster_engine::ExecutorOptions::default()
    };
    let roster = Roster::new(engine);
    let op = Principal::new(PrincipalKind::User, "operator");
    roster
        .import_people(
            &op,
            &[
                common::person(
                    "E1",
                    "alice@acme.example",
                    "Alice",
                    EmploymentStatus::Active,
                ),
                common::person(
                    "E2",
                    "bob@acme.example",
                    "Bob",
                    EmploymentStatus::Terminated,
                ),
                common::person(
                    "E3",
                    "carol@acme.example",
                    "Carol",
                    EmploymentStatus::Active,
                ),
            ],
            "test",
        )
        .await
        .unwrap();

    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let plan_id = planned.id.clone();
    let ops: Vec<(Operation, String)> = planned
        .plan
        .actions
        .iter()
        .map(|a| (a.operation, a.email.to_string()))
        .collect();
    assert!(
        ops.contains(&(Operation::Deactivate, "bob@acme.example".into())),
        "{ops:?}"
    );
    assert!(
        ops.contains(&(Operation::Create, "carol@acme.example".into())),
        "{ops:?}"
    );
    let approved = roster.check_planned(&op, planned).await.unwrap();
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.unwrap();

    // The leaver: out of the allowlisted group, Entra's deprovisioning
    // verified, the action done.
    assert!(
        !graph
            .members("BILL Users")
            .contains(&"bob@acme.example".to_string())
    );
    let bob = graph.user("bob@acme.example").unwrap();
    assert!(
        graph
            .provisioning_events()
            .iter()
            .any(|e| e.user_id == bob.id && e.action == "disable" && e.status == "success")
    );
    // Another group Bob is in was never touched.
    assert_eq!(graph.members("Domain Admins"), ["bob@acme.example"]);
    let actions = roster.store().actions(&plan_id).await.unwrap();
    let state_of = |email: &str| {
        actions
            .iter()
            .find(|a| a.action.email.as_str() == email)
            .map(|a| (a.state, a.detail.clone().unwrap_or_default()))
            .unwrap()
    };
    assert_eq!(state_of("bob@acme.example").0, ActionState::Done);

    // The joiner: added to the group exactly once, the failure checked on
    // every attempt, then handed to a person with Entra's error text.
    let carol_adds = graph
        .effects()
        .iter()
        .filter(|e| e.email == "carol@acme.example")
        .map(|e| e.kind.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        carol_adds,
        [EffectKind::MemberAdded {
            group: "BILL Users".into()
        }]
    );
    let outcome_reads = graph.counters().route("GET /v1.0/auditLogs/provisioning");
    assert!(
        outcome_reads >= 4,
        "the outcome was checked on each attempt: {outcome_reads}"
    );
    let (state, detail) = state_of("carol@acme.example");
    assert_eq!(state, ActionState::Manual, "{detail}");
    let tasks = roster.store().human_tasks(&[]).await.unwrap();
    let task = tasks
        .iter()
        .find(|t| t.subject_email == "carol@acme.example")
        .expect("a person's task for the failed provisioning");
    assert_eq!(task.state, HumanTaskState::Open);
    assert_eq!(task.assignee.as_deref(), Some("it-ops@acme.example"));
    assert!(task.title.contains("provisioning failed"), "{}", task.title);
    let text = format!(
        "{} {}",
        task.note.clone().unwrap_or_default(),
        task.checklist.join(" ")
    );
    assert!(text.contains("name.familyName' is required"), "{text}");
    assert!(
        report.failed.is_empty(),
        "escalated, not left as a failure: {:?}",
        report.failed
    );

    // Provisioning switched off in Entra: the health check fails naming the
    // switch, and the next plan's changes become people's tasks instead of
    // group changes that would provision nothing.
    graph.set_job_status(SP, "Paused");
    let checks = roster.check_connections(&op).await;
    let (_, v) = checks.iter().find(|(id, _)| id.as_str() == "bill").unwrap();
    let v = v.as_ref().unwrap();
    assert!(!v.ok());
    assert!(
        v.checks
            .iter()
            .any(|c| !c.passed && c.detail.contains("Provisioning Status to On")),
        "{v:?}"
    );
    graph.add_user(GraphUser::new("dave@acme.example", "Dave", "D"));
    roster
        .import_people(
            &op,
            &[
                common::person(
                    "E1",
                    "alice@acme.example",
                    "Alice",
                    EmploymentStatus::Active,
                ),
                common::person(
                    "E2",
                    "bob@acme.example",
                    "Bob",
                    EmploymentStatus::Terminated,
                ),
                common::person(
                    "E3",
                    "carol@acme.example",
                    "Carol",
                    EmploymentStatus::Active,
                ),
                common::person("E4", "dave@acme.example", "Dave", EmploymentStatus::Active),
            ],
            "test",
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let second = planned.id.clone();
    assert!(
        planned
            .plan
            .actions
            .iter()
            .any(|a| a.email.as_str() == "dave@acme.example" && a.operation == Operation::Create)
    );
    let effects_before = graph.effects().len();
    let approved = roster.check_planned(&op, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(
        graph.effects().len(),
        effects_before,
        "no group was changed"
    );
    let dave = roster
        .store()
        .actions(&second)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.action.email.as_str() == "dave@acme.example")
        .unwrap();
    assert_eq!(dave.state, ActionState::Manual);
    assert!(
        roster
            .store()
            .human_tasks(&[])
            .await
            .unwrap()
            .iter()
            .any(|t| t.subject_email == "dave@acme.example" && t.state == HumanTaskState::Open)
    );
}
