//! The CLI acts for the authenticated operator: the OS user it runs as,
//! mapped through `[operators]`, never a typed name or `$USER`; and it
//! applies only what the one check approves.

mod common;
use common::*;

/// The audit events as (actor, kind) pairs, through `roster audit export`.
fn audit(config: &std::path::Path) -> Vec<(String, String)> {
    let (out, stdout, stderr) = roster_with(config, &["audit", "export"]);
    assert!(out.status.success(), "{stderr}");
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["actor"].as_str().unwrap().to_string(),
                v["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_names_the_authenticated_operator_for_plan_approve_and_apply() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    map_operator(&config, "alice", &["it"]);
    // $USER says mallory (roster_with sets test-admin; override it here):
    // it changes nothing.
    let run = |args: &[&str]| {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
            .env("USER", "mallory")
            .args(args)
            .arg("--config")
            .arg(&config);
        run(cmd)
    };
    let (out, _, stderr) = run(&["plan"]);
    assert!(out.status.success(), "{stderr}");
    let (out, _, stderr) = run(&["approve", "latest", "--reason", "ticket 7"]);
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) = run(&["apply", "latest"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_none(),
        "the approved removal ran"
    );

    let events = audit(&config);
    for kind in ["plan.created", "plan.approved", "plan.apply_started"] {
        let actors: Vec<&str> = events
            .iter()
            .filter(|(_, k)| k == kind)
            .map(|(a, _)| a.as_str())
            .collect();
        assert_eq!(actors, vec!["user:alice"], "{kind}: {events:?}");
    }
    assert!(
        events.iter().all(|(a, _)| !a.contains("mallory")),
        "{events:?}"
    );

    // Applying the same plan again says what happened and does nothing.
    let (out, _, stderr) = run(&["apply", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("ENG-0007") && stderr.contains("already applied"),
        "{stderr}"
    );
    // So does rejecting what already ran.
    let (out, _, stderr) = run(&["reject", "latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("already ran"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typed_name_or_an_unlisted_os_user_cannot_act() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "{stderr}");
    // Approving as someone else by typing their name is refused.
    let c = config.clone();
    let (out, _, stderr) =
        blocking(move || roster_with(&c, &["approve", "latest", "--by", "the-ciso"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("is not who runs this command"), "{stderr}");

    // With [operators] listing only someone else, the OS user may not act.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[operators.someone-else]\n");
    std::fs::write(&config, text).unwrap();
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["approve", "latest"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("is not an operator of this roster"),
        "{stderr}"
    );
    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some(),
        "nothing applied: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn separation_of_duties_and_app_owners_are_policy() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        format!("[approvals]\nseparation_of_duties = \"always\"\n{text}"),
    )
    .unwrap();
    map_operator(&config, "alice", &[]);
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "{stderr}");
    // alice proposed the plan: she may not approve it.
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["approve", "latest"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("ENG-0008") && stderr.contains("separation of duties"),
        "{stderr}"
    );
    // The held removal does not run.
    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["apply", "latest"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("1 action(s) held for approval"), "{stdout}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some()
    );

    // The app's owners are bob and the finance group: alice, now off
    // separation of duties, still may not decide for expensify.
    std::fs::write(
        &policy,
        format!("[connections.expensify]\napprovers = [\"bob\", \"group:finance\"]\n{text}"),
    )
    .unwrap();
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["plan"])).await;
    assert!(out.status.success(), "{stderr}");
    let c = config.clone();
    let (out, _, stderr) = blocking(move || roster_with(&c, &["approve", "latest"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("approvers are bob, group:finance"),
        "{stderr}"
    );
    // In the finance group, she may.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("groups = []", "groups = [\"finance\"]"),
    )
    .unwrap();
    let c = config.clone();
    let (out, stdout, stderr) = blocking(move || roster_with(&c, &["approve", "latest"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("1 approved"), "{stdout}");
}
