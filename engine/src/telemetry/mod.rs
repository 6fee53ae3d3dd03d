//! Traces: the engine's OpenTelemetry spans and the W3C trace context that
//! travels with an event.
//!
//! A publish's `send {event}` span is the event's *creation context*: its
//! `traceparent` is stored with the event ([`TraceContext`]) and sent with
//! every run, and each attempt's `process {event}` span (made by the SDK
//! worker around the handler, or by the engine around a webhook delivery)
//! links to it. The engine's own spans ([`span`]) use the OpenTelemetry API
//! directly; spans of a process that shares the exporter — an in-process
//! SDK worker's and its handlers' — are `tracing` spans with target
//! [`TARGET`] and `otel.*` fields, exported by [`otlp_layer`]. The log
//! output ignores that target. With no exporter installed nothing is
//! recorded: tracing off costs nothing measurable.
//!
//! `context.rs` is the stored context, `span.rs` the engine's spans,
//! `export.rs` the OTLP pipeline.

mod context;
mod export;
mod otlp;
pub mod span;

pub use context::{TraceContext, format_traceparent};
pub use export::{OtlpConfig, OtlpExporter, Tracing, otlp_layer};
pub use span::Span;

/// The `tracing` target of every `tracing` span meant for the exporter.
pub const TARGET: &str = "fanout::otel";
