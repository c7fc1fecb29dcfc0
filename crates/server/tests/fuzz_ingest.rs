//! Bounded fuzzing of what IdPs send the SCIM gateway: Bulk requests
//! (`POST /Bulk`) and resource bodies (`POST`/`PUT` of Users and Groups,
//! `PATCH` of either). Each target starts from the corpus kept in
//! `tests/fuzz-corpus/<target>/` (real-shaped Okta, Entra ID and RFC 7644
//! bodies; `{{user1}}`, `{{user2}}`, `{{group1}}` name seeded resources)
//! and applies proptest-chosen mutations: structural ones on the JSON
//! (a node replaced by a value of another type, a huge or odd value, a
//! `bulkId:` reference, unicode; a key deleted or its case changed; an
//! array item duplicated; a node copied over another) and, for some
//! cases, byte-level ones on the text (bit flips, insertions, deletions,
//! truncation). Requests go to the axum router in-process
//! (`tower::ServiceExt::oneshot`) over a fresh SQLite store.
//!
//! Invariants, beyond "never panics" (each case also runs under
//! `catch_unwind`, so a panic names the input; a handler panic would be a
//! 500, which fails the next check):
//!
//! * nothing is answered 5xx, and every rejection is an RFC 7644 §3.12
//!   error: the Error URN, `status` equal to the HTTP status, a known
//!   `scimType` if any, `application/scim+json` — in a Bulk response, per
//!   operation too;
//! * a rejected request changes nothing;
//! * a Bulk applies exactly what it reports: a resource appears only if an
//!   operation reports creating it, disappears only if one reports
//!   deleting it, changes only if one reports modifying it (or, for
//!   groups, a user operation succeeded: membership follows users), and a
//!   reported version is the stored one;
//! * a created or replaced resource reads back (`GET`) as it was answered;
//! * no group renders a member that names no resource;
//! * the gateway answers a normal `GET /Users` afterwards.
//!
//! Bounded: `ROSTER_FUZZ_CASES` mutations per target (default 120), a few
//! seconds in the normal suite; set it higher for a longer run. A failing
//! case is shrunk by proptest and can be added to the corpus.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roster_server::{NullSink, ScimConfig, ScimState, scim_router, tokens};
use roster_store::Store;
use serde_json::{Value, json};
use tower::ServiceExt;

const CONN: &str = "acme-okta";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SCIM_TYPES: &[&str] = &[
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
];

// ---------------------------------------------------------------- corpus

fn corpus(target: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

fn cases() -> u32 {
    std::env::var("ROSTER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

// ------------------------------------------------------------- mutations

/// A structural change at the `target`-th node (pre-order, modulo the
/// node count) of a JSON document.
#[derive(Clone, Debug)]
enum JsonMutation {
    Replace(usize, usize),
    DeleteKey(usize),
    FlipKeyCase(usize),
    DuplicateItem(usize),
    CopyNode(usize, usize),
}

/// Values that matter to SCIM ingest: every JSON type, edge numbers,
/// bulkId references, versions, paths, long and odd strings.
fn interesting_value(k: usize) -> Value {
    let deep = (0..40).fold(json!("x"), |v, _| json!([v]));
    let all = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(u64::MAX),
        json!(""),
        json!(" "),
        json!("bulkId:qwerty"),
        json!("bulkId:"),
        json!("bulkId:nope"),
        json!("bulkId:u-new"),
        json!("/Users/bulkId:qwerty"),
        json!("/Groups"),
        json!("/Users/"),
        json!("W/\"999\""),
        json!("*"),
        json!("DELETE"),
        json!("True"),
        json!("x".repeat(70_000)),
        json!("\u{0}\u{202e}𝔘ñí\u{fe0f}\u{301}e\u{200b}"),
        json!("members[value eq \"x\"]"),
        json!([]),
        json!({}),
        json!([{"value": "bulkId:qwerty"}]),
        json!({"value": "no-such-id"}),
        deep,
    ];
    all[k % all.len()].clone()
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>()).prop_map(|(t, k)| JsonMutation::Replace(t, k)),
        2 => any::<usize>().prop_map(JsonMutation::DeleteKey),
        1 => any::<usize>().prop_map(JsonMutation::FlipKeyCase),
        1 => any::<usize>().prop_map(JsonMutation::DuplicateItem),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(t, s)| JsonMutation::CopyNode(t, s)),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node(v: &Value, n: usize) -> Option<Value> {
    fn walk(v: &Value, n: &mut usize) -> Option<Value> {
        if *n == 0 {
            return Some(v.clone());
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter().find_map(|x| walk(x, n)),
            Value::Object(o) => o.values().find_map(|x| walk(x, n)),
            _ => None,
        }
    }
    let mut n = n;
    walk(v, &mut n)
}

/// Applies `f` to the `n`-th node's parent container with the child's
/// position; `false` when the node is the root.
fn with_parent(v: &mut Value, n: usize, f: &mut dyn FnMut(&mut Value, usize)) -> bool {
    fn walk(v: &mut Value, n: &mut usize, f: &mut dyn FnMut(&mut Value, usize)) -> bool {
        let len = match v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => return false,
        };
        for i in 0..len {
            if *n == 0 {
                f(v, i);
                return true;
            }
            *n -= 1;
            let child = match v {
                Value::Array(a) => &mut a[i],
                Value::Object(o) => o.values_mut().nth(i).expect("index in range"),
                _ => unreachable!(),
            };
            if walk(child, n, f) {
                return true;
            }
        }
        false
    }
    // Node 0 is the root, which has no parent.
    if n == 0 {
        return false;
    }
    let mut n = n - 1;
    walk(v, &mut n, f)
}

fn mutate_json(doc: &mut Value, m: &JsonMutation) {
    let count = count_nodes(doc);
    let at = |t: usize| t % count;
    match *m {
        JsonMutation::Replace(t, k) => {
            let value = interesting_value(k);
            if at(t) == 0 {
                *doc = value;
            } else {
                with_parent(doc, at(t), &mut |p, i| match p {
                    Value::Array(a) => a[i] = value.clone(),
                    Value::Object(o) => *o.values_mut().nth(i).expect("in range") = value.clone(),
                    _ => {}
                });
            }
        }
        JsonMutation::DeleteKey(t) => {
            with_parent(doc, at(t), &mut |p, i| match p {
                Value::Array(a) => {
                    a.remove(i);
                }
                Value::Object(o) => {
                    let key = o.keys().nth(i).cloned().expect("in range");
                    o.remove(&key);
                }
                _ => {}
            });
        }
        JsonMutation::FlipKeyCase(t) => {
            with_parent(doc, at(t), &mut |p, i| {
                if let Value::Object(o) = p {
                    let key = o.keys().nth(i).cloned().expect("in range");
                    let flipped: String = key
                        .chars()
                        .map(|c| {
                            if c.is_ascii_uppercase() {
                                c.to_ascii_lowercase()
                            } else {
                                c.to_ascii_uppercase()
                            }
                        })
                        .collect();
                    if let Some(v) = o.remove(&key) {
                        o.insert(flipped, v);
                    }
                }
            });
        }
        JsonMutation::DuplicateItem(t) => {
            with_parent(doc, at(t), &mut |p, i| {
                if let Value::Array(a) = p {
                    let item = a[i].clone();
                    a.insert(i, item);
                }
            });
        }
        JsonMutation::CopyNode(t, s) => {
            if let Some(donor) = nth_node(doc, s % count) {
                with_parent(doc, at(t), &mut |p, i| match p {
                    Value::Array(a) => a[i] = donor.clone(),
                    Value::Object(o) => *o.values_mut().nth(i).expect("in range") = donor.clone(),
                    _ => {}
                });
            }
        }
    }
}

#[derive(Clone, Debug)]
enum ByteMutation {
    FlipBit(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| ByteMutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteMutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| ByteMutation::Delete(i, n)),
        any::<usize>().prop_map(ByteMutation::Truncate),
    ]
}

fn mutate_bytes(mut data: Vec<u8>, muts: &[ByteMutation]) -> Vec<u8> {
    for m in muts {
        let len = data.len();
        match *m {
            ByteMutation::FlipBit(i, b) if len > 0 => data[i % len] ^= 1 << b,
            ByteMutation::Insert(i, b) => data.insert(i % (len + 1), b),
            ByteMutation::Delete(i, n) if len > 0 => {
                let s = i % len;
                data.drain(s..(s + n).min(len));
            }
            ByteMutation::Truncate(i) => data.truncate(i % (len + 1)),
            _ => {}
        }
    }
    data
}

/// One fuzz case: a corpus file, structural mutations, and (sometimes)
/// byte mutations of the result; `flag` picks between two requests where
/// a file allows both (POST or PUT).
type Case = (usize, Vec<JsonMutation>, Vec<ByteMutation>, bool);

fn case(corpus_len: usize) -> impl Strategy<Value = Case> {
    (
        0..corpus_len,
        proptest::collection::vec(json_mutation(), 0..4),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(byte_mutation(), 1..4),
        ],
        any::<bool>(),
    )
}

// --------------------------------------------------------------- gateway

/// The gateway over a fresh SQLite store, with two seeded users and a
/// seeded group, called in-process.
struct Gateway {
    router: Router,
    token: String,
    ids: BTreeMap<&'static str, String>,
    pristine: State,
    _store: Store,
    _dir: tempfile::TempDir,
}

/// Every resource by id: (is a group, its JSON).
type State = BTreeMap<String, (bool, Value)>;

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
    raw: String,
}

impl Gateway {
    async fn start() -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("roster.db");
        let store = Store::open(db.to_str().expect("utf-8"))
            .await
            .expect("open store");
        let token = tokens::create_token(&store, CONN, "fuzz", 1)
            .await
            .expect("token")
            .token;
        let state =
            ScimState::with_config(store.clone(), Arc::new(NullSink), ScimConfig::default());
        let mut g = Gateway {
            router: scim_router(state),
            token,
            ids: BTreeMap::new(),
            pristine: State::new(),
            _store: store,
            _dir: dir,
        };
        g.seed().await;
        g
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/scim/v2/{CONN}{path}"))
            .header(header::HOST, "roster.test")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/scim+json");
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer {
            status,
            content_type,
            body,
            raw,
        }
    }

    async fn must(&self, method: Method, path: &str, body: Value) -> Value {
        let a = self
            .call(
                method.clone(),
                path,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert!(
            a.status.is_success(),
            "{method} {path}: {} {}",
            a.status,
            a.raw
        );
        a.body
    }

    /// Deletes everything, then creates the seeds afresh.
    async fn seed(&mut self) {
        for id in self.snapshot().await.unwrap_or_default().keys() {
            for kind in ["Users", "Groups"] {
                self.call(Method::DELETE, &format!("/{kind}/{id}"), None)
                    .await;
            }
        }
        let user = |n: u32| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("seed{n}@example.com"),
                "externalId": format!("00u-seed{n}"),
                "name": {"givenName": "Seed", "familyName": format!("No{n}")},
                "emails": [{"value": format!("seed{n}@example.com"), "type": "work", "primary": true}],
                "active": true
            })
        };
        let u1 = self.must(Method::POST, "/Users", user(1)).await;
        let u2 = self.must(Method::POST, "/Users", user(2)).await;
        let g1 = self
            .must(
                Method::POST,
                "/Groups",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Seed Group",
                    "members": [{"value": u1["id"]}]
                }),
            )
            .await;
        self.ids = BTreeMap::from([
            ("{{user1}}", u1["id"].as_str().unwrap().to_string()),
            ("{{user2}}", u2["id"].as_str().unwrap().to_string()),
            ("{{group1}}", g1["id"].as_str().unwrap().to_string()),
        ]);
        self.pristine = self.snapshot().await.expect("snapshot after seeding");
    }

    /// Back to the seeded state if a case changed anything.
    async fn reset(&mut self) {
        if self.snapshot().await.as_ref() != Ok(&self.pristine) {
            self.seed().await;
        }
    }

    fn fill(&self, text: &str) -> String {
        self.ids
            .iter()
            .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
    }

    /// Every user and group; an error if the gateway does not answer a
    /// normal list.
    async fn snapshot(&self) -> Result<State, String> {
        let mut out = State::new();
        for (kind, is_group) in [("Users", false), ("Groups", true)] {
            let a = self
                .call(Method::GET, &format!("/{kind}?count=1000"), None)
                .await;
            if a.status != StatusCode::OK {
                return Err(format!("GET /{kind} answered {}: {}", a.status, a.raw));
            }
            let resources = a.body["Resources"].as_array().cloned().unwrap_or_default();
            if a.body["totalResults"].as_u64() != Some(resources.len() as u64) {
                return Err(format!("GET /{kind} is not one whole page: {}", a.raw));
            }
            for r in resources {
                let id = r["id"]
                    .as_str()
                    .ok_or_else(|| format!("a listed resource has no id: {r}"))?
                    .to_string();
                out.insert(id, (is_group, r));
            }
        }
        Ok(out)
    }
}

// ------------------------------------------------------------ invariants

/// An RFC 7644 §3.12 error body with this status.
fn check_error_body(status: u16, body: &Value) -> Result<(), String> {
    let urn = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x == ERROR_URN));
    if !urn {
        return Err(format!("error without the Error URN: {body}"));
    }
    if body["status"].as_str() != Some(status.to_string().as_str()) {
        return Err(format!("error status is not {status}: {body}"));
    }
    if let Some(t) = body.get("scimType")
        && !t.as_str().is_some_and(|t| SCIM_TYPES.contains(&t))
    {
        return Err(format!("unknown scimType: {body}"));
    }
    if !(400..500).contains(&status) {
        return Err(format!("status {status} is not a client error: {body}"));
    }
    Ok(())
}

fn check_rejection(a: &Answer) -> Result<(), String> {
    check_error_body(a.status.as_u16(), &a.body)
        .map_err(|e| format!("HTTP {}: {e}\nraw: {}", a.status, a.raw))?;
    if !a.content_type.starts_with("application/scim+json") {
        return Err(format!("error content-type {:?}", a.content_type));
    }
    Ok(())
}

/// No group renders a member naming nothing.
fn check_members(after: &State) -> Result<(), String> {
    for (id, (is_group, r)) in after {
        if !is_group {
            continue;
        }
        for m in r["members"].as_array().into_iter().flatten() {
            let target = m["value"].as_str().unwrap_or_default();
            if !after.contains_key(target) {
                return Err(format!("group {id} renders member {m} that names nothing"));
            }
        }
    }
    Ok(())
}

/// The resource without `meta` (versions and timestamps move on a no-op
/// PUT) and a user's `groups` (read-only, derived from the groups'
/// members).
fn content(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
        o.remove("groups");
    }
    v
}

/// A group with its members in a fixed order (`members` is a set; the
/// store lists them in its own order).
fn unordered(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(Value::Array(m)) = v.get_mut("members") {
        m.sort_by_key(|x| x.to_string());
    }
    v
}

fn changed(before: &State, after: &State) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(id, (_, b))| {
            after
                .get(*id)
                .is_some_and(|(_, a)| content(a) != content(b))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

fn check_bulk(before: &State, a: &Answer, after: &State) -> Result<(), String> {
    if a.status != StatusCode::OK {
        check_rejection(a)?;
        if before != after {
            return Err("a rejected Bulk request changed resources".into());
        }
        return Ok(());
    }
    if a.body["schemas"][0] != roster_server::BULK_RESPONSE_SCHEMA {
        return Err(format!("200 without a BulkResponse: {}", a.raw));
    }
    let ops = a.body["Operations"]
        .as_array()
        .ok_or_else(|| format!("BulkResponse without Operations: {}", a.raw))?;
    let (mut created, mut deleted, mut modified) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeMap::<String, Vec<Value>>::new(),
    );
    let mut user_op_succeeded = false;
    for op in ops {
        let status: u16 = op["status"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("operation without a status: {op}"))?;
        if status >= 300 {
            check_error_body(status, &op["response"])
                .map_err(|e| format!("operation {op}: {e}"))?;
            continue;
        }
        let location = op["location"]
            .as_str()
            .ok_or_else(|| format!("successful operation without a location: {op}"))?;
        let id = location.rsplit('/').next().unwrap_or_default().to_string();
        if location.contains("/Users/") {
            user_op_succeeded = true;
        }
        match status {
            201 => {
                created.insert(id);
            }
            204 => {
                deleted.insert(id);
            }
            200 => modified.entry(id).or_default().push(op["version"].clone()),
            s => return Err(format!("operation status {s}: {op}")),
        }
    }
    let before_ids: BTreeSet<&String> = before.keys().collect();
    let after_ids: BTreeSet<&String> = after.keys().collect();
    let appeared: BTreeSet<String> = after_ids
        .difference(&before_ids)
        .map(|s| (*s).clone())
        .collect();
    let disappeared: BTreeSet<String> = before_ids
        .difference(&after_ids)
        .map(|s| (*s).clone())
        .collect();
    let expected_new: BTreeSet<String> = created.difference(&deleted).cloned().collect();
    if appeared != expected_new {
        return Err(format!(
            "resources appeared {appeared:?}, but the response reports creating {created:?} and deleting {deleted:?}"
        ));
    }
    let expected_gone: BTreeSet<String> = deleted
        .intersection(&before.keys().cloned().collect())
        .cloned()
        .collect();
    if disappeared != expected_gone {
        return Err(format!(
            "resources disappeared {disappeared:?}, but the response reports deleting {deleted:?}"
        ));
    }
    for id in changed(before, after) {
        let is_group = before[&id].0;
        let explained = modified.contains_key(&id)
            || (is_group && user_op_succeeded)
            || (is_group && !deleted.is_empty());
        if !explained {
            return Err(format!(
                "{id} changed but no operation reports modifying it:\nbefore {}\nafter  {}",
                before[&id].1, after[&id].1
            ));
        }
    }
    // A user's version also moves when its groups change.
    let group_op_succeeded = ops.iter().any(|op| {
        op["location"]
            .as_str()
            .is_some_and(|l| l.contains("/Groups/"))
            && op["status"].as_str().is_some_and(|s| s.starts_with('2'))
    });
    if deleted.is_empty() && !group_op_succeeded {
        for (id, versions) in &modified {
            if let ([v], Some((false, r))) = (versions.as_slice(), after.get(id))
                && *v != r["meta"]["version"]
            {
                return Err(format!(
                    "{id}: reported version {v}, stored {}",
                    r["meta"]["version"]
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ runs

/// Runs `target`'s corpus unmutated, then `cases()` mutated cases, each
/// through `check` on one gateway (reset to its seeds between cases).
fn fuzz(target: &str, check: impl AsyncCheck) {
    let corpus = corpus(target);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let gateway = std::cell::RefCell::new(rt.block_on(Gateway::start()));
    let run = |(seed, json_muts, byte_muts, flag): &Case| -> Result<(), TestCaseError> {
        let (name, text) = &corpus[*seed];
        let mut g = gateway.borrow_mut();
        let filled = g.fill(text);
        let input: Vec<u8> = match serde_json::from_str::<Value>(&filled) {
            Ok(mut doc) if !json_muts.is_empty() || !byte_muts.is_empty() => {
                for m in json_muts {
                    mutate_json(&mut doc, m);
                }
                mutate_bytes(serde_json::to_vec(&doc).expect("json"), byte_muts)
            }
            _ => filled.into_bytes(),
        };
        let shown = || {
            let s = String::from_utf8_lossy(&input);
            if s.len() > 4000 {
                format!(
                    "{}… ({} bytes)",
                    s.chars().take(4000).collect::<String>(),
                    s.len()
                )
            } else {
                s.into_owned()
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let r = check.check(&g, name, &input, *flag).await;
                g.reset().await;
                r
            })
        }));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestCaseError::fail(format!(
                "{name}: {e}\ninput: {}",
                shown()
            ))),
            Err(_) => Err(TestCaseError::fail(format!(
                "{name}: panicked on input: {}",
                shown()
            ))),
        }
    };
    for i in 0..corpus.len() {
        run(&(i, Vec::new(), Vec::new(), false)).unwrap_or_else(|e| panic!("{target} corpus: {e}"));
        run(&(i, Vec::new(), Vec::new(), true)).unwrap_or_else(|e| panic!("{target} corpus: {e}"));
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(corpus.len()), |c| run(&c))
        .unwrap_or_else(|e| panic!("{target}: {e}"));
}

/// A target's check: sends `input` (built from corpus file `name`) and
/// judges the answer and the store around it.
trait AsyncCheck {
    async fn check(&self, g: &Gateway, name: &str, input: &[u8], flag: bool) -> Result<(), String>;
}

struct Bulk;

impl AsyncCheck for Bulk {
    async fn check(
        &self,
        g: &Gateway,
        _name: &str,
        input: &[u8],
        _flag: bool,
    ) -> Result<(), String> {
        let before = g.snapshot().await?;
        let a = g.call(Method::POST, "/Bulk", Some(input.to_vec())).await;
        let after = g
            .snapshot()
            .await
            .map_err(|e| format!("the gateway is unwell after the Bulk: {e}"))?;
        check_bulk(&before, &a, &after)
            .map_err(|e| format!("{e}\nresponse {}: {}", a.status, a.raw))?;
        check_members(&after)
    }
}

struct Ingest;

impl AsyncCheck for Ingest {
    async fn check(&self, g: &Gateway, name: &str, input: &[u8], flag: bool) -> Result<(), String> {
        let kind = if name.contains("group") {
            "Groups"
        } else {
            "Users"
        };
        let seeded = &g.ids[if kind == "Groups" {
            "{{group1}}"
        } else {
            "{{user1}}"
        }];
        let (method, path) = if name.starts_with("patch") {
            (Method::PATCH, format!("/{kind}/{seeded}"))
        } else if flag {
            (Method::PUT, format!("/{kind}/{seeded}"))
        } else {
            (Method::POST, format!("/{kind}"))
        };
        let before = g.snapshot().await?;
        let a = g.call(method.clone(), &path, Some(input.to_vec())).await;
        let after = g
            .snapshot()
            .await
            .map_err(|e| format!("the gateway is unwell after {method} {path}: {e}"))?;
        let answered = || format!("{method} {path} answered {}: {}", a.status, a.raw);
        if !a.status.is_success() {
            check_rejection(&a).map_err(|e| format!("{e}\n{}", answered()))?;
            if before != after {
                return Err(format!(
                    "a rejected request changed resources\n{}",
                    answered()
                ));
            }
            return check_members(&after);
        }
        let id = a.body["id"]
            .as_str()
            .ok_or_else(|| format!("success without an id\n{}", answered()))?;
        let read = g.call(Method::GET, &format!("/{kind}/{id}"), None).await;
        if read.status != StatusCode::OK || unordered(&read.body) != unordered(&a.body) {
            return Err(format!(
                "the resource reads back differently: {} {}\n{}",
                read.status,
                read.raw,
                answered()
            ));
        }
        let unexplained: Vec<String> = changed(&before, &after)
            .into_iter()
            .filter(|c| c != id && !(after[c].0 && kind == "Users"))
            .collect();
        if !unexplained.is_empty() {
            return Err(format!(
                "{method} {path} also changed {unexplained:?}\n{}",
                answered()
            ));
        }
        check_members(&after)
    }
}

#[test]
fn scim_bulk_requests_apply_exactly_what_they_report() {
    fuzz("bulk", Bulk);
}

#[test]
fn scim_resource_bodies_are_stored_as_answered_or_refused_cleanly() {
    fuzz("ingest", Ingest);
}
