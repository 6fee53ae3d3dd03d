//! Engine configuration: which backends, and the knobs with their defaults.
//!
//! One `Config` for the engine and the CLI: [`load`] layers defaults → TOML
//! file → `FANOUT_*` env → flags; `validate` reports every problem, and
//! `server::spawn` runs it before anything starts.

mod load;

pub use load::{SHORTHANDS, from_layers, load};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything `spawn` needs besides its listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `fanout serve` / `fanout dev` listen for gRPC (`spawn` takes
    /// bound listeners instead, so tests can bind port 0).
    pub grpc_addr: String,
    /// Where they listen for HTTP.
    pub http_addr: String,
    /// Directory of the embedded files (SQLite database, local archive)
    /// when their paths are not set.
    pub data_dir: PathBuf,
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
    /// `/metrics` reads the queue gauges (due runs, DLQ depth, archive
    /// backlog) from the store at most this often, whatever the scrape rate.
    pub metrics_refresh_ms: u64,
    /// The operator console on the HTTP listener (the `fanout-dashboard`
    /// crate, mounted by the CLI).
    pub dashboard: DashboardConfig,
    /// Delivery to HTTP subscribers (signed webhooks).
    pub webhooks: WebhooksConfig,
    /// API keys: required on every call (the default for `serve`) or off
    /// (the embedded default: `fanout dev`, tests).
    pub auth: AuthConfig,
    /// TLS on both listeners (off when no certificate is set).
    pub tls: TlsConfig,
}

/// Certificates for TLS on the gRPC and HTTP listeners (PEM files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// gRPC clients (workers, SDKs, the CLI) must present a certificate
    /// signed by this CA (mutual TLS); HTTP is unaffected.
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// Both a certificate and a key are set.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }
}

/// Whether calls must present an API key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Every gRPC call and HTTP route but health needs a valid key.
    Required,
    /// Anyone who reaches the ports may do anything (a warning at start).
    Disabled,
}

/// API keys and what needs one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// `/metrics` needs a `read` key too (open by default, like `/healthz`,
    /// so a scraper needs no secret).
    pub protect_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Required,
            protect_metrics: false,
        }
    }
}

/// How the engine delivers to HTTP subscribers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Deliver on this replica (off: other replicas deliver; runs wait).
    pub enabled: bool,
    /// Allow endpoints on private, loopback, link-local and other
    /// non-public addresses (checked on the resolved address at connect
    /// time, so DNS cannot smuggle one in).
    pub allow_private: bool,
    /// Allow loopback endpoints only (`fanout dev` turns this on).
    pub allow_loopback: bool,
    /// How long a rotated-out secret keeps signing beside the new one.
    pub rotation_overlap_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            allow_private: false,
            allow_loopback: false,
            rotation_overlap_ms: 24 * 3_600_000,
        }
    }
}

/// Where and whether the console is served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Serve it under this prefix (behind a proxy), e.g. `/fanout`; empty:
    /// at `/`.
    pub base_path: String,
    /// Link runs and events to their trace in a tracing UI: `{trace_id}`
    /// is replaced, e.g. `http://localhost:16686/trace/{trace_id}`
    /// (Jaeger); empty: the trace context is shown without a link.
    pub trace_url: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            base_path: String::new(),
            trace_url: String::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_addr: "127.0.0.1:7070".into(),
            http_addr: "127.0.0.1:7071".into(),
            data_dir: PathBuf::from(".fanout"),
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
            metrics_refresh_ms: 5_000,
            dashboard: DashboardConfig::default(),
            webhooks: WebhooksConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
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

fn default_ch_database() -> String {
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
        #[serde(default = "default_ch_database")]
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
        #[serde(default)]
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
    /// The embedded default with every file under `data_dir`, open (no
    /// API keys), as `fanout dev` runs.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let dir = data_dir.into();
        Config {
            data_dir: dir.clone(),
            store: StoreConfig::Sqlite {
                path: dir.join("fanout.db"),
            },
            archive: ArchiveConfig::Local {
                path: dir.join("archive.db"),
            },
            auth: AuthConfig {
                mode: AuthMode::Disabled,
                protect_metrics: false,
            },
            ..Config::default()
        }
    }

    /// Check every value, with messages naming the setting: all the
    /// problems at once, not the first.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Vec::new();
        if self.max_payload_bytes == 0 {
            p.push("max_payload_bytes must be greater than 0".to_string());
        }
        if self.default_lease_ms < 100 {
            p.push("default_lease_ms must be at least 100".into());
        }
        for (name, v) in [
            ("publish_batch_max", self.publish_batch_max),
            ("publish_concurrency", self.publish_concurrency),
            ("complete_concurrency", self.complete_concurrency),
            ("archive_batch", self.archive_batch),
        ] {
            if v == 0 {
                p.push(format!("{name} must be at least 1"));
            }
        }
        if self.instance_id.len() > 100 || self.instance_id.contains(['/', '\n']) {
            p.push(format!(
                "instance_id '{}' is invalid: at most 100 characters, no '/'",
                crate::error::clip(&self.instance_id, 120)
            ));
        }
        p.extend(self.limits.problems());
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            p.push("tls.cert and tls.key go together: set both (PEM files) or neither".into());
        }
        if self.tls.client_ca.is_some() && !self.tls.enabled() {
            p.push("tls.client_ca needs tls.cert and tls.key (client certificates are asked for over TLS)".into());
        }
        let trace = &self.dashboard.trace_url;
        if !trace.is_empty()
            && !((trace.starts_with("http://") || trace.starts_with("https://"))
                && trace.contains("{trace_id}")
                && trace.len() <= 500)
        {
            p.push(format!(
                "dashboard.trace_url '{}' is invalid: an http(s) URL containing {{trace_id}}, e.g. http://localhost:16686/trace/{{trace_id}}",
                crate::error::clip(trace, 120)
            ));
        }
        let base = &self.dashboard.base_path;
        if !base.is_empty()
            && (!base.starts_with('/')
                || base.len() > 100
                || base.starts_with("/api")
                || !base[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)))
        {
            p.push(format!(
                "dashboard.base_path '{}' is invalid: a path such as /fanout (letters, digits, - _ . /; not under /api)",
                crate::error::clip(base, 120)
            ));
        }
        if self.webhooks.rotation_overlap_ms > 30 * 24 * 3_600_000 {
            p.push(format!(
                "webhooks.rotation_overlap_ms is {}: at most 30 days (2592000000)",
                self.webhooks.rotation_overlap_ms
            ));
        }
        if let StoreConfig::Postgres { url, .. } = &self.store
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            p.push(format!(
                "store.url must start with postgres:// (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        if let ArchiveConfig::Clickhouse { url, .. } = &self.archive
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            p.push(format!(
                "archive.url must be an http:// URL of ClickHouse's HTTP port (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        if let LimiterConfig::Redis { url, .. } = &self.limiter
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            p.push(format!(
                "limiter.url must start with redis:// (got '{}')",
                crate::error::redact_url(url)
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Problems(p))
        }
    }
}

/// Every problem [`Config::validate`] found, each naming its setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod dashboard_tests {
    use super::*;

    #[test]
    fn dashboard_settings_are_checked_by_key() {
        let mut c = Config::default();
        c.dashboard.trace_url = "jaeger".into();
        c.dashboard.base_path = "fanout".into();
        let problems = c.validate().expect_err("both invalid").to_string();
        assert!(
            problems.contains("dashboard.trace_url") && problems.contains("dashboard.base_path"),
            "{problems}"
        );
        c.dashboard = DashboardConfig {
            trace_url: "http://localhost:16686/trace/{trace_id}".into(),
            base_path: "/ops/fanout".into(),
            ..DashboardConfig::default()
        };
        assert!(c.validate().is_ok());
        c.webhooks.rotation_overlap_ms = 31 * 24 * 3_600_000;
        let problems = c.validate().expect_err("overlap too long").to_string();
        assert!(
            problems.contains("webhooks.rotation_overlap_ms"),
            "{problems}"
        );
    }
}
