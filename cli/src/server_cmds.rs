//! Commands that run the engine in this process: `dev`, `serve`, `migrate`.
//!
//! `serve` loads the engine's one `Config` (`fanout_engine::config::load`):
//! defaults → `--config FILE` (TOML) → `FANOUT_*` environment → flags, and
//! `--dump-config` prints the config that would run.

use anyhow::{Context, Result};
use clap::Args;
use fanout_engine::config::{self, ArchiveConfig, Config, LimiterConfig, StoreConfig};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct DevArgs {
    /// Directory for the SQLite database and the local archive.
    #[arg(long, default_value = ".fanout")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7070")]
    grpc_addr: String,
    #[arg(long, default_value = "127.0.0.1:7071")]
    http_addr: String,
    #[command(flatten)]
    dashboard: DashboardArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
    /// Require an API key on every call, as `serve` does (the first start
    /// prints an admin key).
    #[arg(long)]
    auth: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS flags (`dev` and `serve`): PEM files.
#[derive(Args, Serialize)]
pub struct TlsArgs {
    /// Serve gRPC and HTTP over TLS with this certificate chain.
    #[arg(long, requires = "tls_key")]
    #[serde(skip)]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key.
    #[arg(long, requires = "tls_cert")]
    #[serde(skip)]
    tls_key: Option<PathBuf>,
    /// gRPC clients must present a certificate signed by this CA (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    #[serde(skip)]
    tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The flags as a `tls` config layer (only what was given).
    fn layer(&self) -> serde_json::Value {
        let mut t = serde_json::Map::new();
        for (k, v) in [
            ("cert", &self.tls_cert),
            ("key", &self.tls_key),
            ("client_ca", &self.tls_client_ca),
        ] {
            if let Some(p) = v {
                t.insert(k.into(), p.display().to_string().into());
            }
        }
        serde_json::Value::Object(t)
    }
}

/// HTTP subscribers' flags (`dev` and `serve`).
#[derive(Args, Serialize)]
pub struct WebhookArgs {
    /// Deliver webhooks to private, loopback and link-local addresses too
    /// (refused by default, checked on the resolved address; `dev` allows
    /// loopback).
    #[arg(long)]
    #[serde(skip)]
    allow_private_endpoints: bool,
}

impl WebhookArgs {
    /// The flags as a `webhooks` config layer; `dev` adds loopback.
    fn layer(&self, dev: bool) -> serde_json::Value {
        let mut w = serde_json::Map::new();
        if self.allow_private_endpoints {
            w.insert("allow_private".into(), true.into());
        }
        if dev {
            w.insert("allow_loopback".into(), true.into());
        }
        serde_json::Value::Object(w)
    }
}

/// The console's flags (`dev` and `serve`).
#[derive(Args, Serialize)]
pub struct DashboardArgs {
    /// Serve the operator console on the HTTP listener (on | off).
    #[arg(long = "dashboard", value_name = "on|off", value_parser = ["on", "off"])]
    #[serde(skip)]
    dashboard: Option<String>,
    /// Serve the console under this path prefix (behind a proxy), e.g. /fanout.
    #[arg(long)]
    #[serde(skip)]
    base_path: Option<String>,
}

impl DashboardArgs {
    /// The flags as a `dashboard` config layer (only what was given).
    fn layer(&self) -> serde_json::Value {
        let mut d = serde_json::Map::new();
        if let Some(on) = &self.dashboard {
            d.insert("enabled".into(), (on == "on").into());
        }
        if let Some(b) = &self.base_path {
            d.insert("base_path".into(), b.clone().into());
        }
        serde_json::Value::Object(d)
    }
}

/// Flags of `serve`; each one, when given, overrides file and environment.
#[derive(Args, Serialize)]
pub struct ServeArgs {
    /// TOML file with settings (same keys as --dump-config prints).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    dump_config: bool,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    clickhouse_url: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_addr: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_addr: Option<String>,
    /// Directory for the local archive when no ClickHouse is configured.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    dashboard: DashboardArgs,
    #[command(flatten)]
    #[serde(skip)]
    webhooks: WebhookArgs,
    /// `required` (the default: every call needs an API key) or `disabled`
    /// (anyone who reaches the ports may do anything; logged at start).
    #[arg(long, value_name = "required|disabled", value_parser = ["required", "disabled"])]
    #[serde(skip)]
    auth: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    tls: TlsArgs,
}

/// `serve`'s backends, said once at start: what is embedded and why.
fn explain(config: &Config) -> Result<()> {
    if matches!(config.store, StoreConfig::Sqlite { .. }) {
        anyhow::bail!(
            "serve needs a PostgreSQL URL: --database-url, FANOUT_DATABASE_URL, database_url or [store] in --config \
             (for the embedded engine run `fanout dev`)"
        );
    }
    if let ArchiveConfig::Local { path } = &config.archive {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        tracing::warn!(
            path = %shown.display(),
            "no clickhouse_url: archiving to a local file (set data_dir or --data-dir to move it)"
        );
        println!("archive: {} (local; no clickhouse_url)", shown.display());
    }
    if config.limiter == LimiterConfig::Memory {
        tracing::warn!("no redis_url: rate limits are counted per engine process");
    }
    Ok(())
}

async fn serve_config(config: Config, grpc: &str, http: &str) -> Result<ExitCode> {
    let mut listeners = fanout_engine::Listeners::bind(grpc, http)
        .await
        .with_context(|| format!("cannot listen on {grpc} / {http}"))?;
    let console = config.dashboard.clone();
    if console.enabled {
        let mut opts =
            fanout_dashboard::Options::new(&console.base_path, listeners.http.local_addr()?);
        opts.secure = config.tls.enabled();
        if opts.exposed && config.auth.mode == config::AuthMode::Disabled {
            tracing::warn!(http = %http, "auth is disabled and the console is reachable from other hosts");
        }
        listeners = listeners.mount(fanout_dashboard::mount(opts));
    }
    let stop = terminate();
    let auth = config.auth.mode;
    let scheme = if config.tls.enabled() {
        "https"
    } else {
        "http"
    };
    let running = fanout_engine::spawn(config, listeners).await?;
    if auth == config::AuthMode::Required
        && let Some(key) = running
            .engine()
            .bootstrap_key()
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap key: {e}"))?
    {
        println!(
            "first start on an empty store: an admin key for every namespace (shown once, store it now):"
        );
        println!("  {key}");
        println!(
            "  use it as FANOUT_API_KEY or --api-key; `fanout keys create` makes narrower keys, `fanout keys revoke bootstrap-admin` retires it"
        );
    }
    println!("fanout engine ready");
    println!("  gRPC: {scheme}://{}", running.grpc_addr());
    println!("  HTTP: {scheme}://{}  (GET /healthz)", running.http_addr());
    if console.enabled {
        println!(
            "  console: {scheme}://{}{}/",
            running.http_addr(),
            console.base_path.trim_end_matches('/')
        );
    }
    tokio::select! {
        _ = stop => {}
        _ = running.stopped() => {}
    }
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn dev(a: DevArgs) -> Result<ExitCode> {
    // The knobs load as for `serve` (file-less); the backends are embedded.
    let flags = serde_json::json!({
        "data_dir": a.data_dir, "grpc_addr": a.grpc_addr, "http_addr": a.http_addr,
        "dashboard": a.dashboard.layer(),
        "webhooks": a.webhooks.layer(true),
        "auth": {"mode": if a.auth { "required" } else { "disabled" }},
        "tls": a.tls.layer(),
    });
    let mut config =
        config::load(None, flags).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let embedded = Config::embedded(&a.data_dir);
    config.store = embedded.store;
    config.archive = embedded.archive;
    config.limiter = embedded.limiter;
    println!("data dir: {}", a.data_dir.display());
    let (grpc, http) = (config.grpc_addr.clone(), config.http_addr.clone());
    serve_config(config, &grpc, &http).await
}

pub async fn serve(a: ServeArgs) -> Result<ExitCode> {
    let mut flags = serde_json::to_value(&a)?;
    flags["dashboard"] = a.dashboard.layer();
    flags["webhooks"] = a.webhooks.layer(false);
    flags["tls"] = a.tls.layer();
    if let Some(mode) = &a.auth {
        flags["auth"] = serde_json::json!({ "mode": mode });
    }
    let config = config::load(a.config.as_deref(), flags)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if a.dump_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    explain(&config)?;
    if config.auth.mode == config::AuthMode::Disabled {
        tracing::warn!(
            "auth is disabled: no API key is asked for; anyone who reaches the ports can publish, redefine events and act on runs"
        );
    }
    let (grpc, http) = (config.grpc_addr.clone(), config.http_addr.clone());
    serve_config(config, &grpc, &http).await
}

#[derive(Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL (or a path to a SQLite file).
    #[arg(long, env = "FANOUT_DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value = "fanout")]
    postgres_schema: String,
}

pub async fn migrate(a: MigrateArgs) -> Result<ExitCode> {
    let store = if a.database_url.starts_with("postgres") {
        StoreConfig::Postgres {
            url: a.database_url.clone(),
            schema: a.postgres_schema,
            max_connections: 2,
        }
    } else {
        StoreConfig::Sqlite {
            path: a.database_url.trim_start_matches("sqlite://").into(),
        }
    };
    let s = fanout_engine::storage::sql::SqlStore::connect(&store)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    s.close().await;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM (what `kill`, systemd and Kubernetes send). The
/// handlers are installed when this is called, not when the future is first
/// polled: a SIGTERM right after start must stop the engine cleanly, not
/// kill the process by the default action.
fn terminate() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
