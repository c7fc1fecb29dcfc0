//! The `roster` binary: glue between the command line and the engine.
//!
//! Commands parse their arguments (clap), build the engine's inputs, and
//! print. Business rules live in the library crates; this file only decides
//! what to say to a person and which exit code to use (see [`EXIT_CODES`]:
//! 0 ok, 1 failure, 2 usage error from clap, 3 planned but some connection
//! could not be read completely).
//!
//! Logs go to stderr (`ROSTER_LOG`, default `warn`), in colour only when
//! stderr is a terminal, so a log file or a CI capture gets plain text;
//! `--log-format json` (or `ROSTER_LOG_FORMAT=json`) writes one JSON
//! object per line instead (`roster_server::logging`).

// Every module prints through `output`, so a closed pipe ends the process
// quietly instead of panicking (see output.rs). These macros shadow std's
// for the modules declared below them.
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::out(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::output::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::out(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! eprintln {
    () => { $crate::output::err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::err(format_args!("{}\n", format_args!($($arg)*))) };
}

mod output;

mod anchor;
mod apps;
mod bench;
mod bench_api;
mod bench_runbook;
mod bench_soak;
mod bench_sources;
mod bench_ui;
mod demo;
mod demo_company;
mod govern;
mod mcp;
mod notify;
mod offboard;
mod ops;
mod person;
mod plans;
mod principal;
mod report;
mod secret;
mod serve;
mod service;
mod suggest;
mod tasks;
mod token;
mod user;
mod web_oidc;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Planning a large company allocates millions of small strings; mimalloc
// is markedly faster at that than the system allocator and fragments less
// across the worker threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit codes, as `roster --help` shows them.
const EXIT_CODES: &str = "Exit codes:
  0  success
  1  failure (nothing planned or applied, or some actions failed)
  2  usage error
  3  planned, but some connection could not be read, or only in part: the plan
     leaves it out (or withholds its deactivations); see `roster connections list`";

#[derive(Parser)]
#[command(
    name = "roster",
    version,
    about = "Keeps every SaaS account in line with who actually works there.",
    long_about = None,
    after_help = EXIT_CODES
)]
struct Cli {
    /// A directory of app records that add to or replace the built-in catalog.
    #[arg(long, global = true, env = "ROSTER_CATALOG_DIR", value_name = "DIR")]
    catalog_dir: Option<PathBuf>,
    /// Log lines as `text` (default) or `json`, one object per line, with
    /// the request id of the HTTP request a line is about.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The app catalog: what each app can do and how roster drives it.
    #[command(subcommand)]
    Apps(apps::AppsCommand),
    /// Run roster against simulated apps and a sample company (no credentials needed).
    Demo(demo::DemoArgs),
    /// Read the source and every app, and compute a plan (changes nothing in any app).
    Plan(ops::PlanArgs),
    /// Apply a stored plan.
    Apply(ops::ApplyArgs),
    /// Offboard one person now: print the plan (--dry-run), carry it out
    /// with --yes, and show the access that remains.
    Offboard(offboard::OffboardArgs),
    /// One person's access everywhere: `person show PERSON`.
    #[command(subcommand)]
    Person(person::PersonCommand),
    /// Stored plans and where each stands; `plans show ID|latest` shows one.
    Plans(plans::PlansArgs),
    /// Serve the SCIM gateway IdPs push to, and run continuously.
    Serve(serve::ServeArgs),
    /// The MCP server for AI agents over stdio (token in ROSTER_AGENT_TOKEN):
    /// read and propose only; never approve, reject, apply or offboard.
    Mcp(mcp::McpArgs),
    /// Tokens for the REST API and AI agents (MCP): create, list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Local users of the web UI: add, list, remove, set-role.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Notifications: the delivery log, and a delivery pass now.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// The SCIM gateway's tokens.
    #[command(subcommand)]
    Scim(serve::ScimCommand),
    /// Run continuously: a full reconciliation on a schedule, workers draining
    /// the queue, reminders for overdue tasks.
    Run(service::RunArgs),
    /// Only drain the task queue, beside `roster serve` / `roster run` on a
    /// shared PostgreSQL database (any number of them; SQLite refuses).
    Worker(worker::WorkerArgs),
    /// Reports: orphaned accounts, automation coverage (gap nodes), leavers.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Benchmarks (build with --release).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Vendor credentials stored encrypted in roster's database.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Connections and their health.
    #[command(subcommand)]
    Connections(service::ConnectionsCommand),
    /// Kill switch: stop every write to a connection (all without a name),
    /// in every roster process, until `roster resume`. Plans still compute.
    Pause(service::PauseArgs),
    /// Lift a `roster pause` (of that connection; of all without a name).
    Resume(service::PauseArgs),
    /// Approve a plan's actions that wait for approval (bound to its hash).
    Approve(govern::DecideArgs),
    /// Reject them: rejected actions never run.
    Reject(govern::DecideArgs),
    /// The match queue: accounts roster would not link on its own.
    #[command(subcommand)]
    Matches(govern::MatchesCommand),
    /// Human tasks waiting for someone (manual offboarding, JIT follow-ups).
    Tasks {
        #[arg(long, short, env = "ROSTER_CONFIG", default_value = "roster.toml")]
        config: PathBuf,
        /// Include verified and cancelled tasks.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One human task: show it, or report it done.
    #[command(subcommand)]
    Task(tasks::TaskCommand),
    /// Policy files.
    #[command(subcommand)]
    Policy(govern::PolicyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Run a vendor simulator on loopback.
    #[command(subcommand)]
    Sim(ops::SimCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Also routes the `log` crate's records into tracing, as `init` does.
    let _ =
        tracing_subscriber::util::SubscriberInitExt::try_init(roster_server::logging::subscriber(
            cli.log_format.parse().unwrap_or_default(),
            tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            std::io::stderr,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ));
    // reqwest is built without a bundled TLS provider; use ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let result = match cli.command {
            Command::Apps(cmd) => apps::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Plan(args) => ops::plan(args, cli.catalog_dir.as_deref()).await,
            Command::Apply(args) => ops::apply(args, cli.catalog_dir.as_deref()).await,
            Command::Offboard(args) => offboard::run(args, cli.catalog_dir.as_deref()).await,
            Command::Person(cmd) => person::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Plans(args) => plans::run(args, cli.catalog_dir.as_deref()).await,
            Command::Approve(args) => {
                govern::decide(
                    args,
                    roster_store::Decision::Approved,
                    cli.catalog_dir.as_deref(),
                )
                .await
            }
            Command::Reject(args) => {
                govern::decide(
                    args,
                    roster_store::Decision::Rejected,
                    cli.catalog_dir.as_deref(),
                )
                .await
            }
            Command::Matches(cmd) => govern::matches(cmd, cli.catalog_dir.as_deref()).await,
            Command::Policy(cmd) => govern::policy(cmd),
            Command::Secret(cmd) => secret::run(cmd).await,
            Command::Report(cmd) => report::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Serve(args) => serve::serve(args, cli.catalog_dir.as_deref()).await,
            Command::Mcp(args) => mcp::run(args, cli.catalog_dir.as_deref()).await,
            Command::Scim(cmd) => serve::scim(cmd).await,
            Command::Token(cmd) => token::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::User(cmd) => user::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Notify(cmd) => notify::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Run(args) => service::run(args, cli.catalog_dir.as_deref()).await,
            Command::Worker(args) => worker::run(args, cli.catalog_dir.as_deref()).await,
            Command::Connections(cmd) => {
                service::connections(cmd, cli.catalog_dir.as_deref()).await
            }
            Command::Pause(args) => service::pause(args).await,
            Command::Resume(args) => service::resume(args).await,
            Command::Tasks { config, all, json } => {
                tasks::list(&config, all, json, cli.catalog_dir.as_deref()).await
            }
            Command::Task(cmd) => tasks::run(cmd, cli.catalog_dir.as_deref()).await,
            Command::Audit(cmd) => ops::audit(cmd).await,
            Command::Sim(cmd) => ops::sim(cmd).await,
        };
        // Anchor whatever the command appended to the audit log.
        anchor::finish().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ops::PartialRead>().is_some() => {
            eprintln!("warning: {e}");
            ExitCode::from(ops::PartialRead::EXIT_CODE)
        }
        Err(e) => {
            // The engine's stable code first, for scripts and the docs.
            match e.downcast_ref::<roster_engine::EngineError>() {
                Some(engine) => eprintln!("error: {} {e}", engine.code()),
                None => eprintln!("error: {e}"),
            }
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
