//! A synthetic company for `roster demo` and benchmarks.
//!
//! Deterministic for a given seed: the same seed gives the same people and
//! the same app state, so demo output and benchmark inputs are repeatable.
//! The mix is what a real month looks like: most people settled, some
//! joiners (in HR, not yet in the app), leavers (terminated in HR, still in
//! the app), movers (cost center changed in HR, old workspace in the app),
//! manager changes, a rehire, and a few orphans (in the app, not in HR).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_core::{Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Person};
use time::{Date, Duration};

const FIRST: [&str; 24] = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena",
    "Yusuf", "Zoe", "Amir",
];
const LAST: [&str; 20] = [
    "Smith", "Jones", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Martin", "Lee", "Perez", "White", "Harris", "Clark", "Lewis",
    "Young",
];
const DEPARTMENTS: [(&str, &str); 5] = [
    ("Finance", "CC-100"),
    ("Sales", "CC-200"),
    ("Engineering", "CC-300"),
    ("Marketing", "CC-400"),
    ("Operations", "CC-500"),
];

/// The Expensify workspace (policy) ID for each cost center, as the
/// sample policy's lookup table maps them.
pub fn workspace_ids() -> BTreeMap<String, String> {
    DEPARTMENTS
        .iter()
        .enumerate()
        .map(|(i, (_, cc))| (cc.to_string(), format!("E5A1B2C3D4E5F{:03X}", 0x100 + i)))
        .collect()
}

/// What the sample contains, for the demo's narrative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleMix {
    pub people: usize,
    pub joiners: usize,
    pub leavers: usize,
    pub movers: usize,
    pub manager_changes: usize,
    pub rehires: usize,
    pub orphans: usize,
    pub on_leave: usize,
}

/// A sample company: HR people, and the accounts an app holds today.
#[derive(Debug, Clone)]
pub struct SampleCompany {
    pub domain: String,
    pub people: Vec<Person>,
    /// Accounts as the app (Expensify) holds them before roster runs.
    pub accounts: Vec<Account>,
    pub mix: SampleMix,
}

/// Builds a company of `size` people (at least 10) for connection
/// `connection`, deterministically from `seed`, with `today` as the date.
pub fn company(size: usize, seed: u64, today: Date, connection: &ConnectionId) -> SampleCompany {
    let size = size.max(10);
    let mut rng = StdRng::seed_from_u64(seed);
    let domain = "acme.example".to_string();
    let workspaces = workspace_ids();
    let mut mix = SampleMix {
        people: size,
        ..SampleMix::default()
    };
    let mut people: Vec<Person> = Vec::with_capacity(size);
    for i in 0..size {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        let local = if i < FIRST.len() * LAST.len() {
            format!("{}.{}", first.to_lowercase(), last.to_lowercase())
        } else {
            format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), i)
        };
        let (dept, cc) = DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())];
        // The first person of each department manages it; the first person
        // overall is the CEO and has no manager.
        let manager = if i == 0 {
            None
        } else {
            let head = people
                .iter()
                .find(|p| p.department == dept)
                .map(|p| p.email.clone());
            head.or_else(|| people.first().map(|p| p.email.clone()))
        };
        let start = today - Duration::days(rng.random_range(30..3000));
        people.push(Person {
            employee_id: EmployeeId::new(format!("E{:05}", i + 1)),
            email: Email::parse(&format!("{local}@{domain}")).unwrap_or_else(|_| unreachable!()),
            aliases: Vec::new(),
            first_name: first.to_string(),
            last_name: last.to_string(),
            department: dept.to_string(),
            cost_center: cc.to_string(),
            manager_email: manager,
            status: EmploymentStatus::Active,
            start_date: Some(start),
            end_date: None,
            groups: vec![dept.to_string(), "Everyone".to_string()],
            attributes: BTreeMap::new(),
        });
    }

    let account_of = |p: &Person, cost_center: &str, manager: Option<&Email>| Account {
        connection: connection.clone(),
        key: AccountKey::new(p.email.normalized()),
        email: Some(p.email.clone()),
        employee_id: Some(p.employee_id.clone()),
        active: true,
        attributes: [
            ("policy_id", workspaces.get(cost_center).cloned()),
            ("role", Some("user".to_string())),
            ("manager_email", manager.map(|m| m.to_string())),
            ("first_name", Some(p.first_name.clone())),
            ("last_name", Some(p.last_name.clone())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect(),
    };

    let mut accounts = Vec::new();
    let n = people.len();
    for (i, p) in people.iter_mut().enumerate() {
        // Department heads and the CEO are never churned, so the org chart
        // holds together.
        let is_head = i < DEPARTMENTS.len() * 2;
        let roll: u32 = if is_head {
            1000
        } else {
            rng.random_range(0..100)
        };
        match roll {
            0..=3 => {
                // Joiner: in HR, started in the last week, no account yet.
                mix.joiners += 1;
                p.start_date = Some(today - Duration::days(rng.random_range(0..7)));
            }
            4..=7 => {
                // Leaver: terminated in HR, still active in the app.
                mix.leavers += 1;
                let manager = p.manager_email.clone();
                accounts.push(account_of(p, &p.cost_center.clone(), manager.as_ref()));
                p.status = EmploymentStatus::Terminated;
                p.end_date = Some(today - Duration::days(rng.random_range(1..60)));
            }
            8..=11 => {
                // Mover: HR moved them to another cost center; the app has
                // the old workspace.
                mix.movers += 1;
                let old_cc = p.cost_center.clone();
                let manager = p.manager_email.clone();
                accounts.push(account_of(p, &old_cc, manager.as_ref()));
                let (dept, cc) = DEPARTMENTS
                    .iter()
                    .copied()
                    .find(|(_, cc)| *cc != old_cc)
                    .unwrap_or(DEPARTMENTS[0]);
                p.department = dept.to_string();
                p.cost_center = cc.to_string();
                p.groups = vec![dept.to_string(), "Everyone".to_string()];
            }
            12..=13 => {
                // Manager change: the app still has the old approver.
                mix.manager_changes += 1;
                let old = Email::parse(&format!("former.manager{}@{domain}", i % 7))
                    .unwrap_or_else(|_| unreachable!());
                accounts.push(account_of(p, &p.cost_center.clone(), Some(&old)));
            }
            14 => {
                mix.on_leave += 1;
                p.status = EmploymentStatus::Leave;
                let manager = p.manager_email.clone();
                accounts.push(account_of(p, &p.cost_center.clone(), manager.as_ref()));
            }
            _ => {
                let manager = p.manager_email.clone();
                accounts.push(account_of(p, &p.cost_center.clone(), manager.as_ref()));
            }
        }
    }
    // Orphans: accounts nobody in HR owns (a contractor, a shared login).
    let orphans = (n / 100).max(1);
    for k in 0..orphans {
        let email =
            Email::parse(&format!("contractor{k}@{domain}")).unwrap_or_else(|_| unreachable!());
        accounts.push(Account {
            connection: connection.clone(),
            key: AccountKey::new(email.normalized()),
            email: Some(email),
            employee_id: None,
            active: true,
            attributes: [("role".to_string(), "user".to_string())]
                .into_iter()
                .collect(),
        });
    }
    mix.orphans = orphans;
    SampleCompany {
        domain,
        people,
        accounts,
        mix,
    }
}

/// The policy the demo runs: everyone active (or on leave) gets Expensify,
/// in the workspace of their cost center, submitting to their manager.
pub fn demo_policy(connection: &ConnectionId) -> String {
    let mut table = String::new();
    for (cc, id) in workspace_ids() {
        table.push_str(&format!("\"{cc}\" = \"{id}\"\n"));
    }
    format!(
        r#"# roster policy for the demo company.
# Everyone active or on leave gets Expensify, in the workspace (policy) of
# their cost center, submitting reports to their manager from HR.

[connections.{connection}]
orphans = "report"

[tables.workspace_by_cost_center]
{table}
[[rules]]
name = "everyone-gets-expensify"
connection = "{connection}"
when = {{ status = ["active", "leave"] }}
set = {{ role = "user", manager_email = "{{manager_email}}", policy_id = {{ lookup = "cost_center", table = "workspace_by_cost_center" }} }}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::{Observed, Policy, reconcile};

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::November, 25).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn same_seed_same_company() {
        let c = ConnectionId::new("expensify");
        let a = company(300, 7, today(), &c);
        let b = company(300, 7, today(), &c);
        assert_eq!(a.people, b.people);
        assert_eq!(a.accounts, b.accounts);
    }

    #[test]
    fn the_demo_plan_has_every_kind_of_change_and_matches_the_mix() {
        let c = ConnectionId::new("expensify");
        let sample = company(300, 42, today(), &c);
        let mix = &sample.mix;
        assert!(mix.joiners > 0 && mix.leavers > 0 && mix.movers > 0 && mix.manager_changes > 0);
        let policy = Policy::parse("demo.toml", &demo_policy(&c)).expect("demo policy parses");
        let observed = vec![Observed::complete(c.clone(), sample.accounts.clone())];
        let plan = reconcile(
            &sample.people,
            &observed,
            &policy,
            today().midnight().assume_utc(),
        );
        let counts = plan.counts();
        use roster_core::Operation::*;
        assert_eq!(counts.get(&Create).copied().unwrap_or(0), mix.joiners);
        assert_eq!(counts.get(&Deactivate).copied().unwrap_or(0), mix.leavers);
        assert_eq!(
            counts.get(&Update).copied().unwrap_or(0),
            mix.movers + mix.manager_changes
        );
        assert_eq!(plan.findings.len(), mix.orphans);
    }
}
