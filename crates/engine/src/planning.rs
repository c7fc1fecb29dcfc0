//! Planning: the people snapshot and its guard, and the one planning
//! function.
//!
//! [`Engine::compute_plan`] plans a [`PlanScope`]: everyone, some
//! connections, or one person. All three run the same code on different
//! inputs: [`Engine::plan_inputs`] gathers people, observations, match
//! resolutions and the guard context, and [`reconcile_guarded`] decides. A
//! person's inputs are the accounts found under their identifiers (employee
//! ID and every address they go by, through the store's indexes), everyone
//! those accounts could also belong to (so a shared or conflicting account
//! is recognised as such, exactly as the full run would), and each app's
//! whole population for the thresholds; the core plans for them alone
//! ([`GuardContext::focus`]). That takes milliseconds whatever the company's
//! size, and gives the person's part of the full plan.
//!
//! Computing a plan has no side effects: nothing is written, not even the
//! source-change baseline. One exception, on purpose: the gateway fold
//! stores the typed intent it derives for SCIM users pushed before schema
//! 12 (or written without one), once, the first time it meets them
//! ([`Engine::backfill_gateway`]); that is a carry-over of stored data, not
//! a decision. [`Engine::save_plan`] stores and audits one
//! under the principal that proposed it. Verifying human tasks against a
//! fresh read is its own step ([`crate::human`]).
//!
//! Start and end dates are judged in the company's time zone
//! ([`Engine::calendar`], handed to the core in the guard context), so a
//! date passing changes the next plan with no change in any source: the
//! service's periodic full run picks it up.
//!
//! Termination overrides (an authenticated offboarding, see
//! [`crate::app::Roster::offboard`]) are applied to the people planned: a
//! person offboarded is planned as terminated whatever a slower source
//! still says, and whatever end date it gives (the override drops it, so
//! the calendar cannot keep them in until then).

use std::collections::BTreeMap;

use roster_core::guard::{self, GuardContext, SourceChange, SourceCounts};
use roster_core::plan::{PolicyChange, policy_effect};
use roster_core::{
    ConnectionId, Email, EmployeeId, EmploymentStatus, Observed, Person, Plan, Policy, Principal,
    Resolution, reconcile_guarded,
};
use roster_store::{AuditKind, PlanId};
use serde_json::json;
use time::OffsetDateTime;

use crate::engine::{Engine, EngineError, PEOPLE_SOURCE, ms};

/// Who a targeted run is about.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// An address if it parses as one, else an employee ID (what a person
    /// types after `--person`).
    pub fn parse(s: &str) -> PersonRef {
        match Email::parse(s) {
            Ok(e) => PersonRef::Email(e),
            Err(_) => PersonRef::EmployeeId(EmployeeId::new(s)),
        }
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

/// What a plan covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanScope {
    /// Every governed connection the store holds observations of.
    All,
    /// Only these connections (those whose read just succeeded).
    Connections(Vec<ConnectionId>),
    /// One person across every governed connection that has been read.
    Person(PersonRef),
}

impl PlanScope {
    /// The audit log's description of the scope.
    fn describe(&self) -> serde_json::Value {
        match self {
            PlanScope::All => json!("all"),
            PlanScope::Connections(c) => {
                json!({ "connections": c.iter().map(|c| c.as_str()).collect::<Vec<_>>() })
            }
            PlanScope::Person(p) => json!({ "person": p.to_string() }),
        }
    }
}

/// What one reconciliation decides from.
pub(crate) struct PlanInputs {
    pub people: Vec<Person>,
    pub observed: Vec<Observed>,
    pub resolutions: Vec<Resolution>,
    pub context: GuardContext,
    /// The person a targeted run is about.
    pub person: Option<Person>,
}

impl Engine {
    /// Replaces the people snapshot with `people` (already validated).
    ///
    /// The snapshot becomes the accepted baseline of the source-change
    /// guard when it looks fine against the last accepted one (or is the
    /// first). When it shrank, or terminated many at once, it is stored
    /// but not accepted: plans withhold every deactivation until a person
    /// confirms it ([`Engine::accept_source_change`]). Returns that change.
    pub(crate) async fn import_people(
        &self,
        actor: &str,
        people: &[Person],
        source: &str,
    ) -> Result<Option<SourceChange>, EngineError> {
        self.store.replace_people(people).await?;
        let counts = SourceCounts::as_of(people, self.local_today());
        self.audit_as(
            actor,
            AuditKind::SourceImported,
            source,
            json!({ "people": counts.people, "terminated": counts.terminated }),
        )
        .await?;
        let change = self.source_check(counts, actor).await?;
        if let Some(c) = &change {
            self.record_source_change_held(actor, source, c).await?;
        }
        Ok(change)
    }

    /// Logs and audits that `change` in `source` holds deactivations until
    /// a person confirms: the one record of it, for the merged snapshot
    /// and for each identity provider alike.
    async fn record_source_change_held(
        &self,
        actor: &str,
        source: &str,
        change: &SourceChange,
    ) -> Result<(), EngineError> {
        tracing::warn!(source, change = %change.detail, "source change held: deactivations withheld until confirmed");
        self.audit_as(
            actor,
            AuditKind::SourceChangeHeld,
            source,
            json!({
                "detail": change.detail,
                "accepted": { "people": change.accepted.people, "terminated": change.accepted.terminated },
                "current": { "people": change.current.people, "terminated": change.current.terminated },
            }),
        )
        .await?;
        Ok(())
    }

    /// Judges `counts` against the accepted baseline: accepts it (as
    /// `actor`) when it looks fine or nothing was accepted yet, and returns
    /// the change otherwise.
    async fn source_check(
        &self,
        counts: SourceCounts,
        actor: &str,
    ) -> Result<Option<SourceChange>, EngineError> {
        let baseline = self.store.source_baseline(PEOPLE_SOURCE).await?;
        let change = guard::source_change(
            baseline.as_ref().map(|b| b.counts),
            counts,
            &self.policy.approvals,
        );
        if change.is_none() && baseline.is_none_or(|b| b.counts != counts) {
            self.store
                .accept_source(PEOPLE_SOURCE, counts, ms(self.now()), actor)
                .await?;
        }
        Ok(change)
    }

    /// A person confirms the people snapshot the store holds: it becomes
    /// the source-change guard's baseline, and the next plan carries the
    /// deactivations it asks for (`roster plan --accept-source-change`).
    /// Returns the accepted size.
    pub(crate) async fn accept_source_change(
        &self,
        actor: &str,
    ) -> Result<SourceCounts, EngineError> {
        let counts = self.store.people_counts(self.local_today()).await?;
        let before = self.store.source_baseline(PEOPLE_SOURCE).await?;
        self.store
            .accept_source(PEOPLE_SOURCE, counts, ms(self.now()), actor)
            .await?;
        // Each identity provider's last listing becomes its baseline too.
        for w in &self.sources {
            let id = w.source.id();
            if let Some(observed) = self.store.source_baseline(&Self::observed_key(id)).await? {
                self.store
                    .accept_source(id.as_str(), observed.counts, ms(self.now()), actor)
                    .await?;
            }
        }
        self.audit_as(
            actor,
            AuditKind::SourceAccepted,
            PEOPLE_SOURCE,
            json!({
                "people": counts.people,
                "terminated": counts.terminated,
                "previous": before.map(|b| json!({ "people": b.counts.people, "terminated": b.counts.terminated })),
            }),
        )
        .await?;
        Ok(counts)
    }

    /// The source change the people snapshot the store holds would be,
    /// against the accepted baseline, or else the first identity provider
    /// whose last listing is one against its own; judges only, writes
    /// nothing.
    async fn pending_source_change(&self) -> Result<Option<SourceChange>, EngineError> {
        let baseline = self.store.source_baseline(PEOPLE_SOURCE).await?;
        let counts = self.store.people_counts(self.local_today()).await?;
        if let Some(change) = guard::source_change(
            baseline.as_ref().map(|b| b.counts),
            counts,
            &self.policy.approvals,
        ) {
            return Ok(Some(change));
        }
        for w in &self.sources {
            if let Some(change) = self.source_own_change(w.source.id()).await? {
                return Ok(Some(change));
            }
        }
        Ok(None)
    }

    /// The key under which the last listing of source `id` is recorded
    /// beside its accepted baseline (keyed by `id` itself).
    fn observed_key(id: &ConnectionId) -> String {
        format!("observed:{id}")
    }

    /// Source `id`'s last listing against its own accepted baseline.
    async fn source_own_change(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<SourceChange>, EngineError> {
        let accepted = self.store.source_baseline(id.as_str()).await?;
        let Some(observed) = self.store.source_baseline(&Self::observed_key(id)).await? else {
            return Ok(None);
        };
        Ok(guard::source_change(
            accepted.as_ref().map(|b| b.counts),
            observed.counts,
            &self.policy.approvals,
        )
        .map(|mut c| {
            c.detail = format!("{id}: {}", c.detail);
            c
        }))
    }

    /// Records each identity provider's listing beside its own baseline,
    /// which it becomes when it looks fine against it (or is the first).
    /// With an HR file beside an IdP, a complete but short listing keeps
    /// everyone in the merged snapshot (HR still lists them) while
    /// stripping the groups and managers only the IdP knows: no count of
    /// the merged snapshot sees it, this one does. Until a person confirms
    /// ([`Engine::accept_source_change`]), plans withhold deactivations as
    /// for any source change. Returns that change, if any.
    pub(crate) async fn observe_sources(
        &self,
        actor: &str,
        per_source: &[(ConnectionId, SourceCounts)],
    ) -> Result<Option<SourceChange>, EngineError> {
        let now = ms(self.now());
        let mut first = None;
        for (id, counts) in per_source {
            self.store
                .accept_source(&Self::observed_key(id), *counts, now, actor)
                .await?;
            match self.source_own_change(id).await? {
                None => {
                    let accepted = self.store.source_baseline(id.as_str()).await?;
                    if accepted.is_none_or(|b| b.counts != *counts) {
                        self.store
                            .accept_source(id.as_str(), *counts, now, actor)
                            .await?;
                    }
                }
                Some(change) => {
                    self.record_source_change_held(actor, id.as_str(), &change)
                        .await?;
                    first.get_or_insert(change);
                }
            }
        }
        Ok(first)
    }

    /// What the guards need to know that the store holds: connections no
    /// applied plan has covered, and whether the people snapshot is a
    /// source change not yet confirmed.
    pub(crate) async fn guard_context(&self) -> Result<GuardContext, EngineError> {
        let applied = self.store.applied_connections().await?;
        let first_plan = self
            .policy
            .governed_connections()
            .into_iter()
            .filter(|c| !applied.contains(c))
            .collect();
        Ok(GuardContext {
            first_plan,
            active_counts: None,
            source_change: self.pending_source_change().await?,
            focus: None,
            calendar: self.calendar.clone(),
            hard_delete: self.hard_delete_connections(),
            financial: self.financial_connections(),
        })
    }

    /// Governed connections whose app's catalog record says deactivating
    /// may delete the account for good (any source): the `hard_delete`
    /// guard holds their deactivations. A connection bound to no record is
    /// looked up by its own name, as the path label is.
    pub(crate) fn hard_delete_connections(&self) -> std::collections::BTreeSet<ConnectionId> {
        let Some(catalog) = self.catalog.as_ref() else {
            return Default::default();
        };
        self.policy
            .governed_connections()
            .into_iter()
            .filter(|c| {
                let app = self
                    .bindings
                    .get(c)
                    .map(|b| b.app.as_str())
                    .unwrap_or(c.as_str());
                catalog
                    .get(app)
                    .and_then(|a| a.deactivation.as_ref())
                    .is_some_and(|d| d.may_hard_delete())
            })
            .collect()
    }

    /// The stored observations of governed connections (those the policy
    /// speaks about), optionally only those in `readable`.
    pub(crate) async fn governed_observations(
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

    /// Applies termination overrides (offboardings) to `people`.
    pub(crate) async fn apply_overrides(&self, people: &mut [Person]) -> Result<(), EngineError> {
        let overrides = self.store.person_overrides().await?;
        if overrides.is_empty() {
            return Ok(());
        }
        let by_id: BTreeMap<&str, &roster_store::PersonOverride> = overrides
            .iter()
            .map(|o| (o.employee_id.as_str(), o))
            .collect();
        for p in people.iter_mut() {
            if let Some(o) = by_id.get(p.employee_id.as_str())
                && let Some(status) = EmploymentStatus::parse(&o.status)
            {
                apply_override(p, status);
            }
        }
        Ok(())
    }

    /// Every address a person may appear under: primary, aliases, and their
    /// spellings in equivalent domains.
    pub(crate) fn addresses(&self, person: &Person) -> Vec<String> {
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

    /// The person a reference names: from the source of truth, else
    /// someone only an IdP pushed to the gateway, with what the gateway
    /// says about them folded in and overrides applied.
    pub(crate) async fn find_person(&self, who: &PersonRef) -> Result<Option<Person>, EngineError> {
        Ok(self.find_person_with_source(who).await?.map(|f| f.planned))
    }

    /// [`Engine::find_person`], keeping what it read on the way: the
    /// source of truth's record as stored and whether an offboarding
    /// override applies (the person page shows both; reading them again
    /// would double its queries).
    pub(crate) async fn find_person_with_source(
        &self,
        who: &PersonRef,
    ) -> Result<Option<FoundPerson>, EngineError> {
        // By ID, the record and its override come in one read.
        let (stored, mut stored_override) = match who {
            PersonRef::EmployeeId(id) => match self.store.person_with_override(id).await? {
                Some((p, o)) => (Some(p), Some(o)),
                None => (None, None),
            },
            PersonRef::Email(e) => (self.store.person_by_email(e).await?, None),
        };
        let mut person = match (&stored, who) {
            (Some(p), _) => p.clone(),
            (None, PersonRef::Email(e)) => match self.gateway_person(e).await? {
                Some(p) => p,
                None => return Ok(None),
            },
            (None, PersonRef::EmployeeId(_)) => return Ok(None),
        };
        self.fold_gateway_for(&mut person).await?;
        let known = match stored_override.take() {
            Some(o) if stored.as_ref().map(|s| &s.employee_id) == Some(&person.employee_id) => o,
            _ => self.store.person_override(&person.employee_id).await?,
        };
        let offboarded = match known {
            Some(o) => {
                if let Some(status) = EmploymentStatus::parse(&o.status) {
                    apply_override(&mut person, status);
                }
                true
            }
            None => false,
        };
        // A gateway-only person's employee ID may still name a stored
        // record (the gateway keys them by its own id).
        let source = match stored {
            Some(p) => Some(p),
            None => {
                self.store
                    .person_by_employee_id(&person.employee_id)
                    .await?
            }
        };
        Ok(Some(FoundPerson {
            planned: person,
            source,
            offboarded,
        }))
    }

    /// Gathers what a plan of `scope` decides from (see the module docs).
    pub(crate) async fn plan_inputs(&self, scope: &PlanScope) -> Result<PlanInputs, EngineError> {
        let resolutions = self.resolutions().await?;
        let mut context = self.guard_context().await?;
        let who = match scope {
            PlanScope::All | PlanScope::Connections(_) => {
                let readable = match scope {
                    PlanScope::Connections(c) => Some(c.as_slice()),
                    _ => None,
                };
                let mut people = self.store.people().await?;
                // What IdPs pushed to the SCIM gateway is intent too.
                self.fold_gateway(&mut people).await?;
                self.apply_overrides(&mut people).await?;
                let observed = self.governed_observations(readable).await?;
                return Ok(PlanInputs {
                    people,
                    observed,
                    resolutions,
                    context,
                    person: None,
                });
            }
            PlanScope::Person(who) => who,
        };
        let person = self
            .find_person(who)
            .await?
            .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
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
        let mut emails: Vec<String> = Vec::new();
        for a in &candidates {
            if let Some(e) = &a.email {
                emails.extend(self.addresses(&Person {
                    email: e.clone(),
                    aliases: Vec::new(),
                    ..person.clone()
                }));
            }
        }
        emails.extend(addresses.iter().cloned());
        emails.sort();
        emails.dedup();
        let mut people: Vec<Person> = self
            .store
            .people_matching(&ids, &emails)
            .await?
            .into_iter()
            .filter(|p| p.employee_id != person.employee_id)
            .collect();
        self.apply_overrides(&mut people).await?;
        people.push(person.clone());

        let governed = self.policy.governed_connections();
        let mut observed: BTreeMap<ConnectionId, Observed> = BTreeMap::new();
        let mut active_counts: BTreeMap<ConnectionId, usize> = BTreeMap::new();
        for info in self.store.observations().await? {
            if !governed.contains(&info.connection) {
                continue;
            }
            active_counts.insert(info.connection.clone(), info.account_count as usize);
            observed.insert(
                info.connection.clone(),
                Observed {
                    connection: info.connection,
                    accounts: Vec::new(),
                    complete: info.complete,
                    incomplete_reason: info.incomplete_reason,
                },
            );
        }
        for account in candidates {
            if let Some(o) = observed.get_mut(&account.connection) {
                o.accounts.push(account);
            }
        }
        // The same guards as a full run, judged against each app's whole
        // population.
        context.active_counts = Some(active_counts);
        context.focus = Some(person.employee_id.clone());
        let leaving = person.status == roster_core::EmploymentStatus::Terminated;
        let mut inputs = PlanInputs {
            people,
            observed: observed.into_values().collect(),
            resolutions,
            context,
            person: Some(person),
        };
        if leaving && let Some(p) = inputs.person.clone() {
            self.add_reports(&mut inputs, &p).await?;
        }
        Ok(inputs)
    }

    /// For a leaver's targeted plan: the accounts whose approver
    /// (`manager_email`, `approves_to`) is the leaver, the people they
    /// belong to, and the leaver's management chain, so the core can
    /// re-point them to a successor before the leaver's account closes
    /// (`roster_core::repoint`). The accounts are found by the store's
    /// approver index (`Store::accounts_pointing_at`), not by reading
    /// every stored account.
    pub(crate) async fn add_reports(
        &self,
        inputs: &mut PlanInputs,
        person: &Person,
    ) -> Result<(), EngineError> {
        let addresses: std::collections::BTreeSet<String> = self
            .addresses(person)
            .into_iter()
            .map(|a| a.to_lowercase())
            .collect();
        let mut ids = Vec::new();
        let mut emails = Vec::new();
        // Only the accounts whose approver is one of the leaver's
        // addresses, by index (the store's approver columns); the check
        // below is the same one a scan of every account would make.
        let wanted: Vec<String> = addresses.iter().cloned().collect();
        let pointing = self.store.accounts_pointing_at(&wanted).await?;
        let mut by_connection: BTreeMap<ConnectionId, Vec<roster_core::Account>> = BTreeMap::new();
        for a in pointing {
            by_connection
                .entry(a.connection.clone())
                .or_default()
                .push(a);
        }
        for (connection, accounts) in by_connection {
            let Some(into) = inputs
                .observed
                .iter_mut()
                .find(|t| t.connection == connection)
            else {
                continue;
            };
            for a in accounts {
                let points = roster_core::repoint::APPROVER_FIELDS.iter().any(|f| {
                    a.attributes
                        .get(*f)
                        .is_some_and(|v| addresses.contains(&v.trim().to_lowercase()))
                });
                if points && !into.accounts.iter().any(|x| x.key == a.key) {
                    ids.extend(a.employee_id.clone());
                    if let Some(e) = &a.email {
                        emails.push(e.as_str().to_lowercase());
                    }
                    into.accounts.push(a);
                }
            }
        }
        let mut more = if ids.is_empty() && emails.is_empty() {
            Vec::new()
        } else {
            self.store.people_matching(&ids, &emails).await?
        };
        // The chain up to the first manager who is not leaving.
        let mut next = person.manager_email.clone();
        for _ in 0..32 {
            let Some(m) = next.take() else { break };
            let Some(p) = self.find_person(&PersonRef::Email(m)).await? else {
                break;
            };
            if p.status == roster_core::EmploymentStatus::Terminated {
                next = p.manager_email.clone();
            }
            more.push(p);
        }
        self.apply_overrides(&mut more).await?;
        for p in more {
            if !inputs.people.iter().any(|q| q.employee_id == p.employee_id) {
                inputs.people.push(p);
            }
        }
        Ok(())
    }

    /// The plan `scope` calls for now, from what the store holds, with the
    /// policy-change report; stores and audits nothing. Fails when the
    /// policy names what the deployment lacks (see [`Engine::check_policy`]).
    pub async fn compute_plan(&self, scope: &PlanScope) -> Result<Plan, EngineError> {
        self.check_policy()?;
        // A plan's reads (the people, then every connection's accounts, a
        // connection at a time) share one store connection: beside a busy
        // API, each read queued anew behind every request waiting for the
        // pool, and a 1.4 s plan took 45 s (`roster bench soak`).
        self.store
            .with_one_reader(async {
                if !matches!(scope, PlanScope::Person(_)) {
                    // Everyone: streamed a connection at a time (crate::stream).
                    return Ok(self.plan_streamed(scope).await?.0);
                }
                let inputs = self.plan_inputs(scope).await?;
                self.plan_from(&inputs).await
            })
            .await
    }

    /// Decides a plan from gathered inputs (the second half of
    /// [`Engine::compute_plan`]).
    pub(crate) async fn plan_from(&self, inputs: &PlanInputs) -> Result<Plan, EngineError> {
        let now = self.now();
        let mut plan = reconcile_guarded(
            &inputs.people,
            &inputs.observed,
            &self.policy,
            &inputs.resolutions,
            &inputs.context,
            now,
        );
        if inputs.person.is_none() {
            plan.policy_change = self
                .policy_change(
                    &inputs.people,
                    &inputs.observed,
                    &inputs.resolutions,
                    now,
                    &plan,
                )
                .await?;
        }
        Ok(plan)
    }

    /// Stores a plan computed for `scope` as proposed by `by`, and audits it.
    pub(crate) async fn save_plan(
        &self,
        plan: &Plan,
        scope: &PlanScope,
        by: &Principal,
    ) -> Result<PlanId, EngineError> {
        let now = self.now();
        let actor = by.actor();
        let id = self
            .store
            .save_plan_proposed(plan, ms(now), self.plan_policy().as_ref(), Some(&actor))
            .await?;
        // The person page reads the recent plans: the one just stored is
        // indexed from what is in hand, instead of decoded back from the
        // store by the next view, which would hold up every view meanwhile.
        let hash = plan.hash();
        let indexed = crate::plan_cache::IndexedPlan::new(hash.clone(), plan.clone());
        self.plan_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(&id, std::sync::Arc::new(indexed));
        let counts: BTreeMap<&str, usize> = plan
            .counts()
            .into_iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        self.audit_as(
            &actor,
            AuditKind::PlanCreated,
            id.as_str(),
            json!({
                "scope": scope.describe(),
                "hash": hash,
                "observed_digest": plan.observed_digest,
                "actions": counts,
                "findings": plan.findings.len(),
                "policy_hash": self.policy.text_hash(),
                "policy_change": plan.policy_change,
            }),
        )
        .await?;
        crate::metrics::plan_created(match scope {
            PlanScope::All => "all",
            PlanScope::Connections(_) => "connections",
            PlanScope::Person(_) => "person",
        });
        Ok(id)
    }

    /// When the policy differs from the one the last applied plan was
    /// computed under: what the difference alone causes, found by planning
    /// the same people and accounts under the old policy too and comparing
    /// ([`policy_effect`]).
    async fn policy_change(
        &self,
        people: &[Person],
        observed: &[Observed],
        resolutions: &[Resolution],
        now: OffsetDateTime,
        plan: &Plan,
    ) -> Result<Option<PolicyChange>, EngineError> {
        let Some(current) = self.policy.text_hash() else {
            return Ok(None);
        };
        let Some(last) = self.store.last_applied_plan().await? else {
            return Ok(None);
        };
        let Some(previous) = last.policy.filter(|p| p.hash != current) else {
            return Ok(None);
        };
        let old = match Policy::parse(&format!("policy of plan {}", last.id), &previous.text) {
            Ok(old) => old,
            Err(e) => {
                // A policy this build can no longer read cannot be
                // compared; the plan itself is still sound.
                tracing::warn!(plan = %last.id, error = %e, "cannot re-read the last applied plan's policy");
                return Ok(None);
            }
        };
        let context = GuardContext {
            calendar: self.calendar.clone(),
            ..GuardContext::default()
        };
        let before = reconcile_guarded(people, observed, &old, resolutions, &context, now);
        Ok(Some(PolicyChange {
            since_plan: last.id.to_string(),
            applied_ms: last.applied_ms,
            previous_policy_hash: previous.hash,
            policy_hash: current,
            effect: policy_effect(&before, plan),
        }))
    }
}

/// What [`Engine::find_person_with_source`] found.
pub(crate) struct FoundPerson {
    /// As plans see them: gateway intent folded in, override applied.
    pub planned: Person,
    /// The source of truth's record as stored, if there is one.
    pub source: Option<Person>,
    /// Whether an offboarding override applies.
    pub offboarded: bool,
}

/// An override's status on `person`.
fn apply_override(person: &mut Person, status: EmploymentStatus) {
    person.status = status;
    // An offboarding is now: an end date still ahead must not keep the
    // person's access until then (the calendar keeps a terminated person
    // with a future end date active).
    if status == EmploymentStatus::Terminated {
        person.end_date = None;
    }
}
