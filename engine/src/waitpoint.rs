//! Waitpoints in the engine: creating them (publish-and-wait, sleep,
//! tokens), answering waits the moment they finish, and shaping results.
//!
//! A waiter costs nothing in the store and, here, one `Notify` per waited-on
//! id while a client is actually connected. A suspended parent costs a row:
//! its worker dropped it. Finishing is done by the store inside the
//! transaction that caused it; the store then announces it ([`StoreEvent`])
//! and other replicas hear `wp:<id>` over `NOTIFY`, and [`WaitpointHub`]
//! wakes exactly the waiters of that id.

use crate::engine::{Engine, PublishInput};
use crate::error::{Error, Result};
use crate::model::*;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A waiter re-reads the store this often even without news: a safety net
/// for a lost notification, far from a polling loop.
const SAFETY_TICK: Duration = Duration::from_secs(5);

/// Wakes the waiters of one waitpoint id.
#[derive(Default)]
pub struct WaitpointHub {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl WaitpointHub {
    fn handle(&self, id: &str) -> Arc<Notify> {
        let mut m = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.to_string()).or_default().clone()
    }

    fn release(&self, id: &str, n: Arc<Notify>) {
        let mut m = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        drop(n);
        if m.get(id).is_some_and(|a| Arc::strong_count(a) == 1) {
            m.remove(id);
        }
    }

    /// A waitpoint finished: wake its waiters.
    pub fn finished(&self, id: &str) {
        let m = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get(id) {
            n.notify_waiters();
        }
    }

    /// Events may have been missed: wake every waiter to re-check.
    pub fn wake_all(&self) {
        let m = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for n in m.values() {
            n.notify_waiters();
        }
    }
}

/// A waitpoint as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitpointView {
    pub waitpoint: Waitpoint,
    /// For `runs` waitpoints: `{"<task>": {"ok", "output", "error"}}`.
    pub results: Value,
}

/// The results map: one entry per child run, by task id. Unfinished runs
/// of a timed-out waitpoint report `ok: false, error: "timeout"`.
pub fn results(children: &[ChildResult]) -> Value {
    let mut out = Map::new();
    for c in children {
        let entry = match c.status {
            RunStatus::Completed => json!({
                "ok": true,
                "output": serde_json::from_str::<Value>(&c.output_json).unwrap_or(Value::Null),
                "error": null,
            }),
            RunStatus::Dead => json!({"ok": false, "output": null, "error": c.error}),
            _ => json!({"ok": false, "output": null, "error": "timeout"}),
        };
        out.insert(c.task_id.clone(), entry);
    }
    Value::Object(out)
}

impl Engine {
    /// Publish and wait for every run created. With `parent`, the parent
    /// run is suspended in the same transaction. Without one, `hold` keeps
    /// the caller up to that long for the results (one round trip instead
    /// of a publish and a long poll).
    pub async fn publish_and_wait(
        &self,
        ns: &str,
        input: PublishInput,
        timeout: Option<Duration>,
        parent: Option<ParentRef>,
        hold: Duration,
    ) -> Result<(Published, Option<WaitpointView>)> {
        let started = tokio::time::Instant::now();
        let held = parent.is_none() && !hold.is_zero();
        let timeout_at = timeout
            .map(|t| now_ms() + t.as_millis() as i64)
            .unwrap_or(0);
        let wp = NewWaitpoint {
            id: new_id(),
            namespace: ns.to_string(),
            kind: WaitpointKind::Runs,
            timeout_at_ms: timeout_at,
            parent,
        };
        let wp_id = wp.id.clone();
        // Listen before the waitpoint exists: whatever finishes it is then
        // heard, so the first store read waits for the news instead of
        // finding the runs just queued.
        let hub = self.hub();
        let handle = hub.handle(&wp_id);
        let heard = {
            let first = handle.notified();
            tokio::pin!(first);
            first.as_mut().enable();
            let published = self.publish_with_waitpoint(ns, input, Some(wp)).await;
            if let Ok(p) = &published
                && !p.waitpoint_id.is_empty()
                && timeout_at > 0
            {
                self.expire_at(timeout_at);
            }
            if let Ok(p) = &published
                && held
                && p.waitpoint_id == wp_id
            {
                let first_look = hold.min(SAFETY_TICK);
                tokio::select! {
                    _ = &mut first => {}
                    _ = tokio::time::sleep(first_look) => {}
                }
            }
            published
        };
        hub.release(&wp_id, handle);
        let published = heard?;
        if published.waitpoint_id.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "event {} was published earlier with this idempotency key without waiting; nothing to wait for",
                published.event_id
            )));
        }
        let view = if held {
            let left = hold.saturating_sub(started.elapsed());
            self.wait(ns, &published.waitpoint_id, left).await?
        } else {
            self.waitpoint(ns, &published.waitpoint_id).await?
        };
        let done = view.waitpoint.is_final().then_some(view);
        Ok((published, done))
    }

    /// Suspend `parent` until `duration` from now.
    pub async fn sleep(
        &self,
        ns: &str,
        parent: ParentRef,
        duration: Duration,
    ) -> Result<WaitpointView> {
        let at = now_ms() + duration.as_millis() as i64;
        let wp = NewWaitpoint {
            id: new_id(),
            namespace: ns.into(),
            kind: WaitpointKind::Time,
            timeout_at_ms: at.max(1),
            parent: Some(parent),
        };
        self.store().create_waitpoint(&wp, now_ms()).await?;
        self.expire_at(at);
        self.waitpoint(ns, &wp.id).await
    }

    /// A token waitpoint, completed later by `complete_token`.
    pub async fn create_token(
        &self,
        ns: &str,
        timeout: Option<Duration>,
        parent: Option<ParentRef>,
    ) -> Result<WaitpointView> {
        let at = timeout
            .map(|t| now_ms() + t.as_millis() as i64)
            .unwrap_or(0);
        let wp = NewWaitpoint {
            id: new_id(),
            namespace: ns.into(),
            kind: WaitpointKind::Token,
            timeout_at_ms: at,
            parent,
        };
        self.store().create_waitpoint(&wp, now_ms()).await?;
        if at > 0 {
            self.expire_at(at);
        }
        self.waitpoint(ns, &wp.id).await
    }

    /// Complete a token waitpoint with data (JSON text).
    pub async fn complete_token(
        &self,
        ns: &str,
        id: &str,
        data_json: &str,
    ) -> Result<WaitpointView> {
        let data = if data_json.trim().is_empty() {
            "null".to_string()
        } else {
            crate::schema::parse_json("data_json", data_json)?.to_string()
        };
        self.store().complete_token(ns, id, &data, now_ms()).await?;
        self.waitpoint(ns, id).await
    }

    /// A waitpoint with its results.
    pub async fn waitpoint(&self, ns: &str, id: &str) -> Result<WaitpointView> {
        let (waitpoint, children) = self.store().get_waitpoint(ns, id).await?.ok_or_else(|| {
            Error::NotFound(format!("waitpoint '{id}' not found in namespace '{ns}'"))
        })?;
        let results = results(&children);
        Ok(WaitpointView { waitpoint, results })
    }

    /// Long poll: return when the waitpoint is final, or after `max` with
    /// its current state. Woken by notification, not by polling the store.
    pub async fn wait(&self, ns: &str, id: &str, max: Duration) -> Result<WaitpointView> {
        let hub = self.hub();
        let handle = hub.handle(id);
        let deadline = tokio::time::Instant::now() + max;
        let result = loop {
            let notified = handle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let view = match self.waitpoint(ns, id).await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            if view.waitpoint.is_final() {
                break Ok(view);
            }
            let tick = tokio::time::Instant::now() + SAFETY_TICK;
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.min(tick)) => {
                    if tokio::time::Instant::now() >= deadline {
                        break self.waitpoint(ns, id).await;
                    }
                }
            }
        };
        hub.release(id, handle);
        result
    }

    /// Finish due waitpoints (timeouts, sleeps); returns how many.
    pub async fn expire_waitpoints(&self) -> Result<usize> {
        let ids = self.store().expire_waitpoints(now_ms()).await?;
        Ok(ids.len())
    }

    /// Run the expiry at `at_ms` (the reaper is the safety net).
    fn expire_at(&self, at_ms: i64) {
        let engine = self.clone();
        let delay = (at_ms - now_ms()).max(0) as u64;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if let Err(e) = engine.expire_waitpoints().await {
                tracing::warn!(error = %e, "waitpoint expiry failed");
            }
        });
    }
}

/// Turn the store's post-commit events into wake-ups until cancelled.
pub async fn relay(engine: Engine, cancel: tokio_util::sync::CancellationToken) {
    let mut rx = engine.store().subscribe();
    loop {
        let ev = tokio::select! {
            e = rx.recv() => e,
            _ = cancel.cancelled() => return,
        };
        match ev {
            Ok(StoreEvent::WaitpointFinished(id)) => engine.hub().finished(&id),
            Ok(StoreEvent::RunsResumed) => engine.wakeup().now(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                engine.hub().wake_all();
                engine.wakeup().now();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
