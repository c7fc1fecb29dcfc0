//! The Okta simulator's OpenID Connect provider on the wire: discovery,
//! the authorize endpoint's refusals, the sign-in form, and the token
//! endpoint's answers to a good exchange and to every misuse (Okta's
//! error shapes: `invalid_grant`, `invalid_client`, `invalid_request`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_sim::okta::{OktaOidcApp, OktaSim, OktaSimConfig, OktaUser, RunningOkta};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

async fn okta() -> RunningOkta {
    OktaSim::start(
        OktaSimConfig::new("tok")
            .with_user(OktaUser::new("alice@acme.example", "Alice", "A"))
            .with_user(OktaUser::new("gone@acme.example", "Gone", "G").with_status("DEPROVISIONED"))
            .with_group("roster-admins", &["alice@acme.example"])
            .with_password("alice@acme.example", "pw")
            .with_password("gone@acme.example", "pw")
            .with_oidc_app(OktaOidcApp::new("0oa1", "secret", &[REDIRECT])),
    )
    .await
    .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn authorize_url(base: &str, extra: &[(&str, &str)]) -> String {
    let mut q: BTreeMap<&str, String> = [
        ("client_id", "0oa1".to_string()),
        ("response_type", "code".into()),
        ("scope", "openid email profile groups".into()),
        ("redirect_uri", REDIRECT.into()),
        ("state", "st4te".into()),
        ("nonce", "n0nce".into()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
    .into_iter()
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            q.remove(k);
        } else {
            q.insert(k, v.to_string());
        }
    }
    let mut url = url::Url::parse(&format!("{base}/oauth2/default/v1/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(q.iter());
    url.to_string()
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Signs in through the form; returns the redirect's query.
async fn sign_in(
    base: &str,
    login: &str,
    password: &str,
) -> Result<BTreeMap<String, String>, String> {
    let h = http();
    let form = h.get(authorize_url(base, &[])).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<label for=\"okta-signin-password\">"),
        "{html}"
    );
    let tx = html
        .split("name=\"tx\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = h
        .post(format!("{base}/login/login.htm"))
        .form(&[("tx", tx), ("username", login), ("password", password)])
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        return Err(r.text().await.unwrap());
    }
    Ok(query_of(r.headers()["location"].to_str().unwrap()))
}

async fn exchange(base: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut r = http()
        .post(format!("{base}/oauth2/default/v1/token"))
        .form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn discovery_and_keys_describe_both_authorization_servers() {
    let okta = okta().await;
    let base = okta.url();
    for (path, issuer) in [
        ("/.well-known/openid-configuration", base.clone()),
        (
            "/oauth2/default/.well-known/openid-configuration",
            format!("{base}/oauth2/default"),
        ),
    ] {
        let d: Value = http()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], issuer.as_str());
        assert_eq!(
            d["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        let keys: Value = http()
            .get(d["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(keys["keys"][0]["kty"], "RSA");
        assert_eq!(keys["keys"][0]["kid"].as_str(), okta.oidc_kid().as_deref());
    }
}

#[tokio::test]
async fn a_good_exchange_returns_an_id_token_once() {
    let okta = okta().await;
    let base = okta.url();
    let q = sign_in(&base, "alice@acme.example", "pw").await.unwrap();
    assert_eq!(q["state"], "st4te");
    let code = q["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = exchange(&base, &form, Some(("0oa1", "secret"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let id_token = body["id_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["email"], "alice@acme.example");
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["aud"], "0oa1");
    assert_eq!(claims["iss"], format!("{base}/oauth2/default"));
    assert_eq!(claims["groups"], serde_json::json!(["roster-admins"]));
    assert_eq!(claims["name"], "Alice A");
    // The same code again: spent.
    let (status, body) = exchange(&base, &form, Some(("0oa1", "secret"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_every_misuse_as_okta_does() {
    let okta = okta().await;
    let base = okta.url();
    let code =
        || async { sign_in(&base, "alice@acme.example", "pw").await.unwrap()["code"].clone() };

    let c = code().await;
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            (
                "code_verifier",
                "another-verifier-of-forty-three-characters-abcdefgh",
            ),
        ],
        Some(("0oa1", "secret")),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str(), b["error_description"].as_str()),
        (
            400,
            Some("invalid_grant"),
            Some("PKCE verification failed.")
        )
    );

    let c = code().await;
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        Some(("0oa1", "wrong")),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    // Client secret in the form (client_secret_post) works too.
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", "0oa1"),
            ("client_secret", "secret"),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let c = code().await;
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ],
        Some(("0oa1", "secret")),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );

    let c = code().await;
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
        Some(("0oa1", "secret")),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );

    let c = code().await;
    okta.expire_oidc_codes();
    let (s, b) = exchange(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        Some(("0oa1", "secret")),
    )
    .await;
    assert_eq!(
        (s, b["error_description"].as_str()),
        (
            400,
            Some("The authorization code is invalid or has expired.")
        )
    );
}

#[tokio::test]
async fn the_authorize_endpoint_requires_pkce_state_and_a_registered_client() {
    let okta = okta().await;
    let base = okta.url();
    let h = http();
    let refused = |extra: Vec<(&'static str, &'static str)>| {
        let url = authorize_url(&base, &extra);
        let h = h.clone();
        async move {
            let r = h.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            query_of(r.headers()["location"].to_str().unwrap())
        }
    };
    let q = refused(vec![("code_challenge", "")]).await;
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("PKCE"));
    assert_eq!(q["state"], "st4te");
    let q = refused(vec![("code_challenge_method", "plain")]).await;
    assert_eq!(q["error"], "invalid_request");
    let q = refused(vec![("state", "")]).await;
    assert!(q["error_description"].contains("state"));
    let q = refused(vec![("response_type", "token")]).await;
    assert_eq!(q["error"], "unsupported_response_type");
    let q = refused(vec![("scope", "email")]).await;
    assert_eq!(q["error"], "invalid_scope");
    let q = refused(vec![("prompt", "none")]).await;
    assert_eq!(q["error"], "login_required");
    // An unknown client or redirect URI gets a page, never a redirect.
    for extra in [
        [("client_id", "0oaNOPE")],
        [("redirect_uri", "http://evil.example/cb")],
    ] {
        let r = h.get(authorize_url(&base, &extra)).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn only_active_users_with_the_right_password_sign_in() {
    let okta = okta().await;
    let base = okta.url();
    let e = sign_in(&base, "alice@acme.example", "wrong")
        .await
        .unwrap_err();
    assert!(e.contains("Unable to sign in"), "{e}");
    let e = sign_in(&base, "gone@acme.example", "pw").await.unwrap_err();
    assert!(e.contains("Unable to sign in"), "{e}");
    assert!(sign_in(&base, "alice@acme.example", "pw").await.is_ok());
    // The pre-selected user needs no form.
    okta.oidc_preselect("alice@acme.example");
    let r = http().get(authorize_url(&base, &[])).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(query_of(r.headers()["location"].to_str().unwrap()).contains_key("code"));
}

#[tokio::test]
async fn an_app_added_to_a_running_org_signs_people_in() {
    let okta = OktaSim::start(
        OktaSimConfig::new("tok")
            .with_user(OktaUser::new("alice@acme.example", "Alice", "A"))
            .with_password("alice@acme.example", "pw"),
    )
    .await
    .unwrap();
    assert_eq!(okta.oidc_kid(), None, "no OIDC app, no key");
    let r = http()
        .get(authorize_url(&okta.url(), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an unknown client gets the error page");
    assert!(okta.add_oidc_app(OktaOidcApp::new("0oa1", "secret", &[REDIRECT])));
    assert!(okta.oidc_kid().is_some());
    let q = sign_in(&okta.url(), "alice@acme.example", "pw")
        .await
        .unwrap();
    assert!(q.contains_key("code"));
}
