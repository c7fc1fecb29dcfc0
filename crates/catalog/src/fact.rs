//! Facts: values that carry where they came from and when.
//!
//! Every capability the catalog states about an app is a [`Fact`]: one or
//! more [`Claim`]s, each naming its source (a key of the app file's
//! `[sources]` table) and an as-of date. In TOML a fact is written either as
//! one table or, when sources disagree, as a list of tables:
//!
//! ```toml
//! auth_method = { value = "apiToken header", source = "bill-v3" }
//! has_user_api = [
//!   { value = false, source = "seed", note = "no standalone user API" },
//!   { value = true,  source = "bill-v3", note = "/v3/spend/users" },
//! ]
//! ```
//!
//! # Invariants
//!
//! * A fact has at least one claim; a bare value without a source does not
//!   deserialize (the error says a source is needed).
//! * After loading, every claim's `as_of` is set: either written on the
//!   claim or inherited from its source entry. [`crate::Catalog`] rejects a
//!   file where neither is present.
//! * Disagreeing claims are all kept. [`Fact::value`] picks the most recent
//!   one (ties go to the first written) but never hides the others.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// One sourced statement of a value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim<T> {
    pub value: T,
    /// Key into the app's `[sources]` table.
    pub source: String,
    /// `YYYY-MM-DD` or `YYYY-MM`. Filled from the source entry at load time
    /// when the claim does not give its own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub as_of: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A value with provenance; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact<T> {
    claims: Vec<Claim<T>>,
    /// Whether the file wrote the fact as a list, so error paths can say
    /// `field[1]` exactly where the file has a list.
    listed: bool,
}

impl<T> Fact<T> {
    /// A fact with a single claim (handy for tests and for building records
    /// in code).
    pub fn new(value: T, source: impl Into<String>, as_of: impl Into<String>) -> Self {
        Fact {
            claims: vec![Claim {
                value,
                source: source.into(),
                as_of: as_of.into(),
                note: None,
            }],
            listed: false,
        }
    }

    /// All claims in file order.
    pub fn claims(&self) -> &[Claim<T>] {
        &self.claims
    }

    /// The claim to act on: the most recent `as_of`, the first written on a
    /// tie. Dates compare as text, which orders `YYYY-MM` before any day of
    /// that month, the conservative reading of a month-precision date.
    pub fn preferred(&self) -> &Claim<T> {
        let mut best = &self.claims[0];
        for c in &self.claims[1..] {
            if c.as_of > best.as_of {
                best = c;
            }
        }
        best
    }

    /// The value of [`Fact::preferred`].
    pub fn value(&self) -> &T {
        &self.preferred().value
    }

    /// Whether any claim holds for `pred` (e.g. "does any source say there
    /// is a user API?").
    pub fn any(&self, pred: impl Fn(&T) -> bool) -> bool {
        self.claims.iter().any(|c| pred(&c.value))
    }

    /// Visits each claim's provenance with the claim's path inside the file
    /// (`scim.version`, or `api.has_user_api[1]` for a listed fact).
    pub(crate) fn visit_provenance(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(String, &str, &mut String),
    ) {
        let listed = self.listed;
        for (i, c) in self.claims.iter_mut().enumerate() {
            let p = if listed {
                format!("{path}[{i}]")
            } else {
                path.to_string()
            };
            f(p, &c.source, &mut c.as_of);
        }
    }
}

impl<T: PartialEq> Fact<T> {
    /// True when the sources give different values.
    pub fn is_disputed(&self) -> bool {
        let first = &self.claims[0].value;
        self.claims.iter().any(|c| &c.value != first)
    }
}

/// Serialized for `--json` as `{ "value": <preferred>, "claims": [...] }`,
/// so a consumer that does not care about provenance reads `value` and one
/// that does sees every claim.
impl<T: Serialize> Serialize for Fact<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a, T> {
            value: &'a T,
            claims: &'a [Claim<T>],
        }
        Out {
            value: self.value(),
            claims: &self.claims,
        }
        .serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Fact<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FactVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for FactVisitor<T> {
            type Value = Fact<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a fact `{ value = ..., source = \"...\" }` or a list of them \
                     (a bare value has no source)",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let claim = Claim::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Fact {
                    claims: vec![claim],
                    listed: false,
                })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let claims: Vec<Claim<T>> =
                    Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                if claims.is_empty() {
                    return Err(de::Error::custom(
                        "a fact needs at least one `{ value, source }` claim",
                    ));
                }
                Ok(Fact {
                    claims,
                    listed: true,
                })
            }
        }

        d.deserialize_any(FactVisitor(PhantomData))
    }
}

/// Checks an as-of date: `YYYY-MM-DD`, or `YYYY-MM` for sources that carry
/// only a month.
pub(crate) fn check_as_of(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('-').collect();
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let ok = match parts.as_slice() {
        [y, m] => digits(y, 4) && digits(m, 2) && month_ok(m),
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2) && month_ok(m) && day_ok(d),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a date YYYY-MM-DD (or YYYY-MM), got {s:?}"
        ))
    }
}

fn month_ok(m: &str) -> bool {
    matches!(m.parse::<u8>(), Ok(1..=12))
}

fn day_ok(d: &str) -> bool {
    matches!(d.parse::<u8>(), Ok(1..=31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        f: Fact<bool>,
    }

    #[test]
    fn single_and_listed_forms_parse() {
        let d: Doc = toml::from_str(r#"f = { value = true, source = "s" }"#).unwrap();
        assert_eq!(d.f.claims().len(), 1);
        let d: Doc = toml::from_str(
            r#"f = [{ value = false, source = "a", as_of = "2026-03" },
                    { value = true, source = "b", as_of = "2026-11" }]"#,
        )
        .unwrap();
        assert!(d.f.is_disputed());
        assert!(*d.f.value(), "the newer claim wins");
        assert_eq!(d.f.preferred().source, "b");
    }

    #[test]
    fn bare_value_is_rejected_for_lack_of_source() {
        let e = toml::from_str::<Doc>("f = true").err().unwrap();
        assert!(e.message().contains("no source"), "{}", e.message());
        let e = toml::from_str::<Doc>("f = { value = true }").err().unwrap();
        assert!(
            e.message().contains("missing field `source`"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn as_of_formats() {
        assert!(check_as_of("2026-03-16").is_ok());
        assert!(check_as_of("2026-11").is_ok());
        assert!(check_as_of("2026-13-01").is_err());
        assert!(check_as_of("March 2026").is_err());
        assert!(check_as_of("").is_err());
    }
}
