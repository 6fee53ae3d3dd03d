//! Replay jobs: their state, leases and pages.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Replay jobs: their state, leases and pages.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Store a new replay job.
    async fn create_replay(&self, job: &ReplayJob) -> Result<()>;

    /// One replay job.
    async fn get_replay(&self, namespace: &str, id: &str) -> Result<Option<ReplayJob>>;

    /// Cancel a running replay; returns the job as it is now.
    async fn cancel_replay(
        &self,
        namespace: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<ReplayJob>>;

    /// Take a running replay whose lease lapsed (or is ours) for `owner`.
    async fn lease_replay(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ReplayJob>>;

    /// One page of a replay, atomically: the events and runs it creates
    /// (none on a dry run) and the job's new cursor and counters. Returns
    /// false, writing nothing, when `owner` no longer holds a running job.
    async fn replay_page(
        &self,
        job: &ReplayJob,
        owner: &str,
        events: &[NewEvent],
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool>;

    /// Give up `owner`'s replay leases (graceful shutdown) so another engine
    /// resumes them at once.
    async fn release_replays(&self, owner: &str) -> Result<()>;

    /// `(original event id, task id)` pairs that already have replay runs.
    async fn replayed_pairs(&self, original_ids: &[String]) -> Result<Vec<(String, String)>>;
}
