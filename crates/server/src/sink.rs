//! The hook from inbound SCIM into roster's identity graph.
//!
//! Every successful write that changes what roster knows about a user
//! produces one [`ScimChange`] handed to the [`InboundSink`] in
//! [`ScimState`](crate::ScimState): a create, an update, a deactivation
//! (`active` true → false; Okta's way of deprovisioning, since it never
//! deletes), a reactivation, a delete (Entra after its soft-delete period),
//! and, for group writes, one `Updated` per user whose memberships changed.
//!
//! The port belongs to the engine (`roster_engine::inbound`), which
//! implements it (`EngineSink`: a change becomes the service's event for
//! that person); the names are re-exported here for the server's callers.
//! `notify` is called on the request's task after the write committed, so
//! it must not block; every sink forwards into an unbounded channel.

pub use roster_engine::inbound::{
    ChangeKind, ChannelSink, EngineSink, GroupRef, InboundSink, NullSink, ScimChange,
};
