//! The axum router of the SCIM service provider.
//!
//! Routes, per connection (`{c}`):
//!
//! | path                                  | methods                        |
//! |---------------------------------------|--------------------------------|
//! | `/scim/v2/{c}/Users`, `/Groups`       | GET (list), POST (create)      |
//! | `/scim/v2/{c}/Users/{id}`, `/Groups/{id}` | GET, PUT, PATCH, DELETE    |
//! | `/scim/v2/{c}/Users/.search`, `/Groups/.search`, `/.search` | POST  |
//! | `/scim/v2/{c}/ServiceProviderConfig`  | GET                            |
//! | `/scim/v2/{c}/ResourceTypes[/{id}]`, `/Schemas[/{id}]` | GET           |
//! | `/scim/v2/{c}/Bulk`                   | POST                           |
//!
//! Any other method on these is `405` (with `Allow`); any other path under
//! `/scim/v2/{c}` is `404`. Every route requires a bearer token of the
//! connection (checked in [`auth`] before the handler runs). The router
//! has no global fallback, so it can be merged with other routers.
//!
//! Requests are dispatched by hand from three catch-all routes rather
//! than one axum route per endpoint, so that 404 and 405 are decided in one
//! place and always answered in SCIM's error format.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use roster_scim::ScimError;
use roster_store::ScimKind;
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::bulk;
use crate::error::{ApiError, SCIM_CONTENT_TYPE, error_response, panic_response};
use crate::resource::{etag, location};
use crate::service::{ListQuery, Precondition, Projection};
use crate::state::{ScimState, now_ms};
use crate::tokens::{Caller, valid_connection_name};

/// How long one SCIM request may take before it is answered `408`
/// (and its transaction, if any, rolled back).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The SCIM 2.0 service provider for every connection, under
/// `/scim/v2/{connection}/`.
pub fn scim_router(state: ScimState) -> Router {
    let cfg = state.config();
    // The router-wide limit is the larger one (Bulk's); the handlers apply
    // the per-endpoint limit and answer 413 in SCIM's format.
    let limit = cfg.max_request_bytes();
    Router::new()
        .route("/scim/v2/{connection}", any(not_found))
        .route("/scim/v2/{connection}/", any(not_found))
        .route("/scim/v2/{connection}/{endpoint}", any(endpoint))
        .route("/scim/v2/{connection}/{endpoint}/{id}", any(endpoint_id))
        .route(
            "/scim/v2/{connection}/{endpoint}/{id}/{*rest}",
            any(not_found),
        )
        .route_layer(from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(map_response(crate::error::scim_error_normalizer))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost: every answer counts, panics and timeouts included.
        .layer(map_response(crate::ops::count_scim_response))
        .with_state(state)
}

/// The connection segment of a `/scim/v2/{connection}/...` path.
fn connection_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/scim/v2/")?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Authenticates the request for the connection in its path and stores the
/// [`Caller`] in the request's extensions.
async fn auth(State(state): State<ScimState>, mut req: Request, next: Next) -> Response {
    let Some(conn) = connection_of(req.uri().path()).filter(|c| valid_connection_name(c)) else {
        return error_response(&ScimError::not_found("no such SCIM connection"));
    };
    let conn = conn.to_string();
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let inner = &state.inner;
    match inner
        .tokens
        .verify(&inner.store, authz, &conn, now_ms())
        .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => error_response(&e),
    }
}

async fn not_found() -> Response {
    error_response(&ScimError::not_found("no such SCIM endpoint"))
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = error_response(&ScimError::method_not_allowed(format!(
        "this endpoint allows {allow}"
    )));
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// A SCIM JSON response.
fn scim_json(status: StatusCode, body: &Value) -> Response {
    scim_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

/// A SCIM JSON response of a body serialized already.
fn scim_bytes(status: StatusCode, bytes: impl Into<Bytes>) -> Response {
    let mut r = (status, bytes.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    r
}

fn with_etag(mut r: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn parse_json(body: &Bytes, limit: usize) -> Result<Value, ScimError> {
    if body.len() > limit {
        return Err(ScimError::payload_too_large(format!(
            "request body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("request body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("request body is not valid JSON: {e}")))
}

/// `{origin}/scim/v2/{connection}` for `meta.location` and `Location`.
fn base_url(state: &ScimState, headers: &HeaderMap, connection: &str) -> String {
    let origin = match &state.config().public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                        })
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{origin}/scim/v2/{connection}")
}

fn precondition(headers: &HeaderMap, name: header::HeaderName) -> Option<Precondition> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(Precondition::parse)
}

fn projection_of(q: &ListQuery) -> Projection {
    Projection {
        attributes: q.attributes.clone(),
        excluded: q.excluded_attributes.clone(),
    }
}

fn query_of(raw: Option<&str>) -> ListQuery {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    ListQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn kind_of(endpoint: &str) -> Option<ScimKind> {
    match endpoint {
        "Users" => Some(ScimKind::User),
        "Groups" => Some(ScimKind::Group),
        _ => None,
    }
}

/// Everything a handler needs from the request.
struct Req {
    state: ScimState,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    query: ListQuery,
    body: Bytes,
    base: String,
}

#[allow(clippy::too_many_arguments)]
async fn endpoint(
    State(state): State<ScimState>,
    axum::Extension(caller): axum::Extension<Caller>,
    method: Method,
    Path((connection, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let base = base_url(&state, &headers, &connection);
    let r = Req {
        state,
        caller,
        method,
        headers,
        query: query_of(raw.as_deref()),
        body,
        base,
    };
    match handle_endpoint(&r, &endpoint).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn endpoint_id(
    State(state): State<ScimState>,
    axum::Extension(caller): axum::Extension<Caller>,
    method: Method,
    Path((connection, endpoint, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let base = base_url(&state, &headers, &connection);
    let r = Req {
        state,
        caller,
        method,
        headers,
        query: query_of(raw.as_deref()),
        body,
        base,
    };
    match handle_endpoint_id(&r, &endpoint, &id).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn handle_endpoint(r: &Req, endpoint: &str) -> Result<Response, ApiError> {
    let inner = &r.state.inner;
    let cfg = &inner.config;
    let conn = r.caller.connection.as_str();
    if let Some(kind) = kind_of(endpoint) {
        return match r.method {
            Method::GET => {
                let list = inner.list(conn, &[kind], &r.query, &r.base).await?;
                Ok(scim_bytes(StatusCode::OK, list))
            }
            Method::POST => {
                let body = parse_json(&r.body, cfg.max_body_bytes)?;
                let w = inner.create(&r.caller, kind, body, &r.base).await?;
                let out = projection_of(&r.query).apply(&w.resource, inner);
                let mut resp = with_etag(scim_json(StatusCode::CREATED, &out), w.version);
                if let Ok(v) = HeaderValue::from_str(&location(&r.base, kind, &w.id)) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                Ok(resp)
            }
            _ => Ok(method_not_allowed("GET, POST")),
        };
    }
    match endpoint {
        ".search" => match r.method {
            Method::POST => {
                let body = parse_json(&r.body, cfg.max_body_bytes)?;
                let q = ListQuery::from_search_body(&body)?;
                let list = inner
                    .list(conn, &[ScimKind::User, ScimKind::Group], &q, &r.base)
                    .await?;
                Ok(scim_bytes(StatusCode::OK, list))
            }
            _ => Ok(method_not_allowed("POST")),
        },
        "ServiceProviderConfig" => match r.method {
            Method::GET => Ok(scim_json(
                StatusCode::OK,
                &cfg.service_provider_config().to_json(&r.base),
            )),
            _ => Ok(method_not_allowed("GET")),
        },
        "ResourceTypes" => match r.method {
            Method::GET => Ok(scim_json(
                StatusCode::OK,
                &inner.registry.resource_types_list_response(&r.base),
            )),
            _ => Ok(method_not_allowed("GET")),
        },
        "Schemas" => match r.method {
            Method::GET => Ok(scim_json(
                StatusCode::OK,
                &inner.registry.schemas_list_response(&r.base),
            )),
            _ => Ok(method_not_allowed("GET")),
        },
        "Bulk" => match r.method {
            Method::POST => {
                let out = bulk::run(inner, &r.caller, &r.body, &r.base).await?;
                Ok(scim_json(StatusCode::OK, &out))
            }
            _ => Ok(method_not_allowed("POST")),
        },
        "Me" => Err(ScimError::not_implemented("/Me is not supported").into()),
        _ => Ok(not_found().await),
    }
}

async fn handle_endpoint_id(r: &Req, endpoint: &str, id: &str) -> Result<Response, ApiError> {
    let inner = &r.state.inner;
    let cfg = &inner.config;
    let conn = r.caller.connection.as_str();
    if let Some(kind) = kind_of(endpoint) {
        if id == ".search" {
            return match r.method {
                Method::POST => {
                    let body = parse_json(&r.body, cfg.max_body_bytes)?;
                    let q = ListQuery::from_search_body(&body)?;
                    let list = inner.list(conn, &[kind], &q, &r.base).await?;
                    Ok(scim_bytes(StatusCode::OK, list))
                }
                _ => Ok(method_not_allowed("POST")),
            };
        }
        let projection = projection_of(&r.query);
        return match r.method {
            Method::GET => {
                let got = inner.get(conn, kind, id, &r.base).await?;
                let version = got.version;
                if let Some(p) = precondition(&r.headers, header::IF_NONE_MATCH)
                    && p.matches(version)
                {
                    let resp = Response::builder()
                        .status(StatusCode::NOT_MODIFIED)
                        .body(Body::empty())
                        .unwrap_or_default();
                    return Ok(with_etag(resp, version));
                }
                // The default representation is kept serialized.
                let mut resp = if projection.is_default() {
                    scim_bytes(StatusCode::OK, got.bytes.clone())
                } else {
                    scim_json(StatusCode::OK, &projection.apply(&got.value, inner))
                };
                match &got.etag {
                    Some(tag) => {
                        resp.headers_mut().insert(header::ETAG, tag.clone());
                        Ok(resp)
                    }
                    None => Ok(with_etag(resp, version)),
                }
            }
            Method::PUT => {
                let body = parse_json(&r.body, cfg.max_body_bytes)?;
                let pre = precondition(&r.headers, header::IF_MATCH);
                let w = inner
                    .replace(&r.caller, kind, id, body, pre.as_ref(), &r.base)
                    .await?;
                let out = projection.apply(&w.resource, inner);
                Ok(with_etag(scim_json(StatusCode::OK, &out), w.version))
            }
            Method::PATCH => {
                let body = parse_json(&r.body, cfg.max_body_bytes)?;
                let pre = precondition(&r.headers, header::IF_MATCH);
                let w = inner
                    .patch(&r.caller, kind, id, &body, pre.as_ref(), &r.base)
                    .await?;
                let out = projection.apply(&w.resource, inner);
                Ok(with_etag(scim_json(StatusCode::OK, &out), w.version))
            }
            Method::DELETE => {
                let pre = precondition(&r.headers, header::IF_MATCH);
                inner.delete(&r.caller, kind, id, pre.as_ref()).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Ok(method_not_allowed("GET, PUT, PATCH, DELETE")),
        };
    }
    match endpoint {
        "ResourceTypes" => match r.method {
            Method::GET => inner
                .registry
                .resource_types_json(&r.base)
                .into_iter()
                .find(|v| v["id"] == id)
                .map(|v| scim_json(StatusCode::OK, &v))
                .ok_or_else(|| ScimError::not_found(format!("no resource type {id}")).into()),
            _ => Ok(method_not_allowed("GET")),
        },
        "Schemas" => match r.method {
            Method::GET => inner
                .registry
                .schemas_json(&r.base)
                .into_iter()
                .find(|v| v["id"] == id)
                .map(|v| scim_json(StatusCode::OK, &v))
                .ok_or_else(|| ScimError::not_found(format!("no schema {id}")).into()),
            _ => Ok(method_not_allowed("GET")),
        },
        _ => Ok(not_found().await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_segment() {
        assert_eq!(connection_of("/scim/v2/okta/Users"), Some("okta"));
        assert_eq!(connection_of("/scim/v2/okta"), Some("okta"));
        assert_eq!(connection_of("/other"), None);
    }
}
