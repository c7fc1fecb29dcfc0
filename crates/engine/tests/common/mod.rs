//! Shared by the engine's test files: an app roster can read but never
//! write, and a person builder.

#![allow(dead_code)] // Not every test file uses every helper.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use roster_connectors::{
    ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError, ListRequest,
    OperationSupport, Page, Validation,
};
use roster_core::{Account, ConnectionId, Email, EmployeeId, EmploymentStatus, Operation, Person};

/// An app that can be read (one page, whatever the shared list holds) and
/// never written: every write becomes a human task.
pub struct ReadOnly {
    pub id: ConnectionId,
    pub accounts: Arc<Mutex<Vec<Account>>>,
}

#[async_trait]
impl Connector for ReadOnly {
    fn id(&self) -> &ConnectionId {
        &self.id
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(Operation::Read, OperationSupport::supported(1000))
    }
    async fn validate(&self) -> Result<Validation, ConnectorError> {
        Ok(Validation::new(Vec::new()))
    }
    async fn list_accounts(&self, _req: ListRequest) -> Result<Page, ConnectorError> {
        Ok(Page::new(self.accounts.lock().unwrap().clone(), None))
    }
    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: req
                .actions
                .first()
                .map(|a| a.operation)
                .unwrap_or(Operation::Create),
        })
    }
}

/// A Finance person with this ID, address and status.
pub fn person(id: &str, email: &str, first: &str, status: EmploymentStatus) -> Person {
    Person {
        employee_id: EmployeeId::new(id),
        email: Email::parse(email).unwrap(),
        aliases: vec![],
        first_name: first.into(),
        last_name: "Test".into(),
        department: "Finance".into(),
        cost_center: "CC-1".into(),
        manager_email: None,
        status,
        start_date: None,
        end_date: None,
        groups: vec![],
        attributes: Default::default(),
    }
}

/// `p{i}@acme.example` (employee ID `E{i}`), a Finance person whose
/// manager is boss@acme.example.
pub fn numbered(i: usize, status: EmploymentStatus) -> Person {
    Person {
        manager_email: Some(Email::parse("boss@acme.example").unwrap()),
        ..person(
            &format!("E{i}"),
            &format!("p{i}@acme.example"),
            &format!("P{i}"),
            status,
        )
    }
}

/// The Expensify workspace the service tests use.
pub const SERVICE_POLICY_ID: &str = "AAAA000000000001";

/// An engine for the service tests: a fresh SQLite store in `dir`, one
/// Expensify connection to a simulator (its documented rate limits scaled
/// to 1/100, a fast idle poll) whose workspace holds `employees`, governed
/// by one rule that keeps everyone in it with their manager.
pub async fn expensify_service_engine(
    dir: &std::path::Path,
    employees: Vec<roster_sim::expensify::SimEmployee>,
) -> (roster_sim::expensify::RunningSim, roster_engine::Engine) {
    use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
    use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimPolicy};
    const USER: &str = "svc@example.com";
    const SECRET: &str = "svc-secret";
    let mut workspace = SimPolicy::new(SERVICE_POLICY_ID, "Finance", "it@acme.example");
    for e in employees {
        workspace = workspace.with_employee(e);
    }
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([workspace]),
    )
    .await
    .unwrap();
    let store = roster_store::Store::open(&dir.join("r.db").display().to_string())
        .await
        .unwrap();
    let rules = format!(
        "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nset = {{ manager_email = \"{{manager_email}}\", policy_id = \"{SERVICE_POLICY_ID}\" }}\n"
    );
    let mut engine =
        roster_engine::Engine::new(store, roster_core::Policy::parse("p.toml", &rules).unwrap());
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        roster_connectors::SecretString::new(SECRET),
    )
    .with_base_url(sim.url());
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w| w.scaled(0.01))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(config).unwrap()));
    engine.executor = roster_engine::ExecutorOptions {
        idle_poll: std::time::Duration::from_millis(100),
        ..roster_engine::ExecutorOptions::default()
    };
    (sim, engine)
}

/// An Expensify simulator (at 1% of the documented limits) whose workspace
/// `policy_id` holds `p0..p{people-1}@acme.example` (employee IDs `E{i}`),
/// each submitting to boss@acme.example: the app the IdP end-to-end tests
/// judge by its effect log.
pub async fn expensify_people(
    user: &str,
    secret: &str,
    policy_id: &str,
    people: usize,
) -> roster_sim::expensify::RunningSim {
    use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
    let mut tenant = SimPolicy::new(policy_id, "Finance", "it@acme.example");
    for i in 0..people {
        tenant = tenant.with_employee(SimEmployee::new(
            format!("p{i}@acme.example"),
            "boss@acme.example",
            format!("E{i}"),
        ));
    }
    ExpensifySim::start(
        ExpensifySimConfig::new(user, secret)
            .scaled(0.01)
            .with_policies([tenant]),
    )
    .await
    .unwrap()
}
