//! Discovery endpoints: `/Schemas`, `/ResourceTypes` and
//! `/ServiceProviderConfig` (RFC 7643 §5–§7, RFC 7644 §4).
//!
//! Everything renders from the [`SchemaRegistry`], so what a server
//! advertises is exactly what its filter, PATCH and projection code
//! enforce. `base_url` is the SCIM root (e.g. `https://host/scim/v2`) and is
//! only used for `meta.location`.

use crate::list::ListResponse;
use crate::schema::{
    AttrType, AttributeDef, RESOURCE_TYPE_SCHEMA, ResourceType, SCHEMA_SCHEMA,
    SERVICE_PROVIDER_CONFIG_SCHEMA, Schema, SchemaRegistry,
};
use serde_json::{Map, Value, json};

fn location(base_url: &str, endpoint: &str, id: &str) -> String {
    format!("{}/{endpoint}/{id}", base_url.trim_end_matches('/'))
}

/// One attribute definition as RFC 7643 §7 renders it.
pub fn attribute_to_json(def: &AttributeDef) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(def.name));
    o.insert("type".into(), json!(def.attr_type.as_str()));
    o.insert("multiValued".into(), json!(def.multi_valued));
    o.insert("description".into(), json!(def.description));
    o.insert("required".into(), json!(def.required));
    if def.attr_type != AttrType::Complex && def.attr_type != AttrType::Boolean {
        o.insert("caseExact".into(), json!(def.case_exact));
    }
    if !def.canonical_values.is_empty() {
        o.insert("canonicalValues".into(), json!(def.canonical_values));
    }
    if def.attr_type == AttrType::Reference {
        o.insert("referenceTypes".into(), json!(def.reference_types));
    }
    o.insert("mutability".into(), json!(def.mutability.as_str()));
    o.insert("returned".into(), json!(def.returned.as_str()));
    if def.attr_type != AttrType::Complex && def.attr_type != AttrType::Boolean {
        o.insert("uniqueness".into(), json!(def.uniqueness.as_str()));
    }
    if def.attr_type == AttrType::Complex {
        o.insert(
            "subAttributes".into(),
            Value::Array(def.sub_attributes.iter().map(attribute_to_json).collect()),
        );
    }
    Value::Object(o)
}

/// A schema resource as served at `/Schemas/{id}`.
pub fn schema_to_json(schema: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute_to_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": location(base_url, "Schemas", &schema.id),
        }
    })
}

/// A resource type as served at `/ResourceTypes/{id}`.
pub fn resource_type_to_json(rt: &ResourceType, base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.id,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema,
        "schemaExtensions": rt.schema_extensions.iter()
            .map(|e| json!({"schema": e.schema, "required": e.required}))
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "ResourceType",
            "location": location(base_url, "ResourceTypes", &rt.id),
        }
    })
}

impl SchemaRegistry {
    /// All schemas, rendered.
    pub fn schemas_json(&self, base_url: &str) -> Vec<Value> {
        self.schemas()
            .iter()
            .map(|s| schema_to_json(s, base_url))
            .collect()
    }

    /// The `/Schemas` ListResponse.
    pub fn schemas_list_response(&self, base_url: &str) -> Value {
        let items = self.schemas_json(base_url);
        ListResponse::new(items.len(), 1, items).to_json()
    }

    /// All resource types, rendered.
    pub fn resource_types_json(&self, base_url: &str) -> Vec<Value> {
        self.resource_types()
            .iter()
            .map(|r| resource_type_to_json(r, base_url))
            .collect()
    }

    /// The `/ResourceTypes` ListResponse.
    pub fn resource_types_list_response(&self, base_url: &str) -> Value {
        let items = self.resource_types_json(base_url);
        ListResponse::new(items.len(), 1, items).to_json()
    }
}

/// An `authenticationSchemes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationScheme {
    /// `oauthbearertoken`, `httpbasic`, ...
    pub scheme_type: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Specification URI.
    pub spec_uri: Option<String>,
    /// Whether this is the preferred scheme.
    pub primary: bool,
}

impl AuthenticationScheme {
    /// The OAuth 2.0 bearer token scheme (RFC 6750), which both Okta and
    /// Entra use with a static token.
    pub fn oauth_bearer_token() -> Self {
        AuthenticationScheme {
            scheme_type: "oauthbearertoken".into(),
            name: "OAuth Bearer Token".into(),
            description: "Authentication with an OAuth 2.0 bearer token (RFC 6750).".into(),
            spec_uri: Some("https://www.rfc-editor.org/info/rfc6750".into()),
            primary: true,
        }
    }
}

/// The `/ServiceProviderConfig` document (RFC 7643 §5).
///
/// `Default` is what roster's server supports: PATCH, filtering (max 200
/// results), sorting and ETags; no bulk, no password change; bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProviderConfig {
    /// Link to human-readable documentation.
    pub documentation_uri: Option<String>,
    /// PATCH support.
    pub patch: bool,
    /// Bulk support: `Some((max_operations, max_payload_size_bytes))`.
    pub bulk: Option<(u32, u64)>,
    /// Filter support: `Some(max_results)`.
    pub filter: Option<u32>,
    /// Password change via PATCH/PUT.
    pub change_password: bool,
    /// `sortBy` support.
    pub sort: bool,
    /// ETag support (§3.14).
    pub etag: bool,
    /// Authentication schemes.
    pub authentication_schemes: Vec<AuthenticationScheme>,
}

impl Default for ServiceProviderConfig {
    fn default() -> Self {
        ServiceProviderConfig {
            documentation_uri: None,
            patch: true,
            bulk: None,
            filter: Some(200),
            change_password: false,
            sort: true,
            etag: true,
            authentication_schemes: vec![AuthenticationScheme::oauth_bearer_token()],
        }
    }
}

impl ServiceProviderConfig {
    /// Sets the documentation URI.
    pub fn documentation_uri(mut self, uri: impl Into<String>) -> Self {
        self.documentation_uri = Some(uri.into());
        self
    }
    /// Enables or disables PATCH.
    pub fn patch(mut self, supported: bool) -> Self {
        self.patch = supported;
        self
    }
    /// Enables bulk with limits.
    pub fn bulk(mut self, max_operations: u32, max_payload_size: u64) -> Self {
        self.bulk = Some((max_operations, max_payload_size));
        self
    }
    /// Enables filtering with a result cap, or disables it with `None`.
    pub fn filter(mut self, max_results: Option<u32>) -> Self {
        self.filter = max_results;
        self
    }
    /// Enables or disables password change.
    pub fn change_password(mut self, supported: bool) -> Self {
        self.change_password = supported;
        self
    }
    /// Enables or disables sorting.
    pub fn sort(mut self, supported: bool) -> Self {
        self.sort = supported;
        self
    }
    /// Enables or disables ETags.
    pub fn etag(mut self, supported: bool) -> Self {
        self.etag = supported;
        self
    }
    /// Replaces the authentication schemes.
    pub fn authentication_schemes(mut self, schemes: Vec<AuthenticationScheme>) -> Self {
        self.authentication_schemes = schemes;
        self
    }

    /// The JSON document.
    pub fn to_json(&self, base_url: &str) -> Value {
        let (bulk_supported, max_ops, max_payload) = match self.bulk {
            Some((ops, size)) => (true, ops, size),
            None => (false, 0, 0),
        };
        let mut doc = json!({
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "patch": {"supported": self.patch},
            "bulk": {"supported": bulk_supported, "maxOperations": max_ops, "maxPayloadSize": max_payload},
            "filter": {"supported": self.filter.is_some(), "maxResults": self.filter.unwrap_or(0)},
            "changePassword": {"supported": self.change_password},
            "sort": {"supported": self.sort},
            "etag": {"supported": self.etag},
            "authenticationSchemes": self.authentication_schemes.iter().map(|s| {
                let mut o = json!({
                    "type": s.scheme_type,
                    "name": s.name,
                    "description": s.description,
                    "primary": s.primary,
                });
                if let (Some(uri), Some(obj)) = (&s.spec_uri, o.as_object_mut()) {
                    obj.insert("specUri".into(), json!(uri));
                }
                o
            }).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{}/ServiceProviderConfig", base_url.trim_end_matches('/')),
            }
        });
        if let (Some(uri), Some(obj)) = (&self.documentation_uri, doc.as_object_mut()) {
            obj.insert("documentationUri".into(), json!(uri));
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, USER_SCHEMA};

    const BASE: &str = "https://scim.example.com/scim/v2/";

    fn find<'a>(attrs: &'a Value, name: &str) -> &'a Value {
        attrs
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .unwrap_or_else(|| panic!("attribute {name} not rendered"))
    }

    #[test]
    fn schemas_render_rfc7643_section7() {
        let doc = SchemaRegistry::standard().schemas_list_response(BASE);
        assert_eq!(doc["schemas"], json!([LIST_RESPONSE_SCHEMA]));
        assert_eq!(doc["totalResults"], 3);
        let ids: Vec<&str> = doc["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(ids, vec![USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA]);
        let user = &doc["Resources"][0];
        assert_eq!(user["schemas"], json!([SCHEMA_SCHEMA]));
        assert_eq!(
            user["meta"],
            json!({"resourceType": "Schema", "location": format!("https://scim.example.com/scim/v2/Schemas/{USER_SCHEMA}")})
        );
        let user_name = find(&user["attributes"], "userName");
        assert_eq!(
            user_name,
            &json!({
                "name": "userName", "type": "string", "multiValued": false,
                "description": "Unique identifier for the User, typically used to authenticate.",
                "required": true, "caseExact": false, "mutability": "readWrite",
                "returned": "default", "uniqueness": "server"
            })
        );
        let password = find(&user["attributes"], "password");
        assert_eq!(password["returned"], "never");
        assert_eq!(password["mutability"], "writeOnly");
        let emails = find(&user["attributes"], "emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(
            find(&emails["subAttributes"], "type")["canonicalValues"],
            json!(["work", "home", "other"])
        );
        let groups = find(&user["attributes"], "groups");
        assert_eq!(groups["mutability"], "readOnly");
        assert_eq!(
            find(&groups["subAttributes"], "$ref")["referenceTypes"],
            json!(["User", "Group"])
        );
        // Common attributes are not part of the schema listing.
        assert!(
            user["attributes"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["name"] != "id"))
        );
        let ent = &doc["Resources"][1];
        let manager = find(&ent["attributes"], "manager");
        assert_eq!(manager["type"], "complex");
        assert_eq!(
            find(&manager["subAttributes"], "displayName")["mutability"],
            "readOnly"
        );
    }

    #[test]
    fn resource_types_render() {
        let doc = SchemaRegistry::standard().resource_types_list_response(BASE);
        assert_eq!(doc["totalResults"], 2);
        assert_eq!(
            doc["Resources"][0],
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User", "name": "User", "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
                "meta": {"resourceType": "ResourceType", "location": "https://scim.example.com/scim/v2/ResourceTypes/User"}
            })
        );
        assert_eq!(doc["Resources"][1]["endpoint"], "/Groups");
        assert_eq!(doc["Resources"][1]["schemaExtensions"], json!([]));
    }

    #[test]
    fn service_provider_config_defaults_and_builder() {
        let doc = ServiceProviderConfig::default().to_json(BASE);
        assert_eq!(doc["patch"], json!({"supported": true}));
        assert_eq!(
            doc["bulk"],
            json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0})
        );
        assert_eq!(doc["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(doc["changePassword"], json!({"supported": false}));
        assert_eq!(doc["sort"], json!({"supported": true}));
        assert_eq!(doc["etag"], json!({"supported": true}));
        assert_eq!(doc["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(
            doc["meta"]["location"],
            "https://scim.example.com/scim/v2/ServiceProviderConfig"
        );
        let custom = ServiceProviderConfig::default()
            .bulk(100, 1_048_576)
            .filter(Some(1000))
            .etag(false)
            .documentation_uri("https://docs.example.com/scim")
            .to_json(BASE);
        assert_eq!(
            custom["bulk"],
            json!({"supported": true, "maxOperations": 100, "maxPayloadSize": 1_048_576})
        );
        assert_eq!(custom["filter"]["maxResults"], 1000);
        assert_eq!(custom["etag"]["supported"], false);
        assert_eq!(custom["documentationUri"], "https://docs.example.com/scim");
    }
}
