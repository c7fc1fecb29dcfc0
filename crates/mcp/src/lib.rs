//! roster's MCP server: what an AI agent may do with roster, over stdio
//! (`roster mcp`) and streamable HTTP (`/mcp` in `roster serve`).
//!
//! An agent may **read** (people, one person's access everywhere, apps and
//! what roster can do in them, orphaned accounts, automation coverage,
//! human tasks, stored plans and why each action is in them) and
//! **propose** (one person's offboarding; the plan the policy implies for a
//! connection or a person). It can never approve, reject, apply or
//! offboard: no tool does, whatever its arguments; the agent's token can
//! never carry those scopes ([`roster_core::Scope::agent_may`]); and the
//! engine refuses an agent principal them anyway
//! ([`roster_engine::proposals`]). A proposal takes no actions as input,
//! only whom or what it is about, so an agent cannot propose an arbitrary
//! grant; every action of it waits for a person's approval, and every
//! review names it as an AI agent's. Free text an agent writes (a
//! proposal's note) is stored verbatim and shown marked
//! `[untrusted agent text]`.
//!
//! Every tool checks the one scope it needs ([`Authenticated::require`]:
//! `read` or `propose`) and calls the application layer
//! ([`roster_engine::Roster`]) with the caller's principal; nothing here
//! reaches the store or the connectors. The caller is fixed for a stdio
//! server (the token in `ROSTER_AGENT_TOKEN`, authenticated once at start)
//! and per request over HTTP ([`http`]: a bearer token authenticated by
//! middleware on every request, handed to the tool in the request's
//! extensions). Only agent tokens (`roster token create --agent`) are
//! accepted: everything done through MCP is an agent's.

pub mod http;
mod tools;

pub use tools::{RosterMcp, TOOL_NAMES};

use roster_core::PrincipalKind;
use roster_engine::{Authenticated, EngineError, Roster};

/// Why the MCP server will not start or serve a caller.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No agent token was given to `roster mcp`.
    #[error(
        "MCP-0001 no agent token: set ROSTER_AGENT_TOKEN to a token from `roster token create --agent --scope read,propose --for NAME`"
    )]
    NoToken,
    /// The token is unknown, revoked or expired.
    #[error("MCP-0002 the agent token was refused: {0}")]
    Unauthenticated(#[source] EngineError),
    /// The token is a REST client's, not an agent's.
    #[error(
        "MCP-0003 {0} is not an agent token: MCP serves AI agents only; create one with `roster token create --agent --scope read,propose --for NAME`"
    )]
    NotAnAgent(String),
    /// The transport failed.
    #[error("MCP-0004 the MCP transport failed: {0}")]
    Transport(String),
}

impl McpError {
    /// The stable code (`MCP-NNNN`).
    pub fn code(&self) -> &'static str {
        match self {
            McpError::NoToken => "MCP-0001",
            McpError::Unauthenticated(_) => "MCP-0002",
            McpError::NotAnAgent(_) => "MCP-0003",
            McpError::Transport(_) => "MCP-0004",
        }
    }
}

/// Authenticates an agent token for MCP: it must be valid and an agent's.
pub async fn authenticate_agent(roster: &Roster, token: &str) -> Result<Authenticated, McpError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(McpError::NoToken);
    }
    let who = roster
        .authenticate(token)
        .await
        .map_err(McpError::Unauthenticated)?;
    if who.principal.kind != PrincipalKind::Agent {
        return Err(McpError::NotAnAgent(format!(
            "token {} ({})",
            who.token, who.principal
        )));
    }
    Ok(who)
}

/// Serves MCP over this process's stdin and stdout for `caller` until the
/// client disconnects (`roster mcp`). Logs must go to stderr.
pub async fn serve_stdio(
    roster: std::sync::Arc<Roster>,
    caller: Authenticated,
) -> Result<(), McpError> {
    use rmcp::ServiceExt;
    let running = RosterMcp::new(roster, caller)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}
