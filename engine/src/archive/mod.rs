//! The event archive: every published event, kept for `events log` and
//! replay. The run store's `archive_outbox` table (written in the publish
//! transaction) lists what is not yet here; the [`archiver`] ships it in
//! batches. Writes must be idempotent on the
//! event id (a batch may ship twice after a crash) and reads de-duplicate.
//!
//! Implementations: [`local::LocalArchive`] (SQLite file, embedded default)
//! and [`clickhouse::ClickhouseArchive`] (production). Both pass
//! `tests/tests/archive_conformance.rs`.

pub mod archiver;
pub mod clickhouse;
pub mod local;

use crate::error::Result;
use crate::model::ArchivedEvent;
use async_trait::async_trait;

/// A range read over the archive, in publish order.
#[derive(Debug, Clone, Default)]
pub struct ArchiveQuery {
    pub namespace: String,
    /// Event names to read; empty means all.
    pub events: Vec<String>,
    /// Inclusive lower bound, epoch ms.
    pub from_ms: u64,
    /// Exclusive upper bound, epoch ms.
    pub to_ms: u64,
    /// Resume after this `(published_at_ms, event_id)`: the last row of
    /// the previous page.
    pub after: Option<(u64, String)>,
    pub limit: usize,
}

/// Where archived events are written and read.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Store events; writing an event id again must not create a duplicate
    /// visible to readers.
    async fn write(&self, events: &[ArchivedEvent]) -> Result<()>;
    /// Read one page in (published_at_ms, event_id) order.
    async fn read(&self, query: &ArchiveQuery) -> Result<Vec<ArchivedEvent>>;
    /// How many distinct events the query's range holds (ignores cursor
    /// and limit): the denominator of a replay's progress.
    async fn count(&self, query: &ArchiveQuery) -> Result<u64>;
}
