//! Schema model (RFC 7643 §2, §7) and the [`SchemaRegistry`].
//!
//! A schema is plain data: a URN, a name and a list of [`AttributeDef`]s with
//! the characteristics that drive everything else in this crate — the type
//! (how values compare and coerce), `caseExact` (how strings compare),
//! `mutability` (what PATCH/PUT may change), `returned` (what projection
//! emits) and `subAttributes` (one level only, per RFC 7643 §2.4).
//!
//! Concepts:
//! - **Core** schemas (User, Group) hold attributes that sit at the top level
//!   of a resource. **Extension** schemas (Enterprise User) hold attributes
//!   nested under a key equal to the extension URN. **Common** attributes
//!   (`id`, `externalId`, `meta`, `schemas`; RFC 7643 §3.1) belong to every
//!   resource and are not listed in `/Schemas`.
//! - Attribute names are case-insensitive (RFC 7643 §2.1). Lookups here use
//!   ASCII case folding without allocating; definitions carry the canonical
//!   spelling, which normalisation and PATCH write back.
//! - Resolution of an unqualified name tries common attributes, then core
//!   schemas, then extensions (a lenient fallback: strictly, extension
//!   attributes must be URN-qualified, but some clients omit the URN).

use crate::path::AttrPath;

/// URN of the core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of the Enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// URN of the schema that describes schema resources (`/Schemas`).
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// URN of the ResourceType schema (`/ResourceTypes`).
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// URN of the ServiceProviderConfig schema.
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// URN of the ListResponse message.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// URN of the PatchOp message.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// URN of the SearchRequest message (`POST /.search`).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// `string`
    String,
    /// `boolean`
    Boolean,
    /// `decimal`
    Decimal,
    /// `integer`
    Integer,
    /// `dateTime` (xsd:dateTime, compared as an instant)
    DateTime,
    /// `reference` (a URI string)
    Reference,
    /// `complex` (has sub-attributes)
    Complex,
    /// `binary` (base64 string)
    Binary,
}

impl AttrType {
    /// The wire spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }

    /// Whether values are JSON strings compared as text.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            AttrType::String | AttrType::Reference | AttrType::Binary
        )
    }
}

/// RFC 7643 §2.2 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Freely writable.
    ReadWrite,
    /// Writable only while it has no value.
    Immutable,
    /// Writable but never returned (e.g. `password`).
    WriteOnly,
}

impl Mutability {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §2.2 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    /// Always returned, even if excluded.
    Always,
    /// Never returned.
    Never,
    /// Returned unless excluded or not requested.
    Default,
    /// Returned only when explicitly requested.
    Request,
}

impl Returned {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// RFC 7643 §2.2 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uniqueness {
    /// No uniqueness constraint.
    None,
    /// Unique within the service provider.
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7 "attributes").
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDef {
    /// Canonical name (case-insensitive for matching).
    pub name: String,
    /// Data type.
    pub attr_type: AttrType,
    /// Whether the value is a JSON array.
    pub multi_valued: bool,
    /// Human-readable description.
    pub description: String,
    /// Whether the attribute must be present on create/replace.
    pub required: bool,
    /// Whether string comparison is case-sensitive.
    pub case_exact: bool,
    /// Who may write it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Uniqueness constraint.
    pub uniqueness: Uniqueness,
    /// Suggested values (e.g. `work`, `home`).
    pub canonical_values: Vec<String>,
    /// For `reference` attributes: `User`, `Group`, `external`, `uri`.
    pub reference_types: Vec<String>,
    /// For `complex` attributes: the sub-attributes.
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A single-valued, optional, readWrite, returned-by-default attribute
    /// with `caseExact=false` and no uniqueness (the RFC 7643 §2.2 defaults).
    pub fn new(name: &str, attr_type: AttrType) -> Self {
        AttributeDef {
            name: name.to_string(),
            attr_type,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    /// Shorthand for a `string` attribute.
    pub fn string(name: &str) -> Self {
        Self::new(name, AttrType::String)
    }
    /// Shorthand for a `boolean` attribute.
    pub fn boolean(name: &str) -> Self {
        Self::new(name, AttrType::Boolean)
    }
    /// Shorthand for a `dateTime` attribute.
    pub fn date_time(name: &str) -> Self {
        Self::new(name, AttrType::DateTime)
    }
    /// Shorthand for a `reference` attribute with the given reference types.
    pub fn reference(name: &str, types: &[&str]) -> Self {
        let mut a = Self::new(name, AttrType::Reference);
        a.reference_types = types.iter().map(|s| s.to_string()).collect();
        a
    }
    /// Shorthand for a `complex` attribute.
    pub fn complex(name: &str, subs: Vec<AttributeDef>) -> Self {
        let mut a = Self::new(name, AttrType::Complex);
        a.sub_attributes = subs;
        a
    }

    /// Marks the attribute multi-valued.
    pub fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    /// Marks the attribute required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Marks string comparison case-sensitive.
    pub fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    /// Sets the mutability.
    pub fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    /// Shorthand for `mutability(ReadOnly)`.
    pub fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    /// Sets `returned`.
    pub fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    /// Sets `uniqueness`.
    pub fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    /// Sets the description.
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }
    /// Sets canonical values.
    pub fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Finds a sub-attribute by case-insensitive name.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// Whether a schema's attributes live at the resource's top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// A resource type's base schema: attributes at the top level.
    Core,
    /// An extension: attributes under the key equal to the schema URN.
    Extension,
}

/// A schema definition (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The schema URN.
    pub id: String,
    /// Short name, e.g. `User`.
    pub name: String,
    /// Description.
    pub description: String,
    /// Core or extension.
    pub kind: SchemaKind,
    /// Top-level attributes.
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    /// Finds a top-level attribute by case-insensitive name.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A `schemaExtensions` entry of a resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaExtension {
    /// Extension schema URN.
    pub schema: String,
    /// Whether resources of this type must carry it.
    pub required: bool,
}

/// A resource type (RFC 7643 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Identifier, e.g. `User`.
    pub id: String,
    /// Name, e.g. `User`.
    pub name: String,
    /// Endpoint relative to the base URL, e.g. `/Users`.
    pub endpoint: String,
    /// Description.
    pub description: String,
    /// Base (core) schema URN.
    pub schema: String,
    /// Extension schemas.
    pub schema_extensions: Vec<SchemaExtension>,
}

/// The result of resolving an attribute path against a registry.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'r> {
    /// The schema that owns the attribute; `None` for common attributes.
    pub schema: Option<&'r Schema>,
    /// The top-level attribute.
    pub attr: &'r AttributeDef,
    /// The sub-attribute, when the path has one.
    pub sub: Option<&'r AttributeDef>,
}

impl<'r> Resolved<'r> {
    /// The definition the path finally points at (sub-attribute if any).
    pub fn leaf(&self) -> &'r AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
    /// The leaf's type.
    pub fn attr_type(&self) -> AttrType {
        self.leaf().attr_type
    }
    /// The leaf's `caseExact`.
    pub fn case_exact(&self) -> bool {
        self.leaf().case_exact
    }
    /// The extension URN under which the attribute is stored, if any.
    pub fn extension_urn(&self) -> Option<&'r str> {
        match self.schema {
            Some(s) if s.kind == SchemaKind::Extension => Some(s.id.as_str()),
            _ => None,
        }
    }
    /// The canonical path (URN-qualified for extension attributes).
    pub fn canonical_path(&self) -> AttrPath {
        AttrPath {
            uri: self.extension_urn().map(str::to_string),
            name: self.attr.name.clone(),
            sub_attr: self.sub.map(|s| s.name.clone()),
        }
    }
}

/// The set of schemas and resource types a service provider supports.
///
/// Build one with [`SchemaRegistry::standard`] (User + Enterprise User +
/// Group) or [`SchemaRegistry::new`] for custom sets. It is immutable and
/// cheap to share by reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRegistry {
    schemas: Vec<Schema>,
    common: Vec<AttributeDef>,
    resource_types: Vec<ResourceType>,
}

impl SchemaRegistry {
    /// A registry from explicit schemas and resource types. The common
    /// attributes (`id`, `externalId`, `meta`, `schemas`) are always added.
    pub fn new(schemas: Vec<Schema>, resource_types: Vec<ResourceType>) -> Self {
        SchemaRegistry {
            schemas,
            common: crate::standard::common_attributes(),
            resource_types,
        }
    }

    /// The shared standard registry: User (with the Enterprise extension)
    /// and Group, as RFC 7643 §8.7 defines them.
    pub fn standard() -> &'static SchemaRegistry {
        static STANDARD: std::sync::LazyLock<SchemaRegistry> =
            std::sync::LazyLock::new(crate::standard::standard_registry);
        &STANDARD
    }

    /// All schemas (core and extensions), in registration order.
    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    /// The common attributes of RFC 7643 §3.1.
    pub fn common_attributes(&self) -> &[AttributeDef] {
        &self.common
    }

    /// All resource types.
    pub fn resource_types(&self) -> &[ResourceType] {
        &self.resource_types
    }

    /// A schema by URN (case-insensitive).
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// A resource type by id or name (case-insensitive), e.g. `User`.
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.resource_types
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(name) || r.name.eq_ignore_ascii_case(name))
    }

    /// Whether `schema` belongs to the scope of `resource_type` (all
    /// schemas are in scope when `resource_type` is `None` or unknown).
    fn in_scope(&self, schema: &Schema, resource_type: Option<&str>) -> bool {
        match resource_type.and_then(|rt| self.resource_type(rt)) {
            None => true,
            Some(rt) => {
                rt.schema.eq_ignore_ascii_case(&schema.id)
                    || rt
                        .schema_extensions
                        .iter()
                        .any(|e| e.schema.eq_ignore_ascii_case(&schema.id))
            }
        }
    }

    /// Finds a top-level attribute by name, unqualified: common attributes,
    /// then core schemas, then extensions.
    fn find_top<'a>(
        &'a self,
        name: &str,
        resource_type: Option<&str>,
    ) -> Option<(Option<&'a Schema>, &'a AttributeDef)> {
        if let Some(a) = self
            .common
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
        {
            return Some((None, a));
        }
        for kind in [SchemaKind::Core, SchemaKind::Extension] {
            for s in self.schemas.iter().filter(|s| s.kind == kind) {
                if !self.in_scope(s, resource_type) {
                    continue;
                }
                if let Some(a) = s.attribute(name) {
                    return Some((Some(s), a));
                }
            }
        }
        None
    }

    /// Resolves an attribute path to its definition.
    ///
    /// `resource_type` (e.g. `"User"`) restricts the search to that type's
    /// schemas; `None` searches every schema. Returns `None` for unknown
    /// attributes or sub-attributes, and for a path naming a whole
    /// extension (see [`SchemaRegistry::extension_for_path`]).
    pub fn resolve(&self, path: &AttrPath, resource_type: Option<&str>) -> Option<Resolved<'_>> {
        let (schema, attr) = match &path.uri {
            Some(uri) => {
                let schema = self.schema(uri)?;
                if !self.in_scope(schema, resource_type) {
                    return None;
                }
                match schema.attribute(&path.name) {
                    Some(a) => (Some(schema), a),
                    // `urn:...:core:2.0:User:id` qualifies a common attribute.
                    None if schema.kind == SchemaKind::Core => (
                        None,
                        self.common
                            .iter()
                            .find(|a| a.name.eq_ignore_ascii_case(&path.name))?,
                    ),
                    None => return None,
                }
            }
            None => self.find_top(&path.name, resource_type)?,
        };
        let sub = match &path.sub_attr {
            Some(s) => Some(attr.sub_attribute(s)?),
            None => None,
        };
        Some(Resolved { schema, attr, sub })
    }

    /// Resolves a textual path such as `name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`.
    pub fn resolve_str(&self, path: &str, resource_type: Option<&str>) -> Option<Resolved<'_>> {
        let p = AttrPath::parse(path).ok()?;
        self.resolve(&p, resource_type)
    }

    /// If `path` spells exactly an extension schema URN (e.g. the PATCH path
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`), that
    /// extension schema.
    pub fn extension_for_path(&self, path: &AttrPath) -> Option<&Schema> {
        if path.sub_attr.is_some() {
            return None;
        }
        self.schemas
            .iter()
            .find(|s| s.kind == SchemaKind::Extension && path.spells_urn(&s.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> &'static SchemaRegistry {
        SchemaRegistry::standard()
    }

    #[test]
    fn resolves_paths_with_types_and_case_rules() {
        // (path, resource type, expected leaf name, type, caseExact)
        let cases: &[(&str, Option<&str>, &str, AttrType, bool)] = &[
            ("userName", None, "userName", AttrType::String, false),
            (
                "USERNAME",
                Some("User"),
                "userName",
                AttrType::String,
                false,
            ),
            ("id", None, "id", AttrType::String, true),
            ("externalId", None, "externalId", AttrType::String, true),
            ("name.givenName", None, "givenName", AttrType::String, false),
            ("NAME.GIVENNAME", None, "givenName", AttrType::String, false),
            ("emails.value", None, "value", AttrType::String, false),
            ("emails.primary", None, "primary", AttrType::Boolean, false),
            ("active", None, "active", AttrType::Boolean, false),
            (
                "meta.lastModified",
                None,
                "lastModified",
                AttrType::DateTime,
                false,
            ),
            ("meta.version", None, "version", AttrType::String, true),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                None,
                "employeeNumber",
                AttrType::String,
                false,
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value",
                None,
                "value",
                AttrType::String,
                false,
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                None,
                "userName",
                AttrType::String,
                false,
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:id",
                None,
                "id",
                AttrType::String,
                true,
            ),
            (
                "employeeNumber",
                None,
                "employeeNumber",
                AttrType::String,
                false,
            ),
            (
                "members.value",
                Some("Group"),
                "value",
                AttrType::String,
                false,
            ),
            (
                "displayName",
                Some("Group"),
                "displayName",
                AttrType::String,
                false,
            ),
            (
                "x509Certificates.value",
                None,
                "value",
                AttrType::Binary,
                true,
            ),
        ];
        for (path, rt, leaf, ty, ce) in cases {
            let r = reg()
                .resolve_str(path, *rt)
                .unwrap_or_else(|| panic!("{path} should resolve"));
            assert_eq!(r.leaf().name, *leaf, "{path}");
            assert_eq!(r.attr_type(), *ty, "{path}");
            assert_eq!(r.case_exact(), *ce, "{path}");
        }
    }

    #[test]
    fn unknown_or_out_of_scope_paths_do_not_resolve() {
        for (path, rt) in [
            ("nope", None),
            ("name.nope", None),
            ("members", Some("User")),
            ("urn:example:unknown:attr", None),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                Some("Group"),
            ),
        ] {
            assert!(reg().resolve_str(path, rt).is_none(), "{path}");
        }
    }

    #[test]
    fn extension_urn_is_recognised_as_a_whole() {
        let p = AttrPath::parse(ENTERPRISE_USER_SCHEMA).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reg().extension_for_path(&p).map(|s| s.id.as_str()),
            Some(ENTERPRISE_USER_SCHEMA)
        );
        let r = reg()
            .resolve_str(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                None,
            )
            .unwrap_or_else(|| panic!("resolves"));
        assert_eq!(r.extension_urn(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(
            r.canonical_path().to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        );
    }
}
