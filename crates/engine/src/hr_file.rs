//! The HR file in any of its formats: CSV, XLSX and a JSON feed
//! (`[source] hr_file`, the format from its extension or `hr_format`).
//!
//! Every format goes through the core's one row validator
//! ([`roster_core::hr_csv::Rows`]): the same required columns, the same
//! per-row checks, the same refusal of the whole file on any bad row, each
//! bad row named with its row number, column and problem. CSV and JSON are
//! parsed in the core ([`roster_core::hr_csv`], [`roster_core::hr_json`]);
//! the workbook is read here, from bytes, with calamine, since the core
//! takes no spreadsheet dependency. Nothing here touches the disk: callers
//! read the file and hand its bytes over.
//!
//! XLSX: the first worksheet; its first non-empty row is the header; wholly
//! empty rows (a spreadsheet's trailing rows, say) are skipped. A date
//! cell is read as its calendar date (`YYYY-MM-DD`; a date cell with a
//! time of day is refused, as is a number where a date belongs); a text
//! cell must then hold `YYYY-MM-DD` like the CSV. Whole numbers read
//! without a decimal point (an employee ID typed as `1001`). A cell
//! holding an error (`#N/A`) is a problem of its row.

use std::io::Cursor;
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use roster_core::Person;
use roster_core::hr_csv::{self, HrCsvError, RowUnit, Rows};

/// The HR file's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HrFormat {
    #[default]
    Csv,
    Xlsx,
    Json,
}

impl HrFormat {
    /// `csv`, `xlsx` or `json` (case-insensitive).
    pub fn parse(name: &str) -> Option<HrFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(HrFormat::Csv),
            "xlsx" => Some(HrFormat::Xlsx),
            "json" => Some(HrFormat::Json),
            _ => None,
        }
    }

    /// The format a file's extension names.
    pub fn from_path(path: &Path) -> Option<HrFormat> {
        HrFormat::parse(path.extension()?.to_str()?)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HrFormat::Csv => "csv",
            HrFormat::Xlsx => "xlsx",
            HrFormat::Json => "json",
        }
    }
}

/// Parses an HR file's bytes in `format`. `file` names it in errors.
pub fn parse(format: HrFormat, file: &str, bytes: &[u8]) -> Result<Vec<Person>, HrCsvError> {
    match format {
        HrFormat::Csv => hr_csv::parse(file, &text(format, file, bytes)?),
        HrFormat::Json => roster_core::hr_json::parse(file, &text(format, file, bytes)?),
        HrFormat::Xlsx => parse_xlsx(file, bytes),
    }
}

/// The file's free attributes (columns beyond the required ones), for
/// checking a policy against; empty when the file cannot be read ([`parse`]
/// reports that).
pub fn extra_columns(format: HrFormat, bytes: &[u8]) -> Vec<String> {
    match format {
        HrFormat::Csv => std::str::from_utf8(bytes)
            .map(hr_csv::extra_columns)
            .unwrap_or_default(),
        HrFormat::Json => std::str::from_utf8(bytes)
            .map(roster_core::hr_json::extra_columns)
            .unwrap_or_default(),
        HrFormat::Xlsx => match sheet("", bytes) {
            Ok(sheet) => sheet
                .header
                .map(|(_, h)| hr_csv::extra_columns_of(h))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        },
    }
}

fn text(format: HrFormat, file: &str, bytes: &[u8]) -> Result<String, HrCsvError> {
    let unit = match format {
        HrFormat::Json => RowUnit::Record,
        _ => RowUnit::Line,
    };
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        HrCsvError::whole(
            file,
            unit,
            0,
            format!(
                "not UTF-8 text (at byte {}); save the file as UTF-8{}",
                e.utf8_error().valid_up_to(),
                if format == HrFormat::Csv {
                    ", or as .xlsx and set hr_file to it"
                } else {
                    ""
                }
            ),
        )
    })
}

/// A worksheet's rows as text, with their spreadsheet row numbers.
struct Sheet {
    /// The header row and its cells.
    header: Option<(u64, Vec<String>)>,
    /// Each later non-empty row: its number and its cells (or, per cell,
    /// the problem reading it).
    rows: Vec<(u64, Vec<Result<String, String>>)>,
}

fn sheet(file: &str, bytes: &[u8]) -> Result<Sheet, HrCsvError> {
    let whole = |message: String| HrCsvError::whole(file, RowUnit::Row, 0, message);
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| {
        whole(format!(
            "not an .xlsx workbook ({e}); save it as Excel Workbook (.xlsx), or set hr_format"
        ))
    })?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| whole("the workbook has no worksheet".into()))?
        .map_err(|e| whole(format!("cannot read the first worksheet: {e}")))?;
    // Row and column numbers of the range's first cell (0-based): a sheet
    // whose data starts lower down still reports the rows a person sees.
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let pad = first_col as usize;
    let mut header = None;
    let mut rows = Vec::new();
    for (i, row) in range.rows().enumerate() {
        let number = u64::from(first_row) + i as u64 + 1;
        if row.iter().all(|c| matches!(c, Data::Empty))
            || row
                .iter()
                .all(|c| matches!(c, Data::String(s) if s.trim().is_empty()) || c == &Data::Empty)
        {
            continue;
        }
        let mut cells: Vec<Result<String, String>> = vec![Ok(String::new()); pad];
        cells.extend(row.iter().map(cell));
        if header.is_none() {
            let names = cells
                .into_iter()
                .map(|c| c.unwrap_or_default())
                .collect::<Vec<_>>();
            header = Some((number, names));
        } else {
            rows.push((number, cells));
        }
    }
    Ok(Sheet { header, rows })
}

fn parse_xlsx(file: &str, bytes: &[u8]) -> Result<Vec<Person>, HrCsvError> {
    let sheet = sheet(file, bytes)?;
    let Some((at, names)) = &sheet.header else {
        return Err(HrCsvError::whole(
            file,
            RowUnit::Row,
            1,
            format!(
                "the first worksheet is empty: its first row must name the columns ({})",
                hr_csv::REQUIRED_COLUMNS.join(", ")
            ),
        ));
    };
    let mut out = Rows::new(file, RowUnit::Row, names, *at)?;
    let headers: Vec<String> = names
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (number, cells) in &sheet.rows {
        if out.full() {
            break;
        }
        let mut text = Vec::with_capacity(cells.len());
        let mut bad = false;
        for (i, c) in cells.iter().enumerate() {
            let column = headers.get(i).map(String::as_str).unwrap_or("");
            match c {
                Ok(t) => text.push(t.clone()),
                Err(problem) => {
                    out.problem(
                        *number,
                        (!column.is_empty()).then_some(column),
                        format!("{column}: {problem}"),
                    );
                    bad = true;
                    text.push(String::new());
                }
            }
        }
        if cells.len() > headers.len()
            && cells[headers.len()..]
                .iter()
                .any(|c| c.as_ref().is_ok_and(|t| !t.trim().is_empty()))
        {
            out.problem(
                *number,
                None,
                format!(
                    "a value beyond the header's {} columns (a column without a name?)",
                    headers.len()
                ),
            );
            continue;
        }
        if !bad {
            out.row(*number, &text);
        }
    }
    out.finish()
}

/// One cell as the text the row validator reads.
fn cell(c: &Data) -> Result<String, String> {
    match c {
        Data::Empty => Ok(String::new()),
        Data::String(s) => Ok(s.clone()),
        Data::Int(i) => Ok(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(format!("{}", *f as i64)),
        Data::Float(f) => Ok(f.to_string()),
        Data::Bool(b) => Ok(b.to_string()),
        Data::DateTime(d) => {
            if d.is_duration() {
                return Err("a duration where text or a date belongs".into());
            }
            let (y, m, day, h, min, s, ms) = d.to_ymd_hms_milli();
            if (h, min, s, ms) != (0, 0, 0, 0) {
                return Err(format!(
                    "a date with a time of day ({y:04}-{m:02}-{day:02} {h:02}:{min:02}); give the date alone"
                ));
            }
            Ok(format!("{y:04}-{m:02}-{day:02}"))
        }
        Data::DateTimeIso(s) => match s.split_once('T') {
            Some((date, time)) if time.trim_start_matches(['0', ':', '.']).is_empty() => {
                Ok(date.to_string())
            }
            Some(_) => Err(format!(
                "a date with a time of day ({s}); give the date alone"
            )),
            None => Ok(s.clone()),
        },
        Data::DurationIso(s) => Err(format!("a duration ({s}) where text or a date belongs")),
        Data::Error(e) => Err(format!("the cell holds an error ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::EmploymentStatus;
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    const HEADER: [&str; 11] = [
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
        "Location",
    ];

    /// A workbook: the header, then rows of text cells, with `start_date`
    /// written as a real date cell on the rows `dated` names (0-based).
    fn workbook(header: &[&str], rows: &[[&str; 11]], dated: &[usize], trailing: usize) -> Vec<u8> {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        for (c, h) in header.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for (r, row) in rows.iter().enumerate() {
            let r32 = r as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                if c == 8 && dated.contains(&r) {
                    let d = ExcelDateTime::parse_from_str(v).unwrap();
                    ws.write_datetime_with_format(r32, c as u16, &d, &date)
                        .unwrap();
                } else if c == 0 && v.chars().all(|ch| ch.is_ascii_digit()) && !v.is_empty() {
                    ws.write_number(r32, c as u16, v.parse::<f64>().unwrap())
                        .unwrap();
                } else if !v.is_empty() {
                    ws.write_string(r32, c as u16, *v).unwrap();
                }
            }
        }
        // Rows a person emptied but the sheet still spans.
        for t in 0..trailing {
            ws.write_string((rows.len() + 1 + t) as u32, 0, "").unwrap();
            ws.write_blank((rows.len() + 1 + t) as u32, 3, &Format::new())
                .unwrap();
        }
        wb.save_to_buffer().unwrap()
    }

    fn good() -> Vec<[&'static str; 11]> {
        vec![
            [
                "1001",
                "ada@acme.example",
                "Ada",
                "Lovelace",
                "R&D",
                "CC-1",
                "",
                "active",
                "2026-01-05",
                "",
                "Paris",
            ],
            [
                "E2",
                "bob@acme.example",
                "Bob",
                "Jones",
                "Sales",
                "CC-2",
                "ada@acme.example",
                "terminated",
                "2021-02-01",
                "2026-10-01",
                "",
            ],
        ]
    }

    #[test]
    fn a_workbook_reads_date_cells_and_text_dates_alike() {
        let bytes = workbook(&HEADER, &good(), &[0], 3);
        let people = parse(HrFormat::Xlsx, "people.xlsx", &bytes).unwrap();
        assert_eq!(people.len(), 2, "empty trailing rows are skipped");
        assert_eq!(people[0].employee_id.as_str(), "1001");
        assert_eq!(
            people[0].start_date.map(|d| d.to_string()).as_deref(),
            Some("2026-01-05"),
            "a date cell"
        );
        assert_eq!(
            people[1].start_date.map(|d| d.to_string()).as_deref(),
            Some("2021-02-01"),
            "a text date"
        );
        assert_eq!(people[1].status, EmploymentStatus::Terminated);
        assert_eq!(
            people[0].attributes.get("location").map(String::as_str),
            Some("Paris")
        );
        assert_eq!(extra_columns(HrFormat::Xlsx, &bytes), vec!["location"]);
        // The same people as the CSV the same rows make.
        let csv = roster_core::hr_csv::write(&people);
        let again = parse(HrFormat::Csv, "people.csv", csv.as_bytes()).unwrap();
        for (a, b) in people.iter().zip(&again) {
            assert_eq!(
                (&a.employee_id, &a.email, a.start_date),
                (&b.employee_id, &b.email, b.start_date)
            );
        }
    }

    #[test]
    fn every_bad_row_is_named_by_its_spreadsheet_row_and_column() {
        let mut rows = good();
        rows.push([
            "E3",
            "not-an-address",
            "Cy",
            "K",
            "F",
            "CC",
            "",
            "active",
            "2020-01-01",
            "",
            "",
        ]);
        rows.push([
            "E4",
            "dan@acme.example",
            "Dan",
            "L",
            "F",
            "CC",
            "",
            "active",
            "05/01/2020",
            "",
            "",
        ]);
        rows.push([
            "E2",
            "eve@acme.example",
            "Eve",
            "M",
            "F",
            "CC",
            "",
            "active",
            "2020-01-01",
            "",
            "",
        ]);
        let bytes = workbook(&HEADER, &rows, &[], 0);
        let err = parse(HrFormat::Xlsx, "people.xlsx", &bytes).unwrap_err();
        let places: Vec<(u64, Option<&str>)> = err
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            places,
            vec![
                (4, Some("email")),
                (5, Some("start_date")),
                (6, Some("employee_id"))
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("people.xlsx: row 5: start_date \"05/01/2020\" is not a date"),
            "{text}"
        );
        assert!(text.contains("already used on row 3"), "{text}");
        assert!(text.contains("nothing was imported"), "{text}");
    }

    #[test]
    fn a_wrong_header_is_refused_naming_the_missing_columns() {
        let mut header = HEADER;
        header[1] = "mail";
        let bytes = workbook(&header, &good(), &[], 0);
        let err = parse(HrFormat::Xlsx, "people.xlsx", &bytes).unwrap_err();
        assert_eq!(err.errors.len(), 1);
        assert_eq!(err.errors[0].line, 1);
        assert!(
            err.errors[0].message.contains("missing column(s): email"),
            "{err}"
        );
    }

    #[test]
    fn a_date_with_a_time_and_a_file_that_is_not_a_workbook_are_refused() {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in HEADER.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for (c, v) in good()[0].iter().enumerate() {
            ws.write_string(1, c as u16, *v).unwrap();
        }
        let dt = ExcelDateTime::parse_from_str("2026-01-05 09:30:00").unwrap();
        ws.write_datetime_with_format(1, 8, &dt, &Format::new().set_num_format("yyyy-mm-dd hh:mm"))
            .unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let err = parse(HrFormat::Xlsx, "p.xlsx", &bytes).unwrap_err();
        assert_eq!(err.errors[0].line, 2);
        assert_eq!(err.errors[0].column.as_deref(), Some("start_date"));
        assert!(err.errors[0].message.contains("time of day"), "{err}");

        let err = parse(HrFormat::Xlsx, "p.xlsx", b"employee_id,email\n").unwrap_err();
        assert!(err.to_string().contains("not an .xlsx workbook"), "{err}");
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(
            HrFormat::from_path(Path::new("a/People.XLSX")),
            Some(HrFormat::Xlsx)
        );
        assert_eq!(
            HrFormat::from_path(Path::new("p.json")),
            Some(HrFormat::Json)
        );
        assert_eq!(HrFormat::from_path(Path::new("p.csv")), Some(HrFormat::Csv));
        assert_eq!(HrFormat::from_path(Path::new("p.txt")), None);
    }

    /// Bounded fuzzing of the workbook reader (issue: HR XLSX is input
    /// roster does not control). Each case builds a workbook from seeded
    /// random choices: the header's columns shuffled, dropped, duplicated,
    /// re-cased or padded, rows of cells of every kind a spreadsheet holds
    /// (text of many shapes, whole and fractional numbers, huge and
    /// negative ones, dates with and without a time, booleans, blanks,
    /// rows left empty, data starting lower down or further right), and
    /// for a fifth of the cases a few bytes of the saved file flipped.
    ///
    /// Invariants: never a panic; what parses writes back as CSV
    /// (`hr_csv::write`) to a file that parses to the same people, so the
    /// workbook and the CSV path agree on who is employed.
    ///
    /// `ROSTER_FUZZ_CASES` cases (default 300; a few seconds).
    #[test]
    fn workbooks_never_panic_and_what_parses_round_trips_through_csv() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        use std::panic::{AssertUnwindSafe, catch_unwind};

        let cases: u64 = std::env::var("ROSTER_FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        const TEXT: &[&str] = &[
            "",
            " ",
            "ada@acme.example",
            "ADA@ACME.EXAMPLE ",
            "not-an-email",
            "a@b",
            "active",
            "Terminated",
            "leave",
            "on_leave",
            "2026-01-05",
            "2026-02-30",
            "05/01/2026",
            "1001",
            "E-7",
            "=1/0",
            "#N/A",
            "Zoë Ñandú",
            "\u{202e}evil",
            "line\nbreak",
            "tab\there",
            "\"quoted\"",
            "a,b",
            "x",
        ];
        let mut rng = StdRng::seed_from_u64(0x5EED_F11E);
        let mut parsed = 0u64;
        for case in 0..cases {
            let mut wb = Workbook::new();
            let ws = wb.add_worksheet();
            let date = Format::new().set_num_format("yyyy-mm-dd");
            let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
            let (r0, c0) = if rng.random_bool(0.2) {
                (rng.random_range(0..4u32), rng.random_range(0..3u16))
            } else {
                (0, 0)
            };
            let mut header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
            if rng.random_bool(0.3) {
                let i = rng.random_range(0..header.len());
                header.remove(i);
            }
            if rng.random_bool(0.2) {
                let i = rng.random_range(0..header.len());
                header.push(header[i].clone());
            }
            if rng.random_bool(0.2) {
                let i = rng.random_range(0..header.len());
                header[i] = format!(" {} ", header[i].to_uppercase());
            }
            if rng.random_bool(0.3) {
                let (a, b) = (
                    rng.random_range(0..header.len()),
                    rng.random_range(0..header.len()),
                );
                header.swap(a, b);
            }
            for (c, h) in header.iter().enumerate() {
                ws.write_string(r0, c0 + c as u16, h).unwrap();
            }
            let rows = rng.random_range(0..8u32);
            let width = header.len() + usize::from(rng.random_bool(0.1));
            for r in 1..=rows {
                if rng.random_bool(0.1) {
                    continue; // an empty row
                }
                for c in 0..width {
                    let (row, col) = (r0 + r, c0 + c as u16);
                    let column = header.get(c).map(|h| h.trim().to_ascii_lowercase());
                    // Mostly plausible values, so rows get past the
                    // validator often enough to test the round trip.
                    let plausible = rng.random_bool(0.75);
                    let written = match (column.as_deref(), plausible) {
                        (Some("email"), true) => {
                            ws.write_string(row, col, format!("p{r}x{case}@acme.example"))
                        }
                        (Some("manager_email"), true) => ws.write_string(row, col, ""),
                        (Some("employee_id"), true) => {
                            ws.write_number(row, col, f64::from(1000 + r))
                        }
                        (Some("status"), true) => ws.write_string(row, col, "active"),
                        (Some("start_date"), true) => ws.write_datetime_with_format(
                            row,
                            col,
                            ExcelDateTime::from_ymd(2026, 1, (r % 28) as u8 + 1).unwrap(),
                            &date,
                        ),
                        (Some("end_date"), true) => ws.write_string(row, col, ""),
                        (Some(_), true) => {
                            ws.write_string(row, col, format!("v{}", rng.random_range(0..5)))
                        }
                        _ => match rng.random_range(0..8) {
                            0 => ws.write_string(row, col, TEXT[rng.random_range(0..TEXT.len())]),
                            1 => ws.write_number(
                                row,
                                col,
                                [0.0, -1.0, 1001.0, 1.5, 1e15, 1e300, -0.0][rng.random_range(0..7)],
                            ),
                            2 => ws.write_datetime_with_format(
                                row,
                                col,
                                ExcelDateTime::from_ymd(
                                    rng.random_range(1900..2100),
                                    rng.random_range(1..13),
                                    rng.random_range(1..29),
                                )
                                .unwrap(),
                                &date,
                            ),
                            3 => ws.write_datetime_with_format(
                                row,
                                col,
                                ExcelDateTime::parse_from_str("2026-01-05 09:30:00").unwrap(),
                                &datetime,
                            ),
                            4 => ws.write_boolean(row, col, rng.random_bool(0.5)),
                            5 => ws.write_blank(row, col, &Format::new()),
                            6 => ws.write_string(row, col, "x".repeat(rng.random_range(0..3000))),
                            _ => ws.write_string(row, col, ""),
                        },
                    };
                    written.unwrap();
                }
            }
            let mut bytes = wb.save_to_buffer().unwrap();
            if rng.random_bool(0.2) && !bytes.is_empty() {
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                parse(HrFormat::Xlsx, "fuzz.xlsx", &bytes)
            }));
            let Ok(result) = outcome else {
                let path = std::env::temp_dir().join(format!("roster-fuzz-{case}.xlsx"));
                let _ = std::fs::write(&path, &bytes);
                panic!("case {case} panicked; the workbook is {}", path.display());
            };
            if let Ok(people) = result {
                parsed += 1;
                let written = hr_csv::write(&people);
                let again = hr_csv::parse("rewritten.csv", &written).unwrap_or_else(|e| {
                    panic!("case {case}: the CSV rendering does not parse: {e}\n{written}")
                });
                let strip = |ps: &[Person]| {
                    ps.iter()
                        .cloned()
                        .map(|mut p| {
                            p.attributes.clear();
                            p.aliases.clear();
                            p
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    strip(&again),
                    strip(&people),
                    "case {case}: the workbook and its CSV rendering disagree"
                );
            }
        }
        // The generator must reach the round trip, or the test proves
        // little: most plausible workbooks parse.
        assert!(
            parsed * 10 >= cases,
            "only {parsed} of {cases} workbooks parsed; the generator drifted"
        );
    }
}
