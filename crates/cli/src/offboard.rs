//! `roster offboard PERSON --reason TEXT`: take one person's access away
//! now, through the application layer's one offboarding use case
//! (`Roster::offboard`).
//!
//! Offboarding is the one command that takes access away on a person's
//! word, so it shows before it acts: `--dry-run` prints the plan it would
//! carry out and changes nothing (not even roster's own records); without
//! `--yes` it prints the same plan and stops, asking for `--yes`. With
//! `--yes` it records the termination override (a slower source still
//! listing the person does not bring them back), applies, re-reads the
//! apps and ends with what access remains: each app, the account's state,
//! and the open tasks with who holds them, so nobody mistakes "roster
//! did its part" for "the person is out".
//!
//! The person's identity-provider sessions are ended first
//! (`[sources.<name>] revoke_sessions = true`): the dry run names each
//! source it would revoke in (or that is not enabled to), the real run
//! reports each result among the remaining access; a failed revocation is
//! an open item there (with its task) and makes the command fail, after
//! the accounts were closed.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use roster_core::plan::render;
use roster_engine::PersonRef;
use roster_engine::app::RemainingAccess;
use roster_engine::revoke::{Revocation, RevocationOutcome};
use serde_json::json;

use crate::ops::{load_config, roster_for, show_progress};

#[derive(Args)]
pub struct OffboardArgs {
    /// The roster config file.
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// Who leaves: an address or an employee ID.
    person: String,
    /// Why (recorded in the audit log with the operator's name).
    #[arg(long)]
    reason: String,
    /// Print the plan an offboarding would carry out; change nothing.
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    /// Carry it out (without it, the plan is printed and nothing is done).
    #[arg(long)]
    yes: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: OffboardArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    let principal = crate::principal::current(&config)?;
    anyhow::ensure!(
        !args.reason.trim().is_empty(),
        "--reason must say why (it is recorded in the audit log)"
    );
    let roster = roster_for(&config, catalog_dir).await?;
    let who = PersonRef::parse(&args.person);
    if !args.yes {
        // A fresh read of the apps (changes nothing in them), then the
        // plan the offboarding would carry out.
        roster.read(&principal, &mut show_progress).await?;
        let (person, plan) = roster.preview_offboard(&who).await?;
        let revocations = roster.planned_revocations(&person);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "person": person,
                    "plan": plan,
                    "revocations": revocations,
                    "applied": false,
                }))?
            );
        } else {
            println!(
                "Offboarding {} ({}) would carry out:\n",
                person.email, person.employee_id
            );
            if !revocations.is_empty() {
                println!("First, in the identity providers:");
                for r in &revocations {
                    println!("  {}", r.describe());
                }
                println!();
            }
            print!("{}", render(&plan));
        }
        if args.dry_run {
            return Ok(());
        }
        bail!(
            "nothing was done: re-run with --yes to offboard {} (reason: {})",
            person.email,
            args.reason
        );
    }
    let done = roster
        .offboard(&principal, &who, &args.reason, &mut show_progress)
        .await?;
    // What the apps say now, not what roster meant to do.
    roster.read(&principal, &mut show_progress).await?;
    let remaining = roster.remaining_access(&done.person).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "person": done.person,
                "plan_id": done.plan_id.as_str(),
                "plan": done.plan,
                "applied": true,
                "report": {
                    "applied": done.report.applied_total(),
                    "failed": done.report.failed.iter().map(|(c, who, why)| json!({
                        "connection": c.as_str(), "account": who, "error": why,
                    })).collect::<Vec<_>>(),
                    "manual": done.report.manual,
                    "pending": done.report.pending,
                    "held": done.held.iter().map(|(i, why)| json!({ "action": i, "why": why })).collect::<Vec<_>>(),
                },
                "revocations": done.revocations,
                "remaining": remaining_json(&remaining, &done.revocations),
            }))?
        );
    } else {
        print!("{}", render(&done.plan));
        println!(
            "\nOffboarded {} ({}) as plan {}: {} action(s) applied, {} failed, {} manual, {} held",
            done.person.email,
            done.person.employee_id,
            done.plan_id,
            done.report.applied_total(),
            done.report.failed.len(),
            done.report.manual,
            done.held.len()
        );
        for (c, who, why) in &done.report.failed {
            println!("  failed: {c} {who}: {why}");
        }
        for (i, why) in &done.held {
            println!("  held (action #{i}): {why}");
        }
        print_remaining(&remaining, &done.revocations);
    }
    let not_revoked: Vec<&Revocation> = done.revocations.iter().filter(|r| r.failed()).collect();
    if !not_revoked.is_empty() {
        bail!(
            "{} ({}) may still be signed in to {}: the accounts were closed, but ending their sessions failed; the open task(s) say what to do by hand",
            done.person.email,
            done.person.employee_id,
            not_revoked
                .iter()
                .map(|r| r.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !done.report.failed.is_empty() {
        bail!(
            "{} action(s) failed; `roster apply {}` retries them",
            done.report.failed.len(),
            done.plan_id
        );
    }
    Ok(())
}

fn remaining_json(r: &RemainingAccess, revocations: &[Revocation]) -> serde_json::Value {
    json!({
        "sessions": revocations.iter().map(|v| json!({
            "source": v.source.as_str(),
            "kind": v.kind,
            "idp_id": v.idp_id,
            "state": session_state(v),
            "task": v.task,
        })).collect::<Vec<_>>(),
        "accounts": r.accounts.iter().map(|a| json!({
            "connection": a.connection.as_str(),
            "account": a.key.as_str(),
            "state": if a.active { "active" } else { "inactive" },
        })).collect::<Vec<_>>(),
        "open_tasks": r.open_tasks.iter().map(|t| json!({
            "id": t.id,
            "connection": t.connection,
            "kind": t.kind,
            "title": t.title,
            "state": t.state.as_str(),
            "assignee": t.assignee,
        })).collect::<Vec<_>>(),
    })
}

/// A source's sessions, as the remaining-access summary says it.
fn session_state(v: &Revocation) -> &'static str {
    match v.outcome {
        RevocationOutcome::Revoked => "revoked",
        RevocationOutcome::Failed { .. } => "NOT REVOKED",
        RevocationOutcome::NotEnabled => "not revoked (revoke_sessions off)",
        RevocationOutcome::WouldRevoke => "would revoke",
    }
}

fn print_remaining(r: &RemainingAccess, revocations: &[Revocation]) {
    println!("\nRemaining access:");
    if r.accounts.is_empty() && r.open_tasks.is_empty() && revocations.is_empty() {
        println!("  none: no account under their identifiers, no open task");
        return;
    }
    for v in revocations {
        println!(
            "  {:<20} {:<32} sessions {}",
            v.source.as_str(),
            v.idp_id,
            session_state(v)
        );
        if let RevocationOutcome::Failed { error } = &v.outcome {
            println!("  {:<20} error: {error}", "");
        }
    }
    for a in &r.accounts {
        println!(
            "  {:<20} {:<32} {}",
            a.connection.as_str(),
            a.key.as_str(),
            if a.active { "ACTIVE" } else { "inactive" }
        );
    }
    for t in &r.open_tasks {
        println!(
            "  {:<20} task {} ({}{}): {} — held by {}",
            t.connection,
            t.id,
            t.state.as_str(),
            if t.flagged { ", flagged" } else { "" },
            t.title,
            t.assignee.as_deref().unwrap_or("nobody assigned")
        );
    }
    if r.accounts.iter().all(|a| !a.active)
        && r.open_tasks.iter().all(|t| !t.state.is_outstanding())
        && revocations.iter().all(|v| !v.failed())
    {
        println!("  (no active account and no outstanding task)");
    }
}
