//! Sign-in to the web UI through OpenID Connect, end to end against the
//! Okta simulator over loopback: the authorization code flow with PKCE,
//! the sign-in form, the code exchange, ID token verification, the role
//! map, and every way a sign-in must be refused.

mod common;

use std::collections::BTreeMap;

use roster_core::principal::PrincipalKind;
use roster_core::{EmploymentStatus, Policy, Principal, Scope};
use roster_engine::oidc::{OidcCallback, OidcProvider, OidcSettings, RawWebOidc, Role};
use roster_engine::{Engine, EngineError, Roster};
use roster_sim::okta::{OktaOidcApp, OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use roster_store::Store;
use serde_json::json;

const CLIENT_ID: &str = "0oa1roster2ui";
const SECRET: &str = "s3cr3t-client-secret";
const REDIRECT: &str = "http://127.0.0.1:9/ui/auth/oidc/callback";
const PASSWORD: &str = "correct horse";

struct World {
    okta: RunningOkta,
    roster: Roster,
    provider: OidcProvider,
    _dir: tempfile::TempDir,
}

async fn world_with(roles: &[(&str, &[&str])], server: &str) -> World {
    let okta = OktaSim::start(
        OktaSimConfig::new("api-token")
            .with_user(OktaUser::new("alice@acme.example", "Alice", "Admin"))
            .with_user(OktaUser::new("bob@acme.example", "Bob", "Nobody"))
            .with_user(OktaUser::new("carol@acme.example", "Carol", "Leaver"))
            .with_user(OktaUser::new("dave@acme.example", "Dave", "Approver"))
            .with_group(
                "roster-admins",
                &["alice@acme.example", "carol@acme.example"],
            )
            .with_group("Everyone", &["alice@acme.example", "bob@acme.example"])
            .with_group("finance", &["dave@acme.example"])
            .with_password("alice@acme.example", PASSWORD)
            .with_password("bob@acme.example", PASSWORD)
            .with_password("carol@acme.example", PASSWORD)
            .with_password("dave@acme.example", PASSWORD)
            .with_oidc_app(OktaOidcApp::new(CLIENT_ID, SECRET, &[REDIRECT])),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let engine = Engine::new(store, Policy::parse("p.toml", "").unwrap());
    let roster = Roster::new(engine);
    // Carol has left according to HR, though Okta still has her ACTIVE.
    roster
        .import_people(
            &Principal::service(),
            &[
                common::person(
                    "E1",
                    "alice@acme.example",
                    "Alice",
                    EmploymentStatus::Active,
                ),
                common::person(
                    "E3",
                    "carol@acme.example",
                    "Carol",
                    EmploymentStatus::Terminated,
                ),
            ],
            "test",
        )
        .await
        .unwrap();
    let issuer = match server {
        "org" => okta.url(),
        _ => format!("{}/oauth2/default", okta.url()),
    };
    let raw = RawWebOidc {
        issuer,
        client_id: CLIENT_ID.into(),
        client_secret: roster_engine::config::SecretRef::Env {
            env: "UNUSED".into(),
        },
        redirect_url: REDIRECT.into(),
        groups_claim: None,
        scopes: None,
        fresh_max_age_secs: None,
        allow_private_network: false,
    };
    let roles: BTreeMap<String, Vec<String>> = roles
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    let settings = OidcSettings::new(&raw, &roles, SECRET.into(), false).unwrap();
    let provider = OidcProvider::discover(settings).await.unwrap();
    World {
        okta,
        roster,
        provider,
        _dir: dir,
    }
}

async fn world() -> World {
    world_with(
        &[
            ("admin", &["group:roster-admins"]),
            ("approver", &["group:finance"]),
        ],
        "default",
    )
    .await
}

/// A browser without cookies beyond the simulator's `sid`.
struct Browser {
    http: reqwest::Client,
    sid: Option<String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            sid: None,
        }
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        let mut r = self.http.get(url);
        if let Some(sid) = &self.sid {
            r = r.header("cookie", format!("sid={sid}"));
        }
        r.send().await.unwrap()
    }

    /// Follows the authorize URL: signs in on the form when one is shown.
    /// Returns the callback's query.
    async fn authorize(&mut self, url: &str, okta: &str, login: &str) -> OidcCallback {
        let r = self.get(url).await;
        let location = if r.status() == 200 {
            let html = r.text().await.unwrap();
            let tx = html
                .split("name=\"tx\" value=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("a sign-in form")
                .to_string();
            let r = self
                .http
                .post(format!("{okta}/login/login.htm"))
                .form(&[
                    ("tx", tx.as_str()),
                    ("username", login),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
            if let Some(c) = r.headers().get("set-cookie") {
                let c = c.to_str().unwrap();
                self.sid = Some(c.split(';').next().unwrap()["sid=".len()..].to_string());
            }
            r.headers()["location"].to_str().unwrap().to_string()
        } else {
            assert_eq!(r.status(), 302);
            r.headers()["location"].to_str().unwrap().to_string()
        };
        assert!(location.starts_with(REDIRECT), "{location}");
        callback_of(&location)
    }
}

fn callback_of(location: &str) -> OidcCallback {
    let url = url::Url::parse(location).unwrap();
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    OidcCallback {
        state: q.get("state").cloned(),
        code: q.get("code").cloned(),
        error: q.get("error").cloned(),
        error_description: q.get("error_description").cloned(),
    }
}

async fn sign_in(
    w: &World,
    login: &str,
) -> Result<roster_engine::app::oidc_signin::OidcSignedIn, EngineError> {
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let callback = Browser::new()
        .authorize(&start.authorize_url, &w.okta.url(), login)
        .await;
    w.roster.oidc_complete(&w.provider, &callback).await
}

fn refused(r: Result<impl std::fmt::Debug, EngineError>) -> String {
    let e = r.expect_err("the sign-in must be refused");
    format!("{} {e}", e.code())
}

async fn audit_kinds(w: &World) -> Vec<String> {
    w.roster
        .store()
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn the_full_code_and_pkce_flow_signs_a_mapped_person_in_with_their_groups_and_roles() {
    for server in ["default", "org"] {
        let w = world_with(&[("admin", &["group:roster-admins"])], server).await;
        let start = w
            .roster
            .oidc_begin(&w.provider, false, "/ui/plans")
            .unwrap();
        let url = url::Url::parse(&start.authorize_url).unwrap();
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["state"], start.state);
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        assert!(q.contains_key("nonce") && !q.contains_key("prompt"));
        assert_eq!(w.provider.pending_count(), 1);

        let callback = Browser::new()
            .authorize(&start.authorize_url, &w.okta.url(), "alice@acme.example")
            .await;
        let who = w
            .roster
            .oidc_complete(&w.provider, &callback)
            .await
            .unwrap();
        assert_eq!(who.principal.actor(), "user:alice@acme.example", "{server}");
        assert_eq!(who.principal.kind, PrincipalKind::User);
        assert!(who.principal.groups.contains("roster-admins"));
        assert!(who.principal.groups.contains("Everyone"));
        assert_eq!(who.roles, [Role::Admin].into());
        assert_eq!(who.scopes, Scope::ALL.into());
        assert_eq!(who.name.as_deref(), Some("Alice Admin"));
        assert_eq!(who.return_to, "/ui/plans");
        assert!(!who.fresh);
        assert_eq!(w.provider.pending_count(), 0);
    }
}

#[tokio::test]
async fn groups_and_emails_map_to_roles() {
    let w = world_with(
        &[
            ("admin", &["group:roster-admins"]),
            ("approver", &["group:finance"]),
            ("viewer", &["bob@acme.example"]),
        ],
        "default",
    )
    .await;
    let dave = sign_in(&w, "dave@acme.example").await.unwrap();
    assert_eq!(dave.roles, [Role::Approver].into());
    assert_eq!(dave.scopes, [Scope::Read, Scope::Approve].into());
    let bob = sign_in(&w, "bob@acme.example").await.unwrap();
    assert_eq!(bob.roles, [Role::Viewer].into());
    assert_eq!(bob.scopes, [Scope::Read].into());
}

#[tokio::test]
async fn a_person_whose_groups_map_to_no_role_gets_no_access() {
    let w = world().await;
    let e = refused(sign_in(&w, "bob@acme.example").await);
    assert!(e.starts_with("ENG-0008"), "{e}");
    assert!(
        e.contains("holds no role") && e.contains("Everyone") && e.contains("[web.roles]"),
        "{e}"
    );
    assert!(
        audit_kinds(&w)
            .await
            .contains(&"web.sign_in_refused".to_string())
    );
    // With no [web.roles] at all, nobody gets in, not even an admin group.
    let w = world_with(&[], "default").await;
    let e = refused(sign_in(&w, "alice@acme.example").await);
    assert!(e.contains("holds no role"), "{e}");
}

#[tokio::test]
async fn a_leaver_cannot_sign_in_though_the_idp_still_lets_them() {
    let w = world().await;
    // Okta still has Carol ACTIVE in an admin group…
    assert_eq!(w.okta.user("carol@acme.example").unwrap().status, "ACTIVE");
    let e = refused(sign_in(&w, "carol@acme.example").await);
    // …but HR says she has left.
    assert!(e.starts_with("ENG-0008") && e.contains("has left"), "{e}");
}

#[tokio::test]
async fn a_wrong_or_reused_state_is_refused() {
    let w = world().await;
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let mut callback = Browser::new()
        .authorize(&start.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    let good_state = callback.state.clone();
    callback.state = Some("forged-state".into());
    let e = refused(w.roster.oidc_complete(&w.provider, &callback).await);
    assert!(e.starts_with("ENG-0010") && e.contains("OIDC-0003"), "{e}");
    callback.state = None;
    assert!(refused(w.roster.oidc_complete(&w.provider, &callback).await).contains("OIDC-0003"));
    // The real state still works once, then never again.
    callback.state = good_state;
    w.roster
        .oidc_complete(&w.provider, &callback)
        .await
        .unwrap();
    let e = refused(w.roster.oidc_complete(&w.provider, &callback).await);
    assert!(e.contains("OIDC-0003"), "{e}");
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_the_idp() {
    let w = world().await;
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let callback = Browser::new()
        .authorize(&start.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    w.roster
        .oidc_complete(&w.provider, &callback)
        .await
        .unwrap();
    // The same code under a new sign-in's state: the code is spent.
    let again = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let replay = OidcCallback {
        state: Some(again.state),
        ..callback
    };
    let e = refused(w.roster.oidc_complete(&w.provider, &replay).await);
    assert!(
        e.contains("OIDC-0005") && e.contains("invalid_grant"),
        "{e}"
    );
}

#[tokio::test]
async fn a_code_stolen_into_another_sign_in_fails_pkce() {
    let w = world().await;
    // The victim's sign-in produces a code; the attacker injects it into
    // their own sign-in (another state, another PKCE verifier).
    let victim = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let stolen = Browser::new()
        .authorize(&victim.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    let attacker = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let injected = OidcCallback {
        state: Some(attacker.state),
        ..stolen
    };
    let e = refused(w.roster.oidc_complete(&w.provider, &injected).await);
    assert!(
        e.contains("OIDC-0005") && e.contains("PKCE verification failed"),
        "{e}"
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let w = world().await;
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let callback = Browser::new()
        .authorize(&start.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    w.okta.expire_oidc_codes();
    let e = refused(w.roster.oidc_complete(&w.provider, &callback).await);
    assert!(
        e.contains("OIDC-0005") && e.contains("invalid or has expired"),
        "{e}"
    );
}

/// Signs Alice in with the next ID token tampered as given.
async fn tampered(w: &World, claims: serde_json::Value, key: Option<&str>) -> String {
    w.okta.tamper_next_id_token(claims, key);
    refused(sign_in(w, "alice@acme.example").await)
}

#[tokio::test]
async fn an_id_token_that_is_not_exactly_right_is_refused() {
    let w = world().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let e = tampered(&w, json!({"nonce": "someone-elses-nonce"}), None).await;
    assert!(e.contains("OIDC-0006") && e.contains("nonce"), "{e}");
    let e = tampered(&w, json!({}), Some(roster_sim::okta::TEST_OAUTH_KEY)).await;
    assert!(e.contains("OIDC-0006") && e.contains("signature"), "{e}");
    let e = tampered(&w, json!({"aud": "0oaSOMEONE_ELSE"}), None).await;
    assert!(
        e.contains("OIDC-0006") && e.contains("another client"),
        "{e}"
    );
    let e = tampered(&w, json!({"iss": "https://evil.example"}), None).await;
    assert!(
        e.contains("OIDC-0006") && e.contains("another issuer"),
        "{e}"
    );
    let e = tampered(&w, json!({"iat": now - 7200, "exp": now - 3600}), None).await;
    assert!(e.contains("OIDC-0006") && e.contains("expired"), "{e}");
    let e = tampered(&w, json!({"email": null}), None).await;
    assert!(e.contains("OIDC-0007") && e.contains("email"), "{e}");
    // None of these let anyone in, nor was taken for a verified person.
    assert!(
        !audit_kinds(&w)
            .await
            .contains(&"web.sign_in_refused".to_string())
    );
    // The untampered token still works.
    sign_in(&w, "alice@acme.example").await.unwrap();
}

#[tokio::test]
async fn a_fresh_sign_in_makes_the_idp_ask_again_and_proves_it() {
    let w = world().await;
    let mut browser = Browser::new();
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let cb = browser
        .authorize(&start.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    w.roster.oidc_complete(&w.provider, &cb).await.unwrap();
    assert!(browser.sid.is_some());
    // With the IdP session, an ordinary sign-in needs no form…
    let again = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let r = browser.get(&again.authorize_url).await;
    assert_eq!(r.status(), 302, "an IdP session signs in without the form");
    // …but a fresh one asks for the password again.
    let fresh = w
        .roster
        .oidc_begin(&w.provider, true, "/ui/plans/1")
        .unwrap();
    let q: BTreeMap<String, String> = url::Url::parse(&fresh.authorize_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["prompt"], "login");
    assert_eq!(q["max_age"], "300");
    let r = browser.get(&fresh.authorize_url).await;
    assert_eq!(r.status(), 200, "prompt=login shows the form");
    let cb = browser
        .authorize(&fresh.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    let who = w.roster.oidc_complete(&w.provider, &cb).await.unwrap();
    assert!(who.fresh);
    assert_eq!(who.return_to, "/ui/plans/1");
    // A token whose auth_time is older than the request is not fresh, and
    // an ordinary sign-in older than max_age is refused too.
    let normal = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    w.okta
        .tamper_next_id_token(json!({"auth_time": 1_000_000}), None);
    let cb = browser
        .authorize(&normal.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    let e = refused(w.roster.oidc_complete(&w.provider, &cb).await);
    assert!(e.contains("OIDC-0008"), "{e}");
    let fresh = w.roster.oidc_begin(&w.provider, true, "/ui/").unwrap();
    w.okta
        .tamper_next_id_token(json!({"auth_time": 1_000_000}), None);
    let cb = browser
        .authorize(&fresh.authorize_url, &w.okta.url(), "alice@acme.example")
        .await;
    let e = refused(w.roster.oidc_complete(&w.provider, &cb).await);
    assert!(e.contains("OIDC-0008"), "{e}");
}

#[tokio::test]
async fn an_idp_refusal_at_the_callback_is_reported_and_spends_the_state() {
    let w = world().await;
    let start = w.roster.oidc_begin(&w.provider, false, "/ui/").unwrap();
    let cb = OidcCallback {
        state: Some(start.state.clone()),
        code: None,
        error: Some("access_denied".into()),
        error_description: Some("User is not assigned to the client application.".into()),
    };
    let e = refused(w.roster.oidc_complete(&w.provider, &cb).await);
    assert!(e.contains("OIDC-0004") && e.contains("not assigned"), "{e}");
    assert_eq!(w.provider.pending_count(), 0);
}

#[tokio::test]
async fn discovery_of_a_wrong_issuer_fails_clearly() {
    let w = world().await;
    let raw = RawWebOidc {
        issuer: format!("{}/oauth2/nosuchserver", w.okta.url()),
        client_id: CLIENT_ID.into(),
        client_secret: roster_engine::config::SecretRef::Env { env: "X".into() },
        redirect_url: REDIRECT.into(),
        groups_claim: None,
        scopes: None,
        fresh_max_age_secs: None,
        allow_private_network: false,
    };
    let settings = OidcSettings::new(&raw, &BTreeMap::new(), SECRET.into(), false).unwrap();
    let e = OidcProvider::discover(settings).await.unwrap_err();
    assert_eq!(e.code(), "OIDC-0002", "{e}");
    assert!(e.to_string().contains("nosuchserver"), "{e}");
}

#[tokio::test]
async fn a_sign_in_opens_a_web_session_that_a_leaving_person_loses() {
    let w = world().await;
    let limits = roster_engine::SessionLimits::default();
    let start = w
        .roster
        .oidc_begin(&w.provider, false, "/ui/tasks")
        .unwrap();
    let cb = Browser::new()
        .authorize(&start.authorize_url, &w.okta.url(), "dave@acme.example")
        .await;
    let (cookie, session, signed) = w
        .roster
        .oidc_sign_in(&w.provider, &cb, &limits, None)
        .await
        .unwrap();
    assert_eq!(signed.return_to, "/ui/tasks");
    assert_eq!(session.principal.actor(), "user:dave@acme.example");
    assert!(session.allows(Scope::Approve) && !session.allows(Scope::Apply));
    assert!(matches!(session.via, roster_engine::SignInVia::Oidc { .. }));
    assert!(w.roster.web_session(&cookie, &limits).await.is_ok());
    // A fresh sign-in replaces the session it came from.
    let fresh = w.roster.oidc_begin(&w.provider, true, "/ui/").unwrap();
    let cb = Browser::new()
        .authorize(&fresh.authorize_url, &w.okta.url(), "dave@acme.example")
        .await;
    let (cookie2, session2, _) = w
        .roster
        .oidc_sign_in(&w.provider, &cb, &limits, Some(&cookie))
        .await
        .unwrap();
    assert!(session2.fresh);
    assert!(w.roster.web_session(&cookie, &limits).await.is_err());
    // HR now says Dave left: his session ends and he cannot sign in again.
    w.roster
        .import_people(
            &Principal::service(),
            &[
                common::person(
                    "E1",
                    "alice@acme.example",
                    "Alice",
                    EmploymentStatus::Active,
                ),
                common::person(
                    "E3",
                    "carol@acme.example",
                    "Carol",
                    EmploymentStatus::Terminated,
                ),
                common::person(
                    "E4",
                    "dave@acme.example",
                    "Dave",
                    EmploymentStatus::Terminated,
                ),
            ],
            "test",
        )
        .await
        .unwrap();
    assert!(w.roster.web_session(&cookie2, &limits).await.is_err());
    let e = refused(sign_in(&w, "dave@acme.example").await);
    assert!(e.contains("has left"), "{e}");
}
