//! The declarative REST connector (`roster_connectors::rest`), built
//! through the registry from the five catalog records alone (Zoom,
//! Atlassian, Zendesk, Asana, HubSpot), through the shared conformance
//! suite against each vendor's simulator (`roster_sim::rest_apps`). Then
//! the ways a read can go wrong — a malformed body, a 429 with
//! `Retry-After`, a failed or truncated later page — each shown never to
//! end in a deactivation: the read is incomplete, and the plan withholds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use roster_catalog::{App, Catalog};
use roster_connectors::driver::{self, DriverOptions};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_connectors::retry::RetryPolicy;
use roster_connectors::testkit::{self, Subject};
use roster_connectors::{Connector, ConnectorError, ListRequest, RateLimiter, SecretString};
use roster_core::{ConnectionId, Operation};
use roster_sim::common::Fault;
use roster_sim::rest_apps::{RestAppConfig, RestAppSim, RunningRestApp, Vendor};

const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(900);

fn record(id: &str) -> App {
    Catalog::builtin()
        .expect("the built-in catalog loads")
        .get(id)
        .cloned()
        .unwrap_or_else(|| panic!("no catalog record {id}"))
}

/// The connection a deployment would configure, pointed at the simulator.
fn settings(sim: &RunningRestApp) -> ConnectorSettings {
    let v = sim.vendor();
    let mut s = ConnectorSettings::new(ConnectionId::new(v.name()))
        .with_path("api")
        .with_base_url(sim.url())
        .with_secret(SecretString::new("sim-secret"))
        .with_timeout(TIMEOUT)
        .with_option("page_size", "3");
    match v {
        Vendor::Zoom => {
            s = s
                .with_username("sim-client")
                .with_option("account_id", "T1")
                .with_option("token_url", sim.token_url());
        }
        Vendor::Zendesk => s = s.with_username("admin@example.com/token"),
        Vendor::Atlassian => s = s.with_option("org_id", "T1"),
        Vendor::Asana => s = s.with_option("workspace_gid", "T1"),
        Vendor::HubSpot => {}
    }
    s
}

async fn start(vendor: Vendor) -> RunningRestApp {
    RestAppSim::start(
        RestAppConfig::new(vendor)
            .with_seed(7)
            .with_fixed_page_size(3),
    )
    .await
    .expect("the simulator starts")
}

fn connector(sim: &RunningRestApp) -> Arc<dyn Connector> {
    registry::build(&record(sim.vendor().name()), &settings(sim))
        .expect("the registry builds the rest connector from the record")
}

async fn conforms(vendor: Vendor, update: Option<(&str, &str)>) {
    let sim = start(vendor).await;
    let mut s = Subject::new(
        connector(&sim),
        Arc::new(testkit::RestAppOracle {
            handle: sim.handle().clone(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    s.create_attributes = Box::new(|_| {
        [("first_name", "New"), ("last_name", "Person")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    s.update = update.map(|(k, v)| (k.to_string(), v.to_string()));
    let report = tokio::time::timeout(Duration::from_secs(40), testkit::run_all(&s))
        .await
        .expect("the suite finishes in time");
    match report {
        Ok(lines) => lines.iter().for_each(|l| eprintln!("  {l}")),
        Err(e) => panic!("{}: conformance failed: {e}", vendor.name()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_conforms_from_its_record() {
    conforms(Vendor::Zoom, Some(("first_name", "Renamed"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atlassian_conforms_from_its_record() {
    conforms(Vendor::Atlassian, Some(("display_name", "Renamed Person"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_conforms_from_its_record() {
    conforms(Vendor::Zendesk, Some(("display_name", "Renamed Person"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_conforms_from_its_record() {
    conforms(Vendor::Asana, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_conforms_from_its_record() {
    conforms(Vendor::HubSpot, Some(("last_name", "Renamed"))).await;
}

/// The records' shapes are the simulators' (and so, as far as the sources
/// go, the vendors'): a client that ignores the record is refused. Zoom
/// without its OAuth exchange, Zendesk without Basic, Asana without
/// `opt_fields=email` (its users come back with no address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_refuse_what_the_records_do_not_say() {
    let zoom = start(Vendor::Zoom).await;
    let mut app = record("zoom");
    app.rest.as_mut().unwrap().auth.kind = "bearer".into();
    let c = registry::build(&app, &settings(&zoom)).unwrap();
    let e = c.list_accounts(ListRequest::first()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e}");

    let zendesk = start(Vendor::Zendesk).await;
    let mut app = record("zendesk");
    app.rest.as_mut().unwrap().auth.kind = "bearer".into();
    let c = registry::build(&app, &settings(&zendesk)).unwrap();
    let e = c.list_accounts(ListRequest::first()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e}");

    let asana = start(Vendor::Asana).await;
    let mut app = record("asana");
    app.rest.as_mut().unwrap().list.query.clear();
    let c = registry::build(&app, &settings(&asana)).unwrap();
    let page = c.list_accounts(ListRequest::first()).await.unwrap();
    assert!(page.accounts.iter().all(|a| a.email.is_none()));
    // With the record's query, every user has an address.
    let page = connector(&asana)
        .list_accounts(ListRequest::first())
        .await
        .unwrap();
    assert!(page.accounts.iter().all(|a| a.email.is_some()));
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        jitter: false,
        max_retry_after: Duration::from_secs(5),
    }
}

fn opts() -> DriverOptions {
    DriverOptions {
        page_size: Some(3),
        ..DriverOptions::default()
    }
}

/// A policy under which every seeded person keeps Zoom, orphans are
/// deactivated, and one person (user1, listed on the first page) has left.
fn plan_for(observed: roster_core::Observed) -> roster_core::Plan {
    use roster_core::{Email, EmployeeId, EmploymentStatus, Person, Policy};
    let policy = Policy::parse(
        "policy.toml",
        r#"
[connections.zoom]
orphans = "deactivate"

[[rules]]
name = "everyone-zoom"
connection = "zoom"
when = { status = ["active"] }
"#,
    )
    .expect("policy parses");
    let people: Vec<Person> = (0..7)
        .map(|i| Person {
            employee_id: EmployeeId::new(format!("E{i}")),
            email: Email::parse(&format!("user{i}@example.com")).unwrap(),
            aliases: vec![],
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            department: "Sales".into(),
            cost_center: "CC-1".into(),
            manager_email: None,
            status: if i == 1 {
                EmploymentStatus::Terminated
            } else {
                EmploymentStatus::Active
            },
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: BTreeMap::new(),
        })
        .collect();
    roster_core::reconcile_guarded(
        &people,
        &[observed],
        &policy,
        &[],
        &roster_core::guard::GuardContext::default(),
        time::OffsetDateTime::now_utc(),
    )
}

fn deprovisions(plan: &roster_core::Plan) -> usize {
    plan.actions
        .iter()
        .filter(|a| a.operation.is_deprovision())
        .count()
}

/// The control: a clean read of the same tenant does plan the leaver's
/// deactivation (so the tests below would see one if the guard let it
/// through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_read_plans_the_leavers_deactivation() {
    let sim = start(Vendor::Zoom).await;
    let c = connector(&sim);
    let o = driver::read_all(c.as_ref(), &RateLimiter::unlimited(), &retry(), &opts())
        .await
        .unwrap();
    assert!(o.complete);
    assert_eq!(o.accounts.len(), 7);
    let plan = plan_for(o);
    let off: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Deactivate)
        .map(|a| a.email.to_string())
        .collect();
    assert_eq!(off, ["user1@example.com"], "{:?}", plan.actions);
}

/// Reads the Zoom simulator with `fault` switched on (standing) once the
/// first page is in.
async fn read_with_later_fault(fault: Fault) -> roster_core::Observed {
    let sim = start(Vendor::Zoom).await;
    let c = connector(&sim);
    let handle = sim.handle().clone();
    let mut armed = false;
    let mut arm = |p: &driver::Progress<'_>| {
        if let driver::Progress::PageRead { page: 1, .. } = p
            && !armed
        {
            armed = true;
            handle.set_fault(fault);
        }
    };
    driver::read_all_with_progress(
        c.as_ref(),
        &RateLimiter::unlimited(),
        &retry(),
        &opts(),
        &mut arm,
    )
    .await
    .expect("the first page was read, so the read returns what it saw")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_truncated_later_page_is_incomplete_and_deactivates_nobody() {
    for fault in [
        Fault::ServerError,
        Fault::TruncatedBody,
        Fault::ErrorIn200,
        Fault::DropConnection,
        Fault::RateLimitStorm {
            retry_after_secs: None,
        },
    ] {
        let o = read_with_later_fault(fault).await;
        assert!(!o.complete, "{fault:?}: {o:?}");
        assert!(o.accounts.len() < 7, "{fault:?}: the later pages were read");
        assert!(
            o.incomplete_reason
                .as_deref()
                .is_some_and(|r| !r.is_empty()),
            "{fault:?}"
        );
        let plan = plan_for(o);
        assert_eq!(
            deprovisions(&plan),
            0,
            "{fault:?}: a short read planned {:?}",
            plan.actions
        );
        assert!(
            plan.findings
                .iter()
                .any(|f| f.kind == roster_core::FindingKind::IncompleteRead),
            "{fault:?}: {:?}",
            plan.findings
        );
    }
}

/// A 429 with `Retry-After`: the read waits what the app asked and then
/// completes with everything; the request that got the 429 changed
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out_and_the_read_completes() {
    let sim = start(Vendor::HubSpot).await;
    let c = connector(&sim);
    sim.handle().schedule_faults([
        Fault::None,
        Fault::RateLimitStorm {
            retry_after_secs: Some(1),
        },
    ]);
    let limiter = RateLimiter::unlimited();
    let started = std::time::Instant::now();
    let o = driver::read_all(c.as_ref(), &limiter, &retry(), &opts())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert!(o.complete, "{:?}", o.incomplete_reason);
    assert_eq!(o.accounts.len(), 7);
    assert_eq!(sim.handle().counters().faulted, 1);
    // And the connector reports the wait as the app gave it.
    sim.handle().set_fault(Fault::RateLimitStorm {
        retry_after_secs: Some(7),
    });
    let e = c.list_accounts(ListRequest::first()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e}");
    // A 429 that never ends: incomplete, and nobody is deactivated.
    let o = read_with_later_fault(Fault::RateLimitStorm {
        retry_after_secs: Some(1),
    })
    .await;
    assert!(!o.complete);
    assert_eq!(deprovisions(&plan_for(o)), 0);
}

/// A loopback server answering every request with `body` (HTTP 200).
async fn answering(body: &'static str, extra_header: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 8192];
            let _ = sock.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_header}connection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
    });
    url
}

/// The Zoom record with a static bearer token, so a plain server can
/// answer.
fn zoom_bearer(url: &str) -> Arc<dyn Connector> {
    let mut app = record("zoom");
    app.rest.as_mut().unwrap().auth.kind = "bearer".into();
    let s = ConnectorSettings::new(ConnectionId::new("zoom"))
        .with_path("api")
        .with_base_url(url)
        .with_secret(SecretString::new("t"))
        .with_timeout(TIMEOUT);
    registry::build(&app, &s).unwrap()
}

/// Malformed vendor answers are protocol errors, never pages: a list that
/// is not there, a user without an id, a status the record maps to
/// neither active nor inactive, a body that is not JSON, an error inside
/// an HTTP 200. The read is never complete, and nobody is deactivated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_vendor_answers_never_yield_a_deactivation() {
    for body in [
        r#"{"page_size": 3, "next_page_token": ""}"#,
        r#"{"users": "nobody", "next_page_token": ""}"#,
        r#"{"users": [{"email": "user0@example.com", "status": "active"}], "next_page_token": ""}"#,
        r#"{"users": [{"id": "u1", "email": "user1@example.com", "status": "suspended-ish"}], "next_page_token": ""}"#,
        r#"{"users": [{"id": "u1", "email": "user1@example.com"}], "next_page_token": ""}"#,
        r#"{"users": [{"id": "u1", "email": "user1@exa"#,
        r#"{"code": 124, "message": "Invalid access token.", "users": []}"#,
    ] {
        let c = zoom_bearer(&answering(body, "").await);
        let e = c.list_accounts(ListRequest::first()).await.unwrap_err();
        assert!(
            matches!(
                e,
                ConnectorError::Protocol { .. } | ConnectorError::Transient { .. }
            ),
            "{body}: {e}"
        );
        let read = driver::read_all(c.as_ref(), &RateLimiter::unlimited(), &retry(), &opts()).await;
        match read {
            Err(_) => {}
            Ok(o) => {
                assert!(!o.complete, "{body}: a complete read");
                assert_eq!(deprovisions(&plan_for(o)), 0, "{body}");
            }
        }
    }
    // An empty directory is a complete, empty read.
    let c = zoom_bearer(&answering(r#"{"users": [], "next_page_token": ""}"#, "").await);
    let page = c.list_accounts(ListRequest::first()).await.unwrap();
    assert!(page.accounts.is_empty() && page.next.is_none());
}

/// A next-page link to another origin is refused: the credentials would
/// go with the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_origin_is_refused() {
    let body = r#"{"data": [{"account_id": "a1", "email": "a@example.com", "account_status": "active", "name": "A"}], "links": {"next": "https://evil.example/admin/v1/orgs/T1/users?cursor=x"}}"#;
    let url = answering(body, "").await;
    let s = ConnectorSettings::new(ConnectionId::new("atlassian"))
        .with_path("api")
        .with_base_url(url.trim_end_matches("/v2"))
        .with_secret(SecretString::new("t"))
        .with_option("org_id", "T1")
        .with_timeout(TIMEOUT);
    let c = registry::build(&record("atlassian"), &s).unwrap();
    let first = c.list_accounts(ListRequest::first()).await.unwrap();
    assert_eq!(first.accounts.len(), 1);
    let next = first.next.expect("a next page");
    let e = c.list_accounts(ListRequest::after(next)).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Protocol { detail } if detail.contains("another origin")),
        "{e}"
    );
}

/// The RFC 8288 `Link` header style, against a plain server: the next
/// page's URL comes from the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_header_paging_follows_rel_next() {
    let body = r#"{"users": [{"id": "u1", "email": "u1@example.com", "status": "active"}]}"#;
    let url = answering(
        body,
        "link: </v2/users?page=2>; rel=\"next\", </v2/users?page=1>; rel=\"first\"\r\n",
    )
    .await;
    let mut app = record("zoom");
    let rest = app.rest.as_mut().unwrap();
    rest.auth.kind = "bearer".into();
    rest.list.paging = roster_catalog::rest::RestPaging {
        style: "link-header".into(),
        param: None,
        next: None,
        has_more: None,
        size_param: None,
        total: None,
        start: None,
    };
    let s = ConnectorSettings::new(ConnectionId::new("zoom"))
        .with_path("api")
        .with_base_url(&url)
        .with_secret(SecretString::new("t"))
        .with_timeout(TIMEOUT);
    let c = registry::build(&app, &s).unwrap();
    let page = c.list_accounts(ListRequest::first()).await.unwrap();
    let next = page.next.expect("the Link header's next");
    assert!(next.as_str().ends_with("/v2/users?page=2"), "{next:?}");
    // The same page again (this server ignores the URL): the driver sees
    // the token repeat and calls the read incomplete.
    let o = driver::read_all(c.as_ref(), &RateLimiter::unlimited(), &retry(), &opts())
        .await
        .unwrap();
    assert!(!o.complete);
}

/// The probe (`roster apps probe` on the api path) is read-only and
/// reports auth, paging and rate-limit headers as seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_auth_paging_and_rate_limit_headers() {
    let sim = RestAppSim::start(
        RestAppConfig::new(Vendor::Zendesk)
            .with_seed(5)
            .with_rate_limits(vec![roster_sim::common::RateWindow {
                max_requests: 700,
                per: Duration::from_secs(60),
            }]),
    )
    .await
    .unwrap();
    let c = connector(&sim);
    let seen = c.probe().await.unwrap();
    let get = |f: &str| {
        seen.iter()
            .find(|o| o.field == f)
            .map(|o| o.value.clone())
            .unwrap_or_else(|| panic!("no {f} in {seen:?}"))
    };
    assert_eq!(get("probe.auth"), serde_json::json!(true));
    assert_eq!(get("pagination.method"), serde_json::json!("cursor"));
    let headers = get("rate_limits.header_names");
    assert!(
        headers
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "x-rate-limit-remaining"),
        "{headers}"
    );
    assert!(
        sim.handle().effects().is_empty(),
        "the probe changed something"
    );
    // Wrong credentials: the probe says so, as data.
    let mut s = settings(&sim);
    s.secret = Some(SecretString::new("wrong"));
    let c = registry::build(&record("zendesk"), &s).unwrap();
    let seen = c.probe().await.unwrap();
    assert_eq!(seen[0].field, "probe.auth");
    assert_eq!(seen[0].value, serde_json::json!(false));
}
