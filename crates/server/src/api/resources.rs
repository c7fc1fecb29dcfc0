//! The smaller resources of `/api/v1`: accounts, apps, connections,
//! matches, reports and the audit log.
//!
//! Pausing and resuming a connection take the `apply` scope: the kill
//! switch is for whoever may make roster write, and lifting it lets
//! writes go again, the same power.

use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use roster_core::{AccountKey, ConnectionId, EmployeeId};
use roster_engine::Authenticated;
use roster_store::MatchResolution;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::extract::{ApiJson, ApiPath, ApiQuery, DEFAULT_LIMIT, paged};
use super::problem::Problem;
use super::schema::{PauseRequest, ResolveRequest, Resolved, Switched};

#[derive(Debug, Deserialize)]
pub struct AccountsQuery {
    connection: String,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/accounts?connection=`.
pub async fn accounts(
    State(roster): State<ApiState>,
    uri: Uri,
    ApiQuery(q): ApiQuery<AccountsQuery>,
) -> Result<Response, Problem> {
    let connection = ConnectionId::new(q.connection.as_str());
    match roster
        .accounts(
            &connection,
            q.cursor.as_deref(),
            q.limit.unwrap_or(DEFAULT_LIMIT),
        )
        .await?
    {
        Some(page) => Ok(paged(&uri, page.next_cursor.as_deref(), &page)),
        None => Err(Problem::not_found(format!("no connection {connection}"))),
    }
}

/// `GET /api/v1/apps`.
pub async fn apps(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.apps().await?).into_response())
}

/// `GET /api/v1/apps/{id}`.
pub async fn app(
    State(roster): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    match roster.app(&id).await? {
        Some(card) => Ok(axum::Json(card).into_response()),
        None => Err(Problem::not_found(format!(
            "no connection or catalog app {id}"
        ))),
    }
}

/// `GET /api/v1/connections`.
pub async fn connections(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.connections().await?).into_response())
}

async fn known(roster: &ApiState, id: &str) -> Result<ConnectionId, Problem> {
    let id = ConnectionId::new(id);
    if roster.connections().await?.iter().any(|c| c.id == id) {
        Ok(id)
    } else {
        Err(Problem::not_found(format!("no connection {id}")))
    }
}

/// `POST /api/v1/connections/{id}/check`.
pub async fn check(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = known(&roster, &id).await?;
    let results = roster.check_connections(&auth.principal).await;
    let body = match results.into_iter().find(|(c, _)| *c == id) {
        Some((_, Ok(v))) => json!({
            "connection": id,
            "ok": v.ok(),
            "checks": v.checks.iter().map(|c| json!({
                "name": c.name, "passed": c.passed, "detail": c.detail,
            })).collect::<Vec<_>>(),
        }),
        Some((_, Err(e))) => json!({
            "connection": id,
            "ok": false,
            "checks": [],
            "error": e.to_string(),
        }),
        None => json!({
            "connection": id,
            "ok": false,
            "checks": [],
            "error": "no connector is configured for this connection in this process",
        }),
    };
    Ok(axum::Json(body).into_response())
}

/// `POST /api/v1/connections/{id}/pause`.
pub async fn pause(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    // The body is optional: none, or `{"reason": …}`.
    let request: PauseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PauseRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                super::problem::codes::BAD_BODY,
                format!("the body is not a pause request: {e}"),
            )
        })?
    };
    let id = known(&roster, &id).await?;
    let reason = request.reason;
    let changed = roster
        .pause(&auth.principal, Some(&id), reason.as_deref())
        .await?;
    Ok(axum::Json(Switched {
        connection: id.to_string(),
        paused: true,
        changed,
    })
    .into_response())
}

/// `POST /api/v1/connections/{id}/resume`.
pub async fn resume(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = known(&roster, &id).await?;
    let changed = roster.resume(&auth.principal, Some(&id)).await?;
    Ok(axum::Json(Switched {
        connection: id.to_string(),
        paused: false,
        changed,
    })
    .into_response())
}

/// `GET /api/v1/matches`: the queue, each entry with its `id`.
pub async fn matches(State(roster): State<ApiState>) -> Result<Response, Problem> {
    let queue = roster.match_queue().await?;
    let out: Vec<serde_json::Value> = queue
        .iter()
        .map(|m| {
            json!({
                "id": format!("{}:{}", m.connection, m.account),
                "connection": m.connection,
                "account": m.account,
                "email": m.email,
                "kind": m.kind,
                "detail": m.detail,
            })
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `POST /api/v1/matches/{id}/resolve`.
pub async fn resolve(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Response, Problem> {
    if body.reason.trim().is_empty() {
        return Err(Problem::bad_parameter("reason must not be empty"));
    }
    let queue = roster.match_queue().await?;
    let Some(m) = queue
        .iter()
        .find(|m| format!("{}:{}", m.connection, m.account) == id)
    else {
        return Err(Problem::not_found(format!("no match {id} in the queue")));
    };
    let account = AccountKey::new(m.account.as_str());
    roster
        .resolve_match(
            &auth.principal,
            MatchResolution {
                connection: m.connection.clone(),
                account,
                employee_id: body.employee_id.as_deref().map(EmployeeId::new),
                actor: String::new(),
                reason: body.reason.trim().to_string(),
                at_ms: now_ms(),
            },
        )
        .await?;
    Ok(axum::Json(Resolved {
        id,
        employee_id: body.employee_id,
    })
    .into_response())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `GET /api/v1/reports/orphans`.
pub async fn orphans(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.orphans_report().await?).into_response())
}

/// `GET /api/v1/reports/coverage`.
pub async fn coverage(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.coverage_report().await?).into_response())
}

/// `GET /api/v1/reports/leavers`.
pub async fn leavers(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.leavers_report().await?).into_response())
}

/// `GET /api/v1/reports/tasks`.
pub async fn task_report(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.task_report().await?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    since: Option<String>,
}

/// `GET /api/v1/audit?since=`.
pub async fn audit(
    State(roster): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, Problem> {
    let since = match q.since.as_deref().map(str::trim) {
        None | Some("") => i64::MIN,
        Some(s) => roster_engine::reports::parse_since(s)
            .map_err(|e| Problem::bad_parameter(e.to_string()))?,
    };
    Ok(axum::Json(roster.audit_export(since).await?).into_response())
}

/// `GET /api/v1/audit/verify`.
pub async fn verify(State(roster): State<ApiState>) -> Result<Response, Problem> {
    Ok(axum::Json(roster.audit_verify().await?).into_response())
}
