//! One reconciliation run, end to end: import → read → plan → apply.
//!
//! 1. [`Engine::import_people`] replaces the people snapshot in the store.
//! 2. [`Engine::read`] reads every connection through its connector (the
//!    driver follows pages and reports completeness) and stores what it saw.
//! 3. [`Engine::plan`] loads people and observed accounts from the store,
//!    runs the pure [`roster_core::reconcile`], and stores the plan.
//! 4. [`Engine::apply`] enqueues the plan's actions as durable tasks and
//!    runs them through the connectors in batches (see
//!    [`crate::executor`]); [`Engine::run_worker`] runs queued tasks until
//!    stopped.
//!
//! Every step goes to the audit log. A connection whose read fails is left
//! out of the plan entirely: no action is planned against a state roster
//! could not see.
//!
//! Every read's outcome (ok, incomplete, failed) is recorded per connection
//! in the store and logged at WARN when it is not ok. After
//! [`Engine::read_quarantine_after`] failed reads in a row (3 by default)
//! the connection is quarantined, like one whose writes keep failing: reads
//! skip it (and say so) until `roster connections resume`, so a refused
//! credential is not hammered every cycle.

use std::collections::BTreeMap;
use std::sync::Arc;

use roster_connectors::driver::{self, DriverOptions, Progress};
use roster_connectors::{Connector, RateBudget};
use roster_core::guard::{self, GuardContext, SourceChange, SourceCounts};
use roster_core::plan::{PolicyChange, policy_effect};
use roster_core::vocabulary::{PolicyProblems, Vocabulary};
use roster_core::{
    ConnectionId, Observed, Operation, Person, Plan, Policy, Resolution, reconcile_guarded,
};
use roster_store::{
    ActionState, AuditEvent, PlanId, PlanPolicy, ReadHealth, ReadStatus, Store, StoreError,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::executor::{Executor, ExecutorOptions, Mode};

/// An engine failure. Connector failures for single actions are results,
/// not errors; these are failures of the run itself.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("plan {0} not found")]
    PlanNotFound(String),
    #[error("no connection reads succeeded; nothing to plan against")]
    NothingRead,
    /// The engine will not do what was asked; the message says why and
    /// what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The policy names connections or attributes the deployment does not
    /// have ([`Engine::vocabulary`]); nothing is planned until it is fixed.
    #[error(
        "{0}\nnothing was planned; fix the policy (`roster policy check` lists the same problems)"
    )]
    PolicyUnsound(#[from] PolicyProblems),
}

/// How reading one connection went.
#[derive(Clone, Debug)]
pub struct ReadOutcome {
    pub connection: ConnectionId,
    pub accounts: usize,
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// Set when the read failed outright; the previous read is kept.
    pub error: Option<String>,
}

/// How applying a plan went, per connection.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub applied: BTreeMap<ConnectionId, usize>,
    pub failed: Vec<(ConnectionId, String, String)>,
    pub skipped: usize,
    pub manual: usize,
    /// Actions still queued when `apply` returned: retries due later than
    /// [`crate::ExecutorOptions::apply_max_wait`], or held by a quarantine.
    /// The next `apply` (or a running worker) carries them on.
    pub pending: usize,
    /// Actions waiting for a person's approval: not run, no task. Approve
    /// them and `apply` again (see [`crate::governance`]).
    pub held: usize,
    /// Connections quarantined, with the reason.
    pub quarantined: Vec<(ConnectionId, String)>,
    /// Connections a person paused (`roster pause`), with who and why:
    /// their actions stay queued until `roster resume`.
    pub paused: Vec<(ConnectionId, String)>,
}

impl ApplyReport {
    pub fn applied_total(&self) -> usize {
        self.applied.values().sum()
    }
}

struct Wired {
    connector: Arc<dyn Connector>,
    budget: Arc<dyn RateBudget>,
}

/// The engine: a store, a policy and the connectors.
pub struct Engine {
    pub store: Store,
    pub policy: Policy,
    connectors: BTreeMap<ConnectionId, Wired>,
    pub driver: DriverOptions,
    /// Who the audit log names for the engine's own steps.
    pub actor: String,
    clock: fn() -> OffsetDateTime,
    /// The app catalog: manual checklists and path choices for actions no
    /// connector can carry out.
    pub catalog: Option<roster_catalog::Catalog>,
    /// Which catalog app each connection is, with its settings.
    pub bindings: BTreeMap<ConnectionId, crate::human::AppBinding>,
    /// Where import files for people (CSV, xlsx) are written; `None`: none.
    pub exports_dir: Option<std::path::PathBuf>,
    /// How plans are executed as durable tasks (see [`crate::executor`]).
    pub executor: ExecutorOptions,
    /// Signs audit checkpoints and hands them to witnesses outside the
    /// database (see [`crate::anchor`]); `None`: not anchored.
    pub anchor: Option<Arc<crate::anchor::AuditAnchor>>,
    /// What the deployment provides (configured connections, source
    /// attributes). When set, every plan first checks the policy against
    /// it ([`Engine::check_policy`]) and refuses to plan on any problem.
    pub vocabulary: Option<Vocabulary>,
    /// Failed reads in a row after which a connection is quarantined
    /// (0: never).
    pub read_quarantine_after: u32,
}

/// The default for [`Engine::read_quarantine_after`].
pub const READ_QUARANTINE_AFTER: u32 = 3;

/// The people source the source-change guard keeps a baseline for: the
/// store holds one people snapshot, whatever file or system it came from.
pub const PEOPLE_SOURCE: &str = "people";

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Engine {
    pub fn new(store: Store, policy: Policy) -> Self {
        Engine {
            store,
            policy,
            connectors: BTreeMap::new(),
            driver: DriverOptions::default(),
            actor: "roster".to_string(),
            clock: OffsetDateTime::now_utc,
            catalog: None,
            bindings: BTreeMap::new(),
            exports_dir: None,
            executor: ExecutorOptions::default(),
            anchor: None,
            vocabulary: None,
            read_quarantine_after: READ_QUARANTINE_AFTER,
        }
    }

    /// Checkpoints the audit chain head to the witnesses, if an anchor is
    /// configured (see [`crate::anchor::AuditAnchor::checkpoint`]). A
    /// witness that is down is a warning in the outcome, not an error.
    pub async fn checkpoint_audit(
        &self,
    ) -> Result<Option<crate::anchor::CheckpointOutcome>, crate::anchor::AnchorError> {
        match &self.anchor {
            None => Ok(None),
            Some(a) => a.checkpoint(&self.store, ms(self.now())).await.map(Some),
        }
    }

    /// Checks the policy against [`Engine::vocabulary`] (when set): every
    /// name it uses must exist, or nothing is planned.
    pub fn check_policy(&self) -> Result<(), EngineError> {
        let Some(vocabulary) = &self.vocabulary else {
            return Ok(());
        };
        let problems = self.policy.check_against(vocabulary);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyProblems(problems).into())
        }
    }

    /// The policy as a plan records it (its text and hash), when it was
    /// parsed from text.
    pub(crate) fn plan_policy(&self) -> Option<PlanPolicy> {
        Some(PlanPolicy {
            hash: self.policy.text_hash()?,
            text: self.policy.text()?.to_string(),
        })
    }

    /// When the policy differs from the one the last applied plan was
    /// computed under: what the difference alone causes, found by planning
    /// the same people and accounts under the old policy too and comparing
    /// ([`policy_effect`]).
    async fn policy_change(
        &self,
        people: &[Person],
        observed: &[Observed],
        resolutions: &[Resolution],
        now: OffsetDateTime,
        plan: &Plan,
    ) -> Result<Option<PolicyChange>, EngineError> {
        let Some(current) = self.policy.text_hash() else {
            return Ok(None);
        };
        let Some(last) = self.store.last_applied_plan().await? else {
            return Ok(None);
        };
        let Some(previous) = last.policy.filter(|p| p.hash != current) else {
            return Ok(None);
        };
        let old = match Policy::parse(&format!("policy of plan {}", last.id), &previous.text) {
            Ok(old) => old,
            Err(e) => {
                // A policy this build can no longer read cannot be
                // compared; the plan itself is still sound.
                tracing::warn!(plan = %last.id, error = %e, "cannot re-read the last applied plan's policy");
                return Ok(None);
            }
        };
        let before = roster_core::reconcile_with(people, observed, &old, resolutions, now);
        Ok(Some(PolicyChange {
            since_plan: last.id.to_string(),
            applied_ms: last.applied_ms,
            previous_policy_hash: previous.hash,
            policy_hash: current,
            effect: policy_effect(&before, plan),
        }))
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Registers a connector. Its requests are paced by a rate budget in
    /// the store ([`crate::StoreBudget`]) built from its declared
    /// (documented) limits, shared with every process using this database.
    pub fn add_connector(&mut self, connector: Arc<dyn Connector>) {
        let budget = Arc::new(crate::StoreBudget::new(
            self.store.clone(),
            connector.id().clone(),
            connector.capabilities().rate_limits.clone(),
        ));
        self.add_connector_with_budget(connector, budget);
    }

    /// Registers a connector paced by `budget` instead (a budget with a
    /// wider margin for tests on busy machines, or an in-memory one).
    pub fn add_connector_with_budget(
        &mut self,
        connector: Arc<dyn Connector>,
        budget: Arc<dyn RateBudget>,
    ) {
        self.connectors
            .insert(connector.id().clone(), Wired { connector, budget });
    }

    /// Whether a registered connector can carry out `op` on `connection`.
    pub fn connector_supports(&self, connection: &ConnectionId, op: Operation) -> bool {
        self.connectors
            .get(connection)
            .is_some_and(|w| w.connector.capabilities().supports(op))
    }

    pub fn connector_ids(&self) -> Vec<ConnectionId> {
        self.connectors.keys().cloned().collect()
    }

    /// Drops every connector but those of `keep`, so that `read`, `apply`
    /// and the service touch only these apps (`roster plan --connection`).
    pub fn retain_connectors(&mut self, keep: &[ConnectionId]) {
        self.connectors.retain(|id, _| keep.contains(id));
    }

    /// The connector and rate budget serving `connection`.
    pub(crate) fn connection_parts(
        &self,
        connection: &ConnectionId,
    ) -> Option<(&dyn Connector, &dyn RateBudget)> {
        self.connectors
            .get(connection)
            .map(|w| (&*w.connector, &*w.budget))
    }

    pub(crate) async fn audit(
        &self,
        kind: &str,
        subject: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.audit_as(&self.actor.clone(), kind, subject, data)
            .await
    }

    /// Appends an audit event attributed to `actor` (a person, for
    /// approvals and resolutions).
    pub(crate) async fn audit_as(
        &self,
        actor: &str,
        kind: &str,
        subject: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(AuditEvent {
                at_ms: ms(self.now()),
                actor: actor.to_string(),
                kind: kind.to_string(),
                subject: subject.to_string(),
                data,
            })
            .await
            .map(|_| ())
    }

    /// Replaces the people snapshot with `people` (already validated).
    ///
    /// The snapshot becomes the accepted baseline of the source-change
    /// guard when it looks fine against the last accepted one (or is the
    /// first). When it shrank, or terminated many at once, it is stored
    /// but not accepted: plans withhold every deactivation until a person
    /// confirms it ([`Engine::accept_source_change`]). Returns that change.
    pub async fn import_people(
        &self,
        people: &[Person],
        source: &str,
    ) -> Result<Option<SourceChange>, EngineError> {
        self.store.replace_people(people).await?;
        let counts = SourceCounts::of(people);
        self.audit(
            "source.imported",
            source,
            json!({ "people": counts.people, "terminated": counts.terminated }),
        )
        .await?;
        let change = self.source_check(counts, "roster").await?;
        if let Some(c) = &change {
            tracing::warn!(source, change = %c.detail, "source change held: deactivations withheld until confirmed");
            self.audit(
                "source.change_held",
                source,
                json!({
                    "detail": c.detail,
                    "accepted": { "people": c.accepted.people, "terminated": c.accepted.terminated },
                    "current": { "people": c.current.people, "terminated": c.current.terminated },
                }),
            )
            .await?;
        }
        Ok(change)
    }

    /// Judges `counts` against the accepted baseline: accepts it (as
    /// `actor`) when it looks fine or nothing was accepted yet, and returns
    /// the change otherwise.
    async fn source_check(
        &self,
        counts: SourceCounts,
        actor: &str,
    ) -> Result<Option<SourceChange>, EngineError> {
        let baseline = self.store.source_baseline(PEOPLE_SOURCE).await?;
        let change = guard::source_change(
            baseline.as_ref().map(|b| b.counts),
            counts,
            &self.policy.approvals,
        );
        if change.is_none() && baseline.is_none_or(|b| b.counts != counts) {
            self.store
                .accept_source(PEOPLE_SOURCE, counts, ms(self.now()), actor)
                .await?;
        }
        Ok(change)
    }

    /// A person confirms the people snapshot the store holds: it becomes
    /// the source-change guard's baseline, and the next plan carries the
    /// deactivations it asks for (`roster plan --accept-source-change`).
    /// Returns the accepted size.
    pub async fn accept_source_change(&self, actor: &str) -> Result<SourceCounts, EngineError> {
        let counts = self.store.people_counts().await?;
        let before = self.store.source_baseline(PEOPLE_SOURCE).await?;
        self.store
            .accept_source(PEOPLE_SOURCE, counts, ms(self.now()), actor)
            .await?;
        self.audit_as(
            actor,
            "source.accepted",
            PEOPLE_SOURCE,
            json!({
                "people": counts.people,
                "terminated": counts.terminated,
                "previous": before.map(|b| json!({ "people": b.counts.people, "terminated": b.counts.terminated })),
            }),
        )
        .await?;
        Ok(counts)
    }

    /// What the guards need to know that the store holds: connections no
    /// applied plan has covered, and whether the people snapshot is a
    /// source change not yet confirmed.
    pub async fn guard_context(&self) -> Result<GuardContext, EngineError> {
        let applied = self.store.applied_connections().await?;
        let first_plan = self
            .policy
            .governed_connections()
            .into_iter()
            .filter(|c| !applied.contains(c))
            .collect();
        let counts = self.store.people_counts().await?;
        let source_change = self.source_check(counts, "roster").await?;
        Ok(GuardContext {
            first_plan,
            active_counts: None,
            source_change,
        })
    }

    /// Records that a plan is being carried out: the connections it covers
    /// leave their first plan (see [`roster_core::guard`]).
    pub(crate) async fn mark_applied(&self, plan_id: &PlanId) -> Result<(), EngineError> {
        let Some(stored) = self.store.plan(plan_id).await? else {
            return Err(EngineError::PlanNotFound(plan_id.to_string()));
        };
        // A connection with an action still waiting for approval stays in
        // its first plan: otherwise applying a first plan's grants would
        // let its held removals through unguarded next time.
        let waiting = self.approval_status(plan_id).await?.waiting;
        let connections: Vec<ConnectionId> = stored
            .plan
            .classification
            .keys()
            .filter(|c| {
                !waiting.keys().any(|i| {
                    stored
                        .plan
                        .actions
                        .get(*i)
                        .is_some_and(|a| &a.connection == *c)
                })
            })
            .cloned()
            .collect();
        self.store
            .mark_connections_applied(&connections, plan_id.as_str(), ms(self.now()))
            .await?;
        Ok(())
    }

    /// Reads every connection. A failed read is reported, not fatal.
    pub async fn read(
        &self,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<Vec<ReadOutcome>, EngineError> {
        let mut outcomes = Vec::new();
        let health = self.store.read_health().await?;
        for (id, wired) in &self.connectors {
            if let Some(reason) = self.read_quarantine(id, &health).await? {
                let error = format!(
                    "quarantined after {reason}; not read until `roster connections resume {id}`"
                );
                tracing::warn!(connection = %id, "{error}");
                outcomes.push(ReadOutcome {
                    connection: id.clone(),
                    accounts: 0,
                    complete: false,
                    incomplete_reason: None,
                    error: Some(error),
                });
                continue;
            }
            let mut p = |pr: &Progress<'_>| progress(id, pr);
            let result = driver::read_all_with_progress(
                &*wired.connector,
                &*wired.budget,
                &self.executor.retry,
                &self.driver,
                &mut p,
            )
            .await;
            match result {
                Ok(observed) => {
                    self.store
                        .replace_accounts(&observed, ms(self.now()))
                        .await?;
                    let status = if observed.complete {
                        ReadStatus::Ok
                    } else {
                        tracing::warn!(
                            connection = %id,
                            reason = observed.incomplete_reason.as_deref().unwrap_or("no reason given"),
                            "read incomplete: deactivations withheld for this connection"
                        );
                        ReadStatus::Incomplete
                    };
                    self.store
                        .record_read(
                            id,
                            status,
                            observed.incomplete_reason.as_deref(),
                            ms(self.now()),
                        )
                        .await?;
                    self.audit(
                        "connection.read",
                        id.as_str(),
                        json!({
                            "accounts": observed.accounts.len(),
                            "complete": observed.complete,
                            "incomplete_reason": observed.incomplete_reason,
                        }),
                    )
                    .await?;
                    outcomes.push(ReadOutcome {
                        connection: id.clone(),
                        accounts: observed.accounts.len(),
                        complete: observed.complete,
                        incomplete_reason: observed.incomplete_reason.clone(),
                        error: None,
                    });
                }
                Err(e) => {
                    let in_a_row = self
                        .store
                        .record_read(id, ReadStatus::Failed, Some(&e.to_string()), ms(self.now()))
                        .await?;
                    tracing::warn!(
                        connection = %id,
                        error = %e,
                        failed_reads_in_a_row = in_a_row,
                        "read failed: the connection is left out of this plan"
                    );
                    self.audit(
                        "connection.read_failed",
                        id.as_str(),
                        json!({ "error": e.to_string(), "code": e.code(), "in_a_row": in_a_row }),
                    )
                    .await?;
                    if self.read_quarantine_after > 0 && in_a_row >= self.read_quarantine_after {
                        let reason = format!("{in_a_row} failed reads in a row (last: {e})");
                        tracing::error!(connection = %id, %reason, "quarantining connection");
                        self.store.quarantine_connection(id, &reason).await?;
                        self.audit(
                            "connection.quarantined",
                            id.as_str(),
                            json!({ "reason": reason, "cause": "reads" }),
                        )
                        .await?;
                    }
                    outcomes.push(ReadOutcome {
                        connection: id.clone(),
                        accounts: 0,
                        complete: false,
                        incomplete_reason: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        Ok(outcomes)
    }

    /// Why `id`'s reads are quarantined: it is quarantined and its reads
    /// are what failed (a quarantine for failing writes alone still lets
    /// plans read it).
    async fn read_quarantine(
        &self,
        id: &ConnectionId,
        health: &[ReadHealth],
    ) -> Result<Option<String>, EngineError> {
        let failing = health.iter().find(|h| &h.connection == id).filter(|h| {
            self.read_quarantine_after > 0 && h.failures_in_a_row >= self.read_quarantine_after
        });
        let Some(h) = failing else {
            return Ok(None);
        };
        Ok(self
            .store
            .connection(id)
            .await?
            .filter(|c| c.status == roster_store::QUARANTINED)
            .map(|_| {
                format!(
                    "{} failed reads in a row (last: {})",
                    h.failures_in_a_row,
                    h.detail.as_deref().unwrap_or("no detail")
                )
            }))
    }

    /// Computes and stores a plan from what the store holds. Only
    /// connections in `readable` are planned (pass the ones whose read
    /// just succeeded); `None` plans every stored observation.
    pub async fn plan(
        &self,
        readable: Option<&[ConnectionId]>,
    ) -> Result<(PlanId, Plan), EngineError> {
        let now = self.now();
        let plan = self.compute_plan(readable).await?;
        let id = self
            .store
            .save_plan_under(&plan, ms(now), self.plan_policy().as_ref())
            .await?;
        let counts: BTreeMap<&str, usize> = plan
            .counts()
            .into_iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        self.audit(
            "plan.created",
            id.as_str(),
            json!({
                "hash": plan.hash(),
                "observed_digest": plan.observed_digest,
                "actions": counts,
                "findings": plan.findings.len(),
                "policy_hash": self.policy.text_hash(),
                "policy_change": plan.policy_change,
            }),
        )
        .await?;
        // The fresh read is what verifies (or reopens) human tasks.
        self.verify_tasks(&plan).await?;
        Ok((id, plan))
    }

    /// The plan the store's people and observations call for now, with
    /// the policy-change report; stores and audits nothing (see
    /// [`Engine::plan`]).
    pub async fn compute_plan(
        &self,
        readable: Option<&[ConnectionId]>,
    ) -> Result<Plan, EngineError> {
        self.check_policy()?;
        let mut people = self.store.people().await?;
        // What IdPs pushed to the SCIM gateway is intent too.
        self.fold_gateway(&mut people).await?;
        let observed = self.governed_observations(readable).await?;
        let resolutions = self.resolutions().await?;
        let context = self.guard_context().await?;
        let now = self.now();
        let mut plan = reconcile_guarded(
            &people,
            &observed,
            &self.policy,
            &resolutions,
            &context,
            now,
        );
        plan.policy_change = self
            .policy_change(&people, &observed, &resolutions, now, &plan)
            .await?;
        Ok(plan)
    }

    /// Applies a stored plan durably, resuming wherever an earlier apply
    /// (or a crashed process) left it.
    ///
    /// Its pending and failed actions are enqueued as tasks (once: an
    /// action that already has a task keeps it, and dead letters of this
    /// plan get a fresh attempt budget, since asking again is what an
    /// operator re-running `apply` means). Actions for a connection with no
    /// connector become manual. The executor then runs this plan's tasks
    /// until they are settled, or only retries due later than
    /// [`ExecutorOptions::apply_max_wait`] or a quarantined connection
    /// remain. The report covers the whole plan, not only this call.
    pub async fn apply(
        &self,
        plan_id: &PlanId,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<ApplyReport, EngineError> {
        if self.store.plan(plan_id).await?.is_none() {
            return Err(EngineError::PlanNotFound(plan_id.to_string()));
        }
        self.audit("plan.apply_started", plan_id.as_str(), json!({}))
            .await?;
        let (enqueued, manual) = self.enqueue_plan(plan_id).await?;
        tracing::info!(
            plan = %plan_id,
            new = enqueued.inserted,
            existing = enqueued.existing,
            manual,
            "plan tasks enqueued"
        );

        let connections = self.connector_ids();
        let (_stop_tx, stop_rx) = watch::channel(false);
        Executor::new(self, Some(plan_id.clone()), progress)
            .run(connections.clone(), Mode::UntilSettled, stop_rx)
            .await?;

        let mut report = ApplyReport::default();
        let waiting = self.approval_status(plan_id).await?.waiting;
        for a in self.store.actions(plan_id).await? {
            let connection = a.action.connection.clone();
            if a.state == ActionState::Pending && waiting.contains_key(&a.index) {
                report.held += 1;
                continue;
            }
            match a.state {
                ActionState::Done => *report.applied.entry(connection).or_insert(0) += 1,
                ActionState::Failed => report.failed.push((
                    connection,
                    a.action.email.to_string(),
                    a.detail.unwrap_or_default(),
                )),
                ActionState::Skipped => report.skipped += 1,
                ActionState::Pending | ActionState::Running => report.pending += 1,
                ActionState::Manual => report.manual += 1,
            }
        }
        for c in &connections {
            let status = self.store.queue_status(c, None).await?;
            if let Some(reason) = status.quarantined {
                report.quarantined.push((c.clone(), reason));
            }
            if let Some(why) = status.paused {
                report.paused.push((c.clone(), why));
            }
        }
        self.audit(
            "plan.apply_finished",
            plan_id.as_str(),
            json!({
                "applied": report.applied_total(),
                "failed": report.failed.len(),
                "skipped": report.skipped,
                "manual": report.manual,
                "pending": report.pending,
                "quarantined": report.quarantined.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                "paused": report.paused.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                "worker": self.executor.worker_id,
            }),
        )
        .await?;
        Ok(report)
    }

    /// Hands a stored plan to the task queue without running it (a
    /// worker, [`Engine::run_worker`], picks it up). Idempotent: actions
    /// that have a task keep it. This plan's dead letters get a fresh
    /// attempt budget, and actions for a connection with no connector
    /// become manual. Returns what was enqueued and how many actions became
    /// manual.
    pub async fn enqueue_plan(
        &self,
        plan_id: &PlanId,
    ) -> Result<(roster_store::EnqueueReport, usize), EngineError> {
        if self.store.plan(plan_id).await?.is_none() {
            return Err(EngineError::PlanNotFound(plan_id.to_string()));
        }
        // From here on the plan counts as applied: the next plan compares
        // its policy with this one's.
        self.store
            .mark_plan_applied(plan_id, ms(self.now()))
            .await?;
        // Actions waiting for approval are left out, and only they: a
        // held removal never keeps a leaver's deactivation (or anything
        // else that needs no approval) from running now.
        let held: std::collections::BTreeSet<usize> = self
            .approval_status(plan_id)
            .await?
            .waiting
            .into_keys()
            .collect();
        let stored = self.store.actions(plan_id).await?;
        let mut manual = 0usize;
        for a in &stored {
            if matches!(a.state, ActionState::Pending | ActionState::Failed)
                && !held.contains(&a.index)
                && !self.connectors.contains_key(&a.action.connection)
            {
                let detail = format!(
                    "no automated path for {}: {} {} by hand",
                    a.action.connection, a.action.operation, a.action.email
                );
                self.store
                    .set_action_state(
                        plan_id,
                        a.index,
                        ActionState::Manual,
                        Some(detail),
                        ms(self.now()),
                    )
                    .await?;
                manual += 1;
            }
        }
        let connections = self.connector_ids();
        let now = ms(self.now());
        self.store.requeue_dead_tasks(plan_id, None, now).await?;
        let enqueued = self
            .store
            .enqueue_plan_tasks_except(
                plan_id,
                &connections,
                &held,
                self.executor.retry.max_attempts,
                now,
            )
            .await?;
        self.mark_applied(plan_id).await?;
        Ok((enqueued, manual))
    }

    /// Runs every plan's tasks, for every connection, until `stop`
    /// completes (`roster run`). Batches in flight when `stop` fires are
    /// finished and recorded first.
    ///
    /// Leases of an earlier process with the same
    /// [`ExecutorOptions::worker_id`] are released at start: that process
    /// is known to be gone, so its tasks need not wait for the lease to
    /// expire.
    pub async fn run_worker(&self, stop: impl Future<Output = ()>) -> Result<(), EngineError> {
        let released = self
            .store
            .release_leases_of(&self.executor.worker_id, ms(self.now()))
            .await?;
        if released > 0 {
            tracing::warn!(
                released,
                worker = %self.executor.worker_id,
                "released the leases of this worker's previous run"
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut quiet = |_: &ConnectionId, _: &Progress<'_>| {};
        let executor = Executor::new(self, None, &mut quiet);
        let work = executor.run(self.connector_ids(), Mode::Forever, stop_rx);
        let mut work = std::pin::pin!(work);
        tokio::select! {
            done = &mut work => return done,
            () = stop => {
                let _ = stop_tx.send(true);
            }
        }
        work.await
    }
}
