//! Finishing attempts: results, failures with their retry decision, lapsed leases.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Finishing attempts: results, failures with their retry decision, lapsed leases.
#[async_trait]
pub trait Completions: Send + Sync {
    /// Record attempt outcomes in one transaction; failures are scheduled for
    /// retry (backoff with jitter) or go dead.
    async fn complete(
        &self,
        completions: &[Completion],
        now_ms: i64,
    ) -> Result<Vec<CompletionEffect>>;

    /// Expire now every lease held by `worker_id` (its stream ended).
    async fn release_worker(&self, worker_id: &str, now_ms: i64) -> Result<u64>;

    /// Fail every run whose lease expired (a failed attempt: retry or dead).
    async fn reap_expired(&self, now_ms: i64) -> Result<Vec<Reaped>>;
}
