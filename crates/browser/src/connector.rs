//! The `browser` path as a connector: reads go to the app's read connector
//! (Spendesk's members API), deactivations to the runbook.
//!
//! Every stop (an unverified runbook at its confirmation, a step that
//! failed twice, a console that changed) is an action failure that is not
//! retried (`retryable: false`) and goes to a person
//! ([`roster_connectors::Capabilities::failures_to_people`]): the engine
//! opens a task with the runbook's checklist and the screenshots so far.
//! A deactivation that ran to the end is `Applied`; the next read of the
//! members API shows whether it took, as for every path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use roster_catalog::Runbook;
use roster_connectors::{
    ActionResult, ApplyRequest, ApplyResponse, Capabilities, Connector, ConnectorError,
    ListRequest, OperationSupport, Page, SecretString, Validation, ValidationCheck,
};
use roster_core::{ConnectionId, Operation};

use crate::driver::{Chromedriver, DriverOptions};
use crate::evidence::{EvidenceSink, EvidenceStore};
use crate::run::{Outcome, RunReport, Runner};

/// How the runbook signs in to the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignInMode {
    /// The console's own login, with a TOTP code when it asks.
    #[default]
    Local,
    /// Through the company's IdP (OpenID Connect or SAML).
    Sso,
}

impl SignInMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMode::Local => "local",
            SignInMode::Sso => "sso",
        }
    }
    pub fn parse(s: &str) -> Option<SignInMode> {
        match s {
            "local" => Some(SignInMode::Local),
            "sso" => Some(SignInMode::Sso),
            _ => None,
        }
    }
}

/// The admin login the runbook uses (from roster's secret store).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
    /// Base32 TOTP seed, when the console asks for a code.
    pub totp_seed: Option<SecretString>,
    /// The IdP login, for SSO.
    pub idp_username: Option<String>,
    pub idp_password: Option<SecretString>,
}

/// A browser connection's settings.
#[derive(Clone, Debug)]
pub struct BrowserSettings {
    /// The admin console's base URL (`{console}`).
    pub console_url: String,
    pub signin: SignInMode,
    /// Run an unverified runbook's final confirmation too (the connection
    /// opts in); default: stop there for a person.
    pub run_unverified: bool,
    /// Who takes over a leaver's pending approvals (`{successor}`).
    pub successor: Option<String>,
    pub step_timeout: Duration,
    pub evidence: EvidenceStore,
    pub driver: DriverOptions,
}

/// Reads through `read`, deactivates through the runbook.
pub struct BrowserConnector {
    id: ConnectionId,
    read: Arc<dyn Connector>,
    runbook: Runbook,
    settings: BrowserSettings,
    credentials: Credentials,
    sink: Option<Arc<dyn EvidenceSink>>,
    /// The running chromedriver; the lock is also the one-session-per-
    /// connection rule: a run holds it from start to end.
    driver: tokio::sync::Mutex<Option<Chromedriver>>,
    reports: Mutex<Vec<RunReport>>,
}

impl BrowserConnector {
    /// `runbook` must be for deactivation.
    pub fn new(
        read: Arc<dyn Connector>,
        runbook: Runbook,
        settings: BrowserSettings,
        credentials: Credentials,
    ) -> Result<Self, ConnectorError> {
        if runbook.operation != Operation::Deactivate {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{}: runbook {} is for {}; the browser connector carries out deactivations",
                    read.id(),
                    runbook.id,
                    runbook.operation
                ),
            });
        }
        Ok(BrowserConnector {
            id: read.id().clone(),
            read,
            runbook,
            settings,
            credentials,
            sink: None,
            driver: tokio::sync::Mutex::new(None),
            reports: Mutex::new(Vec::new()),
        })
    }

    /// Where screenshot hashes go (the audit chain).
    pub fn with_sink(mut self, sink: Arc<dyn EvidenceSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }

    /// Every run's report so far (for `roster demo` and tests).
    pub fn reports(&self) -> Vec<RunReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Starts the connection's chromedriver now rather than at the first
    /// run (so that a measured run does not include it).
    pub async fn warm_up(&self) -> Result<(), crate::BrowserError> {
        let mut guard = self.driver.lock().await;
        if guard.is_none() {
            *guard = Some(Chromedriver::start(self.settings.driver.clone()).await?);
        }
        Ok(())
    }

    /// Runs the runbook for one account, in a fresh browser session.
    pub async fn run_one(&self, email: &str) -> Result<RunReport, crate::BrowserError> {
        let mut guard = self.driver.lock().await;
        if guard.is_none() {
            *guard = Some(Chromedriver::start(self.settings.driver.clone()).await?);
        }
        let Some(driver) = guard.as_ref() else {
            return Err(crate::BrowserError::Start("chromedriver is gone".into()));
        };
        let profile = std::env::temp_dir().join(format!(
            "roster-browser-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&profile)
            .map_err(|e| crate::BrowserError::Start(format!("{}: {e}", profile.display())))?;
        let session = driver.session(&profile).await;
        let client = match session {
            Ok(c) => c,
            Err(e) => {
                // chromedriver may have died: start a new one next time.
                *guard = None;
                let _ = std::fs::remove_dir_all(&profile);
                return Err(e);
            }
        };
        let runner = Runner {
            runbook: &self.runbook,
            console: &self.settings.console_url,
            credentials: &self.credentials,
            signin: self.settings.signin,
            run_unverified: self.settings.run_unverified,
            evidence: &self.settings.evidence,
            step_timeout: self.settings.step_timeout,
        };
        let report = runner
            .run(&client, email, self.settings.successor.as_deref())
            .await;
        let _ = client.close().await;
        drop(guard);
        let _ = std::fs::remove_dir_all(&profile);
        if let Some(sink) = &self.sink {
            for e in &report.evidence {
                sink.record(self.id.as_str(), email, &self.runbook.id, e)
                    .await;
            }
        }
        if let Ok(mut r) = self.reports.lock() {
            r.push(report.clone());
        }
        Ok(report)
    }
}

#[async_trait]
impl Connector for BrowserConnector {
    fn id(&self) -> &ConnectionId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = self.read.capabilities();
        caps.operations
            .insert(Operation::Deactivate, OperationSupport::supported(1));
        caps.dry_run = false;
        caps.deactivate_needs_current_attributes = false;
        caps.failures_to_people = true;
        caps
    }

    async fn validate(&self) -> Result<Validation, ConnectorError> {
        let mut v = self.read.validate().await?;
        let driver = &self.settings.driver;
        v.checks.push(
            if driver.chromedriver.exists() && driver.chromium.exists() {
                ValidationCheck::pass(
                    "browser",
                    format!(
                        "{} and {} are installed",
                        driver.chromedriver.display(),
                        driver.chromium.display()
                    ),
                )
            } else {
                ValidationCheck::fail(
                    "browser",
                    "chromium or chromedriver is missing (scripts/browser-tools.sh installs them)",
                )
            },
        );
        v.checks.push(ValidationCheck::pass(
            "runbook",
            format!(
                "{} ({})",
                self.runbook.id,
                if self.runbook.is_verified() {
                    "verified"
                } else if self.settings.run_unverified {
                    "unverified; the connection runs it to the end"
                } else {
                    "unverified: stops before the final confirmation for a person"
                }
            ),
        ));
        Ok(v)
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page, ConnectorError> {
        self.read.list_accounts(req).await
    }

    async fn apply(&self, req: ApplyRequest) -> Result<ApplyResponse, ConnectorError> {
        let mut results = Vec::with_capacity(req.actions.len());
        for a in &req.actions {
            if a.operation != Operation::Deactivate {
                results.push(ActionResult::failed(
                    format!(
                        "the browser path carries out deactivations only, not {}",
                        a.operation
                    ),
                    false,
                ));
                continue;
            }
            if req.dry_run {
                results.push(ActionResult::Skipped {
                    reason: "dry run".into(),
                });
                continue;
            }
            let result = match self.run_one(a.email.as_str()).await {
                Ok(report) => match &report.outcome {
                    Outcome::Done => ActionResult::Applied,
                    _ => ActionResult::failed(self.credentials_scrubbed(&report.summary()), false),
                },
                Err(e) => ActionResult::failed(e.to_string(), false),
            };
            results.push(result);
        }
        Ok(ApplyResponse::new(results))
    }
}

impl BrowserConnector {
    /// `text` with every secret replaced (a page may echo input back).
    fn credentials_scrubbed(&self, text: &str) -> String {
        let mut t = self.credentials.password.scrub(text);
        if let Some(s) = &self.credentials.totp_seed {
            t = s.scrub(&t);
        }
        if let Some(s) = &self.credentials.idp_password {
            t = s.scrub(&t);
        }
        t
    }
}
