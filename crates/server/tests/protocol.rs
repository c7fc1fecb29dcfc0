//! RFC 7644 behaviour through HTTP: queries, paging, projection, writes,
//! versioning, errors, Bulk, authentication and auditing.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use roster_server::ScimConfig;
use serde_json::{Value, json};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["userName"].as_str().or(r["displayName"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Five users with varied attributes for filter tests.
async fn people(s: &TestServer) {
    let users = [
        json!({"userName": "alice@x.com", "title": "Engineer", "active": true,
               "name": {"givenName": "Alice", "familyName": "Zed"},
               "emails": [{"value": "alice@x.com", "type": "work"}, {"value": "al@home.net", "type": "home"}],
               ENT: {"employeeNumber": "100", "department": "Eng"}}),
        json!({"userName": "Bob@x.com", "title": "engineer", "active": false, "nickName": "bobby",
               "name": {"givenName": "Bob", "familyName": "Young"},
               "emails": [{"value": "bob@x.com", "type": "work"}],
               ENT: {"employeeNumber": "200", "department": "Ops"}}),
        json!({"userName": "carol@y.org", "title": "Manager", "active": true,
               "name": {"givenName": "Carol", "familyName": "Xu"},
               ENT: {"employeeNumber": "300", "department": "Eng"}}),
        json!({"userName": "dave@y.org", "active": true, "externalId": "D-1",
               "name": {"givenName": "Dave", "familyName": "Wu"}}),
        json!({"userName": "erin@x.com", "active": true, "title": "Engineer",
               "name": {"givenName": "Erin", "familyName": "Vo"},
               "emails": [{"value": "erin@x.com", "type": "work"}]}),
    ];
    for u in users {
        let r = s.post("/Users", u).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_cover_every_operator_and_form() {
    let s = start().await;
    people(&s).await;
    let cases: &[(&str, &[&str])] = &[
        ("userName eq \"ALICE@x.com\"", &["alice@x.com"]),
        (
            "userName ne \"alice@x.com\"",
            &["Bob@x.com", "carol@y.org", "dave@y.org", "erin@x.com"],
        ),
        ("userName co \"@Y.\"", &["carol@y.org", "dave@y.org"]),
        ("userName sw \"b\"", &["Bob@x.com"]),
        ("userName ew \".ORG\"", &["carol@y.org", "dave@y.org"]),
        ("nickName pr", &["Bob@x.com"]),
        ("userName gt \"carol@y.org\"", &["dave@y.org", "erin@x.com"]),
        (
            "userName ge \"carol@y.org\"",
            &["carol@y.org", "dave@y.org", "erin@x.com"],
        ),
        ("userName lt \"bob@x.com\"", &["alice@x.com"]),
        ("userName le \"bob@x.com\"", &["alice@x.com", "Bob@x.com"]),
        // Logical operators, precedence and grouping.
        (
            "title eq \"engineer\" and active eq true",
            &["alice@x.com", "erin@x.com"],
        ),
        (
            "active eq false or externalId eq \"D-1\"",
            &["Bob@x.com", "dave@y.org"],
        ),
        ("not (active eq true)", &["Bob@x.com"]),
        (
            "(userName sw \"a\" or userName sw \"c\") and not (title eq \"manager\")",
            &["alice@x.com"],
        ),
        (
            "userName sw \"a\" or userName sw \"c\" and title eq \"x\"",
            &["alice@x.com"],
        ),
        // Value paths and sub-attributes.
        (
            "emails[type eq \"home\" and value co \"home\"]",
            &["alice@x.com"],
        ),
        (
            "emails[type eq \"work\"].value eq \"BOB@x.com\"",
            &["Bob@x.com"],
        ),
        (
            "emails.value ew \"x.com\"",
            &["alice@x.com", "Bob@x.com", "erin@x.com"],
        ),
        ("emails co \"erin\"", &["erin@x.com"]),
        ("name.familyName eq \"xu\"", &["carol@y.org"]),
        // URN-qualified names: core and extension.
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"dave@y.org\"",
            &["dave@y.org"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Eng\"",
            &["alice@x.com", "carol@y.org"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt \"150\"",
            &["Bob@x.com", "carol@y.org"],
        ),
        // Operators are case-insensitive; externalId is caseExact.
        ("userName EQ \"erin@x.com\"", &["erin@x.com"]),
        ("externalId eq \"d-1\"", &[]),
        // Dates.
        (
            "meta.created gt \"2000-01-01T00:00:00Z\"",
            &[
                "alice@x.com",
                "Bob@x.com",
                "carol@y.org",
                "dave@y.org",
                "erin@x.com",
            ],
        ),
        ("meta.lastModified lt \"2000-01-01T00:00:00+01:00\"", &[]),
        // Unknown attributes match nothing rather than failing.
        ("favoriteColor eq \"blue\"", &[]),
    ];
    for (f, want) in cases {
        let r = s.get(&format!("/Users?filter={}", enc(f))).await;
        assert_eq!(r.status, StatusCode::OK, "{f}: {}", r.body);
        assert_eq!(ids(&r.body), *want, "{f}");
        assert_eq!(r.body["totalResults"], want.len(), "{f}");
    }
    // Groups: displayName (caseExact=false) and numbers in filters on
    // POST .search at the root, across resource types.
    let r = s.post("/Groups", json!({"displayName": "Engineers"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .post(
            "/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": "displayName sw \"eng\" or userName eq \"dave@y.org\""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids(&r.body), vec!["dave@y.org", "Engineers"]);
    // Invalid filters.
    for bad in [
        "userName eq",
        "userName zz \"x\"",
        "active gt true",
        "meta.created gt \"yesterday\"",
        "(userName eq \"a\"",
        "emails[value eq \"a\"",
    ] {
        let r = s.get(&format!("/Users?filter={}", enc(bad))).await;
        r.assert_error(400, Some("invalidFilter"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_paging_and_projection() {
    let s = start().await;
    people(&s).await;
    // Stable creation order by default; 1-based paging.
    let all = s.get("/Users").await;
    assert_eq!(
        ids(&all.body),
        vec![
            "alice@x.com",
            "Bob@x.com",
            "carol@y.org",
            "dave@y.org",
            "erin@x.com"
        ]
    );
    let r = s.get("/Users?startIndex=2&count=2").await;
    assert_eq!(ids(&r.body), vec!["Bob@x.com", "carol@y.org"]);
    assert_eq!(
        (
            r.body["totalResults"].clone(),
            r.body["startIndex"].clone(),
            r.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(2), json!(2))
    );
    let r = s.get("/Users?count=0").await;
    assert_eq!(
        (
            r.body["totalResults"].clone(),
            r.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(0))
    );
    let r = s.get("/Users?startIndex=0&count=-3").await;
    assert_eq!(
        (r.body["startIndex"].clone(), r.body["itemsPerPage"].clone()),
        (json!(1), json!(0))
    );
    let r = s.get("/Users?startIndex=9").await;
    assert_eq!(
        (
            r.body["totalResults"].clone(),
            r.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(0))
    );
    s.get("/Users?count=ten")
        .await
        .assert_error(400, Some("invalidValue"));
    s.get("/Users?startIndex=1.5")
        .await
        .assert_error(400, Some("invalidValue"));

    // Sorting: caseExact=false strings, descending, missing values last.
    let r = s.get("/Users?sortBy=userName&sortOrder=descending").await;
    assert_eq!(
        ids(&r.body),
        vec![
            "erin@x.com",
            "dave@y.org",
            "carol@y.org",
            "Bob@x.com",
            "alice@x.com"
        ]
    );
    let r = s.get("/Users?sortBy=title&count=3").await;
    assert_eq!(ids(&r.body), vec!["alice@x.com", "Bob@x.com", "erin@x.com"]);
    let r = s
        .get(&format!(
            "/Users?sortBy=name.familyName&filter={}",
            enc("active eq true")
        ))
        .await;
    assert_eq!(
        ids(&r.body),
        vec!["erin@x.com", "dave@y.org", "carol@y.org", "alice@x.com"]
    );
    s.get("/Users?sortBy=userName&sortOrder=sideways")
        .await
        .assert_error(400, Some("invalidValue"));

    // attributes / excludedAttributes on list, search, read and write.
    let r = s
        .get("/Users?attributes=userName,name.givenName&count=1")
        .await;
    let u = &r.body["Resources"][0];
    assert_eq!(
        u.as_object().map(|o| {
            let mut k: Vec<&String> = o.keys().collect();
            k.sort();
            k
        }),
        Some(vec![
            &"id".to_string(),
            &"name".to_string(),
            &"schemas".to_string(),
            &"userName".to_string()
        ])
    );
    assert_eq!(u["name"], json!({"givenName": "Alice"}));
    let id = u["id"].as_str().expect("id").to_string();
    let r = s
        .get(&format!("/Users/{id}?excludedAttributes=emails,meta,{ENT}"))
        .await;
    assert!(
        r.body.get("emails").is_none() && r.body.get("meta").is_none() && r.body.get(ENT).is_none()
    );
    assert_eq!(r.body["userName"], "alice@x.com");
    let r = s
        .post(
            "/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "attributes": ["userName"], "filter": "userName sw \"c\"",
                   "startIndex": 1, "count": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["Resources"][0],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT], "id": r.body["Resources"][0]["id"], "userName": "carol@y.org"})
    );
    let r = s
        .req(
            Method::PATCH,
            &format!("/Users/{id}?attributes=title"),
            Some(patch(
                json!([{"op": "replace", "path": "title", "value": "CTO"}]),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["title"], "CTO");
    assert!(r.body.get("userName").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_versions_and_preconditions() {
    let s = start().await;
    let r = s.post("/Users", user_body("ann@x.com")).await;
    let id = r.body["id"].as_str().expect("id").to_string();
    let meta = &r.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["version"], "W/\"1\"");
    assert_eq!(meta["location"], format!("{}/Users/{id}", s.base));
    assert_eq!(meta["created"], meta["lastModified"]);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    // Duplicate userName in another case.
    s.post("/Users", user_body("ANN@X.COM"))
        .await
        .assert_error(409, Some("uniqueness"));

    // If-None-Match on GET.
    let r = s
        .req_h(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("If-None-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    let r = s
        .req_h(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("If-None-Match", "W/\"0\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // If-Match on PATCH, PUT and DELETE.
    let p = patch(json!([{"op": "replace", "path": "displayName", "value": "Ann"}]));
    let r = s
        .req_h(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p.clone()),
            &[("If-Match", "W/\"7\"")],
        )
        .await;
    r.assert_error(412, None);
    let r = s
        .req_h(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(p.clone()),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    // A PATCH that changes nothing keeps the version.
    let r = s.patch(&format!("/Users/{id}"), p).await;
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    let r = s
        .req_h(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(user_body("ann@x.com")),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    r.assert_error(412, None);
    let r = s
        .req_h(
            Method::DELETE,
            &format!("/Users/{id}"),
            None,
            &[("If-Match", "\"1\"")],
        )
        .await;
    r.assert_error(412, None);

    // PUT replaces: attributes not sent are gone; created is kept.
    let created = s.get(&format!("/Users/{id}")).await.body["meta"]["created"].clone();
    let r = s
        .req_h(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"userName": "ann@x.com", "title": "Boss"})),
            &[("If-Match", "W/\"2\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["title"], "Boss");
    assert!(r.body.get("displayName").is_none() && r.body.get("emails").is_none());
    assert_eq!(r.body["meta"]["created"], created);
    // PUT to another user's name conflicts.
    let other = s.create_user("zed@x.com").await;
    s.put(&format!("/Users/{other}"), json!({"userName": "Ann@x.com"}))
        .await
        .assert_error(409, Some("uniqueness"));

    // DELETE with If-Match: *.
    let r = s
        .req_h(
            Method::DELETE,
            &format!("/Users/{id}"),
            None,
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.get(&format!("/Users/{id}")).await.assert_error(404, None);
    s.delete(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    s.put(&format!("/Users/{id}"), user_body("ann@x.com"))
        .await
        .assert_error(404, None);
    s.patch(
        &format!("/Users/{id}"),
        patch(json!([{"op": "add", "path": "title", "value": "x"}])),
    )
    .await
    .assert_error(404, None);
    // The name is free again.
    assert_eq!(
        s.post("/Users", user_body("ann@x.com")).await.status,
        StatusCode::CREATED
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_rfc_errors_and_change_nothing() {
    let s = start().await;
    let id = s.create_user("eve@x.com").await;
    let before = s.get(&format!("/Users/{id}")).await.body;
    let cases: Vec<(Value, &str)> = vec![
        // A valid op followed by a bad one: all or nothing.
        (
            patch(json!([{"op": "replace", "path": "title", "value": "X"},
                          {"op": "replace", "path": "emails[type eq \"work\"", "value": "y"}])),
            "invalidPath",
        ),
        (
            patch(json!([{"op": "replace", "path": "title", "value": "X"},
                          {"op": "remove"}])),
            "noTarget",
        ),
        (
            patch(json!([{"op": "replace", "path": "id", "value": "other"}])),
            "mutability",
        ),
        (
            patch(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            "invalidValue",
        ),
        (
            patch(json!([{"op": "remove", "path": "userName"}])),
            "invalidValue",
        ),
        (
            patch(json!([{"op": "jump", "path": "title", "value": "x"}])),
            "invalidSyntax",
        ),
        (
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            "invalidSyntax",
        ),
        (json!([1, 2, 3]), "invalidSyntax"),
    ];
    for (body, scim_type) in cases {
        let r = s.patch(&format!("/Users/{id}"), body.clone()).await;
        r.assert_error(400, Some(scim_type));
    }
    assert_eq!(
        s.get(&format!("/Users/{id}")).await.body,
        before,
        "nothing changed"
    );

    // Malformed bodies, whatever their shape.
    for raw in [
        &b"{"[..],
        b"",
        b"null",
        b"\xff\xfe",
        b"{\"userName\": }",
        &[b'['; 5000],
    ] {
        let r = s
            .raw(
                Method::POST,
                "/Users",
                raw.to_vec(),
                &[
                    ("Authorization", &format!("Bearer {}", s.token)),
                    ("Content-Type", SCIM_JSON),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        r.assert_error(400, r.body.get("scimType").and_then(Value::as_str));
    }
    s.post("/Users", json!({"name": {"givenName": "x"}}))
        .await
        .assert_error(400, Some("invalidValue"));
    s.post("/Groups", json!({"members": []}))
        .await
        .assert_error(400, Some("invalidValue"));

    // 404 and 405 on unknown paths and discovery endpoints.
    s.get("/Nope").await.assert_error(404, None);
    s.get("/Users/a/b").await.assert_error(404, None);
    s.get("/Schemas/urn:nope").await.assert_error(404, None);
    s.get("/ResourceTypes/Nope").await.assert_error(404, None);
    for (m, p) in [
        (Method::POST, "/Schemas"),
        (Method::PUT, "/ResourceTypes"),
        (Method::PATCH, "/ServiceProviderConfig"),
        (
            Method::DELETE,
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        ),
        (Method::DELETE, "/Users"),
        (Method::POST, &format!("/Users/{id}")),
        (Method::GET, "/Bulk"),
    ] {
        let r = s.req(m.clone(), p, Some(json!({}))).await;
        r.assert_error(405, None);
        assert!(r.header("allow").is_some(), "{m} {p}");
    }

    // Payloads over the limits: 413 in SCIM's format.
    let big = json!({"userName": "big@x.com", "title": "x".repeat(2 * 1024 * 1024)});
    s.post("/Users", big).await.assert_error(413, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_filters_are_bounded_and_indexed_ones_are_not() {
    let s = start_with(ScimConfig {
        scan_limit: 3,
        ..ScimConfig::default()
    })
    .await;
    for i in 0..6 {
        s.create_user(&format!("u{i}@x.com")).await;
    }
    // Indexed lookups do not scan: they work past the scan limit.
    for f in [
        "userName eq \"U4@x.com\"",
        "emails.value eq \"u4@x.com\"",
        "externalId eq \"ext-u4@x.com\"",
        "userName eq \"u4@x.com\" and active eq true",
        "userName eq \"u4@x.com\" or userName eq \"u5@x.com\"",
    ] {
        let r = s.get(&format!("/Users?filter={}", enc(f))).await;
        assert_eq!(r.status, StatusCode::OK, "{f}: {}", r.body);
        assert!(r.body["totalResults"].as_u64() >= Some(1), "{f}");
    }
    // A filter no index answers would scan 6 > 3 resources.
    let r = s
        .get(&format!("/Users?filter={}", enc("title co \"x\"")))
        .await;
    r.assert_error(400, Some("tooMany"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_resolves_bulk_ids_and_honours_fail_on_errors() {
    let mut s = start().await;
    let spc = s.get("/ServiceProviderConfig").await.body;
    assert_eq!(spc["bulk"]["supported"], true);
    let max_ops = spc["bulk"]["maxOperations"]
        .as_u64()
        .expect("maxOperations");

    // The group comes first but references users created later.
    let r = s
        .post(
            "/Bulk",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                   "Operations": [
                {"method": "POST", "path": "/Groups", "bulkId": "g",
                 "data": {"displayName": "Tour", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("b1@x.com")},
                {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user_body("b2@x.com")},
                {"method": "PATCH", "path": "/Users/bulkId:u1",
                 "data": patch(json!([{"op": "replace", "path": "active", "value": false}]))},
                {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user_body("B1@x.com")},
                {"method": "POST", "path": "/Groups", "bulkId": "bad",
                 "data": {"displayName": "Bad", "members": [{"value": "bulkId:nope"}]}}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = r.body["Operations"].as_array().expect("ops");
    let statuses: Vec<&str> = ops.iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, vec!["201", "201", "201", "200", "409", "400"]);
    assert_eq!(ops[4]["response"]["scimType"], "uniqueness");
    let group_loc = ops[0]["location"].as_str().expect("location");
    let g = s.get(group_loc).await;
    assert_eq!(g.body["members"].as_array().map(Vec::len), Some(2));
    let u1 = s.get(ops[1]["location"].as_str().expect("loc")).await;
    assert_eq!(u1.body["active"], false);
    assert_eq!(u1.body["groups"][0]["display"], "Tour");
    assert!(
        s.drain_changes()
            .iter()
            .any(|c| c.user_name == "b1@x.com" && !c.active)
    );

    // failOnErrors=1: processing stops at the first error.
    let r = s
        .post(
            "/Bulk",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1,
                   "Operations": [
                {"method": "DELETE", "path": "/Users/does-not-exist"},
                {"method": "POST", "path": "/Users", "bulkId": "z", "data": user_body("never@x.com")}
            ]}),
        )
        .await;
    let ops = r.body["Operations"].as_array().expect("ops");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["status"], "404");
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"never@x.com\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 0);

    // Limits: too many operations is 413.
    let many: Vec<Value> = (0..=max_ops)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/x{i}")}))
        .collect();
    s.post(
        "/Bulk",
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": many}),
    )
    .await
    .assert_error(413, None);
    s.post("/Bulk", json!({"Operations": []}))
        .await
        .assert_error(400, Some("invalidSyntax"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_authenticate_per_connection_and_writes_are_audited() {
    let s = start_with(ScimConfig {
        token_cache_ttl: Duration::ZERO,
        ..ScimConfig::default()
    })
    .await;
    let bearer = |t: &str| format!("Bearer {t}");
    // No header, wrong scheme, garbage, right shape but unknown.
    let fake = format!("rst_{}", "A".repeat(43));
    for h in [
        None,
        Some(format!("Basic {}", s.token)),
        Some("Bearer x".into()),
        Some(bearer(&fake)),
    ] {
        let headers: Vec<(&str, &str)> = h.iter().map(|v| ("Authorization", v.as_str())).collect();
        let r = s.raw(Method::GET, "/Users", vec![], &headers).await;
        r.assert_error(401, None);
        assert!(r.header("www-authenticate").is_some());
    }
    // A token with the right prefix but a wrong tail.
    let mut tampered = s.token.clone();
    tampered.pop();
    tampered.push(if s.token.ends_with('A') { 'B' } else { 'A' });
    s.raw(
        Method::GET,
        "/Users",
        vec![],
        &[("Authorization", &bearer(&tampered))],
    )
    .await
    .assert_error(401, None);
    // Another connection's token: 403 here.
    let other = roster_server::tokens::create_token(&s.store, "other-idp", "test", 2)
        .await
        .expect("token");
    s.raw(
        Method::GET,
        "/Users",
        vec![],
        &[("Authorization", &bearer(&other.token))],
    )
    .await
    .assert_error(403, None);
    let r = s
        .http
        .get(format!("{}/scim/v2/other-idp/Users", s.origin))
        .header("Authorization", bearer(&other.token))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    // The two connections do not see each other's users.
    s.create_user("only-here@x.com").await;
    let r = s
        .http
        .get(format!("{}/scim/v2/other-idp/Users", s.origin))
        .header("Authorization", bearer(&other.token))
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["totalResults"], 0);

    // Listing shows prefixes, never secrets.
    let listed = roster_server::tokens::list_tokens(&s.store, Some(CONN))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].prefix, s.token_prefix);
    assert!(s.token.starts_with(&listed[0].prefix));
    // Using the token records last use (asynchronously).
    let mut used = None;
    for _ in 0..50 {
        used = s
            .store
            .scim_token(&s.token_prefix)
            .await
            .expect("token")
            .and_then(|t| t.last_used_ms);
        if used.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(used.is_some(), "last_used is recorded");

    // Writes are attributed in the audit log; reads are not.
    let audit = s.store.audit_since(0).await.expect("audit");
    let writes: Vec<_> = audit
        .iter()
        .filter(|e| e.kind.starts_with("scim.user."))
        .collect();
    assert_eq!(writes.len(), 1, "{audit:#?}");
    assert_eq!(writes[0].kind, "scim.user.created");
    assert_eq!(writes[0].actor, format!("scim:{CONN}:{}", s.token_prefix));
    assert_eq!(writes[0].data["userName"], "only-here@x.com");
    let serialized = serde_json::to_string(&audit).expect("json");
    assert!(
        !serialized.contains(&s.token),
        "the token never reaches the audit log"
    );

    // Revocation bites (cache TTL is zero here).
    roster_server::tokens::revoke_token(&s.store, &s.token_prefix, "test", 3)
        .await
        .expect("revoke");
    s.get("/Users").await.assert_error(401, None);
    assert!(matches!(
        roster_server::tokens::revoke_token(&s.store, &s.token_prefix, "test", 4).await,
        Err(roster_server::tokens::TokenError::NotFound(_))
    ));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_membership_patches_all_land() {
    let s = start().await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(s.create_user(&format!("m{i}@x.com")).await);
    }
    let g = s
        .post("/Groups", json!({"displayName": "Crowd"}))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Twelve concurrent PATCHes, each adding one member, none with If-Match:
    // optimistic concurrency must retry rather than lose an update.
    let mut tasks = Vec::new();
    for u in &users {
        let http = s.http.clone();
        let url = format!("{}/Groups/{g}", s.base);
        let token = s.token.clone();
        let body = patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}]));
        tasks.push(tokio::spawn(async move {
            http.patch(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", SCIM_JSON)
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("send"), StatusCode::OK);
    }
    let r = s.get(&format!("/Groups/{g}")).await;
    assert_eq!(
        r.body["members"].as_array().map(Vec::len),
        Some(users.len()),
        "{}",
        r.body
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents() {
    let s = start().await;
    let spc = s.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK);
    assert!(
        spc.header("content-type")
            .is_some_and(|c| c.starts_with(SCIM_JSON))
    );
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert!(spc.body["bulk"]["maxPayloadSize"].as_u64() > Some(0));
    let rts = s.get("/ResourceTypes").await.body;
    assert_eq!(rts["totalResults"], 2);
    let user_rt = s.get("/ResourceTypes/User").await.body;
    assert_eq!(user_rt["schemaExtensions"][0]["schema"], ENT);
    assert_eq!(
        user_rt["meta"]["location"],
        format!("{}/ResourceTypes/User", s.base)
    );
    let schemas = s.get("/Schemas").await.body;
    assert_eq!(schemas["totalResults"], 3);
    let ent = s.get(&format!("/Schemas/{ENT}")).await;
    assert_eq!(ent.status, StatusCode::OK);
    assert_eq!(ent.body["id"], ENT);
    s.stop().await;
}

/// While writes keep coming, the writer checkpoints the WAL beside itself:
/// the database file alone (a copy without its WAL) soon holds what was
/// written, long before the in-commit backstop would run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_writes_are_checkpointed_into_the_database_file() {
    let s = start().await;
    for i in 0..40 {
        s.create_user(&format!("ck{i}@example.com")).await;
    }
    let copy = s.db_path.with_file_name("copy.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        // The writer checks at most every 200 ms, after a commit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.create_user(&format!("late{n}@example.com")).await;
        n += 1;
        // A copy taken mid-checkpoint may be torn: that counts as not yet.
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&s.db_path, &copy).expect("copy the database file");
        let in_file = match roster_store::Store::open(copy.to_str().expect("utf-8")).await {
            Ok(c) => {
                let count = c
                    .scim_count(CONN, roster_store::ScimKind::User)
                    .await
                    .unwrap_or(0);
                c.close().await;
                count
            }
            Err(_) => 0,
        };
        if in_file >= 40 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {n} more writes the database file holds {in_file} of the 40 users"
        );
    }
    s.stop().await;
}
