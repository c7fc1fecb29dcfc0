//! The BILL Spend & Expense deactivation runbook
//! (`catalog/runbooks/bill-spend-expense-deactivate.toml`) in a real
//! headless chromium (Debian's, from scripts/browser-tools.sh) against the
//! BILL S&E simulator's admin console, on loopback.
//!
//! The oracle is the simulator's effect log and its v3 spend users API,
//! never what the runner says it did. These tests run one at a time
//! (.config/nextest.toml: the real-browser group).

use std::time::Duration;

use roster_browser::run::Outcome;
use roster_browser::{
    BrowserConnector, BrowserSettings, Credentials, DriverOptions, EvidenceStore, SignInMode,
};
use roster_catalog::runbook::Verified;
use roster_catalog::{Catalog, Runbook};
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::{ConnectionId, Operation};
use roster_sim::bill_spend::{BillConsoleEvent, BillSim, BillSimConfig, BillUser, RunningBill};
use roster_sim::common::EffectKind;

const TOKEN: &str = "bill-api-token";
const ADMIN: &str = "admin@acme.example";
const PASSWORD: &str = "bill console pw";
const LEAVER: &str = "leaver@acme.example";

fn runbook(verified: bool) -> Runbook {
    let catalog = Catalog::builtin().unwrap();
    let mut rb = catalog
        .runbook("bill-spend-expense", Operation::Deactivate)
        .expect("the built-in BILL S&E runbook")
        .clone();
    assert!(!rb.is_verified(), "the built-in runbook is unverified");
    if verified {
        rb.verified = Some(Verified {
            at: "2026-12-07".into(),
            by: "test".into(),
            note: None,
        });
    }
    rb
}

async fn bill() -> RunningBill {
    let sim = BillSim::start(
        BillSimConfig::new(TOKEN)
            .with_seed(30)
            .with_user(BillUser::new(LEAVER, "Lee", "Ver", "MEMBER")),
    )
    .await
    .unwrap();
    sim.add_console_admin(ADMIN, PASSWORD);
    sim
}

fn connector(sim: &RunningBill, rb: Runbook, dir: &std::path::Path) -> BrowserConnector {
    let catalog = Catalog::builtin().unwrap();
    let read = registry::build(
        catalog.require("bill-spend-expense").unwrap(),
        &ConnectorSettings::new(ConnectionId::new("bill-spend-expense"))
            .with_path("api")
            .with_base_url(sim.url())
            .with_secret(SecretString::new(TOKEN)),
    )
    .unwrap();
    BrowserConnector::new(
        read,
        rb,
        BrowserSettings {
            console_url: sim.base_url(),
            signin: SignInMode::Local,
            run_unverified: false,
            successor: None,
            step_timeout: Duration::from_secs(8),
            evidence: EvidenceStore::new(dir.join("evidence"), Duration::from_secs(86_400)),
            driver: DriverOptions::default(),
        },
        Credentials {
            username: ADMIN.into(),
            password: SecretString::new(PASSWORD),
            totp_seed: None,
            idp_username: None,
            idp_password: None,
        },
    )
    .unwrap()
}

fn console_effects(sim: &RunningBill) -> Vec<(String, EffectKind)> {
    sim.effects()
        .into_iter()
        .filter(|e| e.via == "console")
        .map(|e| (e.email, e.kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_deactivates_an_employee_and_the_api_reads_them_retired() {
    let sim = bill().await;
    let dir = tempfile::tempdir().unwrap();
    let c = connector(&sim, runbook(true), dir.path());
    let report = c.run_one(LEAVER).await.unwrap();
    assert_eq!(report.outcome, Outcome::Done, "{:#?}", report.log);
    assert_eq!(
        console_effects(&sim),
        [(LEAVER.to_string(), EffectKind::Deactivated)]
    );
    assert!(sim.user_by_email(LEAVER).unwrap().retired);
    // Nobody else was touched.
    assert!(
        sim.users()
            .iter()
            .filter(|u| u.email != LEAVER)
            .all(|u| !u.retired)
    );
    assert!(sim.console_events().contains(&BillConsoleEvent::SignedIn {
        admin: ADMIN.into()
    }));
    let labels: Vec<&str> = report.evidence.iter().map(|e| e.label.as_str()).collect();
    assert!(
        labels.contains(&"before-confirmation") && labels.contains(&"done"),
        "{labels:?}"
    );
    for e in &report.evidence {
        let bytes = std::fs::read(&e.path).unwrap();
        assert_eq!(roster_browser::evidence::sha256_hex(&bytes), e.sha256);
    }
    assert!(!report.log.join("\n").contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_runbook_stops_at_the_confirmation() {
    let sim = bill().await;
    let dir = tempfile::tempdir().unwrap();
    let c = connector(&sim, runbook(false), dir.path());
    let report = c.run_one(LEAVER).await.unwrap();
    assert!(
        matches!(report.outcome, Outcome::AwaitingConfirmation { .. }),
        "{:#?}",
        report.log
    );
    assert!(console_effects(&sim).is_empty(), "nothing was deactivated");
    assert!(!sim.user_by_email(LEAVER).unwrap().retired);
    assert!(
        report
            .evidence
            .iter()
            .any(|e| e.label == "before-confirmation" && std::path::Path::new(&e.path).exists())
    );
    assert_eq!(
        report.checklist.last().map(String::as_str),
        Some("Check BILL says the employee is deactivated.")
    );
}
