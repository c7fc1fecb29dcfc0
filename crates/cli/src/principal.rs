//! Who runs this command: the authenticated principal the application
//! layer acts for.
//!
//! At a shell the authentication is the operating system's: the process's
//! real user ID, looked up in the user database (never `$USER`, which
//! anyone can set). The config's `[operators]` maps OS users to principals
//! (name and groups); with no `[operators]` the OS user is the principal
//! `user:<name>`, and with some an unlisted OS user is refused.

use anyhow::{Result, bail};
use roster_core::{Principal, PrincipalKind};
use roster_engine::config::Config;

/// The name of the operating-system user this process runs as.
pub fn os_user() -> Result<String> {
    let uid = nix::unistd::Uid::current();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        Ok(None) => Ok(format!("uid{}", uid.as_raw())),
        Err(e) => bail!("cannot look up the operating-system user {uid}: {e}"),
    }
}

/// The principal this command acts for under `config`.
pub fn current(config: &Config) -> Result<Principal> {
    principal_for(config, &os_user()?)
}

/// The principal the OS user `os` is under `config` (see the module docs).
pub fn principal_for(config: &Config, os: &str) -> Result<Principal> {
    if config.operators.is_empty() {
        return Ok(Principal::new(PrincipalKind::User, os));
    }
    match config.operators.get(os) {
        Some(op) => Ok(Principal::new(
            PrincipalKind::User,
            op.name.clone().unwrap_or_else(|| os.into()),
        )
        .with_groups(op.groups.iter().cloned())),
        None => bail!(
            "the operating-system user {os:?} is not an operator of this roster: add \
             [operators.{os}] to {} (listed: {})",
            config.path.display(),
            config
                .operators
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Refuses a `--by` that names someone else: the principal is who runs
/// the command, and a typed name cannot change that.
pub fn check_by(by: Option<&str>, principal: &Principal) -> Result<()> {
    if let Some(by) = by
        && by != principal.name
        && by != principal.actor()
    {
        bail!(
            "--by {by:?} is not who runs this command ({principal}); roster records the \
             authenticated operator. Run it as that user, or map OS users in [operators]"
        );
    }
    Ok(())
}
