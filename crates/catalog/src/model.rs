//! The app capability record: what one TOML file under `catalog/` holds.
//!
//! The sections mirror the "API quick reference" of the source material
//! (has user API, auth, SCIM status, rate limits, pagination, events,
//! SSO/JIT, CSV import, limitations, traps), plus two things roster needs to
//! act: the manual checklist per lifecycle operation and the automated
//! [`PathOffer`]s with the conditions under which each one works.
//!
//! Every struct rejects unknown fields, so a typo in a catalog file is an
//! error rather than a silently missing capability.

use std::collections::BTreeMap;
use std::fmt;

use roster_core::Operation;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::fact::Fact;

/// Whether a record describes an app roster manages or an identity provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    App,
    Idp,
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppKind::App => "app",
            AppKind::Idp => "idp",
        })
    }
}

/// A yes/no that sources often leave open. Accepts `true`/`false` or
/// `"yes"`/`"no"`/`"unknown"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    pub fn as_str(self) -> &'static str {
        match self {
            Tri::Yes => "yes",
            Tri::No => "no",
            Tri::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Tri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Tri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Tri;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"true, false, "yes", "no" or "unknown""#)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tri, E> {
                Ok(if v { Tri::Yes } else { Tri::No })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tri, E> {
                match v {
                    "yes" => Ok(Tri::Yes),
                    "no" => Ok(Tri::No),
                    // "not documented" is a value the sources give, not a
                    // gap in the record: it reads as unknown.
                    "unknown" | "not documented" | "not-documented" => Ok(Tri::Unknown),
                    _ => Err(E::custom(format!(
                        r#"expected true, false, "yes", "no", "unknown" or "not documented", got {v:?}"#
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The SCIM protocol version an app speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScimVersion {
    V1_1,
    V2_0,
}

impl ScimVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimVersion::V1_1 => "1.1",
            ScimVersion::V2_0 => "2.0",
        }
    }
}

impl fmt::Display for ScimVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ScimVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ScimVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScimVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""1.1" or "2.0""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScimVersion, E> {
                match v {
                    "1.1" => Ok(ScimVersion::V1_1),
                    "2.0" => Ok(ScimVersion::V2_0),
                    _ => Err(E::custom(format!(r#"expected "1.1" or "2.0", got {v:?}"#))),
                }
            }
            // `version = 2.0` is an easy slip in TOML; read it as the string.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScimVersion, E> {
                self.visit_str(&format!("{v:.1}"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScimVersion, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// How a list endpoint pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaginationMethod {
    /// One response holds everything (or there is no list endpoint).
    None,
    /// An opaque token or link to the next page.
    Cursor,
    /// Page numbers.
    Page,
    /// Item offsets.
    Offset,
    /// SCIM's 1-based `startIndex` + `count`.
    StartIndex,
    Undocumented,
}

impl fmt::Display for PaginationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaginationMethod::None => "none",
            PaginationMethod::Cursor => "cursor",
            PaginationMethod::Page => "page",
            PaginationMethod::Offset => "offset",
            PaginationMethod::StartIndex => "startIndex",
            PaginationMethod::Undocumented => "not documented",
        })
    }
}

/// A way roster can carry out an operation in an app, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// The app's own SCIM endpoint, called by roster.
    Scim,
    /// The vendor's REST/RPC API, through a roster connector.
    Api,
    /// Assign the user to the IdP's app; the IdP's own connector provisions.
    Idp,
    /// A file an admin imports.
    Csv,
    /// Just-in-time creation on first SSO login, then a follow-up.
    Jit,
    /// A scripted admin-console runbook.
    Browser,
    /// A human task with the catalog's checklist. Always available.
    Manual,
}

impl Path {
    /// Preference order. `csv` and `jit` share a rank in the product spec;
    /// the two never compete for the same operation in the catalog, and
    /// `csv` goes first because a file is reviewable before it acts.
    pub const PREFERENCE: [Path; 7] = [
        Path::Scim,
        Path::Api,
        Path::Idp,
        Path::Csv,
        Path::Jit,
        Path::Browser,
        Path::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Path::Scim => "scim",
            Path::Api => "api",
            Path::Idp => "idp",
            Path::Csv => "csv",
            Path::Jit => "jit",
            Path::Browser => "browser",
            Path::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Path> {
        Path::PREFERENCE
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of credential a company can hold for an app. Paths name the kinds
/// they accept; [`crate::ConnectionSettings`] says which are configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A bearer token for the app's own SCIM endpoint.
    ScimToken,
    /// A static token sent on every API call (BILL `apiToken`, Okta `SSWS`).
    ApiToken,
    /// A client id + secret exchanged for short-lived tokens (OAuth 2.0
    /// client credentials, Spendesk's `/auth/token`, Microsoft Graph).
    ApiClient,
    /// Vendor-specific partner credentials (Expensify `partnerUserID` +
    /// `partnerUserSecret`).
    PartnerCredentials,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ScimToken => "scim-token",
            CredentialKind::ApiToken => "api-token",
            CredentialKind::ApiClient => "api-client",
            CredentialKind::PartnerCredentials => "partner-credentials",
        }
    }

    pub const ALL: [CredentialKind; 4] = [
        CredentialKind::ScimToken,
        CredentialKind::ApiToken,
        CredentialKind::ApiClient,
        CredentialKind::PartnerCredentials,
    ];

    /// Parses the kebab-case name used in config files (for CLI flags).
    pub fn parse(s: &str) -> Option<CredentialKind> {
        CredentialKind::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of the `[sources]` table: a document facts point to by key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A seed file (`seeds/002_7a3826c08b71aaf3.txt`) or a document address.
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Default as-of date for claims citing this source.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub as_of: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One app capability record. See the module docs and `catalog/*.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Stable id, also the file stem: lowercase letters, digits and `-`.
    pub id: String,
    pub kind: AppKind,
    /// Display name.
    pub name: String,
    /// A shorter name for sentences (`BILL S&E`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_name: Option<String>,
    /// Former or alternative names (`Divvy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// What kind of app this is, for `roster apps list --category`.
    /// Records written before categories existed read as `other`.
    #[serde(default = "Category::other")]
    pub category: Category,
    pub summary: Fact<String>,
    pub sources: BTreeMap<String, Source>,
    pub api: ApiFacts,
    pub scim: ScimFacts,
    pub rate_limits: RateLimitFacts,
    pub pagination: PaginationFacts,
    pub events: EventFacts,
    pub sso: SsoFacts,
    pub csv: CsvFacts,
    #[serde(default)]
    pub limitations: Vec<Fact<String>>,
    #[serde(default)]
    pub watch_out_for: Vec<Fact<String>>,
    pub manual: ManualSteps,
    /// What deactivating a person in the app does. Required for
    /// `kind = "app"` records (`CAT-0007`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivation: Option<DeactivationFacts>,
    /// How long the app's API credentials live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialFacts>,
    /// The declarative REST connector's description of the user API
    /// (`[rest]`, see [`crate::rest`]): an `api` path naming connector
    /// `rest` runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<crate::rest::RestClient>,
    /// Automated paths the app offers. Manual is implicit and always there.
    #[serde(default)]
    pub paths: Vec<PathOffer>,
    /// Where the record was loaded from (`catalog/spendesk.toml` or an
    /// override file's path).
    #[serde(skip_deserializing, default)]
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFacts {
    /// Any API that exposes users, read or write. `"not documented"` when
    /// no source says.
    pub has_user_api: Fact<Tri>,
    /// Whether that API can create, change or deactivate users. Absent means
    /// the same as `has_user_api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_users: Option<Fact<bool>>,
    pub auth_method: Fact<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<Fact<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_fields: Option<Fact<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Fact<Vec<String>>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimFacts {
    /// `"not documented"` when no source says.
    pub available: Fact<Tri>,
    /// Absent when no source documents a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Fact<ScimVersion>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_required: Option<Fact<String>>,
    pub endpoint_documented: Fact<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Fact<String>>,
    /// When SCIM is reachable only through these IdPs' connectors (ids of
    /// `kind = "idp"` records), not by roster directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_only_connectors: Option<Fact<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
    /// How roster's generic SCIM client must talk to this server, when it
    /// departs from the common case (`[scim.client]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ScimClientSettings>,
}

/// The generic SCIM client's settings for one app, as data: what the
/// vendor's server needs. A connection's `options` override each one.
///
/// ```toml
/// [scim.client]
/// deprovision = "delete"   # DELETE /Users/{id} is Slack's deactivation
/// source = "scim-ref"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimClientSettings {
    /// `bearer` (default), `basic` (the connection's `username` and the
    /// secret as password) or `oauth2-client-credentials` (the
    /// connection's `username` as client id and its secret as client
    /// secret, exchanged at `token_url` for access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// The OAuth token endpoint, where it is the same for every tenant
    /// (a connection's `token_url` option wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The OAuth scope to ask for (a connection's `scope` option wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `path` (default) or `value-object` (PATCH without `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `active` (PATCH active=false, default) or `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision: Option<String>,
    /// Whether the server supports `filter` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<bool>,
    /// Users per page to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Send `If-Match` when the server offers versions (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etags: Option<bool>,
    /// The source (a key of `[sources]`) these settings follow from.
    pub source: String,
}

impl ScimClientSettings {
    /// The values each setting may take, for validation and messages.
    pub const AUTH: [&'static str; 3] = ["bearer", "basic", "oauth2-client-credentials"];
    pub const PATCH: [&'static str; 2] = ["path", "value-object"];
    pub const DEPROVISION: [&'static str; 2] = ["active", "delete"];
}

impl ScimFacts {
    /// The IdP connectors SCIM is restricted to, empty when roster could
    /// call the endpoint itself.
    pub fn idp_only(&self) -> &[String] {
        self.idp_only_connectors
            .as_ref()
            .map(|f| f.value().as_slice())
            .unwrap_or(&[])
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFacts {
    pub documented: Fact<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Fact<Vec<String>>>,
    pub headers: Fact<Tri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_names: Option<Fact<Vec<String>>>,
    pub retry_after: Fact<Tri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginationFacts {
    pub method: Fact<PaginationMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_page_size: Option<Fact<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<Fact<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<Fact<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFacts {
    pub webhooks: Fact<Tri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<Fact<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoFacts {
    pub saml: Fact<Tri>,
    pub jit: Fact<Tri>,
    /// IdPs the app documents SSO with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idps: Option<Fact<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvFacts {
    pub available: Fact<Tri>,
    /// File format the import takes (`csv`, `xlsx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Fact<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adds: Option<Fact<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<Fact<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removes: Option<Fact<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
}

impl CsvFacts {
    /// What the import can do for `op`, per the preferred claims. `None`
    /// for operations a CSV import has no say in (read, reactivate).
    pub fn supports(&self, op: Operation) -> Option<bool> {
        let f = match op {
            Operation::Create => &self.adds,
            Operation::Update => &self.updates,
            Operation::Deactivate | Operation::Delete => &self.removes,
            Operation::Read | Operation::Reactivate => return None,
        };
        Some(*self.available.value() == Tri::Yes && f.as_ref().is_some_and(|f| *f.value()))
    }
}

/// The checklist a person follows when no automated path holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualSteps {
    /// How a person reads the member list (export, attestation). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Fact<Vec<String>>>,
    pub create: Fact<Vec<String>>,
    pub update: Fact<Vec<String>>,
    pub deactivate: Fact<Vec<String>>,
    pub reactivate: Fact<Vec<String>>,
}

impl ManualSteps {
    pub fn get(&self, op: Operation) -> Option<&Fact<Vec<String>>> {
        match op {
            Operation::Read => self.read.as_ref(),
            Operation::Create => Some(&self.create),
            Operation::Update => Some(&self.update),
            Operation::Deactivate => Some(&self.deactivate),
            Operation::Reactivate => Some(&self.reactivate),
            // Deleting after a grace period is roster policy, not a vendor
            // workflow; the catalog has no checklist for it.
            Operation::Delete => None,
        }
    }
}

/// One automated path and the conditions under which it works.
///
/// ```toml
/// [[paths]]
/// path = "idp"
/// ops = ["create", "update", "deactivate"]
/// plans = ["Enterprise"]
/// idps = ["okta", "entra-id", "onelogin"]
/// reason = "{app} provisions through the {idp} app's SCIM connector on the {plan} plan"
/// source = "seed"
/// ```
///
/// All listed conditions must hold: `plans` (any of, case-insensitive),
/// `idps` (the configured IdP is one of them) and `credentials` (any of).
/// `browser` paths also need browser automation enabled. `reason` may use
/// `{app}`, `{idp}` (when `idps` is set) and `{plan}` (when `plans` is set).
///
/// `connector` names the implementation in roster that carries the path out
/// (`roster_connectors::registry` keys its constructors by these names):
/// `scim` (the generic SCIM client, and the default for `scim` paths),
/// a vendor connector such as `expensify-api` on `api` paths, `okta-assign`
/// or `idp-group` (allowlisted group membership in Okta, Entra ID or
/// OneLogin) on `idp` paths. Without one (and off `scim`), roster cannot drive the
/// path itself: the operation's changes become tasks. `credentials` then
/// also says what kind of secret that connector needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathOffer {
    pub path: Path,
    pub ops: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialKind>,
    pub reason: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub as_of: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PathOffer {
    /// The connector implementation serving this offer: the one named, or
    /// the generic SCIM client for a `scim` path that names none.
    pub fn connector(&self) -> Option<&str> {
        match (&self.connector, self.path) {
            (Some(c), _) => Some(c.as_str()),
            (None, Path::Scim) => Some(SCIM_CONNECTOR),
            (None, _) => None,
        }
    }
}

/// The implementation name of the generic SCIM 2.0 client: what a `scim`
/// path uses when its offer names no connector.
pub const SCIM_CONNECTOR: &str = "scim";

/// The implementation name of the declarative REST connector: an `api`
/// path naming it runs from the record's `[rest]` table.
pub const REST_CONNECTOR: &str = "rest";

impl App {
    /// The name to use in sentences.
    pub fn short(&self) -> &str {
        self.short_name.as_deref().unwrap_or(&self.name)
    }

    /// The manual checklist for `op`, if the record has one.
    pub fn manual_steps(&self, op: Operation) -> Option<&Fact<Vec<String>>> {
        self.manual.get(op)
    }

    /// Whether any source says the app has an API that writes users.
    pub fn writes_users(&self) -> bool {
        match &self.api.writes_users {
            Some(f) => f.any(|v| *v),
            None => self.api.has_user_api.any(|v| *v == Tri::Yes),
        }
    }

    /// The paths the record offers (manual excluded), best first, once each.
    pub fn offered_paths(&self) -> Vec<Path> {
        Path::PREFERENCE
            .into_iter()
            .filter(|p| self.paths.iter().any(|o| o.path == *p))
            .collect()
    }

    /// What kind of credential a connection's one secret is, as far as the
    /// record can tell: the kinds the offers on `path` accept, or, with no
    /// path chosen, those of the best-ranked path whose offers name any
    /// (a connection holds one secret, for the best path it can take).
    /// Empty when no offer on that path needs a credential of the app
    /// (`idp`: the secret is the IdP's).
    pub fn secret_kinds(&self, path: Option<Path>) -> Vec<CredentialKind> {
        let kinds_on = |p: Path| {
            let mut kinds: Vec<CredentialKind> = Vec::new();
            for o in self.paths.iter().filter(|o| o.path == p) {
                for k in &o.credentials {
                    if !kinds.contains(k) {
                        kinds.push(*k);
                    }
                }
            }
            kinds
        };
        match path {
            Some(p) => kinds_on(p),
            None => Path::PREFERENCE
                .into_iter()
                .map(kinds_on)
                .find(|k| !k.is_empty())
                .unwrap_or_default(),
        }
    }

    /// Every claim's provenance: `(field path, source key, as_of)`, in file
    /// order. Used by validation and by tests that check every fact is
    /// sourced.
    pub fn provenance(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut copy = self.clone();
        copy.visit_provenance(&mut |path, src, as_of| {
            out.push((path, src.to_string(), as_of.clone()));
        });
        out
    }

    /// Visits every claim (and every path offer, which is a fact too) with
    /// its field path, its source key and a mutable as-of date.
    pub(crate) fn visit_provenance(&mut self, f: &mut dyn FnMut(String, &str, &mut String)) {
        fn opt<T>(x: &mut Option<Fact<T>>, p: &str, f: &mut dyn FnMut(String, &str, &mut String)) {
            if let Some(x) = x {
                x.visit_provenance(p, f);
            }
        }
        self.summary.visit_provenance("summary", f);

        let a = &mut self.api;
        a.has_user_api.visit_provenance("api.has_user_api", f);
        opt(&mut a.writes_users, "api.writes_users", f);
        a.auth_method.visit_provenance("api.auth_method", f);
        opt(&mut a.base_url, "api.base_url", f);
        opt(&mut a.user_fields, "api.user_fields", f);
        opt(&mut a.endpoints, "api.endpoints", f);

        let s = &mut self.scim;
        s.available.visit_provenance("scim.available", f);
        opt(&mut s.version, "scim.version", f);
        opt(&mut s.plan_required, "scim.plan_required", f);
        s.endpoint_documented
            .visit_provenance("scim.endpoint_documented", f);
        opt(&mut s.endpoint, "scim.endpoint", f);
        opt(&mut s.idp_only_connectors, "scim.idp_only_connectors", f);
        opt(&mut s.notes, "scim.notes", f);

        let r = &mut self.rate_limits;
        r.documented.visit_provenance("rate_limits.documented", f);
        opt(&mut r.limits, "rate_limits.limits", f);
        r.headers.visit_provenance("rate_limits.headers", f);
        opt(&mut r.header_names, "rate_limits.header_names", f);
        r.retry_after.visit_provenance("rate_limits.retry_after", f);
        opt(&mut r.notes, "rate_limits.notes", f);

        let p = &mut self.pagination;
        p.method.visit_provenance("pagination.method", f);
        opt(&mut p.default_page_size, "pagination.default_page_size", f);
        opt(&mut p.max_page_size, "pagination.max_page_size", f);
        opt(&mut p.pointer, "pagination.pointer", f);

        let e = &mut self.events;
        e.webhooks.visit_provenance("events.webhooks", f);
        opt(&mut e.notes, "events.notes", f);
        opt(&mut e.alternative, "events.alternative", f);

        let o = &mut self.sso;
        o.saml.visit_provenance("sso.saml", f);
        o.jit.visit_provenance("sso.jit", f);
        opt(&mut o.idps, "sso.idps", f);
        opt(&mut o.notes, "sso.notes", f);

        let c = &mut self.csv;
        c.available.visit_provenance("csv.available", f);
        opt(&mut c.format, "csv.format", f);
        opt(&mut c.adds, "csv.adds", f);
        opt(&mut c.updates, "csv.updates", f);
        opt(&mut c.removes, "csv.removes", f);
        opt(&mut c.notes, "csv.notes", f);

        for (i, l) in self.limitations.iter_mut().enumerate() {
            l.visit_provenance(&format!("limitations[{i}]"), f);
        }
        for (i, w) in self.watch_out_for.iter_mut().enumerate() {
            w.visit_provenance(&format!("watch_out_for[{i}]"), f);
        }

        let m = &mut self.manual;
        opt(&mut m.read, "manual.read", f);
        m.create.visit_provenance("manual.create", f);
        m.update.visit_provenance("manual.update", f);
        m.deactivate.visit_provenance("manual.deactivate", f);
        m.reactivate.visit_provenance("manual.reactivate", f);

        if let Some(d) = &mut self.deactivation {
            d.kind.visit_provenance("deactivation.kind", f);
            d.reversible.visit_provenance("deactivation.reversible", f);
            opt(&mut d.reversible_for, "deactivation.reversible_for", f);
            d.frees_seat.visit_provenance("deactivation.frees_seat", f);
            opt(&mut d.data, "deactivation.data", f);
            opt(&mut d.owned, "deactivation.owned", f);
            opt(&mut d.reassign_first, "deactivation.reassign_first", f);
            opt(&mut d.notes, "deactivation.notes", f);
        }
        if let Some(c) = &mut self.credentials {
            c.expires.visit_provenance("credentials.expires", f);
            opt(&mut c.max_days, "credentials.max_days", f);
            opt(&mut c.notes, "credentials.notes", f);
        }

        for (i, po) in self.paths.iter_mut().enumerate() {
            f(format!("paths[{i}]"), &po.source, &mut po.as_of);
        }
    }
}

/// What an app is for, as `roster apps list --category` groups it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Chat, meetings, documents, file sharing, whiteboards.
    Collaboration,
    /// Task and project tracking.
    Productivity,
    /// Source hosting, CI, issue trackers, cloud and data platforms.
    DeveloperTools,
    /// Cards, spend, expenses, bills, travel.
    Finance,
    /// HR systems and payroll.
    Hr,
    /// CRM and customer support.
    SalesSupport,
    /// Password managers, security tooling.
    Security,
    /// Design tools.
    Design,
    /// Identity providers (`kind = "idp"` records).
    Identity,
    /// Anything else (a generic record such as `scim-app`).
    Other,
}

impl Category {
    fn other() -> Category {
        Category::Other
    }

    pub const ALL: [Category; 10] = [
        Category::Collaboration,
        Category::Productivity,
        Category::DeveloperTools,
        Category::Finance,
        Category::Hr,
        Category::SalesSupport,
        Category::Security,
        Category::Design,
        Category::Identity,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Collaboration => "collaboration",
            Category::Productivity => "productivity",
            Category::DeveloperTools => "developer-tools",
            Category::Finance => "finance",
            Category::Hr => "hr",
            Category::SalesSupport => "sales-support",
            Category::Security => "security",
            Category::Design => "design",
            Category::Identity => "identity",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What "deactivate" does to the account in an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeactivationKind {
    /// The account stays, locked: the person cannot sign in.
    Suspend,
    /// The account is marked deleted (or removed from the workspace) but
    /// the vendor keeps it, or can restore it, for a while.
    SoftDelete,
    /// The account, and usually what it owns, is gone for good.
    HardDelete,
    /// No source says.
    #[serde(alias = "not documented")]
    NotDocumented,
}

impl DeactivationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeactivationKind::Suspend => "suspend",
            DeactivationKind::SoftDelete => "soft-delete",
            DeactivationKind::HardDelete => "hard-delete",
            DeactivationKind::NotDocumented => "not documented",
        }
    }
}

impl fmt::Display for DeactivationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What deactivating a person does in the app, per its sources.
///
/// ```toml
/// [deactivation]
/// kind = { value = "suspend", source = "help" }
/// reversible = { value = "yes", source = "help" }
/// reversible_for = { value = "any time", source = "help" }
/// frees_seat = { value = "not documented", source = "help" }
/// data = { value = "Transactions are kept.", source = "help" }
/// owned = { value = "Cards are suspended.", source = "help" }
/// reassign_first = { value = ["approvals"], source = "help" }
/// ```
///
/// When sources disagree on `kind` every claim is kept; roster treats the
/// account as hard-deleted if any claim says so (a hard delete waits for
/// approval by default, see `roster_core::guard`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeactivationFacts {
    pub kind: Fact<DeactivationKind>,
    pub reversible: Fact<Tri>,
    /// How long a reversal stays possible (`any time`, `30 days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversible_for: Option<Fact<String>>,
    /// Whether the seat (licence) is released for someone else.
    pub frees_seat: Fact<Tri>,
    /// What happens to the person's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Fact<String>>,
    /// What happens to things the person owns (files, cards, meetings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<Fact<String>>,
    /// What must be handed to someone else before deactivating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassign_first: Option<Fact<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
}

impl DeactivationFacts {
    /// Whether any source says deactivating deletes the account for good.
    pub fn may_hard_delete(&self) -> bool {
        self.kind.any(|k| *k == DeactivationKind::HardDelete)
    }
}

/// How long an app's API credentials (tokens, keys) live.
///
/// ```toml
/// [credentials]
/// expires = { value = "yes", source = "auth-doc" }
/// max_days = { value = 365, source = "auth-doc", note = "API keys last at most a year" }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFacts {
    /// Whether the stored credential expires on its own.
    pub expires: Fact<Tri>,
    /// The longest a credential can live, in days, when the sources say.
    /// roster warns before a stored credential reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<Fact<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Fact<String>>,
}

impl CredentialFacts {
    /// The shortest lifetime any source gives, in days: roster warns by
    /// the most cautious claim.
    pub fn shortest_max_days(&self) -> Option<u32> {
        self.max_days
            .as_ref()
            .and_then(|f| f.claims().iter().map(|c| c.value).min())
    }
}
