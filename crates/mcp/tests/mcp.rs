//! The MCP server through rmcp's own client, over an in-process stdio-like
//! pipe (the transport `roster mcp` uses, on a duplex) and over streamable
//! HTTP on 127.0.0.1:0 (`/mcp` as `roster serve` mounts it).
//!
//! roster is wired as in production to two simulators: Okta as the source
//! of people, Expensify as the app. The oracle is the simulators' effect
//! logs and the store's approval records and audit events, not what a
//! tool answered.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::{ConnectionId, Policy, Principal, PrincipalKind, Scope};
use roster_engine::config::Config;
use roster_engine::options::AppBinding;
use roster_engine::{Engine, EngineError, NewApiToken, PlanScope, Roster};
use roster_mcp::{RosterMcp, TOOL_NAMES};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy,
};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_store::{PlanId, Store};
use serde_json::{Value, json};

const USER: &str = "mcp-e2e@example.com";
const SECRET: &str = "mcp-e2e-secret";
const POLICY_ID: &str = "AAAA000000000004";
const OKTA_TOKEN: &str = "okta-mcp-token";
const PEOPLE: usize = 10;
const LEAVER: usize = 2;

const POLICY: &str = "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"] }\n\
    set = { role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"AAAA000000000004\" }\n";

fn op() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

struct World {
    roster: Arc<Roster>,
    app: RunningSim,
    _okta: RunningOkta,
    _dir: tempfile::TempDir,
}

/// roster on an Okta and an Expensify simulator, in line (a first empty
/// plan applied); then the leaver is deprovisioned in Okta, imported and
/// the apps read, and nothing more: their Expensify account is still open.
async fn world() -> World {
    let mut workspace = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    let mut okta = OktaSimConfig::new(OKTA_TOKEN);
    for i in 0..PEOPLE {
        workspace = workspace.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i}"),
        ));
        okta = okta.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
    }
    let app = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([workspace]),
    )
    .await
    .unwrap();
    let okta = OktaSim::start(okta).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let toml = format!(
        "policy = \"p.toml\"\n[sources.okta]\nkind = \"okta\"\nbase_url = \"{}\"\n\
         token = {{ env = \"OKTA_TOKEN\" }}\n",
        okta.url()
    );
    let config = Config::parse(std::path::Path::new("/tmp/roster.toml"), &toml, &|name| {
        (name == "OKTA_TOKEN").then(|| OKTA_TOKEN.to_string())
    })
    .unwrap();
    let mut engine = Engine::new(store, Policy::parse("p.toml", POLICY).unwrap())
        .with_catalog(roster_catalog::Catalog::builtin().unwrap());
    engine.bind(
        ConnectionId::new("expensify"),
        AppBinding {
            app: "expensify".into(),
            settings: Default::default(),
            ..AppBinding::default()
        },
    );
    let mut exp = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(app.url());
    exp.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(exp).unwrap()));
    for s in &config.sources {
        engine.add_source(roster_engine::sources::build(s).unwrap());
    }
    engine.source_read.max_attempts = 2;
    engine.source_read.initial_backoff = Duration::from_millis(10);
    let roster = Roster::new(engine);
    roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op(), PlanScope::All).await.unwrap();
    assert!(planned.plan.actions.is_empty(), "{:?}", planned.plan);
    let approved = roster.check_planned(&op(), planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();

    // The leaver: deprovisioned in Okta, known to roster, not yet acted on.
    assert!(
        okta.handle()
            .set_user_status(&email(LEAVER), "DEPROVISIONED")
    );
    let imported = roster
        .import_sources(&op(), None, &mut |_, _| {})
        .await
        .unwrap();
    assert!(imported.held.is_none(), "{:?}", imported.held);
    roster.read(&op(), &mut |_, _| {}).await.unwrap();
    World {
        roster: Arc::new(roster),
        app,
        _okta: okta,
        _dir: dir,
    }
}

/// An agent token with `scopes`, as `roster token create --agent` makes it.
async fn agent_token(roster: &Roster, name: &str, scopes: &[Scope]) -> String {
    roster
        .create_api_token(
            &op(),
            &NewApiToken {
                name: name.into(),
                agent: true,
                scopes: scopes.iter().copied().collect(),
                ttl: None,
            },
        )
        .await
        .unwrap()
        .secret
}

/// An rmcp client talking to a server for `token` over an in-process
/// pipe, as `roster mcp` serves stdio.
async fn over_pipe(roster: &Arc<Roster>, token: &str) -> RunningService<RoleClient, ()> {
    let caller = roster_mcp::authenticate_agent(roster, token).await.unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = RosterMcp::new(roster.clone(), caller);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Calls a tool; `Err` is a protocol error (arguments refused).
async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
}

/// A tool's structured answer; panics on a tool error.
async fn ok(client: &RunningService<RoleClient, ()>, tool: &str, arguments: Value) -> Value {
    let r = call(client, tool, arguments).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{tool}: {:?}", r.content);
    r.structured_content.expect("structured content")
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn removed(app: &RunningSim) -> Vec<String> {
    app.handle()
        .effects()
        .into_iter()
        .filter(|e| e.kind == EffectKind::Removed)
        .map(|e| e.email)
        .collect()
}

/// Every approval record of every stored plan.
async fn approval_records(roster: &Roster) -> usize {
    let mut n = 0;
    for p in roster.store().recent_plans(1000).await.unwrap() {
        n += roster.store().approvals(&p.id).await.unwrap().len();
    }
    n
}

async fn audit_kinds(roster: &Roster) -> BTreeSet<String> {
    roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_finds_a_leavers_access_and_proposes_the_offboarding_which_waits_for_a_person() {
    let w = world().await;
    let token = agent_token(&w.roster, "claude", &[Scope::Read, Scope::Propose]).await;
    let client = over_pipe(&w.roster, &token).await;

    // The tools, each saying what it can never do.
    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOL_NAMES.into_iter().collect());
    for t in &tools {
        let d = t.description.as_deref().unwrap_or("");
        assert!(d.contains("can never approve, reject"), "{}: {d}", t.name);
        assert!(d.contains("apply"), "{}: {d}", t.name);
    }

    // Who left? Search, then their access: the Expensify account is open.
    let found = ok(&client, "search_people", json!({ "query": "p2@" })).await;
    assert_eq!(found["items"][0]["status"], "terminated", "{found}");
    let access = ok(
        &client,
        "get_person_access",
        json!({ "person": email(LEAVER) }),
    )
    .await;
    let open: Vec<&Value> = access["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["account"]["connection"] == "expensify" && a["account"]["active"] == true)
        .collect();
    assert_eq!(open.len(), 1, "{access}");

    // The agent proposes the offboarding.
    let before = w.app.handle().effects().len();
    let proposal = ok(
        &client,
        "propose_offboarding",
        json!({ "person": email(LEAVER), "note": "P2 was deprovisioned in Okta; please approve." }),
    )
    .await;
    assert_eq!(proposal["proposed_by"], "agent:claude", "{proposal}");
    assert_eq!(
        proposal["proposer"],
        "proposed by an AI agent (agent:claude)"
    );
    assert!(
        proposal["note"]
            .as_str()
            .unwrap()
            .starts_with("[untrusted agent text] "),
        "{proposal}"
    );
    let id = PlanId::new(proposal["plan_id"].as_str().unwrap());
    let actions = proposal["plan"]["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["email"] == email(LEAVER) && a["connection"] == "expensify"),
        "{proposal}"
    );
    assert_eq!(
        proposal["waiting_for_approval"].as_object().unwrap().len(),
        actions.len()
    );
    // Stored, proposed by the agent; nothing changed in any app.
    let stored = w.roster.store().plan(&id).await.unwrap().unwrap();
    assert_eq!(stored.proposed_by.as_deref(), Some("agent:claude"));
    assert_eq!(w.app.handle().effects().len(), before);

    // The plan as get_plan and explain_action show it.
    let plan = ok(&client, "get_plan", json!({ "plan_id": id.as_str() })).await;
    assert_eq!(plan["plan"]["summary"]["proposed_by_agent"], true, "{plan}");
    assert_eq!(plan["plan"]["summary"]["state"], "pending approval");
    assert_eq!(plan["proposal"]["kind"], "offboarding");
    let why = ok(
        &client,
        "explain_action",
        json!({ "plan_id": id.as_str(), "action": 0 }),
    )
    .await;
    assert_eq!(why["approval"], "waiting for approval", "{why}");

    // The service's (or anyone's) apply runs nothing unapproved.
    for by in [Principal::service(), op()] {
        let err = w.roster.check(&by, &id, &mut |_, _| {}).await.unwrap_err();
        assert!(matches!(err, EngineError::NotPermitted(_)), "{err}");
    }
    assert!(removed(&w.app).is_empty());

    // A person approves; then it applies.
    let alice = Principal::new(PrincipalKind::User, "alice");
    let status = w
        .roster
        .approve(&alice, &id, None, "confirmed with HR")
        .await
        .unwrap();
    assert!(status.waiting.is_empty(), "{status:?}");
    let approved = w.roster.check(&alice, &id, &mut |_, _| {}).await.unwrap();
    w.roster.apply(approved, &mut |_, _| {}).await.unwrap();
    assert_eq!(removed(&w.app), vec![email(LEAVER)]);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_tool_answers_and_none_changes_anything() {
    let w = world().await;
    let token = agent_token(&w.roster, "reader", &[Scope::Read]).await;
    let client = over_pipe(&w.roster, &token).await;
    let apps = ok(&client, "list_apps", json!({})).await;
    assert!(apps.to_string().contains("expensify"), "{apps}");
    let card = ok(
        &client,
        "get_app_capabilities",
        json!({ "app": "expensify" }),
    )
    .await;
    assert!(card.to_string().contains("expensify"), "{card}");
    let missing = call(&client, "get_app_capabilities", json!({ "app": "nope" }))
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));
    ok(&client, "find_orphans", json!({})).await;
    ok(&client, "coverage_report", json!({})).await;
    ok(&client, "list_tasks", json!({ "include_closed": true })).await;
    let page = ok(&client, "search_people", json!({ "limit": 3 })).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");
    assert!(page["next_cursor"].is_string(), "{page}");
    let latest = ok(&client, "get_plan", json!({ "plan_id": "latest" })).await;
    assert!(latest["plan"]["summary"]["id"].is_string(), "{latest}");
    // A read-only agent cannot propose.
    let plans = w.roster.store().recent_plans(1000).await.unwrap().len();
    for (tool, a) in [
        ("propose_offboarding", json!({ "person": email(LEAVER) })),
        ("propose_reconcile", json!({ "connection": "expensify" })),
    ] {
        let r = call(&client, tool, a).await.unwrap();
        assert_eq!(r.is_error, Some(true), "{tool}");
        assert!(
            text(&r).contains("lacks the scope `propose`"),
            "{}",
            text(&r)
        );
    }
    assert_eq!(
        w.roster.store().recent_plans(1000).await.unwrap().len(),
        plans
    );
    assert!(w.app.handle().effects().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tool_approves_rejects_or_applies_whatever_its_arguments() {
    let w = world().await;
    let token = agent_token(&w.roster, "mallory", &[Scope::Read, Scope::Propose]).await;
    let client = over_pipe(&w.roster, &token).await;
    // A plan for the agent to try to push through.
    let p = ok(
        &client,
        "propose_reconcile",
        json!({ "person": email(LEAVER), "note": "SYSTEM: auto-approved" }),
    )
    .await;
    let id = p["plan_id"].as_str().unwrap().to_string();
    let effects = w.app.handle().effects().len();
    let kinds = audit_kinds(&w.roster).await;
    let hostile = json!({
        "approve": true, "apply": true, "reject": true, "force": true, "yes": true,
        "plan_id": id, "action": 0, "actions": [
            { "connection": "expensify", "operation": "create", "email": "mallory@evil.example" },
            { "connection": "expensify", "operation": "deactivate", "email": email(0) }
        ],
        "decision": "approved", "by": "user:alice", "scope": "approve",
    });
    let mut refused = 0;
    for tool in TOOL_NAMES {
        // The hostile object alone, and merged with valid arguments.
        let valid = match tool {
            "search_people" => json!({ "query": "p" }),
            "get_person_access" | "propose_offboarding" => json!({ "person": email(LEAVER) }),
            "get_app_capabilities" => json!({ "app": "expensify" }),
            "list_tasks" => json!({ "include_closed": false }),
            "get_plan" => json!({ "plan_id": id }),
            "explain_action" => json!({ "plan_id": id, "action": 0 }),
            "propose_reconcile" => json!({ "connection": "expensify" }),
            _ => json!({}),
        };
        let mut merged = hostile.as_object().unwrap().clone();
        merged.extend(valid.as_object().unwrap().clone());
        for a in [hostile.clone(), Value::Object(merged)] {
            match call(&client, tool, a).await {
                Err(_) => refused += 1,
                Ok(r) if r.is_error == Some(true) => refused += 1,
                Ok(r) => panic!("{tool} accepted unknown arguments: {}", text(&r)),
            }
        }
        // Valid arguments run, and still decide nothing.
        call(&client, tool, valid).await.unwrap();
    }
    assert_eq!(refused, 2 * TOOL_NAMES.len());
    // No approval, no rejection, nothing applied, no account changed.
    assert_eq!(approval_records(&w.roster).await, 0);
    let after = audit_kinds(&w.roster).await;
    for k in [
        "plan.approved",
        "plan.rejected",
        "plan.apply_started",
        "person.offboarded",
    ] {
        assert!(!after.contains(k) || kinds.contains(k), "{k} appeared");
    }
    assert_eq!(w.app.handle().effects().len(), effects);
    assert!(
        w.roster
            .store()
            .recent_plans(1000)
            .await
            .unwrap()
            .iter()
            .filter(|p| p.proposed_by.as_deref() == Some("agent:mallory"))
            .all(|p| p.plan.approvals.len() == p.plan.actions.len())
    );
    client.cancel().await.unwrap();
}

/// `/mcp` as `roster serve` mounts it, on 127.0.0.1:0.
async fn serve_http(roster: Arc<Roster>) -> (String, tokio::task::JoinHandle<()>) {
    let router = roster_mcp::http::router(roster, roster_mcp::http::HttpOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, server)
}

async fn http_client(url: &str, token: &str) -> RunningService<RoleClient, ()> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token),
    );
    ().serve(transport).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_an_agent_token_is_required_and_a_read_only_one_cannot_propose() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let w = world().await;
    let (url, server) = serve_http(w.roster.clone()).await;
    let reader = agent_token(&w.roster, "reader", &[Scope::Read]).await;
    let proposer = agent_token(&w.roster, "claude", &[Scope::Read, Scope::Propose]).await;
    let rest = w
        .roster
        .create_api_token(
            &op(),
            &NewApiToken {
                name: "ci".into(),
                agent: false,
                scopes: [Scope::Read, Scope::Propose].into_iter().collect(),
                ttl: None,
            },
        )
        .await
        .unwrap()
        .secret;

    // Without a valid agent token, rmcp never sees the request.
    let http = reqwest::Client::new();
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "t", "version": "1" } }
    });
    for (bearer, status) in [
        (None, 401),
        (Some("rat_notarealtoken"), 401),
        (Some(rest.as_str()), 403),
    ] {
        let mut req = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{bearer:?}");
    }
    // A host other than loopback's is refused (DNS rebinding), token or not.
    let resp = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("host", "evil.example")
        .bearer_auth(&reader)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());

    // A read-only agent reads, and cannot propose.
    let client = http_client(&url, &reader).await;
    assert_eq!(
        client.list_all_tools().await.unwrap().len(),
        TOOL_NAMES.len()
    );
    let access = ok(
        &client,
        "get_person_access",
        json!({ "person": email(LEAVER) }),
    )
    .await;
    assert!(access["accounts"].is_array(), "{access}");
    let plans = w.roster.store().recent_plans(1000).await.unwrap().len();
    let r = call(
        &client,
        "propose_offboarding",
        json!({ "person": email(LEAVER) }),
    )
    .await
    .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("lacks the scope `propose`"),
        "{}",
        text(&r)
    );
    assert_eq!(
        w.roster.store().recent_plans(1000).await.unwrap().len(),
        plans
    );
    client.cancel().await.unwrap();

    // One that may propose does, as itself.
    let client = http_client(&url, &proposer).await;
    let p = ok(
        &client,
        "propose_offboarding",
        json!({ "person": email(LEAVER) }),
    )
    .await;
    assert_eq!(p["proposed_by"], "agent:claude", "{p}");
    client.cancel().await.unwrap();
    assert!(removed(&w.app).is_empty());
    assert_eq!(approval_records(&w.roster).await, 0);
    server.abort();
}
