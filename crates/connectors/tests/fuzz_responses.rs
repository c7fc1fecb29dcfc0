//! Bounded fuzzing of vendor responses into every connector's read path.
//!
//! Each target is one connector against one vendor. Its corpus,
//! `tests/fuzz-corpus/<target>/session.json`, is a recorded read of the
//! vendor's simulator (`roster_sim`): every request the connector made
//! through `driver::read_all`, with the simulator's status, headers and
//! body, the account keys the read returned, and a few recorded refusals
//! (wrong credentials). A loopback fake replays the session; proptest picks
//! one exchange and corrupts it on every replay of it: structural changes
//! to its JSON (a node of another type, a key deleted, an array item
//! dropped — a short page), byte mutations (bit flips, insertions,
//! deletions, truncation), a body cut short on the wire (the declared
//! `Content-Length` is not sent), another HTTP status, or a recorded
//! refusal in its place. The connector then reads through the driver with
//! a fast retry policy, as the engine would.
//!
//! Invariants, beyond "never panics" (each case runs under
//! `catch_unwind`, so a panic names the exchange and the mutation) and
//! "always ends" (a case that hangs fails):
//!
//! * **A broken answer is never a complete read.** roster deactivates
//!   accounts missing from a complete read, so a read that says complete
//!   after a corrupted exchange must still hold every account of the
//!   intact session. Corruptions that a client cannot tell from a genuine
//!   answer are exempt: byte mutations that leave valid JSON, a deleted
//!   key (a missing next-page marker is how a last page looks), a dropped
//!   item where the vendor reports no total, a string where a number was
//!   (vendors send ids either way), and chains of structural changes (a
//!   later one may undo an earlier one). Everything else — a body that is
//!   not JSON or not UTF-8, a body cut short, a node of the wrong type, an
//!   error status, a short page against a reported total — must fail the
//!   page (the read then ends incomplete, or fails).
//! * **Failures are classified for the driver and the engine**: a 429 is
//!   `RateLimited`; 408 and 5xx are `Transient`; other statuses are not
//!   retryable (a 401 may be a `Transient` token refresh where the
//!   connector holds an OAuth token); a garbled 2xx body is never
//!   `Config` or `Unsupported`, and never `Unauthorized` unless the vendor
//!   puts its status codes in the body (Expensify).
//! * The intact session replays to a complete read of the recorded
//!   accounts (else the corpus is stale: re-record it).
//!
//! Bounded: `ROSTER_FUZZ_CASES` cases per target (default 40), a few
//! seconds per target in the normal suite; set it higher for a longer run.
//! Re-record the sessions (after a simulator or connector changes its
//! requests) with `cargo test -p roster-connectors --test fuzz_responses
//! -- --ignored record_sessions`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roster_catalog::Catalog;
use roster_connectors::bill_spend::{BillSpendConfig, BillSpendConnector};
use roster_connectors::driver::{self, DriverOptions};
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::idp_group::{Idp, IdpGroupConfig, IdpGroupConnector};
use roster_connectors::okta_assign::{OktaAssignConfig, OktaAssignConnector};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_connectors::retry::RetryPolicy;
use roster_connectors::scim::{ScimAuth, ScimConfig, ScimConnector};
use roster_connectors::spendesk::{SpendeskConfig, SpendeskConnector};
use roster_connectors::{Connector, ConnectorError, RateLimiter, SecretString};
use roster_core::{ConnectionId, Observed};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ORIGIN: &str = "{{origin}}";
const TIMEOUT: Duration = Duration::from_secs(2);

// ------------------------------------------------------------- sessions

/// One recorded request and its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Exchange {
    method: String,
    /// Path and query, with `{{origin}}` for the server's origin.
    target: String,
    request_body: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A recorded read of one vendor.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    /// The connector's base URL without the origin (e.g. `/scim/v2`).
    base_path: String,
    /// The OAuth token endpoint without the origin, where there is one.
    token_path: String,
    exchanges: Vec<Exchange>,
    /// Answers to a connector with the wrong credentials.
    refusals: Vec<Exchange>,
    /// The account keys the recorded read returned (complete).
    accounts: Vec<String>,
}

/// A corruption that once broke an invariant, kept in
/// `tests/fuzz-corpus/<target>/regressions.json` and replayed first (its
/// node and byte positions refer to the recorded session).
#[derive(Debug, Deserialize)]
struct Regression {
    exchange: usize,
    corruption: Corruption,
}

fn regressions(target: &str) -> Vec<Regression> {
    let path = corpus_dir(target).join("regressions.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("corpus {}: {e}", path.display()))
        }
        Err(_) => Vec::new(),
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

fn load(target: &str) -> Session {
    let path = corpus_dir(target).join("session.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("corpus {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("corpus {}: {e}", path.display()))
}

// ------------------------------------------------------------- targets

/// The connectors under test, by target name.
const TARGETS: &[&str] = &[
    "scim",
    "scim-oauth",
    "expensify",
    "bill-spend",
    "spendesk",
    "okta-assign",
    "idp-entra",
    "idp-okta",
    "idp-onelogin",
    "rest-zoom",
    "rest-atlassian",
    "rest-zendesk",
    "rest-asana",
    "rest-hubspot",
];

/// The right secret, and the one the refusals were recorded with.
fn secret(target: &str, right: bool) -> SecretString {
    let s = match target {
        "scim" => "scim-token",
        "scim-oauth" => "client-secret",
        "expensify" => "partner-secret",
        "bill-spend" => "bill-token",
        "spendesk" => "key-secret",
        "okta-assign" | "idp-okta" => "okta-token",
        "idp-entra" => "client-s3cret",
        "idp-onelogin" => "ol-s3cret",
        _ => "sim-secret",
    };
    SecretString::new(if right {
        s.to_string()
    } else {
        format!("{s}-wrong")
    })
}

/// `target`'s connector against a server at `origin`.
fn connector(target: &str, origin: &str, s: &Session, right_secret: bool) -> Arc<dyn Connector> {
    let base = format!("{origin}{}", s.base_path);
    let token_url = format!("{origin}{}", s.token_path);
    let secret = secret(target, right_secret);
    let id = ConnectionId::new(target);
    match target {
        "scim" | "scim-oauth" => {
            let mut c = ScimConfig::new(id, base, secret);
            c.timeout = TIMEOUT;
            if target == "scim-oauth" {
                c.auth = ScimAuth::OAuthClientCredentials {
                    token_url,
                    client_id: "roster-client".into(),
                    scope: None,
                };
            }
            Arc::new(ScimConnector::new(c).expect("scim connector"))
        }
        "expensify" => {
            let mut c = ExpensifyConfig::new(id, "partner", secret).with_base_url(base);
            c.timeout = TIMEOUT;
            c.policies_per_page = 1;
            c.rate_limits = c.rate_limits.iter().map(|w| w.scaled(0.02)).collect();
            Arc::new(ExpensifyConnector::new(c).expect("expensify connector"))
        }
        "bill-spend" => {
            let mut c = BillSpendConfig::new(id, secret).with_base_url(base);
            c.timeout = TIMEOUT;
            Arc::new(BillSpendConnector::new(c).expect("bill connector"))
        }
        "spendesk" => {
            let mut c = SpendeskConfig::new(id, "key-id", secret).with_base_url(base);
            c.timeout = TIMEOUT;
            Arc::new(SpendeskConnector::new(c).expect("spendesk connector"))
        }
        "okta-assign" => {
            let mut c = OktaAssignConfig::new(id, base, secret, "0oabill");
            c.timeout = TIMEOUT;
            Arc::new(OktaAssignConnector::new(c).expect("okta connector"))
        }
        "idp-entra" | "idp-okta" | "idp-onelogin" => {
            let (idp, app) = match target {
                "idp-entra" => (Idp::Entra, "sp-bill"),
                "idp-okta" => (Idp::Okta, "0oabill"),
                _ => (Idp::OneLogin, "7001"),
            };
            let mut c = IdpGroupConfig::new(id, idp, base, secret, app, vec!["BILL Users".into()]);
            match target {
                "idp-entra" => {
                    c.login_url = Some(origin.to_string());
                    c.tenant = Some("contoso".into());
                    c.client_id = Some("roster-client".into());
                }
                "idp-onelogin" => c.client_id = Some("ol-client".into()),
                _ => {}
            }
            c.app_name = "BILL Spend & Expense".into();
            c.timeout = TIMEOUT;
            Arc::new(IdpGroupConnector::new(c).expect("idp connector"))
        }
        rest => {
            let vendor = rest.strip_prefix("rest-").expect("a rest target");
            let record = Catalog::builtin()
                .expect("catalog")
                .get(vendor)
                .cloned()
                .expect("record");
            let mut s = ConnectorSettings::new(id)
                .with_path("api")
                .with_base_url(base)
                .with_secret(secret)
                .with_timeout(TIMEOUT)
                .with_option("page_size", "3");
            match vendor {
                "zoom" => {
                    s = s
                        .with_username("sim-client")
                        .with_option("account_id", "T1")
                        .with_option("token_url", token_url);
                }
                "zendesk" => s = s.with_username("admin@example.com/token"),
                "atlassian" => s = s.with_option("org_id", "T1"),
                "asana" => s = s.with_option("workspace_gid", "T1"),
                _ => {}
            }
            registry::build(&record, &s).expect("rest connector")
        }
    }
}

/// Whether the vendor reports its total, so that a short page is
/// detectable.
fn reports_total(target: &str, exchange: &Exchange) -> bool {
    let body: Value = serde_json::from_str(&exchange.body).unwrap_or(Value::Null);
    let has = |k: &str| body.get(k).is_some() || body.pointer(&format!("/meta/{k}")).is_some();
    match target {
        "scim" | "scim-oauth" => has("totalResults"),
        t if t.starts_with("rest-") => {
            has("total") || has("total_records") || has("count") || has("total_count")
        }
        _ => false,
    }
}

/// Vendors whose bodies carry their own status codes, so a mutated body
/// may legitimately read as a refusal.
fn codes_in_body(target: &str) -> bool {
    target == "expensify"
}

// ---------------------------------------------------------- loopback HTTP

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// An answer as sent: `declared` is the `Content-Length` header, which may
/// exceed the body (a body cut short on the wire).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    declared: usize,
}

async fn write_reply(sock: &mut TcpStream, r: &Reply) {
    let mut head = format!("HTTP/1.1 {} Fuzz\r\n", r.status);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        r.declared
    ));
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(&r.body).await;
    let _ = sock.shutdown().await;
}

/// Headers worth keeping from a vendor answer (the fake writes its own
/// framing).
fn kept(name: &str) -> bool {
    !matches!(
        name,
        "content-length" | "transfer-encoding" | "connection" | "date" | "keep-alive"
    )
}

/// A server on loopback that answers each request with `answer`.
async fn serve<F, Fut>(answer: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut sock).await {
                    let reply = answer(req).await;
                    write_reply(&mut sock, &reply).await;
                }
            });
        }
    });
    (origin, task)
}

// --------------------------------------------------------------- replay

/// What the fake serves in place of one exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Corruption {
    /// Structural changes to the body's JSON.
    Json(Vec<JsonMutation>),
    /// Byte changes to the body.
    Bytes(Vec<ByteMutation>),
    /// The first `n` (modulo the length) bytes of the body, under the full
    /// body's `Content-Length`.
    CutOnTheWire(usize),
    /// Another status, same headers and body.
    Status(u16),
    /// One of the recorded refusals.
    Refusal(usize),
    /// 200 with an empty body.
    Empty,
}

/// How a corruption may be judged: whether a client can tell it from a
/// genuine answer, and what the failure should be.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Indistinguishable from a genuine answer: only "no panic".
    Anything,
    /// The page must fail (or the read hold every account anyway) with
    /// an error of this kind.
    Fails(Class),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    /// A garbled 2xx body: retryable, or a vendor refusal, never the
    /// configuration's fault.
    Garbled,
    RateLimited,
    Transient,
    /// Transient or a protocol error (a body cut short on the wire).
    Retryable,
    /// 401: unauthorized, or a token refresh (transient).
    Unauthorized401,
    /// Other 4xx: not retryable.
    Permanent,
}

fn class_of_status(status: u16) -> Class {
    match status {
        429 => Class::RateLimited,
        408 | 500..=599 => Class::Transient,
        401 => Class::Unauthorized401,
        _ => Class::Permanent,
    }
}

fn check_class(target: &str, class: Class, code: &str) -> Result<(), String> {
    let ok = match class {
        Class::Garbled => match code {
            "CONN-0006" | "CONN-0007" => false,
            "CONN-0001" => codes_in_body(target),
            _ => true,
        },
        Class::RateLimited => code == "CONN-0002",
        Class::Transient => code == "CONN-0003",
        Class::Retryable => matches!(code, "CONN-0003" | "CONN-0005"),
        Class::Unauthorized401 => matches!(code, "CONN-0001" | "CONN-0003"),
        // Not retryable; Expensify reads its body's code before the HTTP
        // status, so its refusals keep their body's class.
        Class::Permanent => {
            matches!(code, "CONN-0001" | "CONN-0004" | "CONN-0006" | "CONN-0008")
                || codes_in_body(target)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{code} is the wrong class of failure for {class:?}"
        ))
    }
}

/// The reply for exchange `e` after `corruption`, and what to expect.
fn corrupt(target: &str, s: &Session, e: &Exchange, corruption: &Corruption) -> (Reply, Expect) {
    let mut reply = Reply {
        status: e.status,
        headers: e.headers.clone(),
        body: e.body.clone().into_bytes(),
        declared: 0,
    };
    let was_json = serde_json::from_str::<Value>(&e.body).is_ok();
    let success = (200..300).contains(&e.status);
    let expect = match corruption {
        Corruption::Json(muts) => match serde_json::from_str::<Value>(&e.body) {
            Ok(mut doc) => {
                // One indistinguishable change may explain what is missing,
                // and a later change may undo an earlier one (a node
                // retyped twice, back to its own type with another value):
                // only a single telltale change must fail.
                let mut detectable = muts.len() == 1;
                for m in muts {
                    detectable &= mutate_json(&mut doc, m, reports_total(target, e));
                }
                reply.body = serde_json::to_vec(&doc).expect("json");
                if detectable && success {
                    Expect::Fails(Class::Garbled)
                } else {
                    Expect::Anything
                }
            }
            Err(_) => Expect::Anything,
        },
        Corruption::Bytes(muts) => {
            reply.body = mutate_bytes(reply.body, muts);
            let still_json = serde_json::from_slice::<Value>(&reply.body).is_ok();
            if was_json && !still_json && success {
                Expect::Fails(Class::Garbled)
            } else {
                Expect::Anything
            }
        }
        Corruption::CutOnTheWire(n) => {
            let len = reply.body.len();
            if len == 0 {
                Expect::Anything
            } else {
                reply.declared = len;
                reply.body.truncate(n % len);
                Expect::Fails(Class::Retryable)
            }
        }
        Corruption::Status(st) => {
            reply.status = *st;
            Expect::Fails(class_of_status(*st))
        }
        Corruption::Refusal(k) if !s.refusals.is_empty() => {
            let r = &s.refusals[k % s.refusals.len()];
            reply.status = r.status;
            reply.headers = r.headers.clone();
            reply.body = r.body.clone().into_bytes();
            if (200..300).contains(&r.status) {
                // A refusal inside an HTTP 200 (Expensify).
                Expect::Fails(Class::Garbled)
            } else {
                Expect::Fails(class_of_status(r.status))
            }
        }
        Corruption::Refusal(_) => Expect::Anything,
        Corruption::Empty => {
            reply.status = 200;
            reply.body.clear();
            if was_json {
                Expect::Fails(Class::Garbled)
            } else {
                Expect::Anything
            }
        }
    };
    if reply.declared == 0 {
        reply.declared = reply.body.len();
    }
    (reply, expect)
}

/// The fake vendor: the session's answers by request, one of them
/// replaced.
struct Replay {
    exchanges: Vec<Exchange>,
    replaced: Option<(usize, Reply)>,
    served: Vec<AtomicU32>,
}

impl Replay {
    fn find(&self, r: &Request) -> Option<usize> {
        let body = String::from_utf8_lossy(&r.body);
        let exact = self
            .exchanges
            .iter()
            .position(|e| e.method == r.method && e.target == r.target && e.request_body == body);
        exact.or_else(|| {
            self.exchanges
                .iter()
                .position(|e| e.method == r.method && e.target == r.target)
        })
    }

    fn answer(&self, r: &Request) -> Reply {
        let Some(i) = self.find(r) else {
            return Reply {
                status: 404,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"error":"not in the recorded session"}"#.to_vec(),
                declared: 39,
            };
        };
        self.served[i].fetch_add(1, Ordering::Relaxed);
        if let Some((at, reply)) = &self.replaced
            && *at == i
        {
            return Reply {
                status: reply.status,
                headers: reply.headers.clone(),
                body: reply.body.clone(),
                declared: reply.declared,
            };
        }
        let e = &self.exchanges[i];
        Reply {
            status: e.status,
            headers: e.headers.clone(),
            declared: e.body.len(),
            body: e.body.clone().into_bytes(),
        }
    }
}

fn fill(text: &str, origin: &str) -> String {
    text.replace(ORIGIN, origin)
}

fn filled(e: &Exchange, origin: &str) -> Exchange {
    Exchange {
        method: e.method.clone(),
        target: fill(&e.target, origin),
        request_body: fill(&e.request_body, origin),
        status: e.status,
        headers: e
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, origin)))
            .collect(),
        body: fill(&e.body, origin),
    }
}

/// The fast policy of these tests: the engine's kinds of retry, without
/// the waiting.
fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        jitter: false,
        max_retry_after: Duration::from_millis(50),
    }
}

async fn read(c: &dyn Connector) -> Result<Observed, ConnectorError> {
    let budget = RateLimiter::new(Vec::new());
    let opts = DriverOptions {
        page_size: Some(3),
        max_pages: 200,
    };
    driver::read_all(c, &budget, &fast_retries(), &opts).await
}

/// Replays `s` with exchange `at` corrupted; `Err` names a broken
/// invariant.
async fn replay_case(
    target: &str,
    s: &Session,
    replaced: Option<(usize, &Corruption)>,
) -> Result<(), String> {
    // The fake needs its origin before the exchanges can be filled in.
    let cell: Arc<Mutex<Option<Arc<Replay>>>> = Arc::new(Mutex::new(None));
    let shared = cell.clone();
    let (origin, task) = serve(move |r| {
        let replay = shared.lock().unwrap().clone();
        async move {
            match replay {
                Some(replay) => replay.answer(&r),
                None => Reply {
                    status: 503,
                    headers: Vec::new(),
                    body: Vec::new(),
                    declared: 0,
                },
            }
        }
    })
    .await;
    let exchanges: Vec<Exchange> = s.exchanges.iter().map(|e| filled(e, &origin)).collect();
    let session = Session {
        refusals: s.refusals.iter().map(|e| filled(e, &origin)).collect(),
        exchanges: exchanges.clone(),
        ..s.clone()
    };
    let mut expect = Expect::Anything;
    let replaced = replaced.map(|(i, c)| {
        let i = i % exchanges.len();
        let (reply, e) = corrupt(target, &session, &exchanges[i], c);
        expect = e;
        (i, reply)
    });
    let replay = Arc::new(Replay {
        served: exchanges.iter().map(|_| AtomicU32::new(0)).collect(),
        exchanges,
        replaced,
    });
    *cell.lock().unwrap() = Some(replay.clone());
    let c = connector(target, &origin, s, true);
    let outcome = tokio::time::timeout(Duration::from_secs(20), read(c.as_ref())).await;
    task.abort();
    let outcome = outcome.map_err(|_| "the read did not end within 20 s".to_string())?;
    let reached = replay
        .replaced
        .as_ref()
        .is_some_and(|(i, _)| replay.served[*i].load(Ordering::Relaxed) > 0);
    let Expect::Fails(class) = expect else {
        return Ok(());
    };
    if !reached {
        return Ok(());
    }
    let expected: BTreeSet<&str> = s.accounts.iter().map(String::as_str).collect();
    let served = replay
        .replaced
        .as_ref()
        .map(|(_, r)| {
            let body = String::from_utf8_lossy(&r.body);
            format!(
                "served HTTP {} ({} of {} bytes): {}",
                r.status,
                r.body.len(),
                r.declared,
                body.chars().take(3000).collect::<String>()
            )
        })
        .unwrap_or_default();
    let verdict = match outcome {
        Err(e) => check_class(target, class, e.code()).map_err(|m| format!("{m}: {e}")),
        Ok(o) if o.complete => {
            let got: BTreeSet<&str> = o.accounts.iter().map(|a| a.key.as_str()).collect();
            let missing: Vec<&&str> = expected.difference(&got).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "a corrupted answer ended in a COMPLETE read without {missing:?} ({} of {} accounts)",
                    got.len(),
                    expected.len()
                ))
            }
        }
        Ok(o) => {
            let reason = o.incomplete_reason.unwrap_or_default();
            match reason.find("CONN-").map(|i| &reason[i..i + 9]) {
                Some(code) => {
                    check_class(target, class, code).map_err(|m| format!("{m}: {reason}"))
                }
                None => Ok(()),
            }
        }
    };
    verdict.map_err(|e| format!("{e}\n{served}"))
}

// ------------------------------------------------------------- mutations

#[derive(Clone, Debug, Serialize, Deserialize)]
enum JsonMutation {
    /// Replace the node with a value of another JSON type.
    Retype(usize, usize),
    DeleteKey(usize),
    /// Drop an item of an array (a short page when it is the list).
    DropItem(usize),
}

/// Values of every type but null (null is how many vendors say "none").
fn other_type(original: &Value, k: usize) -> Value {
    let candidates = [
        json!(true),
        json!(17),
        json!("x"),
        json!([]),
        json!({}),
        json!([{"id": "x"}]),
    ];
    let differ: Vec<&Value> = candidates
        .iter()
        .filter(|c| std::mem::discriminant(*c) != std::mem::discriminant(original))
        .collect();
    differ[k % differ.len()].clone()
}

fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<usize>(), any::<usize>()).prop_map(|(t, k)| JsonMutation::Retype(t, k)),
        2 => any::<usize>().prop_map(JsonMutation::DeleteKey),
        2 => any::<usize>().prop_map(JsonMutation::DropItem),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Calls `f` on the parent of the `n`-th node (pre-order, root = 0) with
/// the child's position.
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
                Value::Object(o) => o.values_mut().nth(i).expect("in range"),
                _ => return false,
            };
            if walk(child, n, f) {
                return true;
            }
        }
        false
    }
    if n == 0 {
        return false;
    }
    let mut n = n - 1;
    walk(v, &mut n, f)
}

/// The arrays of a document, largest first, as (node index, length).
fn arrays(v: &Value) -> Vec<(usize, usize)> {
    fn walk(v: &Value, at: &mut usize, out: &mut Vec<(usize, usize)>) {
        let me = *at;
        *at += 1;
        match v {
            Value::Array(a) => {
                out.push((me, a.len()));
                a.iter().for_each(|x| walk(x, at, out));
            }
            Value::Object(o) => o.values().for_each(|x| walk(x, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut 0, &mut out);
    out.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    out
}

/// Applies `m`; returns whether a client can tell the result from a
/// genuine answer (`totals`: the answer reports a total).
fn mutate_json(doc: &mut Value, m: &JsonMutation, totals: bool) -> bool {
    let count = count_nodes(doc);
    match *m {
        JsonMutation::Retype(t, k) => {
            let at = t % count;
            if at == 0 {
                // A scalar: never a list body, however often retyped.
                let scalars = [json!(true), json!(17), json!("x")];
                let differ: Vec<&Value> = scalars
                    .iter()
                    .filter(|c| std::mem::discriminant(*c) != std::mem::discriminant(&*doc))
                    .collect();
                *doc = differ[k % differ.len()].clone();
                return true;
            }
            // Whether the retyped node reads as a corruption.
            let mut changed = false;
            with_parent(doc, at, &mut |p, i| {
                let slot = match p {
                    Value::Array(a) => &mut a[i],
                    Value::Object(o) => o.values_mut().nth(i).expect("in range"),
                    _ => return,
                };
                if !slot.is_null() {
                    let new = other_type(slot, k);
                    // Vendors send ids and counts as strings or numbers
                    // alike: that swap reads as genuine.
                    let scalar = |v: &Value| v.is_string() || v.is_number();
                    changed = !(scalar(slot) && scalar(&new));
                    *slot = new;
                }
            });
            changed
        }
        JsonMutation::DeleteKey(t) => {
            with_parent(doc, t % count, &mut |p, i| {
                if let Value::Object(o) = p {
                    let key = o.keys().nth(i).cloned().expect("in range");
                    o.remove(&key);
                }
            });
            false
        }
        JsonMutation::DropItem(k) => {
            // The list is the largest array; sometimes another one.
            let arrays = arrays(doc);
            let Some(&(node, len)) = arrays.get(if k % 4 == 0 {
                k % arrays.len().max(1)
            } else {
                0
            }) else {
                return false;
            };
            if len == 0 {
                return false;
            }
            let drop = |a: &mut Vec<Value>| {
                a.remove(k % len);
            };
            if node == 0 {
                if let Value::Array(a) = doc {
                    drop(a);
                }
            } else {
                with_parent(doc, node, &mut |p, i| {
                    let slot = match p {
                        Value::Array(a) => &mut a[i],
                        Value::Object(o) => o.values_mut().nth(i).expect("in range"),
                        _ => return,
                    };
                    if let Value::Array(a) = slot {
                        drop(a);
                    }
                });
            }
            totals && node == arrays[0].0
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        3 => json_mutation().prop_map(|m| Corruption::Json(vec![m])),
        1 => proptest::collection::vec(json_mutation(), 2..4).prop_map(Corruption::Json),
        3 => proptest::collection::vec(byte_mutation(), 1..4).prop_map(Corruption::Bytes),
        1 => any::<usize>().prop_map(Corruption::CutOnTheWire),
        1 => prop::sample::select(vec![400u16, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503])
            .prop_map(Corruption::Status),
        1 => any::<usize>().prop_map(Corruption::Refusal),
        1 => Just(Corruption::Empty),
    ]
}

fn cases() -> u32 {
    std::env::var("ROSTER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

// ----------------------------------------------------------------- runs

/// The intact session, then `cases()` corrupted replays.
fn fuzz(target: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = load(target);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(replay_case(target, &s, None))
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    let intact = rt
        .block_on(async {
            let (origin, task) = {
                let s = s.clone();
                let replay = Arc::new(Mutex::new(None::<Arc<Replay>>));
                let r2 = replay.clone();
                let (origin, task) = serve(move |r| {
                    let rp = r2.lock().unwrap().clone();
                    async move { rp.expect("set").answer(&r) }
                })
                .await;
                let ex: Vec<Exchange> = s.exchanges.iter().map(|e| filled(e, &origin)).collect();
                *replay.lock().unwrap() = Some(Arc::new(Replay {
                    served: ex.iter().map(|_| AtomicU32::new(0)).collect(),
                    exchanges: ex,
                    replaced: None,
                }));
                (origin, task)
            };
            let o = read(connector(target, &origin, &s, true).as_ref()).await;
            task.abort();
            o
        })
        .unwrap_or_else(|e| panic!("{target}: the intact session fails ({e}); re-record it"));
    let keys: Vec<String> = intact
        .accounts
        .iter()
        .map(|a| a.key.as_str().to_string())
        .collect();
    assert!(
        intact.complete && keys == s.accounts,
        "{target}: the intact session no longer reads as recorded ({:?}); re-record it",
        intact.incomplete_reason
    );
    for r in regressions(target) {
        rt.block_on(replay_case(target, &s, Some((r.exchange, &r.corruption))))
            .unwrap_or_else(|e| {
                panic!(
                    "{target}: kept case (exchange {}, {:?}) fails again: {e}",
                    r.exchange, r.corruption
                )
            });
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(any::<usize>(), corruption()), |(at, c)| {
            let exchange = &s.exchanges[at % s.exchanges.len()];
            let shown = format!(
                "exchange {} ({} {} → {}) corrupted by {c:?}",
                at % s.exchanges.len(),
                exchange.method,
                exchange.target,
                exchange.status
            );
            match catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(replay_case(target, &s, Some((at, &c))))
            })) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(TestCaseError::fail(format!("{e}\n{shown}"))),
                Err(_) => Err(TestCaseError::fail(format!("panicked: {shown}"))),
            }
        })
        .unwrap_or_else(|e| panic!("{target}: {e}"));
}

macro_rules! targets {
    ($($name:ident => $target:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz($target);
            }
        )*
    };
}

targets! {
    scim_responses => "scim",
    scim_oauth_responses => "scim-oauth",
    expensify_responses => "expensify",
    bill_spend_responses => "bill-spend",
    spendesk_responses => "spendesk",
    okta_assign_responses => "okta-assign",
    idp_entra_responses => "idp-entra",
    idp_okta_responses => "idp-okta",
    idp_onelogin_responses => "idp-onelogin",
    rest_zoom_responses => "rest-zoom",
    rest_atlassian_responses => "rest-atlassian",
    rest_zendesk_responses => "rest-zendesk",
    rest_asana_responses => "rest-asana",
    rest_hubspot_responses => "rest-hubspot",
}

// ------------------------------------------------------------ recording

/// Starts `target`'s simulator; returns it (kept alive by the caller), its
/// origin, and the connector's base and token paths.
async fn start_sim(target: &str) -> (Box<dyn std::any::Any + Send>, String, String, String) {
    use roster_sim::bill_spend::{BillSim, BillSimConfig};
    use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig};
    use roster_sim::graph::{GraphServicePrincipal, GraphSim, GraphSimConfig, GraphUser};
    use roster_sim::okta::{OktaApp, OktaSim, OktaSimConfig, OktaUser};
    use roster_sim::onelogin::{OneLoginApp, OneLoginSim, OneLoginSimConfig, OneLoginUser};
    use roster_sim::rest_apps::{RestAppConfig, RestAppSim, Vendor};
    use roster_sim::scim_app::{ScimQuirks, ScimSim, ScimSimConfig};
    use roster_sim::spendesk::{SpendeskSim, SpendeskSimConfig};

    let split = |url: &str, origin: &str| url.strip_prefix(origin).expect("origin").to_string();
    let members: Vec<String> = (0..7).map(|i| format!("person{i}@example.com")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    match target {
        "scim" | "scim-oauth" => {
            let mut config = ScimSimConfig::new(secret(target, true).expose_secret()).with_seed(7);
            if target == "scim-oauth" {
                config = config.with_quirks(ScimQuirks {
                    oauth_client_id: Some("roster-client".into()),
                    oauth_token_lifetime_secs: 3600,
                    ..ScimQuirks::default()
                });
            }
            let sim = ScimSim::start(config).await.expect("sim");
            let o = sim.base_url();
            let (b, t) = (split(&sim.url(), &o), split(&sim.token_url(), &o));
            (Box::new(sim), o, b, t)
        }
        "expensify" => {
            let sim = ExpensifySim::start(
                ExpensifySimConfig::new("partner", "partner-secret")
                    .scaled(0.02)
                    .with_seed(3, 3),
            )
            .await
            .expect("sim");
            let o = format!("http://{}", sim.addr());
            let b = split(&sim.url(), &o);
            (Box::new(sim), o, b, String::new())
        }
        "bill-spend" => {
            let sim = BillSim::start(BillSimConfig::new("bill-token").with_seed(7))
                .await
                .expect("sim");
            let o = sim.base_url();
            let b = split(&sim.url(), &o);
            (Box::new(sim), o, b, String::new())
        }
        "spendesk" => {
            let sim =
                SpendeskSim::start(SpendeskSimConfig::new("key-id", "key-secret").with_seed(7))
                    .await
                    .expect("sim");
            let o = sim.base_url();
            let b = split(&sim.url(), &o);
            (Box::new(sim), o, b, String::new())
        }
        "okta-assign" | "idp-okta" => {
            let mut c = OktaSimConfig::new("okta-token");
            for i in 0..11 {
                c = c.with_user(OktaUser::new(
                    &format!("person{i}@example.com"),
                    "Person",
                    &i.to_string(),
                ));
            }
            c = c
                .with_group("BILL Users", &members)
                .with_app(OktaApp::new("0oabill", "BILL Spend").with_groups(&["BILL Users"]));
            let sim = OktaSim::start(c).await.expect("sim");
            for m in &members {
                sim.handle().clear_provisioning_failure(m);
            }
            let o = sim.base_url();
            let b = split(&sim.url(), &o);
            if target == "okta-assign" {
                // Okta lists assigned app users: assign seven, as the
                // conformance suite does.
                let s = Session {
                    base_path: b.clone(),
                    token_path: String::new(),
                    exchanges: Vec::new(),
                    refusals: Vec::new(),
                    accounts: Vec::new(),
                };
                let c = connector(target, &o, &s, true);
                for m in &members {
                    let a = roster_core::Action {
                        connection: c.id().clone(),
                        operation: roster_core::Operation::Reactivate,
                        employee_id: None,
                        email: roster_core::Email::parse(m).expect("email"),
                        account: Some(roster_core::AccountKey::new(sim.user(m).expect("user").id)),
                        attributes: BTreeMap::new(),
                        changes: Vec::new(),
                        reason: "setup".into(),
                        cause: roster_core::Cause::Regrant,
                    };
                    let r = c
                        .apply(roster_connectors::ApplyRequest::new(vec![a], false))
                        .await
                        .expect("assign");
                    assert!(r.results[0].is_applied(), "{:?}", r.results);
                }
            }
            (Box::new(sim), o, b, String::new())
        }
        "idp-entra" => {
            let mut c = GraphSimConfig::new("contoso", "roster-client", "client-s3cret");
            for i in 0..11 {
                c = c.with_user(GraphUser::new(
                    &format!("person{i}@example.com"),
                    "Person",
                    &i.to_string(),
                ));
            }
            c = c.with_group("BILL Users", &members).with_service_principal(
                GraphServicePrincipal::new("sp-bill", "BILL Spend & Expense", &["BILL Users"]),
            );
            let sim = GraphSim::start(c).await.expect("sim");
            let o = sim.base_url();
            let b = split(&sim.graph_url(), &o);
            (Box::new(sim), o, b, String::new())
        }
        "idp-onelogin" => {
            let mut c = OneLoginSimConfig::new("ol-client", "ol-s3cret");
            for i in 0..11 {
                c = c.with_user(OneLoginUser::new(
                    &format!("person{i}@example.com"),
                    "Person",
                    &i.to_string(),
                ));
            }
            c = c
                .with_role("BILL Users", &members)
                .with_app(OneLoginApp::new(
                    7001,
                    "BILL Spend & Expense",
                    &["BILL Users"],
                ));
            let sim = OneLoginSim::start(c).await.expect("sim");
            let o = sim.base_url();
            let b = split(&sim.url(), &o);
            (Box::new(sim), o, b, String::new())
        }
        rest => {
            let vendor = match rest {
                "rest-zoom" => Vendor::Zoom,
                "rest-atlassian" => Vendor::Atlassian,
                "rest-zendesk" => Vendor::Zendesk,
                "rest-asana" => Vendor::Asana,
                _ => Vendor::HubSpot,
            };
            let sim = RestAppSim::start(
                RestAppConfig::new(vendor)
                    .with_seed(7)
                    .with_fixed_page_size(3),
            )
            .await
            .expect("sim");
            let o = sim.base_url();
            let (b, t) = (split(&sim.url(), &o), split(&sim.token_url(), &o));
            (Box::new(sim), o, b, t)
        }
    }
}

/// A proxy on loopback that forwards to `upstream` and logs every
/// exchange, with both origins written `{{origin}}`.
async fn recorder(
    upstream: String,
) -> (
    String,
    Arc<Mutex<Vec<Exchange>>>,
    tokio::task::JoinHandle<()>,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let me = Arc::new(Mutex::new(String::new()));
    let (log2, me2) = (log.clone(), me.clone());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (origin, task) = serve(move |r| {
        let (log, me, client, upstream) =
            (log2.clone(), me2.clone(), client.clone(), upstream.clone());
        async move {
            let me = me.lock().unwrap().clone();
            let mut req = client.request(
                reqwest::Method::from_bytes(r.method.as_bytes()).expect("method"),
                format!("{upstream}{}", r.target),
            );
            for (k, v) in &r.headers {
                if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                    req = req.header(k, v.replace(&me, &upstream));
                }
            }
            let resp = req.body(r.body.clone()).send().await.expect("upstream");
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter(|(k, _)| kept(k.as_str()))
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().unwrap_or_default().replace(&upstream, ORIGIN),
                    )
                })
                .collect();
            let body = resp.text().await.expect("body").replace(&upstream, ORIGIN);
            log.lock().unwrap().push(Exchange {
                method: r.method.clone(),
                target: r.target.replace(&me, ORIGIN),
                request_body: String::from_utf8_lossy(&r.body).replace(&me, ORIGIN),
                status,
                headers: headers.clone(),
                body: body.clone(),
            });
            let body = fill(&body, &me).into_bytes();
            Reply {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(v, &me)))
                    .collect(),
                declared: body.len(),
                body,
            }
        }
    })
    .await;
    *me.lock().unwrap() = origin.clone();
    (origin, log, task)
}

/// Records every target's session into its corpus directory. Run by
/// hand (`--ignored`) when a simulator or connector changes its requests.
#[test]
#[ignore = "writes the corpus; run by hand"]
fn record_sessions() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("ROSTER_FUZZ_RECORD").ok();
    for target in TARGETS {
        if only.as_deref().is_some_and(|o| o != *target) {
            continue;
        }
        let session = rt.block_on(async {
            let (sim, upstream, base_path, token_path) = start_sim(target).await;
            let (origin, log, task) = recorder(upstream).await;
            let mut s = Session {
                base_path,
                token_path,
                exchanges: Vec::new(),
                refusals: Vec::new(),
                accounts: Vec::new(),
            };
            let c = connector(target, &origin, &s, true);
            let budget = RateLimiter::new(c.capabilities().rate_limits);
            let o = driver::read_all(
                c.as_ref(),
                &budget,
                &RetryPolicy::no_retries(),
                &DriverOptions {
                    page_size: Some(3),
                    max_pages: 200,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{target}: recording read failed: {e}"));
            assert!(o.complete, "{target}: {:?}", o.incomplete_reason);
            s.accounts = o
                .accounts
                .iter()
                .map(|a| a.key.as_str().to_string())
                .collect();
            s.exchanges = std::mem::take(&mut *log.lock().unwrap());
            // Refusals: the first page with the wrong credentials.
            let wrong = connector(target, &origin, &s, false);
            let _ = wrong
                .list_accounts(roster_connectors::ListRequest::first())
                .await;
            s.refusals = std::mem::take(&mut *log.lock().unwrap())
                .into_iter()
                .filter(|e| !(200..300).contains(&e.status) || codes_in_body(target))
                .collect();
            task.abort();
            drop(sim);
            s
        });
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        let text = serde_json::to_string_pretty(&session).expect("json") + "\n";
        std::fs::write(dir.join("session.json"), text).expect("write");
        eprintln!(
            "{target}: {} exchanges, {} refusals, {} accounts",
            session.exchanges.len(),
            session.refusals.len(),
            session.accounts.len()
        );
    }
}
