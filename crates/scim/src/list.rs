//! List responses, paging and sorting (RFC 7644 §3.4.2).
//!
//! Paging is 1-based: `startIndex=1` is the first result. Out-of-range
//! values are clamped as §3.4.2.4 directs (`startIndex < 1` → 1,
//! `count < 0` → 0); values that are not integers are `400 invalidValue`
//! (Okta insists paging numbers are integers, so we hold clients to it too).
//!
//! Sorting follows the schema: strings fold case unless `caseExact`,
//! dateTimes compare as instants, numbers numerically. A multi-valued
//! attribute sorts by its `primary` value, else its first (§3.4.2.3).
//! Resources without a value sort last in either order. Sorting is stable,
//! so equal keys keep the caller's order (Okta needs a stable order to
//! page).

use crate::error::ScimError;
use crate::eval::top_level;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, LIST_RESPONSE_SCHEMA, SchemaRegistry};
use crate::text;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::ops::Range;

/// A ListResponse message.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResponse {
    /// Total number of matching resources (all pages).
    pub total_results: usize,
    /// 1-based index of the first resource on this page.
    pub start_index: usize,
    /// Number of resources on this page.
    pub items_per_page: usize,
    /// The page.
    pub resources: Vec<Value>,
}

impl ListResponse {
    /// A page of `resources` out of `total_results`, starting at the 1-based
    /// `start_index`.
    pub fn new(total_results: usize, start_index: usize, resources: Vec<Value>) -> Self {
        ListResponse {
            total_results,
            start_index: start_index.max(1),
            items_per_page: resources.len(),
            resources,
        }
    }

    /// Pages an already filtered and sorted result set.
    pub fn paginate(all: Vec<Value>, paging: &Paging) -> Self {
        let total = all.len();
        let range = paging.range(total);
        let page: Vec<Value> = all
            .into_iter()
            .skip(range.start)
            .take(range.len())
            .collect();
        ListResponse::new(total, paging.start_index, page)
    }

    /// The wire form. `Resources` is always present (empty when `count=0`).
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": self.total_results,
            "startIndex": self.start_index,
            "itemsPerPage": self.items_per_page,
            "Resources": self.resources,
        })
    }

    /// Parses a ListResponse received from a server (client side).
    /// Tolerates numbers sent as strings and a missing `Resources` (RFC:
    /// absent when there are no results); `itemsPerPage` defaults to the
    /// page length and `startIndex` to 1.
    pub fn from_json(body: &Value) -> Result<ListResponse, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("ListResponse must be a JSON object"))?;
        let num = |key: &str| -> Result<Option<usize>, ScimError> {
            match text::get_ci(obj, key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!("{key} must be a non-negative integer"))
                    }),
                Some(Value::String(s)) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ScimError::invalid_value(format!("{key} must be an integer"))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{key} must be an integer"
                ))),
            }
        };
        let resources = match text::get_ci(obj, "Resources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(ScimError::invalid_syntax("Resources must be an array")),
        };
        let total_results = num("totalResults")?
            .ok_or_else(|| ScimError::invalid_syntax("ListResponse has no totalResults"))?;
        Ok(ListResponse {
            total_results,
            start_index: num("startIndex")?.unwrap_or(1).max(1),
            items_per_page: num("itemsPerPage")?.unwrap_or(resources.len()),
            resources,
        })
    }
}

impl serde::Serialize for ListResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ListResponse {
    /// Leniently, as [`ListResponse::from_json`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Value as serde::Deserialize>::deserialize(d)?;
        ListResponse::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// Validated paging parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based start index (≥ 1).
    pub start_index: usize,
    /// Maximum number of resources on the page (may be 0).
    pub count: usize,
}

impl Paging {
    /// Parses `startIndex` and `count` query values. Missing `count` means
    /// `default_count`; `count` is capped at `max_count`.
    pub fn from_query(
        start_index: Option<&str>,
        count: Option<&str>,
        default_count: usize,
        max_count: usize,
    ) -> Result<Paging, ScimError> {
        fn int(name: &str, raw: &str) -> Result<i64, ScimError> {
            let t = raw.trim();
            if let Ok(v) = t.parse::<i64>() {
                return Ok(v);
            }
            // Very long digit strings overflow i64; saturate rather than reject.
            let digits = t.strip_prefix('-').unwrap_or(t);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(if t.starts_with('-') {
                    i64::MIN
                } else {
                    i64::MAX
                });
            }
            Err(ScimError::invalid_value(format!(
                "{name} must be an integer, got {}",
                crate::filter::quote_truncated(raw)
            )))
        }
        let start = match start_index {
            Some(raw) => int("startIndex", raw)?,
            None => 1,
        };
        let count = match count {
            Some(raw) => int("count", raw)?,
            None => i64::try_from(default_count).unwrap_or(i64::MAX),
        };
        Ok(Paging {
            start_index: usize::try_from(start.max(1)).unwrap_or(usize::MAX),
            count: usize::try_from(count.max(0))
                .unwrap_or(usize::MAX)
                .min(max_count),
        })
    }

    /// The 0-based slice range of this page within `total` results.
    pub fn range(&self, total: usize) -> Range<usize> {
        let start = self.start_index.saturating_sub(1).min(total);
        let end = start.saturating_add(self.count).min(total);
        start..end
    }
}

/// `sortOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// `ascending` (the default).
    Ascending,
    /// `descending`.
    Descending,
}

/// A validated `sortBy` / `sortOrder` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    /// The attribute to sort by.
    pub path: AttrPath,
    /// The direction.
    pub order: SortOrder,
}

impl SortSpec {
    /// Parses `sortBy` and `sortOrder` (case-insensitive; default
    /// ascending). A malformed path is `400 invalidPath`, an unknown order
    /// `400 invalidValue`. Unknown attributes are allowed (sorted by their
    /// JSON values).
    pub fn parse(sort_by: &str, sort_order: Option<&str>) -> Result<SortSpec, ScimError> {
        let path = AttrPath::parse(sort_by.trim())?;
        let order = match sort_order.map(str::trim) {
            None | Some("") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(s) if s.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(s) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be ascending or descending, got {}",
                    crate::filter::quote_truncated(s)
                )));
            }
        };
        Ok(SortSpec { path, order })
    }

    /// Compares two resources by this spec.
    pub fn compare(&self, a: &Value, b: &Value, registry: &SchemaRegistry) -> Ordering {
        let (ka, def) = sort_key(a, &self.path, registry);
        let (kb, _) = sort_key(b, &self.path, registry);
        match (ka, kb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let o = compare_values(x, y, def);
                match self.order {
                    SortOrder::Ascending => o,
                    SortOrder::Descending => o.reverse(),
                }
            }
        }
    }

    /// Sorts resources in place (stable).
    pub fn sort(&self, resources: &mut [Value], registry: &SchemaRegistry) {
        resources.sort_by(|a, b| self.compare(a, b, registry));
    }
}

/// The value a resource sorts by, and the leaf definition.
fn sort_key<'a>(
    resource: &'a Value,
    path: &'a AttrPath,
    registry: &'a SchemaRegistry,
) -> (Option<&'a Value>, Option<&'a AttributeDef>) {
    let (v, def) = top_level(resource, path, registry, None);
    let Some(mut v) = v else {
        return (None, def);
    };
    if let Value::Array(items) = v {
        let primary = items.iter().find(|e| {
            e.as_object()
                .and_then(|o| text::get_ci(o, "primary"))
                .and_then(text::as_bool_lenient)
                == Some(true)
        });
        match primary.or_else(|| items.first()) {
            Some(e) => v = e,
            None => return (None, def),
        }
    }
    let sub = match &path.sub_attr {
        Some(s) => s.as_str(),
        // Complex values sort by their `value` sub-attribute.
        None if v.is_object() => "value",
        None => return (Some(v).filter(|x| !x.is_null()), def),
    };
    let leaf = v.as_object().and_then(|o| text::get_ci(o, sub));
    (leaf.filter(|x| !x.is_null()), def)
}

fn compare_values(a: &Value, b: &Value, def: Option<&AttributeDef>) -> Ordering {
    let def = match def {
        Some(d) if d.attr_type == AttrType::Complex => d.sub_attribute("value"),
        other => other,
    };
    let case_exact = def.is_some_and(|d| d.case_exact);
    if def.is_some_and(|d| d.attr_type == AttrType::DateTime)
        && let (Some(x), Some(y)) = (
            a.as_str().and_then(text::parse_datetime),
            b.as_str().and_then(text::parse_datetime),
        )
    {
        return x.cmp(&y);
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => text::str_cmp(x, y, case_exact),
        (Value::Number(x), Value::Number(y)) => text::num_cmp(x, y).unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // Mixed or structured values: a fixed, arbitrary but total order.
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScimType;

    #[test]
    fn paging_parses_and_clamps() {
        // (startIndex, count, expected (start, count))
        type Case<'a> = (Option<&'a str>, Option<&'a str>, (usize, usize));
        let cases: &[Case<'_>] = &[
            (None, None, (1, 100)),
            (Some("1"), Some("10"), (1, 10)),
            (Some("0"), Some("10"), (1, 10)),
            (Some("-5"), Some("10"), (1, 10)),
            (Some("101"), Some("-1"), (101, 0)),
            (Some(" 3 "), Some("0"), (3, 0)),
            (Some("1"), Some("100000"), (1, 500)),
            (
                Some("99999999999999999999999"),
                Some("5"),
                (9_223_372_036_854_775_807, 5),
            ),
        ];
        for (s, c, (ws, wc)) in cases {
            let p =
                Paging::from_query(*s, *c, 100, 500).unwrap_or_else(|e| panic!("{s:?} {c:?}: {e}"));
            assert_eq!((p.start_index, p.count), (*ws, *wc), "{s:?} {c:?}");
        }
        for (s, c) in [
            (Some("abc"), None),
            (None, Some("1.5")),
            (Some(""), None),
            (None, Some("ten")),
        ] {
            let e = Paging::from_query(s, c, 100, 500).expect_err("non-integer");
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        }
    }

    #[test]
    fn paginate_slices_one_based() {
        let all: Vec<Value> = (1..=5).map(|i| json!({"id": i.to_string()})).collect();
        let cases = [
            ((1, 2), vec!["1", "2"]),
            ((4, 10), vec!["4", "5"]),
            ((6, 3), vec![]),
            ((2, 0), vec![]),
        ];
        for ((start, count), want) in cases {
            let page = ListResponse::paginate(
                all.clone(),
                &Paging {
                    start_index: start,
                    count,
                },
            );
            let ids: Vec<&str> = page
                .resources
                .iter()
                .filter_map(|r| r["id"].as_str())
                .collect();
            assert_eq!(ids, want, "{start} {count}");
            let doc = page.to_json();
            assert_eq!(doc["totalResults"], 5);
            assert_eq!(doc["startIndex"], start);
            assert_eq!(doc["itemsPerPage"], want.len());
            assert_eq!(doc["schemas"], json!([LIST_RESPONSE_SCHEMA]));
            assert_eq!(ListResponse::from_json(&doc).ok(), Some(page));
        }
        let lenient = ListResponse::from_json(&json!({"totalResults": "0", "startIndex": "1"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((lenient.total_results, lenient.items_per_page), (0, 0));
    }

    #[test]
    fn sorting_follows_schema_types_and_case_rules() {
        let reg = SchemaRegistry::standard();
        let users = vec![
            json!({"id": "b", "userName": "bob", "meta": {"lastModified": "2020-01-01T10:00:00+02:00"}, "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]}),
            json!({"id": "A", "userName": "Alice", "meta": {"lastModified": "2020-01-01T09:00:00Z"}, "emails": [{"value": "m@x"}]}),
            json!({"id": "c", "userName": "carol"}),
            json!({"id": "a", "userName": "alice2", "meta": {"lastModified": "2020-01-01T07:30:00Z"}}),
        ];
        let order = |sort_by: &str, ord: Option<&str>| -> Vec<String> {
            let spec = SortSpec::parse(sort_by, ord).unwrap_or_else(|e| panic!("{e}"));
            let mut v = users.clone();
            spec.sort(&mut v, reg);
            v.iter()
                .filter_map(|u| u["id"].as_str().map(str::to_string))
                .collect()
        };
        // userName is caseExact=false: Alice < alice2 < bob < carol.
        assert_eq!(order("userName", None), ["A", "a", "b", "c"]);
        assert_eq!(order("USERNAME", Some("Descending")), ["c", "b", "a", "A"]);
        // id is caseExact=true: "A" < "a" < "b" < "c" in byte order.
        assert_eq!(order("id", None), ["A", "a", "b", "c"]);
        // Instants, not strings: 08:00Z (b) sorts after 07:30Z (a), before 09:00Z (A); missing last.
        assert_eq!(order("meta.lastModified", None), ["a", "b", "A", "c"]);
        assert_eq!(
            order("meta.lastModified", Some("descending")),
            ["A", "b", "a", "c"]
        );
        // Multi-valued: primary email (a@x) for b; missing last.
        assert_eq!(order("emails", None), ["b", "A", "c", "a"]);
        assert_eq!(order("emails.value", None), ["b", "A", "c", "a"]);
        let e = SortSpec::parse("userName", Some("sideways")).expect_err("order");
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = SortSpec::parse("user name", None).expect_err("path");
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }
}
