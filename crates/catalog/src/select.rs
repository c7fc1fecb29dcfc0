//! Strategy selection: which path roster uses for an operation in an app.
//!
//! [`select_path`] is a pure function of the catalog record, the company's
//! [`ConnectionSettings`] and the operation. It walks [`Path::PREFERENCE`]
//! (scim > api > idp > csv > jit > browser > manual) and takes the first
//! path the app offers for the operation whose conditions all hold:
//!
//! * `plans`: the configured plan tier is one of them (case-insensitive);
//! * `idps`: the configured IdP is one of them;
//! * `credentials`: at least one of the kinds is configured;
//! * `browser` paths additionally need `browser_enabled`.
//!
//! Manual always holds, so selection never fails. The result explains the
//! choice, every better-ranked path that was passed over and why, and the
//! worse-ranked paths that would also work (the fallbacks an executor may
//! use when the chosen path errors).

use std::collections::BTreeSet;

use roster_core::Operation;
use serde::{Deserialize, Serialize};

use crate::model::{App, CredentialKind, Path, PathOffer, Tri};

/// What a company has set up for one app: its plan tier, the IdP roster is
/// connected to, the credentials it holds and whether roster may drive the
/// admin console. Lives in the config file:
///
/// ```toml
/// [connections.bill-spend-expense]
/// plan = "enterprise"
/// idp = "okta"
/// credentials = ["api-token"]
/// browser_enabled = false
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The app's plan tier as the vendor names it (`enterprise`, `team`).
    pub plan: Option<String>,
    /// Id of the IdP roster is connected to and can assign this app through
    /// (`okta`, `entra-id`, `onelogin`, `google-workspace`).
    pub idp: Option<String>,
    pub credentials: BTreeSet<CredentialKind>,
    pub browser_enabled: bool,
}

impl ConnectionSettings {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
        self
    }

    pub fn with_idp(mut self, idp: impl Into<String>) -> Self {
        self.idp = Some(idp.into());
        self
    }

    pub fn with_credential(mut self, kind: CredentialKind) -> Self {
        self.credentials.insert(kind);
        self
    }

    pub fn with_browser(mut self, enabled: bool) -> Self {
        self.browser_enabled = enabled;
        self
    }

    /// What path selection sees of a configured connection to `app`: its
    /// plan tier and IdP, and the credential kinds its one secret (if it
    /// holds one) stands for, which the record says through
    /// [`App::secret_kinds`] for the connection's `path` (or the best path
    /// that needs a credential). Browser runbooks stay off.
    pub fn of_connection(
        app: &App,
        plan: Option<String>,
        idp: Option<String>,
        path: Option<&str>,
        holds_secret: bool,
    ) -> Self {
        let mut conn = ConnectionSettings {
            plan,
            idp,
            ..ConnectionSettings::default()
        };
        if holds_secret {
            conn.credentials
                .extend(app.secret_kinds(path.and_then(Path::parse)));
        }
        conn
    }

    /// A one-line summary for cards and logs.
    pub fn describe(&self) -> String {
        let creds = if self.credentials.is_empty() {
            "none".to_string()
        } else {
            self.credentials
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "plan={}, idp={}, credentials={}, browser={}",
            self.plan.as_deref().unwrap_or("unset"),
            self.idp.as_deref().unwrap_or("none"),
            creds,
            if self.browser_enabled { "on" } else { "off" }
        )
    }
}

/// The outcome of [`select_path`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathChoice {
    pub op: Operation,
    pub path: Path,
    /// The connector implementation the chosen offer names (see
    /// [`PathOffer::connector`]); `None` when roster cannot drive the path
    /// itself (csv, jit, browser, manual, or an offer naming none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Why this path, in a sentence.
    pub reason: String,
    /// Where the catalog says the path exists (a seed file or document
    /// address), `None` for a manual fallback without a checklist source.
    pub source: Option<String>,
    /// Better-ranked paths that were passed over, best first, each with why.
    pub rejected: Vec<(Path, String)>,
    /// Worse-ranked paths that would also work, best first; always ends
    /// with `manual` unless manual was chosen.
    pub alternatives: Vec<(Path, String)>,
}

/// Picks the path for `op` in `app` under `conn`; see the module docs.
pub fn select_path(app: &App, conn: &ConnectionSettings, op: Operation) -> PathChoice {
    let mut chosen: Option<(Path, String, Option<String>, Option<String>)> = None;
    let mut rejected = Vec::new();
    let mut alternatives = Vec::new();

    for path in Path::PREFERENCE {
        if path == Path::Manual {
            break;
        }
        let offers: Vec<&PathOffer> = app
            .paths
            .iter()
            .filter(|o| o.path == path && o.ops.contains(&op))
            .collect();
        if offers.is_empty() {
            if chosen.is_none() {
                rejected.push((path, not_offered(app, path, op)));
            }
            continue;
        }
        let mut failures: Vec<String> = Vec::new();
        let mut holds = None;
        for offer in offers {
            match check(offer, conn) {
                Ok(ctx) => {
                    holds = Some((offer, ctx));
                    break;
                }
                Err(why) => {
                    if !failures.contains(&why) {
                        failures.push(why);
                    }
                }
            }
        }
        match (holds, chosen.is_some()) {
            (Some((offer, ctx)), false) => {
                let reason = fill(&offer.reason, app, &ctx);
                chosen = Some((
                    path,
                    reason,
                    source_of(app, &offer.source, &offer.as_of),
                    offer.connector().map(str::to_string),
                ));
            }
            (Some((offer, ctx)), true) => alternatives.push((path, fill(&offer.reason, app, &ctx))),
            (None, false) => rejected.push((path, failures.join("; "))),
            (None, true) => {}
        }
    }

    let manual_reason = manual_reason(app, op);
    match chosen {
        Some((path, reason, source, connector)) => {
            alternatives.push((Path::Manual, manual_reason));
            PathChoice {
                op,
                path,
                connector,
                reason,
                source,
                rejected,
                alternatives,
            }
        }
        None => {
            let source = app
                .manual_steps(op)
                .map(|f| f.preferred())
                .and_then(|c| source_of(app, &c.source, &c.as_of));
            PathChoice {
                op,
                path: Path::Manual,
                connector: None,
                reason: manual_reason,
                source,
                rejected,
                alternatives,
            }
        }
    }
}

/// [`select_path`] for every operation, in [`Operation::ALL`] order.
pub fn select_all(app: &App, conn: &ConnectionSettings) -> Vec<PathChoice> {
    Operation::ALL
        .into_iter()
        .map(|op| select_path(app, conn, op))
        .collect()
}

/// The display name of an IdP id, for sentences.
pub fn idp_display_name(id: &str) -> &str {
    match id {
        "okta" => "Okta",
        "entra-id" => "Microsoft Entra ID",
        "onelogin" => "OneLogin",
        "google-workspace" => "Google Workspace",
        other => other,
    }
}

/// Whether `offer`'s conditions (plan, IdP, credentials, browser) hold
/// under `conn`; the same test [`select_path`] applies.
pub fn offer_holds(offer: &PathOffer, conn: &ConnectionSettings) -> bool {
    check(offer, conn).is_ok()
}

/// What a holding offer's template is filled with.
struct Ctx {
    idp: Option<String>,
    plan: Option<String>,
}

fn check(offer: &PathOffer, conn: &ConnectionSettings) -> Result<Ctx, String> {
    let mut ctx = Ctx {
        idp: None,
        plan: None,
    };
    if !offer.plans.is_empty() {
        let wanted = offer.plans.join(" or ");
        match conn.plan.as_deref().map(str::trim) {
            None => {
                return Err(format!(
                    "needs the {wanted} plan; no plan tier is configured"
                ));
            }
            Some(p) => match offer.plans.iter().find(|x| x.eq_ignore_ascii_case(p)) {
                Some(x) => ctx.plan = Some(x.clone()),
                None => return Err(format!("needs the {wanted} plan; configured plan is {p:?}")),
            },
        }
    }
    if !offer.idps.is_empty() {
        let list = offer.idps.join(", ");
        match conn.idp.as_deref().map(str::trim) {
            None => {
                return Err(format!(
                    "works only through an IdP ({list}); no IdP is configured"
                ));
            }
            Some(i) => match offer.idps.iter().find(|x| x.eq_ignore_ascii_case(i)) {
                Some(x) => ctx.idp = Some(idp_display_name(x).to_string()),
                None => return Err(format!("works only through {list}, not {i}")),
            },
        }
    }
    if !offer.credentials.is_empty()
        && !offer
            .credentials
            .iter()
            .any(|c| conn.credentials.contains(c))
    {
        let wanted = offer
            .credentials
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        let article = if wanted.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        return Err(format!(
            "needs {article} {wanted} credential; none is configured"
        ));
    }
    if offer.path == Path::Browser && !conn.browser_enabled {
        return Err("browser automation is disabled (browser_enabled = false)".into());
    }
    Ok(ctx)
}

fn fill(template: &str, app: &App, ctx: &Ctx) -> String {
    let mut s = template.replace("{app}", app.short());
    if let Some(i) = &ctx.idp {
        s = s.replace("{idp}", i);
    }
    if let Some(p) = &ctx.plan {
        s = s.replace("{plan}", p);
    }
    s
}

fn source_of(app: &App, key: &str, as_of: &str) -> Option<String> {
    app.sources
        .get(key)
        .map(|s| format!("{} (as of {as_of})", s.reference))
}

/// Why a path the app does not list for `op` is out, in terms of the facts.
fn not_offered(app: &App, path: Path, op: Operation) -> String {
    let name = app.short();
    let verb = op.as_str();
    match path {
        Path::Scim => {
            let idp_only = app.scim.idp_only();
            if !idp_only.is_empty() {
                format!(
                    "{name}'s SCIM is reachable only through IdP connectors ({}), not by roster directly",
                    idp_only.join(", ")
                )
            } else if !app.scim.available.any(|v| *v == Tri::Yes) {
                format!("{name} offers no SCIM provisioning")
            } else {
                format!("{name}'s SCIM offers no {verb}")
            }
        }
        Path::Api => {
            if !app.api.has_user_api.any(|v| *v == Tri::Yes) {
                format!("{name} has no user API")
            } else if op != Operation::Read && !app.writes_users() {
                format!("{name}'s user API is read-only")
            } else {
                format!("{name}'s API offers no {verb}")
            }
        }
        Path::Idp => format!("no IdP connector carries {verb} to {name}"),
        Path::Csv => {
            let csv = &app.csv;
            let format = csv.format.as_ref().map(|f| f.value().as_str());
            if *csv.available.value() != Tri::Yes {
                format!("{name} has no bulk import")
            } else if csv.supports(op) == Some(false) {
                let what = match op {
                    Operation::Create => "add people",
                    Operation::Update => "update people",
                    _ => "remove people",
                };
                format!("{name}'s CSV import cannot {what}")
            } else if let Some(f) = format.filter(|f| !f.eq_ignore_ascii_case("csv")) {
                format!("{name}'s bulk import takes {f}, which roster does not generate")
            } else {
                format!("{name}'s bulk import does not cover {verb}")
            }
        }
        Path::Jit => {
            if *app.sso.jit.value() != Tri::Yes {
                format!("{name} has no just-in-time provisioning")
            } else if op != Operation::Create {
                format!("JIT only creates accounts at first login; it cannot {verb}")
            } else {
                format!("{name}'s JIT does not apply to {verb}")
            }
        }
        Path::Browser => format!("no admin-console runbook for {verb} in {name}"),
        Path::Manual => String::new(),
    }
}

fn manual_reason(app: &App, op: Operation) -> String {
    let name = app.short();
    match app.manual_steps(op) {
        Some(steps) => format!(
            "a person works through {name}'s {}-step {} checklist in the admin console",
            steps.value().len(),
            op.as_str()
        ),
        None => format!("a person exports or attests {name}'s member list"),
    }
}
