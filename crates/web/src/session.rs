//! The session cookie, the per-route guard, the CSRF check and the error
//! page.
//!
//! [`guard`] runs before every route: a public route passes; any other
//! needs the session cookie to name a live session
//! ([`Roster::web_session`](roster_engine::Roster::web_session)), whose
//! roles grant the route's scope, and for approving, rejecting, applying
//! and offboarding a fresh sign-in. Without a session a page answers 303
//! to the sign-in form (with `next`), a form 401; without the scope 403
//! naming it; without a fresh sign-in 403 with the re-authentication
//! form. The session goes into the request's extensions as a [`Caller`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use roster_core::Scope;
use roster_engine::{EngineError, WebSession};

use crate::{Access, WebOptions, WebState};

/// The cookie's name: with the `__Host-` prefix when served over https
/// (the browser then refuses it from any other path, domain or insecure
/// origin).
pub fn cookie_name(options: &WebOptions) -> &'static str {
    if options.secure_cookies {
        "__Host-roster_session"
    } else {
        "roster_session"
    }
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(options: &WebOptions, id: &str) -> HeaderValue {
    let secure = if options.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let max_age = options.limits.absolute.as_secs();
    HeaderValue::from_str(&format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(options)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(options: &WebOptions) -> HeaderValue {
    let secure = if options.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(options)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session id the request's cookie carries.
pub fn session_id(headers: &HeaderMap, options: &WebOptions) -> Option<String> {
    let name = cookie_name(options);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The signed-in caller of a request (put there by [`guard`]), and the
/// cookie's session id for sign-out and re-authentication.
#[derive(Clone, Debug)]
pub struct Caller {
    pub session: WebSession,
    pub(crate) id: String,
}

impl Caller {
    /// Refuses a form whose CSRF token is not this session's (constant
    /// time).
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        if crate::subtle_free::ct_eq(
            presented.trim().as_bytes(),
            self.session.csrf_token.as_bytes(),
        ) {
            Ok(())
        } else {
            Err(UiError::new(
                StatusCode::FORBIDDEN,
                "This form's security token is missing or out of date (cross-site request forgery protection). Reload the page and submit it again.",
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| UiError::new(StatusCode::UNAUTHORIZED, "Sign in first."))
    }
}

/// Authenticates the session and requires the route's access (module
/// docs).
pub async fn guard(
    access: Access,
    State(state): State<WebState>,
    mut req: Request,
    next: Next,
) -> Response {
    let (scope, fresh) = match access {
        Access::Public => return next.run(req).await,
        Access::Signed(s) => (s, false),
        Access::Fresh(s) => (s, true),
    };
    let page = req.method() == Method::GET || req.method() == Method::HEAD;
    let session = match session_id(req.headers(), &state.options) {
        None => None,
        Some(id) => match state.roster.web_session(&id, &state.options.limits).await {
            Ok(s) => Some((id, s)),
            Err(EngineError::Unauthenticated(_)) => None,
            Err(e) => return UiError::from(e).into_response(),
        },
    };
    let Some((id, session)) = session else {
        if page {
            let next_path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/ui/".into());
            let to = format!(
                "/ui/signin?next={}",
                url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>()
            );
            let mut resp = Redirect::to(&to).into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, clear_cookie(&state.options));
            return resp;
        }
        return UiError::new(
            StatusCode::UNAUTHORIZED,
            "Your session ended. Sign in again, then submit the form again.",
        )
        .into_response();
    };
    if let Err(e) = session.require(scope) {
        return UiError::from(e).with_session(&session).into_response();
    }
    if fresh && !session.fresh {
        let back = parent_path(req.uri().path());
        return UiError::fresh_needed(&state.options, &session, &back).into_response();
    }
    req.extensions_mut().insert(Caller { session, id });
    let resp = next.run(req).await;
    if !page && resp.status().is_redirection() {
        // An accepted form may have changed what the dashboard sums up.
        state.summary.mark_dirty();
    }
    resp
}

/// `/ui/plans/p1` for `/ui/plans/p1/approve`: where to come back to.
fn parent_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((parent, _)) if parent.starts_with("/ui") && !parent.is_empty() => parent.to_string(),
        _ => "/ui/".into(),
    }
}

/// Only a path of this UI may be a `next` (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui")
                && !n.starts_with("//")
                && !n.contains("\\")
                && !n.contains("://") =>
        {
            n.to_string()
        }
        _ => "/ui/".into(),
    }
}

/// An error page: a status and a message for a person.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
    /// Who is signed in, for the page's header.
    user: Option<(String, String)>,
    /// A re-authentication link to offer.
    reauth: Option<String>,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
            user: None,
            reauth: None,
        }
    }

    pub fn with_session(mut self, s: &WebSession) -> UiError {
        self.user = Some((s.principal.name.clone(), s.roles_text()));
        self
    }

    fn fresh_needed(options: &WebOptions, s: &WebSession, back: &str) -> UiError {
        let next = url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>();
        let link = match (&s.via, &options.oidc_reauth_path) {
            (roster_engine::SignInVia::Oidc { .. }, Some(path)) => format!("{path}?next={next}"),
            _ => format!("/ui/reauth?next={next}"),
        };
        UiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "Approving, rejecting, applying and offboarding need a fresh sign-in (within the last {} minutes). Confirm who you are, then submit again.",
                options.limits.fresh.as_secs() / 60
            ),
            user: Some((s.principal.name.clone(), s.roles_text())),
            reauth: Some(link),
        }
    }

    pub fn not_found(what: impl Into<String>) -> UiError {
        UiError::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad(what: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, what)
    }
}

impl From<EngineError> for UiError {
    fn from(e: EngineError) -> UiError {
        let status = match &e {
            EngineError::NotPermitted(_) => StatusCode::FORBIDDEN,
            EngineError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            EngineError::PlanNotFound(_) | EngineError::PersonNotFound(_) => StatusCode::NOT_FOUND,
            EngineError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            EngineError::Refused(_)
            | EngineError::Stale { .. }
            | EngineError::AlreadyApplied { .. }
            | EngineError::NothingRead
            | EngineError::PolicyUnsound(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "web UI request failed");
            return UiError::new(status, "Something went wrong; the server log says what.");
        }
        UiError::new(status, e.to_string())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = crate::pages::ErrorPage {
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            message: self.message,
            user: self.user.as_ref().map(|u| u.0.clone()),
            roles: self.user.map(|u| u.1).unwrap_or_default(),
            reauth: self.reauth,
        };
        let body = askama::Template::render(&page)
            .unwrap_or_else(|_| "roster: an error page could not be rendered".into());
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response()
    }
}

/// The scope a refused action needed, for messages.
pub fn scope_name(scope: Scope) -> &'static str {
    scope.as_str()
}
