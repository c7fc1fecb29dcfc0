//! Read-only queries every surface shares: people search, app cards,
//! connection health, stored plans, human tasks, reports and the audit log.
//!
//! The REST API (`roster_server::api`), the MCP server and the CLI call
//! these [`Roster`] methods instead of reaching into the store, so each
//! answer is computed once, the same way, whoever asks. None of them
//! changes anything. Large listings are pages ([`Page`]): a bounded query
//! that starts after the last key of the previous page, with an opaque
//! cursor (base64url of that key). A cursor this module did not give is
//! [`EngineError::InvalidInput`].

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_catalog::{App, ConnectionSettings, PathChoice, select_all};
use roster_core::{Account, ConnectionId, Plan};
use roster_store::{
    AuditRecord, AuditReport, HumanTask, HumanTaskState, PauseRecord, PlanId, PlanStatus,
    QUARANTINED, ReadHealth, ReadStatus, StoredAction, StoredPlan,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::Roster;
use crate::approval::ApprovalStatus;
use crate::engine::{EngineError, ms};
use crate::reports::{self, ConnectionInfo};

/// The most a page may hold.
pub const MAX_PAGE: usize = 500;

/// One page of a listing; `next_cursor` is opaque (base64url of the last
/// key), `None` at the end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One person in a search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersonSummary {
    pub employee_id: String,
    pub email: String,
    pub name: String,
    pub department: String,
    /// `active`, `leave` or `terminated`.
    pub status: String,
}

/// One account of a connection's last read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountEntry {
    pub connection: ConnectionId,
    /// The account's key in its app (stable across reads).
    pub key: String,
    pub account: Account,
}

/// A catalog card for one app as the deployment uses it: the app's facts,
/// the settings it is judged with and the path roster takes for each
/// operation, with why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppCard {
    /// The connection that is this app; `None` for a catalog app the
    /// deployment does not connect (judged with default settings).
    pub connection: Option<ConnectionId>,
    pub app: App,
    pub settings: ConnectionSettings,
    pub paths: Vec<PathChoice>,
}

/// A connection's health and controls (`roster connections list`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionStatus {
    pub id: ConnectionId,
    /// The catalog app it is an instance of.
    pub app: String,
    /// `ok`, `incomplete`, `read-failed`, `quarantined` or `never-read`.
    pub status: String,
    pub healthy: bool,
    pub reason: Option<String>,
    /// A person's stop on its writes (this connection's or everyone's).
    pub paused: Option<PauseRecord>,
    pub last_read: Option<ReadHealth>,
}

/// One stored plan in a listing (`roster plans`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub id: String,
    pub created_ms: i64,
    pub hash: String,
    /// The principal that proposed it (`user:alice`, `agent:claude`).
    pub proposed_by: Option<String>,
    /// True when an agent proposed it.
    pub proposed_by_agent: bool,
    /// Actions per operation (`create`, `update`, ...).
    pub actions: BTreeMap<String, usize>,
    pub findings: usize,
    /// Where the plan stands, in one word or phrase ([`plan_state`]).
    pub state: &'static str,
    /// Execution status derived from the actions' states.
    pub status: PlanStatus,
    pub waiting_approval: usize,
    pub approved: usize,
    pub rejected: usize,
    pub applied_ms: Option<i64>,
}

/// One action of a plan with its execution and approval state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionDetail {
    pub index: usize,
    /// `pending`, `running`, `done`, `failed`, `skipped`, `manual`.
    pub state: String,
    /// What the executor said.
    pub detail: Option<String>,
    /// `waiting`, `approved`, `rejected`; `None` when it needs no approval.
    pub approval: Option<&'static str>,
    /// Why it needs approval, while it waits.
    pub approval_reason: Option<String>,
}

/// One plan in full (`roster plans show`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanDetail {
    pub summary: PlanSummary,
    pub plan: Plan,
    pub actions: Vec<ActionDetail>,
    /// Changes whenever the plan's approvals or any action's state change:
    /// a surface's concurrency token (the REST API's ETag).
    pub version: String,
}

/// Whether the audit chain verifies, and what was checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditVerification {
    pub ok: bool,
    /// What was checked, when the chain verifies.
    pub report: Option<AuditReport>,
    /// The stable code of the failure (`AUDIT-0001` broken chain).
    pub code: Option<String>,
    pub problem: Option<String>,
}

/// Where a plan stands for a person: its approvals until anything ran,
/// then its execution.
pub fn plan_state(stored: &StoredPlan, approvals: &ApprovalStatus) -> &'static str {
    match stored.status {
        _ if stored.plan.actions.is_empty() => "nothing to do",
        PlanStatus::InProgress => "applying",
        PlanStatus::Failed => "failed",
        PlanStatus::AwaitingManual => "waiting on manual tasks",
        // Everything skipped because a person said no.
        PlanStatus::Done if approvals.rejected.len() == stored.plan.actions.len() => "rejected",
        PlanStatus::Done => "applied",
        PlanStatus::Pending if !approvals.waiting.is_empty() => "pending approval",
        PlanStatus::Pending if !approvals.rejected.is_empty() && approvals.approved.is_empty() => {
            "rejected"
        }
        PlanStatus::Pending if !approvals.approved.is_empty() => "approved",
        PlanStatus::Pending => "ready to apply",
    }
}

fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, EngineError> {
    let Some(c) = cursor else { return Ok(None) };
    let bad = || EngineError::InvalidInput(format!("cursor {c:?} is not one this listing gave"));
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok(Some(key))
}

fn check_limit(limit: usize) -> Result<usize, EngineError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(EngineError::InvalidInput(format!(
            "limit {limit} is out of range: 1 to {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

fn summary_of(person: &roster_core::Person) -> PersonSummary {
    PersonSummary {
        employee_id: person.employee_id.as_str().to_string(),
        email: person.email.to_string(),
        name: format!("{} {}", person.first_name, person.last_name)
            .trim()
            .to_string(),
        department: person.department.clone(),
        status: person.status.as_str().to_string(),
    }
}

/// Whether `person` is what `needle` (lower case) searches for: an
/// address (primary or alias), the name or the employee ID contains it.
/// The most people one store query of [`Roster::search_people`] decodes.
const SEARCH_BATCH_MAX: usize = 1_000;

fn person_matches(person: &roster_core::Person, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let name = format!("{} {}", person.first_name, person.last_name).to_lowercase();
    name.contains(needle)
        || person.employee_id.as_str().to_lowercase().contains(needle)
        || person.email.normalized().contains(needle)
        || person
            .aliases
            .iter()
            .any(|a| a.normalized().contains(needle))
}

fn plan_version(
    stored: &StoredPlan,
    approvals: &ApprovalStatus,
    actions: &[StoredAction],
) -> String {
    let mut h = Sha256::new();
    h.update(stored.hash.as_bytes());
    for (i, why) in &approvals.waiting {
        h.update(format!("w{i}:{why};").as_bytes());
    }
    for i in &approvals.approved {
        h.update(format!("a{i};").as_bytes());
    }
    for i in &approvals.rejected {
        h.update(format!("r{i};").as_bytes());
    }
    for a in actions {
        h.update(format!("s{}:{};", a.index, a.state.as_str()).as_bytes());
    }
    let digest = h.finalize();
    format!(
        "{}-{}",
        &stored.hash[..stored.hash.len().min(16)],
        hex::encode(&digest[..8])
    )
}

impl Roster {
    /// Case-insensitive search by address (primary or alias), name or
    /// employee ID; ordered by employee ID. An empty query lists everyone.
    /// `limit` is 1 to [`MAX_PAGE`]. One bounded store query per batch: the
    /// database narrows to records containing the text, this filters them
    /// exactly.
    pub async fn search_people(
        &self,
        query: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PersonSummary>, EngineError> {
        // Its batches share one store connection (`Store::with_one_reader`).
        self.store()
            .with_one_reader(self.search_people_reads(query, cursor, limit))
            .await
    }

    async fn search_people_reads(
        &self,
        query: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PersonSummary>, EngineError> {
        let limit = check_limit(limit)?;
        let needle = query.trim().to_lowercase();
        let mut after = decode_cursor(cursor)?;
        let mut items = Vec::with_capacity(limit + 1);
        // The store's answer is a superset: exact on SQLite's trigram path
        // but for rare false positives, loose on the scan path. Ask for a
        // page first (each row costs a decoded record), then more and more
        // when filtering leaves too few.
        let mut batch = limit + 1;
        loop {
            let rows = self
                .store()
                .people_containing(&needle, after.as_deref(), batch)
                .await?;
            let exhausted = rows.len() < batch;
            if let Some(last) = rows.last() {
                after = Some(last.employee_id.as_str().to_string());
            }
            for p in &rows {
                if person_matches(p, &needle) {
                    items.push(summary_of(p));
                    if items.len() > limit {
                        break;
                    }
                }
            }
            if items.len() > limit || exhausted {
                break;
            }
            batch = (batch * 4).min(SEARCH_BATCH_MAX);
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|p| encode_cursor(&p.employee_id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The accounts `connection`'s last read returned, by key; empty for
    /// a connection never read, `None` for one the deployment does not
    /// have.
    pub async fn accounts(
        &self,
        connection: &ConnectionId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Option<Page<AccountEntry>>, EngineError> {
        let limit = check_limit(limit)?;
        let known = self.engine().bindings.contains_key(connection)
            || self.engine().connector_ids().contains(connection)
            || self.store().connection(connection).await?.is_some();
        if !known {
            return Ok(None);
        }
        let after = decode_cursor(cursor)?;
        let mut rows = self
            .store()
            .accounts_after(connection, after.as_deref(), limit + 1)
            .await?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(k, _)| encode_cursor(k))
        } else {
            None
        };
        Ok(Some(Page {
            items: rows
                .into_iter()
                .map(|(key, account)| AccountEntry {
                    connection: connection.clone(),
                    key,
                    account,
                })
                .collect(),
            next_cursor,
        }))
    }

    /// The catalog's cards for the deployment's connections: the app,
    /// what it can do, the path roster uses and why. Connections whose app
    /// the catalog lacks are left out; no catalog, no cards.
    pub async fn apps(&self) -> Result<Vec<AppCard>, EngineError> {
        let engine = self.engine();
        let Some(catalog) = &engine.catalog else {
            return Ok(Vec::new());
        };
        Ok(engine
            .bindings
            .iter()
            .filter_map(|(id, b)| {
                let app = catalog.get(&b.app)?;
                Some(AppCard {
                    connection: Some(id.clone()),
                    app: app.clone(),
                    settings: b.settings.clone(),
                    paths: select_all(app, &b.settings),
                })
            })
            .collect())
    }

    /// One card: the connection with this ID, else the first connection
    /// of the catalog app with this ID, else that catalog app with default
    /// settings; `None` if neither.
    pub async fn app(&self, connection_or_app: &str) -> Result<Option<AppCard>, EngineError> {
        let cards = self.apps().await?;
        if let Some(c) = cards.iter().find(|c| {
            c.connection
                .as_ref()
                .is_some_and(|id| id.as_str() == connection_or_app)
        }) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = cards.iter().find(|c| c.app.id == connection_or_app) {
            return Ok(Some(c.clone()));
        }
        let Some(catalog) = &self.engine().catalog else {
            return Ok(None);
        };
        Ok(catalog.get(connection_or_app).map(|app| {
            let settings = ConnectionSettings::default();
            AppCard {
                connection: None,
                paths: select_all(app, &settings),
                app: app.clone(),
                settings,
            }
        }))
    }

    /// Every connection (configured or recorded), by ID: health of the
    /// last read, quarantine, and a person's pause.
    pub async fn connections(&self) -> Result<Vec<ConnectionStatus>, EngineError> {
        let engine = self.engine();
        let stored = self.store().connections().await?;
        let health = self.store().read_health().await?;
        let pauses = self.store().pauses().await?;
        let mut ids: BTreeMap<ConnectionId, String> = engine
            .bindings
            .iter()
            .map(|(id, b)| (id.clone(), b.app.clone()))
            .collect();
        for id in engine.connector_ids() {
            ids.entry(id).or_default();
        }
        for r in &stored {
            let app = ids.entry(r.id.clone()).or_default();
            if app.is_empty() {
                *app = r.app.clone();
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, app) in ids {
            let rec = stored.iter().find(|r| r.id == id);
            let read = health.iter().find(|h| h.connection == id);
            let (status, reason) = connection_health(rec, read);
            let paused = pauses
                .iter()
                .find(|p| p.connection.as_ref() == Some(&id))
                .or_else(|| pauses.iter().find(|p| p.connection.is_none()))
                .cloned();
            out.push(ConnectionStatus {
                id,
                app,
                status: status.to_string(),
                healthy: status == "ok",
                reason,
                paused,
                last_read: read.cloned(),
            });
        }
        Ok(out)
    }

    /// Stored plans, newest first, with where each stands and who proposed
    /// it (an agent's marked). `limit` is 1 to [`MAX_PAGE`].
    pub async fn plans(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<PlanSummary>, EngineError> {
        let limit = check_limit(limit)?;
        let before = match decode_cursor(cursor)? {
            None => None,
            Some(key) => {
                let (ms, id) = key
                    .split_once(':')
                    .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
                    .ok_or_else(|| {
                        EngineError::InvalidInput(format!(
                            "cursor {:?} is not one this listing gave",
                            cursor.unwrap_or_default()
                        ))
                    })?;
                Some((ms, id))
            }
        };
        let mut rows = self
            .store()
            .plans_before(before.as_ref().map(|(m, i)| (*m, i.as_str())), limit + 1)
            .await?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|p| encode_cursor(&format!("{}:{}", p.created_ms, p.id)))
        } else {
            None
        };
        let mut items = Vec::with_capacity(rows.len());
        for stored in &rows {
            let approvals = self.approval_status(&stored.id).await?;
            items.push(plan_summary(stored, &approvals));
        }
        Ok(Page { items, next_cursor })
    }

    /// One plan: the plan, its hash, proposer, each action's approval and
    /// execution state, and a version that changes with any of them.
    /// `latest` names the newest plan. [`EngineError::PlanNotFound`] if
    /// there is none.
    pub async fn plan_detail(&self, id: &PlanId) -> Result<PlanDetail, EngineError> {
        let stored = if id.as_str() == "latest" {
            self.store().latest_plan().await?
        } else {
            self.store().plan(id).await?
        }
        .ok_or_else(|| EngineError::PlanNotFound(id.to_string()))?;
        let approvals = self.approval_status(&stored.id).await?;
        let actions = self.store().actions(&stored.id).await?;
        let version = plan_version(&stored, &approvals, &actions);
        let details = actions
            .iter()
            .map(|a| ActionDetail {
                index: a.index,
                state: a.state.as_str().to_string(),
                detail: a.detail.clone(),
                approval: if approvals.waiting.contains_key(&a.index) {
                    Some("waiting")
                } else if approvals.approved.contains(&a.index) {
                    Some("approved")
                } else if approvals.rejected.contains(&a.index) {
                    Some("rejected")
                } else {
                    None
                },
                approval_reason: approvals.waiting.get(&a.index).cloned(),
            })
            .collect();
        Ok(PlanDetail {
            summary: plan_summary(&stored, &approvals),
            plan: stored.plan,
            actions: details,
            version,
        })
    }

    /// Human tasks: those still waiting for anyone (open, reopened, done
    /// but not yet verified), or every task with `include_closed`.
    pub async fn tasks(&self, include_closed: bool) -> Result<Vec<HumanTask>, EngineError> {
        let states: &[HumanTaskState] = if include_closed {
            &[]
        } else {
            &[
                HumanTaskState::Open,
                HumanTaskState::Reopened,
                HumanTaskState::Done,
            ]
        };
        Ok(self.store().human_tasks(states).await?)
    }

    pub async fn task(&self, id: &str) -> Result<Option<HumanTask>, EngineError> {
        Ok(self.store().human_task(id).await?)
    }

    /// Active accounts no current employee owns (`roster report orphans`).
    pub async fn orphans_report(&self) -> Result<reports::OrphansReport, EngineError> {
        let data = self.report_data().await?;
        Ok(reports::orphans(&data, &self.engine().policy))
    }

    /// What roster automates per app and operation, and the gaps a person
    /// handles (`roster report coverage`). Connections the deployment
    /// configures but the store has no record of are judged with their
    /// configured settings. No catalog: an empty report.
    pub async fn coverage_report(&self) -> Result<reports::CoverageReport, EngineError> {
        let mut data = self.report_data().await?;
        for (id, b) in &self.engine().bindings {
            if !data.connections.iter().any(|c| &c.id == id) {
                data.connections.push(ConnectionInfo {
                    id: id.clone(),
                    app: Some(b.app.clone()),
                    settings: b.settings.clone(),
                    settings_note: None,
                });
            }
        }
        let catalog = match &self.engine().catalog {
            Some(c) => c.clone(),
            None => roster_catalog::Catalog::load(None)
                .map_err(|e| EngineError::Refused(format!("cannot load the app catalog: {e}")))?,
        };
        Ok(reports::coverage(&data, &catalog, &self.engine().policy))
    }

    /// Every leaver's accounts, open and closed (`roster report leavers`).
    pub async fn leavers_report(&self) -> Result<reports::LeaversReport, EngineError> {
        let data = self.report_data().await?;
        Ok(reports::leavers(
            &data,
            &self.engine().policy,
            self.engine().now(),
        ))
    }

    /// Human tasks per app: open, past their SLA, flagged, verified
    /// (`roster report tasks`).
    pub async fn task_report(&self) -> Result<crate::human::TaskReport, EngineError> {
        let tasks = self.store().human_tasks(&[]).await?;
        Ok(crate::human::task_report(&tasks, ms(self.engine().now())))
    }

    /// Audit records at or after `since_ms` (unix ms), in order.
    pub async fn audit_export(&self, since_ms: i64) -> Result<Vec<AuditRecord>, EngineError> {
        Ok(self.store().audit_since(since_ms).await?)
    }

    /// Verifies the whole audit hash chain. A broken chain is the answer
    /// (`ok: false`, with the code and where), not an error; a log that
    /// cannot be read is.
    pub async fn audit_verify(&self) -> Result<AuditVerification, EngineError> {
        match self.store().verify_audit().await {
            Ok(report) => Ok(AuditVerification {
                ok: true,
                report: Some(report),
                code: None,
                problem: None,
            }),
            Err(roster_store::AuditError::Store(e)) => Err(EngineError::Store(e)),
            Err(e) => Ok(AuditVerification {
                ok: false,
                report: None,
                code: Some(e.code().to_string()),
                problem: Some(e.to_string()),
            }),
        }
    }

    async fn report_data(&self) -> Result<reports::ReportData, EngineError> {
        reports::load(self.store()).await.map_err(|e| match e {
            reports::ReportError::Store(s) => EngineError::Store(s),
            other => EngineError::Refused(other.to_string()),
        })
    }
}

fn plan_summary(stored: &StoredPlan, approvals: &ApprovalStatus) -> PlanSummary {
    PlanSummary {
        id: stored.id.to_string(),
        created_ms: stored.created_ms,
        hash: stored.hash.clone(),
        proposed_by: stored.proposed_by.clone(),
        proposed_by_agent: stored
            .proposed_by
            .as_deref()
            .is_some_and(|p| p.starts_with("agent:")),
        actions: stored
            .plan
            .counts()
            .into_iter()
            .map(|(op, n)| (op.as_str().to_string(), n))
            .collect(),
        findings: stored.plan.findings.len(),
        state: plan_state(stored, approvals),
        status: stored.status,
        waiting_approval: approvals.waiting.len(),
        approved: approvals.approved.len(),
        rejected: approvals.rejected.len(),
        applied_ms: stored.applied_ms,
    }
}

/// A connection's health from its record (quarantine) and its last read.
pub fn connection_health(
    rec: Option<&roster_store::ConnectionRecord>,
    read: Option<&ReadHealth>,
) -> (&'static str, Option<String>) {
    if let Some(r) = rec
        && r.status == QUARANTINED
    {
        return ("quarantined", r.status_reason.clone());
    }
    match read {
        None => ("never-read", None),
        Some(h) => match h.status {
            ReadStatus::Ok => ("ok", None),
            ReadStatus::Incomplete => (
                "incomplete",
                Some(format!(
                    "last read incomplete: {}",
                    h.detail.as_deref().unwrap_or("no reason given")
                )),
            ),
            ReadStatus::Failed => (
                "read-failed",
                Some(format!(
                    "{} failed read(s) in a row; last: {}",
                    h.failures_in_a_row,
                    h.detail.as_deref().unwrap_or("no detail")
                )),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = encode_cursor("E0042");
        assert_eq!(decode_cursor(Some(&c)).unwrap().as_deref(), Some("E0042"));
        assert_eq!(decode_cursor(None).unwrap(), None);
        for bad in ["***", "", "_w"] {
            assert!(
                matches!(decode_cursor(Some(bad)), Err(EngineError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(MAX_PAGE + 1).is_err());
        assert_eq!(check_limit(MAX_PAGE).unwrap(), MAX_PAGE);
    }
}
