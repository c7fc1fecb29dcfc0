//! Connections: the configured instances of apps (`expensify`,
//! `expensify-eu`, ...), their settings as JSON text, and a status the
//! engine maintains (for example `ok`, `error`, `disabled`) with the reason
//! for it.
//!
//! Settings are stored as the caller serialized them. Secrets do not belong
//! here in clear text; the caller encrypts them before they reach the store.
//!
//! Each connection's last read is recorded too ([`ReadHealth`]): whether it
//! was complete, incomplete or failed, and how many reads in a row failed,
//! so `roster connections list` reports a refused credential as unhealthy
//! and the engine can quarantine a connection whose reads keep failing.

use crate::reader::Read as _;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use roster_core::ConnectionId;

use crate::{Store, StoreError};

/// One configured connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    /// The catalog app this connection is an instance of.
    pub app: String,
    /// The connection's settings as JSON text.
    pub settings_json: String,
    pub status: String,
    /// Why the status is what it is (set by [`Store::set_connection_status`]).
    #[serde(default)]
    pub status_reason: Option<String>,
}

impl ConnectionRecord {
    /// A record with no status reason.
    pub fn new(
        id: ConnectionId,
        app: impl Into<String>,
        settings_json: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        ConnectionRecord {
            id,
            app: app.into(),
            settings_json: settings_json.into(),
            status: status.into(),
            status_reason: None,
        }
    }
}

/// How a read of a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadStatus {
    /// Every account was read.
    Ok,
    /// Some accounts may be missing (a failed page, a short listing).
    Incomplete,
    /// Nothing usable was read (refused credentials, unreachable app).
    Failed,
}

impl ReadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadStatus::Ok => "ok",
            ReadStatus::Incomplete => "incomplete",
            ReadStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ReadStatus> {
        [ReadStatus::Ok, ReadStatus::Incomplete, ReadStatus::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// The outcome of a connection's last read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadHealth {
    pub connection: ConnectionId,
    pub at_ms: i64,
    pub status: ReadStatus,
    /// Why it was incomplete or failed.
    pub detail: Option<String>,
    /// Failed reads since the last one that did not fail.
    pub failures_in_a_row: u32,
}

impl Store {
    /// Records the outcome of a read of `connection` and returns how many
    /// reads of it have now failed in a row (0 unless `status` is
    /// [`ReadStatus::Failed`]).
    pub async fn record_read(
        &self,
        connection: &ConnectionId,
        status: ReadStatus,
        detail: Option<&str>,
        at_ms: i64,
    ) -> Result<u32, StoreError> {
        let failed = i64::from(status == ReadStatus::Failed);
        let row = sqlx::query(
            "INSERT INTO read_health (connection, at_ms, outcome, detail, failures_in_a_row) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (connection) DO UPDATE SET at_ms = excluded.at_ms, \
             outcome = excluded.outcome, detail = excluded.detail, \
             failures_in_a_row = CASE WHEN excluded.failures_in_a_row > 0 \
             THEN read_health.failures_in_a_row + 1 ELSE 0 END \
             RETURNING failures_in_a_row",
        )
        .bind(connection.as_str().to_string())
        .bind(at_ms)
        .bind(status.as_str().to_string())
        .bind(detail.map(str::to_string))
        .bind(failed)
        .fetch_one(&self.write)
        .await?;
        let n: i64 = row.try_get("failures_in_a_row")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The last read of every connection that was ever read, by ID.
    pub async fn read_health(&self) -> Result<Vec<ReadHealth>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, at_ms, outcome, detail, failures_in_a_row FROM read_health",
        )
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let connection: String = row.try_get("connection")?;
            let outcome: String = row.try_get("outcome")?;
            let status = ReadStatus::parse(&outcome).ok_or_else(|| {
                StoreError::corrupt(
                    "read_health",
                    connection.clone(),
                    format!("unknown outcome {outcome:?}"),
                )
            })?;
            out.push(ReadHealth {
                connection: ConnectionId::new(connection),
                at_ms: row.try_get("at_ms")?,
                status,
                detail: row.try_get("detail")?,
                failures_in_a_row: u32::try_from(row.try_get::<i64, _>("failures_in_a_row")?)
                    .unwrap_or(u32::MAX),
            });
        }
        out.sort_by(|a, b| a.connection.cmp(&b.connection));
        Ok(out)
    }

    /// Creates the connection or replaces every field of an existing one.
    pub async fn upsert_connection(&self, record: ConnectionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connection (id, app, settings_json, status, status_reason) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET app = excluded.app, \
             settings_json = excluded.settings_json, status = excluded.status, \
             status_reason = excluded.status_reason",
        )
        .bind(record.id.as_str().to_string())
        .bind(record.app)
        .bind(record.settings_json)
        .bind(record.status)
        .bind(record.status_reason)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every connection, ordered by ID.
    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT id, app, settings_json, status, status_reason FROM connection")
                .read_all(self)
                .await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not in SQL, so both engines give the same order.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// One connection.
    pub async fn connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, app, settings_json, status, status_reason FROM connection WHERE id = $1",
        )
        .bind(id.as_str().to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Sets a connection's status and the reason for it.
    /// [`StoreError::NotFound`] if there is no such connection.
    pub async fn set_connection_status(
        &self,
        id: &ConnectionId,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE connection SET status = $1, status_reason = $2 WHERE id = $3")
                .bind(status.to_string())
                .bind(reason.map(str::to_string))
                .bind(id.as_str().to_string())
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "connection",
                key: id.to_string(),
            });
        }
        Ok(())
    }
}

fn decode(row: &AnyRow) -> Result<ConnectionRecord, StoreError> {
    Ok(ConnectionRecord {
        id: ConnectionId::new(row.try_get::<String, _>("id")?),
        app: row.try_get("app")?,
        settings_json: row.try_get("settings_json")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
    })
}
