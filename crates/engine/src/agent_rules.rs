//! The rules for what an AI agent proposed, below the application layer so
//! the one check (`crate::approval`) and planning can keep them: how an
//! agent and its words are marked, that every action of an agent's plan
//! waits for a person ([`hold_for_person`]), and, for a plan stored as a
//! proposal about one person, the inputs it is planned from again (its
//! freshness check re-reads that person's accounts; see
//! `crate::proposals`, the application layer's half).

use roster_core::plan::observed_digest;
use roster_core::{EmploymentStatus, Person, Plan, Principal, PrincipalKind};
use roster_store::PlanId;

use crate::engine::{Engine, EngineError};
use crate::planning::{PersonRef, PlanInputs, PlanScope};

/// How an agent's words are marked wherever they are shown.
pub const UNTRUSTED: &str = "[untrusted agent text]";

/// Whether `actor` (an [`Principal::actor`] string) is an AI agent.
pub fn is_agent(actor: &str) -> bool {
    Principal::kind_of_actor(actor) == Some(PrincipalKind::Agent)
}

/// How a plan's proposer is shown wherever the plan is reviewed or
/// approved: an agent prominently as one.
pub fn proposer_line(proposed_by: &str) -> String {
    if is_agent(proposed_by) {
        format!("proposed by an AI agent ({proposed_by})")
    } else {
        format!("proposed by {proposed_by}")
    }
}

/// Why an action of a plan `by` proposed waits for a person.
fn hold_reason(proposed_by: &str) -> String {
    format!(
        "{}: a person must approve it (roster approve); nothing it proposes runs until then",
        proposer_line(proposed_by)
    )
}

/// Every action of a plan an agent proposes waits for a person's
/// approval: adds the reason to each action that does not already need
/// approval. Changes nothing for other principals.
pub(crate) fn hold_for_person(plan: &mut Plan, by: &Principal) {
    if by.kind == PrincipalKind::Agent {
        hold_all(plan, &by.actor());
    }
}

pub(crate) fn hold_all(plan: &mut Plan, proposed_by: &str) {
    for i in 0..plan.actions.len() {
        plan.approvals
            .entry(i)
            .or_insert_with(|| hold_reason(proposed_by));
    }
}

/// A note as every surface shows it: an agent's marked `[untrusted agent
/// text]` and quoted (escaped, one line), so it reads as data, never as
/// an instruction or as roster's own words.
pub fn shown_note(author: &str, note: &str) -> String {
    if is_agent(author) {
        format!("{UNTRUSTED} {}", serde_json::Value::from(note))
    } else {
        note.to_string()
    }
}

impl Engine {
    /// The inputs of `person`'s plan as if terminated now (the override an
    /// offboarding records): what
    /// [`crate::app::Roster::preview_offboard`] plans.
    pub(crate) async fn offboard_inputs(&self, person: &Person) -> Result<PlanInputs, EngineError> {
        let scope = PlanScope::Person(PersonRef::EmployeeId(person.employee_id.clone()));
        let mut inputs = self.plan_inputs(&scope).await?;
        for p in inputs.people.iter_mut().chain(inputs.person.iter_mut()) {
            if p.employee_id == person.employee_id {
                p.status = EmploymentStatus::Terminated;
                p.end_date = None;
            }
        }
        let mut leaver = person.clone();
        leaver.status = EmploymentStatus::Terminated;
        self.add_reports(&mut inputs, &leaver).await?;
        Ok(inputs)
    }

    /// For a plan stored as a proposal about one person: the inputs it
    /// would be planned from now. `None` for any other plan.
    pub(crate) async fn proposal_inputs(
        &self,
        plan_id: &PlanId,
    ) -> Result<Option<PlanInputs>, EngineError> {
        let Some(r) = self.store.proposal(plan_id).await? else {
            return Ok(None);
        };
        let Some(id) = r.person else {
            return Ok(None);
        };
        let who = PersonRef::EmployeeId(roster_core::EmployeeId::new(id));
        let inputs = match r.kind.as_str() {
            "offboarding" => {
                let person = self
                    .find_person(&who)
                    .await?
                    .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
                self.offboard_inputs(&person).await?
            }
            _ => self.plan_inputs(&PlanScope::Person(who)).await?,
        };
        Ok(Some(inputs))
    }

    /// The digest of what a person's proposal saw, as the apps are now
    /// (after a re-read): the freshness check compares it with the plan's.
    /// `None`: not such a plan; compare every account of its connections.
    pub(crate) async fn proposal_observed_digest(
        &self,
        plan_id: &PlanId,
    ) -> Result<Option<String>, EngineError> {
        Ok(self
            .proposal_inputs(plan_id)
            .await?
            .map(|i| observed_digest(&i.observed)))
    }

    /// The plan a person's proposal calls for now (not stored), for
    /// actions approved after the rest of it ran. `None`: not such a plan.
    pub(crate) async fn proposal_fresh_plan(
        &self,
        plan_id: &PlanId,
    ) -> Result<Option<Plan>, EngineError> {
        match self.proposal_inputs(plan_id).await? {
            Some(inputs) => Ok(Some(self.plan_from(&inputs).await?)),
            None => Ok(None),
        }
    }
}
