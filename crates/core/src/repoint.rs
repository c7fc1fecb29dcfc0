//! Re-pointing what points at a leaver, before their account closes.
//!
//! In an expense app, an employee's reports go to their approver
//! (Expensify: `submitsTo`, written as `managerEmail`, and the second
//! approver `forwardsTo`, written as `approvesTo`; in roster's vocabulary
//! `manager_email` and `approves_to`). When the approver leaves, their
//! reports' reports would go to a closed account, and the app may refuse
//! to close an account others still submit to. So for every active
//! account whose `manager_email` or `approves_to` names a terminated
//! person, the plan gets an update (cause [`Cause::Repoint`]) that moves
//! it to the leaver's manager, the first one up the chain who is not
//! leaving too. Updates sort before deactivations in a connection, so the
//! re-pointing is carried out before the leaver's account closes, through
//! the same plan, approval and apply path as everything else.
//!
//! The same substitution applies to values the plan itself writes (a rule
//! `manager_email = "{manager_email}"` still reading a leaver's address
//! from HR), so a later run never points anyone back at a leaver.
//!
//! **Never point at nobody.** When no successor is known (the leaver has
//! no manager, or everyone up the chain is leaving too, or the successor
//! would be the employee themselves), nothing is re-pointed: the leaver's
//! deactivation in that app is withheld and a
//! [`FindingKind::NoSuccessor`] finding names who still points at them,
//! for a person to decide.
//!
//! A targeted plan (`GuardContext::focus`) re-points only what points at
//! its person.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{EmploymentStatus, Observed, Person};
use crate::plan::{Action, AttributeChange, Cause, Finding, FindingKind, Operation, Plan};

/// The account attributes that name an approver, re-pointed from a leaver.
pub const APPROVER_FIELDS: [&str; 2] = ["manager_email", "approves_to"];

/// How far up a management chain a successor is looked for.
const MAX_CHAIN: usize = 32;

struct People<'a> {
    people: &'a [Person],
    by_address: HashMap<String, usize>,
}

impl<'a> People<'a> {
    fn new(people: &'a [Person]) -> Self {
        let mut by_address = HashMap::new();
        for (i, p) in people.iter().enumerate() {
            for e in std::iter::once(&p.email).chain(p.aliases.iter()) {
                by_address.entry(e.as_str().to_lowercase()).or_insert(i);
            }
        }
        People { people, by_address }
    }

    /// The leaver an address names, if it names one.
    fn leaver(&self, address: &str) -> Option<usize> {
        let i = *self.by_address.get(&address.trim().to_lowercase())?;
        (self.people[i].status == EmploymentStatus::Terminated).then_some(i)
    }

    /// Who takes over from leaver `i`: their manager, or the first one up
    /// the chain who is not leaving. A manager roster does not know as a
    /// person is taken at HR's word.
    fn successor(&self, i: usize) -> Option<String> {
        let mut cur = i;
        let mut seen = BTreeSet::from([i]);
        for _ in 0..MAX_CHAIN {
            let m = self.people[cur].manager_email.as_ref()?;
            let Some(&j) = self.by_address.get(&m.as_str().to_lowercase()) else {
                return Some(m.as_str().to_string());
            };
            if self.people[j].status != EmploymentStatus::Terminated {
                return Some(self.people[j].email.as_str().to_string());
            }
            if !seen.insert(j) {
                return None;
            }
            cur = j;
        }
        None
    }
}

/// Which accounts re-pointing may touch: those whose approver names a
/// leaver. A streamed run keeps only these of each connection (see
/// `crate::reconcile::Streaming`); a superset of what [`repoint`] looks at.
pub(crate) struct Leavers<'a> {
    index: Option<People<'a>>,
}

impl<'a> Leavers<'a> {
    pub(crate) fn new(people: &'a [Person]) -> Self {
        let any = people
            .iter()
            .any(|p| p.status == EmploymentStatus::Terminated);
        Leavers {
            index: any.then(|| People::new(people)),
        }
    }

    /// Whether `acc` is active and names a leaver as its approver.
    pub(crate) fn pointed_at_by(&self, acc: &crate::Account) -> bool {
        let Some(index) = &self.index else {
            return false;
        };
        acc.active
            && APPROVER_FIELDS.iter().any(|f| {
                acc.attributes
                    .get(*f)
                    .is_some_and(|v| index.leaver(v).is_some())
            })
    }
}

/// Sets `field` to `to` in `a`, recording the change (from the account's
/// current value `from`); drops a change that no longer changes anything.
fn set_field(a: &mut Action, field: &str, from: Option<&str>, to: &str) {
    a.attributes.insert(field.to_string(), to.to_string());
    match a.changes.iter_mut().find(|c| c.name == field) {
        Some(c) => c.after = Some(to.to_string()),
        None => a.changes.push(AttributeChange {
            name: field.to_string(),
            before: from.map(str::to_string),
            after: Some(to.to_string()),
        }),
    }
    a.changes.retain(|c| c.before != c.after);
    a.changes.sort_by(|x, y| x.name.cmp(&y.name));
}

/// Adds the re-pointing to `plan` (module docs). `focus`: a targeted
/// plan's person (index into `people`). Runs before the guards judge.
pub(crate) fn repoint(
    plan: &mut Plan,
    people: &[Person],
    observed: &[Observed],
    focus: Option<usize>,
) {
    let index = People::new(people);
    if !people
        .iter()
        .any(|p| p.status == EmploymentStatus::Terminated)
    {
        return;
    }
    // 1. What the plan itself writes never names a leaver.
    for a in plan.actions.iter_mut() {
        if !matches!(
            a.operation,
            Operation::Create | Operation::Update | Operation::Reactivate
        ) {
            continue;
        }
        for field in APPROVER_FIELDS {
            let Some(v) = a.attributes.get(field).cloned() else {
                continue;
            };
            let Some(l) = index.leaver(&v) else { continue };
            if let Some(t) = index
                .successor(l)
                .filter(|t| !a.email.as_str().eq_ignore_ascii_case(t))
            {
                let before = a
                    .changes
                    .iter()
                    .find(|c| c.name == field)
                    .and_then(|c| c.before.clone());
                let from = if a.changes.iter().any(|c| c.name == field) {
                    before
                } else {
                    Some(v.clone())
                };
                set_field(a, field, from.as_deref(), &t);
            }
        }
    }
    plan.actions
        .retain(|a| a.operation != Operation::Update || !a.changes.is_empty());

    // 2. Accounts that point at a leaver are re-pointed.
    let reconciled: BTreeSet<_> = plan.classification.keys().cloned().collect();
    // (connection, leaver) → who still points at them, when no successor.
    let mut stuck: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
    for obs in observed {
        if !reconciled.contains(&obs.connection) {
            continue;
        }
        let closing: BTreeSet<String> = plan
            .actions
            .iter()
            .filter(|a| {
                a.connection == obs.connection
                    && matches!(a.operation, Operation::Deactivate | Operation::Delete)
            })
            .filter_map(|a| a.account.as_ref().map(|k| k.as_str().to_string()))
            .collect();
        let mut updates: Vec<Action> = Vec::new();
        for acc in &obs.accounts {
            if !acc.active || closing.contains(acc.key.as_str()) {
                continue;
            }
            let Some(email) = &acc.email else { continue };
            // A leaver's own account closes; it is not re-pointed.
            if index.leaver(email.as_str()).is_some() {
                continue;
            }
            for field in APPROVER_FIELDS {
                let Some(v) = acc.attributes.get(field) else {
                    continue;
                };
                let Some(l) = index.leaver(v) else { continue };
                if focus.is_some_and(|f| f != l) {
                    continue;
                }
                let Some(t) = index
                    .successor(l)
                    .filter(|t| !email.as_str().eq_ignore_ascii_case(t))
                else {
                    stuck
                        .entry((obs.connection.to_string(), l))
                        .or_default()
                        .push(format!("{email} ({field})"));
                    continue;
                };
                let existing = plan.actions.iter_mut().chain(updates.iter_mut()).find(|a| {
                    a.connection == obs.connection
                        && a.operation == Operation::Update
                        && a.account.as_ref() == Some(&acc.key)
                });
                let reason = format!(
                    "{field} names {}, who is leaving: re-pointed to {t} before their account here closes",
                    people[l].email
                );
                match existing {
                    Some(a) => {
                        set_field(a, field, Some(v), &t);
                        a.reason = format!("{}; {reason}", a.reason);
                    }
                    None => {
                        let mut attributes = acc.attributes.clone();
                        attributes.insert(field.to_string(), t.clone());
                        updates.push(Action {
                            connection: obs.connection.clone(),
                            operation: Operation::Update,
                            employee_id: acc.employee_id.clone(),
                            email: email.clone(),
                            account: Some(acc.key.clone()),
                            attributes,
                            changes: vec![AttributeChange {
                                name: field.to_string(),
                                before: Some(v.clone()),
                                after: Some(t.clone()),
                            }],
                            reason,
                            cause: Cause::Repoint,
                        });
                    }
                }
            }
        }
        plan.actions.extend(updates);
    }

    // 3. Never point at nobody: the leaver's account stays until a person
    //    decides who takes over.
    for ((connection, l), who) in stuck {
        let leaver = &people[l];
        let mut kept = Vec::new();
        plan.actions.retain(|a| {
            let theirs = a.connection.as_str() == connection
                && matches!(a.operation, Operation::Deactivate | Operation::Delete)
                && a.employee_id.as_ref() == Some(&leaver.employee_id);
            if theirs {
                kept.push(a.account.clone());
            }
            !theirs
        });
        plan.findings.push(Finding {
            connection: crate::ConnectionId::new(connection.as_str()),
            kind: FindingKind::NoSuccessor,
            account: kept.into_iter().flatten().next(),
            email: Some(leaver.email.clone()),
            detail: format!(
                "{} is leaving but is still the approver of {}, and roster knows no manager of theirs to move them to: nothing was re-pointed and their account here is kept; set who they submit to (or name {}'s manager in the source of truth), then plan again",
                leaver.email,
                who.join(", "),
                leaver.email
            ),
        });
    }
}
