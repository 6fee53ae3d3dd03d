//! The publish path: validate (name, fields, size, JSON, schema), rate-limit,
//! route to subscribers, then commit through the publish batcher and wake
//! the sessions of the tasks that got runs. The crash notes of each step
//! are in the `engine` module docs.

use super::{Engine, InFlight, PublishInput};
use crate::error::{Error, Result};
use crate::limits::{self, MAX_TAG_BYTES};
use crate::model::*;
use crate::ratelimit::Decision;
use crate::routing::filter::Filter;
use crate::routing::registry::LiveEvent;
use crate::routing::schema::{self};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Engine {
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
        schema::check_not_reserved(&input.event)?;
        // A key limited to some event names (`keys create --events`).
        crate::auth::check_caller(|p| p.may_publish(&input.event))?;
        // The event's creation context (messaging semantic conventions):
        // its runs' attempts link to this span, a child of the publisher's.
        let mut span = crate::telemetry::Span::send(ns, &input.event, &input.trace);
        let mut input = input;
        input.trace = span.context();
        let out = self.publish_inner(ns, input, wp).await;
        if span.is_recording() {
            match &out {
                Ok(p) => {
                    span.set("messaging.message.id", p.event_id.clone());
                    span.set("fanout.runs_created", p.runs.len() as i64);
                }
                Err(e) => span.fail(format!("{:?}", e.codes().0)),
            }
        }
        out
    }

    pub(super) async fn publish_inner(
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
        let runs: Vec<NewRun> = subs
            .route(&input.event, &payload, &input.ordering_key, &event_id)
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
            trace: input.trace,
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
        self.inner
            .activity
            .add(crate::activity::Kind::Published, 1, now_ms());
        for (_, task, _) in &p.runs {
            m.runs_created
                .get_or_create(&m.run("runs_created", ns, event, task))
                .inc();
        }
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
}
