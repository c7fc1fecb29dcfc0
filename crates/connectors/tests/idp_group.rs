//! The `idp` path by allowlisted group membership, against the IdP
//! simulators: Entra ID (Graph) through the conformance suite and the
//! cases that matter for safety (a group outside the allowlist is refused
//! before any request; provisioning switched off blocks writes and fails
//! validation; the IdP's provisioning failure is a visible, retryable
//! failure carrying its error text).

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::idp_group::{
    Idp, IdpGroupConfig, IdpGroupConnector, PROVISIONING_FAILED, PROVISIONING_OFF,
    ProvisioningState, REFUSED_GROUP,
};
use roster_connectors::testkit::{self, Subject};
use roster_connectors::{ActionResult, ApplyRequest, Connector, ListRequest, SecretString};
use roster_core::{AccountKey, Action, Cause, ConnectionId, Email, Operation};
use roster_sim::common::EffectKind;
use roster_sim::graph::{GraphServicePrincipal, GraphSim, GraphSimConfig, GraphUser, RunningGraph};

const SP: &str = "sp-bill";
const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(900);

async fn tenant() -> RunningGraph {
    let mut c = GraphSimConfig::new("contoso", "roster-client", "client-s3cret");
    for i in 0..11 {
        c = c.with_user(GraphUser::new(
            &format!("person{i}@example.com"),
            "Person",
            &i.to_string(),
        ));
    }
    let members: Vec<String> = (0..7).map(|i| format!("person{i}@example.com")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    c = c
        .with_group("BILL Users", &members)
        .with_group("Domain Admins", &["person0@example.com"])
        .with_service_principal(GraphServicePrincipal::new(
            SP,
            "BILL Spend & Expense",
            &["BILL Users"],
        ));
    GraphSim::start(c).await.unwrap()
}

fn connector(sim: &RunningGraph) -> Arc<IdpGroupConnector> {
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
    c.timeout = TIMEOUT;
    Arc::new(IdpGroupConnector::new(c).unwrap())
}

fn action(op: Operation, email: &str, key: Option<&str>) -> Action {
    Action {
        connection: ConnectionId::new("bill"),
        operation: op,
        employee_id: None,
        email: Email::parse(email).unwrap(),
        account: key.map(AccountKey::new),
        attributes: Default::default(),
        changes: Vec::new(),
        reason: "test".into(),
        cause: Cause::Regrant,
    }
}

async fn apply(c: &IdpGroupConnector, a: Action) -> ActionResult {
    c.apply(ApplyRequest::new(vec![a], false))
        .await
        .unwrap()
        .results
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_connector_conforms() {
    let sim = tenant().await;
    let mut s = Subject::new(
        connector(&sim),
        Arc::new(testkit::EntraGroupOracle {
            handle: sim.handle().clone(),
            groups: vec!["BILL Users".into()],
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    s.new_emails = (7..11).map(|i| format!("person{i}@example.com")).collect();
    let report = tokio::time::timeout(Duration::from_secs(60), testkit::run_all(&s))
        .await
        .expect("the suite finishes in time");
    match report {
        Ok(lines) => lines.iter().for_each(|l| eprintln!("  {l}")),
        Err(e) => panic!("conformance failed: {e}"),
    }
}

#[tokio::test]
async fn a_leaver_is_removed_from_the_allowlisted_group_and_the_outcome_verified() {
    let sim = tenant().await;
    let c = connector(&sim);
    let leaver = sim.handle().user("person3@example.com").unwrap();
    let r = apply(
        &c,
        action(
            Operation::Deactivate,
            "person3@example.com",
            Some(&leaver.id),
        ),
    )
    .await;
    assert_eq!(r, ActionResult::Applied);
    assert!(
        !sim.handle()
            .members("BILL Users")
            .contains(&leaver.user_principal_name)
    );
    let events = sim.handle().provisioning_events();
    assert!(
        events
            .iter()
            .any(|e| e.user_id == leaver.id && e.action == "disable" && e.status == "success"),
        "{events:?}"
    );
    // Only the allowlisted group was touched.
    let effects = sim.handle().effects();
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert_eq!(
        effects[0].kind,
        EffectKind::MemberRemoved {
            group: "BILL Users".into()
        }
    );
}

#[tokio::test]
async fn a_group_outside_the_allowlist_is_refused_before_any_request() {
    let sim = tenant().await;
    let c = connector(&sim);
    // Resolve the allowlist first, so the count below isolates the action.
    c.list_accounts(ListRequest::first()).await.unwrap();
    let before = sim.handle().counters().requests;
    for op in [Operation::Create, Operation::Deactivate] {
        let mut a = action(op, "person0@example.com", None);
        a.attributes.insert("group".into(), "Domain Admins".into());
        match apply(&c, a).await {
            ActionResult::Failed { reason, retryable } => {
                assert!(!retryable);
                assert!(reason.starts_with(REFUSED_GROUP), "{reason}");
                assert!(reason.contains("Domain Admins"), "{reason}");
            }
            other => panic!("{op:?} into a non-allowlisted group answered {other:?}"),
        }
    }
    assert_eq!(
        sim.handle().counters().requests,
        before,
        "no request was made"
    );
    assert!(sim.handle().effects().is_empty());
    assert_eq!(
        sim.handle().members("Domain Admins"),
        ["person0@example.com"]
    );
}

#[tokio::test]
async fn a_provisioning_failure_is_a_retryable_failure_with_the_idps_text() {
    let sim = tenant().await;
    let c = connector(&sim);
    sim.handle().fail_provisioning(
        "person8@example.com",
        "Attribute 'emails[type eq \"work\"].value' is required",
    );
    let r = apply(&c, action(Operation::Create, "person8@example.com", None)).await;
    match &r {
        ActionResult::Failed { reason, retryable } => {
            assert!(*retryable, "{reason}");
            assert!(reason.starts_with(PROVISIONING_FAILED), "{reason}");
            assert!(reason.contains("is required"), "{reason}");
        }
        other => panic!("answered {other:?}"),
    }
    // The re-send (the executor's retry) changes nothing in the group and
    // still reports the failure; once the mapping is fixed, it succeeds.
    let r2 = apply(&c, action(Operation::Create, "person8@example.com", None)).await;
    assert!(matches!(
        r2,
        ActionResult::Failed {
            retryable: true,
            ..
        }
    ));
    assert_eq!(sim.handle().effects().len(), 1);
    sim.handle()
        .clear_provisioning_failure("person8@example.com");
    let r3 = apply(&c, action(Operation::Create, "person8@example.com", None)).await;
    assert_eq!(r3, ActionResult::Applied);
}

#[tokio::test]
async fn provisioning_switched_off_fails_validation_and_blocks_writes() {
    let sim = tenant().await;
    let c = connector(&sim);
    let v = c.validate().await.unwrap();
    assert!(v.ok(), "{v:?}");
    sim.handle().set_job_status(SP, "Paused");
    let v = c.validate().await.unwrap();
    assert!(!v.ok());
    let check = v.checks.iter().find(|c| c.name == "provisioning").unwrap();
    assert!(
        check.detail.starts_with(PROVISIONING_OFF)
            && check.detail.contains("Provisioning Status to On"),
        "{}",
        check.detail
    );
    // The next read sees it too: no writes offered, and a write sent
    // anyway changes nothing.
    c.list_accounts(ListRequest::first()).await.unwrap();
    assert!(matches!(c.provisioning(), Some(ProvisioningState::Off(_))));
    let caps = c.capabilities();
    assert!(caps.supports(Operation::Read) && !caps.supports(Operation::Deactivate));
    let leaver = sim.handle().user("person2@example.com").unwrap();
    let r = apply(
        &c,
        action(
            Operation::Deactivate,
            "person2@example.com",
            Some(&leaver.id),
        ),
    )
    .await;
    assert!(
        matches!(&r, ActionResult::Failed { reason, retryable: false } if reason.starts_with(PROVISIONING_OFF)),
        "{r:?}"
    );
    assert!(sim.handle().effects().is_empty());
    // Switched back on, the next read offers writes again.
    sim.handle().set_job_status(SP, "Active");
    c.list_accounts(ListRequest::first()).await.unwrap();
    assert!(c.capabilities().supports(Operation::Deactivate));
}

// ----- Okta groups -----------------------------------------------------------

mod okta {
    use super::*;
    use roster_sim::okta::{OktaApp, OktaSim, OktaSimConfig, OktaUser, RunningOkta};

    pub async fn org() -> RunningOkta {
        let mut c = OktaSimConfig::new("okta-token");
        for i in 0..11 {
            c = c.with_user(OktaUser::new(
                &format!("person{i}@example.com"),
                "Person",
                &i.to_string(),
            ));
        }
        let members: Vec<String> = (0..7).map(|i| format!("person{i}@example.com")).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        c = c
            .with_group("BILL Users", &members)
            .with_group("Okta Admins", &["person0@example.com"])
            .with_app(OktaApp::new("0oabill", "BILL Spend").with_groups(&["BILL Users"]));
        let sim = OktaSim::start(c).await.unwrap();
        // Members added at setup get their group assignments too.
        for i in 0..7 {
            sim.handle()
                .clear_provisioning_failure(&format!("person{i}@example.com"));
        }
        sim
    }

    pub fn connector(sim: &RunningOkta) -> Arc<IdpGroupConnector> {
        let mut c = IdpGroupConfig::new(
            ConnectionId::new("bill"),
            Idp::Okta,
            sim.url(),
            SecretString::new("okta-token"),
            "0oabill",
            vec!["BILL Users".into()],
        );
        c.app_name = "BILL Spend & Expense".into();
        c.timeout = TIMEOUT;
        Arc::new(IdpGroupConnector::new(c).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn okta_group_connector_conforms() {
        let sim = org().await;
        let mut s = Subject::new(
            connector(&sim),
            Arc::new(testkit::OktaGroupOracle {
                handle: sim.handle().clone(),
                groups: vec!["BILL Users".into()],
                slow: SLOW,
            }),
        );
        s.page_size = Some(3);
        s.new_emails = (7..11).map(|i| format!("person{i}@example.com")).collect();
        let report = tokio::time::timeout(Duration::from_secs(60), testkit::run_all(&s))
            .await
            .expect("the suite finishes in time");
        match report {
            Ok(lines) => lines.iter().for_each(|l| eprintln!("  {l}")),
            Err(e) => panic!("conformance failed: {e}"),
        }
    }

    #[tokio::test]
    async fn okta_leaver_failure_and_refusal() {
        let sim = org().await;
        let c = connector(&sim);
        let h = sim.handle();
        assert!(c.validate().await.unwrap().ok());
        // A leaver: out of the group, the group assignment gone.
        let bob = h.user("person3@example.com").unwrap();
        let r = apply(
            &c,
            action(Operation::Deactivate, "person3@example.com", Some(&bob.id)),
        )
        .await;
        assert_eq!(r, ActionResult::Applied);
        assert!(h.assignment("0oabill", "person3@example.com").is_none());
        // A failed deprovisioning: Okta's syncState ERROR with its text,
        // retryable; fixed, the re-send succeeds.
        h.fail_provisioning(
            "person4@example.com",
            "Deactivation failed: user is an owner",
        );
        let dan = h.user("person4@example.com").unwrap();
        let r = apply(
            &c,
            action(Operation::Deactivate, "person4@example.com", Some(&dan.id)),
        )
        .await;
        assert!(
            matches!(&r, ActionResult::Failed { reason, retryable: true }
                if reason.starts_with(PROVISIONING_FAILED) && reason.contains("user is an owner")),
            "{r:?}"
        );
        h.clear_provisioning_failure("person4@example.com");
        let r = apply(
            &c,
            action(Operation::Deactivate, "person4@example.com", Some(&dan.id)),
        )
        .await;
        assert_eq!(r, ActionResult::Applied);
        // Another group: refused, nothing sent.
        let mut a = action(Operation::Create, "person9@example.com", None);
        a.attributes.insert("group".into(), "Okta Admins".into());
        let before = h.counters().requests;
        let r = apply(&c, a).await;
        assert!(
            matches!(&r, ActionResult::Failed { reason, retryable: false } if reason.starts_with(REFUSED_GROUP)),
            "{r:?}"
        );
        assert_eq!(h.counters().requests, before);
        assert_eq!(h.group_members("Okta Admins"), ["person0@example.com"]);
        // Provisioning off (Deactivate Users unticked): validation names
        // the switch.
        h.set_features("0oabill", &["PUSH_NEW_USERS"]);
        let v = c.validate().await.unwrap();
        let p = v.checks.iter().find(|c| c.name == "provisioning").unwrap();
        assert!(
            !p.passed && p.detail.contains("Deactivate Users"),
            "{}",
            p.detail
        );
    }
}

// ----- OneLogin roles ----------------------------------------------------------

mod onelogin {
    use super::*;
    use roster_sim::onelogin::{
        OneLoginApp, OneLoginSim, OneLoginSimConfig, OneLoginUser, RunningOneLogin,
    };

    pub async fn account() -> RunningOneLogin {
        let mut c = OneLoginSimConfig::new("ol-client", "ol-s3cret");
        for i in 0..11 {
            c = c.with_user(OneLoginUser::new(
                &format!("person{i}@example.com"),
                "Person",
                &i.to_string(),
            ));
        }
        let members: Vec<String> = (0..7).map(|i| format!("person{i}@example.com")).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        c = c
            .with_role("BILL Users", &members)
            .with_role("Super Users", &["person0@example.com"])
            .with_app(OneLoginApp::new(
                7001,
                "BILL Spend & Expense",
                &["BILL Users"],
            ));
        OneLoginSim::start(c).await.unwrap()
    }

    pub fn connector(sim: &RunningOneLogin) -> Arc<IdpGroupConnector> {
        let mut c = IdpGroupConfig::new(
            ConnectionId::new("bill"),
            Idp::OneLogin,
            sim.url(),
            SecretString::new("ol-s3cret"),
            "7001",
            vec!["BILL Users".into()],
        );
        c.client_id = Some("ol-client".into());
        c.app_name = "BILL Spend & Expense".into();
        c.timeout = TIMEOUT;
        Arc::new(IdpGroupConnector::new(c).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn onelogin_role_connector_conforms() {
        let sim = account().await;
        let mut s = Subject::new(
            connector(&sim),
            Arc::new(testkit::OneLoginRoleOracle {
                handle: sim.handle().clone(),
                roles: vec!["BILL Users".into()],
                slow: SLOW,
            }),
        );
        s.page_size = Some(3);
        s.new_emails = (7..11).map(|i| format!("person{i}@example.com")).collect();
        let report = tokio::time::timeout(Duration::from_secs(60), testkit::run_all(&s))
            .await
            .expect("the suite finishes in time");
        match report {
            Ok(lines) => lines.iter().for_each(|l| eprintln!("  {l}")),
            Err(e) => panic!("conformance failed: {e}"),
        }
    }

    #[tokio::test]
    async fn onelogin_leaver_failure_refusal_and_provisioning_off() {
        let sim = account().await;
        let c = connector(&sim);
        let h = sim.handle();
        assert!(c.validate().await.unwrap().ok());
        let bob = h.user("person3@example.com").unwrap();
        let r = apply(
            &c,
            action(
                Operation::Deactivate,
                "person3@example.com",
                Some(&bob.id.to_string()),
            ),
        )
        .await;
        assert_eq!(r, ActionResult::Applied);
        assert_eq!(h.app_status(7001, "person3@example.com"), None);
        h.fail_provisioning(
            "person9@example.com",
            "Required attribute 'department' is missing",
        );
        let r = apply(&c, action(Operation::Create, "person9@example.com", None)).await;
        assert!(
            matches!(&r, ActionResult::Failed { reason, retryable: true }
                if reason.starts_with(PROVISIONING_FAILED) && reason.contains("'department' is missing")),
            "{r:?}"
        );
        h.clear_provisioning_failure("person9@example.com");
        let r = apply(&c, action(Operation::Create, "person9@example.com", None)).await;
        assert_eq!(r, ActionResult::Applied);
        let mut a = action(Operation::Create, "person8@example.com", None);
        a.attributes.insert("group".into(), "Super Users".into());
        let before = h.counters().requests;
        let r = apply(&c, a).await;
        assert!(
            matches!(&r, ActionResult::Failed { reason, retryable: false } if reason.starts_with(REFUSED_GROUP)),
            "{r:?}"
        );
        assert_eq!(h.counters().requests, before);
        assert_eq!(h.role_members("Super Users"), ["person0@example.com"]);
        h.set_provisioning(7001, false);
        let v = c.validate().await.unwrap();
        let p = v.checks.iter().find(|c| c.name == "provisioning").unwrap();
        assert!(
            !p.passed && p.detail.contains("Enable provisioning"),
            "{}",
            p.detail
        );
    }
}
