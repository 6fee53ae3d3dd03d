//! Durable SQLite publishes without holding the writer through an fsync.
//!
//! Every SQLite connection runs at `synchronous = NORMAL`: a commit writes
//! its WAL frames and returns. A publish is then made durable by an
//! `fdatasync` of the WAL file before the caller hears ok — the same bytes
//! `synchronous = FULL` would have synced inside the commit, but here the
//! single writer connection goes on with claims and completions meanwhile,
//! and one sync covers every publish committed before it started (group
//! fsync). Frames are only overwritten after a checkpoint, which syncs the
//! WAL and the database first, so a later checkpoint cannot undo this.
//!
//! The trade: another transaction may see a publish before its sync ends
//! (a worker may start a run whose event a power cut then loses). The
//! publisher never heard ok, so it retries; delivery is at-least-once.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

/// Group fsync of one database's WAL file.
#[derive(Debug)]
pub(in crate::storage::sql) struct WalSync {
    wal: PathBuf,
    /// Commits that asked to be made durable, numbered from 1.
    committed: AtomicU64,
    /// The highest commit number known to be on disk; held during a sync,
    /// so syncs never overlap and later callers find theirs already done.
    synced: Mutex<u64>,
    /// `fdatasync` calls made (for tests and curiosity).
    syncs: AtomicU64,
}

impl WalSync {
    /// For the database at `db` (its WAL is `<db>-wal`).
    pub(super) fn new(db: &std::path::Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalSync {
            wal: wal.into(),
            committed: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Return once everything committed before this call is on disk.
    pub(in crate::storage::sql) async fn sync(&self) -> Result<()> {
        let mine = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= mine {
            return Ok(());
        }
        // Every commit numbered up to here finished writing before it took
        // its number, so this one sync covers them all.
        let upto = self.committed.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&wal)?.sync_data())
            .await
            .map_err(|e| Error::Internal(format!("sqlite: WAL sync task failed: {e}")))?
            .map_err(|e| {
                Error::Unavailable(format!(
                    "sqlite: cannot sync {}: {e}; the publish is stored but may not survive a power loss",
                    self.wal.display()
                ))
            })?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        std::fs::write(dir.path().join("f.db-wal"), b"frames").unwrap();
        let wal = Arc::new(WalSync::new(&db));
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let w = wal.clone();
                tokio::spawn(async move { w.sync().await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let syncs = wal.syncs.load(Ordering::Relaxed);
        assert!(syncs >= 1, "at least one sync");
        assert!(syncs < 64, "64 callers made {syncs} syncs: none was shared");
        // A caller after all that still gets a sync of its own.
        wal.sync().await.unwrap();
        assert_eq!(wal.syncs.load(Ordering::Relaxed), syncs + 1);
    }

    #[tokio::test]
    async fn a_missing_wal_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = WalSync::new(&dir.path().join("gone.db"));
        let err = wal.sync().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("gone.db-wal"), "{err}");
    }
}
