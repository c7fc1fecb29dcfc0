//! The delivery queue for signed audit checkpoints.
//!
//! The engine signs the chain head (sequence number and hash) and hands the
//! signed line to one or more witnesses outside the database. Each
//! (checkpoint, witness) pair is a row here until that witness has it, so a
//! witness that is down gets the checkpoints it missed, in order, once it
//! answers again. The store neither signs nor checks signatures: `body` is
//! opaque text.
//!
//! This table is a queue, not evidence. Whoever can rewrite the database
//! can rewrite it too; what protects the log is what witnesses already hold.

use crate::reader::Read as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::StoreError;

/// One queued or delivered checkpoint for one witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRow {
    pub id: i64,
    /// The witness's name (`file:/path`, `webhook:https://...`).
    pub witness: String,
    /// The chain head it signs.
    pub seq: u64,
    pub hash: String,
    /// When it was signed (unix ms).
    pub at_ms: i64,
    /// The signed line, exactly as the witness receives it.
    pub body: String,
    pub delivered_ms: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the first failed attempt to deliver this row happened.
    pub failing_since_ms: Option<i64>,
}

/// Where deliveries to one witness stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessState {
    /// The newest checkpoint the witness accepted: (seq, signed at ms).
    pub last_delivered: Option<(u64, i64)>,
    /// Checkpoints still waiting for it.
    pub pending: u64,
    /// Since when deliveries fail (the earliest failure among pending rows).
    pub failing_since_ms: Option<i64>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, witness, seq, hash, at_ms, body, delivered_ms, attempts, last_error, \
                       failing_since_ms";

fn decode(row: &AnyRow) -> Result<CheckpointRow, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    Ok(CheckpointRow {
        id: row.try_get("id")?,
        witness: row.try_get("witness")?,
        seq: u64::try_from(seq).map_err(|_| {
            StoreError::corrupt("audit_checkpoint", seq.to_string(), "negative seq")
        })?,
        hash: row.try_get("hash")?,
        at_ms: row.try_get("at_ms")?,
        body: row.try_get("body")?,
        delivered_ms: row.try_get("delivered_ms")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        failing_since_ms: row.try_get("failing_since_ms")?,
    })
}

impl Store {
    /// Queues one signed checkpoint for each of `witnesses`, in one
    /// transaction.
    pub async fn queue_checkpoint(
        &self,
        witnesses: &[String],
        seq: u64,
        hash: &str,
        at_ms: i64,
        body: &str,
    ) -> Result<(), StoreError> {
        let seq = i64::try_from(seq)
            .map_err(|_| StoreError::Invalid(format!("checkpoint seq {seq} out of range")))?;
        let mut tx = self.write.begin().await?;
        for w in witnesses {
            sqlx::query(
                "INSERT INTO audit_checkpoint (witness, seq, hash, at_ms, body, attempts) \
                 VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(w)
            .bind(seq)
            .bind(hash)
            .bind(at_ms)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest chain position queued for `witness` (delivered or not).
    pub async fn last_queued_checkpoint(&self, witness: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit_checkpoint WHERE witness = $1")
            .bind(witness)
            .read_one(self)
            .await?;
        Ok(row
            .try_get::<Option<i64>, _>("seq")?
            .and_then(|s| u64::try_from(s).ok()))
    }

    /// Checkpoints not yet delivered to `witness`, oldest first.
    pub async fn pending_checkpoints(
        &self,
        witness: &str,
    ) -> Result<Vec<CheckpointRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_checkpoint WHERE witness = $1 AND delivered_ms IS NULL \
             ORDER BY seq, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(witness)
            .read_all(self)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Checkpoints the witness accepted, oldest first.
    pub async fn delivered_checkpoints(
        &self,
        witness: &str,
    ) -> Result<Vec<CheckpointRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_checkpoint WHERE witness = $1 \
             AND delivered_ms IS NOT NULL ORDER BY seq, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(witness)
            .read_all(self)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Records that the witness accepted checkpoint `id` at `at_ms`.
    pub async fn checkpoint_delivered(&self, id: i64, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE audit_checkpoint SET delivered_ms = $1, attempts = attempts + 1, \
             last_error = NULL WHERE id = $2",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Records a failed delivery of checkpoint `id`.
    pub async fn checkpoint_failed(
        &self,
        id: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE audit_checkpoint SET attempts = attempts + 1, last_error = $1, \
             failing_since_ms = COALESCE(failing_since_ms, $2) WHERE id = $3",
        )
        .bind(error)
        .bind(at_ms)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Where deliveries to `witness` stand.
    pub async fn witness_state(&self, witness: &str) -> Result<WitnessState, StoreError> {
        let mut state = WitnessState::default();
        let last = sqlx::query(
            "SELECT seq, at_ms FROM audit_checkpoint WHERE witness = $1 \
             AND delivered_ms IS NOT NULL ORDER BY seq DESC, id DESC LIMIT 1",
        )
        .bind(witness)
        .read_optional(self)
        .await?;
        if let Some(row) = last {
            let seq: i64 = row.try_get("seq")?;
            state.last_delivered = Some((u64::try_from(seq).unwrap_or(0), row.try_get("at_ms")?));
        }
        let pending = self.pending_checkpoints(witness).await?;
        state.pending = pending.len() as u64;
        state.failing_since_ms = pending.iter().filter_map(|r| r.failing_since_ms).min();
        state.last_error = pending.iter().rev().find_map(|r| r.last_error.clone());
        Ok(state)
    }
}
