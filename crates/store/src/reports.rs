//! Read-only queries for reports and targeted reconciliation.
//!
//! Nothing here writes. These are the lookups the engine's reports
//! (orphans, coverage, leavers) and its one-person reconciliation need that
//! the snapshot-wide readers ([`Store::people`], [`Store::all_observed`])
//! would answer only by loading everything:
//!
//! * [`Store::accounts_for_person`]: the accounts, in any connection's last
//!   read, that carry a person's employee ID or one of their addresses;
//! * [`Store::people_matching`]: the people an account could correlate to
//!   (same employee ID, primary address or alias), so a one-person
//!   reconciliation sees the same conflicts the full one would;
//! * [`Store::all_account_sightings`]: first/last-seen times of every
//!   account in one query;
//! * [`Store::action_states`]: where every action of one operation stands,
//!   across all saved plans (the leavers report's "when was it closed").
//!
//! Address arguments are the *normalized* (lower-cased) form, which is what
//! the lookup columns hold. Results are sorted in Rust, not SQL, so both
//! engines give the same order.

use crate::reader::Read as _;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use roster_core::{Account, AccountKey, ConnectionId, EmployeeId, Operation, Person};

use crate::plans::{ActionState, PlanId};
use crate::sql::get_bool;
use crate::{AccountSighting, Store, StoreError};

/// Values per `IN (...)` list. Well below both engines' parameter limits;
/// longer lists are split over several queries.
const IN_CHUNK: usize = 500;

/// One action's state, read without loading its plan's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionStateRow {
    pub plan_id: PlanId,
    /// Position in the plan's actions.
    pub index: usize,
    pub connection: ConnectionId,
    pub operation: Operation,
    /// [`roster_core::Action::key`]: `connection:operation:account`.
    pub action_key: String,
    pub state: ActionState,
    /// When the state last changed (unix ms).
    pub updated_ms: i64,
}

impl ActionStateRow {
    /// The account the action targets, read back from its key; `None` for
    /// a create (whose key ends in an address, not an account key).
    pub fn account_key(&self) -> Option<AccountKey> {
        if self.operation == Operation::Create {
            return None;
        }
        let prefix = format!("{}:{}:", self.connection, self.operation);
        self.action_key
            .strip_prefix(&prefix)
            .map(|k| AccountKey::new(k.to_string()))
    }
}

impl Store {
    /// Accounts in any connection's last read whose employee ID is
    /// `employee_id` or whose normalized address is one of `emails_lc`,
    /// ordered by connection and key. Accounts an incomplete read did not
    /// return are left out, as in [`Store::all_observed`].
    pub async fn accounts_for_person(
        &self,
        employee_id: &EmployeeId,
        emails_lc: &[String],
    ) -> Result<Vec<Account>, StoreError> {
        let emails: BTreeSet<&String> = emails_lc.iter().collect();
        let emails: Vec<&String> = emails.into_iter().collect();
        let mut out: Vec<Account> = Vec::new();
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        // The employee ID goes with the first chunk; an empty address list
        // still runs one query for it.
        let mut chunks: Vec<&[&String]> = emails.chunks(IN_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for (n, chunk) in chunks.into_iter().enumerate() {
            let mut sql = String::from(
                "SELECT a.connection, a.account_key, a.data FROM account a \
                 JOIN observation o ON o.connection = a.connection AND o.generation = a.seen_gen \
                 WHERE ",
            );
            let mut next = 1;
            let mut clauses = Vec::new();
            if n == 0 {
                clauses.push("a.employee_id = $1".to_string());
                next = 2;
            }
            if !chunk.is_empty() {
                clauses.push(format!(
                    "a.email_lc IN ({})",
                    placeholders(next, chunk.len())
                ));
            }
            sql.push_str(&clauses.join(" OR "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            if n == 0 {
                q = q.bind(employee_id.as_str().to_string());
            }
            for e in chunk {
                q = q.bind((*e).clone());
            }
            for row in q.read_all(self).await? {
                let conn: String = row.try_get("connection")?;
                let key: String = row.try_get("account_key")?;
                if seen.insert((conn, key)) {
                    out.push(decode_account(&row)?);
                }
            }
        }
        out.sort_by(|a, b| (&a.connection, &a.key).cmp(&(&b.connection, &b.key)));
        Ok(out)
    }

    /// People whose employee ID is in `employee_ids`, or whose primary
    /// address or an alias is in `emails_lc` (normalized), ordered by
    /// employee ID, each once.
    pub async fn people_matching(
        &self,
        employee_ids: &[EmployeeId],
        emails_lc: &[String],
    ) -> Result<Vec<Person>, StoreError> {
        let ids: BTreeSet<String> = employee_ids
            .iter()
            .map(|e| e.as_str().to_string())
            .collect();
        let emails: BTreeSet<String> = emails_lc.iter().cloned().collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let emails: Vec<String> = emails.into_iter().collect();
        let mut found: std::collections::BTreeMap<String, Person> = Default::default();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT employee_id, data FROM person WHERE employee_id IN ({})",
                placeholders(1, chunk.len())
            );
            self.collect_people(sql, chunk, &mut found).await?;
        }
        for chunk in emails.chunks(IN_CHUNK) {
            let list = placeholders(1, chunk.len());
            // UNION ALL, not OR: PostgreSQL answers `a IN (..) OR b IN
            // (subquery)` with a full scan of `person`; each branch here
            // uses an index. Duplicates are dropped in `collect_people`.
            let sql = format!(
                "SELECT employee_id, data FROM person WHERE email_lc IN ({list}) \
                 UNION ALL SELECT p.employee_id, p.data FROM person_alias a \
                 JOIN person p ON p.employee_id = a.employee_id WHERE a.email_lc IN ({list})"
            );
            self.collect_people(sql, chunk, &mut found).await?;
        }
        Ok(found.into_values().collect())
    }

    async fn collect_people(
        &self,
        sql: String,
        values: &[String],
        found: &mut std::collections::BTreeMap<String, Person>,
    ) -> Result<(), StoreError> {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in values {
            q = q.bind(v.clone());
        }
        for row in q.read_all(self).await? {
            let id: String = row.try_get("employee_id")?;
            if found.contains_key(&id) {
                continue;
            }
            let data: String = row.try_get("data")?;
            let person: Person =
                serde_json::from_str(&data).map_err(|e| StoreError::corrupt("person", &id, e))?;
            found.insert(id, person);
        }
        Ok(())
    }

    /// First/last-seen times of every account the store knows, in every
    /// connection (including accounts an incomplete read missed), ordered
    /// by connection and key.
    pub async fn all_account_sightings(&self) -> Result<Vec<AccountSighting>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.connection, a.account_key, a.active, a.seen_gen, a.first_seen_ms, \
             a.last_seen_ms, o.generation FROM account a \
             JOIN observation o ON o.connection = a.connection",
        )
        .read_all(self)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AccountSighting {
                    connection: ConnectionId::new(r.try_get::<String, _>("connection")?),
                    key: AccountKey::new(r.try_get::<String, _>("account_key")?),
                    active: get_bool(r, "active")?,
                    present: r.try_get::<i64, _>("seen_gen")?
                        == r.try_get::<i64, _>("generation")?,
                    first_seen_ms: r.try_get("first_seen_ms")?,
                    last_seen_ms: r.try_get("last_seen_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| (&a.connection, &a.key).cmp(&(&b.connection, &b.key)));
        Ok(out)
    }

    /// Every saved action of `operation`, in every plan, with its state,
    /// ordered by plan and index.
    pub async fn action_states(
        &self,
        operation: Operation,
    ) -> Result<Vec<ActionStateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT plan_id, idx, connection, action_key, state, updated_ms FROM plan_action \
             WHERE operation = $1",
        )
        .bind(operation.as_str().to_string())
        .read_all(self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let plan_id = PlanId::new(r.try_get::<String, _>("plan_id")?);
            let idx: i64 = r.try_get("idx")?;
            let state: String = r.try_get("state")?;
            let state = ActionState::parse(&state).ok_or_else(|| {
                StoreError::corrupt(
                    "plan_action",
                    plan_id.to_string(),
                    format!("unknown state {state:?}"),
                )
            })?;
            out.push(ActionStateRow {
                index: usize::try_from(idx).map_err(|_| {
                    StoreError::corrupt("plan_action", plan_id.to_string(), "negative index")
                })?,
                plan_id,
                connection: ConnectionId::new(r.try_get::<String, _>("connection")?),
                operation,
                action_key: r.try_get("action_key")?,
                state,
                updated_ms: r.try_get("updated_ms")?,
            });
        }
        out.sort_by(|a, b| (&a.plan_id, a.index).cmp(&(&b.plan_id, b.index)));
        Ok(out)
    }
}

/// `$from, $from+1, ...`: `count` numbered placeholders.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode_account(row: &AnyRow) -> Result<Account, StoreError> {
    let key: String = row.try_get("account_key")?;
    let data: String = row.try_get("data")?;
    serde_json::from_str(&data).map_err(|e| StoreError::corrupt("account", key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_continue_numbering() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn account_key_is_read_back_from_the_action_key() {
        let row = ActionStateRow {
            plan_id: PlanId::new("p"),
            index: 0,
            connection: ConnectionId::new("app:eu"),
            operation: Operation::Deactivate,
            action_key: "app:eu:deactivate:u:42".into(),
            state: ActionState::Done,
            updated_ms: 1,
        };
        assert_eq!(row.account_key(), Some(AccountKey::new("u:42")));
    }
}
