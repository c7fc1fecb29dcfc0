//! scim2-tester (through `scim2-cli`'s `scim2 test`) against the server,
//! in-process on loopback. Every check must report SUCCESS.
//!
//! Needs `.venv/bin/scim2` at the workspace root: run
//! `scripts/python-tools.sh` once. Without it this test fails (it does not
//! skip), so a missing tool cannot pass CI quietly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

fn scim2_cli() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/scim2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_reports_every_check_successful() {
    let cli = scim2_cli();
    assert!(
        cli.exists(),
        "{} is missing: run scripts/python-tools.sh to install scim2-cli==0.6.0",
        cli.display()
    );
    let server = common::start().await;
    let child = tokio::process::Command::new(&cli)
        .arg("--url")
        .arg(&server.base)
        .arg("test")
        // The token goes in the environment, not on the command line.
        .env(
            "SCIM_CLI_HEADERS",
            format!("Authorization: Bearer {}", server.token),
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("scim2 test finished within 300 s")
        .expect("scim2 test ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Result lines start with the status; detail lines are indented.
    let statuses: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("Performing"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let bad: Vec<&&str> = statuses
        .iter()
        .filter(|l| !l.starts_with("SUCCESS"))
        .collect();
    assert!(
        out.status.success() && bad.is_empty() && statuses.len() >= 100,
        "scim2 test: exit {:?}, {} results, not successful: {bad:#?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code(),
        statuses.len()
    );
    server.stop().await;
}
