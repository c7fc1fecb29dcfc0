//! roster's app catalog: capability records as data, their loader and
//! validation, and the choice of path for each lifecycle operation.
//!
//! # Concepts
//!
//! * An [`App`] record is one TOML file under the repository's `catalog/`
//!   directory (compiled in) or an override directory. It describes an app
//!   or an identity provider the way the source material's "API quick
//!   reference" does: user API, auth, SCIM, rate limits, pagination, events,
//!   SSO/JIT, CSV import, limitations, traps, and a manual checklist for
//!   each lifecycle operation.
//! * Every statement in a record is a [`Fact`]: one or more [`Claim`]s, each
//!   citing a source (a seed file or a vendor document, listed in the file's
//!   `[sources]`) and an as-of date. When sources disagree, all claims are
//!   kept and shown.
//! * A [`PathOffer`] says an app can carry out some operations through a
//!   [`Path`] (`scim`, `api`, `idp`, `csv`, `jit`, `browser`) under
//!   conditions: plan tier, IdP, credential kind. `manual` is implicit.
//!   Where roster drives the path itself, the offer names the connector
//!   implementation that serves it (`connector = "expensify-api"`; a `scim`
//!   offer defaults to the generic SCIM client).
//! * [`select_path`] picks the best path that holds for a company's
//!   [`ConnectionSettings`], and says why the better ones did not.
//!
//! # Architecture invariants
//!
//! * No I/O except reading an override directory in [`Catalog::load`] and
//!   [`Catalog::from_dir`]; selection and rendering are pure.
//! * Adding an app that speaks SCIM needs a data file, not code.
//! * A loaded [`Catalog`] is valid: see [`load`] for what that guarantees.
//!
//! # File shape
//!
//! ```toml
//! id = "spendesk"            # equals the file stem
//! kind = "app"               # or "idp"
//! name = "Spendesk"
//! summary = { value = "...", source = "seed" }
//!
//! [sources]
//! seed = { ref = "seeds/002_7a3826c08b71aaf3.txt", as_of = "2026-03-16" }
//!
//! [api]
//! has_user_api = [
//!   { value = false, source = "seed" },
//!   { value = true, source = "help-api", note = "read-only" },
//! ]
//! # ... [scim], [rate_limits], [pagination], [events], [sso], [csv],
//! # [[limitations]], [[watch_out_for]], [manual], [[paths]]
//! ```

pub mod fact;
pub mod lifetime;
pub mod load;
pub mod model;
pub mod query;
pub mod render;
pub mod rest;
pub mod runbook;
pub mod select;

pub use fact::{Claim, Fact};
pub use lifetime::{Expiry, ExpiryState, expiry};
pub use load::{Catalog, CatalogError, Location, Problem};
pub use model::{
    ApiFacts, App, AppKind, Category, CredentialFacts, CredentialKind, CsvFacts, DeactivationFacts,
    DeactivationKind, EventFacts, ManualSteps, PaginationFacts, PaginationMethod, Path, PathOffer,
    REST_CONNECTOR, RateLimitFacts, SCIM_CONNECTOR, ScimClientSettings, ScimFacts, ScimVersion,
    Source, SsoFacts, Tri,
};
pub use query::{AppDiff, AppFilter, DiffKind, diff};
pub use render::{
    deactivation_summary, render_apps, render_card, render_list, scim_summary, user_api_summary,
};
pub use rest::RestClient;
pub use runbook::{Runbook, Step as RunbookStep, Target as RunbookTarget};
pub use select::{
    ConnectionSettings, PathChoice, idp_display_name, offer_holds, select_all, select_path,
};
