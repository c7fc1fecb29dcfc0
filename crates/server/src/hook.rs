//! Okta event hooks: `GET` and `POST /hooks/okta/{source}`.
//!
//! Okta calls an event hook when something happens in the org (a user
//! deactivated, suspended, moved between groups). roster uses a hook only
//! as a doorbell: it names the users to re-read, and the engine re-reads
//! each from Okta and reconciles them (`roster_engine::Roster::reread_people`).
//! **A hook is never trusted as state**: a forged "user deactivated" event
//! makes roster read that user, and a user Okta still lists as active stays
//! active.
//!
//! * Authentication: every request (the one-time verification too) must
//!   carry the configured header (`[sources.<name>] event_hook_header`,
//!   default `Authorization`) with the configured secret
//!   (`event_hook_secret`). Both sides are hashed (SHA-256) and compared in
//!   constant time; the secret is never logged. A missing or wrong secret
//!   is 401 and does nothing, so knowing the URL alone triggers nothing.
//! * `GET` is Okta's one-time verification: the value of the
//!   `X-Okta-Verification-Challenge` header comes back as
//!   `{"verification": "<value>"}`.
//! * `POST` is a delivery (`{"data": {"events": [...]}}`): events already
//!   seen (by `uuid`; Okta re-delivers) are skipped, the users the rest
//!   name go to the [`SourceEvents`] port, and the answer is 200 at once:
//!   the re-reads happen on the service's task, since Okta gives a hook
//!   three seconds. A body that is not a delivery is 400 with an RFC 7807
//!   problem saying why.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roster_engine::inbound::{SourceEvents, okta_hook_events};
use roster_store::ConnectionId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Okta's verification request header.
pub const VERIFICATION_HEADER: &str = "x-okta-verification-challenge";

/// The largest delivery accepted (Okta batches up to 50 events).
const MAX_HOOK_BYTES: usize = 1024 * 1024;

/// Event uuids remembered for dedupe.
const REMEMBERED: usize = 50_000;

/// One configured hook: the source it belongs to and how it authenticates.
pub struct OktaHook {
    /// `source.<name>`.
    source: ConnectionId,
    header: HeaderName,
    /// SHA-256 of the secret; the secret itself is not kept.
    secret_hash: [u8; 32],
}

impl std::fmt::Debug for OktaHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaHook")
            .field("source", &self.source)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl OktaHook {
    /// A hook for `source` (`source.<name>`) expecting `secret` in
    /// `header`. Refuses a header name HTTP does not allow.
    pub fn new(source: ConnectionId, header: &str, secret: &str) -> Result<OktaHook, String> {
        let header = HeaderName::try_from(header)
            .map_err(|_| format!("event hook header {header:?} is not a header name"))?;
        Ok(OktaHook {
            source,
            header,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    fn authentic(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get(&self.header) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(self.secret_hash.ct_eq(&given))
    }
}

/// The hooks `roster serve` answers, by source name (`okta` for
/// `[sources.okta]`), and the port their users go to.
#[derive(Clone)]
pub struct HookState {
    hooks: Arc<BTreeMap<String, OktaHook>>,
    sink: Arc<dyn SourceEvents>,
    seen: Arc<Mutex<Seen>>,
}

impl HookState {
    pub fn new(hooks: BTreeMap<String, OktaHook>, sink: Arc<dyn SourceEvents>) -> HookState {
        HookState {
            hooks: Arc::new(hooks),
            sink,
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }
}

/// Recently seen event uuids, oldest first out.
#[derive(Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True the first time `uuid` is offered.
    fn first(&mut self, uuid: &str) -> bool {
        if self.set.contains(uuid) {
            return false;
        }
        self.set.insert(uuid.to_string());
        self.order.push_back(uuid.to_string());
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The router for `/hooks/okta/{source}`; merge it with the SCIM router.
pub fn hook_router(state: HookState) -> Router {
    Router::new()
        .route("/hooks/okta/{source}", get(verify).post(deliver))
        .layer(DefaultBodyLimit::max(MAX_HOOK_BYTES))
        .with_state(state)
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
        })
        .to_string(),
    )
        .into_response()
}

/// The hook for `name`, if the request carries its secret.
fn authenticate<'a>(
    state: &'a HookState,
    name: &str,
    headers: &HeaderMap,
) -> Result<&'a OktaHook, Box<Response>> {
    let Some(hook) = state.hooks.get(name) else {
        return Err(Box::new(problem(
            StatusCode::NOT_FOUND,
            "no event hook is configured for this source",
        )));
    };
    if !hook.authentic(headers) {
        tracing::warn!(source = %hook.source, "event hook request without the right secret refused");
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "the event hook's secret header is missing or wrong",
        )));
    }
    Ok(hook)
}

async fn verify(
    State(state): State<HookState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&state, &name, &headers) {
        return *r;
    }
    match headers
        .get(VERIFICATION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(challenge) => (
            StatusCode::OK,
            axum::Json(json!({ "verification": challenge })),
        )
            .into_response(),
        None => problem(
            StatusCode::BAD_REQUEST,
            "a GET must carry the X-Okta-Verification-Challenge header (Okta's one-time verification)",
        ),
    }
}

async fn deliver(
    State(state): State<HookState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let hook = match authenticate(&state, &name, &headers) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let events = match okta_hook_events(&value) {
        Ok(e) => e,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let mut users: Vec<String> = Vec::new();
    let mut fresh = 0usize;
    {
        let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
        for e in &events {
            if !seen.first(&e.uuid) {
                continue;
            }
            fresh += 1;
            for u in &e.users {
                if !users.contains(u) {
                    users.push(u.clone());
                }
            }
        }
    }
    tracing::info!(source = %hook.source, events = events.len(), new = fresh, people = users.len(), "event hook delivery");
    let people = users.len();
    if !users.is_empty() {
        state.sink.people_named(&hook.source, users);
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "events": events.len(), "new": fresh, "people": people })),
    )
        .into_response()
}
