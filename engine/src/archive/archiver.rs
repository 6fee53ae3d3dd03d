//! Ships the outbox (the store's `archive_outbox`: events not yet archived)
//! to the archive in batches, then removes them from it.
//!
//! Crash safety: rows are marked only after the archive accepted them, so a
//! kill between write and mark ships the batch again after restart; the
//! archive's idempotent write makes that invisible to readers. Archive down
//! or slow: publishes are unaffected (they only write the store) and the
//! backlog drains, oldest first, when it returns.

use super::Archive;
use crate::storage::Store;
use crate::wakeup::Wakeup;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the shipper works with: the store's outbox, the archive, its
/// wake-up (a publish committed) and the signal it gives after each batch
/// (replays wait on it). It knows nothing of the engine around it.
pub struct Archiver {
    pub store: Arc<dyn Store>,
    pub archive: Arc<dyn Archive>,
    /// Signalled by publishes: something may be waiting to ship.
    pub wake: Wakeup,
    /// Signalled after each shipped batch.
    pub shipped: Wakeup,
    /// Events per batch.
    pub batch: usize,
    /// After a partial batch, wait this long for more.
    pub linger: Duration,
    /// Told each pass's outcome (`/healthz`).
    pub report: Box<dyn Fn(Result<(), String>) + Send + Sync>,
}

impl Archiver {
    /// Run until `cancel`; ships whatever is pending first when woken.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let shipped = self.ship_once().await;
            (self.report)(shipped.as_ref().map(|_| ()).map_err(ToString::to_string));
            match shipped {
                Ok(n) if n == self.batch => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(n) => {
                    backoff = Duration::from_millis(100);
                    if n > 0 && !self.linger.is_zero() {
                        // More are likely on the way: let them gather.
                        tokio::select! {
                            _ = tokio::time::sleep(self.linger) => {}
                            _ = cancel.cancelled() => return,
                        }
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "archive shipping failed; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// Ship one batch; returns how many events were shipped.
    pub async fn ship_once(&self) -> crate::error::Result<usize> {
        let events = self.store.outbox(self.batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        self.archive.write(&events).await?;
        let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        self.store.mark_archived(&ids).await?;
        self.shipped.now();
        tracing::debug!(events = ids.len(), "archived");
        Ok(ids.len())
    }
}
