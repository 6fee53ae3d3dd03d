//! SQLite, the embedded default: one file, one writer connection, WAL with
//! a group fsync after publishes (`walsync`), checkpoints off the writer
//! (`checkpoint`), and a lock on the data directory (`dirlock`).

pub(super) mod checkpoint;
mod dirlock;
pub(super) mod walsync;

use super::dialect::Dialect;
use super::{SqlStore, pool_options};
use crate::error::{Error, Result};
use std::path::Path;

/// Open (creating) the database at `path`, migrate it, and requeue the runs
/// a previous process left running.
pub(super) async fn open(path: &Path) -> Result<SqlStore> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Unavailable(format!("sqlite: cannot create {}: {e}", dir.display()))
        })?;
    }
    let dir_lock = dirlock::lock(path)?;
    let url = format!("sqlite://{}?mode=rwc", path.display());
    // WAL: readers never block the writer. NORMAL: commits
    // survive a process crash; a publish is synced after its
    // commit (`walsync`) so an acknowledged publish survives
    // power loss. Checkpoints: see `checkpoint`.
    let setup = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
         PRAGMA wal_autocheckpoint = {};",
        checkpoint::BACKSTOP_PAGES
    );
    let opts = |n: u32| pool_options(n, setup.clone()).min_connections(1);
    let writer = opts(1)
        .connect(&url)
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite: cannot open {}: {e}", path.display())))?;
    let reader = opts(4)
        .connect(&url)
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite: cannot open {}: {e}", path.display())))?;
    let store = SqlStore {
        relaxed: writer.clone(),
        writer,
        reader,
        dialect: Dialect::Sqlite,
        channel: None,
        events: tokio::sync::broadcast::channel(4096).0,
        wal: Some(std::sync::Arc::new(walsync::WalSync::new(path))),
        dir_lock: std::sync::Arc::new(std::sync::Mutex::new(Some(dir_lock))),
        checkpointer: Default::default(),
    };
    store.migrate().await?;
    store.requeue_orphans().await?;
    let checkpointer = checkpoint::spawn(store.reader.clone());
    if let Ok(mut slot) = store.checkpointer.lock() {
        *slot = Some(checkpointer);
    }
    Ok(store)
}
