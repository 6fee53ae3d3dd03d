//! The other exporter: whenever the configuration asks for what the lean
//! exporter does not do (TLS, headers, compression, an HTTP protocol), the
//! engine's spans go through `opentelemetry-otlp`'s exporter instead. This
//! forces that exporter on a plain collector and checks a publish's `send`
//! span arrives whole from it. Its own binary: the tracer is process-wide.

use fanout::Event;
use fanout_engine::telemetry::{OtlpConfig, OtlpExporter, otlp_layer};
use fanout_tests::TestEngine;
use fanout_tests::collector::{Collector, attr};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn the_library_exporter_sends_the_same_spans() {
    let collector = Collector::start().await;
    let (_layer, exporter) = otlp_layer::<tracing_subscriber::Registry>(&OtlpConfig {
        endpoint: collector.endpoint(),
        service_name: "fanout-test".into(),
        exporter: OtlpExporter::Library,
    })
    .unwrap();
    let backend = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(backend.config.clone()).await;
    let client = engine.client().await;
    let placed = Event::<Order>::new("order.placed");
    placed.define(&client).await.unwrap();
    let published = placed
        .publish(&client, &Order { id: "o-1".into() })
        .await
        .unwrap();

    let spans = collector
        .spans_when(&exporter, "the publish's send span", |spans| {
            spans.iter().any(|s| s.name == "send order.placed")
        })
        .await;
    let send = spans
        .iter()
        .find(|s| s.name == "send order.placed")
        .expect("send span");
    assert_eq!(send.kind, SpanKind::Producer as i32);
    assert_eq!(attr(send, "messaging.system").as_deref(), Some("fanout"));
    assert_eq!(
        attr(send, "messaging.message.id"),
        Some(published.event_id.clone())
    );
    let agents = collector.user_agents();
    assert!(
        !agents.is_empty()
            && agents
                .iter()
                .all(|a| a.starts_with("OTel-OTLP-Exporter-Rust")),
        "every export came from opentelemetry-otlp: {agents:?}"
    );
    engine.stop().await;
}
