//! Two engines on one Postgres schema share the work: every run executes,
//! none is lost, and each completes exactly once in the store.
//! Needs FANOUT_TEST_POSTGRES_URL (CI sets it); without it there is nothing
//! shared to test, so it returns early.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Event, Task, TaskError, Worker};
use fanout_engine::config::StoreConfig;
use fanout_tests::{TestEngine, eventually, test_config, unique_schema};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Job {
    n: u32,
}

#[tokio::test]
#[ignore = "service test: needs FANOUT_TEST_POSTGRES_URL (.ci/run sets it)"]
async fn two_engines_share_one_postgres() {
    let url = std::env::var("FANOUT_TEST_POSTGRES_URL")
        .expect("FANOUT_TEST_POSTGRES_URL is not set: replicas need PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(fanout_engine::Config::embedded(dir.path()));
    config.store = StoreConfig::Postgres {
        url,
        schema: unique_schema(),
        max_connections: 8,
    };
    let e1 = TestEngine::start(config.clone()).await;
    let e2 = TestEngine::start(config).await;
    let c1 = e1.client().await;
    let c2 = e2.client().await;

    let ev = Event::<Job>::new("job.created");
    let executions: Arc<Mutex<HashMap<String, Vec<&'static str>>>> = Arc::default();
    let task = |who: &'static str| {
        let ex = executions.clone();
        Task::new("process", &ev, move |_: Job, ctx| {
            let ex = ex.clone();
            async move {
                ex.lock()
                    .unwrap()
                    .entry(ctx.run_id.clone())
                    .or_default()
                    .push(who);
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok::<_, TaskError>(who)
            }
        })
    };
    let w1 = Worker::new(c1.clone())
        .define_events()
        .concurrency(8)
        .task(task("w1"))
        .start()
        .await
        .unwrap();
    let w2 = Worker::new(c2.clone())
        .define_events()
        .concurrency(8)
        .task(task("w2"))
        .start()
        .await
        .unwrap();

    // Publish through both engines.
    let mut run_ids = Vec::new();
    for i in 0..300u32 {
        let c = if i % 2 == 0 { &c1 } else { &c2 };
        let p = ev.publish(c, &Job { n: i }).await.unwrap();
        assert_eq!(p.runs.len(), 1, "both engines see the subscription");
        run_ids.push(p.runs[0].run_id.clone());
    }
    eventually(
        Duration::from_secs(60),
        "all 300 runs completed",
        || async {
            let done = fanout_tests::runs_with_status(&c1, fanout::RunStatus::Completed).await;
            (done.len() == 300).then_some(())
        },
    )
    .await;
    let ex = executions.lock().unwrap().clone();
    assert_eq!(ex.len(), 300, "every run executed");
    let by_w1 = ex.values().filter(|v| v.contains(&"w1")).count();
    let by_w2 = ex.values().filter(|v| v.contains(&"w2")).count();
    assert!(
        by_w1 > 0 && by_w2 > 0,
        "both replicas' workers took work: w1={by_w1} w2={by_w2}"
    );
    for id in run_ids.iter().take(50) {
        let d = c2.run(id).await.unwrap();
        assert_eq!(
            d.attempts.iter().filter(|a| a.ok).count(),
            1,
            "completed exactly once: {d:?}"
        );
    }
    w1.shutdown().await.unwrap();
    w2.shutdown().await.unwrap();
    e1.stop().await;
    e2.stop().await;
}

/// A rate limit holds across replicas when they share Redis.
#[tokio::test]
#[ignore = "service test: needs FANOUT_TEST_POSTGRES_URL and FANOUT_TEST_REDIS_URL (.ci/run sets them)"]
async fn rate_limits_hold_across_replicas() {
    let url = std::env::var("FANOUT_TEST_POSTGRES_URL")
        .expect("FANOUT_TEST_POSTGRES_URL is not set: replicas need PostgreSQL");
    let redis = std::env::var("FANOUT_TEST_REDIS_URL")
        .expect("FANOUT_TEST_REDIS_URL is not set: this test needs Redis");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(fanout_engine::Config::embedded(dir.path()));
    config.store = StoreConfig::Postgres {
        url,
        schema: unique_schema(),
        max_connections: 4,
    };
    config.limiter = fanout_engine::config::LimiterConfig::Redis {
        url: redis,
        on_unavailable: fanout_engine::config::OnUnavailable::Deny,
    };
    let e1 = TestEngine::start(config.clone()).await;
    let e2 = TestEngine::start(config).await;
    let (c1, c2) = (e1.client().await, e2.client().await);
    // A fresh event name: Redis windows outlive this test.
    let name = format!("t{}.call", uuid::Uuid::now_v7().simple());
    let ev = Event::<Job>::new(name).rate_limit(10, Duration::from_secs(60));
    ev.define(&c1).await.unwrap();
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..30u32 {
        let c = if i % 2 == 0 { &c1 } else { &c2 };
        match ev.publish(c, &Job { n: i }).await {
            Ok(_) => ok += 1,
            Err(fanout::Error::RateLimited { .. }) => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, limited), (10, 20), "one window shared by both engines");
    e1.stop().await;
    e2.stop().await;
}
