//! Browser runbooks as data: how roster drives an admin console that has
//! no API, one file per app and operation under `catalog/runbooks/`
//! (`spendesk-deactivate.toml`).
//!
//! A runbook is a list of steps (`navigate`, `fill`, `select`, `click`,
//! `click_each`, `wait_for`, `assert`, `extract`), each naming its element
//! the way a person sees it: by ARIA role and accessible name, by label,
//! or by visible text. CSS is a fallback next to one of those, never alone
//! (`CAT-0012`): a redesign that keeps names and labels keeps the runbook
//! working.
//!
//! ```toml
//! app = "spendesk"
//! operation = "deactivate"
//! title = "Deactivate a member in Settings → Members"
//! source = "roster"
//!
//! [verified]          # absent: unverified (see below)
//! at = "2026-11-30"
//! by = "ops@acme.example"
//!
//! [signin]
//! detect = { role = "heading", name = "Sign in to Spendesk" }
//! [[signin.local]]
//! fill = { label = "Email" }
//! value = "{username}"
//!
//! [[dismiss]]         # clicked whenever present (cookie banners)
//! click = { role = "button", name = "Accept all cookies" }
//!
//! busy = { role = "status", text = "Loading" }   # waited out before each step
//!
//! [[redact]]          # blacked out of every screenshot before storage
//! css = "[data-pan]"
//! text = "card number"
//!
//! [[steps]]
//! navigate = "{console}/settings/members?q={email}"
//! [[steps]]
//! extract = { id = "approvals-count" }
//! into = "approvals"
//! [[steps]]
//! click = { role = "button", name = "Reassign approvals" }
//! when = "approvals > 0"
//! financial = true
//! [[steps]]
//! click = { role = "button", name = "Confirm deactivation" }
//! confirm = true
//! ```
//!
//! # Rules the loader checks
//!
//! * `app` is a catalog record that offers the `browser` path for
//!   `operation` (`CAT-0013`); the file is named `{app}-{operation}.toml`.
//! * Exactly one action per step; `fill` and `select` have a `value`,
//!   `extract` an `into`, `assert` a target or `text` (`CAT-0011`).
//! * Exactly one `confirm = true` step, a `click`: the final, irreversible
//!   click. An unverified runbook stops before it (`CAT-0011`).
//! * `when` reads a value an earlier step extracted (`CAT-0011`).
//! * Placeholders are known ones; the secret ones (`{password}`,
//!   `{totp}`, `{idp_password}`) appear only in sign-in `fill` values
//!   (`CAT-0014`): a runbook cannot type a secret into a page that is not
//!   the sign-in.
//!
//! # Verified and unverified
//!
//! A runbook is unverified until it has run against a real tenant and the
//! catalog records when and by whom (`[verified]`). An unverified runbook
//! runs up to its `confirm` step, takes a screenshot and stops for a
//! person to confirm in the console, unless the connection opts in.

use std::collections::BTreeSet;

use roster_core::Operation;
use serde::{Deserialize, Serialize};

/// Where a runbook came from and who last ran it against a real tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verified {
    /// `YYYY-MM-DD`.
    pub at: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How a step finds its element. At least one of role (+ name), label,
/// text or id; `css` only as a fallback beside one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// ARIA role: `button`, `link`, `heading`, `dialog`, `alert`,
    /// `status`, `textbox`, `combobox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The accessible name (with `role`); exact after trimming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A form control by its label (`<label>` or `aria-label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// An element whose own visible text contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A stable element id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A CSS selector, tried after the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css: Option<String>,
}

pub const ROLES: [&str; 9] = [
    "button", "link", "heading", "dialog", "alert", "status", "textbox", "combobox", "region",
];

impl Target {
    /// A short human description: `button "Deactivate member"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.role {
            match &self.name {
                Some(n) => parts.push(format!("{r} {n:?}")),
                None => parts.push(r.clone()),
            }
        }
        if let Some(l) = &self.label {
            parts.push(format!("field labelled {l:?}"));
        }
        if let Some(t) = &self.text {
            parts.push(format!("text {t:?}"));
        }
        if let Some(i) = &self.id {
            parts.push(format!("#{i}"));
        }
        if let Some(c) = &self.css {
            parts.push(format!("css {c:?}"));
        }
        parts.join(" / ")
    }

    fn semantic(&self) -> bool {
        self.role.is_some() || self.label.is_some() || self.text.is_some() || self.id.is_some()
    }

    fn strings(&self) -> impl Iterator<Item = &String> {
        [&self.name, &self.label, &self.text, &self.id, &self.css]
            .into_iter()
            .flatten()
    }
}

/// What one step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    Navigate {
        url: String,
    },
    Fill {
        target: Target,
        value: String,
    },
    Select {
        target: Target,
        value: String,
    },
    Click {
        target: Target,
    },
    /// Clicks every element that matches, one at a time, re-reading the
    /// page after each, until none is left (at most `max`).
    ClickEach {
        target: Target,
        max: u32,
    },
    WaitFor {
        target: Target,
    },
    /// The target is present and, with `text`, contains it.
    Assert {
        target: Option<Target>,
        text: Option<String>,
    },
    /// The first whole number in the target's text, kept as `into`.
    Extract {
        target: Target,
        into: String,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Navigate { .. } => "navigate",
            Action::Fill { .. } => "fill",
            Action::Select { .. } => "select",
            Action::Click { .. } => "click",
            Action::ClickEach { .. } => "click_each",
            Action::WaitFor { .. } => "wait_for",
            Action::Assert { .. } => "assert",
            Action::Extract { .. } => "extract",
        }
    }
    pub fn target(&self) -> Option<&Target> {
        match self {
            Action::Navigate { .. } => None,
            Action::Assert { target, .. } => target.as_ref(),
            Action::Fill { target, .. }
            | Action::Select { target, .. }
            | Action::Click { target }
            | Action::ClickEach { target, .. }
            | Action::WaitFor { target }
            | Action::Extract { target, .. } => Some(target),
        }
    }
    /// Whether it changes anything in the app (a click or a typed value
    /// that a later click submits).
    pub fn acts(&self) -> bool {
        matches!(self, Action::Click { .. } | Action::ClickEach { .. })
    }
}

/// `when = "approvals > 0"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub var: String,
    pub op: String,
    pub value: i64,
}

impl Condition {
    pub fn parse(s: &str) -> Option<Condition> {
        let mut it = s.split_whitespace();
        let (var, op, value) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some()
            || !var
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            || !["<", "<=", "==", "!=", ">=", ">"].contains(&op)
        {
            return None;
        }
        Some(Condition {
            var: var.to_string(),
            op: op.to_string(),
            value: value.parse().ok()?,
        })
    }
    pub fn holds(&self, v: i64) -> bool {
        match self.op.as_str() {
            "<" => v < self.value,
            "<=" => v <= self.value,
            "==" => v == self.value,
            "!=" => v != self.value,
            ">=" => v >= self.value,
            _ => v > self.value,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.var, self.op, self.value)
    }
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub action: Action,
    /// Run only when this holds.
    pub when: Option<Condition>,
    /// A missing element skips the step instead of failing it.
    pub optional: bool,
    /// The final, irreversible click.
    pub confirm: bool,
    /// Moves money or spending power (reassigns approvals, blocks cards):
    /// waits for a person's approval unless the connection says otherwise.
    pub financial: bool,
    /// The checklist line a person reads when the runbook hands over.
    pub say: Option<String>,
}

impl Step {
    /// What a person would do, for checklists.
    pub fn checklist_line(&self) -> String {
        if let Some(s) = &self.say {
            return s.clone();
        }
        let what = match &self.action {
            Action::Navigate { url } => format!("Open {url}"),
            Action::Fill { target, .. } => format!("Fill in {}", target.describe()),
            Action::Select { target, value } => format!("Choose {value} in {}", target.describe()),
            Action::Click { target } => format!("Click {}", target.describe()),
            Action::ClickEach { target, .. } => format!("Click every {}", target.describe()),
            Action::WaitFor { target } => format!("Wait for {}", target.describe()),
            Action::Assert { target, text } => format!(
                "Check {}{}",
                target.as_ref().map(Target::describe).unwrap_or_default(),
                text.as_ref()
                    .map(|t| format!(" shows {t:?}"))
                    .unwrap_or_default()
            ),
            Action::Extract { target, into } => format!("Note {into} from {}", target.describe()),
        };
        match &self.when {
            Some(c) => format!("{what} (when {c})"),
            None => what,
        }
    }
}

/// How to sign in, and how to tell the console wants it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SignIn {
    /// Present on the console's sign-in page (a session that expired
    /// lands there too).
    pub detect: Option<Target>,
    /// With the console's own login (and TOTP).
    pub local: Vec<Step>,
    /// Through the company's IdP.
    pub sso: Vec<Step>,
}

/// One runbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Runbook {
    /// `spendesk-deactivate`.
    pub id: String,
    pub app: String,
    pub operation: Operation,
    pub title: String,
    /// A source key of the app's record.
    pub source: String,
    pub verified: Option<Verified>,
    pub signin: SignIn,
    pub dismiss: Vec<Target>,
    pub redact: Vec<Target>,
    /// Shown while the console is busy (a spinner): every step and
    /// screenshot waits until it is gone.
    pub busy: Option<Target>,
    pub steps: Vec<Step>,
    /// The file it came from.
    pub origin: String,
}

impl Runbook {
    pub fn is_verified(&self) -> bool {
        self.verified.is_some()
    }
    /// The index of the `confirm` step.
    pub fn confirm_index(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.confirm)
    }
    pub fn has_financial_steps(&self) -> bool {
        self.steps.iter().any(|s| s.financial)
    }
    /// The whole runbook as a person's checklist.
    pub fn checklist(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !matches!(s.action, Action::Extract { .. } | Action::WaitFor { .. }))
            .map(Step::checklist_line)
            .collect()
    }
}

/// The "Browser runbooks" section of an app's card: what each runbook
/// does, whether it is verified, what waits for a person.
pub fn render_runbooks(books: &[&Runbook], browser_enabled: bool) -> String {
    if books.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nBrowser runbooks (the browser path; data in catalog/runbooks/):\n");
    for rb in books {
        out.push_str(&format!("  {}: {}\n", rb.id, rb.title));
        out.push_str(&format!(
            "    {} steps; elements found by role, label and text (CSS only as a fallback)\n",
            rb.steps.len()
        ));
        match &rb.verified {
            Some(v) => out.push_str(&format!(
                "    verified against a real tenant on {} by {}: runs to the end\n",
                v.at, v.by
            )),
            None => out.push_str(
                "    unverified: runs up to the final confirmation, screenshots it and stops there for a person (unless the connection sets run_unverified = true)\n",
            ),
        }
        if rb.has_financial_steps() {
            out.push_str(
                "    moves money first (reassigns approvals, blocks cards): waits for approval (guard financial_steps)\n",
            );
        }
        out.push_str(
            "    a step that fails after one re-read stops the run; the action becomes a person's task with the checklist and screenshots\n",
        );
    }
    if !browser_enabled {
        out.push_str(
            "  Off for this connection: configure [connections.NAME.browser] with an admin login (or pass --browser here).\n",
        );
    }
    out
}

// ------------------------------------------------------------- file shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    navigate: Option<String>,
    fill: Option<Target>,
    select: Option<Target>,
    click: Option<Target>,
    click_each: Option<Target>,
    wait_for: Option<Target>,
    assert: Option<Target>,
    extract: Option<Target>,
    value: Option<String>,
    text: Option<String>,
    into: Option<String>,
    max: Option<u32>,
    when: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    financial: bool,
    say: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignIn {
    detect: Option<Target>,
    #[serde(default)]
    local: Vec<RawStep>,
    #[serde(default)]
    sso: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    app: String,
    operation: String,
    title: String,
    source: String,
    verified: Option<Verified>,
    signin: Option<RawSignIn>,
    #[serde(default)]
    dismiss: Vec<RawDismiss>,
    #[serde(default)]
    redact: Vec<Target>,
    busy: Option<Target>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDismiss {
    click: Target,
}

/// Placeholders every step may use.
pub const PLACEHOLDERS: [&str; 5] = ["console", "email", "username", "idp_username", "successor"];
/// Placeholders that stand for secrets: only in sign-in `fill` values.
pub const SECRET_PLACEHOLDERS: [&str; 3] = ["password", "totp", "idp_password"];

/// One problem with a runbook file: (field, code, reason).
pub(crate) type RunbookProblem = (Option<String>, &'static str, String);

pub(crate) const SHAPE: &str = "CAT-0011";
pub(crate) const CSS_ONLY: &str = "CAT-0012";
pub(crate) const SECRET_OUTSIDE_SIGNIN: &str = "CAT-0014";

/// Parses one runbook file (named `{app}-{operation}.toml`). Checks the
/// runbook on its own; whether the app offers a browser path is the
/// loader's (it needs the catalog).
pub(crate) fn parse(file: &str, text: &str, problems: &mut Vec<RunbookProblem>) -> Option<Runbook> {
    let raw: RawRunbook = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            problems.push((None, SHAPE, e.message().trim().to_string()));
            return None;
        }
    };
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let Some(operation) = Operation::parse(&raw.operation) else {
        problems.push((
            Some("operation".into()),
            SHAPE,
            format!("unknown operation {:?}", raw.operation),
        ));
        return None;
    };
    let want = format!("{}-{}", raw.app, operation.as_str());
    if stem != want {
        problems.push((
            None,
            SHAPE,
            format!("the file of the {want} runbook must be named {want}.toml"),
        ));
    }
    if let Some(v) = &raw.verified
        && (!is_date(&v.at) || v.by.trim().is_empty())
    {
        problems.push((
            Some("verified".into()),
            SHAPE,
            "needs at = \"YYYY-MM-DD\" and by = who ran it against a real tenant".into(),
        ));
    }
    let mut vars = BTreeSet::new();
    let mut steps_of =
        |list: Vec<RawStep>, field: &str, signin: bool, problems: &mut Vec<RunbookProblem>| {
            let mut out = Vec::new();
            for (i, r) in list.into_iter().enumerate() {
                let f = format!("{field}[{i}]");
                if let Some(s) = step(r, &f, signin, &mut vars, problems) {
                    out.push(s);
                }
            }
            out
        };
    let mut signin = SignIn::default();
    if let Some(s) = raw.signin {
        signin.detect = s.detect;
        signin.local = steps_of(s.local, "signin.local", true, problems);
        signin.sso = steps_of(s.sso, "signin.sso", true, problems);
        if signin.detect.is_none() && !(signin.local.is_empty() && signin.sso.is_empty()) {
            problems.push((
                Some("signin.detect".into()),
                SHAPE,
                "sign-in steps need `detect`: what shows the console wants a sign-in".into(),
            ));
        }
    }
    let steps = steps_of(raw.steps, "steps", false, problems);
    let confirms: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.confirm)
        .map(|(i, _)| i)
        .collect();
    match confirms.as_slice() {
        [i] if matches!(steps[*i].action, Action::Click { .. }) => {}
        [i] => problems.push((
            Some(format!("steps[{i}]")),
            SHAPE,
            "the confirm step must be a click".into(),
        )),
        _ => problems.push((
            Some("steps".into()),
            SHAPE,
            format!(
                "exactly one step must be the final confirmation (confirm = true); found {}",
                confirms.len()
            ),
        )),
    }
    let check_target = |t: &Target, field: &str, problems: &mut Vec<RunbookProblem>| {
        target_problems(t, field, problems);
    };
    for (i, t) in raw.dismiss.iter().enumerate() {
        check_target(&t.click, &format!("dismiss[{i}]"), problems);
    }
    if let Some(b) = &raw.busy {
        check_target(b, "busy", problems);
    }
    // What to black out may be named by CSS alone (it is never clicked);
    // a page without a match has nothing of that kind on it.
    for (i, t) in raw.redact.iter().enumerate() {
        if t.strings().next().is_none() && t.role.is_none() {
            problems.push((
                Some(format!("redact[{i}]")),
                SHAPE,
                "name what to black out (css, id, role, label or text)".into(),
            ));
        }
    }
    Some(Runbook {
        id: want,
        app: raw.app,
        operation,
        title: raw.title,
        source: raw.source,
        verified: raw.verified,
        signin,
        dismiss: raw.dismiss.into_iter().map(|d| d.click).collect(),
        redact: raw.redact,
        busy: raw.busy,
        steps,
        origin: file.to_string(),
    })
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn target_problems(t: &Target, field: &str, problems: &mut Vec<RunbookProblem>) {
    if !t.semantic() {
        let code = if t.css.is_some() { CSS_ONLY } else { SHAPE };
        problems.push((
            Some(field.to_string()),
            code,
            "name the element by role and name, label, text or id; css only as a fallback beside one of them".into(),
        ));
    }
    if let Some(r) = &t.role
        && !ROLES.contains(&r.as_str())
    {
        problems.push((
            Some(format!("{field}.role")),
            SHAPE,
            format!("unknown role {r:?}; known: {}", ROLES.join(", ")),
        ));
    }
    if t.name.is_some() && t.role.is_none() {
        problems.push((
            Some(format!("{field}.name")),
            SHAPE,
            "name goes with a role".into(),
        ));
    }
}

/// The `{names}` in a template.
pub fn placeholders(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(rest[start + 1..start + len].to_string());
        rest = &rest[start + len + 1..];
    }
    out
}

fn step(
    r: RawStep,
    field: &str,
    signin: bool,
    vars: &mut BTreeSet<String>,
    problems: &mut Vec<RunbookProblem>,
) -> Option<Step> {
    let mut bad = |why: String| problems.push((Some(field.to_string()), SHAPE, why));
    let count = [
        r.navigate.is_some(),
        r.fill.is_some(),
        r.select.is_some(),
        r.click.is_some(),
        r.click_each.is_some(),
        r.wait_for.is_some(),
        r.assert.is_some() || (r.text.is_some() && r.extract.is_none()),
        r.extract.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        bad(format!(
            "a step does exactly one of navigate, fill, select, click, click_each, wait_for, assert, extract ({count} given)"
        ));
        return None;
    }
    let action = if let Some(url) = r.navigate {
        Action::Navigate { url }
    } else if let Some(target) = r.fill {
        let Some(value) = r.value else {
            bad("fill needs a value".into());
            return None;
        };
        Action::Fill { target, value }
    } else if let Some(target) = r.select {
        let Some(value) = r.value else {
            bad("select needs a value".into());
            return None;
        };
        Action::Select { target, value }
    } else if let Some(target) = r.click {
        Action::Click { target }
    } else if let Some(target) = r.click_each {
        Action::ClickEach {
            target,
            max: r.max.unwrap_or(20),
        }
    } else if let Some(target) = r.wait_for {
        Action::WaitFor { target }
    } else if let Some(target) = r.extract {
        let Some(into) = r.into else {
            bad("extract needs `into`: the name of the value".into());
            return None;
        };
        vars.insert(into.clone());
        Action::Extract { target, into }
    } else {
        Action::Assert {
            target: r.assert,
            text: r.text,
        }
    };
    if let Some(t) = action.target() {
        target_problems(t, field, problems);
    }
    let when = match r.when.as_deref() {
        None => None,
        Some(w) => match Condition::parse(w) {
            Some(c) if vars.contains(&c.var) => Some(c),
            Some(c) => {
                problems.push((
                    Some(format!("{field}.when")),
                    SHAPE,
                    format!("{:?} is not extracted by an earlier step", c.var),
                ));
                None
            }
            None => {
                problems.push((
                    Some(format!("{field}.when")),
                    SHAPE,
                    format!("expected `name OP number` (OP one of < <= == != >= >), got {w:?}"),
                ));
                None
            }
        },
    };
    // Placeholders: known ones, and the secret ones only in sign-in fills.
    let mut texts: Vec<(&str, &String)> = Vec::new();
    match &action {
        Action::Navigate { url } => texts.push(("navigate", url)),
        Action::Fill { value, .. } | Action::Select { value, .. } => texts.push(("value", value)),
        Action::Assert { text: Some(t), .. } => texts.push(("text", t)),
        _ => {}
    }
    let target_strings: Vec<&String> = action
        .target()
        .map(|t| t.strings().collect())
        .unwrap_or_default();
    for s in &target_strings {
        texts.push(("target", s));
    }
    if let Some(say) = &r.say {
        texts.push(("say", say));
    }
    for (what, s) in texts {
        for p in placeholders(s) {
            if SECRET_PLACEHOLDERS.contains(&p.as_str()) {
                if !(signin && what == "value" && matches!(action, Action::Fill { .. })) {
                    problems.push((
                        Some(field.to_string()),
                        SECRET_OUTSIDE_SIGNIN,
                        format!("{{{p}}} is a secret: only a sign-in fill may type it"),
                    ));
                }
            } else if !PLACEHOLDERS.contains(&p.as_str()) && !vars.contains(&p) {
                problems.push((
                    Some(field.to_string()),
                    SHAPE,
                    format!(
                        "unknown placeholder {{{p}}}; known: {}",
                        PLACEHOLDERS.join(", ")
                    ),
                ));
            }
        }
    }
    if r.confirm && signin {
        problems.push((
            Some(field.to_string()),
            SHAPE,
            "a sign-in step cannot be the final confirmation".into(),
        ));
    }
    if r.financial && !action.acts() {
        problems.push((
            Some(field.to_string()),
            SHAPE,
            "financial marks a click that moves money or spending power".into(),
        ));
    }
    if r.max.is_some() && !matches!(action, Action::ClickEach { .. }) {
        problems.push((
            Some(format!("{field}.max")),
            SHAPE,
            "max goes with click_each".into(),
        ));
    }
    Some(Step {
        action,
        when,
        optional: r.optional,
        confirm: r.confirm,
        financial: r.financial,
        say: r.say,
    })
}
