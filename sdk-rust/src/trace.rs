//! W3C trace context in and out of the SDK: publishes carry the caller's
//! current span (`traceparent` metadata), and each attempt runs inside a
//! `process {event}` span (CONSUMER, messaging semantic conventions) linked
//! to the event's creation context. Spans go to whatever `tracing`
//! subscriber the process installed; with `tracing-opentelemetry` in it
//! they are exported, and the spans a handler opens are their children.
//! With none, nothing is recorded.

use fanout_proto::traceparent::TraceParent;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::str::FromStr;
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

/// The span a stored `traceparent`/`tracestate` pair names, read as the
/// W3C propagator reads a version-00 header (lowercase hex, only the
/// `sampled` flag kept) without building a header map and a `Context`
/// per attempt; `None` when empty or malformed (the reading shared with
/// the engine: `fanout_proto::traceparent`).
fn remote_span_context(traceparent: &str, tracestate: &str) -> Option<SpanContext> {
    let tp = TraceParent::parse(traceparent)?;
    let state = match tracestate {
        "" => TraceState::NONE,
        s => TraceState::from_str(s).unwrap_or_default(),
    };
    Some(SpanContext::new(
        TraceId::from(tp.trace_id),
        SpanId::from(tp.span_id),
        if tp.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        state,
    ))
}

/// Link `span` to the context `traceparent` names (nothing when empty or
/// malformed).
pub(crate) fn link(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() || span.is_disabled() {
        return;
    }
    if let Some(sc) = remote_span_context(traceparent, tracestate) {
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
    TraceParent {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        sampled: sc.is_sampled(),
    }
    .format()
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
    if let Some(sc) = remote_span_context(traceparent, tracestate) {
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
    fn a_stored_context_reads_as_the_w3c_propagator_reads_it() {
        use opentelemetry::propagation::{Extractor, TextMapPropagator};
        use opentelemetry::trace::TraceContextExt;
        struct Two<'a>(&'a str, &'a str);
        impl Extractor for Two<'_> {
            fn get(&self, key: &str) -> Option<&str> {
                match key {
                    "traceparent" => Some(self.0),
                    "tracestate" => Some(self.1).filter(|s| !s.is_empty()),
                    _ => None,
                }
            }
            fn keys(&self) -> Vec<&str> {
                vec!["traceparent", "tracestate"]
            }
        }
        let propagator = super::TraceContextPropagator::new();
        for (tp, ts) in [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                "congo=t61,rojo=1",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "not a state",
            ),
            ("", ""),
        ] {
            let expected = propagator.extract(&Two(tp, ts));
            let expected = expected.span().span_context().clone();
            match super::remote_span_context(tp, ts) {
                Some(sc) => assert_eq!(sc, expected, "{tp} {ts}"),
                None => assert!(!expected.is_valid(), "{tp} {ts}"),
            }
        }
    }

    #[test]
    fn the_replay_id_is_read_from_the_fanout_tracestate_entry() {
        assert_eq!(super::replay_id("fanout=replay:r1,congo=t61"), Some("r1"));
        assert_eq!(super::replay_id("congo=t61, fanout=replay:r2"), Some("r2"));
        assert_eq!(super::replay_id("congo=t61"), None);
        assert_eq!(super::replay_id("fanout=other"), None);
        assert_eq!(super::replay_id(""), None);
    }
}
