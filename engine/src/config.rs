//! Engine configuration: which backends, and the knobs with their defaults.
//!
//! The CLI layers defaults → TOML file → `FANOUT_*` env → flags with figment
//! and hands the result here; `validate` runs once before anything starts.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything `run` needs besides its listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where events, runs and subscriptions live.
    pub store: StoreConfig,
    /// Where every published event is archived for `events log` and replay.
    pub archive: ArchiveConfig,
    /// Where rate-limit windows are counted.
    pub limiter: LimiterConfig,
    /// Largest accepted payload, in bytes of JSON text.
    pub max_payload_bytes: usize,
    /// Lease given to a claimed run when its task names none.
    pub default_lease_ms: u64,
    /// How often expired leases are looked for.
    pub reap_interval_ms: u64,
    /// Longest a worker session sleeps without a wake-up before it looks for
    /// work anyway (covers runs made due by another replica's timers).
    pub idle_poll_ms: u64,
    /// Most publishes committed in one transaction.
    pub publish_batch_max: usize,
    /// Publish transactions in flight at once (Postgres; SQLite has one
    /// writer). While one commits the next batch fills, so fewer means larger
    /// group commits: on 2 cores 1 beat 2 (end-to-end 6/6 A/B pairs, median
    /// +16 %) and 2 beat 4 (BENCHMARKS.md section 1). Raise it for a
    /// Postgres far away (round trip ≫ commit) or with many cores.
    pub publish_concurrency: usize,
    /// Completion transactions in flight at once; same trade-off. On 2 cores
    /// 1 beat 2 (scatter-gather at c64, 11 of 14 A/B pairs; BENCHMARKS.md
    /// section 3).
    pub complete_concurrency: usize,
    /// Events shipped to the archive per batch.
    pub archive_batch: usize,
    /// After shipping a partial batch, wait this long before the next one,
    /// so a steady stream of publishes ships in a few large batches rather
    /// than one small batch (two statements) per publish. A lone publish
    /// still ships at once.
    pub archive_linger_ms: u64,
    /// How long an idempotency key suppresses repeats.
    pub idempotency_window_ms: u64,
    /// When a publish wakes a worker session while more publishes are still
    /// committing, wait this long before claiming so one claim takes the
    /// burst (0: claim at once). A lone publish is claimed at once.
    pub claim_linger_us: u64,
    /// Bounds on client input and connections (`limits.rs`).
    pub limits: crate::limits::Limits,
    /// This engine's stable name among the replicas sharing a database
    /// (default: `<hostname>:<gRPC port>`). Leases it grants carry it, so
    /// after a crash the same instance requeues them at once on restart;
    /// give each replica its own.
    pub instance_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreConfig::Sqlite {
                path: PathBuf::from(".fanout/fanout.db"),
            },
            archive: ArchiveConfig::Local {
                path: PathBuf::from(".fanout/archive.db"),
            },
            limiter: LimiterConfig::Memory,
            max_payload_bytes: 1024 * 1024,
            default_lease_ms: 30_000,
            reap_interval_ms: 500,
            idle_poll_ms: 5_000,
            publish_batch_max: 256,
            publish_concurrency: 1,
            complete_concurrency: 1,
            archive_batch: 1_000,
            archive_linger_ms: 20,
            idempotency_window_ms: 24 * 60 * 60 * 1000,
            claim_linger_us: 1_000,
            limits: crate::limits::Limits::default(),
            instance_id: String::new(),
        }
    }
}

/// Run store backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// The embedded default: one SQLite file.
    Sqlite { path: PathBuf },
    /// PostgreSQL, shared by any number of engine replicas. Tables live in
    /// `schema` (created if missing), so one database can hold several.
    Postgres {
        url: String,
        #[serde(default = "default_pg_schema")]
        schema: String,
        /// Per pool: one for publishes and reads, one for claims and
        /// completions (`synchronous_commit = off`).
        #[serde(default = "default_pg_connections")]
        max_connections: u32,
    },
}

fn default_pg_schema() -> String {
    "fanout".into()
}

fn default_pg_connections() -> u32 {
    16
}

/// Event archive backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArchiveConfig {
    /// The embedded default: a local SQLite table.
    Local { path: PathBuf },
    /// ClickHouse over HTTP (`http://host:8123`), database created if missing.
    Clickhouse {
        url: String,
        database: String,
        user: Option<String>,
        password: Option<String>,
    },
}

/// Rate limiter backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LimiterConfig {
    /// In-process windows: correct for one engine only.
    Memory,
    /// Redis sliding windows shared by all replicas.
    Redis {
        url: String,
        /// What to do when Redis cannot be reached.
        on_unavailable: OnUnavailable,
    },
}

/// Policy when the limiter backend is down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Let the publish through (logged and counted).
    #[default]
    Allow,
    /// Refuse the publish with UNAVAILABLE.
    Deny,
}

impl Config {
    /// The embedded default with every file under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let dir = data_dir.into();
        Config {
            store: StoreConfig::Sqlite {
                path: dir.join("fanout.db"),
            },
            archive: ArchiveConfig::Local {
                path: dir.join("archive.db"),
            },
            ..Config::default()
        }
    }

    /// Check the values once, with messages naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_payload_bytes == 0 {
            return Err("max_payload_bytes must be greater than 0".into());
        }
        if self.default_lease_ms < 100 {
            return Err("default_lease_ms must be at least 100".into());
        }
        if self.publish_batch_max == 0
            || self.publish_concurrency == 0
            || self.complete_concurrency == 0
        {
            return Err(
                "publish_batch_max, publish_concurrency and complete_concurrency must be at least 1"
                    .into(),
            );
        }
        if self.archive_batch == 0 {
            return Err("archive_batch must be at least 1".into());
        }
        if self.instance_id.len() > 100 || self.instance_id.contains(['/', '\n']) {
            return Err(format!(
                "instance_id '{}' is invalid: at most 100 characters, no '/'",
                self.instance_id
            ));
        }
        let problems = self.limits.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        if let StoreConfig::Postgres { url, .. } = &self.store
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "store.url must start with postgres:// (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        if let ArchiveConfig::Clickhouse { url, .. } = &self.archive
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "archive.url must be an http:// URL of ClickHouse's HTTP port (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        if let LimiterConfig::Redis { url, .. } = &self.limiter
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(format!(
                "limiter.url must start with redis:// (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        Ok(())
    }
}
