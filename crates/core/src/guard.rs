//! Safety guards: which actions of a plan must wait for a person.
//!
//! Applied after [`crate::reconcile`], over the finished plan, so the rules
//! see the plan as a whole (a mass deprovision is a property of the plan,
//! not of any one action):
//!
//! * every action in a connection marked `sensitive`;
//! * deactivating an account whose `role` is `admin` or `owner` (unless
//!   `approvals.deprovision_admins = false`);
//! * every deactivation in a connection whose count passes
//!   `max_deprovisions`, or `max_deprovision_percent` of its active
//!   accounts — the mass-deprovision guard;
//! * every deactivation in a plan whose total passes
//!   `approvals.max_deprovisions_per_plan`.
//!
//! The incomplete-read guard lives in reconcile itself: it never plans a
//! deactivation from an incomplete read, approved or not.

use std::collections::BTreeMap;

use crate::ids::ConnectionId;
use crate::model::Observed;
use crate::plan::Plan;
use crate::policy::Policy;

/// Fills `plan.approvals` from the policy. `observed` gives each
/// connection's active account count for percentage thresholds.
pub fn mark_approvals(plan: &mut Plan, policy: &Policy, observed: &[Observed]) {
    let active: BTreeMap<ConnectionId, usize> = observed
        .iter()
        .map(|o| {
            (
                o.connection.clone(),
                o.accounts.iter().filter(|a| a.active).count(),
            )
        })
        .collect();
    mark_approvals_with_counts(plan, policy, observed, &active);
}

/// [`mark_approvals`] with each connection's active account count given
/// separately: a targeted run observes one person's accounts, but a
/// percentage threshold is about the whole app.
pub fn mark_approvals_with_counts(
    plan: &mut Plan,
    policy: &Policy,
    observed: &[Observed],
    active: &BTreeMap<ConnectionId, usize>,
) {
    let mut approvals: BTreeMap<usize, String> = BTreeMap::new();
    let mut deprovisions: BTreeMap<&ConnectionId, usize> = BTreeMap::new();
    for a in &plan.actions {
        if a.operation.is_deprovision() {
            *deprovisions.entry(&a.connection).or_insert(0) += 1;
        }
    }
    let total: usize = deprovisions.values().sum();
    // Roles of the accounts being deprovisioned only: a company has a
    // million accounts and a plan a few hundred deactivations.
    let wanted: std::collections::HashSet<(&str, &str)> = plan
        .actions
        .iter()
        .filter(|a| a.operation.is_deprovision())
        .filter_map(|a| {
            a.account
                .as_ref()
                .map(|k| (a.connection.as_str(), k.as_str()))
        })
        .collect();
    let mut roles: std::collections::HashMap<(&str, &str), &str> = std::collections::HashMap::new();
    if !wanted.is_empty() {
        for o in observed {
            if !deprovisions.contains_key(&o.connection) {
                continue;
            }
            for a in &o.accounts {
                let k = (o.connection.as_str(), a.key.as_str());
                if wanted.contains(&k)
                    && let Some(r) = a.attributes.get("role")
                {
                    roles.insert(k, r.as_str());
                }
            }
        }
    }

    let mut note = |i: usize, why: String| {
        approvals.entry(i).or_insert(why);
    };
    for (i, a) in plan.actions.iter().enumerate() {
        let settings = policy.connection(&a.connection);
        if settings.sensitive {
            note(
                i,
                format!(
                    "{} is marked sensitive: every change needs approval",
                    a.connection
                ),
            );
        }
        if !a.operation.is_deprovision() {
            continue;
        }
        let n = deprovisions.get(&a.connection).copied().unwrap_or(0);
        if let Some(max) = settings.max_deprovisions
            && n > max
        {
            note(
                i,
                format!(
                    "mass-deprovision guard: {n} deactivations in {} exceed its limit of {max}",
                    a.connection
                ),
            );
        }
        if let Some(pct) = settings.max_deprovision_percent {
            let base = active.get(&a.connection).copied().unwrap_or(0);
            let share = if base == 0 {
                100.0
            } else {
                n as f64 * 100.0 / base as f64
            };
            if share > pct {
                note(
                    i,
                    format!(
                        "mass-deprovision guard: {n} of {base} active accounts in {} ({share:.1}%) is over its limit of {pct}%",
                        a.connection
                    ),
                );
            }
        }
        if let Some(max) = policy.approvals.max_deprovisions_per_plan
            && total > max
        {
            note(
                i,
                format!(
                    "mass-deprovision guard: the plan deactivates {total} accounts, more than the limit of {max}"
                ),
            );
        }
        if policy.approvals.deprovision_admins
            && let Some(key) = &a.account
            && let Some(role) = roles.get(&(a.connection.as_str(), key.as_str()))
            && (role.eq_ignore_ascii_case("admin") || role.eq_ignore_ascii_case("owner"))
        {
            note(i, format!("deactivates an {} {role}", a.connection));
        }
    }
    plan.approvals = approvals;
}
