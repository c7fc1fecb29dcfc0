//! Group commit for SCIM writes.
//!
//! Every write (create, replace, delete, each with its audit record) is
//! handed to one writer task, which takes whatever has queued up (up to
//! [`MAX_BATCH`]) and runs it as a single store transaction
//! ([`Store::scim_write_batch`]). Under load this amortizes the commit and
//! the audit-chain update over many requests; with one request in flight
//! it is one transaction per write, as before. A batch that fails with a
//! database error is retried job by job, so one bad job cannot fail its
//! neighbours.
//!
//! The writer also keeps the SQLite WAL short without stalling: while
//! writes keep coming it starts a passive checkpoint beside itself (on a
//! reader connection) every [`CHECKPOINT_EVERY`], so its own commits rarely
//! reach the store's automatic checkpoint, which runs inside a commit.
//!
//! The task is started on first use (so [`ScimState`](crate::ScimState) can
//! be built outside a runtime) and ends when the state is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use roster_store::{ScimStoreError, ScimWriteJob, ScimWriteResult, Store};
use tokio::sync::{mpsc, oneshot};

use crate::state::now_ms;

/// Most jobs in one transaction.
pub(crate) const MAX_BATCH: usize = 64;
/// How often the writer starts a WAL checkpoint while writes keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Jobs waiting for the writer before submitters wait for room.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<ScimWriteResult, ScimStoreError>>;

pub(crate) struct Writer {
    tx: OnceLock<mpsc::Sender<(ScimWriteJob, Reply)>>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Writer {
            tx: OnceLock::new(),
        }
    }

    /// Runs `job` (batched with concurrent ones) and returns its result.
    pub(crate) async fn submit(
        &self,
        store: &Store,
        job: ScimWriteJob,
    ) -> Result<ScimWriteResult, ScimStoreError> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(store.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        if tx.send((job, reply)).await.is_err() {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

fn closed() -> ScimStoreError {
    ScimStoreError::Store(roster_store::StoreError::Invalid(
        "the SCIM writer has stopped".into(),
    ))
}

async fn run(store: Store, mut rx: mpsc::Receiver<(ScimWriteJob, Reply)>) {
    let checkpointing = Arc::new(AtomicBool::new(false));
    let mut last_checkpoint = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let at = now_ms();
        let jobs: Vec<ScimWriteJob> = batch.iter().map(|(j, _)| j.clone()).collect();
        match store.scim_write_batch(jobs, at).await {
            Ok(results) => {
                for ((_, reply), r) in batch.into_iter().zip(results) {
                    // The requester may have gone (timeout, disconnect);
                    // the write stands either way.
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "SCIM write batch failed; retrying one by one");
                for (job, reply) in batch {
                    let _ = reply.send(store.scim_write(job, at).await);
                }
            }
        }
        // Checkpoint beside the writer rather than in its commits: one at a
        // time, at most every CHECKPOINT_EVERY while writes keep coming.
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            && !checkpointing.swap(true, Ordering::AcqRel)
        {
            last_checkpoint = Instant::now();
            let store = store.clone();
            let flag = checkpointing.clone();
            tokio::spawn(async move {
                if let Err(e) = store.checkpoint_wal().await {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                }
                flag.store(false, Ordering::Release);
            });
        }
    }
}
