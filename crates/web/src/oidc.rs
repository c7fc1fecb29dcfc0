//! Sign-in with the company's IdP (OpenID Connect): the three public
//! routes around `roster_engine::oidc` and
//! `roster_engine::app::oidc_signin`.
//!
//! * `GET /ui/auth/oidc/start?next=/ui/…`: starts a sign-in and sends the
//!   browser to the IdP (authorization code + PKCE; state and nonce kept
//!   server-side).
//! * `GET /ui/auth/oidc/reauth?next=/ui/…`: the same with `prompt=login`,
//!   for a fresh sign-in before approving or applying
//!   ([`crate::WebOptions::oidc_reauth_path`] points here).
//! * `GET /ui/auth/oidc/callback?state=…&code=…`: the IdP sends the
//!   browser back here; the application layer verifies everything and
//!   decides (no role, or a leaver: refused with the reason), then a new
//!   session starts (replacing the one the browser sent, if any) and the
//!   browser goes to `next`.
//!
//! The callback is a top-level navigation from the IdP's site, so the
//! `SameSite=Strict` session cookie may not come with it: the sign-in
//! needs no cookie (the state is the binding), and a fresh sign-in opens
//! a new session rather than renewing the old one.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use roster_engine::oidc::OidcCallback;
use serde::Deserialize;

use crate::WebState;
use crate::session::{self, UiError, safe_next};

/// Where the sign-in page's IdP button goes.
pub const START_PATH: &str = "/ui/auth/oidc/start";
/// Where an OIDC session goes for a fresh sign-in.
pub const REAUTH_PATH: &str = "/ui/auth/oidc/reauth";
/// The redirect URI to register at the IdP (with the UI's origin).
pub const CALLBACK_PATH: &str = "/ui/auth/oidc/callback";

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn provider(st: &WebState) -> Result<&roster_engine::oidc::OidcProvider, UiError> {
    st.options.oidc.as_deref().ok_or_else(|| {
        UiError::not_found(
            "Sign-in with the company's identity provider is not set up here ([web.oidc] in roster.toml).",
        )
    })
}

async fn begin(
    st: &WebState,
    headers: &HeaderMap,
    next: Option<&str>,
    fresh: bool,
) -> Result<Response, UiError> {
    let provider = provider(st)?;
    let next = safe_next(next);
    let start = st.roster.oidc_begin(provider, fresh, &next)?;
    // A link htmx boosted arrives as a request from script: a redirect to
    // the IdP's origin would be followed inside it (and refused by CORS),
    // so htmx is told to navigate the whole page there instead.
    if headers.contains_key("hx-request")
        && let Ok(to) = HeaderValue::from_str(&start.authorize_url)
    {
        return Ok((StatusCode::OK, [("hx-redirect", to)]).into_response());
    }
    Ok(Redirect::to(&start.authorize_url).into_response())
}

/// `GET /ui/auth/oidc/start`.
pub async fn start(
    State(st): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    begin(&st, &headers, q.next.as_deref(), false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ui/auth/oidc/reauth`.
pub async fn reauth(
    State(st): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    begin(&st, &headers, q.next.as_deref(), true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ui/auth/oidc/callback`.
pub async fn callback(
    State(st): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<OidcCallback>,
) -> Response {
    let provider = match provider(&st) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let previous = session::session_id(&headers, &st.options);
    match st
        .roster
        .oidc_sign_in(provider, &q, &st.options.limits, previous.as_deref())
        .await
    {
        Ok((id, _session, signed)) => {
            let mut resp = Redirect::to(&safe_next(Some(&signed.return_to))).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                session::session_cookie(&st.options, &id),
            );
            resp
        }
        Err(e) => {
            let status = match &e {
                roster_engine::EngineError::NotPermitted(_) => StatusCode::FORBIDDEN,
                roster_engine::EngineError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                _ => return UiError::from(e).into_response(),
            };
            let message = match e {
                roster_engine::EngineError::NotPermitted(m)
                | roster_engine::EngineError::Unauthenticated(m) => m,
                other => other.to_string(),
            };
            UiError::new(
                status,
                format!("Sign-in refused. {message} (Back to the sign-in page: /ui/signin)"),
            )
            .into_response()
        }
    }
}
