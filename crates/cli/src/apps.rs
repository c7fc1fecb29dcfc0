//! `roster apps list|show|diff|probe`.
//!
//! `list` takes filters (`--scim`, `--api`, `--plan`, `--category`, and a
//! free-text search); `diff DIR` shows what an override directory changes
//! against the built-in catalog, record by record and field by field;
//! `probe CONNECTION` checks a live tenant read-only and prints what it saw
//! as dated observed facts next to the record's claims.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_catalog::{
    AppFilter, Catalog, Category, ConnectionSettings, CredentialKind, DiffKind, render_apps,
    render_card, select_all,
};

#[derive(Subcommand)]
pub enum AppsCommand {
    /// List the apps in the catalog, optionally filtered.
    List(ListArgs),
    /// Checks a connection's live tenant read-only (SCIM discovery, auth,
    /// paging, rate-limit headers) and records what it saw, dated, in the
    /// audit log; prints the observations as catalog facts.
    Probe {
        /// The connection (a `[connections.<id>]` of the config).
        connection: String,
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: std::path::PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What an override directory changes against the built-in catalog:
    /// added records, replaced ones (with the fields that differ) and
    /// copies that change nothing.
    Diff {
        /// The override directory (`*.toml` records).
        dir: std::path::PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one app's card: facts with sources, traps, manual steps, and the
    /// path roster would take for each operation with your settings.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Only apps some source says speak SCIM.
    #[arg(long)]
    scim: bool,
    /// Only apps some source says have a user API.
    #[arg(long)]
    api: bool,
    /// Only apps with something automated on this plan (e.g. enterprise).
    #[arg(long)]
    plan: Option<String>,
    /// Only apps of this category: collaboration, productivity,
    /// developer-tools, finance, hr, sales-support, security, design,
    /// identity, other.
    #[arg(long)]
    category: Option<String>,
    /// Only apps whose id, name, former names or summary contain this text.
    text: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The app's id (see `roster apps list`).
    id: String,
    /// The IdP that fronts this app (okta, entra-id, onelogin, google-workspace).
    #[arg(long)]
    idp: Option<String>,
    /// The company's plan tier with this app (e.g. enterprise).
    #[arg(long = "plan")]
    plan_tier: Option<String>,
    /// A credential roster holds for the app (repeatable): scim-token,
    /// api-token, api-client, partner-credentials.
    #[arg(long = "credential", value_name = "KIND")]
    credentials: Vec<String>,
    /// Allow scripted admin-console runbooks (browser path).
    #[arg(long)]
    browser: bool,
    /// Print JSON instead of the card.
    #[arg(long)]
    json: bool,
}

fn load(dir: Option<&Path>) -> Result<Catalog> {
    Catalog::load(dir).context("cannot load the app catalog")
}

pub async fn run(cmd: AppsCommand, catalog_dir: Option<&Path>) -> Result<()> {
    // `diff` compares the built-in catalog with the directory it names,
    // not with `--catalog-dir`; `probe` goes through the application layer.
    let catalog = match cmd {
        AppsCommand::Diff { dir, json } => return diff(&dir, json),
        AppsCommand::Probe {
            connection,
            config,
            json,
        } => return probe(&connection, &config, json, catalog_dir).await,
        _ => load(catalog_dir)?,
    };
    match cmd {
        AppsCommand::Diff { .. } | AppsCommand::Probe { .. } => {}
        AppsCommand::List(args) => {
            let category = match &args.category {
                Some(c) => Some(Category::parse(c).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown category {c:?}; expected one of: {}",
                        Category::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?),
                None => None,
            };
            let filter = AppFilter {
                scim: args.scim,
                api: args.api,
                plan: args.plan.clone(),
                category,
                text: args.text.clone(),
            };
            let apps = filter.apply(&catalog);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&apps)?);
            } else if apps.is_empty() {
                println!(
                    "No app matches. `roster apps list` without filters shows all {}.",
                    catalog.len()
                );
            } else {
                print!("{}", render_apps(&apps));
                if filter != AppFilter::default() {
                    println!("{} of {} apps match.", apps.len(), catalog.len());
                }
            }
        }
        AppsCommand::Show(args) => {
            let app = catalog.require(&args.id)?;
            let mut settings = ConnectionSettings::default();
            if let Some(idp) = &args.idp {
                let known = catalog.idp_ids();
                anyhow::ensure!(
                    known.contains(&idp.as_str()),
                    "unknown IdP {idp:?}; known IdPs: {}",
                    known.join(", ")
                );
                settings.idp = Some(idp.clone());
            }
            settings.plan = args.plan_tier.clone();
            for c in &args.credentials {
                let kind = CredentialKind::parse(c).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown credential kind {c:?}; expected one of: {}",
                        CredentialKind::ALL
                            .iter()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                settings.credentials.insert(kind);
            }
            settings.browser_enabled = args.browser;
            if args.json {
                let out = serde_json::json!({
                    "app": app,
                    "settings": settings,
                    "paths": select_all(app, &settings),
                    "runbooks": catalog.runbooks_of(&app.id),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", render_card(app, &settings));
                print!(
                    "{}",
                    roster_catalog::runbook::render_runbooks(
                        &catalog.runbooks_of(&app.id),
                        settings.browser_enabled
                    )
                );
            }
        }
    }
    Ok(())
}

fn diff(dir: &Path, json: bool) -> Result<()> {
    let builtin = Catalog::builtin().context("cannot load the built-in catalog")?;
    let merged = Catalog::load(Some(dir))
        .with_context(|| format!("cannot load the override directory {}", dir.display()))?;
    let changes = roster_catalog::diff(&builtin, &merged);
    if json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(());
    }
    if changes.is_empty() {
        println!("{} holds no catalog record.", dir.display());
        return Ok(());
    }
    for c in &changes {
        match c.change {
            DiffKind::Added => println!("+ {}  (new, from {})", c.id, c.origin),
            DiffKind::Unchanged => println!("= {}  (same as built-in, from {})", c.id, c.origin),
            DiffKind::Replaced => {
                println!(
                    "~ {}  (replaces the built-in record, from {})",
                    c.id, c.origin
                );
                for f in &c.fields {
                    println!("    {f}");
                }
            }
        }
    }
    Ok(())
}

async fn probe(
    connection: &str,
    config: &Path,
    json: bool,
    catalog_dir: Option<&Path>,
) -> Result<()> {
    let config = crate::ops::load_config(config)?;
    let principal = crate::principal::current(&config)?;
    let roster = crate::ops::roster_for(&config, catalog_dir).await?;
    let report = roster.probe_app(&principal, connection).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "# Observed in {} ({}), recorded in the audit log as app.probed.",
        report.connection,
        report.app.as_deref().unwrap_or("no catalog record")
    );
    for o in &report.observed {
        println!(
            "{} = {{ value = {}, source = {:?}, as_of = {:?}, note = {:?} }}",
            o.field, o.value, o.source, o.as_of, o.detail
        );
        if let Some(c) = &o.claimed {
            println!("#   the record claims: {c}");
        }
    }
    Ok(())
}
