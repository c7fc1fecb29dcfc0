//! roster's web UI: server-rendered pages for the people who approve,
//! offboard and do the manual work, under `/ui/`.
//!
//! Every page is HTML rendered on the server (askama templates, compiled
//! and auto-escaped); htmx (2.0.11, embedded in the binary with its
//! licence, never fetched from a CDN) only enhances links and forms
//! (`hx-boost`) and the live people search, so every page reads and every
//! form works without JavaScript.
//!
//! ## One door
//! Handlers call only the application layer: [`Roster`] and its shared
//! queries (`roster_engine::queries`), with the principal of the signed-in
//! session, exactly like the REST API and MCP. Nothing here opens the
//! store or a connector.
//!
//! ## One table
//! [`routes`] lists every page and form: method, path, the one [`Scope`]
//! it needs and whether it needs a fresh sign-in. [`web_router`] builds
//! the router from it, each route behind [`session::guard`]; the tests
//! enumerate it (every route refuses a request without a session, every
//! form a role without its scope, a missing CSRF token, a foreign
//! origin).
//!
//! ## Sign-in, sessions, CSRF
//! See `roster_engine::app::web_users` for users, roles and sessions. The
//! session cookie is `HttpOnly`, `SameSite=Lax` (a link from a chat message
//! or an email opens the page signed in; a form posted from another site
//! carries no cookie), and with
//! [`WebOptions::secure_cookies`] also `Secure` with the `__Host-` prefix.
//! Every form carries the session's CSRF token in a hidden field, checked
//! in constant time; in front of that, tower-http's cross-origin
//! protection refuses a state-changing request whose `Sec-Fetch-Site` or
//! `Origin` says it comes from another site. Approving, rejecting,
//! applying and offboarding need a sign-in at most
//! [`SessionLimits::fresh`] old: a local user types their password again
//! (`/ui/reauth`); an OIDC user is sent to [`WebOptions::oidc_reauth_path`]
//! (the IdP with `prompt=login`).

pub mod oidc;
mod pages;
pub mod session;
pub mod summary;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use roster_core::Scope;
use roster_engine::{Roster, SessionLimits};

pub use session::{Caller, UiError};

/// htmx 2.0.11 (`npm pack htmx.org@2.0.11`, `dist/htmx.min.js`), Zero-Clause BSD.
pub const HTMX_JS: &str = include_str!("../assets/htmx.min.js");
/// Its SHA-256, checked by a test so the file cannot change unnoticed.
pub const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";
/// htmx's licence, served beside it.
pub const HTMX_LICENSE: &str = include_str!("../assets/htmx.LICENSE");
/// Our own stylesheet.
pub const CSS: &str = include_str!("../assets/roster.css");

/// The largest form (an evidence file is the largest there is).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the UI is served.
#[derive(Clone, Debug, Default)]
pub struct WebOptions {
    /// Served over https: cookies get `Secure` and the `__Host-` prefix.
    pub secure_cookies: bool,
    /// Origins (`https://roster.example.com`) whose cross-origin form
    /// posts are accepted besides the UI's own (a reverse proxy's public
    /// name when it rewrites `Host`).
    pub trusted_origins: Vec<String>,
    pub limits: SessionLimits,
    /// Where the sign-in page's "Sign in with your company account" goes
    /// (the OIDC helper's start route, e.g. `/ui/oidc/login`); `None`:
    /// local users only.
    pub oidc_login_path: Option<String>,
    /// Where an OIDC session is sent for a fresh sign-in
    /// (`prompt=login`); `?next=` is appended.
    pub oidc_reauth_path: Option<String>,
    /// Sign-in with the company's IdP (`[web.oidc]`): the relying party
    /// the routes of [`oidc`] use. Set it together with
    /// `oidc_login_path = Some(oidc::START_PATH)` and `oidc_reauth_path =
    /// Some(oidc::REAUTH_PATH)` ([`WebOptions::with_oidc`]).
    pub oidc: Option<Arc<roster_engine::oidc::OidcProvider>>,
    /// The demo's one-time sign-in token: `/ui/signin/once?token=…`
    /// starts an admin session once (see [`OneTimeSignIn`]).
    pub one_time: Option<Arc<OneTimeSignIn>>,
}

impl WebOptions {
    /// Signs in through `provider` too: the sign-in page offers it and
    /// OIDC sessions renew there.
    pub fn with_oidc(mut self, provider: Arc<roster_engine::oidc::OidcProvider>) -> WebOptions {
        self.oidc = Some(provider);
        self.oidc_login_path = Some(oidc::START_PATH.into());
        self.oidc_reauth_path = Some(oidc::REAUTH_PATH.into());
        self
    }
}

/// A single-use sign-in link for `roster demo`: the token is compared in
/// constant time and works once.
#[derive(Debug)]
pub struct OneTimeSignIn {
    token: String,
    /// The local user it signs in as.
    pub user: String,
    used: std::sync::atomic::AtomicBool,
}

impl OneTimeSignIn {
    pub fn new(token: String, user: String) -> OneTimeSignIn {
        OneTimeSignIn {
            token,
            user,
            used: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether `presented` is the token and was not used before (using it).
    pub fn redeem(&self, presented: &str) -> bool {
        use subtle_free::ct_eq;
        ct_eq(presented.as_bytes(), self.token.as_bytes())
            && !self.used.swap(true, std::sync::atomic::Ordering::SeqCst)
    }
}

mod subtle_free {
    /// Constant-time equality of two byte strings (length leaks only).
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct WebState {
    pub roster: Arc<Roster>,
    pub options: Arc<WebOptions>,
    /// The dashboard's expensive reports, shared (see [`summary`]).
    pub summary: Arc<summary::SummaryCache>,
}

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-in, assets).
    Public,
    /// A signed-in session whose roles grant the scope.
    Signed(Scope),
    /// The scope and a sign-in at most `limits.fresh` old.
    Fresh(Scope),
}

/// One page or form of the UI.
#[derive(Clone)]
pub struct UiRoute {
    pub method: Method,
    /// axum's syntax (`/ui/plans/{id}`).
    pub path: &'static str,
    pub access: Access,
    /// What it is, for the docs.
    pub summary: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<WebState>,
}

impl UiRoute {
    /// `GET /ui/people`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every page and form of the UI (module docs).
pub fn routes() -> Vec<UiRoute> {
    use Access::*;
    use MethodFilter as M;
    use Scope as S;
    use axum::routing::on;
    let r = |method: Method,
             path: &'static str,
             access: Access,
             summary: &'static str,
             handler: fn(MethodFilter) -> MethodRouter<WebState>| UiRoute {
        method,
        path,
        access,
        summary,
        handler,
    };
    let _ = M::GET;
    vec![
        r(Method::GET, "/ui/signin", Public, "Sign-in form", |m| {
            on(m, pages::signin_form)
        }),
        r(
            Method::POST,
            "/ui/signin",
            Public,
            "Sign in with a local user",
            |m| on(m, pages::signin),
        ),
        r(
            Method::GET,
            "/ui/signin/once",
            Public,
            "The demo's one-time sign-in link",
            |m| on(m, pages::signin_once),
        ),
        r(
            Method::GET,
            oidc::START_PATH,
            Public,
            "Sign in with the company's IdP (OpenID Connect)",
            |m| on(m, oidc::start),
        ),
        r(
            Method::GET,
            oidc::REAUTH_PATH,
            Public,
            "Sign in again at the IdP (prompt=login) before approving or applying",
            |m| on(m, oidc::reauth),
        ),
        r(
            Method::GET,
            oidc::CALLBACK_PATH,
            Public,
            "Where the IdP sends the browser back",
            |m| on(m, oidc::callback),
        ),
        r(
            Method::POST,
            "/ui/signout",
            Signed(S::Read),
            "Sign out",
            |m| on(m, pages::signout),
        ),
        r(
            Method::GET,
            "/ui/reauth",
            Signed(S::Read),
            "Confirm who you are (fresh sign-in)",
            |m| on(m, pages::reauth_form),
        ),
        r(
            Method::POST,
            "/ui/reauth",
            Signed(S::Read),
            "Confirm who you are with your password",
            |m| on(m, pages::reauth),
        ),
        r(Method::GET, "/ui/", Signed(S::Read), "Dashboard", |m| {
            on(m, pages::dashboard)
        }),
        r(
            Method::GET,
            "/ui/people",
            Signed(S::Read),
            "People search",
            |m| on(m, pages::people),
        ),
        r(
            Method::GET,
            "/ui/people/{id}",
            Signed(S::Read),
            "One person's access",
            |m| on(m, pages::person),
        ),
        r(
            Method::POST,
            "/ui/people/{id}/plan",
            Signed(S::Propose),
            "Propose a plan for one person",
            |m| on(m, pages::propose_person),
        ),
        r(
            Method::POST,
            "/ui/people/{id}/offboard",
            Fresh(S::Offboard),
            "Offboard one person now",
            |m| on(m, pages::offboard),
        ),
        r(
            Method::GET,
            "/ui/apps",
            Signed(S::Read),
            "Apps and coverage",
            |m| on(m, pages::apps),
        ),
        r(
            Method::GET,
            "/ui/apps/{id}",
            Signed(S::Read),
            "One app's card, paths and gaps",
            |m| on(m, pages::app),
        ),
        r(Method::GET, "/ui/plans", Signed(S::Read), "Plans", |m| {
            on(m, pages::plans)
        }),
        r(
            Method::POST,
            "/ui/plans",
            Signed(S::Propose),
            "Propose a plan for everyone",
            |m| on(m, pages::propose_all),
        ),
        r(
            Method::GET,
            "/ui/plans/{id}",
            Signed(S::Read),
            "One plan: diff, guards, proposer, decisions",
            |m| on(m, pages::plan),
        ),
        r(
            Method::POST,
            "/ui/plans/{id}/approve",
            Fresh(S::Approve),
            "Approve a plan",
            |m| on(m, pages::approve),
        ),
        r(
            Method::POST,
            "/ui/plans/{id}/reject",
            Fresh(S::Approve),
            "Reject a plan",
            |m| on(m, pages::reject),
        ),
        r(
            Method::POST,
            "/ui/plans/{id}/apply",
            Fresh(S::Apply),
            "Apply a plan",
            |m| on(m, pages::apply),
        ),
        r(
            Method::GET,
            "/ui/tasks",
            Signed(S::Read),
            "Task inbox",
            |m| on(m, pages::tasks),
        ),
        r(
            Method::GET,
            "/ui/tasks/{id}",
            Signed(S::Read),
            "One task: checklist, evidence, verification",
            |m| on(m, pages::task),
        ),
        r(
            Method::POST,
            "/ui/tasks/{id}/complete",
            Signed(S::Apply),
            "Complete a task with evidence",
            |m| on(m, pages::complete_task),
        ),
        r(
            Method::GET,
            "/ui/matches",
            Signed(S::Read),
            "The match queue",
            |m| on(m, pages::matches),
        ),
        r(
            Method::POST,
            "/ui/matches/resolve",
            Signed(S::Apply),
            "Resolve a match",
            |m| on(m, pages::resolve_match),
        ),
        r(
            Method::GET,
            "/ui/audit",
            Signed(S::Read),
            "The audit log and its verification",
            |m| on(m, pages::audit),
        ),
        r(
            Method::GET,
            "/ui/connections",
            Signed(S::Read),
            "Connections and their health",
            |m| on(m, pages::connections),
        ),
        r(
            Method::POST,
            "/ui/connections/{id}/pause",
            Signed(S::Apply),
            "Pause writes to a connection",
            |m| on(m, pages::pause),
        ),
        r(
            Method::POST,
            "/ui/connections/{id}/resume",
            Signed(S::Apply),
            "Resume writes to a connection",
            |m| on(m, pages::resume),
        ),
    ]
}

/// The UI's router (module docs): every route of [`routes`] behind
/// [`session::guard`], the assets, `/` redirecting to `/ui/`, security
/// headers on every answer, cross-origin protection on every form.
pub fn web_router(roster: Arc<Roster>, options: WebOptions) -> Router {
    let mut csrf = tower_http::csrf::CsrfLayer::new();
    for origin in &options.trusted_origins {
        match csrf.clone().add_trusted_origin(origin) {
            Ok(layer) => csrf = layer,
            Err(e) => tracing::warn!(error = %e, "ignoring a trusted origin for the UI"),
        }
    }
    let state = WebState {
        roster,
        options: Arc::new(options),
        summary: Arc::default(),
    };
    let mut router: Router<WebState> = Router::new();
    for route in routes() {
        let access = route.access;
        let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
        let methods = (route.handler)(filter).route_layer(middleware::from_fn_with_state(
            state.clone(),
            move |st: axum::extract::State<WebState>, req: Request, next: Next| {
                session::guard(access, st, req, next)
            },
        ));
        router = router.route(route.path, methods);
    }
    router
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/assets/htmx.min.js",
            get(|| async { asset(HTMX_JS, "text/javascript") }),
        )
        .route(
            "/ui/assets/htmx.LICENSE.txt",
            get(|| async { asset(HTMX_LICENSE, "text/plain; charset=utf-8") }),
        )
        .route(
            "/ui/assets/roster.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route("/ui/{*rest}", axum::routing::any(pages::not_found))
        .layer(csrf)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Headers every UI answer carries: only our own scripts and styles, no
/// framing, no sniffing, no referrer beyond the origin; pages are never
/// cached (they show who has access).
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if resp.status() == StatusCode::FORBIDDEN && resp.headers().get(header::CONTENT_TYPE).is_none()
    {
        // tower-http's cross-origin refusal has no body of its own.
        let status = resp.status();
        return UiError::new(
            status,
            "This form came from another site, so roster refused it (cross-site request forgery protection). Open roster and submit it there.",
        )
        .into_response();
    }
    resp
}
