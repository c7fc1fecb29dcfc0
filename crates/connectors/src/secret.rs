//! A string that must not leak: redacted in `Debug`, no `Display`, and
//! only readable through an explicitly named method.

use std::fmt;

/// A credential. `Debug` prints `SecretString([redacted])`; there is no
/// `Display`, so it can't be interpolated into a message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret itself. Call only where it is sent to the app.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` (vendors sometimes
    /// echo their input in error messages).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_string())
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_scrub_removes_it() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "SecretString([redacted])");
        assert_eq!(s.scrub("bad secret hunter2!"), "bad secret [redacted]!");
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
