//! Identity providers as the source of truth, end to end: a config's
//! `[sources.<name>]` table built into a source, read against the IdP's
//! simulator, merged and imported, and a plan applied to an Expensify
//! simulator.
//!
//! Each test tries to make roster take access away nobody asked for (a
//! lockout storm, a suspension, a failed read, a read cut short, a
//! directory that suddenly lists half its people) and judges the outcome
//! by the app's own effect log; the one leaver is closed.

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::guard::GuardKind;
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Operation, Policy, Principal};
use roster_engine::app::RunOptions;
use roster_engine::config::Config;
use roster_engine::{Engine, EngineError, PlanScope, Roster};
use roster_sim::common::Fault;
use roster_sim::expensify::{EffectKind, RunningSim};
use roster_sim::google::{GoogleSim, GoogleSimConfig, GoogleUser, RunningGoogle};
use roster_sim::graph::{GraphSim, GraphSimConfig, GraphUser, RunningGraph};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_sim::onelogin::{OneLoginSim, OneLoginSimConfig, OneLoginUser, RunningOneLogin};
use roster_store::Store;

mod common;

const USER: &str = "idp-e2e@example.com";
const SECRET: &str = "idp-e2e-secret";
const POLICY_ID: &str = "AAAA000000000002";
const PEOPLE: usize = 20;
const OKTA_TOKEN: &str = "okta-e2e-token";

const POLICY: &str = "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"] }\n\
    set = { role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"AAAA000000000002\" }\n";

fn op() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

async fn expensify() -> RunningSim {
    common::expensify_people(USER, SECRET, POLICY_ID, PEOPLE).await
}

async fn okta() -> RunningOkta {
    let mut config = OktaSimConfig::new(OKTA_TOKEN);
    for i in 0..PEOPLE {
        config = config.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
    }
    OktaSim::start(config).await.unwrap()
}

async fn graph() -> RunningGraph {
    let mut config = GraphSimConfig::new("tenant-1", "client-1", "graph-secret");
    for i in 0..PEOPLE {
        config = config.with_user(
            GraphUser::new(&email(i), &format!("P{i}"), "L").with_employee_id(&format!("E{i}")),
        );
    }
    GraphSim::start(config).await.unwrap()
}

const GOOGLE_SA: &str = "roster@acme-project.iam.gserviceaccount.com";

async fn google() -> RunningGoogle {
    let mut config = GoogleSimConfig::new(GOOGLE_SA, "admin@acme.example");
    for i in 0..PEOPLE {
        config = config.with_user(
            GoogleUser::new(&email(i), &format!("P{i}"), "L").with_employee_id(&format!("E{i}")),
        );
    }
    GoogleSim::start(config).await.unwrap()
}

async fn onelogin() -> RunningOneLogin {
    let mut config = OneLoginSimConfig::new("ol-client", "ol-secret");
    for i in 0..PEOPLE {
        config = config.with_user(
            OneLoginUser::new(&email(i), &format!("P{i}"), "L")
                .with_custom("employee_id", &format!("E{i}")),
        );
    }
    OneLoginSim::start(config).await.unwrap()
}

fn google_toml(sim: &RunningGoogle) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.google]\nkind = \"google\"\nservice_account = \"{GOOGLE_SA}\"\n\
         admin = \"admin@acme.example\"\nprivate_key = {{ env = \"GOOGLE_KEY\" }}\n\
         base_url = \"{}\"\ntoken_url = \"{}\"\npage_size = 5\n",
        sim.api_url(),
        sim.token_url()
    )
}

fn onelogin_toml(sim: &RunningOneLogin) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.onelogin]\nkind = \"onelogin\"\nbase_url = \"{}\"\n\
         client_id = \"ol-client\"\nclient_secret = {{ env = \"OL_SECRET\" }}\n",
        sim.url()
    )
}

fn okta_toml(url: &str) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.okta]\nkind = \"okta\"\nbase_url = \"{url}\"\n\
         token = {{ env = \"OKTA_TOKEN\" }}\npage_size = 5\n"
    )
}

fn entra_toml(sim: &RunningGraph) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.entra]\nkind = \"entra\"\ntenant_id = \"tenant-1\"\n\
         client_id = \"client-1\"\nclient_secret = {{ env = \"ENTRA_SECRET\" }}\n\
         base_url = \"{}\"\nlogin_url = \"{}\"\npage_size = 5\n",
        sim.graph_url(),
        sim.login_url()
    )
}

/// Roster over `store`, wired to the Expensify simulator and to the
/// sources the config text names (built as `roster` builds them).
fn wire(store: Store, app: &RunningSim, config: &str) -> Roster {
    wire_with(store, app, config, POLICY)
}

fn wire_with(store: Store, app: &RunningSim, config: &str, policy: &str) -> Roster {
    let config = Config::parse(
        std::path::Path::new("/tmp/roster.toml"),
        config,
        &|name| match name {
            "OKTA_TOKEN" => Some(OKTA_TOKEN.to_string()),
            "ENTRA_SECRET" => Some("graph-secret".to_string()),
            "GOOGLE_KEY" => Some(roster_sim::google::TEST_SERVICE_ACCOUNT_KEY.to_string()),
            "OL_SECRET" => Some("ol-secret".to_string()),
            _ => None,
        },
    )
    .unwrap();
    let mut engine = Engine::new(store, Policy::parse("p.toml", policy).unwrap());
    let mut exp = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(app.url());
    exp.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(exp).unwrap()));
    for s in &config.sources {
        engine.add_source(roster_engine::sources::build(s).unwrap());
    }
    // Bounded retries: a fault stays a fault within the test's time.
    engine.source_read.max_attempts = 2;
    engine.source_read.initial_backoff = Duration::from_millis(10);
    Roster::new(engine)
}

/// Roster in line with the app: the sources imported, a first plan with
/// nothing to do applied.
async fn in_line(app: &RunningSim, config: &str) -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let roster = wire(store, app, config);
    let imported = roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(imported.people, PEOPLE);
    assert!(imported.held.is_none());
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&op(), planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    (roster, dir)
}

fn removed(app: &RunningSim) -> Vec<String> {
    app.handle()
        .effects()
        .into_iter()
        .filter(|e| e.kind == EffectKind::Removed)
        .map(|e| e.email)
        .collect()
}

/// A full service run (import the sources, read, plan), then the plan
/// carried out as `roster apply` does. Returns the plan's deactivations.
async fn run_and_apply(roster: &Roster) -> Result<Vec<String>, EngineError> {
    Ok(run_and_apply_plan(roster).await?.0)
}

/// [`run_and_apply`], with the guards that fired.
async fn run_and_apply_plan(roster: &Roster) -> Result<(Vec<String>, Vec<GuardKind>), EngineError> {
    let summary = roster
        .reconcile(
            &op(),
            &RunOptions {
                hr_csv: None,
                auto_apply: false,
            },
        )
        .await?;
    let id = summary.plan.expect("a plan was stored");
    let plan = roster.engine().store.plan(&id).await.unwrap().unwrap().plan;
    let deactivations = plan
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Deactivate)
        .map(|a| format!("{:?}", a.email))
        .collect();
    let guards = plan.guards.fired.iter().map(|g| g.kind).collect();
    let approved = roster.check(&op(), &id, &mut |_, _| {}).await?;
    roster.apply(approved, &mut |_, _| {}).await?;
    Ok((deactivations, guards))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_deprovisioned_closes_every_account_and_locked_out_or_suspended_keeps_them() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &okta_toml(&idp.url())).await;

    let h = idp.handle();
    assert!(h.set_user_status(&email(3), "DEPROVISIONED"));
    assert!(h.set_user_status(&email(4), "LOCKED_OUT"));
    assert!(h.set_user_status(&email(5), "SUSPENDED"));
    assert!(h.set_user_status(&email(6), "PASSWORD_EXPIRED"));
    assert!(h.set_user_status(&email(7), "RECOVERY"));
    run_and_apply(&roster).await.unwrap();
    assert_eq!(removed(&app), vec![email(3)]);
    for i in 4..=7 {
        assert!(
            app.handle().employee(POLICY_ID, &email(i)).is_some(),
            "{} keeps the account",
            email(i)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_okta_lockout_storm_takes_nothing_away() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &okta_toml(&idp.url())).await;
    assert_eq!(idp.handle().lockout_storm(15).len(), 15);
    // Someone really left at the same time: only they go.
    assert!(
        idp.handle()
            .set_user_status(&email(PEOPLE - 1), "DEPROVISIONED")
    );
    let deactivations = run_and_apply(&roster).await.unwrap();
    assert_eq!(deactivations.len(), 1, "{deactivations:?}");
    assert_eq!(removed(&app), vec![email(PEOPLE - 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_short_okta_read_imports_nothing_and_closes_nothing() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &okta_toml(&idp.url())).await;
    // Someone really left, but the read cannot be trusted: nothing moves.
    assert!(idp.handle().set_user_status(&email(3), "DEPROVISIONED"));

    // Every request fails.
    idp.handle().set_fault(Fault::ServerError);
    let err = run_and_apply(&roster).await.unwrap_err().to_string();
    assert!(
        err.contains("source.okta") && err.contains("nothing was imported"),
        "{err}"
    );
    // The listing repeats its first page: a read cut short.
    idp.handle().set_fault(Fault::RepeatPage);
    let err = run_and_apply(&roster).await.unwrap_err().to_string();
    assert!(err.contains("incomplete"), "{err}");
    assert!(removed(&app).is_empty());
    assert_eq!(roster.store().people().await.unwrap().len(), PEOPLE);
    let terminated = roster
        .store()
        .people()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.status == roster_core::EmploymentStatus::Terminated)
        .count();
    assert_eq!(terminated, 0, "the people snapshot is unchanged");

    // Once the IdP answers whole again, the leaver is closed.
    idp.handle().clear_faults();
    run_and_apply(&roster).await.unwrap();
    assert_eq!(removed(&app), vec![email(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_okta_directory_that_shrinks_by_half_withholds_deactivations() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &okta_toml(&idp.url())).await;
    // Half the directory vanishes at once (deleted, or a filter gone
    // wrong): the source change guard holds every deactivation.
    for i in 0..PEOPLE / 2 {
        assert!(idp.handle().set_user_status(&email(i), "DEPROVISIONED"));
        assert!(idp.handle().delete_user(&email(i)));
    }
    // Among those still listed, one left: even that is withheld, since
    // the source as a whole is in doubt.
    assert!(
        idp.handle()
            .set_user_status(&email(PEOPLE - 1), "DEPROVISIONED")
    );
    let (deactivations, guards) = run_and_apply_plan(&roster).await.unwrap();
    assert!(deactivations.is_empty(), "{deactivations:?}");
    assert!(guards.contains(&GuardKind::SourceChange), "{guards:?}");
    assert!(removed(&app).is_empty());
    // A person confirms the source: the leaver goes, and so do the
    // people deleted from the directory (gone from a complete read).
    roster.accept_source_change(&op()).await.unwrap();
    run_and_apply(&roster).await.unwrap();
    let mut gone = removed(&app);
    gone.sort();
    let mut want: Vec<String> = (0..PEOPLE / 2).map(email).collect();
    want.push(email(PEOPLE - 1));
    want.sort();
    assert_eq!(gone, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_disabled_closes_every_account_and_a_failed_read_closes_nothing() {
    let app = expensify().await;
    let idp = graph().await;
    let (roster, _dir) = in_line(&app, &entra_toml(&idp)).await;

    assert!(idp.handle().set_enabled(&email(2), false));
    idp.handle().set_fault(Fault::ServerError);
    let err = run_and_apply(&roster).await.unwrap_err().to_string();
    assert!(err.contains("source.entra"), "{err}");
    assert!(removed(&app).is_empty());

    idp.handle().clear_faults();
    run_and_apply(&roster).await.unwrap();
    assert_eq!(removed(&app), vec![email(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_directory_that_shrinks_by_half_withholds_deactivations() {
    let app = expensify().await;
    let idp = graph().await;
    let (roster, _dir) = in_line(&app, &entra_toml(&idp)).await;
    for i in 0..PEOPLE / 2 {
        assert!(idp.handle().delete_user(&email(i), false));
    }
    assert!(idp.handle().set_enabled(&email(PEOPLE - 1), false));
    let (deactivations, guards) = run_and_apply_plan(&roster).await.unwrap();
    assert!(deactivations.is_empty(), "{deactivations:?}");
    assert!(guards.contains(&GuardKind::SourceChange), "{guards:?}");
    assert!(removed(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_archived_closes_every_account_and_suspended_keeps_them() {
    let app = expensify().await;
    let idp = google().await;
    let (roster, _dir) = in_line(&app, &google_toml(&idp)).await;
    assert!(idp.handle().update_user(&email(8), |u| u.archived = true));
    assert!(idp.handle().update_user(&email(9), |u| u.suspended = true));
    run_and_apply(&roster).await.unwrap();
    assert_eq!(removed(&app), vec![email(8)]);
    assert!(app.handle().employee(POLICY_ID, &email(9)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_deleted_closes_every_account_and_suspended_or_locked_keeps_them() {
    let app = expensify().await;
    let idp = onelogin().await;
    let (roster, _dir) = in_line(&app, &onelogin_toml(&idp)).await;
    // OneLogin has no "left" status: deletion is how a leaver shows, and
    // a complete read that no longer lists them terminates them.
    assert!(idp.handle().delete_user(&email(11)));
    assert!(idp.handle().set_status(&email(12), 2));
    assert!(idp.handle().set_status(&email(13), 3));
    assert_eq!(idp.handle().lockout_storm(5).len(), 5);
    run_and_apply(&roster).await.unwrap();
    assert_eq!(removed(&app), vec![email(11)]);
    for i in [12, 13] {
        assert!(app.handle().employee(POLICY_ID, &email(i)).is_some());
    }
    // The next run carries the deletion on, and closes nothing more.
    let deactivations = run_and_apply(&roster).await.unwrap();
    assert!(deactivations.is_empty(), "{deactivations:?}");
    assert_eq!(removed(&app), vec![email(11)]);
}

/// Expensify for the members of the Okta group `staff`.
const GROUP_POLICY: &str = "[[rules]]\nname = \"staff\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"], group = [\"staff\"] }\n\
    set = { role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"AAAA000000000002\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_okta_listing_beside_a_complete_hr_file_withholds_deactivations() {
    // HR lists everyone; Okta says who is in `staff`, which the rule
    // grants on. Okta then returns half its people, completely (a scoped
    // admin role, a filter gone wrong): HR still lists them all, so the
    // merged snapshot neither shrinks nor terminates anyone, but half the
    // company lost the group only Okta knows.
    let app = expensify().await;
    let logins: Vec<String> = (0..PEOPLE).map(email).collect();
    let logins: Vec<&str> = logins.iter().map(String::as_str).collect();
    let mut config = OktaSimConfig::new(OKTA_TOKEN).with_group("staff", &logins);
    for i in 0..PEOPLE {
        config = config.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
    }
    let idp = OktaSim::start(config).await.unwrap();
    let hr: Vec<roster_core::Person> = (0..PEOPLE)
        .map(|i| roster_core::Person {
            employee_id: roster_core::EmployeeId::new(format!("E{i}")),
            email: roster_core::Email::parse(&email(i)).unwrap(),
            aliases: vec![],
            first_name: format!("P{i}"),
            last_name: "L".into(),
            department: "Finance".into(),
            cost_center: "CC-1".into(),
            manager_email: None,
            status: roster_core::EmploymentStatus::Active,
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: Default::default(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let roster = wire_with(store, &app, &okta_toml(&idp.url()), GROUP_POLICY);
    let refresh = |accept: bool| {
        let roster = &roster;
        let hr = hr.clone();
        async move {
            roster
                .refresh(
                    &op(),
                    roster_engine::RefreshOptions {
                        people: Some((hr, "hr.csv".into())),
                        accept_source_change: accept,
                        ..Default::default()
                    },
                    &mut |_, _| {},
                )
                .await
                .unwrap()
        }
    };
    let first = refresh(false).await;
    assert!(
        first.planned.plan.actions.is_empty(),
        "{:?}",
        first.planned.plan.actions
    );
    let approved = roster.check_planned(&op(), first.planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();

    for i in 0..PEOPLE / 2 {
        assert!(
            idp.handle().delete_user(&email(i)) || {
                idp.handle().set_user_status(&email(i), "DEPROVISIONED");
                idp.handle().delete_user(&email(i))
            }
        );
    }
    let short = refresh(false).await;
    let plan = &short.planned.plan;
    assert!(
        plan.guards
            .fired
            .iter()
            .any(|g| g.kind == GuardKind::SourceChange),
        "{plan:#?}"
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| a.operation == Operation::Deactivate),
        "{plan:#?}"
    );
    let detail = short.source_change.expect("held").detail;
    assert!(detail.contains("source.okta"), "{detail}");
    let approved = roster.check_planned(&op(), short.planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert!(removed(&app).is_empty(), "nobody lost access");

    // A person confirms the directory as it is: the people it no longer
    // puts in `staff` lose the app.
    let confirmed = refresh(true).await;
    let closing = confirmed
        .planned
        .plan
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Deactivate)
        .count();
    assert_eq!(closing, PEOPLE / 2, "{:#?}", confirmed.planned.plan);
}
