//! `GET /metrics`: the Prometheus text a scraper reads, parsed with a
//! Prometheus text parser, after a publish that completes, retries and
//! dead-letters runs.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Event, Retry, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually, http, runs_with_status};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One sample's value by metric name and labels (all given labels match).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
        })
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

async fn scrape(engine: &TestEngine) -> (prometheus_parse::Scrape, String) {
    let (status, headers, body) = http(&engine.http_url, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    (prometheus_parse::Scrape::parse(lines).unwrap(), body)
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Two events to three tasks: one completes, one fails once then
    /// completes, one fails fatally. The counters, histograms and queue
    /// gauges say exactly that.
    async fn metrics_count_what_happened(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Value>::new("order.created");
        let tries = Arc::new(AtomicU32::new(0));
        let t = tries.clone();
        let worker = Worker::new(client.clone()).define_events()
            .task(Task::new("ok", &ev, |_: Value, _| async { Ok::<_, TaskError>(1) }))
            .task(
                Task::new("flaky", &ev, move |_: Value, ctx| {
                    let t = t.clone();
                    async move {
                        t.fetch_add(1, Ordering::SeqCst);
                        if ctx.attempt == 1 {
                            Err(TaskError::retryable("first try fails"))
                        } else {
                            Ok(2)
                        }
                    }
                })
                .retry(Retry::attempts(3).backoff(Duration::from_millis(20), Duration::from_millis(50))),
            )
            .task(Task::new("fatal", &ev, |_: Value, _| async {
                Err::<(), _>(TaskError::fatal("no"))
            }))
            .start()
            .await
            .unwrap();
        for n in 0..2 {
            ev.publish(&client, &json!({ "n": n })).await.unwrap();
        }
        eventually(Duration::from_secs(20), "6 terminal runs", || async {
            let done = runs_with_status(&client, fanout::RunStatus::Completed).await.len()
                + runs_with_status(&client, fanout::RunStatus::Dead).await.len();
            (done == 6).then_some(())
        })
        .await;

        // A run's counter moves just after its completion commits: wait
        // for the last one to be counted.
        let (s, body) = eventually(Duration::from_secs(10), "completions counted", || async {
            let (s, body) = scrape(&engine).await;
            let l = [("namespace", "default"), ("task", "flaky")];
            (value(&s, "fanout_runs_completed_total", &l) == Some(2.0)).then_some((s, body))
        })
        .await;
        let ev_labels = [("namespace", "default"), ("event", "order.created")];
        assert_eq!(value(&s, "fanout_events_published_total", &ev_labels), Some(2.0), "{body}");
        for task in ["ok", "flaky", "fatal"] {
            let l = [("namespace", "default"), ("event", "order.created"), ("task", task)];
            assert_eq!(value(&s, "fanout_runs_created_total", &l), Some(2.0), "{task}: {body}");
        }
        let task = |t: &'static str| [("namespace", "default"), ("task", t)];
        assert_eq!(value(&s, "fanout_runs_completed_total", &task("ok")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_completed_total", &task("flaky")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_failed_total", &task("flaky")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_retried_total", &task("flaky")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_failed_total", &task("fatal")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_dead_total", &task("fatal")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_runs_failed_total", &task("ok")), None, "{body}");
        // Histograms: one observation per attempt that reported a result
        // (+Inf bucket), one per claim.
        assert_eq!(value(&s, "fanout_run_duration_seconds", &task("flaky")), Some(4.0), "{body}");
        assert_eq!(value(&s, "fanout_publish_to_start_seconds", &task("ok")), Some(2.0), "{body}");
        // Queue gauges, read from the store.
        assert_eq!(value(&s, "fanout_dlq_depth", &task("fatal")), Some(2.0), "{body}");
        assert_eq!(value(&s, "fanout_workers_connected", &[]), Some(1.0), "{body}");
        assert_eq!(tries.load(Ordering::SeqCst), 4);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}
