//! Source errors: what went wrong with a whole call, classified so the
//! read loop knows whether trying again can help, and whether an
//! incremental read must give way to a full one.
//!
//! Every variant has a stable code (`SRC-0001`...). Messages never contain
//! secrets.

use std::time::Duration;

use roster_connectors::ConnectorError;

/// A failed source call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The credentials were refused or lack a permission.
    #[error("SRC-0001 unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The IdP said to slow down.
    #[error("SRC-0002 rate limited by the identity provider{}", fmt_after(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, dropped connections, an access token that expired
    /// under the call: may work on a later attempt.
    #[error("SRC-0003 transient failure: {detail}")]
    Transient { detail: String },
    /// The IdP refused the request as invalid.
    #[error("SRC-0004 the identity provider rejected the request (code {code}): {detail}")]
    Vendor { code: String, detail: String },
    /// The IdP answered something the source does not understand (a
    /// truncated page lands here).
    #[error("SRC-0005 unexpected response from the identity provider: {detail}")]
    Protocol { detail: String },
    /// The source is configured wrongly.
    #[error("SRC-0006 invalid source configuration: {detail}")]
    Config { detail: String },
    /// The source can't do this (e.g. incremental reads).
    #[error("SRC-0007 the source does not support {what}")]
    Unsupported { what: String },
    /// The incremental cursor is no longer valid (Graph's deltaLink
    /// expired, Okta's System Log no longer reaches back that far, a token
    /// from another source or version). Not retryable: do a full read.
    #[error("SRC-0008 the sync cursor has expired; a full read is needed: {detail}")]
    CursorExpired { detail: String },
    /// A page token this source did not issue (or from an older version).
    #[error("SRC-0009 invalid page token: {detail}")]
    BadToken { detail: String },
    /// So many people changed since the cursor (a lockout storm, a bulk
    /// import) that re-reading each would cost more requests than a full
    /// read. Not retryable: do a full read.
    #[error(
        "SRC-0010 at least {changed} people changed since the cursor, more than an incremental read re-reads one by one ({max}); a full read is needed"
    )]
    TooManyChanges { changed: usize, max: usize },
}

fn fmt_after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("; retry after {:.1} s", d.as_secs_f64()),
        None => String::new(),
    }
}

impl SourceError {
    /// The stable code, e.g. `SRC-0008`.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Unauthorized { .. } => "SRC-0001",
            SourceError::RateLimited { .. } => "SRC-0002",
            SourceError::Transient { .. } => "SRC-0003",
            SourceError::Vendor { .. } => "SRC-0004",
            SourceError::Protocol { .. } => "SRC-0005",
            SourceError::Config { .. } => "SRC-0006",
            SourceError::Unsupported { .. } => "SRC-0007",
            SourceError::CursorExpired { .. } => "SRC-0008",
            SourceError::BadToken { .. } => "SRC-0009",
            SourceError::TooManyChanges { .. } => "SRC-0010",
        }
    }

    /// Whether the same call may succeed later. Protocol errors count:
    /// a truncated body is usually a transport accident.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::RateLimited { .. }
                | SourceError::Transient { .. }
                | SourceError::Protocol { .. }
        )
    }

    /// The IdP's requested pause, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The incremental cursor can't be used: read everything instead.
    pub fn needs_full_read(&self) -> bool {
        matches!(
            self,
            SourceError::CursorExpired { .. } | SourceError::TooManyChanges { .. }
        )
    }
}

/// The connectors' HTTP helpers classify transport failures and statuses
/// the same way for sources; this keeps the classification in one place.
impl From<ConnectorError> for SourceError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Unauthorized { detail } => SourceError::Unauthorized { detail },
            ConnectorError::RateLimited { retry_after } => SourceError::RateLimited { retry_after },
            ConnectorError::Transient { detail } => SourceError::Transient { detail },
            ConnectorError::Vendor { code, detail } => SourceError::Vendor { code, detail },
            ConnectorError::Protocol { detail } => SourceError::Protocol { detail },
            ConnectorError::Config { detail } => SourceError::Config { detail },
            ConnectorError::Unsupported { operation } => SourceError::Unsupported {
                what: operation.to_string(),
            },
            ConnectorError::ListingChanged { detail } => SourceError::Transient { detail },
            other => SourceError::Protocol {
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_lead_the_message() {
        let all = [
            SourceError::Unauthorized { detail: "x".into() },
            SourceError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            },
            SourceError::Transient { detail: "x".into() },
            SourceError::Vendor {
                code: "400".into(),
                detail: "x".into(),
            },
            SourceError::Protocol { detail: "x".into() },
            SourceError::Config { detail: "x".into() },
            SourceError::Unsupported { what: "x".into() },
            SourceError::CursorExpired { detail: "x".into() },
            SourceError::BadToken { detail: "x".into() },
            SourceError::TooManyChanges { changed: 9, max: 1 },
        ];
        for (i, e) in all.iter().enumerate() {
            let code = format!("SRC-{:04}", i + 1);
            assert_eq!(e.code(), code);
            assert!(e.to_string().starts_with(&code), "{e}");
        }
        assert!(all[1].is_retryable() && all[2].is_retryable() && all[4].is_retryable());
        assert!(!all[0].is_retryable() && !all[7].is_retryable());
        assert!(all[7].needs_full_read() && all[9].needs_full_read());
        assert!(!all[9].is_retryable());
        assert!(!all[2].needs_full_read());
        assert_eq!(all[1].retry_after(), Some(Duration::from_secs(2)));
    }
}
