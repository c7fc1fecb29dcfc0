//! `Roster::probe_app` against the SCIM simulator: read-only, dated
//! observations of discovery, auth, paging and rate-limit headers, next to
//! the catalog record's claims, recorded in the audit log.

use std::sync::Arc;

use roster_catalog::Catalog;
use roster_connectors::SecretString;
use roster_connectors::scim::{ScimConfig, ScimConnector};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Policy, Principal};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, Roster};
use roster_sim::scim_app::{ScimQuirks, ScimSim, ScimSimConfig};
use roster_store::Store;

async fn roster_probing(sim_url: String, token: &str) -> (tempfile::TempDir, Roster) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"all\"\nconnection = \"wiki\"\nwhen = { department = [\"Finance\"] }\n",
    )
    .unwrap();
    let mut engine = Engine::new(store, policy).with_catalog(Catalog::builtin().unwrap());
    engine.bind(
        ConnectionId::new("wiki"),
        AppBinding {
            app: "scim-app".into(),
            ..AppBinding::default()
        },
    );
    let c = ScimConfig::new(ConnectionId::new("wiki"), sim_url, SecretString::new(token));
    engine.add_connector(Arc::new(ScimConnector::new(c).unwrap()));
    (dir, Roster::new(engine))
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_records_dated_observations_and_changes_nothing() {
    let sim = ScimSim::start(ScimSimConfig::new("t0k3n").with_seed(3))
        .await
        .unwrap();
    let (_dir, roster) = roster_probing(sim.url(), "t0k3n").await;
    let report = roster.probe_app(&operator(), "wiki").await.unwrap();
    assert_eq!(report.app.as_deref(), Some("scim-app"));
    let get = |field: &str| {
        report
            .observed
            .iter()
            .find(|o| o.field == field)
            .unwrap_or_else(|| panic!("no {field} in {:?}", report.observed))
    };
    assert_eq!(get("probe.service_provider_config").value, true);
    assert_eq!(get("probe.resource_types").value, true);
    assert_eq!(get("probe.auth").value, true);
    assert_eq!(get("scim.available").value, "yes");
    assert_eq!(get("scim.client.filter").value, true);
    assert_eq!(get("scim.client.patch").value, true);
    let paging = get("pagination.method");
    assert_eq!(paging.value, "start-index");
    assert_eq!(
        paging.claimed.as_deref(),
        Some("startIndex"),
        "the record's claim is shown"
    );
    assert!(
        get("api.auth_method")
            .value
            .as_str()
            .unwrap()
            .contains("oauthbearertoken")
    );
    for o in &report.observed {
        assert_eq!(o.source, "probe:wiki");
        assert_eq!(o.as_of.len(), 10, "a date: {}", o.as_of);
    }
    // Read-only: the simulator logged no change.
    assert!(
        sim.handle().effects().is_empty(),
        "{:?}",
        sim.handle().effects()
    );
    // Recorded, dated, in the audit log.
    let events = roster.store().audit_since(0).await.unwrap();
    let probed = events
        .iter()
        .find(|e| e.kind == "app.probed")
        .expect("an app.probed event");
    assert_eq!(probed.subject, "wiki");
    assert!(probed.actor.contains("operator"));
    assert!(probed.data["observed"].as_array().unwrap().len() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_shows_a_rejected_credential_and_a_server_without_filter() {
    let sim = ScimSim::start(
        ScimSimConfig::new("right")
            .with_seed(1)
            .with_quirks(ScimQuirks {
                no_filter: true,
                ..ScimQuirks::default()
            }),
    )
    .await
    .unwrap();
    let (_dir, roster) = roster_probing(sim.url(), "wrong").await;
    let report = roster.probe_app(&operator(), "wiki").await.unwrap();
    let get = |field: &str| report.observed.iter().find(|o| o.field == field);
    assert_eq!(get("probe.auth").unwrap().value, false);
    assert!(get("probe.auth").unwrap().detail.contains("401"));
    assert!(get("scim.available").is_none(), "no list was read");

    let (_dir2, roster) = roster_probing(sim.url(), "right").await;
    let report = roster.probe_app(&operator(), "wiki").await.unwrap();
    let filter = report
        .observed
        .iter()
        .find(|o| o.field == "scim.client.filter")
        .unwrap();
    assert_eq!(filter.value, false, "the server says it cannot filter");

    let e = roster.probe_app(&operator(), "nope").await.unwrap_err();
    assert!(e.to_string().contains("no connection \"nope\""), "{e}");
}
