//! The browser path through the application layer, with a real headless
//! chromium (Debian's, from scripts/browser-tools.sh) driving the Spendesk
//! simulator's admin console on loopback:
//!
//! * a leaver's deactivation whose runbook reassigns approvals and blocks
//!   cards first waits for a person's approval (`financial_steps`); nothing
//!   happens in the console until then; approved, it runs, the screenshots'
//!   hashes are in the audit chain and the next read (Spendesk's members
//!   API) shows the member deactivated;
//! * an unverified runbook stops before the final confirmation and the
//!   action becomes a person's task with the runbook's checklist and the
//!   screenshots.
//!
//! These tests run alone (.config/nextest.toml: the real-browser group).

use std::sync::Arc;

use roster_catalog::Catalog;
use roster_catalog::runbook::Verified;
use roster_catalog::{ConnectionSettings, CredentialKind};
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, EmploymentStatus, Operation, Policy, Principal};
use roster_engine::browser::{BrowserSecrets, RawBrowser};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, PlanScope, Roster};
use roster_sim::common::EffectKind;
use roster_sim::spendesk::{ConsoleAdmin, Member, RunningSpendesk, SpendeskSim, SpendeskSimConfig};
use roster_store::{ActionState, HumanTaskState, Store};

mod common;

const ADMIN: &str = "admin@acme.example";
const PASSWORD: &str = "console-pw";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const LEAVER: &str = "bob@acme.example";
const BOSS: &str = "alice@acme.example";

async fn spendesk() -> RunningSpendesk {
    let sim = SpendeskSim::start(
        SpendeskSimConfig::new("key-id", "key-secret")
            .with_member(Member::new(BOSS, "Alice", "Smith"))
            .with_member(Member::new(LEAVER, "Bob", "Jones"))
            .with_console_admin(ConsoleAdmin {
                email: ADMIN.into(),
                password: Some(PASSWORD.into()),
                totp_seed: Some(SEED.into()),
            }),
    )
    .await
    .unwrap();
    sim.add_approval(LEAVER, "carol@acme.example", "€250.00");
    sim.add_card(LEAVER, "4111111111111111");
    sim
}

fn user(name: &str) -> Principal {
    Principal::new(PrincipalKind::User, name)
}

struct World {
    sim: RunningSpendesk,
    roster: Roster,
    dir: tempfile::TempDir,
}

async fn world(verified: bool, policy_extra: &str) -> World {
    let sim = spendesk().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        &format!(
            "[[rules]]\nname = \"finance-spendesk\"\nconnection = \"spendesk\"\nwhen = {{ department = [\"Finance\"] }}\n{policy_extra}"
        ),
    )
    .unwrap();
    let catalog = Catalog::builtin().unwrap();
    let mut runbook = catalog
        .runbook("spendesk", Operation::Deactivate)
        .unwrap()
        .clone();
    if verified {
        runbook.verified = Some(Verified {
            at: "2026-12-07".into(),
            by: "test".into(),
            note: None,
        });
    }
    let read = registry::build(
        catalog.require("spendesk").unwrap(),
        &ConnectorSettings::new(ConnectionId::new("spendesk"))
            .with_path("api")
            .with_base_url(sim.url())
            .with_username("key-id")
            .with_secret(SecretString::new("key-secret")),
    )
    .unwrap();
    let mut engine = Engine::new(store, policy).with_catalog(catalog);
    engine
        .store
        .mark_connections_applied(&[ConnectionId::new("spendesk")], "earlier", 0)
        .await
        .unwrap();
    engine.bind(
        ConnectionId::new("spendesk"),
        AppBinding {
            app: "spendesk".into(),
            settings: ConnectionSettings::default()
                .with_credential(CredentialKind::ApiClient)
                .with_browser(true),
            assignee: Some("it-ops@acme.example".into()),
            ..AppBinding::default()
        },
    );
    let raw: RawBrowser = toml::from_str(&format!(
        "console_url = \"{}\"\nusername = \"{ADMIN}\"\npassword = {{ env = \"UNUSED\" }}\nsuccessor = \"{BOSS}\"\nstep_timeout_secs = 8\n",
        sim.base_url()
    ))
    .unwrap();
    let connector = roster_engine::browser::wrap(
        read,
        runbook,
        &raw,
        BrowserSecrets {
            password: SecretString::new(PASSWORD),
            totp_seed: Some(SecretString::new(SEED)),
            idp_password: None,
        },
        dir.path().join("evidence"),
        Some(engine.evidence_sink()),
    )
    .unwrap();
    engine.add_connector(Arc::new(connector));
    let roster = Roster::new(engine);
    let op = user("operator");
    let mut alice = common::person("E1", BOSS, "Alice", EmploymentStatus::Active);
    alice.last_name = "Smith".into();
    let mut bob = common::person("E2", LEAVER, "Bob", EmploymentStatus::Terminated);
    bob.last_name = "Jones".into();
    roster
        .import_people(&op, &[alice, bob], "test")
        .await
        .unwrap();
    World { sim, roster, dir }
}

fn console_effects(sim: &RunningSpendesk) -> Vec<String> {
    sim.effects()
        .into_iter()
        .filter(|e| e.via == "console")
        .map(|e| match e.kind {
            EffectKind::Updated { fields } => fields.join(","),
            k => k.name().to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_waits_for_approval_then_the_runbook_deactivates_and_the_next_read_confirms() {
    let w = world(true, "").await;
    let op = user("operator");
    w.roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = w.roster.plan(&op, PlanScope::All).await.unwrap();
    assert_eq!(planned.plan.actions.len(), 1, "{:?}", planned.plan);
    let why = planned
        .plan
        .approvals
        .get(&0)
        .expect("the deactivation moves money: it waits for approval");
    assert!(why.starts_with("financial_steps: "), "{why}");
    let id = planned.id.clone();

    // Applied before anyone approved: held, and the console untouched.
    let approved = w.roster.check_planned(&op, planned).await;
    match approved {
        Ok(a) => {
            let (report, _) = w.roster.apply(a, &mut |_, _| {}).await.unwrap();
            assert_eq!(report.held, 1, "{report:?}");
        }
        Err(e) => assert!(e.to_string().contains("approval"), "{e}"),
    }
    assert!(console_effects(&w.sim).is_empty());
    assert!(w.sim.console_events().is_empty(), "no browser ran");

    // A person approves; the runbook runs.
    w.roster
        .approve(&user("finance-lead"), &id, Some(0), "reassign to Alice")
        .await
        .unwrap();
    let approved = w.roster.check(&op, &id, &mut |_, _| {}).await.unwrap();
    let (report, _) = w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.applied_total(), 1, "{report:?}");
    assert_eq!(
        console_effects(&w.sim),
        ["pendingApprovals", "cards", "deactivated"]
    );
    assert!(w.sim.approvals().iter().all(|a| a.approver == BOSS));
    let actions = w.roster.store().actions(&id).await.unwrap();
    assert_eq!(actions[0].state, ActionState::Done);

    // The screenshots' hashes are in the audit chain; the files match.
    let events: Vec<_> = w
        .roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "browser.screenshot")
        .collect();
    assert!(events.len() >= 2, "{events:?}");
    for e in &events {
        let path = e.data["path"].as_str().unwrap();
        assert!(path.starts_with(&w.dir.path().display().to_string()));
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            roster_browser::evidence::sha256_hex(&bytes),
            e.data["sha256"].as_str().unwrap()
        );
    }
    w.roster.store().verify_audit().await.unwrap();

    // The next read sees the member deactivated: nothing left to do.
    w.roster.read(&op, &mut |_, _| {}).await.unwrap();
    let next = w.roster.plan(&op, PlanScope::All).await.unwrap();
    assert!(next.plan.actions.is_empty(), "{:?}", next.plan.actions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_runbook_hands_the_confirmation_to_a_person_with_screenshots() {
    // Money may go without approval here (the policy says so): the only
    // stop left is the unverified runbook's.
    let w = world(false, "[approvals]\nfinancial_steps = false\n").await;
    let op = user("operator");
    w.roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = w.roster.plan(&op, PlanScope::All).await.unwrap();
    assert!(planned.plan.approvals.is_empty(), "{:?}", planned.plan);
    let id = planned.id.clone();
    let approved = w.roster.check_planned(&op, planned).await.unwrap();
    let (report, enqueued) = w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.applied_total(), 0, "{report:?}");
    assert!(enqueued.tasks.is_empty(), "not a manual action up front");

    // Not deactivated: the final click is a person's.
    assert!(!console_effects(&w.sim).contains(&"deactivated".to_string()));
    let member = w.sim.member(LEAVER).unwrap();
    assert_eq!(member.status, "active");

    let actions = w.roster.store().actions(&id).await.unwrap();
    assert_eq!(actions[0].state, ActionState::Manual, "{:?}", actions[0]);
    let tasks = w.roster.store().human_tasks(&[]).await.unwrap();
    let task = tasks
        .iter()
        .find(|t| t.subject_email == LEAVER)
        .expect("a task for the person");
    assert_eq!(task.state, HumanTaskState::Open);
    assert!(
        task.title.contains("runbook spendesk-deactivate stopped"),
        "{}",
        task.title
    );
    assert!(
        task.checklist[0].contains("unverified"),
        "{:?}",
        task.checklist
    );
    assert!(
        task.checklist[0].contains("before-confirmation sha256:"),
        "{:?}",
        task.checklist
    );
    assert!(
        task.checklist
            .iter()
            .any(|l| l == "Confirm the deactivation."),
        "{:?}",
        task.checklist
    );
}
