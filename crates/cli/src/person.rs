//! `roster person show PERSON`: one person's access everywhere, from what
//! roster's database holds (no app is read, no secret resolved, nothing
//! changed), through `Roster::person_access`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use roster_engine::PersonRef;
use roster_engine::app::PersonAccess;

use crate::ops::{load_config, roster_offline};

#[derive(Subcommand)]
pub enum PersonCommand {
    /// Everything about one person's access: identities, every account with
    /// roster's path and the rule that grants it, open tasks, pending
    /// actions, recent audit events.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// The roster config file.
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// An address (primary or alias) or an employee ID.
    person: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: PersonCommand, catalog_dir: Option<&Path>) -> Result<()> {
    let PersonCommand::Show(args) = cmd;
    let config = load_config(&args.config)?;
    let roster = roster_offline(&config, catalog_dir).await?;
    let access = roster
        .person_access(&PersonRef::parse(&args.person))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&access)?);
    } else {
        print!("{}", render(&access));
    }
    Ok(())
}

fn ms_date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|_| ms.to_string())
}

/// The human rendering.
pub fn render(a: &PersonAccess) -> String {
    use std::fmt::Write as _;
    let p = &a.planned;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} <{}> ({})",
        p.display_name(),
        p.email,
        p.employee_id
    );
    let source_status = a.source.as_ref().map(|s| s.status);
    let _ = writeln!(
        out,
        "  status: {}{}{}",
        p.status,
        match source_status {
            Some(s) if s != p.status => format!(" (the source says {s})"),
            None => " (not in the source of truth: pushed by an IdP)".to_string(),
            _ => String::new(),
        },
        if a.offboarded {
            "; offboarded by `roster offboard`"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "  dates: {}", a.dates.detail);
    if let Some(s) = &a.source {
        let _ = writeln!(
            out,
            "  source: {}, {}, cost center {}, start {}, end {}",
            if s.department.is_empty() {
                "-"
            } else {
                &s.department
            },
            s.display_name(),
            if s.cost_center.is_empty() {
                "-"
            } else {
                &s.cost_center
            },
            s.start_date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            s.end_date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    if !p.aliases.is_empty() {
        let aliases: Vec<&str> = p.aliases.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(out, "  aliases: {}", aliases.join(", "));
    }
    let _ = writeln!(
        out,
        "  manager: {}",
        p.manager_email.as_ref().map(|e| e.as_str()).unwrap_or("-")
    );
    if !p.groups.is_empty() {
        let _ = writeln!(out, "  groups: {}", p.groups.join(", "));
    }
    if let Some(idp) = &a.idp {
        let _ = writeln!(
            out,
            "  idp: {} id {} state {}",
            idp.source.as_deref().unwrap_or("-"),
            idp.id.as_deref().unwrap_or("-"),
            idp.state.as_deref().unwrap_or("-")
        );
    }

    let _ = writeln!(out, "\nAccounts ({}):", a.accounts.len());
    if a.accounts.is_empty() {
        let _ = writeln!(out, "  none recorded (as of the last read of each app)");
    }
    for acc in &a.accounts {
        let ac = &acc.account;
        let _ = writeln!(
            out,
            "  {} ({}): {} {}  [{}]",
            ac.connection,
            acc.app.as_deref().unwrap_or("no catalog app"),
            ac.key,
            ac.email.as_ref().map(|e| e.as_str()).unwrap_or("-"),
            if ac.active { "active" } else { "inactive" }
        );
        let _ = writeln!(out, "      grant: {}", acc.grant);
        if let Some(path) = &acc.path {
            let _ = writeln!(
                out,
                "      path to {}: {}{} ({})",
                path.operation,
                path.path,
                match &path.connector {
                    Some(c) => format!(" via {c}"),
                    None => ", a person's task".to_string(),
                },
                path.reason
            );
        }
    }
    for g in &a.entitled_without_account {
        let _ = writeln!(
            out,
            "  {}: no account yet; granted by {}",
            g.connection,
            g.rules
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(" + ")
        );
    }

    let _ = writeln!(out, "\nOpen tasks ({}):", a.open_tasks.len());
    for t in &a.open_tasks {
        let _ = writeln!(
            out,
            "  {} [{}] {}: {}{}",
            t.id,
            t.state,
            t.connection,
            t.title,
            t.assignee
                .as_deref()
                .map(|x| format!(" (assigned to {x})"))
                .unwrap_or_default()
        );
    }

    let _ = writeln!(out, "\nPending plan actions ({}):", a.pending_actions.len());
    for pa in &a.pending_actions {
        let _ = writeln!(
            out,
            "  plan {} #{} [{}] {} {} in {}{}",
            pa.plan_id,
            pa.index,
            pa.state,
            pa.action.operation,
            pa.action.email,
            pa.action.connection,
            pa.awaiting_approval
                .as_deref()
                .map(|w| format!(" (needs approval: {w})"))
                .unwrap_or_default()
        );
    }
    match (&a.next_plan, &a.next_plan_error) {
        (Some(actions), _) => {
            let _ = writeln!(
                out,
                "\nNext plan for them (from the last read): {} action(s)",
                actions.len()
            );
            for act in actions {
                let _ = writeln!(
                    out,
                    "  {} {} in {}: {}",
                    act.operation, act.email, act.connection, act.reason
                );
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "\nNext plan for them: cannot be computed: {e}");
        }
        (None, None) => {}
    }

    let _ = writeln!(out, "\nRecent audit events ({}):", a.audit.len());
    for r in &a.audit {
        let _ = writeln!(
            out,
            "  #{} {} {} {} by {}",
            r.seq,
            ms_date(r.at_ms),
            r.kind,
            r.subject,
            r.actor
        );
    }
    out
}
