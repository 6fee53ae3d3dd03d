//! Faults the engine must survive without losing anything: dependencies
//! down at start and coming back. Service tests: they need
//! `FANOUT_TEST_REDIS_URL` and `FANOUT_TEST_CLICKHOUSE_URL`, are `#[ignore]`d
//! without them (reported as ignored, never passed), and `.ci/run` runs them
//! with `--include-ignored`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::archive::Archive;
use fanout_engine::archive::clickhouse::ClickhouseArchive;
use fanout_engine::config::{ArchiveConfig, LimiterConfig, OnUnavailable};
use fanout_proto::v1 as pb;
use fanout_tests::{TestEngine, backends, eventually, http, unique_schema};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set to run this service test"))
}

/// A TCP proxy to `target` that refuses connections while `up` is false.
async fn proxy(target: String, up: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            if !up.load(Ordering::SeqCst) {
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    addr.to_string()
}

async fn health(engine: &TestEngine) -> (u16, Value) {
    let (status, _, body) = http(&engine.http_url, "GET", "/healthz", "").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// `fanout serve` refused to start while ClickHouse or Redis was down. Now
/// it starts degraded, accepts publishes (rate limits follow
/// `on_unavailable`), says so on `/healthz`, and when both return the limiter
/// connects and the outbox drains.
#[tokio::test]
#[ignore = "service test: needs FANOUT_TEST_REDIS_URL and FANOUT_TEST_CLICKHOUSE_URL (.ci/run sets them)"]
async fn starts_degraded_without_clickhouse_and_redis_and_recovers() {
    let ch_url = env("FANOUT_TEST_CLICKHOUSE_URL");
    let redis_url = env("FANOUT_TEST_REDIS_URL");
    let up = Arc::new(AtomicBool::new(false));
    let ch_proxy = proxy(
        ch_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into(),
        up.clone(),
    )
    .await;
    let redis_proxy = proxy(
        redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .into(),
        up.clone(),
    )
    .await;
    let database = unique_schema();
    let mut b = backends().remove(0);
    b.config.archive = ArchiveConfig::Clickhouse {
        url: format!("http://{ch_proxy}"),
        database: database.clone(),
        user: None,
        password: None,
    };
    b.config.limiter = LimiterConfig::Redis {
        url: format!("redis://{redis_proxy}"),
        on_unavailable: OnUnavailable::Allow,
    };
    let engine = TestEngine::start(b.config.clone()).await;

    let mut events = pb::event_service_client::EventServiceClient::connect(engine.grpc_url.clone())
        .await
        .unwrap();
    events
        .define_event(pb::DefineEventRequest {
            name: "ping.sent".into(),
            schema_json: "{}".into(),
            rate_limit: Some(pb::RateLimit {
                limit: 1_000,
                window_ms: 60_000,
                key_field: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for n in 0..20 {
        events
            .publish(pb::PublishRequest {
                event: "ping.sent".into(),
                payload_json: json!({ "n": n }).to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let report = eventually(
        Duration::from_secs(10),
        "both reported degraded",
        || async {
            let (code, v) = health(&engine).await;
            (code == 200
                && v["archive"]["state"] == "degraded"
                && v["limiter"]["state"] == "degraded")
                .then_some(v)
        },
    )
    .await;
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["ready"], true);

    up.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(30), "healthy again", || async {
        let (_, v) = health(&engine).await;
        // The limiter reports ok after its first successful check.
        let _ = http(&engine.http_url, "GET", "/livez", "").await;
        (v["archive"]["state"] == "ok").then_some(())
    })
    .await;
    let direct = ClickhouseArchive::connect(&ch_url, &database, None, None)
        .await
        .unwrap();
    let query = fanout_engine::archive::ArchiveQuery {
        namespace: "default".into(),
        to_ms: u64::MAX,
        limit: 100,
        ..Default::default()
    };
    eventually(Duration::from_secs(30), "the outbox drained", || async {
        (direct.read(&query).await.ok()?.len() == 20).then_some(())
    })
    .await;
    // Redis is back: a publish is counted there again.
    eventually(
        Duration::from_secs(30),
        "the limiter reconnected",
        || async {
            events
                .clone()
                .publish(pb::PublishRequest {
                    event: "ping.sent".into(),
                    payload_json: "{}".into(),
                    ..Default::default()
                })
                .await
                .ok()?;
            let (_, v) = health(&engine).await;
            (v["limiter"]["state"] == "ok").then_some(())
        },
    )
    .await;
    engine.stop().await;
}

/// An archive whose writes wait until the test opens the gate: events stay
/// in the outbox meanwhile, as when the archiver is behind.
struct GatedArchive {
    inner: Arc<dyn Archive>,
    open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Archive for GatedArchive {
    async fn write(
        &self,
        events: &[fanout_engine::model::ArchivedEvent],
    ) -> fanout_engine::Result<()> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        self.inner.write(events).await
    }
    async fn read(
        &self,
        q: &fanout_engine::archive::ArchiveQuery,
    ) -> fanout_engine::Result<Vec<fanout_engine::model::ArchivedEvent>> {
        self.inner.read(q).await
    }
    async fn count(&self, q: &fanout_engine::archive::ArchiveQuery) -> fanout_engine::Result<u64> {
        self.inner.count(q).await
    }
}

/// A replay of a range ending now, right after publishing, found 1 of 2
/// events: the other was still in the outbox. A replay covers every event
/// published in its range.
#[tokio::test]
async fn replay_covers_events_not_yet_archived() {
    let b = backends().remove(0);
    let mut backends_ = fanout_engine::Backends::connect(&b.config).await.unwrap();
    let (gate, open) = tokio::sync::watch::channel(false);
    backends_.archive = Arc::new(GatedArchive {
        inner: backends_.archive.clone(),
        open,
    });
    let listeners = fanout_engine::Listeners::bind("127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let engine = fanout_engine::spawn_with(b.config.clone(), listeners, backends_)
        .await
        .unwrap();
    let grpc = format!("http://{}", engine.grpc_addr());
    let mut events = pb::event_service_client::EventServiceClient::connect(grpc.clone())
        .await
        .unwrap();
    events
        .define_event(pb::DefineEventRequest {
            name: "ping.sent".into(),
            schema_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for n in 0..2 {
        events
            .publish(pb::PublishRequest {
                event: "ping.sent".into(),
                payload_json: json!({ "n": n }).to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut replay = pb::replay_service_client::ReplayServiceClient::connect(grpc)
        .await
        .unwrap();
    let to_ms = fanout_engine::model::now_ms() + 1;
    let start = tokio::spawn({
        let mut replay = replay.clone();
        async move {
            replay
                .start_replay(pb::StartReplayRequest {
                    event: "ping.sent".into(),
                    from_ms: 0,
                    to_ms,
                    dry_run: true,
                    ..Default::default()
                })
                .await
        }
    });
    // While the archive holds nothing, the start waits for the outbox
    // (before, it answered at once, counting 0)...
    let mut start = start;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut start)
            .await
            .is_err(),
        "start_replay answered before the range was archived"
    );
    // ...and the archive catching up releases it.
    gate.send(true).unwrap();
    let job = start.await.unwrap().unwrap().into_inner();
    assert_eq!(job.events_total, 2, "{job:?}");
    let done = eventually(Duration::from_secs(20), "the dry run finished", || {
        let mut replay = replay.clone();
        let id = job.id.clone();
        async move {
            let j = replay
                .get_replay(pb::GetReplayRequest { id })
                .await
                .ok()?
                .into_inner();
            (j.status == "completed").then_some(j)
        }
    })
    .await;
    assert_eq!(done.events_replayed, 2, "{done:?}");
    let _ = &mut replay;
    engine.shutdown().await.unwrap();
}

/// A worker speaking the raw protocol: registers `task` on `job.created`
/// (with `lease_ms` and `concurrency`) and returns its outbound sender and
/// inbound stream, the `Registered` answer already read. It sends nothing
/// else unless the test does: a frozen or vanished worker.
async fn raw_worker(
    grpc_url: &str,
    name: &str,
    concurrency: u32,
    lease_ms: u64,
) -> (
    tokio::sync::mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::ServerMessage>,
) {
    let mut workers = pb::worker_service_client::WorkerServiceClient::connect(grpc_url.to_string())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Register(pb::Register {
            worker_name: name.into(),
            concurrency,
            tasks: vec![pb::TaskRegistration {
                id: "work".into(),
                event: "job.created".into(),
                lease_ms,
                ..Default::default()
            }],
        })),
    })
    .await
    .unwrap();
    let mut inbound = workers
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = inbound.message().await.unwrap().unwrap();
    assert!(matches!(
        first.msg,
        Some(pb::server_message::Msg::Registered(_))
    ));
    (tx, inbound)
}

/// A worker frozen mid-run (SIGSTOP, a GC pause, a network that drops
/// packets) stayed "connected" and kept receiving runs that could only
/// wait out their leases. Once it lets a lease lapse without a heartbeat it
/// gets nothing more until it is heard from.
#[tokio::test]
async fn a_frozen_worker_gets_no_more_work() {
    use fanout::{Event, Task, TaskError, Worker};
    let b = backends().remove(0);
    let engine = TestEngine::start(b.config.clone()).await;
    let mut events = pb::event_service_client::EventServiceClient::connect(engine.grpc_url.clone())
        .await
        .unwrap();
    events
        .define_event(pb::DefineEventRequest {
            name: "job.created".into(),
            schema_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let publish = |n: u32| pb::PublishRequest {
        event: "job.created".into(),
        payload_json: json!({ "n": n }).to_string(),
        ..Default::default()
    };
    // The frozen worker: registers, takes a run, then never speaks again.
    let (tx, mut inbound) = raw_worker(&engine.grpc_url, "frozen", 10, 300).await;
    events.publish(publish(0)).await.unwrap();
    let got = inbound.message().await.unwrap().unwrap();
    assert!(matches!(
        got.msg,
        Some(pb::server_message::Msg::Assignment(_))
    ));
    // Let its lease lapse: the worker is silent for longer than the lease.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for n in 1..=5 {
        events.publish(publish(n)).await.unwrap();
    }
    // Nothing more reaches the frozen worker...
    let more = tokio::time::timeout(Duration::from_millis(500), inbound.message()).await;
    assert!(
        more.is_err(),
        "the frozen worker was sent more work: {more:?}"
    );
    // ...and a healthy worker completes every run, the lapsed one included.
    let client = engine.client().await;
    let ev = Event::<Value>::new("job.created");
    let task = Task::new("work", &ev, |_: Value, _| async { Ok::<_, TaskError>(()) });
    let worker = Worker::new(client.clone())
        .define_events()
        .task(task)
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "every run completed", || {
        let client = client.clone();
        async move {
            (fanout_tests::runs_with_status(&client, fanout::RunStatus::Completed)
                .await
                .len()
                == 6)
                .then_some(())
        }
    })
    .await;
    worker.shutdown().await.unwrap();
    drop(tx);
    engine.stop().await;
}

/// `shutdown()` returned at once, the engine charged every running handler
/// a failed attempt (a run with one attempt died "worker disconnected"
/// although it succeeded), and the detached handlers kept running. Now a
/// handler that finishes within the grace period reports its result, and
/// one that does not is stopped for real and its run given back uncharged.
#[tokio::test]
async fn worker_shutdown_drains_and_gives_back_uncharged() {
    use fanout::{Event, Retry, Task, TaskError, Worker};
    use std::sync::atomic::AtomicU32;
    let b = backends().remove(0);
    let engine = TestEngine::start(b.config.clone()).await;
    let client = engine.client().await;
    let ev = Event::<Value>::new("job.created");
    let started = Arc::new(tokio::sync::Semaphore::new(0));
    let finish = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::new(AtomicU32::new(0));
    /// Counts the handlers whose future was dropped before finishing.
    struct Dropped(Arc<AtomicU32>, bool);
    impl Drop for Dropped {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let (s, f, st) = (started.clone(), finish.clone(), stopped.clone());
    let task = Task::new("work", &ev, move |p: Value, _| {
        let (s, f, st) = (s.clone(), f.clone(), st.clone());
        async move {
            let mut guard = Dropped(st, false);
            let finished = f.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            s.add_permits(1);
            if p["quick"] == true {
                finished.await;
            } else {
                std::future::pending::<()>().await;
            }
            guard.1 = true;
            Ok::<_, TaskError>(())
        }
    })
    .retry(Retry {
        max_attempts: 1,
        ..Default::default()
    });
    let worker = Worker::new(client.clone())
        .define_events()
        .task(task)
        .shutdown_grace(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let quick = client
        .publish_json("job.created", &json!({"quick": true}), Default::default())
        .await
        .unwrap();
    let stuck = client
        .publish_json("job.created", &json!({"quick": false}), Default::default())
        .await
        .unwrap();
    let _ = started.acquire_many(2).await.unwrap();
    let stopping = tokio::spawn(worker.shutdown());
    // The quick handler finishes during the grace period.
    finish.notify_waiters();
    stopping.await.unwrap().unwrap();
    let run = |p: &fanout::Published| p.runs[0].run_id.clone();
    let q = client.run(&run(&quick)).await.unwrap().run;
    assert_eq!((q.status.as_str(), q.attempts), ("completed", 1), "{q:?}");
    let s = client.run(&run(&stuck)).await.unwrap().run;
    assert_eq!(
        (s.status.as_str(), s.attempts),
        ("queued", 0),
        "given back uncharged: {s:?}"
    );
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        1,
        "the stuck handler was stopped"
    );
    engine.stop().await;
}

/// `publish_and_wait` from a client failed for good when the engine
/// restarted ("Unknown: transport error", no id to resume from, and a retry
/// would publish again). Now it reconnects and keeps waiting on the same
/// waitpoint: one event, one run, the result delivered.
#[tokio::test]
async fn publish_and_wait_survives_an_engine_restart() {
    use fanout::{Event, Task, TaskError, Worker};
    let b = backends().remove(0);
    let first = TestEngine::start(b.config.clone()).await;
    let grpc = first.grpc_url.trim_start_matches("http://").to_string();
    let http_addr = first.http_url.trim_start_matches("http://").to_string();
    let client = first.client().await;
    let ev = Event::<Value>::new("job.created");
    ev.define(&client).await.unwrap();
    // Register the task without running it: the run waits.
    let task = || {
        Task::new("double", &ev, |p: Value, _| async move {
            Ok::<_, TaskError>(p["n"].as_u64().unwrap_or(0) * 2)
        })
    };
    Worker::new(client.clone())
        .define_events()
        .task(task())
        .start()
        .await
        .unwrap()
        .abort();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .publish_and_wait_json("job.created", &json!({"n": 21}), Default::default(), None)
                .await
        }
    });
    // The run exists and waits: queued, or retrying if the aborted
    // registration's session claimed it before the engine saw it go.
    eventually(Duration::from_secs(10), "the run waits", || {
        let client = client.clone();
        async move {
            let runs = fanout_tests::runs_with_status(&client, None).await;
            runs.iter()
                .any(|r| {
                    r.status == fanout::RunStatus::Queued || r.status == fanout::RunStatus::Retrying
                })
                .then_some(())
        }
    })
    .await;
    first.stop().await;
    let second = TestEngine::start_at(b.config.clone(), &grpc, &http_addr).await;
    let worker = Worker::new(second.client().await)
        .define_events()
        .task(task())
        .start()
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting call finished")
        .unwrap()
        .unwrap();
    assert_eq!(result.results["double"].output, json!(42), "{result:?}");
    let runs = fanout_tests::runs_with_status(&second.client().await, None).await;
    assert_eq!(runs.len(), 1, "published once: {runs:?}");
    worker.shutdown().await.unwrap();
    second.stop().await;
}

/// After a crash of `fanout serve`, every run it had leased waited out its
/// full lease (30 s by default). Leases carry the instance that granted
/// them; the same instance starting again requeues them at once, uncharged
/// (replicas with other instance ids are not touched).
#[tokio::test]
#[ignore = "service test: needs FANOUT_TEST_POSTGRES_URL (.ci/run sets it)"]
async fn a_restarted_instance_requeues_its_leases_at_once() {
    let _ = env("FANOUT_TEST_POSTGRES_URL");
    let b = backends()
        .into_iter()
        .find(|b| b.name == "postgres")
        .unwrap();
    let mut config = b.config.clone();
    config.instance_id = format!("it-{}", uuid::Uuid::now_v7().simple());
    let first = TestEngine::start(config.clone()).await;
    let mut events = pb::event_service_client::EventServiceClient::connect(first.grpc_url.clone())
        .await
        .unwrap();
    events
        .define_event(pb::DefineEventRequest {
            name: "job.created".into(),
            schema_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (tx, mut inbound) = raw_worker(&first.grpc_url, "held", 1, 600_000).await;
    events
        .publish(pb::PublishRequest {
            event: "job.created".into(),
            payload_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let Some(pb::server_message::Msg::Assignment(a)) =
        inbound.message().await.unwrap().unwrap().msg
    else {
        panic!("expected an assignment");
    };
    assert!(
        a.worker_id.starts_with(&format!("{}/", config.instance_id)),
        "{}",
        a.worker_id
    );
    // The same instance starts again (as after a crash: its sessions are gone).
    let second = TestEngine::start(config.clone()).await;
    let run = second.client().await.run(&a.run_id).await.unwrap().run;
    assert_eq!(
        (run.status, run.attempts),
        (fanout::RunStatus::Queued, 0),
        "{run:?}"
    );
    drop(tx);
    second.stop().await;
    first.stop().await;
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// A lost wake-up stalled a caller for the 5 s safety poll (one call of 500
    /// in an unloaded Postgres scatter run). Under concurrency no call may wait
    /// that long: every answer must come from a completion notice.
    multi_thread async fn no_publish_and_wait_waits_for_the_safety_poll(b) {
        use fanout::{Event, Task, TaskError, Worker};
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Value>::new("job.created");
        let mut worker = Worker::new(client.clone()).define_events().concurrency(64);
        for t in ["a", "b", "c"] {
            worker = worker.task(Task::new(t, &ev, |_: Value, _| async {
                Ok::<_, TaskError>(1)
            }));
        }
        let worker = worker.start().await.unwrap();
        let calls = Arc::new(tokio::sync::Semaphore::new(32));
        let mut handles = Vec::new();
        for n in 0..400 {
            let client = client.clone();
            let calls = calls.clone();
            handles.push(tokio::spawn(async move {
                let _slot = calls.acquire().await.unwrap();
                let started = std::time::Instant::now();
                let r = client
                    .publish_and_wait_json(
                        "job.created",
                        &json!({ "n": n }),
                        Default::default(),
                        None,
                    )
                    .await
                    .unwrap();
                assert_eq!(r.results.len(), 3);
                started.elapsed()
            }));
        }
        let mut took = Vec::new();
        for h in handles {
            took.push(h.await.unwrap());
        }
        took.sort();
        println!(
            "[{}] publish_and_wait x400 at 32: p50 {:?}, p99 {:?}, max {:?}",
            b.name,
            took[took.len() / 2],
            took[took.len() * 99 / 100],
            took[took.len() - 1]
        );
        assert!(
            took[took.len() - 1] < Duration::from_secs(4),
            "[{}] a call waited {:?}: a completion notice was missed",
            b.name,
            took[took.len() - 1]
        );
        // The engine counts what the caller would feel: no wait answered by
        // the safety poll.
        let (_, _, metrics) = fanout_tests::http(&engine.http_url, "GET", "/metrics", "").await;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("fanout_waits_answered_by_safety_poll_total"))
            .expect("the safety-poll counter is exported");
        assert!(line.ends_with(" 0"), "[{}] {line}", b.name);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

/// Postgres backends terminated under publish load (a failover, an
/// operator's `pg_terminate_backend`): callers see UNAVAILABLE (retryable)
/// and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "service test: needs FANOUT_TEST_POSTGRES_URL and psql (.ci/run has both)"]
async fn postgres_backends_terminated_under_load_lose_nothing() {
    use fanout::{Error, PublishOptions, Task, TaskError, Worker};
    use fanout_engine::config::StoreConfig;
    let url = env("FANOUT_TEST_POSTGRES_URL");
    let mut b = backends()
        .into_iter()
        .find(|b| b.name == "postgres")
        .unwrap();
    // Tag the engine's connections so only they are terminated.
    let tag = format!("fanout-term-{}", uuid::Uuid::now_v7().simple());
    if let StoreConfig::Postgres { url: u, .. } = &mut b.config.store {
        *u = format!(
            "{u}{}application_name={tag}",
            if u.contains('?') { '&' } else { '?' }
        );
    }
    let engine = TestEngine::start(b.config.clone()).await;
    let client = engine.client().await;
    client
        .define_event("order.created", &json!({"type": "object"}), "")
        .await
        .unwrap();
    let task = Task::on_pattern("bill", "order.created", |_: Value, _| async {
        Ok::<_, TaskError>(())
    });
    Worker::new(client.clone())
        .define_events()
        .task(task)
        .start()
        .await
        .unwrap()
        .abort();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let errors: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..8 {
        let (client, stop, acked, errors) =
            (client.clone(), stop.clone(), acked.clone(), errors.clone());
        publishers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("p{p}-{n}");
                n += 1;
                let opts = PublishOptions {
                    idempotency_key: Some(key.clone()),
                    ..Default::default()
                };
                match client.publish_json("order.created", &json!({}), opts).await {
                    Ok(_) => acked.lock().unwrap().push(key),
                    Err(Error::Unavailable(_)) => {}
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    let host = url
        .split('@')
        .nth(1)
        .and_then(|h| h.split([':', '/']).next())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut terminated = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = std::process::Command::new("psql")
            .args(["-h", &host, "-U", "postgres", "-d", "test", "-Atqc"])
            .arg(format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{tag}'"
            ))
            .output()
            .expect("psql runs");
        terminated += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .unwrap_or(0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let mut lost = 0;
    for key in &acked {
        let opts = PublishOptions {
            idempotency_key: Some(key.clone()),
            ..Default::default()
        };
        let p = eventually(Duration::from_secs(10), "the store answers again", || {
            let (client, opts) = (client.clone(), opts.clone());
            async move {
                client
                    .publish_json("order.created", &json!({}), opts)
                    .await
                    .ok()
            }
        })
        .await;
        if !p.deduplicated {
            lost += 1;
        }
    }
    let errors = errors.lock().unwrap().clone();
    println!(
        "postgres backends terminated under load: {terminated} backends killed, acked {}, lost {lost}, non-retryable errors {}",
        acked.len(),
        errors.len()
    );
    assert!(terminated > 0, "no backend was terminated");
    assert!(acked.len() > 100, "too little load: {}", acked.len());
    assert_eq!(lost, 0);
    assert!(
        errors.is_empty(),
        "errors other than UNAVAILABLE: {errors:?}"
    );
    engine.stop().await;
}
