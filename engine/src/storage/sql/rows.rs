//! Column lists and row mappers shared by several statements.

use crate::error::{Error, Result};
use crate::model::*;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(super) const DEF_SELECT: &str = "SELECT d.namespace, d.name, d.version, d.schema_json, d.description, d.created_at_ms, \
    o.dlq, o.rl_limit, o.rl_window_ms, o.rl_key FROM event_definitions d \
    LEFT JOIN event_options o ON o.namespace = d.namespace AND o.name = d.name";

pub(super) fn def_from_row(r: &AnyRow) -> Result<EventDef> {
    let limit = r.try_get::<Option<i64>, _>("rl_limit")?.unwrap_or(0);
    Ok(EventDef {
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        version: r.try_get::<i64, _>("version")? as u32,
        schema_json: r.try_get("schema_json")?,
        description: r.try_get("description")?,
        created_at_ms: r.try_get("created_at_ms")?,
        options: EventOptions {
            dlq: r.try_get::<Option<i64>, _>("dlq")?.unwrap_or(1) != 0,
            rate_limit: (limit > 0)
                .then(|| -> Result<RateLimit> {
                    Ok(RateLimit {
                        limit: limit as u32,
                        window_ms: r.try_get::<Option<i64>, _>("rl_window_ms")?.unwrap_or(0) as u64,
                        key_field: r
                            .try_get::<Option<String>, _>("rl_key")?
                            .unwrap_or_default(),
                    })
                })
                .transpose()?,
        },
    })
}

pub(super) fn sub_from_row(r: &AnyRow) -> Result<Subscription> {
    Ok(Subscription {
        namespace: r.try_get("namespace")?,
        task_id: r.try_get("task_id")?,
        event: r.try_get("event")?,
        filter_json: r.try_get("filter_json")?,
        consumer_group: r.try_get("consumer_group")?,
        retry: RetryPolicy {
            max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
            initial_backoff_ms: r.try_get::<i64, _>("initial_backoff_ms")? as u64,
            max_backoff_ms: r.try_get::<i64, _>("max_backoff_ms")? as u64,
            multiplier: r.try_get("backoff_multiplier")?,
        },
        lease_ms: r.try_get::<i64, _>("lease_ms")? as u64,
        updated_at_ms: r.try_get("updated_at_ms")?,
        state: r.try_get::<String, _>("state")?.parse()?,
        breaker: Breaker {
            after_failures: r.try_get::<i64, _>("breaker_after")? as u32,
            probe_after_ms: r.try_get::<i64, _>("probe_after_ms")? as u64,
        },
        endpoint: match r.try_get::<String, _>("endpoint_json")? {
            j if j.is_empty() => None,
            j => Some(serde_json::from_str(&j).map_err(|e| {
                crate::error::Error::Internal(format!("stored endpoint is not valid: {e}"))
            })?),
        },
    })
}

pub(super) const RUN_COLUMNS: &str = "id, namespace, event_id, event, task_id, status, attempts, max_attempts, \
    created_at_ms, updated_at_ms, available_at_ms, output_json, last_error, worker_id, ordering_key, consumer_group, dlq, replay_of, \
    waitpoint_id, started_at_ms, lease_expires_at_ms";

pub(super) fn run_from_row(r: &AnyRow) -> Result<Run> {
    let status: String = r.try_get("status")?;
    Ok(Run {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        event_id: r.try_get("event_id")?,
        event: r.try_get("event")?,
        task_id: r.try_get("task_id")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| Error::Internal(format!("unknown run status '{status}' in store")))?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        available_at_ms: r.try_get("available_at_ms")?,
        output_json: r.try_get("output_json")?,
        last_error: r.try_get("last_error")?,
        worker_id: r.try_get("worker_id")?,
        ordering_key: r.try_get("ordering_key")?,
        consumer_group: r.try_get("consumer_group")?,
        dlq: DlqState::from_code(r.try_get("dlq")?),
        replay_of: r.try_get("replay_of")?,
        waitpoint_id: r.try_get("waitpoint_id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        lease_expires_at_ms: r.try_get("lease_expires_at_ms")?,
    })
}

pub(super) fn tags_from_json(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// A claimed run as the claim's `RETURNING` gives it, its event's payload
/// included; the journal is filled in by the caller.
pub(super) fn claimed_from_row(r: &AnyRow) -> Result<ClaimedRun> {
    Ok(ClaimedRun {
        run_id: r.try_get("id")?,
        attempt: r.try_get::<i64, _>("attempts")? as u32,
        task_id: r.try_get("task_id")?,
        event: r.try_get("event")?,
        event_id: r.try_get("event_id")?,
        payload_json: r.try_get("payload")?,
        lease_ms: r.try_get::<i64, _>("lease_ms")? as u64,
        ordering_key: r.try_get("ordering_key")?,
        tags: tags_from_json(&r.try_get::<String, _>("tags")?),
        published_at_ms: r.try_get("published_at_ms")?,
        event_version: u32::try_from(r.try_get::<i64, _>("event_version")?).unwrap_or(0),
        trace: crate::telemetry::TraceContext {
            traceparent: r.try_get("traceparent")?,
            tracestate: r.try_get("tracestate")?,
        },
        replay_of: Some(r.try_get::<String, _>("replay_of")?).filter(|s| !s.is_empty()),
        journal: Vec::new(),
    })
}

/// The `events` columns [`event_from_row`] reads.
pub(super) const EVENT_COLUMNS: &str = "id, namespace, name, version, payload, tags, ordering_key, \
    idempotency_key, fan_out_count, published_at_ms, publisher_run_id, traceparent, tracestate";

/// An `events` row (selected with [`EVENT_COLUMNS`]) in its archive shape.
pub(super) fn event_from_row(r: &AnyRow) -> Result<ArchivedEvent> {
    let tags: String = r.try_get("tags")?;
    Ok(ArchivedEvent {
        event_id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        event_name: r.try_get("name")?,
        version: r.try_get::<i64, _>("version")? as u32,
        payload: r.try_get("payload")?,
        tags: tags_from_json(&tags),
        ordering_key: r.try_get("ordering_key")?,
        idempotency_key: r.try_get("idempotency_key")?,
        fan_out_count: r.try_get::<i64, _>("fan_out_count")? as u32,
        published_at_ms: r.try_get::<i64, _>("published_at_ms")? as u64,
        publisher_run_id: r.try_get("publisher_run_id")?,
        traceparent: r.try_get("traceparent")?,
        tracestate: r.try_get("tracestate")?,
    })
}
