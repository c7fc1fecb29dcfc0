//! End-to-end tests of the `roster` binary, as a user runs it.

use std::path::Path;

mod common;
use common::*;
use roster_sim::expensify::SimEmployee;

#[test]
fn demo_once_prints_a_plan_applies_it_and_then_plans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut cmd = roster();
    cmd.args(["demo", "--once", "--data-dir"]).arg(&data);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    let summary = regex::Regex::new(
        r"Plan: (\d+) to create, (\d+) to update, (\d+) to reactivate, (\d+) to deactivate; (\d+) findings?\.",
    )
    .unwrap();
    let plans: Vec<Vec<usize>> = summary
        .captures_iter(&stdout)
        .map(|c| (1..=5).map(|i| c[i].parse().unwrap()).collect())
        .collect();
    assert!(
        plans.len() >= 2,
        "a first and a last plan are printed:\n{stdout}"
    );
    let (first, last) = (&plans[0], &plans[plans.len() - 1]);
    assert!(
        first[0] > 0 && first[1] > 0 && first[3] > 0,
        "joiners, movers and leavers: {first:?}"
    );
    assert_eq!(
        &last[..4],
        &[0, 0, 0, 0],
        "the last plan is empty:\n{stdout}"
    );
    assert_eq!(first[4], last[4], "orphans are reported, not acted on");
    assert!(
        stdout.contains("(0 failed)"),
        "every automated action applied:\n{stdout}"
    );
    assert!(stdout.contains("0 rate-limit violations"), "{stdout}");
    assert!(stdout.contains("hash chain verified"), "{stdout}");
    // With chromium and chromedriver installed (scripts/browser-tools.sh;
    // CI has them), the Okta leaver's Spendesk account is closed by the
    // console runbook; without, by a person's task, as the demo says.
    let browser = browser_installed();
    // Every seed app took part, each through its own paths.
    let per_app = stdout.split("per app:").nth(1).expect("per-app summary");
    for row in [
        ("expensify", "deactivate api"),
        ("bill-spend-expense", "deactivate idp"),
        ("bill-com", "deactivate scim"),
        (
            "spendesk",
            if browser {
                "deactivate browser"
            } else {
                "deactivate manual"
            },
        ),
    ] {
        let line = per_app
            .lines()
            .find(|l| l.contains(&format!(" {} ", row.0)))
            .unwrap_or_else(|| panic!("{} row:\n{per_app}", row.0));
        assert!(line.contains(row.1), "{line}");
    }
    let spendesk = per_app.lines().find(|l| l.contains(" spendesk ")).unwrap();
    let cells: Vec<&str> = spendesk.split('┆').map(str::trim).collect();
    assert_eq!(
        cells[2],
        if browser { "1" } else { "0" },
        "automated in Spendesk: the Okta leaver's deactivation by the runbook, when chromium is installed: {spendesk}"
    );
    assert!(
        cells[3].parse::<usize>().unwrap() > 0,
        "Spendesk work became tasks: {spendesk}"
    );
    assert_eq!(
        cells[3], cells[4],
        "every task verified by a read: {spendesk}"
    );
    // People come from the simulated Okta; one deactivated there reaches
    // every app they use, and nothing is left open once the reads verify it.
    assert!(stdout.contains("users in Okta"), "{stdout}");
    let leaver = stdout.split("[6/7]").nth(1).expect("the Okta leaver step");
    assert!(leaver.contains("is deactivated in Okta"), "{leaver}");
    for app in ["expensify", "bill-spend-expense", "bill-com", "spendesk"] {
        assert!(
            leaver.contains(&format!("- {app} ")) && leaver.contains("DEPROVISIONED"),
            "{app} closed for the Okta leaver:\n{leaver}"
        );
    }
    assert!(
        leaver.contains("after leaving: 0 account(s) still open, 0 task(s) outstanding"),
        "{leaver}"
    );
    if browser {
        assert_runbook_ran(leaver);
    } else {
        eprintln!(
            "chromium or chromedriver is absent: checked the demo's fallback only (scripts/browser-tools.sh installs them)"
        );
        assert!(
            leaver.contains("falls back to a person's task")
                && leaver.contains("scripts/browser-tools.sh"),
            "{leaver}"
        );
    }
    // The company's files are where the demo said.
    assert!(data.join("people.csv").exists() && data.join("policy.toml").exists());

    // The company's whole estate, 20 catalog apps: the demo names the gap
    // nodes, and `roster report coverage` on the roster.toml it wrote says
    // for every app and operation which path roster takes.
    assert!(
        stdout.contains("coverage across the company's 20 apps"),
        "{stdout}"
    );
    let mut cmd = roster();
    cmd.args(["report", "coverage", "--json", "--config"])
        .arg(data.join("roster.toml"));
    let (out, report, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let connections = report["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 20, "{report:#}");
    let deactivation = |app: &str| {
        let c = connections
            .iter()
            .find(|c| c["connection"] == app)
            .unwrap_or_else(|| panic!("{app} in the report"));
        let op = c["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == "deactivate")
            .unwrap();
        (
            op["path"].as_str().unwrap_or("none").to_string(),
            op["coverage"].as_str().unwrap().to_string(),
        )
    };
    // SCIM (Salesforce's with OAuth client credentials), the declarative
    // REST connector and the demo's own four paths are automated ...
    for (app, path) in [
        ("salesforce", "scim"),
        ("slack", "scim"),
        ("zoom", "api"),
        ("hubspot", "api"),
        ("bill-com", "scim"),
        ("expensify", "api"),
    ] {
        assert_eq!(
            deactivation(app),
            (path.to_string(), "automated".to_string()),
            "{app}"
        );
    }
    // ... and apps on plans without SCIM, or without a connector, are gap
    // nodes a person must carry out.
    let gaps = report["gap_nodes"].as_array().unwrap();
    for app in ["notion", "figma", "linear", "dropbox"] {
        assert!(
            gaps.iter()
                .any(|g| g["connection"] == app && g["operation"] == "deactivate"),
            "{app} deactivation is a gap node: {gaps:#?}"
        );
        assert_eq!(deactivation(app).1, "manual", "{app}");
    }

    // A second demo in the same directory is refused, not mixed in.
    let mut again = roster();
    again.args(["demo", "--once", "--data-dir"]).arg(&data);
    let (out, _, stderr) = run(again);
    assert!(!out.status.success());
    assert!(stderr.contains("fresh directory"), "{stderr}");
}

/// `roster bench runbook` at its smallest: one timed run, then a ramp
/// of 1 and 2 sessions against a console allowing 15 signed-in requests a
/// minute (a run makes about 10): the simulator throttles the second
/// level, and the report says so.
#[test]
fn bench_runbook_times_a_deactivation_and_finds_where_pacing_pushes_back() {
    if !browser_installed() {
        eprintln!(
            "SKIPPED: chromium or chromedriver is absent (scripts/browser-tools.sh installs them)"
        );
        return;
    }
    let mut cmd = roster();
    cmd.args([
        "bench",
        "runbook",
        "--runs",
        "1",
        "--parallel",
        "1,2,3",
        "--per-session",
        "1",
        "--members",
        "20",
        "--pace-requests",
        "15",
        "--pace-window-ms",
        "60000",
    ]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["sequential"]["runs"], 1, "{v}");
    assert_eq!(v["sequential"]["done"], 1, "{v}");
    assert!(v["sequential"]["median_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["sequential"]["console_requests_per_run"]
            .as_f64()
            .unwrap()
            >= 8.0,
        "{v}"
    );
    let levels = v["parallel"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "the ramp stops at the push-back: {v}");
    assert_eq!(levels[0]["done"], 1, "{v}");
    assert_eq!(levels[0]["throttled"], 0, "{v}");
    assert!(levels[1]["throttled"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["max_parallel_without_pushback"], 1, "{v}");
    assert_eq!(v["pushed_back_at"], 2, "{v}");
}

fn browser_installed() -> bool {
    Path::new("/usr/bin/chromedriver").exists() && Path::new("/usr/bin/chromium").exists()
}

/// The demo's step 6 with chromium: the runbook ran to the end, the
/// Spendesk simulator's effect log (the oracle the demo prints) shows the
/// console reassigning, blocking and deactivating, and every screenshot
/// exists, matches its printed SHA-256 and is in the audit chain.
fn assert_runbook_ran(leaver: &str) {
    assert!(
        leaver.contains("deactivations there now run the catalog's runbook spendesk-deactivate"),
        "{leaver}"
    );
    assert!(
        leaver.contains("needs approval: - spendesk ") && leaver.contains("financial_steps"),
        "money waits for a person's approval:\n{leaver}"
    );
    assert!(
        leaver.contains("runbook spendesk-deactivate done in"),
        "{leaver}"
    );
    assert!(
        leaver.contains(
            ": pendingApprovals (via console), cards (via console), deactivated (via console)"
        ),
        "the simulator's effect log:\n{leaver}"
    );
    assert!(
        leaver.contains("1 pending approval(s) now with") && leaver.contains("1 card(s) blocked"),
        "{leaver}"
    );
    let shot = regex::Regex::new(r"(?m)^\s+(\S.*?)\s+sha256:([0-9a-f]{64}) (\S+\.png)$").unwrap();
    let shots: Vec<(String, String, String)> = shot
        .captures_iter(leaver)
        .map(|c| (c[1].trim().to_string(), c[2].to_string(), c[3].to_string()))
        .collect();
    let labels: Vec<&str> = shots.iter().map(|s| s.0.as_str()).collect();
    assert!(
        labels.contains(&"before-confirmation") && labels.contains(&"done"),
        "{labels:?}\n{leaver}"
    );
    for (label, sha, path) in &shots {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{label}: {path}: {e}"));
        use sha2::Digest as _;
        assert_eq!(&hex(&sha2::Sha256::digest(&bytes)), sha, "{label}");
    }
    assert!(!leaver.contains("NOT in the audit chain"), "{leaver}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn apps_show_spendesk_is_honest_about_what_cannot_be_automated() {
    let mut cmd = roster();
    cmd.args(["apps", "show", "spendesk"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("User-write API        no"), "{stdout}");
    assert!(stdout.contains("SCIM available        no"), "{stdout}");
    assert!(stdout.contains("JIT provisioning      yes"), "{stdout}");
    let deactivate = stdout
        .split("  deactivate [")
        .nth(1)
        .expect("manual deactivate steps");
    for step in ["Reassign", "open cards", "Settings → Members"] {
        assert!(
            deactivate.contains(step),
            "deactivate checklist mentions {step:?}:\n{deactivate}"
        );
    }
    let chosen = stdout.split("Chosen path per operation").nth(1).unwrap();
    assert!(chosen.contains("deactivate  manual"), "{chosen}");
}

#[test]
fn apps_show_spendesk_with_an_admin_login_explains_the_browser_runbook() {
    let mut cmd = roster();
    cmd.args(["apps", "show", "spendesk", "--browser"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    let chosen = stdout.split("Chosen path per operation").nth(1).unwrap();
    assert!(chosen.contains("deactivate  browser"), "{chosen}");
    let books = stdout
        .split("Browser runbooks")
        .nth(1)
        .expect("a runbooks section");
    for said in [
        "spendesk-deactivate",
        "unverified: runs up to the final confirmation",
        "waits for approval (guard financial_steps)",
        "re-read",
    ] {
        assert!(books.contains(said), "{said:?}:\n{books}");
    }
    // Without an admin login the card says the path is off.
    let mut off = roster();
    off.args(["apps", "show", "spendesk"]);
    let (_, stdout, _) = run(off);
    assert!(stdout.contains("Off for this connection"), "{stdout}");
}

#[test]
fn apps_show_bill_spend_expense_with_okta_enterprise_picks_the_idp_path() {
    let mut cmd = roster();
    cmd.args([
        "apps",
        "show",
        "bill-spend-expense",
        "--idp",
        "okta",
        "--plan",
        "enterprise",
    ]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    let chosen = stdout.split("Chosen path per operation").nth(1).unwrap();
    for op in ["create      idp", "deactivate  idp"] {
        let line = chosen
            .lines()
            .find(|l| l.contains(op))
            .unwrap_or_else(|| panic!("{op}:\n{chosen}"));
        assert!(
            line.contains("Okta") && line.contains("Enterprise"),
            "says why: {line}"
        );
    }

    let mut json = roster();
    json.args([
        "apps",
        "show",
        "bill-spend-expense",
        "--idp",
        "okta",
        "--plan",
        "enterprise",
        "--json",
    ]);
    let (out, stdout, _) = run(json);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let paths = v["paths"].as_array().unwrap();
    let deactivate = paths.iter().find(|p| p["op"] == "deactivate").unwrap();
    assert_eq!(deactivate["path"], "idp");
}

#[test]
fn apps_list_shows_every_seed_app_and_idp() {
    let mut cmd = roster();
    cmd.args(["apps", "list"]);
    let (out, stdout, _) = run(cmd);
    assert!(out.status.success());
    for id in [
        "expensify",
        "bill-spend-expense",
        "bill-com",
        "spendesk",
        "okta",
        "entra-id",
        "onelogin",
        "google-workspace",
    ] {
        assert!(stdout.contains(id), "{id} listed");
    }
    let mut json = roster();
    json.args(["apps", "list", "--json"]);
    let (out, stdout, _) = run(json);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 8);
}

#[test]
fn apps_list_shows_at_least_69_apps_and_filters_them() {
    let mut json = roster();
    json.args(["apps", "list", "--json"]);
    let (out, stdout, _) = run(json);
    assert!(out.status.success());
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let all = all.as_array().unwrap();
    assert!(all.len() >= 69, "only {} apps", all.len());

    let ids = |args: &[&str]| -> Vec<String> {
        let mut cmd = roster();
        cmd.args(["apps", "list", "--json"]).args(args);
        let (out, stdout, stderr) = run(cmd);
        assert!(out.status.success(), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let hr = ids(&["--category", "hr"]);
    assert!(
        hr.contains(&"gusto".into()) && !hr.contains(&"slack".into()),
        "{hr:?}"
    );
    let scim_ent = ids(&["--scim", "--plan", "enterprise"]);
    assert!(scim_ent.contains(&"notion".into()) && !scim_ent.contains(&"box".into()));
    let api = ids(&["--api", "--category", "hr"]);
    assert!(
        !api.contains(&"workday".into()),
        "Workday's API is not documented"
    );
    assert_eq!(ids(&["tripactions"]), ["navan"]);

    let mut bad = roster();
    bad.args(["apps", "list", "--category", "crm"]);
    let (out, _, stderr) = run(bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown category \"crm\"") && stderr.contains("sales-support"),
        "{stderr}"
    );
}

#[test]
fn apps_diff_names_added_and_replaced_records_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
    let slack = std::fs::read_to_string(catalog.join("slack.toml")).unwrap();
    std::fs::write(
        dir.path().join("slack.toml"),
        slack.replacen(
            "category = \"collaboration\"",
            "category = \"productivity\"",
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("acme-chat.toml"),
        slack.replacen("id = \"slack\"", "id = \"acme-chat\"", 1),
    )
    .unwrap();
    let mut cmd = roster();
    cmd.args(["apps", "diff"]).arg(dir.path());
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("+ acme-chat"), "{stdout}");
    assert!(
        stdout.contains("~ slack") && stdout.contains("    category"),
        "{stdout}"
    );
}

#[test]
fn an_unknown_app_id_is_a_clear_error() {
    let mut cmd = roster();
    cmd.args(["apps", "show", "expensfy"]);
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unknown app \"expensfy\"")
            && stderr.contains("did you mean \"expensify\""),
        "{stderr}"
    );
}

#[test]
fn a_malformed_catalog_file_names_file_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/scim-app.toml");
    let good = std::fs::read_to_string(builtin).unwrap();
    let bad = good.replacen("[scim]", "[scim]\nbogus_field = 1", 1);
    std::fs::write(dir.path().join("scim-app.toml"), bad).unwrap();
    let mut cmd = roster();
    cmd.arg("--catalog-dir")
        .arg(dir.path())
        .args(["apps", "list"]);
    let (out, stdout, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty(), "nothing printed on failure: {stdout}");
    assert!(stderr.contains("scim-app.toml"), "{stderr}");
    assert!(stderr.contains("bogus_field"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_401_fails_clearly_and_changes_nothing() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n",
    );
    let (out, _stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "wrong-secret")
            .args(["plan", "--config"])
            .arg(&config);
        run(cmd)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("unauthorized") || stderr.contains("401"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-secret"),
        "the secret is never printed: {stderr}"
    );
    assert!(
        stderr.contains("nothing was planned or imported"),
        "{stderr}"
    );
    assert!(
        sim.handle().effects().is_empty(),
        "nothing changed in the app"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_hr_row_refuses_the_file_and_names_the_line() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
         E2,bob-at-acme,Bob,Jones,Finance,CC-1,,active,2020-01-01,\n",
    );
    let data = dir.path().join("data");
    let (out, _stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
            .args(["plan", "--config"])
            .arg(&config);
        run(cmd)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("people.csv:3:"),
        "names file and line: {stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(sim.handle().counters().requests, 0, "no app was even read");
    assert!(!data.join("roster.db").exists(), "no database was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_then_apply_against_a_configured_deployment() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
         E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let c2 = config.clone();
    let (out, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
            .args(["plan", "--config"])
            .arg(&c2);
        run(cmd)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("+ create     alice@acme.example (E1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- deactivate gone@acme.example (E9)"),
        "{stdout}"
    );
    assert!(sim.handle().effects().is_empty(), "plan changes nothing");
    // No plan for expensify was applied yet: its removals wait for a
    // person (the first_plan guard).
    assert!(
        stdout.contains("needs approval (action #1): first_plan:"),
        "{stdout}"
    );
    let c3 = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c3, &["approve", "latest"])).await;
    assert!(out.status.success(), "{stderr}");

    let (out, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
            .args(["apply", "latest", "--config"])
            .arg(&config);
        run(cmd)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied 2 action(s), 0 failed"), "{stdout}");
    let h = sim.handle();
    assert!(
        h.employee("AAAA000000000001", "alice@acme.example")
            .is_some()
    );
    assert!(
        h.employee("AAAA000000000001", "gone@acme.example")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deprovisioning_an_admin_waits_for_approval_bound_to_the_plan() {
    let sim = start_sim().await;
    // The leaver is an Expensify admin.
    let mut admin = SimEmployee::new("gone@acme.example", "boss@acme.example", "E9");
    admin.role = "admin".into();
    sim.handle().put_employee("AAAA000000000001", admin);
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "privileged_removal: deactivates an account in expensify that holds a privileged role"
        ),
        "{stdout}"
    );

    // Apply runs what needs no approval and holds the rest.
    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 action(s) held for approval were not applied"),
        "{stdout}"
    );
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some(),
        "not removed"
    );

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || {
        roster_with(
            &c,
            &["approve", "latest", "--reason", "offboarding ticket 42"],
        )
    })
    .await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 approved, 0 rejected, 0 still waiting"),
        "{stdout}"
    );

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_none(),
        "removed after approval"
    );

    let c = config.clone();
    let (out, stdout, _) = blocking(move || roster_with(&c, &["audit", "verify"])).await;
    assert!(out.status.success());
    assert!(stdout.contains("audit log OK"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_plan_is_refused() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "{stderr}");
    // The first plan's removal waits for approval (first_plan guard).
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["approve", "latest"])).await;
    assert!(out.status.success(), "{stderr}");
    // Someone changes Expensify by hand between plan and apply.
    sim.handle().put_employee(
        "AAAA000000000001",
        SimEmployee::new("new.hire@acme.example", "boss@acme.example", "E10"),
    );
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("stale"), "{stderr}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some(),
        "nothing applied"
    );
}

#[test]
fn policy_check_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, POLICY).unwrap();
    let mut cmd = roster();
    cmd.current_dir(dir.path())
        .args(["policy", "check"])
        .arg(&good);
    let (out, stdout, _) = run(cmd);
    assert!(out.status.success());
    assert!(
        stdout.contains("OK (1 rule(s) over 1 connection(s): expensify)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("only the syntax was checked"),
        "no config, so it says what it did not check: {stdout}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nname = \"x\"\nconnection = \"expensify\"\nwhen = { status = [\"retired\"] }\n",
    )
    .unwrap();
    let mut cmd = roster();
    cmd.args(["policy", "check"]).arg(&bad);
    let (out, _, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("bad.toml:4:"), "{stderr}");
    assert!(stderr.contains("retired"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_naming_what_the_config_lacks_fails_check_and_plan() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n",
    );
    // A misspelled selector key: it would match nobody, and the plan would
    // take Expensify away from everyone.
    std::fs::write(
        dir.path().join("policy.toml"),
        "[tables.ws]\n\"CC-1\" = \"AAAA000000000001\"\n\n[[rules]]\nname = \"everyone\"\nconnection = \"expensify\"\nwhen = { staus = [\"active\"] }\nset = { role = \"user\", policy_id = { lookup = \"cost_center\", table = \"ws\" } }\n",
    )
    .unwrap();
    let c = config.clone();
    let (out, _, stderr) = blocking(move || {
        let mut cmd = roster();
        // No secret in the environment: checking a policy needs none.
        cmd.args(["policy", "check", "--config"]).arg(&c);
        run(cmd)
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("policy.toml:7:10:"), "{stderr}");
    assert!(stderr.contains("did you mean \"status\""), "{stderr}");

    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did you mean \"status\""), "{stderr}");
    assert!(stderr.contains("nothing was planned"), "{stderr}");
    assert_eq!(sim.handle().counters().requests, 0, "no app was even read");

    // A rule for a connection roster.toml does not configure.
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[rules]]\nname = \"everyone\"\nconnection = \"expensfy\"\nset = { role = \"user\" }\n",
    )
    .unwrap();
    let c = config.clone();
    let (out, _, stderr) = blocking(move || {
        let mut cmd = roster();
        cmd.current_dir(c.parent().unwrap())
            .args(["policy", "check"]);
        run(cmd)
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("policy.toml:3:14:"), "{stderr}");
    assert!(
        stderr.contains("\"expensfy\" is not configured"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"expensify\""), "{stderr}");
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did you mean \"expensify\""), "{stderr}");

    // The deployment's policy passes against its config.
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let (out, stdout, stderr) = blocking(move || {
        let mut cmd = roster();
        cmd.args(["policy", "check", "--config"]).arg(&config);
        run(cmd)
    })
    .await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("checked against"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_can_be_scoped_to_one_person_or_connection() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
         E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let c = config.clone();
    let (out, stdout, stderr) =
        blocking(move || roster_with(&c, &["plan", "--person", "GONE@acme.example"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("- deactivate gone@acme.example (E9)"),
        "{stdout}"
    );
    assert!(!stdout.contains("alice"), "only that person: {stdout}");

    let c = config.clone();
    let (out, _, stderr) =
        blocking(move || roster_with(&c, &["plan", "--connection", "slack"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no connection \"slack\"") && stderr.contains("expensify"),
        "{stderr}"
    );
}

/// `roster sim NAME` runs each simulator alone on loopback.
#[tokio::test(flavor = "multi_thread")]
async fn every_simulator_runs_standalone() {
    use std::io::BufRead;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = assert_cmd::cargo::cargo_bin("roster");
    for (name, path, auth) in [
        ("expensify", "", ""),
        ("scim-app", "/Users?count=1", "Bearer sim-scim-token"),
        ("bill-spend", "/v3/spend/users?max=1", ""),
        ("okta", "/api/v1/users?limit=1", "SSWS sim-okta-token"),
        ("spendesk", "", ""),
    ] {
        let mut child = std::process::Command::new(&bin)
            .args(["sim", name, "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        // Kept open until the simulator is killed: a closed pipe ends a
        // roster process quietly (so `roster ... | head` never panics), and
        // the simulator prints more than its first line.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("{name} printed no URL: {first:?}"))
            .to_string();
        if !path.is_empty() {
            let mut req = reqwest::Client::new().get(format!("{url}{path}"));
            if name == "bill-spend" {
                req = req.header("apiToken", "sim-bill-token");
            } else {
                req = req.header("Authorization", auth);
            }
            let status = req.send().await.unwrap().status();
            assert!(status.is_success(), "{name}: {status}");
        } else {
            // Reachable at all (these speak POST): any HTTP answer will do.
            reqwest::Client::new().post(&url).send().await.unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stdout);
    }
}

/// The kill switch end to end: `roster pause` stops `apply` from writing
/// (plans still compute), `connections list` shows who paused it, and
/// `roster resume` lets the same plan run. The whole sequence, plan then
/// applies back to back, stays within Expensify's documented window (the
/// simulator enforces the real 5 per 10 s): successive commands share the
/// store's rate budget.
#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_writes_until_resume() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
         E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    // Who pauses is the authenticated operator (the OS user, mapped to a
    // name), not $USER.
    map_operator(&config, "test-admin", &[]);
    let c = config.clone();
    let (out, _, stderr) =
        blocking(move || roster_with(&c, &["pause", "expensfy", "--reason", "typo"])).await;
    assert_eq!(out.status.code(), Some(1), "unknown names are refused");
    assert!(stderr.contains("configured: expensify"), "{stderr}");

    let c = config.clone();
    let (out, stdout, stderr) =
        blocking(move || roster_with(&c, &["pause", "expensify", "--reason", "vendor incident"]))
            .await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Paused writes to expensify"), "{stdout}");

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "plans still compute: {stderr}");
    assert!(
        stdout.contains("- deactivate gone@acme.example"),
        "{stdout}"
    );
    // The first plan's removal waits for approval (first_plan guard).
    let c = config.clone();
    let (out, _, stderr) =
        blocking(move || roster_with(&c, &["approve", "latest", "--reason", "first run"])).await;
    assert!(out.status.success(), "{stderr}");

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied 0 action(s)"), "{stdout}");
    assert!(
        stdout.contains("expensify: writes paused by user:test-admin: vendor incident"),
        "{stdout}"
    );
    assert!(stdout.contains("2 action(s) still queued"), "{stdout}");
    assert!(
        sim.handle().effects().is_empty(),
        "nothing written while paused"
    );

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["connections", "list"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("[paused by user:test-admin since")
            && stdout.contains(": vendor incident]"),
        "{stdout}"
    );

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["resume", "expensify"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Writes to expensify resume"), "{stdout}");

    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied 2 action(s), 0 failed"), "{stdout}");
    let h = sim.handle();
    assert!(
        h.employee("AAAA000000000001", "alice@acme.example")
            .is_some()
    );
    assert!(
        h.employee("AAAA000000000001", "gone@acme.example")
            .is_none()
    );
    assert_eq!(
        h.counters().rate_limit_violations,
        0,
        "plan and applies back to back stayed within 5 per 10 s"
    );

    let c = config.clone();
    let (_, stdout, _) = blocking(move || roster_with(&c, &["audit", "export"])).await;
    assert!(stdout.contains("connection.paused"), "{stdout}");
    assert!(stdout.contains("connection.resumed"), "{stdout}");
}
