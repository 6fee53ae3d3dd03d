//! What `/healthz` and `/livez` report: each dependency's state, as last
//! seen by the work that uses it.
//!
//! The store is required: while its writes fail (disk full, read-only data
//! directory, Postgres gone) the engine is not ready (`/healthz` 503). The
//! archive and the limiter are not: the outbox keeps events until the
//! archive returns, and the limiter has its `on_unavailable` policy — so
//! their failures make the engine `degraded`, still ready. States are set
//! where the work happens (publish and completion batches, the archiver,
//! the Redis limiter's connection), never by a probe on the request path.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One dependency's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    /// Failing; the engine works around it.
    Degraded,
    /// Failing; the engine cannot accept work.
    Down,
}

/// A dependency's state, since when, and the last error.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub state: State,
    /// Epoch ms of the last change of state.
    pub since_ms: i64,
    /// The last error while not ok ("" when ok).
    pub error: String,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            state: State::Ok,
            since_ms: crate::model::now_ms(),
            error: String::new(),
        }
    }
}

/// The dependencies of one engine.
#[derive(Debug, Default)]
pub struct Health {
    store: Mutex<Check>,
    archive: Mutex<Check>,
    /// Fast path for the per-write "still ok" (no lock while all is well).
    store_failing: AtomicBool,
    archive_failing: AtomicBool,
}

/// A report for `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// ok, degraded (a non-essential dependency fails) or down.
    pub status: State,
    /// Accepting publishes and runs (the store works).
    pub ready: bool,
    pub store: Check,
    pub archive: Check,
    pub limiter: Check,
}

fn set(slot: &Mutex<Check>, state: State, error: String) {
    let mut c = slot.lock().unwrap_or_else(|p| p.into_inner());
    if c.state != state {
        c.since_ms = crate::model::now_ms();
        match state {
            State::Ok => tracing::info!(since_ms = c.since_ms, "dependency recovered"),
            _ => tracing::warn!(error = %error, "dependency failing"),
        }
    }
    c.state = state;
    c.error = error;
}

impl Health {
    /// A store write committed.
    pub fn store_ok(&self) {
        if self.store_failing.swap(false, Ordering::AcqRel) {
            set(&self.store, State::Ok, String::new());
        }
    }

    /// A store write failed with an error that retrying later may cure.
    pub fn store_failed(&self, error: &str) {
        self.store_failing.store(true, Ordering::Release);
        set(&self.store, State::Down, format!("store: {error}"));
    }

    /// The archiver shipped a batch (or had nothing to ship).
    pub fn archive_ok(&self) {
        if self.archive_failing.swap(false, Ordering::AcqRel) {
            set(&self.archive, State::Ok, String::new());
        }
    }

    /// The archiver could not ship.
    pub fn archive_failed(&self, error: &str) {
        self.archive_failing.store(true, Ordering::Release);
        set(&self.archive, State::Degraded, format!("archive: {error}"));
    }

    /// Everything, with the limiter's own check.
    pub fn report(&self, limiter: Check) -> Report {
        let store = self.store.lock().map(|c| c.clone()).unwrap_or_default();
        let archive = self.archive.lock().map(|c| c.clone()).unwrap_or_default();
        let status = if store.state != State::Ok {
            State::Down
        } else if archive.state != State::Ok || limiter.state != State::Ok {
            State::Degraded
        } else {
            State::Ok
        };
        Report {
            status,
            ready: store.state == State::Ok,
            store,
            archive,
            limiter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_decides_readiness_the_rest_degrades() {
        let h = Health::default();
        assert_eq!(h.report(Check::default()).status, State::Ok);
        h.archive_failed("clickhouse: connection refused");
        let r = h.report(Check::default());
        assert_eq!((r.status, r.ready), (State::Degraded, true));
        h.store_failed("database or disk is full");
        let r = h.report(Check::default());
        assert_eq!((r.status, r.ready), (State::Down, false));
        assert!(r.store.error.contains("disk is full"));
        h.store_ok();
        h.archive_ok();
        assert_eq!(h.report(Check::default()).status, State::Ok);
    }
}
