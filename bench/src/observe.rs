//! What observability costs: `--trace` exports every span (engine and
//! in-process workers) over OTLP to a collector in this process, which
//! counts and drops them (`--collector decode` decodes each span as a real
//! collector does, its CPU counted against the run; `count` skips their
//! contents, so the figure is the exporting side's); `--scrape-metrics-ms` reads `/metrics` on that
//! period for the whole run, as a Prometheus server would.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// What the collector does with each export it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Collector {
    /// Decode every span fully (what a real collector pays), in this
    /// process: its CPU is counted against the bench.
    Decode,
    /// Count the spans and skip their contents: the bench then measures
    /// what the engine and workers pay, as with a collector elsewhere.
    Count,
}

/// `ExportTraceServiceRequest` down to the spans, each counted by its
/// length prefix and stepped over, never decoded: counting spans costs
/// almost nothing, so the bench's figure is the exporting side's.
mod skim {
    use prost::bytes::{Buf, BufMut};
    use prost::encoding::{DecodeContext, WireType, skip_field};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }
    /// `ScopeSpans`, of which only the number of `spans` (field 2) is kept.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct ScopeSpans {
        pub spans: usize,
    }
    impl prost::Message for ScopeSpans {
        fn encode_raw(&self, _: &mut impl BufMut) {}
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), prost::DecodeError> {
            // Skipping a length-delimited field reads its length and steps
            // over that many bytes (checked against the buffer).
            if tag == 2 && wire_type == WireType::LengthDelimited {
                self.spans += 1;
            }
            skip_field(wire_type, tag, buf, ctx)
        }
        fn encoded_len(&self) -> usize {
            0
        }
        fn clear(&mut self) {
            self.spans = 0;
        }
    }
}

/// The OTLP trace service over [`skim`]: the same wire protocol as
/// `TraceServiceServer`, a request type that only counts.
#[derive(Clone, Default)]
struct Skimmer(Counter);

impl tonic::server::NamedService for Skimmer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::server::UnaryService<skim::Request> for Skimmer {
    type Response = ExportTraceServiceResponse;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Self::Response>, tonic::Status>;
    fn call(&mut self, req: tonic::Request<skim::Request>) -> Self::Future {
        let n: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans)
            .sum();
        (self.0).0.fetch_add(n as u64, Ordering::Relaxed);
        Box::pin(async { Ok(tonic::Response::new(ExportTraceServiceResponse::default())) })
    }
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for Skimmer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(svc, req).await)
        })
    }
}

/// The exporter and its collector, for one process.
pub struct Tracing {
    spans: Counter,
    exporter: fanout_engine::telemetry::Tracing,
}

impl Tracing {
    /// Start a collector on a free port and export every span to it — or,
    /// with `workers` false, only the engine's: the in-process workers'
    /// `process` spans are not recorded, as when workers run elsewhere.
    pub async fn start(
        collector: Collector,
        workers: bool,
        exporter: fanout_engine::telemetry::OtlpExporter,
    ) -> anyhow::Result<Tracing> {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = Counter::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut server = tonic::transport::Server::builder();
        match collector {
            Collector::Decode => tokio::spawn(
                server
                    .add_service(TraceServiceServer::new(spans.clone()))
                    .serve_with_incoming(incoming),
            ),
            Collector::Count => tokio::spawn(
                server
                    .add_service(Skimmer(spans.clone()))
                    .serve_with_incoming(incoming),
            ),
        };
        let (layer, exporter) =
            fanout_engine::telemetry::otlp_layer(&fanout_engine::telemetry::OtlpConfig {
                endpoint: format!("http://{addr}"),
                service_name: "fanout-bench".into(),
                exporter,
            })
            .map_err(anyhow::Error::msg)?;
        // The workers' spans are left out by a second filter only when
        // asked: a filter function gives no level hint, so with it every
        // library's TRACE callsite (h2 opens spans per frame) becomes live
        // and is asked about — a cost the engine's own setup (and the CLI's)
        // does not have. The hint keeps those off.
        let engine_only = tracing_subscriber::filter::filter_fn(|m| {
            !(m.name() == "process" && m.target() == fanout_engine::telemetry::TARGET)
        })
        .with_max_level_hint(tracing::Level::INFO);
        let layer = if workers {
            layer.boxed()
        } else {
            layer.with_filter(engine_only).boxed()
        };
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
        Ok(Tracing { spans, exporter })
    }

    /// Spans the collector received, after exporting what is pending.
    pub fn spans(&self) -> u64 {
        self.exporter.flush();
        self.spans.0.load(Ordering::Relaxed)
    }
}

/// Successful scrapes in this process.
pub static SCRAPES: AtomicU64 = AtomicU64::new(0);

/// GET `/metrics` at `addr` every `period` until dropped.
pub struct Scraper {
    task: tokio::task::JoinHandle<()>,
}

impl Scraper {
    pub fn start(addr: std::net::SocketAddr, period: Duration) -> Scraper {
        let count = &SCRAPES;
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let req =
                    format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                let mut body = Vec::new();
                if s.write_all(req.as_bytes()).await.is_ok()
                    && s.read_to_end(&mut body).await.is_ok()
                    && body.starts_with(b"HTTP/1.1 200")
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Scraper { task }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
