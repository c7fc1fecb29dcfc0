use super::*;
use crate::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, ScimType, USER_SCHEMA};
use serde_json::json;

const ENT: &str = ENTERPRISE_USER_SCHEMA;

fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "externalId": "ext-1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@home.org", "type": "home"}
        ],
        "meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z", "lastModified": "2020-01-01T00:00:00Z"}
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "g1",
        "displayName": "Ops",
        "members": [{"value": "u1", "display": "Babs"}, {"value": "u2"}]
    })
}

fn req(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

fn patch(resource: &Value, rt: &str, ops: Value) -> Result<Value, ScimError> {
    let mut r = resource.clone();
    apply_patch(&mut r, &req(ops), SchemaRegistry::standard(), rt)?;
    Ok(r)
}

fn ok(resource: &Value, rt: &str, ops: Value) -> Value {
    patch(resource, rt, ops.clone()).unwrap_or_else(|e| panic!("{ops}: {e}"))
}

fn err(resource: &Value, rt: &str, ops: Value) -> ScimError {
    let mut r = resource.clone();
    let e = apply_patch(&mut r, &req(ops.clone()), SchemaRegistry::standard(), rt)
        .expect_err(&ops.to_string());
    assert_eq!(
        &r, resource,
        "resource must be unchanged after error: {ops}"
    );
    e
}

#[test]
fn okta_deactivate_pathless() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert_eq!(r["active"], json!(false));
    assert_eq!(r["userName"], "bjensen@example.com");
}

#[test]
fn entra_string_booleans_any_case() {
    for (v, want) in [
        ("False", false),
        ("false", false),
        ("FALSE", false),
        ("True", true),
    ] {
        let r = ok(
            &user(),
            "User",
            json!([{"op": "Replace", "path": "active", "value": v}]),
        );
        assert_eq!(r["active"], json!(want), "{v}");
    }
    let r = ok(
        &user(),
        "User",
        json!([{"op": "Replace", "path": "active", "value": false}]),
    );
    assert_eq!(r["active"], json!(false));
}

#[test]
fn entra_several_replace_ops() {
    let r = ok(
        &user(),
        "User",
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Barb"},
            {"op": "Replace", "path": format!("{ENT}:employeeNumber"), "value": "701984"},
            {"op": "Add", "path": format!("{ENT}:manager"), "value": "mgr-7"},
            {"op": "Replace", "path": "displayName", "value": "Barb Jensen"}
        ]),
    );
    assert_eq!(
        r["emails"][0],
        json!({"value": "barbara@example.com", "type": "work", "primary": true})
    );
    assert_eq!(r["emails"][1]["value"], "babs@home.org");
    assert_eq!(
        r["name"],
        json!({"givenName": "Barb", "familyName": "Jensen"})
    );
    assert_eq!(
        r[ENT],
        json!({"employeeNumber": "701984", "manager": {"value": "mgr-7"}})
    );
    assert_eq!(r["schemas"], json!([USER_SCHEMA, ENT]));
    assert_eq!(r["displayName"], "Barb Jensen");
}

#[test]
fn pathless_dotted_urn_and_nested_keys() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "value": {
            "displayName": "B. Jensen",
            "name.givenName": "Barbie",
            format!("{ENT}:employeeNumber"): "42",
            format!("{ENT}:manager.value"): "m1",
            "emails[type eq \"work\"].value": "w@x.com",
            "x-unknown-custom": "ignored",
            "urn:okta:custom:1.0:User": {"foo": "ignored"}
        }}]),
    );
    assert_eq!(r["displayName"], "B. Jensen");
    assert_eq!(r["name"]["givenName"], "Barbie");
    assert_eq!(r["name"]["familyName"], "Jensen");
    assert_eq!(
        r[ENT],
        json!({"employeeNumber": "42", "manager": {"value": "m1"}})
    );
    assert_eq!(r["emails"][0]["value"], "w@x.com");
    assert!(r.get("x-unknown-custom").is_none());
    assert!(r.get("urn:okta:custom:1.0:User").is_none());

    // Nested objects: complex merge, extension object, full list replace.
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "value": {
            "name": {"familyName": "Smith"},
            ENT: {"department": "Ops", "manager": "m2"},
            "emails": [{"value": "only@x.com", "type": "work"}]
        }}]),
    );
    assert_eq!(
        r["name"],
        json!({"givenName": "Barbara", "familyName": "Smith"})
    );
    assert_eq!(
        r[ENT],
        json!({"department": "Ops", "manager": {"value": "m2"}})
    );
    assert_eq!(
        r["emails"],
        json!([{"value": "only@x.com", "type": "work"}])
    );
}

#[test]
fn okta_group_membership_and_rename() {
    let g = group();
    let r = ok(
        &g,
        "Group",
        json!([{"op": "add", "path": "members", "value": [{"value": "u3", "display": "C"}, {"value": "u1", "display": "Babs"}]}]),
    );
    assert_eq!(
        r["members"],
        json!([{"value": "u1", "display": "Babs"}, {"value": "u2"}, {"value": "u3", "display": "C"}])
    );
    let r = ok(
        &r,
        "Group",
        json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]),
    );
    assert_eq!(
        r["members"],
        json!([{"value": "u1", "display": "Babs"}, {"value": "u3", "display": "C"}])
    );
    // Removing a non-member is an idempotent no-op.
    let again = ok(
        &r,
        "Group",
        json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]),
    );
    assert_eq!(again, r);
    // Replace all members.
    let r = ok(
        &r,
        "Group",
        json!([{"op": "replace", "path": "members", "value": [{"value": "u9"}]}]),
    );
    assert_eq!(r["members"], json!([{"value": "u9"}]));
    // Rename carries the (unchanged) readOnly id.
    let r = ok(
        &g,
        "Group",
        json!([{"op": "replace", "value": {"id": "g1", "displayName": "Ops Team"}}]),
    );
    assert_eq!(r["displayName"], "Ops Team");
    assert_eq!(r["id"], "g1");
    assert_eq!(r["schemas"], json!([GROUP_SCHEMA]));
}

#[test]
fn entra_member_add_and_remove_with_value_list() {
    let g = group();
    let r = ok(
        &g,
        "Group",
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u5"}]}]),
    );
    assert_eq!(r["members"][2], json!({"value": "u5"}));
    let r = ok(
        &r,
        "Group",
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u5"}]}]),
    );
    assert_eq!(r["members"], json!([{"value": "u2"}]));
    let r = ok(&r, "Group", json!([{"op": "Remove", "path": "members"}]));
    assert!(r.get("members").is_none());
}

#[test]
fn value_filter_creates_missing_element_for_eq_filters() {
    let mut u = user();
    u["emails"] = json!([{"value": "babs@home.org", "type": "home"}]);
    let r = ok(
        &u,
        "User",
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x.com"}]),
    );
    assert_eq!(
        r["emails"],
        json!([{"value": "babs@home.org", "type": "home"}, {"type": "work", "value": "w@x.com"}])
    );
    let e = err(
        &u,
        "User",
        json!([{"op": "replace", "path": "emails[value co \"nomatch\"].type", "value": "work"}]),
    );
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
}

#[test]
fn value_filter_remove_and_sub_removal() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    );
    assert_eq!(
        r["emails"],
        json!([{"value": "babs@home.org", "type": "home"}])
    );
    let r = ok(
        &user(),
        "User",
        json!([{"op": "remove", "path": "emails[type eq \"home\"].type"}]),
    );
    assert_eq!(r["emails"][1], json!({"value": "babs@home.org"}));
    let r = ok(
        &user(),
        "User",
        json!([{"op": "remove", "path": "name.givenName"}]),
    );
    assert_eq!(r["name"], json!({"familyName": "Jensen"}));
    let r = ok(
        &r,
        "User",
        json!([{"op": "remove", "path": "name.familyName"}]),
    );
    assert!(
        r.get("name").is_none(),
        "empty complex attribute is dropped"
    );
}

#[test]
fn primary_is_unique_after_add() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x.com", "type": "other", "primary": true}]}]),
    );
    let primaries: Vec<&str> = r["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["primary"] == json!(true))
        .filter_map(|e| e["value"].as_str())
        .collect();
    assert_eq!(primaries, vec!["new@x.com"]);
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    );
    assert_eq!(r["emails"][0]["primary"], json!(false));
    assert_eq!(r["emails"][1]["primary"], json!(true));
}

#[test]
fn extension_removal_updates_schemas() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "add", "path": format!("{ENT}:department"), "value": "Ops"}]),
    );
    assert_eq!(r["schemas"], json!([USER_SCHEMA, ENT]));
    let r = ok(
        &r,
        "User",
        json!([{"op": "remove", "path": format!("{ENT}:department")}]),
    );
    assert!(r.get(ENT).is_none());
    assert_eq!(r["schemas"], json!([USER_SCHEMA]));
    let r = ok(
        &r,
        "User",
        json!([{"op": "add", "path": ENT, "value": {"costCenter": "cc"}}]),
    );
    assert_eq!(r[ENT], json!({"costCenter": "cc"}));
    let r = ok(&r, "User", json!([{"op": "remove", "path": ENT}]));
    assert!(r.get(ENT).is_none());
}

#[test]
fn attribute_names_are_case_insensitive_and_canonicalised() {
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "path": "USERNAME", "value": "b@x.com"}]),
    );
    assert_eq!(r["userName"], "b@x.com");
    assert!(r.get("USERNAME").is_none());
    let r = ok(
        &user(),
        "User",
        json!([{"op": "replace", "path": "Name.GivenName", "value": "Bee"}]),
    );
    assert_eq!(r["name"]["givenName"], "Bee");
}

#[test]
fn errors_have_the_right_scim_type_and_leave_resource_unchanged() {
    let u = user();
    let cases: Vec<(Value, ScimType)> = vec![
        (json!([{"op": "remove"}]), ScimType::NoTarget),
        (
            json!([{"op": "replace", "path": "id", "value": "other"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "value": {"id": "other"}}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "meta", "value": {"lastModified": "2030-01-01T00:00:00Z"}}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "meta.lastModified", "value": "2030-01-01T00:00:00Z"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "add", "path": "groups", "value": [{"value": "g1"}]}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "remove", "path": "id"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "nope", "value": 1}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "name.nope", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "userName[value eq \"x\"]", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq \"work\"].nope", "value": "x"}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "yes"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": 5}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "value": "not an object"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "userName"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "remove", "path": "userName"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": null}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "frobnicate", "path": "userName", "value": "x"}]),
            ScimType::InvalidSyntax,
        ),
        (json!([]), ScimType::InvalidSyntax),
        (json!(["not an object"]), ScimType::InvalidSyntax),
        // All-or-nothing: the first operation is valid, the second is not.
        (
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "active", "value": "maybe"}
            ]),
            ScimType::InvalidValue,
        ),
    ];
    for (ops, want) in cases {
        let e = err(&u, "User", ops.clone());
        assert_eq!(e.status, 400, "{ops}");
        assert_eq!(e.scim_type, Some(want), "{ops}: {e}");
        if ops != json!([]) {
            assert!(e.detail.starts_with("Operations["), "{ops}: {e}");
        }
    }
    let mut r = u.clone();
    let bad_schema =
        json!({"schemas": ["urn:wrong"], "Operations": [{"op": "remove", "path": "title"}]});
    let e =
        apply_patch(&mut r, &bad_schema, SchemaRegistry::standard(), "User").expect_err("schema");
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    assert_eq!(r, u);
}

#[test]
fn patch_request_round_trips_through_parser() {
    let ops = vec![
        PatchOperation {
            op: PatchOpKind::Replace,
            path: Some(
                PatchPath::parse("emails[type eq \"work\"].value")
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
            value: Some(json!("a@b.c")),
        },
        PatchOperation {
            op: PatchOpKind::Remove,
            path: Some(
                PatchPath::parse("members[value eq \"u1\"]").unwrap_or_else(|e| panic!("{e}")),
            ),
            value: None,
        },
    ];
    let body = patch_request(&ops);
    assert_eq!(
        parse_patch_request(&body).unwrap_or_else(|e| panic!("{e}")),
        ops
    );
}
