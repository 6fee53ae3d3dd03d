//! What other replicas tell this one: [`Signal`]s over Postgres
//! `LISTEN/NOTIFY`.
//!
//! The store sends [`Signal`]s inside its transactions (so only committed
//! work is announced); this loop turns them into wake-ups and cache
//! invalidations. If the listening
//! connection drops, messages may have been missed: caches are cleared and
//! sessions woken, then it reconnects.

use crate::engine::Engine;
use crate::signal::Signal;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Listen on `channel` until cancelled.
pub async fn listen(engine: Engine, url: String, channel: String, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(mut l) => match l.listen(&channel).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN failed");
                    if sleep_or_cancel(backoff, &cancel).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "notification listener cannot connect");
                if sleep_or_cancel(backoff, &cancel).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Anything may have happened while we were not listening.
        resync(&engine);
        loop {
            let msg = tokio::select! {
                m = listener.try_recv() => m,
                _ = cancel.cancelled() => return,
            };
            match msg {
                Ok(Some(n)) => handle(&engine, n.payload()),
                Ok(None) => {
                    tracing::warn!("notification connection lost; resyncing");
                    resync(&engine);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

fn resync(engine: &Engine) {
    engine.registry().invalidate_events(None);
    engine.registry().invalidate_subscriptions(None);
    engine.wakeup().now();
    engine.hub().wake_all();
    engine.keyring().reload_soon();
}

fn handle(engine: &Engine, payload: &str) {
    match payload.parse::<Signal>() {
        Ok(Signal::AnyRuns) => engine.wakeup().now(),
        Ok(Signal::Runs(ns)) => engine.wakeup().namespace(&ns),
        Ok(Signal::Due(at)) => engine.deadlines().at(
            at,
            crate::wakeup::deadlines::Due::Wake(crate::wakeup::Target::All),
        ),
        Ok(Signal::Events(ns)) => engine.registry().invalidate_events(Some(&ns)),
        Ok(Signal::Subscriptions(ns)) => engine.registry().invalidate_subscriptions(Some(&ns)),
        Ok(Signal::WaitpointFinished(id)) => engine.hub().finished_somewhere(&id),
        Ok(Signal::Keys) => engine.keyring().reload_soon(),
        Err(_) => tracing::debug!(payload, "unknown notification"),
    }
}

/// Sleep; true if cancelled meanwhile.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
