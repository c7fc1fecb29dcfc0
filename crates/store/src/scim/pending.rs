//! Group members whose resource has not arrived yet (migration 0025,
//! `scim_pending_member`).
//!
//! An identity provider may push a group before the users in it, naming a
//! member by the only id it has for them: its own, which it sends as the
//! user's `externalId` when the user comes. Roster accepts such a member
//! and links it when that user is written, whatever the order:
//!
//! * A group write resolves each new member **inside its transaction**:
//!   the id of a User or Group of the connection is a member; else the
//!   `externalId` of exactly one User of the connection is that user;
//!   anything else is *pending*, kept in `scim_pending_member` with its
//!   place in the list and its display text.
//! * A user write that brings an `externalId` (a create, or a replace that
//!   changes the indexed columns) moves the pending members naming it to
//!   `scim_member`, in the same transaction, and bumps those groups'
//!   versions; the gateway intent of the user, written after in the same
//!   transaction, then carries those groups' names.
//!
//! So `scim_member` never holds a reference to a resource that does not
//! exist (no dangling `Group.members` or `User.groups`), and pushing a
//! group then its users ends in the same membership as the reverse. A
//! value several users share as `externalId` stays pending: roster never
//! guesses which one was meant. Pending members are not rendered in
//! `Group.members` (they name nothing a client could fetch); the SCIM
//! server folds them into the list a PATCH or PUT is computed on, so a
//! PATCH that adds or removes members keeps or drops them like any other.
//!
//! Within one process every SCIM write goes through one group-commit
//! writer, so a group write and a user write are never concurrent; with
//! several processes on one PostgreSQL, a user committed while a group
//! naming it is in flight could leave that member pending until the next
//! write of either (a known limit, stated in ARCHITECTURE.md).

use crate::reader::Read as _;
use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{IN_CHUNK, ScimKind, ScimMember, bump_versions, placeholders};
use crate::sql::{Val, insert_rows};
use crate::{Store, StoreError, to_i64};

/// A group's member list split by what exists now.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    /// Existing resources, with their type; in list order, no duplicates.
    pub members: Vec<(usize, ScimMember)>,
    /// Values naming nothing yet, with their position in the list.
    pub pending: Vec<(usize, ScimMember)>,
}

/// Resolves `members` (deduplicated, in order) against the connection's
/// resources, in the caller's transaction. `known` lists ids already
/// members (not looked up again; their type is kept as given).
pub(super) async fn resolve(
    conn: &mut AnyConnection,
    connection: &str,
    members: &[ScimMember],
    known: &HashSet<String>,
) -> Result<Resolved, StoreError> {
    let lookup: Vec<String> = members
        .iter()
        .filter(|m| !known.contains(&m.value))
        .map(|m| m.value.clone())
        .collect();
    let mut kinds: HashMap<String, ScimKind> = HashMap::new();
    for chunk in lookup.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id, kind FROM scim_resource WHERE connection = $1 AND id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let k: String = row.try_get("kind")?;
            if let Some(k) = ScimKind::parse(&k) {
                kinds.insert(row.try_get("id")?, k);
            }
        }
    }
    let unknown: Vec<String> = lookup
        .iter()
        .filter(|v| !kinds.contains_key(*v))
        .cloned()
        .collect();
    let by_external = users_by_external_id(conn, connection, &unknown).await?;
    let mut out = Resolved::default();
    let mut seen = HashSet::new();
    for (i, m) in members.iter().enumerate() {
        let resolved = if known.contains(&m.value) {
            Some(m.clone())
        } else if let Some(k) = kinds.get(&m.value) {
            Some(ScimMember {
                member_type: Some(k.as_str().to_string()),
                ..m.clone()
            })
        } else {
            match by_external.get(&m.value).map(Vec::as_slice) {
                Some([only]) => Some(ScimMember {
                    value: only.clone(),
                    member_type: Some(ScimKind::User.as_str().to_string()),
                    display: m.display.clone(),
                }),
                _ => None,
            }
        };
        match resolved {
            Some(r) => {
                if seen.insert(r.value.clone()) {
                    out.members.push((i, r));
                }
            }
            None => {
                if seen.insert(m.value.clone()) {
                    out.pending.push((
                        i,
                        ScimMember {
                            member_type: None,
                            ..m.clone()
                        },
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The ids of the users of `connection` whose `externalId` is each of
/// `values` (exact, as `externalId` is case-exact).
async fn users_by_external_id(
    conn: &mut AnyConnection,
    connection: &str,
    values: &[String],
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in values.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id, external_id FROM scim_resource WHERE connection = $1 AND kind = 'User' \
             AND external_id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
        for v in chunk {
            q = q.bind(v.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let ext: String = row.try_get("external_id")?;
            out.entry(ext).or_default().push(row.try_get("id")?);
        }
    }
    for ids in out.values_mut() {
        ids.sort();
        ids.dedup();
    }
    Ok(out)
}

/// Replaces the pending members of `group_id` by `pending`, each at
/// `first_ord` plus its position.
pub(super) async fn replace(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
    pending: &[(usize, ScimMember)],
    first_ord: i64,
) -> Result<(), StoreError> {
    delete_of_group(conn, connection, group_id).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let rows = pending
        .iter()
        .map(|(i, m)| {
            vec![
                Val::Text(connection.to_string()),
                Val::Text(group_id.to_string()),
                Val::Text(m.value.clone()),
                Val::OptText(m.display.clone()),
                Val::Int(first_ord + to_i64(*i)),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO scim_pending_member (connection, group_id, value, display, ord)",
        "ON CONFLICT DO NOTHING",
        5,
        rows,
    )
    .await
}

/// Forgets the pending members of a group (replaced or deleted).
pub(super) async fn delete_of_group(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM scim_pending_member WHERE connection = $1 AND group_id = $2")
        .bind(connection.to_string())
        .bind(group_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The largest `ord` among a group's pending members, or -1.
pub(super) async fn max_ord(
    conn: &mut AnyConnection,
    connection: &str,
    group_id: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT MAX(ord) AS m FROM scim_pending_member WHERE connection = $1 AND group_id = $2",
    )
    .bind(connection.to_string())
    .bind(group_id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("m")?.unwrap_or(-1))
}

/// Links the pending members that name the users just written: `users`
/// holds (user id, externalId). Returns the groups that gained a member.
pub(super) async fn link_arrivals(
    conn: &mut AnyConnection,
    connection: &str,
    users: &[(String, String)],
    at_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let values: Vec<String> = users.iter().map(|(_, ext)| ext.clone()).collect();
    // (group, value, display, ord) naming one of the arrivals.
    let mut found: Vec<(String, String, Option<String>, i64)> = Vec::new();
    for chunk in values.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT group_id, value, display, ord FROM scim_pending_member \
             WHERE connection = $1 AND value IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(connection.to_string());
        for v in chunk {
            q = q.bind(v.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            found.push((
                row.try_get("group_id")?,
                row.try_get("value")?,
                row.try_get("display")?,
                row.try_get("ord")?,
            ));
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    // Only a value exactly one user carries names someone.
    let wanted: Vec<String> = {
        let mut v: Vec<String> = found.iter().map(|f| f.1.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let owners = users_by_external_id(conn, connection, &wanted).await?;
    let mut rows = Vec::new();
    let mut linked: Vec<(String, String)> = Vec::new();
    let mut groups = Vec::new();
    for (group_id, value, display, ord) in found {
        let Some([user_id]) = owners.get(&value).map(Vec::as_slice) else {
            continue;
        };
        rows.push(vec![
            Val::Text(connection.to_string()),
            Val::Text(group_id.clone()),
            Val::Text(user_id.clone()),
            Val::OptText(Some(ScimKind::User.as_str().to_string())),
            Val::OptText(display),
            Val::Int(ord),
        ]);
        linked.push((group_id.clone(), value));
        groups.push(group_id);
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    insert_rows(
        conn,
        "INSERT INTO scim_member (connection, group_id, member_id, member_type, display, ord)",
        "ON CONFLICT DO NOTHING",
        6,
        rows,
    )
    .await?;
    for (group_id, value) in &linked {
        sqlx::query(
            "DELETE FROM scim_pending_member WHERE connection = $1 AND group_id = $2 \
             AND value = $3",
        )
        .bind(connection.to_string())
        .bind(group_id.clone())
        .bind(value.clone())
        .execute(&mut *conn)
        .await?;
    }
    groups.sort();
    groups.dedup();
    bump_versions(conn, connection, &groups, at_ms).await?;
    Ok(groups)
}

impl Store {
    /// The pending members of a group (values naming nothing yet), in
    /// list order, without a type.
    pub async fn scim_pending_members(
        &self,
        connection: &str,
        group_id: &str,
    ) -> Result<Vec<ScimMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT value, display FROM scim_pending_member \
             WHERE connection = $1 AND group_id = $2 ORDER BY ord",
        )
        .bind(connection.to_string())
        .bind(group_id.to_string())
        .read_all(self)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScimMember {
                    value: r.try_get("value")?,
                    member_type: None,
                    display: r.try_get("display")?,
                })
            })
            .collect()
    }

    /// How many pending members the connection's groups hold.
    pub async fn scim_pending_count(&self, connection: &str) -> Result<u64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM scim_pending_member WHERE connection = $1")
                .bind(connection.to_string())
                .read_one(self)
                .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
