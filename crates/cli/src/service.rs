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
    /// Seconds the scheduler lease lasts without renewal: how long the
    /// scheduled jobs pause when the process running them dies, before
    /// another `roster run` / `roster serve` on the same database takes
    /// them over.
    #[arg(long, default_value_t = 30)]
    pub leader_ttl_secs: u64,
    /// Seconds a task this process's worker claimed stays leased without a
    /// heartbeat: how long the tasks of a process that died wait before
    /// another process runs them (as `roster worker --lease-secs`).
    #[arg(long, default_value_t = 60)]
    pub lease_secs: u64,
}

/// `roster pause` / `roster resume`: the kill switch.
#[derive(Args)]
pub struct PauseArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    pub config: PathBuf,
    /// The connection; without one, every connection.
    pub connection: Option<String>,
    /// Ignored unless it names someone else, which is refused: roster records
    /// the operator who runs the command (see `[operators]` in the config).
    #[arg(long, hide = true)]
    pub by: Option<String>,
    /// Why (recorded in the audit log and shown while paused).
    #[arg(long)]
    pub reason: Option<String>,
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
    /// Ask each connection's app (or IdP) whether roster's credentials and
    /// its setup work: e.g. an `idp` connection whose IdP app does not
    /// provision fails, naming the switch. Exits non-zero on a failure.
    Check {
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
    let mut engine = engine_for(&config, catalog_dir).await?;
    let lease = Duration::from_secs(args.lease_secs.max(2));
    engine.executor.lease = lease;
    engine.executor.heartbeat = engine.executor.heartbeat.min(lease / 4);
    let roster = Arc::new(roster_engine::Roster::new(engine));
    let (_events, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = ServiceOptions {
        full_interval: Duration::from_secs(args.every.max(1) * 60),
        hr_csv: config.hr_csv.clone(),
        auto_apply: !args.plan_only,
        poll_interval: None,
    };
    eprintln!(
        "roster run: full reconciliation every {} min{}; Ctrl-C (or SIGTERM) stops after the current step",
        args.every.max(1),
        if args.plan_only { " (plan only)" } else { "" }
    );
    let lease = lease_options(args.leader_ttl_secs);
    let svc = tokio::spawn(service::run_with_lease(roster, opts, lease, rx, stop_rx));
    shutdown_signal().await?;
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    svc.await.context("the service task failed")??;
    Ok(())
}

/// The scheduler lease for `--leader-ttl-secs`: renewed six times per
/// lifetime, so a renewal can fail (or the process stall) several times
/// before the lease lapses.
pub(crate) fn lease_options(ttl_secs: u64) -> roster_engine::leader::LeaseOptions {
    let ttl = Duration::from_secs(ttl_secs.max(2));
    roster_engine::leader::LeaseOptions {
        ttl,
        renew_every: (ttl / 6).max(Duration::from_millis(250)),
        ..roster_engine::leader::LeaseOptions::default()
    }
}

/// An engine over the config's store only: pausing and resuming need no
/// connector, so no vendor secret.
async fn bare_engine(config: &roster_engine::config::Config) -> Result<roster_engine::Engine> {
    let store = roster_store::Store::open(&config.database).await?;
    Ok(roster_engine::Engine::new(
        store,
        roster_core::Policy::default(),
    ))
}

fn named_connection(
    config: &roster_engine::config::Config,
    name: Option<&str>,
) -> Result<Option<ConnectionId>> {
    let Some(name) = name else { return Ok(None) };
    anyhow::ensure!(
        config.connections.iter().any(|c| c.id == name),
        "no connection {name:?} in the config; configured: {}",
        config
            .connections
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(ConnectionId::new(name)))
}

/// `roster pause [CONNECTION]`: stop every write until `roster resume`.
pub async fn pause(args: PauseArgs) -> Result<()> {
    let config = load_config(&args.config)?;
    let connection = named_connection(&config, args.connection.as_deref())?;
    let principal = crate::principal::current(&config)?;
    crate::principal::check_by(args.by.as_deref(), &principal)?;
    let roster = roster_engine::Roster::new(bare_engine(&config).await?);
    let new = roster
        .pause(&principal, connection.as_ref(), args.reason.as_deref())
        .await?;
    let scope = connection
        .as_ref()
        .map_or_else(|| "every connection".to_string(), |c| c.to_string());
    let resume = connection.as_ref().map_or_else(
        || "roster resume".to_string(),
        |c| format!("roster resume {c}"),
    );
    println!(
        "{} writes to {scope}: batches in flight finish, nothing new starts, in every roster \
         process. Plans still compute. Lift with `{resume}`.",
        if new {
            "Paused"
        } else {
            "Still paused (updated who and why):"
        }
    );
    Ok(())
}

/// `roster resume [CONNECTION]`: lift a pause.
pub async fn resume(args: PauseArgs) -> Result<()> {
    let config = load_config(&args.config)?;
    let connection = named_connection(&config, args.connection.as_deref())?;
    let principal = crate::principal::current(&config)?;
    crate::principal::check_by(args.by.as_deref(), &principal)?;
    let roster = roster_engine::Roster::new(bare_engine(&config).await?);
    let engine = roster.engine();
    let lifted = roster.resume(&principal, connection.as_ref()).await?;
    let scope = connection
        .as_ref()
        .map_or_else(|| "every connection".to_string(), |c| c.to_string());
    if lifted {
        println!("Writes to {scope} resume; queued work runs.");
    } else {
        println!("{scope} was not paused; nothing to do.");
    }
    // Say what still holds writes back, so "resume" never looks like it
    // did more than it did.
    for p in engine.store.pauses().await? {
        if connection.is_none() || p.connection.is_none() || p.connection == connection {
            println!(
                "still paused: {} (by {}{}); `roster resume{}` lifts it",
                p.scope_label(),
                p.actor,
                p.reason.map(|r| format!(": {r}")).unwrap_or_default(),
                p.connection.map(|c| format!(" {c}")).unwrap_or_default()
            );
        }
    }
    if let Some(c) = &connection
        && let Some(rec) = engine.store.connection(c).await?
        && rec.status == roster_store::QUARANTINED
    {
        println!(
            "{c} is also quarantined by roster ({}); `roster connections resume {c}` lifts that",
            rec.status_reason.unwrap_or_default()
        );
    }
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
        ConnectionsCommand::List { config, json } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let stored = engine.store.connections().await?;
            let health = engine.store.read_health().await?;
            let mut rows: Vec<serde_json::Value> = Vec::with_capacity(config.connections.len());
            for c in &config.connections {
                let rec = stored.iter().find(|r| r.id.as_str() == c.id);
                let read = health.iter().find(|h| h.connection.as_str() == c.id);
                let (status, reason) = connection_health(rec, read);
                // A person's kill switch is not a health problem, but it
                // stops every write, so it is shown beside the health.
                let pause = engine
                    .store
                    .pause_of(&ConnectionId::new(c.id.as_str()))
                    .await?;
                rows.push(serde_json::json!({
                    "id": c.id,
                    "app": c.app,
                    "status": status,
                    "healthy": status == "ok",
                    "reason": reason,
                    "paused": pause.as_ref().map(|p| serde_json::json!({
                        "all_connections": p.connection.is_none(),
                        "by": p.actor,
                        "since": crate::ops::due(Some(p.paused_ms)),
                        "reason": p.reason,
                    })),
                    "paused_note": pause.as_ref().map(paused_note),
                    "last_read": read.map(|h| serde_json::json!({
                        "at": crate::ops::due(Some(h.at_ms)),
                        "outcome": h.status.as_str(),
                        "detail": h.detail,
                        "failures_in_a_row": h.failures_in_a_row,
                    })),
                }));
            }
            if json {
                for r in &mut rows {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("paused_note");
                    }
                }
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &rows {
                    println!(
                        "{:<20} {:<20} {}{}{}",
                        r["id"].as_str().unwrap_or(""),
                        r["app"].as_str().unwrap_or(""),
                        r["status"].as_str().unwrap_or(""),
                        r["reason"]
                            .as_str()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        r["paused_note"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ConnectionsCommand::Check { config } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = crate::ops::roster_for(&config, catalog_dir).await?;
            let mut failed = 0usize;
            for (id, result) in roster.check_connections(&principal).await {
                match result {
                    Ok(v) => {
                        println!("{id}: {}", if v.ok() { "ok" } else { "FAILED" });
                        for c in &v.checks {
                            println!(
                                "  {} {}: {}",
                                if c.passed { "pass" } else { "FAIL" },
                                c.name,
                                c.detail
                            );
                        }
                        if !v.ok() {
                            failed += 1;
                        }
                    }
                    Err(e) => {
                        println!("{id}: could not check: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} connection(s) failed their check");
            }
        }
        ConnectionsCommand::Resume { config, name } => {
            // `roster resume` lifts a person's pause; this lifts roster's
            // own quarantine. Different decisions, different commands.
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = roster_engine::Roster::new(engine_offline(&config, catalog_dir).await?);
            if roster
                .lift_quarantine(&principal, &ConnectionId::new(name.as_str()))
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

/// ` [paused by alice since 2026-12-06T22:40:00Z: vendor incident]`.
pub(crate) fn paused_note(p: &roster_store::PauseRecord) -> String {
    let since = time::OffsetDateTime::from_unix_timestamp(p.paused_ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    format!(
        " [paused{} by {} since {since}{}]",
        if p.connection.is_none() {
            " (all connections)"
        } else {
            ""
        },
        p.actor,
        p.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )
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
