//! `roster bench ui` at a small size, so the harness cannot rot: it seeds,
//! signs a viewer in, loads the dashboard, people search and person page
//! through the router `roster serve` serves, and reports JSON with every
//! request answered 2xx. (Speed is the benchmark's business, never a
//! test's.)

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_ui_runs_small_and_reports_every_page() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("roster"))
        .args([
            "bench",
            "ui",
            "--people",
            "200",
            "--apps",
            "3",
            "--requests",
            "30",
            "--dashboard-requests",
            "10",
            "--concurrency",
            "2",
        ])
        .env("ROSTER_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["people"], 200, "{report}");
    assert_eq!(report["accounts"], 600);
    let pages = report["pages"].as_array().unwrap();
    let names: Vec<&str> = pages.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dashboard", "search", "person"], "{report}");
    for p in pages {
        assert_eq!(p["non_2xx"], 0, "{p}");
        assert_eq!(p["target_p95_ms"], 100.0, "{p}");
        assert!(p["p50_ms"].as_f64().unwrap() <= p["p95_ms"].as_f64().unwrap());
        assert!(p["p95_ms"].as_f64().unwrap() <= p["max_ms"].as_f64().unwrap());
    }
    assert_eq!(pages[0]["requests"], 10);
    assert_eq!(pages[1]["requests"], 30);
}
