//! Commands that run the engine in this process: `dev`, `serve`, `migrate`.
//!
//! `serve` layers its settings: defaults → `--config FILE` (TOML) →
//! `FANOUT_*` environment → flags, then `--dump-config` prints the result.

use anyhow::{Context, Result};
use clap::Args;
use fanout_engine::config::{ArchiveConfig, Config, LimiterConfig, OnUnavailable, StoreConfig};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
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
}

/// The effective settings of `serve`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    pub database_url: Option<String>,
    pub postgres_schema: String,
    /// Connections per pool; the engine keeps two (publishes and reads;
    /// claims and completions), so up to twice this many.
    pub postgres_max_connections: u32,
    pub redis_url: Option<String>,
    pub redis_on_unavailable: OnUnavailable,
    pub clickhouse_url: Option<String>,
    pub clickhouse_database: String,
    pub clickhouse_user: Option<String>,
    pub clickhouse_password: Option<String>,
    pub grpc_addr: String,
    pub http_addr: String,
    /// Used for the local archive when no ClickHouse is configured.
    pub data_dir: PathBuf,
    pub max_payload_bytes: usize,
    pub default_lease_ms: u64,
    pub idempotency_window_ms: u64,
    /// Bounds on client input and connections (`[limits]` in the file).
    #[serde(default)]
    pub limits: fanout_engine::limits::Limits,
}

impl Default for ServeSettings {
    fn default() -> Self {
        let d = Config::default();
        ServeSettings {
            database_url: None,
            postgres_schema: "fanout".into(),
            postgres_max_connections: 16,
            redis_url: None,
            redis_on_unavailable: OnUnavailable::Allow,
            clickhouse_url: None,
            clickhouse_database: "fanout".into(),
            clickhouse_user: None,
            clickhouse_password: None,
            grpc_addr: "127.0.0.1:7070".into(),
            http_addr: "127.0.0.1:7071".into(),
            data_dir: ".fanout".into(),
            max_payload_bytes: d.max_payload_bytes,
            default_lease_ms: d.default_lease_ms,
            idempotency_window_ms: d.idempotency_window_ms,
            limits: d.limits,
        }
    }
}

const ENV_KEYS: &[&str] = &[
    "database_url",
    "postgres_schema",
    "postgres_max_connections",
    "redis_url",
    "redis_on_unavailable",
    "clickhouse_url",
    "clickhouse_database",
    "clickhouse_user",
    "clickhouse_password",
    "grpc_addr",
    "http_addr",
    "data_dir",
    "max_payload_bytes",
    "default_lease_ms",
    "idempotency_window_ms",
];

impl ServeSettings {
    /// Defaults → file → env → flags.
    pub fn load(args: &ServeArgs) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(ServeSettings::default()));
        if let Some(path) = &args.config {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(Env::prefixed("FANOUT_").only(ENV_KEYS))
            .merge(Serialized::defaults(args));
        fig.extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))
    }

    /// The engine configuration these settings describe.
    pub fn engine_config(&self) -> Result<Config> {
        let url = self.database_url.clone().context(
            "serve needs a PostgreSQL URL: --database-url, FANOUT_DATABASE_URL or database_url in --config \
             (for the embedded engine run `fanout dev`)",
        )?;
        let config = Config {
            store: StoreConfig::Postgres {
                url,
                schema: self.postgres_schema.clone(),
                max_connections: self.postgres_max_connections,
            },
            archive: match &self.clickhouse_url {
                Some(url) => ArchiveConfig::Clickhouse {
                    url: url.clone(),
                    database: self.clickhouse_database.clone(),
                    user: self.clickhouse_user.clone(),
                    password: self.clickhouse_password.clone(),
                },
                None => {
                    let path = self.data_dir.join("archive.db");
                    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
                    tracing::warn!(
                        path = %shown.display(),
                        "no clickhouse_url: archiving to a local file (set data_dir or --data-dir to move it)"
                    );
                    println!("archive: {} (local; no clickhouse_url)", shown.display());
                    ArchiveConfig::Local { path }
                }
            },
            limiter: match &self.redis_url {
                Some(url) => LimiterConfig::Redis {
                    url: url.clone(),
                    on_unavailable: self.redis_on_unavailable,
                },
                None => {
                    tracing::warn!("no redis_url: rate limits are counted per engine process");
                    LimiterConfig::Memory
                }
            },
            max_payload_bytes: self.max_payload_bytes,
            default_lease_ms: self.default_lease_ms,
            idempotency_window_ms: self.idempotency_window_ms,
            limits: self.limits.clone(),
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        Ok(config)
    }
}

async fn serve_config(config: Config, grpc: &str, http: &str) -> Result<ExitCode> {
    let listeners = fanout_engine::Listeners::bind(grpc, http)
        .await
        .with_context(|| format!("cannot listen on {grpc} / {http}"))?;
    let grpc_addr = listeners.grpc.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let backends = fanout_engine::Backends::connect(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("fanout engine ready");
    println!("  gRPC: http://{grpc_addr}");
    println!("  HTTP: http://{http_addr}  (GET /healthz)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    fanout_engine::run_with(listeners, config, backends, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn dev(a: DevArgs) -> Result<ExitCode> {
    let config = Config::embedded(&a.data_dir);
    println!("data dir: {}", a.data_dir.display());
    serve_config(config, &a.grpc_addr, &a.http_addr).await
}

pub async fn serve(a: ServeArgs) -> Result<ExitCode> {
    let settings = ServeSettings::load(&a)?;
    if a.dump_config {
        print!("{}", toml::to_string_pretty(&settings)?);
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings.engine_config()?;
    serve_config(config, &settings.grpc_addr, &settings.http_addr).await
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
