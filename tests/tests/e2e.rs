//! End-to-end: the engine in-process on port 0, the SDK worker and client
//! against it, on every store backend available (SQLite always; Postgres
//! with FANOUT_TEST_POSTGRES_URL).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::proto as pb;
use fanout::{Client, Error, Event, PublishOptions, Retry, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually, runs_with_status};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    amount: f64,
    customer_id: String,
}

fn order(id: &str, amount: f64) -> Order {
    Order {
        order_id: id.into(),
        amount,
        customer_id: "cust-1".into(),
    }
}

const WAIT: Duration = Duration::from_secs(20);

async fn run_status(client: &Client, id: &str) -> fanout::RunDetail {
    client.run(id).await.expect("get run")
}

async fn wait_terminal(client: &Client, id: &str) -> fanout::RunDetail {
    eventually(WAIT, &format!("run {id} terminal"), || async {
        let d = run_status(client, id).await;
        d.run.status.is_final().then_some(d)
    })
    .await
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn publish_fans_out_and_runs_complete(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let receipt = Task::new("send-receipt", &ev, |o: Order, ctx| async move {
            Ok::<_, TaskError>(json!({"receipt": o.order_id, "attempt": ctx.attempt}))
        });
        let audit = Task::new("audit", &ev, |o: Order, _| async move {
            Ok::<_, TaskError>(o.amount)
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(receipt)
            .task(audit)
            .start()
            .await
            .unwrap();

        let mut run_ids = Vec::new();
        for i in 0..5 {
            let p = ev
                .publish(&client, &order(&format!("o-{i}"), 10.0 * i as f64))
                .await
                .unwrap();
            assert_eq!(p.runs.len(), 2, "[{}] one run per subscriber", b.name);
            run_ids.extend(p.runs.into_iter().map(|r| r.run_id));
        }
        for id in &run_ids {
            let d = wait_terminal(&client, id).await;
            let run = d.run;
            assert_eq!(run.status, fanout::RunStatus::Completed, "[{}] {run:?}", b.name);
            assert_eq!(run.attempts, 1);
            assert_eq!(d.attempts.len(), 1, "[{}] attempt recorded", b.name);
            assert!(d.attempts[0].ok);
            if run.task_id == "send-receipt" {
                let out: serde_json::Value = run.output.clone().unwrap();
                assert_eq!(out["attempt"], 1);
                assert!(out["receipt"].as_str().unwrap().starts_with("o-"));
            }
        }
        // An event nobody subscribes to is stored too, with zero runs.
        let lonely = Event::<Order>::new("order.archived");
        lonely.define(&client).await.unwrap();
        let p = lonely.publish(&client, &order("o-x", 1.0)).await.unwrap();
        assert!(p.runs.is_empty());
        assert!(!p.event_id.is_empty());
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn bad_input_is_refused_with_paths_and_nothing_is_stored(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "required": ["items", "email"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "items": {"type": "array", "items": {"type": "object", "required": ["qty"],
                    "properties": {"qty": {"type": "integer", "minimum": 1}}}}
            }
        });
        client
            .define_event("cart.checked-out", &schema, "")
            .await
            .unwrap();

        let bad = json!({"email": "not-an-email", "items": [{"qty": 0}, {"qty": 2}]});
        let err = client
            .publish_json("cart.checked-out", &bad, PublishOptions::default())
            .await
            .unwrap_err();
        match &err {
            Error::InvalidPayload {
                event,
                version,
                violations,
                violation_count,
            } => {
                assert_eq!(event, "cart.checked-out");
                assert_eq!(*version, Some(1));
                assert_eq!(*violation_count, 2);
                let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
                assert!(
                    violations
                        .iter()
                        .any(|v| v == "/items/0/qty: 0 is less than the minimum of 1"),
                    "{violations:?}"
                );
                assert!(
                    violations.iter().any(|v| v.starts_with("/email:")),
                    "{violations:?}"
                );
                assert_eq!(violations.len(), 2, "{violations:?}");
            }
            other => panic!("[{}] expected InvalidPayload, got {other:?}", b.name),
        }

        let err = client
            .publish_json("no.such-event", &json!({}), PublishOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { kind: fanout::EntityKind::Event, id, .. } if id == "no.such-event"),
            "{err:?}"
        );

        let err = client
            .publish_text(
                "cart.checked-out",
                "{not json".into(),
                PublishOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("payload is not valid JSON")),
            "{err:?}"
        );

        let big = json!({"email": "a@b.co", "items": [], "pad": "x".repeat(1_100_000)});
        let err = client
            .publish_json("cart.checked-out", &big, PublishOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("over the limit of 1048576 bytes")),
            "{err:?}"
        );

        let err = client
            .define_event("Bad Name", &json!({}), "")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("event name 'Bad Name' is invalid")),
            "{err:?}"
        );
        let err = client
            .define_event("x.y", &json!({"type": "nope"}), "")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("not a valid JSON Schema")),
            "{err:?}"
        );

        let ok = json!({"email": "a@b.co", "items": [{"qty": 1}]});
        client
            .publish_json("cart.checked-out", &ok, PublishOptions::default())
            .await
            .unwrap();
        let all = client
            .runs()
            .first(100)
            .await
            .unwrap();
        assert!(
            all.is_empty(),
            "no subscriber, no runs; refused publishes created nothing"
        );
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn failing_handler_retries_then_dies_and_fatal_skips_retries(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("payment.failed");
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let flaky = Task::new("always-fails", &ev, move |_: Order, ctx| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(TaskError::retryable(format!(
                    "boom on attempt {}",
                    ctx.attempt
                )))
            }
        })
        .retry(Retry::attempts(3).backoff(Duration::from_millis(20), Duration::from_millis(50)));
        let fatal = Task::new("fatal-fails", &ev, |_: Order, _| async {
            Err::<(), _>(TaskError::fatal("card declined"))
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(flaky)
            .task(fatal)
            .start()
            .await
            .unwrap();

        let p = ev.publish(&client, &order("o-1", 1.0)).await.unwrap();
        for r in &p.runs {
            let d = wait_terminal(&client, &r.run_id).await;
            let run = d.run;
            assert_eq!(run.status, fanout::RunStatus::Dead, "[{}] {run:?}", b.name);
            if run.task_id == "always-fails" {
                assert_eq!(run.attempts, 3);
                assert_eq!(d.attempts.len(), 3);
                assert_eq!(d.attempts[2].error.as_deref(), Some("boom on attempt 3"));
                assert!(d.attempts.iter().all(|a| !a.ok));
                assert_eq!(run.last_error.as_deref(), Some("boom on attempt 3"));
            } else {
                assert_eq!(run.attempts, 1, "[{}] fatal skips retries", b.name);
                assert_eq!(d.attempts[0].error.as_deref(), Some("card declined"));
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A worker that takes a run and then goes silent (no result, no heartbeat,
    /// stream still open): the lease expires and another worker gets the run.
    async fn silent_worker_loses_its_run_when_the_lease_expires(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        ev.define(&client).await.unwrap();

        // Raw stream: register with a 300 ms lease and never answer.
        let mut raw =
            pb::worker_service_client::WorkerServiceClient::connect(engine.grpc_url.clone())
                .await
                .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Register(pb::Register {
                worker_name: "silent".into(),
                concurrency: 1,
                tasks: vec![pb::TaskRegistration {
                    id: "ship".into(),
                    event: "order.created".into(),
                    lease_ms: 300,
                    retry: Some(pb::RetryPolicy {
                        max_attempts: 3,
                        initial_backoff_ms: 10,
                        max_backoff_ms: 10,
                        multiplier: 1.0,
                    }),
                    ..Default::default()
                }],
            })),
        })
        .await
        .unwrap();
        let mut inbound = raw
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = inbound.message().await.unwrap().unwrap();
        assert!(matches!(
            first.msg,
            Some(pb::server_message::Msg::Registered(_))
        ));

        let p = ev.publish(&client, &order("o-1", 5.0)).await.unwrap();
        let run_id = p.runs[0].run_id.clone();
        let got = inbound.message().await.unwrap().unwrap();
        match got.msg {
            Some(pb::server_message::Msg::Assignment(a)) => assert_eq!(a.run_id, run_id),
            other => panic!("expected an assignment, got {other:?}"),
        }

        // A healthy worker for the same task picks it up after the lease.
        let ship = Task::new("ship", &ev, |o: Order, ctx| async move {
            Ok::<_, TaskError>(json!({"shipped": o.order_id, "attempt": ctx.attempt}))
        })
        .lease(Duration::from_millis(300))
        .retry(Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)));
        let worker = Worker::new(client.clone()).define_events()
            .task(ship)
            .start()
            .await
            .unwrap();
        let d = wait_terminal(&client, &run_id).await;
        let run = d.run;
        assert_eq!(run.status, fanout::RunStatus::Completed, "[{}]", b.name);
        assert_eq!(run.attempts, 2);
        assert!(
            d.attempts[0].error.as_deref().unwrap_or("").contains("lease expired"),
            "{:?}",
            d.attempts
        );
        assert!(d.attempts[1].ok);
        drop(tx);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A worker that dies mid-run (its stream drops): the run is re-delivered.
    async fn crashed_worker_run_is_redelivered(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let started = Arc::new(tokio::sync::Notify::new());
        let s = started.clone();
        let hang = Task::new("invoice", &ev, move |_: Order, _| {
            let s = s.clone();
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, TaskError>(())
            }
        })
        .retry(Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)));
        let doomed = Worker::new(client.clone()).define_events()
            .task(hang)
            .start()
            .await
            .unwrap();
        let p = ev.publish(&client, &order("o-1", 5.0)).await.unwrap();
        tokio::time::timeout(WAIT, started.notified())
            .await
            .expect("handler started");
        doomed.abort();

        let ok = Task::new("invoice", &ev, |_: Order, _| async {
            Ok::<_, TaskError>("invoiced")
        })
        .retry(Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)));
        let worker = Worker::new(client.clone()).define_events().task(ok).start().await.unwrap();
        let d = wait_terminal(&client, &p.runs[0].run_id).await;
        let run = d.run;
        assert_eq!(run.status, fanout::RunStatus::Completed, "[{}]", b.name);
        assert_eq!(run.attempts, 2);
        assert!(!d.attempts[0].ok);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Subscriptions outlive workers, and runs outlive engine restarts.
    async fn subscriptions_are_durable_across_worker_and_engine_restarts(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let task = || {
            Task::new("send-receipt", &ev, |o: Order, _| async move {
                Ok::<_, TaskError>(o.order_id)
            })
        };
        Worker::new(client.clone()).define_events()
            .task(task())
            .start()
            .await
            .unwrap()
            .shutdown()
            .await
            .unwrap();

        // No worker connected: runs are created and wait.
        let p = ev.publish(&client, &order("o-1", 5.0)).await.unwrap();
        assert_eq!(
            p.runs.len(),
            1,
            "[{}] subscription survived its worker",
            b.name
        );
        assert_eq!(
            run_status(&client, &p.runs[0].run_id)
                .await
                .run
                .status,
            fanout::RunStatus::Queued
        );
        engine.stop().await;

        // Restart on the same store; a worker connects and finishes the run.
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let worker = Worker::new(client.clone()).define_events()
            .task(task())
            .start()
            .await
            .unwrap();
        let d = wait_terminal(&client, &p.runs[0].run_id).await;
        assert_eq!(d.run.output, Some(serde_json::json!("o-1")));
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn redefinition_versions_and_namespaces_isolate(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let base = engine.client().await;
        let a = base.clone().with_namespace("team-a").unwrap();
        let bns = base.clone().with_namespace("team-b").unwrap();
        assert!(matches!(
            base.clone().with_namespace("team a\n"),
            Err(fanout::Error::InvalidArgument(_))
        ));
        let s1 = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let s2 = json!({"type": "object", "properties": {"n": {"type": "string"}}});
        assert_eq!(
            a.define_event("thing.done", &s1, "").await.unwrap(),
            (1, true)
        );
        // Same schema, keys in another order: no-op.
        let s1b: serde_json::Value =
            serde_json::from_str(r#"{"properties": {"n": {"type": "integer"}}, "type": "object"}"#)
                .unwrap();
        assert_eq!(
            a.define_event("thing.done", &s1b, "").await.unwrap(),
            (1, false)
        );
        assert_eq!(
            a.define_event("thing.done", &s2, "").await.unwrap(),
            (2, true)
        );
        // team-b has its own "thing.done".
        assert_eq!(
            bns.define_event("thing.done", &s1, "").await.unwrap(),
            (1, true)
        );

        let p = a
            .publish_json(
                "thing.done",
                &json!({"n": "text"}),
                PublishOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            p.event_version, 2,
            "events record the version they were validated against"
        );
        let err = a
            .publish_json("thing.done", &json!({"n": 1}), PublishOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidPayload { .. }),
            "v2 wants a string"
        );
        let p = bns
            .publish_json("thing.done", &json!({"n": 1}), PublishOptions::default())
            .await
            .unwrap();
        assert_eq!(p.event_version, 1);
        assert!(
            matches!(
                base.event_definition("thing.done", None).await,
                Err(Error::NotFound { .. })
            ),
            "default namespace has none"
        );
        assert_eq!(a.event_definition("thing.done", Some(1)).await.unwrap().version, 1);
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn idempotency_key_returns_the_original_publish(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let t = Task::new("send-receipt", &ev, |_: Order, _| async {
            Ok::<_, TaskError>(())
        });
        let worker = Worker::new(client.clone()).define_events().task(t).start().await.unwrap();
        let first = ev
            .publish(&client, &order("o-1", 5.0))
            .idempotency_key("order-1")
            .await
            .unwrap();
        let again = ev
            .publish(&client, &order("o-1", 5.0))
            .idempotency_key("order-1")
            .await
            .unwrap();
        assert!(!first.deduplicated);
        assert!(again.deduplicated);
        assert_eq!(first.event_id, again.event_id);
        assert_eq!(first.runs, again.runs);
        // Concurrent repeats: exactly one wins.
        let mut handles = Vec::new();
        for _ in 0..8 {
            let c = client.clone();
            let e = ev.clone();
            handles.push(tokio::spawn(async move {
                e.publish(&c, &order("o-2", 5.0))
                    .idempotency_key("order-2")
                    .await
                    .unwrap()
            }));
        }
        let results: Vec<_> = futures::future::join_all(handles)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|p| !p.deduplicated).count(),
            1,
            "[{}]",
            b.name
        );
        assert!(results.iter().all(|p| p.event_id == results[0].event_id));
        let runs = eventually(WAIT, "runs completed", || async {
            let r = runs_with_status(&client, fanout::RunStatus::Completed).await;
            (r.len() == 2).then_some(r)
        })
        .await;
        assert_eq!(runs.len(), 2);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn worker_registration_errors_name_the_task(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let mut raw =
            pb::worker_service_client::WorkerServiceClient::connect(engine.grpc_url.clone())
                .await
                .unwrap();
        let reg = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Register(pb::Register {
                worker_name: "w".into(),
                concurrency: 1,
                tasks: vec![pb::TaskRegistration {
                    id: "t1".into(),
                    event: "never.defined".into(),
                    ..Default::default()
                }],
            })),
        };
        let err = raw
            .session(tokio_stream::iter(vec![reg]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "[{}]", b.name);
        assert!(
            err.message()
                .contains("task 't1' subscribes to event 'never.defined'"),
            "{}",
            err.message()
        );
        let subs = client
            .raw().admin()
            .list_subscriptions(pb::ListSubscriptionsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(
            subs.subscriptions.is_empty(),
            "a refused registration stores nothing"
        );
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// `?` on an `anyhow` error keeps its cause chain in the attempt's error;
    /// `.retry_after(d)` reaches the engine (the next attempt waits `d`, not
    /// the backoff); `.fatal()` dead-letters at once.
    async fn handler_errors_keep_their_cause_and_say_when_to_retry(b) {
        use anyhow::Context;
        use fanout::TaskResultExt;
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("charge.requested");
        let upstream = Task::new("upstream", &ev, |_: Order, _| async {
            let call: anyhow::Result<()> = Err(anyhow::anyhow!("connection reset"));
            call.context("calling the bank")
                .retry_after(Duration::from_secs(30))?;
            Ok(())
        });
        let declined = Task::new("declined", &ev, |_: Order, _| async {
            let call: anyhow::Result<()> = Err(anyhow::anyhow!("card declined"));
            call.fatal()?;
            Ok(())
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(upstream)
            .task(declined)
            .start()
            .await
            .unwrap();
        let p = ev.publish(&client, &order("o-9", 9.0)).await.unwrap();
        for r in &p.runs {
            let run = eventually(WAIT, "first attempt failed", || async {
                let run = run_status(&client, &r.run_id).await.run;
                (run.status == fanout::RunStatus::Retrying || run.status == fanout::RunStatus::Dead).then_some(run)
            })
            .await;
            if r.task_id == "upstream" {
                assert_eq!(run.status, fanout::RunStatus::Retrying, "[{}] {run:?}", b.name);
                assert_eq!(run.last_error.as_deref(), Some("calling the bank: connection reset"));
                assert_eq!(
                    run.available_at.unwrap().duration_since(run.updated_at).unwrap().as_millis(),
                    30_000,
                    "[{}] the asked-for wait, not the 1 s backoff",
                    b.name
                );
            } else {
                assert_eq!((run.status, run.attempts), (fanout::RunStatus::Dead, 1), "[{}]", b.name);
                assert_eq!(run.last_error.as_deref(), Some("card declined"));
            }
        }
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Builders own what they need: `publish` and `publish_and_wait` futures
    /// can be spawned (`Send + 'static`) after the event and client that
    /// made them are gone.
    async fn publish_builders_can_be_spawned(b) {
        use std::future::IntoFuture;
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.spawned");
        let worker = Worker::new(client.clone()).define_events()
            .task(Task::new("echo", &ev, |o: Order, _| async move {
                Ok::<_, TaskError>(o.amount)
            }))
            .start()
            .await
            .unwrap();
        let (publish, wait) = {
            let ev = ev.clone();
            let client = client.clone();
            (
                tokio::spawn(ev.publish(&client, &order("o-1", 1.0)).into_future()),
                tokio::spawn(ev.publish_and_wait(&client, &order("o-2", 2.5)).into_future()),
            )
        };
        let p = publish.await.unwrap().unwrap();
        assert_eq!(p.runs.len(), 1, "[{}]", b.name);
        let w = wait.await.unwrap().unwrap();
        assert_eq!(w.results["echo"].output, json!(2.5), "[{}]", b.name);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}
