//! Tasks: an id, the event they are `on`, and an async handler. A
//! [`Task<I, O>`] knows its payload type `I` and its output type `O`, so
//! publish-and-wait results are read back typed through it
//! ([`crate::Results::get`]).

use crate::client::EventOptions;
use crate::context::TaskContext;
use crate::event::{Event, EventPayload};
use crate::task_error::TaskError;
use fanout_proto::v1 as pb;
use serde::Serialize;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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

pub(crate) type BoxFut = Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(serde_json::Value, TaskContext) -> BoxFut + Send + Sync>;

/// A task without its types: what a worker holds and the engine is told.
/// Public only so [`AnyTask`] can hand it out; nothing outside the crate
/// can name or build one.
#[doc(hidden)]
#[derive(Clone)]
pub struct TaskSpec {
    pub(crate) id: String,
    /// An event name, or a name pattern for [`Task::on_pattern`].
    pub(crate) event: String,
    /// The schema derived from the payload type and the event's options
    /// (typed tasks): what `Worker::define_events` defines, and what the
    /// defined schema is checked against.
    pub(crate) definition: Option<(serde_json::Value, EventOptions)>,
    pub(crate) consumer_group: Option<String>,
    pub(crate) filter: Option<serde_json::Value>,
    pub(crate) retry: Retry,
    pub(crate) lease: Option<Duration>,
    pub(crate) handler: Handler,
}

impl TaskSpec {
    pub(crate) fn registration(&self) -> pb::TaskRegistration {
        pb::TaskRegistration {
            id: self.id.clone(),
            event: self.event.clone(),
            filter_json: self
                .filter
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            consumer_group: self.consumer_group.clone().unwrap_or_default(),
            retry: Some(pb::RetryPolicy {
                max_attempts: self.retry.max_attempts,
                initial_backoff_ms: millis(self.retry.initial_backoff),
                max_backoff_ms: millis(self.retry.max_backoff),
                multiplier: self.retry.multiplier,
            }),
            lease_ms: self.lease.map_or(0, millis),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A task: subscribes to one event (or a name pattern) and runs a handler
/// per delivery. `I` is the payload type, `O` the output type (both
/// `serde_json::Value` for untyped tasks).
pub struct Task<I = serde_json::Value, O = serde_json::Value> {
    pub(crate) spec: TaskSpec,
    _t: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Task<I, O> {
    fn clone(&self) -> Self {
        Task {
            spec: self.spec.clone(),
            _t: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for Task<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.spec.id)
            .field("event", &self.spec.event)
            .finish_non_exhaustive()
    }
}

/// Anything a worker or [`crate::Client::register`] can take as a task:
/// every [`Task<I, O>`], whatever its types, so one slice holds them all
/// (`client.register(&[&receipt, &alert])`).
pub trait AnyTask: Send + Sync {
    /// The task's id.
    fn id(&self) -> &str;
    #[doc(hidden)]
    fn spec(&self) -> &TaskSpec;
}

impl<I, O> AnyTask for Task<I, O> {
    fn id(&self) -> &str {
        &self.spec.id
    }
    fn spec(&self) -> &TaskSpec {
        &self.spec
    }
}

fn output_json<O: Serialize>(out: O) -> Result<serde_json::Value, TaskError> {
    serde_json::to_value(out)
        .map_err(|e| TaskError::fatal(format!("output does not serialize: {e}")))
}

impl<I: EventPayload, O: Serialize + 'static> Task<I, O> {
    /// A task `id` on `event`, running `handler(payload, ctx)` per run.
    ///
    /// ```
    /// use fanout::{Event, Task};
    /// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    /// struct Order { id: String }
    /// let created = Event::<Order>::new("order.created");
    /// let receipt = Task::new("send-receipt", &created, |o: Order, _ctx| async move {
    ///     Ok(format!("receipt for {}", o.id)) // Task<Order, String>
    /// });
    /// assert_eq!(receipt.id(), "send-receipt");
    /// ```
    pub fn new<F, Fut>(id: impl Into<String>, event: &Event<I>, handler: F) -> Self
    where
        F: Fn(I, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload, ctx| {
            let handler = handler.clone();
            Box::pin(async move {
                let typed: I = serde_json::from_value(payload).map_err(|e| {
                    TaskError::fatal(format!(
                        "payload does not deserialize into the task's type: {e}"
                    ))
                })?;
                output_json(handler(typed, ctx).await?)
            })
        });
        Task::from_spec(TaskSpec {
            id: id.into(),
            event: event.name().to_string(),
            definition: Some((event.schema().clone(), event.options().clone())),
            consumer_group: None,
            filter: None,
            retry: Retry::default(),
            lease: None,
            handler: erased,
        })
    }
}

impl<O: Serialize + 'static> Task<serde_json::Value, O> {
    /// A task on every event whose name matches `pattern` (`order.*` one
    /// segment, `order.#` any number); the handler gets the raw JSON and
    /// `ctx.event` names the event.
    pub fn on_pattern<F, Fut>(id: impl Into<String>, pattern: impl Into<String>, handler: F) -> Self
    where
        F: Fn(serde_json::Value, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload, ctx| {
            let handler = handler.clone();
            Box::pin(async move { output_json(handler(payload, ctx).await?) })
        });
        Task::from_spec(TaskSpec {
            id: id.into(),
            event: pattern.into(),
            definition: None,
            consumer_group: None,
            filter: None,
            retry: Retry::default(),
            lease: None,
            handler: erased,
        })
    }
}

impl<I, O> Task<I, O> {
    fn from_spec(spec: TaskSpec) -> Self {
        Task {
            spec,
            _t: PhantomData,
        }
    }

    /// The task's id (its subscription name).
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The event name (or pattern) the task is on.
    pub fn event(&self) -> &str {
        &self.spec.event
    }

    /// Retry policy (default: 5 attempts, 1 s doubling to 60 s).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.spec.retry = retry;
        self
    }

    /// How long a run may go without a heartbeat before it is re-delivered
    /// (the worker heartbeats every third of it while the handler runs).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.spec.lease = Some(lease);
        self
    }

    /// Join a consumer group: each event goes to one member of the group.
    pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
        self.spec.consumer_group = Some(group.into());
        self
    }

    /// A server-side content filter (JSON pattern).
    pub fn filter(mut self, filter: serde_json::Value) -> Self {
        self.spec.filter = Some(filter);
        self
    }
}
