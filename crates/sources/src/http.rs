//! What the sources share on the wire, on top of the connectors' HTTP
//! helpers (`roster_connectors::http`: the checked resolver, no
//! redirects, one classification of statuses and transport failures).

use std::time::Duration;

use reqwest::header::HeaderMap;
use roster_connectors::SecretString;
use roster_connectors::http::Answer;

use crate::{SourceError, SourceRateInfo};

/// Builds the HTTP client every source uses (see
/// `roster_connectors::http::client`).
pub(crate) fn client(
    timeout: Duration,
    allow_private_network: bool,
) -> Result<reqwest::Client, SourceError> {
    Ok(roster_connectors::http::client(
        timeout,
        allow_private_network,
    )?)
}

pub(crate) fn base_url(raw: &str, what: &str) -> Result<String, SourceError> {
    Ok(roster_connectors::http::base_url(raw, what)?)
}

/// Sends and reads the whole answer, scrubbing `secrets` from errors.
pub(crate) async fn send(
    vendor: &str,
    req: reqwest::RequestBuilder,
    secrets: &[&SecretString],
) -> Result<Answer, SourceError> {
    Ok(Answer::of(vendor, req, secrets).await?)
}

/// Okta-style `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (epoch
/// seconds). The reset is waited for until that second has begun.
pub(crate) fn rate_headers(headers: &HeaderMap) -> Option<SourceRateInfo> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let remaining = num("x-rate-limit-remaining")?;
    let limit = num("x-rate-limit-limit").map(|l| l.min(u32::MAX as u64) as u32);
    let reset_after = num("x-rate-limit-reset").map(|at| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_secs(at).saturating_sub(now)
    });
    Some(SourceRateInfo::new(
        limit,
        Some(remaining.min(u32::MAX as u64) as u32),
        reset_after,
    ))
}

/// Percent-encodes a query or path component.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL the IdP handed back (a `next` link) must point where the source
/// was configured to go: a link elsewhere would carry the credential away.
pub(crate) fn same_origin(link: &str, base: &str) -> Result<(), SourceError> {
    let origin = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    match (origin(link), origin(base)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(SourceError::Protocol {
            detail: format!("the identity provider's next link {link:?} leaves {base}"),
        }),
    }
}

/// The outcome of a write (revoking a person's sessions): any 2xx is
/// done; 429 is [`SourceError::RateLimited`] with the IdP's
/// `Retry-After`; everything else is classified as the connectors
/// classify statuses, with `message` (already scrubbed) and `fix`, the
/// permission the credential needs.
pub(crate) fn write_outcome(
    vendor: &str,
    answer: &Answer,
    message: &str,
    fix: &str,
) -> Result<(), SourceError> {
    if answer.status.is_success() {
        return Ok(());
    }
    if answer.status.as_u16() == 429 {
        return Err(SourceError::RateLimited {
            retry_after: roster_connectors::http::retry_after(&answer.headers),
        });
    }
    Err(
        roster_connectors::http::status_error(vendor, answer.status, &answer.headers, message, fix)
            .into(),
    )
}
