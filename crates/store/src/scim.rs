//! Inbound SCIM: the Users and Groups an identity provider (Okta, Entra)
//! pushes to roster's SCIM service provider, and the bearer tokens it uses.
//!
//! # Model
//!
//! Resources live per *connection* (the IdP-facing namespace in the URL,
//! `/scim/v2/{connection}/...`): the same `userName` may exist in two
//! connections. A resource row holds the normalized SCIM JSON (`data`,
//! without `id`, `meta` and membership) plus copies of the attributes
//! lookups use:
//!
//! | filter                         | answered from                         |
//! |--------------------------------|---------------------------------------|
//! | `id eq`                        | `(connection, kind, id)` unique index |
//! | `userName eq` (caseExact=false)| `user_name_lc`, unique per connection |
//! | `externalId eq` (caseExact)    | `external_id`                         |
//! | `displayName eq`               | `display_name_lc`                     |
//! | `emails.value eq` / `emails[..]`| `scim_email.value_lc`                |
//! | `members.value eq`             | `scim_member.member_id`               |
//!
//! Lower-casing is Unicode lowercasing done in Rust (never SQL `lower()`,
//! which differs between engines), so a lookup is a *superset* of the
//! exact answer for any case rule; the server filters the candidates with
//! the full SCIM filter afterwards.
//!
//! Group membership is stored once, in `scim_member`, and is the source of
//! both `Group.members` and `User.groups`.
//!
//! # Invariants
//!
//! * Every write runs in one transaction: the row, its emails, its
//!   membership and (for audited writes) its audit record change together
//!   or not at all. [`Store::scim_write_batch`] puts several concurrent
//!   writes in one transaction (group commit); a refused write in a batch
//!   changes nothing and does not affect the others.
//! * `version` starts at 1 and grows by one on every change of the
//!   resource's representation, including membership changes seen through
//!   `User.groups`; writes take the version they read
//!   (`expected_version`) and fail with [`ScimStoreError::VersionMismatch`]
//!   instead of overwriting a concurrent change (optimistic concurrency).
//! * `userName` is unique per connection case-insensitively, enforced by a
//!   unique index, so concurrent creates cannot both succeed.
//! * Tokens are stored as SHA-256 hex only; the store never sees a token
//!   in clear except as the hash the caller computed.

use crate::reader::Read as _;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::audit::AuditEvent;
use crate::sql::{Val, bind_val, insert_rows, values_placeholders};
use crate::{Store, StoreError, to_i64};

mod pending;

/// IDs per `IN (...)` list; far below both engines' parameter limits.
const IN_CHUNK: usize = 500;
/// Rows per multi-row write statement (about a thousand parameters: see
/// `sql.rs` on why more is slower on SQLite).
const MAX_ROWS_PER_STMT: usize = 80;

/// The two SCIM resource types roster serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScimKind {
    User,
    Group,
}

impl ScimKind {
    /// The SCIM resource type name, also the value of the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimKind::User => "User",
            ScimKind::Group => "Group",
        }
    }

    fn parse(s: &str) -> Option<ScimKind> {
        match s {
            "User" => Some(ScimKind::User),
            "Group" => Some(ScimKind::Group),
            _ => None,
        }
    }
}

impl fmt::Display for ScimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimMember {
    /// The member's resource id.
    pub value: String,
    /// `User` or `Group`, when known.
    pub member_type: Option<String>,
    /// The display text the client sent (Okta sends it).
    pub display: Option<String>,
}

/// What to write for one resource. The caller (the SCIM server) derives the
/// lookup fields from the normalized JSON; the store lower-cases them.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimResourceWrite {
    pub id: String,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    /// Email addresses (`emails[*].value`), any case.
    pub emails: Vec<String>,
    /// The full member list of a group. `None` leaves membership as it is
    /// (a PATCH that does not touch members); `Some(vec![])` empties it.
    pub members: Option<Vec<ScimMember>>,
    /// The normalized resource JSON without `id`, `meta` and `members`.
    pub data: serde_json::Value,
    /// For a user: the typed intent the caller derived from `data`
    /// (see [`crate::gateway`]), written in the same transaction. `None`
    /// for groups; for a user it removes any stored intent, which the
    /// engine then backfills from `data`, so a row is never stale.
    pub intent: Option<crate::GatewayUser>,
}

/// A stored resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimResource {
    pub connection: String,
    pub kind: ScimKind,
    pub id: String,
    /// Creation order within the database; list pages are ordered by it.
    pub seq: i64,
    pub version: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub data: serde_json::Value,
}

/// What identifies one stored representation of a resource: `version`
/// grows with every change of it (see the invariants above) and
/// `modified_ms` tells a resource apart from an earlier one that had the
/// same id (a delete and an import of the same id restart at version 1).
/// A reader that kept a rendering of the resource at this head may serve
/// it while the head is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScimHead {
    pub id: String,
    /// Creation order (list order).
    pub seq: i64,
    pub version: i64,
    pub modified_ms: i64,
}

/// The result of a replace: the stored resource and how its membership
/// changed (member ids), for notifying the users concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimWriteOutcome {
    pub resource: ScimResource,
    pub members_added: Vec<String>,
    pub members_removed: Vec<String>,
}

/// The result of a delete.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimDeleted {
    /// The resource as it was.
    pub resource: ScimResource,
    /// For a group: the ids of its former members.
    pub former_members: Vec<String>,
    /// The groups the resource was a member of (their versions were bumped).
    pub former_groups: Vec<String>,
}

/// A group a resource belongs to, for `User.groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimGroupRef {
    pub group_id: String,
    pub display_name: Option<String>,
}

/// Which indexed attribute an equality lookup uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScimIndex {
    /// `id`, exact.
    Id,
    /// `userName`, case-insensitive.
    UserName,
    /// `externalId`, exact.
    ExternalId,
    /// `displayName`, case-insensitive.
    DisplayName,
    /// `emails.value`, case-insensitive.
    Email,
    /// `members.value`: the groups having this member, exact.
    Member,
}

/// A stored SCIM bearer token (its hash, never the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimTokenRecord {
    /// The token's first characters: its public name (unique).
    pub prefix: String,
    pub connection: String,
    /// SHA-256 of the whole token, lower-case hex.
    pub hash: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// Why a SCIM write was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScimStoreError {
    /// Another resource of the connection already has this userName.
    #[error("STORE-SCIM-0001 userName {user_name:?} is already used by {kind} {existing_id}")]
    Conflict {
        kind: ScimKind,
        user_name: String,
        existing_id: String,
    },
    /// The resource id is already taken (a caller bug or a replayed create).
    #[error("STORE-SCIM-0002 {kind} id {id:?} already exists")]
    DuplicateId { kind: ScimKind, id: String },
    /// The resource does not exist.
    #[error("STORE-SCIM-0003 {kind} {id:?} not found")]
    NotFound { kind: ScimKind, id: String },
    /// The resource changed since the caller read it.
    #[error("STORE-SCIM-0004 {kind} {id:?} is at version {current}, not {expected}")]
    VersionMismatch {
        kind: ScimKind,
        id: String,
        expected: i64,
        current: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScimStoreError {
    /// The stable code at the start of the message (the store's own for
    /// a store failure).
    pub fn code(&self) -> &'static str {
        match self {
            ScimStoreError::Conflict { .. } => "STORE-SCIM-0001",
            ScimStoreError::DuplicateId { .. } => "STORE-SCIM-0002",
            ScimStoreError::NotFound { .. } => "STORE-SCIM-0003",
            ScimStoreError::VersionMismatch { .. } => "STORE-SCIM-0004",
            ScimStoreError::Store(e) => e.code(),
        }
    }
}

impl From<sqlx::Error> for ScimStoreError {
    fn from(e: sqlx::Error) -> Self {
        ScimStoreError::Store(StoreError::Database(e))
    }
}

/// Unicode lower-casing for the `*_lc` shadow columns.
pub fn scim_fold(s: &str) -> String {
    s.to_lowercase()
}

const COLS: &str = "seq, connection, kind, id, user_name, display_name, external_id, active, \
                    version, created_ms, modified_ms, data";

/// The columns of a [`ScimHead`].
const HEAD_COLS: &str = "id, seq, version, modified_ms";

fn decode_head(row: &AnyRow) -> Result<ScimHead, StoreError> {
    Ok(ScimHead {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        version: row.try_get("version")?,
        modified_ms: row.try_get("modified_ms")?,
    })
}

fn opt_bool(row: &AnyRow, col: &str) -> Result<Option<bool>, sqlx::Error> {
    match row.try_get::<Option<bool>, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<Option<i64>, _>(col)?.map(|i| i != 0)),
    }
}

fn decode(row: &AnyRow) -> Result<ScimResource, StoreError> {
    let id: String = row.try_get("id")?;
    let kind_s: String = row.try_get("kind")?;
    let kind = ScimKind::parse(&kind_s)
        .ok_or_else(|| StoreError::corrupt("scim_resource", &id, format!("kind {kind_s:?}")))?;
    let data_s: String = row.try_get("data")?;
    let data =
        serde_json::from_str(&data_s).map_err(|e| StoreError::corrupt("scim_resource", &id, e))?;
    Ok(ScimResource {
        connection: row.try_get("connection")?,
        kind,
        seq: row.try_get("seq")?,
        version: row.try_get("version")?,
        created_ms: row.try_get("created_ms")?,
        modified_ms: row.try_get("modified_ms")?,
        user_name: row.try_get("user_name")?,
        display_name: row.try_get("display_name")?,
        external_id: row.try_get("external_id")?,
        active: opt_bool(row, "active")?,
        data,
        id,
    })
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || {
                // The Any driver does not always carry the error kind.
                let m = d.message().to_ascii_lowercase();
                m.contains("unique") || m.contains("duplicate key")
            }
        }
        _ => false,
    }
}

fn data_text(w: &ScimResourceWrite) -> Result<String, StoreError> {
    serde_json::to_string(&w.data).map_err(|e| StoreError::Invalid(format!("resource JSON: {e}")))
}

fn unique_emails(emails: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    emails
        .iter()
        .map(|e| scim_fold(e))
        .filter(|e| !e.is_empty() && seen.insert(e.clone()))
        .collect()
}

/// `scim_email` rows (connection, resource_id, value_lc) for one resource.
fn email_rows(connection: &str, id: &str, emails: &[String]) -> Vec<Vec<Val>> {
    unique_emails(emails)
        .into_iter()
        .map(|e| {
            vec![
                Val::Text(connection.to_string()),
                Val::Text(id.to_string()),
                Val::Text(e),
            ]
        })
        .collect()
}

/// Inserts `scim_email` rows built by [`email_rows`].
async fn insert_email_rows(
    conn: &mut AnyConnection,
    rows: Vec<Vec<Val>>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "INSERT INTO scim_email (connection, resource_id, value_lc)",
        "ON CONFLICT DO NOTHING",
        3,
        rows,
    )
    .await
}

async fn insert_emails(
    conn: &mut AnyConnection,
    connection: &str,
    id: &str,
    emails: &[String],
) -> Result<(), StoreError> {
    insert_email_rows(conn, email_rows(connection, id, emails)).await
}

/// The head of every `scim_resource` insert; [`resource_row`] gives the
/// values in this order.
const RESOURCE_INSERT: &str = "INSERT INTO scim_resource (connection, kind, id, user_name, \
     user_name_lc, display_name, display_name_lc, external_id, active, version, created_ms, \
     modified_ms, data)";
const RESOURCE_COLS: usize = 13;

/// A new resource's row for [`RESOURCE_INSERT`]: version 1, created and
/// modified at `at_ms`.
fn resource_row(
    connection: &str,
    kind: ScimKind,
    write: &ScimResourceWrite,
    at_ms: i64,
) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        Val::Text(connection.to_string()),
        Val::Text(kind.as_str().to_string()),
        Val::Text(write.id.clone()),
        Val::OptText(write.user_name.clone()),
        Val::OptText(write.user_name.as_deref().map(scim_fold)),
        Val::OptText(write.display_name.clone()),
        Val::OptText(write.display_name.as_deref().map(scim_fold)),
        Val::OptText(write.external_id.clone()),
        Val::OptBool(write.active),
        Val::Int(1),
        Val::Int(at_ms),
        Val::Int(at_ms),
        Val::Text(data_text(write)?),
    ])
}

async fn insert_members(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
    members: &[ScimMember],
    first_ord: i64,
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val>> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                Val::Text(connection.to_string()),
                Val::Text(group_id.to_string()),
                Val::Text(m.value.clone()),
                Val::OptText(m.member_type.clone()),
                Val::OptText(m.display.clone()),
                Val::Int(first_ord + to_i64(i)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "INSERT INTO scim_member (connection, group_id, member_id, member_type, display, ord)",
        "ON CONFLICT DO NOTHING",
        6,
        rows,
    )
    .await
}

/// Inserts members each at its own `ord` (its position in the list).
async fn insert_members_at(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
    members: &[(usize, ScimMember)],
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val>> = members
        .iter()
        .map(|(i, m)| {
            vec![
                Val::Text(connection.to_string()),
                Val::Text(group_id.to_string()),
                Val::Text(m.value.clone()),
                Val::OptText(m.member_type.clone()),
                Val::OptText(m.display.clone()),
                Val::Int(to_i64(*i)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "INSERT INTO scim_member (connection, group_id, member_id, member_type, display, ord)",
        "ON CONFLICT DO NOTHING",
        6,
        rows,
    )
    .await
}

/// Bumps the version of the resources `ids` (any kind) whose
/// representation changed through a membership change.
async fn bump_versions(
    conn: &mut AnyConnection,
    connection: &str,
    ids: &[String],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "UPDATE scim_resource SET version = version + 1, modified_ms = $2 \
             WHERE connection = $1 AND id IN ({})",
            placeholders(3, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(at_ms);
        for id in chunk {
            q = q.bind(id.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How many positions a pending list spans (its largest position + 1).
fn dedup_len(pending: &[(usize, ScimMember)]) -> usize {
    pending.iter().map(|(i, _)| i + 1).max().unwrap_or(0)
}

/// Members without duplicates (first occurrence wins), in order.
fn dedup_members(members: &[ScimMember]) -> Vec<ScimMember> {
    let mut seen = HashSet::new();
    members
        .iter()
        .filter(|m| seen.insert(m.value.clone()))
        .cloned()
        .collect()
}

async fn user_name_taken(
    conn: &mut AnyConnection,
    connection: &str,
    kind: ScimKind,
    user_name: &str,
    except_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT id FROM scim_resource WHERE connection = $1 AND kind = $2 AND user_name_lc = $3",
    )
    .bind(connection.to_string())
    .bind(kind.as_str())
    .bind(scim_fold(user_name))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    Ok((Some(id.as_str()) != except_id).then_some(id))
}

/// One write in a batch (see [`Store::scim_write_batch`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ScimWriteOp {
    /// Create a resource (version 1).
    Create {
        kind: ScimKind,
        write: ScimResourceWrite,
    },
    /// Replace a resource still at `expected_version`. The flags let the
    /// store skip work: the caller read the resource and knows whether the
    /// userName (uniqueness check), the emails (index rows), or any of the
    /// indexed columns changed. `true` is always safe.
    Replace {
        kind: ScimKind,
        write: ScimResourceWrite,
        expected_version: i64,
        /// The userName differs case-insensitively (uniqueness is checked).
        user_name_changed: bool,
        emails_changed: bool,
        /// userName, displayName or externalId differ at all (even in
        /// case). When `false` only `active` and the data are written, so
        /// the indexes on those columns are not touched.
        columns_changed: bool,
    },
    /// Delete a resource (at `expected_version`, when given).
    Delete {
        kind: ScimKind,
        id: String,
        expected_version: Option<i64>,
    },
}

/// A write, its connection, and who to record it as in the audit log
/// (`None`: not audited, for imports and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct ScimWriteJob {
    pub connection: String,
    pub op: ScimWriteOp,
    pub actor: Option<String>,
}

/// What a successful write did.
#[derive(Clone, Debug, PartialEq)]
pub enum ScimWriteResult {
    Created(ScimResource),
    Replaced(ScimWriteOutcome),
    Deleted(ScimDeleted),
}

impl ScimWriteResult {
    /// The resource written (as it was, for a delete).
    pub fn resource(&self) -> &ScimResource {
        match self {
            ScimWriteResult::Created(r) => r,
            ScimWriteResult::Replaced(o) => &o.resource,
            ScimWriteResult::Deleted(d) => &d.resource,
        }
    }
}

/// The result of one job: a logical refusal is `Ok(Err(..))`; a database
/// failure (which aborts the whole batch) is `Err(..)`.
type JobResult = Result<Result<ScimWriteResult, ScimStoreError>, StoreError>;

fn audit_event_for(
    connection: &str,
    actor: &str,
    result: &ScimWriteResult,
    at_ms: i64,
) -> AuditEvent {
    let r = result.resource();
    let what = match result {
        ScimWriteResult::Created(_) => "created",
        ScimWriteResult::Replaced(_) => "updated",
        ScimWriteResult::Deleted(_) => "deleted",
    };
    let kind = match r.kind {
        ScimKind::User => "user",
        ScimKind::Group => "group",
    };
    AuditEvent {
        at_ms,
        actor: actor.to_string(),
        kind: format!("scim.{kind}.{what}"),
        subject: format!("scim:{connection}:{}:{}", r.kind, r.id),
        data: serde_json::json!({
            "id": r.id,
            "userName": r.user_name,
            "displayName": r.display_name,
            "externalId": r.external_id,
            "active": r.active,
            "version": r.version,
        }),
    }
}

async fn current_version(
    conn: &mut AnyConnection,
    connection: &str,
    kind: ScimKind,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "SELECT version FROM scim_resource WHERE connection = $1 AND kind = $2 AND id = $3",
    )
    .bind(connection.to_string())
    .bind(kind.as_str())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("version")?),
        None => None,
    })
}

async fn do_create(
    conn: &mut AnyConnection,
    connection: &str,
    kind: ScimKind,
    write: ScimResourceWrite,
    at_ms: i64,
) -> JobResult {
    // ON CONFLICT DO NOTHING: a taken userName (or id) inserts nothing and
    // raises no error, so the rest of a batch is unaffected.
    let sql = format!(
        "{RESOURCE_INSERT} VALUES {} ON CONFLICT DO NOTHING RETURNING seq",
        values_placeholders(RESOURCE_COLS, 1)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for v in resource_row(connection, kind, &write, at_ms)? {
        q = bind_val(q, v);
    }
    let inserted = q.fetch_optional(&mut *conn).await?;
    let Some(row) = inserted else {
        if let Some(un) = &write.user_name
            && let Some(existing_id) = user_name_taken(conn, connection, kind, un, None).await?
        {
            return Ok(Err(ScimStoreError::Conflict {
                kind,
                user_name: un.clone(),
                existing_id,
            }));
        }
        return Ok(Err(ScimStoreError::DuplicateId { kind, id: write.id }));
    };
    let seq: i64 = row.try_get("seq")?;
    insert_emails(conn, connection, &write.id, &write.emails).await?;
    if let Some(members) = &write.members {
        // Resolved in this transaction: a member that does not exist (yet)
        // is pending, never a dangling row (see `pending`).
        let members = dedup_members(members);
        let r = pending::resolve(conn, connection, &members, &HashSet::new()).await?;
        insert_members_at(conn, connection, &write.id, &r.members).await?;
        pending::replace(conn, connection, &write.id, &r.pending, 0).await?;
        let ids: Vec<String> = r.members.into_iter().map(|(_, m)| m.value).collect();
        bump_versions(conn, connection, &ids, at_ms).await?;
    }
    Ok(Ok(ScimWriteResult::Created(ScimResource {
        connection: connection.to_string(),
        kind,
        id: write.id,
        seq,
        version: 1,
        created_ms: at_ms,
        modified_ms: at_ms,
        user_name: write.user_name,
        display_name: write.display_name,
        external_id: write.external_id,
        active: write.active,
        data: write.data,
    })))
}

#[allow(clippy::too_many_arguments)]
async fn do_replace(
    conn: &mut AnyConnection,
    connection: &str,
    kind: ScimKind,
    write: ScimResourceWrite,
    expected_version: i64,
    user_name_changed: bool,
    emails_changed: bool,
    at_ms: i64,
) -> JobResult {
    let data = data_text(&write)?;
    if user_name_changed
        && let Some(un) = &write.user_name
        && let Some(existing_id) =
            user_name_taken(conn, connection, kind, un, Some(&write.id)).await?
    {
        return Ok(Err(ScimStoreError::Conflict {
            kind,
            user_name: un.clone(),
            existing_id,
        }));
    }
    // A group's displayName shows in each member user's `groups`, so a
    // rename changes their representations too (below).
    let old_group_name: Option<Option<String>> = match kind {
        ScimKind::Group => sqlx::query(
            "SELECT display_name FROM scim_resource \
             WHERE connection = $1 AND kind = $2 AND id = $3",
        )
        .bind(connection.to_string())
        .bind(kind.as_str())
        .bind(write.id.clone())
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get("display_name"))
        .transpose()?,
        ScimKind::User => None,
    };
    let sql = format!(
        "UPDATE scim_resource SET user_name = $4, user_name_lc = $5, display_name = $6, \
         display_name_lc = $7, external_id = $8, active = $9, version = version + 1, \
         modified_ms = $10, data = $11 \
         WHERE connection = $1 AND kind = $2 AND id = $3 AND version = $12 RETURNING {COLS}"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(connection.to_string())
        .bind(kind.as_str())
        .bind(write.id.clone())
        .bind(write.user_name.clone())
        .bind(write.user_name.as_deref().map(scim_fold))
        .bind(write.display_name.clone())
        .bind(write.display_name.as_deref().map(scim_fold))
        .bind(write.external_id.clone())
        .bind(write.active)
        .bind(at_ms)
        .bind(data)
        .bind(expected_version)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Err(
            match current_version(conn, connection, kind, &write.id).await? {
                None => ScimStoreError::NotFound { kind, id: write.id },
                Some(current) => ScimStoreError::VersionMismatch {
                    kind,
                    id: write.id,
                    expected: expected_version,
                    current,
                },
            },
        ));
    };
    let resource = decode(&row)?;

    if emails_changed {
        sqlx::query("DELETE FROM scim_email WHERE connection = $1 AND resource_id = $2")
            .bind(connection.to_string())
            .bind(write.id.clone())
            .execute(&mut *conn)
            .await?;
        insert_emails(conn, connection, &write.id, &write.emails).await?;
    }

    let mut added = Vec::new();
    let mut removed = Vec::new();
    if let Some(members) = &write.members {
        let members = dedup_members(members);
        let rows = sqlx::query(
            "SELECT member_id, member_type, display, ord FROM scim_member \
             WHERE connection = $1 AND group_id = $2",
        )
        .bind(connection.to_string())
        .bind(write.id.clone())
        .fetch_all(&mut *conn)
        .await?;
        let mut current: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
        let mut max_ord = -1i64;
        for r in &rows {
            let ord: i64 = r.try_get("ord")?;
            max_ord = max_ord.max(ord);
            current.insert(
                r.try_get("member_id")?,
                (r.try_get("member_type")?, r.try_get("display")?),
            );
        }
        let known: HashSet<String> = members
            .iter()
            .filter(|m| current.contains_key(&m.value))
            .map(|m| m.value.clone())
            .collect();
        let resolved = pending::resolve(conn, connection, &members, &known).await?;
        let pending_first = max_ord.max(pending::max_ord(conn, connection, &write.id).await?) + 1;
        pending::replace(
            conn,
            connection,
            &write.id,
            &resolved.pending,
            pending_first,
        )
        .await?;
        let members: Vec<ScimMember> = resolved.members.into_iter().map(|(_, m)| m).collect();
        let max_ord = pending_first + to_i64(dedup_len(&resolved.pending));
        let wanted: HashSet<&str> = members.iter().map(|m| m.value.as_str()).collect();
        removed = current
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        removed.sort();
        let mut new_members = Vec::new();
        for m in &members {
            match current.get(&m.value) {
                None => new_members.push(m.clone()),
                Some((t, d)) if *t != m.member_type || *d != m.display => {
                    sqlx::query(
                        "UPDATE scim_member SET member_type = $4, display = $5 \
                         WHERE connection = $1 AND group_id = $2 AND member_id = $3",
                    )
                    .bind(connection.to_string())
                    .bind(write.id.clone())
                    .bind(m.value.clone())
                    .bind(m.member_type.clone())
                    .bind(m.display.clone())
                    .execute(&mut *conn)
                    .await?;
                }
                Some(_) => {}
            }
        }
        for chunk in removed.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM scim_member WHERE connection = $1 AND group_id = $2 \
                 AND member_id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(connection.to_string())
                .bind(write.id.clone());
            for id in chunk {
                q = q.bind(id.clone());
            }
            q.execute(&mut *conn).await?;
        }
        insert_members(conn, connection, &write.id, &new_members, max_ord + 1).await?;
        added = new_members.into_iter().map(|m| m.value).collect();
        let touched: Vec<String> = added.iter().chain(removed.iter()).cloned().collect();
        bump_versions(conn, connection, &touched, at_ms).await?;
    }
    if let Some(old_name) = old_group_name
        && old_name != resource.display_name
    {
        // Every member user's `groups[].display` changed: their versions
        // (their ETags, and what a reader keeping renderings checks) move.
        sqlx::query(
            "UPDATE scim_resource SET version = version + 1, modified_ms = $3 \
             WHERE connection = $1 AND kind = 'User' AND id IN \
             (SELECT member_id FROM scim_member WHERE connection = $1 AND group_id = $2)",
        )
        .bind(connection.to_string())
        .bind(write.id.clone())
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Ok(ScimWriteResult::Replaced(ScimWriteOutcome {
        resource,
        members_added: added,
        members_removed: removed,
    })))
}

async fn do_delete(
    conn: &mut AnyConnection,
    connection: &str,
    kind: ScimKind,
    id: &str,
    expected_version: Option<i64>,
    at_ms: i64,
) -> JobResult {
    let sql = format!(
        "DELETE FROM scim_resource WHERE connection = $1 AND kind = $2 AND id = $3 \
         AND ($4 < 0 OR version = $4) RETURNING {COLS}"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(connection.to_string())
        .bind(kind.as_str())
        .bind(id.to_string())
        .bind(expected_version.unwrap_or(-1))
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Err(
            match current_version(conn, connection, kind, id).await? {
                None => ScimStoreError::NotFound {
                    kind,
                    id: id.to_string(),
                },
                Some(current) => ScimStoreError::VersionMismatch {
                    kind,
                    id: id.to_string(),
                    expected: expected_version.unwrap_or(-1),
                    current,
                },
            },
        ));
    };
    let resource = decode(&row)?;
    sqlx::query("DELETE FROM scim_email WHERE connection = $1 AND resource_id = $2")
        .bind(connection.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if kind == ScimKind::Group {
        pending::delete_of_group(conn, connection, id).await?;
    }
    let former_members: Vec<String> = sqlx::query(
        "DELETE FROM scim_member WHERE connection = $1 AND group_id = $2 RETURNING member_id",
    )
    .bind(connection.to_string())
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("member_id"))
    .collect::<Result<_, _>>()?;
    let former_groups: Vec<String> = sqlx::query(
        "DELETE FROM scim_member WHERE connection = $1 AND member_id = $2 RETURNING group_id",
    )
    .bind(connection.to_string())
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("group_id"))
    .collect::<Result<_, _>>()?;
    let touched: Vec<String> = former_members
        .iter()
        .chain(former_groups.iter())
        .cloned()
        .collect();
    bump_versions(conn, connection, &touched, at_ms).await?;
    Ok(Ok(ScimWriteResult::Deleted(ScimDeleted {
        resource,
        former_members,
        former_groups,
    })))
}

async fn run_job(conn: &mut AnyConnection, job: ScimWriteJob, at_ms: i64) -> JobResult {
    let c = job.connection.as_str();
    match job.op {
        ScimWriteOp::Create { kind, write } => do_create(conn, c, kind, write, at_ms).await,
        ScimWriteOp::Replace {
            kind,
            write,
            expected_version,
            user_name_changed,
            emails_changed,
            columns_changed: _,
        } => {
            do_replace(
                conn,
                c,
                kind,
                write,
                expected_version,
                user_name_changed,
                emails_changed,
                at_ms,
            )
            .await
        }
        ScimWriteOp::Delete {
            kind,
            id,
            expected_version,
        } => do_delete(conn, c, kind, &id, expected_version, at_ms).await,
    }
}

type Slots = Vec<Option<Result<ScimWriteResult, ScimStoreError>>>;

/// Creates of `idx` (plain, without members) as multi-row inserts.
async fn create_many(
    conn: &mut AnyConnection,
    jobs: &[ScimWriteJob],
    idx: &[usize],
    results: &mut Slots,
    at_ms: i64,
) -> Result<(), StoreError> {
    let mut emails = Vec::new();
    for chunk in idx.chunks(MAX_ROWS_PER_STMT) {
        let sql = format!(
            "{RESOURCE_INSERT} VALUES {} ON CONFLICT DO NOTHING RETURNING connection, id, seq",
            values_placeholders(RESOURCE_COLS, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for &i in chunk {
            let ScimWriteOp::Create { kind, write } = &jobs[i].op else {
                continue;
            };
            for v in resource_row(&jobs[i].connection, *kind, write, at_ms)? {
                q = bind_val(q, v);
            }
        }
        let mut seqs: HashMap<(String, String), i64> = HashMap::new();
        for row in q.fetch_all(&mut *conn).await? {
            seqs.insert(
                (row.try_get("connection")?, row.try_get("id")?),
                row.try_get("seq")?,
            );
        }
        for &i in chunk {
            let job = &jobs[i];
            let ScimWriteOp::Create { kind, write } = &job.op else {
                continue;
            };
            let kind = *kind;
            let key = (job.connection.clone(), write.id.clone());
            results[i] = Some(match seqs.remove(&key) {
                Some(seq) => {
                    emails.extend(email_rows(&job.connection, &write.id, &write.emails));
                    Ok(ScimWriteResult::Created(ScimResource {
                        connection: job.connection.clone(),
                        kind,
                        id: write.id.clone(),
                        seq,
                        version: 1,
                        created_ms: at_ms,
                        modified_ms: at_ms,
                        user_name: write.user_name.clone(),
                        display_name: write.display_name.clone(),
                        external_id: write.external_id.clone(),
                        active: write.active,
                        data: write.data.clone(),
                    }))
                }
                None => Err(match &write.user_name {
                    Some(un) => match user_name_taken(conn, &job.connection, kind, un, None).await?
                    {
                        Some(existing_id) => ScimStoreError::Conflict {
                            kind,
                            user_name: un.clone(),
                            existing_id,
                        },
                        None => ScimStoreError::DuplicateId {
                            kind,
                            id: write.id.clone(),
                        },
                    },
                    None => ScimStoreError::DuplicateId {
                        kind,
                        id: write.id.clone(),
                    },
                }),
            });
        }
    }
    insert_email_rows(conn, emails).await
}

/// Replaces of `idx` (same userName, no membership change; distinct
/// resources) as multi-row `UPDATE ... FROM (VALUES ...)` statements: one
/// shape for replaces that leave the indexed columns as they are (a PATCH
/// of `active`, most IdP updates), which then stay untouched, and one for
/// the rest.
async fn replace_many(
    conn: &mut AnyConnection,
    jobs: &[ScimWriteJob],
    idx: &[usize],
    results: &mut Slots,
    at_ms: i64,
) -> Result<(), StoreError> {
    let mut new_emails = Vec::new();
    let mut email_owners: Vec<(String, String)> = Vec::new();
    let (full, data_only): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| {
        matches!(
            jobs[i].op,
            ScimWriteOp::Replace {
                columns_changed: true,
                ..
            }
        )
    });
    let chunks = full
        .chunks(MAX_ROWS_PER_STMT)
        .map(|c| (c, true))
        .chain(data_only.chunks(MAX_ROWS_PER_STMT).map(|c| (c, false)));
    for (chunk, with_columns) in chunks {
        let cols_per_row = if with_columns { 11 } else { 6 };
        let values = (0..chunk.len())
            .map(|r| format!("({})", placeholders(r * cols_per_row + 2, cols_per_row)))
            .collect::<Vec<_>>()
            .join(", ");
        // The CTE's columns are prefixed so RETURNING stays unambiguous.
        let sql = if with_columns {
            format!(
                "WITH v (v_connection, v_kind, v_id, v_user_name, v_user_name_lc, v_display_name, \
                 v_display_name_lc, v_external_id, v_active, v_data, v_expected) AS (VALUES {values}) \
                 UPDATE scim_resource SET user_name = v_user_name, user_name_lc = v_user_name_lc, \
                 display_name = v_display_name, display_name_lc = v_display_name_lc, \
                 external_id = v_external_id, active = v_active, version = version + 1, \
                 modified_ms = $1, data = v_data FROM v \
                 WHERE connection = v_connection AND kind = v_kind AND id = v_id \
                 AND version = v_expected RETURNING {COLS}"
            )
        } else {
            format!(
                "WITH v (v_connection, v_kind, v_id, v_active, v_data, v_expected) \
                 AS (VALUES {values}) \
                 UPDATE scim_resource SET active = v_active, version = version + 1, \
                 modified_ms = $1, data = v_data FROM v \
                 WHERE connection = v_connection AND kind = v_kind AND id = v_id \
                 AND version = v_expected RETURNING {COLS}"
            )
        };
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(at_ms);
        for &i in chunk {
            let ScimWriteOp::Replace {
                kind,
                write,
                expected_version,
                ..
            } = &jobs[i].op
            else {
                continue;
            };
            q = q
                .bind(jobs[i].connection.clone())
                .bind(kind.as_str())
                .bind(write.id.clone());
            if with_columns {
                q = q
                    .bind(write.user_name.clone())
                    .bind(write.user_name.as_deref().map(scim_fold))
                    .bind(write.display_name.clone())
                    .bind(write.display_name.as_deref().map(scim_fold))
                    .bind(write.external_id.clone());
            }
            q = q
                .bind(write.active)
                .bind(data_text(write)?)
                .bind(*expected_version);
        }
        let mut updated: HashMap<(String, String, String), ScimResource> = HashMap::new();
        for row in q.fetch_all(&mut *conn).await? {
            let r = decode(&row)?;
            updated.insert(
                (
                    r.connection.clone(),
                    r.kind.as_str().to_string(),
                    r.id.clone(),
                ),
                r,
            );
        }
        for &i in chunk {
            let job = &jobs[i];
            let ScimWriteOp::Replace {
                kind,
                write,
                expected_version,
                emails_changed,
                ..
            } = &job.op
            else {
                continue;
            };
            let kind = *kind;
            let key = (
                job.connection.clone(),
                kind.as_str().to_string(),
                write.id.clone(),
            );
            results[i] = Some(match updated.remove(&key) {
                Some(resource) => {
                    if *emails_changed {
                        email_owners.push((job.connection.clone(), write.id.clone()));
                        new_emails.extend(email_rows(&job.connection, &write.id, &write.emails));
                    }
                    Ok(ScimWriteResult::Replaced(ScimWriteOutcome {
                        resource,
                        members_added: Vec::new(),
                        members_removed: Vec::new(),
                    }))
                }
                None => Err(
                    match current_version(conn, &job.connection, kind, &write.id).await? {
                        None => ScimStoreError::NotFound {
                            kind,
                            id: write.id.clone(),
                        },
                        Some(current) => ScimStoreError::VersionMismatch {
                            kind,
                            id: write.id.clone(),
                            expected: *expected_version,
                            current,
                        },
                    },
                ),
            });
        }
    }
    for (connection, id) in &email_owners {
        sqlx::query("DELETE FROM scim_email WHERE connection = $1 AND resource_id = $2")
            .bind(connection.clone())
            .bind(id.clone())
            .execute(&mut *conn)
            .await?;
    }
    insert_email_rows(conn, new_emails).await
}

/// The `WHERE` condition (on `$1` the connection and `$3` the value) and
/// the value to bind, of an equality lookup on `index`.
fn index_condition(index: ScimIndex, value: &str) -> (&'static str, String) {
    match index {
        ScimIndex::Id => ("id = $3", value.to_string()),
        ScimIndex::UserName => ("user_name_lc = $3", scim_fold(value)),
        ScimIndex::ExternalId => ("external_id = $3", value.to_string()),
        ScimIndex::DisplayName => ("display_name_lc = $3", scim_fold(value)),
        ScimIndex::Email => (
            "id IN (SELECT resource_id FROM scim_email WHERE connection = $1 \
             AND value_lc = $3)",
            scim_fold(value),
        ),
        ScimIndex::Member => (
            "id IN (SELECT group_id FROM scim_member WHERE connection = $1 \
             AND member_id = $3)",
            value.to_string(),
        ),
    }
}

/// A database error from a single-job batch, as the caller should see it:
/// a unique violation is a lost creation race (a conflict).
fn classify(e: StoreError, op: &ScimWriteOp) -> ScimStoreError {
    if let StoreError::Database(db) = &e
        && is_unique_violation(db)
    {
        let (kind, write) = match op {
            ScimWriteOp::Create { kind, write } | ScimWriteOp::Replace { kind, write, .. } => {
                (*kind, write)
            }
            ScimWriteOp::Delete { .. } => return e.into(),
        };
        return match &write.user_name {
            Some(un) => ScimStoreError::Conflict {
                kind,
                user_name: un.clone(),
                existing_id: String::new(),
            },
            None => ScimStoreError::DuplicateId {
                kind,
                id: write.id.clone(),
            },
        };
    }
    e.into()
}

impl Store {
    /// Runs several SCIM writes in **one transaction**, each audited (when
    /// it has an actor) in the same transaction, and returns one result
    /// per job, in order.
    ///
    /// A job that is refused (conflict, not found, version mismatch)
    /// changes nothing and does not affect the others: refusals are
    /// detected without raising database errors. A database error aborts
    /// the whole batch (`Err`), nothing is written, and the caller may
    /// retry the jobs one by one to isolate it. Batching amortizes the
    /// commit and the audit-chain update over concurrent requests (group
    /// commit), which is what makes writes fast on SQLite's single writer.
    pub async fn scim_write_batch(
        &self,
        jobs: Vec<ScimWriteJob>,
        at_ms: i64,
    ) -> Result<Vec<Result<ScimWriteResult, ScimStoreError>>, StoreError> {
        let mut tx = self.write.begin().await?;
        let n = jobs.len();
        let mut results: Vec<Option<Result<ScimWriteResult, ScimStoreError>>> =
            (0..n).map(|_| None).collect();
        // The common shapes (a plain create, a replace that changes
        // neither userName nor membership) run as one multi-row statement
        // each; the rest run one by one. Jobs of one batch are concurrent
        // requests, so any order among them is a valid serialization.
        let mut creates = Vec::new();
        let mut replaces = Vec::new();
        let mut others = Vec::new();
        let mut replaced_ids = HashSet::new();
        for (i, job) in jobs.iter().enumerate() {
            match &job.op {
                ScimWriteOp::Create { write, .. } if write.members.is_none() => creates.push(i),
                ScimWriteOp::Replace {
                    kind,
                    write,
                    user_name_changed: false,
                    ..
                } if write.members.is_none()
                    && replaced_ids.insert((job.connection.as_str(), *kind, write.id.as_str())) =>
                {
                    replaces.push(i)
                }
                _ => others.push(i),
            }
        }
        create_many(&mut tx, &jobs, &creates, &mut results, at_ms).await?;
        replace_many(&mut tx, &jobs, &replaces, &mut results, at_ms).await?;
        for &i in &others {
            results[i] = Some(run_job(&mut tx, jobs[i].clone(), at_ms).await?);
        }
        // Users that arrived with an externalId take their place in the
        // groups that named them before they came (see `pending`).
        let mut arrivals: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for (job, r) in jobs.iter().zip(&results) {
            let brings_id = match &job.op {
                ScimWriteOp::Create { kind, .. } => *kind == ScimKind::User,
                ScimWriteOp::Replace {
                    kind,
                    columns_changed,
                    ..
                } => *kind == ScimKind::User && *columns_changed,
                ScimWriteOp::Delete { .. } => false,
            };
            if !brings_id {
                continue;
            }
            if let Some(Ok(ok)) = r {
                let res = ok.resource();
                if let Some(ext) = &res.external_id {
                    arrivals
                        .entry(job.connection.as_str())
                        .or_default()
                        .push((res.id.clone(), ext.clone()));
                }
            }
        }
        for (connection, users) in &arrivals {
            pending::link_arrivals(&mut tx, connection, users, at_ms).await?;
        }
        // The order the jobs ran in decides which write of a user is last.
        let order: Vec<usize> = creates
            .iter()
            .chain(replaces.iter())
            .chain(others.iter())
            .copied()
            .collect();
        let mut out = Vec::with_capacity(n);
        let mut events = Vec::new();
        for (job, r) in jobs.iter().zip(results) {
            let r = r.unwrap_or_else(|| {
                Err(StoreError::Invalid("internal: job left without a result".into()).into())
            });
            if let (Ok(ok), Some(actor)) = (&r, &job.actor) {
                events.push(audit_event_for(&job.connection, actor, ok, at_ms));
            }
            out.push(r);
        }
        // The gateway's typed intent, in the same transaction as the
        // resources it describes.
        crate::gateway::sync_batch(&mut tx, &jobs, &out, &order, at_ms).await?;
        crate::audit::append_in_tx(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One job in its own transaction; database errors are classified
    /// (a unique violation from a lost race is a conflict).
    pub async fn scim_write(
        &self,
        job: ScimWriteJob,
        at_ms: i64,
    ) -> Result<ScimWriteResult, ScimStoreError> {
        let op = job.op.clone();
        match self.scim_write_batch(vec![job], at_ms).await {
            Ok(mut rs) => rs.pop().unwrap_or_else(|| {
                Err(StoreError::Invalid("internal: empty batch result".into()).into())
            }),
            Err(e) => Err(classify(e, &op)),
        }
    }

    /// Creates a resource at `at_ms` (version 1), unaudited.
    ///
    /// Fails with [`ScimStoreError::Conflict`] when the userName is taken
    /// in this connection (case-insensitively), and
    /// [`ScimStoreError::DuplicateId`] when the id is.
    pub async fn scim_create(
        &self,
        connection: &str,
        kind: ScimKind,
        write: ScimResourceWrite,
        at_ms: i64,
    ) -> Result<ScimResource, ScimStoreError> {
        let job = ScimWriteJob {
            connection: connection.to_string(),
            op: ScimWriteOp::Create { kind, write },
            actor: None,
        };
        match self.scim_write(job, at_ms).await? {
            ScimWriteResult::Created(r) => Ok(r),
            _ => Err(StoreError::Invalid("internal: unexpected write result".into()).into()),
        }
    }

    /// Replaces a resource's content if it is still at `expected_version`
    /// (unaudited); the version becomes `expected_version + 1` and
    /// `created_ms` is kept.
    ///
    /// For a group with `members: Some(..)`, membership is brought to that
    /// list (members already present keep their place) and the members
    /// added or removed have their versions bumped.
    pub async fn scim_replace(
        &self,
        connection: &str,
        kind: ScimKind,
        write: ScimResourceWrite,
        expected_version: i64,
        at_ms: i64,
    ) -> Result<ScimWriteOutcome, ScimStoreError> {
        let job = ScimWriteJob {
            connection: connection.to_string(),
            op: ScimWriteOp::Replace {
                kind,
                write,
                expected_version,
                user_name_changed: true,
                emails_changed: true,
                columns_changed: true,
            },
            actor: None,
        };
        match self.scim_write(job, at_ms).await? {
            ScimWriteResult::Replaced(o) => Ok(o),
            _ => Err(StoreError::Invalid("internal: unexpected write result".into()).into()),
        }
    }

    /// Deletes a resource (if still at `expected_version`, when given),
    /// unaudited: its emails, its members, and its memberships in other
    /// groups, whose versions are bumped.
    pub async fn scim_delete(
        &self,
        connection: &str,
        kind: ScimKind,
        id: &str,
        expected_version: Option<i64>,
        at_ms: i64,
    ) -> Result<ScimDeleted, ScimStoreError> {
        let job = ScimWriteJob {
            connection: connection.to_string(),
            op: ScimWriteOp::Delete {
                kind,
                id: id.to_string(),
                expected_version,
            },
            actor: None,
        };
        match self.scim_write(job, at_ms).await? {
            ScimWriteResult::Deleted(d) => Ok(d),
            _ => Err(StoreError::Invalid("internal: unexpected write result".into()).into()),
        }
    }

    /// Creates many users or groups in one transaction, without uniqueness
    /// pre-checks or membership: a bulk loader for imports and benchmarks.
    /// Users' intent rows (where the writes carry one) are written too.
    /// Any duplicate fails the whole batch.
    pub async fn scim_import(
        &self,
        connection: &str,
        kind: ScimKind,
        writes: Vec<ScimResourceWrite>,
        at_ms: i64,
    ) -> Result<(), ScimStoreError> {
        let mut rows = Vec::with_capacity(writes.len());
        let mut emails = Vec::new();
        for w in &writes {
            rows.push(resource_row(connection, kind, w, at_ms)?);
            emails.extend(email_rows(connection, &w.id, &w.emails));
        }
        let mut tx = self.write.begin().await?;
        match insert_rows(&mut tx, RESOURCE_INSERT, "", RESOURCE_COLS, rows).await {
            Ok(()) => {}
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                return Err(StoreError::Invalid(format!(
                    "import into {connection}: a userName or id is already used ({e})"
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        insert_email_rows(&mut tx, emails).await?;
        // Imported users are new (version 1): their intent, where given,
        // goes in with them; the rest is the engine's backfill.
        if kind == ScimKind::User {
            let intents: Vec<(String, i64, crate::GatewayUser)> = writes
                .iter()
                .filter_map(|w| Some((w.id.clone(), 1, w.intent.clone()?)))
                .collect();
            crate::gateway::insert_missing(&mut tx, connection, &intents, at_ms).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One resource by id.
    pub async fn scim_get(
        &self,
        connection: &str,
        kind: ScimKind,
        id: &str,
    ) -> Result<Option<ScimResource>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM scim_resource WHERE connection = $1 AND kind = $2 AND id = $3"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(id.to_string())
            .read_optional(self)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// The heads of those of `ids` that exist (one statement per 500 ids),
    /// keyed by id: for checking many kept renderings at once.
    pub async fn scim_heads_of(
        &self,
        connection: &str,
        kind: ScimKind,
        ids: &[String],
    ) -> Result<HashMap<String, ScimHead>, StoreError> {
        let rows = self
            .scim_rows_by_id(HEAD_COLS, connection, kind, ids)
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let head = decode_head(r)?;
            out.insert(head.id.clone(), head);
        }
        Ok(out)
    }

    /// The resources among `ids` that exist, in creation order.
    pub async fn scim_get_many(
        &self,
        connection: &str,
        kind: ScimKind,
        ids: &[String],
    ) -> Result<Vec<ScimResource>, StoreError> {
        let rows = self.scim_rows_by_id(COLS, connection, kind, ids).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.seq);
        out.dedup_by_key(|r| r.seq);
        Ok(out)
    }

    /// The kind of each of `ids` that exists in `connection` (Users and
    /// Groups), for validating group members.
    pub async fn scim_kinds_of(
        &self,
        connection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, ScimKind>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT id, kind FROM scim_resource WHERE connection = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.read_all(self).await? {
                let id: String = row.try_get("id")?;
                let k: String = row.try_get("kind")?;
                if let Some(k) = ScimKind::parse(&k) {
                    out.insert(id, k);
                }
            }
        }
        Ok(out)
    }

    /// Equality lookup on an indexed attribute: a candidate set, in creation
    /// order, that contains every resource whose attribute equals `value`
    /// under any case rule (see the module docs).
    pub async fn scim_find(
        &self,
        connection: &str,
        kind: ScimKind,
        index: ScimIndex,
        value: &str,
    ) -> Result<Vec<ScimResource>, StoreError> {
        let rows = self
            .scim_find_rows(COLS, connection, kind, index, value)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The heads of what [`Store::scim_find`] finds (the same candidates,
    /// in creation order), without the bodies: for a reader that keeps
    /// renderings by head and loads only those it lacks
    /// ([`Store::scim_get_many`]).
    pub async fn scim_find_heads(
        &self,
        connection: &str,
        kind: ScimKind,
        index: ScimIndex,
        value: &str,
    ) -> Result<Vec<ScimHead>, StoreError> {
        let rows = self
            .scim_find_rows(HEAD_COLS, connection, kind, index, value)
            .await?;
        rows.iter().map(decode_head).collect()
    }

    /// The `cols` of the resources of `kind` among `ids` (one statement per
    /// [`IN_CHUNK`] ids), in no order.
    async fn scim_rows_by_id(
        &self,
        cols: &str,
        connection: &str,
        kind: ScimKind,
        ids: &[String],
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {cols} FROM scim_resource WHERE connection = $1 AND kind = $2 \
                 AND id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(connection.to_string())
                .bind(kind.as_str());
            for id in chunk {
                q = q.bind(id.clone());
            }
            out.extend(q.read_all(self).await?);
        }
        Ok(out)
    }

    /// The `cols` of [`Store::scim_find`]'s candidates, in creation order.
    async fn scim_find_rows(
        &self,
        cols: &str,
        connection: &str,
        kind: ScimKind,
        index: ScimIndex,
        value: &str,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let (cond, v) = index_condition(index, value);
        let sql = format!(
            "SELECT {cols} FROM scim_resource WHERE connection = $1 AND kind = $2 AND {cond} \
             ORDER BY seq"
        );
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(v)
            .read_all(self)
            .await?)
    }

    /// Up to `limit` resources created after `after_seq`, in creation
    /// order: the cursor for scanning a connection page by page.
    pub async fn scim_scan(
        &self,
        connection: &str,
        kind: ScimKind,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<ScimResource>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM scim_resource WHERE connection = $1 AND kind = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(after_seq)
            .bind(to_i64(limit))
            .read_all(self)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// One page of all resources in creation order: `offset` resources are
    /// skipped (0-based), at most `limit` returned.
    pub async fn scim_page(
        &self,
        connection: &str,
        kind: ScimKind,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ScimResource>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLS} FROM scim_resource WHERE connection = $1 AND kind = $2 \
             ORDER BY seq LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(to_i64(limit))
            .bind(to_i64(offset))
            .read_all(self)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// How many resources of `kind` the connection has.
    pub async fn scim_count(&self, connection: &str, kind: ScimKind) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM scim_resource WHERE connection = $1 AND kind = $2",
        )
        .bind(connection.to_string())
        .bind(kind.as_str())
        .read_one(self)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Those of `connections` that have at least one resource of `kind`,
    /// in the order given: one statement, an index probe per connection
    /// (never a count of a large connection's resources).
    pub async fn scim_connections_with(
        &self,
        connections: &[String],
        kind: ScimKind,
    ) -> Result<Vec<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in connections.chunks(200) {
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT * FROM (SELECT connection FROM scim_resource \
                         WHERE connection = ${} AND kind = $1 LIMIT 1) AS q{i}",
                        i + 2
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind.as_str());
            for c in chunk {
                q = q.bind(c.clone());
            }
            for row in q.read_all(self).await? {
                found.insert(row.try_get::<String, _>("connection")?);
            }
        }
        Ok(connections
            .iter()
            .filter(|c| found.contains(*c))
            .cloned()
            .collect())
    }

    /// The members of each of `group_ids`, in the order they were added.
    pub async fn scim_members(
        &self,
        connection: &str,
        group_ids: &[String],
    ) -> Result<HashMap<String, Vec<ScimMember>>, StoreError> {
        let mut out: HashMap<String, Vec<ScimMember>> = HashMap::new();
        for chunk in group_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT group_id, member_id, member_type, display FROM scim_member \
                 WHERE connection = $1 AND group_id IN ({}) ORDER BY group_id, ord",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.read_all(self).await? {
                let gid: String = row.try_get("group_id")?;
                out.entry(gid).or_default().push(ScimMember {
                    value: row.try_get("member_id")?,
                    member_type: row.try_get("member_type")?,
                    display: row.try_get("display")?,
                });
            }
        }
        Ok(out)
    }

    /// The groups each of `member_ids` directly belongs to, ordered by
    /// group creation.
    pub async fn scim_groups_of(
        &self,
        connection: &str,
        member_ids: &[String],
    ) -> Result<HashMap<String, Vec<ScimGroupRef>>, StoreError> {
        let mut out: HashMap<String, Vec<ScimGroupRef>> = HashMap::new();
        for chunk in member_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT m.member_id, m.group_id, g.display_name FROM scim_member m \
                 JOIN scim_resource g ON g.connection = m.connection AND g.kind = 'Group' \
                 AND g.id = m.group_id \
                 WHERE m.connection = $1 AND m.member_id IN ({}) ORDER BY g.seq",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.read_all(self).await? {
                let mid: String = row.try_get("member_id")?;
                out.entry(mid).or_default().push(ScimGroupRef {
                    group_id: row.try_get("group_id")?,
                    display_name: row.try_get("display_name")?,
                });
            }
        }
        Ok(out)
    }

    /// Stores a new token record. Fails with [`StoreError::Invalid`] if the
    /// prefix is already used (the caller draws a new token and retries).
    pub async fn scim_token_insert(&self, record: &ScimTokenRecord) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO scim_token (prefix, connection, hash, created_ms, last_used_ms, \
             revoked_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.prefix.clone())
        .bind(record.connection.clone())
        .bind(record.hash.clone())
        .bind(record.created_ms)
        .bind(record.last_used_ms)
        .bind(record.revoked_ms)
        .execute(&self.write)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Invalid(format!(
                "token prefix {} already exists",
                record.prefix
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The token named `prefix`, revoked or not.
    pub async fn scim_token(&self, prefix: &str) -> Result<Option<ScimTokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT prefix, connection, hash, created_ms, last_used_ms, revoked_ms \
             FROM scim_token WHERE prefix = $1",
        )
        .bind(prefix.to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode_token).transpose()
    }

    /// All tokens (of one connection, if given), oldest first.
    pub async fn scim_tokens(
        &self,
        connection: Option<&str>,
    ) -> Result<Vec<ScimTokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT prefix, connection, hash, created_ms, last_used_ms, revoked_ms \
             FROM scim_token WHERE ($1 = '' OR connection = $1) ORDER BY created_ms, prefix",
        )
        .bind(connection.unwrap_or("").to_string())
        .read_all(self)
        .await?;
        rows.iter().map(decode_token).collect()
    }

    /// Revokes the token `prefix` at `at_ms`. Returns false if there is no
    /// such live token (unknown, or already revoked).
    pub async fn scim_token_revoke(&self, prefix: &str, at_ms: i64) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE scim_token SET revoked_ms = $2 WHERE prefix = $1 AND revoked_ms IS NULL",
        )
        .bind(prefix.to_string())
        .bind(at_ms)
        .execute(&self.write)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Records that token `prefix` was used at `at_ms`.
    pub async fn scim_token_touch(&self, prefix: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE scim_token SET last_used_ms = $2 WHERE prefix = $1")
            .bind(prefix.to_string())
            .bind(at_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

fn decode_token(row: &AnyRow) -> Result<ScimTokenRecord, StoreError> {
    Ok(ScimTokenRecord {
        prefix: row.try_get("prefix")?,
        connection: row.try_get("connection")?,
        hash: row.try_get("hash")?,
        created_ms: row.try_get("created_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(2, 1), "$2");
    }

    #[test]
    fn emails_are_folded_and_deduplicated() {
        let got = unique_emails(&["A@X.com".into(), "a@x.COM".into(), "".into(), "b@x".into()]);
        assert_eq!(got, vec!["a@x.com".to_string(), "b@x".to_string()]);
    }
}
