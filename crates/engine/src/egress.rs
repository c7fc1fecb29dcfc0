//! Where roster may send requests: the check every outbound URL in the
//! config (connector base URLs; any future webhook) passes at load.
//!
//! A base URL is a credential's destination: roster sends the vendor's
//! secret there. One pointing at the cloud's instance metadata service, a
//! link-local address or the private network (a typo, a pasted example, an
//! edited config) would hand that secret, and roster's reach, to whatever
//! listens there (server-side request forgery). So:
//!
//! * **cloud metadata** (`169.254.169.254`, `fd00:ec2::254`,
//!   `100.100.100.200`, `metadata.google.internal`, ...) is always refused:
//!   no app roster manages lives there;
//! * **link-local** (`169.254.0.0/16`, `fe80::/10`) and **private**
//!   addresses (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`,
//!   `0.0.0.0/8`, `fc00::/7`) are refused unless the config opts in with
//!   `allow_private_network = true` (for one connection, or at the top
//!   level for all), for apps deliberately hosted inside the network;
//! * **loopback** (`127.0.0.0/8`, `::1`, `localhost`) is allowed: it
//!   reaches only roster's own host, whose operator already controls
//!   roster itself; the simulators, the demo and local egress proxies live
//!   there.
//!
//! Redirects are never followed (the connectors' and the audit webhook's
//! HTTP clients refuse them), so a checked URL cannot hand a request on to
//! an unchecked one. Host names are not resolved at load (DNS can change
//! after it, and a load must not depend on the network); the connectors'
//! HTTP clients check every address a name resolves to when they connect
//! (`roster_connectors::egress`, the same classification), so a public
//! name pointing at a private or metadata address is refused there. Literal addresses in every form the URL standard accepts
//! (`http://0xA9FEA9FE/`, `[::ffff:169.254.169.254]`) and the metadata
//! host names are.

use std::net::IpAddr;

use roster_connectors::egress::{Class, classify};

/// Host names of cloud instance-metadata services (lower case).
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Why an outbound URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("EGRESS-0001 {url:?} is not an http(s) URL: {detail}")]
    Malformed { url: String, detail: String },
    #[error(
        "EGRESS-0002 {url:?} is a cloud metadata address ({host}); roster never sends requests (or credentials) there"
    )]
    Metadata { url: String, host: String },
    #[error(
        "EGRESS-0003 {url:?} is a {kind} address ({host}); if the app really is hosted there, set `allow_private_network = true` on this connection (or at the top of the config)"
    )]
    Private {
        url: String,
        host: String,
        kind: &'static str,
    },
}

impl EgressError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            EgressError::Malformed { .. } => "EGRESS-0001",
            EgressError::Metadata { .. } => "EGRESS-0002",
            EgressError::Private { .. } => "EGRESS-0003",
        }
    }
}

/// Checks one outbound URL. `allow_private` admits link-local and private
/// addresses (never metadata).
pub fn check_url(raw: &str, allow_private: bool) -> Result<(), EgressError> {
    let malformed = |detail: String| EgressError::Malformed {
        url: raw.to_string(),
        detail,
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(malformed(format!("scheme {:?}", url.scheme())));
    }
    let host = url
        .host()
        .ok_or_else(|| malformed("it has no host".into()))?;
    let ip = match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(EgressError::Metadata {
                    url: raw.to_string(),
                    host: name,
                });
            }
            return Ok(());
        }
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
    };
    match classify(ip) {
        Class::Public | Class::Loopback => Ok(()),
        Class::Metadata => Err(EgressError::Metadata {
            url: raw.to_string(),
            host: ip.to_string(),
        }),
        Class::LinkLocal | Class::Private if allow_private => Ok(()),
        c => Err(EgressError::Private {
            url: raw.to_string(),
            host: ip.to_string(),
            kind: if c == Class::LinkLocal {
                "link-local"
            } else {
                "private-network"
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_loopback_pass() {
        for u in [
            "https://integrations.expensify.com/Integration-Server/ExpensifyIntegrations",
            "https://acme.okta.com",
            "http://127.0.0.1:8080",
            "http://localhost:9000/scim",
            "http://[::1]:8080",
            "https://8.8.8.8/",
        ] {
            assert_eq!(check_url(u, false), Ok(()), "{u}");
        }
    }

    #[test]
    fn metadata_is_refused_even_when_private_is_allowed() {
        for u in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0xA9FEA9FE/",
            "http://2852039166/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://100.100.100.200/",
        ] {
            for allow in [false, true] {
                assert!(
                    matches!(check_url(u, allow), Err(EgressError::Metadata { .. })),
                    "{u} allow={allow}: {:?}",
                    check_url(u, allow)
                );
            }
        }
    }

    #[test]
    fn link_local_and_private_need_the_opt_in() {
        for (u, kind) in [
            ("http://169.254.10.1/", "link-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://10.0.0.5:8443/", "private-network"),
            ("http://172.16.0.1/", "private-network"),
            ("http://172.31.255.255/", "private-network"),
            ("http://192.168.1.10/", "private-network"),
            ("http://[fc00::1]/", "private-network"),
            ("http://[fd12:3456::1]/", "private-network"),
            ("http://100.64.0.1/", "private-network"),
            ("http://0.0.0.0:8080/", "private-network"),
        ] {
            match check_url(u, false) {
                Err(EgressError::Private { kind: k, .. }) => assert_eq!(k, kind, "{u}"),
                other => panic!("{u}: {other:?}"),
            }
            assert_eq!(check_url(u, true), Ok(()), "{u} with the opt-in");
        }
        // Just outside the private ranges.
        for u in [
            "http://172.32.0.1/",
            "http://11.0.0.1/",
            "http://100.128.0.1/",
        ] {
            assert_eq!(check_url(u, false), Ok(()), "{u}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host() {
        for u in [
            "file:///etc/passwd",
            "ftp://x.example/",
            "not a url",
            "http://",
        ] {
            assert!(
                matches!(check_url(u, true), Err(EgressError::Malformed { .. })),
                "{u}: {:?}",
                check_url(u, true)
            );
        }
    }

    #[test]
    fn the_error_names_the_fix() {
        let e = check_url("http://10.1.2.3/", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_private_network = true"), "{e}");
    }
}
