//! The HR file source of truth: its columns, the one row validator every
//! format shares ([`Rows`]), and the CSV format.
//!
//! The formats (CSV here, a JSON feed in [`crate::hr_json`], XLSX in the
//! engine's `hr_file`) only read their rows as text and hand them to
//! [`Rows`], so what makes a row good cannot differ between them.
//!
//! Required columns (any order, header names case-insensitive):
//! `employee_id, email, first_name, last_name, department, cost_center,
//! manager_email, status, start_date, end_date`. Optional: `aliases` and
//! `groups` (`;`-separated). Any further column becomes a free attribute
//! that policy rules can select on (e.g. `location`).
//!
//! A file with any bad row is refused whole: nothing is half-imported.
//! Every bad row is reported (up to [`MAX_ERRORS`]) with its line number
//! and reason, so one run tells the admin everything to fix.

use std::collections::{BTreeMap, HashMap};

use time::Date;
use time::macros::format_description;

use crate::ids::{Email, EmployeeId};
use crate::model::{EmploymentStatus, Person};

pub const REQUIRED_COLUMNS: [&str; 10] = [
    "employee_id",
    "email",
    "first_name",
    "last_name",
    "department",
    "cost_center",
    "manager_email",
    "status",
    "start_date",
    "end_date",
];

/// Stop collecting errors after this many; a file this broken is the
/// wrong file.
pub const MAX_ERRORS: usize = 50;

/// How a format numbers the rows its errors name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowUnit {
    /// A CSV file's 1-based line (the header is line 1).
    #[default]
    Line,
    /// A spreadsheet's 1-based row, as the spreadsheet shows it.
    Row,
    /// A JSON feed's 1-based position in the array.
    Record,
}

/// One problem in the file: where (its row, by the format's [`RowUnit`]),
/// which column when one is to blame, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

/// The HR file was refused: every bad row, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {} problem(s); nothing was imported:\n{}", errors.len(), render(errors, file, *unit))]
pub struct HrCsvError {
    pub file: String,
    pub unit: RowUnit,
    pub errors: Vec<RowError>,
}

/// The same error, by the name that fits every format.
pub type HrFileError = HrCsvError;

impl HrCsvError {
    /// The stable code: the HR file was refused (its rows say why, each
    /// as `file:line: message`).
    pub fn code(&self) -> &'static str {
        "HRCSV-0001"
    }

    /// A refusal of the whole file for one reason (a header it cannot
    /// read, a file that is not a spreadsheet).
    pub fn whole(file: &str, unit: RowUnit, line: u64, message: String) -> HrCsvError {
        HrCsvError {
            file: file.to_string(),
            unit,
            errors: vec![RowError {
                line,
                column: None,
                message,
            }],
        }
    }
}

fn render(errors: &[RowError], file: &str, unit: RowUnit) -> String {
    errors
        .iter()
        .map(|e| match unit {
            RowUnit::Line => format!("  {file}:{}: {}", e.line, e.message),
            RowUnit::Row => format!("  {file}: row {}: {}", e.line, e.message),
            RowUnit::Record => format!("  {file}: record {}: {}", e.line, e.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one row validator every HR format goes through (CSV here, JSON in
/// [`crate::hr_json`], XLSX in the engine, which reads the workbook), so
/// the formats cannot drift: the same required columns, the same checks
/// per row, the same duplicate checks across rows, the same refusal of
/// the whole file on any bad row.
///
/// A format reads its header, calls [`Rows::new`], hands each row's cells
/// (in header order, as text) to [`Rows::row`], and ends with
/// [`Rows::finish`].
pub struct Rows {
    file: String,
    unit: RowUnit,
    headers: Vec<String>,
    col: HashMap<String, usize>,
    people: Vec<Person>,
    errors: Vec<RowError>,
    seen_ids: HashMap<String, u64>,
    seen_emails: HashMap<String, u64>,
}

impl Rows {
    /// Checks the header (names trimmed and compared case-insensitively):
    /// every required column must be there. `at` is the header's row.
    pub fn new<S: AsRef<str>>(
        file: &str,
        unit: RowUnit,
        headers: &[S],
        at: u64,
    ) -> Result<Rows, HrCsvError> {
        let headers: Vec<String> = headers
            .iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .collect();
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .copied()
            .filter(|c| !headers.iter().any(|h| h == c))
            .collect();
        if !missing.is_empty() {
            return Err(HrCsvError::whole(
                file,
                unit,
                at,
                format!(
                    "missing column(s): {} (required: {})",
                    missing.join(", "),
                    REQUIRED_COLUMNS.join(", ")
                ),
            ));
        }
        let mut col = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            if col.insert(h.clone(), i).is_some() && !h.is_empty() {
                return Err(HrCsvError::whole(
                    file,
                    unit,
                    at,
                    format!("column {h:?} appears twice in the header"),
                ));
            }
        }
        Ok(Rows {
            file: file.to_string(),
            unit,
            headers,
            col,
            people: Vec::new(),
            errors: Vec::new(),
            seen_ids: HashMap::new(),
            seen_emails: HashMap::new(),
        })
    }

    /// True once [`MAX_ERRORS`] problems were collected: stop reading.
    pub fn full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }

    /// Records a problem the format found itself (a malformed row, a cell
    /// it cannot read as text).
    pub fn problem(&mut self, line: u64, column: Option<&str>, message: String) {
        self.errors.push(RowError {
            line,
            column: column.map(str::to_string),
            message,
        });
    }

    /// Validates one row; `cells` are in header order (missing trailing
    /// cells read as empty).
    pub fn row<S: AsRef<str>>(&mut self, line: u64, cells: &[S]) {
        if self.full() {
            return;
        }
        let trimmed: Vec<&str> = cells.iter().map(|c| c.as_ref().trim()).collect();
        match parse_row(&self.col, &self.headers, &trimmed) {
            Ok(person) => {
                if let Some(prev) = self.seen_ids.insert(person.employee_id.to_string(), line) {
                    let message = format!(
                        "employee_id {:?} already used on {} {prev}",
                        person.employee_id.as_str(),
                        self.unit_name()
                    );
                    self.problem(line, Some("employee_id"), message);
                    return;
                }
                if let Some(prev) = self.seen_emails.insert(person.email.normalized(), line) {
                    let message = format!(
                        "email {} already used on {} {prev} (emails compare case-insensitively)",
                        person.email,
                        self.unit_name()
                    );
                    self.problem(line, Some("email"), message);
                    return;
                }
                self.people.push(person);
            }
            Err((column, message)) => self.problem(line, column, message),
        }
    }

    fn unit_name(&self) -> &'static str {
        match self.unit {
            RowUnit::Line => "line",
            RowUnit::Row => "row",
            RowUnit::Record => "record",
        }
    }

    /// The people, or every problem found.
    pub fn finish(self) -> Result<Vec<Person>, HrCsvError> {
        if self.errors.is_empty() {
            Ok(self.people)
        } else {
            Err(HrCsvError {
                file: self.file,
                unit: self.unit,
                errors: self.errors,
            })
        }
    }
}

/// Parses an HR CSV file's text into people. `file` names the file in
/// errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Person>, HrCsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            return Err(HrCsvError::whole(
                file,
                RowUnit::Line,
                1,
                format!("cannot read the header: {e}"),
            ));
        }
    };
    let mut rows = Rows::new(file, RowUnit::Line, &headers, 1)?;
    for record in reader.records() {
        if rows.full() {
            break;
        }
        match record {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(0);
                let cells: Vec<&str> = r.iter().collect();
                rows.row(line, &cells);
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                rows.problem(line, None, format!("malformed row: {e}"));
            }
        }
    }
    rows.finish()
}

/// The header's columns beyond the required ones, `aliases` and `groups`
/// (lower-cased, as [`parse`] names them): the free attributes the file
/// gives people, which policy rules may name. A column counts even when
/// every row leaves it empty, since rules are checked against the file's
/// shape, not against today's values. Empty when the header is unreadable
/// ([`parse`] reports that).
pub fn extra_columns(text: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let Ok(headers) = reader.headers() else {
        return Vec::new();
    };
    extra_columns_of(headers.iter())
}

/// [`extra_columns`] of any format's header.
pub fn extra_columns_of<S: AsRef<str>>(headers: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut out: Vec<String> = headers
        .into_iter()
        .map(|h| h.as_ref().trim().to_ascii_lowercase())
        .filter(|h| {
            !h.is_empty()
                && !REQUIRED_COLUMNS.contains(&h.as_str())
                && h != "aliases"
                && h != "groups"
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

type Problem = (Option<&'static str>, String);

fn parse_row(
    col: &HashMap<String, usize>,
    headers: &[String],
    record: &[&str],
) -> Result<Person, Problem> {
    let get = |name: &str| -> &str {
        col.get(name)
            .and_then(|&i| record.get(i).copied())
            .unwrap_or("")
    };
    let employee_id = get("employee_id");
    if employee_id.is_empty() {
        return Err((Some("employee_id"), "employee_id is empty".into()));
    }
    let email = Email::parse(get("email")).map_err(|e| (Some("email"), format!("email: {e}")))?;
    let first_name = get("first_name").to_string();
    let last_name = get("last_name").to_string();
    if first_name.is_empty() && last_name.is_empty() {
        return Err((
            Some("first_name"),
            "first_name and last_name are both empty".into(),
        ));
    }
    let manager_email = match get("manager_email") {
        "" => None,
        m => Some(
            Email::parse(m).map_err(|e| (Some("manager_email"), format!("manager_email: {e}")))?,
        ),
    };
    if manager_email.as_ref() == Some(&email) {
        return Err((
            Some("manager_email"),
            format!("{email} is their own manager"),
        ));
    }
    let status_raw = get("status");
    let status = EmploymentStatus::parse(status_raw).ok_or_else(|| {
        (
            Some("status"),
            format!("status {status_raw:?} is not one of active, leave, terminated"),
        )
    })?;
    let start_date =
        parse_date("start_date", get("start_date")).map_err(|e| (Some("start_date"), e))?;
    let end_date = parse_date("end_date", get("end_date")).map_err(|e| (Some("end_date"), e))?;
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        return Err((
            Some("end_date"),
            format!("end_date {e} is before start_date {s}"),
        ));
    }
    let aliases = get("aliases")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| Email::parse(a).map_err(|e| (Some("aliases"), format!("aliases: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = get("groups")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut attributes = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() || REQUIRED_COLUMNS.contains(&h.as_str()) || h == "aliases" || h == "groups"
        {
            continue;
        }
        if let Some(v) = record.get(i)
            && !v.is_empty()
        {
            attributes.insert(h.clone(), v.to_string());
        }
    }
    Ok(Person {
        employee_id: EmployeeId::new(employee_id),
        email,
        aliases,
        first_name,
        last_name,
        department: get("department").to_string(),
        cost_center: get("cost_center").to_string(),
        manager_email,
        status,
        start_date,
        end_date,
        groups,
        attributes,
    })
}

fn parse_date(column: &str, raw: &str) -> Result<Option<Date>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    Date::parse(raw, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| format!("{column} {raw:?} is not a date (expected YYYY-MM-DD)"))
}

/// Writes people back out in the same format (used by `roster demo` to
/// write its sample company, and by tests).
pub fn write(people: &[Person]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = REQUIRED_COLUMNS.to_vec();
    header.push("groups");
    let _ = w.write_record(&header);
    for p in people {
        let _ = w.write_record([
            p.employee_id.as_str(),
            p.email.as_str(),
            &p.first_name,
            &p.last_name,
            &p.department,
            &p.cost_center,
            p.manager_email.as_ref().map(Email::as_str).unwrap_or(""),
            p.status.as_str(),
            &p.start_date.map(|d| d.to_string()).unwrap_or_default(),
            &p.end_date.map(|d| d.to_string()).unwrap_or_default(),
            &p.groups.join(";"),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date\n";

    #[test]
    fn parses_a_good_file_with_extra_columns_as_attributes() {
        let text = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date,location,groups\n\
                    E1,Alice@Acme.com,Alice,Smith,Finance,CC-100,,active,2020-01-01,,Paris,Finance;All\n\
                    E2,bob@acme.com,Bob,Jones,Sales,CC-200,alice@acme.com,terminated,2021-02-01,2026-10-01,,\n";
        let people = parse("hr.csv", text).unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(
            people[0].attributes.get("location").map(String::as_str),
            Some("Paris")
        );
        assert_eq!(people[0].groups, vec!["Finance", "All"]);
        assert_eq!(people[1].status, EmploymentStatus::Terminated);
        assert_eq!(
            people[1].manager_email.as_ref().unwrap().as_str(),
            "alice@acme.com"
        );
    }

    #[test]
    fn extra_columns_are_the_free_attributes_even_when_empty() {
        let text = "employee_id,email,first_name,last_name,department,cost_center,manager_email,status,start_date,end_date,Location,groups,aliases,badge\n\
                    E1,a@acme.com,A,S,F,CC,,active,2020-01-01,,,,,\n";
        assert_eq!(extra_columns(text), vec!["badge", "location"]);
        assert_eq!(extra_columns(HEADER), Vec::<String>::new());
    }

    #[test]
    fn a_bad_row_refuses_the_whole_file_and_names_every_line() {
        let text = format!(
            "{HEADER}E1,alice@acme.com,Alice,Smith,F,CC,,active,2020-01-01,\n\
             E2,not-an-email,Bob,J,F,CC,,active,2020-01-01,\n\
             E3,carol@acme.com,Carol,K,F,CC,,retired,2020-01-01,\n\
             E4,dan@acme.com,Dan,L,F,CC,,active,2020-13-01,\n\
             E1,erin@acme.com,Erin,M,F,CC,,active,2020-01-01,\n\
             E6,ALICE@acme.com,Al,Dup,F,CC,,active,2020-01-01,\n"
        );
        let err = parse("hr.csv", &text).unwrap_err();
        let lines: Vec<u64> = err.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(err.errors[0].message.contains("email"));
        assert!(err.errors[1].message.contains("retired"));
        assert!(err.errors[2].message.contains("start_date"));
        assert!(err.errors[3].message.contains("already used on line 2"));
        assert_eq!(err.errors[0].column.as_deref(), Some("email"));
        assert_eq!(err.errors[1].column.as_deref(), Some("status"));
        assert!(err.errors[4].message.contains("case-insensitively"));
        assert!(err.to_string().contains("nothing was imported"));
    }

    #[test]
    fn missing_columns_are_named() {
        let err = parse("hr.csv", "employee_id,email\nE1,a@b.com\n").unwrap_err();
        assert_eq!(err.errors[0].line, 1);
        assert!(err.errors[0].message.contains("first_name"));
        assert!(err.errors[0].message.contains("end_date"));
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_reported() {
        let text = format!("{HEADER}E1,alice@acme.com,Alice\n");
        let err = parse("hr.csv", &text).unwrap_err();
        assert_eq!(err.errors[0].line, 2);
    }

    #[test]
    fn end_before_start_is_rejected() {
        let text =
            format!("{HEADER}E1,alice@acme.com,Alice,S,F,CC,,terminated,2024-05-01,2024-04-01\n");
        let err = parse("hr.csv", &text).unwrap_err();
        assert!(err.errors[0].message.contains("before start_date"));
    }

    #[test]
    fn write_then_parse_round_trips() {
        let text = format!(
            "{HEADER}E1,alice@acme.com,Alice,Smith,F,CC-1,,active,2020-01-01,\n\
             E2,bob@acme.com,Bob,Jones,S,CC-2,alice@acme.com,terminated,2021-01-01,2026-01-31\n"
        );
        let people = parse("a.csv", &text).unwrap();
        let again = parse("b.csv", &write(&people)).unwrap();
        assert_eq!(people, again);
    }
}
