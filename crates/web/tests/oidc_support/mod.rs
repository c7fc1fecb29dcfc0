//! The web UI with sign-in through the Okta simulator's OpenID Connect
//! provider: a second listener over the same roster as `support::Ui`,
//! whose `WebOptions` carry the relying party.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use roster_engine::Roster;
use roster_engine::oidc::{OidcProvider, OidcSettings, RawWebOidc};
use roster_sim::okta::{OktaOidcApp, OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_web::WebOptions;
use tokio::sync::oneshot;

pub const CLIENT_ID: &str = "0oa1roster2ui";
pub const CLIENT_SECRET: &str = "oidc-client-secret";
pub const IDP_PASSWORD: &str = "okta password 1";

pub struct OidcUi {
    pub base: String,
    pub okta: RunningOkta,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for OidcUi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Okta users (login, groups); admins are `roster-admins`, approvers
/// `finance-approvers`; everyone else maps to no role.
pub async fn start(roster: Arc<Roster>, users: &[(&str, &[&str])]) -> OidcUi {
    start_with(roster, users, roster_engine::SessionLimits::default()).await
}

/// [`start`] with these session limits.
pub async fn start_with(
    roster: Arc<Roster>,
    users: &[(&str, &[&str])],
    limits: roster_engine::SessionLimits,
) -> OidcUi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let redirect = format!("{base}{}", roster_web::oidc::CALLBACK_PATH);
    let mut config = OktaSimConfig::new("api-token").with_oidc_app(OktaOidcApp::new(
        CLIENT_ID,
        CLIENT_SECRET,
        &[&redirect],
    ));
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (login, gs) in users {
        let first = login.split('@').next().unwrap();
        config = config
            .with_user(OktaUser::new(login, first, "Okta"))
            .with_password(login, IDP_PASSWORD);
        for g in *gs {
            groups.entry(g).or_default().push(login);
        }
    }
    for (g, members) in &groups {
        config = config.with_group(g, members);
    }
    let okta = OktaSim::start(config).await.unwrap();
    let raw = RawWebOidc {
        issuer: format!("{}/oauth2/default", okta.url()),
        client_id: CLIENT_ID.into(),
        client_secret: roster_engine::config::SecretRef::Env {
            env: "UNUSED".into(),
        },
        redirect_url: redirect,
        groups_claim: None,
        scopes: None,
        fresh_max_age_secs: None,
        allow_private_network: false,
    };
    let roles: BTreeMap<String, Vec<String>> = [
        ("admin".to_string(), vec!["group:roster-admins".to_string()]),
        (
            "approver".to_string(),
            vec!["group:finance-approvers".to_string()],
        ),
    ]
    .into();
    let settings = OidcSettings::new(&raw, &roles, CLIENT_SECRET.into(), false).unwrap();
    let provider = Arc::new(OidcProvider::discover(settings).await.unwrap());
    let options = WebOptions {
        limits,
        ..WebOptions::default()
    }
    .with_oidc(provider);
    let router = roster_web::web_router(roster, options);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    OidcUi {
        base,
        okta,
        stop: Some(tx),
    }
}
