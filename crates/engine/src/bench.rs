//! The reconciliation benchmark, and reconciliation of one person.
//!
//! # Targeted reconciliation
//!
//! [`reconcile_person`] plans for one person without loading the company,
//! through the engine's one planning function ([`crate::planning`],
//! `PlanScope::Person`): the same code `roster plan --person` and the
//! service's events run. The planning module's docs say why the result is
//! that person's part of a full run (everyone who could claim the same
//! accounts is loaded, and the core plans for the person alone).
//!
//! # Benchmark
//!
//! [`run`] builds a synthetic company ([`Synthetic`]) in an empty store and
//! times a full reconciliation (load people and observed accounts, correlate
//! and diff, save the plan) and targeted reconciliations of a sample of
//! people, reporting peak memory (`VmHWM`) after each phase next to the
//! targets. The generator is deterministic for a seed.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Observed, Person, Plan,
    Policy, PolicyError,
};
use roster_store::{PlanId, Store, StoreError};
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};

/// A benchmark or targeted-run failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The benchmark replaces the people snapshot; it refuses a database
    /// that already holds data.
    #[error(
        "BENCH-0001 {0} is not empty ({1}); the benchmark replaces the people snapshot, so give it a fresh database"
    )]
    NotEmpty(String, String),
    #[error("BENCH-0002 no person {0} in the people snapshot")]
    PersonNotFound(String),
    #[error("BENCH-0003 cannot create a temporary database directory: {0}")]
    TempDir(#[from] std::io::Error),
    #[error("BENCH-0004 {0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(Box<crate::EngineError>),
}

impl BenchError {
    fn engine(e: crate::EngineError) -> BenchError {
        BenchError::Engine(Box::new(e))
    }
}

impl BenchError {
    /// The stable code at the start of the message (the wrapped error's
    /// own for a store or policy failure).
    pub fn code(&self) -> &'static str {
        match self {
            BenchError::Store(e) => e.code(),
            BenchError::Policy(e) => e.code(),
            BenchError::NotEmpty(..) => "BENCH-0001",
            BenchError::PersonNotFound(_) => "BENCH-0002",
            BenchError::TempDir(_) => "BENCH-0003",
            BenchError::Invalid(_) => "BENCH-0004",
            BenchError::Engine(e) => e.code(),
        }
    }
}

// ------------------------------------------------------- targeted runs

/// Who to reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonSelector {
    Email(Email),
    EmployeeId(EmployeeId),
}

impl PersonSelector {
    /// An address if it parses as one, otherwise an employee ID.
    pub fn parse(s: &str) -> Self {
        match Email::parse(s) {
            Ok(e) => PersonSelector::Email(e),
            Err(_) => PersonSelector::EmployeeId(EmployeeId::new(s.trim())),
        }
    }
}

impl std::fmt::Display for PersonSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersonSelector::Email(e) => write!(f, "{e}"),
            PersonSelector::EmployeeId(id) => write!(f, "{id}"),
        }
    }
}

/// The outcome of [`reconcile_person`].
#[derive(Clone, Debug)]
pub struct TargetedRun {
    pub person: Person,
    pub plan: Plan,
    /// The saved plan, when `persist` was asked for.
    pub plan_id: Option<PlanId>,
    /// Accounts that correlate to the person (or involve them in an
    /// ambiguous match).
    pub accounts: usize,
    /// Other people loaded because they could claim one of the accounts.
    pub others: usize,
}

/// Plans (and with `persist`, saves the plan) for one person through the
/// engine's one planning function ([`crate::planning`]): the code `roster
/// plan --person` and the service's events run, not a copy.
pub async fn reconcile_person(
    store: &Store,
    policy: &Policy,
    who: &PersonSelector,
    now: OffsetDateTime,
    persist: bool,
) -> Result<TargetedRun, BenchError> {
    let engine = crate::Engine::new(store.clone(), policy.clone()).at(now);
    let scope = crate::PlanScope::Person(match who {
        PersonSelector::Email(e) => crate::PersonRef::Email(e.clone()),
        PersonSelector::EmployeeId(id) => crate::PersonRef::EmployeeId(id.clone()),
    });
    let inputs = match engine.plan_inputs(&scope).await {
        Err(crate::EngineError::PersonNotFound(_)) => {
            return Err(BenchError::PersonNotFound(who.to_string()));
        }
        other => other.map_err(BenchError::engine)?,
    };
    let plan = engine
        .plan_from(&inputs)
        .await
        .map_err(BenchError::engine)?;
    let accounts = inputs.observed.iter().map(|o| o.accounts.len()).sum();
    let others = inputs.people.len().saturating_sub(1);
    let plan_id = if persist {
        Some(
            engine
                .save_plan(&plan, &scope, &roster_core::Principal::service())
                .await
                .map_err(BenchError::engine)?,
        )
    } else {
        None
    };
    let person = inputs
        .person
        .ok_or_else(|| BenchError::PersonNotFound(who.to_string()))?;
    Ok(TargetedRun {
        person,
        plan,
        plan_id,
        accounts,
        others,
    })
}

// ------------------------------------------------------- generator

const DEPARTMENTS: [(&str, &str); 8] = [
    ("Finance", "CC-100"),
    ("Sales", "CC-200"),
    ("Engineering", "CC-300"),
    ("Marketing", "CC-400"),
    ("Operations", "CC-500"),
    ("Support", "CC-600"),
    ("Legal", "CC-700"),
    ("People", "CC-800"),
];
const DOMAIN: &str = "corp.example";
const OLD_DOMAIN: &str = "corp-old.example";

/// What the synthetic company contains.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyntheticMix {
    pub people: usize,
    pub apps: usize,
    pub accounts: usize,
    /// Terminated in HR; some accounts still active, some already closed.
    pub leavers: usize,
    /// Moved department: old entitlements and attributes in the apps.
    pub movers: usize,
    pub on_leave: usize,
    /// In HR, no accounts yet.
    pub joiners: usize,
    /// Accounts whose managed attributes were changed by hand in the app.
    pub drifted_accounts: usize,
    /// Accounts no HR person matches (contractors, shared logins).
    pub orphan_accounts: usize,
    /// Accounts known by the person's alias address, not their primary.
    pub alias_accounts: usize,
}

/// How a person looked before this month's HR changes; the apps still
/// reflect this.
#[derive(Clone, Debug)]
struct Prior {
    department: usize,
    joiner: bool,
    /// Leavers only: fraction of apps already closed, per mille.
    closed_per_mille: u32,
}

/// A deterministic synthetic company with `apps` connections.
pub struct Synthetic {
    pub people: Vec<Person>,
    prior: Vec<Prior>,
    pub connections: Vec<ConnectionId>,
    pub policy_text: String,
    seed: u64,
}

fn connection_name(k: usize) -> ConnectionId {
    ConnectionId::new(format!("app-{:02}", k + 1))
}

/// Departments app `k` is granted to; every fifth app goes to everyone.
fn app_departments(k: usize) -> Option<Vec<usize>> {
    if k.is_multiple_of(5) {
        return None;
    }
    Some(
        (0..DEPARTMENTS.len())
            .filter(|d| (d + k).is_multiple_of(4) || *d == k % DEPARTMENTS.len())
            .collect(),
    )
}

fn workspace_of(cc: &str) -> String {
    format!("W-{cc}")
}

impl Synthetic {
    /// Builds the people and policy. Accounts are generated per connection
    /// by [`Synthetic::accounts`], so the whole company never has to sit in
    /// memory at once.
    pub fn new(size: usize, apps: usize, seed: u64, today: Date) -> Result<Synthetic, BenchError> {
        if size < 10 || apps == 0 {
            return Err(BenchError::Invalid(
                "the benchmark needs at least 10 people and 1 app".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut people = Vec::with_capacity(size);
        let mut prior = Vec::with_capacity(size);
        let mut heads: Vec<Option<Email>> = vec![None; DEPARTMENTS.len()];
        for i in 0..size {
            let first = format!("first{}", i % 997);
            let last = format!("last{}", i / 997);
            let email = parse_email(&format!("{first}.{last}.{i}@{DOMAIN}"))?;
            let mut dept = rng.random_range(0..DEPARTMENTS.len());
            if i < DEPARTMENTS.len() {
                dept = i;
            }
            let manager = if i == 0 {
                None
            } else if heads[dept].as_ref() == Some(&email) || i < DEPARTMENTS.len() {
                people.first().map(|p: &Person| p.email.clone())
            } else {
                heads[dept].clone()
            };
            if heads[dept].is_none() {
                heads[dept] = Some(email.clone());
            }
            let aliases = if rng.random_range(0..100) < 5 {
                vec![parse_email(&format!("{first}.{last}.{i}@{OLD_DOMAIN}"))?]
            } else {
                Vec::new()
            };
            let mut p = Person {
                employee_id: EmployeeId::new(format!("E{:07}", i + 1)),
                email,
                aliases,
                first_name: first,
                last_name: last,
                department: DEPARTMENTS[dept].0.to_string(),
                cost_center: DEPARTMENTS[dept].1.to_string(),
                manager_email: manager,
                status: EmploymentStatus::Active,
                start_date: Some(today - Duration::days(rng.random_range(30..4000))),
                end_date: None,
                groups: vec![DEPARTMENTS[dept].0.to_string(), "Everyone".to_string()],
                attributes: [("title".to_string(), format!("Title {}", i % 37))]
                    .into_iter()
                    .collect(),
            };
            let mut pr = Prior {
                department: dept,
                joiner: false,
                closed_per_mille: 0,
            };
            // Department heads and the CEO never churn.
            let roll = if i < DEPARTMENTS.len() {
                1000
            } else {
                rng.random_range(0..1000)
            };
            match roll {
                0..=19 => {
                    p.status = EmploymentStatus::Terminated;
                    p.end_date = Some(today - Duration::days(rng.random_range(1..90)));
                    pr.closed_per_mille = rng.random_range(0..700);
                }
                20..=49 => {
                    let new =
                        (dept + 1 + rng.random_range(0..DEPARTMENTS.len() - 1)) % DEPARTMENTS.len();
                    p.department = DEPARTMENTS[new].0.to_string();
                    p.cost_center = DEPARTMENTS[new].1.to_string();
                    p.groups[0] = DEPARTMENTS[new].0.to_string();
                }
                50..=59 => p.status = EmploymentStatus::Leave,
                60..=69 => {
                    pr.joiner = true;
                    p.start_date = Some(today - Duration::days(rng.random_range(0..7)));
                }
                _ => {}
            }
            people.push(p);
            prior.push(pr);
        }
        let connections: Vec<ConnectionId> = (0..apps).map(connection_name).collect();
        let policy_text = policy_text(&connections);
        Ok(Synthetic {
            people,
            prior,
            connections,
            policy_text,
            seed,
        })
    }

    pub fn policy(&self) -> Result<Policy, BenchError> {
        Ok(Policy::parse("bench-policy.toml", &self.policy_text)?)
    }

    /// What the app behind connection `k` holds before roster runs: an
    /// account for everyone its rule granted last month (leavers partly
    /// closed already, movers with their old department), hand-made drift,
    /// and orphans. Returns the accounts and what went into them.
    pub fn accounts(&self, k: usize) -> (Vec<Account>, SyntheticMix) {
        let connection = connection_name(k);
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(k as u64 + 1)),
        );
        let granted = app_departments(k);
        let keyed_by_email = k.is_multiple_of(2);
        let carries_employee_id = k.is_multiple_of(3);
        let mut mix = SyntheticMix::default();
        let mut out = Vec::new();
        for (i, (p, pr)) in self.people.iter().zip(&self.prior).enumerate() {
            if pr.joiner {
                continue;
            }
            if let Some(depts) = &granted
                && !depts.contains(&pr.department)
            {
                continue;
            }
            let (dept, cc) = DEPARTMENTS[pr.department];
            let use_alias = !p.aliases.is_empty() && rng.random_range(0..100) < 20;
            let email = if use_alias {
                mix.alias_accounts += 1;
                p.aliases[0].clone()
            } else {
                p.email.clone()
            };
            let mut attributes: BTreeMap<String, String> = [
                ("role", "user".to_string()),
                ("department", dept.to_string()),
                ("workspace", workspace_of(cc)),
                ("first_name", p.first_name.clone()),
                ("last_name", p.last_name.clone()),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b))
            .collect();
            if let Some(m) = &p.manager_email {
                attributes.insert("manager_email".into(), m.to_string());
            }
            if rng.random_range(0..1000) < 20 {
                mix.drifted_accounts += 1;
                if rng.random_bool(0.5) {
                    attributes.insert("role".into(), "admin".into());
                } else {
                    attributes.insert(
                        "manager_email".into(),
                        format!("former.manager{}@{DOMAIN}", i % 13),
                    );
                }
            }
            let active = !(p.status == EmploymentStatus::Terminated
                && rng.random_range(0..1000) < pr.closed_per_mille);
            out.push(Account {
                connection: connection.clone(),
                key: if keyed_by_email {
                    AccountKey::new(email.normalized())
                } else {
                    AccountKey::new(format!("u{k:02}-{:08x}", i))
                },
                email: Some(email),
                employee_id: carries_employee_id.then(|| p.employee_id.clone()),
                active,
                attributes,
            });
        }
        let orphans = (out.len() / 100).max(1);
        for n in 0..orphans {
            let email =
                Email::parse(&format!("contractor{n}.app{k}@{DOMAIN}")).unwrap_or_else(|_| {
                    Email::parse("contractor@corp.example").unwrap_or_else(|_| unreachable!())
                });
            out.push(Account {
                connection: connection.clone(),
                key: AccountKey::new(format!("c{k:02}-{n:08x}")),
                email: Some(email),
                employee_id: None,
                active: true,
                attributes: [("role".to_string(), "user".to_string())]
                    .into_iter()
                    .collect(),
            });
        }
        mix.orphan_accounts = orphans;
        mix.accounts = out.len();
        (out, mix)
    }

    /// Counts over people (accounts are counted per connection).
    fn people_mix(&self) -> SyntheticMix {
        let mut mix = SyntheticMix {
            people: self.people.len(),
            apps: self.connections.len(),
            ..SyntheticMix::default()
        };
        for (p, pr) in self.people.iter().zip(&self.prior) {
            match p.status {
                EmploymentStatus::Terminated => mix.leavers += 1,
                EmploymentStatus::Leave => mix.on_leave += 1,
                EmploymentStatus::Active => {}
            }
            if pr.joiner {
                mix.joiners += 1;
            }
            if DEPARTMENTS[pr.department].0 != p.department {
                mix.movers += 1;
            }
        }
        mix
    }
}

fn parse_email(s: &str) -> Result<Email, BenchError> {
    Email::parse(s).map_err(BenchError::Invalid)
}

fn policy_text(connections: &[ConnectionId]) -> String {
    let mut s = String::from(
        "# Synthetic benchmark policy.\n[correlation]\norder = [\"employee_id\", \"email\", \"aliases\"]\n\n[tables.workspace_by_cost_center]\n",
    );
    for (_, cc) in DEPARTMENTS {
        s.push_str(&format!("\"{cc}\" = \"{}\"\n", workspace_of(cc)));
    }
    for (k, c) in connections.iter().enumerate() {
        s.push_str(&format!("\n[connections.{c}]\norphans = \"report\"\n"));
        let when = match app_departments(k) {
            None => "{ status = [\"active\", \"leave\"] }".to_string(),
            Some(depts) => format!(
                "{{ department = [{}] }}",
                depts
                    .iter()
                    .map(|d| format!("\"{}\"", DEPARTMENTS[*d].0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        s.push_str(&format!(
            "\n[[rules]]\nname = \"{c}-access\"\nconnection = \"{c}\"\nwhen = {when}\n\
             set = {{ role = \"user\", department = \"{{department}}\", manager_email = \"{{manager_email}}\", \
             workspace = {{ lookup = \"cost_center\", table = \"workspace_by_cost_center\" }} }}\n"
        ));
    }
    s
}

// ------------------------------------------------------- the benchmark

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub people: usize,
    pub apps: usize,
    /// `None`: a fresh SQLite file in a temporary directory.
    pub database: Option<String>,
    pub seed: u64,
    /// How many people the targeted phase reconciles one by one.
    pub targeted_samples: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            people: 100_000,
            apps: 20,
            database: None,
            seed: 42,
            targeted_samples: 1_000,
        }
    }
}

/// The targets the figures are judged against.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Targets {
    pub full_total_ms: f64,
    pub peak_rss_bytes: u64,
    pub targeted_p99_ms: f64,
    /// For `--people 200000` against `--people 100000`: full time ratio.
    pub scaling_ratio_max: f64,
}

/// The targets at 100,000 people × 20 apps on SQLite (issue 16).
pub const TARGETS: Targets = Targets {
    full_total_ms: 2_000.0,
    peak_rss_bytes: 1024 * 1024 * 1024,
    targeted_p99_ms: 3.0,
    scaling_ratio_max: 2.2,
};

/// The targets at 50,000 people × 200 apps (10 million accounts; set for
/// PostgreSQL): the full run within a minute, memory within 2 GiB.
pub const TARGETS_MANY_APPS: Targets = Targets {
    full_total_ms: 60_000.0,
    peak_rss_bytes: 2 * 1024 * 1024 * 1024,
    targeted_p99_ms: 10.0,
    scaling_ratio_max: 2.2,
};

/// The targets a run of this shape is judged against: many apps (over
/// 50) is the 10-million-account shape.
pub fn targets_for(apps: usize) -> Targets {
    if apps > 50 {
        TARGETS_MANY_APPS
    } else {
        TARGETS
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedPhase {
    pub ms: f64,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FullPhase {
    /// People, the gateway's intent and overrides.
    pub load_people_ms: f64,
    /// Reading the connections' accounts, summed; it overlaps planning
    /// (the accounts are streamed, see `crate::stream`).
    pub load_observed_ms: f64,
    /// Correlating and diffing, summed over the planner threads, plus the
    /// whole-plan steps (re-pointing, sorting, guards).
    pub reconcile_ms: f64,
    pub persist_ms: f64,
    pub total_ms: f64,
    /// The plan computed (people, streamed accounts, finish), wall clock.
    pub plan_wall_ms: f64,
    /// The streamed run's own figures.
    pub stream: crate::stream::StreamStats,
    /// Streamed: loading and planning overlap, so this is the peak after
    /// both (the same as after reconcile).
    pub peak_rss_after_load_bytes: Option<u64>,
    pub peak_rss_after_reconcile_bytes: Option<u64>,
    pub peak_rss_after_persist_bytes: Option<u64>,
    pub people: usize,
    pub accounts: usize,
    pub actions: BTreeMap<String, usize>,
    pub findings: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetedPhase {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Actions the sampled runs planned in total.
    pub actions: usize,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub full_total: bool,
    pub peak_rss: Option<bool>,
    pub targeted_p99: bool,
}

/// The benchmark's result, printed as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    pub backend: String,
    pub database: String,
    pub seed: u64,
    pub mix: SyntheticMix,
    /// Whether `VmHWM` could be reset after seeding (Linux
    /// `/proc/self/clear_refs`); if not, the full phase's peaks include the
    /// seeding phase's.
    pub peak_reset_after_seed: bool,
    pub seed_phase: SeedPhase,
    pub full: FullPhase,
    pub targeted: TargetedPhase,
    pub targets: Targets,
    pub met: Verdict,
    /// Set by [`BenchReport::compare`] against a smaller run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

/// How the full reconciliation's time grew from a baseline run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scaling {
    pub baseline_people: u64,
    pub baseline_full_total_ms: f64,
    pub people: u64,
    pub full_total_ms: f64,
    /// `full_total_ms / baseline_full_total_ms`.
    pub ratio: f64,
    pub people_ratio: f64,
    pub target_max: f64,
    /// Judged only when the people doubled (the target is for 2×).
    pub met: Option<bool>,
}

impl BenchReport {
    /// Compares with a baseline report (the JSON this module printed for
    /// a smaller `--people`) and records the result in `scaling`.
    pub fn compare(&mut self, baseline: &serde_json::Value) -> Result<&Scaling, BenchError> {
        let people = baseline
            .pointer("/mix/people")
            .and_then(serde_json::Value::as_u64)
            .filter(|n| *n > 0);
        let total = baseline
            .pointer("/full/total_ms")
            .and_then(serde_json::Value::as_f64)
            .filter(|t| *t > 0.0);
        let (Some(baseline_people), Some(baseline_full_total_ms)) = (people, total) else {
            return Err(BenchError::Invalid(
                "the baseline is not a benchmark report (needs mix.people and full.total_ms)"
                    .into(),
            ));
        };
        let people = self.mix.people as u64;
        let people_ratio = people as f64 / baseline_people as f64;
        let ratio = self.full.total_ms / baseline_full_total_ms;
        let doubled = (1.9..=2.1).contains(&people_ratio);
        Ok(self.scaling.insert(Scaling {
            baseline_people,
            baseline_full_total_ms,
            people,
            full_total_ms: self.full.total_ms,
            ratio,
            people_ratio,
            target_max: TARGETS.scaling_ratio_max,
            met: doubled.then_some(ratio <= TARGETS.scaling_ratio_max),
        }))
    }
}

/// Runs the benchmark. `progress` receives one line per phase.
pub async fn run(
    opts: &BenchOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<BenchReport, BenchError> {
    let today = Date::from_calendar_date(2026, time::Month::November, 25)
        .map_err(|e| BenchError::Invalid(e.to_string()))?;
    let now = today
        .with_hms(9, 0, 0)
        .map_err(|e| BenchError::Invalid(e.to_string()))?
        .assume_utc();
    let now_ms = unix_ms(now);

    // Keeps the temporary directory alive until the end of the run.
    let (url, _tmp) = match &opts.database {
        Some(url) => (url.clone(), None),
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("bench.db");
            (path.display().to_string(), Some(dir))
        }
    };
    let store = Store::open(&url).await?;
    let people_before = store.people_count().await?;
    let reads_before = store.observations().await?.len();
    if people_before > 0 || reads_before > 0 {
        return Err(BenchError::NotEmpty(
            store.describe().to_string(),
            format!("{people_before} people, {reads_before} connection reads"),
        ));
    }

    // Seed.
    let t = Instant::now();
    let synthetic = Synthetic::new(opts.people, opts.apps, opts.seed, today)?;
    let policy = synthetic.policy()?;
    let mut mix = synthetic.people_mix();
    store.replace_people(&synthetic.people).await?;
    for (k, c) in synthetic.connections.iter().enumerate() {
        let (accounts, m) = synthetic.accounts(k);
        mix.accounts += m.accounts;
        mix.drifted_accounts += m.drifted_accounts;
        mix.orphan_accounts += m.orphan_accounts;
        mix.alias_accounts += m.alias_accounts;
        store
            .replace_accounts(&Observed::complete(c.clone(), accounts), now_ms - 60_000)
            .await?;
    }
    let sample: Vec<PersonSelector> = sample_people(&synthetic.people, opts.targeted_samples);
    drop(synthetic);
    let seed_phase = SeedPhase {
        ms: ms_since(t),
        peak_rss_bytes: peak_rss(),
    };
    progress(&format!(
        "seeded {} people, {} accounts in {} connections in {:.0} ms",
        mix.people, mix.accounts, mix.apps, seed_phase.ms
    ));
    let peak_reset_after_seed = reset_peak_rss();

    // Full reconciliation: the engine's own full plan, streamed a
    // connection at a time (crate::stream), then stored and audited.
    let engine = crate::Engine::new(store.clone(), policy.clone()).at(now);
    let t = Instant::now();
    let (plan, stats) = engine
        .plan_streamed(&crate::PlanScope::All)
        .await
        .map_err(BenchError::engine)?;
    let plan_wall_ms = ms_since(t);
    let peak_rss_after_reconcile_bytes = peak_rss();
    let t3 = Instant::now();
    engine
        .save_plan(
            &plan,
            &crate::PlanScope::All,
            &roster_core::Principal::service(),
        )
        .await
        .map_err(BenchError::engine)?;
    let persist_ms = ms_since(t3);
    let total_ms = ms_since(t);
    let full = FullPhase {
        load_people_ms: stats.people_ms,
        load_observed_ms: stats.load_ms,
        reconcile_ms: stats.plan_ms + stats.finish_ms,
        persist_ms,
        total_ms,
        plan_wall_ms,
        stream: stats.clone(),
        peak_rss_after_load_bytes: peak_rss_after_reconcile_bytes,
        peak_rss_after_reconcile_bytes,
        peak_rss_after_persist_bytes: peak_rss(),
        people: mix.people,
        accounts: stats.accounts,
        actions: plan
            .counts()
            .into_iter()
            .map(|(op, n)| (op.as_str().to_string(), n))
            .collect(),
        findings: plan.findings.len(),
    };
    drop(plan);
    drop(engine);
    progress(&format!(
        "full reconciliation: {:.0} ms (people {:.0}, accounts streamed over {} connections in {:.0}: load {:.0} and plan {:.0} overlapping on {} planners, finish {:.0}; persist {:.0})",
        full.total_ms,
        full.load_people_ms,
        full.stream.connections,
        full.stream.stream_ms,
        full.load_observed_ms,
        full.stream.plan_ms,
        full.stream.planners,
        full.stream.finish_ms,
        full.persist_ms
    ));

    // Targeted reconciliations.
    let mut times = Vec::with_capacity(sample.len());
    let mut actions = 0;
    for who in &sample {
        let t = Instant::now();
        let run = reconcile_person(&store, &policy, who, now, true).await?;
        times.push(ms_since(t));
        actions += run.plan.actions.len();
    }
    times.sort_by(f64::total_cmp);
    let targeted = TargetedPhase {
        samples: times.len(),
        p50_ms: percentile_f(&times, 50.0),
        p99_ms: percentile_f(&times, 99.0),
        max_ms: times.last().copied().unwrap_or(0.0),
        mean_ms: if times.is_empty() {
            0.0
        } else {
            times.iter().sum::<f64>() / times.len() as f64
        },
        actions,
        peak_rss_bytes: peak_rss(),
    };
    progress(&format!(
        "targeted: p50 {:.2} ms, p99 {:.2} ms over {} people",
        targeted.p50_ms, targeted.p99_ms, targeted.samples
    ));
    let backend = store.backend().to_string();
    let database = store.describe().to_string();
    store.close().await;

    let peak = [full.peak_rss_after_persist_bytes, targeted.peak_rss_bytes]
        .into_iter()
        .flatten()
        .max();
    let targets = targets_for(opts.apps);
    let met = Verdict {
        full_total: full.total_ms <= targets.full_total_ms,
        peak_rss: peak.map(|p| p <= targets.peak_rss_bytes),
        targeted_p99: targeted.p99_ms <= targets.targeted_p99_ms,
    };
    Ok(BenchReport {
        backend,
        database,
        seed: opts.seed,
        mix,
        peak_reset_after_seed,
        seed_phase,
        full,
        targeted,
        targets,
        met,
        scaling: None,
    })
}

/// `n` people spread evenly over the company, half looked up by address
/// and half by employee ID.
fn sample_people(people: &[Person], n: usize) -> Vec<PersonSelector> {
    let n = n.min(people.len());
    (0..n)
        .map(|j| {
            let p = &people[j * people.len() / n.max(1)];
            if j % 2 == 0 {
                PersonSelector::Email(p.email.clone())
            } else {
                PersonSelector::EmployeeId(p.employee_id.clone())
            }
        })
        .collect()
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn percentile_f(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The process's peak resident set size (`VmHWM`), on Linux.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix("VmHWM:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0: writing `5` to
/// `/proc/self/clear_refs`). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::November, 25).unwrap()
    }

    #[test]
    fn the_synthetic_company_is_deterministic_and_has_the_mix() {
        let a = Synthetic::new(2_000, 4, 7, today()).unwrap();
        let b = Synthetic::new(2_000, 4, 7, today()).unwrap();
        assert_eq!(a.people, b.people);
        assert_eq!(a.accounts(1).0, b.accounts(1).0);
        let mix = a.people_mix();
        // 2 % leavers, 3 % movers, 1 % joiners, 1 % on leave, ± noise.
        assert!((25..=55).contains(&mix.leavers), "{mix:?}");
        assert!((40..=80).contains(&mix.movers), "{mix:?}");
        assert!((8..=35).contains(&mix.joiners), "{mix:?}");
        let (accounts, m) = a.accounts(0);
        assert_eq!(
            m.orphan_accounts,
            (accounts.len() - m.orphan_accounts) / 100
        );
        assert!(m.drifted_accounts > 0 && m.alias_accounts > 0, "{m:?}");
        a.policy().unwrap();
    }

    #[test]
    fn peak_rss_reads_proc_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().unwrap_or(0) > 1024 * 1024);
        }
    }
}
