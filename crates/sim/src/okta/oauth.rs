//! Okta's OAuth 2.0 for service apps: `POST /oauth2/v1/token` with the
//! client-credentials grant and private-key JWT client authentication
//! (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! an RS256 assertion with `iss` = `sub` = the client id, `aud` = the token
//! URL, an unexpired `exp`), answering `{token_type:"Bearer", expires_in,
//! access_token, scope}`. A Bearer token then allows what its scopes allow:
//! `okta.users.read` for `/api/v1/users…`, `okta.groups.read` for
//! `/api/v1/groups…`, `okta.logs.read` for `/api/v1/logs`,
//! `okta.apps.read` for `/api/v1/apps…`; anything else is 403 `E0000006`.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Shared, St, ok_json, okta_error};
use crate::common;

pub const TOKEN_PATH: &str = "/oauth2/v1/token";
/// A key for loopback tests only (PKCS#8 PEM).
pub const TEST_OAUTH_KEY: &str = include_str!("../testdata/test-rsa-key.pem");

/// A service app: its client id, the public half of its key (from the
/// PEM), and the scopes an admin granted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaOAuthClient {
    pub client_id: String,
    pub key_pem: String,
    pub scopes: Vec<String>,
}

impl OktaOAuthClient {
    pub fn new(client_id: &str, key_pem: &str, scopes: &[&str]) -> Self {
        OktaOAuthClient {
            client_id: client_id.to_string(),
            key_pem: key_pem.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

pub(super) async fn token(
    State(sh): St,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") == "authorization_code" {
        // A person's sign-in at the org authorization server (okta/oidc.rs).
        return super::oidc::token(&sh, super::oidc::AuthServer::Org, &headers, &form);
    }
    if f("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported.",
        );
    }
    if f("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        );
    }
    let assertion = f("client_assertion");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let client = sh.config.oauth_clients.iter().find(|c| {
        common::rsa_public_key(&c.key_pem)
            .and_then(|k| common::verify_rs256(assertion, &k))
            .is_some_and(|claims: Value| {
                let s = |k: &str| {
                    claims
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                s("iss") == c.client_id
                    && s("sub") == c.client_id
                    && s("aud").ends_with(TOKEN_PATH)
                    && claims.get("exp").and_then(Value::as_u64).unwrap_or(0) > now
            })
    });
    let Some(client) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion signature is invalid.",
        );
    };
    let wanted: Vec<String> = f("scope").split_whitespace().map(str::to_string).collect();
    if wanted.is_empty() || wanted.iter().any(|w| !client.scopes.contains(w)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    }
    let token = format!("eyJraWQiOi.{:032x}", rand::random::<u128>());
    sh.lock().oauth_tokens.insert(token.clone(), wanted.clone());
    ok_json(
        json!({"token_type": "Bearer", "expires_in": 3600, "access_token": token, "scope": wanted.join(" ")}),
    )
}

/// A Bearer token's scopes against the route.
pub(super) fn authorize(sh: &Shared, token: &str, path: &str) -> Result<(), Response> {
    let Some(scopes) = sh.lock().oauth_tokens.get(token).cloned() else {
        return Err(okta_error(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        ));
    };
    let needed = if path.starts_with("/api/v1/users/") && path.ends_with("/sessions") {
        // Revoking sessions writes: the read scope is not enough.
        "okta.users.manage"
    } else if path.starts_with("/api/v1/users") {
        "okta.users.read"
    } else if path.starts_with("/api/v1/groups") {
        "okta.groups.read"
    } else if path.starts_with("/api/v1/logs") {
        "okta.logs.read"
    } else if path.starts_with("/api/v1/apps") {
        "okta.apps.read"
    } else {
        "okta.unknown"
    };
    if scopes.iter().any(|s| s == needed) {
        Ok(())
    } else {
        Err(okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        ))
    }
}

impl super::OktaHandle {
    /// Every OAuth access token handed out so far stops working.
    pub fn expire_oauth_tokens(&self) {
        self.0.lock().oauth_tokens.clear();
    }
}
