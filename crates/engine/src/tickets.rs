//! Human tasks mirrored as tickets in the company's ITSM tool
//! (`[tickets]`; ServiceNow's Table API), so the people who do manual
//! offboardings work where they already do, and roster still verifies.
//!
//! The pass ([`crate::Roster::mirror_tickets`], run by the service with
//! notifications) keeps one ticket per task (`ticket_link`, migration 22):
//!
//! | task | ticket | what the pass does |
//! |---|---|---|
//! | open or reopened, no ticket | — | opens one (`correlation_id` = the task's id) |
//! | open | resolved or closed by the service desk | marks the task done as `service:itsm`, with the resolver and notes as evidence; **the next read verifies it**, as for a person |
//! | reopened (the read still found the account) | resolved | reopens the ticket with a work note saying why |
//! | verified or cancelled | open | resolves the ticket with what roster saw |
//!
//! A ticket never takes access away and never verifies anything: resolving
//! it is a person's claim, which roster's next read of the app confirms or
//! refutes (a refuted task reopens, and so does its ticket). Creating is
//! crash-safe: before opening a ticket the pass looks one up by
//! `correlation_id`, so a crash between the create and the link's insert
//! does not open a second one. A failing ITSM call is logged and counted
//! and the pass goes on; the next pass retries.
//!
//! The client speaks the Table API's documented shapes: Basic
//! authentication, `{"result": …}` bodies, string state codes (`1` New,
//! `2` In Progress, `6` Resolved, `7` Closed, `8` Canceled), resolution
//! needing `close_code` and `close_notes`, `resolved_by` as a reference.

use std::path::Path;
use std::time::Duration;

use roster_store::HumanTask;
use serde_json::{Value, json};

pub use crate::config::RawTickets;

const TIMEOUT: Duration = Duration::from_secs(20);

/// ServiceNow state codes.
pub const STATE_IN_PROGRESS: &str = "2";
pub const STATE_RESOLVED: &str = "6";
pub const STATE_CLOSED: &str = "7";
pub const STATE_CANCELED: &str = "8";

/// A `[tickets]` problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("tickets.{place}: {message}")]
pub struct TicketConfigError {
    pub place: String,
    pub message: String,
}

/// What an ITSM call answered instead of what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TicketError(pub String);

/// A ticket as the pass needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub number: String,
    pub state: String,
    pub close_notes: Option<String>,
    pub resolved_by: Option<String>,
}

impl Ticket {
    /// Resolved, closed or canceled by the service desk.
    pub fn is_settled(&self) -> bool {
        matches!(
            self.state.as_str(),
            STATE_RESOLVED | STATE_CLOSED | STATE_CANCELED
        )
    }
}

/// The ITSM tool, ready to call (credential read, URL checked).
#[derive(Clone)]
pub struct TicketSystem {
    base: String,
    table: String,
    username: String,
    password: String,
    assignment_group: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for TicketSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSystem")
            .field("base", &self.base)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl TicketSystem {
    /// The name the links record (`servicenow`).
    pub const SYSTEM: &'static str = "servicenow";

    /// Builds the client of `raw`: reads the password (`{ env }` or
    /// `{ file }`, relative to `base`), checks the instance URL.
    pub fn from_config(
        raw: &RawTickets,
        base: &Path,
        allow_private_network: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TicketSystem, TicketConfigError> {
        let fail = |place: &str, message: String| TicketConfigError {
            place: place.into(),
            message,
        };
        if raw.kind != Self::SYSTEM {
            return Err(fail(
                "kind",
                format!(
                    "{:?}: the ITSM tool roster mirrors to is \"servicenow\"",
                    raw.kind
                ),
            ));
        }
        let private = allow_private_network || raw.allow_private_network;
        crate::egress::check_url(&raw.base_url, private)
            .map_err(|e| fail("base_url", e.to_string()))?;
        let table = raw.table.clone().unwrap_or_else(|| "incident".into());
        if table.is_empty()
            || !table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(fail("table", format!("{table:?} is not a table name")));
        }
        if raw.username.trim().is_empty() {
            return Err(fail("username", "the integration user is empty".into()));
        }
        let password = crate::config::read_env_or_file(&raw.password, base, env)
            .map_err(|m| fail("password", m))?;
        let client = roster_connectors::egress::checked_client(TIMEOUT, private)
            .map_err(|e| fail("base_url", format!("cannot build the HTTP client: {e}")))?;
        Ok(TicketSystem {
            base: raw.base_url.trim_end_matches('/').to_string(),
            table,
            username: raw.username.clone(),
            password,
            assignment_group: raw.assignment_group.clone(),
            client,
        })
    }

    /// Where people open a ticket (for evidence and messages).
    pub fn link(&self, ticket: &Ticket) -> String {
        format!(
            "{}/nav_to.do?uri={}.do?sys_id={}",
            self.base, self.table, ticket.id
        )
    }

    fn url(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("{}/api/now/table/{}/{id}", self.base, self.table),
            None => format!("{}/api/now/table/{}", self.base, self.table),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Option<Value>, TicketError> {
        let resp = req
            .basic_auth(&self.username, Some(&self.password))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                TicketError(format!(
                    "{}: {}",
                    self.base,
                    if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else {
                        "request failed"
                    }
                ))
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let detail = [&body["error"]["message"], &body["error"]["detail"]]
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(": ");
            let hint = match status.as_u16() {
                401 => " (check [tickets] username and password)",
                403 => " (the integration user lacks a role, or a data policy refused the change)",
                _ => "",
            };
            return Err(TicketError(format!(
                "ServiceNow answered HTTP {}: {}{hint}",
                status.as_u16(),
                detail.trim()
            )));
        }
        Ok(Some(body["result"].clone()))
    }

    fn ticket(result: &Value) -> Result<Ticket, TicketError> {
        let s = |k: &str| result[k].as_str().map(String::from);
        let id = s("sys_id").ok_or_else(|| TicketError("a record without sys_id".into()))?;
        Ok(Ticket {
            number: s("number").unwrap_or_else(|| id.clone()),
            id,
            state: s("state").unwrap_or_default(),
            close_notes: s("close_notes").filter(|n| !n.is_empty()),
            resolved_by: result["resolved_by"]["value"]
                .as_str()
                .or(result["resolved_by"].as_str())
                .filter(|v| !v.is_empty())
                .map(String::from),
        })
    }

    /// The ticket opened for `task_id` earlier, if any.
    pub async fn find(&self, task_id: &str) -> Result<Option<Ticket>, TicketError> {
        let req = self.client.get(self.url(None)).query(&[
            ("sysparm_query", format!("correlation_id={task_id}")),
            ("sysparm_limit", "1".into()),
        ]);
        match self.call(req).await? {
            Some(Value::Array(found)) => found.first().map(Self::ticket).transpose(),
            _ => Ok(None),
        }
    }

    /// Opens a ticket for `task`, linking back to `page` when given.
    pub async fn open(&self, task: &HumanTask, page: Option<&str>) -> Result<Ticket, TicketError> {
        let mut description = format!(
            "roster task {} ({} in {}) for {}.\n\nChecklist:\n{}",
            task.id,
            task.kind,
            task.connection,
            task.subject_email,
            task.checklist
                .iter()
                .map(|c| format!("- {c}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if let Some(p) = page {
            description.push_str(&format!("\n\nIn roster: {p}"));
        }
        description.push_str(
            "\n\nResolve this ticket when it is done: roster marks the task done and its next read of the app verifies it.",
        );
        let mut body = json!({
            "short_description": format!("[roster] {}", task.title),
            "description": description,
            "correlation_id": task.id,
            "correlation_display": "roster",
            "category": "Access",
        });
        if let Some(g) = &self.assignment_group {
            body["assignment_group"] = json!(g);
        }
        let result = self
            .call(self.client.post(self.url(None)).json(&body))
            .await?
            .ok_or_else(|| TicketError(format!("the table {} does not exist", self.table)))?;
        Self::ticket(&result)
    }

    /// The ticket `id`; `None` when it is gone.
    pub async fn get(&self, id: &str) -> Result<Option<Ticket>, TicketError> {
        match self.call(self.client.get(self.url(Some(id)))).await? {
            Some(result) => Self::ticket(&result).map(Some),
            None => Ok(None),
        }
    }

    /// Sets fields of ticket `id`.
    pub async fn update(&self, id: &str, fields: &Value) -> Result<(), TicketError> {
        match self
            .call(self.client.patch(self.url(Some(id))).json(fields))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(TicketError(format!("ticket {id} is gone"))),
        }
    }
}
