//! SCIM load generator: roster's SCIM server against two peers, PyPI's
//! `scim2-server` 0.8.3 and SCIMMY (npm `scimmy` + `scimmy-routers` on
//! Express), on loopback only, with bounded durations.
//!
//! ```text
//! cargo run --release -p roster-server --example scim_bench -- roster [--users 100000]
//!     [--db URL] [--duration 10] [--concurrency 16] [--only filter,get,patch,post]
//! cargo run --release -p roster-server --example scim_bench -- peer [--users 5000] ...
//! cargo run --release -p roster-server --example scim_bench -- scimmy [--users 5000] ...
//! ```
//!
//! `roster` seeds users directly through the store (in batches, fast) and
//! serves from a server runtime of its own in this process; `peer` starts
//! `.venv/bin/scim2-server` (install it with `scripts/python-tools.sh`) and
//! `scimmy` starts `node scripts/scimmy-peer/server.mjs` (install it with
//! `scripts/node-tools.sh`); both keep everything in memory, so they are
//! seeded over HTTP. Each request
//! type then runs for `--duration` seconds (after a 1 s warm-up) with
//! `--concurrency` workers, each keeping one request in flight:
//!
//! * `filter`: `GET /Users?filter=userName eq "<random seeded user>"`
//! * `get`:    `GET /Users/{random seeded id}`
//! * `patch`:  `PATCH /Users/{random seeded id}` setting `active`
//! * `post`:   `POST /Users` with a new user
//!
//! It prints one line per type: requests per second, p50/p99/max latency,
//! and non-2xx answers (which are counted, not hidden).

// The allocator the `roster` binary uses, so the server measured here
// allocates as the real one does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use roster_server::{NullSink, ScimConfig, ScimState, scim_router, serve, tokens};
use roster_store::{ScimKind, ScimResourceWrite, Store};
use serde_json::{Value, json};

struct Args {
    target: String,
    users: usize,
    db: Option<String>,
    duration: Duration,
    concurrency: usize,
    only: Vec<String>,
    /// roster's `ScimConfig::read_cache_bytes`, in MiB (`None`: default).
    read_cache_mib: Option<usize>,
}

const USAGE: &str = "\
usage: scim_bench roster|peer|scimmy [options]

  roster                 roster's SCIM server on SQLite, seeded through the store
  peer                   PyPI scim2-server 0.8.3 (.venv, see scripts/python-tools.sh),
                         seeded over HTTP
  scimmy                 SCIMMY (npm scimmy + scimmy-routers on Express, in memory;
                         scripts/node-tools.sh), seeded over HTTP
  --users N              users stored before the load (default: roster 100000, peers 5000)
  --db URL               roster's database (default: a SQLite file in a temp dir)
  --duration SECONDS     per request type, after a 1 s warm-up (default 10, at most 120)
  --concurrency N        workers, one request in flight each (default 16)
  --only TYPES           comma-separated subset of filter,get,patch,post
  --read-cache-mib N     roster: memory for kept renderings (default 64; 0 turns the
                         read cache off, to measure the read path without it)";

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let target = it.next().context(USAGE)?;
    if target == "--help" || target == "-h" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    if !["roster", "peer", "scimmy"].contains(&target.as_str()) {
        bail!("target must be roster, peer or scimmy, not {target}\n\n{USAGE}");
    }
    let mut a = Args {
        users: if target == "roster" { 100_000 } else { 5_000 },
        target,
        db: None,
        duration: Duration::from_secs(10),
        concurrency: 16,
        only: vec!["filter".into(), "get".into(), "patch".into(), "post".into()],
        read_cache_mib: None,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => a.users = val()?.parse()?,
            "--db" => a.db = Some(val()?),
            "--duration" => a.duration = Duration::from_secs_f64(val()?.parse()?),
            "--concurrency" => a.concurrency = val()?.parse()?,
            "--only" => a.only = val()?.split(',').map(str::to_string).collect(),
            "--read-cache-mib" => a.read_cache_mib = Some(val()?.parse()?),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    if a.duration > Duration::from_secs(120) {
        bail!("--duration is capped at 120 s");
    }
    Ok(a)
}

fn user_name(i: usize) -> String {
    format!("user{i:07}@example.com")
}

fn user_json(user_name: &str, i: usize) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "userName": user_name,
        "externalId": format!("ext-{i}"),
        "name": {"givenName": format!("Given{i}"), "familyName": "Seeded"},
        "displayName": format!("Given{i} Seeded"),
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": format!("{i}"), "department": "Engineering"
        }
    })
}

/// What the load needs to know about a running server.
struct Target {
    /// Base URL of the Users endpoint's parent, e.g. `http://127.0.0.1:P/v2`.
    base: String,
    token: String,
    /// Seeded (id, userName) pairs.
    seeded: Vec<(String, String)>,
}

/// Starts roster's server on its own runtime (2 workers) and seeds it.
fn start_roster(
    args: &Args,
) -> anyhow::Result<(Target, std::thread::JoinHandle<()>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let db = match &args.db {
        Some(d) => d.clone(),
        None => dir.path().join("bench.db").display().to_string(),
    };
    let users = args.users;
    let read_cache_mib = args.read_cache_mib;
    let (tx, rx) = std::sync::mpsc::channel::<anyhow::Result<(String, String)>>();
    let handle = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
        };
        rt.block_on(async move {
            let setup = async {
                let store = Store::open(&db).await?;
                let conn = "bench";
                let t = Instant::now();
                let mut i = 0;
                while i < users {
                    let n = (users - i).min(5_000);
                    let batch: Vec<ScimResourceWrite> = (i..i + n)
                        .map(|k| {
                            let un = user_name(k);
                            ScimResourceWrite {
                                id: format!("seed-{k:07}"),
                                user_name: Some(un.clone()),
                                display_name: Some(format!("Given{k} Seeded")),
                                external_id: Some(format!("ext-{k}")),
                                active: Some(true),
                                emails: vec![un.clone()],
                                members: None,
                                data: user_json(&un, k),
                                // Seeds carry no intent; planning would
                                // backfill it.
                                intent: None,
                            }
                        })
                        .collect();
                    store.scim_import(conn, ScimKind::User, batch, 0).await?;
                    i += n;
                }
                eprintln!(
                    "roster: seeded {users} users through the store in {:.1} s",
                    t.elapsed().as_secs_f64()
                );
                let token = tokens::create_token(&store, conn, "bench", 0).await?.token;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let mut config = ScimConfig::default();
                if let Some(mib) = read_cache_mib {
                    config.read_cache_bytes = mib * 1024 * 1024;
                }
                let state = ScimState::with_config(store, Arc::new(NullSink), config);
                Ok::<_, anyhow::Error>((
                    listener,
                    state,
                    format!("http://{addr}/scim/v2/{conn}"),
                    token,
                ))
            };
            match setup.await {
                Ok((listener, state, base, token)) => {
                    let _ = tx.send(Ok((base, token)));
                    // Runs until the process exits.
                    let _ = serve(listener, scim_router(state), std::future::pending()).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    let (base, token) = rx.recv()??;
    let seeded = (0..args.users)
        .map(|k| (format!("seed-{k:07}"), user_name(k)))
        .collect();
    Ok((
        Target {
            base,
            token,
            seeded,
        },
        handle,
        dir,
    ))
}

/// Starts a peer (`peer`: scim2-server; `scimmy`: SCIMMY on Node), both
/// listening on 127.0.0.1 only, and seeds it over HTTP.
async fn start_peer(
    args: &Args,
    client: &reqwest::Client,
) -> anyhow::Result<(Target, tokio::process::Child)> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let token = "bench-peer-token".to_string();
    let port_s = port.to_string();
    let mut cmd = if args.target == "scimmy" {
        let dir = root.join("scripts/scimmy-peer");
        if !dir.join("node_modules/scimmy-routers").exists() {
            bail!(
                "{} has no node_modules: run scripts/node-tools.sh",
                dir.display()
            );
        }
        let mut c = tokio::process::Command::new("node");
        // Bounded: at most the seeded users and what the POST phase adds.
        let max = (args.users + 2_000_000).to_string();
        c.current_dir(&dir).args([
            "server.mjs",
            "--port",
            &port_s,
            "--token",
            &token,
            "--max-users",
            &max,
        ]);
        c
    } else {
        let exe = root.join(".venv/bin/scim2-server");
        if !exe.exists() {
            bail!("{} is missing: run scripts/python-tools.sh", exe.display());
        }
        let mut c = tokio::process::Command::new(exe);
        c.args(["--port", &port_s, "--bearer-token", &token]);
        c
    };
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}/v2");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = client
            .get(format!("{base}/ServiceProviderConfig"))
            .bearer_auth(&token)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() > deadline {
            bail!("the {} peer did not answer within 30 s", args.target);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Seed over HTTP with the same concurrency, bounded by a time budget.
    let t = Instant::now();
    let budget = Duration::from_secs(900);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, base, token, next) =
            (client.clone(), base.clone(), token.clone(), next.clone());
        let users = args.users;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= users || t.elapsed() > budget {
                    break;
                }
                let un = user_name(k);
                let r = client
                    .post(format!("{base}/Users"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/scim+json")
                    .body(user_json(&un, k).to_string())
                    .send()
                    .await;
                if let Ok(r) = r
                    && r.status().is_success()
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(id) = v["id"].as_str()
                {
                    out.push((id.to_string(), un));
                }
            }
            out
        }));
    }
    let mut seeded = Vec::new();
    for t in tasks {
        seeded.extend(t.await?);
    }
    eprintln!(
        "{}: seeded {} of {} users over HTTP in {:.1} s",
        args.target,
        seeded.len(),
        args.users,
        t.elapsed().as_secs_f64()
    );
    if seeded.is_empty() {
        bail!("seeding the peer failed");
    }
    Ok((
        Target {
            base,
            token,
            seeded,
        },
        child,
    ))
}

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
}

async fn one(client: &reqwest::Client, t: &Target, kind: &str, worker: usize, n: usize) -> bool {
    // The thread-local RNG is not Send: use it only before the await.
    let req = {
        let mut rng = rand::rng();
        let (id, un) = &t.seeded[rng.random_range(0..t.seeded.len())];
        match kind {
        "filter" => client.get(format!("{}/Users", t.base)).query(&[(
            "filter",
            format!("userName eq \"{un}\""),
        )]),
        "get" => client.get(format!("{}/Users/{id}", t.base)),
        "patch" => client
            .patch(format!("{}/Users/{id}", t.base))
            .header("Content-Type", "application/scim+json")
            .body(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "path": "active", "value": rng.random_bool(0.5)}]})
                .to_string(),
            ),
        _ => {
            let un = format!("bench-{worker}-{n}-{}@example.com", rng.random::<u32>());
            client
                .post(format!("{}/Users", t.base))
                .header("Content-Type", "application/scim+json")
                .body(user_json(&un, n).to_string())
        }
    }
    };
    match req.bearer_auth(&t.token).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            // Read the body: a response is only done when it has arrived.
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

async fn run_phase(
    client: &reqwest::Client,
    t: Arc<Target>,
    kind: &'static str,
    concurrency: usize,
    duration: Duration,
) -> (Outcome, Duration) {
    // Warm-up: connections open, caches filled; not measured.
    let warm_until = Instant::now() + Duration::from_secs(1);
    let mut ws = Vec::new();
    for w in 0..concurrency {
        let (client, t) = (client.clone(), t.clone());
        ws.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < warm_until {
                one(&client, &t, kind, w + 1000, n).await;
                n += 1;
            }
        }));
    }
    for w in ws {
        let _ = w.await;
    }
    let start = Instant::now();
    let until = start + duration;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, t) = (client.clone(), t.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Outcome {
                latencies_us: Vec::new(),
                errors: 0,
            };
            let mut n = 0;
            while Instant::now() < until {
                let t0 = Instant::now();
                let ok = one(&client, &t, kind, w, n).await;
                out.latencies_us
                    .push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                if !ok {
                    out.errors += 1;
                }
                n += 1;
            }
            out
        }));
    }
    let mut all = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
    };
    for w in workers {
        if let Ok(o) = w.await {
            all.latencies_us.extend(o.latencies_us);
            all.errors += o.errors;
        }
    }
    (all, start.elapsed())
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut _keep = None;
    let mut _child = None;
    let target = if args.target == "roster" {
        let (t, h, d) = start_roster(&args)?;
        _keep = Some((h, d));
        t
    } else {
        let (t, c) = start_peer(&args, &client).await?;
        _child = Some(c);
        t
    };
    let target = Arc::new(target);
    println!(
        "target={} users={} concurrency={} duration={:.0}s",
        args.target,
        target.seeded.len(),
        args.concurrency,
        args.duration.as_secs_f64()
    );
    for kind in ["filter", "get", "patch", "post"] {
        if !args.only.iter().any(|o| o == kind) {
            continue;
        }
        let (mut o, took) = run_phase(
            &client,
            target.clone(),
            kind,
            args.concurrency,
            args.duration,
        )
        .await;
        o.latencies_us.sort_unstable();
        let n = o.latencies_us.len();
        println!(
            "{:<8} {:<7} {:>8} req {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  non-2xx {}",
            args.target,
            kind,
            n,
            n as f64 / took.as_secs_f64(),
            pct(&o.latencies_us, 0.50),
            pct(&o.latencies_us, 0.99),
            pct(&o.latencies_us, 1.0),
            o.errors
        );
    }
    // `exit` skips destructors, so stop the peer explicitly; the roster
    // server thread simply ends with the process.
    if let Some(mut c) = _child.take() {
        let _ = c.kill().await;
    }
    std::process::exit(0)
}
