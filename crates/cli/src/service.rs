//! `roster run` (the scheduler and workers) and `roster connections`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_core::ConnectionId;
use roster_engine::service::{self, ServiceOptions};
use tokio::sync::{mpsc, watch};

use crate::ops::{engine_for, engine_offline, load_config};

#[derive(Args)]
pub struct RunArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    pub config: PathBuf,
    /// Minutes between full reconciliations.
    #[arg(long, default_value_t = 15)]
    pub every: u64,
    /// Only plan: never apply without `roster apply`, even when nothing in a
    /// plan needs approval.
    #[arg(long)]
    pub plan_only: bool,
}

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// Every connection with its health (ok, read-failed, incomplete,
    /// quarantined, never-read), why, and how its last read went.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Lift a quarantine after fixing its cause (say, a rotated token).
    Resume {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        name: String,
    },
}

pub async fn run(args: RunArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    let engine = Arc::new(engine_for(&config, catalog_dir).await?);
    let (_events, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = ServiceOptions {
        full_interval: Duration::from_secs(args.every.max(1) * 60),
        hr_csv: config.hr_csv.clone(),
        auto_apply: !args.plan_only,
    };
    eprintln!(
        "roster run: full reconciliation every {} min{}; Ctrl-C stops after the current step",
        args.every.max(1),
        if args.plan_only { " (plan only)" } else { "" }
    );
    let svc = tokio::spawn(service::run(engine, opts, rx, stop_rx));
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    svc.await.context("the service task failed")??;
    Ok(())
}

pub async fn connections(cmd: ConnectionsCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        ConnectionsCommand::List { config, json } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let stored = engine.store.connections().await?;
            let health = engine.store.read_health().await?;
            let rows: Vec<serde_json::Value> = config
                .connections
                .iter()
                .map(|c| {
                    let rec = stored.iter().find(|r| r.id.as_str() == c.id);
                    let read = health.iter().find(|h| h.connection.as_str() == c.id);
                    let (status, reason) = connection_health(rec, read);
                    serde_json::json!({
                        "id": c.id,
                        "app": c.app,
                        "status": status,
                        "healthy": status == "ok",
                        "reason": reason,
                        "last_read": read.map(|h| serde_json::json!({
                            "at": crate::ops::due(Some(h.at_ms)),
                            "outcome": h.status.as_str(),
                            "detail": h.detail,
                            "failures_in_a_row": h.failures_in_a_row,
                        })),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &rows {
                    println!(
                        "{:<20} {:<20} {}{}",
                        r["id"].as_str().unwrap_or(""),
                        r["app"].as_str().unwrap_or(""),
                        r["status"].as_str().unwrap_or(""),
                        r["reason"]
                            .as_str()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        ConnectionsCommand::Resume { config, name } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            if engine
                .store
                .resume_connection(&ConnectionId::new(name.as_str()), now)
                .await?
            {
                println!("{name} is back in service; its queued work resumes.");
            } else {
                println!("{name} was not quarantined; nothing to do.");
            }
        }
    }
    Ok(())
}

/// A connection's health in one word, and why: a quarantine first, then
/// how its last read went. `never-read` until roster has read it once.
fn connection_health(
    rec: Option<&roster_store::ConnectionRecord>,
    read: Option<&roster_store::ReadHealth>,
) -> (&'static str, Option<String>) {
    if let Some(r) = rec
        && r.status == roster_store::QUARANTINED
    {
        return ("quarantined", r.status_reason.clone());
    }
    match read {
        None => ("never-read", None),
        Some(h) => match h.status {
            roster_store::ReadStatus::Ok => ("ok", None),
            roster_store::ReadStatus::Incomplete => (
                "incomplete",
                Some(format!(
                    "last read incomplete: {}",
                    h.detail.as_deref().unwrap_or("no reason given")
                )),
            ),
            roster_store::ReadStatus::Failed => (
                "read-failed",
                Some(format!(
                    "{} failed read(s) in a row; last: {}",
                    h.failures_in_a_row,
                    h.detail.as_deref().unwrap_or("no detail")
                )),
            ),
        },
    }
}
