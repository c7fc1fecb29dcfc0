//! Filter evaluation against JSON resources.
//!
//! Semantics (RFC 7644 §3.4.2.2), with the choices this crate makes:
//! - Types and `caseExact` come from the schema. Attributes the registry
//!   does not know are compared by their JSON type, with strings
//!   case-insensitive (the RFC 7643 §2.2 default `caseExact=false`).
//! - A multi-valued attribute matches if **any** value matches.
//! - A complex attribute compared without a sub-attribute compares its
//!   `value` sub-attribute (`emails co "@x"`).
//! - `ne` is the negation of `eq` over the whole attribute: a missing
//!   attribute is "not equal", and `emails.value ne "a"` is false if any
//!   email is `a`. `eq null` means "not present", `ne null` means present.
//! - `pr` is true for a value that is not null, not `""`, not `[]` and, for
//!   objects, has at least one present member.
//! - dateTime values compare as instants (RFC 3339); integers and decimals
//!   numerically; booleans accept Entra's `"True"`/`"False"` strings.
//! - Comparisons the schema forbids (`active gt true`) never match; call
//!   [`Filter::validate`] first to turn them into `400 invalidFilter`.
//!
//! Evaluation allocates nothing: names are looked up with ASCII case folding
//! and strings are folded character by character.

use crate::filter::{CompValue, CompareOp, Filter};
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, SchemaRegistry};
use crate::text;
use serde_json::{Number, Value};
use std::cmp::Ordering;

#[derive(Clone, Copy)]
enum Scope<'a> {
    Root,
    Element(Option<&'a AttributeDef>),
}

/// What a path points at in one resource (or element).
struct Target<'a> {
    /// The top-level (or element-level) attribute value.
    value: Option<&'a Value>,
    /// Sub-attribute to descend into.
    sub: Option<&'a str>,
    /// Definition of the final attribute, if known.
    leaf: Option<&'a AttributeDef>,
}

/// Looks up the value of an attribute at the top level of a resource,
/// honouring extension URNs. Shared with sorting and projection.
pub(crate) fn top_level<'a>(
    resource: &'a Value,
    path: &'a AttrPath,
    registry: &'a SchemaRegistry,
    resource_type: Option<&str>,
) -> (Option<&'a Value>, Option<&'a AttributeDef>) {
    let Some(obj) = resource.as_object() else {
        return (None, None);
    };
    let resolved = registry.resolve(path, resource_type);
    let value = match (&resolved, &path.uri) {
        (Some(r), _) => match r.extension_urn() {
            Some(urn) => text::get_ci(obj, urn)
                .and_then(Value::as_object)
                .and_then(|ext| text::get_ci(ext, &r.attr.name)),
            None => text::get_ci(obj, &r.attr.name),
        },
        (None, Some(uri)) => text::get_ci(obj, uri)
            .and_then(Value::as_object)
            .and_then(|ext| text::get_ci(ext, &path.name)),
        (None, None) => text::get_ci(obj, &path.name),
    };
    (value, resolved.map(|r| r.leaf()))
}

fn target<'a>(
    scope: Scope<'a>,
    node: &'a Value,
    path: &'a AttrPath,
    registry: &'a SchemaRegistry,
) -> Target<'a> {
    match scope {
        Scope::Root => {
            let (value, leaf) = top_level(node, path, registry, None);
            Target {
                value,
                sub: path.sub_attr.as_deref(),
                leaf,
            }
        }
        Scope::Element(parent) => {
            let def = parent.and_then(|p| p.sub_attribute(&path.name));
            let leaf = match &path.sub_attr {
                Some(s) => def.and_then(|d| d.sub_attribute(s)),
                None => def,
            };
            Target {
                value: node.as_object().and_then(|o| text::get_ci(o, &path.name)),
                sub: path.sub_attr.as_deref(),
                leaf,
            }
        }
    }
}

/// Calls `f` on every leaf value under `v` (array elements flattened,
/// descending into `sub` when given); true if any call returns true.
fn any_leaf<'a>(v: &'a Value, sub: Option<&str>, f: &mut dyn FnMut(&'a Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|e| any_leaf(e, sub, f)),
        Value::Object(o) => match sub {
            Some(s) => text::get_ci(o, s).is_some_and(|x| any_leaf(x, None, f)),
            None => f(v),
        },
        _ => sub.is_none() && f(v),
    }
}

/// RFC 7644 `pr`: a non-empty value.
pub(crate) fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

impl Filter {
    /// Whether `resource` satisfies the filter. See the [module
    /// docs](crate::eval) for the exact semantics.
    pub fn matches(&self, resource: &Value, registry: &SchemaRegistry) -> bool {
        eval(self, resource, registry, Scope::Root)
    }
}

/// Evaluates a value-selection filter against one element of a complex
/// attribute whose definition is `parent` (used by PATCH).
pub(crate) fn matches_element(
    filter: &Filter,
    element: &Value,
    parent: Option<&AttributeDef>,
    registry: &SchemaRegistry,
) -> bool {
    eval(filter, element, registry, Scope::Element(parent))
}

fn eval<'a>(f: &'a Filter, node: &'a Value, reg: &'a SchemaRegistry, scope: Scope<'a>) -> bool {
    match f {
        Filter::And(items) => items.iter().all(|x| eval(x, node, reg, scope)),
        Filter::Or(items) => items.iter().any(|x| eval(x, node, reg, scope)),
        Filter::Not(inner) => !eval(inner, node, reg, scope),
        Filter::Present(path) => {
            let t = target(scope, node, path, reg);
            t.value
                .is_some_and(|v| any_leaf(v, t.sub, &mut |x| is_present(x)))
        }
        Filter::ValuePath { attr, filter } => {
            let t = target(scope, node, attr, reg);
            let inner_scope = Scope::Element(t.leaf);
            match t.value {
                Some(Value::Array(items)) => {
                    items.iter().any(|e| eval(filter, e, reg, inner_scope))
                }
                Some(v @ Value::Object(_)) => eval(filter, v, reg, inner_scope),
                _ => false,
            }
        }
        Filter::Compare { path, op, value } => {
            let t = target(scope, node, path, reg);
            match (op, value) {
                (CompareOp::Eq, CompValue::Null) => !t
                    .value
                    .is_some_and(|v| any_leaf(v, t.sub, &mut |x| is_present(x))),
                (CompareOp::Ne, CompValue::Null) => t
                    .value
                    .is_some_and(|v| any_leaf(v, t.sub, &mut |x| is_present(x))),
                (_, CompValue::Null) => false,
                (CompareOp::Ne, _) => !t.value.is_some_and(|v| {
                    any_leaf(v, t.sub, &mut |x| {
                        compare_one(x, CompareOp::Eq, value, t.leaf)
                    })
                }),
                _ => t.value.is_some_and(|v| {
                    any_leaf(v, t.sub, &mut |x| compare_one(x, *op, value, t.leaf))
                }),
            }
        }
    }
}

/// Type and case rule of a leaf; complex attributes compare via `value`.
fn leaf_kind(def: Option<&AttributeDef>) -> (Option<AttrType>, bool) {
    match def {
        Some(d) if d.attr_type == AttrType::Complex => match d.sub_attribute("value") {
            Some(v) => (Some(v.attr_type), v.case_exact),
            None => (Some(AttrType::Complex), false),
        },
        Some(d) => (Some(d.attr_type), d.case_exact),
        None => (None, false),
    }
}

fn ordering_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn text_matches(stored: &str, op: CompareOp, wanted: &str, case_exact: bool) -> bool {
    match op {
        CompareOp::Eq => text::str_eq(stored, wanted, case_exact),
        CompareOp::Ne => !text::str_eq(stored, wanted, case_exact),
        CompareOp::Co => text::contains(stored, wanted, case_exact),
        CompareOp::Sw => text::starts_with(stored, wanted, case_exact),
        CompareOp::Ew => text::ends_with(stored, wanted, case_exact),
        _ => ordering_matches(op, text::str_cmp(stored, wanted, case_exact)),
    }
}

fn as_number(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse::<f64>().ok().and_then(Number::from_f64),
        _ => None,
    }
}

fn comp_number(v: &CompValue) -> Option<Number> {
    match v {
        CompValue::Number(n) => Some(n.clone()),
        CompValue::Str(s) => s.trim().parse::<f64>().ok().and_then(Number::from_f64),
        _ => None,
    }
}

fn comp_bool(v: &CompValue) -> Option<bool> {
    match v {
        CompValue::Bool(b) => Some(*b),
        CompValue::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        CompValue::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Compares one stored leaf value with the filter value.
fn compare_one(
    stored: &Value,
    op: CompareOp,
    wanted: &CompValue,
    def: Option<&AttributeDef>,
) -> bool {
    let stored = match stored {
        Value::Object(o) => match text::get_ci(o, "value") {
            Some(v) => v,
            None => return false,
        },
        other => other,
    };
    let (ty, case_exact) = leaf_kind(def);
    let ty = match ty {
        Some(t) => t,
        None => match stored {
            Value::Bool(_) => AttrType::Boolean,
            Value::Number(_) => AttrType::Decimal,
            Value::String(_) => AttrType::String,
            _ => return false,
        },
    };
    match ty {
        AttrType::Boolean => match (text::as_bool_lenient(stored), comp_bool(wanted)) {
            (Some(a), Some(b)) => match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                _ => false,
            },
            _ => false,
        },
        AttrType::Integer | AttrType::Decimal => {
            if op.is_substring() {
                return false;
            }
            match (as_number(stored), comp_number(wanted)) {
                (Some(a), Some(b)) => {
                    text::num_cmp(&a, &b).is_some_and(|o| ordering_matches(op, o))
                }
                _ => false,
            }
        }
        AttrType::DateTime => {
            let (Some(s), Some(w)) = (stored.as_str(), wanted.as_str()) else {
                return false;
            };
            if op.is_substring() {
                return text_matches(s, op, w, case_exact);
            }
            match (text::parse_datetime(s), text::parse_datetime(w)) {
                (Some(a), Some(b)) => ordering_matches(op, a.cmp(&b)),
                // An unparseable stored value still orders as text, so a
                // sloppy timestamp does not vanish from every query.
                _ => text_matches(s, op, w, case_exact),
            }
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            match (stored.as_str(), wanted.as_str()) {
                (Some(s), Some(w)) => {
                    if ty == AttrType::Binary && op.is_ordering() {
                        return false;
                    }
                    text_matches(s, op, w, case_exact)
                }
                _ => false,
            }
        }
        AttrType::Complex => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [crate::USER_SCHEMA, crate::ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "EXT-bjensen",
            "userName": "BJensen@Example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
            "displayName": "Babs Jensen",
            "title": "",
            "active": true,
            "userType": "Employee",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"3694e05e9dff591\""
            },
            crate::ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            },
            "x-score": 42,
            "x-flag": "True"
        })
    }

    fn check(cases: &[(&str, bool)]) {
        let reg = SchemaRegistry::standard();
        let u = user();
        for (s, want) in cases {
            let f = Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(f.matches(&u, reg), *want, "{s}");
        }
    }

    #[test]
    fn string_operators_follow_case_exact() {
        check(&[
            // userName is caseExact=false.
            (r#"userName eq "bjensen@example.com""#, true),
            (r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#, true),
            (r#"userName ne "bjensen@example.com""#, false),
            (r#"userName ne "other""#, true),
            (r#"userName co "JENSEN@""#, true),
            (r#"userName sw "bj""#, true),
            (r#"userName sw "jensen""#, false),
            (r#"userName ew ".COM""#, true),
            (r#"userName ew ".org""#, false),
            (r#"userName gt "a""#, true),
            (r#"userName lt "a""#, false),
            (r#"userName ge "bjensen@example.com""#, true),
            (r#"userName le "BJENSEN@EXAMPLE.COM""#, true),
            // id and externalId are caseExact=true.
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
            (r#"externalId eq "EXT-bjensen""#, true),
            (r#"externalId eq "ext-bjensen""#, false),
            (r#"externalId sw "EXT""#, true),
            (r#"externalId sw "ext""#, false),
            (r#"meta.version eq "W/\"3694e05e9dff591\"""#, true),
        ]);
    }

    #[test]
    fn presence_and_null() {
        check(&[
            ("title pr", false), // empty string is not present
            ("displayName pr", true),
            ("nickName pr", false),
            ("emails pr", true),
            ("name pr", true),
            ("name.middleName pr", false),
            ("nickName eq null", true),
            ("displayName eq null", false),
            ("displayName ne null", true),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr",
                true,
            ),
        ]);
    }

    #[test]
    fn logic_and_precedence() {
        check(&[
            // a or (b and c)
            (
                r#"userType eq "Contractor" or active eq true and title pr"#,
                false,
            ),
            (
                r#"userType eq "Employee" or active eq false and title pr"#,
                true,
            ),
            (
                r#"(userType eq "Employee" or active eq false) and title pr"#,
                false,
            ),
            (r#"not (userType eq "Contractor")"#, true),
            (
                r#"not (userType eq "Employee") or displayName sw "Babs""#,
                true,
            ),
            (
                r#"not (userType eq "Employee" or displayName sw "Babs")"#,
                false,
            ),
            (
                r#"userType eq "Employee" and not (emails co "example.org")"#,
                true,
            ),
        ]);
    }

    #[test]
    fn multi_valued_and_value_paths() {
        check(&[
            (r#"emails.value eq "babs@jensen.org""#, true),
            (r#"emails co "@jensen.org""#, true),
            (r#"emails.type eq "home""#, true),
            (r#"emails.type eq "other""#, false),
            (r#"emails.value ne "babs@jensen.org""#, false),
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (
                r#"emails[type eq "work"].value eq "BJENSEN@example.com""#,
                true,
            ),
            (
                r#"emails[type eq "home"].value eq "bjensen@example.com""#,
                false,
            ),
            (r#"emails[primary eq true].value ew "example.com""#, true),
            (r#"emails[not (type eq "work")]"#, true),
            (
                r#"emails[type eq "work" or type eq "home"] and phoneNumbers[type eq "work"]"#,
                true,
            ),
            (r#"phoneNumbers[type eq "mobile"]"#, false),
            (r#"name[givenName eq "barbara"]"#, true),
            (r#"emails[value pr]"#, true),
            (r#"addresses[type eq "work"]"#, false),
        ]);
    }

    #[test]
    fn urn_qualified_and_sub_attributes() {
        check(&[
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (r#"employeeNumber eq "701984""#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#,
                true,
            ),
            (r#"name.givenName eq "BARBARA""#, true),
            (r#"name.familyName co "ens""#, true),
            (r#"name.givenName eq "Jensen""#, false),
        ]);
    }

    #[test]
    fn dates_numbers_and_booleans() {
        check(&[
            (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified lt "2011-05-13T05:00:00+01:00""#, false),
            (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
            (r#"meta.created le "2010-01-23T04:56:22.000Z""#, true),
            ("active eq true", true),
            ("active eq false", false),
            ("active ne false", true),
            (r#"active eq "TRUE""#, true),
            ("x-score gt 41", true),
            ("x-score gt 42", false),
            ("x-score ge 42.0", true),
            ("x-score lt 1e3", true),
            ("x-score eq 42", true),
            // Unknown attribute holding a string is text, not boolean.
            (r#"x-flag eq "true""#, true),
            ("x-flag eq true", false),
            // Invalid-by-schema comparisons never match.
            ("active gt false", false),
            ("missing eq \"x\"", false),
            ("missing ne \"x\"", true),
        ]);
    }

    #[test]
    fn groups_members() {
        let reg = SchemaRegistry::standard();
        let g = json!({
            "schemas": [crate::GROUP_SCHEMA],
            "id": "g1",
            "displayName": "Tour Guides",
            "members": [{"value": "u1", "display": "Babs"}, {"value": "u2"}]
        });
        for (s, want) in [
            (r#"displayName eq "tour guides""#, true),
            (r#"members[value eq "u2"]"#, true),
            (r#"members.value eq "u3""#, false),
            (r#"members eq "u1""#, true),
        ] {
            let f = Filter::parse(s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.matches(&g, reg), want, "{s}");
        }
    }
}
