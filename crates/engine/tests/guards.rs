//! The safety guards end to end, with default settings: plan → approve or
//! reject → apply against the Expensify simulator, judged by its effect
//! log; the source-change guard across imports; and a gateway push kept in
//! its lane.

mod common;

use std::sync::{Arc, Mutex};

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{
    Cause, ConnectionId, EmploymentStatus, FindingKind, Operation, Person, Policy, Principal,
};
use roster_engine::{Engine, EngineError, PlanScope, Roster};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy,
};
use roster_store::{ActionState, ScimKind, ScimResourceWrite, Store};

const USER: &str = "guards@example.com";
const SECRET: &str = "guards-secret";
const POLICY_ID: &str = "AAAA000000000001";
const PEOPLE: usize = 20;

fn rules(status_key: &str) -> String {
    format!(
        "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = {{ {status_key} = [\"active\", \"leave\"] }}\nset = {{ role = \"user\", manager_email = \"{{manager_email}}\", policy_id = \"{POLICY_ID}\" }}\n"
    )
}

fn people() -> Vec<Person> {
    (0..PEOPLE)
        .map(|i| {
            let mut p = common::person(
                &format!("E{i}"),
                &format!("p{i}@acme.example"),
                &format!("P{i}"),
                EmploymentStatus::Active,
            );
            p.manager_email = Some(roster_core::Email::parse("boss@acme.example").unwrap());
            p
        })
        .collect()
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

/// Roster over `store` with `policy`, wired to the simulator. The engine's
/// configuration is fixed once it is behind [`Roster`]: a test that edits
/// the policy wires a new one over the same store.
fn wire(store: Store, sim: &RunningSim, policy: Policy) -> Roster {
    let mut engine = Engine::new(store, policy);
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

/// Checks a stored plan (re-reading the app) and applies it.
async fn check_and_apply(
    roster: &Roster,
    id: &roster_store::PlanId,
) -> Result<roster_engine::ApplyReport, EngineError> {
    let approved = roster.check(&operator(), id, &mut |_, _| {}).await?;
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await?;
    Ok(report)
}

/// An Expensify tenant in line with `people()`, roster on it, and a
/// first plan (nothing to do) applied.
async fn in_line() -> (RunningSim, Roster, tempfile::TempDir) {
    let mut policy = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..PEOPLE {
        policy = policy.with_employee(SimEmployee::new(
            format!("p{i}@acme.example"),
            "boss@acme.example",
            format!("E{i}"),
        ));
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
    let roster = wire(
        store,
        &sim,
        Policy::parse("p.toml", &rules("status")).unwrap(),
    );
    let op = operator();
    roster.import_people(&op, &people(), "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{}",
        roster_core::plan::render(&planned.plan)
    );
    let id = planned.id.clone();
    drop(planned);
    check_and_apply(&roster, &id).await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelled_key_takes_nothing_from_the_employed_while_the_leaver_goes() {
    let (sim, roster, _dir) = in_line().await;
    // The typo that once deactivated every account its rule granted.
    let roster = wire(
        roster.store().clone(),
        &sim,
        Policy::parse("p.toml", &rules("staus")).expect("parses as-is"),
    );
    let op = operator();
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    roster.import_people(&op, &hr, "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let (id, plan) = (planned.id.clone(), planned.plan.clone());
    drop(planned);
    let text = roster_core::plan::render(&plan);

    let leaver = plan
        .actions
        .iter()
        .position(|a| a.email.as_str() == "p3@acme.example")
        .expect("the leaver's deactivation");
    assert_eq!(plan.actions[leaver].cause, Cause::Left);
    assert!(!plan.approvals.contains_key(&leaver), "{text}");
    let employed: Vec<usize> = (0..plan.actions.len()).filter(|i| *i != leaver).collect();
    assert_eq!(employed.len(), PEOPLE - 1, "{text}");
    for i in &employed {
        assert_eq!(plan.actions[*i].cause, Cause::NoLongerGranted);
        assert!(plan.approvals[i].starts_with("removal_limit: "), "{text}");
    }
    assert!(text.contains("roster approve PLAN --action N"), "{text}");

    // The held removals wait; the leaver goes at once.
    let report = check_and_apply(&roster, &id).await.unwrap();
    assert_eq!(report.held, PEOPLE - 1, "{report:?}");
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
    // Rejected, they never run: nothing is held any more, and with the
    // leaver gone and the rest rejected the plan has nothing left to do.
    let reviewer = Principal::new(PrincipalKind::User, "reviewer");
    roster
        .reject(&reviewer, &id, None, "typo in the policy")
        .await
        .unwrap();
    let again = check_and_apply(&roster, &id).await;
    assert!(
        matches!(again, Err(EngineError::AlreadyApplied { .. })),
        "{again:?}"
    );
    assert!(
        roster
            .approval_status(&id)
            .await
            .unwrap()
            .waiting
            .is_empty()
    );
    let actions = roster.store().actions(&id).await.unwrap();
    for i in &employed {
        assert_eq!(actions[*i].state, ActionState::Skipped, "{:?}", actions[*i]);
    }
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_approved_after_the_rest_ran_runs_only_if_a_fresh_plan_still_wants_it() {
    let (sim, roster, _dir) = in_line().await;
    let roster = wire(
        roster.store().clone(),
        &sim,
        Policy::parse("p.toml", &rules("staus")).expect("parses as-is"),
    );
    let op = operator();
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    roster.import_people(&op, &hr, "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let id = roster.plan(&op, PlanScope::All).await.unwrap().id;
    let report = check_and_apply(&roster, &id).await.unwrap();
    assert_eq!(report.held, PEOPLE - 1, "{report:?}");
    // Someone fixes the typo, then (wrongly) approves the held removals of
    // the old plan: a fresh plan no longer calls for them, so none runs.
    let roster = wire(
        roster.store().clone(),
        &sim,
        Policy::parse("p.toml", &rules("status")).expect("parses"),
    );
    let reviewer = Principal::new(PrincipalKind::User, "reviewer");
    roster
        .approve(&reviewer, &id, None, "looks fine")
        .await
        .unwrap();
    let report = check_and_apply(&roster, &id).await.unwrap();
    assert_eq!(report.skipped, PEOPLE - 1, "{report:?}");
    assert_eq!(report.held + report.pending, 0, "{report:?}");
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_terminates_many_at_once_yields_no_deactivation_until_confirmed() {
    let (sim, roster, _dir) = in_line().await;
    let op = operator();
    let mut hr = people();
    for i in [2, 5, 9] {
        hr[i].status = EmploymentStatus::Terminated;
    }
    // 3 of 20 newly terminated is more than 5%.
    let change = roster.import_people(&op, &hr, "hr").await.unwrap();
    assert!(change.is_some());
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let plan = planned.plan.clone();
    let text = roster_core::plan::render(&plan);
    assert!(
        plan.actions.iter().all(|a| !a.operation.is_deprovision()),
        "{text}"
    );
    assert!(
        plan.findings
            .iter()
            .any(|f| f.kind == FindingKind::SourceChange),
        "{text}"
    );
    assert!(
        text.contains("roster plan --accept-source-change"),
        "{text}"
    );
    let approved = roster.check_planned(&op, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert!(removed(&sim).is_empty());

    // The same snapshot stays unaccepted, run after run.
    let again = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    assert!(again.actions.iter().all(|a| !a.operation.is_deprovision()));

    // A person confirms: the leavers go at once.
    let hr_lead = Principal::new(PrincipalKind::User, "hr-lead");
    roster.accept_source_change(&hr_lead).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let (id, plan) = (planned.id.clone(), planned.plan.clone());
    drop(planned);
    assert_eq!(
        plan.actions.len(),
        3,
        "{}",
        roster_core::plan::render(&plan)
    );
    assert!(plan.approvals.is_empty());
    check_and_apply(&roster, &id).await.unwrap();
    let mut gone = removed(&sim);
    gone.sort();
    assert_eq!(
        gone,
        vec!["p2@acme.example", "p5@acme.example", "p9@acme.example"]
    );
}

#[tokio::test]
async fn a_push_for_spendesk_never_creates_an_expensify_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        r#"
[[rules]]
name = "everyone-expensify"
connection = "expensify"
set = { role = "user" }

[[rules]]
name = "okta-assigns-spendesk"
connection = "spendesk"
when = { "gateway.spendesk" = ["active"] }
"#,
    )
    .unwrap();
    let read_only = |store: Store, policy: Policy| {
        let mut engine = Engine::new(store, policy);
        for c in ["expensify", "spendesk"] {
            engine.add_connector(Arc::new(common::ReadOnly {
                id: ConnectionId::new(c),
                accounts: Arc::new(Mutex::new(Vec::new())),
            }));
        }
        Roster::new(engine)
    };
    let roster = read_only(store, policy);
    let op = operator();
    let hr = vec![common::person(
        "E1",
        "alice@acme.example",
        "Alice",
        EmploymentStatus::Active,
    )];
    roster.import_people(&op, &hr, "hr").await.unwrap();
    // Okta pushes someone HR does not know, for Spendesk only.
    roster
        .store()
        .scim_create(
            "spendesk",
            ScimKind::User,
            ScimResourceWrite {
                id: "u-1".into(),
                user_name: Some("contractor@partner.example".into()),
                display_name: Some("Con Tractor".into()),
                external_id: Some("okta-1".into()),
                active: Some(true),
                emails: vec!["contractor@partner.example".into()],
                members: None,
                data: serde_json::json!({
                    "userName": "contractor@partner.example",
                    "name": { "givenName": "Con", "familyName": "Tractor" },
                    "active": true,
                }),
                // Written as before schema 12: the fold backfills it.
                intent: None,
            },
            1,
        )
        .await
        .unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let plan = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    let text = roster_core::plan::render(&plan);
    let creates: Vec<(&str, &str)> = plan
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Create)
        .map(|a| (a.connection.as_str(), a.email.as_str()))
        .collect();
    assert_eq!(
        creates,
        vec![
            ("expensify", "alice@acme.example"),
            ("spendesk", "contractor@partner.example"),
        ],
        "{text}"
    );
    assert!(text.contains("pushed by the IdP for spendesk"), "{text}");
    assert!(text.contains("Alice Test (from HR)"), "{text}");

    // A rule that names the lane explicitly may grant more.
    let policy = Policy::parse(
        "p.toml",
        r#"
[[rules]]
name = "everyone-expensify"
connection = "expensify"
set = { role = "user" }

[[rules]]
name = "spendesk-users-expense-too"
connection = "expensify"
when = { source = ["gateway.spendesk"] }
set = { role = "user" }

[[rules]]
name = "okta-assigns-spendesk"
connection = "spendesk"
when = { "gateway.spendesk" = ["active"] }
"#,
    )
    .unwrap();
    let roster = read_only(roster.store().clone(), policy);
    let plan = roster.plan(&op, PlanScope::All).await.unwrap().plan;
    assert!(
        plan.actions
            .iter()
            .any(|a| a.connection.as_str() == "expensify"
                && a.email.as_str() == "contractor@partner.example"),
        "{}",
        roster_core::plan::render(&plan)
    );
}

/// A harmful edit to the policy or the people source, as a person might
/// make by mistake.
#[derive(Clone, Copy, Debug)]
enum Edit {
    /// A key of the rule's `when` misspelled (a random letter dropped).
    MisspellStatusKey,
    /// The rule deleted.
    DeleteRule,
    /// The rule's connection misspelled: the app is no longer governed.
    RenameConnection,
    /// The rule widened to grant the admin role.
    GrantAdmin,
    /// The HR file emptied.
    EmptySource,
    /// The HR file cut to a random part (a half or less).
    CutSource,
}

const EDITS: [Edit; 6] = [
    Edit::MisspellStatusKey,
    Edit::DeleteRule,
    Edit::RenameConnection,
    Edit::GrantAdmin,
    Edit::EmptySource,
    Edit::CutSource,
];

/// xorshift64: reproducible randomness without a dependency; the seed is
/// in every failure message.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// "Done means" of the safe-by-default issue: random harmful edits (with
/// a few genuine leavers mixed in) run through plan and apply with default
/// settings and no approval against the Expensify simulator. Its effect
/// log must show no removal of anyone HR still employs, no grant at all
/// (the tenant is in line), no admin role handed out; and wherever the
/// source looks whole (not cut, at most one leaver of 20) and the app is
/// still governed, every genuine leaver gone at once.
#[tokio::test(flavor = "multi_thread")]
async fn random_harmful_edits_never_take_or_grant_access_unasked() {
    for seed in 1..=18u64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let edit = EDITS[(next(&mut state) % EDITS.len() as u64) as usize];
        let (sim, roster, _dir) = in_line().await;
        let mut hr = people();
        let mut leavers: Vec<usize> = (0..(next(&mut state) % 3) as usize)
            .map(|_| (next(&mut state) % PEOPLE as u64) as usize)
            .collect();
        leavers.sort_unstable();
        leavers.dedup();
        for &i in &leavers {
            hr[i].status = EmploymentStatus::Terminated;
        }
        let leaver_emails: Vec<String> = leavers
            .iter()
            .map(|&i| format!("p{i}@acme.example"))
            .collect();
        let policy_text = match edit {
            Edit::MisspellStatusKey => {
                let cut = (next(&mut state) % "status".len() as u64) as usize;
                let mut key = "status".to_string();
                key.remove(cut);
                rules(&key)
            }
            Edit::DeleteRule => String::new(),
            Edit::RenameConnection => rules("status").replace("\"expensify\"", "\"expensfy\""),
            Edit::GrantAdmin => rules("status").replace("role = \"user\"", "role = \"admin\""),
            Edit::EmptySource | Edit::CutSource => rules("status"),
        };
        match edit {
            Edit::EmptySource => hr.clear(),
            Edit::CutSource => {
                let keep = 1 + (next(&mut state) % (PEOPLE as u64 / 2)) as usize;
                hr.truncate(keep);
            }
            _ => {}
        }
        let case = format!("seed {seed}: {edit:?}, leavers {leaver_emails:?}");
        // Parsed as-is: the guards hold even where `policy check` would
        // have caught the mistake.
        let roster = wire(
            roster.store().clone(),
            &sim,
            Policy::parse("p.toml", &policy_text).expect("parses"),
        );
        let op = operator();
        roster.import_people(&op, &hr, "hr").await.unwrap();
        roster.read(&op, &mut |_, _| {}).await.unwrap();
        let planned = roster.plan(&op, PlanScope::All).await.unwrap();
        let (id, plan) = (planned.id.clone(), planned.plan.clone());
        drop(planned);
        let text = roster_core::plan::render(&plan);
        check_and_apply(&roster, &id).await.unwrap();

        let effects = sim.handle().effects();
        for e in &effects {
            match &e.kind {
                EffectKind::Removed => assert!(
                    leaver_emails.contains(&e.email),
                    "{case}: {} removed but HR still employs them\n{text}",
                    e.email
                ),
                EffectKind::Added => panic!("{case}: {} added unasked\n{text}", e.email),
                _ => {}
            }
        }
        for i in 0..PEOPLE {
            let email = format!("p{i}@acme.example");
            if let Some(emp) = sim.handle().employee(POLICY_ID, &email) {
                assert_ne!(
                    emp.role, "admin",
                    "{case}: admin granted to {email}\n{text}"
                );
            }
        }
        // Two leavers of 20 people at once is 10% newly terminated: the
        // source-change guard withholds them until confirmed (by design).
        let source_whole =
            !matches!(edit, Edit::EmptySource | Edit::CutSource) && leavers.len() <= 1;
        let governed = !matches!(edit, Edit::DeleteRule | Edit::RenameConnection);
        if source_whole && governed {
            for l in &leaver_emails {
                assert!(
                    effects
                        .iter()
                        .any(|e| &e.email == l && e.kind == EffectKind::Removed),
                    "{case}: leaver {l} not removed at once\n{text}"
                );
            }
        }
    }
}
