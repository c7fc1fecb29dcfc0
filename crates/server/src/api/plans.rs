//! `/api/v1/plans`: list, show (with its ETag), propose, approve, reject,
//! apply.
//!
//! Proposing plans from what the store holds (the last read and the people
//! snapshot), as `Roster::plan` does; `read: true` reads every app first.
//! The people are not re-imported here: that is the service's full run or
//! `roster plan`. Applying always re-reads the plan's connections
//! (`Roster::check`), so a plan from an old read never runs against apps
//! that moved: it is stale (409).
//!
//! Applying runs in a task of its own: the answer is 200 with what was
//! done when it settles within [`APPLY_WAIT`], else 202 with `Location`
//! (the plan, whose state says `applying` until it settles). A client that
//! goes away does not stop it halfway.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use roster_core::ConnectionId;
use roster_engine::{Authenticated, PersonRef, PlanScope};
use roster_store::PlanId;

use super::ApiState;
use super::extract::{ApiJson, ApiPath, ApiQuery, Paging, check_if_match, paged, with_etag};
use super::problem::{Problem, codes};
use super::schema::{
    Accepted, ApplyResult, DecisionRequest, FailedAction, PlanRequest, PlanScopeKind,
};

/// How long applying may run before the answer is 202.
pub const APPLY_WAIT: Duration = Duration::from_secs(30);

/// `GET /api/v1/plans`.
pub async fn list(
    State(roster): State<ApiState>,
    uri: Uri,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, Problem> {
    let page = roster
        .plans(paging.cursor.as_deref(), paging.limit())
        .await?;
    Ok(paged(&uri, page.next_cursor.as_deref(), &page))
}

/// `GET /api/v1/plans/{id}`.
pub async fn show(
    State(roster): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let detail = roster.plan_detail(&PlanId::new(id)).await?;
    let version = detail.version.clone();
    Ok(with_etag(axum::Json(detail).into_response(), &version))
}

/// `POST /api/v1/plans`.
pub async fn create(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiJson(body): ApiJson<PlanRequest>,
) -> Result<Response, Problem> {
    let scope = match body.scope {
        PlanScopeKind::All => {
            if !body.connections.is_empty() || body.person.is_some() {
                return Err(Problem::bad_parameter(
                    "scope all takes neither connections nor person",
                ));
            }
            PlanScope::All
        }
        PlanScopeKind::Connections => {
            if body.connections.is_empty() || body.person.is_some() {
                return Err(Problem::bad_parameter(
                    "scope connections takes a non-empty connections list and no person",
                ));
            }
            PlanScope::Connections(body.connections.iter().map(ConnectionId::new).collect())
        }
        PlanScopeKind::Person => match &body.person {
            Some(p) if !p.trim().is_empty() && body.connections.is_empty() => {
                PlanScope::Person(PersonRef::parse(p.trim()))
            }
            _ => {
                return Err(Problem::bad_parameter(
                    "scope person takes a person (employee ID or address) and no connections",
                ));
            }
        },
    };
    if let PlanScope::Connections(ids) = &scope {
        let known = roster.connections().await?;
        if let Some(missing) = ids.iter().find(|id| !known.iter().any(|c| &c.id == *id)) {
            return Err(Problem::not_found(format!("no connection {missing}")));
        }
    }
    let by = &auth.principal;
    if body.read {
        roster.read(by, &mut |_, _| {}).await?;
    }
    let planned = roster.plan(by, scope).await?;
    let detail = roster.plan_detail(&planned.id).await?;
    let version = detail.version.clone();
    let location = format!("/api/v1/plans/{}", planned.id);
    let resp = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(detail),
    )
        .into_response();
    Ok(with_etag(resp, &version))
}

/// `POST /api/v1/plans/{id}/approve`.
pub async fn approve(
    state: State<ApiState>,
    auth: Extension<Authenticated>,
    headers: HeaderMap,
    path: ApiPath<String>,
    body: ApiJson<DecisionRequest>,
) -> Result<Response, Problem> {
    decide(state, auth, headers, path, body, true).await
}

/// `POST /api/v1/plans/{id}/reject`.
pub async fn reject(
    state: State<ApiState>,
    auth: Extension<Authenticated>,
    headers: HeaderMap,
    path: ApiPath<String>,
    body: ApiJson<DecisionRequest>,
) -> Result<Response, Problem> {
    decide(state, auth, headers, path, body, false).await
}

async fn decide(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionRequest>,
    approve: bool,
) -> Result<Response, Problem> {
    if body.reason.trim().is_empty() {
        return Err(Problem::bad_parameter("reason must not be empty"));
    }
    let id = PlanId::new(id);
    let current = roster.plan_detail(&id).await?;
    check_if_match(&headers, &current.version)?;
    let action = match body.action {
        None => None,
        Some(i) => {
            let i = usize::try_from(i).unwrap_or(usize::MAX);
            if i >= current.plan.actions.len() {
                return Err(Problem::bad_parameter(format!(
                    "plan {id} has no action {i} (it has {})",
                    current.plan.actions.len()
                )));
            }
            Some(i)
        }
    };
    let by = &auth.principal;
    if approve {
        roster.approve(by, &id, action, body.reason.trim()).await?;
    } else {
        roster.reject(by, &id, action, body.reason.trim()).await?;
    }
    let detail = roster.plan_detail(&id).await?;
    let version = detail.version.clone();
    Ok(with_etag(axum::Json(detail).into_response(), &version))
}

/// `POST /api/v1/plans/{id}/apply`.
pub async fn apply(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let id = PlanId::new(id);
    let current = roster.plan_detail(&id).await?;
    check_if_match(&headers, &current.version)?;
    let by = auth.principal.clone();
    let plan_id = id.clone();
    // The check and the run in a task of their own: a request timeout or a
    // client going away never cancels them halfway.
    let work = tokio::spawn(async move {
        let approved = roster.check(&by, &plan_id, &mut |_, _| {}).await?;
        roster.apply(approved, &mut |_, _| {}).await
    });
    match tokio::time::timeout(APPLY_WAIT, work).await {
        Ok(Ok(Ok((report, enqueued)))) => Ok(axum::Json(ApplyResult {
            plan_id: id.to_string(),
            applied: report
                .applied
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            failed: report
                .failed
                .iter()
                .map(|(c, a, e)| FailedAction {
                    connection: c.to_string(),
                    account: a.clone(),
                    error: e.clone(),
                })
                .collect(),
            skipped: report.skipped,
            manual: report.manual,
            pending: report.pending,
            held: report.held,
            tasks: enqueued.tasks.len(),
            queued: enqueued.queued,
            paused: report.paused.iter().map(|(c, _)| c.to_string()).collect(),
            quarantined: report
                .quarantined
                .iter()
                .map(|(c, _)| c.to_string())
                .collect(),
        })
        .into_response()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "apply task failed");
            Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "applying failed; see the server log and the audit log",
            ))
        }
        Err(_) => {
            let location = format!("/api/v1/plans/{id}");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location.clone())],
                axum::Json(Accepted {
                    status: "applying".into(),
                    location,
                    detail: "the plan is being carried out; its state says when it settles".into(),
                }),
            )
                .into_response())
        }
    }
}
