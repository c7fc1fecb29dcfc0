//! Browser runbooks: roster drives an admin console that has no API with a
//! real browser, openly, from a runbook anyone can read
//! (`catalog/runbooks/*.toml`, [`roster_catalog::runbook`]).
//!
//! # Pieces
//!
//! * [`driver`]: Debian's chromedriver, spawned by roster on loopback, and
//!   one headless chromium session (a fresh profile) per run, over W3C
//!   WebDriver (fantoccini).
//! * [`selector`]: a runbook target (role and name, label, text, id; CSS
//!   as a fallback) as the locators to try, in that order.
//! * [`run`]: runs one runbook for one account: sign-in (local with a
//!   TOTP code, or SSO through the IdP) whenever the console asks,
//!   interruptions dismissed (cookie banners), each step waited for, a
//!   failed step retried **once** after re-reading the page (never a second
//!   click on the confirmation), an unverified runbook stopped before its
//!   confirmation, screenshots along the way.
//! * [`evidence`]: screenshots with configured regions blacked out
//!   **before** anything is stored, their SHA-256 handed to the audit chain
//!   ([`evidence::EvidenceSink`]) and the images kept under a retention
//!   period.
//! * [`connector`]: a [`roster_connectors::Connector`] for a connection on
//!   the `browser` path: reads through the app's read connector (Spendesk's
//!   members API), deactivates through the runbook, and hands every stop
//!   to a person (`failures_to_people`) with the checklist and screenshots.
//!
//! # Invariants
//!
//! * One browser session per connection at a time ([`connector`] holds a
//!   lock for the whole run), paced by the executor's rate budget.
//! * Secrets (password, TOTP seed) are typed only into sign-in fields: the
//!   catalog refuses a runbook that places them anywhere else (`CAT-0014`),
//!   and they never appear in logs, errors or evidence.
//! * A run never acts beyond its runbook: what it cannot find after one
//!   re-read stops it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod connector;
pub mod driver;
pub mod evidence;
pub mod run;
pub mod selector;

pub use connector::{BrowserConnector, BrowserSettings, Credentials, SignInMode};
pub use driver::{Chromedriver, DriverOptions};
pub use evidence::{Evidence, EvidenceSink, EvidenceStore};
pub use run::{Outcome, RunReport, Runner};

/// Errors setting up or running a browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// BRW-0001: chromedriver or chromium could not be started.
    #[error("BRW-0001 cannot start the browser: {0}")]
    Start(String),
    /// BRW-0002: the WebDriver session failed.
    #[error("BRW-0002 browser session failed: {0}")]
    Session(String),
    /// BRW-0003: evidence could not be stored.
    #[error("BRW-0003 cannot store evidence: {0}")]
    Evidence(String),
    /// BRW-0004: configuration (credentials, console URL) is missing.
    #[error("BRW-0004 {0}")]
    Config(String),
}

impl BrowserError {
    pub fn code(&self) -> &'static str {
        match self {
            BrowserError::Start(_) => "BRW-0001",
            BrowserError::Session(_) => "BRW-0002",
            BrowserError::Evidence(_) => "BRW-0003",
            BrowserError::Config(_) => "BRW-0004",
        }
    }
}

/// The current TOTP code (RFC 6238: SHA-1, 30 s, 6 digits) for a base32
/// seed at `unix` seconds.
pub fn totp_code(seed_base32: &str, unix: u64) -> Result<String, BrowserError> {
    let cleaned: String = seed_base32
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let secret = totp_rs::Secret::try_from_base32(&cleaned)
        .map_err(|_| BrowserError::Config("the TOTP seed is not base32".into()))?;
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .build_noncompliant();
    Ok(totp.generate(unix).to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn totp_matches_the_rfc_6238_sha1_vectors() {
        // "12345678901234567890" in base32.
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(super::totp_code(seed, 59).unwrap(), "287082");
        assert_eq!(super::totp_code(seed, 1_111_111_109).unwrap(), "081804");
        assert!(super::totp_code("not base32!", 59).is_err());
    }
}
