//! The Okta event hook endpoint: the verification challenge, the
//! shared-secret header (nothing happens without it), malformed bodies,
//! and dedupe by event uuid. What the engine does with the users a hook
//! names (re-reads them; a forged deactivation changes nothing) is tested
//! in `roster-engine`'s `tests/incremental.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use roster_engine::inbound::SourceEvents;
use roster_server::{HookState, OktaHook, hook_router};
use roster_store::ConnectionId;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "a-long-random-hook-secret-0123456789";

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<String>)>>);

impl SourceEvents for Recorder {
    fn people_named(&self, source: &ConnectionId, ids: Vec<String>) {
        self.0.lock().unwrap().push((source.to_string(), ids));
    }
}

fn router() -> (axum::Router, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let hook = OktaHook::new(ConnectionId::new("source.okta"), "X-Roster-Hook", SECRET).unwrap();
    let state = HookState::new(BTreeMap::from([("okta".to_string(), hook)]), rec.clone());
    (hook_router(state), rec)
}

async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ct,
    )
}

fn delivery(events: Value) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "eventId": "b5a188b9-5ece-4636-b041-482ffda96311",
        "data": { "events": events }
    })
}

fn event(uuid: &str, kind: &str, user: &str) -> Value {
    json!({
        "uuid": uuid,
        "published": "2026-12-07T04:00:00.000Z",
        "eventType": kind,
        "target": [
            { "id": user, "type": "User", "alternateId": "ann@acme.example" },
            { "id": "00gGROUP", "type": "UserGroup" }
        ]
    })
}

fn post(secret: Option<&str>, body: &Value) -> Request<Body> {
    let mut b = Request::post("/hooks/okta/okta").header("content-type", "application/json");
    if let Some(s) = secret {
        b = b.header("X-Roster-Hook", s);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn the_verification_challenge_is_answered_only_with_the_secret() {
    let (router, rec) = router();
    let challenge = |secret: Option<&str>| {
        let mut b = Request::get("/hooks/okta/okta")
            .header("X-Okta-Verification-Challenge", "cFBZSnVaTlJ4YVd2");
        if let Some(s) = secret {
            b = b.header("X-Roster-Hook", s);
        }
        b.body(Body::empty()).unwrap()
    };
    let (status, body, _) = send(&router, challenge(Some(SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "verification": "cFBZSnVaTlJ4YVd2" }));
    let (status, _, _) = send(&router, challenge(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&router, challenge(Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without the challenge header: a clear 400.
    let (status, body, ct) = send(
        &router,
        Request::get("/hooks/okta/okta")
            .header("X-Roster-Hook", SECRET)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct, "application/problem+json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("X-Okta-Verification-Challenge")
    );
    assert!(rec.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_the_secret_a_delivery_triggers_nothing() {
    let (router, rec) = router();
    let body = delivery(json!([event("u-1", "user.lifecycle.deactivate", "00u1")]));
    for secret in [
        None,
        Some("wrong"),
        Some(""),
        Some(&SECRET[..SECRET.len() - 1]),
    ] {
        let (status, problem, _) = send(&router, post(secret, &body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{secret:?}");
        // The answer never echoes the secret.
        assert!(!problem.to_string().contains(SECRET));
    }
    // Another source's name, or none configured: 404, nothing triggered.
    let req = Request::post("/hooks/okta/entra")
        .header("X-Roster-Hook", SECRET)
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(send(&router, req).await.0, StatusCode::NOT_FOUND);
    assert!(rec.0.lock().unwrap().is_empty());
    // The uuid was not remembered by the refused attempts: the real
    // delivery still counts.
    let (status, _, _) = send(&router, post(Some(SECRET), &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec![("source.okta".to_string(), vec!["00u1".to_string()])]
    );
}

#[tokio::test]
async fn a_delivery_names_its_users_once_and_repeats_are_deduped() {
    let (router, rec) = router();
    let body = delivery(json!([
        event("u-1", "user.lifecycle.deactivate", "00u1"),
        event("u-2", "user.account.lock", "00u2"),
        event("u-3", "group.user_membership.add", "00u1"),
        // Not a people event: names nobody.
        event("u-4", "application.lifecycle.update", "00u9"),
    ]));
    let (status, answer, _) = send(&router, post(Some(SECRET), &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({ "events": 4, "new": 4, "people": 2 }));
    // Okta re-delivers: the same events again name nobody new.
    let (status, answer, _) = send(&router, post(Some(SECRET), &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["new"], 0);
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "source.okta".to_string(),
            vec!["00u1".to_string(), "00u2".to_string()]
        )]
    );
}

#[tokio::test]
async fn malformed_deliveries_are_400_with_a_problem() {
    let (router, rec) = router();
    for (body, says) in [
        ("not json".to_string(), "not JSON"),
        (json!({ "data": {} }).to_string(), "data.events"),
        (json!([1, 2]).to_string(), "data.events"),
        (
            delivery(json!([{ "eventType": "user.lifecycle.deactivate" }])).to_string(),
            "uuid",
        ),
        (delivery(json!([{ "uuid": "x" }])).to_string(), "eventType"),
    ] {
        let req = Request::post("/hooks/okta/okta")
            .header("X-Roster-Hook", SECRET)
            .body(Body::from(body.clone()))
            .unwrap();
        let (status, problem, ct) = send(&router, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(problem["status"], 400);
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    assert!(rec.0.lock().unwrap().is_empty());
}
