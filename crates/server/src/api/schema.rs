//! The request bodies the API takes and the schemas of its answers, for
//! the OpenAPI document ([`super::openapi`]).
//!
//! Request bodies are the types the handlers deserialize, so their schema
//! is theirs. Answers are the engine's own types (serialized as they are,
//! the same JSON the CLI's `--json` prints); the `*Schema` types here
//! describe those the API pages and the plan detail, the rest are
//! documented as JSON objects (or arrays of them) with their fields left
//! open.

use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema};
use utoipa::openapi::{RefOr, Type};

use super::problem::Problem;

/// Writes the schemas a type refers to into the components and returns
/// its own (a reference or inline).
pub type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

fn named<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(out);
    out.push((T::name().into_owned(), T::schema()));
    utoipa::openapi::Ref::from_schema_name(T::name()).into()
}

/// Any JSON object (an engine type; fields left open).
pub fn object(_: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

/// An array of JSON objects.
pub fn object_list(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    ArrayBuilder::new().items(object(out)).into()
}

pub fn problem(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<Problem>(out)
}

pub fn people_page(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<PeoplePage>(out)
}
pub fn accounts_page(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<AccountsPage>(out)
}
pub fn plans_page(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<PlansPage>(out)
}
pub fn plan_detail(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<PlanDetailSchema>(out)
}
pub fn accepted(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<Accepted>(out)
}
pub fn apply_result(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<ApplyResult>(out)
}
pub fn switched(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<Switched>(out)
}
pub fn resolved(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<Resolved>(out)
}
pub fn match_list(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    ArrayBuilder::new().items(named::<MatchSchema>(out)).into()
}
pub fn offboard_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<OffboardRequest>(out)
}
pub fn pause_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<PauseRequest>(out)
}
pub fn plan_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<PlanRequest>(out)
}
pub fn decision_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<DecisionRequest>(out)
}
pub fn complete_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<CompleteRequest>(out)
}
pub fn complete_multipart(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<CompleteMultipart>(out)
}
pub fn resolve_request(out: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    named::<ResolveRequest>(out)
}

// ------------------------------------------------------------ requests

/// `POST /api/v1/people/{id}/offboard`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    /// Why (recorded in the audit log with the override).
    #[schema(min_length = 1)]
    pub reason: String,
    /// Only show the plan it would carry out; record nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/connections/{id}/pause`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    pub reason: Option<String>,
}

/// What a plan covers.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanScopeKind {
    All,
    Connections,
    Person,
}

/// `POST /api/v1/plans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub scope: PlanScopeKind,
    /// The connections, for `scope: connections`.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Employee ID or address, for `scope: person`.
    pub person: Option<String>,
    /// Read every app first (default: plan from what the store holds;
    /// applying re-reads the plan's connections anyway).
    #[serde(default)]
    pub read: bool,
}

/// `POST /api/v1/plans/{id}/approve` and `/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Why (recorded with the decision).
    #[schema(min_length = 1)]
    pub reason: String,
    /// One action's index; none: every action that waits.
    #[schema(minimum = 0, maximum = 1000000000)]
    pub action: Option<u64>,
}

/// `POST /api/v1/tasks/{id}/complete` as JSON.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// What was done.
    pub note: Option<String>,
    /// What shows it (a link, a ticket number).
    pub evidence: Option<String>,
}

/// `POST /api/v1/tasks/{id}/complete` as multipart/form-data.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CompleteMultipart {
    /// The evidence file; its name, size and SHA-256 are recorded.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub note: Option<String>,
}

/// `POST /api/v1/matches/{id}/resolve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The person the account belongs to; null: no managed person's.
    pub employee_id: Option<String>,
    #[schema(min_length = 1)]
    pub reason: String,
}

// ------------------------------------------------------------- answers

/// One person in a search (`roster_engine::queries::PersonSummary`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PersonSummarySchema {
    employee_id: String,
    email: String,
    name: String,
    department: String,
    /// `active`, `leave` or `terminated`.
    status: String,
}

/// A page of people.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PeoplePage {
    items: Vec<PersonSummarySchema>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// One account of a connection's last read.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AccountSchema {
    connection: String,
    key: String,
    #[schema(value_type = Object)]
    account: serde_json::Value,
}

/// A page of accounts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AccountsPage {
    items: Vec<AccountSchema>,
    next_cursor: Option<String>,
}

/// One plan in a listing (`roster_engine::queries::PlanSummary`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanSummarySchema {
    id: String,
    created_ms: i64,
    hash: String,
    proposed_by: Option<String>,
    proposed_by_agent: bool,
    /// Actions per operation.
    #[schema(value_type = Object)]
    actions: serde_json::Value,
    findings: u64,
    /// `pending approval`, `approved`, `applied`, ...
    state: String,
    status: String,
    waiting_approval: u64,
    approved: u64,
    rejected: u64,
    applied_ms: Option<i64>,
}

/// A page of plans.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlansPage {
    items: Vec<PlanSummarySchema>,
    next_cursor: Option<String>,
}

/// One action's state.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActionDetailSchema {
    index: u64,
    state: String,
    detail: Option<String>,
    /// `waiting`, `approved`, `rejected`, or null.
    approval: Option<String>,
    approval_reason: Option<String>,
}

/// One plan in full; `version` is its ETag's content.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanDetailSchema {
    summary: PlanSummarySchema,
    #[schema(value_type = Object)]
    plan: serde_json::Value,
    actions: Vec<ActionDetailSchema>,
    version: String,
}

/// Work that goes on after the answer: poll `location`.
#[derive(serde::Serialize, ToSchema)]
pub struct Accepted {
    pub status: String,
    pub location: String,
    pub detail: String,
}

/// What carrying out a plan did.
#[derive(serde::Serialize, ToSchema)]
pub struct ApplyResult {
    pub plan_id: String,
    /// Actions applied, per connection.
    #[schema(value_type = Object)]
    pub applied: std::collections::BTreeMap<String, usize>,
    pub failed: Vec<FailedAction>,
    pub skipped: usize,
    pub manual: usize,
    pub pending: usize,
    /// Actions waiting for a person's approval: not run.
    pub held: usize,
    pub tasks: usize,
    pub queued: usize,
    pub paused: Vec<String>,
    pub quarantined: Vec<String>,
}

/// One failed action.
#[derive(serde::Serialize, ToSchema)]
pub struct FailedAction {
    pub connection: String,
    pub account: String,
    pub error: String,
}

/// A pause or resume: whether it changed anything.
#[derive(serde::Serialize, ToSchema)]
pub struct Switched {
    pub connection: String,
    pub paused: bool,
    pub changed: bool,
}

/// A resolved match.
#[derive(serde::Serialize, ToSchema)]
pub struct Resolved {
    pub id: String,
    pub employee_id: Option<String>,
}

/// One entry of the match queue.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MatchSchema {
    /// `connection:account`, for `POST /api/v1/matches/{id}/resolve`.
    id: String,
    connection: String,
    account: String,
    email: Option<String>,
    kind: String,
    detail: String,
}
