//! `roster bench runbook`: how long one Spendesk deactivation takes through
//! the console runbook (`catalog/runbooks/spendesk-deactivate.toml`) in a
//! real headless chromium against the Spendesk simulator's admin console,
//! and how many such runs go in parallel before the console's pacing rule
//! pushes back.
//!
//! Everything is on loopback: the simulator, chromedriver (spawned by the
//! browser connector) and chromium. Each leaver has one pending approval
//! and one open card, so every run signs in (password and TOTP code),
//! reassigns, blocks, deactivates, and takes its screenshots, as in
//! production; a run is one [`BrowserConnector::run_one`] (a fresh browser
//! session each time). The simulator's effect log is the oracle: a run
//! counts as done only when the member reads `deactivated` there.
//!
//! 1. **Sequential**: one connection, `--runs` deactivations one after
//!    another, after one warm-up run, against a console without pacing
//!    (this phase measures latency). Median and p95 of a run's wall time.
//! 2. **Parallel ramp**: for each level of `--parallel`, that many
//!    connections (each its own chromedriver and browser session, the
//!    same admin login), each running `--per-session` deactivations in a
//!    row, against a fresh simulator whose console allows
//!    `--pace-requests` signed-in requests per admin per `--pace-window-ms`
//!    (answered 429 past it). The ramp stops at the first level the
//!    console throttles; the report names the last level without push-back.
//!
//! Prints one JSON report on standard output, progress on standard error.
//! Needs Debian's chromium and chromium-driver (scripts/browser-tools.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use roster_browser::{
    BrowserConnector, BrowserSettings, Credentials, DriverOptions, EvidenceStore, Outcome,
    SignInMode,
};
use roster_catalog::Catalog;
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::{ConnectionId, Operation};
use roster_sim::spendesk::{
    ConsoleAdmin, ConsoleEvent, ConsolePacing, Member, RunningSpendesk, SpendeskSim,
    SpendeskSimConfig,
};
use serde_json::{Value, json};

use crate::bench_api::percentile;

#[derive(Args)]
pub struct RunbookArgs {
    /// Deactivations timed one after another (after one warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Parallel sessions to try, in order (at most 16); the ramp stops at
    /// the first level the console's pacing pushes back.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,6,8")]
    parallel: Vec<usize>,
    /// Deactivations each parallel session runs, one after another.
    #[arg(long, default_value_t = 3)]
    per_session: usize,
    /// The console's pacing rule: signed-in requests per admin in a window.
    #[arg(long, default_value_t = 60)]
    pace_requests: u32,
    /// The pacing rule's window, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pace_window_ms: u64,
    /// Other members in the simulated tenant (search has to find the
    /// leaver among them).
    #[arg(long, default_value_t = 200)]
    members: usize,
}

const API_ID: &str = "bench-key";
const API_SECRET: &str = "bench-secret";
const ADMIN: &str = "it-ops@bench.example";
const PASSWORD: &str = "bench-console-password";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SUCCESSOR: &str = "finance-lead@bench.example";

/// One run's result.
struct Run {
    wall_ms: f64,
    done: bool,
}

pub async fn run(args: RunbookArgs) -> Result<()> {
    if args.runs == 0 || args.runs > 200 {
        bail!("--runs must be between 1 and 200");
    }
    if args.per_session == 0 || args.per_session > 20 {
        bail!("--per-session must be between 1 and 20");
    }
    if args.parallel.is_empty() || args.parallel.iter().any(|&p| p == 0 || p > 16) {
        bail!("--parallel levels must be between 1 and 16");
    }
    if args.pace_requests == 0 || args.pace_window_ms == 0 {
        bail!("--pace-requests and --pace-window-ms must be positive");
    }
    let driver = DriverOptions::default();
    if !driver.chromedriver.exists() || !driver.chromium.exists() {
        bail!(
            "{} or {} is missing; scripts/browser-tools.sh installs Debian's chromium and chromium-driver",
            driver.chromium.display(),
            driver.chromedriver.display()
        );
    }
    let build = if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; the runs are mostly chromium's time, but roster's own share is slower than in a release build"
        );
        "debug"
    } else {
        "release"
    };
    let pacing = ConsolePacing {
        requests: args.pace_requests,
        window: Duration::from_millis(args.pace_window_ms),
    };
    let dir = tempfile::Builder::new()
        .prefix("roster-bench-runbook-")
        .tempdir()
        .context("cannot create a temporary directory")?;

    // 1. Sequential.
    eprintln!(
        "sequential: 1 warm-up + {} deactivations, one session at a time",
        args.runs
    );
    let sim = start_sim(&args, 1 + args.runs, None).await?;
    let c = connector(&sim, dir.path().join("seq"))?;
    let warm = Instant::now();
    c.warm_up().await?;
    let driver_ms = ms(warm.elapsed());
    let warmup = one(&c, &sim, &leaver(0)).await;
    let served_before = sim.console_requests();
    let mut runs = Vec::with_capacity(args.runs);
    for i in 1..=args.runs {
        let r = one(&c, &sim, &leaver(i)).await;
        eprintln!(
            "  run {i}: {:.0} ms{}",
            r.wall_ms,
            if r.done { "" } else { " (NOT done)" }
        );
        runs.push(r);
    }
    let requests_per_run = (sim.console_requests() - served_before) as f64 / args.runs as f64;
    let sequential = json!({
        "runs": args.runs,
        "done": runs.iter().filter(|r| r.done).count(),
        "chromedriver_start_ms": round(driver_ms),
        "warmup_run_ms": round(warmup.wall_ms),
        "median_ms": round(pct(&runs, 50.0)),
        "p95_ms": round(pct(&runs, 95.0)),
        "min_ms": round(pct(&runs, 0.0)),
        "max_ms": round(pct(&runs, 100.0)),
        "console_requests_per_run": (requests_per_run * 10.0).round() / 10.0,
    });
    drop(c);
    drop(sim);

    // 2. Parallel ramp.
    let mut levels: Vec<Value> = Vec::new();
    let mut last_clean: Option<usize> = None;
    let mut pushed_back_at: Option<usize> = None;
    for &sessions in &args.parallel {
        let n = sessions * args.per_session;
        eprintln!(
            "parallel: {sessions} session(s) × {} deactivations",
            args.per_session
        );
        let sim = start_sim(&args, n, Some(pacing)).await?;
        let mut connectors = Vec::with_capacity(sessions);
        for s in 0..sessions {
            let c = Arc::new(connector(
                &sim,
                dir.path().join(format!("p{sessions}-{s}")),
            )?);
            c.warm_up().await?;
            connectors.push(c);
        }
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(sessions);
        for (s, c) in connectors.iter().enumerate() {
            let c = c.clone();
            let emails: Vec<String> = (0..args.per_session)
                .map(|k| leaver(s * args.per_session + k))
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(emails.len());
                for e in emails {
                    let t = Instant::now();
                    let report = c.run_one(&e).await;
                    let done = matches!(report, Ok(ref r) if r.outcome == Outcome::Done);
                    out.push((e, ms(t.elapsed()), done));
                }
                out
            }));
        }
        let mut results = Vec::with_capacity(n);
        for t in tasks {
            results.extend(t.await.context("a session's task panicked")?);
        }
        let wall = started.elapsed();
        let runs: Vec<Run> = results
            .iter()
            .map(|(e, wall_ms, done)| Run {
                wall_ms: *wall_ms,
                done: *done && deactivated(&sim, e),
            })
            .collect();
        let done = runs.iter().filter(|r| r.done).count();
        let throttled = throttled_count(&sim);
        let served = sim.console_requests();
        eprintln!(
            "  {done}/{n} done in {:.1} s, {throttled} throttled request(s)",
            wall.as_secs_f64()
        );
        levels.push(json!({
            "sessions": sessions,
            "deactivations": n,
            "done": done,
            "wall_ms": round(ms(wall)),
            "per_minute": round(done as f64 / wall.as_secs_f64() * 60.0),
            "median_ms": round(pct(&runs, 50.0)),
            "p95_ms": round(pct(&runs, 95.0)),
            "console_requests_per_second": round(served as f64 / wall.as_secs_f64()),
            "throttled": throttled,
        }));
        drop(connectors);
        if throttled > 0 {
            pushed_back_at = Some(sessions);
            break;
        }
        if done == n {
            last_clean = Some(sessions);
        }
    }

    let report = json!({
        "bench": "runbook",
        "build": build,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "runbook": "spendesk-deactivate (run to the end: the connection opts in)",
        "per_deactivation": "fresh chromium session, sign-in with password and TOTP code, search, 1 approval reassigned, 1 card blocked, deactivate, 3 screenshots",
        "simulator": {
            "members": args.members,
            "pacing": {
                "requests": args.pace_requests,
                "window_ms": args.pace_window_ms,
                "per": "admin, across sessions",
            },
        },
        "sequential": sequential,
        "parallel": levels,
        "max_parallel_without_pushback": last_clean,
        "pushed_back_at": pushed_back_at,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn leaver(i: usize) -> String {
    format!("leaver{i:04}@bench.example")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(x: f64) -> f64 {
    x.round()
}

fn pct(runs: &[Run], p: f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
    v.sort_by(f64::total_cmp);
    if p <= 0.0 {
        return v.first().copied().unwrap_or(0.0);
    }
    percentile(&v, p)
}

async fn start_sim(
    args: &RunbookArgs,
    leavers: usize,
    pacing: Option<ConsolePacing>,
) -> Result<RunningSpendesk> {
    let mut cfg = SpendeskSimConfig::new(API_ID, API_SECRET)
        .with_seed(args.members)
        .with_console_admin(ConsoleAdmin {
            email: ADMIN.into(),
            password: Some(PASSWORD.into()),
            totp_seed: Some(SEED.into()),
        })
        .with_member(Member::new(SUCCESSOR, "Finance", "Lead"));
    for i in 0..leavers {
        cfg = cfg.with_member(Member::new(&leaver(i), "Lee", &format!("Ver{i}")));
    }
    let sim = SpendeskSim::start(cfg)
        .await
        .context("cannot start the Spendesk simulator")?;
    for i in 0..leavers {
        let e = leaver(i);
        sim.add_approval(&e, SUCCESSOR, "€42.00");
        // A test card number, distinct per leaver.
        sim.add_card(&e, &format!("4000{:012}", 5_566_550_000u64 + i as u64));
    }
    sim.set_console_pacing(pacing);
    Ok(sim)
}

fn connector(sim: &RunningSpendesk, evidence: std::path::PathBuf) -> Result<BrowserConnector> {
    let catalog = Catalog::builtin()?;
    let runbook = catalog
        .runbook("spendesk", Operation::Deactivate)
        .context("the catalog has no Spendesk deactivation runbook")?
        .clone();
    let read = registry::build(
        catalog.require("spendesk")?,
        &ConnectorSettings::new(ConnectionId::new("spendesk"))
            .with_path("api")
            .with_base_url(sim.url())
            .with_username(API_ID)
            .with_secret(SecretString::new(API_SECRET)),
    )?;
    Ok(BrowserConnector::new(
        read,
        runbook,
        BrowserSettings {
            console_url: sim.base_url(),
            signin: SignInMode::Local,
            run_unverified: true,
            successor: Some(SUCCESSOR.into()),
            step_timeout: Duration::from_secs(10),
            evidence: EvidenceStore::new(evidence, Duration::from_secs(86_400)),
            driver: DriverOptions::default(),
        },
        Credentials {
            username: ADMIN.into(),
            password: SecretString::new(PASSWORD),
            totp_seed: Some(SecretString::new(SEED)),
            idp_username: None,
            idp_password: None,
        },
    )?)
}

async fn one(c: &BrowserConnector, sim: &RunningSpendesk, email: &str) -> Run {
    let t = Instant::now();
    let report = c.run_one(email).await;
    let wall_ms = ms(t.elapsed());
    let done = matches!(report, Ok(ref r) if r.outcome == Outcome::Done) && deactivated(sim, email);
    Run { wall_ms, done }
}

/// The oracle: the simulator's own record.
fn deactivated(sim: &RunningSpendesk, email: &str) -> bool {
    sim.member(email).is_some_and(|m| m.status == "deactivated")
}

fn throttled_count(sim: &RunningSpendesk) -> usize {
    sim.console_events()
        .iter()
        .filter(|e| matches!(e, ConsoleEvent::Throttled { .. }))
        .count()
}
