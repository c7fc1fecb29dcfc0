//! `roster demo`: the whole loop on a sample company and four simulated
//! apps, one per kind of path.
//!
//! * Expensify through its API (Advanced Employee Updater);
//! * BILL Spend & Expense through the IdP: roster assigns people to the
//!   BILL app in (simulated) Okta, whose SCIM connector provisions BILL;
//! * Bill.com through SCIM (its Enterprise SCIM endpoint);
//! * Spendesk, which has no user-write API: roster reads members through
//!   the read-only API, onboarding goes through SAML JIT, offboarding is a
//!   human task with the catalog's checklist, except for the last
//!   leaver's: where chromium and chromedriver are installed, roster
//!   deactivates them in Spendesk's admin console (the simulator's HTML)
//!   by the catalog's runbook, with screenshots (`demo_browser.rs`).
//!
//! People come from the simulated Okta (addresses, managers, groups), their
//! employment status from the HR file, merged by the attribute mastering
//! of `roster_engine::sources`.
//!
//! The story: plan → apply (automated paths run, the rest become tasks) →
//! the demo plays the humans (first SSO logins, Settings → Members clicks)
//! → the next read verifies their work and plans the JIT follow-ups → the
//! humans finish those → a plan is empty. Then an administrator deactivates
//! one person in Okta: the next read of Okta makes them a leaver, and the
//! plan closes their account in every app (through the API, Okta, SCIM,
//! and Spendesk's console runbook, or a task where no browser is
//! installed), which the read after verifies; the last plan
//! is empty. `--once` exits after that; otherwise the simulators stay up
//! and the web UI serves the demo's roster (`--listen`, default
//! 127.0.0.1:8080) until Ctrl-C: the demo prints its address, a single-use
//! sign-in link and an `admin` user's generated password (shown once).

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use roster_catalog::{Catalog, ConnectionSettings, CredentialKind};
use roster_connectors::registry::{self, ConnectorSettings};
use roster_connectors::{RateWindow, SecretString};
use roster_core::vocabulary::Vocabulary;
use roster_core::{ConnectionId, Email, EmploymentStatus, Operation, Person, Plan, Policy, hr_csv};
use roster_core::{Principal, PrincipalKind};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, Planned, RefreshOptions, Roster, sample};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use roster_sim::okta::{OktaApp, OktaSim, OktaSimConfig, OktaUser};
use roster_sim::scim_app::{ScimSim, ScimSimConfig, user_json};
use roster_sim::spendesk::{Member, MemberField, SpendeskSim, SpendeskSimConfig};
use roster_sources::okta::{OktaSource, OktaSourceConfig};
use roster_store::{HumanTaskState, Store};

#[derive(Args)]
pub struct DemoArgs {
    /// Exit when the story is told instead of keeping the simulators up.
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
    /// Print every planned action, not just the first few per app.
    #[arg(long)]
    verbose: bool,
    /// Where the web UI listens after the story (not with --once); a busy
    /// port falls back to any free one.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// Leave Spendesk's offboarding to a person even where chromium and
    /// chromedriver are installed (no console runbook).
    #[arg(long)]
    no_browser: bool,
}

#[path = "demo_browser.rs"]
mod demo_browser;

const EXPENSIFY_USER: &str = "demo_partner";
const EXPENSIFY_SECRET: &str = "demo-secret-not-real";
const OKTA_TOKEN: &str = "demo-okta-token";
const OKTA_BILL_APP: &str = "0oabillspend";
const BILL_SCIM_TOKEN: &str = "demo-bill-se-scim";
const BILLCOM_SCIM_TOKEN: &str = "demo-billcom-scim";
const SPENDESK_ID: &str = "demo-spendesk-key";
const SPENDESK_SECRET: &str = "demo-spendesk-secret";

/// Who each app is for, in the demo's policy.
const BILL_SE_DEPTS: [&str; 2] = ["Finance", "Operations"];
const BILL_COM_DEPTS: [&str; 1] = ["Finance"];
const SPENDESK_DEPTS: [&str; 3] = ["Sales", "Marketing", "Finance"];
/// The source of people the demo reads (`[sources.okta]` in a config).
const OKTA_SOURCE: &str = "okta";
/// The simulated Okta org's limit on its users and apps endpoints, a minute.
const OKTA_RATE_LIMIT: u32 = 6000;

fn policy_text() -> String {
    let expensify = ConnectionId::new("expensify");
    let base = sample::demo_policy(&expensify);
    let list = |d: &[&str]| {
        d.iter()
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"{base}
# BILL Spend & Expense: Finance and Operations, through the Okta app's SCIM
# connector (roster assigns the app in Okta; Okta provisions BILL).
[[rules]]
name = "finance-ops-get-bill-spend"
connection = "bill-spend-expense"
when = {{ department = [{bse}] }}

# Bill.com (accounts payable): Finance only, over Bill.com's SCIM endpoint.
[[rules]]
name = "finance-gets-bill-com"
connection = "bill-com"
when = {{ department = [{bcom}] }}
set = {{ department = "{{department}}" }}

# Spendesk: the people who spend (Finance too). No write API: SSO (JIT) creates the
# account, a person sets what JIT does not, offboarding is by hand.
[[rules]]
name = "spenders-get-spendesk"
connection = "spendesk"
when = {{ department = [{sd}] }}
set = {{ team = "{{department}}", role = "requester" }}
"#,
        bse = list(&BILL_SE_DEPTS),
        bcom = list(&BILL_COM_DEPTS),
        sd = list(&SPENDESK_DEPTS),
    )
}

/// Whether `p` had access to an app before this month's changes: the
/// sample's joiners (no Expensify account yet) have none anywhere.
fn had_access(p: &Person, depts: &[&str], joiners: &std::collections::BTreeSet<String>) -> bool {
    depts.contains(&p.department.as_str()) && !joiners.contains(&p.email.normalized())
}

struct Sims {
    expensify: roster_sim::expensify::RunningSim,
    okta: roster_sim::okta::RunningOkta,
    bill_se: roster_sim::scim_app::RunningScim,
    bill_com: roster_sim::scim_app::RunningScim,
    spendesk: roster_sim::spendesk::RunningSpendesk,
}

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
    let expensify_id = ConnectionId::new("expensify");
    let today = time::OffsetDateTime::now_utc().date();
    let company = sample::company(args.people, args.seed, today, &expensify_id);
    let has_expensify: std::collections::BTreeSet<String> = company
        .accounts
        .iter()
        .filter_map(|a| a.email.as_ref().map(Email::normalized))
        .collect();
    let joiners: std::collections::BTreeSet<String> = company
        .people
        .iter()
        .filter(|p| {
            p.status != EmploymentStatus::Terminated
                && !has_expensify.contains(&p.email.normalized())
        })
        .map(|p| p.email.normalized())
        .collect();

    let hr_path = data_dir.join("people.csv");
    let policy_path = data_dir.join("policy.toml");
    std::fs::write(&hr_path, hr_csv::write(&company.people))
        .with_context(|| format!("cannot write {}", hr_path.display()))?;
    std::fs::write(&policy_path, policy_text())
        .with_context(|| format!("cannot write {}", policy_path.display()))?;

    let sims = start_sims(&company, &joiners).await?;

    let mix = &company.mix;
    println!("roster demo: a sample company reconciled into four simulated apps\n");
    println!("  data dir      {}", data_dir.display());
    println!(
        "  HR file       {} ({} people)",
        hr_path.display(),
        mix.people
    );
    println!(
        "  directory     Okta {} (people, managers, groups; employment status from the HR file)",
        sims.okta.url()
    );
    println!("  policy        {}", policy_path.display());
    println!(
        "  this month    {} joiners, {} leavers, {} movers, {} manager changes, {} on leave, {} orphan Expensify accounts",
        mix.joiners, mix.leavers, mix.movers, mix.manager_changes, mix.on_leave, mix.orphans
    );
    println!("  apps (simulated on loopback, faithful to the vendors' contracts):");
    println!("    expensify           api   {}", sims.expensify.url());
    println!(
        "    bill-spend-expense  idp   Okta {} → BILL S&E SCIM {}",
        sims.okta.url(),
        sims.bill_se.url()
    );
    println!("    bill-com            scim  {}", sims.bill_com.url());
    println!(
        "    spendesk            read-only API {} (writes: SSO JIT and people)\n",
        sims.spendesk.url()
    );

    let store = Store::open(&data_dir.join("roster.db").display().to_string())
        .await
        .context("cannot open the demo database")?;
    let policy = Policy::parse(
        &policy_path.display().to_string(),
        &std::fs::read_to_string(&policy_path)?,
    )?;
    let engine = build_engine(store, policy, &sims, &data_dir, &hr_path)?;

    // The demo's operator: the principal every step acts for, as the
    // operating-system user would be for `roster plan` and `roster apply`.
    let operator = Principal::new(PrincipalKind::User, "demo-operator");
    let roster = std::sync::Arc::new(Roster::new(engine));

    // 1. Source of truth.
    let people = hr_csv::parse(
        &hr_path.display().to_string(),
        &std::fs::read_to_string(&hr_path)?,
    )?;
    println!(
        "[1/7] {} people in the HR file, {} users in Okta (both read once the apps are read)",
        people.len(),
        sims.okta.handle().users().len()
    );

    // 2-3. Read every app, import the people (Okta merged with HR), plan.
    let hr = Some((people.clone(), hr_path.display().to_string()));
    let planned = refresh_step(&roster, &operator, hr.clone(), "[2/7]").await?;
    let (plan_id, plan) = (planned.id.clone(), planned.plan.clone());
    println!("\n[3/7] plan {plan_id} (hash {}):\n", &plan.hash()[..12]);
    print_plan_table(&plan, args.verbose);
    println!("      {}\n", plan.summary_line());
    if !plan.approvals.is_empty() {
        // The demo's operator approves, as `roster approve` would.
        roster
            .approve(&operator, &plan_id, None, "reviewed in the demo")
            .await?;
        println!(
            "      approved {} action(s) that needed a person's approval",
            plan.approvals.len()
        );
    }

    // 4. Apply: automated paths run; the rest become tasks.
    let mut automated: BTreeMap<ConnectionId, usize> = BTreeMap::new();
    apply_step(&roster, &operator, planned, "[4/7]", &mut automated).await?;

    // 5. The humans do their part, then the next read checks it.
    println!("\n[5/7] people do the manual work (simulated): first SSO logins, Settings → Members");
    play_humans(&roster, &sims, &people).await?;
    let follow = refresh_step(&roster, &operator, hr.clone(), "     ").await?;
    println!("      next plan: {}", follow.plan.summary_line());
    apply_step(&roster, &operator, follow, "     ", &mut automated).await?;
    play_humans(&roster, &sims, &people).await?;
    let settled = refresh_step(&roster, &operator, hr.clone(), "     ").await?;
    println!("      plan {}: {}", settled.id, settled.plan.summary_line());
    if !settled.plan.actions.is_empty() {
        bail!(
            "the plan should be empty once the month's changes are done, but it has {} action(s)",
            settled.plan.actions.len()
        );
    }

    // 6. Someone leaves, and IT deactivates them in Okta (HR has not
    // caught up): the next read of Okta reaches every app they use.
    let leaver = pick_okta_leaver(&roster, &people).await?;
    sims.okta
        .handle()
        .set_user_status(leaver.email.as_str(), "DEPROVISIONED");
    println!(
        "\n[6/7] {} ({}) is deactivated in Okta; HR still lists them as active",
        leaver.email, leaver.department
    );
    // Spendesk's deactivation through its console runbook where chromium
    // and chromedriver are installed; else a person's task, as before.
    let (roster, console) =
        demo_browser::enable(roster, &args, &sims, &leaver, &data_dir, &hr_path).await?;
    let gone = refresh_step(&roster, &operator, hr.clone(), "     ").await?;
    println!(
        "      plan {} for the leaver: {}",
        gone.id,
        gone.plan.summary_line()
    );
    for a in &gone.plan.actions {
        println!(
            "        {} {} {}: {}",
            a.operation.sign(),
            a.connection,
            a.email,
            a.reason
        );
    }
    // Only the leaver's accounts close; the only other lines move the
    // people whose reports went to them to their manager, first.
    let closes_only_theirs = gone.plan.actions.iter().all(|a| {
        a.email.normalized() == leaver.email.normalized()
            || (a.cause == roster_core::Cause::Repoint && a.operation == Operation::Update)
    });
    if gone.plan.actions.is_empty() || !closes_only_theirs {
        bail!(
            "the plan after the Okta deactivation should close the leaver's accounts, and only theirs"
        );
    }
    if !gone.plan.approvals.is_empty() {
        demo_browser::print_approvals(&gone.plan);
        roster
            .approve(&operator, &gone.id, None, "leaver confirmed in the demo")
            .await?;
    }
    apply_step(&roster, &operator, gone, "     ", &mut automated).await?;
    if let Some(console) = &console {
        console.report(&roster, &sims, &leaver).await?;
    }
    // Their Okta sessions ended before any account closed.
    let sessions_ended = sims.okta.handle().effects().iter().any(|e| {
        e.email.eq_ignore_ascii_case(leaver.email.as_str())
            && matches!(
                e.kind,
                roster_sim::common::EffectKind::SessionsRevoked { .. }
            )
    });
    if !sessions_ended {
        bail!("the leaver's Okta sessions were not revoked");
    }
    play_humans(&roster, &sims, &people).await?;

    // 7. A last read: the leaver's accounts are closed, nothing left to do.
    let last = refresh_step(&roster, &operator, hr.clone(), "[7/7]").await?;
    println!("      last plan {}: {}", last.id, last.plan.summary_line());
    let remaining = roster.remaining_access(&leaver).await?;
    let open: Vec<String> = remaining
        .accounts
        .iter()
        .filter(|a| a.active)
        .map(|a| a.connection.to_string())
        .collect();
    println!(
        "      {} after leaving: {} account(s) still open{}, {} task(s) outstanding",
        leaver.email,
        open.len(),
        if open.is_empty() {
            String::new()
        } else {
            format!(" ({})", open.join(", "))
        },
        remaining.open_tasks.len()
    );
    if !open.is_empty() {
        bail!(
            "the leaver still has access after the demo: {}",
            open.join(", ")
        );
    }

    summary(roster.engine(), &automated, &last.plan).await?;
    let audit = roster.store().verify_audit().await?;
    let c = sims.expensify.handle().counters();
    println!(
        "\n  audit log: {} events, hash chain verified (head {})",
        audit.events,
        &audit.head[..12]
    );
    println!(
        "  Expensify simulator: {} requests, {} rate-limit violations",
        c.requests, c.rate_limit_violations
    );
    // The company's whole estate: these four and the sixteen more it uses.
    let estate = crate::demo_company::write_config(&data_dir)?;
    let coverage = crate::demo_company::coverage(
        roster.store(),
        &estate,
        &roster.engine().policy,
        console.is_some(),
    )
    .await?;
    crate::demo_company::print_coverage(&coverage, &estate);
    println!("  done in {:.1} s", started.elapsed().as_secs_f64());

    if !last.plan.actions.is_empty() {
        bail!(
            "the last plan should be empty, but it has {} action(s)",
            last.plan.actions.len()
        );
    }
    println!(
        "\nEverything the policy asks for is in place; only findings for a person to review remain."
    );
    if args.once {
        return Ok(());
    }
    // Someone still working there (outside Finance, where the demo's
    // leaver comes from) signs in through the simulated Okta.
    let idp_admin = people
        .iter()
        .find(|p| {
            p.status == EmploymentStatus::Active
                && p.end_date.is_none()
                && p.department != "Finance"
        })
        .map(|p| p.email.to_string());
    serve_ui(
        &roster,
        &operator,
        args.listen,
        idp_admin.as_deref().map(|e| (&sims.okta, e)),
    )
    .await?;
    drop(sims);
    Ok(())
}

/// Serves the web UI over the demo's roster until Ctrl-C: an `admin`
/// user with a generated password, and a single-use sign-in link.
async fn serve_ui(
    roster: &std::sync::Arc<Roster>,
    operator: &Principal,
    listen: std::net::SocketAddr,
    idp_admin: Option<(&roster_sim::okta::RunningOkta, &str)>,
) -> Result<()> {
    let (_, password) = roster
        .add_web_user(
            operator,
            &roster_engine::NewWebUser {
                name: "admin".into(),
                role: roster_core::Role::Admin,
                email: None,
                password: None,
            },
        )
        .await?;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind((listen.ip(), 0))
            .await
            .with_context(|| format!("cannot listen on {} (--listen)", listen.ip()))?,
    };
    let addr = listener.local_addr()?;
    let token: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut options = roster_web::WebOptions {
        one_time: Some(std::sync::Arc::new(roster_web::OneTimeSignIn::new(
            token.clone(),
            "admin".into(),
        ))),
        ..Default::default()
    };
    // Sign-in through the simulated Okta (OpenID Connect), as `[web.oidc]`
    // configures it for `roster serve` (cli/src/web_oidc.rs).
    let mut idp_line = None;
    if let Some((okta, email)) = idp_admin {
        let (provider, password) =
            crate::web_oidc::demo_provider(okta, &format!("http://{addr}"), email).await?;
        options = options.with_oidc(provider);
        idp_line = Some(format!(
            "  or \"Sign in with your company account\" (the simulated Okta) as {email}, password {password}"
        ));
    }
    let router = roster_web::web_router(roster.clone(), options);
    println!("\nThe web UI serves this roster at http://{addr}/ui/");
    println!("  sign in once (single-use link): http://{addr}/ui/signin/once?token={token}");
    if let Some(p) = password {
        println!("  or as user admin with the password {p} (shown once)");
    }
    if let Some(line) = idp_line {
        println!("{line}");
    }
    println!("The simulators stay up at the addresses above; press Ctrl-C to stop.");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the web UI server failed")?;
    Ok(())
}

/// The demo's leaver: someone in Finance (who has every app) with a
/// manager, whom the month's changes did not touch.
async fn pick_okta_leaver(roster: &Roster, people: &[Person]) -> Result<Person> {
    // Someone with a manager, so whoever submits reports to them in
    // Expensify has a successor to move to (with none, roster would keep
    // their account and ask a person).
    let active: std::collections::BTreeSet<String> = people
        .iter()
        .filter(|p| p.status == EmploymentStatus::Active && p.end_date.is_none())
        .map(|p| p.email.normalized())
        .collect();
    for p in people.iter().filter(|p| {
        p.department == "Finance"
            && active.contains(&p.email.normalized())
            && p.manager_email
                .as_ref()
                .is_some_and(|m| active.contains(&m.normalized()))
    }) {
        let access = roster.remaining_access(p).await?;
        if access.accounts.iter().filter(|a| a.active).count() == 4 {
            return Ok(p.clone());
        }
    }
    bail!("the sample company has no one in Finance with an account in each of the four apps")
}

async fn start_sims(
    company: &sample::SampleCompany,
    joiners: &std::collections::BTreeSet<String>,
) -> Result<Sims> {
    // Expensify as it is today.
    let owner = format!("it@{}", company.domain);
    let mut policies: Vec<SimPolicy> = sample::workspace_ids()
        .into_iter()
        .map(|(cc, id)| SimPolicy::new(id, format!("Workspace {cc}"), owner.clone()))
        .collect();
    for account in &company.accounts {
        let attr = |k: &str| account.attributes.get(k).cloned().unwrap_or_default();
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
        let policy_id = attr("policy_id");
        let idx = policies.iter().position(|p| p.id == policy_id).unwrap_or(0);
        if let Some(p) = policies.get_mut(idx) {
            p.employees.insert(email.to_lowercase(), e);
        }
    }
    let expensify = ExpensifySim::start(
        ExpensifySimConfig::new(EXPENSIFY_USER, EXPENSIFY_SECRET).with_policies(policies),
    )
    .await
    .context("cannot start the Expensify simulator")?;

    // BILL S&E's SCIM endpoint, fed by Okta; and Bill.com's own SCIM.
    // Everyone who had access before this month is there, leavers included
    // (nobody removed them: that is the problem roster solves).
    let bill_se = ScimSimConfig::new(BILL_SCIM_TOKEN);
    let mut bill_com = ScimSimConfig::new(BILLCOM_SCIM_TOKEN);
    // A larger org than Okta's default 600 requests a minute: the demo
    // compresses a month into seconds, reading Okta seven times.
    let mut okta =
        OktaSimConfig::new(OKTA_TOKEN).with_rate_limit(OKTA_RATE_LIMIT, Duration::from_secs(60));
    let mut spendesk = SpendeskSimConfig::new(SPENDESK_ID, SPENDESK_SECRET);
    // Okta is the directory: everyone HR lists has an Okta user, with
    // their employee number, department, manager and a department group.
    // This month's leavers are still ACTIVE there (HR knows first); HR's
    // status masters Okta's, so they are leavers all the same.
    let by_email: BTreeMap<String, &Person> = company
        .people
        .iter()
        .map(|p| (p.email.normalized(), p))
        .collect();
    let mut departments: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for p in &company.people {
        let mut user = OktaUser::new(p.email.as_str(), &p.first_name, &p.last_name)
            .with_employee_number(p.employee_id.as_str())
            .with_department(&p.department)
            .with_cost_center(&p.cost_center);
        user.id = okta_id(p);
        if let Some(manager) = p
            .manager_email
            .as_ref()
            .and_then(|m| by_email.get(&m.normalized()))
        {
            user = user.with_manager_id(&okta_id(manager));
        }
        okta = okta.with_user(user);
        if !p.department.is_empty() {
            departments
                .entry(format!("dept-{}", p.department.to_lowercase()))
                .or_default()
                .push(p.email.as_str());
        }
        if had_access(p, &BILL_COM_DEPTS, joiners) {
            let mut u = user_json(
                p.email.as_str(),
                &p.first_name,
                &p.last_name,
                Some(p.employee_id.as_str()),
            );
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] =
                p.department.clone().into();
            bill_com = bill_com.with_user(u);
        }
        if had_access(p, &SPENDESK_DEPTS, joiners) {
            let mut m = Member::new(p.email.as_str(), &p.first_name, &p.last_name);
            m.role = Some("requester".into());
            m.team = Some(p.department.clone());
            spendesk = spendesk.with_member(m);
        }
    }
    // A contractor nobody told HR about.
    spendesk = spendesk.with_member(Member::new(
        &format!("freelancer@{}", company.domain),
        "Free",
        "Lancer",
    ));
    for (group, members) in &departments {
        okta = okta.with_group(group, members);
    }
    let bill_se = ScimSim::start(bill_se)
        .await
        .context("cannot start the BILL S&E SCIM simulator")?;
    let okta = OktaSim::start(
        okta.with_app(
            OktaApp::new(OKTA_BILL_APP, "BILL Spend & Expense")
                .with_downstream(bill_se.url(), BILL_SCIM_TOKEN),
        ),
    )
    .await
    .context("cannot start the Okta simulator")?;
    let bill_com = ScimSim::start(bill_com)
        .await
        .context("cannot start the Bill.com SCIM simulator")?;
    let spendesk = SpendeskSim::start(spendesk)
        .await
        .context("cannot start the Spendesk simulator")?;

    // BILL S&E assignments in Okta as they were before roster: made through
    // Okta's API, so Okta provisions them downstream like any assignment.
    let bill_connector = registry::build(
        Catalog::builtin()?.require("bill-spend-expense")?,
        &ConnectorSettings::new(ConnectionId::new("bill-spend-expense"))
            .with_path("idp")
            .with_base_url(okta.url())
            .with_secret(SecretString::new(OKTA_TOKEN))
            .with_idp("okta")
            .with_okta_app_id(OKTA_BILL_APP),
    )?;
    let seed: Vec<roster_core::Action> = company
        .people
        .iter()
        .filter(|p| had_access(p, &BILL_SE_DEPTS, joiners))
        .map(|p| roster_core::Action {
            connection: ConnectionId::new("bill-spend-expense"),
            operation: Operation::Create,
            employee_id: Some(p.employee_id.clone()),
            email: p.email.clone(),
            account: None,
            attributes: [("email".to_string(), p.email.to_string())]
                .into_iter()
                .collect(),
            changes: Vec::new(),
            reason: "state before roster".into(),
            cause: roster_core::Cause::Grant,
        })
        .collect();
    // One paced pass, no retries: the simulator is local and healthy, and
    // any failure here means the demo's setup is wrong.
    let results = roster_connectors::driver::apply_once(
        &*bill_connector,
        seed,
        false,
        &roster_connectors::RateLimiter::unlimited(),
        &mut |_| {},
    )
    .await;
    if let Some(bad) = results.iter().find(|r| !r.is_applied()) {
        bail!("could not set up the BILL S&E assignments in the Okta simulator: {bad:?}");
    }
    Ok(Sims {
        expensify,
        okta,
        bill_se,
        bill_com,
        spendesk,
    })
}

/// The demo's engine over `store`, wired to the simulators as
/// `roster.toml` would describe them (also when the configuration changes
/// mid-story: `demo_browser`).
fn build_engine(
    store: Store,
    policy: Policy,
    sims: &Sims,
    data_dir: &std::path::Path,
    hr_path: &std::path::Path,
) -> Result<Engine> {
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin()?);
    engine.exports_dir = Some(data_dir.to_path_buf());
    wire(&mut engine, sims)?;
    let okta = okta_source(sims)?;
    let okta_id = okta.id().clone();
    engine.add_source(okta);
    // As `[sources.okta] revoke_sessions = true`: a leaver's Okta sessions
    // end before their accounts close.
    engine.revoke_sessions_in(&okta_id);
    // The demo's plans are checked like any other: against the connections
    // it wired and the columns of the HR file it wrote.
    let mut connections = engine.connector_ids();
    connections.extend(engine.bindings.keys().cloned());
    engine.vocabulary = Some(Vocabulary::new(
        connections,
        hr_csv::extra_columns(&std::fs::read_to_string(hr_path)?),
    ));
    Ok(engine)
}

/// The Okta user id the demo gives a person: stable, from their employee ID.
fn okta_id(p: &Person) -> String {
    format!("00u{}", p.employee_id.as_str().to_lowercase())
}

/// Okta as a source of people, as `[sources.okta]` would configure it.
fn okta_source(sims: &Sims) -> Result<std::sync::Arc<dyn roster_sources::Source>> {
    let mut config = OktaSourceConfig::new(
        ConnectionId::new(format!("source.{OKTA_SOURCE}")),
        sims.okta.url(),
        SecretString::new(OKTA_TOKEN),
    );
    // The simulator listens on loopback, which a real source may not.
    config.allow_private_network = true;
    config.rate_limit = RateWindow::new(OKTA_RATE_LIMIT, Duration::from_secs(60));
    Ok(std::sync::Arc::new(
        OktaSource::new(config).context("cannot configure the Okta source")?,
    ))
}

/// Connectors and catalog bindings for the four apps, as `roster.toml`
/// would describe them.
fn wire(engine: &mut Engine, sims: &Sims) -> Result<()> {
    let conns: [(&str, &str, ConnectorSettings, ConnectionSettings); 4] = [
        (
            "expensify",
            "expensify",
            ConnectorSettings::new(ConnectionId::new("expensify"))
                .with_path("api")
                .with_base_url(sims.expensify.url())
                .with_username(EXPENSIFY_USER)
                .with_secret(SecretString::new(EXPENSIFY_SECRET))
                .with_policy_ids(sample::workspace_ids().into_values().collect())
                .with_default_manager_email(format!("ceo@{}", "acme.example")),
            ConnectionSettings::default().with_credential(CredentialKind::PartnerCredentials),
        ),
        (
            "bill-spend-expense",
            "bill-spend-expense",
            ConnectorSettings::new(ConnectionId::new("bill-spend-expense"))
                .with_path("idp")
                .with_base_url(sims.okta.url())
                .with_secret(SecretString::new(OKTA_TOKEN))
                .with_idp("okta")
                .with_okta_app_id(OKTA_BILL_APP),
            ConnectionSettings::default()
                .with_plan("enterprise")
                .with_idp("okta"),
        ),
        (
            "bill-com",
            "bill-com",
            ConnectorSettings::new(ConnectionId::new("bill-com"))
                .with_path("scim")
                .with_base_url(sims.bill_com.url())
                .with_secret(SecretString::new(BILLCOM_SCIM_TOKEN)),
            ConnectionSettings::default()
                .with_plan("enterprise")
                .with_credential(CredentialKind::ScimToken),
        ),
        (
            "spendesk",
            "spendesk",
            ConnectorSettings::new(ConnectionId::new("spendesk"))
                .with_path("api")
                .with_base_url(sims.spendesk.url())
                .with_username(SPENDESK_ID)
                .with_secret(SecretString::new(SPENDESK_SECRET)),
            ConnectionSettings::default()
                .with_idp("okta")
                .with_credential(CredentialKind::ApiClient),
        ),
    ];
    let catalog = Catalog::builtin()?;
    for (id, app, settings, selection) in conns {
        engine.add_connector(
            registry::build(catalog.require(app)?, &settings)
                .with_context(|| format!("cannot build the {id} connector"))?,
        );
        engine.bind(
            ConnectionId::new(id),
            AppBinding {
                app: app.to_string(),
                settings: selection,
                task_sla_hours: None,
                assignee: Some("it-ops@acme.example".into()),
                escalate_to: Some("security@acme.example".into()),
                owners: Vec::new(),
            },
        );
    }
    Ok(())
}

/// Reads every app (importing `people` first, when given), plans, and
/// verifies people's tasks against that read: [`Roster::refresh`], the
/// sequence `roster plan` runs.
async fn refresh_step(
    roster: &Roster,
    by: &Principal,
    people: Option<(Vec<Person>, String)>,
    step: &str,
) -> Result<Planned> {
    let refreshed = roster
        .refresh(
            by,
            RefreshOptions {
                people,
                ..RefreshOptions::default()
            },
            &mut |_, _| {},
        )
        .await
        .context("no app could be read; see the errors above")?;
    let mut parts = Vec::new();
    for o in &refreshed.outcomes {
        match &o.error {
            Some(e) => println!("{step} reading {} failed: {e}", o.connection),
            None => parts.push(format!(
                "{} {}{}",
                o.connection,
                o.accounts,
                if o.complete {
                    ""
                } else {
                    " (INCOMPLETE: deactivations withheld)"
                }
            )),
        }
    }
    println!("{step} read accounts: {}", parts.join(", "));
    Ok(refreshed.planned)
}

async fn apply_step(
    roster: &Roster,
    by: &Principal,
    planned: Planned,
    step: &str,
    automated: &mut BTreeMap<ConnectionId, usize>,
) -> Result<()> {
    let t = Instant::now();
    // The plan was computed from the read just made: the one check needs
    // no second read.
    let approved = roster.check_planned(by, planned).await?;
    let (report, enqueued) = roster.apply(approved, &mut |_, _| {}).await?;
    let tasks = enqueued.tasks;
    let revoked = enqueued.revocations.iter().filter(|r| !r.failed()).count();
    if !enqueued.revocations.is_empty() {
        println!(
            "{step} ended the Okta sessions of {revoked} leaver(s) first ({} failed)",
            enqueued.revocations.len() - revoked
        );
    }
    for (c, n) in &report.applied {
        *automated.entry(c.clone()).or_insert(0) += n;
    }
    println!(
        "{step} applied {} action(s) through APIs, SCIM and Okta ({} failed) and opened {} task(s) for people, in {:.1} s",
        report.applied_total(),
        report.failed.len(),
        tasks.len(),
        t.elapsed().as_secs_f64()
    );
    for (c, who, why) in &report.failed {
        println!("      failed: {c} {who}: {why}");
    }
    if !report.failed.is_empty() {
        bail!("{} action(s) failed", report.failed.len());
    }
    Ok(())
}

/// Plays the people who work the task queue: a joiner signs in through SSO
/// (Spendesk creates the account, JIT), an admin clicks through Settings →
/// Members. Each task is then reported done, as `roster task done` would.
async fn play_humans(roster: &Roster, sims: &Sims, people: &[Person]) -> Result<()> {
    let it_ops = Principal::new(PrincipalKind::User, "it-ops@acme.example");
    let by_email: BTreeMap<String, &Person> =
        people.iter().map(|p| (p.email.normalized(), p)).collect();
    let h = sims.spendesk.handle();
    let mut done = 0;
    for t in roster
        .store()
        .human_tasks(&[HumanTaskState::Open, HumanTaskState::Reopened])
        .await?
    {
        if t.connection != "spendesk" {
            continue;
        }
        let email = t.subject_email.to_lowercase();
        match t.kind.as_str() {
            "jit-onboarding" => {
                let p = by_email.get(&email).context("task for an unknown person")?;
                h.jit_login(p.email.as_str(), &p.first_name, &p.last_name);
            }
            "deactivate" => {
                h.deactivate_by_hand(&email);
            }
            "update" => {
                let p = by_email.get(&email).context("task for an unknown person")?;
                h.set_by_hand(&email, MemberField::Team, &p.department);
                h.set_by_hand(&email, MemberField::Role, "requester");
            }
            _ => continue,
        }
        roster
            .complete_task(
                &it_ops,
                &t.id,
                Some("done in the Spendesk console".into()),
                None,
            )
            .await?;
        done += 1;
    }
    println!("      {done} task(s) done by people");
    Ok(())
}

fn print_plan_table(plan: &Plan, verbose: bool) {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(140)
        .set_header(vec!["app", "person", "action", "reason"]);
    let mut shown: BTreeMap<(&ConnectionId, Operation), usize> = BTreeMap::new();
    let mut hidden = 0;
    for (i, a) in plan.actions.iter().enumerate() {
        let n = shown.entry((&a.connection, a.operation)).or_insert(0);
        *n += 1;
        if !verbose && *n > 3 {
            hidden += 1;
            continue;
        }
        let mut what = format!("{} {}", a.operation.sign(), a.operation);
        for c in &a.changes {
            what.push_str(&format!(
                "\n{}: {} → {}",
                c.name,
                c.before.as_deref().unwrap_or("∅"),
                c.after.as_deref().unwrap_or("∅")
            ));
        }
        let mut why = a.reason.clone();
        if let Some(approval) = plan.approvals.get(&i) {
            why.push_str(&format!("\nneeds approval: {approval}"));
        }
        t.add_row(vec![
            a.connection.to_string(),
            a.email.to_string(),
            what,
            why,
        ]);
    }
    for line in t.to_string().lines() {
        println!("      {line}");
    }
    if hidden > 0 {
        println!(
            "      … and {hidden} more like these (--verbose shows every action; `roster plan` prints them all)"
        );
    }
    for f in &plan.findings {
        println!(
            "      ? {} {} {}: {}",
            f.connection,
            f.kind.as_str(),
            f.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            f.detail
        );
    }
}

async fn summary(
    engine: &Engine,
    automated: &BTreeMap<ConnectionId, usize>,
    last: &Plan,
) -> Result<()> {
    let tasks = engine.store.human_tasks(&[]).await?;
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED).set_header(vec![
        "app",
        "paths",
        "automated",
        "became a task",
        "verified by a read",
        "open risk",
    ]);
    for (conn, binding) in &engine.bindings {
        let app = engine.catalog.as_ref().and_then(|c| c.get(&binding.app));
        let paths = app
            .map(|app| {
                let mut p: Vec<String> = roster_catalog::select_all(app, &binding.settings)
                    .into_iter()
                    .filter(|c| c.op != Operation::Read)
                    .map(|c| format!("{} {}", c.op, c.path))
                    .collect();
                p.dedup();
                p.join(", ")
            })
            .unwrap_or_default();
        let mine: Vec<_> = tasks
            .iter()
            .filter(|x| x.connection == conn.as_str())
            .collect();
        let verified = mine
            .iter()
            .filter(|x| x.state == HumanTaskState::Verified)
            .count();
        let open = mine
            .iter()
            .filter(|x| x.state.is_outstanding() || x.state == HumanTaskState::Done)
            .count();
        let orphans = last
            .findings
            .iter()
            .filter(|f| &f.connection == conn)
            .count();
        let risk = match (open, orphans) {
            (0, 0) => "none".to_string(),
            (0, o) => format!("{o} finding(s) to review"),
            (n, 0) => format!("{n} task(s) unverified"),
            (n, o) => format!("{n} task(s) unverified, {o} finding(s)"),
        };
        t.add_row(vec![
            conn.to_string(),
            paths,
            automated.get(conn).copied().unwrap_or(0).to_string(),
            mine.len().to_string(),
            verified.to_string(),
            risk,
        ]);
    }
    println!("\n  per app:");
    for line in t.to_string().lines() {
        println!("  {line}");
    }
    Ok(())
}
