//! [`Worker`]: connects, defines its tasks' events, registers the tasks,
//! and runs assignments with at most `concurrency` handlers at once.
//!
//! One bidirectional stream carries everything. While a handler runs the
//! worker heartbeats its run every third of the lease. If the stream breaks,
//! running handlers are stopped (the engine already failed those attempts
//! and will retry them) and the worker reconnects with backoff.
//!
//! [`WorkerHandle::shutdown`] drains: the engine is told to send nothing
//! more, running handlers get [`Worker::shutdown_grace`] to finish and
//! report, and whatever still runs then is stopped for real and given back
//! to the engine, which queues it again at once without charging the
//! attempt. [`WorkerHandle::abort`] stops every handler at once (the engine
//! sees a crash: those attempts count).

use crate::client::Client;
use crate::context::{Backend, States, TaskContext};
use crate::error::{Error, Result};
use crate::task::{AnyTask, TaskSpec};
use fanout_proto::v1 as pb;
use pb::{server_message::Msg as In, worker_message::Msg as Out};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A set of tasks served by one process.
pub struct Worker {
    client: Client,
    tasks: Vec<TaskSpec>,
    concurrency: u32,
    name: String,
    grace: Duration,
    states: States,
    define_events: bool,
    allow_schema_mismatch: bool,
}

/// A worker running in the background.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<Result<()>>,
}

impl WorkerHandle {
    /// Stop taking work, let running handlers finish within the grace
    /// period, give back what is still running, and wait for the loop to
    /// end.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.join
            .await
            .map_err(|e| Error::Unavailable(format!("worker task failed: {e}")))?
    }

    /// Stop at once: every handler is cancelled where it awaits, nothing
    /// is reported (to the engine this is a crash; the attempts count).
    pub fn abort(self) {
        self.join.abort();
    }
}

impl Worker {
    /// A worker with no tasks yet; add them with [`Worker::task`].
    pub fn new(client: Client) -> Self {
        Worker {
            client,
            tasks: Vec::new(),
            concurrency: 16,
            name: format!("pid-{}", std::process::id()),
            grace: Duration::from_secs(30),
            states: States::default(),
            define_events: false,
            allow_schema_mismatch: false,
        }
    }

    /// Application state every handler borrows with
    /// [`TaskContext::state`] (one value per type; call again for more):
    /// a database pool, an HTTP client, configuration.
    pub fn with_state<S: Send + Sync + 'static>(mut self, state: S) -> Self {
        self.states = self.states.with(state);
        self
    }

    /// Define each typed task's event from its Rust type at start (a new
    /// schema version when the type changed). Off by default: defining is
    /// a deliberate act (`event.define(&client)`, `fanout events define`),
    /// and a worker only checks that the defined schema is its type's.
    pub fn define_events(mut self) -> Self {
        self.define_events = true;
        self
    }

    /// Start even when a task's Rust type derives a different schema than
    /// its event's defined one (by default that is an
    /// [`Error::SchemaMismatch`] at start: payloads the engine accepts
    /// might not deserialize into the task's type).
    pub fn allow_schema_mismatch(mut self) -> Self {
        self.allow_schema_mismatch = true;
        self
    }

    /// How long [`WorkerHandle::shutdown`] lets running handlers finish
    /// before stopping them and giving their runs back (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Add a task.
    pub fn task(mut self, task: impl AnyTask) -> Self {
        self.tasks.push(task.spec().clone());
        self
    }

    /// Most runs executed at once (default 16).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// A name shown in engine logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Define events (when asked to) or check their schemas, register
    /// once (errors such as a bad task are returned here), then run in the
    /// background.
    pub async fn start(self) -> Result<WorkerHandle> {
        let (stop, stop_rx) = watch::channel(false);
        let this = Arc::new(self);
        if this.define_events {
            this.define().await?;
        }
        check_schemas(&this.client, &this.tasks, this.allow_schema_mismatch).await?;
        let first = this.connect().await?;
        let join = tokio::spawn(async move { this.run_loop(Some(first), stop_rx).await });
        Ok(WorkerHandle { stop, join })
    }

    /// Run in the foreground until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let handle = self.start().await?;
        shutdown.await;
        handle.shutdown().await
    }

    async fn define(&self) -> Result<()> {
        let mut done = HashSet::new();
        for t in &self.tasks {
            if let Some((schema, opts)) = &t.definition
                && done.insert(t.event.clone())
            {
                self.client
                    .define_event_with(&t.event, schema, opts)
                    .await?;
            }
        }
        Ok(())
    }

    fn registration(&self) -> pb::Register {
        pb::Register {
            worker_name: self.name.clone(),
            concurrency: self.concurrency,
            tasks: self.tasks.iter().map(TaskSpec::registration).collect(),
        }
    }

    /// Open the stream and register; returns the channels of a live session.
    async fn connect(&self) -> Result<Conn> {
        let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(self.concurrency as usize * 2 + 16);
        tx.send(pb::WorkerMessage {
            msg: Some(Out::Register(self.registration())),
        })
        .await
        .map_err(|_| Error::Unavailable("worker stream closed".into()))?;
        let mut inbound = self
            .client
            .workers()
            .session(
                self.client
                    .request(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
            .await?
            .into_inner();
        match inbound.message().await? {
            Some(pb::ServerMessage {
                msg: Some(In::Registered(r)),
            }) => {
                tracing::info!(worker_id = %r.worker_id, tasks = self.tasks.len(), "worker registered");
            }
            other => {
                return Err(Error::Unavailable(format!(
                    "engine answered registration with {other:?}"
                )));
            }
        }
        Ok(Conn { tx, inbound })
    }

    async fn run_loop(
        self: Arc<Self>,
        mut conn: Option<Conn>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => {
                        backoff = Duration::from_millis(100);
                        c
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "worker cannot connect");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => return Ok(()),
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            if self.serve(c, &mut stop).await {
                return Ok(());
            }
        }
    }

    /// Serve one connection; true when asked to stop.
    async fn serve(&self, conn: Conn, stop: &mut watch::Receiver<bool>) -> bool {
        let Conn { tx, mut inbound } = conn;
        let handlers: HashMap<String, TaskSpec> = self
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.clone()))
            .collect();
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut jobs = tokio::task::JoinSet::new();
        let min_lease = self
            .tasks
            .iter()
            .filter_map(|t| t.lease)
            .min()
            .unwrap_or(Duration::from_secs(30));
        let mut beat = tokio::time::interval((min_lease / 3).max(Duration::from_millis(50)));
        // Running attempts' log buffers, flushed every second so a crash
        // loses at most the last second of lines.
        let logs: AttemptLogs = Arc::default();
        let mut flush = tokio::time::interval(LOG_FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    // Graceful: no more work, then the grace period for the
                    // handlers that run (their results still go out, and
                    // heartbeats keep their leases).
                    let _ = tx.send(pb::WorkerMessage { msg: Some(Out::Drain(pb::Drain {})) }).await;
                    let deadline = tokio::time::Instant::now() + self.grace;
                    let mut late = Vec::new();
                    while !jobs.is_empty() {
                        tokio::select! {
                            _ = jobs.join_next() => {}
                            _ = beat.tick() => {
                                let ids: Vec<String> = running.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default();
                                if !ids.is_empty() {
                                    let _ = tx.send(pb::WorkerMessage { msg: Some(Out::Heartbeat(pb::Heartbeat { run_ids: ids })) }).await;
                                }
                            }
                            msg = inbound.message() => match msg {
                                // Sent before the engine saw the drain: give it back.
                                Ok(Some(pb::ServerMessage { msg: Some(In::Assignment(a)) })) => late.push(a.run_id),
                                Ok(Some(_)) => {}
                                Ok(None) | Err(_) => break,
                            },
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                    // Past the grace period: stop the handlers for real
                    // (aborting a job aborts its handler task), and give
                    // their runs back uncharged.
                    jobs.shutdown().await;
                    let unfinished: Vec<String> = running
                        .lock()
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    late.extend(unfinished);
                    if !late.is_empty() {
                        tracing::info!(runs = late.len(), "giving back runs still running after the grace period");
                        let _ = tx.send(pb::WorkerMessage { msg: Some(Out::Release(pb::Release { run_ids: late })) }).await;
                    }
                    drop(tx);
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Ok(Some(_)) = inbound.message().await {}
                    })
                    .await;
                    return true;
                }
                _ = beat.tick() => {
                    let ids: Vec<String> = running.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default();
                    if !ids.is_empty() {
                        let _ = tx.send(pb::WorkerMessage { msg: Some(Out::Heartbeat(pb::Heartbeat { run_ids: ids })) }).await;
                    }
                }
                _ = flush.tick() => {
                    let pending: Vec<(String, u32, Vec<pb::LogLine>)> = logs
                        .lock()
                        .map(|l| l.iter().map(|(id, (attempt, b))| (id.clone(), *attempt, b.drain())).collect())
                        .unwrap_or_default();
                    for (run_id, attempt, lines) in pending {
                        if !lines.is_empty() {
                            let _ = tx.send(logs_message(&run_id, attempt, lines)).await;
                        }
                    }
                }
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                msg = inbound.message() => {
                    let a = match msg {
                        Ok(Some(pb::ServerMessage { msg: Some(In::Assignment(a)) })) => a,
                        Ok(Some(_)) => continue,
                        Ok(None) => { tracing::warn!("engine closed the worker stream; reconnecting"); return false; }
                        Err(e) => { tracing::warn!(error = %e, "worker stream failed; reconnecting"); return false; }
                    };
                    let Some(task) = handlers.get(&a.task_id).cloned() else {
                        let _ = tx.send(result(&a, Err(crate::TaskError::fatal(format!("this worker has no task '{}'", a.task_id))), String::new())).await;
                        continue;
                    };
                    if let Ok(mut s) = running.lock() { s.insert(a.run_id.clone()); }
                    let tx = tx.clone();
                    let running = running.clone();
                    let client = self.client.clone();
                    let states = self.states.clone();
                    let buffer: Arc<crate::logs::LogBuffer> = Arc::default();
                    if let Ok(mut l) = logs.lock() { l.insert(a.run_id.clone(), (a.attempt, buffer.clone())); }
                    let logs = logs.clone();
                    jobs.spawn(async move {
                        let (outcome, traceparent) = execute(&task, &a, client, states, buffer.clone()).await;
                        // The last lines go before the result, which ends
                        // the lease they are checked against.
                        if let Ok(mut l) = logs.lock() { l.remove(&a.run_id); }
                        let lines = buffer.drain();
                        if !lines.is_empty() {
                            let _ = tx.send(logs_message(&a.run_id, a.attempt, lines)).await;
                        }
                        let _ = tx.send(result(&a, outcome, traceparent)).await;
                        if let Ok(mut s) = running.lock() { s.remove(&a.run_id); }
                    });
                }
            }
        }
    }
}

struct Conn {
    tx: mpsc::Sender<pb::WorkerMessage>,
    inbound: tonic::Streaming<pb::ServerMessage>,
}

/// Aborts its task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run the handler, turning a panic into a retryable failure.
async fn execute(
    task: &TaskSpec,
    a: &pb::RunAssignment,
    client: Client,
    states: States,
    logs: Arc<crate::logs::LogBuffer>,
) -> (
    std::result::Result<serde_json::Value, crate::TaskError>,
    String,
) {
    let payload: serde_json::Value = match serde_json::from_str(&a.payload_json) {
        Ok(p) => p,
        Err(e) => {
            let e = crate::TaskError::fatal(format!("payload is not JSON: {e}"));
            return (Err(e), String::new());
        }
    };
    // One attempt, as a CONSUMER span linked to the event's creation
    // context; the handler's own spans are its children.
    let span = tracing::info_span!(
        target: crate::trace::TARGET,
        "process",
        otel.name = %format_args!("process {}", a.event),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "fanout",
        messaging.operation.type = "process",
        messaging.destination.name = a.event.as_str(),
        messaging.destination.subscription.name = a.task_id.as_str(),
        messaging.consumer.group.name = tracing::field::Empty,
        messaging.message.id = a.event_id.as_str(),
        fanout.run.id = a.run_id.as_str(),
        fanout.attempt = a.attempt,
        fanout.replay.of = tracing::field::Empty,
        fanout.replay.id = tracing::field::Empty,
        fanout.outcome = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    crate::trace::link(&span, &a.traceparent, &a.tracestate);
    if !span.is_disabled() {
        if !a.replay_of.is_empty() {
            span.record("fanout.replay.of", a.replay_of.as_str());
        }
        if let Some(replay) = crate::trace::replay_id(&a.tracestate) {
            span.record("fanout.replay.id", replay);
        }
        if let Some(group) = &task.consumer_group {
            span.record("messaging.consumer.group.name", group.as_str());
        }
    }
    let ctx = TaskContext {
        run_id: a.run_id.clone(),
        attempt: a.attempt,
        task_id: a.task_id.clone(),
        event: a.event.clone(),
        event_version: a.event_version,
        event_id: a.event_id.clone(),
        ordering_key: (!a.ordering_key.is_empty()).then(|| a.ordering_key.clone()),
        tags: a.tags.clone(),
        published_at_ms: a.published_at_ms,
        replay_of: (!a.replay_of.is_empty()).then(|| a.replay_of.clone()),
        backend: Backend::Engine {
            client,
            worker_id: a.worker_id.clone(),
        },
        states,
        logs: logs.clone(),
        journal: Arc::new(Mutex::new(
            a.journal
                .iter()
                .map(|j| (j.key.clone(), j.value_json.clone()))
                .collect(),
        )),
        seq: Arc::default(),
        span: span.clone(),
    };
    let fut = logs.scope(tracing::Instrument::instrument(
        (task.handler)(payload, ctx),
        span.clone(),
    ));
    // The handler runs as its own task (a panic is caught as a failure);
    // dropping this future — the job aborted at shutdown or on a lost
    // stream — aborts it too, so no handler outlives its worker.
    let mut handle = AbortOnDrop(tokio::spawn(fut));
    let out = match (&mut handle.0).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(crate::TaskError::retryable(format!(
            "handler panicked: {e}"
        ))),
        Err(e) => Err(crate::TaskError::retryable(format!(
            "handler did not finish: {e}"
        ))),
    };
    if !span.is_disabled() {
        match &out {
            Ok(_) => span.record("fanout.outcome", "ok"),
            Err(e) if e.is_suspension() => span.record("fanout.outcome", "suspended"),
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", if e.fatal { "fatal" } else { "retryable" });
                span.record("fanout.outcome", "failed")
            }
        };
    }
    (out, crate::trace::traceparent(&span))
}

/// Run id → (attempt, its log buffer) of the attempts running here.
type AttemptLogs = Arc<Mutex<HashMap<String, (u32, Arc<crate::logs::LogBuffer>)>>>;

/// How often running attempts' log lines are sent.
const LOG_FLUSH: Duration = Duration::from_secs(1);

fn logs_message(run_id: &str, attempt: u32, lines: Vec<pb::LogLine>) -> pb::WorkerMessage {
    pb::WorkerMessage {
        msg: Some(Out::Logs(pb::RunLogs {
            run_id: run_id.to_string(),
            attempt,
            lines,
        })),
    }
}

fn result(
    a: &pb::RunAssignment,
    outcome: std::result::Result<serde_json::Value, crate::TaskError>,
    traceparent: String,
) -> pb::WorkerMessage {
    let outcome = match outcome {
        Ok(v) => pb::run_result::Outcome::OutputJson(v.to_string()),
        Err(e) => pb::run_result::Outcome::Failure(pb::TaskFailure {
            retry_after_ms: e
                .retry_after
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            message: e.message,
            fatal: e.fatal,
        }),
    };
    pb::WorkerMessage {
        msg: Some(Out::Result(pb::RunResult {
            run_id: a.run_id.clone(),
            attempt: a.attempt,
            outcome: Some(outcome),
            traceparent,
        })),
    }
}

/// Check that each typed task's event is defined with the schema its Rust
/// type derives. An undefined event is an error naming how to define it; a
/// different schema is [`Error::SchemaMismatch`] unless allowed (then a
/// warning). Pattern tasks are untyped: nothing to check.
pub(crate) async fn check_schemas(
    client: &Client,
    tasks: &[TaskSpec],
    allow_mismatch: bool,
) -> Result<()> {
    let mut checked = HashSet::new();
    for t in tasks {
        let Some((schema, _)) = &t.definition else {
            continue;
        };
        if !checked.insert(t.event.clone()) {
            continue;
        }
        let defined = match client.event_definition(&t.event, None).await {
            Ok(d) => d,
            Err(Error::NotFound { kind, id, .. }) => {
                return Err(Error::NotFound {
                    kind,
                    id,
                    message: format!(
                        "task '{}' is on event '{}', which is not defined in namespace '{}': define it first (`event.define(&client)` or `fanout events define`), or let the worker define it with Worker::define_events()",
                        t.id,
                        t.event,
                        client.namespace()
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        if &defined.schema != schema {
            if allow_mismatch {
                tracing::warn!(event = %t.event, version = defined.version, task = %t.id, "the task's type derives a different schema than the defined one");
            } else {
                return Err(Error::SchemaMismatch {
                    event: t.event.clone(),
                    version: defined.version,
                    task: t.id.clone(),
                });
            }
        }
    }
    Ok(())
}
