//! Text rendering for the CLI: the catalog table and one app's card.
//!
//! Both are pure functions returning `String`, so `roster apps list` and
//! `roster apps show ID` stay thin and the output is testable here. Every
//! fact on a card is followed by a short tag naming its source key
//! (`[seed]`); the card ends with the sources those keys stand for. A tag
//! carries a date only when the claim's as-of differs from its source's.

use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets};
use roster_core::Operation;

use crate::fact::{Claim, Fact};
use crate::load::Catalog;
use crate::model::{App, Tri};
use crate::select::{ConnectionSettings, select_all, select_path};

/// The catalog as a table: id, name, kind, category, user API, SCIM, what
/// deactivation does, and the path a deactivation takes with default
/// (empty) connection settings.
pub fn render_list(catalog: &Catalog) -> String {
    render_apps(&catalog.apps().collect::<Vec<_>>())
}

/// [`render_list`] for some of the apps (`roster apps list` with filters).
pub fn render_apps(apps: &[&App]) -> String {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .force_no_tty()
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "ID",
            "Name",
            "Kind",
            "Category",
            "User API",
            "SCIM",
            "Deactivation",
            "Deactivate: best path",
            "… with no credentials",
        ]);
    let defaults = ConnectionSettings::default();
    // The best an app allows: every credential kind held, the top plan, an
    // IdP in front, browser runbooks off (they need a runbook per app).
    let mut best = ConnectionSettings::default()
        .with_plan("enterprise")
        .with_idp("okta");
    for kind in crate::model::CredentialKind::ALL {
        best = best.with_credential(kind);
    }
    for app in apps.iter().copied() {
        let deactivate = select_path(app, &defaults, Operation::Deactivate);
        let best_deactivate = select_path(app, &best, Operation::Deactivate);
        t.add_row(vec![
            app.id.clone(),
            app.name.clone(),
            app.kind.to_string(),
            app.category.to_string(),
            user_api_summary(app),
            scim_summary(app),
            deactivation_summary(app),
            best_deactivate.path.to_string(),
            deactivate.path.to_string(),
        ]);
    }
    let mut out = t.to_string();
    out.push('\n');
    out.push_str("Best path: with every credential kind, the Enterprise plan and Okta in front. `roster apps show ID` explains each choice.\n");
    out
}

/// `suspend`, `hard-delete`, `suspend / hard-delete` when sources (or the
/// app's options) disagree, `-` for IdP records without the section.
pub fn deactivation_summary(app: &App) -> String {
    let Some(d) = &app.deactivation else {
        return "-".into();
    };
    let mut kinds: Vec<&str> = Vec::new();
    for c in d.kind.claims() {
        if !kinds.contains(&c.value.as_str()) {
            kinds.push(c.value.as_str());
        }
    }
    kinds.join(" / ")
}

/// `yes`, `no`, `read-only`, or `disputed (no / yes)`.
pub fn user_api_summary(app: &App) -> String {
    let has = &app.api.has_user_api;
    if has.any(|v| *v == Tri::Yes) && !app.writes_users() {
        "read-only".into()
    } else if has.is_disputed() {
        let vals: Vec<&str> = has.claims().iter().map(|c| tri_word(c.value)).collect();
        format!("disputed ({})", vals.join(" / "))
    } else {
        tri_word(*has.value()).into()
    }
}

/// `no`, `2.0 (Enterprise)`, `via IdP only (Enterprise)`, with
/// `endpoint undocumented` when no source documents the endpoint.
pub fn scim_summary(app: &App) -> String {
    let s = &app.scim;
    if !s.available.any(|v| *v == Tri::Yes) && s.idp_only().is_empty() {
        return tri_word(*s.available.value()).into();
    }
    let mut head = if !s.idp_only().is_empty() {
        "via IdP only".to_string()
    } else {
        s.version
            .as_ref()
            .map_or("yes".to_string(), |v| v.value().to_string())
    };
    let mut extra = Vec::new();
    if let Some(p) = &s.plan_required {
        extra.push(p.value().clone());
    }
    if !*s.endpoint_documented.value() {
        extra.push("endpoint undocumented".into());
    }
    if !extra.is_empty() {
        head.push_str(&format!(" ({})", extra.join(", ")));
    }
    head
}

/// A readable card in the shape of the sources' "API quick reference",
/// with the path chosen for each operation under `settings`.
pub fn render_card(app: &App, settings: &ConnectionSettings) -> String {
    let mut c = Card::new(app);
    let title = if app.aliases.is_empty() {
        app.name.clone()
    } else {
        format!("{} (formerly/also {})", app.name, app.aliases.join(", "))
    };
    c.line(&format!("{title}  [id: {}, kind: {}]", app.id, app.kind));
    c.line(&c.fact(&app.summary, |s| s.clone()));

    c.section("API quick reference");
    let api = &app.api;
    c.kv(
        "Has user API",
        c.fact(&api.has_user_api, |v| tri_word(*v).into()),
    );
    let writes = match &api.writes_users {
        Some(f) => c.fact(f, |v| yes_no(*v).into()),
        None => "same as above".into(),
    };
    c.kv("User-write API", writes);
    c.kv("Auth method", c.fact(&api.auth_method, |s| s.clone()));
    c.kv_opt("Base URL", api.base_url.as_ref(), |s| s.clone());
    c.list_opt("User object fields", api.user_fields.as_ref());
    c.list_opt("Core endpoints", api.endpoints.as_ref());

    c.section("SCIM");
    let s = &app.scim;
    c.kv(
        "SCIM available",
        c.fact(&s.available, |v| tri_word(*v).into()),
    );
    c.kv_opt("SCIM version", s.version.as_ref(), |v| v.to_string());
    c.kv_opt("Plan required", s.plan_required.as_ref(), |v| v.clone());
    c.kv(
        "Endpoint documented",
        c.fact(&s.endpoint_documented, |v| yes_no(*v).into()),
    );
    c.kv_opt("Endpoint", s.endpoint.as_ref(), |v| v.clone());
    c.kv_opt("IdP-only connectors", s.idp_only_connectors.as_ref(), |v| {
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    });
    c.kv_opt("Notes", s.notes.as_ref(), |v| v.clone());

    c.section("Rate limits");
    let r = &app.rate_limits;
    c.kv("Documented", c.fact(&r.documented, |v| yes_no(*v).into()));
    c.list_opt("Limits", r.limits.as_ref());
    c.kv("Rate-limit headers", c.fact(&r.headers, tri));
    c.kv_opt("Header names", r.header_names.as_ref(), |v| v.join(", "));
    c.kv("Retry-After", c.fact(&r.retry_after, tri));
    c.kv_opt("Notes", r.notes.as_ref(), |v| v.clone());

    c.section("Pagination");
    let p = &app.pagination;
    c.kv("Method", c.fact(&p.method, |v| v.to_string()));
    c.kv_opt("Default page size", p.default_page_size.as_ref(), |v| {
        v.to_string()
    });
    c.kv_opt("Max page size", p.max_page_size.as_ref(), |v| v.to_string());
    c.kv_opt("Pointer", p.pointer.as_ref(), |v| v.clone());

    c.section("Events");
    let e = &app.events;
    c.kv("Webhooks", c.fact(&e.webhooks, tri));
    c.kv_opt("Webhook notes", e.notes.as_ref(), |v| v.clone());
    c.kv_opt("Alternative strategy", e.alternative.as_ref(), |v| {
        v.clone()
    });

    c.section("SSO / JIT");
    let o = &app.sso;
    c.kv("SAML SSO", c.fact(&o.saml, tri));
    c.kv("JIT provisioning", c.fact(&o.jit, tri));
    c.kv_opt("SSO IdPs", o.idps.as_ref(), |v| v.join(", "));
    c.kv_opt("Notes", o.notes.as_ref(), |v| v.clone());

    c.section("CSV / bulk import");
    let csv = &app.csv;
    c.kv("Available", c.fact(&csv.available, tri));
    c.kv_opt("Format", csv.format.as_ref(), |v| v.clone());
    c.kv_opt("Adds", csv.adds.as_ref(), |v| yes_no(*v).into());
    c.kv_opt("Updates", csv.updates.as_ref(), |v| yes_no(*v).into());
    c.kv_opt("Removes", csv.removes.as_ref(), |v| yes_no(*v).into());
    c.kv_opt("Notes", csv.notes.as_ref(), |v| v.clone());

    if let Some(d) = &app.deactivation {
        c.section("What deactivation does");
        c.kv("Kind", c.fact(&d.kind, |k| k.to_string()));
        c.kv("Reversible", c.fact(&d.reversible, |v| tri_word(*v).into()));
        c.kv_opt("Reversible for", d.reversible_for.as_ref(), |v| v.clone());
        c.kv(
            "Frees the seat",
            c.fact(&d.frees_seat, |v| tri_word(*v).into()),
        );
        c.kv_opt("Their data", d.data.as_ref(), |v| v.clone());
        c.kv_opt("Things they own", d.owned.as_ref(), |v| v.clone());
        c.list_opt("Reassign first", d.reassign_first.as_ref());
        c.kv_opt("Notes", d.notes.as_ref(), |v| v.clone());
        if d.may_hard_delete() {
            c.line("  A hard delete waits for approval by default (guard hard_delete).");
        }
    }
    if let Some(cr) = &app.credentials {
        c.section("API credentials");
        c.kv("Expire", c.fact(&cr.expires, |v| tri_word(*v).into()));
        c.kv_opt("Longest life (days)", cr.max_days.as_ref(), |v| {
            v.to_string()
        });
        c.kv_opt("Notes", cr.notes.as_ref(), |v| v.clone());
    }

    if !app.limitations.is_empty() {
        c.section("Limitations");
        for l in &app.limitations {
            c.line(&format!("  - {}", c.fact(l, |s| s.clone())));
        }
    }
    if !app.watch_out_for.is_empty() {
        c.section("Watch out for");
        for w in &app.watch_out_for {
            c.line(&format!("  - {}", c.fact(w, |s| s.clone())));
        }
    }

    c.section("Manual steps");
    for op in Operation::ALL {
        let Some(steps) = app.manual_steps(op) else {
            continue;
        };
        for claim in steps.claims() {
            c.line(&format!("  {} {}", op.as_str(), c.tag(claim)));
            for (i, step) in claim.value.iter().enumerate() {
                c.line(&format!("    {}. {step}", i + 1));
            }
        }
    }

    c.section("Chosen path per operation");
    c.line(&format!("  settings: {}", settings.describe()));
    for choice in select_all(app, settings) {
        c.line(&format!(
            "  {:<11} {:<8} {}",
            choice.op.as_str(),
            choice.path.as_str(),
            choice.reason
        ));
        // Only paths the app offers but whose conditions failed: those are
        // what a change of settings would unlock. `--json` has the rest.
        for (path, why) in choice.rejected.iter().filter(|(p, _)| {
            app.paths
                .iter()
                .any(|o| o.path == *p && o.ops.contains(&choice.op))
        }) {
            c.line(&format!("  {:<11}   not {:<7} {why}", "", path.as_str()));
        }
    }

    c.section("Sources");
    for (key, src) in &app.sources {
        let mut line = format!("  [{key}] {}", src.reference);
        if let Some(t) = &src.title {
            line.push_str(&format!(" — {t}"));
        }
        if !src.as_of.is_empty() {
            line.push_str(&format!(" (as of {})", src.as_of));
        }
        if let Some(n) = &src.note {
            line.push_str(&format!("; {n}"));
        }
        c.line(&line);
    }
    c.out
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn tri(t: &Tri) -> String {
    t.as_str().into()
}

/// `yes`, `no`, or `not documented` (a source-less unknown reads as the
/// sources leaving it open, never as "no").
fn tri_word(t: Tri) -> &'static str {
    match t {
        Tri::Yes => "yes",
        Tri::No => "no",
        Tri::Unknown => "not documented",
    }
}

/// Accumulates the card's lines.
struct Card<'a> {
    app: &'a App,
    out: String,
}

const LABEL_WIDTH: usize = 22;

impl<'a> Card<'a> {
    fn new(app: &'a App) -> Self {
        Card {
            app,
            out: String::new(),
        }
    }

    fn line(&mut self, s: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "{s}");
    }

    fn section(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n{title}");
    }

    fn kv(&mut self, label: &str, value: String) {
        let _ = writeln!(self.out, "  {label:<LABEL_WIDTH$}{value}");
    }

    fn kv_opt<T: PartialEq>(
        &mut self,
        label: &str,
        f: Option<&Fact<T>>,
        show: impl Fn(&T) -> String,
    ) {
        let v = match f {
            Some(f) => self.fact(f, show),
            None => "not documented".into(),
        };
        self.kv(label, v);
    }

    fn list_opt(&mut self, label: &str, f: Option<&Fact<Vec<String>>>) {
        let Some(f) = f else {
            self.kv(label, "not documented".into());
            return;
        };
        for claim in f.claims() {
            let head = match &claim.note {
                Some(n) => format!("({n}) {}", self.tag(claim)),
                None => self.tag(claim),
            };
            self.kv(label, head);
            for item in &claim.value {
                self.line(&format!("  {:<LABEL_WIDTH$}- {item}", ""));
            }
        }
    }

    /// `[key]`, or `[key, 2026-11]` when the claim's date differs from its
    /// source's.
    fn tag<T>(&self, claim: &Claim<T>) -> String {
        match self.app.sources.get(&claim.source) {
            Some(s) if s.as_of == claim.as_of => format!("[{}]", claim.source),
            _ => format!("[{}, {}]", claim.source, claim.as_of),
        }
    }

    /// A fact's value(s), each with its note and source tag; disagreeing
    /// claims are all shown and flagged.
    fn fact<T: PartialEq>(&self, f: &Fact<T>, show: impl Fn(&T) -> String) -> String {
        let parts: Vec<String> = f
            .claims()
            .iter()
            .map(|c| {
                let mut s = show(&c.value);
                if let Some(n) = &c.note {
                    s.push_str(&format!(" ({n})"));
                }
                format!("{s} {}", self.tag(c))
            })
            .collect();
        let mut s = parts.join(" | ");
        if f.is_disputed() {
            s.push_str("  <- sources disagree");
        }
        s
    }
}
