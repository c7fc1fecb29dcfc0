//! Which ITSM ticket mirrors each human task (`ticket_link`, migration 22;
//! the engine's `tickets` module does the mirroring).

use crate::reader::Read as _;
use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError};

/// One task's ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TicketLink {
    pub task_id: String,
    /// `servicenow`.
    pub system: String,
    /// The ticket's ID in that system (ServiceNow's `sys_id`).
    pub ticket_id: String,
    /// What people call it (`INC0010001`).
    pub number: String,
    /// `open` until roster closes it.
    pub state: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Store {
    /// Every link, oldest first.
    pub async fn ticket_links(&self) -> Result<Vec<TicketLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT task_id, system, ticket_id, number, state, created_ms, updated_ms \
             FROM ticket_link ORDER BY created_ms, task_id",
        )
        .read_all(self)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TicketLink {
                    task_id: r.try_get("task_id")?,
                    system: r.try_get("system")?,
                    ticket_id: r.try_get("ticket_id")?,
                    number: r.try_get("number")?,
                    state: r.try_get("state")?,
                    created_ms: r.try_get("created_ms")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// Records a task's ticket; a task that has one keeps it.
    pub async fn insert_ticket_link(&self, link: &TicketLink) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ticket_link (task_id, system, ticket_id, number, state, created_ms, \
             updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(link.task_id.clone())
        .bind(link.system.clone())
        .bind(link.ticket_id.clone())
        .bind(link.number.clone())
        .bind(link.state.clone())
        .bind(link.created_ms)
        .bind(link.updated_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Moves a link to `state`.
    pub async fn set_ticket_link_state(
        &self,
        task_id: &str,
        state: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE ticket_link SET state = $1, updated_ms = $2 WHERE task_id = $3")
            .bind(state.to_string())
            .bind(at_ms)
            .bind(task_id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
