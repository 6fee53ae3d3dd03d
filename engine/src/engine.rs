//! The engine core: define, publish, complete, inspect. The gRPC and HTTP
//! layers are thin translations onto these methods.
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

use crate::batch::Batcher;
use crate::config::Config;
use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::limits::{self, MAX_TAG_BYTES};
use crate::model::*;
use crate::ratelimit::{Decision, RateLimiter};
use crate::routing;
use crate::routing::filter::Filter;
use crate::routing::registry::{LiveEvent, Registry};
use crate::routing::schema::{self, CompiledSchema};
use crate::storage::Store;
use crate::wakeup::{Target, Wakeup};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What a caller asks to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    pub event: String,
    pub payload_json: String,
    pub idempotency_key: String,
    pub ordering_key: String,
    pub tags: Vec<String>,
    pub publisher_run_id: String,
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

    /// Define or redefine an event; returns the definition and whether a new
    /// version was created.
    pub async fn define_event(
        &self,
        ns: &str,
        name: &str,
        schema_json: &str,
        description: &str,
        options: &EventOptions,
    ) -> Result<(EventDef, bool)> {
        schema::check_event_name(name)?;
        if schema_json.len() > limits::MAX_SCHEMA_BYTES {
            return Err(Error::InvalidArgument(format!(
                "schema_json is {} bytes, over the limit of {} bytes",
                schema_json.len(),
                limits::MAX_SCHEMA_BYTES
            )));
        }
        if description.len() > limits::MAX_DESCRIPTION_BYTES {
            return Err(Error::InvalidArgument(format!(
                "description is {} bytes, over the limit of {} bytes",
                description.len(),
                limits::MAX_DESCRIPTION_BYTES
            )));
        }
        let value = schema::parse_json("schema_json", schema_json)?;
        CompiledSchema::compile(&value)?;
        if let Some(rl) = &options.rate_limit {
            // The window log holds one entry per counted hit: bound both.
            if !(1..=1_000_000).contains(&rl.limit) || !(1..=86_400_000).contains(&rl.window_ms) {
                return Err(Error::InvalidArgument(format!(
                    "rate_limit: limit must be in 1..=1000000 and window_ms in 1..=86400000 (got {}/{}ms)",
                    rl.limit, rl.window_ms
                )));
            }
            if !rl.key_field.is_empty() {
                schema::check_identifier("rate_limit.key_field", &rl.key_field)?;
            }
        }
        let (def, created) = self
            .inner
            .store
            .define_event(
                ns,
                name,
                schema_json,
                &schema::canonical(&value),
                description,
                options,
            )
            .await?;
        self.inner.registry.invalidate_events(Some(ns));
        if created {
            tracing::info!(
                namespace = ns,
                event = name,
                version = def.version,
                "event defined"
            );
        }
        Ok((def, created))
    }

    /// Validate and durably publish; see the module docs for the steps.
    pub async fn publish(&self, ns: &str, input: PublishInput) -> Result<Published> {
        self.publish_with_waitpoint(ns, input, None).await
    }

    /// Publish, optionally creating a waitpoint on the runs in the same
    /// transaction (publish-and-wait).
    pub(crate) async fn publish_with_waitpoint(
        &self,
        ns: &str,
        input: PublishInput,
        wp: Option<NewWaitpoint>,
    ) -> Result<Published> {
        let span = tracing::info_span!("publish", namespace = ns, event = %input.event);
        self.publish_inner(ns, input, wp).instrument(span).await
    }

    async fn publish_inner(
        &self,
        ns: &str,
        input: PublishInput,
        waitpoint: Option<NewWaitpoint>,
    ) -> Result<Published> {
        schema::check_event_name(&input.event)?;
        self.check_publish_fields(&input)?;
        let live = self.inner.registry.event(ns, &input.event).await?;
        let size = input.payload_json.len();
        let limit = self.inner.config.max_payload_bytes;
        if size > limit {
            return Err(Error::PayloadTooLarge { size, limit });
        }
        let payload = schema::parse_payload("payload", &input.payload_json)?;
        let payload = self.validate(&live, &input.event, payload, size).await?;
        if let Some(rl) = &live.def.options.rate_limit {
            self.check_rate_limit(ns, &input.event, rl, &payload)
                .await?;
        }
        let event_id = new_id();
        let subs = self.inner.registry.subscriptions(ns).await?;
        let runs: Vec<NewRun> = routing::route(
            &subs,
            &input.event,
            &payload,
            &input.ordering_key,
            &event_id,
        )
        .into_iter()
        .map(|s| NewRun {
            id: new_id(),
            task_id: s.sub.task_id.clone(),
            consumer_group: s.sub.consumer_group.clone(),
            retry: s.sub.retry,
            lease_ms: s.sub.lease_ms,
        })
        .collect();
        let event = NewEvent {
            id: event_id,
            dlq: live.def.options.dlq,
            waitpoint,
            replay_of: String::new(),
            namespace: ns.to_string(),
            name: input.event.clone(),
            version: live.def.version,
            // The text as published (it parsed, without duplicate keys, to
            // the value validated): numbers beyond f64 keep every digit.
            payload_json: input.payload_json.trim().to_string(),
            ordering_key: input.ordering_key,
            idempotency_key: input.idempotency_key,
            tags: input.tags,
            published_at_ms: now_ms(),
            publisher_run_id: input.publisher_run_id,
            runs,
        };
        let input_event = event.name.clone();
        let in_flight = InFlight::enter(&self.inner.publishing);
        let published = self.inner.publisher.submit(event).await;
        // Counted out before the wake-up below, so a woken session sees
        // only the publishes still committing.
        drop(in_flight);
        self.store_outcome(&published);
        let published = published?;
        if !published.deduplicated {
            self.count_published(ns, &input_event, &published);
            if !published.runs.is_empty() {
                self.inner
                    .wakeup
                    .tasks(ns, published.runs.iter().map(|(_, task, _)| task.as_str()));
            }
            self.inner.archive_wakeup.now();
        }
        tracing::debug!(event_id = %published.event_id, runs = published.runs.len(), deduplicated = published.deduplicated, "event published");
        Ok(published)
    }

    /// Count a publish and its runs.
    pub(crate) fn count_published(&self, ns: &str, event: &str, p: &Published) {
        let m = &self.inner.metrics;
        m.events_published
            .get_or_create(&m.event("events_published", ns, event))
            .inc();
        for (_, task, _) in &p.runs {
            m.runs_created
                .get_or_create(&m.run("runs_created", ns, event, task))
                .inc();
        }
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
        if failed {
            m.runs_failed.get_or_create(&labels).inc();
        }
        family.get_or_create(&labels).inc();
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

    /// Bounds on the publish request's own fields (the payload is checked
    /// by size and schema).
    fn check_publish_fields(&self, input: &PublishInput) -> Result<()> {
        let limits = &self.inner.config.limits;
        limits::check_text(
            "idempotency_key",
            &input.idempotency_key,
            limits.max_key_bytes,
        )?;
        limits::check_text("ordering_key", &input.ordering_key, limits.max_key_bytes)?;
        if input.tags.len() > limits.max_tags {
            return Err(Error::InvalidArgument(format!(
                "tags: {} tags is over the limit of {} (limits.max_tags)",
                input.tags.len(),
                limits.max_tags
            )));
        }
        for (i, tag) in input.tags.iter().enumerate() {
            if tag.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "tags[{i}] is empty; tags must be 1-{MAX_TAG_BYTES} bytes"
                )));
            }
            limits::check_text(&format!("tags[{i}]"), tag, MAX_TAG_BYTES)?;
        }
        Ok(())
    }

    /// Check `payload` against the event's schema and give it back. Small
    /// payloads of schemas without user regexes validate here; the rest on
    /// the blocking pool (`limits.validation_concurrency` at once), so a
    /// slow validation never holds an async runtime thread. Over
    /// `limits.validation_timeout_ms` the publish is refused; the pool's
    /// thread finishes on its own (bounded by payload and schema size)
    /// while its permit keeps the pool's width.
    async fn validate(
        &self,
        live: &Arc<LiveEvent>,
        event: &str,
        payload: serde_json::Value,
        size: usize,
    ) -> Result<serde_json::Value> {
        let budget = Duration::from_millis(self.inner.config.limits.validation_timeout_ms);
        let deadline = Instant::now() + budget;
        let (violations, total, payload) = if live.schema.is_cheap(size) {
            let (v, n) = live.schema.violations(&payload, deadline);
            (v, n, payload)
        } else {
            let slow = || {
                Error::InvalidArgument(format!(
                    "payload for event '{event}' did not validate within {} ms (limits.validation_timeout_ms): simplify the schema's patterns or send a smaller payload",
                    budget.as_millis()
                ))
            };
            let permit = tokio::time::timeout_at(
                deadline.into(),
                self.inner.validators.clone().acquire_owned(),
            )
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "schema validation is saturated (limits.validation_concurrency = {}); retry",
                    self.inner.config.limits.validation_concurrency
                ))
            })?
            .map_err(Error::internal)?;
            let live = live.clone();
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let (v, n) = live.schema.violations(&payload, deadline);
                (v, n, payload)
            });
            match tokio::time::timeout_at(deadline.into(), job).await {
                Ok(done) => done.map_err(Error::internal)?,
                Err(_) => return Err(slow()),
            }
        };
        if total > 0 {
            return Err(Error::InvalidPayload {
                event: event.to_string(),
                version: live.def.version,
                violations,
                total,
            });
        }
        Ok(payload)
    }

    /// Count this publish against the event's limit (per key field value
    /// when configured); over the limit is `RateLimited` with the wait.
    async fn check_rate_limit(
        &self,
        ns: &str,
        event: &str,
        rl: &RateLimit,
        payload: &serde_json::Value,
    ) -> Result<()> {
        let mut key = format!("{ns}:{event}");
        if !rl.key_field.is_empty() {
            let v = match payload.get(&rl.key_field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            // A key value is client data of any size: long ones are kept as
            // their SHA-256 (stable across replicas, not forgeable into
            // another tenant's window).
            let v = if v.len() > 64 {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(v.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("sha256:{hex}")
            } else {
                v
            };
            key = format!("{key}:{}={v}", rl.key_field);
        }
        let window = std::time::Duration::from_millis(rl.window_ms);
        match self.inner.limiter.check(&key, rl.limit, window).await? {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after } => {
                let labels = self.inner.metrics.event("rate_limited", ns, event);
                self.inner.metrics.rate_limited.get_or_create(&labels).inc();
                Err(Error::RateLimited {
                    message: format!(
                        "event '{event}' is over its rate limit of {} per {}ms{}",
                        rl.limit,
                        rl.window_ms,
                        if rl.key_field.is_empty() {
                            String::new()
                        } else {
                            format!(" for this {}", rl.key_field)
                        }
                    ),
                    retry_after,
                })
            }
        }
    }

    /// Evaluate a filter pattern against a payload (TestFilter, CLI).
    pub fn test_filter(pattern_json: &str, payload_json: &str) -> Result<bool> {
        let filter = Filter::parse(pattern_json)
            .map_err(|e| Error::InvalidArgument(format!("pattern is invalid: {e}")))?
            .ok_or_else(|| Error::InvalidArgument("pattern is empty".into()))?;
        let payload = schema::parse_json("payload", payload_json)?;
        Ok(filter.matches(&payload))
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

impl Engine {
    /// Validate and durably store a worker's task subscriptions. Messages
    /// name the offending entry (`tasks[1].event`).
    pub async fn register_tasks(&self, ns: &str, subs: &[Subscription]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, s) in subs.iter().enumerate() {
            schema::check_identifier(&format!("tasks[{i}].id"), &s.task_id)?;
            if !seen.insert(&s.task_id) {
                return Err(Error::InvalidArgument(format!(
                    "tasks[{i}].id: task '{}' is registered twice by this worker",
                    s.task_id
                )));
            }
            if crate::routing::pattern::is_pattern(&s.event) {
                crate::routing::pattern::check(&format!("tasks[{i}].event"), &s.event)?;
            } else if let Err(Error::NotFound { .. }) = {
                schema::check_event_name(&s.event)
                    .map_err(|e| Error::InvalidArgument(format!("tasks[{i}].event: {e}")))?;
                self.inner.registry.event(ns, &s.event).await
            } {
                return Err(Error::not_found(
                    EntityKind::Event,
                    &s.event,
                    format!(
                        "tasks[{i}]: task '{}' subscribes to event '{}', which is not defined in namespace '{ns}'; define it first",
                        s.task_id, s.event
                    ),
                ));
            }
            if s.filter_json.len() > limits::MAX_FILTER_BYTES {
                return Err(Error::InvalidArgument(format!(
                    "tasks[{i}].filter_json is {} bytes, over the limit of {} bytes",
                    s.filter_json.len(),
                    limits::MAX_FILTER_BYTES
                )));
            }
            Filter::parse(&s.filter_json).map_err(|e| {
                Error::InvalidArgument(format!(
                    "tasks[{i}].filter_json (task '{}'): {e}",
                    s.task_id
                ))
            })?;
            if !s.consumer_group.is_empty() {
                schema::check_identifier(&format!("tasks[{i}].consumer_group"), &s.consumer_group)?;
            }
            let r = &s.retry;
            if r.max_attempts == 0 || r.max_attempts > 1000 {
                return Err(Error::InvalidArgument(format!(
                    "tasks[{i}].retry.max_attempts: {} is out of range 1..=1000",
                    r.max_attempts
                )));
            }
            if !(1.0..=100.0).contains(&r.multiplier) || r.initial_backoff_ms > r.max_backoff_ms {
                return Err(Error::InvalidArgument(format!(
                    "tasks[{i}].retry: multiplier must be in 1..=100 and initial_backoff_ms <= max_backoff_ms (got {r:?})"
                )));
            }
            if s.lease_ms < 100 || s.lease_ms > 24 * 3_600_000 {
                return Err(Error::InvalidArgument(format!(
                    "tasks[{i}].lease_ms: {} is out of range 100..=86400000",
                    s.lease_ms
                )));
            }
        }
        self.inner.store.upsert_subscriptions(subs).await?;
        self.inner.registry.invalidate_subscriptions(Some(ns));
        Ok(())
    }
}
