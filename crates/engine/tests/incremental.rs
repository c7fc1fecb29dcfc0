//! Incremental reads of an identity provider, end to end against the Okta
//! simulator and an Expensify simulator: a full read stores its cursor,
//! later imports read only what changed (the changed people re-read
//! whole), a removed person is carried exactly as a full read carries
//! them, an expired cursor or a lockout storm falls back to a full read
//! that the guards judge, and people an event hook names are re-read,
//! never believed.

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, EmploymentStatus, Operation, Policy, Principal};
use roster_engine::app::RunOptions;
use roster_engine::sources::{SourceReadKind, SourceSync};
use roster_engine::{Engine, PlanScope, Roster};
use roster_sim::expensify::{EffectKind, RunningSim};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_sources::okta::{OktaSource, OktaSourceConfig};
use roster_store::Store;

mod common;

const USER: &str = "incr@example.com";
const SECRET: &str = "incr-secret";
const POLICY_ID: &str = "AAAA000000000003";
const PEOPLE: usize = 20;
const OKTA_TOKEN: &str = "okta-incr-token";
const SOURCE: &str = "source.okta";

const POLICY: &str = "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"] }\n\
    set = { role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"AAAA000000000003\" }\n";

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

/// Roster wired to the Expensify simulator and the Okta simulator as
/// `source.okta`; past `max_changes` changed people an incremental read
/// asks for a full read.
fn wire(store: Store, app: &RunningSim, idp: &RunningOkta, max_changes: usize) -> Roster {
    let mut engine = Engine::new(store, Policy::parse("p.toml", POLICY).unwrap());
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
    let mut okta = OktaSourceConfig::new(
        ConnectionId::new(SOURCE),
        idp.url(),
        SecretString::new(OKTA_TOKEN),
    );
    okta.page_size = 5;
    okta.max_incremental_people = max_changes;
    okta.allow_private_network = true;
    engine.add_source(Arc::new(OktaSource::new(okta).unwrap()));
    engine.source_read.max_attempts = 2;
    engine.source_read.initial_backoff = Duration::from_millis(10);
    Roster::new(engine)
}

/// Roster in line with the app after a full read; then one incremental
/// read drains the log of the simulator's setup events.
async fn in_line(
    app: &RunningSim,
    idp: &RunningOkta,
    max_changes: usize,
) -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let roster = wire(store, app, idp, max_changes);
    let imported = roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(imported.people, PEOPLE);
    assert!(
        matches!(imported.reads[0].1, SourceReadKind::Full { .. }),
        "{:?}",
        imported.reads
    );
    // The full read stored the cursor it yielded.
    let cursor = roster
        .store()
        .source_cursor(SOURCE)
        .await
        .unwrap()
        .expect("a full read stores its cursor");
    assert_eq!(cursor.taken_ms, cursor.full_read_ms);
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&op(), planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    // The cursor reaches back before the setup: the first incremental
    // read re-reads the people created then, and changes nothing.
    let drained = changes(&roster).await;
    assert!(
        matches!(drained.reads[0].1, SourceReadKind::Changes { .. }),
        "{:?}",
        drained.reads
    );
    assert!(drained.changed.is_empty(), "{:?}", drained.changed);
    assert!(!drained.imported);
    (roster, dir)
}

async fn changes(roster: &Roster) -> roster_engine::sources::SourcesImported {
    roster
        .import_sources_with(&op(), None, &SourceSync::Changes, &mut |_, _| {})
        .await
        .unwrap()
}

fn no_apply() -> RunOptions {
    RunOptions {
        hr_csv: None,
        auto_apply: false,
    }
}

/// The deactivations of the plans stored since `after` (by id order).
async fn deactivations(roster: &Roster, plan: Option<&roster_store::PlanId>) -> Vec<String> {
    let Some(id) = plan else { return vec![] };
    let plan = roster.store().plan(id).await.unwrap().unwrap().plan;
    plan.actions
        .iter()
        .filter(|a| a.operation == Operation::Deactivate)
        .map(|a| a.email.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_person_is_the_only_one_re_read_and_reconciled() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &idp, 1000).await;
    let h = idp.handle();
    let before = h.counters();
    assert!(h.set_user_status(&email(3), "DEPROVISIONED"));
    let summary = roster.poll_sources(&op(), &no_apply()).await.unwrap();
    let after = h.counters();
    // No listing: one log page, the one user and their groups.
    assert_eq!(
        after.route("GET /api/v1/users"),
        before.route("GET /api/v1/users"),
        "{after:?}"
    );
    assert_eq!(
        after.route("GET /api/v1/users/{id}") - before.route("GET /api/v1/users/{id}"),
        1,
        "{after:?}"
    );
    assert_eq!(after.requests - before.requests, 3, "{after:?}");
    // Their plan closes their account, and only theirs.
    assert_eq!(
        deactivations(&roster, summary.plan.as_ref()).await,
        vec![email(3)]
    );
    let p3 = roster
        .store()
        .person_by_email(&roster_core::Email::parse(&email(3)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p3.status, EmploymentStatus::Terminated);
    // The cursor moved on; nothing new: nothing read but the log, nothing
    // imported.
    let quiet = changes(&roster).await;
    assert!(quiet.changed.is_empty() && !quiet.imported, "{quiet:?}");
    assert!(app.handle().effects().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_user_is_carried_exactly_as_a_full_read_carries_them() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &idp, 1000).await;
    let h = idp.handle();
    assert!(h.set_user_status(&email(5), "DEPROVISIONED"));
    assert!(h.delete_user(&email(5)));
    let incremental = changes(&roster).await;
    assert_eq!(
        incremental.reads[0].1,
        SourceReadKind::Changes {
            changed: 0,
            removed: 1
        }
    );
    assert_eq!(incremental.changed.len(), 1, "{:?}", incremental.changed);
    let after_incremental = roster.store().people().await.unwrap();
    let gone = after_incremental
        .iter()
        .find(|p| p.email.as_str() == email(5))
        .unwrap();
    assert_eq!(gone.status, EmploymentStatus::Terminated);
    assert_eq!(gone.attribute("idp_state").as_deref(), Some("removed"));
    // A full read now gives the very same snapshot.
    let full = roster
        .import_sources_with(&op(), None, &SourceSync::Full, &mut |_, _| {})
        .await
        .unwrap();
    assert!(matches!(full.reads[0].1, SourceReadKind::Full { .. }));
    assert!(full.changed.is_empty(), "{:?}", full.changed);
    assert_eq!(roster.store().people().await.unwrap(), after_incremental);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_reads_whole() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &idp, 1000).await;
    let h = idp.handle();
    let stale = roster.store().source_cursor(SOURCE).await.unwrap().unwrap();
    h.expire_log();
    assert!(h.set_user_status(&email(2), "SUSPENDED"));
    let before = h.counters();
    let imported = roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    match &imported.reads[0].1 {
        SourceReadKind::Full { reason } => assert!(reason.contains("SRC-0008"), "{reason}"),
        other => panic!("expected a full read, got {other:?}"),
    }
    assert!(h.counters().route("GET /api/v1/users") > before.route("GET /api/v1/users"));
    assert_eq!(imported.people, PEOPLE);
    assert!(imported.held.is_none());
    // The full read stored a fresh cursor. (The simulator's expired log
    // refuses any `since` before the expiry, and the cursor reaches back a
    // minute for clock skew, so it is not read from here.)
    let cursor = roster.store().source_cursor(SOURCE).await.unwrap().unwrap();
    assert_eq!(cursor.taken_ms, cursor.full_read_ms);
    assert!(cursor.taken_ms >= stale.taken_ms);
    assert_ne!(cursor.cursor, stale.cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_storm_reads_whole_and_deprovisions_nobody() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &idp, 5).await;
    let h = idp.handle();
    let locked = h.lockout_storm(12);
    assert_eq!(locked.len(), 12);
    let summary = roster.poll_sources(&op(), &no_apply()).await.unwrap();
    assert!(
        deactivations(&roster, summary.plan.as_ref())
            .await
            .is_empty()
    );
    // The poll fell back to a full read (SRC-0010) and imported it.
    let cursor = roster.store().source_cursor(SOURCE).await.unwrap().unwrap();
    assert_eq!(cursor.taken_ms, cursor.full_read_ms);
    // A full run plans nothing either, and the app is untouched.
    let run = roster.reconcile(&op(), &no_apply()).await.unwrap();
    assert!(deactivations(&roster, run.plan.as_ref()).await.is_empty());
    assert!(
        !app.handle()
            .effects()
            .iter()
            .any(|e| e.kind == EffectKind::Removed)
    );
    let people = roster.store().people().await.unwrap();
    assert_eq!(
        people
            .iter()
            .filter(|p| p.attribute("idp_state").as_deref() == Some("LOCKED_OUT"))
            .count(),
        12
    );
    assert!(
        people
            .iter()
            .all(|p| p.status != EmploymentStatus::Terminated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_naming_a_person_re_reads_them_and_a_forged_deactivation_changes_nothing() {
    let app = expensify().await;
    let idp = okta().await;
    let (roster, _dir) = in_line(&app, &idp, 1000).await;
    let h = idp.handle();
    let source = ConnectionId::new(SOURCE);
    // A forged "deactivated" event for p7, whom Okta lists as active.
    let p7 = h.user(&email(7)).unwrap().id;
    let before = h.counters();
    let forged = roster
        .reread_people(&op(), &source, std::slice::from_ref(&p7), &no_apply())
        .await
        .unwrap();
    assert_eq!(forged.plan, None, "{forged:?}");
    assert_eq!(
        h.counters().route("GET /api/v1/users/{id}") - before.route("GET /api/v1/users/{id}"),
        1
    );
    let p = roster
        .store()
        .person_by_email(&roster_core::Email::parse(&email(7)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, EmploymentStatus::Active);
    // An id Okta never had (or a made-up one) removes nobody.
    let made_up = roster
        .reread_people(&op(), &source, &["00uFORGED".to_string()], &no_apply())
        .await
        .unwrap();
    assert_eq!(made_up.plan, None);
    assert_eq!(roster.store().people().await.unwrap().len(), PEOPLE);
    // A real deactivation, named by a hook: re-read, planned at once.
    assert!(h.set_user_status(&email(8), "DEPROVISIONED"));
    let p8 = h.user(&email(8)).unwrap().id;
    let real = roster
        .reread_people(&op(), &source, &[p8], &no_apply())
        .await
        .unwrap();
    assert_eq!(
        deactivations(&roster, real.plan.as_ref()).await,
        vec![email(8)]
    );
    // A source that is not configured is refused.
    assert!(
        roster
            .reread_people(&op(), &ConnectionId::new("source.nope"), &[], &no_apply())
            .await
            .is_err()
    );
    assert!(app.handle().effects().is_empty());
}
