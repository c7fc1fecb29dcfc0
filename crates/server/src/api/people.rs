//! `/api/v1/people`: search, one person's access, offboarding.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use roster_engine::{Authenticated, PersonRef};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::extract::{ApiJson, ApiPath, ApiQuery, DEFAULT_LIMIT, paged};
use super::problem::Problem;
use super::schema::{Accepted, OffboardRequest};

/// How long an offboarding may run before the answer is 202.
pub const OFFBOARD_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/people?q=&cursor=&limit=`: one `Roster` call.
pub async fn search(
    State(roster): State<ApiState>,
    uri: Uri,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Response, Problem> {
    let page = roster
        .search_people(
            &query.q,
            query.cursor.as_deref(),
            query.limit.unwrap_or(DEFAULT_LIMIT),
        )
        .await?;
    Ok(paged(&uri, page.next_cursor.as_deref(), &page))
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    next_plan: bool,
}

/// `GET /api/v1/people/{id}[?next_plan=true]`: one `Roster` call.
pub async fn show(
    State(roster): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ShowQuery>,
) -> Result<Response, Problem> {
    let who = PersonRef::parse(&id);
    let access = if query.next_plan {
        roster.person_access(&who).await?
    } else {
        roster.person_access_without_plan(&who).await?
    };
    Ok(axum::Json(access).into_response())
}

/// `POST /api/v1/people/{id}/offboard`.
pub async fn offboard(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OffboardRequest>,
) -> Result<Response, Problem> {
    if body.reason.trim().is_empty() {
        return Err(Problem::bad_parameter("reason must not be empty"));
    }
    let who = PersonRef::parse(&id);
    if body.dry_run {
        let (person, plan) = roster.preview_offboard(&who).await?;
        let revocations = roster.planned_revocations(&person);
        return Ok(axum::Json(json!({
            "dry_run": true,
            "person": person,
            "plan": plan,
            "revocations": revocations,
        }))
        .into_response());
    }
    let by = auth.principal.clone();
    let reason = body.reason.clone();
    let work =
        tokio::spawn(async move { roster.offboard(&by, &who, &reason, &mut |_, _| {}).await });
    match tokio::time::timeout(OFFBOARD_WAIT, work).await {
        Ok(Ok(Ok(done))) => Ok(axum::Json(json!({
            "dry_run": false,
            "person": done.person,
            "plan_id": done.plan_id.to_string(),
            "plan": done.plan,
            "applied": done.report.applied_total(),
            "failed": done.report.failed.len(),
            "manual": done.report.manual,
            "pending": done.report.pending,
            "tasks": done.enqueued.tasks.len(),
            "held": done.held.iter().map(|(i, why)| json!({"index": i, "reason": why})).collect::<Vec<_>>(),
            "revocations": done.revocations,
        }))
        .into_response()),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "offboarding task failed");
            Err(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                super::problem::codes::INTERNAL,
                "the offboarding failed; see the server log and the audit log",
            ))
        }
        Err(_) => {
            let location = format!("/api/v1/people/{}", urlencode(&id));
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location.clone())],
                axum::Json(Accepted {
                    status: "running".into(),
                    location,
                    detail: "the offboarding goes on; the person's access shows where it stands"
                        .into(),
                }),
            )
                .into_response())
        }
    }
}

pub(super) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
