//! RFC 9457 problem details: every error the REST API sends.
//!
//! A [`Problem`] carries roster's stable code (`code`, also the end of
//! `type`, `urn:roster:error:<CODE>`): the engine's own
//! ([`EngineError::code`], `ENG-NNNN`) for what the application layer
//! refused, and `API-NNNN` for what HTTP itself refused (a body that is not
//! JSON, a cursor or parameter that is not valid, a missing `If-Match`).
//! Framework rejections (extractors, unknown routes, methods, body limits,
//! timeouts) are rewritten into the same shape by [`normalize`], so a
//! client never sees any other error body from `/api/v1`.

use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roster_engine::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// HTTP-level codes, stable across releases.
pub mod codes {
    /// No bearer token, or not a bearer token.
    pub const UNAUTHENTICATED: &str = "API-0001";
    /// The body is not JSON, or not the JSON this operation takes.
    pub const BAD_BODY: &str = "API-0002";
    /// A query or path parameter is not valid.
    pub const BAD_PARAMETER: &str = "API-0003";
    /// No such route.
    pub const NO_ROUTE: &str = "API-0004";
    /// The route does not take this method.
    pub const METHOD: &str = "API-0005";
    /// A write that could race needs `If-Match` with the ETag read.
    pub const IF_MATCH_REQUIRED: &str = "API-0006";
    /// The resource changed since the ETag was read.
    pub const PRECONDITION_FAILED: &str = "API-0007";
    /// The body is larger than the API takes.
    pub const TOO_LARGE: &str = "API-0008";
    /// The request took longer than the API waits.
    pub const TIMEOUT: &str = "API-0009";
    /// No such resource (person, task, app, connection, match).
    pub const NOT_FOUND: &str = "API-0010";
    /// Something failed inside roster; the log has the detail.
    pub const INTERNAL: &str = "API-0011";
    /// The body's media type is not one this operation takes.
    pub const MEDIA_TYPE: &str = "API-0012";
}

/// An RFC 9457 problem.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:roster:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// roster's stable error code (`ENG-0008`, `API-0006`, ...).
    pub code: String,
    /// The scope the token lacks, when that is the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_scope: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:roster:error:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            missing_scope: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, detail)
    }

    pub fn bad_parameter(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, codes::BAD_PARAMETER, detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        let status = match &e {
            EngineError::Store(_) => {
                // The store's message may name the database: logged, not sent.
                tracing::error!(error = %e, "store failure while serving the REST API");
                return Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.code(),
                    "internal error while accessing the store",
                );
            }
            EngineError::PlanNotFound(_) | EngineError::PersonNotFound(_) => StatusCode::NOT_FOUND,
            EngineError::NothingRead => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Refused(_)
            | EngineError::PolicyUnsound(_)
            | EngineError::Stale { .. }
            | EngineError::AlreadyApplied { .. } => StatusCode::CONFLICT,
            EngineError::NotPermitted(_) => StatusCode::FORBIDDEN,
            EngineError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            EngineError::InvalidInput(_) => StatusCode::BAD_REQUEST,
        };
        Problem::new(status, e.code(), e.to_string())
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        let status = r.status();
        let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            codes::MEDIA_TYPE
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            codes::TOO_LARGE
        } else {
            codes::BAD_BODY
        };
        Problem::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::bad_parameter(r.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        Problem::bad_parameter(r.body_text())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"roster\""),
            );
        }
        resp
    }
}

/// Rewrites every error response that is not already a problem (a
/// method the route does not take, a body over the limit, a timeout, a
/// panic) into one.
pub async fn normalize(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return resp;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (codes::NO_ROUTE, "no such route in /api/v1"),
        StatusCode::METHOD_NOT_ALLOWED => (codes::METHOD, "this route does not take that method"),
        StatusCode::PAYLOAD_TOO_LARGE => (codes::TOO_LARGE, "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT => (codes::TIMEOUT, "the request took too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (codes::MEDIA_TYPE, "unsupported media type"),
        s if s.is_server_error() => (codes::INTERNAL, "internal error"),
        _ => (codes::BAD_BODY, "the request was not valid"),
    };
    let allow = resp.headers().get(header::ALLOW).cloned();
    let mut out = Problem::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}
