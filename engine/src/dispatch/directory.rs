//! The worker sessions connected to this engine, for the console's
//! `/workers` page. Sessions are held weakly: a session that ended is gone
//! from the list the next time it is read, with no bookkeeping on the
//! dispatch path beyond one insert per connection.

use super::Session;
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

/// Connected sessions, by worker id.
#[derive(Default)]
pub struct Directory {
    sessions: Mutex<HashMap<String, Weak<Session>>>,
}

impl Directory {
    /// Add a session (dropped from the list when it is dropped).
    pub fn add(&self, session: &Arc<Session>) {
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, w| w.strong_count() > 0);
            s.insert(session.worker_id.clone(), Arc::downgrade(session));
        }
    }

    /// The live sessions of `namespace` (`None`: all), by connection time.
    pub fn list(&self, namespace: Option<&str>) -> Vec<WorkerInfo> {
        let live: Vec<Arc<Session>> = match self.sessions.lock() {
            Ok(mut s) => {
                s.retain(|_, w| w.strong_count() > 0);
                s.values().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut out: Vec<WorkerInfo> = live
            .iter()
            .filter(|s| namespace.is_none_or(|ns| s.namespace == ns))
            .map(|s| s.info())
            .collect();
        out.sort_by(|a, b| {
            (a.connected_at_ms, &a.worker_id).cmp(&(b.connected_at_ms, &b.worker_id))
        });
        out
    }
}
