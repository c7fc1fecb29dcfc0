//! Helpers shared by the binary-level tests: spawning `roster`, a
//! one-connection deployment (HR file, policy, roster.toml) against an
//! Expensify simulator.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use sqlx::Connection;

/// `roster`, with no config or catalog inherited from the environment.
pub fn roster() -> Command {
    let mut c = Command::cargo_bin("roster").expect("roster binary");
    c.env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG");
    c
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

pub fn run(mut cmd: Command) -> (Output, String, String) {
    let out = cmd.output().expect("runs");
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    (out, o, e)
}

pub const HR_HEADER: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date";

pub const POLICY: &str = r#"
[tables.ws]
"CC-1" = "AAAA000000000001"

[[rules]]
name = "everyone"
connection = "expensify"
set = { role = "user", manager_email = "{manager_email}", policy_id = { lookup = "cost_center", table = "ws" } }
"#;

pub fn write_deployment(dir: &Path, sim_url: &str, people_rows: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("people.csv"),
        format!("{HR_HEADER}\n{people_rows}"),
    )
    .unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            r#"policy = "policy.toml"
data_dir = "data"

[source]
hr_csv = "people.csv"

[connections.expensify]
app = "expensify"
base_url = "{sim_url}"
partner_user_id = "partner"
partner_user_secret = {{ env = "TEST_EXPENSIFY_SECRET" }}
"#
        ),
    )
    .unwrap();
    config
}

pub async fn start_sim() -> roster_sim::expensify::RunningSim {
    let policy =
        SimPolicy::new("AAAA000000000001", "Workspace 1", "it@acme.example").with_employee(
            SimEmployee::new("gone@acme.example", "boss@acme.example", "E9"),
        );
    ExpensifySim::start(ExpensifySimConfig::new("partner", "right-secret").with_policies([policy]))
        .await
        .unwrap()
}

pub fn roster_with(config: &Path, args: &[&str]) -> (Output, String, String) {
    let mut cmd = roster();
    cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
        .env("USER", "test-admin")
        .args(args)
        .arg("--config")
        .arg(config);
    run(cmd)
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The operating-system user the tests run as (what roster authenticates).
pub fn os_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    text(&out.stdout).trim().to_string()
}

/// Maps the OS user the tests run as to the operator `name` (and groups)
/// in the config's `[operators]`.
pub fn map_operator(config: &Path, name: &str, groups: &[&str]) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "\n[operators.{:?}]\nname = {name:?}\ngroups = {groups:?}\n",
        os_user()
    ));
    std::fs::write(config, text).unwrap();
}

/// A fresh database on the test PostgreSQL server (ROSTER_TEST_POSTGRES_URL),
/// dropped by [`FreshDb::drop_it`]. `None` (with a note) only when the
/// server is unreachable and ROSTER_REQUIRE_POSTGRES=0.
pub struct FreshDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl FreshDb {
    pub async fn create(tag: &str) -> Option<FreshDb> {
        sqlx::any::install_default_drivers();
        let base = std::env::var("ROSTER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let mut admin = match sqlx::AnyConnection::connect(&base).await {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("ROSTER_REQUIRE_POSTGRES").as_deref() == Ok("0"),
                    "PostgreSQL is required (ROSTER_REQUIRE_POSTGRES=0 skips): {e}"
                );
                eprintln!("SKIP: PostgreSQL unreachable: {e}");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("rcli_{}_{}_{tag}", std::process::id(), nanos);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (head, _) = base.split_once('?').unwrap_or((&base, ""));
        let (server, _) = head.rsplit_once('/').unwrap();
        Some(FreshDb {
            admin_url: base.clone(),
            url: format!("{server}/{name}"),
            name,
        })
    }

    pub async fn drop_it(self) {
        let mut admin = sqlx::AnyConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.unwrap();
    }
}
