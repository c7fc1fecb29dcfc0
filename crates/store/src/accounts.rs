//! Accounts: the last observed state of each connection.
//!
//! Each call to [`Store::replace_accounts`] records one read of one
//! connection: when it happened, whether it was complete, and why not. The
//! accounts it returned replace the connection's previous ones, in order;
//! other connections are untouched.
//!
//! Every account row also keeps `first_seen_ms` (the first read that
//! returned it) and `last_seen_ms` (the latest), which orphan reports use to
//! say how long an unmatched account has been around.
//!
//! # Invariant: incomplete reads do not forget
//!
//! An account missing from an *incomplete* read may still exist (the page
//! that held it failed), so its row is kept, not deleted. Each read bumps the
//! connection's `generation` and stamps the accounts it returned with it
//! (`seen_gen`); rows with an older stamp are "not present". [`Store::observed`]
//! returns exactly what the last read returned; a later complete read deletes
//! the rows it did not see. Stamping, rather than clearing a flag on every
//! row first, keeps a re-read to one write per returned account.

use crate::reader::Read as _;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use roster_core::{Account, AccountKey, ConnectionId, Email, Observed};

use crate::sql::{Val, get_bool, insert_rows};
use crate::{Store, StoreError, to_i64};

/// What is known about the last read of one connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservationInfo {
    pub connection: ConnectionId,
    /// When the read was recorded (unix ms, as passed in).
    pub read_ms: i64,
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// Accounts the read returned.
    pub account_count: u64,
    /// How many reads of this connection have been recorded.
    pub generation: i64,
}

/// When an account was first and last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSighting {
    pub connection: ConnectionId,
    pub key: AccountKey,
    pub active: bool,
    /// False when the last read was incomplete and did not return it.
    pub present: bool,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

impl Store {
    /// Records one read of `observed.connection` taken at `now_ms`,
    /// replacing that connection's accounts in one transaction.
    ///
    /// Refuses (and writes nothing) if an account belongs to another
    /// connection or two accounts share a key.
    pub async fn replace_accounts(
        &self,
        observed: &Observed,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let conn_id = observed.connection.as_str();
        let mut keys = HashSet::with_capacity(observed.accounts.len());
        let mut bodies = Vec::with_capacity(observed.accounts.len());
        for a in &observed.accounts {
            if a.connection != observed.connection {
                return Err(StoreError::Invalid(format!(
                    "account {} belongs to connection {}, not {}",
                    a.key, a.connection, observed.connection
                )));
            }
            if !keys.insert(a.key.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "account key {} appears more than once in the read of {}",
                    a.key, observed.connection
                )));
            }
            let data = serde_json::to_string(a)
                .map_err(|e| StoreError::Invalid(format!("account {}: {e}", a.key)))?;
            bodies.push(data);
        }

        let mut tx = self.write.begin().await?;
        // Written first so that on SQLite the transaction takes the write
        // lock before it reads anything.
        let generation: i64 = sqlx::query(
            "INSERT INTO observation \
             (connection, generation, read_ms, complete, incomplete_reason, account_count) \
             VALUES ($1, 1, $2, $3, $4, $5) \
             ON CONFLICT (connection) DO UPDATE SET generation = observation.generation + 1, \
             read_ms = excluded.read_ms, complete = excluded.complete, \
             incomplete_reason = excluded.incomplete_reason, \
             account_count = excluded.account_count \
             RETURNING generation",
        )
        .bind(conn_id.to_string())
        .bind(now_ms)
        .bind(observed.complete)
        .bind(observed.incomplete_reason.clone())
        .bind(to_i64(observed.accounts.len()))
        .fetch_one(&mut *tx)
        .await?
        .try_get("generation")?;
        let rows = observed
            .accounts
            .iter()
            .zip(bodies)
            .enumerate()
            .map(|(ord, (a, data))| {
                vec![
                    Val::Text(conn_id.to_string()),
                    Val::Text(a.key.as_str().to_string()),
                    Val::Int(to_i64(ord)),
                    Val::OptText(a.email.as_ref().map(Email::normalized)),
                    Val::OptText(a.employee_id.as_ref().map(|e| e.as_str().to_string())),
                    Val::Bool(a.active),
                    Val::Int(generation),
                    Val::Int(now_ms),
                    Val::Int(now_ms),
                    Val::Text(data),
                    Val::OptText(approver_lc(a, "manager_email")),
                    Val::OptText(approver_lc(a, "approves_to")),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "INSERT INTO account (connection, account_key, ord, email_lc, employee_id, active, \
             seen_gen, first_seen_ms, last_seen_ms, data, manager_lc, approves_to_lc)",
            "ON CONFLICT (connection, account_key) DO UPDATE SET ord = excluded.ord, \
             email_lc = excluded.email_lc, employee_id = excluded.employee_id, \
             active = excluded.active, seen_gen = excluded.seen_gen, \
             last_seen_ms = excluded.last_seen_ms, data = excluded.data, \
             manager_lc = excluded.manager_lc, approves_to_lc = excluded.approves_to_lc",
            12,
            rows,
        )
        .await?;
        if observed.complete {
            sqlx::query("DELETE FROM account WHERE connection = $1 AND seen_gen <> $2")
                .bind(conn_id.to_string())
                .bind(generation)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last read of `connection`, exactly as it was recorded, or `None`
    /// if it has never been read.
    pub async fn observed(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<Observed>, StoreError> {
        let Some(info) = self.observation(connection).await? else {
            return Ok(None);
        };
        let accounts = self.last_read_accounts(&info).await?;
        Ok(Some(Observed {
            connection: info.connection,
            accounts,
            complete: info.complete,
            incomplete_reason: info.incomplete_reason,
        }))
    }

    /// The last read of every connection that has been read, ordered by
    /// connection.
    pub async fn all_observed(&self) -> Result<Vec<Observed>, StoreError> {
        let infos = self.observations().await?;
        // Connections load concurrently (the read pool has several
        // connections) and decode on blocking threads: a large company's
        // accounts are hundreds of megabytes of JSON.
        // Two at a time: one connection's JSON body is large, and memory,
        // not speed, is the limit past two cores.
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(2));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, info) in infos.into_iter().enumerate() {
            let store = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|e| StoreError::Invalid(format!("loading accounts failed: {e}")))?;
                let accounts = store.last_read_accounts(&info).await?;
                Ok::<_, StoreError>((
                    i,
                    Observed {
                        connection: info.connection,
                        accounts,
                        complete: info.complete,
                        incomplete_reason: info.incomplete_reason,
                    },
                ))
            });
        }
        let mut out = Vec::with_capacity(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            let done =
                joined.map_err(|e| StoreError::Invalid(format!("loading accounts failed: {e}")))?;
            out.push(done?);
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// The accounts the read `info` describes, in the order it returned
    /// them.
    ///
    /// The database concatenates the rows' JSON into one array of
    /// `[ord, account]` pairs (`string_agg`, which SQLite ≥ 3.44 and
    /// PostgreSQL both have), so a connection's accounts cost one row
    /// through the driver instead of one each: per-row driver overhead, not
    /// SQL or JSON, dominated loading a large company. The order is restored
    /// here from `ord` because neither engine promises an aggregate's order
    /// without an `ORDER BY` inside it, which would sort the JSON bodies.
    async fn last_read_accounts(&self, info: &ObservationInfo) -> Result<Vec<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT '[' || string_agg('[' || CAST(ord AS TEXT) || ',' || data || ']', ',') || ']' AS body \
             FROM account WHERE connection = $1 AND seen_gen = $2",
        )
        .bind(info.connection.as_str().to_string())
        .bind(info.generation)
        .read_one(self)
        .await?;
        let Some(body) = row.try_get::<Option<String>, _>("body")? else {
            return Ok(Vec::new());
        };
        let connection = info.connection.as_str().to_string();
        tokio::task::spawn_blocking(move || {
            let mut accounts: Vec<(i64, Account)> = serde_json::from_str(&body)
                .map_err(|e| StoreError::corrupt("account", &connection, e))?;
            accounts.sort_unstable_by_key(|(ord, _)| *ord);
            Ok(accounts.into_iter().map(|(_, a)| a).collect())
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("decoding accounts failed: {e}")))?
    }

    /// Metadata of the last read of `connection`.
    pub async fn observation(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<ObservationInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT connection, generation, read_ms, complete, incomplete_reason, account_count \
             FROM observation WHERE connection = $1",
        )
        .bind(connection.as_str().to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode_info).transpose()
    }

    /// Metadata of the last read of every connection, ordered by connection.
    pub async fn observations(&self) -> Result<Vec<ObservationInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, generation, read_ms, complete, incomplete_reason, account_count \
             FROM observation",
        )
        .read_all(self)
        .await?;
        let mut out = rows
            .iter()
            .map(decode_info)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not in SQL: PostgreSQL's collation would order text
        // differently from SQLite's byte order.
        out.sort_by(|a, b| a.connection.cmp(&b.connection));
        Ok(out)
    }

    /// First/last-seen times of every account the store knows for
    /// `connection`, including ones an incomplete read missed, by key.
    pub async fn account_sightings(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<AccountSighting>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.account_key, a.active, a.seen_gen, a.first_seen_ms, a.last_seen_ms, \
             o.generation FROM account a JOIN observation o ON o.connection = a.connection \
             WHERE a.connection = $1",
        )
        .bind(connection.as_str().to_string())
        .read_all(self)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AccountSighting {
                    connection: connection.clone(),
                    key: AccountKey::new(r.try_get::<String, _>("account_key")?),
                    active: get_bool(r, "active")?,
                    present: r.try_get::<i64, _>("seen_gen")?
                        == r.try_get::<i64, _>("generation")?,
                    first_seen_ms: r.try_get("first_seen_ms")?,
                    last_seen_ms: r.try_get("last_seen_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Every account, in any connection's last read, whose address is
    /// `email` (case-insensitively), ordered by connection and key.
    pub async fn accounts_by_email(&self, email: &Email) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.account_key, a.data FROM account a \
             JOIN observation o ON o.connection = a.connection AND o.generation = a.seen_gen \
             WHERE a.email_lc = $1",
        )
        .bind(email.normalized())
        .read_all(self)
        .await?;
        let mut out = rows
            .iter()
            .map(decode_account)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.connection, &a.key).cmp(&(&b.connection, &b.key)));
        Ok(out)
    }

    /// The accounts, in each connection's last read, whose approver
    /// (`manager_email` or `approves_to`, trimmed and in lower case) is one
    /// of `addresses_lc`: what a leaver's plan re-points, found by index
    /// (migration 0016) instead of reading every account. Sorted by
    /// connection and key.
    pub async fn accounts_pointing_at(
        &self,
        addresses_lc: &[String],
    ) -> Result<Vec<Account>, StoreError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for chunk in addresses_lc.chunks(400) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT a.connection, a.account_key, a.data FROM account a \
                 JOIN observation o ON o.connection = a.connection AND o.generation = a.seen_gen \
                 WHERE a.manager_lc IN ({marks}) \
                 UNION \
                 SELECT a.connection, a.account_key, a.data FROM account a \
                 JOIN observation o ON o.connection = a.connection AND o.generation = a.seen_gen \
                 WHERE a.approves_to_lc IN ({marks})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.clone());
            }
            for row in q.read_all(self).await? {
                let account = decode_account(&row)?;
                if seen.insert((account.connection.clone(), account.key.clone())) {
                    out.push(account);
                }
            }
        }
        out.sort_by(|a, b| (&a.connection, &a.key).cmp(&(&b.connection, &b.key)));
        Ok(out)
    }
}

fn decode_account(row: &AnyRow) -> Result<Account, StoreError> {
    let key: String = row.try_get("account_key")?;
    let data: String = row.try_get("data")?;
    serde_json::from_str(&data).map_err(|e| StoreError::corrupt("account", key, e))
}

fn decode_info(row: &AnyRow) -> Result<ObservationInfo, StoreError> {
    let count: i64 = row.try_get("account_count")?;
    Ok(ObservationInfo {
        connection: ConnectionId::new(row.try_get::<String, _>("connection")?),
        read_ms: row.try_get("read_ms")?,
        complete: get_bool(row, "complete")?,
        incomplete_reason: row.try_get("incomplete_reason")?,
        account_count: u64::try_from(count).unwrap_or(0),
        generation: row.try_get("generation")?,
    })
}

/// An approver attribute of `a` as the lookup columns hold it: trimmed,
/// lower case (the comparison `roster_core::repoint` makes).
fn approver_lc(a: &Account, field: &str) -> Option<String> {
    a.attributes
        .get(field)
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
}
