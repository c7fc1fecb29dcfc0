//! The scheduler's full reconciliation, fenced by its lease (see
//! [`crate::leader`]).

use roster_core::Principal;
use roster_store::{Lease, PlanId};

use crate::app::{Roster, RunOptions, RunSummary};
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
        self.reconcile_under(by, opts, Some(lease)).await
    }

    /// Refuses to go on with `plan` unless `lease` is still the live tenure.
    pub(crate) async fn still_holds(
        &self,
        lease: &Lease,
        plan: &PlanId,
    ) -> Result<(), EngineError> {
        if self
            .engine
            .store
            .lease_holds(lease, crate::leader::now_ms())
            .await?
        {
            return Ok(());
        }
        Err(EngineError::Refused(format!(
            "lost the {} lease (token {}) during the run: plan {plan} is not queued; \
             the process that leads now carries the changes out",
            lease.name, lease.token
        )))
    }
}
