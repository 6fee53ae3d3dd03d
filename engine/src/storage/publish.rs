//! Storing events with all their runs, atomically.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Storing events with all their runs, atomically.
#[async_trait]
pub trait Publish: Send + Sync {
    /// Store events and their runs in **one** transaction. Per event the
    /// answer is what was created, or — when its idempotency key was seen
    /// within the window — the original event and runs, `deduplicated`.
    async fn publish(
        &self,
        events: &[NewEvent],
        idempotency_window_ms: i64,
    ) -> Result<Vec<Published>>;
}
