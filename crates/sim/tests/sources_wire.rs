//! The identity-provider simulators on the wire (Okta's directory and
//! System Log, Microsoft Graph, OneLogin, Google Workspace): the documented
//! contract a source sees, checked with plain HTTP.

use std::time::Duration;

use reqwest::StatusCode;
use roster_sim::graph::{GraphSim, GraphSimConfig, GraphUser};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser};
use roster_sim::onelogin::{OneLoginSim, OneLoginSimConfig, OneLoginUser};
use serde_json::Value;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn next_link(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("rel=\"next\""))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap()
                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                .to_string()
        })
}

#[tokio::test]
async fn okta_system_log_polls_forever_and_bounded_queries_end() {
    let sim = OktaSim::start(
        OktaSimConfig::new("ssws")
            .with_user(OktaUser::new("a@example.com", "A", "B"))
            .with_user(OktaUser::new("b@example.com", "B", "C"))
            .with_user(OktaUser::new("c@example.com", "C", "D").with_status("DEPROVISIONED")),
    )
    .await
    .unwrap();
    let c = client();
    let get = |url: String| c.get(url).header("Authorization", "SSWS ssws").send();
    // DEPROVISIONED users only through the status filter.
    let all: Value = get(format!("{}/api/v1/users", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let gone: Value = get(format!(
        "{}/api/v1/users?filter=status%20eq%20%22DEPROVISIONED%22",
        sim.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(gone[0]["profile"]["login"], "c@example.com");

    let ids = sim.lockout_storm(10);
    assert_eq!(ids.len(), 2);
    let r = get(format!(
        "{}/api/v1/logs?since=2020-01-01T00:00:00.000Z",
        sim.url()
    ))
    .await
    .unwrap();
    let next = next_link(&r).expect("a polling query always has a next link");
    let events: Value = r.json().await.unwrap();
    assert_eq!(events.as_array().unwrap().len(), 2);
    assert_eq!(events[0]["eventType"], "user.account.lock");
    assert_eq!(events[0]["target"][0]["type"], "User");
    // The next page is empty, and still has a next link.
    let r = get(next).await.unwrap();
    assert!(next_link(&r).is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        0
    );
    // A bounded query ends.
    let r = get(format!(
        "{}/api/v1/logs?since=2020-01-01T00:00:00.000Z&until=2999-01-01T00:00:00.000Z",
        sim.url()
    ))
    .await
    .unwrap();
    assert!(next_link(&r).is_none());
    // Past the retention, `since` is refused.
    sim.expire_log();
    let r = get(format!(
        "{}/api/v1/logs?since=2020-01-01T00:00:00.000Z",
        sim.url()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("since"));
}

#[tokio::test]
async fn graph_selects_pages_and_deltas_like_graph() {
    let sim = GraphSim::start(
        GraphSimConfig::new("t", "id", "secret")
            .with_user(GraphUser::new("a@example.com", "A", "B").with_department("Ops"))
            .with_user(GraphUser::new("b@example.com", "B", "C")),
    )
    .await
    .unwrap();
    let c = client();
    let r = c
        .get(format!("{}/users", sim.graph_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let t: Value = c
        .post(format!("{}/t/oauth2/v2.0/token", sim.login_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "id"),
            ("client_secret", "secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["access_token"].as_str().unwrap().to_string();
    let get = |url: String| c.get(url).bearer_auth(&token).send();
    // Without $select: no accountEnabled, no department.
    let page: Value = get(format!("{}/users?$top=1", sim.graph_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["value"][0].get("accountEnabled").is_none());
    let next = page["@odata.nextLink"].as_str().unwrap().to_string();
    let page2: Value = get(next).await.unwrap().json().await.unwrap();
    assert_eq!(page2["value"][0]["userPrincipalName"], "b@example.com");
    assert!(page2.get("@odata.nextLink").is_none());
    assert_eq!(
        get(format!("{}/users?$top=1000", sim.graph_url()))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );

    // Delta: the first round ends with a deltaLink; the next one lists
    // only what changed, and removals with their reason.
    let first: Value = get(format!(
        "{}/users/delta?$select=accountEnabled,department",
        sim.graph_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), 2);
    let delta = first["@odata.deltaLink"].as_str().unwrap().to_string();
    sim.set_enabled("a@example.com", false);
    sim.delete_user("b@example.com", true);
    let round: Value = get(delta.clone()).await.unwrap().json().await.unwrap();
    let v = round["value"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{round}");
    assert_eq!(v[0]["accountEnabled"], false);
    assert_eq!(v[1]["@removed"]["reason"], "changed");
    // An expired deltaLink: 410.
    sim.expire_delta_tokens();
    let r = get(delta).await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "syncStateNotFound"
    );
}

#[tokio::test]
async fn onelogin_pages_by_after_cursor_and_filters_by_updated_since() {
    let mut cfg = OneLoginSimConfig::new("id", "secret");
    for i in 0..3 {
        cfg = cfg.with_user(OneLoginUser::new(&format!("u{i}@example.com"), "U", "L"));
    }
    let sim = OneLoginSim::start(cfg).await.unwrap();
    let c = client();
    let t: Value = c
        .post(format!("{}/auth/oauth2/v2/token", sim.url()))
        .header("Authorization", "client_id:id, client_secret:secret")
        .header("Content-Type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["access_token"].as_str().unwrap().to_string();
    let r = c
        .get(format!("{}/api/2/users?limit=2", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["total-count"], "3");
    let after = r.headers()["after-cursor"].to_str().unwrap().to_string();
    let r = c
        .get(format!("{}/api/2/users?limit=2&cursor={after}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("after-cursor").is_none());
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        1
    );
    let r = c
        .get(format!(
            "{}/api/2/users?updated_since=2999-01-01T00:00:00Z",
            sim.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn google_refuses_an_unsigned_assertion() {
    let sim = roster_sim::google::GoogleSim::start(roster_sim::google::GoogleSimConfig::new(
        "sa@x", "admin@x",
    ))
    .await
    .unwrap();
    let c = client();
    let r = c
        .post(sim.token_url())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJzYUB4In0."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = c
        .get(format!(
            "{}/admin/directory/v1/users?customer=my_customer",
            sim.api_url()
        ))
        .bearer_auth("ya29.nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
