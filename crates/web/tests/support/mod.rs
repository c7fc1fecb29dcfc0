//! A roster on an Expensify simulator behind the web UI on 127.0.0.1:0,
//! with local users and signed-in sessions, for the UI tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use roster_connectors::expensify::{ExpensifyConfig, ExpensifyConnector};
use roster_connectors::{RateWindow, SecretString};
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Email, EmploymentStatus, Person, Policy, Principal, Role};
use roster_engine::{Engine, NewWebUser, PlanScope, Roster, SessionLimits};
use roster_sim::expensify::{ExpensifySim, ExpensifySimConfig, RunningSim, SimEmployee, SimPolicy};
use roster_store::Store;
use roster_web::WebOptions;
use tokio::sync::oneshot;

pub const USER: &str = "ui@example.com";
pub const SECRET: &str = "ui-secret";
pub const POLICY_ID: &str = "AAAA000000000001";
pub const PEOPLE: usize = 20;
pub const PASSWORD: &str = "correct horse battery staple";

pub fn email(i: usize) -> String {
    format!("p{i}@acme.example")
}

pub fn people() -> Vec<Person> {
    (0..PEOPLE)
        .map(|i| Person {
            employee_id: roster_core::EmployeeId::new(format!("E{i:02}")),
            email: Email::parse(&email(i)).unwrap(),
            aliases: vec![],
            first_name: format!("P{i}"),
            last_name: "Test".into(),
            department: "Finance".into(),
            cost_center: "CC-1".into(),
            manager_email: Some(Email::parse("boss@acme.example").unwrap()),
            status: EmploymentStatus::Active,
            start_date: None,
            end_date: None,
            groups: vec![],
            attributes: Default::default(),
        })
        .collect()
}

/// The Expensify rule everyone is in line with, after `head`.
pub fn policy(head: &str) -> String {
    format!(
        "{head}\n[[rules]]\nname = \"all\"\nconnection = \"expensify\"\nwhen = {{ status = [\"active\", \"leave\"] }}\nset = {{ role = \"user\", manager_email = \"{{manager_email}}\", policy_id = \"{POLICY_ID}\" }}\n"
    )
}

/// Every Expensify action needs a person's approval.
pub fn sensitive() -> String {
    policy("[connections.expensify]\nsensitive = true")
}

pub fn operator() -> Principal {
    Principal::new(PrincipalKind::User, "operator")
}

pub struct Ui {
    pub base: String,
    pub roster: Arc<Roster>,
    pub sim: RunningSim,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A signed-in browser: its cookie and the session's CSRF token.
#[derive(Clone, Debug)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub async fn start(policy: &str) -> Ui {
    start_with(policy, SessionLimits::default()).await
}

/// An Expensify tenant in line with [`people`], roster past its first
/// plan under `policy`, and the UI (with `limits`) serving it.
pub async fn start_with(policy: &str, limits: SessionLimits) -> Ui {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tenant = SimPolicy::new(POLICY_ID, "Finance", "it@acme.example");
    for i in 0..PEOPLE {
        tenant = tenant.with_employee(SimEmployee::new(
            email(i),
            "boss@acme.example",
            format!("E{i:02}"),
        ));
    }
    let sim = ExpensifySim::start(
        ExpensifySimConfig::new(USER, SECRET)
            .scaled(0.01)
            .with_policies([tenant]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db").display().to_string();
    let store = Store::open(&db).await.unwrap();
    let mut engine = Engine::new(
        store,
        Policy::parse("p.toml", policy).expect("policy parses"),
    );
    let mut config = ExpensifyConfig::new(
        ConnectionId::new("expensify"),
        USER,
        SecretString::new(SECRET),
    )
    .with_base_url(sim.url());
    config.rate_limits = roster_connectors::expensify::documented_rate_limits()
        .into_iter()
        .map(|w: RateWindow| w.scaled(0.01))
        .collect();
    engine.add_connector(Arc::new(ExpensifyConnector::new(config).unwrap()));
    // The built-in catalog, with the connection bound to its app, for the
    // apps and coverage pages.
    let mut engine = engine.with_catalog(roster_catalog::Catalog::builtin().unwrap());
    engine.bind(
        ConnectionId::new("expensify"),
        roster_engine::options::AppBinding {
            app: "expensify".into(),
            ..Default::default()
        },
    );
    let roster = Roster::new(engine);
    let op = operator();
    roster.import_people(&op, &people(), "hr").await.unwrap();
    roster.read(&op, &mut |_, _| {}).await.unwrap();
    let planned = roster.plan(&op, PlanScope::All).await.unwrap();
    let approved = roster.check_planned(&op, planned).await.unwrap();
    roster.apply(approved, &mut |_, _| {}).await.unwrap();
    let roster = Arc::new(roster);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let router = roster_web::web_router(
        roster.clone(),
        WebOptions {
            limits,
            ..WebOptions::default()
        },
    );
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Ui {
        base: format!("http://{addr}"),
        roster,
        sim,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        stop: Some(tx),
        _dir: dir,
    }
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}

impl Ui {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds a local user with [`PASSWORD`].
    pub async fn user(&self, name: &str, role: Role, email: Option<&str>) {
        self.roster
            .add_web_user(
                &operator(),
                &NewWebUser {
                    name: name.into(),
                    role,
                    email: email.map(str::to_string),
                    password: Some(PASSWORD.into()),
                },
            )
            .await
            .unwrap();
    }

    /// Signs in through the form; the session's cookie and CSRF token.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<Browser, (u16, String)> {
        let resp = self
            .http
            .post(self.url("/ui/signin"))
            .form(&[("name", name), ("password", password), ("next", "/ui/")])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap();
        let Some(cookie) = cookie.filter(|_| status == 303) else {
            return Err((status, body));
        };
        let pair = cookie.split(';').next().unwrap().to_string();
        let page = self
            .get(
                &Browser {
                    cookie: pair.clone(),
                    csrf: String::new(),
                },
                "/ui/people",
            )
            .await;
        assert_eq!(page.0, 200, "{}", page.1);
        Ok(Browser {
            csrf: csrf_of(&page.1).expect("a signed-in page carries the CSRF token"),
            cookie: pair,
        })
    }

    /// A user of `role` signed in.
    pub async fn signed_in(&self, name: &str, role: Role, email: Option<&str>) -> Browser {
        self.user(name, role, email).await;
        self.sign_in(name, PASSWORD).await.unwrap()
    }

    pub async fn get(&self, b: &Browser, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(self.url(path))
            .header("cookie", &b.cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Posts a form as the browser would from the UI itself (same origin).
    pub async fn post(&self, b: &Browser, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .http
            .post(self.url(path))
            .header("cookie", &b.cookie)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form(fields)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Every change the app saw.
    pub fn app_changes(&self) -> usize {
        self.sim.handle().effects().len()
    }

    pub fn in_app(&self, email: &str) -> bool {
        self.sim.handle().employee(POLICY_ID, email).is_some()
    }

    /// People with `terminated` leavers imported, and a plan for everyone
    /// (their removal, waiting for approval under [`sensitive`]).
    pub async fn leavers_planned(&self, terminated: &[usize]) -> String {
        let mut hr = people();
        for i in terminated {
            hr[*i].status = EmploymentStatus::Terminated;
        }
        let op = operator();
        self.roster.import_people(&op, &hr, "hr").await.unwrap();
        // More than one leaver trips the source-change guard: confirm.
        self.roster.accept_source_change(&op).await.unwrap();
        let planned = self.roster.plan(&op, PlanScope::All).await.unwrap();
        planned.id.to_string()
    }
}
