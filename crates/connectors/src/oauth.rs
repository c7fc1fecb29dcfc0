//! OAuth 2.0 client credentials (RFC 6749 §4.4) for connectors whose API
//! takes short-lived access tokens instead of a long-lived one: the
//! declarative REST connector (Zoom's server-to-server apps) and the
//! generic SCIM connector (servers that issue SCIM access through an OAuth
//! client rather than a static bearer token).
//!
//! A [`TokenSource`] exchanges the client id and secret at the token
//! endpoint, keeps the access token until shortly before it expires, and
//! hands it to every request. Only one exchange runs at a time: concurrent
//! requests that find no valid token wait for the one being fetched
//! instead of each asking the endpoint (which would spend its rate budget
//! and, at some vendors, revoke the token just handed out).
//!
//! A request sent with a *kept* token that comes back 401 means the token
//! was revoked or expired early: the caller calls [`TokenSource::forget`]
//! and reports the attempt as transient, so the driver's retry fetches a
//! new one. A 401 on a token fetched for that very request is a real
//! refusal, reported as such (the fix is the client's id, secret or
//! scope), never retried in a loop.
//!
//! The client authenticates to the token endpoint with HTTP Basic (the
//! method RFC 6749 §2.3.1 requires servers to support) unless the vendor
//! wants the credentials in the form body ([`ClientAuth::Body`]).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::http::{self, Answer};
use crate::{ConnectorError, SecretString};

/// Where the client's credentials go in the token request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)`.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Body,
}

/// What the token request sends.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The token endpoint (already checked by [`http::base_url`] when
    /// built through [`TokenSource::new`]).
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `client_credentials` unless the vendor names its own (Zoom's
    /// `account_credentials`).
    pub grant_type: String,
    pub scope: Option<String>,
    /// Further form fields the vendor asks for (Zoom's `account_id`).
    pub extra: Vec<(String, String)>,
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

struct Kept {
    token: SecretString,
    renew_at: Instant,
}

/// An access token from the token endpoint, kept until shortly before it
/// expires. One per connection.
pub struct TokenSource {
    credentials: ClientCredentials,
    /// Whose token endpoint, in messages (`the token endpoint of Zoom`).
    vendor: String,
    /// What to check when the endpoint refuses the client.
    fix: String,
    kept: Mutex<Option<Kept>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A token's lifetime when the endpoint does not say (`expires_in` is
/// only RECOMMENDED by RFC 6749 §5.1).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl TokenSource {
    /// `app_name` and `connection` only shape messages.
    pub fn new(
        credentials: ClientCredentials,
        app_name: &str,
        connection: &str,
    ) -> Result<Self, ConnectorError> {
        let mut credentials = credentials;
        credentials.token_url = http::base_url(&credentials.token_url, "token endpoint")?;
        if credentials.client_id.trim().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{connection}: OAuth client credentials need the client id (the connection's username)"
                ),
            });
        }
        if credentials.client_secret.expose_secret().is_empty() {
            return Err(ConnectorError::Config {
                detail: format!(
                    "{connection}: OAuth client credentials need the client secret (the connection's secret)"
                ),
            });
        }
        Ok(TokenSource {
            credentials,
            vendor: format!("the token endpoint of {app_name}"),
            fix: format!("check the OAuth client id, secret and scope of {connection}"),
            kept: Mutex::new(None),
        })
    }

    /// A valid access token and whether it was kept from an earlier call
    /// (`false`: fetched just now).
    pub async fn token(
        &self,
        client: &reqwest::Client,
    ) -> Result<(SecretString, bool), ConnectorError> {
        // Held across the exchange: concurrent callers wait for it.
        let mut kept = self.kept.lock().await;
        if let Some(k) = kept.as_ref()
            && Instant::now() < k.renew_at
        {
            return Ok((k.token.clone(), true));
        }
        let fresh = self.fetch(client).await?;
        let token = fresh.token.clone();
        *kept = Some(fresh);
        Ok((token, false))
    }

    /// Drops the kept token (it was refused), so the next call fetches one.
    pub async fn forget(&self) {
        *self.kept.lock().await = None;
    }

    /// The client secret and the kept token, for scrubbing messages.
    pub fn secrets(&self) -> Vec<SecretString> {
        let mut out = vec![self.credentials.client_secret.clone()];
        if let Ok(k) = self.kept.try_lock()
            && let Some(k) = k.as_ref()
        {
            out.push(k.token.clone());
        }
        out
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Kept, ConnectorError> {
        let c = &self.credentials;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", c.grant_type.as_str())];
        for (k, v) in &c.extra {
            form.push((k, v));
        }
        if let Some(s) = &c.scope {
            form.push(("scope", s));
        }
        let mut req = client
            .post(&c.token_url)
            .header(reqwest::header::ACCEPT, "application/json");
        match c.client_auth {
            ClientAuth::Basic => {
                req = req.basic_auth(&c.client_id, Some(c.client_secret.expose_secret()));
            }
            ClientAuth::Body => {
                form.push(("client_id", &c.client_id));
                form.push(("client_secret", c.client_secret.expose_secret()));
            }
        }
        let req = req.form(&form);
        let secrets = [&c.client_secret];
        let answer = Answer::of(&self.vendor, req, &secrets).await?;
        if !answer.status.is_success() {
            return Err(http::status_error(
                &self.vendor,
                answer.status,
                &answer.headers,
                &http::scrub(&answer.text.chars().take(200).collect::<String>(), &secrets),
                &self.fix,
            ));
        }
        let body = answer.json(&self.vendor)?;
        let token = http::text(&body, "access_token").ok_or_else(|| ConnectorError::Protocol {
            detail: format!("{} answered no access_token", self.vendor),
        })?;
        let lifetime = expires_in(&body).unwrap_or(DEFAULT_LIFETIME);
        // Renew a little early so a token never expires in flight: a tenth
        // of its life, at most a minute.
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        Ok(Kept {
            token: SecretString::new(token),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        })
    }
}

/// A token answer's `expires_in`: a number of seconds, or (some vendors)
/// a string of one.
fn expires_in(body: &Value) -> Option<Duration> {
    let v = body.get("expires_in")?;
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .map(Duration::from_secs)
}
