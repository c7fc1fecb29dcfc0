//! `roster run` (the scheduler and workers) and `roster connections`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_core::ConnectionId;
use roster_engine::service::{self, ServiceOptions};
use tokio::sync::{mpsc, watch};

use crate::ops::{engine_for, load_config};

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
    /// Every connection with its status (ok, quarantined, ...) and why.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
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
        "roster run: full reconciliation every {} min{}; Ctrl-C (or SIGTERM) stops after the current step",
        args.every.max(1),
        if args.plan_only { " (plan only)" } else { "" }
    );
    let svc = tokio::spawn(service::run(engine, opts, rx, stop_rx));
    shutdown_signal().await?;
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    svc.await.context("the service task failed")??;
    Ok(())
}

/// Waits for Ctrl-C, or SIGTERM on Unix (what service managers and
/// container runtimes send), so either stops a long-running command
/// cleanly after its current step.
pub(crate) async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

pub async fn connections(cmd: ConnectionsCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        ConnectionsCommand::List { config } => {
            let config = load_config(&config)?;
            let engine = engine_for(&config, catalog_dir).await?;
            let stored = engine.store.connections().await?;
            for c in &config.connections {
                let rec = stored.iter().find(|r| r.id.as_str() == c.id);
                println!(
                    "{:<20} {:<20} {}{}",
                    c.id,
                    c.app,
                    rec.map(|r| r.status.as_str()).unwrap_or("ok"),
                    rec.and_then(|r| r.status_reason.as_deref())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        ConnectionsCommand::Resume { config, name } => {
            let config = load_config(&config)?;
            let engine = engine_for(&config, catalog_dir).await?;
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
