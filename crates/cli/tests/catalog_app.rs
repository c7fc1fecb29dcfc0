//! A SCIM app needs only a data file: a catalog record no code names
//! (`acme-wiki`, written into a temporary `--catalog-dir`) is planned and
//! applied against the SCIM simulator through the `roster` binary, creating
//! a joiner and deactivating a leaver. The simulator's effect log is the
//! judge. And a connection that asks for a path the record does not offer
//! is refused before anything is read.

use std::path::{Path, PathBuf};

mod common;
use common::*;
use roster_sim::common::EffectKind;
use roster_sim::scim_app::{ScimSim, ScimSimConfig, user_json};
use serde_json::Value;

const TOKEN: &str = "wiki-scim-token";

/// A whole, valid record for an app roster has never heard of. Only data:
/// its SCIM offer names the generic SCIM client and the token it needs.
const RECORD: &str = r#"
id = "acme-wiki"
kind = "app"
category = "collaboration"
name = "Acme Wiki"
summary = { value = "A made-up wiki with a SCIM 2.0 server.", source = "vendor" }

[sources]
vendor = { ref = "https://wiki.example/docs/scim", title = "Acme Wiki SCIM docs (made up for a test)", as_of = "2026-12" }

[api]
has_user_api = { value = false, source = "vendor" }
auth_method = { value = "Bearer token", source = "vendor" }

[scim]
available = { value = true, source = "vendor" }
version = { value = "2.0", source = "vendor" }
endpoint_documented = { value = true, source = "vendor" }

[rate_limits]
documented = { value = false, source = "vendor" }
headers = { value = "unknown", source = "vendor" }
retry_after = { value = "unknown", source = "vendor" }

[pagination]
method = { value = "start-index", source = "vendor" }

[events]
webhooks = { value = "no", source = "vendor" }

[sso]
saml = { value = "unknown", source = "vendor" }
jit = { value = "unknown", source = "vendor" }

[csv]
available = { value = "no", source = "vendor" }

[manual]
create = { value = ["Invite the person in the wiki's admin page."], source = "vendor" }
update = { value = ["Edit the person in the wiki's admin page."], source = "vendor" }
deactivate = { value = ["Suspend the person in the wiki's admin page."], source = "vendor" }
reactivate = { value = ["Unsuspend the person in the wiki's admin page."], source = "vendor" }

[deactivation]
kind = { value = "suspend", source = "vendor" }
reversible = { value = "yes", source = "vendor" }
frees_seat = { value = "not documented", source = "vendor" }

[[paths]]
path = "scim"
ops = ["read", "create", "update", "deactivate", "reactivate"]
connector = "scim"
credentials = ["scim-token"]
reason = "{app} speaks SCIM 2.0"
source = "vendor"
"#;

/// The deployment: the record in `catalog.d/`, a policy that gives every
/// active person a wiki account, an HR file with a joiner and a leaver.
fn deployment(dir: &Path, url: &str, path: Option<&str>) -> (PathBuf, PathBuf) {
    let catalog = dir.join("catalog.d");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(catalog.join("acme-wiki.toml"), RECORD).unwrap();
    std::fs::write(
        dir.join("people.csv"),
        format!(
            "{HR_HEADER}\n\
             E1,new@acme.example,New,Joiner,Ops,CC-1,,active,2026-01-01,\n\
             E9,gone@acme.example,Gone,Leaver,Ops,CC-1,,terminated,2020-01-01,2026-11-01\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[[rules]]\nname = \"everyone\"\nconnection = \"wiki\"\nwhen = { status = [\"active\"] }\n\
         set = { department = \"{department}\" }\n",
    )
    .unwrap();
    let path = path.map_or(String::new(), |p| format!("path = \"{p}\"\n"));
    let config = dir.join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "policy = \"policy.toml\"\ndata_dir = \"data\"\n[source]\nhr_csv = \"people.csv\"\n\n\
             [connections.wiki]\napp = \"acme-wiki\"\n{path}base_url = \"{url}\"\n\
             secret = {{ env = \"TEST_WIKI_TOKEN\" }}\n"
        ),
    )
    .unwrap();
    (config, catalog)
}

async fn roster_in(config: &Path, catalog: &Path, args: &[&str]) -> (bool, String, String) {
    let (config, catalog) = (config.to_path_buf(), catalog.to_path_buf());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    blocking(move || {
        let mut cmd = roster();
        cmd.env("TEST_WIKI_TOKEN", TOKEN)
            .env("USER", "test-admin")
            .args(&args)
            .arg("--config")
            .arg(&config)
            .arg("--catalog-dir")
            .arg(&catalog);
        let (out, stdout, stderr) = run(cmd);
        (out.status.success(), stdout, stderr)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_scim_app_is_planned_and_applied_from_its_catalog_record_alone() {
    let sim = ScimSim::start(ScimSimConfig::new(TOKEN).with_user(user_json(
        "gone@acme.example",
        "Gone",
        "Leaver",
        Some("E9"),
    )))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, catalog) = deployment(dir.path(), &sim.url(), None);

    let (ok, stdout, stderr) = roster_in(&config, &catalog, &["plan", "--json"]).await;
    assert!(ok, "plan failed:\n{stdout}\n{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let ops: Vec<(String, String)> = plan["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["operation"].as_str().unwrap().to_string(),
                a["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        ops.contains(&("create".into(), "new@acme.example".into()))
            && ops.contains(&("deactivate".into(), "gone@acme.example".into())),
        "{ops:?}"
    );
    assert!(
        sim.handle().effects().is_empty(),
        "planning changes nothing"
    );

    // A connection's first plan holds its removals until someone approves.
    let (ok, stdout, stderr) = roster_in(
        &config,
        &catalog,
        &["approve", "latest", "--reason", "first run"],
    )
    .await;
    assert!(ok, "approve failed:\n{stdout}\n{stderr}");
    let (ok, stdout, stderr) = roster_in(&config, &catalog, &["apply", "latest"]).await;
    assert!(ok, "apply failed:\n{stdout}\n{stderr}");

    let effects: Vec<(String, EffectKind)> = sim
        .handle()
        .effects()
        .into_iter()
        .map(|e| (e.email, e.kind))
        .collect();
    assert!(
        effects.contains(&("new@acme.example".into(), EffectKind::Created)),
        "{effects:?}"
    );
    assert!(
        effects.contains(&("gone@acme.example".into(), EffectKind::Deactivated)),
        "{effects:?}"
    );
    let created = sim.handle().user_by_name("new@acme.example").unwrap();
    assert_eq!(created["active"], true, "{created}");
    let gone = sim.handle().user_by_name("gone@acme.example").unwrap();
    assert_eq!(gone["active"], false, "{gone}");

    // The world now matches: the next plan has nothing to do.
    let (ok, stdout, stderr) = roster_in(&config, &catalog, &["plan", "--json"]).await;
    assert!(ok, "second plan failed:\n{stdout}\n{stderr}");
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(again["plan"]["actions"], Value::Array(vec![]), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_path_the_record_does_not_offer_is_refused_before_any_request() {
    let sim = ScimSim::start(ScimSimConfig::new(TOKEN)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, catalog) = deployment(dir.path(), &sim.url(), Some("api"));
    let (ok, stdout, stderr) = roster_in(&config, &catalog, &["plan"]).await;
    assert!(!ok, "plan should fail:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("connections.wiki.path")
            && stderr.contains("acme-wiki does not offer it")
            && stderr.contains("scim, manual"),
        "{stderr}"
    );
    assert_eq!(
        sim.handle().counters().requests,
        0,
        "nothing was sent to the app"
    );
    assert!(sim.handle().effects().is_empty());
}
