//! `POST /Bulk` (RFC 7644 §3.7).
//!
//! Operations run one by one, each as its own transaction (Bulk is not
//! atomic in SCIM). `bulkId` references (`"bulkId:qwerty"` in a path or
//! anywhere in `data`, e.g. a group member created in the same request)
//! are resolved to the ids created by earlier POSTs; an operation that
//! references a POST appearing later waits for it, so the request order
//! does not matter. References to unknown or failed bulkIds fail that
//! operation (`400 invalidValue`); a cycle fails all its operations
//! (`409`). After `failOnErrors` errors, no further operation runs and the
//! response lists only those that did. The response lists operations in
//! request order.
//!
//! Limits, advertised in `/ServiceProviderConfig`: at most
//! `bulk_max_operations` operations and `bulk_max_payload_bytes` bytes;
//! beyond either the whole request is `413`.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use roster_scim::ScimError;
use roster_store::ScimKind;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resource::{etag, location};
use crate::service::Precondition;
use crate::state::Inner;
use crate::tokens::Caller;

/// The BulkRequest message URN.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message URN.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

const BULK_REF: &str = "bulkId:";

#[derive(Debug, Clone)]
struct Op {
    method: String,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn parse_op(v: &Value) -> Result<Op, ScimError> {
    let o = v
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be an object"))?;
    let s = |k: &str| get_ci(o, k).and_then(Value::as_str).map(str::to_string);
    let method = s("method")
        .ok_or_else(|| ScimError::invalid_syntax("operation has no \"method\""))?
        .to_ascii_uppercase();
    let path = s("path").ok_or_else(|| ScimError::invalid_syntax("operation has no \"path\""))?;
    Ok(Op {
        method,
        bulk_id: s("bulkId"),
        version: s("version"),
        path,
        data: get_ci(o, "data").cloned(),
    })
}

/// bulkIds referenced by a value.
fn refs_in(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_REF) {
                out.insert(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| refs_in(x, out)),
        _ => {}
    }
}

fn op_refs(op: &Op) -> HashSet<String> {
    let mut out = HashSet::new();
    for seg in op.path.split('/') {
        if let Some(id) = seg.strip_prefix(BULK_REF) {
            out.insert(id.to_string());
        }
    }
    if let Some(d) = &op.data {
        refs_in(d, &mut out);
    }
    out
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_REF).and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

fn error_entry(op: &Op, e: &ScimError) -> Value {
    let mut o = Map::new();
    o.insert("method".into(), json!(op.method));
    if let Some(b) = &op.bulk_id {
        o.insert("bulkId".into(), json!(b));
    }
    o.insert("status".into(), json!(e.status.to_string()));
    o.insert("response".into(), e.to_json());
    Value::Object(o)
}

/// Runs a Bulk request and returns the BulkResponse.
pub(crate) async fn run(
    inner: &Inner,
    caller: &Caller,
    body: &Bytes,
    base: &str,
) -> Result<Value, ApiError> {
    let cfg = &inner.config;
    if body.len() > cfg.bulk_max_payload_bytes {
        return Err(ScimError::payload_too_large(format!(
            "bulk request is {} bytes; maxPayloadSize is {}",
            body.len(),
            cfg.bulk_max_payload_bytes
        ))
        .into());
    }
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("request body is not valid JSON: {e}")))?;
    let obj = req
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("bulk request must be a JSON object"))?;
    let has_schema = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
            })
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "bulk request must have \"schemas\": [\"{BULK_REQUEST_SCHEMA}\"]"
        ))
        .into());
    }
    let fail_on_errors = match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })?)
        }
        Some(_) => {
            return Err(ScimError::invalid_value("failOnErrors must be a positive integer").into());
        }
    };
    let raw_ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("bulk request needs an \"Operations\" array"))?;
    if raw_ops.len() > usize::try_from(cfg.bulk_max_operations).unwrap_or(usize::MAX) {
        return Err(ScimError::payload_too_large(format!(
            "bulk request has {} operations; maxOperations is {}",
            raw_ops.len(),
            cfg.bulk_max_operations
        ))
        .into());
    }

    let ops: Vec<Result<Op, ScimError>> = raw_ops.iter().map(parse_op).collect();
    // bulkIds defined by POSTs; a repeated bulkId is an error on the repeat.
    let mut defined: HashSet<String> = HashSet::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors: u64 = 0;
    let mut pending: Vec<usize> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Err(e) => {
                results[i] = Some(json!({
                    "method": raw_ops[i].get("method").cloned().unwrap_or(Value::Null),
                    "status": e.status.to_string(),
                    "response": e.to_json(),
                }));
                errors += 1;
            }
            Ok(op) => {
                if op.method == "POST" {
                    match &op.bulk_id {
                        Some(b) if !defined.insert(b.clone()) => {
                            let e = ScimError::invalid_value(format!("bulkId {b:?} is repeated"));
                            results[i] = Some(error_entry(op, &e));
                            errors += 1;
                            continue;
                        }
                        None => {
                            let e = ScimError::invalid_syntax("a POST operation needs a bulkId");
                            results[i] = Some(error_entry(op, &e));
                            errors += 1;
                            continue;
                        }
                        _ => {}
                    }
                }
                pending.push(i);
            }
        }
    }
    let over = |errors: u64| fail_on_errors.is_some_and(|f| errors >= f);

    let mut created: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    'rounds: while !pending.is_empty() && !over(errors) {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for &i in &pending {
            if over(errors) {
                break 'rounds;
            }
            let Some(Ok(op)) = ops.get(i) else { continue };
            let refs = op_refs(op);
            if let Some(bad) = refs
                .iter()
                .find(|r| !defined.contains(*r) || failed.contains(*r))
            {
                let e = ScimError::invalid_value(format!(
                    "bulkId {bad:?} does not name a successful POST of this request"
                ));
                results[i] = Some(error_entry(op, &e));
                errors += 1;
                if let Some(b) = &op.bulk_id {
                    failed.insert(b.clone());
                }
                progressed = true;
                continue;
            }
            if !refs.iter().all(|r| created.contains_key(r)) {
                waiting.push(i);
                continue;
            }
            progressed = true;
            let entry = match execute(inner, caller, op, &created, base).await {
                Ok((entry, new_id)) => {
                    if let (Some(b), Some(id)) = (&op.bulk_id, new_id) {
                        created.insert(b.clone(), id);
                    }
                    entry
                }
                Err(e) => {
                    errors += 1;
                    if let Some(b) = &op.bulk_id {
                        failed.insert(b.clone());
                    }
                    error_entry(op, &e.0)
                }
            };
            results[i] = Some(entry);
        }
        if !progressed {
            // Every waiting operation depends on another waiting one.
            for i in waiting {
                if let Some(Ok(op)) = ops.get(i) {
                    let e = ScimError::new(
                        409,
                        Some(roster_scim::ScimType::InvalidValue),
                        "circular bulkId references",
                    );
                    results[i] = Some(error_entry(op, &e));
                }
            }
            break;
        }
        pending = waiting;
    }
    Ok(json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    }))
}

/// Runs one operation; returns its response entry and, for a POST, the
/// new id.
async fn execute(
    inner: &Inner,
    caller: &Caller,
    op: &Op,
    created: &HashMap<String, String>,
    base: &str,
) -> Result<(Value, Option<String>), ApiError> {
    let segs: Vec<String> = op
        .path
        .trim_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix(BULK_REF).and_then(|b| created.get(b)) {
                Some(id) => id.clone(),
                None => s.to_string(),
            },
        )
        .collect();
    let kind = match segs.first().map(String::as_str) {
        Some("Users") => ScimKind::User,
        Some("Groups") => ScimKind::Group,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "bulk path {:?} must be /Users[/id] or /Groups[/id]",
                op.path
            ))
            .into());
        }
    };
    let mut data = op.data.clone();
    if let Some(d) = data.as_mut() {
        substitute(d, created);
    }
    let need_data = || {
        data.clone()
            .ok_or_else(|| ApiError(ScimError::invalid_syntax("operation needs \"data\"")))
    };
    let pre = op.version.as_deref().map(Precondition::parse);
    let entry = |status: &str, id: &str, version: Option<i64>| {
        let mut o = Map::new();
        o.insert("method".into(), json!(op.method));
        if let Some(b) = &op.bulk_id {
            o.insert("bulkId".into(), json!(b));
        }
        o.insert("location".into(), json!(location(base, kind, id)));
        if let Some(v) = version {
            o.insert("version".into(), json!(etag(v)));
        }
        o.insert("status".into(), json!(status));
        Value::Object(o)
    };
    match (op.method.as_str(), segs.get(1)) {
        ("POST", None) => {
            let w = inner.create(caller, kind, need_data()?, base).await?;
            Ok((entry("201", &w.id, Some(w.version)), Some(w.id)))
        }
        ("PUT", Some(id)) => {
            let w = inner
                .replace(caller, kind, id, need_data()?, pre.as_ref(), base)
                .await?;
            Ok((entry("200", id, Some(w.version)), None))
        }
        ("PATCH", Some(id)) => {
            let w = inner
                .patch(caller, kind, id, &need_data()?, pre.as_ref(), base)
                .await?;
            Ok((entry("200", id, Some(w.version)), None))
        }
        ("DELETE", Some(id)) => {
            inner.delete(caller, kind, id, pre.as_ref()).await?;
            Ok((entry("204", id, None), None))
        }
        (m, _) => Err(ScimError::invalid_syntax(format!(
            "method {m} is not valid for bulk path {:?}",
            op.path
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_substituted() {
        let op = parse_op(&json!({
            "method": "post", "path": "/Groups", "bulkId": "g",
            "data": {"displayName": "x", "members": [{"value": "bulkId:u1"}, {"value": "plain"}]}
        }))
        .expect("op");
        assert_eq!(op.method, "POST");
        assert_eq!(op_refs(&op), HashSet::from(["u1".to_string()]));
        let mut d = op.data.clone().expect("data");
        substitute(
            &mut d,
            &HashMap::from([("u1".to_string(), "id-1".to_string())]),
        );
        assert_eq!(d["members"][0]["value"], "id-1");
        assert_eq!(d["members"][1]["value"], "plain");
        let put = parse_op(&json!({"method": "PUT", "path": "/Users/bulkId:u2"})).expect("op");
        assert_eq!(op_refs(&put), HashSet::from(["u2".to_string()]));
    }
}
