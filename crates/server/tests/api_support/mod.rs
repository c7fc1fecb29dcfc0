//! A roster on an Expensify simulator behind the REST API on 127.0.0.1:0,
//! and API tokens for it, for the `api_*` tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Email, EmploymentStatus, Person, Policy, Principal, Scope};
use roster_engine::{Engine, NewApiToken, PlanScope, Roster};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy};
use roster_store::Store;
use tokio::sync::oneshot;

pub const USER: &str = "api@example.com";
pub const SECRET: &str = "api-secret";
pub const POLICY_ID: &str = "AAAA000000000001";
pub const PEOPLE: usize = 20;

pub fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

pub fn people() -> Vec<Person> {
    (0..PEOPLE)
        .map(|i| Person {
            employee_id: roster_core::EmployeeId::new(format!("E{i:02}")),
            email: Email::parse(&email(i)).unwrap(),
            aliases: vec![],
            first_name: format!("P{i}"),
            last_name: "Test".into(),
            department: "Finance".into(),
            cost_center: "CC-1".into(),
            manager_email: Some(Email::parse("boss@acme.example").unwrap()),
            status: EmploymentStatus::Active,
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: Default::default(),
        })
        .collect()
}

/// The Expensify rule everyone is in line with, after `head` (policy
/// settings such as `[approvals]`).
pub fn policy(head: &str) -> String {
    format!(
        "{head}\n[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = {{ status = [\"active\", \"leave\"] }}\nset = {{ role = \"user\", manager_email = \"{{manager_email}}\", policy_id = \"{POLICY_ID}\" }}\n"
    )
}

pub fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

pub struct Api {
    pub base: String,
    pub roster: Arc<Roster>,
    pub sim: RunningSim,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    pub db: String,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn wire(store: Store, sim: &RunningSim, policy: &str) -> Roster {
    let mut engine = Engine::new(
        store,
        Policy::parse("p.toml", policy).expect("policy parses"),
    );
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

/// An Expensify tenant in line with [`people`], roster past its first
/// plan under `policy`, and the REST API serving it.
pub async fn start(policy: &str) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..PEOPLE {
        tenant = tenant.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i:02}"),
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
    let db = dir.path().join("r.db").display().to_string();
    let store = Store::open(&db).await.unwrap();
    let roster = wire(store, &sim, policy);
    let op = operator();
    roster.import_people(&op, &people(), "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&op, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    let roster = Arc::new(roster);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(roster_server::serve(
        listener,
        roster_server::api_router(roster.clone()),
        async move {
            let _ = rx.await;
        },
    ));
    Api {
        base: format!("http://{addr}"),
        roster,
        sim,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap(),
        stop: Some(tx),
        _dir: dir,
        db,
    }
}

impl Api {
    /// A token for `name` with `scopes`, as `roster token create` makes.
    pub async fn token(&self, name: &str, scopes: &[Scope]) -> String {
        self.roster
            .create_api_token(
                &operator(),
                &NewApiToken {
                    name: name.into(),
                    agent: false,
                    scopes: scopes.iter().copied().collect::<BTreeSet<_>>(),
                    ttl: None,
                },
            )
            .await
            .unwrap()
            .secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every change the app saw.
    pub fn app_changes(&self) -> usize {
        self.sim.handle().effects().len()
    }

    pub fn in_app(&self, email: &str) -> bool {
        self.sim.handle().employee(POLICY_ID, email).is_some()
    }
}
