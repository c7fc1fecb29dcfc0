//! The benchmark at toy size: every field of the report is there and the
//! figures are plausible. The real run is `roster bench reconcile` (or the
//! `bench` example) in release mode.

use roster_engine::bench::{self, BenchError, BenchOptions};

#[tokio::test]
async fn a_tiny_benchmark_reports_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("bench.db").display().to_string();
    let opts = BenchOptions {
        people: 500,
        apps: 3,
        database: Some(url.clone()),
        seed: 1,
        targeted_samples: 50,
    };
    let mut lines = Vec::new();
    let mut report = bench::run(&opts, &mut |l| lines.push(l.to_string()))
        .await
        .unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");

    let json = serde_json::to_value(&report).unwrap();
    for path in [
        "/backend",
        "/database",
        "/seed",
        "/peak_reset_after_seed",
        "/seed_phase/ms",
        "/full/load_people_ms",
        "/full/load_observed_ms",
        "/full/reconcile_ms",
        "/full/persist_ms",
        "/full/total_ms",
        "/full/people",
        "/full/accounts",
        "/full/findings",
        "/targeted/samples",
        "/targeted/p50_ms",
        "/targeted/p99_ms",
        "/targeted/max_ms",
        "/targeted/mean_ms",
        "/targeted/actions",
        "/targets/full_total_ms",
        "/targets/peak_rss_bytes",
        "/targets/targeted_p99_ms",
        "/targets/scaling_ratio_max",
        "/met/full_total",
        "/met/targeted_p99",
    ] {
        let v = json.pointer(path);
        assert!(
            v.is_some_and(|v| !v.is_null()),
            "{path} missing in {json:#}"
        );
    }
    if cfg!(target_os = "linux") {
        for path in [
            "/seed_phase/peak_rss_bytes",
            "/full/peak_rss_after_load_bytes",
            "/full/peak_rss_after_reconcile_bytes",
            "/full/peak_rss_after_persist_bytes",
            "/targeted/peak_rss_bytes",
            "/met/peak_rss",
        ] {
            assert!(json.pointer(path).is_some_and(|v| !v.is_null()), "{path}");
        }
    }
    assert_eq!(json["backend"], "sqlite");
    assert_eq!(report.mix.people, 500);
    assert_eq!(report.full.people, 500);
    assert_eq!(report.full.accounts, report.mix.accounts);
    assert_eq!(report.targeted.samples, 50);
    // The synthetic month has leavers, movers, drift and orphans: the plan
    // must show all of them.
    for op in ["create", "update", "deactivate"] {
        assert!(
            report.full.actions.get(op).copied().unwrap_or(0) > 0,
            "{op}: {json:#}"
        );
    }
    assert!(report.full.findings >= report.mix.orphan_accounts);
    assert!(report.targeted.p50_ms <= report.targeted.p99_ms);
    assert!(report.targeted.p99_ms <= report.targeted.max_ms);

    // Scaling against itself is 1×; a doubled size is judged.
    let scaling = report.compare(&json).unwrap().clone();
    assert!((scaling.ratio - 1.0).abs() < 1e-9);
    assert_eq!(scaling.met, None);
    assert!(report.compare(&serde_json::json!({})).is_err());

    // The store now holds a company: the benchmark refuses to overwrite it.
    let again = bench::run(&opts, &mut |_| {}).await;
    assert!(matches!(again, Err(BenchError::NotEmpty(..))), "{again:?}");
}
