//! The `browser` path in the engine: admin-console runbooks
//! ([`roster_browser`]) as a connection's connector, their evidence in the
//! audit chain, and the people who take over when a runbook stops.
//!
//! * A connection configured with `[connections.NAME.browser]` reads
//!   through its app's read connector and deactivates through the app's
//!   runbook ([`wrap`]): the executor dispatches to it like any connector,
//!   so a runbook runs only for actions in an approved plan's queue.
//! * Its deactivations wait for approval when the runbook reassigns
//!   approvals or blocks cards first (the `financial_steps` guard;
//!   [`Engine::financial_connections`]).
//! * Every screenshot's SHA-256 is appended to the audit log
//!   (`browser.screenshot`, [`AuditEvidence`]); the image stays under the
//!   evidence folder for its retention period.
//! * A stop (unverified runbook at its confirmation, a step that failed
//!   twice, a changed console) becomes a person's task with the runbook's
//!   checklist and the screenshots so far ([`Engine::failures_to_people`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use roster_browser::{
    BrowserConnector, BrowserSettings, Credentials, DriverOptions, Evidence, EvidenceSink,
    EvidenceStore, SignInMode,
};
use roster_catalog::{Path, Runbook};
use roster_connectors::{Connector, ConnectorError, SecretString};
use roster_core::{Action, ConnectionId, Operation};
use roster_store::{AuditEvent, AuditKind, Store};
use serde_json::json;

use crate::config::SecretRef;
use crate::engine::{Engine, ms};

/// Default retention of screenshots.
pub const DEFAULT_EVIDENCE_RETENTION_DAYS: u32 = 90;

/// `[connections.NAME.browser]` as written; defined beside the rest of
/// the configuration's raw shapes so `config` does not import this module.
pub use crate::config::RawBrowser;

/// A browser connection's secrets, resolved.
pub struct BrowserSecrets {
    pub password: SecretString,
    pub totp_seed: Option<SecretString>,
    pub idp_password: Option<SecretString>,
}

/// Resolves one of a browser section's secrets: an environment variable,
/// a file next to the config, or a secret sealed in roster's store
/// (`stored`: opened with the caller's lookup).
pub fn resolve_secret(
    r: &SecretRef,
    base: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
    stored: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, String> {
    match r {
        SecretRef::Env { env: name } => env(name)
            .map(SecretString::new)
            .ok_or_else(|| format!("environment variable {name} is not set")),
        SecretRef::File { file } => {
            let p: PathBuf = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            std::fs::read_to_string(&p)
                .map(|s| SecretString::new(s.trim()))
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        SecretRef::Stored { stored: name } => stored(name)
            .map(SecretString::new)
            .ok_or_else(|| format!("no stored secret {name:?} (roster secret set {name})")),
    }
}

/// Resolves a browser section's secrets; `{ stored = .. }` ones are
/// opened from roster's store with the master key (`ROSTER_MASTER_KEY` or
/// `<data_dir>/master.key`). Errors name the field, never a value.
pub async fn resolve_secrets(
    raw: &RawBrowser,
    base: &std::path::Path,
    store: &Store,
    data_dir: &std::path::Path,
) -> Result<BrowserSecrets, String> {
    let refs: Vec<(&str, &SecretRef)> = [
        Some(("password", &raw.password)),
        raw.totp_seed.as_ref().map(|r| ("totp_seed", r)),
        raw.idp_password.as_ref().map(|r| ("idp_password", r)),
    ]
    .into_iter()
    .flatten()
    .collect();
    use roster_secrets::ExposeSecret as _;
    let mut opened = std::collections::BTreeMap::new();
    if refs
        .iter()
        .any(|(_, r)| matches!(r, SecretRef::Stored { .. }))
    {
        let keyring = roster_secrets::Keyring::load_existing(data_dir)
            .map_err(|e| format!("cannot open stored secrets: {e}"))?;
        for (field, r) in &refs {
            if let SecretRef::Stored { stored } = r {
                let sealed = store
                    .secret(stored)
                    .await
                    .map_err(|e| format!("browser.{field}: {e}"))?;
                if let Some(sealed) = sealed {
                    let v = keyring
                        .open_string(&sealed, stored)
                        .map_err(|e| format!("browser.{field}: {e}"))?;
                    opened.insert(stored.clone(), v.expose_secret().to_string());
                }
            }
        }
    }
    let env = |n: &str| std::env::var(n).ok();
    let stored = |n: &str| opened.get(n).cloned();
    let one = |field: &str, r: &SecretRef| {
        resolve_secret(r, base, &env, &stored).map_err(|e| format!("browser.{field}: {e}"))
    };
    Ok(BrowserSecrets {
        password: one("password", &raw.password)?,
        totp_seed: raw
            .totp_seed
            .as_ref()
            .map(|r| one("totp_seed", r))
            .transpose()?,
        idp_password: raw
            .idp_password
            .as_ref()
            .map(|r| one("idp_password", r))
            .transpose()?,
    })
}

/// The connector for a browser connection: `read` for reads, `runbook`
/// for deactivations.
pub fn wrap(
    read: Arc<dyn Connector>,
    runbook: Runbook,
    raw: &RawBrowser,
    secrets: BrowserSecrets,
    evidence_dir: PathBuf,
    sink: Option<Arc<dyn EvidenceSink>>,
) -> Result<BrowserConnector, ConnectorError> {
    let signin = SignInMode::parse(&raw.signin).ok_or_else(|| ConnectorError::Config {
        detail: format!(
            "{}: browser.signin = {:?}: expected local or sso",
            read.id(),
            raw.signin
        ),
    })?;
    let days = raw
        .evidence_retention_days
        .unwrap_or(DEFAULT_EVIDENCE_RETENTION_DAYS);
    let settings = BrowserSettings {
        console_url: raw.console_url.clone(),
        signin,
        run_unverified: raw.run_unverified,
        successor: raw.successor.clone(),
        step_timeout: Duration::from_secs(raw.step_timeout_secs.unwrap_or(10)),
        evidence: EvidenceStore::new(evidence_dir, Duration::from_secs(u64::from(days) * 86_400)),
        driver: DriverOptions::default(),
    };
    let credentials = Credentials {
        username: raw.username.clone(),
        password: secrets.password,
        totp_seed: secrets.totp_seed,
        idp_username: raw.idp_username.clone(),
        idp_password: secrets.idp_password,
    };
    let c = BrowserConnector::new(read, runbook, settings, credentials)?;
    Ok(match sink {
        Some(s) => c.with_sink(s),
        None => c,
    })
}

/// Appends each screenshot's hash to the audit chain.
pub struct AuditEvidence {
    store: Store,
    actor: String,
}

#[async_trait]
impl EvidenceSink for AuditEvidence {
    async fn record(&self, connection: &str, subject: &str, runbook: &str, e: &Evidence) {
        let event = AuditEvent {
            at_ms: ms(time::OffsetDateTime::now_utc()),
            actor: self.actor.clone(),
            kind: AuditKind::BrowserScreenshot.as_str().to_string(),
            subject: format!("{connection}:{subject}"),
            data: json!({
                "connection": connection,
                "subject": subject,
                "runbook": runbook,
                "label": e.label,
                "sha256": e.sha256,
                "redacted_regions": e.redacted,
                "path": e.path,
            }),
        };
        if let Err(err) = self.store.append_audit(event).await {
            tracing::error!(error = %err, "cannot record a screenshot's hash in the audit log");
        }
    }
}

impl Engine {
    /// Where a browser connection's screenshot hashes go: this engine's
    /// audit log.
    pub fn evidence_sink(&self) -> Arc<dyn EvidenceSink> {
        Arc::new(AuditEvidence {
            store: self.store.clone(),
            actor: self.actor.clone(),
        })
    }

    /// The runbook that carries out `a`, when its connection is on the
    /// browser path for the operation.
    pub(crate) fn browser_runbook(&self, a: &Action) -> Option<&Runbook> {
        self.browser_runbook_for(&a.connection, a.operation)
    }

    fn browser_runbook_for(&self, connection: &ConnectionId, op: Operation) -> Option<&Runbook> {
        let catalog = self.catalog.as_ref()?;
        let binding = self.bindings.get(connection)?;
        if !binding.settings.browser_enabled {
            return None;
        }
        let app = catalog.get(&binding.app)?;
        let choice = roster_catalog::select_path(app, &binding.settings, op);
        if choice.path != Path::Browser {
            return None;
        }
        catalog.runbook(&binding.app, op)
    }

    /// Governed connections on the browser path whose deactivation runbook
    /// moves money or spending power first: the `financial_steps` guard
    /// holds their deactivations for approval.
    pub(crate) fn financial_connections(&self) -> BTreeSet<ConnectionId> {
        self.policy
            .governed_connections()
            .into_iter()
            .filter(|c| {
                self.browser_runbook_for(c, Operation::Deactivate)
                    .is_some_and(Runbook::has_financial_steps)
            })
            .collect()
    }
}
