//! The REST API end to end over HTTP on 127.0.0.1 against an Expensify
//! simulator, judged by the app itself: propose, approve with `If-Match`,
//! apply; a stale ETag (412) and none (428); separation of duties holding
//! for tokens as for people; a `propose`-only token that cannot change
//! anything in any app; a source change the guard holds withholding
//! deactivations from a plan made through the API exactly as from the
//! application layer the CLI calls; pages and problem details.

mod api_support;

use api_support::{Api, email, operator, people, policy, start};
use roster_core::{EmploymentStatus, FindingKind, Scope};
use roster_engine::PlanScope;
use serde_json::{Value, json};

async fn post(
    api: &Api,
    token: &str,
    path: &str,
    etag: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = api.http.post(api.url(path)).bearer_auth(token).json(&body);
    if let Some(e) = etag {
        req = req.header("If-Match", e);
    }
    req.send().await.unwrap()
}

async fn get(api: &Api, token: &str, path: &str) -> reqwest::Response {
    api.http
        .get(api.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn etag(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn propose_approve_with_if_match_apply_and_separation_of_duties() {
    // Every Expensify action needs approval, and nobody approves their own
    // plan.
    let api = start(&policy(
        "[approvals]\nseparation_of_duties = \"always\"\n[connections.expensify]\nsensitive = true",
    ))
    .await;
    let alice = api
        .token(
            "alice",
            &[Scope::Read, Scope::Propose, Scope::Approve, Scope::Apply],
        )
        .await;
    let bob = api.token("bob", &[Scope::Read, Scope::Approve]).await;

    let mut hr = people();
    hr[5].status = EmploymentStatus::Terminated;
    api.roster
        .import_people(&operator(), &hr, "hr")
        .await
        .unwrap();

    // Alice proposes (reading the apps first).
    let resp = post(
        &api,
        &alice,
        "/api/v1/plans",
        None,
        json!({"scope": "all", "read": true}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let first_etag = etag(&resp);
    let plan: Value = resp.json().await.unwrap();
    let id = plan["summary"]["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/plans/{id}"));
    assert_eq!(plan["summary"]["proposed_by"], "token:alice");
    assert_eq!(plan["summary"]["waiting_approval"], 1, "{plan}");
    assert_eq!(plan["summary"]["state"], "pending approval");

    // GET gives the same ETag.
    let resp = get(&api, &alice, &location).await;
    assert_eq!(etag(&resp), first_etag);

    // Alice may not approve her own plan.
    let approve = format!("/api/v1/plans/{id}/approve");
    let resp = post(
        &api,
        &alice,
        &approve,
        Some(&first_etag),
        json!({"reason": "mine"}),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "ENG-0008", "{body}");

    // Bob: no If-Match, a stale one, then the one he read.
    let resp = post(&api, &bob, &approve, None, json!({"reason": "ok"})).await;
    assert_eq!(resp.status(), 428);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "API-0006");
    let resp = post(
        &api,
        &bob,
        &approve,
        Some("\"not-the-version\""),
        json!({"reason": "ok"}),
    )
    .await;
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "API-0007");
    let resp = post(
        &api,
        &bob,
        &approve,
        Some(&first_etag),
        json!({"reason": ""}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(api.in_app(&email(5)), "nothing ran yet");
    let resp = post(
        &api,
        &bob,
        &approve,
        Some(&first_etag),
        json!({"reason": "left last week"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let approved_etag = etag(&resp);
    assert_ne!(approved_etag, first_etag);
    let plan: Value = resp.json().await.unwrap();
    assert_eq!(plan["summary"]["approved"], 1, "{plan}");

    // Applying with the ETag from before the approval: 412; nothing ran.
    let apply = format!("/api/v1/plans/{id}/apply");
    let resp = post(&api, &alice, &apply, Some(&first_etag), json!({})).await;
    assert_eq!(resp.status(), 412);
    assert!(api.in_app(&email(5)));
    // Bob may approve but not apply.
    let resp = post(&api, &bob, &apply, Some(&approved_etag), json!({})).await;
    assert_eq!(resp.status(), 403);
    assert!(api.in_app(&email(5)));
    let resp = post(&api, &alice, &apply, Some(&approved_etag), json!({})).await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["applied"]["expensify"], 1, "{report}");
    assert!(!api.in_app(&email(5)), "the approved removal ran");
    assert!(api.in_app(&email(4)));
    let plan: Value = get(&api, &alice, &location).await.json().await.unwrap();
    assert_eq!(plan["summary"]["state"], "applied", "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_propose_only_token_changes_nothing_and_a_held_source_change_holds_through_the_api() {
    let api = start(&policy("")).await;
    let carol = api.token("carol", &[Scope::Read, Scope::Propose]).await;
    let before = api.app_changes();

    // A leaver; Carol proposes, then tries everything that could act.
    let mut hr = people();
    hr[3].status = EmploymentStatus::Terminated;
    api.roster
        .import_people(&operator(), &hr, "hr")
        .await
        .unwrap();
    let resp = post(
        &api,
        &carol,
        "/api/v1/plans",
        None,
        json!({"scope": "all", "read": true}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let tag = etag(&resp);
    let plan: Value = resp.json().await.unwrap();
    let id = plan["summary"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        plan["plan"]["actions"].as_array().unwrap().len(),
        1,
        "{plan}"
    );
    for (path, body) in [
        (
            format!("/api/v1/plans/{id}/approve"),
            json!({"reason": "x"}),
        ),
        (format!("/api/v1/plans/{id}/apply"), json!({})),
        (
            format!("/api/v1/people/{}/offboard", email(4)),
            json!({"reason": "x"}),
        ),
        ("/api/v1/connections/expensify/pause".to_string(), json!({})),
        (
            "/api/v1/connections/expensify/resume".to_string(),
            json!({}),
        ),
    ] {
        let resp = post(&api, &carol, &path, Some(&tag), body).await;
        assert_eq!(resp.status(), 403, "{path}");
    }
    // A person plan too: proposed, nothing runs.
    let resp = post(
        &api,
        &carol,
        "/api/v1/plans",
        None,
        json!({"scope": "person", "person": email(7)}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(api.app_changes(), before, "a propose token changed an app");
    assert!(api.in_app(&email(3)) && api.in_app(&email(4)));

    // Three of twenty terminated at once: the source-change guard holds
    // their deactivations until a person confirms, for a plan made
    // through the API exactly as for one made by the application layer
    // (what `roster plan` calls).
    let mut hr = people();
    for i in [2, 5, 9] {
        hr[i].status = EmploymentStatus::Terminated;
    }
    let change = api
        .roster
        .import_people(&operator(), &hr, "hr")
        .await
        .unwrap();
    assert!(change.is_some());
    let resp = post(&api, &carol, "/api/v1/plans", None, json!({"scope": "all"})).await;
    assert_eq!(resp.status(), 201);
    let via_api: Value = resp.json().await.unwrap();
    let direct = api
        .roster
        .plan(&operator(), PlanScope::All)
        .await
        .unwrap()
        .plan;
    assert!(direct.actions.iter().all(|a| !a.operation.is_deprovision()));
    assert!(
        direct
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::SourceChange)
    );
    assert_eq!(
        via_api["plan"]["actions"],
        serde_json::to_value(&direct.actions).unwrap()
    );
    assert_eq!(
        via_api["plan"]["findings"],
        serde_json::to_value(&direct.findings).unwrap()
    );
    assert!(
        via_api["plan"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "source_change" || f["kind"] == "source-change"),
        "{}",
        via_api["plan"]["findings"]
    );
    assert_eq!(api.app_changes(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn people_pages_link_to_the_next_and_errors_are_problem_details() {
    let api = start(&policy("")).await;
    let reader = api.token("reader", &[Scope::Read]).await;

    // Twenty people, pages of seven, following Link headers.
    let mut url = api.url("/api/v1/people?q=acme&limit=7");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let resp = api
            .http
            .get(&url)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let link = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let page: Value = resp.json().await.unwrap();
        pages += 1;
        for p in page["items"].as_array().unwrap() {
            seen.push(p["employee_id"].as_str().unwrap().to_string());
        }
        match (link, page["next_cursor"].as_str()) {
            (Some(link), Some(cursor)) => {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(
                    link.contains("q=acme") && link.contains("limit=7"),
                    "{link}"
                );
                assert!(link.contains(cursor), "{link}");
                let target = link.trim_start_matches('<').split('>').next().unwrap();
                url = api.url(target);
            }
            (None, None) => break,
            other => panic!("Link and next_cursor disagree: {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..20).map(|i| format!("E{i:02}")).collect();
    assert_eq!(seen, expected);

    // One person, by address and by employee ID.
    let one: Value = get(&api, &reader, &format!("/api/v1/people/{}", email(3)))
        .await
        .json()
        .await
        .unwrap();
    let by_id: Value = get(&api, &reader, "/api/v1/people/E03")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, by_id);
    assert!(one.to_string().contains("expensify"), "{one}");

    // Problem details, with stable codes.
    for (path, status, code) in [
        ("/api/v1/people?cursor=%%%", 400, "ENG-0011"),
        ("/api/v1/people?limit=0", 400, "ENG-0011"),
        ("/api/v1/people?limit=many", 400, "API-0003"),
        ("/api/v1/people/nobody@acme.example", 404, "ENG-0009"),
        ("/api/v1/plans/no-such-plan", 404, "ENG-0002"),
        ("/api/v1/tasks/no-such-task", 404, "API-0010"),
        ("/api/v1/accounts?connection=nope", 404, "API-0010"),
        ("/api/v1/accounts", 400, "API-0003"),
        ("/api/v1/no-such-route", 404, "API-0004"),
        ("/api/v1/audit?since=yesterday-ish", 400, "API-0003"),
    ] {
        let resp = get(&api, &reader, path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"),
            "{path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}: {body}");
        assert_eq!(body["status"], status, "{path}");
        assert_eq!(body["type"], format!("urn:roster:error:{code}"), "{path}");
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{path}"
        );
    }
    // A method the route does not take, and a body that is not JSON.
    let resp = api
        .http
        .delete(api.url("/api/v1/people"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "API-0005");
    let proposer = api.token("proposer", &[Scope::Propose]).await;
    let resp = api
        .http
        .post(api.url("/api/v1/plans"))
        .bearer_auth(&proposer)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "API-0002");

    // The reference is served from the binary and names every route.
    let html = api
        .http
        .get(api.url("/api/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for route in roster_server::api::routes() {
        assert!(html.contains(route.path), "{}", route.path);
    }
    assert!(!html.contains("<script"), "no script in the reference");
}
