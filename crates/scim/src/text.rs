//! Allocation-free text and value comparison helpers used by filter
//! evaluation, sorting and PATCH matching.
//!
//! Case-insensitive comparison folds with Unicode `to_lowercase` one `char`
//! at a time (with an ASCII fast path), so evaluating a filter over a large
//! directory never lowercases whole strings or documents.

use serde_json::{Number, Value};
use std::cmp::Ordering;
use time::OffsetDateTime;

fn folded(s: &str) -> impl DoubleEndedIterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

/// Equality, optionally ignoring case.
pub(crate) fn str_eq(a: &str, b: &str, case_exact: bool) -> bool {
    if case_exact {
        a == b
    } else if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        folded(a).eq(folded(b))
    }
}

/// Lexicographic ordering, optionally ignoring case.
pub(crate) fn str_cmp(a: &str, b: &str, case_exact: bool) -> Ordering {
    if case_exact {
        a.cmp(b)
    } else if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        folded(a).cmp(folded(b))
    }
}

/// Whether `hay` starts with `needle`.
pub(crate) fn starts_with(hay: &str, needle: &str, case_exact: bool) -> bool {
    if case_exact {
        return hay.starts_with(needle);
    }
    if hay.is_ascii() && needle.is_ascii() {
        return hay.len() >= needle.len()
            && hay.as_bytes()[..needle.len()].eq_ignore_ascii_case(needle.as_bytes());
    }
    let mut h = folded(hay);
    folded(needle).all(|c| h.next() == Some(c))
}

/// Whether `hay` ends with `needle`.
pub(crate) fn ends_with(hay: &str, needle: &str, case_exact: bool) -> bool {
    if case_exact {
        return hay.ends_with(needle);
    }
    if hay.is_ascii() && needle.is_ascii() {
        return hay.len() >= needle.len()
            && hay.as_bytes()[hay.len() - needle.len()..].eq_ignore_ascii_case(needle.as_bytes());
    }
    let mut h = folded(hay).rev();
    folded(needle).rev().all(|c| h.next() == Some(c))
}

/// Whether `hay` contains `needle`.
pub(crate) fn contains(hay: &str, needle: &str, case_exact: bool) -> bool {
    if case_exact {
        return hay.contains(needle);
    }
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let n = needle.as_bytes();
        return hay
            .as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n));
    }
    // Quadratic in the worst case, but attribute values are short and this
    // path only runs for non-ASCII input.
    hay.char_indices().any(|(i, _)| {
        hay.get(i..)
            .is_some_and(|rest| starts_with(rest, needle, false))
    })
}

/// Parses an xsd:dateTime / RFC 3339 timestamp. A missing offset is read
/// as UTC (xsd:dateTime allows it; RFC 7643 §2.3.5 says "SHOULD" have one).
pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Numeric comparison, exact for integers.
pub(crate) fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Reads a boolean, accepting the strings `"true"`/`"false"` in any case
/// (Entra sends `"False"`).
pub(crate) fn as_bool_lenient(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Case-insensitive lookup of an object member (exact spelling first, since
/// normalised resources use canonical names).
pub(crate) fn get_ci<'v>(obj: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The actual key spelling of a case-insensitive member, if present.
pub(crate) fn key_ci(obj: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_string_ops() {
        // (hay, needle, eq, sw, ew, co)
        let cases = [
            (
                "BJensen@Example.com",
                "bjensen@example.com",
                true,
                true,
                true,
                true,
            ),
            ("bjensen@example.com", "@EXAMPLE", false, false, false, true),
            ("Ärger", "äR", false, true, false, true),
            ("straße", "STRASSE", false, false, false, false),
            ("ÉCOLE", "école", true, true, true, true),
            ("abc", "", false, true, true, true),
            ("", "a", false, false, false, false),
            ("naïve", "ÏVE", false, false, true, true),
        ];
        for (h, n, eq, sw, ew, co) in cases {
            assert_eq!(str_eq(h, n, false), eq, "eq {h} {n}");
            assert_eq!(starts_with(h, n, false), sw, "sw {h} {n}");
            assert_eq!(ends_with(h, n, false), ew, "ew {h} {n}");
            assert_eq!(contains(h, n, false), co, "co {h} {n}");
        }
        assert!(!str_eq("A", "a", true));
        assert_eq!(str_cmp("apple", "Banana", false), Ordering::Less);
        assert_eq!(str_cmp("apple", "Banana", true), Ordering::Greater);
    }

    #[test]
    fn datetimes_compare_as_instants() {
        let a = parse_datetime("2011-05-13T04:42:34Z");
        let b = parse_datetime("2011-05-13T06:42:34+02:00");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert!(parse_datetime("2011-05-13T04:42:34") == a);
        assert!(parse_datetime("2011-05-13T04:42:34.5Z") > a);
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn numbers_compare_numerically() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(
            num_cmp(&n(serde_json::json!(10)), &n(serde_json::json!(9))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n(serde_json::json!(1.5)), &n(serde_json::json!(2))),
            Some(Ordering::Less)
        );
        assert_eq!(
            num_cmp(&n(serde_json::json!(-1)), &n(serde_json::json!(u64::MAX))),
            Some(Ordering::Less)
        );
    }
}
