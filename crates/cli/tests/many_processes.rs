//! Many processes on one PostgreSQL, as a deployment runs them: two
//! `roster run` (the scheduler lease decides which one starts full
//! reconciliations) and two `roster worker` processes draining one queue
//! against the Expensify simulator. The leader is SIGKILLed after its run
//! was queued, then a worker: the other `roster run` takes the lease over
//! with a greater fencing token and does not start a second run before the
//! shared schedule says so; every intended change reaches the simulator
//! exactly once, and the simulator counts no request over its limits. A
//! clean stop releases the lease at once. `roster worker` refuses SQLite.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FreshDb, HR_HEADER, POLICY, roster, run, start_sim};
use roster_sim::expensify::EffectKind;
use sqlx::{AnyConnection, Connection, Row};

const PEOPLE: usize = 40;

fn deployment(dir: &Path, sim_url: &str, database: &str) -> PathBuf {
    let mut rows = String::new();
    for i in 0..PEOPLE {
        rows.push_str(&format!(
            "H{i},p{i}@acme.example,P{i},Person,Finance,CC-1,boss@acme.example,active,2020-01-01,\n"
        ));
    }
    std::fs::write(dir.join("people.csv"), format!("{HR_HEADER}\n{rows}")).unwrap();
    // Forty new accounts in one plan is a deliberate bulk grant here.
    std::fs::write(
        dir.join("policy.toml"),
        format!("[approvals]\nmax_grants = 1000\n{POLICY}"),
    )
    .unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\ndatabase = \"{database}\"\n\n\
             [source]\nhr_csv = \"people.csv\"\n\n[connections.expensify]\napp = \"expensify\"\n\
             base_url = \"{sim_url}\"\npartner_user_id = \"partner\"\n\
             partner_user_secret = {{ env = \"TEST_EXPENSIFY_SECRET\" }}\n"
        ),
    )
    .unwrap();
    config
}

fn spawn(config: &Path, log: &Path, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("roster"))
        .env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG")
        .env("TEST_EXPENSIFY_SECRET", "right-secret")
        .env("ROSTER_LOG", "info")
        .env("USER", "test-admin")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("roster starts")
}

/// The scheduler lease as stored: (holder, token, expires_ms); `None`
/// before roster has created its tables or taken the lease.
async fn lease(url: &str) -> Option<(String, i64, i64)> {
    let mut c = AnyConnection::connect(url).await.ok()?;
    let row = sqlx::query("SELECT holder, token, expires_ms FROM lease WHERE name = 'scheduler'")
        .fetch_optional(&mut c)
        .await;
    let _ = c.close().await;
    row.ok().flatten().map(|r| {
        (
            r.try_get("holder").unwrap(),
            r.try_get("token").unwrap(),
            r.try_get("expires_ms").unwrap(),
        )
    })
}

async fn scalar(url: &str, sql: &'static str) -> i64 {
    let mut c = AnyConnection::connect(url).await.unwrap();
    let v: i64 = sqlx::query(sql)
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    c.close().await.unwrap();
    v
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_schedulers_two_workers_survive_sigkill_with_every_change_once() {
    let Some(db) = FreshDb::create("many").await else {
        return;
    };
    let url = db.url.clone();
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), &sim.url(), &url);
    let logs = dir.path();
    let ttl = ["--leader-ttl-secs", "2", "--lease-secs", "3"];

    let mut a = spawn(
        &config,
        &logs.join("a.log"),
        &["run", ttl[0], ttl[1], ttl[2], ttl[3]],
    );
    let a_pid = format!("-{}-", a.id());
    let u = url.clone();
    wait_for("run A to take the lease", Duration::from_secs(30), || {
        let u = u.clone();
        let a_pid = a_pid.clone();
        async move {
            lease(&u)
                .await
                .is_some_and(|(h, t, _)| h.contains(&a_pid) && t == 1)
        }
    })
    .await;
    let mut b = spawn(
        &config,
        &logs.join("b.log"),
        &["run", ttl[0], ttl[1], ttl[2], ttl[3]],
    );
    let mut w1 = spawn(
        &config,
        &logs.join("w1.log"),
        &["worker", "--lease-secs", "3"],
    );
    let mut w2 = spawn(
        &config,
        &logs.join("w2.log"),
        &["worker", "--lease-secs", "3"],
    );

    // A's full run is queued and drained by all four processes.
    let created = |sim: &roster_sim::expensify::RunningSim| {
        sim.handle()
            .effects()
            .iter()
            .filter(|e| e.kind == EffectKind::Added)
            .count()
    };
    let start = Instant::now();
    while created(&sim) < PEOPLE / 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {:?}\nA: {}",
            sim.handle().effects().len(),
            log_of(&logs.join("a.log"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill the leader and a worker mid-stream.
    a.kill().unwrap();
    a.wait().unwrap();
    w1.kill().unwrap();
    w1.wait().unwrap();
    let b_pid = format!("-{}-", b.id());
    let u = url.clone();
    wait_for(
        "run B to take the lease over",
        Duration::from_secs(20),
        || {
            let u = u.clone();
            let b_pid = b_pid.clone();
            async move {
                lease(&u)
                    .await
                    .is_some_and(|(h, t, _)| h.contains(&b_pid) && t >= 2)
            }
        },
    )
    .await;
    let start = Instant::now();
    while created(&sim) < PEOPLE {
        if start.elapsed() > Duration::from_secs(60) {
            let mut c = AnyConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(
                "SELECT state, lease_owner, attempts, last_error FROM task ORDER BY action_idx",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            let states: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}/{:?}/{}/{:?}",
                        r.try_get::<String, _>("state").unwrap(),
                        r.try_get::<Option<String>, _>("lease_owner").unwrap(),
                        r.try_get::<i64, _>("attempts").unwrap(),
                        r.try_get::<Option<String>, _>("last_error").unwrap()
                    )
                })
                .collect();
            panic!(
                "only {} of {PEOPLE} changes landed; tasks: {states:?}\nB: {}\nW2: {}",
                created(&sim),
                log_of(&logs.join("b.log")),
                log_of(&logs.join("w2.log"))
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let u = url.clone();
    wait_for("the queue to settle", Duration::from_secs(30), || {
        let u = u.clone();
        async move {
            scalar(&u, "SELECT COUNT(*) FROM task WHERE state NOT IN ('done')").await == 0
        }
    })
    .await;

    // One full run was started (by A, token 1); B did not start another
    // before the shared schedule's next time.
    assert_eq!(
        scalar(
            &url,
            "SELECT token FROM schedule WHERE name = 'full-reconciliation'"
        )
        .await,
        1
    );
    assert_eq!(scalar(&url, "SELECT COUNT(*) FROM plan").await, 1);
    // The simulator's verdict: each person added once, nothing else, and
    // no request over Expensify's limits from four processes together.
    let effects = sim.handle().effects();
    let mut added: Vec<String> = effects
        .iter()
        .filter(|e| e.kind == EffectKind::Added)
        .map(|e| e.email.clone())
        .collect();
    added.sort();
    let mut want: Vec<String> = (0..PEOPLE).map(|i| format!("p{i}@acme.example")).collect();
    want.sort();
    assert_eq!(added, want, "every change exactly once");
    assert_eq!(effects.len(), PEOPLE, "{effects:?}");
    assert_eq!(sim.handle().counters().rate_limit_violations, 0);

    // A clean stop gives the lease up at once.
    sigterm(&b);
    sigterm(&w2);
    let b_status = b.wait().unwrap();
    let w2_status = w2.wait().unwrap();
    assert!(b_status.success(), "{}", log_of(&logs.join("b.log")));
    assert!(w2_status.success(), "{}", log_of(&logs.join("w2.log")));
    let (_, _, expires) = lease(&url).await.unwrap();
    assert_eq!(expires, 0, "released on stop");
    assert!(
        log_of(&logs.join("b.log")).contains("took the lease"),
        "{}",
        log_of(&logs.join("b.log"))
    );
    db.drop_it().await;
}

#[test]
fn worker_refuses_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_deployment(dir.path(), "http://127.0.0.1:9", "");
    let mut cmd = roster();
    cmd.env("TEST_EXPENSIFY_SECRET", "x")
        .args(["worker", "--config"])
        .arg(&config);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(
        stderr.contains("roster worker needs PostgreSQL"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data/roster.db").exists(),
        "nothing opened"
    );
}
