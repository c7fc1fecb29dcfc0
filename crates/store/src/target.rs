//! Turning what a user typed (`--db`) into a sqlx URL and a printable name.
//!
//! Accepted forms:
//!
//! * `postgres://user:pw@host:port/db?...` (also `postgresql://`)
//! * `sqlite://path?mode=rwc`, `sqlite:path`, `sqlite::memory:`
//! * a bare filesystem path: a SQLite file, created with its parent
//!   directories if missing.
//!
//! The printable name ([`Target::display`]) is what error messages use. It
//! never contains a password.

use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Which database engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed database location.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub backend: Backend,
    /// The URL handed to sqlx (may contain a password).
    pub url: String,
    /// A password-free description for messages.
    pub display: String,
    /// SQLite in-memory database: every connection would be a new, empty
    /// database, so the store keeps exactly one.
    pub in_memory: bool,
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target, StoreError> {
        let trimmed = raw.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Self::postgres(trimmed);
        }
        if lower.starts_with("sqlite:") {
            return Ok(Self::sqlite_url(trimmed));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            return Err(StoreError::UnsupportedUrl {
                url: redact(trimmed),
                reason: format!(
                    "scheme {scheme:?} is not supported; use postgres://..., sqlite://... or a file path"
                ),
            });
        }
        if trimmed.is_empty() {
            return Err(StoreError::UnsupportedUrl {
                url: String::new(),
                reason: "empty database location".into(),
            });
        }
        Self::sqlite_path(Path::new(trimmed))
    }

    fn postgres(raw: &str) -> Result<Target, StoreError> {
        let parsed = url::Url::parse(raw).map_err(|e| StoreError::UnsupportedUrl {
            url: redact(raw),
            reason: e.to_string(),
        })?;
        let host = parsed.host_str().unwrap_or("localhost");
        let port = parsed.port().unwrap_or(5432);
        let db = parsed.path().trim_start_matches('/');
        let mut display = format!("PostgreSQL at {host}:{port}/{db}");
        if !parsed.username().is_empty() {
            display.push_str(&format!(" (user {})", parsed.username()));
        }
        Ok(Target {
            backend: Backend::Postgres,
            url: raw.to_string(),
            display,
            in_memory: false,
        })
    }

    fn sqlite_url(raw: &str) -> Target {
        let rest = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
        let display = if in_memory {
            "SQLite in memory".to_string()
        } else {
            format!("SQLite file {path}")
        };
        Target {
            backend: Backend::Sqlite,
            url: raw.to_string(),
            display,
            in_memory,
        }
    }

    fn sqlite_path(path: &Path) -> Result<Target, StoreError> {
        // An absolute path keeps the URL unambiguous: `sqlite://rel/x.db`
        // would make `rel` parse as a URL host.
        let abs: PathBuf = std::path::absolute(path).map_err(|e| StoreError::UnsupportedUrl {
            url: path.display().to_string(),
            reason: format!("cannot resolve path: {e}"),
        })?;
        if let Some(parent) = abs.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                target: format!("SQLite file {}", abs.display()),
                source: sqlx::Error::Io(e),
            })?;
        }
        let path_str = abs.to_string_lossy();
        let mut encoded = String::with_capacity(path_str.len() + 16);
        for c in path_str.chars() {
            match c {
                // sqlx percent-decodes the path, so these must be escaped to
                // survive; `?` and `#` would otherwise end the path.
                '%' | '?' | '#' | ' ' | '"' | '<' | '>' | '`' | '{' | '}' => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        encoded.push_str(&format!("%{b:02X}"));
                    }
                }
                _ => encoded.push(c),
            }
        }
        Ok(Target {
            backend: Backend::Sqlite,
            url: format!("sqlite://{encoded}?mode=rwc"),
            display: format!("SQLite file {}", abs.display()),
            in_memory: false,
        })
    }
}

/// The URL with any password replaced, for messages about URLs that did not
/// parse far enough to build a [`Target`].
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match raw.split_once('@') {
            Some((_, rest)) => format!("***@{rest}"),
            None => raw.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_display_never_shows_the_password() {
        let t = Target::parse("postgres://alice:hunter2@db.internal:6543/roster").unwrap();
        assert_eq!(t.backend, Backend::Postgres);
        assert_eq!(
            t.display,
            "PostgreSQL at db.internal:6543/roster (user alice)"
        );
        assert!(!t.display.contains("hunter2"));
        assert!(t.url.contains("hunter2"), "sqlx still needs it");
    }

    #[test]
    fn sqlite_forms() {
        let m = Target::parse("sqlite::memory:").unwrap();
        assert!(m.in_memory);
        assert_eq!(m.backend, Backend::Sqlite);
        let f = Target::parse("sqlite:///var/lib/roster.db?mode=rwc").unwrap();
        assert!(!f.in_memory);
        assert_eq!(f.display, "SQLite file /var/lib/roster.db");
    }

    #[test]
    fn bare_path_becomes_an_escaped_absolute_sqlite_url() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a b?#/x.db");
        let t = Target::parse(p.to_str().unwrap()).unwrap();
        assert_eq!(t.backend, Backend::Sqlite);
        assert!(t.url.starts_with("sqlite:///"));
        assert!(t.url.ends_with("a%20b%3F%23/x.db?mode=rwc"), "{}", t.url);
        assert!(
            dir.path().join("a b?#").is_dir(),
            "parent directories are created"
        );
    }

    #[test]
    fn unknown_scheme_is_rejected_without_leaking_a_password() {
        let e = Target::parse("mysql://root:pw@localhost/db").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("STORE-0001"), "{msg}");
        assert!(!msg.contains(":pw@"), "{msg}");
    }
}
