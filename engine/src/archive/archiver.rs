//! Ships the outbox (the store's `archive_outbox`: events not yet archived)
//! to the archive in batches, then removes them from it.
//!
//! Crash safety: rows are marked only after the archive accepted them, so a
//! kill between write and mark ships the batch again after restart; the
//! archive's idempotent write makes that invisible to readers. Archive down
//! or slow: publishes are unaffected (they only write the store) and the
//! backlog drains, oldest first, when it returns.

use super::Archive;
use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Run until `cancel`; ships whatever is pending first when woken.
pub async fn run(engine: Engine, archive: Arc<dyn Archive>, cancel: CancellationToken) {
    let batch = engine.config().archive_batch;
    let linger = Duration::from_millis(engine.config().archive_linger_ms);
    let mut backoff = Duration::from_millis(100);
    loop {
        let wake = engine.archive_wakeup().clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let shipped = ship_once(&engine, archive.as_ref(), batch).await;
        match &shipped {
            Ok(_) => engine.health().archive_ok(),
            Err(e) => engine.health().archive_failed(&e.to_string()),
        }
        match shipped {
            Ok(n) if n == batch => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(n) => {
                backoff = Duration::from_millis(100);
                if n > 0 && !linger.is_zero() {
                    // More are likely on the way: let them gather.
                    tokio::select! {
                        _ = tokio::time::sleep(linger) => {}
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
pub async fn ship_once(
    engine: &Engine,
    archive: &dyn Archive,
    batch: usize,
) -> crate::error::Result<usize> {
    let events = engine.store().outbox(batch).await?;
    if events.is_empty() {
        return Ok(0);
    }
    archive.write(&events).await?;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    engine.store().mark_archived(&ids).await?;
    engine.archive_shipped().now();
    tracing::debug!(events = ids.len(), "archived");
    Ok(ids.len())
}
