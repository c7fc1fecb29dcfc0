//! `roster plans` and `roster plans show`: the plans the store holds, where
//! each stands (waiting for approval, approved, rejected, applied, ...),
//! and one plan in full with every action's state.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use roster_core::plan::render;
use roster_engine::{EngineError, Roster};
use roster_store::PlanId;

use crate::ops::{due, engine_offline, load_config};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlansArgs {
    #[command(subcommand)]
    command: Option<PlansCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// How many plans to list, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum PlansCommand {
    /// One plan as `roster plan` printed it, with each action's state.
    Show {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// The plan's ID, or `latest`.
        plan: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: PlansArgs, catalog_dir: Option<&Path>) -> Result<()> {
    match args.command {
        None => list(args.list, catalog_dir).await,
        Some(PlansCommand::Show { config, plan, json }) => {
            show(&config, &plan, json, catalog_dir).await
        }
    }
}

async fn list(args: ListArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    let roster = Roster::new(engine_offline(&config, catalog_dir).await?);
    let limit = args.limit.clamp(1, roster_engine::queries::MAX_PAGE);
    let rows = roster.plans(None, limit).await?.items;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No stored plans; `roster plan` computes one.");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["PLAN", "CREATED", "HASH", "ACTIONS", "STATE"]);
    for r in &rows {
        let actions = if r.actions.is_empty() {
            "none".to_string()
        } else {
            r.actions
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.add_row([
            r.id.clone(),
            due(Some(r.created_ms)),
            r.hash.chars().take(12).collect(),
            actions,
            r.state.to_string(),
        ]);
    }
    println!("{table}");
    println!("\nShow one with: roster plans show PLAN_ID (or latest)");
    Ok(())
}

async fn show(config: &Path, raw: &str, json: bool, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    let roster = Roster::new(engine_offline(&config, catalog_dir).await?);
    let detail = match roster.plan_detail(&PlanId::new(raw)).await {
        Err(EngineError::PlanNotFound(_)) if raw == "latest" => {
            anyhow::bail!("there is no stored plan; run `roster plan` first")
        }
        Err(EngineError::PlanNotFound(_)) => {
            anyhow::bail!("no plan {raw}; see `roster plans`")
        }
        other => other?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(());
    }
    let s = &detail.summary;
    println!(
        "Plan {} (created {}, hash {})\nState: {}\n",
        s.id,
        due(Some(s.created_ms)),
        s.hash,
        s.state
    );
    print!("{}", render(&detail.plan));
    if !detail.actions.is_empty() {
        println!("\nActions:");
        for a in &detail.actions {
            let Some(action) = detail.plan.actions.get(a.index) else {
                continue;
            };
            let mut line = format!(
                "  #{:<4} {:<10} {:<11} {}: {}",
                a.index,
                action.connection,
                action.operation.as_str(),
                action.email,
                a.state
            );
            if let Some(approval) = a.approval {
                let approval = if approval == "waiting" {
                    "waiting for approval"
                } else {
                    approval
                };
                line.push_str(&format!(" ({approval})"));
            }
            if let Some(d) = &a.detail {
                line.push_str(&format!(": {d}"));
            }
            println!("{line}");
        }
    }
    if s.waiting_approval > 0 {
        println!(
            "\n{} action(s) wait for approval: roster approve {} (or roster reject {})",
            s.waiting_approval, s.id, s.id
        );
    }
    Ok(())
}
