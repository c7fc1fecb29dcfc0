//! Shared rate budgets and the kill switch: the store's part in keeping
//! every process that talks to an app within the app's limits, and in
//! stopping writes when a person says so.
//!
//! # Rate budgets
//!
//! An app counts the requests made with a credential, whichever process
//! sent them. So the record of a connection's recent requests lives here,
//! and taking a turn ([`Store::take_rate_turn`]) is one transaction that
//! locks the connection's `rate_budget` row, reads the recent requests and
//! the hold, lets the caller's rule decide, and records the request if it
//! may go. The lock is the upsert that starts the transaction: on
//! PostgreSQL it takes the row lock (like `SELECT ... FOR UPDATE`, and it
//! creates the row the first time); on SQLite a write as the first
//! statement takes the database's write lock before anything is read, so
//! no other process can slip a request in between the check and the
//! record. The rule itself (sliding windows) is the caller's: the store
//! holds no business rules.
//!
//! # The kill switch
//!
//! [`Store::pause_writes`] records who stopped writes, for one connection
//! or for all (`scope` `*`). [`Store::claim_tasks`] skips paused
//! connections in every process, exactly as it skips quarantined ones, so
//! batches already claimed finish and nothing new starts. A pause is a
//! person's decision and is lifted only by a person
//! ([`Store::resume_writes`]); a quarantine is roster's own decision after
//! failures (see [`crate::tasks`]). The two are kept apart so lifting one
//! never lifts the other.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use roster_core::ConnectionId;

use crate::{Store, StoreError};

/// The `scope` of a pause that stops every connection.
pub const ALL_CONNECTIONS: &str = "*";

/// A person's stop on writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// The connection, or `None` for every connection.
    pub connection: Option<ConnectionId>,
    pub actor: String,
    pub reason: Option<String>,
    pub paused_ms: i64,
}

impl PauseRecord {
    /// `expensify` or `all connections`, for messages.
    pub fn scope_label(&self) -> String {
        match &self.connection {
            Some(c) => c.to_string(),
            None => "all connections".to_string(),
        }
    }
}

fn scope_of(connection: Option<&ConnectionId>) -> String {
    connection.map_or_else(|| ALL_CONNECTIONS.to_string(), |c| c.as_str().to_string())
}

impl Store {
    /// Takes a turn for `connection` if `decide` allows it, atomically for
    /// every process sharing this database.
    ///
    /// In one transaction: requests older than `now - keep_ms` are
    /// pruned, `decide(recent request times, hold, now)` is asked when the
    /// next request may go, and when that is not later than `now` the
    /// request is recorded at `now`, the time `now()` gave once the
    /// connection's row was locked. Returns `None` when the caller may send
    /// now, else the instant (ms) to try again at.
    pub async fn take_rate_turn<C, F>(
        &self,
        connection: &ConnectionId,
        keep_ms: i64,
        now: C,
        decide: F,
    ) -> Result<Option<i64>, StoreError>
    where
        C: FnOnce() -> i64 + Send,
        F: FnOnce(&[i64], Option<i64>, i64) -> i64 + Send,
    {
        let id = connection.as_str().to_string();
        let mut tx = self.write.begin().await?;
        // The lock (see the module docs). `not_before_ms` is set to itself:
        // a write that changes nothing but holds the row.
        let hold: i64 = sqlx::query(
            "INSERT INTO rate_budget (connection, not_before_ms) VALUES ($1, 0) \
             ON CONFLICT (connection) DO UPDATE SET not_before_ms = rate_budget.not_before_ms \
             RETURNING not_before_ms",
        )
        .bind(id.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("not_before_ms")?;
        // The clock is read only now, with the row locked: a turn recorded
        // with a time from before a wait (for a pooled connection, for the
        // lock, for a database that was away) would say the request went
        // earlier than it goes, and the others would count the window from
        // there.
        let now_ms = now();
        sqlx::query("DELETE FROM rate_request WHERE connection = $1 AND at_ms < $2")
            .bind(id.clone())
            .bind(now_ms.saturating_sub(keep_ms))
            .execute(&mut *tx)
            .await?;
        let sent: Vec<i64> =
            sqlx::query("SELECT at_ms FROM rate_request WHERE connection = $1 ORDER BY at_ms")
                .bind(id.clone())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>("at_ms"))
                .collect::<Result<_, _>>()?;
        let at = decide(&sent, (hold > now_ms).then_some(hold), now_ms);
        if at > now_ms {
            tx.commit().await?;
            return Ok(Some(at));
        }
        sqlx::query("INSERT INTO rate_request (connection, at_ms) VALUES ($1, $2)")
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    /// Holds every turn of `connection` back until `until_ms` (a later
    /// hold already in place stays).
    pub async fn hold_rate_budget(
        &self,
        connection: &ConnectionId,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rate_budget (connection, not_before_ms) VALUES ($1, $2) \
             ON CONFLICT (connection) DO UPDATE SET not_before_ms = \
             CASE WHEN excluded.not_before_ms > rate_budget.not_before_ms \
             THEN excluded.not_before_ms ELSE rate_budget.not_before_ms END",
        )
        .bind(connection.as_str().to_string())
        .bind(until_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// How many requests of `connection` are recorded at or after
    /// `since_ms` (for reports and tests).
    pub async fn rate_requests_since(
        &self,
        connection: &ConnectionId,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM rate_request WHERE connection = $1 AND at_ms >= $2",
        )
        .bind(connection.as_str().to_string())
        .bind(since_ms)
        .fetch_one(&self.write)
        .await?
        .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Stops writes to `connection` (`None`: every connection) until
    /// [`Store::resume_writes`]. Pausing again replaces the actor and
    /// reason. Returns false if that scope was already paused.
    pub async fn pause_writes(
        &self,
        connection: Option<&ConnectionId>,
        actor: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let scope = scope_of(connection);
        let mut tx = self.write.begin().await?;
        let existed = sqlx::query("SELECT 1 AS one FROM connection_pause WHERE scope = $1")
            .bind(scope.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO connection_pause (scope, actor, reason, paused_ms) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope) DO UPDATE SET actor = excluded.actor, \
             reason = excluded.reason, paused_ms = excluded.paused_ms",
        )
        .bind(scope)
        .bind(actor.to_string())
        .bind(reason.map(str::to_string))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    /// Lifts the pause of `connection` (`None`: the pause of every
    /// connection; pauses of single connections stay). Returns false if
    /// that scope was not paused. Waiting tasks become due at once.
    pub async fn resume_writes(
        &self,
        connection: Option<&ConnectionId>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("DELETE FROM connection_pause WHERE scope = $1")
            .bind(scope_of(connection))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Retries that came due during the pause run now, not after their
        // original backoff.
        let q = match connection {
            Some(c) => sqlx::query(
                "UPDATE task SET run_at_ms = $1, updated_ms = $1 \
                 WHERE connection = $2 AND state IN ('ready', 'retry_wait') AND run_at_ms > $1",
            )
            .bind(now_ms)
            .bind(c.as_str().to_string()),
            None => sqlx::query(
                "UPDATE task SET run_at_ms = $1, updated_ms = $1 \
                 WHERE state IN ('ready', 'retry_wait') AND run_at_ms > $1",
            )
            .bind(now_ms),
        };
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every pause in force: the all-connections one first, then by
    /// connection.
    pub async fn pauses(&self) -> Result<Vec<PauseRecord>, StoreError> {
        let rows = sqlx::query("SELECT scope, actor, reason, paused_ms FROM connection_pause")
            .fetch_all(&self.write)
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let scope: String = r.try_get("scope")?;
                Ok(PauseRecord {
                    connection: (scope != ALL_CONNECTIONS).then(|| ConnectionId::new(scope)),
                    actor: r.try_get("actor")?,
                    reason: r.try_get("reason")?,
                    paused_ms: r.try_get("paused_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.connection.cmp(&b.connection));
        Ok(out)
    }

    /// The pause that stops writes to `connection`, if any: its own, else
    /// the all-connections one.
    pub async fn pause_of(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<PauseRecord>, StoreError> {
        let pauses = self.pauses().await?;
        let own = pauses
            .iter()
            .find(|p| p.connection.as_ref() == Some(connection));
        Ok(own
            .or_else(|| pauses.iter().find(|p| p.connection.is_none()))
            .cloned())
    }
}
