//! Event definitions and subscriptions (tasks and HTTP endpoints).

use super::{json, text, time_or_epoch};
use crate::task::Retry;
use fanout_proto::v1 as pb;
use std::time::{Duration, SystemTime};

/// An event's rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Publishes allowed per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// The top-level payload field the limit is counted per value of.
    pub key_field: Option<String>,
}

/// One version of an event definition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventDefinition {
    /// The event's name.
    pub name: String,
    /// The schema version.
    pub version: u32,
    /// The JSON Schema payloads are validated against.
    pub schema: serde_json::Value,
    /// What the event means.
    pub description: String,
    /// When this version was defined.
    pub created_at: SystemTime,
    /// Dead runs go to the dead-letter queue.
    pub dlq: bool,
    /// Its rate limit, if any.
    pub rate_limit: Option<RateLimit>,
}

impl From<pb::EventDefinition> for EventDefinition {
    fn from(e: pb::EventDefinition) -> Self {
        EventDefinition {
            schema: json(&e.schema_json).unwrap_or(serde_json::Value::Bool(true)),
            created_at: time_or_epoch(e.created_at_ms),
            rate_limit: e.rate_limit.filter(|r| r.limit > 0).map(|r| RateLimit {
                limit: r.limit,
                window: Duration::from_millis(r.window_ms),
                key_field: text(r.key_field),
            }),
            name: e.name,
            version: e.version,
            description: e.description,
            dlq: e.dlq,
        }
    }
}

/// A task's durable subscription.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Subscription {
    /// The task id.
    pub task_id: String,
    /// The event name or pattern.
    pub event: String,
    /// The content filter.
    pub filter: Option<serde_json::Value>,
    /// The consumer group.
    pub consumer_group: Option<String>,
    /// The retry policy.
    pub retry: Retry,
    /// The lease of a claimed run.
    pub lease: Duration,
    /// Runs are created but not claimed (paused, tripped or disabled).
    pub paused: bool,
    /// Where it stands.
    pub state: SubscriptionState,
    /// Pauses itself after consecutive failures.
    pub breaker: Breaker,
    /// Set for an HTTP subscriber (its secret is never shown again).
    pub endpoint: Option<Endpoint>,
    /// When it was last registered or changed.
    pub updated_at: SystemTime,
}

/// Where a subscription stands. Runs are created in every state; only
/// `Active` and `Probing` ones are claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionState {
    /// Its runs are claimed.
    Active,
    /// Paused by an operator.
    Paused,
    /// Paused by its breaker after consecutive failures.
    Tripped,
    /// One trial run at a time; its success resumes the subscription.
    Probing,
    /// Its endpoint answered `410 Gone`.
    Disabled,
}

impl SubscriptionState {
    fn parse(s: &str) -> Self {
        match s {
            "paused" => SubscriptionState::Paused,
            "tripped" => SubscriptionState::Tripped,
            "probing" => SubscriptionState::Probing,
            "disabled" => SubscriptionState::Disabled,
            _ => SubscriptionState::Active,
        }
    }
}

/// A subscription's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    /// Pause after this many consecutive failed attempts (0: never).
    pub after_failures: u32,
    /// Once tripped, try one run after this long (zero: wait for an operator).
    pub probe_after: Duration,
}

/// An HTTP subscriber's endpoint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Where runs are POSTed.
    pub url: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts in flight per engine replica.
    pub concurrency: u32,
    /// Deliveries per second across replicas (0: unlimited).
    pub rate_per_second: u32,
    /// While a rotated-out secret still signs beside the new one.
    pub previous_secret_until: Option<SystemTime>,
}

impl From<pb::Subscription> for Subscription {
    fn from(s: pb::Subscription) -> Self {
        let r = s.retry.unwrap_or_default();
        Subscription {
            filter: json(&s.filter_json),
            consumer_group: text(s.consumer_group),
            retry: Retry {
                max_attempts: r.max_attempts,
                initial_backoff: Duration::from_millis(r.initial_backoff_ms),
                max_backoff: Duration::from_millis(r.max_backoff_ms),
                multiplier: r.multiplier,
            },
            lease: Duration::from_millis(s.lease_ms),
            updated_at: time_or_epoch(s.updated_at_ms),
            task_id: s.task_id,
            event: s.event,
            paused: s.paused,
            state: SubscriptionState::parse(&s.state),
            breaker: s
                .breaker
                .map(|b| Breaker {
                    after_failures: b.after_failures,
                    probe_after: Duration::from_millis(b.probe_after_ms),
                })
                .unwrap_or_default(),
            endpoint: s.endpoint.map(|e| Endpoint {
                url: e.url,
                timeout: Duration::from_millis(e.timeout_ms),
                concurrency: e.concurrency,
                rate_per_second: e.rate_per_s,
                previous_secret_until: (e.previous_secret_until_ms > 0)
                    .then(|| time_or_epoch(e.previous_secret_until_ms)),
            }),
        }
    }
}
