//! The storage seam: everything durable about events, runs and subscriptions.
//!
//! [`Store`] is the trait the rest of the engine talks to; [`sql::SqlStore`]
//! implements it for SQLite (embedded default) and PostgreSQL (production)
//! with one body of SQL and a small dialect switch. Every implementation must
//! pass the conformance suite in `tests/tests/store_conformance.rs` (and
//! `console_store.rs` for the console's reads).
//!
//! Batching is part of the contract: `publish` and `complete` take many items
//! and commit them in one transaction, because on this hardware a commit
//! (fsync) costs more than the rows in it.

mod auth;
mod completions;
mod console;
mod definitions;
mod logs;
mod outbox;
mod publish;
mod queue;
mod replays;
mod runs;
pub mod sql;
mod stats;
mod waitpoints;

pub use auth::AuthStore;
pub use completions::Completions;
pub use console::{Console, EventQuery, GROUPED, WaitpointQuery};
pub use definitions::Definitions;
pub use logs::RunLogs;
pub use outbox::Outbox;
pub use publish::Publish;
pub use queue::RunQueue;
pub use replays::ReplayStore;
pub use runs::RunAdmin;
pub use stats::{QueueStats, Stats, TaskStats};
pub use waitpoints::WaitpointStore;

use crate::model::StoreEvent;
use async_trait::async_trait;

/// Durable state of the engine: every table family's trait, plus the
/// post-commit event stream and shutdown. All methods are safe to call from
/// many engine replicas at once.
#[async_trait]
pub trait Store:
    Definitions
    + Publish
    + RunQueue
    + Completions
    + RunAdmin
    + WaitpointStore
    + ReplayStore
    + Outbox
    + Stats
    + RunLogs
    + Console
    + AuthStore
    + 'static
{
    /// Post-commit events of this process's writes (waitpoints finished,
    /// runs resumed). Other replicas hear of them through `peers`.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Close connections (engine shutdown), so an engine restarted in the
    /// same process never contends with a lingering pool.
    async fn close(&self) {}
}
