//! One trace from publish through every subscriber, checked at a real OTLP
//! collector: an in-process tonic server built from `opentelemetry-proto`
//! receives what the engine's exporter sends. One publish to three
//! subscribers, one failing once, must produce the `send` span (PRODUCER,
//! child of the caller's span), one `process` span per attempt (CONSUMER,
//! linked to `send`), the spans the handler opens as children of its
//! attempt, and the engine's `complete` spans in the same traces; a
//! scatter-gather, a webhook delivery, a sleep and a token's completion
//! read the same way. One test in
//! this binary: the subscriber is process-global.

use fanout::{Event, Retry, Task, TaskError, Worker};
use fanout_engine::telemetry::{OtlpConfig, OtlpExporter, otlp_layer};
use fanout_tests::collector::{Collector, attr};
use fanout_tests::{TestEngine, eventually};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Check {
    sku: String,
}

/// A parent publishes and waits (it suspends; its attempt ends), the child
/// completes, the parent resumes: the resumed attempt links to the child
/// publish the waitpoint gathered, naming the waitpoint, and the child's
/// attempt links to the same publish.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
async fn scatter_gather_reads_as_one_story(
    client: &fanout::Client,
    collector: &Collector,
    exporter: &fanout_engine::telemetry::Tracing,
) {
    let checkout = Event::<Order>::new("order.checked");
    let stock = Event::<Check>::new("stock.check");
    checkout.define(client).await.unwrap();
    stock.define(client).await.unwrap();
    let check = Task::new(
        "check-stock",
        &stock,
        |c: Check, _| async move { Ok(c.sku) },
    );
    let child_event = stock.clone();
    let gather = Task::new("gather", &checkout, move |_o: Order, ctx| {
        let stock = child_event.clone();
        async move {
            let results = ctx
                .publish_and_wait(&stock, &Check { sku: "s-1".into() })
                .await?;
            Ok(results.all_ok())
        }
    });
    let worker = Worker::new(client.clone())
        .task(check)
        .task(gather)
        .start()
        .await
        .unwrap();
    let published = checkout
        .publish(client, &Order { id: "o-2".into() })
        .await
        .unwrap();
    let spans = collector
        .spans_when(exporter, "the resumed attempt's span", |spans| {
            spans.iter().any(|s| {
                s.name == "process order.checked"
                    && attr(s, "fanout.attempt").as_deref() == Some("2")
            })
        })
        .await;
    let child_send = spans
        .iter()
        .find(|s| s.name == "send stock.check")
        .expect("the child publish is exported");
    let first = spans
        .iter()
        .find(|s| {
            s.name == "process order.checked" && attr(s, "fanout.attempt").as_deref() == Some("1")
        })
        .unwrap();
    assert_eq!(attr(first, "fanout.outcome").as_deref(), Some("suspended"));
    assert_eq!(
        child_send.parent_span_id, first.span_id,
        "the child publish is made inside the parent's first attempt"
    );
    let resumed = spans
        .iter()
        .find(|s| {
            s.name == "process order.checked" && attr(s, "fanout.attempt").as_deref() == Some("2")
        })
        .unwrap();
    let link = resumed
        .links
        .iter()
        .find(|l| l.span_id == child_send.span_id && l.trace_id == child_send.trace_id)
        .unwrap_or_else(|| panic!("the resumed attempt links to the waitpoint: {resumed:#?}"));
    assert!(
        link.attributes
            .iter()
            .any(|kv| kv.key == "fanout.waitpoint.id"),
        "{link:#?}"
    );
    let child = spans
        .iter()
        .find(|s| s.name == "process stock.check")
        .unwrap();
    assert!(
        child.links.iter().any(|l| l.span_id == child_send.span_id),
        "the child's attempt links to the same publish"
    );
    assert!(
        published.event_id != attr(child, "messaging.message.id").unwrap_or_default(),
        "two events"
    );
    worker.shutdown().await.unwrap();
}

/// A webhook delivery is an attempt too: the engine's `process` span
/// (CONSUMER, a child of the publish) with the POST's status, the
/// receiver gets that span as its `traceparent`, and recording each
/// answer is a `complete` span under it (the 503 retried).
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
async fn a_webhook_delivery_is_an_attempt(
    client: &fanout::Client,
    collector: &Collector,
    exporter: &fanout_engine::telemetry::Tracing,
) {
    let shipped = Event::<Order>::new("order.shipped");
    shipped.define(client).await.unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let heard = heard.clone();
        async move {
            let mut all = heard.lock().expect("receiver lock");
            all.push(
                headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            );
            // The first delivery is turned away, the retry accepted.
            match all.len() {
                1 => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                _ => axum::http::StatusCode::OK,
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks?token=secret",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    client
        .create_subscription(
            fanout::HttpSubscription::new("shipping-hook", "order.shipped", &url).retry(
                Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)),
            ),
        )
        .await
        .unwrap();
    shipped
        .publish(client, &Order { id: "o-3".into() })
        .await
        .unwrap();
    let spans = collector
        .spans_when(exporter, "both deliveries' spans", |spans| {
            spans
                .iter()
                .filter(|s| s.name == "process order.shipped")
                .count()
                == 2
        })
        .await;
    let send = spans
        .iter()
        .find(|s| s.name == "send order.shipped")
        .unwrap();
    let deliveries: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "process order.shipped")
        .collect();
    let heard = seen.lock().expect("receiver lock").clone();
    for d in &deliveries {
        assert_eq!(d.kind, SpanKind::Consumer as i32);
        assert_eq!(d.parent_span_id, send.span_id, "a child of the publish");
        assert_eq!(
            attr(d, "messaging.destination.subscription.name").as_deref(),
            Some("shipping-hook")
        );
        assert_eq!(
            attr(d, "url.full").as_deref(),
            Some(url.split('?').next().unwrap()),
            "no query string in the span"
        );
        assert!(
            heard.iter().any(|t| t.contains(&hex(&d.span_id))),
            "the receiver got the delivery's span as its parent: {heard:?}"
        );
        let complete = spans
            .iter()
            .find(|s| s.name == "complete" && s.parent_span_id == d.span_id)
            .unwrap_or_else(|| panic!("recording the answer is under the delivery: {d:#?}"));
        let (status, effect) = match attr(d, "fanout.attempt").as_deref() {
            Some("1") => ("503", "retrying"),
            _ => ("200", "completed"),
        };
        assert_eq!(
            attr(d, "http.response.status_code").as_deref(),
            Some(status)
        );
        assert_eq!(attr(complete, "fanout.effect").as_deref(), Some(effect));
    }
    client.delete_subscription("shipping-hook").await.unwrap();
}

/// A run that sleeps suspends (its first attempt ends `suspended`); the
/// attempt that resumes links to the span the sleep began in — the first
/// attempt's — naming the waitpoint.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
async fn a_sleep_resumes_with_a_link(
    client: &fanout::Client,
    collector: &Collector,
    exporter: &fanout_engine::telemetry::Tracing,
) {
    let delayed = Event::<Order>::new("order.delayed");
    delayed.define(client).await.unwrap();
    let nap = Task::new("nap", &delayed, |o: Order, ctx| async move {
        ctx.sleep(Duration::from_millis(20)).await?;
        Ok(o.id)
    });
    let worker = Worker::new(client.clone()).task(nap).start().await.unwrap();
    delayed
        .publish(client, &Order { id: "o-4".into() })
        .await
        .unwrap();
    let spans = collector
        .spans_when(exporter, "the resumed nap", |spans| {
            spans.iter().any(|s| {
                s.name == "process order.delayed"
                    && attr(s, "fanout.outcome").as_deref() == Some("ok")
            })
        })
        .await;
    let attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "process order.delayed")
        .collect();
    let first = attempts
        .iter()
        .find(|s| attr(s, "fanout.outcome").as_deref() == Some("suspended"))
        .unwrap_or_else(|| panic!("the sleeping attempt: {attempts:#?}"));
    let resumed = attempts
        .iter()
        .find(|s| attr(s, "fanout.outcome").as_deref() == Some("ok"))
        .unwrap();
    let link = resumed
        .links
        .iter()
        .find(|l| l.span_id == first.span_id && l.trace_id == first.trace_id)
        .unwrap_or_else(|| {
            panic!("the resumed attempt links to where the sleep began: {resumed:#?}")
        });
    assert!(
        link.attributes
            .iter()
            .any(|kv| kv.key == "fanout.waitpoint.id"),
        "{link:#?}"
    );
    worker.shutdown().await.unwrap();
}

/// Completing a token is the engine's work in the completer's trace: a
/// `complete waitpoint` span under the caller's span, naming the token.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
async fn completing_a_token_is_in_the_completers_trace(
    client: &fanout::Client,
    collector: &Collector,
    exporter: &fanout_engine::telemetry::Tracing,
) {
    let token = client.create_token(None).await.unwrap();
    let approve = tracing::info_span!("approve");
    async {
        client
            .complete_token(&token.id, &serde_json::json!({"ok": true}))
            .await
    }
    .instrument(approve.clone())
    .await
    .unwrap();
    drop(approve);
    let spans = collector
        .spans_when(exporter, "the token's completion", |spans| {
            spans.iter().any(|s| s.name == "complete waitpoint")
        })
        .await;
    let approve = spans.iter().find(|s| s.name == "approve").unwrap();
    let done = spans
        .iter()
        .find(|s| s.name == "complete waitpoint")
        .unwrap();
    assert_eq!(done.parent_span_id, approve.span_id, "{done:#?}");
    assert_eq!(done.trace_id, approve.trace_id);
    assert_eq!(attr(done, "fanout.waitpoint.id"), Some(token.id.clone()));
    assert_eq!(
        attr(done, "fanout.waitpoint.kind").as_deref(),
        Some("token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_publish_is_one_story_across_subscribers_and_retries() {
    let collector = Collector::start().await;
    let (layer, exporter) = otlp_layer(&OtlpConfig {
        endpoint: collector.endpoint(),
        service_name: "fanout-test".into(),
        exporter: OtlpExporter::Auto,
    })
    .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let backend = fanout_tests::backend("sqlite").await;
    let mut config = backend.config.clone();
    config.webhooks.allow_loopback = true;
    let engine = TestEngine::start(config).await;
    let client = engine.client().await;
    let placed = Event::<Order>::new("order.placed");
    placed.define(&client).await.unwrap();
    let reserve = Task::new("reserve", &placed, |o: Order, _| async move {
        // A span the handler opens: a child of its attempt.
        let span = tracing::info_span!("reserve-stock", order = %o.id);
        async { Ok(o.id) }.instrument(span).await
    });
    let charge = Task::new("charge", &placed, |o: Order, _| async move { Ok(o.id) })
        .consumer_group("billing");
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let calls = flaky_calls.clone();
    let flaky = Task::new("notify", &placed, move |o: Order, _| {
        let calls = calls.clone();
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(TaskError::retryable("mail server busy"));
            }
            Ok(o.id)
        }
    })
    .retry(Retry::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(10)));
    let worker = Worker::new(client.clone())
        .task(reserve)
        .task(charge)
        .task(flaky)
        .start()
        .await
        .unwrap();

    let root = tracing::info_span!("checkout");
    let published = async { placed.publish(&client, &Order { id: "o-1".into() }).await }
        .instrument(root.clone())
        .await
        .unwrap();
    drop(root);
    eventually(Duration::from_secs(20), "every run completed", || async {
        let runs = client
            .runs()
            .event_id(&published.event_id)
            .first(10)
            .await
            .unwrap();
        (runs.len() == 3
            && runs
                .iter()
                .all(|r| r.status == fanout::RunStatus::Completed))
        .then_some(())
    })
    .await;
    let spans = collector
        .spans_when(&exporter, "the spans reach the collector", |spans| {
            spans.iter().filter(|s| s.name == "complete").count() >= 4
        })
        .await;

    // The publish: one PRODUCER span, a child of the caller's span.
    let sends: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "send order.placed")
        .collect();
    assert_eq!(sends.len(), 1, "{spans:#?}");
    let send = sends[0];
    assert_eq!(send.kind, SpanKind::Producer as i32);
    assert_eq!(attr(send, "messaging.system").as_deref(), Some("fanout"));
    assert_eq!(
        attr(send, "messaging.destination.name").as_deref(),
        Some("order.placed")
    );
    assert_eq!(
        attr(send, "messaging.message.id"),
        Some(published.event_id.clone())
    );
    assert_eq!(attr(send, "fanout.runs_created").as_deref(), Some("3"));
    let root = spans
        .iter()
        .find(|s| s.name == "checkout")
        .expect("the caller's span is exported");
    assert_eq!(send.trace_id, root.trace_id, "the caller's trace continues");
    assert_eq!(
        send.parent_span_id, root.span_id,
        "send is a child of the caller's span"
    );

    // Every attempt: a CONSUMER span linked to the send span.
    let process: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "process order.placed")
        .collect();
    assert_eq!(process.len(), 4, "three runs, one retried: {process:#?}");
    for p in &process {
        assert_eq!(p.kind, SpanKind::Consumer as i32);
        assert!(
            p.links
                .iter()
                .any(|l| l.trace_id == send.trace_id && l.span_id == send.span_id),
            "each attempt links to the event's creation context: {p:#?}"
        );
        assert_eq!(
            attr(p, "messaging.message.id"),
            Some(published.event_id.clone())
        );
    }
    let notify: Vec<&&Span> = process
        .iter()
        .filter(|p| attr(p, "messaging.destination.subscription.name").as_deref() == Some("notify"))
        .collect();
    assert_eq!(notify.len(), 2);
    let first = notify
        .iter()
        .find(|p| attr(p, "fanout.attempt").as_deref() == Some("1"))
        .unwrap();
    assert_eq!(attr(first, "fanout.outcome").as_deref(), Some("failed"));
    assert_eq!(
        first.status.as_ref().map(|s| s.code),
        Some(2),
        "status ERROR"
    );
    let second = notify
        .iter()
        .find(|p| attr(p, "fanout.attempt").as_deref() == Some("2"))
        .unwrap();
    assert_eq!(attr(second, "fanout.outcome").as_deref(), Some("ok"));

    // The handler's own span is a child of its attempt.
    let reserve_attempt = process
        .iter()
        .find(|p| attr(p, "messaging.destination.subscription.name").as_deref() == Some("reserve"))
        .unwrap();
    let stock = spans
        .iter()
        .find(|s| s.name == "reserve-stock")
        .expect("handler span exported");
    assert_eq!(stock.parent_span_id, reserve_attempt.span_id);
    assert_eq!(stock.trace_id, reserve_attempt.trace_id);
    // A consumer group's member names its group; others name none.
    let charge_attempt = process
        .iter()
        .find(|p| attr(p, "messaging.destination.subscription.name").as_deref() == Some("charge"))
        .unwrap();
    assert_eq!(
        attr(charge_attempt, "messaging.consumer.group.name").as_deref(),
        Some("billing")
    );
    assert_eq!(attr(reserve_attempt, "messaging.consumer.group.name"), None);

    // The engine's work: each completion is a child of its attempt (the
    // retry decided there).
    let completes: Vec<&Span> = spans.iter().filter(|s| s.name == "complete").collect();
    assert_eq!(completes.len(), 4);
    for c in &completes {
        assert!(
            process
                .iter()
                .any(|p| p.span_id == c.parent_span_id && p.trace_id == c.trace_id),
            "complete under its attempt: {c:#?}"
        );
    }
    assert!(
        completes
            .iter()
            .any(|c| attr(c, "fanout.effect").as_deref() == Some("retrying"))
    );

    // A replay re-tells the story: its attempts link to the original
    // publish, which the archive kept.
    let archived = eventually(Duration::from_secs(20), "the event is archived", || async {
        let a = client.archive("order.placed").first(10).await.unwrap();
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert!(
        archived[0]
            .traceparent
            .as_deref()
            .is_some_and(|t| t.contains(&hex(&send.span_id)))
    );
    let now = std::time::SystemTime::now();
    let job = client
        .start_replay(
            fanout::ReplaySpec::new("order.placed", now - Duration::from_secs(600), now)
                .tasks(["charge"]),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the replayed run completes",
        || async {
            let r = client.replay(&job.id).await.unwrap();
            let runs = client.runs().task("charge").first(10).await.unwrap();
            (r.is_final()
                && runs
                    .iter()
                    .filter(|r| r.replay_of.is_some())
                    .all(|r| r.status == fanout::RunStatus::Completed)
                && runs.len() == 2)
                .then_some(())
        },
    )
    .await;
    let is_replayed = |s: &Span| {
        s.name == "process order.placed"
            && attr(s, "fanout.replay.of").as_deref() == Some(published.event_id.as_str())
    };
    let replayed = collector
        .spans_when(&exporter, "the replayed attempt's span", |spans| {
            spans.iter().any(is_replayed)
        })
        .await
        .into_iter()
        .find(is_replayed)
        .expect("found above");
    assert!(
        replayed
            .links
            .iter()
            .any(|l| l.trace_id == send.trace_id && l.span_id == send.span_id),
        "the replayed attempt links to the original publish: {replayed:#?}"
    );
    assert_eq!(
        attr(&replayed, "fanout.replay.id"),
        Some(job.id.clone()),
        "the replayed attempt names its replay job"
    );

    scatter_gather_reads_as_one_story(&client, &collector, &exporter).await;
    a_webhook_delivery_is_an_attempt(&client, &collector, &exporter).await;
    a_sleep_resumes_with_a_link(&client, &collector, &exporter).await;
    completing_a_token_is_in_the_completers_trace(&client, &collector, &exporter).await;

    // A plain collector address took the lean exporter (the library's
    // exporter says `OTel-OTLP-Exporter-Rust`; tests/tests/traces_library.rs).
    let agents = collector.user_agents();
    assert!(
        !agents.is_empty() && agents.iter().all(|a| a.starts_with("fanout/")),
        "every export came from the lean exporter: {agents:?}"
    );

    worker.shutdown().await.unwrap();
    engine.stop().await;
}
