//! HTTP plumbing shared by the REST connectors: building a client, turning
//! transport failures and HTTP statuses into [`ConnectorError`]s, and
//! reading `Retry-After`.
//!
//! Classification (the same for every vendor, so the retry policy
//! means the same thing everywhere; see [`crate::retry`]):
//!
//! | what | error |
//! |---|---|
//! | connect/timeout/reset | `Transient` |
//! | body cut short or not the expected JSON | `Protocol` (retryable) |
//! | 401, 403 | `Unauthorized` |
//! | 429 | `RateLimited` (with `Retry-After` when given) |
//! | 408, 5xx | `Transient` |
//! | other 4xx | `Vendor` |

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;
use url::Url;

use crate::{ConnectorError, SecretString};

/// Builds a client with a timeout. reqwest is built without a bundled TLS
/// provider (aws-lc is slow to build); install ring's unless the process
/// already chose one.
pub fn client(
    timeout: Duration,
    allow_private_network: bool,
) -> Result<reqwest::Client, ConnectorError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(timeout)
        // Never follow a redirect: the base URL passed roster's outbound
        // check (no metadata or private addresses unless allowed), and a
        // redirect would carry the request, credentials and all, past it.
        // Vendor APIs answer where they are asked.
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(CheckedResolver {
            allow_private_network,
        }))
        .build()
        .map_err(|e| ConnectorError::Config {
            detail: format!("cannot build the HTTP client: {e}"),
        })
}

/// Parses and checks a base URL (http or https), without a trailing `/`.
pub fn base_url(raw: &str, what: &str) -> Result<String, ConnectorError> {
    let url = Url::parse(raw.trim()).map_err(|e| ConnectorError::Config {
        detail: format!("{what} base_url {raw:?} is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConnectorError::Config {
            detail: format!("{what} base_url {raw:?} must be http(s)"),
        });
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The `Retry-After` header as a wait from now, in seconds or as an HTTP
/// date ([`crate::retry::parse_retry_after`]); an unreadable value is
/// ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

/// [`retry_after`] against a given clock, so both forms are testable.
pub fn retry_after_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    crate::retry::parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

/// A transport failure, scrubbed of `secrets`.
pub fn transport(vendor: &str, e: reqwest::Error, secrets: &[&SecretString]) -> ConnectorError {
    let is_decode = e.is_decode() || e.is_body();
    let e = e.without_url();
    let mut detail = e.to_string();
    // reqwest's Display hides the cause ("error sending request"); the
    // source chain says what actually happened.
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    let detail = scrub(&detail, secrets);
    if is_decode {
        ConnectorError::Protocol {
            detail: format!("the answer from {vendor} was cut short or garbled: {detail}"),
        }
    } else {
        ConnectorError::Transient {
            detail: format!("request to {vendor} failed: {detail}"),
        }
    }
}

pub fn scrub(text: &str, secrets: &[&SecretString]) -> String {
    secrets.iter().fold(text.to_string(), |t, s| s.scrub(&t))
}

/// Classifies a non-success HTTP status. `message` is the vendor's own
/// explanation (already scrubbed); `credentials_hint` says what to check on
/// 401/403.
pub fn status_error(
    vendor: &str,
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    credentials_hint: &str,
) -> ConnectorError {
    let code = status.as_u16();
    match code {
        401 | 403 => ConnectorError::Unauthorized {
            detail: format!("{vendor} answered HTTP {code} ({message}); {credentials_hint}"),
        },
        429 => ConnectorError::RateLimited {
            retry_after: retry_after(headers),
        },
        408 | 500..=599 => ConnectorError::Transient {
            detail: format!("{vendor} answered HTTP {code}: {message}"),
        },
        _ => ConnectorError::Vendor {
            code: code.to_string(),
            detail: format!("{vendor} answered HTTP {code}: {message}"),
        },
    }
}

/// A response read to the end: status, headers and body text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// Sends `req` and reads the whole body.
    pub async fn of(
        vendor: &str,
        req: reqwest::RequestBuilder,
        secrets: &[&SecretString],
    ) -> Result<Answer, ConnectorError> {
        let resp = req
            .send()
            .await
            .map_err(|e| transport(vendor, e, secrets))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(vendor, e, secrets))?;
        // A successful answer is read strictly: decoding a garbled body
        // leniently (replacement characters) can turn an account's id
        // into another valid-looking one, and the read would look
        // complete. Refusals only feed messages, so they may be lossy.
        let text = match String::from_utf8(bytes.to_vec()) {
            Ok(text) => text,
            Err(_) if status.is_success() => {
                return Err(ConnectorError::Protocol {
                    detail: format!(
                        "{vendor} answered HTTP {} with a body that is not UTF-8 (garbled)",
                        status.as_u16()
                    ),
                });
            }
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(Answer {
            status,
            headers,
            text,
        })
    }

    /// The body as JSON, or a `Protocol` error (a truncated body lands
    /// here).
    pub fn json(&self, vendor: &str) -> Result<Value, ConnectorError> {
        serde_json::from_str(&self.text).map_err(|e| ConnectorError::Protocol {
            detail: format!(
                "{vendor} answered HTTP {} with a body that is not complete JSON ({e})",
                self.status.as_u16()
            ),
        })
    }
}

/// A JSON scalar as text: a non-blank string (trimmed) or a number; with
/// `bools`, a boolean too. Vendors send ids and limits either way.
pub fn scalar(v: &Value, bools: bool) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) if bools => Some(b.to_string()),
        _ => None,
    }
}

/// `v[key]` as text (see [`scalar`]).
pub fn text(v: &Value, key: &str) -> Option<String> {
    scalar(v.get(key)?, false)
}

/// The value at JSON `pointer`, telling "absent" (`Ok(None)`: a member
/// missing, or null on the way) from "garbled" (`Err`: a scalar or array
/// on the way where an object belongs).
fn marker_at<'a>(v: &'a Value, pointer: &str) -> Result<Option<&'a Value>, String> {
    let mut cur = v;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Value::Null => return Ok(None),
            Value::Object(o) => match o.get(&token) {
                Some(next) => next,
                None => return Ok(None),
            },
            other => {
                return Err(format!(
                    "{pointer} meets {other} where an object with {token:?} belongs"
                ));
            }
        };
    }
    Ok((!cur.is_null()).then_some(cur))
}

/// A listing's continuation (next cursor, next URL) at JSON `pointer`:
/// `Ok(None)` when it is absent, null or blank (the listing ended), its
/// text when it is text or a number. Anything else on the way (`"links":
/// true` where `/links/next` is the marker) or at the end is a garbled
/// answer, `Err` saying what was found: read as "no next page" it would
/// end the read early and make it look complete.
pub fn continuation_at(v: &Value, pointer: &str) -> Result<Option<String>, String> {
    match marker_at(v, pointer)? {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(m @ (Value::String(_) | Value::Number(_))) => Ok(scalar(m, false)),
        Some(other) => Err(format!("{pointer} holds {other}, not a continuation")),
    }
}

/// A flag such as `has_more` at JSON `pointer`: `Ok(None)` when absent or
/// null, `Err` when it (or the way to it) is garbled (see
/// [`continuation_at`]).
pub fn flag_at(v: &Value, pointer: &str) -> Result<Option<bool>, String> {
    match marker_at(v, pointer)? {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!("{pointer} holds {other}, not true or false")),
    }
}

/// roster attributes from a vendor record: each `(wire field, attribute)`
/// pair whose field holds text.
pub fn wire_attributes(v: &Value, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|(wire, name)| text(v, wire).map(|t| (name.to_string(), t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_for_the_driver() {
        let h = HeaderMap::new();
        let e = status_error("X", StatusCode::UNAUTHORIZED, &h, "no", "check the token");
        assert_eq!(e.code(), "CONN-0001");
        assert!(e.to_string().contains("check the token"));
        assert!(status_error("X", StatusCode::BAD_GATEWAY, &h, "", "").is_retryable());
        assert!(!status_error("X", StatusCode::CONFLICT, &h, "", "").is_retryable());
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            status_error("X", StatusCode::TOO_MANY_REQUESTS, &h, "", "").retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // 1994-11-06 08:49:30 UTC
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v.parse().unwrap());
            h
        };
        assert_eq!(
            retry_after_at(&h("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after_at(&h(" 0 "), now), Some(Duration::ZERO));
        // IMF-fixdate, seven seconds ahead of the clock.
        assert_eq!(
            retry_after_at(&h("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            Some(Duration::from_secs(7))
        );
        // The obsolete forms a server may still send.
        assert_eq!(
            retry_after_at(&h("Sunday, 06-Nov-94 08:49:37 GMT"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_at(&h("Sun Nov  6 08:49:37 1994"), now),
            Some(Duration::from_secs(7))
        );
        // A date already past: go now.
        assert_eq!(
            retry_after_at(&h("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_at(&h("soon"), now), None);
        assert_eq!(retry_after_at(&HeaderMap::new(), now), None);
        // Through the real clock: a date a minute ahead is about a minute.
        let ahead = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let got = retry_after(&h(&ahead)).unwrap();
        assert!(
            got > Duration::from_secs(55) && got <= Duration::from_secs(61),
            "{got:?}"
        );
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert_eq!(
            base_url("http://h:1/scim/v2/", "x").unwrap(),
            "http://h:1/scim/v2"
        );
        assert!(base_url("ftp://h", "x").is_err());
        assert!(base_url("not a url", "x").is_err());
    }
}

/// Resolves host names with the system resolver and drops the addresses
/// the connection may not reach ([`crate::egress::permitted`]): the
/// configured URL was checked at load, but only DNS knows where a name
/// points when the request is made.
struct CheckedResolver {
    allow_private_network: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private_network;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<std::net::SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| crate::egress::permitted(a.ip(), allow))
                .collect();
            if ok.is_empty() && !all.is_empty() {
                let refused = std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{host} resolves only to addresses roster may not reach ({}): cloud metadata \
                         never, link-local and private networks only with allow_private_network = true",
                        all.iter()
                            .map(|a| a.ip().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod resolver_tests {
    use reqwest::dns::Resolve;

    use super::CheckedResolver;

    #[tokio::test]
    async fn loopback_names_resolve_and_every_address_is_checked() {
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<_> = CheckedResolver {
            allow_private_network: false,
        }
        .resolve(name)
        .await
        .expect("localhost is loopback: allowed")
        .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
