//! Notifications end to end: audit events become signed webhook and
//! Slack-compatible messages on loopback receivers, retried on 5xx, final
//! on 4xx, recorded in the delivery log, never sent twice, never
//! replaying history, and never carrying a secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use roster_core::principal::PrincipalKind;
use roster_core::{ConnectionId, Policy, Principal};
use roster_engine::notify::{Notifier, RawNotify, signature};
use roster_engine::{Engine, Roster};
use roster_store::{AuditEvent, Store};

const SECRET: &str = "a-webhook-secret-of-some-length";
const SLACK_PATH: &str = "/services/T000/B000/slack-credential";

#[derive(Clone, Default)]
struct Received {
    hook: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    slack: Arc<Mutex<Vec<String>>>,
    /// Answers with 503 this many times before accepting.
    fail_first: Arc<Mutex<u32>>,
}

async fn hook(State(r): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    let mut left = r.fail_first.lock().unwrap();
    if *left > 0 {
        *left -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.hook.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

async fn slack(State(r): State<Received>, body: String) -> StatusCode {
    r.slack.lock().unwrap().push(body);
    StatusCode::OK
}

async fn refuse() -> StatusCode {
    StatusCode::GONE
}

async fn receiver() -> (String, Received) {
    let r = Received::default();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .route(SLACK_PATH, post(slack))
        .route("/gone", post(refuse))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

async fn wired(url: &str, extra: &str) -> (Roster, tempfile::TempDir) {
    wired_with(url, "", extra).await
}

/// [`wired`] with `top` among `[notify]`'s own keys (before any table).
async fn wired_with(url: &str, top: &str, extra: &str) -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let text = format!(
        "{top}base_url = \"https://roster.acme.example\"\n\
         [channels.security]\nkind = \"webhook\"\nurl = \"{url}/hook\"\n\
         secret = {{ env = \"HOOK_SECRET\" }}\nevents = [\"approval_needed\", \"connection_paused\"]\n\
         [channels.it]\nkind = \"slack\"\nurl = {{ env = \"SLACK_URL\" }}\nevents = [\"*\"]\n{extra}"
    );
    let raw: RawNotify = toml::from_str(&text).unwrap();
    let slack_url = format!("{url}{SLACK_PATH}");
    let notifier = Notifier::from_config(&raw, dir.path(), false, &|name| match name {
        "HOOK_SECRET" => Some(SECRET.to_string()),
        "SLACK_URL" => Some(slack_url.clone()),
        _ => None,
    })
    .unwrap();
    let mut engine = Engine::new(store, Policy::parse("p.toml", "").unwrap());
    engine.notifier = Some(notifier);
    engine.notify_backoff = Duration::from_millis(10);
    (Roster::new(engine), dir)
}

async fn audit(roster: &Roster, kind: &str, subject: &str, data: serde_json::Value) {
    roster
        .store()
        .append_audit(AuditEvent {
            at_ms: 1,
            actor: "user:alice".into(),
            kind: kind.into(),
            subject: subject.into(),
            data,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn audit_events_reach_each_channel_once_signed_and_linked() {
    let (url, got) = receiver().await;
    let (roster, _dir) = wired(&url, "").await;
    // History before notifications were turned on is not replayed.
    audit(
        &roster,
        "plan.awaiting_approval",
        "P-old",
        serde_json::json!({"waiting": 1}),
    )
    .await;
    let first = roster.deliver_notifications().await.unwrap();
    assert_eq!((first.sent, first.failed), (0, 0));

    audit(
        &roster,
        "plan.awaiting_approval",
        "P-1",
        serde_json::json!({"waiting": 2}),
    )
    .await;
    audit(&roster, "plan.created", "P-1", serde_json::json!({})).await;
    roster
        .pause(
            &Principal::new(PrincipalKind::User, "alice"),
            Some(&ConnectionId::new("expensify")),
            Some("vendor incident"),
        )
        .await
        .unwrap();
    audit(
        &roster,
        "task.opened",
        "T-1",
        serde_json::json!({"kind": "deactivate", "subject": "bob@acme.example", "connection": "spendesk"}),
    )
    .await;
    let d = roster.deliver_notifications().await.unwrap();
    // Webhook: approval + pause; Slack: approval + pause + task.
    assert_eq!((d.sent, d.failed), (5, 0), "{d:?}");

    let hooks = got.hook.lock().unwrap().clone();
    assert_eq!(hooks.len(), 2);
    for (headers, body) in &hooks {
        let ts: i64 = headers["x-roster-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let sig = headers["x-roster-signature"].to_str().unwrap();
        assert_eq!(
            sig,
            signature(SECRET, ts, body.as_bytes()),
            "the receiver can verify it"
        );
        assert!(!body.contains(SECRET));
    }
    let first: serde_json::Value = serde_json::from_str(&hooks[0].1).unwrap();
    assert_eq!(first["event"], "approval_needed");
    assert_eq!(first["subject"], "P-1");
    assert_eq!(first["link"], "https://roster.acme.example/plans/P-1");
    let second: serde_json::Value = serde_json::from_str(&hooks[1].1).unwrap();
    assert_eq!(second["event"], "connection_paused");

    let slack = got.slack.lock().unwrap().clone();
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(slack[2].contains("T-1") && slack[2].contains("bob@acme.example"));
    assert!(slack.iter().all(|m| !m.contains("slack-credential")));

    // A second pass sends nothing again.
    let again = roster.deliver_notifications().await.unwrap();
    assert_eq!((again.sent, again.failed), (0, 0));
    let log = roster.notification_log(50).await.unwrap();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|d| d.status == "sent" && d.attempts == 1));
}

#[tokio::test]
async fn a_5xx_is_retried_and_a_4xx_is_final_logged_audited_and_skipped() {
    let (url, got) = receiver().await;
    let extra = format!(
        "[channels.broken]\nkind = \"webhook\"\nurl = \"{url}/gone\"\n\
         secret = {{ env = \"HOOK_SECRET\" }}\nevents = [\"approval_needed\"]\n"
    );
    let (roster, _dir) = wired(&url, &extra).await;
    roster.deliver_notifications().await.unwrap();
    *got.fail_first.lock().unwrap() = 2;
    audit(
        &roster,
        "plan.awaiting_approval",
        "P-2",
        serde_json::json!({"waiting": 1}),
    )
    .await;
    audit(
        &roster,
        "plan.awaiting_approval",
        "P-3",
        serde_json::json!({"waiting": 1}),
    )
    .await;
    let d = roster.deliver_notifications().await.unwrap();
    // security: 2 sent (the first after two 503s); it: 2; broken: 2 failed.
    assert_eq!((d.sent, d.failed), (4, 2), "{d:?}");
    assert_eq!(got.hook.lock().unwrap().len(), 2);
    let log = roster.notification_log(50).await.unwrap();
    let retried = log
        .iter()
        .find(|d| d.channel == "security" && d.attempts == 3)
        .expect("the 503s were retried");
    assert_eq!(retried.status, "sent");
    let broken: Vec<_> = log.iter().filter(|d| d.channel == "broken").collect();
    assert_eq!(broken.len(), 2);
    assert!(
        broken
            .iter()
            .all(|d| d.status == "failed" && d.attempts == 1)
    );
    assert!(broken[0].last_error.as_deref().unwrap().contains("410"));
    // Audited, and the failure itself notifies nobody (no loop).
    let events = roster.store().audit_since(0).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "notify.failed").count(),
        2
    );
    let again = roster.deliver_notifications().await.unwrap();
    assert_eq!((again.sent, again.failed), (0, 0));
}

#[test]
fn a_bad_channel_is_refused_at_load_naming_the_key() {
    let cases = [
        (
            "[channels.x]\nkind = \"sms\"\nurl = \"https://a.example/\"\nevents = [\"*\"]\n",
            "channels.x.kind",
        ),
        (
            "[channels.x]\nkind = \"webhook\"\nurl = \"https://a.example/\"\nevents = [\"*\"]\n",
            "channels.x.secret",
        ),
        (
            "[channels.x]\nkind = \"slack\"\nurl = \"https://a.example/\"\nevents = [\"approve\"]\n",
            "channels.x.events",
        ),
        (
            "[channels.x]\nkind = \"slack\"\nurl = \"http://169.254.169.254/\"\nevents = [\"*\"]\n",
            "channels.x.url",
        ),
        (
            "[channels.x]\nkind = \"slack\"\nurl = \"https://a.example/\"\nevents = []\n",
            "channels.x.events",
        ),
    ];
    for (text, key) in cases {
        let raw: RawNotify = toml::from_str(text).unwrap();
        let e = Notifier::check(&raw, false).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
}

/// A minimal SMTP sink on loopback: accepts every message and keeps it.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kept = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = &mut data {
                        if line == "." {
                            kept.lock().unwrap().push(data.take().unwrap());
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 ok\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"502 no\r\n",
                    };
                    w.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, got)
}

#[tokio::test]
async fn an_email_channel_sends_over_smtp_with_the_link_and_no_secret() {
    let (url, _got) = receiver().await;
    let (port, mails) = smtp_sink().await;
    let extra = format!(
        "[channels.mail]\nkind = \"email\"\nsmtp = \"smtp://127.0.0.1:{port}?tls=none\"\n\
         from = \"roster@acme.example\"\nto = [\"it-ops@acme.example\", \"sec@acme.example\"]\n\
         events = [\"approval_needed\"]\n"
    );
    let (roster, _dir) = wired(&url, &extra).await;
    roster.deliver_notifications().await.unwrap();
    audit(
        &roster,
        "plan.awaiting_approval",
        "P-9",
        serde_json::json!({"waiting": 3}),
    )
    .await;
    let d = roster.deliver_notifications().await.unwrap();
    assert_eq!(d.failed, 0, "{d:?}");
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.contains("Subject: [roster] approval needed: P-9"), "{m}");
    assert!(
        m.contains("To: it-ops@acme.example, sec@acme.example"),
        "{m}"
    );
    assert!(m.contains("https://roster.acme.example/plans/P-9"), "{m}");
    assert!(!m.contains(SECRET));
}

#[test]
fn plain_smtp_is_refused_beyond_this_host_and_an_email_needs_its_envelope() {
    let cases = [
        (
            "smtp = \"smtp://mail.acme.example:25?tls=none\"\nfrom = \"r@a.example\"\nto = [\"x@a.example\"]",
            "channels.m.smtp",
        ),
        (
            "smtp = \"http://mail.acme.example\"\nfrom = \"r@a.example\"\nto = [\"x@a.example\"]",
            "channels.m.smtp",
        ),
        (
            "smtp = \"smtp://mail.acme.example:587\"\nto = [\"x@a.example\"]",
            "channels.m.from",
        ),
        (
            "smtp = \"smtp://mail.acme.example:587\"\nfrom = \"r@a.example\"",
            "channels.m.to",
        ),
        (
            "smtp = \"smtp://mail.acme.example:587\"\nfrom = \"r@a.example\"\nto = [\"x@a.example\"]\nusername = \"u\"",
            "channels.m.password",
        ),
    ];
    for (body, key) in cases {
        let text = format!("[channels.m]\nkind = \"email\"\nevents = [\"*\"]\n{body}\n");
        let raw: RawNotify = toml::from_str(&text).unwrap();
        let e = Notifier::check(&raw, false).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    let ok: RawNotify = toml::from_str(
        "[channels.m]\nkind = \"email\"\nevents = [\"*\"]\nsmtp = \"smtp://mail.acme.example:587\"\n\
         from = \"r@a.example\"\nto = [\"x@a.example\"]\nusername = \"u\"\npassword = { env = \"P\" }\n",
    )
    .unwrap();
    Notifier::check(&ok, false).unwrap();
}

/// Three hours from now: past a one-hour SLA.
fn three_hours_on() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::hours(3)
}

/// A stored plan with one deactivation in `connection` that waits for
/// approval, created now.
async fn plan_waiting_in(roster: &Roster, connection: &str) -> roster_store::PlanId {
    let plan: roster_core::Plan = serde_json::from_value(serde_json::json!({
        "actions": [{
            "connection": connection, "operation": "deactivate", "employee_id": "E1",
            "email": "leaver@acme.example", "account": "u1", "reason": "left"
        }],
        "findings": [], "classification": {}, "observed_digest": "d",
        "approvals": { "0": "a mass deactivation waits for a person" }
    }))
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    roster
        .store()
        .save_plan_proposed(&plan, now, None, Some("user:alice"))
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_go_to_the_apps_owners_and_escalations_to_the_fallback_once() {
    let (url, got) = receiver().await;
    let (port, mails) = smtp_sink().await;
    let top = "approval_sla_hours = 1\napproval_escalate_to = [\"group:it-leads\"]\n";
    let extra = format!(
        "[groups]\nfinance = [\"carol@acme.example\", \"Dan@acme.example\"]\nit-leads = [\"erin@acme.example\"]\n\
         [channels.owners]\nkind = \"email\"\nsmtp = \"smtp://127.0.0.1:{port}?tls=none\"\n\
         from = \"roster@acme.example\"\nto = [\"it-ops@acme.example\"]\nroute = \"owners\"\n\
         events = [\"*\"]\n\
         [channels.expensify-team]\nkind = \"webhook\"\nurl = \"{url}/hook\"\n\
         secret = {{ env = \"HOOK_SECRET\" }}\nevents = [\"*\"]\nconnections = [\"expensify\"]\n"
    );
    let (roster, _dir) = wired_with(&url, top, &extra).await;
    // The same store and channels, with the bindings and a clock three
    // hours on, as the service would have them later.
    let later = {
        let mut engine = Engine::new(roster.store().clone(), Policy::parse("p.toml", "").unwrap())
            .with_clock(three_hours_on);
        engine.notifier = roster.engine().notifier.clone();
        engine.notify_backoff = Duration::from_millis(10);
        for (c, owners) in [
            ("spendesk", vec!["group:finance".to_string()]),
            ("expensify", vec!["exp-owner@acme.example".to_string()]),
        ] {
            engine.bind(
                ConnectionId::new(c),
                roster_engine::human::AppBinding {
                    app: c.into(),
                    owners,
                    escalate_to: Some("group:it-leads".into()),
                    ..Default::default()
                },
            );
        }
        Roster::new(engine)
    };
    later.deliver_notifications().await.unwrap();

    // A Spendesk task goes to Spendesk's owners (a named group), not to
    // the fixed list, and not to the Expensify team's channel.
    audit(
        &later,
        "task.opened",
        "T-1",
        serde_json::json!({"connection": "spendesk", "kind": "deactivate", "subject": "leaver@acme.example"}),
    )
    .await;
    // A message about nobody in particular goes to the fixed list.
    audit(
        &later,
        "sessions.revoked",
        "E1",
        serde_json::json!({"outcome": "failed", "email": "leaver@acme.example", "source": "okta", "error": "503", "task": "T-2"}),
    )
    .await;
    let spendesk_plan = plan_waiting_in(&later, "spendesk").await;
    let d = later.deliver_notifications().await.unwrap();
    assert_eq!(d.failed, 0, "{d:?}");
    {
        let mails = mails.lock().unwrap();
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert!(
            mails[0].contains("To: carol@acme.example, dan@acme.example"),
            "{}",
            mails[0]
        );
        assert!(!mails[0].contains("it-ops@"), "{}", mails[0]);
        assert!(mails[1].contains("To: it-ops@acme.example"), "{}", mails[1]);
    }
    let events = |got: &Received| -> Vec<serde_json::Value> {
        got.hook
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    };
    let heard = events(&got);
    assert_eq!(
        heard.iter().map(|b| b["event"].clone()).collect::<Vec<_>>(),
        [serde_json::json!("sessions_not_revoked")],
        "the Expensify team's channel hears what concerns no app, nothing about Spendesk"
    );

    // An Expensify approval waiting past its SLA: escalated once, to the
    // fallback group; the Expensify channel hears it with its recipients.
    let expensify_plan = plan_waiting_in(&later, "expensify").await;
    // Both plans were stored at the real time, three hours before the
    // later clock: past the one-hour SLA.
    let swept = later.notify_sweep(false).await.unwrap();
    assert_eq!(swept.approvals, 2, "{swept:?}");
    assert_eq!(
        later.notify_sweep(false).await.unwrap().approvals,
        0,
        "once per plan"
    );
    later.deliver_notifications().await.unwrap();
    let mails = mails.lock().unwrap().clone();
    let escalations: Vec<&String> = mails
        .iter()
        .filter(|m| m.contains("approval overdue"))
        .collect();
    assert_eq!(escalations.len(), 2, "{mails:?}");
    assert!(
        escalations
            .iter()
            .all(|m| m.contains("To: erin@acme.example")),
        "{escalations:?}"
    );
    let heard = events(&got);
    assert_eq!(heard.len(), 2, "{heard:?}");
    let body = &heard[1];
    assert_eq!(body["event"], "approval_escalated");
    assert_eq!(body["subject"], expensify_plan.as_str());
    assert_eq!(body["connections"], serde_json::json!(["expensify"]));
    assert_eq!(body["recipients"], serde_json::json!(["erin@acme.example"]));
    let _ = spendesk_plan;
}

#[test]
fn owners_and_routes_are_checked_at_load() {
    for (text, key) in [
        (
            "[channels.s]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nevents = [\"*\"]\nroute = \"owners\"\n",
            "channels.s.route",
        ),
        (
            "[channels.m]\nkind = \"email\"\nsmtp = \"smtp://mail.acme.example:587\"\nfrom = \"r@acme.example\"\nto = [\"a@acme.example\"]\nevents = [\"*\"]\nroute = \"everyone\"\n",
            "channels.m.route",
        ),
        ("[groups]\nfinance = [\"carol\"]\n", "groups.finance"),
        ("approval_sla_hours = 0\n", "approval_sla_hours"),
    ] {
        let raw: RawNotify = toml::from_str(text).unwrap();
        let e = Notifier::check(&raw, false).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
}
