//! Onboarding, a move and offboarding through each provisioning path, plus
//! a vendor outage in the middle of a run. Connectors are built through the
//! registry, as the engine builds them; verdicts come from the simulators'
//! state and effect logs. Changes go out in one paced pass
//! (`driver::apply_once`); the outage tests re-send what failed as the
//! executor would, under the one retry policy (`testkit::apply_resending`).

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::driver::{self, DriverOptions};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_connectors::retry::RetryPolicy;
use roster_connectors::testkit;
use roster_connectors::{ActionResult, Connector, RateLimiter, SecretString};
use roster_core::{
    AccountKey, Action, AttributeChange, ConnectionId, Email, EmployeeId, Observed, Operation,
};
use roster_sim::common::{EffectKind, Fault};
use roster_sim::scim_app::{ENTERPRISE_SCHEMA, ScimSim, ScimSimConfig};

/// The built-in catalog's record of `id`: the registry builds from it.
fn app(id: &str) -> roster_catalog::App {
    roster_catalog::Catalog::builtin()
        .unwrap()
        .get(id)
        .unwrap()
        .clone()
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

fn action(
    c: &dyn Connector,
    op: Operation,
    email: &str,
    key: Option<&str>,
    attrs: &[(&str, &str)],
) -> Action {
    Action {
        connection: c.id().clone(),
        operation: op,
        employee_id: Some(EmployeeId::new(format!(
            "E-{}",
            email.split('@').next().unwrap()
        ))),
        email: Email::parse(email).unwrap(),
        account: key.map(AccountKey::new),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        changes: Vec::new(),
        reason: "test".into(),
        cause: roster_core::Cause::default(),
    }
}

fn moved(mut a: Action, changes: &[(&str, Option<&str>, &str)]) -> Action {
    a.changes = changes
        .iter()
        .map(|(n, b, after)| AttributeChange {
            name: n.to_string(),
            before: b.map(str::to_string),
            after: Some(after.to_string()),
        })
        .collect();
    a
}

struct Run {
    c: Arc<dyn Connector>,
    limiter: RateLimiter,
}

impl Run {
    fn new(c: Arc<dyn Connector>) -> Self {
        let limiter = RateLimiter::new(c.capabilities().rate_limits);
        Run { c, limiter }
    }
    async fn apply(&self, actions: Vec<Action>) -> Vec<ActionResult> {
        tokio::time::timeout(
            Duration::from_secs(20),
            driver::apply_once(self.c.as_ref(), actions, false, &self.limiter, &mut |_| {}),
        )
        .await
        .expect("apply finishes")
    }
    /// Sends, then re-sends what failed retryably, as the executor would.
    async fn apply_resending(&self, actions: Vec<Action>) -> Vec<ActionResult> {
        tokio::time::timeout(
            Duration::from_secs(20),
            testkit::apply_resending(
                self.c.as_ref(),
                actions,
                &self.limiter,
                &retry(),
                &mut |_| {},
            ),
        )
        .await
        .expect("apply finishes")
    }
    async fn read(&self) -> Observed {
        tokio::time::timeout(
            Duration::from_secs(20),
            driver::read_all(
                self.c.as_ref(),
                &self.limiter,
                &retry(),
                &DriverOptions::default(),
            ),
        )
        .await
        .expect("read finishes")
        .expect("read succeeds")
    }
}

fn key_of(o: &Observed, email: &str) -> String {
    o.accounts
        .iter()
        .find(|a| a.email.as_ref().is_some_and(|e| e.normalized() == email))
        .map(|a| a.key.as_str().to_string())
        .unwrap_or_else(|| panic!("{email} not in the read"))
}

mod scim_path {
    use super::*;

    async fn setup() -> (roster_sim::scim_app::RunningScim, Run) {
        let sim = ScimSim::start(ScimSimConfig::new("tok").with_seed(2))
            .await
            .unwrap();
        let c = registry::build(
            &app("bill-com"),
            &ConnectorSettings::new(ConnectionId::new("bill-com"))
                .with_plan("Enterprise")
                .with_base_url(sim.url())
                .with_secret(SecretString::new("tok"))
                .with_timeout(Duration::from_secs(2)),
        )
        .unwrap();
        (sim, Run::new(c))
    }

    #[tokio::test]
    async fn joiner_mover_leaver() {
        let (sim, run) = setup().await;
        let v = run.c.validate().await.unwrap();
        assert!(v.ok(), "{v:?}");

        // Joiner.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Create,
                "ann@example.com",
                None,
                &[
                    ("first_name", "Ann"),
                    ("last_name", "Lee"),
                    ("department", "Sales"),
                    ("title", "AE"),
                ],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        let u = sim.user_by_name("ann@example.com").unwrap();
        assert_eq!(u["active"], true);
        assert_eq!(u["title"], "AE");
        assert_eq!(u[ENTERPRISE_SCHEMA]["department"], "Sales");
        assert_eq!(u[ENTERPRISE_SCHEMA]["employeeNumber"], "E-ann");
        let o = run.read().await;
        let key = key_of(&o, "ann@example.com");
        let acc = o.accounts.iter().find(|a| a.key.as_str() == key).unwrap();
        assert_eq!(acc.employee_id.as_ref().unwrap().as_str(), "E-ann");
        assert_eq!(acc.attributes["department"], "Sales");

        // Mover: new department and cost center, new address.
        let a = moved(
            action(
                run.c.as_ref(),
                Operation::Update,
                "ann.lee@example.com",
                Some(&key),
                &[("department", "Finance"), ("cost_center", "CC-9")],
            ),
            &[
                ("department", Some("Sales"), "Finance"),
                ("cost_center", None, "CC-9"),
                ("email", Some("ann@example.com"), "ann.lee@example.com"),
            ],
        );
        assert_eq!(run.apply(vec![a]).await, vec![ActionResult::Applied]);
        let u = sim.user(&key).unwrap();
        assert_eq!(u["userName"], "ann.lee@example.com");
        assert_eq!(u["emails"][0]["value"], "ann.lee@example.com");
        assert_eq!(u[ENTERPRISE_SCHEMA]["department"], "Finance");
        assert_eq!(u[ENTERPRISE_SCHEMA]["costCenter"], "CC-9");
        assert_eq!(
            u["title"], "AE",
            "attributes roster did not change are kept"
        );

        // Leaver: deactivated, not deleted, and still listed.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Deactivate,
                "ann.lee@example.com",
                Some(&key),
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert_eq!(sim.user(&key).unwrap()["active"], false);
        let o = run.read().await;
        assert!(o.complete);
        assert!(
            o.accounts
                .iter()
                .any(|a| a.key.as_str() == key && !a.active)
        );
        let kinds: Vec<&str> = sim
            .effects()
            .iter()
            .filter(|e| e.id == key)
            .map(|e| e.kind.name())
            .collect();
        assert_eq!(kinds, ["created", "updated", "deactivated"]);
        assert!(!sim.effects().iter().any(|e| e.kind == EffectKind::Deleted));

        // Rehire: reactivated in place.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Reactivate,
                "ann.lee@example.com",
                Some(&key),
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert_eq!(sim.user(&key).unwrap()["active"], true);
    }

    #[tokio::test]
    async fn a_user_changed_since_the_read_is_not_overwritten() {
        let (sim, run) = setup().await;
        let o = run.read().await;
        let key = key_of(&o, "user0@example.com");
        // Another admin edits the user after roster's read.
        assert!(sim.touch(&key, "displayName", serde_json::json!("Changed By Hand")));
        let a = moved(
            action(
                run.c.as_ref(),
                Operation::Update,
                "user0@example.com",
                Some(&key),
                &[("display_name", "Roster Name")],
            ),
            &[("display_name", Some("First0 Last0"), "Roster Name")],
        );
        let r = run.apply(vec![a.clone()]).await;
        assert!(
            matches!(&r[0], ActionResult::Failed { reason, retryable: false } if reason.contains("since roster read it")),
            "{r:?}"
        );
        assert_eq!(sim.user(&key).unwrap()["displayName"], "Changed By Hand");
        // After a fresh read the same change goes through.
        run.read().await;
        assert_eq!(run.apply(vec![a]).await, vec![ActionResult::Applied]);
        assert_eq!(sim.user(&key).unwrap()["displayName"], "Roster Name");
    }

    #[tokio::test]
    async fn a_bad_token_fails_validation_with_a_hint() {
        let sim = ScimSim::start(ScimSimConfig::new("tok")).await.unwrap();
        let c = registry::build(
            &app("scim-app"),
            &ConnectorSettings::new(ConnectionId::new("scim-app"))
                .with_base_url(sim.url())
                .with_secret(SecretString::new("wrong-token")),
        )
        .unwrap();
        let v = c.validate().await.unwrap();
        assert!(!v.ok());
        assert!(v.checks[0].detail.contains("bearer token"), "{v:?}");
        assert!(!v.checks[0].detail.contains("wrong-token"));
        assert_eq!(sim.counters().unauthorized, 1);
    }

    #[tokio::test]
    async fn an_outage_mid_run_ends_with_every_change_applied_once() {
        let (sim, run) = setup().await;
        let o = run.read().await;
        let k0 = key_of(&o, "user0@example.com");
        let k1 = key_of(&o, "user1@example.com");
        let mut actions = Vec::new();
        for i in 0..4 {
            actions.push(action(
                run.c.as_ref(),
                Operation::Create,
                &format!("new{i}@example.com"),
                None,
                &[("first_name", "New"), ("last_name", &format!("N{i}"))],
            ));
        }
        actions.push(moved(
            action(
                run.c.as_ref(),
                Operation::Update,
                "user0@example.com",
                Some(&k0),
                &[("department", "Ops")],
            ),
            &[("department", None, "Ops")],
        ));
        actions.push(action(
            run.c.as_ref(),
            Operation::Deactivate,
            "user1@example.com",
            Some(&k1),
            &[],
        ));
        // The vendor goes down after two changes landed: the third change
        // is applied but its answer is lost as the outage starts, then
        // four requests get 500, then the vendor is back.
        sim.schedule_faults([
            Fault::None,
            Fault::None,
            Fault::LoseResponse,
            Fault::ServerError,
            Fault::ServerError,
            Fault::ServerError,
            Fault::ServerError,
        ]);
        let results = run.apply_resending(actions).await;
        assert_eq!(sim.counters().faulted, 5, "the outage happened");
        // The create whose answer was lost is found on retry (409): done,
        // not duplicated.
        assert!(
            matches!(&results[2], ActionResult::Skipped { reason } if reason.contains("already has a user")),
            "{results:?}"
        );
        let others: Vec<&ActionResult> = results
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, r)| r)
            .collect();
        assert!(others.iter().all(|r| r.is_applied()), "{results:?}");
        let effects = sim.effects();
        for i in 0..4 {
            let n = effects
                .iter()
                .filter(|e| {
                    e.email == format!("new{i}@example.com") && e.kind == EffectKind::Created
                })
                .count();
            assert_eq!(n, 1, "new{i} created exactly once");
        }
        assert_eq!(effects.iter().filter(|e| e.id == k0).count(), 1);
        assert_eq!(effects.iter().filter(|e| e.id == k1).count(), 1);
        assert_eq!(effects.len(), 6);
    }
}

mod bill_api {
    use super::*;
    use roster_sim::bill_spend::{BillSim, BillSimConfig};

    fn build(url: String, token: &str) -> Arc<dyn Connector> {
        registry::build(
            &app("bill-spend-expense"),
            &ConnectorSettings::new(ConnectionId::new("bill-spend-expense"))
                .with_base_url(url)
                .with_secret(SecretString::new(token))
                .with_timeout(Duration::from_secs(2)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn joiner_mover_leaver() {
        let sim = BillSim::start(BillSimConfig::new("tok").with_seed(1))
            .await
            .unwrap();
        let run = Run::new(build(sim.url(), "tok"));
        assert!(run.c.validate().await.unwrap().ok());
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Create,
                "ann@example.com",
                None,
                &[
                    ("first_name", "Ann"),
                    ("last_name", "Lee"),
                    ("role", "bookkeeper"),
                ],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        let u = sim.user_by_email("ann@example.com").unwrap();
        assert_eq!(u.role, "BOOKKEEPER");
        let key = key_of(&run.read().await, "ann@example.com");
        assert_eq!(key, u.id);

        // A move needs an update, which BILL's API does not offer: it
        // fails without a request (the engine makes it a manual task).
        let before = sim.counters().requests;
        let r = run
            .apply(vec![moved(
                action(
                    run.c.as_ref(),
                    Operation::Update,
                    "ann@example.com",
                    Some(&key),
                    &[("role", "ADMIN")],
                ),
                &[("role", Some("BOOKKEEPER"), "ADMIN")],
            )])
            .await;
        assert!(
            matches!(&r[0], ActionResult::Failed { retryable: false, reason } if reason.contains("cannot update"))
        );
        assert_eq!(sim.counters().requests, before);

        // Leaver: retired, and the next read shows an inactive account.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Deactivate,
                "ann@example.com",
                Some(&key),
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert!(sim.user_by_email("ann@example.com").unwrap().retired);
        let o = run.read().await;
        assert!(o.complete);
        assert!(
            o.accounts
                .iter()
                .any(|a| a.key.as_str() == key && !a.active)
        );
        // Retiring again is harmless.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Deactivate,
                "ann@example.com",
                Some(&key),
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert_eq!(
            sim.effects()
                .iter()
                .filter(|e| e.kind == EffectKind::Deactivated)
                .count(),
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_three_requests_in_flight() {
        let sim = BillSim::start(BillSimConfig::new("tok").with_latency(Duration::from_millis(60)))
            .await
            .unwrap();
        let c = build(sim.url(), "tok");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let a = action(
                    c.as_ref(),
                    Operation::Create,
                    &format!("p{i}@example.com"),
                    None,
                    &[("first_name", "P"), ("last_name", "Q")],
                );
                let l = RateLimiter::unlimited();
                driver::apply_once(c.as_ref(), vec![a], false, &l, &mut |_| {}).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), vec![ActionResult::Applied]);
        }
        let counters = sim.counters();
        assert_eq!(counters.concurrency_violations, 0);
        assert_eq!(counters.max_in_flight, 3, "the three slots were used");
        assert_eq!(sim.users().len(), 8);
    }

    #[tokio::test]
    async fn a_non_admin_token_fails_validation() {
        let mut config = BillSimConfig::new("tok");
        config.token_user_role = "MEMBER".into();
        let sim = BillSim::start(config).await.unwrap();
        let v = build(sim.url(), "tok").validate().await.unwrap();
        assert!(!v.ok());
        assert!(
            v.checks
                .iter()
                .any(|c| c.name == "role" && c.detail.contains("ADMIN"))
        );
        let v = build(sim.url(), "nope").validate().await.unwrap();
        assert!(!v.ok() && v.checks[0].name == "credentials");
    }
}

mod okta_idp {
    use super::*;
    use roster_sim::okta::{
        OktaApp, OktaSim, OktaSimConfig, OktaUser, PUSH_NEW_USERS, PUSH_PROFILE_UPDATES,
    };

    async fn setup(
        features: Option<&[&str]>,
    ) -> (
        roster_sim::okta::RunningOkta,
        roster_sim::scim_app::RunningScim,
        Run,
    ) {
        let scim = ScimSim::start(ScimSimConfig::new("downstream-token"))
            .await
            .unwrap();
        let mut app = OktaApp::new("0oaspend", "BILL Spend & Expense")
            .with_downstream(scim.url(), "downstream-token");
        if let Some(f) = features {
            app = app.with_features(f);
        }
        let okta = OktaSim::start(
            OktaSimConfig::new("ssws")
                .with_app(app)
                .with_user(OktaUser::new("ann@example.com", "Ann", "Lee"))
                .with_user(OktaUser::new("bob@example.com", "Bob", "Ng")),
        )
        .await
        .unwrap();
        let c = registry::build(
            &super::app("bill-spend-expense"),
            &ConnectorSettings::new(ConnectionId::new("bill-spend-expense"))
                .with_path("idp")
                .with_idp("okta")
                .with_base_url(okta.url())
                .with_secret(SecretString::new("ssws"))
                .with_okta_app_id("0oaspend")
                .with_timeout(Duration::from_secs(5)),
        )
        .unwrap();
        (okta, scim, Run::new(c))
    }

    #[tokio::test]
    async fn assignment_provisions_the_app_downstream() {
        let (okta, scim, run) = setup(None).await;
        assert!(run.c.validate().await.unwrap().ok());

        // Joiner: assigned in Okta; Okta's SCIM client creates the user.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Create,
                "ann@example.com",
                None,
                &[("department", "Sales")],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        let au = okta.assignment("0oaspend", "ann@example.com").unwrap();
        assert_eq!(au.sync_state, "SYNCHRONIZED");
        let down = scim
            .user_by_name("ann@example.com")
            .expect("provisioned downstream");
        assert_eq!(down["active"], true);
        assert_eq!(down[ENTERPRISE_SCHEMA]["department"], "Sales");
        assert_eq!(down["externalId"], okta.user("ann@example.com").unwrap().id);
        let o = run.read().await;
        let key = key_of(&o, "ann@example.com");
        let acc = o.accounts.iter().find(|a| a.key.as_str() == key).unwrap();
        assert_eq!(acc.attributes["sync_state"], "SYNCHRONIZED");

        // Mover: the app-user profile changes; Okta pushes it.
        let r = run
            .apply(vec![moved(
                action(
                    run.c.as_ref(),
                    Operation::Update,
                    "ann@example.com",
                    Some(&key),
                    &[("department", "Finance")],
                ),
                &[("department", Some("Sales"), "Finance")],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        let id = down["id"].as_str().unwrap().to_string();
        assert_eq!(
            scim.user(&id).unwrap()[ENTERPRISE_SCHEMA]["department"],
            "Finance"
        );

        // Leaver: unassigned; Okta deactivates downstream (never deletes).
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Deactivate,
                "ann@example.com",
                Some(&key),
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert!(okta.assignment("0oaspend", "ann@example.com").is_none());
        assert_eq!(scim.user(&id).unwrap()["active"], false);
        let kinds: Vec<&str> = scim.effects().iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["created", "updated", "deactivated"]);
        assert!(run.read().await.accounts.is_empty());

        // Someone unknown to Okta can't be assigned.
        let r = run
            .apply(vec![action(
                run.c.as_ref(),
                Operation::Create,
                "ghost@example.com",
                None,
                &[],
            )])
            .await;
        assert!(
            matches!(&r[0], ActionResult::Failed { retryable: false, reason } if reason.contains("must exist in Okta"))
        );
    }

    #[tokio::test]
    async fn a_disabled_deactivation_feature_is_reported_and_is_a_real_gap() {
        let (okta, scim, run) = setup(Some(&[PUSH_NEW_USERS, PUSH_PROFILE_UPDATES])).await;
        let v = run.c.validate().await.unwrap();
        assert!(!v.ok());
        let failed: Vec<_> = v.checks.iter().filter(|c| !c.passed).collect();
        assert_eq!(failed.len(), 1, "{v:?}");
        assert_eq!(failed[0].name, "provisioning:deactivate");
        assert!(
            failed[0].detail.contains("Deactivate Users"),
            "{}",
            failed[0].detail
        );
        assert!(failed[0].detail.contains("Provisioning → To App"));
        // Why it matters: unassigning leaves the app account active.
        run.apply(vec![action(
            run.c.as_ref(),
            Operation::Create,
            "bob@example.com",
            None,
            &[],
        )])
        .await;
        let key = okta.user("bob@example.com").unwrap().id;
        run.apply(vec![action(
            run.c.as_ref(),
            Operation::Deactivate,
            "bob@example.com",
            Some(&key),
            &[],
        )])
        .await;
        assert_eq!(
            scim.user_by_name("bob@example.com").unwrap()["active"],
            true
        );
        // Enabling it in Okta makes validation pass.
        okta.set_features(
            "0oaspend",
            &[
                PUSH_NEW_USERS,
                PUSH_PROFILE_UPDATES,
                roster_sim::okta::PUSH_USER_DEACTIVATION,
            ],
        );
        assert!(run.c.validate().await.unwrap().ok());
    }

    #[tokio::test]
    async fn a_downstream_outage_is_retried_until_the_app_has_the_user() {
        let (okta, scim, run) = setup(None).await;
        // The app's SCIM server fails twice; Okta marks the push ERROR and
        // the connector's retry re-assigns, which retries the push.
        scim.set_fault_for(Fault::ServerError, 2);
        let r = run
            .apply_resending(vec![action(
                run.c.as_ref(),
                Operation::Create,
                "ann@example.com",
                None,
                &[],
            )])
            .await;
        assert_eq!(r, vec![ActionResult::Applied]);
        assert_eq!(
            okta.assignment("0oaspend", "ann@example.com")
                .unwrap()
                .sync_state,
            "SYNCHRONIZED"
        );
        assert_eq!(
            scim.effects()
                .iter()
                .filter(|e| e.kind == EffectKind::Created)
                .count(),
            1
        );
        assert_eq!(
            okta.effects()
                .iter()
                .filter(|e| matches!(e.kind, EffectKind::Assigned { .. }))
                .count(),
            1
        );
    }
}

mod spendesk_api {
    use super::*;
    use roster_sim::spendesk::{MemberField, SpendeskSim, SpendeskSimConfig};

    #[tokio::test]
    async fn jit_joiner_manual_leaver_and_token_renewal() {
        let sim = SpendeskSim::start(SpendeskSimConfig::new("kid", "ksecret").with_seed(2))
            .await
            .unwrap();
        let c = registry::build(
            &app("spendesk"),
            &ConnectorSettings::new(ConnectionId::new("spendesk"))
                .with_base_url(sim.url())
                .with_username("kid")
                .with_secret(SecretString::new("ksecret")),
        )
        .unwrap();
        let run = Run::new(c);
        assert!(run.c.validate().await.unwrap().ok());

        // Joiner: first SSO login creates a bare member.
        sim.jit_login("ann@example.com", "Ann", "Lee");
        let o = run.read().await;
        let key = key_of(&o, "ann@example.com");
        let ann = o.accounts.iter().find(|a| a.key.as_str() == key).unwrap();
        assert!(ann.active);
        for missing in ["role", "team", "approval_policy", "cost_center"] {
            assert!(
                !ann.attributes.contains_key(missing),
                "JIT sets no {missing}"
            );
        }
        // Mover: the API can't change a member; the human does it.
        let before = sim.counters().requests;
        let r = run
            .apply(vec![
                action(
                    run.c.as_ref(),
                    Operation::Update,
                    "ann@example.com",
                    Some(&key),
                    &[("team", "Finance")],
                ),
                action(
                    run.c.as_ref(),
                    Operation::Deactivate,
                    "ann@example.com",
                    Some(&key),
                    &[],
                ),
            ])
            .await;
        assert!(r.iter().all(|x| matches!(
            x,
            ActionResult::Failed {
                retryable: false,
                ..
            }
        )));
        assert_eq!(sim.counters().requests, before, "nothing was sent");
        assert!(sim.set_by_hand("ann@example.com", MemberField::Team, "Finance"));

        // The access token expires between runs: the next read renews it.
        sim.expire_tokens();
        // Leaver: deactivated by hand, seen by the next read.
        assert!(sim.deactivate_by_hand("ann@example.com"));
        let o = run.read().await;
        assert!(o.complete);
        let ann = o.accounts.iter().find(|a| a.key.as_str() == key).unwrap();
        assert!(!ann.active);
        assert_eq!(ann.attributes["team"], "Finance");
        // validate's token served the first read; the expired one was
        // refused once (a retryable error) and renewed.
        assert_eq!(sim.tokens_issued(), 2);
        let kinds: Vec<(&str, &str)> = sim
            .effects()
            .iter()
            .map(|e| (e.kind.name(), e.via))
            .collect();
        assert_eq!(
            kinds,
            [
                ("created", "console"),
                ("updated", "console"),
                ("deactivated", "console")
            ]
        );
    }

    #[tokio::test]
    async fn wrong_key_fails_validation() {
        let sim = SpendeskSim::start(SpendeskSimConfig::new("kid", "ksecret"))
            .await
            .unwrap();
        let c = registry::build(
            &app("spendesk"),
            &ConnectorSettings::new(ConnectionId::new("spendesk"))
                .with_base_url(sim.url())
                .with_username("kid")
                .with_secret(SecretString::new("not-it")),
        )
        .unwrap();
        let v = c.validate().await.unwrap();
        assert!(!v.ok());
        assert!(!v.checks[0].detail.contains("not-it"));
    }
}
