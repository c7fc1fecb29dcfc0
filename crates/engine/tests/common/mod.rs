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
