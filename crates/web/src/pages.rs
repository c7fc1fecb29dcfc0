//! The pages and forms. Each handler asks the application layer
//! ([`Roster`](roster_engine::Roster)) with the signed-in session's
//! principal and renders a template; the view models below hold text
//! ready to print, so templates only loop and escape.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use roster_core::{AccountKey, ConnectionId, EmployeeId, Scope};
use roster_engine::agent_rules;
use roster_engine::{PersonRef, PlanScope};
use roster_store::{HumanTaskState, MatchResolution, PlanId};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::WebState;
use crate::session::{self, Caller, UiError, safe_next};

type Page = Result<Response, UiError>;

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub user: String,
    pub roles: String,
    pub csrf: String,
    /// Which navigation entry is this page's.
    pub nav: &'static str,
    pub fresh: bool,
    /// A one-line outcome of the last form (`?done=`).
    pub flash: Option<String>,
}

impl Chrome {
    fn of(caller: &Caller, nav: &'static str) -> Chrome {
        Chrome {
            user: caller.session.principal.name.clone(),
            roles: caller.session.roles_text(),
            csrf: caller.session.csrf_token.clone(),
            nav,
            fresh: caller.session.fresh,
            flash: None,
        }
    }

    fn with_flash(mut self, flash: Option<&String>) -> Chrome {
        self.flash = flash
            .map(|f| f.chars().take(300).collect::<String>())
            .filter(|f| !f.is_empty());
        self
    }

    /// Whether the session may use `scope` (to show or hide a form; the
    /// route checks it again).
    fn can(&self, caller: &Caller, scope: Scope) -> bool {
        caller.session.allows(scope)
    }
}

/// `?done=` after a form, shown once on the page it lands on.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    done: Option<String>,
}

fn html(t: impl Template) -> Page {
    let body = t
        .render()
        .map_err(|e| UiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}

/// After a form: 303 to `to` with a one-line outcome.
fn done(to: &str, what: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{to}{sep}done={}",
        url::form_urlencoded::byte_serialize(what.as_bytes()).collect::<String>()
    ))
    .into_response()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `2026-12-07 10:05 UTC`.
pub fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// `3 d 4 h`, `5 h 2 min`, `40 s`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------- errors

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub status: u16,
    pub message: String,
    pub user: Option<String>,
    pub roles: String,
    pub reauth: Option<String>,
}

pub async fn not_found() -> UiError {
    UiError::not_found("There is no such page in roster's UI.")
}

// ---------------------------------------------------------------- sign-in

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub next: String,
    pub error: Option<String>,
    pub oidc: Option<String>,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn signin_form(State(st): State<WebState>, Query(q): Query<NextQuery>) -> Page {
    html(SignInPage {
        next: safe_next(q.next.as_deref()),
        error: None,
        oidc: st.options.oidc_login_path.clone(),
        name: String::new(),
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn signin(State(st): State<WebState>, Form(f): Form<SignInForm>) -> Page {
    let next = safe_next(f.next.as_deref());
    match st
        .roster
        .sign_in_local(&f.name, &f.password, &st.options.limits)
        .await
    {
        Ok((id, _)) => {
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                session::session_cookie(&st.options, &id),
            );
            Ok(resp)
        }
        Err(
            e @ (roster_engine::EngineError::Unauthenticated(_)
            | roster_engine::EngineError::NotPermitted(_)),
        ) => {
            let mut resp = html(SignInPage {
                next,
                error: Some(match e {
                    roster_engine::EngineError::NotPermitted(m) => m,
                    other => other.to_string(),
                }),
                oidc: st.options.oidc_login_path.clone(),
                name: f.name,
            })?;
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct OnceQuery {
    token: String,
}

/// The demo's one-time link: signs in as its user once.
pub async fn signin_once(State(st): State<WebState>, Query(q): Query<OnceQuery>) -> Page {
    let Some(once) = st.options.one_time.clone() else {
        return Err(UiError::not_found("There is no one-time sign-in here."));
    };
    if !once.redeem(&q.token) {
        return Err(UiError::new(
            StatusCode::UNAUTHORIZED,
            "This sign-in link was used already or is not valid. Sign in with a name and password.",
        ));
    }
    let user = st
        .roster
        .web_users()
        .await?
        .into_iter()
        .find(|u| u.name == once.user)
        .ok_or_else(|| UiError::not_found("The one-time sign-in's user is gone."))?;
    let (id, _) = st
        .roster
        .start_web_session(
            &roster_engine::WebIdentity {
                name: user.name,
                email: user.email,
                via: roster_engine::SignInVia::Local,
                roles: [user.role].into_iter().collect(),
            },
            &st.options.limits,
        )
        .await?;
    // A page of our own, not a redirect: the link was opened from another
    // application, and the dashboard is then reached from this origin.
    let mut resp = html(SignedInOnce {})?;
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session::session_cookie(&st.options, &id),
    );
    Ok(resp)
}

#[derive(Template)]
#[template(
    source = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta http-equiv=\"refresh\" content=\"0; url=/ui/\"><title>Signed in · roster</title><link rel=\"stylesheet\" href=\"/ui/assets/roster.css\"></head><body><main id=\"main\"><h1>Signed in</h1><p><a href=\"/ui/\">Continue to the dashboard</a></p></main></body></html>",
    ext = "html"
)]
pub struct SignedInOnce {}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn signout(State(st): State<WebState>, caller: Caller, Form(f): Form<CsrfOnly>) -> Page {
    caller.check_csrf(&f.csrf)?;
    st.roster.sign_out_web(&caller.id).await?;
    let mut resp = Redirect::to("/ui/signin").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(&st.options));
    Ok(resp)
}

#[derive(Template, WebTemplate)]
#[template(path = "reauth.html")]
pub struct ReauthPage {
    pub chrome: Chrome,
    pub next: String,
    pub error: Option<String>,
    pub oidc: Option<String>,
}

pub async fn reauth_form(
    State(st): State<WebState>,
    caller: Caller,
    Query(q): Query<NextQuery>,
) -> Page {
    let next = safe_next(q.next.as_deref());
    let oidc = match (&caller.session.via, &st.options.oidc_reauth_path) {
        (roster_engine::SignInVia::Oidc { .. }, Some(p)) => {
            Some(format!("{p}?next={}", enc(&next)))
        }
        _ => None,
    };
    html(ReauthPage {
        chrome: Chrome::of(&caller, ""),
        next,
        error: None,
        oidc,
    })
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    csrf: String,
    password: String,
    next: Option<String>,
}

pub async fn reauth(State(st): State<WebState>, caller: Caller, Form(f): Form<ReauthForm>) -> Page {
    caller.check_csrf(&f.csrf)?;
    let next = safe_next(f.next.as_deref());
    match st
        .roster
        .reauthenticate_local(&caller.id, &f.password, &st.options.limits)
        .await
    {
        Ok(_) => Ok(done(
            &next,
            "Confirmed: you may approve and apply for a few minutes.",
        )),
        Err(
            e @ (roster_engine::EngineError::Unauthenticated(_)
            | roster_engine::EngineError::Refused(_)),
        ) => {
            let mut resp = html(ReauthPage {
                chrome: Chrome::of(&caller, ""),
                next,
                error: Some(e.to_string()),
                oidc: None,
            })?;
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- dashboard

pub struct LeaverRow {
    pub person: String,
    pub email: String,
    pub employee_id: String,
    pub open: usize,
    pub age: String,
    pub age_ms: i64,
}

pub struct ConnRow {
    pub id: String,
    pub app: String,
    pub status: String,
    pub healthy: bool,
    pub reason: String,
    pub paused: Option<String>,
    pub last_read: String,
}

pub struct PlanRow {
    pub id: String,
    pub created: String,
    pub proposer: String,
    pub agent: bool,
    pub state: String,
    pub actions: String,
    pub waiting: usize,
}

pub struct TaskRow {
    pub id: String,
    pub title: String,
    pub connection: String,
    pub subject: String,
    pub state: String,
    pub flagged: bool,
    pub due: String,
    pub overdue: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub leavers: Vec<LeaverRow>,
    pub leavers_open_accounts: usize,
    pub orphans: usize,
    pub orphans_by_connection: Vec<(String, usize)>,
    pub troubled: Vec<ConnRow>,
    pub waiting_plans: Vec<PlanRow>,
    pub open_tasks: usize,
    pub overdue: Vec<TaskRow>,
    pub matches: usize,
    /// When the leavers, orphans and match counts were computed.
    pub summary_at: String,
    pub summary_age: String,
}

fn conn_row(c: &roster_engine::queries::ConnectionStatus) -> ConnRow {
    ConnRow {
        id: c.id.to_string(),
        app: c.app.clone(),
        status: c.status.clone(),
        healthy: c.healthy,
        reason: c.reason.clone().unwrap_or_default(),
        paused: c.paused.as_ref().map(|p| {
            format!(
                "paused by {} {}{}",
                p.actor,
                when(p.paused_ms),
                p.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        }),
        last_read: c
            .last_read
            .as_ref()
            .map(|r| when(r.at_ms))
            .unwrap_or_else(|| "never".into()),
    }
}

fn plan_row(p: &roster_engine::queries::PlanSummary) -> PlanRow {
    PlanRow {
        id: p.id.clone(),
        created: when(p.created_ms),
        proposer: p.proposed_by.clone().unwrap_or_else(|| "unknown".into()),
        agent: p.proposed_by_agent,
        state: p.state.to_string(),
        actions: p
            .actions
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        waiting: p.waiting_approval,
    }
}

fn task_row(t: &roster_store::HumanTask, now: i64) -> TaskRow {
    let open = matches!(t.state, HumanTaskState::Open | HumanTaskState::Reopened);
    TaskRow {
        id: t.id.clone(),
        title: t.title.clone(),
        connection: t.connection.clone(),
        subject: t.subject_email.clone(),
        state: t.state.as_str().to_string(),
        flagged: t.flagged,
        due: t.due_ms.map(when).unwrap_or_else(|| "no due date".into()),
        overdue: open && t.due_ms.is_some_and(|d| d < now),
    }
}

pub async fn dashboard(
    State(st): State<WebState>,
    caller: Caller,
    Query(flash): Query<Flash>,
) -> Page {
    let r = &st.roster;
    let now = now_ms();
    let (summary, connections, plans, tasks) = tokio::try_join!(
        st.summary.get(r),
        r.connections(),
        r.plans(None, 100),
        r.tasks(false),
    )?;
    let (leavers, orphans) = (&summary.leavers, &summary.orphans);
    let mut rows: Vec<LeaverRow> = leavers
        .leavers
        .iter()
        .filter(|l| l.open > 0)
        .map(|l| {
            let age_ms = l.terminated_ms.map(|t| now - t).unwrap_or(0);
            LeaverRow {
                person: l.person.name.clone(),
                email: l.person.email.to_string(),
                employee_id: l.person.employee_id.as_str().to_string(),
                open: l.open,
                age: l
                    .terminated_ms
                    .map(|_| age(age_ms))
                    .unwrap_or_else(|| "no end date".into()),
                age_ms,
            }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.age_ms));
    rows.truncate(50);
    let overdue: Vec<TaskRow> = tasks
        .iter()
        .map(|t| task_row(t, now))
        .filter(|t| t.overdue)
        .take(50)
        .collect();
    html(DashboardPage {
        chrome: Chrome::of(&caller, "dashboard").with_flash(flash.done.as_ref()),
        leavers_open_accounts: leavers.summary.open_accounts,
        leavers: rows,
        orphans: orphans.total,
        orphans_by_connection: orphans
            .by_connection
            .iter()
            .filter(|c| c.orphans > 0)
            .map(|c| (c.connection.to_string(), c.orphans))
            .collect(),
        troubled: connections
            .iter()
            .filter(|c| !c.healthy || c.paused.is_some())
            .map(conn_row)
            .collect(),
        waiting_plans: plans
            .items
            .iter()
            .filter(|p| p.waiting_approval > 0)
            .map(plan_row)
            .collect(),
        open_tasks: tasks
            .iter()
            .filter(|t| matches!(t.state, HumanTaskState::Open | HumanTaskState::Reopened))
            .count(),
        overdue,
        matches: summary.matches,
        summary_at: when(summary.computed_ms),
        summary_age: age(now - summary.computed_ms),
    })
}

// ---------------------------------------------------------------- people

#[derive(Template, WebTemplate)]
#[template(path = "people.html")]
pub struct PeoplePage {
    pub chrome: Chrome,
    pub q: String,
    pub people: Vec<roster_engine::queries::PersonSummary>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

pub async fn people(
    State(st): State<WebState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Page {
    let page = st
        .roster
        .search_people(q.q.trim(), q.cursor.as_deref(), 50)
        .await?;
    html(PeoplePage {
        chrome: Chrome::of(&caller, "people"),
        next: page
            .next_cursor
            .map(|c| format!("/ui/people?q={}&cursor={}", enc(q.q.trim()), enc(&c))),
        q: q.q,
        people: page.items,
    })
}

pub struct AccountRow {
    pub connection: String,
    pub app: String,
    pub key: String,
    pub state: String,
    pub path: String,
    pub grant: String,
}

pub struct PendingRow {
    pub plan_id: String,
    pub index: usize,
    pub state: String,
    pub what: String,
    pub waiting: String,
}

pub struct AuditRow {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub data: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "person.html")]
pub struct PersonPage {
    pub chrome: Chrome,
    pub id: String,
    pub name: String,
    pub email: String,
    pub employee_id: String,
    pub status: String,
    pub department: String,
    pub offboarded: bool,
    pub dates: String,
    pub idp: String,
    pub accounts: Vec<AccountRow>,
    pub entitled: Vec<String>,
    pub tasks: Vec<TaskRow>,
    pub pending: Vec<PendingRow>,
    pub next_plan: Vec<String>,
    pub next_plan_error: Option<String>,
    pub next_plan_shown: bool,
    pub history: Vec<AuditRow>,
    pub can_propose: bool,
    pub can_offboard: bool,
}

fn audit_row(a: &roster_store::AuditRecord) -> AuditRow {
    let mut data = a.data.to_string();
    if data.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|i| data.is_char_boundary(*i))
            .unwrap_or(0);
        data.truncate(cut);
        data.push('…');
    }
    AuditRow {
        seq: a.seq,
        at: when(a.at_ms),
        actor: a.actor.clone(),
        kind: a.kind.clone(),
        subject: a.subject.clone(),
        data,
    }
}

fn action_text(a: &roster_core::Action) -> String {
    format!(
        "{} {} in {} ({})",
        a.operation, a.email, a.connection, a.reason
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct PersonQuery {
    done: Option<String>,
    /// Also compute what a plan for them would do now (costs a plan).
    #[serde(default)]
    next_plan: bool,
}

pub async fn person(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PersonQuery>,
) -> Page {
    let who = PersonRef::parse(&id);
    // The next plan costs a one-person plan over the whole company's
    // accounts; computed when asked for, as the REST API does.
    let access = if q.next_plan {
        st.roster.person_access(&who).await?
    } else {
        st.roster.person_access_without_plan(&who).await?
    };
    let flash = Flash { done: q.done };
    let now = now_ms();
    let p = &access.planned;
    let chrome = Chrome::of(&caller, "people").with_flash(flash.done.as_ref());
    let can_propose = chrome.can(&caller, Scope::Propose);
    let can_offboard = chrome.can(&caller, Scope::Offboard);
    html(PersonPage {
        id: p.employee_id.as_str().to_string(),
        name: p.display_name(),
        email: p.email.to_string(),
        employee_id: p.employee_id.as_str().to_string(),
        status: p.status.as_str().to_string(),
        department: p.department.clone(),
        offboarded: access.offboarded,
        dates: access.dates.detail.clone(),
        idp: access
            .idp
            .as_ref()
            .map(|i| {
                format!(
                    "{} {} ({})",
                    i.source.as_deref().unwrap_or("IdP"),
                    i.id.as_deref().unwrap_or("?"),
                    i.state.as_deref().unwrap_or("unknown state")
                )
            })
            .unwrap_or_else(|| "no identity provider lists them".into()),
        accounts: access
            .accounts
            .iter()
            .map(|a| AccountRow {
                connection: a.account.connection.to_string(),
                app: a.app.clone().unwrap_or_default(),
                key: a.account.key.to_string(),
                state: if a.account.active {
                    "active".into()
                } else {
                    "inactive".into()
                },
                path: a
                    .path
                    .as_ref()
                    .map(|p| format!("{}: {} — {}", p.operation, p.path, p.reason))
                    .unwrap_or_default(),
                grant: a.grant.clone(),
            })
            .collect(),
        entitled: access
            .entitled_without_account
            .iter()
            .map(|g| format!("{} (rules: {})", g.connection, g.rules.join(", ")))
            .collect(),
        tasks: access.open_tasks.iter().map(|t| task_row(t, now)).collect(),
        pending: access
            .pending_actions
            .iter()
            .map(|a| PendingRow {
                plan_id: a.plan_id.clone(),
                index: a.index,
                state: a.state.as_str().to_string(),
                what: action_text(&a.action),
                waiting: a.awaiting_approval.clone().unwrap_or_default(),
            })
            .collect(),
        next_plan: access.next_plan.iter().flatten().map(action_text).collect(),
        next_plan_error: access.next_plan_error.clone(),
        next_plan_shown: q.next_plan,
        history: access.audit.iter().rev().take(50).map(audit_row).collect(),
        can_propose,
        can_offboard,
        chrome,
    })
}

pub async fn propose_person(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let planned = st
        .roster
        .plan(
            &caller.session.principal,
            PlanScope::Person(PersonRef::parse(&id)),
        )
        .await?;
    Ok(done(
        &format!("/ui/plans/{}", planned.id),
        "Plan proposed: nothing runs until it is approved and applied.",
    ))
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn offboard(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let reason = f.reason.trim();
    if reason.is_empty() {
        return Err(UiError::bad(
            "Say why this person is offboarded (the reason is audited).",
        ));
    }
    let by = caller.session.principal.clone();
    let roster = st.roster.clone();
    let who = PersonRef::parse(&id);
    let reason = reason.to_string();
    // In a task of its own: a browser going away never stops it halfway.
    let work =
        tokio::spawn(async move { roster.offboard(&by, &who, &reason, &mut |_, _| {}).await });
    match tokio::time::timeout(Duration::from_secs(30), work).await {
        Ok(Ok(Ok(o))) => Ok(done(
            &format!("/ui/people/{}", enc(o.person.employee_id.as_str())),
            &format!(
                "Offboarded: plan {} carried out ({} held for someone else's approval).",
                o.plan_id,
                o.held.len()
            ),
        )),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The offboarding failed; see the server log and the audit log.",
        )),
        Err(_) => Ok(done(
            &format!("/ui/people/{}", enc(&id)),
            "The offboarding goes on in the background; reload to see where it stands.",
        )),
    }
}

// ---------------------------------------------------------------- apps

pub struct AppRow {
    pub id: String,
    pub name: String,
    pub connection: String,
    pub paths: String,
}

pub struct GapRow {
    pub connection: String,
    pub operation: String,
    pub coverage: String,
    pub path: String,
    pub reason: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub apps: Vec<AppRow>,
    pub gaps: Vec<GapRow>,
    pub coverage_text: String,
    pub people_by_hand: usize,
    pub accounts_by_hand: usize,
}

fn gap_row(g: &roster_engine::reports::GapNode) -> GapRow {
    GapRow {
        connection: g.connection.to_string(),
        operation: g.operation.to_string(),
        coverage: g.coverage.as_str().to_string(),
        path: g
            .path
            .map(|p| p.to_string())
            .unwrap_or_else(|| "none".into()),
        reason: g.reason.clone(),
    }
}

pub async fn apps(State(st): State<WebState>, caller: Caller) -> Page {
    let (cards, coverage) = tokio::try_join!(st.roster.apps(), st.roster.coverage_report())?;
    html(AppsPage {
        chrome: Chrome::of(&caller, "apps"),
        apps: cards
            .iter()
            .map(|c| AppRow {
                id: c
                    .connection
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| c.app.id.clone()),
                name: c.app.name.clone(),
                connection: c
                    .connection
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "not connected".into()),
                paths: c
                    .paths
                    .iter()
                    .map(|p| format!("{} → {}", p.op, p.path))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        gaps: coverage.gap_nodes.iter().map(gap_row).collect(),
        coverage_text: roster_engine::reports::render_coverage(&coverage),
        people_by_hand: coverage.people_removable_only_by_hand,
        accounts_by_hand: coverage.accounts_removable_only_by_hand,
    })
}

pub struct PathRow {
    pub operation: String,
    pub path: String,
    pub connector: String,
    pub reason: String,
    pub alternatives: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "app.html")]
pub struct AppPage {
    pub chrome: Chrome,
    pub id: String,
    pub name: String,
    pub card: String,
    pub paths: Vec<PathRow>,
    pub gaps: Vec<GapRow>,
}

pub async fn app(State(st): State<WebState>, caller: Caller, Path(id): Path<String>) -> Page {
    let Some(card) = st.roster.app(&id).await? else {
        return Err(UiError::not_found(format!(
            "No connection or catalog app {id}."
        )));
    };
    let coverage = st.roster.coverage_report().await?;
    let connection = card.connection.clone();
    html(AppPage {
        chrome: Chrome::of(&caller, "apps"),
        id: id.clone(),
        name: card.app.name.clone(),
        card: roster_catalog::render_card(&card.app, &card.settings),
        paths: card
            .paths
            .iter()
            .map(|p| PathRow {
                operation: p.op.to_string(),
                path: p.path.to_string(),
                connector: p.connector.clone().unwrap_or_else(|| "a person".into()),
                reason: p.reason.clone(),
                alternatives: p
                    .alternatives
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        gaps: coverage
            .gap_nodes
            .iter()
            .filter(|g| {
                connection.as_ref() == Some(&g.connection)
                    || g.app.as_deref() == Some(card.app.id.as_str())
            })
            .map(gap_row)
            .collect(),
    })
}

// ---------------------------------------------------------------- plans

#[derive(Template, WebTemplate)]
#[template(path = "plans.html")]
pub struct PlansPage {
    pub chrome: Chrome,
    pub plans: Vec<PlanRow>,
    pub next: Option<String>,
    pub can_propose: bool,
}

#[derive(Debug, Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
    done: Option<String>,
}

pub async fn plans(
    State(st): State<WebState>,
    caller: Caller,
    Query(q): Query<CursorQuery>,
) -> Page {
    let page = st.roster.plans(q.cursor.as_deref(), 50).await?;
    let chrome = Chrome::of(&caller, "plans").with_flash(q.done.as_ref());
    html(PlansPage {
        can_propose: chrome.can(&caller, Scope::Propose),
        chrome,
        plans: page.items.iter().map(plan_row).collect(),
        next: page
            .next_cursor
            .map(|c| format!("/ui/plans?cursor={}", enc(&c))),
    })
}

pub async fn propose_all(
    State(st): State<WebState>,
    caller: Caller,
    Form(f): Form<CsrfOnly>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let planned = st
        .roster
        .plan(&caller.session.principal, PlanScope::All)
        .await?;
    Ok(done(
        &format!("/ui/plans/{}", planned.id),
        "Plan proposed from what roster last read: nothing runs until it is approved and applied.",
    ))
}

pub struct ActionRow {
    pub index: usize,
    pub what: String,
    pub state: String,
    pub approval: String,
    pub why: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "plan.html")]
pub struct PlanPage {
    pub chrome: Chrome,
    pub id: String,
    pub state: String,
    pub created: String,
    pub proposer: String,
    pub agent: bool,
    pub note: Option<String>,
    pub hash: String,
    pub version: String,
    pub diff: String,
    pub guards: Vec<String>,
    pub actions: Vec<ActionRow>,
    pub waiting: usize,
    pub can_approve: bool,
    pub can_apply: bool,
    pub reauth: String,
}

pub async fn plan(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Page {
    let plan_id = if id == "latest" {
        match st.roster.plans(None, 1).await?.items.first() {
            Some(p) => PlanId::new(p.id.clone()),
            None => return Err(UiError::not_found("No plan yet.")),
        }
    } else {
        PlanId::new(id)
    };
    let detail = st.roster.plan_detail(&plan_id).await?;
    let proposal = st.roster.proposal(&plan_id).await?;
    let proposer = detail
        .summary
        .proposed_by
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let chrome = Chrome::of(&caller, "plans").with_flash(flash.done.as_ref());
    let mut guards: Vec<String> = detail
        .plan
        .guards
        .fired
        .iter()
        .map(|g| match &g.connection {
            Some(c) => format!("{c}: {}", g.detail),
            None => g.detail.clone(),
        })
        .collect();
    if guards.is_empty() {
        guards = roster_core::guard::render_report(&detail.plan.guards)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
    }
    html(PlanPage {
        id: plan_id.to_string(),
        state: detail.summary.state.to_string(),
        created: when(detail.summary.created_ms),
        proposer: agent_rules::proposer_line(&proposer),
        agent: detail.summary.proposed_by_agent,
        note: proposal.and_then(|p| p.note),
        hash: detail.summary.hash.clone(),
        version: detail.version.clone(),
        diff: roster_core::plan::render(&detail.plan),
        guards,
        actions: detail
            .actions
            .iter()
            .map(|a| ActionRow {
                index: a.index,
                what: detail
                    .plan
                    .actions
                    .get(a.index)
                    .map(action_text)
                    .unwrap_or_default(),
                state: a.state.clone(),
                approval: a.approval.unwrap_or("not needed").to_string(),
                why: a.approval_reason.clone().unwrap_or_default(),
            })
            .collect(),
        waiting: detail.summary.waiting_approval,
        can_approve: chrome.can(&caller, Scope::Approve),
        can_apply: chrome.can(&caller, Scope::Apply),
        reauth: format!("/ui/reauth?next={}", enc(&format!("/ui/plans/{plan_id}"))),
        chrome,
    })
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// The plan's version the person reviewed.
    #[serde(default)]
    version: String,
}

/// The plan, if it is still the version the person reviewed: a plan that
/// moved since (a decision, an action's state) is refused, 409.
async fn reviewed(
    st: &WebState,
    id: &PlanId,
    version: &str,
) -> Result<roster_engine::queries::PlanDetail, UiError> {
    let current = st.roster.plan_detail(id).await?;
    if version.trim().is_empty() || current.version != version.trim() {
        return Err(UiError::new(
            StatusCode::CONFLICT,
            format!(
                "Plan {id} changed since you reviewed it. Nothing was decided or applied: review it again."
            ),
        ));
    }
    Ok(current)
}

async fn decide(st: WebState, caller: Caller, id: String, f: DecisionForm, approve: bool) -> Page {
    caller.check_csrf(&f.csrf)?;
    let reason = f.reason.trim();
    if reason.is_empty() {
        return Err(UiError::bad("Give a reason: it goes to the audit log."));
    }
    let id = PlanId::new(id);
    let current = reviewed(&st, &id, &f.version).await?;
    // Only what waits, one action at a time: a decision someone already
    // made (a rejection above all) is never overturned by this button.
    let waiting: Vec<usize> = current
        .actions
        .iter()
        .filter(|a| a.approval == Some("waiting"))
        .map(|a| a.index)
        .collect();
    if waiting.is_empty() {
        return Err(UiError::new(
            StatusCode::CONFLICT,
            format!("Nothing in plan {id} waits for a decision."),
        ));
    }
    let by = &caller.session.principal;
    for i in waiting {
        if approve {
            st.roster.approve(by, &id, Some(i), reason).await?;
        } else {
            st.roster.reject(by, &id, Some(i), reason).await?;
        }
    }
    Ok(done(
        &format!("/ui/plans/{id}"),
        if approve {
            "Approved."
        } else {
            "Rejected: those actions never run."
        },
    ))
}

pub async fn approve(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Page {
    decide(st, caller, id, f, true).await
}

pub async fn reject(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Page {
    decide(st, caller, id, f, false).await
}

pub async fn apply(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let id = PlanId::new(id);
    reviewed(&st, &id, &f.version).await?;
    let by = caller.session.principal.clone();
    let roster = st.roster.clone();
    let plan_id = id.clone();
    // The one check (its connections re-read) and the run, in a task of
    // their own: a browser going away never stops them halfway.
    let work = tokio::spawn(async move {
        let approved = roster.check(&by, &plan_id, &mut |_, _| {}).await?;
        roster.apply(approved, &mut |_, _| {}).await
    });
    let to = format!("/ui/plans/{id}");
    match tokio::time::timeout(Duration::from_secs(30), work).await {
        Ok(Ok(Ok((report, enqueued)))) => Ok(done(
            &to,
            &format!(
                "Applied: {} done, {} failed, {} held for approval, {} manual tasks.",
                report.applied.values().sum::<usize>(),
                report.failed.len(),
                report.held,
                enqueued.tasks.len()
            ),
        )),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Applying failed; see the server log and the audit log.",
        )),
        Err(_) => Ok(done(
            &to,
            "The plan is being carried out; its state says when it settles.",
        )),
    }
}

// ---------------------------------------------------------------- tasks

#[derive(Template, WebTemplate)]
#[template(path = "tasks.html")]
pub struct TasksPage {
    pub chrome: Chrome,
    pub tasks: Vec<TaskRow>,
    pub all: bool,
}

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    #[serde(default)]
    all: bool,
    done: Option<String>,
}

pub async fn tasks(
    State(st): State<WebState>,
    caller: Caller,
    Query(q): Query<TasksQuery>,
) -> Page {
    let now = now_ms();
    let mut list = st.roster.tasks(q.all).await?;
    // Overdue first, then by due date.
    list.sort_by_key(|t| (t.due_ms.is_none(), t.due_ms, t.created_ms));
    html(TasksPage {
        chrome: Chrome::of(&caller, "tasks").with_flash(q.done.as_ref()),
        tasks: list.iter().map(|t| task_row(t, now)).collect(),
        all: q.all,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "task.html")]
pub struct TaskPage {
    pub chrome: Chrome,
    pub task: TaskRow,
    pub kind: String,
    pub checklist: Vec<String>,
    pub assignee: String,
    pub plan_id: Option<String>,
    pub note: Option<String>,
    pub evidence: Option<String>,
    pub verification: String,
    pub can_complete: bool,
    pub open: bool,
}

pub async fn task(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Page {
    let Some(t) = st.roster.task(&id).await? else {
        return Err(UiError::not_found(format!("No task {id}.")));
    };
    let chrome = Chrome::of(&caller, "tasks").with_flash(flash.done.as_ref());
    let open = matches!(t.state, HumanTaskState::Open | HumanTaskState::Reopened);
    let verification = match (t.state, t.flagged) {
        (HumanTaskState::Verified, _) => "verified: the app's last read confirms the work".into(),
        (HumanTaskState::Done, _) => {
            "reported done: the next read of the app verifies it".to_string()
        }
        (HumanTaskState::Reopened, true) | (HumanTaskState::Open, true) => {
            "reopened: someone said done, but the app's last read disagrees".into()
        }
        (HumanTaskState::Cancelled, _) => "cancelled: no longer needed".into(),
        _ => "open: waiting for someone to do it".into(),
    };
    html(TaskPage {
        can_complete: chrome.can(&caller, Scope::Apply) && open,
        open,
        kind: t.kind.clone(),
        checklist: t.checklist.clone(),
        assignee: t.assignee.clone().unwrap_or_else(|| "anyone".into()),
        plan_id: t.plan_id.clone(),
        note: t.note.clone(),
        evidence: t.evidence.clone(),
        verification,
        task: task_row(&t, now_ms()),
        chrome,
    })
}

/// `POST /ui/tasks/{id}/complete`: multipart (`csrf`, `note`, `file`) or
/// a plain form (`csrf`, `note`, `evidence` text). A file is recorded as
/// `roster task done --evidence FILE` records it: its name, size and
/// SHA-256.
pub async fn complete_task(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Page {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (csrf, note, evidence) = if multipart {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|r| UiError::bad(r.body_text()))?;
        let (mut csrf, mut note, mut evidence) = (String::new(), None, None);
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| UiError::bad(e.body_text()))?
        {
            match field.name() {
                Some("csrf") => {
                    csrf = field
                        .text()
                        .await
                        .map_err(|e| UiError::bad(e.body_text()))?
                }
                Some("note") => {
                    let t = field
                        .text()
                        .await
                        .map_err(|e| UiError::bad(e.body_text()))?;
                    note = Some(t).filter(|t| !t.trim().is_empty());
                }
                Some("file") => {
                    let name = field
                        .file_name()
                        .map(|n| n.replace(['\r', '\n'], " "))
                        .unwrap_or_else(|| "evidence".into());
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| UiError::bad(e.body_text()))?;
                    if !bytes.is_empty() {
                        evidence = Some(format!(
                            "{name} ({} bytes, sha256:{})",
                            bytes.len(),
                            hex::encode(Sha256::digest(&bytes))
                        ));
                    }
                }
                Some("evidence") => {
                    let t = field
                        .text()
                        .await
                        .map_err(|e| UiError::bad(e.body_text()))?;
                    if evidence.is_none() && !t.trim().is_empty() {
                        evidence = Some(t);
                    }
                }
                _ => {}
            }
        }
        (csrf, note, evidence)
    } else {
        #[derive(Deserialize)]
        struct Plain {
            #[serde(default)]
            csrf: String,
            note: Option<String>,
            evidence: Option<String>,
        }
        let Form(p) = Form::<Plain>::from_request(req, &())
            .await
            .map_err(|r| UiError::bad(r.body_text()))?;
        (
            p.csrf,
            p.note.filter(|t| !t.trim().is_empty()),
            p.evidence.filter(|t| !t.trim().is_empty()),
        )
    };
    caller.check_csrf(&csrf)?;
    if st.roster.task(&id).await?.is_none() {
        return Err(UiError::not_found(format!("No task {id}.")));
    }
    st.roster
        .complete_task(&caller.session.principal, &id, note, evidence)
        .await?;
    Ok(done(
        &format!("/ui/tasks/{}", enc(&id)),
        "Reported done: the next read of the app verifies it.",
    ))
}

// ---------------------------------------------------------------- matches

pub struct MatchRow {
    pub id: String,
    pub connection: String,
    pub account: String,
    pub email: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "matches.html")]
pub struct MatchesPage {
    pub chrome: Chrome,
    pub matches: Vec<MatchRow>,
    pub can_resolve: bool,
}

pub async fn matches(
    State(st): State<WebState>,
    caller: Caller,
    Query(flash): Query<Flash>,
) -> Page {
    let queue = st.roster.match_queue().await?;
    let chrome = Chrome::of(&caller, "matches").with_flash(flash.done.as_ref());
    html(MatchesPage {
        can_resolve: chrome.can(&caller, Scope::Apply),
        chrome,
        matches: queue
            .iter()
            .map(|m| MatchRow {
                id: format!("{}:{}", m.connection, m.account),
                connection: m.connection.to_string(),
                account: m.account.clone(),
                email: m.email.clone().unwrap_or_default(),
                kind: m.kind.to_string(),
                detail: m.detail.clone(),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    csrf: String,
    connection: String,
    account: String,
    /// An employee ID, or empty for "no managed person's".
    #[serde(default)]
    employee_id: String,
    #[serde(default)]
    reason: String,
}

pub async fn resolve_match(
    State(st): State<WebState>,
    caller: Caller,
    Form(f): Form<ResolveForm>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let reason = f.reason.trim();
    if reason.is_empty() {
        return Err(UiError::bad("Give a reason: it goes to the audit log."));
    }
    let connection = ConnectionId::new(f.connection.trim());
    let queue = st.roster.match_queue().await?;
    if !queue
        .iter()
        .any(|m| m.connection == connection && m.account == f.account)
    {
        return Err(UiError::not_found(format!(
            "{}:{} is not in the match queue (settled already?).",
            connection, f.account
        )));
    }
    let employee = f.employee_id.trim();
    st.roster
        .resolve_match(
            &caller.session.principal,
            MatchResolution {
                connection,
                account: AccountKey::new(f.account.clone()),
                employee_id: (!employee.is_empty()).then(|| EmployeeId::new(employee)),
                actor: String::new(),
                reason: reason.to_string(),
                at_ms: now_ms(),
            },
        )
        .await?;
    Ok(done("/ui/matches", "Resolved."))
}

// ---------------------------------------------------------------- audit

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub ok: bool,
    pub verify: String,
    pub records: Vec<AuditRow>,
    pub since: String,
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    since: Option<String>,
}

pub async fn audit(
    State(st): State<WebState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Page {
    let since_text = q.since.clone().unwrap_or_default();
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => now_ms() - 7 * 86_400_000,
        Some(s) => roster_engine::reports::parse_since(s)
            .map_err(|e| UiError::bad(format!("{e} (since: 2026-11-25, RFC 3339 or unix ms)")))?,
    };
    let (verification, records) =
        tokio::try_join!(st.roster.audit_verify(), st.roster.audit_export(since))?;
    let verify = if verification.ok {
        match &verification.report {
            Some(r) => format!("The hash chain verifies: {r:?}"),
            None => "The hash chain verifies.".into(),
        }
    } else {
        format!(
            "{}: {}",
            verification.code.as_deref().unwrap_or("AUDIT"),
            verification
                .problem
                .as_deref()
                .unwrap_or("the chain does not verify")
        )
    };
    html(AuditPage {
        chrome: Chrome::of(&caller, "audit"),
        ok: verification.ok,
        verify,
        records: records.iter().rev().take(200).map(audit_row).collect(),
        since: since_text,
    })
}

// ---------------------------------------------------------------- connections

#[derive(Template, WebTemplate)]
#[template(path = "connections.html")]
pub struct ConnectionsPage {
    pub chrome: Chrome,
    pub connections: Vec<ConnRow>,
    pub can_pause: bool,
}

pub async fn connections(
    State(st): State<WebState>,
    caller: Caller,
    Query(flash): Query<Flash>,
) -> Page {
    let list = st.roster.connections().await?;
    let chrome = Chrome::of(&caller, "connections").with_flash(flash.done.as_ref());
    html(ConnectionsPage {
        can_pause: chrome.can(&caller, Scope::Apply),
        chrome,
        connections: list.iter().map(conn_row).collect(),
    })
}

async fn known_connection(st: &WebState, id: &str) -> Result<ConnectionId, UiError> {
    let id = ConnectionId::new(id);
    if st.roster.connections().await?.iter().any(|c| c.id == id) {
        Ok(id)
    } else {
        Err(UiError::not_found(format!("No connection {id}.")))
    }
}

pub async fn pause(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let id = known_connection(&st, &id).await?;
    let reason = Some(f.reason.trim()).filter(|r| !r.is_empty());
    st.roster
        .pause(&caller.session.principal, Some(&id), reason)
        .await?;
    Ok(done(
        "/ui/connections",
        &format!("Writes to {id} are paused."),
    ))
}

pub async fn resume(
    State(st): State<WebState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    caller.check_csrf(&f.csrf)?;
    let id = known_connection(&st, &id).await?;
    st.roster
        .resume(&caller.session.principal, Some(&id))
        .await?;
    Ok(done("/ui/connections", &format!("Writes to {id} resumed.")))
}
