//! The operations endpoints over HTTP on loopback: liveness, readiness
//! (and its 503s when the store is behind or gone), the Prometheus series
//! after a plan and an apply against the Expensify simulator, request ids
//! (echoed, and in every JSON log line of the request).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateLimiter, RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Email, EmployeeId, EmploymentStatus, Person, Policy, Principal};
use roster_engine::{Engine, PlanScope, Roster};
use roster_server::logging::{LogFormat, subscriber};
use roster_server::{NullSink, ScimState, ops_router, scim_router, serve};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy};
use roster_store::Store;
use serde_json::Value;
use tokio::sync::oneshot;

const USER: &str = "ops@example.com";
const SECRET: &str = "ops-secret";
const POLICY_ID: &str = "AAAA000000000001";
const PEOPLE: usize = 20;

fn op() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

fn people(leaver: Option<usize>) -> Vec<Person> {
    (0..PEOPLE)
        .map(|i| Person {
            employee_id: EmployeeId::new(format!("E{i}")),
            email: Email::parse(&email(i)).unwrap(),
            aliases: vec![],
            first_name: format!("P{i}"),
            last_name: "Test".into(),
            department: "Finance".into(),
            cost_center: "CC-1".into(),
            manager_email: Some(Email::parse("boss@acme.example").unwrap()),
            status: if Some(i) == leaver {
                EmploymentStatus::Terminated
            } else {
                EmploymentStatus::Active
            },
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: Default::default(),
        })
        .collect()
}

const RULES: &str = "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = { status = [\"active\", \"leave\"] }\nset = { role = \"user\", manager_email = \"{manager_email}\", policy_id = \"AAAA000000000001\" }\n";

/// Roster over `store`, wired to the simulator; `budget` paces it when
/// given (else the store-backed budget from the documented limits / 100).
fn wire(store: Store, sim: &RunningSim, budget: Option<Arc<RateLimiter>>) -> Roster {
    let mut engine = Engine::new(store, Policy::parse("p.toml", RULES).unwrap());
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(sim.url());
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    let connector = Arc::new(ExpensifyConnector::new(config).unwrap());
    match budget {
        Some(b) => engine.add_connector_with_budget(connector, b),
        None => engine.add_connector(connector),
    }
    Roster::new(engine)
}

async fn sim() -> RunningSim {
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..PEOPLE {
        tenant = tenant.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i}"),
        ));
    }
    ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([tenant]),
    )
    .await
    .unwrap()
}

struct Server {
    origin: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(router: axum::Router) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Server {
            origin,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.origin))
            .send()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn store_in(dir: &tempfile::TempDir) -> (Store, String) {
    let path = dir.path().join("r.db").display().to_string();
    (Store::open(&path).await.unwrap(), path)
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_is_ok_and_readyz_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = store_in(&dir).await;
    let roster = Arc::new(Roster::new(Engine::new(
        store.clone(),
        Policy::parse("p.toml", "").unwrap(),
    )));
    let server = Server::start(ops_router(roster.clone())).await;

    let r = server.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");

    let r = server.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["schema_version"], roster_store::SCHEMA_VERSION);
    assert_eq!(body["problems"], serde_json::json!([]));

    // The database is one migration behind this build (a restore of an
    // older backup under a running server).
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let r = server.get("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["store_reachable"], true, "{body}");
    assert_eq!(body["schema_version"], roster_store::SCHEMA_VERSION - 1);
    let problems = body["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "this build needs {}",
            roster_store::SCHEMA_VERSION
        )),
        "{body}"
    );
    // Liveness is not readiness: the process still serves.
    assert_eq!(server.get("/healthz").await.status(), 200);

    // The store is gone.
    store.close().await;
    let r = server.get("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["store_reachable"], false, "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );
    server.stop().await;
}

/// The value of the series `name{labels}` in a Prometheus text page, where
/// `labels` is a subset of the series' labels (`k="v"` each).
fn sample(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (series, ""),
        };
        (n == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_plans_actions_connector_calls_waits_scim_and_leavers() {
    roster_server::metrics_handle();
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    // Past the first plan: everyone in line, applied.
    let first = wire(store.clone(), &sim, None);
    first
        .import_people(&op(), &people(None), "hr")
        .await
        .unwrap();
    first.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = first.plan(&op(), PlanScope::All).await.unwrap();
    assert!(
        planned.plan.actions.is_empty(),
        "{:?}",
        planned.plan.actions
    );
    let approved = first.check_planned(&op(), planned).await.unwrap();
    first.apply(approved, &mut |_, _| {}).await.unwrap();

    // One request a second: the apply's call right after the read waits.
    let budget = Arc::new(RateLimiter::new(vec![RateWindow::new(
        1,
        Duration::from_secs(1),
    )]));
    let roster = Arc::new(wire(store.clone(), &sim, Some(budget)));
    roster
        .import_people(&op(), &people(Some(3)), "hr")
        .await
        .unwrap();
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert_eq!(planned.plan.actions.len(), 1, "{:?}", planned.plan.actions);

    let router = scim_router(ScimState::new(store.clone(), Arc::new(NullSink)))
        .merge(ops_router(roster.clone()));
    let server = Server::start(router).await;
    // A SCIM request without a token: counted by its status.
    let r = server.get("/scim/v2/expensify/Users").await;
    assert_eq!(r.status(), 401);

    // Before the apply: the leaver still has their account. (The first
    // count is computed in the background; wait for it, boundedly.)
    let mut page = String::new();
    for _ in 0..300 {
        page = server.get("/metrics").await.text().await.unwrap();
        if sample(&page, "roster_leavers_with_open_access", &[]).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(&page, "roster_leavers_with_open_access", &[]),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "roster_leaver_open_accounts", &[]),
        Some(1.0),
        "{page}"
    );

    let approved = roster.check_planned(&op(), planned).await.unwrap();
    let (report, _) = roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.applied_total(), 1, "{report:?}");

    let r = server.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let page = r.text().await.unwrap();
    assert!(
        sample(&page, "roster_plans_created_total", &["scope=\"all\""]).unwrap_or(0.0) >= 2.0,
        "{page}"
    );
    assert!(
        sample(
            &page,
            "roster_actions_total",
            &["path=\"connector\"", "outcome=\"done\""]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{page}"
    );
    assert_eq!(
        sample(&page, "roster_queue_depth", &[]),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "roster_queue_oldest_task_age_seconds", &[]),
        Some(0.0),
        "{page}"
    );
    for call in ["list", "apply"] {
        let count = sample(
            &page,
            "roster_connector_request_duration_seconds_count",
            &["connection=\"expensify\"", &format!("call=\"{call}\"")],
        );
        assert!(count.unwrap_or(0.0) >= 1.0, "{call}: {page}");
    }
    assert!(
        page.contains("roster_connector_request_duration_seconds_bucket{"),
        "histograms, not summaries: {page}"
    );
    assert!(
        sample(
            &page,
            "roster_rate_limit_waits_total",
            &["connection=\"expensify\""]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{page}"
    );
    assert!(
        sample(
            &page,
            "roster_rate_limit_wait_seconds_sum",
            &["connection=\"expensify\""]
        )
        .unwrap_or(0.0)
            > 0.0,
        "{page}"
    );
    assert!(
        sample(&page, "roster_scim_requests_total", &["status=\"401\""]).unwrap_or(0.0) >= 1.0,
        "{page}"
    );
    // No person in any label.
    for i in 0..PEOPLE {
        assert!(!page.contains(&email(i)), "{page}");
        assert!(!page.contains(&format!("\"E{i}\"")), "{page}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_error_is_counted_by_connection_and_kind() {
    // The recorder must be installed before anything happens worth counting.
    roster_server::metrics_handle();
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let mut engine = Engine::new(store.clone(), Policy::parse("p.toml", RULES).unwrap());
    let config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new("not-the-secret"),
    )
    .with_base_url(sim.url());
    engine.add_connector(Arc::new(ExpensifyConnector::new(config).unwrap()));
    let roster = Arc::new(Roster::new(engine));
    // The read fails (bad credentials); that is the point.
    let _ = roster.read(&op(), &mut |_, _| {}).await;
    let server = Server::start(ops_router(roster)).await;
    let page = server.get("/metrics").await.text().await.unwrap();
    assert!(
        sample(
            &page,
            "roster_connector_errors_total",
            &["connection=\"expensify\"", "kind=\"unauthorized\""]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{page}"
    );
    server.stop().await;
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

// One thread: the subscriber set for this test sees the server's spans.
#[tokio::test(flavor = "current_thread")]
async fn every_request_has_an_id_echoed_and_in_each_json_log_line() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(subscriber(
        LogFormat::Json,
        tracing_subscriber::EnvFilter::new("info"),
        logs.clone(),
        false,
    ));
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_in(&dir).await;
    let roster = Arc::new(Roster::new(Engine::new(
        store.clone(),
        Policy::parse("p.toml", "").unwrap(),
    )));
    let router =
        scim_router(ScimState::new(store.clone(), Arc::new(NullSink))).merge(ops_router(roster));
    let server = Server::start(router).await;

    // The caller's id is kept and echoed.
    let r = server
        .http
        .get(format!("{}/healthz", server.origin))
        .header("x-request-id", "probe-7f3a.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "probe-7f3a.1");
    // None given: a fresh UUID.
    let r = server.get("/readyz").await;
    let made = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 36, "{made}");
    assert_eq!(made.matches('-').count(), 4, "{made}");
    // An implausible one (spaces, a line break attempt) is replaced, and a
    // bearer token sent along is never logged.
    let r = server
        .http
        .get(format!(
            "{}/scim/v2/expensify/Users?filter=userName%20eq%20%22x%40y.z%22",
            server.origin
        ))
        .header("x-request-id", "a b c")
        .header("authorization", "Bearer rst_secret-token-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let replaced = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(replaced, "a b c");
    assert_eq!(replaced.len(), 36, "{replaced}");
    server.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for (id, path) in [
        ("probe-7f3a.1", "/healthz"),
        (made.as_str(), "/readyz"),
        (replaced.as_str(), "/scim/v2/expensify/Users"),
    ] {
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect();
        assert!(!of_request.is_empty(), "no line for {id}: {text}");
        for l in &of_request {
            assert_eq!(l["span"]["path"], path, "{l}");
            assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        }
        assert!(
            of_request
                .iter()
                .any(|l| l["fields"]["status"].is_number() || l["fields"]["status"].is_string()),
            "the response line of {id}: {text}"
        );
    }
    assert!(!text.contains("secret-token-value"), "{text}");
    assert!(
        !text.contains("x@y.z") && !text.contains("x%40y.z"),
        "{text}"
    );
}
