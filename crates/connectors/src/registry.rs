//! Building connectors from configuration: the catalog says which
//! implementation serves a path, the registry builds it.
//!
//! A connection names an app (a catalog record) and optionally a `path`.
//! [`route`] picks the path: the explicit one (refused when the record
//! does not offer it), else what [`roster_catalog::select_path`] chooses
//! for reading the app under the connection's settings, else for the first
//! write it can drive. The chosen offer names a connector implementation
//! (`connector = "expensify-api"` in the record; a `scim` path defaults to
//! the generic SCIM client), and [`build`] looks that name up in
//! [`IMPLEMENTATIONS`]. No app id appears here: an app that speaks SCIM
//! needs only a catalog file.
//!
//! | implementation | path | connector | credentials |
//! |---|---|---|---|
//! | `scim` | `scim` | [`crate::scim`] | `secret` = bearer token |
//! | `expensify-api` | `api` | [`crate::expensify`] | `username` = partnerUserID, `secret` = partnerUserSecret |
//! | `bill-spend-api` | `api` | [`crate::bill_spend`] | `secret` = apiToken |
//! | `rest` | `api` | [`crate::rest`], from the record's `[rest]` | `secret` = token, password or client secret; `username` for `basic` and as the OAuth client id; `options` fill the record's templates (`workspace_gid`, `org_id`, `subdomain`, `account_id`) |
//! | `spendesk-api` | `api` | [`crate::spendesk`] | `username` = API key id, `secret` = API key secret |
//! | `okta-assign` | `idp` (via Okta) | [`crate::okta_assign`] | `secret` = Okta API token, `okta_app_id` |
//! | `idp-group` | `idp` (Okta, Entra ID, OneLogin) | [`crate::idp_group`] with `groups` set; else, for Okta, [`crate::okta_assign`] | Okta: `secret` = API token; Entra: `username` = client id, `secret` = client secret, `options.tenant` (`options.login_url`); OneLogin: `username` = client id, `secret`; all: `idp_app_id`, `groups` |

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use roster_catalog::{
    App, ConnectionSettings, Path, REST_CONNECTOR, SCIM_CONNECTOR, offer_holds, select_path,
};
use roster_core::{ConnectionId, Operation};

use crate::bill_spend::{BillSpendConfig, BillSpendConnector};
use crate::expensify::{ExpensifyConfig, ExpensifyConnector};
use crate::idp_group::{Idp, IdpGroupConfig, IdpGroupConnector};
use crate::okta_assign::{OktaAssignConfig, OktaAssignConnector};
use crate::rest::{RestConfig, RestConnector};
use crate::scim::{Deprovision, PatchStyle, ScimAuth, ScimConfig, ScimConnector};
use crate::spendesk::{SpendeskConfig, SpendeskConnector};
use crate::{Connector, ConnectorError, SecretString};

/// Everything needed to build one connection's connector.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectorSettings {
    pub connection: ConnectionId,
    /// `api`, `scim` or `idp`; `None` = what [`route`] selects from the
    /// app's catalog record.
    pub path: Option<String>,
    /// The company's plan tier with the app (path selection).
    pub plan: Option<String>,
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
    /// The app's id in the IdP on the `idp` path (Okta app id, Entra
    /// servicePrincipal object id, OneLogin app id); `okta_app_id` counts
    /// for Okta.
    pub idp_app_id: Option<String>,
    /// The allowlisted IdP groups (OneLogin: roles) the `idp` path may
    /// change membership of; the first is where new members go.
    pub groups: Vec<String>,
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
            plan: None,
            base_url: None,
            username: None,
            secret: None,
            idp: None,
            okta_app_id: None,
            idp_app_id: None,
            groups: Vec::new(),
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
    pub fn with_plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
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
    pub fn with_idp_app_id(mut self, id: impl Into<String>) -> Self {
        self.idp_app_id = Some(id.into());
        self
    }
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
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
            .field("plan", &self.plan)
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("secret", &self.secret)
            .field("idp", &self.idp)
            .field("okta_app_id", &self.okta_app_id)
            .field("idp_app_id", &self.idp_app_id)
            .field("groups", &self.groups)
            .field("policy_ids", &self.policy_ids)
            .field("options", &self.options)
            .finish()
    }
}

/// Builds one implementation for one app record from a connection's
/// settings.
type Constructor = fn(&App, &ConnectorSettings) -> Result<Arc<dyn Connector>, ConnectorError>;

/// One connector implementation: its name (what catalog records write in
/// `connector = ...`), the path it carries out, and its constructor.
pub struct Implementation {
    pub name: &'static str,
    pub path: Path,
    build: Constructor,
}

/// Every implementation roster has, by name.
pub const IMPLEMENTATIONS: [Implementation; 7] = [
    Implementation {
        name: SCIM_CONNECTOR,
        path: Path::Scim,
        build: build_scim,
    },
    Implementation {
        name: "expensify-api",
        path: Path::Api,
        build: build_expensify,
    },
    Implementation {
        name: "bill-spend-api",
        path: Path::Api,
        build: build_bill_spend,
    },
    Implementation {
        name: "spendesk-api",
        path: Path::Api,
        build: build_spendesk,
    },
    Implementation {
        name: REST_CONNECTOR,
        path: Path::Api,
        build: build_rest,
    },
    Implementation {
        name: "okta-assign",
        path: Path::Idp,
        build: build_okta_assign,
    },
    Implementation {
        name: "idp-group",
        path: Path::Idp,
        build: build_idp_group,
    },
];

/// The implementation called `name`, if roster has one.
pub fn implementation(name: &str) -> Option<&'static Implementation> {
    IMPLEMENTATIONS.iter().find(|i| i.name == name)
}

/// The path a connection takes and the implementation that carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub path: Path,
    pub connector: String,
}

/// What path selection sees of a connection: its plan tier, its IdP and
/// the credential its one secret stands for (the record says what kind of
/// secret the path, or the best path it offers, needs).
pub fn selection(app: &App, settings: &ConnectorSettings) -> ConnectionSettings {
    ConnectionSettings::of_connection(
        app,
        settings.plan.clone(),
        settings.idp.clone(),
        settings.path.as_deref(),
        settings.secret.is_some(),
    )
}

/// The operations a connector is chosen for: reading first (the path a
/// connection reads through is the one it is known by), then the writes.
const ROUTE_ORDER: [Operation; 5] = [
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Deactivate,
    Operation::Reactivate,
];

/// Which path and implementation serve `app` for a connection with
/// `settings` (see the module docs). `Ok(None)`: no path the record offers
/// under these settings has a connector, so the connection's changes
/// become tasks. An explicit `path` the record does not offer, or offers
/// without a connector, is an error.
pub fn route(app: &App, settings: &ConnectorSettings) -> Result<Option<Route>, ConnectorError> {
    let conn = selection(app, settings);
    let Some(wanted) = settings.path.as_deref() else {
        return Ok(ROUTE_ORDER.into_iter().find_map(|op| {
            let choice = select_path(app, &conn, op);
            choice.connector.map(|connector| Route {
                path: choice.path,
                connector,
            })
        }));
    };
    let offered = app.offered_paths();
    let list = || {
        let mut names: Vec<&str> = offered.iter().map(|p| p.as_str()).collect();
        names.push("manual");
        names.join(", ")
    };
    let path = Path::parse(wanted)
        .filter(|p| offered.contains(p))
        .ok_or_else(|| ConnectorError::Config {
            detail: format!(
                "{}: path = {wanted:?}: {} does not offer it (the catalog lists: {})",
                settings.connection,
                app.id,
                list()
            ),
        })?;
    // Prefer an offer whose conditions hold (the IdP configured, say);
    // else any offer on the path that names a connector: a path chosen by
    // hand says the company has what it needs.
    let offers: Vec<_> = app.paths.iter().filter(|o| o.path == path).collect();
    let connector = offers
        .iter()
        .filter(|o| offer_holds(o, &conn))
        .chain(offers.iter())
        .find_map(|o| o.connector())
        .ok_or_else(|| ConnectorError::Config {
            detail: format!(
                "{}: roster has no connector for {} on the {path} path (the catalog offers it, but it is carried out by a person or by another system)",
                settings.connection, app.id
            ),
        })?;
    Ok(Some(Route {
        path,
        connector: connector.to_string(),
    }))
}

/// Whether [`build`] can make a connector for `app` on `path` (named by
/// the record, and an implementation roster has).
pub fn can_build(app: &App, path: Path) -> bool {
    app.paths
        .iter()
        .filter(|o| o.path == path)
        .filter_map(|o| o.connector())
        .any(|name| implementation(name).is_some_and(|i| i.path == path))
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

fn secret(settings: &ConnectorSettings) -> Result<SecretString, ConnectorError> {
    required(
        settings.secret.as_ref(),
        "a secret (token or key secret)",
        settings,
    )
    .cloned()
}

/// Builds the connector for `app` (a catalog record) from `settings`, on
/// the path [`route`] picks.
pub fn build(
    app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let Some(route) = route(app, settings)? else {
        return Err(ConnectorError::Config {
            detail: format!(
                "{}: roster has no connector for {} under these settings (the catalog's paths: {}); set path, or its changes become manual tasks",
                settings.connection,
                app.id,
                app.offered_paths()
                    .iter()
                    .map(|p| p.as_str())
                    .chain(["manual"])
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    build_route(app, &route, settings)
}

/// Builds the connector for an already chosen [`Route`].
pub fn build_route(
    app: &App,
    route: &Route,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let known = || {
        IMPLEMENTATIONS
            .iter()
            .map(|i| i.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let imp = implementation(&route.connector).ok_or_else(|| ConnectorError::Config {
        detail: format!(
            "{}: the catalog record of {} names connector {:?} for its {} path, which roster does not have (known: {})",
            settings.connection,
            app.id,
            route.connector,
            route.path,
            known()
        ),
    })?;
    if imp.path != route.path {
        return Err(ConnectorError::Config {
            detail: format!(
                "{}: the catalog record of {} names connector {:?} for its {} path, but that connector carries out the {} path",
                settings.connection, app.id, imp.name, route.path, imp.path
            ),
        });
    }
    (imp.build)(app, settings)
}

fn build_scim(
    app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let url = required(
        settings.base_url.as_ref(),
        "base_url (the SCIM base URL)",
        settings,
    )?;
    let mut c = ScimConfig::new(settings.connection.clone(), url.clone(), secret(settings)?);
    c.app_name = app.id.clone();
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    // The record's `[scim.client]` first, then the connection's options.
    let record = app.scim.client.as_ref();
    let pick = |option: &str, from_record: Option<&String>| -> Option<String> {
        settings
            .options
            .get(option)
            .cloned()
            .or_else(|| from_record.cloned())
    };
    let bad = |option: &str, value: &str, allowed: &str| ConnectorError::Config {
        detail: format!(
            "{}: SCIM option {option} = {value:?} is not one of {allowed} (connection options, or the catalog record's [scim.client])",
            settings.connection
        ),
    };
    if let Some(v) = pick("patch", record.and_then(|r| r.patch.as_ref())) {
        c.patch_style =
            PatchStyle::parse(&v).ok_or_else(|| bad("patch", &v, "path, value-object"))?;
    }
    if let Some(v) = pick("deprovision", record.and_then(|r| r.deprovision.as_ref())) {
        c.deprovision =
            Deprovision::parse(&v).ok_or_else(|| bad("deprovision", &v, "active, delete"))?;
    }
    if let Some(v) = pick("auth", record.and_then(|r| r.auth.as_ref())) {
        c.auth = match v.as_str() {
            "bearer" => ScimAuth::Bearer,
            "basic" => ScimAuth::Basic {
                username: required(
                    settings.username.as_ref(),
                    "username (HTTP Basic user for SCIM)",
                    settings,
                )?
                .clone(),
            },
            "oauth2-client-credentials" => ScimAuth::OAuthClientCredentials {
                token_url: pick("token_url", record.and_then(|r| r.token_url.as_ref()))
                    .ok_or_else(|| ConnectorError::Config {
                        detail: format!(
                            "{}: SCIM with OAuth client credentials needs token_url (a connection option, or the record's [scim.client])",
                            settings.connection
                        ),
                    })?,
                client_id: required(
                    settings.username.as_ref(),
                    "username (the OAuth client id for SCIM)",
                    settings,
                )?
                .clone(),
                scope: pick("scope", record.and_then(|r| r.scope.as_ref())),
            },
            other => {
                return Err(bad(
                    "auth",
                    other,
                    "bearer, basic, oauth2-client-credentials",
                ));
            }
        };
    }
    if let Some(f) = record.and_then(|r| r.filter) {
        c.filter = f;
    }
    if let Some(v) = settings.options.get("filter") {
        c.filter = v != "false";
    }
    if let Some(n) = record.and_then(|r| r.page_size) {
        c.page_size = n.max(1);
    }
    if let Some(n) = settings.option_u32("page_size")? {
        c.page_size = n.max(1);
    }
    if let Some(e) = record.and_then(|r| r.etags) {
        c.use_etags = e;
    }
    if let Some(v) = settings.options.get("use_etags") {
        c.use_etags = v != "false";
    }
    Ok(Arc::new(ScimConnector::new(c)?))
}

/// The declarative REST connector, from the record's `[rest]` table.
fn build_rest(
    app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let api = app.rest.clone().ok_or_else(|| ConnectorError::Config {
        detail: format!(
            "{}: the catalog record of {} names the rest connector but has no [rest] table",
            settings.connection, app.id
        ),
    })?;
    let mut c = RestConfig::new(settings.connection.clone(), api, secret(settings)?);
    c.app_name = app.name.clone();
    c.base_url = settings.base_url.clone();
    c.username = settings.username.clone();
    c.options = settings.options.clone();
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    Ok(Arc::new(RestConnector::new(c)?))
}

fn build_okta_assign(
    app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
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
        secret(settings)?,
        app_id.clone(),
    );
    c.app_name = app.id.clone();
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    if let Some(n) = settings.option_u32("page_size")? {
        c.page_size = n.max(1);
    }
    Ok(Arc::new(OktaAssignConnector::new(c)?))
}

/// The `idp` path by allowlisted group membership, for Okta, Entra ID and
/// OneLogin. Without `groups`, an Okta connection keeps direct app
/// assignment ([`build_okta_assign`]); Entra and OneLogin need groups.
fn build_idp_group(
    app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let idp = match settings.idp.as_deref() {
        None => Idp::Okta,
        Some(name) => Idp::parse(name).ok_or_else(|| ConnectorError::Config {
            detail: format!(
                "{}: idp = {name:?}: roster drives the idp path through okta, entra (entra-id) or onelogin",
                settings.connection
            ),
        })?,
    };
    if settings.groups.is_empty() {
        if idp == Idp::Okta {
            return build_okta_assign(app, settings);
        }
        return Err(ConnectorError::Config {
            detail: format!(
                "{}: groups is required on the idp path through {}: the allowlisted {} roster may add people to and remove them from (e.g. groups = [\"{} Users\"])",
                settings.connection,
                idp.name(),
                if idp == Idp::OneLogin {
                    "roles"
                } else {
                    "groups"
                },
                app.name
            ),
        });
    }
    let url = required(
        settings.base_url.as_ref(),
        match idp {
            Idp::Okta => "base_url (the Okta org URL)",
            Idp::Entra => "base_url (Graph, e.g. https://graph.microsoft.com/v1.0)",
            Idp::OneLogin => "base_url (https://<subdomain>.onelogin.com)",
        },
        settings,
    )?;
    let app_id = required(
        settings
            .idp_app_id
            .as_ref()
            .or(settings.okta_app_id.as_ref().filter(|_| idp == Idp::Okta)),
        "idp_app_id (the app's id in the IdP)",
        settings,
    )?;
    let mut c = IdpGroupConfig::new(
        settings.connection.clone(),
        idp,
        url.clone(),
        secret(settings)?,
        app_id.clone(),
        settings.groups.clone(),
    );
    c.app_name = app.name.clone();
    c.client_id = settings.username.clone();
    c.tenant = settings.options.get("tenant").cloned();
    c.login_url = settings.options.get("login_url").cloned();
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    if let Some(n) = settings.option_u32("page_size")? {
        c.page_size = n.max(1);
    }
    Ok(Arc::new(IdpGroupConnector::new(c)?))
}

fn build_expensify(
    _app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let user = required(
        settings.username.as_ref(),
        "username (partnerUserID)",
        settings,
    )?;
    let mut c = ExpensifyConfig::new(settings.connection.clone(), user.clone(), secret(settings)?);
    if let Some(url) = &settings.base_url {
        c = c.with_base_url(url.clone());
    }
    c.policy_ids = settings.policy_ids.clone();
    c.default_manager_email = settings.default_manager_email.clone();
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    Ok(Arc::new(ExpensifyConnector::new(c)?))
}

fn build_bill_spend(
    _app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let mut c = BillSpendConfig::new(settings.connection.clone(), secret(settings)?);
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
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    Ok(Arc::new(BillSpendConnector::new(c)?))
}

fn build_spendesk(
    _app: &App,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let id = required(
        settings.username.as_ref(),
        "username (the API key id)",
        settings,
    )?;
    let mut c = SpendeskConfig::new(settings.connection.clone(), id.clone(), secret(settings)?);
    if let Some(url) = &settings.base_url {
        c = c.with_base_url(url.clone());
    }
    c.allow_private_network = settings.allow_private_network;
    if let Some(t) = settings.timeout {
        c.timeout = t;
    }
    Ok(Arc::new(SpendeskConnector::new(c)?))
}

#[cfg(test)]
mod tests {
    use roster_catalog::{Catalog, CredentialKind};

    use super::*;

    fn settings() -> ConnectorSettings {
        ConnectorSettings::new(ConnectionId::new("c")).with_secret(SecretString::new("t0ken"))
    }

    fn app(id: &str) -> App {
        Catalog::builtin().unwrap().get(id).unwrap().clone()
    }

    /// A record no code knows: the generic SCIM record under another id.
    fn new_app() -> App {
        let mut a = app("scim-app");
        a.id = "any-new-app".into();
        a
    }

    #[test]
    fn builds_by_path_and_app() {
        let build = |id: &str, s: &ConnectorSettings| match id {
            "any-new-app" => super::build(&new_app(), s),
            _ => super::build(&app(id), s),
        };
        let s = settings().with_base_url("http://127.0.0.1:1/scim/v2");
        assert!(build("scim-app", &s).is_ok());
        assert!(build("any-new-app", &s.clone().with_path("scim")).is_ok());
        // Bill.com's SCIM is an Enterprise feature: selection needs the plan.
        let e = build("bill-com", &settings().with_plan("enterprise"))
            .err()
            .unwrap();
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
        assert!(can_build(&new_app(), Path::Scim) && !can_build(&app("spendesk"), Path::Csv));
    }

    fn routed(app: &App, s: &ConnectorSettings) -> Option<(Path, String)> {
        route(app, s).unwrap().map(|r| (r.path, r.connector))
    }

    #[test]
    fn the_catalog_chooses_the_path_and_the_implementation() {
        let r = |p: Path, c: &str| Some((p, c.to_string()));
        assert_eq!(routed(&new_app(), &settings()), r(Path::Scim, "scim"));
        assert_eq!(
            routed(&app("expensify"), &settings()),
            r(Path::Api, "expensify-api")
        );
        assert_eq!(
            routed(&app("bill-spend-expense"), &settings()),
            r(Path::Api, "bill-spend-api")
        );
        assert_eq!(
            routed(&app("spendesk"), &settings()),
            r(Path::Api, "spendesk-api")
        );
        let idp = settings()
            .with_path("idp")
            .with_idp("okta")
            .with_plan("enterprise");
        assert_eq!(
            routed(&app("bill-spend-expense"), &idp),
            r(Path::Idp, "idp-group")
        );
        // Without the plan its SCIM needs, Bill.com has no automated path,
        // and without a secret no credential-gated path holds either.
        assert_eq!(routed(&app("bill-com"), &settings()), None);
        assert_eq!(
            routed(&app("bill-com"), &settings().with_plan("Enterprise")),
            r(Path::Scim, "scim")
        );
        let no_secret = ConnectorSettings::new(ConnectionId::new("c"));
        assert_eq!(routed(&app("expensify"), &no_secret), None);
    }

    #[test]
    fn an_explicit_path_the_app_does_not_offer_is_refused() {
        let e = route(&app("expensify"), &settings().with_path("idp"))
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.starts_with("CONN-0006")
                && msg.contains("expensify does not offer it")
                && msg.contains("api, csv, manual"),
            "{msg}"
        );
        let e = route(&app("expensify"), &settings().with_path("teleport"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("\"teleport\""), "{e}");
        // Offered, but carried out by OneLogin's own integration.
        let e = route(&app("bill-com"), &settings().with_path("idp"))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("no connector for bill-com on the idp path"),
            "{e}"
        );
    }

    #[test]
    fn records_naming_unknown_or_mismatched_implementations_are_refused() {
        let s = settings().with_base_url("http://127.0.0.1:1/scim/v2");
        let mut a = new_app();
        a.paths[0].connector = Some("carrier-pigeon".into());
        let e = build(&a, &s).err().unwrap();
        assert!(
            e.to_string().contains("\"carrier-pigeon\"") && e.to_string().contains("okta-assign"),
            "{e}"
        );
        a.paths[0].connector = Some("okta-assign".into());
        let e = build(&a, &s).err().unwrap();
        assert!(e.to_string().contains("carries out the idp path"), "{e}");
        assert!(!can_build(&a, Path::Scim));
    }

    #[test]
    fn the_secret_stands_for_the_credential_the_path_needs() {
        let kinds = |id: &str, s: &ConnectorSettings| {
            selection(&app(id), s)
                .credentials
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds("scim-app", &settings()), [CredentialKind::ScimToken]);
        assert_eq!(
            kinds("expensify", &settings()),
            [CredentialKind::PartnerCredentials]
        );
        assert_eq!(kinds("spendesk", &settings()), [CredentialKind::ApiClient]);
        assert_eq!(
            kinds("bill-spend-expense", &settings()),
            [CredentialKind::ApiToken]
        );
        // On the idp path the secret is the IdP's, not the app's.
        assert!(kinds("bill-spend-expense", &settings().with_path("idp")).is_empty());
        assert!(kinds("expensify", &ConnectorSettings::new(ConnectionId::new("c"))).is_empty());
    }

    #[test]
    fn the_idp_path_builds_group_connectors_per_idp() {
        let bill = app("bill-spend-expense");
        let base = settings()
            .with_path("idp")
            .with_plan("enterprise")
            .with_base_url("http://127.0.0.1:1");
        // Entra without an allowlist: refused, naming groups.
        let e = build(&bill, &base.clone().with_idp("entra")).err().unwrap();
        assert!(e.to_string().contains("groups is required"), "{e}");
        let entra = base
            .clone()
            .with_idp("entra")
            .with_groups(vec!["BILL Users".into()])
            .with_idp_app_id("sp-1")
            .with_username("client")
            .with_option("tenant", "contoso");
        assert!(build(&bill, &entra).is_ok());
        let e = build(&bill, &entra.clone().with_idp("google"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("okta, entra"), "{e}");
        // OneLogin needs its client id.
        let ol = base
            .clone()
            .with_idp("onelogin")
            .with_groups(vec!["BILL Users".into()])
            .with_idp_app_id("7001");
        assert!(
            build(&bill, &ol)
                .err()
                .unwrap()
                .to_string()
                .contains("client id")
        );
        assert!(build(&bill, &ol.with_username("client")).is_ok());
        // Okta with groups: the group connector; the app id may come from
        // okta_app_id.
        let okta = base
            .with_idp("okta")
            .with_groups(vec!["BILL Users".into()])
            .with_okta_app_id("0oa1");
        assert!(build(&bill, &okta).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", settings()).contains("t0ken"));
    }
}
