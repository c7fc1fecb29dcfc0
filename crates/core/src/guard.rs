//! Safety guards: the one place that decides which planned changes go at
//! once, which wait for a person's approval, and which are withheld.
//!
//! Reconcile plans what the source and the rules ask for and tags every
//! action with its [`Cause`]; [`judge`] then looks at the plan as a whole
//! (a mass removal is a property of the plan, not of one action) and with
//! what only the engine knows ([`GuardContext`]: which connections have
//! never had a plan applied, each app's whole population, whether the
//! source shrank). Every guard has a stable name, its [`GuardKind`], used in
//! plan output, JSON, errors and the README.
//!
//! # Causes
//!
//! | cause               | what happened                                         | default        |
//! |---------------------|-------------------------------------------------------|----------------|
//! | `left`              | the person is terminated in the source                | at once        |
//! | `grace_expired`     | a leaver's suspended account, past `grace_days`       | at once        |
//! | `no_longer_granted` | no rule grants the app to a person still employed     | limited        |
//! | `orphan`            | no person matches the account (`orphans = "deactivate"`) | limited     |
//! | `grant`             | a rule grants an app the person has no account in     | limited        |
//! | `regrant`           | a rule grants it again; the account is deactivated    | limited        |
//! | `drift`             | the account differs from what the source and rules say | at once       |
//!
//! # Guards and their defaults (no `[approvals]` in the policy)
//!
//! Withheld (the plan holds no such action; a finding says why):
//!
//! * `incomplete_read`: a connection whose read may have missed accounts
//!   gets no deactivation this run, approved or not.
//! * `source_change`: the source lists more than 5% fewer people than the
//!   last accepted snapshot, or more than 5% of its people are newly
//!   terminated (and in both cases more than one person): no deactivation
//!   at all until a person confirms the source with
//!   `roster plan --accept-source-change`. See [`source_change`].
//!
//! Waiting for approval (`roster approve PLAN --action N`, or
//! `roster approve latest` for all):
//!
//! * `removal_limit`: removals from people still employed
//!   (`no_longer_granted`) and orphans, in one connection, past the larger
//!   of 3 accounts and 5% of its active accounts. On an app with fewer than
//!   15 active accounts the 3 is lowered to 20% of them, Okta's import
//!   safeguard, so roster is never less protective than Okta for the same
//!   harm. A leaver (`left`) never counts: a routine leaver on a five-seat
//!   app goes at once. Policy: `max_removals`, `max_removal_percent`.
//! * `first_plan`: every removal in a connection no applied plan has
//!   covered yet, where a wrong rule or mapping shows first. Policy:
//!   `first_plan = false`.
//! * `grant_limit`: new accounts (creates and reactivations) in one
//!   connection past the larger of 10 and 10% of its active accounts.
//!   Policy: `max_grants`, `max_grant_percent`.
//! * `privileged_grant`: any create, reactivation or update that sets the
//!   account's `role` to `admin` or `owner`. Policy: `privileged_roles`,
//!   `privileged_grants = false`.
//! * `privileged_removal`: deactivating an account whose `role` is `admin`
//!   or `owner`. Policy: `deprovision_admins = false`.
//! * `sensitive_connection`: every change in a connection with
//!   `sensitive = true`.
//! * `hard_delete`: every deactivation in a connection whose app deletes
//!   the account for good when deactivated (the catalog's
//!   `[deactivation] kind = "hard-delete"`, any source; the engine passes
//!   these connections in [`GuardContext::hard_delete`]). A suspension can
//!   be undone, a deletion cannot, so it waits for a person even for a
//!   routine leaver. Policy: `hard_deletes = false`.
//! * `financial_steps`: every deactivation in a connection whose browser
//!   runbook moves money or spending power before it deactivates
//!   (reassigns pending approvals, blocks cards; the engine passes these
//!   connections in [`GuardContext::financial`]). Money needs a person.
//!   Policy: `financial_steps = false`.
//! * `deprovision_limit` and `plan_deprovision_limit`: the opt-in limits on
//!   all deactivations whatever their cause (`max_deprovisions`,
//!   `max_deprovision_percent` per connection, `max_deprovisions_per_plan`).
//!
//! Per-connection settings (`[connections.NAME] max_removals = 10`)
//! override `[approvals]`. A policy that changes a default never does so
//! silently: the plan lists every guard setting the policy sets, next to
//! its default, and every guard that fired with its numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::ConnectionId;
use crate::model::{EmploymentStatus, Observed, Person};
use crate::plan::{Action, Cause, Finding, FindingKind, Operation, Plan};
use crate::policy::{ApprovalSettings, Policy};

/// Removals from people still employed one connection may take per plan.
pub const DEFAULT_MAX_REMOVALS: usize = 3;
/// ... or this share of its active accounts, when that is larger.
pub const DEFAULT_MAX_REMOVAL_PERCENT: f64 = 5.0;
/// Okta's import safeguard: the default allowance of
/// [`DEFAULT_MAX_REMOVALS`] never exceeds this share of an app's active
/// accounts.
pub const OKTA_SAFEGUARD_PERCENT: f64 = 20.0;
/// New accounts one connection may get per plan.
pub const DEFAULT_MAX_GRANTS: usize = 10;
/// ... or this share of its active accounts, when that is larger.
pub const DEFAULT_MAX_GRANT_PERCENT: f64 = 10.0;
/// How much the source may shrink (or newly terminate) at once.
pub const DEFAULT_SOURCE_CHANGE_PERCENT: f64 = 5.0;
/// A change of this many people or fewer is never a source change: one
/// leaver in a five-person company is not a short read.
pub const SOURCE_CHANGE_MIN_PEOPLE: usize = 1;
/// Roles whose grant or removal waits for approval by default.
pub const DEFAULT_PRIVILEGED_ROLES: [&str; 2] = ["admin", "owner"];
/// The account attribute that carries a role.
pub const ROLE_ATTRIBUTE: &str = "role";

/// The guards, by their stable names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// The read was incomplete: deactivations withheld.
    IncompleteRead,
    /// The source shrank or terminated many at once: deactivations
    /// withheld until a person confirms the source.
    SourceChange,
    /// Every change in a sensitive connection.
    SensitiveConnection,
    /// Every removal in a connection's first applied plan.
    FirstPlan,
    /// Removals from people still employed, past the limit.
    RemovalLimit,
    /// All deactivations in one connection, past `max_deprovisions*`.
    DeprovisionLimit,
    /// All deactivations in the plan, past `max_deprovisions_per_plan`.
    PlanDeprovisionLimit,
    /// Deactivating an admin or owner.
    PrivilegedRemoval,
    /// New accounts in one connection, past the limit.
    GrantLimit,
    /// Granting an admin or owner role.
    PrivilegedGrant,
    /// Deactivating where the app deletes the account for good.
    HardDelete,
    /// Deactivating through a browser runbook with financial steps.
    FinancialSteps,
}

impl GuardKind {
    pub const ALL: [GuardKind; 12] = [
        GuardKind::IncompleteRead,
        GuardKind::SourceChange,
        GuardKind::SensitiveConnection,
        GuardKind::FirstPlan,
        GuardKind::RemovalLimit,
        GuardKind::DeprovisionLimit,
        GuardKind::PlanDeprovisionLimit,
        GuardKind::PrivilegedRemoval,
        GuardKind::GrantLimit,
        GuardKind::PrivilegedGrant,
        GuardKind::HardDelete,
        GuardKind::FinancialSteps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GuardKind::IncompleteRead => "incomplete_read",
            GuardKind::SourceChange => "source_change",
            GuardKind::SensitiveConnection => "sensitive_connection",
            GuardKind::FirstPlan => "first_plan",
            GuardKind::RemovalLimit => "removal_limit",
            GuardKind::DeprovisionLimit => "deprovision_limit",
            GuardKind::PlanDeprovisionLimit => "plan_deprovision_limit",
            GuardKind::PrivilegedRemoval => "privileged_removal",
            GuardKind::GrantLimit => "grant_limit",
            GuardKind::PrivilegedGrant => "privileged_grant",
            GuardKind::HardDelete => "hard_delete",
            GuardKind::FinancialSteps => "financial_steps",
        }
    }

    /// Does this guard take actions out of the plan (rather than hold them
    /// for approval)?
    pub fn withholds(self) -> bool {
        matches!(self, GuardKind::IncompleteRead | GuardKind::SourceChange)
    }
}

impl fmt::Display for GuardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One guard that fired, with its numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardHit {
    pub kind: GuardKind,
    /// `None` for a plan-wide guard.
    pub connection: Option<ConnectionId>,
    /// How many actions it counted (withheld, for a withholding guard).
    pub count: usize,
    /// The limit `count` passed, for the limit guards.
    pub limit: Option<usize>,
    /// The actions (by index) it holds for approval.
    pub actions: Vec<usize>,
    /// What happened, in words, with the numbers.
    pub detail: String,
}

/// What the guards did to a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardReport {
    #[serde(default)]
    pub fired: Vec<GuardHit>,
    /// The guard settings the policy sets, each next to its default
    /// (`approvals.max_removals = 10 (default 3)`).
    #[serde(default)]
    pub settings: Vec<String>,
}

impl GuardReport {
    pub fn is_empty(&self) -> bool {
        self.fired.is_empty() && self.settings.is_empty()
    }
}

/// The size of a people snapshot, as the source-change guard compares it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub people: usize,
    pub terminated: usize,
}

impl SourceCounts {
    /// By status alone, ignoring dates.
    pub fn of(people: &[Person]) -> SourceCounts {
        SourceCounts {
            people: people.len(),
            terminated: people
                .iter()
                .filter(|p| p.status == EmploymentStatus::Terminated)
                .count(),
        }
    }

    /// As they stand on `today` (the company's local date): someone whose
    /// end date is before it counts as terminated whatever the source's
    /// status, someone terminated with an end date still ahead does not
    /// (the calendar keeps their access until it passes). So a batch of
    /// end dates passing at once, or a typo that puts every end date in
    /// the past, is a source change the guard holds, like a batch of
    /// terminations.
    pub fn as_of(people: &[Person], today: time::Date) -> SourceCounts {
        SourceCounts {
            people: people.len(),
            terminated: people
                .iter()
                .filter(|p| match p.end_date {
                    Some(end) => end < today,
                    None => p.status == EmploymentStatus::Terminated,
                })
                .count(),
        }
    }
}

/// A source that looks like an incomplete read, against the last accepted
/// snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceChange {
    pub accepted: SourceCounts,
    pub current: SourceCounts,
    /// Why, with the numbers.
    pub detail: String,
}

/// How to confirm a source change (one mechanism, named everywhere).
pub const ACCEPT_SOURCE_CHANGE: &str = "roster plan --accept-source-change";

/// Judges the current source snapshot against the last accepted one.
/// `None` when it looks fine, or when nothing was accepted yet (the first
/// import is accepted as it is).
pub fn source_change(
    accepted: Option<SourceCounts>,
    current: SourceCounts,
    approvals: &ApprovalSettings,
) -> Option<SourceChange> {
    let accepted = accepted?;
    if accepted.people == 0 {
        return None;
    }
    let pct = approvals
        .max_source_change_percent
        .unwrap_or(DEFAULT_SOURCE_CHANGE_PERCENT);
    let share = |n: usize, of: usize| n as f64 * 100.0 / of.max(1) as f64;
    let mut why = Vec::new();
    let fewer = accepted.people.saturating_sub(current.people);
    if fewer > SOURCE_CHANGE_MIN_PEOPLE && share(fewer, accepted.people) > pct {
        why.push(format!(
            "the source lists {} people, {fewer} fewer than the {} last accepted ({:.1}%, limit {pct}%)",
            current.people,
            accepted.people,
            share(fewer, accepted.people)
        ));
    }
    let newly = current.terminated.saturating_sub(accepted.terminated);
    if newly > SOURCE_CHANGE_MIN_PEOPLE && share(newly, current.people) > pct {
        why.push(format!(
            "{newly} of its {} people are newly terminated since the last accepted snapshot ({:.1}%, limit {pct}%)",
            current.people,
            share(newly, current.people)
        ));
    }
    if why.is_empty() {
        return None;
    }
    Some(SourceChange {
        accepted,
        current,
        detail: why.join("; "),
    })
}

/// What only the engine knows, for the guards.
#[derive(Clone, Debug, Default)]
pub struct GuardContext {
    /// Connections no applied plan has covered yet.
    pub first_plan: BTreeSet<ConnectionId>,
    /// Each connection's active accounts, when `observed` is not the whole
    /// app (a targeted run observes one person's accounts, but a share is
    /// about the whole app). `None`: counted from `observed`.
    pub active_counts: Option<BTreeMap<ConnectionId, usize>>,
    /// Set when the source looks like an incomplete read.
    pub source_change: Option<SourceChange>,
    /// Plan this person only (a targeted run). The other people given are
    /// there so that an account they could also own is recognised as
    /// shared or ambiguous, exactly as the full run would; they get no
    /// actions, and accounts matching nobody are not this run's business.
    pub focus: Option<crate::EmployeeId>,
    /// The company's time zone and provisioning lead: people are planned
    /// with the status their start and end dates give them at `now`
    /// (see [`crate::calendar`]). Default: UTC, no lead.
    pub calendar: crate::calendar::Calendar,
    /// Connections whose app deletes the account for good when roster
    /// deactivates it (the catalog's `[deactivation]`): every
    /// deactivation there waits for approval (`hard_delete`).
    pub hard_delete: BTreeSet<ConnectionId>,
    /// Connections whose deactivations run a browser runbook that
    /// reassigns approvals or blocks cards first: every deactivation there
    /// waits for approval (`financial_steps`).
    pub financial: BTreeSet<ConnectionId>,
}

/// A limit and how it was reached, for the plan's text.
struct Allowance {
    limit: usize,
    explain: String,
}

fn floor_share(active: usize, pct: f64) -> usize {
    // The epsilon keeps 60 × 5% at 3, not 2.9999….
    (active as f64 * pct / 100.0 + 1e-9).floor() as usize
}

fn removal_allowance(policy: &Policy, c: &ConnectionId, active: usize) -> Allowance {
    let s = policy.connection(c);
    let abs_set = s.max_removals.or(policy.approvals.max_removals);
    let pct = s
        .max_removal_percent
        .or(policy.approvals.max_removal_percent)
        .unwrap_or(DEFAULT_MAX_REMOVAL_PERCENT);
    let (abs, capped) = match abs_set {
        Some(n) => (n, false),
        None => {
            let cap = floor_share(active, OKTA_SAFEGUARD_PERCENT);
            (DEFAULT_MAX_REMOVALS.min(cap), cap < DEFAULT_MAX_REMOVALS)
        }
    };
    let by_share = floor_share(active, pct);
    let explain = if capped {
        format!(
            "{OKTA_SAFEGUARD_PERCENT}% of its {active} active accounts, Okta's import safeguard, on an app this small; or {pct}% when larger"
        )
    } else {
        format!("the larger of {abs} and {pct}% of {active} active accounts")
    };
    Allowance {
        limit: abs.max(by_share),
        explain,
    }
}

fn grant_allowance(policy: &Policy, c: &ConnectionId, active: usize) -> Allowance {
    let s = policy.connection(c);
    let abs = s
        .max_grants
        .or(policy.approvals.max_grants)
        .unwrap_or(DEFAULT_MAX_GRANTS);
    let pct = s
        .max_grant_percent
        .or(policy.approvals.max_grant_percent)
        .unwrap_or(DEFAULT_MAX_GRANT_PERCENT);
    Allowance {
        limit: abs.max(floor_share(active, pct)),
        explain: format!("the larger of {abs} and {pct}% of {active} active accounts"),
    }
}

/// Is a removal with this cause a leaver's? Anything else (including a
/// cause not recorded) is judged as access taken from someone still there.
fn leaver_removal(cause: Cause) -> bool {
    matches!(cause, Cause::Left | Cause::GraceExpired)
}

fn privileged_roles(policy: &Policy) -> Vec<String> {
    match &policy.approvals.privileged_roles {
        Some(list) => list.iter().map(|r| r.trim().to_lowercase()).collect(),
        None => DEFAULT_PRIVILEGED_ROLES
            .iter()
            .map(|r| r.to_string())
            .collect(),
    }
}

/// The privileged role an action grants, if any: a create or reactivation
/// whose attributes carry it, or an update that changes `role` to it.
fn granted_role<'a>(a: &'a Action, roles: &[String]) -> Option<&'a str> {
    let privileged = |v: &str| roles.iter().any(|r| r.eq_ignore_ascii_case(v.trim()));
    match a.operation {
        Operation::Create | Operation::Reactivate => a
            .attributes
            .get(ROLE_ATTRIBUTE)
            .map(String::as_str)
            .filter(|v| privileged(v)),
        Operation::Update => a
            .changes
            .iter()
            .find(|c| c.name == ROLE_ATTRIBUTE)
            .and_then(|c| c.after.as_deref())
            .filter(|v| privileged(v)),
        _ => None,
    }
}

/// Applies every guard to a finished plan: withholds what must not run
/// (incomplete reads, a source change), fills `plan.approvals` with what
/// waits for a person, and records each guard that fired in
/// `plan.guards`. Call it once per plan; [`crate::reconcile_guarded`] does.
pub fn judge(plan: &mut Plan, policy: &Policy, observed: &[Observed], ctx: &GuardContext) {
    withhold(plan, observed, ctx);
    let active: BTreeMap<ConnectionId, usize> = match &ctx.active_counts {
        Some(counts) => counts.clone(),
        None => observed
            .iter()
            .map(|o| {
                (
                    o.connection.clone(),
                    o.accounts.iter().filter(|a| a.active).count(),
                )
            })
            .collect(),
    };
    mark(plan, policy, observed, &active, ctx);
    plan.guards.settings = changed_settings(policy);
}

/// The withholding guards: incomplete reads and a source change.
fn withhold(plan: &mut Plan, observed: &[Observed], ctx: &GuardContext) {
    let incomplete: BTreeMap<&ConnectionId, &Observed> = observed
        .iter()
        .filter(|o| !o.complete && plan.classification.contains_key(&o.connection))
        .map(|o| (&o.connection, o))
        .collect();
    let mut by_read: BTreeMap<ConnectionId, usize> = BTreeMap::new();
    let mut by_source: BTreeMap<ConnectionId, usize> = BTreeMap::new();
    plan.actions.retain(|a| {
        if !a.operation.is_deprovision() {
            return true;
        }
        if incomplete.contains_key(&a.connection) {
            *by_read.entry(a.connection.clone()).or_insert(0) += 1;
            return false;
        }
        // Every removal rests on the source: a leaver is terminated in it,
        // a no-longer-granted person is described by it, an orphan is
        // missing from it.
        if ctx.source_change.is_some() {
            *by_source.entry(a.connection.clone()).or_insert(0) += 1;
            return false;
        }
        true
    });
    for (c, o) in &incomplete {
        plan.findings.push(Finding {
            connection: (*c).clone(),
            kind: FindingKind::IncompleteRead,
            account: None,
            email: None,
            detail: format!(
                "the read of {c} may be incomplete ({}): deactivations withheld this run",
                o.incomplete_reason.as_deref().unwrap_or("no reason given")
            ),
        });
        let n = by_read.get(*c).copied().unwrap_or(0);
        if n > 0 {
            plan.guards.fired.push(GuardHit {
                kind: GuardKind::IncompleteRead,
                connection: Some((*c).clone()),
                count: n,
                limit: None,
                actions: Vec::new(),
                detail: format!("{n} deactivation(s) in {c} withheld: its read may be incomplete"),
            });
        }
    }
    if let Some(change) = &ctx.source_change {
        let total: usize = by_source.values().sum();
        for (c, n) in &by_source {
            plan.findings.push(Finding {
                connection: c.clone(),
                kind: FindingKind::SourceChange,
                account: None,
                email: None,
                detail: format!(
                    "{n} deactivation(s) withheld: {}; if the source is right, confirm it with `{ACCEPT_SOURCE_CHANGE}`",
                    change.detail
                ),
            });
        }
        plan.guards.fired.push(GuardHit {
            kind: GuardKind::SourceChange,
            connection: None,
            count: total,
            limit: None,
            actions: Vec::new(),
            detail: format!(
                "{}: the source may be an incomplete read, so no deactivation is planned ({total} withheld); if it is right, confirm it with `{ACCEPT_SOURCE_CHANGE}`",
                change.detail
            ),
        });
    }
    plan.findings.sort_by(|a, b| {
        (&a.connection, a.kind, &a.email, &a.account).cmp(&(
            &b.connection,
            b.kind,
            &b.email,
            &b.account,
        ))
    });
}

/// The approval guards.
fn mark(
    plan: &mut Plan,
    policy: &Policy,
    observed: &[Observed],
    active: &BTreeMap<ConnectionId, usize>,
    ctx: &GuardContext,
) {
    let mut deprovisions: BTreeMap<&ConnectionId, usize> = BTreeMap::new();
    let mut removals: BTreeMap<&ConnectionId, usize> = BTreeMap::new();
    let mut grants: BTreeMap<&ConnectionId, usize> = BTreeMap::new();
    for a in &plan.actions {
        if a.operation.is_deprovision() {
            *deprovisions.entry(&a.connection).or_insert(0) += 1;
            if !leaver_removal(a.cause) {
                *removals.entry(&a.connection).or_insert(0) += 1;
            }
        }
        if matches!(a.operation, Operation::Create | Operation::Reactivate) {
            *grants.entry(&a.connection).or_insert(0) += 1;
        }
    }
    let total: usize = deprovisions.values().sum();
    let roles_wanted = privileged_roles(policy);
    let held_roles = deprovisioned_roles(plan, observed, &deprovisions);
    let first_plan_on = policy.approvals.first_plan.unwrap_or(true);
    let privileged_grants_on = policy.approvals.privileged_grants.unwrap_or(true);
    let hard_deletes_on = policy.approvals.hard_deletes.unwrap_or(true);
    let financial_on = policy.approvals.financial_steps.unwrap_or(true);

    // (kind, connection) → the hit, its actions collected below.
    let mut hits: BTreeMap<(GuardKind, Option<ConnectionId>), GuardHit> = BTreeMap::new();
    let mut fire = |kind: GuardKind,
                    connection: Option<&ConnectionId>,
                    i: usize,
                    make: &dyn Fn() -> (usize, Option<usize>, String)| {
        let hit = hits.entry((kind, connection.cloned())).or_insert_with(|| {
            let (count, limit, detail) = make();
            GuardHit {
                kind,
                connection: connection.cloned(),
                count,
                limit,
                actions: Vec::new(),
                detail,
            }
        });
        hit.actions.push(i);
    };

    for (i, a) in plan.actions.iter().enumerate() {
        let c = &a.connection;
        let settings = policy.connection(c);
        let base = active.get(c).copied().unwrap_or(0);
        if settings.sensitive {
            fire(GuardKind::SensitiveConnection, Some(c), i, &|| {
                (
                    0,
                    None,
                    format!("{c} is marked sensitive: every change needs approval"),
                )
            });
        }
        if a.operation.is_deprovision() && hard_deletes_on && ctx.hard_delete.contains(c) {
            fire(GuardKind::HardDelete, Some(c), i, &|| {
                (
                    0,
                    None,
                    format!(
                        "deactivating in {c} deletes the account for good (the app's catalog record says hard delete): it waits for approval"
                    ),
                )
            });
        }
        if a.operation == Operation::Deactivate && financial_on && ctx.financial.contains(c) {
            fire(GuardKind::FinancialSteps, Some(c), i, &|| {
                (
                    0,
                    None,
                    format!(
                        "deactivating in {c} runs a browser runbook that reassigns approvals or blocks cards first: money needs a person's approval"
                    ),
                )
            });
        }
        if a.operation.is_deprovision() {
            let n = deprovisions.get(c).copied().unwrap_or(0);
            if first_plan_on && ctx.first_plan.contains(c) {
                fire(GuardKind::FirstPlan, Some(c), i, &|| {
                    (
                        n,
                        None,
                        format!(
                            "no plan for {c} has been applied yet: each of its {n} removal(s) waits for approval in its first plan"
                        ),
                    )
                });
            }
            if !leaver_removal(a.cause) {
                let r = removals.get(c).copied().unwrap_or(0);
                let allow = removal_allowance(policy, c, base);
                if r > allow.limit {
                    fire(GuardKind::RemovalLimit, Some(c), i, &|| {
                        (
                            r,
                            Some(allow.limit),
                            format!(
                                "{r} removal(s) in {c} from people still employed or not in the source (no_longer_granted, orphan), more than the limit of {} ({})",
                                allow.limit, allow.explain
                            ),
                        )
                    });
                }
            }
            if let Some(max) = settings.max_deprovisions
                && n > max
            {
                fire(GuardKind::DeprovisionLimit, Some(c), i, &|| {
                    (
                        n,
                        Some(max),
                        format!("{n} deactivations in {c} exceed its limit of {max}"),
                    )
                });
            }
            if let Some(pct) = settings.max_deprovision_percent {
                let share = if base == 0 {
                    100.0
                } else {
                    n as f64 * 100.0 / base as f64
                };
                if share > pct {
                    fire(GuardKind::DeprovisionLimit, Some(c), i, &|| {
                        (
                            n,
                            Some(floor_share(base, pct)),
                            format!(
                                "{n} of {base} active accounts in {c} ({share:.1}%) is over its limit of {pct}%"
                            ),
                        )
                    });
                }
            }
            if let Some(max) = policy.approvals.max_deprovisions_per_plan
                && total > max
            {
                fire(GuardKind::PlanDeprovisionLimit, None, i, &|| {
                    (
                        total,
                        Some(max),
                        format!(
                            "the plan deactivates {total} accounts, more than the limit of {max}"
                        ),
                    )
                });
            }
            if policy.approvals.deprovision_admins
                && let Some(key) = &a.account
                && let Some(role) = held_roles.get(&(c.as_str(), key.as_str()))
                && roles_wanted.iter().any(|r| r.eq_ignore_ascii_case(role))
            {
                fire(GuardKind::PrivilegedRemoval, Some(c), i, &|| {
                    (
                        0,
                        None,
                        format!(
                            "deactivates an account in {c} that holds a privileged role ({})",
                            roles_wanted.join(", ")
                        ),
                    )
                });
            }
        }
        if matches!(a.operation, Operation::Create | Operation::Reactivate) {
            let g = grants.get(c).copied().unwrap_or(0);
            let allow = grant_allowance(policy, c, base);
            if g > allow.limit {
                fire(GuardKind::GrantLimit, Some(c), i, &|| {
                    (
                        g,
                        Some(allow.limit),
                        format!(
                            "{g} new account(s) in {c} (creates and reactivations), more than the limit of {} ({})",
                            allow.limit, allow.explain
                        ),
                    )
                });
            }
        }
        if privileged_grants_on && granted_role(a, &roles_wanted).is_some() {
            fire(GuardKind::PrivilegedGrant, Some(c), i, &|| {
                (
                    0,
                    None,
                    format!(
                        "grants a privileged role in {c} ({})",
                        roles_wanted.join(", ")
                    ),
                )
            });
        }
    }

    let mut approvals: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for mut hit in hits.into_values() {
        if matches!(
            hit.kind,
            GuardKind::SensitiveConnection
                | GuardKind::PrivilegedRemoval
                | GuardKind::PrivilegedGrant
                | GuardKind::HardDelete
                | GuardKind::FinancialSteps
        ) {
            hit.count = hit.actions.len();
        }
        for i in &hit.actions {
            approvals
                .entry(*i)
                .or_default()
                .push(format!("{}: {}", hit.kind, hit.detail));
        }
        plan.guards.fired.push(hit);
    }
    plan.approvals = approvals
        .into_iter()
        .map(|(i, why)| (i, why.join("; ")))
        .collect();
}

/// The observed `role` of each account being deprovisioned. Only those: a
/// company has a million accounts and a plan a few hundred removals.
fn deprovisioned_roles<'o>(
    plan: &Plan,
    observed: &'o [Observed],
    deprovisions: &BTreeMap<&ConnectionId, usize>,
) -> std::collections::HashMap<(&'o str, &'o str), &'o str> {
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
    let mut roles = std::collections::HashMap::new();
    if wanted.is_empty() {
        return roles;
    }
    for o in observed {
        if !deprovisions.contains_key(&o.connection) {
            continue;
        }
        for a in &o.accounts {
            let k = (o.connection.as_str(), a.key.as_str());
            if wanted.contains(&k)
                && let Some(r) = a.attributes.get(ROLE_ATTRIBUTE)
            {
                roles.insert(k, r.as_str());
            }
        }
    }
    roles
}

/// Every guard setting the policy sets, next to its default.
fn changed_settings(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let a = &policy.approvals;
    if !a.deprovision_admins {
        out.push("approvals.deprovision_admins = false (default true)".to_string());
    }
    if let Some(n) = a.max_deprovisions_per_plan {
        out.push(format!(
            "approvals.max_deprovisions_per_plan = {n} (default none)"
        ));
    }
    if let Some(n) = a.max_removals {
        out.push(format!(
            "approvals.max_removals = {n} (default {DEFAULT_MAX_REMOVALS}, at most {OKTA_SAFEGUARD_PERCENT}% of a small app)"
        ));
    }
    if let Some(p) = a.max_removal_percent {
        out.push(format!(
            "approvals.max_removal_percent = {p} (default {DEFAULT_MAX_REMOVAL_PERCENT})"
        ));
    }
    if let Some(n) = a.max_grants {
        out.push(format!(
            "approvals.max_grants = {n} (default {DEFAULT_MAX_GRANTS})"
        ));
    }
    if let Some(p) = a.max_grant_percent {
        out.push(format!(
            "approvals.max_grant_percent = {p} (default {DEFAULT_MAX_GRANT_PERCENT})"
        ));
    }
    if let Some(r) = &a.privileged_roles {
        out.push(format!(
            "approvals.privileged_roles = {r:?} (default {DEFAULT_PRIVILEGED_ROLES:?})"
        ));
    }
    if let Some(b) = a.privileged_grants {
        out.push(format!("approvals.privileged_grants = {b} (default true)"));
    }
    if let Some(b) = a.first_plan {
        out.push(format!("approvals.first_plan = {b} (default true)"));
    }
    if let Some(b) = a.hard_deletes {
        out.push(format!("approvals.hard_deletes = {b} (default true)"));
    }
    if let Some(b) = a.financial_steps {
        out.push(format!("approvals.financial_steps = {b} (default true)"));
    }
    if let Some(p) = a.max_source_change_percent {
        out.push(format!(
            "approvals.max_source_change_percent = {p} (default {DEFAULT_SOURCE_CHANGE_PERCENT})"
        ));
    }
    for (id, c) in &policy.connections {
        let mut set = |name: &str, value: String, default: String| {
            out.push(format!(
                "connections.{id}.{name} = {value} (default {default})"
            ));
        };
        if c.sensitive {
            set("sensitive", "true".into(), "false".into());
        }
        if let Some(n) = c.max_deprovisions {
            set("max_deprovisions", n.to_string(), "none".into());
        }
        if let Some(p) = c.max_deprovision_percent {
            set("max_deprovision_percent", p.to_string(), "none".into());
        }
        if let Some(n) = c.max_removals {
            set(
                "max_removals",
                n.to_string(),
                format!("approvals.max_removals or {DEFAULT_MAX_REMOVALS}"),
            );
        }
        if let Some(p) = c.max_removal_percent {
            set(
                "max_removal_percent",
                p.to_string(),
                format!("approvals.max_removal_percent or {DEFAULT_MAX_REMOVAL_PERCENT}"),
            );
        }
        if let Some(n) = c.max_grants {
            set(
                "max_grants",
                n.to_string(),
                format!("approvals.max_grants or {DEFAULT_MAX_GRANTS}"),
            );
        }
        if let Some(p) = c.max_grant_percent {
            set(
                "max_grant_percent",
                p.to_string(),
                format!("approvals.max_grant_percent or {DEFAULT_MAX_GRANT_PERCENT}"),
            );
        }
    }
    out
}

/// The guard section of a rendered plan: each guard that fired, how to
/// approve, and the guard settings the policy changed. Empty when there is
/// nothing to say.
pub fn render_report(report: &GuardReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if !report.fired.is_empty() {
        out.push_str("guards:\n");
        for hit in &report.fired {
            let scope = hit
                .connection
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  ! {}{scope}: {}", hit.kind, hit.detail);
            if !hit.actions.is_empty() {
                let shown: Vec<String> = hit
                    .actions
                    .iter()
                    .take(10)
                    .map(|i| format!("#{i}"))
                    .collect();
                let more = hit.actions.len().saturating_sub(shown.len());
                let _ = writeln!(
                    out,
                    "      waiting: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if report.fired.iter().any(|h| !h.actions.is_empty()) {
            out.push_str(
                "  approve one action with `roster approve PLAN --action N`, or all with `roster approve latest`\n",
            );
        }
    }
    if !report.settings.is_empty() {
        out.push_str("guard settings changed by the policy:\n");
        for s in &report.settings {
            let _ = writeln!(out, "  {s}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountKey, Email, EmployeeId};
    use crate::model::Account;
    use crate::plan::{AttributeChange, Classification};

    fn conn() -> ConnectionId {
        ConnectionId::new("app")
    }

    fn account(i: usize, role: &str) -> Account {
        Account {
            connection: conn(),
            key: AccountKey::new(format!("a{i}")),
            email: Email::parse(&format!("p{i}@acme.example")).ok(),
            employee_id: Some(EmployeeId::new(format!("E{i}"))),
            active: true,
            attributes: [(ROLE_ATTRIBUTE.to_string(), role.to_string())]
                .into_iter()
                .collect(),
        }
    }

    fn action(i: usize, operation: Operation, cause: Cause) -> Action {
        Action {
            connection: conn(),
            operation,
            employee_id: Some(EmployeeId::new(format!("E{i}"))),
            email: Email::parse(&format!("p{i}@acme.example")).unwrap(),
            account: (operation != Operation::Create).then(|| AccountKey::new(format!("a{i}"))),
            attributes: BTreeMap::new(),
            changes: Vec::new(),
            reason: "test".into(),
            cause,
        }
    }

    /// An app with `active` accounts and a plan of `actions`, judged.
    fn judged(active: usize, actions: Vec<Action>, policy: &Policy, ctx: &GuardContext) -> Plan {
        let observed = vec![Observed::complete(
            conn(),
            (0..active).map(|i| account(i, "user")).collect(),
        )];
        let mut plan = Plan {
            actions,
            classification: [(conn(), Classification::default())].into(),
            ..Plan::default()
        };
        judge(&mut plan, policy, &observed, ctx);
        plan
    }

    fn removals(n: usize, cause: Cause) -> Vec<Action> {
        (0..n)
            .map(|i| action(i, Operation::Deactivate, cause))
            .collect()
    }

    #[test]
    fn at_least_as_protective_as_oktas_safeguard_and_leavers_go_at_once() {
        let policy = Policy::default();
        let ctx = GuardContext::default();
        for active in 1..=120 {
            for n in 1..=active {
                let plan = judged(active, removals(n, Cause::NoLongerGranted), &policy, &ctx);
                // Okta's import safeguard stops an import that unassigns
                // more than 20% of an app's users.
                if n * 100 > 20 * active {
                    assert_eq!(
                        plan.approvals.len(),
                        n,
                        "{n} of {active} still-employed people lose access unapproved"
                    );
                    assert!(
                        plan.approvals
                            .values()
                            .all(|w| w.starts_with("removal_limit: "))
                    );
                }
            }
        }
        // A routine leaver on a five-seat app goes at once, and so do all
        // five seats when all five people left.
        for n in 1..=5 {
            let plan = judged(5, removals(n, Cause::Left), &policy, &ctx);
            assert!(plan.approvals.is_empty(), "{n} leavers held: {plan:?}");
        }
    }

    #[test]
    fn removal_limit_is_three_or_five_percent_when_larger() {
        let policy = Policy::default();
        let ctx = GuardContext::default();
        assert!(
            judged(40, removals(3, Cause::NoLongerGranted), &policy, &ctx)
                .approvals
                .is_empty()
        );
        let held = judged(40, removals(4, Cause::NoLongerGranted), &policy, &ctx);
        assert_eq!(held.approvals.len(), 4);
        let hit = &held.guards.fired[0];
        assert_eq!(
            (hit.kind, hit.count, hit.limit),
            (GuardKind::RemovalLimit, 4, Some(3))
        );
        assert!(
            judged(1000, removals(50, Cause::Orphan), &policy, &ctx)
                .approvals
                .is_empty()
        );
        assert_eq!(
            judged(1000, removals(51, Cause::Orphan), &policy, &ctx)
                .approvals
                .len(),
            51
        );
        // Leavers in the same plan are not held by it, and do not count.
        let mut mixed = removals(4, Cause::NoLongerGranted);
        mixed.extend((10..30).map(|i| action(i, Operation::Deactivate, Cause::Left)));
        let plan = judged(40, mixed, &policy, &ctx);
        assert_eq!(
            plan.approvals.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn a_policy_changes_limits_visibly() {
        let policy = Policy::parse(
            "p.toml",
            "[approvals]\nmax_removals = 10\n[connections.app]\nmax_grants = 2\n",
        )
        .unwrap();
        let ctx = GuardContext::default();
        let plan = judged(40, removals(10, Cause::NoLongerGranted), &policy, &ctx);
        assert!(plan.approvals.is_empty());
        assert!(
            plan.guards
                .settings
                .iter()
                .any(|s| s.starts_with("approvals.max_removals = 10 (default 3")),
            "{:?}",
            plan.guards.settings
        );
        let text = crate::plan::render(&plan);
        assert!(
            text.contains("guard settings changed by the policy"),
            "{text}"
        );
        assert!(text.contains("connections.app.max_grants = 2"), "{text}");
        let grants: Vec<Action> = (0..3)
            .map(|i| action(100 + i, Operation::Create, Cause::Grant))
            .collect();
        // 10% of 10 active accounts is 1: the connection's 2 is the limit.
        assert_eq!(judged(10, grants, &policy, &ctx).approvals.len(), 3);
    }

    /// Harm test: a routine leaver's deactivation, which goes at once in
    /// an app that suspends, must not delete an account for good without a
    /// person's approval when the app's deactivation is a hard delete.
    #[test]
    fn hard_delete_waits_for_approval_even_for_a_leaver() {
        let suspends = GuardContext::default();
        let plan = judged(50, removals(1, Cause::Left), &Policy::default(), &suspends);
        assert!(
            plan.approvals.is_empty(),
            "a leaver in a suspending app goes at once"
        );

        let deletes = GuardContext {
            hard_delete: [conn()].into(),
            ..GuardContext::default()
        };
        for cause in [
            Cause::Left,
            Cause::GraceExpired,
            Cause::NoLongerGranted,
            Cause::Orphan,
        ] {
            let plan = judged(50, removals(1, cause), &Policy::default(), &deletes);
            assert_eq!(plan.approvals.len(), 1, "{cause:?}: {plan:?}");
            assert!(plan.approvals[&0].contains("hard_delete: "), "{plan:?}");
            let hit = plan
                .guards
                .fired
                .iter()
                .find(|h| h.kind == GuardKind::HardDelete)
                .unwrap();
            assert_eq!((hit.count, hit.actions.as_slice()), (1, &[0][..]));
        }
        // Roster's own delete after the grace period is held too.
        let plan = judged(
            50,
            vec![action(1, Operation::Delete, Cause::GraceExpired)],
            &Policy::default(),
            &deletes,
        );
        assert_eq!(plan.approvals.len(), 1);
        // Grants and updates are not deletions.
        let plan = judged(
            50,
            vec![action(2, Operation::Create, Cause::Grant)],
            &Policy::default(),
            &deletes,
        );
        assert!(plan.approvals.is_empty());

        // A policy may turn the hold off, and the plan says so.
        let off = Policy::parse("p.toml", "[approvals]\nhard_deletes = false\n").unwrap();
        let plan = judged(50, removals(1, Cause::Left), &off, &deletes);
        assert!(plan.approvals.is_empty());
        assert!(
            plan.guards
                .settings
                .contains(&"approvals.hard_deletes = false (default true)".to_string()),
            "{:?}",
            plan.guards.settings
        );
    }

    #[test]
    fn money_needs_a_person_when_a_runbook_moves_it() {
        let money = GuardContext {
            financial: [conn()].into(),
            ..GuardContext::default()
        };
        // Even a routine leaver's deactivation waits.
        let plan = judged(50, removals(1, Cause::Left), &Policy::default(), &money);
        assert_eq!(plan.approvals.len(), 1, "{plan:?}");
        assert!(
            plan.approvals[&0].starts_with("financial_steps: "),
            "{plan:?}"
        );
        assert!(
            plan.guards
                .fired
                .iter()
                .any(|h| h.kind == GuardKind::FinancialSteps && h.count == 1)
        );
        // Without financial steps the leaver goes at once.
        let plan = judged(
            50,
            removals(1, Cause::Left),
            &Policy::default(),
            &GuardContext::default(),
        );
        assert!(plan.approvals.is_empty());
        // A policy may say otherwise, and the plan says it did.
        let off = Policy::parse("p.toml", "[approvals]\nfinancial_steps = false\n").unwrap();
        let plan = judged(50, removals(1, Cause::Left), &off, &money);
        assert!(plan.approvals.is_empty());
        assert!(
            plan.guards
                .settings
                .contains(&"approvals.financial_steps = false (default true)".to_string())
        );
    }

    #[test]
    fn first_plan_holds_every_removal() {
        let ctx = GuardContext {
            first_plan: [conn()].into(),
            ..GuardContext::default()
        };
        let plan = judged(50, removals(1, Cause::Left), &Policy::default(), &ctx);
        assert_eq!(plan.approvals.len(), 1);
        assert!(plan.approvals[&0].starts_with("first_plan: "), "{plan:?}");
        // Grants in a first plan are judged by the grant guards only.
        let plan = judged(
            50,
            vec![action(1, Operation::Create, Cause::Grant)],
            &Policy::default(),
            &ctx,
        );
        assert!(plan.approvals.is_empty());
        let off = Policy::parse("p.toml", "[approvals]\nfirst_plan = false\n").unwrap();
        assert!(
            judged(50, removals(1, Cause::Left), &off, &ctx)
                .approvals
                .is_empty()
        );
    }

    #[test]
    fn mass_and_privileged_grants_wait() {
        let policy = Policy::default();
        let ctx = GuardContext::default();
        let creates = |n: usize| -> Vec<Action> {
            (0..n)
                .map(|i| action(i, Operation::Create, Cause::Grant))
                .collect()
        };
        assert!(judged(50, creates(10), &policy, &ctx).approvals.is_empty());
        let held = judged(50, creates(11), &policy, &ctx);
        assert_eq!(held.approvals.len(), 11);
        assert_eq!(held.guards.fired[0].kind, GuardKind::GrantLimit);
        // 10% of a large app is the larger allowance.
        assert!(judged(300, creates(30), &policy, &ctx).approvals.is_empty());
        assert_eq!(judged(300, creates(31), &policy, &ctx).approvals.len(), 31);

        let mut admin = action(1, Operation::Create, Cause::Grant);
        admin.attributes.insert("role".into(), "Admin".into());
        let mut promote = action(2, Operation::Update, Cause::Drift);
        promote.changes.push(AttributeChange {
            name: "role".into(),
            before: Some("user".into()),
            after: Some("owner".into()),
        });
        let mut keeps_admin = action(3, Operation::Update, Cause::Drift);
        keeps_admin.attributes.insert("role".into(), "admin".into());
        keeps_admin.changes.push(AttributeChange {
            name: "manager_email".into(),
            before: None,
            after: Some("m@acme.example".into()),
        });
        let plan = judged(50, vec![admin, promote, keeps_admin], &policy, &ctx);
        assert_eq!(
            plan.approvals.keys().copied().collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(plan.approvals[&0].starts_with("privileged_grant: "));
    }

    #[test]
    fn source_change_thresholds() {
        let a = ApprovalSettings::default();
        let c = |people, terminated| SourceCounts { people, terminated };
        // The first import is accepted as it is.
        assert_eq!(source_change(None, c(0, 0), &a), None);
        assert_eq!(source_change(Some(c(0, 0)), c(100, 50), &a), None);
        // Emptied, cut in half, 6% fewer: held; 5% fewer: fine.
        assert!(source_change(Some(c(100, 5)), c(0, 0), &a).is_some());
        assert!(source_change(Some(c(100, 5)), c(50, 2), &a).is_some());
        assert!(source_change(Some(c(100, 5)), c(94, 5), &a).is_some());
        assert_eq!(source_change(Some(c(100, 5)), c(95, 5), &a), None);
        // 6 of 100 newly terminated at once: held; 5: fine.
        assert!(source_change(Some(c(100, 5)), c(100, 11), &a).is_some());
        assert_eq!(source_change(Some(c(100, 5)), c(100, 10), &a), None);
        // One leaver in a five-person company is not a short read.
        assert_eq!(source_change(Some(c(5, 0)), c(5, 1), &a), None);
        assert_eq!(source_change(Some(c(5, 0)), c(4, 0), &a), None);
        assert!(source_change(Some(c(5, 0)), c(5, 2), &a).is_some());
    }

    #[test]
    fn a_source_change_withholds_every_removal_and_says_how_to_confirm() {
        let change = source_change(
            Some(SourceCounts {
                people: 40,
                terminated: 0,
            }),
            SourceCounts {
                people: 20,
                terminated: 0,
            },
            &ApprovalSettings::default(),
        );
        assert!(change.is_some());
        let ctx = GuardContext {
            source_change: change,
            ..GuardContext::default()
        };
        let mut actions = removals(2, Cause::Left);
        actions.push(action(5, Operation::Deactivate, Cause::Orphan));
        actions.push(action(7, Operation::Create, Cause::Grant));
        let plan = judged(40, actions, &Policy::default(), &ctx);
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.actions[0].operation, Operation::Create);
        assert_eq!(plan.findings.len(), 1);
        assert_eq!(plan.findings[0].kind, FindingKind::SourceChange);
        let text = crate::plan::render(&plan);
        assert!(text.contains(ACCEPT_SOURCE_CHANGE), "{text}");
        assert!(text.contains("source_change"), "{text}");
    }
}
