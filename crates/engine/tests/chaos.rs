//! The chaos suite: several worker *processes* drain one queue on the real
//! PostgreSQL while the test kills them (SIGKILL, some aimed at the window
//! between the vendor applying a batch and roster recording it) and turns
//! the Expensify simulator hostile: 5xx, 429 storms with and without
//! `Retry-After`, answers slower than the client's timeout, lost answers to
//! applied writes, truncated bodies and dropped connections.
//!
//! The verdict comes from the simulator's effect log and counters, never
//! from roster: every intended effect exactly once (zero lost, zero
//! duplicated), nothing else, and zero requests over the app's rate limits
//! from all processes together (their budget is shared through the
//! database). A last check reads the tenant through a truncated page and a
//! failed listing: a plan made from such a read deactivates nobody.
//!
//! Short form (this test, in the normal suite): a few hundred actions, three
//! workers, about half a minute. Long form: `scripts/chaos.sh` sets
//! `ROSTER_CHAOS_SCALE` (more actions, more kills, more faults) and prints
//! the figures.
//!
//! Workers are this test binary re-run with `--ignored --exact
//! chaos_worker_process`, like `crash.rs`.
//!
//! **Database outages.** The workers reach PostgreSQL through a TCP proxy
//! in this test ([`DbProxy`]), which now and then takes the database away
//! from them as a server restart does: every connection cut at once, new
//! ones refused for up to two seconds. (Restarting the shared server
//! itself would fail every other test using it.) A worker that loses the
//! database mid-batch exits with an error, as it would in production,
//! where its service manager restarts it (`Restart=always` in
//! `deploy/systemd`); the test restarts it the same way, and only then:
//! a worker that fails with the database up fails the test. Whatever the
//! outage interrupted (a batch applied at the vendor but not recorded, a
//! lease not renewed) must still end in every effect exactly once.
//!
//! The outages found the shared rate budget pacing each process alone
//! while the database was away, a turn recorded with a time from before a
//! wait, and, last, turns used too late: a turn is recorded at the time
//! read with the budget's row locked, but the request left only after the
//! rest of the transaction, its commit and (in the executor) a look at the
//! kill switch, up to 400 ms later when the server was busy or a
//! connection had to be made again. The app counts arrivals, so the
//! oldest request of a full window arrived late and the newest on time
//! put one request too many into the window. A turn now comes back too
//! late to use and is taken again, and nothing stands between a turn and
//! its request (see `roster_engine::budget`). The outages run in the
//! short form too; `ROSTER_CHAOS_OUTAGES=0` leaves them out.
//!
//! **A real server restart** (long form only: `chaos_server_restart`,
//! run by `scripts/chaos.sh`): the same run on a throwaway cluster of the
//! test's own (`initdb` in a temporary directory, a free loopback port),
//! restarted with `pg_ctl restart -m immediate` and `-m fast` in turn.
//! Connections are then refused, not cut, and the pool waits for the
//! server instead of failing; the invariants are the same. Skipped, saying
//! so, where the PostgreSQL server binaries are not installed.
//!
//! The simulator counts a request that it answers slowly (`Fault::Slow`)
//! in its rate windows when it arrives, as a front-door limiter does; it
//! used to count it when the late answer was made, up to a second after
//! the client gave up, which could put one request into a window that
//! the budget had rightly left to others.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector, attr};
use roster_connectors::{
    ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError, ListRequest, Merge, Page,
    RateWindow, SecretString, Validation,
};
use roster_core::plan::{Action, AttributeChange};
use roster_core::{Account, AccountKey, ConnectionId, Email, EmployeeId, Operation, Plan, Policy};
use roster_engine::{Engine, ExecutorOptions, Roster, StoreBudget};
use roster_sim::expensify::{
    Effect, EffectKind, ExpensifySim, ExpensifySimConfig, Fault, seed_policies,
};
use roster_store::{ExecState, PlanId, Store, TaskFilter};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

const USER: &str = "roster_chaos@example.com";
const SECRET: &str = "chaos-test-secret";
const CONNECTION: &str = "expensify";
/// Real windows × this: 5 requests per 100 ms, 20 per 600 ms.
const RATE_SCALE: f64 = 0.01;
const POLICIES: usize = 6;
const PER_POLICY: usize = 60;
const BATCH: u32 = 10;
const LEASE_MS: u64 = 1_500;
const LINGER_MS: u64 = 40;
/// The client gives up on an answer after this; `Fault::Slow` exceeds it.
const TIMEOUT_MS: u64 = 800;
const SEED: u64 = 0xC4A0_5EED;

const ENV_DB: &str = "ROSTER_CHAOS_DB";
const ENV_URL: &str = "ROSTER_CHAOS_SIM_URL";
const ENV_WORKER: &str = "ROSTER_CHAOS_WORKER_ID";

/// The simulator's and the connector's rate windows: real × this.
/// `scripts/bench-workers.sh` widens them (the app's limit is then not
/// what bounds the drain rate).
fn rate_scale() -> f64 {
    std::env::var("ROSTER_CHAOS_RATE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RATE_SCALE)
}

/// 1 in the normal suite; `scripts/chaos.sh` raises it.
fn scale() -> usize {
    std::env::var("ROSTER_CHAOS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize)
        .clamp(1, 50)
}

fn policy_id(i: usize) -> String {
    seed_policies(POLICIES, 0)[i].id.clone()
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("test email")
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Deactivations, creates and manager changes, and the effects the
/// simulator must show for them.
fn plan_and_expected(creates: usize) -> (Plan, Vec<(String, String, String)>) {
    let conn = ConnectionId::new(CONNECTION);
    let pids: Vec<String> = (0..POLICIES).map(policy_id).collect();
    let mut actions = Vec::new();
    let mut expected = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        for j in 40..55 {
            let mail = format!("p{i}-e{j}@example.com");
            actions.push(Action {
                connection: conn.clone(),
                operation: Operation::Deactivate,
                employee_id: Some(EmployeeId::new(format!("E{i}-{j}"))),
                email: email(&mail),
                account: Some(AccountKey::new(mail.clone())),
                attributes: BTreeMap::new(),
                changes: vec![],
                reason: "left the company".into(),
                cause: roster_core::Cause::Left,
            });
            expected.push((pid.clone(), mail, "removed".to_string()));
        }
        for j in 0..20 {
            let mail = format!("p{i}-e{j}@example.com");
            actions.push(Action {
                connection: conn.clone(),
                operation: Operation::Update,
                employee_id: Some(EmployeeId::new(format!("E{i}-{j}"))),
                email: email(&mail),
                account: Some(AccountKey::new(mail.clone())),
                attributes: attrs(&[
                    (attr::POLICY_ID, pid),
                    (attr::MANAGER_EMAIL, "new-boss@example.com"),
                ]),
                changes: vec![AttributeChange {
                    name: attr::MANAGER_EMAIL.into(),
                    before: Some("manager@example.com".into()),
                    after: Some("new-boss@example.com".into()),
                }],
                reason: "new manager".into(),
                cause: roster_core::Cause::Drift,
            });
            expected.push((pid.clone(), mail, "updated:managerEmail".to_string()));
        }
    }
    for n in 0..creates {
        let mail = format!("new{n}@example.com");
        let p = &pids[n % POLICIES];
        actions.push(Action {
            connection: conn.clone(),
            operation: Operation::Create,
            employee_id: Some(EmployeeId::new(format!("N{n}"))),
            email: email(&mail),
            account: None,
            attributes: attrs(&[
                (attr::POLICY_ID, p),
                (attr::MANAGER_EMAIL, "manager@example.com"),
                (attr::ROLE, "user"),
                (attr::FIRST_NAME, "New"),
                (attr::LAST_NAME, &format!("Hire{n}")),
            ]),
            changes: vec![],
            reason: "joined".into(),
            cause: roster_core::Cause::Grant,
        });
        expected.push((p.clone(), mail, "added".to_string()));
    }
    let plan = Plan {
        actions,
        findings: vec![],
        classification: BTreeMap::new(),
        observed_digest: roster_core::plan::observed_digest(&[]),
        approvals: BTreeMap::new(),
        ..Plan::default()
    };
    (plan, expected)
}

fn describe(e: &Effect) -> (String, String, String) {
    let kind = match &e.kind {
        EffectKind::Added => "added".to_string(),
        EffectKind::Removed => "removed".to_string(),
        EffectKind::Updated { fields } => format!("updated:{}", fields.join(",")),
        EffectKind::EmailChanged { from } => format!("renamed-from:{from}"),
    };
    (e.policy_id.clone(), e.email.clone(), kind)
}

/// The Expensify connector, lingering after each apply as a slow network
/// or database would, so aimed kills can land before the result is kept.
struct Lingering {
    inner: ExpensifyConnector,
    linger: Duration,
}

#[async_trait]
impl Connector for Lingering {
    fn id(&self) -> &ConnectionId {
        self.inner.id()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn validate(&self) -> Result<Validation, ConnectorError> {
        self.inner.validate().await
    }
    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        self.inner.list_accounts(req).await
    }
    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let out = self.inner.apply(req).await;
        tokio::time::sleep(self.linger).await;
        out
    }
    fn merge_duplicate(&self, existing: &mut Account, duplicate: Account) -> Merge {
        self.inner.merge_duplicate(existing, duplicate)
    }
}

fn connector(url: &str) -> Lingering {
    let mut config = ExpensifyConfig::new(
        ConnectionId::new(CONNECTION),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(url.to_string());
    config.batch_size = BATCH;
    config.timeout = Duration::from_millis(TIMEOUT_MS);
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(rate_scale()))
        .collect();
    Lingering {
        inner: ExpensifyConnector::new(config).expect("connector"),
        linger: Duration::from_millis(LINGER_MS),
    }
}

/// A worker process: `Roster::run_worker` until killed (or told to stop
/// by the queue being empty for a while). Run by `chaos_short` only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by chaos_short"]
async fn chaos_worker_process() {
    let (Ok(db), Ok(url), Ok(worker_id)) = (
        std::env::var(ENV_DB),
        std::env::var(ENV_URL),
        std::env::var(ENV_WORKER),
    ) else {
        panic!("chaos_worker_process runs only as chaos_short's child");
    };
    let store = Store::open(&db).await.expect("worker opens the store");
    let connector = Arc::new(connector(&url));
    let mut engine = Engine::new(store.clone(), Policy::default());
    let budget = StoreBudget::new(
        store.clone(),
        connector.id().clone(),
        connector.capabilities().rate_limits,
    )
    .with_margin(Duration::from_millis(40));
    engine.add_connector_with_budget(connector, Arc::new(budget));
    engine.executor = ExecutorOptions {
        worker_id,
        lease: Duration::from_millis(LEASE_MS),
        heartbeat: Duration::from_millis(LEASE_MS / 5),
        retry: roster_connectors::retry::RetryPolicy {
            max_attempts: 40,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(800),
            ..Default::default()
        },
        idle_poll: Duration::from_millis(50),
        ..ExecutorOptions::default()
    };
    let roster = Roster::new(engine);
    // Stop once nothing is left that is not final.
    let watcher = store.clone();
    roster
        .run_worker(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let open = watcher
                    .queue_status(&ConnectionId::new(CONNECTION), None)
                    .await
                    .map(|q| q.open() > 0)
                    .unwrap_or(true);
                if !open {
                    break;
                }
            }
        })
        .await
        .expect("worker");
    store.close().await;
}

fn spawn_worker(db: &str, url: &str, worker_id: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--ignored",
            "--exact",
            "chaos_worker_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_DB, db)
        .env(ENV_URL, url)
        .env(ENV_WORKER, worker_id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker")
}

/// The worker processes (id, process), killed when the run ends however
/// it ends: a failed assertion must not leave them running.
struct Workers(Vec<(String, Child)>);

impl std::ops::Deref for Workers {
    type Target = Vec<(String, Child)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Workers {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Database outages are part of the run unless `ROSTER_CHAOS_OUTAGES=0`
/// (see the module docs).
fn outages_enabled() -> bool {
    std::env::var("ROSTER_CHAOS_OUTAGES").as_deref() != Ok("0")
}

/// How long after a database outage a worker's failure is put down to it
/// (the error surfaces when its next statement fails, which may come a
/// moment after the database is back).
const OUTAGE_GRACE: Duration = Duration::from_secs(5);

/// Restarts the workers the database threw out, as `Restart=always`
/// would; a worker that failed with no outage shortly before is left for
/// the caller's `assert!(status.success())` to report. Returns how many
/// were restarted.
fn restart_thrown_out(
    children: &mut [(String, Child)],
    last_outage: Option<Instant>,
    generation: &mut usize,
    db: &str,
    sim_url: &str,
) -> usize {
    let Some(outage) = last_outage else {
        return 0;
    };
    if outage.elapsed() > OUTAGE_GRACE {
        return 0;
    }
    let mut restarted = 0;
    for (w, (id, child)) in children.iter_mut().enumerate() {
        if let Some(status) = child.try_wait().expect("try_wait")
            && !status.success()
        {
            *id = format!("chaos-w{w}-{generation}");
            *generation += 1;
            *child = spawn_worker(db, sim_url, id);
            restarted += 1;
        }
    }
    restarted
}

/// A fresh database on the test PostgreSQL server; `None` (skip) only when
/// it is unreachable and ROSTER_REQUIRE_POSTGRES=0.
async fn fresh_database() -> Option<(String, String, String)> {
    sqlx::any::install_default_drivers();
    let base = std::env::var("ROSTER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let mut admin = match AnyConnection::connect(&base).await {
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
    let name = format!("rchaos_{}_{nanos}", std::process::id());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (head, _) = base.split_once('?').unwrap_or((&base, ""));
    let (server, _) = head.rsplit_once('/').unwrap();
    Some((base.clone(), name.clone(), format!("{server}/{name}")))
}

async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = AnyConnection::connect(admin_url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

/// A loopback TCP proxy to PostgreSQL whose [`DbProxy::outage`] cuts
/// every connection and refuses new ones for a while: what a database
/// restart looks like from the client's side.
struct DbProxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    piped: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    async fn start(upstream: String) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let down = Arc::new(AtomicBool::new(false));
        let piped: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (down, piped) = (down.clone(), piped.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        // Refused: the server is "restarting".
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    let mut piped = piped.lock().unwrap();
                    piped.retain(|t| !t.is_finished());
                    piped.push(task.abort_handle());
                }
            }
        });
        DbProxy {
            addr,
            down,
            piped,
            accept,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_through(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (userinfo, hostpath) = match rest.split_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }

    /// Every connection cut now; new ones refused for `length`.
    async fn outage(&self, length: Duration) {
        self.down.store(true, Ordering::SeqCst);
        for t in self.piped.lock().unwrap().drain(..) {
            t.abort();
        }
        tokio::time::sleep(length).await;
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.piped.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// A throwaway PostgreSQL cluster in a temporary directory, listening on a
/// free loopback port: a server this test may restart without failing
/// every other test on the shared one. Stopped (`-m immediate`) and
/// removed when dropped.
struct PrivateCluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL refuses to run as root; then its tools run as this user.
    run_as: Option<&'static str>,
}

impl PrivateCluster {
    /// `ROSTER_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` that
    /// has `initdb` and `pg_ctl`.
    fn binaries() -> Option<std::path::PathBuf> {
        let usable =
            |bin: &std::path::Path| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file();
        if let Ok(dir) = std::env::var("ROSTER_PG_BIN") {
            let bin = std::path::PathBuf::from(dir);
            return usable(&bin).then_some(bin);
        }
        let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                usable(&bin).then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    /// initdb (trust, user `postgres`) and start, on 127.0.0.1 only, with
    /// its socket in its own directory.
    fn create(bin: std::path::PathBuf) -> PrivateCluster {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let run_as = is_root.then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("roster-chaos-pg-")
            .tempdir()
            .expect("a temporary directory");
        if let Some(user) = run_as {
            let id = |flag: &str| -> u32 {
                let out = Command::new("id").args([flag, user]).output().expect("id");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("running as root, and there is no {user} user"))
            };
            std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g")))
                .expect("hand the cluster directory to postgres");
        }
        // A port nobody listens on now (the small race with another
        // process taking it fails the start, loudly).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = PrivateCluster {
            bin,
            dir,
            port,
            run_as,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            cluster.dir.path().display()
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &cluster.log(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one of the server's tools (as `run_as` when set); panics with
    /// its output when it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out = command.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl restart -m <mode>`, waiting until it accepts connections
    /// again (it restarts with the options it was started with).
    fn restart(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.log(),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "restart",
            ],
        );
    }

    /// The server's log (without `-l`, the server would keep the pipe that
    /// reads pg_ctl's output open, and the wait for it would never end).
    fn log(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}

/// `host:port` of a PostgreSQL URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    hostpath.split('/').next().unwrap_or(hostpath).to_string()
}

/// The hostile moments the simulator goes through, in turn.
fn faults() -> Vec<(Fault, u64)> {
    vec![
        (Fault::ServerError, 6),
        (Fault::RateLimitStorm, 8),
        (Fault::LoseResponse, 3),
        (Fault::Slow(Duration::from_millis(TIMEOUT_MS + 400)), 2),
        (Fault::RateLimitNoRetryAfter, 5),
        (Fault::TruncatedBody, 3),
        (Fault::DropConnection, 4),
        (Fault::ErrorIn200, 4),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short() {
    let Some((admin_url, name, db)) = fresh_database().await else {
        return;
    };
    let outages = if outages_enabled() {
        Outages::Proxy
    } else {
        Outages::None
    };
    let outcome = tokio::spawn({
        let db = db.clone();
        async move { chaos(&db, outages).await }
    })
    .await;
    drop_database(&admin_url, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The long form's real server restart: the chaos run on a private
/// cluster of this test's own, restarted now and then with `pg_ctl
/// restart` (`-m immediate`, a crash, and `-m fast`, an orderly stop that
/// ends every session). Skipped, saying so, where the PostgreSQL server
/// binaries are not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long form (scripts/chaos.sh): restarts a private PostgreSQL"]
async fn chaos_server_restart() {
    let Some(bin) = PrivateCluster::binaries() else {
        eprintln!(
            "SKIP: no PostgreSQL server binaries (initdb, pg_ctl) under \
             /usr/lib/postgresql/*/bin and ROSTER_PG_BIN unset: the server restart is not run"
        );
        return;
    };
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::create(bin))
        .await
        .expect("cluster setup");
    let cluster = Arc::new(cluster);
    sqlx::any::install_default_drivers();
    let mut admin = AnyConnection::connect(&cluster.url("postgres"))
        .await
        .expect("the private cluster answers");
    sqlx::query("CREATE DATABASE chaos")
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.expect("close");
    let db = cluster.url("chaos");
    let outcome = tokio::spawn({
        let cluster = cluster.clone();
        async move { chaos(&db, Outages::Restart(cluster)).await }
    })
    .await;
    // The cluster stops and its directory goes when the last handle drops.
    drop(cluster);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// How the database goes away from the workers during a run.
enum Outages {
    /// It does not.
    None,
    /// Through [`DbProxy`]: every connection cut, new ones refused.
    Proxy,
    /// The server itself restarts ([`PrivateCluster::restart`]).
    Restart(Arc<PrivateCluster>),
}

async fn chaos(db: &str, outage_kind: Outages) {
    let k = scale();
    let workers = 3usize;
    let kills = 4 * k;
    let started = Instant::now();
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(rate_scale())
            .with_seed(POLICIES, PER_POLICY),
    )
    .await
    .expect("simulator");
    let store = Store::open(db).await.expect("store");
    let (plan, expected) = plan_and_expected(150 * k);
    let plan_id: PlanId = store
        .save_plan(&plan, 1_700_000_000_000)
        .await
        .expect("save plan");
    let enq = store
        .enqueue_plan_tasks(
            &plan_id,
            &[ConnectionId::new(CONNECTION)],
            40,
            1_700_000_000_000,
        )
        .await
        .expect("enqueue");
    assert_eq!(enq.inserted, plan.actions.len());

    let mut rng = StdRng::seed_from_u64(SEED);
    // The workers reach the database through the proxy; this process
    // (the judge) reads it directly.
    let proxy = match outage_kind {
        Outages::Proxy => Some(DbProxy::start(authority(db)).await),
        Outages::None | Outages::Restart(_) => None,
    };
    let worker_db = proxy
        .as_ref()
        .map_or_else(|| db.to_string(), |p| p.url_through(db));
    let mut children = Workers(
        (0..workers)
            .map(|w| {
                let id = format!("chaos-w{w}-0");
                (id.clone(), spawn_worker(&worker_db, &sim.url(), &id))
            })
            .collect(),
    );
    let mut generation = 1usize;
    let mut fault_plan = faults().into_iter().cycle();
    let mut killed = 0usize;
    let mut faults_set = 0usize;
    let mut outages = 0usize;
    let mut restarted_after_outage = 0usize;
    let mut last_outage: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(40 + 40 * k as u64);
    while killed < kills {
        assert!(Instant::now() < deadline, "chaos phase over time");
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        // Every other round the database goes away for a while, as in a
        // restart; the workers it threw out are restarted as their
        // service manager would.
        if killed.is_multiple_of(2) {
            let length = Duration::from_millis(rng.random_range(300..2_000));
            let went_away = match (&outage_kind, &proxy) {
                (Outages::Proxy, Some(proxy)) => {
                    proxy.outage(length).await;
                    true
                }
                (Outages::Restart(cluster), _) => {
                    // A crash and an orderly stop, in turn.
                    let mode = if outages.is_multiple_of(2) {
                        "immediate"
                    } else {
                        "fast"
                    };
                    let cluster = cluster.clone();
                    tokio::task::spawn_blocking(move || cluster.restart(mode))
                        .await
                        .expect("restart");
                    true
                }
                _ => false,
            };
            if went_away {
                outages += 1;
                last_outage = Some(Instant::now());
            }
        }
        restarted_after_outage += restart_thrown_out(
            &mut children,
            last_outage,
            &mut generation,
            &worker_db,
            &sim.url(),
        );
        // Turn the simulator hostile for the next few requests.
        let (fault, n) = fault_plan.next().expect("cycle");
        sim.handle().set_fault_for(fault, n);
        faults_set += 1;
        // Kill one worker, half the time right after the vendor applied
        // something (before the result can be recorded).
        let victim = rng.random_range(0..children.len());
        if killed % 2 == 1 {
            let n = sim.effects().len();
            let until = Instant::now() + Duration::from_secs(3);
            while sim.effects().len() == n && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..LINGER_MS / 2))).await;
        }
        // A worker the database threw out may only have noticed since the
        // last look.
        restarted_after_outage += restart_thrown_out(
            &mut children,
            last_outage,
            &mut generation,
            &worker_db,
            &sim.url(),
        );
        let (id, child) = &mut children[victim];
        if let Some(status) = child.try_wait().expect("try_wait") {
            // It found nothing left to do: the queue drained early. (A
            // worker the database threw out was restarted above; one
            // that failed with the database up is a failure.)
            assert!(status.success(), "worker {id} failed: {status}");
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        killed += 1;
        let id = format!("chaos-w{victim}-{generation}");
        generation += 1;
        children[victim] = (id.clone(), spawn_worker(&worker_db, &sim.url(), &id));
    }
    sim.handle().clear_faults();
    let chaos_done = started.elapsed();

    // Let the survivors finish the queue.
    let finish_by = Instant::now() + Duration::from_secs(60 + 30 * k as u64);
    for w in 0..children.len() {
        loop {
            restarted_after_outage += restart_thrown_out(
                &mut children,
                last_outage,
                &mut generation,
                &worker_db,
                &sim.url(),
            );
            let (id, child) = &mut children[w];
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "worker {id} failed: {status}");
                break;
            }
            if Instant::now() > finish_by {
                let _ = child.kill();
                let counts = store.task_counts(&plan_id).await.expect("counts");
                panic!("the queue did not drain in time: {counts:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let elapsed = started.elapsed();

    // The simulator's verdict.
    let effects = sim.effects();
    let mut actual: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in &effects {
        *actual.entry(describe(e)).or_insert(0) += 1;
    }
    let mut want: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in &expected {
        *want.entry(e.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = actual.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "duplicated effects: {twice:?}");
    let lost: Vec<_> = want.keys().filter(|k| !actual.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} lost effects, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let extra: Vec<_> = actual.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "unintended effects: {:?}",
        &extra[..extra.len().min(5)]
    );
    assert_eq!(effects.len(), expected.len());
    let counters = sim.handle().counters();
    assert_eq!(
        counters.rate_limit_violations, 0,
        "requests over the app's limits: {counters:?}"
    );
    // roster's side: every task done.
    let tasks = store
        .tasks(&TaskFilter {
            plan_id: Some(plan_id.clone()),
            ..TaskFilter::default()
        })
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), plan.actions.len());
    let not_done: Vec<_> = tasks
        .iter()
        .filter(|t| t.state != ExecState::Done)
        .collect();
    assert!(
        not_done.is_empty(),
        "not done: {:?}",
        &not_done[..not_done.len().min(3)]
    );
    let retried = tasks.iter().filter(|t| t.attempts > 1).count();
    let uncertain = tasks.iter().filter(|t| t.uncertain).count();
    let outage_label = match outage_kind {
        Outages::None | Outages::Proxy => "database outages",
        Outages::Restart(_) => "server restarts",
    };
    println!(
        "chaos figures: scale {k}, {} actions, {workers} worker processes, {killed} SIGKILLs, \
         {outages} {outage_label} ({restarted_after_outage} workers restarted after one), \
         {faults_set} fault bursts ({} faulted requests of {}), {retried} tasks retried, \
         {uncertain} uncertain re-checked, 0 lost, 0 duplicated, {} rate-limit violations; \
         chaos phase {:.1?}, total {:.1?}",
        plan.actions.len(),
        counters.faulted,
        counters.requests,
        counters.rate_limit_violations,
        chaos_done,
        elapsed
    );
    if !matches!(outage_kind, Outages::None) {
        assert!(outages > 0, "the database went away at least once");
    }
    drop(proxy);
    store.close().await;
}

/// The drain-rate benchmark (not part of the suite): `workers` worker
/// processes drain one queue of `actions` creates (plus the fixed
/// deactivations and updates) against the simulator, without faults.
/// `scripts/bench-workers.sh` runs it for 1 and 4 workers and reports the
/// ratio of the medians.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-workers.sh"]
async fn drain_bench() {
    let workers: usize = std::env::var("ROSTER_DRAIN_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let creates: usize = std::env::var("ROSTER_DRAIN_CREATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let Some((admin_url, name, db)) = fresh_database().await else {
        return;
    };
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(rate_scale())
            .with_seed(POLICIES, PER_POLICY),
    )
    .await
    .expect("simulator");
    let store = Store::open(&db).await.expect("store");
    let (plan, expected) = plan_and_expected(creates);
    let plan_id = store
        .save_plan(&plan, 1_700_000_000_000)
        .await
        .expect("save");
    store
        .enqueue_plan_tasks(
            &plan_id,
            &[ConnectionId::new(CONNECTION)],
            40,
            1_700_000_000_000,
        )
        .await
        .expect("enqueue");
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|w| spawn_worker(&db, &sim.url(), &format!("bench-w{w}")))
        .collect();
    for c in &mut children {
        let status = c.wait().expect("worker");
        assert!(status.success());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(sim.effects().len(), expected.len());
    assert_eq!(sim.handle().counters().rate_limit_violations, 0);
    println!(
        "drain figures: {workers} worker(s), {} actions, {secs:.2} s, {:.0} actions/s",
        plan.actions.len(),
        plan.actions.len() as f64 / secs
    );
    store.close().await;
    drop_database(&admin_url, &name).await;
}
