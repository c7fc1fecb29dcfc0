//! Validation and normalisation of resources on create (POST) and replace
//! (PUT), RFC 7644 §3.3 and §3.5.1.
//!
//! [`normalize`] turns a client body into the canonical stored form:
//! - attribute names in canonical spelling; dotted (`name.givenName`) and
//!   URN-qualified top-level keys folded into their place;
//! - values coerced by schema type (see `coerce`: `"True"` → `true`, a bare
//!   manager id → `{"value": id}`, single values wrapped for multi-valued
//!   attributes), type errors are `400 invalidValue`;
//! - readOnly attributes (`id`, `meta`, `groups`, `manager.displayName`)
//!   dropped, since the server owns them (§3.5.1: "SHALL be ignored");
//! - unknown attributes and unknown schema URNs dropped (a fixed-schema
//!   server cannot store them; Entra adds a Microsoft group schema URN);
//! - required attributes checked (`userName` for users, `displayName` for
//!   groups), `400 invalidValue` when missing or empty;
//! - `schemas` rebuilt: the core URN, then each extension present.
//!
//! The caller adds `id` and `meta` afterwards.

use crate::coerce::coerce_attr;
use crate::error::ScimError;
use crate::eval::is_present;
use crate::path::PatchPath;
use crate::schema::{AttributeDef, Mutability, ResourceType, SchemaRegistry};
use crate::text;
use serde_json::{Map, Value};

/// Normalises a User body with the standard registry.
pub fn normalize_user(value: Value) -> Result<Value, ScimError> {
    normalize(value, SchemaRegistry::standard(), "User")
}

/// Normalises a Group body with the standard registry.
pub fn normalize_group(value: Value) -> Result<Value, ScimError> {
    normalize(value, SchemaRegistry::standard(), "Group")
}

/// Normalises a resource body of `resource_type` (see the module docs).
pub fn normalize(
    value: Value,
    registry: &SchemaRegistry,
    resource_type: &str,
) -> Result<Value, ScimError> {
    let rt = registry
        .resource_type(resource_type)
        .ok_or_else(|| ScimError::internal(format!("unknown resource type {resource_type}")))?;
    let Value::Object(input) = value else {
        return Err(ScimError::invalid_syntax(
            "resource body must be a JSON object",
        ));
    };
    if let Some(s) = text::get_ci(&input, "schemas") {
        let ok = s.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(ScimError::invalid_syntax(
                "\"schemas\" must be an array of URN strings",
            ));
        }
    }
    let mut out = Map::new();
    for (key, v) in &input {
        if key.eq_ignore_ascii_case("schemas") || v.is_null() {
            continue;
        }
        if let Some(ext) = rt
            .schema_extensions
            .iter()
            .find(|e| e.schema.eq_ignore_ascii_case(key))
        {
            let Value::Object(members) = v else {
                return Err(ScimError::invalid_value(format!(
                    "extension {} must be an object",
                    ext.schema
                )));
            };
            for (k, mv) in members {
                let path = format!("{}:{k}", ext.schema);
                place(&mut out, &path, mv, registry, rt)?;
            }
            continue;
        }
        place(&mut out, key, v, registry, rt)?;
    }
    check_required(&out, registry, rt)?;
    let mut schemas = vec![Value::String(rt.schema.clone())];
    for ext in &rt.schema_extensions {
        match out.get(&ext.schema) {
            Some(v) if is_present(v) => schemas.push(Value::String(ext.schema.clone())),
            Some(_) => {
                out.remove(&ext.schema);
            }
            None if ext.required => {
                return Err(ScimError::invalid_value(format!(
                    "extension {} is required",
                    ext.schema
                )));
            }
            None => {}
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    Ok(Value::Object(out))
}

/// Coerces one input member and stores it at its canonical place.
fn place(
    out: &mut Map<String, Value>,
    key: &str,
    v: &Value,
    registry: &SchemaRegistry,
    rt: &ResourceType,
) -> Result<(), ScimError> {
    if v.is_null() {
        return Ok(());
    }
    // Keys that do not parse, value-filter keys and unknown attributes are
    // not ours to store.
    let Ok(PatchPath {
        attr: path,
        filter: None,
        ..
    }) = PatchPath::parse(key)
    else {
        return Ok(());
    };
    let Some(resolved) = registry.resolve(&path, Some(&rt.id)) else {
        return Ok(());
    };
    let attr = resolved.attr;
    if attr.mutability == Mutability::ReadOnly
        || (resolved.schema.is_none() && attr.name == "schemas")
    {
        return Ok(());
    }
    let container = match resolved.extension_urn() {
        None => out,
        Some(urn) => {
            let slot = out
                .entry(urn.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match slot.as_object_mut() {
                Some(m) => m,
                None => return Err(ScimError::internal("extension slot is not an object")),
            }
        }
    };
    let canonical = resolved.canonical_path().to_string();
    match resolved.sub {
        None => {
            let c = coerce_attr(attr, v, &canonical)?;
            if !is_present(&c) {
                return Ok(());
            }
            // `name` after `name.givenName` (or vice versa): merge objects.
            match (container.get_mut(&attr.name), c) {
                (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
                (_, c) => {
                    container.insert(attr.name.clone(), c);
                }
            }
        }
        Some(sub) => {
            if sub.mutability == Mutability::ReadOnly || attr.multi_valued {
                // `emails.value` as a top-level key is ambiguous: ignore it.
                return Ok(());
            }
            let c = coerce_attr(sub, v, &canonical)?;
            if c.is_null() {
                return Ok(());
            }
            let slot = container
                .entry(attr.name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(o) = slot.as_object_mut() {
                o.insert(sub.name.clone(), c);
            }
        }
    }
    Ok(())
}

fn check_required(
    out: &Map<String, Value>,
    registry: &SchemaRegistry,
    rt: &ResourceType,
) -> Result<(), ScimError> {
    let missing = |name: &str| {
        Err(ScimError::invalid_value(format!(
            "required attribute {name} is missing or empty"
        )))
    };
    let check_attr =
        |def: &AttributeDef, v: Option<&Value>, qualified: &str| -> Result<(), ScimError> {
            if def.mutability == Mutability::ReadOnly {
                return Ok(());
            }
            match v {
                Some(v) if is_present(v) => {
                    // Required sub-attributes in every element.
                    let elements: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for sub in def.sub_attributes.iter().filter(|s| s.required) {
                        for e in &elements {
                            let present = e
                                .as_object()
                                .and_then(|o| o.get(&sub.name))
                                .is_some_and(is_present);
                            if !present {
                                return missing(&format!("{qualified}.{}", sub.name));
                            }
                        }
                    }
                    Ok(())
                }
                _ if def.required => missing(qualified),
                _ => Ok(()),
            }
        };
    if let Some(core) = registry.schema(&rt.schema) {
        for def in &core.attributes {
            check_attr(def, out.get(&def.name), &def.name)?;
        }
    }
    for ext in &rt.schema_extensions {
        let (Some(schema), Some(obj)) = (
            registry.schema(&ext.schema),
            out.get(&ext.schema).and_then(Value::as_object),
        ) else {
            continue;
        };
        for def in &schema.attributes {
            check_attr(
                def,
                obj.get(&def.name),
                &format!("{}:{}", ext.schema, def.name),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ENTERPRISE_USER_SCHEMA as ENT, GROUP_SCHEMA, ScimType, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn okta_create_body_normalises() {
        let body = json!({
            "schemas": [USER_SCHEMA],
            "userName": "isabella@example.com",
            "name": {"givenName": "Isabella", "familyName": "Moore"},
            "emails": [{"primary": true, "value": "isabella@example.com", "type": "work"}],
            "displayName": "Isabella Moore",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        });
        let n = normalize_user(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            n,
            json!({
                "schemas": [USER_SCHEMA],
                "userName": "isabella@example.com",
                "name": {"givenName": "Isabella", "familyName": "Moore"},
                "emails": [{"primary": true, "value": "isabella@example.com", "type": "work"}],
                "displayName": "Isabella Moore",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "password": "1mz050nq",
                "active": true
            })
        );
    }

    #[test]
    fn entra_create_body_normalises() {
        let body = json!({
            "schemas": [USER_SCHEMA, ENT],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "UserName": "Test_User_ab6490ee@contoso.com",
            "active": "True",
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            ENT: {"employeeNumber": "E1", "manager": "m-1"},
            "id": "client-supplied-id-is-ignored",
            "unknownThing": 1
        });
        let n = normalize_user(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n["userName"], "Test_User_ab6490ee@contoso.com");
        assert_eq!(n["active"], json!(true));
        assert_eq!(
            n[ENT],
            json!({"employeeNumber": "E1", "manager": {"value": "m-1"}})
        );
        assert_eq!(n["schemas"], json!([USER_SCHEMA, ENT]));
        for gone in ["id", "meta", "unknownThing", "UserName", "roles"] {
            assert!(n.get(gone).is_none(), "{gone} should be dropped");
        }
    }

    #[test]
    fn flat_urn_and_dotted_keys_fold_into_place() {
        let n = normalize_user(json!({
            "userName": "u",
            "name.givenName": "G",
            "name": {"familyName": "F"},
            format!("{ENT}:department"): "Ops"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n["name"], json!({"givenName": "G", "familyName": "F"}));
        assert_eq!(n[ENT], json!({"department": "Ops"}));
        assert_eq!(n["schemas"], json!([USER_SCHEMA, ENT]));
    }

    #[test]
    fn groups_normalise_and_drop_foreign_schemas() {
        let n = normalize_group(json!({
            "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "members": [{"$ref": null, "value": "u1"}, "u2"],
            "meta": {"resourceType": "Group"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            n,
            json!({
                "schemas": [GROUP_SCHEMA],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Group1DisplayName",
                "members": [{"value": "u1"}, {"value": "u2"}]
            })
        );
    }

    #[test]
    fn rejections() {
        let cases: Vec<(Value, &str, ScimType)> = vec![
            (
                json!({"name": {"givenName": "x"}}),
                "User",
                ScimType::InvalidValue,
            ),
            (json!({"userName": ""}), "User", ScimType::InvalidValue),
            (json!({"userName": 7}), "User", ScimType::InvalidValue),
            (
                json!({"userName": "u", "active": "maybe"}),
                "User",
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "u", "emails": [{"value": false}]}),
                "User",
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "u", ENT: "not an object"}),
                "User",
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "u", "schemas": "nope"}),
                "User",
                ScimType::InvalidSyntax,
            ),
            (
                json!(["not", "an", "object"]),
                "User",
                ScimType::InvalidSyntax,
            ),
            (json!({"members": []}), "Group", ScimType::InvalidValue),
        ];
        for (body, rt, want) in cases {
            let e = normalize(body.clone(), SchemaRegistry::standard(), rt)
                .expect_err(&body.to_string());
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(want), "{body}: {e}");
        }
    }
}
