//! `roster apps probe` on the `api` path: `Roster::probe_app` against a
//! connection served by the declarative REST connector (built from the
//! Zendesk catalog record alone), read-only, with the record's claims next
//! to what the simulated tenant actually did.

use roster_catalog::Catalog;
use roster_connectors::SecretString;
use roster_connectors::registry::{self, ConnectorSettings};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Policy, Principal};
use roster_engine::human::AppBinding;
use roster_engine::{Engine, Roster};
use roster_sim::common::RateWindow;
use roster_sim::rest_apps::{RestAppConfig, RestAppSim, Vendor};
use roster_store::Store;

async fn roster_probing(url: String, secret: &str) -> (tempfile::TempDir, Roster) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let policy = Policy::parse(
        "p.toml",
        "[[rules]]\nname = \"all\"\nconnection = \"support\"\nwhen = { department = [\"Support\"] }\n",
    )
    .unwrap();
    let catalog = Catalog::builtin().unwrap();
    let app = catalog.get("zendesk").unwrap().clone();
    let mut engine = Engine::new(store, policy).with_catalog(catalog);
    engine.bind(
        ConnectionId::new("support"),
        AppBinding {
            app: "zendesk".into(),
            ..AppBinding::default()
        },
    );
    let settings = ConnectorSettings::new(ConnectionId::new("support"))
        .with_path("api")
        .with_base_url(url)
        .with_username("admin@example.com/token")
        .with_secret(SecretString::new(secret));
    engine.add_connector(registry::build(&app, &settings).unwrap());
    (dir, Roster::new(engine))
}

fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_probe_records_auth_paging_and_headers_and_changes_nothing() {
    let sim = RestAppSim::start(
        RestAppConfig::new(Vendor::Zendesk)
            .with_seed(4)
            .with_rate_limits(vec![RateWindow {
                max_requests: 700,
                per: std::time::Duration::from_secs(60),
            }]),
    )
    .await
    .unwrap();
    let (_dir, roster) = roster_probing(sim.url(), "sim-secret").await;
    let report = roster.probe_app(&operator(), "support").await.unwrap();
    assert_eq!(report.app.as_deref(), Some("zendesk"));
    let get = |field: &str| {
        report
            .observed
            .iter()
            .find(|o| o.field == field)
            .unwrap_or_else(|| panic!("no {field} in {:?}", report.observed))
    };
    assert_eq!(get("probe.auth").value, true);
    assert_eq!(get("api.has_user_api").value, "yes");
    let paging = get("pagination.method");
    assert_eq!(paging.value, "cursor");
    assert!(
        paging.detail.contains("carried a continuation"),
        "{}",
        paging.detail
    );
    assert_eq!(paging.claimed.as_deref(), Some("cursor"));
    let headers = get("rate_limits.header_names");
    let seen: Vec<&str> = headers
        .value
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(seen.contains(&"x-rate-limit-remaining"), "{seen:?}");
    assert!(
        headers
            .claimed
            .as_deref()
            .is_some_and(|c| c.contains("X-Rate-Limit-Remaining")),
        "{:?}",
        headers.claimed
    );
    for o in &report.observed {
        assert_eq!(o.source, "probe:support");
    }
    assert!(
        sim.handle().effects().is_empty(),
        "the probe changed something"
    );
    let events = roster.store().audit_since(0).await.unwrap();
    let probed = events
        .iter()
        .find(|e| e.kind == "app.probed")
        .expect("an app.probed event");
    assert_eq!(probed.subject, "support");

    // A refused credential is an observation, not a failure.
    let (_dir2, roster) = roster_probing(sim.url(), "wrong").await;
    let report = roster.probe_app(&operator(), "support").await.unwrap();
    let auth = report
        .observed
        .iter()
        .find(|o| o.field == "probe.auth")
        .unwrap();
    assert_eq!(auth.value, false);
    assert!(auth.detail.contains("401"), "{}", auth.detail);
    assert_eq!(report.observed.len(), 1, "nothing else was read");
}
