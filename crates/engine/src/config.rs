//! roster's configuration file, read in two phases: [`RawConfig`] is the
//! TOML as written; [`Config`] is validated, with paths resolved against the
//! file's directory. Secrets are only *referenced* there.
//!
//! Secrets never appear inline: a secret field is `{ env = "NAME" }`,
//! `{ file = "path" }` or `{ stored = "name" }`, so `roster.toml` can be
//! committed and shared.
//!
//! Secrets are resolved only when a connector is about to be built, so
//! commands that read roster's own database (`tasks`, `matches`, `approve`,
//! `reject`, `report`, `audit verify`, `connections list`) run on a machine
//! that holds no vendor credential. [`Config::load`] checks the references
//! (a stored secret's name is valid) without opening any of them;
//! [`Config::resolve_secrets`] reads `env` and `file` secrets, and
//! [`Config::resolve_stored_secrets`] (or [`Config::resolve_stored`] with
//! any lookup) opens `{ stored = "name" }` ones, which needs the store
//! (async) and the master key. A connection's `secret` is `None` until
//! then; resolve before building connectors.
//!
//! ```toml
//! database = "postgres://roster@db.internal/roster"   # default: SQLite in data_dir
//! data_dir = "/var/lib/roster"
//! policy = "policy.toml"
//! catalog_dir = "catalog.d"          # optional: app records that add to or replace the built-in ones
//!
//! [company]
//! time_zone = "Europe/Paris"         # IANA name; default "UTC". Start and end dates are days here
//! provision_days_before_start = 3    # default 0: joiners get access on their start date
//!
//! [source]
//! hr_file = "people.xlsx"            # .csv, .xlsx or .json (or hr_format = "csv" | "xlsx" | "json")
//! # hr_csv = "people.csv"            # the older name, still read
//!
//! # Identity providers as sources of people (see `crate::sources` for how
//! # several sources are merged: HR owns status, dates and cost center; an
//! # IdP owns addresses, groups and manager).
//! [sources.okta]
//! kind = "okta"                      # okta | entra | google | onelogin
//! base_url = "https://acme.okta.com"
//! secret = { env = "OKTA_API_TOKEN" }   # a read-only admin's SSWS token (alias: token)
//! # client_id = "0oa..."             # Okta: an OAuth service app instead; secret = its private key (PEM)
//! # key_id = "kid-1"
//! # rate_share = 0.5                 # share of the org's rate limit roster may use
//! # revoke_sessions = true           # end a leaver's IdP sessions first in `roster offboard`
//! #                                  # (off by default: it needs a write permission, see README)
//! # poll_interval = "1m"             # `roster serve`/`run`: read changes this often (incremental sources)
//! # full_read_every = "24h"          # read whole again this often, though changes can be read (default 24h)
//! # Okta event hook at POST/GET /hooks/okta/okta on `roster serve`: Okta must send this header
//! # and value (Okta's "Authentication field" and "secret"); a hook only names people to re-read.
//! # event_hook_secret = { env = "OKTA_HOOK_SECRET" }
//! # event_hook_header = "Authorization"   # the default
//!
//! [sources.entra]
//! kind = "entra"
//! tenant_id = "contoso.onmicrosoft.com"
//! client_id = "11111111-2222-3333-4444-555555555555"
//! secret = { env = "ENTRA_CLIENT_SECRET" }   # (alias: client_secret)
//! # base_url = "https://graph.microsoft.com/v1.0"; login_url = "https://login.microsoftonline.com"
//!
//! [sources.google]
//! kind = "google"
//! service_account = "roster@acme-project.iam.gserviceaccount.com"
//! admin = "admin@acme.example"       # the admin the service account acts as
//! secret = { file = "google-sa.pem" }   # the service account's private key (alias: private_key)
//! # customer = "my_customer"; base_url = "https://admin.googleapis.com"; token_url = ...
//!
//! [sources.onelogin]
//! kind = "onelogin"
//! base_url = "https://acme.onelogin.com"
//! client_id = "..."
//! secret = { env = "ONELOGIN_CLIENT_SECRET" }
//!
//! [connections.expensify]
//! app = "expensify"
//! base_url = "https://integrations.expensify.com/Integration-Server/ExpensifyIntegrations"
//! policy_ids = ["E5A1B2C3D4E5F100"]  # optional: read only these workspaces
//! username = "aa_roster_example_com"  # partnerUserID (alias: partner_user_id)
//! secret = { env = "EXPENSIFY_PARTNER_SECRET" }   # (alias: partner_user_secret)
//! # or, sealed in the database by `roster secret set expensify-partner-secret`:
//! # secret = { stored = "expensify-partner-secret" }
//!
//! [connections.bill]
//! app = "bill-spend-expense"
//! path = "idp"                       # api | scim | idp (default: what the catalog selects)
//! idp = "okta"
//! plan = "enterprise"
//! base_url = "https://acme.okta.com"
//! okta_app_id = "0oa1bill2spend3"
//! secret = { env = "OKTA_API_TOKEN" }
//! # Or assignment by membership in allowlisted groups (Okta, Entra ID,
//! # OneLogin roles); roster never touches any other group:
//! # idp = "entra"
//! # base_url = "https://graph.microsoft.com/v1.0"
//! # username = "<client id>"
//! # options = { tenant = "contoso.onmicrosoft.com" }
//! # idp_app_id = "<servicePrincipal object id>"
//! # groups = ["BILL Users"]
//! default_manager_email = "ceo@example.com"   # for people with no manager
//! # allow_private_network = true   # base_url may be a private or link-local address
//!
//! [audit]
//! # Signed checkpoints of the audit chain go to witnesses the database's
//! # owner cannot rewrite (see `crate::anchor`). One table or a list.
//! witness = [{ file = "/mnt/witness/roster-audit.jsonl" },
//!            { webhook = "https://siem.example.com/roster-checkpoints" }]
//! signing_key = "/etc/roster/audit-signing.key"   # default: <data_dir>/audit-signing.key
//! previous_keys = []                 # public keys (hex) of replaced signing keys
//! checkpoint_interval_secs = 60      # `roster run` / `serve`
//!
//! [operators.alice]                  # the operating-system user `alice`
//! name = "alice"                     # the principal's name (default: the OS user)
//! groups = ["it", "finance"]         # for `approvers = ["group:finance"]`
//! ```
//!
//! `[operators]` maps the operating-system users who may run roster's
//! changing commands to principals (see `roster_core::principal`). With no
//! `[operators]`, whoever runs roster is the principal `user:<os user>`;
//! with some, an unlisted OS user is refused. The OS user comes from the
//! process's real user ID, never from `$USER`.
//!
//! Every `base_url` is checked at load ([`crate::egress`]): cloud metadata
//! addresses are refused, link-local and private-network ones unless
//! `allow_private_network = true` is set on the connection or at the top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use roster_core::ConnectionId;
use roster_core::vocabulary::Vocabulary;
use roster_secrets::{ExposeSecret, Keyring};
use roster_store::Store;

/// The person attribute naming the identity provider their IdP attributes
/// came from (policies may select on it when sources are configured).
pub const IDP_SOURCE: &str = roster_core::reconcile::IDP_SOURCE_ATTRIBUTE;
/// A config problem, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("CONFIG-0001 cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Keeps the compiler's shape (`file:line:column: message`, so editors
    /// jump to it), like policy errors; the code is in [`Self::code`].
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("CONFIG-0003 {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    /// The stable code, at the start of the message except for a syntax
    /// error (which starts with its place). An invalid setting's message
    /// may name a more specific code (`EGRESS-0002`, `SEC-0006`).
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "CONFIG-0001",
            ConfigError::Syntax { .. } => "CONFIG-0002",
            ConfigError::Invalid { .. } => "CONFIG-0003",
        }
    }
}

/// Where a secret comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable.
    Env { env: String },
    /// A file (trimmed), relative to the config file.
    File { file: PathBuf },
    /// A secret sealed in roster's database under this name.
    Stored { stored: String },
}

/// A `{ stored = "name" }` secret not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecretRef {
    /// The connection id (the `[connections.<id>]` table), or
    /// `source.<name>` for a `[sources.<name>]` table
    /// ([`SourceConfig::connection_id`]).
    pub connection: String,
    /// The stored secret's name.
    pub name: String,
}

impl StoredSecretRef {
    fn place(&self) -> String {
        match self.connection.strip_prefix(SOURCE_PREFIX) {
            Some(name) => format!("sources.{name}.secret"),
            None => format!("connections.{}.secret", self.connection),
        }
    }
}

/// The connection-id prefix of a configured source: its rate budget, its
/// audit events and its stored secret are keyed by `source.<name>`; a
/// `[connections.<id>]` id may not begin with it, so the two never collide.
pub const SOURCE_PREFIX: &str = "source.";

/// Just where roster keeps its data: enough for commands that manage the
/// store itself (`roster secret ...`, `roster audit ...`) without the rest
/// of the config (policy, connection secrets) having to be valid.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub database: String,
    pub data_dir: PathBuf,
    /// `[audit]`: witnesses and the checkpoint signing key.
    pub audit: AuditConfig,
}

/// One witness as written in `[audit] witness`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum RawWitness {
    /// An append-only JSON-lines file, meant to live on another volume.
    File { file: PathBuf },
    /// An HTTP(S) endpoint that receives each checkpoint as a JSON POST.
    Webhook { webhook: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    witness: Option<OneOrMany<RawWitness>>,
    signing_key: Option<PathBuf>,
    #[serde(default)]
    previous_keys: Vec<String>,
    checkpoint_interval_secs: Option<u64>,
}

/// Where audit checkpoints go and what signs them (see `crate::anchor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Witnesses, paths resolved against the config file. Empty: the audit
    /// log is not anchored outside the database.
    pub witnesses: Vec<RawWitness>,
    /// The Ed25519 signing key file (created on first use, mode 0600).
    pub signing_key: PathBuf,
    /// Public keys (hex) of earlier signing keys whose checkpoints are
    /// still trusted.
    pub previous_keys: Vec<String>,
    /// How often `roster run` / `serve` checkpoint.
    pub checkpoint_interval: std::time::Duration,
    /// Webhook witnesses may be on private networks (the top-level
    /// `allow_private_network`).
    pub allow_private_network: bool,
}

/// The signing key's file name in the data directory.
pub const AUDIT_SIGNING_KEY_FILE: &str = "audit-signing.key";

/// What a policy is checked against: where the policy and the HR file are,
/// and which connections are configured. Read without resolving any
/// secret, so `roster policy check` needs none.
#[derive(Clone, Debug)]
pub struct PolicyContext {
    pub config: PathBuf,
    pub policy: PathBuf,
    pub hr_csv: Option<PathBuf>,
    pub hr_format: crate::hr_file::HrFormat,
    pub connections: Vec<String>,
    /// Identity providers are configured (`[sources.<name>]`): their
    /// people carry `idp_id`, `idp_state`, `idp_flag` and `idp_source`.
    pub idp_sources: bool,
}

impl PolicyContext {
    /// The deployment's [`Vocabulary`]: its connections, and the attributes
    /// its sources provide (reads the HR file's header for its extra
    /// columns).
    pub fn vocabulary(&self) -> Result<Vocabulary, ConfigError> {
        let extra = match &self.hr_csv {
            Some(hr) => {
                let bytes = std::fs::read(hr).map_err(|e| ConfigError::Invalid {
                    path: self.config.clone(),
                    message: format!(
                        "source.hr_file: cannot read {} to learn its columns: {e}",
                        hr.display()
                    ),
                })?;
                crate::hr_file::extra_columns(self.hr_format, &bytes)
            }
            None => Vec::new(),
        };
        let mut extra = extra;
        if self.idp_sources {
            extra.extend(["idp_id", "idp_state", "idp_flag", IDP_SOURCE].map(String::from));
        }
        Ok(Vocabulary::new(
            self.connections
                .iter()
                .map(|c| ConnectionId::new(c.as_str())),
            extra,
        ))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// The older name of `hr_file` (a CSV file); still read.
    pub hr_csv: Option<PathBuf>,
    /// The HR file: CSV, XLSX or JSON, by extension or `hr_format`.
    pub hr_file: Option<PathBuf>,
    pub hr_format: Option<String>,
}

/// `[company]`: the company's calendar (see `roster_core::calendar`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompany {
    /// IANA time zone name; default `UTC`.
    pub time_zone: Option<String>,
    /// Days before a joiner's start date their access is provisioned;
    /// default 0 (on the start date).
    pub provision_days_before_start: Option<u32>,
}

/// Which identity provider a `[sources.<name>]` table reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKindName {
    Okta,
    Entra,
    Google,
    #[serde(alias = "one_login")]
    Onelogin,
}

impl SourceKindName {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKindName::Okta => "okta",
            SourceKindName::Entra => "entra",
            SourceKindName::Google => "google",
            SourceKindName::Onelogin => "onelogin",
        }
    }
}

/// One `[sources.<name>]` table as written (module docs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdpSource {
    pub kind: SourceKindName,
    /// Okta: the org URL; Entra: the Graph URL; Google: the Admin SDK
    /// URL; OneLogin: the account's API URL.
    pub base_url: Option<String>,
    /// The credential: Okta's API token (or, with `client_id`, the OAuth
    /// service app's private key), Entra's or OneLogin's client secret,
    /// Google's service-account private key.
    #[serde(alias = "token", alias = "client_secret", alias = "private_key")]
    pub secret: Option<SecretRef>,
    pub client_id: Option<String>,
    /// Okta OAuth: the key's `kid`.
    pub key_id: Option<String>,
    /// Entra: the tenant (id or domain).
    pub tenant_id: Option<String>,
    /// Entra: the token endpoint's host.
    pub login_url: Option<String>,
    /// Google: the service account's address.
    pub service_account: Option<String>,
    /// Google: the admin the service account acts as.
    pub admin: Option<String>,
    /// Google: the customer (default `my_customer`).
    pub customer: Option<String>,
    /// Google: the token endpoint.
    pub token_url: Option<String>,
    /// Okta: the share of the org's rate limit roster may use (0 < share ≤ 1).
    pub rate_share: Option<f64>,
    pub page_size: Option<u32>,
    /// See [`RawConnection::allow_private_network`].
    pub allow_private_network: Option<bool>,
    /// End an offboarded person's sessions in this IdP, first, before any
    /// app account closes (`Roster::offboard`). Off by default: it needs
    /// a write permission a read-only credential lacks (README names the
    /// narrowest per IdP), and a credential that can write is a larger
    /// risk than one that reads.
    #[serde(default)]
    pub revoke_sessions: bool,
    /// How often the service reads changes (`"30s"`, `"5m"`, `"1h"`).
    pub poll_interval: Option<String>,
    /// How often a source is read whole although its changes can be read
    /// (default `"24h"`).
    pub full_read_every: Option<String>,
    /// Okta: the shared secret Okta's event hook sends (env or file).
    pub event_hook_secret: Option<SecretRef>,
    /// Okta: the header the event hook's secret travels in (default
    /// `Authorization`).
    pub event_hook_header: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub app: String,
    /// `api`, `scim` or `idp`, one the app's catalog record offers; default:
    /// what `roster_catalog::select_path` chooses for reading the app (see
    /// `roster_connectors::registry::route`).
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
    /// The app's id in the IdP on the `idp` path (Okta app id, Entra
    /// servicePrincipal object id, OneLogin app id).
    pub idp_app_id: Option<String>,
    /// The allowlisted IdP groups (OneLogin roles) the `idp` path may add
    /// people to and remove them from; no other group is ever changed.
    #[serde(default)]
    pub groups: Vec<String>,
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
    /// Who hears when a manual task is overdue (an address or
    /// `group:NAME`; see `[notify]`).
    pub escalate_to: Option<String>,
    /// The app's owners: who receives its tasks and approvals through a
    /// notification channel with `route = "owners"` (addresses or
    /// `group:NAME`).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Allow `base_url` to be a link-local or private-network address
    /// (see [`crate::egress`]); default: the top-level setting.
    pub allow_private_network: Option<bool>,
    /// The `browser` path: an admin login roster drives the app's console
    /// with, through its catalog runbook (see [`crate::browser`]).
    pub browser: Option<RawBrowser>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Allow every connection's `base_url` to be a link-local or
    /// private-network address (see [`crate::egress`]); default false.
    #[serde(default)]
    pub allow_private_network: bool,
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub catalog_dir: Option<PathBuf>,
    #[serde(default)]
    pub company: RawCompany,
    pub source: Option<RawSource>,
    /// Identity providers read as sources of people.
    #[serde(default)]
    pub sources: BTreeMap<String, RawIdpSource>,
    #[serde(default)]
    pub connections: BTreeMap<String, RawConnection>,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub operators: BTreeMap<String, Operator>,
    /// Where notifications go (see [`crate::notify`]).
    #[serde(default)]
    pub notify: RawNotify,
    /// The ITSM tool human tasks are mirrored to (see [`crate::tickets`]).
    pub tickets: Option<RawTickets>,
    /// The web UI (sign-in, roles).
    #[serde(default)]
    pub web: RawWeb,
}

/// `[web]`: the web UI (see [`crate::oidc`] for sign-in with the IdP).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Sign-in with the company's IdP over OpenID Connect.
    pub oidc: Option<RawWebOidc>,
    /// Role → the IdP groups (`group:NAME`) and emails that hold it.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

/// `[web.oidc]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebOidc {
    pub issuer: String,
    pub client_id: String,
    #[serde(alias = "secret")]
    pub client_secret: SecretRef,
    pub redirect_url: String,
    pub groups_claim: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub fresh_max_age_secs: Option<u64>,
    /// The issuer may be on a private network.
    #[serde(default)]
    pub allow_private_network: bool,
}

/// An operating-system user allowed to operate roster (`[operators.NAME]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// The principal's name; default: the OS user name.
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The catalog's id for an IdP a connection names: `entra` and `azure-ad`
/// are `entra-id` (what catalog records list in `idps`).
fn catalog_idp(idp: &str) -> String {
    match idp.trim().to_ascii_lowercase().as_str() {
        "entra" | "entra_id" | "azure-ad" | "azuread" => "entra-id".to_string(),
        other => other.to_string(),
    }
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
    /// The connection may reach private and link-local addresses (its own
    /// setting, else the top-level one); checked again when host names
    /// resolve (`roster_connectors::egress`).
    pub allow_private_network: bool,
    pub policy_ids: Option<Vec<String>>,
    pub username: Option<String>,
    /// Where the secret comes from, as configured.
    pub secret_ref: Option<SecretRef>,
    /// The secret itself: `None` until [`Config::resolve_secrets`] (and,
    /// for stored ones, [`Config::resolve_stored_secrets`]) ran.
    pub secret: Option<Secret>,
    pub okta_app_id: Option<String>,
    pub idp_app_id: Option<String>,
    pub groups: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub default_manager_email: Option<String>,
    pub plan: Option<String>,
    pub idp: Option<String>,
    pub task_sla_hours: Option<u32>,
    pub assignee: Option<String>,
    pub escalate_to: Option<String>,
    pub owners: Vec<String>,
    /// `[connections.NAME.browser]` as written (secrets unresolved).
    pub browser: Option<RawBrowser>,
}

/// A validated `[sources.<name>]` table. Built into a
/// `roster_sources::Source` by [`crate::sources::build`].
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The table's name.
    pub name: String,
    pub kind: SourceKindName,
    pub base_url: Option<String>,
    pub allow_private_network: bool,
    pub secret_ref: Option<SecretRef>,
    /// `None` until resolved (as for connections).
    pub secret: Option<Secret>,
    pub client_id: Option<String>,
    pub key_id: Option<String>,
    pub tenant_id: Option<String>,
    pub login_url: Option<String>,
    pub service_account: Option<String>,
    pub admin: Option<String>,
    pub customer: Option<String>,
    pub token_url: Option<String>,
    pub rate_share: Option<f64>,
    pub page_size: Option<u32>,
    /// Revoke an offboarded person's sessions here (see
    /// [`RawSource::revoke_sessions`]).
    pub revoke_sessions: bool,
    /// How often the service reads changes; `None`: only at full runs.
    pub poll_interval: Option<std::time::Duration>,
    /// How often the source is read whole although its changes can be
    /// read (incremental feeds can miss).
    pub full_read_every: std::time::Duration,
    /// The Okta event hook's shared secret, as configured.
    pub event_hook_secret_ref: Option<SecretRef>,
    /// Resolved; `None` until [`Config::resolve_secrets`] ran (or when no
    /// hook is configured).
    pub event_hook_secret: Option<Secret>,
    /// The header the event hook's secret travels in.
    pub event_hook_header: String,
}

/// The default of `[sources.<name>] full_read_every`.
pub const FULL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The default of `[sources.<name>] event_hook_header`.
pub const EVENT_HOOK_HEADER: &str = "Authorization";

/// Parses a duration as the config writes them: a whole number and a unit,
/// `s`, `m`, `h` or `d` (`"90s"`, `"5m"`, `"24h"`); at least a second.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

impl SourceConfig {
    /// `source.<name>`: the id its rate budget and audit events use.
    pub fn connection_id(&self) -> String {
        format!("{SOURCE_PREFIX}{}", self.name)
    }
}

/// `[company]` as a calendar; the error names the fix.
fn calendar(company: &RawCompany) -> Result<roster_core::Calendar, String> {
    roster_core::Calendar::new(
        company.time_zone.as_deref().unwrap_or("UTC"),
        company.provision_days_before_start.unwrap_or(0),
    )
    .map_err(|e| format!("company.time_zone: {e}"))
}

/// `[source]`'s HR file and its format: `hr_file` (or the older
/// `hr_csv`, never both), the format from `hr_format` or the extension.
fn hr_source(
    source: Option<&RawSource>,
) -> Result<(Option<PathBuf>, crate::hr_file::HrFormat), String> {
    use crate::hr_file::HrFormat;
    let Some(s) = source else {
        return Ok((None, HrFormat::Csv));
    };
    let file = match (&s.hr_file, &s.hr_csv) {
        (Some(_), Some(_)) => {
            return Err(
                "source: set `hr_file` or `hr_csv`, not both (`hr_csv` is the older name of `hr_file`)"
                    .into(),
            );
        }
        (Some(f), None) => Some(f.clone()),
        (None, Some(f)) => Some(f.clone()),
        (None, None) => None,
    };
    let format = match (&s.hr_format, &file) {
        (Some(name), _) => HrFormat::parse(name).ok_or_else(|| {
            format!("source.hr_format: {name:?} is not one of csv, xlsx, json")
        })?,
        (None, Some(_)) if s.hr_csv.is_some() => HrFormat::Csv,
        (None, Some(f)) => HrFormat::from_path(f).ok_or_else(|| {
            format!(
                "source.hr_file: cannot tell the format of {} from its extension: name it .csv, .xlsx or .json, or set hr_format",
                f.display()
            )
        })?,
        (None, None) => HrFormat::Csv,
    };
    Ok((file, format))
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub database: String,
    pub data_dir: PathBuf,
    pub policy: PathBuf,
    pub catalog_dir: Option<PathBuf>,
    /// The HR file (`[source] hr_file`, or the older `hr_csv`), whatever
    /// its format; see [`Config::hr_format`].
    pub hr_csv: Option<PathBuf>,
    /// The HR file's format (`hr_format`, else from its extension).
    pub hr_format: crate::hr_file::HrFormat,
    /// `[company]`: time zone and provisioning lead for dated joiners and
    /// leavers.
    pub calendar: roster_core::Calendar,
    /// `[sources.<name>]`: identity providers read as sources of people.
    pub sources: Vec<SourceConfig>,
    pub connections: Vec<ConnectionConfig>,
    /// `{ stored = "..." }` secrets still to resolve (their connection's
    /// `secret` is `None` until then); empty once
    /// [`Config::resolve_stored`] succeeded.
    pub stored_secrets: Vec<StoredSecretRef>,
    /// `[audit]`: witnesses and the checkpoint signing key.
    pub audit: AuditConfig,
    /// `[operators]`: OS users mapped to principals (module docs).
    pub operators: BTreeMap<String, Operator>,
    /// `[notify]` as written (secrets unresolved): build the channels with
    /// [`crate::notify::Notifier::from_config`].
    pub notify: RawNotify,
    /// `[tickets]` as written: build the client with
    /// [`crate::tickets::TicketSystem::from_config`].
    pub tickets: Option<RawTickets>,
    /// The top-level `allow_private_network`.
    pub allow_private_network: bool,
    /// `[web]` as written (secrets unresolved): build sign-in with
    /// [`crate::oidc::OidcSettings::new`].
    pub web: RawWeb,
}

impl Config {
    /// Reads every `{ env = .. }` and `{ file = .. }` secret (`env` looks
    /// up environment variables). Call it when connectors are about to be
    /// built, never for commands that only read roster's database. On
    /// error nothing is changed; the message names the field, never a
    /// value.
    pub fn resolve_secrets(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let base = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            message,
        };
        let mut found = Vec::new();
        let refs = self
            .connections
            .iter()
            .map(|c| (c.id.clone(), format!("connections.{}", c.id), &c.secret_ref))
            .chain(self.sources.iter().map(|s| {
                (
                    s.connection_id(),
                    format!("sources.{}", s.name),
                    &s.secret_ref,
                )
            }));
        for (id, place, secret_ref) in refs {
            let value = match secret_ref {
                None | Some(SecretRef::Stored { .. }) => continue,
                Some(SecretRef::Env { env: name }) => env(name).ok_or_else(|| {
                    invalid(format!(
                        "{place}.secret: environment variable {name} is not set"
                    ))
                })?,
                Some(SecretRef::File { file }) => {
                    let p = if file.is_absolute() {
                        file.clone()
                    } else {
                        base.join(file)
                    };
                    std::fs::read_to_string(&p)
                        .map_err(|e| {
                            invalid(format!("{place}.secret: cannot read {}: {e}", p.display()))
                        })?
                        .trim()
                        .to_string()
                }
            };
            found.push((id, Secret::new(value)));
        }
        let mut hooks = Vec::new();
        for s in &self.sources {
            let place = format!("sources.{}.event_hook_secret", s.name);
            let value = match &s.event_hook_secret_ref {
                None | Some(SecretRef::Stored { .. }) => continue,
                Some(SecretRef::Env { env: name }) => env(name).ok_or_else(|| {
                    invalid(format!("{place}: environment variable {name} is not set"))
                })?,
                Some(SecretRef::File { file }) => {
                    let p = if file.is_absolute() {
                        file.clone()
                    } else {
                        base.join(file)
                    };
                    std::fs::read_to_string(&p)
                        .map_err(|e| invalid(format!("{place}: cannot read {}: {e}", p.display())))?
                        .trim()
                        .to_string()
                }
            };
            if value.len() < 16 {
                return Err(invalid(format!(
                    "{place}: the secret is shorter than 16 characters; use a long random value"
                )));
            }
            hooks.push((s.name.clone(), Secret::new(value)));
        }
        for (id, secret) in found {
            self.set_secret(&id, secret);
        }
        for (name, secret) in hooks {
            if let Some(s) = self.sources.iter_mut().find(|s| s.name == name) {
                s.event_hook_secret = Some(secret);
            }
        }
        Ok(())
    }

    /// Sets the resolved secret of the connection or source (`source.<name>`)
    /// with this id.
    fn set_secret(&mut self, id: &str, secret: Secret) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.id == id) {
            c.secret = Some(secret);
        } else if let Some(s) = self.sources.iter_mut().find(|s| s.connection_id() == id) {
            s.secret = Some(secret);
        }
    }
}

impl Config {
    /// Reads and validates a config file. Secrets stay unresolved (see the
    /// module docs).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_unresolved(path, &text)
    }

    /// Reads only `database` and `data_dir` from a config file (for
    /// commands that manage the store itself).
    pub fn load_storage(path: &Path) -> Result<StorageConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = parse_raw(path, &text)?;
        storage(&raw, path)
    }

    /// Reads only what checking a policy needs ([`PolicyContext`]): no
    /// secret is resolved.
    pub fn load_policy_context(path: &Path) -> Result<PolicyContext, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = parse_raw(path, &text)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| base.join(p);
        let policy = raw
            .policy
            .as_deref()
            .map(resolve)
            .ok_or_else(|| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "`policy` is required: the path of the policy TOML file".into(),
            })?;
        Ok(PolicyContext {
            config: path.to_path_buf(),
            policy,
            hr_csv: hr_source(raw.source.as_ref())
                .map_err(|message| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message,
                })?
                .0
                .as_deref()
                .map(resolve),
            hr_format: hr_source(raw.source.as_ref())
                .map(|(_, f)| f)
                .unwrap_or_default(),
            connections: raw.connections.into_keys().collect(),
            idp_sources: !raw.sources.is_empty(),
        })
    }

    /// This config's [`PolicyContext`].
    pub fn policy_context(&self) -> PolicyContext {
        PolicyContext {
            config: self.path.clone(),
            policy: self.policy.clone(),
            hr_csv: self.hr_csv.clone(),
            hr_format: self.hr_format,
            connections: self.connections.iter().map(|c| c.id.clone()).collect(),
            idp_sources: !self.sources.is_empty(),
        }
    }

    /// Parses config text and resolves its `env` and `file` secrets; `env`
    /// looks up environment variables (a parameter so tests need not touch
    /// the process environment). `{ stored = ... }` secrets are left for
    /// [`Config::resolve_stored`].
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Self::parse_unresolved(path, text)?;
        config.resolve_secrets(env)?;
        Ok(config)
    }

    /// Parses config text without resolving any secret.
    pub fn parse_unresolved(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw = parse_raw(path, text)?;
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
        let StorageConfig {
            database,
            data_dir,
            audit,
        } = storage(&raw, path)?;
        let mut stored_secrets = Vec::new();
        let policy = raw.policy.as_deref().map(resolve).ok_or_else(|| {
            invalid("`policy` is required: the path of the policy TOML file".into())
        })?;
        let mut connections = Vec::new();
        for (id, c) in &raw.connections {
            if id.starts_with(SOURCE_PREFIX) {
                return Err(invalid(format!(
                    "connections.{id}: a connection id may not begin with `{SOURCE_PREFIX}` \
                     (those name the [sources] tables)"
                )));
            }
            if let Some(url) = &c.base_url {
                let allow = c.allow_private_network.unwrap_or(raw.allow_private_network);
                crate::egress::check_url(url, allow)
                    .map_err(|e| invalid(format!("connections.{id}.base_url: {e}")))?;
            }
            for (key, who) in c
                .owners
                .iter()
                .map(|o| ("owners", o))
                .chain(c.escalate_to.iter().map(|e| ("escalate_to", e)))
            {
                check_recipient(who, &raw.notify.groups)
                    .map_err(|e| invalid(format!("connections.{id}.{key}: {e}")))?;
            }
            if let Some(SecretRef::Stored { stored }) = &c.secret {
                roster_secrets::check_name(stored)
                    .map_err(|e| invalid(format!("connections.{id}.secret: {e}")))?;
                stored_secrets.push(StoredSecretRef {
                    connection: id.clone(),
                    name: stored.clone(),
                });
            }
            connections.push(ConnectionConfig {
                id: id.clone(),
                app: c.app.clone(),
                path: c.path.clone(),
                base_url: c.base_url.clone(),
                allow_private_network: c.allow_private_network.unwrap_or(raw.allow_private_network),
                policy_ids: c.policy_ids.clone(),
                username: c.username.clone(),
                secret_ref: c.secret.clone(),
                secret: None,
                okta_app_id: c.okta_app_id.clone(),
                idp_app_id: c.idp_app_id.clone(),
                groups: c.groups.clone(),
                options: c.options.clone(),
                default_manager_email: c.default_manager_email.clone(),
                plan: c.plan.clone(),
                idp: c.idp.as_deref().map(catalog_idp),
                task_sla_hours: c.task_sla_hours,
                assignee: c.assignee.clone(),
                escalate_to: c.escalate_to.clone(),
                owners: c.owners.clone(),
                browser: c.browser.clone(),
            });
        }
        let mut sources = Vec::new();
        for (name, s) in &raw.sources {
            let place = format!("sources.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(format!(
                    "{place}: a source name may hold only letters, digits, `-` and `_`"
                )));
            }
            let allow = s.allow_private_network.unwrap_or(raw.allow_private_network);
            for (key, url) in [
                ("base_url", &s.base_url),
                ("login_url", &s.login_url),
                ("token_url", &s.token_url),
            ] {
                if let Some(url) = url {
                    crate::egress::check_url(url, allow)
                        .map_err(|e| invalid(format!("{place}.{key}: {e}")))?;
                }
            }
            let need = |key: &str, v: &Option<String>| {
                if v.is_none() {
                    Err(invalid(format!(
                        "{place}.{key} is required for kind = \"{}\"",
                        s.kind.as_str()
                    )))
                } else {
                    Ok(())
                }
            };
            match s.kind {
                SourceKindName::Okta => need("base_url", &s.base_url)?,
                SourceKindName::Entra => {
                    need("tenant_id", &s.tenant_id)?;
                    need("client_id", &s.client_id)?;
                }
                SourceKindName::Google => {
                    need("service_account", &s.service_account)?;
                    need("admin", &s.admin)?;
                }
                SourceKindName::Onelogin => {
                    need("base_url", &s.base_url)?;
                    need("client_id", &s.client_id)?;
                }
            }
            if s.secret.is_none() {
                return Err(invalid(format!(
                    "{place}.secret is required: a reference such as {{ env = \"NAME\" }}"
                )));
            }
            if let Some(share) = s.rate_share
                && !(share > 0.0 && share <= 1.0)
            {
                return Err(invalid(format!(
                    "{place}.rate_share must be more than 0 and at most 1"
                )));
            }
            let duration = |key: &str, v: &Option<String>| {
                v.as_deref()
                    .map(|t| {
                        parse_duration(t).ok_or_else(|| {
                            invalid(format!(
                                "{place}.{key} = {t:?} is not a duration: write a whole number and s, m, h or d, such as \"5m\" or \"24h\""
                            ))
                        })
                    })
                    .transpose()
            };
            let poll_interval = duration("poll_interval", &s.poll_interval)?;
            let full_read_every =
                duration("full_read_every", &s.full_read_every)?.unwrap_or(FULL_READ_EVERY);
            if s.event_hook_secret.is_some() || s.event_hook_header.is_some() {
                if s.kind != SourceKindName::Okta {
                    return Err(invalid(format!(
                        "{place}: event hooks are only for kind = \"okta\"; remove event_hook_secret and event_hook_header"
                    )));
                }
                match &s.event_hook_secret {
                    None => {
                        return Err(invalid(format!(
                            "{place}.event_hook_secret is required with event_hook_header: a reference such as {{ env = \"OKTA_HOOK_SECRET\" }}"
                        )));
                    }
                    Some(SecretRef::Stored { .. }) => {
                        return Err(invalid(format!(
                            "{place}.event_hook_secret: use {{ env = .. }} or {{ file = .. }}; stored secrets are for vendor credentials"
                        )));
                    }
                    Some(_) => {}
                }
            }
            if let Some(h) = &s.event_hook_header
                && (h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err(invalid(format!(
                    "{place}.event_hook_header must be a header name (letters, digits, `-`)"
                )));
            }
            let config = SourceConfig {
                poll_interval,
                full_read_every,
                event_hook_secret_ref: s.event_hook_secret.clone(),
                event_hook_secret: None,
                event_hook_header: s
                    .event_hook_header
                    .clone()
                    .unwrap_or_else(|| EVENT_HOOK_HEADER.to_string()),
                name: name.clone(),
                kind: s.kind,
                base_url: s.base_url.clone(),
                allow_private_network: allow,
                secret_ref: s.secret.clone(),
                secret: None,
                client_id: s.client_id.clone(),
                key_id: s.key_id.clone(),
                tenant_id: s.tenant_id.clone(),
                login_url: s.login_url.clone(),
                service_account: s.service_account.clone(),
                admin: s.admin.clone(),
                customer: s.customer.clone(),
                token_url: s.token_url.clone(),
                rate_share: s.rate_share,
                page_size: s.page_size,
                revoke_sessions: s.revoke_sessions,
            };
            if let Some(SecretRef::Stored { stored }) = &s.secret {
                roster_secrets::check_name(stored)
                    .map_err(|e| invalid(format!("{place}.secret: {e}")))?;
                stored_secrets.push(StoredSecretRef {
                    connection: config.connection_id(),
                    name: stored.clone(),
                });
            }
            sources.push(config);
        }
        let calendar = calendar(&raw.company).map_err(invalid)?;
        let (hr_file, hr_format) = hr_source(raw.source.as_ref()).map_err(invalid)?;
        Ok(Config {
            path: path.to_path_buf(),
            database,
            data_dir,
            policy,
            catalog_dir: raw.catalog_dir.as_deref().map(resolve),
            hr_csv: hr_file.as_deref().map(resolve),
            hr_format,
            calendar,
            sources,
            connections,
            stored_secrets,
            audit,
            operators: raw.operators,
            notify: raw.notify,
            tickets: raw.tickets,
            web: raw.web,
            allow_private_network: raw.allow_private_network,
        })
    }

    /// Resolves every `{ stored = "name" }` secret through `lookup`, which
    /// returns the secret's opened value, `None` when no secret has that
    /// name, or an error message (which must not contain the value). On
    /// error nothing is changed.
    pub fn resolve_stored(
        &mut self,
        lookup: &dyn Fn(&str) -> Result<Option<String>, String>,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            message,
        };
        let mut found = Vec::with_capacity(self.stored_secrets.len());
        for r in &self.stored_secrets {
            let value = lookup(&r.name)
                .map_err(|e| invalid(format!("{}: {e}", r.place())))?
                .ok_or_else(|| {
                    invalid(format!(
                        "{}: no stored secret named {:?}; store it with `roster secret set {}`",
                        r.place(),
                        r.name,
                        r.name
                    ))
                })?;
            found.push((r.connection.clone(), Secret::new(value)));
        }
        for (connection, secret) in found {
            self.set_secret(&connection, secret);
        }
        self.stored_secrets.clear();
        Ok(())
    }

    /// Resolves `{ stored = "name" }` secrets from the store, opening them
    /// with the master key ([`Keyring::load_existing`]: `ROSTER_MASTER_KEY`
    /// or `<data_dir>/master.key`; never created here). Does nothing, and
    /// needs no key, when the config names no stored secret.
    pub async fn resolve_stored_secrets(&mut self, store: &Store) -> Result<(), ConfigError> {
        if self.stored_secrets.is_empty() {
            return Ok(());
        }
        let keyring = Keyring::load_existing(&self.data_dir).map_err(|e| ConfigError::Invalid {
            path: self.path.clone(),
            message: format!("cannot open stored secrets: {e}"),
        })?;
        self.resolve_stored_with(store, &keyring).await
    }

    /// [`Config::resolve_stored_secrets`] with a given keyring.
    pub async fn resolve_stored_with(
        &mut self,
        store: &Store,
        keyring: &Keyring,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            message,
        };
        // Fetched and opened up front: the lookup below is synchronous.
        let mut opened = BTreeMap::new();
        for r in &self.stored_secrets {
            if opened.contains_key(&r.name) {
                continue;
            }
            let sealed = store
                .secret(&r.name)
                .await
                .map_err(|e| invalid(format!("{}: {e}", r.place())))?;
            let value = match sealed {
                None => None,
                Some(sealed) => Some(
                    keyring
                        .open_string(&sealed, &r.name)
                        .map_err(|e| invalid(format!("{}: {e}", r.place())))?,
                ),
            };
            opened.insert(r.name.clone(), value);
        }
        self.resolve_stored(&|name| {
            Ok(opened
                .get(name)
                .and_then(Option::as_ref)
                .map(|s| s.expose_secret().to_string()))
        })
    }
}

fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
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
    })
}

/// `data_dir` (relative to the config file; default [`default_data_dir`]),
/// `database` (default: `roster.db` in `data_dir`) and `[audit]`.
fn storage(raw: &RawConfig, path: &Path) -> Result<StorageConfig, ConfigError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let data_dir = match raw.data_dir.as_deref() {
        Some(p) => resolve(p),
        None => default_data_dir(),
    };
    let database = raw
        .database
        .clone()
        .unwrap_or_else(|| data_dir.join("roster.db").display().to_string());
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let a = &raw.audit;
    let witnesses = match &a.witness {
        None => Vec::new(),
        Some(OneOrMany::One(w)) => vec![w.clone()],
        Some(OneOrMany::Many(ws)) => ws.clone(),
    };
    let mut resolved = Vec::with_capacity(witnesses.len());
    for w in witnesses {
        resolved.push(match w {
            RawWitness::File { file } => RawWitness::File {
                file: resolve(&file),
            },
            RawWitness::Webhook { webhook } => {
                // An outbound URL like a connector's: no metadata endpoints,
                // no private networks unless the config allows them.
                crate::egress::check_url(&webhook, raw.allow_private_network)
                    .map_err(|e| invalid(format!("audit.witness webhook: {e}")))?;
                RawWitness::Webhook { webhook }
            }
        });
    }
    for k in &a.previous_keys {
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "audit.previous_keys: {k:?} is not an Ed25519 public key (64 hex digits, as \
                 printed by `roster audit key`)"
            )));
        }
    }
    let interval = a.checkpoint_interval_secs.unwrap_or(60);
    if interval == 0 {
        return Err(invalid(
            "audit.checkpoint_interval_secs must be at least 1".into(),
        ));
    }
    let audit = AuditConfig {
        witnesses: resolved,
        signing_key: a
            .signing_key
            .as_deref()
            .map(resolve)
            .unwrap_or_else(|| data_dir.join(AUDIT_SIGNING_KEY_FILE)),
        previous_keys: a.previous_keys.iter().map(|k| k.to_lowercase()).collect(),
        checkpoint_interval: std::time::Duration::from_secs(interval),
        allow_private_network: raw.allow_private_network,
    };
    Ok(StorageConfig {
        database,
        data_dir,
        audit,
    })
}

/// `$XDG_DATA_HOME/roster` (or the platform's equivalent), else `./.roster`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("roster"))
        .unwrap_or_else(|| PathBuf::from(".roster"))
}

/// `[notify]` as written (see `crate::notify`; checked at load by
/// `Notifier::check`, built by `Notifier::from_config`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Where roster's pages are (`https://roster.acme.example`): messages
    /// link there.
    pub base_url: Option<String>,
    #[serde(default)]
    pub channels: BTreeMap<String, RawChannel>,
    /// Named groups of addresses for `owners`, `escalate_to` and
    /// `approval_escalate_to` (`group:NAME`); a name not listed here is
    /// looked up among the people whose source lists them in that group.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Hours a leaver's access may stay open before `leaver_access_open`
    /// is raised (once per person per this period); default 24.
    pub leaver_sla_hours: Option<u32>,
    /// Hours a plan's actions may wait for approval before the fallback
    /// (`approval_escalate_to`) is asked; default 24.
    pub approval_sla_hours: Option<u32>,
    /// Who is asked when an approval waits past its SLA (addresses or
    /// `group:NAME`).
    #[serde(default)]
    pub approval_escalate_to: Vec<String>,
}

/// `[notify.channels.<name>]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// `slack`, `webhook` or `email`.
    pub kind: String,
    /// `slack` and `webhook`: the endpoint, a plain URL, or `{ env = … }` /
    /// `{ file = … }` when the URL itself is the credential (Slack's).
    pub url: Option<UrlRef>,
    /// `email`: the SMTP server, `smtp://host:587` (STARTTLS, required)
    /// or `smtps://host:465` (TLS from the start). Plain SMTP only to a
    /// relay on this host: `smtp://127.0.0.1:25?tls=none`.
    pub smtp: Option<String>,
    /// `email`: the sender address.
    pub from: Option<String>,
    /// `email`: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// `email`: the SMTP user, when the server wants one.
    pub username: Option<String>,
    /// `email`: the SMTP password (`{ env = … }` or `{ file = … }`).
    pub password: Option<SecretRef>,
    /// `webhook`: the HMAC signing secret (at least 16 characters).
    pub secret: Option<SecretRef>,
    /// Event names, or `["*"]`.
    pub events: Vec<String>,
    /// `email`: `"fixed"` (default: always `to`) or `"owners"`: each
    /// message goes to the people it concerns (the app's `owners`; for an
    /// escalation, its fallback), and to `to` when it concerns nobody.
    pub route: Option<String>,
    /// Only messages about these connections (and those about none, such
    /// as sessions not revoked); default: every connection.
    #[serde(default)]
    pub connections: Vec<String>,
    /// This channel's URL may be on a private network.
    #[serde(default)]
    pub allow_private_network: bool,
}

/// A URL given in the clear or as a secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum UrlRef {
    Plain(String),
    Secret(SecretRef),
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
    fn the_company_calendar_defaults_to_utc_and_refuses_unknown_zones() {
        let at = Path::new("/etc/roster/roster.toml");
        let c = Config::parse(at, "policy = \"p.toml\"\n", &no_env).unwrap();
        assert_eq!(c.calendar.zone_name(), "UTC");
        assert_eq!(c.calendar.provision_days_before_start(), 0);
        let c = Config::parse(
            at,
            "policy = \"p.toml\"\n[company]\ntime_zone = \"Asia/Tokyo\"\nprovision_days_before_start = 3\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.calendar.zone_name(), "Asia/Tokyo");
        assert_eq!(c.calendar.provision_days_before_start(), 3);
        let err = Config::parse(
            at,
            "policy = \"p.toml\"\n[company]\ntime_zone = \"Paris\"\n",
            &no_env,
        )
        .unwrap_err();
        assert_eq!(err.code(), "CONFIG-0003");
        let text = err.to_string();
        assert!(
            text.contains("company.time_zone") && text.contains("CAL-0001"),
            "{text}"
        );
        assert!(
            text.contains("Europe/Paris"),
            "names an example of the fix: {text}"
        );
    }

    #[test]
    fn the_hr_file_format_comes_from_its_extension_or_hr_format() {
        use crate::hr_file::HrFormat;
        let at = Path::new("/etc/roster/roster.toml");
        let format = |source: &str| {
            Config::parse(
                at,
                &format!("policy = \"p.toml\"\n[source]\n{source}\n"),
                &no_env,
            )
            .map(|c| (c.hr_csv, c.hr_format))
        };
        assert_eq!(
            format("hr_file = \"people.xlsx\"").unwrap(),
            (
                Some(PathBuf::from("/etc/roster/people.xlsx")),
                HrFormat::Xlsx
            )
        );
        assert_eq!(format("hr_file = \"feed.json\"").unwrap().1, HrFormat::Json);
        assert_eq!(
            format("hr_file = \"export.dat\"\nhr_format = \"json\"")
                .unwrap()
                .1,
            HrFormat::Json
        );
        // The older name still reads a CSV.
        assert_eq!(format("hr_csv = \"people.csv\"").unwrap().1, HrFormat::Csv);
        let err = format("hr_file = \"people.txt\"").unwrap_err().to_string();
        assert!(err.contains("hr_format"), "{err}");
        let err = format("hr_file = \"a.csv\"\nhr_csv = \"b.csv\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
        let err = format("hr_file = \"a.csv\"\nhr_format = \"xls\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("csv, xlsx, json"), "{err}");
    }

    #[test]
    fn loading_resolves_no_secret_until_asked() {
        let text = "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\n\
                    secret = { env = \"UNSET_FOR_THIS_TEST\" }\n\
                    [connections.bill]\napp = \"bill-com\"\nsecret = { file = \"missing.secret\" }\n";
        let mut c = Config::parse_unresolved(Path::new("/etc/roster/roster.toml"), text)
            .expect("references alone are enough to load");
        assert!(c.connections.iter().all(|c| c.secret.is_none()));
        assert!(c.connections.iter().all(|c| c.secret_ref.is_some()));
        let err = c.resolve_secrets(&no_env).unwrap_err().to_string();
        assert!(
            err.contains("UNSET_FOR_THIS_TEST") || err.contains("missing.secret"),
            "{err}"
        );
        assert!(
            c.connections.iter().all(|c| c.secret.is_none()),
            "a failed resolution changes nothing"
        );
        let mut c = Config::parse_unresolved(
            Path::new("/etc/roster/roster.toml"),
            "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\nsecret = { env = \"E\" }\n",
        )
        .unwrap();
        c.resolve_secrets(&|n| (n == "E").then(|| "v".to_string()))
            .unwrap();
        assert_eq!(c.connections[0].secret.as_ref().unwrap().expose(), "v");
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
    fn base_urls_refuse_metadata_and_private_addresses_unless_allowed() {
        let conn = |url: &str, extra: &str| {
            format!(
                "policy = \"p.toml\"\n{extra}[connections.okta]\napp = \"okta\"\nbase_url = \"{url}\"\n"
            )
        };
        let err = Config::parse(Path::new("r.toml"), &conn("http://10.0.0.7", ""), &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connections.okta.base_url")
                && err.contains("EGRESS-0003")
                && err.contains("allow_private_network = true"),
            "{err}"
        );
        // The opt-in, at the top or on the connection, admits it.
        for text in [
            conn("http://10.0.0.7", "allow_private_network = true\n"),
            conn("http://10.0.0.7", "").replace(
                "app = \"okta\"",
                "app = \"okta\"\nallow_private_network = true",
            ),
        ] {
            Config::parse(Path::new("r.toml"), &text, &no_env).unwrap();
        }
        // A connection can opt out of a global opt-in.
        let text = conn("http://10.0.0.7", "allow_private_network = true\n").replace(
            "app = \"okta\"",
            "app = \"okta\"\nallow_private_network = false",
        );
        assert!(Config::parse(Path::new("r.toml"), &text, &no_env).is_err());
        // Metadata never; loopback always.
        let err = Config::parse(
            Path::new("r.toml"),
            &conn("http://169.254.169.254", "allow_private_network = true\n"),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("EGRESS-0002"), "{err}");
        Config::parse(
            Path::new("r.toml"),
            &conn("http://127.0.0.1:9", ""),
            &no_env,
        )
        .unwrap();
    }

    #[test]
    fn witness_webhooks_are_checked_like_connector_urls() {
        let text = |url: &str, extra: &str| {
            format!("policy = \"p.toml\"\n{extra}[audit]\nwitness = {{ webhook = \"{url}\" }}\n")
        };
        let err = Config::parse(
            Path::new("r.toml"),
            &text("http://169.254.169.254/latest", ""),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("audit.witness") && err.contains("EGRESS-0002"),
            "{err}"
        );
        let err = Config::parse(Path::new("r.toml"), &text("http://10.1.2.3/w", ""), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("EGRESS-0003"), "{err}");
        Config::parse(
            Path::new("r.toml"),
            &text("http://10.1.2.3/w", "allow_private_network = true\n"),
            &no_env,
        )
        .unwrap();
        Config::parse(Path::new("r.toml"), &text("ftp://x.example/w", ""), &no_env).unwrap_err();
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let text = "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\npartner_user_secret = { env = \"S\" }\n";
        let c = Config::parse(Path::new("r.toml"), text, &|_| Some("hunter2".into())).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(
            c.connections[0].secret.as_ref().unwrap().expose(),
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

    const STORED: &str = "policy = \"p.toml\"\n[connections.expensify]\napp = \"expensify\"\nsecret = { stored = \"expensify-partner-secret\" }\n[connections.bill]\napp = \"bill-spend-expense\"\nsecret = { env = \"BILL\" }\n";

    #[test]
    fn stored_secrets_are_recorded_then_resolved_through_the_lookup() {
        let mut c =
            Config::parse(Path::new("r.toml"), STORED, &|_| Some("bill-token".into())).unwrap();
        assert_eq!(
            c.stored_secrets,
            [StoredSecretRef {
                connection: "expensify".into(),
                name: "expensify-partner-secret".into()
            }]
        );
        let exp = |c: &Config| c.connections.iter().find(|c| c.id == "expensify").cloned();
        assert!(
            exp(&c).unwrap().secret.is_none(),
            "unresolved until resolved"
        );

        c.resolve_stored(&|name| {
            Ok((name == "expensify-partner-secret").then(|| "s3cret".to_string()))
        })
        .unwrap();
        assert!(c.stored_secrets.is_empty());
        assert_eq!(exp(&c).unwrap().secret.unwrap().expose(), "s3cret");
        let bill = c.connections.iter().find(|c| c.id == "bill").unwrap();
        assert_eq!(bill.secret.as_ref().unwrap().expose(), "bill-token");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_stored_secret_says_how_to_store_it() {
        let mut c = Config::parse(Path::new("r.toml"), STORED, &|_| Some("x".into())).unwrap();
        let err = c.resolve_stored(&|_| Ok(None)).unwrap_err().to_string();
        assert!(err.contains("connections.expensify.secret"), "{err}");
        assert!(
            err.contains("roster secret set expensify-partner-secret"),
            "{err}"
        );
        let err = c
            .resolve_stored(&|_| Err("SEC-0006 cannot open".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SEC-0006"), "{err}");
        // Nothing changed by the failures.
        assert_eq!(c.stored_secrets.len(), 1);

        let bad = STORED.replace("expensify-partner-secret", "no spaces allowed");
        let err = Config::parse(Path::new("r.toml"), &bad, &|_| Some("x".into())).unwrap_err();
        assert!(err.to_string().contains("SEC-0009"), "{err}");
    }

    #[test]
    fn load_storage_needs_neither_policy_nor_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.toml");
        std::fs::write(
            &path,
            "data_dir = \"d\"\n[connections.x]\napp = \"expensify\"\nsecret = { env = \"UNSET_VARIABLE_FOR_TEST\" }\n",
        )
        .unwrap();
        let s = Config::load_storage(&path).unwrap();
        assert_eq!(s.data_dir, dir.path().join("d"));
        assert_eq!(
            s.database,
            dir.path().join("d/roster.db").display().to_string()
        );
    }

    #[tokio::test]
    async fn stored_secrets_resolve_from_the_store_with_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("r.db").to_str().unwrap())
            .await
            .unwrap();
        let keyring = Keyring::load_from(None, dir.path(), true).unwrap();
        let sealed = keyring.seal(b"s3cret", "expensify-partner-secret").unwrap();
        store
            .put_secret("expensify-partner-secret", &sealed, 1)
            .await
            .unwrap();
        let mut c = Config::parse(Path::new("r.toml"), STORED, &|_| Some("x".into())).unwrap();
        c.resolve_stored_with(&store, &keyring).await.unwrap();
        let exp = c.connections.iter().find(|c| c.id == "expensify").unwrap();
        assert_eq!(exp.secret.as_ref().unwrap().expose(), "s3cret");

        // A value stored under another name does not open under this one.
        store
            .put_secret(
                "expensify-partner-secret",
                &keyring.seal(b"x", "other").unwrap(),
                2,
            )
            .await
            .unwrap();
        let mut c = Config::parse(Path::new("r.toml"), STORED, &|_| Some("x".into())).unwrap();
        let err = c
            .resolve_stored_with(&store, &keyring)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("SEC-0006"), "{err}");
        store.close().await;
    }

    #[test]
    fn audit_witnesses_are_one_or_many_and_paths_resolve() {
        let one =
            "policy = \"p.toml\"\ndata_dir = \"d\"\n[audit]\nwitness = { file = \"w/a.jsonl\" }\n";
        let c = Config::parse(Path::new("/etc/r/roster.toml"), one, &no_env).unwrap();
        assert_eq!(
            c.audit.witnesses,
            [RawWitness::File {
                file: PathBuf::from("/etc/r/w/a.jsonl")
            }]
        );
        assert_eq!(
            c.audit.signing_key,
            PathBuf::from("/etc/r/d/audit-signing.key")
        );
        let many = "policy = \"p.toml\"\n[audit]\nwitness = [{ file = \"/w.jsonl\" }, { webhook = \"http://127.0.0.1:9/x\" }]\nsigning_key = \"k\"\ncheckpoint_interval_secs = 5\n";
        let c = Config::parse(Path::new("/etc/r/roster.toml"), many, &no_env).unwrap();
        assert_eq!(c.audit.witnesses.len(), 2);
        assert_eq!(c.audit.signing_key, PathBuf::from("/etc/r/k"));
        assert_eq!(c.audit.checkpoint_interval.as_secs(), 5);
        let none = Config::parse(Path::new("r.toml"), "policy = \"p\"\n", &no_env).unwrap();
        assert!(none.audit.witnesses.is_empty());

        let bad = "policy = \"p\"\n[audit]\nwitness = { webhook = \"ftp://x\" }\n";
        let err = Config::parse(Path::new("r.toml"), bad, &no_env).unwrap_err();
        assert!(err.to_string().contains("audit.witness"), "{err}");
        let bad = "policy = \"p\"\n[audit]\nprevious_keys = [\"abc\"]\n";
        let err = Config::parse(Path::new("r.toml"), bad, &no_env).unwrap_err();
        assert!(err.to_string().contains("audit.previous_keys"), "{err}");
        let typo = "policy = \"p\"\n[audit]\nwitnes = { file = \"x\" }\n";
        assert!(Config::parse(Path::new("r.toml"), typo, &no_env).is_err());
    }

    const SOURCES: &str = "policy = \"p.toml\"\n\
        [sources.okta]\nkind = \"okta\"\nbase_url = \"https://acme.okta.com\"\ntoken = { env = \"OKTA_TOKEN\" }\n\
        [sources.entra]\nkind = \"entra\"\ntenant_id = \"t1\"\nclient_id = \"c1\"\nclient_secret = { stored = \"entra-secret\" }\n\
        [sources.gw]\nkind = \"google\"\nservice_account = \"sa@p.iam.gserviceaccount.com\"\nadmin = \"admin@acme.example\"\nprivate_key = { file = \"sa.pem\" }\n\
        [sources.ol]\nkind = \"onelogin\"\nbase_url = \"https://acme.onelogin.com\"\nclient_id = \"c2\"\nsecret = { env = \"OL_SECRET\" }\n";

    #[test]
    fn idp_sources_load_as_references_and_resolve_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sa.pem"), "PEM-KEY\n").unwrap();
        let path = dir.path().join("roster.toml");
        let mut c = Config::parse_unresolved(&path, SOURCES).unwrap();
        let kinds: Vec<_> = c
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("entra", SourceKindName::Entra),
                ("gw", SourceKindName::Google),
                ("okta", SourceKindName::Okta),
                ("ol", SourceKindName::Onelogin),
            ]
        );
        assert!(c.sources.iter().all(|s| s.secret.is_none()));
        assert_eq!(
            c.stored_secrets,
            [StoredSecretRef {
                connection: "source.entra".into(),
                name: "entra-secret".into()
            }]
        );
        // A missing variable names the source's field.
        let err = c.resolve_secrets(&no_env).unwrap_err().to_string();
        assert!(
            err.contains("sources.ol.secret") || err.contains("sources.okta.secret"),
            "{err}"
        );
        assert!(c.sources.iter().all(|s| s.secret.is_none()));
        c.resolve_secrets(&|n| Some(format!("value-of-{n}")))
            .unwrap();
        let secret = |c: &Config, name: &str| {
            c.sources
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.secret.clone())
                .map(|s| s.expose().to_string())
        };
        assert_eq!(secret(&c, "okta").as_deref(), Some("value-of-OKTA_TOKEN"));
        assert_eq!(secret(&c, "gw").as_deref(), Some("PEM-KEY"));
        assert_eq!(secret(&c, "entra"), None, "stored: resolved with the store");
        let err = c.resolve_stored(&|_| Ok(None)).unwrap_err().to_string();
        assert!(
            err.contains("sources.entra.secret") && err.contains("roster secret set entra-secret"),
            "{err}"
        );
        c.resolve_stored(&|_| Ok(Some("s3cret".into()))).unwrap();
        assert_eq!(secret(&c, "entra").as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn idp_sources_are_checked_at_load() {
        let base = |extra: &str| format!("policy = \"p.toml\"\n{extra}");
        let cases = [
            // The egress check, as for connections.
            (
                "[sources.o]\nkind = \"okta\"\nbase_url = \"http://10.0.0.7\"\nsecret = { env = \"X\" }\n",
                "sources.o.base_url",
            ),
            (
                "[sources.o]\nkind = \"okta\"\nbase_url = \"http://169.254.169.254\"\nsecret = { env = \"X\" }\nallow_private_network = true\n",
                "EGRESS-0002",
            ),
            // What each kind needs.
            (
                "[sources.e]\nkind = \"entra\"\nclient_id = \"c\"\nsecret = { env = \"X\" }\n",
                "sources.e.tenant_id is required",
            ),
            (
                "[sources.o]\nkind = \"okta\"\nbase_url = \"https://a.okta.com\"\n",
                "sources.o.secret is required",
            ),
            (
                "[sources.o]\nkind = \"okta\"\nbase_url = \"https://a.okta.com\"\nsecret = { env = \"X\" }\nrate_share = 1.5\n",
                "rate_share",
            ),
            ("[sources.o]\nkind = \"ldap\"\n", "ldap"),
            (
                "[sources.o]\nkind = \"okta\"\nbase_url = \"https://a.okta.com\"\nsecret = { env = \"X\" }\nbase_ulr = \"x\"\n",
                "base_ulr",
            ),
            (
                "[connections.\"source.x\"]\napp = \"expensify\"\n",
                "may not begin with `source.`",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse_unresolved(Path::new("r.toml"), &base(text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let c = Config::parse_unresolved(
            Path::new("r.toml"),
            &base("[sources.o]\nkind = \"okta\"\nbase_url = \"http://10.0.0.7\"\nsecret = { env = \"X\" }\nallow_private_network = true\n"),
        )
        .unwrap();
        // Policies may select on what the IdP says.
        let v = c.policy_context().vocabulary().unwrap();
        let p = roster_core::Policy::parse(
            "p.toml",
            "[[rules]]\nname = \"r\"\nconnection = \"x\"\nwhen = { idp_flag = [\"suspended\"] }\nset = {}\n",
        )
        .unwrap();
        let problems = p.check_against(&v);
        assert!(
            !problems.iter().any(|p| p.to_string().contains("idp_flag")),
            "{problems:?}"
        );
        // Without a source, nothing provides it.
        let none = Config::parse_unresolved(Path::new("r.toml"), &base(""))
            .unwrap()
            .policy_context()
            .vocabulary()
            .unwrap();
        assert!(
            p.check_against(&none)
                .iter()
                .any(|p| p.to_string().contains("idp_flag"))
        );
    }

    #[test]
    fn policy_is_required() {
        let err = Config::parse(Path::new("r.toml"), "", &no_env).unwrap_err();
        assert!(err.to_string().contains("`policy` is required"), "{err}");
    }
}

/// `[tickets]` as written: the ITSM tool human tasks are mirrored to (see
/// `crate::tickets`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTickets {
    /// `servicenow` (its Table API).
    pub kind: String,
    /// The instance, `https://acme.service-now.com`.
    pub base_url: String,
    /// The integration user (Basic authentication).
    pub username: String,
    /// Its password: `{ env = … }` or `{ file = … }`.
    pub password: SecretRef,
    /// The table tickets go to; default `incident`.
    pub table: Option<String>,
    /// The group tickets are assigned to, by name or sys_id.
    pub assignment_group: Option<String>,
    /// The instance may be on a private network.
    #[serde(default)]
    pub allow_private_network: bool,
}

/// Reads an `{ env = … }` or `{ file = … }` secret (a file relative to
/// `base`, trimmed); a stored secret is refused with what to use instead.
pub fn read_env_or_file(
    r: &SecretRef,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    match r {
        SecretRef::Env { env: name } => {
            env(name).ok_or_else(|| format!("environment variable {name} is not set"))
        }
        SecretRef::File { file } => {
            let p = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        }
        SecretRef::Stored { .. } => {
            Err("a stored secret is not supported here; use { env = … } or { file = … }".into())
        }
    }
}

/// Checks one `owners` / `escalate_to` entry: an address, `group:NAME`,
/// or a bare team name (a group).
pub fn check_recipient(
    who: &str,
    groups: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let who = who.trim();
    if who.is_empty() {
        return Err("an empty recipient".into());
    }
    if let Some(group) = who.strip_prefix("group:") {
        if group.trim().is_empty() {
            return Err("`group:` names no group".into());
        }
        let _ = groups;
        return Ok(());
    }
    if who.contains('@') {
        who.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|e| format!("{who:?} is not an address: {e}"))
    } else {
        Ok(())
    }
}

/// `[connections.NAME.browser]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrowser {
    /// The admin console's base URL.
    pub console_url: String,
    /// `local` (the console's login and TOTP) or `sso`.
    #[serde(default = "browser_local")]
    pub signin: String,
    /// The admin login.
    pub username: String,
    pub password: SecretRef,
    /// Base32 TOTP seed, when the console asks for a code.
    pub totp_seed: Option<SecretRef>,
    /// The IdP login, for `signin = "sso"`.
    pub idp_username: Option<String>,
    pub idp_password: Option<SecretRef>,
    /// Run an unverified runbook to the end. Default: stop before the
    /// final confirmation for a person.
    #[serde(default)]
    pub run_unverified: bool,
    /// Who takes over a leaver's pending approvals.
    pub successor: Option<String>,
    /// Days screenshots are kept (default 90).
    pub evidence_retention_days: Option<u32>,
    /// Seconds a step waits for its element (default 10).
    pub step_timeout_secs: Option<u64>,
}

fn browser_local() -> String {
    "local".into()
}
