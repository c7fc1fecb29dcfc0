//! The application layer: one door through which every surface plans,
//! approves and applies.
//!
//! The CLI, the demo, the service, the SCIM gateway's events and every
//! coming surface (REST, web UI, MCP) call [`Roster`], one method per use
//! case, each with the authenticated [`Principal`] it acts for. Nothing
//! outside this module reaches into the store or the connectors to change
//! anything: the engine's working parts are `pub(crate)`.
//!
//! * **Plan** ([`Roster::plan`]) everyone, some connections or one person
//!   with the one planning function ([`crate::planning`]); the plan is
//!   stored as proposed by the principal. Verifying human tasks against the
//!   fresh read is its own step ([`Roster::verify_tasks`]).
//! * **Decide** ([`Roster::approve`], [`Roster::reject`]): bound to the
//!   plan's hash, judged against separation of duties and app owners.
//! * **Carry out**: [`Roster::check`] (or [`Roster::check_planned`] for a
//!   plan just computed) is the one check; it returns [`Approved`], the
//!   only value [`Roster::apply`] and [`Roster::enqueue`] accept.
//! * **Whole runs** the service makes ([`Roster::reconcile`],
//!   [`Roster::reconcile_person`]) and an explicit offboarding
//!   ([`Roster::offboard`]) are sequences of the above, written once here.
//!
//! The principal is recorded in the audit log for every event the call
//! writes (plan.created, plan.approved, plan.apply_started, ...).

/// Readiness and the gauges `/metrics` refreshes (another `impl Roster`).
pub mod health;
/// The scheduler's full run, fenced by its lease.
pub mod leadership;
pub mod notifications;
/// Sign-in to the web UI through the company's IdP (OpenID Connect).
pub mod oidc_signin;
pub mod probe;
pub mod tickets;
pub mod tokens;
/// The web UI's users and sessions; a leaver's own roster access ends.
pub mod web_users;

use std::path::PathBuf;

use roster_connectors::driver::Progress;
use roster_core::guard::{SourceChange, SourceCounts};
use roster_core::{ConnectionId, EmployeeId, Person, Plan, Principal};
use roster_store::{
    AuditKind, Decision, HumanTask, MatchResolution, PersonOverride, PlanId, Store,
};
use serde_json::json;

use crate::approval::{ApprovalStatus, Approved, Freshness, JustPlanned};
use crate::controls::QueuedMatch;
use crate::engine::{Engine, EngineError, ms};
use crate::execution::{ApplyReport, Enqueued};
use crate::planning::{PersonRef, PlanScope};
use crate::read::ReadOutcome;
use crate::sources::SourceSync;

/// Progress of reads and applies (waits for a rate window, retries).
pub type ProgressFn<'a> = dyn FnMut(&ConnectionId, &Progress<'_>) + Send + 'a;

/// A plan just computed and stored. Carries the proof that it was planned
/// from a fresh read, which [`Roster::check_planned`] accepts instead of
/// reading the apps again.
#[derive(Debug)]
pub struct Planned {
    pub id: PlanId,
    pub plan: Plan,
    /// The person a targeted plan is about.
    pub person: Option<Person>,
    proof: JustPlanned,
}

/// What a refresh (read, import, plan) is asked to do.
#[derive(Clone, Debug, Default)]
pub struct RefreshOptions {
    /// A new people snapshot to import (already validated), and where it
    /// came from; `None`: plan against the people the store holds.
    pub people: Option<(Vec<Person>, String)>,
    /// Confirm the people source as it is (the source-change guard).
    pub accept_source_change: bool,
    /// Plan only this connection (of those read).
    pub only: Option<ConnectionId>,
    /// Plan only this person.
    pub person: Option<PersonRef>,
}

/// What a refresh did.
#[derive(Debug)]
pub struct Refreshed {
    /// How reading each connection went.
    pub outcomes: Vec<ReadOutcome>,
    /// The source change the import is, when its deactivations are
    /// withheld until someone confirms.
    pub source_change: Option<SourceChange>,
    /// What the identity providers gave, when any are configured.
    pub sources: Option<crate::sources::SourcesImported>,
    /// The people counts accepted, when `accept_source_change` was asked.
    pub accepted: Option<SourceCounts>,
    pub planned: Planned,
}

/// How the service's runs treat a plan.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The HR file to import before a full run, if the source is a file.
    pub hr_csv: Option<PathBuf>,
    /// Carry out plans without a person's go-ahead (actions that need
    /// approval are still held). Off: every plan waits for `roster apply`.
    pub auto_apply: bool,
}

/// What one reconciliation did, for logs and tests.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub plan: Option<PlanId>,
    pub actions: usize,
    /// Actions queued for the worker.
    pub queued: usize,
    /// Human tasks routed.
    pub tasks: usize,
    pub awaiting_approval: usize,
}

/// What an offboarding did.
#[derive(Debug)]
pub struct Offboarding {
    pub person: Person,
    pub plan_id: PlanId,
    pub plan: Plan,
    pub report: ApplyReport,
    pub enqueued: Enqueued,
    /// Actions still waiting for someone else's approval (an app whose
    /// approvers do not include the principal).
    pub held: Vec<(usize, String)>,
    /// The person's IdP sessions, ended first, source by source (see
    /// [`crate::revoke`]); a failure here is also an open human task.
    pub revocations: Vec<crate::revoke::Revocation>,
}

pub use crate::person::{PersonAccess, RemainingAccess};

/// The application layer (module docs).
pub struct Roster {
    engine: Engine,
}

impl Roster {
    pub fn new(engine: Engine) -> Roster {
        Roster { engine }
    }

    /// The engine, for queries: stored plans, reports, health. Its
    /// changing operations are not reachable from outside the crate.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store, for queries.
    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Reads every connection; changes nothing in any app.
    pub async fn read(
        &self,
        by: &Principal,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<ReadOutcome>, EngineError> {
        tracing::debug!(principal = %by, "reading every connection");
        self.engine.read(progress).await
    }

    /// Replaces the people snapshot; returns the source change it is, if
    /// its deactivations are withheld until someone confirms.
    pub async fn import_people(
        &self,
        by: &Principal,
        people: &[Person],
        source: &str,
    ) -> Result<Option<SourceChange>, EngineError> {
        let change = self
            .engine
            .import_people(&by.actor(), people, source)
            .await?;
        // roster governs its own users: a leaver's UI sessions and API
        // tokens end with the import that says they left, unless the
        // source-change guard holds the import's deactivations (then when
        // someone accepts the source).
        if change.is_none() {
            self.end_leavers_roster_access(by, people).await?;
        }
        Ok(change)
    }

    /// Reads every configured identity provider whole, merges their
    /// people with `hr` (the HR file's, already validated, with its label)
    /// by attribute mastering, and imports the result as one snapshot
    /// through [`Roster::import_people`], so the source-change guard judges
    /// it (see [`crate::sources`]). A source that cannot be read completely
    /// imports nothing and is an error naming it. With no source
    /// configured, imports `hr` alone (if given).
    pub async fn import_sources(
        &self,
        by: &Principal,
        hr: Option<(&str, &[Person])>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<crate::sources::SourcesImported, EngineError> {
        self.import_sources_with(by, hr, &SourceSync::Auto, progress)
            .await
    }

    /// [`Roster::import_sources`], reading the sources as `sync` says: a
    /// source with a good cursor reads only its changes (the changed
    /// people re-read whole), an event hook's people are re-read, and a
    /// source that cannot continue (expired cursor, a lockout storm) is
    /// read whole. Whatever was read, every source's whole listing is
    /// merged and imported as one snapshot through the source-change
    /// guard, so a person removed in an incremental read is carried as a
    /// full read would carry them ([`crate::sources::vanished`]). A poll
    /// or a hook that changes nobody imports nothing.
    pub async fn import_sources_with(
        &self,
        by: &Principal,
        hr: Option<(&str, &[Person])>,
        sync: &SourceSync,
        progress: &mut ProgressFn<'_>,
    ) -> Result<crate::sources::SourcesImported, EngineError> {
        // One import of the sources at a time: the held listings, the
        // cursors and the snapshot move together.
        let mut held = self.engine.held.lock().await;
        let result = self
            .import_sources_locked(by, hr, sync, &mut held, progress)
            .await;
        if result.is_err() {
            // What the listings hold may now be ahead of the store: the
            // next read of every source is whole.
            *held = crate::sources::Held::default();
        }
        result
    }

    async fn import_sources_locked(
        &self,
        by: &Principal,
        hr: Option<(&str, &[Person])>,
        sync: &SourceSync,
        held: &mut crate::sources::Held,
        progress: &mut ProgressFn<'_>,
    ) -> Result<crate::sources::SourcesImported, EngineError> {
        let read = self.engine.read_sources(held, sync, progress).await?;
        let ids: Vec<ConnectionId> = read.people.iter().map(|(_, id, _)| id.clone()).collect();
        let idps: Vec<Vec<Person>> = read.people.iter().map(|(_, _, p)| p.clone()).collect();
        let mut people = crate::sources::merge(hr.map(|(_, p)| p).unwrap_or(&[]), &idps);
        let previous = self.engine.store.people().await?;
        people.extend(crate::sources::vanished(&previous, &people, &ids));
        people.sort_by(|a, b| a.employee_id.as_str().cmp(b.employee_id.as_str()));
        let label = crate::sources::label(hr.map(|(l, _)| l), &ids);
        if label.is_empty() {
            return Err(EngineError::Refused(
                "no source of people is configured ([source] hr_file or [sources.<name>])".into(),
            ));
        }
        let changed = crate::sources::changed_people(&previous, &people);
        let any_full = read
            .reads
            .iter()
            .any(|(_, k)| matches!(k, crate::sources::SourceReadKind::Full { .. }));
        // Nothing new from a poll or a hook: nothing to import.
        let import = any_full || !changed.is_empty() || read.people.is_empty();
        let held_change = if import {
            let merged = self.import_people(by, &people, &label).await?;
            // Each source against its own baseline too (see
            // Engine::observe_sources): the merged count cannot see an IdP
            // that lost people HR still lists.
            let per_source: Vec<(ConnectionId, SourceCounts)> = read
                .people
                .iter()
                .map(|(_, id, p)| (id.clone(), SourceCounts::of(p)))
                .collect();
            let own = self
                .engine
                .observe_sources(&by.actor(), &per_source)
                .await?;
            merged.or(own)
        } else {
            None
        };
        Ok(crate::sources::SourcesImported {
            read: read
                .people
                .iter()
                .map(|(_, id, p)| (id.clone(), p.len()))
                .collect(),
            reads: read.reads,
            changed,
            imported: import,
            people: people.len(),
            label,
            held: held_change,
        })
    }

    /// A poll (the service, every `poll_interval`): reads the incremental
    /// sources' changes ([`SourceSync::Changes`]), imports them through the
    /// guarded import, and reconciles each person whose record changed
    /// ([`Roster::reconcile_person`]).
    pub async fn poll_sources(
        &self,
        by: &Principal,
        opts: &RunOptions,
    ) -> Result<RunSummary, EngineError> {
        self.sync_and_reconcile(by, opts, &SourceSync::Changes)
            .await
    }

    /// An event hook named these people of `source` as changed: they are
    /// re-read from the source (the hook is never taken as their state, so
    /// a forged event changes nothing the IdP does not say), imported
    /// through the guarded import, and each person whose record changed
    /// is reconciled.
    pub async fn reread_people(
        &self,
        by: &Principal,
        source: &ConnectionId,
        ids: &[String],
        opts: &RunOptions,
    ) -> Result<RunSummary, EngineError> {
        if !self.engine.has_source(source) {
            return Err(EngineError::Refused(format!(
                "no source {source} is configured; its people cannot be re-read"
            )));
        }
        let sync = SourceSync::People {
            source: source.clone(),
            ids: ids.to_vec(),
        };
        self.sync_and_reconcile(by, opts, &sync).await
    }

    async fn sync_and_reconcile(
        &self,
        by: &Principal,
        opts: &RunOptions,
        sync: &SourceSync,
    ) -> Result<RunSummary, EngineError> {
        let hr = match &opts.hr_csv {
            None => None,
            Some(path) => Some((path.display().to_string(), self.engine.read_hr_file(path)?)),
        };
        let imported = self
            .import_sources_with(
                by,
                hr.as_ref().map(|(l, p)| (l.as_str(), p.as_slice())),
                sync,
                &mut |_, _| {},
            )
            .await?;
        let mut summary = RunSummary::default();
        for person in &imported.changed {
            let who = PersonRef::Email(person.email.clone());
            let s = self.reconcile_person(by, &who, opts.auto_apply).await?;
            summary.plan = s.plan.or(summary.plan);
            summary.actions += s.actions;
            summary.queued += s.queued;
            summary.tasks += s.tasks;
            summary.awaiting_approval += s.awaiting_approval;
        }
        Ok(summary)
    }

    /// Confirms the people snapshot the store holds as the source-change
    /// baseline.
    pub async fn accept_source_change(&self, by: &Principal) -> Result<SourceCounts, EngineError> {
        let counts = self.engine.accept_source_change(&by.actor()).await?;
        let people = self.engine.store.people().await?;
        self.end_leavers_roster_access(by, &people).await?;
        Ok(counts)
    }

    /// Computes and stores the plan `scope` calls for, proposed by `by`.
    pub async fn plan(&self, by: &Principal, scope: PlanScope) -> Result<Planned, EngineError> {
        let mut plan = self.engine.compute_plan(&scope).await?;
        // An agent's plan waits whole for a person (see crate::agent_rules).
        crate::agent_rules::hold_for_person(&mut plan, by);
        let person = match &scope {
            PlanScope::Person(who) => self.engine.find_person(who).await?,
            _ => None,
        };
        let id = self.engine.save_plan(&plan, &scope, by).await?;
        Ok(Planned {
            proof: JustPlanned {
                plan_id: id.clone(),
                hash: plan.hash(),
            },
            id,
            plan,
            person,
        })
    }

    /// The one sequence that brings roster's view up to date and plans:
    /// read every app, import the people (the HR file and every identity
    /// provider, merged; refusing first when no app could be read, so a
    /// dead network never imports anything), confirm
    /// the source if asked, plan, and verify human tasks against the read
    /// (a full plan only). `roster plan`, the service's full runs and the
    /// demo all call this.
    pub async fn refresh(
        &self,
        by: &Principal,
        opts: RefreshOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Refreshed, EngineError> {
        let outcomes = self.read(by, progress).await?;
        let mut readable: Vec<ConnectionId> = outcomes
            .iter()
            .filter(|o| o.error.is_none())
            .map(|o| o.connection.clone())
            .collect();
        if readable.is_empty() && !outcomes.is_empty() {
            return Err(EngineError::NothingRead);
        }
        let mut source_change = None;
        let mut sources = None;
        if self.engine.has_sources() {
            // Every identity provider read whole, merged with the HR file
            // (if any) by attribute mastering; a source that cannot be
            // read completely imports nothing and stops here.
            let hr = opts
                .people
                .as_ref()
                .map(|(people, label)| (label.as_str(), people.as_slice()));
            let imported = self
                .import_sources(by, hr, progress)
                .await
                .map_err(|e| match e {
                    EngineError::Refused(m) => {
                        EngineError::Refused(format!("{m}; nothing was imported or planned"))
                    }
                    other => other,
                })?;
            source_change = imported.held.clone();
            sources = Some(imported);
        } else if let Some((people, source)) = &opts.people {
            source_change = self.import_people(by, people, source).await?;
        }
        let accepted = if opts.accept_source_change {
            source_change = None;
            Some(self.accept_source_change(by).await?)
        } else {
            None
        };
        if let Some(only) = &opts.only {
            readable.retain(|c| c == only);
        }
        let scope = match opts.person {
            Some(who) => PlanScope::Person(who),
            None => PlanScope::Connections(readable),
        };
        let full = !matches!(scope, PlanScope::Person(_));
        let planned = self.plan(by, scope).await?;
        if full {
            // The fresh read is what verifies (or reopens) human tasks.
            self.verify_tasks(by, &planned).await?;
        }
        Ok(Refreshed {
            outcomes,
            source_change,
            sources,
            accepted,
            planned,
        })
    }

    /// The plan `scope` calls for now, neither stored nor audited.
    pub async fn preview(&self, scope: &PlanScope) -> Result<Plan, EngineError> {
        self.engine.compute_plan(scope).await
    }

    /// Asks every configured connector whether its credentials and the
    /// app's setup work (`roster connections check`): a read-only health
    /// check, e.g. an `idp` connection whose IdP app does not provision
    /// fails, naming the switch. `Err` per connection: the check itself
    /// could not be made.
    pub async fn check_connections(
        &self,
        by: &Principal,
    ) -> Vec<(
        ConnectionId,
        Result<roster_connectors::Validation, roster_connectors::ConnectorError>,
    )> {
        tracing::debug!(principal = %by, "checking connections");
        let mut out = Vec::new();
        for id in self.engine.connector_ids() {
            if let Some((connector, _)) = self.engine.connection_parts(&id) {
                out.push((id.clone(), connector.validate().await));
            }
        }
        out
    }

    /// Verifies open human tasks against the read a full plan was computed
    /// from (done work is confirmed, work undone reopens). Returns
    /// (verified, reopened).
    pub async fn verify_tasks(
        &self,
        by: &Principal,
        planned: &Planned,
    ) -> Result<(usize, usize), EngineError> {
        tracing::debug!(principal = %by, plan = %planned.id, "verifying human tasks");
        self.engine.verify_tasks(&planned.plan).await
    }

    /// Approves a plan's actions that wait for approval (or one of them).
    pub async fn approve(
        &self,
        by: &Principal,
        plan_id: &PlanId,
        action: Option<usize>,
        reason: &str,
    ) -> Result<ApprovalStatus, EngineError> {
        self.engine
            .decide(plan_id, action, Decision::Approved, by, reason)
            .await
    }

    /// Rejects them: rejected actions never run.
    pub async fn reject(
        &self,
        by: &Principal,
        plan_id: &PlanId,
        action: Option<usize>,
        reason: &str,
    ) -> Result<ApprovalStatus, EngineError> {
        self.engine
            .decide(plan_id, action, Decision::Rejected, by, reason)
            .await
    }

    pub async fn approval_status(&self, plan_id: &PlanId) -> Result<ApprovalStatus, EngineError> {
        self.engine.approval_status(plan_id).await
    }

    /// The one check for a stored plan: re-reads its connections.
    pub async fn check(
        &self,
        by: &Principal,
        plan_id: &PlanId,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Approved, EngineError> {
        self.engine
            .approve_for_apply(plan_id, Freshness::Reread, by, progress)
            .await
    }

    /// The one check for a plan this process just computed.
    pub async fn check_planned(
        &self,
        by: &Principal,
        planned: Planned,
    ) -> Result<Approved, EngineError> {
        let id = planned.id.clone();
        self.engine
            .approve_for_apply(
                &id,
                Freshness::JustPlanned(planned.proof),
                by,
                &mut |_, _| {},
            )
            .await
    }

    /// Carries out an approved plan now: routes manual work to people,
    /// queues the rest and runs it until settled.
    pub async fn apply(
        &self,
        approved: Approved,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(ApplyReport, Enqueued), EngineError> {
        self.engine.apply(approved, progress).await
    }

    /// Hands an approved plan to the queue for a worker: routes manual
    /// work to people, queues the rest.
    pub async fn enqueue(&self, approved: Approved) -> Result<Enqueued, EngineError> {
        let plan_id = approved.plan_id().clone();
        let actor = approved.by().actor();
        let enqueued = self.engine.enqueue(&approved).await?;
        self.engine
            .audit_as(
                &actor,
                AuditKind::PlanApplyStarted,
                plan_id.as_str(),
                json!({
                    "hash": approved.hash(),
                    "held": enqueued.held,
                    "queued": enqueued.queued,
                    "tasks": enqueued.tasks.len(),
                    "mode": "queued",
                }),
            )
            .await?;
        Ok(enqueued)
    }

    /// Runs queued tasks until `stop` completes (`roster run`).
    pub async fn run_worker(&self, stop: impl Future<Output = ()>) -> Result<(), EngineError> {
        self.engine.run_worker(stop).await
    }

    /// After planning: unless there is nothing to do, note what waits for
    /// approval, and with `auto_apply` hand the rest to the queue.
    async fn act_on(
        &self,
        by: &Principal,
        planned: Planned,
        auto_apply: bool,
    ) -> Result<RunSummary, EngineError> {
        let mut summary = RunSummary {
            plan: Some(planned.id.clone()),
            actions: planned.plan.actions.len(),
            ..RunSummary::default()
        };
        let waiting = self.engine.approval_status(&planned.id).await?.waiting;
        if !planned.plan.actions.is_empty() && (!waiting.is_empty() || !auto_apply) {
            summary.awaiting_approval = waiting.len();
            self.engine
                .audit_as(
                    &by.actor(),
                    AuditKind::PlanAwaitingApproval,
                    planned.id.as_str(),
                    json!({ "waiting": waiting.len(), "auto_apply": auto_apply }),
                )
                .await?;
        }
        if !auto_apply {
            return Ok(summary);
        }
        // Held actions are left out of the queue; the rest (a leaver's
        // deactivation above all) goes now. A plan with nothing to do is
        // carried out too: its connections leave their first plan.
        let approved = self.check_planned(by, planned).await?;
        let enqueued = self.engine.enqueue(&approved).await?;
        summary.tasks = enqueued.tasks.len();
        summary.queued = enqueued.queued;
        Ok(summary)
    }

    /// A full run: [`Roster::refresh`] (with the HR file and the identity
    /// providers, if any), act on the plan, and nudge overdue tasks. A
    /// source that cannot be read completely stops the run before anything
    /// is imported or planned.
    pub async fn reconcile(
        &self,
        by: &Principal,
        opts: &RunOptions,
    ) -> Result<RunSummary, EngineError> {
        self.reconcile_under(by, opts, None).await
    }

    /// [`Roster::reconcile`], and with a `fence` the plan is handed to the
    /// queue only while that lease is still the live tenure
    /// ([`Roster::reconcile_fenced`]).
    pub(crate) async fn reconcile_under(
        &self,
        by: &Principal,
        opts: &RunOptions,
        fence: Option<&roster_store::Lease>,
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
        if let Some(lease) = fence {
            self.still_holds(lease, &refreshed.planned.id).await?;
        }
        let summary = self.act_on(by, refreshed.planned, opts.auto_apply).await?;
        self.engine.nudge_tasks().await?;
        Ok(summary)
    }

    /// One person, now (an event: an IdP push). Someone the source of
    /// truth does not know is logged and left alone.
    pub async fn reconcile_person(
        &self,
        by: &Principal,
        who: &PersonRef,
        auto_apply: bool,
    ) -> Result<RunSummary, EngineError> {
        match self.plan(by, PlanScope::Person(who.clone())).await {
            Err(EngineError::PersonNotFound(_)) => {
                tracing::info!(person = %who, "event for a person the source of truth does not know");
                Ok(RunSummary::default())
            }
            Err(e) => Err(e),
            Ok(planned) => self.act_on(by, planned, auto_apply).await,
        }
    }

    /// Offboards one person now, as `by` asked: records a termination
    /// override (so a slower source still listing them does not
    /// re-provision them), ends their sessions in every identity provider
    /// that lists them and may revoke (first, see [`crate::revoke`]),
    /// plans them, counts this explicit, authenticated
    /// request as the approval of their plan's held actions where the
    /// policy lets `by` decide, and applies it. An AI agent is refused: it
    /// may only propose an offboarding ([`Roster::propose_offboarding`]).
    pub async fn offboard(
        &self,
        by: &Principal,
        who: &PersonRef,
        reason: &str,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Offboarding, EngineError> {
        // An agent may propose an offboarding (Roster::propose_offboarding),
        // never carry one out: its token never carries the offboard scope
        // either. Defense in depth.
        if by.kind == roster_core::PrincipalKind::Agent {
            return Err(EngineError::NotPermitted(format!(
                "{by} is an AI agent: an agent never offboards anyone; it may propose an offboarding for a person to approve"
            )));
        }
        let person = self
            .engine
            .find_person(who)
            .await?
            .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
        let actor = by.actor();
        self.engine
            .store
            .set_person_override(&PersonOverride {
                employee_id: person.employee_id.clone(),
                status: "terminated".into(),
                actor: actor.clone(),
                reason: reason.to_string(),
                at_ms: ms(self.engine.now()),
            })
            .await?;
        self.engine
            .audit_as(
                &actor,
                AuditKind::PersonOffboarded,
                person.employee_id.as_str(),
                json!({ "email": person.email.to_string(), "reason": reason }),
            )
            .await?;
        // Their own access to roster ends at once too.
        let mut left = person.clone();
        left.status = roster_core::EmploymentStatus::Terminated;
        self.end_leavers_roster_access(by, std::slice::from_ref(&left))
            .await?;
        // Their IdP sessions end first, before any app account closes, so
        // SSO-only and JIT apps stop admitting them. A failure is
        // reported, audited and a task; the offboarding goes on.
        let revocations = self.engine.revoke_sessions(&actor, &person, reason).await?;
        // A fresh read of the person's apps, then their plan.
        self.read(by, progress).await?;
        let planned = self
            .plan(
                by,
                PlanScope::Person(PersonRef::EmployeeId(person.employee_id.clone())),
            )
            .await?;
        // The request is the approval, where the policy lets `by` decide.
        let mut held = Vec::new();
        for (i, why) in planned.plan.approvals.clone() {
            let decided = self
                .engine
                .decide_judged(
                    &planned.id,
                    Some(i),
                    Decision::Approved,
                    by,
                    &format!("offboarding: {reason}"),
                    true,
                )
                .await;
            match decided {
                Ok(_) => {}
                Err(EngineError::NotPermitted(refused)) => {
                    held.push((i, format!("{why}; {refused}")))
                }
                Err(e) => return Err(e),
            }
        }
        let plan_id = planned.id.clone();
        let plan = planned.plan.clone();
        // Someone still submits to them and no successor is known: their
        // account there stays, and a person is asked to decide.
        self.engine
            .open_successor_tasks(&actor, &person, &plan)
            .await?;
        // Their sessions ended above: carrying out the plan does not ask
        // the IdPs again.
        let approved = self
            .check_planned(by, planned)
            .await?
            .with_sessions_revoked(person.employee_id.clone());
        let (report, enqueued) = self.apply(approved, progress).await?;
        Ok(Offboarding {
            person,
            plan_id,
            plan,
            report,
            enqueued,
            held,
            revocations,
        })
    }

    /// The sessions an offboarding of `person` would revoke, source by
    /// source; makes no request (`roster offboard --dry-run`).
    pub fn planned_revocations(&self, person: &Person) -> Vec<crate::revoke::Revocation> {
        self.engine.planned_revocations(person)
    }

    /// The sessions carrying out `plan` would end: each leaver it takes
    /// access from, in every source that lists them and may revoke
    /// (`WouldRevoke`); asks nothing (a plan's review).
    pub async fn planned_leaver_revocations(
        &self,
        plan: &Plan,
    ) -> Result<Vec<crate::revoke::Revocation>, EngineError> {
        self.engine.planned_leaver_revocations(plan).await
    }

    /// The plan an offboarding of `who` would carry out now, from what the
    /// store holds (read the apps first for a fresh view): the person
    /// planned as terminated. Records nothing: no override, no plan, no
    /// audit event (`roster offboard --dry-run`).
    pub async fn preview_offboard(&self, who: &PersonRef) -> Result<(Person, Plan), EngineError> {
        let person = self
            .engine
            .find_person(who)
            .await?
            .ok_or_else(|| EngineError::PersonNotFound(who.to_string()))?;
        self.engine.check_policy()?;
        let scope = PlanScope::Person(PersonRef::EmployeeId(person.employee_id.clone()));
        let mut inputs = self.engine.plan_inputs(&scope).await?;
        for p in inputs.people.iter_mut().chain(inputs.person.iter_mut()) {
            if p.employee_id == person.employee_id {
                p.status = roster_core::EmploymentStatus::Terminated;
                // As the override will: now, not at a future end date.
                p.end_date = None;
            }
        }
        // As a leaver: what points at them is re-pointed first.
        let mut leaver = person.clone();
        leaver.status = roster_core::EmploymentStatus::Terminated;
        self.engine.add_reports(&mut inputs, &leaver).await?;
        let plan = self.engine.plan_from(&inputs).await?;
        Ok((person, plan))
    }

    /// What `person` still has after an offboarding (or at any time): their
    /// accounts as last read, and the tasks still open about them.
    pub async fn remaining_access(&self, person: &Person) -> Result<RemainingAccess, EngineError> {
        self.engine.remaining_access(person).await
    }

    /// Everything about one person's access, for `roster person show` and
    /// `GET /api/v1/people/{id}`: their identities, every account with the
    /// path roster takes in its app and the rule that grants it, open
    /// tasks, pending and next plan actions, recent audit events (see
    /// [`crate::person`]). Reads only the store; changes nothing.
    pub async fn person_access(&self, who: &PersonRef) -> Result<PersonAccess, EngineError> {
        self.engine.person_access(who, true).await
    }

    /// [`Roster::person_access`] without `next_plan` (both it and
    /// `next_plan_error` are `None`): no plan is computed, so the answer
    /// costs a few indexed reads whatever the size of the company (the
    /// REST API's `GET /api/v1/people/{id}` unless `?include=next_plan`).
    pub async fn person_access_without_plan(
        &self,
        who: &PersonRef,
    ) -> Result<PersonAccess, EngineError> {
        self.engine.person_access(who, false).await
    }

    /// Lifts an offboarding's termination override: the source of truth
    /// decides again. False if there was none.
    pub async fn lift_offboarding(
        &self,
        by: &Principal,
        employee_id: &EmployeeId,
    ) -> Result<bool, EngineError> {
        let lifted = self.engine.store.clear_person_override(employee_id).await?;
        if lifted {
            self.engine
                .audit_as(
                    &by.actor(),
                    AuditKind::PersonOffboarded,
                    employee_id.as_str(),
                    json!({ "lifted": true }),
                )
                .await?;
        }
        Ok(lifted)
    }

    /// The kill switch (see [`crate::controls`]).
    pub async fn pause(
        &self,
        by: &Principal,
        connection: Option<&ConnectionId>,
        reason: Option<&str>,
    ) -> Result<bool, EngineError> {
        self.engine
            .pause_writes(connection, &by.actor(), reason)
            .await
    }

    pub async fn resume(
        &self,
        by: &Principal,
        connection: Option<&ConnectionId>,
    ) -> Result<bool, EngineError> {
        self.engine.resume_writes(connection, &by.actor()).await
    }

    /// Puts a quarantined connection back in service (after someone fixed
    /// its cause); false if it was not quarantined.
    pub async fn lift_quarantine(
        &self,
        by: &Principal,
        connection: &ConnectionId,
    ) -> Result<bool, EngineError> {
        let lifted = self
            .engine
            .store
            .resume_connection(connection, ms(self.engine.now()))
            .await?;
        if lifted {
            self.engine
                .audit_as(
                    &by.actor(),
                    AuditKind::ConnectionResumed,
                    connection.as_str(),
                    json!({ "quarantine": true }),
                )
                .await?;
        }
        Ok(lifted)
    }

    pub async fn match_queue(&self) -> Result<Vec<QueuedMatch>, EngineError> {
        self.engine.match_queue().await
    }

    /// Resolves one queued match, as `by`.
    pub async fn resolve_match(
        &self,
        by: &Principal,
        mut resolution: MatchResolution,
    ) -> Result<(), EngineError> {
        resolution.actor = by.actor();
        self.engine.resolve_match(resolution).await
    }

    /// Marks a human task done, as `by`; the next read verifies it.
    pub async fn complete_task(
        &self,
        by: &Principal,
        id: &str,
        note: Option<String>,
        evidence: Option<String>,
    ) -> Result<HumanTask, EngineError> {
        self.engine
            .complete_task(id, &by.actor(), note, evidence)
            .await
    }

    /// Reminders at half a task's SLA, escalation past it.
    pub async fn nudge_tasks(&self) -> Result<Vec<(HumanTask, bool)>, EngineError> {
        self.engine.nudge_tasks().await
    }

    /// Erases audit payloads (personal data) as `by`, while the chain still
    /// verifies (see [`crate::erasure`]).
    pub async fn erase_audit(
        &self,
        by: &Principal,
        selector: &crate::erasure::EraseSelector,
        reason: &str,
    ) -> Result<crate::erasure::EraseReport, EngineError> {
        Ok(crate::erasure::erase(
            &self.engine.store,
            selector,
            reason,
            &by.actor(),
            ms(self.engine.now()),
        )
        .await?)
    }

    /// Checkpoints the audit chain head to the witnesses, if configured.
    pub async fn checkpoint_audit(
        &self,
    ) -> Result<Option<crate::anchor::CheckpointOutcome>, crate::anchor::AnchorError> {
        self.engine.checkpoint_audit().await
    }
}
