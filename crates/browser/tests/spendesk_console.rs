//! The Spendesk deactivation runbook in a real headless chromium (Debian's
//! chromium and chromium-driver, installed by scripts/browser-tools.sh)
//! against the Spendesk simulator's admin console, on loopback.
//!
//! The oracle is the simulator's effect log and state (and its members
//! API), never what the runner says it did. These tests run one at a time
//! (.config/nextest.toml: the real-browser group).

use std::sync::Arc;
use std::time::Duration;

use roster_browser::run::Outcome;
use roster_browser::{
    BrowserConnector, BrowserSettings, Credentials, DriverOptions, EvidenceStore, SignInMode,
};
use roster_catalog::runbook::Verified;
use roster_catalog::{Catalog, Runbook};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_connectors::{ListRequest, SecretString};
use roster_core::{ConnectionId, Operation};
use roster_sim::common::EffectKind;
use roster_sim::okta::{OktaOidcApp, OktaSim, OktaSimConfig, OktaUser};
use roster_sim::spendesk::{
    ConsoleAdmin, ConsoleEvent, ConsoleSso, Layout, Member, RunningSpendesk, SpendeskSim,
    SpendeskSimConfig,
};

const ADMIN: &str = "admin@acme.example";
const PASSWORD: &str = "correct horse battery staple";
/// Base32 of 20 random-looking bytes.
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const LEAVER: &str = "leaver@acme.example";
const SUCCESSOR: &str = "boss@acme.example";

fn runbook(verified: bool) -> Runbook {
    let catalog = Catalog::builtin().unwrap();
    let mut rb = catalog
        .runbook("spendesk", Operation::Deactivate)
        .expect("the built-in Spendesk runbook")
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

async fn spendesk() -> RunningSpendesk {
    let mut cfg = SpendeskSimConfig::new("key-id", "key-secret")
        .with_seed(25)
        .with_console_admin(ConsoleAdmin {
            email: ADMIN.into(),
            password: Some(PASSWORD.into()),
            totp_seed: Some(SEED.into()),
        });
    let mut boss = Member::new(SUCCESSOR, "Boss", "Person");
    boss.role = Some("admin".into());
    cfg = cfg.with_member(boss);
    cfg = cfg.with_member(Member::new(LEAVER, "Lee", "Ver"));
    SpendeskSim::start(cfg).await.unwrap()
}

struct Setup {
    sim: RunningSpendesk,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            sim: spendesk().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn connector(&self, rb: Runbook, signin: SignInMode, creds: Credentials) -> BrowserConnector {
        let catalog = Catalog::builtin().unwrap();
        let read = registry::build(
            catalog.require("spendesk").unwrap(),
            &ConnectorSettings::new(ConnectionId::new("spendesk"))
                .with_path("api")
                .with_base_url(self.sim.url())
                .with_username("key-id")
                .with_secret(SecretString::new("key-secret")),
        )
        .unwrap();
        BrowserConnector::new(
            read,
            rb,
            BrowserSettings {
                console_url: self.sim.base_url(),
                signin,
                run_unverified: false,
                successor: Some(SUCCESSOR.into()),
                step_timeout: Duration::from_secs(8),
                evidence: EvidenceStore::new(
                    self.dir.path().join("evidence"),
                    Duration::from_secs(30 * 86_400),
                ),
                driver: DriverOptions::default(),
            },
            creds,
        )
        .unwrap()
    }

    fn local(&self) -> Credentials {
        Credentials {
            username: ADMIN.into(),
            password: SecretString::new(PASSWORD),
            totp_seed: Some(SecretString::new(SEED)),
            idp_username: None,
            idp_password: None,
        }
    }

    fn deactivations(&self) -> Vec<String> {
        self.sim
            .effects()
            .into_iter()
            .filter(|e| e.kind == EffectKind::Deactivated)
            .map(|e| e.email)
            .collect()
    }
}

/// What the members API (the next read) says of `email`.
async fn api_status(c: &BrowserConnector, email: &str) -> bool {
    use roster_connectors::Connector as _;
    let mut req = ListRequest::first();
    loop {
        let page = c.list_accounts(req).await.unwrap();
        if let Some(a) = page
            .accounts
            .iter()
            .find(|a| a.email.as_ref().is_some_and(|e| e.as_str() == email))
        {
            return a.active;
        }
        match page.next {
            Some(n) => req = ListRequest::after(n),
            None => panic!("{email} not listed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivates_a_member_after_reassigning_approvals_and_blocking_cards_through_friction() {
    let s = Setup::new().await;
    s.sim.add_approval(LEAVER, "member3@example.com", "€120.00");
    s.sim.add_approval(LEAVER, "member4@example.com", "€80.00");
    s.sim.add_card(LEAVER, "4111111111111111");
    s.sim.add_card(LEAVER, "5500000000000004");
    s.sim.set_cookie_banner(true);
    s.sim.set_console_slow(Duration::from_millis(700));
    let c = s.connector(runbook(true), SignInMode::Local, s.local());
    assert!(api_status(&c, LEAVER).await);

    let report = c.run_one(LEAVER).await.unwrap();
    assert_eq!(report.outcome, Outcome::Done, "{:#?}", report.log);

    // The app's own record, in order: approvals, cards, then the member.
    let effects: Vec<(String, String)> = s
        .sim
        .effects()
        .into_iter()
        .filter(|e| e.email == LEAVER)
        .map(|e| {
            let what = match &e.kind {
                EffectKind::Updated { fields } => fields.join(","),
                k => k.name().to_string(),
            };
            (what, e.via.to_string())
        })
        .collect();
    assert_eq!(
        effects,
        [
            ("pendingApprovals".to_string(), "console".to_string()),
            ("cards".into(), "console".into()),
            ("cards".into(), "console".into()),
            ("deactivated".into(), "console".into()),
        ]
    );
    assert!(s.sim.approvals().iter().all(|a| a.approver == SUCCESSOR));
    assert!(s.sim.cards().iter().all(|c| c.status == "blocked"));
    assert_eq!(s.deactivations(), [LEAVER]);
    // Nobody else was touched.
    assert!(
        s.sim
            .members()
            .iter()
            .filter(|m| m.email != LEAVER)
            .all(|m| m.status == "active")
    );
    // The next read (the members API) sees it.
    assert!(!api_status(&c, LEAVER).await);
    assert!(s.sim.console_events().contains(&ConsoleEvent::SignedIn {
        admin: ADMIN.into(),
        how: "password+totp",
    }));

    // Evidence: the screenshot before the confirmation and at the end,
    // hashed; card numbers blacked out where they showed.
    let labels: Vec<&str> = report.evidence.iter().map(|e| e.label.as_str()).collect();
    assert!(labels.contains(&"before-confirmation"), "{labels:?}");
    assert!(labels.contains(&"done"), "{labels:?}");
    let after_reassign = report
        .evidence
        .iter()
        .find(|e| e.label == "after step 8")
        .expect("a screenshot after the reassignment");
    assert_eq!(after_reassign.redacted, 2, "both card numbers redacted");
    for e in &report.evidence {
        let bytes = std::fs::read(&e.path).unwrap();
        assert_eq!(roster_browser::evidence::sha256_hex(&bytes), e.sha256);
    }
    // No secret in the log.
    let log = report.log.join("\n");
    assert!(!log.contains(PASSWORD) && !log.contains(SEED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_the_second_layout_sso_and_a_session_that_expires_mid_run() {
    let s = Setup::new().await;
    // Okta as the IdP: its sign-in form, then back to the console.
    let callback = format!("{}/auth/callback", s.sim.base_url());
    let okta = OktaSim::start(
        OktaSimConfig::new("tok")
            .with_user(OktaUser::new(ADMIN, "Ad", "Min"))
            .with_password(ADMIN, "okta-pw")
            .with_oidc_app(OktaOidcApp::new("0oaSpendesk", "sso-secret", &[&callback])),
    )
    .await
    .unwrap();
    s.sim.set_console_sso(Some(ConsoleSso {
        endpoints: format!("{}/oauth2/default/v1", okta.base_url()),
        client_id: "0oaSpendesk".into(),
        client_secret: "sso-secret".into(),
    }));
    s.sim.set_console_layout(Layout::Compact);
    s.sim.add_approval(LEAVER, "member1@example.com", "€42.00");
    // Four signed-in pages, then every session ends: the member page
    // loads, and the reassignment lands on the sign-in page.
    s.sim.expire_console_sessions_after(3);
    let c = s.connector(
        runbook(true),
        SignInMode::Sso,
        Credentials {
            username: ADMIN.into(),
            password: SecretString::new("unused"),
            totp_seed: None,
            idp_username: Some(ADMIN.into()),
            idp_password: Some(SecretString::new("okta-pw")),
        },
    );
    let report = c.run_one(LEAVER).await.unwrap();
    assert_eq!(report.outcome, Outcome::Done, "{:#?}", report.log);
    assert_eq!(report.sign_ins, 2, "{:#?}", report.log);
    let events = s.sim.console_events();
    assert!(events.contains(&ConsoleEvent::SessionExpired), "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ConsoleEvent::SignedIn { how: "sso", .. }))
            .count(),
        2
    );
    assert_eq!(s.deactivations(), [LEAVER]);
    // Reassigned once: the second pass found nothing left to reassign.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ConsoleEvent::ApprovalsReassigned { .. }))
            .count(),
        1
    );
    assert!(!api_status(&c, LEAVER).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_runbook_stops_at_the_confirmation_with_a_screenshot() {
    let s = Setup::new().await;
    let c = s.connector(runbook(false), SignInMode::Local, s.local());
    let report = c.run_one(LEAVER).await.unwrap();
    assert!(
        matches!(report.outcome, Outcome::AwaitingConfirmation { .. }),
        "{:#?}",
        report.log
    );
    assert!(s.deactivations().is_empty(), "nothing was deactivated");
    assert!(api_status(&c, LEAVER).await);
    let shot = report
        .evidence
        .iter()
        .find(|e| e.label == "before-confirmation")
        .expect("a screenshot of the confirmation");
    assert!(std::path::Path::new(&shot.path).exists());
    // The person's checklist: what roster did, and the confirmation left.
    assert!(
        report
            .checklist
            .iter()
            .any(|l| l.starts_with("Done by roster:") && l.contains(LEAVER))
    );
    assert_eq!(
        report.checklist.last().map(String::as_str),
        Some("Check Spendesk says the member is deactivated.")
    );
    assert!(report.summary().contains("unverified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_changed_beyond_the_runbook_stops_without_acting() {
    let s = Setup::new().await;
    s.sim.set_console_layout(Layout::Redesign);
    let c = Arc::new(s.connector(runbook(true), SignInMode::Local, s.local()));
    let report = c.run_one(LEAVER).await.unwrap();
    let Outcome::Stopped { step, why } = &report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert_eq!(
        c.runbook().steps[*step].checklist_line(),
        "Click button \"Deactivate member\""
    );
    assert!(why.contains("also after re-reading the page"), "{why}");
    assert!(s.deactivations().is_empty());
    assert!(
        report
            .evidence
            .iter()
            .any(|e| e.label.starts_with("failed at step"))
    );
    assert!(api_status(&c, LEAVER).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_totp_seed_stops_at_sign_in_and_changes_nothing() {
    let s = Setup::new().await;
    s.sim.add_approval(LEAVER, "member3@example.com", "€1.00");
    let mut creds = s.local();
    creds.totp_seed = Some(SecretString::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
    let c = s.connector(runbook(true), SignInMode::Local, creds);
    let report = c.run_one(LEAVER).await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Stopped { why, .. } if why.contains("sign-in")),
        "{:?}",
        report.outcome
    );
    assert!(s.sim.effects().iter().all(|e| e.via != "console"));
    assert!(
        s.sim
            .console_events()
            .contains(&ConsoleEvent::SignInRefused {
                who: ADMIN.into(),
                why: "totp",
            })
    );
}
