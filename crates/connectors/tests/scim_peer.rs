//! The SCIM connector against an independent SCIM server: PyPI
//! `scim2-server==0.8.3`, started on loopback from the workspace's Python
//! venv (`scripts/python-tools.sh` creates it). This checks the connector
//! against someone else's reading of RFC 7644, not only against our own
//! simulator. The verdicts come from the server's own answers to plain
//! HTTP requests, never from the connector.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roster_connectors::driver::{self, DriverOptions};
use roster_connectors::retry::RetryPolicy;
use roster_connectors::scim::{ENTERPRISE_SCHEMA, ScimConfig, ScimConnector};
use roster_connectors::{ActionResult, Connector, RateLimiter, SecretString};
use roster_core::{
    AccountKey, Action, AttributeChange, ConnectionId, Email, EmployeeId, Operation,
};
use serde_json::Value;

const TOKEN: &str = "peer-token";

/// A scim2-server process, killed when dropped.
struct Peer {
    child: Child,
    base: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_server() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/scim2-server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_peer() -> Peer {
    // reqwest is built without a bundled TLS provider; these tests use
    // plain HTTP, but building a client still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = venv_server();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/python-tools.sh (it installs scim2-server==0.8.3 into .venv)",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(&bin)
        .args([
            "--hostname",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--bearer-token",
            TOKEN,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scim2-server starts");
    let peer = Peer {
        child,
        base: format!("http://127.0.0.1:{port}/v2"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = client
            .get(format!("{}/ServiceProviderConfig", peer.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return peer;
        }
        assert!(
            Instant::now() < deadline,
            "scim2-server did not come up on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server's own record of a user, by plain HTTP.
async fn server_user(peer: &Peer, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/Users/{id}", peer.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn server_users(peer: &Peer) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/Users?count=1000", peer.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["Resources"].as_array().cloned().unwrap_or_default()
}

fn action(op: Operation, email: &str, key: Option<&str>, attrs: &[(&str, &str)]) -> Action {
    Action {
        connection: ConnectionId::new("peer"),
        operation: op,
        employee_id: Some(EmployeeId::new(format!(
            "E-{}",
            email.split('@').next().unwrap()
        ))),
        email: Email::parse(email).unwrap(),
        account: key.map(AccountKey::new),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        changes: Vec::new(),
        reason: "peer test".into(),
        cause: roster_core::Cause::default(),
    }
}

fn opts(page_size: Option<u32>) -> DriverOptions {
    DriverOptions {
        page_size,
        ..DriverOptions::default()
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_paging_against_scim2_server() {
    let peer = start_peer().await;
    let mut config = ScimConfig::new(
        ConnectionId::new("peer"),
        peer.base.clone(),
        SecretString::new(TOKEN),
    );
    config.timeout = Duration::from_secs(10);
    let c = ScimConnector::new(config).unwrap();
    let l = RateLimiter::unlimited();
    let v = c.validate().await.unwrap();
    assert!(v.ok(), "{v:?}");

    // Create five people.
    let creates: Vec<Action> = (0..5)
        .map(|i| {
            action(
                Operation::Create,
                &format!("Person{i}@Example.com"),
                None,
                &[
                    ("first_name", "Person"),
                    ("last_name", &format!("N{i}")),
                    ("department", "Sales"),
                ],
            )
        })
        .collect();
    let results = driver::apply_once(&c, creates, false, &l, &mut |_| {}).await;
    assert!(results.iter().all(ActionResult::is_applied), "{results:?}");
    let on_server = server_users(&peer).await;
    assert_eq!(on_server.len(), 5);
    assert!(on_server.iter().all(|u| u["active"] == true));
    assert!(
        on_server
            .iter()
            .any(|u| u[ENTERPRISE_SCHEMA]["employeeNumber"] == "E-Person3")
    );

    // A second create of the same userName is a conflict at the server and
    // a skip for roster.
    let again = driver::apply_once(
        &c,
        vec![action(Operation::Create, "person0@example.com", None, &[])],
        false,
        &l,
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&again[0], ActionResult::Skipped { .. }),
        "{again:?}"
    );
    assert_eq!(server_users(&peer).await.len(), 5);

    // Page through them two at a time.
    let o = driver::read_all(&c, &l, &retry(), &opts(Some(2)))
        .await
        .unwrap();
    assert!(o.complete, "{:?}", o.incomplete_reason);
    assert_eq!(o.accounts.len(), 5);
    let p3 = o
        .accounts
        .iter()
        .find(|a| a.email.as_ref().unwrap().normalized() == "person3@example.com")
        .unwrap();
    assert_eq!(p3.employee_id.as_ref().unwrap().as_str(), "E-Person3");
    assert_eq!(p3.attributes["department"], "Sales");
    let id = p3.key.as_str().to_string();

    // Lookup by userName, in another case.
    let found = c
        .find_by_user_name("PERSON3@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key.as_str(), id);

    // Move: department via the enterprise URN path (PATCH answered 204).
    let mut mv = action(
        Operation::Update,
        "person3@example.com",
        Some(&id),
        &[("department", "Finance")],
    );
    mv.changes = vec![AttributeChange {
        name: "department".into(),
        before: Some("Sales".into()),
        after: Some("Finance".into()),
    }];
    let r = driver::apply_once(&c, vec![mv], false, &l, &mut |_| {}).await;
    assert_eq!(r, vec![ActionResult::Applied]);
    assert_eq!(
        server_user(&peer, &id).await[ENTERPRISE_SCHEMA]["department"],
        "Finance"
    );

    // Leaver, then rehire; the ETags the server issues are honoured.
    let r = driver::apply_once(
        &c,
        vec![action(
            Operation::Deactivate,
            "person3@example.com",
            Some(&id),
            &[],
        )],
        false,
        &l,
        &mut |_| {},
    )
    .await;
    assert_eq!(r, vec![ActionResult::Applied]);
    assert_eq!(server_user(&peer, &id).await["active"], false);
    let o = driver::read_all(&c, &l, &retry(), &opts(Some(2)))
        .await
        .unwrap();
    assert!(o.accounts.iter().any(|a| a.key.as_str() == id && !a.active));
    let r = driver::apply_once(
        &c,
        vec![action(
            Operation::Reactivate,
            "person3@example.com",
            Some(&id),
            &[],
        )],
        false,
        &l,
        &mut |_| {},
    )
    .await;
    assert_eq!(r, vec![ActionResult::Applied]);
    assert_eq!(server_user(&peer, &id).await["active"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_by_scim2_server() {
    let peer = start_peer().await;
    let c = ScimConnector::new(ScimConfig::new(
        ConnectionId::new("peer"),
        peer.base.clone(),
        SecretString::new("not-the-token"),
    ))
    .unwrap();
    let v = c.validate().await.unwrap();
    assert!(!v.ok());
    assert_eq!(v.checks[0].name, "credentials");
    let e = c
        .list_accounts(roster_connectors::ListRequest::first())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CONN-0001");
}
