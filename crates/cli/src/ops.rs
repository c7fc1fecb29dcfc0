//! `roster plan`, `apply`, `audit`, `sim`: the commands that run against a
//! configured deployment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use roster_catalog::{App, Catalog, ConnectionSettings};
use roster_connectors::SecretString;
use roster_connectors::driver::{Progress, REPORT_WAITS_OVER};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::{ConnectionId, Policy, plan::render};
use roster_engine::config::Config;
use roster_engine::human::AppBinding;
use roster_engine::{Engine, PersonRef, RefreshOptions, Roster};
use roster_store::{PlanId, Store};

#[derive(Args)]
pub struct PlanArgs {
    /// The roster config file.
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the plan to this file: JSON with its `id`, `hash` and
    /// `plan`, as `--json` prints.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Plan only this connection (the others are neither read nor planned).
    #[arg(long)]
    connection: Option<String>,
    /// Plan only this person (an address or an employee ID), from what the
    /// store holds and a fresh read of the apps.
    #[arg(long)]
    person: Option<String>,
    /// Confirm that the people source is right although it shrank, or
    /// terminated many people at once, since the last accepted snapshot
    /// (the source-change guard). It becomes the accepted snapshot, and
    /// this plan carries the deactivations it asks for.
    #[arg(long)]
    accept_source_change: bool,
    /// Who confirms a source change (recorded in the audit log). Defaults
    /// Ignored unless it names someone else, which is refused: roster records
    /// the operator who runs the command (see `[operators]` in the config).
    #[arg(long, hide = true)]
    by: Option<String>,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The roster config file.
    #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    config: PathBuf,
    /// The plan to apply (an ID printed by `roster plan`), or `latest`.
    plan: String,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain and the signed checkpoints its
    /// witnesses hold; names the first problem.
    Verify {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// Also check the checkpoints in this JSON-lines file (e.g. what a
        /// webhook witness received). Repeatable.
        #[arg(long = "checkpoints", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
    },
    /// Export audit events as JSON lines.
    Export(crate::report::AuditExportArgs),
    /// Print the public key that signs audit checkpoints (created on first use).
    Key {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
    /// Sign the chain head now and deliver queued checkpoints to the witnesses.
    Checkpoint {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
    },
    /// Erase event payloads (personal data) while the chain still verifies:
    /// each becomes {"erased": true, "reason": ...}, and an audit.erased
    /// event records what was erased (not the data).
    Erase {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// Events about this person (employee ID or email; the person's
        /// other addresses and ID are found in the store).
        #[arg(long, value_name = "EMPLOYEE_ID|EMAIL")]
        person: Option<String>,
        /// Events before this date (2026-01-01, RFC 3339 or unix ms): a
        /// retention policy.
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
        /// Why (recorded): an erasure request's reference, a retention rule.
        #[arg(long)]
        reason: String,
        /// Ignored unless it names someone else, which is refused (see `--by`).
        #[arg(long, hide = true)]
        actor: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// The Expensify Integration Server simulator.
    Expensify {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "sim_partner")]
        partner_user_id: String,
        #[arg(long, default_value = "sim-secret")]
        partner_user_secret: String,
        /// How many workspaces (policies) to seed, each with 10 employees.
        #[arg(long, default_value_t = 3)]
        policies: usize,
    },
    /// A generic SCIM 2.0 app (Bill.com / BILL S&E direct SCIM).
    ScimApp {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "sim-scim-token")]
        token: String,
        /// Users to seed.
        #[arg(long, default_value_t = 25)]
        users: usize,
    },
    /// BILL Spend & Expense's v3 spend users API.
    BillSpend {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "sim-bill-token")]
        api_token: String,
        #[arg(long, default_value_t = 25)]
        users: usize,
    },
    /// Spendesk's read-only members API.
    Spendesk {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "sim-spendesk-key")]
        client_id: String,
        #[arg(long, default_value = "sim-spendesk-secret")]
        client_secret: String,
        #[arg(long, default_value_t = 25)]
        members: usize,
    },
    /// Okta's users and app-assignment endpoints.
    Okta {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "sim-okta-token")]
        api_token: String,
        #[arg(long, default_value_t = 25)]
        users: usize,
    },
}

/// `roster plan` computed and stored a plan, but some connection could
/// not be read, or only in part: the command exits with
/// [`PartialRead::EXIT_CODE`] so scripts and schedulers notice.
#[derive(Debug)]
pub(crate) struct PartialRead {
    /// (connection, what went wrong).
    pub problems: Vec<(String, String)>,
}

impl PartialRead {
    pub const EXIT_CODE: u8 = 3;
}

impl std::fmt::Display for PartialRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the plan was computed, but {} connection(s) could not be read completely: ",
            self.problems.len()
        )?;
        let list: Vec<String> = self
            .problems
            .iter()
            .map(|(c, why)| format!("{c} ({why})"))
            .collect();
        write!(f, "{}", list.join("; "))
    }
}

impl std::error::Error for PartialRead {}

pub(crate) fn load_config(path: &Path) -> Result<Config> {
    let config = Config::load(path).with_context(|| {
        format!(
            "cannot use config {} (see README \"Running roster for real\")",
            path.display()
        )
    })?;
    // `[notify]` is checked at load too (its secrets are read later).
    roster_engine::notify::Notifier::check(&config.notify, config.allow_private_network)
        .with_context(|| format!("cannot use config {}", path.display()))?;
    Ok(config)
}

/// Builds the engine a config describes: store, policy, connectors. This
/// is where vendor secrets are resolved, and only here.
pub(crate) async fn engine_for(config: &Config, catalog_dir: Option<&Path>) -> Result<Engine> {
    build_engine(config, catalog_dir, true).await
}

/// The application layer over [`engine_for`]'s engine.
pub(crate) async fn roster_for(config: &Config, catalog_dir: Option<&Path>) -> Result<Roster> {
    Ok(Roster::new(engine_for(config, catalog_dir).await?))
}

/// The application layer over [`engine_offline`]'s engine.
pub(crate) async fn roster_offline(config: &Config, catalog_dir: Option<&Path>) -> Result<Roster> {
    Ok(Roster::new(engine_offline(config, catalog_dir).await?))
}

/// The engine without connectors, for commands that only read or decide
/// on what roster's database holds (tasks, matches, approvals, reports,
/// connection health): they need no vendor secret, so none is resolved.
pub(crate) async fn engine_offline(config: &Config, catalog_dir: Option<&Path>) -> Result<Engine> {
    build_engine(config, catalog_dir, false).await
}

async fn build_engine(
    config: &Config,
    catalog_dir: Option<&Path>,
    with_connectors: bool,
) -> Result<Engine> {
    let catalog = Catalog::load(config.catalog_dir.as_deref().or(catalog_dir))
        .context("cannot load the app catalog")?;
    let policy_text = std::fs::read_to_string(&config.policy)
        .with_context(|| format!("cannot read policy {}", config.policy.display()))?;
    let policy = Policy::parse(&config.policy.display().to_string(), &policy_text)?;
    for c in &config.connections {
        catalog
            .require(&c.app)
            .with_context(|| format!("connections.{}.app", c.id))?;
    }
    let store = Store::open(&config.database).await?;
    let mut resolved = config.clone();
    if with_connectors {
        resolved
            .resolve_secrets(&|name| std::env::var(name).ok())
            .context("cannot resolve the connections' secrets")?;
        // `{ stored = "..." }` secrets open with the store and the master key.
        resolved
            .resolve_stored_secrets(&store)
            .await
            .context("cannot resolve stored secrets")?;
    }
    let config = &resolved;
    let anchor = roster_engine::anchor::AuditAnchor::from_config(&config.audit)
        .context("cannot set up audit checkpoints ([audit] in the config)")?
        .map(std::sync::Arc::new);
    if let Some(a) = &anchor {
        crate::anchor::register(a.clone(), store.clone());
    }
    let mut engine = Engine::new(store, policy);
    engine.anchor = anchor;
    if with_connectors && !config.notify.channels.is_empty() {
        // `[notify]`: its secrets are read with the connections'.
        let base = config.path.parent().unwrap_or(std::path::Path::new("."));
        engine.notifier = Some(
            roster_engine::notify::Notifier::from_config(
                &config.notify,
                base,
                config.allow_private_network,
                &|name| std::env::var(name).ok(),
            )
            .context("cannot set up notifications ([notify] in the config)")?,
        );
    }
    if with_connectors && let Some(raw) = &config.tickets {
        let base = config.path.parent().unwrap_or(std::path::Path::new("."));
        engine.tickets = Some(
            roster_engine::tickets::TicketSystem::from_config(
                raw,
                base,
                config.allow_private_network,
                &|name| std::env::var(name).ok(),
            )
            .context("cannot set up ticket mirroring ([tickets] in the config)")?,
        );
    }
    engine.exports_dir = Some(config.data_dir.clone());
    // `[company]`: start and end dates are judged in the company's zone.
    engine.calendar = config.calendar.clone();
    engine.hr_format = config.hr_csv.as_ref().map(|_| config.hr_format);
    // Every plan checks the policy against what the deployment provides.
    // A command that never plans should not fail for an unreadable HR file,
    // so a vocabulary that cannot be built is left out here; `roster plan`
    // builds it itself and refuses on failure.
    match config.policy_context().vocabulary() {
        Ok(v) => engine.vocabulary = Some(v),
        Err(e) => tracing::warn!(error = %e, "the policy cannot be checked against the sources"),
    }
    for c in &config.connections {
        let id = ConnectionId::new(c.id.as_str());
        let app = catalog.require(&c.app)?;
        engine.bind(id.clone(), binding(c, app));
        if !with_connectors {
            continue;
        }
        let mut s = ConnectorSettings::new(id);
        s.path = c.path.clone();
        s.plan = c.plan.clone();
        s.base_url = c.base_url.clone();
        s.allow_private_network = c.allow_private_network;
        s.username = c.username.clone();
        s.secret = c.secret.as_ref().map(|x| SecretString::new(x.expose()));
        s.idp = c.idp.clone();
        s.okta_app_id = c.okta_app_id.clone();
        s.idp_app_id = c.idp_app_id.clone();
        s.groups = c.groups.clone();
        s.policy_ids = c.policy_ids.clone();
        s.default_manager_email = c.default_manager_email.clone();
        s.options = c.options.clone();
        // The catalog chooses the path and the implementation; an explicit
        // `path` the app does not offer is refused here.
        let Some(route) =
            registry::route(app, &s).with_context(|| format!("connections.{}.path", c.id))?
        else {
            eprintln!(
                "note: connections.{}: roster has no connector for {}; its changes become manual tasks",
                c.id, c.app
            );
            continue;
        };
        let connector = registry::build_route(app, &route, &s)
            .with_context(|| format!("connections.{} ({} over {})", c.id, c.app, route.path))?;
        // `[connections.NAME.browser]`: deactivations through the app's
        // console runbook, reads through the connector above.
        let connector: std::sync::Arc<dyn roster_connectors::Connector> = match &c.browser {
            None => connector,
            Some(raw) => {
                let runbook = catalog
                    .runbook(&c.app, roster_core::Operation::Deactivate)
                    .with_context(|| {
                        format!(
                            "connections.{}.browser: the catalog has no deactivation runbook for {}",
                            c.id, c.app
                        )
                    })?
                    .clone();
                let base = config.path.parent().unwrap_or(Path::new("."));
                let secrets = roster_engine::browser::resolve_secrets(
                    raw,
                    base,
                    &engine.store,
                    &config.data_dir,
                )
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("connections.{}", c.id))?;
                let evidence = config.data_dir.join("evidence").join(&c.id);
                std::sync::Arc::new(roster_engine::browser::wrap(
                    connector,
                    runbook,
                    raw,
                    secrets,
                    evidence,
                    Some(engine.evidence_sink()),
                )?)
            }
        };
        engine.add_connector(connector);
    }
    if with_connectors {
        for s in &config.sources {
            roster_engine::sources::wire(&mut engine, s)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("cannot set up source {}", s.name))?;
        }
    }
    Ok(engine.with_catalog(catalog))
}

/// The catalog binding of a connection: which app, and the settings path
/// selection sees (plan tier, IdP, which credential the connection holds,
/// as the app's record says for its path).
fn binding(c: &roster_engine::config::ConnectionConfig, app: &App) -> AppBinding {
    let mut settings = ConnectionSettings::of_connection(
        app,
        c.plan.clone(),
        c.idp.clone(),
        c.path.as_deref(),
        c.secret_ref.is_some(),
    );
    // An admin login for the console puts the browser path in reach.
    settings.browser_enabled = c.browser.is_some();
    AppBinding {
        app: c.app.clone(),
        settings,
        task_sla_hours: c.task_sla_hours,
        assignee: c.assignee.clone(),
        escalate_to: c.escalate_to.clone(),
        owners: c.owners.clone(),
    }
}

pub async fn plan(args: PlanArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    if let Some(only) = &args.connection {
        anyhow::ensure!(
            config.connections.iter().any(|c| &c.id == only),
            "no connection {only:?} in {}{}; configured: {}",
            args.config.display(),
            crate::suggest::did_you_mean(only, config.connections.iter().map(|c| c.id.as_str())),
            config
                .connections
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Check every input before touching anything: a bad HR row refuses the
    // whole file, and nothing is imported or read.
    let people = match &config.hr_csv {
        Some(hr) => {
            let bytes = std::fs::read(hr)
                .with_context(|| format!("cannot read HR file {}", hr.display()))?;
            Some((
                hr,
                roster_engine::hr_file::parse(config.hr_format, &hr.display().to_string(), &bytes)?,
            ))
        }
        None => None,
    };
    let principal = crate::principal::current(&config)?;
    crate::principal::check_by(args.by.as_deref(), &principal)?;
    let mut engine = engine_for(&config, catalog_dir).await?;
    // Refuse before reading or importing anything: a policy that names
    // what does not exist would plan removals nobody asked for.
    engine.vocabulary = Some(config.policy_context().vocabulary()?);
    engine.check_policy()?;
    if let Some(only) = &args.connection {
        // Only that connection is read and planned: the other apps receive
        // no request at all.
        engine.retain_connectors(&[ConnectionId::new(only.as_str())]);
    }
    let roster = Roster::new(engine);
    let hr_source = people.as_ref().map(|(hr, _)| hr.display().to_string());
    let imported = people.as_ref().map_or(0, |(_, p)| p.len());
    let refreshed = match roster
        .refresh(
            &principal,
            RefreshOptions {
                people: people.map(|(hr, p)| (p, hr.display().to_string())),
                accept_source_change: args.accept_source_change,
                only: args.connection.as_deref().map(ConnectionId::new),
                person: args.person.as_deref().map(PersonRef::parse),
            },
            &mut show_progress,
        )
        .await
    {
        Err(roster_engine::EngineError::NothingRead) => {
            bail!("no connection could be read; nothing was planned or imported")
        }
        other => other?,
    };
    let outcomes = &refreshed.outcomes;
    let problems: Vec<(String, String)> = outcomes
        .iter()
        .filter(|o| {
            args.connection
                .as_deref()
                .is_none_or(|c| c == o.connection.as_str())
        })
        .filter_map(|o| match (&o.error, o.complete) {
            (Some(e), _) => Some((o.connection.to_string(), format!("read failed: {e}"))),
            (None, false) => Some((
                o.connection.to_string(),
                format!(
                    "incomplete: {}",
                    o.incomplete_reason.as_deref().unwrap_or("no reason given")
                ),
            )),
            (None, true) => None,
        })
        .collect();
    for o in outcomes {
        match &o.error {
            Some(e) => eprintln!(
                "reading {} failed: {e}; it is left out of this plan",
                o.connection
            ),
            None => eprintln!(
                "read {} accounts from {}{}",
                o.accounts,
                o.connection,
                if o.complete {
                    ""
                } else {
                    " (incomplete: deactivations withheld)"
                }
            ),
        }
    }
    match &refreshed.sources {
        Some(sources) => {
            for (source, n) in &sources.read {
                eprintln!("read {n} people from {source}");
            }
            eprintln!("imported {} people from {}", sources.people, sources.label);
        }
        None => {
            if let Some(hr) = &hr_source {
                eprintln!("imported {imported} people from {hr}");
            }
        }
    }
    if let Some(counts) = &refreshed.accepted {
        eprintln!(
            "accepted the people source as it is ({} people, {} terminated), confirmed by {principal}",
            counts.people, counts.terminated
        );
    } else if let Some(change) = &refreshed.source_change {
        eprintln!(
            "warning: {}; no deactivations are planned until you confirm the source with `{}`",
            change.detail,
            roster_core::guard::ACCEPT_SOURCE_CHANGE
        );
    }
    let planned = refreshed.planned;
    let (id, plan) = (planned.id, planned.plan);
    // The file carries the plan's ID and hash, as `--json` does: whoever
    // reviews the file can name the stored plan (`roster approve ID`) and
    // check that the content they read is the content approved.
    let document = serde_json::json!({ "id": id.as_str(), "hash": plan.hash(), "plan": plan });
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&document)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    // What carrying it out would end first: leavers' IdP sessions.
    let revocations = roster.planned_leaver_revocations(&plan).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", render(&plan));
        if !revocations.is_empty() {
            println!(
                "\nBefore closing the leavers' accounts, applying it ends their IdP sessions:"
            );
            for r in &revocations {
                println!("  {}", r.describe());
            }
        }
        println!("\nSaved as plan {id}. Apply it with: roster apply {id}");
    }
    if !problems.is_empty() {
        return Err(PartialRead { problems }.into());
    }
    Ok(())
}

pub async fn apply(args: ApplyArgs, catalog_dir: Option<&Path>) -> Result<()> {
    let config = load_config(&args.config)?;
    let principal = crate::principal::current(&config)?;
    let roster = roster_for(&config, catalog_dir).await?;
    let id = if args.plan == "latest" {
        roster
            .store()
            .latest_plan()
            .await?
            .context("there is no stored plan; run `roster plan` first")?
            .id
    } else {
        PlanId::new(args.plan.clone())
    };
    // The one check: approvals, the plan's hash, freshness. Only what it
    // returns can be applied.
    let approved = roster.check(&principal, &id, &mut show_progress).await?;
    let (report, enqueued) = roster.apply(approved, &mut show_progress).await?;
    for r in &enqueued.revocations {
        println!("{}", r.describe());
    }
    for t in &enqueued.tasks {
        println!("task {}: {} (due {})", t.id, t.title, due(t.due_ms));
    }
    println!(
        "applied {} action(s), {} failed, {} skipped, {} manual",
        report.applied_total(),
        report.failed.len(),
        report.skipped,
        report.manual
    );
    for (c, who, why) in &report.failed {
        println!("  failed: {c} {who}: {why}");
    }
    for (c, why) in &report.paused {
        println!(
            "  {c}: writes {why}; its actions stay queued until `roster resume` \
             (then `roster apply {id}` or a running worker carries them out)"
        );
    }
    for (c, why) in &report.quarantined {
        println!("  {c}: quarantined ({why}); `roster connections resume {c}` after fixing it");
    }
    if report.pending > 0 {
        println!(
            "{} action(s) still queued; `roster apply {id}` again (or `roster run`) carries them on",
            report.pending
        );
    }
    if report.held > 0 {
        println!(
            "{} action(s) held for approval were not applied (see `roster plans show {id}`); \
             `roster approve {id}` (or `--action N`), then `roster apply {id}` runs them if a \
             fresh read still calls for them; `roster reject {id}` drops them",
            report.held
        );
    }
    if !report.failed.is_empty() {
        bail!(
            "{} action(s) failed; run `roster apply {id}` again to retry them",
            report.failed.len()
        );
    }
    Ok(())
}

/// Prints what a person waiting at the terminal should know: a stall for
/// an app's rate window or a retry the app asked for (waits over a second;
/// routine pacing stays quiet).
pub(crate) fn show_progress(connection: &ConnectionId, p: &Progress<'_>) {
    match p {
        Progress::Waiting { delay } => eprintln!(
            "waiting {} s for {connection}'s rate window",
            delay.as_secs_f64().ceil() as u64
        ),
        Progress::Retrying {
            delay,
            attempt,
            error,
        } if *delay > REPORT_WAITS_OVER => eprintln!(
            "{connection}: attempt {attempt} failed ({error}); retrying in {} s",
            delay.as_secs_f64().ceil() as u64
        ),
        _ => {}
    }
}

pub(crate) fn due(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "no due date".into())
}

/// `database`, `data_dir` and `[audit]` only: the audit commands need no
/// policy and no vendor secret.
fn load_storage(path: &Path) -> Result<roster_engine::config::StorageConfig> {
    Config::load_storage(path).with_context(|| {
        format!(
            "cannot use config {} (see README \"Running roster for real\")",
            path.display()
        )
    })
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// `2026-01-01` (midnight UTC), RFC 3339, or unix milliseconds.
fn parse_date(s: &str) -> Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s.trim(), &format) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    roster_engine::reports::parse_since(s)
        .with_context(|| format!("{s:?} is not a date (2026-01-01, RFC 3339 or unix ms)"))
}

pub async fn audit(cmd: AuditCommand) -> Result<()> {
    use roster_engine::anchor::{self, AuditAnchor, SigningKey};
    match cmd {
        AuditCommand::Verify {
            config,
            checkpoints,
        } => {
            let storage = load_storage(&config)?;
            let store = Store::open(&storage.database).await?;
            let result = anchor::verify(&store, &storage.audit, &checkpoints).await;
            store.close().await;
            let report = result?;
            print!("{}", report.render());
        }
        AuditCommand::Export(args) => crate::report::audit_export(args).await?,
        AuditCommand::Key { config } => {
            let storage = load_storage(&config)?;
            let key = SigningKey::load_or_create(&storage.audit.signing_key)?;
            println!("{}", key.public_hex());
            eprintln!(
                "audit signing key: {} (Ed25519; keep it off the database's host if you can)",
                key.path().display()
            );
        }
        AuditCommand::Checkpoint { config } => {
            let storage = load_storage(&config)?;
            let Some(anchor) = AuditAnchor::from_config(&storage.audit)? else {
                bail!(
                    "no [audit] witness in {}; nothing to checkpoint to",
                    config.display()
                );
            };
            let store = Store::open(&storage.database).await?;
            let outcome = anchor.checkpoint(&store, now_ms()).await;
            store.close().await;
            let outcome = outcome?;
            match outcome.signed {
                Some(seq) => println!("signed a checkpoint of event {seq}"),
                None => println!("the chain head is already checkpointed"),
            }
            for w in &outcome.witnesses {
                println!(
                    "  {}: {} delivered, {} queued",
                    w.witness, w.delivered, w.pending
                );
            }
            let warnings = outcome.warnings();
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if !warnings.is_empty() {
                bail!("{} witness(es) unreachable", warnings.len());
            }
        }
        AuditCommand::Erase {
            config,
            person,
            before,
            reason,
            actor,
        } => {
            let principal = crate::principal::current(&load_config(&config)?)?;
            crate::principal::check_by(actor.as_deref(), &principal)?;
            let storage = load_storage(&config)?;
            let selector = roster_engine::erasure::EraseSelector {
                person,
                before_ms: before.as_deref().map(parse_date).transpose()?,
            };
            let store = Store::open(&storage.database).await?;
            // Erasing needs no policy or connector: a bare engine over the
            // store, through the application layer like every change.
            let roster = Roster::new(Engine::new(store.clone(), Policy::default()));
            let report = roster.erase_audit(&principal, &selector, &reason).await;
            // The erasure event is anchored like any other.
            if let Some(a) = AuditAnchor::from_config(&storage.audit)? {
                crate::anchor::register(std::sync::Arc::new(a), store.clone());
            }
            let report = report?;
            match report.record_seq {
                Some(seq) => println!(
                    "erased the payloads of {} event(s); recorded as event {seq} (audit.erased)",
                    report.erased
                ),
                None => println!("nothing to erase"),
            }
            if report.already_erased > 0 {
                println!(
                    "  {} matching event(s) were already erased",
                    report.already_erased
                );
            }
            if report.legacy > 0 {
                println!(
                    "  {} matching event(s) predate payload hashing (hash version 1) and were \
                     left as they are: erasing them would break the chain",
                    report.legacy
                );
            }
        }
    }
    Ok(())
}

pub async fn sim(cmd: SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Expensify {
            port,
            partner_user_id,
            partner_user_secret,
            policies,
        } => {
            use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig};
            let sim = ExpensifySim::start(
                ExpensifySimConfig::new(partner_user_id.clone(), partner_user_secret)
                    .with_port(port)
                    .with_seed(policies, 10),
            )
            .await
            .context("cannot start the Expensify simulator")?;
            println!("Expensify simulator listening at {}", sim.url());
            println!("partnerUserID {partner_user_id}; press Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            sim.shutdown().await;
        }
        SimCommand::ScimApp { port, token, users } => {
            use roster_sim::scim_app::{ScimSim, ScimSimConfig};
            let sim = ScimSim::start(ScimSimConfig::new(token).with_port(port).with_seed(users))
                .await
                .context("cannot start the SCIM app simulator")?;
            println!(
                "SCIM app simulator at {} (bearer token as given); press Ctrl-C to stop",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
        SimCommand::BillSpend {
            port,
            api_token,
            users,
        } => {
            use roster_sim::bill_spend::{BillSim, BillSimConfig};
            let sim = BillSim::start(
                BillSimConfig::new(api_token)
                    .with_port(port)
                    .with_seed(users),
            )
            .await
            .context("cannot start the BILL S&E simulator")?;
            println!(
                "BILL S&E v3 simulator at {} (header apiToken); press Ctrl-C to stop",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
        SimCommand::Spendesk {
            port,
            client_id,
            client_secret,
            members,
        } => {
            use roster_sim::spendesk::{SpendeskSim, SpendeskSimConfig};
            let sim = SpendeskSim::start(
                SpendeskSimConfig::new(client_id, client_secret)
                    .with_port(port)
                    .with_seed(members),
            )
            .await
            .context("cannot start the Spendesk simulator")?;
            println!(
                "Spendesk read API simulator at {} (POST /auth/token with Basic auth); press Ctrl-C to stop",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
        SimCommand::Okta {
            port,
            api_token,
            users,
        } => {
            use roster_sim::okta::{OktaSim, OktaSimConfig};
            let sim = OktaSim::start(
                OktaSimConfig::new(api_token)
                    .with_port(port)
                    .with_seed(users),
            )
            .await
            .context("cannot start the Okta simulator")?;
            println!(
                "Okta simulator at {} (Authorization: SSWS <token>); press Ctrl-C to stop",
                sim.url()
            );
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
