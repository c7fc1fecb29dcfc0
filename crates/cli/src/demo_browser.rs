//! `roster demo`, step 6: the leaver's Spendesk account closed by the
//! catalog's console runbook (`catalog/runbooks/spendesk-deactivate.toml`)
//! in a real headless chromium, against the Spendesk simulator's admin
//! console, instead of a person's task.
//!
//! The story: IT has given roster an admin login for the Spendesk console
//! (`[connections.spendesk.browser]` in `roster.toml`), so the next command
//! loads an engine whose Spendesk connection is on the `browser` path; the
//! demo does the same by building a new engine over the same store. The
//! leaver approves a colleague's expense and holds a card, so the runbook
//! reassigns the approval and blocks the card first (financial steps: the
//! deactivation waits for a person's approval, which the demo's operator
//! gives), then deactivates the member. The screenshots are kept under
//! the demo's data directory, card numbers blacked out, their SHA-256 in
//! the audit chain; the next read (the members API) verifies the result.
//!
//! Where chromium or chromedriver is missing (or `--no-browser`), the
//! demo says so in one line and the deactivation stays a person's task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use roster_browser::{BrowserConnector, DriverOptions, Outcome};
use roster_catalog::Catalog;
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::{ConnectionId, Operation, Person, Plan};
use roster_engine::Roster;
use roster_engine::browser::{BrowserSecrets, RawBrowser};
use roster_engine::config::SecretRef;
use roster_sim::common::EffectKind;
use roster_sim::spendesk::ConsoleAdmin;

use super::{DemoArgs, SPENDESK_ID, SPENDESK_SECRET, Sims};

/// The console admin roster signs in as (local login with a TOTP code).
const CONSOLE_ADMIN: &str = "it-ops@acme.example";
/// Demo credentials for the simulated console; `roster demo` must never
/// print or log them (crates/cli/tests/health.rs).
pub(super) const CONSOLE_PASSWORD: &str = "demo-console-password";
pub(super) const CONSOLE_TOTP_SEED: &str = "ROSTERDEMOTOTPSEEDQ4WE3K2ALMNOPQ";
/// A test card number (the runbook's screenshots black it out).
const LEAVER_CARD: &str = "4000056655665556";

/// The Spendesk connection on the browser path, for the report.
pub(super) struct Console {
    connector: Arc<BrowserConnector>,
    successor: String,
}

/// Where chromium or chromedriver is missing: the line the demo prints.
fn missing_browser(d: &DriverOptions) -> Option<String> {
    let missing: Vec<String> = [&d.chromium, &d.chromedriver]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// Switches the Spendesk connection to the browser path for the rest of
/// the story, when chromium and chromedriver are installed: returns the
/// roster to go on with (a new engine over the same store) and the
/// console's connector. Otherwise prints why not and returns `roster`
/// unchanged.
pub(super) async fn enable(
    roster: Arc<Roster>,
    args: &DemoArgs,
    sims: &Sims,
    leaver: &Person,
    data_dir: &Path,
    hr_path: &Path,
) -> Result<(Arc<Roster>, Option<Console>)> {
    let driver = DriverOptions::default();
    if args.no_browser {
        println!(
            "      spendesk: --no-browser: the deactivation stays a person's task (no console runbook)"
        );
        return Ok((roster, None));
    }
    if let Some(missing) = missing_browser(&driver) {
        println!(
            "      spendesk: {missing} not installed: the console runbook step falls back to a person's task (scripts/browser-tools.sh installs Debian's chromium and chromium-driver; run the demo again to see the runbook)"
        );
        return Ok((roster, None));
    }

    // The console as the leaver left it: an expense they were to approve
    // and an open card. The runbook hands both over first.
    let h = sims.spendesk.handle();
    h.add_console_admin(ConsoleAdmin {
        email: CONSOLE_ADMIN.into(),
        password: Some(CONSOLE_PASSWORD.into()),
        totp_seed: Some(CONSOLE_TOTP_SEED.into()),
    });
    h.set_cookie_banner(true);
    let leaver_email = leaver.email.normalized();
    let active: Vec<String> = h
        .members()
        .into_iter()
        .filter(|m| m.status == "active" && m.email.to_lowercase() != leaver_email)
        .map(|m| m.email.to_lowercase())
        .collect();
    // Their approvals go to their manager when the manager uses Spendesk.
    let successor = leaver
        .manager_email
        .as_ref()
        .map(|m| m.normalized())
        .filter(|m| active.contains(m))
        .or_else(|| active.first().cloned())
        .context("the Spendesk simulator has no other active member")?;
    let requester = active
        .iter()
        .find(|m| **m != successor)
        .unwrap_or(&successor);
    h.add_approval(&leaver_email, requester, "€184.20");
    h.add_card(&leaver_email, LEAVER_CARD);

    let old = roster.engine();
    let mut engine = super::build_engine(
        old.store.clone(),
        old.policy.clone(),
        sims,
        data_dir,
        hr_path,
    )?;
    drop(roster);
    let catalog = Catalog::builtin()?;
    let runbook = catalog
        .runbook("spendesk", Operation::Deactivate)
        .context("the catalog has no Spendesk deactivation runbook")?
        .clone();
    // `[connections.spendesk.browser]` as an operator would write it; the
    // secrets would be `roster secret set` ones, here given directly.
    let raw = RawBrowser {
        console_url: sims.spendesk.base_url(),
        signin: "local".into(),
        username: CONSOLE_ADMIN.into(),
        password: SecretRef::Stored {
            stored: "spendesk-console-password".into(),
        },
        totp_seed: Some(SecretRef::Stored {
            stored: "spendesk-console-totp".into(),
        }),
        idp_username: None,
        idp_password: None,
        // The runbook is unverified (it has run against this simulator
        // only): the demo's connection opts in to run it to the end.
        run_unverified: true,
        successor: Some(successor.clone()),
        evidence_retention_days: None,
        step_timeout_secs: None,
    };
    let read = registry::build(
        catalog.require("spendesk")?,
        &ConnectorSettings::new(ConnectionId::new("spendesk"))
            .with_path("api")
            .with_base_url(sims.spendesk.url())
            .with_username(SPENDESK_ID)
            .with_secret(SecretString::new(SPENDESK_SECRET)),
    )?;
    let connector = Arc::new(roster_engine::browser::wrap(
        read,
        runbook,
        &raw,
        BrowserSecrets {
            password: SecretString::new(CONSOLE_PASSWORD),
            totp_seed: Some(SecretString::new(CONSOLE_TOTP_SEED)),
            idp_password: None,
        },
        data_dir.join("evidence").join("spendesk"),
        Some(engine.evidence_sink()),
    )?);
    engine.add_connector(connector.clone());
    let binding = engine
        .bindings
        .get_mut(&ConnectionId::new("spendesk"))
        .context("the demo has no spendesk connection")?;
    binding.settings.browser_enabled = true;
    let rb = connector.runbook();
    println!(
        "      spendesk: IT gave roster an admin login for the Spendesk console ([connections.spendesk.browser]): deactivations there now run the catalog's runbook {} in headless chromium ({}; this connection runs it to the end)",
        rb.id,
        if rb.is_verified() {
            "verified"
        } else {
            "unverified"
        }
    );
    Ok((
        Arc::new(Roster::new(engine)),
        Some(Console {
            connector,
            successor,
        }),
    ))
}

/// Prints why actions wait for a person's approval.
pub(super) fn print_approvals(plan: &Plan) {
    for (i, why) in &plan.approvals {
        if let Some(a) = plan.actions.get(*i) {
            println!(
                "      needs approval: {} {} {}: {why}",
                a.operation.sign(),
                a.connection,
                a.email
            );
        }
    }
    println!("      approved by the demo's operator");
}

impl Console {
    /// What the runbook did: its outcome, the simulator's record of it
    /// (the oracle, not the runner's word), and the screenshots with their
    /// hashes as the audit chain holds them.
    pub(super) async fn report(&self, roster: &Roster, sims: &Sims, leaver: &Person) -> Result<()> {
        let email = leaver.email.normalized();
        // The demo's one run: its leaver's.
        let Some(run) = self.connector.reports().pop() else {
            println!("      spendesk: the console runbook did not run");
            return Ok(());
        };
        match &run.outcome {
            Outcome::Done => println!(
                "      spendesk: runbook {} done in {:.1} s ({} sign-in with password and TOTP code)",
                run.runbook,
                Duration::from_millis(run.elapsed_ms).as_secs_f64(),
                run.sign_ins
            ),
            _ => println!(
                "      spendesk: {}; a person finishes it from the task's checklist",
                run.summary()
            ),
        }
        let effects: Vec<String> = sims
            .spendesk
            .handle()
            .effects()
            .into_iter()
            .filter(|e| e.email.eq_ignore_ascii_case(&email))
            .map(|e| {
                let what = match &e.kind {
                    EffectKind::Updated { fields } => fields.join(","),
                    k => k.name().to_string(),
                };
                format!("{what} (via {})", e.via)
            })
            .collect();
        println!(
            "      the Spendesk simulator's effect log for {email}: {}",
            effects.join(", ")
        );
        let h = sims.spendesk.handle();
        let moved = h
            .approvals()
            .iter()
            .filter(|a| a.approver == self.successor)
            .count();
        let blocked = h
            .cards()
            .iter()
            .filter(|c| c.holder == email && c.status == "blocked")
            .count();
        println!(
            "      {moved} pending approval(s) now with {}, {blocked} card(s) blocked",
            self.successor
        );
        let audited: Vec<String> = roster
            .store()
            .audit_since(0)
            .await?
            .into_iter()
            .filter(|e| e.kind == "browser.screenshot")
            .filter_map(|e| e.data["sha256"].as_str().map(str::to_string))
            .collect();
        println!(
            "      screenshots (card numbers blacked out before storage; SHA-256 in the audit chain as browser.screenshot):"
        );
        for e in &run.evidence {
            println!(
                "        {:<22} sha256:{} {}{}",
                e.label,
                e.sha256,
                e.path,
                if audited.contains(&e.sha256) {
                    ""
                } else {
                    " (NOT in the audit chain)"
                }
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_program_is_named() {
        let d = roster_browser::DriverOptions {
            chromedriver: "/nonexistent/chromedriver".into(),
            chromium: std::env::current_exe().unwrap(),
            window: (800, 600),
        };
        assert_eq!(
            super::missing_browser(&d).as_deref(),
            Some("/nonexistent/chromedriver")
        );
        let here = roster_browser::DriverOptions {
            chromedriver: std::env::current_exe().unwrap(),
            ..d
        };
        assert_eq!(super::missing_browser(&here), None);
    }
}
