//! Tasks: an id, the event they are `on`, and an async handler. A handler
//! returns `Ok(output)` or a [`TaskError`] that says whether retrying helps.

use crate::event::{Event, EventPayload};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How a handler failed. `?` on any error (anything that converts into
/// `Box<dyn std::error::Error + Send + Sync>`: `std` errors, `anyhow::Error`,
/// strings) gives a retryable failure that keeps its source chain; mark it
/// with [`TaskResultExt::fatal`] when retrying cannot help (the run goes dead
/// at once) or [`TaskResultExt::retry_after`] when the next attempt must
/// wait (an upstream said `Retry-After`).
///
/// ```
/// use fanout::{TaskError, TaskResultExt};
/// use std::time::Duration;
///
/// fn charge(ok: bool) -> anyhow::Result<u32> {
///     anyhow::ensure!(ok, "card declined");
///     Ok(7)
/// }
///
/// fn handler(ok: bool) -> Result<u32, TaskError> {
///     let receipt = charge(ok).fatal()?; // declined: no retry
///     let _ = std::fs::metadata("/").retry_after(Duration::from_secs(30))?;
///     Ok(receipt)
/// }
/// assert!(handler(false).unwrap_err().fatal);
/// ```
#[derive(Debug, Clone)]
pub struct TaskError {
    /// What went wrong, with its causes (`outer: cause: root`), stored as
    /// the attempt's error.
    pub message: String,
    /// Fatal: the run goes dead at once instead of retrying.
    pub fatal: bool,
    /// The next attempt no sooner than this (the backoff applies when it
    /// is longer; the engine caps it at a day).
    pub retry_after: Option<Duration>,
    /// The error this came from, if any.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Set by `ctx.publish_and_wait` / `ctx.sleep` when the run was parked
    /// on this waitpoint: not a failure. Return it with `?`.
    pub(crate) suspended_on: Option<String>,
}

impl PartialEq for TaskError {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.message,
            self.fatal,
            self.retry_after,
            &self.suspended_on,
        ) == (
            &other.message,
            other.fatal,
            other.retry_after,
            &other.suspended_on,
        )
    }
}

impl TaskError {
    /// Worth another attempt (after backoff).
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            fatal: false,
            retry_after: None,
            source: None,
            suspended_on: None,
        }
    }

    /// Not worth retrying: skip the remaining attempts.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError {
            fatal: true,
            ..TaskError::retryable(message)
        }
    }

    /// This failure, marked fatal.
    pub fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// This failure, with the next attempt no sooner than `after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The error this failure came from (its chain is in `message` too).
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    pub(crate) fn suspended(waitpoint_id: String) -> Self {
        TaskError {
            suspended_on: Some(waitpoint_id.clone()),
            ..TaskError::retryable(format!("suspended on waitpoint {waitpoint_id}"))
        }
    }

    /// True when this is the suspension signal, not a failure.
    pub fn is_suspension(&self) -> bool {
        self.suspended_on.is_some()
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            if self.fatal { "fatal: " } else { "" },
            self.message
        )
    }
}

impl<E> From<E> for TaskError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(e: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        let mut message = boxed.to_string();
        let mut cause = boxed.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // anyhow's context repeats nothing, but some errors print
            // their source themselves: do not say it twice.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        TaskError {
            source: Some(Arc::from(boxed)),
            ..TaskError::retryable(message)
        }
    }
}

/// Marks a failing `Result` for the engine: `.fatal()?` skips the remaining
/// attempts, `.retry_after(d)?` delays the next one.
pub trait TaskResultExt<T> {
    /// On error: a fatal failure (no more attempts).
    fn fatal(self) -> Result<T, TaskError>;
    /// On error: a retryable failure whose next attempt waits at least `after`.
    fn retry_after(self, after: Duration) -> Result<T, TaskError>;
}

impl<T, E: Into<TaskError>> TaskResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, TaskError> {
        self.map_err(|e| e.into().into_fatal())
    }

    fn retry_after(self, after: Duration) -> Result<T, TaskError> {
        self.map_err(|e| e.into().with_retry_after(after))
    }
}

/// Retry policy of a task: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Total attempts including the first (default 5).
    pub max_attempts: u32,
    /// First backoff (default 1 s), multiplied by `multiplier` (default 2)
    /// after each failure, capped at `max_backoff` (default 60 s).
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Each wait is this many times the previous one (before jitter).
    pub multiplier: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

impl Retry {
    /// `n` attempts with the default backoff.
    pub fn attempts(n: u32) -> Self {
        Retry {
            max_attempts: n,
            ..Retry::default()
        }
    }
    /// Set the backoff curve.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }
}

/// What a handler knows about the run it executes, and its durable
/// operations (`step`, `publish_and_wait`, `sleep`; see the `waitpoint`
/// module docs for the determinism rules).
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The run being executed.
    pub run_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The task this run belongs to.
    pub task_id: String,
    /// The event's name.
    pub event: String,
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
    pub(crate) client: crate::Client,
    /// The worker session holding this run's lease (sent with calls made
    /// on the run's behalf).
    pub(crate) worker_id: String,
    /// Step key → recorded value (JSON), from earlier executions.
    pub(crate) journal: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// Per-kind call counters, to key waits by call order.
    pub(crate) seq: Arc<std::sync::Mutex<std::collections::HashMap<&'static str, u32>>>,
}

impl TaskContext {
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

impl std::fmt::Debug for crate::Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url())
            .field("namespace", &self.namespace())
            .finish()
    }
}

pub(crate) type BoxFut = Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(serde_json::Value, TaskContext) -> BoxFut + Send + Sync>;

/// A task: subscribes to one event and runs a handler per delivery.
#[derive(Clone)]
pub struct Task {
    pub(crate) id: String,
    pub(crate) event: String,
    /// Schema and options to define the event with; None for wildcard tasks.
    pub(crate) definition: Option<(serde_json::Value, crate::client::EventOptions)>,
    pub(crate) consumer_group: Option<String>,
    pub(crate) filter: Option<serde_json::Value>,
    pub(crate) retry: Retry,
    pub(crate) lease: Option<Duration>,
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("event", &self.event)
            .finish()
    }
}

impl Task {
    /// A task `id` on `event`, running `handler(payload, ctx)` per run.
    pub fn new<T, O, F, Fut>(id: impl Into<String>, event: &Event<T>, handler: F) -> Self
    where
        T: EventPayload,
        O: Serialize + 'static,
        F: Fn(T, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload, ctx| {
            let handler = handler.clone();
            Box::pin(async move {
                let typed: T = serde_json::from_value(payload).map_err(|e| {
                    TaskError::fatal(format!(
                        "payload does not deserialize into the task's type: {e}"
                    ))
                })?;
                let out = handler(typed, ctx).await?;
                serde_json::to_value(out)
                    .map_err(|e| TaskError::fatal(format!("output does not serialize: {e}")))
            })
        });
        Task {
            id: id.into(),
            event: event.name().to_string(),
            definition: Some((event.schema().clone(), event.options().clone())),
            consumer_group: None,
            filter: None,
            retry: Retry::default(),
            lease: None,
            handler: erased,
        }
    }

    /// A task on every event whose name matches `pattern` (`order.*` one
    /// segment, `order.#` any number); the handler gets the raw JSON and
    /// `ctx.event` names the event.
    pub fn on_pattern<O, F, Fut>(
        id: impl Into<String>,
        pattern: impl Into<String>,
        handler: F,
    ) -> Self
    where
        O: Serialize + 'static,
        F: Fn(serde_json::Value, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload, ctx| {
            let handler = handler.clone();
            Box::pin(async move {
                let out = handler(payload, ctx).await?;
                serde_json::to_value(out)
                    .map_err(|e| TaskError::fatal(format!("output does not serialize: {e}")))
            })
        });
        Task {
            id: id.into(),
            event: pattern.into(),
            definition: None,
            consumer_group: None,
            filter: None,
            retry: Retry::default(),
            lease: None,
            handler: erased,
        }
    }

    /// The task's id (its subscription name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Retry policy (default: 5 attempts, 1 s doubling to 60 s).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How long a run may go without a heartbeat before it is re-delivered
    /// (the worker heartbeats every third of it while the handler runs).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Join a consumer group: each event goes to one member of the group.
    pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
        self.consumer_group = Some(group.into());
        self
    }

    /// A server-side content filter (JSON pattern).
    pub fn filter(mut self, filter: serde_json::Value) -> Self {
        self.filter = Some(filter);
        self
    }
}
