//! W3C trace context in and out of the SDK: publishes carry the caller's
//! current span (`traceparent` metadata), and each attempt runs inside a
//! `process {event}` span (CONSUMER, messaging semantic conventions) linked
//! to the event's creation context. Spans go to whatever `tracing`
//! subscriber the process installed; with `tracing-opentelemetry` in it
//! they are exported, and the spans a handler opens are their children.
//! With none, nothing is recorded.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of the SDK's spans (as the engine's).
pub(crate) const TARGET: &str = "fanout::otel";

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Put the current span's context on an outgoing request (nothing when
/// the current span is not exported).
pub(crate) fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut Metadata(metadata));
    }
}

struct One<'a>(&'a str, &'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0).filter(|s| !s.is_empty()),
            "tracestate" => Some(self.1).filter(|s| !s.is_empty()),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Link `span` to the context `traceparent` names (nothing when empty or
/// malformed).
pub(crate) fn link(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() || span.is_disabled() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&One(traceparent, tracestate));
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// `span`'s own `traceparent`, "" when it is not exported.
pub(crate) fn traceparent(span: &tracing::Span) -> String {
    if span.is_disabled() {
        return String::new();
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return String::new();
    }
    // As the W3C propagator writes it (version 00, the `sampled` flag).
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        (sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED).to_u8()
    )
}

/// The replay job that re-sent this run's event, from the W3C `tracestate`
/// entry the engine adds to a replayed event's context (`fanout=replay:ID`;
/// tracestate is where a system puts its own trace data).
pub(crate) fn replay_id(tracestate: &str) -> Option<&str> {
    tracestate
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("fanout="))
        .find_map(|value| value.strip_prefix("replay:"))
        .filter(|id| !id.is_empty())
}

/// Link a resumed attempt's span to the waitpoint it waited on: the
/// context of the publish whose runs the waitpoint gathered (the span the
/// children's attempts link to), carrying `fanout.waitpoint.id`.
pub(crate) fn link_waitpoint(span: &tracing::Span, journal: &serde_json::Value) {
    let (Some(traceparent), Some(id)) = (
        journal["traceparent"].as_str(),
        journal["waitpoint_id"].as_str(),
    ) else {
        return;
    };
    if span.is_disabled() {
        return;
    }
    let tracestate = journal["tracestate"].as_str().unwrap_or_default();
    let cx = TraceContextPropagator::new().extract(&One(traceparent, tracestate));
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link_with_attributes(
            sc,
            vec![opentelemetry::KeyValue::new(
                "fanout.waitpoint.id",
                id.to_string(),
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_replay_id_is_read_from_the_fanout_tracestate_entry() {
        assert_eq!(super::replay_id("fanout=replay:r1,congo=t61"), Some("r1"));
        assert_eq!(super::replay_id("congo=t61, fanout=replay:r2"), Some("r2"));
        assert_eq!(super::replay_id("congo=t61"), None);
        assert_eq!(super::replay_id("fanout=other"), None);
        assert_eq!(super::replay_id(""), None);
    }
}
