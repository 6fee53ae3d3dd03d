//! Typed views of what the engine reports, converted once from the wire
//! (strings kept one release beside the enums are read as a fallback).

use crate::error::Result;
use crate::task::Retry;
use fanout_proto::v1 as pb;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Epoch milliseconds as a time; 0 (unset) as `None`.
pub(crate) fn time(ms: i64) -> Option<SystemTime> {
    (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs()))
}

fn time_or_epoch(ms: i64) -> SystemTime {
    time(ms).unwrap_or(UNIX_EPOCH)
}

fn text(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn json(s: &str) -> Option<serde_json::Value> {
    if s.is_empty() {
        return None;
    }
    Some(serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string())))
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunStatus {
    /// Waiting to be claimed.
    Queued,
    /// An attempt is executing.
    Running,
    /// Suspended on a waitpoint (publish-and-wait, sleep, token).
    Waiting,
    /// Failed; the next attempt is scheduled.
    Retrying,
    /// Finished with an output.
    Completed,
    /// Out of attempts, or failed fatally.
    Dead,
    /// A status this SDK does not know (a newer engine).
    Unknown,
}

impl RunStatus {
    /// The wire spelling (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Retrying => "retrying",
            RunStatus::Completed => "completed",
            RunStatus::Dead => "dead",
            RunStatus::Unknown => "unknown",
        }
    }

    /// Completed or dead: it will not change unless retried from the DLQ.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Dead)
    }

    fn from_wire(code: i32, text: &str) -> Self {
        match pb::RunStatus::try_from(code) {
            Ok(pb::RunStatus::Queued) => RunStatus::Queued,
            Ok(pb::RunStatus::Running) => RunStatus::Running,
            Ok(pb::RunStatus::Waiting) => RunStatus::Waiting,
            Ok(pb::RunStatus::Retrying) => RunStatus::Retrying,
            Ok(pb::RunStatus::Completed) => RunStatus::Completed,
            Ok(pb::RunStatus::Dead) => RunStatus::Dead,
            _ => [
                RunStatus::Queued,
                RunStatus::Running,
                RunStatus::Waiting,
                RunStatus::Retrying,
                RunStatus::Completed,
                RunStatus::Dead,
            ]
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(RunStatus::Unknown),
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dead run's place in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DlqState {
    /// Not dead, or dead with its event's DLQ disabled.
    None,
    /// Dead and waiting for an operator (retry or discard).
    InDlq,
    /// Dead and discarded.
    Discarded,
}

impl DlqState {
    fn from_wire(code: i32, text: &str) -> Self {
        match pb::DlqState::try_from(code) {
            Ok(pb::DlqState::InDlq) => DlqState::InDlq,
            Ok(pb::DlqState::Discarded) => DlqState::Discarded,
            _ => match text {
                "in_dlq" => DlqState::InDlq,
                "discarded" => DlqState::Discarded,
                _ => DlqState::None,
            },
        }
    }
}

/// One subscriber's durable run of one event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Run {
    /// The run's id (time ordered).
    pub id: String,
    /// The event's name.
    pub event: String,
    /// The event's id.
    pub event_id: String,
    /// The subscribed task.
    pub task_id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// The attempt budget.
    pub max_attempts: u32,
    /// When the run was created (at publish).
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
    /// When a queued or retrying run may next be claimed.
    pub available_at: Option<SystemTime>,
    /// The output (JSON) of a completed run.
    pub output: Option<serde_json::Value>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The worker session holding (or last holding) the run.
    pub worker_id: Option<String>,
    /// The event's ordering key.
    pub ordering_key: Option<String>,
    /// The consumer group the run was chosen for.
    pub consumer_group: Option<String>,
    /// Its place in the dead-letter queue.
    pub dlq: DlqState,
    /// When a replay created this run: the original event's id.
    pub replay_of: Option<String>,
    /// The publish-and-wait waitpoint this run reports to.
    pub waitpoint_id: Option<String>,
    /// When the current or last attempt started.
    pub started_at: Option<SystemTime>,
    /// When a running attempt's lease ends.
    pub lease_expires_at: Option<SystemTime>,
}

impl Run {
    /// The output deserialized into `O` (`None` until completed).
    pub fn output_as<O: DeserializeOwned>(&self) -> Option<Result<O>> {
        self.output
            .as_ref()
            .map(|v| serde_json::from_value(v.clone()).map_err(Into::into))
    }
}

impl From<pb::Run> for Run {
    fn from(r: pb::Run) -> Self {
        Run {
            status: RunStatus::from_wire(r.status_code, &r.status),
            dlq: DlqState::from_wire(r.dlq_state, &r.dlq),
            output: json(&r.output_json),
            created_at: time_or_epoch(r.created_at_ms),
            updated_at: time_or_epoch(r.updated_at_ms),
            available_at: time(r.available_at_ms),
            started_at: time(r.started_at_ms),
            lease_expires_at: time(r.lease_expires_at_ms),
            id: r.id,
            event: r.event,
            event_id: r.event_id,
            task_id: r.task,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            last_error: text(r.last_error),
            worker_id: text(r.worker_id),
            ordering_key: text(r.ordering_key),
            consumer_group: text(r.consumer_group),
            replay_of: text(r.replay_of),
            waitpoint_id: text(r.waitpoint_id),
        }
    }
}

/// A run with its attempts and its event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Every finished attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The event's payload.
    pub payload: serde_json::Value,
    /// The event's tags.
    pub tags: Vec<String>,
    /// The run that published this run's event (publish-and-wait inside a
    /// task).
    pub publisher_run_id: Option<String>,
}

impl From<pb::RunDetail> for RunDetail {
    fn from(d: pb::RunDetail) -> Self {
        RunDetail {
            run: d.run.unwrap_or_default().into(),
            attempts: d.attempts.into_iter().map(Attempt::from).collect(),
            payload: json(&d.payload_json).unwrap_or_default(),
            tags: d.tags,
            publisher_run_id: text(d.publisher_run_id),
        }
    }
}

/// One finished attempt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first.
    pub number: u32,
    /// When it started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its output, when it succeeded.
    pub output: Option<serde_json::Value>,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// The worker session that ran it.
    pub worker_id: Option<String>,
}

impl From<pb::Attempt> for Attempt {
    fn from(a: pb::Attempt) -> Self {
        Attempt {
            number: a.attempt,
            started_at: time(a.started_at_ms),
            finished_at: time(a.finished_at_ms),
            ok: a.ok,
            output: json(&a.output_json),
            error: text(a.error),
            worker_id: text(a.worker_id),
        }
    }
}

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

/// An event as the archive holds it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArchivedEvent {
    /// The event's id.
    pub event_id: String,
    /// Its name.
    pub event: String,
    /// The schema version it was published under.
    pub version: u32,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its ordering key.
    pub ordering_key: Option<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// How many runs the publish created.
    pub fan_out_count: u32,
    /// When it was published.
    pub published_at: SystemTime,
    /// The run that published it (publish-and-wait inside a task).
    pub publisher_run_id: Option<String>,
    /// The publish's W3C trace context, when it was traced.
    pub traceparent: Option<String>,
}

impl From<pb::ArchivedEvent> for ArchivedEvent {
    fn from(e: pb::ArchivedEvent) -> Self {
        ArchivedEvent {
            payload: json(&e.payload_json).unwrap_or_default(),
            published_at: time_or_epoch(e.published_at_ms),
            event_id: e.event_id,
            event: e.event,
            version: e.version,
            tags: e.tags,
            ordering_key: text(e.ordering_key),
            idempotency_key: text(e.idempotency_key),
            fan_out_count: e.fan_out_count,
            publisher_run_id: text(e.publisher_run_id),
            traceparent: text(e.traceparent),
        }
    }
}

/// Where a replay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplayStatus {
    /// Re-sending archived events.
    Running,
    /// Every event in range went through.
    Completed,
    /// Stopped by an operator.
    Cancelled,
    /// A status this SDK does not know.
    Unknown,
}

/// A replay job: archived events re-sent through today's subscribers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Replay {
    /// The replay's id.
    pub id: String,
    /// Where it stands.
    pub status: ReplayStatus,
    /// The event name or pattern replayed.
    pub event: String,
    /// Start of the range (inclusive).
    pub from: SystemTime,
    /// End of the range (exclusive).
    pub to: SystemTime,
    /// Only these subscribers (empty: all).
    pub tasks: Vec<String>,
    /// Only events whose payload matches this filter.
    pub filter: Option<serde_json::Value>,
    /// Counted only; nothing created.
    pub dry_run: bool,
    /// Archived events in range (an upper bound for patterns).
    pub events_total: u64,
    /// Events read so far.
    pub events_scanned: u64,
    /// Events that matched and were (or would be) re-sent.
    pub events_replayed: u64,
    /// Runs created.
    pub runs_created: u64,
    /// Runs per task.
    pub by_task: BTreeMap<String, u64>,
    /// Why it stopped, if it failed.
    pub error: Option<String>,
    /// When it was started.
    pub created_at: SystemTime,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
}

impl Replay {
    /// Completed or cancelled.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status,
            ReplayStatus::Completed | ReplayStatus::Cancelled
        )
    }
}

impl From<pb::ReplayJob> for Replay {
    fn from(j: pb::ReplayJob) -> Self {
        let status = match pb::ReplayStatus::try_from(j.status_code) {
            Ok(pb::ReplayStatus::Running) => ReplayStatus::Running,
            Ok(pb::ReplayStatus::Completed) => ReplayStatus::Completed,
            Ok(pb::ReplayStatus::Cancelled) => ReplayStatus::Cancelled,
            _ => match j.status.as_str() {
                "running" => ReplayStatus::Running,
                "completed" => ReplayStatus::Completed,
                "cancelled" => ReplayStatus::Cancelled,
                _ => ReplayStatus::Unknown,
            },
        };
        Replay {
            status,
            from: time_or_epoch(j.from_ms),
            to: time_or_epoch(j.to_ms),
            filter: json(&j.filter_json),
            by_task: serde_json::from_str(&j.by_task_json).unwrap_or_default(),
            created_at: time_or_epoch(j.created_at_ms),
            finished_at: time(j.finished_at_ms),
            error: text(j.error),
            id: j.id,
            event: j.event,
            tasks: j.tasks,
            dry_run: j.dry_run,
            events_total: j.events_total,
            events_scanned: j.events_scanned,
            events_replayed: j.events_replayed,
            runs_created: j.runs_created,
        }
    }
}

/// One line a run's handler logged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunLog {
    /// The attempt that logged it.
    pub attempt: u32,
    /// Its place in the attempt's log (0, 1, 2…).
    pub seq: u32,
    /// When it was logged.
    pub at: SystemTime,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The message.
    pub message: String,
    /// The event's other fields.
    pub fields: Option<serde_json::Value>,
}

impl From<pb::RunLogLine> for RunLog {
    fn from(l: pb::RunLogLine) -> Self {
        let line = l.line.unwrap_or_default();
        RunLog {
            attempt: l.attempt,
            seq: line.seq,
            at: time_or_epoch(line.at_ms),
            level: line.level,
            message: line.message,
            fields: json(&line.fields_json),
        }
    }
}
