//! `[web.oidc]` for `roster serve`: the relying party the web UI signs
//! people in with (see `roster_engine::oidc`), built once at start. The
//! client secret is resolved like every config secret (`{ env }`,
//! `{ file }` relative to the config, or `{ stored }` sealed in roster's
//! database); the issuer's discovery document is read now, so a wrong
//! issuer stops `roster serve` with its reason instead of failing the
//! first person who signs in.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use roster_engine::config::{Config, SecretRef};
use roster_engine::oidc::{OidcProvider, OidcSettings, resolve_secret};
use roster_secrets::{ExposeSecret, Keyring};
use roster_store::Store;

/// The relying party `[web.oidc]` describes, or `None` when it is absent.
pub(crate) async fn provider(config: &Config, store: &Store) -> Result<Option<Arc<OidcProvider>>> {
    let Some(raw) = &config.web.oidc else {
        if !config.web.roles.is_empty() {
            eprintln!(
                "roster serve: [web.roles] is set but [web.oidc] is not: the role map only applies to sign-in with the IdP"
            );
        }
        return Ok(None);
    };
    // A stored secret is opened before the (synchronous) resolution.
    let stored = match &raw.client_secret {
        SecretRef::Stored { stored } => {
            let keyring = Keyring::load_existing(&config.data_dir)
                .context("web.oidc.client_secret: cannot open stored secrets")?;
            match store.secret(stored).await? {
                Some(sealed) => Some(
                    keyring
                        .open_string(&sealed, stored)
                        .context("web.oidc.client_secret")?
                        .expose_secret()
                        .to_string(),
                ),
                None => None,
            }
        }
        _ => None,
    };
    let base = config.path.parent().unwrap_or(Path::new("."));
    let secret = resolve_secret(
        &raw.client_secret,
        base,
        &|name| std::env::var(name).ok(),
        &|_| stored.clone(),
    )
    .with_context(|| format!("{}", config.path.display()))?;
    let settings = OidcSettings::new(raw, &config.web.roles, secret, config.allow_private_network)
        .with_context(|| format!("{}", config.path.display()))?;
    if settings.roles.is_empty() {
        eprintln!(
            "roster serve: [web.roles] maps no IdP group to a role, so nobody can sign in with the IdP (no access by default)"
        );
    }
    let issuer = settings.issuer.clone();
    let provider = OidcProvider::discover(settings).await?;
    eprintln!(
        "roster serve: web UI sign-in with the IdP at {issuer} (redirect URL {})",
        raw.redirect_url
    );
    Ok(Some(Arc::new(provider)))
}
