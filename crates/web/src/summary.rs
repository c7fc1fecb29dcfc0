//! The dashboard's expensive half, computed once and shared.
//!
//! The leavers and orphans reports and the match queue read every
//! account roster holds (2,000,000 at 100,000 people × 20 apps): far more
//! than a page may take. They are computed by one task at a time and kept
//! with the time they were computed; the dashboard shows that time.
//!
//! * No summary yet: the request computes it (the first dashboard after a
//!   start waits for it).
//! * A summary older than [`MAX_AGE`], or one a form of this UI may have
//!   changed (every accepted form marks it dirty): when computing it took
//!   less than [`SYNC_BUDGET`] (a small deployment), the request computes
//!   it again and the page is exact; otherwise the page shows the summary
//!   it has, says how old it is, and one refresh starts in the background.
//!
//! The cheap half (connections, plans and tasks waiting) is read on every
//! request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roster_engine::{EngineError, Roster};
use tokio::sync::Mutex;

/// How old a summary may be before a request refreshes it.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// A summary that took less than this is recomputed in the request.
pub const SYNC_BUDGET: Duration = Duration::from_millis(50);

/// What the expensive reports say.
#[derive(Clone, Debug)]
pub struct Summary {
    pub leavers: roster_engine::reports::LeaversReport,
    pub orphans: roster_engine::reports::OrphansReport,
    pub matches: usize,
    /// When it was computed (unix ms) and how long that took.
    pub computed_ms: i64,
    pub took: Duration,
    computed_at: Instant,
}

/// The shared summary (module docs).
#[derive(Default)]
pub struct SummaryCache {
    current: Mutex<Option<Arc<Summary>>>,
    /// One computation at a time.
    computing: Mutex<()>,
    dirty: AtomicBool,
    refreshing: AtomicBool,
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

async fn compute(roster: &Roster) -> Result<Summary, EngineError> {
    let started = Instant::now();
    let (leavers, orphans, matches) = tokio::try_join!(
        roster.leavers_report(),
        roster.orphans_report(),
        roster.match_queue(),
    )?;
    Ok(Summary {
        leavers,
        orphans,
        matches: matches.len(),
        computed_ms: now_ms(),
        took: started.elapsed(),
        computed_at: Instant::now(),
    })
}

impl SummaryCache {
    /// A form changed something: the next dashboard does not trust the
    /// summary it has.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    async fn recompute(&self, roster: &Roster) -> Result<Arc<Summary>, EngineError> {
        let asked = Instant::now();
        let _one = self.computing.lock().await;
        // Someone else computed it while this request waited: theirs is
        // as fresh as this one's would be.
        if let Some(done) = self.current.lock().await.clone()
            && done.computed_at >= asked
            && !self.dirty.load(Ordering::SeqCst)
        {
            return Ok(done);
        }
        // Marked clean before reading, so a change during the read marks
        // it dirty again.
        self.dirty.store(false, Ordering::SeqCst);
        let fresh = Arc::new(compute(roster).await?);
        *self.current.lock().await = Some(fresh.clone());
        Ok(fresh)
    }

    /// The summary to show (module docs).
    pub async fn get(self: &Arc<Self>, roster: &Arc<Roster>) -> Result<Arc<Summary>, EngineError> {
        let have = self.current.lock().await.clone();
        let Some(have) = have else {
            return self.recompute(roster).await;
        };
        let stale = self.dirty.load(Ordering::SeqCst) || have.computed_at.elapsed() >= MAX_AGE;
        if !stale {
            return Ok(have);
        }
        if have.took < SYNC_BUDGET {
            return self.recompute(roster).await;
        }
        if !self.refreshing.swap(true, Ordering::SeqCst) {
            let (cache, roster) = (self.clone(), roster.clone());
            tokio::spawn(async move {
                if let Err(e) = cache.recompute(&roster).await {
                    tracing::warn!(error = %e, "refreshing the dashboard summary failed");
                }
                cache.refreshing.store(false, Ordering::SeqCst);
            });
        }
        Ok(have)
    }
}
