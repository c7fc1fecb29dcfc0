//! Identity changes never move an account to another person.
//!
//! Data-driven: each [`Scenario`] is people (HR CSV rows), the accounts an
//! app holds at the start (each with a *marker*: the history that account
//! carries), match resolutions a person made, and the app's expected
//! final state after some rounds of read → plan → apply. Every scenario
//! runs against the Expensify simulator (records keyed by address, renames
//! through `employeeID`) and the generic SCIM app simulator (users keyed by
//! id), and the verdict is read from the simulator itself, not the plan:
//! which active accounts exist, under which address, carrying which
//! employee ID and whose history.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::scim::{ScimConfig, ScimConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{AccountKey, ConnectionId, EmployeeId, Policy, Principal, hr_csv};
use roster_engine::{Engine, PlanScope, Roster};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, seed_policies};
use roster_sim::scim_app::{ENTERPRISE_SCHEMA, ScimSim, ScimSimConfig, user_json};
use roster_store::{MatchResolution, Store};
use serde_json::Value;

const HR_HEADER: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date";

/// One account at the start: address, employee ID (`""`: none), first and
/// last name (`""`: none), and the marker naming its history.
struct Seed {
    email: &'static str,
    employee_id: &'static str,
    first: &'static str,
    last: &'static str,
    marker: &'static str,
}

/// An active account at the end: address, employee ID, and the marker of
/// the seeded account it is (`None`: an account roster created).
type Final = (&'static str, &'static str, Option<&'static str>);

struct Scenario {
    name: &'static str,
    people: &'static str,
    seeds: Vec<Seed>,
    /// (marker of the account, the person a human said owns it).
    resolutions: Vec<(&'static str, &'static str)>,
    /// Rounds of read → plan → apply.
    rounds: usize,
    /// The active accounts afterwards, in both apps...
    expect: Vec<Final>,
    /// ...unless the SCIM app (which keeps deactivated users, so their
    /// addresses stay taken) ends differently.
    expect_scim: Option<Vec<Final>>,
}

fn seed(
    email: &'static str,
    employee_id: &'static str,
    first: &'static str,
    last: &'static str,
    marker: &'static str,
) -> Seed {
    Seed {
        email,
        employee_id,
        first,
        last,
        marker,
    }
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "email change with the same employee ID renames the account in place",
            people: "E5,frank.miller@acme.com,Frank,Miller,Finance,CC-1,,active,2020-01-01,",
            seeds: vec![seed("frank@acme.com", "E5", "Frank", "Miller", "frank")],
            resolutions: vec![],
            rounds: 2,
            expect: vec![("frank.miller@acme.com", "E5", Some("frank"))],
            expect_scim: None,
        },
        Scenario {
            // The reported bug: the account under Nina's address carried
            // Alice's employee ID; a person resolved it to Alice (E1), who
            // also got a new address. Alice's account is renamed in place;
            // Nina gets a new account only once her address is free.
            name: "hand-resolved match keeps the account with its person",
            people: "E1,alice.new@acme.com,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
                     E9,nina@acme.com,Nina,Park,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("nina@acme.com", "E1", "", "", "alice")],
            resolutions: vec![("alice", "E1")],
            rounds: 3,
            expect: vec![
                ("alice.new@acme.com", "E1", Some("alice")),
                ("nina@acme.com", "E9", None),
            ],
            expect_scim: None,
        },
        Scenario {
            // Alice's account carries Nina's employee ID (a data-entry
            // slip); a person resolved it to Alice. It takes Alice's ID
            // and new address in place, never Nina's.
            name: "hand-resolved match re-keys the account to its person",
            people: "E1,alice.new@acme.com,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
                     E9,nina@acme.com,Nina,Park,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("alice@acme.com", "E9", "Alice", "Smith", "alice")],
            resolutions: vec![("alice", "E1")],
            rounds: 3,
            expect: vec![
                ("alice.new@acme.com", "E1", Some("alice")),
                ("nina@acme.com", "E9", None),
            ],
            expect_scim: None,
        },
        Scenario {
            // Alex (E3) left and is gone from the HR file; a new hire
            // (E8) got the address. The old account is not handed over,
            // and no create lands on it.
            name: "address reused by a new hire after the previous owner left the file",
            people: "E8,alex@acme.com,Alexis,Stone,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("alex@acme.com", "E3", "Alex", "Reed", "alex-old")],
            resolutions: vec![],
            rounds: 2,
            expect: vec![("alex@acme.com", "E3", Some("alex-old"))],
            expect_scim: None,
        },
        Scenario {
            // The previous owner is still in the file, terminated, under a
            // new address; the app's account under the reused address
            // carries their ID. A person confirmed it is theirs. It is
            // closed first; only then does the new hire get an account of
            // their own (Expensify removes members; the SCIM app keeps the
            // deactivated user, whose name stays taken).
            name: "address reused by a new hire while the previous owner is terminated",
            people: "E3,alex.reed@acme.com,Alex,Reed,Finance,CC-1,,terminated,2019-01-01,2026-10-01\n\
                     E8,alex@acme.com,Alexis,Stone,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("alex@acme.com", "E3", "Alex", "Reed", "alex-old")],
            resolutions: vec![("alex-old", "E3")],
            rounds: 3,
            expect: vec![("alex@acme.com", "E8", None)],
            expect_scim: Some(vec![]),
        },
        Scenario {
            // Carol got the employee ID Bob had. Bob's account is not
            // renamed to Carol, and Carol gets no account over it.
            name: "employee ID reused for a new hire",
            people: "E7,carol@acme.com,Carol,White,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("bob@acme.com", "E7", "Bob", "Jones", "bob")],
            resolutions: vec![],
            rounds: 2,
            expect: vec![("bob@acme.com", "E7", Some("bob"))],
            expect_scim: None,
        },
        Scenario {
            // ally@ was Alice's alias; HR dropped it and gave it to Ally as
            // her primary address. Alice's account under it stays hers.
            name: "alias becoming someone else's primary address (account carries an ID)",
            people: "E1,alice@acme.com,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
                     E2,ally@acme.com,Ally,Brown,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("ally@acme.com", "E1", "Alice", "Smith", "alice")],
            resolutions: vec![],
            rounds: 2,
            expect: vec![("ally@acme.com", "E1", Some("alice"))],
            expect_scim: None,
        },
        Scenario {
            // The same with an account that carries no employee ID: the
            // app's name for it (Alice Smith) is not Ally's, so Ally does
            // not get it. Nothing ties it to Alice any more either (HR
            // dropped the alias), so Alice gets an account of her own and
            // the old one waits, untouched, for a person to decide.
            name: "alias becoming someone else's primary address (account without an ID)",
            people: "E1,alice@acme.com,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
                     E2,ally@acme.com,Ally,Brown,Finance,CC-1,,active,2026-11-01,",
            seeds: vec![seed("ally@acme.com", "", "Alice", "Smith", "alice")],
            resolutions: vec![],
            rounds: 2,
            expect: vec![
                ("ally@acme.com", "", Some("alice")),
                ("alice@acme.com", "E1", None),
            ],
            expect_scim: None,
        },
    ]
}

/// The app under test, set up from a scenario's seeds.
enum App {
    Expensify {
        sim: roster_sim::expensify::RunningSim,
        policy: String,
    },
    Scim {
        sim: roster_sim::scim_app::RunningScim,
    },
}

const USER: &str = "roster_identity@example.com";
const SECRET: &str = "identity-secret";
const TOKEN: &str = "identity-scim-token";

impl App {
    fn connection(&self) -> ConnectionId {
        ConnectionId::new(match self {
            App::Expensify { .. } => "expensify",
            App::Scim { .. } => "app",
        })
    }

    async fn start(kind: &str, seeds: &[Seed]) -> App {
        match kind {
            "expensify" => {
                let mut policy = seed_policies(1, 0).remove(0);
                for s in seeds {
                    let mut e = SimEmployee::new(s.email, "boss@acme.com", s.employee_id);
                    e.first_name = s.first.into();
                    e.last_name = s.last.into();
                    // The history marker travels with the record through
                    // renames; roster never writes customField2 here.
                    e.custom_field2 = s.marker.into();
                    policy = policy.with_employee(e);
                }
                let id = policy.id.clone();
                let sim = ExpensifySim::start(
                    ExpensifySimConfig::new(USER, SECRET)
                        .with_policies([policy])
                        .scaled(0.001),
                )
                .await
                .expect("expensify simulator");
                App::Expensify { sim, policy: id }
            }
            _ => {
                let mut config = ScimSimConfig::new(TOKEN);
                for s in seeds {
                    let id = (!s.employee_id.is_empty()).then_some(s.employee_id);
                    let mut u = user_json(s.email, s.first, s.last, id);
                    if s.first.is_empty() && s.last.is_empty() {
                        let o = u.as_object_mut().expect("object");
                        o.remove("name");
                        o.remove("displayName");
                    }
                    // The marker is the SCIM id's stand-in: kept in a field
                    // roster never writes.
                    u["nickName"] = Value::String(s.marker.into());
                    config = config.with_user(u);
                }
                App::Scim {
                    sim: ScimSim::start(config).await.expect("scim simulator"),
                }
            }
        }
    }

    fn policy_toml(&self) -> String {
        match self {
            App::Expensify { policy, .. } => format!(
                "[[rules]]\nname = \"staff\"\nconnection = \"expensify\"\nwhen = {{ status = [\"active\"] }}\n\
                 set = {{ role = \"user\", policy_id = \"{policy}\" }}\n"
            ),
            App::Scim { .. } => "[[rules]]\nname = \"staff\"\nconnection = \"app\"\n\
                 when = { status = [\"active\"] }\nset = { department = \"{department}\" }\n"
                .to_string(),
        }
    }

    fn connector(&self) -> Arc<dyn roster_connectors::Connector> {
        match self {
            App::Expensify { sim, .. } => {
                let mut c =
                    ExpensifyConfig::new(self.connection(), USER, SecretString::new(SECRET))
                        .with_base_url(sim.url());
                c.default_manager_email = Some("boss@acme.com".into());
                c.rate_limits = roster_connectors::expensify::documented_rate_limits()
                    .into_iter()
                    .map(|w: RateWindow| w.scaled(0.001))
                    .collect();
                Arc::new(ExpensifyConnector::new(c).expect("connector"))
            }
            App::Scim { sim } => Arc::new(
                ScimConnector::new(ScimConfig::new(
                    self.connection(),
                    sim.url(),
                    SecretString::new(TOKEN),
                ))
                .expect("connector"),
            ),
        }
    }

    /// The app's key for the seeded account with this marker.
    fn key_of(&self, marker: &str) -> AccountKey {
        self.active_and_all()
            .1
            .into_iter()
            .find(|(_, _, m, _)| m.as_deref() == Some(marker))
            .map(|(_, _, _, key)| AccountKey::new(key))
            .unwrap_or_else(|| panic!("no seeded account {marker}"))
    }

    /// (active accounts as (address, employee ID, marker)), and every
    /// account with its key.
    #[allow(clippy::type_complexity)]
    fn active_and_all(
        &self,
    ) -> (
        BTreeSet<(String, String, Option<String>)>,
        Vec<(String, String, Option<String>, String)>,
    ) {
        let mut active = BTreeSet::new();
        let mut all = Vec::new();
        match self {
            App::Expensify { sim, .. } => {
                for p in sim.policies() {
                    for e in p.employees.values() {
                        let marker = (!e.custom_field2.is_empty()).then(|| e.custom_field2.clone());
                        let row = (e.email.to_lowercase(), e.employee_id.clone(), marker);
                        active.insert(row.clone());
                        all.push((row.0, row.1, row.2, e.email.to_lowercase()));
                    }
                }
            }
            App::Scim { sim } => {
                for u in sim.users() {
                    let text =
                        |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
                    let email = text(u.get("userName")).to_lowercase();
                    let id = text(
                        u.get(ENTERPRISE_SCHEMA)
                            .and_then(|e| e.get("employeeNumber")),
                    );
                    let marker = u
                        .get("nickName")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let is_active = u.get("active").and_then(Value::as_bool).unwrap_or(true);
                    if is_active {
                        active.insert((email.clone(), id.clone(), marker.clone()));
                    }
                    all.push((email, id, marker, text(u.get("id"))));
                }
            }
        }
        (active, all)
    }
}

async fn run(kind: &str, sc: &Scenario) {
    let app = App::start(kind, &sc.seeds).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("roster.db").display().to_string())
        .await
        .expect("store");
    let policy = Policy::parse("policy.toml", &app.policy_toml()).expect("policy");
    let mut engine = Engine::new(store, policy);
    engine.add_connector(app.connector());
    engine.executor.retry.initial_backoff = Duration::from_millis(10);
    let roster = Roster::new(engine);
    let tester = Principal::new(PrincipalKind::User, "tester");
    let people =
        hr_csv::parse("people.csv", &format!("{HR_HEADER}\n{}\n", sc.people)).expect("people");
    roster
        .import_people(&tester, &people, "people.csv")
        .await
        .expect("import");
    for (marker, employee_id) in &sc.resolutions {
        roster
            .resolve_match(
                &tester,
                MatchResolution {
                    connection: app.connection(),
                    account: app.key_of(marker),
                    employee_id: Some(EmployeeId::new(*employee_id)),
                    actor: "tester".into(),
                    reason: "checked by hand".into(),
                    at_ms: 1,
                },
            )
            .await
            .expect("resolve");
    }
    let mut log = String::new();
    for round in 0..sc.rounds {
        let outcomes = roster.read(&tester, &mut |_, _| {}).await.expect("read");
        assert!(
            outcomes.iter().all(|o| o.error.is_none() && o.complete),
            "{kind}: {}: read failed: {outcomes:?}",
            sc.name
        );
        let readable = vec![app.connection()];
        let planned = roster
            .plan(&tester, PlanScope::Connections(readable))
            .await
            .expect("plan");
        let (id, plan) = (planned.id.clone(), planned.plan.clone());
        log.push_str(&format!(
            "--- round {round}\n{}",
            roster_core::plan::render(&plan)
        ));
        if !plan.approvals.is_empty() {
            // Guards are not what this test is about; a person approves.
            roster
                .approve(&tester, &id, None, "identity test")
                .await
                .expect("approve");
        }
        let approved = roster.check_planned(&tester, planned).await.expect("check");
        let (report, _) = roster.apply(approved, &mut |_, _| {}).await.expect("apply");
        log.push_str(&format!("applied {report:?}\n"));
    }
    let want = match (kind, &sc.expect_scim) {
        ("app", Some(scim)) => scim,
        _ => &sc.expect,
    };
    let want: BTreeSet<(String, String, Option<String>)> = want
        .iter()
        .map(|(e, id, m)| (e.to_string(), id.to_string(), m.map(str::to_string)))
        .collect();
    let (active, _) = app.active_and_all();
    assert_eq!(
        active, want,
        "{kind}: {}: the app's active accounts (address, employee ID, history) differ\n{log}",
        sc.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_cases_against_expensify() {
    for sc in scenarios() {
        tokio::time::timeout(Duration::from_secs(60), run("expensify", &sc))
            .await
            .unwrap_or_else(|_| panic!("expensify: {} timed out", sc.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_cases_against_the_scim_app() {
    for sc in scenarios() {
        tokio::time::timeout(Duration::from_secs(60), run("app", &sc))
            .await
            .unwrap_or_else(|_| panic!("scim app: {} timed out", sc.name));
    }
}
