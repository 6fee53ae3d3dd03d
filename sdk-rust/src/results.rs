//! What scatter-gather returns: one outcome per subscriber, read back typed
//! through the task that produced it.

use crate::task::Task;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One subscriber's final outcome, as the engine reports it (untyped; see
/// [`Results::get`] for the typed view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// Whether the run completed (`false`: it died, or the wait timed out
    /// before it finished).
    pub ok: bool,
    /// The run's output (`Null` if it died).
    pub output: serde_json::Value,
    /// The last error of a dead run (`"timeout"` when the wait ended first).
    pub error: Option<String>,
}

/// Why a subscriber has no output to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskFailure {
    /// The run died (attempts used up, a fatal error), or the wait timed
    /// out before it finished (`error` is then `timeout`).
    #[error("task '{task}' failed: {error}")]
    Failed {
        /// The task id.
        task: String,
        /// Its last error.
        error: String,
    },
    /// The run completed, but its output is not the task's output type
    /// (the handler changed since, or another task has this id).
    #[error("task '{task}' output does not deserialize into its output type: {error}")]
    Output {
        /// The task id.
        task: String,
        /// The deserialization error.
        error: String,
    },
}

/// Every subscriber's outcome of one publish-and-wait, by task id.
///
/// ```
/// # use fanout::{Event, Results, Task, TaskFailure};
/// # #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)] struct Order { id: String }
/// let placed = Event::<Order>::new("order.placed");
/// let reserve = Task::new("reserve", &placed, |o: Order, _| async move { Ok(o.id.len() as u32) });
/// let results: Results = serde_json::from_value(serde_json::json!({
///     "reserve": { "ok": true, "output": 7, "error": null }
/// })).unwrap();
/// let reserved: u32 = results.get(&reserve).unwrap()?;
/// assert_eq!(reserved, 7);
/// # Ok::<(), TaskFailure>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Results(BTreeMap<String, TaskOutcome>);

impl Results {
    /// `task`'s outcome with its output typed; `None` when the publish
    /// created no run for it (not subscribed, filtered out, another member
    /// of its consumer group got the event).
    pub fn get<I, O: DeserializeOwned>(&self, task: &Task<I, O>) -> Option<Result<O, TaskFailure>> {
        let outcome = self.0.get(task.id())?;
        Some(if outcome.ok {
            serde_json::from_value(outcome.output.clone()).map_err(|e| TaskFailure::Output {
                task: task.id().to_string(),
                error: e.to_string(),
            })
        } else {
            Err(TaskFailure::Failed {
                task: task.id().to_string(),
                error: outcome.error.clone().unwrap_or_default(),
            })
        })
    }

    /// The untyped outcome of the task with this id.
    pub fn outcome(&self, task_id: &str) -> Option<&TaskOutcome> {
        self.0.get(task_id)
    }

    /// `(task id, outcome)` in task id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TaskOutcome)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many runs were gathered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the publish created no run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every run completed.
    pub fn all_ok(&self) -> bool {
        self.0.values().all(|o| o.ok)
    }

    /// The task ids that have an outcome.
    pub fn task_ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// `results["task-id"]`: the untyped outcome; panics when the task has
/// none (as a map index does). [`Results::get`] is the typed, total form.
impl std::ops::Index<&str> for Results {
    type Output = TaskOutcome;
    fn index(&self, task_id: &str) -> &TaskOutcome {
        self.0
            .get(task_id)
            .unwrap_or_else(|| panic!("no outcome for task '{task_id}'"))
    }
}

impl FromIterator<(String, TaskOutcome)> for Results {
    fn from_iter<T: IntoIterator<Item = (String, TaskOutcome)>>(iter: T) -> Self {
        Results(iter.into_iter().collect())
    }
}
