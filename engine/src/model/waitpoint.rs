//! Waitpoints (runs, time, token), the runs they suspend, and the store's post-commit events.

use super::*;
use serde::Serialize;

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
    /// The span the wait began in (the suspending request's W3C context),
    /// kept in the parent's journal entry: its resumed attempt links to
    /// it. Publish-and-wait keeps the child publish's context instead.
    pub trace: crate::telemetry::TraceContext,
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
