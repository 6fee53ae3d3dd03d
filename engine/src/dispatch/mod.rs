//! Dispatch: push runs to connected workers over their streams.
//!
//! Each worker stream gets a [`Session`] that owns the worker's concurrency
//! budget. Its loop claims up to `free slots` due runs of the worker's tasks
//! in one statement and sends them; then it sleeps until a publish, a retry
//! falling due, a freed slot, or the idle poll (which only matters for work
//! made due by another replica) — never a tight polling loop. A freed slot
//! claims only if the last claim was cut short by the slots (work may be
//! left): a claim that found less than it asked for saw the queue empty,
//! and new work arrives with a wake-up. Under scatter-gather load most
//! claims were such empty ones before (2,300 of 2,900). Leases are
//! extended by heartbeats and expire into a failed attempt (the reaper);
//! when the stream ends, the worker's leases are failed at once.

use crate::engine::Engine;
use crate::error::Result;
use crate::model::*;
use crate::telemetry::{Span, TraceContext};
use crate::wakeup::Target;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// A run sent to the worker and not yet reported.
struct InFlight {
    task: String,
    event: String,
    keyed: bool,
    /// Claimed as the one trial run of a probing subscription.
    probe: bool,
    lease: Duration,
    /// The lease as the worker last renewed it (claim, then heartbeats).
    renewed: Instant,
    /// When the attempt started (for `fanout_run_duration_seconds`).
    started: Instant,
    /// The event's creation context, kept only while traces are exported:
    /// the `complete` span's parent when the attempt sent no span of its own.
    trace: TraceContext,
}

impl InFlight {
    fn lapsed(&self, now: Instant) -> bool {
        now.duration_since(self.renewed) > self.lease
    }
}

/// One connected worker.
pub struct Session {
    engine: Engine,
    pub namespace: String,
    pub worker_id: String,
    /// The name the worker gave.
    pub name: String,
    tasks: Vec<String>,
    concurrency: usize,
    connected_at_ms: i64,
    /// Runs sent and not yet reported (the worker's used slots).
    in_flight: Mutex<HashMap<String, InFlight>>,
    slot_freed: Notify,
    /// Woken when runs this session's tasks can take may exist.
    signal: Arc<Notify>,
    /// The worker is shutting down: it gets no new runs.
    draining: std::sync::atomic::AtomicBool,
}

impl Session {
    pub fn new(
        engine: Engine,
        namespace: String,
        worker_id: String,
        name: String,
        tasks: Vec<String>,
        concurrency: usize,
    ) -> Self {
        let signal = engine.wakeup().subscribe(&namespace, &tasks);
        Session {
            engine,
            namespace,
            worker_id,
            name,
            connected_at_ms: now_ms(),
            signal,
            draining: Default::default(),
            tasks,
            concurrency: concurrency.max(1),
            in_flight: Mutex::default(),
            slot_freed: Notify::new(),
        }
    }
}

impl crate::roster::Listed for Session {
    fn info(&self) -> crate::roster::WorkerInfo {
        crate::roster::WorkerInfo {
            namespace: self.namespace.clone(),
            worker_id: self.worker_id.clone(),
            name: self.name.clone(),
            tasks: self.tasks.clone(),
            concurrency: self.concurrency,
            in_flight: self.in_flight.lock().map(|s| s.len()).unwrap_or(0),
            connected_at_ms: self.connected_at_ms,
            draining: self.draining.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl Session {
    /// Claim up to `free` runs: first one run of the probing task, if any,
    /// then of the active ones.
    async fn claim_with_probe(
        &self,
        active: &[String],
        probe: Option<&str>,
        free: usize,
    ) -> Result<Vec<ClaimedRun>> {
        let store = self.engine.store();
        let mut claimed = match probe {
            Some(t) => {
                store
                    .claim(
                        &self.namespace,
                        &[t.to_string()],
                        &self.worker_id,
                        1,
                        now_ms(),
                    )
                    .await?
            }
            None => Vec::new(),
        };
        let left = free.saturating_sub(claimed.len());
        if left > 0 && !active.is_empty() {
            claimed.extend(
                store
                    .claim(
                        &self.namespace,
                        active,
                        &self.worker_id,
                        left as u32,
                        now_ms(),
                    )
                    .await?,
            );
        }
        Ok(claimed)
    }

    /// Whether this session holds a run of `task` now.
    fn holds_task(&self, task: &str) -> bool {
        self.in_flight
            .lock()
            .map(|s| s.values().any(|r| r.task == task))
            .unwrap_or(true)
    }

    fn free_slots(&self) -> usize {
        let used = self
            .in_flight
            .lock()
            .map(|s| s.len())
            .unwrap_or(self.concurrency);
        self.concurrency.saturating_sub(used)
    }

    /// Claim and send runs until cancelled or the stream is gone.
    pub async fn dispatch_loop(
        self: Arc<Self>,
        out: mpsc::Sender<ClaimedRun>,
        cancel: CancellationToken,
    ) {
        let idle = Duration::from_millis(self.engine.config().idle_poll_ms);
        let linger = Duration::from_micros(self.engine.config().claim_linger_us);
        let mut failures = 0u32;
        // The store tries tasks in the order given; start each claim at the
        // next task so one task's backlog never starves the others.
        let mut order = self.tasks.clone();
        // Runs already due when the worker connects are found by the first
        // claim; later ones by wake-ups. A retry scheduled before a restart
        // has no timer here, so ask the store once when it falls due.
        let mut next_due: Option<i64> = self
            .engine
            .store()
            .next_due(&self.namespace, &self.tasks)
            .await
            .ok()
            .flatten();
        // Due work may exist that this session has not claimed.
        let mut pending = true;
        loop {
            let notified = self.signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();

            let closed = self.quiet() || self.draining.load(std::sync::atomic::Ordering::Relaxed);
            let free = if closed { 0 } else { self.free_slots() };
            let mut full = false;
            if free > 0 && pending {
                // Paused subscriptions keep their runs queued (the cache is
                // invalidated on state changes, here and on every replica);
                // a probing one gets one run at a time, claimed apart.
                let (active, probe): (std::borrow::Cow<'_, [String]>, Option<String>) =
                    match self.engine.registry().subscriptions(&self.namespace).await {
                        Ok(subs)
                            if subs
                                .iter()
                                .any(|s| s.sub.state != SubscriptionState::Active) =>
                        {
                            let state = |t: &str| {
                                subs.iter()
                                    .find(|s| s.sub.task_id == t)
                                    .map_or(SubscriptionState::Active, |s| s.sub.state)
                            };
                            let probe = order
                                .iter()
                                .find(|t| {
                                    state(t) == SubscriptionState::Probing && !self.holds_task(t)
                                })
                                .cloned();
                            let active = order
                                .iter()
                                .filter(|t| state(t) == SubscriptionState::Active)
                                .cloned()
                                .collect();
                            (active, probe)
                        }
                        _ => (std::borrow::Cow::Borrowed(&order[..]), None),
                    };
                let claimed = self.claim_with_probe(&active, probe.as_deref(), free).await;
                match claimed {
                    Ok(claimed) => {
                        failures = 0;
                        order.rotate_left(1);
                        full = claimed.len() == free;
                        pending = full;
                        let metrics = self.engine.metrics();
                        let now_wall = crate::model::now_ms();
                        for c in &claimed {
                            let waited = (now_wall - c.published_at_ms).max(0) as f64 / 1000.0;
                            metrics
                                .publish_to_start
                                .get_or_create(&metrics.task("runs", &self.namespace, &c.task_id))
                                .observe(waited);
                        }
                        if let Ok(mut set) = self.in_flight.lock() {
                            let now = Instant::now();
                            let tracing_on = crate::telemetry::span::enabled();
                            set.extend(claimed.iter().map(|c| {
                                (
                                    c.run_id.clone(),
                                    InFlight {
                                        task: c.task_id.clone(),
                                        event: c.event.clone(),
                                        keyed: !c.ordering_key.is_empty(),
                                        probe: probe.as_deref() == Some(c.task_id.as_str()),
                                        lease: Duration::from_millis(c.lease_ms),
                                        renewed: now,
                                        started: now,
                                        trace: if tracing_on {
                                            c.trace.clone()
                                        } else {
                                            TraceContext::default()
                                        },
                                    },
                                )
                            }));
                        }
                        for run in claimed {
                            tracing::debug!(run_id = %run.run_id, task = %run.task_id, attempt = run.attempt, worker = %self.worker_id, "run assigned");
                            if out.send(run).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, worker = %self.worker_id, "claim failed");
                        let pause = Duration::from_millis(50 * u64::from(failures.min(40)));
                        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = cancel.cancelled() => return }
                        continue;
                    }
                }
            }
            if full {
                continue;
            }
            let mut sleep_for = idle;
            if let Some(at) = next_due {
                let d = at - now_ms();
                if d <= 0 {
                    next_due = None;
                } else {
                    sleep_for = sleep_for.min(Duration::from_millis(d as u64));
                }
            }
            tokio::select! {
                _ = &mut notified => {
                    pending = true;
                    // Under load, linger briefly: more publishes are
                    // committing, and one claim of many runs costs less than
                    // many claims of a few. A lone publish is claimed now.
                    if linger > Duration::ZERO && self.engine.publishes_in_flight() > 0 {
                        tokio::time::sleep(linger).await;
                    }
                }
                _ = &mut freed => {
                    // `select!` picks one ready branch at random: a wake-up
                    // that came with the freed slot must not be dropped with
                    // its future (`notify_waiters` keeps no permit), or the
                    // runs it announced wait for the idle poll (5 s).
                    if futures::FutureExt::now_or_never(notified.as_mut()).is_some() {
                        pending = true;
                    }
                }
                _ = tokio::time::sleep(sleep_for) => pending = true,
                _ = cancel.cancelled() => return,
                _ = out.closed() => return,
            }
        }
    }

    /// A result from the worker: record it and free the slot.
    ///
    /// Recording it (and the retry or dead letter it leads to) is a
    /// `complete` span, a child of the attempt's own span (`attempt_span`:
    /// the worker's `process` span, the webhook delivery's) or, when the
    /// attempt sent none, of the event's creation context.
    pub async fn on_result(
        &self,
        run_id: String,
        attempt: u32,
        outcome: Outcome,
        attempt_span: TraceContext,
    ) -> Result<CompletionEffect> {
        let mut event_trace = TraceContext::default();
        let run = self.in_flight.lock().ok().and_then(|mut set| {
            set.get_mut(&run_id).map(|r| {
                event_trace = std::mem::take(&mut r.trace);
                (r.task.clone(), r.started, r.event.clone(), r.probe)
            })
        });
        let failed = matches!(outcome, Outcome::Failed { .. });
        let mut span = match (attempt_span.is_empty(), event_trace.is_empty()) {
            (false, _) => Span::complete(&attempt_span, None),
            (true, false) => Span::complete(&event_trace, Some((&run_id, attempt, !failed))),
            (true, true) => Span::default(),
        };
        let error = match (&outcome, &run) {
            (Outcome::Failed { message, .. }, Some(_)) => message.clone(),
            _ => String::new(),
        };
        let retry_wakes = match &run {
            Some((task, ..)) => Target::Task {
                namespace: self.namespace.clone(),
                task: task.clone(),
            },
            None => Target::Namespace(self.namespace.clone()),
        };
        let effect = self
            .engine
            .complete(
                Completion {
                    run_id: run_id.clone(),
                    attempt,
                    worker_id: self.worker_id.clone(),
                    outcome,
                },
                retry_wakes,
            )
            .await;
        if span.is_recording() {
            match &effect {
                Ok(CompletionEffect::Completed) => span.set("fanout.effect", "completed"),
                Ok(CompletionEffect::Retrying { at_ms }) => {
                    span.set("fanout.effect", "retrying");
                    span.set("fanout.retry_at_ms", *at_ms);
                }
                Ok(CompletionEffect::Dead) => span.set("fanout.effect", "dead"),
                Ok(CompletionEffect::Stale) => span.set("fanout.effect", "stale"),
                Err(e) => span.fail(format!("{:?}", e.codes().0)),
            }
        }
        if let (Some((task, started, event, probe)), Ok(e)) = (&run, &effect) {
            let metrics = self.engine.metrics();
            if *e != CompletionEffect::Stale {
                metrics
                    .run_duration
                    .get_or_create(&metrics.task("runs", &self.namespace, task))
                    .observe(started.elapsed().as_secs_f64());
                self.engine
                    .attempt_ended(&self.namespace, task, !failed, *probe);
            }
            if *e == CompletionEffect::Dead {
                self.engine
                    .run_died(&self.namespace, &run_id, task, event, &error);
            }
            self.engine.count_effect(&self.namespace, task, *e, failed);
        }
        self.release_slot(&run_id);
        effect
    }

    /// The worker dropped a run it suspended: free its slot.
    pub fn release_slot(&self, run_id: &str) {
        let done = self
            .in_flight
            .lock()
            .ok()
            .and_then(|mut set| set.remove(run_id));
        if let Some(r) = done
            && r.keyed
        {
            // The next run of its key, on any session, may be claimable.
            self.engine
                .wakeup()
                .tasks(&self.namespace, [r.task.as_str()]);
        }
        self.slot_freed.notify_one();
    }

    /// A worker that let a lease lapse without a heartbeat (frozen by a GC
    /// pause, a stopped VM, a network that drops packets without a reset)
    /// gets no new runs until it is heard from again: its TCP buffers would
    /// take them, and they would only wait out their leases too.
    fn quiet(&self) -> bool {
        let now = Instant::now();
        self.in_flight
            .lock()
            .map(|set| set.values().any(|r| r.lapsed(now)))
            .unwrap_or(false)
    }

    /// The worker is shutting down: send it no more runs.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(worker = %self.worker_id, "worker draining");
    }

    /// The worker gives these runs back unfinished: queue them again at
    /// once, uncharged, and free their slots.
    pub async fn give_back(&self, run_ids: &[String]) -> Result<u64> {
        let n = self
            .engine
            .store()
            .give_back(&self.worker_id, run_ids, now_ms())
            .await?;
        for id in run_ids {
            self.release_slot(id);
        }
        if n > 0 {
            tracing::info!(worker = %self.worker_id, runs = n, "runs given back unfinished");
            self.engine.wakeup().namespace(&self.namespace);
        }
        Ok(n)
    }

    /// Extend the leases of runs the worker says it is still executing.
    pub async fn on_heartbeat(&self, run_ids: &[String]) -> Result<u64> {
        let was_quiet = self.quiet();
        if let Ok(mut set) = self.in_flight.lock() {
            let now = Instant::now();
            for id in run_ids {
                if let Some(r) = set.get_mut(id) {
                    r.renewed = now;
                }
            }
        }
        if was_quiet {
            // Heard again: let the dispatch loop look for work.
            self.slot_freed.notify_one();
        }
        self.engine
            .store()
            .heartbeat(&self.worker_id, run_ids, now_ms())
            .await
    }

    /// Keep what a running attempt logged: only this session's lease on
    /// that attempt may add lines; each line is bounded, the attempt's
    /// total too (the store cuts it with one truncation line).
    pub async fn on_logs(
        &self,
        run_id: &str,
        attempt: u32,
        mut lines: Vec<LogLine>,
    ) -> Result<u64> {
        use crate::limits::{
            MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_FIELDS_BYTES, MAX_LOG_LINE_BYTES,
            MAX_LOG_LINES_PER_FLUSH,
        };
        lines.truncate(MAX_LOG_LINES_PER_FLUSH);
        for l in &mut lines {
            if l.message.len() > MAX_LOG_LINE_BYTES {
                l.message =
                    crate::limits::truncate(std::mem::take(&mut l.message), MAX_LOG_LINE_BYTES);
            }
            if l.fields_json.len() > MAX_LOG_FIELDS_BYTES
                || (!l.fields_json.is_empty()
                    && !serde_json::from_str::<serde_json::Value>(&l.fields_json)
                        .is_ok_and(|v| v.is_object()))
            {
                l.fields_json.clear();
            }
        }
        self.engine
            .store()
            .append_logs(
                &self.worker_id,
                run_id,
                attempt,
                &lines,
                MAX_LOG_BYTES_PER_ATTEMPT,
            )
            .await
    }

    /// The stream ended: fail what the worker still held, so it retries now
    /// rather than after the lease.
    pub async fn close(&self) {
        match self
            .engine
            .store()
            .release_worker(&self.worker_id, now_ms())
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(worker = %self.worker_id, runs = n, "released runs of a disconnected worker");
            }
            Err(e) => {
                tracing::warn!(worker = %self.worker_id, error = %e, "could not release runs; leases will expire")
            }
        }
        // Released runs are retried now or later: wake this namespace's
        // sessions so they claim them or re-read their next due time.
        self.engine.wakeup().namespace(&self.namespace);
    }
}

/// Fail expired leases every `reap_interval_ms` until cancelled.
pub async fn reaper(engine: Engine, cancel: CancellationToken) {
    let every = Duration::from_millis(engine.config().reap_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
        // Failures count against the store's health; successes do not
        // clear it (a reap that changes nothing proves no write works).
        match engine.reap().await {
            Ok(n) if n > 0 => engine.wakeup().now(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "lease reaper failed");
                if let crate::error::Error::Unavailable(m) = &e {
                    engine.health().store_failed(m);
                }
            }
        }
        if let Err(e) = engine.expire_waitpoints().await {
            tracing::warn!(error = %e, "waitpoint expiry failed");
            if let crate::error::Error::Unavailable(m) = &e {
                engine.health().store_failed(m);
            }
        }
    }
}
