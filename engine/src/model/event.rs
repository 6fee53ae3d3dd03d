//! Events and their definitions, subscriptions, what a publish stores and answers, the archived form.

use super::*;
use serde::{Deserialize, Serialize};

/// A version of an event definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventDef {
    pub namespace: String,
    pub name: String,
    pub version: u32,
    /// The schema as given (JSON text).
    pub schema_json: String,
    pub description: String,
    pub created_at_ms: i64,
    /// Settings of the event (not versioned: the latest define wins).
    pub options: EventOptions,
}

/// Per-event delivery settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOptions {
    /// Dead runs are kept in the dead-letter queue (default on).
    pub dlq: bool,
    pub rate_limit: Option<RateLimit>,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            dlq: true,
            rate_limit: None,
        }
    }
}

/// At most `limit` publishes per `window_ms`, optionally per value of a
/// top-level payload field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub limit: u32,
    pub window_ms: u64,
    pub key_field: String,
}

/// A task's standing subscription to an event; outlives the worker that made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub namespace: String,
    pub task_id: String,
    /// The event name (exact for now; patterns arrive with filters).
    pub event: String,
    /// Content filter as JSON text, empty for none.
    pub filter_json: String,
    pub consumer_group: String,
    pub retry: RetryPolicy,
    pub lease_ms: u64,
    pub updated_at_ms: i64,
    /// Active, paused, tripped, probing or disabled: runs are created in
    /// every state, claimed only when active or probing. Registering a
    /// task leaves it as it is.
    pub state: SubscriptionState,
    /// Pause after consecutive failures (kept across re-registration).
    pub breaker: Breaker,
    /// An HTTP subscriber: the engine POSTs its runs here (`None`: an SDK
    /// task claims them). Not serialized: it holds the signing secrets.
    #[serde(skip_serializing)]
    pub endpoint: Option<Endpoint>,
}

impl Subscription {
    /// Whether its runs wait unclaimed.
    pub fn paused(&self) -> bool {
        self.state.holds_runs()
    }
}

/// One run to create in a publish transaction.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub task_id: String,
    pub consumer_group: String,
    pub retry: RetryPolicy,
    pub lease_ms: u64,
}

/// An event to store, with the runs it fans out to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub version: u32,
    pub payload_json: String,
    pub ordering_key: String,
    pub idempotency_key: String,
    pub tags: Vec<String>,
    pub published_at_ms: i64,
    pub publisher_run_id: String,
    /// The event's DLQ setting, copied onto its runs.
    pub dlq: bool,
    pub runs: Vec<NewRun>,
    /// Publish-and-wait: a waitpoint on these runs, created in the same tx.
    pub waitpoint: Option<NewWaitpoint>,
    /// Replay: the archived event this is a re-send of ("" otherwise).
    /// Replayed copies are not archived again.
    pub replay_of: String,
    /// The publish's trace context (its `send` span), empty when untraced.
    pub trace: crate::telemetry::TraceContext,
}

/// What a publish committed (or, when deduplicated, found).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub event_id: String,
    pub version: u32,
    /// `(run id, task id, consumer group)` per run.
    pub runs: Vec<(String, String, String)>,
    pub deduplicated: bool,
    /// The waitpoint created with the event (publish-and-wait), if any.
    pub waitpoint_id: String,
    /// True when the publishing run was suspended on that waitpoint.
    pub suspended: bool,
}

/// An event waiting in the outbox to be shipped to the archive, and the
/// archive's own record of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedEvent {
    pub event_id: String,
    pub namespace: String,
    pub event_name: String,
    pub version: u32,
    pub payload: String,
    pub tags: Vec<String>,
    pub ordering_key: String,
    pub idempotency_key: String,
    pub fan_out_count: u32,
    pub published_at_ms: u64,
    pub publisher_run_id: String,
    /// The publish's W3C trace context: a replay's runs link to it.
    #[serde(default)]
    pub traceparent: String,
    #[serde(default)]
    pub tracestate: String,
}
