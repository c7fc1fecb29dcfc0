//! The scheduler's full reconciliation, fenced by its lease (see
//! [`crate::leader`]).

use roster_core::Principal;
use roster_store::Lease;

use crate::app::{RefreshOptions, Roster, RunOptions, RunSummary};
use crate::engine::EngineError;

impl Roster {
    /// [`Roster::reconcile`] as the holder of `lease`: the same read,
    /// import and plan, but the plan is handed to the queue only if
    /// `lease` is still the live tenure when the plan is ready. A process
    /// that lost its leadership during the run (it was paused past the
    /// lease's expiry, and another process took over and may be planning
    /// the same changes) stops there: its plan stays stored, unqueued, and
    /// the new leader's run carries the changes out.
    pub async fn reconcile_fenced(
        &self,
        by: &Principal,
        opts: &RunOptions,
        lease: &Lease,
    ) -> Result<RunSummary, EngineError> {
        let people = match &opts.hr_csv {
            None => None,
            Some(path) => {
                let people = self.engine.read_hr_file(path)?;
                Some((people, path.display().to_string()))
            }
        };
        let refreshed = self
            .refresh(
                by,
                RefreshOptions {
                    people,
                    ..RefreshOptions::default()
                },
                &mut |_, _| {},
            )
            .await?;
        if !self
            .engine
            .store
            .lease_holds(lease, crate::leader::now_ms())
            .await?
        {
            return Err(EngineError::Refused(format!(
                "lost the {} lease (token {}) during the run: plan {} is not queued; \
                 the process that leads now carries the changes out",
                lease.name, lease.token, refreshed.planned.id
            )));
        }
        let summary = self.act_on(by, refreshed.planned, opts.auto_apply).await?;
        self.engine.nudge_tasks().await?;
        Ok(summary)
    }
}
