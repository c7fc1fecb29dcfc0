//! The inbound edge with the engine behind it, no binary in between: the
//! SCIM server's sink is the engine's (`EngineSink`), pushes land in the
//! service's event path, and what the gateway pushes is planned from the
//! typed intent the server stored with each user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use roster_connectors::{
    ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError, ListRequest,
    OperationSupport, Page, Validation,
};
use roster_core::{
    Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus, Operation, Person,
    Plan, Policy,
};
use roster_engine::PersonRef;
use roster_engine::service::{self, ServiceOptions};
use roster_engine::{Engine, PlanScope, Roster};
use roster_server::{EngineSink, InboundSink, NullSink, ScimState, scim_router, serve, tokens};
use roster_store::{GatewayStatus, Store};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// An app roster can read but never write.
struct ReadOnly {
    id: ConnectionId,
    accounts: Vec<Account>,
}

#[async_trait]
impl Connector for ReadOnly {
    fn id(&self) -> &ConnectionId {
        &self.id
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with(Operation::Read, OperationSupport::supported(1000))
    }
    async fn validate(&self) -> Result<Validation, ConnectorError> {
        Ok(Validation::new(Vec::new()))
    }
    async fn list_accounts(&self, _req: ListRequest) -> Result<Page, ConnectorError> {
        Ok(Page::new(self.accounts.clone(), None))
    }
    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: req
                .actions
                .first()
                .map(|a| a.operation)
                .unwrap_or(Operation::Create),
        })
    }
}

fn account(connection: &str, email: &str) -> Account {
    Account {
        connection: ConnectionId::new(connection),
        key: AccountKey::new(format!("{connection}-{email}")),
        email: Some(Email::parse(email).unwrap()),
        employee_id: None,
        active: true,
        attributes: Default::default(),
    }
}

fn hr_person(id: &str, email: &str) -> Person {
    Person {
        employee_id: EmployeeId::new(id),
        email: Email::parse(email).unwrap(),
        aliases: vec![],
        first_name: "Alice".into(),
        last_name: "Test".into(),
        department: "Finance".into(),
        cost_center: "CC-1".into(),
        manager_email: None,
        status: EmploymentStatus::Active,
        start_date: None,
        end_date: None,
        groups: vec![],
        attributes: Default::default(),
    }
}

/// A SCIM server for connection `spendesk` on loopback, with `sink`.
struct Gateway {
    base: String,
    token: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    async fn start(store: &Store, sink: Arc<dyn InboundSink>) -> Gateway {
        let token = tokens::create_token(store, "spendesk", "it-admin", 0)
            .await
            .unwrap()
            .token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/scim/v2/spendesk", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            scim_router(ScimState::new(store.clone(), sink)),
            async move {
                let _ = stopped.await;
            },
        ));
        Gateway {
            base,
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            stop: Some(stop),
            task,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/scim+json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create_user(&self, user_name: &str, active: bool) -> String {
        let v = self
            .send(
                reqwest::Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "name": {"givenName": "Dana", "familyName": "Lee"},
                    "emails": [{"value": user_name, "primary": true}],
                    "externalId": "00u-1",
                    "active": active
                })),
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    async fn set_active(&self, id: &str, active: bool) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": active}}]
            })),
        )
        .await;
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn open_store(dir: &tempfile::TempDir) -> Store {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap()
}

const GATEWAY_POLICY: &str = r#"
[[rules]]
name = "everyone-expensify"
connection = "expensify"

[[rules]]
name = "okta-assigns-spendesk"
connection = "spendesk"
when = { "gateway.spendesk" = ["active"] }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_push_reaches_the_services_event_path_through_the_engine_sink() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let mut engine = Engine::new(
        store.clone(),
        Policy::parse("p.toml", GATEWAY_POLICY).unwrap(),
    );
    for c in ["expensify", "spendesk"] {
        engine.add_connector(Arc::new(ReadOnly {
            id: ConnectionId::new(c),
            accounts: Vec::new(),
        }));
    }
    let engine = Arc::new(Roster::new(engine));
    // The engine's sink, the service draining its events: nothing else.
    let (sink, _events, events_rx) = EngineSink::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let svc = tokio::spawn(service::run(
        engine.clone(),
        ServiceOptions {
            // Only the first tick runs in this test: any later plan came
            // from an event.
            full_interval: Duration::from_secs(3600),
            hr_csv: None,
            auto_apply: false,
            ..ServiceOptions::default()
        },
        events_rx,
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(p) = store.latest_plan().await.unwrap() {
            break p.id;
        }
        assert!(Instant::now() < deadline, "no first full run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let gateway = Gateway::start(&store, sink).await;
    gateway.create_user("dana.lee@acme.example", true).await;

    let planned = loop {
        if let Some(p) = store.latest_plan().await.unwrap()
            && p.id != first
        {
            break p.plan;
        }
        assert!(
            Instant::now() < deadline,
            "the push never reached the service"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let actions: Vec<(&str, Operation, &str)> = planned
        .actions
        .iter()
        .map(|a| (a.connection.as_str(), a.operation, a.email.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![("spendesk", Operation::Create, "dana.lee@acme.example")],
        "one person planned, from the push: {}",
        roster_core::plan::render(&planned)
    );
    gateway.stop().await;
    stop_tx.send(true).unwrap();
    svc.await.unwrap().unwrap();
}

fn actions(plan: &Plan) -> Vec<(String, Operation, String)> {
    let mut v: Vec<(String, Operation, String)> = plan
        .actions
        .iter()
        .map(|a| (a.connection.to_string(), a.operation, a.email.to_string()))
        .collect();
    v.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    v
}

/// Alice is active in HR and has Expensify and Spendesk. Okta deprovisions
/// her from Spendesk: the plan withdraws Spendesk, and only Spendesk, as
/// it did when the fold parsed the pushed JSON; a policy that does not ask
/// the gateway removes nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_deactivation_push_for_someone_active_in_hr_removes_only_what_it_did_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let mut engine = Engine::new(
        store.clone(),
        Policy::parse("p.toml", GATEWAY_POLICY).unwrap(),
    );
    for c in ["expensify", "spendesk"] {
        engine.add_connector(Arc::new(ReadOnly {
            id: ConnectionId::new(c),
            accounts: vec![account(c, "alice@acme.example")],
        }));
    }
    let roster = Roster::new(engine);
    let hr = roster_core::Principal::service();
    roster
        .import_people(&hr, &[hr_person("E1", "alice@acme.example")], "hr")
        .await
        .unwrap();
    roster.read(&hr, &mut |_, _| {}).await.unwrap();
    let gateway = Gateway::start(&store, Arc::new(NullSink)).await;
    let alice = PersonRef::Email(Email::parse("alice@acme.example").unwrap());

    // Okta assigns Spendesk: nothing to do, she has both.
    let id = gateway.create_user("Alice@Acme.example", true).await;
    let plan = roster.preview(&PlanScope::All).await.unwrap();
    assert!(
        plan.actions.is_empty(),
        "{}",
        roster_core::plan::render(&plan)
    );

    // Okta deprovisions: the typed intent says inactive.
    gateway.set_active(&id, false).await;
    let stored = store
        .gateway_intents("spendesk", std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(stored[0].status, GatewayStatus::Inactive);
    let only_spendesk = vec![(
        "spendesk".to_string(),
        Operation::Deactivate,
        "alice@acme.example".to_string(),
    )];
    let plan = roster.preview(&PlanScope::All).await.unwrap();
    assert_eq!(
        actions(&plan),
        only_spendesk,
        "{}",
        roster_core::plan::render(&plan)
    );
    // The targeted run (a push event) plans the same.
    let one = roster
        .preview(&PlanScope::Person(alice.clone()))
        .await
        .unwrap();
    assert_eq!(actions(&one), only_spendesk);

    // A policy that does not ask the gateway: a deprovision push removes
    // nothing (HR still has her).
    let plain = Policy::parse(
        "p.toml",
        r#"
[[rules]]
name = "everyone-expensify"
connection = "expensify"

[[rules]]
name = "everyone-spendesk"
connection = "spendesk"
"#,
    )
    .unwrap();
    let plain = Roster::new(Engine::new(store.clone(), plain));
    let plan = plain.preview(&PlanScope::All).await.unwrap();
    assert!(
        plan.actions.is_empty(),
        "{}",
        roster_core::plan::render(&plan)
    );
    let one = plain
        .preview(&PlanScope::Person(alice.clone()))
        .await
        .unwrap();
    assert!(
        one.actions.is_empty(),
        "{}",
        roster_core::plan::render(&one)
    );

    // Entra-style delete: the gateway no longer speaks for her, as when
    // the deleted resource was simply gone. Spendesk is withdrawn (the
    // rule asks for an active push), Expensify stays.
    gateway
        .http
        .delete(format!("{}/Users/{id}", gateway.base))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let stored = store
        .gateway_intents("spendesk", std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(stored[0].status, GatewayStatus::Deleted);
    let plan = roster.preview(&PlanScope::All).await.unwrap();
    assert_eq!(
        actions(&plan),
        only_spendesk,
        "{}",
        roster_core::plan::render(&plan)
    );
    let one = roster
        .preview(&PlanScope::Person(alice.clone()))
        .await
        .unwrap();
    assert_eq!(actions(&one), only_spendesk);
    gateway.stop().await;
}

/// Group pushes reach the typed intent: membership and renames change the
/// names the fold sees, with no re-parse.
#[tokio::test(flavor = "multi_thread")]
async fn group_pushes_update_the_typed_intent_of_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let gateway = Gateway::start(&store, Arc::new(NullSink)).await;
    let id = gateway.create_user("dana.lee@acme.example", true).await;
    let g = gateway
        .send(
            reqwest::Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Finance",
                "members": [{"value": id}]
            })),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let groups = |store: Store, id: String| async move {
        store.gateway_intents("spendesk", &[id]).await.unwrap()[0]
            .groups
            .clone()
    };
    assert_eq!(groups(store.clone(), id.clone()).await, ["Finance"]);
    gateway
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"displayName": "Treasury"}}]
            })),
        )
        .await;
    assert_eq!(groups(store.clone(), id.clone()).await, ["Treasury"]);
    gateway
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]
            })),
        )
        .await;
    assert!(groups(store.clone(), id.clone()).await.is_empty());
    // Bulk writes carry intent too.
    let v = gateway
        .send(
            reqwest::Method::POST,
            "/Bulk",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{
                    "method": "POST", "path": "/Users", "bulkId": "b1",
                    "data": {
                        "userName": "bulk@acme.example",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                            {"employeeNumber": "E-77"}
                    }
                }]
            })),
        )
        .await;
    let loc = v["Operations"][0]["location"].as_str().unwrap();
    let bid = loc.rsplit('/').next().unwrap().to_string();
    let row = store.gateway_intents("spendesk", &[bid]).await.unwrap();
    assert_eq!(row[0].employee_number.as_deref(), Some("E-77"));
    gateway.stop().await;
}
