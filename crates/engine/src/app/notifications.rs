//! Notifications through the application layer: deliver what the audit
//! log says people must act on, and read the delivery log (see
//! [`crate::notify`]).

use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use roster_core::{ConnectionId, EmploymentStatus};
use roster_store::{AuditKind, NotifyDelivery};
use serde_json::json;

use super::Roster;
use crate::engine::{EngineError, ms};
use crate::notify::{ATTEMPTS, BATCH, Channel, Delivered, Message, NotifyEvent, message};

impl Roster {
    /// One delivery pass for every configured channel: the audit events
    /// after each channel's cursor that it routes, sent with retries and
    /// recorded. Nothing when no channel is configured.
    pub async fn deliver_notifications(&self) -> Result<Delivered, EngineError> {
        self.deliver_pass().await
    }

    /// The newest `limit` deliveries, newest first (`roster notify log`).
    pub async fn notification_log(&self, limit: usize) -> Result<Vec<NotifyDelivery>, EngineError> {
        Ok(self.engine().store.notify_deliveries(limit).await?)
    }
}

impl Roster {
    /// One pass over the audit log for every channel (module docs).
    pub(crate) async fn deliver_pass(&self) -> Result<Delivered, EngineError> {
        let engine = self.engine();
        let mut out = Delivered::default();
        let Some(notifier) = &engine.notifier else {
            return Ok(out);
        };
        // IdP group members, read at most once per pass when some
        // recipient names a group `[notify.groups]` does not list.
        let mut members = None;
        for channel in &notifier.channels {
            let mut cursor = match engine.store.notify_cursor(&channel.name).await? {
                Some(c) => c,
                None => {
                    // First run: from now on, not the history.
                    let (head, _) = engine.store.audit_head().await?;
                    engine.store.set_notify_cursor(&channel.name, head).await?;
                    continue;
                }
            };
            loop {
                let batch = engine.store.audit_after(cursor, BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                for r in &batch {
                    if let Some(event) = NotifyEvent::of(r).filter(|e| channel.events.contains(e)) {
                        let mut m = message(event, r, notifier.base_url.as_deref());
                        self.route(&mut m, &mut members).await?;
                        if !channel.takes(&m) {
                            cursor = r.seq;
                            engine
                                .store
                                .set_notify_cursor(&channel.name, cursor)
                                .await?;
                            continue;
                        }
                        if self.deliver_one(channel, &m).await? {
                            out.sent += 1;
                        } else {
                            out.failed += 1;
                        }
                    }
                    cursor = r.seq;
                    engine
                        .store
                        .set_notify_cursor(&channel.name, cursor)
                        .await?;
                }
                if batch.len() < BATCH {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Sends `m` to `channel` with retries; records the outcome. True
    /// when it was sent.
    async fn deliver_one(&self, channel: &Channel, m: &Message) -> Result<bool, EngineError> {
        let engine = self.engine();
        let mut attempts = 0;
        let mut delay = engine.notify_backoff;
        let error = loop {
            attempts += 1;
            match channel.send(m, ms(engine.now()) / 1000).await {
                Ok(()) => break None,
                Err(e) if e.retryable && attempts < ATTEMPTS => {
                    tracing::warn!(channel = %channel.name, attempt = attempts, error = %e.message, "notification not delivered; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                Err(e) => break Some(e.message),
            }
        };
        engine
            .store
            .record_notify_delivery(&NotifyDelivery {
                channel: channel.name.clone(),
                seq: m.seq,
                event: m.event.as_str().to_string(),
                status: if error.is_none() { "sent" } else { "failed" }.into(),
                attempts,
                last_error: error.clone(),
                at_ms: ms(engine.now()),
            })
            .await?;
        if let Some(e) = &error {
            tracing::error!(channel = %channel.name, event = m.event.as_str(), error = %e, "notification failed");
            engine.audit_as(
                "service:roster",
                AuditKind::NotifyFailed,
                &channel.name,
                json!({ "event": m.event.as_str(), "seq": m.seq, "attempts": attempts, "error": e }),
            )
            .await?;
        }
        Ok(error.is_none())
    }
}

/// People by IdP group (active people only), for `group:NAME` recipients
/// `[notify.groups]` does not list.
type GroupMembers = BTreeMap<String, Vec<String>>;

/// What one [`Roster::notify_sweep`] raised.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Leavers whose access is open past the SLA, raised now.
    pub leavers: usize,
    /// Plans whose approval waited past the SLA, escalated now.
    pub approvals: usize,
}

/// How many recent plans the approval sweep looks at.
const SWEPT_PLANS: usize = 50;

impl Roster {
    /// Who `m` is about and for (module docs of [`crate::notify`]): the
    /// connections it concerns and, resolved to addresses, their owners,
    /// or for an escalation its fallback.
    async fn route(
        &self,
        m: &mut crate::notify::Message,
        members: &mut Option<GroupMembers>,
    ) -> Result<(), EngineError> {
        use crate::notify::NotifyEvent as E;
        let engine = self.engine();
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let connections: Vec<String> = match m.event {
            E::TaskAssigned => m.data["connection"]
                .as_str()
                .map(String::from)
                .into_iter()
                .collect(),
            E::TaskOverdue | E::TaskEscalated => engine
                .store
                .human_task(&m.subject)
                .await?
                .map(|t| t.connection)
                .into_iter()
                .collect(),
            E::ApprovalNeeded => self.waiting_connections(&m.subject).await?,
            E::ApprovalEscalated | E::LeaverAccessOpen => strings(&m.data["connections"]),
            E::ConnectionPaused | E::ConnectionQuarantined => vec![m.subject.clone()],
            E::SessionsNotRevoked => Vec::new(),
        };
        let wanted: Vec<String> = match m.event {
            E::TaskEscalated => connections
                .iter()
                .filter_map(|c| engine.bindings.get(&ConnectionId::new(c.as_str())))
                .filter_map(|b| b.escalate_to.clone())
                .collect(),
            E::ApprovalEscalated => engine
                .notifier
                .as_ref()
                .map(|n| n.approval_escalate_to.clone())
                .unwrap_or_default(),
            _ => connections
                .iter()
                .filter_map(|c| engine.bindings.get(&ConnectionId::new(c.as_str())))
                .flat_map(|b| b.owners.clone())
                .collect(),
        };
        let mut recipients = BTreeSet::new();
        for who in wanted {
            for address in self.resolve_recipient(&who, members).await? {
                recipients.insert(address);
            }
        }
        m.connections = connections;
        m.recipients = recipients.into_iter().collect();
        Ok(())
    }

    /// An address as it is; `group:NAME` (or a bare team name) as the
    /// addresses `[notify.groups]` lists, else as the active people the
    /// sources put in that group.
    async fn resolve_recipient(
        &self,
        who: &str,
        members: &mut Option<GroupMembers>,
    ) -> Result<Vec<String>, EngineError> {
        let who = who.trim();
        if who.contains('@') && !who.starts_with("group:") {
            return Ok(vec![who.to_lowercase()]);
        }
        let group = who.strip_prefix("group:").unwrap_or(who).trim();
        if let Some(listed) = self
            .engine()
            .notifier
            .as_ref()
            .and_then(|n| n.groups.get(group))
        {
            return Ok(listed.iter().map(|a| a.to_lowercase()).collect());
        }
        if members.is_none() {
            let mut by_group = GroupMembers::new();
            for p in self.engine().store.people().await? {
                if p.status == EmploymentStatus::Terminated {
                    continue;
                }
                for g in &p.groups {
                    by_group
                        .entry(g.clone())
                        .or_default()
                        .push(p.email.normalized());
                }
            }
            *members = Some(by_group);
        }
        Ok(members
            .as_ref()
            .and_then(|m| m.get(group))
            .cloned()
            .unwrap_or_default())
    }

    /// The connections of a plan's actions still waiting for approval.
    async fn waiting_connections(&self, plan_id: &str) -> Result<Vec<String>, EngineError> {
        let id = roster_store::PlanId::new(plan_id);
        let engine = self.engine();
        let Some(stored) = engine.store.plan(&id).await? else {
            return Ok(Vec::new());
        };
        let waiting = engine.approval_status(&id).await?.waiting;
        let set: BTreeSet<String> = waiting
            .keys()
            .filter_map(|i| stored.plan.actions.get(*i))
            .map(|a| a.connection.as_str().to_string())
            .collect();
        Ok(set.into_iter().collect())
    }

    /// Raises what has waited too long, as audit events the channels
    /// deliver: leavers whose access is still open past `leaver_sla_hours`
    /// (once per person per SLA period; only when `leavers` is set, as it
    /// computes the leavers report) and plans whose actions have waited
    /// for approval past `approval_sla_hours` (once per plan). Nothing
    /// without `[notify]` channels.
    pub async fn notify_sweep(&self, leavers: bool) -> Result<Swept, EngineError> {
        let engine = self.engine();
        let mut out = Swept::default();
        let Some(notifier) = engine.notifier.as_ref().filter(|n| !n.is_empty()) else {
            return Ok(out);
        };
        let now = ms(engine.now());
        let leaver_sla = i64::try_from(notifier.leaver_sla.as_millis()).unwrap_or(i64::MAX);
        let approval_sla = i64::try_from(notifier.approval_sla.as_millis()).unwrap_or(i64::MAX);
        let raised_since = |kind: AuditKind, records: &[roster_store::AuditRecord], since: i64| {
            records
                .iter()
                .any(|r| r.kind == kind.as_str() && r.at_ms >= since)
        };

        if leavers {
            for l in self.leavers_report().await?.leavers {
                let Some(left) = l.terminated_ms else {
                    continue;
                };
                let open: Vec<String> = l
                    .accounts
                    .iter()
                    .filter(|a| a.present && a.closed_at_ms.is_none())
                    .map(|a| a.connection.as_str().to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if open.is_empty() || now - left < leaver_sla {
                    continue;
                }
                let subject = l.person.email.normalized();
                let recent = engine
                    .store
                    .audit_mentioning(
                        &[
                            subject.clone(),
                            l.person.employee_id.as_str().to_lowercase(),
                        ],
                        now - leaver_sla,
                        50,
                    )
                    .await?;
                if raised_since(AuditKind::LeaverAccessOverdue, &recent, now - leaver_sla) {
                    continue;
                }
                engine
                    .audit_as(
                        "service:roster",
                        AuditKind::LeaverAccessOverdue,
                        &subject,
                        json!({
                            "employee_id": l.person.employee_id.as_str(),
                            "open": l.open,
                            "connections": open,
                            "hours_since_leaving": (now - left) / 3_600_000,
                            "sla_hours": leaver_sla / 3_600_000,
                        }),
                    )
                    .await?;
                out.leavers += 1;
            }
        }

        for (id, _) in engine.store.recent_plan_ids(SWEPT_PLANS).await? {
            let Some(stored) = engine.store.plan(&id).await? else {
                continue;
            };
            if now - stored.created_ms < approval_sla {
                continue;
            }
            let waiting = engine.approval_status(&id).await?.waiting;
            if waiting.is_empty() {
                continue;
            }
            // Only actions that could still run wait for anyone.
            let states = engine
                .store
                .states_of_actions(&id, &waiting.keys().copied().collect::<Vec<_>>())
                .await?;
            let still: Vec<usize> = states
                .iter()
                .filter(|(_, s)| *s == roster_store::ActionState::Pending)
                .map(|(i, _)| *i)
                .collect();
            if still.is_empty() {
                continue;
            }
            let recent = engine
                .store
                .audit_mentioning(&[id.as_str().to_lowercase()], 0, 50)
                .await?;
            if raised_since(AuditKind::PlanApprovalEscalated, &recent, 0) {
                continue;
            }
            let connections: BTreeSet<String> = still
                .iter()
                .filter_map(|i| stored.plan.actions.get(*i))
                .map(|a| a.connection.as_str().to_string())
                .collect();
            engine
                .audit_as(
                    "service:roster",
                    AuditKind::PlanApprovalEscalated,
                    id.as_str(),
                    json!({
                        "waiting": still.len(),
                        "connections": connections,
                        "hours_waiting": (now - stored.created_ms) / 3_600_000,
                        "sla_hours": approval_sla / 3_600_000,
                    }),
                )
                .await?;
            out.approvals += 1;
        }
        Ok(out)
    }
}
