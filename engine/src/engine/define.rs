//! Definitions: events (versioned schemas and options) and the tasks
//! workers register (subscriptions), validated before they are stored.

use super::Engine;
use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::limits::{self};
use crate::model::*;
use crate::routing::filter::Filter;
use crate::routing::schema::{self, CompiledSchema};

impl Engine {
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
        schema::check_not_reserved(name)?;
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
            self.audit(
                ns,
                "event.define",
                name,
                serde_json::json!({"version": def.version}),
            )
            .await;
        }
        Ok((def, created))
    }

    /// Validate and durably store a worker's task subscriptions. Messages
    /// name the offending entry (`tasks[1].event`).
    pub async fn register_tasks(&self, ns: &str, subs: &[Subscription]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let current = self.inner.registry.subscriptions(ns).await?;
        for (i, s) in subs.iter().enumerate() {
            let label = format!("tasks[{i}]");
            if !seen.insert(&s.task_id) {
                return Err(Error::InvalidArgument(format!(
                    "{label}.id: task '{}' is registered twice by this worker",
                    s.task_id
                )));
            }
            if current
                .iter()
                .any(|c| c.sub.task_id == s.task_id && c.sub.endpoint.is_some())
            {
                return Err(Error::FailedPrecondition(format!(
                    "{label}.id: '{}' is an HTTP subscription in namespace '{ns}'; give the task another id",
                    s.task_id
                )));
            }
            self.check_subscription(&label, s).await?;
        }
        self.inner.store.upsert_subscriptions(subs).await?;
        self.inner.registry.invalidate_subscriptions(Some(ns));
        Ok(())
    }

    /// Check one subscription (a task's or an HTTP subscriber's); `label`
    /// prefixes every message (`tasks[1]`, `subscription`). Its event must
    /// be defined (a `fanout.*` operational event is defined here on first
    /// use).
    pub(super) async fn check_subscription(&self, label: &str, s: &Subscription) -> Result<()> {
        let ns = &s.namespace;
        schema::check_identifier(&format!("{label}.id"), &s.task_id)?;
        if crate::routing::pattern::is_pattern(&s.event) {
            crate::routing::pattern::check(&format!("{label}.event"), &s.event)?;
        } else {
            schema::check_event_name(&s.event)
                .map_err(|e| Error::InvalidArgument(format!("{label}.event: {e}")))?;
            if s.event.starts_with("fanout.") {
                self.ensure_operational_event(ns, &s.event).await?;
            } else if let Err(Error::NotFound { .. }) =
                self.inner.registry.event(ns, &s.event).await
            {
                return Err(Error::not_found(
                    EntityKind::Event,
                    &s.event,
                    format!(
                        "{label}: {} '{}' subscribes to event '{}', which is not defined in namespace '{ns}'; define it first",
                        if s.endpoint.is_some() {
                            "subscription"
                        } else {
                            "task"
                        },
                        s.task_id,
                        s.event
                    ),
                ));
            }
        }
        if s.filter_json.len() > limits::MAX_FILTER_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{label}.filter_json is {} bytes, over the limit of {} bytes",
                s.filter_json.len(),
                limits::MAX_FILTER_BYTES
            )));
        }
        Filter::parse(&s.filter_json).map_err(|e| {
            Error::InvalidArgument(format!("{label}.filter_json (task '{}'): {e}", s.task_id))
        })?;
        if !s.consumer_group.is_empty() {
            schema::check_identifier(&format!("{label}.consumer_group"), &s.consumer_group)?;
        }
        let r = &s.retry;
        if r.max_attempts == 0 || r.max_attempts > 1000 {
            return Err(Error::InvalidArgument(format!(
                "{label}.retry.max_attempts: {} is out of range 1..=1000",
                r.max_attempts
            )));
        }
        if !(1.0..=100.0).contains(&r.multiplier) || r.initial_backoff_ms > r.max_backoff_ms {
            return Err(Error::InvalidArgument(format!(
                "{label}.retry: multiplier must be in 1..=100 and initial_backoff_ms <= max_backoff_ms (got {r:?})"
            )));
        }
        if s.lease_ms < 100 || s.lease_ms > 24 * 3_600_000 {
            return Err(Error::InvalidArgument(format!(
                "{label}.lease_ms: {} is out of range 100..=86400000",
                s.lease_ms
            )));
        }
        if s.breaker.after_failures > 1_000_000 || s.breaker.probe_after_ms > 7 * 24 * 3_600_000 {
            return Err(Error::InvalidArgument(format!(
                "{label}.breaker: after_failures must be at most 1000000 and probe_after_ms at most 7 days (got {:?})",
                s.breaker
            )));
        }
        if let Some(ep) = &s.endpoint {
            self.check_endpoint(label, ep)?;
        }
        Ok(())
    }
}
