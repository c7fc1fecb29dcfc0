//! Checking kept renderings against the store, in batches.
//!
//! A `GET /Users/{id}` served from the [cache](crate::cache) first asks the
//! store whether the resource is still at the kept head. Each check is a
//! statement, and on SQLite a statement is a round trip to a connection's
//! worker thread, which under load costs more than all the rest of the
//! request (the profile of `scripts/scim-bench.sh`: thread wake-ups, not
//! SQL). So the checker gathers the checks that arrive while earlier ones
//! run and asks for all of them in one statement
//! ([`Store::scim_heads_of`]), as the writer groups commits; with one
//! request in flight it is one statement per check, as before.
//!
//! A check is only answered by a statement that started after it was
//! asked, so it sees every write committed before its request arrived,
//! whoever made it: a stale rendering is never confirmed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use roster_store::{ScimHead, ScimKind, Store};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most checks in one batch.
const MAX_BATCH: usize = 128;
/// Batches running at once (each holds a reader connection).
const IN_FLIGHT: usize = 2;
/// Checks waiting before askers wait for room.
const QUEUE: usize = 1024;

/// The head of a resource, `Ok(None)` if it does not exist; `Err(())` if
/// the batch failed (the asker then reads on its own, and reports).
type Answer = Result<Option<ScimHead>, ()>;

struct Check {
    connection: String,
    kind: ScimKind,
    id: String,
    reply: oneshot::Sender<Answer>,
}

pub(crate) struct HeadChecker {
    tx: OnceLock<mpsc::Sender<Check>>,
}

impl HeadChecker {
    pub(crate) fn new() -> Self {
        HeadChecker {
            tx: OnceLock::new(),
        }
    }

    /// The current head of one resource, read by a statement started
    /// after this call.
    pub(crate) async fn head(
        &self,
        store: &Store,
        connection: &str,
        kind: ScimKind,
        id: &str,
    ) -> Answer {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(store.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let check = Check {
            connection: connection.to_string(),
            kind,
            id: id.to_string(),
            reply,
        };
        if tx.send(check).await.is_err() {
            return Err(());
        }
        answer.await.unwrap_or(Err(()))
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Check>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for room first: checks that come meanwhile queue up and
        // go together in the next batch.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            let mut groups: HashMap<(String, ScimKind), Vec<Check>> = HashMap::new();
            for c in batch {
                groups
                    .entry((c.connection.clone(), c.kind))
                    .or_default()
                    .push(c);
            }
            for ((connection, kind), checks) in groups {
                let mut ids: Vec<String> = checks.iter().map(|c| c.id.clone()).collect();
                ids.sort_unstable();
                ids.dedup();
                match store.scim_heads_of(&connection, kind, &ids).await {
                    Ok(heads) => {
                        for c in checks {
                            let _ = c.reply.send(Ok(heads.get(&c.id).cloned()));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "checking kept SCIM renderings failed");
                        for c in checks {
                            let _ = c.reply.send(Err(()));
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}
