//! What Okta and Entra actually send, replayed against the server.
//!
//! * `okta_spec_test`: the steps of Okta's "SCIM 2.0 SPEC Test" (the
//!   Runscope suite OIN submissions must pass), in order.
//! * Okta's provisioning lifecycle: existence check, create, PUT,
//!   path-less PATCH deactivate (Okta never deletes), group push and
//!   membership PATCHes.
//! * Entra's request shapes, with and without the `aadOptscim062020`
//!   flag: capitalised ops, `"False"` strings, per-attribute Replace ops
//!   with value-filter and URN paths, path-less Replace with dotted keys,
//!   member add/remove with value lists, soft delete (inactive users stay
//!   findable), `excludedAttributes=members`, Test Connection probes.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use roster_server::ChangeKind;
use serde_json::{Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_spec_test() {
    let s = start().await;
    // Seed one realistic user so the list checks have something to see.
    s.create_user("seed.user@example.com").await;

    // 1. GET /Users?count=1&startIndex=1: numeric paging fields, a user
    //    with id, name, userName, active and emails.
    let r = s.get("/Users?count=1&startIndex=1").await;
    assert_eq!(r.status, StatusCode::OK);
    for k in ["itemsPerPage", "startIndex", "totalResults"] {
        assert!(r.body[k].is_u64(), "{k} must be a number: {}", r.body);
    }
    let u = &r.body["Resources"][0];
    assert!(u["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(u["name"]["givenName"].is_string() && u["name"]["familyName"].is_string());
    assert!(u["userName"].is_string());
    assert_eq!(u["active"], true);
    assert!(u["emails"][0]["value"].is_string());
    let id = u["id"].as_str().expect("id").to_string();

    // 2. GET /Users/{id} echoes the id.
    let r = s.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id);

    // 3. A filter for an unknown userName: 200, totalResults 0.
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"no.such.user@example.com\"")
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 0);

    // 4. An unknown id: 404 with the Error schema and a detail.
    let r = s.get("/Users/010101010101010101").await;
    r.assert_error(404, None);
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));

    // 5. POST a realistic user: 201, active, same names and schemas.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Runscope.Test@atko.com",
        "name": {"givenName": "Runscope", "familyName": "Test"},
        "emails": [{"primary": true, "value": "Runscope.Test@atko.com", "type": "work"}],
        "displayName": "Runscope Test",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let r = s.post("/Users", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["name"]["givenName"], "Runscope");
    assert_eq!(r.body["name"]["familyName"], "Test");
    assert_eq!(r.body["userName"], "Runscope.Test@atko.com");
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    assert!(
        r.body.get("password").is_none(),
        "password is never returned"
    );
    let new_id = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("{}/Users/{new_id}", s.base).as_str())
    );

    // 6. The same POST again: 409 uniqueness.
    s.post("/Users", body)
        .await
        .assert_error(409, Some("uniqueness"));

    // 7. The userName in another case finds the user.
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"runscope.test@ATKO.com\"")
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], new_id);

    // 8. GET /Groups answers 200 quickly.
    let t = std::time::Instant::now();
    let r = s.get("/Groups").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(t.elapsed() < std::time::Duration::from_millis(600));

    // 9. A bad Authorization header: 401 with a JSON error body.
    let r = s
        .raw(
            Method::GET,
            "/Users",
            vec![],
            &[("Authorization", "Bearer not-a-token")],
        )
        .await;
    r.assert_error(401, None);
    assert!(r.body["detail"].is_string());

    // 10. The fixed unknown id of the suite: 404.
    s.get("/Users/00919288221112222")
        .await
        .assert_error(404, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_lifecycle_deactivates_instead_of_deleting() {
    let mut s = start().await;
    // Existence check before create, exactly as Okta encodes it.
    let r = s
        .get("/Users?filter=userName%20eq%20%22dana%40example.com%22&startIndex=1&count=100")
        .await;
    assert_eq!(r.body["totalResults"], 0);
    let mut body = user_body("dana@example.com");
    body[ENT] = json!({"employeeNumber": "E-77", "department": "Ops"});
    let r = s.post("/Users", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().expect("id").to_string();

    // PUT of the full object (AIW apps).
    body["name"]["familyName"] = json!("Scully");
    body["id"] = json!(id);
    let r = s.put(&format!("/Users/{id}"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"]["familyName"], "Scully");
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");

    // Path-less PATCH deactivation.
    let r = s
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    // ...and reactivation.
    let r = s
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(r.body["active"], true);

    let changes = s.drain_changes();
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Deactivated,
            ChangeKind::Reactivated
        ]
    );
    let c = &changes[2];
    assert_eq!(c.connection, CONN);
    assert_eq!(c.user_id, id);
    assert_eq!(c.user_name, "dana@example.com");
    assert_eq!(c.external_id.as_deref(), Some("ext-dana@example.com"));
    assert_eq!(c.employee_number.as_deref(), Some("E-77"));
    assert!(!c.active);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_group_push_and_membership() {
    let mut s = start().await;
    let a = s.create_user("a@example.com").await;
    let b = s.create_user("b@example.com").await;
    s.drain_changes();
    let r = s
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                   "displayName": "Engineering", "members": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = r.body["id"].as_str().expect("id").to_string();
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});

    // Add two members with display, as Okta does.
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            patch(json!([{"op": "add", "path": "members", "value": [
                {"value": a, "display": "a@example.com"}, {"value": b, "display": "b@example.com"}]}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let members: Vec<&str> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(members, vec![a.as_str(), b.as_str()]);
    assert_eq!(r.body["members"][0]["type"], "User");
    assert_eq!(
        r.body["members"][0]["$ref"],
        format!("{}/Users/{a}", s.base)
    );

    // User.groups reflects membership.
    let u = s.get(&format!("/Users/{a}")).await;
    assert_eq!(u.body["groups"][0]["value"], g);
    assert_eq!(u.body["groups"][0]["display"], "Engineering");

    // Rename: Okta sends id and displayName together.
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            patch(json!([{"op": "replace", "value": {"id": g, "displayName": "Eng"}}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "Eng");

    // Remove one member by value filter; repeating it is a no-op.
    for _ in 0..2 {
        let r = s
            .patch(
                &format!("/Groups/{g}"),
                patch(json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["members"].as_array().map(Vec::len), Some(1));
    }
    let u = s.get(&format!("/Users/{a}")).await;
    assert!(u.body.get("groups").is_none(), "{}", u.body);

    // A group filtered by member.
    let r = s
        .get(&format!(
            "/Groups?filter={}",
            enc(&format!("members[value eq \"{b}\"]"))
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1);

    let changes = s.drain_changes();
    // add a+b (2), rename (b still member; a too at that time: 2), remove a (1).
    assert!(
        changes
            .iter()
            .any(|c| c.user_id == a && c.groups.iter().any(|g| g.display_name == "Engineering")),
        "{changes:#?}"
    );
    let last_a = changes.iter().rev().find(|c| c.user_id == a).expect("a");
    assert!(last_a.groups.is_empty());
    let last_b = changes.iter().rev().find(|c| c.user_id == b).expect("b");
    assert_eq!(last_b.groups[0].display_name, "Eng");

    // DELETE the group: 204, then 404; members are notified.
    assert_eq!(
        s.delete(&format!("/Groups/{g}")).await.status,
        StatusCode::NO_CONTENT
    );
    s.get(&format!("/Groups/{g}")).await.assert_error(404, None);
    let changes = s.drain_changes();
    assert!(
        changes
            .iter()
            .any(|c| c.user_id == b && c.groups.is_empty())
    );
    s.stop().await;
}

/// Entra without the flag: capitalised ops, string booleans, one Replace
/// per attribute with filter and URN paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_default_patch_shapes() {
    let mut s = start().await;
    // Test Connection: a random non-existent user and group.
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"7a6d4c21-5e0f-4b3e-9c1d-2f8e7b6a5c4d\"")
        ))
        .await;
    assert_eq!(
        (r.status, r.body["totalResults"].clone()),
        (StatusCode::OK, json!(0))
    );
    let r = s
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc("displayName eq \"x\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 0);

    let r = s
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
                "externalId": "jdoe",
                "userName": "jdoe@contoso.onmicrosoft.com",
                "active": true,
                "displayName": "John Doe",
                "emails": [{"primary": true, "type": "work", "value": "jdoe@contoso.com"}],
                "name": {"familyName": "Doe", "givenName": "John"},
                ENT: {"employeeNumber": "1001", "department": "Sales", "manager": "mgr-1"}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.body[ENT]["manager"]["value"], "mgr-1",
        "bare manager string accepted"
    );

    // Entra's three lookups.
    for f in [
        "userName eq \"JDOE@contoso.onmicrosoft.com\"",
        "externalId eq \"jdoe\"",
        "emails[type eq \"work\"].value eq \"jdoe@contoso.com\"",
    ] {
        let r = s.get(&format!("/Users?filter={}", enc(f))).await;
        assert_eq!(r.body["totalResults"], 1, "{f}: {}", r.body);
        assert_eq!(r.body["Resources"][0]["id"], id);
    }
    // externalId is caseExact.
    let r = s
        .get(&format!("/Users?filter={}", enc("externalId eq \"JDOE\"")))
        .await;
    assert_eq!(r.body["totalResults"], 0);

    let r = s
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "john.doe@contoso.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Johnny"},
                {"op": "Replace", "path": format!("{ENT}:employeeNumber"), "value": "1002"},
                {"op": "Add", "path": "title", "value": "Rep"}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "john.doe@contoso.com");
    assert_eq!(r.body["name"]["givenName"], "Johnny");
    assert_eq!(r.body[ENT]["employeeNumber"], "1002");
    // The email index follows the change.
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("emails.value eq \"JOHN.DOE@contoso.com\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1);
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("emails.value eq \"jdoe@contoso.com\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 0);

    // Disable with a string "False" (soft delete).
    let r = s
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    // Soft-deleted users are still found, by id and by filter.
    assert_eq!(s.get(&format!("/Users/{id}")).await.body["active"], false);
    let r = s
        .get(&format!(
            "/Users?filter={}",
            enc("userName eq \"jdoe@contoso.onmicrosoft.com\" and active eq false")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1);
    let kinds: Vec<ChangeKind> = s.drain_changes().iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Deactivated
        ]
    );

    // Finally the hard delete after the soft-delete period.
    assert_eq!(
        s.delete(&format!("/Users/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let c = s.drain_changes();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind, ChangeKind::Deleted);
    s.stop().await;
}

/// Entra with `aadOptscim062020`: path-less Replace with dotted and URN
/// keys, boolean `false`; groups with the Microsoft schema URN and member
/// add/remove by value list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_flagged_patch_shapes_and_groups() {
    let s = start().await;
    let u1 = s.create_user("u1@contoso.com").await;
    let u2 = s.create_user("u2@contoso.com").await;
    let r = s
        .patch(
            &format!("/Users/{u1}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "value": {
                    "displayName": "New Name",
                    "name.givenName": "Neo",
                    "name.familyName": "Anderson",
                    format!("{ENT}:employeeNumber"): "42",
                    format!("{ENT}:department"): "R&D",
                    "active": false
                }}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "New Name");
    assert_eq!(r.body["name"]["givenName"], "Neo");
    assert_eq!(r.body["name"]["familyName"], "Anderson");
    assert_eq!(r.body[ENT]["employeeNumber"], "42");
    assert_eq!(r.body[ENT]["department"], "R&D");
    assert_eq!(r.body["active"], false);
    assert!(
        r.body["schemas"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == ENT)),
        "the extension URN is listed once it has values: {}",
        r.body
    );

    let r = s
        .post(
            "/Groups",
            json!({"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Group1DisplayName",
                   "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                               "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "members": [], "meta": {"resourceType": "Group"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = r.body["id"].as_str().expect("id").to_string();
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Add", "path": "members", "value": [{"$ref": null, "value": u1}, {"$ref": null, "value": u2}]}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(2));
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Remove", "path": "members", "value": [{"value": u1}]}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["members"][0]["value"], u2);
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(1));
    // excludedAttributes=members on a group read and list.
    let r = s
        .get(&format!("/Groups/{g}?excludedAttributes=members"))
        .await;
    assert!(r.body.get("members").is_none() && r.body["displayName"] == "Group1DisplayName");
    let r = s
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc("displayName eq \"group1displayname\"")
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert!(r.body["Resources"][0].get("members").is_none());
    // A member that does not exist (yet) is accepted but not rendered: it
    // waits for a user with that externalId (tests/pending_members.rs).
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["members"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    assert_eq!(r.body["members"][0]["value"], u2);
    assert_eq!(s.store.scim_pending_count(CONN).await.unwrap(), 1);
    s.stop().await;
}
