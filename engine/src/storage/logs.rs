//! Per-attempt handler logs: appended by the worker session that holds the
//! run's lease, read by operators.

use crate::error::Result;
use crate::model::{LogLine, LogQuery, RunLogLine};
use async_trait::async_trait;

/// Handler logs, bounded per attempt.
#[async_trait]
pub trait RunLogs: Send + Sync {
    /// Store `lines` of `run_id`'s `attempt` if `worker_id` holds that
    /// attempt's lease (otherwise nothing: a stale worker's lines are
    /// dropped). Lines past `max_bytes` for the attempt (message + fields)
    /// are dropped and one truncation line stored instead. Repeated `seq`s
    /// are ignored. Returns the lines stored.
    async fn append_logs(
        &self,
        worker_id: &str,
        run_id: &str,
        attempt: u32,
        lines: &[LogLine],
        max_bytes: usize,
    ) -> Result<u64>;

    /// `run_id`'s lines in (attempt, seq) order, if the run is in
    /// `namespace` (`None`: no such run there).
    async fn run_logs(
        &self,
        namespace: &str,
        run_id: &str,
        query: &LogQuery,
    ) -> Result<Option<Vec<RunLogLine>>>;
}
