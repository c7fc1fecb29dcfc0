//! The tools: eleven, named as issue #13 lists them. Nine read, two
//! propose; none approves, rejects, applies or offboards.
//!
//! Each tool's description says what it reads, what it writes (only the
//! two propose tools write, and only a proposed plan) and what it can never
//! do. Arguments are closed objects (`additionalProperties: false`): an
//! argument a tool does not define is refused before the tool runs, so
//! nothing like `"approve": true` or a list of actions is ever read.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use roster_core::{ConnectionId, Scope};
use roster_engine::{Authenticated, EngineError, PersonRef, ProposalTarget, Roster};
use roster_store::PlanId;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// The tools, in the order the issue lists them.
pub const TOOL_NAMES: [&str; 11] = [
    "search_people",
    "get_person_access",
    "list_apps",
    "get_app_capabilities",
    "find_orphans",
    "coverage_report",
    "list_tasks",
    "get_plan",
    "explain_action",
    "propose_offboarding",
    "propose_reconcile",
];

/// What every read tool can never do (part of its description).
macro_rules! read_only {
    ($what:literal) => {
        concat!(
            $what,
            " Reads only what roster's store holds (as of roster's last read of the apps); makes no request to any app and writes nothing. It can never approve, reject, apply, offboard or change anything."
        )
    };
}

/// What the propose tools write and can never do (part of their description).
macro_rules! proposes {
    ($what:literal) => {
        concat!(
            $what,
            " Writes one thing: a plan stored as proposed by you, an AI agent, marked so wherever a person reviews it; any note is stored and shown as untrusted agent text. It takes no actions as input (the plan is what the policy implies), changes nothing in any app, records no termination, ends no session, and can never approve, reject or apply: every action of the plan waits for a person's approval."
        )
    };
}

/// The MCP server for one caller (stdio) or for the callers of an HTTP
/// endpoint (each request's own, see [`crate::http`]).
#[derive(Clone)]
pub struct RosterMcp {
    roster: Arc<Roster>,
    /// The stdio caller; `None` over HTTP, where each request carries its
    /// own [`Authenticated`] in its extensions.
    caller: Option<Authenticated>,
    tool_router: ToolRouter<RosterMcp>,
}

impl std::fmt::Debug for RosterMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterMcp")
            .field("caller", &self.caller.as_ref().map(|c| c.principal.actor()))
            .finish()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPeople {
    /// Part of an address (primary or alias), a name or an employee ID;
    /// case-insensitive. Empty: everyone.
    #[serde(default)]
    pub query: String,
    /// The `next_cursor` of the previous page, to continue.
    #[serde(default)]
    pub cursor: Option<String>,
    /// At most this many people (default 50, at most 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonArg {
    /// The person: an email address or an employee ID.
    pub person: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppArg {
    /// A connection id of this deployment (e.g. `expensify`) or an app id
    /// from list_apps.
    pub app: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasks {
    /// Include tasks already verified or cancelled (default false).
    #[serde(default)]
    pub include_closed: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanArg {
    /// The plan's id (as proposals and list_tasks give it).
    pub plan_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionArg {
    /// The plan's id.
    pub plan_id: String,
    /// The action's index in the plan (0-based, as get_plan lists them).
    pub action: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeOffboarding {
    /// The person: an email address or an employee ID.
    pub person: String,
    /// Why you propose it, for the person who reviews it. Stored verbatim
    /// and always shown as untrusted agent text.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeReconcile {
    /// A connection id (e.g. `expensify`); give this or `person`.
    #[serde(default)]
    pub connection: Option<String>,
    /// A person (email address or employee ID); give this or `connection`.
    #[serde(default)]
    pub person: Option<String>,
    /// Why you propose it, for the person who reviews it. Stored verbatim
    /// and always shown as untrusted agent text.
    #[serde(default)]
    pub note: Option<String>,
}

/// A tool's answer: structured JSON (also as text). MCP's structured
/// content is an object: a list is answered as `{"items": [...]}`.
fn answer(value: impl serde::Serialize) -> Result<CallToolResult, ErrorData> {
    let value = serde_json::to_value(value)
        .map_err(|e| ErrorData::internal_error(format!("cannot serialize: {e}"), None))?;
    let value = match value {
        serde_json::Value::Object(_) => value,
        serde_json::Value::Array(_) => json!({ "items": value }),
        other => json!({ "value": other }),
    };
    Ok(CallToolResult::structured(value))
}

/// An engine refusal or failure, as a tool error the agent reads.
fn refused(e: EngineError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{} {e}", e.code()))])
}

/// Runs a tool body; engine errors become tool errors.
async fn run<T: serde::Serialize>(
    f: impl Future<Output = Result<T, EngineError>>,
) -> Result<CallToolResult, ErrorData> {
    match f.await {
        Ok(v) => answer(v),
        Err(e) => Ok(refused(e)),
    }
}

impl RosterMcp {
    /// A server acting for `caller` (stdio, tests).
    pub fn new(roster: Arc<Roster>, caller: Authenticated) -> RosterMcp {
        RosterMcp {
            roster,
            caller: Some(caller),
            tool_router: Self::tool_router(),
        }
    }

    /// A server for HTTP sessions: each request's caller comes from its
    /// extensions, put there by [`crate::http`]'s authentication; a request
    /// without one is refused.
    pub fn per_request(roster: Arc<Roster>) -> RosterMcp {
        RosterMcp {
            roster,
            caller: None,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller of this request, if it may use `scope`.
    fn caller(
        &self,
        ctx: &RequestContext<RoleServer>,
        scope: Scope,
    ) -> Result<Result<Authenticated, CallToolResult>, ErrorData> {
        let from_http = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Authenticated>().cloned());
        let Some(caller) = from_http.or_else(|| self.caller.clone()) else {
            return Err(ErrorData::invalid_request(
                "not authenticated: send an agent token as a bearer token",
                None,
            ));
        };
        Ok(match caller.require(scope) {
            Ok(_) => Ok(caller),
            Err(e) => Err(refused(e)),
        })
    }
}

/// `let who = caller!(self, ctx, Scope::Read);` or return the refusal.
macro_rules! caller {
    ($self:ident, $ctx:ident, $scope:expr) => {
        match $self.caller(&$ctx, $scope)? {
            Ok(who) => who,
            Err(refusal) => return Ok(refusal),
        }
    };
}

#[tool_router]
impl RosterMcp {
    #[tool(
        description = read_only!("Finds people in the source of truth (HR and identity providers, merged) by part of an address, a name or an employee ID: employee ID, address, name, department and status (active, leave, terminated), one page at a time.")
    )]
    async fn search_people(
        &self,
        Parameters(args): Parameters<SearchPeople>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        let limit = args.limit.unwrap_or(50).clamp(1, 200);
        run(self
            .roster
            .search_people(&args.query, args.cursor.as_deref(), limit))
        .await
    }

    #[tool(
        description = read_only!("One person's access everywhere: their identities, every account roster found for them with its status and the rule that grants it, open human tasks, actions of stored plans still pending, what a plan for them would do now, and recent audit events. Use it to find a leaver's remaining access.")
    )]
    async fn get_person_access(
        &self,
        Parameters(args): Parameters<PersonArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self.roster.person_access(&PersonRef::parse(&args.person))).await
    }

    #[tool(
        description = read_only!("The apps this deployment is connected to, each with what roster can do there (read, create, update, deactivate...) and the path it takes (API, SCIM, identity provider, a person's task).")
    )]
    async fn list_apps(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self.roster.apps()).await
    }

    #[tool(
        description = read_only!("One app's card: for each operation whether roster can do it and how (API, SCIM, identity provider, manual task), why, and the app's known traps.")
    )]
    async fn get_app_capabilities(
        &self,
        Parameters(args): Parameters<AppArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        match self.roster.app(&args.app).await {
            Ok(Some(card)) => answer(card),
            Ok(None) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "no app or connection {:?}; list_apps names them",
                args.app
            ))])),
            Err(e) => Ok(refused(e)),
        }
    }

    #[tool(
        description = read_only!("Orphaned accounts: active accounts in the connected apps that no person in the source of truth matches, per connection.")
    )]
    async fn find_orphans(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self.roster.orphans_report()).await
    }

    #[tool(
        description = read_only!("Automation coverage: for each connection and operation, whether roster does it automatically or a person must (gap nodes), and why.")
    )]
    async fn coverage_report(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self.roster.coverage_report()).await
    }

    #[tool(
        description = read_only!("Human tasks: work roster routed to a person (a manual offboarding step, an approver to re-point, a failed session revocation), with their state and due date. It cannot complete or change a task.")
    )]
    async fn list_tasks(
        &self,
        Parameters(args): Parameters<ListTasks>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self.roster.tasks(args.include_closed)).await
    }

    #[tool(
        description = read_only!("One stored plan: its actions, findings and guards, who proposed it (an AI agent's proposal is marked so, and its note shown as untrusted text), each action's approval and execution state.")
    )]
    async fn get_plan(
        &self,
        Parameters(args): Parameters<PlanArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        let id = PlanId::new(args.plan_id.trim());
        run(async {
            let detail = self.roster.plan_detail(&id).await?;
            let proposal = self.roster.proposal(&id).await?;
            Ok(json!({ "plan": detail, "proposal": proposal }))
        })
        .await
    }

    #[tool(
        description = read_only!("Explains one action of a stored plan: what it does, the reason and cause (the rule, finding or leaver behind it), the guards that fired, whether it waits for a person's approval and why, and whether it ran.")
    )]
    async fn explain_action(
        &self,
        Parameters(args): Parameters<ActionArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        caller!(self, ctx, Scope::Read);
        run(self
            .roster
            .explain_action(&PlanId::new(args.plan_id.trim()), args.action))
        .await
    }

    #[tool(
        description = proposes!("Proposes one person's offboarding: the removals of their access roster would carry out if they were terminated now, from what roster last read. Use it for a leaver whose accounts are still open (get_person_access shows them).")
    )]
    async fn propose_offboarding(
        &self,
        Parameters(args): Parameters<ProposeOffboarding>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller!(self, ctx, Scope::Propose);
        run(self.roster.propose_offboarding(
            &who.principal,
            &PersonRef::parse(&args.person),
            args.note.as_deref(),
        ))
        .await
    }

    #[tool(
        description = proposes!("Proposes the plan the policy implies now for one connection or one person (give exactly one), from what roster last read.")
    )]
    async fn propose_reconcile(
        &self,
        Parameters(args): Parameters<ProposeReconcile>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = caller!(self, ctx, Scope::Propose);
        let target = match (&args.connection, &args.person) {
            (Some(c), None) => ProposalTarget::Connections(vec![ConnectionId::new(c.trim())]),
            (None, Some(p)) => ProposalTarget::Person(PersonRef::parse(p)),
            _ => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    "give exactly one of `connection` or `person`",
                )]));
            }
        };
        run(self
            .roster
            .propose_reconcile(&who.principal, &target, args.note.as_deref()))
        .await
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "roster",
    instructions = "roster keeps SaaS accounts in line with who works at the company. As an AI agent you may read (people, one person's access, apps, orphaned accounts, coverage, human tasks, plans) and propose (one person's offboarding; the plan the policy implies for a connection or a person). You can never approve, reject, apply or offboard: a person reviews and approves every proposal, which is marked as an AI agent's."
)]
impl ServerHandler for RosterMcp {}
