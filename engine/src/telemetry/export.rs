//! The OTLP exporter: one tracer provider shared by the engine's own
//! spans ([`super::span`]) and, through a `tracing` layer, the spans a
//! process opens inside them (an SDK worker's `process` spans and its
//! handlers' spans when it shares the process). A plain `http://`
//! collector gets the lean exporter ([`super::otlp`]); anything else
//! configured through `OTEL_EXPORTER_OTLP_*` gets `opentelemetry-otlp`'s.

use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Where and as what spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC address (`http://127.0.0.1:4317`).
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which exporter sends the spans.
    pub exporter: OtlpExporter,
}

/// The exporter behind [`otlp_layer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpExporter {
    /// The lean exporter ([`super::otlp`]) for a plain `http://` collector
    /// with no other `OTEL_EXPORTER_OTLP_*` setting, else the library's.
    #[default]
    Auto,
    /// `opentelemetry-otlp`'s exporter whatever the configuration.
    Library,
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
        super::span::install(None);
        let _ = self.provider.shutdown();
    }
}

/// The OTLP exporter: turns on the engine's own spans and returns a
/// `tracing` layer exporting the `tracing` spans of this process (target
/// [`super::TARGET`]: an SDK worker's `process` spans, and the spans its
/// handlers open inside them). Install it next to the log layer; keep the
/// [`Tracing`] alive.
pub fn otlp_layer<S>(
    config: &OtlpConfig,
) -> Result<(impl tracing_subscriber::Layer<S>, Tracing), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;
    let builder = opentelemetry_sdk::trace::SdkTracerProvider::builder();
    let lean =
        config.exporter == OtlpExporter::Auto && super::otlp::plain_endpoint(&config.endpoint);
    let builder = if lean {
        builder.with_span_processor(batch(super::otlp::Exporter::new(&config.endpoint)?))
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .build()
            .map_err(|e| format!("OTLP exporter for {}: {e}", config.endpoint))?;
        builder.with_span_processor(batch(exporter))
    };
    let provider = builder
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("fanout");
    super::span::install(Some(tracer.clone()));
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
    // No code location, thread, target or busy/idle attributes: eight
    // attributes per span nobody reads on a messaging span, each
    // allocated, encoded and shipped for every attempt.
    // No context activation: a span's OpenTelemetry context is made when
    // it ends (or when its context is asked for), not attached to the
    // thread on every poll of the future it instruments; parents come from
    // the `tracing` span tree, which every span here is part of.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_location(false)
        .with_target(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter);
    Ok((layer, Tracing { provider }))
}

/// Finished spans, queued and sent in batches by `exporter`.
fn batch<E: opentelemetry_sdk::trace::SpanExporter + 'static>(
    exporter: E,
) -> opentelemetry_sdk::trace::BatchSpanProcessor {
    opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch_config())
        .build()
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
