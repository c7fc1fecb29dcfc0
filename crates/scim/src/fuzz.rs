//! Fuzzing entry points (cargo-fuzz / libFuzzer ready).
//!
//! [`fuzz_filter`] and [`fuzz_patch`] never panic: they drive the parser,
//! printer, validator, evaluator and PATCH applier with arbitrary bytes and
//! discard the outcome. The invariant checks they run are exposed
//! separately ([`check_filter`], [`check_patch`]) so a fuzz target can
//! turn a violated invariant into a crash:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| {
//!     if let Err(e) = roster_scim::fuzz::check_filter(data) { panic!("{e}") }
//! });
//! ```

use crate::error::ScimError;
use crate::filter::Filter;
use crate::patch::apply_patch;
use crate::path::PatchPath;
use crate::schema::{
    ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, PATCH_OP_SCHEMA, SchemaRegistry, USER_SCHEMA,
};
use serde_json::{Value, json};

fn sample_user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "id": "u1",
        "externalId": "E1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "ß@例え.jp", "type": "home"}],
        "meta": {"resourceType": "User", "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"1\""},
        ENTERPRISE_USER_SCHEMA: {"employeeNumber": "701984", "manager": {"value": "m1"}}
    })
}

fn sample_group() -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "g1",
        "displayName": "Ops",
        "members": [{"value": "u1"}, {"value": "u2", "display": "Two"}]
    })
}

/// Runs the filter pipeline on arbitrary bytes; never panics.
pub fn fuzz_filter(data: &[u8]) {
    let _ = check_filter(data);
}

/// Runs the PATCH pipeline on arbitrary bytes; never panics.
pub fn fuzz_patch(data: &[u8]) {
    let _ = check_patch(data);
}

/// Filter invariants: a parsed filter prints to text that parses back to
/// the same AST; validation, evaluation and index planning terminate; a
/// parse failure is `400 invalidFilter`.
pub fn check_filter(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let reg = SchemaRegistry::standard();
    match Filter::parse(text) {
        Ok(f) => {
            let printed = f.to_string();
            match Filter::parse(&printed) {
                Ok(g) if g == f => {}
                Ok(g) => {
                    return Err(format!(
                        "round trip changed {text:?}: {f:?} -> {printed:?} -> {g:?}"
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "printed form of {text:?} does not parse: {printed:?}: {e}"
                    ));
                }
            }
            let _ = f.validate(reg);
            let user = sample_user();
            let group = sample_group();
            let m = f.matches(&user, reg);
            // `not` must invert evaluation exactly.
            if Filter::negate(f.clone()).matches(&user, reg) == m {
                return Err(format!("not ({text}) did not invert the result"));
            }
            let _ = f.matches(&group, reg);
            let _ = f.as_indexed_eq();
        }
        Err(e) => check_error(&e, "invalidFilter")?,
    }
    if let Err(e) = PatchPath::parse(text) {
        check_error(&e, "invalidPath")?;
    }
    Ok(())
}

fn check_error(e: &ScimError, want: &str) -> Result<(), String> {
    if e.status == 400 && e.scim_type.map(|t| t.as_str()) == Some(want) {
        Ok(())
    } else {
        Err(format!("expected 400 {want}, got {e}"))
    }
}

/// PATCH invariants: a failed patch leaves the resource unchanged and
/// reports a 4xx; a successful one leaves an object whose `schemas` starts
/// with the core URN. The input is a whole PatchOp body when it is JSON
/// (wrapped as `Operations` when it is an array or a bare operation), and
/// otherwise used as the `path` of add/replace/remove operations.
pub fn check_patch(data: &[u8]) -> Result<(), String> {
    let reg = SchemaRegistry::standard();
    let bodies: Vec<Value> = match serde_json::from_slice::<Value>(data) {
        Ok(v @ Value::Object(_)) if v.get("Operations").is_some() => vec![v],
        Ok(Value::Array(ops)) => vec![json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})],
        Ok(op) => vec![json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [op]})],
        Err(_) => match std::str::from_utf8(data) {
            Ok(path) => ["add", "Replace", "remove"]
                .iter()
                .flat_map(|op| {
                    [
                        json!("x"),
                        json!(true),
                        json!([{"value": "v"}]),
                        json!({"value": "v"}),
                    ]
                    .into_iter()
                    .map(move |value| {
                        json!({"schemas": [PATCH_OP_SCHEMA],
                                   "Operations": [{"op": op, "path": path, "value": value}]})
                    })
                })
                .collect(),
            Err(_) => return Ok(()),
        },
    };
    for body in &bodies {
        for (resource, rt, core) in [
            (sample_user(), "User", USER_SCHEMA),
            (sample_group(), "Group", GROUP_SCHEMA),
        ] {
            let mut r = resource.clone();
            match apply_patch(&mut r, body, reg, rt) {
                Ok(()) => {
                    if r.get("schemas")
                        .and_then(|s| s.get(0))
                        .and_then(Value::as_str)
                        != Some(core)
                    {
                        return Err(format!("schemas lost core URN after {body}: {r}"));
                    }
                }
                Err(e) => {
                    if r != resource {
                        return Err(format!("failed patch {body} modified the resource: {e}"));
                    }
                    if !(400..500).contains(&e.status) {
                        return Err(format!("patch {body} gave non-4xx error {e}"));
                    }
                }
            }
        }
    }
    Ok(())
}
