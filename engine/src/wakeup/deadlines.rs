//! One deadline queue for every timer the engine sets: a retry's wake-up
//! at its due time and a waitpoint's expiry (a sleep's end, a timeout).
//! One task ([`Deadlines::run`], started and joined by `server::spawn`)
//! sleeps until the earliest entry, instead of one spawned task per timer
//! that outlived shutdown and fired against closed pools.
//!
//! Timers are hints: a lost one costs latency, never a run. Worker
//! sessions poll for due runs when idle (`idle_poll_ms`) and the reaper
//! expires waitpoints on its tick, so the queue may drop entries when it is
//! full ([`MAX_ENTRIES`]) and keeps nothing across restarts.

use crate::wakeup::Target;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// At most this many timers are pending; more are dropped (see above).
pub const MAX_ENTRIES: usize = 100_000;

/// What falls due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Wake these worker sessions (a retry became claimable).
    Wake(Target),
    /// Finish waitpoints whose time has come.
    ExpireWaitpoints,
}

/// The queue. Cheap to clone.
#[derive(Clone, Default)]
pub struct Deadlines {
    queue: Arc<Mutex<Queue>>,
    /// Signalled when an entry becomes the earliest.
    earlier: Arc<Notify>,
}

#[derive(Default)]
struct Queue {
    /// Epoch ms → what falls due then (no duplicates per instant).
    by_time: BTreeMap<i64, Vec<Due>>,
    len: usize,
}

impl Deadlines {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Have `due` happen at `at_ms` (epoch ms; the past means now).
    pub fn at(&self, at_ms: i64, due: Due) {
        let mut q = self.queue();
        let earliest = q.by_time.keys().next().copied();
        if q.len >= MAX_ENTRIES {
            tracing::debug!(
                at_ms,
                ?due,
                "deadline queue full; the idle poll covers this one"
            );
            return;
        }
        let list = q.by_time.entry(at_ms).or_default();
        if list.contains(&due) {
            return;
        }
        list.push(due);
        q.len += 1;
        if earliest.is_none_or(|e| at_ms < e) {
            self.earlier.notify_one();
        }
    }

    /// Pending entries.
    pub fn len(&self) -> usize {
        self.queue().len
    }

    /// No entry pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove and return what is due at `now_ms`, earliest first, and the
    /// time of the next entry.
    fn take_due(&self, now_ms: i64) -> (Vec<Due>, Option<i64>) {
        let mut q = self.queue();
        let later = q.by_time.split_off(&(now_ms + 1));
        let due: Vec<Due> = std::mem::replace(&mut q.by_time, later)
            .into_values()
            .flatten()
            .collect();
        q.len -= due.len();
        (due, q.by_time.keys().next().copied())
    }

    /// Fire entries as they fall due until `cancel`; `fire` runs one at a
    /// time, in due order.
    pub async fn run<F, Fut>(self, cancel: CancellationToken, mut fire: F)
    where
        F: FnMut(Due) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            // Enabled before reading the queue: an earlier entry added
            // after the read still ends this wait.
            let earlier = self.earlier.notified();
            tokio::pin!(earlier);
            earlier.as_mut().enable();
            let (due, next) = self.take_due(crate::model::now_ms());
            let mut expired = false;
            for d in due {
                // One expiry pass finishes every waitpoint due by now.
                if d == Due::ExpireWaitpoints && std::mem::replace(&mut expired, true) {
                    continue;
                }
                fire(d).await;
            }
            let sleep = match next {
                Some(at) => Duration::from_millis((at - crate::model::now_ms()).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = &mut earlier => {}
                _ = cancel.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now_ms;

    #[tokio::test]
    async fn entries_fire_in_due_order_and_once() {
        let d = Deadlines::default();
        let now = now_ms();
        d.at(now + 60, Due::Wake(Target::Namespace("b".into())));
        d.at(now + 30, Due::Wake(Target::Namespace("a".into())));
        d.at(now + 30, Due::Wake(Target::Namespace("a".into())));
        d.at(now + 3_600_000, Due::ExpireWaitpoints);
        assert_eq!(d.len(), 3, "the duplicate is not queued");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let runner = tokio::spawn(d.clone().run(cancel.clone(), move |due| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(due);
            }
        }));
        let first = rx.recv().await.expect("a");
        let second = rx.recv().await.expect("b");
        assert_eq!(first, Due::Wake(Target::Namespace("a".into())));
        assert_eq!(second, Due::Wake(Target::Namespace("b".into())));
        // An entry earlier than everything pending wakes the sleeping runner.
        d.at(now_ms(), Due::Wake(Target::All));
        assert_eq!(rx.recv().await, Some(Due::Wake(Target::All)));
        assert_eq!(d.len(), 1, "the far entry waits");
        cancel.cancel();
        runner.await.expect("runner");
    }

    #[test]
    fn the_queue_is_bounded() {
        let d = Deadlines::default();
        for i in 0..(MAX_ENTRIES as i64 + 10) {
            d.at(i, Due::ExpireWaitpoints);
        }
        assert_eq!(d.len(), MAX_ENTRIES);
        let (due, next) = d.take_due(i64::MAX - 1);
        assert_eq!((due.len(), next), (MAX_ENTRIES, None));
        assert!(d.is_empty());
    }
}
