//! roster's engine: the I/O edge around the pure core, and the
//! application layer every surface calls.
//!
//! [`app::Roster`] is the door: plan, approve, reject, apply, pause and
//! resume, offboard, resolve a match, complete a task, each with the
//! authenticated principal it acts for. Below it, in layers that import
//! only downwards: [`engine`] (the wiring: store, policy, connectors,
//! clock, audit), [`read`], [`gateway`] (SCIM intent), [`planning`] (the
//! one planning function), [`approval`] (the one check, [`Approved`]),
//! [`human`] (tasks for people), [`executor`] and [`execution`] (durable
//! tasks through the connectors), [`controls`] (kill switch, match queue),
//! [`person`] (one person's access, read-only), [`hr_file`] (the HR file
//! as CSV, XLSX or JSON), [`proposals`] (plans an AI agent or a `propose`
//! token asks for: stored, never carried out by the asking).

pub mod agent_rules;
pub mod anchor;
pub mod app;
pub mod approval;
pub mod bench;
pub mod browser;
pub mod budget;
pub mod config;
pub mod controls;
pub mod egress;
pub mod engine;
pub mod erasure;
pub mod execution;
pub mod executor;
pub mod files;
pub mod gateway;
pub mod hr_file;
pub mod human;
pub mod inbound;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod options;
pub mod person;
mod plan_cache;
pub mod planning;
pub mod proposals;
pub mod queries;
pub mod read;
pub mod reports;
pub mod revoke;
pub mod sample;
pub mod service;
pub mod sources;
pub mod stream;
pub mod tickets;

pub use app::health;
pub use app::tokens::{ApiTokenInfo, Authenticated, CreatedApiToken, NewApiToken};
pub use app::web_users::{
    AccessEnded, NewWebUser, SessionLimits, SignInVia, WebIdentity, WebSession, WebUserInfo,
};
pub use app::{Planned, RefreshOptions, Refreshed, Roster};
pub use approval::{ApprovalStatus, Approved};
pub use budget::StoreBudget;
pub use engine::{Engine, EngineError};
pub use execution::{ApplyReport, Enqueued};
pub use executor::ExecutorOptions;
pub use planning::{PersonRef, PlanScope};
pub use proposals::{ActionExplanation, Proposal, ProposalInfo, ProposalTarget};
pub use queries::Page;
pub use read::ReadOutcome;
