//! `roster audit ...` as a user runs it: commands checkpoint the audit log
//! to a file witness, `verify` catches a cut tail with a rewritten head,
//! `erase` removes a person's data and the log still verifies, and a
//! witness that is down warns without failing the command.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};

const HR: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date\n\
E1,alice@acme.example,Alice,Smith,Finance,CC-1,,active,2020-01-01,\n\
E2,bob@acme.example,Bob,Jones,Finance,CC-1,,active,2020-01-01,\n";

/// A deployment with no connections (plan imports and plans, both audited)
/// and a file witness at `witness`.
fn deployment(dir: &Path, witness: &Path) -> PathBuf {
    std::fs::write(dir.join("people.csv"), HR).unwrap();
    std::fs::write(dir.join("policy.toml"), "").unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n[source]\nhr_csv = \"people.csv\"\n\
             [audit]\nwitness = {{ file = \"{}\" }}\n",
            witness.display()
        ),
    )
    .unwrap();
    config
}

fn roster(config: &Path, args: &[&str]) -> (Output, String, String) {
    let mut c = Command::cargo_bin("roster").expect("roster binary");
    c.env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG")
        .env("USER", "test-admin")
        .args(args)
        .arg("--config")
        .arg(config);
    let out = c.output().expect("runs");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    (out, o, e)
}

async fn sql(db: &Path, q: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(q.to_string()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_detects_a_cut_tail_with_a_rewritten_head() {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("witness-volume/roster-audit.jsonl");
    std::fs::create_dir_all(witness.parent().unwrap()).unwrap();
    let config = deployment(dir.path(), &witness);
    let db = dir.path().join("data/roster.db");

    for _ in 0..2 {
        let c = config.clone();
        let (out, _, stderr) = tokio::task::spawn_blocking(move || roster(&c, &["plan"]))
            .await
            .unwrap();
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("WITNESS DOWN"), "{stderr}");
    }
    let lines = std::fs::read_to_string(&witness).unwrap();
    assert_eq!(
        lines.lines().count(),
        2,
        "one checkpoint per command: {lines}"
    );

    let c = config.clone();
    let (out, stdout, stderr) =
        tokio::task::spawn_blocking(move || roster(&c, &["audit", "verify"]))
            .await
            .unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("audit log OK"), "{stdout}");
    assert!(stdout.contains("2 checkpoint(s) verified"), "{stdout}");

    let c = config.clone();
    let (out, key, _) = tokio::task::spawn_blocking(move || roster(&c, &["audit", "key"]))
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(
        lines.contains(key.trim()),
        "the witness names the printed key"
    );

    // The reported attack: delete the last events, rewrite the head row.
    let head: i64 = sql(&db, "SELECT seq FROM audit_head").await[0].get("seq");
    let keep = head - 2;
    let hash: String = sql(
        &db,
        &format!("SELECT hash FROM audit_event WHERE seq = {keep}"),
    )
    .await[0]
        .get("hash");
    sql(&db, &format!("DELETE FROM audit_event WHERE seq > {keep}")).await;
    sql(
        &db,
        &format!("UPDATE audit_head SET seq = {keep}, hash = '{hash}' WHERE id = 1"),
    )
    .await;

    let c = config.clone();
    let (out, stdout, stderr) =
        tokio::task::spawn_blocking(move || roster(&c, &["audit", "verify"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stderr.contains("AUDIT-0015"), "{stderr}");
    assert!(
        stderr.contains(&format!("checkpoint of event {head}")),
        "names the cut: {stderr}"
    );
    assert!(
        stderr.contains(&format!("ends at event {keep}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn erased_payloads_still_verify_and_a_down_witness_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    // The witness volume is not mounted: its directory does not exist.
    let witness = dir.path().join("unmounted/roster-audit.jsonl");
    let config = deployment(dir.path(), &witness);

    let c = config.clone();
    let (out, _stdout, stderr) = tokio::task::spawn_blocking(move || roster(&c, &["plan"]))
        .await
        .unwrap();
    assert!(out.status.success(), "the command still succeeds: {stderr}");
    assert!(stderr.contains("AUDIT WITNESS DOWN"), "{stderr}");
    assert!(stderr.contains("1 checkpoint(s) queued"), "{stderr}");

    let c = config.clone();
    let (out, stdout, _) = tokio::task::spawn_blocking(move || roster(&c, &["audit", "verify"]))
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(
        stdout.contains("since the last witnessed checkpoint (witness unreachable since"),
        "{stdout}"
    );

    let c = config.clone();
    let (out, stdout, stderr) = tokio::task::spawn_blocking(move || {
        roster(
            &c,
            &[
                "audit",
                "erase",
                "--before",
                "2100-01-01",
                "--reason",
                "GDPR request 17",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("erased the payloads of"), "{stdout}");

    // The volume comes back: the queued checkpoints are delivered by the
    // next command.
    std::fs::create_dir_all(witness.parent().unwrap()).unwrap();
    let c = config.clone();
    let (out, stdout, stderr) =
        tokio::task::spawn_blocking(move || roster(&c, &["audit", "checkpoint"]))
            .await
            .unwrap();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(std::fs::read_to_string(&witness).unwrap().lines().count() >= 2);

    let c = config.clone();
    let (out, stdout, stderr) =
        tokio::task::spawn_blocking(move || roster(&c, &["audit", "verify"]))
            .await
            .unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("event payload(s) erased"), "{stdout}");
    assert!(!stdout.contains("UNREACHABLE"), "{stdout}");

    let c = config.clone();
    let (out, exported, _) = tokio::task::spawn_blocking(move || roster(&c, &["audit", "export"]))
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(exported.contains("GDPR request 17"));
    assert!(exported.contains("audit.erased"));
}
