//! The engine's own spans — `send {event}` for a publish, `complete` for
//! recording an attempt's result (with the retry or dead letter it leads
//! to), `process {event}` for a webhook delivery, `complete waitpoint` for
//! a token completed from outside — made with the OpenTelemetry API directly,
//! not as `tracing` spans: nothing runs inside them that opens spans of
//! its own, so the `tracing` registry, its per-span extensions and field
//! visitors would be pure cost, and constant attributes (`messaging.system
//! = "fanout"`) stay static strings instead of one allocation each.
//!
//! With no exporter installed ([`install`] not called) every constructor
//! returns an empty [`Span`] after one atomic load: tracing off costs
//! nothing measurable.

use super::TraceContext;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SdkTracer;
use std::borrow::Cow;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

// Process-wide, as the `tracing` subscriber the exporter's layer joins:
// every engine in a process exports through the one installed tracer.
static ON: AtomicBool = AtomicBool::new(false);
static TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);

/// Export the engine's spans through `tracer` (the OTLP exporter's).
pub(super) fn install(tracer: Option<SdkTracer>) {
    let on = tracer.is_some();
    if let Ok(mut t) = TRACER.write() {
        *t = tracer;
    }
    ON.store(on, Ordering::Release);
}

/// Whether the engine's spans are exported (worth keeping context for).
pub fn enabled() -> bool {
    ON.load(Ordering::Acquire)
}

fn tracer() -> Option<SdkTracer> {
    if !ON.load(Ordering::Acquire) {
        return None;
    }
    TRACER.read().ok()?.clone()
}

/// What a webhook delivery span names.
pub struct Delivery<'a> {
    pub event: &'a str,
    pub event_id: &'a str,
    pub subscription: &'a str,
    pub run_id: &'a str,
    pub attempt: u32,
    pub url: &'a str,
}

/// One of the engine's spans; ends when dropped. Empty (every method a
/// no-op) when tracing is off.
#[derive(Debug, Default)]
pub struct Span(Option<opentelemetry_sdk::trace::Span>);

impl Span {
    fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &TraceContext,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        let Some(tracer) = tracer() else {
            return Span(None);
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes())
            .start_with_context(&tracer, &parent.otel());
        Span(Some(span))
    }

    /// A publish (PRODUCER, messaging semantic conventions): the event's
    /// creation context, a child of the publisher's `parent` when it sent
    /// one. Its [`context`](Self::context) is stored with the event.
    pub fn send(ns: &str, event: &str, parent: &TraceContext) -> Span {
        Span::start(format!("send {event}"), SpanKind::Producer, parent, || {
            vec![
                KeyValue::new("messaging.system", "fanout"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", event.to_string()),
                KeyValue::new("fanout.namespace", ns.to_string()),
            ]
        })
    }

    /// Recording one attempt's result (and the retry or dead letter it
    /// leads to), a child of the attempt's span (`parent`), whose run,
    /// attempt and outcome it does not repeat — unless the attempt sent no
    /// span and `parent` is the event's creation context: then `named`
    /// (run id, attempt, whether it succeeded) says which attempt it was.
    pub fn complete(parent: &TraceContext, named: Option<(&str, u32, bool)>) -> Span {
        Span::start("complete", SpanKind::Internal, parent, || match named {
            Some((run_id, attempt, ok)) => vec![
                KeyValue::new("fanout.run.id", run_id.to_string()),
                KeyValue::new("fanout.attempt", i64::from(attempt)),
                KeyValue::new("fanout.outcome", if ok { "ok" } else { "failed" }),
            ],
            None => Vec::with_capacity(2),
        })
    }

    /// One webhook delivery attempt: the engine processing a run for an
    /// HTTP subscriber (CONSUMER, as an SDK worker's `process` span), a
    /// child of the event's creation context, with the POST's HTTP client
    /// attributes. The receiver gets this span as its `traceparent`.
    pub fn deliver(d: &Delivery<'_>, parent: &TraceContext) -> Span {
        Span::start(
            format!("process {}", d.event),
            SpanKind::Consumer,
            parent,
            || {
                let mut url = reqwest::Url::parse(d.url).ok();
                let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string));
                if let Some(u) = &mut url {
                    // A query may carry a token: kept out, as the HTTP
                    // conventions ask of credentials.
                    u.set_query(None);
                    u.set_fragment(None);
                }
                let mut kv = vec![
                    KeyValue::new("messaging.system", "fanout"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.destination.name", d.event.to_string()),
                    KeyValue::new(
                        "messaging.destination.subscription.name",
                        d.subscription.to_string(),
                    ),
                    KeyValue::new("messaging.message.id", d.event_id.to_string()),
                    KeyValue::new("fanout.run.id", d.run_id.to_string()),
                    KeyValue::new("fanout.attempt", i64::from(d.attempt)),
                    KeyValue::new("http.request.method", "POST"),
                ];
                if let Some(u) = url {
                    kv.push(KeyValue::new("url.full", u.to_string()));
                }
                if let Some(h) = host {
                    kv.push(KeyValue::new("server.address", h));
                }
                kv
            },
        )
    }

    /// A waitpoint completed from outside (a token), a child of the
    /// completer's context when it sent one; the run it resumes is set as
    /// `fanout.run.id` once known.
    pub fn waitpoint_completed(id: &str, kind: &'static str, parent: &TraceContext) -> Span {
        Span::start("complete waitpoint", SpanKind::Internal, parent, || {
            vec![
                KeyValue::new("fanout.waitpoint.id", id.to_string()),
                KeyValue::new("fanout.waitpoint.kind", kind),
            ]
        })
    }

    /// The W3C context naming this span, empty when tracing is off.
    pub fn context(&self) -> TraceContext {
        match &self.0 {
            Some(s) => TraceContext::of(s.span_context()),
            None => TraceContext::default(),
        }
    }

    /// Whether anything is recorded (attributes worth computing): false
    /// when tracing is off or the sampler dropped this span.
    pub fn is_recording(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_recording())
    }

    /// Set an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Mark the span failed with `error.type` (a low-cardinality class, as
    /// the semantic conventions ask).
    pub fn fail(&mut self, error_type: impl Into<Value>) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new("error.type", error_type));
            s.set_status(Status::error(""));
        }
    }
}
