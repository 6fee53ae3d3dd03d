//! Waitpoints (runs, time, token) and the step journal of running runs.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Waitpoints (runs, time, token) and the step journal of running runs.
#[async_trait]
pub trait WaitpointStore: Send + Sync {
    /// A waitpoint and, for `runs` waitpoints, the state of every child.
    async fn get_waitpoint(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<(Waitpoint, Vec<ChildResult>)>>;

    /// Create a `time` or `token` waitpoint; with a parent, suspend it in
    /// the same transaction (and journal the waitpoint under its step key).
    async fn create_waitpoint(&self, wp: &NewWaitpoint, now_ms: i64) -> Result<Waitpoint>;

    /// Complete a token waitpoint with data (resuming its parent).
    async fn complete_token(
        &self,
        namespace: &str,
        id: &str,
        data_json: &str,
        now_ms: i64,
    ) -> Result<Waitpoint>;

    /// Finish waitpoints whose time has come: `time` ones complete, others
    /// time out. Returns the ids finished.
    async fn expire_waitpoints(&self, now_ms: i64) -> Result<Vec<String>>;

    /// Memoize a step result for a running attempt; the first value
    /// recorded under a key wins and is returned.
    /// Refused (FailedPrecondition) unless `step.run_id` is in `namespace`
    /// and running `step.attempt` under `step.worker_id`'s lease.
    async fn record_step(
        &self,
        namespace: &str,
        step: &ParentRef,
        value_json: &str,
        now_ms: i64,
    ) -> Result<String>;
}
