//! Proposals: plans an AI agent (through MCP) or any caller with the
//! `propose` scope asks for. They are stored as proposed and never carried
//! out by the asking: a person approves them, and only then does
//! `roster apply` (or anyone's [`Roster::check`]) run what was approved.
//!
//! * [`Roster::propose_offboarding`]: one person's removals as if they had
//!   been terminated (the plan [`Roster::preview_offboard`] shows), stored.
//!   Unlike [`Roster::offboard`] it records no termination override, ends
//!   no session, reads no app and applies nothing.
//! * [`Roster::propose_reconcile`]: the plan the policy implies now for some
//!   connections or one person ([`PlanScope::Connections`],
//!   [`PlanScope::Person`]), from what roster last read, stored.
//!
//! A proposal takes no actions as input, only whom or what it is about:
//! what it holds is what the policy implies, so nobody can propose an
//! arbitrary grant through it.
//!
//! **Nothing an agent proposed runs without a person.** Every action of a
//! plan an agent proposed (by any path: [`Roster::plan`] too) and every
//! action of an offboarding proposal waits for approval, with the reason
//! naming the agent ([`hold_for_person`]); the one check refuses an
//! agent's plan no person has approved anything of
//! (`crate::approval`), and refuses an agent as the one asking; deciding
//! refuses an agent whatever the policy says. Separation of duties
//! (`roster_core::principal`) already refuses an agent approving its own
//! plan; these refusals hold even with it off.
//!
//! **What an agent wrote is untrusted text.** A proposal's note is stored
//! verbatim ([`roster_store::ProposalRecord`]) and shown only through
//! [`shown_note`], marked `[untrusted agent text]` and quoted, never
//! interpreted; the plan's own reasons come from the policy, never from
//! the proposer. Wherever a plan is reviewed, [`proposer_line`] says
//! prominently that an AI agent proposed it.
//!
//! A proposal also records what it is about, so the freshness check of
//! `roster apply` re-reads the same part of the apps it was computed from
//! (a person's accounts, not every account of the app).

use std::collections::BTreeMap;

use roster_core::{ConnectionId, Finding, Person, Plan, Principal};
use roster_store::{ActionState, PlanId, ProposalRecord};
use serde::Serialize;

pub use crate::agent_rules::{UNTRUSTED, is_agent, proposer_line, shown_note};
use crate::agent_rules::{hold_all, hold_for_person};
use crate::app::Roster;
use crate::engine::{EngineError, ms};
use crate::planning::{PersonRef, PlanScope};

/// The longest note a proposal keeps (characters); the rest is cut.
pub const MAX_NOTE_CHARS: usize = 2000;

/// A note as stored: control characters (other than line breaks) become
/// spaces, cut at [`MAX_NOTE_CHARS`]; `None` when empty.
fn clean_note(note: Option<&str>) -> Option<String> {
    let note = note?.trim();
    if note.is_empty() {
        return None;
    }
    Some(
        note.chars()
            .take(MAX_NOTE_CHARS)
            .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
            .collect(),
    )
}

/// What to propose a reconciliation for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalTarget {
    /// These connections (each must be governed by the policy or
    /// configured).
    Connections(Vec<ConnectionId>),
    /// One person across every governed connection.
    Person(PersonRef),
}

/// A proposal just stored.
#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    pub plan_id: String,
    pub hash: String,
    /// `offboarding`, `person` or `connections`.
    pub kind: &'static str,
    /// The actor that proposed it (`agent:claude`).
    pub proposed_by: String,
    /// "proposed by an AI agent (agent:claude)" or "proposed by user:alice".
    pub proposer: String,
    /// The person it is about.
    pub person: Option<ProposedPerson>,
    pub plan: Plan,
    /// Actions waiting for a person's approval, with why: for an agent's
    /// proposal, every action.
    pub waiting_for_approval: BTreeMap<usize, String>,
    /// The note as it is shown (marked untrusted when an agent wrote it).
    pub note: Option<String>,
    /// What happens next, in a sentence.
    pub next: String,
}

/// Who a proposal is about.
#[derive(Clone, Debug, Serialize)]
pub struct ProposedPerson {
    pub employee_id: String,
    pub email: String,
    pub name: String,
    /// Their status in the source of truth (`terminated` for a leaver);
    /// an offboarding proposal plans them as terminated whatever it is.
    pub status: String,
}

/// What a stored proposal was asked for, as reviews show it.
#[derive(Clone, Debug, Serialize)]
pub struct ProposalInfo {
    pub kind: String,
    pub person: Option<String>,
    pub connections: Vec<String>,
    pub proposed_by: String,
    pub proposer: String,
    /// The note as it is shown (marked untrusted when an agent wrote it).
    pub note: Option<String>,
    pub created_ms: i64,
}

/// One action of a stored plan, explained: what it does, why, what is
/// behind it and where its approval and execution stand.
#[derive(Clone, Debug, Serialize)]
pub struct ActionExplanation {
    pub plan_id: String,
    pub index: usize,
    pub connection: String,
    pub operation: String,
    pub email: String,
    pub employee_id: Option<String>,
    pub account: Option<String>,
    /// The planner's reason (it names the rule or finding behind it).
    pub reason: String,
    /// Why it is planned (`left`, `grant`, `orphan`, ...).
    pub cause: String,
    /// Attribute changes for updates and reactivations (`field: old -> new`).
    pub changes: Vec<String>,
    /// Findings of the plan about the same account or address.
    pub findings: Vec<Finding>,
    /// Guards that fired on the plan (they decide what needs approval).
    pub guards: Vec<String>,
    /// `waiting for approval`, `approved`, `rejected` or `not needed`.
    pub approval: String,
    /// Why it needs approval, when it does.
    pub approval_reason: Option<String>,
    /// `pending`, `running`, `done`, `failed`, `skipped`, ...
    pub state: String,
    pub state_detail: Option<String>,
    pub proposed_by: Option<String>,
    /// "proposed by an AI agent (agent:claude)", when an agent did.
    pub proposer: Option<String>,
}

impl Roster {
    /// Stores the plan an offboarding of `who` would carry out now, as
    /// proposed by `by`: the person planned as terminated, from what the
    /// store holds (no app is read). Records no termination override,
    /// ends no session, applies nothing; every action waits for a
    /// person's approval. `note` is kept verbatim and shown as untrusted
    /// when an agent wrote it.
    pub async fn propose_offboarding(
        &self,
        by: &Principal,
        who: &PersonRef,
        note: Option<&str>,
    ) -> Result<Proposal, EngineError> {
        let engine = self.engine();
        let person = engine
            .find_person(who)
            .await?
            .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
        engine.check_policy()?;
        let inputs = engine.offboard_inputs(&person).await?;
        let mut plan = engine.plan_from(&inputs).await?;
        // An offboarding proposal is only a proposal, whoever makes it.
        hold_all(&mut plan, &by.actor());
        let scope = PlanScope::Person(PersonRef::EmployeeId(person.employee_id.clone()));
        self.store_proposal(by, plan, &scope, "offboarding", Some(&person), note)
            .await
    }

    /// Stores the plan the policy implies now for `target` (some
    /// connections, or one person), from what roster last read (no app is
    /// read), as proposed by `by`. Applies nothing; an agent's proposal
    /// waits whole for a person's approval.
    pub async fn propose_reconcile(
        &self,
        by: &Principal,
        target: &ProposalTarget,
        note: Option<&str>,
    ) -> Result<Proposal, EngineError> {
        let engine = self.engine();
        let (scope, kind, person) = match target {
            ProposalTarget::Connections(ids) => {
                if ids.is_empty() {
                    return Err(EngineError::Refused(
                        "name at least one connection to propose a plan for".into(),
                    ));
                }
                // What the policy governs or the deployment connects (a
                // process without connectors, `roster mcp`, knows the
                // policy's).
                let mut known = engine.policy.governed_connections();
                known.extend(engine.connector_ids());
                known.sort();
                known.dedup();
                for id in ids {
                    if !known.contains(id) {
                        return Err(EngineError::Refused(format!(
                            "no connection {id} is configured; configured: {}",
                            known
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
                (PlanScope::Connections(ids.clone()), "connections", None)
            }
            ProposalTarget::Person(who) => {
                let person = engine
                    .find_person(who)
                    .await?
                    .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
                let scope = PlanScope::Person(PersonRef::EmployeeId(person.employee_id.clone()));
                (scope, "person", Some(person))
            }
        };
        let mut plan = engine.compute_plan(&scope).await?;
        hold_for_person(&mut plan, by);
        self.store_proposal(by, plan, &scope, kind, person.as_ref(), note)
            .await
    }

    async fn store_proposal(
        &self,
        by: &Principal,
        plan: Plan,
        scope: &PlanScope,
        kind: &'static str,
        person: Option<&Person>,
        note: Option<&str>,
    ) -> Result<Proposal, EngineError> {
        let engine = self.engine();
        let id = engine.save_plan(&plan, scope, by).await?;
        let actor = by.actor();
        let note = clean_note(note);
        engine
            .store
            .proposal_insert(&ProposalRecord {
                plan_id: id.clone(),
                kind: kind.to_string(),
                person: person.map(|p| p.employee_id.as_str().to_string()),
                connections: match scope {
                    PlanScope::Connections(c) => {
                        Some(c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" "))
                    }
                    _ => None,
                },
                note: note.clone(),
                proposed_by: actor.clone(),
                created_ms: ms(engine.now()),
            })
            .await?;
        let waiting = engine.approval_status(&id).await?.waiting;
        let next = if plan.actions.is_empty() {
            "nothing to do: the plan has no actions".to_string()
        } else if waiting.len() == plan.actions.len() {
            format!(
                "stored; nothing was changed in any app. Every action waits for a person: roster plans show {id}, then roster approve {id} and roster apply {id}"
            )
        } else {
            format!(
                "stored; nothing was changed in any app. {} action(s) wait for a person's approval; a person carries it out with roster apply {id}",
                waiting.len()
            )
        };
        Ok(Proposal {
            plan_id: id.to_string(),
            hash: plan.hash(),
            kind,
            proposer: proposer_line(&actor),
            proposed_by: actor.clone(),
            person: person.map(|p| ProposedPerson {
                employee_id: p.employee_id.as_str().to_string(),
                email: p.email.to_string(),
                name: format!("{} {}", p.first_name, p.last_name),
                status: p.status.as_str().to_string(),
            }),
            plan,
            waiting_for_approval: waiting,
            note: note.map(|n| shown_note(&actor, &n)),
            next,
        })
    }

    /// What a stored plan was proposed for, with its note as it is shown;
    /// `None` for a plan not stored as a proposal.
    pub async fn proposal(&self, plan_id: &PlanId) -> Result<Option<ProposalInfo>, EngineError> {
        let Some(r) = self.engine().store.proposal(plan_id).await? else {
            return Ok(None);
        };
        Ok(Some(ProposalInfo {
            proposer: proposer_line(&r.proposed_by),
            note: r.note.as_deref().map(|n| shown_note(&r.proposed_by, n)),
            kind: r.kind,
            person: r.person,
            connections: r
                .connections
                .map(|c| c.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            proposed_by: r.proposed_by,
            created_ms: r.created_ms,
        }))
    }

    /// One action of a stored plan, explained (the MCP tool
    /// `explain_action`): its reason and cause, the findings and guards
    /// behind it, its approval and execution state. Reads only the store.
    pub async fn explain_action(
        &self,
        plan_id: &PlanId,
        index: usize,
    ) -> Result<ActionExplanation, EngineError> {
        let engine = self.engine();
        let stored = engine.stored_plan(plan_id).await?;
        let Some(action) = stored.plan.actions.get(index) else {
            return Err(EngineError::Refused(format!(
                "plan {plan_id} has {} action(s); there is no action {index}",
                stored.plan.actions.len()
            )));
        };
        let status = engine.approval_status(plan_id).await?;
        let (approval, approval_reason) = if let Some(why) = status.waiting.get(&index) {
            ("waiting for approval", Some(why.clone()))
        } else if status.approved.contains(&index) {
            ("approved", stored.plan.approvals.get(&index).cloned())
        } else if status.rejected.contains(&index) {
            ("rejected", stored.plan.approvals.get(&index).cloned())
        } else {
            ("not needed", None)
        };
        let stored_action = engine
            .store
            .actions(plan_id)
            .await?
            .into_iter()
            .find(|a| a.index == index);
        let findings = stored
            .plan
            .findings
            .iter()
            .filter(|f| f.connection == action.connection)
            .filter(|f| {
                (f.account.is_some() && f.account == action.account)
                    || f.email
                        .as_ref()
                        .is_some_and(|e| e.normalized() == action.email.normalized())
            })
            .cloned()
            .collect();
        Ok(ActionExplanation {
            plan_id: plan_id.to_string(),
            index,
            connection: action.connection.to_string(),
            operation: action.operation.as_str().to_string(),
            email: action.email.to_string(),
            employee_id: action.employee_id.as_ref().map(|e| e.as_str().to_string()),
            account: action.account.as_ref().map(|a| a.to_string()),
            reason: action.reason.clone(),
            cause: action.cause.as_str().to_string(),
            changes: action
                .changes
                .iter()
                .map(|c| serde_json::to_string(c).unwrap_or_default())
                .collect(),
            findings,
            guards: stored
                .plan
                .guards
                .fired
                .iter()
                .map(|g| serde_json::to_string(g).unwrap_or_default())
                .collect(),
            approval: approval.to_string(),
            approval_reason,
            state: stored_action
                .as_ref()
                .map(|a| a.state.as_str().to_string())
                .unwrap_or_else(|| ActionState::Pending.as_str().to_string()),
            state_detail: stored_action.and_then(|a| a.detail),
            proposer: stored.proposed_by.as_deref().map(proposer_line),
            proposed_by: stored.proposed_by,
        })
    }
}
