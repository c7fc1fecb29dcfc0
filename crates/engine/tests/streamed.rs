//! The full plan, streamed a connection at a time (`roster_engine::stream`),
//! is the plan the core computes over every account at once, and keeps the
//! guards: an incomplete read still yields no deactivation.

use roster_core::guard::GuardContext;
use roster_core::{Observed, Operation, reconcile_guarded};
use roster_engine::bench::Synthetic;
use roster_engine::{Engine, PlanScope};
use roster_store::Store;
use time::{Date, Month};

fn now() -> time::OffsetDateTime {
    Date::from_calendar_date(2026, Month::November, 25)
        .unwrap()
        .with_hms(9, 0, 0)
        .unwrap()
        .assume_utc()
}

async fn seeded(apps: usize, incomplete: Option<usize>) -> (tempfile::TempDir, Store, Synthetic) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    let synthetic = Synthetic::new(600, apps, 7, now().date()).unwrap();
    store.replace_people(&synthetic.people).await.unwrap();
    for (k, c) in synthetic.connections.iter().enumerate() {
        let (mut accounts, _) = synthetic.accounts(k);
        let observed = if incomplete == Some(k) {
            // The page holding the last third failed.
            accounts.truncate(accounts.len() * 2 / 3);
            Observed {
                connection: c.clone(),
                accounts,
                complete: false,
                incomplete_reason: Some("page 3 failed".into()),
            }
        } else {
            Observed::complete(c.clone(), accounts)
        };
        store.replace_accounts(&observed, 1).await.unwrap();
    }
    (dir, store, synthetic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamed_full_plan_is_the_plan_over_everything() {
    let (_dir, store, synthetic) = seeded(7, None).await;
    let policy = synthetic.policy().unwrap();
    let engine = Engine::new(store.clone(), policy.clone()).at(now());
    let streamed = engine.compute_plan(&PlanScope::All).await.unwrap();

    // The same decision over every account held at once.
    let context = GuardContext {
        first_plan: policy.governed_connections().into_iter().collect(),
        calendar: engine.calendar.clone(),
        ..GuardContext::default()
    };
    let whole = reconcile_guarded(
        &store.people().await.unwrap(),
        &store.all_observed().await.unwrap(),
        &policy,
        &[],
        &context,
        now(),
    );
    assert!(!whole.actions.is_empty());
    assert_eq!(streamed, whole);
    assert_eq!(streamed.hash(), whole.hash());

    // Some connections only (the service's per-read plans).
    let some = synthetic.connections[2..4].to_vec();
    let part = engine
        .compute_plan(&PlanScope::Connections(some.clone()))
        .await
        .unwrap();
    assert!(part.actions.iter().all(|a| some.contains(&a.connection)));
    let observed: Vec<Observed> = store
        .all_observed()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| some.contains(&o.connection))
        .collect();
    let whole_part = reconcile_guarded(
        &store.people().await.unwrap(),
        &observed,
        &policy,
        &[],
        &context,
        now(),
    );
    assert_eq!(part, whole_part);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_read_streamed_yields_no_deactivation() {
    let (_dir, store, synthetic) = seeded(5, Some(1)).await;
    let policy = synthetic.policy().unwrap();
    let engine = Engine::new(store.clone(), policy).at(now());
    let plan = engine.compute_plan(&PlanScope::All).await.unwrap();
    let broken = &synthetic.connections[1];
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| &a.connection == broken && a.operation.is_deprovision()),
        "a deactivation from an incomplete read"
    );
    // The others still plan their leavers' deactivations.
    assert!(
        plan.actions
            .iter()
            .any(|a| &a.connection != broken && a.operation == Operation::Deactivate)
    );
    assert!(
        plan.guards
            .fired
            .iter()
            .any(|h| h.connection.as_ref() == Some(broken) && h.count > 0),
        "the withholding is reported: {:?}",
        plan.guards
    );
}
