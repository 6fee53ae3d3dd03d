//! Latency percentiles.

use serde_json::{Value, json};
use std::time::Duration;

/// p50/p90/p99/max in milliseconds of a sample.
pub fn percentiles(mut xs: Vec<Duration>) -> Value {
    if xs.is_empty() {
        return json!(null);
    }
    xs.sort_unstable();
    let at = |q: f64| {
        let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
        xs[i].as_secs_f64() * 1000.0
    };
    json!({
        "p50_ms": round(at(0.50)), "p90_ms": round(at(0.90)), "p95_ms": round(at(0.95)), "p99_ms": round(at(0.99)),
        "max_ms": round(at(1.0)), "n": xs.len(),
    })
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Resident memory of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    rss_of("self")
}

/// Resident memory of process `pid` ("self" for this one), in bytes.
pub fn rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
