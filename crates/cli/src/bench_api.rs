//! `roster bench api`: read latency of the HTTP surface over a large
//! store, beside the SCIM server's in the same run.
//!
//! 1. **Seed** a fresh SQLite store (a temporary file unless `--database`
//!    names an empty one) with `--people` people (the reconciliation
//!    benchmark's synthetic company, `roster_engine::bench::Synthetic`)
//!    and one account per person in each of `--apps` apps (100,000 × 20
//!    is 2,000,000 accounts), in one bulk replace per app; and as many
//!    users in a SCIM connection of the gateway (`scim_import`, in
//!    batches). The time it takes is reported.
//! 2. **Serve** the router `roster serve` serves (`crate::serve::http_router`)
//!    with its server layers (`roster_server::serve_with`) on 127.0.0.1:0,
//!    in this process.
//! 3. **Load**: for each endpoint, `--concurrency` clients (one reqwest
//!    client each, one request in flight each) send `--requests` requests
//!    in all, after a short unmeasured warm-up:
//!    * `person`: `GET /api/v1/people/{id}` (one person with every account;
//!      `Roster::person_access_without_plan`: the next plan is opt-in with
//!      `?next_plan=true`), target p99 ≤ 5 ms;
//!    * `search`: `GET /api/v1/people?q=…` (`Roster::search_people`), a
//!      mix of whole addresses, address prefixes, employee IDs and last
//!      names, target p99 ≤ 20 ms;
//!    * `scim_get`: `GET /scim/v2/{c}/Users/{id}`, and `scim_filter`:
//!      `GET /scim/v2/{c}/Users?filter=userName eq "…"`: the peer figures;
//!    * `person_direct` and `search_direct`: the same two calls on
//!      [`Roster`] without HTTP, so the HTTP overhead shows.
//!
//!    Routes the build does not serve (`/api/v1` before the REST API is
//!    merged) are reported as missing rather than timed.
//!
//! Prints one JSON report on standard output: per endpoint the count,
//! non-2xx answers, p50/p99/max in ms and throughput, the p99 as a ratio
//! of the SCIM get's p99, and the target where the issue sets one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_core::principal::PrincipalKind;
use roster_core::{Account, AccountKey, Observed, Person, Principal, Scope};
use roster_engine::bench::Synthetic;
use roster_engine::{Engine, NewApiToken, PersonRef, Roster};
use roster_server::{HookState, NullSink, ScimState, tokens};
use roster_store::{ScimKind, ScimResourceWrite, Store};
use serde::Serialize;
use serde_json::json;

/// The SCIM connection the peer figures are measured on.
pub(crate) const SCIM_CONNECTION: &str = "bench-gateway";
/// Users per SCIM import transaction.
const SCIM_BATCH: usize = 5_000;
/// Results per search request.
const SEARCH_LIMIT: usize = 20;

#[derive(Args)]
pub struct ApiArgs {
    /// People stored.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Apps (connections); every person has an account in each.
    #[arg(long, default_value_t = 20)]
    apps: usize,
    /// Requests per endpoint (after a warm-up of a tenth of them, at most 500).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent clients, one request in flight each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// An EMPTY database to use; default: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Seed of the synthetic company and of the request mix.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Latency of one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointReport {
    pub name: String,
    pub request: String,
    pub requests: usize,
    pub non_2xx: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub per_second: f64,
    /// p99 over the SCIM get's p99, measured in the same run.
    pub p99_vs_scim_get: Option<f64>,
    pub target_p99_ms: Option<f64>,
    pub meets_target: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub build: &'static str,
    pub people: usize,
    pub apps: usize,
    pub accounts: usize,
    pub scim_users: usize,
    pub seed_ms: f64,
    pub concurrency: usize,
    pub requests_per_endpoint: usize,
    pub endpoints: Vec<EndpointReport>,
    /// Endpoints this build does not serve (404 without a body of ours).
    pub missing: Vec<String>,
}

pub async fn run(args: ApiArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; benchmark figures need `cargo build --release`");
    }
    let report = measure(&args, &mut |line| eprintln!("{line}")).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// One account per person in app `k`: keyed by address in even apps, by
/// an app-side id in odd ones; every third carries the employee ID.
pub(crate) fn accounts_of(
    people: &[Person],
    connection: &roster_core::ConnectionId,
    k: usize,
) -> Vec<Account> {
    people
        .iter()
        .enumerate()
        .map(|(i, p)| Account {
            connection: connection.clone(),
            key: AccountKey::new(if k.is_multiple_of(2) {
                p.email.normalized()
            } else {
                format!("u{k:02}-{i:07}")
            }),
            email: Some(p.email.clone()),
            employee_id: k.is_multiple_of(3).then(|| p.employee_id.clone()),
            active: true,
            attributes: [
                ("role".to_string(), "user".to_string()),
                ("department".to_string(), p.department.clone()),
            ]
            .into_iter()
            .collect(),
        })
        .collect()
}

fn scim_user(user_name: &str, i: usize) -> ScimResourceWrite {
    ScimResourceWrite {
        id: format!("u-{i:07}"),
        user_name: Some(user_name.to_string()),
        display_name: Some(format!("Given{i} Seeded")),
        external_id: Some(format!("ext-{i}")),
        active: Some(true),
        emails: vec![user_name.to_string()],
        members: None,
        data: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "externalId": format!("ext-{i}"),
            "name": {"givenName": format!("Given{i}"), "familyName": "Seeded"},
            "displayName": format!("Given{i} Seeded"),
            "emails": [{"value": user_name, "type": "work", "primary": true}],
            "active": true
        }),
        intent: None,
    }
}

/// What a search is asked for: the mix a person typing in a search box
/// produces, drawn for person `p`.
pub(crate) fn search_query(p: &Person, roll: u32) -> String {
    match roll % 4 {
        // A whole address (one hit).
        0 => p.email.normalized(),
        // The start of an address (first.last: a handful of hits).
        1 => p
            .email
            .local_part()
            .rsplit_once('.')
            .map(|(head, _)| head.to_string())
            .unwrap_or_else(|| p.email.local_part().to_string()),
        // An employee ID (one hit).
        2 => p.employee_id.as_str().to_string(),
        // A last name (many hits: the first page).
        _ => p.last_name.clone(),
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarize(
    name: &str,
    request: &str,
    mut times_ms: Vec<f64>,
    non_2xx: usize,
    wall: Duration,
    target: Option<f64>,
) -> EndpointReport {
    times_ms.sort_by(f64::total_cmp);
    let p99 = percentile(&times_ms, 99.0);
    EndpointReport {
        name: name.to_string(),
        request: request.to_string(),
        requests: times_ms.len(),
        non_2xx,
        p50_ms: round(percentile(&times_ms, 50.0)),
        p99_ms: round(p99),
        max_ms: round(times_ms.last().copied().unwrap_or(0.0)),
        per_second: round(times_ms.len() as f64 / wall.as_secs_f64().max(1e-9)),
        p99_vs_scim_get: None,
        target_p99_ms: target,
        meets_target: target.map(|t| p99 <= t && non_2xx == 0),
    }
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Runs `requests` calls of `call(worker, index)` from `concurrency`
/// workers, each with one call in flight; returns each call's time (ms),
/// how many failed, and the wall time.
pub(crate) async fn drive<F, Fut>(
    concurrency: usize,
    requests: usize,
    call: F,
) -> (Vec<f64>, usize, Duration)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failed = 0;
            let mut i = w;
            while i < requests {
                let t = Instant::now();
                if !call(w, i).await {
                    failed += 1;
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                i += concurrency;
            }
            (times, failed)
        }));
    }
    let mut times = Vec::with_capacity(requests);
    let mut failed = 0;
    for w in workers {
        if let Ok((t, f)) = w.await {
            times.extend(t);
            failed += f;
        }
    }
    (times, failed, started.elapsed())
}

type Http = Arc<dyn Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// One endpoint over HTTP: a warm-up, then the measured requests.
/// `load` is (concurrency, warm-up requests, measured requests).
async fn http_phase(
    load: (usize, usize, usize),
    progress: &mut (dyn FnMut(&str) + Send),
    name: &str,
    label: &str,
    target: Option<f64>,
    make: Http,
) -> EndpointReport {
    let (concurrency, warmup, requests) = load;
    let call = Arc::new(move |w: usize, i: usize| {
        let rb = make(w, i);
        async move {
            match rb.send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    ok && r.bytes().await.is_ok()
                }
                Err(_) => false,
            }
        }
    });
    let c1 = call.clone();
    drive(concurrency, warmup, move |w, i| c1(w, i + 1_000_000_000)).await;
    let (times, failed, wall) = drive(concurrency, requests, move |w, i| call(w, i)).await;
    let r = summarize(name, label, times, failed, wall, target);
    progress(&format!(
        "{name:<14} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  {:>8.0} req/s  non-2xx {}",
        r.p50_ms, r.p99_ms, r.max_ms, r.per_second, r.non_2xx
    ));
    r
}

/// The benchmark (module docs). `progress` gets one line per phase.
/// The benchmark's store: `database` if given (it must be empty), else a
/// SQLite file named `file` in a temporary directory kept as long as the
/// returned guard.
pub(crate) async fn fresh_store(
    database: Option<&str>,
    file: &str,
) -> Result<(Store, Option<tempfile::TempDir>)> {
    let (url, tmp) = match database {
        Some(url) => (url.to_string(), None),
        None => {
            let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
            let path = dir.path().join(file);
            (path.display().to_string(), Some(dir))
        }
    };
    let store = Store::open(&url).await?;
    anyhow::ensure!(
        store.people_count().await? == 0 && store.observations().await?.is_empty(),
        "{} is not empty; the benchmark needs a fresh database",
        store.describe()
    );
    Ok((store, tmp))
}

/// Seeds `store` with the synthetic company (`people` × `apps`, from
/// `seed`): its people and every app's accounts, read a minute before
/// `now_ms`. Returns the company, its policy and how many accounts.
pub(crate) async fn seed_people_and_accounts(
    store: &Store,
    people: usize,
    apps: usize,
    seed: u64,
    now_ms: i64,
) -> Result<(Synthetic, roster_core::Policy, usize)> {
    let today = time::OffsetDateTime::now_utc().date();
    let synthetic = Synthetic::new(people, apps, seed, today)?;
    let policy = synthetic.policy()?;
    store.replace_people(&synthetic.people).await?;
    let mut accounts = 0;
    for (k, c) in synthetic.connections.iter().enumerate() {
        let list = accounts_of(&synthetic.people, c, k);
        accounts += list.len();
        store
            .replace_accounts(&Observed::complete(c.clone(), list), now_ms - 60_000)
            .await?;
    }
    Ok((synthetic, policy, accounts))
}

/// The SCIM users of the peer connection ([`SCIM_CONNECTION`]): one per
/// person, `userName` their address, id `u-NNNNNNN` by position, in
/// batches of [`SCIM_BATCH`].
pub(crate) async fn seed_scim_users(store: &Store, people: &[Person], now_ms: i64) -> Result<()> {
    for (b, chunk) in people.chunks(SCIM_BATCH).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(j, p)| scim_user(&p.email.normalized(), b * SCIM_BATCH + j))
            .collect();
        store
            .scim_import(SCIM_CONNECTION, ScimKind::User, batch, now_ms)
            .await
            .map_err(|e| anyhow::anyhow!("seeding SCIM users: {e}"))?;
    }
    Ok(())
}

/// The router `roster serve` serves (`crate::serve::http_router`, with
/// its server layers) on 127.0.0.1:0 in this process, until stopped.
pub(crate) struct Loopback {
    pub origin: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Loopback {
    pub(crate) async fn serve(
        store: &Store,
        roster: Arc<Roster>,
        web: roster_web::WebOptions,
    ) -> Result<Loopback> {
        let scim = ScimState::new(store.clone(), Arc::new(NullSink));
        let options = crate::serve::http_options(&scim);
        let (events, _events_handle, _events_rx) = roster_engine::inbound::EngineSink::channel();
        let hooks = HookState::new(Default::default(), events);
        let router = crate::serve::http_router(scim, hooks, roster, web);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(roster_server::serve_with(
            listener,
            router,
            async move {
                let _ = stop_rx.await;
            },
            options,
        ));
        Ok(Loopback {
            origin,
            stop,
            server,
        })
    }

    /// Stops serving and waits for the server to finish.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Where the benchmark's server listens, with a read-scoped API token and
/// a token for the SCIM peer connection.
#[derive(Clone)]
pub(crate) struct BenchServer {
    pub origin: String,
    pub api_token: String,
    pub scim_token: String,
}

impl BenchServer {
    /// Creates the tokens and serves on loopback ([`Loopback`]).
    pub(crate) async fn start(
        store: &Store,
        roster: Arc<Roster>,
        now_ms: i64,
    ) -> Result<(BenchServer, Loopback)> {
        let admin = Principal::new(PrincipalKind::User, "bench");
        let api_token = roster
            .create_api_token(
                &admin,
                &NewApiToken {
                    name: "bench".into(),
                    agent: false,
                    scopes: [Scope::Read].into_iter().collect(),
                    ttl: None,
                },
            )
            .await?
            .secret;
        let scim_token = tokens::create_token(store, SCIM_CONNECTION, "bench", now_ms)
            .await?
            .token;
        let http = Loopback::serve(store, roster, roster_web::WebOptions::default()).await?;
        let served = BenchServer {
            origin: http.origin.clone(),
            api_token,
            scim_token,
        };
        Ok((served, http))
    }
}

pub async fn measure(args: &ApiArgs, progress: &mut (dyn FnMut(&str) + Send)) -> Result<ApiReport> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.requests >= 1, "--requests must be at least 1");
    let (store, _tmp) = fresh_store(args.database.as_deref(), "bench-api.db").await?;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;

    // Seed.
    let t = Instant::now();
    let (synthetic, policy, accounts) =
        seed_people_and_accounts(&store, args.people, args.apps, args.seed, now_ms).await?;
    let seeded_accounts = t.elapsed();
    seed_scim_users(&store, &synthetic.people, now_ms).await?;
    let seed_ms = t.elapsed().as_secs_f64() * 1000.0;
    progress(&format!(
        "seeded {} people, {accounts} accounts in {} apps ({:.1} s) and {} SCIM users: {:.1} s in all",
        synthetic.people.len(),
        args.apps,
        seeded_accounts.as_secs_f64(),
        synthetic.people.len(),
        seed_ms / 1000.0
    ));
    let people: Arc<Vec<Person>> = Arc::new(synthetic.people.clone());
    drop(synthetic);

    // Serve what `roster serve` serves.
    let roster = Arc::new(Roster::new(Engine::new(store.clone(), policy)));
    let (
        BenchServer {
            origin,
            api_token,
            scim_token,
        },
        http,
    ) = BenchServer::start(&store, roster.clone(), now_ms).await?;

    let clients: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..args.concurrency)
            .map(|_| {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
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

    // Is the REST API served? (404 with our error body when it is and the
    // person is unknown; a bare 404 when the route does not exist.)
    let probe = clients[0]
        .get(format!("{origin}/api/v1/people/{}", people[0].employee_id))
        .bearer_auth(&api_token)
        .send()
        .await?;
    let rest_served = probe.status() != reqwest::StatusCode::NOT_FOUND
        && probe.status() != reqwest::StatusCode::METHOD_NOT_ALLOWED;
    let mut missing = Vec::new();

    let warmup = (args.requests / 10).min(500);
    let mut endpoints = Vec::new();

    // The SCIM peer first.
    {
        let (clients, origin, token) = (clients.clone(), origin.clone(), scim_token.clone());
        endpoints.push(
            http_phase(
                (args.concurrency, warmup, args.requests),
                progress,
                "scim_get",
                "GET /scim/v2/{connection}/Users/{id}",
                None,
                Arc::new(move |w: usize, i: usize| {
                    let (p, _) = pick(i);
                    clients[w]
                        .get(format!("{origin}/scim/v2/{SCIM_CONNECTION}/Users/u-{p:07}"))
                        .bearer_auth(&token)
                }),
            )
            .await,
        );
    }
    {
        let (clients, origin, token, people) = (
            clients.clone(),
            origin.clone(),
            scim_token.clone(),
            people.clone(),
        );
        endpoints.push(
            http_phase(
                (args.concurrency, warmup, args.requests),
                progress,
                "scim_filter",
                "GET /scim/v2/{connection}/Users?filter=userName eq \"…\"",
                None,
                Arc::new(move |w: usize, i: usize| {
                    let (p, _) = pick(i);
                    clients[w]
                        .get(format!("{origin}/scim/v2/{SCIM_CONNECTION}/Users"))
                        .query(&[(
                            "filter",
                            format!("userName eq \"{}\"", people[p].email.normalized()),
                        )])
                        .bearer_auth(&token)
                }),
            )
            .await,
        );
    }
    if rest_served {
        {
            let (clients, origin, token, people) = (
                clients.clone(),
                origin.clone(),
                api_token.clone(),
                people.clone(),
            );
            endpoints.push(
                http_phase(
                    (args.concurrency, warmup, args.requests),
                    progress,
                    "person",
                    "GET /api/v1/people/{id}",
                    Some(5.0),
                    Arc::new(move |w: usize, i: usize| {
                        let (p, _) = pick(i);
                        clients[w]
                            .get(format!("{origin}/api/v1/people/{}", people[p].employee_id))
                            .bearer_auth(&token)
                    }),
                )
                .await,
            );
        }
        {
            let (clients, origin, token, people) = (
                clients.clone(),
                origin.clone(),
                api_token.clone(),
                people.clone(),
            );
            endpoints.push(
                http_phase(
                    (args.concurrency, warmup, args.requests),
                    progress,
                    "search",
                    "GET /api/v1/people?q=…",
                    Some(20.0),
                    Arc::new(move |w: usize, i: usize| {
                        let (p, roll) = pick(i);
                        clients[w]
                            .get(format!("{origin}/api/v1/people"))
                            .query(&[
                                ("q", search_query(&people[p], roll)),
                                ("limit", SEARCH_LIMIT.to_string()),
                            ])
                            .bearer_auth(&token)
                    }),
                )
                .await,
            );
        }
    } else {
        missing.push("GET /api/v1/people/{id}".to_string());
        missing.push("GET /api/v1/people?q=…".to_string());
        progress("the REST API is not served by this build: /api/v1 figures are missing");
    }

    // The application layer without HTTP.
    for (name, target) in [("person_direct", Some(5.0)), ("search_direct", Some(20.0))] {
        let search = name == "search_direct";
        let (roster, people) = (roster.clone(), people.clone());
        let call = Arc::new(move |_w: usize, i: usize| {
            let (roster, people) = (roster.clone(), people.clone());
            async move {
                let (p, roll) = pick(i);
                if search {
                    roster
                        .search_people(&search_query(&people[p], roll), None, SEARCH_LIMIT)
                        .await
                        .is_ok()
                } else {
                    roster
                        .person_access_without_plan(&PersonRef::EmployeeId(
                            people[p].employee_id.clone(),
                        ))
                        .await
                        .is_ok()
                }
            }
        });
        let c1 = call.clone();
        drive(args.concurrency, warmup, move |w, i| {
            c1(w, i + 1_000_000_000)
        })
        .await;
        let (times, failed, wall) =
            drive(args.concurrency, args.requests, move |w, i| call(w, i)).await;
        let label = if search {
            "Roster::search_people (no HTTP)"
        } else {
            "Roster::person_access_without_plan (no HTTP)"
        };
        let r = summarize(name, label, times, failed, wall, target);
        progress(&format!(
            "{name:<14} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  {:>8.0} req/s  failed {}",
            r.p50_ms, r.p99_ms, r.max_ms, r.per_second, r.non_2xx
        ));
        endpoints.push(r);
    }

    http.stop().await;
    let peer = endpoints
        .iter()
        .find(|e| e.name == "scim_get")
        .map(|e| e.p99_ms);
    if let Some(peer) = peer.filter(|p| *p > 0.0) {
        for e in &mut endpoints {
            e.p99_vs_scim_get = Some(round(e.p99_ms / peer));
        }
    }
    Ok(ApiReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        people: people.len(),
        apps: args.apps,
        accounts,
        scim_users: people.len(),
        seed_ms: round(seed_ms),
        concurrency: args.concurrency,
        requests_per_endpoint: args.requests,
        endpoints,
        missing,
    })
}
