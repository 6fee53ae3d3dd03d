//! Domain types shared by the store, the dispatcher and the API layers.
//!
//! These are plain data: no I/O. Times are epoch milliseconds (`i64`), ids
//! are UUIDv7 strings (time ordered, so primary keys append to the index).

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `as_str` / `parse` / `ALL` / `Display` / `FromStr` for an enum stored
/// and sent as text: one spelling per variant, written once.
macro_rules! wire_names {
    ($t:ident { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];

            /// The stored / wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),* }
            }

            /// Parse the stored / wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($t::$v),)* _ => None }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = crate::error::Error;

            fn from_str(s: &str) -> crate::error::Result<Self> {
                $t::parse(s).ok_or_else(|| {
                    crate::error::Error::Internal(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($t),
                        crate::error::clip(s, 64),
                        $t::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })
            }
        }
    };
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

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
    pub namespace: String,
    pub task_id: String,
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
}

/// What a waitpoint waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitpointKind {
    /// Every run of one event reaching a final state (scatter-gather).
    Runs,
    /// A point in time (`sleep`).
    Time,
    /// A call from outside (`fanout waitpoint complete ID`).
    Token,
}

wire_names!(WaitpointKind {
    Runs = "runs",
    Time = "time",
    Token = "token",
});

/// Where a waitpoint stands. Final: `Completed`, `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitpointStatus {
    /// Not final yet.
    Waiting,
    /// Every child final, the time reached, or the token completed.
    Completed,
    /// The deadline passed first.
    TimedOut,
}

wire_names!(WaitpointStatus {
    Waiting = "waiting",
    Completed = "completed",
    TimedOut = "timed_out",
});

/// Where a replay job stands. Final: `Completed`, `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Pages still to go (a runner holds or will take its lease).
    Running,
    /// Every page of the range replayed.
    Completed,
    /// Stopped by a caller.
    Cancelled,
}

wire_names!(ReplayStatus {
    Running = "running",
    Completed = "completed",
    Cancelled = "cancelled",
});

/// A run suspending itself on a new waitpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentRef {
    pub run_id: String,
    pub attempt: u32,
    /// Journal key under which the waitpoint id is recorded.
    pub step_key: String,
    /// The worker session that must hold the run's lease for this attempt.
    pub worker_id: String,
}

/// A waitpoint to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWaitpoint {
    pub id: String,
    pub namespace: String,
    pub kind: WaitpointKind,
    /// Deadline (runs, token) or wake-up time (time), epoch ms; 0 = none.
    pub timeout_at_ms: i64,
    pub parent: Option<ParentRef>,
}

/// A waitpoint as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waitpoint {
    pub id: String,
    pub namespace: String,
    pub kind: WaitpointKind,
    pub status: WaitpointStatus,
    pub pending: i64,
    pub total: i64,
    pub event_id: String,
    pub parent_run_id: String,
    pub timeout_at_ms: i64,
    pub data_json: String,
    pub created_at_ms: i64,
    pub completed_at_ms: i64,
}

impl Waitpoint {
    /// Completed or timed out.
    pub fn is_final(&self) -> bool {
        self.status != WaitpointStatus::Waiting
    }
}

/// The state of one child run of a `runs` waitpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildResult {
    pub run_id: String,
    pub task_id: String,
    pub status: RunStatus,
    pub output_json: String,
    pub error: String,
}

/// Things the store tells the engine after a commit, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// A child run of waitpoint `.0` completed. Sent before the event that
    /// finishes the waitpoint, so a local waiter that heard every child
    /// can answer without reading the store.
    ChildCompleted(String, Box<ChildResult>),
    /// A waitpoint completed or timed out.
    WaitpointFinished(String),
    /// A waitpoint completed, with its final row.
    WaitpointDone(Box<Waitpoint>),
    /// Suspended runs were re-queued.
    RunsResumed,
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
    pub task: Option<String>,
    pub status: Option<RunStatus>,
    pub before: Option<String>,
    pub limit: u32,
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
}

/// A replay job: archived events in `[from_ms, to_ms)` re-sent through
/// today's subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayJob {
    pub id: String,
    pub namespace: String,
    /// Event name or pattern (`order.*`, `#`).
    pub event_pattern: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only these subscribers (empty: all).
    pub tasks: Vec<String>,
    /// Only archived events whose payload matches (empty: all).
    pub filter_json: String,
    pub dry_run: bool,
    /// Events per second (0: unlimited).
    pub rate_per_sec: f64,
    pub skip_already_replayed: bool,
    pub status: ReplayStatus,
    pub cursor_ms: i64,
    pub cursor_id: String,
    pub events_total: i64,
    pub events_scanned: i64,
    pub events_replayed: i64,
    pub runs_created: i64,
    pub by_task: std::collections::BTreeMap<String, i64>,
    pub error: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: i64,
}
