//! People: the source-of-truth snapshot.
//!
//! The snapshot is replaced whole ([`Store::replace_people`]): whoever is
//! not in the new snapshot is gone. Each person is stored as its JSON plus
//! the lower-cased primary email, employee ID and status as indexed
//! columns; aliases go to `person_alias` so an address lookup finds a person
//! by any of their addresses.

use crate::reader::Read as _;
use std::collections::{BTreeSet, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use roster_core::{Email, EmployeeId, Person};

use crate::sql::{Val, insert_rows};

/// `YYYY-MM-DD`, which sorts as the dates do (the `end_date` column).
pub(crate) fn iso_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
use crate::{Store, StoreError};

impl Store {
    /// Replaces the people snapshot with `people`, all or nothing.
    ///
    /// Refuses (and writes nothing) if two people share an employee ID.
    pub async fn replace_people(&self, people: &[Person]) -> Result<(), StoreError> {
        let mut seen = HashSet::with_capacity(people.len());
        for p in people {
            if !seen.insert(p.employee_id.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "employee ID {} appears more than once in the people snapshot",
                    p.employee_id
                )));
            }
        }

        // Rows go in in employee-ID order, so on SQLite the rowids `person`
        // assigns follow employee IDs: people search pages through the
        // trigram index in rowid order and stops at a page (search.rs).
        // This is the only statement that writes `person` rows.
        let mut ordered: Vec<&Person> = people.iter().collect();
        ordered.sort_by(|a, b| a.employee_id.as_str().cmp(b.employee_id.as_str()));
        let mut person_rows = Vec::with_capacity(people.len());
        let mut alias_rows = Vec::new();
        for p in ordered {
            let data = serde_json::to_string(p)
                .map_err(|e| StoreError::Invalid(format!("person {}: {e}", p.employee_id)))?;
            let primary = p.email.normalized();
            person_rows.push(vec![
                Val::Text(p.employee_id.as_str().to_string()),
                Val::Text(primary.clone()),
                Val::Text(p.status.as_str().to_string()),
                Val::Text(data),
                Val::OptText(p.end_date.map(iso_date)),
            ]);
            // One alias row per distinct address other than the primary.
            let aliases: BTreeSet<String> = p
                .aliases
                .iter()
                .map(Email::normalized)
                .filter(|a| *a != primary)
                .collect();
            for a in aliases {
                alias_rows.push(vec![
                    Val::Text(a),
                    Val::Text(p.employee_id.as_str().to_string()),
                ]);
            }
        }

        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM person_alias")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM person").execute(&mut *tx).await?;
        insert_rows(
            &mut tx,
            "INSERT INTO person (employee_id, email_lc, status, data, end_date)",
            "",
            5,
            person_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO person_alias (email_lc, employee_id)",
            "",
            2,
            alias_rows,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Everyone in the current snapshot, ordered by employee ID.
    ///
    /// The database concatenates the JSON bodies into one array
    /// (`string_agg`), so the snapshot costs one row through the driver
    /// instead of one per person.
    pub async fn people(&self) -> Result<Vec<Person>, StoreError> {
        let row = sqlx::query("SELECT string_agg(data, ',') AS body FROM person")
            .read_one(self)
            .await?;
        let Some(body) = row.try_get::<Option<String>, _>("body")? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Person> = serde_json::from_str(&format!("[{body}]"))
            .map_err(|e| StoreError::corrupt("person", "snapshot", e))?;
        // Sorted here, not in SQL: PostgreSQL's collation would order text
        // differently from SQLite's byte order.
        out.sort_by(|a, b| a.employee_id.cmp(&b.employee_id));
        Ok(out)
    }

    /// How many people the snapshot holds.
    pub async fn people_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM person")
            .read_one(self)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }

    /// The person whose primary address is `email` (compared
    /// case-insensitively), or failing that, whose alias it is. If several
    /// match, the lowest employee ID (byte order, the same on both engines)
    /// wins; correlation, not the store, decides what an ambiguous address
    /// means.
    ///
    /// The rows are picked in Rust rather than with `ORDER BY employee_id
    /// LIMIT 1`: without fresh statistics PostgreSQL answers that by walking
    /// the primary key and filtering every row (24 ms at 100k people)
    /// instead of using the address index (0.1 ms).
    pub async fn person_by_email(&self, email: &Email) -> Result<Option<Person>, StoreError> {
        let key = email.normalized();
        let primary = sqlx::query("SELECT employee_id, data FROM person WHERE email_lc = $1")
            .bind(key.clone())
            .read_all(self)
            .await?;
        if let Some(row) = lowest_employee_id(&primary)? {
            return decode_person(row).map(Some);
        }
        let alias = sqlx::query(
            "SELECT p.employee_id, p.data FROM person_alias a \
             JOIN person p ON p.employee_id = a.employee_id \
             WHERE a.email_lc = $1",
        )
        .bind(key)
        .read_all(self)
        .await?;
        lowest_employee_id(&alias)?.map(decode_person).transpose()
    }

    /// The person with this employee ID (compared exactly).
    pub async fn person_by_employee_id(
        &self,
        id: &EmployeeId,
    ) -> Result<Option<Person>, StoreError> {
        let row = sqlx::query("SELECT employee_id, data FROM person WHERE employee_id = $1")
            .bind(id.as_str().to_string())
            .read_optional(self)
            .await?;
        row.as_ref().map(decode_person).transpose()
    }
}

impl Store {
    /// [`Store::person_by_employee_id`] with the person's override, in one
    /// statement (the person page reads both for every request).
    pub async fn person_with_override(
        &self,
        id: &EmployeeId,
    ) -> Result<Option<(Person, Option<PersonOverride>)>, StoreError> {
        let row = sqlx::query(
            "SELECT p.employee_id, p.data, o.status AS o_status, o.actor AS o_actor, \
             o.reason AS o_reason, o.at_ms AS o_at_ms \
             FROM person p LEFT JOIN person_override o ON o.employee_id = p.employee_id \
             WHERE p.employee_id = $1",
        )
        .bind(id.as_str().to_string())
        .read_optional(self)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let person = decode_person(&row)?;
        let status: Option<String> = row.try_get("o_status")?;
        let found = match status {
            Some(status) => Some(PersonOverride {
                employee_id: person.employee_id.clone(),
                status,
                actor: row.try_get("o_actor")?,
                reason: row.try_get("o_reason")?,
                at_ms: row.try_get("o_at_ms")?,
            }),
            None => None,
        };
        Ok(Some((person, found)))
    }
}

/// The row with the lowest `employee_id`, if any.
fn lowest_employee_id(rows: &[AnyRow]) -> Result<Option<&AnyRow>, StoreError> {
    let mut best: Option<(String, &AnyRow)> = None;
    for row in rows {
        let id: String = row.try_get("employee_id")?;
        if best.as_ref().is_none_or(|(b, _)| id < *b) {
            best = Some((id, row));
        }
    }
    Ok(best.map(|(_, r)| r))
}

pub(crate) fn decode_person(row: &AnyRow) -> Result<Person, StoreError> {
    let id: String = row.try_get("employee_id")?;
    let data: String = row.try_get("data")?;
    serde_json::from_str(&data).map_err(|e| StoreError::corrupt("person", id, e))
}

/// A termination an authenticated principal recorded by offboarding a
/// person (see `roster_engine`'s offboarding): planned as the person's
/// status whatever a slower source says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonOverride {
    pub employee_id: EmployeeId,
    /// The status planned for them (`terminated`).
    pub status: String,
    /// Who recorded it, as the audit log names principals.
    pub actor: String,
    pub reason: String,
    pub at_ms: i64,
}

impl Store {
    /// Records (or replaces) a person's override.
    pub async fn set_person_override(&self, o: &PersonOverride) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM person_override WHERE employee_id = $1")
            .bind(o.employee_id.as_str().to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO person_override (employee_id, status, actor, reason, at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(o.employee_id.as_str().to_string())
        .bind(o.status.clone())
        .bind(o.actor.clone())
        .bind(o.reason.clone())
        .bind(o.at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts a person's override; false if there was none.
    pub async fn clear_person_override(
        &self,
        employee_id: &EmployeeId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM person_override WHERE employee_id = $1")
            .bind(employee_id.as_str().to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every override, by employee ID.
    /// The override of one person, if any (one indexed read: the person
    /// page and one-person plans need only theirs).
    pub async fn person_override(
        &self,
        employee_id: &EmployeeId,
    ) -> Result<Option<PersonOverride>, StoreError> {
        let row = sqlx::query(
            "SELECT employee_id, status, actor, reason, at_ms FROM person_override \
             WHERE employee_id = $1",
        )
        .bind(employee_id.as_str().to_string())
        .read_optional(self)
        .await?;
        row.as_ref().map(decode_override).transpose()
    }

    pub async fn person_overrides(&self) -> Result<Vec<PersonOverride>, StoreError> {
        let rows = sqlx::query(
            "SELECT employee_id, status, actor, reason, at_ms FROM person_override \
             ORDER BY employee_id",
        )
        .read_all(self)
        .await?;
        rows.iter().map(decode_override).collect()
    }
}

fn decode_override(r: &AnyRow) -> Result<PersonOverride, StoreError> {
    Ok(PersonOverride {
        employee_id: EmployeeId::new(r.try_get::<String, _>("employee_id")?),
        status: r.try_get("status")?,
        actor: r.try_get("actor")?,
        reason: r.try_get("reason")?,
        at_ms: r.try_get("at_ms")?,
    })
}
