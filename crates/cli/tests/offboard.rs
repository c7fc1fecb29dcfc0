//! `roster offboard` as an operator runs it: the plan first, nothing done
//! without `--yes` (not even roster's own override), then the offboarding
//! carried out and the access that remains.

use std::path::Path;

mod common;
use common::*;
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy};

const WS: &str = "AAAA000000000001";

async fn sim() -> RunningSim {
    let policy = SimPolicy::new(WS, "Workspace 1", "it@acme.example")
        .with_employee(SimEmployee::new(
            "alice@acme.example",
            "boss@acme.example",
            "E1",
        ))
        .with_employee(SimEmployee::new(
            "bob@acme.example",
            "boss@acme.example",
            "E2",
        ));
    ExpensifySim::start(ExpensifySimConfig::new("partner", "right-secret").with_policies([policy]))
        .await
        .unwrap()
}

fn deployment(dir: &Path, url: &str) -> std::path::PathBuf {
    write_deployment(
        dir,
        url,
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
         E2,bob@acme.example,Bob,Jones,Finance,CC-1,boss@acme.example,active,2020-01-01,\n",
    )
}

async fn roster_at(config: &Path, args: &[&'static str]) -> (std::process::Output, String, String) {
    let config = config.to_path_buf();
    let args: Vec<&'static str> = args.to_vec();
    blocking(move || roster_with(&config, &args)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn offboard_shows_the_plan_does_nothing_without_yes_then_closes_and_reports() {
    let app = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), &app.url());
    // The people are imported.
    let (out, _, stderr) = roster_at(&config, &["plan"]).await;
    assert!(out.status.success(), "{stderr}");

    // --dry-run: the plan, nothing else.
    let (out, stdout, stderr) = roster_at(
        &config,
        &[
            "offboard",
            "bob@acme.example",
            "--reason",
            "left",
            "--dry-run",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("- deactivate bob@acme.example"), "{stdout}");
    assert!(!stdout.contains("alice"), "only Bob is planned:\n{stdout}");
    // Without --yes: the same plan, and a refusal to act.
    let (out, stdout, stderr) = roster_at(&config, &["offboard", "E2", "--reason", "left"]).await;
    assert!(!out.status.success());
    assert!(stdout.contains("- deactivate bob@acme.example"), "{stdout}");
    assert!(stderr.contains("re-run with --yes"), "{stderr}");
    assert!(
        app.handle().effects().is_empty(),
        "nothing was done in the app"
    );
    // Nor in roster: no termination override was recorded, so a plan
    // still keeps Bob.
    let (out, stdout, stderr) = roster_at(&config, &["plan"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("deactivate bob"), "{stdout}");

    // --yes: carried out, and what remains is shown.
    let (out, stdout, stderr) = roster_at(
        &config,
        &[
            "offboard",
            "bob@acme.example",
            "--reason",
            "left",
            "--yes",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["applied"], true);
    assert_eq!(v["report"]["applied"], 1, "{v}");
    let still_active: Vec<_> = v["remaining"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "active")
        .collect();
    assert!(still_active.is_empty(), "{v}");
    assert!(app.handle().employee(WS, "bob@acme.example").is_none());
    assert!(app.handle().employee(WS, "alice@acme.example").is_some());

    // The override holds: the next plan does not bring Bob back.
    let (out, stdout, stderr) = roster_at(&config, &["plan"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("create     bob"), "{stdout}");

    // In text: the plan, what was done, and the access that remains.
    let (out, stdout, stderr) = roster_at(
        &config,
        &[
            "offboard",
            "alice@acme.example",
            "--reason",
            "left too",
            "--yes",
        ],
    )
    .await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Offboarded alice@acme.example (E1)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 action(s) applied, 0 failed"), "{stdout}");
    assert!(stdout.contains("Remaining access:"), "{stdout}");
    assert!(!stdout.contains("ACTIVE"), "{stdout}");
    assert!(app.handle().employee(WS, "alice@acme.example").is_none());

    // Someone roster does not know is an error, and nothing is done.
    let (out, _, stderr) = roster_at(
        &config,
        &["offboard", "nobody@acme.example", "--reason", "x", "--yes"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr.contains("nobody@acme.example"), "{stderr}");
}

/// `roster person show` over a deployment whose HR file is a JSON feed
/// (`[source] hr_file = "people.json"`), in Europe/Paris: the person's
/// identities, their account with the path and the rule, their dates,
/// as text and as JSON; it reads roster's database only.
#[tokio::test(flavor = "multi_thread")]
async fn person_show_reads_a_json_hr_feed_and_names_path_rule_and_dates() {
    let app = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), &app.url());
    let feed = r#"[
      {"employee_id": "E1", "email": "alice@acme.example", "first_name": "Alice", "last_name": "Smith",
       "department": "Finance", "cost_center": "CC-1", "manager_email": "boss@acme.example",
       "status": "active", "start_date": "2020-01-01", "end_date": "2099-12-31",
       "aliases": ["a.smith@acme.example"], "groups": ["Finance"]},
      {"employee_id": "E2", "email": "bob@acme.example", "first_name": "Bob", "last_name": "Jones",
       "department": "Finance", "cost_center": "CC-1", "manager_email": "boss@acme.example",
       "status": "active", "start_date": "2020-01-01", "end_date": null}
    ]"#;
    std::fs::write(dir.path().join("people.json"), feed).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "hr_csv = \"people.csv\"",
        "hr_file = \"people.json\"\n\n[company]\ntime_zone = \"Europe/Paris\"",
    );
    std::fs::write(&config, text).unwrap();
    let (out, _, stderr) = roster_at(&config, &["plan"]).await;
    assert!(out.status.success(), "{stderr}");

    let (out, stdout, stderr) =
        roster_at(&config, &["person", "show", "a.smith@acme.example"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Alice Smith <alice@acme.example> (E1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ends 2099-12-31 (Europe/Paris)"),
        "{stdout}"
    );
    assert!(stdout.contains("aliases: a.smith@acme.example"), "{stdout}");
    assert!(stdout.contains("grant: rule \"everyone\""), "{stdout}");
    assert!(
        stdout.contains("path to deactivate: api via expensify-api"),
        "{stdout}"
    );

    let (out, stdout, stderr) = roster_at(&config, &["person", "show", "E1", "--json"]).await;
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["planned"]["email"], "alice@acme.example");
    assert_eq!(v["dates"]["kind"], "leaving");
    assert_eq!(v["accounts"][0]["rules"][0], "everyone");
    assert_eq!(v["accounts"][0]["path"]["path"], "api");

    // A bad record refuses the whole feed, naming it.
    std::fs::write(
        dir.path().join("people.json"),
        feed.replace("\"bob@acme.example\"", "\"bob-at-acme\""),
    )
    .unwrap();
    let (out, _, stderr) = roster_at(&config, &["plan"]).await;
    assert!(!out.status.success());
    assert!(stderr.contains("people.json: record 2: email"), "{stderr}");

    let (out, _, stderr) = roster_at(&config, &["person", "show", "nobody@acme.example"]).await;
    assert!(!out.status.success());
    assert!(stderr.contains("ENG-0009"), "{stderr}");
}
