//! Users an IdP pushed before schema 12 (no typed intent row) are still
//! folded: the engine backfills their intent from the stored SCIM JSON,
//! once, and plans from the typed rows.
//!
//! The database is made as an older roster made it: the migrations before
//! 0012 only, and the SCIM rows written by hand as that version wrote them.

mod common;

use std::sync::{Arc, Mutex};

use roster_core::{Account, AccountKey, ConnectionId, Email, EmploymentStatus, Operation, Policy};
use roster_engine::PersonRef;
use roster_engine::{Engine, PlanScope, Roster};
use roster_store::{GatewayStatus, SCHEMA_VERSION, Store};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

const POLICY: &str = r#"
[[rules]]
name = "okta-assigns-spendesk-to-finance"
connection = "spendesk"
when = { "gateway.spendesk" = ["active"], group = ["Finance"] }
"#;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A database at the schema before 0012, holding `rows` (SQL inserts).
async fn old_database(path: &std::path::Path, rows: &[String]) {
    sqlx::any::install_default_drivers();
    let old = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations/sqlite");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let number: i64 = name[..4].parse().unwrap();
        if number < 12 {
            std::fs::copy(entry.path(), old.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
    for sql in rows {
        sqlx::query(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.close().await.unwrap();
}

fn user_row(seq: i64, id: &str, user_name: &str, active: bool, data: serde_json::Value) -> String {
    let external = data["externalId"].as_str().map(str::to_string);
    format!(
        "INSERT INTO scim_resource (seq, connection, kind, id, user_name, user_name_lc, \
         external_id, active, version, created_ms, modified_ms, data) VALUES \
         ({seq}, 'spendesk', 'User', '{id}', '{user_name}', '{lc}', {ext}, {active}, 1, 1, 1, '{data}')",
        lc = user_name.to_lowercase(),
        ext = external.map_or("NULL".to_string(), |e| format!("'{e}'")),
        active = i32::from(active),
        data = data.to_string().replace('\'', "''"),
    )
}

fn email_row(id: &str, address: &str) -> String {
    format!(
        "INSERT INTO scim_email (connection, resource_id, value_lc) VALUES ('spendesk', '{id}', '{}')",
        address.to_lowercase()
    )
}

#[tokio::test]
async fn users_pushed_before_schema_12_are_backfilled_and_folded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let contractor = serde_json::json!({
        "userName": "con.tractor@partner.example",
        "externalId": "00u-con",
        "name": {"givenName": "Con", "familyName": "Tractor"},
        "emails": [{"value": "con.tractor@partner.example", "primary": true}],
        "active": true,
        ENTERPRISE: {"employeeNumber": "C-9"},
    });
    // Alice's IdP account has another userName; HR knows her by address.
    let alice = serde_json::json!({
        "userName": "alice.okta",
        "emails": [{"value": "Alice@Acme.example"}],
        "active": false,
    });
    old_database(
        &path,
        &[
            user_row(1, "u-con", "con.tractor@partner.example", true, contractor),
            email_row("u-con", "con.tractor@partner.example"),
            user_row(2, "u-alice", "alice.okta", false, alice),
            email_row("u-alice", "alice@acme.example"),
            "INSERT INTO scim_resource (seq, connection, kind, id, display_name, display_name_lc, \
             version, created_ms, modified_ms, data) VALUES (3, 'spendesk', 'Group', 'g-fin', \
             'Finance', 'finance', 1, 1, 1, '{\"displayName\":\"Finance\"}')"
                .to_string(),
            "INSERT INTO scim_member (connection, group_id, member_id, member_type, ord) VALUES \
             ('spendesk', 'g-fin', 'u-con', 'User', 0), ('spendesk', 'g-fin', 'u-alice', 'User', 1)"
                .to_string(),
        ],
    )
    .await;

    // Opening it migrates to 12: the intent table is there, and empty.
    let store = Store::open(&path.display().to_string()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let ids = ["u-con".to_string(), "u-alice".to_string()];
    assert!(
        store
            .gateway_intents("spendesk", &ids)
            .await
            .unwrap()
            .is_empty()
    );

    let mut engine = Engine::new(store.clone(), Policy::parse("p.toml", POLICY).unwrap());
    let spendesk = Arc::new(Mutex::new(vec![Account {
        connection: ConnectionId::new("spendesk"),
        key: AccountKey::new("sp-alice"),
        email: Some(Email::parse("alice@acme.example").unwrap()),
        employee_id: None,
        active: true,
        attributes: Default::default(),
    }]));
    engine.add_connector(Arc::new(common::ReadOnly {
        id: ConnectionId::new("spendesk"),
        accounts: spendesk,
    }));
    let roster = Roster::new(engine);
    let hr = roster_core::Principal::service();
    roster
        .import_people(
            &hr,
            &[common::person(
                "E1",
                "alice@acme.example",
                "Alice",
                EmploymentStatus::Active,
            )],
            "hr",
        )
        .await
        .unwrap();
    roster.read(&hr, &mut |_, _| {}).await.unwrap();
    let plan = roster.plan(&hr, PlanScope::All).await.unwrap().plan;
    let text = roster_core::plan::render(&plan);
    let mut got: Vec<(Operation, String, Option<String>)> = plan
        .actions
        .iter()
        .map(|a| {
            (
                a.operation,
                a.email.to_string(),
                a.employee_id.as_ref().map(|e| e.to_string()),
            )
        })
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    // The contractor is folded from the old row: active, in Finance (from
    // membership), known by the employee number in the enterprise
    // extension. Alice's old push (inactive, matched by her address in
    // `emails`) withdraws her Spendesk.
    assert_eq!(
        got,
        vec![
            (
                Operation::Deactivate,
                "alice@acme.example".to_string(),
                Some("E1".to_string())
            ),
            (
                Operation::Create,
                "con.tractor@partner.example".to_string(),
                Some("C-9".to_string())
            ),
        ],
        "{text}"
    );
    assert!(text.contains("Con Tractor"), "{text}");

    // The backfill stored the typed rows: the next fold reads only them.
    let rows = store.gateway_intents("spendesk", &ids).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].employee_number.as_deref(), Some("C-9"));
    assert_eq!(rows[0].groups, ["Finance"]);
    assert_eq!(rows[1].status, GatewayStatus::Inactive);
    assert_eq!(
        roster
            .engine()
            .backfill_gateway("spendesk", None)
            .await
            .unwrap(),
        0
    );
    // Proof the JSON is no longer read: blank it behind the store's back;
    // the next plan is the same.
    let mut raw = AnyConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE scim_resource SET data = '{}'")
        .execute(&mut raw)
        .await
        .unwrap();
    let again = roster.plan(&hr, PlanScope::All).await.unwrap().plan;
    assert_eq!(
        again.actions.len(),
        plan.actions.len(),
        "{}",
        roster_core::plan::render(&again)
    );

    // A targeted run backfills just the person it looks up.
    let late = serde_json::json!({
        "userName": "late@partner.example",
        "name": {"givenName": "Late", "familyName": "Comer"},
        "active": true,
        ENTERPRISE: {"employeeNumber": "C-10"},
    });
    for sql in [
        user_row(4, "u-late", "late@partner.example", true, late),
        "INSERT INTO scim_member (connection, group_id, member_id, member_type, ord) VALUES \
         ('spendesk', 'g-fin', 'u-late', 'User', 2)"
            .to_string(),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut raw)
            .await
            .unwrap();
    }
    raw.close().await.unwrap();
    let one = roster
        .plan(
            &hr,
            PlanScope::Person(PersonRef::Email(
                Email::parse("late@partner.example").unwrap(),
            )),
        )
        .await
        .expect("the gateway knows them")
        .plan;
    let creates: Vec<(String, Option<String>)> = one
        .actions
        .iter()
        .filter(|a| a.operation == Operation::Create)
        .map(|a| {
            (
                a.email.to_string(),
                a.employee_id.as_ref().map(|e| e.to_string()),
            )
        })
        .collect();
    assert_eq!(
        creates,
        vec![("late@partner.example".to_string(), Some("C-10".to_string()))],
        "{}",
        roster_core::plan::render(&one)
    );
    let late = store
        .gateway_intents("spendesk", &["u-late".to_string()])
        .await
        .unwrap();
    assert_eq!(late[0].groups, ["Finance"]);
}
