//! `roster report orphans|coverage|leavers` and `roster audit export`.
//!
//! The reports themselves live in `roster_engine::reports`; this file loads
//! the config, opens the store and prints (text, or JSON with `--json`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use roster_catalog::{Catalog, ConnectionSettings};
use roster_core::{ConnectionId, Policy};
use roster_engine::config::Config;
use roster_engine::reports::{self, ConnectionInfo};
use roster_store::Store;
use time::OffsetDateTime;

/// Where a report reads from: a config file, or a database and a policy
/// given directly.
#[derive(Args, Clone)]
pub struct Source {
    /// The roster config file (database, policy, connections).
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// The database to read, instead of the config's.
    #[arg(long, env = "ROSTER_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// The policy file (for correlation settings), instead of the config's.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    source: Source,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Active accounts that no current employee owns, by app, with when each was last seen.
    Orphans(ReportArgs),
    /// Which apps and operations roster automates, and the gap nodes a person must handle.
    Coverage(ReportArgs),
    /// Every leaver's accounts: which are still open and how long closing each took.
    Leavers(ReportArgs),
    /// Human tasks per app: open, past their SLA, flagged, verified.
    Tasks(ReportArgs),
}

#[derive(Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    source: Source,
    /// Export events at or after this time: a date (2026-11-25, from midnight UTC),
    /// RFC 3339 (2026-11-25T09:00:00Z) or unix milliseconds.
    #[arg(long, default_value = "0")]
    since: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
}

/// What a report needs from the config.
struct Opened {
    store: Store,
    policy: Policy,
    config: Option<Config>,
}

async fn open(source: &Source, need_policy: bool) -> Result<Opened> {
    let config = if source.database.is_some() && (source.policy.is_some() || !need_policy) {
        None
    } else {
        Some(Config::load(&source.config).with_context(|| {
            format!(
                "cannot use config {} (or give --database and --policy)",
                source.config.display()
            )
        })?)
    };
    let database = match (&source.database, &config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => c.database.clone(),
        (None, None) => bail!("no database: give --database or a config file"),
    };
    let policy = match (&source.policy, &config) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(c)) => Some(c.policy.clone()),
        (None, None) => None,
    };
    let policy = match policy {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read policy {}", path.display()))?;
            Policy::parse(&path.display().to_string(), &text)?
        }
        None => Policy::default(),
    };
    let store = Store::open(&database).await?;
    Ok(Opened {
        store,
        policy,
        config,
    })
}

pub async fn run(cmd: ReportCommand, catalog_dir: Option<&Path>) -> Result<()> {
    let (args, kind) = match &cmd {
        ReportCommand::Orphans(a) => (a, "orphans"),
        ReportCommand::Coverage(a) => (a, "coverage"),
        ReportCommand::Leavers(a) => (a, "leavers"),
        ReportCommand::Tasks(a) => (a, "tasks"),
    };
    let opened = open(&args.source, true).await?;
    let mut data = reports::load(&opened.store).await?;
    let out = match kind {
        "orphans" => {
            let r = reports::orphans(&data, &opened.policy);
            emit(args.json, &r, || reports::render_orphans(&r))?
        }
        "coverage" => {
            let dir = opened
                .config
                .as_ref()
                .and_then(|c| c.catalog_dir.as_deref())
                .or(catalog_dir);
            let catalog = Catalog::load(dir).context("cannot load the app catalog")?;
            if let Some(config) = &opened.config {
                add_config_connections(&mut data.connections, config, &catalog);
            }
            let r = reports::coverage(&data, &catalog, &opened.policy);
            emit(args.json, &r, || reports::render_coverage(&r))?
        }
        "tasks" => {
            let tasks = opened.store.human_tasks(&[]).await?;
            let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            let r = roster_engine::human::task_report(&tasks, now);
            emit(args.json, &r, || {
                roster_engine::human::render_task_report(&r)
            })?
        }
        _ => {
            let r = reports::leavers(&data, &opened.policy, OffsetDateTime::now_utc());
            emit(args.json, &r, || reports::render_leavers(&r))?
        }
    };
    opened.store.close().await;
    print!("{out}");
    Ok(())
}

fn emit<T: serde::Serialize>(json: bool, r: &T, text: impl FnOnce() -> String) -> Result<String> {
    if json {
        Ok(format!("{}\n", serde_json::to_string_pretty(r)?))
    } else {
        Ok(text())
    }
}

/// Connections the config names but the store has no record of: their
/// catalog settings come from the config (plan tier, IdP, and the
/// credential kind its secrets imply).
pub(crate) fn add_config_connections(
    into: &mut Vec<ConnectionInfo>,
    config: &Config,
    catalog: &Catalog,
) {
    for c in &config.connections {
        let id = ConnectionId::new(c.id.as_str());
        if into.iter().any(|i| i.id == id) {
            continue;
        }
        // What the secret stands for is the record's to say (the kinds its
        // path asks for), not a guess from how the connection looks.
        let settings = match catalog.get(&c.app) {
            Some(app) => ConnectionSettings::of_connection(
                app,
                c.plan.clone(),
                c.idp.clone(),
                c.path.as_deref(),
                c.secret_ref.is_some(),
            )
            .with_browser(c.browser.is_some()),
            None => ConnectionSettings {
                plan: c.plan.clone(),
                idp: c.idp.clone(),
                ..ConnectionSettings::default()
            },
        };
        into.push(ConnectionInfo {
            id,
            app: Some(c.app.clone()),
            settings,
            settings_note: None,
        });
    }
}

/// `roster audit export --since T`: audit records as JSON lines.
pub async fn audit_export(args: AuditExportArgs) -> Result<()> {
    let since = reports::parse_since(&args.since)?;
    let opened = open(&args.source, false).await?;
    let records = opened.store.audit_since(since).await?;
    opened.store.close().await;
    let text = reports::audit_jsonl(&records);
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    eprintln!("exported {} audit event(s)", records.len());
    Ok(())
}
