//! End to end: an offboarding ends the leaver's IdP sessions first, in
//! every source that lists them, before any app account closes; a dry
//! run revokes nothing; a failed revocation is reported, audited and a
//! task, not swallowed. A leaver the sources report has their sessions
//! ended when their removal runs, first, in each IdP that may revoke, and
//! only then: a held source change or a removal waiting for approval
//! revokes nothing; a locked-out or suspended person keeps everything.
//!
//! Each IdP is its simulator, reached through the source `roster` builds
//! from a config text; the oracle is the simulator's effect log. The order
//! is checked at the moment of the revocation: a wrapper around the real
//! source looks at the Expensify simulator when the revocation is sent
//! and records whether any account had been removed yet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString, Validation};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Policy, Principal};
use roster_engine::app::RunOptions;
use roster_engine::config::Config;
use roster_engine::revoke::RevocationOutcome;
use roster_engine::{Engine, PersonRef, PlanScope, Roster};
use roster_sim::common::{Effect, EffectKind as IdpEffect, Fault};
use roster_sim::expensify::{
    EffectKind, ExpensifyHandle, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee,
    SimPolicy,
};
use roster_sim::google::{GoogleSim, GoogleSimConfig, GoogleUser};
use roster_sim::graph::{GraphSim, GraphSimConfig, GraphUser};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser};
use roster_sim::onelogin::{OneLoginSim, OneLoginSimConfig, OneLoginUser};
use roster_sources::{
    ChangesPage, ChangesRequest, PageRequest, PeoplePage, Source, SourceCapabilities, SourceError,
};
use roster_store::Store;

mod common;

const USER: &str = "revoke-e2e@example.com";
const SECRET: &str = "revoke-e2e-secret";
const POLICY_ID: &str = "AAAA000000000003";
const PEOPLE: usize = 6;
const OKTA_TOKEN: &str = "okta-revoke-token";
const GOOGLE_SA: &str = "roster@acme-project.iam.gserviceaccount.com";

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

/// A real source, watched: when it is asked to revoke, it notes how many
/// Expensify accounts had been removed by then.
struct Watched {
    inner: Arc<dyn Source>,
    app: ExpensifyHandle,
    removed_before: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl Source for Watched {
    fn id(&self) -> &ConnectionId {
        self.inner.id()
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }
    async fn validate(&self) -> Result<Validation, SourceError> {
        self.inner.validate().await
    }
    async fn read_page(&self, req: PageRequest) -> Result<PeoplePage, SourceError> {
        self.inner.read_page(req).await
    }
    async fn read_changes(&self, req: ChangesRequest) -> Result<ChangesPage, SourceError> {
        self.inner.read_changes(req).await
    }
    async fn revoke_sessions(&self, person_id: &str) -> Result<(), SourceError> {
        let removed = self
            .app
            .effects()
            .iter()
            .filter(|e| e.kind == EffectKind::Removed)
            .count();
        self.removed_before.lock().unwrap().push(removed);
        self.inner.revoke_sessions(person_id).await
    }
}

struct Wired {
    roster: Roster,
    removed_before: Arc<Mutex<Vec<usize>>>,
    _dir: tempfile::TempDir,
}

/// Roster wired to the Expensify simulator and the sources `config`
/// names, as `roster` builds them (`revoke_sessions` honoured), each
/// watched; the sources imported and a first empty plan applied.
async fn wire(app: &RunningSim, config: &str) -> Wired {
    wire_with(app, config, POLICY).await
}

/// [`wire`] under another policy.
async fn wire_with(app: &RunningSim, config: &str, policy: &str) -> Wired {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
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
    let removed_before = Arc::new(Mutex::new(Vec::new()));
    for s in &config.sources {
        let inner = roster_engine::sources::build(s).unwrap();
        let id = inner.id().clone();
        engine.add_source(Arc::new(Watched {
            inner,
            app: app.handle().clone(),
            removed_before: removed_before.clone(),
        }));
        if s.revoke_sessions {
            assert!(engine.revoke_sessions_in(&id));
        }
    }
    engine.source_read.max_attempts = 2;
    engine.source_read.initial_backoff = Duration::from_millis(10);
    // Bounded, fast retries: a fault stays a fault within the test's time.
    engine.executor.retry.max_attempts = 3;
    engine.executor.retry.initial_backoff = Duration::from_millis(10);
    engine.executor.retry.max_backoff = Duration::from_millis(50);
    let roster = Roster::new(engine);
    let imported = roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(imported.people, PEOPLE);
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&op(), planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    Wired {
        roster,
        removed_before,
        _dir: dir,
    }
}

fn revoked(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter(|e| matches!(e.kind, IdpEffect::SessionsRevoked { .. }))
        .map(|e| e.email.clone())
        .collect()
}

fn removed(app: &RunningSim) -> Vec<String> {
    app.handle()
        .effects()
        .into_iter()
        .filter(|e| e.kind == EffectKind::Removed)
        .map(|e| e.email)
        .collect()
}

/// The audit events of a kind, as (subject, payload).
async fn audited(roster: &Roster, kind: &str) -> Vec<(String, serde_json::Value)> {
    roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(|r| (r.subject.clone(), r.data.clone()))
        .collect()
}

/// Offboards p2 and checks the order and the oracle.
async fn offboard_revokes_first(
    app: &RunningSim,
    w: &Wired,
    idp_effects: impl Fn() -> Vec<Effect>,
) {
    let done = w
        .roster
        .offboard(
            &op(),
            &PersonRef::parse(&email(2)),
            "left the company",
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(done.revocations.len(), 1, "{:?}", done.revocations);
    assert_eq!(done.revocations[0].outcome, RevocationOutcome::Revoked);
    // The IdP ended exactly the leaver's sessions.
    assert_eq!(revoked(&idp_effects()), vec![email(2)]);
    // Before any Expensify account was removed; and the account went.
    assert_eq!(*w.removed_before.lock().unwrap(), vec![0]);
    assert_eq!(removed(app), vec![email(2)]);
    let audit = audited(&w.roster, "sessions.revoked").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1["outcome"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_offboarding_clears_sessions_and_tokens_before_any_account_closes() {
    let app = expensify().await;
    let idp = okta_sim().await;
    let w = wire(&app, &okta_revoking(&idp.url())).await;
    let h = idp.handle().clone();
    offboard_revokes_first(&app, &w, || h.effects()).await;
    // With the OAuth tokens too (oauthTokens=true).
    assert!(
        h.effects()
            .iter()
            .any(|e| e.kind == IdpEffect::SessionsRevoked { tokens: true })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_offboarding_revokes_sign_in_sessions_before_any_account_closes() {
    let app = expensify().await;
    let (idp, toml) = entra_sim().await;
    let w = wire(&app, &toml).await;
    let h = idp.handle().clone();
    offboard_revokes_first(&app, &w, || h.effects()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_offboarding_signs_the_person_out_before_any_account_closes() {
    let app = expensify().await;
    let (idp, toml) = google_sim().await;
    let w = wire(&app, &toml).await;
    let h = idp.handle().clone();
    offboard_revokes_first(&app, &w, || h.effects()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_offboarding_logs_the_person_out_before_any_account_closes() {
    let app = expensify().await;
    let (idp, toml) = onelogin_sim().await;
    let w = wire(&app, &toml).await;
    let h = idp.handle().clone();
    offboard_revokes_first(&app, &w, || h.effects()).await;
}

fn okta_and_entra_toml(
    okta: &str,
    graph: &roster_sim::graph::RunningGraph,
    okta_revokes: bool,
) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.okta]\nkind = \"okta\"\nbase_url = \"{okta}\"\n\
         token = {{ env = \"OKTA_TOKEN\" }}\nrevoke_sessions = {okta_revokes}\n\
         [sources.entra]\nkind = \"entra\"\ntenant_id = \"tenant-1\"\n\
         client_id = \"client-1\"\nclient_secret = {{ env = \"ENTRA_SECRET\" }}\n\
         base_url = \"{}\"\nlogin_url = \"{}\"\nrevoke_sessions = true\n",
        graph.graph_url(),
        graph.login_url()
    )
}

async fn okta_and_entra() -> (
    roster_sim::okta::RunningOkta,
    roster_sim::graph::RunningGraph,
) {
    let mut okta = OktaSimConfig::new(OKTA_TOKEN);
    let mut graph = GraphSimConfig::new("tenant-1", "client-1", "graph-secret");
    for i in 0..PEOPLE {
        okta = okta.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
        graph = graph.with_user(
            GraphUser::new(&email(i), &format!("P{i}"), "L").with_employee_id(&format!("E{i}")),
        );
    }
    (
        OktaSim::start(okta).await.unwrap(),
        GraphSim::start(graph).await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_two_idps_list_is_revoked_in_each_and_a_dry_run_revokes_nothing() {
    let app = expensify().await;
    let (okta, graph) = okta_and_entra().await;
    let w = wire(&app, &okta_and_entra_toml(&okta.url(), &graph, true)).await;
    // The dry run: what would be revoked, and nothing is.
    let (person, _plan) = w
        .roster
        .preview_offboard(&PersonRef::parse(&email(1)))
        .await
        .unwrap();
    let would = w.roster.planned_revocations(&person);
    assert_eq!(would.len(), 2, "{would:?}");
    assert!(
        would
            .iter()
            .all(|r| r.outcome == RevocationOutcome::WouldRevoke)
    );
    assert!(revoked(&okta.handle().effects()).is_empty());
    assert!(revoked(&graph.handle().effects()).is_empty());
    assert!(audited(&w.roster, "sessions.revoked").await.is_empty());
    assert!(removed(&app).is_empty());

    // The offboarding: both IdPs, by the ids each knows.
    let done = w
        .roster
        .offboard(&op(), &PersonRef::parse(&email(1)), "left", &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(done.person.employee_id, person.employee_id);
    assert_eq!(done.revocations.len(), 2);
    assert!(done.revocations.iter().all(|r| !r.failed()));
    assert_eq!(revoked(&okta.handle().effects()), vec![email(1)]);
    assert_eq!(revoked(&graph.handle().effects()), vec![email(1)]);
    assert_eq!(*w.removed_before.lock().unwrap(), vec![0, 0]);
    assert_eq!(removed(&app), vec![email(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revocation_is_reported_audited_and_a_task_and_accounts_still_close() {
    let app = expensify().await;
    let (okta, graph) = okta_and_entra().await;
    // Okta may revoke too, but is down for every attempt the policy allows.
    let w = wire(&app, &okta_and_entra_toml(&okta.url(), &graph, true)).await;
    okta.handle().set_fault(Fault::ServerError);
    let done = w
        .roster
        .offboard(&op(), &PersonRef::parse(&email(4)), "left", &mut |_, _| {})
        .await
        .unwrap();
    okta.handle().set_fault(Fault::None);
    let failed: Vec<_> = done.revocations.iter().filter(|r| r.failed()).collect();
    assert_eq!(failed.len(), 1, "{:?}", done.revocations);
    assert_eq!(failed[0].source.as_str(), "source.okta");
    assert_eq!(failed[0].attempts, 3, "retried under the engine's policy");
    assert!(failed[0].describe().contains("SESSIONS NOT REVOKED"));
    assert!(revoked(&okta.handle().effects()).is_empty());
    // Entra still revoked; the account still closed.
    assert_eq!(revoked(&graph.handle().effects()), vec![email(4)]);
    assert_eq!(removed(&app), vec![email(4)]);
    // Audited as failed, with the error.
    let audit = audited(&w.roster, "sessions.revoked").await;
    let okta_audit = audit
        .iter()
        .find(|(_, d)| d["source"] == "source.okta")
        .expect("the failure is audited");
    assert_eq!(okta_audit.1["outcome"], "failed");
    assert!(okta_audit.1["error"].as_str().unwrap().contains("500"));
    // An open task, held by the operator, among the remaining access.
    let remaining = w.roster.remaining_access(&done.person).await.unwrap();
    let task = remaining
        .open_tasks
        .iter()
        .find(|t| t.kind == "revoke-sessions")
        .expect("a task for the failed revocation");
    assert_eq!(task.connection, "source.okta");
    assert_eq!(task.assignee.as_deref(), Some("user:operator"));
    assert_eq!(Some(task.id.clone()), failed[0].task);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_not_enabled_is_never_asked_and_an_offboarding_reports_it() {
    let app = expensify().await;
    let (okta, graph) = okta_and_entra().await;
    // Okta lists everyone but may not revoke; Entra may.
    let w = wire(&app, &okta_and_entra_toml(&okta.url(), &graph, false)).await;
    // An Okta leaver, through the service's full run and its worker: the
    // account closes; the leaver's Entra sessions end first (Entra may
    // revoke and lists them); Okta, not enabled, is asked nothing.
    assert!(okta.handle().set_user_status(&email(3), "DEPROVISIONED"));
    let summary = w
        .roster
        .reconcile(
            &op(),
            &RunOptions {
                hr_csv: None,
                auto_apply: true,
            },
        )
        .await
        .unwrap();
    assert!(summary.queued > 0, "{summary:?}");
    w.roster
        .run_worker(tokio::time::sleep(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(removed(&app), vec![email(3)]);
    assert!(revoked(&okta.handle().effects()).is_empty());
    assert_eq!(revoked(&graph.handle().effects()), vec![email(3)]);
    assert_eq!(*w.removed_before.lock().unwrap(), vec![0]);
    let audit = audited(&w.roster, "sessions.revoked").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1["source"], "source.entra");
    assert!(
        audit[0].1["reason"]
            .as_str()
            .unwrap()
            .starts_with("leaver in plan")
    );

    // An offboarding of someone else: Entra revokes for them alone; Okta
    // is reported as not enabled and asked nothing.
    let done = w
        .roster
        .offboard(&op(), &PersonRef::parse(&email(5)), "left", &mut |_, _| {})
        .await
        .unwrap();
    let okta_r = done
        .revocations
        .iter()
        .find(|r| r.source.as_str() == "source.okta")
        .unwrap();
    assert_eq!(okta_r.outcome, RevocationOutcome::NotEnabled);
    assert_eq!(okta_r.attempts, 0);
    assert!(revoked(&okta.handle().effects()).is_empty());
    assert_eq!(revoked(&graph.handle().effects()), vec![email(3), email(5)]);
}

/// The policy of the re-pointing test: the manager comes from the IdP.
const POLICY_MANAGED: &str = "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"] }\n\
    set = { role = \"user\", manager_email = \"{manager_email}\", policy_id = \"AAAA000000000003\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarding_re_points_the_leavers_reports_to_their_manager_before_closing_and_never_to_nobody()
 {
    // p1 and p3 submit to p2, p2 to p5; p4 submits to p0, who has no
    // manager. Okta says the same.
    let submits = |i: usize| match i {
        1 | 3 => email(2),
        2 => email(5),
        4 => email(0),
        _ => "boss@acme.example".to_string(),
    };
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    let mut okta = OktaSimConfig::new(OKTA_TOKEN);
    for i in 0..PEOPLE {
        tenant = tenant.with_employee(SimEmployee::new(email(i), submits(i), format!("E{i}")));
        let mut u =
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}"));
        if !matches!(i, 0 | 5) {
            u = u.with_custom("manager", &submits(i));
        }
        okta = okta.with_user(u);
    }
    let app = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([tenant]),
    )
    .await
    .unwrap();
    let idp = OktaSim::start(okta).await.unwrap();
    let toml = format!(
        "policy = \"p.toml\"\n[sources.okta]\nkind = \"okta\"\nbase_url = \"{}\"\n\
         token = {{ env = \"OKTA_TOKEN\" }}\nrevoke_sessions = true\n",
        idp.url()
    );
    let w = wire_with(&app, &toml, POLICY_MANAGED).await;

    // The simulator holds its line: p2 cannot go while p1 and p3 submit to them.
    // The dry run shows the re-pointing, ordered before the deactivation.
    let (_, preview) = w
        .roster
        .preview_offboard(&PersonRef::parse(&email(2)))
        .await
        .unwrap();
    let ops: Vec<(String, String, String)> = preview
        .actions
        .iter()
        .map(|a| {
            (
                a.operation.as_str().to_string(),
                a.email.to_string(),
                a.cause.to_string(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("update".into(), email(1), "repoint".into()),
            ("update".into(), email(3), "repoint".into()),
            ("deactivate".into(), email(2), "left".into()),
        ]
    );
    assert!(
        app.handle().effects().is_empty(),
        "a dry run changes nothing"
    );

    let done = w
        .roster
        .offboard(&op(), &PersonRef::parse(&email(2)), "left", &mut |_, _| {})
        .await
        .unwrap();
    assert!(done.report.failed.is_empty(), "{:?}", done.report.failed);
    // The oracle: both re-pointed to p5, then p2 removed.
    let effects: Vec<(String, EffectKind)> = app
        .handle()
        .effects()
        .into_iter()
        .map(|e| (e.email, e.kind))
        .collect();
    assert_eq!(
        effects,
        vec![
            (
                email(1),
                EffectKind::Updated {
                    fields: vec!["managerEmail".into()]
                }
            ),
            (
                email(3),
                EffectKind::Updated {
                    fields: vec!["managerEmail".into()]
                }
            ),
            (email(2), EffectKind::Removed),
        ]
    );
    for i in [1, 3] {
        assert_eq!(
            app.handle()
                .employee(POLICY_ID, &email(i))
                .unwrap()
                .submits_to,
            email(5)
        );
    }
    // Audited as applied actions of the offboarding's plan.
    let applied = audited(&w.roster, "action.applied").await;
    assert!(applied.len() >= 3, "{applied:?}");

    // p0 has no manager: p4 is not pointed at nobody; p0's account stays,
    // and the plan says why.
    let done = w
        .roster
        .offboard(&op(), &PersonRef::parse(&email(0)), "left", &mut |_, _| {})
        .await
        .unwrap();
    assert!(
        done.plan
            .findings
            .iter()
            .any(|f| f.kind == roster_core::plan::FindingKind::NoSuccessor
                && f.detail.contains(&email(4))),
        "{:?}",
        done.plan.findings
    );
    assert!(
        !done
            .plan
            .actions
            .iter()
            .any(|a| a.email.as_str() == email(0) || a.email.as_str() == email(4)),
        "{:?}",
        done.plan.actions
    );
    assert_eq!(
        app.handle()
            .employee(POLICY_ID, &email(4))
            .unwrap()
            .submits_to,
        email(0)
    );
    assert!(app.handle().employee(POLICY_ID, &email(0)).is_some());
    let remaining = w.roster.remaining_access(&done.person).await.unwrap();
    assert!(
        remaining
            .open_tasks
            .iter()
            .any(|t| t.kind == "choose-successor" && t.connection == "expensify"),
        "a person is asked: {:?}",
        remaining.open_tasks
    );
}

// ---------------------------------------------------------------------
// A leaver the sources report (not an offboarding): the plan's approved
// removal ends their sessions first, under the same guards.
// ---------------------------------------------------------------------

fn okta_revoking(url: &str) -> String {
    format!(
        "policy = \"p.toml\"\n[sources.okta]\nkind = \"okta\"\nbase_url = \"{url}\"\n\
         token = {{ env = \"OKTA_TOKEN\" }}\nrevoke_sessions = true\n"
    )
}

async fn okta_sim() -> roster_sim::okta::RunningOkta {
    let mut config = OktaSimConfig::new(OKTA_TOKEN);
    for i in 0..PEOPLE {
        config = config.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
    }
    OktaSim::start(config).await.unwrap()
}

/// A service run (sources imported, apps read, planned), then the plan
/// checked and carried out as `roster apply` does, by `by`. Returns the
/// plan and what carrying it out revoked.
async fn run_and_apply(
    w: &Wired,
    by: &Principal,
) -> (
    roster_core::Plan,
    Vec<roster_engine::revoke::Revocation>,
    roster_store::PlanId,
) {
    let summary = w
        .roster
        .reconcile(
            &op(),
            &RunOptions {
                hr_csv: None,
                auto_apply: false,
            },
        )
        .await
        .unwrap();
    let id = summary.plan.expect("a plan was stored");
    let plan = w.roster.store().plan(&id).await.unwrap().unwrap().plan;
    let approved = w.roster.check(by, &id, &mut |_, _| {}).await.unwrap();
    let (_, enqueued) = w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    (plan, enqueued.revocations, id)
}

/// The leaver's sessions were revoked once, in the IdP, before their
/// account closed; the account closed; nobody else was touched.
async fn leaver_revoked_first(
    w: &Wired,
    app: &RunningSim,
    idp_revoked: Vec<String>,
    leaver: usize,
) {
    assert_eq!(idp_revoked, vec![email(leaver)]);
    assert_eq!(*w.removed_before.lock().unwrap(), vec![0]);
    assert_eq!(removed(app), vec![email(leaver)]);
    let audit = audited(&w.roster, "sessions.revoked").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].1["outcome"], "revoked");
    assert_eq!(audit[0].1["email"], email(leaver));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_okta_leaver_has_sessions_revoked_before_accounts_close_and_a_locked_out_user_keeps_everything()
 {
    let app = expensify().await;
    let idp = okta_sim().await;
    let w = wire(&app, &okta_revoking(&idp.url())).await;
    let h = idp.handle();
    assert!(h.set_user_status(&email(3), "DEPROVISIONED"));
    assert!(h.set_user_status(&email(4), "LOCKED_OUT"));
    assert!(h.set_user_status(&email(5), "SUSPENDED"));
    let (_, revocations, _) = run_and_apply(&w, &op()).await;
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0].outcome, RevocationOutcome::Revoked);
    leaver_revoked_first(&w, &app, revoked(&h.effects()), 3).await;
    // Locked out and suspended keep their accounts and their sessions.
    for i in [4, 5] {
        assert!(app.handle().employee(POLICY_ID, &email(i)).is_some());
    }
    // The next run closes nothing more and revokes nothing more.
    let (plan, revocations, _) = run_and_apply(&w, &op()).await;
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(revocations.is_empty());
    assert_eq!(revoked(&h.effects()), vec![email(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_disabled_user_has_sessions_revoked_before_accounts_close() {
    let app = expensify().await;
    let (idp, toml) = entra_sim().await;
    let w = wire(&app, &toml).await;
    // A disabled account keeps its refresh tokens until they are revoked:
    // exactly the case revokeSignInSessions is for.
    assert!(idp.handle().set_enabled(&email(2), false));
    run_and_apply(&w, &op()).await;
    leaver_revoked_first(&w, &app, revoked(&idp.handle().effects()), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_archived_user_is_signed_out_before_accounts_close_and_a_suspended_one_keeps_everything()
 {
    let app = expensify().await;
    let (idp, toml) = google_sim().await;
    let w = wire(&app, &toml).await;
    assert!(idp.handle().update_user(&email(1), |u| u.archived = true));
    assert!(idp.handle().update_user(&email(4), |u| u.suspended = true));
    run_and_apply(&w, &op()).await;
    leaver_revoked_first(&w, &app, revoked(&idp.handle().effects()), 1).await;
    assert!(app.handle().employee(POLICY_ID, &email(4)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_onelogin_deleted_user_is_not_asked_to_log_out_and_a_locked_one_keeps_everything() {
    // OneLogin has no "left" status: deleting the user is how a leaver
    // shows, and deleting ends their OneLogin sessions. roster closes the
    // accounts and does not ask OneLogin about a user it no longer has
    // (which would fail and open a needless task).
    let app = expensify().await;
    let (idp, toml) = onelogin_sim().await;
    let w = wire(&app, &toml).await;
    assert!(idp.handle().delete_user(&email(0)));
    assert!(idp.handle().set_status(&email(5), 3));
    let (_, revocations, _) = run_and_apply(&w, &op()).await;
    assert!(revocations.is_empty(), "{revocations:?}");
    assert!(revoked(&idp.handle().effects()).is_empty());
    assert_eq!(removed(&app), vec![email(0)]);
    assert!(app.handle().employee(POLICY_ID, &email(5)).is_some());
    assert!(audited(&w.roster, "sessions.revoked").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hr_leaver_still_active_in_okta_has_okta_sessions_revoked_before_accounts_close() {
    // The case revocation matters most for: HR says they left, the IdP
    // still lets them sign in.
    let app = expensify().await;
    let idp = okta_sim().await;
    let w = wire(&app, &okta_revoking(&idp.url())).await;
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
            status: if i == 4 {
                roster_core::EmploymentStatus::Terminated
            } else {
                roster_core::EmploymentStatus::Active
            },
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: Default::default(),
        })
        .collect();
    let refreshed = w
        .roster
        .refresh(
            &op(),
            roster_engine::RefreshOptions {
                people: Some((hr, "hr.csv".into())),
                ..Default::default()
            },
            &mut |_, _| {},
        )
        .await
        .unwrap();
    // The plan says, before anyone approves it, whose sessions end.
    let would = w
        .roster
        .planned_leaver_revocations(&refreshed.planned.plan)
        .await
        .unwrap();
    assert_eq!(would.len(), 1, "{would:?}");
    assert_eq!(would[0].outcome, RevocationOutcome::WouldRevoke);
    assert!(revoked(&idp.handle().effects()).is_empty());
    let approved = w
        .roster
        .check_planned(&op(), refreshed.planned)
        .await
        .unwrap();
    w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    leaver_revoked_first(&w, &app, revoked(&idp.handle().effects()), 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_source_change_revokes_no_session_and_closes_nothing() {
    // Okta returns a third of its people, completely, and marks one more
    // deprovisioned: the source-change guard withholds every removal, so
    // no session is touched either, until a person confirms the source.
    let app = expensify().await;
    let idp = okta_sim().await;
    let w = wire(&app, &okta_revoking(&idp.url())).await;
    let h = idp.handle();
    for i in 0..PEOPLE / 2 {
        assert!(h.set_user_status(&email(i), "DEPROVISIONED") && h.delete_user(&email(i)));
    }
    assert!(h.set_user_status(&email(PEOPLE - 1), "DEPROVISIONED"));
    let (plan, revocations, _) = run_and_apply(&w, &op()).await;
    assert!(
        plan.guards
            .fired
            .iter()
            .any(|g| g.kind == roster_core::guard::GuardKind::SourceChange),
        "{:?}",
        plan.guards
    );
    assert!(revocations.is_empty(), "{revocations:?}");
    assert!(revoked(&h.effects()).is_empty());
    assert!(removed(&app).is_empty());
    assert!(w.removed_before.lock().unwrap().is_empty());
    assert!(audited(&w.roster, "sessions.revoked").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_removal_waiting_for_approval_revokes_nothing_until_approved() {
    // Every deactivation needs a person's approval here.
    let policy = format!("{POLICY}[approvals]\nmax_deprovisions_per_plan = 0\n");
    let app = expensify().await;
    let idp = okta_sim().await;
    let w = wire_with(&app, &okta_revoking(&idp.url()), &policy).await;
    let h = idp.handle();
    assert!(h.set_user_status(&email(2), "DEPROVISIONED"));
    let (plan, revocations, id) = run_and_apply(&w, &op()).await;
    assert_eq!(plan.approvals.len(), 1, "{:?}", plan.approvals);
    assert!(revocations.is_empty(), "{revocations:?}");
    assert!(revoked(&h.effects()).is_empty());
    assert!(removed(&app).is_empty());

    // A second person approves; carrying it out now revokes, first.
    let approver = Principal::new(PrincipalKind::User, "approver");
    w.roster
        .approve(&approver, &id, None, "confirmed with HR")
        .await
        .unwrap();
    let approved = w
        .roster
        .check(&approver, &id, &mut |_, _| {})
        .await
        .unwrap();
    let (_, enqueued) = w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(enqueued.revocations.len(), 1, "{:?}", enqueued.revocations);
    leaver_revoked_first(&w, &app, revoked(&h.effects()), 2).await;
}

/// The entra simulator listing everyone, and a config that reads it
/// and may revoke sessions there.
async fn entra_sim() -> (roster_sim::graph::RunningGraph, String) {
    let mut config = GraphSimConfig::new("tenant-1", "client-1", "graph-secret");
    for i in 0..PEOPLE {
        config = config.with_user(
            GraphUser::new(&email(i), &format!("P{i}"), "L").with_employee_id(&format!("E{i}")),
        );
    }
    let idp = GraphSim::start(config).await.unwrap();
    let toml = format!(
        "policy = \"p.toml\"\n[sources.entra]\nkind = \"entra\"\ntenant_id = \"tenant-1\"\n\
         client_id = \"client-1\"\nclient_secret = {{ env = \"ENTRA_SECRET\" }}\n\
         base_url = \"{}\"\nlogin_url = \"{}\"\nrevoke_sessions = true\n",
        idp.graph_url(),
        idp.login_url()
    );
    (idp, toml)
}

/// The google simulator listing everyone, and a config that reads it
/// and may revoke sessions there.
async fn google_sim() -> (roster_sim::google::RunningGoogle, String) {
    let mut config = GoogleSimConfig::new(GOOGLE_SA, "admin@acme.example");
    for i in 0..PEOPLE {
        config = config.with_user(
            GoogleUser::new(&email(i), &format!("P{i}"), "L").with_employee_id(&format!("E{i}")),
        );
    }
    let idp = GoogleSim::start(config).await.unwrap();
    let toml = format!(
        "policy = \"p.toml\"\n[sources.google]\nkind = \"google\"\nservice_account = \"{GOOGLE_SA}\"\n\
         admin = \"admin@acme.example\"\nprivate_key = {{ env = \"GOOGLE_KEY\" }}\n\
         base_url = \"{}\"\ntoken_url = \"{}\"\nrevoke_sessions = true\n",
        idp.api_url(),
        idp.token_url()
    );
    (idp, toml)
}

/// The onelogin simulator listing everyone, and a config that reads it
/// and may revoke sessions there.
async fn onelogin_sim() -> (roster_sim::onelogin::RunningOneLogin, String) {
    let mut config = OneLoginSimConfig::new("ol-client", "ol-secret");
    for i in 0..PEOPLE {
        config = config.with_user(
            OneLoginUser::new(&email(i), &format!("P{i}"), "L")
                .with_custom("employee_id", &format!("E{i}")),
        );
    }
    let idp = OneLoginSim::start(config).await.unwrap();
    let toml = format!(
        "policy = \"p.toml\"\n[sources.onelogin]\nkind = \"onelogin\"\nbase_url = \"{}\"\n\
         client_id = \"ol-client\"\nclient_secret = {{ env = \"OL_SECRET\" }}\nrevoke_sessions = true\n",
        idp.url()
    );
    (idp, toml)
}
