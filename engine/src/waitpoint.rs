//! Waitpoints in the engine: creating them (publish-and-wait, sleep,
//! tokens), answering waits the moment they finish, and shaping results.
//!
//! A waiter costs nothing in the store and, here, one `Notify` per waited-on
//! id while a client is actually connected. A suspended parent costs a row:
//! its worker dropped it. Finishing is done by the store inside the
//! transaction that caused it; the store then announces it ([`StoreEvent`])
//! and other replicas hear `wp:<id>` over `NOTIFY`, and the
//! [`WaitpointHub`](crate::wakeup::waiters::WaitpointHub) wakes exactly the
//! waiters of that id.

use crate::engine::{Engine, PublishInput};
use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::model::*;
use crate::telemetry::TraceContext;
use crate::wakeup::waiters::Heard;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// A waiter re-reads the store this often even without news: a safety net
/// for a lost notification, far from a polling loop.
const SAFETY_TICK: Duration = Duration::from_secs(5);

/// How long a waiter that heard part of the story waits for the rest of
/// this process's announcements before it reads the store instead, and how
/// many times between two store reads.
const LATE_CHILDREN: Duration = Duration::from_millis(5);
const GRACES: u32 = 2;

/// A waitpoint as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitpointView {
    pub waitpoint: Waitpoint,
    /// For `runs` waitpoints: `{"<task>": {"ok", "output", "error"}}`.
    pub results: Value,
}

/// The results map: one entry per child run, by task id. Unfinished runs
/// of a timed-out waitpoint report `ok: false, error: "timeout"`. Outputs
/// are included while the whole stays under `limits::MAX_RESPONSE_BYTES`;
/// past that an entry says `output_omitted_bytes` and the `run_id` to read
/// the output from.
pub fn results(children: &[ChildResult]) -> Value {
    let mut out = Map::new();
    let mut budget = crate::limits::MAX_RESPONSE_BYTES;
    for c in children {
        let size = c.output_json.len() + c.error.len();
        let fits = size <= budget;
        budget = budget.saturating_sub(size.min(budget) + 128);
        let entry = match c.status {
            RunStatus::Completed if !fits => json!({
                "ok": true,
                "output": null,
                "error": null,
                "output_omitted_bytes": c.output_json.len(),
                "run_id": c.run_id,
            }),
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
        self.check_parent(parent.as_ref())?;
        if let Some(t) = timeout {
            crate::limits::check_timeout("timeout_ms", t.as_millis() as u64)?;
        }
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
            trace: Default::default(),
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
                    _ = self.shutdown_token().cancelled() => {}
                }
            }
            published
        };
        // The handle is kept until the answer: what this process hears about
        // the waitpoint meanwhile is kept with it (see `WaitpointHub`).
        let answer = async {
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
        .await;
        hub.release(&wp_id, handle);
        answer
    }

    /// Record a journal step of a running run (only its lease holder may).
    pub async fn record_step(
        &self,
        ns: &str,
        step: &ParentRef,
        value_json: &str,
    ) -> Result<String> {
        self.check_parent(Some(step))?;
        self.check_json_size("value_json", value_json)?;
        crate::routing::schema::parse_json("value_json", value_json)?;
        self.store()
            .record_step(ns, step, value_json, now_ms())
            .await
    }

    fn check_parent(&self, parent: Option<&ParentRef>) -> Result<()> {
        if let Some(p) = parent {
            crate::limits::check_text(
                "parent.step_key",
                &p.step_key,
                crate::limits::MAX_STEP_KEY_BYTES,
            )?;
            if p.worker_id.is_empty() {
                return Err(Error::InvalidArgument(
                    "parent.worker_id is required: the worker_id of the run's assignment (only the lease holder may act for a run)".into(),
                ));
            }
        }
        Ok(())
    }

    /// JSON a client asks the engine to keep (token data, step values):
    /// bounded like a payload.
    fn check_json_size(&self, field: &str, text: &str) -> Result<()> {
        let limit = self.config().max_payload_bytes;
        if text.len() > limit {
            return Err(Error::InvalidArgument(format!(
                "{field} is {} bytes, over the limit of {limit} bytes (max_payload_bytes)",
                text.len()
            )));
        }
        Ok(())
    }

    /// Suspend `parent` until `duration` from now; `trace` is the span the
    /// sleep began in (the resumed attempt links to it).
    pub async fn sleep(
        &self,
        ns: &str,
        parent: ParentRef,
        duration: Duration,
        trace: TraceContext,
    ) -> Result<WaitpointView> {
        self.check_parent(Some(&parent))?;
        crate::limits::check_timeout("duration_ms", duration.as_millis() as u64)?;
        let at = now_ms() + duration.as_millis() as i64;
        let wp = NewWaitpoint {
            id: new_id(),
            namespace: ns.into(),
            kind: WaitpointKind::Time,
            timeout_at_ms: at.max(1),
            parent: Some(parent),
            trace,
        };
        self.store().create_waitpoint(&wp, now_ms()).await?;
        self.expire_at(at);
        self.waitpoint(ns, &wp.id).await
    }

    /// A token waitpoint, completed later by `complete_token`; with a
    /// `parent`, `trace` is the span its wait began in.
    pub async fn create_token(
        &self,
        ns: &str,
        timeout: Option<Duration>,
        parent: Option<ParentRef>,
        trace: TraceContext,
    ) -> Result<WaitpointView> {
        self.check_parent(parent.as_ref())?;
        if let Some(t) = timeout {
            crate::limits::check_timeout("timeout_ms", t.as_millis() as u64)?;
        }
        let at = timeout
            .map(|t| now_ms() + t.as_millis() as i64)
            .unwrap_or(0);
        let wp = NewWaitpoint {
            // Whoever holds a token's id can complete it: 122 random bits,
            // not time ordered (a UUIDv7 has 74 and tells when it was made).
            id: uuid::Uuid::new_v4().to_string(),
            namespace: ns.into(),
            kind: WaitpointKind::Token,
            timeout_at_ms: at,
            parent,
            trace,
        };
        self.store().create_waitpoint(&wp, now_ms()).await?;
        if at > 0 {
            self.expire_at(at);
        }
        self.waitpoint(ns, &wp.id).await
    }

    /// Complete a token waitpoint with data (JSON text). Traced as a
    /// `complete waitpoint` span under the completer's context (`trace`),
    /// naming the run it resumes.
    pub async fn complete_token(
        &self,
        ns: &str,
        id: &str,
        data_json: &str,
        trace: &TraceContext,
    ) -> Result<WaitpointView> {
        let mut span = crate::telemetry::Span::waitpoint_completed(id, "token", trace);
        let out = self.complete_token_inner(ns, id, data_json).await;
        match &out {
            Ok(v) if !v.waitpoint.parent_run_id.is_empty() => {
                span.set("fanout.run.id", v.waitpoint.parent_run_id.clone())
            }
            Ok(_) => {}
            Err(e) => span.fail(format!("{:?}", e.codes().0)),
        }
        out
    }

    async fn complete_token_inner(
        &self,
        ns: &str,
        id: &str,
        data_json: &str,
    ) -> Result<WaitpointView> {
        self.check_json_size("data_json", data_json)?;
        let data = if data_json.trim().is_empty() {
            "null".to_string()
        } else {
            crate::routing::schema::parse_payload("data_json", data_json)?;
            // As sent, like a payload: big numbers keep their digits.
            data_json.trim().to_string()
        };
        self.store().complete_token(ns, id, &data, now_ms()).await?;
        self.audit(ns, "token.complete", id, serde_json::json!({}))
            .await;
        self.waitpoint(ns, id).await
    }

    /// A waitpoint with its results.
    pub async fn waitpoint(&self, ns: &str, id: &str) -> Result<WaitpointView> {
        let (waitpoint, children) = self.store().get_waitpoint(ns, id).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Waitpoint,
                id,
                format!("waitpoint '{id}' not found in namespace '{ns}'"),
            )
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
        let mut graces = GRACES;
        // Woken by the safety tick rather than by news: if the answer is
        // then final, a completion notice was missed (counted and logged).
        let mut ticked = false;
        let result = loop {
            let notified = handle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let heard = hub.answer(ns, id);
            if heard == Heard::Partly && graces > 0 {
                graces -= 1;
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(LATE_CHILDREN) => {}
                }
                continue;
            }
            let view = match heard {
                Heard::All(waitpoint, children) => WaitpointView {
                    results: results(&children),
                    waitpoint: *waitpoint,
                },
                _ => match self.waitpoint(ns, id).await {
                    Ok(v) => v,
                    Err(e) => break Err(e),
                },
            };
            if view.waitpoint.is_final() {
                if ticked {
                    let n = hub
                        .safety_answers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1;
                    self.metrics().waits_answered_by_safety_poll.inc();
                    tracing::warn!(
                        waitpoint = id,
                        safety_answers = n,
                        "waitpoint answered by the safety poll: a completion notice was missed"
                    );
                }
                break Ok(view);
            }
            ticked = false;
            graces = GRACES;
            let tick = tokio::time::Instant::now() + SAFETY_TICK;
            tokio::select! {
                _ = self.shutdown_token().cancelled() => {
                    break Err(Error::Unavailable(format!(
                        "the engine is shutting down; wait for waitpoint {id} again"
                    )));
                }
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.min(tick)) => {
                    if tokio::time::Instant::now() >= deadline {
                        break self.waitpoint(ns, id).await;
                    }
                    ticked = true;
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
        self.deadlines()
            .at(at_ms, crate::wakeup::deadlines::Due::ExpireWaitpoints);
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
            Ok(StoreEvent::ChildCompleted(wp, child)) => engine.hub().child_completed(&wp, *child),
            Ok(StoreEvent::WaitpointFinished(id)) => engine.hub().finished(&id),
            Ok(StoreEvent::WaitpointDone(wp)) => engine.hub().done(*wp),
            Ok(StoreEvent::RunsResumed) => engine.wakeup().now(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                engine.hub().wake_all();
                engine.wakeup().now();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
