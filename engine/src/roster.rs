//! The worker sessions connected to this engine, for the console's
//! `/workers` page. Sessions are held weakly: a session that ended is gone
//! from the list the next time it is read, with no bookkeeping on the
//! dispatch path beyond one insert per connection. (A trait instead of
//! `dispatch::Session` itself keeps `engine` free of a `dispatch` import:
//! dispatch depends on the engine.)

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// One connected worker as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub namespace: String,
    pub worker_id: String,
    /// The name the worker gave (`Worker::name`).
    pub name: String,
    pub tasks: Vec<String>,
    /// Slots: runs it may hold at once.
    pub concurrency: usize,
    /// Runs it holds now.
    pub in_flight: usize,
    pub connected_at_ms: i64,
    /// Shutting down: it gets no new runs.
    pub draining: bool,
}

/// A connected worker that can describe itself.
pub trait Listed: Send + Sync {
    fn info(&self) -> WorkerInfo;
}

/// Connected sessions, by worker id.
#[derive(Default)]
pub struct Roster {
    sessions: Mutex<HashMap<String, Weak<dyn Listed>>>,
}

impl Roster {
    /// Add a session (dropped from the list when it is dropped).
    pub fn add(&self, worker_id: &str, session: Arc<dyn Listed>) {
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, w| w.strong_count() > 0);
            s.insert(worker_id.to_string(), Arc::downgrade(&session));
        }
    }

    /// How many sessions are live (no per-session work: the console's
    /// live-update check reads it four times a second per open page).
    pub fn live(&self) -> usize {
        self.sessions
            .lock()
            .map(|s| s.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// The live sessions of `namespace` (`None`: all), by connection time.
    pub fn list(&self, namespace: Option<&str>) -> Vec<WorkerInfo> {
        let live: Vec<Arc<dyn Listed>> = match self.sessions.lock() {
            Ok(mut s) => {
                s.retain(|_, w| w.strong_count() > 0);
                s.values().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut out: Vec<WorkerInfo> = live
            .iter()
            .map(|s| s.info())
            .filter(|w| namespace.is_none_or(|ns| w.namespace == ns))
            .collect();
        out.sort_by(|a, b| {
            (a.connected_at_ms, &a.worker_id).cmp(&(b.connected_at_ms, &b.worker_id))
        });
        out
    }
}
