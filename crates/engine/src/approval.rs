//! Approvals, and the one check that lets a plan be applied.
//!
//! Approvals are bound to a plan's hash and recorded with the principal
//! that decided ([`Engine::decide`]); the policy says who may decide
//! (separation of duties, app owners: [`roster_core::principal`]).
//!
//! **Approval is a type.** [`Approved`] is the only thing apply and
//! enqueue accept, and only [`Engine::approve_for_apply`] makes one: its
//! fields are private to this module. The check binds the plan's hash,
//! marks rejected actions skipped, leaves actions still waiting for a
//! person out (held: no task, never run, while the rest of the plan runs,
//! so a held removal never delays a leaver's deactivation), refuses a plan
//! that has nothing left to do ("already applied"), and checks freshness:
//!
//! * A plan stored earlier (`roster apply ID`) is re-read: re-reading its
//!   connections must give the state it was computed from, or it is stale.
//! * A plan this process computed moments ago from a fresh read carries a
//!   [`JustPlanned`] proof (only planning makes one) and is not re-read.
//! * A plan whose apply started is resumed, not re-judged: its own done
//!   actions changed what a re-read would see. An interrupted task comes
//!   back *uncertain* and reads the app before it acts (see
//!   [`crate::executor`]); actions approved after the rest ran run only if
//!   a fresh, unstored plan still calls for them.

use std::collections::{BTreeMap, BTreeSet};

use roster_connectors::driver::Progress;
use roster_core::plan::observed_digest;
use roster_core::principal::may_decide;
use roster_core::{ConnectionId, EmployeeId, Principal, PrincipalKind};
use roster_store::{ActionState, ApprovalRecord, AuditKind, Decision, PlanId, StoredPlan};
use serde_json::json;

use crate::engine::{Engine, EngineError, ms};
use crate::planning::PlanScope;

/// Where a plan's approvals stand.
#[derive(Clone, Debug, Default)]
pub struct ApprovalStatus {
    /// Actions that need approval and have none, with why they need it.
    pub waiting: BTreeMap<usize, String>,
    pub approved: BTreeSet<usize>,
    pub rejected: BTreeSet<usize>,
}

/// Proof that a plan was computed by this process from a read moments
/// ago, so [`Engine::approve_for_apply`] need not read the apps again.
/// Only planning makes one.
#[derive(Debug)]
pub struct JustPlanned {
    pub(crate) plan_id: PlanId,
    pub(crate) hash: String,
}

/// How the check learns that a plan still fits the apps.
#[derive(Debug)]
pub enum Freshness {
    /// Read the plan's connections again and compare.
    Reread,
    /// The plan was computed just now (see [`JustPlanned`]).
    JustPlanned(JustPlanned),
}

/// A plan that passed the one check: the only value apply and enqueue
/// accept. Its fields are private; nothing outside this module makes one.
#[derive(Debug)]
pub struct Approved {
    plan_id: PlanId,
    hash: String,
    /// Actions waiting for approval: left out of the queue.
    held: BTreeSet<usize>,
    /// Who asked for it to be carried out.
    by: Principal,
    /// People whose IdP sessions this request has already ended (an
    /// offboarding revokes first): carrying out the plan does not ask the
    /// IdPs again (see [`crate::revoke`]).
    sessions_revoked: BTreeSet<EmployeeId>,
}

impl Approved {
    /// Marks `person`'s sessions as already ended by the request that
    /// carries this plan out.
    pub(crate) fn with_sessions_revoked(mut self, person: EmployeeId) -> Approved {
        self.sessions_revoked.insert(person);
        self
    }

    /// Whether this request has already ended `person`'s sessions.
    pub(crate) fn sessions_revoked_for(&self, person: &EmployeeId) -> bool {
        self.sessions_revoked.contains(person)
    }

    pub fn plan_id(&self) -> &PlanId {
        &self.plan_id
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Actions still waiting for a person: not run.
    pub fn held(&self) -> &BTreeSet<usize> {
        &self.held
    }

    pub fn by(&self) -> &Principal {
        &self.by
    }
}

impl Engine {
    pub(crate) async fn stored_plan(&self, plan_id: &PlanId) -> Result<StoredPlan, EngineError> {
        self.store
            .plan(plan_id)
            .await?
            .ok_or_else(|| EngineError::PlanNotFound(plan_id.to_string()))
    }

    /// Records `by`'s approval or rejection of a plan (all its actions that
    /// need approval, or one), bound to the plan's hash, after checking the
    /// policy lets them decide.
    pub(crate) async fn decide(
        &self,
        plan_id: &PlanId,
        action: Option<usize>,
        decision: Decision,
        by: &Principal,
        reason: &str,
    ) -> Result<ApprovalStatus, EngineError> {
        self.decide_judged(plan_id, action, decision, by, reason, false)
            .await
    }

    /// [`Engine::decide`]. With `own_request` (an explicit, authenticated
    /// request such as an offboarding, whose plan `by` proposed by asking),
    /// separation of duties does not apply to a person, and still applies
    /// to an agent: an agent's request is never its own approval. App
    /// owners are always judged.
    pub(crate) async fn decide_judged(
        &self,
        plan_id: &PlanId,
        action: Option<usize>,
        decision: Decision,
        by: &Principal,
        reason: &str,
        own_request: bool,
    ) -> Result<ApprovalStatus, EngineError> {
        // An AI agent decides nothing, whatever the policy says (its token
        // never carries the approve scope either): defense in depth.
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(format!(
                "{by} is an AI agent: an agent never approves or rejects; a person decides; nothing was recorded"
            )));
        }
        let stored = self.stored_plan(plan_id).await?;
        if let Some(i) = action
            && i >= stored.plan.actions.len()
        {
            return Err(EngineError::Refused(format!(
                "plan {plan_id} has {} actions; there is no action {i}",
                stored.plan.actions.len()
            )));
        }
        let states: BTreeMap<usize, ActionState> = self
            .store
            .actions(plan_id)
            .await?
            .into_iter()
            .map(|a| (a.index, a.state))
            .collect();
        // The actions this decision is about: one, or every action of the
        // plan that needs a decision.
        let about: Vec<usize> = match action {
            Some(i) => vec![i],
            None => stored.plan.approvals.keys().copied().collect(),
        };
        if decision == Decision::Rejected {
            let done: Vec<usize> = about
                .iter()
                .copied()
                .filter(|i| states.get(i) == Some(&ActionState::Done))
                .collect();
            if !done.is_empty() && done.len() == about.len() {
                return Err(EngineError::AlreadyApplied {
                    plan: plan_id.to_string(),
                    detail: format!(
                        "action{} {} already ran; rejecting now changes nothing (a new plan can undo it)",
                        if done.len() == 1 { "" } else { "s" },
                        list(&done)
                    ),
                });
            }
        }
        if let Some(i) = action
            && decision == Decision::Approved
            && states.get(&i) == Some(&ActionState::Done)
        {
            return Err(EngineError::AlreadyApplied {
                plan: plan_id.to_string(),
                detail: format!("action {i} already ran; there is nothing to approve"),
            });
        }
        let approving = decision == Decision::Approved;
        let proposer = match own_request && by.kind != PrincipalKind::Agent {
            true => None,
            false => stored.proposed_by.as_deref(),
        };
        for i in &about {
            let connection = &stored.plan.actions[*i].connection;
            may_decide(&self.policy, by, proposer, connection, approving)
                .map_err(|e| EngineError::NotPermitted(format!("{e}; nothing was recorded")))?;
        }
        let actor = by.actor();
        self.store
            .record_approval(&ApprovalRecord {
                plan_id: plan_id.clone(),
                plan_hash: stored.hash.clone(),
                action_idx: action,
                decision,
                actor: actor.clone(),
                reason: reason.to_string(),
                at_ms: ms(self.now()),
            })
            .await?;
        let kind = if approving {
            AuditKind::PlanApproved
        } else {
            AuditKind::PlanRejected
        };
        self.audit_as(
            &actor,
            kind,
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
        Ok(approval_status_of(&stored.plan, &stored.hash, &records))
    }

    /// The one check (module docs): returns the [`Approved`] value apply
    /// and enqueue need, or says why the plan may not be carried out.
    pub(crate) async fn approve_for_apply(
        &self,
        plan_id: &PlanId,
        freshness: Freshness,
        by: &Principal,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<Approved, EngineError> {
        // An AI agent never carries out a plan (its token never carries
        // the apply scope either): defense in depth.
        if by.kind == PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(format!(
                "{by} is an AI agent: an agent never carries out a plan; a person does (roster apply {plan_id})"
            )));
        }
        let stored = self.stored_plan(plan_id).await?;
        let mut status = self.approval_status(plan_id).await?;
        // A plan an agent proposed runs nothing a person has not approved:
        // every action of it waits (it was stored so; this holds even for a
        // plan stored otherwise), and while no person has approved any of
        // it, nothing of it may run at all.
        let agent_proposer = stored
            .proposed_by
            .as_deref()
            .filter(|p| crate::agent_rules::is_agent(p));
        if let Some(proposer) = agent_proposer {
            for i in 0..stored.plan.actions.len() {
                if !status.approved.contains(&i) && !status.rejected.contains(&i) {
                    status.waiting.entry(i).or_insert_with(|| {
                        crate::agent_rules::proposer_line(proposer) + ": a person must approve it"
                    });
                }
            }
            if status.approved.is_empty() && !stored.plan.actions.is_empty() {
                return Err(EngineError::NotPermitted(format!(
                    "plan {plan_id} was {} and no person has approved any of its actions; \
                     nothing of it runs until one does: roster plans show {plan_id}, then roster approve {plan_id}",
                    crate::agent_rules::proposer_line(proposer)
                )));
            }
        }
        if !status.waiting.is_empty() {
            tracing::info!(
                plan = %plan_id,
                held = status.waiting.len(),
                "actions waiting for approval are held; the rest of the plan may run"
            );
        }
        let actions = self.store.actions(plan_id).await?;
        for i in &status.rejected {
            if actions
                .get(*i)
                .is_some_and(|a| a.state == ActionState::Pending)
            {
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
        }
        let approved = |held: BTreeSet<usize>| Approved {
            plan_id: plan_id.clone(),
            hash: stored.hash.clone(),
            held,
            by: by.clone(),
            sessions_revoked: BTreeSet::new(),
        };
        let held: BTreeSet<usize> = status.waiting.keys().copied().collect();
        let started = self.store.task_counts(plan_id).await?;
        let has_started = started.values().any(|n| *n > 0) || stored.applied_ms.is_some();
        // Nothing left to do: every action ran, was skipped, or went to a
        // person, and none waits for approval.
        let open = actions
            .iter()
            .filter(|a| {
                matches!(
                    a.state,
                    ActionState::Pending | ActionState::Running | ActionState::Failed
                ) && !status.rejected.contains(&a.index)
            })
            .count();
        if has_started && open == 0 {
            let done = actions
                .iter()
                .filter(|a| a.state == ActionState::Done)
                .count();
            return Err(EngineError::AlreadyApplied {
                plan: plan_id.to_string(),
                detail: format!(
                    "{done} of its {} action(s) ran and none is left to do; run `roster plan` for a new plan",
                    actions.len()
                ),
            });
        }
        if has_started {
            tracing::info!(
                plan = %plan_id,
                tasks = ?started,
                "the plan has started applying; resuming its unfinished actions"
            );
            self.recheck_approved_late(plan_id, &stored, &status, progress)
                .await?;
            return Ok(approved(held));
        }
        match freshness {
            Freshness::JustPlanned(proof) => {
                if proof.plan_id != *plan_id || proof.hash != stored.hash {
                    return Err(EngineError::Refused(format!(
                        "the proof of a fresh plan is for plan {}, not {plan_id}",
                        proof.plan_id
                    )));
                }
            }
            Freshness::Reread => {
                // Freshness: re-read what the plan saw and compare digests.
                let connections: BTreeSet<ConnectionId> =
                    stored.plan.classification.keys().cloned().collect();
                let outcomes = self.read(progress).await?;
                for o in &outcomes {
                    if connections.contains(&o.connection)
                        && let Some(e) = &o.error
                    {
                        return Err(EngineError::Stale {
                            plan: plan_id.to_string(),
                            detail: format!(
                                "{} cannot be re-read to check the plan is still current ({e})",
                                o.connection
                            ),
                        });
                    }
                }
                // A proposal about one person saw that person's accounts:
                // compare those (see crate::agent_rules); any other plan saw
                // every account of its connections.
                let now_digest = match self.proposal_observed_digest(plan_id).await? {
                    Some(digest) => digest,
                    None => {
                        let mut now_observed = self.governed_observations(None).await?;
                        now_observed.retain(|o| connections.contains(&o.connection));
                        observed_digest(&now_observed)
                    }
                };
                if now_digest != stored.plan.observed_digest {
                    return Err(EngineError::Stale {
                        plan: plan_id.to_string(),
                        detail: "the apps changed since it was computed".into(),
                    });
                }
            }
        }
        Ok(approved(held))
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
        let fresh = match self.proposal_fresh_plan(plan_id).await? {
            Some(plan) => plan,
            None => self.compute_plan(&PlanScope::Connections(readable)).await?,
        };
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
}

fn list(indexes: &[usize]) -> String {
    indexes
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which actions of `plan` (stored with content hash `hash`) still wait
/// for a person, given its approval records (see
/// [`Engine::approval_status`]).
pub(crate) fn approval_status_of(
    plan: &roster_core::Plan,
    hash: &str,
    records: &[roster_store::ApprovalRecord],
) -> ApprovalStatus {
    let mut status = ApprovalStatus::default();
    for (i, why) in &plan.approvals {
        match decision_on(hash, records, *i) {
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
    status
}

/// Why action `index` of `plan` still waits for approval, or `None` when
/// it needs none or has a decision: [`approval_status_of`] for one action,
/// without going over the whole plan (a person's page asks about a few
/// actions of plans that can hold tens of thousands).
pub(crate) fn waiting_reason<'p>(
    plan: &'p roster_core::Plan,
    hash: &str,
    records: &[roster_store::ApprovalRecord],
    index: usize,
) -> Option<&'p str> {
    let why = plan.approvals.get(&index)?;
    decision_on(hash, records, index)
        .is_none()
        .then_some(why.as_str())
}

/// The decision that holds for action `index` of the plan whose content
/// hash is `hash`: the latest about this action, where a decision about the
/// whole plan covers every action that needs one. `records` are the plan's
/// own; those bound to another content hash count for nothing.
fn decision_on(
    hash: &str,
    records: &[roster_store::ApprovalRecord],
    index: usize,
) -> Option<Decision> {
    records
        .iter()
        .filter(|r| r.plan_hash == hash && (r.action_idx == Some(index) || r.action_idx.is_none()))
        .max_by_key(|r| (r.at_ms, r.action_idx.is_some()))
        .map(|r| r.decision)
}
