//! Turning failures into RFC 7644 §3.12 responses.
//!
//! Handlers return [`ApiError`], which wraps a [`ScimError`]. Store
//! failures become `500` with a generic detail (the real error is logged,
//! never sent: it may name the database). Responses that did not come from
//! a handler (axum extractor rejections, body limits, timeouts, panics) are
//! rewritten into the same JSON shape by [`scim_error_normalizer`], so a
//! client never sees a non-SCIM error body from the SCIM endpoints.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_scim::ScimError;
use roster_store::{ScimStoreError, StoreError};

/// The media type of every SCIM response.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub ScimError);

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure while serving SCIM");
        ApiError(ScimError::internal(
            "internal error while accessing the store",
        ))
    }
}

impl From<ScimStoreError> for ApiError {
    fn from(e: ScimStoreError) -> Self {
        ApiError(match e {
            ScimStoreError::Conflict { user_name, .. } => {
                ScimError::uniqueness(format!("userName {user_name:?} is already in use"))
            }
            ScimStoreError::DuplicateId { id, .. } => {
                ScimError::uniqueness(format!("id {id:?} is already in use"))
            }
            ScimStoreError::NotFound { kind, id } => {
                ScimError::not_found(format!("{kind} {id} not found"))
            }
            ScimStoreError::VersionMismatch { kind, id, .. } => ScimError::precondition_failed(
                format!("{kind} {id} has been modified (version mismatch)"),
            ),
            ScimStoreError::Store(e) => return ApiError::from(e),
            other => {
                tracing::error!(error = %other, "store failure while serving SCIM");
                ScimError::internal("internal error while accessing the store")
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// The §3.12 response for `e`.
pub fn error_response(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, e.to_json().to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"roster-scim\""),
        );
    }
    resp
}

/// Rewrites an error response that is not already SCIM JSON (an extractor
/// rejection, a body limit, a timeout, a caught panic) into one.
pub async fn scim_error_normalizer(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_scim = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SCIM_CONTENT_TYPE));
    if is_scim {
        return resp;
    }
    // Keep the framework's short explanation (never more than 512 bytes;
    // it holds no secrets: rejections describe the request's shape).
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let mut detail: String = String::from_utf8_lossy(&body).chars().take(512).collect();
    if detail.trim().is_empty() {
        detail = status.canonical_reason().unwrap_or("error").to_string();
    }
    let e = match status.as_u16() {
        400 => ScimError::invalid_syntax(detail),
        413 => ScimError::payload_too_large(detail),
        s => ScimError::new(s, None, detail),
    };
    error_response(&e)
}

/// A SCIM 500 for a caught panic. The panic message is logged, not sent.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "SCIM handler panicked");
    error_response(&ScimError::internal("internal error"))
}
