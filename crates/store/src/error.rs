//! The store's error type.
//!
//! Every variant carries a stable code (`STORE-0xx`) at the start of its
//! message so operators and tests can grep for it. Messages that name a
//! database say *which* one (host, port and database, or the SQLite path)
//! but never a password: [`crate::target::Target`] builds those names.

use thiserror::Error;

/// What went wrong talking to the store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is not one the store understands.
    #[error("STORE-0001 unsupported database URL {url:?}: {reason}")]
    UnsupportedUrl { url: String, reason: String },

    /// The database could not be reached or opened.
    #[error("STORE-0002 cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },

    /// The database did not answer within the connect timeout.
    #[error("STORE-0003 cannot connect to {target}: no answer within {seconds} s")]
    ConnectTimeout { target: String, seconds: u64 },

    /// Applying the embedded migrations failed.
    #[error("STORE-0004 migrating {target} failed: {source}")]
    Migrate {
        target: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The database's schema is not the version this build expects.
    #[error(
        "STORE-0005 {target} has schema version {found}, this build of roster expects {expected}"
    )]
    SchemaVersion {
        target: String,
        found: i64,
        expected: i64,
    },

    /// The thing asked for does not exist.
    #[error("STORE-0006 {what} {key:?} not found")]
    NotFound { what: &'static str, key: String },

    /// A stored value could not be read back (bad JSON, unknown enum value,
    /// a plan whose hash no longer matches its content, ...).
    #[error("STORE-0007 corrupt data in {table} ({key}): {detail}")]
    Corrupt {
        table: &'static str,
        key: String,
        detail: String,
    },

    /// The caller passed something the store refuses to write, such as two
    /// people with the same employee ID in one snapshot.
    #[error("STORE-0008 invalid input: {0}")]
    Invalid(String),

    /// An action state change that would undo finished work.
    #[error("STORE-0009 action {index} of plan {plan} is {from}; it cannot become {to}")]
    InvalidTransition {
        plan: String,
        index: usize,
        from: &'static str,
        to: &'static str,
    },

    /// Any other database error.
    #[error("STORE-0010 database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn corrupt(
        table: &'static str,
        key: impl Into<String>,
        detail: impl ToString,
    ) -> Self {
        StoreError::Corrupt {
            table,
            key: key.into(),
            detail: detail.to_string(),
        }
    }

    /// The stable code at the start of the message (`STORE-0006`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl { .. } => "STORE-0001",
            StoreError::Connect { .. } => "STORE-0002",
            StoreError::ConnectTimeout { .. } => "STORE-0003",
            StoreError::Migrate { .. } => "STORE-0004",
            StoreError::SchemaVersion { .. } => "STORE-0005",
            StoreError::NotFound { .. } => "STORE-0006",
            StoreError::Corrupt { .. } => "STORE-0007",
            StoreError::Invalid(_) => "STORE-0008",
            StoreError::InvalidTransition { .. } => "STORE-0009",
            StoreError::Database(_) => "STORE-0010",
        }
    }
}

/// Why the audit chain failed verification.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The chain is broken at `seq`: the first event that is missing,
    /// altered, or out of place.
    #[error("AUDIT-0001 audit chain broken at event {seq}: {reason}")]
    Broken { seq: u64, reason: String },

    /// The log could not be read at all.
    #[error("AUDIT-0002 cannot read the audit log: {0}")]
    Store(#[from] StoreError),
}

impl AuditError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Broken { .. } => "AUDIT-0001",
            AuditError::Store(_) => "AUDIT-0002",
        }
    }
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Store(StoreError::Database(e))
    }
}
