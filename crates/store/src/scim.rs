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
//! * Every write runs in one transaction: the row, its emails and its
//!   membership change together or not at all.
//! * `version` starts at 1 and grows by one on every change of the
//!   resource's representation, including membership changes seen through
//!   `User.groups`; writes take the version they read
//!   (`expected_version`) and fail with [`ScimStoreError::VersionMismatch`]
//!   instead of overwriting a concurrent change (optimistic concurrency).
//! * `userName` is unique per connection case-insensitively, enforced by a
//!   unique index, so concurrent creates cannot both succeed.
//! * Tokens are stored as SHA-256 hex only; the store never sees a token
//!   in clear except as the hash the caller computed.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::sql::{Val, insert_rows};
use crate::{Store, StoreError, to_i64};

/// IDs per `IN (...)` list; far below both engines' parameter limits.
const IN_CHUNK: usize = 500;

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
    #[error("STORE-SCIM-001 userName {user_name:?} is already used by {kind} {existing_id}")]
    Conflict {
        kind: ScimKind,
        user_name: String,
        existing_id: String,
    },
    /// The resource id is already taken (a caller bug or a replayed create).
    #[error("STORE-SCIM-002 {kind} id {id:?} already exists")]
    DuplicateId { kind: ScimKind, id: String },
    /// The resource does not exist.
    #[error("STORE-SCIM-003 {kind} {id:?} not found")]
    NotFound { kind: ScimKind, id: String },
    /// The resource changed since the caller read it.
    #[error("STORE-SCIM-004 {kind} {id:?} is at version {current}, not {expected}")]
    VersionMismatch {
        kind: ScimKind,
        id: String,
        expected: i64,
        current: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
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

async fn insert_emails(
    conn: &mut AnyConnection,
    connection: &str,
    id: &str,
    emails: &[String],
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Val>> = unique_emails(emails)
        .into_iter()
        .map(|e| {
            vec![
                Val::Text(connection.to_string()),
                Val::Text(id.to_string()),
                Val::Text(e),
            ]
        })
        .collect();
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

impl Store {
    /// Creates a resource at `at_ms` (version 1).
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
        let data = data_text(&write)?;
        let mut tx = self.write.begin().await?;
        if let Some(un) = &write.user_name
            && let Some(existing_id) = user_name_taken(&mut tx, connection, kind, un, None).await?
        {
            return Err(ScimStoreError::Conflict {
                kind,
                user_name: un.clone(),
                existing_id,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO scim_resource (connection, kind, id, user_name, user_name_lc, \
             display_name, display_name_lc, external_id, active, version, created_ms, \
             modified_ms, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10, $11) \
             RETURNING seq",
        )
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
        .fetch_one(&mut *tx)
        .await;
        let seq: i64 = match inserted {
            Ok(row) => row.try_get("seq")?,
            Err(e) if is_unique_violation(&e) => {
                // Lost a race with a concurrent create (PostgreSQL), or the
                // id itself is taken.
                return Err(match &write.user_name {
                    Some(un) => ScimStoreError::Conflict {
                        kind,
                        user_name: un.clone(),
                        existing_id: String::new(),
                    },
                    None => ScimStoreError::DuplicateId { kind, id: write.id },
                });
            }
            Err(e) => return Err(e.into()),
        };
        insert_emails(&mut tx, connection, &write.id, &write.emails).await?;
        if let Some(members) = &write.members {
            let members = dedup_members(members);
            insert_members(&mut tx, connection, &write.id, &members, 0).await?;
            let ids: Vec<String> = members.into_iter().map(|m| m.value).collect();
            bump_versions(&mut tx, connection, &ids, at_ms).await?;
        }
        tx.commit().await?;
        Ok(ScimResource {
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
        })
    }

    /// Creates many users or groups in one transaction, without uniqueness
    /// pre-checks or membership: a bulk loader for imports and benchmarks.
    /// Any duplicate fails the whole batch.
    pub async fn scim_import(
        &self,
        connection: &str,
        kind: ScimKind,
        writes: Vec<ScimResourceWrite>,
        at_ms: i64,
    ) -> Result<(), ScimStoreError> {
        let mut emails = Vec::new();
        for w in &writes {
            for e in unique_emails(&w.emails) {
                emails.push(vec![
                    Val::Text(connection.to_string()),
                    Val::Text(w.id.clone()),
                    Val::Text(e),
                ]);
            }
        }
        let mut tx = self.write.begin().await?;
        // Rows are bound by hand rather than through `insert_rows` because
        // `active` is a nullable boolean, which must be bound as one.
        const COLS_PER_ROW: usize = 12;
        for chunk in writes.chunks(1_000 / COLS_PER_ROW) {
            let values = (0..chunk.len())
                .map(|r| format!("({}, 1)", placeholders(r * COLS_PER_ROW + 1, COLS_PER_ROW)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO scim_resource (connection, kind, id, user_name, user_name_lc, \
                 display_name, display_name_lc, external_id, active, created_ms, modified_ms, \
                 data, version) VALUES {values}"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for w in chunk {
                q = q
                    .bind(connection.to_string())
                    .bind(kind.as_str())
                    .bind(w.id.clone())
                    .bind(w.user_name.clone())
                    .bind(w.user_name.as_deref().map(scim_fold))
                    .bind(w.display_name.clone())
                    .bind(w.display_name.as_deref().map(scim_fold))
                    .bind(w.external_id.clone())
                    .bind(w.active)
                    .bind(at_ms)
                    .bind(at_ms)
                    .bind(data_text(w)?);
            }
            match q.execute(&mut *tx).await {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Invalid(format!(
                        "import into {connection}: a userName or id is already used ({e})"
                    ))
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !emails.is_empty() {
            insert_rows(
                &mut tx,
                "INSERT INTO scim_email (connection, resource_id, value_lc)",
                "ON CONFLICT DO NOTHING",
                3,
                emails,
            )
            .await?;
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
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// The resources among `ids` that exist, in creation order.
    pub async fn scim_get_many(
        &self,
        connection: &str,
        kind: ScimKind,
        ids: &[String],
    ) -> Result<Vec<ScimResource>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {COLS} FROM scim_resource WHERE connection = $1 AND kind = $2 \
                 AND id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(connection.to_string())
                .bind(kind.as_str());
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.read).await? {
                out.push(decode(&row)?);
            }
        }
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
            for row in q.fetch_all(&self.read).await? {
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
        let (cond, v) = match index {
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
        };
        let sql = format!(
            "SELECT {COLS} FROM scim_resource WHERE connection = $1 AND kind = $2 AND {cond} \
             ORDER BY seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(v)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(decode).collect()
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
            .fetch_all(&self.read)
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
            .fetch_all(&self.read)
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
        .fetch_one(&self.read)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
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
            for row in q.fetch_all(&self.read).await? {
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
            for row in q.fetch_all(&self.read).await? {
                let mid: String = row.try_get("member_id")?;
                out.entry(mid).or_default().push(ScimGroupRef {
                    group_id: row.try_get("group_id")?,
                    display_name: row.try_get("display_name")?,
                });
            }
        }
        Ok(out)
    }

    /// Replaces a resource's content if it is still at `expected_version`;
    /// the version becomes `expected_version + 1`. `created_ms` is kept.
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
        let data = data_text(&write)?;
        let mut tx = self.write.begin().await?;
        if let Some(un) = &write.user_name
            && let Some(existing_id) =
                user_name_taken(&mut tx, connection, kind, un, Some(&write.id)).await?
        {
            return Err(ScimStoreError::Conflict {
                kind,
                user_name: un.clone(),
                existing_id,
            });
        }
        let sql = format!(
            "UPDATE scim_resource SET user_name = $4, user_name_lc = $5, display_name = $6, \
             display_name_lc = $7, external_id = $8, active = $9, version = version + 1, \
             modified_ms = $10, data = $11 \
             WHERE connection = $1 AND kind = $2 AND id = $3 AND version = $12 RETURNING {COLS}"
        );
        let updated = sqlx::query(AssertSqlSafe(sql))
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
            .fetch_optional(&mut *tx)
            .await;
        let row = match updated {
            Ok(Some(row)) => row,
            Ok(None) => {
                let current = sqlx::query(
                    "SELECT version FROM scim_resource WHERE connection = $1 AND kind = $2 \
                     AND id = $3",
                )
                .bind(connection.to_string())
                .bind(kind.as_str())
                .bind(write.id.clone())
                .fetch_optional(&mut *tx)
                .await?;
                return Err(match current {
                    None => ScimStoreError::NotFound { kind, id: write.id },
                    Some(r) => ScimStoreError::VersionMismatch {
                        kind,
                        id: write.id,
                        expected: expected_version,
                        current: r.try_get("version")?,
                    },
                });
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(ScimStoreError::Conflict {
                    kind,
                    user_name: write.user_name.unwrap_or_default(),
                    existing_id: String::new(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let resource = decode(&row)?;

        sqlx::query("DELETE FROM scim_email WHERE connection = $1 AND resource_id = $2")
            .bind(connection.to_string())
            .bind(write.id.clone())
            .execute(&mut *tx)
            .await?;
        insert_emails(&mut tx, connection, &write.id, &write.emails).await?;

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
            .fetch_all(&mut *tx)
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
                        .execute(&mut *tx)
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
                q.execute(&mut *tx).await?;
            }
            insert_members(&mut tx, connection, &write.id, &new_members, max_ord + 1).await?;
            added = new_members.into_iter().map(|m| m.value).collect();
            let touched: Vec<String> = added.iter().chain(removed.iter()).cloned().collect();
            bump_versions(&mut tx, connection, &touched, at_ms).await?;
        }
        tx.commit().await?;
        Ok(ScimWriteOutcome {
            resource,
            members_added: added,
            members_removed: removed,
        })
    }

    /// Deletes a resource (if still at `expected_version`, when given),
    /// its emails, its members, and its memberships in other groups, whose
    /// versions are bumped.
    pub async fn scim_delete(
        &self,
        connection: &str,
        kind: ScimKind,
        id: &str,
        expected_version: Option<i64>,
        at_ms: i64,
    ) -> Result<ScimDeleted, ScimStoreError> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "DELETE FROM scim_resource WHERE connection = $1 AND kind = $2 AND id = $3 \
             AND ($4 < 0 OR version = $4) RETURNING {COLS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(id.to_string())
            .bind(expected_version.unwrap_or(-1))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            let current = sqlx::query(
                "SELECT version FROM scim_resource WHERE connection = $1 AND kind = $2 AND id = $3",
            )
            .bind(connection.to_string())
            .bind(kind.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match current {
                None => ScimStoreError::NotFound {
                    kind,
                    id: id.to_string(),
                },
                Some(r) => ScimStoreError::VersionMismatch {
                    kind,
                    id: id.to_string(),
                    expected: expected_version.unwrap_or(-1),
                    current: r.try_get("version")?,
                },
            });
        };
        let resource = decode(&row)?;
        sqlx::query("DELETE FROM scim_email WHERE connection = $1 AND resource_id = $2")
            .bind(connection.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let former_members: Vec<String> = sqlx::query(
            "DELETE FROM scim_member WHERE connection = $1 AND group_id = $2 RETURNING member_id",
        )
        .bind(connection.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("member_id"))
        .collect::<Result<_, _>>()?;
        let former_groups: Vec<String> = sqlx::query(
            "DELETE FROM scim_member WHERE connection = $1 AND member_id = $2 RETURNING group_id",
        )
        .bind(connection.to_string())
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("group_id"))
        .collect::<Result<_, _>>()?;
        let touched: Vec<String> = former_members
            .iter()
            .chain(former_groups.iter())
            .cloned()
            .collect();
        bump_versions(&mut tx, connection, &touched, at_ms).await?;
        tx.commit().await?;
        Ok(ScimDeleted {
            resource,
            former_members,
            former_groups,
        })
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
        .fetch_optional(&self.read)
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
        .fetch_all(&self.read)
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
