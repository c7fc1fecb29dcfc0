//! Notifications' bookkeeping (migration 0019): where each channel is in
//! the audit log, and the delivery log.
//!
//! The store only records. Which audit events a channel routes, what the
//! message says and how it is sent are the engine's
//! (`roster_engine::notify`).

use crate::reader::Read as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AuditRecord, Store, StoreError};

/// One delivery attempt's outcome, as the delivery log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NotifyDelivery {
    pub channel: String,
    /// The audit event it was about.
    pub seq: u64,
    /// The notification event (`approval_needed`, ...).
    pub event: String,
    /// `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// Why the last attempt failed (an HTTP status and the receiver's
    /// short answer; never a secret).
    pub last_error: Option<String>,
    pub at_ms: i64,
}

impl Store {
    /// The last audit event `channel` dealt with; `None` before its first
    /// run.
    pub async fn notify_cursor(&self, channel: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT seq FROM notify_cursor WHERE channel = $1")
            .bind(channel.to_string())
            .read_optional(self)
            .await?;
        row.map(|r| {
            let seq: i64 = r.try_get("seq")?;
            u64::try_from(seq)
                .map_err(|_| StoreError::corrupt("notify_cursor", channel, "negative seq"))
        })
        .transpose()
    }

    /// Moves `channel`'s cursor to `seq`.
    pub async fn set_notify_cursor(&self, channel: &str, seq: u64) -> Result<(), StoreError> {
        let seq = i64::try_from(seq)
            .map_err(|_| StoreError::Invalid(format!("audit seq {seq} out of range")))?;
        sqlx::query(
            "INSERT INTO notify_cursor (channel, seq) VALUES ($1, $2) \
             ON CONFLICT (channel) DO UPDATE SET seq = excluded.seq",
        )
        .bind(channel.to_string())
        .bind(seq)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Records (or replaces) the outcome of delivering audit event `seq`
    /// to `d.channel`.
    pub async fn record_notify_delivery(&self, d: &NotifyDelivery) -> Result<(), StoreError> {
        let seq = i64::try_from(d.seq)
            .map_err(|_| StoreError::Invalid(format!("audit seq {} out of range", d.seq)))?;
        sqlx::query(
            "INSERT INTO notify_delivery (channel, seq, event, status, attempts, last_error, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (channel, seq) DO UPDATE SET status = excluded.status, \
             attempts = excluded.attempts, last_error = excluded.last_error, at_ms = excluded.at_ms",
        )
        .bind(d.channel.clone())
        .bind(seq)
        .bind(d.event.clone())
        .bind(d.status.clone())
        .bind(i64::from(d.attempts))
        .bind(d.last_error.clone())
        .bind(d.at_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The newest `limit` deliveries, newest first.
    pub async fn notify_deliveries(&self, limit: usize) -> Result<Vec<NotifyDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, seq, event, status, attempts, last_error, at_ms FROM notify_delivery \
             ORDER BY at_ms DESC, seq DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .read_all(self)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Audit events after `seq`, in order, at most `limit`.
    pub async fn audit_after(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, kind, subject, data, prev_hash, hash, hash_version, \
             data_hash, data_salt FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .read_all(self)
        .await?;
        rows.iter().map(crate::audit::decode_record).collect()
    }
}

fn decode(row: &AnyRow) -> Result<NotifyDelivery, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(NotifyDelivery {
        channel: row.try_get("channel")?,
        seq: u64::try_from(seq).unwrap_or_default(),
        event: row.try_get("event")?,
        status: row.try_get("status")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: row.try_get("last_error")?,
        at_ms: row.try_get("at_ms")?,
    })
}
