//! Human tasks: the `manual` and `jit` paths.
//!
//! When no connector can carry out an action (Spendesk has no user-write
//! API; BILL S&E off the Enterprise plan cannot be deprovisioned by CSV),
//! the action becomes a task for a person, with the catalog's checklist for
//! that app and operation, a due date from the connection's SLA, and an
//! assignee. The person marks it done with evidence; **the next read
//! decides**: if the next plan no longer needs the change, a task marked
//! done is `verified`, and one nobody marked done is `cancelled` with the
//! reason its need vanished (the person left; the change was made outside
//! roster), never passed off as verified work. If the plan still needs
//! the change, a task marked done is `reopened` and flagged, because the
//! person's word and the app disagree.
//!
//! Until verified, an offboarding task is open risk: the leaver still has
//! access, and reports say so.

use std::collections::{BTreeMap, BTreeSet};

use roster_catalog::Path;
use roster_core::{Action, ConnectionId, Email, Operation, Plan};
use roster_store::AuditKind;
use roster_store::{ActionState, HumanTask, HumanTaskState, PlanId};
use serde_json::json;

use crate::engine::{Engine, EngineError, ms};

/// Default SLA for a manual offboarding: a leaver's access is a risk.
pub const DEFAULT_DEPROVISION_SLA_HOURS: u32 = 24;
/// Default SLA for other manual work.
pub const DEFAULT_SLA_HOURS: u32 = 72;

pub use crate::options::AppBinding;

/// The intent a task stands for: the same change planned twice is one task.
pub fn intent_key(a: &Action) -> String {
    a.key()
}

impl Engine {
    /// An offboarding whose plan found a leaver still someone's approver
    /// with no successor known ([`roster_core::plan::FindingKind::NoSuccessor`]:
    /// nothing was re-pointed, their account there is kept) asks a person
    /// to decide: one task per app, held by the principal who offboarded.
    /// Returns the tasks' ids.
    pub(crate) async fn open_successor_tasks(
        &self,
        actor: &str,
        person: &roster_core::Person,
        plan: &Plan,
    ) -> Result<Vec<String>, EngineError> {
        let now = ms(self.now());
        let mut ids = Vec::new();
        for f in plan
            .findings
            .iter()
            .filter(|f| f.kind == roster_core::plan::FindingKind::NoSuccessor)
        {
            let task = HumanTask {
                id: format!("T-successor-{}-{}", f.connection, now),
                dedupe_key: format!("choose-successor:{}:{}", f.connection, person.employee_id),
                connection: f.connection.to_string(),
                kind: "choose-successor".into(),
                subject_email: person.email.to_string(),
                employee_id: Some(person.employee_id.to_string()),
                account_key: f.account.as_ref().map(|k| k.to_string()),
                plan_id: None,
                action_idx: None,
                title: format!(
                    "Choose who takes over as approver from {} in {}; their account there stays open until then",
                    person.email, f.connection
                ),
                checklist: vec![
                    f.detail.clone(),
                    format!(
                        "Name {}'s manager in the source of truth (or move the people who submit to them), then run roster offboard again",
                        person.email
                    ),
                ],
                assignee: Some(actor.to_string()),
                state: HumanTaskState::Open,
                flagged: true,
                note: None,
                evidence: None,
                due_ms: Some(now + 24 * 3_600_000),
                reminded_ms: None,
                escalated_ms: None,
                created_ms: now,
                updated_ms: now,
            };
            let (task, created) = self.store.open_human_task(&task).await?;
            if created {
                self.audit_as(
                    actor,
                    AuditKind::TaskOpened,
                    &task.id,
                    json!({ "connection": task.connection, "subject": task.subject_email, "kind": task.kind }),
                )
                .await?;
            }
            ids.push(task.id);
        }
        Ok(ids)
    }

    pub fn with_catalog(mut self, catalog: roster_catalog::Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    pub fn bind(&mut self, connection: ConnectionId, binding: AppBinding) {
        self.bindings.insert(connection, binding);
    }

    /// The path the catalog picks for this action, if the connection is
    /// bound to a catalog app.
    fn path_for(&self, a: &Action) -> Option<(Path, String, Vec<String>)> {
        let catalog = self.catalog.as_ref()?;
        let binding = self.bindings.get(&a.connection);
        let app_id = binding
            .map(|b| b.app.as_str())
            .unwrap_or(a.connection.as_str());
        let app = catalog.get(app_id)?;
        let settings = binding.map(|b| b.settings.clone()).unwrap_or_default();
        let choice = roster_catalog::select_path(app, &settings, a.operation);
        let steps = app
            .manual_steps(a.operation)
            .map(|f| f.value().clone())
            .unwrap_or_default();
        Some((choice.path, choice.reason, steps))
    }

    /// Turns every pending action no connector can carry out into a human
    /// task, and marks the action `manual`. Returns the tasks (new or
    /// already open for the same intent).
    pub(crate) async fn route_manual(
        &self,
        plan_id: &PlanId,
    ) -> Result<Vec<HumanTask>, EngineError> {
        let actions = self.store.actions(plan_id).await?;
        // An action waiting for approval is nobody's work yet: no task, no
        // checklist, until a person approves it.
        let held = self.approval_status(plan_id).await?.waiting;
        let now = self.now();
        let mut out = Vec::new();
        let manual: Vec<_> = actions
            .into_iter()
            .filter(|s| {
                s.state == ActionState::Pending
                    && !held.contains_key(&s.index)
                    && !self.connector_supports(&s.action.connection, s.action.operation)
            })
            .collect();
        let files = self.import_files(plan_id, &manual).await?;
        for stored in manual {
            let a = &stored.action;
            let (path, reason, mut steps) = self.path_for(a).unwrap_or((
                Path::Manual,
                format!("no connector is configured for {}", a.connection),
                Vec::new(),
            ));
            let app_name = self
                .catalog
                .as_ref()
                .and_then(|c| {
                    let id = self
                        .bindings
                        .get(&a.connection)
                        .map(|b| b.app.as_str())
                        .unwrap_or(a.connection.as_str());
                    c.get(id).map(|app| app.name.clone())
                })
                .unwrap_or_else(|| a.connection.to_string());
            let (kind, title) = match (path, a.operation) {
                (Path::Jit, Operation::Create) => {
                    let idp = self
                        .bindings
                        .get(&a.connection)
                        .and_then(|b| b.settings.idp.clone())
                        .unwrap_or_else(|| "the IdP".into());
                    steps = vec![
                        format!("Assign {} to the {app_name} app in {idp} (SAML SSO).", a.email),
                        format!("Ask {} to sign in to {app_name} once: just-in-time provisioning creates the account.", a.email),
                        "When the account appears, roster opens a follow-up for what JIT does not set (role, team, approval policy, cost center).".into(),
                    ];
                    (
                        "jit-onboarding",
                        format!("Onboard {} to {app_name} through SSO (JIT)", a.email),
                    )
                }
                (_, op) => (
                    op.as_str(),
                    format!(
                        "{} {} in {app_name} by hand",
                        capitalise(op.as_str()),
                        a.email
                    ),
                ),
            };
            if steps.is_empty() {
                steps.push(format!(
                    "{} {} in {app_name}'s admin console.",
                    capitalise(a.operation.as_str()),
                    a.email
                ));
            }
            if a.operation == Operation::Create
                && let Some(file) = files.get(&a.connection)
            {
                if path == Path::Csv {
                    steps.insert(
                        0,
                        format!(
                            "Import {} in {app_name} (it adds everyone in this plan at once; CSV import cannot remove people).",
                            file.display()
                        ),
                    );
                } else {
                    steps.push(format!(
                        "Or invite everyone in this plan at once with the bulk-invite file {}.",
                        file.display()
                    ));
                }
            }
            if a.operation == Operation::Update && !a.changes.is_empty() {
                for c in &a.changes {
                    steps.push(format!(
                        "Set {} to {} (now {}).",
                        c.name,
                        c.after.as_deref().unwrap_or("(unset)"),
                        c.before.as_deref().unwrap_or("(unset)")
                    ));
                }
            }
            let binding = self.bindings.get(&a.connection);
            let sla_hours =
                binding
                    .and_then(|b| b.task_sla_hours)
                    .unwrap_or(if a.operation.is_deprovision() {
                        DEFAULT_DEPROVISION_SLA_HOURS
                    } else {
                        DEFAULT_SLA_HOURS
                    });
            let created_ms = ms(now);
            let task = HumanTask {
                // The plan id's tail is its random part (UUIDv7): ids stay
                // unique across plans made in the same millisecond.
                id: format!("T-{}-{}", tail(plan_id.as_str(), 8), stored.index),
                dedupe_key: intent_key(a),
                connection: a.connection.to_string(),
                kind: kind.to_string(),
                subject_email: a.email.to_string(),
                employee_id: a.employee_id.as_ref().map(|e| e.to_string()),
                account_key: a.account.as_ref().map(|k| k.to_string()),
                plan_id: Some(plan_id.to_string()),
                action_idx: Some(stored.index),
                title,
                checklist: steps,
                assignee: binding.and_then(|b| b.assignee.clone()),
                state: HumanTaskState::Open,
                flagged: false,
                note: Some(format!("{}; because {}", reason, a.reason)),
                evidence: None,
                due_ms: Some(created_ms + i64::from(sla_hours) * 3_600_000),
                reminded_ms: None,
                escalated_ms: None,
                created_ms,
                updated_ms: created_ms,
            };
            let (task, created) = self.store.open_human_task(&task).await?;
            self.store
                .set_action_state(
                    plan_id,
                    stored.index,
                    ActionState::Manual,
                    Some(format!("task {}", task.id)),
                    created_ms,
                )
                .await?;
            crate::metrics::action_finished(path.as_str(), "manual");
            if created {
                self.audit(
                    AuditKind::TaskOpened,
                    &task.id,
                    json!({
                        "connection": task.connection,
                        "kind": task.kind,
                        "subject": task.subject_email,
                        "due_ms": task.due_ms,
                        "plan": plan_id.as_str(),
                    }),
                )
                .await?;
            }
            out.push(task);
        }
        Ok(out)
    }

    /// Turns this plan's finally failed actions on connections whose
    /// connector hands failures to people ([`roster_connectors::Capabilities::failures_to_people`]:
    /// the `idp` path, where the IdP took the change but provisioning into
    /// the app failed; the `browser` path, where a runbook stopped) into
    /// people's tasks carrying the failure, and marks the actions `manual`.
    /// Returns the tasks.
    pub(crate) async fn failures_to_people(
        &self,
        plan_id: &PlanId,
    ) -> Result<Vec<HumanTask>, EngineError> {
        let mut out = Vec::new();
        let now = self.now();
        for stored in self.store.actions(plan_id).await? {
            if stored.state != ActionState::Failed {
                continue;
            }
            let a = &stored.action;
            let Some((connector, _)) = self.connection_parts(&a.connection) else {
                continue;
            };
            if !connector.capabilities().failures_to_people {
                continue;
            }
            let failure = stored.detail.clone().unwrap_or_default();
            let app_name = self
                .catalog
                .as_ref()
                .and_then(|c| {
                    let id = self
                        .bindings
                        .get(&a.connection)
                        .map(|b| b.app.as_str())
                        .unwrap_or(a.connection.as_str());
                    c.get(id).map(|app| app.name.clone())
                })
                .unwrap_or_else(|| a.connection.to_string());
            let browser = self.browser_runbook(a).map(|rb| {
                // The runbook stopped (unverified at its confirmation, a
                // step failed twice, the console changed): the person gets
                // what roster did, its screenshots and the whole checklist.
                let mut steps = vec![format!("Read what roster did in the console: {failure}")];
                steps.extend(
                    rb.checklist()
                        .into_iter()
                        .map(|l| l.replace("{email}", a.email.as_str())),
                );
                (rb.id.clone(), steps)
            });
            let mut steps = vec![
                format!("Read the IdP's error: {failure}"),
                format!(
                    "Fix the cause in the IdP's provisioning settings for {app_name} (attribute mappings are the usual one), then retry provisioning for {} there.",
                    a.email
                ),
            ];
            steps.extend(
                self.path_for(a)
                    .map(|(_, _, s)| s)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| format!("Or by hand: {s}")),
            );
            let title = match &browser {
                Some((id, _)) => format!(
                    "{} {} in {app_name}: runbook {id} stopped; finish it in the console",
                    capitalise(a.operation.as_str()),
                    a.email
                ),
                None => format!(
                    "{} {} in {app_name}: the IdP's provisioning failed",
                    capitalise(a.operation.as_str()),
                    a.email
                ),
            };
            if let Some((_, s)) = browser {
                steps = s;
            }
            let binding = self.bindings.get(&a.connection);
            let sla_hours =
                binding
                    .and_then(|b| b.task_sla_hours)
                    .unwrap_or(if a.operation.is_deprovision() {
                        DEFAULT_DEPROVISION_SLA_HOURS
                    } else {
                        DEFAULT_SLA_HOURS
                    });
            let created_ms = ms(now);
            let task = HumanTask {
                id: format!("T-{}-{}", tail(plan_id.as_str(), 8), stored.index),
                dedupe_key: intent_key(a),
                connection: a.connection.to_string(),
                kind: a.operation.as_str().to_string(),
                subject_email: a.email.to_string(),
                employee_id: a.employee_id.as_ref().map(|e| e.to_string()),
                account_key: a.account.as_ref().map(|k| k.to_string()),
                plan_id: Some(plan_id.to_string()),
                action_idx: Some(stored.index),
                title,
                checklist: steps,
                assignee: binding.and_then(|b| b.assignee.clone()),
                state: HumanTaskState::Open,
                flagged: false,
                note: Some(format!(
                    "retried and still failing: {failure}; because {}",
                    a.reason
                )),
                evidence: None,
                due_ms: Some(created_ms + i64::from(sla_hours) * 3_600_000),
                reminded_ms: None,
                escalated_ms: None,
                created_ms,
                updated_ms: created_ms,
            };
            let (task, created) = self.store.open_human_task(&task).await?;
            self.store
                .set_action_state(
                    plan_id,
                    stored.index,
                    ActionState::Manual,
                    Some(format!("task {}: {failure}", task.id)),
                    created_ms,
                )
                .await?;
            if created {
                self.audit(
                    AuditKind::TaskOpened,
                    &task.id,
                    json!({
                        "connection": task.connection,
                        "kind": task.kind,
                        "subject": task.subject_email,
                        "due_ms": task.due_ms,
                        "plan": plan_id.as_str(),
                        "failure": failure,
                    }),
                )
                .await?;
            }
            out.push(task);
        }
        Ok(out)
    }

    /// Writes one import file per connection for the creates a person will
    /// carry out (BILL S&E's add-only CSV, Spendesk's bulk-invite xlsx),
    /// when the engine has a place for exports. Names come from the source
    /// of truth when the policy does not set them.
    async fn import_files(
        &self,
        plan_id: &PlanId,
        manual: &[roster_store::StoredAction],
    ) -> Result<BTreeMap<ConnectionId, std::path::PathBuf>, EngineError> {
        let mut out = BTreeMap::new();
        let Some(dir) = &self.exports_dir else {
            return Ok(out);
        };
        let mut by_connection: BTreeMap<&ConnectionId, Vec<Action>> = BTreeMap::new();
        for s in manual
            .iter()
            .filter(|s| s.action.operation == Operation::Create)
        {
            let mut a = s.action.clone();
            if let Some(id) = &a.employee_id
                && let Some(p) = self.store.person_by_employee_id(id).await?
            {
                a.attributes
                    .entry("first_name".into())
                    .or_insert(p.first_name.clone());
                a.attributes
                    .entry("last_name".into())
                    .or_insert(p.last_name.clone());
                a.attributes
                    .entry("cost_center".into())
                    .or_insert(p.cost_center.clone());
            }
            by_connection
                .entry(&s.action.connection)
                .or_default()
                .push(a);
        }
        for (connection, actions) in by_connection {
            let app = self
                .bindings
                .get(connection)
                .map(|b| b.app.clone())
                .unwrap_or_else(|| connection.to_string());
            let file = match crate::files::import_file_for(&app, &actions) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%connection, error = %e, "no import file: a row could not be written");
                    continue;
                }
            };
            let path = crate::files::write_export(
                dir,
                plan_id.as_str(),
                connection.as_str(),
                file.ext,
                &file.bytes,
            )
            .map_err(|e| EngineError::Refused(e.to_string()))?;
            self.audit(
                AuditKind::ExportWritten,
                &path.display().to_string(),
                json!({ "connection": connection.as_str(), "rows": actions.len(), "plan": plan_id.as_str() }),
            )
            .await?;
            out.insert(connection.clone(), path);
        }
        Ok(out)
    }

    /// Verification by the next read: given a plan computed from a fresh
    /// read, every task whose change the plan no longer needs is closed:
    /// `verified` when someone marked it done and the read shows its effect
    /// (or a JIT onboarding's account appeared: the person's sign-in is the
    /// work), else `cancelled` with the reason its need vanished (the
    /// person left, the change was made outside roster, the policy
    /// changed). A task marked done whose change is still needed is
    /// reopened and flagged. Returns (verified, reopened) counts.
    pub(crate) async fn verify_tasks(&self, plan: &Plan) -> Result<(usize, usize), EngineError> {
        let read: BTreeSet<&ConnectionId> = plan.classification.keys().collect();
        let still_needed: BTreeMap<String, &Action> =
            plan.actions.iter().map(|a| (intent_key(a), a)).collect();
        let now = ms(self.now());
        let (mut verified, mut reopened) = (0, 0);
        let tasks = self
            .store
            .human_tasks(&[
                HumanTaskState::Open,
                HumanTaskState::Done,
                HumanTaskState::Reopened,
            ])
            .await?;
        for t in tasks {
            // Only a read of this task's app can verify it.
            if !read.iter().any(|c| c.as_str() == t.connection) {
                continue;
            }
            let needed = still_needed.contains_key(&t.dedupe_key);
            if !needed {
                if self.close_unneeded_task(&t, now).await? == HumanTaskState::Verified {
                    verified += 1;
                }
            } else if t.state == HumanTaskState::Done {
                self.store
                    .set_human_task_state(
                        &t.id,
                        HumanTaskState::Reopened,
                        Some(
                            "marked done, but the next read shows the change is still needed"
                                .into(),
                        ),
                        None,
                        now,
                    )
                    .await?;
                self.audit(AuditKind::TaskReopened, &t.id, json!({ "connection": t.connection, "subject": t.subject_email, "flagged": true }))
                    .await?;
                reopened += 1;
            }
        }
        Ok((verified, reopened))
    }

    /// Closes a task the latest plan no longer needs, as verified or
    /// cancelled (see [`Engine::verify_tasks`]); returns the state set.
    async fn close_unneeded_task(
        &self,
        t: &HumanTask,
        now: i64,
    ) -> Result<HumanTaskState, EngineError> {
        let effect = self.task_effect_observed(t).await?;
        let jit_account_appeared = t.kind == "jit-onboarding" && effect == Some(true);
        let marked_done = t.state == HumanTaskState::Done;
        if (marked_done && effect != Some(false)) || jit_account_appeared {
            let note = if jit_account_appeared && !marked_done {
                "the account appeared in the next read (signed in through SSO)"
            } else {
                "confirmed by the next read"
            };
            self.store
                .set_human_task_state(
                    &t.id,
                    HumanTaskState::Verified,
                    Some(note.into()),
                    None,
                    now,
                )
                .await?;
            self.audit(
                AuditKind::TaskVerified,
                &t.id,
                json!({ "connection": t.connection, "subject": t.subject_email }),
            )
            .await?;
            return Ok(HumanTaskState::Verified);
        }
        // Nobody did this work (or what they did is not what the app
        // shows): its need vanished, which is not a verification.
        let reason = if effect == Some(true) {
            "no longer needed: the app already shows the change, made outside roster; nobody marked this task done".to_string()
        } else if !self.subject_still_here(t).await? {
            format!(
                "no longer needed: {} is no longer active in the source of truth",
                t.subject_email
            )
        } else {
            "no longer needed: the latest plan no longer asks for this change (the policy or the person's attributes changed)".to_string()
        };
        self.store
            .set_human_task_state(
                &t.id,
                HumanTaskState::Cancelled,
                Some(reason.clone()),
                None,
                now,
            )
            .await?;
        self.audit(
            AuditKind::TaskCancelled,
            &t.id,
            json!({ "connection": t.connection, "subject": t.subject_email, "reason": reason }),
        )
        .await?;
        Ok(HumanTaskState::Cancelled)
    }

    /// Whether the last read of the task's app shows what the task asked
    /// for: `Some(true|false)` for creating, reactivating and deactivating
    /// an account; `None` when the read alone cannot tell (an update).
    async fn task_effect_observed(&self, t: &HumanTask) -> Result<Option<bool>, EngineError> {
        let Ok(email) = Email::parse(&t.subject_email) else {
            return Ok(None);
        };
        let accounts = self.store.accounts_by_email(&email).await?;
        // A deactivation names its account; other work is about whichever
        // account the person has in that app.
        let active = accounts.iter().any(|a| {
            a.connection.as_str() == t.connection
                && a.active
                && match (t.kind.as_str(), t.account_key.as_deref()) {
                    ("deactivate" | "delete", Some(k)) => a.key.as_str() == k,
                    _ => true,
                }
        });
        Ok(match t.kind.as_str() {
            "create" | "reactivate" | "jit-onboarding" => Some(active),
            "deactivate" | "delete" => Some(!active),
            _ => None,
        })
    }

    /// Whether the task's person is still someone roster provisions: in
    /// the source of truth and not terminated.
    async fn subject_still_here(&self, t: &HumanTask) -> Result<bool, EngineError> {
        let person = match &t.employee_id {
            Some(id) => {
                self.store
                    .person_by_employee_id(&roster_core::EmployeeId::new(id.as_str()))
                    .await?
            }
            None => match Email::parse(&t.subject_email) {
                Ok(e) => self.store.person_by_email(&e).await?,
                Err(_) => None,
            },
        };
        Ok(person.is_some_and(|p| p.status != roster_core::EmploymentStatus::Terminated))
    }

    /// A person reports a task done, with evidence. Verification waits for
    /// the next read.
    pub(crate) async fn complete_task(
        &self,
        id: &str,
        actor: &str,
        note: Option<String>,
        evidence: Option<String>,
    ) -> Result<HumanTask, EngineError> {
        let task = self
            .store
            .human_task(id)
            .await?
            .ok_or_else(|| EngineError::Refused(format!("no task {id}; see `roster tasks`")))?;
        if !task.state.is_outstanding() {
            return Err(EngineError::Refused(format!(
                "task {id} is {}, not open",
                task.state
            )));
        }
        self.store
            .set_human_task_state(
                id,
                HumanTaskState::Done,
                note.clone(),
                evidence.clone(),
                ms(self.now()),
            )
            .await?;
        self.audit_as(
            actor,
            AuditKind::TaskDone,
            id,
            json!({ "note": note, "evidence": evidence }),
        )
        .await?;
        Ok(self.store.human_task(id).await?.unwrap_or(task))
    }

    /// Reminders at half the SLA, escalation past it. Returns the tasks
    /// nudged now as (task, escalated).
    pub(crate) async fn nudge_tasks(&self) -> Result<Vec<(HumanTask, bool)>, EngineError> {
        let now = ms(self.now());
        let mut out = Vec::new();
        for t in self
            .store
            .human_tasks(&[HumanTaskState::Open, HumanTaskState::Reopened])
            .await?
        {
            let Some(due) = t.due_ms else { continue };
            let half = t.created_ms + (due - t.created_ms) / 2;
            if now >= due && t.escalated_ms.is_none() {
                self.store.mark_human_task_nudged(&t.id, true, now).await?;
                let to = self
                    .bindings
                    .get(&ConnectionId::new(t.connection.as_str()))
                    .and_then(|b| b.escalate_to.clone());
                self.audit(
                    AuditKind::TaskEscalated,
                    &t.id,
                    json!({ "to": to, "overdue_ms": now - due }),
                )
                .await?;
                out.push((t, true));
            } else if now >= half && t.reminded_ms.is_none() && now < due {
                self.store.mark_human_task_nudged(&t.id, false, now).await?;
                self.audit(
                    AuditKind::TaskReminded,
                    &t.id,
                    json!({ "assignee": t.assignee, "due_ms": due }),
                )
                .await?;
                out.push((t, false));
            }
        }
        Ok(out)
    }
}

/// The last `n` characters of an id (ASCII hex, so slicing is safe).
fn tail(s: &str, n: usize) -> &str {
    s.get(s.len().saturating_sub(n)..).unwrap_or(s)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Human work per connection, for `roster report tasks`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TaskCounts {
    pub open: usize,
    /// Open (or reopened) past their due date: past the connection's SLA.
    pub past_sla: usize,
    /// Reported done but contradicted by a read.
    pub flagged: usize,
    /// Reported done, waiting for the next read.
    pub awaiting_verification: usize,
    pub verified: usize,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TaskReport {
    pub at_ms: i64,
    pub by_connection: BTreeMap<String, TaskCounts>,
    /// Tasks past their SLA, most overdue first.
    pub overdue: Vec<HumanTask>,
}

/// Counts tasks by connection and state, and lists those past their SLA.
pub fn task_report(tasks: &[HumanTask], now_ms: i64) -> TaskReport {
    let mut report = TaskReport {
        at_ms: now_ms,
        ..TaskReport::default()
    };
    for t in tasks {
        let c = report
            .by_connection
            .entry(t.connection.clone())
            .or_default();
        match t.state {
            HumanTaskState::Open | HumanTaskState::Reopened => {
                c.open += 1;
                if t.flagged {
                    c.flagged += 1;
                }
                if t.due_ms.is_some_and(|d| d < now_ms) {
                    c.past_sla += 1;
                    report.overdue.push(t.clone());
                }
            }
            HumanTaskState::Done => c.awaiting_verification += 1,
            HumanTaskState::Verified => c.verified += 1,
            HumanTaskState::Cancelled => {}
        }
    }
    report.overdue.sort_by_key(|t| t.due_ms);
    report
}

/// `roster report tasks` as text.
pub fn render_task_report(r: &TaskReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>9} {:>8} {:>10} {:>9}",
        "connection", "open", "past SLA", "flagged", "to verify", "verified"
    );
    for (c, n) in &r.by_connection {
        let _ = writeln!(
            out,
            "{c:<20} {:>6} {:>9} {:>8} {:>10} {:>9}",
            n.open, n.past_sla, n.flagged, n.awaiting_verification, n.verified
        );
    }
    if !r.overdue.is_empty() {
        let _ = writeln!(out, "\npast their SLA, most overdue first:");
        for t in &r.overdue {
            let hours = t.due_ms.map(|d| (r.at_ms - d) / 3_600_000).unwrap_or(0);
            let _ = writeln!(
                out,
                "  {}  {} ({} h overdue){}",
                t.id,
                t.title,
                hours,
                if t.flagged { " [flagged]" } else { "" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: HumanTaskState, due: i64, flagged: bool) -> HumanTask {
        HumanTask {
            id: id.into(),
            dedupe_key: id.into(),
            connection: "spendesk".into(),
            kind: "deactivate".into(),
            subject_email: format!("{id}@acme.example"),
            employee_id: None,
            account_key: None,
            plan_id: None,
            action_idx: None,
            title: format!("Deactivate {id}"),
            checklist: vec![],
            assignee: None,
            state,
            flagged,
            note: None,
            evidence: None,
            due_ms: Some(due),
            reminded_ms: None,
            escalated_ms: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn tasks_past_their_sla_are_counted_and_listed_most_overdue_first() {
        let now = 100 * 3_600_000;
        let tasks = vec![
            task("a", HumanTaskState::Open, now - 3_600_000, false),
            task("b", HumanTaskState::Reopened, now - 10 * 3_600_000, true),
            task("c", HumanTaskState::Open, now + 3_600_000, false),
            task("d", HumanTaskState::Done, now - 3_600_000, false),
            task("e", HumanTaskState::Verified, now - 3_600_000, false),
        ];
        let r = task_report(&tasks, now);
        let c = &r.by_connection["spendesk"];
        assert_eq!(
            (
                c.open,
                c.past_sla,
                c.flagged,
                c.awaiting_verification,
                c.verified
            ),
            (3, 2, 1, 1, 1)
        );
        let ids: Vec<&str> = r.overdue.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, vec!["b", "a"]);
        let text = render_task_report(&r);
        assert!(
            text.contains("b  Deactivate b (10 h overdue) [flagged]"),
            "{text}"
        );
    }
}
