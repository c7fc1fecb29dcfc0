//! `roster mcp`: the MCP server for AI agents over stdio (see the
//! `roster-mcp` crate). An MCP client (Claude Desktop, an IDE, an agent
//! framework) starts it as a subprocess and speaks JSON-RPC on its stdin
//! and stdout; logs go to stderr.
//!
//! The agent is whoever holds the token in `ROSTER_AGENT_TOKEN`: it must be
//! an agent token (`roster token create --agent --scope read,propose --for
//! NAME`), valid when the server starts. A REST token is refused: what an
//! MCP client does is an agent's, and is marked so. The server opens no
//! connection to any app and resolves no vendor secret: its tools read
//! roster's database and store proposals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::ops::{engine_offline, load_config};

#[derive(Args)]
pub struct McpArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
}

/// The environment variable holding the agent's token.
pub const TOKEN_ENV: &str = "ROSTER_AGENT_TOKEN";

pub async fn run(args: McpArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let token = std::env::var(TOKEN_ENV).unwrap_or_default();
    if token.trim().is_empty() {
        return Err(roster_mcp::McpError::NoToken.into());
    }
    let config = load_config(&args.config)?;
    let roster = Arc::new(roster_engine::Roster::new(
        engine_offline(&config, catalog_dir).await?,
    ));
    let caller = roster_mcp::authenticate_agent(&roster, &token)
        .await
        .with_context(|| format!("cannot start the MCP server (token from {TOKEN_ENV})"))?;
    eprintln!(
        "roster mcp: serving {} over stdio (scopes: {})",
        caller.principal,
        caller
            .scopes()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    roster_mcp::serve_stdio(roster, caller).await?;
    Ok(())
}
