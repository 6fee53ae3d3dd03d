//! Wake-ups for idle worker sessions: no polling loop while there is nothing
//! to do.
//!
//! A publish, a retry falling due, or a released lease calls [`Wakeup::now`];
//! every idle session re-checks the store. Retries schedule a wake-up at
//! their due time ([`Wakeup::at`]). Other replicas' publishes arrive through
//! Postgres `LISTEN/NOTIFY` (see `notify`), which also calls `now`.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Shared wake-up signal. Cheap to clone.
#[derive(Clone, Default)]
pub struct Wakeup {
    notify: Arc<Notify>,
}

impl Wakeup {
    /// Wake every waiting session.
    pub fn now(&self) {
        self.notify.notify_waiters();
    }

    /// Wake every waiting session at `at_ms` (epoch ms).
    pub fn at(&self, at_ms: i64) {
        let delay = at_ms - crate::model::now_ms();
        if delay <= 0 {
            return self.now();
        }
        let notify = self.notify.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            notify.notify_waiters();
        });
    }

    /// The signal to wait on. Call `enable()` on the pinned future *before*
    /// checking the store, so a wake-up between the check and the wait is
    /// not lost.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}
