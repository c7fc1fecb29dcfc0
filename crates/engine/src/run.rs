//! One reconciliation run, end to end: import → read → plan → apply.
//!
//! 1. [`Engine::import_people`] replaces the people snapshot in the store.
//! 2. [`Engine::read`] reads every connection through its connector (the
//!    driver follows pages and reports completeness) and stores what it saw.
//! 3. [`Engine::plan`] loads people and observed accounts from the store,
//!    runs the pure [`roster_core::reconcile`], and stores the plan.
//! 4. [`Engine::apply`] hands each connection's pending actions to its
//!    connector in batches and records every result.
//!
//! Every step goes to the audit log. A connection whose read fails is left
//! out of the plan entirely: no action is planned against a state roster
//! could not see.

use std::collections::BTreeMap;
use std::sync::Arc;

use roster_connectors::driver::{self, DriverOptions, Progress};
use roster_connectors::{ActionResult, Connector, RateLimiter};
use roster_core::{ConnectionId, Operation, Person, Plan, Policy, reconcile_with};
use roster_store::{ActionState, AuditEvent, PlanId, Store, StoreError};
use serde_json::json;
use time::OffsetDateTime;

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
}

impl ApplyReport {
    pub fn applied_total(&self) -> usize {
        self.applied.values().sum()
    }
}

struct Wired {
    connector: Arc<dyn Connector>,
    limiter: RateLimiter,
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
}

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
        }
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Registers a connector; its rate limiter comes from its declared
    /// (documented) limits.
    pub fn add_connector(&mut self, connector: Arc<dyn Connector>) {
        let limiter = RateLimiter::new(connector.capabilities().rate_limits.clone());
        self.connectors
            .insert(connector.id().clone(), Wired { connector, limiter });
    }

    pub fn connector_ids(&self) -> Vec<ConnectionId> {
        self.connectors.keys().cloned().collect()
    }

    async fn audit(
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
    pub async fn import_people(&self, people: &[Person], source: &str) -> Result<(), EngineError> {
        self.store.replace_people(people).await?;
        self.audit("source.imported", source, json!({ "people": people.len() }))
            .await?;
        Ok(())
    }

    /// Reads every connection. A failed read is reported, not fatal.
    pub async fn read(
        &self,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<Vec<ReadOutcome>, EngineError> {
        let mut outcomes = Vec::new();
        for (id, wired) in &self.connectors {
            let mut p = |pr: &Progress<'_>| progress(id, pr);
            let result = driver::read_all_with_progress(
                &*wired.connector,
                &wired.limiter,
                &self.driver,
                &mut p,
            )
            .await;
            match result {
                Ok(observed) => {
                    self.store
                        .replace_accounts(&observed, ms(self.now()))
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
                    self.audit(
                        "connection.read_failed",
                        id.as_str(),
                        json!({ "error": e.to_string(), "code": e.code() }),
                    )
                    .await?;
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

    /// Computes and stores a plan from what the store holds. Only
    /// connections in `readable` are planned (pass the ones whose read
    /// just succeeded); `None` plans every stored observation.
    pub async fn plan(
        &self,
        readable: Option<&[ConnectionId]>,
    ) -> Result<(PlanId, Plan), EngineError> {
        let people = self.store.people().await?;
        let observed = self.governed_observations(readable).await?;
        let resolutions = self.resolutions().await?;
        let now = self.now();
        let plan = reconcile_with(&people, &observed, &self.policy, &resolutions, now);
        let id = self.store.save_plan(&plan, ms(now)).await?;
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
            }),
        )
        .await?;
        Ok((id, plan))
    }

    /// Applies every pending (or previously failed) action of a stored
    /// plan. Actions for a connection with no connector become manual.
    pub async fn apply(
        &self,
        plan_id: &PlanId,
        progress: &mut (dyn FnMut(&ConnectionId, &Progress<'_>) + Send),
    ) -> Result<ApplyReport, EngineError> {
        let stored = self.store.actions(plan_id).await?;
        if self.store.plan(plan_id).await?.is_none() {
            return Err(EngineError::PlanNotFound(plan_id.to_string()));
        }
        self.audit("plan.apply_started", plan_id.as_str(), json!({}))
            .await?;
        let mut by_connection: BTreeMap<ConnectionId, Vec<(usize, roster_core::Action)>> =
            BTreeMap::new();
        for a in stored {
            if matches!(a.state, ActionState::Pending | ActionState::Failed) {
                by_connection
                    .entry(a.action.connection.clone())
                    .or_default()
                    .push((a.index, a.action));
            }
        }
        let mut report = ApplyReport::default();
        for (connection, actions) in by_connection {
            let Some(wired) = self.connectors.get(&connection) else {
                for (idx, action) in &actions {
                    let detail = format!(
                        "no automated path for {connection}: {} {} by hand",
                        action.operation, action.email
                    );
                    self.store
                        .set_action_state(
                            plan_id,
                            *idx,
                            ActionState::Manual,
                            Some(detail),
                            ms(self.now()),
                        )
                        .await?;
                    report.manual += 1;
                }
                continue;
            };
            for (idx, _) in &actions {
                self.store
                    .set_action_state(plan_id, *idx, ActionState::Running, None, ms(self.now()))
                    .await?;
            }
            let mut p = |pr: &Progress<'_>| progress(&connection, pr);
            let results = driver::apply_all(
                &*wired.connector,
                actions.iter().map(|(_, a)| a.clone()).collect(),
                false,
                &wired.limiter,
                &self.driver,
                &mut p,
            )
            .await;
            for ((idx, action), result) in actions.iter().zip(results) {
                let subject = format!("{connection}:{}", action.email.normalized());
                let (state, detail, kind) = match &result {
                    ActionResult::Applied => (ActionState::Done, None, "action.applied"),
                    ActionResult::Failed { reason, .. } => {
                        report.failed.push((
                            connection.clone(),
                            action.email.to_string(),
                            reason.clone(),
                        ));
                        (ActionState::Failed, Some(reason.clone()), "action.failed")
                    }
                    ActionResult::Skipped { reason } => {
                        report.skipped += 1;
                        (ActionState::Skipped, Some(reason.clone()), "action.skipped")
                    }
                };
                if state == ActionState::Done {
                    *report.applied.entry(connection.clone()).or_insert(0) += 1;
                }
                self.store
                    .set_action_state(plan_id, *idx, state, detail.clone(), ms(self.now()))
                    .await?;
                self.audit(
                    kind,
                    &subject,
                    json!({
                        "plan": plan_id.as_str(),
                        "action": idx,
                        "operation": action.operation.as_str(),
                        "reason": action.reason,
                        "detail": detail,
                        "deprovision": action.operation == Operation::Deactivate,
                    }),
                )
                .await?;
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
            }),
        )
        .await?;
        Ok(report)
    }
}
