//! The PATCH applier (RFC 7644 §3.5.2), tolerant of what Okta and Entra send.
//!
//! [`apply_patch`] validates a PatchOp message and applies its operations in
//! order to a JSON resource. It is **all-or-nothing**: operations run on a
//! clone, which replaces the resource only if every operation succeeds.
//!
//! Accepted beyond the letter of the RFC (each seen in the wild):
//! - `op` in any case (`Add`, `Replace`, `Remove`; Entra);
//! - path-less `add`/`replace` whose value has dotted keys (`name.givenName`),
//!   URN-qualified keys (`urn:…:enterprise:2.0:User:employeeNumber`),
//!   extension objects, or value-selection keys; unknown keys there are
//!   ignored (custom attributes of another schema), while an explicit
//!   `path` to an unknown attribute is `400 invalidPath`;
//! - `remove` of `members` with a `value` list removes just those members
//!   (Entra);
//! - `add`/`replace` on `emails[type eq "work"].value` with no matching
//!   element creates `{"type":"work","value":…}` (Entra sets a first work
//!   email this way). Creation only happens for filters that are
//!   conjunctions of `eq`; otherwise no match is `400 noTarget`;
//! - `remove` with a value filter that matches nothing is a no-op, so
//!   repeated membership removals are idempotent;
//! - writing a readOnly attribute with its current value is a no-op (Okta's
//!   group rename sends `{"id": …, "displayName": …}`); any other write to a
//!   readOnly attribute is `400 mutability`.
//!
//! Semantics chosen where the RFC leaves room:
//! - `add` to a multi-valued attribute appends, skipping duplicates; an
//!   element with the same `value` as an existing one is merged into it.
//! - `replace` of a single-valued complex attribute merges sub-attributes
//!   (§3.5.2.3); `replace` of a multi-valued attribute replaces the list.
//! - `replace` with `null` removes; `add` with `null` does nothing.
//! - Removing a required attribute is `400 invalidValue`.
//! - A newly written `primary: true` clears `primary` on the other elements.
//!
//! The applier does not touch `meta`; the caller updates `lastModified` and
//! `version` after a successful patch.

use crate::coerce::{coerce_attr, coerce_single, keep_one_primary};
use crate::error::ScimError;
use crate::eval::{is_present, matches_element};
use crate::filter::{CompValue, CompareOp, Filter};
use crate::path::{AttrPath, PatchPath};
use crate::schema::{
    AttrType, AttributeDef, Mutability, PATCH_OP_SCHEMA, Resolved, ResourceType, SchemaKind,
    SchemaRegistry,
};
use crate::text;
use serde_json::{Map, Value, json};

/// A PATCH operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOpKind {
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `remove`
    Remove,
}

impl PatchOpKind {
    /// Wire spelling (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }
}

/// One parsed PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// The operation.
    pub op: PatchOpKind,
    /// The target, when given.
    pub path: Option<PatchPath>,
    /// The value, when given.
    pub value: Option<Value>,
}

impl PatchOperation {
    /// The operation as sent on the wire (lower-case `op`).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("op".into(), Value::String(self.op.as_str().into()));
        if let Some(p) = &self.path {
            o.insert("path".into(), Value::String(p.to_string()));
        }
        if let Some(v) = &self.value {
            o.insert("value".into(), v.clone());
        }
        Value::Object(o)
    }
}

/// Builds a PatchOp request body from operations (for SCIM clients).
pub fn patch_request(ops: &[PatchOperation]) -> Value {
    json!({
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": ops.iter().map(PatchOperation::to_json).collect::<Vec<_>>(),
    })
}

/// Parses and validates a PatchOp message: `schemas` must contain the
/// PatchOp URN, `Operations` must be a non-empty array of objects with a
/// known `op` (any case), an optional string `path` and a `value` for
/// `add`/`replace`. Errors are `400 invalidSyntax`, `invalidPath` or
/// `invalidValue`.
pub fn parse_patch_request(request: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let obj = request
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("PATCH body must be a JSON object"))?;
    let has_schema = text::get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "PATCH body must have \"schemas\": [\"{PATCH_OP_SCHEMA}\"]"
        )));
    }
    let ops = text::get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("PATCH body must have an \"Operations\" array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax(
            "\"Operations\" must not be empty",
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| at_operation(i, e)))
        .collect()
}

fn at_operation(i: usize, mut e: ScimError) -> ScimError {
    e.detail = format!("Operations[{i}]: {}", e.detail);
    e
}

fn parse_operation(op: &Value) -> Result<PatchOperation, ScimError> {
    let obj = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("operation must be an object"))?;
    let kind = match text::get_ci(obj, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => PatchOpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => PatchOpKind::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => PatchOpKind::Remove,
        Some(s) => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown op {}; expected add, replace or remove",
                crate::filter::quote_truncated(s)
            )));
        }
        None => return Err(ScimError::invalid_syntax("operation has no \"op\" string")),
    };
    let path = match text::get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(PatchPath::parse(s)?),
        Some(_) => return Err(ScimError::invalid_path("\"path\" must be a string")),
    };
    let value = text::get_ci(obj, "value").cloned();
    if kind != PatchOpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "{} requires a \"value\"",
            kind.as_str()
        )));
    }
    Ok(PatchOperation {
        op: kind,
        path,
        value,
    })
}

/// Applies a PatchOp request to `resource` (a resource of `resource_type`,
/// e.g. `"User"` or `"Group"`). On error the resource is unchanged.
pub fn apply_patch(
    resource: &mut Value,
    request: &Value,
    registry: &SchemaRegistry,
    resource_type: &str,
) -> Result<(), ScimError> {
    let ops = parse_patch_request(request)?;
    apply_operations(resource, &ops, registry, resource_type)
}

/// Applies already-parsed operations; same contract as [`apply_patch`].
pub fn apply_operations(
    resource: &mut Value,
    ops: &[PatchOperation],
    registry: &SchemaRegistry,
    resource_type: &str,
) -> Result<(), ScimError> {
    let rt = registry
        .resource_type(resource_type)
        .ok_or_else(|| ScimError::internal(format!("unknown resource type {resource_type}")))?;
    let ctx = Ctx { reg: registry, rt };
    let mut work = resource.clone();
    let res = work
        .as_object_mut()
        .ok_or_else(|| ScimError::internal("stored resource is not a JSON object"))?;
    for (i, op) in ops.iter().enumerate() {
        apply_one(res, op, &ctx).map_err(|e| at_operation(i, e))?;
    }
    finalize(res, &ctx);
    *resource = work;
    Ok(())
}

struct Ctx<'r> {
    reg: &'r SchemaRegistry,
    rt: &'r ResourceType,
}

impl Ctx<'_> {
    fn extension_named(&self, key: &str) -> Option<&str> {
        self.rt
            .schema_extensions
            .iter()
            .find(|e| e.schema.eq_ignore_ascii_case(key))
            .map(|e| e.schema.as_str())
    }
}

fn apply_one(
    res: &mut Map<String, Value>,
    op: &PatchOperation,
    ctx: &Ctx<'_>,
) -> Result<(), ScimError> {
    match (&op.path, op.op) {
        (None, PatchOpKind::Remove) => Err(ScimError::no_target("remove requires a \"path\"")),
        (None, kind) => {
            let Some(Value::Object(obj)) = &op.value else {
                return Err(ScimError::invalid_value(format!(
                    "{} without \"path\" requires an object \"value\"",
                    kind.as_str()
                )));
            };
            for (key, v) in obj {
                apply_keyed(res, kind, key, v, ctx)?;
            }
            Ok(())
        }
        (Some(path), kind) => apply_path(res, kind, path, op.value.as_ref(), ctx, false),
    }
}

/// One member of a path-less `add`/`replace` value object.
fn apply_keyed(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    key: &str,
    v: &Value,
    ctx: &Ctx<'_>,
) -> Result<(), ScimError> {
    if key.eq_ignore_ascii_case("schemas") {
        // The applier maintains `schemas` itself from the data present.
        return Ok(());
    }
    if let Some(ext) = ctx.extension_named(key) {
        return apply_extension(res, kind, ext, Some(v), ctx);
    }
    let path = PatchPath::parse(key)?;
    apply_path(res, kind, &path, Some(v), ctx, true)
}

/// `add`/`replace`/`remove` on a whole extension object.
fn apply_extension(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    urn: &str,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), ScimError> {
    match (kind, value) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, Some(Value::Null)) => {
            remove_ci(res, urn);
            Ok(())
        }
        (_, Some(Value::Null)) => Ok(()),
        (_, Some(Value::Object(obj))) => {
            for (k, v) in obj {
                let mut p = AttrPath::parse(k)?;
                if p.uri.is_none() {
                    p.uri = Some(urn.to_string());
                }
                let path = PatchPath {
                    attr: p,
                    filter: None,
                    sub_attr: None,
                };
                apply_path(res, kind, &path, Some(v), ctx, true)?;
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "the value for extension {urn} must be an object"
        ))),
    }
}

fn apply_path(
    res: &mut Map<String, Value>,
    kind: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
    ignore_unknown: bool,
) -> Result<(), ScimError> {
    if path.filter.is_none()
        && let Some(ext) = ctx.reg.extension_for_path(&path.attr)
        && let Some(urn) = ctx.extension_named(&ext.id)
    {
        return apply_extension(res, kind, urn, value, ctx);
    }
    let Some(resolved) = ctx.reg.resolve(&path.attr, Some(&ctx.rt.id)) else {
        return if ignore_unknown {
            Ok(())
        } else {
            Err(ScimError::invalid_path(format!(
                "{path} is not an attribute of {}",
                ctx.rt.name
            )))
        };
    };
    if resolved.schema.is_none() && resolved.attr.name == "schemas" {
        return Ok(());
    }
    let urn = resolved.extension_urn();
    let create = kind != PatchOpKind::Remove;
    let Some(container) = container_mut(res, urn, create) else {
        return Ok(()); // removing from an absent extension: nothing to do
    };
    match &path.filter {
        Some(filter) => apply_filtered(container, kind, &resolved, path, filter, value, ctx),
        None => match resolved.sub {
            Some(sub) => apply_sub(container, kind, resolved.attr, sub, value),
            None => apply_top(container, kind, resolved.attr, value),
        },
    }
}

/// The object holding the attribute: the resource, or its extension object.
fn container_mut<'m>(
    res: &'m mut Map<String, Value>,
    urn: Option<&str>,
    create: bool,
) -> Option<&'m mut Map<String, Value>> {
    let Some(urn) = urn else {
        return Some(res);
    };
    let key = match text::key_ci(res, urn) {
        Some(k) => k,
        None if create => {
            res.insert(urn.to_string(), Value::Object(Map::new()));
            urn.to_string()
        }
        None => return None,
    };
    let slot = res.get_mut(&key)?;
    if !slot.is_object() {
        if !create {
            return None;
        }
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Removes every key equal to `name` ignoring case; returns the value.
fn remove_ci(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let mut found = map.remove(name);
    while let Some(k) = text::key_ci(map, name) {
        let v = map.remove(&k);
        if found.is_none() {
            found = v;
        }
    }
    found
}

/// Writes `name` with its canonical spelling, dropping other spellings.
fn put(map: &mut Map<String, Value>, name: &str, v: Value) {
    remove_ci(map, name);
    map.insert(name.to_string(), v);
}

fn read_only_error(name: &str) -> ScimError {
    ScimError::mutability(format!("attribute {name} is readOnly"))
}

fn check_write(
    def: &AttributeDef,
    current: Option<&Value>,
    new: &Value,
    name: &str,
) -> Result<bool, ScimError> {
    let present = current.is_some_and(is_present);
    match def.mutability {
        Mutability::ReadOnly if current == Some(new) || (!present && !is_present(new)) => Ok(false),
        Mutability::ReadOnly => Err(read_only_error(name)),
        Mutability::Immutable if present && current != Some(new) => Err(ScimError::mutability(
            format!("attribute {name} is immutable and already has a value"),
        )),
        _ => Ok(true),
    }
}

fn check_remove(
    def: &AttributeDef,
    current: Option<&Value>,
    name: &str,
) -> Result<bool, ScimError> {
    if !current.is_some_and(is_present) {
        return Ok(false);
    }
    match def.mutability {
        Mutability::ReadOnly => Err(read_only_error(name)),
        Mutability::Immutable => Err(ScimError::mutability(format!(
            "attribute {name} is immutable and cannot be removed"
        ))),
        _ if def.required => Err(ScimError::invalid_value(format!(
            "attribute {name} is required and cannot be removed"
        ))),
        _ => Ok(true),
    }
}

fn value_or_err(value: Option<&Value>, kind: PatchOpKind) -> Result<&Value, ScimError> {
    value.ok_or_else(|| ScimError::invalid_value(format!("{} requires a \"value\"", kind.as_str())))
}

/// Top-level attribute without a filter: `userName`, `emails`, `name`.
fn apply_top(
    c: &mut Map<String, Value>,
    kind: PatchOpKind,
    attr: &AttributeDef,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = attr.name.as_str();
    let current = text::get_ci(c, name).cloned();
    if kind == PatchOpKind::Remove {
        // Entra: {"op":"Remove","path":"members","value":[{"value":"id"}]}.
        if let (Some(v), true, Some(Value::Array(items))) = (value, attr.multi_valued, &current)
            && !v.is_null()
        {
            let doomed = coerce_attr(attr, v, name)?;
            let doomed = doomed.as_array().map(Vec::as_slice).unwrap_or_default();
            let kept: Vec<Value> = items
                .iter()
                .filter(|e| !doomed.iter().any(|d| same_element(e, d, attr)))
                .cloned()
                .collect();
            if kept.len() != items.len() && attr.mutability == Mutability::ReadOnly {
                return Err(read_only_error(name));
            }
            write_array(c, name, kept);
            return Ok(());
        }
        if check_remove(attr, current.as_ref(), name)? {
            remove_ci(c, name);
        }
        return Ok(());
    }
    let raw = value_or_err(value, kind)?;
    if attr.mutability == Mutability::ReadOnly {
        // Compare the raw value: coercion would drop readOnly sub-attributes
        // and make a real change to `meta` look like a no-op.
        let unchanged = current.as_ref() == Some(raw)
            || (!current.as_ref().is_some_and(is_present) && !is_present(raw));
        return if unchanged {
            Ok(())
        } else {
            Err(read_only_error(name))
        };
    }
    let new = coerce_attr(attr, raw, name)?;
    if new.is_null() {
        if kind == PatchOpKind::Replace && check_remove(attr, current.as_ref(), name)? {
            remove_ci(c, name);
        }
        return Ok(());
    }
    if attr.multi_valued {
        let Value::Array(new_items) = new else {
            return Err(ScimError::internal(
                "coerced multi-valued value is not an array",
            ));
        };
        let merged = match (kind, current.as_ref()) {
            (PatchOpKind::Add, Some(Value::Array(existing))) => {
                let mut items = existing.clone();
                merge_into_array(&mut items, new_items, attr, name)?;
                items
            }
            _ => new_items,
        };
        let merged = Value::Array(merged);
        if check_write(attr, current.as_ref(), &merged, name)?
            && let Value::Array(items) = merged
        {
            write_array(c, name, items);
        }
        return Ok(());
    }
    if attr.attr_type == AttrType::Complex {
        let mut obj = match &current {
            Some(Value::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        if let Value::Object(n) = &new {
            merge_object(&mut obj, n, attr, name)?;
        }
        let merged = Value::Object(obj);
        if check_write(attr, current.as_ref(), &merged, name)? {
            put(c, name, merged);
        }
        return Ok(());
    }
    if check_write(attr, current.as_ref(), &new, name)? {
        put(c, name, new);
    }
    Ok(())
}

/// `name.givenName` (single complex parent) or `emails.value` (multi).
fn apply_sub(
    c: &mut Map<String, Value>,
    kind: PatchOpKind,
    attr: &AttributeDef,
    sub: &AttributeDef,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let full = format!("{}.{}", attr.name, sub.name);
    let new = match kind {
        PatchOpKind::Remove => Value::Null,
        _ => coerce_attr(sub, value_or_err(value, kind)?, &full)?,
    };
    if new.is_null() && kind == PatchOpKind::Add {
        return Ok(());
    }
    let current = text::get_ci(c, &attr.name).cloned();
    if attr.mutability == Mutability::ReadOnly {
        // e.g. meta.lastModified, groups.value: only no-op writes pass.
        let unchanged = match (&current, &new) {
            (Some(Value::Object(o)), n) => text::get_ci(o, &sub.name).unwrap_or(&Value::Null) == n,
            (None, Value::Null) => true,
            _ => false,
        };
        return if unchanged {
            Ok(())
        } else {
            Err(read_only_error(&full))
        };
    }
    let mut elements: Vec<Value> = match (&current, attr.multi_valued) {
        (Some(Value::Array(a)), true) => a.clone(),
        (Some(o @ Value::Object(_)), false) => vec![o.clone()],
        _ => Vec::new(),
    };
    if elements.is_empty() {
        if new.is_null() {
            return Ok(());
        }
        elements.push(Value::Object(Map::new()));
    }
    for e in &mut elements {
        set_sub(e, sub, &new, &full)?;
    }
    let winner = (sub.name == "primary" && new == Value::Bool(true)).then_some(0);
    keep_one_primary(&mut elements, winner);
    write_elements(c, attr, elements);
    Ok(())
}

/// Sets (or with `Null`, removes) a sub-attribute of one element,
/// enforcing the sub-attribute's mutability.
fn set_sub(
    element: &mut Value,
    sub: &AttributeDef,
    new: &Value,
    full: &str,
) -> Result<(), ScimError> {
    let Some(obj) = element.as_object_mut() else {
        return Err(ScimError::invalid_value(format!(
            "{full}: stored element is not an object"
        )));
    };
    let current = text::get_ci(obj, &sub.name).cloned();
    if new.is_null() {
        if check_remove(sub, current.as_ref(), full)? {
            remove_ci(obj, &sub.name);
        }
    } else if check_write(sub, current.as_ref(), new, full)? {
        put(obj, &sub.name, new.clone());
    }
    Ok(())
}

/// Value-selection paths: `emails[type eq "work"].value`, `members[value eq "x"]`.
fn apply_filtered(
    c: &mut Map<String, Value>,
    kind: PatchOpKind,
    resolved: &Resolved<'_>,
    path: &PatchPath,
    filter: &Filter,
    value: Option<&Value>,
    ctx: &Ctx<'_>,
) -> Result<(), ScimError> {
    let attr = resolved.attr;
    if resolved.sub.is_some() || attr.attr_type != AttrType::Complex {
        return Err(ScimError::invalid_path(format!(
            "{path}: value filters apply only to complex attributes"
        )));
    }
    let sub = match &path.sub_attr {
        Some(s) => Some(attr.sub_attribute(s).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "{path}: {s} is not a sub-attribute of {}",
                attr.name
            ))
        })?),
        None => None,
    };
    let full = path.to_string();
    if attr.mutability == Mutability::ReadOnly {
        return Err(read_only_error(&attr.name));
    }
    let current = text::get_ci(c, &attr.name);
    let mut elements: Vec<Value> = match (current, attr.multi_valued) {
        (Some(Value::Array(a)), true) => a.clone(),
        (Some(o @ Value::Object(_)), false) => vec![o.clone()],
        _ => Vec::new(),
    };
    let matched: Vec<usize> = elements
        .iter()
        .enumerate()
        .filter(|(_, e)| matches_element(filter, e, Some(attr), ctx.reg))
        .map(|(i, _)| i)
        .collect();

    let new = match kind {
        PatchOpKind::Remove => Value::Null,
        _ => {
            let raw = value_or_err(value, kind)?;
            match sub {
                Some(sd) => coerce_attr(sd, raw, &full)?,
                None => coerce_single(attr, raw, &full)?,
            }
        }
    };
    if new.is_null() && kind == PatchOpKind::Add {
        return Ok(());
    }
    if new.is_null() {
        // remove, or replace with null
        if matched.is_empty() {
            return Ok(());
        }
        match sub {
            Some(sd) => {
                for &i in &matched {
                    set_sub(&mut elements[i], sd, &Value::Null, &full)?;
                }
            }
            None => {
                let mut idx = 0;
                elements.retain(|_| {
                    let keep = !matched.contains(&idx);
                    idx += 1;
                    keep
                });
            }
        }
        elements.retain(is_present);
        write_elements(c, attr, elements);
        return Ok(());
    }

    let mut winner = None;
    if matched.is_empty() {
        let seed = match eq_terms(filter, attr) {
            Some(seed) if attr.multi_valued => seed,
            _ => {
                return Err(ScimError::no_target(format!("{path} matched no value")));
            }
        };
        let mut element = Value::Object(seed);
        match sub {
            Some(sd) => set_sub(&mut element, sd, &new, &full)?,
            None => {
                if let (Some(obj), Value::Object(n)) = (element.as_object_mut(), &new) {
                    merge_object(obj, n, attr, &full)?;
                }
            }
        }
        if is_primary(&element) {
            winner = Some(elements.len());
        }
        elements.push(element);
    } else {
        for &i in &matched {
            match sub {
                Some(sd) => set_sub(&mut elements[i], sd, &new, &full)?,
                None => {
                    if let (Some(obj), Value::Object(n)) = (elements[i].as_object_mut(), &new) {
                        merge_object(obj, n, attr, &full)?;
                    }
                }
            }
            if winner.is_none() && is_primary(&elements[i]) {
                winner = Some(i);
            }
        }
    }
    keep_one_primary(&mut elements, winner);
    write_elements(c, attr, elements);
    Ok(())
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|o| text::get_ci(o, "primary"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// The `eq` conjuncts of a value filter as a seed element, when the filter
/// is exactly a conjunction of `eq` comparisons on known sub-attributes.
fn eq_terms(filter: &Filter, attr: &AttributeDef) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let items: &[Filter] = match filter {
        Filter::And(items) => items,
        other => std::slice::from_ref(other),
    };
    for item in items {
        let Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } = item
        else {
            return None;
        };
        if path.uri.is_some() || path.sub_attr.is_some() {
            return None;
        }
        let sub = attr.sub_attribute(&path.name)?;
        let raw = match value {
            CompValue::Str(s) => Value::String(s.clone()),
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::Null => return None,
        };
        let v = coerce_single(sub, &raw, &sub.name).ok()?;
        out.insert(sub.name.clone(), v);
    }
    Some(out)
}

/// Merges sub-attributes of `new` into `existing`, enforcing immutability.
fn merge_object(
    existing: &mut Map<String, Value>,
    new: &Map<String, Value>,
    attr: &AttributeDef,
    name: &str,
) -> Result<(), ScimError> {
    for (k, v) in new {
        let sub_name = attr
            .sub_attribute(k)
            .map_or(k.as_str(), |d| d.name.as_str());
        if let Some(d) = attr.sub_attribute(k) {
            check_write(
                d,
                text::get_ci(existing, sub_name),
                v,
                &format!("{name}.{sub_name}"),
            )?;
        }
        put(existing, sub_name, v.clone());
    }
    Ok(())
}

/// Whether two elements of a multi-valued attribute denote the same value:
/// equal `value` sub-attributes for complex attributes (per `caseExact`),
/// equal JSON otherwise.
fn same_element(a: &Value, b: &Value, attr: &AttributeDef) -> bool {
    let case_exact = match attr.attr_type {
        AttrType::Complex => attr.sub_attribute("value").is_some_and(|d| d.case_exact),
        _ => attr.case_exact,
    };
    let key = |v: &Value| -> Option<Value> {
        match v {
            Value::Object(o) => text::get_ci(o, "value").cloned(),
            _ => None,
        }
    };
    let (ka, kb) = match attr.attr_type {
        AttrType::Complex => match (key(a), key(b)) {
            (Some(x), Some(y)) => (x, y),
            _ => return a == b,
        },
        _ => (a.clone(), b.clone()),
    };
    match (ka.as_str(), kb.as_str()) {
        (Some(x), Some(y)) => text::str_eq(x, y, case_exact),
        _ => ka == kb,
    }
}

/// Appends `new` to `items`, merging elements that denote the same value.
fn merge_into_array(
    items: &mut Vec<Value>,
    new: Vec<Value>,
    attr: &AttributeDef,
    name: &str,
) -> Result<(), ScimError> {
    let mut winner = None;
    for n in new {
        let primary = is_primary(&n);
        let pos = match items.iter().position(|e| same_element(e, &n, attr)) {
            Some(p) => {
                if let (Some(obj), Value::Object(nobj)) = (items[p].as_object_mut(), &n) {
                    merge_object(obj, nobj, attr, name)?;
                }
                p
            }
            None => {
                items.push(n);
                items.len() - 1
            }
        };
        if primary {
            winner = Some(pos);
        }
    }
    keep_one_primary(items, winner);
    Ok(())
}

/// Writes a multi-valued attribute; an empty list removes it.
fn write_array(c: &mut Map<String, Value>, name: &str, items: Vec<Value>) {
    if items.is_empty() {
        remove_ci(c, name);
    } else {
        put(c, name, Value::Array(items));
    }
}

/// Writes back elements of a complex attribute (multi or single).
fn write_elements(c: &mut Map<String, Value>, attr: &AttributeDef, elements: Vec<Value>) {
    let elements: Vec<Value> = elements.into_iter().filter(is_present).collect();
    if attr.multi_valued {
        write_array(c, &attr.name, elements);
    } else {
        match elements.into_iter().next() {
            Some(v) => put(c, &attr.name, v),
            None => {
                remove_ci(c, &attr.name);
            }
        }
    }
}

/// Drops empty extension objects and rebuilds `schemas` from what is
/// present: the core schema first, then each non-empty extension.
fn finalize(res: &mut Map<String, Value>, ctx: &Ctx<'_>) {
    let mut schemas = vec![Value::String(ctx.rt.schema.clone())];
    for ext in &ctx.rt.schema_extensions {
        let is_ext_schema = ctx
            .reg
            .schema(&ext.schema)
            .is_some_and(|s| s.kind == SchemaKind::Extension);
        if !is_ext_schema {
            continue;
        }
        match text::key_ci(res, &ext.schema) {
            Some(k) if res.get(&k).is_some_and(|v| v.is_object() && is_present(v)) => {
                if k != ext.schema
                    && let Some(v) = res.remove(&k)
                {
                    res.insert(ext.schema.clone(), v);
                }
                schemas.push(Value::String(ext.schema.clone()));
            }
            Some(k) => {
                res.remove(&k);
            }
            None => {}
        }
    }
    put(res, "schemas", Value::Array(schemas));
}

#[cfg(test)]
mod tests;
