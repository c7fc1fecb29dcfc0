//! Failures are loud, reads need no write secrets, and secrets never leak:
//! the `roster` binary against simulators on loopback.
//!
//! * a connection whose credentials are refused makes `roster plan` exit 3
//!   (the plan is still made for the healthy one), is logged at WARN in
//!   plain text, shows as unhealthy in `roster connections list --json`,
//!   and is quarantined after three failed reads in a row (then not even
//!   called) until `roster connections resume`;
//! * every read-only command runs with the vendor secrets unset;
//! * planted secrets never appear in any output or trace log of plan,
//!   apply and `roster demo --once`.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, RunningSim, SimPolicy};
use roster_sim::scim_app::{ScimSim, ScimSimConfig};

const HR_HEADER: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date";
const POLICY_ID: &str = "AAAA000000000001";

fn roster() -> Command {
    let mut c = Command::cargo_bin("roster").expect("roster binary");
    c.env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG")
        .env_remove("ROSTER_LOG")
        .env_remove("SECRET_A")
        .env_remove("SECRET_B")
        .env_remove("SECRET_SCIM")
        .env("USER", "test-admin");
    c
}

fn run(mut cmd: Command) -> (Output, String, String) {
    let out = cmd.output().expect("runs");
    let o = String::from_utf8_lossy(&out.stdout).into_owned();
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, o, e)
}

/// Runs `roster ARGS --config CONFIG` with these environment variables,
/// off the async runtime (the simulators live on it).
async fn roster_env(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Output, String, String) {
    let mut cmd = roster();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).arg("--config").arg(config);
    tokio::task::spawn_blocking(move || run(cmd))
        .await
        .expect("join")
}

async fn expensify_sim(secret: &str) -> RunningSim {
    ExpensifySim::start(
        ExpensifySimConfig::new("partner", secret)
            .with_policies([SimPolicy::new(POLICY_ID, "Workspace 1", "it@acme.example")])
            .scaled(0.01),
    )
    .await
    .expect("simulator")
}

/// Two Expensify connections (`a`, `b`) and optionally a SCIM app, with
/// secrets as given (`{ env = .. }` or `{ file = .. }` TOML).
fn deployment(dir: &Path, a: (&str, &str), b: (&str, &str), scim: Option<(&str, &str)>) -> PathBuf {
    std::fs::write(
        dir.join("people.csv"),
        format!(
            "{HR_HEADER}\nE1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n"
        ),
    )
    .unwrap();
    let mut policy = String::new();
    for c in ["expensify", "expensify-eu"] {
        policy.push_str(&format!(
            "[[rules]]\nname = \"staff-{c}\"\nconnection = \"{c}\"\nwhen = {{ status = [\"active\"] }}\n\
             set = {{ role = \"user\", policy_id = \"{POLICY_ID}\" }}\n\n"
        ));
    }
    let mut config = format!(
        "policy = \"policy.toml\"\ndata_dir = \"data\"\n\n[source]\nhr_csv = \"people.csv\"\n\n\
         [connections.expensify]\napp = \"expensify\"\nbase_url = \"{}\"\npartner_user_id = \"partner\"\n\
         partner_user_secret = {}\ndefault_manager_email = \"boss@acme.example\"\n\n\
         [connections.expensify-eu]\napp = \"expensify\"\nbase_url = \"{}\"\npartner_user_id = \"partner\"\n\
         partner_user_secret = {}\ndefault_manager_email = \"boss@acme.example\"\n",
        a.0, a.1, b.0, b.1
    );
    if let Some((url, secret)) = scim {
        policy.push_str(
            "[[rules]]\nname = \"staff-app\"\nconnection = \"app\"\nwhen = { status = [\"active\"] }\n\
             set = { department = \"{department}\" }\n",
        );
        config.push_str(&format!(
            "\n[connections.app]\napp = \"scim-app\"\nbase_url = \"{url}\"\nsecret = {secret}\n"
        ));
    }
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let path = dir.join("roster.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn connections_json(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn status_of<'a>(rows: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no connection {id} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_read_is_loud_marked_unhealthy_and_quarantined_after_three() {
    let (a, b) = (
        expensify_sim("right-a").await,
        expensify_sim("right-b").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(
        dir.path(),
        (&a.url(), "{ env = \"SECRET_A\" }"),
        (&b.url(), "{ env = \"SECRET_B\" }"),
        None,
    );
    let env = [("SECRET_A", "wrong-a"), ("SECRET_B", "right-b")];

    let (out, stdout, stderr) = roster_env(&config, &["plan"], &env).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "planned, but a connection was not read: exit 3\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("+ create     alice@acme.example (E1)"),
        "the healthy connection is planned:\n{stdout}"
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("read failed"),
        "the failed read is logged at WARN by default:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal:\n{stderr:?}"
    );
    assert!(
        stderr.contains("could not be read completely") && stderr.contains("expensify"),
        "{stderr}"
    );

    // No secret needed to look at health.
    let (out, stdout, stderr) = roster_env(&config, &["connections", "list", "--json"], &[]).await;
    assert!(out.status.success(), "{stderr}");
    let rows = connections_json(&stdout);
    assert_eq!(
        status_of(&rows, "expensify")["status"],
        "read-failed",
        "{rows:?}"
    );
    assert_eq!(status_of(&rows, "expensify")["healthy"], false);
    assert_eq!(
        status_of(&rows, "expensify")["last_read"]["failures_in_a_row"],
        1
    );
    assert_eq!(status_of(&rows, "expensify-eu")["status"], "ok", "{rows:?}");
    let (_, text, _) = roster_env(&config, &["connections", "list"], &[]).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("expensify ") && l.contains("read-failed")),
        "{text}"
    );

    // Two more failures quarantine it.
    for _ in 0..2 {
        let (out, _, stderr) = roster_env(&config, &["plan"], &env).await;
        assert_eq!(out.status.code(), Some(3), "{stderr}");
    }
    let (_, stdout, _) = roster_env(&config, &["connections", "list", "--json"], &[]).await;
    let rows = connections_json(&stdout);
    assert_eq!(
        status_of(&rows, "expensify")["status"],
        "quarantined",
        "{rows:?}"
    );
    assert!(
        status_of(&rows, "expensify")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("3 failed reads in a row")),
        "{rows:?}"
    );

    // Quarantined: not called at all, and still loud.
    let before = a.handle().counters().requests;
    let (out, _, stderr) = roster_env(&config, &["plan"], &env).await;
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("quarantined"), "{stderr}");
    assert_eq!(
        a.handle().counters().requests,
        before,
        "a quarantined connection is not hammered"
    );

    // Resume (no secret needed) lifts it; the next read tries again.
    let (out, stdout, stderr) =
        roster_env(&config, &["connections", "resume", "expensify"], &[]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("back in service"), "{stdout}");
    let (out, _, _) = roster_env(
        &config,
        &["plan"],
        &[("SECRET_A", "right-a"), ("SECRET_B", "right-b")],
    )
    .await;
    assert!(out.status.success(), "both read: exit 0");
    let (_, stdout, _) = roster_env(&config, &["connections", "list", "--json"], &[]).await;
    let rows = connections_json(&stdout);
    assert_eq!(status_of(&rows, "expensify")["status"], "ok", "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_commands_run_without_vendor_secrets() {
    let (a, b) = (
        expensify_sim("right-a").await,
        expensify_sim("right-b").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(
        dir.path(),
        (&a.url(), "{ env = \"SECRET_A\" }"),
        (&b.url(), "{ env = \"SECRET_B\" }"),
        None,
    );
    let (out, _, stderr) = roster_env(
        &config,
        &["plan"],
        &[("SECRET_A", "right-a"), ("SECRET_B", "right-b")],
    )
    .await;
    assert!(out.status.success(), "{stderr}");
    for args in [
        &["tasks"][..],
        &["tasks", "--json"],
        &["matches", "list"],
        &["matches", "list", "--json"],
        &["audit", "verify"],
        &["report", "orphans"],
        &["report", "coverage"],
        &["report", "leavers"],
        &["report", "tasks"],
        &["connections", "list"],
        &["connections", "list", "--json"],
        &["approve", "latest", "--reason", "test"],
        &["reject", "latest", "--reason", "test"],
    ] {
        let (out, stdout, stderr) = roster_env(&config, args, &[]).await;
        assert!(
            out.status.success(),
            "`roster {}` needs no vendor secret:\n{stdout}\n{stderr}",
            args.join(" ")
        );
        assert!(!stderr.contains("is not set"), "{stderr}");
    }
    // Commands that call the apps still say which secret is missing.
    let (out, _, stderr) = roster_env(&config, &["plan"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connections.expensify.secret: environment variable SECRET_A is not set"),
        "{stderr}"
    );
}

/// Every planted secret value, for the leak check.
const PLANTED: [&str; 4] = [
    "PLANTED-expensify-7f3a9c1e",
    "PLANTED-file-b81d2e44",
    "PLANTED-scim-0c9d5a77",
    "PLANTED-wrong-5e6f7a8b",
];

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} contains the secret {s:?} (ROSTER_LOG=trace)"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_secrets_never_reach_logs_or_output() {
    let a = expensify_sim(PLANTED[0]).await;
    let b = expensify_sim(PLANTED[1]).await;
    let scim = ScimSim::start(ScimSimConfig::new(PLANTED[2]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.secret"), format!("{}\n", PLANTED[1])).unwrap();
    let config = deployment(
        dir.path(),
        (&a.url(), "{ env = \"SECRET_A\" }"),
        (&b.url(), "{ file = \"b.secret\" }"),
        Some((&scim.url(), "{ env = \"SECRET_SCIM\" }")),
    );
    let env = [
        ("SECRET_A", PLANTED[0]),
        ("SECRET_SCIM", PLANTED[2]),
        ("ROSTER_LOG", "trace"),
    ];
    let mut ran = 0;
    for args in [&["plan"][..], &["apply", "latest"], &["plan", "--json"]] {
        let (out, stdout, stderr) = roster_env(&config, args, &env).await;
        assert!(
            out.status.success(),
            "`roster {}`:\n{stdout}\n{}",
            args.join(" "),
            &stderr[stderr.len().saturating_sub(3000)..]
        );
        assert_no_secret("stdout", &stdout, &PLANTED);
        assert_no_secret("stderr", &stderr, &PLANTED);
        assert!(stderr.contains("TRACE"), "trace logging is on");
        ran += 1;
    }
    assert_eq!(ran, 3);
    assert!(
        a.handle().counters().requests > 0 && !scim.handle().effects().is_empty(),
        "the secrets were really used"
    );
    // A refused credential's error path, traced.
    let (out, stdout, stderr) = roster_env(
        &config,
        &["plan"],
        &[
            ("SECRET_A", PLANTED[3]),
            ("SECRET_SCIM", PLANTED[2]),
            ("ROSTER_LOG", "trace"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_no_secret("stdout", &stdout, &PLANTED);
    assert_no_secret("stderr", &stderr, &PLANTED);
}

/// The credentials `roster demo` configures for its simulated apps (see
/// crates/cli/src/demo.rs): none may appear in its output or trace log.
/// With chromium installed the demo also signs in to the Spendesk console
/// (password and TOTP seed: crates/cli/src/demo_browser.rs).
const DEMO_SECRETS: [&str; 7] = [
    "demo-secret-not-real",
    "demo-okta-token",
    "demo-bill-se-scim",
    "demo-billcom-scim",
    "demo-spendesk-secret",
    "demo-console-password",
    "ROSTERDEMOTOTPSEEDQ4WE3K2ALMNOPQ",
];

#[test]
fn the_demo_never_prints_or_logs_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = roster();
    cmd.env("ROSTER_LOG", "trace")
        .args(["demo", "--once", "--data-dir"])
        .arg(dir.path().join("demo"));
    let (out, stdout, stderr) = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    assert!(stderr.contains("TRACE"), "trace logging is on");
    assert_no_secret("demo stdout", &stdout, &DEMO_SECRETS);
    assert_no_secret("demo stderr", &stderr, &DEMO_SECRETS);
}
