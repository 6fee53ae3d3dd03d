//! The Rust SDK as users hold it: explicit definitions checked by workers,
//! registering without running, typed publish-and-wait results, worker
//! state, the context a handler sees, the typed admin API with paging, and
//! the in-process handler test helper.

use fanout::testing::TestContext;
use fanout::{
    EntityKind, Error, Event, Results, RunStatus, Task, TaskError, TaskFailure, TaskOutcome,
    TaskResultExt, Worker,
};
use fanout_tests::{TestEngine, eventually};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Other {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reservation {
    order: String,
    slots: u32,
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A worker never defines an event unless asked: an undefined event and a
    /// type whose schema differs from the defined one are errors at start
    /// that say what to do.
    async fn workers_check_definitions_instead_of_making_them(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let placed = Event::<Order>::new("order.placed");
        let task = Task::new("reserve", &placed, |o: Order, _| async move { Ok(o.id) });

        let e = Worker::new(client.clone()).task(task.clone()).start().await.unwrap_err();
        match &e {
            Error::NotFound { kind, message, .. } => {
                assert_eq!(*kind, EntityKind::Event, "[{}]", b.name);
                assert!(message.contains("define_events") && message.contains("order.placed"), "{message}");
            }
            other => panic!("[{}] expected NotFound, got {other:?}", b.name),
        }
        assert!(
            client.event_definitions().await.unwrap().is_empty(),
            "[{}] starting the worker defined nothing",
            b.name
        );

        // Defined by hand with another schema: reported, not papered over.
        let other = Event::<Other>::new("order.placed");
        assert_eq!(other.define(&client).await.unwrap(), 1);
        let e = Worker::new(client.clone()).task(task.clone()).start().await.unwrap_err();
        assert!(
            matches!(&e, Error::SchemaMismatch { event, version: 1, task } if event == "order.placed" && task == "reserve"),
            "[{}] {e:?}",
            b.name
        );
        assert_eq!(
            client.event_definition("order.placed", None).await.unwrap().version,
            1,
            "[{}] still the hand-made version",
            b.name
        );
        // Opting in: allowed with a warning, or defined from the type.
        let w = Worker::new(client.clone()).task(task.clone()).allow_schema_mismatch().start().await.unwrap();
        w.shutdown().await.unwrap();
        let w = Worker::new(client.clone()).task(task).define_events().start().await.unwrap();
        assert_eq!(client.event_definition("order.placed", None).await.unwrap().version, 2);
        w.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// `client.register` stores subscriptions without a worker: a publish
    /// creates runs for them, which wait queued until a worker serves the
    /// task; the runs of one event are listed by its id.
    async fn register_without_running_then_serve(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let placed = Event::<Order>::new("order.placed");
        placed.define(&client).await.unwrap();
        let reserve = Task::new("reserve", &placed, |o: Order, _| async move {
            Ok(Reservation { order: o.id, slots: 2 })
        });
        let audit = Task::on_pattern("audit", "order.#", |v, ctx| async move {
            Ok(serde_json::json!({"seen": v["id"], "event": ctx.event}))
        });
        let ids = client.register(&[&reserve, &audit]).await.unwrap();
        assert_eq!(ids, vec!["reserve".to_string(), "audit".to_string()]);
        let subs = client.subscriptions().await.unwrap();
        assert_eq!(subs.len(), 2, "[{}] {subs:?}", b.name);

        let p = placed.publish(&client, &Order { id: "o-1".into(), amount: 5.0 }).await.unwrap();
        let other = placed.publish(&client, &Order { id: "o-2".into(), amount: 6.0 }).await.unwrap();
        assert_eq!(p.runs.len(), 2, "[{}] one run per registered task", b.name);
        let of_event = client.runs().event_id(&p.event_id).first(100).await.unwrap();
        assert_eq!(of_event.len(), 2);
        assert!(of_event.iter().all(|r| r.event_id == p.event_id && r.status == RunStatus::Queued));
        assert!(of_event.iter().all(|r| r.event_id != other.event_id));

        let worker = Worker::new(client.clone()).task(reserve.clone()).task(audit).start().await.unwrap();
        let done = eventually(WAIT, "both runs of the event complete", || async {
            let runs = client.runs().event_id(&p.event_id).first(100).await.unwrap();
            runs.iter().all(|r| r.status == RunStatus::Completed).then_some(runs)
        })
        .await;
        let r = done.iter().find(|r| r.task_id == "reserve").unwrap();
        let typed: Reservation = r.output_as().unwrap().unwrap();
        assert_eq!(typed, Reservation { order: "o-1".into(), slots: 2 });
        let detail = client.run(&r.id).await.unwrap();
        assert_eq!(detail.payload["id"], "o-1");
        assert_eq!(detail.attempts.len(), 1);
        assert!(detail.attempts[0].ok);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Publish-and-wait results read back typed through the task; a dead
    /// subscriber's failure is an error value; state is given once and
    /// borrowed; the context names the event, its version and attempt.
    async fn typed_results_state_and_context(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let placed = Event::<Order>::new("order.placed");
        placed.define(&client).await.unwrap();
        struct Capacity(u32);
        let reserve = Task::new("reserve", &placed, |o: Order, ctx| async move {
            let cap = ctx.state::<Capacity>()?;
            assert_eq!((ctx.event.as_str(), ctx.event_version, ctx.attempt), ("order.placed", 1, 1));
            assert!(!ctx.is_replay());
            Ok(Reservation { order: o.id, slots: cap.0 })
        });
        let charge = Task::new("charge", &placed, |o: Order, _| async move {
            let cents = u32::try_from(o.amount as i64).fatal()?;
            Ok::<u32, TaskError>(cents)
        });
        let legacy = Task::new("legacy", &placed, |_: Order, _| async move {
            Err::<(), _>(anyhow::anyhow!("socket closed").context("calling the legacy system")).fatal()
        });
        let worker = Worker::new(client.clone())
            .with_state(Capacity(3))
            .task(reserve.clone())
            .task(charge.clone())
            .task(legacy.clone())
            .start()
            .await
            .unwrap();
        let order = Order { id: "o-9".into(), amount: 12.0 };
        let done = tokio::spawn(placed.publish_and_wait(&client, &order).timeout(WAIT).into_future())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, fanout::WaitpointStatus::Completed, "[{}]", b.name);
        assert_eq!(done.results.len(), 3);
        assert_eq!(
            done.results.get(&reserve).unwrap().unwrap(),
            Reservation { order: "o-9".into(), slots: 3 },
            "[{}]",
            b.name
        );
        assert_eq!(done.results.get(&charge).unwrap().unwrap(), 12);
        match done.results.get(&legacy).unwrap() {
            Err(TaskFailure::Failed { task, error }) => {
                assert_eq!(task, "legacy");
                assert_eq!(error, "calling the legacy system: socket closed", "the cause chain is kept");
            }
            other => panic!("[{}] {other:?}", b.name),
        }
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Cursor pagination: a stream over more runs than one page returns each
    /// exactly once, newest first; dead letters are listed, then retried by
    /// selection.
    async fn admin_streams_page_through_everything(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let placed = Event::<Order>::new("order.placed");
        placed.define(&client).await.unwrap();
        let t = Task::new("t", &placed, |o: Order, _| async move { Ok(o.id) });
        client.register(&[&t]).await.unwrap();
        for n in 0..23 {
            placed.publish(&client, &Order { id: format!("o-{n}"), amount: 1.0 }).await.unwrap();
        }
        let all: Vec<fanout::Run> = client.runs().task("t").page_size(5).stream().try_collect().await.unwrap();
        assert_eq!(all.len(), 23, "[{}]", b.name);
        let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");
        ids.dedup();
        assert_eq!(ids.len(), 23);
        assert!(client.dead_letters().task("t").first(10).await.unwrap().is_empty());
        let none: Vec<fanout::Run> = client.dead_letters().stream().try_collect().await.unwrap();
        assert!(none.is_empty());
        engine.stop().await;
    }
}

/// Handlers are unit-tested without an engine: state, steps (and a journal
/// that skips them), sleeps and stubbed waits.
#[tokio::test]
async fn handlers_run_in_process_with_a_test_context() {
    let placed = Event::<Order>::new("order.placed");
    let shipped = Event::<Order>::new("order.shipped");
    struct Fees(f64);
    let ship = shipped.clone();
    let checkout = Task::new("checkout", &placed, move |o: Order, ctx| {
        let ship = ship.clone();
        async move {
            let fee = ctx.state::<Fees>()?.0;
            let charged: f64 = ctx.step("charge", || async { Ok(o.amount * fee) }).await?;
            ctx.sleep(Duration::from_secs(60)).await?;
            let results = ctx.publish_and_wait(&ship, &o).await?;
            Ok((charged, results.len(), ctx.attempt, ctx.replay_of.clone()))
        }
    });
    let results: Results = [(
        "carrier".to_string(),
        TaskOutcome {
            ok: true,
            output: serde_json::json!("booked"),
            error: None,
        },
    )]
    .into_iter()
    .collect();
    let ctx = TestContext::new()
        .state(Fees(0.5))
        .attempt(2)
        .replay_of("evt-0")
        .wait_result("order.shipped", results);
    let order = Order {
        id: "o-1".into(),
        amount: 10.0,
    };
    let out = checkout.call(order.clone(), &ctx).await.unwrap();
    assert_eq!(out, (5.0, 1, 2, Some("evt-0".to_string())));
    assert_eq!(ctx.steps(), vec!["charge".to_string()]);
    assert_eq!(ctx.slept(), vec![Duration::from_secs(60)]);
    assert_eq!(ctx.published().len(), 1);
    assert_eq!(ctx.published()[0].0, "order.shipped");

    // A journaled step is not run again: its recorded value comes back.
    let replayed = TestContext::new()
        .state(Fees(0.5))
        .journaled_step("charge", 99.0)
        .wait_result("order.shipped", Results::default());
    let out = checkout.call(order.clone(), &replayed).await.unwrap();
    assert_eq!(out.0, 99.0);

    // What is missing is said: no state, no stubbed wait.
    let e = checkout
        .call(order.clone(), &TestContext::new())
        .await
        .unwrap_err();
    assert!(e.fatal && e.message.contains("no state of type"), "{e:?}");
    let e = checkout
        .call(order, &TestContext::new().state(Fees(1.0)))
        .await
        .unwrap_err();
    assert!(
        e.fatal && e.message.contains("wait_result(\"order.shipped\""),
        "{e:?}"
    );
}

/// `rate_limit_by` before `rate_limit` is kept (it was silently dropped).
#[test]
fn rate_limit_key_in_either_order() {
    let a = Event::<Order>::new("a")
        .rate_limit_by("id")
        .rate_limit(5, Duration::from_secs(1));
    let b = Event::<Order>::new("b")
        .rate_limit(5, Duration::from_secs(1))
        .rate_limit_by("id");
    for e in [a, b] {
        let rl = e.options().rate_limit.clone().unwrap();
        assert_eq!((rl.limit, rl.key_field.as_deref()), (5, Some("id")));
    }
}

/// The SDK's log layer, installed once for this test binary (the handler
/// tests below rely on it; nothing else here logs).
fn capture_handler_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(fanout::log_layer()),
        );
    });
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// What a handler logs (`ctx.log` and `tracing` events) is kept per
    /// attempt, flushed while it runs (so a crash keeps it), readable over
    /// gRPC and HTTP.
    async fn handler_logs_are_kept_per_attempt_and_flushed_while_running(b) {
        capture_handler_logs();
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let placed = Event::<Order>::new("order.placed");
        placed.define(&client).await.unwrap();
        let (hold_tx, hold_rx) = tokio::sync::watch::channel(false);
        let task = Task::new("logs", &placed, move |o: Order, ctx| {
            let mut hold = hold_rx.clone();
            async move {
                ctx.log(tracing::Level::INFO, format!("charging {}", o.id));
                tracing::warn!(amount = o.amount, "card slow");
                if ctx.attempt == 1 {
                    // Held until the test has seen the flushed lines.
                    let _ = hold.wait_for(|go| *go).await;
                    return Err(TaskError::retryable("gateway timeout"));
                }
                Ok("charged")
            }
        })
        .retry(fanout::Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)));
        let worker = Worker::new(client.clone()).task(task).start().await.unwrap();
        let p = placed.publish(&client, &Order { id: "o-7".into(), amount: 3.5 }).await.unwrap();
        let run_id = p.runs[0].run_id.clone();
        // Attempt 1 still running: its lines are already stored (timer flush).
        let early = eventually(WAIT, "attempt 1's lines flushed while it runs", || async {
            let l = client.run_logs(&run_id, None, None).await.unwrap();
            (l.len() == 2).then_some(l)
        })
        .await;
        assert_eq!(client.run(&run_id).await.unwrap().run.status, RunStatus::Running, "[{}]", b.name);
        assert_eq!((early[0].attempt, early[0].level.as_str(), early[0].message.as_str()), (1, "info", "charging o-7"));
        assert_eq!((early[1].level.as_str(), early[1].message.as_str()), ("warn", "card slow"));
        assert_eq!(early[1].fields.as_ref().unwrap()["amount"], 3.5);
        hold_tx.send(true).unwrap();
        eventually(WAIT, "the retry completes", || async {
            (client.run(&run_id).await.unwrap().run.status == RunStatus::Completed).then_some(())
        })
        .await;
        let all = client.run_logs(&run_id, None, None).await.unwrap();
        assert_eq!(all.iter().map(|l| l.attempt).collect::<Vec<_>>(), vec![1, 1, 2, 2], "[{}]", b.name);
        assert_eq!(client.run_logs(&run_id, Some(2), None).await.unwrap().len(), 2);
        let after = client.run_logs(&run_id, None, Some((1, 1))).await.unwrap();
        assert_eq!(after.len(), 2, "the cursor skips what was read");
        let (status, _, body) =
            fanout_tests::http(&engine.http_url, "GET", &format!("/api/v1/runs/{run_id}/logs?attempt=2"), "").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lines"].as_array().unwrap().len(), 2);
        assert_eq!(v["lines"][0]["message"], "charging o-7");
        let (status, _, body) =
            fanout_tests::http(&engine.http_url, "GET", "/api/v1/runs/nope/logs", "").await;
        assert_eq!(status, 404, "{body}");
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}
