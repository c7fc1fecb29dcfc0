//! roster's engine: the I/O edge around the pure core.
//!
//! It loads the source of truth into the store, reads every connection
//! through its connector, runs [`roster_core::reconcile`], stores the plan,
//! applies it through connectors and writes every step to the audit log.

pub mod anchor;
pub mod bench;
pub mod budget;
pub mod config;
pub mod egress;
pub mod erasure;
pub mod executor;
pub mod files;
pub mod gateway;
pub mod governance;
pub mod human;
pub mod inbound;
pub mod reports;
pub mod run;
pub mod sample;
pub mod service;
pub mod targeted;

pub use budget::StoreBudget;
pub use executor::ExecutorOptions;
pub use run::{ApplyReport, Engine, EngineError, ReadOutcome};
