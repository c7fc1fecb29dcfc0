//! The task queue on both backends.
//!
//! Same pattern as `store.rs`: every case in `cases` runs as
//! `sqlite::<case>` (a fresh temp file) and `postgres::<case>` (a fresh
//! schema in `ROSTER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Unreachable PostgreSQL fails
//! the case, unless `ROSTER_REQUIRE_POSTGRES=0` waives it.

mod common;
use common::harness;

mod fixtures {
    use std::collections::BTreeMap;

    use roster_core::plan::Action;
    use roster_core::{AccountKey, ConnectionId, Email, EmployeeId, Operation, Plan};
    use roster_store::{AuditEvent, PlanId, Store};

    pub const T0: i64 = 1_700_000_000_000;

    pub fn action(conn: &str, op: Operation, i: usize) -> Action {
        let mail = format!("user{i}@example.com");
        Action {
            connection: ConnectionId::new(conn),
            operation: op,
            employee_id: Some(EmployeeId::new(format!("E{i}"))),
            email: Email::parse(&mail).expect("test email"),
            account: (op != Operation::Create).then(|| AccountKey::new(mail.clone())),
            attributes: BTreeMap::from([("policy_id".to_string(), "P1".to_string())]),
            changes: vec![],
            reason: format!("{op} for the test"),
            cause: roster_core::Cause::default(),
        }
    }

    /// A plan with `n` expensify actions (creates, updates, deactivations
    /// in turn) and one slack action at the end.
    pub fn plan(n: usize) -> Plan {
        let ops = [Operation::Create, Operation::Update, Operation::Deactivate];
        let mut actions: Vec<Action> = (0..n).map(|i| action("expensify", ops[i % 3], i)).collect();
        actions.push(action("slack", Operation::Deactivate, n));
        Plan {
            actions,
            findings: vec![],
            classification: BTreeMap::new(),
            observed_digest: "digest".into(),
            approvals: BTreeMap::new(),
            ..Plan::default()
        }
    }

    pub async fn saved(s: &Store, n: usize) -> PlanId {
        s.save_plan(&plan(n), T0).await.expect("save plan")
    }

    pub fn exp() -> ConnectionId {
        ConnectionId::new("expensify")
    }

    pub fn slack() -> ConnectionId {
        ConnectionId::new("slack")
    }

    pub fn event(kind: &str, subject: &str) -> AuditEvent {
        AuditEvent {
            at_ms: T0,
            actor: "test".into(),
            kind: kind.into(),
            subject: subject.into(),
            data: serde_json::json!({ "subject": subject }),
        }
    }
}

mod cases {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use roster_store::tasks::idempotency_key;
    use roster_store::{
        ActionState, ExecState, Store, TaskFilter, TaskFinish, TaskOutcome, TaskResult,
    };

    use crate::fixtures::*;
    use crate::harness::Fx;

    const LEASE: i64 = 1_000;

    fn done(id: i64, attempt: u32) -> TaskFinish {
        TaskFinish {
            id,
            attempt,
            result: TaskResult::Done {
                outcome: TaskOutcome::Applied,
                detail: None,
            },
            audit: Some(event("action.applied", &format!("task-{id}"))),
        }
    }

    async fn action_state(s: &Store, plan: &roster_store::PlanId, idx: usize) -> ActionState {
        s.actions(plan).await.unwrap()[idx].state
    }

    pub async fn enqueue_is_idempotent(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 5).await;
        let first = s.enqueue_plan_tasks(&plan, &[exp()], 4, T0).await.unwrap();
        assert_eq!((first.inserted, first.existing), (5, 0));
        let again = s
            .enqueue_plan_tasks(&plan, &[exp(), slack()], 4, T0 + 1)
            .await
            .unwrap();
        // Only the slack action is new the second time.
        assert_eq!((again.inserted, again.existing), (1, 5));
        let third = s
            .enqueue_plan_tasks(&plan, &[exp(), slack()], 4, T0 + 2)
            .await
            .unwrap();
        assert_eq!((third.inserted, third.existing), (0, 6));

        let tasks = s.tasks(&TaskFilter::default()).await.unwrap();
        assert_eq!(tasks.len(), 6);
        let stored = s.plan(&plan).await.unwrap().unwrap();
        for t in &tasks {
            assert_eq!(t.state, ExecState::Ready);
            assert_eq!((t.attempts, t.max_attempts), (0, 4));
            let action = &stored.plan.actions[t.action_idx];
            assert_eq!(
                t.idempotency_key,
                idempotency_key(&plan, &stored.hash, t.action_idx, action)
            );
            assert_eq!(t.operation, action.operation.as_str());
        }
        let keys: BTreeSet<&str> = tasks.iter().map(|t| t.idempotency_key.as_str()).collect();
        assert_eq!(keys.len(), 6);

        // A second saved copy of the same content gets its own tasks.
        let copy = saved(s, 5).await;
        let r = s.enqueue_plan_tasks(&copy, &[exp()], 4, T0).await.unwrap();
        assert_eq!(r.inserted, 5);
    }

    pub async fn claim_finish_mirrors_plan_and_audits(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 3).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 4, T0).await.unwrap();

        let claimed = s
            .claim_tasks(&exp(), Some(&plan), "w1", 2, LEASE, T0)
            .await
            .unwrap();
        assert_eq!(
            claimed.iter().map(|t| t.action_idx).collect::<Vec<_>>(),
            vec![0, 1],
            "oldest first"
        );
        for t in &claimed {
            assert_eq!(t.state, ExecState::Running);
            assert_eq!(t.attempts, 1);
            assert_eq!(t.lease_owner.as_deref(), Some("w1"));
            assert_eq!(t.lease_until_ms, Some(T0 + LEASE));
            assert_eq!(
                action_state(s, &plan, t.action_idx).await,
                ActionState::Running
            );
        }
        // Running tasks are not claimable again.
        let more = s
            .claim_tasks(&exp(), None, "w2", 10, LEASE, T0)
            .await
            .unwrap();
        assert_eq!(
            more.iter().map(|t| t.action_idx).collect::<Vec<_>>(),
            vec![2]
        );

        let before = s.verify_audit().await.unwrap().events;
        let accepted = s
            .finish_tasks(
                "w1",
                vec![done(claimed[0].id, 1), done(claimed[1].id, 1)],
                T0 + 5,
            )
            .await
            .unwrap();
        assert_eq!(accepted, vec![true, true]);
        assert_eq!(action_state(s, &plan, 0).await, ActionState::Done);
        let after = s.verify_audit().await.unwrap().events;
        assert_eq!(after, before + 2, "one audit event per finished task");

        // Finishing again, or as another owner, is refused and changes
        // nothing (no audit event either).
        let again = s
            .finish_tasks("w1", vec![done(claimed[0].id, 1)], T0 + 6)
            .await
            .unwrap();
        assert_eq!(again, vec![false]);
        let stolen = s
            .finish_tasks("w1", vec![done(more[0].id, 1)], T0 + 6)
            .await
            .unwrap();
        assert_eq!(stolen, vec![false]);
        assert_eq!(action_state(s, &plan, 2).await, ActionState::Running);
        assert_eq!(s.verify_audit().await.unwrap().events, after);

        let counts = s.task_counts(&plan).await.unwrap();
        assert_eq!(counts.get(&ExecState::Done), Some(&2));
        assert_eq!(counts.get(&ExecState::Running), Some(&1));
        let done_tasks = s
            .tasks(&TaskFilter {
                plan_id: Some(plan.clone()),
                state: Some(ExecState::Done),
                ..TaskFilter::default()
            })
            .await
            .unwrap();
        assert!(
            done_tasks
                .iter()
                .all(|t| t.outcome == Some(TaskOutcome::Applied) && t.lease_owner.is_none())
        );
    }

    pub async fn retry_waits_then_dead_letters(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 1).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 2, T0).await.unwrap();
        let t = s
            .claim_tasks(&exp(), None, "w", 5, LEASE, T0)
            .await
            .unwrap()
            .remove(0);
        let retry = TaskFinish {
            id: t.id,
            attempt: 1,
            result: TaskResult::Retry {
                run_at_ms: T0 + 5_000,
                error: "CONN-0003 transient failure: 503".into(),
                uncertain: true,
                refund: false,
            },
            audit: None,
        };
        assert_eq!(
            s.finish_tasks("w", vec![retry], T0 + 10).await.unwrap(),
            vec![true]
        );
        let actions = s.actions(&plan).await.unwrap();
        assert_eq!(actions[0].state, ActionState::Pending);
        assert!(
            actions[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("attempt 1 of 2")
        );

        // Not due yet; due at run_at.
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 4_999)
                .await
                .unwrap()
                .is_empty()
        );
        let status = s.queue_status(&exp(), Some(&plan)).await.unwrap();
        assert_eq!(
            (status.retry_wait, status.next_run_at_ms),
            (1, Some(T0 + 5_000))
        );
        let t = s
            .claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 5_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(t.attempts, 2);
        assert!(t.uncertain, "a lost call keeps the task uncertain");

        let dead = TaskFinish {
            id: t.id,
            attempt: 2,
            result: TaskResult::Dead {
                reason: "CONN-0003 transient failure: 503 (2 of 2 attempts)".into(),
            },
            audit: Some(event("action.failed", "x")),
        };
        assert_eq!(
            s.finish_tasks("w", vec![dead], T0 + 5_010).await.unwrap(),
            vec![true]
        );
        let actions = s.actions(&plan).await.unwrap();
        assert_eq!(actions[0].state, ActionState::Failed);
        assert!(
            actions[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("2 of 2 attempts")
        );
        assert_eq!(s.queue_status(&exp(), None).await.unwrap().open(), 0);

        // The dead letter can be given another go.
        assert_eq!(
            s.requeue_dead_tasks(&plan, None, T0 + 6_000).await.unwrap(),
            1
        );
        let t = s
            .claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 6_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(t.attempts, 1, "fresh attempt budget");
    }

    pub async fn refunded_attempts_do_not_count(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 1).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 3, T0).await.unwrap();
        for round in 0..5 {
            let now = T0 + round * 10;
            let t = s
                .claim_tasks(&exp(), None, "w", 1, LEASE, now)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(t.attempts, 1, "round {round}");
            let r = TaskFinish {
                id: t.id,
                attempt: 1,
                result: TaskResult::Retry {
                    run_at_ms: now,
                    error: "CONN-0001 unauthorized".into(),
                    uncertain: false,
                    refund: true,
                },
                audit: None,
            };
            assert_eq!(s.finish_tasks("w", vec![r], now).await.unwrap(), vec![true]);
        }
        let t = &s.tasks(&TaskFilter::default()).await.unwrap()[0];
        assert_eq!((t.state, t.attempts), (ExecState::Ready, 0));
    }

    pub async fn expired_leases_are_reaped_and_fenced(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 2).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 2, T0).await.unwrap();
        let claimed = s
            .claim_tasks(&exp(), None, "dead-worker", 2, LEASE, T0)
            .await
            .unwrap();
        // A heartbeat keeps task 0 alive; task 1's lease runs out.
        let held = s
            .heartbeat_tasks("dead-worker", &[claimed[0].id], T0 + 3 * LEASE, T0 + 500)
            .await
            .unwrap();
        assert_eq!(held, 1);
        assert!(
            s.reap_expired_leases(T0 + LEASE - 1)
                .await
                .unwrap()
                .is_empty()
        );
        let reaped = s.reap_expired_leases(T0 + LEASE + 1).await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert_eq!(reaped[0].id, claimed[1].id);
        assert_eq!(reaped[0].now, ExecState::Ready);
        assert_eq!(reaped[0].previous_owner.as_deref(), Some("dead-worker"));
        assert_eq!(action_state(s, &plan, 1).await, ActionState::Pending);

        // The new claimer sees it as uncertain; the old owner's late result
        // is refused.
        let t = s
            .claim_tasks(&exp(), None, "w2", 5, LEASE, T0 + LEASE + 2)
            .await
            .unwrap()
            .remove(0);
        assert!(t.uncertain);
        assert_eq!(t.attempts, 2);
        assert_eq!(
            s.finish_tasks("dead-worker", vec![done(t.id, 1)], T0 + LEASE + 3)
                .await
                .unwrap(),
            vec![false]
        );
        // The heartbeat of a lost lease reports it.
        assert_eq!(
            s.heartbeat_tasks("dead-worker", &[t.id], T0 + 9 * LEASE, T0 + LEASE + 3)
                .await
                .unwrap(),
            0
        );
        // Dying on the last attempt dead-letters the task.
        let reaped = s.reap_expired_leases(T0 + 3 * LEASE).await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert_eq!(reaped[0].id, t.id);
        assert_eq!(reaped[0].now, ExecState::Dead);
        assert_eq!(action_state(s, &plan, 1).await, ActionState::Failed);
        // Task 0 (heartbeat until T0 + 3 LEASE) expires after that.
        let reaped = s.reap_expired_leases(T0 + 3 * LEASE + 1).await.unwrap();
        assert_eq!(
            reaped.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![claimed[0].id]
        );

        // A restarting worker under a stable name releases its own leases.
        let again = s
            .claim_tasks(&exp(), None, "stable", 5, LEASE, T0 + 4 * LEASE)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            s.release_leases_of("stable", T0 + 4 * LEASE).await.unwrap(),
            1
        );
        let t = &s.tasks(&TaskFilter::default()).await.unwrap()[0];
        assert_eq!(t.state, ExecState::Ready);
        assert!(t.uncertain);
    }

    pub async fn read_failures_count_in_a_row_and_resume_resets_them(fx: Fx) {
        use roster_store::ReadStatus;
        let s = &fx.store;
        assert!(s.read_health().await.unwrap().is_empty());
        assert_eq!(
            s.record_read(&exp(), ReadStatus::Failed, Some("CONN-0001 refused"), T0)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.record_read(
                &exp(),
                ReadStatus::Failed,
                Some("CONN-0001 refused"),
                T0 + 1
            )
            .await
            .unwrap(),
            2
        );
        // Another connection's reads are its own.
        assert_eq!(
            s.record_read(&slack(), ReadStatus::Incomplete, Some("short listing"), T0)
                .await
                .unwrap(),
            0
        );
        let h = s.read_health().await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].connection, exp());
        assert_eq!(h[0].status, ReadStatus::Failed);
        assert_eq!(h[0].failures_in_a_row, 2);
        assert_eq!(h[0].at_ms, T0 + 1);
        assert_eq!(h[0].detail.as_deref(), Some("CONN-0001 refused"));
        assert_eq!(h[1].status, ReadStatus::Incomplete);
        // A quarantine lifted by a person starts the count afresh.
        s.quarantine_connection(&exp(), "2 failed reads in a row")
            .await
            .unwrap();
        assert!(s.resume_connection(&exp(), T0 + 2).await.unwrap());
        assert_eq!(s.read_health().await.unwrap()[0].failures_in_a_row, 0);
        assert_eq!(
            s.record_read(&exp(), ReadStatus::Failed, None, T0 + 3)
                .await
                .unwrap(),
            1
        );
        // A read that is not a failure ends the run of failures.
        assert_eq!(
            s.record_read(&exp(), ReadStatus::Ok, None, T0 + 4)
                .await
                .unwrap(),
            0
        );
        let h = s.read_health().await.unwrap();
        assert_eq!((h[0].status, h[0].failures_in_a_row), (ReadStatus::Ok, 0));
    }

    pub async fn quarantine_stops_claims_until_resumed(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 2).await;
        s.enqueue_plan_tasks(&plan, &[exp(), slack()], 4, T0)
            .await
            .unwrap();
        // No connection record exists yet: quarantine creates one.
        s.quarantine_connection(&exp(), "CONN-0001 unauthorized (3 batches in a row)")
            .await
            .unwrap();
        let rec = s.connection(&exp()).await.unwrap().unwrap();
        assert_eq!(rec.status, "quarantined");
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0)
                .await
                .unwrap()
                .is_empty()
        );
        let status = s.queue_status(&exp(), None).await.unwrap();
        assert_eq!(status.ready, 2);
        assert!(status.quarantined.unwrap().contains("CONN-0001"));
        // Other connections are unaffected.
        assert_eq!(
            s.claim_tasks(&slack(), None, "w", 5, LEASE, T0)
                .await
                .unwrap()
                .len(),
            1
        );

        assert!(!s.resume_connection(&slack(), T0).await.unwrap());
        assert!(s.resume_connection(&exp(), T0 + 1).await.unwrap());
        assert_eq!(s.connection(&exp()).await.unwrap().unwrap().status, "ok");
        assert_eq!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 1)
                .await
                .unwrap()
                .len(),
            2
        );
    }

    pub async fn pause_stops_claims_until_resumed(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 2).await;
        s.enqueue_plan_tasks(&plan, &[exp(), slack()], 4, T0)
            .await
            .unwrap();
        assert!(
            s.pause_writes(Some(&exp()), "alice", Some("vendor incident"), T0)
                .await
                .unwrap()
        );
        assert!(
            !s.pause_writes(Some(&exp()), "bob", None, T0 + 1)
                .await
                .unwrap(),
            "pausing again is not a new pause"
        );
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 2)
                .await
                .unwrap()
                .is_empty()
        );
        let status = s.queue_status(&exp(), None).await.unwrap();
        assert_eq!(status.ready, 2);
        assert_eq!(status.paused.as_deref(), Some("paused by bob"));
        assert!(status.quarantined.is_none(), "a pause is not a quarantine");
        assert_eq!(s.connection(&exp()).await.unwrap(), None);
        // Pausing everything stops the other connection too.
        assert!(
            s.pause_writes(None, "carol", Some("audit"), T0)
                .await
                .unwrap()
        );
        assert!(
            s.claim_tasks(&slack(), None, "w", 5, LEASE, T0 + 2)
                .await
                .unwrap()
                .is_empty()
        );
        let all = s.pauses().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].connection, None);
        assert_eq!(all[0].scope_label(), "all connections");
        assert_eq!(
            s.pause_of(&slack()).await.unwrap().unwrap().actor,
            "carol",
            "the all-connections pause covers a connection without its own"
        );
        assert_eq!(s.pause_of(&exp()).await.unwrap().unwrap().actor, "bob");
        // Lifting the global pause leaves expensify's own in force.
        assert!(s.resume_writes(None, T0 + 3).await.unwrap());
        assert!(!s.resume_writes(None, T0 + 3).await.unwrap());
        assert_eq!(
            s.claim_tasks(&slack(), None, "w", 5, LEASE, T0 + 3)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 3)
                .await
                .unwrap()
                .is_empty()
        );
        // A quarantine lifted does not lift a pause, and the reverse.
        s.quarantine_connection(&exp(), "CONN-0001").await.unwrap();
        assert!(s.resume_connection(&exp(), T0 + 4).await.unwrap());
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 4)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.resume_writes(Some(&exp()), T0 + 5).await.unwrap());
        assert_eq!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 5)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(s.pauses().await.unwrap().is_empty());
    }

    /// Turns taken from two stores on the same database at once (as two
    /// processes would) never exceed the rule: the check and the record
    /// are one atomic step.
    pub async fn rate_turns_are_atomic_across_stores(fx: Fx) {
        let a = fx.store.clone();
        let b = Store::open(&fx.open_url).await.unwrap();
        const MAX: usize = 5;
        // At most MAX requests in any 1,000 ms.
        let rule = |sent: &[i64], hold: Option<i64>, now: i64| -> i64 {
            let recent: Vec<i64> = sent.iter().copied().filter(|t| now - t < 1_000).collect();
            let at = if recent.len() >= MAX {
                recent[recent.len() - MAX] + 1_000
            } else {
                now
            };
            at.max(hold.unwrap_or(now))
        };
        let mut joins = Vec::new();
        for i in 0..24 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            joins.push(tokio::spawn(async move {
                s.take_rate_turn(
                    &exp(),
                    1_000,
                    || T0,
                    |sent, hold, now| rule(sent, hold, now),
                )
                .await
                .unwrap()
            }));
        }
        let mut went = 0;
        for j in joins {
            match j.await.unwrap() {
                None => went += 1,
                Some(at) => assert_eq!(at, T0 + 1_000),
            }
        }
        assert_eq!(went, MAX, "exactly the window's worth went");
        assert_eq!(a.rate_requests_since(&exp(), 0).await.unwrap(), MAX as u64);
        // Another connection has its own budget.
        assert_eq!(
            b.take_rate_turn(
                &slack(),
                1_000,
                || T0,
                |sent, hold, now| rule(sent, hold, now)
            )
            .await
            .unwrap(),
            None
        );
        // A hold the app asked for is seen by every store; a shorter one
        // later does not shorten it.
        a.hold_rate_budget(&exp(), T0 + 5_000).await.unwrap();
        b.hold_rate_budget(&exp(), T0 + 3_000).await.unwrap();
        let later = T0 + 2_000;
        assert_eq!(
            b.take_rate_turn(
                &exp(),
                1_000,
                || later,
                |sent, hold, now| rule(sent, hold, now)
            )
            .await
            .unwrap(),
            Some(T0 + 5_000)
        );
        // Past the hold: room again, and the old requests were pruned.
        let after = T0 + 5_000;
        assert_eq!(
            a.take_rate_turn(
                &exp(),
                1_000,
                || after,
                |sent, hold, now| rule(sent, hold, now)
            )
            .await
            .unwrap(),
            None
        );
        assert_eq!(a.rate_requests_since(&exp(), 0).await.unwrap(), 1);
        b.close().await;
    }

    pub async fn cancel_skips_unstarted_tasks(fx: Fx) {
        let s = &fx.store;
        let plan = saved(s, 3).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 4, T0).await.unwrap();
        let running = s
            .claim_tasks(&exp(), None, "w", 1, LEASE, T0)
            .await
            .unwrap();
        assert_eq!(s.cancel_plan_tasks(&plan, T0 + 1).await.unwrap(), 2);
        let actions = s.actions(&plan).await.unwrap();
        assert_eq!(actions[0].state, ActionState::Running);
        assert_eq!(actions[1].state, ActionState::Skipped);
        assert!(
            s.claim_tasks(&exp(), None, "w", 5, LEASE, T0 + 2)
                .await
                .unwrap()
                .is_empty()
        );
        // The running one still finishes normally.
        assert_eq!(
            s.finish_tasks("w", vec![done(running[0].id, 1)], T0 + 3)
                .await
                .unwrap(),
            vec![true]
        );
    }

    /// Several claimers, each with its own store handle (its own pool, as
    /// separate worker processes would have), drain one queue. No task may
    /// be handed out twice, and none may be left behind.
    pub async fn concurrent_claimers_never_share_a_task(fx: Fx) {
        const N: usize = 600;
        let s = &fx.store;
        let plan = saved(s, N).await;
        s.enqueue_plan_tasks(&plan, &[exp()], 4, T0).await.unwrap();
        let mut handles = Vec::new();
        for w in 0..4 {
            let store = Arc::new(Store::open(&fx.open_url).await.unwrap());
            handles.push(tokio::spawn(async move {
                let owner = format!("w{w}");
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_tasks(&exp(), None, &owner, 7, 60_000, T0)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for t in &batch {
                        assert_eq!(t.lease_owner.as_deref(), Some(owner.as_str()));
                        assert_eq!(t.attempts, 1, "claimed twice: {t:?}");
                    }
                    got.extend(batch.iter().map(|t| t.id));
                    tokio::task::yield_now().await;
                }
                store.close().await;
                got
            }));
        }
        let mut all = Vec::new();
        let mut per_worker = Vec::new();
        for h in handles {
            let got = h.await.unwrap();
            per_worker.push(got.len());
            all.extend(got);
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            N,
            "every task claimed exactly once ({per_worker:?})"
        );
        assert_eq!(unique.len(), N);
        let counts = s.task_counts(&plan).await.unwrap();
        assert_eq!(counts.get(&ExecState::Running), Some(&(N as u64)));
    }
}

both_backends!(
    read_failures_count_in_a_row_and_resume_resets_them,
    enqueue_is_idempotent,
    claim_finish_mirrors_plan_and_audits,
    retry_waits_then_dead_letters,
    refunded_attempts_do_not_count,
    expired_leases_are_reaped_and_fenced,
    quarantine_stops_claims_until_resumed,
    pause_stops_claims_until_resumed,
    rate_turns_are_atomic_across_stores,
    cancel_skips_unstarted_tasks,
    concurrent_claimers_never_share_a_task,
);
