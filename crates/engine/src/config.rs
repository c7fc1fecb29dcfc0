//! roster's configuration file, read in two phases: [`RawConfig`] is the
//! TOML as written; [`Config`] is validated, with paths resolved against the
//! file's directory and secrets resolved from the environment or files.
//!
//! Secrets never appear inline: a secret field is `{ env = "NAME" }` or
//! `{ file = "path" }`, so `roster.toml` can be committed and shared.
//!
//! ```toml
//! database = "postgres://roster@db.internal/roster"   # default: SQLite in data_dir
//! data_dir = "/var/lib/roster"
//! policy = "policy.toml"
//! catalog_dir = "catalog.d"          # optional: app records that add to or replace the built-in ones
//!
//! [source]
//! hr_csv = "people.csv"
//!
//! [connections.expensify]
//! app = "expensify"
//! base_url = "https://integrations.expensify.com/Integration-Server/ExpensifyIntegrations"
//! policy_ids = ["E5A1B2C3D4E5F100"]  # optional: read only these workspaces
//! username = "aa_roster_example_com"  # partnerUserID (alias: partner_user_id)
//! secret = { env = "EXPENSIFY_PARTNER_SECRET" }   # (alias: partner_user_secret)
//!
//! [connections.bill]
//! app = "bill-spend-expense"
//! path = "idp"                       # api | scim | idp (default: the app's usual path)
//! idp = "okta"
//! plan = "enterprise"
//! base_url = "https://acme.okta.com"
//! okta_app_id = "0oa1bill2spend3"
//! secret = { env = "OKTA_API_TOKEN" }
//! default_manager_email = "ceo@example.com"   # for people with no manager
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A config problem, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where a secret comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    Env { env: String },
    File { file: PathBuf },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub hr_csv: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub app: String,
    /// `api`, `scim` or `idp`; default: the app's usual path.
    pub path: Option<String>,
    pub base_url: Option<String>,
    #[serde(default)]
    pub policy_ids: Option<Vec<String>>,
    /// The non-secret half of a credential (Expensify partnerUserID,
    /// Spendesk API key id).
    #[serde(alias = "partner_user_id")]
    pub username: Option<String>,
    /// The token or secret (Expensify partnerUserSecret, SCIM bearer token,
    /// BILL apiToken, Okta API token, Spendesk key secret).
    #[serde(alias = "partner_user_secret")]
    pub secret: Option<SecretRef>,
    /// The Okta app integration id, for the `idp` path.
    pub okta_app_id: Option<String>,
    /// Connector-specific options (e.g. `default_role` for BILL).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Expensify: who people without a manager submit to (Expensify
    /// requires a managerEmail on every employee).
    pub default_manager_email: Option<String>,
    /// Plan tier of the company's subscription (strategy selection).
    pub plan: Option<String>,
    /// The IdP that fronts this app, if any (strategy selection).
    pub idp: Option<String>,
    /// Hours a person has for a manual task on this connection.
    pub task_sla_hours: Option<u32>,
    /// Who manual tasks go to.
    pub assignee: Option<String>,
    /// Who hears when a manual task is overdue.
    pub escalate_to: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub catalog_dir: Option<PathBuf>,
    pub source: Option<RawSource>,
    #[serde(default)]
    pub connections: BTreeMap<String, RawConnection>,
}

/// A secret value: redacted in Debug, never Display.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    pub id: String,
    pub app: String,
    pub path: Option<String>,
    pub base_url: Option<String>,
    pub policy_ids: Option<Vec<String>>,
    pub username: Option<String>,
    pub secret: Option<Secret>,
    pub okta_app_id: Option<String>,
    pub options: BTreeMap<String, String>,
    pub default_manager_email: Option<String>,
    pub plan: Option<String>,
    pub idp: Option<String>,
    pub task_sla_hours: Option<u32>,
    pub assignee: Option<String>,
    pub escalate_to: Option<String>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub database: String,
    pub data_dir: PathBuf,
    pub policy: PathBuf,
    pub catalog_dir: Option<PathBuf>,
    pub hr_csv: Option<PathBuf>,
    pub connections: Vec<ConnectionConfig>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `env` looks up environment variables (a
    /// parameter so tests need not touch the process environment).
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| roster_core::policy::line_col(text, s.start))
                .unwrap_or((1, 1));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let data_dir = raw
            .data_dir
            .as_deref()
            .map(resolve)
            .unwrap_or_else(default_data_dir);
        let database = raw
            .database
            .clone()
            .unwrap_or_else(|| data_dir.join("roster.db").display().to_string());
        let policy = raw.policy.as_deref().map(resolve).ok_or_else(|| {
            invalid("`policy` is required: the path of the policy TOML file".into())
        })?;
        let mut connections = Vec::new();
        for (id, c) in &raw.connections {
            let secret = match &c.secret {
                None => None,
                Some(SecretRef::Env { env: name }) => Some(Secret::new(env(name).ok_or_else(|| {
                    invalid(format!(
                        "connections.{id}.secret: environment variable {name} is not set"
                    ))
                })?)),
                Some(SecretRef::File { file }) => {
                    let p = resolve(file);
                    let s = std::fs::read_to_string(&p).map_err(|e| {
                        invalid(format!(
                            "connections.{id}.secret: cannot read {}: {e}",
                            p.display()
                        ))
                    })?;
                    Some(Secret::new(s.trim().to_string()))
                }
            };
            connections.push(ConnectionConfig {
                id: id.clone(),
                app: c.app.clone(),
                path: c.path.clone(),
                base_url: c.base_url.clone(),
                policy_ids: c.policy_ids.clone(),
                username: c.username.clone(),
                secret,
                okta_app_id: c.okta_app_id.clone(),
                options: c.options.clone(),
                default_manager_email: c.default_manager_email.clone(),
                plan: c.plan.clone(),
                idp: c.idp.clone(),
                task_sla_hours: c.task_sla_hours,
                assignee: c.assignee.clone(),
                escalate_to: c.escalate_to.clone(),
            });
        }
        Ok(Config {
            path: path.to_path_buf(),
            database,
            data_dir,
            policy,
            catalog_dir: raw.catalog_dir.as_deref().map(resolve),
            hr_csv: raw.source.and_then(|s| s.hr_csv).as_deref().map(resolve),
            connections,
        })
    }
}

/// `$XDG_DATA_HOME/roster` (or the platform's equivalent), else `./.roster`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("roster"))
        .unwrap_or_else(|| PathBuf::from(".roster"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let text =
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n[source]\nhr_csv = \"hr/people.csv\"\n";
        let c = Config::parse(Path::new("/etc/roster/roster.toml"), text, &no_env).unwrap();
        assert_eq!(c.policy, PathBuf::from("/etc/roster/policy.toml"));
        assert_eq!(c.hr_csv, Some(PathBuf::from("/etc/roster/hr/people.csv")));
        assert_eq!(c.database, "/etc/roster/data/roster.db");
    }

    #[test]
    fn a_missing_secret_names_the_field_and_variable() {
        let text = "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\npartner_user_secret = { env = \"EXP_SECRET\" }\n";
        let err = Config::parse(Path::new("r.toml"), text, &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("connections.expensify.secret"), "{msg}");
        assert!(msg.contains("EXP_SECRET"), "{msg}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let text = "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\npartner_user_secret = { env = \"S\" }\n";
        let c = Config::parse(Path::new("r.toml"), text, &|_| Some("hunter2".into())).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(
            c.connections[0]
                .secret
                .as_ref()
                .unwrap()
                .expose(),
            "hunter2"
        );
    }

    #[test]
    fn syntax_errors_have_a_place_and_unknown_keys_are_refused() {
        let err = Config::parse(Path::new("r.toml"), "policy = \n", &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 1, .. }), "{err}");
        let err = Config::parse(
            Path::new("r.toml"),
            "policy = \"p\"\ndatabse = \"x\"\n",
            &no_env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("databse"), "{err}");
        assert!(err.to_string().starts_with("r.toml:2:"), "{err}");
    }

    #[test]
    fn policy_is_required() {
        let err = Config::parse(Path::new("r.toml"), "", &no_env).unwrap_err();
        assert!(err.to_string().contains("`policy` is required"), "{err}");
    }
}
