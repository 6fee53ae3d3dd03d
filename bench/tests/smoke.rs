//! The benchmark binary runs scenario 1 end to end and reports its figures.
//! It checks the shape and the counts of the summary, never a timing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

/// Run the bench binary with `args` and parse its JSON summary.
fn bench(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fanout-bench"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn throughput_scenario_reports_runs_per_sec() {
    let v = bench(&[
        "--backend",
        "sqlite",
        "--events",
        "60",
        "--subscribers",
        "2",
        "--publishers",
        "4",
        "--json",
    ]);
    assert_eq!(v["scenario"], "throughput");
    assert_eq!(v["runs"], 120);
    assert!(v["runs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["events_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(v["publish_ack"]["n"], 60);
}

#[test]
fn repeat_runs_fresh_processes_and_reports_medians() {
    let v = bench(&[
        "--backend",
        "sqlite",
        "--events",
        "30",
        "--subscribers",
        "2",
        "--publishers",
        "2",
        "--repeat=3",
        "--json",
    ]);
    assert_eq!(v["repeat"], 3);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["runs"] == 60));
    let median = v["median"]["runs_per_sec"].as_f64().unwrap();
    let (min, max) = (
        v["min"]["runs_per_sec"].as_f64().unwrap(),
        v["max"]["runs_per_sec"].as_f64().unwrap(),
    );
    assert!(min <= median && median <= max && min > 0.0);
    // The median is one of the three runs' own figures.
    assert!(
        runs.iter()
            .any(|r| r["runs_per_sec"].as_f64() == Some(median))
    );
}
