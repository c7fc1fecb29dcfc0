//! Every source through the source conformance kit
//! (`roster_sources::testkit`), against its simulator on loopback.
//! Verdicts come from the simulators' own records.

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::SecretString;
use roster_core::ConnectionId;
use roster_sim::common::RateWindow as SimWindow;
use roster_sim::graph::{GraphSim, GraphSimConfig, GraphUser};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser};
use roster_sources::entra::{EntraSource, EntraSourceConfig};
use roster_sources::okta::{OktaSource, OktaSourceConfig};
use roster_sources::testkit::{self, GraphOracle, OktaSourceOracle, Subject};
use roster_sources::{RateWindow, read};

const TIMEOUT: Duration = Duration::from_millis(800);

async fn run(subject: Subject) {
    let report = tokio::time::timeout(Duration::from_secs(60), testkit::run_all(&subject))
        .await
        .expect("the kit finishes in time");
    match report {
        Ok(lines) => {
            for l in lines {
                eprintln!("  {l}");
            }
        }
        Err(e) => panic!("conformance failed: {e}"),
    }
}

fn okta_config() -> OktaSimConfig {
    let mut c = OktaSimConfig::new("okta-token").with_rate_limit(100, Duration::from_secs(1));
    let states = [
        "ACTIVE",
        "ACTIVE",
        "SUSPENDED",
        "ACTIVE",
        "DEPROVISIONED",
        "STAGED",
        "ACTIVE",
        "LOCKED_OUT",
        "ACTIVE",
        "PASSWORD_EXPIRED",
        "ACTIVE",
    ];
    for (i, s) in states.iter().enumerate() {
        c = c.with_user(
            OktaUser::new(&format!("p{i}@example.com"), &format!("P{i}"), "Okta")
                .with_status(s)
                .with_employee_number(&format!("E{i}"))
                .with_department(if i % 2 == 0 { "Finance" } else { "Engineering" })
                .with_cost_center(&format!("CC{}", i % 3))
                .with_custom("title", "Analyst"),
        );
    }
    c.with_group(
        "Finance",
        &["p0@example.com", "p2@example.com", "p4@example.com"],
    )
    .with_group(
        "Engineering",
        &["p1@example.com", "p3@example.com", "p5@example.com"],
    )
    .with_group(
        "Everyone",
        &[
            "p0@example.com",
            "p1@example.com",
            "p6@example.com",
            "p7@example.com",
            "p8@example.com",
        ],
    )
}

fn okta_source(url: String) -> OktaSource {
    let mut c = OktaSourceConfig::new(
        ConnectionId::new("okta"),
        url,
        SecretString::new("okta-token"),
    );
    c.timeout = TIMEOUT;
    c.rate_limit = RateWindow::new(100, Duration::from_secs(1));
    OktaSource::new(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_source_conforms() {
    let sim = OktaSim::start(okta_config()).await.unwrap();
    let source = Arc::new(okta_source(sim.url()));
    run(Subject::new(
        source,
        Arc::new(OktaSourceOracle(sim.handle().clone())),
    ))
    .await;
    assert_eq!(sim.counters().rate_limit_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_people_carry_every_field_and_deprovisioned_users_come_from_the_status_filter() {
    let sim = OktaSim::start(okta_config()).await.unwrap();
    let boss = sim.user("p0@example.com").unwrap();
    sim.update_user("p1@example.com", |u| u.manager_id = Some(boss.id.clone()));
    let source = okta_source(sim.url());
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let read = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap();
    assert!(read.complete);
    assert_eq!(read.people.len(), 11);
    let p1 = read
        .people
        .iter()
        .find(|p| p.email.as_ref().unwrap().as_str() == "p1@example.com")
        .unwrap();
    assert_eq!(p1.employee_id.as_ref().unwrap().as_str(), "E1");
    assert_eq!(p1.department.as_deref(), Some("Engineering"));
    assert_eq!(p1.cost_center.as_deref(), Some("CC1"));
    assert_eq!(
        p1.attributes.get("title").map(String::as_str),
        Some("Analyst")
    );
    assert_eq!(
        p1.groups,
        vec!["Engineering".to_string(), "Everyone".to_string()]
    );
    // The manager's id is resolved to an address within the read.
    assert_eq!(
        p1.manager,
        Some(roster_sources::ManagerRef::Email(
            roster_core::Email::parse("p0@example.com").unwrap()
        ))
    );
    let gone = read
        .people
        .iter()
        .find(|p| p.raw_state == "DEPROVISIONED")
        .unwrap();
    assert!(gone.lifecycle.terminates());
    // The deactivated user came from the filtered pass, not the default one.
    let c = sim.counters();
    assert!(c.route("GET /api/v1/users") >= 2, "{c:?}");
    // Exactly one person terminates: the deprovisioned one.
    assert_eq!(
        read.people
            .iter()
            .filter(|p| p.lifecycle.terminates())
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_reads_use_at_most_the_configured_share_of_the_window() {
    // Okta allows 20 per second; roster may use half.
    let mut c = OktaSimConfig::new("okta-token").with_rate_limit(20, Duration::from_secs(1));
    for i in 0..40 {
        c = c.with_user(OktaUser::new(&format!("q{i}@example.com"), "Q", "Okta"));
    }
    let sim = OktaSim::start(c).await.unwrap();
    let mut cfg = OktaSourceConfig::new(
        ConnectionId::new("okta"),
        sim.url(),
        SecretString::new("okta-token"),
    );
    cfg.rate_limit = RateWindow::new(20, Duration::from_secs(1));
    cfg.timeout = TIMEOUT;
    let source = OktaSource::new(cfg).unwrap();
    let caps = roster_sources::Source::capabilities(&source);
    assert_eq!(
        caps.rate_limits,
        vec![RateWindow::new(10, Duration::from_secs(1))]
    );
    let budget = roster_connectors::RateLimiter::new(caps.rate_limits.clone())
        .with_margin(Duration::from_millis(40));
    let opts = read::ReadOptions {
        page_size: Some(2),
        ..read::ReadOptions::default()
    };
    let started = std::time::Instant::now();
    let read = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(read.complete && read.people.len() == 40);
    // 20 user pages, 1 deprovisioned, 1 groups: 22 requests at 10/s
    // take at least two seconds; nothing went over Okta's limit.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.counters().rate_limit_violations, 0);
    let _ = SimWindow {
        max_requests: 1,
        per: Duration::from_secs(1),
    };
}

fn graph_config() -> GraphSimConfig {
    let mut c =
        GraphSimConfig::new("tenant-1", "client-1", "secret-1").with_rate_limits(vec![SimWindow {
            max_requests: 100,
            per: Duration::from_secs(1),
        }]);
    for i in 0..9 {
        c = c.with_user(
            GraphUser::new(&format!("g{i}@example.com"), &format!("G{i}"), "Entra")
                .with_employee_id(&format!("E{i}"))
                .with_department(if i % 2 == 0 { "Finance" } else { "Engineering" })
                .with_cost_center(&format!("CC{}", i % 3))
                .with_enabled(i != 4),
        );
    }
    c.with_group("Finance", &["g0@example.com", "g2@example.com"])
        .with_group(
            "Engineering",
            &["g1@example.com", "g3@example.com", "g5@example.com"],
        )
        .with_group(
            "Everyone",
            &["g0@example.com", "g1@example.com", "g6@example.com"],
        )
}

fn entra_source(url: &roster_sim::graph::RunningGraph) -> EntraSource {
    let mut c = EntraSourceConfig::new(
        ConnectionId::new("entra"),
        "tenant-1",
        "client-1",
        SecretString::new("secret-1"),
    );
    c.graph_url = url.graph_url();
    c.login_url = url.login_url();
    c.timeout = TIMEOUT;
    c.rate_limits = vec![RateWindow::new(50, Duration::from_secs(1))];
    EntraSource::new(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_source_conforms() {
    let sim = GraphSim::start(graph_config()).await.unwrap();
    let source = Arc::new(entra_source(&sim));
    run(Subject::new(
        source,
        Arc::new(GraphOracle(sim.handle().clone())),
    ))
    .await;
    assert_eq!(sim.counters().rate_limit_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_renews_an_expired_access_token_and_refuses_a_bad_secret() {
    let sim = GraphSim::start(graph_config()).await.unwrap();
    let source = entra_source(&sim);
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let opts = read::ReadOptions {
        initial_backoff: Duration::from_millis(10),
        ..read::ReadOptions::default()
    };
    let first = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(first.complete);
    sim.expire_access_tokens();
    let again = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(again.complete);
    assert_eq!(first.people, again.people);
    assert_eq!(sim.counters().route("POST /{tenant}/oauth2/v2.0/token"), 2);

    let mut c = EntraSourceConfig::new(
        ConnectionId::new("entra"),
        "tenant-1",
        "client-1",
        SecretString::new("wrong"),
    );
    c.graph_url = sim.graph_url();
    c.login_url = sim.login_url();
    let bad = EntraSource::new(c).unwrap();
    let err = read::read_all(&bad, &budget, &opts).await.unwrap_err();
    assert_eq!(err.code(), "SRC-0001", "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "the secret leaked: {err}"
    );
    let v = roster_sources::Source::validate(&bad).await.unwrap();
    assert!(!v.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_people_carry_every_field() {
    let sim = GraphSim::start(graph_config()).await.unwrap();
    let boss = sim.user("g0@example.com").unwrap();
    sim.update_user("g1@example.com", |u| u.manager_id = Some(boss.id.clone()));
    let source = entra_source(&sim);
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let read = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap();
    assert!(read.complete);
    assert_eq!(read.people.len(), 9);
    let g1 = read
        .people
        .iter()
        .find(|p| p.email.as_ref().unwrap().as_str() == "g1@example.com")
        .unwrap();
    assert_eq!(g1.employee_id.as_ref().unwrap().as_str(), "E1");
    assert_eq!(g1.cost_center.as_deref(), Some("CC1"));
    assert_eq!(
        g1.groups,
        vec!["Engineering".to_string(), "Everyone".to_string()]
    );
    assert_eq!(
        g1.manager,
        Some(roster_sources::ManagerRef::Email(
            roster_core::Email::parse("g0@example.com").unwrap()
        ))
    );
    let disabled: Vec<_> = read
        .people
        .iter()
        .filter(|p| p.lifecycle.terminates())
        .collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].raw_state, "accountEnabled=false");
}

fn onelogin_config() -> roster_sim::onelogin::OneLoginSimConfig {
    use roster_sim::onelogin::{OneLoginSimConfig, OneLoginUser};
    let mut c =
        OneLoginSimConfig::new("ol-client", "ol-secret").with_rate_limits(vec![SimWindow {
            max_requests: 100,
            per: Duration::from_secs(1),
        }]);
    let states = [1, 1, 2, 1, 0, 3, 1, 4, 1, 7, 1];
    for (i, s) in states.iter().enumerate() {
        c = c.with_user(
            OneLoginUser::new(&format!("o{i}@example.com"), &format!("O{i}"), "OneLogin")
                .with_status(*s)
                .with_department("Finance")
                .with_custom("employee_id", &format!("E{i}")),
        );
    }
    c.with_role("Finance", &["o0@example.com", "o1@example.com"])
        .with_role("Admins", &["o2@example.com"])
}

fn onelogin_source(
    sim: &roster_sim::onelogin::RunningOneLogin,
) -> roster_sources::onelogin::OneLoginSource {
    let mut c = roster_sources::onelogin::OneLoginSourceConfig::new(
        ConnectionId::new("onelogin"),
        sim.url(),
        "ol-client",
        SecretString::new("ol-secret"),
    );
    c.timeout = TIMEOUT;
    c.rate_limit = RateWindow::new(50, Duration::from_secs(1));
    roster_sources::onelogin::OneLoginSource::new(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_source_conforms() {
    let sim = roster_sim::onelogin::OneLoginSim::start(onelogin_config())
        .await
        .unwrap();
    let source = Arc::new(onelogin_source(&sim));
    let mut subject = Subject::new(
        source,
        Arc::new(testkit::OneLoginOracle(sim.handle().clone())),
    );
    // OneLogin's pages hold up to 50; the seed spans several at 2.
    subject.page_size = Some(2);
    run(subject).await;
    assert_eq!(sim.counters().rate_limit_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_people_carry_roles_and_statuses() {
    let sim = roster_sim::onelogin::OneLoginSim::start(onelogin_config())
        .await
        .unwrap();
    let source = onelogin_source(&sim);
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let read = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap();
    assert!(read.complete);
    assert_eq!(read.people.len(), 11);
    let o0 = read
        .people
        .iter()
        .find(|p| p.raw_state == "1" && p.groups == vec!["Finance".to_string()])
        .unwrap();
    assert_eq!(o0.employee_id.as_ref().unwrap().as_str(), "E0");
    // Suspended is leave, locked and password states are active: nobody
    // in this seed terminates.
    assert_eq!(
        read.people
            .iter()
            .filter(|p| p.lifecycle.terminates())
            .count(),
        0
    );
    let suspended = read.people.iter().find(|p| p.raw_state == "2").unwrap();
    assert_eq!(suspended.status(), roster_core::EmploymentStatus::Leave);
    // A deleted user is simply gone from the next full read.
    sim.delete_user("o3@example.com");
    let after = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(after.people.len(), 10);
}

fn google_config() -> roster_sim::google::GoogleSimConfig {
    use roster_sim::google::{GoogleSimConfig, GoogleUser};
    let mut c = GoogleSimConfig::new(
        "roster@acme-project.iam.gserviceaccount.com",
        "admin@example.com",
    )
    .with_rate_limits(vec![SimWindow {
        max_requests: 100,
        per: Duration::from_secs(1),
    }]);
    for i in 0..9 {
        c = c.with_user(
            GoogleUser::new(&format!("w{i}@example.com"), &format!("W{i}"), "Google")
                .with_employee_id(&format!("E{i}"))
                .with_department("Sales")
                .with_suspended(i == 2)
                .with_archived(i == 3)
                .with_org_unit("/Sales"),
        );
    }
    c.with_group("sales@example.com", &["w0@example.com", "w1@example.com"])
        .with_group(
            "all@example.com",
            &["w0@example.com", "w2@example.com", "w5@example.com"],
        )
}

fn google_source(
    sim: &roster_sim::google::RunningGoogle,
    key: &str,
) -> roster_sources::google::GoogleSource {
    let mut c = roster_sources::google::GoogleSourceConfig::new(
        ConnectionId::new("google"),
        "roster@acme-project.iam.gserviceaccount.com",
        SecretString::new(key),
        "admin@example.com",
    );
    c.api_url = sim.api_url();
    c.token_url = sim.token_url();
    c.timeout = TIMEOUT;
    c.rate_limit = RateWindow::new(50, Duration::from_secs(1));
    roster_sources::google::GoogleSource::new(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_source_conforms() {
    let sim = roster_sim::google::GoogleSim::start(google_config())
        .await
        .unwrap();
    let source = Arc::new(google_source(
        &sim,
        roster_sim::google::TEST_SERVICE_ACCOUNT_KEY,
    ));
    run(Subject::new(
        source,
        Arc::new(testkit::GoogleOracle(sim.handle().clone())),
    ))
    .await;
    assert_eq!(sim.counters().rate_limit_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_people_map_suspended_to_leave_and_archived_to_terminated() {
    let sim = roster_sim::google::GoogleSim::start(google_config())
        .await
        .unwrap();
    sim.update_user("w1@example.com", |u| {
        u.manager_email = Some("w0@example.com".into())
    });
    let source = google_source(&sim, roster_sim::google::TEST_SERVICE_ACCOUNT_KEY);
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let read = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap();
    assert!(read.complete);
    assert_eq!(read.people.len(), 9);
    let by = |e: &str| {
        read.people
            .iter()
            .find(|p| p.email.as_ref().unwrap().as_str() == e)
            .unwrap()
    };
    assert_eq!(
        by("w2@example.com").status(),
        roster_core::EmploymentStatus::Leave
    );
    assert_eq!(
        by("w3@example.com").status(),
        roster_core::EmploymentStatus::Terminated
    );
    let w1 = by("w1@example.com");
    assert_eq!(w1.employee_id.as_ref().unwrap().as_str(), "E1");
    assert_eq!(w1.groups, vec!["sales@example.com".to_string()]);
    assert_eq!(
        w1.attributes.get("orgUnitPath").map(String::as_str),
        Some("/Sales")
    );
    assert_eq!(
        w1.manager,
        Some(roster_sources::ManagerRef::Email(
            roster_core::Email::parse("w0@example.com").unwrap()
        ))
    );
    assert_eq!(
        read.people
            .iter()
            .filter(|p| p.lifecycle.terminates())
            .count(),
        1
    );
    // No incremental reads from Google: a distinct, honest error.
    let err = read::read_changes(
        &source,
        &budget,
        &roster_sources::SyncCursor::new("x"),
        &read::ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "SRC-0007");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_refuses_an_assertion_signed_by_another_key() {
    let sim = roster_sim::google::GoogleSim::start(google_config())
        .await
        .unwrap();
    // A different key (the test key's PKCS#8 with the wrong owner): the
    // simulator checks the signature against the service account's key.
    let other = include_str!("other-test-key.pem");
    let source = google_source(&sim, other);
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let err = read::read_all(&source, &budget, &read::ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SRC-0001", "{err}");
    let v = roster_sources::Source::validate(&source).await.unwrap();
    assert!(!v.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_oauth_service_app_reads_with_its_scopes_and_renews_its_token() {
    use roster_sim::okta::{OktaOAuthClient, TEST_OAUTH_KEY};
    use roster_sources::okta::OktaOAuth;
    let sim = OktaSim::start(okta_config().with_oauth_client(OktaOAuthClient::new(
        "0oaroster",
        TEST_OAUTH_KEY,
        &["okta.users.read", "okta.groups.read", "okta.logs.read"],
    )))
    .await
    .unwrap();
    let mut c = OktaSourceConfig::new(ConnectionId::new("okta"), sim.url(), SecretString::new(""));
    c.oauth = Some(OktaOAuth::new(
        "0oaroster",
        SecretString::new(TEST_OAUTH_KEY),
    ));
    c.timeout = TIMEOUT;
    let source = OktaSource::new(c.clone()).unwrap();
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let opts = read::ReadOptions {
        initial_backoff: Duration::from_millis(10),
        ..read::ReadOptions::default()
    };
    let first = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(first.complete && first.people.len() == 11);
    let changes = read::read_changes(&source, &budget, first.cursor.as_ref().unwrap(), &opts)
        .await
        .unwrap();
    sim.expire_oauth_tokens();
    let again = read::read_changes(&source, &budget, &changes.cursor, &opts)
        .await
        .unwrap();
    assert!(again.changed.iter().all(|p| changes.changed.contains(p)));
    assert_eq!(sim.counters().route("POST /oauth2/v1/token"), 2);
    assert!(
        roster_sources::Source::validate(&source)
            .await
            .unwrap()
            .ok()
    );

    // A service app without okta.logs.read can do full reads; validation
    // names the missing scope for incremental ones.
    let sim = OktaSim::start(okta_config().with_oauth_client(OktaOAuthClient::new(
        "0oaroster",
        TEST_OAUTH_KEY,
        &["okta.users.read", "okta.groups.read"],
    )))
    .await
    .unwrap();
    let mut narrow = c.clone();
    narrow.org_url = sim.url();
    narrow.oauth.as_mut().unwrap().scopes =
        vec!["okta.users.read".into(), "okta.groups.read".into()];
    let source = OktaSource::new(narrow).unwrap();
    assert!(
        read::read_all(&source, &budget, &opts)
            .await
            .unwrap()
            .complete
    );
    let v = roster_sources::Source::validate(&source).await.unwrap();
    assert!(!v.ok());
    assert!(
        v.checks
            .iter()
            .any(|c| c.name == "system_log" && !c.passed && c.detail.contains("okta.logs.read")),
        "{v:?}"
    );

    // Another key: refused, and the key never appears in the error.
    let mut wrong = c;
    wrong.org_url = sim.url();
    wrong.oauth = Some(OktaOAuth::new(
        "0oaroster",
        SecretString::new(include_str!("other-test-key.pem")),
    ));
    let err = read::read_all(&OktaSource::new(wrong).unwrap(), &budget, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SRC-0001", "{err}");
}

/// The benchmark, scaled in time: 50,000 Okta users at 200 per
/// page, Okta allowing 100 requests per second and roster configured for
/// half. The read never goes faster than the share allows (nor over
/// Okta's limit), and takes within 10% of the slower of what the share
/// allows and what the machine needs for the same read unpaced: pacing
/// adds no stall of its own. (In a debug build on a shared machine the
/// unpaced read is the slower: about 30 ms a page.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_full_read_of_50000_users_runs_at_the_configured_share() {
    let mut c = OktaSimConfig::new("okta-token").with_rate_limit(100, Duration::from_secs(1));
    for i in 0..50_000 {
        c = c.with_user(OktaUser::new(&format!("b{i}@example.com"), "B", "Bench"));
    }
    let sim = OktaSim::start(c).await.unwrap();
    let mut cfg = OktaSourceConfig::new(
        ConnectionId::new("okta"),
        sim.url(),
        SecretString::new("okta-token"),
    );
    cfg.rate_limit = RateWindow::new(100, Duration::from_secs(1));
    cfg.timeout = Duration::from_secs(10);
    let source = OktaSource::new(cfg).unwrap();
    let caps = roster_sources::Source::capabilities(&source);
    let budget = roster_connectors::RateLimiter::new(caps.rate_limits.clone())
        .with_margin(Duration::from_millis(10));
    let opts = read::ReadOptions {
        page_size: Some(200),
        ..read::ReadOptions::default()
    };
    // The same read unpaced: what the machine itself needs per page (a
    // debug build on a shared machine spends real time on 50,000 records).
    let unpaced_started = std::time::Instant::now();
    let unpaced = read::read_all(&source, &roster_connectors::RateLimiter::unlimited(), &opts)
        .await
        .unwrap();
    let unpaced_took = unpaced_started.elapsed();
    assert_eq!(unpaced.people.len(), 50_000);
    // Let Okta's window empty again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let violations_before = sim.counters().rate_limit_violations;
    let started = std::time::Instant::now();
    let read = read::read_all(&source, &budget, &opts).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "unpaced: {unpaced_took:.2?} ({violations_before} requests over Okta's limit, as expected unpaced)"
    );
    assert!(read.complete);
    assert_eq!(read.people.len(), 50_000);
    // 250 user pages, the DEPROVISIONED pass, the (empty) group listing.
    let requests = read.pages as usize;
    assert_eq!(requests, 252);
    let fastest =
        roster_connectors::RateLimiter::new(caps.rate_limits.clone()).minimum_span(requests);
    eprintln!("50,000 users, {requests} requests: {took:.2?} (the share allows {fastest:.2?})");
    assert!(
        took >= fastest,
        "faster than the share allows: {took:?} < {fastest:?}"
    );
    let bound = fastest.max(unpaced_took).mul_f64(1.10);
    assert!(
        took <= bound,
        "{took:?} is more than 10% over the slower of the share ({fastest:?}) and the unpaced read ({unpaced_took:?})"
    );
    assert_eq!(sim.counters().rate_limit_violations, violations_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_storm_bigger_than_an_incremental_read_asks_for_a_full_read() {
    let sim = OktaSim::start(okta_config()).await.unwrap();
    let mut c = OktaSourceConfig::new(
        ConnectionId::new("okta"),
        sim.url(),
        SecretString::new("okta-token"),
    );
    c.max_incremental_people = 3;
    c.timeout = TIMEOUT;
    let source = OktaSource::new(c).unwrap();
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let opts = read::ReadOptions::default();
    let base = read::read_all(&source, &budget, &opts).await.unwrap();
    let before = sim.counters().requests;
    let locked = sim.lockout_storm(usize::MAX);
    assert!(locked.len() > 3);
    let err = read::read_changes(&source, &budget, base.cursor.as_ref().unwrap(), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SRC-0010", "{err}");
    assert!(err.needs_full_read());
    // One log page, not a request per locked-out person.
    assert_eq!(sim.counters().requests - before, 1);
    // The full read it asks for keeps every locked-out person employed.
    let full = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(
        full.people
            .iter()
            .filter(|p| locked.contains(&p.id))
            .all(|p| !p.lifecycle.terminates())
    );
}

/// A read that fails part-way is never complete and hands out no cursor:
/// the people it did not reach must not look like leavers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_short_is_incomplete_and_has_no_cursor() {
    use roster_sim::common::Fault;
    let sim = OktaSim::start(okta_config()).await.unwrap();
    let source = okta_source(sim.url());
    let budget = roster_connectors::RateLimiter::new(Vec::new());
    let opts = read::ReadOptions {
        page_size: Some(2),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        ..read::ReadOptions::default()
    };
    // The deactivated pass and two user pages, then 5xx on every attempt.
    sim.schedule_faults([
        Fault::None,
        Fault::None,
        Fault::None,
        Fault::ServerError,
        Fault::ServerError,
        Fault::ServerError,
    ]);
    let read = read::read_all(&source, &budget, &opts).await.unwrap();
    assert!(!read.complete);
    assert!(
        read.incomplete_reason
            .as_deref()
            .unwrap()
            .contains("SRC-0003"),
        "{:?}",
        read.incomplete_reason
    );
    assert!(read.cursor.is_none());
    assert!(read.people.len() < 11);
    // Failing on the very first page is an error, not an empty read.
    sim.schedule_faults([Fault::ServerError, Fault::ServerError, Fault::ServerError]);
    let err = read::read_all(&source, &budget, &opts).await.unwrap_err();
    assert_eq!(err.code(), "SRC-0003");
}
