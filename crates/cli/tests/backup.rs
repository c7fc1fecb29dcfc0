//! Backup and restore as README "Backup and restore" tells an operator to
//! do it, on both databases: `scripts/backup.sh` while the data is live,
//! `scripts/restore.sh` into a fresh database, the master key copied
//! separately; then `roster audit verify` passes on the restored copy with
//! the same events and head, the stored secret opens, and the next plan is
//! empty (the restored state matches the apps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{FreshDb, HR_HEADER, POLICY, blocking, roster, run, start_sim};

const PEOPLE: &str = "E9,gone@acme.example,Gone,Person,Finance,CC-1,boss@acme.example,active,2020-01-01,\n\
E1,alice@acme.example,Alice,Smith,Finance,CC-1,boss@acme.example,active,2020-01-01,\n";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A deployment whose Expensify secret is stored (sealed) in `database`.
fn deployment(dir: &Path, sim_url: &str, database: Option<&str>) -> PathBuf {
    std::fs::write(dir.join("people.csv"), format!("{HR_HEADER}\n{PEOPLE}")).unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let config = dir.join("roster.toml");
    let db = database
        .map(|d| format!("database = \"{d}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n{db}\n[source]\nhr_csv = \"people.csv\"\n\n\
             [connections.expensify]\napp = \"expensify\"\nbase_url = \"{sim_url}\"\n\
             partner_user_id = \"partner\"\npartner_user_secret = {{ stored = \"expensify-secret\" }}\n"
        ),
    )
    .unwrap();
    config
}

fn roster_at(config: &Path, args: &[&str], stdin: Option<&str>) -> (Output, String, String) {
    let mut cmd = roster();
    cmd.env_remove("ROSTER_MASTER_KEY")
        .env("USER", "test-admin")
        .args(args)
        .arg("--config")
        .arg(config);
    if let Some(s) = stdin {
        cmd.write_stdin(s.to_string());
    }
    run(cmd)
}

async fn roster_ok(config: &Path, args: &[&'static str], stdin: Option<&'static str>) -> String {
    let c = config.to_path_buf();
    let owned = args.to_vec();
    let (out, stdout, stderr) = blocking(move || roster_at(&c, &owned, stdin)).await;
    assert!(out.status.success(), "roster {args:?}: {stdout}\n{stderr}");
    stdout
}

fn script(name: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts").join(name))
        .args(args)
        .output()
        .expect("bash runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_actions(stdout: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("plan --json");
    v["plan"]["actions"].clone()
}

/// Runs a deployment on `src`, backs it up, restores into `dst`, and checks
/// the restored copy. `src`/`dst` are database URLs, or `None` for the
/// default SQLite file in each deployment's data directory.
async fn round_trip(src: Option<&str>, dst: Option<&str>) {
    let sim = start_sim().await;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let config_a = deployment(a.path(), &sim.url(), src);
    let config_b = deployment(b.path(), &sim.url(), dst);

    roster_ok(
        &config_a,
        &["secret", "set", "expensify-secret"],
        Some("right-secret"),
    )
    .await;
    let first = roster_ok(&config_a, &["plan", "--json"], None).await;
    assert_ne!(plan_actions(&first), serde_json::json!([]), "{first}");
    roster_ok(&config_a, &["apply", "latest"], None).await;
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "alice@acme.example")
            .is_some(),
        "applied"
    );
    let settled = roster_ok(&config_a, &["plan", "--json"], None).await;
    assert_eq!(plan_actions(&settled), serde_json::json!([]), "{settled}");
    let verified_a = roster_ok(&config_a, &["audit", "verify"], None).await;

    // Back up (the master key separately), restore into a fresh database.
    let backup = a.path().join("roster.backup");
    let src_db = src
        .map(str::to_string)
        .unwrap_or_else(|| a.path().join("data/roster.db").display().to_string());
    let dst_db = dst
        .map(str::to_string)
        .unwrap_or_else(|| b.path().join("data/roster.db").display().to_string());
    let (ok, err) = script("backup.sh", &[&src_db, backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("master key is not in it"), "{err}");
    let (ok, err) = script("restore.sh", &[backup.to_str().unwrap(), &dst_db]);
    assert!(ok, "{err}");
    std::fs::create_dir_all(b.path().join("data")).unwrap();
    std::fs::copy(
        a.path().join("data/master.key"),
        b.path().join("data/master.key"),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            b.path().join("data/master.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }

    // The restored chain verifies, with the same events and head.
    let verified_b = roster_ok(&config_b, &["audit", "verify"], None).await;
    let summary = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("audit log OK"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no verdict in {s}"))
    };
    assert_eq!(summary(&verified_b), summary(&verified_a));
    // The restored store opens the stored secret and knows what it did:
    // the next plan against the same apps is empty.
    let next = roster_ok(&config_b, &["plan", "--json"], None).await;
    assert_eq!(plan_actions(&next), serde_json::json!([]), "{next}");

    // Restoring over a database that holds data is refused.
    let (ok, err) = script("restore.sh", &[backup.to_str().unwrap(), &dst_db]);
    assert!(!ok);
    assert!(err.contains("restore into"), "{err}");
    // So is overwriting a backup.
    let (ok, err) = script("backup.sh", &[&src_db, backup.to_str().unwrap()]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_backup_restores_into_a_fresh_file_that_verifies_and_plans_nothing() {
    round_trip(None, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_backup_restores_into_a_fresh_database_that_verifies_and_plans_nothing() {
    let (Some(src), Some(dst)) = (FreshDb::create("src").await, FreshDb::create("dst").await)
    else {
        return;
    };
    let outcome = tokio::spawn({
        let (s, d) = (src.url.clone(), dst.url.clone());
        async move { round_trip(Some(&s), Some(&d)).await }
    })
    .await;
    src.drop_it().await;
    dst.drop_it().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
