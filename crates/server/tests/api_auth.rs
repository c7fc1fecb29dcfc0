//! Authorization of the REST API, enumerated from the one route table the
//! router is built from (`roster_server::api::routes`): for every route, no
//! token is 401, a token with every scope but the route's is 403 naming
//! that scope, the route's scope alone gets past the guard, and an agent's
//! token (whatever its record says) never passes an approve, apply,
//! offboard or admin route. The OpenAPI document declares the same scope
//! for every operation.

mod api_support;

use reqwest::Method;
use roster_core::Scope;
use roster_server::api::{PROBLEM_JSON, routes};
use serde_json::{Value, json};

fn concrete(path: &str) -> String {
    path.replace("{id}", "no-such-thing")
}

async fn send(
    api: &api_support::Api,
    route: &roster_server::api::Route,
    token: Option<&str>,
) -> reqwest::Response {
    let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
    let mut url = api.url(&concrete(route.path));
    if route.path == "/api/v1/accounts" {
        url.push_str("?connection=expensify");
    }
    let mut req = api.http.request(method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == Method::POST {
        req = req.json(&json!({ "reason": "auth test", "scope": "all" }));
    }
    req.send().await.unwrap()
}

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert!(ct.starts_with(PROBLEM_JSON), "{status} {ct} {body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_a_token_without_its_scope() {
    let api = api_support::start(&api_support::policy("")).await;
    let table = routes();
    assert!(table.len() >= 25, "{}", table.len());
    let changes = api.app_changes();

    // The agent's token: created as a person's with every scope, then
    // marked an agent's in the store (as a tampered record would be).
    let agent = api.token("claude", &Scope::ALL).await;
    let prefix: String = agent.chars().take(12).collect();
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&api.db)
            .connect()
            .await
            .unwrap();
        let n = sqlx::query("UPDATE api_token SET kind = 'agent' WHERE hash = ?")
            .bind(sha256_hex(&agent))
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1, "{prefix}");
    }

    for route in &table {
        let label = route.label();
        // No token; a malformed one; a token nobody issued.
        let (status, body) = problem(send(&api, route, None).await).await;
        assert_eq!(status, 401, "{label}: {body}");
        assert_eq!(body["code"], "API-0001", "{label}: {body}");
        let resp = send(&api, route, Some("rat_not-a-token")).await;
        assert!(resp.headers().get("www-authenticate").is_some(), "{label}");
        let (status, body) = problem(resp).await;
        assert_eq!(status, 401, "{label}: {body}");
        assert_eq!(body["code"], "ENG-0010", "{label}: {body}");

        // Every scope but the route's.
        let others: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| *s != route.scope)
            .collect();
        let token = api.token("everything-else", &others).await;
        let (status, body) = problem(send(&api, route, Some(&token)).await).await;
        assert_eq!(status, 403, "{label}: {body}");
        assert_eq!(body["code"], "ENG-0008", "{label}: {body}");
        assert_eq!(
            body["missing_scope"],
            route.scope.as_str(),
            "{label}: {body}"
        );

        // The route's scope alone gets past the guard (the handler may
        // then say the thing does not exist).
        let token = api.token("just-this", &[route.scope]).await;
        let (status, body) = problem(send(&api, route, Some(&token)).await).await;
        assert!(status != 401 && status != 403, "{label}: {status} {body}");

        // The agent's.
        let (status, body) = problem(send(&api, route, Some(&agent)).await).await;
        if route.scope.agent_may() {
            assert!(status != 401 && status != 403, "{label}: {status} {body}");
        } else {
            assert_eq!(status, 403, "{label}: agent got {status} {body}");
            assert_eq!(body["missing_scope"], route.scope.as_str(), "{label}");
        }
    }
    // None of it changed anything in the app.
    assert_eq!(api.app_changes(), changes);

    // The OpenAPI document has exactly these operations, each with its
    // scope as the bearer requirement and as x-roster-scope; it needs no
    // token.
    let doc: Value = api
        .http
        .get(api.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let route = table
                .iter()
                .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
            assert_eq!(
                op["x-roster-scope"],
                route.scope.as_str(),
                "{method} {path}"
            );
            assert_eq!(
                op["security"][0]["bearer"][0],
                route.scope.as_str(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(operations, table.len());
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
