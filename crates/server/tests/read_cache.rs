//! The read path keeps renderings of resources between reads (see the
//! server's `cache.rs`). These tests hold it to its promise: a read after
//! an acknowledged write, by this process or by another one on the same
//! database, is never stale, by id or by filter; and a kept rendering is
//! what is served while the stored head is unchanged.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use roster_server::ScimConfig;
use roster_store::Store;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
           "userName": name, "displayName": "First", "active": true,
           "emails": [{"value": name, "type": "work"}]})
}

fn by_name(name: &str) -> String {
    format!("/Users?filter=userName%20eq%20%22{name}%22")
}

/// A second server over the same SQLite file: another process, as far as
/// its cache knows.
async fn second_process(s: &TestServer) -> TestServer {
    let store = Store::open(s.db_path.to_str().expect("utf-8"))
        .await
        .expect("open the same store");
    let dir = tempfile::tempdir().expect("tempdir");
    start_on(store, dir, s.db_path.clone(), ScimConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledged_write_is_never_stale() {
    let s = start().await;
    let created = s.post("/Users", user("ann@x.com")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    let path = format!("/Users/{id}");
    for i in 0..20 {
        // Read twice (the second from the cache), then write.
        for _ in 0..2 {
            let got = s.get(&path).await;
            assert_eq!(got.status, StatusCode::OK);
            let listed = s.get(&by_name("ann@x.com")).await;
            assert_eq!(
                listed.body["Resources"][0], got.body,
                "filter and GET agree"
            );
        }
        let name = format!("Name {i}");
        let written = s
            .req(
                Method::PATCH,
                &path,
                Some(patch(
                    json!([{"op": "replace", "path": "displayName", "value": name}]),
                )),
            )
            .await;
        assert_eq!(written.status, StatusCode::OK, "{}", written.body);
        let got = s.get(&path).await;
        assert_eq!(got.body, written.body, "GET after PATCH {i}");
        assert_eq!(got.header("etag"), written.header("etag"));
        let listed = s.get(&by_name("ann@x.com")).await;
        assert_eq!(listed.body["totalResults"], 1);
        assert_eq!(
            listed.body["Resources"][0], written.body,
            "filter after PATCH {i}"
        );
    }
    // PUT, then DELETE.
    let mut body = user("ann@x.com");
    body["displayName"] = json!("Replaced");
    let put = s.req(Method::PUT, &path, Some(body)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(s.get(&path).await.body["displayName"], "Replaced");
    let del = s.req(Method::DELETE, &path, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    s.get(&path).await.assert_error(404, None);
    assert_eq!(s.get(&by_name("ann@x.com")).await.body["totalResults"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_another_process_are_seen_at_once() {
    let a = start().await;
    let b = second_process(&a).await;
    let created = b.post("/Users", user("bo@x.com")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_string();
    let path = format!("/Users/{id}");
    for i in 0..10 {
        // A keeps a rendering, B writes, A reads again.
        assert_eq!(a.get(&path).await.status, StatusCode::OK);
        assert_eq!(a.get(&by_name("bo@x.com")).await.body["totalResults"], 1);
        let active = i % 2 == 1;
        let written = b
            .req(
                Method::PATCH,
                &path,
                Some(patch(
                    json!([{"op": "replace", "path": "active", "value": active}]),
                )),
            )
            .await;
        assert_eq!(written.status, StatusCode::OK, "{}", written.body);
        let got = a.get(&path).await;
        assert_eq!(got.body["active"], active, "A's GET after B's write {i}");
        assert_eq!(got.header("etag"), written.header("etag"));
        let listed = a.get(&by_name("bo@x.com")).await;
        assert_eq!(
            listed.body["Resources"][0]["active"], active,
            "A's filter {i}"
        );
    }
    // A deletion by B.
    assert_eq!(
        b.req(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    a.get(&path).await.assert_error(404, None);
    assert_eq!(a.get(&by_name("bo@x.com")).await.body["totalResults"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rename_changes_its_members_representations_and_etags() {
    let a = start().await;
    let b = second_process(&a).await;
    let u = a.post("/Users", user("cy@x.com")).await;
    let uid = u.body["id"].as_str().expect("id").to_string();
    let g = a
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                   "displayName": "Ops", "members": [{"value": uid}]}),
        )
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gid = g.body["id"].as_str().expect("id").to_string();
    let upath = format!("/Users/{uid}");
    let before = a.get(&upath).await;
    assert_eq!(before.body["groups"][0]["display"], "Ops");
    let etag = before.header("etag").expect("etag");
    // Renamed through the other process: A must not serve "Ops", and the
    // user's ETag must move (a conditional GET is not 304).
    let renamed = b
        .req(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(patch(
                json!([{"op": "replace", "path": "displayName", "value": "Ops 2"}]),
            )),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let after = a
        .req_h(
            Method::GET,
            &upath,
            None,
            &[("If-None-Match", etag.as_str())],
        )
        .await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "the user's representation changed"
    );
    assert_eq!(after.body["groups"][0]["display"], "Ops 2");
    assert_ne!(after.header("etag").as_deref(), Some(etag.as_str()));
    let listed = a.get(&by_name("cy@x.com")).await;
    assert_eq!(listed.body["Resources"][0]["groups"][0]["display"], "Ops 2");
    // A membership change through B shows in A's kept group and user.
    let ok = b
        .req(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(patch(
                json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
            )),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(a.get(&upath).await.body.get("groups").is_none());
    assert!(
        a.get(&format!("/Groups/{gid}"))
            .await
            .body
            .get("members")
            .is_none()
    );
}

/// Sets a user's stored body behind the server's back, optionally moving
/// its version.
async fn tamper(s: &TestServer, id: &str, bump: bool) {
    let mut raw = AnyConnection::connect(&format!("sqlite://{}", s.db_path.display()))
        .await
        .expect("connect");
    let sql = if bump {
        "UPDATE scim_resource SET data = '{\"userName\":\"tampered\"}', version = version + 1 \
         WHERE id = $1"
    } else {
        "UPDATE scim_resource SET data = '{\"userName\":\"tampered\"}' WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id.to_string())
        .execute(&mut raw)
        .await
        .expect("tamper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_rendering_is_served_while_its_head_is_unchanged() {
    let s = start().await;
    let id = s.post("/Users", user("di@x.com")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/Users/{id}");
    let kept = s.get(&path).await;
    assert_eq!(kept.body["userName"], "di@x.com");
    // The body changes without its version (nothing roster does): the kept
    // rendering is still served, which is the point of keeping it...
    tamper(&s, &id, false).await;
    assert_eq!(s.get(&path).await.body, kept.body);
    // ...and once the version moves, the stored body is read again.
    tamper(&s, &id, true).await;
    assert_eq!(s.get(&path).await.body["userName"], "tampered");

    // With the cache off, every read renders the stored body.
    let off = start_with(ScimConfig {
        read_cache_bytes: 0,
        ..ScimConfig::default()
    })
    .await;
    let id = off.post("/Users", user("ed@x.com")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        off.get(&format!("/Users/{id}")).await.body["userName"],
        "ed@x.com"
    );
    tamper(&off, &id, false).await;
    assert_eq!(
        off.get(&format!("/Users/{id}")).await.body["userName"],
        "tampered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_renderings_follow_the_request_base_and_projection() {
    let s = start().await;
    let id = s.post("/Users", user("flo@x.com")).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/Users/{id}");
    let full = s.get(&path).await;
    assert!(
        full.body["meta"]["location"]
            .as_str()
            .expect("location")
            .starts_with("http://127.0.0.1:")
    );
    // The same resource asked for under another Host: its own location.
    let other = s
        .req_h(Method::GET, &path, None, &[("Host", "scim.example.com")])
        .await;
    assert_eq!(
        other.body["meta"]["location"],
        format!("http://scim.example.com/scim/v2/{CONN}/Users/{id}")
    );
    assert_eq!(s.get(&path).await.body, full.body);
    // A projection of a kept rendering.
    let only = s.get(&format!("{path}?attributes=userName")).await;
    assert_eq!(only.body["userName"], "flo@x.com");
    assert!(only.body.get("displayName").is_none(), "{}", only.body);
    let listed = s
        .get(&format!(
            "{}&excludedAttributes=emails",
            by_name("flo@x.com")
        ))
        .await;
    assert!(listed.body["Resources"][0].get("emails").is_none());
    assert_eq!(listed.body["Resources"][0]["displayName"], "First");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_checks_under_concurrent_reads_never_confirm_a_stale_rendering() {
    let a = std::sync::Arc::new(start().await);
    let b = second_process(&a).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = a.post("/Users", user(&format!("g{i}@x.com"))).await;
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    // Background readers keep checks queued, so the writer's reads below
    // go in shared batches.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for w in 0..12 {
        let (a, ids, stop) = (a.clone(), ids.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = &ids[(w + n) % ids.len()];
                assert_eq!(a.get(&format!("/Users/{id}")).await.status, StatusCode::OK);
                n += 1;
            }
        }));
    }
    for round in 0..15 {
        for id in &ids {
            let name = format!("Round {round}");
            let written = b
                .req(
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(patch(
                        json!([{"op": "replace", "path": "displayName", "value": name}]),
                    )),
                )
                .await;
            assert_eq!(written.status, StatusCode::OK, "{}", written.body);
            let got = a.get(&format!("/Users/{id}")).await;
            assert_eq!(got.body["displayName"], name, "round {round}");
            assert_eq!(got.header("etag"), written.header("etag"));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
}
