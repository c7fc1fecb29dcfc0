//! An identity provider as the source of people, through the binary:
//! `roster plan` reads the Okta simulator (no HR file), a person
//! deprovisioned in Okta is planned out and `roster apply` closes their
//! Expensify account; a locked-out person keeps theirs; an Okta that
//! fails stops `roster plan` before anything is imported.

use std::path::{Path, PathBuf};

mod common;
use common::*;
use roster_sim::common::Fault;
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, SimEmployee, SimPolicy};
use roster_sim::okta::{OktaSim, OktaSimConfig, OktaUser};

const WS: &str = "AAAA000000000001";
const POLICY_TEXT: &str = "[[rules]]\nname = \"everyone\"\nconnection = \"expensify\"\n\
    when = { status = [\"active\", \"leave\"] }\n\
    set = { role = \"user\", manager_email = \"boss@acme.example\", policy_id = \"AAAA000000000001\" }\n";

fn deployment(dir: &Path, expensify: &str, okta: &str) -> PathBuf {
    std::fs::write(dir.join("policy.toml"), POLICY_TEXT).unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n\n\
             [sources.okta]\nkind = \"okta\"\nbase_url = \"{okta}\"\ntoken = {{ env = \"TEST_OKTA_TOKEN\" }}\n\n\
             [connections.expensify]\napp = \"expensify\"\nbase_url = \"{expensify}\"\n\
             partner_user_id = \"partner\"\npartner_user_secret = {{ env = \"TEST_EXPENSIFY_SECRET\" }}\n"
        ),
    )
    .unwrap();
    config
}

async fn roster_at(config: &Path, args: &[&'static str]) -> (std::process::Output, String, String) {
    let config = config.to_path_buf();
    let args: Vec<&'static str> = args.to_vec();
    blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_EXPENSIFY_SECRET", "right-secret")
            .env("TEST_OKTA_TOKEN", "okta-cli-token")
            .args(&args)
            .arg("--config")
            .arg(&config);
        run(cmd)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn okta_deprovisioned_is_closed_through_plan_and_apply_and_a_failing_okta_imports_nothing() {
    let mut tenant = SimPolicy::new(WS, "Workspace 1", "it@acme.example");
    let mut okta = OktaSimConfig::new("okta-cli-token");
    for (i, name) in ["alice", "bob", "carol"].iter().enumerate() {
        let email = format!("{name}@acme.example");
        tenant = tenant.with_employee(SimEmployee::new(
            &email,
            "boss@acme.example",
            format!("E{i}"),
        ));
        okta =
            okta.with_user(OktaUser::new(&email, name, "L").with_employee_number(&format!("E{i}")));
    }
    let app = ExpensifySim::start(
        ExpensifySimConfig::new("partner", "right-secret").with_policies([tenant]),
    )
    .await
    .unwrap();
    let idp = OktaSim::start(okta).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), &app.url(), &idp.url());

    // Okta fails: nothing is imported, nothing planned.
    idp.handle().set_fault(Fault::ServerError);
    let (out, _, stderr) = roster_at(&config, &["plan"]).await;
    assert!(!out.status.success());
    assert!(
        stderr.contains("source.okta") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    idp.handle().clear_faults();

    // Bob left; Carol is locked out.
    assert!(
        idp.handle()
            .set_user_status("bob@acme.example", "DEPROVISIONED")
    );
    assert!(
        idp.handle()
            .set_user_status("carol@acme.example", "LOCKED_OUT")
    );
    let (out, stdout, stderr) = roster_at(&config, &["plan"]).await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("read 3 people from source.okta"),
        "{stderr}"
    );
    assert!(stdout.contains("- deactivate bob@acme.example"), "{stdout}");
    assert!(!stdout.contains("carol"), "{stdout}");
    assert!(app.handle().effects().is_empty(), "plan changes nothing");
    // The connection's first plan: its removals wait for a person.
    let (out, _, stderr) = roster_at(&config, &["approve", "latest"]).await;
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) = roster_at(&config, &["apply", "latest"]).await;
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(app.handle().employee(WS, "bob@acme.example").is_none());
    assert!(app.handle().employee(WS, "carol@acme.example").is_some());
    assert!(app.handle().employee(WS, "alice@acme.example").is_some());
}
