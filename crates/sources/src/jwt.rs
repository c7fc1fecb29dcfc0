//! RS256 JSON Web Tokens, signed with ring (already in the tree through
//! rustls): Google's service-account assertion (RFC 7523 `jwt-bearer`
//! grant) and OAuth private-key JWT client authentication.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use roster_connectors::SecretString;
use serde_json::Value;

use crate::SourceError;

/// An RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Google
/// and Okta hand out) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub(crate) fn rsa_key(pem: &SecretString) -> Result<RsaKeyPair, SourceError> {
    let text = pem.expose_secret().replace("\\n", "\n");
    let pkcs1 = text.contains("BEGIN RSA PRIVATE KEY");
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = STANDARD.decode(body).map_err(|_| SourceError::Config {
        detail: "the private key is not PEM (base64 between BEGIN and END lines)".into(),
    })?;
    let key = if pkcs1 {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    };
    key.map_err(|e| SourceError::Config {
        detail: format!("the private key is not a usable RSA key ({e})"),
    })
}

/// `header.claims.signature`, RS256.
pub(crate) fn sign(
    key: &RsaKeyPair,
    kid: Option<&str>,
    claims: &Value,
) -> Result<String, SourceError> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = Value::String(k.to_string());
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| SourceError::Config {
        detail: "signing the token assertion failed".into(),
    })?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
