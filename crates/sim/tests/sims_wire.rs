//! The SCIM, BILL S&E, Spendesk and Okta simulators on the wire: the
//! documented contract a client sees, checked with plain HTTP.

use std::time::Duration;

use reqwest::StatusCode;
use roster_sim::bill_spend::{BillSim, BillSimConfig};
use roster_sim::common::{EffectKind, Fault};
use roster_sim::okta::{OktaApp, OktaSim, OktaSimConfig, OktaUser};
use roster_sim::scim_app::{ENTERPRISE_SCHEMA, ERROR_SCHEMA, ScimSim, ScimSimConfig, user_json};
use roster_sim::spendesk::{SpendeskSim, SpendeskSimConfig};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

mod scim {
    use super::*;

    #[tokio::test]
    async fn users_crud_paging_filters_and_etags() {
        let sim = ScimSim::start(ScimSimConfig::new("t").with_seed(5))
            .await
            .unwrap();
        let c = client();
        let url = sim.url();

        // Bad token: 401 with the SCIM error body, status as a string.
        let r = c
            .get(format!("{url}/Users"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["content-type"], "application/scim+json");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["schemas"][0], ERROR_SCHEMA);
        assert_eq!(e["status"], "401");

        // Create, then a duplicate in another case: 409 uniqueness.
        let body = user_json("New@Example.com", "New", "User", Some("E9"));
        let r = c
            .post(format!("{url}/Users"))
            .bearer_auth("t")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .contains("/scim/v2/Users/")
        );
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["meta"]["version"], etag.as_str());
        let dup = user_json("new@example.COM", "X", "Y", None);
        let r = c
            .post(format!("{url}/Users"))
            .bearer_auth("t")
            .json(&dup)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(r.json::<Value>().await.unwrap()["scimType"], "uniqueness");

        // Filter in another case; unknown user → empty list, not 404.
        let q = |f: &str| {
            c.get(format!("{url}/Users"))
                .bearer_auth("t")
                .query(&[("filter", f.to_string())])
        };
        let v: Value = q(r#"userName eq "NEW@example.com""#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["totalResults"], 1);
        assert_eq!(v["Resources"][0]["id"], id.as_str());
        let v: Value = q(r#"userName eq "ghost@example.com""#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["totalResults"], 0);
        let r = q(r#"userName sw "x""#).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json::<Value>().await.unwrap()["scimType"],
            "invalidFilter"
        );

        // Paging: 1-based, stable, integers; attributes narrows.
        let page = |start: u32| {
            c.get(format!("{url}/Users")).bearer_auth("t").query(&[
                ("startIndex", start.to_string()),
                ("count", "2".into()),
                ("attributes", "userName".into()),
            ])
        };
        let p1: Value = page(1).send().await.unwrap().json().await.unwrap();
        let p3: Value = page(5).send().await.unwrap().json().await.unwrap();
        assert_eq!(p1["totalResults"], 6);
        assert_eq!(p1["itemsPerPage"], 2);
        assert_eq!(p1["Resources"][0]["userName"], "user0@example.com");
        assert!(p1["Resources"][0].get("name").is_none());
        assert_eq!(p3["Resources"][1]["userName"], "New@Example.com");

        // PATCH with a stale If-Match: 412; with the right one: applied.
        let patch = json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        let r = c
            .patch(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .header("If-Match", "W/\"99\"")
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(sim.user(&id).unwrap()["active"], true);
        let r = c
            .patch(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .header("If-Match", &etag)
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
        // Inactive users are still listed and fetched.
        let r = c
            .get(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // If-None-Match with the current version: 304.
        let now = r.headers()["etag"].to_str().unwrap().to_string();
        let r = c
            .get(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .header("If-None-Match", &now)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        // PUT replaces; DELETE removes for good.
        let mut put = user_json("New@Example.com", "Newer", "User", Some("E9"));
        put[ENTERPRISE_SCHEMA]["department"] = json!("Ops");
        let r = c
            .put(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .json(&put)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(sim.user(&id).unwrap()["active"], true);
        let r = c
            .delete(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = c
            .get(format!("{url}/Users/{id}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "404");

        let kinds: Vec<&str> = sim.effects().iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "created",
                "deactivated",
                "updated",
                "reactivated",
                "deleted"
            ]
        );
        // The discovery endpoints answer.
        let spc: Value = c
            .get(format!("{url}/ServiceProviderConfig"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(spc["etag"]["supported"], true);
    }

    #[tokio::test]
    async fn faults_are_scheduled_per_request() {
        let sim = ScimSim::start(ScimSimConfig::new("t").with_seed(1))
            .await
            .unwrap();
        let c = client();
        let get = || {
            c.get(format!("{}/Users", sim.url()))
                .bearer_auth("t")
                .send()
        };
        sim.schedule_faults([
            Fault::RateLimitStorm {
                retry_after_secs: Some(3),
            },
            Fault::RateLimitStorm {
                retry_after_secs: None,
            },
            Fault::ErrorIn200,
            Fault::DropConnection,
            Fault::TruncatedBody,
        ]);
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "3");
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().get("retry-after").is_none());
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["schemas"][0], ERROR_SCHEMA);
        let dropped = match get().await {
            Err(_) => true,
            Ok(r) => r.bytes().await.is_err(),
        };
        assert!(dropped, "the connection was cut");
        let r = get().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
        assert!(
            get().await.unwrap().json::<Value>().await.is_ok(),
            "back to normal"
        );
        let counters = sim.counters();
        assert_eq!(counters.faulted, 5);
        assert_eq!(counters.requests, 6);
        assert_eq!(counters.rate_limit_violations, 0);
    }
}

mod bill {
    use super::*;

    #[tokio::test]
    async fn spend_users_contract() {
        let sim = BillSim::start(BillSimConfig::new("tok").with_seed(25))
            .await
            .unwrap();
        let c = client();
        let url = format!("{}/v3/spend/users", sim.url());
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let list =
            |q: Vec<(&'static str, String)>| c.get(&url).header("apiToken", "tok").query(&q).send();
        // Default page 20, then the rest through nextPage.
        let p1: Value = list(vec![]).await.unwrap().json().await.unwrap();
        assert_eq!(p1["results"].as_array().unwrap().len(), 20);
        let next = p1["nextPage"].as_str().unwrap().to_string();
        let p2: Value = list(vec![("nextPage", next)])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p2["results"].as_array().unwrap().len(), 5);
        assert!(p2["nextPage"].is_null());
        for bad in ["0", "101", "x"] {
            let r = list(vec![("max", bad.to_string())]).await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "max={bad}");
        }
        // Create: role validated; duplicates refused.
        let post = |b: Value| c.post(&url).header("apiToken", "tok").json(&b).send();
        let r = post(json!({"firstName":"A","lastName":"B","email":"a@x.com","role":"OWNER"}))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = post(json!({"firstName":"A","lastName":"B","email":"a@x.com","role":"ADMIN"}))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = post(json!({"firstName":"A","lastName":"B","email":"A@x.com","role":"ADMIN"}))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        // Retire: gone from the default list, present with the filter.
        let r = c
            .delete(format!("{url}/{id}"))
            .header("apiToken", "tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let retired: Value = list(vec![("filters", "retired:eq:true".into())])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(retired["results"].as_array().unwrap().len(), 1);
        assert_eq!(retired["results"][0]["id"], id.as_str());
        let r = c
            .get(format!("{url}/nope"))
            .header("apiToken", "tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(sim.effects().last().unwrap().kind, EffectKind::Deactivated);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fourth_concurrent_request_is_refused() {
        let sim =
            BillSim::start(BillSimConfig::new("tok").with_latency(Duration::from_millis(150)))
                .await
                .unwrap();
        let c = client();
        let url = format!("{}/v3/spend/users", sim.url());
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (c, url) = (c.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                c.get(&url)
                    .header("apiToken", "tok")
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
                .count(),
            1,
            "{statuses:?}"
        );
        let counters = sim.counters();
        assert_eq!(counters.concurrency_violations, 1);
        assert_eq!(counters.max_in_flight, 3);
    }
}

mod spendesk {
    use super::*;

    #[tokio::test]
    async fn token_exchange_expiry_and_cursor_paging() {
        let sim = SpendeskSim::start(
            SpendeskSimConfig::new("id", "secret")
                .with_seed(3)
                .with_token_ttl(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let c = client();
        let token_url = format!("{}/auth/token", sim.url());
        let r = c
            .post(&token_url)
            .basic_auth("id", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let t: Value = c
            .post(&token_url)
            .basic_auth("id", Some("secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["access_token"].as_str().unwrap().to_string();
        let users = format!("{}/users", sim.url());
        let p1: Value = c
            .get(&users)
            .bearer_auth(&token)
            .query(&[("limit", "2")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p1["data"].as_array().unwrap().len(), 2);
        let cursor = p1["meta"]["nextCursor"].as_str().unwrap().to_string();
        let p2: Value = c
            .get(&users)
            .bearer_auth(&token)
            .query(&[("limit", "2"), ("cursor", cursor.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p2["data"].as_array().unwrap().len(), 1);
        assert!(p2["meta"]["nextCursor"].is_null());
        assert_eq!(p2["data"][0]["status"], "active");
        // No write endpoint exists.
        let r = c
            .post(&users)
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let r = c.get(&users).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // The console: JIT creates a bare member; the human deactivates.
        let m = sim.jit_login("new@example.com", "New", "Person");
        assert!(m.role.is_none() && m.team.is_none() && m.approval_policy.is_none());
        assert!(sim.deactivate_by_hand("new@example.com"));
        assert_eq!(sim.member("new@example.com").unwrap().status, "deactivated");
    }
}

mod okta {
    use super::*;

    #[tokio::test]
    async fn users_paging_rate_headers_and_assignment() {
        let sim = OktaSim::start(
            OktaSimConfig::new("ssws")
                .with_seed(5)
                .with_app(OktaApp::new("0oa1", "App"))
                .with_rate_limit(50, Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert!(sim.set_user_status("person4@example.com", "DEPROVISIONED"));
        let c = client();
        let base = sim.url();
        let r = c
            .get(format!("{base}/api/v1/users"))
            .header("Authorization", "Bearer ssws")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000011");
        let auth = "SSWS ssws";
        let r = c
            .get(format!("{base}/api/v1/users?limit=3"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-rate-limit-limit"], "50");
        let remaining: u32 = r.headers()["x-rate-limit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 50);
        let links: Vec<&str> = r
            .headers()
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(links.len(), 2);
        let next = links[1]
            .split(';')
            .next()
            .unwrap()
            .trim_matches(['<', '>'])
            .to_string();
        assert!(links[1].ends_with("rel=\"next\""));
        let p1: Vec<Value> = r.json().await.unwrap();
        assert_eq!(p1.len(), 3);
        let r = c
            .get(&next)
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get_all("link").iter().count(),
            1,
            "no next on the last page"
        );
        let p2: Vec<Value> = r.json().await.unwrap();
        assert_eq!(p2.len(), 1, "the DEPROVISIONED user is hidden");
        let gone: Vec<Value> = c
            .get(format!("{base}/api/v1/users"))
            .query(&[("filter", "status eq \"DEPROVISIONED\"")])
            .header("Authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(gone.len(), 1);

        // Assign, assign again (no second effect), unassign, unassign again.
        let id = sim.user("person0@example.com").unwrap().id;
        let assign =
            json!({"id": id, "scope": "USER", "credentials": {"userName": "person0@example.com"}});
        for _ in 0..2 {
            let r = c
                .post(format!("{base}/api/v1/apps/0oa1/users"))
                .header("Authorization", auth)
                .json(&assign)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let au: Value = r.json().await.unwrap();
            assert_eq!(au["scope"], "USER");
            assert_eq!(au["syncState"], "DISABLED", "no downstream bound");
        }
        let del = || {
            c.delete(format!("{base}/api/v1/apps/0oa1/users/{id}"))
                .header("Authorization", auth)
                .send()
        };
        assert_eq!(del().await.unwrap().status(), StatusCode::NO_CONTENT);
        assert_eq!(del().await.unwrap().status(), StatusCode::NOT_FOUND);
        let kinds: Vec<&str> = sim.effects().iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["assigned", "unassigned"]);
        let app: Value = c
            .get(format!("{base}/api/v1/apps/0oa1"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(app["features"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn over_the_limit_is_429_with_the_okta_error() {
        let sim = OktaSim::start(
            OktaSimConfig::new("ssws")
                .with_user(OktaUser::new("a@example.com", "A", "B"))
                .with_rate_limit(2, Duration::from_secs(60)),
        )
        .await
        .unwrap();
        let c = client();
        let get = || {
            c.get(format!("{}/api/v1/users", sim.url()))
                .header("Authorization", "SSWS ssws")
                .send()
        };
        assert!(get().await.unwrap().status().is_success());
        let r = get().await.unwrap();
        assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
        let r = get().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("x-rate-limit-reset"));
        assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "E0000047");
        assert_eq!(sim.counters().rate_limit_violations, 1);
    }
}
