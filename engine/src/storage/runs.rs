//! The operator's view of runs and dead letters.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// The operator's view of runs and dead letters.
#[async_trait]
pub trait RunAdmin: Send + Sync {
    /// Runs, newest first.
    async fn list_runs(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>>;

    /// One run with its attempts and its event's payload.
    async fn get_run(&self, namespace: &str, id: &str) -> Result<Option<RunDetail>>;

    /// Dead letters (dead runs in the DLQ), newest first.
    async fn list_dead_letters(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>>;

    /// Re-queue dead letters with a fresh attempt budget; returns how many.
    /// Works in batches, so there is no cap on how many one call moves.
    async fn retry_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now_ms: i64,
    ) -> Result<u64>;

    /// Mark dead letters discarded; returns how many.
    async fn discard_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now_ms: i64,
    ) -> Result<u64>;
}
