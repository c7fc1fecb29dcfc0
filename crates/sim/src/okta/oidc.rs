//! Okta as an OpenID Connect provider: sign-in for a web app with the
//! authorization code flow and PKCE, as Okta's OpenID Connect & OAuth 2.0
//! API documents it, on both of Okta's authorization servers:
//!
//! | server | issuer | endpoints under |
//! |---|---|---|
//! | the org authorization server | `{base}` | `{base}/oauth2/v1/` |
//! | the custom server `default` | `{base}/oauth2/default` | `{base}/oauth2/default/v1/` |
//!
//! * `GET {issuer}/.well-known/openid-configuration`: the discovery
//!   document (`authorization_endpoint`, `token_endpoint`, `jwks_uri`,
//!   `response_types_supported: ["code"]`, `code_challenge_methods_supported:
//!   ["S256"]`, `id_token_signing_alg_values_supported: ["RS256"]`, …).
//! * `GET …/v1/authorize` (`client_id`, `response_type=code`, `scope` with
//!   `openid`, `redirect_uri`, `state`, `nonce`, `code_challenge`,
//!   `code_challenge_method=S256`, optional `prompt` (`login`, `none`),
//!   `max_age`, `login_hint`). An unknown client or a redirect URI the app
//!   does not list gets an error *page* (400), never a redirect, as in
//!   Okta; every other refusal redirects back with `error`,
//!   `error_description` and `state`. PKCE is required: a request without
//!   an S256 `code_challenge` is refused (`invalid_request`), and so is one
//!   without `state`.
//! * Signing in: without a live sign-in session (cookie `sid`), or with
//!   `prompt=login`, or a session older than `max_age` seconds, the
//!   simulator shows a minimal HTML sign-in form (labelled fields, POST to
//!   `/login/login.htm`). Users sign in with the password set by
//!   [`super::OktaSimConfig::with_password`] /
//!   [`super::OktaHandle::set_password`]; only `ACTIVE` users can. Tests
//!   that drive no form can pre-select a user
//!   ([`super::OktaHandle::oidc_preselect`]): the next authorization
//!   request signs them in without the form. `prompt=none` with no session
//!   redirects with `login_required`.
//! * `POST …/v1/token` with `grant_type=authorization_code`, the `code`,
//!   the `redirect_uri` of the authorization request and the PKCE
//!   `code_verifier`; the client authenticates with `client_secret_basic`
//!   or `client_secret_post`. A code lives 60 seconds and is good once: a
//!   second exchange, a wrong verifier (`PKCE verification failed.`), an
//!   expired code or another redirect URI is `invalid_grant` (400); bad
//!   client credentials are `invalid_client` (401). The answer is
//!   `{token_type:"Bearer", expires_in:3600, access_token, scope, id_token}`
//!   with `Cache-Control: no-store`.
//! * `GET …/v1/keys`: the JWKS. Tokens are RS256 JWTs signed with a
//!   2048-bit key the simulator generates when it starts (or the one the
//!   config gives), with its `kid`.
//!
//! The ID token carries `sub` (the user id), `ver`, `iss`, `aud` (the
//! client id), `iat`, `exp` (an hour), `jti`, `amr`, `idp`, `auth_time`,
//! `nonce` (when sent), `at_hash`; `name` and `preferred_username` with the
//! `profile` scope, `email` and `email_verified` with `email`; and the
//! user's Okta group names in the app's groups claim (`groups` by default,
//! like a groups claim with the filter "Matches regex .*").
//!
//! [`super::OktaHandle::tamper_next_id_token`] lets harm tests change the
//! next ID token's claims or sign it with another key, and
//! [`super::OktaHandle::expire_oidc_codes`] ages every issued code past its
//! lifetime.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::{OktaHandle, Shared, St, base_of, enc};

/// How long an authorization code can be exchanged (Okta: 60 seconds).
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// ID and access token lifetime (Okta's default: an hour).
pub const TOKEN_LIFETIME_SECS: u64 = 3600;
/// Where the sign-in form posts.
pub const LOGIN_PATH: &str = "/login/login.htm";
/// The sign-in session cookie.
const SESSION_COOKIE: &str = "sid";

/// An OpenID Connect web app integration (a confidential client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaOidcApp {
    pub client_id: String,
    pub client_secret: String,
    /// The app's "Sign-in redirect URIs": exact matches only.
    pub redirect_uris: Vec<String>,
    /// The name of the groups claim in ID tokens (`None`: no groups claim).
    pub groups_claim: Option<String>,
}

impl OktaOidcApp {
    pub fn new(client_id: &str, client_secret: &str, redirect_uris: &[&str]) -> Self {
        OktaOidcApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
            groups_claim: Some("groups".into()),
        }
    }
    pub fn with_groups_claim(mut self, claim: Option<&str>) -> Self {
        self.groups_claim = claim.map(str::to_string);
        self
    }
}

/// Which of Okta's authorization servers a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuthServer {
    Org,
    Default,
}

impl AuthServer {
    fn issuer(self, base: &str) -> String {
        match self {
            AuthServer::Org => base.to_string(),
            AuthServer::Default => format!("{base}/oauth2/default"),
        }
    }
    fn endpoints(self, base: &str) -> String {
        match self {
            AuthServer::Org => format!("{base}/oauth2/v1"),
            AuthServer::Default => format!("{base}/oauth2/default/v1"),
        }
    }
}

/// Whether `path` is one of the OpenID Connect endpoints, which need no
/// API token (the client authenticates in the request itself, or a
/// person's browser calls them).
pub(super) fn is_public(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/.well-known/") || path == LOGIN_PATH
}

/// The signing key: ring signs, the JWK publishes its public half.
pub(super) struct SigningKey {
    pair: ring::signature::RsaKeyPair,
    kid: String,
    jwk: Value,
}

impl SigningKey {
    /// A fresh 2048-bit RSA key.
    pub(super) fn generate() -> Option<SigningKey> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rand_core06::OsRng, 2048).ok()?;
        let der = key.to_pkcs8_der().ok()?;
        SigningKey::from_pkcs8(der.as_bytes())
    }

    /// A key from a PKCS#8 PEM (tests that must know the private half).
    pub fn from_pem(pem: &str) -> Option<SigningKey> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .collect();
        SigningKey::from_pkcs8(&STANDARD.decode(body).ok()?)
    }

    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der).ok()?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(der).ok()?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        // Okta's kids are opaque; this one is stable for a key.
        let digest = ring::digest::digest(&ring::digest::SHA256, n.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        let jwk = json!({"kty": "RSA", "alg": "RS256", "kid": kid, "use": "sig", "e": e, "n": n});
        Some(SigningKey { pair, kid, jwk })
    }

    /// `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> Option<String> {
        let header = json!({"kid": self.kid, "alg": "RS256"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &rng,
                input.as_bytes(),
                &mut sig,
            )
            .ok()?;
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// An authorization request waiting for its user to sign in.
#[derive(Clone, Debug)]
struct AuthRequest {
    server: AuthServer,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
    scopes: Vec<String>,
    code_challenge: String,
}

/// A code handed out, until exchanged.
#[derive(Clone, Debug)]
struct IssuedCode {
    request: AuthRequest,
    user_id: String,
    auth_time: u64,
    issued: SystemTime,
    used: bool,
}

/// A browser's sign-in session at the simulated Okta.
#[derive(Clone, Debug)]
struct SignInSession {
    user_id: String,
    auth_time: u64,
}

/// What the next ID token gets instead of the truth (harm tests).
#[derive(Clone, Debug, Default)]
struct Tamper {
    claims: Map<String, Value>,
    foreign_key_pem: Option<String>,
}

/// The provider's state.
#[derive(Default)]
pub(super) struct OidcState {
    key: Option<std::sync::Arc<SigningKey>>,
    /// The OIDC apps (the config's, and any added through the handle).
    apps: Vec<OktaOidcApp>,
    /// Sign-in form transactions by id.
    pending: BTreeMap<String, AuthRequest>,
    codes: BTreeMap<String, IssuedCode>,
    sessions: BTreeMap<String, SignInSession>,
    /// login (lower-cased) → password.
    passwords: BTreeMap<String, String>,
    preselected: Option<String>,
    tamper: Option<Tamper>,
    /// Successful sign-ins (login, server), in order.
    sign_ins: Vec<String>,
}

impl OidcState {
    pub(super) fn new(
        key: Option<SigningKey>,
        apps: Vec<OktaOidcApp>,
        passwords: BTreeMap<String, String>,
    ) -> Self {
        OidcState {
            key: key.map(std::sync::Arc::new),
            apps,
            passwords,
            ..OidcState::default()
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    for chunk in b.iter_mut() {
        *chunk = rand::random();
    }
    URL_SAFE_NO_PAD.encode(b)
}

/// Equal, compared in time that depends only on the lengths.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

/// Okta's error page for a request it cannot send back to the app.
fn error_page(summary: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>400 Bad Request</title></head>\
         <body><main><h1>400 Bad Request</h1><p id=\"error-summary\">{}</p></main></body></html>",
        html_escape(summary)
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page("The redirect URI is not valid."),
    }
}

/// A refusal sent back to the app's redirect URI.
fn redirect_error(req_uri: &str, state: &str, error: &str, description: &str) -> Response {
    let sep = if req_uri.contains('?') { '&' } else { '?' };
    let mut to = format!(
        "{req_uri}{sep}error={}&error_description={}",
        enc(error),
        enc(description)
    );
    if !state.is_empty() {
        to.push_str(&format!("&state={}", enc(state)));
    }
    redirect(&to)
}

fn ok_json_no_store(v: Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn discovery(server: AuthServer, base: &str) -> Value {
    let issuer = server.issuer(base);
    let v1 = server.endpoints(base);
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{v1}/authorize"),
        "token_endpoint": format!("{v1}/token"),
        "userinfo_endpoint": format!("{v1}/userinfo"),
        "registration_endpoint": format!("{base}/oauth2/v1/clients"),
        "jwks_uri": format!("{v1}/keys"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr",
            "idp", "nonce", "name", "preferred_username", "email", "email_verified", "at_hash", "groups"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": false,
        "end_session_endpoint": format!("{v1}/logout"),
    })
}

pub(super) async fn discovery_org(headers: HeaderMap) -> Response {
    super::ok_json(discovery(AuthServer::Org, &base_of(&headers)))
}

pub(super) async fn discovery_default(headers: HeaderMap) -> Response {
    super::ok_json(discovery(AuthServer::Default, &base_of(&headers)))
}

pub(super) async fn keys(State(sh): St) -> Response {
    let key = sh.oidc().key.clone();
    let keys: Vec<Value> = key.iter().map(|k| k.jwk.clone()).collect();
    super::ok_json(json!({ "keys": keys }))
}

pub(super) async fn authorize_org(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    authorize(&sh, AuthServer::Org, &headers, &q)
}

pub(super) async fn authorize_default(
    State(sh): St,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    authorize(&sh, AuthServer::Default, &headers, &q)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn authorize(
    sh: &Shared,
    server: AuthServer,
    headers: &HeaderMap,
    q: &BTreeMap<String, String>,
) -> Response {
    let p = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let Some(app) = sh
        .oidc()
        .apps
        .iter()
        .find(|a| a.client_id == p("client_id"))
        .cloned()
    else {
        return error_page("Invalid value for 'client_id' parameter.");
    };
    let redirect_uri = p("redirect_uri");
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page(
            "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings",
        );
    }
    let state = p("state");
    let refuse =
        |error: &str, description: &str| redirect_error(redirect_uri, state, error, description);
    if p("response_type") != "code" {
        return refuse(
            "unsupported_response_type",
            "The response type is not supported by the authorization server. Configured response types: [code].",
        );
    }
    let scopes: Vec<String> = p("scope").split_whitespace().map(str::to_string).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return refuse(
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    let known = ["openid", "email", "profile", "groups", "offline_access"];
    if let Some(bad) = scopes.iter().find(|s| !known.contains(&s.as_str())) {
        return refuse(
            "invalid_scope",
            &format!(
                "One or more scopes are not configured for the authorization server resource: {bad}"
            ),
        );
    }
    if state.is_empty() {
        return refuse("invalid_request", "The 'state' parameter is required.");
    }
    let challenge = p("code_challenge");
    if challenge.is_empty() {
        return refuse("invalid_request", "PKCE code challenge is required.");
    }
    if p("code_challenge_method") != "S256" {
        return refuse(
            "invalid_request",
            "The 'code_challenge_method' parameter must be 'S256'.",
        );
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return refuse(
            "invalid_request",
            "The 'code_challenge' parameter must be a base64url SHA-256 hash (43 characters).",
        );
    }
    let max_age = match q.get("max_age").map(|m| m.parse::<u64>()) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            return refuse(
                "invalid_request",
                "The 'max_age' parameter must be a non-negative integer.",
            );
        }
    };
    let prompt: Vec<&str> = p("prompt").split_whitespace().collect();
    let request = AuthRequest {
        server,
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: state.to_string(),
        nonce: q.get("nonce").filter(|n| !n.is_empty()).cloned(),
        scopes,
        code_challenge: challenge.to_string(),
    };
    let now = now_secs();
    let mut st = sh.oidc();
    // A test hook: the next request is signed in as this user.
    if let Some(login) = st.preselected.take() {
        drop(st);
        return match active_user_id(sh, &login) {
            Some(uid) => issue_code(sh, request, &uid, now, None),
            None => refuse(
                "access_denied",
                "User is not assigned to the client application.",
            ),
        };
    }
    let session = session_cookie(headers).and_then(|sid| st.sessions.get(&sid).cloned());
    let fresh_enough =
        |s: &SignInSession| max_age.is_none_or(|m| now.saturating_sub(s.auth_time) <= m);
    match session {
        Some(s) if !prompt.contains(&"login") && fresh_enough(&s) => {
            drop(st);
            if active_user_id(sh, &s.user_id).is_none() {
                // Deactivated since: the session is over.
                return login_form(sh, request, None, p("login_hint"));
            }
            issue_code(sh, request, &s.user_id, s.auth_time, None)
        }
        _ if prompt.contains(&"none") => {
            drop(st);
            refuse(
                "login_required",
                "The client specified not to prompt, but the user is not logged in.",
            )
        }
        _ => {
            drop(st);
            login_form(sh, request, None, p("login_hint"))
        }
    }
}

/// The user's id if they exist and are `ACTIVE` (only they can sign in).
fn active_user_id(sh: &Shared, id_or_login: &str) -> Option<String> {
    let org = sh.lock();
    let (_, u) = org.user(id_or_login)?;
    (u.status == "ACTIVE").then(|| u.id.clone())
}

fn login_form(sh: &Shared, request: AuthRequest, error: Option<&str>, username: &str) -> Response {
    let tx = random_token(24);
    sh.oidc().pending.insert(tx.clone(), request);
    let error_html = error
        .map(|e| {
            format!(
                "<p role=\"alert\" id=\"signin-error\">{}</p>",
                html_escape(e)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign In</title>\
         <style>body{{font-family:sans-serif;max-width:24rem;margin:2rem auto;padding:0 1rem;color:#1d1d21}}\
         label{{display:block;margin-top:1rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}\
         button{{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem;background:#00297a;color:#fff;border:0}}\
         [role=alert]{{color:#a4000f}}</style></head>\
         <body><main><h1>Sign In</h1>{error_html}\
         <form method=\"post\" action=\"{LOGIN_PATH}\">\
         <input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
         <label for=\"okta-signin-username\">Username</label>\
         <input id=\"okta-signin-username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required>\
         <label for=\"okta-signin-password\">Password</label>\
         <input id=\"okta-signin-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"okta-signin-submit\">Sign In</button>\
         </form></main></body></html>",
        html_escape(username)
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `POST /login/login.htm`: the sign-in form.
pub(super) async fn sign_in(State(sh): St, Form(form): Form<BTreeMap<String, String>>) -> Response {
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let Some(request) = sh.oidc().pending.remove(f("tx")) else {
        return error_page(
            "This sign-in request has expired or was already used. Start again from the application.",
        );
    };
    let username = f("username");
    let password = f("password");
    let known = sh
        .oidc()
        .passwords
        .get(&username.to_lowercase())
        .is_some_and(|p| same_bytes(p.as_bytes(), password.as_bytes()));
    let user = if known {
        active_user_id(&sh, username)
    } else {
        None
    };
    let Some(user_id) = user else {
        return login_form(&sh, request, Some("Unable to sign in"), username);
    };
    let now = now_secs();
    let sid = random_token(24);
    sh.oidc().sessions.insert(
        sid.clone(),
        SignInSession {
            user_id: user_id.clone(),
            auth_time: now,
        },
    );
    issue_code(&sh, request, &user_id, now, Some(&sid))
}

fn issue_code(
    sh: &Shared,
    request: AuthRequest,
    user_id: &str,
    auth_time: u64,
    new_session: Option<&str>,
) -> Response {
    let code = random_token(32);
    let to = format!(
        "{}{}code={}&state={}",
        request.redirect_uri,
        if request.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        },
        enc(&code),
        enc(&request.state)
    );
    let mut st = sh.oidc();
    st.sign_ins.push(user_id.to_string());
    st.codes.insert(
        code,
        IssuedCode {
            request,
            user_id: user_id.to_string(),
            auth_time,
            issued: SystemTime::now(),
            used: false,
        },
    );
    drop(st);
    let mut r = redirect(&to);
    if let Some(sid) = new_session
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
        ))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /oauth2/default/v1/token`.
pub(super) async fn token_default(
    State(sh): St,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    token(&sh, AuthServer::Default, &headers, &form)
}

/// The client's id and secret from `Authorization: Basic` or the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
        let unform = |s: &str| url_decode(&s.replace('+', " "));
        return Some((unform(id)?, unform(secret)?));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The authorization-code grant on either authorization server.
pub(super) fn token(
    sh: &Shared,
    server: AuthServer,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Response {
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server. Configured grant types: [authorization_code].",
        );
    }
    let client_failed = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        )
    };
    let Some((client_id, secret)) = client_credentials(headers, form) else {
        return client_failed();
    };
    let Some(app) = sh
        .oidc()
        .apps
        .iter()
        .find(|a| {
            a.client_id == client_id && same_bytes(a.client_secret.as_bytes(), secret.as_bytes())
        })
        .cloned()
    else {
        return client_failed();
    };
    let invalid_code = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The authorization code is invalid or has expired.",
        )
    };
    let mut st = sh.oidc();
    let Some(issued) = st.codes.get_mut(f("code")) else {
        return invalid_code();
    };
    // A code is good once, whatever happens to this exchange.
    let already_used = std::mem::replace(&mut issued.used, true);
    let issued = issued.clone();
    drop(st);
    let expired = issued.issued.elapsed().unwrap_or_default() > CODE_LIFETIME;
    if already_used
        || expired
        || issued.request.client_id != app.client_id
        || issued.request.server != server
    {
        return invalid_code();
    }
    if issued.request.redirect_uri != f("redirect_uri") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
        );
    }
    let verifier = f("code_verifier");
    if verifier.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "PKCE code verifier is required when the parameter code_challenge was specified in the authorize request.",
        );
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    if !same_bytes(
        computed.as_bytes(),
        issued.request.code_challenge.as_bytes(),
    ) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed.",
        );
    }
    let base = base_of(headers);
    match mint_tokens(sh, &app, &issued, &base) {
        Some(body) => ok_json_no_store(body),
        None => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The authorization server encountered an unexpected condition.",
        ),
    }
}

fn mint_tokens(
    sh: &Shared,
    app: &super::oidc::OktaOidcApp,
    issued: &IssuedCode,
    base: &str,
) -> Option<Value> {
    let (user, groups) = {
        let org = sh.lock();
        let (_, u) = org.user(&issued.user_id)?;
        let groups: BTreeSet<String> = org
            .groups
            .values()
            .filter(|g| g.members.contains(&u.id))
            .map(|g| g.name.clone())
            .collect();
        (u.clone(), groups)
    };
    let (key, tamper) = {
        let mut st = sh.oidc();
        (st.key.clone()?, st.tamper.take())
    };
    let now = now_secs();
    let issuer = issued.request.server.issuer(base);
    let scopes = &issued.request.scopes;
    let access_claims = json!({
        "ver": 1,
        "jti": format!("AT.{}", random_token(24)),
        "iss": issuer,
        "aud": match issued.request.server {
            AuthServer::Org => base.to_string(),
            AuthServer::Default => "api://default".to_string(),
        },
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECS,
        "cid": app.client_id,
        "uid": user.id,
        "scp": scopes,
        "sub": user.login,
    });
    let access_token = key.sign(&access_claims)?;
    let at_digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    let mut id = json!({
        "sub": user.id,
        "ver": 1,
        "iss": issuer,
        "aud": app.client_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_SECS,
        "jti": format!("ID.{}", random_token(24)),
        "amr": ["pwd"],
        "idp": "00o1roster0sim0org",
        "auth_time": issued.auth_time,
        "at_hash": URL_SAFE_NO_PAD.encode(&at_digest.as_ref()[..16]),
    });
    if let Some(n) = &issued.request.nonce {
        id["nonce"] = json!(n);
    }
    if scopes.iter().any(|s| s == "profile") {
        id["name"] = json!(format!("{} {}", user.first_name, user.last_name));
        id["preferred_username"] = json!(user.login);
    }
    if scopes.iter().any(|s| s == "email") {
        id["email"] = json!(user.email);
        id["email_verified"] = json!(true);
    }
    if let Some(claim) = &app.groups_claim {
        id[claim.as_str()] = json!(groups);
    }
    let mut signer = key;
    if let Some(t) = tamper {
        for (k, v) in t.claims {
            id[k.as_str()] = v;
        }
        if let Some(pem) = t.foreign_key_pem {
            signer = std::sync::Arc::new(SigningKey::from_pem(&pem)?);
        }
    }
    let id_token = signer.sign(&id)?;
    Some(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access_token,
        "scope": scopes.join(" "),
        "id_token": id_token,
    }))
}

impl OktaHandle {
    /// Adds an OpenID Connect app to the running org (for a UI whose
    /// redirect URI is known only after the simulator started). Makes the
    /// signing key first if the org had none (a blocking moment: RSA key
    /// generation). False if the key could not be made.
    pub fn add_oidc_app(&self, app: OktaOidcApp) -> bool {
        let needs_key = self.0.oidc().key.is_none();
        if needs_key {
            let Some(key) = SigningKey::generate() else {
                return false;
            };
            let mut st = self.0.oidc();
            if st.key.is_none() {
                st.key = Some(std::sync::Arc::new(key));
            }
        }
        let mut st = self.0.oidc();
        st.apps.retain(|a| a.client_id != app.client_id);
        st.apps.push(app);
        true
    }
    /// Sets (or replaces) the password a user signs in with.
    pub fn set_password(&self, login: &str, password: &str) {
        self.0
            .oidc()
            .passwords
            .insert(login.to_lowercase(), password.to_string());
    }
    /// The next authorization request signs this user in without the
    /// form (a test hook; the user must be `ACTIVE`).
    pub fn oidc_preselect(&self, login: &str) {
        self.0.oidc().preselected = Some(login.to_string());
    }
    /// The next ID token gets these claims (replacing the true ones) and,
    /// with `foreign_key_pem`, is signed with that key instead of the
    /// published one. For tests that check a client refuses it.
    pub fn tamper_next_id_token(&self, claims: Value, foreign_key_pem: Option<&str>) {
        self.0.oidc().tamper = Some(Tamper {
            claims: claims.as_object().cloned().unwrap_or_default(),
            foreign_key_pem: foreign_key_pem.map(str::to_string),
        });
    }
    /// Every code issued so far is past its lifetime.
    pub fn expire_oidc_codes(&self) {
        let mut st = self.0.oidc();
        for c in st.codes.values_mut() {
            c.issued = SystemTime::now()
                .checked_sub(CODE_LIFETIME + Duration::from_secs(1))
                .unwrap_or(UNIX_EPOCH);
        }
    }
    /// Ends every sign-in session at the simulated Okta.
    pub fn end_oidc_sessions(&self) {
        self.0.oidc().sessions.clear();
    }
    /// The ids of the users who signed in (form, session or pre-selected),
    /// in order.
    pub fn oidc_sign_ins(&self) -> Vec<String> {
        self.0.oidc().sign_ins.clone()
    }
    /// The published signing key's id (`None` when no OIDC app is set up).
    pub fn oidc_kid(&self) -> Option<String> {
        self.0.oidc().key.as_ref().map(|k| k.kid().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_from_pem_signs_what_its_jwk_verifies() {
        let key = SigningKey::from_pem(super::super::oauth::TEST_OAUTH_KEY).unwrap();
        let jwt = key.sign(&json!({"sub": "x"})).unwrap();
        let public = crate::common::rsa_public_key(super::super::oauth::TEST_OAUTH_KEY).unwrap();
        assert_eq!(
            crate::common::verify_rs256(&jwt, &public).unwrap()["sub"],
            "x"
        );
        assert_eq!(key.jwk["kid"], key.kid());
        assert_eq!(key.jwk["e"], "AQAB");
    }

    #[test]
    fn only_the_oidc_paths_are_public() {
        assert!(is_public("/oauth2/v1/authorize"));
        assert!(is_public(
            "/oauth2/default/.well-known/openid-configuration"
        ));
        assert!(is_public("/.well-known/openid-configuration"));
        assert!(is_public(LOGIN_PATH));
        assert!(!is_public("/api/v1/users"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = STANDARD.encode("roster%20ui:s%3Acret");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        assert_eq!(
            client_credentials(&h, &BTreeMap::new()),
            Some(("roster ui".into(), "s:cret".into()))
        );
    }
}
