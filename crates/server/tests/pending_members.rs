//! A group member whose user has not arrived yet, over HTTP, on SQLite and
//! PostgreSQL (a fresh schema in the database `ROSTER_TEST_POSTGRES_URL`
//! names; the PostgreSQL half fails when it is unreachable unless
//! `ROSTER_REQUIRE_POSTGRES=0` waives it, as the store suite does).
//!
//! An IdP may push a group naming a member by its own id (the user's
//! `externalId`) before the user: the member is accepted, not rendered
//! (it names nothing yet), and linked when the user arrives. Both orders
//! end in the same membership, and no membership row ever names a
//! resource that does not exist.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestServer, start_on};
use reqwest::{Method, StatusCode};
use roster_server::ScimConfig;
use roster_store::{ScimKind, Store};
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

enum Backend {
    Sqlite,
    Postgres,
}

/// A server over a fresh store; for PostgreSQL also the admin connection
/// and schema to drop afterwards (`None` when waived).
async fn server(
    backend: Backend,
    name: &str,
) -> Option<(TestServer, Option<(AnyConnection, String)>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_path = dir.path().join("roster.db");
    match backend {
        Backend::Sqlite => {
            let store = Store::open(db_path.to_str().expect("utf-8"))
                .await
                .expect("open store");
            Some((
                start_on(store, dir, db_path, ScimConfig::default()).await,
                None,
            ))
        }
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let base = std::env::var("ROSTER_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
            let admin =
                tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(&base)).await;
            let mut admin = match admin {
                Ok(Ok(c)) => c,
                _ => {
                    assert_eq!(
                        std::env::var("ROSTER_REQUIRE_POSTGRES").as_deref(),
                        Ok("0"),
                        "PostgreSQL is required but ROSTER_TEST_POSTGRES_URL is unreachable \
                         (scripts/postgres.sh starts one; ROSTER_REQUIRE_POSTGRES=0 skips)"
                    );
                    eprintln!("SKIP postgres::{name}: PostgreSQL unreachable");
                    return None;
                }
            };
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let mut schema = format!(
                "pm_{}_{}_{}_{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                nanos
            );
            schema.truncate(63);
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                .execute(&mut admin)
                .await
                .expect("create schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options%5Bsearch_path%5D={schema}");
            let store = Store::open(&url).await.expect("open postgres store");
            Some((
                start_on(store, dir, db_path, ScimConfig::default()).await,
                Some((admin, schema)),
            ))
        }
    }
}

async fn finish(s: TestServer, pg: Option<(AnyConnection, String)>) {
    s.stop().await;
    if let Some((mut admin, schema)) = pg {
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut admin)
            .await
            .expect("drop schema");
        let _ = admin.close().await;
    }
}

fn user_body(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": external_id,
        "active": true,
        "emails": [{"value": user_name, "primary": true}],
    })
}

fn group_body(name: &str, members: &[(&str, &str)]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": members
            .iter()
            .map(|(v, d)| json!({"value": v, "display": d}))
            .collect::<Vec<_>>(),
    })
}

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let r = s.req(Method::POST, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn get(s: &TestServer, path: &str) -> Value {
    let r = s.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// The member ids a group renders, in order.
fn member_values(g: &Value) -> Vec<String> {
    g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The group names a user renders.
fn group_names(u: &Value) -> Vec<String> {
    u["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| g["display"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every membership row names a resource of the connection: no dangling
/// reference, checked against the store directly.
async fn assert_no_dangling(s: &TestServer) {
    let store = &s.store;
    let groups = store
        .scim_page(common::CONN, ScimKind::Group, 0, 1000)
        .await
        .unwrap();
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let members = store.scim_members(common::CONN, &ids).await.unwrap();
    for (gid, ms) in members {
        let vals: Vec<String> = ms.iter().map(|m| m.value.clone()).collect();
        let kinds = store.scim_kinds_of(common::CONN, &vals).await.unwrap();
        for m in ms {
            let k = kinds.get(&m.value);
            assert!(
                k.is_some(),
                "group {gid} names {} which does not exist",
                m.value
            );
            assert_eq!(
                m.member_type.as_deref(),
                k.map(|k| k.as_str()),
                "member type of {}",
                m.value
            );
        }
    }
}

/// Users first, then the group naming one by externalId; and the reverse.
/// Both end with the same membership, rendered both ways and in the
/// gateway's typed intent.
async fn either_order(backend: fn() -> Backend, name: &str) {
    let mut finals = Vec::new();
    for group_first in [false, true] {
        let Some((s, pg)) = server(backend(), name).await else {
            return;
        };
        let (alice, bob);
        let gid;
        if group_first {
            let g = post(
                &s,
                "/Groups",
                group_body("Finance", &[("okta-alice", "Alice"), ("okta-bob", "Bob")]),
            )
            .await;
            gid = g["id"].as_str().unwrap().to_string();
            // Accepted, and nothing rendered that names nobody.
            assert_eq!(member_values(&g), Vec::<String>::new(), "{g}");
            let again = get(&s, &format!("/Groups/{gid}")).await;
            assert_eq!(member_values(&again), Vec::<String>::new(), "{again}");
            assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 2);
            assert_no_dangling(&s).await;
            let v1 = again["meta"]["version"].clone();
            alice = post(&s, "/Users", user_body("alice@corp.example", "okta-alice")).await;
            bob = post(&s, "/Users", user_body("bob@corp.example", "okta-bob")).await;
            let after = get(&s, &format!("/Groups/{gid}")).await;
            assert_ne!(
                after["meta"]["version"], v1,
                "a linked member changes the group"
            );
        } else {
            alice = post(&s, "/Users", user_body("alice@corp.example", "okta-alice")).await;
            bob = post(&s, "/Users", user_body("bob@corp.example", "okta-bob")).await;
            let g = post(
                &s,
                "/Groups",
                group_body("Finance", &[("okta-alice", "Alice"), ("okta-bob", "Bob")]),
            )
            .await;
            gid = g["id"].as_str().unwrap().to_string();
            // Resolved at once to the users' ids.
            let ids = vec![
                alice["id"].as_str().unwrap().to_string(),
                bob["id"].as_str().unwrap().to_string(),
            ];
            assert_eq!(member_values(&g), ids, "{g}");
        }
        let alice_id = alice["id"].as_str().unwrap().to_string();
        let bob_id = bob["id"].as_str().unwrap().to_string();
        let g = get(&s, &format!("/Groups/{gid}")).await;
        assert_eq!(
            member_values(&g),
            vec![alice_id.clone(), bob_id.clone()],
            "{g}"
        );
        assert!(
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["type"] == "User"),
            "{g}"
        );
        let a = get(&s, &format!("/Users/{alice_id}")).await;
        assert_eq!(group_names(&a), vec!["Finance".to_string()], "{a}");
        // The filter the IdPs use to check a membership answers it.
        let found = get(
            &s,
            &format!("/Groups?filter=members.value%20eq%20%22{bob_id}%22"),
        )
        .await;
        assert_eq!(found["totalResults"], 1, "{found}");
        // The gateway's typed intent (what the engine plans from) names
        // the group too.
        let intents = s
            .store
            .gateway_intents(common::CONN, &[alice_id.clone(), bob_id.clone()])
            .await
            .unwrap();
        assert_eq!(intents.len(), 2);
        for i in &intents {
            assert_eq!(i.groups, vec!["Finance".to_string()], "{i:?}");
        }
        assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 0);
        assert_no_dangling(&s).await;
        finals.push((
            group_names(&a),
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["display"].clone(), m["type"].clone()))
                .collect::<Vec<_>>(),
        ));
        finish(s, pg).await;
    }
    assert_eq!(finals[0], finals[1], "both orders end alike");
}

/// A pending member follows the group's list: a PATCH adding someone else
/// keeps it, one removing it drops it (the user then arrives to no group),
/// and a deleted group leaves nothing behind.
async fn pending_follows_the_list(backend: fn() -> Backend, name: &str) {
    let Some((s, pg)) = server(backend(), name).await else {
        return;
    };
    let carol = post(&s, "/Users", user_body("carol@corp.example", "okta-carol")).await;
    let carol_id = carol["id"].as_str().unwrap().to_string();
    let g = post(&s, "/Groups", group_body("Sales", &[("okta-dave", "Dave")])).await;
    let gid = g["id"].as_str().unwrap().to_string();
    // Add Carol by her id: Dave stays pending.
    let r = s
        .req(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": carol_id}]}],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(member_values(&r.body), vec![carol_id.clone()], "{}", r.body);
    assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 1);
    // Dave arrives: linked after Carol.
    let dave = post(&s, "/Users", user_body("dave@corp.example", "okta-dave")).await;
    let dave_id = dave["id"].as_str().unwrap().to_string();
    let g2 = get(&s, &format!("/Groups/{gid}")).await;
    let mut got = member_values(&g2);
    got.sort();
    let mut want = vec![carol_id.clone(), dave_id.clone()];
    want.sort();
    assert_eq!(got, want, "{g2}");

    // Removed while pending: the user arrives to no group.
    let r = s
        .req(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "okta-erin"}]}],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 1);
    let r = s
        .req(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": "members[value eq \"okta-erin\"]"}],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 0);
    let erin = post(&s, "/Users", user_body("erin@corp.example", "okta-erin")).await;
    let e = get(&s, &format!("/Users/{}", erin["id"].as_str().unwrap())).await;
    assert_eq!(group_names(&e), Vec::<String>::new(), "{e}");

    // A group deleted with a pending member leaves nothing behind.
    let g3 = post(
        &s,
        "/Groups",
        group_body("Legal", &[("okta-frank", "Frank")]),
    )
    .await;
    assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 1);
    let r = s
        .req(
            Method::DELETE,
            &format!("/Groups/{}", g3["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(s.store.scim_pending_count(common::CONN).await.unwrap(), 0);
    let frank = post(&s, "/Users", user_body("frank@corp.example", "okta-frank")).await;
    let f = get(&s, &format!("/Users/{}", frank["id"].as_str().unwrap())).await;
    assert_eq!(group_names(&f), Vec::<String>::new(), "{f}");
    assert_no_dangling(&s).await;
    finish(s, pg).await;
}

/// A value two users carry as externalId names neither: it stays pending
/// rather than link the wrong person. A member naming a deleted user is
/// pending too, never a dangling row.
async fn ambiguous_and_deleted_stay_pending(backend: fn() -> Backend, name: &str) {
    let Some((s, pg)) = server(backend(), name).await else {
        return;
    };
    let g = post(&s, "/Groups", group_body("Ops", &[("shared-ext", "Who")])).await;
    let gid = g["id"].as_str().unwrap().to_string();
    let one = post(&s, "/Users", user_body("one@corp.example", "shared-ext")).await;
    post(&s, "/Users", user_body("two@corp.example", "shared-ext")).await;
    let after = get(&s, &format!("/Groups/{gid}")).await;
    // The first arrival was the only carrier when it came: linked then;
    // the second finds nothing pending.
    assert_eq!(
        member_values(&after),
        vec![one["id"].as_str().unwrap().to_string()],
        "{after}"
    );
    // Now the value is ambiguous: a new group naming it links nobody.
    let g2 = post(&s, "/Groups", group_body("Ops2", &[("shared-ext", "Who")])).await;
    assert_eq!(member_values(&g2), Vec::<String>::new(), "{g2}");

    let gone = post(&s, "/Users", user_body("gone@corp.example", "okta-gone")).await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let r = s
        .req(Method::DELETE, &format!("/Users/{gone_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let g3 = post(&s, "/Groups", group_body("Ops3", &[(&gone_id, "Gone")])).await;
    assert_eq!(member_values(&g3), Vec::<String>::new(), "{g3}");
    assert_no_dangling(&s).await;
    finish(s, pg).await;
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(|| super::Backend::Sqlite, stringify!($case)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(|| super::Backend::Postgres, stringify!($case)).await;
                }
            )*
        }
    };
}

both!(
    either_order,
    pending_follows_the_list,
    ambiguous_and_deleted_stay_pending
);
