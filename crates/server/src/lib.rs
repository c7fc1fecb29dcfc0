//! # roster-server: roster's HTTP server
//!
//! For now it hosts the **SCIM 2.0 service provider** (RFC 7643/7644) that
//! identity providers such as Okta and Entra push users and groups into;
//! REST, UI and MCP will join it.
//!
//! ## Shape
//! - [`scim_router`] builds an axum [`Router`](axum::Router) serving
//!   `/scim/v2/{connection}/...` for every connection; [`serve`] runs any
//!   router with graceful shutdown, limits, timeouts and request logs.
//! - [`ScimState`] holds the [`Store`](roster_store::Store), the
//!   [`InboundSink`] that receives a [`ScimChange`] for every inbound user
//!   change (the engine's port, `roster_engine::inbound`; [`EngineSink`]
//!   turns each into the service's event for that person), and
//!   [`ScimConfig`].
//! - Every user write carries the user's typed intent
//!   (`roster_store::GatewayUser`, computed by
//!   `roster_engine::inbound::user_intent` from the body parsed here),
//!   which the store writes in the same transaction as the resource; the
//!   engine plans from it without re-parsing SCIM.
//! - [`hook_router`] serves Okta event hooks at `/hooks/okta/{source}`
//!   (verification challenge, deliveries authenticated by a shared-secret
//!   header): a hook only names users for the engine to re-read from Okta
//!   ([`HookState`], the engine's `SourceEvents` port).
//! - [`tokens`] creates, lists, revokes and verifies the per-connection
//!   bearer tokens (`rst_…`, stored as SHA-256).
//! - [`api_router`] serves the REST API at `/api/v1` (bearer API tokens,
//!   one scope per route from one table, RFC 9457 errors, OpenAPI 3.1 at
//!   `/api/v1/openapi.json`, an HTML reference at `/api/docs`); see [`api`].
//! - The protocol itself (schemas, filters, PATCH, projection, errors) is
//!   `roster-scim`; this crate adds HTTP, storage and authorization.
//!
//! ## Invariants
//! - Every request is authenticated with a token of the connection in its
//!   path; every write is audited with actor `scim:<connection>:<prefix>`.
//! - A write is one store transaction: a malformed or failing request
//!   never leaves a partial change (PATCH is applied in memory, all or
//!   nothing, and written only if the resource did not change meanwhile).
//! - Every error response, including framework rejections, timeouts and
//!   panics, is an RFC 7644 §3.12 JSON body with `application/scim+json`.
//! - Filters on indexed attributes are answered by the database (see
//!   [`service`](crate::service)); other filters scan at most
//!   [`ScimConfig::scan_limit`] resources.
//! - There is no global lock: requests share the store's connection pools.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod api;
mod bulk;
mod cache;
mod error;
mod heads;
mod hook;
mod http;
pub mod logging;
pub mod ops;
mod resource;
mod serve;
pub mod service;
pub mod sink;
mod state;
pub mod tokens;
mod writer;

pub use api::api_router;
pub use bulk::{BULK_REQUEST_SCHEMA, BULK_RESPONSE_SCHEMA};
pub use error::SCIM_CONTENT_TYPE;
pub use hook::{HookState, OktaHook, VERIFICATION_HEADER, hook_router};
pub use http::scim_router;
pub use ops::{OpsState, metrics_handle, ops_router};
pub use serve::{
    REQUEST_ID, ServeOptions, scim_serve_options, serve, serve_with, with_request_logs,
};
pub use sink::{ChangeKind, ChannelSink, EngineSink, GroupRef, InboundSink, NullSink, ScimChange};
pub use state::{ScimConfig, ScimState};
