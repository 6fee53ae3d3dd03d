//! Traces: the engine's OpenTelemetry spans and the W3C trace context that
//! travels with an event.
//!
//! Spans the exporter should see are `tracing` spans with target
//! [`TARGET`] and `otel.*` fields (`otel.name`, `otel.kind`), following the
//! messaging semantic conventions (`messaging.system = "fanout"`). The log
//! output ignores that target, so with no exporter installed nothing is
//! interested in them and each costs one cached callsite check: tracing
//! off costs nothing measurable.
//!
//! A publish's `send {event}` span is the event's *creation context*: its
//! `traceparent` is stored with the event and sent with every run, and each
//! attempt's `process {event}` span (made by the SDK worker) links to it.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span meant for the trace exporter.
pub const TARGET: &str = "fanout::otel";

/// Longest `traceparent` / `tracestate` kept (the W3C limits are 55 and
/// 512 characters); longer input is dropped, never stored.
const MAX_TRACESTATE: usize = 512;

/// A W3C trace context as stored with an event: `traceparent` (empty when
/// the publish was not traced) and `tracestate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceContext {
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_empty()
    }

    /// From headers (gRPC metadata or HTTP) by name; malformed or oversized
    /// values are dropped.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let traceparent = get("traceparent").unwrap_or_default();
        if !valid_traceparent(traceparent) {
            return TraceContext::default();
        }
        let tracestate = get("tracestate")
            .filter(|s| s.len() <= MAX_TRACESTATE && s.is_ascii())
            .unwrap_or_default();
        TraceContext {
            traceparent: traceparent.to_string(),
            tracestate: tracestate.to_string(),
        }
    }

    /// The context of `span` (its own span id), empty when it is not
    /// exported.
    pub fn of(span: &tracing::Span) -> Self {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return TraceContext::default();
        }
        let mut carrier = Carrier::default();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        TraceContext {
            traceparent: carrier.0.remove("traceparent").unwrap_or_default(),
            tracestate: carrier.0.remove("tracestate").unwrap_or_default(),
        }
    }

    /// The OpenTelemetry context this names (a remote parent).
    pub fn otel(&self) -> opentelemetry::Context {
        let mut carrier = Carrier::default();
        carrier
            .0
            .insert("traceparent".into(), self.traceparent.clone());
        if !self.tracestate.is_empty() {
            carrier
                .0
                .insert("tracestate".into(), self.tracestate.clone());
        }
        TraceContextPropagator::new().extract(&carrier)
    }

    /// Make `span` a child of this context (nothing when empty).
    pub fn parent(&self, span: &tracing::Span) {
        if !self.is_empty() {
            let _ = span.set_parent(self.otel());
        }
    }

    /// This context with `fanout=replay:ID` as its tracestate's first
    /// entry: a replayed event keeps the original publish's context (its
    /// runs' attempts link to the story they re-tell) and says which replay
    /// re-sent it — the SDK records that as `fanout.replay.id`. W3C puts a
    /// system's own entry leftmost, replacing its earlier one; entries past
    /// the 32-entry / 512-character limits are dropped from the right.
    pub fn replayed_by(&self, replay_id: &str) -> Self {
        let mut state = format!("fanout=replay:{replay_id}");
        let others = self
            .tracestate
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with("fanout="));
        for entry in others.take(31) {
            if state.len() + 1 + entry.len() > MAX_TRACESTATE {
                break;
            }
            state.push(',');
            state.push_str(entry);
        }
        TraceContext {
            traceparent: self.traceparent.clone(),
            tracestate: state,
        }
    }

    /// Link `span` to this context (nothing when empty).
    pub fn link(&self, span: &tracing::Span) {
        if !self.is_empty() {
            let sc = self.otel().span().span_context().clone();
            if sc.is_valid() {
                span.add_link(sc);
            }
        }
    }
}

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, ids not all zero.
fn valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Where and as what spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC address (`http://127.0.0.1:4317`).
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
}

/// The exporter pipeline; flushes and shuts down when dropped.
pub struct Tracing {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Tracing {
    /// Export every finished span now (tests; shutdown does it too).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The OTLP exporter as a `tracing` layer: exports the engine's spans
/// ([`TARGET`]) and, in an SDK process, the spans handlers open inside
/// them. Install it next to the log layer; keep the [`Tracing`] alive.
pub fn otlp_layer<S>(
    config: &OtlpConfig,
) -> Result<(impl tracing_subscriber::Layer<S>, Tracing), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .build()
        .map_err(|e| format!("OTLP exporter for {}: {e}", config.endpoint))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch_config())
                .build(),
        )
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("fanout");
    // Only spans: log events stay in the log (they would become span
    // events of whatever span is current). Library internals are off.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("h2", tracing::level_filters::LevelFilter::OFF)
        .with_target("hyper", tracing::level_filters::LevelFilter::OFF)
        .with_target("tonic", tracing::level_filters::LevelFilter::OFF)
        .with_target("tower", tracing::level_filters::LevelFilter::OFF)
        .with_target("sqlx", tracing::level_filters::LevelFilter::OFF)
        .with_target("opentelemetry", tracing::level_filters::LevelFilter::OFF);
    // No code location, thread or busy/idle attributes: seven attributes
    // per span nobody reads on a messaging span, each allocated, encoded
    // and shipped for every publish and attempt.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter);
    Ok((layer, Tracing { provider }))
}

/// The batch exporter's queue and batch sizes: the `OTEL_BSP_*` variables
/// when set, else a queue of [`QUEUE`] spans sent [`BATCH`] at a time. The
/// specification's defaults (2,048 and 512) drop spans under a burst of
/// publishes — a fan-out makes several spans per publish — and each export
/// call has a fixed cost, so fewer, larger ones keep up with less work.
fn batch_config() -> opentelemetry_sdk::trace::BatchConfig {
    const QUEUE: usize = 16_384;
    const BATCH: usize = 2_048;
    let mut b = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        b = b.with_max_queue_size(QUEUE);
    }
    if std::env::var_os("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_none() {
        b = b.with_max_export_batch_size(BATCH);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_puts_its_id_first_in_the_tracestate() {
        let original = TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: "congo=t61, fanout=replay:old".into(),
        };
        let replayed = original.replayed_by("r-2");
        assert_eq!(replayed.traceparent, original.traceparent);
        assert_eq!(replayed.tracestate, "fanout=replay:r-2,congo=t61");
        let long = TraceContext {
            traceparent: String::new(),
            tracestate: vec!["k=vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"; 40].join(","),
        };
        let state = long.replayed_by("r").tracestate;
        assert!(state.len() <= MAX_TRACESTATE && state.starts_with("fanout=replay:r,k="));
        assert!(state.split(',').count() <= 32);
    }

    #[test]
    fn only_well_formed_traceparents_are_kept() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let get = |v: &'static str| move |k: &str| (k == "traceparent").then_some(v);
        assert_eq!(TraceContext::from_headers(get(ok)).traceparent, ok);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::from_headers(get(bad)).is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_context_round_trips_through_otel() {
        let tc = TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: String::new(),
        };
        let cx = tc.otel();
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
    }
}
