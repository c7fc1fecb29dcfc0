//! Notifications through the application layer: deliver what the audit
//! log says people must act on, and read the delivery log (see
//! [`crate::notify`]).

use roster_store::NotifyDelivery;

use super::Roster;
use crate::engine::EngineError;
use crate::notify::Delivered;

impl Roster {
    /// One delivery pass for every configured channel: the audit events
    /// after each channel's cursor that it routes, sent with retries and
    /// recorded. Nothing when no channel is configured.
    pub async fn deliver_notifications(&self) -> Result<Delivered, EngineError> {
        self.engine().deliver_notifications().await
    }

    /// The newest `limit` deliveries, newest first (`roster notify log`).
    pub async fn notification_log(&self, limit: usize) -> Result<Vec<NotifyDelivery>, EngineError> {
        Ok(self.engine().store.notify_deliveries(limit).await?)
    }
}
