//! The queue of runs: claims under a lease, heartbeats, giving runs back.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// The queue of runs: claims under a lease, heartbeats, giving runs back.
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Lease up to `limit` due runs of these tasks to `worker_id`, each
    /// task's in due order; earlier tasks in `task_ids` are served first
    /// when there are more due runs than `limit` (callers rotate it).
    async fn claim(
        &self,
        namespace: &str,
        task_ids: &[String],
        worker_id: &str,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<ClaimedRun>>;

    /// Extend the leases of these runs, if `worker_id` still holds them.
    async fn heartbeat(&self, worker_id: &str, run_ids: &[String], now_ms: i64) -> Result<u64>;

    /// Queue again, at once and without charging the attempt, runs that
    /// `worker_id` holds and gives back unfinished (graceful shutdown).
    async fn give_back(&self, worker_id: &str, run_ids: &[String], now_ms: i64) -> Result<u64>;

    /// Queue again, uncharged, every running run whose worker id starts
    /// with `worker_prefix`: leases granted by a previous incarnation of
    /// this engine instance (worker ids are `<instance>/<session>`), which
    /// no live session can hold.
    async fn requeue_leases_of(&self, worker_prefix: &str, now_ms: i64) -> Result<u64>;

    /// Earliest time a not-yet-due run of these tasks becomes claimable.
    async fn next_due(&self, namespace: &str, task_ids: &[String]) -> Result<Option<i64>>;
}
