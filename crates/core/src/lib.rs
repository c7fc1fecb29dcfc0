//! roster's domain core: the identity graph, policy and the pure
//! reconcile/plan function.
//!
//! # Architecture invariant
//!
//! Nothing in this crate does I/O, spawns, sleeps or reads the clock. Time
//! is a parameter (`now`). Everything here is deterministic: the same people,
//! accounts and policy give the same plan, byte for byte. That is what makes
//! plans reviewable and their hashes meaningful.
//!
//! # Concepts
//!
//! * [`Person`]: someone the source of truth (HR CSV, IdP) knows.
//! * [`Account`]: what one app holds, as last read through one connection.
//! * correlation ([`correlate`]): the link person ↔ account.
//! * [`Policy`]: who should have what (TOML, see [`policy`]).
//! * [`Calendar`]: the company's time zone; when dated joiners and leavers
//!   gain and lose access (see [`calendar`]).
//! * [`Plan`]: the ordered actions that make observed match desired, each
//!   with a reason, plus findings that need a human.

pub mod calendar;
pub mod correlate;
pub mod guard;
pub mod hr_csv;
pub mod hr_json;
pub mod ids;
pub mod model;
pub mod plan;
pub mod policy;
pub mod principal;
pub mod reconcile;
pub mod repoint;
pub mod text;
pub mod vocabulary;

pub use calendar::{Calendar, Standing};
pub use guard::{GuardContext, GuardKind};
pub use ids::{AccountKey, ConnectionId, Email, EmployeeId};
pub use model::{Account, EmploymentStatus, Observed, Person};
pub use plan::{Action, AttributeChange, Cause, Finding, FindingKind, Operation, Plan};
pub use policy::{Policy, PolicyError};
pub use principal::{Principal, PrincipalKind, Role, Scope};
pub use reconcile::{
    ConnectionPart, Prepared, Resolution, Streaming, reconcile, reconcile_guarded, reconcile_with,
};
