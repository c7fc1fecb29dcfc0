//! Targeted reconciliation: one person, now.
//!
//! An event about one person (an IdP push through the SCIM gateway, an HR
//! change) should not wait for the next full run. [`Engine::plan_person`]
//! loads that person and only the accounts that may be theirs (by employee
//! ID and every address they go by, through the store's indexes), and
//! plans just them — milliseconds, whatever the company's size.
//!
//! Safety is the full run's: an account another person might also own is
//! left out (the full run reports it in the match queue), thresholds are
//! judged against each app's whole population, and orphans are not this
//! run's business.

use std::collections::BTreeMap;

use roster_core::correlate::{Correlator, Match};
use roster_core::{ConnectionId, Email, EmployeeId, Observed, Person, Plan, reconcile_guarded};
use roster_store::PlanId;
use serde_json::json;

use crate::run::{Engine, EngineError, ms};

/// Who a targeted run is about.
#[derive(Clone, Debug)]
pub enum PersonRef {
    EmployeeId(EmployeeId),
    Email(Email),
}

impl PersonRef {
    /// Who an inbound identity (a SCIM push: `userName`, maybe an
    /// `employeeNumber`) is about: the address when it is one, else the
    /// employee number.
    pub fn from_identifiers(user_name: &str, employee_number: Option<&str>) -> Option<PersonRef> {
        if let Ok(e) = Email::parse(user_name) {
            return Some(PersonRef::Email(e));
        }
        employee_number.map(|n| PersonRef::EmployeeId(EmployeeId::new(n)))
    }
}

impl std::fmt::Display for PersonRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersonRef::EmployeeId(e) => write!(f, "{e}"),
            PersonRef::Email(e) => write!(f, "{e}"),
        }
    }
}

impl Engine {
    /// Every address a person may appear under: primary, aliases, and their
    /// spellings in equivalent domains.
    fn addresses(&self, person: &Person) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::iter::once(&person.email).chain(person.aliases.iter()) {
            let local = e.local_part().to_lowercase();
            let domain = e.domain().to_lowercase();
            out.push(format!("{local}@{domain}"));
            for group in &self.policy.correlation.equivalent_domains {
                if group.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
                    for d in group {
                        out.push(format!("{local}@{}", d.to_lowercase()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Plans one person across every governed connection that has been
    /// read. `None` when the source of truth does not know them.
    pub async fn plan_person(
        &self,
        who: &PersonRef,
    ) -> Result<Option<(PlanId, Plan)>, EngineError> {
        self.check_policy()?;
        let person = match who {
            PersonRef::EmployeeId(id) => self.store.person_by_employee_id(id).await?,
            PersonRef::Email(e) => self.store.person_by_email(e).await?,
        };
        let mut person = match person {
            Some(p) => p,
            // Someone only an IdP pushed to the gateway.
            None => match who {
                PersonRef::Email(e) => match self.gateway_person(e).await? {
                    Some(p) => p,
                    None => return Ok(None),
                },
                PersonRef::EmployeeId(_) => return Ok(None),
            },
        };
        self.fold_gateway_for(&mut person).await?;
        let addresses = self.addresses(&person);
        let candidates = self
            .store
            .accounts_for_person(&person.employee_id, &addresses)
            .await?;

        // Everyone these accounts might belong to, so a shared or
        // conflicting account is recognised as such.
        let ids: Vec<EmployeeId> = candidates
            .iter()
            .filter_map(|a| a.employee_id.clone())
            .collect();
        let emails: Vec<String> = candidates
            .iter()
            .filter_map(|a| a.email.as_ref().map(|e| e.normalized()))
            .chain(addresses.iter().cloned())
            .collect();
        let mut people = self.store.people_matching(&ids, &emails).await?;
        if !people.iter().any(|p| p.employee_id == person.employee_id) {
            people.push(person.clone());
        }
        let me = people
            .iter()
            .position(|p| p.employee_id == person.employee_id)
            .unwrap_or(0);
        let correlator = Correlator::new(&people, &self.policy.correlation);

        let governed = self.policy.governed_connections();
        let infos = self.store.observations().await?;
        let mut observed: BTreeMap<ConnectionId, Observed> = BTreeMap::new();
        let mut active_counts: BTreeMap<ConnectionId, usize> = BTreeMap::new();
        for info in infos.iter().filter(|i| governed.contains(&i.connection)) {
            active_counts.insert(info.connection.clone(), info.account_count as usize);
            observed.insert(
                info.connection.clone(),
                Observed {
                    connection: info.connection.clone(),
                    accounts: Vec::new(),
                    complete: info.complete,
                    incomplete_reason: info.incomplete_reason.clone(),
                },
            );
        }
        for account in candidates {
            let mine = matches!(correlator.correlate(&account), Match::Person(i, _) if i == me);
            if mine && let Some(o) = observed.get_mut(&account.connection) {
                o.accounts.push(account);
            }
        }
        let observed: Vec<Observed> = observed.into_values().collect();
        let resolutions = self.resolutions().await?;
        let now = self.now();
        // The same guards as a full run, judged against each app's whole
        // population.
        let mut context = self.guard_context().await?;
        context.active_counts = Some(active_counts);
        let plan = reconcile_guarded(
            std::slice::from_ref(&person),
            &observed,
            &self.policy,
            &resolutions,
            &context,
            now,
        );
        // Orphan findings cannot arise (every account kept is this
        // person's); keep the plan to actions and this person's findings.
        let id = self
            .store
            .save_plan_under(&plan, ms(now), self.plan_policy().as_ref())
            .await?;
        self.audit(
            "plan.created",
            id.as_str(),
            json!({
                "scope": { "person": person.employee_id.as_str() },
                "hash": plan.hash(),
                "actions": plan.actions.len(),
            }),
        )
        .await?;
        Ok(Some((id, plan)))
    }
}
