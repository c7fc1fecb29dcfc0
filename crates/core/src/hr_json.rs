//! The HR file as a JSON feed: an array of objects with the CSV's columns
//! as keys (see [`crate::hr_csv`] for the columns).
//!
//! ```json
//! [{"employee_id": "E1", "email": "ada@acme.example", "first_name": "Ada",
//!   "last_name": "Lovelace", "department": "R&D", "cost_center": "CC-1",
//!   "manager_email": null, "status": "active", "start_date": "2026-01-05",
//!   "end_date": null, "groups": ["Engineering", "All"], "location": "Paris"}]
//! ```
//!
//! Values are strings; `null` is an empty cell; a number is read as its
//! text (an employee ID of `1001`); `aliases` and `groups` may be arrays of
//! strings (or `;`-separated, as in the CSV). Any other shape is a problem
//! of that record. Keys compare case-insensitively. Every record must carry
//! every required column (`null` where empty), so a feed that drops a
//! field is refused rather than read as empty. Each record then goes
//! through the same row validator as the CSV ([`crate::hr_csv::Rows`]):
//! any bad record refuses the feed, and every one is named by its 1-based
//! position in the array.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hr_csv::{HrCsvError, REQUIRED_COLUMNS, RowUnit, Rows, extra_columns_of};
use crate::model::Person;

/// Parses a JSON feed's text into people. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Person>, HrCsvError> {
    let records = records(file, text)?;
    // The header is every key any record has, required columns first.
    let mut headers: Vec<String> = REQUIRED_COLUMNS.iter().map(|c| c.to_string()).collect();
    for r in &records {
        if let Value::Object(map) = r {
            for k in map.keys() {
                let k = k.trim().to_ascii_lowercase();
                if !headers.contains(&k) {
                    headers.push(k);
                }
            }
        }
    }
    let mut rows = Rows::new(file, RowUnit::Record, &headers, 0)?;
    for (i, record) in records.iter().enumerate() {
        if rows.full() {
            break;
        }
        let n = i as u64 + 1;
        let Value::Object(map) = record else {
            rows.problem(
                n,
                None,
                format!("expected an object, found {}", kind(record)),
            );
            continue;
        };
        let mut cells: Vec<String> = vec![String::new(); headers.len()];
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        let mut bad = false;
        for (key, value) in map {
            let name = key.trim().to_ascii_lowercase();
            if let Some(prev) = seen.insert(name.clone(), key) {
                rows.problem(
                    n,
                    Some(&name),
                    format!("keys {prev:?} and {key:?} name the same column"),
                );
                bad = true;
                continue;
            }
            let Some(at) = headers.iter().position(|h| *h == name) else {
                continue;
            };
            match cell(&name, value) {
                Ok(text) => cells[at] = text,
                Err(message) => {
                    rows.problem(n, Some(&name), message);
                    bad = true;
                }
            }
        }
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .copied()
            .filter(|c| !seen.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            rows.problem(
                n,
                None,
                format!(
                    "missing column(s): {} (every record carries every required column; null when empty)",
                    missing.join(", ")
                ),
            );
            continue;
        }
        if !bad {
            rows.row(n, &cells);
        }
    }
    rows.finish()
}

/// The feed's free attributes (keys beyond the required ones, `aliases`
/// and `groups`), as [`crate::hr_csv::extra_columns`] gives them for a CSV.
/// Empty when the text is not a JSON array.
pub fn extra_columns(text: &str) -> Vec<String> {
    let Ok(Value::Array(records)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    extra_columns_of(
        records
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|m| m.keys().cloned()),
    )
}

fn records(file: &str, text: &str) -> Result<Vec<Value>, HrCsvError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(records)) => Ok(records),
        Ok(other) => Err(HrCsvError::whole(
            file,
            RowUnit::Record,
            0,
            format!(
                "expected an array of objects (one per person), found {}",
                kind(&other)
            ),
        )),
        Err(e) => Err(HrCsvError::whole(
            file,
            RowUnit::Record,
            0,
            format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
        )),
    }
}

/// One value as the text the row validator reads.
fn cell(column: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(items) if column == "aliases" || column == "groups" => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "{column}: expected a list of strings, found {} in it",
                    kind(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(";")),
        other => Err(format!("{column}: expected text, found {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EmploymentStatus;

    fn record(id: &str, email: &str) -> String {
        format!(
            r#"{{"employee_id":"{id}","email":"{email}","first_name":"A","last_name":"B","department":"F","cost_center":"CC","manager_email":null,"status":"active","start_date":"2026-01-05","end_date":null}}"#
        )
    }

    #[test]
    fn a_good_feed_reads_like_the_csv() {
        let text = r#"[{"Employee_ID": 1001, "email": "ada@acme.example", "first_name": "Ada",
            "last_name": "Lovelace", "department": "R&D", "cost_center": "CC-1",
            "manager_email": null, "status": "active", "start_date": "2026-01-05",
            "end_date": null, "groups": ["Eng", "All"], "aliases": "a@acme.example", "location": "Paris"}]"#;
        let people = parse("people.json", text).unwrap();
        assert_eq!(people.len(), 1);
        let p = &people[0];
        assert_eq!(p.employee_id.as_str(), "1001");
        assert_eq!(p.groups, vec!["Eng", "All"]);
        assert_eq!(p.aliases.len(), 1);
        assert_eq!(p.status, EmploymentStatus::Active);
        assert_eq!(
            p.attributes.get("location").map(String::as_str),
            Some("Paris")
        );
        assert_eq!(extra_columns(text), vec!["location"]);
    }

    #[test]
    fn every_bad_record_is_named_with_its_column_and_nothing_is_read() {
        let text = format!(
            "[{}, {}, {}, {}, 7, {}]",
            record("E1", "a@acme.example"),
            record("E2", "not-an-address"),
            record("E3", "c@acme.example").replace("\"active\"", "\"retired\""),
            record("E4", "d@acme.example").replace("\"status\":\"active\",", ""),
            record("E1", "e@acme.example"),
        );
        let err = parse("people.json", &text).unwrap_err();
        let places: Vec<(u64, Option<&str>)> = err
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            places,
            vec![
                (2, Some("email")),
                (3, Some("status")),
                (4, None),
                (5, None),
                (6, Some("employee_id")),
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("people.json: record 4: missing column(s): status"),
            "{text}"
        );
        assert!(
            text.contains("record 5: expected an object, found a number"),
            "{text}"
        );
        assert!(text.contains("already used on record 1"), "{text}");
    }

    #[test]
    fn wrong_shapes_are_refused_whole() {
        let err = parse("p.json", r#"{"people": []}"#).unwrap_err();
        assert!(err.to_string().contains("expected an array"), "{err}");
        let err = parse("p.json", "[{").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let bad =
            record("E1", "a@acme.example").replace("\"first_name\":\"A\"", "\"first_name\":true");
        let err = parse("p.json", &format!("[{bad}]")).unwrap_err();
        assert_eq!(err.errors[0].column.as_deref(), Some("first_name"));
        assert!(parse("p.json", "[]").unwrap().is_empty());
    }
}
