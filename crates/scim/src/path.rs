//! Attribute paths (`attrPath`, RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2).
//!
//! An [`AttrPath`] is `[URI ":"] ATTRNAME ["." subAttr]`, e.g. `userName`,
//! `name.givenName` or
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`.
//! A [`PatchPath`] adds the value-selection form
//! `attr "[" valFilter "]" ["." subAttr]`, e.g. `emails[type eq "work"].value`.
//!
//! The grammar is parsed by the `scim_v2` crate; this module owns the
//! resulting types so the rest of the crate (and its users) never depend on
//! `scim_v2`'s AST. Names keep the client's spelling; comparisons against
//! schema names are case-insensitive.

use crate::error::ScimError;
use crate::filter::Filter;
use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// Longest path text [`PatchPath::parse`] remembers.
const PARSED_CACHE_MAX_TEXT: usize = 160;
/// Most path texts [`PatchPath::parse`] remembers.
const PARSED_CACHE_MAX_ENTRIES: usize = 1024;
static PARSED: LazyLock<Mutex<HashMap<String, PatchPath>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An attribute path: optional schema URN, attribute name, optional
/// sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Schema URN prefix, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub uri: Option<String>,
    /// Attribute name.
    pub name: String,
    /// Sub-attribute name.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A plain attribute name.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            uri: None,
            name: name.into(),
            sub_attr: None,
        }
    }

    /// `name.sub`.
    pub fn with_sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            uri: None,
            name: name.into(),
            sub_attr: Some(sub.into()),
        }
    }

    /// `uri:name`.
    pub fn with_uri(uri: impl Into<String>, name: impl Into<String>) -> Self {
        AttrPath {
            uri: Some(uri.into()),
            name: name.into(),
            sub_attr: None,
        }
    }

    /// Parses a plain attribute path. A value-selection path
    /// (`emails[...]`) is rejected: use [`PatchPath::parse`] for those.
    /// Errors are `400 invalidPath`.
    pub fn parse(s: &str) -> Result<AttrPath, ScimError> {
        match PatchPath::parse(s)? {
            PatchPath {
                attr,
                filter: None,
                sub_attr: None,
            } => Ok(attr),
            _ => Err(ScimError::invalid_path(format!(
                "{s:?} is a value-selection path where a plain attribute path is required"
            ))),
        }
    }

    /// Whether `uri ":" name` (without a sub-attribute) spells `urn`,
    /// case-insensitively. Used to recognise a whole-extension path such as
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`, which
    /// the grammar necessarily splits at its last colon.
    pub fn spells_urn(&self, urn: &str) -> bool {
        let Some(uri) = &self.uri else {
            return false;
        };
        if self.sub_attr.is_some() || uri.len() + 1 + self.name.len() != urn.len() {
            return false;
        }
        let (Some(head), Some(tail)) = (urn.get(..uri.len()), urn.get(uri.len() + 1..)) else {
            return false;
        };
        head.eq_ignore_ascii_case(uri)
            && urn.as_bytes().get(uri.len()) == Some(&b':')
            && tail.eq_ignore_ascii_case(&self.name)
    }

    /// Case-insensitive equality of the whole path.
    pub fn eq_ignore_case(&self, other: &AttrPath) -> bool {
        fn opt_eq(a: &Option<String>, b: &Option<String>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
        }
        self.name.eq_ignore_ascii_case(&other.name)
            && opt_eq(&self.uri, &other.uri)
            && opt_eq(&self.sub_attr, &other.sub_attr)
    }

    pub(crate) fn from_v2(p: scim_v2::filter::AttrPath) -> AttrPath {
        AttrPath {
            uri: p.uri,
            name: p.name,
            sub_attr: p.sub_attr,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A PATCH operation path: an attribute, optionally narrowed by a value
/// filter, optionally followed by a sub-attribute.
///
/// Invariant: `sub_attr` is only set together with `filter` (the plain form
/// `name.sub` keeps its sub-attribute inside `attr`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (may itself carry a sub-attribute when `filter` is `None`).
    pub attr: AttrPath,
    /// Value-selection filter over the attribute's elements; its paths are
    /// relative to the element (e.g. `type`, `value`).
    pub filter: Option<Filter>,
    /// Sub-attribute after the closing bracket.
    pub sub_attr: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH path. Errors are `400 invalidPath` with the position.
    ///
    /// Successful parses of short texts are remembered: every request
    /// carries the same few keys (`userName`, `emails`, the enterprise URN,
    /// …), each normalized through this parser, and the grammar's lexer
    /// costs far more than a map lookup.
    pub fn parse(s: &str) -> Result<PatchPath, ScimError> {
        if s.len() > PARSED_CACHE_MAX_TEXT {
            return PatchPath::parse_uncached(s);
        }
        if let Some(hit) = PARSED.lock().ok().and_then(|cache| cache.get(s).cloned()) {
            return Ok(hit);
        }
        let parsed = PatchPath::parse_uncached(s)?;
        if let Ok(mut cache) = PARSED.lock() {
            // Bounded: texts come from clients, so a flood of distinct
            // ones starts the cache over rather than growing it.
            if cache.len() >= PARSED_CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(s.to_string(), parsed.clone());
        }
        Ok(parsed)
    }

    fn parse_uncached(s: &str) -> Result<PatchPath, ScimError> {
        use scim_v2::filter::PatchPath as V2;
        let parsed: V2 = s.parse().map_err(|e| {
            ScimError::invalid_path(format!(
                "invalid path {}: {}",
                crate::filter::quote_truncated(s),
                crate::filter::describe_parse_error(&e)
            ))
        })?;
        Ok(match parsed {
            V2::Attr(a) => PatchPath {
                attr: AttrPath::from_v2(a),
                filter: None,
                sub_attr: None,
            },
            V2::Value(vp) => PatchPath {
                attr: AttrPath::from_v2(vp.attr),
                filter: Some(Filter::from_v2_val(vp.filter)),
                sub_attr: vp.sub_attr,
            },
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attr_paths() {
        let cases = [
            ("userName", None, "userName", None),
            ("name.givenName", None, "name", Some("givenName")),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                "employeeNumber",
                None,
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                "manager",
                Some("value"),
            ),
        ];
        for (s, uri, name, sub) in cases {
            let p = AttrPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.uri.as_deref(), uri, "{s}");
            assert_eq!(p.name, name, "{s}");
            assert_eq!(p.sub_attr.as_deref(), sub, "{s}");
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_paths_with_invalid_path() {
        for s in [
            "",
            "a.b.c",
            "emails[",
            "1abc",
            "emails[type eq \"work\"]",
            "a b",
        ] {
            let e = AttrPath::parse(s).expect_err(s);
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidPath), "{s}: {e}");
        }
    }

    #[test]
    fn parses_value_selection_patch_paths() {
        let p =
            PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.attr, AttrPath::new("emails"));
        assert_eq!(p.sub_attr.as_deref(), Some("value"));
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let m =
            PatchPath::parse(r#"members[value eq "2819c223"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.to_string(), r#"members[value eq "2819c223"]"#);
        assert!(m.sub_attr.is_none());
    }

    #[test]
    fn spells_urn_matches_whole_extension_only() {
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.spells_urn(crate::ENTERPRISE_USER_SCHEMA));
        assert!(!AttrPath::new("User").spells_urn(crate::ENTERPRISE_USER_SCHEMA));
        let q = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!q.spells_urn(crate::ENTERPRISE_USER_SCHEMA));
    }

    #[test]
    fn remembered_parses_answer_like_fresh_ones_even_past_the_bound() {
        // More distinct texts than the cache holds, each parsed twice, in
        // an order that makes the cache start over mid-way.
        let texts: Vec<String> = (0..PARSED_CACHE_MAX_ENTRIES + 50)
            .map(|i| format!(r#"emails[type eq "t{i}"].value"#))
            .collect();
        for t in texts.iter().chain(texts.iter().rev()) {
            let cached = PatchPath::parse(t).unwrap_or_else(|e| panic!("{e}"));
            let fresh = PatchPath::parse_uncached(t).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cached, fresh, "{t}");
        }
        // Errors are never remembered as successes.
        for _ in 0..2 {
            assert!(PatchPath::parse("emails[type eq]").is_err());
        }
        let long = format!("a{}", "b".repeat(PARSED_CACHE_MAX_TEXT));
        assert_eq!(
            PatchPath::parse(&long)
                .unwrap_or_else(|e| panic!("{e}"))
                .attr,
            AttrPath::new(long.clone())
        );
    }
}
