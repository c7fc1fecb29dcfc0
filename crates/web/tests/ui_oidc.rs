//! Sign-in to the web UI through OpenID Connect, over HTTP as a browser
//! does it: the sign-in page's IdP link, the Okta simulator's form, the
//! callback, the session; and the refusals a person sees.

mod oidc_support;
mod support;

use oidc_support::IDP_PASSWORD;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Follows the UI's IdP sign-in for `login`; the callback's answer.
async fn sign_in(ui: &oidc_support::OidcUi, login: &str, path: &str) -> reqwest::Response {
    let h = client();
    let r = h.get(format!("{}{path}", ui.base)).send().await.unwrap();
    assert_eq!(r.status(), 303, "{path} sends the browser to the IdP");
    let authorize = location(&r);
    assert!(authorize.starts_with(&ui.okta.url()), "{authorize}");
    let form = h
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tx = form
        .split("name=\"tx\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = h
        .post(format!("{}/login/login.htm", ui.okta.url()))
        .form(&[
            ("tx", tx.as_str()),
            ("username", login),
            ("password", IDP_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/ui/auth/oidc/callback?", ui.base)),
        "{callback}"
    );
    h.get(callback).send().await.unwrap()
}

#[tokio::test]
async fn the_signin_page_offers_the_idp_and_a_mapped_person_gets_a_session() {
    let local = support::start(&support::sensitive()).await;
    let ui = oidc_support::start(
        local.roster.clone(),
        &[("ada@acme.example", &["roster-admins"])],
    )
    .await;
    let page = client()
        .get(format!("{}/ui/signin?next=/ui/people", ui.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/ui/auth/oidc/start?next="), "{page}");

    let r = sign_in(
        &ui,
        "ada@acme.example",
        "/ui/auth/oidc/start?next=/ui/people",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/ui/people");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = client()
        .get(format!("{}/ui/people", ui.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ada@acme.example"));
}

#[tokio::test]
async fn an_unmapped_person_a_forged_callback_and_an_open_redirect_get_nothing() {
    let local = support::start(&support::sensitive()).await;
    let ui = oidc_support::start(
        local.roster.clone(),
        &[
            ("eve@acme.example", &["Everyone"]),
            ("ada@acme.example", &["roster-admins"]),
        ],
    )
    .await;
    let r = sign_in(&ui, "eve@acme.example", "/ui/auth/oidc/start").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(
        body.contains("holds no role") && body.contains("Everyone"),
        "{body}"
    );

    let r = client()
        .get(format!(
            "{}/ui/auth/oidc/callback?state=forged&code=stolen",
            ui.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("OIDC-0003"));

    // `next` may only be a path of the UI.
    let r = sign_in(
        &ui,
        "ada@acme.example",
        "/ui/auth/oidc/start?next=https://evil.example/",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/ui/");
}

#[tokio::test]
async fn reauth_asks_the_idp_for_the_password_again() {
    let local = support::start(&support::sensitive()).await;
    let ui = oidc_support::start(
        local.roster.clone(),
        &[("ada@acme.example", &["roster-admins"])],
    )
    .await;
    let r = client()
        .get(format!("{}/ui/auth/oidc/reauth?next=/ui/plans", ui.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let authorize = location(&r);
    assert!(
        authorize.contains("prompt=login") && authorize.contains("max_age="),
        "{authorize}"
    );
}

#[tokio::test]
async fn without_web_oidc_the_routes_say_it_is_not_set_up() {
    let local = support::start(&support::sensitive()).await;
    let r = client()
        .get(local.url("/ui/auth/oidc/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("[web.oidc]"));
}
