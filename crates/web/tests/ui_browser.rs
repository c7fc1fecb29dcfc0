//! The web UI in a real browser: Debian's chromium driven by Playwright
//! (`tests/browser/ui.mjs`, playwright-core from npm, no browser
//! download), with axe-core on every page.
//!
//! This starts the UI on loopback over a roster with a leaver's removal
//! waiting for approval and an open Spendesk offboarding task, with
//! sign-in through the Okta simulator's OpenID Connect provider and a
//! local admin, then runs the script and checks what it did reached the
//! app and the store: the leaver's account closed, the task reported done
//! with its evidence.
//!
//! `scripts/browser-tools.sh` installs chromium and the npm packages
//! (`scripts/test.sh` runs it first); without them this test fails naming
//! that script. Screenshots go to a temporary directory; set
//! `ROSTER_UPDATE_SCREENSHOTS=1` to write them to `docs/screenshots/`
//! (the README shows those).

mod oidc_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roster_core::Role;
use roster_engine::SessionLimits;

/// How long a sign-in counts as fresh here: short, so the script sees a
/// stale session asked to sign in again before approving.
const FRESH: Duration = Duration::from_secs(12);
const TASK: &str = "t-spendesk-p5";

/// Runs `command` to its end, or kills it after `limit`.
fn run_bounded(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/browser-tools.sh installs it)");
    let deadline = Instant::now() + limit;
    // The output is read after exit; the script prints little, far below
    // a pipe's buffer.
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the browser suite did not finish within {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_finds_a_leaver_approves_and_completes_a_task_in_chromium() {
    let root = repo_root();
    let chromium = std::env::var("ROSTER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let tools = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        Path::new(&chromium).exists() && tools.exists(),
        "the browser tests need {chromium} and tests/browser/node_modules: run scripts/browser-tools.sh"
    );

    let ui = support::start(&support::sensitive()).await;
    ui.user("root", Role::Admin, None).await;
    let plan = ui.leavers_planned(&[3]).await;
    assert!(ui.in_app(&support::email(3)));
    // A Spendesk offboarding step, as a deactivation there opens one (no
    // API can do it); arranged in the store, the UI only reads it.
    ui.roster
        .store()
        .open_human_task(&roster_store::HumanTask {
            id: TASK.into(),
            dedupe_key: format!("key-{TASK}"),
            connection: "spendesk".into(),
            kind: "deactivate".into(),
            subject_email: support::email(5),
            employee_id: Some("E05".into()),
            account_key: None,
            plan_id: None,
            action_idx: None,
            title: "Deactivate p5@acme.example in Spendesk".into(),
            checklist: vec![
                "Open Spendesk → Settings → Members".into(),
                "Find p5@acme.example and choose Deactivate".into(),
                "Attach a screenshot of the member list".into(),
            ],
            assignee: None,
            state: roster_store::HumanTaskState::Open,
            flagged: false,
            note: None,
            evidence: None,
            due_ms: Some(1),
            reminded_ms: None,
            escalated_ms: None,
            created_ms: 1,
            updated_ms: 1,
        })
        .await
        .unwrap();
    let oidc = oidc_support::start_with(
        ui.roster.clone(),
        &[
            ("ada@acme.example", &["roster-admins", "Everyone"]),
            ("eve@acme.example", &["Everyone"]),
        ],
        SessionLimits {
            fresh: FRESH,
            ..SessionLimits::default()
        },
    )
    .await;

    let update = std::env::var("ROSTER_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let tmp = tempfile::tempdir().unwrap();
    let shots = if update {
        root.join("docs/screenshots")
    } else {
        tmp.path().join("screenshots")
    };
    let started = Instant::now();
    let mut command = std::process::Command::new("node");
    command
        .arg(root.join("tests/browser/ui.mjs"))
        .arg(&oidc.base)
        .env("ROSTER_CHROMIUM", &chromium)
        .env("ROSTER_UI_LOCAL_USER", "root")
        .env("ROSTER_UI_LOCAL_PASSWORD", support::PASSWORD)
        .env("ROSTER_UI_IDP_USER", "ada@acme.example")
        .env("ROSTER_UI_IDP_PASSWORD", oidc_support::IDP_PASSWORD)
        .env("ROSTER_UI_UNMAPPED_USER", "eve@acme.example")
        .env("ROSTER_UI_LEAVER", support::email(3))
        .env("ROSTER_UI_PLAN", &plan)
        .env("ROSTER_UI_TASK", TASK)
        .env("ROSTER_UI_FRESH_SECS", FRESH.as_secs().to_string())
        .env("ROSTER_UI_SCREENSHOTS", &shots);
    let out = tokio::task::spawn_blocking(move || run_bounded(command, Duration::from_secs(150)))
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    assert!(out.status.success(), "tests/browser/ui.mjs failed:\n{log}");
    assert!(
        log.contains("axe on") && log.contains("browser: 9 steps"),
        "{log}"
    );
    println!("browser suite: {:.1} s", started.elapsed().as_secs_f64());

    // What the clicks did, judged by the app and the store.
    assert!(
        !ui.in_app(&support::email(3)),
        "the approved and applied plan closed the leaver's account"
    );
    let task = ui.roster.store().human_task(TASK).await.unwrap().unwrap();
    assert_ne!(task.state, roster_store::HumanTaskState::Open);
    assert!(
        task.evidence
            .as_deref()
            .is_some_and(|e| e.contains("spendesk-members.png")),
        "{:?}",
        task.evidence
    );
    for name in [
        "signin",
        "dashboard",
        "person",
        "plan",
        "task",
        "dashboard-mobile",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png");
    }
}
