//! `/mcp` over streamable HTTP, merged into `roster serve`'s router.
//!
//! Authentication is middleware, on every request: a bearer token that
//! [`crate::authenticate_agent`] accepts (a valid agent token) is put in
//! the request's extensions as the [`Authenticated`] caller, which the
//! tools read (rmcp hands each tool the request's `http::request::Parts`);
//! anything else is `401` (missing, unknown, revoked or expired) or `403`
//! (a REST token, not an agent's), before rmcp sees the request. A session
//! therefore never outlives its token: each call is judged by the token it
//! carries.
//!
//! rmcp checks the `Host` header against [`HttpOptions::allowed_hosts`]
//! (DNS-rebinding protection): loopback names only by default; a
//! deployment reached under another name lists it
//! (`roster serve --mcp-allowed-host roster.example.com`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use roster_engine::Roster;

use crate::{McpError, RosterMcp};

/// The path the endpoint is mounted at.
pub const PATH: &str = "/mcp";

/// How `/mcp` is served.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `Host` values accepted (names, or `name:port`); empty means the
    /// loopback defaults (`localhost`, `127.0.0.1`, `::1`).
    pub allowed_hosts: Vec<String>,
    /// Cancelled when the server stops, ending open sessions.
    pub cancel: tokio_util::sync::CancellationToken,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: Vec::new(),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// The loopback names rmcp accepts by default.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A router serving `/mcp` for agent tokens, to merge into the server's.
pub fn router(roster: Arc<Roster>, options: HttpOptions) -> Router {
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(options.cancel.clone());
    if !options.allowed_hosts.is_empty() {
        let hosts: Vec<String> = LOOPBACK_HOSTS
            .iter()
            .map(|h| h.to_string())
            .chain(options.allowed_hosts.iter().cloned())
            .collect();
        config = config.with_allowed_hosts(hosts);
    }
    let for_sessions = roster.clone();
    let service = StreamableHttpService::new(
        move || Ok(RosterMcp::per_request(for_sessions.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service(PATH, service)
        .layer(from_fn_with_state(roster, authenticate))
}

/// The middleware (module docs).
async fn authenticate(State(roster): State<Arc<Roster>>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    match crate::authenticate_agent(&roster, bearer).await {
        Ok(who) => {
            tracing::debug!(principal = %who.principal, token = %who.token, "MCP request");
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(e) => {
            let status = match e {
                McpError::NotAnAgent(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut resp = (status, e.to_string()).into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"roster-mcp\""),
                );
            }
            resp
        }
    }
}
