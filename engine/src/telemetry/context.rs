//! The W3C trace context stored with each event (`traceparent`,
//! `tracestate`): read from a publisher's headers, written by the `send`
//! span, re-tagged by a replay, and turned back into a parent or a link.

use fanout_proto::traceparent::TraceParent;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::str::FromStr;

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

    /// The context naming the span `sc` (its own span id), empty when
    /// it is not valid.
    pub fn of(sc: &SpanContext) -> Self {
        if !sc.is_valid() {
            return TraceContext::default();
        }
        TraceContext {
            traceparent: format_traceparent(sc),
            tracestate: sc.trace_state().header(),
        }
    }

    /// The span this names, as a remote span context (`None` when empty
    /// or malformed): read as the W3C propagator reads a version-00
    /// header (lowercase hex, only the `sampled` flag kept), straight from
    /// the two strings, with no header map or `Context` per span.
    pub fn span_context(&self) -> Option<SpanContext> {
        let tp = TraceParent::parse(&self.traceparent)?;
        let trace_state = if self.tracestate.is_empty() {
            TraceState::NONE
        } else {
            TraceState::from_str(&self.tracestate).unwrap_or_default()
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
            trace_state,
        ))
    }

    /// The OpenTelemetry context this names (a remote parent).
    pub fn otel(&self) -> opentelemetry::Context {
        match self.span_context() {
            Some(sc) => opentelemetry::Context::new().with_remote_span_context(sc),
            None => opentelemetry::Context::new(),
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
}

/// A span context as a W3C `traceparent` (version 00; of the flags only
/// `sampled` is defined), as the propagator writes it.
pub fn format_traceparent(sc: &SpanContext) -> String {
    TraceParent {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        sampled: sc.is_sampled(),
    }
    .format()
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
        assert_eq!(format_traceparent(&sc), tc.traceparent);
    }

    #[test]
    fn a_stored_context_reads_as_the_w3c_propagator_reads_it() {
        use opentelemetry::propagation::{Extractor, TextMapPropagator};
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
        let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        for (tp, ts) in [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                "congo=t61,rojo=1",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                "fanout=replay:r",
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
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "",
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
            ),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", ""),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "not a state",
            ),
            ("", ""),
        ] {
            let tc = TraceContext {
                traceparent: tp.into(),
                tracestate: ts.into(),
            };
            let expected = propagator.extract(&Two(tp, ts));
            let expected = expected.span().span_context().clone();
            let got = tc.span_context();
            assert_eq!(got.is_some(), expected.is_valid(), "{tp} {ts}");
            if let Some(sc) = got {
                assert_eq!(sc, expected, "{tp} {ts}");
            }
        }
    }
}
