//! The standard schema definitions of RFC 7643 §8.7 as Rust data.
//!
//! Deviations from the published §8.7.1 listing, each deliberate:
//! - `Group.displayName` is `required` (RFC 7643 §4.2 says REQUIRED; the
//!   §8.7.1 listing's `false` contradicts it, and every IdP sends it).
//! - `Group.members` gains a `display` sub-attribute, because Okta sends
//!   `{value, display}` when pushing membership.
//! - `addresses` gains `primary`, which §4.1.2 describes but §8.7.1 omits.

use crate::schema::{
    AttrType, AttributeDef as A, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, Mutability, ResourceType,
    Returned, Schema, SchemaExtension, SchemaKind, SchemaRegistry, USER_SCHEMA, Uniqueness,
};

/// `id`, `externalId`, `meta` and `schemas` (RFC 7643 §3.1).
pub(crate) fn common_attributes() -> Vec<A> {
    vec![
        A::string("id")
            .case_exact()
            .read_only()
            .returned(Returned::Always)
            .uniqueness(Uniqueness::Server)
            .describe("Unique identifier for the resource, assigned by the service provider."),
        A::string("externalId")
            .case_exact()
            .describe("Identifier of the resource as defined by the provisioning client."),
        A::complex(
            "meta",
            vec![
                A::string("resourceType").case_exact().read_only(),
                A::date_time("created").read_only(),
                A::date_time("lastModified").read_only(),
                A::reference("location", &["uri"]).case_exact().read_only(),
                A::string("version").case_exact().read_only(),
            ],
        )
        .read_only()
        .describe("Resource metadata."),
        A::reference("schemas", &["uri"])
            .multi()
            .case_exact()
            .returned(Returned::Always)
            .describe("Schema URIs the resource conforms to."),
    ]
}

/// A typical multi-valued `{value, display, type, primary}` attribute.
fn plural(name: &str, value: A, types: &[&str], desc: &str) -> A {
    A::complex(
        name,
        vec![
            value,
            A::string("display").describe("A human-readable name, primarily used for display."),
            A::string("type")
                .canonical(types)
                .describe("A label indicating the attribute's function."),
            A::boolean("primary").describe("Whether this is the primary or preferred value."),
        ],
    )
    .multi()
    .describe(desc)
}

fn user_schema() -> Schema {
    let s = |n: &str, d: &str| A::string(n).describe(d);
    let attributes = vec![
        A::string("userName")
            .required()
            .uniqueness(Uniqueness::Server)
            .describe("Unique identifier for the User, typically used to authenticate."),
        A::complex(
            "name",
            vec![
                s("formatted", "The full name, formatted for display."),
                s("familyName", "The family name of the User."),
                s("givenName", "The given name of the User."),
                s("middleName", "The middle name(s) of the User."),
                s("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
                s("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
            ],
        )
        .describe("The components of the user's real name."),
        s("displayName", "The name of the User, suitable for display."),
        s("nickName", "The casual way to address the user."),
        A::reference("profileUrl", &["external"]).describe("A URI of the User's online profile."),
        s("title", "The user's title, e.g. 'Vice President'."),
        s(
            "userType",
            "The relationship between the organization and the user.",
        ),
        s(
            "preferredLanguage",
            "The User's preferred written or spoken language.",
        ),
        s("locale", "The User's default location, e.g. 'en-US'."),
        s(
            "timezone",
            "The User's time zone in IANA format, e.g. 'America/Los_Angeles'.",
        ),
        A::boolean("active").describe("The User's administrative status."),
        A::string("password")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never)
            .describe("The User's cleartext password; never returned."),
        plural(
            "emails",
            s("value", "Email address for the User."),
            &["work", "home", "other"],
            "Email addresses for the user.",
        ),
        plural(
            "phoneNumbers",
            s("value", "Phone number of the User."),
            &["work", "home", "mobile", "fax", "pager", "other"],
            "Phone numbers for the User.",
        ),
        plural(
            "ims",
            s("value", "Instant messaging address for the User."),
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            "Instant messaging addresses for the User.",
        ),
        plural(
            "photos",
            A::reference("value", &["external"]).describe("URL of a photo of the User."),
            &["photo", "thumbnail"],
            "URLs of photos of the User.",
        ),
        A::complex(
            "addresses",
            vec![
                s(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                s("streetAddress", "The full street address component."),
                s("locality", "The city or locality component."),
                s("region", "The state or region component."),
                s("postalCode", "The zip code or postal code component."),
                s("country", "The country name component."),
                A::string("type")
                    .canonical(&["work", "home", "other"])
                    .describe("A label indicating the attribute's function."),
                A::boolean("primary").describe("Whether this is the primary address."),
            ],
        )
        .multi()
        .describe("A physical mailing address for this User."),
        A::complex(
            "groups",
            vec![
                A::string("value")
                    .read_only()
                    .describe("The identifier of the User's group."),
                A::reference("$ref", &["User", "Group"])
                    .read_only()
                    .describe("The URI of the Group resource."),
                A::string("display")
                    .read_only()
                    .describe("A human-readable name."),
                A::string("type")
                    .canonical(&["direct", "indirect"])
                    .read_only()
                    .describe("How the membership was derived."),
            ],
        )
        .multi()
        .read_only()
        .describe("A list of groups to which the user belongs."),
        plural(
            "entitlements",
            s("value", "The value of an entitlement."),
            &[],
            "A list of entitlements for the User.",
        ),
        plural(
            "roles",
            s("value", "The value of a role."),
            &[],
            "A list of roles for the User.",
        ),
        plural(
            "x509Certificates",
            A::new("value", AttrType::Binary)
                .case_exact()
                .describe("The value of an X.509 certificate (base64 DER)."),
            &[],
            "A list of certificates issued to the User.",
        ),
    ];
    Schema {
        id: USER_SCHEMA.to_string(),
        name: "User".to_string(),
        description: "User Account".to_string(),
        kind: SchemaKind::Core,
        attributes,
    }
}

fn group_schema() -> Schema {
    Schema {
        id: GROUP_SCHEMA.to_string(),
        name: "Group".to_string(),
        description: "Group".to_string(),
        kind: SchemaKind::Core,
        attributes: vec![
            A::string("displayName")
                .required()
                .describe("A human-readable name for the Group."),
            A::complex(
                "members",
                vec![
                    A::string("value")
                        .mutability(Mutability::Immutable)
                        .describe("Identifier of the member of this Group."),
                    A::reference("$ref", &["User", "Group"])
                        .mutability(Mutability::Immutable)
                        .describe("The URI of the member resource."),
                    A::string("type")
                        .canonical(&["User", "Group"])
                        .mutability(Mutability::Immutable)
                        .describe("The type of the member resource."),
                    A::string("display")
                        .mutability(Mutability::Immutable)
                        .describe("A human-readable name for the member."),
                ],
            )
            .multi()
            .describe("A list of members of the Group."),
        ],
    }
}

fn enterprise_user_schema() -> Schema {
    let s = |n: &str, d: &str| A::string(n).describe(d);
    Schema {
        id: ENTERPRISE_USER_SCHEMA.to_string(),
        name: "EnterpriseUser".to_string(),
        description: "Enterprise User".to_string(),
        kind: SchemaKind::Extension,
        attributes: vec![
            s(
                "employeeNumber",
                "Numeric or alphanumeric identifier assigned to a person.",
            ),
            s("costCenter", "Identifies the name of a cost center."),
            s("organization", "Identifies the name of an organization."),
            s("division", "Identifies the name of a division."),
            s("department", "Identifies the name of a department."),
            A::complex(
                "manager",
                vec![
                    s(
                        "value",
                        "The id of the SCIM resource representing the User's manager.",
                    ),
                    A::reference("$ref", &["User"])
                        .describe("The URI of the manager's User resource."),
                    A::string("displayName")
                        .read_only()
                        .describe("The displayName of the User's manager."),
                ],
            )
            .describe("The User's manager."),
        ],
    }
}

pub(crate) fn standard_registry() -> SchemaRegistry {
    SchemaRegistry::new(
        vec![user_schema(), enterprise_user_schema(), group_schema()],
        vec![
            ResourceType {
                id: "User".into(),
                name: "User".into(),
                endpoint: "/Users".into(),
                description: "User Account".into(),
                schema: USER_SCHEMA.into(),
                schema_extensions: vec![SchemaExtension {
                    schema: ENTERPRISE_USER_SCHEMA.into(),
                    required: false,
                }],
            },
            ResourceType {
                id: "Group".into(),
                name: "Group".into(),
                endpoint: "/Groups".into(),
                description: "Group".into(),
                schema: GROUP_SCHEMA.into(),
                schema_extensions: vec![],
            },
        ],
    )
}
