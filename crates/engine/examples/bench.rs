//! The reconciliation benchmark without the CLI:
//!
//! ```text
//! cargo run --release -p roster-engine --example bench -- --people 100000 --apps 20 \
//!     [--database URL] [--seed N] [--samples N] [--baseline report.json]
//! ```
//!
//! Prints the JSON report on standard output, progress on standard error.

use roster_engine::bench::{self, BenchOptions};

// The same allocator as the `roster` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = BenchOptions::default();
    let mut baseline = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--people" => opts.people = value()?.parse()?,
            "--apps" => opts.apps = value()?.parse()?,
            "--database" => opts.database = Some(value()?),
            "--seed" => opts.seed = value()?.parse()?,
            "--samples" => opts.targeted_samples = value()?.parse()?,
            "--baseline" => baseline = Some(value()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(bench::run(&opts, &mut |line| eprintln!("{line}")))?;
    if let Some(path) = baseline {
        let text = std::fs::read_to_string(&path)?;
        report.compare(&serde_json::from_str(&text)?)?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
