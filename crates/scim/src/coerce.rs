//! Schema-driven coercion of client-supplied values (PATCH, POST, PUT).
//!
//! Clients are sloppy in known ways; this module accepts those and rejects
//! the rest with `400 invalidValue`:
//! - booleans as strings in any case (`"True"`, `"false"`; Entra);
//! - a bare string for a complex attribute that has a `value` sub-attribute
//!   (`manager: "id"` → `{"value": "id"}`);
//! - a single value for a multi-valued attribute (wrapped in an array) and a
//!   one-element array for a single-valued one (unwrapped);
//! - `null` sub-attributes (e.g. Entra's `"$ref": null`) are dropped, since
//!   null means "unassigned" (RFC 7644 §3.5.1);
//! - unknown and readOnly sub-attributes are dropped: the former cannot be
//!   stored under a fixed schema, the latter are set by the server only.
//!
//! Output keys use the schema's canonical spelling.

use crate::error::ScimError;
use crate::schema::{AttrType, AttributeDef, Mutability};
use crate::text;
use serde_json::{Map, Number, Value};

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(path: &str, def: &AttributeDef, got: &Value) -> ScimError {
    ScimError::invalid_value(format!(
        "attribute {path} must be {}{}, got {}",
        if def.multi_valued { "a list of " } else { "" },
        def.attr_type.as_str(),
        json_kind(got)
    ))
}

/// Coerces a whole attribute value (array for multi-valued attributes).
/// `Null` passes through (the caller decides what unassignment means).
pub(crate) fn coerce_attr(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Value, ScimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let v = coerce_single(def, item, path)?;
            if !v.is_null() && !out.contains(&v) {
                out.push(v);
            }
        }
        keep_one_primary(&mut out, None);
        Ok(Value::Array(out))
    } else {
        match value {
            Value::Array(a) if a.is_empty() => Ok(Value::Null),
            Value::Array(a) if a.len() == 1 => coerce_single(def, &a[0], path),
            Value::Array(_) => Err(mismatch(path, def, value)),
            other => coerce_single(def, other, path),
        }
    }
}

/// Coerces one value (one element of a multi-valued attribute).
pub(crate) fn coerce_single(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Value, ScimError> {
    let bad = || Err(mismatch(path, def, value));
    match def.attr_type {
        _ if value.is_null() => Ok(Value::Null),
        AttrType::Complex => match value {
            Value::Object(obj) => {
                let mut out = Map::new();
                for (k, v) in obj {
                    let Some(sub) = def.sub_attribute(k) else {
                        continue;
                    };
                    if sub.mutability == Mutability::ReadOnly || v.is_null() {
                        continue;
                    }
                    let sub_path = format!("{path}.{}", sub.name);
                    let c = coerce_attr(sub, v, &sub_path)?;
                    if !c.is_null() {
                        out.insert(sub.name.clone(), c);
                    }
                }
                Ok(Value::Object(out))
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                match def.sub_attribute("value") {
                    Some(vdef) => {
                        let mut out = Map::new();
                        out.insert(
                            vdef.name.clone(),
                            coerce_single(vdef, value, &format!("{path}.value"))?,
                        );
                        Ok(Value::Object(out))
                    }
                    None => bad(),
                }
            }
            _ => bad(),
        },
        AttrType::Boolean => match text::as_bool_lenient(value) {
            Some(b) => Ok(Value::Bool(b)),
            None => bad(),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Ok(Value::Number(Number::from(f as i64)))
                }
                _ => bad(),
            },
            _ => bad(),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value.clone()),
            _ => bad(),
        },
        AttrType::DateTime => match value {
            Value::String(s) if text::parse_datetime(s).is_some() => Ok(value.clone()),
            Value::String(s) => Err(ScimError::invalid_value(format!(
                "attribute {path} must be an RFC 3339 dateTime, got {}",
                crate::filter::quote_truncated(s)
            ))),
            _ => bad(),
        },
        AttrType::Binary => match value {
            Value::String(s)
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=-_\r\n ".contains(&b)) =>
            {
                Ok(value.clone())
            }
            _ => bad(),
        },
        AttrType::String | AttrType::Reference => match value {
            Value::String(_) => Ok(value.clone()),
            _ => bad(),
        },
    }
}

/// Ensures at most one element of a multi-valued complex attribute has
/// `primary: true` (RFC 7643 §2.4). The element at `winner` (a newly
/// written one) keeps it; otherwise the first one does.
pub(crate) fn keep_one_primary(items: &mut [Value], winner: Option<usize>) {
    let is_primary = |v: &Value| {
        v.as_object()
            .and_then(|o| text::get_ci(o, "primary"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let keep = match winner.filter(|&w| items.get(w).is_some_and(is_primary)) {
        Some(w) => w,
        None => match items.iter().position(is_primary) {
            Some(p) => p,
            None => return,
        },
    };
    for (i, item) in items.iter_mut().enumerate() {
        if i != keep
            && is_primary(item)
            && let Some(o) = item.as_object_mut()
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaRegistry;
    use serde_json::json;

    fn def(path: &str) -> &'static AttributeDef {
        SchemaRegistry::standard()
            .resolve_str(path, None)
            .map(|r| r.leaf())
            .unwrap_or_else(|| panic!("{path}"))
    }

    #[test]
    fn coerces_lenient_forms() {
        let cases = [
            ("active", json!("False"), json!(false)),
            ("active", json!("TRUE"), json!(true)),
            ("active", json!(true), json!(true)),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                json!("m1"),
                json!({"value": "m1"}),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                json!([{"value": "m1", "displayName": "ignored"}]),
                json!({"value": "m1"}),
            ),
            (
                "emails",
                json!({"value": "a@x", "Type": "work"}),
                json!([{"value": "a@x", "type": "work"}]),
            ),
            ("emails.primary", json!("true"), json!(true)),
            (
                "meta.lastModified",
                json!("2011-05-13T04:42:34Z"),
                json!("2011-05-13T04:42:34Z"),
            ),
            (
                "emails",
                json!([{"value": "a", "primary": true}, {"value": "b", "primary": "True"}]),
                json!([{"value": "a", "primary": true}, {"value": "b", "primary": false}]),
            ),
        ];
        for (path, input, want) in cases {
            let d = def(path);
            assert_eq!(
                coerce_attr(d, &input, path).unwrap_or_else(|e| panic!("{path}: {e}")),
                want,
                "{path}"
            );
        }
    }

    #[test]
    fn rejects_wrong_types_with_invalid_value() {
        let cases = [
            ("active", json!("yes")),
            ("active", json!(1)),
            ("userName", json!(5)),
            ("userName", json!({"a": 1})),
            ("name", json!(["a", "b"])),
            ("meta.lastModified", json!("last tuesday")),
            ("emails", json!([{"value": 5}])),
            ("x509Certificates.value", json!("not base64!")),
        ];
        for (path, input) in cases {
            let e = coerce_attr(def(path), &input, path).expect_err(path);
            assert_eq!(
                e.scim_type,
                Some(crate::ScimType::InvalidValue),
                "{path}: {e}"
            );
        }
    }
}
