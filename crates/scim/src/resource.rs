//! Typed SCIM messages for what both sides of the protocol exchange: the
//! User resource (RFC 7643 §4.1 with the enterprise extension, §4.3) and
//! the PatchOp request (RFC 7644 §3.5.2), as serde types.
//!
//! The rest of the crate works on `serde_json::Value`s through the schema
//! registry, which keeps attributes no model knows. These types are for the
//! edges: a client building what it sends and reading what it receives,
//! and a server or test that wants the common attributes by name. Nothing
//! is lost either way: attributes the types do not name stay in `extra`.
//!
//! Reading is lenient, as a client must be with real servers: attribute
//! names match case-insensitively (RFC 7643 §2.1), strings are trimmed and
//! an empty one counts as absent, a number where a string belongs is read
//! as its text, `active` may be the string `"true"`/`"false"`, and elements
//! of `emails` that are not objects are skipped. Writing uses the
//! canonical spelling and leaves out what is absent.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::patch::{PatchOperation, parse_patch_request, patch_request};
use crate::schema::ENTERPRISE_USER_SCHEMA;
use crate::text::get_ci;

/// A SCIM User. See the module docs for how it is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub schemas: Vec<String>,
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
    pub name: Option<Name>,
    pub display_name: Option<String>,
    pub emails: Vec<MultiValue>,
    pub active: Option<bool>,
    /// The enterprise extension (`urn:…:enterprise:2.0:User`).
    pub enterprise: Option<EnterpriseUser>,
    pub meta: Option<Meta>,
    /// Every other attribute, as received or to be sent (`title`,
    /// `userType`, custom ones). Names that collide with a typed field are
    /// never written: the typed field wins.
    pub extra: Map<String, Value>,
}

/// `name` (§4.1.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Name {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(rename = "familyName", skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(rename = "givenName", skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Name {
    /// Whether no sub-attribute is set (such a `name` is left out).
    pub fn is_empty(&self) -> bool {
        self.formatted.is_none()
            && self.family_name.is_none()
            && self.given_name.is_none()
            && self.extra.is_empty()
    }
}

/// One element of a multi-valued attribute such as `emails` (§2.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MultiValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only a JSON `true`/`false` counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl MultiValue {
    /// `{"value": …, "type": "work", "primary": true}`: a person's work
    /// address as IdPs send it.
    pub fn primary_work(value: impl Into<String>) -> Self {
        MultiValue {
            value: Some(value.into()),
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        }
    }
}

/// The enterprise User extension (§4.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnterpriseUser {
    #[serde(rename = "employeeNumber", skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    #[serde(rename = "costCenter", skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

impl EnterpriseUser {
    /// Whether no attribute is set (such an extension is left out).
    pub fn is_empty(&self) -> bool {
        *self == EnterpriseUser::default()
    }

    /// The attribute called `name` (case-insensitive), for the string
    /// attributes; `None` for `manager` and unknown names.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name.to_ascii_lowercase().as_str() {
            "employeenumber" => &mut self.employee_number,
            "costcenter" => &mut self.cost_center,
            "organization" => &mut self.organization,
            "division" => &mut self.division,
            "department" => &mut self.department,
            _ => return None,
        })
    }
}

/// The enterprise extension's `manager`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Manager {
    /// The manager's SCIM id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "$ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `meta` (§3.1), as the server set it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meta {
    #[serde(rename = "resourceType", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(rename = "lastModified", skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The resource's version (an ETag, e.g. `W/"3"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A string attribute, read leniently: trimmed text (empty is absent), or
/// a number's text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn object(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

/// `key` matches one of `known` case-insensitively.
fn is_known(key: &str, known: &[&str]) -> bool {
    known.iter().any(|k| k.eq_ignore_ascii_case(key))
}

fn rest(obj: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !is_known(k, known))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

const USER_FIELDS: [&str; 10] = [
    "schemas",
    "id",
    "externalId",
    "userName",
    "name",
    "displayName",
    "emails",
    "active",
    ENTERPRISE_USER_SCHEMA,
    "meta",
];

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        fn put<T: Serialize, E: serde::ser::Error>(
            m: &mut Map<String, Value>,
            key: &str,
            v: &T,
        ) -> Result<(), E> {
            m.insert(key.into(), serde_json::to_value(v).map_err(E::custom)?);
            Ok(())
        }
        let mut m = rest(&self.extra, &USER_FIELDS);
        if !self.schemas.is_empty() {
            put::<_, S::Error>(&mut m, "schemas", &self.schemas)?;
        }
        for (key, v) in [
            ("id", &self.id),
            ("externalId", &self.external_id),
            ("userName", &self.user_name),
            ("displayName", &self.display_name),
        ] {
            if let Some(v) = v {
                m.insert(key.into(), Value::String(v.clone()));
            }
        }
        if let Some(n) = &self.name {
            put::<_, S::Error>(&mut m, "name", n)?;
        }
        if !self.emails.is_empty() {
            put::<_, S::Error>(&mut m, "emails", &self.emails)?;
        }
        if let Some(a) = self.active {
            m.insert("active".into(), Value::Bool(a));
        }
        if let Some(e) = &self.enterprise {
            put::<_, S::Error>(&mut m, ENTERPRISE_USER_SCHEMA, e)?;
        }
        if let Some(meta) = &self.meta {
            put::<_, S::Error>(&mut m, "meta", meta)?;
        }
        Value::Object(m).serialize(s).map_err(S::Error::custom)
    }
}

impl User {
    /// Reads a User from JSON (see the module docs). Only a body that is not
    /// an object is an error (`400 invalidSyntax`); a missing `id` is the
    /// caller's to judge.
    pub fn from_json(body: &Value) -> Result<User, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a User must be a JSON object"))?;
        let schemas = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let name = object(get_ci(obj, "name")).map(|n| Name {
            formatted: text(get_ci(n, "formatted")),
            family_name: text(get_ci(n, "familyName")),
            given_name: text(get_ci(n, "givenName")),
            extra: rest(n, &["formatted", "familyName", "givenName"]),
        });
        let emails = get_ci(obj, "emails")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .map(|e| MultiValue {
                        value: text(get_ci(e, "value")),
                        kind: text(get_ci(e, "type")),
                        primary: get_ci(e, "primary").and_then(Value::as_bool),
                        display: text(get_ci(e, "display")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let active = match get_ci(obj, "active") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => Some(!s.trim().eq_ignore_ascii_case("false")),
            _ => None,
        };
        let enterprise = object(get_ci(obj, ENTERPRISE_USER_SCHEMA)).map(|e| EnterpriseUser {
            employee_number: text(get_ci(e, "employeeNumber")),
            cost_center: text(get_ci(e, "costCenter")),
            organization: text(get_ci(e, "organization")),
            division: text(get_ci(e, "division")),
            department: text(get_ci(e, "department")),
            manager: object(get_ci(e, "manager")).map(|m| Manager {
                value: text(get_ci(m, "value")),
                reference: text(get_ci(m, "$ref")),
                display_name: text(get_ci(m, "displayName")),
            }),
        });
        let meta = object(get_ci(obj, "meta")).map(|m| Meta {
            resource_type: text(get_ci(m, "resourceType")),
            created: text(get_ci(m, "created")),
            last_modified: text(get_ci(m, "lastModified")),
            location: text(get_ci(m, "location")),
            version: text(get_ci(m, "version")),
        });
        Ok(User {
            schemas,
            id: text(get_ci(obj, "id")),
            external_id: text(get_ci(obj, "externalId")),
            user_name: text(get_ci(obj, "userName")),
            name,
            display_name: text(get_ci(obj, "displayName")),
            emails,
            active,
            enterprise,
            meta,
            extra: rest(obj, &USER_FIELDS),
        })
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        // Serializing plain data into a Value cannot fail; `Null` would
        // only ever show a bug here.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The email marked `primary`, else the first of `type` `work`, else
    /// the first with a value.
    pub fn preferred_email(&self) -> Option<&str> {
        let with_value = || self.emails.iter().filter(|e| e.value.is_some());
        with_value()
            .find(|e| e.primary == Some(true))
            .or_else(|| {
                with_value().find(|e| {
                    e.kind
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("work"))
                })
            })
            .or_else(|| with_value().next())
            .and_then(|e| e.value.as_deref())
    }
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        User::from_json(&v).map_err(de::Error::custom)
    }
}

/// A PatchOp request (§3.5.2): `{"schemas": [PatchOp URN], "Operations":
/// [...]}`. Serializes through [`patch_request`] and deserializes through
/// [`parse_patch_request`], so what a client sends is what the server's
/// parser accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub operations: Vec<PatchOperation>,
}

impl PatchOp {
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        PatchOp { operations }
    }
}

impl Serialize for PatchOp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        patch_request(&self.operations).serialize(s)
    }
}

impl<'de> Deserialize<'de> for PatchOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        parse_patch_request(&v)
            .map(PatchOp::new)
            .map_err(de::Error::custom)
    }
}

impl Serialize for PatchOperation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::PatchOpKind;
    use crate::path::PatchPath;
    use crate::schema::{PATCH_OP_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn users_are_read_leniently_and_keep_what_they_do_not_name() {
        let u = User::from_json(&json!({
            "ID": 42, "UserName": " Ann@Example.com ",
            "name": {"givenName": "Ann", "familyName": "", "honorificPrefix": "Dr"},
            "emails": [7, {"value": "a@x.com", "type": "Work"}, {"value": "b@x.com", "primary": true}],
            "active": "False",
            ENTERPRISE_USER_SCHEMA.to_uppercase(): {"employeeNumber": "E7",
                "manager": {"value": "m1", "displayName": "boss@x.com"}},
            "meta": {"version": "W/\"3\""},
            "title": "Boss",
        }))
        .unwrap();
        assert_eq!(u.id.as_deref(), Some("42"));
        assert_eq!(u.user_name.as_deref(), Some("Ann@Example.com"));
        let name = u.name.as_ref().unwrap();
        assert_eq!(name.given_name.as_deref(), Some("Ann"));
        assert_eq!(name.family_name, None);
        assert_eq!(name.extra["honorificPrefix"], "Dr");
        assert_eq!(u.emails.len(), 2);
        assert_eq!(u.preferred_email(), Some("b@x.com"));
        assert_eq!(u.active, Some(false));
        let ent = u.enterprise.as_ref().unwrap();
        assert_eq!(ent.employee_number.as_deref(), Some("E7"));
        assert_eq!(
            ent.manager.as_ref().unwrap().display_name.as_deref(),
            Some("boss@x.com")
        );
        assert_eq!(u.meta.as_ref().unwrap().version.as_deref(), Some("W/\"3\""));
        assert_eq!(u.extra.len(), 1, "{:?}", u.extra);
        assert_eq!(u.extra["title"], "Boss");
        assert!(User::from_json(&json!([1])).is_err());
        // Through serde as well.
        let v: User = serde_json::from_value(json!({"id": "x", "active": true})).unwrap();
        assert_eq!(v.active, Some(true));
    }

    #[test]
    fn users_are_written_in_canonical_spelling_without_absent_parts() {
        let mut u = User {
            schemas: vec![USER_SCHEMA.into(), ENTERPRISE_USER_SCHEMA.into()],
            user_name: Some("ann@x.com".into()),
            emails: vec![MultiValue::primary_work("ann@x.com")],
            active: Some(true),
            enterprise: Some(EnterpriseUser {
                employee_number: Some("E1".into()),
                ..EnterpriseUser::default()
            }),
            ..User::default()
        };
        u.extra.insert("title".into(), json!("Boss"));
        // A name that collides with a typed field is not written twice.
        u.extra.insert("Active".into(), json!(false));
        assert_eq!(
            u.to_json(),
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "userName": "ann@x.com",
                "emails": [{"value": "ann@x.com", "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": "E1"},
                "title": "Boss",
            })
        );
        let back = User::from_json(&u.to_json()).unwrap();
        assert_eq!(back.enterprise, u.enterprise);
        assert_eq!(back.emails, u.emails);
    }

    #[test]
    fn patch_ops_round_trip_through_the_servers_parser() {
        let op = PatchOp::new(vec![
            PatchOperation {
                op: PatchOpKind::Replace,
                path: Some(PatchPath::parse("active").unwrap()),
                value: Some(json!(false)),
            },
            PatchOperation {
                op: PatchOpKind::Remove,
                path: Some(
                    PatchPath::parse(&format!("{ENTERPRISE_USER_SCHEMA}:department")).unwrap(),
                ),
                value: None,
            },
        ]);
        let wire = serde_json::to_value(&op).unwrap();
        assert_eq!(
            wire,
            json!({
                "schemas": [PATCH_OP_SCHEMA],
                "Operations": [
                    {"op": "replace", "path": "active", "value": false},
                    {"op": "remove", "path": format!("{ENTERPRISE_USER_SCHEMA}:department")},
                ],
            })
        );
        let back: PatchOp = serde_json::from_value(wire).unwrap();
        assert_eq!(back, op);
        assert!(serde_json::from_value::<PatchOp>(json!({"Operations": []})).is_err());
    }
}
