//! A small standalone SCIM server for conformance runs and benchmarks.
//!
//! ```text
//! cargo run -p roster-server --example scim_server -- \
//!     [--db URL] [--connection NAME] [--port N] [--seed-users N]
//! ```
//!
//! Opens the store (default: a SQLite file in a fresh temp directory),
//! creates a bearer token for the connection (default `conformance`),
//! optionally seeds N users directly through the store, listens on
//! 127.0.0.1 (port 0 = any free port) and prints two lines on stdout:
//! `LISTEN http://127.0.0.1:PORT/scim/v2/CONNECTION` and `TOKEN rst_...`.
//! It stops on Ctrl-C / SIGTERM or when stdin closes.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use roster_server::{NullSink, ScimConfig, ScimState, scim_router, serve, tokens};
use roster_store::{ScimKind, ScimResourceWrite, Store};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

struct Args {
    db: Option<String>,
    connection: String,
    port: u16,
    seed_users: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        db: None,
        connection: "conformance".into(),
        port: 0,
        seed_users: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--db" => args.db = Some(val()?),
            "--connection" => args.connection = val()?,
            "--port" => args.port = val()?.parse()?,
            "--seed-users" => args.seed_users = val()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// A realistic user for seeding, numbered.
pub fn seed_user(i: usize) -> ScimResourceWrite {
    let user_name = format!("user{i:07}@example.com");
    let data = json!({
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
    });
    ScimResourceWrite {
        id: format!("seed-{i:07}"),
        user_name: Some(user_name.clone()),
        display_name: Some(format!("Given{i} Seeded")),
        external_id: Some(format!("ext-{i}")),
        active: Some(true),
        emails: vec![user_name],
        members: None,
        data,
        // Seeds carry no intent; planning would backfill it.
        intent: None,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let db = match &args.db {
        Some(d) => d.clone(),
        None => tmp.path().join("roster.db").display().to_string(),
    };
    let store = Store::open(&db).await?;
    let created = tokens::create_token(&store, &args.connection, "example", 0).await?;
    if args.seed_users > 0 {
        let t = Instant::now();
        let mut i = 0;
        while i < args.seed_users {
            let n = (args.seed_users - i).min(5_000);
            let batch: Vec<ScimResourceWrite> = (i..i + n).map(seed_user).collect();
            store
                .scim_import(&args.connection, ScimKind::User, batch, 0)
                .await?;
            i += n;
        }
        eprintln!(
            "seeded {} users in {:.1} s",
            args.seed_users,
            t.elapsed().as_secs_f64()
        );
    }
    let state = ScimState::with_config(store.clone(), Arc::new(NullSink), ScimConfig::default());
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    println!("LISTEN http://{addr}/scim/v2/{}", args.connection);
    println!("TOKEN {}", created.token);
    let shutdown = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        let stdin_closed = async move {
            // Returns when stdin reaches EOF (the parent went away).
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            // Without a pipe (a terminal or /dev/null) EOF comes at once;
            // then only signals stop the server.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_closed => {}
            _ = sigterm() => {}
        }
    };
    serve(listener, scim_router(state), shutdown).await?;
    store.close().await;
    drop(tmp);
    // The stdin watcher runs on a blocking thread that the runtime would
    // wait for at shutdown (a read on an open pipe never returns): exit now.
    std::process::exit(0)
}

#[cfg(unix)]
async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn sigterm() {
    std::future::pending().await
}
