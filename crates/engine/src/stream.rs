//! A full or per-connection plan with memory bounded by the people plus a
//! few connections: the accounts are streamed a connection at a time.
//!
//! [`Engine::compute_plan`] for [`PlanScope::All`] and
//! [`PlanScope::Connections`] comes here. The people (with the gateway's
//! intent folded in and overrides applied) are loaded once; then one task
//! reads the connections' last reads from the store one after the other
//! ([`roster_store::Store::observed`]) into a channel of
//! [`IN_FLIGHT`] places, and planner threads take them from it, plan each
//! ([`roster_core::Streaming::plan_part`]) and drop its accounts but the
//! few the whole-plan steps need (accounts pointing at a leaver, accounts
//! deprovisioned). Reading and planning overlap, and at most
//! `IN_FLIGHT + planners + 1` connections' accounts are in memory at once,
//! whatever the number of apps. The core's `Streaming` gives exactly the
//! plan `reconcile_guarded` gives over the same reads (a test in
//! `tests/streamed.rs` compares them), so every guard holds as before: an
//! incomplete read still yields no deactivation.
//!
//! When the policy changed since the last applied plan, each connection is
//! also planned under the old policy in the same pass, for the plan's
//! policy-change report.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use roster_core::guard::GuardContext;
use roster_core::plan::{PolicyChange, policy_effect};
use roster_core::{ConnectionId, Observed, Person, Plan, Policy, Prepared, Resolution};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError};
use crate::planning::PlanScope;

/// Connections read ahead of the planners.
pub const IN_FLIGHT: usize = 1;

/// Where a streamed plan spent its time, for the benchmark.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Loading the people, the gateway's intent and the overrides.
    pub people_ms: f64,
    /// Reading the connections from the store, summed (overlaps planning).
    pub load_ms: f64,
    /// Planning the connections, summed over the planner threads.
    pub plan_ms: f64,
    /// Merging, re-pointing, sorting and the guards.
    pub finish_ms: f64,
    /// From the first connection read to the plan (wall clock).
    pub stream_ms: f64,
    pub connections: usize,
    pub accounts: usize,
    pub planners: usize,
}

/// The old policy to compare with, when it differs (see
/// [`Engine::compute_plan`]'s policy-change report).
struct Previous {
    policy: Policy,
    since_plan: String,
    applied_ms: i64,
    previous_policy_hash: String,
    policy_hash: String,
}

impl Engine {
    /// The plan of an `All` or `Connections` scope, streamed (module docs).
    pub(crate) async fn plan_streamed(
        &self,
        scope: &PlanScope,
    ) -> Result<(Plan, StreamStats), EngineError> {
        let mut stats = StreamStats::default();
        let t = Instant::now();
        let resolutions = self.resolutions().await?;
        let context = self.guard_context().await?;
        let mut people = self.store.people().await?;
        // What IdPs pushed to the SCIM gateway is intent too.
        self.fold_gateway(&mut people).await?;
        self.apply_overrides(&mut people).await?;
        let previous = self.previous_policy().await?;
        stats.people_ms = ms_since(t);

        let governed = self.policy.governed_connections();
        let readable = match scope {
            PlanScope::Connections(c) => Some(c.clone()),
            _ => None,
        };
        let connections: Vec<ConnectionId> = self
            .store
            .observations()
            .await?
            .into_iter()
            .map(|i| i.connection)
            .filter(|c| governed.contains(c) && readable.as_ref().is_none_or(|ok| ok.contains(c)))
            .collect();
        stats.connections = connections.len();
        stats.planners = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4)
            .min(connections.len().max(1));

        let t = Instant::now();
        let (tx, rx) = mpsc::channel::<Observed>(IN_FLIGHT);
        let worker = {
            let policy = self.policy.clone();
            let now = self.now();
            let calendar = self.calendar.clone();
            let planners = stats.planners;
            tokio::task::spawn_blocking(move || {
                plan_from_stream(
                    people,
                    policy,
                    resolutions,
                    context,
                    previous.map(|p| (p, calendar)),
                    now,
                    rx,
                    planners,
                )
            })
        };
        let mut load_ms = 0.0;
        let mut accounts = 0;
        let mut failure = None;
        for c in &connections {
            let t1 = Instant::now();
            let observed = match self.store.observed(c).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            load_ms += ms_since(t1);
            accounts += observed.accounts.len();
            if tx.send(observed).await.is_err() {
                // The planners stopped (a panic): its join says why.
                break;
            }
        }
        drop(tx);
        let joined = match worker.await {
            Ok(j) => j,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(
                    roster_store::StoreError::Invalid(format!("planning stopped: {e}")).into(),
                );
            }
        };
        if let Some(e) = failure {
            return Err(e.into());
        }
        let (plan, plan_ms, finish_ms) = joined;
        stats.load_ms = load_ms;
        stats.plan_ms = plan_ms;
        stats.finish_ms = finish_ms;
        stats.accounts = accounts;
        stats.stream_ms = ms_since(t);
        Ok((plan, stats))
    }

    /// The policy of the last applied plan, when it differs from this one
    /// and can still be read.
    async fn previous_policy(&self) -> Result<Option<Previous>, EngineError> {
        let Some(current) = self.policy.text_hash() else {
            return Ok(None);
        };
        let Some(last) = self.store.last_applied_plan().await? else {
            return Ok(None);
        };
        let Some(previous) = last.policy.filter(|p| p.hash != current) else {
            return Ok(None);
        };
        match Policy::parse(&format!("policy of plan {}", last.id), &previous.text) {
            Ok(policy) => Ok(Some(Previous {
                policy,
                since_plan: last.id.to_string(),
                applied_ms: last.applied_ms,
                previous_policy_hash: previous.hash,
                policy_hash: current,
            })),
            Err(e) => {
                // A policy this build can no longer read cannot be
                // compared; the plan itself is still sound.
                tracing::warn!(plan = %last.id, error = %e, "cannot re-read the last applied plan's policy");
                Ok(None)
            }
        }
    }
}

/// The planner side: takes connections from `rx` on `planners` threads
/// until it closes, then finishes the plan. Returns the plan and the time
/// spent planning (summed) and finishing.
#[allow(clippy::too_many_arguments)]
fn plan_from_stream(
    people: Vec<Person>,
    policy: Policy,
    resolutions: Vec<Resolution>,
    context: GuardContext,
    previous: Option<(Previous, roster_core::Calendar)>,
    now: time::OffsetDateTime,
    rx: mpsc::Receiver<Observed>,
    planners: usize,
) -> (Plan, f64, f64) {
    let prepared = Prepared::new(&people, &context, now);
    let mut run = prepared.stream(&policy, &resolutions, &context, now);
    // The old policy plans with no guard context but the calendar, as
    // the policy-change report always has.
    let (old_policy, old_context, meta) = match previous {
        Some((p, calendar)) => {
            let ctx = GuardContext {
                calendar,
                ..GuardContext::default()
            };
            let Previous {
                policy,
                since_plan,
                applied_ms,
                previous_policy_hash,
                policy_hash,
            } = p;
            (
                Some(policy),
                Some(ctx),
                Some((since_plan, applied_ms, previous_policy_hash, policy_hash)),
            )
        }
        None => (None, None, None),
    };
    let old_prepared = old_context
        .as_ref()
        .map(|ctx| Prepared::new(&people, ctx, now));
    let mut old_run = match (&old_policy, &old_prepared, &old_context) {
        (Some(p), Some(prep), Some(ctx)) => Some(prep.stream(p, &resolutions, ctx, now)),
        _ => None,
    };
    let rx = Mutex::new(rx);
    let plan_ns = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (parts, old_parts) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..planners.max(1))
            .map(|_| {
                let (run, old_run, rx, plan_ns) = (&run, &old_run, &rx, &plan_ns);
                scope.spawn(move || {
                    let mut parts = Vec::new();
                    let mut old_parts = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next
                        // connection, never while planning one.
                        let next = match rx.lock() {
                            Ok(mut r) => r.blocking_recv(),
                            Err(_) => None,
                        };
                        let Some(observed) = next else { break };
                        let t = Instant::now();
                        parts.push(run.plan_part(&observed));
                        if let Some(old) = old_run {
                            old_parts.push(old.plan_part(&observed));
                        }
                        plan_ns.fetch_add(
                            u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        drop(observed);
                    }
                    (parts, old_parts)
                })
            })
            .collect();
        let mut parts = Vec::new();
        let mut old_parts = Vec::new();
        for h in handles {
            let (p, o) = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            parts.extend(p);
            old_parts.extend(o);
        }
        (parts, old_parts)
    });
    let t = Instant::now();
    for p in parts {
        run.absorb(p);
    }
    let mut plan = run.finish();
    if let (Some(mut old), Some((since_plan, applied_ms, previous_policy_hash, policy_hash))) =
        (old_run.take(), meta)
    {
        for part in old_parts {
            old.absorb(part);
        }
        let before = old.finish();
        plan.policy_change = Some(PolicyChange {
            since_plan,
            applied_ms,
            previous_policy_hash,
            policy_hash,
            effect: policy_effect(&before, &plan),
        });
    }
    let plan_ms = plan_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
    (plan, plan_ms, ms_since(t))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
