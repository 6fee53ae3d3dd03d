//! `fanout-bench`: measure Fanout the same way every time.
//!
//! Starts the engine in-process on port 0 (SQLite in a temp dir, or
//! PostgreSQL in a fresh schema) unless `--server URL` points at one, runs
//! its workers in-process, and prints a summary (`--json` for one JSON
//! object). Scenarios are flag sets; see `--help` and BENCHMARKS.md.

mod console;
mod harness;
mod matching;
mod observe;
mod repeat;
mod scenarios;
mod stats;
mod webhooks;

use clap::{Parser, ValueEnum};

/// The same allocator as the `fanout` binary, so in-process figures match.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(name = "fanout-bench", about = "Fanout benchmarks")]
pub struct Args {
    /// Which measurement to run.
    #[arg(long, value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    /// Store backend of the in-process engine.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    /// PostgreSQL URL for --backend postgres.
    #[arg(
        long,
        env = "FANOUT_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub database_url: String,
    /// Use a running engine instead of starting one.
    #[arg(long)]
    pub server: Option<String>,
    /// With --server: the engine's process id, so the suspended scenario
    /// can report the engine's own memory (from /proc).
    #[arg(long, requires = "server")]
    pub engine_pid: Option<u32>,
    /// Redis URL for the rate-limiter scenario.
    #[arg(
        long,
        env = "FANOUT_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// ClickHouse URL for the replay scenario (local archive when absent).
    #[arg(long, env = "FANOUT_BENCH_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// Events to publish.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Subscribers per event.
    #[arg(long, default_value_t = 3)]
    pub subscribers: usize,
    /// Concurrent publishers (or concurrent waiters for scatter-gather).
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Worker concurrency (slots).
    #[arg(long, default_value_t = 512)]
    pub worker_concurrency: u32,
    /// Override the engine's publish/completion transactions in flight
    /// (`publish_concurrency`; in-process engine only).
    #[arg(long)]
    pub publish_concurrency: Option<usize>,
    /// Override how many completion transactions may be in flight at once
    /// (`complete_concurrency`; in-process engine only).
    #[arg(long)]
    pub complete_concurrency: Option<usize>,
    /// Override how long a woken worker session waits for publishes still
    /// committing before it claims (`claim_linger_us`; in-process engine only).
    #[arg(long)]
    pub claim_linger_us: Option<u64>,
    /// Export every span over OTLP to a collector in this process (the
    /// cost of tracing; the summary gains `spans_exported`).
    #[arg(long)]
    pub trace: bool,
    /// What the in-process collector of `--trace` does with each span.
    #[arg(long, value_enum, default_value_t = observe::Collector::Decode)]
    pub collector: observe::Collector,
    /// With `--trace`: export the engine's spans only, not the in-process
    /// workers' `process` spans (the engine's share of the cost).
    #[arg(long)]
    pub trace_engine_only: bool,
    /// With --trace: send spans through `opentelemetry-otlp`'s exporter
    /// instead of the lean one a plain collector address gets (A/B runs).
    #[arg(long, requires = "trace")]
    pub otlp_library: bool,
    /// Scrape the in-process engine's `/metrics` every this many ms during
    /// the run (the cost of a Prometheus server; the summary gains
    /// `metrics_scrapes`).
    #[arg(long)]
    pub scrape_metrics_ms: Option<u64>,
    /// Require API keys (every client sends the bootstrap admin key): the
    /// cost of authentication.
    #[arg(long)]
    pub auth: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run the scenario this many times, each in a fresh process, and print
    /// the median, smallest and largest of every figure with all the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub repeat: u16,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 1. N events × S subscribers, no-op handlers, first publish → last run completed.
    Throughput,
    /// 2. Sequential publishes on an idle engine: ack, → run start, → all runs done.
    Latency,
    /// 3. publish_and_wait with S subscribers: unloaded p50/p99, then completions/s at --publishers.
    Scatter,
    /// 4. Fan-out width 1, 10, 100, 1000 (with and without filters).
    Width,
    /// 5. --events parents suspended in ctx.publish_and_wait: process memory.
    Suspended,
    /// 6. Publish cost with a Redis rate limit vs none.
    Ratelimit,
    /// 7. Replay: events/s scanned and re-dispatched from the archive.
    Replay,
    /// 8. Routing cost per event with 100 and 10,000 filtered subscriptions, indexed vs every filter.
    Matching,
    /// 9. Console pages (/runs, /dlq, /log, …) answer times with --events × --subscribers runs stored.
    Console,
    /// 10. HTTP subscribers: deliveries/s to a local receiver, publish → POST received p50/p99.
    Webhooks,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.repeat > 1 {
        let summary = repeat::run(usize::from(args.repeat), &child_args())?;
        return print(&summary, args.json);
    }
    let tracing = if args.trace {
        let exporter = if args.otlp_library {
            fanout_engine::telemetry::OtlpExporter::Library
        } else {
            fanout_engine::telemetry::OtlpExporter::Auto
        };
        Some(observe::Tracing::start(args.collector, !args.trace_engine_only, exporter).await?)
    } else {
        None
    };
    let mut summary = match args.scenario {
        Scenario::Throughput => scenarios::throughput(&args).await?,
        Scenario::Latency => scenarios::latency(&args).await?,
        Scenario::Scatter => scenarios::scatter(&args).await?,
        Scenario::Width => scenarios::width(&args).await?,
        Scenario::Suspended => scenarios::suspended(&args).await?,
        Scenario::Ratelimit => scenarios::ratelimit(&args).await?,
        Scenario::Replay => scenarios::replay(&args).await?,
        Scenario::Matching => matching::run(args.events),
        Scenario::Console => console::run(&args).await?,
        Scenario::Webhooks => webhooks::run(&args).await?,
    };
    if let Some(t) = tracing {
        summary["spans_exported"] = t.spans().into();
    }
    if args.scrape_metrics_ms.is_some() {
        summary["metrics_scrapes"] = observe::SCRAPES
            .load(std::sync::atomic::Ordering::Relaxed)
            .into();
    }
    print(&summary, args.json)
}

fn print(summary: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        println!("{}", serde_json::to_string_pretty(summary)?);
    }
    Ok(())
}

/// This process's flags without `--repeat` and `--json` (each child is
/// given `--json`).
fn child_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in std::env::args().skip(1) {
        if skip_value {
            skip_value = false;
        } else if a == "--repeat" {
            skip_value = true;
        } else if !(a.starts_with("--repeat=") || a == "--json") {
            out.push(a);
        }
    }
    out
}
