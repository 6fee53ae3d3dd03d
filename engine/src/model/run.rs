//! Runs: their status, retry policy, dead-letter state, attempts, and what a worker reports.

use super::*;
use serde::{Deserialize, Serialize};

/// The life of a run. Terminal states are `Completed` and `Dead`.
///
/// ```text
/// queued ──claim──▶ running ──ok──▶ completed
///    ▲                 │ error (attempts left) ──▶ retrying ──due──▶ (claimable)
///    │                 │ error (fatal / exhausted) ──▶ dead
///    └── lease expired / worker gone: counted as a failed attempt ──┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Leased to a worker.
    Running,
    /// Suspended on a waitpoint: holds no worker slot, re-queued when the
    /// waitpoint completes.
    Waiting,
    /// Failed, waiting for its backoff to elapse.
    Retrying,
    /// Finished with an output.
    Completed,
    /// Failed for good: fatal error or attempts exhausted.
    Dead,
}

wire_names!(RunStatus {
    Queued = "queued",
    Running = "running",
    Waiting = "waiting",
    Retrying = "retrying",
    Completed = "completed",
    Dead = "dead",
});

impl RunStatus {
    /// Completed or dead: nothing will happen to the run any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Dead)
    }
}

/// Per-task retry policy: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff_ms: u64,
    /// Cap on any single backoff.
    pub max_backoff_ms: u64,
    /// Growth factor per attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt number `attempt` (1-based), before
    /// jitter: `initial * multiplier^(attempt-1)`, capped.
    pub fn base_backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let ms = (self.initial_backoff_ms as f64 * exp).min(self.max_backoff_ms as f64);
        Duration::from_millis(ms.max(0.0) as u64)
    }

    /// The backoff with jitter: uniformly in `[base/2, base]`, so retries of
    /// runs that failed together spread out without ever waiting longer than
    /// the documented curve.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.base_backoff(attempt).as_millis() as u64;
        if base < 2 {
            return Duration::from_millis(base);
        }
        let jittered = rand::random_range(base / 2..=base);
        Duration::from_millis(jittered)
    }
}

/// Where a run stands with respect to the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqState {
    /// Not dead, or dead with the event's DLQ disabled.
    None,
    InDlq,
    Discarded,
}

impl DlqState {
    /// Every state with its stored code (the `runs.dlq` column).
    pub const CODES: [(DlqState, i64); 3] = [
        (DlqState::None, 0),
        (DlqState::InDlq, 1),
        (DlqState::Discarded, 2),
    ];

    /// The state of a stored code; unknown codes read as `None`.
    pub fn from_code(c: i64) -> Self {
        Self::CODES
            .iter()
            .find(|(_, code)| *code == c)
            .map_or(DlqState::None, |(s, _)| *s)
    }

    /// The stored code.
    pub fn code(self) -> i64 {
        Self::CODES
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(0, |(_, c)| *c)
    }

    /// The wire spelling (`""` for `None`).
    pub fn as_str(self) -> &'static str {
        match self {
            DlqState::None => "",
            DlqState::InDlq => "in_dlq",
            DlqState::Discarded => "discarded",
        }
    }
}

/// A run whose attempt failed without a result (lease lapsed): whose it was
/// and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub run_id: String,
    pub namespace: String,
    pub task_id: String,
    /// The run's event name.
    pub event: String,
    pub effect: CompletionEffect,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterSelector {
    /// Explicit run ids (ignored when `all`).
    pub ids: Vec<String>,
    /// Every dead letter, optionally narrowed by event and task.
    pub all: bool,
    pub event: Option<String>,
    pub task: Option<String>,
    /// Only dead letters whose error starts with this text (an error
    /// fingerprint from [`DeadLetterGroup`]).
    pub error_prefix: Option<String>,
}

impl DeadLetterSelector {
    /// A short description for the audit log (`3 runs`, `all task=x`).
    pub fn describe(&self) -> String {
        if !self.all {
            return match self.ids.as_slice() {
                [one] => one.clone(),
                ids => format!("{} runs", ids.len()),
            };
        }
        let mut d = String::from("all");
        for (k, v) in [
            ("event", &self.event),
            ("task", &self.task),
            ("error", &self.error_prefix),
        ] {
            if let Some(v) = v {
                d.push_str(&format!(" {k}={}", crate::error::clip(v, 100)));
            }
        }
        d
    }
}

/// Dead letters sharing a task and the start of their error: what an
/// operator triages together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterGroup {
    pub task_id: String,
    /// The first [`DeadLetterGroup::FINGERPRINT_CHARS`] characters of the error.
    pub fingerprint: String,
    pub count: u64,
    pub newest_run_id: String,
    pub newest_at_ms: i64,
}

impl DeadLetterSelector {
    /// Either ids, or `all` optionally narrowed by event, task and error
    /// prefix.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.all != self.ids.is_empty() {
            return Err(Error::InvalidArgument(
                "give either ids or all (optionally with event/task/error_prefix), not both and not neither"
                    .into(),
            ));
        }
        if !self.all && (self.event.is_some() || self.task.is_some() || self.error_prefix.is_some())
        {
            return Err(Error::InvalidArgument(
                "event, task and error_prefix narrow 'all'; they cannot be combined with ids"
                    .into(),
            ));
        }
        if self.ids.len() > crate::limits::MAX_SELECTOR_IDS {
            return Err(Error::InvalidArgument(format!(
                "ids has {} entries, over the limit of {}; select with all and event/task/error_prefix instead",
                self.ids.len(),
                crate::limits::MAX_SELECTOR_IDS
            )));
        }
        Ok(())
    }
}

impl DeadLetterGroup {
    /// How much of an error names its group.
    pub const FINGERPRINT_CHARS: usize = 80;
}

/// A run's journal entry (a recorded step).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub key: String,
    pub value_json: String,
    pub created_at_ms: i64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: String,
    pub namespace: String,
    pub event_id: String,
    pub event: String,
    pub task_id: String,
    pub status: RunStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub available_at_ms: i64,
    pub output_json: String,
    pub last_error: String,
    pub worker_id: String,
    pub ordering_key: String,
    pub consumer_group: String,
    pub dlq: DlqState,
    /// The original event id when this run was created by a replay.
    pub replay_of: String,
    /// The publish-and-wait waitpoint this run is a child of ("" if none).
    pub waitpoint_id: String,
    /// When the current or last attempt started (0: never).
    pub started_at_ms: i64,
    /// When a running attempt's lease ends (0: not running).
    pub lease_expires_at_ms: i64,
}

/// A run with everything about it: attempts, its event's payload and tags,
/// and the run that published that event (publish-and-wait inside a task).
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: Run,
    pub attempts: Vec<Attempt>,
    pub payload_json: String,
    pub tags: Vec<String>,
    pub publisher_run_id: String,
    /// The event's W3C `traceparent` (empty when it was not traced).
    pub traceparent: String,
}

/// One finished attempt of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub worker_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub ok: bool,
    pub output_json: String,
    pub error: String,
}

/// A run handed to a worker: what it needs to execute the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    pub run_id: String,
    pub attempt: u32,
    pub task_id: String,
    pub event: String,
    pub event_id: String,
    pub payload_json: String,
    pub lease_ms: u64,
    pub ordering_key: String,
    pub tags: Vec<String>,
    pub published_at_ms: i64,
    /// The schema version the event was published under.
    pub event_version: u32,
    /// The event's creation context (its publish's `send` span).
    pub trace: crate::telemetry::TraceContext,
    /// The original event's id when a replay created this run.
    pub replay_of: Option<String>,
    /// The run's journal: `(step key, value JSON)` recorded by earlier
    /// executions (memoized steps, waitpoints it suspended on).
    pub journal: Vec<(String, String)>,
}

/// How an attempt ended, as reported by a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success with the handler's output (JSON text).
    Ok(String),
    /// Failure; `fatal` skips the remaining retries.
    Failed {
        message: String,
        fatal: bool,
        /// The handler asked for the next attempt no sooner than this (ms
        /// after the failure; 0: the backoff decides alone).
        retry_after_ms: u64,
    },
}

/// A worker's report for one attempt.
#[derive(Debug, Clone)]
pub struct Completion {
    pub run_id: String,
    pub attempt: u32,
    pub worker_id: String,
    pub outcome: Outcome,
}

/// What became of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionEffect {
    Completed,
    /// Scheduled for another attempt at this time.
    Retrying {
        at_ms: i64,
    },
    Dead,
    /// The run was no longer held by that worker/attempt (lease expired and
    /// it moved on); the report was ignored.
    Stale,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub event: Option<String>,
    /// One event's fan-out.
    pub event_id: Option<String>,
    pub task: Option<String>,
    pub status: Option<RunStatus>,
    pub ordering_key: Option<String>,
    /// Only runs whose last error starts with this text.
    pub error_prefix: Option<String>,
    /// Only runs created at or after this instant (epoch ms).
    pub created_from_ms: Option<i64>,
    /// Only runs created before this instant (epoch ms).
    pub created_to_ms: Option<i64>,
    pub before: Option<String>,
    pub limit: u32,
}
