//! `roster bench sources`: how fast a change in an identity provider
//! reaches an app, and how close a full read comes to the rate limit it
//! is allowed.
//!
//! Everything runs on loopback against the simulators: an Okta org (the
//! source) and an Expensify policy (the app), with roster's service
//! (`roster_engine::service::run`, the worker at its default idle poll)
//! and the Okta event hook endpoint (`roster_server::hook_router`) between
//! them, exactly as `roster serve` wires them. Three phases:
//!
//! 1. **Hook**: a user is deactivated in the simulated Okta and Okta's
//!    event hook delivery is POSTed; measured from the change to the
//!    Expensify simulator recording the user's removal (the first app
//!    action). Target: p99 ≤ 1 s.
//! 2. **Poll**: the same with no hook, the service polling the System Log
//!    every `--poll-interval`; changes land at spread-out moments of the
//!    interval. Target: p99 ≤ poll interval + 1 s.
//! 3. **Full read**: `--full-read-users` users at 200 per page through
//!    `Roster::import_sources_with(Full)`, with the simulator enforcing a
//!    window of `--rate-limit` requests per `--rate-window` and roster
//!    configured to use half of it (Okta's default share). The time to the
//!    last page is compared with what the share allows:
//!    `floor((requests - 1) / floor(limit × share)) × window`. Target:
//!    within 10 % above it.
//!
//! The Expensify simulator's own rate limits are scaled down (as in the
//! tests): the app's pacing is not what is measured. Prints one JSON
//! report on standard output; medians and p99 per phase, each against its
//! target in the same run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Policy, Principal};
use roster_engine::inbound::EngineSink;
use roster_engine::service::{self, ServiceOptions};
use roster_engine::sources::SourceSync;
use roster_engine::{Engine, PlanScope, Roster};
use roster_server::{HookState, OktaHook, hook_router};
use roster_sim::expensify::{
    EffectKind, ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy,
};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_sources::okta::{OktaSource, OktaSourceConfig};
use serde_json::json;
use tokio::sync::watch;

#[derive(Args)]
pub struct SourcesArgs {
    /// People in the org and the app for the latency phases.
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// Changes timed through the event hook.
    #[arg(long, default_value_t = 20)]
    hook_samples: usize,
    /// Changes timed through polling.
    #[arg(long, default_value_t = 8)]
    poll_samples: usize,
    /// The service's poll interval, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    poll_interval: u64,
    /// Users in the org for the full-read phase (the product target is 50000).
    #[arg(long, default_value_t = 5_000)]
    full_read_users: usize,
    /// The simulator's rate limit for the full read: requests per window.
    #[arg(long, default_value_t = 20)]
    rate_limit: u32,
    /// The simulator's rate-limit window, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    rate_window: u64,
}

const OKTA_TOKEN: &str = "bench-okta-token";
const HOOK_SECRET: &str = "bench-hook-secret-0123456789abcdef";
const USER: &str = "bench@example.com";
const SECRET: &str = "bench-secret";
const POLICY_ID: &str = "BENCH00000000001";
const SOURCE: &str = "source.okta";

fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

fn policy() -> Result<Policy> {
    Ok(Policy::parse(
        "bench.toml",
        &format!(
            "[[rules]]\nname = \"all\"\nconnection = \"expensify\"\n\
             when = {{ status = [\"active\", \"leave\"] }}\n\
             set = {{ role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"{POLICY_ID}\" }}\n"
        ),
    )?)
}

fn stats(mut v: Vec<Duration>) -> serde_json::Value {
    v.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    json!({
        "samples": v.len(),
        "median_ms": ms(at(0.5)),
        "p99_ms": ms(at(0.99)),
        "max_ms": ms(*v.last().unwrap_or(&Duration::ZERO)),
    })
}

fn p99(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Waits until the app records `who`'s removal; the time it took.
async fn removal(app: &RunningSim, who: &str, t0: Instant) -> Result<Duration> {
    let deadline = t0 + Duration::from_secs(60);
    loop {
        if app
            .handle()
            .effects()
            .iter()
            .any(|e| e.kind == EffectKind::Removed && e.email == who)
        {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{who} was not removed from the app within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), roster_engine::EngineError>>,
}

fn start_service(
    roster: &Arc<Roster>,
    poll: Option<Duration>,
) -> (
    Running,
    tokio::sync::mpsc::UnboundedSender<service::Event>,
    Arc<EngineSink>,
) {
    let (sink, tx, rx) = EngineSink::channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(service::run(
        roster.clone(),
        ServiceOptions {
            full_interval: Duration::from_secs(24 * 3600),
            hr_csv: None,
            auto_apply: true,
            poll_interval: poll.or(Some(Duration::from_secs(24 * 3600))),
        },
        rx,
        stop_rx,
    ));
    (Running { stop, task }, tx, sink)
}

async fn stop_service(r: Running) -> Result<()> {
    let _ = r.stop.send(true);
    r.task.await.context("the service task failed")??;
    Ok(())
}

pub async fn run(args: SourcesArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; benchmark figures need `cargo build --release`");
    }
    anyhow::ensure!(
        args.hook_samples + args.poll_samples < args.people,
        "--people must exceed the samples (each sample deactivates one person)"
    );
    let op = Principal::new(PrincipalKind::User, "bench");
    // The app and the org for the latency phases.
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    let mut org = OktaSimConfig::new(OKTA_TOKEN);
    for i in 0..args.people {
        tenant = tenant.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i}"),
        ));
        org = org.with_user(
            OktaUser::new(&email(i), &format!("P{i}"), "L").with_employee_number(&format!("E{i}")),
        );
    }
    let app = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.001)
            .with_policies([tenant]),
    )
    .await?;
    let idp = OktaSim::start(org).await?;
    let dir = tempfile::tempdir()?;
    let store =
        roster_store::Store::open(&dir.path().join("bench.db").display().to_string()).await?;
    let mut engine = Engine::new(store, policy()?);
    let mut exp = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(app.url());
    exp.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.001))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(exp)?));
    engine.add_source(Arc::new(okta_source(&idp, None)?));
    let roster = Arc::new(Roster::new(engine));
    // In line: a full read, a first (empty) plan applied, the log drained.
    roster.import_sources(&op, None, &mut |_, _| {}).await?;
    roster.read(&op, &mut |_, _| {}).await?;
    let planned = roster.plan(&op, PlanScope::All).await?;
    anyhow::ensure!(
        planned.plan.actions.is_empty(),
        "the bench's first plan should be empty: {:?}",
        planned.plan.actions
    );
    let approved = roster.check_planned(&op, planned).await?;
    roster.apply(approved, &mut |_, _| {}).await?;
    roster
        .import_sources_with(&op, None, &SourceSync::Changes, &mut |_, _| {})
        .await?;

    // 1. The event hook, served as `roster serve` serves it.
    eprintln!("hook: {} changes", args.hook_samples);
    let (svc, _tx, sink) = start_service(&roster, None);
    let hook = OktaHook::new(ConnectionId::new(SOURCE), "Authorization", HOOK_SECRET)
        .map_err(anyhow::Error::msg)?;
    let state = HookState::new(BTreeMap::from([("okta".to_string(), hook)]), sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hooks/okta/okta", listener.local_addr()?);
    let (server_stop, mut server_stop_rx) = watch::channel(false);
    let server = tokio::spawn(roster_server::serve(
        listener,
        hook_router(state),
        async move {
            let _ = server_stop_rx.wait_for(|s| *s).await;
        },
    ));
    // The service's first full run goes first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let h = idp.handle();
    let mut hook_times = Vec::new();
    for i in 0..args.hook_samples {
        let who = email(i);
        let id = h.user(&who).context("bench user")?.id;
        let t0 = Instant::now();
        h.set_user_status(&who, "DEPROVISIONED");
        let delivery = json!({
            "eventType": "com.okta.event_hook",
            "data": { "events": [{
                "uuid": format!("bench-{i}"),
                "eventType": "user.lifecycle.deactivate",
                "target": [{ "id": id, "type": "User" }]
            }]}
        });
        let res = http
            .post(&hook_url)
            .header("Authorization", HOOK_SECRET)
            .json(&delivery)
            .send()
            .await?;
        anyhow::ensure!(
            res.status().is_success(),
            "the hook answered {}",
            res.status()
        );
        hook_times.push(removal(&app, &who, t0).await?);
    }
    let _ = server_stop.send(true);
    let _ = server.await;
    stop_service(svc).await?;

    // 2. Polling.
    let poll = Duration::from_millis(args.poll_interval.max(100));
    eprintln!(
        "poll: {} changes, polling every {} ms",
        args.poll_samples,
        poll.as_millis()
    );
    let (svc, _tx, _sink) = start_service(&roster, Some(poll));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut poll_times = Vec::new();
    for k in 0..args.poll_samples {
        let who = email(args.hook_samples + k);
        // Changes land at spread-out moments of the interval.
        tokio::time::sleep(poll.mul_f64(((k as f64) * 0.37).fract())).await;
        let t0 = Instant::now();
        h.set_user_status(&who, "DEPROVISIONED");
        poll_times.push(removal(&app, &who, t0).await?);
    }
    stop_service(svc).await?;

    // 3. A full read against the rate limit.
    eprintln!(
        "full read: {} users, 200 per page, {} requests per {} ms at half",
        args.full_read_users, args.rate_limit, args.rate_window
    );
    let window = RateWindow::new(args.rate_limit, Duration::from_millis(args.rate_window));
    let big = OktaSim::start(
        OktaSimConfig::new(OKTA_TOKEN)
            .with_seed(args.full_read_users)
            .with_rate_limit(window.max_requests, window.per),
    )
    .await?;
    let store =
        roster_store::Store::open(&dir.path().join("full.db").display().to_string()).await?;
    let mut engine = Engine::new(store, policy()?);
    engine.add_source(Arc::new(okta_source(&big, Some(window))?));
    let full_roster = Roster::new(engine);
    let mut pages = 0u32;
    let mut last_page = Duration::ZERO;
    let t0 = Instant::now();
    let imported = full_roster
        .import_sources_with(&op, None, &SourceSync::Full, &mut |_, p| {
            if let roster_connectors::driver::Progress::PageRead { .. } = p {
                pages += 1;
                last_page = t0.elapsed();
            }
        })
        .await?;
    let total = t0.elapsed();
    let counters = big.handle().counters();
    let requests = counters.requests;
    let allowed_per_window = (f64::from(window.max_requests) * 0.5).floor().max(1.0) as u64;
    let expected = window
        .per
        .mul_f64((requests.saturating_sub(1) / allowed_per_window) as f64);
    let over = if expected.is_zero() {
        0.0
    } else {
        last_page.as_secs_f64() / expected.as_secs_f64() - 1.0
    };

    let hook_p99 = p99(&hook_times);
    let poll_p99 = p99(&poll_times);
    let report = json!({
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "hook": {
            "latency": stats(hook_times.clone()),
            "target_p99_ms": 1000,
            "met": hook_p99 <= Duration::from_secs(1),
        },
        "poll": {
            "interval_ms": poll.as_millis() as u64,
            "latency": stats(poll_times.clone()),
            "target_p99_ms": (poll + Duration::from_secs(1)).as_millis() as u64,
            "met": poll_p99 <= poll + Duration::from_secs(1),
        },
        "full_read": {
            "users": args.full_read_users,
            "people_imported": imported.people,
            "requests": requests,
            "pages_read": pages,
            "rate_limit_violations": counters.rate_limit_violations,
            "window": { "requests": window.max_requests, "ms": window.per.as_millis() as u64, "share": 0.5 },
            "read_ms": last_page.as_millis() as u64,
            "import_ms": total.as_millis() as u64,
            "allowed_ms": expected.as_millis() as u64,
            "over_allowed": (over * 1000.0).round() / 1000.0,
            "target_over": 0.10,
            "met": over <= 0.10,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The Okta source as `[sources.okta]` builds it, 200 users per page; the
/// org's window `window` when given (roster's share: half).
fn okta_source(idp: &RunningOkta, window: Option<RateWindow>) -> Result<OktaSource> {
    let mut c = OktaSourceConfig::new(
        ConnectionId::new(SOURCE),
        idp.url(),
        SecretString::new(OKTA_TOKEN),
    );
    c.page_size = 200;
    c.allow_private_network = true;
    if let Some(w) = window {
        c.rate_limit = w;
    }
    Ok(OktaSource::new(c)?)
}
