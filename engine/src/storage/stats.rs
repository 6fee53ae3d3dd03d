//! Queue gauges for `/metrics`: aggregates over runs and the outbox, read
//! at most once per metrics refresh, never per request.

use crate::error::Result;
use async_trait::async_trait;

/// Per (namespace, task): the runs that matter to an operator.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TaskStats {
    pub namespace: String,
    pub task_id: String,
    /// Queued or retrying runs whose time has come.
    pub due: u64,
    /// When the longest-waiting due run became due (epoch ms).
    pub oldest_due_at_ms: Option<i64>,
    /// Runs suspended on a waitpoint.
    pub waiting: u64,
    /// Dead runs in the DLQ.
    pub dead_letters: u64,
}

/// The store's gauges at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// At most `limit` (namespace, task) pairs, busiest first.
    pub tasks: Vec<TaskStats>,
    /// Events committed but not yet in the archive.
    pub outbox: u64,
    /// Publish time of the oldest of them (epoch ms).
    pub oldest_unarchived_ms: Option<i64>,
}

/// Queue gauges for `/metrics`.
#[async_trait]
pub trait Stats: Send + Sync {
    /// The gauges at `now_ms`, for at most `limit` (namespace, task) pairs.
    async fn queue_stats(&self, now_ms: i64, limit: usize) -> Result<QueueStats>;
}
