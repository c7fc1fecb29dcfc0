//! `/api/v1/tasks`: human tasks, and completing one with evidence.
//!
//! Evidence is what `roster task done --evidence FILE` records: the file's
//! name, size and SHA-256, not the file (roster is not a document store;
//! the hash ties the record to the file the person keeps).

use axum::Extension;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use roster_engine::Authenticated;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::problem::{Problem, codes};
use super::schema::CompleteRequest;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/tasks?all=`.
pub async fn list(
    State(roster): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, Problem> {
    Ok(axum::Json(roster.tasks(q.all).await?).into_response())
}

/// `GET /api/v1/tasks/{id}`.
pub async fn show(
    State(roster): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    match roster.task(&id).await? {
        Some(t) => Ok(axum::Json(t).into_response()),
        None => Err(Problem::not_found(format!("no task {id}"))),
    }
}

/// `POST /api/v1/tasks/{id}/complete`: JSON or multipart.
pub async fn complete(
    State(roster): State<ApiState>,
    Extension(auth): Extension<Authenticated>,
    ApiPath(id): ApiPath<String>,
    req: Request,
) -> Result<Response, Problem> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (note, evidence) = if multipart {
        from_multipart(
            Multipart::from_request(req, &())
                .await
                .map_err(|r| Problem::new(r.status(), codes::BAD_BODY, r.body_text()))?,
        )
        .await?
    } else {
        let ApiJson(body) = ApiJson::<CompleteRequest>::from_request(req, &()).await?;
        (body.note, body.evidence)
    };
    if roster.task(&id).await?.is_none() {
        return Err(Problem::not_found(format!("no task {id}")));
    }
    let task = roster
        .complete_task(&auth.principal, &id, note, evidence)
        .await?;
    Ok(axum::Json(task).into_response())
}

/// `note` and `file` from a form; the file becomes `name (N bytes,
/// sha256:…)`.
async fn from_multipart(mut form: Multipart) -> Result<(Option<String>, Option<String>), Problem> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        Problem::new(e.status(), codes::BAD_BODY, e.body_text())
    };
    let mut note = None;
    let mut evidence = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("note") => note = Some(field.text().await.map_err(bad)?),
            Some("file") => {
                let name = field
                    .file_name()
                    .map(|n| n.replace(['\r', '\n'], " "))
                    .unwrap_or_else(|| "evidence".into());
                let bytes = field.bytes().await.map_err(bad)?;
                let digest = hex::encode(Sha256::digest(&bytes));
                evidence = Some(format!("{name} ({} bytes, sha256:{digest})", bytes.len()));
            }
            _ => {}
        }
    }
    if evidence.is_none() {
        return Err(Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            codes::BAD_BODY,
            "a multipart completion carries the evidence as a `file` field",
        ));
    }
    Ok((note, evidence))
}
