//! The waiters of waitpoints in this process: one `Notify` per waited-on
//! id while a client is connected, woken by the store's post-commit
//! announcements ([`StoreEvent`](crate::model::StoreEvent)) and by other
//! replicas' `wp:<id>` signals. A component the engine owns; the waits
//! themselves are in `waitpoint`.

use crate::model::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Wakes the waiters of one waitpoint id, and keeps what this process
/// heard about it while someone waits: the children completed here and the
/// final row. When every child was heard, the waiter answers from memory
/// instead of reading the store (one statement per publish-and-wait less);
/// otherwise (a child on another replica, a dead child, a timeout, a lagged
/// event stream) it reads the store as before.
#[derive(Default)]
pub struct WaitpointHub {
    waiters: Mutex<HashMap<String, Entry>>,
    /// Waits answered by the safety tick instead of a notice: each one is
    /// a lost wake-up (should stay 0).
    pub safety_answers: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Entry {
    notify: Arc<Notify>,
    children: Vec<ChildResult>,
    done: Option<Waitpoint>,
    /// `NOTIFY` said it finished: maybe here, with the details to follow.
    echoed: bool,
    /// Finished here without details (a timeout, a token): read the store.
    settled: bool,
}

impl WaitpointHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn handle(&self, id: &str) -> Arc<Notify> {
        self.lock()
            .entry(id.to_string())
            .or_default()
            .notify
            .clone()
    }

    pub(crate) fn release(&self, id: &str, n: Arc<Notify>) {
        let mut m = self.lock();
        drop(n);
        if m.get(id).is_some_and(|e| Arc::strong_count(&e.notify) == 1) {
            m.remove(id);
        }
    }

    /// A waitpoint finished in this process (no details): wake its waiters.
    pub fn finished(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.settled = true;
            e.notify.notify_waiters();
        }
    }

    /// `NOTIFY wp:<id>`: a waitpoint finished in some replica, possibly this
    /// one (Postgres delivers a session's own notifications too, often
    /// before this process's own announcement): wake its waiters.
    pub fn finished_somewhere(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.echoed = true;
            e.notify.notify_waiters();
        }
    }

    /// A child of a waited-on waitpoint completed in this process. Two
    /// completion batches can announce out of commit order, so a child may
    /// arrive after its waitpoint's final row: then it wakes the waiters.
    pub fn child_completed(&self, waitpoint_id: &str, child: ChildResult) {
        if let Some(e) = self.lock().get_mut(waitpoint_id) {
            e.children.push(child);
            if e.done.is_some() {
                e.notify.notify_waiters();
            }
        }
    }

    /// A waitpoint completed, with its final row: keep it, wake its waiters.
    pub fn done(&self, wp: Waitpoint) {
        if let Some(e) = self.lock().get_mut(&wp.id) {
            e.done = Some(wp);
            e.notify.notify_waiters();
        }
    }

    /// The finished waitpoint and its children, if every child was heard.
    pub(crate) fn answer(&self, ns: &str, id: &str) -> Heard {
        let m = self.lock();
        let Some(e) = m.get(id) else {
            return Heard::NotDone;
        };
        let Some(wp) = e.done.as_ref() else {
            // Children completing here, or a `NOTIFY` that may be our own:
            // this process may announce the finish with details shortly.
            return if !e.settled && (e.echoed || !e.children.is_empty()) {
                Heard::Partly
            } else {
                Heard::NotDone
            };
        };
        if wp.namespace != ns || wp.kind != WaitpointKind::Runs {
            return Heard::NotDone;
        }
        if e.children.len() as i64 != wp.total {
            return Heard::Partly;
        }
        let mut children = e.children.clone();
        // The order a store read gives.
        children.sort_by(|a, b| (&a.task_id, &a.run_id).cmp(&(&b.task_id, &b.run_id)));
        Heard::All(Box::new(wp.clone()), children)
    }

    /// Events may have been missed: wake every waiter to re-check.
    pub fn wake_all(&self) {
        for e in self.lock().values() {
            e.notify.notify_waiters();
        }
    }
}

/// What the hub heard about a waitpoint.
#[derive(Debug, PartialEq)]
pub(crate) enum Heard {
    /// Not finished, as far as this process heard (or not a runs waitpoint).
    NotDone,
    /// Some children heard here, but not the finish; or the finish but not
    /// every child (two batches can announce out of commit order).
    Partly,
    /// Finished, every child heard: the answer.
    All(Box<Waitpoint>, Vec<ChildResult>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wp(total: i64) -> Waitpoint {
        Waitpoint {
            id: "w1".into(),
            namespace: "ns".into(),
            kind: WaitpointKind::Runs,
            status: WaitpointStatus::Completed,
            pending: 0,
            total,
            event_id: "e1".into(),
            parent_run_id: String::new(),
            timeout_at_ms: 0,
            data_json: String::new(),
            created_at_ms: 1,
            completed_at_ms: 2,
        }
    }

    fn child(task: &str) -> ChildResult {
        ChildResult {
            run_id: format!("r-{task}"),
            task_id: task.into(),
            status: RunStatus::Completed,
            output_json: format!("{{\"by\":\"{task}\"}}"),
            error: String::new(),
        }
    }

    #[test]
    fn answers_from_memory_only_when_every_child_was_heard() {
        let hub = WaitpointHub::default();
        // Nobody waits: nothing is kept.
        hub.child_completed("w1", child("a"));
        let n = hub.handle("w1");
        hub.child_completed("w1", child("b"));
        hub.done(wp(2));
        assert_eq!(
            hub.answer("ns", "w1"),
            Heard::Partly,
            "child 'a' came before the waiter"
        );
        hub.child_completed("w1", child("a"));
        let Heard::All(w, children) = hub.answer("ns", "w1") else {
            panic!("both children heard");
        };
        assert_eq!(w.total, 2);
        let tasks: Vec<&str> = children.iter().map(|c| c.task_id.as_str()).collect();
        assert_eq!(tasks, ["a", "b"], "in the order a store read gives");
        assert_eq!(
            hub.answer("other", "w1"),
            Heard::NotDone,
            "another namespace reads the store"
        );
        hub.release("w1", n);
        assert_eq!(
            hub.answer("ns", "w1"),
            Heard::NotDone,
            "released with its last waiter"
        );
    }

    #[test]
    fn no_answer_before_the_waitpoint_is_done() {
        let hub = WaitpointHub::default();
        let n = hub.handle("w1");
        assert_eq!(hub.answer("ns", "w1"), Heard::NotDone);
        hub.child_completed("w1", child("a"));
        assert_eq!(
            hub.answer("ns", "w1"),
            Heard::Partly,
            "the finish is announced here later"
        );
        hub.release("w1", n);
    }

    #[test]
    fn a_notify_waits_for_local_details_but_a_local_finish_reads_at_once() {
        let hub = WaitpointHub::default();
        let n = hub.handle("w1");
        hub.finished_somewhere("w1");
        assert_eq!(
            hub.answer("ns", "w1"),
            Heard::Partly,
            "maybe our own NOTIFY"
        );
        hub.finished("w1");
        assert_eq!(
            hub.answer("ns", "w1"),
            Heard::NotDone,
            "finished here, no details: read"
        );
        hub.release("w1", n);
    }

    #[tokio::test]
    async fn a_child_announced_after_the_waitpoint_wakes_the_waiter() {
        let hub = WaitpointHub::default();
        let n = hub.handle("w1");
        hub.done(wp(1));
        assert_eq!(hub.answer("ns", "w1"), Heard::Partly);
        {
            let woken = n.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            hub.child_completed("w1", child("a"));
            tokio::time::timeout(Duration::from_secs(1), woken)
                .await
                .expect("the late child wakes the waiter");
        }
        assert!(matches!(hub.answer("ns", "w1"), Heard::All(..)));
        hub.release("w1", n);
    }
}
