//! Property: a PATCH through the HTTP API, then a GET, agree with the
//! PATCH — the response equals what is stored, and every attribute the
//! operations touched has the value a simple independent model predicts.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Attributes the operations touch, as (PATCH path, JSON pointer in the
/// resource).
const ATTRS: &[(&str, &str)] = &[
    ("displayName", "/displayName"),
    ("title", "/title"),
    ("nickName", "/nickName"),
    ("name.givenName", "/name/givenName"),
    ("name.familyName", "/name/familyName"),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/department",
    ),
];

#[derive(Clone, Debug)]
enum Op {
    /// add or replace with a path.
    Set {
        attr: usize,
        add: bool,
        value: String,
    },
    /// A path-less replace of one attribute (dotted or URN key).
    SetPathless {
        attr: usize,
        value: String,
    },
    Remove {
        attr: usize,
    },
    Active {
        value: bool,
        as_string: bool,
        capitalised: bool,
    },
    WorkEmail {
        value: String,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let word = "[A-Za-z][A-Za-z0-9 ]{0,11}";
    prop_oneof![
        (0..ATTRS.len(), any::<bool>(), word).prop_map(|(attr, add, value)| Op::Set {
            attr,
            add,
            value
        }),
        (0..ATTRS.len(), word).prop_map(|(attr, value)| Op::SetPathless { attr, value }),
        (0..ATTRS.len()).prop_map(|attr| Op::Remove { attr }),
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(value, as_string, capitalised)| {
                Op::Active {
                    value,
                    as_string,
                    capitalised,
                }
            }
        ),
        "[a-z]{1,8}@[a-z]{1,6}\\.com".prop_map(|value| Op::WorkEmail { value }),
    ]
}

fn to_json(op: &Op) -> Value {
    match op {
        Op::Set { attr, add, value } => json!({
            "op": if *add { "add" } else { "replace" }, "path": ATTRS[*attr].0, "value": value
        }),
        Op::SetPathless { attr, value } => json!({
            "op": "replace", "value": { ATTRS[*attr].0: value }
        }),
        Op::Remove { attr } => json!({"op": "remove", "path": ATTRS[*attr].0}),
        Op::Active {
            value,
            as_string,
            capitalised,
        } => {
            let v = if *as_string {
                json!(if *value { "True" } else { "False" })
            } else {
                json!(value)
            };
            json!({"op": if *capitalised { "Replace" } else { "replace" }, "path": "active", "value": v})
        }
        Op::WorkEmail { value } => {
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": value})
        }
    }
}

/// The model: pointer → expected value (None = absent).
fn model(start: &Value, ops: &[Op]) -> BTreeMap<String, Option<Value>> {
    let mut m: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for (_, ptr) in ATTRS {
        m.insert(ptr.to_string(), start.pointer(ptr).cloned());
    }
    m.insert("/active".into(), start.pointer("/active").cloned());
    m.insert(
        "/emails/0/value".into(),
        start.pointer("/emails/0/value").cloned(),
    );
    for op in ops {
        match op {
            Op::Set { attr, value, .. } | Op::SetPathless { attr, value } => {
                m.insert(ATTRS[*attr].1.into(), Some(json!(value)));
            }
            Op::Remove { attr } => {
                m.insert(ATTRS[*attr].1.into(), None);
            }
            Op::Active { value, .. } => {
                m.insert("/active".into(), Some(json!(value)));
            }
            Op::WorkEmail { value } => {
                m.insert("/emails/0/value".into(), Some(json!(value)));
            }
        }
    }
    m
}

#[test]
fn patch_then_get_agrees_with_the_patch() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(start());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 1..5), |ops| {
        rt.block_on(async {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut body = user_body(&format!("prop{n}@example.com"));
            body["nickName"] = json!("nick");
            body[ENT] = json!({"department": "Start"});
            let created = server.post("/Users", body).await;
            prop_assert_eq!(created.status, StatusCode::CREATED);
            let id = created.body["id"].as_str().unwrap_or_default().to_string();
            let patch = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": ops.iter().map(to_json).collect::<Vec<_>>(),
            });
            let patched = server.patch(&format!("/Users/{id}"), patch.clone()).await;
            prop_assert_eq!(
                patched.status,
                StatusCode::OK,
                "{} -> {}",
                patch,
                patched.body
            );
            let got = server.get(&format!("/Users/{id}")).await;
            prop_assert_eq!(
                &got.body,
                &patched.body,
                "GET differs from the PATCH response"
            );
            for (ptr, want) in model(&created.body, &ops) {
                let have = got.body.pointer(&ptr).cloned();
                prop_assert_eq!(&have, &want, "{} after {}", ptr, patch);
            }
            // Only a real change moves the version.
            let strip = |b: &Value| {
                let mut b = b.clone();
                if let Some(o) = b.as_object_mut() {
                    o.remove("meta");
                }
                b
            };
            let changed = strip(&got.body) != strip(&created.body);
            let v = |b: &Value| b["meta"]["version"].as_str().map(str::to_string);
            prop_assert_eq!(v(&got.body) != v(&created.body), changed);
            Ok::<(), TestCaseError>(())
        })
    });
    rt.block_on(server.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        counter.into_inner() >= 48,
        "every case ran against the server"
    );
}
