//! `--repeat N`: run the same scenario N times and report the medians.
//!
//! This VM's run-to-run spread is ±15 – 20 %, so every figure in
//! BENCHMARKS.md is a median of several runs. Each repeat is a fresh child
//! process (this binary with the same flags, minus `--repeat`), exactly as
//! the shell loops behind the earlier figures were: no warm caches, pools or
//! allocator state carried from one run to the next, and per-process memory
//! figures stay meaningful. The summary keeps every run and gives, for each
//! number in it, the median, the smallest and the largest.

use serde_json::{Value, json};
use std::process::Command;

/// Run this binary `n` times with `args` (which must not hold `--repeat`)
/// and summarise the runs.
pub fn run(n: usize, args: &[String]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let out = Command::new(&exe).args(args).arg("--json").output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // The child's own error line, without a backtrace after it.
            let why = err
                .lines()
                .find_map(|l| l.strip_prefix("Error: "))
                .unwrap_or_else(|| err.trim());
            anyhow::bail!("run {} of {n} failed ({}): {why}", i + 1, out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let run: Value = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!("run {} of {n} printed no JSON summary ({e}): {line}", i + 1)
        })?;
        eprintln!("run {}/{n}: {line}", i + 1);
        runs.push(run);
    }
    Ok(summarise(runs))
}

/// `{repeat, median, min, max, runs}`; `median`/`min`/`max` have the shape
/// of one run with every number replaced.
pub fn summarise(runs: Vec<Value>) -> Value {
    let all: Vec<&Value> = runs.iter().collect();
    let (mid, min, max) = (
        fold(&all, median),
        fold(&all, |xs| xs[0]),
        fold(&all, |xs| xs[xs.len() - 1]),
    );
    json!({"repeat": runs.len(), "median": mid, "min": min, "max": max, "runs": runs})
}

/// Walk the runs in step: numbers found at the same place in every run are
/// sorted and reduced by `f`; anything else is taken from the first run.
fn fold(values: &[&Value], f: fn(&mut [f64]) -> f64) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match first {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fold_at(values, f, |x| x.get(k), v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| fold_at(values, f, |x| x.get(i), v))
                .collect(),
        ),
        Value::Number(_) => {
            let mut xs: Vec<f64> = values.iter().filter_map(|x| x.as_f64()).collect();
            if xs.len() != values.len() {
                return (*first).clone();
            }
            xs.sort_by(f64::total_cmp);
            json!(f(&mut xs))
        }
        other => (*other).clone(),
    }
}

/// `fold` over what `get` finds in each run; `first` (the first run's) when
/// some run lacks it.
fn fold_at<'v>(
    values: &[&'v Value],
    f: fn(&mut [f64]) -> f64,
    get: impl Fn(&'v Value) -> Option<&'v Value>,
    first: &Value,
) -> Value {
    let at: Vec<&Value> = values.iter().filter_map(|x| get(x)).collect();
    if at.len() == values.len() {
        fold(&at, f)
    } else {
        first.clone()
    }
}

fn median(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_every_number_in_place() {
        let runs = vec![
            json!({"backend": "sqlite", "runs_per_sec": 10.0, "ack": {"p50_ms": 3.0}, "w": [1, 5]}),
            json!({"backend": "sqlite", "runs_per_sec": 30.0, "ack": {"p50_ms": 1.0}, "w": [2, 6]}),
            json!({"backend": "sqlite", "runs_per_sec": 20.0, "ack": {"p50_ms": 2.0}, "w": [3, 4]}),
        ];
        let s = summarise(runs);
        assert_eq!(s["repeat"], 3);
        assert_eq!(s["median"]["runs_per_sec"], 20.0);
        assert_eq!(s["median"]["ack"]["p50_ms"], 2.0);
        assert_eq!(s["median"]["w"], json!([2.0, 5.0]));
        assert_eq!(s["min"]["runs_per_sec"], 10.0);
        assert_eq!(s["max"]["ack"]["p50_ms"], 3.0);
        assert_eq!(s["median"]["backend"], "sqlite");
        assert_eq!(s["runs"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn even_count_takes_the_middle_pair_and_odd_shapes_keep_the_first() {
        let runs = vec![
            json!({"x": 1.0, "only_first": 7, "n": null}),
            json!({"x": 4.0, "n": null}),
        ];
        let s = summarise(runs);
        assert_eq!(s["median"]["x"], 2.5);
        assert_eq!(s["median"]["only_first"], 7);
        assert_eq!(s["median"]["n"], Value::Null);
    }
}
