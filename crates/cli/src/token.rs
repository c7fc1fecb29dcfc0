//! `roster token create|list|revoke`: tokens for the REST API and for AI
//! agents (MCP), through `Roster`. A token is printed once and stored
//! hashed; see `roster_engine::app::tokens`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use roster_core::Scope;
use roster_engine::NewApiToken;

use crate::ops::{load_config, roster_offline};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored hashed.
    Create {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// What it may do, comma-separated: read, propose, approve, apply,
        /// offboard, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// The principal it acts as (`ci-deploy`): audited as `token:NAME`,
        /// or `agent:NAME` with --agent.
        #[arg(long = "for")]
        for_name: String,
        /// An AI agent's token (MCP): read and propose only.
        #[arg(long)]
        agent: bool,
        /// Lifetime: `90d` (the default), `12h`, at most 366 days.
        #[arg(long)]
        expires: Option<String>,
        /// Print JSON (the token included, once).
        #[arg(long)]
        json: bool,
    },
    /// List tokens: prefix, principal, scopes, dates; never a token.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its prefix (`rat_` + 8 characters).
    Revoke {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        prefix: String,
    },
}

fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|_| ms.to_string())
}

pub async fn run(cmd: TokenCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            config,
            scope,
            for_name,
            agent,
            expires,
            json,
        } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let mut scopes = BTreeSet::new();
            for s in &scope {
                match Scope::parse(s) {
                    Some(s) => {
                        scopes.insert(s);
                    }
                    None => bail!(
                        "unknown scope {s:?}: use read, propose, approve, apply, offboard or admin"
                    ),
                }
            }
            let ttl = expires
                .as_deref()
                .map(|e| {
                    roster_engine::config::parse_duration(e)
                        .with_context(|| format!("--expires {e:?}: use a duration like 90d or 12h"))
                })
                .transpose()?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let created = roster
                .create_api_token(
                    &principal,
                    &NewApiToken {
                        name: for_name,
                        agent,
                        scopes,
                        ttl,
                    },
                )
                .await?;
            if json {
                let mut v = serde_json::to_value(&created.info)?;
                v["token"] = serde_json::Value::String(created.secret);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "token {} for {} ({}), expires {}; it is shown only now",
                    created.info.prefix,
                    created.info.principal,
                    created
                        .info
                        .scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    date(created.info.expires_ms)
                );
            }
        }
        TokenCommand::List { config, json } => {
            let config = load_config(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let tokens = roster.api_tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                println!(
                    "no tokens; create one with `roster token create --scope read --for NAME`"
                );
            } else {
                for t in tokens {
                    let state = match t.revoked_ms {
                        Some(r) => format!("revoked {}", date(r)),
                        None => format!("expires {}", date(t.expires_ms)),
                    };
                    println!(
                        "{}  {:<24} {:<32} {}  last used {}",
                        t.prefix,
                        t.principal,
                        t.scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        state,
                        t.last_used_ms.map(date).unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        TokenCommand::Revoke { config, prefix } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            if roster.revoke_api_token(&principal, &prefix).await? {
                println!("revoked {prefix}");
            } else {
                bail!("no live token {prefix}; see `roster token list`");
            }
        }
    }
    Ok(())
}
