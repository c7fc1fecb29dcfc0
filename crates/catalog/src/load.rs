//! Loading and validating catalog files.
//!
//! The built-in catalog is the repository's `catalog/` directory, compiled
//! into the binary. A directory given at load time overrides it: each
//! `*.toml` file there replaces the built-in record with the same id or adds
//! a new one. Files are read in name order so the result and the order of
//! error messages never depend on the file system.
//!
//! # What validation guarantees
//!
//! A [`Catalog`] that loaded is internally consistent:
//!
//! * every file's `id` equals its file stem and is `[a-z0-9-]+`;
//! * no unknown fields anywhere (typos are errors, not missing facts);
//! * every fact names a source that exists in the file's `[sources]`, and
//!   has an as-of date (its own, or its source's) in `YYYY-MM[-DD]` form;
//! * every IdP an app refers to (paths, SCIM connectors, SSO) is a record of
//!   `kind = "idp"` in the same catalog;
//! * paths agree with the facts: a `scim` path needs some source saying
//!   SCIM is available, a `csv` path for an operation needs the CSV facts to
//!   allow it, `idp` and `jit` paths name their IdPs, reason templates use
//!   only placeholders they can fill, and `manual` is never listed (it is
//!   implicit and always available);
//! * each lifecycle operation has a non-empty manual checklist;
//! * a `connector` is named only on paths roster drives (`scim`, `api`,
//!   `idp`; `CAT-0004`), is `[a-z0-9-]+` (`CAT-0005`), and a `scim` or `api`
//!   offer served by one lists the credential kinds it needs (`CAT-0006`).
//!   Whether roster has an implementation by that name is the registry's
//!   to say (`roster_connectors::registry`), when a connection uses it.
//!
//! Errors name the file, the field and the reason; TOML syntax errors name
//! the line and column. All problems found are reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path as FsPath;

use include_dir::{Dir, include_dir};
use roster_core::Operation;
use roster_core::text::edit_distance;
use serde::Serialize;

use crate::fact::check_as_of;
use crate::model::{App, AppKind, Path, ScimClientSettings, Tri};
use crate::runbook::{self, Runbook};

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../catalog");

/// A line and column (both 1-based) in a catalog file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One thing wrong with a catalog file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `catalog/spendesk.toml` for built-in files, the path as given for
    /// override files.
    pub file: String,
    /// Dotted field path (`scim.version`, `paths[2].idps`); `None` for
    /// syntax errors and problems with the file as a whole.
    pub field: Option<String>,
    /// A stable code for the kinds of problem that have one (`CAT-0004`:
    /// see [`codes`]); it starts the reason in messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub reason: String,
    pub location: Option<Location>,
}

/// Stable codes of individual validation problems (the error as a whole is
/// [`CatalogError::Invalid`]). Never renumbered.
pub mod codes {
    /// A `connector` on a path roster cannot drive (csv, jit, browser).
    pub const CONNECTOR_ON_MANUAL_PATH: &str = "CAT-0004";
    /// A `connector` name that is not lowercase letters, digits and `-`.
    pub const BAD_CONNECTOR_NAME: &str = "CAT-0005";
    /// A `scim` or `api` offer served by a connector lists no `credentials`,
    /// so nothing says what kind of secret a connection must hold.
    pub const CONNECTOR_WITHOUT_CREDENTIALS: &str = "CAT-0006";
    /// A `kind = "app"` record without a `[deactivation]` section: roster
    /// must know whether deactivating suspends or deletes.
    pub const MISSING_DEACTIVATION: &str = "CAT-0007";
    /// `[credentials]` gives a `max_days` but a source says credentials
    /// never expire.
    pub const CREDENTIAL_LIFETIME_CONTRADICTS: &str = "CAT-0008";
    /// `[scim.client]` has a value the generic SCIM client does not know,
    /// or names a source the record does not list.
    pub const BAD_SCIM_CLIENT: &str = "CAT-0009";
    /// `[rest]` is malformed (an unknown paging style, a pointer that is
    /// not one, a missing token endpoint), or an `api` path names the
    /// `rest` connector in a record without `[rest]`.
    pub const BAD_REST_CLIENT: &str = "CAT-0010";
    /// A browser runbook (`catalog/runbooks/*.toml`) is malformed: see
    /// [`crate::runbook`] for its rules.
    pub const BAD_RUNBOOK: &str = "CAT-0011";
    /// A runbook names an element by CSS alone.
    pub const CSS_ONLY_SELECTOR: &str = "CAT-0012";
    /// A runbook for an app the catalog lacks, or that offers no `browser`
    /// path for the runbook's operation, or names a source the app's
    /// record does not list.
    pub const RUNBOOK_WITHOUT_PATH: &str = "CAT-0013";
    /// A runbook types a secret (`{password}`, `{totp}`) outside sign-in.
    pub const SECRET_OUTSIDE_SIGNIN: &str = "CAT-0014";
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let coded;
        let reason = match self.code {
            Some(c) => {
                coded = format!("{c}: {}", self.reason);
                &coded
            }
            None => &self.reason,
        };
        match (&self.field, self.location) {
            (None, Some(l)) => write!(f, "{}:{}:{}: {}", self.file, l.line, l.column, reason),
            (None, None) => write!(f, "{}: {}", self.file, reason),
            (Some(field), None) => write!(f, "{}: {}: {}", self.file, field, reason),
            (Some(field), Some(l)) => write!(
                f,
                "{}: {}: {} (line {}, column {})",
                self.file, field, reason, l.line, l.column
            ),
        }
    }
}

/// Errors from loading the catalog or looking an app up.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// CAT-0001: one or more files are malformed or inconsistent.
    #[error("CAT-0001 {}", join_lines(.0))]
    Invalid(Vec<Problem>),
    /// CAT-0002: a file or directory could not be read.
    #[error("CAT-0002 {path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// CAT-0003: no app with this id.
    #[error("CAT-0003 {}", unknown_app_message(.id, .closest.as_deref(), .known))]
    UnknownApp {
        id: String,
        closest: Option<String>,
        known: Vec<String>,
    },
}

impl CatalogError {
    /// A stable code for logs, API errors and documentation.
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::Invalid(_) => "CAT-0001",
            CatalogError::Io { .. } => "CAT-0002",
            CatalogError::UnknownApp { .. } => "CAT-0003",
        }
    }

    /// The individual problems of an [`CatalogError::Invalid`] error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            CatalogError::Invalid(p) => p,
            _ => &[],
        }
    }
}

fn join_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn unknown_app_message(id: &str, closest: Option<&str>, known: &[String]) -> String {
    let mut s = format!("unknown app {id:?}");
    if let Some(c) = closest {
        s.push_str(&format!("; did you mean {c:?}?"));
    }
    s.push_str(&format!(" Known apps: {}", known.join(", ")));
    s
}

/// The set of app records, keyed and iterated by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Catalog {
    apps: BTreeMap<String, App>,
    /// Browser runbooks by id (`spendesk-deactivate`).
    runbooks: BTreeMap<String, Runbook>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::load(None)
    }

    /// The built-in catalog with `override_dir`'s files replacing or adding
    /// records by id.
    pub fn load(override_dir: Option<&FsPath>) -> Result<Catalog, CatalogError> {
        let mut files: Vec<(String, String)> = BUILTIN
            .files()
            .filter(|f| is_toml(f.path()))
            .map(|f| {
                let name = format!("catalog/{}", f.path().display());
                let text = f.contents_utf8().map(str::to_string);
                (name, text)
            })
            .map(|(name, text)| match text {
                Some(t) => Ok((name, t)),
                None => Err(CatalogError::Invalid(vec![Problem {
                    code: None,
                    file: name,
                    field: None,
                    reason: "file is not valid UTF-8".into(),
                    location: None,
                }])),
            })
            .collect::<Result<_, _>>()?;
        files.sort();
        let mut problems = Vec::new();
        let mut apps = parse_all(&files, &mut problems);
        let mut books = builtin_runbook_files();
        if let Some(dir) = override_dir {
            for (id, app) in parse_all(&read_dir(dir)?, &mut problems) {
                apps.insert(id, app);
            }
            let sub = dir.join("runbooks");
            if sub.is_dir() {
                books.extend(read_dir(&sub)?);
            }
        }
        let runbooks = parse_runbooks(&books, &apps, &mut problems);
        finish(apps, runbooks, problems)
    }

    /// Only the records in `dir`, without the built-in ones.
    pub fn from_dir(dir: &FsPath) -> Result<Catalog, CatalogError> {
        let mut problems = Vec::new();
        let apps = parse_all(&read_dir(dir)?, &mut problems);
        let sub = dir.join("runbooks");
        let books = if sub.is_dir() {
            read_dir(&sub)?
        } else {
            Vec::new()
        };
        let runbooks = parse_runbooks(&books, &apps, &mut problems);
        finish(apps, runbooks, problems)
    }

    /// The runbook for `op` in `app`, if the catalog has one.
    pub fn runbook(&self, app: &str, op: Operation) -> Option<&Runbook> {
        self.runbooks.get(&format!("{app}-{}", op.as_str()))
    }

    /// The runbooks for `app`, sorted by id.
    pub fn runbooks_of(&self, app: &str) -> Vec<&Runbook> {
        self.runbooks.values().filter(|r| r.app == app).collect()
    }

    /// Every runbook, sorted by id.
    pub fn runbooks(&self) -> impl Iterator<Item = &Runbook> {
        self.runbooks.values()
    }

    /// Parses one file's text. `file` is the name used in messages and must
    /// end in `<id>.toml`. Cross-record checks (IdP references) need the
    /// whole catalog and are not done here.
    pub fn parse_app(file: &str, text: &str) -> Result<App, CatalogError> {
        let mut problems = Vec::new();
        match parse_one(file, text, &mut problems) {
            Some(app) if problems.is_empty() => Ok(app),
            _ => Err(CatalogError::Invalid(problems)),
        }
    }

    pub fn get(&self, id: &str) -> Option<&App> {
        self.apps.get(id)
    }

    /// Like [`Catalog::get`], with an error that lists the known ids and
    /// suggests the closest one.
    pub fn require(&self, id: &str) -> Result<&App, CatalogError> {
        self.apps.get(id).ok_or_else(|| {
            let closest = self
                .apps
                .values()
                .map(|a| {
                    let by_id = edit_distance(&id.to_lowercase(), &a.id);
                    let by_name = edit_distance(&id.to_lowercase(), &a.name.to_lowercase());
                    (by_id.min(by_name), a.id.clone())
                })
                .min()
                .filter(|(d, _)| *d <= 3.max(id.len() / 3))
                .map(|(_, id)| id);
            CatalogError::UnknownApp {
                id: id.to_string(),
                closest,
                known: self.apps.keys().cloned().collect(),
            }
        })
    }

    /// All records, sorted by id.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// The ids of all records of `kind = "idp"`, sorted.
    pub fn idp_ids(&self) -> Vec<&str> {
        self.apps
            .values()
            .filter(|a| a.kind == AppKind::Idp)
            .map(|a| a.id.as_str())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

fn is_toml(p: &FsPath) -> bool {
    p.extension().is_some_and(|e| e == "toml")
}

fn read_dir(dir: &FsPath) -> Result<Vec<(String, String)>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !path.is_file() || !is_toml(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
            path: path.display().to_string(),
            source,
        })?;
        files.push((path.display().to_string(), text));
    }
    files.sort();
    Ok(files)
}

/// The built-in `catalog/runbooks/*.toml`, sorted by name.
fn builtin_runbook_files() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = BUILTIN
        .get_dir("runbooks")
        .map(|d| {
            d.files()
                .filter(|f| is_toml(f.path()))
                .filter_map(|f| {
                    Some((
                        format!("catalog/{}", f.path().display()),
                        f.contents_utf8()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Parses and checks runbook files (a later file with the same id
/// replaces an earlier one: override directories come last).
fn parse_runbooks(
    files: &[(String, String)],
    apps: &BTreeMap<String, App>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Runbook> {
    let mut out = BTreeMap::new();
    for (name, text) in files {
        let mut found = Vec::new();
        let book = runbook::parse(name, text, &mut found);
        if let Some(b) = &book {
            match apps.get(&b.app) {
                None => found.push((
                    Some("app".into()),
                    codes::RUNBOOK_WITHOUT_PATH,
                    format!("no app {:?} in the catalog", b.app),
                )),
                Some(app) => {
                    if !app
                        .paths
                        .iter()
                        .any(|o| o.path == Path::Browser && o.ops.contains(&b.operation))
                    {
                        found.push((
                            Some("operation".into()),
                            codes::RUNBOOK_WITHOUT_PATH,
                            format!(
                                "{} offers no browser path for {}; add a [[paths]] offer first",
                                b.app, b.operation
                            ),
                        ));
                    }
                    if !app.sources.contains_key(&b.source) {
                        found.push((
                            Some("source".into()),
                            codes::RUNBOOK_WITHOUT_PATH,
                            format!("{:?} is not a source of {}'s record", b.source, b.app),
                        ));
                    }
                }
            }
        }
        let clean = found.is_empty();
        problems.extend(found.into_iter().map(|(field, code, reason)| Problem {
            file: name.clone(),
            field,
            code: Some(code),
            reason,
            location: None,
        }));
        if let (Some(b), true) = (book, clean) {
            out.insert(b.id.clone(), b);
        }
    }
    out
}

fn parse_all(files: &[(String, String)], problems: &mut Vec<Problem>) -> BTreeMap<String, App> {
    let mut apps = BTreeMap::new();
    for (name, text) in files {
        if let Some(app) = parse_one(name, text, problems) {
            apps.insert(app.id.clone(), app);
        }
    }
    apps
}

fn finish(
    apps: BTreeMap<String, App>,
    runbooks: BTreeMap<String, Runbook>,
    mut problems: Vec<Problem>,
) -> Result<Catalog, CatalogError> {
    check_idp_references(&apps, &mut problems);
    if problems.is_empty() {
        Ok(Catalog { apps, runbooks })
    } else {
        Err(CatalogError::Invalid(problems))
    }
}

fn location_of(text: &str, offset: usize) -> Location {
    // toml spans fall on char boundaries; `get` keeps a bad one from panicking.
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, tail)| tail)
        .chars()
        .count()
        + 1;
    Location { line, column }
}

/// Parses and validates one file; pushes problems and returns the record if
/// it deserialized (validation problems still return it, so cross-record
/// checks can run and report everything in one go).
fn parse_one(file: &str, text: &str, problems: &mut Vec<Problem>) -> Option<App> {
    let doc = match toml::Deserializer::parse(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem {
                code: None,
                file: file.to_string(),
                field: None,
                reason: format!("TOML syntax error: {}", e.message().trim()),
                location: e.span().map(|s| location_of(text, s.start)),
            });
            return None;
        }
    };
    let mut app: App = match serde_path_to_error::deserialize(doc) {
        Ok(a) => a,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            problems.push(Problem {
                code: None,
                file: file.to_string(),
                field: field_name(&path),
                reason: inner.message().trim().to_string(),
                location: inner.span().map(|s| location_of(text, s.start)),
            });
            return None;
        }
    };
    app.origin = file.to_string();
    validate(file, &mut app, problems);
    check_connectors(file, &app, problems);
    check_lifecycle(file, &app, problems);
    check_rest(file, &app, problems);
    Some(app)
}

/// The `[rest]` table is well formed, and present where a path names the
/// declarative REST connector.
fn check_rest(file: &str, app: &App, problems: &mut Vec<Problem>) {
    let mut push = |field: String, reason: String| {
        problems.push(Problem {
            code: Some(codes::BAD_REST_CLIENT),
            file: file.to_string(),
            field: Some(field),
            reason,
            location: None,
        });
    };
    if let Some(rest) = &app.rest {
        let sources: Vec<&str> = app.sources.keys().map(String::as_str).collect();
        for (field, reason) in crate::rest::check(rest, &sources) {
            push(field, reason);
        }
    }
    for (i, offer) in app.paths.iter().enumerate() {
        if offer.connector.as_deref() == Some(crate::model::REST_CONNECTOR) {
            if offer.path != Path::Api {
                push(
                    format!("paths[{i}].connector"),
                    format!(
                        "the rest connector carries out the api path, not {}",
                        offer.path
                    ),
                );
            } else if app.rest.is_none() {
                push(
                    format!("paths[{i}].connector"),
                    "names the declarative rest connector, but the record has no [rest] table describing the API".into(),
                );
            }
        }
    }
}

/// What the record says about deactivation and credential lifetimes is
/// there and consistent.
fn check_lifecycle(file: &str, app: &App, problems: &mut Vec<Problem>) {
    if let Some(c) = &app.scim.client {
        let mut bad = |field: &str, reason: String| {
            problems.push(Problem {
                code: Some(codes::BAD_SCIM_CLIENT),
                file: file.to_string(),
                field: Some(format!("scim.client.{field}")),
                reason,
                location: None,
            });
        };
        for (field, value, allowed) in [
            ("auth", &c.auth, &ScimClientSettings::AUTH[..]),
            ("patch", &c.patch, &ScimClientSettings::PATCH[..]),
            (
                "deprovision",
                &c.deprovision,
                &ScimClientSettings::DEPROVISION[..],
            ),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                bad(
                    field,
                    format!("expected one of {}, got {v:?}", allowed.join(", ")),
                );
            }
        }
        let oauth = c.auth.as_deref() == Some("oauth2-client-credentials");
        for (field, value) in [("token_url", &c.token_url), ("scope", &c.scope)] {
            if value.is_some() && !oauth {
                bad(
                    field,
                    "applies only with auth = \"oauth2-client-credentials\"".into(),
                );
            }
        }
        if let Some(u) = &c.token_url
            && !u.starts_with("https://")
        {
            bad(
                "token_url",
                format!(
                    "{u:?} is not an https URL (a tenant's own endpoint goes in the connection's token_url option)"
                ),
            );
        }
        if !app.sources.contains_key(&c.source) {
            bad(
                "source",
                format!(
                    "source {:?} is not in [sources] (known: {})",
                    c.source,
                    app.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    if app.kind == AppKind::App && app.deactivation.is_none() {
        problems.push(Problem {
            code: Some(codes::MISSING_DEACTIVATION),
            file: file.to_string(),
            field: Some("deactivation".into()),
            reason: "an app record needs a [deactivation] section (kind = suspend, soft-delete, hard-delete or \"not documented\"; reversible; frees_seat)".into(),
            location: None,
        });
    }
    if let Some(c) = &app.credentials
        && c.max_days.is_some()
        && c.expires.any(|v| *v == Tri::No)
    {
        problems.push(Problem {
            code: Some(codes::CREDENTIAL_LIFETIME_CONTRADICTS),
            file: file.to_string(),
            field: Some("credentials.max_days".into()),
            reason: "a source says the credentials never expire (expires = no); drop max_days or keep both claims under expires".into(),
            location: None,
        });
    }
}

/// What the record says about connector implementations: named only where
/// roster can drive the path, well formed, and with the credential kind the
/// connection's secret must be.
fn check_connectors(file: &str, app: &App, problems: &mut Vec<Problem>) {
    let mut push = |field: String, code: &'static str, reason: String| {
        problems.push(Problem {
            code: Some(code),
            file: file.to_string(),
            field: Some(field),
            reason,
            location: None,
        });
    };
    for (i, offer) in app.paths.iter().enumerate() {
        let field = format!("paths[{i}].connector");
        if let Some(name) = &offer.connector {
            match offer.path {
                Path::Csv | Path::Jit | Path::Browser | Path::Manual => {
                    push(
                        field.clone(),
                        codes::CONNECTOR_ON_MANUAL_PATH,
                        format!(
                            "a {} path is carried out by a person or by the app itself; roster runs no connector for it",
                            offer.path
                        ),
                    );
                    continue;
                }
                Path::Scim | Path::Api | Path::Idp => {}
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                push(
                    field.clone(),
                    codes::BAD_CONNECTOR_NAME,
                    format!("expected lowercase letters, digits and '-', got {name:?}"),
                );
            }
        }
        if matches!(offer.path, Path::Scim | Path::Api)
            && offer.connector().is_some()
            && offer.credentials.is_empty()
        {
            push(
                format!("paths[{i}].credentials"),
                codes::CONNECTOR_WITHOUT_CREDENTIALS,
                format!(
                    "the {} path is served by connector {:?}, which needs a credential: list its kind (scim-token, api-token, api-client or partner-credentials)",
                    offer.path,
                    offer.connector().unwrap_or_default()
                ),
            );
        }
    }
}

/// Turns serde's path into the field a person would name: the `.value`
/// inside a fact is the fact, and the root is no field at all.
fn field_name(path: &str) -> Option<String> {
    if path == "." || path.is_empty() {
        return None;
    }
    let p = path.strip_suffix(".value").unwrap_or(path);
    Some(p.to_string())
}

fn validate(file: &str, app: &mut App, problems: &mut Vec<Problem>) {
    let mut push = |field: &str, reason: String| {
        problems.push(Problem {
            code: None,
            file: file.to_string(),
            field: Some(field.to_string()),
            reason,
            location: None,
        });
    };

    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    if app.id.is_empty()
        || !app
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        push(
            "id",
            format!(
                "expected lowercase letters, digits and '-', got {:?}",
                app.id
            ),
        );
    } else if app.id != stem {
        push(
            "id",
            format!("{:?} does not match the file name {stem:?}.toml", app.id),
        );
    }
    if app.name.trim().is_empty() {
        push("name", "must not be empty".into());
    }

    for (key, src) in &app.sources {
        let field = format!("sources.{key}");
        if src.reference.trim().is_empty() {
            push(&format!("{field}.ref"), "must not be empty".into());
        }
        if !src.as_of.is_empty()
            && let Err(why) = check_as_of(&src.as_of)
        {
            push(&format!("{field}.as_of"), why);
        }
    }

    // Resolve each claim's as-of date from its source and check both exist.
    let sources = app.sources.clone();
    let known_keys = || sources.keys().cloned().collect::<Vec<_>>().join(", ");
    app.visit_provenance(&mut |path, source, as_of| {
        let Some(src) = sources.get(source) else {
            push(
                &path,
                format!(
                    "source {source:?} is not in [sources] (known: {})",
                    known_keys()
                ),
            );
            return;
        };
        if as_of.is_empty() {
            if src.as_of.is_empty() {
                push(
                    &path,
                    format!("no as_of on the fact, and source {source:?} has none either"),
                );
                return;
            }
            as_of.clone_from(&src.as_of);
        } else if let Err(why) = check_as_of(as_of) {
            push(&format!("{path}.as_of"), why);
        }
    });

    if let (Some(d), Some(m)) = (
        &app.pagination.default_page_size,
        &app.pagination.max_page_size,
    ) && d.value() > m.value()
    {
        push(
            "pagination.default_page_size",
            format!(
                "default page size {} exceeds the max page size {}",
                d.value(),
                m.value()
            ),
        );
    }

    let csv = &app.csv;
    if csv.available.any(|v| *v == Tri::Yes) {
        for (name, f) in [
            ("adds", &csv.adds),
            ("updates", &csv.updates),
            ("removes", &csv.removes),
        ] {
            if f.is_none() {
                push(
                    &format!("csv.{name}"),
                    "required when csv.available is yes".into(),
                );
            }
        }
    }

    for op in Operation::ALL {
        let Some(steps) = app.manual.get(op) else {
            continue;
        };
        let blank = |c: &Vec<String>| c.is_empty() || c.iter().any(|s| s.trim().is_empty());
        if steps.any(blank) {
            push(
                &format!("manual.{}", op.as_str()),
                "a checklist needs at least one step, and no step may be blank".into(),
            );
        }
    }

    for (i, offer) in app.paths.iter().enumerate() {
        let field = format!("paths[{i}]");
        if offer.ops.is_empty() {
            push(&format!("{field}.ops"), "lists no operation".into());
        }
        if offer.reason.trim().is_empty() {
            push(&format!("{field}.reason"), "must not be empty".into());
        }
        check_placeholders(
            &offer.reason,
            !offer.idps.is_empty(),
            !offer.plans.is_empty(),
        )
        .unwrap_or_else(|why| push(&format!("{field}.reason"), why));
        match offer.path {
            Path::Manual => push(
                &format!("{field}.path"),
                "manual is always available; describe it under [manual] instead".into(),
            ),
            Path::Idp | Path::Jit if offer.idps.is_empty() => push(
                &format!("{field}.idps"),
                format!("a {} path must name the IdPs it works with", offer.path),
            ),
            Path::Scim if !app.scim.available.any(|v| *v == Tri::Yes) => push(
                &format!("{field}.path"),
                "a scim path needs scim.available = true from at least one source".into(),
            ),
            Path::Csv => {
                for op in &offer.ops {
                    if app.csv.supports(*op) == Some(false) {
                        push(
                            &format!("{field}.ops"),
                            format!(
                                "csv path offers {} but the csv facts say the import cannot {}",
                                op.as_str(),
                                csv_verb(*op)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn csv_verb(op: Operation) -> &'static str {
    match op {
        Operation::Create => "add people",
        Operation::Update => "update people",
        Operation::Deactivate | Operation::Delete => "remove people",
        Operation::Read | Operation::Reactivate => "do that",
    }
}

fn check_placeholders(template: &str, has_idp: bool, has_plan: bool) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err("unclosed '{' in reason".into());
        };
        match &after[..end] {
            "app" => {}
            "idp" if has_idp => {}
            "plan" if has_plan => {}
            "idp" => return Err("uses {idp} but the path lists no idps".into()),
            "plan" => return Err("uses {plan} but the path lists no plans".into()),
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}}; use {{app}}, {{idp}} or {{plan}}"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

fn check_idp_references(apps: &BTreeMap<String, App>, problems: &mut Vec<Problem>) {
    let idps: Vec<&str> = apps
        .values()
        .filter(|a| a.kind == AppKind::Idp)
        .map(|a| a.id.as_str())
        .collect();
    for app in apps.values() {
        let mut refs: Vec<(String, &String)> = Vec::new();
        for (i, offer) in app.paths.iter().enumerate() {
            refs.extend(offer.idps.iter().map(|x| (format!("paths[{i}].idps"), x)));
        }
        if let Some(f) = &app.scim.idp_only_connectors {
            refs.extend(
                f.claims()
                    .iter()
                    .flat_map(|c| c.value.iter())
                    .map(|x| ("scim.idp_only_connectors".to_string(), x)),
            );
        }
        if let Some(f) = &app.sso.idps {
            refs.extend(
                f.claims()
                    .iter()
                    .flat_map(|c| c.value.iter())
                    .map(|x| ("sso.idps".to_string(), x)),
            );
        }
        for (field, idp) in refs {
            if !idps.contains(&idp.as_str()) {
                problems.push(Problem {
                    code: None,
                    file: app.origin.clone(),
                    field: Some(field),
                    reason: format!(
                        "unknown IdP {idp:?}; IdPs in the catalog: {}",
                        idps.join(", ")
                    ),
                    location: None,
                });
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(location_of(t, 0), Location { line: 1, column: 1 });
        assert_eq!(location_of(t, 7), Location { line: 2, column: 2 });
    }

    #[test]
    fn placeholders() {
        assert!(check_placeholders("{app} via {idp} on {plan}", true, true).is_ok());
        assert!(check_placeholders("{app} via {idp}", false, false).is_err());
        assert!(check_placeholders("{who}", true, true).is_err());
        assert!(check_placeholders("{app", true, true).is_err());
    }
}
