//! SCIM protocol errors (RFC 7644 §3.12).
//!
//! Every fallible operation in this crate returns [`ScimError`], which carries
//! exactly what goes on the wire: an HTTP status, an optional `scimType`
//! keyword and a human-readable `detail`. A server turns it into a response
//! with [`ScimError::to_json`] and [`ScimError::status`]; nothing here knows
//! about HTTP frameworks.
//!
//! Invariant: `status` is always a valid HTTP error status (4xx/5xx) when the
//! error is built through the constructors. `to_json` renders `status` as a
//! JSON **string**, as §3.12 requires (a common interop bug is a number).

use serde_json::{Value, json};
use std::fmt;

/// The URN of the SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or the filter is not supported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to process.
    TooMany,
    /// One or more unique attribute values are already in use.
    Uniqueness,
    /// The modification is incompatible with the attribute's mutability.
    Mutability,
    /// The request body structure was invalid.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The path did not yield an attribute that could be operated on.
    NoTarget,
    /// A required value was missing or a value was not compatible.
    InvalidValue,
    /// The specified SCIM protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
}

impl ScimType {
    /// The wire keyword, e.g. `invalidFilter`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// Parses a wire keyword (exact spelling, as the RFC defines it).
    pub fn from_wire(s: &str) -> Option<ScimType> {
        Some(match s {
            "invalidFilter" => ScimType::InvalidFilter,
            "tooMany" => ScimType::TooMany,
            "uniqueness" => ScimType::Uniqueness,
            "mutability" => ScimType::Mutability,
            "invalidSyntax" => ScimType::InvalidSyntax,
            "invalidPath" => ScimType::InvalidPath,
            "noTarget" => ScimType::NoTarget,
            "invalidValue" => ScimType::InvalidValue,
            "invalidVers" => ScimType::InvalidVers,
            "sensitive" => ScimType::Sensitive,
            _ => return None,
        })
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error: HTTP status, optional `scimType`, and a detail message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScimError {
    /// HTTP status code (400, 401, 403, 404, 409, 412, 413, 500, 501...).
    pub status: u16,
    /// The §3.12 `scimType`, when one applies (400 and 403 `sensitive` only).
    pub scim_type: Option<ScimType>,
    /// Human-readable explanation, safe to return to the client.
    pub detail: String,
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(f, "SCIM {} {}: {}", self.status, t, self.detail),
            None => write!(f, "SCIM {}: {}", self.status, self.detail),
        }
    }
}

impl ScimError {
    /// A generic constructor; prefer the named ones below.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn bad_request(t: ScimType, detail: impl Into<String>) -> Self {
        ScimError::new(400, Some(t), detail)
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }
    /// 400 `tooMany`.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::TooMany, detail)
    }
    /// 409 `uniqueness` (RFC 7644 §3.3: a duplicate on create is a conflict).
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        ScimError::new(409, Some(ScimType::Uniqueness), detail)
    }
    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }
    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }
    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }
    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }
    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }
    /// 400 `invalidVers`.
    pub fn invalid_vers(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidVers, detail)
    }
    /// 403 `sensitive`.
    pub fn sensitive(detail: impl Into<String>) -> Self {
        ScimError::new(403, Some(ScimType::Sensitive), detail)
    }
    /// 401 without a `scimType`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ScimError::new(401, None, detail)
    }
    /// 403 without a `scimType`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ScimError::new(403, None, detail)
    }
    /// 404 without a `scimType`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(404, None, detail)
    }
    /// 405, e.g. a POST to `/Schemas`.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        ScimError::new(405, None, detail)
    }
    /// 412 `If-Match` precondition failed (§3.14).
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        ScimError::new(412, None, detail)
    }
    /// 413 payload too large (bulk limits).
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        ScimError::new(413, None, detail)
    }
    /// 500 internal error.
    pub fn internal(detail: impl Into<String>) -> Self {
        ScimError::new(500, None, detail)
    }
    /// 501 not implemented.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        ScimError::new(501, None, detail)
    }

    /// The RFC 7644 §3.12 JSON body. `status` is rendered as a string.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }

    /// Whether a body received from a server is a §3.12 error message (its
    /// `schemas` name the Error URN): some servers send one inside an HTTP
    /// 200, and it must be read as the error it is.
    pub fn is_error_body(body: &Value) -> bool {
        body.as_object()
            .and_then(|o| crate::text::get_ci(o, "schemas"))
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(ERROR_SCHEMA)))
    }

    /// Parses an error body received from a SCIM server (client side).
    ///
    /// Tolerates `status` as a number (a frequent server bug), member names
    /// in any case, and unknown `scimType` keywords (dropped). Returns
    /// `None` when the body is not a SCIM error at all.
    pub fn from_json(body: &Value) -> Option<ScimError> {
        let obj = body.as_object()?;
        let get = |key: &str| crate::text::get_ci(obj, key);
        let status = match get("status")? {
            Value::String(s) => s.trim().parse().ok()?,
            Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            _ => return None,
        };
        let scim_type = get("scimType")
            .and_then(Value::as_str)
            .and_then(|t| ScimType::from_wire(t.trim()));
        let detail = get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        Some(ScimError {
            status,
            scim_type,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_string_status_and_scim_type() {
        let e = ScimError::invalid_filter("bad filter at 3");
        assert_eq!(
            e.to_json(),
            json!({
                "schemas": [ERROR_SCHEMA],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "bad filter at 3"
            })
        );
        let nf = ScimError::not_found("no such user").to_json();
        assert_eq!(nf["status"], "404");
        assert!(nf.get("scimType").is_none());
    }

    #[test]
    fn constructors_have_rfc_statuses() {
        let cases = [
            (ScimError::invalid_filter("x"), 400, Some("invalidFilter")),
            (ScimError::too_many("x"), 400, Some("tooMany")),
            (ScimError::uniqueness("x"), 409, Some("uniqueness")),
            (ScimError::mutability("x"), 400, Some("mutability")),
            (ScimError::invalid_syntax("x"), 400, Some("invalidSyntax")),
            (ScimError::invalid_path("x"), 400, Some("invalidPath")),
            (ScimError::no_target("x"), 400, Some("noTarget")),
            (ScimError::invalid_value("x"), 400, Some("invalidValue")),
            (ScimError::invalid_vers("x"), 400, Some("invalidVers")),
            (ScimError::sensitive("x"), 403, Some("sensitive")),
            (ScimError::unauthorized("x"), 401, None),
            (ScimError::precondition_failed("x"), 412, None),
            (ScimError::payload_too_large("x"), 413, None),
            (ScimError::not_implemented("x"), 501, None),
        ];
        for (e, status, t) in cases {
            assert_eq!(e.status, status, "{e}");
            assert_eq!(e.scim_type.map(ScimType::as_str), t);
            // Round trip through the wire form.
            assert_eq!(ScimError::from_json(&e.to_json()), Some(e.clone()));
        }
    }

    #[test]
    fn from_json_tolerates_numeric_status() {
        let e = ScimError::from_json(
            &json!({"status": 409, "scimType": "uniqueness", "detail": "dup"}),
        );
        assert_eq!(e, Some(ScimError::uniqueness("dup")));
        assert_eq!(ScimError::from_json(&json!({"detail": "x"})), None);
        assert_eq!(
            ScimError::from_json(&json!({"Status": "412", "Detail": " stale "})),
            Some(ScimError::precondition_failed("stale"))
        );
        assert!(ScimError::is_error_body(&e.unwrap().to_json()));
        assert!(!ScimError::is_error_body(&json!({"status": "400"})));
    }
}
