//! [`TaskContext`]: what a handler knows about the run it executes (event,
//! attempt, replay), the worker's shared state, and the handle its durable
//! operations (`step`, `publish_and_wait`, `sleep`) go through.

use crate::client::Client;
use crate::task_error::TaskError;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Values handed to every handler of a worker, one per type
/// ([`crate::Worker::with_state`]); handlers borrow them with
/// [`TaskContext::state`].
#[derive(Clone, Default)]
pub(crate) struct States(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl States {
    pub(crate) fn with<S: Send + Sync + 'static>(self, value: S) -> Self {
        let mut map: HashMap<_, _> = (*self.0).clone();
        map.insert(
            TypeId::of::<S>(),
            Arc::new(value) as Arc<dyn Any + Send + Sync>,
        );
        States(Arc::new(map))
    }

    fn get<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.0.get(&TypeId::of::<S>())?.downcast_ref::<S>()
    }
}

/// Where a context's durable operations go: the engine (a worker), or
/// nowhere (a [`crate::testing::TestContext`], whose stubs answer).
#[derive(Clone)]
pub(crate) enum Backend {
    /// A real run: calls go to the engine on the run's behalf.
    Engine {
        client: Client,
        /// The worker session holding this run's lease (sent with every
        /// call made on the run's behalf).
        worker_id: String,
    },
    /// A unit test: steps run and are recorded locally, waits answer from
    /// the stubs.
    Offline(Arc<crate::testing::Stubs>),
}

/// What a handler knows about the run it executes, and its durable
/// operations (`step`, `publish_and_wait`, `sleep`; see the `waitpoint`
/// module docs for the determinism rules).
#[derive(Clone)]
pub struct TaskContext {
    /// The run being executed.
    pub run_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The task this run belongs to.
    pub task_id: String,
    /// The event's name.
    pub event: String,
    /// The schema version the event was published under (0 from an engine
    /// that does not say).
    pub event_version: u32,
    /// The event's id.
    pub event_id: String,
    /// The event's ordering key, if it had one.
    pub ordering_key: Option<String>,
    /// The event's tags.
    pub tags: Vec<String>,
    /// When the event was published (epoch ms).
    pub published_at_ms: i64,
    /// When a replay created this run: the original event's id.
    pub replay_of: Option<String>,
    pub(crate) backend: Backend,
    pub(crate) states: States,
    /// This attempt's captured log lines.
    pub(crate) logs: Arc<crate::logs::LogBuffer>,
    /// Step key → recorded value (JSON), from earlier executions.
    pub(crate) journal: Arc<Mutex<HashMap<String, String>>>,
    /// Per-kind call counters, to key waits by call order.
    pub(crate) seq: Arc<Mutex<HashMap<&'static str, u32>>>,
    /// This attempt's `process` span (disabled when not traced): a resumed
    /// attempt links it to the waitpoint it waited on.
    pub(crate) span: tracing::Span,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("run_id", &self.run_id)
            .field("attempt", &self.attempt)
            .field("task_id", &self.task_id)
            .field("event", &self.event)
            .field("event_id", &self.event_id)
            .field("replay_of", &self.replay_of)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    /// The worker's state of type `S` (given once with
    /// [`crate::Worker::with_state`]), borrowed: no clone per handler.
    /// A missing state is a fatal failure naming the type, so `?` is
    /// enough:
    ///
    /// ```
    /// # use fanout::{TaskContext, TaskError};
    /// struct Db { url: String }
    /// async fn handler(ctx: TaskContext) -> Result<String, TaskError> {
    ///     let db = ctx.state::<Db>()?;
    ///     Ok(db.url.clone())
    /// }
    /// ```
    pub fn state<S: Send + Sync + 'static>(&self) -> Result<&S, TaskError> {
        self.states.get::<S>().ok_or_else(|| {
            TaskError::fatal(format!(
                "this worker has no state of type {}: give it with Worker::with_state",
                std::any::type_name::<S>()
            ))
        })
    }

    /// Add a line to this attempt's log (kept with the attempt; `fanout
    /// runs logs RUN_ID`). `tracing` events work too with
    /// [`crate::log_layer`] installed.
    pub fn log(&self, level: tracing::Level, message: impl std::fmt::Display) {
        self.logs.push(
            crate::logs::level_name(level),
            message.to_string(),
            String::new(),
        );
    }

    /// True when a replay created this run ([`TaskContext::replay_of`]
    /// names the original event).
    pub fn is_replay(&self) -> bool {
        self.replay_of.is_some()
    }

    pub(crate) fn journal_get(&self, key: &str) -> Option<String> {
        self.journal.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn journal_put(&self, key: &str, value: &str) {
        if let Ok(mut j) = self.journal.lock() {
            j.insert(key.to_string(), value.to_string());
        }
    }

    pub(crate) fn next_seq(&self, kind: &'static str) -> u32 {
        let mut m = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(kind).or_default();
        let v = *n;
        *n += 1;
        v
    }
}
