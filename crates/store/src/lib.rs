//! roster's storage: people, connections, observed accounts, plans and the
//! audit log, on SQLite (the default, one file) or PostgreSQL.
//!
//! # Concepts
//!
//! * **One code path.** Every query goes through sqlx's `Any` driver with
//!   SQL both engines accept (`$N` placeholders, `ON CONFLICT`,
//!   `RETURNING`, `TRUE`/`FALSE`). The two dialects differ only in their
//!   migration files (`migrations/sqlite`, `migrations/postgres`), which
//!   create the same tables with engine-appropriate column types.
//! * **Portable values only.** `Any` carries booleans, integers, floats,
//!   text and bytes. IDs and JSON are TEXT; times are `i64` unix
//!   milliseconds chosen by the caller (the store never reads a clock and
//!   never calls SQL time functions), so tests and replays are exact.
//! * **JSON bodies, real lookup columns.** Domain values ([`Person`],
//!   [`Account`], [`Plan`]) are stored as their serde JSON, which is what
//!   comes back. The fields roster searches by (lower-cased email,
//!   employee ID, connection, active, status) are copied into indexed
//!   columns next to the JSON.
//!
//! # Invariants
//!
//! * Snapshots are replaced atomically: [`Store::replace_people`] and
//!   [`Store::replace_accounts`] run in one transaction, so a reader sees the
//!   old snapshot or the new one, never a mix.
//! * An incomplete account read never erases knowledge: accounts it did not
//!   return are kept (not present, with their `last_seen_ms`) until a
//!   complete read confirms they are gone.
//! * The audit log is append-only and hash-chained (see [`audit`]); appends
//!   are serialized by locking a one-row head table.
//! * SQLite gets exactly one writer connection (plus a small read pool on
//!   files, in WAL mode), so writers queue inside the process instead of
//!   failing with `SQLITE_BUSY`.
//! * The schema version is asserted at open: a database migrated by a newer
//!   roster is refused rather than misread.
//!
//! # What this crate does not do
//!
//! It holds no business rules: correlation, policy and reconciliation live in
//! `roster-core`. It does not decide which action state transitions the
//! executor may make, except that a finished (`done`) action is never
//! reopened.

// Library paths return errors; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

mod accounts;
mod api_tokens;
pub mod audit;
mod audit_kind;
mod checkpoints;
mod connections;
mod cursors;
mod error;
mod gateway;
mod governance;
mod guards;
mod health;
mod human_tasks;
mod leases;
pub mod mentions;
mod notify;
mod pages;
mod people;
mod plans;
mod proposals;
mod rates;
mod reader;
mod reports;
mod scim;
mod search;
mod secrets;
mod sql;
mod target;
pub mod tasks;
mod tickets;
mod web;

use crate::reader::Read as _;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Row};

pub use accounts::{AccountSighting, ObservationInfo};
pub use api_tokens::ApiTokenRecord;
pub use audit::{
    AuditErasure, AuditEvent, AuditRecord, AuditReport, ErasureCandidates, GENESIS_HASH,
};
pub use audit_kind::AuditKind;
pub use checkpoints::{CheckpointRow, WitnessState};
pub use connections::{ConnectionRecord, ReadHealth, ReadStatus};
pub use cursors::SourceCursor;
pub use error::{AuditError, StoreError};
pub use gateway::{GatewayIntent, GatewayStatus, GatewayUser};
pub use governance::{ApprovalRecord, Decision, MatchResolution};
pub use guards::SourceBaseline;
pub use health::QueueDepth;
pub use human_tasks::{HumanTask, HumanTaskState};
pub use leases::Lease;
pub use notify::NotifyDelivery;
pub use people::PersonOverride;
pub use plans::{
    ActionState, AppliedPlan, PlanId, PlanPolicy, PlanStatus, StoredAction, StoredPlan,
};
pub use proposals::ProposalRecord;
pub use rates::{ALL_CONNECTIONS, PauseRecord};
pub use reports::ActionStateRow;
pub use scim::{
    ScimDeleted, ScimGroupRef, ScimHead, ScimIndex, ScimKind, ScimMember, ScimResource,
    ScimResourceWrite, ScimStoreError, ScimTokenRecord, ScimWriteJob, ScimWriteOp,
    ScimWriteOutcome, ScimWriteResult, scim_fold,
};
pub use secrets::SecretMeta;
pub use target::Backend;
pub use tasks::{
    EnqueueReport, ExecState, QUARANTINED, QueueStatus, ReapedTask, Task, TaskFilter, TaskFinish,
    TaskOutcome, TaskResult,
};
pub use tickets::TicketLink;
pub use web::{WebSessionRecord, WebUserRecord};

// Re-exported so callers name the types the store speaks in.
pub use roster_core::{Account, ConnectionId, Email, EmployeeId, Observed, Person, Plan};

/// The schema version this build reads and writes: the number of the last
/// migration in both `migrations/` directories.
pub const SCHEMA_VERSION: i64 = 25;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long [`Store::open`] waits for a database to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the PostgreSQL pool, and readers in the SQLite file pool.
const PG_POOL_SIZE: u32 = 8;
const SQLITE_READERS: u32 = 4;

/// What a [`Store::checkpoint_wal`] pass found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// Pages (frames) in the write-ahead log.
    pub wal_frames: i64,
    /// Of those, the ones now copied into the database file.
    pub checkpointed_frames: i64,
}

/// A handle on the database. Cheap to clone; clones share the pools.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Where the store lives, without secrets, for messages.
    target: String,
    /// An in-memory SQLite database (one connection, no WAL).
    in_memory: bool,
    /// Writes (and, for PostgreSQL and in-memory SQLite, reads too). For
    /// SQLite this pool has exactly one connection.
    write: AnyPool,
    read: AnyPool,
    /// How common each trigram is among the people (SQLite search; see
    /// [`search`]), read now and then, shared by clones.
    search_sample: search::SampleCell,
    /// Names this store's reader pool for [`Store::with_one_reader`];
    /// shared by clones, as the pool is.
    reader_marker: std::sync::Arc<()>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its
    /// schema up to [`SCHEMA_VERSION`].
    ///
    /// `url` is `postgres://...`, `sqlite://path?mode=rwc`, `sqlite::memory:`
    /// or a bare file path (a SQLite file, created with its parent
    /// directories).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let target = target::Target::parse(url)?;
        let options =
            AnyConnectOptions::from_str(&target.url).map_err(|e| connect_error(&target, e))?;

        // Probe with a single connection first. The pool retries refused
        // connections until its acquire timeout, which would turn "nothing
        // listens there" into a long hang; one attempt fails at once.
        if !target.in_memory {
            let probe =
                tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(&options))
                    .await
                    .map_err(|_| StoreError::ConnectTimeout {
                        target: target.display.clone(),
                        seconds: CONNECT_TIMEOUT.as_secs(),
                    })?
                    .map_err(|e| connect_error(&target, e))?;
            probe.close().await.map_err(|e| connect_error(&target, e))?;
        }

        let (write, read) = match target.backend {
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(PG_POOL_SIZE)
                    .acquire_timeout(CONNECT_TIMEOUT * 3)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                (pool.clone(), pool)
            }
            Backend::Sqlite if target.in_memory => {
                // Each connection to `:memory:` is its own empty database, so
                // exactly one connection must live as long as the store.
                let pool = sqlite_pool_options(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                (pool.clone(), pool)
            }
            Backend::Sqlite => {
                let write = sqlite_pool_options(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                let read = sqlite_pool_options(SQLITE_READERS).connect_lazy_with(options);
                (write, read)
            }
        };

        let store = Store {
            backend: target.backend,
            target: target.display.clone(),
            in_memory: target.in_memory,
            write,
            read,
            search_sample: Default::default(),
            reader_marker: Default::default(),
        };
        store.migrate().await?;
        // Events written before schema 21 are indexed by who they mention
        // once (see `mentions`); a no-op afterwards.
        store.backfill_audit_mentions().await?;
        tracing::debug!(target = %store.target, "store opened");
        Ok(store)
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A password-free description of where the store lives.
    pub fn describe(&self) -> &str {
        &self.target
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations")
            .read_one(self)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("v")?.unwrap_or(0))
    }

    /// Copies committed WAL pages into the SQLite database file without
    /// blocking the writer (a `PASSIVE` checkpoint, run on a reader
    /// connection), so a busy writer does not pay for checkpoints in its
    /// own commits. A no-op on PostgreSQL and in-memory SQLite.
    pub async fn checkpoint_wal(&self) -> Result<Option<WalCheckpoint>, StoreError> {
        // A closed store (shutting down) has nothing left to checkpoint:
        // closing the last connection checkpoints the WAL itself.
        if self.backend != Backend::Sqlite || self.in_memory || self.read.is_closed() {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .read_one(self)
            .await?;
        // Columns: busy, log (frames in the WAL), checkpointed (frames
        // copied into the database file).
        Ok(Some(WalCheckpoint {
            wal_frames: row.try_get::<i64, _>(1)?,
            checkpointed_frames: row.try_get::<i64, _>(2)?,
        }))
    }

    /// Closes the pools, waiting for in-flight work. On SQLite this also
    /// lets the last connection checkpoint the WAL into the main file.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // The code's own expectation, checked before touching the database:
        // the embedded migrations must end exactly at SCHEMA_VERSION.
        let embedded = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        if embedded != SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                target: format!("the embedded {} migrations", self.backend),
                found: embedded,
                expected: SCHEMA_VERSION,
            });
        }
        // SQLite has no migration lock: two processes opening a new file
        // at once (`roster run` and a `roster plans` beside it) race through
        // the migrations, and the loser's transaction fails on a table the
        // winner just made, then rolls back whole. Running again skips what
        // the other applied, so retry a few times before giving up.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.write).await {
                Ok(()) => break,
                Err(_) if self.backend == Backend::Sqlite && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(source) => {
                    return Err(StoreError::Migrate {
                        target: self.target.clone(),
                        source,
                    });
                }
            }
        }
        let found = self.schema_version().await?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                target: self.target.clone(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(())
    }
}

fn sqlite_pool_options(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(CONNECT_TIMEOUT * 3)
        // A connection to a local file does not go stale the way a network
        // connection does, and the ping sqlx sends before handing one out
        // is a round trip to the connection's thread: as much again as the
        // one-row lookups that make up most reads (the person page makes
        // eight).
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Pragmas cannot go in the URL. WAL lets readers run while the
                // writer commits; NORMAL sync is durable across application
                // crashes and only risks the last commits on power loss.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await?;
                // Several processes share one file (`plan` beside `serve`,
                // the rate budget and the kill switch every writer checks):
                // wait for another's write transaction instead of failing
                // with "database is locked" after the 5 s default, which a
                // loaded machine can exceed.
                sqlx::query("PRAGMA busy_timeout = 30000")
                    .execute(&mut *conn)
                    .await?;
                // A full reconciliation reads every account; SQLite's default
                // 2 MiB page cache makes that grow worse than linearly with
                // the company. 16 MiB of cache per connection keeps
                // the read proportional. (No mmap: mapped pages would count
                // against the process's memory as the file grows.)
                sqlx::query("PRAGMA cache_size = -16384")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA temp_store = MEMORY")
                    .execute(&mut *conn)
                    .await?;
                // The writer checkpoints inside its commit once the WAL
                // holds this many pages (≈40 MiB), a stall for everything
                // queued behind it. SQLite's default (1,000) made that a
                // large share of a busy writer's time; long-running writers
                // (the SCIM server) checkpoint beside the writer instead
                // (`checkpoint_wal`), and this bound stays as the backstop.
                sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
}

fn connect_error(target: &target::Target, source: sqlx::Error) -> StoreError {
    StoreError::Connect {
        target: target.display.clone(),
        source,
    }
}

/// A count or index as the store's integer column type. Values beyond
/// `i64` cannot occur for the counts and indexes the store handles.
pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
