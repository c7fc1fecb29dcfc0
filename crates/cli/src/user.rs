//! `roster user add|list|remove|set-role`: the web UI's local users, through
//! `Roster` (see `roster_engine::app::web_users`). A password is read from
//! standard input (one line) or, with `--generate-password` or from a
//! terminal with nothing typed, generated and printed once; only its
//! argon2id hash is stored.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use roster_core::Role;
use roster_engine::NewWebUser;

use crate::ops::{load_config, roster_offline};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a local user of the web UI. The password is read from standard
    /// input (one line), or generated and printed once with
    /// --generate-password.
    Add {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// The user's name (`alice`): signs in with it, audited as `user:NAME`.
        name: String,
        /// viewer (read), operator (read, propose, offboard), approver
        /// (read, approve) or admin (everything).
        #[arg(long)]
        role: String,
        /// Their work address: when the sources say that person has left,
        /// their sessions and tokens end.
        #[arg(long)]
        email: Option<String>,
        /// Generate a password and print it once instead of reading one.
        #[arg(long)]
        generate_password: bool,
    },
    /// List local users: name, role, address; never a password.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove a local user and end their sessions.
    Remove {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        name: String,
    },
    /// Change a local user's role (their sessions end; the new role holds
    /// from their next sign-in).
    SetRole {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        name: String,
        #[arg(long)]
        role: String,
    },
}

fn role(text: &str) -> Result<Role> {
    Role::parse(text)
        .with_context(|| format!("unknown role {text:?}: use viewer, operator, approver or admin"))
}

pub async fn run(cmd: UserCommand, catalog_dir: Option<&Path>) -> Result<()> {
    match cmd {
        UserCommand::Add {
            config,
            name,
            role: role_text,
            email,
            generate_password,
        } => {
            let role = role(&role_text)?;
            let password = if generate_password {
                None
            } else {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!("password for {name} (at least 12 characters; empty: generate one):");
                }
                let mut line = String::new();
                stdin
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                let line = line.trim_end_matches(['\r', '\n']).to_string();
                if line.is_empty() { None } else { Some(line) }
            };
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let (user, generated) = roster
                .add_web_user(
                    &principal,
                    &NewWebUser {
                        name,
                        role,
                        email,
                        password,
                    },
                )
                .await?;
            eprintln!(
                "added web user {} with the role {}{}",
                user.name,
                user.role,
                user.email
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
            if let Some(p) = generated {
                eprintln!("their password, shown once (stored only as an argon2id hash):");
                println!("{p}");
            }
        }
        UserCommand::List { config, json } => {
            let config = load_config(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            let users = roster.web_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
                return Ok(());
            }
            if users.is_empty() {
                println!("No web users; add one with: roster user add NAME --role viewer");
            }
            for u in users {
                println!(
                    "{:<24} {:<9} {}",
                    u.name,
                    u.role.as_str(),
                    u.email.as_deref().unwrap_or("-")
                );
            }
        }
        UserCommand::Remove { config, name } => {
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            if !roster.remove_web_user(&principal, &name).await? {
                bail!("no web user {name:?} (roster user list)");
            }
            println!("removed {name}; their sessions ended");
        }
        UserCommand::SetRole {
            config,
            name,
            role: role_text,
        } => {
            let role = role(&role_text)?;
            let config = load_config(&config)?;
            let principal = crate::principal::current(&config)?;
            let roster = roster_offline(&config, catalog_dir).await?;
            if !roster.set_web_user_role(&principal, &name, role).await? {
                bail!("no web user {name:?} (roster user list)");
            }
            println!("{name} is now {role}; their sessions ended");
        }
    }
    Ok(())
}
