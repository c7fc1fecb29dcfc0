//! `roster worker`: a process that only drains the task queue.
//!
//! Any number of them may run beside `roster serve` / `roster run` on one
//! PostgreSQL database: claims take `FOR UPDATE SKIP LOCKED`, finishing is
//! fenced by lease owner and attempt, rate budgets are counted in the
//! database, and a worker killed at any instant leaves its tasks to be
//! reaped and run again (see `roster_engine::executor`). A worker plans
//! nothing and runs no schedule; that is the scheduler lease holder's job.
//! SQLite is one process: `roster run` and `roster serve` run their own
//! worker, and this command refuses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::ops::{engine_for, load_config};

#[derive(Args)]
pub struct WorkerArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    pub config: PathBuf,
    /// This worker's name in task leases (default host-pid-random). A
    /// stable name lets a restarted worker take back its previous run's
    /// tasks at once; never give two live workers the same name.
    #[arg(long)]
    pub id: Option<String>,
    /// Seconds a claimed task stays leased without a heartbeat: how long
    /// the tasks of a worker that died wait before another runs them.
    #[arg(long, default_value_t = 60)]
    pub lease_secs: u64,
}

/// Whether `database` names PostgreSQL (the only store several processes
/// may share).
pub(crate) fn is_postgres(database: &str) -> bool {
    let d = database.trim_start();
    d.starts_with("postgres://") || d.starts_with("postgresql://")
}

pub async fn run(args: WorkerArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    if !is_postgres(&config.database) {
        bail!(
            "roster worker needs PostgreSQL (`database = \"postgres://...\"`): a SQLite database \
             belongs to one process, and `roster run` or `roster serve` already drains its queue"
        );
    }
    let mut engine = engine_for(&config, catalog_dir).await?;
    if let Some(id) = args.id {
        anyhow::ensure!(!id.trim().is_empty(), "--id must not be empty");
        engine.executor.worker_id = id;
    }
    let lease = Duration::from_secs(args.lease_secs.max(2));
    engine.executor.lease = lease;
    engine.executor.heartbeat = engine.executor.heartbeat.min(lease / 4);
    let worker_id = engine.executor.worker_id.clone();
    let roster = Arc::new(roster_engine::Roster::new(engine));
    eprintln!(
        "roster worker {worker_id}: draining the queue of {}; Ctrl-C (or SIGTERM) stops after the batches in flight",
        roster.store().describe()
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let work = tokio::spawn({
        let roster = roster.clone();
        async move {
            roster
                .run_worker(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await
        }
    });
    crate::service::shutdown_signal().await?;
    eprintln!("stopping…");
    let _ = stop_tx.send(true);
    work.await.context("the worker task failed")??;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_postgres_urls_count_as_shared() {
        assert!(super::is_postgres("postgres://roster@db/roster"));
        assert!(super::is_postgres("postgresql://db/roster"));
        for not in [
            "roster.db",
            "/var/lib/roster/roster.db",
            "sqlite://x.db",
            "postgres.db",
        ] {
            assert!(!super::is_postgres(not), "{not}");
        }
    }
}
