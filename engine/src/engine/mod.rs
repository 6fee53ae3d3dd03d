//! The engine core: define (`define.rs`), publish (`publish.rs`), complete
//! and reap (here); the operator's reads are in `admin.rs`. The gRPC and
//! HTTP layers are thin translations onto these methods.
//!
//! # The publish path, and what a crash does at each step
//! 1. Validate (name, size, JSON, schema) and pick subscribers from the
//!    in-memory registry. A crash here: nothing stored, the caller sees an
//!    error or a dropped connection and may retry.
//! 2. Queue into the publish [`Batcher`]; one transaction inserts the event
//!    row, its archive outbox entry, its idempotency key and one run per
//!    subscriber. A crash before `COMMIT`: nothing stored.
//! 3. `COMMIT` returns (on SQLite followed by a group fsync of the WAL,
//!    `storage/sql/sqlite/walsync.rs`), then the caller gets the event id and run
//!    ids. A crash between the two: everything is stored and will run (a
//!    power cut before SQLite's sync may lose it — unacknowledged); the
//!    caller did not hear "ok" and retries, and the idempotency key (if
//!    given) returns the original event instead of a second one.
//! 4. Wake idle worker sessions and the archiver. Lost wake-ups are covered
//!    by the sessions' idle poll and the archiver's tick.

use crate::activity::Kind;
use crate::batch::Batcher;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::*;
use crate::ratelimit::RateLimiter;
use crate::routing::registry::Registry;
use crate::storage::Store;
use crate::wakeup::{Target, Wakeup};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod breaker;
mod define;
mod keys;
mod publish;
mod subscriptions;

pub use keys::{KeySpec, MAX_KEY_EVENTS, create_key};
pub use subscriptions::{OPERATIONAL_EVENTS, SubscriptionSpec, new_secret};

/// What a caller asks to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    pub event: String,
    pub payload_json: String,
    pub idempotency_key: String,
    pub ordering_key: String,
    pub tags: Vec<String>,
    pub publisher_run_id: String,
    /// The publisher's trace context (from `traceparent`): the parent of
    /// the publish's `send` span.
    pub trace: crate::telemetry::TraceContext,
}

/// Shared engine state. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    registry: Registry,
    limiter: Arc<dyn RateLimiter>,
    wakeup: Wakeup,
    /// Retry wake-ups and waitpoint expiries (one task fires them).
    deadlines: crate::wakeup::deadlines::Deadlines,
    archive_wakeup: Wakeup,
    /// Signalled by the archiver after each shipped batch.
    archive_shipped: Wakeup,
    replay_wakeup: Wakeup,
    archive: Arc<dyn crate::archive::Archive>,
    hub: crate::wakeup::waiters::WaitpointHub,
    publisher: Batcher<NewEvent, Published>,
    completer: Batcher<Completion, CompletionEffect>,
    /// Publishes between validation and their answer in this process.
    publishing: AtomicUsize,
    /// Permits of the blocking pool that validates expensive payloads.
    validators: Arc<tokio::sync::Semaphore>,
    /// Prometheus metrics (`/metrics`).
    metrics: crate::metrics::Metrics,
    /// Dependency states for `/healthz`.
    health: crate::health::Health,
    /// Per-minute counts of the last hour (the console's chart).
    activity: crate::activity::Activity,
    /// Connected worker sessions (the console's `/workers`).
    workers: crate::roster::Roster,
    /// Consecutive failed attempts per (namespace, subscription) seen on
    /// this replica: the breaker's count (`subscriptions.rs`).
    failures: std::sync::Mutex<std::collections::HashMap<(String, String), u32>>,
    /// Entries in `failures`: a success with none counted skips the lock.
    failing: AtomicUsize,
    /// Poked when this replica changes a subscription (the webhook
    /// supervisor looks again at once).
    subscriptions_changed: tokio::sync::Notify,
    /// The live API keys (checked with no store read).
    keyring: Arc<crate::auth::Keyring>,
    /// Cancelled when the engine shuts down: held calls (long polls) end
    /// with UNAVAILABLE so their clients wait again elsewhere or later.
    shutdown: tokio_util::sync::CancellationToken,
}

/// Counts one publish in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Engine {
    /// Assemble an engine over ready backends. Spawns the batchers.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        limiter: Arc<dyn RateLimiter>,
        archive: Arc<dyn crate::archive::Archive>,
    ) -> Self {
        let window = config.idempotency_window_ms as i64;
        let s = store.clone();
        // SQLite has one writer and each publish commit is an fsync: one
        // batch in flight lets the next batch grow while it commits, instead
        // of several small batches queueing for the writer (measured: ~3.9k
        // vs ~1.3k runs/s). Correctness does not depend on it (the store
        // serialises its own publish commits).
        let publish_concurrency = match config.store {
            crate::config::StoreConfig::Sqlite { .. } => 1,
            crate::config::StoreConfig::Postgres { .. } => config.publish_concurrency,
        };
        let publisher = Batcher::spawn(
            "publish",
            config.publish_batch_max,
            publish_concurrency,
            move |batch: Arc<Vec<NewEvent>>| {
                let s = s.clone();
                async move { s.publish(&batch, window).await }
            },
        );
        let s = store.clone();
        let completer = Batcher::spawn(
            "complete",
            config.publish_batch_max,
            config.complete_concurrency,
            move |batch: Arc<Vec<Completion>>| {
                let s = s.clone();
                async move { s.complete(&batch, now_ms()).await }
            },
        );
        let config_validation_concurrency = config.limits.validation_concurrency.max(1);
        let auth_required = config.auth.mode == crate::config::AuthMode::Required;
        Engine {
            inner: Arc::new(Inner {
                registry: Registry::new(store.clone()),
                config,
                store,
                limiter,
                wakeup: Wakeup::default(),
                deadlines: Default::default(),
                archive_wakeup: Wakeup::default(),
                archive_shipped: Wakeup::default(),
                replay_wakeup: Wakeup::default(),
                archive,
                hub: Default::default(),
                publisher,
                completer,
                publishing: AtomicUsize::new(0),
                validators: Arc::new(tokio::sync::Semaphore::new(config_validation_concurrency)),
                health: Default::default(),
                activity: Default::default(),
                workers: Default::default(),
                failures: Default::default(),
                failing: AtomicUsize::new(0),
                subscriptions_changed: Default::default(),
                keyring: Arc::new(crate::auth::Keyring::new(auth_required)),
                metrics: Default::default(),
                shutdown: Default::default(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }
    /// Notified (one permit) when this replica changed a subscription.
    pub fn subscriptions_changed(&self) -> &tokio::sync::Notify {
        &self.inner.subscriptions_changed
    }

    pub fn limiter(&self) -> &Arc<dyn RateLimiter> {
        &self.inner.limiter
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
    /// This engine's name among replicas (see `Config::instance_id`).
    pub fn instance_id(&self) -> &str {
        &self.inner.config.instance_id
    }

    /// Cancelled when the engine shuts down.
    pub fn shutdown_token(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.shutdown
    }

    /// Dependency states, as the work that uses them last saw them.
    pub fn health(&self) -> &crate::health::Health {
        &self.inner.health
    }

    /// The `/healthz` report.
    pub fn health_report(&self) -> crate::health::Report {
        self.inner.health.report(self.inner.limiter.health())
    }

    /// Note a store write's outcome for `/healthz`: transient failures
    /// (disk full, connection lost) make the engine not ready until a write
    /// succeeds again.
    fn store_outcome<T>(&self, r: &Result<T>) {
        match r {
            Ok(_) => self.inner.health.store_ok(),
            Err(Error::Unavailable(e)) => self.inner.health.store_failed(e),
            Err(_) => {}
        }
    }

    /// Wakes worker sessions.
    /// The timers of this engine (run by `server::spawn`).
    pub fn deadlines(&self) -> &crate::wakeup::deadlines::Deadlines {
        &self.inner.deadlines
    }

    pub fn wakeup(&self) -> &Wakeup {
        &self.inner.wakeup
    }
    /// Publishes of this process not yet answered: a worker session woken
    /// while others are still committing waits for them (claim linger).
    pub fn publishes_in_flight(&self) -> usize {
        self.inner.publishing.load(Ordering::Relaxed)
    }
    /// Wakes waiters of waitpoints.
    pub fn hub(&self) -> &crate::wakeup::waiters::WaitpointHub {
        &self.inner.hub
    }
    /// Wakes replay runners.
    pub fn replay_wakeup(&self) -> &Wakeup {
        &self.inner.replay_wakeup
    }
    /// The event archive (read by `events log` and replay).
    pub fn archive(&self) -> &Arc<dyn crate::archive::Archive> {
        &self.inner.archive
    }
    /// Wakes the archiver.
    pub fn archive_wakeup(&self) -> &Wakeup {
        &self.inner.archive_wakeup
    }
    /// Signalled after each batch the archiver shipped.
    pub fn archive_shipped(&self) -> &Wakeup {
        &self.inner.archive_shipped
    }

    /// Count an attempt's end: `effect` of `task`'s run.
    pub fn count_effect(&self, ns: &str, task: &str, effect: CompletionEffect, failed: bool) {
        let m = &self.inner.metrics;
        let family = match effect {
            CompletionEffect::Completed => &m.runs_completed,
            CompletionEffect::Retrying { .. } => &m.runs_retried,
            CompletionEffect::Dead => &m.runs_dead,
            CompletionEffect::Stale => return,
        };
        let labels = m.task("runs", ns, task);
        let now = now_ms();
        if failed {
            m.runs_failed.get_or_create(&labels).inc();
            self.inner.activity.add(Kind::Failed, 1, now);
        }
        match effect {
            CompletionEffect::Completed => self.inner.activity.add(Kind::Completed, 1, now),
            CompletionEffect::Dead => self.inner.activity.add(Kind::Dead, 1, now),
            _ => {}
        }
        family.get_or_create(&labels).inc();
    }

    /// Per-minute counts of the last hour on this replica.
    pub fn activity(&self) -> &crate::activity::Activity {
        &self.inner.activity
    }

    /// Worker sessions connected to this replica.
    pub fn workers(&self) -> &crate::roster::Roster {
        &self.inner.workers
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// `/metrics`: refresh the queue gauges if they are older than
    /// `metrics_refresh_ms` (one store read, whatever the scrape rate),
    /// then encode everything.
    pub async fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        let every = Duration::from_millis(self.inner.config.metrics_refresh_ms);
        if m.stale(every).await {
            let now = now_ms();
            match self
                .inner
                .store
                .queue_stats(now, crate::metrics::MAX_SERIES)
                .await
            {
                Ok(stats) => m.set_queue(&stats, now),
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read queue gauges"),
            }
        }
        m.encode()
    }

    /// Record a worker's result for one attempt (batched with others); a
    /// retry it schedules wakes `retry_wakes` when it falls due.
    pub async fn complete(
        &self,
        completion: Completion,
        retry_wakes: Target,
    ) -> Result<CompletionEffect> {
        let run_id = completion.run_id.clone();
        let effect = self.inner.completer.submit(completion).await;
        self.store_outcome(&effect);
        let effect = effect?;
        self.after_effect(effect, retry_wakes);
        tracing::debug!(run_id = %run_id, ?effect, "attempt finished");
        Ok(effect)
    }

    /// Schedule what a state change implies (a retry's wake-up).
    pub fn after_effect(&self, effect: CompletionEffect, target: Target) {
        if let CompletionEffect::Retrying { at_ms } = effect {
            self.inner
                .deadlines
                .at(at_ms, crate::wakeup::deadlines::Due::Wake(target));
        }
    }

    /// Fail runs whose leases expired; returns how many.
    pub async fn reap(&self) -> Result<usize> {
        let effects = self.inner.store.reap_expired(now_ms()).await?;
        for r in &effects {
            self.count_effect(&r.namespace, &r.task_id, r.effect, true);
            self.attempt_ended(&r.namespace, &r.task_id, false, false);
            if r.effect == CompletionEffect::Dead {
                self.run_died(
                    &r.namespace,
                    &r.run_id,
                    &r.task_id,
                    &r.event,
                    "lease expired: no result or heartbeat from the worker in time",
                );
            }
            self.after_effect(
                r.effect,
                Target::Task {
                    namespace: r.namespace.clone(),
                    task: r.task_id.clone(),
                },
            );
        }
        if !effects.is_empty() {
            tracing::info!(runs = effects.len(), "expired leases reaped");
        }
        Ok(effects.len())
    }
}
