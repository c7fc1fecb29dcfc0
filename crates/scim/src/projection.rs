//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9).
//!
//! Rules, driven by each attribute's `returned` characteristic:
//! - `always` (`id`, `schemas`) is returned even if excluded or not listed;
//! - `never` (`password`) is never returned;
//! - `request` is returned only when listed in `attributes`;
//! - `default` is returned unless excluded or, when `attributes` is given,
//!   not listed.
//!
//! Entries may name sub-attributes (`name.givenName`, `emails.value`),
//! URN-qualified attributes
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`)
//! or a whole extension by its URN. Names are case-insensitive; entries that
//! are not valid attribute paths are ignored, as are unknown attributes.
//! When both lists are given, `attributes` selects and `excludedAttributes`
//! then removes. Extension objects left empty are dropped. `schemas` is
//! not rewritten.

use crate::path::AttrPath;
use crate::schema::{AttributeDef, Returned, SchemaKind, SchemaRegistry};
use serde_json::{Map, Value};

/// Splits a comma-separated query value (`?attributes=userName,emails`).
pub fn split_attribute_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// One parsed list entry, in canonical spelling where the schema knows it.
#[derive(Debug)]
struct Sel {
    ext: Option<String>,
    /// `None` selects the whole extension `ext`.
    name: Option<String>,
    sub: Option<String>,
}

fn parse_sels(list: &[String], reg: &SchemaRegistry) -> Vec<Sel> {
    list.iter()
        .filter_map(|raw| {
            let p = AttrPath::parse(raw.trim()).ok()?;
            if let Some(ext) = reg.extension_for_path(&p) {
                return Some(Sel {
                    ext: Some(ext.id.clone()),
                    name: None,
                    sub: None,
                });
            }
            Some(match reg.resolve(&p, None) {
                Some(r) => Sel {
                    ext: r.extension_urn().map(str::to_string),
                    name: Some(r.attr.name.clone()),
                    sub: r.sub.map(|s| s.name.clone()),
                },
                None => Sel {
                    ext: p.uri,
                    name: Some(p.name),
                    sub: p.sub_attr,
                },
            })
        })
        .collect()
}

fn opt_eq(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    }
}

/// Selection of one attribute by a list: `None` = not selected,
/// `Some(None)` = whole attribute, `Some(Some(subs))` = only those subs.
fn selection<'s>(sels: &'s [Sel], ext: Option<&str>, name: &str) -> Option<Option<Vec<&'s str>>> {
    let mut subs = Vec::new();
    let mut hit = false;
    for s in sels.iter().filter(|s| opt_eq(s.ext.as_deref(), ext)) {
        match (&s.name, &s.sub) {
            (None, _) => return Some(None),
            (Some(n), None) if n.eq_ignore_ascii_case(name) => return Some(None),
            (Some(n), Some(sub)) if n.eq_ignore_ascii_case(name) => {
                hit = true;
                subs.push(sub.as_str());
            }
            _ => {}
        }
    }
    hit.then_some(Some(subs))
}

/// Applies `f` to each object in a complex value (object or array of
/// objects), dropping elements left empty.
fn map_objects(v: Value, f: &dyn Fn(&mut Map<String, Value>)) -> Option<Value> {
    match v {
        Value::Object(mut o) => {
            f(&mut o);
            (!o.is_empty()).then_some(Value::Object(o))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .into_iter()
                .filter_map(|e| match e {
                    Value::Object(_) => map_objects(e, f),
                    other => Some(other),
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other),
    }
}

fn sub_returned(def: Option<&AttributeDef>, key: &str) -> Returned {
    def.and_then(|d| d.sub_attribute(key))
        .map_or(Returned::Default, |s| s.returned)
}

fn project_attr(
    ext: Option<&str>,
    name: &str,
    value: &Value,
    def: Option<&AttributeDef>,
    include: Option<&[Sel]>,
    exclude: &[Sel],
) -> Option<Value> {
    let returned = def.map_or(Returned::Default, |d| d.returned);
    if returned == Returned::Never {
        return None;
    }
    // Sub-attributes that are never returned go regardless.
    let mut v = map_objects(value.clone(), &|o| {
        o.retain(|k, _| sub_returned(def, k) != Returned::Never)
    })?;
    if returned == Returned::Always {
        return Some(v);
    }
    match include.map(|sels| selection(sels, ext, name)) {
        Some(None) => return None,
        Some(Some(Some(subs))) => {
            v = map_objects(v, &|o| {
                o.retain(|k, _| {
                    subs.iter().any(|s| s.eq_ignore_ascii_case(k))
                        || sub_returned(def, k) == Returned::Always
                })
            })?;
        }
        Some(Some(None)) => {}
        None if returned == Returned::Request => return None,
        None => {
            // Without an `attributes` list, request-only sub-attributes go.
            v = map_objects(v, &|o| {
                o.retain(|k, _| sub_returned(def, k) != Returned::Request)
            })?;
        }
    }
    match selection(exclude, ext, name) {
        Some(None) => None,
        Some(Some(subs)) => map_objects(v, &|o| {
            o.retain(|k, _| {
                !subs.iter().any(|s| s.eq_ignore_ascii_case(k))
                    || sub_returned(def, k) == Returned::Always
            })
        }),
        None => Some(v),
    }
}

/// Returns the representation of `resource` to send to a client, honouring
/// `attributes` and `excludedAttributes`. Call it even with both `None`:
/// it still strips `returned=never` attributes such as `password`.
pub fn project(
    resource: &Value,
    attributes: Option<&[String]>,
    excluded: Option<&[String]>,
    registry: &SchemaRegistry,
) -> Value {
    let Some(obj) = resource.as_object() else {
        return resource.clone();
    };
    let include = attributes.map(|a| parse_sels(a, registry));
    let include = include.as_deref().filter(|s| !s.is_empty());
    let exclude = excluded
        .map(|e| parse_sels(e, registry))
        .unwrap_or_default();
    let mut out = Map::new();
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let ext_schema = registry
            .schemas()
            .iter()
            .find(|s| s.kind == SchemaKind::Extension && s.id.eq_ignore_ascii_case(key));
        if let (Some(ext), Some(members)) = (ext_schema, value.as_object()) {
            let mut ext_out = Map::new();
            for (k, v) in members {
                let def = ext.attribute(k);
                let name = def.map_or(k.as_str(), |d| d.name.as_str());
                if let Some(pv) = project_attr(Some(&ext.id), name, v, def, include, &exclude) {
                    ext_out.insert(k.clone(), pv);
                }
            }
            if !ext_out.is_empty() {
                out.insert(key.clone(), Value::Object(ext_out));
            }
            continue;
        }
        let resolved = registry.resolve(&AttrPath::new(key.as_str()), None);
        let def = resolved.map(|r| r.attr);
        let ext = resolved.and_then(|r| r.extension_urn());
        if ext.is_some() {
            // An unqualified extension attribute stored at the top level is
            // not where the schema says; treat it as unknown.
            if let Some(pv) = project_attr(None, key, value, None, include, &exclude) {
                out.insert(key.clone(), pv);
            }
            continue;
        }
        let name = def.map_or(key.as_str(), |d| d.name.as_str());
        if let Some(pv) = project_attr(None, name, value, def, include, &exclude) {
            out.insert(key.clone(), pv);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ENTERPRISE_USER_SCHEMA as ENT, USER_SCHEMA};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENT],
            "id": "u1",
            "externalId": "e1",
            "userName": "bjensen",
            "password": "hunter2",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}],
            "active": true,
            "meta": {"resourceType": "User", "lastModified": "2020-01-01T00:00:00Z"},
            ENT: {"employeeNumber": "42", "department": "Ops"}
        })
    }

    fn list(s: &str) -> Vec<String> {
        split_attribute_list(s)
    }

    #[test]
    fn projection_table() {
        let reg = SchemaRegistry::standard();
        let emp = format!("{ENT}:employeeNumber");
        let ext_excl = format!("{ENT}:employeeNumber,{ENT}:department,emails.type,emails.primary");
        let cases: Vec<(Option<&str>, Option<&str>, Value)> = vec![
            (
                None,
                None,
                json!({
                    "schemas": [USER_SCHEMA, ENT], "id": "u1", "externalId": "e1", "userName": "bjensen",
                    "name": {"givenName": "Barbara", "familyName": "Jensen"},
                    "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}],
                    "active": true,
                    "meta": {"resourceType": "User", "lastModified": "2020-01-01T00:00:00Z"},
                    ENT: {"employeeNumber": "42", "department": "Ops"}
                }),
            ),
            (
                Some("userName"),
                None,
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", "userName": "bjensen"}),
            ),
            (
                Some("USERNAME, name.givenName,emails.value,password"),
                None,
                json!({
                    "schemas": [USER_SCHEMA, ENT], "id": "u1", "userName": "bjensen",
                    "name": {"givenName": "Barbara"},
                    "emails": [{"value": "a@x"}, {"value": "b@x"}]
                }),
            ),
            (
                Some(&emp),
                None,
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: {"employeeNumber": "42"}}),
            ),
            (
                Some(ENT),
                None,
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: {"employeeNumber": "42", "department": "Ops"}}),
            ),
            (
                Some("department"),
                None,
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: {"department": "Ops"}}),
            ),
            (
                None,
                Some("emails,id,meta,name.familyName"),
                json!({
                    "schemas": [USER_SCHEMA, ENT], "id": "u1", "externalId": "e1", "userName": "bjensen",
                    "name": {"givenName": "Barbara"}, "active": true,
                    ENT: {"employeeNumber": "42", "department": "Ops"}
                }),
            ),
            (
                None,
                Some(&ext_excl),
                json!({
                    "schemas": [USER_SCHEMA, ENT], "id": "u1", "externalId": "e1", "userName": "bjensen",
                    "name": {"givenName": "Barbara", "familyName": "Jensen"},
                    "emails": [{"value": "a@x"}, {"value": "b@x"}], "active": true,
                    "meta": {"resourceType": "User", "lastModified": "2020-01-01T00:00:00Z"}
                }),
            ),
            (
                Some("userName,emails"),
                Some("emails"),
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1", "userName": "bjensen"}),
            ),
            (
                Some("not a path!, nonexistent"),
                None,
                json!({"schemas": [USER_SCHEMA, ENT], "id": "u1"}),
            ),
        ];
        for (attrs, excl, want) in cases {
            let a = attrs.map(list);
            let e = excl.map(list);
            let got = project(&user(), a.as_deref(), e.as_deref(), reg);
            assert_eq!(got, want, "attributes={attrs:?} excluded={excl:?}");
        }
    }

    #[test]
    fn entra_excludes_group_members() {
        let g = json!({"schemas": [crate::GROUP_SCHEMA], "id": "g1", "displayName": "Ops", "members": [{"value": "u1"}]});
        let got = project(&g, None, Some(&list("members")), SchemaRegistry::standard());
        assert_eq!(
            got,
            json!({"schemas": [crate::GROUP_SCHEMA], "id": "g1", "displayName": "Ops"})
        );
    }
}
