//! `roster bench reconcile`: the reconciliation benchmark (see
//! `roster_engine::bench`); `roster bench sources`: IdP change latency and
//! full-read pacing (`bench_sources.rs`); `roster bench api`: the HTTP
//! read surface over a large store beside the SCIM server (`bench_api.rs`);
//! `roster bench ui`: the web UI's pages over the same store (`bench_ui.rs`);
//! `roster bench runbook`: a Spendesk deactivation through the console
//! runbook in chromium, sequential and in parallel (`bench_runbook.rs`). Prints one JSON report on standard output and
//! progress on standard error. Build with `--release`; a debug build is
//! several times slower and says nothing about the targets.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_engine::bench::{self, BenchOptions};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time a full and a one-person reconciliation over a synthetic company.
    Reconcile(ReconcileArgs),
    /// Time an IdP change to the first app action (event hook, polling) and
    /// a full read against the rate limit (simulators on loopback).
    Sources(crate::bench_sources::SourcesArgs),
    /// Time `GET /api/v1/people/{id}` and people search over 100,000 people
    /// × 20 apps, beside the SCIM server's reads (loopback, in-process).
    Api(crate::bench_api::ApiArgs),
    /// Time the web UI's dashboard, people search and person page over
    /// 100,000 people × 20 apps (loopback, in-process; target p95 ≤ 100 ms).
    Ui(crate::bench_ui::UiArgs),
    /// Time one Spendesk deactivation through the console runbook in
    /// headless chromium against the simulator, and ramp parallel sessions
    /// until the console's pacing pushes back (loopback; needs chromium).
    Runbook(crate::bench_runbook::RunbookArgs),
    /// Mixed SCIM, API and reconciliation load at half the measured
    /// capacity for a long time (30 minutes by default; `scripts/soak.sh`):
    /// memory, latency and failures minute by minute.
    Soak(crate::bench_soak::SoakArgs),
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// People in the synthetic company.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Connections (apps).
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// An EMPTY database to use (e.g. postgres://...); default: a fresh SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Seed of the synthetic company.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// People reconciled one by one in the targeted phase.
    #[arg(long, default_value_t = 1_000)]
    samples: usize,
    /// A report from a smaller run (e.g. --people 100000) to compute the scaling ratio against.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    let args = match cmd {
        BenchCommand::Reconcile(args) => args,
        BenchCommand::Sources(args) => return crate::bench_sources::run(args).await,
        BenchCommand::Api(args) => return crate::bench_api::run(args).await,
        BenchCommand::Ui(args) => return crate::bench_ui::run(args).await,
        BenchCommand::Runbook(args) => return crate::bench_runbook::run(args).await,
        BenchCommand::Soak(args) => return crate::bench_soak::run(args).await,
    };
    let baseline: Option<serde_json::Value> = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read baseline {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!("baseline {} is not a benchmark report", path.display())
            })?)
        }
        None => None,
    };
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; benchmark figures need `cargo build --release`");
    }
    let opts = BenchOptions {
        people: args.people,
        apps: args.apps,
        database: args.database,
        seed: args.seed,
        targeted_samples: args.samples,
    };
    let mut report = bench::run(&opts, &mut |line| eprintln!("{line}")).await?;
    if let Some(b) = &baseline {
        report.compare(b)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
