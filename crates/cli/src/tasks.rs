//! `roster tasks`, `roster task show|done`: the human side of the manual path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use roster_store::HumanTaskState;
use sha2::{Digest, Sha256};

use crate::ops::{due, engine_offline, load_config};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Show one task with its checklist.
    Show {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        id: String,
    },
    /// Report a task done; the next read verifies it.
    Done {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        id: String,
        /// A file that shows the work (a screenshot, an export); its name and
        /// SHA-256 are recorded.
        #[arg(long, value_name = "FILE")]
        evidence: Option<PathBuf>,
        /// A note about what was done.
        #[arg(long)]
        note: Option<String>,
        /// Ignored unless it names someone else, which is refused: roster records
        /// the operator who runs the command (see `[operators]` in the config).
        #[arg(long, hide = true)]
        by: Option<String>,
    },
}

pub async fn list(config: &Path, all: bool, json: bool, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    let engine = engine_offline(&config, catalog_dir).await?;
    let states: &[HumanTaskState] = if all {
        &[]
    } else {
        &[
            HumanTaskState::Open,
            HumanTaskState::Reopened,
            HumanTaskState::Done,
        ]
    };
    let tasks = engine.store.human_tasks(states).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    if tasks.is_empty() {
        println!("No tasks{}.", if all { "" } else { " waiting for anyone" });
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for t in &tasks {
        let overdue = t.due_ms.is_some_and(|d| d < now) && t.state.is_outstanding();
        println!(
            "{}  {:<9} {}{}{}\n    due {}{}",
            t.id,
            t.state.as_str(),
            t.title,
            if t.flagged {
                "  [FLAGGED: the app disagreed]"
            } else {
                ""
            },
            if overdue { "  [OVERDUE]" } else { "" },
            due(t.due_ms),
            t.assignee
                .as_deref()
                .map(|a| format!(", assigned to {a}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn run(cmd: TaskCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        TaskCommand::Show { config, id } => {
            let config = load_config(&config)?;
            let engine = engine_offline(&config, catalog_dir).await?;
            let t = engine
                .store
                .human_task(&id)
                .await?
                .with_context(|| format!("no task {id}; see `roster tasks`"))?;
            println!(
                "{}  [{}{}]",
                t.title,
                t.state,
                if t.flagged { ", flagged" } else { "" }
            );
            println!(
                "  connection  {}\n  person      {}\n  due         {}",
                t.connection,
                t.subject_email,
                due(t.due_ms)
            );
            if let Some(n) = &t.note {
                println!("  note        {n}");
            }
            if let Some(e) = &t.evidence {
                println!("  evidence    {e}");
            }
            println!("  checklist:");
            for (i, step) in t.checklist.iter().enumerate() {
                println!("    {}. {step}", i + 1);
            }
        }
        TaskCommand::Done {
            config,
            id,
            evidence,
            note,
            by,
        } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            crate::principal::check_by(by.as_deref(), &principal)?;
            let roster = roster_engine::Roster::new(engine_offline(&config, catalog_dir).await?);
            let evidence = match evidence {
                Some(path) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("cannot read evidence file {}", path.display()))?;
                    let digest = hex_digest(&bytes);
                    Some(format!(
                        "{} ({} bytes, sha256:{digest})",
                        path.display(),
                        bytes.len()
                    ))
                }
                None => None,
            };
            let t = roster
                .complete_task(&principal, &id, note, evidence)
                .await?;
            println!(
                "task {} marked done; the next `roster plan` verifies it against {}.",
                t.id, t.connection
            );
        }
    }
    Ok(())
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
