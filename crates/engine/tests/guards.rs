//! The safety guards end to end, with default settings: plan → approve or
//! reject → apply against the Expensify simulator, judged by its effect
//! log; the source-change guard across imports; and a gateway push kept in
//! its lane.

mod common;

use std::sync::{Arc, Mutex};

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::{Cause, ConnectionId, EmploymentStatus, FindingKind, Operation, Person, Policy};
use roster_engine::Engine;
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy,
};
use roster_store::{Decision, ScimKind, ScimResourceWrite, Store};

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

/// An Expensify tenant in line with `people()`, an engine on it, and a
/// first plan (nothing to do) applied.
async fn in_line() -> (RunningSim, Engine, tempfile::TempDir) {
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
    let mut engine = Engine::new(store, Policy::parse("p.toml", &rules("status")).unwrap());
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
    engine.import_people(&people(), "hr").await.unwrap();
    engine.read(&mut |_, _| {}).await.unwrap();
    let (id, plan) = engine.plan(None).await.unwrap();
    assert!(
        plan.actions.is_empty(),
        "{}",
        roster_core::plan::render(&plan)
    );
    engine.ensure_applicable(&id).await.unwrap();
    engine.apply(&id, &mut |_, _| {}).await.unwrap();
    (sim, engine, dir)
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
    let (sim, mut engine, _dir) = in_line().await;
    // The typo that once deactivated every account its rule granted.
    engine.policy = Policy::parse("p.toml", &rules("staus")).expect("parses as-is");
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    engine.import_people(&hr, "hr").await.unwrap();
    engine.read(&mut |_, _| {}).await.unwrap();
    let (id, plan) = engine.plan(None).await.unwrap();
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
    engine.ensure_applicable(&id).await.unwrap();
    let report = engine.apply(&id, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.held, PEOPLE - 1, "{report:?}");
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
    // Rejected, they never run.
    engine
        .decide(
            &id,
            None,
            Decision::Rejected,
            "reviewer",
            "typo in the policy",
        )
        .await
        .unwrap();
    engine.ensure_applicable(&id).await.unwrap();
    let report = engine.apply(&id, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.held, 0, "{report:?}");
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_approved_after_the_rest_ran_runs_only_if_a_fresh_plan_still_wants_it() {
    let (sim, mut engine, _dir) = in_line().await;
    engine.policy = Policy::parse("p.toml", &rules("staus")).expect("parses as-is");
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    engine.import_people(&hr, "hr").await.unwrap();
    engine.read(&mut |_, _| {}).await.unwrap();
    let (id, _) = engine.plan(None).await.unwrap();
    engine.ensure_applicable(&id).await.unwrap();
    let report = engine.apply(&id, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.held, PEOPLE - 1, "{report:?}");
    // Someone fixes the typo, then (wrongly) approves the held removals of
    // the old plan: a fresh plan no longer calls for them, so none runs.
    engine.policy = Policy::parse("p.toml", &rules("status")).expect("parses");
    engine
        .decide(&id, None, Decision::Approved, "reviewer", "looks fine")
        .await
        .unwrap();
    engine.ensure_applicable(&id).await.unwrap();
    let report = engine.apply(&id, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.skipped, PEOPLE - 1, "{report:?}");
    assert_eq!(report.held + report.pending, 0, "{report:?}");
    assert_eq!(removed(&sim), vec!["p3@acme.example".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_terminates_many_at_once_yields_no_deactivation_until_confirmed() {
    let (sim, engine, _dir) = in_line().await;
    let mut hr = people();
    for i in [2, 5, 9] {
        hr[i].status = EmploymentStatus::Terminated;
    }
    // 3 of 20 newly terminated is more than 5%.
    let change = engine.import_people(&hr, "hr").await.unwrap();
    assert!(change.is_some());
    engine.read(&mut |_, _| {}).await.unwrap();
    let (id, plan) = engine.plan(None).await.unwrap();
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
    engine.apply(&id, &mut |_, _| {}).await.unwrap();
    assert!(removed(&sim).is_empty());

    // The same snapshot stays unaccepted, run after run.
    let (_, again) = engine.plan(None).await.unwrap();
    assert!(again.actions.iter().all(|a| !a.operation.is_deprovision()));

    // A person confirms: the leavers go at once.
    engine.accept_source_change("hr-lead").await.unwrap();
    let (id, plan) = engine.plan(None).await.unwrap();
    assert_eq!(
        plan.actions.len(),
        3,
        "{}",
        roster_core::plan::render(&plan)
    );
    assert!(plan.approvals.is_empty());
    engine.ensure_applicable(&id).await.unwrap();
    engine.apply(&id, &mut |_, _| {}).await.unwrap();
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
    let mut engine = Engine::new(store, policy);
    for c in ["expensify", "spendesk"] {
        engine.add_connector(Arc::new(common::ReadOnly {
            id: ConnectionId::new(c),
            accounts: Arc::new(Mutex::new(Vec::new())),
        }));
    }
    let hr = vec![common::person(
        "E1",
        "alice@acme.example",
        "Alice",
        EmploymentStatus::Active,
    )];
    engine.import_people(&hr, "hr").await.unwrap();
    // Okta pushes someone HR does not know, for Spendesk only.
    engine
        .store
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
    engine.read(&mut |_, _| {}).await.unwrap();
    let (_, plan) = engine.plan(None).await.unwrap();
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
    engine.policy = Policy::parse(
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
    let (_, plan) = engine.plan(None).await.unwrap();
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
        let (sim, mut engine, _dir) = in_line().await;
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
        engine.policy = Policy::parse("p.toml", &policy_text).expect("parses");
        engine.import_people(&hr, "hr").await.unwrap();
        engine.read(&mut |_, _| {}).await.unwrap();
        let (id, plan) = engine.plan(None).await.unwrap();
        let text = roster_core::plan::render(&plan);
        engine.ensure_applicable(&id).await.unwrap();
        engine.apply(&id, &mut |_, _| {}).await.unwrap();

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
