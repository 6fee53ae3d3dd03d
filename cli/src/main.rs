//! `fanout`: run the engine (`dev`, `serve`, `migrate`) and talk to it
//! (`events`, `publish`, `runs`) over gRPC.

mod client_cmds;
mod ctx;
mod keys_cmds;
mod replay_cmds;
mod server_cmds;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc: glibc malloc was ~19% of the engine process's CPU in a
/// throughput profile (many small, short-lived buffers per run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fanout",
    version,
    about = "Durable event fan-out: define, subscribe, publish"
)]
struct Cli {
    /// Engine gRPC URL for client commands.
    #[arg(
        long,
        global = true,
        env = "FANOUT_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// Namespace for client commands (default: the API key's own, else
    /// `default`). `keys create`: the namespace the key is bound to.
    #[arg(long, global = true, env = "FANOUT_NAMESPACE")]
    namespace: Option<String>,
    /// API key for client commands (`fo_…`; `fanout keys create`).
    #[arg(long, global = true, env = "FANOUT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// For https:// servers: trust this CA (PEM file) instead of the
    /// system's roots.
    #[arg(long, global = true, env = "FANOUT_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// For engines that ask for client certificates: this certificate and
    /// key (PEM files).
    #[arg(
        long,
        global = true,
        env = "FANOUT_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<std::path::PathBuf>,
    #[arg(
        long,
        global = true,
        env = "FANOUT_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    /// Log level when no RUST_LOG is set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Log lines as `text` (for people) or `json` (one object per line, for
    /// log shippers).
    #[arg(
        long,
        global = true,
        env = "FANOUT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (`dev`, `serve`);
    /// off when unset. `OTEL_SERVICE_NAME` names the service (`fanout`).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine with the embedded backends (SQLite, in-process limiter, local archive).
    Dev(server_cmds::DevArgs),
    /// Run the engine on PostgreSQL, Redis and ClickHouse.
    Serve(server_cmds::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(server_cmds::MigrateArgs),
    /// Define, list and show events.
    #[command(subcommand)]
    Events(client_cmds::EventsCmd),
    /// Publish an event: PAYLOAD is JSON text or @file.
    Publish(client_cmds::PublishArgs),
    /// List and inspect runs.
    #[command(subcommand)]
    Runs(client_cmds::RunsCmd),
    /// The dead-letter queue: list, show, retry, discard.
    #[command(subcommand)]
    Dlq(client_cmds::DlqCmd),
    /// Subscriptions: tasks' and HTTP subscribers (create, update, delete, rotate-secret), pause, resume.
    #[command(subcommand)]
    Subscriptions(client_cmds::SubscriptionsCmd),
    /// Content filters.
    #[command(subcommand)]
    Filter(client_cmds::FilterCmd),
    /// Wait for a waitpoint (e.g. after `publish --wait` was interrupted).
    Wait(client_cmds::WaitArgs),
    /// Replay archived events through today's subscriptions (a durable job).
    Replay(replay_cmds::ReplayCmd),
    /// Waitpoints: show, create a token, complete a token.
    #[command(subcommand)]
    Waitpoint(client_cmds::WaitpointCmd),
    /// API keys: create, list, revoke (through the engine, or --database-url).
    #[command(subcommand)]
    Keys(keys_cmds::KeysCmd),
    /// The audit log: every mutation and who made it.
    #[command(subcommand)]
    Audit(keys_cmds::AuditCmd),
    /// The operator console: `dashboard login` prints a login link.
    #[command(subcommand)]
    Dashboard(keys_cmds::DashboardCmd),
}

/// How the engine writes its log.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The engine's log (to stderr) and, with an OTLP endpoint, its trace
/// exporter: each layer filters for itself, so the log never shows the
/// exporter's spans and, with no exporter, nothing records them. The
/// returned guard flushes the exporter when dropped.
fn init_telemetry(
    level: &str,
    format: LogFormat,
    otlp_endpoint: Option<String>,
) -> Result<Option<fanout_engine::telemetry::Tracing>, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{Layer as _, fmt};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},h2=warn,hyper=warn,tower=warn,sqlx=warn"
        ))
    });
    let filter = filter.add_directive(
        format!("{}=off", fanout_engine::telemetry::TARGET)
            .parse()
            .map_err(|e| format!("log filter: {e}"))?,
    );
    let log = match format {
        // Colour only for a person at a terminal: escape codes in a file or
        // a log shipper's input are noise.
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let (otlp, guard) = match otlp_endpoint.filter(|e| !e.is_empty()) {
        Some(endpoint) => {
            let config = fanout_engine::telemetry::OtlpConfig {
                endpoint,
                service_name: std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "fanout".into()),
                exporter: fanout_engine::telemetry::OtlpExporter::Auto,
            };
            let (layer, guard) = fanout_engine::telemetry::otlp_layer(&config)?;
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(otlp)
        .try_init();
    Ok(guard)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Dev(a) => match init_telemetry(&cli.log_level, cli.log_format, cli.otlp_endpoint) {
            Ok(_guard) => server_cmds::dev(a).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Serve(a) => match init_telemetry(&cli.log_level, cli.log_format, cli.otlp_endpoint) {
            Ok(_guard) => server_cmds::serve(a).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Migrate(a) => server_cmds::migrate(a).await,
        // Evaluated locally with the engine's own matcher: no server needed.
        Cmd::Filter(c) => client_cmds::filter(c),
        other => {
            let ctx = ctx::Ctx {
                server: cli.server,
                namespace: cli.namespace,
                api_key: cli.api_key,
                ca_cert: cli.ca_cert,
                client_identity: cli.client_cert.zip(cli.client_key),
            };
            match other {
                Cmd::Events(c) => client_cmds::events(&ctx, c).await,
                Cmd::Publish(a) => client_cmds::publish(&ctx, a).await,
                Cmd::Runs(c) => client_cmds::runs(&ctx, c).await,
                Cmd::Subscriptions(c) => client_cmds::subscriptions(&ctx, c).await,
                Cmd::Dlq(c) => client_cmds::dlq(&ctx, c).await,
                Cmd::Wait(a) => client_cmds::wait(&ctx, a).await,
                Cmd::Replay(c) => replay_cmds::replay(&ctx, c).await,
                Cmd::Waitpoint(c) => client_cmds::waitpoint(&ctx, c).await,
                Cmd::Keys(c) => keys_cmds::keys(&ctx, c).await,
                Cmd::Audit(c) => keys_cmds::audit(&ctx, c).await,
                Cmd::Dashboard(c) => keys_cmds::dashboard(&ctx, c).await,
                _ => unreachable!("server commands handled above"),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
