//! One reader connection for a whole view: [`Store::with_one_reader`].
//!
//! sqlx runs each SQLite connection on its own thread. A statement is a
//! round trip to that thread, and every connection handed back to the pool
//! is pinged, another round trip. A page that makes nine small reads (one
//! person's access: the person, the gateway's view of them, their
//! accounts, tasks, plans and audit) paid eighteen thread hops plus nine
//! pool checkouts, and on a 2-core machine the hops, not SQLite, were most
//! of its time (`perf`: half the samples in the kernel switching threads).
//!
//! Inside `with_one_reader`, every read the store makes on that task goes
//! through one connection of the reader pool, taken at the first read and
//! returned (pinged once) at the end. Reads are the same statements with
//! the same answers; only the connection they run on changes. Each
//! statement still sees the latest committed data (no transaction is
//! held open, so the WAL is never kept from checkpointing).
//!
//! Only a SQLite file store pins: its readers are a pool of their own.
//! PostgreSQL and in-memory SQLite share one pool between reads and
//! writes, where a task holding a connection and asking for another could
//! wait on itself.

use std::sync::Arc;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyPool};
use tokio::sync::Mutex;

use crate::Store;

tokio::task_local! {
    static PINNED: Arc<Pinned>;
}

/// The connection a [`Store::with_one_reader`] scope reads through.
pub(crate) struct Pinned {
    /// Which store's reader pool it belongs to ([`Store::reader_id`]).
    owner: usize,
    conn: Mutex<Option<PoolConnection<Any>>>,
}

impl Store {
    /// Runs `view` with every read of this store made on the current task
    /// going through one reader connection (module docs). Reads in tasks
    /// `view` spawns use the pool as usual. A no-op on PostgreSQL and
    /// in-memory SQLite.
    pub async fn with_one_reader<F: Future>(&self, view: F) -> F::Output {
        if !self.pins_readers() || self.pinned().is_some() {
            return view.await;
        }
        let pinned = Arc::new(Pinned {
            owner: self.reader_id(),
            conn: Mutex::new(None),
        });
        PINNED.scope(pinned, view).await
    }

    fn pins_readers(&self) -> bool {
        self.backend == crate::Backend::Sqlite && !self.in_memory
    }

    /// The connection this task's scope pinned for this store, if any.
    fn pinned(&self) -> Option<Arc<Pinned>> {
        let owner = self.reader_id();
        PINNED
            .try_with(|p| (p.owner == owner).then(|| p.clone()))
            .ok()
            .flatten()
    }

    /// Tells this store's reader pool apart from another store's.
    fn reader_id(&self) -> usize {
        Arc::as_ptr(&self.reader_marker) as usize
    }
}

/// Reads through the store's reader pool, or through the connection a
/// [`Store::with_one_reader`] scope pinned.
pub(crate) trait Read<'q>: Sized {
    async fn read_all(self, store: &Store) -> Result<Vec<AnyRow>, sqlx::Error>;
    async fn read_optional(self, store: &Store) -> Result<Option<AnyRow>, sqlx::Error>;
    async fn read_one(self, store: &Store) -> Result<AnyRow, sqlx::Error>;
}

impl<'q> Read<'q> for Query<'q, Any, AnyArguments> {
    async fn read_all(self, store: &Store) -> Result<Vec<AnyRow>, sqlx::Error> {
        match store.pinned() {
            Some(p) => {
                let mut conn = p.conn.lock().await;
                self.fetch_all(&mut **checked_out(&mut conn, &store.read).await?)
                    .await
            }
            None => self.fetch_all(&store.read).await,
        }
    }

    async fn read_optional(self, store: &Store) -> Result<Option<AnyRow>, sqlx::Error> {
        match store.pinned() {
            Some(p) => {
                let mut conn = p.conn.lock().await;
                self.fetch_optional(&mut **checked_out(&mut conn, &store.read).await?)
                    .await
            }
            None => self.fetch_optional(&store.read).await,
        }
    }

    async fn read_one(self, store: &Store) -> Result<AnyRow, sqlx::Error> {
        // What `fetch_one` answers for no row.
        self.read_optional(store)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// The pinned connection, taken from `pool` at the first read.
async fn checked_out<'c>(
    slot: &'c mut Option<PoolConnection<Any>>,
    pool: &AnyPool,
) -> Result<&'c mut PoolConnection<Any>, sqlx::Error> {
    let conn = match slot.take() {
        Some(conn) => conn,
        None => pool.acquire().await?,
    };
    Ok(slot.insert(conn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn file_store(dir: &std::path::Path, name: &str) -> Store {
        Store::open(&dir.join(name).display().to_string())
            .await
            .unwrap()
    }

    /// Whether this read ran on the connection that made the temporary
    /// table `mark` (temporary tables belong to one connection).
    async fn on_marked_connection(store: &Store) -> bool {
        sqlx::query("SELECT count(*) AS n FROM sqlite_temp_master WHERE name = 'mark'")
            .read_one(store)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
            == 1
    }

    /// Inside a scope every read takes the same connection, even while
    /// the pool hands its other connections out; outside, reads go to
    /// the pool.
    #[tokio::test]
    async fn a_scope_reads_through_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path(), "r.db").await;
        let held = store
            .with_one_reader(async {
                sqlx::query("CREATE TEMP TABLE mark (x INTEGER)")
                    .read_all(&store)
                    .await
                    .unwrap();
                // Every other connection the pool can give is taken: a read
                // that went to the pool would land on one without the mark.
                let mut held = Vec::new();
                for _ in 0..SQLITE_READERS_FOR_TEST - 1 {
                    held.push(store.read.acquire().await.unwrap());
                }
                for _ in 0..5 {
                    assert!(on_marked_connection(&store).await);
                }
                held
            })
            .await;
        // The pinned connection went back: the pool has it again, and a
        // read outside any scope runs on it (the others are still held).
        assert!(on_marked_connection(&store).await);
        drop(held);
    }
    const SQLITE_READERS_FOR_TEST: u32 = crate::SQLITE_READERS;

    /// A pinned connection holds no transaction: a write committed between
    /// two reads of the scope is seen by the second.
    #[tokio::test]
    async fn a_scope_sees_writes_committed_during_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(dir.path(), "r.db").await;
        sqlx::query("CREATE TABLE probe (x INTEGER)")
            .execute(&store.write)
            .await
            .unwrap();
        store
            .with_one_reader(async {
                assert_eq!(store.schema_version().await.unwrap(), crate::SCHEMA_VERSION);
                let count = || async {
                    sqlx::query("SELECT count(*) AS n FROM probe")
                        .read_one(&store)
                        .await
                        .unwrap()
                        .try_get::<i64, _>("n")
                        .unwrap()
                };
                assert_eq!(count().await, 0);
                sqlx::query("INSERT INTO probe (x) VALUES (1)")
                    .execute(&store.write)
                    .await
                    .unwrap();
                assert_eq!(count().await, 1, "the scope read a stale snapshot");
            })
            .await;
    }

    /// A scope pins only its own store's reads: another store read inside
    /// it uses that store's pool, and tasks spawned in a scope read as
    /// usual (nothing waits on the pinned connection).
    #[tokio::test]
    async fn a_scope_pins_only_its_own_store_and_task() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            file_store(dir.path(), "a.db").await,
            file_store(dir.path(), "b.db").await,
        );
        a.with_one_reader(async {
            sqlx::query("CREATE TEMP TABLE mark (x INTEGER)")
                .read_all(&a)
                .await
                .unwrap();
            assert!(b.pinned().is_none());
            assert!(!on_marked_connection(&b).await);
            let a2 = a.clone();
            let spawned = tokio::spawn(async move { a2.pinned().is_none() });
            assert!(spawned.await.unwrap(), "a spawned task inherited the pin");
            // A clone shares the pool, so it shares the pin.
            assert!(on_marked_connection(&a.clone()).await);
        })
        .await;
    }

    /// PostgreSQL and in-memory SQLite share one pool between reads and
    /// writes: they never pin.
    #[tokio::test]
    async fn memory_stores_never_pin() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .with_one_reader(async {
                assert!(store.pinned().is_none());
                store.schema_version().await.unwrap();
            })
            .await;
    }
}
