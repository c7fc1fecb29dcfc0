//! `roster notify log|send`: the notifications' delivery log, and one
//! delivery pass now (the service delivers on its own every 30 s).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;

use crate::ops::{load_config, roster_for, roster_offline};

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// The newest deliveries: channel, event, outcome, attempts, error.
    Log {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver what is pending now, to every `[notify.channels.*]`.
    Send {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
}

fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|_| ms.to_string())
}

pub async fn run(cmd: NotifyCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        NotifyCommand::Log {
            config,
            limit,
            json,
        } => {
            let config = load_config(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let log = roster.notification_log(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&log)?);
            } else if log.is_empty() {
                println!("nothing delivered yet");
            } else {
                for d in log {
                    println!(
                        "{}  {:<16} {:<22} {:<6} audit #{:<6} {} attempt(s){}",
                        date(d.at_ms),
                        d.channel,
                        d.event,
                        d.status,
                        d.seq,
                        d.attempts,
                        d.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            }
        }
        NotifyCommand::Send { config } => {
            let config = load_config(&config)?;
            if config.notify.channels.is_empty() {
                anyhow::bail!("no [notify.channels.<name>] in the config: nothing to send to");
            }
            let roster = roster_for(&config, catalog_dir).await?;
            let d = roster.deliver_notifications().await?;
            println!("{} sent, {} failed", d.sent, d.failed);
            if d.failed > 0 {
                anyhow::bail!(
                    "{} notification(s) failed; see `roster notify log`",
                    d.failed
                );
            }
        }
    }
    Ok(())
}
