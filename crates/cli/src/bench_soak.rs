//! `roster bench soak`: mixed load for a long time at half of what the
//! machine can do, to show that memory stays flat, latency stays stable
//! and nothing fails (issue "Scale out and hold up", item 5). A script
//! runs it (`scripts/soak.sh`, 30 minutes by default); it is not a CI
//! step.
//!
//! 1. **Seed** a fresh store with the synthetic company (`--people` ×
//!    `--apps`) and the SCIM peer connection's users, as `roster bench
//!    api` does, and serve what `roster serve` serves on loopback in this
//!    process.
//! 2. **Probe** capacity: `--concurrency` clients, one request in flight
//!    each, send the mix back to back for `--probe-seconds`; the requests
//!    per second they reach is the capacity.
//! 3. **Soak** for `--minutes` at `--rate` requests per second (default:
//!    half the capacity), open loop: a request leaves on schedule whether
//!    or not the earlier ones have answered, so a slowdown shows as
//!    latency rather than as a lower rate. The mix, in turn: SCIM get by
//!    id, SCIM filter by `userName`, `GET /api/v1/people/{id}` and people
//!    search; and every `--plan-every` seconds a full reconciliation plan
//!    (`Roster::plan`, every person against every app, saved as
//!    `roster plan` saves it).
//!
//! Each minute gets a line: requests, failures, p50/p99, plans and their
//! time, and the peak RSS within the minute (`VmHWM`, reset each minute).
//! The JSON report at the end adds the verdicts: memory growth from the
//! second minute's peak to the last's, p99 of the last minute over the
//! median minute's, and failures in all. A request due while
//! `--max-in-flight` others are still waiting is not sent and counts as
//! shed (the machine is overloaded: the rate is more than it can do).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_core::principal::PrincipalKind;
use roster_core::{Person, Principal};
use roster_engine::bench::{peak_rss, reset_peak_rss};
use roster_engine::{Engine, PlanScope, Roster};
use serde::Serialize;

use crate::bench_api::{
    BenchServer, SCIM_CONNECTION, fresh_store, percentile, round, search_query,
    seed_people_and_accounts, seed_scim_users,
};

#[derive(Args)]
pub struct SoakArgs {
    /// How long the soak runs, in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// People stored.
    #[arg(long, default_value_t = 20_000)]
    people: usize,
    /// Apps (connections); every person has an account in each.
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// Requests per second during the soak; default: half the capacity
    /// the probe measures.
    #[arg(long)]
    rate: Option<f64>,
    /// How long the capacity probe runs, in seconds.
    #[arg(long, default_value_t = 15.0)]
    probe_seconds: f64,
    /// Clients in the capacity probe, one request in flight each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds between two full reconciliation plans (0: none).
    #[arg(long, default_value_t = 60.0)]
    plan_every: f64,
    /// Requests waiting at once before a new one counts as failed.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// An EMPTY database to use; default: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Seed of the synthetic company and of the request mix.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One minute of the soak.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MinuteReport {
    pub minute: usize,
    pub requests: usize,
    /// Sent and answered with an error (or not at all).
    pub failed: usize,
    /// Not sent: too many others were still waiting (overload).
    pub shed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub plans: usize,
    pub plans_failed: usize,
    pub plan_ms_max: f64,
    /// Peak RSS within the minute, MiB (`VmHWM`, reset each minute).
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub build: &'static str,
    pub people: usize,
    pub apps: usize,
    pub capacity_per_second: f64,
    pub rate_per_second: f64,
    pub minutes: Vec<MinuteReport>,
    pub requests: usize,
    pub failed: usize,
    pub shed: usize,
    pub plans: usize,
    pub plans_failed: usize,
    /// Peak RSS of the last minute over the second minute's (the first
    /// holds the warm-up), as a ratio; 1.0 is flat.
    pub rss_growth: Option<f64>,
    /// p99 of the last minute over the median minute's p99.
    pub p99_last_vs_median: Option<f64>,
}

/// What each minute collects while it runs.
#[derive(Clone, Default)]
struct Minute {
    times_ms: Vec<f64>,
    failed: usize,
    /// Not sent: `--max-in-flight` others were still waiting.
    shed: usize,
    plans: usize,
    plans_failed: usize,
    plan_ms_max: f64,
}

pub async fn run(args: SoakArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; soak figures need `cargo build --release`");
    }
    let report = measure(&args, &mut |line| eprintln!("{line}")).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The request mix: one of four reads, chosen by `i`, about a person
/// drawn from `i`.
#[derive(Clone)]
struct Mix {
    client: reqwest::Client,
    server: Arc<BenchServer>,
    people: Arc<Vec<Person>>,
    seed: u64,
}

impl Mix {
    fn request(&self, i: usize) -> reqwest::RequestBuilder {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let p = rng.random_range(0..self.people.len());
        let roll: u32 = rng.random_range(0..u32::MAX);
        let (origin, person) = (&self.server.origin, &self.people[p]);
        match i % 4 {
            0 => self
                .client
                .get(format!("{origin}/scim/v2/{SCIM_CONNECTION}/Users/u-{p:07}"))
                .bearer_auth(&self.server.scim_token),
            1 => self
                .client
                .get(format!("{origin}/scim/v2/{SCIM_CONNECTION}/Users"))
                .query(&[(
                    "filter",
                    format!("userName eq \"{}\"", person.email.normalized()),
                )])
                .bearer_auth(&self.server.scim_token),
            2 => self
                .client
                .get(format!("{origin}/api/v1/people/{}", person.employee_id))
                .bearer_auth(&self.server.api_token),
            _ => self
                .client
                .get(format!("{origin}/api/v1/people"))
                .query(&[("q", search_query(person, roll)), ("limit", "20".into())])
                .bearer_auth(&self.server.api_token),
        }
    }

    /// Sends request `i`; its time in ms and whether it succeeded.
    async fn send(&self, i: usize) -> (f64, bool) {
        let t = Instant::now();
        let ok = match self.request(i).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        (t.elapsed().as_secs_f64() * 1000.0, ok)
    }
}

pub async fn measure(
    args: &SoakArgs,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<SoakReport> {
    anyhow::ensure!(
        args.minutes > 0.0,
        "--minutes must be more than 0 (e.g. --minutes 30)"
    );
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.rate.is_none_or(|r| r > 0.0),
        "--rate must be more than 0 requests per second"
    );
    let (store, _tmp) = fresh_store(args.database.as_deref(), "bench-soak.db").await?;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let t = Instant::now();
    let (synthetic, policy, accounts) =
        seed_people_and_accounts(&store, args.people, args.apps, args.seed, now_ms).await?;
    seed_scim_users(&store, &synthetic.people, now_ms).await?;
    progress(&format!(
        "seeded {} people, {accounts} accounts in {} apps and {} SCIM users in {:.1} s",
        synthetic.people.len(),
        args.apps,
        synthetic.people.len(),
        t.elapsed().as_secs_f64()
    ));
    let people = Arc::new(synthetic.people.clone());
    drop(synthetic);
    let roster = Arc::new(Roster::new(Engine::new(store.clone(), policy)));
    let (server, http) = BenchServer::start(&store, roster.clone(), now_ms).await?;
    let mix = Mix {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        server: Arc::new(server),
        people,
        seed: args.seed,
    };

    // Capacity: closed loop, back to back.
    let probe = Duration::from_secs_f64(args.probe_seconds.max(1.0));
    let started = Instant::now();
    let mut probes = Vec::new();
    for w in 0..args.concurrency {
        let mix = mix.clone();
        let concurrency = args.concurrency;
        probes.push(tokio::spawn(async move {
            let (mut done, mut i) = (0usize, w);
            while started.elapsed() < probe {
                if mix.send(i).await.1 {
                    done += 1;
                }
                i += concurrency;
            }
            done
        }));
    }
    let mut done = 0;
    for p in probes {
        done += p.await.unwrap_or(0);
    }
    let capacity = done as f64 / started.elapsed().as_secs_f64();
    let rate = args.rate.unwrap_or(capacity / 2.0);
    progress(&format!(
        "capacity {capacity:.0} requests/s ({} clients, {:.0} s); soaking at {rate:.0}/s for {} min",
        args.concurrency,
        probe.as_secs_f64(),
        args.minutes
    ));

    // The soak.
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let minutes_n = (args.minutes.ceil() as usize).max(1);
    let collected: Arc<Mutex<Vec<Minute>>> = Arc::new(Mutex::new(
        (0..minutes_n).map(|_| Minute::default()).collect(),
    ));
    let started = Instant::now();
    let minute_of = move |at: Instant| -> usize {
        ((at.saturating_duration_since(started).as_secs() / 60) as usize).min(minutes_n - 1)
    };
    reset_peak_rss();

    // Reconciliation plans on their own schedule.
    let planner = (args.plan_every > 0.0).then(|| {
        let (roster, collected) = (roster.clone(), collected.clone());
        let every = Duration::from_secs_f64(args.plan_every);
        tokio::spawn(async move {
            let by = Principal::new(PrincipalKind::User, "soak");
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if started.elapsed() >= total {
                    break;
                }
                let t = Instant::now();
                let ok = roster.plan(&by, PlanScope::All).await.is_ok();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut c = collected.lock().unwrap_or_else(|e| e.into_inner());
                let m = &mut c[minute_of(t)];
                m.plans += 1;
                m.plans_failed += usize::from(!ok);
                m.plan_ms_max = m.plan_ms_max.max(ms);
            }
        })
    });

    // Peak RSS per minute.
    let mut rss: Vec<Option<f64>> = vec![None; minutes_n];
    let gap = Duration::from_secs_f64(1.0 / rate);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limit = args.max_in_flight;
    let mut next = Instant::now();
    let mut i = 0usize;
    let mut minute = 0;
    while started.elapsed() < total {
        let now = Instant::now();
        if minute_of(now) != minute {
            rss[minute] = peak_rss().map(|b| b as f64 / (1024.0 * 1024.0));
            reset_peak_rss();
            report_minute(progress, minute, &collected, rss[minute]);
            minute = minute_of(now);
        }
        if now < next {
            tokio::time::sleep_until(next.into()).await;
            continue;
        }
        // Open loop: every request that is due leaves now.
        while next <= Instant::now() {
            next += gap;
            let (mix, collected, in_flight) = (mix.clone(), collected.clone(), in_flight.clone());
            let n = i;
            i += 1;
            let waiting = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let at = Instant::now();
                let shed = waiting >= limit;
                let (ms, ok) = if shed {
                    (0.0, false)
                } else {
                    mix.send(n).await
                };
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let mut c = collected.lock().unwrap_or_else(|e| e.into_inner());
                let m = &mut c[minute_of(at)];
                if shed {
                    m.shed += 1;
                } else if ok {
                    m.times_ms.push(ms);
                } else {
                    m.failed += 1;
                }
            });
        }
    }
    // Let the last requests answer (they count in the minute they left).
    let drain = Instant::now();
    while in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
        && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(p) = planner {
        let _ = p.await;
    }
    rss[minute] = peak_rss().map(|b| b as f64 / (1024.0 * 1024.0));
    report_minute(progress, minute, &collected, rss[minute]);
    http.stop().await;

    let minutes: Vec<MinuteReport> = {
        let mut c = collected.lock().unwrap_or_else(|e| e.into_inner());
        c.iter_mut()
            .enumerate()
            .map(|(n, m)| summarize_minute(n, m, rss[n]))
            .collect()
    };
    Ok(verdicts(args, capacity, rate, minutes))
}

fn summarize_minute(n: usize, m: &mut Minute, rss_mib: Option<f64>) -> MinuteReport {
    m.times_ms.sort_by(f64::total_cmp);
    MinuteReport {
        minute: n + 1,
        requests: m.times_ms.len() + m.failed + m.shed,
        failed: m.failed,
        shed: m.shed,
        p50_ms: round(percentile(&m.times_ms, 50.0)),
        p99_ms: round(percentile(&m.times_ms, 99.0)),
        max_ms: round(m.times_ms.last().copied().unwrap_or(0.0)),
        plans: m.plans,
        plans_failed: m.plans_failed,
        plan_ms_max: round(m.plan_ms_max),
        peak_rss_mib: rss_mib.map(round),
    }
}

fn report_minute(
    progress: &mut (dyn FnMut(&str) + Send),
    n: usize,
    collected: &Mutex<Vec<Minute>>,
    rss_mib: Option<f64>,
) {
    // A copy: requests that left in this minute may still answer.
    let mut copy = collected.lock().unwrap_or_else(|e| e.into_inner())[n].clone();
    let r = summarize_minute(n, &mut copy, rss_mib);
    progress(&format!(
        "minute {:>3}: {:>7} requests, {} failed, {} shed, p50 {:>7.3} ms, p99 {:>7.3} ms; {} plan(s), {} failed, slowest {:.0} ms; peak RSS {}",
        r.minute,
        r.requests,
        r.failed,
        r.shed,
        r.p50_ms,
        r.p99_ms,
        r.plans,
        r.plans_failed,
        r.plan_ms_max,
        r.peak_rss_mib
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    ));
}

/// The report and its verdicts (module docs).
fn verdicts(args: &SoakArgs, capacity: f64, rate: f64, minutes: Vec<MinuteReport>) -> SoakReport {
    let rss_growth = match (
        minutes.get(1).and_then(|m| m.peak_rss_mib),
        minutes.last().and_then(|m| m.peak_rss_mib),
    ) {
        (Some(second), Some(last)) if minutes.len() > 2 && second > 0.0 => {
            Some(round(last / second))
        }
        _ => None,
    };
    let mut p99s: Vec<f64> = minutes.iter().map(|m| m.p99_ms).collect();
    p99s.sort_by(f64::total_cmp);
    let median = percentile(&p99s, 50.0);
    let p99_last_vs_median = minutes
        .last()
        .filter(|_| median > 0.0)
        .map(|m| round(m.p99_ms / median));
    SoakReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        people: args.people,
        apps: args.apps,
        capacity_per_second: round(capacity),
        rate_per_second: round(rate),
        requests: minutes.iter().map(|m| m.requests).sum(),
        failed: minutes.iter().map(|m| m.failed).sum(),
        shed: minutes.iter().map(|m| m.shed).sum(),
        plans: minutes.iter().map(|m| m.plans).sum(),
        plans_failed: minutes.iter().map(|m| m.plans_failed).sum(),
        minutes,
        rss_growth,
        p99_last_vs_median,
    }
}
