//! Running one runbook for one account in one browser session.
//!
//! # How a step runs
//!
//! 1. `when` is checked against the values extracted so far; a step whose
//!    condition fails is skipped.
//! 2. Interruptions the runbook lists (`[[dismiss]]`, cookie banners) are
//!    clicked away when they show.
//! 3. The element is waited for (present **and** displayed: a spinner
//!    hides the page until it is ready) by the target's locators, the
//!    semantic ones first.
//! 4. On failure the page is re-read: a sign-in page (an expired session)
//!    means signing in again and going back to the last `navigate`; else
//!    the step is tried **once** more. A second failure stops the run.
//!    The confirmation step is never tried twice: a failed confirmation
//!    stops at once, and the next read of the app says what happened.
//! 5. Before the confirmation: a screenshot, always; and an unverified
//!    runbook stops there for a person unless the connection opts in.
//!
//! Every stop carries the checklist (what roster did, what is left) and
//! the screenshots so far.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fantoccini::Client;
use fantoccini::elements::Element;
use roster_catalog::runbook::{Action, Runbook, SECRET_PLACEHOLDERS, Step, Target};
use serde::Serialize;

use crate::connector::{Credentials, SignInMode};
use crate::evidence::{Evidence, EvidenceStore, Rect};
use crate::selector::{fill_target, locators};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step ran, the confirmation included.
    Done,
    /// The runbook is unverified: it ran up to the confirmation, took a
    /// screenshot and stopped for a person.
    AwaitingConfirmation { step: usize },
    /// A step failed twice (or the confirmation once), or sign-in failed.
    Stopped { step: usize, why: String },
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub runbook: String,
    pub outcome: Outcome,
    /// Screenshots, in order.
    pub evidence: Vec<Evidence>,
    /// One line per step run, skipped, retried or failed.
    pub log: Vec<String>,
    /// For a person: each runbook step, marked done where roster did it.
    pub checklist: Vec<String>,
    pub elapsed_ms: u64,
    /// Sign-ins during the run (more than one: a session expired).
    pub sign_ins: u32,
}

impl RunReport {
    /// One paragraph for a task or an error: outcome, screenshots.
    pub fn summary(&self) -> String {
        let what = match &self.outcome {
            Outcome::Done => "completed".to_string(),
            Outcome::AwaitingConfirmation { step } => format!(
                "is unverified: it ran up to the final confirmation (step {}) and stopped there for a person to confirm in the console",
                step + 1
            ),
            Outcome::Stopped { step, why } => {
                format!("stopped at step {}: {why}", step + 1)
            }
        };
        let shots = if self.evidence.is_empty() {
            "no screenshots".to_string()
        } else {
            format!(
                "screenshots: {}",
                self.evidence
                    .iter()
                    .map(|e| format!("{} sha256:{} ({})", e.label, e.sha256, e.path))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        format!("runbook {} {what}; {shots}", self.runbook)
    }
}

/// Runs one runbook.
pub struct Runner<'a> {
    pub runbook: &'a Runbook,
    /// The console's base URL (`{console}`).
    pub console: &'a str,
    pub credentials: &'a Credentials,
    pub signin: SignInMode,
    /// Run an unverified runbook's confirmation too.
    pub run_unverified: bool,
    pub evidence: &'a EvidenceStore,
    /// How long a step waits for its element.
    pub step_timeout: Duration,
}

#[derive(Debug)]
enum StepError {
    /// The element never showed (or a condition never held).
    Missing(String),
    /// The browser refused (intercepted click, stale element, …).
    Browser(String),
    /// A value the step needs is not configured.
    Config(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Missing(s) | StepError::Browser(s) | StepError::Config(s) => f.write_str(s),
        }
    }
}

struct State {
    vars: BTreeMap<String, String>,
    evidence: Vec<Evidence>,
    log: Vec<String>,
    sign_ins: u32,
}

const OPTIONAL_WAIT: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(100);

impl Runner<'_> {
    /// Runs the runbook for the account `email`. `successor`: who takes
    /// over the leaver's approvals (`{successor}`).
    pub async fn run(&self, c: &Client, email: &str, successor: Option<&str>) -> RunReport {
        let started = Instant::now();
        let mut st = State {
            vars: BTreeMap::new(),
            evidence: Vec::new(),
            log: Vec::new(),
            sign_ins: 0,
        };
        st.vars
            .insert("console".into(), self.console.trim_end_matches('/').into());
        st.vars.insert("email".into(), email.to_string());
        st.vars
            .insert("username".into(), self.credentials.username.clone());
        if let Some(u) = &self.credentials.idp_username {
            st.vars.insert("idp_username".into(), u.clone());
        }
        if let Some(s) = successor {
            st.vars.insert("successor".into(), s.to_string());
        }
        let (outcome, reached) = self.steps(c, &mut st).await;
        let checklist = self
            .runbook
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s.action, Action::Extract { .. } | Action::WaitFor { .. }))
            .map(|(i, s)| {
                let line = fill_text(&s.checklist_line(), &st.vars);
                if i < reached {
                    format!("Done by roster: {line}")
                } else {
                    line
                }
            })
            .collect();
        RunReport {
            runbook: self.runbook.id.clone(),
            outcome,
            evidence: st.evidence,
            log: st.log,
            checklist,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            sign_ins: st.sign_ins,
        }
    }

    /// The steps; returns the outcome and the index of the first step not
    /// done.
    async fn steps(&self, c: &Client, st: &mut State) -> (Outcome, usize) {
        let steps = &self.runbook.steps;
        let mut i = 0;
        let mut last_nav = 0;
        let mut retried = BTreeSet::new();
        let mut reauths = 0;
        while i < steps.len() {
            let step = &steps[i];
            if let Some(cond) = &step.when {
                let v = st
                    .vars
                    .get(&cond.var)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                if !cond.holds(v) {
                    st.log.push(format!(
                        "step {}: skipped ({cond} is false: {} = {v})",
                        i + 1,
                        cond.var
                    ));
                    i += 1;
                    continue;
                }
            }
            if step.confirm {
                self.shot(c, st, "before-confirmation").await;
                if !self.runbook.is_verified() && !self.run_unverified {
                    st.log.push(format!(
                        "step {}: stopped before the final confirmation: the runbook is unverified",
                        i + 1
                    ));
                    return (Outcome::AwaitingConfirmation { step: i }, i);
                }
            }
            self.dismiss(c, st).await;
            self.idle(c).await;
            let result = self.exec(c, step, st, false).await;
            match result {
                Ok(()) => {
                    st.log
                        .push(format!("step {}: {}", i + 1, step.action.kind()));
                    if matches!(step.action, Action::Navigate { .. }) {
                        last_nav = i;
                        if self.signed_out(c).await {
                            if let Err(why) = self.sign_in(c, st).await {
                                self.shot(c, st, "sign-in failed").await;
                                return (Outcome::Stopped { step: i, why }, i);
                            }
                            // The console may land elsewhere after sign-in:
                            // go where the runbook meant to be.
                            continue;
                        }
                    }
                    if step.financial {
                        self.shot(c, st, &format!("after step {}", i + 1)).await;
                    }
                    i += 1;
                }
                Err(StepError::Missing(_)) if step.optional => {
                    st.log
                        .push(format!("step {}: optional, not shown: skipped", i + 1));
                    i += 1;
                }
                Err(e) => {
                    st.log.push(format!("step {}: failed: {e}", i + 1));
                    if step.confirm {
                        self.shot(c, st, &format!("failed at step {}", i + 1)).await;
                        return (
                            Outcome::Stopped {
                                step: i,
                                why: format!(
                                    "the final confirmation failed ({e}); not clicked again: the next read of the app says whether it took"
                                ),
                            },
                            i,
                        );
                    }
                    if let StepError::Config(why) = e {
                        self.shot(c, st, &format!("failed at step {}", i + 1)).await;
                        return (Outcome::Stopped { step: i, why }, i);
                    }
                    // Re-read the page: signed out (an expired session)?
                    if self.signed_out(c).await && reauths < 2 {
                        reauths += 1;
                        st.log
                            .push("the console asks to sign in again (session expired)".into());
                        if let Err(why) = self.sign_in(c, st).await {
                            self.shot(c, st, "sign-in failed").await;
                            return (Outcome::Stopped { step: i, why }, i);
                        }
                        retried.clear();
                        i = last_nav;
                        continue;
                    }
                    if !retried.insert(i) {
                        self.shot(c, st, &format!("failed at step {}", i + 1)).await;
                        let what = self.describe(step, &st.vars);
                        return (
                            Outcome::Stopped {
                                step: i,
                                why: format!(
                                    "{what}: {e}, also after re-reading the page; the console may have changed beyond the runbook"
                                ),
                            },
                            i,
                        );
                    }
                    st.log.push(format!(
                        "step {}: re-reading the page and trying once more",
                        i + 1
                    ));
                }
            }
        }
        self.shot(c, st, "done").await;
        (Outcome::Done, steps.len())
    }

    fn describe(&self, step: &Step, vars: &BTreeMap<String, String>) -> String {
        fill_text(&step.checklist_line(), vars)
    }

    /// Waits (up to the step timeout) while the runbook's busy indicator
    /// shows.
    async fn idle(&self, c: &Client) {
        let Some(busy) = &self.runbook.busy else {
            return;
        };
        let deadline = Instant::now() + self.step_timeout;
        while Instant::now() < deadline && find_now(c, busy).await.is_some() {
            tokio::time::sleep(POLL).await;
        }
    }

    async fn signed_out(&self, c: &Client) -> bool {
        let Some(detect) = &self.runbook.signin.detect else {
            return false;
        };
        find_now(c, detect).await.is_some()
    }

    async fn sign_in(&self, c: &Client, st: &mut State) -> Result<(), String> {
        let steps = match self.signin {
            SignInMode::Local => &self.runbook.signin.local,
            SignInMode::Sso => &self.runbook.signin.sso,
        };
        if steps.is_empty() {
            return Err(format!(
                "the runbook has no {} sign-in steps",
                self.signin.as_str()
            ));
        }
        for (k, step) in steps.iter().enumerate() {
            self.dismiss(c, st).await;
            let mut r = self.exec(c, step, st, true).await;
            if matches!(r, Err(StepError::Browser(_))) {
                self.dismiss(c, st).await;
                r = self.exec(c, step, st, true).await;
            }
            match r {
                Ok(()) => {}
                Err(StepError::Missing(_)) if step.optional => {}
                Err(e) => return Err(format!("sign-in step {} failed: {e}", k + 1)),
            }
        }
        // Signed in when the sign-in page is gone.
        let deadline = Instant::now() + self.step_timeout;
        while Instant::now() < deadline {
            if !self.signed_out(c).await {
                st.sign_ins += 1;
                st.log.push(format!("signed in ({})", self.signin.as_str()));
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err("sign-in did not succeed (the console still shows its sign-in page)".into())
    }

    async fn dismiss(&self, c: &Client, st: &mut State) {
        for t in &self.runbook.dismiss {
            if let Some(el) = find_now(c, t).await
                && el.click().await.is_ok()
            {
                st.log.push(format!("dismissed {}", t.describe()));
                settle(c).await;
            }
        }
    }

    /// Fills `{placeholders}`; secrets only in sign-in fills.
    fn value(&self, template: &str, st: &State, signin: bool) -> Result<String, StepError> {
        let mut out = template.to_string();
        for p in roster_catalog::runbook::placeholders(template) {
            let v = if SECRET_PLACEHOLDERS.contains(&p.as_str()) {
                if !signin {
                    return Err(StepError::Config(format!("{{{p}}} outside sign-in")));
                }
                match p.as_str() {
                    "password" => self.credentials.password.expose_secret().to_string(),
                    "idp_password" => self
                        .credentials
                        .idp_password
                        .as_ref()
                        .map(|s| s.expose_secret().to_string())
                        .ok_or_else(|| StepError::Config("no IdP password is configured".into()))?,
                    _ => {
                        let seed = self.credentials.totp_seed.as_ref().ok_or_else(|| {
                            StepError::Config(
                                "the console asks for a TOTP code; no TOTP seed is configured"
                                    .into(),
                            )
                        })?;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        crate::totp_code(seed.expose_secret(), now)
                            .map_err(|e| StepError::Config(e.to_string()))?
                    }
                }
            } else {
                st.vars.get(&p).cloned().ok_or_else(|| {
                    StepError::Config(format!(
                        "no value for {{{p}}} (configure it for the connection)"
                    ))
                })?
            };
            out = out.replace(&format!("{{{p}}}"), &v);
        }
        Ok(out)
    }

    async fn exec(
        &self,
        c: &Client,
        step: &Step,
        st: &mut State,
        signin: bool,
    ) -> Result<(), StepError> {
        let wait = if step.optional {
            OPTIONAL_WAIT
        } else {
            self.step_timeout
        };
        let vars = st.vars.clone();
        let fill = |s: &str| fill_text(s, &vars);
        match &step.action {
            Action::Navigate { url } => {
                let url = self.value(url, st, false)?;
                c.goto(&url)
                    .await
                    .map_err(|e| StepError::Browser(format!("cannot open {url}: {e}")))
            }
            Action::Fill { target, value } => {
                let t = fill_target(target, &fill);
                let v = self.value(value, st, signin)?;
                let el = find(c, &t, wait).await?;
                el.clear()
                    .await
                    .map_err(|e| StepError::Browser(e.to_string()))?;
                el.send_keys(&v).await.map_err(|e| {
                    StepError::Browser(format!("cannot type into {}: {e}", t.describe()))
                })
            }
            Action::Select { target, value } => {
                let t = fill_target(target, &fill);
                let v = self.value(value, st, false)?;
                let el = find(c, &t, wait).await?;
                let l = crate::selector::lit(&v);
                let opt = el
                    .find(fantoccini::Locator::XPath(&format!(
                        ".//option[@value={l} or contains(normalize-space(.),{l})]"
                    )))
                    .await
                    .map_err(|_| {
                        StepError::Missing(format!("{} has no option {v:?}", t.describe()))
                    })?;
                opt.click()
                    .await
                    .map_err(|e| StepError::Browser(e.to_string()))
            }
            Action::Click { target } => {
                let t = fill_target(target, &fill);
                let el = find(c, &t, wait).await?;
                mark(c).await;
                el.click().await.map_err(|e| {
                    StepError::Browser(format!("cannot click {}: {e}", t.describe()))
                })?;
                settle(c).await;
                Ok(())
            }
            Action::ClickEach { target, max } => {
                let t = fill_target(target, &fill);
                let mut n = 0;
                while n < *max {
                    let Ok(el) = find(c, &t, OPTIONAL_WAIT).await else {
                        break;
                    };
                    mark(c).await;
                    el.click().await.map_err(|e| {
                        StepError::Browser(format!("cannot click {}: {e}", t.describe()))
                    })?;
                    settle(c).await;
                    n += 1;
                }
                if n == 0 {
                    return Err(StepError::Missing(format!(
                        "no {} on the page",
                        t.describe()
                    )));
                }
                st.log.push(format!("clicked {n} × {}", t.describe()));
                Ok(())
            }
            Action::WaitFor { target } => {
                let t = fill_target(target, &fill);
                find(c, &t, wait).await.map(|_| ())
            }
            Action::Assert { target, text } => {
                let want = text.as_deref().map(|t| fill_text(t, &vars));
                let deadline = Instant::now() + wait;
                let t = target.as_ref().map(|t| fill_target(t, &fill));
                loop {
                    let got = match &t {
                        Some(t) => match find_now(c, t).await {
                            Some(el) => el.text().await.ok(),
                            None => None,
                        },
                        None => match c.find(fantoccini::Locator::Css("body")).await {
                            Ok(b) => b.text().await.ok(),
                            Err(_) => None,
                        },
                    };
                    let ok = match (&got, &want) {
                        (Some(g), Some(w)) => g.contains(w.as_str()),
                        (Some(_), None) => true,
                        _ => false,
                    };
                    if ok {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        let what = t
                            .as_ref()
                            .map(Target::describe)
                            .unwrap_or_else(|| "the page".into());
                        return Err(StepError::Missing(match (got, want) {
                            (Some(g), Some(w)) => format!("{what} shows {g:?}, not {w:?}"),
                            _ => format!("no {what} on the page"),
                        }));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Action::Extract { target, into } => {
                let t = fill_target(target, &fill);
                let el = find(c, &t, wait).await?;
                let text = el
                    .text()
                    .await
                    .map_err(|e| StepError::Browser(e.to_string()))?;
                let n: String = text
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if n.is_empty() {
                    return Err(StepError::Missing(format!(
                        "{} shows no number ({text:?})",
                        t.describe()
                    )));
                }
                st.vars.insert(into.clone(), n);
                Ok(())
            }
        }
    }

    /// A screenshot with the runbook's regions blacked out, kept as
    /// evidence. One that cannot be redacted is not kept.
    async fn shot(&self, c: &Client, st: &mut State, label: &str) {
        self.idle(c).await;
        let png = match c.screenshot().await {
            Ok(p) => p,
            Err(e) => {
                st.log.push(format!("screenshot {label}: failed: {e}"));
                return;
            }
        };
        let rects = match redact_rects(c, &self.runbook.redact).await {
            Ok(r) => r,
            Err(e) => {
                st.log.push(format!(
                    "screenshot {label}: not kept: the regions to redact could not be found ({e})"
                ));
                return;
            }
        };
        match self.evidence.store(label, &png, &rects) {
            Ok(e) => st.evidence.push(e),
            Err(e) => st.log.push(format!("screenshot {label}: {e}")),
        }
    }
}

fn fill_text(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = s.to_string();
    for p in roster_catalog::runbook::placeholders(s) {
        if SECRET_PLACEHOLDERS.contains(&p.as_str()) {
            continue;
        }
        if let Some(v) = vars.get(&p) {
            out = out.replace(&format!("{{{p}}}"), v);
        }
    }
    out
}

/// The first displayed element for `t`, right now.
async fn find_now(c: &Client, t: &Target) -> Option<Element> {
    for loc in locators(t) {
        if let Ok(els) = c.find_all(loc.as_locator()).await {
            for el in els {
                if el.is_displayed().await.unwrap_or(false) {
                    return Some(el);
                }
            }
        }
    }
    None
}

/// The first displayed element for `t`, waiting up to `wait`.
async fn find(c: &Client, t: &Target, wait: Duration) -> Result<Element, StepError> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(el) = find_now(c, t).await {
            return Ok(el);
        }
        if Instant::now() >= deadline {
            return Err(StepError::Missing(format!(
                "no {} on the page after {} ms",
                t.describe(),
                wait.as_millis()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Marks the current document, so [`settle`] can tell a new one loaded.
async fn mark(c: &Client) {
    let _ = c.execute("window.__roster_mark = 1;", vec![]).await;
}

/// After a click: waits (at most 1.5 s) for a navigation it started to
/// finish loading.
async fn settle(c: &Client) {
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        let v = c
            .execute(
                "return [window.__roster_mark === 1, document.readyState];",
                vec![],
            )
            .await;
        if let Ok(serde_json::Value::Array(a)) = v
            && a.first().and_then(|m| m.as_bool()) == Some(false)
            && a.get(1).and_then(|s| s.as_str()) == Some("complete")
        {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn redact_rects(c: &Client, targets: &[Target]) -> Result<Vec<Rect>, String> {
    let mut out = Vec::new();
    for t in targets {
        for loc in locators(t) {
            let script = format!(
                "return {}.map(function(e){{var r=e.getBoundingClientRect();var d=window.devicePixelRatio||1;return [r.x*d,r.y*d,r.width*d,r.height*d]}});",
                loc.js_nodes()
            );
            let v = c
                .execute(&script, vec![])
                .await
                .map_err(|e| e.to_string())?;
            let rects = v.as_array().cloned().unwrap_or_default();
            for r in rects {
                let n: Vec<f64> = r
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                    .unwrap_or_default();
                if let [x, y, w, h] = n[..]
                    && w > 0.0
                    && h > 0.0
                {
                    out.push(Rect { x, y, w, h });
                }
            }
        }
    }
    Ok(out)
}
