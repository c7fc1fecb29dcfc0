//! One suite, two backends.
//!
//! Every case in `cases` is written once and instantiated by
//! `both_backends!` as `sqlite::<case>` (a fresh temp file) and
//! `postgres::<case>` (a fresh schema in the database named by
//! `ROSTER_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! If PostgreSQL cannot be reached the postgres cases fail, unless
//! `ROSTER_REQUIRE_POSTGRES=0` waives them (they then print a skip note).

mod common;
use common::harness;

mod fixtures {
    use std::collections::BTreeMap;

    use roster_core::plan::{Action, AttributeChange, Finding, FindingKind};
    use roster_core::{Account, AccountKey, ConnectionId, Email, EmployeeId, EmploymentStatus};
    use roster_core::{Observed, Operation, Person, Plan};
    use time::macros::date;

    pub fn email(s: &str) -> Email {
        Email::parse(s).expect("test email")
    }

    pub fn person(id: &str, mail: &str) -> Person {
        Person {
            employee_id: EmployeeId::new(id),
            email: email(mail),
            aliases: vec![],
            first_name: format!("First{id}"),
            last_name: "Lästname".into(),
            department: "Engineering".into(),
            cost_center: "CC-1".into(),
            manager_email: Some(email("boss@example.com")),
            status: EmploymentStatus::Active,
            start_date: Some(date!(2024 - 01 - 15)),
            end_date: None,
            groups: vec!["eng".into(), "all".into()],
            attributes: BTreeMap::from([("location".to_string(), "Berlin".to_string())]),
        }
    }

    pub fn account(conn: &str, key: &str, mail: Option<&str>, active: bool) -> Account {
        Account {
            connection: ConnectionId::new(conn),
            key: AccountKey::new(key),
            email: mail.map(email),
            employee_id: None,
            active,
            attributes: BTreeMap::from([("role".to_string(), "user".to_string())]),
        }
    }

    pub fn observed(conn: &str, accounts: Vec<Account>) -> Observed {
        Observed::complete(ConnectionId::new(conn), accounts)
    }

    pub fn action(conn: &str, op: Operation, mail: &str) -> Action {
        Action {
            connection: ConnectionId::new(conn),
            operation: op,
            employee_id: Some(EmployeeId::new("E1")),
            email: email(mail),
            account: (op != Operation::Create).then(|| AccountKey::new(mail)),
            attributes: BTreeMap::from([("policy_id".to_string(), "P1".to_string())]),
            changes: vec![AttributeChange {
                name: "policy_id".into(),
                before: None,
                after: Some("P1".into()),
            }],
            reason: format!("{op} because the test says so"),
            cause: roster_core::Cause::default(),
        }
    }

    pub fn plan() -> Plan {
        Plan {
            actions: vec![
                action("expensify", Operation::Create, "new@example.com"),
                action("expensify", Operation::Update, "drift@example.com"),
                action("slack", Operation::Deactivate, "gone@example.com"),
            ],
            findings: vec![Finding {
                connection: ConnectionId::new("slack"),
                kind: FindingKind::Orphan,
                account: Some(AccountKey::new("U999")),
                email: Some(email("nobody@example.com")),
                detail: "no person matches".into(),
            }],
            classification: BTreeMap::new(),
            observed_digest: "d1g35t".into(),
            ..Plan::default()
        }
    }
}

mod cases {
    use std::time::Instant;

    use roster_core::{ConnectionId, EmployeeId, EmploymentStatus, Operation};
    use roster_store::{
        ActionState, AppliedPlan, AuditError, AuditEvent, Backend, ConnectionRecord, GENESIS_HASH,
        PlanId, PlanPolicy, PlanStatus, SCHEMA_VERSION, Store, StoreError,
    };
    use serde_json::json;

    use crate::fixtures::*;
    use crate::harness::Fx;

    pub async fn keyset_pages_follow_each_other(fx: Fx) {
        let s = &fx.store;
        let mut people: Vec<_> = (0..12)
            .map(|i| person(&format!("E{i:02}"), &format!("p{i}@example.com")))
            .collect();
        people[4].first_name = "Zoë_100%".into();
        s.replace_people(&people).await.unwrap();
        // Everyone, five at a time, in employee-ID order.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.people_containing("", after.as_deref(), 5).await.unwrap();
            seen.extend(page.iter().map(|p| p.employee_id.to_string()));
            if page.len() < 5 {
                break;
            }
            after = page.last().map(|p| p.employee_id.to_string());
        }
        let all: Vec<String> = (0..12).map(|i| format!("E{i:02}")).collect();
        assert_eq!(seen, all);
        // Case-insensitive text; wildcards are literal.
        let z = s.people_containing("zoË_100%", None, 50).await.unwrap();
        assert!(z.is_empty() || z[0].employee_id.as_str() == "E04", "{z:?}");
        let z = s.people_containing("_100%", None, 50).await.unwrap();
        assert_eq!(z.len(), 1, "{z:?}");
        assert!(s.people_containing("%", None, 50).await.unwrap().len() == 1);
        let p7 = s.people_containing("P7@EXAMPLE", None, 50).await.unwrap();
        assert_eq!(p7.len(), 1);

        // Plans, newest first, after a (created_ms, id) key.
        let mut ids = Vec::new();
        for t in [1_000, 2_000, 2_000, 3_000] {
            ids.push((t, s.save_plan(&plan(), t).await.unwrap()));
        }
        let first = s.plans_before(None, 2).await.unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].created_ms, 3_000);
        let last = &first[1];
        let rest = s
            .plans_before(Some((last.created_ms, last.id.as_str())), 10)
            .await
            .unwrap();
        assert_eq!(
            rest.len(),
            2,
            "{:?}",
            rest.iter().map(|p| &p.id).collect::<Vec<_>>()
        );
        assert!(rest.iter().all(|p| p.id != last.id && p.id != first[0].id));
        assert_eq!(rest[1].created_ms, 1_000);

        // A connection never read has no accounts.
        let none = s
            .accounts_after(&ConnectionId::new("nope"), None, 5)
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    pub async fn people_round_trip(fx: Fx) {
        let s = &fx.store;
        assert!(s.people().await.unwrap().is_empty());

        let mut bob = person("E2", "Bob@Example.com");
        bob.aliases = vec![email("robert@example.com"), email("BOB@example.com")];
        bob.status = EmploymentStatus::Leave;
        bob.end_date = Some(time::macros::date!(2025 - 06 - 30));
        let alice = person("E1", "alice@example.com");
        let carol = person("E3", "carol@example.com");
        s.replace_people(&[bob.clone(), alice.clone(), carol.clone()])
            .await
            .unwrap();
        assert_eq!(
            s.people().await.unwrap(),
            vec![alice.clone(), bob.clone(), carol.clone()],
            "every field comes back, ordered by employee ID"
        );
        assert_eq!(s.people_count().await.unwrap(), 3);
        assert_eq!(
            s.person_by_employee_id(&EmployeeId::new("E2"))
                .await
                .unwrap(),
            Some(bob.clone())
        );

        // A new snapshot replaces the old one: carol left, dave joined.
        let dave = person("E4", "dave@example.com");
        s.replace_people(&[alice.clone(), bob.clone(), dave.clone()])
            .await
            .unwrap();
        assert_eq!(s.people().await.unwrap(), vec![alice, bob, dave]);
        assert_eq!(
            s.person_by_employee_id(&EmployeeId::new("E3"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.person_by_email(&email("carol@example.com"))
                .await
                .unwrap(),
            None
        );

        s.replace_people(&[]).await.unwrap();
        assert!(s.people().await.unwrap().is_empty());
    }

    pub async fn replace_people_is_all_or_nothing(fx: Fx) {
        let s = &fx.store;
        let before = vec![person("E1", "a@example.com"), person("E2", "b@example.com")];
        s.replace_people(&before).await.unwrap();

        let bad = vec![
            person("E7", "x@example.com"),
            person("E8", "y@example.com"),
            person("E7", "z@example.com"),
        ];
        let err = s.replace_people(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("E7"), "{err}");
        assert_eq!(s.people().await.unwrap(), before, "old snapshot untouched");
    }

    pub async fn email_lookup_is_case_insensitive(fx: Fx) {
        let s = &fx.store;
        let mut alice = person("E1", "Alice.Smith@Example.COM");
        alice.aliases = vec![email("asmith@Example.com")];
        s.replace_people(&[alice.clone(), person("E2", "bob@example.com")])
            .await
            .unwrap();
        for probe in [
            "alice.smith@example.com",
            "ALICE.SMITH@EXAMPLE.COM",
            "Alice.Smith@Example.COM",
        ] {
            assert_eq!(
                s.person_by_email(&email(probe)).await.unwrap().as_ref(),
                Some(&alice),
                "{probe}"
            );
        }
        assert_eq!(
            s.person_by_email(&email("ASMITH@example.com"))
                .await
                .unwrap()
                .as_ref(),
            Some(&alice),
            "aliases are found too"
        );
        assert_eq!(
            s.person_by_email(&email("nobody@example.com"))
                .await
                .unwrap(),
            None
        );
        let found = s
            .person_by_email(&email("alice.smith@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            found.email.as_str(),
            "Alice.Smith@Example.COM",
            "spelling is kept"
        );
    }

    pub async fn connections_round_trip(fx: Fx) {
        let s = &fx.store;
        let exp = ConnectionRecord::new(
            ConnectionId::new("expensify"),
            "expensify",
            r#"{"policy":"P1"}"#,
            "ok",
        );
        let slack = ConnectionRecord::new(ConnectionId::new("slack"), "slack", "{}", "ok");
        s.upsert_connection(slack.clone()).await.unwrap();
        s.upsert_connection(exp.clone()).await.unwrap();
        assert_eq!(
            s.connections().await.unwrap(),
            vec![exp.clone(), slack.clone()]
        );

        let mut exp2 = exp.clone();
        exp2.settings_json = r#"{"policy":"P2"}"#.into();
        s.upsert_connection(exp2.clone()).await.unwrap();
        assert_eq!(s.connection(&exp.id).await.unwrap(), Some(exp2.clone()));

        s.set_connection_status(&exp.id, "error", Some("401 from API"))
            .await
            .unwrap();
        let got = s.connection(&exp.id).await.unwrap().unwrap();
        assert_eq!(got.status, "error");
        assert_eq!(got.status_reason.as_deref(), Some("401 from API"));
        assert_eq!(got.settings_json, exp2.settings_json);

        let missing = ConnectionId::new("nope");
        assert_eq!(s.connection(&missing).await.unwrap(), None);
        let err = s
            .set_connection_status(&missing, "ok", None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotFound {
                    what: "connection",
                    ..
                }
            ),
            "{err}"
        );
    }

    pub async fn accounts_replace_is_per_connection(fx: Fx) {
        let s = &fx.store;
        let a1 = observed(
            "expensify",
            vec![
                account("expensify", "z@example.com", Some("Z@example.com"), true),
                account("expensify", "a@example.com", Some("a@example.com"), false),
            ],
        );
        let b = observed(
            "slack",
            vec![account("slack", "U1", Some("a@example.com"), true)],
        );
        s.replace_accounts(&a1, 1_000).await.unwrap();
        s.replace_accounts(&b, 2_000).await.unwrap();
        assert_eq!(
            s.observed(&ConnectionId::new("expensify")).await.unwrap(),
            Some(a1.clone()),
            "accounts come back in read order"
        );

        let a2 = observed(
            "expensify",
            vec![account("expensify", "n@example.com", None, true)],
        );
        s.replace_accounts(&a2, 3_000).await.unwrap();
        assert_eq!(
            s.observed(&ConnectionId::new("expensify")).await.unwrap(),
            Some(a2.clone())
        );
        assert_eq!(
            s.observed(&ConnectionId::new("slack")).await.unwrap(),
            Some(b.clone()),
            "other connections are left alone"
        );
        assert_eq!(s.all_observed().await.unwrap(), vec![a2, b]);
        assert_eq!(
            s.observed(&ConnectionId::new("never-read")).await.unwrap(),
            None
        );

        let by_mail = s.accounts_by_email(&email("A@EXAMPLE.COM")).await.unwrap();
        assert_eq!(
            by_mail.len(),
            1,
            "the replaced expensify account is gone: {by_mail:?}"
        );
        assert_eq!(by_mail[0].connection.as_str(), "slack");

        // A read that mixes connections is refused and changes nothing.
        let wrong = observed("slack", vec![account("expensify", "x", None, true)]);
        assert!(matches!(
            s.replace_accounts(&wrong, 4_000).await.unwrap_err(),
            StoreError::Invalid(_)
        ));
        let info = s
            .observation(&ConnectionId::new("slack"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.read_ms, 2_000);
    }

    pub async fn incomplete_read_round_trips(fx: Fx) {
        let s = &fx.store;
        let conn = ConnectionId::new("scimapp");
        let full = observed(
            "scimapp",
            vec![
                account("scimapp", "k1", Some("one@example.com"), true),
                account("scimapp", "k2", Some("two@example.com"), true),
            ],
        );
        s.replace_accounts(&full, 1_000).await.unwrap();

        let mut partial = observed(
            "scimapp",
            vec![account("scimapp", "k1", Some("one@example.com"), true)],
        );
        partial.complete = false;
        partial.incomplete_reason = Some("page 2 returned HTTP 500".into());
        s.replace_accounts(&partial, 2_000).await.unwrap();

        assert_eq!(s.observed(&conn).await.unwrap(), Some(partial.clone()));
        let info = s.observation(&conn).await.unwrap().unwrap();
        assert!(!info.complete);
        assert_eq!(
            info.incomplete_reason.as_deref(),
            Some("page 2 returned HTTP 500")
        );
        assert_eq!((info.read_ms, info.account_count), (2_000, 1));

        // k2 was not returned, but an incomplete read does not prove it gone.
        let seen = s.account_sightings(&conn).await.unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].key.as_str(), "k1");
        assert!(seen[0].present);
        assert_eq!(
            (seen[0].first_seen_ms, seen[0].last_seen_ms),
            (1_000, 2_000)
        );
        assert_eq!(seen[1].key.as_str(), "k2");
        assert!(!seen[1].present);
        assert_eq!(seen[1].last_seen_ms, 1_000);

        // A complete read that lacks k2 does.
        let done = observed(
            "scimapp",
            vec![account("scimapp", "k1", Some("one@example.com"), false)],
        );
        s.replace_accounts(&done, 3_000).await.unwrap();
        let seen = s.account_sightings(&conn).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].active);
        assert_eq!(
            (seen[0].first_seen_ms, seen[0].last_seen_ms),
            (1_000, 3_000)
        );
        let back = s.observed(&conn).await.unwrap().unwrap();
        assert!(back.complete);
        assert_eq!(back.incomplete_reason, None);
    }

    pub async fn plan_save_load_and_action_states(fx: Fx) {
        let s = &fx.store;
        assert_eq!(s.latest_plan().await.unwrap(), None);
        let plan = plan();
        let old = s
            .save_plan(&roster_core::Plan::default(), 1_000)
            .await
            .unwrap();
        let id = s.save_plan(&plan, 5_000).await.unwrap();
        assert_ne!(old, id);

        let stored = s.plan(&id).await.unwrap().unwrap();
        assert_eq!(stored.plan, plan);
        assert_eq!(stored.hash, plan.hash());
        assert_eq!(stored.created_ms, 5_000);
        assert_eq!(stored.status, PlanStatus::Pending);
        assert_eq!(s.latest_plan().await.unwrap().unwrap().id, id);
        let recent: Vec<PlanId> = s
            .recent_plans(10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(recent, vec![id.clone(), old.clone()], "newest first");
        assert_eq!(s.recent_plans(1).await.unwrap().len(), 1, "limited");
        assert_eq!(
            s.plan(&old).await.unwrap().unwrap().status,
            PlanStatus::Done,
            "empty plan"
        );
        assert_eq!(s.plan(&PlanId::new("no-such-plan")).await.unwrap(), None);

        let actions = s.actions(&id).await.unwrap();
        assert_eq!(actions.len(), 3);
        for (i, a) in actions.iter().enumerate() {
            assert_eq!(a.index, i);
            assert_eq!(a.state, ActionState::Pending);
            assert_eq!(a.action, plan.actions[i]);
            assert_eq!(a.updated_ms, 5_000);
        }
        assert_eq!(actions[2].action.operation, Operation::Deactivate);

        s.set_action_state(&id, 0, ActionState::Running, None, 6_000)
            .await
            .unwrap();
        assert_eq!(
            s.plan(&id).await.unwrap().unwrap().status,
            PlanStatus::InProgress
        );
        s.set_action_state(
            &id,
            0,
            ActionState::Done,
            Some("created id 42".into()),
            7_000,
        )
        .await
        .unwrap();
        s.set_action_state(&id, 1, ActionState::Failed, Some("HTTP 500".into()), 7_100)
            .await
            .unwrap();
        s.set_action_state(&id, 2, ActionState::Manual, Some("task T-1".into()), 7_200)
            .await
            .unwrap();
        let actions = s.actions(&id).await.unwrap();
        let states: Vec<_> = actions.iter().map(|a| a.state).collect();
        assert_eq!(
            states,
            [ActionState::Done, ActionState::Failed, ActionState::Manual]
        );
        assert_eq!(actions[0].detail.as_deref(), Some("created id 42"));
        assert_eq!(actions[1].updated_ms, 7_100);
        assert_eq!(
            s.plan(&id).await.unwrap().unwrap().status,
            PlanStatus::Failed
        );

        // A finished action is never reopened; re-marking it done is fine.
        let err = s
            .set_action_state(&id, 0, ActionState::Pending, None, 8_000)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidTransition {
                    from: "done",
                    to: "pending",
                    ..
                }
            ),
            "{err}"
        );
        s.set_action_state(&id, 0, ActionState::Done, None, 8_000)
            .await
            .unwrap();

        // Retry and finish the rest.
        s.set_action_state(&id, 1, ActionState::Done, None, 9_000)
            .await
            .unwrap();
        assert_eq!(
            s.plan(&id).await.unwrap().unwrap().status,
            PlanStatus::AwaitingManual
        );
        s.set_action_state(&id, 2, ActionState::Skipped, None, 9_100)
            .await
            .unwrap();
        assert_eq!(s.plan(&id).await.unwrap().unwrap().status, PlanStatus::Done);

        let err = s
            .set_action_state(&id, 3, ActionState::Done, None, 9_200)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        let err = s.actions(&PlanId::new("nope")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { what: "plan", .. }),
            "{err}"
        );
    }

    pub async fn plan_tampering_is_detected(fx: Fx) {
        let s = &fx.store;
        let id = s.save_plan(&plan(), 1_000).await.unwrap();
        fx.raw(&format!(
            "UPDATE plan SET data = REPLACE(data, 'gone@example.com', 'ceo@example.com') \
             WHERE id = '{id}'"
        ))
        .await;
        let err = s.plan(&id).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { table: "plan", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("hash"), "{err}");
    }

    pub async fn plans_record_their_policy_and_when_they_were_applied(fx: Fx) {
        let s = &fx.store;
        assert_eq!(s.last_applied_plan().await.unwrap(), None);
        let v1 = PlanPolicy {
            hash: "h1".into(),
            text: "[[rules]]\nname = \"it's\"\n".into(),
        };
        let first = s.save_plan_under(&plan(), 1_000, Some(&v1)).await.unwrap();
        let untracked = s.save_plan(&plan(), 2_000).await.unwrap();
        let v2 = PlanPolicy {
            hash: "h2".into(),
            text: "# v2\n".into(),
        };
        let unapplied = s.save_plan_under(&plan(), 3_000, Some(&v2)).await.unwrap();
        assert_eq!(
            s.last_applied_plan().await.unwrap(),
            None,
            "saving is not applying"
        );

        s.mark_plan_applied(&first, 5_000).await.unwrap();
        // The first time counts.
        s.mark_plan_applied(&first, 9_000).await.unwrap();
        assert_eq!(
            s.last_applied_plan().await.unwrap(),
            Some(AppliedPlan {
                id: first.clone(),
                applied_ms: 5_000,
                policy: Some(v1.clone()),
            })
        );
        s.mark_plan_applied(&untracked, 6_000).await.unwrap();
        assert_eq!(
            s.last_applied_plan().await.unwrap(),
            Some(AppliedPlan {
                id: untracked,
                applied_ms: 6_000,
                policy: None,
            }),
            "a plan saved without a policy says so"
        );
        let err = s
            .mark_plan_applied(&PlanId::new("nope"), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert!(s.plan(&unapplied).await.unwrap().is_some());
    }

    fn event(i: i64) -> AuditEvent {
        AuditEvent {
            at_ms: 1_000 * i,
            actor: "alice".into(),
            kind: "plan.approved".into(),
            subject: format!("plan-{i}"),
            data: json!({"n": i, "note": "ok", "nested": {"b": 2, "a": [1, 2]}}),
        }
    }

    async fn append_n(s: &Store, n: i64) -> Vec<roster_store::AuditRecord> {
        let mut out = Vec::new();
        for i in 1..=n {
            out.push(s.append_audit(event(i)).await.unwrap());
        }
        out
    }

    fn broken_at(r: Result<roster_store::AuditReport, AuditError>) -> (u64, String) {
        match r {
            Err(AuditError::Broken { seq, reason }) => (seq, reason),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    pub async fn audit_chain_append_and_verify(fx: Fx) {
        let s = &fx.store;
        let empty = s.verify_audit().await.unwrap();
        assert_eq!((empty.events, empty.head.as_str()), (0, GENESIS_HASH));

        let recs = append_n(s, 5).await;
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(recs[0].prev_hash, GENESIS_HASH);
        for w in recs.windows(2) {
            assert_eq!(
                w[1].prev_hash, w[0].hash,
                "each event links to the one before"
            );
        }
        let report = s.verify_audit().await.unwrap();
        assert_eq!(report.events, 5);
        assert_eq!(report.head, recs[4].hash);

        let since = s.audit_since(3_000).await.unwrap();
        assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(since[0], recs[2], "stored records read back identically");
        assert_eq!(
            since[0].data,
            json!({"n": 3, "note": "ok", "nested": {"a": [1, 2], "b": 2}})
        );
    }

    pub async fn audit_appends_serialize(fx: Fx) {
        let s = fx.store.clone();
        let mut tasks = Vec::new();
        for i in 1..=20 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.append_audit(event(i)).await }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=20).collect::<Vec<u64>>(),
            "no number taken twice or skipped"
        );
        assert_eq!(s.verify_audit().await.unwrap().events, 20);
    }

    pub async fn audit_detects_edited_event(fx: Fx) {
        append_n(&fx.store, 5).await;
        fx.raw("UPDATE audit_event SET subject = 'plan-forged' WHERE seq = 3")
            .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 3, "{reason}");
        assert!(reason.contains("altered"), "{reason}");
    }

    pub async fn audit_detects_edited_data(fx: Fx) {
        append_n(&fx.store, 4).await;
        fx.raw("UPDATE audit_event SET data = REPLACE(data, '\"ok\"', '\"no\"') WHERE seq = 2")
            .await;
        let (seq, _) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 2);
    }

    pub async fn audit_detects_deleted_event(fx: Fx) {
        append_n(&fx.store, 5).await;
        fx.raw("DELETE FROM audit_event WHERE seq = 3").await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 3, "{reason}");
        assert!(reason.contains("missing"), "{reason}");
    }

    pub async fn audit_detects_deleted_tail(fx: Fx) {
        append_n(&fx.store, 5).await;
        fx.raw("DELETE FROM audit_event WHERE seq = 5").await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 5, "{reason}");
        assert!(reason.contains("removed from the end"), "{reason}");
    }

    pub async fn audit_detects_swapped_events(fx: Fx) {
        append_n(&fx.store, 5).await;
        fx.raw("UPDATE audit_event SET seq = -2 WHERE seq = 2")
            .await;
        fx.raw("UPDATE audit_event SET seq = 2 WHERE seq = 3").await;
        fx.raw("UPDATE audit_event SET seq = 3 WHERE seq = -2")
            .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 2, "{reason}");
        assert!(reason.contains("does not link"), "{reason}");
    }

    pub async fn audit_detects_forged_rehashed_event(fx: Fx) {
        // Editing an event *and* recomputing its own hash still breaks the
        // link from the next event.
        let recs = append_n(&fx.store, 4).await;
        let r = &recs[1];
        let forged = roster_store::audit::event_hash_v2(
            &r.prev_hash,
            2,
            r.at_ms,
            "mallory",
            &r.kind,
            &r.subject,
            r.data_hash.as_deref().unwrap(),
        );
        fx.raw(&format!(
            "UPDATE audit_event SET actor = 'mallory', hash = '{forged}' WHERE seq = 2"
        ))
        .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 3, "{reason}");
    }

    pub async fn audit_legacy_v1_chain_still_verifies(fx: Fx) {
        // A log written before schema 8: version-1 rows (hash over the
        // payload; no payload hash), then new events appended on top.
        let mut prev = GENESIS_HASH.to_string();
        for i in 1..=3u64 {
            let data =
                roster_store::audit::canonical_json(&json!({"n": i, "email": "old@example.com"}));
            let hash = roster_store::audit::event_hash(
                &prev,
                i,
                10 * i as i64,
                "roster",
                "plan.created",
                "p",
                &data,
            );
            fx.raw(&format!(
                "INSERT INTO audit_event (seq, at_ms, actor, kind, subject, data, prev_hash, hash) \
                 VALUES ({i}, {}, 'roster', 'plan.created', 'p', '{data}', '{prev}', '{hash}')",
                10 * i
            ))
            .await;
            prev = hash;
        }
        fx.raw(&format!(
            "UPDATE audit_head SET seq = 3, hash = '{prev}' WHERE id = 1"
        ))
        .await;
        let recs = append_n(&fx.store, 2).await;
        assert_eq!(recs[0].seq, 4);
        assert_eq!(
            recs[0].prev_hash, prev,
            "new events chain onto the old ones"
        );
        let report = fx.store.verify_audit().await.unwrap();
        assert_eq!((report.events, report.legacy, report.erased), (5, 3, 0));
        let back = fx.store.audit_since(0).await.unwrap();
        assert_eq!(back[0].hash_version, 1);
        assert_eq!(back[0].data_hash, None);
        assert_eq!(back[4].hash_version, 2);

        // Old events cannot be erased (it would break the chain); they are
        // counted instead.
        let found = fx
            .store
            .audit_erasure_candidates(None, &["old@example.com".to_string()])
            .await
            .unwrap();
        assert_eq!((found.erasable.len(), found.legacy), (0, 3));

        // And editing a version-1 event is still caught.
        fx.raw("UPDATE audit_event SET data = REPLACE(data, 'old@', 'new@') WHERE seq = 2")
            .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 2, "{reason}");
    }

    pub async fn audit_erasure_keeps_the_chain_verifiable(fx: Fx) {
        let s = &fx.store;
        for (i, who) in [
            "ann@example.com",
            "bob@example.com",
            "ann@example.com",
            "xann@example.com",
        ]
        .iter()
        .enumerate()
        {
            s.append_audit(AuditEvent {
                at_ms: 1_000 * (i as i64 + 1),
                actor: "roster".into(),
                kind: "account.deactivated".into(),
                subject: format!("expensify:{who}"),
                data: json!({"email": who, "employee_id": format!("E{i}"), "reason": "left"}),
            })
            .await
            .unwrap();
        }
        let head_before = s.audit_head().await.unwrap();
        // Who an event mentions is indexed: whole tokens, any case.
        let seqs = |recs: Vec<roster_store::AuditRecord>| -> Vec<u64> {
            recs.iter().map(|r| r.seq).collect()
        };
        let about_ann = s
            .audit_mentioning(&["ANN@example.com".to_string()], 0, 10)
            .await
            .unwrap();
        assert_eq!(seqs(about_ann), [1, 3], "whole tokens only: not xann@");
        let newest = s
            .audit_mentioning(&["ann@example.com".into(), "e1".into()], 0, 2)
            .await
            .unwrap();
        assert_eq!(seqs(newest), [2, 3], "the newest, oldest first");
        let since = s
            .audit_mentioning(&["ann@example.com".into()], 2_500, 10)
            .await
            .unwrap();
        assert_eq!(seqs(since), [3]);
        assert_eq!(
            seqs(s.audit_mentioning(&["e0".into()], 0, 10).await.unwrap()),
            [1]
        );
        let found = s
            .audit_erasure_candidates(None, &["ANN@example.com".to_string()])
            .await
            .unwrap();
        assert_eq!(found.erasable, [1, 3], "whole tokens only: not xann@");
        let done = s
            .erase_audit_payloads(
                &found.erasable,
                "request 42",
                json!({"person": true}),
                "dpo",
                9_000,
            )
            .await
            .unwrap();
        assert_eq!(done.erased, [1, 3]);
        let rec = done.record.unwrap();
        assert_eq!((rec.seq, rec.kind.as_str()), (5, "audit.erased"));
        assert_eq!(rec.data["seqs"], json!([[1, 1], [3, 3]]));
        assert!(
            !rec.data.to_string().contains("ann@"),
            "the record names no data"
        );

        let report = s.verify_audit().await.unwrap();
        assert_eq!((report.events, report.erased), (5, 2));
        let back = s.audit_since(0).await.unwrap();
        assert!(back[0].erased);
        assert_eq!(
            back[0].data,
            json!({"erased": true, "reason": "request 42"})
        );
        assert_eq!(back[0].hash, recs_hash(&back, 1), "hashes are unchanged");
        assert!(!back[1].erased);
        assert_eq!(back[1].data["email"], "bob@example.com");
        // Hashes of the erased events did not change, so the old head
        // (a witnessed checkpoint) still matches.
        assert_eq!(
            s.audit_hashes_at(&[head_before.0]).await.unwrap()[&head_before.0],
            head_before.1
        );

        // The index keeps nothing the erasure removed: the payload's
        // terms are gone, the subject's (kept in the chain) stay.
        assert!(
            s.audit_mentioning(&["e0".into()], 0, 10)
                .await
                .unwrap()
                .is_empty(),
            "an erased payload is not found by what it said"
        );
        assert_eq!(
            seqs(
                s.audit_mentioning(&["ann@example.com".into()], 0, 10)
                    .await
                    .unwrap()
            ),
            [1, 3],
            "the subject is kept, so it still finds the event"
        );

        // Erasing again finds nothing new and appends nothing.
        let again = s
            .audit_erasure_candidates(None, &["ann@example.com".into()])
            .await
            .unwrap();
        assert_eq!((again.erasable.len(), again.already_erased), (0, 2));
        let none = s
            .erase_audit_payloads(&[1, 3, 5], "x", json!({}), "dpo", 9_500)
            .await
            .unwrap();
        assert!(
            none.erased.is_empty() && none.record.is_none(),
            "audit.erased events are never erased"
        );

        // Retention: everything before t=2500 that is still intact.
        let old = s.audit_erasure_candidates(Some(2_500), &[]).await.unwrap();
        assert_eq!(old.erasable, [2]);
    }

    pub async fn audit_events_from_before_the_mention_index_are_indexed_on_open(fx: Fx) {
        append_n(&fx.store, 3).await;
        fx.store
            .append_audit(AuditEvent {
                at_ms: 4_000,
                actor: "roster".into(),
                kind: "account.deactivated".into(),
                subject: "expensify:old@example.com".into(),
                data: json!({"employee_id": "E77"}),
            })
            .await
            .unwrap();
        // As a store written before schema 21 looks: no terms, and the
        // migration's mark saying what to index.
        fx.raw("DELETE FROM audit_mention").await;
        fx.raw("UPDATE audit_mention_backfill SET done_upto = 0, target = 4")
            .await;
        assert!(
            fx.store
                .audit_mentioning(&["e77".into()], 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let reopened = Store::open(&fx.open_url).await.unwrap();
        let found = reopened
            .audit_mentioning(&["E77".into(), "old@example.com".into()], 0, 10)
            .await
            .unwrap();
        assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
        assert_eq!(
            reopened.backfill_audit_mentions().await.unwrap(),
            0,
            "done once"
        );
    }

    fn recs_hash(recs: &[roster_store::AuditRecord], seq: u64) -> String {
        recs.iter().find(|r| r.seq == seq).unwrap().hash.clone()
    }

    pub async fn audit_undeclared_erasure_and_payload_edits_are_detected(fx: Fx) {
        append_n(&fx.store, 4).await;
        // A tombstone nobody recorded: erasure outside roster.
        fx.raw("UPDATE audit_event SET data = '{\"erased\":true,\"reason\":\"x\"}', data_salt = NULL WHERE seq = 2")
            .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 2, "{reason}");
        assert!(reason.contains("audit.erased"), "{reason}");
    }

    pub async fn audit_edited_payload_hash_is_detected(fx: Fx) {
        append_n(&fx.store, 3).await;
        fx.raw("UPDATE audit_event SET data = '{\"n\":0}', data_hash = 'ff' WHERE seq = 2")
            .await;
        let (seq, reason) = broken_at(fx.store.verify_audit().await);
        assert_eq!(seq, 2, "{reason}");
    }

    pub async fn checkpoint_queue_round_trip(fx: Fx) {
        let s = &fx.store;
        let recs = append_n(s, 3).await;
        assert_eq!(s.audit_head().await.unwrap(), (3, recs[2].hash.clone()));
        let hashes = s.audit_hashes_at(&[1, 3, 9]).await.unwrap();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[&1], recs[0].hash);

        let ws = ["file:/w".to_string(), "webhook:http://x".to_string()];
        assert_eq!(s.last_queued_checkpoint("file:/w").await.unwrap(), None);
        s.queue_checkpoint(&ws, 3, &recs[2].hash, 100, "{\"seq\":3}")
            .await
            .unwrap();
        assert_eq!(s.last_queued_checkpoint("file:/w").await.unwrap(), Some(3));
        let pending = s.pending_checkpoints("webhook:http://x").await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].seq, pending[0].body.as_str()),
            (3, "{\"seq\":3}")
        );

        s.checkpoint_failed(pending[0].id, "HTTP 500", 200)
            .await
            .unwrap();
        s.checkpoint_failed(pending[0].id, "HTTP 503", 300)
            .await
            .unwrap();
        let st = s.witness_state("webhook:http://x").await.unwrap();
        assert_eq!(st.pending, 1);
        assert_eq!(
            st.failing_since_ms,
            Some(200),
            "the outage began at the first failure"
        );
        assert_eq!(st.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(st.last_delivered, None);

        s.checkpoint_delivered(pending[0].id, 400).await.unwrap();
        let st = s.witness_state("webhook:http://x").await.unwrap();
        assert_eq!((st.pending, st.failing_since_ms), (0, None));
        assert_eq!(st.last_delivered, Some((3, 100)));
        assert_eq!(
            s.delivered_checkpoints("webhook:http://x")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.pending_checkpoints("file:/w").await.unwrap().len(),
            1,
            "per witness"
        );
    }

    pub async fn replace_people_100k(fx: Fx) {
        let s = &fx.store;
        let people: Vec<_> = (0..100_000)
            .map(|i| person(&format!("E{i:06}"), &format!("user{i}@example.com")))
            .collect();
        let t = Instant::now();
        s.replace_people(&people).await.unwrap();
        let took = t.elapsed();
        eprintln!("{:?}: replace_people(100_000) took {took:?}", fx.backend);
        assert_eq!(s.people_count().await.unwrap(), 100_000);
        assert_eq!(
            s.person_by_email(&email("USER77777@example.com"))
                .await
                .unwrap()
                .as_ref(),
            Some(&people[77_777])
        );
        // Replacing again (the daily case) works the same.
        let t = Instant::now();
        s.replace_people(&people[..99_999]).await.unwrap();
        eprintln!(
            "{:?}: second replace_people took {:?}",
            fx.backend,
            t.elapsed()
        );
        assert_eq!(s.people_count().await.unwrap(), 99_999);
        assert_eq!(
            s.person_by_employee_id(&EmployeeId::new("E099999"))
                .await
                .unwrap(),
            None
        );

        // One connection's worth of accounts for the same company, read twice
        // (the second read takes the update path for every row).
        let accounts: Vec<_> = (0..100_000)
            .map(|i| {
                let mail = format!("user{i}@example.com");
                account("bigapp", &format!("K{i}"), Some(&mail), i % 10 != 0)
            })
            .collect();
        let obs = observed("bigapp", accounts);
        for round in 1..=2 {
            let t = Instant::now();
            s.replace_accounts(&obs, round * 1_000).await.unwrap();
            eprintln!(
                "{:?}: replace_accounts(100_000) round {round} took {:?}",
                fx.backend,
                t.elapsed()
            );
        }
        let back = s
            .observed(&ConnectionId::new("bigapp"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.accounts.len(), 100_000);
        assert_eq!(back.accounts[12_345], obs.accounts[12_345]);
    }

    pub async fn reopen_keeps_data_and_schema_version(fx: Fx) {
        let s = &fx.store;
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(s.backend(), fx.backend);
        s.replace_people(&[person("E1", "a@example.com")])
            .await
            .unwrap();
        s.append_audit(event(1)).await.unwrap();

        let again = Store::open(&fx.open_url).await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(again.people_count().await.unwrap(), 1);
        assert_eq!(again.verify_audit().await.unwrap().events, 1);
        again.close().await;
        if fx.backend == Backend::Postgres {
            assert!(
                s.describe().starts_with("PostgreSQL at "),
                "{}",
                s.describe()
            );
        } else {
            assert!(s.describe().starts_with("SQLite file "), "{}", s.describe());
        }
    }

    pub async fn approvals_are_bound_to_the_plan_hash(fx: Fx) {
        use roster_store::{ApprovalRecord, Decision};
        let s = &fx.store;
        let id = s.save_plan(&plan(), 1_000).await.unwrap();
        let hash = s.plan(&id).await.unwrap().unwrap().hash;
        let mut rec = ApprovalRecord {
            plan_id: id.clone(),
            plan_hash: "not-the-hash".into(),
            action_idx: Some(2),
            decision: Decision::Approved,
            actor: "alice".into(),
            reason: "ticket 7".into(),
            at_ms: 2_000,
        };
        let err = s.record_approval(&rec).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(
            s.approvals(&id).await.unwrap().is_empty(),
            "nothing recorded"
        );
        rec.plan_hash = hash;
        s.record_approval(&rec).await.unwrap();
        rec.decision = Decision::Rejected;
        rec.action_idx = None;
        rec.at_ms = 3_000;
        s.record_approval(&rec).await.unwrap();
        let got = s.approvals(&id).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].decision, got[0].action_idx),
            (Decision::Approved, Some(2))
        );
        assert_eq!(
            (got[1].decision, got[1].action_idx),
            (Decision::Rejected, None)
        );
    }

    pub async fn match_resolutions_replace_per_account(fx: Fx) {
        use roster_core::AccountKey;
        use roster_store::MatchResolution;
        let s = &fx.store;
        let mut r = MatchResolution {
            connection: ConnectionId::new("expensify"),
            account: AccountKey::new("shared@example.com"),
            employee_id: Some(EmployeeId::new("E1")),
            actor: "alice".into(),
            reason: "HR confirmed".into(),
            at_ms: 1,
        };
        s.resolve_match(&r).await.unwrap();
        r.employee_id = None;
        r.reason = "it is the finance team's shared login".into();
        r.at_ms = 2;
        s.resolve_match(&r).await.unwrap();
        let got = s.match_resolutions().await.unwrap();
        assert_eq!(got.len(), 1, "one decision per account, the latest");
        assert_eq!(got[0].employee_id, None);
        assert_eq!(got[0].at_ms, 2);
    }

    pub async fn human_tasks_dedupe_and_move_through_states(fx: Fx) {
        use roster_store::{HumanTask, HumanTaskState};
        let s = &fx.store;
        let task = HumanTask {
            id: "t1".into(),
            dedupe_key: "spendesk:deactivate:m-2".into(),
            connection: "spendesk".into(),
            kind: "deactivate".into(),
            subject_email: "bob@example.com".into(),
            employee_id: Some("E2".into()),
            account_key: Some("m-2".into()),
            plan_id: None,
            action_idx: None,
            title: "Deactivate bob@example.com in Spendesk".into(),
            checklist: vec![
                "Reassign pending approvals".into(),
                "Resolve open cards".into(),
            ],
            assignee: Some("it@example.com".into()),
            state: HumanTaskState::Open,
            flagged: false,
            note: None,
            evidence: None,
            due_ms: Some(10_000),
            reminded_ms: None,
            escalated_ms: None,
            created_ms: 1_000,
            updated_ms: 1_000,
        };
        let (stored, created) = s.open_human_task(&task).await.unwrap();
        assert!(created);
        assert_eq!(stored.checklist.len(), 2);
        // The same intent again: no second task.
        let mut again = task.clone();
        again.id = "t2".into();
        let (same, created) = s.open_human_task(&again).await.unwrap();
        assert!(!created);
        assert_eq!(same.id, "t1");
        assert_eq!(s.human_tasks(&[]).await.unwrap().len(), 1);

        s.set_human_task_state(
            "t1",
            HumanTaskState::Done,
            Some("done in console".into()),
            Some("screenshot.png sha256:ab".into()),
            2_000,
        )
        .await
        .unwrap();
        // The next read disagrees: reopened and flagged.
        s.set_human_task_state(
            "t1",
            HumanTaskState::Reopened,
            Some("still active at next read".into()),
            None,
            3_000,
        )
        .await
        .unwrap();
        let t = s.human_task("t1").await.unwrap().unwrap();
        assert_eq!(t.state, HumanTaskState::Reopened);
        assert!(t.flagged);
        assert_eq!(
            t.evidence.as_deref(),
            Some("screenshot.png sha256:ab"),
            "evidence kept"
        );
        assert_eq!(
            s.human_tasks(&[HumanTaskState::Reopened])
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.human_tasks(&[HumanTaskState::Open])
                .await
                .unwrap()
                .is_empty()
        );
        let err = s
            .set_human_task_state("nope", HumanTaskState::Done, None, None, 1)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }

    pub async fn newer_schema_is_refused(fx: Fx) {
        // Pretend a newer roster migrated this database. (The blob literal is
        // the one place the two dialects differ.)
        let blob = match fx.backend {
            Backend::Sqlite => "X'00'",
            Backend::Postgres => "'\\x00'::bytea",
        };
        fx.raw(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'from the future', TRUE, {blob}, 1)"
        ))
        .await;
        let err = Store::open(&fx.open_url).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Migrate { .. } | StoreError::SchemaVersion { .. }
            ),
            "{err}"
        );
    }

    pub async fn reseal_replaces_all_or_nothing_and_keeps_the_update_time(fx: Fx) {
        let s = &fx.store;
        s.put_secret("a", "v1:k1:AAAA", 1_000).await.unwrap();
        s.put_secret("b", "v1:k1:BBBB", 2_000).await.unwrap();
        assert_eq!(
            s.sealed_secrets().await.unwrap(),
            [
                ("a".to_string(), "v1:k1:AAAA".to_string()),
                ("b".to_string(), "v1:k1:BBBB".to_string())
            ]
        );
        // One value changed since it was read (a racing `secret set`): the
        // whole batch is refused and nothing is written.
        let stale = [
            (
                "a".to_string(),
                "v1:k1:AAAA".to_string(),
                "v1:k2:NEWA".to_string(),
            ),
            (
                "b".to_string(),
                "v1:k1:OLD?".to_string(),
                "v1:k2:NEWB".to_string(),
            ),
        ];
        let err = s.reseal_secrets(&stale).await.unwrap_err();
        assert_eq!(err.code(), "STORE-0008", "{err}");
        assert!(err.to_string().contains("\"b\""), "{err}");
        assert_eq!(s.secret("a").await.unwrap().as_deref(), Some("v1:k1:AAAA"));
        // Plaintext is refused as a new value too.
        let plain = [(
            "a".to_string(),
            "v1:k1:AAAA".to_string(),
            "hunter2".to_string(),
        )];
        assert_eq!(
            s.reseal_secrets(&plain).await.unwrap_err().code(),
            "STORE-0008"
        );
        assert_eq!(s.secret("a").await.unwrap().as_deref(), Some("v1:k1:AAAA"));

        let fresh = [
            (
                "a".to_string(),
                "v1:k1:AAAA".to_string(),
                "v1:k2:NEWA".to_string(),
            ),
            (
                "b".to_string(),
                "v1:k1:BBBB".to_string(),
                "v1:k2:NEWB".to_string(),
            ),
        ];
        s.reseal_secrets(&fresh).await.unwrap();
        assert_eq!(s.secret("a").await.unwrap().as_deref(), Some("v1:k2:NEWA"));
        assert_eq!(s.secret("b").await.unwrap().as_deref(), Some("v1:k2:NEWB"));
        let times: Vec<_> = s
            .secret_names()
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.created_ms, m.updated_ms))
            .collect();
        assert_eq!(times, [(1_000, 1_000), (2_000, 2_000)]);
    }

    pub async fn secrets_round_trip_replace_list_and_delete(fx: Fx) {
        let s = &fx.store;
        assert_eq!(s.secret("bill-api-token").await.unwrap(), None);
        s.put_secret("bill-api-token", "v1:k1:AAAA-first", 1_000)
            .await
            .unwrap();
        s.put_secret("expensify-partner-secret", "v1:k1:BBBB", 2_000)
            .await
            .unwrap();
        assert_eq!(
            s.secret("bill-api-token").await.unwrap().as_deref(),
            Some("v1:k1:AAAA-first")
        );
        // Replacing keeps the creation time and moves the update time.
        s.put_secret("bill-api-token", "v1:k2:CCCC-second", 5_000)
            .await
            .unwrap();
        assert_eq!(
            s.secret("bill-api-token").await.unwrap().as_deref(),
            Some("v1:k2:CCCC-second")
        );
        let names = s.secret_names().await.unwrap();
        let got: Vec<_> = names
            .iter()
            .map(|m| (m.name.as_str(), m.created_ms, m.updated_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("bill-api-token", 1_000, 5_000),
                ("expensify-partner-secret", 2_000, 2_000)
            ]
        );
        assert!(s.delete_secret("bill-api-token").await.unwrap());
        assert!(!s.delete_secret("bill-api-token").await.unwrap());
        assert_eq!(s.secret("bill-api-token").await.unwrap(), None);
        assert_eq!(s.secret_names().await.unwrap().len(), 1);

        // Secrets survive a reopen.
        let again = Store::open(&fx.open_url).await.unwrap();
        assert_eq!(
            again
                .secret("expensify-partner-secret")
                .await
                .unwrap()
                .as_deref(),
            Some("v1:k1:BBBB")
        );
        again.close().await;
    }

    pub async fn secrets_refuse_plaintext(fx: Fx) {
        let s = &fx.store;
        let err = s
            .put_secret("bill-api-token", "hunter2-plain", 1)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "STORE-0008");
        assert!(err.to_string().contains("bill-api-token"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "value leaked: {err}");
        assert!(s.put_secret("", "v1:k1:AAAA", 1).await.is_err());
        assert!(s.secret_names().await.unwrap().is_empty());
    }
    pub async fn source_cursors_round_trip(fx: Fx) {
        let s = &fx.store;
        assert_eq!(s.source_cursor("source.okta").await.unwrap(), None);
        // Only a full read starts a cursor.
        assert!(
            !s.advance_source_cursor("source.okta", "c0", 5)
                .await
                .unwrap()
        );
        assert_eq!(s.source_cursor("source.okta").await.unwrap(), None);
        s.record_full_read("source.okta", "c1", 1_000)
            .await
            .unwrap();
        let c = s.source_cursor("source.okta").await.unwrap().unwrap();
        assert_eq!(
            (c.cursor.as_str(), c.taken_ms, c.full_read_ms),
            ("c1", 1_000, 1_000)
        );
        // An incremental read moves the cursor, not the full read's time.
        assert!(
            s.advance_source_cursor("source.okta", "c2", 2_000)
                .await
                .unwrap()
        );
        let c = s.source_cursor("source.okta").await.unwrap().unwrap();
        assert_eq!(
            (c.cursor.as_str(), c.taken_ms, c.full_read_ms),
            ("c2", 2_000, 1_000)
        );
        // Per source.
        s.record_full_read("source.entra", "https://graph/delta?token=x", 3_000)
            .await
            .unwrap();
        assert_eq!(
            s.source_cursor("source.okta")
                .await
                .unwrap()
                .unwrap()
                .cursor,
            "c2"
        );
        // A later full read replaces both.
        s.record_full_read("source.okta", "c3", 4_000)
            .await
            .unwrap();
        let c = s.source_cursor("source.okta").await.unwrap().unwrap();
        assert_eq!(
            (c.cursor.as_str(), c.taken_ms, c.full_read_ms),
            ("c3", 4_000, 4_000)
        );
        // Debug does not print the cursor whole.
        let e = s.source_cursor("source.entra").await.unwrap().unwrap();
        assert!(!format!("{e:?}").contains("token=x"));
        s.forget_source_cursor("source.okta").await.unwrap();
        assert_eq!(s.source_cursor("source.okta").await.unwrap(), None);
        assert!(s.source_cursor("source.entra").await.unwrap().is_some());
    }
}

both_backends!(
    keyset_pages_follow_each_other,
    people_round_trip,
    replace_people_is_all_or_nothing,
    email_lookup_is_case_insensitive,
    connections_round_trip,
    accounts_replace_is_per_connection,
    incomplete_read_round_trips,
    plan_save_load_and_action_states,
    plan_tampering_is_detected,
    plans_record_their_policy_and_when_they_were_applied,
    audit_chain_append_and_verify,
    audit_appends_serialize,
    audit_detects_edited_event,
    audit_detects_edited_data,
    audit_detects_deleted_event,
    audit_detects_deleted_tail,
    audit_detects_swapped_events,
    audit_detects_forged_rehashed_event,
    audit_legacy_v1_chain_still_verifies,
    audit_erasure_keeps_the_chain_verifiable,
    audit_events_from_before_the_mention_index_are_indexed_on_open,
    audit_undeclared_erasure_and_payload_edits_are_detected,
    audit_edited_payload_hash_is_detected,
    checkpoint_queue_round_trip,
    replace_people_100k,
    reopen_keeps_data_and_schema_version,
    newer_schema_is_refused,
    approvals_are_bound_to_the_plan_hash,
    match_resolutions_replace_per_account,
    human_tasks_dedupe_and_move_through_states,
    secrets_round_trip_replace_list_and_delete,
    reseal_replaces_all_or_nothing_and_keeps_the_update_time,
    secrets_refuse_plaintext,
    source_cursors_round_trip,
);

/// Tests that only make sense for one backend.
mod single {
    use std::time::{Duration, Instant};

    use roster_store::{Backend, Store, StoreError};

    use crate::fixtures::person;

    #[tokio::test]
    async fn unreachable_postgres_fails_fast_and_clearly() {
        // A loopback port nothing listens on: bind one, then free it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("postgres://roster:s3cretpw@127.0.0.1:{port}/roster");
        let t = Instant::now();
        let err = Store::open(&url).await.unwrap_err();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("STORE-0002 cannot connect to PostgreSQL at 127.0.0.1:"),
            "{msg}"
        );
        assert!(msg.contains(&format!(":{port}/roster")), "{msg}");
        assert!(!msg.contains("s3cretpw"), "password leaked: {msg}");
        assert!(
            !format!("{err:?}").contains("s3cretpw"),
            "password leaked: {err:?}"
        );
    }

    #[tokio::test]
    async fn sqlite_in_memory_store_works() {
        let s = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(s.backend(), Backend::Sqlite);
        s.replace_people(&[person("E1", "a@example.com")])
            .await
            .unwrap();
        // Many operations on the one connection: the database must persist.
        for _ in 0..3 {
            assert_eq!(s.people_count().await.unwrap(), 1);
        }
        assert_eq!(s.verify_audit().await.unwrap().events, 0);
    }

    #[tokio::test]
    async fn wal_checkpoint_copies_committed_pages_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.db");
        let s = Store::open(path.to_str().unwrap()).await.unwrap();
        let people: Vec<_> = (0..2_000)
            .map(|i| person(&format!("E{i}"), &format!("p{i}@example.com")))
            .collect();
        s.replace_people(&people).await.unwrap();
        let ck = s
            .checkpoint_wal()
            .await
            .unwrap()
            .expect("a file store has a WAL");
        assert!(ck.wal_frames > 0, "{ck:?}");
        assert_eq!(ck.checkpointed_frames, ck.wal_frames, "{ck:?}");
        // The data is in the database file itself now: a copy of the file
        // alone (no WAL) holds it.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let c = Store::open(copy.to_str().unwrap()).await.unwrap();
        assert_eq!(c.people_count().await.unwrap(), 2_000);
        // Nothing to do where there is no WAL.
        let m = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(m.checkpoint_wal().await.unwrap(), None);
    }

    #[tokio::test]
    async fn bare_path_creates_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/roster.db");
        let s = Store::open(path.to_str().unwrap()).await.unwrap();
        s.replace_people(&[person("E1", "a@example.com")])
            .await
            .unwrap();
        s.close().await;
        assert!(path.is_file());
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let again = Store::open(&url).await.unwrap();
        assert_eq!(again.people_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn unsupported_scheme_is_refused() {
        let err = Store::open("mysql://root@127.0.0.1/db").await.unwrap_err();
        assert_eq!(err.code(), "STORE-0001");
    }
}
