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
//!
//! # Leaving common trigrams out
//!
//! FTS5 matches a phrase by walking the list of rows of every trigram in
//! it, and a trigram every person has (`@co`, `com`, `e00` in employee
//! IDs, `las` in a synthetic `lastN`) lists all 100,000 of them: measured,
//! `"first2.last0"` took 15 to 20 ms and `"e0000003"` 4 to 6 ms where the
//! same needles without their common trigrams take under 1.5 ms. So the
//! query keeps the trigrams that are not common and asks for the rows that
//! contain every maximal run of them: `first2.last0` becomes
//! `"t2.l" AND "st0"`. Each run is a substring of the needle, so every row
//! containing the needle contains every run: the answer is still a
//! superset, and the caller's exact filter leaves what the whole phrase
//! would. How common a trigram is comes from a sample of the indexed
//! bodies (a [`SAMPLE_ROWS`]-row stride over the table, read again after
//! [`SAMPLE_TTL`]); a stale or skewed sample costs time, never a match.
//! Below [`MIN_SAMPLE`] people, or when every trigram is common or none
//! is, the whole needle is the phrase, as before.
//!
//! # The exact check
//!
//! Runs of rare trigrams can match many more rows than the needle: the
//! synthetic `last5` is searched as `st5`, which the ~11% of people named
//! `first5…` also have, so hundreds of rows can come before the first real
//! match, and each would be decoded only for the caller to drop it. So the
//! query also asks that the body contain the needle (`instr` over
//! `lower(body)`), a comparison per candidate instead of a decoded record.
//! SQLite's `lower` folds ASCII only, while the caller folds with Unicode
//! rules (`str::to_lowercase`), so a body with any non-ASCII character
//! (where the two may disagree: `Ö`, the Kelvin sign) is let through to
//! the caller's exact filter unchecked; for an ASCII body both fold alike,
//! and the answer stays a superset.

use crate::reader::Read as _;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster_core::Person;
use sqlx::Row;

use crate::people::decode_person;
use crate::target::Backend;
use crate::{Store, StoreError, to_i64};

/// Bodies read into a sample, at most.
const SAMPLE_ROWS: usize = 2_000;
/// Fewer people than this: every needle is searched whole (the index is
/// small enough that the phrase is cheap).
const MIN_SAMPLE: usize = 1_000;
/// A trigram in more than this share of the sampled bodies is common.
const COMMON_SHARE: f64 = 0.15;
/// How long a sample is used before it is read again.
const SAMPLE_TTL: Duration = Duration::from_secs(600);

/// Trigram document frequencies in a sample of `person_search` bodies.
#[derive(Debug)]
pub(crate) struct TrigramSample {
    bodies: usize,
    /// In how many sampled bodies each (lower-cased) trigram occurs.
    docs: HashMap<String, u32>,
    read: Instant,
}

/// The store's current sample, shared by its clones.
#[derive(Clone, Default)]
pub(crate) struct SampleCell(Arc<Mutex<Option<Arc<TrigramSample>>>>);

impl std::fmt::Debug for SampleCell {
    // A store's description has no use for thousands of counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleCell")
    }
}

impl SampleCell {
    fn get(&self) -> Option<Arc<TrigramSample>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, sample: Arc<TrigramSample>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(sample);
    }
}

impl TrigramSample {
    fn new<'a>(bodies: impl IntoIterator<Item = &'a str>, read: Instant) -> TrigramSample {
        let mut docs: HashMap<String, u32> = HashMap::new();
        let mut n = 0;
        let mut seen = HashSet::new();
        for body in bodies {
            n += 1;
            seen.clear();
            let chars: Vec<char> = body.to_lowercase().chars().collect();
            for w in chars.windows(3) {
                let t: String = w.iter().collect();
                if seen.insert(t.clone()) {
                    *docs.entry(t).or_default() += 1;
                }
            }
        }
        TrigramSample {
            bodies: n,
            docs,
            read,
        }
    }

    fn common(&self, trigram: &str) -> bool {
        let docs = self.docs.get(&trigram.to_lowercase()).copied().unwrap_or(0);
        f64::from(docs) > COMMON_SHARE * self.bodies as f64
    }
}

/// One FTS5 phrase: the trigram tokenizer matches it as a substring.
fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The FTS5 query for `needle` (module docs): the whole needle as one
/// phrase, or the maximal runs of its uncommon trigrams, each a phrase,
/// all required.
pub(crate) fn trigram_query(needle: &str, sample: Option<&TrigramSample>) -> String {
    let whole = phrase(needle);
    let Some(sample) = sample.filter(|s| s.bodies >= MIN_SAMPLE) else {
        return whole;
    };
    let chars: Vec<char> = needle.chars().collect();
    if chars.len() < 3 {
        return whole;
    }
    let keep: Vec<bool> = chars
        .windows(3)
        .map(|w| !sample.common(&w.iter().collect::<String>()))
        .collect();
    if keep.iter().all(|k| *k) || !keep.iter().any(|k| *k) {
        return whole;
    }
    // Runs of kept trigrams [start, end): the substring chars[start..end+2].
    let mut runs = Vec::new();
    let mut start = None;
    for (i, k) in keep.iter().chain(std::iter::once(&false)).enumerate() {
        match (k, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push(phrase(&chars[s..i + 2].iter().collect::<String>()));
                start = None;
            }
            _ => {}
        }
    }
    runs.join(" AND ")
}

impl Store {
    /// People whose name, employee ID or addresses contain `needle`, with
    /// an employee ID after `after`, ordered by employee ID, at most
    /// `limit`; `None` when the index cannot answer (module docs). Rows
    /// that do not contain it may come too (module docs): filter them.
    pub async fn people_by_trigram(
        &self,
        needle: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Person>>, StoreError> {
        if self.backend() != Backend::Sqlite || needle.chars().count() < 3 {
            return Ok(None);
        }
        let sample = self.trigram_sample().await?;
        let query = trigram_query(needle, sample.as_deref());
        // `replace_people` writes people in employee-ID order, so their
        // rowids follow employee IDs, and FTS5 hands matches out in rowid
        // order: reading from the cursor's rowid on, the first `limit`
        // matches are the page, without reading (or sorting) every match of
        // a common name. The employee-ID bound stays as the exact filter.
        //
        // The runs of rare trigrams match more rows than the needle does
        // (`last5` is searched as `st5`, which every `first5…` has too), and
        // those would fill the page with rows the caller then drops, so it
        // asks again for more. The body is checked for the needle itself
        // here, where it costs a comparison rather than a decoded record
        // (module docs, "The exact check").
        let rows = sqlx::query(
            "SELECT p.employee_id, p.data FROM person_search s \
             JOIN person p ON p.rowid = s.rowid \
             WHERE person_search MATCH $1 \
             AND s.rowid > coalesce((SELECT rowid FROM person WHERE employee_id <= $2 \
                 ORDER BY employee_id DESC LIMIT 1), 0) \
             AND p.employee_id > $2 \
             AND (instr(lower(s.body), $4) > 0 \
                  OR length(s.body) <> length(CAST(s.body AS BLOB))) \
             ORDER BY s.rowid LIMIT $3",
        )
        .bind(query)
        .bind(after.unwrap_or("").to_string())
        .bind(to_i64(limit))
        .bind(needle.to_lowercase())
        .read_all(self)
        .await?;
        rows.iter()
            .map(decode_person)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The trigram sample (module docs), read again when missing or older
    /// than [`SAMPLE_TTL`]. Two searches finding it stale at once may both
    /// read it; the later one's stays.
    async fn trigram_sample(&self) -> Result<Option<Arc<TrigramSample>>, StoreError> {
        let now = Instant::now();
        let current = self.search_sample.get();
        if let Some(s) = current.filter(|s| now.saturating_duration_since(s.read) < SAMPLE_TTL) {
            return Ok(Some(s));
        }
        // A stride over the rowids in use reads about SAMPLE_ROWS bodies
        // spread over the whole table, not only the first employee IDs.
        let row = sqlx::query("SELECT min(rowid) AS lo, max(rowid) AS hi FROM person")
            .read_one(self)
            .await?;
        let (lo, hi): (Option<i64>, Option<i64>) = (row.try_get("lo")?, row.try_get("hi")?);
        let span = hi.unwrap_or(0) - lo.unwrap_or(0) + 1;
        let stride = (span / to_i64(SAMPLE_ROWS)).max(1);
        let rows = sqlx::query("SELECT body FROM person_search WHERE rowid % $1 = 0 LIMIT $2")
            .bind(stride)
            .bind(to_i64(SAMPLE_ROWS))
            .read_all(self)
            .await?;
        let bodies: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("body"))
            .collect::<Result<_, _>>()?;
        let sample = Arc::new(TrigramSample::new(bodies.iter().map(String::as_str), now));
        self.search_sample.set(sample.clone());
        Ok(Some(sample))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrigramSample {
        // 1,000 synthetic bodies: everyone has "first", "last" and the
        // domain; the numbers vary.
        let bodies: Vec<String> = (0..1_000)
            .map(|i| {
                format!(
                    "first{} last{}\ne{:07}\nfirst{}.last{}.{i}@corp.example\n[]",
                    i % 100,
                    i % 37,
                    i + 1,
                    i % 100,
                    i % 37
                )
            })
            .collect();
        TrigramSample::new(bodies.iter().map(String::as_str), Instant::now())
    }

    #[test]
    fn common_trigrams_are_left_out_and_each_run_is_a_substring() {
        let s = sample();
        let q = trigram_query("first2.last0", Some(&s));
        assert!(!q.contains("fir") && !q.contains("las"), "{q}");
        for run in q.split(" AND ") {
            let inner = run.trim_matches('"');
            assert!(inner.chars().count() >= 3, "{q}");
            assert!("first2.last0".contains(inner), "{inner} of {q}");
        }
        // The domain is common everywhere: a whole address keeps its rare
        // part only.
        let q = trigram_query("first7.last3.7@corp.example", Some(&s));
        assert!(!q.contains("corp"), "{q}");
    }

    #[test]
    fn the_whole_needle_when_nothing_or_everything_is_common() {
        let s = sample();
        assert_eq!(trigram_query("corp.example", Some(&s)), "\"corp.example\"");
        assert_eq!(trigram_query("zyxwv", Some(&s)), "\"zyxwv\"");
        assert_eq!(trigram_query("ab\"c", Some(&s)), "\"ab\"\"c\"");
        assert_eq!(trigram_query("first2.last0", None), "\"first2.last0\"");
        // Too small a sample to judge by.
        let small = TrigramSample::new(["first1 last1"], Instant::now());
        assert_eq!(
            trigram_query("first2.last0", Some(&small)),
            "\"first2.last0\""
        );
    }
}
