//! Wake-ups for idle loops: no polling while there is nothing to do.
//!
//! Worker sessions wait on a signal of their own, registered under their
//! namespace and tasks ([`Wakeup::subscribe`]): a publish wakes only the
//! sessions of the tasks it created runs for ([`Wakeup::tasks`]), so idle
//! workers of other namespaces or tasks cost nothing per publish. Rare,
//! unaddressed events (a reaped lease, a resumed parent, a lost
//! notification connection) wake everyone ([`Wakeup::now`]). Retries
//! schedule a wake-up at their due time (`deadlines`). Other replicas'
//! publishes arrive through Postgres `LISTEN/NOTIFY` (see `peers`). The
//! archiver and replay runners use the plain, unaddressed signal
//! ([`Wakeup::notified`]).

pub mod deadlines;
pub mod waiters;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// Shared wake-up signal. Cheap to clone.
#[derive(Clone, Default)]
pub struct Wakeup {
    notify: Arc<Notify>,
    sessions: Arc<Mutex<Sessions>>,
}

/// namespace → task → the signals of the sessions that serve it.
type Sessions = HashMap<String, HashMap<String, Vec<Weak<Notify>>>>;

/// Which sessions a wake-up is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every session (and every waiter of the plain signal).
    All,
    /// The sessions of one namespace.
    Namespace(String),
    /// The sessions serving one task of a namespace.
    Task { namespace: String, task: String },
}

impl Wakeup {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session's own signal, woken for its namespace and tasks until it
    /// is dropped.
    pub fn subscribe(&self, namespace: &str, tasks: &[String]) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        let mut all = self.sessions();
        let by_task = all.entry(namespace.to_string()).or_default();
        for t in tasks {
            let list = by_task.entry(t.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&signal));
        }
        signal
    }

    /// Wake what `target` names.
    pub fn wake(&self, target: &Target) {
        match target {
            Target::All => self.now(),
            Target::Namespace(ns) => self.namespace(ns),
            Target::Task { namespace, task } => self.tasks(namespace, [task.as_str()]),
        }
    }

    /// Wake every waiting session and waiter.
    pub fn now(&self) {
        self.notify.notify_waiters();
        let all = self.sessions();
        for by_task in all.values() {
            wake_lists(by_task.values());
        }
    }

    /// Wake the sessions of namespace `ns`.
    pub fn namespace(&self, ns: &str) {
        if let Some(by_task) = self.sessions().get(ns) {
            wake_lists(by_task.values());
        }
    }

    /// Wake the sessions serving any of `tasks` in namespace `ns`.
    pub fn tasks<'a>(&self, ns: &str, tasks: impl IntoIterator<Item = &'a str>) {
        let mut all = self.sessions();
        let Some(by_task) = all.get_mut(ns) else {
            return;
        };
        for t in tasks {
            if let Some(list) = by_task.get_mut(t) {
                list.retain(|w| match w.upgrade() {
                    Some(n) => {
                        n.notify_waiters();
                        true
                    }
                    None => false,
                });
            }
        }
    }

    /// The unaddressed signal to wait on. Call `enable()` on the pinned
    /// future *before* checking for work, so a wake-up between the check
    /// and the wait is not lost.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// `notify_waiters`, as for the plain signal: a session enables its wait
/// before it looks for work, so a wake-up during its claim is not lost, and
/// no permit is left behind to cause an extra, empty claim (on Postgres each
/// publish also returns as a `NOTIFY`, so permits doubled the claims;
/// BENCHMARKS.md, fifth round).
fn wake_lists<'a>(lists: impl Iterator<Item = &'a Vec<Weak<Notify>>>) {
    for list in lists {
        for w in list {
            if let Some(n) = w.upgrade() {
                n.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of `sessions` a wake-up reaches: each waits (enabled) first.
    fn reached(sessions: &[&Arc<Notify>], wake: impl FnOnce()) -> Vec<bool> {
        let mut waits: Vec<_> = sessions.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        wake();
        waits
            .into_iter()
            .map(|w| futures::FutureExt::now_or_never(w).is_some())
            .collect()
    }

    #[tokio::test]
    async fn a_publish_wakes_only_the_sessions_of_its_tasks() {
        let w = Wakeup::default();
        let a = w.subscribe("shop", &["bill".into(), "ship".into()]);
        let b = w.subscribe("shop", &["mail".into()]);
        let other = w.subscribe("bank", &["bill".into()]);
        let all = [&a, &b, &other];
        assert_eq!(
            reached(&all, || w.tasks("shop", ["bill"])),
            [true, false, false]
        );
        assert_eq!(reached(&all, || w.namespace("shop")), [true, true, false]);
        assert_eq!(reached(&all, || w.now()), [true, true, true]);
    }

    #[tokio::test]
    async fn dropped_sessions_are_forgotten() {
        let w = Wakeup::default();
        for _ in 0..100 {
            drop(w.subscribe("shop", &["bill".into()]));
        }
        let live = w.subscribe("shop", &["bill".into()]);
        assert_eq!(reached(&[&live], || w.tasks("shop", ["bill"])), [true]);
        assert_eq!(w.sessions()["shop"]["bill"].len(), 1);
    }
}
