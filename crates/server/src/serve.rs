//! Running a router: graceful shutdown, an outer body cap, a timeout and
//! request logs.
//!
//! Request logs are one `tracing` span per request (`method`, `path`) with
//! the status and latency logged at INFO when the response is sent. Only
//! the path is logged: never headers (the bearer token travels in
//! `Authorization`) and never the query string (filters carry user names
//! and email addresses).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::{Request, StatusCode};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
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
        .layer(RequestBodyLimitLayer::new(options.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
