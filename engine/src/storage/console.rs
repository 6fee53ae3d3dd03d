//! Reads the operator console needs beyond the admin API's: counts, groups
//! and listings over runs, dead letters, events, waitpoints and replays.
//!
//! Every listing is bounded by a `limit` and walks an index in id order
//! (ids are UUIDv7, so newest first is a descending index scan), so a page
//! costs the same with a thousand rows stored or a million.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// How many of the newest dead letters [`Console::dead_letter_groups`]
/// groups: its cost stays flat however deep the DLQ is.
pub const GROUPED: u32 = 10_000;

/// What the waitpoints page lists.
#[derive(Debug, Clone, Default)]
pub struct WaitpointQuery {
    /// Only these (None: any status).
    pub status: Option<WaitpointStatus>,
    pub kind: Option<WaitpointKind>,
    /// Waitpoints with ids below this one (paging).
    pub before: Option<String>,
    pub limit: u32,
}

/// What the event pages list (the store's recent events, not the archive).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this event name.
    pub name: Option<String>,
    /// Events with ids below this one (paging).
    pub before: Option<String>,
    pub limit: u32,
}

/// The operator console's reads.
#[async_trait]
pub trait Console: Send + Sync {
    /// How many runs of `namespace` are in each status (dead letters
    /// included under `dead`).
    async fn run_counts(&self, namespace: &str) -> Result<Vec<(RunStatus, u64)>>;

    /// How many dead letters `sel` selects (what a bulk retry or discard
    /// would touch); with `cap`, counting stops past it (a page that only
    /// needs "more than 10,000" never walks a million rows).
    async fn count_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        cap: Option<u64>,
    ) -> Result<u64>;

    /// The newest [`GROUPED`] dead letters grouped by task and error
    /// fingerprint, largest group first.
    async fn dead_letter_groups(&self, namespace: &str, limit: u32)
    -> Result<Vec<DeadLetterGroup>>;

    /// Replay jobs, newest first.
    async fn list_replays(&self, namespace: &str, limit: u32) -> Result<Vec<ReplayJob>>;

    /// Waitpoints, newest first.
    async fn list_waitpoints(
        &self,
        namespace: &str,
        query: &WaitpointQuery,
    ) -> Result<Vec<Waitpoint>>;

    /// Waitpoints a run made (publish-and-wait, sleeps, tokens it waits
    /// on), oldest first, found through its journal.
    async fn waitpoints_of_run(&self, namespace: &str, run_id: &str) -> Result<Vec<Waitpoint>>;

    /// One stored event.
    async fn get_event_record(&self, namespace: &str, id: &str) -> Result<Option<ArchivedEvent>>;

    /// Stored events, newest first.
    async fn list_event_records(
        &self,
        namespace: &str,
        query: &EventQuery,
    ) -> Result<Vec<ArchivedEvent>>;

    /// A run's journal (recorded steps), in the order they were recorded.
    async fn run_steps(&self, run_id: &str) -> Result<Vec<Step>>;
}
