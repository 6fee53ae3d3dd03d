//! What observability costs: `--trace` exports every span (engine and
//! in-process workers) over OTLP to a collector in this process, which
//! counts and drops them; `--scrape-metrics-ms` reads `/metrics` on that
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

/// The exporter and its collector, for one process.
pub struct Tracing {
    spans: Counter,
    exporter: fanout_engine::telemetry::Tracing,
}

impl Tracing {
    /// Start a collector on a free port and export every span to it.
    pub async fn start() -> anyhow::Result<Tracing> {
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = Counter::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(spans.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let (layer, exporter) =
            fanout_engine::telemetry::otlp_layer(&fanout_engine::telemetry::OtlpConfig {
                endpoint: format!("http://{addr}"),
                service_name: "fanout-bench".into(),
            })
            .map_err(anyhow::Error::msg)?;
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
