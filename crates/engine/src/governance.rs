//! Governance around a plan: approvals bound to its hash, the freshness
//! check before apply, and the match queue.
//!
//! `roster apply` refuses a plan whose observed state has changed since it
//! was computed. An action needing approval that no one approved is held:
//! it gets no task and never runs, while the rest of the plan does (a
//! held removal never delays a leaver's deactivation). Approved later, it
//! runs on the next `apply` if a fresh read and plan still call for it.
//! Rejected actions are marked skipped and never run.
//!
//! The freshness check applies to a plan that has not started applying.
//! Once its actions are queued as tasks, a re-read shows the effects of its
//! own finished actions, so the digest can no longer match; an apply after
//! a crash (or after `apply` returned with work still queued) resumes the
//! plan's unfinished tasks instead. They stay safe without the digest: an
//! interrupted task comes back *uncertain* and reads the app before it acts
//! (see [`crate::executor`]), and approvals are still required.
//!
//! Also here: the kill switch ([`Engine::pause_writes`]), a person's stop
//! on every write, audited with who pulled it.

use std::collections::{BTreeMap, BTreeSet};

use roster_connectors::driver::Progress;
use roster_core::plan::observed_digest;
use roster_core::{ConnectionId, FindingKind, Observed, Resolution};
use roster_store::{ActionState, ApprovalRecord, Decision, MatchResolution, PlanId, StoredPlan};
use serde_json::json;

use crate::run::{Engine, EngineError, ms};

/// Where a plan's approvals stand.
#[derive(Clone, Debug, Default)]
pub struct ApprovalStatus {
    /// Actions that need approval and have none, with why they need it.
    pub waiting: BTreeMap<usize, String>,
    pub approved: BTreeSet<usize>,
    pub rejected: BTreeSet<usize>,
}

/// One entry of the match queue.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueuedMatch {
    pub connection: ConnectionId,
    pub account: String,
    pub email: Option<String>,
    pub kind: &'static str,
    pub detail: String,
}

impl Engine {
    /// The stored observations of governed connections (those the policy
    /// speaks about), optionally only those in `readable`.
    pub async fn governed_observations(
        &self,
        readable: Option<&[ConnectionId]>,
    ) -> Result<Vec<Observed>, EngineError> {
        let governed = self.policy.governed_connections();
        let mut observed = self.store.all_observed().await?;
        observed.retain(|o| {
            governed.contains(&o.connection) && readable.is_none_or(|ok| ok.contains(&o.connection))
        });
        Ok(observed)
    }

    pub(crate) async fn resolutions(&self) -> Result<Vec<Resolution>, EngineError> {
        Ok(self
            .store
            .match_resolutions()
            .await?
            .into_iter()
            .map(|r| Resolution {
                connection: r.connection,
                account: r.account,
                employee_id: r.employee_id,
            })
            .collect())
    }

    async fn stored_plan(&self, plan_id: &PlanId) -> Result<StoredPlan, EngineError> {
        self.store
            .plan(plan_id)
            .await?
            .ok_or_else(|| EngineError::PlanNotFound(plan_id.to_string()))
    }

    /// Records an approval or rejection of a plan (all its actions that
    /// need approval, or one), bound to the plan's hash.
    pub async fn decide(
        &self,
        plan_id: &PlanId,
        action: Option<usize>,
        decision: Decision,
        actor: &str,
        reason: &str,
    ) -> Result<ApprovalStatus, EngineError> {
        let stored = self.stored_plan(plan_id).await?;
        if let Some(i) = action
            && i >= stored.plan.actions.len()
        {
            return Err(EngineError::Refused(format!(
                "plan {plan_id} has {} actions; there is no action {i}",
                stored.plan.actions.len()
            )));
        }
        let now = ms(self.now());
        self.store
            .record_approval(&ApprovalRecord {
                plan_id: plan_id.clone(),
                plan_hash: stored.hash.clone(),
                action_idx: action,
                decision,
                actor: actor.to_string(),
                reason: reason.to_string(),
                at_ms: now,
            })
            .await?;
        self.audit_as(
            actor,
            &format!("plan.{}", decision.as_str()),
            plan_id.as_str(),
            json!({ "hash": stored.hash, "action": action, "reason": reason }),
        )
        .await?;
        self.approval_status(plan_id).await
    }

    /// Which actions still wait for a person.
    pub async fn approval_status(&self, plan_id: &PlanId) -> Result<ApprovalStatus, EngineError> {
        let stored = self.stored_plan(plan_id).await?;
        let records = self.store.approvals(plan_id).await?;
        let mut status = ApprovalStatus::default();
        for (i, why) in &stored.plan.approvals {
            // The latest decision about this action wins; a decision about
            // the whole plan covers every action that needs one.
            let decision = records
                .iter()
                .filter(|r| {
                    r.plan_hash == stored.hash
                        && (r.action_idx == Some(*i) || r.action_idx.is_none())
                })
                .max_by_key(|r| (r.at_ms, r.action_idx.is_some()))
                .map(|r| r.decision);
            match decision {
                Some(Decision::Approved) => {
                    status.approved.insert(*i);
                }
                Some(Decision::Rejected) => {
                    status.rejected.insert(*i);
                }
                None => {
                    status.waiting.insert(*i, why.clone());
                }
            }
        }
        Ok(status)
    }

    /// Checks that a plan may be applied now: every action needing approval
    /// is decided (rejected ones are marked skipped), and re-reading the
    /// plan's connections gives the state the plan was computed from.
    pub async fn ensure_applicable(&self, plan_id: &PlanId) -> Result<(), EngineError> {
        self.ensure_applicable_with_progress(plan_id, &mut |_, _| {})
            .await
    }

    /// [`Engine::ensure_applicable`], reporting the re-read's progress
    /// (waits for a rate window, retries).
    pub async fn ensure_applicable_with_progress(
        &self,
        plan_id: &PlanId,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<(), EngineError> {
        let stored = self.stored_plan(plan_id).await?;
        let status = self.approval_status(plan_id).await?;
        // Actions still waiting for approval do not block the rest: they
        // are left out of the queue (see `Engine::enqueue_plan`) and run
        // once approved, after a fresh read still wants them.
        if !status.waiting.is_empty() {
            tracing::info!(
                plan = %plan_id,
                held = status.waiting.len(),
                "actions waiting for approval are held; the rest of the plan may run"
            );
        }
        for i in &status.rejected {
            self.store
                .set_action_state(
                    plan_id,
                    *i,
                    ActionState::Skipped,
                    Some("rejected".into()),
                    ms(self.now()),
                )
                .await?;
        }
        // A plan whose apply started is resumed, not re-judged (module
        // docs): its own done actions changed what a re-read would see.
        let started = self.store.task_counts(plan_id).await?;
        if started.values().any(|n| *n > 0) {
            tracing::info!(
                plan = %plan_id,
                tasks = ?started,
                "the plan has started applying; resuming its unfinished actions"
            );
            return self
                .recheck_approved_late(plan_id, &stored, &status, progress)
                .await;
        }
        // Freshness: re-read what the plan saw and compare digests.
        let connections: BTreeSet<ConnectionId> =
            stored.plan.classification.keys().cloned().collect();
        let outcomes = self.read(progress).await?;
        for o in &outcomes {
            if connections.contains(&o.connection)
                && let Some(e) = &o.error
            {
                return Err(EngineError::Refused(format!(
                    "cannot re-read {} to check the plan is still current: {e}",
                    o.connection
                )));
            }
        }
        let mut now_observed = self.governed_observations(None).await?;
        now_observed.retain(|o| connections.contains(&o.connection));
        let digest = observed_digest(&now_observed);
        if digest != stored.plan.observed_digest {
            return Err(EngineError::Refused(format!(
                "plan {plan_id} is stale: the apps changed since it was computed; run `roster plan` again"
            )));
        }
        Ok(())
    }

    /// Actions approved after the rest of their plan ran were judged on
    /// the plan's read, which its own finished actions have since changed,
    /// so the plan's digest can no longer vouch for them. Each runs only if
    /// a fresh read and plan (not stored) still want the same operation on
    /// the same account; the others are skipped with the reason.
    async fn recheck_approved_late(
        &self,
        plan_id: &PlanId,
        stored: &StoredPlan,
        status: &ApprovalStatus,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<(), EngineError> {
        let queued: BTreeSet<usize> = self
            .store
            .tasks(&roster_store::TaskFilter {
                plan_id: Some(plan_id.clone()),
                ..Default::default()
            })
            .await?
            .iter()
            .map(|t| t.action_idx)
            .collect();
        let actions = self.store.actions(plan_id).await?;
        let late: Vec<usize> = actions
            .iter()
            .filter(|a| a.state == ActionState::Pending)
            .filter(|a| status.approved.contains(&a.index) && !queued.contains(&a.index))
            .map(|a| a.index)
            .collect();
        if late.is_empty() {
            return Ok(());
        }
        let outcomes = self.read(progress).await?;
        let readable: Vec<ConnectionId> = outcomes
            .iter()
            .filter(|o| o.error.is_none())
            .map(|o| o.connection.clone())
            .collect();
        let fresh = self.compute_plan(Some(&readable)).await?;
        let wanted: BTreeSet<String> = fresh.actions.iter().map(|a| a.key()).collect();
        for i in late {
            let a = &stored.plan.actions[i];
            if !wanted.contains(&a.key()) {
                self.store
                    .set_action_state(
                        plan_id,
                        i,
                        ActionState::Skipped,
                        Some(format!(
                            "approved after the rest of the plan ran, but a fresh read no longer calls for {} {} in {}; see the next plan",
                            a.operation, a.email, a.connection
                        )),
                        ms(self.now()),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The kill switch: stops every write to `connection` (`None`: to every
    /// connection) in every process sharing the store, until
    /// [`Engine::resume_writes`]. Batches already sent finish; nothing new
    /// is claimed. Reads and plans go on. Audited with `actor`. Returns
    /// false if that scope was already paused (the actor and reason are
    /// updated).
    pub async fn pause_writes(
        &self,
        connection: Option<&ConnectionId>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<bool, EngineError> {
        let now = ms(self.now());
        let new = self
            .store
            .pause_writes(connection, actor, reason, now)
            .await?;
        self.audit_as(
            actor,
            "connection.paused",
            connection.map_or("*", |c| c.as_str()),
            json!({ "reason": reason, "already_paused": !new }),
        )
        .await?;
        Ok(new)
    }

    /// Lifts a pause set by [`Engine::pause_writes`] for the same scope
    /// (`None` lifts the all-connections pause only). Audited with
    /// `actor`. Returns false if that scope was not paused.
    pub async fn resume_writes(
        &self,
        connection: Option<&ConnectionId>,
        actor: &str,
    ) -> Result<bool, EngineError> {
        let now = ms(self.now());
        let lifted = self.store.resume_writes(connection, now).await?;
        if lifted {
            self.audit_as(
                actor,
                "connection.resumed",
                connection.map_or("*", |c| c.as_str()),
                json!({}),
            )
            .await?;
        }
        Ok(lifted)
    }

    /// The match queue: accounts from the latest plan that roster would not
    /// link on its own, minus those already resolved.
    pub async fn match_queue(&self) -> Result<Vec<QueuedMatch>, EngineError> {
        let Some(latest) = self.store.latest_plan().await? else {
            return Ok(Vec::new());
        };
        let resolved: BTreeSet<(ConnectionId, String)> = self
            .store
            .match_resolutions()
            .await?
            .into_iter()
            .map(|r| (r.connection, r.account.to_string()))
            .collect();
        Ok(latest
            .plan
            .findings
            .iter()
            .filter(|f| matches!(f.kind, FindingKind::Ambiguous | FindingKind::Duplicate))
            .filter_map(|f| {
                let key = f.account.as_ref()?.to_string();
                (!resolved.contains(&(f.connection.clone(), key.clone()))).then(|| QueuedMatch {
                    connection: f.connection.clone(),
                    account: key,
                    email: f.email.as_ref().map(|e| e.to_string()),
                    kind: f.kind.as_str(),
                    detail: f.detail.clone(),
                })
            })
            .collect())
    }

    /// Resolves one queued match.
    pub async fn resolve_match(&self, resolution: MatchResolution) -> Result<(), EngineError> {
        if let Some(e) = &resolution.employee_id
            && self.store.person_by_employee_id(e).await?.is_none()
        {
            return Err(EngineError::Refused(format!(
                "no person with employee ID {e} in the source of truth"
            )));
        }
        self.store.resolve_match(&resolution).await?;
        self.audit_as(
            &resolution.actor,
            "match.resolved",
            &format!("{}:{}", resolution.connection, resolution.account),
            json!({
                "employee_id": resolution.employee_id.as_ref().map(|e| e.to_string()),
                "reason": resolution.reason,
            }),
        )
        .await?;
        Ok(())
    }
}
