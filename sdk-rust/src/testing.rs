//! Unit-testing handlers without an engine: [`TestContext`] stands in for
//! the run's context, and [`Task::call`] runs the handler once against a
//! payload, in-process.
//!
//! Steps run (and are recorded in the test's journal), `sleep` returns at
//! once and is remembered, `publish_and_wait` answers from results given
//! with [`TestContext::wait_result`]. A journal given up front
//! ([`TestContext::journaled_step`]) replays a re-invocation: the step is
//! not run again.
//!
//! ```
//! use fanout::testing::TestContext;
//! use fanout::{Event, Task, TaskError};
//!
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct Order { id: String, amount: f64 }
//! struct Fees { percent: f64 }
//!
//! let placed = Event::<Order>::new("order.placed");
//! let fee = Task::new("fee", &placed, |o: Order, ctx| async move {
//!     let fees = ctx.state::<Fees>()?;
//!     let charged = ctx.step("charge", || async { Ok(o.amount * fees.percent / 100.0) }).await?;
//!     Ok(charged)
//! });
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let ctx = TestContext::new().state(Fees { percent: 2.0 });
//! let out = fee.call(Order { id: "o-1".into(), amount: 50.0 }, &ctx).await?;
//! assert_eq!(out, 1.0);
//! assert_eq!(ctx.steps(), vec!["charge".to_string()]);
//! # Ok::<(), TaskError>(()) }).unwrap();
//! ```

use crate::context::{Backend, States, TaskContext};
use crate::event::EventPayload;
use crate::results::Results;
use crate::task::Task;
use crate::task_error::TaskError;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a test context answers and remembers.
#[derive(Default)]
pub struct Stubs {
    waits: Mutex<HashMap<String, VecDeque<Results>>>,
    published: Mutex<Vec<(String, serde_json::Value)>>,
    slept: Mutex<Vec<Duration>>,
}

impl Stubs {
    pub(crate) fn publish_and_wait(
        &self,
        event: &str,
        payload: serde_json::Value,
    ) -> Result<Results, TaskError> {
        lock(&self.published).push((event.to_string(), payload));
        lock(&self.waits)
            .get_mut(event)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| {
                TaskError::fatal(format!(
                    "the handler published '{event}' and waited, but the test gave no result for it: add TestContext::wait_result(\"{event}\", results)"
                ))
            })
    }

    pub(crate) fn slept(&self, d: Duration) {
        lock(&self.slept).push(d);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stand-in for a run's context in unit tests. Cheap to clone; clones
/// share what the handler recorded.
#[derive(Clone)]
pub struct TestContext {
    ctx: TaskContext,
    stubs: Arc<Stubs>,
}

impl Default for TestContext {
    fn default() -> Self {
        TestContext::new()
    }
}

impl TestContext {
    /// Attempt 1 of run `run-test` of event `evt-test`, no state, an empty
    /// journal.
    pub fn new() -> Self {
        let stubs = Arc::new(Stubs::default());
        TestContext {
            ctx: TaskContext {
                run_id: "run-test".into(),
                attempt: 1,
                task_id: String::new(),
                event: String::new(),
                event_version: 1,
                event_id: "evt-test".into(),
                ordering_key: None,
                tags: Vec::new(),
                published_at_ms: 0,
                replay_of: None,
                backend: Backend::Offline(stubs.clone()),
                states: States::default(),
                logs: Arc::default(),
                journal: Arc::default(),
                seq: Arc::default(),
                span: tracing::Span::none(),
            },
            stubs,
        }
    }

    /// The attempt number the handler sees.
    pub fn attempt(mut self, n: u32) -> Self {
        self.ctx.attempt = n;
        self
    }

    /// Make the run a replay of `original_event_id`.
    pub fn replay_of(mut self, original_event_id: impl Into<String>) -> Self {
        self.ctx.replay_of = Some(original_event_id.into());
        self
    }

    /// The event's ordering key.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ctx.ordering_key = Some(key.into());
        self
    }

    /// The event's tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.ctx.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Application state, as [`crate::Worker::with_state`] gives it.
    pub fn state<S: Send + Sync + 'static>(mut self, value: S) -> Self {
        self.ctx.states = self.ctx.states.with(value);
        self
    }

    /// A step recorded by an earlier execution: `ctx.step(name, …)` returns
    /// `value` without running.
    pub fn journaled_step(self, name: &str, value: impl serde::Serialize) -> Self {
        let json = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        self.ctx.journal_put(&format!("step:{name}"), &json);
        self
    }

    /// What the next `ctx.publish_and_wait` of `event` returns (one per
    /// call, in order).
    pub fn wait_result(self, event: &str, results: Results) -> Self {
        lock(&self.stubs.waits)
            .entry(event.to_string())
            .or_default()
            .push_back(results);
        self
    }

    /// The names of the steps recorded so far (journaled ones included).
    pub fn steps(&self) -> Vec<String> {
        let journal = lock(&self.ctx.journal);
        let mut names: Vec<String> = journal
            .keys()
            .filter_map(|k| k.strip_prefix("step:").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// `(level, message)` of every line the handler logged (`ctx.log`, or
    /// `tracing` events with [`crate::log_layer`] installed).
    pub fn logs(&self) -> Vec<(String, String)> {
        self.ctx
            .logs
            .peek()
            .into_iter()
            .map(|l| (l.level, l.message))
            .collect()
    }

    /// `(event, payload)` of every `publish_and_wait` the handler made.
    pub fn published(&self) -> Vec<(String, serde_json::Value)> {
        lock(&self.stubs.published).clone()
    }

    /// Every `sleep` the handler made.
    pub fn slept(&self) -> Vec<Duration> {
        lock(&self.stubs.slept).clone()
    }
}

impl<I: EventPayload, O: DeserializeOwned> Task<I, O> {
    /// Run the handler once on `payload` with a [`TestContext`], without an
    /// engine: the output comes back typed, a failure as the
    /// [`TaskError`] the worker would report.
    pub async fn call(&self, payload: I, ctx: &TestContext) -> Result<O, TaskError> {
        let mut run = ctx.ctx.clone();
        run.task_id = self.spec.id.clone();
        if run.event.is_empty() {
            run.event = self.spec.event.clone();
        }
        let json = serde_json::to_value(payload)
            .map_err(|e| TaskError::fatal(format!("payload does not serialize: {e}")))?;
        let logs = run.logs.clone();
        let out = logs.scope((self.spec.handler)(json, run)).await?;
        serde_json::from_value(out).map_err(|e| {
            TaskError::fatal(format!(
                "output does not deserialize into the task's output type: {e}"
            ))
        })
    }
}
