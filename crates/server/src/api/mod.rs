//! The REST API, `/api/v1`: people, accounts, apps, connections, plans,
//! tasks, matches, reports, the audit log and offboarding, over HTTP with
//! bearer tokens.
//!
//! Every handler calls the application layer ([`Roster`]) with the
//! principal its token authenticates, so guards, approvals and separation
//! of duties hold here exactly as for the CLI; nothing reaches past
//! `Roster` into the store or the connectors.
//!
//! ## One table
//! [`routes`] is the only list of operations: method, path, the one
//! [`Scope`] it needs, its parameters, body and answer. [`api_router`]
//! builds the axum router from it (each route behind [`guard`] with its
//! scope), the OpenAPI 3.1 document at `/api/v1/openapi.json` is generated
//! from it (`openapi.rs`, with the scope as the operation's `bearer`
//! security requirement and as `x-roster-scope`), the HTML reference at
//! `/api/docs` is rendered from that document by our own code (`docs.rs`;
//! nothing is downloaded), and the authorization test enumerates it.
//!
//! ## Conventions
//! * `Authorization: Bearer rat_…` ([`Roster::authenticate`]); none or a
//!   bad one: 401 with `WWW-Authenticate: Bearer`; a token without the
//!   route's scope (or an agent's token on an approve, apply, offboard or
//!   admin route): 403 naming the scope.
//! * Errors are RFC 9457 `application/problem+json` ([`problem`]).
//! * Listings page with `cursor` and `limit` (default 50, at most 500):
//!   `next_cursor` in the body and a `Link: <…>; rel="next"` header.
//! * A plan's `ETag` moves with its approvals and its actions' states;
//!   approve, reject and apply need `If-Match` with it (428 without, 412
//!   when it moved).

mod docs;
mod extract;
mod openapi;
mod people;
mod plans;
pub mod problem;
mod resources;
mod schema;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, get, on};
use roster_core::Scope;
use roster_engine::Roster;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use problem::{PROBLEM_JSON, Problem};
pub use schema::SchemaFn;

/// What every handler gets: the application layer.
pub type ApiState = Arc<Roster>;

/// The largest request body (an evidence file is the largest there is).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// How long a request may take before it is answered 408; longer work
/// (carrying out a plan, an offboarding) goes on in the background and
/// is answered 202 (see `plans.rs`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(50);

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

/// A parameter's type, for the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// An integer between the bounds.
    Int(i64, i64),
    Bool,
}

/// One parameter of an operation.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub required: bool,
    pub kind: Kind,
    pub description: &'static str,
}

/// A request body: its media types and schema.
#[derive(Clone, Copy)]
pub struct BodySpec {
    pub schema: SchemaFn,
    /// Also takes `multipart/form-data` with this schema.
    pub multipart: Option<SchemaFn>,
    pub required: bool,
}

/// One operation of the API.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    /// axum's and OpenAPI's syntax alike (`/api/v1/plans/{id}`).
    pub path: &'static str,
    /// The one scope a token needs.
    pub scope: Scope,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Param>,
    pub body: Option<BodySpec>,
    /// The success status and its body's schema.
    pub ok: (StatusCode, SchemaFn),
    /// Other success statuses (202 for work that goes on).
    pub also: Vec<(StatusCode, SchemaFn)>,
    /// Error statuses the operation may answer besides 400, 401, 403.
    pub errors: Vec<StatusCode>,
    /// Answers with an `ETag`.
    pub etag: bool,
    /// Answers with a `Link` header to the next page.
    pub paged: bool,
    handler: fn(MethodFilter) -> MethodRouter<ApiState>,
}

impl Route {
    /// `GET /api/v1/people`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

const fn param(name: &'static str, location: In, required: bool, kind: Kind) -> Param {
    Param {
        name,
        location,
        required,
        kind,
        description: "",
    }
}

fn id_param(description: &'static str) -> Param {
    Param {
        description,
        ..param("id", In::Path, true, Kind::Text)
    }
}

fn paging() -> Vec<Param> {
    vec![
        Param {
            description: "The `next_cursor` of the previous page.",
            ..param("cursor", In::Query, false, Kind::Text)
        },
        Param {
            description: "How many items (default 50).",
            ..param("limit", In::Query, false, Kind::Int(1, 500))
        },
    ]
}

fn if_match() -> Param {
    Param {
        description: "The plan's ETag as last read (required: 428 without it, 412 if the plan changed).",
        ..param("If-Match", In::Header, true, Kind::Text)
    }
}

/// Every operation of `/api/v1` (module docs).
pub fn routes() -> Vec<Route> {
    use StatusCode as S;
    use schema::*;
    let r = |method: Method,
             path: &'static str,
             scope: Scope,
             operation_id: &'static str,
             tag: &'static str,
             summary: &'static str,
             ok: (StatusCode, SchemaFn),
             handler: fn(MethodFilter) -> MethodRouter<ApiState>| Route {
        method,
        path,
        scope,
        operation_id,
        tag,
        summary,
        description: "",
        params: Vec::new(),
        body: None,
        ok,
        also: Vec::new(),
        errors: Vec::new(),
        etag: false,
        paged: false,
        handler,
    };
    let read = Scope::Read;
    vec![
        Route {
            description: "Case-insensitive search by address (primary or alias), name or employee ID, ordered by employee ID. An empty `q` lists everyone.",
            params: [
                vec![Param {
                    description: "What to search for.",
                    ..param("q", In::Query, false, Kind::Text)
                }],
                paging(),
            ]
            .concat(),
            paged: true,
            ..r(
                Method::GET,
                "/api/v1/people",
                read,
                "searchPeople",
                "people",
                "Search people",
                (S::OK, people_page),
                |m| on(m, people::search),
            )
        },
        Route {
            description: "One person's identities, every account across apps with the path roster takes there and the rule that grants it, open tasks, pending actions of recent plans, recent audit events. With `next_plan=true`, also what a plan for them would do now (`next_plan`, or `next_plan_error`); it is computed for the request, so it costs more than the rest.",
            params: vec![
                id_param("Employee ID or email address."),
                Param {
                    description: "Also compute what a plan for this person would do now.",
                    ..param("next_plan", In::Query, false, Kind::Bool)
                },
            ],
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::GET,
                "/api/v1/people/{id}",
                read,
                "getPerson",
                "people",
                "One person's access",
                (S::OK, object),
                |m| on(m, people::show),
            )
        },
        Route {
            description: "Offboards the person now: a termination override, their IdP sessions ended, a fresh read, their plan approved by this request where the policy lets the principal decide, and carried out. With `dry_run`, the plan it would carry out, recording nothing. Answers 202 when the work goes on past the request.",
            params: vec![id_param("Employee ID or email address.")],
            body: Some(BodySpec {
                schema: offboard_request,
                multipart: None,
                required: true,
            }),
            also: vec![(S::ACCEPTED, accepted)],
            errors: vec![S::NOT_FOUND, S::CONFLICT],
            ..r(
                Method::POST,
                "/api/v1/people/{id}/offboard",
                Scope::Offboard,
                "offboardPerson",
                "people",
                "Offboard one person",
                (S::OK, object),
                |m| on(m, people::offboard),
            )
        },
        Route {
            description: "The accounts a connection's last read returned, by account key.",
            params: [
                vec![Param {
                    description: "The connection's ID.",
                    ..param("connection", In::Query, true, Kind::Text)
                }],
                paging(),
            ]
            .concat(),
            paged: true,
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::GET,
                "/api/v1/accounts",
                read,
                "listAccounts",
                "accounts",
                "One connection's accounts",
                (S::OK, accounts_page),
                |m| on(m, resources::accounts),
            )
        },
        Route {
            description: "The catalog card of each connected app: what it can do and the path roster takes for each operation, with why.",
            ..r(
                Method::GET,
                "/api/v1/apps",
                read,
                "listApps",
                "apps",
                "App catalog cards",
                (S::OK, object_list),
                |m| on(m, resources::apps),
            )
        },
        Route {
            params: vec![id_param("A connection ID or a catalog app ID.")],
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::GET,
                "/api/v1/apps/{id}",
                read,
                "getApp",
                "apps",
                "One app's card and path choice",
                (S::OK, object),
                |m| on(m, resources::app),
            )
        },
        Route {
            description: "Every connection: health of its last read, quarantine, a person's pause.",
            ..r(
                Method::GET,
                "/api/v1/connections",
                read,
                "listConnections",
                "connections",
                "Connections and their health",
                (S::OK, object_list),
                |m| on(m, resources::connections),
            )
        },
        Route {
            description: "Asks the connection's app whether roster's credentials and the app's setup work. Read-only.",
            params: vec![id_param("The connection's ID.")],
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::POST,
                "/api/v1/connections/{id}/check",
                read,
                "checkConnection",
                "connections",
                "Check a connection",
                (S::OK, object),
                |m| on(m, resources::check),
            )
        },
        Route {
            description: "The kill switch: stops every write to the connection until it is resumed. Reads and plans go on.",
            params: vec![id_param("The connection's ID.")],
            body: Some(BodySpec {
                schema: pause_request,
                multipart: None,
                required: false,
            }),
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::POST,
                "/api/v1/connections/{id}/pause",
                Scope::Apply,
                "pauseConnection",
                "connections",
                "Pause writes to a connection",
                (S::OK, switched),
                |m| on(m, resources::pause),
            )
        },
        Route {
            description: "Lifts a person's pause of the connection.",
            params: vec![id_param("The connection's ID.")],
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::POST,
                "/api/v1/connections/{id}/resume",
                Scope::Apply,
                "resumeConnection",
                "connections",
                "Resume writes to a connection",
                (S::OK, switched),
                |m| on(m, resources::resume),
            )
        },
        Route {
            description: "Stored plans, newest first, with where each stands and who proposed it.",
            params: paging(),
            paged: true,
            ..r(
                Method::GET,
                "/api/v1/plans",
                read,
                "listPlans",
                "plans",
                "List plans",
                (S::OK, plans_page),
                |m| on(m, plans::list),
            )
        },
        Route {
            description: "Computes and stores a plan (everyone, some connections or one person), proposed by the token's principal, from what the store holds; `read: true` reads the apps first. Nothing runs: approve and apply are their own steps. A source change the guard holds withholds deactivations as for the CLI.",
            body: Some(BodySpec {
                schema: plan_request,
                multipart: None,
                required: true,
            }),
            errors: vec![S::NOT_FOUND, S::CONFLICT],
            etag: true,
            ..r(
                Method::POST,
                "/api/v1/plans",
                Scope::Propose,
                "createPlan",
                "plans",
                "Propose a plan",
                (S::CREATED, plan_detail),
                |m| on(m, plans::create),
            )
        },
        Route {
            description: "The plan, each action's approval and execution state, and its ETag. `latest` names the newest plan.",
            params: vec![id_param("The plan's ID, or `latest`.")],
            errors: vec![S::NOT_FOUND],
            etag: true,
            ..r(
                Method::GET,
                "/api/v1/plans/{id}",
                read,
                "getPlan",
                "plans",
                "One plan",
                (S::OK, plan_detail),
                |m| on(m, plans::show),
            )
        },
        Route {
            description: "Approves the plan's actions that wait for approval (or one, with `action`), as the token's principal, judged by separation of duties and app owners.",
            params: vec![id_param("The plan's ID."), if_match()],
            body: Some(BodySpec {
                schema: decision_request,
                multipart: None,
                required: true,
            }),
            errors: vec![
                S::NOT_FOUND,
                S::CONFLICT,
                S::PRECONDITION_FAILED,
                S::PRECONDITION_REQUIRED,
            ],
            etag: true,
            ..r(
                Method::POST,
                "/api/v1/plans/{id}/approve",
                Scope::Approve,
                "approvePlan",
                "plans",
                "Approve a plan",
                (S::OK, plan_detail),
                |m| on(m, plans::approve),
            )
        },
        Route {
            description: "Rejects them: rejected actions never run.",
            params: vec![id_param("The plan's ID."), if_match()],
            body: Some(BodySpec {
                schema: decision_request,
                multipart: None,
                required: true,
            }),
            errors: vec![
                S::NOT_FOUND,
                S::CONFLICT,
                S::PRECONDITION_FAILED,
                S::PRECONDITION_REQUIRED,
            ],
            etag: true,
            ..r(
                Method::POST,
                "/api/v1/plans/{id}/reject",
                Scope::Approve,
                "rejectPlan",
                "plans",
                "Reject a plan",
                (S::OK, plan_detail),
                |m| on(m, plans::reject),
            )
        },
        Route {
            description: "The one check (the plan's connections read again; a stale plan is 409), then the plan is carried out: actions waiting for approval are held, manual work goes to people. Answers 200 with what was done when it settles within the request, else 202 with `Location` to poll.",
            params: vec![id_param("The plan's ID."), if_match()],
            also: vec![(S::ACCEPTED, accepted)],
            errors: vec![
                S::NOT_FOUND,
                S::CONFLICT,
                S::PRECONDITION_FAILED,
                S::PRECONDITION_REQUIRED,
                S::SERVICE_UNAVAILABLE,
            ],
            ..r(
                Method::POST,
                "/api/v1/plans/{id}/apply",
                Scope::Apply,
                "applyPlan",
                "plans",
                "Apply a plan",
                (S::OK, apply_result),
                |m| on(m, plans::apply),
            )
        },
        Route {
            description: "Human tasks still waiting for anyone; `all=true` lists closed ones too.",
            params: vec![Param {
                description: "Include closed tasks.",
                ..param("all", In::Query, false, Kind::Bool)
            }],
            ..r(
                Method::GET,
                "/api/v1/tasks",
                read,
                "listTasks",
                "tasks",
                "List human tasks",
                (S::OK, object_list),
                |m| on(m, tasks::list),
            )
        },
        Route {
            params: vec![id_param("The task's ID.")],
            errors: vec![S::NOT_FOUND],
            ..r(
                Method::GET,
                "/api/v1/tasks/{id}",
                read,
                "getTask",
                "tasks",
                "One human task",
                (S::OK, object),
                |m| on(m, tasks::show),
            )
        },
        Route {
            description: "Reports the task done, as the token's principal, with a note and evidence: JSON (`note`, `evidence` text) or multipart/form-data with a `file` (its name, size and SHA-256 are recorded) and a `note`. The next read verifies it.",
            params: vec![id_param("The task's ID.")],
            body: Some(BodySpec {
                schema: complete_request,
                multipart: Some(complete_multipart),
                required: true,
            }),
            errors: vec![S::NOT_FOUND, S::CONFLICT],
            ..r(
                Method::POST,
                "/api/v1/tasks/{id}/complete",
                Scope::Apply,
                "completeTask",
                "tasks",
                "Complete a task",
                (S::OK, object),
                |m| on(m, tasks::complete),
            )
        },
        Route {
            description: "Accounts from the latest plan that roster would not link on its own, minus those resolved.",
            ..r(
                Method::GET,
                "/api/v1/matches",
                read,
                "listMatches",
                "matches",
                "The match queue",
                (S::OK, match_list),
                |m| on(m, resources::matches),
            )
        },
        Route {
            description: "Links the account to a person (`employee_id`) or marks it as no managed person's (`employee_id: null`: never linked, never acted on).",
            params: vec![id_param(
                "The match's `id` from the queue (`connection:account`).",
            )],
            body: Some(BodySpec {
                schema: resolve_request,
                multipart: None,
                required: true,
            }),
            errors: vec![S::NOT_FOUND, S::CONFLICT],
            ..r(
                Method::POST,
                "/api/v1/matches/{id}/resolve",
                Scope::Apply,
                "resolveMatch",
                "matches",
                "Resolve a match",
                (S::OK, resolved),
                |m| on(m, resources::resolve),
            )
        },
        r(
            Method::GET,
            "/api/v1/reports/orphans",
            read,
            "reportOrphans",
            "reports",
            "Active accounts no current employee owns",
            (S::OK, object),
            |m| on(m, resources::orphans),
        ),
        r(
            Method::GET,
            "/api/v1/reports/coverage",
            read,
            "reportCoverage",
            "reports",
            "What roster automates per app and operation",
            (S::OK, object),
            |m| on(m, resources::coverage),
        ),
        r(
            Method::GET,
            "/api/v1/reports/leavers",
            read,
            "reportLeavers",
            "reports",
            "Every leaver's accounts, open and closed",
            (S::OK, object),
            |m| on(m, resources::leavers),
        ),
        r(
            Method::GET,
            "/api/v1/reports/tasks",
            read,
            "reportTasks",
            "reports",
            "Human tasks per app",
            (S::OK, object),
            |m| on(m, resources::task_report),
        ),
        Route {
            description: "Audit records at or after `since` (a date, RFC 3339 or unix milliseconds; default: all), as a JSON array in order.",
            params: vec![Param {
                description: "2026-11-25, 2026-11-25T09:00:00Z or unix milliseconds.",
                ..param("since", In::Query, false, Kind::Text)
            }],
            ..r(
                Method::GET,
                "/api/v1/audit",
                read,
                "exportAudit",
                "audit",
                "Export the audit log",
                (S::OK, object_list),
                |m| on(m, resources::audit),
            )
        },
        r(
            Method::GET,
            "/api/v1/audit/verify",
            read,
            "verifyAudit",
            "audit",
            "Verify the audit hash chain",
            (S::OK, object),
            |m| on(m, resources::verify),
        ),
    ]
}

/// The REST API's router: every route of [`routes`] behind [`guard`]
/// with its scope, the OpenAPI document and the HTML reference (no
/// token), and problem details for whatever else reaches `/api`.
pub fn api_router(roster: Arc<Roster>) -> Router {
    let table = routes();
    let document = Arc::new(openapi::document(&table));
    let json = Arc::new(serde_json::to_string_pretty(&*document).unwrap_or_default());
    let html = Arc::new(docs::render(
        &serde_json::to_value(&*document).unwrap_or_default(),
    ));
    let mut router: Router<ApiState> = Router::new();
    for route in &table {
        let scope = route.scope;
        let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
        let methods = (route.handler)(filter).route_layer(middleware::from_fn_with_state(
            roster.clone(),
            move |state: State<ApiState>, req: Request, next: Next| guard(scope, state, req, next),
        ));
        router = router.route(route.path, methods);
    }
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        json.as_str().to_string(),
                    )
                }
            }),
        )
        .route(
            "/api/docs",
            get(move || {
                let html = html.clone();
                async move { Html(html.as_str().to_string()) }
            }),
        )
        .route("/api/{*rest}", any(no_route))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(problem::normalize))
        .with_state(roster)
}

async fn no_route() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        problem::codes::NO_ROUTE,
        "no such route in /api/v1 (see /api/v1/openapi.json)",
    )
}

/// Authenticates the bearer token and requires `scope`: 401 without a
/// valid token, 403 naming the scope without it. The [`Authenticated`]
/// caller goes into the request's extensions for the handler.
pub async fn guard(
    scope: Scope,
    State(roster): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (kind, token) = v.split_once(' ')?;
            kind.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(bearer) = bearer else {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            problem::codes::UNAUTHENTICATED,
            "send an API token: Authorization: Bearer rat_… (roster token create)",
        )
        .into_response();
    };
    let authenticated = match roster.authenticate(&bearer).await {
        Ok(a) => a,
        Err(e) => return Problem::from(e).into_response(),
    };
    if let Err(e) = authenticated.require(scope) {
        let mut p = Problem::from(e);
        p.missing_scope = Some(scope.as_str());
        return p.into_response();
    }
    req.extensions_mut().insert(authenticated);
    next.run(req).await
}
