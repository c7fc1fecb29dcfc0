//! Health probes for the operations endpoints (`/readyz`, `/metrics`).
//!
//! Two cheap reads, neither of which loads rows: [`Store::ping`] (the
//! database answers at all) and [`Store::queue_depth`] (how many durable
//! tasks are not yet final, and since when the oldest has waited). The
//! schema version is [`Store::schema_version`].

use crate::reader::Read as _;
use sqlx::Row;

use crate::{Store, StoreError};

/// The durable task queue as a whole: tasks not yet final (`ready`,
/// `retry_wait`, `running`) across every connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub open: u64,
    /// When the oldest open task was enqueued (ms since the Unix epoch).
    pub oldest_created_ms: Option<i64>,
}

impl Store {
    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").read_one(self).await?;
        Ok(())
    }

    /// The open tasks of the durable queue and the age of the oldest (one
    /// aggregate over the `task_lease` index's leading `state` column).
    pub async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_ms) AS oldest FROM task \
             WHERE state IN ('ready', 'retry_wait', 'running')",
        )
        .read_one(self)
        .await?;
        Ok(QueueDepth {
            open: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
            oldest_created_ms: row.try_get::<Option<i64>, _>("oldest")?,
        })
    }
}
