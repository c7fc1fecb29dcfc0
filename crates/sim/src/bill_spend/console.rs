//! BILL Spend & Expense's admin console as HTML (smaller than Spendesk's),
//! for the browser runbook `catalog/runbooks/bill-spend-expense-deactivate.toml`
//! to drive with a real browser.
//!
//! It shares the tenant with the v3 spend users API: an employee the
//! console deactivates reads `retired: true` through the API, and the
//! change is logged in the same effect log with `via = "console"`.
//!
//! # Pages
//!
//! * `GET /login`: "Sign in to BILL" with labelled Email and Password and a
//!   "Sign in" button.
//! * `GET /people/employees?q=`: People → Employees with "Search
//!   employees"; each employee's email links to their page.
//! * `GET /people/employees/{uuid}`: the employee page; "Deactivate
//!   employee" opens a confirmation dialog ("Yes, deactivate").
//! * `POST /people/employees/{uuid}/deactivate`: retires the employee.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{BillHandle, Shared, Tenant};
use crate::common::EffectKind;

const SESSION_COOKIE: &str = "bill_session";

/// One thing that happened in the console, for tests to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillConsoleEvent {
    SignedIn { admin: String },
    SignInRefused { who: String },
    Deactivated { email: String },
}

#[derive(Debug, Default)]
pub(super) struct ConsoleState {
    /// Admin email (lower case) → password.
    admins: BTreeMap<String, String>,
    sessions: BTreeSet<String>,
    events: Vec<BillConsoleEvent>,
}

impl BillHandle {
    /// An admin who may sign in to the console.
    pub fn add_console_admin(&self, email: &str, password: &str) {
        self.0
            .lock()
            .console
            .admins
            .insert(email.to_lowercase(), password.to_string());
    }
    /// Every console event so far, in order.
    pub fn console_events(&self) -> Vec<BillConsoleEvent> {
        self.0.lock().console.events.clone()
    }
}

type St = State<Arc<Shared>>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/people/employees", get(employees_page))
        .route("/people/employees/{id}", get(employee_page))
        .route("/people/employees/{id}/deactivate", post(deactivate))
}

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

fn signed_in(t: &Tenant, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == SESSION_COOKIE && t.console.sessions.contains(v))
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · BILL Spend &amp; Expense</title>\
         <style>body{{font-family:sans-serif;margin:0}}header{{background:#1f2a44;color:#fff;padding:.6em 1em}}\
         main{{padding:1em 2em}}td,th{{padding:.3em .8em;text-align:left}}</style></head>\
         <body><header>BILL Spend &amp; Expense · Acme</header><main>{body}</main></body></html>",
        esc(title)
    );
    let mut r = (StatusCode::OK, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn safe_next(next: Option<&String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/people/employees".into())
}

async fn login_page(Query(q): Query<BTreeMap<String, String>>) -> Response {
    let next = safe_next(q.get("next"));
    let err = q
        .get("error")
        .map(|e| format!("<p role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to BILL</h1>{err}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <p><label for=\"email\">Email</label> <input id=\"email\" name=\"email\" type=\"email\"></p>\
             <p><label for=\"password\">Password</label> <input id=\"password\" name=\"password\" type=\"password\"></p>\
             <p><button type=\"submit\">Sign in</button></p></form>",
            esc(&next)
        ),
    )
}

async fn login_submit(State(sh): St, Form(f): Form<BTreeMap<String, String>>) -> Response {
    let mut t = sh.lock();
    let email = f
        .get("email")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let next = safe_next(f.get("next"));
    let ok = f
        .get("password")
        .is_some_and(|p| t.console.admins.get(&email).is_some_and(|want| want == p));
    if !ok {
        t.console
            .events
            .push(BillConsoleEvent::SignInRefused { who: email });
        return redirect(&format!(
            "/login?next={}&error={}",
            pct(&next),
            pct("Wrong email or password.")
        ));
    }
    let tok = format!("{:032x}", rand::random::<u128>());
    t.console.sessions.insert(tok.clone());
    t.console
        .events
        .push(BillConsoleEvent::SignedIn { admin: email });
    let mut r = redirect(&next);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={tok}; Path=/; HttpOnly; SameSite=Lax"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn employees_page(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    let query = q
        .get("q")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    if !signed_in(&t, &headers) {
        return redirect(&format!(
            "/login?next={}",
            pct(&format!("/people/employees?q={}", pct(&query)))
        ));
    }
    let rows: String = t
        .users
        .values()
        .filter(|u| {
            query.is_empty()
                || u.email.to_lowercase().contains(&query)
                || format!("{} {}", u.first_name, u.last_name)
                    .to_lowercase()
                    .contains(&query)
        })
        .take(25)
        .map(|u| {
            format!(
                "<tr><td>{} {}</td><td><a href=\"/people/employees/{}\">{}</a></td><td>{}</td></tr>",
                esc(&u.first_name),
                esc(&u.last_name),
                esc(&u.uuid),
                esc(&u.email),
                if u.retired { "Deactivated" } else { "Active" }
            )
        })
        .collect();
    page(
        "Employees",
        &format!(
            "<nav aria-label=\"Main\"><a href=\"/people/employees\">People</a></nav><h1>Employees</h1>\
             <form method=\"get\" action=\"/people/employees\"><label for=\"search\">Search employees</label> \
             <input id=\"search\" name=\"q\" value=\"{}\"> <button type=\"submit\">Search</button></form>\
             <table><thead><tr><th>Name</th><th>Email</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table>",
            esc(&query)
        ),
    )
}

async fn employee_page(
    State(sh): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let t = sh.lock();
    if !signed_in(&t, &headers) {
        return redirect(&format!(
            "/login?next={}",
            pct(&format!("/people/employees/{id}"))
        ));
    }
    let Some((_, u)) = t.find(&id) else {
        return (StatusCode::NOT_FOUND, "no such employee").into_response();
    };
    let name = format!("{} {}", u.first_name, u.last_name);
    let flash = q
        .get("done")
        .map(|d| format!("<p role=\"alert\">{}</p>", esc(d)))
        .unwrap_or_default();
    let action = if u.retired {
        "<p>This employee is deactivated.</p>".to_string()
    } else {
        format!(
            "<button type=\"button\" onclick=\"document.getElementById('confirm').showModal()\">Deactivate employee</button>\
             <dialog id=\"confirm\" aria-labelledby=\"confirm-title\"><h2 id=\"confirm-title\">Deactivate {}? Their cards are frozen and they lose access.</h2>\
             <form method=\"post\" action=\"/people/employees/{}/deactivate\">\
             <button type=\"button\" onclick=\"document.getElementById('confirm').close()\">Cancel</button> \
             <button type=\"submit\">Yes, deactivate</button></form></dialog>",
            esc(&name),
            esc(&u.uuid)
        )
    };
    page(
        &name,
        &format!(
            "<nav aria-label=\"Breadcrumb\"><a href=\"/people/employees\">Employees</a></nav>{flash}<h1>{}</h1>\
             <p>Email: <span id=\"employee-email\">{}</span> · Role: {} · Status: {}</p>{action}",
            esc(&name),
            esc(&u.email),
            esc(&u.role),
            if u.retired { "Deactivated" } else { "Active" }
        ),
    )
}

async fn deactivate(State(sh): St, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    let mut t = sh.lock();
    let here = format!("/people/employees/{id}");
    if !signed_in(&t, &headers) {
        return redirect(&format!("/login?next={}", pct(&here)));
    }
    let Some((key, _)) = t.find(&id) else {
        return (StatusCode::NOT_FOUND, "no such employee").into_response();
    };
    let Some(u) = t.users.get_mut(&key) else {
        return (StatusCode::NOT_FOUND, "no such employee").into_response();
    };
    if !u.retired {
        u.retired = true;
        let (uid, email) = (u.id.clone(), u.email.clone());
        t.effects
            .push(&uid, &email, EffectKind::Deactivated, "console");
        t.console.events.push(BillConsoleEvent::Deactivated {
            email: email.to_lowercase(),
        });
    }
    redirect(&format!("{here}?done={}", pct("Employee deactivated")))
}
