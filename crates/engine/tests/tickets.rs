//! Human tasks mirrored as ServiceNow tickets, against the Table API
//! simulator: one ticket per task (none twice, even after a crash between
//! the create and its record), the desk's resolution marks the task done
//! for the next read to verify (never verified by the ticket alone), a
//! refuted task reopens its ticket, a verified one resolves it, and a
//! broken credential fails the pass's calls without stopping roster.

use roster_core::Policy;
use roster_engine::tickets::{RawTickets, TicketSystem};
use roster_engine::{Engine, Roster};
use roster_sim::servicenow::{Effect, ServiceNowSim};
use roster_store::{HumanTask, HumanTaskState, Store};

const USER: &str = "roster.integration";
const PASSWORD: &str = "integration-password";

fn task(id: &str) -> HumanTask {
    HumanTask {
        id: id.into(),
        dedupe_key: format!("key-{id}"),
        connection: "spendesk".into(),
        kind: "deactivate".into(),
        subject_email: "leaver@acme.example".into(),
        employee_id: Some("E9".into()),
        account_key: Some("u-9".into()),
        plan_id: None,
        action_idx: None,
        title: "Deactivate leaver@acme.example in Spendesk".into(),
        checklist: vec!["Settings → Members".into(), "Deactivate".into()],
        assignee: None,
        state: HumanTaskState::Open,
        flagged: false,
        note: None,
        evidence: None,
        due_ms: None,
        reminded_ms: None,
        escalated_ms: None,
        created_ms: 1,
        updated_ms: 1,
    }
}

async fn wired(url: &str, password: &str) -> (Roster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.db").display().to_string())
        .await
        .unwrap();
    let raw: RawTickets = toml::from_str(&format!(
        "kind = \"servicenow\"\nbase_url = \"{url}\"\nusername = \"{USER}\"\n\
         password = {{ env = \"SN_PASSWORD\" }}\nassignment_group = \"IT Ops\"\nallow_private_network = true\n"
    ))
    .unwrap();
    let password = password.to_string();
    let system = TicketSystem::from_config(&raw, dir.path(), false, &|name| {
        (name == "SN_PASSWORD").then(|| password.clone())
    })
    .unwrap();
    let mut engine = Engine::new(store, Policy::parse("p.toml", "").unwrap());
    engine.tickets = Some(system);
    (Roster::new(engine), dir)
}

fn created(sim: &ServiceNowSim) -> usize {
    sim.effects()
        .iter()
        .filter(|e| matches!(e, Effect::Created { .. }))
        .count()
}

#[tokio::test]
async fn a_task_lives_its_life_as_one_ticket() {
    let sim = ServiceNowSim::start(USER, PASSWORD, "incident")
        .await
        .unwrap();
    let (roster, _dir) = wired(sim.url(), PASSWORD).await;
    let store = roster.store().clone();
    store.open_human_task(&task("T-1")).await.unwrap();

    // One ticket, with the checklist and the task's id to find it by.
    let m = roster.mirror_tickets().await.unwrap();
    assert_eq!((m.opened, m.failed), (1, 0), "{m:?}");
    let records = sim.records();
    let (number, record) = records.iter().next().unwrap();
    assert_eq!(record["correlation_id"], "T-1");
    assert_eq!(record["assignment_group"], "IT Ops");
    assert!(
        record["description"]
            .as_str()
            .unwrap()
            .contains("- Deactivate")
    );
    assert_eq!(
        roster.mirror_tickets().await.unwrap().opened,
        0,
        "never twice"
    );

    // A crash between the create and its record: found again, not re-opened.
    sqlx_delete_links(&_dir).await;
    assert_eq!(roster.mirror_tickets().await.unwrap().opened, 1);
    assert_eq!(created(&sim), 1, "one ticket for one task, crash or not");

    // The desk resolves it: the task is done, by the desk, with its notes
    // and a link, and waits for the next read; it is not verified.
    assert!(sim.resolve(number, "jane.agent", "Deactivated in the Spendesk console"));
    let m = roster.mirror_tickets().await.unwrap();
    assert_eq!(m.completed, 1, "{m:?}");
    let t = store.human_task("T-1").await.unwrap().unwrap();
    assert_eq!(t.state, HumanTaskState::Done, "a ticket never verifies");
    let note = t.note.unwrap();
    assert!(
        note.contains(number) && note.contains("jane.agent"),
        "{note}"
    );
    assert!(
        note.contains("Deactivated in the Spendesk console"),
        "{note}"
    );
    assert!(t.evidence.unwrap().contains("sys_id="));
    let kinds: Vec<String> = store
        .audit_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.subject == "T-1")
        .map(|r| format!("{} by {}", r.kind, r.actor))
        .collect();
    assert!(
        kinds.contains(&"task.done by service:itsm".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"ticket.opened by service:itsm".to_string()),
        "{kinds:?}"
    );

    // The next read still finds the account: the task reopens, and so
    // does its ticket, with why.
    store
        .set_human_task_state(
            "T-1",
            HumanTaskState::Reopened,
            Some("still active".into()),
            None,
            5,
        )
        .await
        .unwrap();
    assert_eq!(roster.mirror_tickets().await.unwrap().reopened, 1);
    let record = sim.records()[number].clone();
    assert_eq!(record["state"], "2");
    assert!(
        record["work_notes"]
            .as_str()
            .unwrap()
            .contains("still found"),
        "{record:?}"
    );
    assert_eq!(roster.mirror_tickets().await.unwrap().reopened, 0, "once");

    // Verified by a read: the ticket is resolved with what roster saw.
    store
        .set_human_task_state("T-1", HumanTaskState::Verified, None, None, 6)
        .await
        .unwrap();
    assert_eq!(roster.mirror_tickets().await.unwrap().resolved, 1);
    let record = sim.records()[number].clone();
    assert_eq!(record["state"], "6");
    assert!(
        record["close_notes"]
            .as_str()
            .unwrap()
            .contains("roster verified it")
    );
    assert_eq!(
        roster.mirror_tickets().await.unwrap(),
        Default::default(),
        "a closed link is left alone"
    );
}

/// Removes every ticket link, as a crash after the create would leave it.
async fn sqlx_delete_links(dir: &tempfile::TempDir) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM ticket_link")
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_credential_fails_the_calls_not_roster() {
    let sim = ServiceNowSim::start(USER, PASSWORD, "incident")
        .await
        .unwrap();
    let (roster, _dir) = wired(sim.url(), "not-the-password").await;
    roster.store().open_human_task(&task("T-2")).await.unwrap();
    let m = roster.mirror_tickets().await.unwrap();
    assert_eq!((m.opened, m.failed), (0, 1), "{m:?}");
    assert!(sim.records().is_empty());
    let t = roster.store().human_task("T-2").await.unwrap().unwrap();
    assert_eq!(t.state, HumanTaskState::Open, "the task is untouched");
}

#[test]
fn tickets_config_is_checked_naming_the_key() {
    for (text, key) in [
        (
            "kind = \"jira\"\nbase_url = \"https://x.example\"\nusername = \"u\"\npassword = { env = \"P\" }\n",
            "tickets.kind",
        ),
        (
            "kind = \"servicenow\"\nbase_url = \"http://10.0.0.1\"\nusername = \"u\"\npassword = { env = \"P\" }\n",
            "tickets.base_url",
        ),
        (
            "kind = \"servicenow\"\nbase_url = \"https://x.example\"\nusername = \"u\"\npassword = { env = \"MISSING\" }\n",
            "tickets.password",
        ),
        (
            "kind = \"servicenow\"\nbase_url = \"https://x.example\"\nusername = \"u\"\npassword = { env = \"P\" }\ntable = \"inc; drop\"\n",
            "tickets.table",
        ),
    ] {
        let raw: RawTickets = toml::from_str(text).unwrap();
        let e = TicketSystem::from_config(&raw, std::path::Path::new("."), false, &|n| {
            (n == "P").then(|| "pw".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().starts_with(key), "{text}: {e}");
    }
}
