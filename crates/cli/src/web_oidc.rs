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

/// `roster demo`: sign-in to its UI through the simulated Okta. Registers
/// an OIDC app for `ui_base`'s callback in the running simulator, gives
/// `admin_email` (an active person of the sample company) a generated Okta
/// password, maps that address to the admin role, and returns the relying
/// party with the password to print.
pub(crate) async fn demo_provider(
    okta: &roster_sim::okta::RunningOkta,
    ui_base: &str,
    admin_email: &str,
) -> Result<(Arc<OidcProvider>, String)> {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect()
    };
    let client_secret = hex(24);
    let password = hex(9);
    let redirect = format!("{ui_base}{}", roster_web::oidc::CALLBACK_PATH);
    if !okta.add_oidc_app(roster_sim::okta::OktaOidcApp::new(
        "0oa-roster-demo-ui",
        &client_secret,
        &[&redirect],
    )) {
        anyhow::bail!("the Okta simulator could not make its signing key");
    }
    okta.set_password(admin_email, &password);
    let raw = roster_engine::oidc::RawWebOidc {
        issuer: format!("{}/oauth2/default", okta.url()),
        client_id: "0oa-roster-demo-ui".into(),
        client_secret: SecretRef::Env {
            env: "UNUSED".into(),
        },
        redirect_url: redirect,
        groups_claim: None,
        scopes: None,
        fresh_max_age_secs: None,
        allow_private_network: false,
    };
    let roles = [("admin".to_string(), vec![admin_email.to_string()])].into();
    let settings = OidcSettings::new(&raw, &roles, client_secret, false)?;
    Ok((Arc::new(OidcProvider::discover(settings).await?), password))
}
