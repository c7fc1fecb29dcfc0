//! Correlation: which person, if any, an account belongs to.
//!
//! Rules run in the configured order (by default employee ID, then email,
//! then aliases). The first rule that finds exactly one person names the
//! candidate; a later rule that names a *different* person makes the match
//! a conflict. A rule that finds several people, before any candidate, makes
//! it ambiguous. Conflicts and ambiguities are never linked: the account is
//! unknown (and never deprovisioned) until a person resolves it.
//!
//! Emails compare case-insensitively, and addresses in equivalent domains
//! (`alice@acme.io` = `alice@acme.com` when configured) compare equal.
//!
//! One identifier alone never hands an account to a person when the app's
//! own record says otherwise, because a link decides whose history the
//! account carries from then on:
//!
//! * matched by address, but the account carries a *different* employee ID
//!   (an address reused by a new hire after its owner left), or a name that
//!   shares neither first nor last name with the person: a conflict;
//! * matched by employee ID under an address that is not the person's (a
//!   rename would follow): only when the account's name agrees with the
//!   person's (first or last name). A disagreeing name is a reused employee
//!   ID; no name at all leaves nothing to confirm it. Both are conflicts,
//!   which a person settles with `roster matches resolve`.

use std::collections::HashMap;

use crate::ids::Email;
use crate::model::{Account, Person};
use crate::policy::{CorrelationRule, CorrelationSettings};

/// How an account was matched to its person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// A person said so (the match queue).
    Resolved,
    EmployeeId,
    Email,
    Alias,
}

/// The outcome of correlating one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Index into the people slice the correlator was built from.
    Person(usize, MatchedBy),
    None,
    /// Never linked automatically; the string says why, and the indices
    /// name the people involved (none of them gets a new account while the
    /// match is open, or the resolution would find two).
    Ambiguous(String, Vec<usize>),
}

/// An index over people, built once per reconciliation.
pub struct Correlator<'a> {
    people: &'a [Person],
    settings: &'a CorrelationSettings,
    by_employee_id: HashMap<&'a str, Vec<usize>>,
    by_email: HashMap<String, Vec<usize>>,
    by_alias: HashMap<String, Vec<usize>>,
    domain_alias: HashMap<String, String>,
}

impl<'a> Correlator<'a> {
    pub fn new(people: &'a [Person], settings: &'a CorrelationSettings) -> Self {
        let mut domain_alias = HashMap::new();
        for group in &settings.equivalent_domains {
            if let Some(first) = group.first() {
                for d in group {
                    domain_alias.insert(d.to_lowercase(), first.to_lowercase());
                }
            }
        }
        let mut c = Correlator {
            people,
            settings,
            by_employee_id: HashMap::with_capacity(people.len()),
            by_email: HashMap::with_capacity(people.len()),
            by_alias: HashMap::new(),
            domain_alias,
        };
        for (i, p) in people.iter().enumerate() {
            c.by_employee_id
                .entry(p.employee_id.as_str())
                .or_default()
                .push(i);
            let key = c.canonical(&p.email);
            c.by_email.entry(key).or_default().push(i);
            for alias in &p.aliases {
                let key = c.canonical(alias);
                c.by_alias.entry(key).or_default().push(i);
            }
        }
        c
    }

    /// The lookup key of an address: lower-cased, with its domain replaced
    /// by the first domain of its equivalence group.
    pub fn canonical(&self, email: &Email) -> String {
        let lower = email.normalized();
        if self.domain_alias.is_empty() {
            return lower;
        }
        match lower.split_once('@') {
            Some((local, domain)) => match self.domain_alias.get(domain) {
                Some(first) => format!("{local}@{first}"),
                None => lower,
            },
            None => lower,
        }
    }

    /// Does this address belong to this person (primary or alias)?
    pub fn is_address_of(&self, email: &Email, person: &Person) -> bool {
        // Fast path, no allocation: the same address up to case.
        if email.as_str().eq_ignore_ascii_case(person.email.as_str()) {
            return true;
        }
        let key = self.canonical(email);
        key == self.canonical(&person.email)
            || person.aliases.iter().any(|a| self.canonical(a) == key)
    }

    /// The people (by index) whose primary address or alias `email` is.
    pub fn people_with_address(&self, email: &Email) -> Vec<usize> {
        let key = self.canonical(email);
        let mut found: Vec<usize> = self
            .by_email
            .get(&key)
            .into_iter()
            .chain(self.by_alias.get(&key))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    pub fn correlate(&self, account: &Account) -> Match {
        let mut candidate: Option<(usize, MatchedBy)> = None;
        for rule in &self.settings.order {
            let (found, by): (Option<&Vec<usize>>, MatchedBy) = match rule {
                CorrelationRule::EmployeeId => (
                    account
                        .employee_id
                        .as_ref()
                        .and_then(|id| self.by_employee_id.get(id.as_str())),
                    MatchedBy::EmployeeId,
                ),
                CorrelationRule::Email => (
                    account
                        .email
                        .as_ref()
                        .and_then(|e| self.by_email.get(&self.canonical(e))),
                    MatchedBy::Email,
                ),
                CorrelationRule::Aliases => (
                    account
                        .email
                        .as_ref()
                        .and_then(|e| self.by_alias.get(&self.canonical(e))),
                    MatchedBy::Alias,
                ),
            };
            let Some(found) = found else { continue };
            match (candidate, found.as_slice()) {
                (_, []) => {}
                (None, [one]) => candidate = Some((*one, by)),
                (None, many) => {
                    return Match::Ambiguous(
                        format!(
                            "{} people match by {}: {}",
                            many.len(),
                            rule_name(*rule),
                            self.names(many)
                        ),
                        many.to_vec(),
                    );
                }
                (Some((c, _)), many) if many.contains(&c) => {}
                (Some((c, cby)), other) => {
                    let mut involved = other.to_vec();
                    involved.push(c);
                    return Match::Ambiguous(
                        format!(
                            "{} says {} but {} says {}",
                            by_name(cby),
                            self.people[c].email,
                            rule_name(*rule),
                            self.names(other)
                        ),
                        involved,
                    );
                }
            }
        }
        match candidate {
            Some((i, by)) => match self.contradiction(account, i, by) {
                Some(why) => Match::Ambiguous(why, vec![i]),
                None => Match::Person(i, by),
            },
            None => Match::None,
        }
    }

    /// Why the app's record of `account` says it is not person `i`'s,
    /// though one identifier matched (see the module docs).
    fn contradiction(&self, account: &Account, i: usize, by: MatchedBy) -> Option<String> {
        let person = &self.people[i];
        let who = format!("{} ({})", person.email, person.employee_id);
        let uses_ids = self.settings.order.contains(&CorrelationRule::EmployeeId);
        match by {
            MatchedBy::Resolved => None,
            MatchedBy::EmployeeId => {
                let email = account.email.as_ref()?;
                if self.is_address_of(email, person) {
                    return None;
                }
                match names_agree(account, person) {
                    Some(true) => None,
                    Some(false) => Some(format!(
                        "employee ID {} is {who}'s, but the account under {email} belongs to {} in the app; \
                         an employee ID reused for someone new? roster will not rename it",
                        person.employee_id,
                        account_name(account)
                    )),
                    None => Some(format!(
                        "employee ID {} is {who}'s, but the account is under {email}, which is not theirs, \
                         and the app gives no name to confirm it is the same person; roster will not rename it",
                        person.employee_id
                    )),
                }
            }
            MatchedBy::Email | MatchedBy::Alias => {
                if uses_ids
                    && let Some(id) = &account.employee_id
                    && id != &person.employee_id
                {
                    return Some(format!(
                        "the address is {who}'s, but the account carries employee ID {id}; \
                         an address reused after its owner left?"
                    ));
                }
                if names_agree(account, person) == Some(false) {
                    return Some(format!(
                        "the address is {who}'s, but the account belongs to {} in the app",
                        account_name(account)
                    ));
                }
                None
            }
        }
    }

    /// The people at these indices, sorted so messages do not depend on
    /// input order.
    fn names(&self, idx: &[usize]) -> String {
        let mut names: Vec<String> = idx
            .iter()
            .map(|&i| format!("{} ({})", self.people[i].email, self.people[i].employee_id))
            .collect();
        names.sort();
        names.join(", ")
    }
}

/// The first and last name the app holds for the account, when it holds
/// any (connectors read them as `first_name` / `last_name`).
fn account_names(account: &Account) -> (Option<&str>, Option<&str>) {
    let get = |k: &str| {
        account
            .attributes
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    (get("first_name"), get("last_name"))
}

/// `Some(true)` when the app's first or last name for the account equals
/// the person's (case-insensitively: a marriage changes one, rarely both),
/// `Some(false)` when it names someone else, `None` when it has no name.
fn names_agree(account: &Account, person: &Person) -> Option<bool> {
    let (first, last) = account_names(account);
    if first.is_none() && last.is_none() {
        return None;
    }
    let same =
        |have: Option<&str>, want: &str| have.is_some_and(|h| h.eq_ignore_ascii_case(want.trim()));
    Some(same(first, &person.first_name) || same(last, &person.last_name))
}

fn account_name(account: &Account) -> String {
    let (first, last) = account_names(account);
    format!(
        "{:?}",
        format!("{} {}", first.unwrap_or(""), last.unwrap_or("")).trim()
    )
}

fn rule_name(rule: CorrelationRule) -> &'static str {
    match rule {
        CorrelationRule::EmployeeId => "employee ID",
        CorrelationRule::Email => "email",
        CorrelationRule::Aliases => "alias",
    }
}

fn by_name(by: MatchedBy) -> &'static str {
    match by {
        MatchedBy::Resolved => "a resolution",
        MatchedBy::EmployeeId => "employee ID",
        MatchedBy::Email => "email",
        MatchedBy::Alias => "alias",
    }
}
