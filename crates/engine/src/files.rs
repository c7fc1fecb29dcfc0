//! Import files for apps whose only bulk write path is a file a person
//! uploads: BILL Spend & Expense's CSV import and Spendesk's `.xlsx`
//! bulk-invite template.
//!
//! # Concepts
//!
//! * **Add-only.** Both imports create people and nothing else: neither can
//!   update or remove anyone (catalog `[csv]`: `updates = false`,
//!   `removes = false`). So these functions accept only
//!   [`Operation::Create`] actions and refuse anything else with
//!   [`FilesError::NotCreate`]; the caller turns deactivations into manual
//!   tasks (offboarding checklist) instead of pretending a file does them.
//! * **Values come from the action.** Each row is built from the action's
//!   `email` and its desired `attributes` (`first_name`, `last_name`,
//!   `role`, `cost_center`, `approval_policy`). Nothing is looked up.
//! * **Refuse rows the app would reject.** A row missing a mandatory value
//!   is an error naming the person, so the admin fixes the source before
//!   uploading a file that fails half-way (Spendesk answers "Missing
//!   mandatory information"; BILL's API requires first and last name).
//! * **Exports are files on disk with personal data.** [`write_export`]
//!   writes `<dir>/exports/<plan-id>/<connection>.<ext>` atomically (a
//!   temporary file renamed into place, so a reader never sees half a
//!   file) and, on unix, with mode 0600.
//!
//! # BILL S&E CSV columns
//!
//! BILL's CSV layout is not published in any source roster has
//! (reference/vendor-apis.md §6: "The column layout is not published").
//! The columns are therefore the fields BILL's own v3 create-user call
//! documents (§5, `POST /v3/spend/users`: first name, last name, email,
//! role ∈ `ADMIN | AUDITOR | BOOKKEEPER | MEMBER`), with plain headers:
//! `First Name, Last Name, Email, Role`. The API's optional date of birth
//! and phone are left out: roster holds neither. If the import screen names
//! its columns differently, the admin maps these four there.
//!
//! # Spendesk bulk-invite columns
//!
//! Exactly the template's columns, in its order (vendor-apis.md §5, help
//! center article 8116458): `First name*`, `Last name*`, `Email Address*`,
//! `Roles`, `Cost Center`, `Approval Policy`, `IBAN`, `BIC`. Roles, cost
//! centers and approval policies go by name, as the template asks. IBAN and
//! BIC must be given both or neither; roster holds no bank details, so both
//! stay blank.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use roster_core::{Action, Operation};

/// BILL S&E roles, as its API spells them.
pub const BILL_ROLES: [&str; 4] = ["ADMIN", "AUDITOR", "BOOKKEEPER", "MEMBER"];
/// The role a BILL row gets when the action names none.
pub const BILL_DEFAULT_ROLE: &str = "MEMBER";
/// The BILL S&E import columns (see the module docs for why these).
pub const BILL_CSV_COLUMNS: [&str; 4] = ["First Name", "Last Name", "Email", "Role"];
/// Spendesk's bulk-invite template columns, exactly.
pub const SPENDESK_COLUMNS: [&str; 8] = [
    "First name*",
    "Last name*",
    "Email Address*",
    "Roles",
    "Cost Center",
    "Approval Policy",
    "IBAN",
    "BIC",
];

/// Action attributes the files read.
pub mod attr {
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const ROLE: &str = "role";
    pub const COST_CENTER: &str = "cost_center";
    pub const APPROVAL_POLICY: &str = "approval_policy";
}

/// Why an import file could not be built or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The file can only add people.
    #[error(
        "FILES-0001 {person} on {connection}: a {operation} cannot go in an import file, which only \
         adds people; it needs a manual task"
    )]
    NotCreate {
        connection: String,
        person: String,
        operation: &'static str,
    },

    /// A value the app requires is missing.
    #[error(
        "FILES-0002 {person}: no {field} for the {app} import ({app} rejects the row: \
         \"Missing mandatory information\"); fill it in the source of truth"
    )]
    MissingField {
        app: &'static str,
        person: String,
        field: &'static str,
    },

    /// A role the app does not have.
    #[error(
        "FILES-0003 {person}: role {role:?} is not a BILL S&E role (ADMIN, AUDITOR, BOOKKEEPER, MEMBER)"
    )]
    InvalidRole { person: String, role: String },

    /// A value a spreadsheet would run as a formula when the CSV is opened.
    #[error(
        "FILES-0004 {person}: the {field} {value:?} starts with a character spreadsheets treat as a \
         formula (=, +, -, @); fix it in the source of truth"
    )]
    FormulaLike {
        person: String,
        field: &'static str,
        value: String,
    },

    /// Building the spreadsheet failed.
    #[error("FILES-0005 cannot build the {what}: {reason}")]
    Build { what: &'static str, reason: String },

    /// A plan id, connection or extension that is not a plain file name.
    #[error("FILES-0006 {what} {value:?} cannot be part of a file name")]
    BadName { what: &'static str, value: String },

    /// Writing the export failed.
    #[error("FILES-0007 cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FilesError {
    /// The stable code at the start of the message.
    pub fn code(&self) -> &'static str {
        match self {
            FilesError::NotCreate { .. } => "FILES-0001",
            FilesError::MissingField { .. } => "FILES-0002",
            FilesError::InvalidRole { .. } => "FILES-0003",
            FilesError::FormulaLike { .. } => "FILES-0004",
            FilesError::Build { .. } => "FILES-0005",
            FilesError::BadName { .. } => "FILES-0006",
            FilesError::Io { .. } => "FILES-0007",
        }
    }
}

/// An import file ready to be written: its bytes and file extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportFile {
    pub ext: &'static str,
    pub bytes: Vec<u8>,
}

/// The import file for a catalog app, if the app has one roster can build:
/// `bill-spend-expense` → CSV, `spendesk` → xlsx.
pub fn import_file_for(app: &str, actions: &[Action]) -> Result<Option<ImportFile>, FilesError> {
    Ok(match app {
        "bill-spend-expense" => Some(ImportFile {
            ext: "csv",
            bytes: bill_spend_csv(actions)?.into_bytes(),
        }),
        "spendesk" => Some(ImportFile {
            ext: "xlsx",
            bytes: spendesk_invite_xlsx(actions)?,
        }),
        _ => None,
    })
}

/// BILL S&E's add-only import: one row per create action (see the module
/// docs for the columns). Any other operation is refused.
pub fn bill_spend_csv(actions: &[Action]) -> Result<String, FilesError> {
    let mut rows = Vec::with_capacity(actions.len());
    for a in actions {
        require_create(a)?;
        let first = required(a, attr::FIRST_NAME, "first name", "BILL S&E")?;
        let last = required(a, attr::LAST_NAME, "last name", "BILL S&E")?;
        let email = a.email.to_string();
        let role = match value(&a.attributes, attr::ROLE) {
            None => BILL_DEFAULT_ROLE.to_string(),
            Some(r) => {
                let upper = r.to_ascii_uppercase();
                if !BILL_ROLES.contains(&upper.as_str()) {
                    return Err(FilesError::InvalidRole {
                        person: person(a),
                        role: r.to_string(),
                    });
                }
                upper
            }
        };
        for (field, v) in [
            ("first name", first),
            ("last name", last),
            ("email", email.as_str()),
        ] {
            refuse_formula(a, field, v)?;
        }
        rows.push([first.to_string(), last.to_string(), email, role]);
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    let build = |e: csv::Error| FilesError::Build {
        what: "BILL S&E CSV",
        reason: e.to_string(),
    };
    out.write_record(BILL_CSV_COLUMNS).map_err(build)?;
    for row in &rows {
        out.write_record(row).map_err(build)?;
    }
    let bytes = out.into_inner().map_err(|e| FilesError::Build {
        what: "BILL S&E CSV",
        reason: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| FilesError::Build {
        what: "BILL S&E CSV",
        reason: e.to_string(),
    })
}

/// Spendesk's bulk-invite `.xlsx`: the template's header row, then one row
/// per create action. Any other operation is refused.
pub fn spendesk_invite_xlsx(actions: &[Action]) -> Result<Vec<u8>, FilesError> {
    let mut rows = Vec::with_capacity(actions.len());
    for a in actions {
        require_create(a)?;
        let first = required(a, attr::FIRST_NAME, "first name", "Spendesk")?;
        let last = required(a, attr::LAST_NAME, "last name", "Spendesk")?;
        let get = |k| value(&a.attributes, k).unwrap_or_default().to_string();
        rows.push([
            first.to_string(),
            last.to_string(),
            a.email.to_string(),
            get(attr::ROLE),
            get(attr::COST_CENTER),
            get(attr::APPROVAL_POLICY),
            // IBAN and BIC: both or neither; roster has neither.
            String::new(),
            String::new(),
        ]);
    }
    let build = |e: rust_xlsxwriter::XlsxError| FilesError::Build {
        what: "Spendesk bulk-invite xlsx",
        reason: e.to_string(),
    };
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (col, name) in (0u16..).zip(SPENDESK_COLUMNS) {
        sheet
            .write_string_with_format(0, col, name, &bold)
            .map_err(build)?;
        sheet.set_column_width(col, 22).map_err(build)?;
    }
    for (r, row) in (1u32..).zip(&rows) {
        for (col, v) in (0u16..).zip(row) {
            // Blank cells stay empty rather than holding "" strings.
            if !v.is_empty() {
                // write_string stores text, never a formula, whatever
                // the value starts with.
                sheet.write_string(r, col, v.as_str()).map_err(build)?;
            }
        }
    }
    workbook.save_to_buffer().map_err(build)
}

/// Writes `bytes` to `<dir>/exports/<plan_id>/<connection>.<ext>`
/// atomically (replacing an earlier export of the same plan and
/// connection) and returns the path.
pub fn write_export(
    dir: &Path,
    plan_id: &str,
    connection: &str,
    ext: &str,
    bytes: &[u8],
) -> Result<PathBuf, FilesError> {
    check_component("plan id", plan_id)?;
    check_component("connection", connection)?;
    check_component("extension", ext)?;
    let folder = dir.join("exports").join(plan_id);
    let path = folder.join(format!("{connection}.{ext}"));
    let io = |source| FilesError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&folder).map_err(io)?;
    // The temporary file is created with mode 0600 on unix: these files
    // hold names and addresses.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{connection}."))
        .suffix(".tmp")
        .tempfile_in(&folder)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok(path)
}

fn require_create(a: &Action) -> Result<(), FilesError> {
    if a.operation == Operation::Create {
        Ok(())
    } else {
        Err(FilesError::NotCreate {
            connection: a.connection.to_string(),
            person: person(a),
            operation: a.operation.as_str(),
        })
    }
}

fn required<'a>(
    a: &'a Action,
    key: &str,
    field: &'static str,
    app: &'static str,
) -> Result<&'a str, FilesError> {
    value(&a.attributes, key).ok_or_else(|| FilesError::MissingField {
        app,
        person: person(a),
        field,
    })
}

/// A trimmed, non-empty attribute value.
fn value<'a>(attributes: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    attributes
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// How messages name the person: email, and employee id when known.
fn person(a: &Action) -> String {
    match &a.employee_id {
        Some(id) => format!("{} ({id})", a.email),
        None => a.email.to_string(),
    }
}

/// CSV cells a spreadsheet would evaluate (CSV injection) are refused, not
/// escaped: an escape character would be imported into the app as part of
/// the person's name.
fn refuse_formula(a: &Action, field: &'static str, v: &str) -> Result<(), FilesError> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        return Err(FilesError::FormulaLike {
            person: person(a),
            field,
            value: v.to_string(),
        });
    }
    Ok(())
}

fn check_component(what: &'static str, value: &str) -> Result<(), FilesError> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(FilesError::BadName {
            what,
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    use roster_core::{AccountKey, ConnectionId, Email, EmployeeId};

    use super::*;

    fn create(email: &str, attrs: &[(&str, &str)]) -> Action {
        Action {
            connection: ConnectionId::new("spend"),
            operation: Operation::Create,
            employee_id: Some(EmployeeId::new("E1")),
            email: Email::parse(email).unwrap(),
            account: None,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            changes: Vec::new(),
            reason: "joined".into(),
            cause: roster_core::Cause::Grant,
        }
    }

    fn deactivate(email: &str) -> Action {
        Action {
            operation: Operation::Deactivate,
            account: Some(AccountKey::new("u-1")),
            ..create(email, &[])
        }
    }

    fn ada() -> Action {
        create(
            "ada@example.com",
            &[
                ("first_name", "Ada"),
                ("last_name", "Lovelace, Countess"),
                ("role", "admin"),
                ("cost_center", "R&D"),
                ("approval_policy", "Engineering"),
            ],
        )
    }

    #[test]
    fn bill_csv_has_one_row_per_create_with_mapped_roles() {
        let bob = create(
            "bob@example.com",
            &[("first_name", "Bob"), ("last_name", "Ng")],
        );
        let csv = bill_spend_csv(&[ada(), bob]).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<_> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, BILL_CSV_COLUMNS);
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(
            rows,
            [
                // A comma in a value is quoted, not a new column.
                ["Ada", "Lovelace, Countess", "ada@example.com", "ADMIN"],
                ["Bob", "Ng", "bob@example.com", "MEMBER"],
            ]
        );
    }

    #[test]
    fn bill_csv_refuses_what_an_import_cannot_do() {
        let err = bill_spend_csv(&[ada(), deactivate("eve@example.com")]).unwrap_err();
        assert_eq!(err.code(), "FILES-0001");
        let msg = err.to_string();
        assert!(
            msg.contains("eve@example.com") && msg.contains("deactivate"),
            "{msg}"
        );

        let err = bill_spend_csv(&[create(
            "x@example.com",
            &[("first_name", "X"), ("last_name", "Y"), ("role", "owner")],
        )])
        .unwrap_err();
        assert_eq!(err.code(), "FILES-0003");
        assert!(err.to_string().contains("\"owner\""), "{err}");

        let err = bill_spend_csv(&[create("x@example.com", &[("first_name", "X")])]).unwrap_err();
        assert_eq!(err.code(), "FILES-0002");
        assert!(err.to_string().contains("last name"), "{err}");

        let err = bill_spend_csv(&[create(
            "x@example.com",
            &[
                ("first_name", "=HYPERLINK(\"http://x\")"),
                ("last_name", "Y"),
            ],
        )])
        .unwrap_err();
        assert_eq!(err.code(), "FILES-0004");
    }

    #[test]
    fn spendesk_xlsx_has_the_template_columns_and_the_values() {
        let bob = create(
            "bob@example.com",
            &[("first_name", " Bob "), ("last_name", "Ng")],
        );
        let bytes = spendesk_invite_xlsx(&[ada(), bob]).unwrap();
        let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
        let range = book.worksheet_range_at(0).unwrap().unwrap();
        let rows: Vec<Vec<String>> = range
            .rows()
            .map(|r| {
                r.iter()
                    .map(|c| match c {
                        Data::String(s) => s.clone(),
                        Data::Empty => String::new(),
                        other => panic!("unexpected cell {other:?}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], SPENDESK_COLUMNS);
        assert_eq!(
            rows[1],
            [
                "Ada",
                "Lovelace, Countess",
                "ada@example.com",
                "admin",
                "R&D",
                "Engineering",
                "",
                ""
            ]
        );
        // Missing optional values are blank; IBAN and BIC are both blank.
        assert_eq!(
            rows[2],
            ["Bob", "Ng", "bob@example.com", "", "", "", "", ""]
        );
    }

    #[test]
    fn spendesk_xlsx_refuses_rows_spendesk_would_reject() {
        let err = spendesk_invite_xlsx(&[create("noname@example.com", &[("last_name", "Z")])])
            .unwrap_err();
        assert_eq!(err.code(), "FILES-0002");
        let msg = err.to_string();
        assert!(msg.contains("noname@example.com (E1)"), "{msg}");
        assert!(msg.contains("first name"), "{msg}");
        assert!(msg.contains("Missing mandatory information"), "{msg}");

        let err = spendesk_invite_xlsx(&[deactivate("eve@example.com")]).unwrap_err();
        assert_eq!(err.code(), "FILES-0001");
    }

    #[test]
    fn import_files_are_chosen_by_app() {
        let f = import_file_for("bill-spend-expense", &[ada()])
            .unwrap()
            .unwrap();
        assert_eq!(f.ext, "csv");
        assert!(
            String::from_utf8(f.bytes)
                .unwrap()
                .starts_with("First Name,")
        );
        let f = import_file_for("spendesk", &[ada()]).unwrap().unwrap();
        assert_eq!(f.ext, "xlsx");
        assert_eq!(&f.bytes[..2], b"PK", "an xlsx is a zip archive");
        assert!(import_file_for("expensify", &[ada()]).unwrap().is_none());
    }

    #[test]
    fn exports_are_written_atomically_under_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_export(dir.path(), "p-0192", "bill", "csv", b"first").unwrap();
        assert_eq!(path, dir.path().join("exports/p-0192/bill.csv"));
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // A second export of the same plan and connection replaces it.
        let again = write_export(dir.path(), "p-0192", "bill", "csv", b"second").unwrap();
        assert_eq!(again, path);
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["bill.csv"], "no temporary files are left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{mode:o}");
        }

        for (plan, conn, ext) in [
            ("../escape", "bill", "csv"),
            ("p", "a/b", "csv"),
            ("p", "bill", ""),
            ("..", "bill", "csv"),
            ("p", ".hidden", "csv"),
        ] {
            let err = write_export(dir.path(), plan, conn, ext, b"x").unwrap_err();
            assert_eq!(err.code(), "FILES-0006", "{plan} {conn} {ext}");
        }
        assert!(!dir.path().join("escape").exists());
    }
}
