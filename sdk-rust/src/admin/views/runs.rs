//! Runs, their attempts and their log lines as the engine reports them.

use super::{json, text, time, time_or_epoch};
use crate::error::Result;
use fanout_proto::v1 as pb;
use serde::de::DeserializeOwned;
use std::time::SystemTime;

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
