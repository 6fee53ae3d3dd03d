//! Replay jobs.

use serde::Serialize;

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
