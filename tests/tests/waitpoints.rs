//! Scatter-gather and durable suspension, on every store: results, timeouts,
//! suspension that frees the worker slot, journaled steps, engine restart and
//! worker crash while suspended, retried and nested children, tokens, sleep,
//! many concurrent waiters.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::WaitpointStatus;
use fanout::{Client, Event, Retry, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Job {
    n: u32,
}

const WAIT: Duration = Duration::from_secs(30);
const FAST: Retry = Retry {
    max_attempts: 3,
    initial_backoff: Duration::from_millis(10),
    max_backoff: Duration::from_millis(20),
    multiplier: 2.0,
};

async fn status(c: &Client, task: &str) -> Vec<String> {
    let runs = c.runs().task(task).first(1000).await.unwrap();
    runs.into_iter().map(|r| r.status.to_string()).collect()
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn client_publish_and_wait_results_and_timeouts(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Job>::new("job.created");
        let gate = Arc::new(Semaphore::new(0));
        let g = gate.clone();
        let ok = Task::new("double", &ev, |j: Job, _| async move {
            Ok::<_, TaskError>(j.n * 2)
        });
        let bad = Task::new("reject", &ev, |_: Job, _| async {
            Err::<(), _>(TaskError::fatal("nope"))
        });
        let flaky_calls = Arc::new(AtomicU32::new(0));
        let fc = flaky_calls.clone();
        let flaky = Task::new("flaky", &ev, move |_: Job, ctx| {
            let fc = fc.clone();
            async move {
                fc.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt < 3 {
                    Err(TaskError::retryable("not yet"))
                } else {
                    Ok("third time")
                }
            }
        })
        .retry(FAST);
        let slow = Task::new("slow", &ev, move |_: Job, _| {
            let g = g.clone();
            async move {
                let _p = g.acquire().await.unwrap();
                Ok::<_, TaskError>("finally")
            }
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(ok)
            .task(bad)
            .task(flaky)
            .task(slow)
            .start()
            .await
            .unwrap();

        // Timeout: "slow" is held; the wait ends with it reported as timeout.
        let r = ev
            .publish_and_wait(&client, &Job { n: 21 })
            .timeout(Duration::from_millis(1500))
            .await
            .unwrap();
        assert_eq!(r.status, WaitpointStatus::TimedOut, "[{}]", b.name);
        assert_eq!(r.results["double"].output, json!(42));
        assert!(r.results["double"].ok);
        assert_eq!(r.results["reject"].error.as_deref(), Some("nope"));
        assert_eq!(
            r.results["flaky"].output,
            json!("third time"),
            "waits for the final outcome of retried runs"
        );
        assert_eq!(flaky_calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            (r.results["slow"].ok, r.results["slow"].error.as_deref()),
            (false, Some("timeout"))
        );
        // The run goes on after the timeout.
        gate.add_permits(100);
        eventually(WAIT, "slow run completes after the timeout", || async {
            status(&client, "slow")
                .await
                .iter()
                .all(|s| s == "completed")
                .then_some(())
        })
        .await;

        // Complete results, and a second wait on the same id answers at once.
        let r = ev.publish_and_wait(&client, &Job { n: 1 }).await.unwrap();
        assert_eq!(r.status, WaitpointStatus::Completed);
        assert_eq!(r.results.len(), 4);
        let again = client.wait(&r.waitpoint_id).await.unwrap();
        assert_eq!(again.results, r.results);

        // No subscribers: {} at once.
        let lonely = Event::<Job>::new("nobody.listens");
        lonely.define(&client).await.unwrap();
        let r = lonely
            .publish_and_wait(&client, &Job { n: 1 })
            .await
            .unwrap();
        assert!(r.results.is_empty() && r.status == WaitpointStatus::Completed);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// The parent is suspended (status waiting, slot freed: its single-slot
    /// worker runs the children meanwhile), resumes with its journal, and its
    /// memoized step runs once.
    async fn suspended_parent_frees_its_slot_and_resumes_with_its_journal(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let parent_ev = Event::<Job>::new("batch.started");
        let child_ev = Event::<Job>::new("item.process");
        let step_runs = Arc::new(AtomicU32::new(0));
        let invocations = Arc::new(AtomicU32::new(0));
        let (sr, inv, ce) = (step_runs.clone(), invocations.clone(), child_ev.clone());
        let parent = Task::new("batch", &parent_ev, move |j: Job, ctx| {
            let (sr, inv, ce) = (sr.clone(), inv.clone(), ce.clone());
            async move {
                inv.fetch_add(1, Ordering::SeqCst);
                let id: u32 = ctx
                    .step("allocate", || async {
                        sr.fetch_add(1, Ordering::SeqCst);
                        Ok(j.n + 1000)
                    })
                    .await?;
                let results = ctx.publish_and_wait(&ce, &Job { n: id }).await?;
                ctx.sleep(Duration::from_millis(200)).await?;
                Ok::<_, TaskError>(json!({"id": id, "results": results}))
            }
        });
        let a = Task::new("child-a", &child_ev, |j: Job, _| async move {
            Ok::<_, TaskError>(j.n)
        });
        let bb = Task::new("child-b", &child_ev, |j: Job, _| async move {
            Ok::<_, TaskError>(j.n + 1)
        });
        // ONE slot: the children can only run if the parent let go of it.
        let worker = Worker::new(client.clone()).define_events()
            .concurrency(1)
            .task(parent)
            .task(a)
            .task(bb)
            .start()
            .await
            .unwrap();
        let r = parent_ev
            .publish_and_wait(&client, &Job { n: 7 })
            .await
            .unwrap();
        let out = &r.results["batch"];
        assert!(out.ok, "[{}] {out:?}", b.name);
        assert_eq!(out.output["id"], 1007);
        assert_eq!(out.output["results"]["child-a"]["output"], 1007);
        assert_eq!(out.output["results"]["child-b"]["output"], 1008);
        assert_eq!(
            step_runs.load(Ordering::SeqCst),
            1,
            "[{}] the step ran once",
            b.name
        );
        assert_eq!(
            invocations.load(Ordering::SeqCst),
            3,
            "[{}] start, after the wait, after the sleep",
            b.name
        );
        let runs = client.runs().task("batch").first(100).await.unwrap();
        let detail = client.run(&runs[0].id).await.unwrap();
        assert_eq!(
            detail.attempts.len(),
            3,
            "two suspensions and the final attempt are recorded"
        );
        assert!(detail.attempts[0].output.as_ref().unwrap()["suspended_on"].is_string());
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Parents suspended across an engine restart and a crash of their worker.
    async fn suspension_survives_engine_restart_and_worker_crash(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let parent_ev = Event::<Job>::new("parent.go");
        let child_ev = Event::<Job>::new("child.go");
        let step_runs = Arc::new(AtomicU32::new(0));
        let make_parent = |sr: Arc<AtomicU32>| {
            let ce = child_ev.clone();
            Task::new("parent", &parent_ev, move |j: Job, ctx| {
                let (sr, ce) = (sr.clone(), ce.clone());
                async move {
                    ctx.step("once", || async {
                        sr.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await?;
                    let r = ctx.publish_and_wait(&ce, &j).await?;
                    Ok::<_, TaskError>(r.outcome("child").map(|c| c.output.clone()).unwrap_or_default())
                }
            })
        };
        let child = || {
            Task::new("child", &child_ev, |j: Job, _| async move {
                Ok::<_, TaskError>(j.n * 10)
            })
        };
        // Subscribe the child durably, then let its worker go: children will
        // queue while parents are suspended.
        Worker::new(client.clone()).define_events()
            .task(child())
            .start()
            .await
            .unwrap()
            .shutdown()
            .await
            .unwrap();
        let pw = Worker::new(client.clone()).define_events()
            .task(make_parent(step_runs.clone()))
            .start()
            .await
            .unwrap();
        let mut events = Vec::new();
        for n in 0..5 {
            events.push(
                parent_ev.publish(&client, &Job { n }).await.unwrap().runs[0]
                    .run_id
                    .clone(),
            );
        }
        eventually(WAIT, "5 parents waiting", || async {
            (status(&client, "parent")
                .await
                .iter()
                .filter(|s| *s == "waiting")
                .count()
                == 5)
                .then_some(())
        })
        .await;
        pw.abort(); // the parents' worker crashes while they are suspended
        engine.stop().await; // and the engine restarts

        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        assert_eq!(
            status(&client, "parent")
                .await
                .iter()
                .filter(|s| *s == "waiting")
                .count(),
            5,
            "[{}]",
            b.name
        );
        let pw = Worker::new(client.clone()).define_events()
            .task(make_parent(step_runs.clone()))
            .start()
            .await
            .unwrap();
        let cw = Worker::new(client.clone()).define_events()
            .task(child())
            .start()
            .await
            .unwrap();
        for (n, id) in events.iter().enumerate() {
            let d = eventually(WAIT, "parent completed", || async {
                let d = client.run(id).await.unwrap();
                (d.run.status == fanout::RunStatus::Completed).then_some(d)
            })
            .await;
            assert_eq!(d.run.output, Some(serde_json::json!(n * 10)));
        }
        assert_eq!(
            step_runs.load(Ordering::SeqCst),
            5,
            "[{}] each parent's step ran once in all",
            b.name
        );
        pw.shutdown().await.unwrap();
        cw.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A child that itself publishes and waits; many clients waiting at once.
    async fn nested_scatter_gather_and_many_concurrent_waiters(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let top = Event::<Job>::new("level.one");
        let mid = Event::<Job>::new("level.two");
        let leaf = Event::<Job>::new("level.three");
        let (m, l) = (mid.clone(), leaf.clone());
        let t1 = Task::new("one", &top, move |j: Job, ctx| {
            let m = m.clone();
            async move { Ok::<_, TaskError>(ctx.publish_and_wait(&m, &j).await?["two"].output.clone()) }
        });
        let t2 = Task::new("two", &mid, move |j: Job, ctx| {
            let l = l.clone();
            async move {
                let r = ctx.publish_and_wait(&l, &j).await?;
                Ok::<_, TaskError>(
                    r["three-a"].output.as_u64().unwrap_or(0)
                        + r["three-b"].output.as_u64().unwrap_or(0),
                )
            }
        });
        let t3a = Task::new("three-a", &leaf, |j: Job, _| async move {
            Ok::<_, TaskError>(j.n)
        });
        let t3b = Task::new("three-b", &leaf, |j: Job, _| async move {
            Ok::<_, TaskError>(j.n * 100)
        });
        let worker = Worker::new(client.clone()).define_events()
            .concurrency(4)
            .task(t1)
            .task(t2)
            .task(t3a)
            .task(t3b)
            .start()
            .await
            .unwrap();

        let r = top.publish_and_wait(&client, &Job { n: 3 }).await.unwrap();
        assert_eq!(r.results["one"].output, json!(303), "[{}]", b.name);

        let mut handles = Vec::new();
        for n in 0..40u32 {
            let (c, t) = (client.clone(), top.clone());
            handles.push(tokio::spawn(async move {
                (n, t.publish_and_wait(&c, &Job { n }).await.unwrap())
            }));
        }
        for h in handles {
            let (n, r) = h.await.unwrap();
            assert_eq!(r.results["one"].output, json!(n * 101), "[{}]", b.name);
        }
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn tokens_complete_from_outside(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let token = client.create_token(None).await.unwrap();
        assert_eq!(token.status, fanout::WaitpointStatus::Waiting);
        let c2 = client.clone();
        let id = token.id.clone();
        let waiter = tokio::spawn(async move { c2.wait(&id).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .complete_token(&token.id, &json!({"approved": true}))
            .await
            .unwrap();
        let done = waiter.await.unwrap();
        assert_eq!(
            (done.status, done.data.clone()),
            (WaitpointStatus::Completed, json!({"approved": true})),
            "[{}]",
            b.name
        );
        let err = client
            .complete_token(&token.id, &json!(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already completed"), "{err}");
        let timed = client
            .create_token(Some(Duration::from_millis(200)))
            .await
            .unwrap();
        assert_eq!(
            client.wait(&timed.id).await.unwrap().status,
            fanout::WaitpointStatus::TimedOut
        );
        assert!(matches!(
            client.get_waitpoint("nope").await,
            Err(fanout::Error::NotFound { .. })
        ));
        engine.stop().await;
    }
}
