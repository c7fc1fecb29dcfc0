//! Where each identity provider's incremental read resumes (migration
//! 0013): the source's opaque cursor, when it was stored, and when the last
//! complete full read of the source finished.
//!
//! The store only records. Whether a cursor is still good enough to read
//! changes from (its age, the periodic full read) is the engine's rule
//! (`roster_engine::sources`).

use crate::reader::Read as _;
use sqlx::Row;

use crate::{Store, StoreError};

/// The stored position of one source's incremental read.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceCursor {
    /// The source (`source.<name>`).
    pub source: String,
    /// The source's opaque cursor; only it may interpret the text.
    pub cursor: String,
    /// When the cursor was stored (unix ms).
    pub taken_ms: i64,
    /// When the last complete full read of the source finished (unix ms).
    pub full_read_ms: i64,
}

impl std::fmt::Debug for SourceCursor {
    // A Graph deltaLink carries a token; it grants nothing without the
    // credential, but logs have no use for it whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCursor")
            .field("source", &self.source)
            .field("cursor_len", &self.cursor.len())
            .field("taken_ms", &self.taken_ms)
            .field("full_read_ms", &self.full_read_ms)
            .finish()
    }
}

impl Store {
    /// The stored cursor of `source`, if a full read ever stored one.
    pub async fn source_cursor(&self, source: &str) -> Result<Option<SourceCursor>, StoreError> {
        let row = sqlx::query(
            "SELECT source, cursor, taken_ms, full_read_ms FROM source_cursor WHERE source = $1",
        )
        .bind(source.to_string())
        .read_optional(self)
        .await?;
        row.map(|r| {
            Ok(SourceCursor {
                source: r.try_get("source")?,
                cursor: r.try_get("cursor")?,
                taken_ms: r.try_get("taken_ms")?,
                full_read_ms: r.try_get("full_read_ms")?,
            })
        })
        .transpose()
    }

    /// Records a complete full read of `source` that finished at `at_ms`
    /// and the cursor it yielded (taken before its listing).
    pub async fn record_full_read(
        &self,
        source: &str,
        cursor: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO source_cursor (source, cursor, taken_ms, full_read_ms) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, \
             taken_ms = excluded.taken_ms, full_read_ms = excluded.full_read_ms",
        )
        .bind(source.to_string())
        .bind(cursor.to_string())
        .bind(at_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Moves `source`'s cursor on after an incremental read, keeping when
    /// its last full read was. Returns false (and stores nothing) when the
    /// source has no cursor: only a full read starts one.
    pub async fn advance_source_cursor(
        &self,
        source: &str,
        cursor: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE source_cursor SET cursor = $2, taken_ms = $3 WHERE source = $1")
                .bind(source.to_string())
                .bind(cursor.to_string())
                .bind(at_ms)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets `source`'s cursor (it expired, or the source was read in a
    /// way that cannot continue it): the next read is a full one.
    pub async fn forget_source_cursor(&self, source: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM source_cursor WHERE source = $1")
            .bind(source.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
