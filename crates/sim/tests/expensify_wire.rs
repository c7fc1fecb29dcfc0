//! The Expensify simulator on the wire: what a raw HTTP client sees.

use std::time::Duration;

use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, seed_policies,
};
use serde_json::{Value, json};

const USER: &str = "u";
const SECRET: &str = "s";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn sim(config: ExpensifySimConfig) -> RunningSim {
    ExpensifySim::start(config.with_seed(2, 1)).await.unwrap()
}

fn creds() -> Value {
    json!({"partnerUserID": USER, "partnerUserSecret": SECRET})
}

/// Posts a job (and optional `data`); returns HTTP status, Retry-After and body.
async fn post(sim: &RunningSim, job: Value, data: Option<Value>) -> (u16, Option<String>, Value) {
    let mut form = vec![("requestJobDescription".to_string(), job.to_string())];
    if let Some(d) = data {
        form.push(("data".to_string(), d.to_string()));
    }
    let r = client().post(sim.url()).form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    (status, retry, body)
}

fn pid(i: usize) -> String {
    seed_policies(i + 1, 0)[i].id.clone()
}

fn employee(email: &str) -> Value {
    json!({"employeeEmail": email, "managerEmail": "m@example.com", "employeeID": email, "policyID": pid(0)})
}

fn update(extra: Value) -> Value {
    let mut job = json!({"type": "update", "credentials": creds(), "dataSource": "request",
        "inputSettings": {"type": "employees", "entity": "generic"}});
    if let (Some(j), Some(e)) = (job.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            j.insert(k.clone(), v.clone());
        }
    }
    job
}

#[tokio::test]
async fn validation_errors_are_http_200_with_body_codes() {
    let s = sim(ExpensifySimConfig::new(USER, SECRET).scaled(0.001)).await;
    let cases = [
        (
            json!({"credentials": creds(), "inputSettings": {"type": "policyList"}}),
            410,
            "type",
        ),
        (
            json!({"type": "get", "credentials": creds()}),
            410,
            "inputSettings",
        ),
        (
            json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policy", "fields": ["employees"]}}),
            410,
            "policyIDList",
        ),
        (
            json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policy", "policyIDList": [pid(0)]}}),
            410,
            "fields",
        ),
        (
            json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policy", "policyIDList": ["NOPE"], "fields": ["employees"]}}),
            404,
            "NOPE",
        ),
        (update(json!({})), 410, "Invalid input data"),
        (
            json!({"type": "get", "credentials": {"partnerUserID": USER, "partnerUserSecret": "bad"}, "inputSettings": {"type": "policyList"}}),
            401,
            "credentials",
        ),
    ];
    for (job, code, needle) in cases {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let (status, _, body) = post(&s, job.clone(), None).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(body["responseCode"], code, "{job}: {body}");
        let msg = body["responseMessage"].as_str().unwrap();
        assert!(msg.contains(needle), "{job}: {msg}");
    }
    assert_eq!(s.counters().unauthorized, 1);
}

#[tokio::test]
async fn all_three_feed_shapes_are_accepted() {
    let s = sim(ExpensifySimConfig::new(USER, SECRET).scaled(0.001)).await;
    let (_, _, b) = post(
        &s,
        update(json!({})),
        Some(json!([employee("a@example.com")])),
    )
    .await;
    assert_eq!(b["updatedEmployeesCount"], 1, "{b}");
    let (_, _, b) = post(
        &s,
        update(json!({})),
        Some(json!({"Employees": [employee("b@example.com")]})),
    )
    .await;
    assert_eq!(
        b["diff"]["diffToAdd"][pid(0)],
        json!(["b@example.com"]),
        "{b}"
    );
    // The Okta guide's form: data inside inputSettings.
    let mut job = update(json!({}));
    job["inputSettings"]["data"] = json!([employee("c@example.com")]);
    let (_, _, b) = post(&s, job, None).await;
    assert_eq!(b["responseCode"], 200, "{b}");
    // Dry run as a string flag, termination as a string flag.
    let mut gone = employee("a@example.com");
    gone["isTerminated"] = json!("true");
    let (_, _, b) = post(
        &s,
        update(json!({"dry-run": true})),
        Some(json!([gone.clone()])),
    )
    .await;
    assert_eq!(
        (
            b["dry-run"].clone(),
            b["diff"]["diffToRemove"][pid(0)].clone()
        ),
        (json!(true), json!(["a@example.com"]))
    );
    assert!(
        s.employee(&pid(0), "a@example.com").is_some(),
        "dry run changed nothing"
    );
    let (_, _, b) = post(&s, update(json!({})), Some(json!([gone]))).await;
    assert_eq!(b["updatedEmployeesCount"], 1);
    let kinds: Vec<EffectKind> = s.effects().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EffectKind::Added,
            EffectKind::Added,
            EffectKind::Added,
            EffectKind::Removed
        ]
    );
}

#[tokio::test]
async fn reads_have_the_documented_shape() {
    let s = sim(ExpensifySimConfig::new(USER, SECRET)).await;
    let (_, _, b) = post(
        &s,
        json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policyList"}}),
        None,
    )
    .await;
    let first = &b["policyList"][0];
    for key in ["id", "name", "owner", "role", "type", "outputCurrency"] {
        assert!(
            first.get(key).is_some(),
            "policyList entry lacks {key}: {first}"
        );
    }
    let (_, _, b) = post(
        &s,
        json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policy", "policyIDList": [pid(1)], "fields": ["employees"]}}),
        None,
    )
    .await;
    let e = &b["policyInfo"][pid(1)]["employees"][0];
    for key in [
        "email",
        "role",
        "submitsTo",
        "employeeID",
        "forwardsTo",
        "overLimitForwardsTo",
        "customField1",
        "customField2",
        "firstName",
        "lastName",
    ] {
        assert!(e.get(key).is_some(), "employee lacks {key}: {e}");
    }
    assert_eq!(e["email"], "p1-e0@example.com");
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_counted() {
    // Real windows: the sixth request within 10 s is refused.
    let s = sim(ExpensifySimConfig::new(USER, SECRET)).await;
    let job =
        json!({"type": "get", "credentials": creds(), "inputSettings": {"type": "policyList"}});
    for _ in 0..5 {
        assert_eq!(post(&s, job.clone(), None).await.0, 200);
    }
    let (status, retry, body) = post(&s, job.clone(), None).await;
    assert_eq!(status, 429);
    assert_eq!(body["responseCode"], 429);
    let secs: u64 = retry.expect("Retry-After header").parse().unwrap();
    assert!((1..=10).contains(&secs), "{secs}");
    // Limits are per partnerUserID: another caller is not held back (and
    // is refused for its credentials, not the limit).
    let other = json!({"type": "get", "credentials": {"partnerUserID": "x", "partnerUserSecret": "y"}, "inputSettings": {"type": "policyList"}});
    let (status, _, body) = post(&s, other, None).await;
    assert_eq!((status, body["responseCode"].clone()), (200, json!(401)));
    let c = s.counters();
    assert_eq!((c.requests, c.rate_limit_violations), (7, 1));
}
