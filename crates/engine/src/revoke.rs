//! Ending a leaver's identity-provider sessions, first.
//!
//! Closing app accounts does not stop a person who is still signed in to
//! the IdP: SSO-only apps and apps that create accounts on first sign-in
//! (JIT) keep admitting them until the IdP session ends. So roster revokes
//! a leaver's sessions (and, where the IdP can, the tokens it issued them)
//! in every source that lists them, **before** any app account of theirs
//! is closed.
//!
//! # Who and when
//!
//! * **An offboarding** ([`crate::Roster::offboard`]): the one person an
//!   authenticated principal offboards, first thing, whatever their plan
//!   holds. A dry run (`preview_offboard`) lists what would be revoked and
//!   makes no request.
//! * **A leaver's approved removal**: carrying out a plan
//!   ([`Engine::enqueue`](crate::Engine), behind `Roster::apply`,
//!   `Roster::enqueue` and the service's runs) first revokes the sessions
//!   of each person with a leaver's removal (`Cause::Left`: terminated in
//!   HR or an IdP, or past their end date) that runs now. So the guards
//!   hold the revocation exactly as they hold the removal: a source change
//!   or an incomplete read withholds the removal and no session is touched;
//!   a removal waiting for approval revokes nothing until it is approved;
//!   a person who merely lost a rule's grant, or an orphan, is never
//!   revoked. A revoked session cannot be undone, so nothing cheaper than
//!   an approved leaver's removal triggers one. `roster plan show` lists
//!   what a plan would revoke ([`crate::Roster::planned_leaver_revocations`]).
//!   A leaver with no account left to close is not revoked by a plan
//!   (nothing of theirs runs); `roster offboard` revokes them.
//! * In each source whose last read listed the person: the id that source
//!   knows them by is kept as the attribute `idp_id.<source>` (e.g.
//!   `idp_id.source.okta`) by the import ([`IDP_ID_PREFIX`]), so a person
//!   several IdPs list is revoked in each.
//! * Only in a source configured to (`[sources.<name>] revoke_sessions =
//!   true`, off by default: it needs a write permission, which README
//!   names per IdP). A source that lists the person but may not revoke is
//!   reported as such by an offboarding, so nobody mistakes "not asked"
//!   for "done"; a plan simply does not ask it.
//!
//! # Failure is loud, and does not stop the removal
//!
//! Each call goes through the source's rate budget and is retried under
//! the engine's one retry policy (`ExecutorOptions::retry`); revoking is
//! idempotent, so a re-sent call is harmless. A revocation that still
//! fails is returned as [`RevocationOutcome::Failed`], audited
//! (`sessions.revoked` with the outcome), and opens a human task held by
//! the principal who offboarded or applied (its dedupe key names the
//! source and the IdP id), so it shows among the person's remaining access
//! until someone ends the sessions by hand. Closing accounts goes on:
//! taking access away is the goal, and a closed account is not undone by
//! a failed sign-out.

use std::collections::BTreeSet;

use roster_connectors::retry::Next;
use roster_core::plan::Cause;
use roster_core::{ConnectionId, Person};
use roster_store::{ActionState, AuditKind, HumanTask, HumanTaskState};
use serde::Serialize;
use serde_json::json;

use crate::approval::Approved;
use crate::config::IDP_SOURCE;
use crate::engine::{Engine, EngineError, ms};
use crate::planning::PersonRef;

/// The person attribute prefix that holds a source's id for them:
/// `idp_id.<source id>`.
pub const IDP_ID_PREFIX: &str = "idp_id.";

/// What happened to one person's sessions in one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RevocationOutcome {
    /// The IdP confirmed it.
    Revoked,
    /// The IdP refused, or never answered, after the retries the policy
    /// allows: the sessions may still be live.
    Failed { error: String },
    /// The source lists the person but is not configured to revoke
    /// (`revoke_sessions = false`): nothing was asked.
    NotEnabled,
    /// A dry run: this would be revoked.
    WouldRevoke,
}

/// One source's revocation for one person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// The source (`source.okta`).
    pub source: ConnectionId,
    /// Its kind (`okta`, `entra`, `google`, `onelogin`).
    pub kind: String,
    /// The IdP's id of the person.
    pub idp_id: String,
    #[serde(flatten)]
    pub outcome: RevocationOutcome,
    /// Requests made (0 when none was).
    pub attempts: u32,
    /// The human task opened for a failure.
    pub task: Option<String>,
}

impl Revocation {
    /// The sessions may still be live although they were to be ended.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, RevocationOutcome::Failed { .. })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let what = format!("{} ({}) user {}", self.source, self.kind, self.idp_id);
        match &self.outcome {
            RevocationOutcome::Revoked => format!("sessions revoked in {what}"),
            RevocationOutcome::Failed { error } => format!(
                "SESSIONS NOT REVOKED in {what}: {error}{}",
                self.task
                    .as_deref()
                    .map(|t| format!(" (task {t})"))
                    .unwrap_or_default()
            ),
            RevocationOutcome::NotEnabled => format!(
                "sessions not revoked in {what}: revoke_sessions is off for this source (end them in the IdP's console, or enable it)"
            ),
            RevocationOutcome::WouldRevoke => format!("would revoke sessions in {what}"),
        }
    }
}

/// The id `person` has in `source`, from the last import: the
/// per-source attribute, else the single `idp_id` when the person came
/// from that source (snapshots imported before per-source ids).
pub fn idp_id_in(person: &Person, source: &ConnectionId) -> Option<String> {
    person
        .attributes
        .get(&format!("{IDP_ID_PREFIX}{source}"))
        .cloned()
        .or_else(|| {
            (person.attributes.get(IDP_SOURCE).map(String::as_str) == Some(source.as_str()))
                .then(|| person.attributes.get("idp_id").cloned())
                .flatten()
        })
        .filter(|id| !id.trim().is_empty())
}

impl Engine {
    /// What an offboarding of `person` would revoke, source by source;
    /// makes no request and records nothing.
    pub fn planned_revocations(&self, person: &Person) -> Vec<Revocation> {
        self.sources
            .iter()
            .filter_map(|w| {
                let id = idp_id_in(person, w.source.id())?;
                Some(Revocation {
                    source: w.source.id().clone(),
                    kind: w.source.capabilities().kind.to_string(),
                    idp_id: id,
                    outcome: if w.revoke_sessions {
                        RevocationOutcome::WouldRevoke
                    } else {
                        RevocationOutcome::NotEnabled
                    },
                    attempts: 0,
                    task: None,
                })
            })
            .collect()
    }

    /// Revokes `person`'s sessions in every source that lists them and
    /// may revoke (module docs): an offboarding, first. Sources that list
    /// them but may not revoke are returned as `NotEnabled`.
    pub(crate) async fn revoke_sessions(
        &self,
        actor: &str,
        person: &Person,
        reason: &str,
    ) -> Result<Vec<Revocation>, EngineError> {
        self.revoke(actor, person, reason, self.planned_revocations(person))
            .await
    }

    /// The leavers whose sessions carrying out `approved` ends: each
    /// person with a leaver's removal (`Cause::Left`) that runs now (not
    /// held for approval, not done already), whose sessions this request
    /// has not ended yet. Nobody when no source may revoke.
    pub(crate) async fn leavers_to_revoke(
        &self,
        approved: &Approved,
    ) -> Result<Vec<Person>, EngineError> {
        if !self.sources.iter().any(|w| w.revoke_sessions) {
            return Ok(Vec::new());
        }
        let held = approved.held();
        let mut leavers = BTreeSet::new();
        for a in self.store.actions(approved.plan_id()).await? {
            let runs_now = matches!(a.state, ActionState::Pending | ActionState::Failed)
                && !held.contains(&a.index);
            if runs_now
                && a.action.cause == Cause::Left
                && a.action.operation.is_deprovision()
                && let Some(e) = a
                    .action
                    .employee_id
                    .filter(|e| !approved.sessions_revoked_for(e))
            {
                leavers.insert(e);
            }
        }
        let mut people = Vec::new();
        for e in leavers {
            if let Some(p) = self.find_person(&PersonRef::EmployeeId(e)).await? {
                people.push(p);
            }
        }
        Ok(people)
    }

    /// What carrying out `plan` would revoke (`WouldRevoke`), for each
    /// leaver it takes access from, in the sources that may, whether or
    /// not their removals wait for approval; asks nothing. For a plan's
    /// review (`roster plan show`).
    pub(crate) async fn planned_leaver_revocations(
        &self,
        plan: &roster_core::Plan,
    ) -> Result<Vec<Revocation>, EngineError> {
        if !self.sources.iter().any(|w| w.revoke_sessions) {
            return Ok(Vec::new());
        }
        let leavers: BTreeSet<_> = plan
            .actions
            .iter()
            .filter(|a| a.cause == Cause::Left && a.operation.is_deprovision())
            .filter_map(|a| a.employee_id.clone())
            .collect();
        let mut out = Vec::new();
        for e in leavers {
            if let Some(p) = self.find_person(&PersonRef::EmployeeId(e)).await? {
                out.extend(
                    self.planned_revocations(&p)
                        .into_iter()
                        .filter(|r| r.outcome == RevocationOutcome::WouldRevoke),
                );
            }
        }
        Ok(out)
    }

    /// Ends the sessions of the leavers carrying out `approved` takes
    /// access from, before any of their accounts is closed (module docs),
    /// in the sources that may revoke.
    pub(crate) async fn revoke_for_leavers(
        &self,
        approved: &Approved,
    ) -> Result<Vec<Revocation>, EngineError> {
        let actor = approved.by().actor();
        let reason = format!("leaver in plan {}", approved.plan_id());
        let mut out = Vec::new();
        for person in self.leavers_to_revoke(approved).await? {
            let enabled = self
                .planned_revocations(&person)
                .into_iter()
                .filter(|r| r.outcome == RevocationOutcome::WouldRevoke)
                .collect();
            out.extend(self.revoke(&actor, &person, &reason, enabled).await?);
        }
        Ok(out)
    }

    /// Asks each source in `planned` to revoke (those `NotEnabled` are
    /// passed through untouched), retried, audited, a task on failure.
    async fn revoke(
        &self,
        actor: &str,
        person: &Person,
        reason: &str,
        planned: Vec<Revocation>,
    ) -> Result<Vec<Revocation>, EngineError> {
        let mut out = Vec::new();
        for mut r in planned {
            if r.outcome == RevocationOutcome::NotEnabled {
                out.push(r);
                continue;
            }
            let Some(w) = self.sources.iter().find(|w| w.source.id() == &r.source) else {
                continue;
            };
            let policy = &self.executor.retry;
            let mut attempt = 0u32;
            r.outcome = loop {
                attempt += 1;
                roster_connectors::driver::wait_turn(&*w.budget, &mut |_| {}).await;
                let err = match w.source.revoke_sessions(&r.idp_id).await {
                    Ok(()) => break RevocationOutcome::Revoked,
                    Err(e) => e,
                };
                tracing::warn!(source = %r.source, attempt, error = %err, "revoking sessions failed");
                let next = if err.is_retryable() {
                    policy.next(attempt, policy.max_attempts, err.retry_after())
                } else {
                    Next::GiveUp(roster_connectors::retry::GiveUp::NotRetryable)
                };
                match next {
                    Next::Retry { delay, hold } => {
                        if let Some(h) = hold {
                            w.budget.hold_for(h).await;
                        }
                        tokio::time::sleep(delay).await;
                    }
                    Next::GiveUp(why) => {
                        break RevocationOutcome::Failed {
                            error: why.describe(&err),
                        };
                    }
                }
            };
            r.attempts = attempt;
            if let RevocationOutcome::Failed { error } = &r.outcome {
                r.task = Some(self.open_revocation_task(actor, person, &r, error).await?);
            }
            self.audit_as(
                actor,
                AuditKind::SessionsRevoked,
                person.employee_id.as_str(),
                json!({
                    "email": person.email.to_string(),
                    "source": r.source.as_str(),
                    "kind": r.kind,
                    "idp_id": r.idp_id,
                    "outcome": if r.failed() { "failed" } else { "revoked" },
                    "error": match &r.outcome {
                        RevocationOutcome::Failed { error } => Some(error.clone()),
                        _ => None,
                    },
                    "attempts": r.attempts,
                    "task": r.task,
                    "reason": reason,
                }),
            )
            .await?;
            out.push(r);
        }
        Ok(out)
    }

    /// A failed revocation becomes work for the person who offboarded.
    async fn open_revocation_task(
        &self,
        actor: &str,
        person: &Person,
        r: &Revocation,
        error: &str,
    ) -> Result<String, EngineError> {
        let now = ms(self.now());
        let console = match r.kind.as_str() {
            "okta" => {
                "Okta Admin Console → Directory → People → the person → More Actions → Clear User Sessions (include OAuth tokens)"
            }
            "entra" => "Entra admin center → Users → the person → Revoke sessions",
            "google" => {
                "Google Admin console → Users → the person → Security → Sign-in cookies → Reset"
            }
            "onelogin" => {
                "OneLogin Administration → Users → the person → More Actions → Log User Out"
            }
            _ => "the identity provider's admin console: end the person's sessions",
        };
        let task = HumanTask {
            id: format!("T-revoke-{}-{}", r.source.as_str().replace('.', "-"), now),
            dedupe_key: format!("revoke-sessions:{}:{}", r.source, r.idp_id),
            connection: r.source.to_string(),
            kind: "revoke-sessions".into(),
            subject_email: person.email.to_string(),
            employee_id: Some(person.employee_id.to_string()),
            account_key: Some(r.idp_id.clone()),
            plan_id: None,
            action_idx: None,
            title: format!(
                "End {}'s sessions in {} by hand: roster could not",
                person.email, r.source
            ),
            checklist: vec![
                console.to_string(),
                format!("Then: roster task done ID --evidence … (the IdP's audit entry)"),
            ],
            assignee: Some(actor.to_string()),
            state: HumanTaskState::Open,
            flagged: true,
            note: Some(error.to_string()),
            evidence: None,
            due_ms: Some(now + 3_600_000),
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
        Ok(task.id)
    }
}
