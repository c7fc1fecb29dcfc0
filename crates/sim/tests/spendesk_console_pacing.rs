//! The Spendesk console simulator's pacing rule over HTTP (no browser):
//! an admin's signed-in requests past the limit are answered 429 with
//! `Retry-After`, across all of the admin's sessions, and change nothing;
//! when the window has passed, pages are served again.

use std::time::Duration;

use roster_sim::spendesk::console::{base32_decode, totp_code};
use roster_sim::spendesk::{
    ConsoleAdmin, ConsoleEvent, ConsolePacing, Member, RunningSpendesk, SpendeskSim,
    SpendeskSimConfig,
};

const ADMIN: &str = "admin@acme.example";
const PASSWORD: &str = "pw";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// Signs in with password and TOTP code; returns the session cookie.
async fn sign_in(sim: &RunningSpendesk) -> String {
    let c = client();
    let base = sim.base_url();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("email", ADMIN), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let pending = set_cookie(&r, "sd_pending");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp_code(&base32_decode(SEED).unwrap(), now);
    let r = c
        .post(format!("{base}/login/totp"))
        .header("cookie", format!("sd_pending={pending}"))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    set_cookie(&r, "sd_session")
}

async fn members_page(sim: &RunningSpendesk, session: &str) -> reqwest::Response {
    client()
        .get(format!("{}/settings/members", sim.base_url()))
        .header("cookie", format!("sd_session={session}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn past_the_limit_the_console_answers_429_across_sessions_then_recovers() {
    let sim = SpendeskSim::start(
        SpendeskSimConfig::new("id", "secret")
            .with_member(Member::new("bob@acme.example", "Bob", "Jones"))
            .with_console_admin(ConsoleAdmin {
                email: ADMIN.into(),
                password: Some(PASSWORD.into()),
                totp_seed: Some(SEED.into()),
            }),
    )
    .await
    .unwrap();
    let window = Duration::from_millis(1500);
    sim.set_console_pacing(Some(ConsolePacing {
        requests: 4,
        window,
    }));
    // Two sessions of the same admin share the budget.
    let (a, b) = (sign_in(&sim).await, sign_in(&sim).await);
    for s in [&a, &b, &a, &b] {
        assert_eq!(members_page(&sim, s).await.status(), 200);
    }
    let r = members_page(&sim, &a).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("Too many requests"));
    // A throttled form post changes nothing.
    let id = sim.member("bob@acme.example").unwrap().id;
    let r = client()
        .post(format!(
            "{}/settings/members/{id}/deactivate",
            sim.base_url()
        ))
        .header("cookie", format!("sd_session={b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(sim.member("bob@acme.example").unwrap().status, "active");
    let throttled = sim
        .console_events()
        .iter()
        .filter(|e| matches!(e, ConsoleEvent::Throttled { admin } if admin == ADMIN))
        .count();
    assert_eq!(throttled, 2);
    assert_eq!(sim.console_requests(), 4);

    // Once the window has passed, pages are served again.
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(members_page(&sim, &a).await.status(), 200);
    // Without a rule, nothing is throttled.
    sim.set_console_pacing(None);
    for _ in 0..10 {
        assert_eq!(members_page(&sim, &b).await.status(), 200);
    }
    assert_eq!(sim.console_requests(), 15);
}
