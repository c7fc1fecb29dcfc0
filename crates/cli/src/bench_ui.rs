//! `roster bench ui`: page latency of the web UI over a large store.
//!
//! 1. **Seed** a fresh store (a temporary SQLite file unless `--database`
//!    names an empty one) as `roster bench api` does: `--people` people of
//!    the synthetic company and one account per person in each of
//!    `--apps` apps (100,000 × 20 is 2,000,000 accounts).
//! 2. **Serve** the router `roster serve` serves (`crate::serve::http_router`)
//!    on 127.0.0.1:0 in this process, and sign a `viewer` in through
//!    `Roster::sign_in_local` (its session cookie goes on every request).
//! 3. **Load**: for each page, `--concurrency` clients send requests
//!    after a short unmeasured warm-up, and the whole HTML is read:
//!    * `dashboard`: `GET /ui/` (leavers by age, orphans, connections,
//!      plans and tasks waiting: every report the dashboard shows);
//!    * `search`: `GET /ui/people?q=…` (the `roster bench api` query mix);
//!    * `person`: `GET /ui/people/{id}` (every account of one person).
//!
//! The target is p95 ≤ 100 ms for each. Prints one JSON report on
//! standard output: per page the count, non-2xx answers, p50/p95/p99/max
//! in ms and throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_core::principal::PrincipalKind;
use roster_core::{Person, Principal, Role};
use roster_engine::{Engine, NewWebUser, Roster, SessionLimits};
use serde::Serialize;

use crate::bench_api::{
    Loopback, drive, fresh_store, percentile, round, search_query, seed_people_and_accounts,
};

/// The target the issue sets for every page.
const TARGET_P95_MS: f64 = 100.0;

#[derive(Args)]
pub struct UiArgs {
    /// People stored.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Apps (connections); every person has an account in each.
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// Requests for the search and person pages (after a warm-up of a
    /// tenth of them, at most 100).
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Requests for the dashboard (its reports read every account).
    #[arg(long, default_value_t = 200)]
    dashboard_requests: usize,
    /// Concurrent clients, one request in flight each.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// An EMPTY database to use; default: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Seed of the synthetic company and of the request mix.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Latency of one page.
#[derive(Clone, Debug, Serialize)]
pub struct PageReport {
    pub name: String,
    pub request: String,
    pub requests: usize,
    pub non_2xx: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub per_second: f64,
    pub target_p95_ms: f64,
    pub meets_target: bool,
}

#[derive(Debug, Serialize)]
pub struct UiReport {
    pub build: &'static str,
    pub people: usize,
    pub apps: usize,
    pub accounts: usize,
    pub seed_ms: f64,
    pub concurrency: usize,
    pub pages: Vec<PageReport>,
}

pub async fn run(args: UiArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; benchmark figures need `cargo build --release`");
    }
    let report = measure(&args, &mut |line| eprintln!("{line}")).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

type Page = Arc<dyn Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync>;

async fn page_phase(
    (concurrency, requests): (usize, usize),
    progress: &mut (dyn FnMut(&str) + Send),
    name: &str,
    label: &str,
    make: Page,
) -> PageReport {
    let call = Arc::new(move |w: usize, i: usize| {
        let rb = make(w, i);
        async move {
            match rb.send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    });
    let warmup = (requests / 10).clamp(1, 100);
    let c1 = call.clone();
    drive(concurrency, warmup, move |w, i| c1(w, i + 1_000_000_000)).await;
    let (mut times, failed, wall) = drive(concurrency, requests, move |w, i| call(w, i)).await;
    times.sort_by(f64::total_cmp);
    let p95 = percentile(&times, 95.0);
    let r = PageReport {
        name: name.to_string(),
        request: label.to_string(),
        requests: times.len(),
        non_2xx: failed,
        p50_ms: round(percentile(&times, 50.0)),
        p95_ms: round(p95),
        p99_ms: round(percentile(&times, 99.0)),
        max_ms: round(times.last().copied().unwrap_or(0.0)),
        per_second: round(times.len() as f64 / wall.as_secs_f64().max(1e-9)),
        target_p95_ms: TARGET_P95_MS,
        meets_target: p95 <= TARGET_P95_MS && failed == 0,
    };
    progress(&format!(
        "{name:<10} p50 {:>8.3} ms  p95 {:>8.3} ms  p99 {:>8.3} ms  {:>7.0} req/s  non-2xx {}",
        r.p50_ms, r.p95_ms, r.p99_ms, r.per_second, r.non_2xx
    ));
    r
}

/// The benchmark (module docs). `progress` gets one line per phase.
pub async fn measure(args: &UiArgs, progress: &mut (dyn FnMut(&str) + Send)) -> Result<UiReport> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.requests >= 1 && args.dashboard_requests >= 1,
        "--requests and --dashboard-requests must be at least 1"
    );
    let (store, _tmp) = fresh_store(args.database.as_deref(), "bench-ui.db").await?;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;

    let t = Instant::now();
    let (synthetic, policy, accounts) =
        seed_people_and_accounts(&store, args.people, args.apps, args.seed, now_ms).await?;
    let seed_ms = t.elapsed().as_secs_f64() * 1000.0;
    progress(&format!(
        "seeded {} people and {accounts} accounts in {} apps: {:.1} s",
        synthetic.people.len(),
        args.apps,
        seed_ms / 1000.0
    ));
    let people: Arc<Vec<Person>> = Arc::new(synthetic.people.clone());
    drop(synthetic);

    let roster = Arc::new(Roster::new(Engine::new(store.clone(), policy)));
    let admin = Principal::new(PrincipalKind::User, "bench");
    let password = "bench-ui-password-not-secret";
    roster
        .add_web_user(
            &admin,
            &NewWebUser {
                name: "bench".into(),
                role: Role::Viewer,
                email: None,
                password: Some(password.into()),
            },
        )
        .await?;
    let limits = SessionLimits {
        idle: Duration::from_secs(24 * 3600),
        ..SessionLimits::default()
    };
    let (session, _) = roster.sign_in_local("bench", password, &limits).await?;
    let cookie = format!("roster_session={session}");
    let http = Loopback::serve(
        &store,
        roster.clone(),
        roster_web::WebOptions {
            limits,
            ..Default::default()
        },
    )
    .await?;
    let origin = http.origin.clone();
    let clients: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..args.concurrency)
            .map(|_| {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(1)
                    .build()
            })
            .collect::<Result<_, _>>()?,
    );
    let n = people.len();
    let seed = args.seed;
    let pick = move |i: usize| -> (usize, u32) {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (rng.random_range(0..n), rng.random_range(0..u32::MAX))
    };
    // The session works before anything is timed.
    let probe = clients[0]
        .get(format!("{origin}/ui/people"))
        .header("cookie", &cookie)
        .send()
        .await?;
    anyhow::ensure!(
        probe.status().is_success(),
        "the UI answered {} to a signed-in request",
        probe.status()
    );

    let mut pages = Vec::new();
    {
        let (clients, origin, cookie) = (clients.clone(), origin.clone(), cookie.clone());
        pages.push(
            page_phase(
                (args.concurrency, args.dashboard_requests),
                progress,
                "dashboard",
                "GET /ui/",
                Arc::new(move |w: usize, _i: usize| {
                    clients[w]
                        .get(format!("{origin}/ui/"))
                        .header("cookie", &cookie)
                }),
            )
            .await,
        );
    }
    {
        let (clients, origin, cookie, people) = (
            clients.clone(),
            origin.clone(),
            cookie.clone(),
            people.clone(),
        );
        pages.push(
            page_phase(
                (args.concurrency, args.requests),
                progress,
                "search",
                "GET /ui/people?q=…",
                Arc::new(move |w: usize, i: usize| {
                    let (p, roll) = pick(i);
                    clients[w]
                        .get(format!("{origin}/ui/people"))
                        .query(&[("q", search_query(&people[p], roll))])
                        .header("cookie", &cookie)
                }),
            )
            .await,
        );
    }
    {
        let (clients, origin, cookie, people) = (
            clients.clone(),
            origin.clone(),
            cookie.clone(),
            people.clone(),
        );
        pages.push(
            page_phase(
                (args.concurrency, args.requests),
                progress,
                "person",
                "GET /ui/people/{id}",
                Arc::new(move |w: usize, i: usize| {
                    let (p, _) = pick(i);
                    clients[w]
                        .get(format!("{origin}/ui/people/{}", people[p].employee_id))
                        .header("cookie", &cookie)
                }),
            )
            .await,
        );
    }
    http.stop().await;
    Ok(UiReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        people: people.len(),
        apps: args.apps,
        accounts,
        seed_ms: round(seed_ms),
        concurrency: args.concurrency,
        pages,
    })
}
