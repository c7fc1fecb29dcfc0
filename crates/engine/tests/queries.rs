//! The shared read queries ([`roster_engine::queries`]) the REST API and
//! the MCP server answer with: people search pages that follow each other
//! exactly, a foreign cursor refused, and a plan's detail whose version
//! moves when a person decides.

mod common;

use std::sync::Arc;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Email, EmploymentStatus, Person, Policy, Principal};
use roster_engine::{Engine, EngineError, PlanScope, Roster};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use roster_store::{PlanId, Store};

const USER: &str = "queries@example.com";
const SECRET: &str = "queries-secret";
const POLICY_ID: &str = "AAAA000000000001";

fn op() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

fn people(n: usize) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let mut p = common::numbered(i, EmploymentStatus::Active);
            p.employee_id = roster_core::EmployeeId::new(format!("E{i:03}"));
            p.first_name = if i % 3 == 0 {
                "Zoë".into()
            } else {
                format!("P{i}")
            };
            if i == 7 {
                p.aliases = vec![Email::parse("finance-lead@acme.example").unwrap()];
            }
            p
        })
        .collect()
}

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("q.db").display().to_string())
        .await
        .unwrap()
}

#[tokio::test]
async fn search_pages_follow_each_other_and_match_names_addresses_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let roster = Roster::new(Engine::new(store(&dir).await, Policy::default()));
    roster
        .import_people(&op(), &people(45), "hr")
        .await
        .unwrap();

    // Everyone, three pages of 20, 20 and 5, in employee-ID order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = roster
            .search_people("", cursor.as_deref(), 20)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|p| p.employee_id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..45).map(|i| format!("E{i:03}")).collect();
    assert_eq!(seen, expected);

    // By name, case-insensitively (every third person is Zoë).
    let zoe = roster.search_people("ZOË", None, 500).await.unwrap();
    assert_eq!(zoe.items.len(), 15, "{zoe:?}");
    assert!(zoe.next_cursor.is_none());
    // A name page cut short continues where it stopped.
    let first = roster.search_people("zoë", None, 10).await.unwrap();
    let rest = roster
        .search_people("zoë", first.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), 15);
    assert!(rest.next_cursor.is_none());
    assert_eq!(first.items[9].employee_id, "E027");
    assert_eq!(rest.items[0].employee_id, "E030");

    // By alias, by address, by employee ID; a word only other fields hold
    // (the department) finds nobody.
    let alias = roster
        .search_people("Finance-Lead@", None, 50)
        .await
        .unwrap();
    assert_eq!(alias.items.len(), 1);
    assert_eq!(alias.items[0].employee_id, "E007");
    let addr = roster.search_people("p12@acme", None, 50).await.unwrap();
    assert_eq!(addr.items.len(), 1);
    assert_eq!(addr.items[0].email, "p12@acme.example");
    assert_eq!(addr.items[0].status, "active");
    let id = roster.search_people("e04", None, 50).await.unwrap();
    assert_eq!(id.items.len(), 5);
    assert!(
        roster
            .search_people("finance", None, 50)
            .await
            .unwrap()
            .items
            .len()
            == 1
    );
    // Wildcards are text.
    assert!(
        roster
            .search_people("%", None, 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A cursor the listing did not give, and a limit out of range.
    for bad in ["not base64!", "AAAA"] {
        let r = roster.search_people("", Some(bad), 10).await;
        assert!(
            matches!(r, Err(EngineError::InvalidInput(_))) || bad == "AAAA",
            "{bad}: {r:?}"
        );
    }
    assert!(matches!(
        roster.search_people("", None, 0).await,
        Err(EngineError::InvalidInput(_))
    ));
    assert!(matches!(
        roster.search_people("", None, 501).await,
        Err(EngineError::InvalidInput(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_detail_versions_move_with_decisions_and_plans_page_newest_first() {
    let n = 6;
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..n {
        tenant = tenant.with_employee(SimEmployee::new(
            format!("p{i}@acme.example"),
            "boss@acme.example",
            format!("E{i:03}"),
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
    // A misspelled key: every account is ungranted, each removal waits.
    let policy = format!(
        "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = {{ staus = [\"active\"] }}\nset = {{ role = \"user\", policy_id = \"{POLICY_ID}\" }}\n"
    );
    let mut engine = Engine::new(store(&dir).await, Policy::parse("p.toml", &policy).unwrap());
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
    let roster = Roster::new(engine);
    roster.import_people(&op(), &people(n), "hr").await.unwrap();
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let first = roster.plan(&op(), PlanScope::All).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert_eq!(planned.plan.approvals.len(), n, "{:?}", planned.plan);

    let detail = roster.plan_detail(&planned.id).await.unwrap();
    assert_eq!(detail.summary.id, planned.id.to_string());
    assert_eq!(detail.summary.state, "pending approval");
    assert_eq!(detail.summary.waiting_approval, n);
    assert_eq!(detail.summary.proposed_by.as_deref(), Some("user:operator"));
    assert!(!detail.summary.proposed_by_agent);
    assert_eq!(detail.actions.len(), n);
    assert!(detail.actions.iter().all(|a| a.approval == Some("waiting")));
    assert_eq!(
        roster.plan_detail(&PlanId::new("latest")).await.unwrap(),
        detail
    );

    // The same plan read twice has the same version; a decision moves it.
    assert_eq!(
        roster.plan_detail(&planned.id).await.unwrap().version,
        detail.version
    );
    roster
        .approve(
            &Principal::new(PrincipalKind::User, "alice"),
            &planned.id,
            Some(0),
            "ok",
        )
        .await
        .unwrap();
    let after = roster.plan_detail(&planned.id).await.unwrap();
    assert_ne!(after.version, detail.version);
    assert_eq!(after.actions[0].approval, Some("approved"));
    assert_eq!(after.summary.approved, 1);

    assert!(matches!(
        roster.plan_detail(&PlanId::new("nope")).await,
        Err(EngineError::PlanNotFound(_))
    ));

    // Plans page newest first, one at a time.
    let page = roster.plans(None, 1).await.unwrap();
    assert_eq!(page.items[0].id, planned.id.to_string());
    let next = roster.plans(page.next_cursor.as_deref(), 1).await.unwrap();
    assert_eq!(next.items[0].id, first.id.to_string());
    assert!(next.next_cursor.is_none(), "{next:?}");

    // Connections and accounts through the same door.
    let conns = roster.connections().await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].status, "ok");
    let accounts = roster
        .accounts(&ConnectionId::new("expensify"), None, 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accounts.items.len(), 4);
    let rest = roster
        .accounts(
            &ConnectionId::new("expensify"),
            accounts.next_cursor.as_deref(),
            4,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(rest.next_cursor.is_none());
    assert!(!rest.items.is_empty());
    assert!(
        roster
            .accounts(&ConnectionId::new("nope"), None, 4)
            .await
            .unwrap()
            .is_none()
    );
    let verify = roster.audit_verify().await.unwrap();
    assert!(verify.ok, "{verify:?}");
    assert!(!roster.audit_export(0).await.unwrap().is_empty());
}
