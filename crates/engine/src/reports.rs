//! Reports: orphaned accounts, automation coverage ("gap nodes"), leavers'
//! time to closure, and the audit export.
//!
//! # Shape
//!
//! [`load`] reads everything the reports need from the store once into a
//! [`ReportData`]; [`orphans`], [`coverage`] and [`leavers`] are pure
//! functions of that data (plus the policy, the catalog and `now`), and
//! each report has a text renderer next to its JSON form (every report
//! type is `Serialize`). Keeping the reports pure means tests build a
//! [`ReportData`] by hand or from a small store, and the numbers do not
//! depend on the clock.
//!
//! # Definitions
//!
//! * **Correlation** is the planner's: [`roster_core::correlate::Correlator`]
//!   with the policy's `[correlation]` settings, over the people snapshot.
//!   A report never links an account the planner would not.
//! * **Orphan**: an *active* account in a connection's last read whose
//!   correlation finds no person, or finds a *terminated* person the policy
//!   does not entitle to that connection. Ambiguous matches are not orphans
//!   (nobody knows whose they are yet); they are counted as `unresolved`.
//! * **Coverage** of an operation in a connection is the catalog's
//!   [`select_path`] under the connection's settings:
//!   `automated` when roster carries it out without a person's hands
//!   (`scim`, `api`, `idp`, `browser`); `manual` when a person must act
//!   (`csv`: an admin imports the file; `jit`: the person logs in and an
//!   admin follows up; `manual`: a checklist from the catalog); `none` when
//!   the app is not in the catalog or the catalog has no checklist for the
//!   operation, so nobody has even written down how to do it. Every
//!   (connection, operation) that is not `automated` is a **gap node**.
//!   People whose active accounts sit in connections whose `deactivate` is a
//!   gap can only lose that access by hand.
//! * **Leaver**: a terminated person. Each of their accounts is *open*
//!   (active in the last read and no later recorded deactivation) or
//!   *closed*. The closure time is the earliest record of the deactivation
//!   being applied (the plan action's `done` state, or the audit log's
//!   `action.applied` event); when the only evidence is that the last read
//!   shows the account inactive, the read's time is an upper bound and the
//!   closure is marked `exact = false`. Time to closure runs from the start
//!   (00:00 UTC) of the person's end date.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use roster_catalog::{Catalog, ConnectionSettings, Path, select_path};
use roster_core::correlate::{Correlator, Match};
use roster_core::{
    AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Observed, Operation, Person,
    Policy,
};
use roster_store::{
    AccountSighting, ActionState, AuditRecord, ObservationInfo, PlanId, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A report failure.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--since` value that is neither a date, RFC 3339 nor unix
    /// milliseconds.
    #[error(
        "REPORT-0001 {0:?} is not a time: give a date (2026-11-25, midnight UTC), RFC 3339 (2026-11-25T09:00:00Z) or unix milliseconds"
    )]
    BadTime(String),
}

impl ReportError {
    /// The stable code at the start of the message (the store's own for a
    /// store failure).
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::Store(e) => e.code(),
            ReportError::BadTime(_) => "REPORT-0001",
        }
    }
}

/// One connection as the reports see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    pub id: ConnectionId,
    /// The catalog app id, when the store has a connection record.
    pub app: Option<String>,
    pub settings: ConnectionSettings,
    /// Why the stored settings were not used, when they could not be read.
    pub settings_note: Option<String>,
}

impl ConnectionInfo {
    /// Reads a connection record's `settings_json` leniently: the catalog
    /// fields (`plan`, `idp`, `credentials`, `browser_enabled`) are taken
    /// from the top-level object and anything else is ignored, because the
    /// record also carries connector settings. Empty or unreadable settings
    /// give [`ConnectionSettings::default()`] (with a note for unreadable).
    pub fn from_record(id: ConnectionId, app: String, settings_json: &str) -> Self {
        let (settings, settings_note) = parse_settings(settings_json);
        ConnectionInfo {
            id,
            app: Some(app),
            settings,
            settings_note,
        }
    }
}

fn parse_settings(json: &str) -> (ConnectionSettings, Option<String>) {
    if json.trim().is_empty() {
        return (ConnectionSettings::default(), None);
    }
    let value: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return (
                ConnectionSettings::default(),
                Some(format!("settings are not JSON ({e}); defaults used")),
            );
        }
    };
    let Some(obj) = value.as_object() else {
        return (ConnectionSettings::default(), None);
    };
    let picked: serde_json::Map<String, serde_json::Value> = obj
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "plan" | "idp" | "credentials" | "browser_enabled"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match serde_json::from_value(serde_json::Value::Object(picked)) {
        Ok(s) => (s, None),
        Err(e) => (
            ConnectionSettings::default(),
            Some(format!("catalog settings unreadable ({e}); defaults used")),
        ),
    }
}

/// A recorded deactivation of one account, from a saved plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeactivationRecord {
    pub plan_id: PlanId,
    pub index: usize,
    pub connection: ConnectionId,
    pub account: Option<AccountKey>,
    pub employee_id: Option<EmployeeId>,
    pub email: Email,
    pub state: ActionState,
    /// When it was applied: the earliest of the action reaching `done` and
    /// the audit log's `action.applied` event; `None` while not applied.
    pub applied_ms: Option<i64>,
}

/// Everything the reports read from the store.
#[derive(Clone, Debug, Default)]
pub struct ReportData {
    pub people: Vec<Person>,
    pub observed: Vec<Observed>,
    pub observations: Vec<ObservationInfo>,
    pub sightings: Vec<AccountSighting>,
    pub connections: Vec<ConnectionInfo>,
    pub deactivations: Vec<DeactivationRecord>,
}

/// Loads the data every report needs.
pub async fn load(store: &Store) -> Result<ReportData, ReportError> {
    let people = store.people().await?;
    let observed = store.all_observed().await?;
    let observations = store.observations().await?;
    let sightings = store.all_account_sightings().await?;
    let connections = store
        .connections()
        .await?
        .into_iter()
        .map(|r| ConnectionInfo::from_record(r.id, r.app, &r.settings_json))
        .collect();

    let states = store.action_states(Operation::Deactivate).await?;
    // Applied times from the audit log, keyed by (plan, index).
    let mut applied: HashMap<(String, usize), i64> = HashMap::new();
    if !states.is_empty() {
        for rec in store.audit_since(i64::MIN).await? {
            if let Some(key) = applied_deactivation(&rec) {
                let t = applied.entry(key).or_insert(rec.at_ms);
                *t = (*t).min(rec.at_ms);
            }
        }
    }
    let mut deactivations = Vec::with_capacity(states.len());
    let mut plans: HashMap<PlanId, Vec<roster_core::Action>> = HashMap::new();
    for row in states {
        if !plans.contains_key(&row.plan_id) {
            let actions = store
                .plan(&row.plan_id)
                .await?
                .map(|p| p.plan.actions)
                .unwrap_or_default();
            plans.insert(row.plan_id.clone(), actions);
        }
        let Some(action) = plans.get(&row.plan_id).and_then(|a| a.get(row.index)) else {
            continue;
        };
        let audit_ms = applied
            .get(&(row.plan_id.as_str().to_string(), row.index))
            .copied();
        let done_ms = (row.state == ActionState::Done).then_some(row.updated_ms);
        let applied_ms = match (audit_ms, done_ms) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        };
        deactivations.push(DeactivationRecord {
            plan_id: row.plan_id.clone(),
            index: row.index,
            connection: action.connection.clone(),
            account: action.account.clone(),
            employee_id: action.employee_id.clone(),
            email: action.email.clone(),
            state: row.state,
            applied_ms,
        });
    }
    Ok(ReportData {
        people,
        observed,
        observations,
        sightings,
        connections,
        deactivations,
    })
}

/// `(plan, index)` of an `action.applied` audit event for a deactivation.
fn applied_deactivation(rec: &AuditRecord) -> Option<(String, usize)> {
    if rec.kind != "action.applied" {
        return None;
    }
    if rec.data.get("operation")?.as_str()? != Operation::Deactivate.as_str() {
        return None;
    }
    let plan = rec.data.get("plan")?.as_str()?.to_string();
    let index = usize::try_from(rec.data.get("action")?.as_u64()?).ok()?;
    Some((plan, index))
}

// ---------------------------------------------------------------- orphans

/// Why an account counts as orphaned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanReason {
    /// No person in the source of truth matches it.
    NoPerson,
    /// It matches a terminated person the policy does not entitle to it.
    TerminatedPerson,
}

/// The person an account correlates to, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersonRef {
    pub employee_id: EmployeeId,
    pub email: Email,
    pub name: String,
    pub status: EmploymentStatus,
    /// `YYYY-MM-DD`.
    pub end_date: Option<String>,
}

impl PersonRef {
    fn of(p: &Person) -> Self {
        PersonRef {
            employee_id: p.employee_id.clone(),
            email: p.email.clone(),
            name: p.display_name(),
            status: p.status,
            end_date: p.end_date.map(|d| d.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphanAccount {
    pub connection: ConnectionId,
    pub account: AccountKey,
    pub email: Option<Email>,
    pub reason: OrphanReason,
    pub person: Option<PersonRef>,
    /// First and last read that returned the account (unix ms).
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionOrphans {
    pub connection: ConnectionId,
    pub active_accounts: usize,
    pub orphans: usize,
    pub no_person: usize,
    pub terminated_person: usize,
    /// Active accounts whose match is ambiguous: not orphans, not linked.
    pub unresolved: usize,
    /// The last read was incomplete: some accounts may be missing here.
    pub incomplete_read: bool,
    pub accounts: Vec<OrphanAccount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphansReport {
    pub total: usize,
    pub by_connection: Vec<ConnectionOrphans>,
}

/// The orphaned accounts of every read connection (see the module docs).
/// Within a connection, the longest-unnoticed (earliest first seen) come
/// first.
pub fn orphans(data: &ReportData, policy: &Policy) -> OrphansReport {
    let correlator = Correlator::new(&data.people, &policy.correlation);
    let sightings = sighting_index(&data.sightings);
    let mut by_connection = Vec::new();
    let mut total = 0;
    for obs in &data.observed {
        let mut c = ConnectionOrphans {
            connection: obs.connection.clone(),
            active_accounts: 0,
            orphans: 0,
            no_person: 0,
            terminated_person: 0,
            unresolved: 0,
            incomplete_read: !obs.complete,
            accounts: Vec::new(),
        };
        for account in obs.accounts.iter().filter(|a| a.active) {
            c.active_accounts += 1;
            let (reason, person) = match correlator.correlate(account) {
                Match::None => (OrphanReason::NoPerson, None),
                Match::Person(i, _) => {
                    let p = &data.people[i];
                    if p.status == EmploymentStatus::Terminated
                        && policy.entitlement(p, &obs.connection).is_none()
                    {
                        (OrphanReason::TerminatedPerson, Some(PersonRef::of(p)))
                    } else {
                        continue;
                    }
                }
                Match::Ambiguous(..) => {
                    c.unresolved += 1;
                    continue;
                }
            };
            match reason {
                OrphanReason::NoPerson => c.no_person += 1,
                OrphanReason::TerminatedPerson => c.terminated_person += 1,
            }
            let seen = sightings.get(&(&obs.connection, &account.key));
            c.accounts.push(OrphanAccount {
                connection: obs.connection.clone(),
                account: account.key.clone(),
                email: account.email.clone(),
                reason,
                person,
                first_seen_ms: seen.map(|s| s.first_seen_ms),
                last_seen_ms: seen.map(|s| s.last_seen_ms),
            });
        }
        c.accounts.sort_by(|a, b| {
            (a.first_seen_ms.unwrap_or(i64::MAX), &a.account)
                .cmp(&(b.first_seen_ms.unwrap_or(i64::MAX), &b.account))
        });
        c.orphans = c.accounts.len();
        total += c.orphans;
        by_connection.push(c);
    }
    OrphansReport {
        total,
        by_connection,
    }
}

fn sighting_index(
    s: &[AccountSighting],
) -> HashMap<(&ConnectionId, &AccountKey), &AccountSighting> {
    s.iter().map(|x| ((&x.connection, &x.key), x)).collect()
}

/// Text form of [`orphans`].
pub fn render_orphans(r: &OrphansReport) -> String {
    let mut out = String::new();
    for c in &r.by_connection {
        let _ = writeln!(
            out,
            "{}: {} orphaned of {} active ({} match no one, {} belong to leavers){}{}",
            c.connection,
            c.orphans,
            c.active_accounts,
            c.no_person,
            c.terminated_person,
            if c.unresolved > 0 {
                format!("; {} ambiguous, not counted", c.unresolved)
            } else {
                String::new()
            },
            if c.incomplete_read {
                "; last read incomplete"
            } else {
                ""
            }
        );
        for a in &c.accounts {
            let who = a
                .email
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| a.account.to_string());
            let why = match (&a.reason, &a.person) {
                (OrphanReason::TerminatedPerson, Some(p)) => format!(
                    "leaver {} ({}){}",
                    p.name,
                    p.employee_id,
                    p.end_date
                        .as_ref()
                        .map(|d| format!(", left {d}"))
                        .unwrap_or_default()
                ),
                _ => "no person matches".to_string(),
            };
            let _ = writeln!(
                out,
                "  {who:<40} {why}; first seen {}, last seen {}",
                fmt_ms_opt(a.first_seen_ms),
                fmt_ms_opt(a.last_seen_ms)
            );
        }
    }
    let _ = writeln!(
        out,
        "{} orphaned account{} in {} connection{}.",
        r.total,
        plural(r.total),
        r.by_connection.len(),
        plural(r.by_connection.len())
    );
    out
}

// ---------------------------------------------------------------- coverage

/// How an operation is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    Automated,
    Manual,
    None,
}

impl Coverage {
    pub fn as_str(self) -> &'static str {
        match self {
            Coverage::Automated => "automated",
            Coverage::Manual => "manual",
            Coverage::None => "none",
        }
    }

    /// The coverage a chosen path gives; `has_checklist` says whether the
    /// catalog writes down the manual steps.
    pub fn of(path: Path, has_checklist: bool) -> Coverage {
        match path {
            Path::Scim | Path::Api | Path::Idp | Path::Browser => Coverage::Automated,
            Path::Csv | Path::Jit => Coverage::Manual,
            Path::Manual if has_checklist => Coverage::Manual,
            Path::Manual => Coverage::None,
        }
    }
}

/// The lifecycle operations the coverage report covers (reads are not
/// access changes).
pub const COVERED_OPERATIONS: [Operation; 4] = [
    Operation::Create,
    Operation::Update,
    Operation::Deactivate,
    Operation::Reactivate,
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationCoverage {
    pub operation: Operation,
    /// The chosen path; `None` when the app is not in the catalog.
    pub path: Option<Path>,
    pub coverage: Coverage,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionCoverage {
    pub connection: ConnectionId,
    pub app: Option<String>,
    pub app_name: Option<String>,
    /// The settings the paths were chosen under.
    pub settings: String,
    pub settings_note: Option<String>,
    pub operations: Vec<OperationCoverage>,
    pub active_accounts: usize,
    /// Distinct people (by correlation) with an active account here.
    pub people_with_active_accounts: usize,
    /// True when deactivation here is not automated.
    pub removal_by_hand: bool,
}

/// A (connection, operation) roster cannot carry out by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GapNode {
    pub connection: ConnectionId,
    pub app: Option<String>,
    pub operation: Operation,
    pub coverage: Coverage,
    pub path: Option<Path>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoverageReport {
    pub connections: Vec<ConnectionCoverage>,
    pub gap_nodes: Vec<GapNode>,
    /// Distinct people with at least one active account whose removal
    /// needs a person.
    pub people_removable_only_by_hand: usize,
    /// Active accounts (of people or not) whose removal needs a person.
    pub accounts_removable_only_by_hand: usize,
}

/// Coverage of every known connection: those with a store record, plus
/// any read connection without one (its id is tried as the catalog app).
pub fn coverage(data: &ReportData, catalog: &Catalog, policy: &Policy) -> CoverageReport {
    let mut infos: BTreeMap<ConnectionId, ConnectionInfo> = data
        .connections
        .iter()
        .map(|c| (c.id.clone(), c.clone()))
        .collect();
    for obs in &data.observed {
        infos
            .entry(obs.connection.clone())
            .or_insert_with(|| ConnectionInfo {
                id: obs.connection.clone(),
                app: None,
                settings: ConnectionSettings::default(),
                settings_note: None,
            });
    }
    let correlator = Correlator::new(&data.people, &policy.correlation);
    let observed: HashMap<&ConnectionId, &Observed> =
        data.observed.iter().map(|o| (&o.connection, o)).collect();

    let mut connections = Vec::new();
    let mut gap_nodes = Vec::new();
    let mut by_hand_people: BTreeSet<usize> = BTreeSet::new();
    let mut by_hand_accounts = 0;
    for info in infos.values() {
        let app_id = info.app.clone().unwrap_or_else(|| info.id.to_string());
        let app = catalog.get(&app_id);
        let operations: Vec<OperationCoverage> = COVERED_OPERATIONS
            .into_iter()
            .map(|op| match app {
                Some(app) => {
                    let choice = select_path(app, &info.settings, op);
                    OperationCoverage {
                        operation: op,
                        path: Some(choice.path),
                        coverage: Coverage::of(choice.path, app.manual_steps(op).is_some()),
                        reason: choice.reason,
                    }
                }
                None => OperationCoverage {
                    operation: op,
                    path: None,
                    coverage: Coverage::None,
                    reason: format!("app {app_id:?} is not in the catalog"),
                },
            })
            .collect();
        for oc in &operations {
            if oc.coverage != Coverage::Automated {
                gap_nodes.push(GapNode {
                    connection: info.id.clone(),
                    app: app.map(|a| a.id.clone()),
                    operation: oc.operation,
                    coverage: oc.coverage,
                    path: oc.path,
                    reason: oc.reason.clone(),
                });
            }
        }
        let removal_by_hand = operations
            .iter()
            .any(|o| o.operation == Operation::Deactivate && o.coverage != Coverage::Automated);
        let mut active_accounts = 0;
        let mut people: BTreeSet<usize> = BTreeSet::new();
        if let Some(obs) = observed.get(&info.id) {
            for a in obs.accounts.iter().filter(|a| a.active) {
                active_accounts += 1;
                if let Match::Person(i, _) = correlator.correlate(a) {
                    people.insert(i);
                }
            }
        }
        if removal_by_hand {
            by_hand_accounts += active_accounts;
            by_hand_people.extend(people.iter().copied());
        }
        connections.push(ConnectionCoverage {
            connection: info.id.clone(),
            app: app.map(|a| a.id.clone()).or_else(|| info.app.clone()),
            app_name: app.map(|a| a.name.clone()),
            settings: info.settings.describe(),
            settings_note: info.settings_note.clone(),
            operations,
            active_accounts,
            people_with_active_accounts: people.len(),
            removal_by_hand,
        });
    }
    CoverageReport {
        connections,
        gap_nodes,
        people_removable_only_by_hand: by_hand_people.len(),
        accounts_removable_only_by_hand: by_hand_accounts,
    }
}

/// Text form of [`coverage`].
pub fn render_coverage(r: &CoverageReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<12} {:<12} {:<12} {:<12} active  people",
        "connection", "create", "update", "deactivate", "reactivate"
    );
    for c in &r.connections {
        let cell = |op: Operation| {
            c.operations
                .iter()
                .find(|o| o.operation == op)
                .map(|o| match o.path {
                    Some(p) if o.coverage == Coverage::Automated => p.as_str().to_string(),
                    Some(p) => format!("{}({})", o.coverage.as_str(), p.as_str()),
                    None => "none".to_string(),
                })
                .unwrap_or_default()
        };
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<12} {:<12} {:<12} {:>6}  {:>6}",
            c.connection.as_str(),
            cell(Operation::Create),
            cell(Operation::Update),
            cell(Operation::Deactivate),
            cell(Operation::Reactivate),
            c.active_accounts,
            c.people_with_active_accounts
        );
    }
    if !r.gap_nodes.is_empty() {
        let _ = writeln!(out, "\nGap nodes (no automated path):");
        for g in &r.gap_nodes {
            let _ = writeln!(
                out,
                "  {} {}: {} — {}",
                g.connection,
                g.operation,
                g.coverage.as_str(),
                g.reason
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} {} access only by hand ({} active account{} in apps without automated deactivation).",
        r.people_removable_only_by_hand,
        if r.people_removable_only_by_hand == 1 {
            "person can lose"
        } else {
            "people can lose"
        },
        r.accounts_removable_only_by_hand,
        plural(r.accounts_removable_only_by_hand)
    );
    out
}

// ---------------------------------------------------------------- leavers

/// Whether a leaver's account is still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Open,
    Closed,
}

/// What says an account was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosureEvidence {
    /// A plan's deactivation was applied (done state or audit event).
    AppliedAction,
    /// The last read shows the account inactive; no applied action found.
    ObservedInactive,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaverAccount {
    pub connection: ConnectionId,
    pub account: Option<AccountKey>,
    pub email: Option<Email>,
    pub status: AccountStatus,
    pub closed_at_ms: Option<i64>,
    /// False when `closed_at_ms` is only an upper bound (the read time).
    pub exact: bool,
    pub evidence: Option<ClosureEvidence>,
    /// From termination to closure (closed) or to `now` (open), in ms;
    /// `None` without an end date.
    pub since_termination_ms: Option<i64>,
    /// The state of the latest planned deactivation, if one exists.
    pub pending_action: Option<ActionState>,
    /// Still present (active or inactive) in the connection's last read.
    pub present: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leaver {
    pub person: PersonRef,
    pub terminated_ms: Option<i64>,
    pub open: usize,
    pub closed: usize,
    pub accounts: Vec<LeaverAccount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaversSummary {
    pub leavers: usize,
    pub leavers_with_open_accounts: usize,
    pub open_accounts: usize,
    pub closed_accounts: usize,
    /// Over exactly-timed closures.
    pub median_time_to_close_ms: Option<i64>,
    pub p90_time_to_close_ms: Option<i64>,
    pub max_time_to_close_ms: Option<i64>,
    /// The longest an account has stayed open after its owner left.
    pub oldest_open_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaversReport {
    pub now_ms: i64,
    pub summary: LeaversSummary,
    /// Leavers with open accounts first, oldest termination first.
    pub leavers: Vec<Leaver>,
}

/// Every terminated person and what became of each of their accounts.
pub fn leavers(data: &ReportData, policy: &Policy, now: OffsetDateTime) -> LeaversReport {
    let now_ms = to_ms(now);
    let correlator = Correlator::new(&data.people, &policy.correlation);
    let read_ms: HashMap<&ConnectionId, i64> = data
        .observations
        .iter()
        .map(|o| (&o.connection, o.read_ms))
        .collect();

    // Current accounts of terminated people.
    let mut current: HashMap<usize, Vec<(&ConnectionId, &roster_core::Account)>> = HashMap::new();
    for obs in &data.observed {
        for a in &obs.accounts {
            if let Match::Person(i, _) = correlator.correlate(a)
                && data.people[i].status == EmploymentStatus::Terminated
            {
                current.entry(i).or_default().push((&obs.connection, a));
            }
        }
    }
    // Planned deactivations by person, latest plan last.
    let mut planned: HashMap<&EmployeeId, Vec<&DeactivationRecord>> = HashMap::new();
    for d in &data.deactivations {
        if let Some(id) = &d.employee_id {
            planned.entry(id).or_default().push(d);
        }
    }

    let mut leavers = Vec::new();
    for (i, person) in data.people.iter().enumerate() {
        if person.status != EmploymentStatus::Terminated {
            continue;
        }
        let terminated_ms = person.end_date.map(|d| to_ms(d.midnight().assume_utc()));
        let records = planned
            .get(&person.employee_id)
            .cloned()
            .unwrap_or_default();
        let mut accounts = Vec::new();
        let mut covered: BTreeSet<(ConnectionId, AccountKey)> = BTreeSet::new();
        for (conn, a) in current.get(&i).cloned().unwrap_or_default() {
            covered.insert((conn.clone(), a.key.clone()));
            let mine: Vec<&&DeactivationRecord> = records
                .iter()
                .filter(|d| &d.connection == conn && d.account.as_ref() == Some(&a.key))
                .collect();
            let applied = mine.iter().filter_map(|d| d.applied_ms).min();
            let pending_action = mine.last().map(|d| d.state);
            let read = read_ms.get(conn).copied();
            // An applied deactivation after the last read closes the account
            // even though that (older) read still shows it active.
            let (status, closed_at_ms, exact, evidence) = match (a.active, applied) {
                (true, Some(t)) if read.is_none_or(|r| t >= r) => (
                    AccountStatus::Closed,
                    Some(t),
                    true,
                    Some(ClosureEvidence::AppliedAction),
                ),
                (true, _) => (AccountStatus::Open, None, false, None),
                (false, Some(t)) => (
                    AccountStatus::Closed,
                    Some(t),
                    true,
                    Some(ClosureEvidence::AppliedAction),
                ),
                (false, None) => (
                    AccountStatus::Closed,
                    read,
                    false,
                    Some(ClosureEvidence::ObservedInactive),
                ),
            };
            accounts.push(LeaverAccount {
                connection: conn.clone(),
                account: Some(a.key.clone()),
                email: a.email.clone(),
                status,
                closed_at_ms,
                exact,
                evidence,
                since_termination_ms: terminated_ms.map(|t| closed_at_ms.unwrap_or(now_ms) - t),
                pending_action,
                present: true,
            });
        }
        // Accounts no longer in any read, closed by an applied action.
        let mut gone: BTreeMap<(ConnectionId, Option<AccountKey>), &DeactivationRecord> =
            BTreeMap::new();
        for d in &records {
            let Some(t) = d.applied_ms else { continue };
            if let Some(k) = &d.account
                && covered.contains(&(d.connection.clone(), k.clone()))
            {
                continue;
            }
            let e = gone
                .entry((d.connection.clone(), d.account.clone()))
                .or_insert(d);
            if e.applied_ms.is_none_or(|x| t < x) {
                *e = d;
            }
        }
        for ((connection, account), d) in gone {
            accounts.push(LeaverAccount {
                connection,
                account,
                email: Some(d.email.clone()),
                status: AccountStatus::Closed,
                closed_at_ms: d.applied_ms,
                exact: true,
                evidence: Some(ClosureEvidence::AppliedAction),
                since_termination_ms: terminated_ms.zip(d.applied_ms).map(|(t, c)| c - t),
                pending_action: Some(d.state),
                present: false,
            });
        }
        // A leaver with no account anywhere stays listed (0 open, 0
        // closed) so the count matches HR.
        accounts.sort_by(|a, b| {
            (a.status, &a.connection, &a.account).cmp(&(b.status, &b.connection, &b.account))
        });
        let open = accounts
            .iter()
            .filter(|a| a.status == AccountStatus::Open)
            .count();
        leavers.push(Leaver {
            person: PersonRef::of(person),
            terminated_ms,
            open,
            closed: accounts.len() - open,
            accounts,
        });
    }
    leavers.sort_by(|a, b| {
        (
            a.open == 0,
            a.terminated_ms.unwrap_or(i64::MAX),
            &a.person.employee_id,
        )
            .cmp(&(
                b.open == 0,
                b.terminated_ms.unwrap_or(i64::MAX),
                &b.person.employee_id,
            ))
    });

    let mut times: Vec<i64> = leavers
        .iter()
        .flat_map(|l| &l.accounts)
        .filter(|a| a.status == AccountStatus::Closed && a.exact)
        .filter_map(|a| a.since_termination_ms)
        .collect();
    times.sort_unstable();
    let oldest_open_ms = leavers
        .iter()
        .flat_map(|l| &l.accounts)
        .filter(|a| a.status == AccountStatus::Open)
        .filter_map(|a| a.since_termination_ms)
        .max();
    let summary = LeaversSummary {
        leavers: leavers.len(),
        leavers_with_open_accounts: leavers.iter().filter(|l| l.open > 0).count(),
        open_accounts: leavers.iter().map(|l| l.open).sum(),
        closed_accounts: leavers.iter().map(|l| l.closed).sum(),
        median_time_to_close_ms: percentile(&times, 50.0),
        p90_time_to_close_ms: percentile(&times, 90.0),
        max_time_to_close_ms: times.last().copied(),
        oldest_open_ms,
    };
    LeaversReport {
        now_ms,
        summary,
        leavers,
    }
}

/// Text form of [`leavers`].
pub fn render_leavers(r: &LeaversReport) -> String {
    let mut out = String::new();
    for l in &r.leavers {
        let _ = writeln!(
            out,
            "{} ({}, {}) left {}: {} open, {} closed",
            l.person.name,
            l.person.employee_id,
            l.person.email,
            l.person.end_date.as_deref().unwrap_or("(no end date)"),
            l.open,
            l.closed
        );
        for a in &l.accounts {
            let what = a
                .account
                .as_ref()
                .map(|k| k.to_string())
                .or_else(|| a.email.as_ref().map(|e| e.to_string()))
                .unwrap_or_default();
            let line = match a.status {
                AccountStatus::Open => format!(
                    "  OPEN   {:<20} {what:<36} open {} after termination{}",
                    a.connection.as_str(),
                    fmt_duration_opt(a.since_termination_ms),
                    a.pending_action
                        .map(|s| format!("; deactivation {s}"))
                        .unwrap_or_default()
                ),
                AccountStatus::Closed => format!(
                    "  closed {:<20} {what:<36} {}{} ({} after termination)",
                    a.connection.as_str(),
                    if a.exact { "at " } else { "by " },
                    fmt_ms_opt(a.closed_at_ms),
                    fmt_duration_opt(a.since_termination_ms)
                ),
            };
            let _ = writeln!(out, "{line}");
        }
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "{} leaver{}, {} with open accounts; {} account{} open, {} closed; time to close: median {}, p90 {}, max {}; oldest open {}.",
        s.leavers,
        plural(s.leavers),
        s.leavers_with_open_accounts,
        s.open_accounts,
        plural(s.open_accounts),
        s.closed_accounts,
        fmt_duration_opt(s.median_time_to_close_ms),
        fmt_duration_opt(s.p90_time_to_close_ms),
        fmt_duration_opt(s.max_time_to_close_ms),
        fmt_duration_opt(s.oldest_open_ms),
    );
    out
}

// ---------------------------------------------------------------- audit

/// Parses `--since`: a date (`2026-11-25`, the start of that day in UTC),
/// RFC 3339 (`2026-11-25T09:00:00Z`) or unix milliseconds
/// (`1795597200000`).
pub fn parse_since(s: &str) -> Result<i64, ReportError> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(t, day) {
        return Ok(to_ms(date.midnight().assume_utc()));
    }
    OffsetDateTime::parse(t, &Rfc3339)
        .map(to_ms)
        .map_err(|_| ReportError::BadTime(s.to_string()))
}

/// Audit records as JSON lines, one record per line, in sequence order.
pub fn audit_jsonl(records: &[AuditRecord]) -> String {
    let mut out = String::new();
    for r in records {
        // An AuditRecord is plain data: serialization cannot fail.
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------- helpers

fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn fmt_ms_opt(ms: Option<i64>) -> String {
    ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `3d 4h`, `5h 12m`, `42m`, `17s`; negative durations (closed before the
/// end date) get a leading `-`.
fn fmt_duration_opt(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "unknown".into();
    };
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.unsigned_abs() / 1000;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{sign}{d}d {h}h")
    } else if h > 0 {
        format!("{sign}{h}h {m}m")
    } else if m > 0 {
        format!("{sign}{m}m")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_and_unix_ms() {
        assert_eq!(parse_since("1700000000000").ok(), Some(1_700_000_000_000));
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z").ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14T23:13:20+01:00").ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14").ok(),
            Some(1_699_920_000_000),
            "a date is its midnight UTC"
        );
        for bad in ["yesterday", "2023-13-01", "2023-11-14 10:00"] {
            assert!(
                matches!(parse_since(bad), Err(ReportError::BadTime(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(
            fmt_duration_opt(Some(3 * 86_400_000 + 4 * 3_600_000)),
            "3d 4h"
        );
        assert_eq!(fmt_duration_opt(Some(90 * 60_000)), "1h 30m");
        assert_eq!(fmt_duration_opt(Some(-120_000)), "-2m");
        assert_eq!(fmt_duration_opt(None), "unknown");
    }

    #[test]
    fn settings_json_is_read_leniently() {
        let (s, note) =
            parse_settings(r#"{"plan":"enterprise","idp":"okta","base_url":"https://x"}"#);
        assert_eq!(s.plan.as_deref(), Some("enterprise"));
        assert_eq!(s.idp.as_deref(), Some("okta"));
        assert!(note.is_none());
        let (s, note) = parse_settings("{\"policy\":\"P2\"}");
        assert_eq!(s, ConnectionSettings::default());
        assert!(note.is_none());
        let (_, note) = parse_settings("not json");
        assert!(note.is_some());
    }

    #[test]
    fn coverage_levels_follow_who_has_to_act() {
        assert_eq!(Coverage::of(Path::Scim, false), Coverage::Automated);
        assert_eq!(Coverage::of(Path::Browser, true), Coverage::Automated);
        assert_eq!(Coverage::of(Path::Csv, true), Coverage::Manual);
        assert_eq!(Coverage::of(Path::Manual, true), Coverage::Manual);
        assert_eq!(Coverage::of(Path::Manual, false), Coverage::None);
    }
}
