//! The demo company's whole app estate, for `roster report coverage`.
//!
//! The sample company uses twenty apps from the catalog. The demo drives
//! four of them on simulators (one per kind of path); the other sixteen are
//! declared the way a deployment's `roster.toml` declares them (the app,
//! its plan tier, the IdP in front of it, the path, whether a credential
//! is stored) without being connected, since no simulator stands in for
//! them here. That is enough for path selection: coverage says, for every
//! app and operation, which path roster would take and which operations
//! are gap nodes that a person must carry out.
//!
//! The demo writes this estate as `roster.toml` in its data directory
//! (secrets as `{ stored = … }` references, never values), prints the gap
//! nodes as its last step, and `roster report coverage --config
//! DIR/roster.toml` prints the whole report afterwards.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use roster_catalog::Catalog;
use roster_core::{ConnectionId, Operation, Policy};
use roster_engine::config::Config;
use roster_engine::reports::{self, CoverageReport};
use roster_store::Store;

/// One app connection as `roster.toml` declares it.
pub(crate) struct Declared {
    /// The `[connections.ID]` name.
    pub id: &'static str,
    /// The catalog app.
    pub app: &'static str,
    pub path: Option<&'static str>,
    pub plan: Option<&'static str>,
    pub idp: Option<&'static str>,
    /// A credential is stored for it (`secret = { stored = ID }`).
    pub secret: bool,
    /// The connection's `username` (an API client id), where its path
    /// takes one.
    pub username: Option<&'static str>,
    /// The connection's `options` (connector settings).
    pub options: &'static [(&'static str, &'static str)],
}

const fn declared(id: &'static str, path: Option<&'static str>) -> Declared {
    Declared {
        id,
        app: id,
        path,
        plan: None,
        idp: None,
        secret: true,
        username: None,
        options: &[],
    }
}

/// The four apps the demo drives on simulators, as they are wired
/// (`crate::demo`'s `wire`).
const DRIVEN: [Declared; 4] = [
    Declared {
        username: Some("demo_partner"),
        ..declared("expensify", Some("api"))
    },
    Declared {
        plan: Some("enterprise"),
        idp: Some("okta"),
        ..declared("bill-spend-expense", Some("idp"))
    },
    Declared {
        plan: Some("enterprise"),
        ..declared("bill-com", Some("scim"))
    },
    Declared {
        idp: Some("okta"),
        username: Some("demo-spendesk-key"),
        ..declared("spendesk", Some("api"))
    },
];

/// The sixteen more the company uses, declared but not connected in the
/// demo: a realistic mix of apps roster drives (SCIM on the plans that
/// include it, the declarative REST connector, assignment through Okta)
/// and apps on plans or with APIs that leave a person to do the work.
const DECLARED: [Declared; 16] = [
    Declared {
        plan: Some("business+"),
        ..declared("slack", Some("scim"))
    },
    Declared {
        username: Some("zoom-client-id"),
        ..declared("zoom", Some("api"))
    },
    Declared {
        plan: Some("enterprise"),
        ..declared("github", Some("scim"))
    },
    declared("atlassian", Some("api")),
    Declared {
        username: Some("admin@acme.example/token"),
        ..declared("zendesk", Some("api"))
    },
    declared("asana", Some("api")),
    declared("hubspot", Some("api")),
    // SCIM in every edition, with an OAuth access token from an external
    // client app's client credentials.
    Declared {
        plan: Some("enterprise"),
        username: Some("roster-connected-app"),
        // The record says OAuth client credentials; the token endpoint is
        // the org's own.
        options: &[(
            "token_url",
            "https://acme.my.salesforce.com/services/oauth2/token",
        )],
        ..declared("salesforce", Some("scim"))
    },
    Declared {
        plan: Some("plus"),
        secret: false,
        ..declared("notion", None)
    },
    Declared {
        plan: Some("professional"),
        secret: false,
        ..declared("figma", None)
    },
    // A team API exists, but no connector drives it yet.
    Declared {
        plan: Some("business"),
        secret: false,
        ..declared("dropbox", None)
    },
    Declared {
        plan: Some("business"),
        ..declared("1password", Some("scim"))
    },
    Declared {
        plan: Some("standard"),
        secret: false,
        ..declared("linear", None)
    },
    Declared {
        plan: Some("business"),
        secret: false,
        ..declared("miro", None)
    },
    declared("ramp", Some("scim")),
    Declared {
        plan: Some("enterprise"),
        ..declared("navan", Some("scim"))
    },
];

/// Every app of the demo company: the four driven, then the sixteen
/// declared.
pub(crate) fn estate() -> impl Iterator<Item = &'static Declared> {
    DRIVEN.iter().chain(DECLARED.iter())
}

/// The demo company's `roster.toml`: its database, policy and HR file in
/// `data_dir`, and every app connection (no secret values, no URLs: the
/// simulators' addresses do not outlive the demo).
pub(crate) fn config_text() -> String {
    let mut out = String::from(
        "# The demo company's apps, written by `roster demo`.\n\
         # The first four ran on simulators during the demo; the other sixteen are\n\
         # declared as a deployment would declare them, so that\n\
         #   roster report coverage --config THIS_FILE\n\
         # says how roster reaches each app and which operations a person must do.\n\
         # Secrets are references to roster's store, never values.\n\n\
         data_dir = \".\"\n\
         policy = \"policy.toml\"\n\n\
         [source]\nhr_file = \"people.csv\"\n",
    );
    for d in estate() {
        let _ = write!(out, "\n[connections.{}]\napp = \"{}\"\n", d.id, d.app);
        for (key, value) in [
            ("path", d.path),
            ("plan", d.plan),
            ("idp", d.idp),
            ("username", d.username),
        ] {
            if let Some(v) = value {
                let _ = writeln!(out, "{key} = \"{v}\"");
            }
        }
        if d.secret {
            let _ = writeln!(out, "secret = {{ stored = \"{}\" }}", d.id);
        }
        if !d.options.is_empty() {
            let pairs: Vec<String> = d
                .options
                .iter()
                .map(|(k, v)| format!("{k} = \"{v}\""))
                .collect();
            let _ = writeln!(out, "options = {{ {} }}", pairs.join(", "));
        }
    }
    out
}

/// Writes `roster.toml` into `data_dir` and returns its path.
pub(crate) fn write_config(data_dir: &Path) -> Result<PathBuf> {
    let path = data_dir.join("roster.toml");
    std::fs::write(&path, config_text())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The coverage report over the demo's store and its whole estate, as
/// `roster report coverage --config` computes it.
/// `console_login`: the demo gave Spendesk an admin-console login (its
/// runbook ran), which the written `roster.toml` leaves out (it holds no
/// login), so the report here counts the browser path as the demo used it.
pub(crate) async fn coverage(
    store: &Store,
    config_path: &Path,
    policy: &Policy,
    console_login: bool,
) -> Result<CoverageReport> {
    let config = Config::load(config_path)
        .with_context(|| format!("the demo's {} does not load", config_path.display()))?;
    let catalog = Catalog::builtin()?;
    let mut data = reports::load(store).await?;
    crate::report::add_config_connections(&mut data.connections, &config, &catalog);
    if console_login {
        for c in &mut data.connections {
            if c.id.as_str() == "spendesk" {
                c.settings.browser_enabled = true;
            }
        }
    }
    Ok(reports::coverage(&data, &catalog, policy))
}

/// The demo's closing lines about coverage: how many apps are automated
/// end to end, and every gap node by app.
pub(crate) fn print_coverage(r: &CoverageReport, config_path: &Path) {
    let gaps_of = |c: &ConnectionId| {
        r.gap_nodes
            .iter()
            .filter(|g| &g.connection == c)
            .collect::<Vec<_>>()
    };
    let whole = r
        .connections
        .iter()
        .filter(|c| gaps_of(&c.connection).is_empty())
        .count();
    println!(
        "\n  coverage across the company's {} apps: {} automated end to end, {} gap node(s) in {} app(s):",
        r.connections.len(),
        whole,
        r.gap_nodes.len(),
        r.connections.len() - whole
    );
    for c in &r.connections {
        let gaps = gaps_of(&c.connection);
        if gaps.is_empty() {
            continue;
        }
        let ops: Vec<String> = gaps
            .iter()
            .map(|g| match g.path {
                Some(p) if p.as_str() != g.coverage.as_str() => {
                    format!("{} {}({})", g.operation, g.coverage.as_str(), p.as_str())
                }
                _ => format!("{} {}", g.operation, g.coverage.as_str()),
            })
            .collect();
        // One reason per app reads better than four near-identical ones;
        // the deactivation's is the one that matters most.
        let reason = gaps
            .iter()
            .find(|g| g.operation == Operation::Deactivate)
            .unwrap_or(&gaps[0])
            .reason
            .clone();
        println!(
            "    {:<20} {} — {}",
            c.connection.as_str(),
            ops.join(", "),
            reason
        );
    }
    println!(
        "  the whole report: roster report coverage --config {}",
        config_path.display()
    );
}
