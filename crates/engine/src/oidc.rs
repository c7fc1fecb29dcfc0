//! Sign-in to the web UI with the company's identity provider over OpenID
//! Connect: the I/O half (discovery, the authorization request, the code
//! exchange, ID token verification). The application layer's half, which
//! decides who may come in, is `app/oidc_signin.rs`.
//!
//! ```toml
//! [web.oidc]
//! issuer = "https://acme.okta.com/oauth2/default"   # discovery: {issuer}/.well-known/openid-configuration
//! client_id = "0oa1roster2ui"
//! client_secret = { env = "ROSTER_OIDC_CLIENT_SECRET" }   # or { file = … } or { stored = … }
//! redirect_url = "https://roster.acme.example/ui/auth/oidc/callback"
//! groups_claim = "groups"            # the ID token claim with the person's IdP groups (default)
//! # scopes = ["openid", "email", "profile", "groups"]   # the default
//! # fresh_max_age_secs = 300         # a fresh sign-in (approve, apply) must be this recent
//!
//! [web.roles]                        # nobody gets anything by default
//! admin = ["group:roster-admins"]
//! approver = ["group:finance-approvers", "cfo@acme.example"]
//! operator = ["group:it-ops"]
//! viewer = ["group:it"]
//! ```
//!
//! # The flow
//!
//! [`OidcProvider::discover`] reads the issuer's discovery document and
//! its JWKS once. [`OidcProvider::begin`] makes an authorization request
//! (authorization code flow, PKCE with S256, a random `state` and `nonce`)
//! and keeps what the callback needs (the PKCE verifier, the nonce, when
//! it began, whether a fresh sign-in was asked) **server-side**, keyed by
//! the state, for [`PENDING_TTL`]; [`OidcProvider::finish`] takes that
//! entry out (so a state works once), exchanges the code with the verifier
//! and the client secret, and verifies the ID token: its RS256 signature
//! against the provider's keys (fetched again once when the token names a
//! key the set lacks, for key rotation), `iss` equal to the issuer, `aud`
//! containing the client id, `exp` not past, the `nonce` ours, and for a
//! fresh sign-in an `auth_time` no earlier than the request. Pending
//! sign-ins live in this process's memory: a deployment with several
//! roster processes behind one name needs sticky sessions for the UI.
//!
//! A fresh sign-in (before approving or applying) sends `prompt=login`
//! and `max_age`, so the IdP asks for the password again even when the
//! person still has a session there.
//!
//! HTTP goes through roster's reqwest (rustls; no redirects followed; a
//! ten-second timeout; answers over 1 MiB refused). The issuer is checked
//! like every outbound URL ([`crate::egress`]), and must be `https` unless
//! it is on loopback.
//!
//! Errors carry stable codes `OIDC-0001..`; none echoes a secret, a code or
//! a token.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::config::SecretRef;
pub use crate::config::{RawWeb, RawWebOidc};
pub use roster_core::Role;

/// How long a sign-in may take between [`OidcProvider::begin`] and the
/// callback.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many sign-ins may be pending at once (a flood of started
/// sign-ins cannot grow memory without bound).
pub const MAX_PENDING: usize = 10_000;
/// Clock skew allowed between roster and the IdP for `auth_time`.
const SKEW_SECS: i64 = 30;
/// The largest answer read from the IdP.
const MAX_BODY: usize = 1 << 20;

/// `[web.roles]`: which IdP groups (`group:NAME`) and which people (by
/// email) hold each role. Nobody holds any role by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleMap {
    entries: BTreeMap<Role, Vec<RoleEntry>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RoleEntry {
    Group(String),
    Email(String),
}

impl RoleMap {
    /// Parses `[web.roles]`; the message names the bad key or entry.
    pub fn parse(raw: &BTreeMap<String, Vec<String>>) -> Result<RoleMap, String> {
        let mut entries = BTreeMap::new();
        for (name, list) in raw {
            let role = Role::parse(name).ok_or_else(|| {
                format!(
                    "web.roles.{name}: not a role; the roles are viewer, operator, approver, admin"
                )
            })?;
            let mut parsed = Vec::new();
            for e in list {
                let e = e.trim();
                let entry = match e.strip_prefix("group:") {
                    Some(g) if !g.trim().is_empty() => RoleEntry::Group(g.trim().to_string()),
                    Some(_) => return Err(format!("web.roles.{name}: {e:?} names no group")),
                    None if e.contains('@') && !e.starts_with('@') && !e.ends_with('@') => {
                        RoleEntry::Email(e.to_lowercase())
                    }
                    None => {
                        return Err(format!(
                            "web.roles.{name}: {e:?} is neither \"group:NAME\" (an IdP group) nor an email address"
                        ));
                    }
                };
                parsed.push(entry);
            }
            entries.insert(role, parsed);
        }
        Ok(RoleMap { entries })
    }

    /// The roles of a person with this email and these IdP groups.
    pub fn roles_of(&self, email: &str, groups: &BTreeSet<String>) -> BTreeSet<Role> {
        let email = email.to_lowercase();
        self.entries
            .iter()
            .filter(|(_, list)| {
                list.iter().any(|e| match e {
                    RoleEntry::Group(g) => groups.contains(g),
                    RoleEntry::Email(m) => *m == email,
                })
            })
            .map(|(r, _)| *r)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.values().all(Vec::is_empty)
    }
}

/// A sign-in problem. The message says what to do; it never holds a
/// secret, a code or a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC-0001 web.oidc: {0}")]
    Config(String),
    #[error("OIDC-0002 cannot read the identity provider's configuration at {issuer}: {detail}")]
    Discovery { issuer: String, detail: String },
    #[error(
        "OIDC-0003 this sign-in is unknown, already finished or expired (state mismatch); start again"
    )]
    UnknownState,
    #[error("OIDC-0004 the identity provider refused the sign-in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ProviderRefused {
        error: String,
        description: Option<String>,
    },
    #[error("OIDC-0005 the identity provider would not exchange the code: {0}")]
    CodeExchange(String),
    #[error("OIDC-0006 the ID token was refused: {0}")]
    IdToken(String),
    #[error(
        "OIDC-0007 the ID token has no {0} claim; add it to the app's claims at the identity provider"
    )]
    MissingClaim(&'static str),
    #[error(
        "OIDC-0008 the identity provider reports an older sign-in than roster asked for (max_age, or prompt=login for approving and applying); sign in again"
    )]
    NotFresh,
    #[error("OIDC-0009 too many sign-ins are pending; try again in a few minutes")]
    TooManyPending,
}

impl OidcError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Config(_) => "OIDC-0001",
            OidcError::Discovery { .. } => "OIDC-0002",
            OidcError::UnknownState => "OIDC-0003",
            OidcError::ProviderRefused { .. } => "OIDC-0004",
            OidcError::CodeExchange(_) => "OIDC-0005",
            OidcError::IdToken(_) => "OIDC-0006",
            OidcError::MissingClaim(_) => "OIDC-0007",
            OidcError::NotFresh => "OIDC-0008",
            OidcError::TooManyPending => "OIDC-0009",
        }
    }
}

/// `[web.oidc]` and `[web.roles]`, validated, the client secret resolved.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    client_secret: crate::config::Secret,
    pub redirect_url: String,
    pub groups_claim: String,
    pub scopes: Vec<String>,
    /// How recent a fresh sign-in's `auth_time` must be at most.
    pub fresh_max_age: Duration,
    pub roles: RoleMap,
}

impl OidcSettings {
    /// Validates `raw` and `roles`; `secret` is the client secret, already
    /// resolved (see [`resolve_secret`]).
    pub fn new(
        raw: &RawWebOidc,
        roles: &BTreeMap<String, Vec<String>>,
        secret: String,
        allow_private_network: bool,
    ) -> Result<OidcSettings, OidcError> {
        let issuer = raw.issuer.trim().trim_end_matches('/').to_string();
        check_url(
            "issuer",
            &issuer,
            raw.allow_private_network || allow_private_network,
        )?;
        check_url("redirect_url", &raw.redirect_url, true)?;
        if raw.client_id.trim().is_empty() {
            return Err(OidcError::Config("client_id is empty".into()));
        }
        if secret.trim().is_empty() {
            return Err(OidcError::Config("client_secret is empty".into()));
        }
        let scopes = raw.scopes.clone().unwrap_or_else(|| {
            ["openid", "email", "profile", "groups"]
                .map(String::from)
                .to_vec()
        });
        if !scopes.iter().any(|s| s == "openid") {
            return Err(OidcError::Config(
                "scopes must include \"openid\" (and \"email\" for the email claim)".into(),
            ));
        }
        let roles = RoleMap::parse(roles).map_err(OidcError::Config)?;
        Ok(OidcSettings {
            issuer,
            client_id: raw.client_id.trim().to_string(),
            client_secret: crate::config::Secret::new(secret),
            redirect_url: raw.redirect_url.clone(),
            groups_claim: raw.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            scopes,
            fresh_max_age: Duration::from_secs(raw.fresh_max_age_secs.unwrap_or(300)),
            roles,
        })
    }
}

fn check_url(field: &str, url: &str, allow_private: bool) -> Result<(), OidcError> {
    crate::egress::check_url(url, allow_private)
        .map_err(|e| OidcError::Config(format!("{field}: {e}")))?;
    let parsed =
        url::Url::parse(url).map_err(|e| OidcError::Config(format!("{field}: {url:?}: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    if parsed.scheme() != "https" && !loopback {
        return Err(OidcError::Config(format!(
            "{field}: {url:?} must be https (plain http only on loopback)"
        )));
    }
    Ok(())
}

/// Reads a `{ env }` or `{ file }` secret (relative to `base`), or a
/// `{ stored }` one through `stored` (the caller opens roster's sealed
/// secrets). The message names the field, never the value.
pub fn resolve_secret(
    r: &SecretRef,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    stored: &dyn Fn(&str) -> Option<String>,
) -> Result<String, OidcError> {
    match r {
        SecretRef::Env { env: name } => env(name).ok_or_else(|| {
            OidcError::Config(format!(
                "client_secret: environment variable {name} is not set"
            ))
        }),
        SecretRef::File { file } => {
            let p = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(|e| {
                    OidcError::Config(format!("client_secret: cannot read {}: {e}", p.display()))
                })
        }
        SecretRef::Stored { stored: name } => stored(name).ok_or_else(|| {
            OidcError::Config(format!(
                "client_secret: no stored secret {name:?}; set it with `roster secret set {name}`"
            ))
        }),
    }
}

/// The claims beyond the standard ones (the groups claim is read from
/// here by name).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

type OidcIdTokenFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcTokenResponse = StandardTokenResponse<OidcIdTokenFields, CoreTokenType>;
type OidcClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OidcTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// The client as discovery makes it, before the token URL is known set.
type DiscoveredClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OidcTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInPurpose {
    /// An ordinary sign-in: an IdP session that is still good will do.
    Normal,
    /// Before approving or applying: the IdP must ask for the password
    /// again (`prompt=login`, `max_age`), and the ID token must say so.
    Fresh,
}

/// A sign-in just started: send the browser to `authorize_url`.
#[derive(Clone, Debug)]
pub struct SignInStart {
    pub authorize_url: String,
    /// The `state` parameter (also the key of the pending sign-in).
    pub state: String,
}

struct Pending {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    began: Instant,
    began_unix: i64,
    purpose: SignInPurpose,
    return_to: String,
}

/// Who the identity provider says signed in, verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: Option<String>,
    /// The IdP groups the groups claim lists.
    pub groups: BTreeSet<String>,
    /// When the person authenticated at the IdP (Unix seconds), if said.
    pub auth_time: Option<i64>,
    /// A fresh sign-in was asked for and the token proves it.
    pub fresh: bool,
    /// Where the UI wanted to go after signing in (as given to `begin`).
    pub return_to: String,
}

/// The callback's query parameters.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OidcCallback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// An HTTP failure talking to the IdP.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// The relying party: one per configured IdP, shared by every request.
pub struct OidcProvider {
    settings: OidcSettings,
    client: OidcClient,
    jwks_url: openidconnect::JsonWebKeySetUrl,
    jwks: RwLock<JsonWebKeySet<CoreJsonWebKey>>,
    http: reqwest::Client,
    pending: Mutex<BTreeMap<String, Pending>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.settings.issuer)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

async fn send(http: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpFailure(e.without_url().to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(HttpFailure(format!(
            "the answer is larger than {MAX_BODY} bytes"
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HttpFailure(e.without_url().to_string()))?;
    if bytes.len() > MAX_BODY {
        return Err(HttpFailure(format!(
            "the answer is larger than {MAX_BODY} bytes"
        )));
    }
    let mut out = HttpResponse::new(bytes.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl OidcProvider {
    /// Reads the issuer's discovery document and keys.
    pub async fn discover(settings: OidcSettings) -> Result<OidcProvider, OidcError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Config(format!("cannot build an HTTP client: {e}")))?;
        let discovery_failed = |detail: String| OidcError::Discovery {
            issuer: settings.issuer.clone(),
            detail,
        };
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let call = {
            let http = http.clone();
            move |req: HttpRequest| send(http.clone(), req)
        };
        let metadata = CoreProviderMetadata::discover_async(issuer, &call)
            .await
            .map_err(|e| discovery_failed(error_chain(&e)))?;
        let token_url = metadata.token_endpoint().cloned().ok_or_else(|| {
            discovery_failed("the discovery document has no token_endpoint".into())
        })?;
        let jwks_url = metadata.jwks_uri().clone();
        let jwks = metadata.jwks().clone();
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| OidcError::Config(format!("redirect_url: {e}")))?;
        let client = DiscoveredClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(
                settings.client_secret.expose().to_string(),
            )),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect);
        Ok(OidcProvider {
            settings,
            client,
            jwks_url,
            jwks: RwLock::new(jwks),
            http,
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Starts a sign-in: the URL to send the browser to. `return_to` is
    /// handed back by [`OidcProvider::finish`] (the caller checks it is
    /// one of its own paths).
    pub fn begin(&self, purpose: SignInPurpose, return_to: &str) -> Result<SignInStart, OidcError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(s.clone()));
        }
        // Every sign-in must be recent at the IdP (a session starts fresh
        // enough to approve); a fresh one must happen now.
        request = request.set_max_age(self.settings.fresh_max_age);
        if purpose == SignInPurpose::Fresh {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        let (url, state, nonce) = request.url();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.began.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(OidcError::TooManyPending);
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                verifier,
                nonce,
                began: Instant::now(),
                began_unix: unix_now(),
                purpose,
                return_to: return_to.to_string(),
            },
        );
        Ok(SignInStart {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
        })
    }

    /// Finishes a sign-in from the callback's parameters: the state must
    /// be one this provider handed out and not yet used; the code is
    /// exchanged and the ID token verified (module docs).
    pub async fn finish(&self, callback: &OidcCallback) -> Result<VerifiedIdentity, OidcError> {
        // The state is taken out first: whatever happens next, it is spent.
        let pending = {
            let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            callback
                .state
                .as_deref()
                .and_then(|s| map.remove(s))
                .filter(|p| p.began.elapsed() < PENDING_TTL)
        };
        let Some(pending) = pending else {
            return Err(OidcError::UnknownState);
        };
        if let Some(error) = &callback.error {
            return Err(OidcError::ProviderRefused {
                error: error.clone(),
                description: callback.error_description.clone(),
            });
        }
        let Some(code) = callback.code.as_deref().filter(|c| !c.is_empty()) else {
            return Err(OidcError::ProviderRefused {
                error: "invalid_request".into(),
                description: Some("the callback carries no code".into()),
            });
        };
        let call = {
            let http = self.http.clone();
            move |req: HttpRequest| send(http.clone(), req)
        };
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(pending.verifier)
            .request_async(&call)
            .await
            .map_err(|e| OidcError::CodeExchange(token_error(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response carries no id_token".into()))?;
        let claims = match self.verify(id_token, &pending.nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys: read them again once.
                let fresh = JsonWebKeySet::fetch_async(&self.jwks_url, &call)
                    .await
                    .map_err(|e| {
                        OidcError::IdToken(format!(
                            "cannot read the provider's keys again: {}",
                            error_chain(&e)
                        ))
                    })?;
                *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                self.verify(id_token, &pending.nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::IdToken(claims_error(&e)))?;
        let email = claims
            .email()
            .map(|e| e.as_str().to_string())
            .ok_or(OidcError::MissingClaim("email"))?;
        if claims.email_verified() == Some(false) {
            return Err(OidcError::IdToken(format!(
                "the provider says the email {email} is not verified"
            )));
        }
        let groups = groups_from(
            claims
                .additional_claims()
                .other
                .get(&self.settings.groups_claim),
        );
        let auth_time = claims.auth_time().map(|t| t.timestamp());
        // The IdP must have authenticated the person within max_age (an
        // IdP that ignores max_age does not get a stale sign-in through);
        // for a fresh sign-in, after we asked.
        let max_age = i64::try_from(self.settings.fresh_max_age.as_secs()).unwrap_or(i64::MAX);
        let fresh = match auth_time {
            Some(t) if t.saturating_add(max_age).saturating_add(SKEW_SECS) >= unix_now() => {
                pending.purpose == SignInPurpose::Normal || t + SKEW_SECS >= pending.began_unix
            }
            _ => false,
        };
        if !fresh {
            return Err(OidcError::NotFresh);
        }
        let fresh = pending.purpose == SignInPurpose::Fresh;
        Ok(VerifiedIdentity {
            issuer: self.settings.issuer.clone(),
            subject: claims.subject().as_str().to_string(),
            email,
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            groups,
            auth_time,
            fresh,
            return_to: pending.return_to,
        })
    }

    fn verify<'t>(
        &self,
        id_token: &'t openidconnect::IdToken<
            ExtraClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
        nonce: &Nonce,
    ) -> Result<
        &'t openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>,
        ClaimsVerificationError,
    > {
        let jwks = self.jwks.read().unwrap_or_else(|p| p.into_inner()).clone();
        let verifier: IdTokenVerifier<'_, CoreJsonWebKey> =
            IdTokenVerifier::new_confidential_client(
                ClientId::new(self.settings.client_id.clone()),
                ClientSecret::new(self.settings.client_secret.expose().to_string()),
                IssuerUrl::new(self.settings.issuer.clone())
                    .map_err(|e| ClaimsVerificationError::Other(e.to_string()))?,
                jwks,
            )
            // Okta signs with RS256; a token claiming HS256 (keyed with
            // the client secret) or `none` is not accepted.
            .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
        id_token.claims(&verifier, nonce)
    }

    /// How many sign-ins are pending (tests, metrics).
    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The groups claim: an array of names, or one name.
fn groups_from(v: Option<&serde_json::Value>) -> BTreeSet<String> {
    match v {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => [s.clone()].into(),
        _ => BTreeSet::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn token_error<RE: std::error::Error + 'static>(
    e: &RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!(
            "{}{}",
            r.error().as_ref(),
            r.error_description()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        other => error_chain(other),
    }
}

fn claims_error(e: &ClaimsVerificationError) -> String {
    match e {
        ClaimsVerificationError::SignatureVerification(s) => {
            format!("its signature does not verify with the provider's keys ({s})")
        }
        ClaimsVerificationError::InvalidAudience(d) => {
            format!("it was issued for another client ({d})")
        }
        ClaimsVerificationError::InvalidIssuer(d) => {
            format!("it was issued by another issuer ({d})")
        }
        ClaimsVerificationError::Expired(d) => format!("it has expired ({d})"),
        ClaimsVerificationError::InvalidNonce(d) => {
            format!("its nonce is not this sign-in's ({d})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn groups_and_emails_map_to_roles_and_nothing_else_does() {
        let map = RoleMap::parse(&roles(&[
            ("admin", &["group:roster-admins"]),
            ("approver", &["group:finance", "CFO@acme.example"]),
            ("viewer", &[]),
        ]))
        .unwrap();
        let g = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            map.roles_of("x@acme.example", &g(&["roster-admins"])),
            [Role::Admin].into()
        );
        assert_eq!(
            map.roles_of("cfo@acme.example", &g(&[])),
            [Role::Approver].into()
        );
        assert_eq!(
            map.roles_of("x@acme.example", &g(&["finance", "roster-admins"])),
            [Role::Approver, Role::Admin].into()
        );
        assert!(map.roles_of("x@acme.example", &g(&["Everyone"])).is_empty());
        assert!(
            RoleMap::default()
                .roles_of("x@acme.example", &g(&["roster-admins"]))
                .is_empty()
        );
    }

    #[test]
    fn a_bad_role_map_is_refused_naming_the_entry() {
        let e = RoleMap::parse(&roles(&[("superuser", &["group:x"])])).unwrap_err();
        assert!(
            e.contains("web.roles.superuser") && e.contains("viewer, operator"),
            "{e}"
        );
        let e = RoleMap::parse(&roles(&[("admin", &["roster-admins"])])).unwrap_err();
        assert!(e.contains("group:NAME"), "{e}");
        let e = RoleMap::parse(&roles(&[("admin", &["group: "])])).unwrap_err();
        assert!(e.contains("names no group"), "{e}");
    }

    fn raw(issuer: &str) -> RawWebOidc {
        RawWebOidc {
            issuer: issuer.into(),
            client_id: "0oa1".into(),
            client_secret: SecretRef::Env { env: "X".into() },
            redirect_url: "http://127.0.0.1:8080/ui/auth/oidc/callback".into(),
            groups_claim: None,
            scopes: None,
            fresh_max_age_secs: None,
            allow_private_network: false,
        }
    }

    #[test]
    fn the_issuer_must_be_https_off_loopback_and_never_metadata() {
        let none = BTreeMap::new();
        assert!(OidcSettings::new(&raw("https://acme.okta.com"), &none, "s".into(), false).is_ok());
        assert!(
            OidcSettings::new(
                &raw("http://127.0.0.1:9/oauth2/default"),
                &none,
                "s".into(),
                false
            )
            .is_ok()
        );
        let e =
            OidcSettings::new(&raw("http://acme.okta.com"), &none, "s".into(), false).unwrap_err();
        assert!(e.to_string().contains("must be https"), "{e}");
        let e = OidcSettings::new(&raw("http://169.254.169.254"), &none, "s".into(), false)
            .unwrap_err();
        assert!(e.to_string().contains("EGRESS-0002"), "{e}");
        let e =
            OidcSettings::new(&raw("https://acme.okta.com"), &none, " ".into(), false).unwrap_err();
        assert!(e.to_string().contains("client_secret is empty"), "{e}");
    }

    #[test]
    fn the_documented_web_tables_parse() {
        let doc = r#"
[oidc]
issuer = "https://acme.okta.com/oauth2/default"
client_id = "0oa1roster2ui"
client_secret = { env = "ROSTER_OIDC_CLIENT_SECRET" }
redirect_url = "https://roster.acme.example/ui/auth/oidc/callback"
groups_claim = "groups"

[roles]
admin = ["group:roster-admins"]
approver = ["group:finance-approvers", "cfo@acme.example"]
"#;
        let web: RawWeb = toml::from_str(doc).unwrap();
        let raw = web.oidc.unwrap();
        let s = OidcSettings::new(&raw, &web.roles, "x".into(), false).unwrap();
        assert_eq!(s.issuer, "https://acme.okta.com/oauth2/default");
        assert_eq!(s.scopes, ["openid", "email", "profile", "groups"]);
        assert_eq!(
            s.roles.roles_of("cfo@acme.example", &BTreeSet::new()),
            [Role::Approver].into()
        );
        let e = toml::from_str::<RawWeb>("[oidc]\nissuer = \"x\"\ntypo = 1").unwrap_err();
        assert!(
            e.to_string().contains("typo") || e.to_string().contains("unknown"),
            "{e}"
        );
    }

    #[test]
    fn the_groups_claim_may_be_a_list_or_one_name() {
        assert_eq!(
            groups_from(Some(&serde_json::json!(["a", "b", 3]))).len(),
            2
        );
        assert_eq!(groups_from(Some(&serde_json::json!("a"))).len(), 1);
        assert!(groups_from(None).is_empty());
    }
}
