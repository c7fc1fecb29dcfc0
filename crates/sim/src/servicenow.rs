//! ServiceNow's Table API for one table (`incident` by default): what an
//! ITSM bridge uses to mirror roster's human tasks as tickets.
//!
//! The documented shapes (ServiceNow "Table API", `/api/now/table/{table}`):
//!
//! * Basic authentication; a wrong or missing credential is `401` with
//!   `{"error":{"message":"User Not Authenticated","detail":"Required to
//!   provide Auth information"},"status":"failure"}`.
//! * `POST /api/now/table/{table}` creates a record: `201` with
//!   `{"result":{…}}`, the record's `sys_id` (32 hex digits) and `number`
//!   (`INC0010001`, …), `state` as a string code (`"1"` New, `"2"` In
//!   Progress, `"6"` Resolved, `"7"` Closed, `"8"` Canceled).
//! * `GET /api/now/table/{table}?sysparm_query=correlation_id=X` lists
//!   matching records (`{"result":[…]}`); `GET …/{sys_id}` one record, or
//!   `404` `{"error":{"message":"No Record found","detail":"Record doesn't
//!   exist or ACL restricts the record retrieval"},"status":"failure"}`.
//! * `PATCH …/{sys_id}` updates the fields given. Resolving (`state` 6)
//!   needs `close_code` and `close_notes`, else `403` with a data policy
//!   exception, as the default incident data policy says. `work_notes` is
//!   a journal: each write appends an entry.
//! * Reference fields read as `{"link": …, "value": sys_id}`
//!   (`resolved_by`).
//!
//! The handle lets a test act as the service desk: [`ServiceNowSim::resolve`]
//! resolves a ticket as an agent would. [`ServiceNowSim::effects`] is the
//! log of what callers changed: the test oracle.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One change a caller made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Created { number: String },
    Updated { number: String, fields: Vec<String> },
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<String, Map<String, Value>>,
    next_number: u32,
    effects: Vec<Effect>,
    requests: u64,
}

/// The simulator's state (module docs).
#[derive(Clone, Debug)]
pub struct ServiceNowSim {
    inner: Arc<Mutex<Inner>>,
    username: String,
    password: String,
    table: String,
    origin: Arc<Mutex<String>>,
}

/// A running simulator: its URL and handle; stops when dropped.
pub struct RunningServiceNow {
    pub sim: ServiceNowSim,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServiceNow {
    /// `http://127.0.0.1:PORT` (the instance URL).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RunningServiceNow {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl std::ops::Deref for RunningServiceNow {
    type Target = ServiceNowSim;
    fn deref(&self) -> &ServiceNowSim {
        &self.sim
    }
}

fn failure(status: StatusCode, message: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": { "message": message, "detail": detail },
            "status": "failure"
        })),
    )
        .into_response()
}

/// Fields a caller may not set (the instance owns them).
const SYSTEM_FIELDS: [&str; 5] = [
    "sys_id",
    "number",
    "sys_created_on",
    "sys_updated_on",
    "resolved_by",
];

impl ServiceNowSim {
    /// Starts the simulator on loopback for `table`, accepting Basic
    /// `username:password`.
    pub async fn start(
        username: &str,
        password: &str,
        table: &str,
    ) -> std::io::Result<RunningServiceNow> {
        let sim = ServiceNowSim {
            inner: Arc::new(Mutex::new(Inner {
                next_number: 10001,
                ..Inner::default()
            })),
            username: username.into(),
            password: password.into(),
            table: table.into(),
            origin: Arc::new(Mutex::new(String::new())),
        };
        let app = Router::new()
            .route("/api/now/table/{table}", get(list).post(create))
            .route("/api/now/table/{table}/{sys_id}", get(read).patch(update))
            .with_state(sim.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        *lock(&sim.origin) = url.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(RunningServiceNow {
            sim,
            url,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// What callers changed, in order.
    pub fn effects(&self) -> Vec<Effect> {
        lock(&self.inner).effects.clone()
    }

    /// Requests answered (authenticated or not).
    pub fn requests(&self) -> u64 {
        lock(&self.inner).requests
    }

    /// Every record, by number.
    pub fn records(&self) -> BTreeMap<String, Map<String, Value>> {
        lock(&self.inner)
            .records
            .values()
            .map(|r| (str_of(r, "number"), r.clone()))
            .collect()
    }

    /// The service desk resolves ticket `number` as `agent` (not an
    /// effect: the oracle logs only what callers did).
    pub fn resolve(&self, number: &str, agent: &str, notes: &str) -> bool {
        let origin = lock(&self.origin).clone();
        let mut inner = lock(&self.inner);
        let Some(r) = inner
            .records
            .values_mut()
            .find(|r| str_of(r, "number") == number)
        else {
            return false;
        };
        r.insert("state".into(), json!("6"));
        r.insert("close_code".into(), json!("Solved (Permanently)"));
        r.insert("close_notes".into(), json!(notes));
        r.insert(
            "resolved_by".into(),
            json!({ "link": format!("{origin}/api/now/table/sys_user/{agent}"), "value": agent }),
        );
        true
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        lock(&self.inner).requests += 1;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.username, self.password))
        );
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str())
    }

    fn check(&self, headers: &HeaderMap, table: &str) -> Result<(), Response> {
        if !self.authorized(headers) {
            return Err(failure(
                StatusCode::UNAUTHORIZED,
                "User Not Authenticated",
                "Required to provide Auth information",
            ));
        }
        if table != self.table {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                "Invalid table",
                &format!("Invalid table {table}"),
            ));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn str_of(r: &Map<String, Value>, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn body_object(body: &str) -> Result<Map<String, Value>, Response> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(failure(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "The payload is not valid JSON.",
        )),
    }
}

async fn create(
    State(sim): State<ServiceNowSim>,
    Path(table): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Response> {
    sim.check(&headers, &table)?;
    let fields = body_object(&body)?;
    let mut inner = lock(&sim.inner);
    let n = inner.next_number;
    inner.next_number += 1;
    let number = format!("INC{n:07}");
    let sys_id = format!("{:032x}", u128::from(n) * 0x9E37_79B9_7F4A_7C15);
    let mut record = Map::new();
    record.insert("state".into(), json!("1"));
    record.insert("work_notes".into(), json!(""));
    for (k, v) in fields {
        if !SYSTEM_FIELDS.contains(&k.as_str()) {
            record.insert(k, v);
        }
    }
    record.insert("sys_id".into(), json!(sys_id));
    record.insert("number".into(), json!(number));
    inner.records.insert(sys_id, record.clone());
    inner.effects.push(Effect::Created { number });
    Ok((StatusCode::CREATED, axum::Json(json!({ "result": record }))).into_response())
}

async fn list(
    State(sim): State<ServiceNowSim>,
    Path(table): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, Response> {
    sim.check(&headers, &table)?;
    // Only `field=value` conditions joined by `^` (what a bridge needs).
    let conditions: Vec<(String, String)> = q
        .get("sysparm_query")
        .map(|s| {
            s.split('^')
                .filter_map(|c| c.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let inner = lock(&sim.inner);
    let found: Vec<&Map<String, Value>> = inner
        .records
        .values()
        .filter(|r| conditions.iter().all(|(k, v)| str_of(r, k) == *v))
        .collect();
    Ok(axum::Json(json!({ "result": found })).into_response())
}

async fn read(
    State(sim): State<ServiceNowSim>,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    sim.check(&headers, &table)?;
    let inner = lock(&sim.inner);
    match inner.records.get(&sys_id) {
        Some(r) => Ok(axum::Json(json!({ "result": r })).into_response()),
        None => Err(failure(
            StatusCode::NOT_FOUND,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        )),
    }
}

async fn update(
    State(sim): State<ServiceNowSim>,
    Path((table, sys_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Response> {
    sim.check(&headers, &table)?;
    let fields = body_object(&body)?;
    let mut inner = lock(&sim.inner);
    let Some(record) = inner.records.get_mut(&sys_id) else {
        return Err(failure(
            StatusCode::NOT_FOUND,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        ));
    };
    let resolving = fields.get("state").and_then(Value::as_str) == Some("6");
    let has = |k: &str| {
        fields
            .get(k)
            .or(record.get(k))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    if resolving && (!has("close_code") || !has("close_notes")) {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            "Data Policy Exception: \n Resolution code is mandatory\n Resolution notes are mandatory",
        ));
    }
    let mut changed = Vec::new();
    for (k, v) in fields {
        if SYSTEM_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if k == "work_notes" {
            // A journal field: each write adds an entry.
            let before = str_of(record, "work_notes");
            let entry = v.as_str().unwrap_or("").to_string();
            let joined = if before.is_empty() {
                entry
            } else {
                format!("{before}\n{entry}")
            };
            record.insert(k.clone(), json!(joined));
        } else {
            record.insert(k.clone(), v);
        }
        changed.push(k);
    }
    let number = str_of(record, "number");
    let out = record.clone();
    inner.effects.push(Effect::Updated {
        number,
        fields: changed,
    });
    Ok(axum::Json(json!({ "result": out })).into_response())
}
