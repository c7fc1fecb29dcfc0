//! Leases with fencing tokens and the shared schedule, on both backends:
//! one holder at a time, a takeover only after expiry and always with a
//! greater token, and a stale holder (paused past its expiry) unable to
//! renew, pass the fence or start a scheduled run.

mod common;
use common::harness;

mod cases {
    use super::harness::Fx;

    const TTL: i64 = 1_000;

    pub async fn one_holder_at_a_time_and_takeover_only_after_expiry(fx: Fx) {
        let s = &fx.store;
        let a = s
            .acquire_lease("scheduler", "a", 10_000, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.holder.as_str(), a.token, a.expires_ms), ("a", 1, 11_000));
        // Live: nobody else gets it, not even the same holder anew.
        assert_eq!(
            s.acquire_lease("scheduler", "b", 10_999, TTL)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.acquire_lease("scheduler", "a", 10_500, TTL)
                .await
                .unwrap(),
            None
        );
        // Renewing keeps the token.
        assert!(s.renew_lease(&a, 10_900, TTL).await.unwrap());
        assert_eq!(
            s.lease("scheduler").await.unwrap().unwrap().expires_ms,
            11_900
        );
        assert!(s.lease_holds(&a, 11_899).await.unwrap());
        assert!(
            !s.lease_holds(&a, 11_900).await.unwrap(),
            "expired at its expiry"
        );
        // Other names are independent.
        assert!(
            s.acquire_lease("other", "b", 10_900, TTL)
                .await
                .unwrap()
                .is_some()
        );

        // `a` is paused past its expiry; `b` takes over with a greater token.
        let b = s
            .acquire_lease("scheduler", "b", 11_900, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.token, 2);
        // The stale holder can neither renew nor pass the fence, whatever
        // its own clock says.
        assert!(!s.renew_lease(&a, 11_950, TTL).await.unwrap());
        assert!(!s.lease_holds(&a, 11_950).await.unwrap());
        assert!(
            !s.lease_holds(&a, 0).await.unwrap(),
            "a stale token never holds"
        );
        assert!(s.lease_holds(&b, 11_950).await.unwrap());
        // An expired lease is not renewed even if nobody took it.
        assert!(!s.renew_lease(&b, 12_900, TTL).await.unwrap());
        // Releasing lets the next holder in at once, with a new token.
        let b2 = s
            .acquire_lease("scheduler", "b", 12_900, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b2.token, 3);
        s.release_lease(&a).await.unwrap(); // not a's: a no-op
        assert!(s.lease_holds(&b2, 13_000).await.unwrap());
        s.release_lease(&b2).await.unwrap();
        assert!(!s.lease_holds(&b2, 13_000).await.unwrap());
        let c = s
            .acquire_lease("scheduler", "c", 13_001, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.token, 4);
    }

    pub async fn the_schedule_runs_once_per_interval_and_only_for_the_live_lease(fx: Fx) {
        let s = &fx.store;
        let a = s
            .acquire_lease("scheduler", "a", 0, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.next_due("full").await.unwrap(), None);
        // Never run: due at once; then not again before the interval.
        assert!(s.claim_due("full", &a, 100, 500).await.unwrap());
        assert_eq!(s.next_due("full").await.unwrap(), Some(600));
        assert!(!s.claim_due("full", &a, 599, 500).await.unwrap());
        assert!(s.claim_due("full", &a, 600, 500).await.unwrap());
        assert_eq!(s.next_due("full").await.unwrap(), Some(1_100));

        // a's lease expires; b takes over. A stale `a` cannot start the
        // run that is due, and the schedule is untouched by its attempt.
        let b = s
            .acquire_lease("scheduler", "b", 1_200, TTL)
            .await
            .unwrap()
            .unwrap();
        assert!(!s.claim_due("full", &a, 1_200, 500).await.unwrap());
        assert_eq!(s.next_due("full").await.unwrap(), Some(1_100));
        assert!(s.claim_due("full", &b, 1_200, 500).await.unwrap());
        // A job never run cannot be started by a stale holder either.
        assert!(!s.claim_due("poll", &a, 1_300, 500).await.unwrap());
        assert_eq!(s.next_due("poll").await.unwrap(), None);
    }

    pub async fn concurrent_acquirers_get_one_lease(fx: Fx) {
        let s = fx.store.clone();
        let mut handles = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.acquire_lease("scheduler", &format!("p{i}"), 5_000, TTL)
                    .await
                    .unwrap()
            }));
        }
        let mut won = Vec::new();
        for h in handles {
            if let Some(l) = h.await.unwrap() {
                won.push(l);
            }
        }
        assert_eq!(won.len(), 1, "{won:?}");
        let stored = s.lease("scheduler").await.unwrap().unwrap();
        assert_eq!(stored.holder, won[0].holder);
        assert_eq!(stored.token, won[0].token);
    }
}

both_backends!(
    one_holder_at_a_time_and_takeover_only_after_expiry,
    the_schedule_runs_once_per_interval_and_only_for_the_live_lease,
    concurrent_acquirers_get_one_lease,
);
