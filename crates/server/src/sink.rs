//! The hook from inbound SCIM into roster's identity graph.
//!
//! Every successful write that changes what roster knows about a user
//! produces one [`ScimChange`] handed to the [`InboundSink`] in
//! [`ScimState`](crate::ScimState): a create, an update, a deactivation
//! (`active` true → false; Okta's way of deprovisioning, since it never
//! deletes), a reactivation, a delete (Entra after its soft-delete period),
//! and, for group writes, one `Updated` per user whose memberships changed.
//!
//! `notify` is called on the request's task after the write committed, so
//! it must not block: [`ChannelSink`] forwards into an unbounded tokio
//! channel, which never blocks and never drops. The store stays the source
//! of truth; a consumer that falls behind or restarts can re-read the
//! connection's users from it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// What happened to a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// POST /Users (or a Bulk POST).
    Created,
    /// Any other change, including group membership changes.
    Updated,
    /// `active` went from true to false: a deprovision intent.
    Deactivated,
    /// `active` went from false to true.
    Reactivated,
    /// DELETE /Users/{id}.
    Deleted,
}

/// A group a user belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRef {
    /// The SCIM group id.
    pub id: String,
    /// The group's displayName (empty if it has none).
    pub display_name: String,
}

/// One inbound change to a user, as the graph needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimChange {
    /// The SCIM connection (URL namespace) it came through.
    pub connection: String,
    /// The SCIM id roster assigned.
    pub user_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    /// The enterprise extension's `employeeNumber`.
    pub employee_number: Option<String>,
    /// `active` after the change (absent counts as active).
    pub active: bool,
    pub kind: ChangeKind,
    /// The user's groups after the change (empty after a delete).
    pub groups: Vec<GroupRef>,
}

/// Receives inbound changes. Implementations must return quickly and must
/// not block (no locks held across I/O, no blocking sends).
pub trait InboundSink: Send + Sync + 'static {
    fn notify(&self, change: ScimChange);
}

/// Discards every change (for a server whose graph is not wired yet).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl InboundSink for NullSink {
    fn notify(&self, _change: ScimChange) {}
}

/// Forwards changes into an unbounded tokio channel.
#[derive(Clone, Debug)]
pub struct ChannelSink {
    tx: mpsc::UnboundedSender<ScimChange>,
}

impl ChannelSink {
    /// A sink and the receiver the consumer drains.
    pub fn new() -> (Arc<ChannelSink>, mpsc::UnboundedReceiver<ScimChange>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(ChannelSink { tx }), rx)
    }
}

impl InboundSink for ChannelSink {
    fn notify(&self, change: ScimChange) {
        if self.tx.send(change).is_err() {
            // The consumer is gone (shutting down); the store still has
            // the write, so nothing is lost that a re-read cannot recover.
            tracing::debug!("SCIM change dropped: receiver closed");
        }
    }
}
