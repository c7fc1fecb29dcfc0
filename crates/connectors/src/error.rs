//! Connector errors: what went wrong with a whole call, classified so the
//! driver knows whether trying again can help.
//!
//! Every variant has a stable code (`CONN-0001`...) that operators and
//! scripts may match on. Messages never contain secrets: connectors build
//! `detail` strings from vendor messages and transport errors only after
//! scrubbing credentials out of them.

use std::time::Duration;

use roster_core::Operation;

/// A failed connector call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The credentials were refused or lack a permission. Not retryable:
    /// someone has to fix the configuration.
    #[error("CONN-0001 unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The app said to slow down.
    #[error("CONN-0002 rate limited by the app{}", fmt_after(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, dropped connections: may work on a later attempt.
    #[error("CONN-0003 transient failure: {detail}")]
    Transient { detail: String },
    /// The app refused the request as invalid. Not retryable.
    #[error("CONN-0004 the app rejected the request (code {code}): {detail}")]
    Vendor { code: String, detail: String },
    /// The app answered something the connector does not understand.
    #[error("CONN-0005 unexpected response from the app: {detail}")]
    Protocol { detail: String },
    /// The connector is configured wrongly (bad URL, missing setting).
    #[error("CONN-0006 invalid connector configuration: {detail}")]
    Config { detail: String },
    /// The connector can't do this operation.
    #[error("CONN-0007 the connector does not support {operation}")]
    Unsupported { operation: Operation },
    /// The listing moved under the reader (offset paging: an account was
    /// added or removed before the current position, or the app ignored
    /// the position). Not retryable: the same page would move the same
    /// way; the read ends incomplete and the next run reads again.
    #[error("CONN-0008 the listing changed during the read: {detail}")]
    ListingChanged { detail: String },
}

fn fmt_after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("; retry after {:.1} s", d.as_secs_f64()),
        None => String::new(),
    }
}

impl ConnectorError {
    /// The stable code, e.g. `CONN-0002`.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::Unauthorized { .. } => "CONN-0001",
            ConnectorError::RateLimited { .. } => "CONN-0002",
            ConnectorError::Transient { .. } => "CONN-0003",
            ConnectorError::Vendor { .. } => "CONN-0004",
            ConnectorError::Protocol { .. } => "CONN-0005",
            ConnectorError::Config { .. } => "CONN-0006",
            ConnectorError::Unsupported { .. } => "CONN-0007",
            ConnectorError::ListingChanged { .. } => "CONN-0008",
        }
    }

    /// Whether the same call may succeed later. Protocol errors count as
    /// retryable: a truncated or garbled body is usually a transport
    /// accident, and attempts are bounded.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. }
                | ConnectorError::Transient { .. }
                | ConnectorError::Protocol { .. }
        )
    }

    /// The app's requested pause, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_in_messages() {
        let e = ConnectorError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.code(), "CONN-0002");
        assert_eq!(
            e.to_string(),
            "CONN-0002 rate limited by the app; retry after 3.0 s"
        );
        assert!(e.is_retryable());
        let e = ConnectorError::Unauthorized {
            detail: "bad".into(),
        };
        assert!(e.to_string().starts_with("CONN-0001"));
        assert!(!e.is_retryable());
        assert!(
            !ConnectorError::Vendor {
                code: "410".into(),
                detail: String::new()
            }
            .is_retryable()
        );
    }
}
