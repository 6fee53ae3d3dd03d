//! The OTLP/gRPC span exporter for a plain collector address: each batch
//! is written straight from the SDK's `SpanData` into the protobuf wire
//! format (`ExportTraceServiceRequest`) in one buffer and sent as is.
//!
//! Why not `opentelemetry-otlp`'s exporter for everything: it first
//! converts every span into `opentelemetry-proto`'s message structs (a
//! `String` or `Vec` per id, name, key and value) and prost then computes
//! each nested message's length once per enclosing level — six levels
//! from the request down to an attribute's value. Measured with callgrind
//! (BENCHMARKS.md, tenth round), that conversion and encoding were about
//! half of what exporting a span cost the engine. Here ([`wire`]) every
//! length is measured first and each byte written once, into one buffer
//! of the exact size, with no allocation per span.
//!
//! `opentelemetry-otlp` stays the exporter whenever the configuration
//! asks for what this one does not do — TLS, headers, compression, an
//! HTTP protocol (the `OTEL_EXPORTER_OTLP_*` variables): see
//! [`plain_endpoint`]. A test in [`wire`] holds the encoding to the
//! library's: every field of a span decodes to what `opentelemetry-proto`
//! produces for it.

mod wire;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::time::Duration;

/// The OTLP trace service's export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Variables that ask for what only `opentelemetry-otlp` does; any of them
/// set (generic or traces-specific) selects it.
const LIBRARY_VARIABLES: [&str; 14] = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
];

/// Whether `endpoint` is a plain-text gRPC collector address with nothing
/// else configured — the case this exporter serves.
pub(super) fn plain_endpoint(endpoint: &str) -> bool {
    endpoint.starts_with("http://")
        && LIBRARY_VARIABLES
            .iter()
            .all(|v| std::env::var_os(v).is_none_or(|s| s.is_empty()))
}

/// The export deadline: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else the specification's
/// 10 seconds.
fn timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse::<u64>().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// Sends each batch as one pre-encoded `ExportTraceServiceRequest`.
#[derive(Debug)]
pub(super) struct Exporter {
    channel: tonic::transport::Channel,
    /// The encoded `Resource` message (set by the provider before any
    /// export).
    resource: Vec<u8>,
    resource_schema: String,
}

impl Exporter {
    /// An exporter for `endpoint` (`http://host:port`); connects lazily, so
    /// a collector that is down costs failed exports, never a start. Must
    /// be called inside a Tokio runtime (the channel's connection runs on
    /// it; exports are driven from the batch processor's thread).
    pub(super) fn new(endpoint: &str) -> Result<Exporter, String> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| format!("OTLP endpoint {endpoint}: {e}"))?
            .timeout(timeout())
            .user_agent(concat!(
                "fanout/",
                env!("CARGO_PKG_VERSION"),
                " otlp-exporter"
            ))
            .map_err(|e| format!("OTLP user agent: {e}"))?
            .connect_lazy();
        Ok(Exporter {
            channel,
            resource: Vec::new(),
            resource_schema: String::new(),
        })
    }
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let body = wire::request(&batch, &self.resource, &self.resource_schema);
        drop(batch);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| OTelSdkError::InternalFailure(format!("OTLP collector: {e}")))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
        grpc.unary::<_, (), _>(tonic::Request::new(body), path, Raw)
            .await
            .map(drop)
            .map_err(|s| {
                OTelSdkError::InternalFailure(format!(
                    "OTLP collector refused {n} spans: {} {}",
                    s.code(),
                    s.message()
                ))
            })
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = wire::resource(resource);
        self.resource_schema = resource.schema_url().unwrap_or_default().to_string();
    }
}

/// Sends the encoded request as the message body; ignores the response's
/// body (a `partial_success` is advisory).
#[derive(Clone, Copy)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        bytes::Buf::advance(src, n);
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_endpoint_takes_the_lean_exporter() {
        assert!(!plain_endpoint("https://collector:4317"));
        assert!(!plain_endpoint("collector:4317"));
        // (The `OTEL_EXPORTER_OTLP_*` variables are not set in tests.)
        if LIBRARY_VARIABLES
            .iter()
            .all(|v| std::env::var_os(v).is_none())
        {
            assert!(plain_endpoint("http://127.0.0.1:4317"));
        }
    }
}
