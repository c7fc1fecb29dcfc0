//! People search by substring through SQLite's trigram index
//! (`person_search`, FTS5, migration 0016), kept in step with `person` by
//! triggers whatever writes it.
//!
//! [`Store::people_by_trigram`] answers what [`Store::people_containing`]
//! would for a needle of at least three characters, reading only the rows
//! whose name, employee ID or addresses contain it (case folded by FTS5);
//! on PostgreSQL, or for a shorter needle, it answers `None` and the
//! caller scans as before. Either way the result is a superset the caller
//! filters exactly.

use roster_core::Person;

use crate::people::decode_person;
use crate::target::Backend;
use crate::{Store, StoreError, to_i64};

impl Store {
    /// People whose name, employee ID or addresses contain `needle`, with
    /// an employee ID after `after`, ordered by employee ID, at most
    /// `limit`; `None` when the index cannot answer (module docs).
    pub async fn people_by_trigram(
        &self,
        needle: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Person>>, StoreError> {
        if self.backend() != Backend::Sqlite || needle.chars().count() < 3 {
            return Ok(None);
        }
        // One FTS5 phrase: the trigram tokenizer matches it as a substring.
        let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
        // `replace_people` writes people in employee-ID order, so their
        // rowids follow employee IDs, and FTS5 hands matches out in rowid
        // order: reading from the cursor's rowid on, the first `limit`
        // matches are the page, without reading (or sorting) every match of
        // a common name. The employee-ID bound stays as the exact filter.
        let rows = sqlx::query(
            "SELECT p.employee_id, p.data FROM person_search s \
             JOIN person p ON p.rowid = s.rowid \
             WHERE person_search MATCH $1 \
             AND s.rowid > coalesce((SELECT rowid FROM person WHERE employee_id <= $2 \
                 ORDER BY employee_id DESC LIMIT 1), 0) \
             AND p.employee_id > $2 \
             ORDER BY s.rowid LIMIT $3",
        )
        .bind(phrase)
        .bind(after.unwrap_or("").to_string())
        .bind(to_i64(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(decode_person)
            .collect::<Result<_, _>>()
            .map(Some)
    }
}
