//! Leadership by leases with fencing tokens, and the shared schedule.
//!
//! Several roster processes (`roster serve`, `roster run`, `roster worker`)
//! may share one PostgreSQL database. The task queue needs no leader
//! (claims use `FOR UPDATE SKIP LOCKED`), but some jobs must run in one
//! process at a time: starting a full reconciliation, polling the sources,
//! delivering notifications, checkpointing the audit log. Those belong to
//! whoever holds a **lease**: a row in `lease` with a holder and an expiry
//! time, renewed well before it expires.
//!
//! # Fencing
//!
//! Each takeover increments the lease's **token**. A holder proves it still
//! leads by naming its token in the write it makes as the leader, and the
//! write is refused once a newer holder took over: [`Store::claim_due`]
//! (which starts a scheduled run) and [`Store::lease_holds`] compare the
//! token in the same statement. A process that was paused past its expiry
//! (a long GC pause, SIGSTOP, a network partition) therefore cannot start a
//! run on a leadership it lost, whatever its clock says.
//!
//! # Why rows and not advisory locks
//!
//! PostgreSQL's session advisory locks live on a connection. Behind a
//! transaction-mode pooler (PgBouncer, the poolers of managed PostgreSQL)
//! consecutive statements may run on different server connections, so a
//! session lock is held by nobody in particular. A lease row needs nothing
//! but single-statement atomicity, which every pooler preserves.
//!
//! # Clocks
//!
//! Times are the caller's wall clock (unix ms), as the shared rate budgets
//! use. Clock skew between machines shortens or lengthens a lease by the
//! skew; the lease's time to live should exceed any skew NTP allows by a
//! wide margin. Skew never breaks fencing: tokens are compared, not times.

use crate::reader::Read as _;
use sqlx::Row;

use crate::{Store, StoreError};

/// A held lease: who holds it and the fencing token of this tenure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Increases with every change of holder; never reused.
    pub token: i64,
    pub expires_ms: i64,
}

impl Store {
    /// Takes the lease `name` for `holder` until `now_ms + ttl_ms` if it is
    /// free (never taken, or expired). Every successful acquisition has a
    /// token greater than any before it. `None` while another holder's
    /// lease is live; an expired lease is taken over even from `holder`
    /// itself (a new tenure: a new token).
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let expires = now_ms.saturating_add(ttl_ms.max(1));
        let row = sqlx::query(
            "INSERT INTO lease (name, holder, token, acquired_ms, expires_ms) \
             VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 token = lease.token + 1, acquired_ms = excluded.acquired_ms, \
                 expires_ms = excluded.expires_ms \
             WHERE lease.expires_ms <= $3 \
             RETURNING token",
        )
        .bind(name.to_string())
        .bind(holder.to_string())
        .bind(now_ms)
        .bind(expires)
        .fetch_optional(&self.write)
        .await?;
        Ok(match row {
            Some(r) => Some(Lease {
                name: name.to_string(),
                holder: holder.to_string(),
                token: r.try_get("token")?,
                expires_ms: expires,
            }),
            None => None,
        })
    }

    /// Extends a held lease to `now_ms + ttl_ms`. `false` when the lease
    /// is no longer this tenure's (it expired, or another holder took it
    /// over): the caller has lost leadership and must stop acting as the
    /// leader. An expired lease is never renewed, even if nobody took it:
    /// between its expiry and now, another process may have acted on it.
    pub async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let expires = now_ms.saturating_add(ttl_ms.max(1));
        let done = sqlx::query(
            "UPDATE lease SET expires_ms = $1 \
             WHERE name = $2 AND holder = $3 AND token = $4 AND expires_ms > $5",
        )
        .bind(expires)
        .bind(lease.name.clone())
        .bind(lease.holder.clone())
        .bind(lease.token)
        .bind(now_ms)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease up at once (a clean shutdown), so another process
    /// need not wait for it to expire. A no-op if it is no longer ours.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE lease SET expires_ms = 0 WHERE name = $1 AND holder = $2 AND token = $3",
        )
        .bind(lease.name.clone())
        .bind(lease.holder.clone())
        .bind(lease.token)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// True while `lease` is still the live tenure (same token, not
    /// expired at `now_ms`): the fence a leader checks before a write it
    /// makes as the leader.
    pub async fn lease_holds(&self, lease: &Lease, now_ms: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS ok FROM lease WHERE name = $1 AND token = $2 AND holder = $3 \
             AND expires_ms > $4",
        )
        .bind(lease.name.clone())
        .bind(lease.token)
        .bind(lease.holder.clone())
        .bind(now_ms)
        .fetch_optional(&self.write)
        .await?;
        Ok(row.is_some())
    }

    /// The lease `name` as stored (holder, token, expiry), live or not.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query("SELECT holder, token, expires_ms FROM lease WHERE name = $1")
            .bind(name.to_string())
            .read_optional(self)
            .await?;
        Ok(match row {
            Some(r) => Some(Lease {
                name: name.to_string(),
                holder: r.try_get("holder")?,
                token: r.try_get("token")?,
                expires_ms: r.try_get("expires_ms")?,
            }),
            None => None,
        })
    }

    /// Claims the scheduled job `job` if it is due at `now_ms` (never run,
    /// or its next time has come), fenced by `lease`: in one statement the
    /// job's next time moves to `now_ms + every_ms` only while `lease` is
    /// the live tenure. `true`: this caller starts the run and nobody else
    /// does; `false`: not due, or the lease was lost.
    pub async fn claim_due(
        &self,
        job: &str,
        lease: &Lease,
        now_ms: i64,
        every_ms: i64,
    ) -> Result<bool, StoreError> {
        let next = now_ms.saturating_add(every_ms.max(1));
        let row = sqlx::query(
            "INSERT INTO schedule (name, next_ms, token, started_ms) \
             SELECT $1, $2, $3, $4 WHERE EXISTS ( \
                 SELECT 1 FROM lease WHERE name = $5 AND holder = $6 AND token = $3 \
                 AND expires_ms > $4) \
             ON CONFLICT (name) DO UPDATE SET next_ms = excluded.next_ms, \
                 token = excluded.token, started_ms = excluded.started_ms \
             WHERE schedule.next_ms <= excluded.started_ms \
             RETURNING token",
        )
        .bind(job.to_string())
        .bind(next)
        .bind(lease.token)
        .bind(now_ms)
        .bind(lease.name.clone())
        .bind(lease.holder.clone())
        .fetch_optional(&self.write)
        .await?;
        Ok(row.is_some())
    }

    /// When the job `job` is next due (unix ms), if it ever ran.
    pub async fn next_due(&self, job: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT next_ms FROM schedule WHERE name = $1")
            .bind(job.to_string())
            .read_optional(self)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("next_ms")?),
            None => None,
        })
    }
}
