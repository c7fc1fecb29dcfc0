//! Ending an offboarded person's identity-provider sessions, first.
//!
//! Closing app accounts does not stop a person who is still signed in to
//! the IdP: SSO-only apps and apps that create accounts on first sign-in
//! (JIT) keep admitting them until the IdP session ends. So an offboarding
//! ([`crate::Roster::offboard`]) revokes the person's sessions (and, where
//! the IdP can, the tokens it issued them) in every source that lists
//! them, **before** any app account is closed.
//!
//! # Who and where
//!
//! * Only the one person an authenticated principal offboards, through
//!   `Roster::offboard`. Reconciliation never revokes, not even for a
//!   person an IdP reports as gone: a source that says "left" is data
//!   that flows through the guards into a reviewable plan, and a revoked
//!   session cannot be undone. A dry run (`preview_offboard`) lists what
//!   would be revoked and makes no request.
//! * In each source whose last read listed the person: the id that source
//!   knows them by is kept as the attribute `idp_id.<source>` (e.g.
//!   `idp_id.source.okta`) by the import ([`IDP_ID_PREFIX`]), so a person
//!   several IdPs list is revoked in each.
//! * Only in a source configured to (`[sources.<name>] revoke_sessions =
//!   true`, off by default: it needs a write permission, which README
//!   names per IdP). A source that lists the person but may not revoke is
//!   reported as such, so nobody mistakes "not asked" for "done".
//!
//! # Failure is loud, and does not stop the offboarding
//!
//! Each call goes through the source's rate budget and is retried under
//! the engine's one retry policy (`ExecutorOptions::retry`); revoking is
//! idempotent, so a re-sent call is harmless. A revocation that still
//! fails is returned as [`RevocationOutcome::Failed`], audited
//! (`sessions.revoked` with the outcome), and opens a human task held by
//! the principal who offboarded (its dedupe key names the source and the
//! IdP id), so it shows among the person's remaining access until someone
//! ends the sessions by hand. The offboarding goes on closing accounts:
//! taking access away is the goal, and a closed account is not undone by
//! a failed sign-out.

use roster_connectors::retry::Next;
use roster_core::{ConnectionId, Person};
use roster_store::{AuditKind, HumanTask, HumanTaskState};
use serde::Serialize;
use serde_json::json;

use crate::config::IDP_SOURCE;
use crate::engine::{Engine, EngineError, ms};

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
    /// may revoke (module docs). Only `Roster::offboard` calls this.
    pub(crate) async fn revoke_sessions(
        &self,
        actor: &str,
        person: &Person,
        reason: &str,
    ) -> Result<Vec<Revocation>, EngineError> {
        let mut out = Vec::new();
        for mut r in self.planned_revocations(person) {
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
