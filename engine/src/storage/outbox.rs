//! Events committed but not yet shipped to the archive.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Events committed but not yet shipped to the archive.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` events not yet shipped to the archive, oldest first.
    async fn outbox(&self, limit: usize) -> Result<Vec<ArchivedEvent>>;

    /// Mark events as shipped to the archive.
    async fn mark_archived(&self, event_ids: &[String]) -> Result<()>;

    /// Is an event of `namespace` published before `before_ms` still
    /// waiting in the outbox (not yet in the archive)?
    async fn unarchived_before(&self, namespace: &str, before_ms: i64) -> Result<bool>;
}
