//! The ticket mirroring pass through the application layer (see
//! [`crate::tickets`]).

use std::collections::HashMap;

use roster_core::Principal;
use roster_core::principal::PrincipalKind;
use roster_store::{AuditKind, HumanTaskState, TicketLink};
use serde_json::json;

use super::Roster;
use crate::engine::{EngineError, ms};
use crate::tickets::{STATE_IN_PROGRESS, STATE_RESOLVED, TicketSystem};

/// What one [`Roster::mirror_tickets`] pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mirrored {
    /// Tickets opened for tasks.
    pub opened: usize,
    /// Tasks marked done because the service desk resolved their ticket.
    pub completed: usize,
    /// Tickets reopened because the next read refuted the work.
    pub reopened: usize,
    /// Tickets resolved because roster verified (or cancelled) the task.
    pub resolved: usize,
    /// ITSM calls that failed (retried next pass).
    pub failed: usize,
}

impl Roster {
    /// One mirroring pass (module docs of [`crate::tickets`]). Nothing
    /// without `[tickets]`.
    pub async fn mirror_tickets(&self) -> Result<Mirrored, EngineError> {
        let engine = self.engine();
        let mut out = Mirrored::default();
        let Some(system) = engine.tickets.as_ref() else {
            return Ok(out);
        };
        let links: HashMap<String, TicketLink> = engine
            .store
            .ticket_links()
            .await?
            .into_iter()
            .map(|l| (l.task_id.clone(), l))
            .collect();
        let desk = Principal::new(PrincipalKind::Service, "itsm");
        let base_url = engine.notifier.as_ref().and_then(|n| n.base_url.clone());
        for task in engine.store.human_tasks(&[]).await? {
            let link = links.get(&task.id).filter(|l| l.state == "open");
            let step = match (task.state, link) {
                (HumanTaskState::Open | HumanTaskState::Reopened, None)
                    if !links.contains_key(&task.id) =>
                {
                    self.open_ticket(system, &task, base_url.as_deref()).await
                }
                (HumanTaskState::Open, Some(link)) => {
                    self.take_resolution(system, &task, link, &desk).await
                }
                (HumanTaskState::Reopened, Some(link)) => {
                    self.reopen_if_resolved(system, &task, link).await
                }
                (HumanTaskState::Verified | HumanTaskState::Cancelled, Some(link)) => {
                    self.resolve_ticket(system, &task, link).await
                }
                _ => Ok(Step::Nothing),
            };
            match step {
                Ok(Step::Nothing) => {}
                Ok(Step::Opened) => out.opened += 1,
                Ok(Step::Completed) => out.completed += 1,
                Ok(Step::Reopened) => out.reopened += 1,
                Ok(Step::Resolved) => out.resolved += 1,
                Err(StepError::Ticket(e)) => {
                    tracing::warn!(task = %task.id, error = %e, "mirroring a task to the ITSM tool failed; retried next pass");
                    out.failed += 1;
                }
                Err(StepError::Engine(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn open_ticket(
        &self,
        system: &TicketSystem,
        task: &roster_store::HumanTask,
        base_url: Option<&str>,
    ) -> Result<Step, StepError> {
        let engine = self.engine();
        // A crash after the create and before the link: find it again.
        let ticket = match system.find(&task.id).await? {
            Some(t) => t,
            None => {
                let page =
                    base_url.map(|b| format!("{}/ui/tasks/{}", b.trim_end_matches('/'), task.id));
                system.open(task, page.as_deref()).await?
            }
        };
        let now = ms(engine.now());
        engine
            .store
            .insert_ticket_link(&TicketLink {
                task_id: task.id.clone(),
                system: TicketSystem::SYSTEM.into(),
                ticket_id: ticket.id.clone(),
                number: ticket.number.clone(),
                state: "open".into(),
                created_ms: now,
                updated_ms: now,
            })
            .await
            .map_err(EngineError::from)?;
        engine
            .audit_as(
                "service:itsm",
                AuditKind::TicketOpened,
                &task.id,
                json!({ "ticket": ticket.number, "link": system.link(&ticket), "connection": task.connection }),
            )
            .await?;
        Ok(Step::Opened)
    }

    async fn take_resolution(
        &self,
        system: &TicketSystem,
        task: &roster_store::HumanTask,
        link: &TicketLink,
        desk: &Principal,
    ) -> Result<Step, StepError> {
        let Some(ticket) = system.get(&link.ticket_id).await? else {
            tracing::warn!(task = %task.id, ticket = %link.number, "the task's ticket is gone from the ITSM tool; the task stays open in roster");
            return Ok(Step::Nothing);
        };
        if !ticket.is_settled() {
            return Ok(Step::Nothing);
        }
        // A person's claim: the next read of the app verifies it.
        let note = format!(
            "{} {} in ServiceNow by {}: {}",
            ticket.number,
            if ticket.state == STATE_RESOLVED {
                "resolved"
            } else {
                "closed"
            },
            ticket.resolved_by.as_deref().unwrap_or("the service desk"),
            ticket.close_notes.as_deref().unwrap_or("(no notes)")
        );
        self.complete_task(desk, &task.id, Some(note), Some(system.link(&ticket)))
            .await?;
        Ok(Step::Completed)
    }

    async fn reopen_if_resolved(
        &self,
        system: &TicketSystem,
        task: &roster_store::HumanTask,
        link: &TicketLink,
    ) -> Result<Step, StepError> {
        let Some(ticket) = system.get(&link.ticket_id).await? else {
            return Ok(Step::Nothing);
        };
        if !ticket.is_settled() {
            return Ok(Step::Nothing);
        }
        system
            .update(
                &link.ticket_id,
                &json!({
                    "state": STATE_IN_PROGRESS,
                    "work_notes": format!(
                        "roster reopened this: its last read of {} still found {}'s access. {}",
                        task.connection,
                        task.subject_email,
                        task.note.as_deref().unwrap_or("")
                    ),
                }),
            )
            .await?;
        self.engine()
            .audit_as(
                "service:itsm",
                AuditKind::TicketReopened,
                &task.id,
                json!({ "ticket": link.number }),
            )
            .await?;
        Ok(Step::Reopened)
    }

    async fn resolve_ticket(
        &self,
        system: &TicketSystem,
        task: &roster_store::HumanTask,
        link: &TicketLink,
    ) -> Result<Step, StepError> {
        let engine = self.engine();
        let notes = if task.state == HumanTaskState::Verified {
            format!(
                "roster verified it: its read of {} no longer finds {}'s access.",
                task.connection, task.subject_email
            )
        } else {
            format!(
                "roster cancelled the task: it is no longer needed. {}",
                task.note.as_deref().unwrap_or("")
            )
        };
        // The desk may have resolved it already; resolving again only
        // restates the notes.
        system
            .update(
                &link.ticket_id,
                &json!({
                    "state": STATE_RESOLVED,
                    "close_code": "Solved (Permanently)",
                    "close_notes": notes.trim(),
                }),
            )
            .await?;
        engine
            .store
            .set_ticket_link_state(&task.id, "closed", ms(engine.now()))
            .await
            .map_err(EngineError::from)?;
        engine
            .audit_as(
                "service:itsm",
                AuditKind::TicketResolved,
                &task.id,
                json!({ "ticket": link.number, "task_state": task.state.as_str() }),
            )
            .await?;
        Ok(Step::Resolved)
    }
}

enum Step {
    Nothing,
    Opened,
    Completed,
    Reopened,
    Resolved,
}

/// A failed ITSM call is counted and retried next pass; a failing store
/// stops the pass.
enum StepError {
    Ticket(crate::tickets::TicketError),
    Engine(EngineError),
}

impl From<crate::tickets::TicketError> for StepError {
    fn from(e: crate::tickets::TicketError) -> Self {
        StepError::Ticket(e)
    }
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        StepError::Engine(e)
    }
}

impl From<roster_store::StoreError> for StepError {
    fn from(e: roster_store::StoreError) -> Self {
        StepError::Engine(e.into())
    }
}
