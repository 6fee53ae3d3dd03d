//! An OTLP trace collector in the test process: a tonic server built from
//! `opentelemetry-proto` that keeps every span it receives and the
//! `user-agent` each export came with (which exporter sent it).

use crate::eventually;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    agents: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let agent = req
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if let Ok(mut agents) = self.agents.lock() {
            agents.push(agent);
        }
        let mut all = self
            .spans
            .lock()
            .map_err(|_| tonic::Status::internal("collector lock"))?;
        for rs in req.into_inner().resource_spans {
            for ss in rs.scope_spans {
                all.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A collector listening on a free local port.
pub struct Collector {
    received: Received,
    addr: std::net::SocketAddr,
}

impl Collector {
    #[allow(clippy::expect_used)]
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a collector port");
        let addr = listener.local_addr().expect("collector address");
        let received = Received::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(received.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Collector { received, addr }
    }

    /// Its OTLP/gRPC address, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `user-agent` of every export received so far.
    #[allow(clippy::expect_used)]
    pub fn user_agents(&self) -> Vec<String> {
        self.received.agents.lock().expect("collector lock").clone()
    }

    /// Every span received so far, once `done` holds of them: the
    /// exporter is flushed before each look (within 20 s).
    #[allow(clippy::expect_used)]
    pub async fn spans_when(
        &self,
        exporter: &fanout_engine::telemetry::Tracing,
        what: &str,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        eventually(Duration::from_secs(20), what, || {
            exporter.flush();
            let spans = self.received.spans.lock().expect("collector lock").clone();
            let ok = done(&spans);
            async move { ok.then_some(spans) }
        })
        .await
    }
}

/// A span attribute as text (strings as they are, numbers and booleans
/// formatted), `None` when absent.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            other => Some(format!("{other:?}")),
        })
}
