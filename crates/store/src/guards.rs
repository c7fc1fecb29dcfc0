//! What the safety guards remember between runs (`roster_core::guard`):
//! the last accepted size of each people source, and which connections an
//! applied plan has covered.
//!
//! The store only records; the rules (when a source change is an
//! incomplete read, what a first plan holds) live in `roster-core`.

use crate::reader::Read as _;
use std::collections::BTreeSet;

use sqlx::Row;

use roster_core::ConnectionId;
use roster_core::guard::SourceCounts;

use crate::{Store, StoreError};

/// The accepted snapshot of one people source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceBaseline {
    pub source: String,
    pub counts: SourceCounts,
    pub accepted_ms: i64,
    /// Who accepted it: `roster` for an import within the limits, or the
    /// person who confirmed a source change.
    pub accepted_by: String,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uncount(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

impl Store {
    /// The accepted snapshot size of `source`, if one was ever accepted.
    pub async fn source_baseline(
        &self,
        source: &str,
    ) -> Result<Option<SourceBaseline>, StoreError> {
        let row = sqlx::query(
            "SELECT source, people, terminated, accepted_ms, accepted_by \
             FROM source_baseline WHERE source = $1",
        )
        .bind(source.to_string())
        .read_optional(self)
        .await?;
        row.map(|r| {
            Ok(SourceBaseline {
                source: r.try_get("source")?,
                counts: SourceCounts {
                    people: uncount(r.try_get("people")?),
                    terminated: uncount(r.try_get("terminated")?),
                },
                accepted_ms: r.try_get("accepted_ms")?,
                accepted_by: r.try_get("accepted_by")?,
            })
        })
        .transpose()
    }

    /// Records `counts` as the accepted snapshot size of `source`.
    pub async fn accept_source(
        &self,
        source: &str,
        counts: SourceCounts,
        accepted_ms: i64,
        accepted_by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO source_baseline (source, people, terminated, accepted_ms, accepted_by) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (source) DO UPDATE SET people = excluded.people, \
             terminated = excluded.terminated, accepted_ms = excluded.accepted_ms, \
             accepted_by = excluded.accepted_by",
        )
        .bind(source.to_string())
        .bind(count(counts.people))
        .bind(count(counts.terminated))
        .bind(accepted_ms)
        .bind(accepted_by.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// How many people the snapshot holds, and how many of them count as
    /// terminated on `today` (the company's local date): those whose end
    /// date is before it, and those the source calls terminated without an
    /// end date (one whose end date is still ahead keeps access until it
    /// passes). The same rule as [`SourceCounts::as_of`], so an import and
    /// a later plan judge alike.
    pub async fn people_counts(&self, today: time::Date) -> Result<SourceCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, \
             COALESCE(SUM(CASE WHEN (end_date IS NOT NULL AND end_date < $1) \
                 OR (end_date IS NULL AND status = 'terminated') THEN 1 ELSE 0 END), 0) AS t \
             FROM person",
        )
        .bind(crate::people::iso_date(today))
        .read_one(self)
        .await?;
        Ok(SourceCounts {
            people: uncount(row.try_get("n")?),
            terminated: uncount(row.try_get("t")?),
        })
    }

    /// The connections some applied plan has covered.
    pub async fn applied_connections(&self) -> Result<BTreeSet<ConnectionId>, StoreError> {
        let rows = sqlx::query("SELECT connection FROM connection_applied")
            .read_all(self)
            .await?;
        rows.iter()
            .map(|r| Ok(ConnectionId::new(r.try_get::<String, _>("connection")?)))
            .collect()
    }

    /// Records that an applied plan covered these connections. The first
    /// plan to do so is kept.
    pub async fn mark_connections_applied(
        &self,
        connections: &[ConnectionId],
        plan_id: &str,
        applied_ms: i64,
    ) -> Result<(), StoreError> {
        if connections.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for c in connections {
            sqlx::query(
                "INSERT INTO connection_applied (connection, plan_id, applied_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT (connection) DO NOTHING",
            )
            .bind(c.as_str().to_string())
            .bind(plan_id.to_string())
            .bind(applied_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
