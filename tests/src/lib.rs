//! Test harness: start the whole engine in-process on port 0 against a
//! chosen backend, and list the backends this machine can test.
//!
//! SQLite always runs. Postgres, Redis and ClickHouse run when
//! `FANOUT_TEST_POSTGRES_URL`, `FANOUT_TEST_REDIS_URL` and
//! `FANOUT_TEST_CLICKHOUSE_URL` are set (`.ci/run` sets all three, so CI
//! skips nothing); each Postgres test gets a schema of its own.

pub mod collector;

use fanout_engine::config::{Config, StoreConfig};
use fanout_engine::{Listeners, Running};
use std::time::{Duration, Instant};

/// One store backend under test.
pub struct Backend {
    pub name: &'static str,
    pub config: Config,
    /// Keeps the SQLite directory alive for the test.
    pub dir: tempfile::TempDir,
}

/// Timings tuned for tests: fast reaping, short idle polls.
pub fn test_config(mut c: Config) -> Config {
    c.reap_interval_ms = 100;
    c.idle_poll_ms = 500;
    c
}

/// A fresh, unique Postgres schema name.
pub fn unique_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// Every store backend available here: SQLite, plus Postgres when
/// `FANOUT_TEST_POSTGRES_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    out.push(Backend {
        name: "sqlite",
        config: test_config(Config::embedded(dir.path())),
        dir,
    });
    if let Ok(url) = std::env::var("FANOUT_TEST_POSTGRES_URL") {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(Config::embedded(dir.path()));
        config.store = StoreConfig::Postgres {
            url,
            schema: unique_schema(),
            max_connections: 8,
        };
        out.push(Backend {
            name: "postgres",
            config,
            dir,
        });
    }
    out
}

/// One backend by name: `sqlite` (always here) or `postgres` (needs
/// `FANOUT_TEST_POSTGRES_URL`; without it the test fails saying so, which
/// only happens when ignored tests are asked for).
pub async fn backend(name: &str) -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(Config::embedded(dir.path()));
    if name == "postgres" {
        let url = std::env::var("FANOUT_TEST_POSTGRES_URL")
            .expect("FANOUT_TEST_POSTGRES_URL is not set: this test needs PostgreSQL");
        config.store = StoreConfig::Postgres {
            url,
            schema: unique_schema(),
            max_connections: 8,
        };
    }
    Backend {
        name: if name == "postgres" {
            "postgres"
        } else {
            "sqlite"
        },
        config,
        dir,
    }
}

/// One store by backend name, connected and migrated.
pub async fn store(
    name: &str,
) -> (
    &'static str,
    std::sync::Arc<dyn fanout_engine::storage::Store>,
    tempfile::TempDir,
) {
    let b = backend(name).await;
    let store = fanout_engine::storage::sql::SqlStore::connect(&b.config.store)
        .await
        .unwrap_or_else(|e| panic!("{} store configured but unusable: {e}", b.name));
    (b.name, std::sync::Arc::new(store), b.dir)
}

/// One archive by name: `local` (always) or `clickhouse` (needs
/// `FANOUT_TEST_CLICKHOUSE_URL`).
pub async fn archive(
    name: &str,
) -> (
    &'static str,
    std::sync::Arc<dyn fanout_engine::archive::Archive>,
    tempfile::TempDir,
) {
    use fanout_engine::archive::{clickhouse::ClickhouseArchive, local::LocalArchive};
    let dir = tempfile::tempdir().expect("tempdir");
    if name == "clickhouse" {
        let url = std::env::var("FANOUT_TEST_CLICKHOUSE_URL")
            .expect("FANOUT_TEST_CLICKHOUSE_URL is not set: this test needs ClickHouse");
        let ch = ClickhouseArchive::connect(&url, &unique_schema(), None, None)
            .await
            .unwrap_or_else(|e| {
                panic!("FANOUT_TEST_CLICKHOUSE_URL={url} is set but unusable: {e}")
            });
        return ("clickhouse", std::sync::Arc::new(ch), dir);
    }
    let local = LocalArchive::open(&dir.path().join("archive.db"))
        .await
        .expect("local archive");
    ("local", std::sync::Arc::new(local), dir)
}

/// One test per case per backend, as quickwit's `metastore_test_suite!`:
/// each case becomes a module with one test for the embedded backend and
/// one for the service backend, so `cargo test sqlite` / `cargo test
/// postgres` select a backend and a failure names it. Service variants are
/// `#[ignore]`d: `cargo test` on a fresh machine reports them as ignored,
/// and `.ci/run` runs them with `--include-ignored` and the services' URLs.
///
/// ```ignore
/// fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
///     /// Doc of the case.
///     async fn case(b) { /* b: Backend */ }
/// }
/// ```
#[macro_export]
macro_rules! per_backend {
    ($src:path: $first:ident $(, $other:ident)*; $($cases:tt)*) => {
        $crate::per_backend!(@case $src; [$first $($other)*]; $($cases)*);
    };
    (@case $src:path; [$($v:ident)*];) => {};
    (@case $src:path; $vs:tt;
     $(#[$m:meta])* async fn $name:ident($b:pat) $body:block $($rest:tt)*) => {
        $crate::per_backend!(@emit [tokio::test] $src; $vs; $(#[$m])* $name($b) $body);
        $crate::per_backend!(@case $src; $vs; $($rest)*);
    };
    // `multi_thread async fn …`: the case needs a multi-threaded runtime.
    (@case $src:path; $vs:tt;
     $(#[$m:meta])* multi_thread async fn $name:ident($b:pat) $body:block $($rest:tt)*) => {
        $crate::per_backend!(
            @emit [tokio::test(flavor = "multi_thread", worker_threads = 2)] $src; $vs;
            $(#[$m])* $name($b) $body
        );
        $crate::per_backend!(@case $src; $vs; $($rest)*);
    };
    (@emit [$test:meta] $src:path; [$first:ident $($other:ident)*];
     $(#[$m:meta])* $name:ident($b:pat) $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[$test]
            async fn $first() {
                let $b = $src(stringify!($first)).await;
                $body
            }

            $(
                #[$test]
                #[ignore = "needs its service: --include-ignored with FANOUT_TEST_*_URL set (.ci/run)"]
                async fn $other() {
                    let $b = $src(stringify!($other)).await;
                    $body
                }
            )*
        }
    };
}

/// An engine running in this process.
pub struct TestEngine {
    pub grpc_url: String,
    pub http_url: String,
    pub config: Config,
    running: Running,
}

impl TestEngine {
    /// Start on 127.0.0.1:0 (both ports) with `config`.
    pub async fn start(config: Config) -> Self {
        Self::start_at(config, "127.0.0.1:0", "127.0.0.1:0").await
    }

    /// Start with the operator console mounted on the HTTP listener (as
    /// `fanout dev` does), under `base_path` ("" for `/`).
    pub async fn start_console(config: Config, base_path: &str) -> Self {
        let listeners = Listeners::bind("127.0.0.1:0", "127.0.0.1:0")
            .await
            .expect("bind");
        let opts =
            fanout_dashboard::Options::new(base_path, listeners.http.local_addr().expect("addr"));
        Self::start_on(config, listeners.mount(fanout_dashboard::mount(opts))).await
    }

    /// Start on given addresses (a restart on the ports clients know).
    pub async fn start_at(config: Config, grpc: &str, http: &str) -> Self {
        let listeners = Listeners::bind(grpc, http).await.expect("bind");
        Self::start_on(config, listeners).await
    }

    async fn start_on(config: Config, listeners: Listeners) -> Self {
        let running = fanout_engine::spawn(config.clone(), listeners)
            .await
            .expect("engine start");
        TestEngine {
            grpc_url: format!("http://{}", running.grpc_addr()),
            http_url: format!("http://{}", running.http_addr()),
            config,
            running,
        }
    }

    /// The engine itself (its public methods).
    pub fn engine(&self) -> &fanout_engine::Engine {
        self.running.engine()
    }

    /// Start with API keys required; returns the engine and an admin key
    /// for every namespace (the bootstrap key `serve` prints).
    pub async fn start_with_auth(mut config: Config) -> (Self, String) {
        config.auth.mode = fanout_engine::config::AuthMode::Required;
        let e = Self::start(config).await;
        let key = e
            .engine()
            .bootstrap_key()
            .await
            .expect("bootstrap key")
            .expect("a fresh store has no key");
        (e, key)
    }

    /// A client in `namespace`.
    pub async fn client(&self) -> fanout::Client {
        fanout::Client::connect(&self.grpc_url)
            .await
            .expect("connect")
    }

    /// Graceful stop; returns when the engine has shut down.
    pub async fn stop(self) {
        let r = tokio::time::timeout(Duration::from_secs(20), self.running.shutdown()).await;
        r.expect("engine did not stop within 20s")
            .expect("engine run");
    }
}

/// Poll `f` until it returns `Some`, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs of the client's namespace in `status` (`None`: any), newest first,
/// through the SDK's typed admin API.
pub async fn runs_with_status(
    client: &fanout::Client,
    status: impl Into<Option<fanout::RunStatus>>,
) -> Vec<fanout::Run> {
    let mut q = client.runs();
    if let Some(s) = status.into() {
        q = q.status(s);
    }
    q.first(10_000).await.expect("list runs")
}

/// A minimal HTTP/1.1 request (Connection: close) for testing the HTTP API
/// without pulling an HTTP client into the build. Returns (status, headers,
/// body).
pub async fn http(
    base: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    http_with(
        base,
        method,
        path,
        "Content-Type: application/json\r\n",
        body,
    )
    .await
}

/// [`http`] with the given extra header lines (each ending in `\r\n`)
/// instead of the JSON content type.
pub async fn http_with(
    base: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// An event of `name` in `ns` with one run per task (3 attempts, 1 s
/// backoff), for store-level tests; `key` is its idempotency key.
pub fn new_event(
    ns: &str,
    name: &str,
    tasks: &[&str],
    key: &str,
) -> fanout_engine::model::NewEvent {
    let retry = fanout_engine::model::RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 1_000,
        multiplier: 1.0,
    };
    fanout_engine::model::NewEvent {
        id: fanout_engine::model::new_id(),
        namespace: ns.into(),
        name: name.into(),
        version: 1,
        payload_json: r#"{"a":1}"#.into(),
        ordering_key: String::new(),
        idempotency_key: key.into(),
        tags: vec!["x".into()],
        published_at_ms: fanout_engine::model::now_ms(),
        publisher_run_id: String::new(),
        dlq: true,
        waitpoint: None,
        replay_of: String::new(),
        trace: Default::default(),
        runs: tasks
            .iter()
            .map(|t| fanout_engine::model::NewRun {
                id: fanout_engine::model::new_id(),
                task_id: (*t).into(),
                consumer_group: String::new(),
                retry,
                lease_ms: 1_000,
            })
            .collect(),
    }
}
