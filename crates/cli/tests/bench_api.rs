//! `roster bench api` at a small size, so the harness cannot rot: it
//! seeds, serves, loads every endpoint the build serves and reports JSON
//! with every request answered 2xx. (Speed is the benchmark's business,
//! never a test's.)

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_api_runs_small_and_reports_every_endpoint() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("roster"))
        .args([
            "bench",
            "api",
            "--people",
            "200",
            "--apps",
            "3",
            "--requests",
            "40",
            "--concurrency",
            "4",
        ])
        .env("ROSTER_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["people"], 200, "{report}");
    assert_eq!(report["apps"], 3);
    assert_eq!(report["accounts"], 600);
    assert_eq!(report["scim_users"], 200);
    assert_eq!(report["concurrency"], 4);
    let endpoints = report["endpoints"].as_array().unwrap();
    let names: Vec<&str> = endpoints
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for want in ["scim_get", "scim_filter", "person_direct", "search_direct"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    // The REST routes are timed when served, listed as missing otherwise;
    // never both, never neither.
    let missing = report["missing"].as_array().unwrap();
    let served = names.contains(&"person") && names.contains(&"search");
    assert!(served != (missing.len() == 2), "{report}");
    for e in endpoints {
        assert_eq!(e["requests"], 40, "{e}");
        assert_eq!(e["non_2xx"], 0, "{e}");
        assert!(e["p50_ms"].as_f64().unwrap() <= e["p99_ms"].as_f64().unwrap());
        assert!(e["p99_ms"].as_f64().unwrap() <= e["max_ms"].as_f64().unwrap());
        assert!(e["p99_vs_scim_get"].is_number(), "{e}");
    }
}
