//! The abuse suite: requests an attacker with a client can send, each of
//! which once stalled the engine, grew it without bound, or reached another
//! namespace. Every test is bounded in time: a hang is a failure after a
//! few seconds, not a stuck CI.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Event, Task, TaskError, Worker};
use fanout_proto::v1 as pb;
use fanout_tests::{TestEngine, backends, eventually, http, http_with, test_config};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const BOUND: Duration = Duration::from_secs(20);

fn req<T>(ns: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(fanout_proto::NAMESPACE_HEADER, ns.parse().unwrap());
    r
}

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {BOUND:?}"))
}

async fn define(engine: &TestEngine, name: &str, schema: serde_json::Value) {
    let (status, _, body) = http(&engine.http_url, "GET", "/healthz", "").await;
    assert_eq!(status, 200, "{body}");
    let mut c = pb::event_service_client::EventServiceClient::connect(engine.grpc_url.clone())
        .await
        .unwrap();
    c.define_event(req(
        "default",
        pb::DefineEventRequest {
            name: name.into(),
            schema_json: schema.to_string(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}

async fn start() -> TestEngine {
    let b = backends().into_iter().next().unwrap();
    let mut config = b.config.clone();
    config.limits.validation_timeout_ms = 300;
    config.limits.http_header_timeout_ms = 300;
    let engine = TestEngine::start(config).await;
    // Keep the backend's directory alive as long as the engine.
    std::mem::forget(b.dir);
    engine
}

/// `#` patterns matched by backtracking took exponential time; 12 of them
/// against a 100-segment name never returned and froze the engine.
#[tokio::test]
async fn hash_patterns_cannot_freeze_the_engine() {
    let engine = start().await;
    let long = vec!["a"; 100].join(".");
    define(&engine, &long, json!({})).await;
    let (s, _, b) = http(
        &engine.http_url,
        "POST",
        &format!("/api/v1/events/{long}/publish"),
        r#"{"payload": {}}"#,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let pattern = format!("{}zz", "#.".repeat(12));
    let mut replay =
        pb::replay_service_client::ReplayServiceClient::connect(engine.grpc_url.clone())
            .await
            .unwrap();
    let started = Instant::now();
    let events = bounded(
        "ListArchived with 12 '#'",
        replay.list_archived(req(
            "default",
            pb::ListArchivedRequest {
                event: pattern.clone(),
                to_ms: i64::MAX,
                ..Default::default()
            },
        )),
    )
    .await
    .unwrap()
    .into_inner()
    .events;
    assert!(events.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The same pattern as a subscription: publishing still answers at once.
    let client = engine.client().await;
    let task = Task::on_pattern("catch-all", &pattern, |_: serde_json::Value, _| async {
        Ok::<_, TaskError>(())
    });
    let worker = Worker::new(client.clone())
        .define_events()
        .task(task)
        .start()
        .await
        .unwrap();
    bounded(
        "publish matching against a '#' subscription",
        client.publish_json(&long, &json!({}), Default::default()),
    )
    .await
    .unwrap();
    worker.shutdown().await.unwrap();
    engine.stop().await;
}

/// A schema with a backtracking regex over a large payload validated for
/// seconds on the async runtime, stalling every other request.
#[tokio::test]
async fn slow_schema_validation_does_not_stall_other_requests() {
    let engine = start().await;
    let patterns: Vec<_> = (0..50)
        .map(|i| json!({"type": "string", "pattern": format!("^(?=(a|aa)+b){i}")}))
        .collect();
    define(
        &engine,
        "evil.schema",
        json!({"type": "array", "items": {"anyOf": patterns}}),
    )
    .await;
    let payload = serde_json::to_string(&json!({"payload": vec!["a".repeat(24); 20_000]})).unwrap();
    let base = engine.http_url.clone();
    let attacks: Vec<_> = (0..2)
        .map(|_| {
            let base = base.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                http(
                    &base,
                    "POST",
                    "/api/v1/events/evil.schema/publish",
                    &payload,
                )
                .await
            })
        })
        .collect();
    // While both validate, the engine answers others promptly.
    for _ in 0..5 {
        let started = Instant::now();
        let (s, _, _) = http(&base, "GET", "/healthz", "").await;
        assert_eq!(s, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "healthz took {:?} during validation",
            started.elapsed()
        );
    }
    for a in attacks {
        let (s, _, body) = bounded("the slow publishes", a).await.unwrap();
        // Refused within the budget (or the pool was busy: retryable).
        assert!(s == 400 || s == 503, "{s} {body}");
        assert!(body.len() < 16 * 1024, "{} bytes", body.len());
    }
    engine.stop().await;
}

/// A 1 MB invalid payload produced an 8 MB error; over gRPC the error
/// itself failed ("metadata size exceeds hard limit").
#[tokio::test]
async fn errors_are_bounded() {
    let engine = start().await;
    define(
        &engine,
        "numbers.only",
        json!({"type": "array", "items": {"type": "integer"}}),
    )
    .await;
    let many = vec!["x".repeat(20); 40_000];
    let body = json!({ "payload": many }).to_string();
    let (s, _, answer) = http(
        &engine.http_url,
        "POST",
        "/api/v1/events/numbers.only/publish",
        &body,
    )
    .await;
    assert_eq!(s, 400);
    assert!(answer.len() < 32 * 1024, "{} bytes", answer.len());
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["violationCount"], 40_000);
    assert_eq!(v["violations"].as_array().unwrap().len(), 20);
    assert_eq!(v["code"], "invalid_payload");
    assert_eq!(
        v["entity"],
        json!({"kind": "event", "id": "numbers.only", "version": 1})
    );

    let mut events = pb::event_service_client::EventServiceClient::connect(engine.grpc_url.clone())
        .await
        .unwrap();
    let e = events
        .publish(req(
            "default",
            pb::PublishRequest {
                event: "numbers.only".into(),
                payload_json: json!(many).to_string(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("40000 violations in all"),
        "{}",
        e.message()
    );
    // The structured detail travels beside the message, bounded too.
    let detail = fanout_proto::error_detail::decode(&e).expect("an error detail");
    assert_eq!(detail.code, pb::ErrorCode::InvalidPayload as i32);
    assert_eq!(detail.violation_count, 40_000);
    assert_eq!(detail.violations.len(), 20);
    engine.stop().await;
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Only the payload had a limit: multi-megabyte keys, thousands of tags,
    /// huge token data and worker names were accepted (and a key over ~8 KB or
    /// with a NUL failed a whole Postgres batch).
    async fn every_field_has_a_limit(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        define(&engine, "order.created", json!({})).await;
        let mut events =
            pb::event_service_client::EventServiceClient::connect(engine.grpc_url.clone())
                .await
                .unwrap();
        let cases = [
            (
                "ordering_key",
                pb::PublishRequest {
                    ordering_key: "k".repeat(600),
                    ..Default::default()
                },
            ),
            (
                "idempotency_key",
                pb::PublishRequest {
                    idempotency_key: "a\0b".into(),
                    ..Default::default()
                },
            ),
            (
                "tags",
                pb::PublishRequest {
                    tags: vec!["t".into(); 65],
                    ..Default::default()
                },
            ),
            (
                "tags[0]",
                pb::PublishRequest {
                    tags: vec!["x".repeat(201)],
                    ..Default::default()
                },
            ),
        ];
        for (field, mut r) in cases {
            r.event = "order.created".into();
            r.payload_json = "{}".into();
            let e = events.publish(req("default", r)).await.unwrap_err();
            assert_eq!(
                e.code(),
                tonic::Code::InvalidArgument,
                "[{}] {field}",
                b.name
            );
            assert!(e.message().contains(field), "[{}] {}", b.name, e.message());
        }
        // A good publish beside them still goes through.
        events
            .publish(req(
                "default",
                pb::PublishRequest {
                    event: "order.created".into(),
                    payload_json: "{}".into(),
                    ordering_key: "k".repeat(500),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();

        let mut wp =
            pb::waitpoint_service_client::WaitpointServiceClient::connect(engine.grpc_url.clone())
                .await
                .unwrap();
        let token = wp
            .create_token(req("default", pb::CreateTokenRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let big = format!("\"{}\"", "d".repeat(engine.config.max_payload_bytes + 1));
        let e = wp
            .complete_token(req(
                "default",
                pb::CompleteTokenRequest {
                    id: token.id.clone(),
                    data_json: big,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "[{}] {e:?}", b.name);
        for timeout_ms in [u64::MAX, 1 << 63] {
            let e = wp
                .create_token(req(
                    "default",
                    pb::CreateTokenRequest {
                        timeout_ms,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err();
            assert_eq!(
                e.code(),
                tonic::Code::InvalidArgument,
                "[{}] {timeout_ms}",
                b.name
            );
        }

        // A worker name with a newline (a forged log line) or of megabytes.
        for name in ["good\nERROR forged".to_string(), "n".repeat(3_000_000)] {
            let mut workers =
                pb::worker_service_client::WorkerServiceClient::connect(engine.grpc_url.clone())
                    .await
                    .unwrap()
                    .max_encoding_message_size(usize::MAX);
            let first = pb::WorkerMessage {
                msg: Some(pb::worker_message::Msg::Register(pb::Register {
                    worker_name: name,
                    concurrency: 1,
                    tasks: vec![pb::TaskRegistration {
                        id: "t".into(),
                        event: "order.created".into(),
                        ..Default::default()
                    }],
                })),
            };
            let e = workers
                .session(req("default", tokio_stream::iter(vec![first])))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    e.code(),
                    tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted
                ),
                "[{}] {e:?}",
                b.name
            );
        }
        engine.stop().await;
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// `RecordStep` from another namespace wrote into a running run's journal;
    /// `CreateToken(parent = R)` suspended it; `PublishAndWait(parent)` wrote a
    /// journal row before checking the parent.
    async fn runs_cannot_be_reached_from_another_namespace_or_worker(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<serde_json::Value>::new("pay.requested");
        let gate = Arc::new(Semaphore::new(0));
        let g = gate.clone();
        let task = Task::new("charge", &ev, move |_: serde_json::Value, ctx| {
            let g = g.clone();
            async move {
                g.acquire()
                    .await
                    .map_err(|e| TaskError::retryable(e.to_string()))?
                    .forget();
                let v: String = ctx
                    .step("charge-card", || async { Ok("mine".to_string()) })
                    .await?;
                Ok::<_, TaskError>(v)
            }
        });
        let worker = Worker::new(client.clone()).define_events()
            .task(task)
            .start()
            .await
            .unwrap();
        client
            .publish_json("pay.requested", &json!({}), Default::default())
            .await
            .unwrap();
        let run = eventually(BOUND, "the run is running", || {
            let client = client.clone();
            async move {
                fanout_tests::runs_with_status(&client, fanout::RunStatus::Running)
                    .await
                    .into_iter()
                    .next()
            }
        })
        .await;
        let mut wp =
            pb::waitpoint_service_client::WaitpointServiceClient::connect(engine.grpc_url.clone())
                .await
                .unwrap();
        let step = |ns: &str, worker_id: &str| {
            req(
                ns,
                pb::RecordStepRequest {
                    run_id: run.id.clone(),
                    attempt: run.attempts,
                    key: "step:charge-card".into(),
                    value_json: "\"forged\"".into(),
                    worker_id: worker_id.into(),
                },
            )
        };
        // Another namespace, even with the right worker id.
        let e = wp
            .record_step(step("evil", run.worker_id.as_deref().unwrap_or_default()))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::FailedPrecondition,
            "[{}] {e:?}",
            b.name
        );
        // The right namespace without the lease.
        let e = wp
            .record_step(step("default", "someone-else"))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::FailedPrecondition,
            "[{}] {e:?}",
            b.name
        );
        let e = wp.record_step(step("default", "")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "[{}] {e:?}", b.name);
        let parent = |ns_attempt: u32, worker_id: &str| pb::ParentRun {
            run_id: run.id.clone(),
            attempt: ns_attempt,
            step_key: "step:charge-card".into(),
            worker_id: worker_id.into(),
        };
        let e = wp
            .create_token(req(
                "evil",
                pb::CreateTokenRequest {
                    parent: Some(parent(run.attempts, run.worker_id.as_deref().unwrap_or_default())),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::FailedPrecondition,
            "[{}] {e:?}",
            b.name
        );
        let r = wp
            .publish_and_wait(req(
                "default",
                pb::PublishAndWaitRequest {
                    publish: Some(pb::PublishRequest {
                        event: "pay.requested".into(),
                        payload_json: "{}".into(),
                        ..Default::default()
                    }),
                    parent: Some(parent(99, "someone-else")),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!r.suspended, "[{}] a foreign parent was suspended", b.name);
        // The run is untouched: its own step records its own value.
        gate.add_permits(2);
        let done = eventually(BOUND, "the run completes", || {
            let client = client.clone();
            let id = run.id.clone();
            async move {
                let d = client.run(&id).await.ok()?;
                (d.run.status == fanout::RunStatus::Completed).then_some(d)
            }
        })
        .await;
        assert_eq!(done.run.output, Some(serde_json::json!("mine")), "[{}]", b.name);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

/// The HTTP API took any content type (a cross-site "simple" POST could
/// publish), answered preflights for anyone, and sent non-JSON errors.
#[tokio::test]
async fn cross_site_requests_are_refused_and_errors_are_json() {
    let engine = start().await;
    define(&engine, "order.created", json!({})).await;
    let base = &engine.http_url;
    let path = "/api/v1/events/order.created/publish";
    let (s, _, body) = http_with(
        base,
        "POST",
        path,
        "Content-Type: text/plain\r\nOrigin: http://evil.example\r\n",
        r#"{"payload": {}}"#,
    )
    .await;
    assert_eq!(s, 415, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_ok(),
        "{body}"
    );
    let (_, headers, _) = http_with(
        base,
        "OPTIONS",
        path,
        "Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n",
        "",
    )
    .await;
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k == "access-control-allow-origin"),
        "{headers:?}"
    );
    // An array is not an object with a payload; neither is [1,2] a token body.
    let (s, _, body) = http(base, "POST", path, "[1]").await;
    assert_eq!(s, 400, "{body}");
    let (s, _, body) = http(base, "POST", "/api/v1/waitpoints/x/complete", "[1,2]").await;
    assert_eq!(s, 400, "{body}");
    // 404, 405 and 413 answer JSON too.
    let (s, _, body) = http(base, "GET", "/nope", "").await;
    assert_eq!(s, 404);
    serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let (s, _, body) = http(base, "GET", path, "").await;
    assert_eq!(s, 405);
    serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let huge = format!(r#"{{"payload": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let (s, _, body) = http(base, "POST", path, &huge).await;
    assert_eq!(s, 413);
    serde_json::from_str::<serde_json::Value>(&body).unwrap();
    engine.stop().await;
}

/// Slow-header and idle connections stayed open for 75 s or more; 300 of
/// them exhausted the engine's file descriptors.
#[tokio::test]
async fn slow_and_idle_http_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = start().await;
    let addr = engine.http_url.trim_start_matches("http://").to_string();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /api/v1/events/x/publish HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for s in [&mut idle, &mut slow] {
        let mut buf = Vec::new();
        // The server closes (EOF), with or without a 408 first.
        bounded(
            "the server closing a slow connection",
            s.read_to_end(&mut buf),
        )
        .await
        .unwrap();
    }
    engine.stop().await;
}

/// `123456789012345678901234567890` was stored as `1.2345678901234568e+29`.
#[tokio::test]
async fn big_numbers_are_stored_as_published() {
    let engine = start().await;
    define(&engine, "ledger.entry", json!({"type": "object"})).await;
    let (s, _, body) = http(
        &engine.http_url,
        "POST",
        "/api/v1/events/ledger.entry/publish",
        r#"{"payload": {"amount": 123456789012345678901234567890, "exact": 0.10000000000000000001}}"#,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let client = engine.client().await;
    let mut replay = client.raw().replay();
    let stored = eventually(BOUND, "the event is archived", || {
        let mut replay = replay.clone();
        let r = client.raw().request(pb::ListArchivedRequest {
            event: "ledger.entry".into(),
            to_ms: i64::MAX,
            ..Default::default()
        });
        async move {
            replay
                .list_archived(r)
                .await
                .ok()?
                .into_inner()
                .events
                .pop()
        }
    })
    .await;
    assert!(
        stored
            .payload_json
            .contains("123456789012345678901234567890"),
        "{}",
        stored.payload_json
    );
    assert!(stored.payload_json.contains("0.10000000000000000001"));
    // A payload with a repeated key has two readings: refused.
    let (s, _, body) = http(
        &engine.http_url,
        "POST",
        "/api/v1/events/ledger.entry/publish",
        r#"{"payload": {"a": 1, "a": 2}}"#,
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let _ = &mut replay;
    engine.stop().await;
}

/// Undecodable protobuf was INTERNAL and an over-long message OUT_OF_RANGE.
#[tokio::test]
async fn malformed_and_oversized_messages_get_client_error_codes() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Bogus {
        /// Field 1 of PublishRequest is a string; a varint there is garbage.
        #[prost(uint64, tag = "1")]
        event: u64,
    }
    let engine = start().await;
    let channel = tonic::transport::Channel::from_shared(engine.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Bogus, pb::PublishResponse>::default();
    let e = grpc
        .unary(
            req("default", Bogus { event: 7 }),
            "/fanout.v1.EventService/Publish".parse().unwrap(),
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    let mut events = pb::event_service_client::EventServiceClient::new(channel)
        .max_encoding_message_size(usize::MAX);
    let e = events
        .publish(req(
            "default",
            pb::PublishRequest {
                event: "order.created".into(),
                payload_json: format!("\"{}\"", "x".repeat(5 * 1024 * 1024)),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    engine.stop().await;
}

#[test]
fn start_up_errors_do_not_print_passwords() {
    let mut c = test_config(fanout_engine::Config::default());
    c.limiter = fanout_engine::config::LimiterConfig::Redis {
        url: "http://user:hunter2@redis.example:6379".into(),
        on_unavailable: Default::default(),
    };
    c.limits.max_key_bytes = 0;
    c.publish_concurrency = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    // Every problem at once, each naming its setting.
    for setting in ["limiter.url", "limits.max_key_bytes", "publish_concurrency"] {
        assert!(e.contains(setting), "{setting} missing from: {e}");
    }
    assert_eq!(
        fanout_engine::error::redact_url("redis://:hunter2@h:6379/0?password=hunter2"),
        "redis://:***@h:6379/0?password=***"
    );
}
