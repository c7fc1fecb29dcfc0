//! The inbound edge: what reaches the engine from identity providers that
//! push to roster's SCIM server, and the port they reach it through.
//!
//! Two things cross this edge, and both are typed here:
//!
//! * **The change** ([`ScimChange`]): every successful SCIM write that
//!   changes what roster knows about a user is announced, after it
//!   committed, to an [`InboundSink`]. The engine implements the sink
//!   ([`EngineSink`]): a change becomes the service's event for that one
//!   person ([`Event::Person`]), so `roster serve` only wires the server
//!   to the service and is not on the event path.
//! * **The intent** ([`GatewayUser`], stored as
//!   [`roster_store::GatewayIntent`]): what the IdP says about the user
//!   (status, identifiers, names). [`user_intent`] is the one mapping from
//!   a stored SCIM User body to it. The SCIM server calls it for every user
//!   it writes and hands the result to the store, which writes it in the
//!   same transaction as the resource; the engine calls it only to
//!   backfill users pushed before schema 12 (`gateway.rs`). Planning reads
//!   the typed rows only.
//!
//! * **An IdP's event hook** (Okta's, [`okta_hook_events`]): which users
//!   an event names, and nothing more. The server hands them to a
//!   [`SourceEvents`] port; [`EngineSink`] turns them into
//!   [`Event::SourcePeople`], and the service re-reads those people from
//!   the IdP ([`crate::Roster::reread_people`]). A hook is never taken as
//!   state: a forged "deactivated" event re-reads a person the IdP still
//!   lists as active, and nothing changes.
//!
//! `notify` runs on the request's task after the write committed, so it
//! must not block: every sink here forwards into an unbounded tokio
//! channel, which never blocks and never drops. The store stays the source
//! of truth; a consumer that falls behind or restarts re-reads it (the
//! service's periodic full run folds every gateway user).

use std::sync::Arc;

use roster_store::{GatewayStatus, GatewayUser};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::planning::PersonRef;
use crate::service::Event;

/// The enterprise User extension's schema URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

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

/// One inbound change to a user, as the engine needs it.
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

impl ScimChange {
    /// The person the change is about: by address (the userName), else by
    /// employee number. `None` when it names neither.
    pub fn person(&self) -> Option<PersonRef> {
        PersonRef::from_identifiers(&self.user_name, self.employee_number.as_deref())
    }
}

/// Receives inbound changes. Implementations must return quickly and must
/// not block (no locks held across I/O, no blocking sends).
pub trait InboundSink: Send + Sync + 'static {
    fn notify(&self, change: ScimChange);
}

/// Discards every change (a server with nothing behind it: tools,
/// benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl InboundSink for NullSink {
    fn notify(&self, _change: ScimChange) {}
}

/// Forwards changes as they are into an unbounded channel (tests, and
/// consumers other than the engine).
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

/// The engine's sink: each change becomes [`Event::Person`] on the
/// service's event channel (the one [`crate::service::run`] drains), so
/// the service plans just that person at once.
#[derive(Clone, Debug)]
pub struct EngineSink {
    events: mpsc::UnboundedSender<Event>,
}

impl EngineSink {
    /// A sink feeding `events`, the sender of the channel whose receiver
    /// goes to [`crate::service::run`].
    pub fn new(events: mpsc::UnboundedSender<Event>) -> Arc<EngineSink> {
        Arc::new(EngineSink { events })
    }

    /// A sink and the receiver to hand to [`crate::service::run`]; the
    /// sender is returned too, for other event sources (a full run on
    /// demand).
    pub fn channel() -> (
        Arc<EngineSink>,
        mpsc::UnboundedSender<Event>,
        mpsc::UnboundedReceiver<Event>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EngineSink::new(tx.clone()), tx, rx)
    }
}

/// Where an IdP's event hook hands the users it named (the engine's port;
/// [`EngineSink`] implements it). Must not block.
pub trait SourceEvents: Send + Sync {
    /// `ids` (the IdP's user ids) of `source` (`source.<name>`) changed,
    /// the hook says; re-read them.
    fn people_named(&self, source: &roster_core::ConnectionId, ids: Vec<String>);
}

impl SourceEvents for EngineSink {
    fn people_named(&self, source: &roster_core::ConnectionId, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let event = Event::SourcePeople {
            source: source.clone(),
            ids,
        };
        if self.events.send(event).is_err() {
            tracing::debug!(
                "event hook not acted on: the service has stopped; the next poll or full run reads the change"
            );
        }
    }
}

/// One event of an Okta event hook delivery: its uuid (for dedupe) and the
/// users it names, for the event types an incremental read follows
/// (`roster_sources::okta::EVENT_PREFIXES`); other events name nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookEvent {
    pub uuid: String,
    pub event_type: String,
    pub users: Vec<String>,
}

/// Parses an Okta event hook delivery (`{"data": {"events": [{"uuid",
/// "eventType", "target": [{"type": "User", "id"}]}]}}`). Anything else
/// is an error saying what is wrong (the server answers 400 with it).
pub fn okta_hook_events(body: &Value) -> Result<Vec<HookEvent>, String> {
    let events = body
        .get("data")
        .and_then(|d| d.get("events"))
        .and_then(Value::as_array)
        .ok_or("the body has no data.events array; is this an Okta event hook delivery?")?;
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let uuid = e
            .get("uuid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| format!("data.events[{i}] has no uuid"))?;
        let event_type = e
            .get("eventType")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("data.events[{i}] has no eventType"))?;
        let followed = roster_sources::okta::EVENT_PREFIXES
            .iter()
            .any(|p| event_type.starts_with(p));
        let mut users = Vec::new();
        if followed {
            for t in e
                .get("target")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if t.get("type").and_then(Value::as_str) == Some("User")
                    && let Some(id) = t.get("id").and_then(Value::as_str)
                    && !id.is_empty()
                    && !users.iter().any(|u| u == id)
                {
                    users.push(id.to_string());
                }
            }
        }
        out.push(HookEvent {
            uuid: uuid.to_string(),
            event_type: event_type.to_string(),
            users,
        });
    }
    Ok(out)
}

impl InboundSink for EngineSink {
    fn notify(&self, change: ScimChange) {
        match change.person() {
            Some(who) => {
                if self.events.send(Event::Person(who)).is_err() {
                    // The service has stopped; the write is in the store
                    // and the next full run folds it.
                    tracing::debug!("SCIM change not planned: the service has stopped");
                }
            }
            None => tracing::warn!(
                connection = %change.connection,
                user = %change.user_name,
                "SCIM change names no address or employee number; the next full run folds it"
            ),
        }
    }
}

/// The typed intent of a stored SCIM User: `active` (absent counts as
/// active), the lookup columns the server already extracted, and from the
/// body `emails[*].value`, `name.givenName`, `name.familyName` and the
/// enterprise extension's `employeeNumber`. `data` is the normalized body
/// (`roster_scim::normalize` spells attribute names canonically).
pub fn user_intent(
    user_name: Option<&str>,
    external_id: Option<&str>,
    active: Option<bool>,
    data: &Value,
) -> GatewayUser {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let name = data.get("name");
    GatewayUser {
        status: Some(if active.unwrap_or(true) {
            GatewayStatus::Active
        } else {
            GatewayStatus::Inactive
        }),
        user_name: user_name.map(str::to_string),
        external_id: external_id.map(str::to_string),
        employee_number: text(
            data.get(ENTERPRISE_USER_SCHEMA)
                .and_then(|e| e.get("employeeNumber")),
        ),
        emails: data
            .get("emails")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| e.get("value").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        given_name: text(name.and_then(|n| n.get("givenName"))),
        family_name: text(name.and_then(|n| n.get("familyName"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_body_becomes_typed_intent() {
        let data = json!({
            "userName": "Dana.Lee@Acme.example",
            "name": {"givenName": "Dana", "familyName": "Lee"},
            "emails": [{"value": "dana@acme.example", "primary": true}, {"type": "home"}],
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "E7"},
        });
        let u = user_intent(
            Some("Dana.Lee@Acme.example"),
            Some("00u1"),
            Some(false),
            &data,
        );
        assert_eq!(u.status(), GatewayStatus::Inactive);
        assert_eq!(u.user_name.as_deref(), Some("Dana.Lee@Acme.example"));
        assert_eq!(u.external_id.as_deref(), Some("00u1"));
        assert_eq!(u.employee_number.as_deref(), Some("E7"));
        assert_eq!(u.emails, vec!["dana@acme.example".to_string()]);
        assert_eq!(
            (u.given_name.as_deref(), u.family_name.as_deref()),
            (Some("Dana"), Some("Lee"))
        );
        // `active` absent counts as active; nothing else is invented.
        let bare = user_intent(Some("x@y"), None, None, &json!({}));
        assert_eq!(bare.status(), GatewayStatus::Active);
        assert!(bare.emails.is_empty() && bare.employee_number.is_none());
    }

    #[tokio::test]
    async fn the_engine_sink_turns_a_change_into_an_event_for_that_person_without_blocking() {
        let (sink, _tx, mut rx) = EngineSink::channel();
        let change = |user_name: &str, employee_number: Option<&str>| ScimChange {
            connection: "spendesk".into(),
            user_id: "u1".into(),
            user_name: user_name.into(),
            external_id: None,
            employee_number: employee_number.map(str::to_string),
            active: false,
            kind: ChangeKind::Deactivated,
            groups: Vec::new(),
        };
        // Many changes with no consumer running: notify returns at once.
        for _ in 0..10_000 {
            sink.notify(change("dana@acme.example", None));
        }
        sink.notify(change("not an address", Some("E7")));
        sink.notify(change("not an address", None));
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), 10_001, "none dropped, the nameless one skipped");
        assert!(
            matches!(&got[0], Event::Person(PersonRef::Email(e)) if e.as_str() == "dana@acme.example")
        );
        assert!(
            matches!(&got[10_000], Event::Person(PersonRef::EmployeeId(id)) if id.as_str() == "E7")
        );
        // A stopped service never makes notify fail or block.
        drop(rx);
        sink.notify(change("dana@acme.example", None));
    }
}
