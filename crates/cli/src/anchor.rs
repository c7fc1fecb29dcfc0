//! The one place CLI commands checkpoint the audit log.
//!
//! A command that opens the engine for a config with an `[audit] witness`
//! registers its anchor and store here ([`register`]); `main` calls
//! [`finish`] once the command has returned, whether it succeeded or not (a
//! failed `apply` still appended events). The checkpoint covers the whole
//! chain head, so a command that never registers (say `roster secret set`)
//! is covered by the next one that does. A witness that is down never fails
//! the command; it is printed as a loud warning and retried next time.

use std::sync::{Arc, Mutex};

use roster_engine::anchor::AuditAnchor;
use roster_store::Store;

static REGISTERED: Mutex<Option<(Arc<AuditAnchor>, Store)>> = Mutex::new(None);

/// Remembers the anchor to checkpoint with when the command ends.
pub(crate) fn register(anchor: Arc<AuditAnchor>, store: Store) {
    if let Ok(mut slot) = REGISTERED.lock() {
        *slot = Some((anchor, store));
    }
}

/// Checkpoints the audit chain head to the registered anchor's witnesses,
/// printing a warning for each witness that could not be reached.
pub(crate) async fn finish() {
    let registered = REGISTERED.lock().ok().and_then(|mut slot| slot.take());
    let Some((anchor, store)) = registered else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    match anchor.checkpoint(&store, now_ms).await {
        Ok(outcome) => {
            for w in outcome.warnings() {
                eprintln!("warning: {w}");
            }
        }
        Err(e) => eprintln!("warning: audit checkpoint failed: {e}"),
    }
}
