//! The SCIM gateway's intent, stored typed (table `gateway_intent`,
//! migration 0012).
//!
//! What an IdP pushes to roster's SCIM server is intent: this user should
//! (or no longer should) have the connection's app, with these identifiers
//! and groups. The engine plans from that intent; it never reads the SCIM
//! JSON (`scim_resource.data`) to learn it. The SCIM server, which parses
//! SCIM, computes a [`GatewayUser`] for every user it writes and hands it
//! over in [`ScimResourceWrite::intent`](crate::ScimResourceWrite); the
//! store writes the row in the same transaction as the resource.
//!
//! # Invariants
//!
//! * A user's intent row and its SCIM resource change in one transaction
//!   ([`Store::scim_write_batch`]): a write that fails leaves neither.
//! * A row, when present for an existing resource, describes that
//!   resource as it is now: a user write that carries no intent deletes
//!   the row rather than leave it stale, and the engine backfills it.
//! * `group_names` follows membership: every group write (create, member
//!   changes, rename, delete) refreshes the names of the users it touched,
//!   in its own transaction. The names are read from the membership table
//!   and the groups' `displayName` column, never from JSON.
//! * A user delete keeps the row with status `deleted` (the record that
//!   the IdP removed them) and no groups.
//!
//! The store holds no rule about what intent *means*; it stores and
//! returns it. Which people it selects is the engine's business
//! (`roster_engine::gateway`).

use crate::reader::Read as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::scim::{ScimIndex, ScimKind, ScimResource, ScimWriteJob, ScimWriteOp, ScimWriteResult};
use crate::sql::{Val, bind_val, values_placeholders};
use crate::{Store, StoreError, scim_fold};

/// IDs per `IN (...)` list.
const IN_CHUNK: usize = 500;
/// Rows per multi-row statement (12 columns: about a thousand parameters).
const ROWS_PER_STMT: usize = 80;

/// What the IdP says about a user's access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayStatus {
    /// `active` is true or absent.
    Active,
    /// `active` is false: a deprovision (Okta never deletes).
    Inactive,
    /// The IdP deleted the user (Entra, after its soft-delete period).
    Deleted,
}

impl GatewayStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayStatus::Active => "active",
            GatewayStatus::Inactive => "inactive",
            GatewayStatus::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<GatewayStatus> {
        match s {
            "active" => Some(GatewayStatus::Active),
            "inactive" => Some(GatewayStatus::Inactive),
            "deleted" => Some(GatewayStatus::Deleted),
            _ => None,
        }
    }
}

/// The typed intent of one pushed user, as the SCIM server derives it from
/// the body it stores. Group names are not part of it: the store derives
/// them from membership, which group writes change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayUser {
    /// `Active` or `Inactive`; the store writes `Deleted` itself.
    pub status: Option<GatewayStatus>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    /// The enterprise extension's `employeeNumber`.
    pub employee_number: Option<String>,
    /// `emails[*].value`, as pushed, in order.
    pub emails: Vec<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
}

impl GatewayUser {
    /// The status, `Active` when unset.
    pub fn status(&self) -> GatewayStatus {
        self.status.unwrap_or(GatewayStatus::Active)
    }
}

/// One stored intent row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayIntent {
    pub connection: String,
    /// The SCIM id of the user.
    pub user_id: String,
    /// The SCIM resource's creation order.
    pub seq: i64,
    pub status: GatewayStatus,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub employee_number: Option<String>,
    pub emails: Vec<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The displayName of each group the user directly belongs to, in
    /// group creation order (groups without one are left out).
    pub groups: Vec<String>,
    pub modified_ms: i64,
}

const COLS: &str = "connection, user_id, seq, status, user_name, external_id, employee_number, \
                    emails, given_name, family_name, group_names, modified_ms";
const NCOLS: usize = 12;

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn decode(row: &AnyRow) -> Result<GatewayIntent, StoreError> {
    let user_id: String = row.try_get("user_id")?;
    let status_s: String = row.try_get("status")?;
    let status = GatewayStatus::parse(&status_s).ok_or_else(|| {
        StoreError::corrupt("gateway_intent", &user_id, format!("status {status_s:?}"))
    })?;
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let s: String = row.try_get(col)?;
        serde_json::from_str(&s).map_err(|e| StoreError::corrupt("gateway_intent", &user_id, e))
    };
    Ok(GatewayIntent {
        connection: row.try_get("connection")?,
        seq: row.try_get("seq")?,
        status,
        user_name: row.try_get("user_name")?,
        external_id: row.try_get("external_id")?,
        employee_number: row.try_get("employee_number")?,
        emails: list("emails")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        groups: list("group_names")?,
        modified_ms: row.try_get("modified_ms")?,
        user_id,
    })
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The group names of each of `user_ids` (direct memberships), read on
/// `conn` so a transaction sees its own membership changes.
async fn group_names_of(
    conn: &mut AnyConnection,
    connection: &str,
    user_ids: &[String],
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in user_ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT m.member_id, g.display_name FROM scim_member m \
             JOIN scim_resource g ON g.connection = m.connection AND g.kind = 'Group' \
             AND g.id = m.group_id \
             WHERE m.connection = $1 AND m.member_id IN ({}) ORDER BY g.seq",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let member: String = row.try_get("member_id")?;
            let name: Option<String> = row.try_get("display_name")?;
            let names = out.entry(member).or_default();
            if let Some(n) = name {
                names.push(n);
            }
        }
    }
    Ok(out)
}

/// The current members of `group_id`.
async fn members_of(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query("SELECT member_id FROM scim_member WHERE connection = $1 AND group_id = $2")
            .bind(connection.to_string())
            .bind(group_id.to_string())
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| r.try_get("member_id").map_err(StoreError::from))
        .collect()
}

/// What a batch leaves a user's intent row as.
enum Final {
    /// Written with this intent (the resource's `seq`).
    Upsert(GatewayUser, i64),
    /// Written without intent: the row goes (the engine backfills).
    Drop,
    /// The user was deleted (its last known identifiers).
    Deleted(GatewayUser, i64),
}

/// Writes the intent rows a batch of SCIM writes implies, in the batch's
/// transaction. `order` is the order the jobs ran in; `results` holds one
/// result per job (refused jobs are skipped).
pub(crate) async fn sync_batch(
    conn: &mut AnyConnection,
    jobs: &[ScimWriteJob],
    results: &[Result<ScimWriteResult, crate::ScimStoreError>],
    order: &[usize],
    at_ms: i64,
) -> Result<(), StoreError> {
    // Per connection: the final state of each user written, and the users
    // whose group names a group write may have changed.
    let mut finals: BTreeMap<String, BTreeMap<String, Final>> = BTreeMap::new();
    let mut touched: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for &i in order {
        let (Some(job), Some(Ok(result))) = (jobs.get(i), results.get(i)) else {
            continue;
        };
        let c = job.connection.clone();
        match (&job.op, result) {
            (ScimWriteOp::Create { kind, write }, ScimWriteResult::Created(r))
            | (
                ScimWriteOp::Replace { kind, write, .. },
                ScimWriteResult::Replaced(crate::ScimWriteOutcome { resource: r, .. }),
            ) if *kind == ScimKind::User => {
                let f = match &write.intent {
                    Some(u) => Final::Upsert(u.clone(), r.seq),
                    None => Final::Drop,
                };
                finals.entry(c).or_default().insert(r.id.clone(), f);
            }
            (ScimWriteOp::Delete { kind, .. }, ScimWriteResult::Deleted(d))
                if *kind == ScimKind::User =>
            {
                let r = &d.resource;
                let last = GatewayUser {
                    status: Some(GatewayStatus::Deleted),
                    user_name: r.user_name.clone(),
                    external_id: r.external_id.clone(),
                    ..GatewayUser::default()
                };
                finals
                    .entry(c)
                    .or_default()
                    .insert(r.id.clone(), Final::Deleted(last, r.seq));
            }
            // The members as stored: a value naming a user by its
            // externalId was resolved to the user's id, and a pending one
            // names nobody yet.
            (ScimWriteOp::Create { write, .. }, ScimWriteResult::Created(r))
                if write.members.as_ref().is_some_and(|m| !m.is_empty()) =>
            {
                let ms = members_of(conn, &c, &r.id).await?;
                touched.entry(c).or_default().extend(ms);
            }
            (
                ScimWriteOp::Replace {
                    columns_changed, ..
                },
                ScimWriteResult::Replaced(o),
            ) => {
                let t = touched.entry(c.clone()).or_default();
                t.extend(o.members_added.iter().cloned());
                t.extend(o.members_removed.iter().cloned());
                if *columns_changed {
                    // Possibly renamed: every member's names change.
                    t.extend(members_of(conn, &c, &o.resource.id).await?);
                }
            }
            (ScimWriteOp::Delete { .. }, ScimWriteResult::Deleted(d)) => {
                touched
                    .entry(c)
                    .or_default()
                    .extend(d.former_members.iter().cloned());
            }
            _ => {}
        }
    }

    let connections: BTreeSet<String> = finals.keys().chain(touched.keys()).cloned().collect();
    for c in connections {
        let finals = finals.remove(&c).unwrap_or_default();
        let touched = touched.remove(&c).unwrap_or_default();
        let need: Vec<String> = finals
            .iter()
            .filter(|(_, f)| matches!(f, Final::Upsert(..)))
            .map(|(id, _)| id.clone())
            .chain(
                touched
                    .iter()
                    .filter(|id| !finals.contains_key(*id))
                    .cloned(),
            )
            .collect();
        let mut names = group_names_of(conn, &c, &need).await?;
        let mut upserts: Vec<(String, GatewayUser, i64, Vec<String>)> = Vec::new();
        let mut deleted: Vec<(String, GatewayUser, i64)> = Vec::new();
        let mut dropped: Vec<String> = Vec::new();
        for (id, f) in finals {
            match f {
                Final::Upsert(u, seq) => {
                    let g = names.remove(&id).unwrap_or_default();
                    upserts.push((id, u, seq, g));
                }
                Final::Drop => dropped.push(id),
                Final::Deleted(u, seq) => deleted.push((id, u, seq)),
            }
        }
        let refreshed: Vec<(String, Vec<String>)> = touched
            .into_iter()
            .filter(|id| {
                !upserts.iter().any(|(u, ..)| u == id)
                    && !deleted.iter().any(|(u, ..)| u == id)
                    && !dropped.contains(id)
            })
            .map(|id| {
                let g = names.remove(&id).unwrap_or_default();
                (id, g)
            })
            .collect();
        upsert(conn, &c, &upserts, at_ms).await?;
        mark_deleted(conn, &c, &deleted, at_ms).await?;
        drop_rows(conn, &c, &dropped).await?;
        set_groups(conn, &c, &refreshed, at_ms).await?;
    }
    Ok(())
}

fn row(
    connection: &str,
    id: &str,
    u: &GatewayUser,
    seq: i64,
    groups: &[String],
    at_ms: i64,
) -> Vec<Val> {
    vec![
        Val::Text(connection.to_string()),
        Val::Text(id.to_string()),
        Val::Int(seq),
        Val::Text(u.status().as_str().to_string()),
        Val::OptText(u.user_name.clone()),
        Val::OptText(u.external_id.clone()),
        Val::OptText(u.employee_number.clone()),
        Val::Text(json_list(&u.emails)),
        Val::OptText(u.given_name.clone()),
        Val::OptText(u.family_name.clone()),
        Val::Text(json_list(groups)),
        Val::Int(at_ms),
    ]
}

/// Inserts or replaces whole rows (`seq` is kept for an existing row).
async fn upsert(
    conn: &mut AnyConnection,
    connection: &str,
    rows: &[(String, GatewayUser, i64, Vec<String>)],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STMT) {
        let sql = format!(
            "INSERT INTO gateway_intent ({COLS}) VALUES {} \
             ON CONFLICT (connection, user_id) DO UPDATE SET seq = excluded.seq, \
             status = excluded.status, user_name = excluded.user_name, \
             external_id = excluded.external_id, employee_number = excluded.employee_number, \
             emails = excluded.emails, given_name = excluded.given_name, \
             family_name = excluded.family_name, group_names = excluded.group_names, \
             modified_ms = excluded.modified_ms",
            values_placeholders(NCOLS, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, u, seq, groups) in chunk {
            for v in row(connection, id, u, *seq, groups, at_ms) {
                q = bind_val(q, v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Marks users deleted, keeping the identifiers their row last had (or,
/// for a user that had no row, the ones the resource's columns held).
async fn mark_deleted(
    conn: &mut AnyConnection,
    connection: &str,
    rows: &[(String, GatewayUser, i64)],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STMT) {
        let sql = format!(
            "INSERT INTO gateway_intent ({COLS}) VALUES {} \
             ON CONFLICT (connection, user_id) DO UPDATE SET status = excluded.status, \
             group_names = excluded.group_names, modified_ms = excluded.modified_ms",
            values_placeholders(NCOLS, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, u, seq) in chunk {
            for v in row(connection, id, u, *seq, &[], at_ms) {
                q = bind_val(q, v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn drop_rows(
    conn: &mut AnyConnection,
    connection: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "DELETE FROM gateway_intent WHERE connection = $1 AND user_id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Sets the group names of existing rows (users without a row are left to
/// the backfill, which reads membership itself).
async fn set_groups(
    conn: &mut AnyConnection,
    connection: &str,
    rows: &[(String, Vec<String>)],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STMT * 3) {
        let values = (0..chunk.len())
            .map(|r| format!("({})", placeholders(r * 2 + 3, 2)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH v (v_user_id, v_groups) AS (VALUES {values}) \
             UPDATE gateway_intent SET group_names = v_groups, modified_ms = $2 FROM v \
             WHERE connection = $1 AND user_id = v_user_id"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(at_ms);
        for (id, groups) in chunk {
            q = q.bind(id.clone()).bind(json_list(groups));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts intent rows for users that have none, each only while its
/// resource is at the version given (see [`Store::gateway_intent_backfill`]).
pub(crate) async fn insert_missing(
    conn: &mut AnyConnection,
    connection: &str,
    rows: &[(String, i64, GatewayUser)],
    at_ms: i64,
) -> Result<usize, StoreError> {
    let ids: Vec<String> = rows.iter().map(|(id, ..)| id.clone()).collect();
    let mut names = group_names_of(conn, connection, &ids).await?;
    let sql = format!(
        "INSERT INTO gateway_intent ({COLS}) \
         SELECT $1, $2, r.seq, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM scim_resource r \
         WHERE r.connection = $1 AND r.kind = 'User' AND r.id = $2 AND r.version = $3 \
         ON CONFLICT (connection, user_id) DO NOTHING"
    );
    let mut written = 0usize;
    for (id, version, u) in rows {
        let groups = names.remove(id).unwrap_or_default();
        let res = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(connection.to_string())
            .bind(id.clone())
            .bind(*version)
            .bind(u.status().as_str())
            .bind(u.user_name.clone())
            .bind(u.external_id.clone())
            .bind(u.employee_number.clone())
            .bind(json_list(&u.emails))
            .bind(u.given_name.clone())
            .bind(u.family_name.clone())
            .bind(json_list(&groups))
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
        written += usize::try_from(res.rows_affected()).unwrap_or(0);
    }
    Ok(written)
}

impl Store {
    /// Up to `limit` intent rows of `connection` (any status) after
    /// `after_seq`, in creation order: the cursor for folding a gateway.
    pub async fn gateway_intent_scan(
        &self,
        connection: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<GatewayIntent>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM gateway_intent WHERE connection = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(connection.to_string())
            .bind(after_seq)
            .bind(crate::to_i64(limit))
            .read_all(self)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The intent rows of `user_ids` that exist, in creation order.
    pub async fn gateway_intents(
        &self,
        connection: &str,
        user_ids: &[String],
    ) -> Result<Vec<GatewayIntent>, StoreError> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {COLS} FROM gateway_intent WHERE connection = $1 AND user_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.read_all(self).await? {
                out.push(decode(&row)?);
            }
        }
        out.sort_by_key(|i| i.seq);
        out.dedup_by(|a, b| a.user_id == b.user_id);
        Ok(out)
    }

    /// The ids of the users of `connection` whose userName (`UserName`) or
    /// one of whose addresses (`Email`) equals `value` case-insensitively,
    /// in creation order. Other indexes are not supported here.
    pub async fn scim_user_ids(
        &self,
        connection: &str,
        index: ScimIndex,
        value: &str,
    ) -> Result<Vec<String>, StoreError> {
        let sql = match index {
            ScimIndex::UserName => {
                "SELECT id FROM scim_resource WHERE connection = $1 AND kind = 'User' \
                 AND user_name_lc = $2 ORDER BY seq"
            }
            ScimIndex::Email => {
                "SELECT r.id FROM scim_resource r JOIN scim_email e ON e.connection = r.connection \
                 AND e.resource_id = r.id WHERE r.connection = $1 AND r.kind = 'User' \
                 AND e.value_lc = $2 ORDER BY r.seq"
            }
            other => {
                return Err(StoreError::Invalid(format!(
                    "scim_user_ids: no lookup by {other:?}"
                )));
            }
        };
        let rows = sqlx::query(sql)
            .bind(connection.to_string())
            .bind(scim_fold(value))
            .read_all(self)
            .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }

    /// Users of `connection` (among `among`, when given) that have no
    /// intent row: those pushed before schema 12, or written without one.
    /// At most `limit`, in creation order, with their stored JSON, for the
    /// engine's backfill.
    pub async fn scim_users_lacking_intent(
        &self,
        connection: &str,
        among: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<ScimResource>, StoreError> {
        let base = "SELECT r.id FROM scim_resource r WHERE r.connection = $1 AND r.kind = 'User' \
                    AND NOT EXISTS (SELECT 1 FROM gateway_intent i \
                    WHERE i.connection = r.connection AND i.user_id = r.id)";
        let mut ids: Vec<String> = Vec::new();
        match among {
            None => {
                let sql = format!("{base} ORDER BY r.seq LIMIT $2");
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(connection.to_string())
                    .bind(crate::to_i64(limit))
                    .read_all(self)
                    .await?;
                for r in rows {
                    ids.push(r.try_get("id")?);
                }
            }
            Some(among) => {
                for chunk in among.chunks(IN_CHUNK) {
                    let sql = format!(
                        "{base} AND r.id IN ({}) ORDER BY r.seq",
                        placeholders(2, chunk.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
                    for id in chunk {
                        q = q.bind(id.clone());
                    }
                    for r in q.read_all(self).await? {
                        ids.push(r.try_get("id")?);
                    }
                }
                ids.truncate(limit);
            }
        }
        self.scim_get_many(connection, ScimKind::User, &ids).await
    }

    /// Writes the intent of users that have none (the engine's backfill):
    /// `(user id, the resource version the intent was computed from,
    /// intent)`. A row is written only while the resource is still at
    /// that version and still has no row, so a concurrent SCIM write
    /// (which writes its own) always wins. Group names are read from
    /// membership in the same transaction. Returns the rows written.
    pub async fn gateway_intent_backfill(
        &self,
        connection: &str,
        rows: &[(String, i64, GatewayUser)],
        at_ms: i64,
    ) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write.begin().await?;
        let written = insert_missing(&mut tx, connection, rows, at_ms).await?;
        tx.commit().await?;
        Ok(written)
    }
}
