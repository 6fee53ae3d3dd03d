//! Archived events and replay jobs.

use super::{json, text, time, time_or_epoch};
use fanout_proto::v1 as pb;
use std::collections::BTreeMap;
use std::time::SystemTime;

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
