//! Notifications: the events people must act on, sent where they already
//! work (email over SMTP, Slack-compatible incoming webhooks and generic
//! signed webhooks).
//!
//! # Read from the audit log
//!
//! Every event worth a message is already an audit event: a plan waiting
//! for approval (`plan.awaiting_approval`), a task opened, reminded or
//! escalated, a connection paused or quarantined, sessions that could not
//! be revoked. So notifications are not hooks sprinkled through the
//! engine: [`crate::Roster::deliver_notifications`] reads the audit log
//! after each channel's cursor (`notify_cursor`, migration 0019), sends
//! what the channel routes, records each outcome in the delivery log
//! (`notify_delivery`) and then moves the cursor. A crash between sending
//! and recording sends that one message again (at least once, never
//! lost); a channel's first run starts at the log's head, so turning
//! notifications on does not replay history. The service delivers after
//! every run and every [`DELIVER_EVERY`].
//!
//! # Channels (`[notify.channels.<name>]`)
//!
//! * `kind = "slack"`: a Slack-compatible incoming webhook (`{"text": …}`;
//!   Mattermost and Teams' Slack-compatible endpoints take it too). Its
//!   URL is the credential: give it as `{ env = "…" }` or `{ file = "…" }`.
//! * `kind = "webhook"`: a generic JSON POST, signed: `X-Roster-Timestamp`
//!   (unix seconds) and `X-Roster-Signature: v1=<hex HMAC-SHA256 of
//!   "<timestamp>.<body>">` with the channel's `secret`, so the receiver
//!   can check the sender and refuse replays (a timestamp older than a few
//!   minutes).
//!
//! * `kind = "email"`: SMTP with STARTTLS (`smtp://host:587`) or TLS
//!   (`smtps://host:465`) through lettre; plain SMTP only to a relay on
//!   this host. A permanent SMTP answer (5xx) is final.
//!
//! `events` lists what the channel receives ([`NotifyEvent`] names, or
//! `"*"`); `base_url` (`[notify]`) makes each message link to the page
//! that settles it. Every URL passes the outbound check at load
//! ([`crate::egress`]) and the client never follows a redirect.
//!
//! # Failure
//!
//! Each message is retried with backoff ([`ATTEMPTS`] attempts in all) on
//! a connection error, a 408, a 429 or a 5xx; any other answer is final.
//! A message that still fails is recorded as `failed` with the receiver's
//! status, audited (`notify.failed`, which no channel routes, so a broken
//! channel cannot loop) and skipped: one bad message never blocks the
//! ones after it. Messages carry what the audit event says (people's
//! addresses, plan and task ids, connection names), never a secret: the
//! audit log holds none.

use std::time::Duration;

use ring::hmac;
use roster_store::{AuditKind, AuditRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::SecretRef;
pub use crate::config::{RawChannel, RawNotify, UrlRef};

/// Attempts per message, the first included.
pub const ATTEMPTS: u32 = 4;
/// How often the service delivers, besides after every run.
pub const DELIVER_EVERY: Duration = Duration::from_secs(30);
/// How often the service looks for leavers whose access is open past the
/// SLA (it computes the leavers report).
pub const LEAVER_SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Audit events read per pass.
pub(crate) const BATCH: usize = 500;
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a channel can be told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A plan's actions wait for a person's approval.
    ApprovalNeeded,
    /// A task was opened for a person.
    TaskAssigned,
    /// A task is overdue (a reminder went out).
    TaskOverdue,
    /// A task was escalated past its SLA.
    TaskEscalated,
    /// Writes to a connection were paused.
    ConnectionPaused,
    /// A connection was quarantined after repeated failures.
    ConnectionQuarantined,
    /// A leaver's sessions could not be revoked in an IdP.
    SessionsNotRevoked,
    /// A leaver's access is still open past `leaver_sla_hours`.
    LeaverAccessOpen,
    /// An approval has waited past `approval_sla_hours`: the fallback is
    /// asked.
    ApprovalEscalated,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 9] = [
        NotifyEvent::ApprovalNeeded,
        NotifyEvent::TaskAssigned,
        NotifyEvent::TaskOverdue,
        NotifyEvent::TaskEscalated,
        NotifyEvent::ConnectionPaused,
        NotifyEvent::ConnectionQuarantined,
        NotifyEvent::SessionsNotRevoked,
        NotifyEvent::LeaverAccessOpen,
        NotifyEvent::ApprovalEscalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::ApprovalNeeded => "approval_needed",
            NotifyEvent::TaskAssigned => "task_assigned",
            NotifyEvent::TaskOverdue => "task_overdue",
            NotifyEvent::TaskEscalated => "task_escalated",
            NotifyEvent::ConnectionPaused => "connection_paused",
            NotifyEvent::ConnectionQuarantined => "connection_quarantined",
            NotifyEvent::SessionsNotRevoked => "sessions_not_revoked",
            NotifyEvent::LeaverAccessOpen => "leaver_access_open",
            NotifyEvent::ApprovalEscalated => "approval_escalated",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s.trim())
    }

    /// The notification an audit event is, if any.
    pub fn of(r: &AuditRecord) -> Option<NotifyEvent> {
        Some(match AuditKind::parse(&r.kind)? {
            AuditKind::PlanAwaitingApproval => NotifyEvent::ApprovalNeeded,
            AuditKind::TaskOpened => NotifyEvent::TaskAssigned,
            AuditKind::TaskReminded => NotifyEvent::TaskOverdue,
            AuditKind::TaskEscalated => NotifyEvent::TaskEscalated,
            AuditKind::ConnectionPaused => NotifyEvent::ConnectionPaused,
            AuditKind::ConnectionQuarantined => NotifyEvent::ConnectionQuarantined,
            AuditKind::SessionsRevoked if r.data["outcome"] == "failed" => {
                NotifyEvent::SessionsNotRevoked
            }
            AuditKind::LeaverAccessOverdue => NotifyEvent::LeaverAccessOpen,
            AuditKind::PlanApprovalEscalated => NotifyEvent::ApprovalEscalated,
            _ => return None,
        })
    }
}

/// How a channel sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Slack,
    /// Signed with this secret.
    Webhook,
    Email,
}

type Mailer = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

/// An email channel's transport and envelope.
#[derive(Clone)]
struct Mail {
    mailer: Mailer,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
}

/// A channel ready to send (secrets resolved, URL checked).
#[derive(Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    url: String,
    secret: Option<String>,
    pub events: Vec<NotifyEvent>,
    /// Whom an email goes to (`route`).
    pub route: Route,
    /// Only messages about these connections (and those about none);
    /// empty: all.
    pub connections: Vec<String>,
    client: reqwest::Client,
    mail: Option<Mail>,
}

/// Whom an email channel's message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Always the channel's `to`.
    Fixed,
    /// The message's recipients (the apps' owners, an escalation's
    /// fallback), else `to`.
    Owners,
}

impl Channel {
    /// Does this channel take `m` (its events and connections)?
    pub fn takes(&self, m: &Message) -> bool {
        self.events.contains(&m.event)
            && (self.connections.is_empty()
                || m.connections.is_empty()
                || m.connections.iter().any(|c| self.connections.contains(c)))
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The deployment's channels and where messages link.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    pub base_url: Option<String>,
    pub channels: Vec<Channel>,
    /// `[notify.groups]`: named groups of addresses.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// How long a leaver's access may stay open before it is raised.
    pub leaver_sla: Duration,
    /// How long an approval may wait before the fallback is asked.
    pub approval_sla: Duration,
    /// The fallback for approvals past their SLA.
    pub approval_escalate_to: Vec<String>,
}

/// The default for `leaver_sla_hours` and `approval_sla_hours`.
pub const DEFAULT_SLA_HOURS: u32 = 24;

pub use crate::config::check_recipient;

/// A `[notify]` problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("notify.{place}: {message}")]
pub struct NotifyConfigError {
    pub place: String,
    pub message: String,
}

impl Notifier {
    /// Builds the channels of `raw`: resolves `{ env }` and `{ file }`
    /// (relative to `base`) with `env`, checks every URL, parses events.
    pub fn from_config(
        raw: &RawNotify,
        base: &std::path::Path,
        allow_private_network: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Notifier, NotifyConfigError> {
        let fail = |place: String, message: String| NotifyConfigError { place, message };
        let resolve = |place: &str, r: &SecretRef| -> Result<String, NotifyConfigError> {
            crate::config::read_env_or_file(r, base, env).map_err(|m| fail(place.to_string(), m))
        };
        if let Some(b) = &raw.base_url
            && url::Url::parse(b).is_err()
        {
            return Err(fail("base_url".into(), format!("{b:?} is not a URL")));
        }
        let mut channels = Vec::new();
        for (name, c) in &raw.channels {
            let place = |k: &str| format!("channels.{name}.{k}");
            let kind = match c.kind.as_str() {
                "slack" => ChannelKind::Slack,
                "webhook" => ChannelKind::Webhook,
                "email" => ChannelKind::Email,
                other => {
                    return Err(fail(
                        place("kind"),
                        format!(
                            "{other:?} is not a channel kind: use \"slack\", \"webhook\" or \"email\""
                        ),
                    ));
                }
            };
            let private = allow_private_network || c.allow_private_network;
            let (url, mail) = if kind == ChannelKind::Email {
                if c.url.is_some() {
                    return Err(fail(
                        place("url"),
                        "an email channel has no url: give smtp, from and to".into(),
                    ));
                }
                let password = c
                    .password
                    .as_ref()
                    .map(|r| resolve(&place("password"), r))
                    .transpose()?;
                (String::new(), Some(mail(c, password, private, &place)?))
            } else {
                let Some(url) = &c.url else {
                    return Err(fail(place("url"), "the channel needs a url".into()));
                };
                let url = match url {
                    UrlRef::Plain(u) => u.clone(),
                    UrlRef::Secret(r) => resolve(&place("url"), r)?,
                };
                crate::egress::check_url(&url, private)
                    .map_err(|e| fail(place("url"), e.to_string()))?;
                (url, None)
            };
            let secret = match (&kind, &c.secret) {
                (ChannelKind::Webhook, None) => {
                    return Err(fail(
                        place("secret"),
                        "a webhook channel signs its messages: give a secret (16 characters or more) as { env = … } or { file = … }".into(),
                    ));
                }
                (ChannelKind::Webhook, Some(r)) => {
                    let s = resolve(&place("secret"), r)?;
                    if s.len() < 16 {
                        return Err(fail(
                            place("secret"),
                            "the signing secret is shorter than 16 characters".into(),
                        ));
                    }
                    Some(s)
                }
                (ChannelKind::Slack, Some(_)) => {
                    return Err(fail(
                        place("secret"),
                        "a slack channel has no signing secret (its URL is the credential)".into(),
                    ));
                }
                (ChannelKind::Slack | ChannelKind::Email, None) => None,
                (ChannelKind::Email, Some(_)) => {
                    return Err(fail(
                        place("secret"),
                        "an email channel has no signing secret (its SMTP password is `password`)"
                            .into(),
                    ));
                }
            };
            let mut events = Vec::new();
            for e in &c.events {
                if e == "*" {
                    events = NotifyEvent::ALL.to_vec();
                    break;
                }
                events.push(NotifyEvent::parse(e).ok_or_else(|| {
                    fail(
                        place("events"),
                        format!(
                            "{e:?} is not an event: use \"*\" or {}",
                            NotifyEvent::ALL.map(|e| e.as_str()).join(", ")
                        ),
                    )
                })?);
            }
            if events.is_empty() {
                return Err(fail(
                    place("events"),
                    "no event routed to this channel".into(),
                ));
            }
            let route = match (c.route.as_deref(), &kind) {
                (None | Some("fixed"), _) => Route::Fixed,
                (Some("owners"), ChannelKind::Email) => Route::Owners,
                (Some("owners"), _) => {
                    return Err(fail(
                        place("route"),
                        "only an email channel routes by owner; a Slack or webhook channel posts to one place (use `connections` to give each team its own channel)".into(),
                    ));
                }
                (Some(other), _) => {
                    return Err(fail(
                        place("route"),
                        format!("{other:?}: use \"fixed\" or \"owners\""),
                    ));
                }
            };
            let client = roster_connectors::egress::checked_client(TIMEOUT, private)
                .map_err(|e| fail(place("url"), format!("cannot build the HTTP client: {e}")))?;
            channels.push(Channel {
                name: name.clone(),
                kind,
                url,
                secret,
                events,
                route,
                connections: c.connections.clone(),
                client,
                mail,
            });
        }
        for (group, members) in &raw.groups {
            for m in members {
                if !m.contains('@') {
                    return Err(fail(
                        format!("groups.{group}"),
                        format!("{m:?} is not an address"),
                    ));
                }
                check_recipient(m, &raw.groups).map_err(|e| fail(format!("groups.{group}"), e))?;
            }
        }
        for who in &raw.approval_escalate_to {
            check_recipient(who, &raw.groups)
                .map_err(|e| fail("approval_escalate_to".into(), e))?;
        }
        let hours = |h: Option<u32>, key: &str| -> Result<Duration, NotifyConfigError> {
            match h.unwrap_or(DEFAULT_SLA_HOURS) {
                0 => Err(fail(key.into(), "must be at least 1 hour".into())),
                h => Ok(Duration::from_secs(u64::from(h) * 3600)),
            }
        };
        Ok(Notifier {
            base_url: raw.base_url.clone(),
            channels,
            groups: raw.groups.clone(),
            leaver_sla: hours(raw.leaver_sla_hours, "leaver_sla_hours")?,
            approval_sla: hours(raw.approval_sla_hours, "approval_sla_hours")?,
            approval_escalate_to: raw.approval_escalate_to.clone(),
        })
    }

    /// Checks `raw` without reading any secret (at config load): kinds,
    /// events, signing secrets present, plain URLs' destinations.
    pub fn check(raw: &RawNotify, allow_private_network: bool) -> Result<(), NotifyConfigError> {
        let placeholder =
            |_: &str| Some("https://placeholder.invalid/0123456789abcdef".to_string());
        let mut checked = raw.clone();
        for c in checked.channels.values_mut() {
            // Secrets are read when the service starts, not now.
            if matches!(c.url, Some(UrlRef::Secret(_))) {
                c.url = Some(UrlRef::Plain("https://placeholder.invalid/".into()));
            }
            if let Some(SecretRef::File { .. }) = c.secret {
                c.secret = Some(SecretRef::Env {
                    env: "PLACEHOLDER".into(),
                });
            }
            if c.password.is_some() {
                c.password = Some(SecretRef::Env {
                    env: "PLACEHOLDER".into(),
                });
            }
        }
        Notifier::from_config(
            &checked,
            std::path::Path::new("."),
            allow_private_network,
            &placeholder,
        )
        .map(|_| ())
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// An email channel's transport, checked: a server address that passes
/// the outbound check, TLS unless the relay is on this host, parseable
/// addresses.
fn mail(
    c: &RawChannel,
    password: Option<String>,
    allow_private: bool,
    place: &dyn Fn(&str) -> String,
) -> Result<Mail, NotifyConfigError> {
    use lettre::transport::smtp::authentication::Credentials;
    let fail = |k: &str, message: String| NotifyConfigError {
        place: place(k),
        message,
    };
    let Some(smtp) = &c.smtp else {
        return Err(fail(
            "smtp",
            "an email channel needs smtp = \"smtp://host:587\"".into(),
        ));
    };
    let u = url::Url::parse(smtp).map_err(|e| fail("smtp", format!("{smtp:?}: {e}")))?;
    let Some(raw_host) = u.host_str() else {
        return Err(fail("smtp", format!("{smtp:?} names no host")));
    };
    // The same destination rules as every other outbound URL.
    crate::egress::check_url(&format!("https://{raw_host}/"), allow_private)
        .map_err(|e| fail("smtp", e.to_string()))?;
    let host = raw_host.trim_matches(|c| c == '[' || c == ']').to_string();
    let plain = u.query_pairs().any(|(k, v)| k == "tls" && v == "none");
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let mut builder = match (u.scheme(), plain) {
        ("smtps", false) => Mailer::relay(&host).map_err(|e| fail("smtp", e.to_string()))?,
        ("smtp", false) => {
            Mailer::starttls_relay(&host).map_err(|e| fail("smtp", e.to_string()))?
        }
        ("smtp", true) if loopback => Mailer::builder_dangerous(&host),
        ("smtp", true) => {
            return Err(fail(
                "smtp",
                "plain SMTP (tls=none) only to a relay on this host: messages and the password would cross the network in the clear".into(),
            ));
        }
        (other, _) => {
            return Err(fail(
                "smtp",
                format!("{other:?}: use smtp:// (STARTTLS) or smtps:// (TLS)"),
            ));
        }
    };
    if let Some(port) = u.port() {
        builder = builder.port(port);
    }
    match (&c.username, password) {
        (Some(user), Some(pass)) => {
            builder = builder.credentials(Credentials::new(user.clone(), pass));
        }
        (None, None) => {}
        _ => {
            return Err(fail(
                "password",
                "give both username and password, or neither".into(),
            ));
        }
    }
    builder = builder.timeout(Some(TIMEOUT));
    let from = c
        .from
        .as_deref()
        .ok_or_else(|| fail("from", "an email channel needs a sender address".into()))?
        .parse()
        .map_err(|e| fail("from", format!("not an address: {e}")))?;
    if c.to.is_empty() {
        return Err(fail(
            "to",
            "an email channel needs at least one recipient".into(),
        ));
    }
    let to =
        c.to.iter()
            .map(|t| {
                t.parse()
                    .map_err(|e| fail("to", format!("{t:?} is not an address: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
    Ok(Mail {
        mailer: builder.build(),
        from,
        to,
    })
}

/// One message, before a channel formats it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub event: NotifyEvent,
    /// The audit event's sequence number.
    pub seq: u64,
    pub at_ms: i64,
    /// One line for people.
    pub text: String,
    /// The page that settles it, when `[notify] base_url` is set.
    pub link: Option<String>,
    /// The audit event: who did it, to what, and its payload.
    pub actor: String,
    pub subject: String,
    pub data: serde_json::Value,
    /// The connections it is about (an app's task or approval), if any.
    pub connections: Vec<String>,
    /// Who it is for, resolved to addresses (the apps' owners; for an
    /// escalation, the fallback): what a `route = "owners"` channel sends
    /// to. Empty: nobody in particular.
    pub recipients: Vec<String>,
}

/// What a message says about `r` (pure).
pub fn message(event: NotifyEvent, r: &AuditRecord, base_url: Option<&str>) -> Message {
    let d = &r.data;
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_string();
    let (text, path) = match event {
        NotifyEvent::ApprovalNeeded => (
            format!(
                "Plan {} has {} action(s) waiting for a person's approval (proposed by {}): roster approve {}",
                r.subject, d["waiting"], r.actor, r.subject
            ),
            format!("/plans/{}", r.subject),
        ),
        NotifyEvent::TaskAssigned => (
            format!(
                "Task {} opened: {} for {} in {}",
                r.subject,
                s("kind"),
                s("subject"),
                s("connection")
            ),
            format!("/tasks/{}", r.subject),
        ),
        NotifyEvent::TaskOverdue => (
            format!("Task {} is overdue", r.subject),
            format!("/tasks/{}", r.subject),
        ),
        NotifyEvent::TaskEscalated => (
            format!("Task {} was escalated past its deadline", r.subject),
            format!("/tasks/{}", r.subject),
        ),
        NotifyEvent::ConnectionPaused => (
            format!(
                "Writes to {} were paused by {}; plans still compute, nothing is changed there until `roster resume`",
                r.subject, r.actor
            ),
            format!("/connections/{}", r.subject),
        ),
        NotifyEvent::ConnectionQuarantined => (
            format!(
                "{} was quarantined after repeated failures; its writes stop until someone resumes it",
                r.subject
            ),
            format!("/connections/{}", r.subject),
        ),
        NotifyEvent::SessionsNotRevoked => (
            format!(
                "The sessions of {} in {} could NOT be revoked ({}); end them in the IdP by hand (task {})",
                s("email"),
                s("source"),
                s("error"),
                s("task")
            ),
            format!("/people/{}", r.subject),
        ),
        NotifyEvent::LeaverAccessOpen => (
            format!(
                "{} left {} hour(s) ago and still has {} open account(s) ({}); past the {}-hour SLA",
                r.subject,
                d["hours_since_leaving"],
                d["open"],
                d["connections"]
                    .as_array()
                    .map(|c| c
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default(),
                d["sla_hours"]
            ),
            format!("/people/{}", r.subject),
        ),
        NotifyEvent::ApprovalEscalated => (
            format!(
                "Plan {} has had {} action(s) waiting for approval for {} hour(s), past the {}-hour SLA: roster approve {}",
                r.subject, d["waiting"], d["hours_waiting"], d["sla_hours"], r.subject
            ),
            format!("/plans/{}", r.subject),
        ),
    };
    Message {
        event,
        seq: r.seq,
        at_ms: r.at_ms,
        text,
        link: base_url.map(|b| format!("{}{path}", b.trim_end_matches('/'))),
        actor: r.actor.clone(),
        subject: r.subject.clone(),
        data: r.data.clone(),
        connections: Vec::new(),
        recipients: Vec::new(),
    }
}

/// The signature header's value for `body` sent at `timestamp` (unix
/// seconds): `v1=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Why one send failed, and whether another attempt may succeed.
pub(crate) struct SendError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl Channel {
    pub(crate) async fn send(&self, m: &Message, now_s: i64) -> Result<(), SendError> {
        if let Some(mail) = &self.mail {
            let to = match self.route {
                Route::Owners if !m.recipients.is_empty() => {
                    m.recipients.iter().filter_map(|r| r.parse().ok()).collect()
                }
                _ => mail.to.clone(),
            };
            return send_mail(mail, &to, m).await;
        }
        let body = match self.kind {
            // Sent above: an email channel is built with its transport.
            ChannelKind::Email => Ok(Vec::new()),
            ChannelKind::Slack => {
                let text = match &m.link {
                    Some(l) => format!("{} <{l}|open>", m.text),
                    None => m.text.clone(),
                };
                serde_json::to_vec(&json!({ "text": text }))
            }
            ChannelKind::Webhook => serde_json::to_vec(&json!({
                "event": m.event.as_str(),
                "seq": m.seq,
                "at_ms": m.at_ms,
                "text": m.text,
                "link": m.link,
                "actor": m.actor,
                "subject": m.subject,
                "data": m.data,
                "connections": m.connections,
                "recipients": m.recipients,
            })),
        }
        .map_err(|e| SendError {
            message: format!("cannot encode the message: {e}"),
            retryable: false,
        })?;
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            req = req
                .header("X-Roster-Timestamp", now_s.to_string())
                .header("X-Roster-Event", m.event.as_str())
                .header("X-Roster-Signature", signature(secret, now_s, &body));
        }
        let resp = req.body(body).send().await.map_err(|e| SendError {
            // Without the URL: Slack's carries its credential.
            message: format!(
                "no answer: {}",
                if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                }
            ),
            retryable: true,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let answer: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        Err(SendError {
            message: format!("HTTP {}: {}", status.as_u16(), answer.trim()),
            retryable: status.is_server_error() || matches!(status.as_u16(), 408 | 429),
        })
    }
}

async fn send_mail(
    mail: &Mail,
    to: &[lettre::message::Mailbox],
    m: &Message,
) -> Result<(), SendError> {
    use lettre::AsyncTransport;
    let mut builder = lettre::Message::builder()
        .from(mail.from.clone())
        .subject(format!("[roster] {}", subject_line(m)));
    for to in to {
        builder = builder.to(to.clone());
    }
    let body = match &m.link {
        Some(l) => format!("{}\n\nOpen: {l}\n", m.text),
        None => format!("{}\n", m.text),
    };
    let email = builder
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| SendError {
            message: format!("cannot build the email: {e}"),
            retryable: false,
        })?;
    match mail.mailer.send(email).await {
        Ok(_) => Ok(()),
        Err(e) => Err(SendError {
            // A permanent SMTP answer (5xx) is final; anything else (4xx,
            // a broken connection, a timeout) may pass later.
            retryable: !e.is_permanent(),
            message: format!("SMTP: {e}"),
        }),
    }
}

/// The subject of an email: the event and what it is about.
fn subject_line(m: &Message) -> String {
    let what = match m.event {
        NotifyEvent::ApprovalNeeded => "approval needed",
        NotifyEvent::TaskAssigned => "task assigned",
        NotifyEvent::TaskOverdue => "task overdue",
        NotifyEvent::TaskEscalated => "task escalated",
        NotifyEvent::ConnectionPaused => "connection paused",
        NotifyEvent::ConnectionQuarantined => "connection quarantined",
        NotifyEvent::SessionsNotRevoked => "sessions NOT revoked",
        NotifyEvent::LeaverAccessOpen => "leaver's access still open",
        NotifyEvent::ApprovalEscalated => "approval overdue",
    };
    format!("{what}: {}", m.subject)
}

/// What one delivery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 style check through an independent HMAC: ring's, keyed
        // the same way, over the same bytes.
        let sig = signature("0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let want = hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(sig, format!("v1={}", hex::encode(want.as_ref())));
        assert_ne!(
            sig,
            signature("0123456789abcdeX", 1_700_000_000, b"{\"a\":1}")
        );
        assert_ne!(
            sig,
            signature("0123456789abcdef", 1_700_000_001, b"{\"a\":1}")
        );
    }

    #[test]
    fn every_event_name_parses_back() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(NotifyEvent::parse("approve"), None);
    }
}
