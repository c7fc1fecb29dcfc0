//! Between stored rows and SCIM JSON.
//!
//! A stored resource ([`ScimResource`]) holds the normalized body without
//! `id`, `meta` and membership. [`render`] adds those back: `id`, `meta`
//! (`resourceType`, `created`, `lastModified`, `version`, `location`),
//! `Group.members` from the membership table and `User.groups` computed
//! from it. [`to_write`] goes the other way for a normalized body.
//!
//! `meta.version` is the weak ETag `W/"<n>"` of the stored version number,
//! and is exactly what the `ETag` header carries.

use roster_scim::ScimError;
use roster_store::{ScimGroupRef, ScimKind, ScimMember, ScimResource, ScimResourceWrite};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The membership data to render with a resource.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Relations<'a> {
    /// Not loaded: the attribute is left out.
    None,
    /// A group's members.
    Members(&'a [ScimMember]),
    /// A user's groups.
    Groups(&'a [ScimGroupRef]),
}

/// RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// The weak ETag of a version number.
pub(crate) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The endpoint of a kind: `Users` or `Groups`.
pub(crate) fn endpoint(kind: ScimKind) -> &'static str {
    match kind {
        ScimKind::User => "Users",
        ScimKind::Group => "Groups",
    }
}

/// `{base}/Users/{id}`.
pub(crate) fn location(base: &str, kind: ScimKind, id: &str) -> String {
    format!("{base}/{}/{id}", endpoint(kind))
}

fn member_kind(t: Option<&str>) -> ScimKind {
    match t {
        Some(t) if t.eq_ignore_ascii_case("group") => ScimKind::Group,
        _ => ScimKind::User,
    }
}

/// The full JSON of a stored resource.
pub(crate) fn render(r: &ScimResource, rel: Relations<'_>, base: &str) -> Value {
    let mut obj = match &r.data {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    obj.insert("id".into(), Value::String(r.id.clone()));
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": r.kind.as_str(),
            "created": rfc3339(r.created_ms),
            "lastModified": rfc3339(r.modified_ms),
            "version": etag(r.version),
            "location": location(base, r.kind, &r.id),
        }),
    );
    match rel {
        Relations::None => {}
        Relations::Members(ms) => {
            let members: Vec<Value> = ms
                .iter()
                .map(|m| {
                    let k = member_kind(m.member_type.as_deref());
                    let mut e = Map::new();
                    e.insert("value".into(), json!(m.value));
                    e.insert("$ref".into(), json!(location(base, k, &m.value)));
                    e.insert("type".into(), json!(k.as_str()));
                    if let Some(d) = &m.display {
                        e.insert("display".into(), json!(d));
                    }
                    Value::Object(e)
                })
                .collect();
            if !members.is_empty() {
                obj.insert("members".into(), Value::Array(members));
            }
        }
        Relations::Groups(gs) => {
            let groups: Vec<Value> = gs
                .iter()
                .map(|g| {
                    let mut e = Map::new();
                    e.insert("value".into(), json!(g.group_id));
                    e.insert(
                        "$ref".into(),
                        json!(location(base, ScimKind::Group, &g.group_id)),
                    );
                    if let Some(d) = &g.display_name {
                        e.insert("display".into(), json!(d));
                    }
                    e.insert("type".into(), json!("direct"));
                    Value::Object(e)
                })
                .collect();
            if !groups.is_empty() {
                obj.insert("groups".into(), Value::Array(groups));
            }
        }
    }
    Value::Object(obj)
}

fn str_field(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The store write for a normalized body. `id`, `meta`, `groups` and
/// `password` are dropped (roster does not store passwords: it advertises
/// `changePassword: false` and has no use for them); a group's `members`
/// move to the membership list.
pub(crate) fn to_write(
    kind: ScimKind,
    id: &str,
    normalized: Value,
) -> Result<ScimResourceWrite, ScimError> {
    let Value::Object(mut o) = normalized else {
        return Err(ScimError::invalid_syntax("resource must be a JSON object"));
    };
    for k in ["id", "meta", "groups", "password"] {
        o.remove(k);
    }
    let members = match kind {
        ScimKind::Group => {
            let raw = o.remove("members");
            let mut out = Vec::new();
            // Members are a set: a repeated value is one member (the store
            // keeps one row), so the answer must not list it twice.
            let mut seen = std::collections::HashSet::new();
            for m in raw.as_ref().and_then(Value::as_array).into_iter().flatten() {
                let value = m
                    .get("value")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        ScimError::invalid_value("every member needs a non-empty \"value\"")
                    })?;
                if !seen.insert(value) {
                    continue;
                }
                out.push(ScimMember {
                    value: value.to_string(),
                    member_type: m.get("type").and_then(Value::as_str).map(str::to_string),
                    display: m.get("display").and_then(Value::as_str).map(str::to_string),
                });
            }
            Some(out)
        }
        ScimKind::User => {
            o.remove("members");
            None
        }
    };
    let emails = o
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("value").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let user_name = match kind {
        ScimKind::User => str_field(&o, "userName"),
        ScimKind::Group => None,
    };
    let external_id = str_field(&o, "externalId");
    let display_name = str_field(&o, "displayName");
    let active = match kind {
        ScimKind::User => o.get("active").and_then(Value::as_bool),
        ScimKind::Group => None,
    };
    let data = Value::Object(o);
    // The user's typed intent, stored with the resource in one
    // transaction: what the engine plans from.
    let intent = match kind {
        ScimKind::User => Some(roster_engine::inbound::user_intent(
            user_name.as_deref(),
            external_id.as_deref(),
            active,
            &data,
        )),
        ScimKind::Group => None,
    };
    Ok(ScimResourceWrite {
        id: id.to_string(),
        user_name,
        display_name,
        external_id,
        active,
        emails,
        members,
        data,
        intent,
    })
}

/// The enterprise extension's `employeeNumber` of a stored user.
pub(crate) fn employee_number(data: &Value) -> Option<String> {
    data.get(roster_scim::ENTERPRISE_USER_SCHEMA)
        .and_then(|e| e.get("employeeNumber"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn to_write_extracts_lookup_fields_and_drops_server_owned_ones() {
        let body = json!({
            "schemas": [roster_scim::USER_SCHEMA],
            "id": "client-chosen", "meta": {"version": "x"}, "password": "hunter2",
            "userName": "Bjensen", "externalId": "E1", "active": false,
            "emails": [{"value": "B@X.com"}, {"value": "c@x"}],
            "groups": [{"value": "g"}]
        });
        let w = to_write(ScimKind::User, "u1", body).expect("write");
        assert_eq!(w.id, "u1");
        assert_eq!(w.user_name.as_deref(), Some("Bjensen"));
        assert_eq!(w.external_id.as_deref(), Some("E1"));
        assert_eq!(w.active, Some(false));
        assert_eq!(w.emails, vec!["B@X.com".to_string(), "c@x".to_string()]);
        for gone in ["id", "meta", "password", "groups"] {
            assert!(w.data.get(gone).is_none(), "{gone} must not be stored");
        }
        let g = to_write(
            ScimKind::Group,
            "g1",
            json!({"displayName": "Ops", "members": [{"value": "u1", "display": "B"}]}),
        )
        .expect("group");
        assert_eq!(g.members.as_ref().map(Vec::len), Some(1));
        assert!(g.data.get("members").is_none());
        let bad = to_write(
            ScimKind::Group,
            "g2",
            json!({"displayName": "Ops", "members": [{"display": "no value"}]}),
        );
        assert_eq!(bad.map_err(|e| e.status).err(), Some(400));
    }
}
