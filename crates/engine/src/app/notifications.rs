//! Notifications through the application layer: deliver what the audit
//! log says people must act on, and read the delivery log (see
//! [`crate::notify`]).

use std::time::Duration;

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
                        let m = message(event, r, notifier.base_url.as_deref());
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
