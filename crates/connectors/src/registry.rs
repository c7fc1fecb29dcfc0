//! Building connectors from configuration: one constructor per provisioning
//! path, chosen by the catalog's app id and path.
//!
//! The engine reads a connection's settings (URL, credentials, options)
//! and calls [`build`]. Dispatch is by *path* first, because a path is a
//! protocol: any app whose catalog record offers `scim` gets the SCIM
//! connector, with no code per app. `api` paths are vendor-specific.
//!
//! | app | path | connector | credentials |
//! |---|---|---|---|
//! | `expensify` | `api` | [`crate::expensify`] | `username` = partnerUserID, `secret` = partnerUserSecret |
//! | any | `scim` | [`crate::scim`] | `secret` = bearer token |
//! | `bill-spend-expense` | `api` | [`crate::bill_spend`] | `secret` = apiToken |
//! | any | `idp` (via Okta) | [`crate::okta_assign`] | `secret` = Okta API token, `okta_app_id` |
//! | `spendesk` | `api` | [`crate::spendesk`] | `username` = API key id, `secret` = API key secret |
//!
//! Without a `path`, [`default_path`] picks the app's usual one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use roster_core::ConnectionId;

use crate::bill_spend::{BillSpendConfig, BillSpendConnector};
use crate::expensify::{ExpensifyConfig, ExpensifyConnector};
use crate::okta_assign::{OktaAssignConfig, OktaAssignConnector};
use crate::scim::{ScimConfig, ScimConnector};
use crate::spendesk::{SpendeskConfig, SpendeskConnector};
use crate::{Connector, ConnectorError, SecretString};

/// Everything needed to build one connection's connector.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectorSettings {
    pub connection: ConnectionId,
    /// `api`, `scim` or `idp`; `None` = [`default_path`] for the app.
    pub path: Option<String>,
    /// The endpoint; `None` = the vendor's production URL where there is
    /// one (SCIM and Okta have none: required).
    pub base_url: Option<String>,
    /// The non-secret half of a credential pair (Expensify partnerUserID,
    /// Spendesk API key id).
    pub username: Option<String>,
    /// The secret: token, partner secret or API key secret.
    pub secret: Option<SecretString>,
    /// The IdP fronting the app on the `idp` path (only `okta` is built).
    pub idp: Option<String>,
    /// The Okta app integration id (`idp` path).
    pub okta_app_id: Option<String>,
    /// Expensify: read only these policies.
    pub policy_ids: Option<Vec<String>>,
    /// Expensify: `managerEmail` when the policy sets none.
    pub default_manager_email: Option<String>,
    pub timeout: Option<Duration>,
    /// The endpoint may be on a private or link-local network
    /// (`allow_private_network` in roster.toml).
    pub allow_private_network: bool,
    /// Anything else, by name (e.g. `default_role` for BILL, `page_size`).
    pub options: BTreeMap<String, String>,
}

impl ConnectorSettings {
    pub fn new(connection: ConnectionId) -> Self {
        ConnectorSettings {
            connection,
            path: None,
            base_url: None,
            username: None,
            secret: None,
            idp: None,
            okta_app_id: None,
            policy_ids: None,
            default_manager_email: None,
            timeout: None,
            allow_private_network: false,
            options: BTreeMap::new(),
        }
    }
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
    pub fn with_secret(mut self, secret: SecretString) -> Self {
        self.secret = Some(secret);
        self
    }
    pub fn with_idp(mut self, idp: impl Into<String>) -> Self {
        self.idp = Some(idp.into());
        self
    }
    pub fn with_okta_app_id(mut self, id: impl Into<String>) -> Self {
        self.okta_app_id = Some(id.into());
        self
    }
    pub fn with_policy_ids(mut self, ids: Vec<String>) -> Self {
        self.policy_ids = Some(ids);
        self
    }
    pub fn with_default_manager_email(mut self, email: impl Into<String>) -> Self {
        self.default_manager_email = Some(email.into());
        self
    }
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    pub fn with_option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }

    fn option_u32(&self, name: &str) -> Result<Option<u32>, ConnectorError> {
        self.options
            .get(name)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| ConnectorError::Config {
                    detail: format!(
                        "{}: option {name} = {v:?} is not a whole number",
                        self.connection
                    ),
                })
            })
            .transpose()
    }
}

impl fmt::Debug for ConnectorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorSettings")
            .field("connection", &self.connection)
            .field("path", &self.path)
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("secret", &self.secret)
            .field("idp", &self.idp)
            .field("okta_app_id", &self.okta_app_id)
            .field("policy_ids", &self.policy_ids)
            .field("options", &self.options)
            .finish()
    }
}

/// The (app, path) pairs with vendor-specific constructors. Any app also
/// builds on `scim` and on `idp` through Okta.
pub const BUILT_IN: [(&str, &str); 6] = [
    ("expensify", "api"),
    ("scim-app", "scim"),
    ("bill-com", "scim"),
    ("bill-spend-expense", "api"),
    ("bill-spend-expense", "idp"),
    ("spendesk", "api"),
];

/// The path used when the settings name none.
pub fn default_path(app: &str) -> Option<&'static str> {
    match app {
        "expensify" | "bill-spend-expense" | "spendesk" => Some("api"),
        "scim-app" | "bill-com" => Some("scim"),
        _ => None,
    }
}

/// Whether [`build`] can make a connector for `app` on `path`.
pub fn can_build(app: &str, path: &str) -> bool {
    matches!(path, "scim" | "idp") || BUILT_IN.contains(&(app, path))
}

fn required<'a, T>(
    value: Option<&'a T>,
    what: &str,
    settings: &ConnectorSettings,
) -> Result<&'a T, ConnectorError> {
    value.ok_or_else(|| ConnectorError::Config {
        detail: format!("{}: {what} is required", settings.connection),
    })
}

/// Builds the connector for `app` (a catalog id) from `settings`.
pub fn build(
    app: &str,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let path = match settings.path.as_deref() {
        Some(p) => p,
        None => default_path(app).ok_or_else(|| ConnectorError::Config {
            detail: format!(
                "{}: app {app:?} has no default path; set path to scim or idp",
                settings.connection
            ),
        })?,
    };
    let secret = || {
        required(
            settings.secret.as_ref(),
            "a secret (token or key secret)",
            settings,
        )
        .cloned()
    };
    let timeout = settings.timeout;
    match (app, path) {
        (_, "scim") => {
            let url = required(
                settings.base_url.as_ref(),
                "base_url (the SCIM base URL)",
                settings,
            )?;
            let mut c = ScimConfig::new(settings.connection.clone(), url.clone(), secret()?);
            c.app_name = app.to_string();
            c.allow_private_network = settings.allow_private_network;
            if let Some(t) = timeout {
                c.timeout = t;
            }
            if let Some(n) = settings.option_u32("page_size")? {
                c.page_size = n.max(1);
            }
            if let Some(v) = settings.options.get("use_etags") {
                c.use_etags = v != "false";
            }
            Ok(Arc::new(ScimConnector::new(c)?))
        }
        (_, "idp") => {
            match settings.idp.as_deref() {
                None | Some("okta") => {}
                Some(other) => {
                    return Err(ConnectorError::Config {
                        detail: format!(
                            "{}: roster assigns apps through Okta only; {other:?} is not supported on the idp path yet",
                            settings.connection
                        ),
                    });
                }
            }
            let url = required(
                settings.base_url.as_ref(),
                "base_url (the Okta org URL)",
                settings,
            )?;
            let app_id = required(settings.okta_app_id.as_ref(), "okta_app_id", settings)?;
            let mut c = OktaAssignConfig::new(
                settings.connection.clone(),
                url.clone(),
                secret()?,
                app_id.clone(),
            );
            c.app_name = app.to_string();
            c.allow_private_network = settings.allow_private_network;
            if let Some(t) = timeout {
                c.timeout = t;
            }
            if let Some(n) = settings.option_u32("page_size")? {
                c.page_size = n.max(1);
            }
            Ok(Arc::new(OktaAssignConnector::new(c)?))
        }
        ("expensify", "api") => {
            let user = required(
                settings.username.as_ref(),
                "username (partnerUserID)",
                settings,
            )?;
            let mut c = ExpensifyConfig::new(settings.connection.clone(), user.clone(), secret()?);
            if let Some(url) = &settings.base_url {
                c = c.with_base_url(url.clone());
            }
            c.policy_ids = settings.policy_ids.clone();
            c.default_manager_email = settings.default_manager_email.clone();
            c.allow_private_network = settings.allow_private_network;
            if let Some(t) = timeout {
                c.timeout = t;
            }
            Ok(Arc::new(ExpensifyConnector::new(c)?))
        }
        ("bill-spend-expense", "api") => {
            let mut c = BillSpendConfig::new(settings.connection.clone(), secret()?);
            if let Some(url) = &settings.base_url {
                c = c.with_base_url(url.clone());
            }
            if let Some(role) = settings.options.get("default_role") {
                c.default_role = role.to_ascii_uppercase();
            }
            if let Some(n) = settings.option_u32("page_size")? {
                c.page_size = n.clamp(1, 100);
            }
            c.allow_private_network = settings.allow_private_network;
            if let Some(t) = timeout {
                c.timeout = t;
            }
            Ok(Arc::new(BillSpendConnector::new(c)?))
        }
        ("spendesk", "api") => {
            let id = required(
                settings.username.as_ref(),
                "username (the API key id)",
                settings,
            )?;
            let mut c = SpendeskConfig::new(settings.connection.clone(), id.clone(), secret()?);
            if let Some(url) = &settings.base_url {
                c = c.with_base_url(url.clone());
            }
            c.allow_private_network = settings.allow_private_network;
            if let Some(t) = timeout {
                c.timeout = t;
            }
            Ok(Arc::new(SpendeskConnector::new(c)?))
        }
        (app, path) => Err(ConnectorError::Config {
            detail: format!(
                "{}: roster has no connector for {app} on the {path} path (the catalog may list it as manual or CSV)",
                settings.connection
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnectorSettings {
        ConnectorSettings::new(ConnectionId::new("c")).with_secret(SecretString::new("t0ken"))
    }

    #[test]
    fn builds_by_path_and_app() {
        let s = settings().with_base_url("http://127.0.0.1:1/scim/v2");
        assert!(build("scim-app", &s).is_ok());
        assert!(build("any-new-app", &s.clone().with_path("scim")).is_ok());
        let e = build("bill-com", &settings()).err().unwrap();
        assert!(e.to_string().contains("base_url"), "{e}");
        let s = settings()
            .with_base_url("http://127.0.0.1:1")
            .with_path("idp");
        let e = build("bill-spend-expense", &s).err().unwrap();
        assert!(e.to_string().contains("okta_app_id"), "{e}");
        assert!(build("bill-spend-expense", &s.with_okta_app_id("0oa1")).is_ok());
        assert!(build("bill-spend-expense", &settings()).is_ok());
        let e = build("spendesk", &settings()).err().unwrap();
        assert!(e.to_string().contains("username"), "{e}");
        assert!(build("spendesk", &settings().with_username("key")).is_ok());
        assert!(build("expensify", &settings().with_username("partner")).is_ok());
        let e = build("spendesk", &settings().with_path("csv"))
            .err()
            .unwrap();
        assert_eq!(e.code(), "CONN-0006");
        assert!(can_build("whatever", "scim") && !can_build("spendesk", "csv"));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", settings()).contains("t0ken"));
    }
}
