//! Data-driven reconciliation tests.
//!
//! Each file under `tests/cases/` is one case: a policy, people (HR CSV),
//! observed accounts, and the expected plan as `roster plan` renders it.
//! Run with `UPDATE_EXPECT=1` to rewrite the expected sections after a
//! deliberate change, then review the diff like any other code change.
//!
//! Sections (a line starting with `== `):
//! * `== policy` TOML; optional, defaults to [`DEFAULT_POLICY`].
//! * `== people` HR CSV rows; the header line may be omitted.
//! * `== accounts` one per line: `connection | key | email | employee_id |
//!   active|inactive | k=v; k=v`.
//! * `== incomplete CONNECTION: reason` marks that connection's read as
//!   incomplete.
//! * `== resolutions` one per line: `connection | account key | employee_id`
//!   (or `-` for "not a managed person").
//! * `== now YYYY-MM-DD` the reconciliation date (default 2026-11-25,
//!   midnight UTC), or `== now 2026-12-08T07:30:00Z` (RFC 3339) an instant.
//! * `== calendar ZONE N` the company's time zone and
//!   `provision_days_before_start` (default `UTC 0`).
//! * `== plan` the expected rendering.

use std::collections::BTreeMap;
use std::path::Path;

use roster_core::plan::render;
use roster_core::{
    Account, AccountKey, Calendar, ConnectionId, Email, EmployeeId, GuardContext, Observed, Policy,
    Resolution, hr_csv, reconcile_guarded,
};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

const DEFAULT_POLICY: &str = r#"
[tables.workspace]
"CC-100" = "P100"
"CC-200" = "P200"
"CC-300" = "P300"

[[rules]]
name = "everyone-expensify"
connection = "expensify"
set = { role = "user", manager_email = "{manager_email}", policy_id = { lookup = "cost_center", table = "workspace" } }
"#;

const HR_HEADER: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date";

struct Case {
    policy: String,
    people: String,
    accounts: Vec<(ConnectionId, Account)>,
    incomplete: BTreeMap<String, String>,
    resolutions: Vec<Resolution>,
    now: OffsetDateTime,
    calendar: Calendar,
    expected: String,
    head: String,
}

fn parse_case(text: &str) -> Case {
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut head = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            sections.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else {
            head.push_str(line);
            head.push('\n');
        }
    }
    let mut case = Case {
        policy: DEFAULT_POLICY.to_string(),
        people: String::new(),
        accounts: Vec::new(),
        incomplete: BTreeMap::new(),
        resolutions: Vec::new(),
        now: Date::from_calendar_date(2026, time::Month::November, 25)
            .unwrap()
            .midnight()
            .assume_utc(),
        calendar: Calendar::default(),
        expected: String::new(),
        head,
    };
    for (name, body) in sections {
        if name == "policy" {
            case.policy = body;
        } else if name == "people" {
            let body = body.trim_start();
            case.people = if body.starts_with("employee_id") {
                body.to_string()
            } else {
                format!("{HR_HEADER}\n{body}")
            };
        } else if name == "accounts" {
            for line in body
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let f: Vec<&str> = line.split('|').map(str::trim).collect();
                assert!(f.len() >= 5, "bad account line {line:?}");
                let connection = ConnectionId::new(f[0]);
                let attributes = f
                    .get(5)
                    .map(|s| {
                        s.split(';')
                            .filter(|kv| !kv.trim().is_empty())
                            .map(|kv| {
                                let (k, v) = kv.split_once('=').expect("k=v");
                                (k.trim().to_string(), v.trim().to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                case.accounts.push((
                    connection.clone(),
                    Account {
                        connection,
                        key: AccountKey::new(f[1]),
                        email: (!f[2].is_empty()).then(|| Email::parse(f[2]).unwrap()),
                        employee_id: (!f[3].is_empty()).then(|| EmployeeId::new(f[3])),
                        active: match f[4] {
                            "active" => true,
                            "inactive" => false,
                            other => panic!("active|inactive, got {other:?}"),
                        },
                        attributes,
                    },
                ));
            }
        } else if let Some(rest) = name.strip_prefix("incomplete ") {
            let (conn, reason) = rest.split_once(':').unwrap_or((rest, "incomplete"));
            case.incomplete
                .insert(conn.trim().to_string(), reason.trim().to_string());
        } else if let Some(date) = name.strip_prefix("now ") {
            case.now = match OffsetDateTime::parse(
                date.trim(),
                &time::format_description::well_known::Rfc3339,
            ) {
                Ok(t) => t,
                Err(_) => Date::parse(date.trim(), format_description!("[year]-[month]-[day]"))
                    .unwrap()
                    .midnight()
                    .assume_utc(),
            };
        } else if let Some(rest) = name.strip_prefix("calendar ") {
            let mut f = rest.split_whitespace();
            let zone = f.next().expect("calendar ZONE N");
            let days = f.next().map_or(0, |n| n.parse().expect("days"));
            case.calendar = Calendar::new(zone, days).expect("known zone");
        } else if name == "resolutions" {
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let f: Vec<&str> = line.split('|').map(str::trim).collect();
                case.resolutions.push(Resolution {
                    connection: ConnectionId::new(f[0]),
                    account: AccountKey::new(f[1]),
                    employee_id: (f[2] != "-").then(|| EmployeeId::new(f[2])),
                });
            }
        } else if name == "plan" {
            case.expected = body;
        } else {
            panic!("unknown section {name:?}");
        }
    }
    case
}

fn run(case: &Case) -> String {
    let policy = Policy::parse("policy.toml", &case.policy).expect("policy parses");
    let people = hr_csv::parse("people.csv", &case.people).expect("people parse");
    let mut observed: BTreeMap<ConnectionId, Observed> = BTreeMap::new();
    for c in policy.governed_connections() {
        observed.insert(c.clone(), Observed::complete(c, Vec::new()));
    }
    for (c, a) in &case.accounts {
        observed
            .entry(c.clone())
            .or_insert_with(|| Observed::complete(c.clone(), Vec::new()))
            .accounts
            .push(a.clone());
    }
    for (c, reason) in &case.incomplete {
        if let Some(o) = observed.get_mut(&ConnectionId::new(c.as_str())) {
            o.complete = false;
            o.incomplete_reason = Some(reason.clone());
        }
    }
    let observed: Vec<Observed> = observed.into_values().collect();
    let context = GuardContext {
        calendar: case.calendar.clone(),
        ..GuardContext::default()
    };
    let plan = reconcile_guarded(
        &people,
        &observed,
        &policy,
        &case.resolutions,
        &context,
        case.now,
    );

    // Determinism: shuffling the inputs must not change the plan.
    let mut people_rev = people.clone();
    people_rev.reverse();
    let mut observed_rev = observed.clone();
    observed_rev.reverse();
    for o in &mut observed_rev {
        o.accounts.reverse();
    }
    let again = reconcile_guarded(
        &people_rev,
        &observed_rev,
        &policy,
        &case.resolutions,
        &context,
        case.now,
    );
    assert_eq!(render(&plan), render(&again), "plan depends on input order");

    // Streamed a connection at a time (what the engine's full run does),
    // in reverse order: the same plan, byte for byte.
    let prepared = roster_core::Prepared::new(&people, &context, case.now);
    let mut run = prepared.stream(&policy, &case.resolutions, &context, case.now);
    for o in observed.iter().rev() {
        run.add(o);
    }
    let streamed = run.finish();
    assert_eq!(render(&plan), render(&streamed), "streamed plan differs");
    assert_eq!(plan, streamed, "streamed plan differs");
    assert_eq!(plan.hash(), streamed.hash(), "streamed plan hash differs");
    assert_eq!(
        plan.hash(),
        again.hash(),
        "plan hash depends on input order"
    );
    render(&plan)
}

#[test]
fn reconcile_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "expected at least 25 cases, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case = parse_case(&text);
        let actual = run(&case);
        if actual != case.expected {
            if update {
                let idx = text.find("== plan").map(|i| i + "== plan\n".len());
                let new = match idx {
                    Some(i) => format!("{}{}", &text[..i], actual),
                    None => format!("{}\n== plan\n{}", text.trim_end(), actual),
                };
                std::fs::write(file, new).unwrap();
            } else {
                failures.push(format!(
                    "{}\n{}--- expected\n{}--- actual\n{}",
                    file.display(),
                    case.head,
                    case.expected,
                    actual
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
