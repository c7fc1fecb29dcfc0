//! `roster demo`: the whole loop on a sample company and simulated apps.
//!
//! A fresh data dir, the Expensify simulator on loopback seeded with the
//! company's current (drifted) state, the company as an HR CSV, and a
//! policy. Then: import → read → plan → apply → read → plan again, which
//! must be empty. `--once` exits after that; otherwise the simulator stays
//! up until Ctrl-C so its state can be inspected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use roster_connectors::SecretString;
use roster_connectors::driver::Progress;
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_core::{ConnectionId, Policy, hr_csv, plan::render};
use roster_engine::Engine;
use roster_engine::sample;
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use roster_store::Store;

#[derive(Args)]
pub struct DemoArgs {
    /// Exit after the second (empty) plan instead of keeping the simulator up.
    #[arg(long)]
    once: bool,
    /// Where to keep the demo's database, HR file and policy. Must not hold a
    /// previous demo. Default: a new temporary directory (kept afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How many people the sample company has.
    #[arg(long, default_value_t = 300)]
    people: usize,
    /// Seed for the sample company (same seed, same company).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const PARTNER_USER_ID: &str = "demo_partner";
const PARTNER_SECRET: &str = "demo-secret-not-real";

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let data_dir = match &args.data_dir {
        Some(d) => {
            if d.join("roster.db").exists() {
                bail!(
                    "{} already holds a roster database; the demo needs a fresh directory (remove it or pick another --data-dir)",
                    d.display()
                );
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("roster-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?
            .keep(),
    };
    let connection = ConnectionId::new("expensify");
    let today = time::OffsetDateTime::now_utc().date();
    let company = sample::company(args.people, args.seed, today, &connection);

    // The company's files, as a real deployment would have them.
    let hr_path = data_dir.join("people.csv");
    let policy_path = data_dir.join("policy.toml");
    std::fs::write(&hr_path, hr_csv::write(&company.people))
        .with_context(|| format!("cannot write {}", hr_path.display()))?;
    std::fs::write(&policy_path, sample::demo_policy(&connection))
        .with_context(|| format!("cannot write {}", policy_path.display()))?;

    // Expensify as it is today: the accounts the company already has.
    let owner = format!("it@{}", company.domain);
    let mut policies: Vec<SimPolicy> = sample::workspace_ids()
        .into_iter()
        .map(|(cc, id)| SimPolicy::new(id, format!("Workspace {cc}"), owner.clone()))
        .collect();
    for account in &company.accounts {
        let attr = |k: &str| account.attributes.get(k).cloned().unwrap_or_default();
        let policy_id = attr("policy_id");
        let target = policies
            .iter_mut()
            .find(|p| p.id == policy_id)
            .or_else(|| None);
        let Some(policy) = target else {
            // Orphans without a workspace land in the first one.
            if let Some(first) = policies.first_mut() {
                let email = account
                    .email
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                first.employees.insert(
                    email.to_lowercase(),
                    SimEmployee::new(email, owner.clone(), ""),
                );
            }
            continue;
        };
        let email = account
            .email
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let mut e = SimEmployee::new(
            email.clone(),
            attr("manager_email"),
            account
                .employee_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default(),
        );
        e.first_name = attr("first_name");
        e.last_name = attr("last_name");
        policy.employees.insert(email.to_lowercase(), e);
    }
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(PARTNER_USER_ID, PARTNER_SECRET).with_policies(policies),
    )
    .await
    .context("cannot start the Expensify simulator")?;

    let mix = &company.mix;
    println!("roster demo: a sample company reconciled into a simulated Expensify\n");
    println!("  data dir      {}", data_dir.display());
    println!(
        "  HR file       {} ({} people)",
        hr_path.display(),
        mix.people
    );
    println!("  policy        {}", policy_path.display());
    println!(
        "  Expensify     {} (simulator, documented rate limits: 5 per 10 s, 20 per 60 s)",
        sim.url()
    );
    println!(
        "  this month    {} joiners, {} leavers, {} movers, {} manager changes, {} on leave, {} orphan accounts\n",
        mix.joiners, mix.leavers, mix.movers, mix.manager_changes, mix.on_leave, mix.orphans
    );

    let store = Store::open(&data_dir.join("roster.db").display().to_string())
        .await
        .context("cannot open the demo database")?;
    let policy_text = std::fs::read_to_string(&policy_path)?;
    let policy = Policy::parse(&policy_path.display().to_string(), &policy_text)?;
    let mut engine = Engine::new(store, policy);
    let mut config = ExpensifyConfig::new(
        connection.clone(),
        PARTNER_USER_ID,
        SecretString::new(PARTNER_SECRET),
    )
    .with_base_url(sim.url());
    config.policy_ids = Some(sample::workspace_ids().into_values().collect());
    engine.add_connector(Arc::new(ExpensifyConnector::new(config)?));

    // 1. Source of truth.
    let hr_text = std::fs::read_to_string(&hr_path)?;
    let people = hr_csv::parse(&hr_path.display().to_string(), &hr_text)?;
    engine
        .import_people(&people, &hr_path.display().to_string())
        .await?;
    println!("[1/5] imported {} people from the HR file", people.len());

    // 2. What the app holds.
    let read = read_step(&engine, "[2/5]").await?;

    // 3. The plan.
    let (plan_id, plan) = engine.plan(Some(&read)).await?;
    println!("[3/5] plan {plan_id} (hash {})\n", &plan.hash()[..12]);
    print!("{}", indent(&render(&plan)));
    println!();

    // 4. Apply.
    let t = Instant::now();
    let report = engine
        .apply(&plan_id, &mut |c, p| {
            if let Progress::Retrying {
                attempt,
                delay,
                error,
                ..
            } = p
            {
                eprintln!("      {c}: attempt {attempt} failed ({error}); retrying in {delay:?}");
            }
        })
        .await?;
    println!(
        "[4/5] applied {} action(s), {} failed, {} skipped, {} manual, in {:.1} s",
        report.applied_total(),
        report.failed.len(),
        report.skipped,
        report.manual,
        t.elapsed().as_secs_f64()
    );
    for (c, who, why) in &report.failed {
        println!("      failed: {c} {who}: {why}");
    }

    // 5. Read again: the world should now match the policy.
    let read = read_step(&engine, "[5/5]").await?;
    let (second_id, second) = engine.plan(Some(&read)).await?;
    println!("      second plan {second_id}:\n");
    print!("{}", indent(&render(&second)));
    let audit = engine.store.verify_audit().await?;
    println!(
        "\n  audit log: {} events, hash chain verified (head {})",
        audit.events,
        &audit.head[..12]
    );
    let counters = sim.handle().counters();
    println!(
        "  Expensify simulator: {} requests, {} rate-limit violations",
        counters.requests, counters.rate_limit_violations
    );
    println!("  done in {:.1} s", started.elapsed().as_secs_f64());

    if !second.actions.is_empty() || !report.failed.is_empty() {
        bail!(
            "the second plan should be empty after applying the first, but it has {} action(s)",
            second.actions.len()
        );
    }
    println!(
        "\nEverything the policy asks for is in place; only findings for a person to review remain."
    );
    if args.once {
        sim.shutdown().await;
        return Ok(());
    }
    println!(
        "\nThe simulator stays up at {} (partnerUserID {PARTNER_USER_ID}, partnerUserSecret {PARTNER_SECRET}); press Ctrl-C to stop.",
        sim.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

async fn read_step(engine: &Engine, step: &str) -> Result<Vec<ConnectionId>> {
    let outcomes = engine.read(&mut |_, _| {}).await?;
    let mut ok = Vec::new();
    for o in outcomes {
        match &o.error {
            Some(e) => println!("{step} reading {} failed: {e}", o.connection),
            None => {
                println!(
                    "{step} read {} accounts from {}{}",
                    o.accounts,
                    o.connection,
                    if o.complete {
                        String::new()
                    } else {
                        format!(
                            " (INCOMPLETE: {}; deactivations withheld)",
                            o.incomplete_reason.as_deref().unwrap_or("unknown reason")
                        )
                    }
                );
                ok.push(o.connection.clone());
            }
        }
    }
    if ok.is_empty() {
        bail!("no app could be read; see the errors above");
    }
    Ok(ok)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}
