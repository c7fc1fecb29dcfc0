//! Every connector through the shared conformance suite
//! (`roster_connectors::testkit`), against its simulator on loopback.
//! Verdicts come from the simulators' own records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use roster_connectors::bill_spend::{BillSpendConfig, BillSpendConnector};
use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector, attr as xattr};
use roster_connectors::okta_assign::{OktaAssignConfig, OktaAssignConnector};
use roster_connectors::scim::{Deprovision, PatchStyle, ScimAuth, ScimConfig, ScimConnector};
use roster_connectors::spendesk::{SpendeskConfig, SpendeskConnector};
use roster_connectors::testkit::{self, Subject};
use roster_connectors::{Connector, SecretString};
use roster_core::ConnectionId;
use roster_sim::bill_spend::{BillSim, BillSimConfig};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig};
use roster_sim::okta::{OktaApp, OktaSim, OktaSimConfig, OktaUser};
use roster_sim::scim_app::{ScimQuirks, ScimSim, ScimSimConfig};
use roster_sim::spendesk::{SpendeskSim, SpendeskSimConfig};

/// The connectors' timeout in these tests, and the injected slowness that
/// exceeds it.
const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(900);

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn run(subject: Subject) {
    let report = tokio::time::timeout(Duration::from_secs(30), testkit::run_all(&subject))
        .await
        .expect("the suite finishes in time");
    match report {
        Ok(lines) => {
            for l in lines {
                eprintln!("  {l}");
            }
        }
        Err(e) => panic!("conformance failed: {e}"),
    }
}

/// The suite's subject for a SCIM connector against `sim`: pages of 3,
/// the SCIM simulator's effect log as the oracle, a department update.
fn scim_subject(connector: Arc<dyn Connector>, sim: &roster_sim::scim_app::RunningScim) -> Subject {
    let mut s = Subject::new(
        connector,
        Arc::new(testkit::ScimOracle {
            handle: sim.handle().clone(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    s.create_attributes = Box::new(|_| attrs(&[("first_name", "New"), ("last_name", "Person")]));
    s.update = Some(("department".into(), "Finance".into()));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_connector_conforms() {
    let sim = ScimSim::start(ScimSimConfig::new("scim-token").with_seed(7))
        .await
        .unwrap();
    let mut c = ScimConfig::new(
        ConnectionId::new("scim-app"),
        sim.url(),
        SecretString::new("scim-token"),
    );
    c.timeout = TIMEOUT;
    let connector = Arc::new(ScimConnector::new(c).unwrap());
    run(scim_subject(connector, &sim)).await;
}

/// The generic SCIM client, configured for a quirky server, passes the
/// same suite against the simulator showing that quirk (and the simulator
/// refuses the common-case request, so a client ignoring its settings
/// fails).
async fn scim_variant_conforms(quirks: ScimQuirks, configure: impl Fn(&mut ScimConfig)) {
    let sim = ScimSim::start(
        ScimSimConfig::new("scim-token")
            .with_seed(7)
            .with_quirks(quirks),
    )
    .await
    .unwrap();
    let mut c = ScimConfig::new(
        ConnectionId::new("quirky-scim"),
        sim.url(),
        SecretString::new("scim-token"),
    );
    c.timeout = TIMEOUT;
    configure(&mut c);
    let connector = Arc::new(ScimConnector::new(c).unwrap());
    run(scim_subject(connector, &sim)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_connector_conforms_with_path_less_patch() {
    scim_variant_conforms(
        ScimQuirks {
            patch_without_path_only: true,
            ..ScimQuirks::default()
        },
        |c| c.patch_style = PatchStyle::ValueObject,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_connector_conforms_when_delete_is_the_deactivation() {
    scim_variant_conforms(
        ScimQuirks {
            delete_deactivates: true,
            ..ScimQuirks::default()
        },
        |c| c.deprovision = Deprovision::Delete,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_connector_conforms_with_basic_auth_and_no_filter() {
    scim_variant_conforms(
        ScimQuirks {
            basic_auth_user: Some("provisioner".into()),
            no_filter: true,
            ..ScimQuirks::default()
        },
        |c| {
            c.auth = ScimAuth::Basic {
                username: "provisioner".into(),
            };
            c.filter = false;
        },
    )
    .await;
}

/// "Any app whose record says SCIM works from a data file": a record no
/// code names, whose `[scim.client]` says its server takes path-less PATCH
/// and deactivates on DELETE, built through the registry as a deployment
/// would, passes the suite against a simulator with exactly those quirks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_app_configured_only_by_its_record_conforms() {
    let slack = include_str!("../../../catalog/slack.toml");
    let record = slack
        .replacen("id = \"slack\"", "id = \"acme-chat\"", 1)
        .replacen(
            "deprovision = \"delete\"",
            "deprovision = \"delete\"\npatch = \"value-object\"",
            1,
        );
    assert!(
        record.contains("patch = \"value-object\""),
        "slack.toml has [scim.client]"
    );
    let app = roster_catalog::Catalog::parse_app("acme-chat.toml", &record).unwrap();
    let sim = ScimSim::start(ScimSimConfig::new("chat-token").with_seed(7).with_quirks(
        ScimQuirks {
            patch_without_path_only: true,
            delete_deactivates: true,
            ..ScimQuirks::default()
        },
    ))
    .await
    .unwrap();
    let settings = roster_connectors::registry::ConnectorSettings::new(ConnectionId::new("chat"))
        .with_base_url(sim.url())
        .with_secret(SecretString::new("chat-token"))
        .with_plan("Enterprise")
        .with_timeout(TIMEOUT);
    let connector = roster_connectors::registry::build(&app, &settings).unwrap();
    run(scim_subject(connector, &sim)).await;
}

/// The OAuth client-credentials quirk: a client id, the connection's secret
/// as client secret, and access tokens from the simulator's token endpoint.
fn oauth_quirks(lifetime_secs: u64) -> ScimQuirks {
    ScimQuirks {
        oauth_client_id: Some("roster-client".into()),
        oauth_token_lifetime_secs: lifetime_secs,
        ..ScimQuirks::default()
    }
}

/// Salesforce's record says its SCIM server takes access tokens from OAuth
/// client credentials (`[scim.client] auth = "oauth2-client-credentials"`).
/// Built through the registry from that record and a connection (client id
/// as `username`, the org's `token_url` as an option), the generic client
/// passes the suite against a simulator that accepts only such tokens;
/// the access token is fetched once and kept, not once per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_scim_with_oauth_client_credentials_conforms_from_its_record() {
    let app = roster_catalog::Catalog::parse_app(
        "salesforce.toml",
        include_str!("../../../catalog/salesforce.toml"),
    )
    .unwrap();
    assert_eq!(
        app.scim.client.as_ref().and_then(|c| c.auth.as_deref()),
        Some("oauth2-client-credentials")
    );
    let sim = ScimSim::start(
        ScimSimConfig::new("client-secret")
            .with_seed(7)
            .with_quirks(oauth_quirks(0)),
    )
    .await
    .unwrap();
    let settings = roster_connectors::registry::ConnectorSettings::new(ConnectionId::new("acme"))
        .with_path("scim")
        .with_base_url(sim.url())
        .with_username("roster-client")
        .with_option("token_url", sim.token_url())
        .with_secret(SecretString::new("client-secret"))
        .with_plan("Enterprise")
        .with_timeout(TIMEOUT);
    let connector = roster_connectors::registry::build(&app, &settings).unwrap();
    run(scim_subject(connector, &sim)).await;
    let issued = sim.handle().tokens_issued();
    let requests = sim.handle().counters().requests;
    assert!(
        (1..=3).contains(&issued),
        "the token is kept between requests: {issued} tokens for {requests} requests"
    );
}

fn oauth_connector(sim: &roster_sim::scim_app::RunningScim, secret: &str) -> ScimConnector {
    let mut c = ScimConfig::new(
        ConnectionId::new("acme"),
        sim.url(),
        SecretString::new(secret),
    );
    c.timeout = TIMEOUT;
    c.auth = ScimAuth::OAuthClientCredentials {
        token_url: sim.token_url(),
        client_id: "roster-client".into(),
        scope: None,
    };
    ScimConnector::new(c).unwrap()
}

/// A kept token the server stops accepting (revoked, or expired early)
/// costs one transient failure, after which a new token is fetched; a
/// token that expires is renewed before it is sent; a wrong client secret
/// is refused at the token endpoint as unauthorized (never retried), and
/// neither the secret nor a token shows in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_are_renewed_replaced_once_when_revoked_and_refused_clearly() {
    use roster_connectors::ConnectorError;
    use roster_connectors::ListRequest;
    let sim = ScimSim::start(
        ScimSimConfig::new("client-secret")
            .with_seed(3)
            .with_quirks(oauth_quirks(2)),
    )
    .await
    .unwrap();
    let h = sim.handle().clone();
    let c = oauth_connector(&sim, "client-secret");
    c.list_accounts(ListRequest::first()).await.unwrap();
    c.list_accounts(ListRequest::first()).await.unwrap();
    assert_eq!(h.tokens_issued(), 1, "kept while valid");

    // Expiry: renewed before it runs out (a tenth of its life early), so
    // the server never sees an expired token.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let unauthorized = h.counters().unauthorized;
    c.list_accounts(ListRequest::first()).await.unwrap();
    assert_eq!(h.tokens_issued(), 2, "renewed on expiry");
    assert_eq!(
        h.counters().unauthorized,
        unauthorized,
        "no request with an expired token"
    );

    // Revocation: one transient failure, then a new token.
    h.revoke_access_tokens();
    let e = c.list_accounts(ListRequest::first()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Transient { .. }), "{e:?}");
    c.list_accounts(ListRequest::first()).await.unwrap();
    assert_eq!(h.tokens_issued(), 3);

    // A wrong secret: refused at the token endpoint, clearly, not retried.
    let wrong = oauth_connector(&sim, "not-the-secret");
    let e = wrong.list_accounts(ListRequest::first()).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("client id, secret and scope of acme"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-secret") && !text.contains("client-secret"),
        "{text}"
    );
    assert_eq!(h.tokens_issued(), 3);
}

/// The quirky simulators really refuse the common case: a client left at
/// its defaults fails against each (so the variants above prove the
/// settings, not a lenient simulator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quirky_servers_refuse_a_client_that_ignores_its_settings() {
    for quirks in [
        ScimQuirks {
            patch_without_path_only: true,
            ..ScimQuirks::default()
        },
        ScimQuirks {
            basic_auth_user: Some("provisioner".into()),
            ..ScimQuirks::default()
        },
        oauth_quirks(0),
    ] {
        let sim = ScimSim::start(
            ScimSimConfig::new("scim-token")
                .with_seed(2)
                .with_quirks(quirks.clone()),
        )
        .await
        .unwrap();
        let mut c = ScimConfig::new(
            ConnectionId::new("quirky-scim"),
            sim.url(),
            SecretString::new("scim-token"),
        );
        c.timeout = TIMEOUT;
        let connector: Arc<dyn Connector> = Arc::new(ScimConnector::new(c).unwrap());
        let mut s = Subject::new(
            connector,
            Arc::new(testkit::ScimOracle {
                handle: sim.handle().clone(),
                slow: SLOW,
            }),
        );
        s.update = Some(("department".into(), "Finance".into()));
        let r = tokio::time::timeout(Duration::from_secs(30), testkit::round_trip(&s))
            .await
            .unwrap();
        assert!(r.is_err(), "{quirks:?}: a default client passed: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bill_spend_connector_conforms() {
    let sim = BillSim::start(BillSimConfig::new("bill-token").with_seed(7))
        .await
        .unwrap();
    let mut c = BillSpendConfig::new(
        ConnectionId::new("bill-spend-expense"),
        SecretString::new("bill-token"),
    )
    .with_base_url(sim.url());
    c.timeout = TIMEOUT;
    let connector = Arc::new(BillSpendConnector::new(c).unwrap());
    let mut s = Subject::new(
        connector,
        Arc::new(testkit::BillOracle {
            handle: sim.handle().clone(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    s.create_attributes = Box::new(|_| {
        attrs(&[
            ("first_name", "New"),
            ("last_name", "Person"),
            ("role", "member"),
        ])
    });
    run(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_assignment_connector_conforms() {
    let mut config =
        OktaSimConfig::new("okta-token").with_app(OktaApp::new("0oabill", "BILL Spend & Expense"));
    // People in Okta: 7 to assign up front, 4 the suite assigns itself.
    for i in 0..11 {
        config = config.with_user(OktaUser::new(
            &format!("person{i}@example.com"),
            &format!("First{i}"),
            "Last",
        ));
    }
    let sim = OktaSim::start(config).await.unwrap();
    let mut c = OktaAssignConfig::new(
        ConnectionId::new("bill-spend-expense"),
        sim.url(),
        SecretString::new("okta-token"),
        "0oabill",
    );
    c.timeout = TIMEOUT;
    let connector = Arc::new(OktaAssignConnector::new(c).unwrap());
    // Assign the first 7 directly through the API (setup).
    let setup = Subject::new(
        connector.clone(),
        Arc::new(testkit::OktaOracle {
            handle: sim.handle().clone(),
            app_id: "0oabill".into(),
            slow: SLOW,
        }),
    );
    for i in 0..7 {
        let id = sim.user(&format!("person{i}@example.com")).unwrap().id;
        let a = roster_core::Action {
            connection: connector.id().clone(),
            operation: roster_core::Operation::Reactivate,
            employee_id: None,
            email: roster_core::Email::parse(&format!("person{i}@example.com")).unwrap(),
            account: Some(roster_core::AccountKey::new(id)),
            attributes: BTreeMap::new(),
            changes: Vec::new(),
            reason: "setup".into(),
            cause: roster_core::Cause::Regrant,
        };
        assert_eq!(
            connector
                .apply(roster_connectors::ApplyRequest::new(vec![a], false))
                .await
                .unwrap()
                .results,
            vec![roster_connectors::ActionResult::Applied]
        );
    }
    drop(setup);
    let mut s = Subject::new(
        connector,
        Arc::new(testkit::OktaOracle {
            handle: sim.handle().clone(),
            app_id: "0oabill".into(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    s.new_emails = (7..11).map(|i| format!("person{i}@example.com")).collect();
    s.create_attributes = Box::new(|_| attrs(&[("role", "MEMBER")]));
    s.update = Some(("role".into(), "ADMIN".into()));
    run(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spendesk_connector_conforms() {
    let sim = SpendeskSim::start(SpendeskSimConfig::new("key-id", "key-secret").with_seed(7))
        .await
        .unwrap();
    let mut c = SpendeskConfig::new(
        ConnectionId::new("spendesk"),
        "key-id",
        SecretString::new("key-secret"),
    )
    .with_base_url(sim.url());
    c.timeout = TIMEOUT;
    let connector = Arc::new(SpendeskConnector::new(c).unwrap());
    let mut s = Subject::new(
        connector,
        Arc::new(testkit::SpendeskOracle {
            handle: sim.handle().clone(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(3);
    run(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensify_connector_conforms() {
    // Scaled windows (10 s → 200 ms, 60 s → 1.2 s) so the documented
    // limits hold without a minute of waiting.
    let scale = 0.02;
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new("partner", "partner-secret")
            .scaled(scale)
            .with_seed(3, 3),
    )
    .await
    .unwrap();
    let mut c = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        "partner",
        SecretString::new("partner-secret"),
    )
    .with_base_url(sim.url());
    c.rate_limits = c.rate_limits.iter().map(|w| w.scaled(scale)).collect();
    c.timeout = TIMEOUT;
    c.policies_per_page = 1;
    let policy = sim.policies()[0].id.clone();
    let connector = Arc::new(ExpensifyConnector::new(c).unwrap());
    let mut s = Subject::new(
        connector,
        Arc::new(testkit::ExpensifyOracle {
            handle: sim.handle().clone(),
            slow: SLOW,
        }),
    );
    s.page_size = Some(1);
    s.create_attributes = Box::new(move |_| {
        attrs(&[
            (xattr::POLICY_ID, &policy),
            (xattr::MANAGER_EMAIL, "boss@example.com"),
            (xattr::ROLE, "user"),
        ])
    });
    s.update = Some((xattr::ROLE.into(), "auditor".into()));
    run(s).await;
}

/// Okta tells every caller how much of the org's window is left
/// (`X-Rate-Limit-Remaining`, `-Reset`). Other integrations share that
/// window, so roster's own documented budget can't know it is spent: the
/// driver must hold back when Okta says 0 is left. Here the org allows 3
/// requests per second while the connector's budget would allow 300 per
/// minute; only the headers keep roster within the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_holds_back_when_the_window_is_spent() {
    let mut config = OktaSimConfig::new("okta-token")
        .with_app(OktaApp::new("0oabill", "BILL Spend & Expense"))
        .with_rate_limit(3, Duration::from_secs(1));
    for i in 0..5 {
        config = config.with_user(OktaUser::new(
            &format!("person{i}@example.com"),
            &format!("First{i}"),
            "Last",
        ));
    }
    let sim = OktaSim::start(config).await.unwrap();
    let mut c = OktaAssignConfig::new(
        ConnectionId::new("bill-spend-expense"),
        sim.url(),
        SecretString::new("okta-token"),
        "0oabill",
    );
    c.timeout = Duration::from_secs(10);
    let connector = OktaAssignConnector::new(c).unwrap();
    let budget = roster_connectors::RateLimiter::new(connector.capabilities().rate_limits);
    let actions: Vec<roster_core::Action> = (0..5)
        .map(|i| {
            let id = sim.user(&format!("person{i}@example.com")).unwrap().id;
            roster_core::Action {
                connection: connector.id().clone(),
                operation: roster_core::Operation::Reactivate,
                employee_id: None,
                email: roster_core::Email::parse(&format!("person{i}@example.com")).unwrap(),
                account: Some(roster_core::AccountKey::new(id)),
                attributes: BTreeMap::new(),
                changes: Vec::new(),
                reason: "test".into(),
                cause: roster_core::Cause::Regrant,
            }
        })
        .collect();
    let opts = roster_connectors::driver::DriverOptions {
        page_size: Some(1),
        ..Default::default()
    };
    // No retries anywhere: a 429 that a retry would hide fails the test.
    let once = roster_connectors::retry::RetryPolicy::no_retries();
    let started = std::time::Instant::now();
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        roster_connectors::driver::apply_once(&connector, actions, false, &budget, &mut |_| {}),
    )
    .await
    .expect("in time");
    assert!(
        results
            .iter()
            .all(roster_connectors::ActionResult::is_applied),
        "{results:?}"
    );
    let o = tokio::time::timeout(
        Duration::from_secs(30),
        roster_connectors::driver::read_all(&connector, &budget, &once, &opts),
    )
    .await
    .expect("in time")
    .expect("read");
    assert!(o.complete);
    assert_eq!(o.accounts.len(), 5);
    let counters = sim.handle().counters();
    assert!(
        counters.requests >= 10,
        "more than three windows' worth: {counters:?}"
    );
    assert_eq!(counters.rate_limit_violations, 0, "{counters:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}: the spent windows were waited out",
        started.elapsed()
    );
}
