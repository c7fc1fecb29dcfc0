//! The SCIM gateway end to end, as an IdP uses it: Okta-shaped requests
//! create, update and deactivate a user on the `spendesk` connection (an
//! app with no SCIM and no write API). roster turns each push into intent
//! for that person, plans just them, and — Spendesk having no write API —
//! opens the JIT onboarding, the follow-up for what JIT does not set, and
//! the offboarding checklist, each within a second. The audit log shows
//! every step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_catalog::{Catalog, ConnectionSettings, CredentialKind};
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::{ConnectionId, Policy};
use roster_engine::Engine;
use roster_engine::human::AppBinding;
use roster_engine::inbound::EngineSink;
use roster_engine::service::{self, Event, ServiceOptions};
use roster_server::{ScimState, scim_router, tokens};
use roster_sim::spendesk::{SpendeskSim, SpendeskSimConfig};
use roster_store::{HumanTask, HumanTaskState, Store};
use serde_json::json;
use tokio::sync::watch;

const POLICY: &str = r#"
# Okta assigns Spendesk: whoever Okta pushes as active should have it.
[[rules]]
name = "okta-assigns-spendesk"
connection = "spendesk"
when = { "gateway.spendesk" = ["active"] }
set = { role = "requester" }
"#;

async fn wait_for_task(
    store: &Store,
    kind: &str,
    email: &str,
    since: Instant,
) -> (HumanTask, Duration) {
    loop {
        let tasks = store.human_tasks(&[]).await.unwrap();
        if let Some(t) = tasks
            .into_iter()
            .find(|t| t.kind == kind && t.subject_email.eq_ignore_ascii_case(email))
        {
            return (t, since.elapsed());
        }
        if since.elapsed() > Duration::from_secs(10) {
            let tasks = store.human_tasks(&[]).await.unwrap();
            let plan = store
                .latest_plan()
                .await
                .unwrap()
                .map(|p| roster_core::plan::render(&p.plan));
            let audit: Vec<String> = store
                .audit_since(0)
                .await
                .unwrap()
                .into_iter()
                .map(|r| format!("{} {} {}", r.kind, r.subject, r.data))
                .collect();
            panic!(
                "no {kind} task for {email}\ntasks: {tasks:#?}\nlatest plan: {plan:?}\naudit: {audit:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_pushes_to_the_gateway_become_spendesk_tasks_within_a_second() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spendesk = SpendeskSim::start(SpendeskSimConfig::new("key", "secret"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let mut engine = Engine::new(store.clone(), Policy::parse("p.toml", POLICY).unwrap())
        .with_catalog(Catalog::builtin().unwrap());
    engine.add_connector(
        registry::build(
            Catalog::builtin().unwrap().require("spendesk").unwrap(),
            &ConnectorSettings::new(ConnectionId::new("spendesk"))
                .with_path("api")
                .with_base_url(spendesk.url())
                .with_username("key")
                .with_secret(SecretString::new("secret")),
        )
        .unwrap(),
    );
    engine.bind(
        ConnectionId::new("spendesk"),
        AppBinding {
            app: "spendesk".into(),
            settings: ConnectionSettings::default()
                .with_idp("okta")
                .with_credential(CredentialKind::ApiClient),
            ..AppBinding::default()
        },
    );
    let engine = Arc::new(roster_engine::Roster::new(engine));

    // The service and the gateway, wired as `roster serve` wires them: the
    // engine's sink feeds the service's events directly.
    let (sink, events_tx, events_rx) = EngineSink::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let svc = tokio::spawn(service::run(
        engine.clone(),
        ServiceOptions {
            full_interval: Duration::from_secs(3600),
            hr_csv: None,
            auto_apply: true,
            ..ServiceOptions::default()
        },
        events_rx,
        stop_rx,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/scim/v2/spendesk", listener.local_addr().unwrap());
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(roster_server::serve(
        listener,
        scim_router(ScimState::new(store.clone(), sink)),
        async move {
            let _ = http_stop_rx.await;
        },
    ));
    let token = tokens::create_token(&store, "spendesk", "it-admin", 0)
        .await
        .unwrap()
        .token;
    let client = reqwest::Client::new();
    let scim = |req: reqwest::RequestBuilder| {
        req.bearer_auth(&token)
            .header("User-Agent", "Okta SCIM Client 1.0.0")
            .header("Content-Type", "application/scim+json")
    };
    // The first full run reads Spendesk (empty).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 1. Okta checks the user does not exist, then creates them.
    let r = scim(client.get(format!(
        "{base}/Users?filter=userName%20eq%20%22dana.lee%40acme.example%22&startIndex=1&count=100"
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["totalResults"],
        0
    );
    let t = Instant::now();
    let r = scim(client.post(format!("{base}/Users")))
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "dana.lee@acme.example",
                "name": {"givenName": "Dana", "familyName": "Lee"},
                "emails": [{"primary": true, "value": "dana.lee@acme.example", "type": "work"}],
                "displayName": "Dana Lee",
                "locale": "en-US",
                "externalId": "00u1dana",
                "groups": [],
                "password": "Hunter2-not-stored",
                "active": true
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (onboard, latency) =
        wait_for_task(&store, "jit-onboarding", "dana.lee@acme.example", t).await;
    eprintln!("push → JIT onboarding task in {latency:?}");
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert!(
        onboard
            .checklist
            .iter()
            .any(|s| s.contains("okta") || s.contains("Okta")),
        "{:?}",
        onboard.checklist
    );

    // 2. Dana signs in once (JIT creates the account with no role); the
    //    next read plans the follow-up JIT does not do.
    spendesk
        .handle()
        .jit_login("dana.lee@acme.example", "Dana", "Lee");
    events_tx.send(Event::Full).unwrap();
    let t = Instant::now();
    let (follow_up, _) = wait_for_task(&store, "update", "dana.lee@acme.example", t).await;
    assert!(
        follow_up
            .checklist
            .iter()
            .any(|s| s.contains("role") && s.contains("requester")),
        "{:?}",
        follow_up.checklist
    );
    let onboard = store.human_task(&onboard.id).await.unwrap().unwrap();
    assert_eq!(
        onboard.state,
        HumanTaskState::Verified,
        "the account appeared: onboarding verified"
    );

    // 3. An update push (Okta sends PUT of the whole user).
    let r = scim(client.put(format!("{base}/Users/{id}")))
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id,
                "userName": "dana.lee@acme.example",
                "name": {"givenName": "Dana", "familyName": "Lee-Smith"},
                "emails": [{"primary": true, "value": "dana.lee@acme.example", "type": "work"}],
                "active": true
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // 4. Okta deactivates (it never deletes): path-less PATCH active=false.
    let t = Instant::now();
    let r = scim(client.patch(format!("{base}/Users/{id}")))
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": false}}]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (offboard, latency) = wait_for_task(&store, "deactivate", "dana.lee@acme.example", t).await;
    eprintln!("deprovision push → offboarding task in {latency:?}");
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    let steps = offboard.checklist.join("\n");
    assert!(
        steps.contains("pending approvals") && steps.contains("Settings → Members"),
        "{steps}"
    );

    // The audit log tells the story.
    let kinds: Vec<(String, String)> = store
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.actor, r.kind))
        .collect();
    assert!(
        kinds.iter().any(|(a, _)| a.starts_with("scim:spendesk:")),
        "pushes are attributed: {kinds:?}"
    );
    for k in ["plan.created", "task.opened", "task.verified"] {
        assert!(
            kinds.iter().any(|(_, x)| x == k),
            "audit has {k}: {kinds:?}"
        );
    }
    store.verify_audit().await.unwrap();

    let _ = http_stop_tx.send(());
    http.await.unwrap().unwrap();
    stop_tx.send(true).unwrap();
    svc.await.unwrap().unwrap();
}
