//! The body limit SCIM enforces is the one the discovery document
//! advertises (`bulk.maxPayloadSize`): a Bulk request of exactly that size
//! is accepted, one byte more is `413` in SCIM's error format, whatever the
//! configured size (even above the server's generic outer cap).

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use roster_server::{BULK_REQUEST_SCHEMA, ScimConfig};
use serde_json::json;

/// A valid Bulk request creating one user, padded with trailing
/// whitespace (still valid JSON) to exactly `size` bytes.
fn bulk_of_size(size: usize, user: &str) -> Vec<u8> {
    let mut body = serde_json::to_vec(&json!({
        "schemas": [BULK_REQUEST_SCHEMA],
        "Operations": [{"method": "POST", "path": "/Users", "bulkId": "u", "data": user_body(user)}],
    }))
    .unwrap();
    assert!(body.len() <= size, "padding target below the bare request");
    body.resize(size, b' ');
    body
}

async fn advertised_and_enforced_limits_agree(s: &TestServer) {
    let spc = s.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK, "{}", spc.body);
    let max = usize::try_from(spc.body["bulk"]["maxPayloadSize"].as_u64().unwrap()).unwrap();
    let auth = format!("Bearer {}", s.token);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", SCIM_JSON),
    ];

    let at_limit = s
        .raw(
            Method::POST,
            "/Bulk",
            bulk_of_size(max, "at.limit@x.com"),
            &headers,
        )
        .await;
    assert_eq!(at_limit.status, StatusCode::OK, "{}", at_limit.body);
    assert_eq!(
        at_limit.body["Operations"][0]["status"], "201",
        "{}",
        at_limit.body
    );

    let over = s
        .raw(
            Method::POST,
            "/Bulk",
            bulk_of_size(max + 1, "over.limit@x.com"),
            &headers,
        )
        .await;
    over.assert_error(413, None);
    assert!(
        s.get("/Users?filter=userName%20eq%20%22over.limit@x.com%22")
            .await
            .body["totalResults"]
            == 0,
        "nothing from the refused request was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_the_advertised_max_payload_size() {
    let s = start().await;
    advertised_and_enforced_limits_agree(&s).await;
    s.stop().await;
}

/// Above the generic outer cap of `ServeOptions::default()` (16 MiB): the
/// server's cap follows the SCIM config instead of cutting it short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_configured_payload_is_accepted_up_to_exactly_its_size() {
    let s = start_with(ScimConfig {
        bulk_max_payload_bytes: 17 * 1024 * 1024,
        ..ScimConfig::default()
    })
    .await;
    advertised_and_enforced_limits_agree(&s).await;
    s.stop().await;
}
