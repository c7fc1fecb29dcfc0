//! `roster apps list|show`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_catalog::{
    Catalog, ConnectionSettings, CredentialKind, render_card, render_list, select_all,
};

#[derive(Subcommand)]
pub enum AppsCommand {
    /// List every app in the catalog.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one app's card: facts with sources, traps, manual steps, and the
    /// path roster would take for each operation with your settings.
    Show(ShowArgs),
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

pub fn run(cmd: AppsCommand, catalog_dir: Option<&Path>) -> Result<()> {
    let catalog = load(catalog_dir)?;
    match cmd {
        AppsCommand::List { json } => {
            if json {
                let apps: Vec<_> = catalog.apps().collect();
                println!("{}", serde_json::to_string_pretty(&apps)?);
            } else {
                print!("{}", render_list(&catalog));
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
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", render_card(app, &settings));
            }
        }
    }
    Ok(())
}
