//! `roster approve|reject|matches|policy check`: the human side of a plan.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_core::{AccountKey, ConnectionId, EmployeeId, Policy};
use roster_store::{Decision, MatchResolution, PlanId};

use crate::ops::{engine_offline, load_config};

#[derive(Args)]
pub struct DecideArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// The plan (its ID, or `latest`).
    plan: String,
    /// Decide one action (its number in `roster plan --json`) instead of
    /// every action that needs approval.
    #[arg(long)]
    action: Option<usize>,
    /// Who decides (recorded in the audit log). Defaults to $USER.
    #[arg(long, env = "USER", default_value = "unknown")]
    by: String,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "")]
    reason: String,
}

#[derive(Subcommand)]
pub enum MatchesCommand {
    /// List accounts roster would not link on its own.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Say whose an account is (or that it is nobody roster manages).
    Resolve {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// The connection (e.g. expensify).
        connection: String,
        /// The account's key in that app (as `roster matches` shows it).
        account: String,
        /// The person's employee ID.
        #[arg(
            long,
            conflicts_with = "not_a_person",
            required_unless_present = "not_a_person"
        )]
        person: Option<String>,
        /// The account belongs to no managed person (shared, service): leave it alone.
        #[arg(long)]
        not_a_person: bool,
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file; errors name file, line and column.
    Check { file: PathBuf },
}

async fn resolve_plan_id(engine: &roster_engine::Engine, raw: &str) -> Result<PlanId> {
    if raw == "latest" {
        Ok(engine
            .store
            .latest_plan()
            .await?
            .context("there is no stored plan; run `roster plan` first")?
            .id)
    } else {
        Ok(PlanId::new(raw))
    }
}

pub async fn decide(
    args: DecideArgs,
    decision: Decision,
    catalog_dir: Option<&Path>,
) -> Result<()> {
    let config = load_config(&args.config)?;
    let engine = engine_offline(&config, catalog_dir).await?;
    let id = resolve_plan_id(&engine, &args.plan).await?;
    let status = engine
        .decide(&id, args.action, decision, &args.by, &args.reason)
        .await?;
    println!(
        "plan {id}: {} approved, {} rejected, {} still waiting",
        status.approved.len(),
        status.rejected.len(),
        status.waiting.len()
    );
    Ok(())
}

pub async fn matches(cmd: MatchesCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        MatchesCommand::List { config, json } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let queue = engine.match_queue().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&queue)?);
            } else if queue.is_empty() {
                println!("No uncertain matches.");
            } else {
                for m in &queue {
                    println!(
                        "{} {} ({}) [{}]\n    {}",
                        m.connection,
                        m.account,
                        m.email.as_deref().unwrap_or("no email"),
                        m.kind,
                        m.detail
                    );
                }
                println!(
                    "\n{} account(s) wait for a decision: roster matches resolve CONNECTION ACCOUNT --person EMPLOYEE_ID | --not-a-person",
                    queue.len()
                );
            }
        }
        MatchesCommand::Resolve {
            config,
            connection,
            account,
            person,
            not_a_person,
            by,
            reason,
        } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let employee_id = if not_a_person {
                None
            } else {
                person.map(EmployeeId::new)
            };
            engine
                .resolve_match(MatchResolution {
                    connection: ConnectionId::new(connection.as_str()),
                    account: AccountKey::new(account.as_str()),
                    employee_id: employee_id.clone(),
                    actor: by,
                    reason,
                    at_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                        as i64,
                })
                .await?;
            match employee_id {
                Some(e) => println!(
                    "{connection} {account} is now linked to {e}; the next plan acts on it."
                ),
                None => println!(
                    "{connection} {account} is marked as not a managed person; roster leaves it alone."
                ),
            }
        }
    }
    Ok(())
}

pub fn policy(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let policy = Policy::parse(&file.display().to_string(), &text)?;
            println!(
                "{}: OK ({} rule(s) over {} connection(s): {})",
                file.display(),
                policy.rules.len(),
                policy.governed_connections().len(),
                policy
                    .governed_connections()
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}
