//! `roster approve|reject|matches|policy check`: the human side of a plan.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use roster_core::vocabulary::PolicyProblems;
use roster_core::{AccountKey, ConnectionId, EmployeeId, Policy};
use roster_engine::config::Config;
use roster_store::{Decision, MatchResolution, PlanId};

use crate::ops::{engine_offline, load_config, roster_offline};
use crate::suggest::did_you_mean;

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
    /// Ignored unless it names someone else, which is refused: roster records
    /// the operator who runs the command (see `[operators]` in the config).
    #[arg(long, hide = true)]
    by: Option<String>,
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
        /// Ignored unless it names someone else, which is refused: roster records
        /// the operator who runs the command (see `[operators]` in the config).
        #[arg(long, hide = true)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy: its syntax, and that every connection and attribute
    /// it names exists in the config and the sources. Errors name file,
    /// line and column.
    Check {
        /// The policy file (default: the config's `policy`).
        file: Option<PathBuf>,
        /// The roster config to check against (default: roster.toml, when
        /// it exists; without one only the syntax is checked).
        #[arg(long, short, env = "ROSTER_CONFIG")]
        config: Option<PathBuf>,
    },
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
    let principal = crate::principal::current(&config)?;
    crate::principal::check_by(args.by.as_deref(), &principal)?;
    let roster = roster_offline(&config, catalog_dir).await?;
    let id = resolve_plan_id(roster.engine(), &args.plan).await?;
    // Who proposed it comes first: an AI agent's proposal loudly.
    if let Ok(detail) = roster.plan_detail(&id).await {
        let proposal = roster.proposal(&id).await?;
        for line in
            crate::plans::proposer_notice(detail.summary.proposed_by.as_deref(), proposal.as_ref())
        {
            println!("{line}");
        }
    }
    let status = match decision {
        Decision::Approved => {
            roster
                .approve(&principal, &id, args.action, &args.reason)
                .await?
        }
        Decision::Rejected => {
            roster
                .reject(&principal, &id, args.action, &args.reason)
                .await?
        }
    };
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
            let principal = crate::principal::current(&config)?;
            crate::principal::check_by(by.as_deref(), &principal)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let engine = roster.engine();
            let employee_id = if not_a_person {
                None
            } else {
                person.map(EmployeeId::new)
            };
            check_names(&config, engine, &connection, &account, employee_id.as_ref()).await?;
            roster
                .resolve_match(
                    &principal,
                    MatchResolution {
                        connection: ConnectionId::new(connection.as_str()),
                        account: AccountKey::new(account.as_str()),
                        employee_id: employee_id.clone(),
                        actor: principal.actor(),
                        reason,
                        at_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                            as i64,
                    },
                )
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

/// Refuses a resolution naming a connection, an account or a person that
/// does not exist: a typo would otherwise be stored as a decision about
/// nothing (or, for a person, link an account to the wrong one).
async fn check_names(
    config: &roster_engine::config::Config,
    engine: &roster_engine::Engine,
    connection: &str,
    account: &str,
    person: Option<&EmployeeId>,
) -> Result<()> {
    let configured = || config.connections.iter().map(|c| c.id.as_str());
    anyhow::ensure!(
        configured().any(|c| c == connection),
        "no connection {connection:?} in the config{}; configured: {}",
        did_you_mean(connection, configured()),
        configured().collect::<Vec<_>>().join(", ")
    );
    let observed = engine
        .store
        .observed(&ConnectionId::new(connection))
        .await?
        .with_context(|| format!("{connection} has never been read; run `roster plan` first"))?;
    let keys = || observed.accounts.iter().map(|a| a.key.as_str());
    anyhow::ensure!(
        keys().any(|k| k == account),
        "no account {account:?} in {connection}'s last read{} (see `roster matches list`)",
        did_you_mean(account, keys())
    );
    if let Some(e) = person
        && engine.store.person_by_employee_id(e).await?.is_none()
    {
        let people = engine.store.people().await?;
        anyhow::bail!(
            "no person with employee ID {e} in the source of truth{}",
            did_you_mean(e.as_str(), people.iter().map(|p| p.employee_id.as_str()))
        );
    }
    Ok(())
}

pub fn policy(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Check { file, config } => {
            // An explicit config must exist; the default one is optional.
            let config = config.or_else(|| {
                let default = PathBuf::from("roster.toml");
                default.exists().then_some(default)
            });
            let context = config
                .as_deref()
                .map(|c| {
                    Config::load_policy_context(c).with_context(|| {
                        format!("cannot use config {} to check the policy", c.display())
                    })
                })
                .transpose()?;
            let file = match (file, &context) {
                (Some(f), _) => f,
                (None, Some(c)) => c.policy.clone(),
                (None, None) => bail!(
                    "no policy to check: give a policy file, or a config with --config (no roster.toml here)"
                ),
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let policy = Policy::parse(&file.display().to_string(), &text)?;
            if let Some(context) = &context {
                let vocabulary = context.vocabulary()?;
                let problems = policy.check_against(&vocabulary);
                if !problems.is_empty() {
                    return Err(PolicyProblems(problems).into());
                }
            }
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
            match &context {
                Some(c) => println!(
                    "checked against {}: every connection and attribute the policy names exists",
                    c.config.display()
                ),
                None => println!(
                    "only the syntax was checked: no config found, so connection and attribute names were not (pass --config roster.toml)"
                ),
            }
        }
    }
    Ok(())
}
