//! Identifier newtypes.
//!
//! `Email` compares case-insensitively (RFC 5321 allows a case-sensitive local
//! part, but no SaaS app or IdP roster treats `Alice@x` and `alice@x` as two
//! people, and treating them as two is how duplicates and orphans are born).
//! The original spelling is kept for display and for writing to apps.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// An email address, compared, hashed and ordered case-insensitively.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address: trims it and checks it has exactly one `@` with
    /// something on both sides and no whitespace.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let Some((local, domain)) = s.split_once('@') else {
            return Err(format!("{s:?} is not an email address (no '@')"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(format!("{s:?} is not an email address"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(format!(
                "{s:?} is not an email address (contains whitespace)"
            ));
        }
        if !domain.contains('.') {
            return Err(format!("{s:?} is not an email address (domain has no '.')"));
        }
        Ok(Email(s.to_string()))
    }

    /// The address as it was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased form used as a lookup key.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0) || self.normalized() == other.normalized()
    }
}
impl Eq for Email {}
impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state)
    }
}
impl PartialOrd for Email {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Email {
    fn cmp(&self, other: &Self) -> Ordering {
        self.normalized()
            .cmp(&other.normalized())
            .then_with(|| self.0.cmp(&other.0))
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

string_id!(
    /// The stable HR identifier of a person. Compared exactly (HR systems
    /// issue them; they are not typed by people).
    EmployeeId
);
string_id!(
    /// The name of a connection: one configured instance of an app
    /// (e.g. `expensify`, or `expensify-eu` for a second tenant).
    ConnectionId
);
string_id!(
    /// The identifier an app gives an account (Expensify: the email;
    /// SCIM: the resource `id`). Opaque to roster.
    AccountKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_equality_ignores_case_but_keeps_spelling() {
        let a = Email::parse(" Alice@Example.COM ").unwrap();
        let b = Email::parse("alice@example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Alice@Example.COM");
        assert_eq!(a.normalized(), "alice@example.com");
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
    }

    #[test]
    fn email_parse_rejects_garbage() {
        for bad in [
            "",
            "alice",
            "@x.com",
            "alice@",
            "a b@x.com",
            "a@b@c.com",
            "alice@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
