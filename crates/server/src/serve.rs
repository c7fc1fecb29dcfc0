//! Running a router: graceful shutdown, an outer body cap, a timeout and
//! request logs.
//!
//! Request logs are one `tracing` span per request (`method`, `path`,
//! `request_id`) with the status and latency logged at INFO when the
//! response is sent. Only the path is logged: never headers (the bearer
//! token travels in `Authorization`) and never the query string (filters
//! carry user names and email addresses).
//!
//! Every request has a request id: the caller's `x-request-id` when it is
//! a plausible id (1 to 128 characters of letters, digits, `-`, `_`, `.`,
//! `:`), else a fresh UUID. It is recorded in the request's span, so every
//! log line of the request carries it (in JSON logs, under `span` and
//! `spans`), and echoed in the response's `x-request-id` header.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Server-wide limits applied around every route.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Hard cap on any request body (routes may set lower ones).
    pub max_body_bytes: usize,
    /// Longest time a request may take.
    pub request_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Headroom of the outer body cap over the SCIM router's own limit: a body
/// slightly over the advertised size reaches the router, which answers 413
/// in SCIM's error format; only a grossly larger one meets the outer cap's
/// bare 413.
const SCIM_OUTER_HEADROOM: usize = 64 * 1024;

/// Server-wide limits for serving the SCIM router of `config`. The outer
/// body cap follows the largest body SCIM accepts (the advertised Bulk
/// `maxPayloadSize`), never an unrelated constant that could refuse a
/// request the discovery document invites.
pub fn scim_serve_options(config: &crate::ScimConfig) -> ServeOptions {
    ServeOptions {
        max_body_bytes: config
            .max_request_bytes()
            .saturating_add(SCIM_OUTER_HEADROOM),
        ..ServeOptions::default()
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting connections and waits for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// The request id header, read, set and echoed by [`with_request_logs`].
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied request id kept.
const MAX_REQUEST_ID: usize = 128;

fn plausible_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Adds the request logs and request ids (module docs) around `router`:
/// what [`serve_with`] does, for callers that run a router another way
/// (tests, benchmarks).
pub fn with_request_logs(router: Router) -> Router {
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // Outermost: an implausible caller id (too long, odd characters)
        // is dropped, so a fresh one is made instead of logging it.
        .layer(axum::middleware::map_request(
            |mut req: Request<axum::body::Body>| async move {
                if req
                    .headers()
                    .get(&REQUEST_ID)
                    .is_some_and(|v| !plausible_request_id(v.as_bytes()))
                {
                    req.headers_mut().remove(&REQUEST_ID);
                }
                req
            },
        ))
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let app = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(options.max_body_bytes));
    let app = with_request_logs(app);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
