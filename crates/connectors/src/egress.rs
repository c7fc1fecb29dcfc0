//! Which network addresses roster may send a request to.
//!
//! The one classification behind both checks: the engine's check of
//! configured URLs at load (`roster_engine::egress`), and the connectors'
//! HTTP clients, whose DNS resolver drops addresses a connection may not
//! reach, so a public host name that resolves to a private or metadata
//! address is refused when it is used, not only a literal one at load.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Public,
    Loopback,
    Metadata,
    LinkLocal,
    Private,
}

/// What kind of address `ip` is.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Class::Metadata
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_private()
        // Carrier-grade NAT space, used inside some clouds' networks.
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // "This network": 0.0.0.0 reaches the local host's services.
        || o[0] == 0
    {
        Class::Private
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Class::Metadata
    } else if ip.is_loopback() {
        Class::Loopback
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        Class::LinkLocal
    } else if (seg[0] & 0xfe00) == 0xfc00 || ip.is_unspecified() {
        Class::Private
    } else {
        Class::Public
    }
}

/// An HTTP client for `timeout` that never follows redirects and resolves
/// host names through [`permitted`]: what every connector uses, for other
/// outbound calls (the audit log's webhook witness) to use too.
pub fn checked_client(
    timeout: std::time::Duration,
    allow_private_network: bool,
) -> Result<reqwest::Client, crate::ConnectorError> {
    crate::http::client(timeout, allow_private_network)
}

/// May a request go to `ip`? Metadata addresses never; link-local and
/// private ones only when the connection allows private networks.
pub fn permitted(ip: IpAddr, allow_private: bool) -> bool {
    match classify(ip) {
        Class::Public | Class::Loopback => true,
        Class::Metadata => false,
        Class::LinkLocal | Class::Private => allow_private,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_never_private_only_when_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for allow in [false, true] {
            assert!(!permitted(ip("169.254.169.254"), allow));
            assert!(!permitted(ip("fd00:ec2::254"), allow));
            assert!(permitted(ip("127.0.0.1"), allow));
            assert!(permitted(ip("8.8.8.8"), allow));
        }
        assert!(!permitted(ip("10.1.2.3"), false));
        assert!(permitted(ip("10.1.2.3"), true));
        assert!(!permitted(ip("fe80::1"), false));
    }
}
