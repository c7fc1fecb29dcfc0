//! The application layer ([`Roster`]) end to end: the one door every
//! surface plans, approves and applies through, with the authenticated
//! principal it acts for.
//!
//! Each test tries to make roster do harm through that door (apply what
//! nobody approved, apply a plan the apps no longer match, carry a plan out
//! twice, let an agent approve its own removals, let someone who is not an
//! app's approver decide for it) and judges the outcome by the app itself
//! (the Expensify simulator's effect log) or by the store, not by what the
//! call returned alone.

mod common;

use std::sync::{Arc, Mutex};

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, FindingKind, Operation,
    Person, Plan, Policy, Principal,
};
use roster_engine::bench::{self, PersonSelector};
use roster_engine::{Engine, EngineError, PersonRef, PlanScope, Roster};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy,
};
use roster_store::{ActionState, Store, TaskFilter};

const USER: &str = "app-layer@example.com";
const SECRET: &str = "app-layer-secret";
const POLICY_ID: &str = "AAAA000000000001";
const PEOPLE: usize = 20;

fn user(name: &str) -> Principal {
    Principal::new(PrincipalKind::User, name)
}

/// The Expensify rule; `status_key` misspelled makes every account
/// ungranted (removals the removal limit holds for approval).
fn rules(status_key: &str) -> String {
    format!(
        "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = {{ {status_key} = [\"active\", \"leave\"] }}\nset = {{ role = \"user\", manager_email = \"{{manager_email}}\", policy_id = \"{POLICY_ID}\" }}\n"
    )
}

fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

fn people() -> Vec<Person> {
    (0..PEOPLE)
        .map(|i| {
            let mut p = common::person(
                &format!("E{i}"),
                &email(i),
                &format!("P{i}"),
                EmploymentStatus::Active,
            );
            p.manager_email = Some(Email::parse("boss@acme.example").unwrap());
            p
        })
        .collect()
}

/// Roster over `store` with `policy`, wired to the simulator.
fn wire(store: Store, sim: &RunningSim, policy: &str) -> Roster {
    let mut engine = Engine::new(store, Policy::parse("p.toml", policy).expect("parses"));
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
    Roster::new(engine)
}

/// An Expensify tenant in line with `people()` and roster on it (with
/// `policy`) past its first plan: a plan with nothing to do was applied
/// under the correct rule.
async fn in_line(policy: &str) -> (RunningSim, Roster, tempfile::TempDir) {
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..PEOPLE {
        tenant = tenant.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i}"),
        ));
    }
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([tenant]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let first = wire(store, &sim, &rules("status"));
    let op = user("operator");
    first.import_people(&op, &people(), "hr").await.unwrap();
    first.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = first.plan(&op, PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = first.check_planned(&op, planned).await.unwrap();
    first.apply(approved, &mut |_, _| {}).await.unwrap();
    let roster = wire(first.store().clone(), &sim, policy);
    (sim, roster, dir)
}

fn removed(sim: &RunningSim) -> Vec<String> {
    sim.handle()
        .effects()
        .into_iter()
        .filter(|e| e.kind == EffectKind::Removed)
        .map(|e| e.email)
        .collect()
}

fn in_app(sim: &RunningSim, email: &str) -> bool {
    sim.handle().employee(POLICY_ID, email).is_some()
}

/// The audit events about `subject` of `kind`, as (actor) strings.
async fn actors(roster: &Roster, kind: &str, subject: &str) -> Vec<String> {
    roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind && e.subject == subject)
        .map(|e| e.actor)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unapproved_removal_is_never_applied_and_a_stale_plan_changes_nothing() {
    // The policy's typo makes every account ungranted: more removals than
    // the limit, each waiting for a person.
    let (sim, roster, _dir) = in_line(&rules("staus")).await;
    let op = user("operator");
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let id = planned.id.clone();
    assert_eq!(planned.plan.actions.len(), PEOPLE, "{:?}", planned.plan);
    assert_eq!(planned.plan.approvals.len(), PEOPLE, "{:?}", planned.plan);

    let approved = roster.check_planned(&op, planned).await.unwrap();
    assert_eq!(approved.held().len(), PEOPLE);
    let (report, enqueued) = roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.held, PEOPLE, "{report:?}");
    assert_eq!(enqueued.held, PEOPLE);
    assert_eq!(report.applied_total(), 0, "{report:?}");
    // The app is unchanged for those accounts, and nothing was queued.
    assert!(removed(&sim).is_empty());
    for i in 0..PEOPLE {
        assert!(in_app(&sim, &email(i)), "{} kept", email(i));
    }
    let queued = roster
        .store()
        .tasks(&TaskFilter {
            plan_id: Some(id.clone()),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert!(queued.is_empty(), "{queued:?}");

    // Asking again without anyone's approval changes nothing either.
    let approved = roster.check(&op, &id, &mut |_, _| {}).await.unwrap();
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.held, PEOPLE, "{report:?}");
    assert!(removed(&sim).is_empty());
    assert_eq!(
        roster.approval_status(&id).await.unwrap().waiting.len(),
        PEOPLE
    );

    // A stale plan: a leaver, planned, then the app changes before anyone
    // checks the plan.
    let roster = wire(roster.store().clone(), &sim, &rules("status"));
    let mut hr = people();
    hr[5].status = EmploymentStatus::Terminated;
    roster.import_people(&op, &hr, "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let stale = planned.id.clone();
    assert_eq!(planned.plan.actions.len(), 1, "{:?}", planned.plan);
    assert!(sim.handle().put_employee(
        POLICY_ID,
        SimEmployee::new("late@acme.example", "boss@acme.example", "L1"),
    ));
    let err = roster.check(&op, &stale, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, EngineError::Stale { .. }), "{err}");
    assert_eq!(err.code(), "ENG-0006");
    assert!(removed(&sim).is_empty(), "nothing was applied");
    assert!(in_app(&sim, &email(5)));
    let actions = roster.store().actions(&stale).await.unwrap();
    assert!(actions.iter().all(|a| a.state == ActionState::Pending));
    let queued = roster
        .store()
        .tasks(&TaskFilter {
            plan_id: Some(stale.clone()),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert!(queued.is_empty(), "{queued:?}");
    assert!(
        actors(&roster, "plan.apply_started", stale.as_str())
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_is_carried_out_once_and_a_decision_after_the_fact_changes_nothing() {
    let (sim, roster, _dir) = in_line(&rules("status")).await;
    let op = user("operator");
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    roster.import_people(&op, &hr, "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let id = planned.id.clone();
    let leaver = planned
        .plan
        .actions
        .iter()
        .position(|a| a.email.as_str() == email(3))
        .expect("the leaver's deactivation");
    let approved = roster.check_planned(&op, planned).await.unwrap();
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.applied_total(), 1, "{report:?}");
    assert_eq!(removed(&sim), vec![email(3)]);

    // Again: the one check says there is nothing left to do.
    let again = roster.check(&op, &id, &mut |_, _| {}).await;
    assert!(
        matches!(again, Err(EngineError::AlreadyApplied { .. })),
        "{again:?}"
    );
    assert_eq!(again.unwrap_err().code(), "ENG-0007");
    // Rejecting (or approving) an action that already ran is refused, and
    // recorded nowhere.
    let reviewer = user("reviewer");
    let rejected = roster
        .reject(&reviewer, &id, Some(leaver), "too late")
        .await;
    assert!(
        matches!(rejected, Err(EngineError::AlreadyApplied { .. })),
        "{rejected:?}"
    );
    let approved = roster.approve(&reviewer, &id, Some(leaver), "late").await;
    assert!(
        matches!(approved, Err(EngineError::AlreadyApplied { .. })),
        "{approved:?}"
    );
    assert!(
        actors(&roster, "plan.rejected", id.as_str())
            .await
            .is_empty()
    );
    assert!(
        actors(&roster, "plan.approved", id.as_str())
            .await
            .is_empty()
    );
    assert_eq!(removed(&sim), vec![email(3)], "applied exactly once");
    let actions = roster.store().actions(&id).await.unwrap();
    assert_eq!(actions[leaver].state, ActionState::Done);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_names_the_authenticated_principals() {
    let (sim, roster, _dir) = in_line(&rules("staus")).await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    roster.read(&alice, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&alice, PlanScope::All).await.unwrap();
    let id = planned.id.clone();
    let target = planned.plan.actions[0].email.to_string();
    drop(planned);
    let status = roster.approve(&bob, &id, Some(0), "checked").await.unwrap();
    assert!(status.approved.contains(&0));
    assert_eq!(status.waiting.len(), PEOPLE - 1);
    let approved = roster.check(&carol, &id, &mut |_, _| {}).await.unwrap();
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.unwrap();
    // Only the approved removal ran.
    assert_eq!(report.applied_total(), 1, "{report:?}");
    assert_eq!(report.held, PEOPLE - 1, "{report:?}");
    assert_eq!(removed(&sim), vec![target]);

    assert_eq!(
        actors(&roster, "plan.created", id.as_str()).await,
        vec![alice.actor()]
    );
    assert_eq!(
        actors(&roster, "plan.approved", id.as_str()).await,
        vec![bob.actor()]
    );
    assert_eq!(
        actors(&roster, "plan.apply_started", id.as_str()).await,
        vec![carol.actor()]
    );
    assert_eq!(carol.actor(), "user:carol");
    // The stored plan and the approval name them too.
    let stored = roster.store().plan(&id).await.unwrap().unwrap();
    assert_eq!(stored.proposed_by.as_deref(), Some("user:alice"));
    let approvals = roster.store().approvals(&id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].actor, "user:bob");
    roster.store().verify_audit().await.unwrap();
}

// --------------------------------------------- a read-only app, no writes

fn account(key: &str, email: &str, emp: Option<&str>, role: &str) -> Account {
    Account {
        connection: ConnectionId::new("app"),
        key: AccountKey::new(key),
        email: Some(Email::parse(email).unwrap()),
        employee_id: emp.map(EmployeeId::new),
        active: true,
        attributes: [("role".to_string(), role.to_string())]
            .into_iter()
            .collect(),
    }
}

const APP_RULES: &str =
    "[[rules]]\nname = \"all\"\nconnection = \"app\"\nset = { role = \"user\" }\n";

/// Roster over a fresh store with `policy` and a read-only "app" holding
/// `accounts`, with `people` imported and the app read.
async fn read_only(
    policy: &str,
    people: &[Person],
    accounts: Vec<Account>,
) -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let mut engine = Engine::new(store, Policy::parse("p.toml", policy).unwrap());
    engine.add_connector(Arc::new(common::ReadOnly {
        id: ConnectionId::new("app"),
        accounts: Arc::new(Mutex::new(accounts)),
    }));
    let roster = Roster::new(engine);
    let op = user("operator");
    roster.import_people(&op, people, "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    (roster, dir)
}

/// Alice active with an account, Bob a leaver whose account is still
/// active: in the app's first plan his deactivation waits for a person.
async fn a_plan_waiting_for_approval(policy: &str) -> (Roster, tempfile::TempDir) {
    let people = [
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
    ];
    let accounts = vec![
        account("k1", "alice@acme.example", Some("E1"), "user"),
        account("k2", "bob@acme.example", Some("E2"), "user"),
    ];
    read_only(policy, &people, accounts).await
}

#[tokio::test]
async fn an_agent_never_approves_its_own_plan_and_only_an_apps_approvers_decide_for_it() {
    let (roster, _dir) = a_plan_waiting_for_approval(APP_RULES).await;
    let agent = Principal::new(PrincipalKind::Agent, "claude");
    let planned = roster.plan(&agent, PlanScope::All).await.unwrap();
    let id = planned.id.clone();
    assert_eq!(planned.plan.approvals.len(), 1, "{:?}", planned.plan);

    let err = roster
        .approve(&agent, &id, None, "my own plan")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotPermitted(_)), "{err}");
    assert_eq!(err.code(), "ENG-0008");
    // An agent decides nothing, whatever separation of duties says.
    assert!(err.to_string().contains("never approves"), "{err}");
    assert_eq!(roster.approval_status(&id).await.unwrap().waiting.len(), 1);
    assert!(
        actors(&roster, "plan.approved", id.as_str())
            .await
            .is_empty()
    );
    // A user named like the agent is not the agent, and may approve.
    let person = user("claude");
    let status = roster.approve(&person, &id, None, "checked").await.unwrap();
    assert!(status.waiting.is_empty(), "{status:?}");
    assert_eq!(
        actors(&roster, "plan.approved", id.as_str()).await,
        vec!["user:claude".to_string()]
    );

    // App owners: only alice decides for the app.
    let owned = format!("[connections.app]\napprovers = [\"alice\"]\n\n{APP_RULES}");
    let (roster, _dir) = a_plan_waiting_for_approval(&owned).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let id = roster.plan(&bob, PlanScope::All).await.unwrap().id;
    for refused in [
        roster.approve(&bob, &id, None, "mine").await,
        roster.reject(&bob, &id, None, "mine").await,
    ] {
        let err = refused.unwrap_err();
        assert!(matches!(err, EngineError::NotPermitted(_)), "{err}");
        assert!(err.to_string().contains("approvers"), "{err}");
    }
    assert_eq!(roster.approval_status(&id).await.unwrap().waiting.len(), 1);
    assert!(roster.store().approvals(&id).await.unwrap().is_empty());
    let status = roster.approve(&alice, &id, None, "owner").await.unwrap();
    assert!(status.waiting.is_empty(), "{status:?}");
    assert_eq!(status.approved.len(), 1);
}

/// The plan's actions about `id`, each with whether it waits for approval.
fn part_of(plan: &Plan, id: &EmployeeId) -> Vec<(roster_core::plan::Action, bool)> {
    plan.actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.employee_id.as_ref() == Some(id))
        .map(|(i, a)| (a.clone(), plan.approvals.contains_key(&i)))
        .collect()
}

#[tokio::test]
async fn one_persons_plan_is_their_part_of_the_full_plan_even_for_an_ambiguous_account() {
    let mut people = vec![
        // The app's account says address alice@ but employee E2 (Erin):
        // either could own it, and it is the only account of both.
        common::person(
            "E1",
            "alice@acme.example",
            "Alice",
            EmploymentStatus::Active,
        ),
        common::person("E2", "erin@acme.example", "Erin", EmploymentStatus::Active),
        // A leaver, a role to fix, a joiner, one in line.
        common::person(
            "E3",
            "lee@acme.example",
            "Lee",
            EmploymentStatus::Terminated,
        ),
        common::person("E4", "rory@acme.example", "Rory", EmploymentStatus::Active),
        common::person("E5", "jo@acme.example", "Jo", EmploymentStatus::Active),
        common::person("E6", "sam@acme.example", "Sam", EmploymentStatus::Active),
    ];
    people[4].aliases = vec![Email::parse("joanna@acme.example").unwrap()];
    let accounts = vec![
        account("amb", "alice@acme.example", Some("E2"), "user"),
        account("k3", "lee@acme.example", Some("E3"), "user"),
        account("k4", "rory@acme.example", None, "admin"),
        account("k6", "sam@acme.example", Some("E6"), "user"),
        account("ghost", "ghost@acme.example", None, "user"),
    ];
    let (roster, _dir) = read_only(APP_RULES, &people, accounts).await;
    let op = user("operator");
    let full = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    assert!(
        full.findings
            .iter()
            .any(|f| f.kind == FindingKind::Ambiguous),
        "{:?}",
        full.findings
    );
    for ambiguous in ["alice@acme.example", "erin@acme.example"] {
        assert!(
            !full
                .actions
                .iter()
                .any(|a| a.operation == Operation::Create && a.email.as_str() == ambiguous),
            "no account is created for {ambiguous} while the match is open: {:?}",
            full.actions
        );
    }
    // The plan does something for the others, so the comparison means
    // something.
    for (id, op_wanted) in [
        ("E3", Operation::Deactivate),
        ("E5", Operation::Create),
        ("E4", Operation::Update),
    ] {
        let part = part_of(&full, &EmployeeId::new(id));
        assert!(
            part.iter().any(|(a, _)| a.operation == op_wanted),
            "{id}: {part:?}"
        );
    }

    let now = roster.engine().now();
    for p in &people {
        let id = p.employee_id.clone();
        let expected = part_of(&full, &id);
        let planned = roster
            .plan(&op, PlanScope::Person(PersonRef::EmployeeId(id.clone())))
            .await
            .unwrap();
        assert_eq!(part_of(&planned.plan, &id), expected, "{id}");
        assert_eq!(
            planned.plan.actions.len(),
            expected.len(),
            "{id}: only their actions: {:?}",
            planned.plan.actions
        );
        if id.as_str() == "E1" || id.as_str() == "E2" {
            assert!(
                planned
                    .plan
                    .actions
                    .iter()
                    .all(|a| a.operation != Operation::Create),
                "{id}: {:?}",
                planned.plan.actions
            );
            assert!(
                planned
                    .plan
                    .findings
                    .iter()
                    .any(|f| f.kind == FindingKind::Ambiguous),
                "{id}: {:?}",
                planned.plan.findings
            );
        }
        // By address too, and through the benchmark's entry point: the
        // same planning function.
        let by_email = roster
            .plan(&op, PlanScope::Person(PersonRef::Email(p.email.clone())))
            .await
            .unwrap();
        assert_eq!(part_of(&by_email.plan, &id), expected, "{id} by address");
        let run = bench::reconcile_person(
            roster.store(),
            &roster.engine().policy,
            &PersonSelector::EmployeeId(id.clone()),
            now,
            false,
        )
        .await
        .unwrap();
        assert_eq!(part_of(&run.plan, &id), expected, "{id} (bench)");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_deactivates_now_and_keeps_the_person_out() {
    let (sim, roster, _dir) = in_line(&rules("status")).await;
    let alice = user("alice");
    let who = PersonRef::Email(Email::parse(&email(4)).unwrap());
    let off = roster
        .offboard(&alice, &who, "left today", &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(off.person.employee_id.as_str(), "E4");
    assert!(off.held.is_empty(), "{:?}", off.held);
    assert_eq!(off.report.applied_total(), 1, "{:?}", off.report);
    assert!(
        off.plan
            .actions
            .iter()
            .all(|a| a.operation.is_deprovision() && a.email.as_str() == email(4)),
        "{:?}",
        off.plan.actions
    );
    assert_eq!(removed(&sim), vec![email(4)]);
    assert!(!in_app(&sim, &email(4)));

    // The source still lists them as active: the override keeps them out.
    let overrides = roster.store().person_overrides().await.unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0].employee_id.as_str(), "E4");
    assert_eq!(overrides[0].status, "terminated");
    assert_eq!(overrides[0].actor, "user:alice");
    let service = Principal::service();
    roster.read(&service, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&service, PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "a full plan does not re-create them: {:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&service, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(removed(&sim), vec![email(4)]);
    assert!(
        !sim.handle()
            .effects()
            .iter()
            .any(|e| e.kind == EffectKind::Added),
        "{:?}",
        sim.handle().effects()
    );

    // The audit names alice for the offboarding, its plan and its apply.
    assert_eq!(
        actors(&roster, "person.offboarded", "E4").await,
        vec!["user:alice".to_string()]
    );
    for kind in ["plan.created", "plan.apply_started"] {
        assert_eq!(
            actors(&roster, kind, off.plan_id.as_str()).await,
            vec!["user:alice".to_string()],
            "{kind}"
        );
    }
    roster.store().verify_audit().await.unwrap();
}

/// An offboarding is its requester's approval even where separation of
/// duties is `always` (they proposed the plan by asking); an agent may not
/// offboard at all (it may only propose one): nothing is recorded or
/// changed.
#[tokio::test(flavor = "multi_thread")]
async fn an_offboarding_is_a_persons_approval_under_strict_separation_and_an_agent_is_refused() {
    let strict = format!(
        "[approvals]\nseparation_of_duties = \"always\"\n[connections.expensify]\nsensitive = true\n{}",
        rules("status")
    );
    let (sim, roster, _dir) = in_line(&strict).await;
    let agent = Principal::new(PrincipalKind::Agent, "claude");
    let err = roster
        .offboard(
            &agent,
            &PersonRef::Email(Email::parse(&email(5)).unwrap()),
            "agent asked",
            &mut |_, _| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotPermitted(_)), "{err}");
    assert!(
        in_app(&sim, &email(5)),
        "an agent's request changes nothing"
    );
    assert!(
        roster
            .store()
            .audit_since(0)
            .await
            .unwrap()
            .iter()
            .all(|r| r.kind != "person.offboarded"),
        "no termination override was recorded"
    );

    let off = roster
        .offboard(
            &user("alice"),
            &PersonRef::Email(Email::parse(&email(4)).unwrap()),
            "left today",
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert!(off.held.is_empty(), "{:?}", off.held);
    assert_eq!(off.report.applied_total(), 1, "{:?}", off.report);
    assert!(!in_app(&sim, &email(4)));
    assert!(in_app(&sim, &email(5)));
}
