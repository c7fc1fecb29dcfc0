//! Connections: the configured instances of apps (`expensify`,
//! `expensify-eu`, ...), their settings as JSON text, and a status the
//! engine maintains (for example `ok`, `error`, `disabled`) with the reason
//! for it.
//!
//! Settings are stored as the caller serialized them. Secrets do not belong
//! here in clear text; the caller encrypts them before they reach the store.

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

impl Store {
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
                .fetch_all(&self.read)
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
        .fetch_optional(&self.read)
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
