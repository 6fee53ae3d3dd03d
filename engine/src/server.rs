//! Starting and stopping an engine: [`spawn`] is the one entry point the
//! CLI, the tests and the benchmark share. It validates the config,
//! connects the backends, starts every background task and both servers,
//! and returns a [`Running`] whose [`Running::shutdown`] stops them all and
//! joins every task it started.

use crate::api::{grpc, http};
use crate::archive::{self, Archive};
use crate::config::{self, ArchiveConfig, Config, LimiterConfig};
use crate::engine::Engine;
use crate::error::Result;
use crate::peers as notify;
use crate::ratelimit::{self, RateLimiter};
use crate::storage::{self, Store};
use crate::wakeup::deadlines::Due;
use crate::{dispatch, model, replay, waitpoint};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The sockets the engine serves on, and what the HTTP one serves beside
/// the API.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    /// Routes mounted on the HTTP listener (the console), if any.
    pub mount: Option<http::Mount>,
}

impl Listeners {
    /// Bind both addresses (use port 0 for any free port).
    pub async fn bind(grpc: &str, http: &str) -> std::io::Result<Self> {
        Ok(Listeners {
            grpc: TcpListener::bind(grpc).await?,
            http: TcpListener::bind(http).await?,
            mount: None,
        })
    }

    /// Serve `mount`'s routes on the HTTP listener beside the API.
    pub fn mount(mut self, mount: http::Mount) -> Self {
        self.mount = Some(mount);
        self
    }
}

/// The backends an engine runs on, connected and migrated.
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub archive: Arc<dyn Archive>,
    pub limiter: Arc<dyn RateLimiter>,
}

impl Backends {
    /// Connect every backend named by `config`. The first failure is returned
    /// as a one-line error naming the backend.
    pub async fn connect(config: &Config) -> Result<Self> {
        let store: Arc<dyn Store> = Arc::new(storage::sql::SqlStore::connect(&config.store).await?);
        let archive: Arc<dyn Archive> = match &config.archive {
            ArchiveConfig::Local { path } => {
                Arc::new(archive::local::LocalArchive::open(path).await?)
            }
            ArchiveConfig::Clickhouse {
                url,
                database,
                user,
                password,
            } => Arc::new(
                archive::clickhouse::ClickhouseArchive::connect(
                    url,
                    database,
                    user.as_deref(),
                    password.as_deref(),
                )
                .await?,
            ),
        };
        let limiter: Arc<dyn RateLimiter> = match &config.limiter {
            LimiterConfig::Memory => Arc::new(ratelimit::memory::MemoryLimiter::new(
                config.limits.limiter_max_keys,
            )),
            LimiterConfig::Redis {
                url,
                on_unavailable,
            } => Arc::new(
                ratelimit::redis::RedisLimiter::connect_or_degrade(
                    url,
                    *on_unavailable,
                    "fanout:rl:",
                )
                .await?,
            ),
        };
        Ok(Backends {
            store,
            archive,
            limiter,
        })
    }
}

/// An engine serving on its listeners.
pub struct Running {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    engine: Engine,
    cancel: CancellationToken,
    /// Both servers, then the background loops, then the store's close.
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where HTTP is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The engine inside (for in-process callers such as benchmarks).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Resolves when the engine stops by itself (a server failed); the
    /// error, if any, is returned by [`Running::shutdown`].
    pub async fn stopped(&self) {
        self.cancel.cancelled().await
    }

    /// Stop accepting, end held calls, stop every background task, close
    /// the store, and wait for all of it. Returns a server's error, if one
    /// failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.join
            .await
            .map_err(|e| anyhow::anyhow!("engine task: {e}"))?
    }
}

/// Validate `config` (every problem at once), connect its backends, and
/// start serving on `listeners`.
pub async fn spawn(config: Config, listeners: Listeners) -> anyhow::Result<Running> {
    // Before connecting: a malformed URL is named, not dialled.
    validate(&config)?;
    let backends = Backends::connect(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    start(config, listeners, backends).await
}

/// [`spawn`] over backends the caller connected (tests inject their own).
pub async fn spawn_with(
    config: Config,
    listeners: Listeners,
    backends: Backends,
) -> anyhow::Result<Running> {
    validate(&config)?;
    start(config, listeners, backends).await
}

fn validate(config: &Config) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|problems| anyhow::anyhow!("invalid configuration: {problems}"))
}

/// Auth off and plain text are said once at start; loudly when the ports
/// are reachable from other hosts.
fn warn_if_open(config: &Config, grpc: SocketAddr, http: SocketAddr) {
    let local = grpc.ip().is_loopback() && http.ip().is_loopback();
    if !local && !config.tls.enabled() {
        tracing::warn!(
            grpc = %grpc, http = %http,
            "listening beyond loopback without TLS: API keys and payloads cross the network in clear (--tls-cert, --tls-key)"
        );
    }
    if config.auth.mode == config::AuthMode::Required {
        return;
    }
    if local {
        tracing::info!("auth is disabled: no API key is asked for (loopback only)");
    } else {
        tracing::warn!(
            grpc = %grpc, http = %http,
            "auth is disabled and the engine listens beyond loopback: anyone who reaches these ports can publish, redefine events and act on runs"
        );
    }
}

/// Start every task and both servers over connected backends.
async fn start(
    config: Config,
    listeners: Listeners,
    backends: Backends,
) -> anyhow::Result<Running> {
    let grpc_addr = listeners.grpc.local_addr()?;
    let mut config = config;
    if config.instance_id.is_empty() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "fanout".into());
        config.instance_id = format!("{host}:{}", grpc_addr.port());
    }
    if let config::StoreConfig::Postgres { .. } = &config.store {
        // Leases this instance granted before a crash: no session of ours
        // holds them now (SQLite does the same for every lease at open,
        // its data-dir lock proving the old process gone).
        let prefix = format!("{}/", config.instance_id);
        backends
            .store
            .requeue_leases_of(&prefix, model::now_ms())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let engine = Engine::new(
        config,
        backends.store.clone(),
        backends.limiter.clone(),
        backends.archive.clone(),
    );
    let cancel = engine.shutdown_token().clone();
    let http_addr = listeners.http.local_addr()?;
    // The keys before the first request: a replica that cannot read them
    // does not start (it would refuse every call).
    engine
        .keyring()
        .load(backends.store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot load API keys: {e}"))?;

    let mut tasks = JoinSet::new();
    let timers = engine.clone();
    tasks.spawn(engine.deadlines().clone().run(cancel.clone(), move |due| {
        let engine = timers.clone();
        async move {
            match due {
                Due::Wake(target) => engine.wakeup().wake(&target),
                Due::ExpireWaitpoints => {
                    if let Err(e) = engine.expire_waitpoints().await {
                        tracing::warn!(error = %e, "waitpoint expiry failed");
                    }
                }
            }
        }
    }));
    tasks.spawn(
        engine
            .keyring()
            .clone()
            .run(backends.store.clone(), cancel.clone()),
    );
    tasks.spawn(dispatch::reaper(engine.clone(), cancel.clone()));
    tasks.spawn(waitpoint::relay(engine.clone(), cancel.clone()));
    tasks.spawn(replay::runner(engine.clone(), cancel.clone()));
    tasks.spawn(crate::webhook::supervisor(engine.clone(), cancel.clone()));
    let health = engine.clone();
    let archiver = archive::archiver::Archiver {
        store: backends.store.clone(),
        archive: backends.archive.clone(),
        wake: engine.archive_wakeup().clone(),
        shipped: engine.archive_shipped().clone(),
        batch: engine.config().archive_batch,
        linger: std::time::Duration::from_millis(engine.config().archive_linger_ms),
        report: Box::new(move |r| match r {
            Ok(()) => health.health().archive_ok(),
            Err(e) => health.health().archive_failed(&e),
        }),
    };
    tasks.spawn(archiver.run(cancel.clone()));
    if let config::StoreConfig::Postgres { url, schema, .. } = &engine.config().store {
        let channel = storage::sql::notify_channel(schema);
        tasks.spawn(notify::listen(
            engine.clone(),
            url.clone(),
            channel,
            cancel.clone(),
        ));
    }

    // Small gRPC frames (assignments, results, acks) must not wait for
    // Nagle: without TCP_NODELAY on accepted sockets, an idle engine took
    // ~45 ms from publish to run start (measured; 40 ms delayed-ACK stalls).
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listeners.grpc),
        |conn| {
            conn.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        },
    );
    let tls = crate::tls::load(&engine.config().tls).map_err(|e| anyhow::anyhow!(e))?;
    let (grpc_tls, http_tls) = match tls {
        Some(t) => (Some(t.grpc), Some(t.http)),
        None => (None, None),
    };
    let grpc = grpc::router(engine.clone(), cancel.clone(), grpc_tls)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .serve_with_incoming_shutdown(incoming, cancel.clone().cancelled_owned());
    let limits = engine.config().limits.clone();
    let http = http::serve(
        listeners.http,
        http::router(engine.clone(), listeners.mount),
        limits,
        http_tls,
        cancel.clone(),
    );
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "engine started");
    warn_if_open(engine.config(), grpc_addr, http_addr);

    let stop = cancel.clone();
    let store = backends.store.clone();
    let join = tokio::spawn(async move {
        // A server that fails stops the whole engine.
        let grpc = async {
            let r = grpc.await;
            stop.cancel();
            r
        };
        let http = async {
            let r = http.await;
            stop.cancel();
            r
        };
        let (g, h) = tokio::join!(grpc, http);
        while tasks.join_next().await.is_some() {}
        store.close().await;
        g?;
        h?;
        tracing::info!("engine stopped");
        Ok(())
    });
    Ok(Running {
        grpc_addr,
        http_addr,
        engine,
        cancel,
        join,
    })
}
