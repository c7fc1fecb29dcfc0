//! # roster-scim: the SCIM 2.0 protocol (RFC 7643 / RFC 7644)
//!
//! Shared by roster's SCIM server and its SCIM client connector. Pure: no
//! I/O, no async, no clock. The server's resources are `serde_json::Value`s
//! validated and interpreted through a [`SchemaRegistry`], so attributes a
//! typed model would drop survive untouched; the typed messages in
//! [`resource`] (and [`ListResponse`], [`ScimError`]) are for the edges,
//! and keep what they do not name.
//!
//! ## Map
//! - [`error`]: [`ScimError`] / [`ScimType`] and the §3.12 error body.
//! - [`schema`]: attribute definitions, the registry and path resolution;
//!   the standard User / Enterprise User / Group schemas.
//! - [`discovery`]: `/Schemas`, `/ResourceTypes`, `/ServiceProviderConfig`.
//! - [`path`]: attribute paths and PATCH paths.
//! - [`filter`] + [`eval`]: filter AST, parsing (via `scim_v2`), printing,
//!   validation, index planning and evaluation.
//! - [`patch`]: the PATCH applier, tolerant of Okta and Entra quirks.
//! - [`projection`]: `attributes` / `excludedAttributes`.
//! - [`normalize`](mod@normalize): create/replace validation and normalisation.
//! - [`list`]: ListResponse, paging and sorting.
//! - [`resource`]: serde types for the messages both sides exchange: the
//!   [`User`] resource (read leniently, extra attributes kept) and the
//!   [`PatchOp`] request, which the SCIM client connector sends and
//!   receives.
//! - [`fuzz`]: never-panicking entry points for cargo-fuzz.
//!
//! ## Invariants
//! - Every error a client can cause is a [`ScimError`] with the RFC status
//!   and `scimType`; library code does not panic on any input.
//! - Attribute names are matched case-insensitively (RFC 7643 §2.1) and
//!   written back in the schema's canonical spelling.
//! - PATCH is all-or-nothing: on error the resource is untouched.
//!
//! ## Deliberately absent
//! Time (`meta.created/lastModified/version` are set by the caller), id
//! generation, uniqueness checks across resources, and storage.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod discovery;
pub mod error;
pub mod eval;
pub mod filter;
pub mod fuzz;
pub mod list;
pub mod normalize;
pub mod patch;
pub mod path;
pub mod projection;
pub mod resource;
pub mod schema;
mod standard;
mod text;

pub(crate) mod coerce;

pub use discovery::ServiceProviderConfig;
pub use error::{ERROR_SCHEMA, ScimError, ScimType};
pub use filter::{CompValue, CompareOp, Filter};
pub use fuzz::{fuzz_filter, fuzz_patch};
pub use list::{ListResponse, Paging, SortOrder, SortSpec};
pub use normalize::{normalize, normalize_group, normalize_user};
pub use patch::apply_patch;
pub use path::{AttrPath, PatchPath};
pub use projection::project;
pub use resource::{EnterpriseUser, Manager, Meta, MultiValue, Name, PatchOp, User};
pub use schema::{
    AttrType, AttributeDef, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, Mutability,
    PATCH_OP_SCHEMA, RESOURCE_TYPE_SCHEMA, Resolved, ResourceType, Returned, SCHEMA_SCHEMA,
    SEARCH_REQUEST_SCHEMA, SERVICE_PROVIDER_CONFIG_SCHEMA, Schema, SchemaExtension, SchemaKind,
    SchemaRegistry, USER_SCHEMA, Uniqueness,
};
