//! `roster secret set|list|rm|rotate`: vendor credentials kept encrypted in
//! roster's database.
//!
//! `set` reads the value from standard input (without echo on a terminal),
//! seals it with the master key (`ROSTER_MASTER_KEY`, else
//! `<data_dir>/master.key`, created on first use) bound to the secret's
//! name, and stores only the sealed form. The value is never printed or
//! logged, and nothing can show it again: a config refers to it as
//! `secret = { stored = "NAME" }` and roster opens it when it builds the
//! connection. `list` shows names and dates only, and, when the config
//! names the connection a secret serves, when the credential reaches the
//! lifetime its app's catalog record gives (`[credentials] max_days`,
//! counted from when the current value was stored): it warns 30 days
//! ahead and once past. Every change is written to the audit log (name and
//! key id, never the value). `rotate` re-seals every stored value under a
//! new master key and retires the old one (see [`rotate`]).
//!
//! These commands read only `database` and `data_dir` from the config, so
//! they work before the rest of it (policy, other secrets) is in place.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use roster_engine::config::Config;
use roster_secrets::{Keyring, MASTER_KEY_ENV, MASTER_KEY_FILE, Zeroizing};

/// Where the master keys live, which decides who can change them.
enum KeySource {
    /// `<data_dir>/master.key`: roster writes the new key and retires the
    /// old one itself.
    File(PathBuf),
    /// `ROSTER_MASTER_KEY`: the operator puts the new key first; roster
    /// re-seals and says which keys to drop.
    Env,
}
use roster_store::{AuditEvent, Store};

/// The longest value `set` accepts; credentials are far shorter, and a
/// larger input is almost certainly the wrong file on stdin.
const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store (or replace) a secret, encrypted. The value is read from
    /// standard input, without echo on a terminal, and never shown again.
    Set {
        /// The secret's name, as used in `secret = { stored = "NAME" }`.
        name: String,
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
    /// List stored secrets: names and dates, never values.
    List {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rotate the master key: re-seal every stored secret under a new key
    /// and retire the old one(s). With the key file, roster makes the new
    /// key; with ROSTER_MASTER_KEY, put the new key first in the variable
    /// (`new:<base64>,<old>`) and run this, then drop the old keys.
    Rotate {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
    /// Delete a stored secret.
    Rm {
        name: String,
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
}

pub async fn run(cmd: SecretCommand) -> Result<()> {
    match cmd {
        SecretCommand::Set { name, config } => set(&name, &config).await,
        SecretCommand::List { config, json } => list(&config, json).await,
        SecretCommand::Rm { name, config } => rm(&name, &config).await,
        SecretCommand::Rotate { config } => rotate(&config).await,
    }
}

async fn set(name: &str, config: &std::path::Path) -> Result<()> {
    roster_secrets::check_name(name)?;
    let storage = load_storage(config)?;
    let key_file = storage.data_dir.join(MASTER_KEY_FILE);
    let key_existed =
        std::env::var_os(MASTER_KEY_ENV).is_some_and(|v| !v.is_empty()) || key_file.exists();
    let value = read_value(name)?;
    let keyring = Keyring::load(&storage.data_dir)?;
    if !key_existed {
        eprintln!(
            "Created the master key {}. Back it up (or move it to {MASTER_KEY_ENV}): \
             without it, stored secrets cannot be opened.",
            key_file.display()
        );
    }
    let sealed = keyring.seal(value.as_bytes(), name)?;
    drop(value);
    let store = open_store(&storage.database).await?;
    let replaced = store.secret(name).await?.is_some();
    let now = now_ms();
    store.put_secret(name, &sealed, now).await?;
    store
        .append_audit(AuditEvent {
            at_ms: now,
            actor: actor(),
            kind: roster_store::AuditKind::SecretSet.as_str().into(),
            subject: name.to_string(),
            data: serde_json::json!({ "key_id": keyring.current_id(), "replaced": replaced }),
        })
        .await?;
    store.close().await;
    println!(
        "{} secret {name} (encrypted with key {}).",
        if replaced { "Replaced" } else { "Stored" },
        keyring.current_id()
    );
    println!("Use it in the config as: secret = {{ stored = \"{name}\" }}");
    Ok(())
}

async fn list(config: &std::path::Path, json: bool) -> Result<()> {
    let storage = load_storage(config)?;
    let store = open_store(&storage.database).await?;
    let secrets = store.secret_names().await?;
    store.close().await;
    let users = secret_users(config);
    let now = now_ms();
    // Per secret: the connections it serves and, where the app's record
    // gives a lifetime, when the current value reaches it.
    let lifetimes: Vec<Vec<(String, Option<roster_catalog::Expiry>)>> = secrets
        .iter()
        .map(|s| {
            users
                .iter()
                .filter(|(name, _, _)| *name == s.name)
                .map(|(_, connection, app)| {
                    let e = app
                        .as_ref()
                        .and_then(|a| roster_catalog::expiry(a, s.updated_ms, now));
                    if let (Some(a), Some(e)) = (app, &e)
                        && let Some(w) =
                            roster_catalog::lifetime::warning(&s.name, connection, a, e)
                    {
                        eprintln!("warning: {w}");
                    }
                    (connection.clone(), e)
                })
                .collect()
        })
        .collect();
    if json {
        let rows: Vec<serde_json::Value> = secrets
            .iter()
            .zip(&lifetimes)
            .map(|(s, used)| {
                serde_json::json!({
                    "name": s.name,
                    "created": date(s.created_ms),
                    "updated": date(s.updated_ms),
                    "connections": used.iter().map(|(c, e)| serde_json::json!({
                        "connection": c,
                        "expires": e.as_ref().map(|e| date(e.expires_ms)),
                        "days_left": e.as_ref().map(|e| e.days_left),
                        "max_days": e.as_ref().map(|e| e.max_days),
                        "state": e.as_ref().map(|e| e.state),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if secrets.is_empty() {
        println!("No stored secrets.");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header([
        "NAME",
        "CREATED",
        "UPDATED",
        "EXPIRES (app's credential lifetime)",
    ]);
    for (s, used) in secrets.iter().zip(&lifetimes) {
        let expires: Vec<String> = used
            .iter()
            .filter_map(|(c, e)| {
                e.as_ref().map(|e| {
                    format!(
                        "{} ({c}: {} days, {})",
                        date(e.expires_ms),
                        e.max_days,
                        match e.state {
                            roster_catalog::ExpiryState::Fine => format!("{} left", e.days_left),
                            roster_catalog::ExpiryState::Soon =>
                                format!("ROTATE: {} left", e.days_left),
                            roster_catalog::ExpiryState::Expired => "EXPIRED".to_string(),
                        }
                    )
                })
            })
            .collect();
        let expires = if expires.is_empty() {
            "-".to_string()
        } else {
            expires.join("; ")
        };
        table.add_row([
            s.name.clone(),
            date(s.created_ms),
            date(s.updated_ms),
            expires,
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Which stored secret each connection uses and the app record it is
/// bound to: `(secret, connection, app)`. Read from the config's
/// `[connections.*]` tables alone (`app`, `secret = { stored = ... }`),
/// because secrets are managed before the rest of the config (policy,
/// source) is in place; empty when even that cannot be read. The app is
/// `None` when the catalog has no record for it.
fn secret_users(config: &std::path::Path) -> Vec<(String, String, Option<roster_catalog::App>)> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Vec::new();
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let base = config.parent().unwrap_or(std::path::Path::new("."));
    let catalog_dir = doc
        .get("catalog_dir")
        .and_then(|v| v.as_str())
        .map(|d| base.join(d));
    let catalog = roster_catalog::Catalog::load(catalog_dir.as_deref()).ok();
    let Some(connections) = doc.get("connections").and_then(|v| v.as_table()) else {
        return Vec::new();
    };
    connections
        .iter()
        .filter_map(|(id, c)| {
            let stored = c.get("secret")?.get("stored")?.as_str()?;
            let app = c
                .get("app")
                .and_then(|a| a.as_str())
                .and_then(|a| catalog.as_ref()?.get(a).cloned());
            Some((stored.to_string(), id.clone(), app))
        })
        .collect()
}

/// `roster secret rotate`. Crash-safe in every order: the key file always
/// holds every key some stored value is sealed with.
///
/// 1. Key file: a fresh key is added in front of the old ones and the file
///    replaced atomically (old values still open, new seals use the new
///    key). With the variable: its first key is the new one.
/// 2. Every stored value is opened and re-sealed under the new key, all in
///    one transaction that writes a value only if it is still the one read.
/// 3. Every stored value is opened again with the new key *alone*; only
///    then is the key file rewritten with just the new key (or, with the
///    variable, the operator told which keys to drop).
///
/// A crash between steps leaves a key file with both keys: values open,
/// and running the command again finishes the job under yet another key.
async fn rotate(config: &std::path::Path) -> Result<()> {
    let storage = load_storage(config)?;
    let source = if std::env::var_os(MASTER_KEY_ENV).is_some_and(|v| !v.is_empty()) {
        KeySource::Env
    } else {
        KeySource::File(storage.data_dir.join(MASTER_KEY_FILE))
    };
    let mut keyring = Keyring::load_existing(&storage.data_dir)
        .context("cannot load the master key to rotate")?;
    let store = open_store(&storage.database).await?;
    let result = rotate_with(&store, &source, &mut keyring).await;
    store.close().await;
    let (count, retired) = result?;
    let new_id = keyring.current_id();
    println!("Re-sealed {count} secret(s) under the new master key {new_id}.");
    match &source {
        KeySource::File(path) => {
            if retired.is_empty() {
                println!("{} holds only key {new_id}.", path.display());
            } else {
                println!(
                    "Retired key(s) {}: removed from {}.",
                    retired.join(", "),
                    path.display()
                );
            }
            println!(
                "Back up the new key file now. Backups of the database taken before this \
                 rotation need the retired key to open their secrets."
            );
        }
        KeySource::Env => {
            if retired.is_empty() {
                println!("{MASTER_KEY_ENV} names only key {new_id}; nothing to retire.");
            } else {
                println!(
                    "No stored secret uses key(s) {} any more: remove them from {MASTER_KEY_ENV} \
                     on every roster process (keep only {new_id}) and restart them.",
                    retired.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// The work of [`rotate`]: returns how many values were re-sealed and the
/// retired key ids. `keyring` ends holding only the new key.
async fn rotate_with(
    store: &Store,
    source: &KeySource,
    keyring: &mut Keyring,
) -> Result<(usize, Vec<String>)> {
    let stored = store.sealed_secrets().await?;
    // Every value must open before anything changes: one sealed with a key
    // the ring lacks (or altered) stops the rotation with the key file and
    // the database untouched.
    for (name, sealed) in &stored {
        keyring
            .open(sealed, name)
            .with_context(|| format!("cannot open the stored secret {name:?}; nothing changed"))?;
    }
    match source {
        KeySource::File(path) => {
            keyring.rotate_generate()?;
            roster_secrets::write_key_file(path, keyring)
                .context("cannot write the new master key")?;
        }
        KeySource::Env => {
            let current = keyring.current_id().to_string();
            let already = stored.iter().all(|(_, sealed)| {
                roster_secrets::sealed_key_id(sealed).is_ok_and(|id| id == current)
            });
            if keyring.key_ids().count() == 1 && already {
                bail!(
                    "every stored secret is already sealed with key {current}, the only key in \
                     {MASTER_KEY_ENV}. To rotate, put a new key first: \
                     {MASTER_KEY_ENV}=\"new:$(openssl rand -base64 32),<the current value>\", \
                     then run this again"
                );
            }
        }
    }
    let mut changes = Vec::with_capacity(stored.len());
    for (name, sealed) in &stored {
        let resealed = keyring
            .reseal(sealed, name)
            .with_context(|| format!("cannot re-seal the secret {name:?}; nothing changed"))?;
        changes.push((name.clone(), sealed.clone(), resealed));
    }
    store.reseal_secrets(&changes).await?;
    // Every value must open with the new key alone before any key goes.
    let mut retired = keyring.retire_old_keys();
    for (name, sealed) in store.sealed_secrets().await? {
        if let Err(e) = keyring.open(&sealed, &name) {
            // Keep the old keys in the file: something still needs them.
            bail!(
                "after re-sealing, the secret {name:?} does not open with the new key ({e}); \
                 the old keys were kept"
            );
        }
    }
    if let KeySource::File(path) = source {
        roster_secrets::write_key_file(path, keyring)
            .context("cannot retire the old master key")?;
    }
    retired.sort();
    store
        .append_audit(AuditEvent {
            at_ms: now_ms(),
            actor: actor(),
            kind: roster_store::AuditKind::SecretRotated.as_str().into(),
            subject: keyring.current_id().to_string(),
            data: serde_json::json!({
                "key_id": keyring.current_id(),
                "retired": retired,
                "resealed": changes.len(),
            }),
        })
        .await?;
    Ok((changes.len(), retired))
}

async fn rm(name: &str, config: &std::path::Path) -> Result<()> {
    let storage = load_storage(config)?;
    let store = open_store(&storage.database).await?;
    if !store.delete_secret(name).await? {
        store.close().await;
        bail!("no stored secret named {name:?} (see `roster secret list`)");
    }
    store
        .append_audit(AuditEvent {
            at_ms: now_ms(),
            actor: actor(),
            kind: roster_store::AuditKind::SecretRemoved.as_str().into(),
            subject: name.to_string(),
            data: serde_json::json!({}),
        })
        .await?;
    store.close().await;
    println!("Removed secret {name}.");
    Ok(())
}

fn load_storage(config: &std::path::Path) -> Result<roster_engine::config::StorageConfig> {
    Config::load_storage(config).with_context(|| {
        format!(
            "cannot use config {} (see README \"Running roster for real\")",
            config.display()
        )
    })
}

async fn open_store(database: &str) -> Result<Store> {
    Store::open(database)
        .await
        .context("cannot open roster's database")
}

/// The value from the terminal (no echo) or from piped standard input
/// (one trailing newline dropped, so `echo token | roster secret set`
/// stores `token`).
fn read_value(name: &str) -> Result<Zeroizing<String>> {
    let mut value = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!("Value for {name} (input hidden): "))
                .context("cannot read the value from the terminal")?,
        )
    } else {
        let mut buf = Zeroizing::new(String::new());
        std::io::stdin()
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_string(&mut buf)
            .context("cannot read the value from standard input (is it UTF-8 text?)")?;
        buf
    };
    if value.len() > MAX_VALUE_BYTES {
        bail!("the value is longer than {MAX_VALUE_BYTES} bytes; nothing stored");
    }
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("the value is empty; nothing stored");
    }
    Ok(value)
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// Who stores or removes a secret: the operating-system user this runs as
/// (its real user ID, not `$USER`). Secrets are managed before (and
/// without) a full config, so `[operators]` mapping does not apply here.
fn actor() -> String {
    crate::principal::os_user()
        .map(|u| roster_core::Principal::new(roster_core::PrincipalKind::User, u).actor())
        .unwrap_or_else(|_| "user:unknown".into())
}

fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
