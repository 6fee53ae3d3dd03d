//! SQLite WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1,000 pages: the single writer connection then copies pages into the
//! database file and fsyncs it while every publish, claim and completion
//! waits behind it. Here a task checkpoints from a reader connection every
//! [`EVERY`] instead (`PASSIVE`: it never waits for, or blocks, the writer
//! or readers), and the writer's own automatic checkpoint is only a backstop
//! at [`BACKSTOP_PAGES`] should this task fall behind. Measured with the
//! scatter-gather benchmark: see BENCHMARKS.md.

use sqlx::{AnyPool, Row};
use std::time::Duration;

/// How often the task checkpoints.
pub(super) const EVERY: Duration = Duration::from_millis(250);

/// `wal_autocheckpoint` for every connection: the writer checkpoints only if
/// the WAL reaches this many pages (~40 MB) without this task's help. With
/// readers always active the WAL file only restarts after such a checkpoint,
/// so under sustained load it settles near 41 MB. 2,000 pages (~8 MB) was
/// measured too: scatter-gather at c64 2,706–3,045/s against 2,883–3,168/s
/// here (3 runs each), so the larger file was kept.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// Checkpoint until the pool is closed (or the task is aborted by
/// `SqlStore::close`).
pub(super) fn spawn(pool: AnyPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            if pool.is_closed() {
                return;
            }
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok(row) => {
                    let log: i64 = row.try_get(1).unwrap_or(0);
                    let done: i64 = row.try_get(2).unwrap_or(0);
                    tracing::trace!(wal_pages = log, checkpointed = done, "sqlite checkpoint");
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite checkpoint failed; the writer's backstop remains")
                }
            }
        }
    })
}
