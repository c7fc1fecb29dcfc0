//! Binary-level tests for every command `cli.rs` does not cover: `plans`,
//! `plan -o` and `--connection`, `reject`, `tasks` and `task`, `report`,
//! `matches`, `connections`, `scim token`, `audit export`, `secret list`,
//! `run`; and the binary's behaviour on a closed pipe.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;
use roster_sim::expensify::SimEmployee;
use roster_sim::spendesk::{Member, SpendeskSim, SpendeskSimConfig};
use serde_json::Value;

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// `roster ARGS --config CONFIG`, asserting success; returns stdout.
async fn ok(config: &Path, args: &[&str]) -> String {
    let (c, a) = (
        config.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let (out, stdout, stderr) = blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        roster_with(&c, &a)
    })
    .await;
    assert!(
        out.status.success(),
        "roster {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// `roster ARGS --config CONFIG`, asserting exit code 1; returns stderr.
async fn fails(config: &Path, args: &[&str]) -> String {
    let (c, a) = (
        config.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let (out, stdout, stderr) = blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        roster_with(&c, &a)
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "roster {args:?} should fail:\n{stdout}\n{stderr}"
    );
    stderr
}

// ------------------------------------------------------------ closed pipe

/// Runs `cmd` with stdout a pipe that is closed after `lines_read` lines.
fn with_closed_stdout(mut cmd: std::process::Command, lines_read: usize) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    for _ in 0..lines_read {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader); // the reader goes away, like `head` does
    child.wait_with_output().expect("waits")
}

fn assert_quiet_exit(out: &Output, what: &str) {
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_the_process_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("roster");
    // A reader that leaves after one line, and one that never reads.
    for lines in [1, 0] {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["apps", "list"]).env_remove("ROSTER_CATALOG_DIR");
        assert_quiet_exit(&with_closed_stdout(cmd, lines), "apps list");
    }

    // `roster tasks --json | head`, as the issue reported it.
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    ok(&config, &["plan"]).await;
    let out = blocking(move || {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["tasks", "--json", "--config"])
            .arg(&config)
            .env("TEST_EXPENSIFY_SECRET", "right-secret");
        with_closed_stdout(cmd, 0)
    })
    .await;
    assert_quiet_exit(&out, "tasks --json");
}

// ------------------------------------------- plan -o, plans, reject, apply

#[tokio::test(flavor = "multi_thread")]
async fn plans_list_and_show_where_each_plan_stands_through_a_rejection() {
    let sim = start_sim().await;
    let mut admin = SimEmployee::new("gone@acme.example", "boss@acme.example", "E9");
    admin.role = "admin".into();
    sim.handle().put_employee("AAAA000000000001", admin);
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let none = ok(&config, &["plans"]).await;
    assert!(none.contains("No stored plans"), "{none}");
    assert_eq!(
        json(&ok(&config, &["plans", "--json"]).await),
        Value::Array(vec![])
    );

    // `plan -o` writes the ID and hash with the plan.
    let file = dir.path().join("plan.json");
    let file_arg = file.display().to_string();
    ok(&config, &["plan", "-o", &file_arg]).await;
    let written = json(&std::fs::read_to_string(&file).unwrap());
    let id = written["id"].as_str().expect("id in the file").to_string();
    let hash = written["hash"]
        .as_str()
        .expect("hash in the file")
        .to_string();
    assert!(written["plan"]["actions"].is_array(), "{written}");

    let list = json(&ok(&config, &["plans", "--json"]).await);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["hash"], hash.as_str());
    assert_eq!(list[0]["state"], "pending approval");
    assert_eq!(list[0]["actions"]["deactivate"], 1);
    let table = ok(&config, &["plans"]).await;
    assert!(
        table.contains(&id) && table.contains(&hash[..12]) && table.contains("pending approval"),
        "{table}"
    );

    let shown = ok(&config, &["plans", "show", "latest"]).await;
    assert!(shown.contains(&format!("Plan {id}")), "{shown}");
    assert!(
        shown.contains("- deactivate gone@acme.example (E9)"),
        "rendered as `roster plan` does: {shown}"
    );
    assert!(
        shown.contains("gone@acme.example: pending (waiting for approval)"),
        "{shown}"
    );

    let out = ok(&config, &["reject", "latest", "--reason", "not today"]).await;
    assert!(
        out.contains("0 approved, 1 rejected, 0 still waiting"),
        "{out}"
    );
    let list = json(&ok(&config, &["plans", "--json"]).await);
    assert_eq!(list[0]["state"], "rejected", "{list}");

    // Applying skips the rejected action: the admin keeps the account.
    let out = ok(&config, &["apply", &id]).await;
    assert!(out.contains("applied 0 action(s)"), "{out}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some()
    );
    let one = json(&ok(&config, &["plans", "show", &id, "--json"]).await);
    assert_eq!(one["summary"]["id"], id.as_str());
    assert_eq!(one["actions"][0]["state"], "skipped", "{one}");
    assert_eq!(one["actions"][0]["approval"], "rejected", "{one}");
    assert_eq!(one["summary"]["state"], "rejected", "{one}");
    assert_eq!(
        one["plan"]["actions"][0]["operation"], "deactivate",
        "{one}"
    );

    let err = fails(&config, &["plans", "show", "no-such-plan"]).await;
    assert!(err.contains("no plan no-such-plan"), "{err}");
}

/// Two Expensify tenants; `plan --connection` talks to one only.
#[tokio::test(flavor = "multi_thread")]
async fn plan_for_one_connection_sends_no_request_to_the_others() {
    let first = start_sim().await;
    let second = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &first.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[connections.expensify-eu]\napp = \"expensify\"\nbase_url = \"{}\"\npartner_user_id = \"partner\"\npartner_user_secret = {{ env = \"TEST_EXPENSIFY_SECRET\" }}\n",
        second.url()
    ));
    std::fs::write(&config, text).unwrap();
    let mut policy = POLICY.to_string();
    policy.push_str("\n[[rules]]\nname = \"eu\"\nconnection = \"expensify-eu\"\nset = { role = \"user\", manager_email = \"{manager_email}\", policy_id = { lookup = \"cost_center\", table = \"ws\" } }\n");
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();

    let out = ok(&config, &["plan", "--connection", "expensify", "--json"]).await;
    let plan = json(&out);
    let conns: Vec<&str> = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["connection"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["expensify"], "{out}");
    assert!(
        first.handle().counters().requests > 0,
        "the chosen one is read"
    );
    assert_eq!(
        second.handle().counters().requests,
        0,
        "the other app received no request"
    );

    // Without --connection both are read.
    ok(&config, &["plan"]).await;
    assert!(second.handle().counters().requests > 0);

    let err = fails(&config, &["plan", "--connection", "expensify-us"]).await;
    assert!(
        err.contains("no connection \"expensify-us\"")
            && err.contains("did you mean \"expensify-eu\"?"),
        "{err}"
    );
}

// ------------------------------------------------- the manual path (tasks)

const SPENDESK_ID: &str = "test-spendesk-key";
const SPENDESK_SECRET: &str = "test-spendesk-secret";

/// A Spendesk-only deployment (read-only API: offboarding is a task).
fn spendesk_deployment(dir: &Path, url: &str, people_rows: &str) -> PathBuf {
    std::fs::write(
        dir.join("people.csv"),
        format!("{HR_HEADER}\n{people_rows}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[[rules]]\nname = \"finance\"\nconnection = \"spendesk\"\nwhen = { department = [\"Finance\"] }\nset = { team = \"{department}\", role = \"requester\" }\n",
    )
    .unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n[source]\nhr_csv = \"people.csv\"\n\n\
             [connections.spendesk]\napp = \"spendesk\"\nbase_url = \"{url}\"\nusername = \"{SPENDESK_ID}\"\n\
             secret = {{ env = \"TEST_SPENDESK_SECRET\" }}\nassignee = \"it-ops@acme.example\"\n"
        ),
    )
    .unwrap();
    config
}

fn spendesk(config: &Path, args: &[&str]) -> (Output, String, String) {
    let mut cmd = roster();
    cmd.env("TEST_SPENDESK_SECRET", SPENDESK_SECRET)
        .env("USER", "test-admin")
        .args(args)
        .arg("--config")
        .arg(config);
    run(cmd)
}

async fn spendesk_ok(config: &Path, args: &[&str]) -> String {
    let (c, a) = (
        config.to_path_buf(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let (out, stdout, stderr) = blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        spendesk(&c, &a)
    })
    .await;
    assert!(out.status.success(), "roster {args:?}:\n{stdout}\n{stderr}");
    stdout
}

/// Two leavers become two offboarding tasks. One is done by a person who
/// says so: verified. The other's account is closed by someone who never
/// touches the task: its need vanished, so it is cancelled, not verified.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_are_listed_shown_done_verified_or_cancelled() {
    let sim = SpendeskSim::start(
        SpendeskSimConfig::new(SPENDESK_ID, SPENDESK_SECRET)
            .with_member(Member::new("one@acme.example", "One", "Left"))
            .with_member(Member::new("two@acme.example", "Two", "Left")),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = spendesk_deployment(
        dir.path(),
        &sim.url(),
        "E1,one@acme.example,One,Left,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n\
         E2,two@acme.example,Two,Left,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let none = spendesk_ok(&config, &["tasks"]).await;
    assert!(none.contains("No tasks waiting for anyone"), "{none}");

    spendesk_ok(&config, &["plan"]).await;
    // A connection's first plan holds its removals (the first_plan guard).
    spendesk_ok(&config, &["approve", "latest", "--reason", "first run"]).await;
    let applied = spendesk_ok(&config, &["apply", "latest"]).await;
    assert!(applied.contains("2 manual"), "{applied}");

    let listed = spendesk_ok(&config, &["tasks"]).await;
    assert!(
        listed.contains("one@acme.example") && listed.contains("assigned to it-ops@acme.example"),
        "{listed}"
    );
    let tasks = json(&spendesk_ok(&config, &["tasks", "--json"]).await);
    let id_of = |email: &str| -> String {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["subject_email"] == email)
            .unwrap_or_else(|| panic!("task for {email}: {tasks}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (one, two) = (id_of("one@acme.example"), id_of("two@acme.example"));

    let shown = spendesk_ok(&config, &["task", "show", &one]).await;
    assert!(
        shown.contains("checklist:") && shown.contains("person      one@acme.example"),
        "{shown}"
    );
    let report = json(&spendesk_ok(&config, &["report", "tasks", "--json"]).await);
    assert!(report.to_string().contains("spendesk"), "{report}");

    // One is done and reported; two is closed by hand, task untouched.
    sim.handle().deactivate_by_hand("one@acme.example");
    sim.handle().deactivate_by_hand("two@acme.example");
    let done = spendesk_ok(
        &config,
        &["task", "done", &one, "--note", "closed in the console"],
    )
    .await;
    assert!(done.contains("marked done"), "{done}");
    spendesk_ok(&config, &["plan"]).await;

    let all = json(&spendesk_ok(&config, &["tasks", "--all", "--json"]).await);
    let state_of = |id: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(state_of(&one)["state"], "verified", "{all}");
    let cancelled = state_of(&two);
    assert_eq!(cancelled["state"], "cancelled", "{all}");
    assert!(
        cancelled["note"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer needed"),
        "the reason is kept: {cancelled}"
    );
    let open = spendesk_ok(&config, &["tasks"]).await;
    assert!(open.contains("No tasks waiting"), "{open}");
}

// ------------------------------------------------------ reports and audit

#[tokio::test(flavor = "multi_thread")]
async fn reports_and_audit_export_in_text_and_json() {
    let sim = start_sim().await;
    sim.handle().put_employee(
        "AAAA000000000001",
        SimEmployee::new("stranger@acme.example", "boss@acme.example", ""),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
         E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    ok(&config, &["plan"]).await;

    let orphans = ok(&config, &["report", "orphans"]).await;
    assert!(orphans.contains("stranger@acme.example"), "{orphans}");
    let orphans = json(&ok(&config, &["report", "orphans", "--json"]).await);
    assert!(
        orphans.to_string().contains("stranger@acme.example"),
        "{orphans}"
    );
    let leavers = ok(&config, &["report", "leavers"]).await;
    assert!(leavers.contains("gone@acme.example"), "{leavers}");
    let leavers = json(&ok(&config, &["report", "leavers", "--json"]).await);
    assert!(
        leavers.to_string().contains("gone@acme.example"),
        "{leavers}"
    );
    let coverage = ok(&config, &["report", "coverage"]).await;
    assert!(coverage.contains("expensify"), "{coverage}");
    json(&ok(&config, &["report", "coverage", "--json"]).await);
    json(&ok(&config, &["report", "tasks", "--json"]).await);

    // audit export: everything, from a date, from an RFC 3339 time, to a file.
    let lines = |s: &str| -> Vec<Value> { s.lines().map(json).collect() };
    let all = lines(&ok(&config, &["audit", "export"]).await);
    assert!(all.iter().any(|e| e["kind"] == "plan.created"), "{all:?}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let since_today = lines(&ok(&config, &["audit", "export", "--since", &today]).await);
    assert_eq!(since_today.len(), all.len(), "all of it happened today");
    for future in ["2999-01-01", "2999-01-01T00:00:00Z"] {
        assert!(
            ok(&config, &["audit", "export", "--since", future])
                .await
                .is_empty(),
            "{future}"
        );
    }
    let err = fails(&config, &["audit", "export", "--since", "last week"]).await;
    assert!(
        err.contains("REPORT-0001") && err.contains("2026-11-25"),
        "{err}"
    );
    let file = dir.path().join("audit.jsonl");
    let f = file.display().to_string();
    assert!(ok(&config, &["audit", "export", "-o", &f]).await.is_empty());
    assert_eq!(
        lines(&std::fs::read_to_string(&file).unwrap()).len(),
        all.len()
    );
}

// ------------------------------------------- matches, connections, tokens

#[tokio::test(flavor = "multi_thread")]
async fn matches_connections_and_scim_tokens_refuse_names_that_do_not_exist() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n",
    );
    ok(&config, &["plan"]).await;

    // matches
    let listed = ok(&config, &["matches", "list"]).await;
    assert!(listed.contains("No uncertain matches"), "{listed}");
    assert_eq!(
        json(&ok(&config, &["matches", "list", "--json"]).await),
        Value::Array(vec![])
    );
    let err = fails(
        &config,
        &[
            "matches",
            "resolve",
            "expensfy",
            "gone@acme.example",
            "--person",
            "E1",
        ],
    )
    .await;
    assert!(
        err.contains("no connection \"expensfy\"") && err.contains("did you mean \"expensify\"?"),
        "{err}"
    );
    let err = fails(
        &config,
        &[
            "matches",
            "resolve",
            "expensify",
            "gone@acme.exampel",
            "--person",
            "E1",
        ],
    )
    .await;
    assert!(
        err.contains("no account \"gone@acme.exampel\"")
            && err.contains("did you mean \"gone@acme.example\"?"),
        "{err}"
    );
    let err = fails(
        &config,
        &[
            "matches",
            "resolve",
            "expensify",
            "gone@acme.example",
            "--person",
            "E7",
        ],
    )
    .await;
    assert!(
        err.contains("no person with employee ID E7") && err.contains("did you mean \"E1\"?"),
        "{err}"
    );
    let out = ok(
        &config,
        &[
            "matches",
            "resolve",
            "expensify",
            "gone@acme.example",
            "--not-a-person",
            "--reason",
            "shared inbox",
        ],
    )
    .await;
    assert!(out.contains("not a managed person"), "{out}");
    let plan = json(&ok(&config, &["plan", "--json"]).await);
    assert!(
        !plan["plan"]["actions"]
            .to_string()
            .contains("gone@acme.example"),
        "roster leaves it alone: {plan}"
    );

    // connections
    let conns = ok(&config, &["connections", "list"]).await;
    assert!(
        conns.contains("expensify") && conns.contains("ok"),
        "{conns}"
    );
    let out = ok(&config, &["connections", "resume", "expensify"]).await;
    assert!(out.contains("was not quarantined"), "{out}");

    // scim tokens
    let err = fails(
        &config,
        &["scim", "token", "create", "--connection", "expensfy"],
    )
    .await;
    assert!(
        err.contains("no connection \"expensfy\"") && err.contains("did you mean \"expensify\"?"),
        "{err}"
    );
    assert_eq!(
        json(&ok(&config, &["scim", "token", "list", "--json"]).await),
        Value::Array(vec![])
    );
    let token = ok(
        &config,
        &["scim", "token", "create", "--connection", "expensify"],
    )
    .await;
    let token = token.trim().to_string();
    assert!(!token.is_empty());
    let list = json(&ok(&config, &["scim", "token", "list", "--json"]).await);
    let prefix = list[0]["prefix"].as_str().unwrap().to_string();
    assert!(token.starts_with(&prefix), "{prefix} / the token");
    assert!(!list.to_string().contains(&token), "never the token itself");
    let out = ok(&config, &["scim", "token", "revoke", &prefix]).await;
    assert!(out.contains("revoked"), "{out}");
    let text = ok(&config, &["scim", "token", "list"]).await;
    assert!(text.contains(&prefix) && text.contains("REVOKED"), "{text}");

    // secret list, empty
    assert_eq!(
        json(&ok(&config, &["secret", "list", "--json"]).await),
        Value::Array(vec![])
    );
}

// ------------------------------------------------------------------- run

/// `roster run` reconciles at once, then stops cleanly on SIGTERM.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn run_reconciles_and_stops_cleanly_on_sigterm() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("roster");
    let mut child = std::process::Command::new(&bin)
        .args(["run", "--plan-only", "--config"])
        .arg(&config)
        .env("TEST_EXPENSIFY_SECRET", "right-secret")
        .env_remove("ROSTER_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for its first plan to be stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = config.clone();
        let (out, stdout, _) = blocking(move || roster_with(&c, &["plans", "--json"])).await;
        if out.status.success() && json(&stdout).as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no plan within 60 s");
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "run exited early ({:?}): {}",
                out.status.code(),
                text(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = blocking(move || child.wait_with_output().unwrap()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "clean exit: {stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // --plan-only: nothing was applied.
    assert!(sim.handle().effects().is_empty());
}
