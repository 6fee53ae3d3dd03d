//! Delivery semantics end to end, on every store: content filters, wildcard
//! subscriptions, consumer groups, ordering keys, DLQ, rate limits, and the
//! HTTP publish API.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::proto as pb;
use fanout::{Client, Error, Event, Retry, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually, http, runs_with_status};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    amount: f64,
    currency: String,
}

fn order(id: &str, amount: f64, currency: &str) -> Order {
    Order {
        order_id: id.into(),
        amount,
        currency: currency.into(),
    }
}

const WAIT: Duration = Duration::from_secs(30);

async fn all_runs(c: &Client) -> Vec<fanout::Run> {
    runs_with_status(c, None).await
}

async fn wait_all_terminal(c: &Client, n: usize) -> Vec<fanout::Run> {
    eventually(WAIT, &format!("{n} runs terminal"), || async {
        let runs = all_runs(c).await;
        let done = runs
            .iter()
            .filter(|r| {
                r.status == fanout::RunStatus::Completed || r.status == fanout::RunStatus::Dead
            })
            .count();
        (runs.len() == n && done == n).then_some(runs)
    })
    .await
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn filters_decide_which_runs_exist(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let ok = |_: Order, _| async { Ok::<_, TaskError>(()) };
        let big = Task::new("big", &ev, ok).filter(json!({"amount": [{"$gte": 1000}]}));
        let eu = Task::new("eu", &ev, ok).filter(json!({"currency": [{"prefix": "EU"}, "GBP"]}));
        let all = Task::new("all", &ev, ok);
        let worker = Worker::new(client.clone()).define_events()
            .task(big)
            .task(eu)
            .task(all)
            .start()
            .await
            .unwrap();

        let tasks = |p: fanout::Published| {
            p.runs
                .into_iter()
                .map(|r| r.task_id)
                .collect::<HashSet<_>>()
        };
        let p = ev.publish(&client, &order("1", 5.0, "USD")).await.unwrap();
        assert_eq!(tasks(p), HashSet::from(["all".to_string()]), "[{}]", b.name);
        let p = ev
            .publish(&client, &order("2", 5000.0, "EUR"))
            .await
            .unwrap();
        assert_eq!(
            tasks(p),
            HashSet::from(["all".into(), "big".into(), "eu".into()])
        );
        let p = ev.publish(&client, &order("3", 10.0, "GBP")).await.unwrap();
        assert_eq!(tasks(p), HashSet::from(["all".into(), "eu".into()]));
        wait_all_terminal(&client, 6).await;

        // The engine's matcher over gRPC.
        assert!(
            client
                .test_filter(&json!({"n": [{"numeric": [">", 1]}]}), &json!({"n": 2}))
                .await
                .unwrap()
        );
        assert!(
            !client
                .test_filter(&json!({"n": [{"$lt": 1}]}), &json!({"n": 2}))
                .await
                .unwrap()
        );
        let err = client
            .test_filter(&json!({"n": [{"$nope": 1}]}), &json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("/n/0/$nope: unknown operator")),
            "{err:?}"
        );
        worker.shutdown().await.unwrap();

        // A malformed filter is refused at registration, naming task and path.
        let bad = Task::new("bad", &ev, ok).filter(json!({"amount": [{"$gtee": 1}]}));
        let err = Worker::new(client.clone()).define_events()
            .task(bad)
            .start()
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("task 'bad'") && m.contains("/amount/0/$gtee: unknown operator")),
            "{err:?}"
        );
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn wildcard_subscriptions_follow_event_names(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let created = Event::<Order>::new("order.created");
        let paid = Event::<Order>::new("order.paid");
        let refund = Event::<Order>::new("order.refund.issued");
        let user = Event::<Order>::new("user.created");
        for e in [&created, &paid, &refund, &user] {
            e.define(&client).await.unwrap();
        }
        let one = Task::on_pattern(
            "order-one-level",
            "order.*",
            |p: serde_json::Value, ctx| async move {
                Ok::<_, TaskError>(json!({"event": ctx.event, "id": p["orderId"]}))
            },
        );
        let deep = Task::on_pattern("order-any", "order.#", |_: serde_json::Value, _| async {
            Ok::<_, TaskError>(())
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(one)
            .task(deep)
            .start()
            .await
            .unwrap();
        let count = |p: fanout::Published| p.runs.len();
        assert_eq!(
            count(
                created
                    .publish(&client, &order("1", 1.0, "USD"))
                    .await
                    .unwrap()
            ),
            2,
            "[{}]",
            b.name
        );
        assert_eq!(
            count(
                paid.publish(&client, &order("2", 1.0, "USD"))
                    .await
                    .unwrap()
            ),
            2
        );
        assert_eq!(
            count(
                refund
                    .publish(&client, &order("3", 1.0, "USD"))
                    .await
                    .unwrap()
            ),
            1,
            "only # spans segments"
        );
        assert_eq!(
            count(
                user.publish(&client, &order("4", 1.0, "USD"))
                    .await
                    .unwrap()
            ),
            0
        );
        let runs = wait_all_terminal(&client, 5).await;
        let r = runs
            .iter()
            .find(|r| r.task_id == "order-one-level" && r.event == "order.paid")
            .unwrap();
        assert_eq!(r.output, Some(serde_json::json!({"event":"order.paid","id":"2"})));
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn consumer_groups_get_one_run_per_event(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("user.activity");
        let ok = |_: Order, _| async { Ok::<_, TaskError>(()) };
        let a = Task::new("processor-a", &ev, ok).consumer_group("processors");
        let bb = Task::new("processor-b", &ev, ok).consumer_group("processors");
        let analytics = Task::new("analytics", &ev, ok);
        let worker = Worker::new(client.clone()).define_events()
            .task(a)
            .task(bb)
            .task(analytics)
            .start()
            .await
            .unwrap();

        let mut per_member: HashMap<String, usize> = HashMap::new();
        for i in 0..60 {
            let p = ev
                .publish(&client, &order(&i.to_string(), 1.0, "USD"))
                .await
                .unwrap();
            assert_eq!(
                p.runs.len(),
                2,
                "[{}] one for the group, one for analytics",
                b.name
            );
            let grouped: Vec<_> = p
                .runs
                .iter()
                .filter(|r| r.consumer_group == "processors")
                .collect();
            assert_eq!(grouped.len(), 1);
            *per_member.entry(grouped[0].task_id.clone()).or_default() += 1;
        }
        assert!(
            per_member.values().all(|n| *n >= 15),
            "[{}] spread evenly: {per_member:?}",
            b.name
        );

        // With an ordering key the same key always goes to the same member.
        for key in ["cust-1", "cust-2", "cust-3", "cust-4"] {
            let mut chosen = HashSet::new();
            for _ in 0..5 {
                let p = ev
                    .publish(&client, &order("k", 1.0, "USD"))
                    .ordering_key(key)
                    .await
                    .unwrap();
                chosen.insert(
                    p.runs
                        .iter()
                        .find(|r| !r.consumer_group.is_empty())
                        .unwrap()
                        .task_id
                        .clone(),
                );
            }
            assert_eq!(chosen.len(), 1, "[{}] key {key} went to {chosen:?}", b.name);
        }
        let runs = wait_all_terminal(&client, 2 * 80).await;
        assert!(
            runs.iter()
                .any(|r| r.consumer_group.as_deref() == Some("processors") && r.status == fanout::RunStatus::Completed),
            "recorded on the run"
        );
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Many keys, failures, retries and two concurrent workers: per key, runs
    /// never overlap and succeed in publish order; a dead run releases its key.
    async fn ordering_keys_serialise_per_key_across_retries_and_workers(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("ledger.entry");
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let done: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
        let overlaps = Arc::new(Mutex::new(0u32));
        let make = || {
            let (in_flight, done, overlaps) = (in_flight.clone(), done.clone(), overlaps.clone());
            Task::new("apply", &ev, move |o: Order, ctx| {
                let (in_flight, done, overlaps) =
                    (in_flight.clone(), done.clone(), overlaps.clone());
                async move {
                    let key = ctx.ordering_key.clone().unwrap();
                    let seq: u32 = o.order_id.parse().unwrap();
                    if !in_flight.lock().unwrap().insert(key.clone()) {
                        *overlaps.lock().unwrap() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    in_flight.lock().unwrap().remove(&key);
                    // Every 4th entry fails once (retried), entry 7 of key k0 is fatal.
                    if key == "k0" && seq == 7 {
                        return Err(TaskError::fatal("poison"));
                    }
                    if seq % 4 == 1 && ctx.attempt == 1 {
                        return Err(TaskError::retryable("transient"));
                    }
                    done.lock().unwrap().entry(key).or_default().push(seq);
                    Ok(())
                }
            })
            .retry(Retry::attempts(3).backoff(Duration::from_millis(20), Duration::from_millis(40)))
        };
        let w1 = Worker::new(client.clone()).define_events()
            .concurrency(8)
            .task(make())
            .start()
            .await
            .unwrap();
        let w2 = Worker::new(client.clone()).define_events()
            .concurrency(8)
            .task(make())
            .start()
            .await
            .unwrap();
        let keys = 6;
        let per_key = 12u32;
        for seq in 0..per_key {
            for k in 0..keys {
                ev.publish(&client, &order(&seq.to_string(), 1.0, "USD"))
                    .ordering_key(format!("k{k}"))
                    .await
                    .unwrap();
            }
        }
        wait_all_terminal(&client, (keys * per_key) as usize).await;
        assert_eq!(
            *overlaps.lock().unwrap(),
            0,
            "[{}] two runs of one key never run at once",
            b.name
        );
        let done = done.lock().unwrap().clone();
        for k in 0..keys {
            let got = &done[&format!("k{k}")];
            let want: Vec<u32> = (0..per_key).filter(|s| !(k == 0 && *s == 7)).collect();
            assert_eq!(
                got, &want,
                "[{}] key k{k} completes in publish order; the dead run released the key",
                b.name
            );
        }
        let dead = runs_with_status(&client, fanout::RunStatus::Dead).await;
        assert_eq!(dead.len(), 1);
        w1.shutdown().await.unwrap();
        w2.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn dead_letters_can_be_listed_retried_and_discarded(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("invoice.due");
        let quiet = Event::<Order>::new("metrics.tick").dlq(false);
        let fail = |_: Order, ctx: fanout::TaskContext| async move {
            Err::<(), _>(TaskError::retryable(format!(
                "down (attempt {})",
                ctx.attempt
            )))
        };
        let retry = Retry::attempts(2).backoff(Duration::from_millis(5), Duration::from_millis(5));
        let t1 = Task::new("charge", &ev, fail).retry(retry);
        let t2 = Task::new("email", &ev, fail).retry(retry);
        let t3 = Task::new("count", &quiet, fail).retry(retry);
        let worker = Worker::new(client.clone()).define_events()
            .task(t1)
            .task(t2)
            .task(t3)
            .start()
            .await
            .unwrap();
        for i in 0..3 {
            ev.publish(&client, &order(&i.to_string(), 1.0, "USD"))
                .await
                .unwrap();
        }
        quiet
            .publish(&client, &order("q", 1.0, "USD"))
            .await
            .unwrap();
        wait_all_terminal(&client, 7).await;

        let list = |event: &str, task: &str| {
            let c = client.clone();
            let (event, task) = (event.to_string(), task.to_string());
            async move {
                let mut q = c.dead_letters();
                if !event.is_empty() {
                    q = q.event(event);
                }
                if !task.is_empty() {
                    q = q.task(task);
                }
                q.first(100).await.unwrap()
            }
        };
        let dlq = list("", "").await;
        assert_eq!(
            dlq.len(),
            6,
            "[{}] the dlq(false) event's dead run is not a dead letter",
            b.name
        );
        assert!(
            dlq.iter()
                .all(|r| r.dlq == fanout::DlqState::InDlq && r.last_error.as_deref() == Some("down (attempt 2)"))
        );
        assert_eq!(list("", "charge").await.len(), 3);
        let detail = client.run(&dlq[0].id).await.unwrap();
        assert_eq!(detail.attempts.len(), 2, "every attempt is kept");
        assert!(detail.payload.get("orderId").is_some());

        // Retry one: it fails again and comes back with its whole history.
        let id = list("", "charge").await[0].id.clone();
        let n = client
            .dead_letters()
            .ids([id.clone()])
            .retry()
            .await
            .unwrap();
        assert_eq!(n, 1);
        let back = eventually(WAIT, "retried entry back in the DLQ", || async {
            let d = client.run(&id).await.unwrap();
            (d.run.dlq == fanout::DlqState::InDlq && d.attempts.len() == 4).then_some(d)
        })
        .await;
        assert_eq!(back.run.attempts, 4);

        // Discard all of one task, then retry all the rest into a healthy worker.
        let n = client
            .dead_letters()
            .task("email")
            .discard()
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(list("", "").await.len(), 3);
        worker.shutdown().await.unwrap();
        let fixed = Task::new("charge", &ev, |_: Order, _| async {
            Ok::<_, TaskError>("charged")
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(fixed)
            .start()
            .await
            .unwrap();
        let n = client
            .dead_letters()
            .retry()
            .await
            .unwrap();
        assert_eq!(n, 3);
        eventually(WAIT, "retried letters completed", || async {
            (runs_with_status(&client, fanout::RunStatus::Completed).await.len() == 3).then_some(())
        })
        .await;
        assert!(list("", "").await.is_empty());
        // An empty selector (neither ids, filters nor `all`) is refused; the
        // typed API cannot build one, so say it raw.
        let raw = client.raw();
        let err: Error = raw
            .admin()
            .retry_dead_letters(raw.request(pb::DeadLetterSelector::default()))
            .await
            .unwrap_err()
            .into();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn rate_limits_refuse_with_retry_after_on_grpc_and_http(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("api.call").rate_limit(3, Duration::from_secs(30));
        ev.define(&client).await.unwrap();
        for i in 0..3 {
            ev.publish(&client, &order(&i.to_string(), 1.0, "USD"))
                .await
                .unwrap();
        }
        match ev.publish(&client, &order("4", 1.0, "USD")).await {
            Err(Error::RateLimited {
                retry_after,
                message,
            }) => {
                assert!(
                    retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(30),
                    "{retry_after:?}"
                );
                assert!(message.contains("rate limit of 3 per 30000ms"), "{message}");
            }
            other => panic!("[{}] expected RateLimited, got {other:?}", b.name),
        }
        let (status, headers, body) = http(
            &engine.http_url,
            "POST",
            "/api/v1/events/api.call/publish",
            r#"{"payload":{"orderId":"h","amount":1,"currency":"USD"}}"#,
        )
        .await;
        assert_eq!(status, 429, "{body}");
        let ra: u64 = headers
            .iter()
            .find(|(k, _)| k == "retry-after")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!((1..=30).contains(&ra));

        // Keyed by a payload field: each tenant has its own window.
        let keyed = Event::<Order>::new("tenant.call")
            .rate_limit(1, Duration::from_secs(30))
            .rate_limit_by("currency");
        keyed.define(&client).await.unwrap();
        keyed
            .publish(&client, &order("1", 1.0, "USD"))
            .await
            .unwrap();
        keyed
            .publish(&client, &order("2", 1.0, "EUR"))
            .await
            .unwrap();
        assert!(matches!(
            keyed.publish(&client, &order("3", 1.0, "USD")).await,
            Err(Error::RateLimited { .. })
        ));
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn http_publish_api(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let t = Task::new("r", &ev, |_: Order, _| async { Ok::<_, TaskError>(()) });
        let worker = Worker::new(client.clone()).define_events().task(t).start().await.unwrap();
        let url = "/api/v1/events/order.created/publish";
        let (s, _, body) = http(&engine.http_url, "POST", url, r#"{"payload":{"orderId":"1","amount":5,"currency":"USD"},"idempotencyKey":"k1","orderingKey":"c1","tags":["web"]}"#).await;
        assert_eq!(s, 200, "[{}] {body}", b.name);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        assert_eq!(v["deduplicated"], false);
        let (_, _, again) = http(
            &engine.http_url,
            "POST",
            url,
            r#"{"payload":{"orderId":"1","amount":5,"currency":"USD"},"idempotencyKey":"k1"}"#,
        )
        .await;
        let again: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(
            (again["eventId"].clone(), again["deduplicated"].clone()),
            (v["eventId"].clone(), json!(true))
        );

        let (s, _, body) = http(
            &engine.http_url,
            "POST",
            url,
            r#"{"payload":{"orderId":1}}"#,
        )
        .await;
        assert_eq!(s, 400);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let paths: Vec<&str> = v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/orderId") && paths.contains(&""), "{body}");
        let (s, _, body) = http(
            &engine.http_url,
            "POST",
            "/api/v1/events/nope.nope/publish",
            r#"{"payload":{}}"#,
        )
        .await;
        assert_eq!(s, 404, "{body}");
        assert!(body.contains("nope.nope"));
        let (s, _, _) = http(&engine.http_url, "POST", url, r#"{"nopayload":1}"#).await;
        assert_eq!(s, 400);
        let big = format!(
            r#"{{"payload":{{"orderId":"{}","amount":1,"currency":"USD"}}}}"#,
            "x".repeat(1_200_000)
        );
        let (s, _, body) = http(&engine.http_url, "POST", url, &big).await;
        assert_eq!(s, 413, "{body}");
        let (s, _, body) = http(&engine.http_url, "GET", "/healthz", "").await;
        assert_eq!(s, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ok", "{body}");
        assert_eq!(health["store"]["state"], "ok", "{body}");
        let (s, _, _) = http(&engine.http_url, "GET", "/livez", "").await;
        assert_eq!(s, 200);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A paused subscription keeps getting runs (nothing is lost) but none
    /// is claimed; the other task of the same worker and event flows on;
    /// a worker re-registering does not unpause it; resuming drains it.
    async fn a_paused_subscription_holds_its_runs_until_resumed(b) {
        use fanout::{Event, Task, TaskError, Worker};
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<serde_json::Value>::new("order.paused");
        let start = || {
            Worker::new(client.clone()).define_events()
                .task(Task::new("healthy", &ev, |_: serde_json::Value, _| async {
                    Ok::<_, TaskError>(1)
                }))
                .task(Task::new("poisoned", &ev, |_: serde_json::Value, _| async {
                    Ok::<_, TaskError>(2)
                }))
                .start()
        };
        let worker = start().await.unwrap();
        client.pause("poisoned").await.unwrap();
        let p = ev.publish(&client, &serde_json::json!({"n": 1})).await.unwrap();
        assert_eq!(p.runs.len(), 2, "[{}] runs are still created", b.name);
        let status = |task: &'static str| {
            let client = client.clone();
            let run = p.runs.iter().find(|r| r.task_id == task).unwrap().run_id.clone();
            async move { client.run(&run).await.unwrap().run.status }
        };
        eventually(Duration::from_secs(20), "the healthy run completes", || async {
            (status("healthy").await == fanout::RunStatus::Completed).then_some(())
        })
        .await;
        // Claimed in the same statement as the healthy one, had it not been paused.
        assert_eq!(status("poisoned").await, fanout::RunStatus::Queued, "[{}]", b.name);
        let subs = client.subscriptions().await.unwrap();
        assert!(subs.iter().any(|s| s.task_id == "poisoned" && s.paused));
        // Registering again (a worker restart) leaves it paused.
        worker.shutdown().await.unwrap();
        let worker = start().await.unwrap();
        let p2 = ev.publish(&client, &serde_json::json!({"n": 2})).await.unwrap();
        let healthy2 = p2.runs.iter().find(|r| r.task_id == "healthy").unwrap().run_id.clone();
        eventually(Duration::from_secs(20), "the second healthy run completes", || async {
            let s = client.run(&healthy2).await.unwrap().run.status;
            (s == fanout::RunStatus::Completed).then_some(())
        })
        .await;
        assert_eq!(status("poisoned").await, fanout::RunStatus::Queued, "[{}] still paused", b.name);
        // Resumed over HTTP (paused over gRPC above): the same engine call.
        let (s, _, body) = http(&engine.http_url, "POST", "/api/v1/subscriptions/poisoned/resume", "{}").await;
        assert_eq!(s, 200, "{body}");
        let (s, _, body) = http(&engine.http_url, "POST", "/api/v1/subscriptions/nobody/pause", "{}").await;
        assert_eq!(s, 404, "{body}");
        assert!(body.contains("\"kind\":\"task\""), "{body}");
        eventually(Duration::from_secs(20), "the held runs drain", || async {
            let runs = runs_with_status(&client, fanout::RunStatus::Completed).await;
            (runs.iter().filter(|r| r.task_id == "poisoned").count() == 2).then_some(())
        })
        .await;
        assert!(matches!(
            client.pause("no-such-task").await,
            Err(fanout::Error::NotFound { kind: fanout::EntityKind::Task, .. })
        ));
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}
