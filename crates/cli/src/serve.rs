//! `roster serve` (the SCIM gateway plus the service) and
//! `roster scim token create|list|revoke`.
//!
//! IdPs push to `/scim/v2/{connection}/`. Every inbound change is an event
//! for one person: roster plans just them at once and carries the change
//! out through whatever path the connection's app has (a Spendesk
//! deprovision push becomes an offboarding task within a second). The
//! engine implements the server's sink (`roster_engine::inbound::EngineSink`),
//! so this module only wires the two together.
//!
//! A `[sources.<name>]` of kind okta with `event_hook_secret` also gets an
//! Okta event hook at `/hooks/okta/<name>`: it names users, which the
//! service re-reads from Okta and reconciles (the hook is never taken as
//! their state).
//!
//! AI agents reach roster at `/mcp` (MCP over streamable HTTP, the
//! `roster-mcp` crate) with an agent token as a bearer token: read and
//! propose only. Only loopback `Host` names are accepted unless
//! `--mcp-allowed-host` names more.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_engine::inbound::EngineSink;
use roster_engine::service::{self, ServiceOptions};
use roster_server::{HookState, OktaHook, ScimState, hook_router, scim_router, tokens};
use tokio::sync::watch;

use crate::ops::{engine_for, load_config};

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ROSTER_LISTEN")]
    listen: SocketAddr,
    /// Minutes between full reconciliations.
    #[arg(long, default_value_t = 15)]
    every: u64,
    /// Only plan: never apply without `roster apply`.
    #[arg(long)]
    plan_only: bool,
    /// Seconds the scheduler lease lasts without renewal (see `roster run
    /// --help`): with several `roster serve` on one PostgreSQL, how long
    /// the scheduled jobs pause when the process running them dies.
    #[arg(long, default_value_t = 30)]
    leader_ttl_secs: u64,
    /// A `Host` name (or `name:port`) under which AI agents reach `/mcp`,
    /// besides the loopback names accepted by default (repeatable;
    /// protection against DNS rebinding).
    #[arg(
        long = "mcp-allowed-host",
        value_name = "HOST",
        env = "ROSTER_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    mcp_allowed_hosts: Vec<String>,
    /// The web UI is reached over https (a TLS-terminating proxy in
    /// front): its session cookie gets `Secure` and the `__Host-` prefix.
    #[arg(long, env = "ROSTER_UI_SECURE_COOKIES")]
    secure_cookies: bool,
    /// An origin (`https://roster.example.com`) whose form posts the web UI
    /// accepts besides its own `Host` (a proxy that rewrites `Host`;
    /// repeatable).
    #[arg(
        long = "ui-trusted-origin",
        value_name = "ORIGIN",
        env = "ROSTER_UI_TRUSTED_ORIGINS",
        value_delimiter = ','
    )]
    trusted_origins: Vec<String>,
}

#[derive(Subcommand)]
pub enum ScimCommand {
    /// SCIM bearer tokens for IdPs pushing to roster.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for a connection; it is printed once, stored hashed.
    Create {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        connection: String,
        /// Ignored unless it names someone else, which is refused: roster records
        /// the operator who runs the command (see `[operators]` in the config).
        #[arg(long, hide = true)]
        by: Option<String>,
    },
    /// List tokens: prefix, connection, creation and last use only.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its prefix.
    Revoke {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        prefix: String,
        /// Ignored unless it names someone else, which is refused: roster records
        /// the operator who runs the command (see `[operators]` in the config).
        #[arg(long, hide = true)]
        by: Option<String>,
    },
}

pub async fn serve(args: ServeArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    // Record from the start: the service's first run is counted too.
    roster_server::metrics_handle();
    let roster = Arc::new(roster_engine::Roster::new(
        engine_for(&config, catalog_dir).await?,
    ));
    // Inbound SCIM changes go straight to the service as events for one
    // person each.
    let (sink, _events, events_rx) = EngineSink::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = ServiceOptions {
        full_interval: Duration::from_secs(args.every.max(1) * 60),
        hr_csv: config.hr_csv.clone(),
        auto_apply: !args.plan_only,
        poll_interval: None,
    };
    let svc = tokio::spawn(service::run_with_lease(
        roster.clone(),
        opts,
        crate::service::lease_options(args.leader_ttl_secs),
        events_rx,
        stop_rx,
    ));
    let mut hooks = std::collections::BTreeMap::new();
    for s in &config.sources {
        if let Some(secret) = &s.event_hook_secret {
            let hook = OktaHook::new(
                roster_store::ConnectionId::new(s.connection_id()),
                &s.event_hook_header,
                secret.expose(),
            )
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("sources.{}", s.name))?;
            hooks.insert(s.name.clone(), hook);
        }
    }
    let hook_names: Vec<String> = hooks.keys().cloned().collect();
    let hook_state = HookState::new(hooks, sink.clone());
    let state = ScimState::new(roster.store().clone(), sink);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    eprintln!(
        "roster serve: SCIM gateway at http://{}/scim/v2/<connection>/ (tokens: roster scim token create --connection NAME); full reconciliation every {} min",
        listener.local_addr()?,
        args.every.max(1)
    );
    eprintln!(
        "roster serve: health at http://{0}/healthz and /readyz, Prometheus metrics at http://{0}/metrics",
        listener.local_addr()?
    );
    for name in &hook_names {
        eprintln!(
            "roster serve: Okta event hook for [sources.{name}] at http://{}/hooks/okta/{name}",
            listener.local_addr()?
        );
    }
    // AI agents (MCP) with agent tokens; read and propose only.
    let mcp_options = roster_mcp::http::HttpOptions {
        allowed_hosts: args.mcp_allowed_hosts.clone(),
        ..Default::default()
    };
    let mcp_cancel = mcp_options.cancel.clone();
    eprintln!(
        "roster serve: MCP for AI agents at http://{}{} (agent tokens: roster token create --agent --scope read,propose --for NAME)",
        listener.local_addr()?,
        roster_mcp::http::PATH
    );
    let shutdown = async move {
        let _ = crate::service::shutdown_signal().await;
        eprintln!("stopping…");
        // Open MCP sessions end, so the server can stop.
        mcp_cancel.cancel();
    };
    let options = http_options(&state);
    eprintln!(
        "roster serve: REST API at http://{0}/api/v1/ (OpenAPI: /api/v1/openapi.json, reference: /api/docs; tokens: roster token create)",
        listener.local_addr()?
    );
    let mut web = roster_web::WebOptions {
        secure_cookies: args.secure_cookies,
        trusted_origins: args.trusted_origins.clone(),
        ..Default::default()
    };
    // `[web.oidc]`: sign-in with the company's IdP (cli/src/web_oidc.rs).
    if let Some(provider) = crate::web_oidc::provider(&config, roster.store()).await? {
        web = web.with_oidc(provider);
    }
    eprintln!(
        "roster serve: web UI at http://{}/ui/ (users: roster user add NAME --role viewer|operator|approver|admin)",
        listener.local_addr()?
    );
    let router = http_router(state, hook_state, roster.clone(), web)
        .merge(roster_mcp::http::router(roster.clone(), mcp_options));
    roster_server::serve_with(listener, router, shutdown, options)
        .await
        .context("the HTTP server failed")?;
    let _ = stop_tx.send(true);
    svc.await.context("the service task failed")??;
    Ok(())
}

/// Everything `roster serve` answers over HTTP (also what `roster bench
/// api` and `roster bench ui` measure): SCIM, Okta event hooks, the REST
/// API, the web UI (`/ui/`, with `/` redirecting there), the ops endpoints.
pub(crate) fn http_router(
    scim: ScimState,
    hooks: HookState,
    roster: Arc<roster_engine::Roster>,
    web: roster_web::WebOptions,
) -> axum::Router {
    scim_router(scim)
        .merge(hook_router(hooks))
        .merge(roster_server::api_router(roster.clone()))
        .merge(roster_web::web_router(roster.clone(), web))
        .merge(roster_server::ops_router(roster))
}

/// The server-wide limits [`http_router`] is served with: the SCIM
/// gateway's, with room for the REST API's largest body.
pub(crate) fn http_options(scim: &ScimState) -> roster_server::ServeOptions {
    let mut options = roster_server::scim_serve_options(scim.config());
    options.max_body_bytes = options
        .max_body_bytes
        .max(roster_server::api::MAX_BODY_BYTES + 64 * 1024);
    options
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() * 1000
}

pub async fn scim(cmd: ScimCommand) -> Result<()> {
    let ScimCommand::Token(cmd) = cmd;
    match cmd {
        TokenCommand::Create {
            config,
            connection,
            by,
        } => {
            let config = load_config(&config)?;
            // A token for a connection roster.toml lacks would let an IdP
            // push intent nothing acts on (or, after a later rename, act on
            // the wrong app): refuse it, as a typo most likely.
            anyhow::ensure!(
                config.connections.iter().any(|c| c.id == connection),
                "no connection {connection:?} in the config{}; configured: {}",
                crate::suggest::did_you_mean(
                    &connection,
                    config.connections.iter().map(|c| c.id.as_str())
                ),
                config
                    .connections
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let principal = crate::principal::current(&config)?;
            crate::principal::check_by(by.as_deref(), &principal)?;
            let store = roster_store::Store::open(&config.database).await?;
            let created =
                tokens::create_token(&store, &connection, &principal.actor(), now_ms()).await?;
            println!("{}", created.token);
            eprintln!(
                "SCIM token {} for connection {connection}: shown once, stored hashed. IdP base URL: http://HOST/scim/v2/{connection}",
                created.info.prefix
            );
        }
        TokenCommand::List {
            config,
            connection,
            json,
        } => {
            let config = load_config(&config)?;
            let store = roster_store::Store::open(&config.database).await?;
            let list = tokens::list_tokens(&store, connection.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!(
                    "No SCIM tokens; create one with: roster scim token create --connection NAME"
                );
            }
            for t in list {
                println!(
                    "{}  {:<20} created {}  last used {}{}",
                    t.prefix,
                    t.connection,
                    crate::ops::due(Some(t.created_ms)),
                    t.last_used_ms
                        .map(|m| crate::ops::due(Some(m)))
                        .unwrap_or_else(|| "never".into()),
                    if t.revoked_ms.is_some() {
                        "  REVOKED"
                    } else {
                        ""
                    }
                );
            }
        }
        TokenCommand::Revoke { config, prefix, by } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            crate::principal::check_by(by.as_deref(), &principal)?;
            let store = roster_store::Store::open(&config.database).await?;
            let t = tokens::revoke_token(&store, &prefix, &principal.actor(), now_ms()).await?;
            println!("revoked {} ({})", t.prefix, t.connection);
        }
    }
    Ok(())
}
