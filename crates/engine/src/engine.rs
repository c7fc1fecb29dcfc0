//! The engine's wiring: a store, a policy, the connectors and their rate
//! budgets, the catalog bindings, the clock and the audit helper.
//!
//! This is the bottom layer of the engine. The modules that do one part of
//! the work ([`crate::read`], [`crate::planning`], [`crate::approval`],
//! [`crate::execution`] with [`crate::executor`], [`crate::human`],
//! [`crate::gateway`]) each add methods to [`Engine`] and import only this
//! module and the layers below them; [`crate::app`] (the application layer
//! every surface calls) sits on top. No module imports one above it, so
//! there are no cycles.

use std::collections::BTreeMap;
use std::sync::Arc;

use roster_connectors::driver::DriverOptions;
use roster_connectors::{Connector, RateBudget};
use roster_core::vocabulary::{PolicyProblems, Vocabulary};
use roster_core::{ConnectionId, Operation, Policy};
use roster_store::{AuditEvent, PlanPolicy, Store, StoreError};
use time::OffsetDateTime;

use crate::options::{AppBinding, ExecutorOptions};
use roster_store::AuditKind;

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
    /// The apps changed since the plan was computed.
    #[error(
        "plan {plan} is stale: {detail}; nothing was applied. Run `roster plan` again and apply the new plan"
    )]
    Stale { plan: String, detail: String },
    /// Every action of the plan already ran (or was skipped or handed to
    /// a person): applying it again would do nothing.
    #[error("plan {plan} was already applied: {detail}")]
    AlreadyApplied { plan: String, detail: String },
    /// The principal may not do this (separation of duties, app owners,
    /// an unmapped operator).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// No one in the source of truth (or the SCIM gateway) is this person.
    #[error("no person {0} in the source of truth")]
    PersonNotFound(String),
    /// The caller could not be authenticated (an API or agent token that
    /// is unknown, revoked or expired).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// A request's input is not valid: a listing's cursor it did not
    /// give, a limit out of range (see [`crate::queries`]).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl EngineError {
    /// A stable code, the same in every release (`ENG-NNNN`), for scripts
    /// and for searching the docs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Store(_) => "ENG-0001",
            EngineError::PlanNotFound(_) => "ENG-0002",
            EngineError::NothingRead => "ENG-0003",
            EngineError::Refused(_) => "ENG-0004",
            EngineError::PolicyUnsound(_) => "ENG-0005",
            EngineError::Stale { .. } => "ENG-0006",
            EngineError::AlreadyApplied { .. } => "ENG-0007",
            EngineError::NotPermitted(_) => "ENG-0008",
            EngineError::PersonNotFound(_) => "ENG-0009",
            EngineError::Unauthenticated(_) => "ENG-0010",
            EngineError::InvalidInput(_) => "ENG-0011",
        }
    }
}

/// An identity provider read as a source of people, with the budget that
/// paces it (see `crate::sources`).
pub(crate) struct WiredSource {
    pub(crate) source: Arc<dyn roster_sources::Source>,
    pub(crate) budget: Arc<dyn RateBudget>,
    /// An offboarding ends the person's sessions here
    /// (`[sources.<name>] revoke_sessions`; see `crate::revoke`).
    pub(crate) revoke_sessions: bool,
    /// How often it is read whole although its changes can be read.
    pub(crate) full_read_every: std::time::Duration,
    /// How often the service reads its changes; `None`: at full runs only.
    pub(crate) poll_interval: Option<std::time::Duration>,
}

pub(crate) struct Wired {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) budget: Arc<dyn RateBudget>,
}

/// Each source's people as the last reads in this process left them, by
/// the IdP's id. An incremental read changes only the people it names;
/// the merge then runs over every source's whole listing, so what comes
/// out is what a full read of every source would give.
#[derive(Debug, Default)]
pub struct Held {
    pub(crate) by_source: BTreeMap<ConnectionId, BTreeMap<String, roster_core::Person>>,
}

/// The engine: a store, a policy and the connectors.
pub struct Engine {
    pub store: Store,
    pub policy: Policy,
    pub(crate) connectors: BTreeMap<ConnectionId, Wired>,
    pub driver: DriverOptions,
    /// Who the audit log names for the engine's own steps.
    pub actor: String,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    /// The app catalog: manual checklists and path choices for actions no
    /// connector can carry out.
    pub catalog: Option<roster_catalog::Catalog>,
    /// Which catalog app each connection is, with its settings.
    pub bindings: BTreeMap<ConnectionId, AppBinding>,
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
    /// Identity providers read as sources of people (see
    /// [`crate::sources`]), sorted by id.
    pub(crate) sources: Vec<WiredSource>,
    /// How hard a source read tries (retries, backoff, page limits).
    pub source_read: roster_sources::ReadOptions,
    /// The company's time zone and provisioning lead (`[company]`): every
    /// plan judges start and end dates by it (see `roster_core::calendar`).
    pub calendar: roster_core::Calendar,
    /// The HR file's format when the configuration names one; `None`:
    /// from the file's extension, else CSV.
    pub hr_format: Option<crate::hr_file::HrFormat>,
    /// Each source's people as its last reads left them, by the IdP's id
    /// (see [`crate::sources`]): what an incremental read is applied to.
    /// Held in memory only; a process starts with a full read.
    pub(crate) held: tokio::sync::Mutex<Held>,
    /// Where notifications go (`[notify]`, see [`crate::notify`]); `None`:
    /// nowhere.
    pub notifier: Option<crate::notify::Notifier>,
    /// The first wait between a notification's attempts (doubling).
    pub notify_backoff: std::time::Duration,
    /// The ITSM tool human tasks are mirrored to (`[tickets]`, see
    /// [`crate::tickets`]); `None`: none.
    pub tickets: Option<crate::tickets::TicketSystem>,
    /// Recently used stored plans, decoded and indexed by person (see
    /// [`crate::plan_cache`]).
    pub(crate) plan_index: std::sync::Mutex<crate::plan_cache::PlanIndexCache>,
    /// Held while a stored plan is decoded into [`Engine::plan_index`], so
    /// a new plan is decoded once, not by every page view that misses it
    /// at the same moment (see `crate::person`).
    pub(crate) plan_index_load: tokio::sync::Mutex<()>,
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
            clock: Arc::new(OffsetDateTime::now_utc),
            catalog: None,
            bindings: BTreeMap::new(),
            exports_dir: None,
            executor: ExecutorOptions::default(),
            anchor: None,
            vocabulary: None,
            read_quarantine_after: READ_QUARANTINE_AFTER,
            sources: Vec::new(),
            source_read: roster_sources::ReadOptions::default(),
            calendar: roster_core::Calendar::default(),
            hr_format: None,
            held: tokio::sync::Mutex::new(Held::default()),
            notifier: None,
            notify_backoff: std::time::Duration::from_secs(2),
            tickets: None,
            plan_index: std::sync::Mutex::new(Default::default()),
            plan_index_load: tokio::sync::Mutex::new(()),
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

    /// Reads the HR file at `path` (its format as configured, else from its
    /// extension) and parses it whole: any bad row refuses the file.
    pub fn read_hr_file(
        &self,
        path: &std::path::Path,
    ) -> Result<Vec<roster_core::Person>, EngineError> {
        let bytes = std::fs::read(path).map_err(|e| {
            EngineError::Refused(format!("cannot read HR file {}: {e}", path.display()))
        })?;
        let format = self
            .hr_format
            .or_else(|| crate::hr_file::HrFormat::from_path(path))
            .unwrap_or_default();
        crate::hr_file::parse(format, &path.display().to_string(), &bytes)
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Stops the clock at `now` (benchmarks and tests of one moment).
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.clock = Arc::new(move || now);
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Today in the company's time zone: the day end and start dates are
    /// judged against.
    pub fn local_today(&self) -> time::Date {
        self.calendar.local_date(self.now())
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
        // Every call and every wait is measured once, here (crate::metrics).
        let budget = crate::metrics::MeteredBudget::wrap(budget, connector.id());
        let connector = crate::metrics::Metered::wrap(connector);
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
        kind: AuditKind,
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
        kind: AuditKind,
        subject: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(AuditEvent {
                at_ms: ms(self.now()),
                actor: actor.to_string(),
                kind: kind.as_str().to_string(),
                subject: subject.to_string(),
                data,
            })
            .await
            .map(|_| ())
    }
}
