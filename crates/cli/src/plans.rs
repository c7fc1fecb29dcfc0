//! `roster plans` and `roster plans show`: the plans the store holds, where
//! each stands (waiting for approval, approved, rejected, applied, ...),
//! and one plan in full with every action's state.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use roster_core::plan::render;
use roster_engine::ApprovalStatus;
use roster_engine::Engine;
use roster_store::{PlanId, PlanStatus, StoredPlan};
use serde::Serialize;

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

/// One plan in the listing.
#[derive(Serialize)]
struct Summary {
    id: String,
    created: String,
    created_ms: i64,
    hash: String,
    /// Actions per operation (`create`, `update`, ...).
    actions: std::collections::BTreeMap<String, usize>,
    findings: usize,
    /// Where the plan stands, in one word or phrase (see [`state_of`]).
    state: &'static str,
    /// Execution status derived from the actions' states.
    status: PlanStatus,
    waiting_approval: usize,
    approved: usize,
    rejected: usize,
}

/// Where a plan stands for a person: its approvals until anything ran,
/// then its execution.
fn state_of(stored: &StoredPlan, approvals: &ApprovalStatus) -> &'static str {
    match stored.status {
        _ if stored.plan.actions.is_empty() => "nothing to do",
        PlanStatus::InProgress => "applying",
        PlanStatus::Failed => "failed",
        PlanStatus::AwaitingManual => "waiting on manual tasks",
        // Everything skipped because a person said no.
        PlanStatus::Done if approvals.rejected.len() == stored.plan.actions.len() => "rejected",
        PlanStatus::Done => "applied",
        PlanStatus::Pending if !approvals.waiting.is_empty() => "pending approval",
        PlanStatus::Pending if !approvals.rejected.is_empty() && approvals.approved.is_empty() => {
            "rejected"
        }
        PlanStatus::Pending if !approvals.approved.is_empty() => "approved",
        PlanStatus::Pending => "ready to apply",
    }
}

async fn summary(engine: &Engine, stored: &StoredPlan) -> Result<Summary> {
    let approvals = engine.approval_status(&stored.id).await?;
    Ok(Summary {
        id: stored.id.to_string(),
        created: due(Some(stored.created_ms)),
        created_ms: stored.created_ms,
        hash: stored.hash.clone(),
        actions: stored
            .plan
            .counts()
            .into_iter()
            .map(|(op, n)| (op.as_str().to_string(), n))
            .collect(),
        findings: stored.plan.findings.len(),
        state: state_of(stored, &approvals),
        status: stored.status,
        waiting_approval: approvals.waiting.len(),
        approved: approvals.approved.len(),
        rejected: approvals.rejected.len(),
    })
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
    let engine = engine_offline(&config, catalog_dir).await?;
    let mut rows = Vec::new();
    for stored in engine.store.recent_plans(args.limit).await? {
        rows.push(summary(&engine, &stored).await?);
    }
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
            r.created.clone(),
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
    let engine = engine_offline(&config, catalog_dir).await?;
    let stored = if raw == "latest" {
        engine
            .store
            .latest_plan()
            .await?
            .context("there is no stored plan; run `roster plan` first")?
    } else {
        engine
            .store
            .plan(&PlanId::new(raw))
            .await?
            .with_context(|| format!("no plan {raw}; see `roster plans`"))?
    };
    let approvals = engine.approval_status(&stored.id).await?;
    let actions = engine.store.actions(&stored.id).await?;
    let approval_of = |i: usize| -> Option<&'static str> {
        if approvals.waiting.contains_key(&i) {
            Some("waiting for approval")
        } else if approvals.approved.contains(&i) {
            Some("approved")
        } else if approvals.rejected.contains(&i) {
            Some("rejected")
        } else {
            None
        }
    };
    if json {
        let per_action: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| {
                serde_json::json!({
                    "index": a.index,
                    "state": a.state,
                    "detail": a.detail,
                    "approval": approval_of(a.index),
                })
            })
            .collect();
        let out = serde_json::json!({
            "summary": summary(&engine, &stored).await?,
            "plan": stored.plan,
            "actions": per_action,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "Plan {} (created {}, hash {})\nState: {}\n",
        stored.id,
        due(Some(stored.created_ms)),
        stored.hash,
        state_of(&stored, &approvals)
    );
    print!("{}", render(&stored.plan));
    if !actions.is_empty() {
        println!("\nActions:");
        for a in &actions {
            let mut line = format!(
                "  #{:<4} {:<10} {:<11} {}: {}",
                a.index,
                a.action.connection,
                a.action.operation.as_str(),
                a.action.email,
                a.state
            );
            if let Some(approval) = approval_of(a.index) {
                line.push_str(&format!(" ({approval})"));
            }
            if let Some(d) = &a.detail {
                line.push_str(&format!(": {d}"));
            }
            println!("{line}");
        }
    }
    if !approvals.waiting.is_empty() {
        println!(
            "\n{} action(s) wait for approval: roster approve {} (or roster reject {})",
            approvals.waiting.len(),
            stored.id,
            stored.id
        );
    }
    Ok(())
}
