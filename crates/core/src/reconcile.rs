//! The pure reconcile function: desired state (people × policy) against
//! observed state (accounts) gives a [`Plan`].
//!
//! For every governed connection that was read:
//!
//! 1. correlate each account to a person ([`crate::correlate`]);
//! 2. for each person, ask the policy for an entitlement;
//! 3. classify: missing → create; inactive but entitled → reactivate;
//!    drifted → update; active but not entitled → deactivate (excess);
//!    active and matching nobody → orphan (reported, or deactivated when
//!    the connection's policy says so);
//! 4. sort the actions deterministically and attach a reason and a
//!    [`Cause`] to each;
//! 5. apply the guards ([`crate::guard::judge`]): withhold deactivations
//!    after an incomplete read or a source change, and mark the actions
//!    that need approval.
//!
//! A person only an IdP pushed to the SCIM gateway for connection `C`
//! (attribute `source = "gateway.C"`) stays in that lane: in any other
//! connection only rules whose `when` names `source` or that connection's
//! gateway key (`gateway.D`) can grant them anything. Reasons say where the
//! person came from ("from HR", "pushed by the IdP for spendesk").
//!
//! Invariants: an ambiguous or duplicate account is never acted on; an
//! incomplete read never yields a deactivation; the same inputs always give
//! the same plan, byte for byte.
//!
//! Identity invariant: an account is only ever changed in place, under its
//! own key, for the person it is linked to. Apps that write whole records
//! keyed by address or employee ID (Expensify) would otherwise turn a
//! create or a rename into a takeover of someone else's account, so:
//!
//! * a create is withheld while any account in the app (linked to someone
//!   else, ignored, or unlinked) holds the person's address or employee ID;
//! * a rename is withheld (the rest of the update still goes) while the new
//!   address is held by another account or belongs to another person, or
//!   another account carries the person's employee ID;
//! * an update or reactivation is addressed to the account's current
//!   address unless it renames it;
//! * an account's employee ID is only ever changed to that of the person a
//!   resolution (`roster matches resolve`) linked it to.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use time::OffsetDateTime;

use crate::calendar::{Calendar, Standing};
use crate::correlate::{Correlator, Match, MatchedBy};
use crate::guard::GuardContext;
use crate::ids::{AccountKey, ConnectionId, Email, EmployeeId};
use crate::model::{Account, EmploymentStatus, Observed, Person};
use crate::plan::{
    Action, AttributeChange, Cause, Classification, Finding, FindingKind, Operation, Plan,
};
use crate::policy::{OrphanHandling, Policy, Rule};

/// The attribute that carries an account's address. Compared against the
/// person's addresses (primary and aliases), never against the policy.
pub const EMAIL_ATTRIBUTE: &str = "email";

/// The change that re-keys an account to its resolved person's employee ID.
pub const EMPLOYEE_ID_ATTRIBUTE: &str = "employee_id";

/// The accounts of one connection by lower-cased address and by employee
/// ID: what a create or a rename would land on. Built only when a plan
/// needs one (most runs have few creates and renames).
struct Holders<'a> {
    by_address: HashMap<String, Vec<&'a Account>>,
    by_employee_id: HashMap<&'a str, Vec<&'a Account>>,
}

impl<'a> Holders<'a> {
    fn new(accounts: &'a [Account]) -> Self {
        let mut h = Holders {
            by_address: HashMap::new(),
            by_employee_id: HashMap::new(),
        };
        for a in accounts {
            if let Some(e) = &a.email {
                h.by_address.entry(e.normalized()).or_default().push(a);
            }
            // An inactive account keeps its employee ID in apps that list
            // them (SCIM), where a create never merges by ID; apps that do
            // merge by ID (Expensify) list no inactive accounts.
            if a.active
                && let Some(id) = &a.employee_id
            {
                h.by_employee_id.entry(id.as_str()).or_default().push(a);
            }
        }
        h
    }

    /// An account other than `except` under this address.
    fn address(&self, email: &Email, except: Option<&AccountKey>) -> Option<&'a Account> {
        self.by_address
            .get(&email.normalized())
            .into_iter()
            .flatten()
            .find(|a| Some(&a.key) != except)
            .copied()
    }

    /// An active account other than `except` carrying this employee ID.
    fn employee_id(&self, id: &EmployeeId, except: Option<&AccountKey>) -> Option<&'a Account> {
        self.by_employee_id
            .get(id.as_str())
            .into_iter()
            .flatten()
            .find(|a| Some(&a.key) != except)
            .copied()
    }
}

/// Reconciles every governed connection in `observed`.
///
/// `now` is the reconciliation time; it is used in reasons (e.g. how long
/// ago a person left) and never read from the clock here.
pub fn reconcile(
    people: &[Person],
    observed: &[Observed],
    policy: &Policy,
    now: OffsetDateTime,
) -> Plan {
    reconcile_with(people, observed, policy, &[], now)
}

/// A person's decision about one account's owner, from the match queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub connection: ConnectionId,
    pub account: AccountKey,
    /// `Some`: the account belongs to this person, whatever the rules say.
    /// `None`: not a person roster manages; leave the account alone.
    pub employee_id: Option<EmployeeId>,
}

/// A resolution, looked up against this run's people.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolved {
    Person(usize),
    PersonGone,
    Ignore,
}

/// [`reconcile`], honouring match resolutions: a resolved account is linked
/// (or ignored) as the person decided, and never goes back to the queue.
///
/// Guards judge with an empty [`GuardContext`]: no connection is in its
/// first plan and the source is taken as it is. The engine, which knows
/// better, calls [`reconcile_guarded`].
pub fn reconcile_with(
    people: &[Person],
    observed: &[Observed],
    policy: &Policy,
    resolutions: &[Resolution],
    now: OffsetDateTime,
) -> Plan {
    reconcile_guarded(
        people,
        observed,
        policy,
        resolutions,
        &GuardContext::default(),
        now,
    )
}

/// [`reconcile_with`], with what only the engine knows for the guards
/// (first plans, whole-app counts, a source change).
pub fn reconcile_guarded(
    people: &[Person],
    observed: &[Observed],
    policy: &Policy,
    resolutions: &[Resolution],
    guard: &GuardContext,
    now: OffsetDateTime,
) -> Plan {
    let prepared = Prepared::new(people, guard, now);
    let mut run = prepared.stream(policy, resolutions, guard, now);
    // No rule speaks about an ungoverned app: roster reads it (for
    // reports) but plans nothing for it. A connection listed twice is
    // planned from its last listing.
    let mut by_connection: BTreeMap<&ConnectionId, &Observed> = BTreeMap::new();
    for o in observed {
        if run.governed.contains(&o.connection) {
            by_connection.insert(&o.connection, o);
        }
    }
    // Connections are independent: plan them on every core, then merge.
    // The merged plan is sorted at the end, so the result does not depend
    // on which thread did what.
    let work: Vec<&Observed> = by_connection.into_values().collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(work.len().max(1));
    let chunk = work.len().div_ceil(threads).max(1);
    let parts: Vec<ConnectionPart> = std::thread::scope(|scope| {
        let run = &run;
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|o| run.plan_part(o)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for part in parts {
        run.absorb(part);
    }
    // Every read counts in the digest and the whole-app counts, planned
    // or not.
    run.digests = Vec::new();
    run.active = BTreeMap::new();
    for o in observed {
        run.digests.push(crate::plan::observed_digest_one(o));
        run.active.insert(
            o.connection.clone(),
            o.accounts.iter().filter(|a| a.active).count(),
        );
    }
    run.finish()
}

/// The people of one run, with the status their dates give them at `now`
/// in the company's zone (see `crate::calendar`): what [`Streaming`]
/// borrows. The source's own people are kept for reasons.
pub struct Prepared<'a> {
    source: &'a [Person],
    people: Cow<'a, [Person]>,
    standings: Vec<Standing>,
}

impl<'a> Prepared<'a> {
    pub fn new(people: &'a [Person], guard: &GuardContext, now: OffsetDateTime) -> Self {
        let standings: Vec<Standing> = people
            .iter()
            .map(|p| guard.calendar.standing(p, now))
            .collect();
        let effective: Cow<'a, [Person]> = if people
            .iter()
            .any(|p| guard.calendar.effective_status(p, now) != p.status)
        {
            Cow::Owned(
                people
                    .iter()
                    .map(|p| Person {
                        status: guard.calendar.effective_status(p, now),
                        ..p.clone()
                    })
                    .collect(),
            )
        } else {
            Cow::Borrowed(people)
        };
        Prepared {
            source: people,
            people: effective,
            standings,
        }
    }

    /// A run over these people that takes the connections one at a time.
    pub fn stream<'b>(
        &'b self,
        policy: &'b Policy,
        resolutions: &'b [Resolution],
        guard: &'b GuardContext,
        now: OffsetDateTime,
    ) -> Streaming<'b> {
        let people: &'b [Person] = &self.people;
        let by_id: HashMap<&'b str, usize> = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.employee_id.as_str(), i))
            .collect();
        let resolved: HashMap<(&'b str, &'b str), Resolved> = resolutions
            .iter()
            .map(|r| {
                let target = match &r.employee_id {
                    None => Resolved::Ignore,
                    Some(e) => match by_id.get(e.as_str()) {
                        Some(&i) => Resolved::Person(i),
                        None => Resolved::PersonGone,
                    },
                };
                ((r.connection.as_str(), r.account.as_str()), target)
            })
            .collect();
        // A focus the people do not include plans no one.
        let focus: Option<usize> = guard
            .focus
            .as_ref()
            .map(|f| by_id.get(f.as_str()).copied().unwrap_or(usize::MAX));
        Streaming {
            people,
            dates: Dates {
                calendar: &guard.calendar,
                standings: &self.standings,
                source: self.source,
            },
            correlator: Correlator::new(people, &policy.correlation),
            by_id,
            resolved,
            focus,
            governed: policy.governed_connections().into_iter().collect(),
            leavers: crate::repoint::Leavers::new(people),
            policy,
            guard,
            now,
            parts: BTreeMap::new(),
            digests: Vec::new(),
            active: BTreeMap::new(),
        }
    }
}

/// One connection's share of a run: its actions, findings and
/// classification, the few accounts the whole-plan steps still need
/// (those that point at a leaver, for re-pointing; those deprovisioned,
/// for the role guards), its digest and its count of active accounts.
/// Everything else about its accounts is dropped.
pub struct ConnectionPart {
    connection: ConnectionId,
    plan: Option<Plan>,
    residue: Observed,
    digest: [u8; 32],
    active: usize,
}

/// A reconciliation fed one connection at a time, so that only the people
/// and the connections in hand are in memory, never the whole company's
/// accounts: [`Prepared::stream`], then [`Streaming::add`] (or
/// [`Streaming::plan_part`] on any thread and [`Streaming::absorb`]) for
/// each connection read, then [`Streaming::finish`]. Fed the same
/// connections, it gives the plan [`reconcile_guarded`] gives, byte for
/// byte: each connection is planned alone there too, and the whole-plan
/// steps (re-pointing, the guards, the digest) need only what a part
/// keeps. Feed each connection once.
pub struct Streaming<'b> {
    people: &'b [Person],
    dates: Dates<'b>,
    correlator: Correlator<'b>,
    by_id: HashMap<&'b str, usize>,
    resolved: HashMap<(&'b str, &'b str), Resolved>,
    focus: Option<usize>,
    governed: std::collections::BTreeSet<ConnectionId>,
    leavers: crate::repoint::Leavers<'b>,
    policy: &'b Policy,
    guard: &'b GuardContext,
    now: OffsetDateTime,
    parts: BTreeMap<ConnectionId, (Option<Plan>, Observed)>,
    digests: Vec<[u8; 32]>,
    active: BTreeMap<ConnectionId, usize>,
}

impl Streaming<'_> {
    /// Plans one connection (any thread; nothing is kept until
    /// [`Streaming::absorb`]).
    pub fn plan_part(&self, obs: &Observed) -> ConnectionPart {
        let plan = self.governed.contains(&obs.connection).then(|| {
            let mut partial = Plan::default();
            reconcile_connection(
                &self.correlator,
                &self.resolved,
                &self.by_id,
                self.people,
                self.focus,
                obs,
                self.policy,
                &self.dates,
                self.now,
                &mut partial,
            );
            partial
        });
        let deprovisioned: HashSet<&str> = plan
            .iter()
            .flat_map(|p| p.actions.iter())
            .filter(|a| a.operation.is_deprovision())
            .filter_map(|a| a.account.as_ref().map(AccountKey::as_str))
            .collect();
        let accounts = match &plan {
            None => Vec::new(),
            Some(_) => obs
                .accounts
                .iter()
                .filter(|a| deprovisioned.contains(a.key.as_str()) || self.leavers.pointed_at_by(a))
                .cloned()
                .collect(),
        };
        ConnectionPart {
            connection: obs.connection.clone(),
            plan,
            residue: Observed {
                connection: obs.connection.clone(),
                accounts,
                complete: obs.complete,
                incomplete_reason: obs.incomplete_reason.clone(),
            },
            digest: crate::plan::observed_digest_one(obs),
            active: obs.accounts.iter().filter(|a| a.active).count(),
        }
    }

    /// Keeps a part planned by [`Streaming::plan_part`].
    pub fn absorb(&mut self, part: ConnectionPart) {
        self.digests.push(part.digest);
        self.active.insert(part.connection.clone(), part.active);
        self.parts
            .insert(part.connection, (part.plan, part.residue));
    }

    /// Plans one connection and keeps its part.
    pub fn add(&mut self, obs: &Observed) {
        let part = self.plan_part(obs);
        self.absorb(part);
    }

    /// The plan: parts merged in connection order, re-pointing, sorting
    /// and the guards, as [`reconcile_guarded`] does.
    pub fn finish(self) -> Plan {
        let mut plan = Plan {
            observed_digest: crate::plan::observed_digest_of(self.digests),
            ..Plan::default()
        };
        let mut residue = Vec::with_capacity(self.parts.len());
        for (_, (partial, kept)) in self.parts {
            if let Some(partial) = partial {
                plan.actions.extend(partial.actions);
                plan.findings.extend(partial.findings);
                plan.classification.extend(partial.classification);
            }
            residue.push(kept);
        }
        // What points at a leaver moves to their manager, before their
        // account closes (updates sort before deactivations below).
        crate::repoint::repoint(&mut plan, self.people, &residue, self.focus);
        plan.actions.sort_by_cached_key(|a| {
            (
                a.connection.clone(),
                op_rank(a.operation),
                a.email.normalized(),
                a.account.clone(),
            )
        });
        plan.findings.sort_by(|a, b| {
            (&a.connection, a.kind, &a.email, &a.account).cmp(&(
                &b.connection,
                b.kind,
                &b.email,
                &b.account,
            ))
        });
        // The whole apps' active counts, as the parts counted them (a
        // targeted run brings its own).
        let guard = match &self.guard.active_counts {
            Some(_) => Cow::Borrowed(self.guard),
            None => Cow::Owned(GuardContext {
                active_counts: Some(self.active),
                ..self.guard.clone()
            }),
        };
        crate::guard::judge(&mut plan, self.policy, &residue, &guard);
        plan
    }
}

fn op_rank(op: Operation) -> u8 {
    match op {
        Operation::Create => 0,
        Operation::Reactivate => 1,
        Operation::Update => 2,
        Operation::Deactivate => 3,
        Operation::Delete => 4,
        Operation::Read => 5,
    }
}

/// What the people's dates say, for one run (see `crate::calendar`).
struct Dates<'a> {
    calendar: &'a Calendar,
    /// Each person's standing at `now`, by index.
    standings: &'a [Standing],
    /// The people as the source gave them (before their dates changed
    /// their status), by index.
    source: &'a [Person],
}

impl Dates<'_> {
    /// The joiner's start date and provisioning time, while it is ahead.
    fn not_yet_started(&self, i: usize) -> Option<(time::Date, OffsetDateTime)> {
        match self.standings.get(i) {
            Some(Standing::NotYetStarted { start, from }) => Some((*start, *from)),
            _ => None,
        }
    }

    /// Why a not-yet-started joiner gets nothing yet.
    fn scheduled_joiner(
        &self,
        person: &Person,
        connection: &ConnectionId,
        i: usize,
    ) -> Option<Finding> {
        let (start, from) = self.not_yet_started(i)?;
        Some(Finding {
            connection: connection.clone(),
            kind: FindingKind::Scheduled,
            account: None,
            email: Some(person.email.clone()),
            detail: format!(
                "{} starts {start} ({zone}); access to {connection} is scheduled from the start of {} ({zone}, provision_days_before_start = {})",
                who(person),
                self.calendar.local_date(from),
                self.calendar.provision_days_before_start(),
                zone = self.calendar.zone_name(),
            ),
        })
    }
}

/// A resolution made for an account that the app now shows to be
/// somebody else's in every respect: its employee ID and its address both
/// belong to one other person. In apps keyed by address (Expensify), that
/// is a new account under a reused address, not the one a person decided
/// about, so the decision no longer applies to it.
fn stale_resolution(
    correlator: &Correlator<'_>,
    people: &[Person],
    by_id: &HashMap<&str, usize>,
    account: &Account,
    resolution: Resolved,
) -> bool {
    let (Some(id), Some(email)) = (&account.employee_id, &account.email) else {
        return false;
    };
    let Some(&j) = by_id.get(id.as_str()) else {
        return false;
    };
    let other = match resolution {
        Resolved::Person(i) => i != j,
        Resolved::Ignore | Resolved::PersonGone => true,
    };
    other && correlator.is_address_of(email, &people[j])
}

#[allow(clippy::too_many_arguments)]
fn reconcile_connection(
    correlator: &Correlator<'_>,
    resolved: &HashMap<(&str, &str), Resolved>,
    by_id: &HashMap<&str, usize>,
    people: &[Person],
    focus: Option<usize>,
    obs: &Observed,
    policy: &Policy,
    dates: &Dates<'_>,
    now: OffsetDateTime,
    plan: &mut Plan,
) {
    // A targeted run (see `GuardContext::focus`) decides for one person.
    let decides_for = |i: usize| focus.is_none_or(|f| f == i);
    let connection = &obs.connection;
    let settings = policy.connection(connection);
    let managed = policy.managed_attributes(connection);
    let mut class = Classification::default();
    // Deactivations are planned whatever the read's completeness; the
    // guards withhold them after an incomplete read (`crate::guard`).

    // 1. Correlate. When several accounts match one person, the primary is
    //    the active one, then the one under the person's own address, then
    //    the one matched by the strongest rule; the others are duplicates.
    let mut matches: HashMap<usize, Vec<(&Account, MatchedBy)>> = HashMap::new();
    let mut held: HashSet<usize> = HashSet::new();
    for account in &obs.accounts {
        let resolution = resolved
            .get(&(connection.as_str(), account.key.as_str()))
            .filter(|r| !stale_resolution(correlator, people, by_id, account, **r));
        let outcome = match resolution {
            Some(Resolved::Ignore) => {
                class.ignored += 1;
                continue;
            }
            // Linked by a person to someone the source no longer lists:
            // that is an orphan now.
            Some(Resolved::PersonGone) => Match::None,
            Some(Resolved::Person(i)) => Match::Person(*i, MatchedBy::Resolved),
            None => correlator.correlate(account),
        };
        match outcome {
            Match::Person(i, by) => matches.entry(i).or_default().push((account, by)),
            Match::Ambiguous(why, involved) => {
                class.unmatched += 1;
                let mine = focus.is_none_or(|f| involved.contains(&f));
                held.extend(involved);
                if !mine {
                    continue;
                }
                plan.findings.push(Finding {
                    connection: connection.clone(),
                    kind: FindingKind::Ambiguous,
                    account: Some(account.key.clone()),
                    email: account.email.clone(),
                    detail: format!(
                        "not linked: {why}; roster neither changes this account nor creates one for them until the match is resolved"
                    ),
                });
            }
            // Orphans are the full run's business: a targeted run sees only
            // the accounts found under one person's identifiers.
            Match::None if focus.is_some() => {}
            Match::None if account.active => {
                class.orphan += 1;
                let deactivate = settings.orphans == OrphanHandling::Deactivate;
                plan.findings.push(Finding {
                    connection: connection.clone(),
                    kind: FindingKind::Orphan,
                    account: Some(account.key.clone()),
                    email: account.email.clone(),
                    detail: if deactivate {
                        "active account matches no person".to_string()
                    } else {
                        "active account matches no person; reported only (orphans = \"report\")"
                            .to_string()
                    },
                });
                if deactivate && let Some(email) = account.email.clone() {
                    plan.actions.push(Action {
                        connection: connection.clone(),
                        operation: Operation::Deactivate,
                        employee_id: None,
                        email,
                        account: Some(account.key.clone()),
                        attributes: BTreeMap::new(),
                        changes: Vec::new(),
                        reason: "orphan: no person in the source of truth matches this account"
                            .to_string(),
                        cause: Cause::Orphan,
                    });
                }
            }
            Match::None => class.inactive += 1,
        }
    }
    let mut linked: HashMap<usize, (&Account, MatchedBy)> = HashMap::with_capacity(matches.len());
    for (i, mut candidates) in matches {
        let person = &people[i];
        candidates.sort_by_key(|(a, by)| {
            (
                !a.active,
                a.email.as_ref() != Some(&person.email),
                match by {
                    MatchedBy::Resolved => 0,
                    MatchedBy::EmployeeId => 1,
                    MatchedBy::Email => 2,
                    MatchedBy::Alias => 3,
                },
                a.key.clone(),
            )
        });
        let (primary, primary_by) = candidates[0];
        for (dup, _) in &candidates[1..] {
            class.unmatched += 1;
            if !decides_for(i) {
                continue;
            }
            plan.findings.push(Finding {
                connection: connection.clone(),
                kind: FindingKind::Duplicate,
                account: Some(dup.key.clone()),
                email: dup.email.clone(),
                detail: format!(
                    "{} already has account {} in {connection}; this second account is left alone until someone decides",
                    person.email, primary.key
                ),
            });
        }
        linked.insert(i, (primary, primary_by));
    }
    let owner_of: HashMap<&str, usize> = linked
        .iter()
        .map(|(i, (a, _))| (a.key.as_str(), *i))
        .collect();
    let mut holders: Option<Holders<'_>> = None;
    // Who an account belongs to, in words, for the findings below.
    let describe = |a: &Account| -> String {
        let who = match owner_of.get(a.key.as_str()) {
            Some(&j) => format!("linked to {} ({})", people[j].email, people[j].employee_id),
            None => "linked to no one".to_string(),
        };
        format!(
            "account {} ({}, employee ID {}; {who})",
            a.key,
            a.email.as_ref().map(|e| e.as_str()).unwrap_or("no address"),
            a.employee_id.as_ref().map(|e| e.as_str()).unwrap_or("none")
        )
    };

    // 2–3. Compare each person's entitlement with their account.
    let connection_rules = policy.rules_for(connection);
    for (i, person) in people.iter().enumerate() {
        if !decides_for(i) {
            continue;
        }
        let entitlement = if in_lane(person, connection) {
            policy.entitlement_among(&connection_rules, person, connection)
        } else {
            let explicit = rules_naming_lane(&connection_rules);
            policy.entitlement_among(&explicit, person, connection)
        };
        let (account, linked_by) = match linked.get(&i) {
            Some((a, by)) => (Some(*a), Some(*by)),
            None => (None, None),
        };
        // Someone the source already marks as terminated keeps an active
        // account until the end of their end date; say so, since the
        // source alone would have them out today.
        if let (Some(Standing::Leaving { end, until }), Some(_), Some(a)) =
            (dates.standings.get(i), &entitlement, account)
            && a.active
            && dates.source.get(i).map(|p| p.status) == Some(EmploymentStatus::Terminated)
        {
            plan.findings.push(Finding {
                connection: connection.clone(),
                kind: FindingKind::Scheduled,
                account: Some(a.key.clone()),
                email: a.email.clone().or_else(|| Some(person.email.clone())),
                detail: format!(
                    "{} is terminated in the source but ends {end} ({zone}): keeps {connection} until the end of that day, deactivated from the start of {} ({zone})",
                    who(person),
                    dates.calendar.local_date(*until),
                    zone = dates.calendar.zone_name(),
                ),
            });
        }
        match (entitlement, account) {
            (Some(_), None) if held.contains(&i) => {
                class.missing += 1;
            }
            // A joiner whose start date is ahead: nothing is created or
            // reactivated before their provisioning day; the plan says
            // when it will be.
            (Some(ent), account)
                if ent.unresolved.is_empty()
                    && account.is_none_or(|a| !a.active)
                    && dates.not_yet_started(i).is_some() =>
            {
                if account.is_some() {
                    class.inactive += 1;
                }
                if let Some(f) = dates.scheduled_joiner(person, connection, i) {
                    plan.findings.push(f);
                }
            }
            // A lookup found no value: creating, updating or reactivating
            // the account without it (say, without its workspace) is worse
            // than waiting, so the person's account is left as it is and a
            // person is told which table lacks which key.
            (Some(ent), account) if !ent.unresolved.is_empty() => {
                if account.is_some() {
                    class.drifted += 1;
                } else {
                    class.missing += 1;
                }
                plan.findings
                    .push(unresolved_finding(person, connection, &ent, account));
            }
            (Some(ent), None) => {
                class.missing += 1;
                let h = holders.get_or_insert_with(|| Holders::new(&obs.accounts));
                let taken = h
                    .address(&person.email, None)
                    .map(|a| (a, "address"))
                    .or_else(|| {
                        h.employee_id(&person.employee_id, None)
                            .map(|a| (a, "employee ID"))
                    });
                if let Some((holder, what)) = taken {
                    plan.findings.push(Finding {
                        connection: connection.clone(),
                        kind: FindingKind::Ambiguous,
                        account: Some(holder.key.clone()),
                        email: Some(person.email.clone()),
                        detail: format!(
                            "no account created for {} ({}): their {what} is held by {}; a create would take that account over. \
                             Resolve it with `roster matches resolve`, or remove it in {connection}",
                            person.email,
                            person.employee_id,
                            describe(holder)
                        ),
                    });
                    continue;
                }
                let mut attributes = ent.owned_attributes();
                attributes.insert(EMAIL_ATTRIBUTE.into(), person.email.to_string());
                plan.actions.push(Action {
                    connection: connection.clone(),
                    operation: Operation::Create,
                    employee_id: Some(person.employee_id.clone()),
                    email: person.email.clone(),
                    account: None,
                    attributes,
                    changes: Vec::new(),
                    reason: format!(
                        "{} is {} and {} {connection}; no account found",
                        who(person),
                        person.status,
                        grants(&ent.rules)
                    ),
                    cause: Cause::Grant,
                });
            }
            (Some(ent), Some(account)) => {
                let mut changes = diff(correlator, person, account, &ent.attributes, &managed);
                if account.active && changes.is_empty() && linked_by != Some(MatchedBy::Resolved) {
                    // Linked and as desired: the common case, kept cheap.
                    class.linked += 1;
                    continue;
                }
                if linked_by == Some(MatchedBy::Resolved)
                    && let Some(id) = &account.employee_id
                    && id != &person.employee_id
                {
                    // A person linked this account to this person: it takes
                    // their employee ID, so the app keys it to them.
                    changes.push(AttributeChange {
                        name: EMPLOYEE_ID_ATTRIBUTE.into(),
                        before: Some(id.to_string()),
                        after: Some(person.employee_id.to_string()),
                    });
                }
                if changes.iter().any(|c| c.name == EMAIL_ATTRIBUTE) {
                    let h = holders.get_or_insert_with(|| Holders::new(&obs.accounts));
                    let others: Vec<usize> = correlator
                        .people_with_address(&person.email)
                        .into_iter()
                        .filter(|&j| j != i)
                        .collect();
                    let blocked = if let Some(other) = h.address(&person.email, Some(&account.key))
                    {
                        Some(format!("{} is held by {}", person.email, describe(other)))
                    } else if let Some(&j) = others.first() {
                        Some(format!(
                            "{} is also an address of {} ({}) in the source of truth",
                            person.email, people[j].email, people[j].employee_id
                        ))
                    } else {
                        h.employee_id(&person.employee_id, Some(&account.key))
                            .map(|other| {
                                format!(
                                    "employee ID {} is also carried by {}",
                                    person.employee_id,
                                    describe(other)
                                )
                            })
                    };
                    if let Some(why) = blocked {
                        changes.retain(|c| c.name != EMAIL_ATTRIBUTE);
                        plan.findings.push(Finding {
                            connection: connection.clone(),
                            kind: FindingKind::Ambiguous,
                            account: Some(account.key.clone()),
                            email: account.email.clone(),
                            detail: format!(
                                "not renamed to {}: {why}; a rename would merge with or take over that account. \
                                 The account stays under its address until that is settled",
                                person.email
                            ),
                        });
                    }
                }
                if account.active && changes.is_empty() {
                    class.linked += 1;
                    continue;
                }
                // The account's own address, unless this change renames it:
                // apps that key records by address must write this account.
                let address = if changes.iter().any(|c| c.name == EMAIL_ATTRIBUTE) {
                    person.email.clone()
                } else {
                    account
                        .email
                        .clone()
                        .unwrap_or_else(|| person.email.clone())
                };
                let mut attributes = ent.owned_attributes();
                attributes.insert(EMAIL_ATTRIBUTE.into(), address.to_string());
                if !account.active {
                    class.drifted += 1;
                    plan.actions.push(Action {
                        connection: connection.clone(),
                        operation: Operation::Reactivate,
                        employee_id: Some(person.employee_id.clone()),
                        email: address,
                        account: Some(account.key.clone()),
                        attributes,
                        changes,
                        reason: format!(
                            "{} is {} again and {} {connection}; the account is deactivated",
                            who(person),
                            person.status,
                            grants(&ent.rules)
                        ),
                        cause: Cause::Regrant,
                    });
                } else if !changes.is_empty() {
                    class.drifted += 1;
                    let reason =
                        format!("{}: {}", who(person), update_reason(&changes, &ent.rules));
                    plan.actions.push(Action {
                        connection: connection.clone(),
                        operation: Operation::Update,
                        employee_id: Some(person.employee_id.clone()),
                        email: address,
                        account: Some(account.key.clone()),
                        attributes,
                        changes,
                        reason,
                        cause: Cause::Drift,
                    });
                } else {
                    class.linked += 1;
                }
            }
            (None, Some(account)) if account.active => {
                class.excess += 1;
                plan.actions.push(Action {
                    connection: connection.clone(),
                    operation: Operation::Deactivate,
                    employee_id: Some(person.employee_id.clone()),
                    email: account
                        .email
                        .clone()
                        .unwrap_or_else(|| person.email.clone()),
                    account: Some(account.key.clone()),
                    attributes: BTreeMap::new(),
                    changes: Vec::new(),
                    reason: match settings.grace_days {
                        Some(g) => format!(
                            "{}; suspended now, deleted {g} days after the end date",
                            leaver_reason(person, connection, dates, i, now)
                        ),
                        None => leaver_reason(person, connection, dates, i, now),
                    },
                    cause: if person.status == EmploymentStatus::Terminated {
                        Cause::Left
                    } else {
                        Cause::NoLongerGranted
                    },
                });
            }
            (None, Some(account)) => {
                class.inactive += 1;
                if let Some(grace) = settings.grace_days
                    && person.status == EmploymentStatus::Terminated
                    && let Some(end) = person.end_date
                    && (now.date() - end).whole_days() >= i64::from(grace)
                {
                    plan.actions.push(Action {
                        connection: connection.clone(),
                        operation: Operation::Delete,
                        employee_id: Some(person.employee_id.clone()),
                        email: account.email.clone().unwrap_or_else(|| person.email.clone()),
                        account: Some(account.key.clone()),
                        attributes: BTreeMap::new(),
                        changes: Vec::new(),
                        reason: format!(
                            "{} left on {end}; the account is suspended and {connection}'s grace period of {grace} days is over",
                            who(person)
                        ),
                        cause: Cause::GraceExpired,
                    });
                }
            }
            (None, None) => {}
        }
    }
    plan.classification.insert(connection.clone(), class);
}

fn unresolved_finding(
    person: &Person,
    connection: &ConnectionId,
    ent: &crate::policy::Entitlement<'_>,
    account: Option<&Account>,
) -> Finding {
    let what = ent
        .unresolved
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let withheld = match account {
        None => "no account is created",
        Some(a) if !a.active => "the account is not reactivated or changed",
        Some(_) => "the account is not changed",
    };
    Finding {
        connection: connection.clone(),
        kind: FindingKind::UnresolvedLookup,
        account: account.map(|a| a.key.clone()),
        email: Some(person.email.clone()),
        detail: format!(
            "{} ({}): {} {connection}, but {what}; {withheld} until the table has a value (or the rule a default)",
            person.display_name(),
            person.employee_id,
            grants(&ent.rules)
        ),
    }
}

/// The attribute that says where a person came from when it was not the
/// source of truth: `gateway.C` for someone only an IdP pushed to the SCIM
/// gateway for connection `C`.
pub const SOURCE_ATTRIBUTE: &str = "source";

/// The connection whose gateway push created this person, when the source
/// of truth does not know them.
pub fn pushed_for(person: &Person) -> Option<&str> {
    person
        .attributes
        .get(SOURCE_ATTRIBUTE)
        .and_then(|s| s.strip_prefix("gateway."))
}

/// Is this connection in the person's lane? Everyone from the source of
/// truth is in every lane; a pushed person only in the connections an IdP
/// pushed them for.
fn in_lane(person: &Person, connection: &ConnectionId) -> bool {
    pushed_for(person).is_none()
        || person
            .attributes
            .contains_key(&format!("gateway.{connection}"))
}

/// The rules that may grant a connection to someone pushed for another:
/// those whose `when` names `source` or a gateway key, and every deny rule.
fn rules_naming_lane<'p>(rules: &[&'p Rule]) -> Vec<&'p Rule> {
    rules
        .iter()
        .copied()
        .filter(|r| {
            r.deny
                || r.when
                    .keys()
                    .any(|k| k == SOURCE_ATTRIBUTE || k.starts_with("gateway."))
        })
        .collect()
}

/// A person as reasons name them: their name and where they came from.
/// Someone an identity provider lists is named with its state there
/// (`source.okta: DEPROVISIONED`), so a termination that came from the IdP
/// says so rather than blaming HR.
fn who(person: &Person) -> String {
    match pushed_for(person) {
        Some(c) => format!("{} (pushed by the IdP for {c})", person.display_name()),
        None => match (
            person.attributes.get(IDP_SOURCE_ATTRIBUTE),
            person.attributes.get(IDP_STATE_ATTRIBUTE),
        ) {
            (Some(source), Some(state)) => {
                format!("{} ({source}: {state})", person.display_name())
            }
            (Some(source), None) => format!("{} (from {source})", person.display_name()),
            _ => format!("{} (from HR)", person.display_name()),
        },
    }
}

/// The attribute naming the identity provider a person was read from
/// (`source.okta`), set by the engine's source import.
pub const IDP_SOURCE_ATTRIBUTE: &str = "idp_source";
/// The person's raw state in that identity provider (`ACTIVE`,
/// `DEPROVISIONED`, ...).
pub const IDP_STATE_ATTRIBUTE: &str = "idp_state";

fn quote_rules(rules: &[&str]) -> String {
    rules
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// `rule "a" grants` or `rules "a" + "b" grant`.
fn grants(rules: &[&str]) -> String {
    if rules.len() == 1 {
        format!("rule {} grants", quote_rules(rules))
    } else {
        format!("rules {} grant", quote_rules(rules))
    }
}

/// Says where each changed value comes from: the address from the source of
/// truth, everything else from the policy's rules.
fn update_reason(changes: &[AttributeChange], rules: &[&str]) -> String {
    let mut parts = Vec::new();
    if changes.iter().any(|c| c.name == EMAIL_ATTRIBUTE) {
        parts.push("the person's address changed in the source of truth".to_string());
    }
    if changes.iter().any(|c| c.name == EMPLOYEE_ID_ATTRIBUTE) {
        parts.push(
            "a person linked this account to them (`roster matches resolve`), so it takes their employee ID"
                .to_string(),
        );
    }
    let names: Vec<&str> = changes
        .iter()
        .filter(|c| c.name != EMAIL_ATTRIBUTE && c.name != EMPLOYEE_ID_ATTRIBUTE)
        .map(|c| c.name.as_str())
        .collect();
    if !names.is_empty() {
        let (verb, sets) = if rules.len() == 1 {
            ("rule", "sets")
        } else {
            ("rules", "set")
        };
        parts.push(format!(
            "{} differ{} from what {verb} {} {sets}",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" },
            quote_rules(rules)
        ));
    }
    parts.join("; ")
}

fn leaver_reason(
    person: &Person,
    connection: &ConnectionId,
    dates: &Dates<'_>,
    i: usize,
    now: OffsetDateTime,
) -> String {
    // Terminated by the date alone: the source still says otherwise.
    if let Some(Standing::Ended { end, .. }) = dates.standings.get(i)
        && let Some(source) = dates.source.get(i)
        && source.status != EmploymentStatus::Terminated
    {
        return format!(
            "{} is {} in the source but ends {end} ({}): access closed at the end of that day; no rule grants {connection} to a leaver",
            who(person),
            match source.status {
                EmploymentStatus::Leave => "on leave",
                s => s.as_str(),
            },
            dates.calendar.zone_name()
        );
    }
    match person.status {
        EmploymentStatus::Terminated => match person.end_date {
            Some(end) => {
                let days = (dates.calendar.local_date(now) - end).whole_days();
                if days >= 0 {
                    format!(
                        "{} was terminated on {end} ({days} days ago); no rule grants {connection} to a leaver",
                        who(person)
                    )
                } else {
                    format!(
                        "{} is terminated with end date {end}; no rule grants {connection} to a leaver",
                        who(person)
                    )
                }
            }
            None => format!(
                "{} is terminated; no rule grants {connection} to a leaver",
                who(person)
            ),
        },
        status => format!(
            "{} is {status} but no rule grants them {connection} any more",
            who(person)
        ),
    }
}

/// The managed attributes whose account value differs from the desired one.
fn diff(
    correlator: &Correlator<'_>,
    person: &Person,
    account: &Account,
    desired: &BTreeMap<&str, String>,
    managed: &[String],
) -> Vec<AttributeChange> {
    let mut changes = Vec::new();
    if let Some(email) = &account.email
        && !correlator.is_address_of(email, person)
    {
        changes.push(AttributeChange {
            name: EMAIL_ATTRIBUTE.into(),
            before: Some(email.to_string()),
            after: Some(person.email.to_string()),
        });
    }
    for name in managed {
        let Some(want) = desired.get(name.as_str()) else {
            continue;
        };
        let have = account.attributes.get(name);
        if !same_value(name, have.map(String::as_str), want) {
            changes.push(AttributeChange {
                name: name.clone(),
                before: have.cloned(),
                after: Some(want.clone()),
            });
        }
    }
    changes
}

/// Attributes that hold addresses compare case-insensitively; everything
/// else exactly.
fn same_value(name: &str, have: Option<&str>, want: &str) -> bool {
    match have {
        None => false,
        Some(have)
            if name.ends_with("email")
                || name == "approves_to"
                || name == "over_limit_approver" =>
        {
            have.trim().eq_ignore_ascii_case(want.trim())
        }
        Some(have) => have == want,
    }
}
