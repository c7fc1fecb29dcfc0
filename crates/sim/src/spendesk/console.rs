//! Spendesk's admin console as HTML, for browser runbooks
//! (`catalog/runbooks/spendesk-*.toml`) to drive with a real browser.
//!
//! It shares the tenant with the members API: a member the console
//! deactivates reads `status: "deactivated"` through `GET /v1/users`, and
//! every change is logged in the same effect log with `via = "console"`.
//!
//! # Pages
//!
//! * `GET /login`: "Sign in to Spendesk" with labelled Email and Password
//!   and a "Sign in" button (local login), and a "Sign in with SSO" link.
//!   A correct password leads to `GET /login/totp` ("Authentication code",
//!   a six-digit RFC 6238 code from the admin's TOTP seed, ±1 step).
//! * `GET /auth/sso`: redirects to the configured OpenID Connect provider
//!   (the Okta simulator) with PKCE; `GET /auth/callback` exchanges the code
//!   at the provider's token endpoint and signs in the admin the ID token's
//!   `email` names.
//! * `GET /settings/members?q=&page=N`: Settings → Members, searchable,
//!   ten to a page ("Next page" / "Previous page"); each member's email
//!   links to their page.
//! * `GET /settings/members/{id}`: the member page: pending approvals with
//!   "New approver" and "Reassign approvals", open cards (full number on
//!   screen) each with "Block card ending NNNN", and "Deactivate member",
//!   which opens a confirmation dialog ("Confirm deactivation"). A member
//!   with pending approvals or active cards cannot be deactivated.
//!
//! # Friction ([`ConsoleConfig`], [`SpendeskHandle`] setters)
//!
//! * a slow member page: a spinner (`role=status`, "Loading…") until a
//!   script reveals the page after [`ConsoleConfig::slow`];
//! * a cookie banner covering the page until "Accept all cookies";
//! * a second layout ([`Layout::Compact`]): the same labels and roles in
//!   other elements, classes and order; and a redesign
//!   ([`Layout::Redesign`]) that renames the deactivation flow ("Offboard
//!   member"), beyond what a runbook written for the others can follow;
//! * sessions that expire ([`ConsoleConfig::session_ttl`],
//!   [`SpendeskHandle::expire_console_sessions`]): the next page is the
//!   sign-in page with "Your session has expired";
//! * pacing ([`ConsolePacing`]): at most so many signed-in pages and form
//!   posts per admin in any window, across all of the admin's sessions;
//!   past it the console answers 429 "Too many requests" with
//!   `Retry-After` and changes nothing ([`ConsoleEvent::Throttled`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::time::Instant;

use super::{Shared, Tenant};
use crate::common::EffectKind;

/// The session cookie.
const SESSION_COOKIE: &str = "sd_session";
/// The cookie a correct password sets until the TOTP code is given.
const PENDING_COOKIE: &str = "sd_pending";
/// Members per page in Settings → Members.
pub const PAGE_SIZE: usize = 10;

/// Which markup the console serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Tables and `<label>`s.
    #[default]
    Classic,
    /// The same names and roles in other elements (cards, `aria-label`s),
    /// other classes and ids, buttons in another order.
    Compact,
    /// A redesign a runbook for the others cannot follow: deactivation is
    /// "Offboard member" → "Yes, offboard".
    Redesign,
}

/// An admin who may sign in to the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleAdmin {
    pub email: String,
    /// For the local login; `None`: SSO only.
    pub password: Option<String>,
    /// The TOTP seed, base32 (RFC 4648, no padding).
    pub totp_seed: Option<String>,
}

/// The OpenID Connect provider the console's "Sign in with SSO" uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSso {
    /// The issuer's endpoint base, e.g. `{okta}/oauth2/default/v1`.
    pub endpoints: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The console's settings.
#[derive(Clone, Debug, Default)]
pub struct ConsoleConfig {
    pub admins: Vec<ConsoleAdmin>,
    pub layout: Layout,
    /// How long the member page shows its spinner.
    pub slow: Duration,
    pub cookie_banner: bool,
    /// A session's life; `None`: until expired by hand.
    pub session_ttl: Option<Duration>,
    pub sso: Option<ConsoleSso>,
    /// `None`: no limit.
    pub pacing: Option<ConsolePacing>,
}

/// The console's pacing rule: at most `requests` signed-in requests (pages
/// and form posts) per admin within any `window`, whichever of the admin's
/// sessions makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsolePacing {
    pub requests: u32,
    pub window: Duration,
}

/// A pending expense request whose approver is a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub approver: String,
    pub requester: String,
    pub amount: String,
}

/// A payment card held by a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub id: String,
    pub holder: String,
    /// The full number the console shows (screenshots must redact it).
    pub number: String,
    /// `active` or `blocked`.
    pub status: String,
}

impl Card {
    pub fn last4(&self) -> &str {
        &self.number[self.number.len().saturating_sub(4)..]
    }
}

/// One thing that happened in the console, for tests to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// `how`: `password+totp` or `sso`.
    SignedIn {
        admin: String,
        how: &'static str,
    },
    SignInRefused {
        who: String,
        why: &'static str,
    },
    SessionExpired,
    ApprovalsReassigned {
        from: String,
        to: String,
        count: usize,
    },
    CardBlocked {
        holder: String,
        last4: String,
    },
    Deactivated {
        email: String,
    },
    DeactivationRefused {
        email: String,
    },
    /// A request past the pacing rule, answered 429.
    Throttled {
        admin: String,
    },
}

#[derive(Debug, Default)]
pub(super) struct ConsoleState {
    pub(super) config: ConsoleConfig,
    sessions: BTreeMap<String, Session>,
    pending: BTreeMap<String, String>,
    /// SSO `state` → (PKCE verifier, where to go after).
    sso_requests: BTreeMap<String, (String, String)>,
    pub(super) approvals: Vec<Approval>,
    pub(super) cards: Vec<Card>,
    pub(super) events: Vec<ConsoleEvent>,
    next: u64,
    /// Signed-in pages still served before every session expires.
    expire_after: Option<u32>,
    /// Per admin, when their recent signed-in requests came (pacing).
    recent: BTreeMap<String, VecDeque<Instant>>,
    /// Signed-in requests served (not throttled), all admins.
    served: u64,
}

#[derive(Debug)]
struct Session {
    expires: Option<Instant>,
    admin: String,
}

impl ConsoleState {
    pub(super) fn new(config: ConsoleConfig) -> Self {
        ConsoleState {
            config,
            ..ConsoleState::default()
        }
    }
    fn token(&mut self) -> String {
        self.next += 1;
        format!("{:016x}{:04x}", rand::random::<u64>(), self.next)
    }
    pub(super) fn expire_sessions(&mut self) {
        self.sessions.clear();
    }
}

impl super::SpendeskHandle {
    /// Every console event so far, in order.
    pub fn console_events(&self) -> Vec<ConsoleEvent> {
        self.0.lock().console.events.clone()
    }
    /// The pending approvals.
    pub fn approvals(&self) -> Vec<Approval> {
        self.0.lock().console.approvals.clone()
    }
    /// The cards.
    pub fn cards(&self) -> Vec<Card> {
        self.0.lock().console.cards.clone()
    }
    /// Adds a pending approval with `approver` as its approver.
    pub fn add_approval(&self, approver: &str, requester: &str, amount: &str) -> Approval {
        let mut t = self.0.lock();
        let n = t.console.approvals.len() + 1;
        let a = Approval {
            id: format!("apr_{n:04}"),
            approver: approver.to_lowercase(),
            requester: requester.to_lowercase(),
            amount: amount.to_string(),
        };
        t.console.approvals.push(a.clone());
        a
    }
    /// Gives `holder` an active card with this (test) number.
    pub fn add_card(&self, holder: &str, number: &str) -> Card {
        let mut t = self.0.lock();
        let n = t.console.cards.len() + 1;
        let c = Card {
            id: format!("card_{n:04}"),
            holder: holder.to_lowercase(),
            number: number.to_string(),
            status: "active".into(),
        };
        t.console.cards.push(c.clone());
        c
    }
    pub fn set_console_layout(&self, layout: Layout) {
        self.0.lock().console.config.layout = layout;
    }
    pub fn set_console_slow(&self, slow: Duration) {
        self.0.lock().console.config.slow = slow;
    }
    pub fn set_cookie_banner(&self, on: bool) {
        self.0.lock().console.config.cookie_banner = on;
    }
    pub fn set_console_sso(&self, sso: Option<ConsoleSso>) {
        self.0.lock().console.config.sso = sso;
    }
    pub fn add_console_admin(&self, admin: ConsoleAdmin) {
        self.0.lock().console.config.admins.push(admin);
    }
    /// Ends every console session now: the next page asks to sign in.
    pub fn expire_console_sessions(&self) {
        self.0.lock().console.expire_sessions();
    }
    /// Serves `pages` more signed-in pages, then ends every session (once):
    /// a session that expires in the middle of a run.
    pub fn expire_console_sessions_after(&self, pages: u32) {
        self.0.lock().console.expire_after = Some(pages);
    }
    /// Sets (or lifts, with `None`) the console's pacing rule.
    pub fn set_console_pacing(&self, pacing: Option<ConsolePacing>) {
        self.0.lock().console.config.pacing = pacing;
    }
    /// Signed-in console requests served so far (throttled ones excluded).
    pub fn console_requests(&self) -> u64 {
        self.0.lock().console.served
    }
    /// How many console sessions are live.
    pub fn console_sessions(&self) -> usize {
        let now = Instant::now();
        self.0
            .lock()
            .console
            .sessions
            .values()
            .filter(|s| s.expires.is_none_or(|e| e > now))
            .count()
    }
}

type St = State<Arc<Shared>>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(|| async { redirect("/settings/members") }))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/totp", get(totp_page).post(totp_submit))
        .route("/auth/sso", get(sso_start))
        .route("/auth/callback", get(sso_callback))
        .route("/logout", post(logout))
        .route("/settings/members", get(members_page))
        .route("/settings/members/{id}", get(member_page))
        .route("/settings/members/{id}/reassign", post(reassign))
        .route(
            "/settings/members/{id}/cards/{card}/block",
            post(block_card),
        )
        .route("/settings/members/{id}/deactivate", post(deactivate))
}

// ---------------------------------------------------------------- helpers

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn pct(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn with_cookie(mut r: Response, name: &str, value: &str) -> Response {
    let c = if value.is_empty() {
        format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    } else {
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax")
    };
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn page(t: &Tenant, headers: &HeaderMap, title: &str, body: &str) -> Response {
    let banner = if t.console.config.cookie_banner && cookie(headers, "cookies_ok").is_none() {
        "<div id=\"cc\" role=\"dialog\" aria-label=\"Cookie consent\" \
         style=\"position:fixed;inset:0;background:rgba(0,0,0,.55);z-index:50;display:flex;align-items:flex-end\">\
         <div style=\"background:#fff;width:100%;padding:1.5em\"><p>We use cookies to run Spendesk.</p>\
         <button type=\"button\" onclick=\"document.cookie='cookies_ok=1;path=/';document.getElementById('cc').remove()\">Accept all cookies</button>\
         </div></div>"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Spendesk</title>\
         <style>body{{font-family:sans-serif;margin:0}}header{{background:#5d21d2;color:#fff;padding:.6em 1em}}\
         main{{padding:1em 2em}}.num{{font-family:monospace;font-size:1.2em}}td,th{{padding:.3em .8em;text-align:left}}\
         .card{{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.4em 0}}</style></head>\
         <body><header>Spendesk · Acme admin</header><main>{body}</main>{banner}</body></html>",
        esc(title)
    );
    let mut r = (StatusCode::OK, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// The signed-in admin's session, or the redirect to sign in, or 429 past
/// the pacing rule.
fn require_session(t: &mut Tenant, headers: &HeaderMap, here: &str) -> Result<(), Response> {
    let admin = session_admin(t, headers);
    signed_in(t, headers, here)?;
    let (Some(admin), Some(pacing)) = (admin, t.console.config.pacing) else {
        t.console.served += 1;
        return Ok(());
    };
    let now = Instant::now();
    let recent = t.console.recent.entry(admin.clone()).or_default();
    while recent
        .front()
        .is_some_and(|at| now.duration_since(*at) >= pacing.window)
    {
        recent.pop_front();
    }
    if recent.len() >= pacing.requests as usize {
        let wait = recent
            .front()
            .map(|at| pacing.window.saturating_sub(now.duration_since(*at)))
            .unwrap_or(pacing.window);
        let secs = wait.as_secs().max(1);
        t.console.events.push(ConsoleEvent::Throttled { admin });
        let mut r = page(
            t,
            headers,
            "Too many requests",
            &format!(
                "<h1>Too many requests</h1><p role=\"alert\">You are going too fast. Try again in {secs} seconds.</p>"
            ),
        );
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    recent.push_back(now);
    t.console.served += 1;
    Ok(())
}

/// Whose live session the request carries, if any.
fn session_admin(t: &Tenant, headers: &HeaderMap) -> Option<String> {
    let token = cookie(headers, SESSION_COOKIE)?;
    t.console.sessions.get(&token).map(|s| s.admin.clone())
}

/// The signed-in admin's session, or the redirect to sign in.
fn signed_in(t: &mut Tenant, headers: &HeaderMap, here: &str) -> Result<(), Response> {
    let now = Instant::now();
    let token = cookie(headers, SESSION_COOKIE);
    let live = token.as_ref().and_then(|tok| t.console.sessions.get(tok));
    match live {
        Some(s) if s.expires.is_none_or(|e| e > now) => match t.console.expire_after {
            Some(0) => {
                t.console.expire_after = None;
                t.console.expire_sessions();
                t.console.events.push(ConsoleEvent::SessionExpired);
                Err(redirect(&format!("/login?expired=1&next={}", pct(here))))
            }
            Some(n) => {
                t.console.expire_after = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        },
        Some(_) => {
            if let Some(tok) = token {
                t.console.sessions.remove(&tok);
            }
            t.console.events.push(ConsoleEvent::SessionExpired);
            Err(redirect(&format!("/login?expired=1&next={}", pct(here))))
        }
        None if token.is_some() => {
            t.console.events.push(ConsoleEvent::SessionExpired);
            Err(redirect(&format!("/login?expired=1&next={}", pct(here))))
        }
        None => Err(redirect(&format!("/login?next={}", pct(here)))),
    }
}

fn safe_next(next: Option<&String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/settings/members".into())
}

fn start_session(t: &mut Tenant, admin: &str, how: &'static str, next: &str) -> Response {
    let tok = t.console.token();
    let expires = t.console.config.session_ttl.map(|d| Instant::now() + d);
    t.console.sessions.insert(
        tok.clone(),
        Session {
            expires,
            admin: admin.to_lowercase(),
        },
    );
    t.console.events.push(ConsoleEvent::SignedIn {
        admin: admin.to_string(),
        how,
    });
    with_cookie(
        with_cookie(redirect(next), SESSION_COOKIE, &tok),
        PENDING_COOKIE,
        "",
    )
}

// ---------------------------------------------------------------- sign-in

async fn login_page(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    let next = safe_next(q.get("next"));
    let mut notes = String::new();
    if q.contains_key("expired") {
        notes.push_str("<p role=\"alert\">Your session has expired. Sign in again.</p>");
    }
    if let Some(e) = q.get("error") {
        notes.push_str(&format!("<p role=\"alert\">{}</p>", esc(e)));
    }
    let sso = if t.console.config.sso.is_some() {
        format!(
            "<p><a href=\"/auth/sso?next={}\">Sign in with SSO</a></p>",
            pct(&next)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Sign in to Spendesk</h1>{notes}\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <p><label for=\"email\">Email</label> <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\"></p>\
         <p><label for=\"password\">Password</label> <input id=\"password\" name=\"password\" type=\"password\"></p>\
         <p><button type=\"submit\">Sign in</button></p></form>{sso}",
        esc(&next)
    );
    page(&t, &headers, "Sign in", &body)
}

async fn login_submit(State(sh): St, Form(f): Form<BTreeMap<String, String>>) -> Response {
    let mut t = sh.lock();
    let email = f
        .get("email")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let next = safe_next(f.get("next"));
    let ok = t.console.config.admins.iter().any(|a| {
        a.email.eq_ignore_ascii_case(&email) && a.password.as_deref() == Some(password.as_str())
    });
    if !ok {
        t.console.events.push(ConsoleEvent::SignInRefused {
            who: email,
            why: "password",
        });
        return redirect(&format!(
            "/login?next={}&error={}",
            pct(&next),
            pct("Wrong email or password.")
        ));
    }
    let tok = t.console.token();
    t.console.pending.insert(tok.clone(), email);
    with_cookie(
        redirect(&format!("/login/totp?next={}", pct(&next))),
        PENDING_COOKIE,
        &tok,
    )
}

async fn totp_page(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    let next = safe_next(q.get("next"));
    let err = q
        .get("error")
        .map(|e| format!("<p role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Two-step verification</h1>{err}\
         <form method=\"post\" action=\"/login/totp\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <p><label for=\"code\">Authentication code</label> <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\"></p>\
         <p><button type=\"submit\">Verify</button></p></form>",
        esc(&next)
    );
    page(&t, &headers, "Two-step verification", &body)
}

async fn totp_submit(
    State(sh): St,
    headers: HeaderMap,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut t = sh.lock();
    let next = safe_next(f.get("next"));
    let Some(email) = cookie(&headers, PENDING_COOKIE).and_then(|p| t.console.pending.remove(&p))
    else {
        return redirect(&format!("/login?next={}", pct(&next)));
    };
    let code = f
        .get("code")
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let seed = t
        .console
        .config
        .admins
        .iter()
        .find(|a| a.email.eq_ignore_ascii_case(&email))
        .and_then(|a| a.totp_seed.clone());
    let good = seed
        .and_then(|s| base32_decode(&s))
        .is_some_and(|key| totp_matches(&key, &code, unix_now()));
    if !good {
        t.console.events.push(ConsoleEvent::SignInRefused {
            who: email,
            why: "totp",
        });
        return redirect(&format!(
            "/login?next={}&error={}",
            pct(&next),
            pct("That code did not work. Sign in again.")
        ));
    }
    start_session(&mut t, &email, "password+totp", &next)
}

async fn sso_start(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut t = sh.lock();
    let Some(sso) = t.console.config.sso.clone() else {
        return (StatusCode::NOT_FOUND, "SSO is not configured").into_response();
    };
    let next = safe_next(q.get("next"));
    let state = t.console.token();
    let verifier = format!("{}{}", t.console.token(), t.console.token());
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    t.console
        .sso_requests
        .insert(state.clone(), (verifier, next));
    let redirect_uri = format!("{}/auth/callback", origin(&headers));
    let url = format!(
        "{}/authorize?client_id={}&response_type=code&scope={}&redirect_uri={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
        sso.endpoints,
        pct(&sso.client_id),
        pct("openid email profile"),
        pct(&redirect_uri),
        pct(&state),
        pct(&state),
        challenge
    );
    redirect(&url)
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn sso_callback(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let (sso, verifier, next) = {
        let mut t = sh.lock();
        let Some(sso) = t.console.config.sso.clone() else {
            return (StatusCode::NOT_FOUND, "SSO is not configured").into_response();
        };
        let Some((verifier, next)) = q
            .get("state")
            .and_then(|s| t.console.sso_requests.remove(s))
        else {
            return redirect(&format!("/login?error={}", pct("SSO sign-in failed.")));
        };
        (sso, verifier, next)
    };
    let Some(code) = q.get("code") else {
        return redirect(&format!("/login?error={}", pct("SSO sign-in failed.")));
    };
    let redirect_uri = format!("{}/auth/callback", origin(&headers));
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/token", sso.endpoints))
        .basic_auth(&sso.client_id, Some(&sso.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let email = match answer {
        Ok(r) if r.status().is_success() => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["id_token"].as_str().and_then(id_token_email)),
        _ => None,
    };
    let mut t = sh.lock();
    let Some(email) = email else {
        t.console.events.push(ConsoleEvent::SignInRefused {
            who: String::new(),
            why: "sso",
        });
        return redirect(&format!("/login?error={}", pct("SSO sign-in failed.")));
    };
    if !t
        .console
        .config
        .admins
        .iter()
        .any(|a| a.email.eq_ignore_ascii_case(&email))
    {
        t.console.events.push(ConsoleEvent::SignInRefused {
            who: email,
            why: "not an admin",
        });
        return redirect(&format!(
            "/login?error={}",
            pct("Your account is not an admin of this company.")
        ));
    }
    start_session(&mut t, &email, "sso", &next)
}

/// The `email` claim of an ID token (its signature is the provider's
/// business here: the token came straight from its token endpoint).
fn id_token_email(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v["email"].as_str().map(str::to_lowercase)
}

async fn logout(State(sh): St, headers: HeaderMap) -> Response {
    let mut t = sh.lock();
    if let Some(tok) = cookie(&headers, SESSION_COOKIE) {
        t.console.sessions.remove(&tok);
    }
    with_cookie(redirect("/login"), SESSION_COOKIE, "")
}

// ---------------------------------------------------------------- members

async fn members_page(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut t = sh.lock();
    let query = q
        .get("q")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let page_no = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let here = format!("/settings/members?q={}&page={page_no}", pct(&query));
    if let Err(r) = require_session(&mut t, &headers, &here) {
        return r;
    }
    let layout = t.console.config.layout;
    let all: Vec<&super::Member> = t
        .members
        .values()
        .filter(|m| {
            query.is_empty()
                || m.email.to_lowercase().contains(&query)
                || format!("{} {}", m.first_name, m.last_name)
                    .to_lowercase()
                    .contains(&query)
        })
        .collect();
    let pages = all.len().div_ceil(PAGE_SIZE).max(1);
    let shown: Vec<&&super::Member> = all
        .iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let mut list = String::new();
    match layout {
        Layout::Classic => {
            list.push_str(
                "<table><thead><tr><th>Name</th><th>Email</th><th>Status</th></tr></thead><tbody>",
            );
            for m in &shown {
                list.push_str(&format!(
                    "<tr><td>{} {}</td><td><a href=\"/settings/members/{}\">{}</a></td><td>{}</td></tr>",
                    esc(&m.first_name),
                    esc(&m.last_name),
                    esc(&m.id),
                    esc(&m.email),
                    esc(&m.status)
                ));
            }
            list.push_str("</tbody></table>");
        }
        Layout::Compact | Layout::Redesign => {
            list.push_str("<ul class=\"m-grid\" style=\"list-style:none;padding:0\">");
            for m in &shown {
                list.push_str(&format!(
                    "<li class=\"card\"><a class=\"open\" href=\"/settings/members/{}\">{}</a><br>\
                     <span class=\"st\">{}</span> · <span>{} {}</span></li>",
                    esc(&m.id),
                    esc(&m.email),
                    esc(&m.status),
                    esc(&m.first_name),
                    esc(&m.last_name)
                ));
            }
            list.push_str("</ul>");
        }
    }
    let mut nav = String::new();
    if page_no > 1 {
        nav.push_str(&format!(
            "<a href=\"/settings/members?q={}&page={}\">Previous page</a> ",
            pct(&query),
            page_no - 1
        ));
    }
    if page_no < pages {
        nav.push_str(&format!(
            "<a href=\"/settings/members?q={}&page={}\">Next page</a>",
            pct(&query),
            page_no + 1
        ));
    }
    let search = match layout {
        Layout::Classic => format!(
            "<form method=\"get\" action=\"/settings/members\"><label for=\"member-search\">Search members</label> \
             <input id=\"member-search\" name=\"q\" value=\"{}\"> <button type=\"submit\">Search</button></form>",
            esc(&query)
        ),
        _ => format!(
            "<form class=\"sr\" method=\"get\" action=\"/settings/members\"><button type=\"submit\" class=\"b2\">Search</button>\
             <input class=\"q2\" name=\"q\" aria-label=\"Search members\" placeholder=\"Name or email\" value=\"{}\"></form>",
            esc(&query)
        ),
    };
    let body = format!(
        "<nav aria-label=\"Settings\"><a href=\"/settings/members\">Members</a></nav>\
         <h1>Members</h1>{search}<p>{} members · page {page_no} of {pages}</p>{list}<p>{nav}</p>",
        all.len()
    );
    page(&t, &headers, "Members", &body)
}

async fn member_page(
    State(sh): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut t = sh.lock();
    let here = format!("/settings/members/{id}");
    if let Err(r) = require_session(&mut t, &headers, &here) {
        return r;
    }
    let Some(m) = t.members.values().find(|m| m.id == id).cloned() else {
        return (StatusCode::NOT_FOUND, "no such member").into_response();
    };
    let email = m.email.to_lowercase();
    let layout = t.console.config.layout;
    let approvals: Vec<Approval> = t
        .console
        .approvals
        .iter()
        .filter(|a| a.approver == email)
        .cloned()
        .collect();
    let cards: Vec<Card> = t
        .console
        .cards
        .iter()
        .filter(|c| c.holder == email && c.status == "active")
        .cloned()
        .collect();
    let others: Vec<(String, String)> = t
        .members
        .values()
        .filter(|o| o.status == "active" && !o.email.eq_ignore_ascii_case(&email))
        .map(|o| (o.email.clone(), format!("{} {}", o.first_name, o.last_name)))
        .collect();
    let flash = q
        .get("done")
        .map(|d| format!("<p role=\"alert\">{}</p>", esc(d)))
        .unwrap_or_default();
    let name = format!("{} {}", m.first_name, m.last_name);

    let mut appr = format!(
        "<p id=\"approvals-count\">Pending approvals: {}</p>",
        approvals.len()
    );
    if !approvals.is_empty() {
        appr.push_str("<ul>");
        for a in &approvals {
            appr.push_str(&format!(
                "<li>{} from {}</li>",
                esc(&a.amount),
                esc(&a.requester)
            ));
        }
        appr.push_str("</ul>");
        let options: String = others
            .iter()
            .map(|(e, n)| {
                format!(
                    "<option value=\"{}\">{} ({})</option>",
                    esc(e),
                    esc(n),
                    esc(e)
                )
            })
            .collect();
        let (select, button) = match layout {
            Layout::Classic => (
                format!(
                    "<label for=\"new-approver\">New approver</label> <select id=\"new-approver\" name=\"to\">{options}</select>"
                ),
                "<button type=\"submit\">Reassign approvals</button>".to_string(),
            ),
            _ => (
                format!(
                    "<select class=\"s9\" name=\"to\" aria-label=\"New approver\">{options}</select>"
                ),
                "<button type=\"submit\" class=\"btn-x\"><span>Reassign approvals</span></button>"
                    .to_string(),
            ),
        };
        let form = match layout {
            Layout::Classic => format!("{select} {button}"),
            _ => format!("{button} {select}"),
        };
        appr.push_str(&format!(
            "<form method=\"post\" action=\"/settings/members/{}/reassign\">{form}</form>",
            esc(&m.id)
        ));
    }
    let mut cards_html = format!("<p id=\"cards-count\">Active cards: {}</p>", cards.len());
    for c in &cards {
        cards_html.push_str(&format!(
            "<form method=\"post\" action=\"/settings/members/{}/cards/{}/block\" class=\"card\">\
             <span class=\"num\" data-pan>{}</span> \
             <button type=\"submit\">Block card ending {}</button></form>",
            esc(&m.id),
            esc(&c.id),
            esc(&spaced(&c.number)),
            esc(c.last4())
        ));
    }
    let (open_label, confirm_label, dialog_text) = match layout {
        Layout::Redesign => (
            "Offboard member",
            "Yes, offboard",
            format!("Offboard {name}? This removes their access."),
        ),
        _ => (
            "Deactivate member",
            "Confirm deactivation",
            format!("Deactivate {name}? They lose access to Spendesk at once."),
        ),
    };
    let deact = if m.status == "active" {
        format!(
            "<button type=\"button\" onclick=\"document.getElementById('confirm').showModal()\">{open_label}</button>\
             <dialog id=\"confirm\" aria-labelledby=\"confirm-title\"><h2 id=\"confirm-title\">{}</h2>\
             <form method=\"post\" action=\"/settings/members/{}/deactivate\">\
             <button type=\"button\" onclick=\"document.getElementById('confirm').close()\">Cancel</button> \
             <button type=\"submit\">{confirm_label}</button></form></dialog>",
            esc(&dialog_text),
            esc(&m.id)
        )
    } else {
        "<p>This member is deactivated.</p>".into()
    };
    let sections = match layout {
        Layout::Classic => format!(
            "<section aria-labelledby=\"h-appr\"><h2 id=\"h-appr\">Approvals</h2>{appr}</section>\
             <section aria-labelledby=\"h-cards\"><h2 id=\"h-cards\">Cards</h2>{cards_html}</section>\
             <section aria-labelledby=\"h-danger\"><h2 id=\"h-danger\">Access</h2>{deact}</section>"
        ),
        _ => format!(
            "<div class=\"col\"><div class=\"pane\"><h3>Access</h3>{deact}</div>\
             <div class=\"pane\"><h3>Cards</h3>{cards_html}</div>\
             <div class=\"pane\"><h3>Approvals</h3>{appr}</div></div>"
        ),
    };
    let content = format!(
        "<nav aria-label=\"Breadcrumb\"><a href=\"/settings/members\">Members</a></nav>{flash}\
         <h1>{}</h1><p>Email: <span id=\"member-email\">{}</span> · Status: <span id=\"member-status\">{}</span></p>{sections}",
        esc(&name),
        esc(&m.email),
        esc(&m.status)
    );
    let slow = t.console.config.slow;
    let body = if slow.is_zero() {
        content
    } else {
        format!(
            "<div id=\"spinner\" role=\"status\">Loading…</div>\
             <div id=\"content\" hidden>{content}</div>\
             <script>setTimeout(function(){{document.getElementById('spinner').remove();\
             document.getElementById('content').hidden=false}},{})</script>",
            slow.as_millis()
        )
    };
    page(&t, &headers, &name, &body)
}

fn spaced(number: &str) -> String {
    number
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn member_email(t: &Tenant, id: &str) -> Option<(String, String)> {
    t.members
        .values()
        .find(|m| m.id == id)
        .map(|m| (m.id.clone(), m.email.clone()))
}

async fn reassign(
    State(sh): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut t = sh.lock();
    let here = format!("/settings/members/{id}");
    if let Err(r) = require_session(&mut t, &headers, &here) {
        return r;
    }
    let Some((mid, email)) = member_email(&t, &id) else {
        return (StatusCode::NOT_FOUND, "no such member").into_response();
    };
    let to = f.get("to").map(|s| s.to_lowercase()).unwrap_or_default();
    let to_active = t
        .members
        .values()
        .any(|m| m.email.eq_ignore_ascii_case(&to) && m.status == "active");
    if !to_active || to.eq_ignore_ascii_case(&email) {
        return redirect(&format!(
            "{here}?done={}",
            pct("Choose an active approver.")
        ));
    }
    let lower = email.to_lowercase();
    let mut count = 0;
    for a in t
        .console
        .approvals
        .iter_mut()
        .filter(|a| a.approver == lower)
    {
        a.approver = to.clone();
        count += 1;
    }
    if count > 0 {
        t.effects.push(
            &mid,
            &email,
            EffectKind::Updated {
                fields: vec!["pendingApprovals".into()],
            },
            "console",
        );
        t.console.events.push(ConsoleEvent::ApprovalsReassigned {
            from: lower,
            to: to.clone(),
            count,
        });
    }
    redirect(&format!(
        "{here}?done={}",
        pct(&format!("{count} approvals reassigned to {to}"))
    ))
}

async fn block_card(
    State(sh): St,
    headers: HeaderMap,
    UrlPath((id, card)): UrlPath<(String, String)>,
) -> Response {
    let mut t = sh.lock();
    let here = format!("/settings/members/{id}");
    if let Err(r) = require_session(&mut t, &headers, &here) {
        return r;
    }
    let Some((mid, email)) = member_email(&t, &id) else {
        return (StatusCode::NOT_FOUND, "no such member").into_response();
    };
    let lower = email.to_lowercase();
    let mut blocked = None;
    if let Some(c) = t
        .console
        .cards
        .iter_mut()
        .find(|c| c.id == card && c.holder == lower && c.status == "active")
    {
        c.status = "blocked".into();
        blocked = Some(c.last4().to_string());
    }
    if let Some(last4) = &blocked {
        t.effects.push(
            &mid,
            &email,
            EffectKind::Updated {
                fields: vec!["cards".into()],
            },
            "console",
        );
        t.console.events.push(ConsoleEvent::CardBlocked {
            holder: lower,
            last4: last4.clone(),
        });
    }
    let msg = match blocked {
        Some(l) => format!("Card ending {l} blocked"),
        None => "Card already blocked".into(),
    };
    redirect(&format!("{here}?done={}", pct(&msg)))
}

async fn deactivate(State(sh): St, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    let mut t = sh.lock();
    let here = format!("/settings/members/{id}");
    if let Err(r) = require_session(&mut t, &headers, &here) {
        return r;
    }
    let Some((mid, email)) = member_email(&t, &id) else {
        return (StatusCode::NOT_FOUND, "no such member").into_response();
    };
    let lower = email.to_lowercase();
    let open = t.console.approvals.iter().any(|a| a.approver == lower)
        || t.console
            .cards
            .iter()
            .any(|c| c.holder == lower && c.status == "active");
    if open {
        t.console
            .events
            .push(ConsoleEvent::DeactivationRefused { email: lower });
        return redirect(&format!(
            "{here}?done={}",
            pct("Reassign pending approvals and block cards before deactivating.")
        ));
    }
    let mut changed = false;
    if let Some(m) = t.members.values_mut().find(|m| m.id == mid)
        && m.status != "deactivated"
    {
        m.status = "deactivated".into();
        changed = true;
    }
    if changed {
        t.effects
            .push(&mid, &email, EffectKind::Deactivated, "console");
        t.console
            .events
            .push(ConsoleEvent::Deactivated { email: lower });
    }
    redirect(&format!("{here}?done={}", pct("Member deactivated")))
}

// ---------------------------------------------------------------- TOTP

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 4648 base32 (upper or lower case, padding and spaces ignored).
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut n = 0u32;
    let mut out = Vec::new();
    for ch in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = match ch.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// The RFC 6238 code (SHA-1, 30 s, 6 digits) for `key` at `unix` seconds.
pub fn totp_code(key: &[u8], unix: u64) -> String {
    let counter = unix / 30;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = ring::hmac::sign(&k, &counter.to_be_bytes());
    let h = tag.as_ref();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

fn totp_matches(key: &[u8], code: &str, now: u64) -> bool {
    [now.saturating_sub(30), now, now + 30]
        .iter()
        .any(|t| totp_code(key, *t) == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_the_rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1, the last six digits.
        let key = b"12345678901234567890";
        assert_eq!(totp_code(key, 59), "287082");
        assert_eq!(totp_code(key, 1_111_111_109), "081804");
        assert_eq!(totp_code(key, 2_000_000_000), "279037");
        assert!(totp_matches(key, "287082", 59 + 30));
        assert!(!totp_matches(key, "287082", 59 + 90));
    }

    #[test]
    fn base32_round_trips_the_rfc_4648_example() {
        assert_eq!(base32_decode("MZXW6YTBOI").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(
            base32_decode("mzxw6ytboi======").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(base32_decode("MZ1"), None);
    }
}
