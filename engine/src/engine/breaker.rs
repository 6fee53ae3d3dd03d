//! The circuit breaker of every subscription (tasks' and HTTP
//! subscribers'): counts consecutive failed attempts, trips, probes.
//!
//! # How it moves, and what a crash does
//! Consecutive failed attempts are counted in memory per subscription on
//! the replica that saw them (a success resets the count). Reaching
//! `breaker.after_failures` moves the subscription `active → tripped` in the
//! store (compare-and-set, so racing replicas trip it once); from then on
//! its runs are created and wait, as when paused. After `probe_after_ms` a
//! replica moves it `tripped → probing`: sessions claim one run at a time;
//! its success resumes (`probing → active`), its failure trips it again.
//! A crash loses only the in-memory count (the next failures start from
//! zero); the state is durable, and a tripped subscription is probed by
//! whichever replica ticks first after the restart.

use super::Engine;
use crate::error::Result;
use crate::model::*;

impl Engine {
    /// An attempt of `task`'s run ended (`ok` or not): count it for the
    /// subscription's breaker, and close or trip it when it was claimed as
    /// a probe. A success of a healthy subscription costs one map lookup.
    pub fn attempt_ended(&self, ns: &str, task: &str, ok: bool, probe: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if ok && !probe && self.inner.failing.load(Relaxed) == 0 {
            return;
        }
        let failures = {
            let Ok(mut counts) = self.inner.failures.lock() else {
                return;
            };
            let key = (ns.to_string(), task.to_string());
            let n = if ok {
                counts.remove(&key);
                None
            } else {
                let n = counts.entry(key).or_default();
                *n += 1;
                Some(*n)
            };
            self.inner.failing.store(counts.len(), Relaxed);
            n
        };
        if ok && !probe {
            return;
        }
        let engine = self.clone();
        let (ns, task) = (ns.to_string(), task.to_string());
        // The state lives in the registry's cached subscriptions: a read
        // without a store round trip, off the completion's path.
        tokio::spawn(async move {
            let Ok(subs) = engine.registry().subscriptions(&ns).await else {
                return;
            };
            let Some(sub) = subs.iter().find(|s| s.sub.task_id == task).map(|s| &s.sub) else {
                return;
            };
            let (to, from, reason) = match (sub.state, failures) {
                (SubscriptionState::Probing, None) => (
                    SubscriptionState::Active,
                    SubscriptionState::Probing,
                    "probe succeeded",
                ),
                (SubscriptionState::Probing, Some(_)) => (
                    SubscriptionState::Tripped,
                    SubscriptionState::Probing,
                    "probe failed",
                ),
                (SubscriptionState::Active, Some(n))
                    if sub.breaker.after_failures > 0 && n >= sub.breaker.after_failures =>
                {
                    (
                        SubscriptionState::Tripped,
                        SubscriptionState::Active,
                        "consecutive failures",
                    )
                }
                _ => return,
            };
            if let Ok(mut counts) = engine.inner.failures.lock() {
                counts.remove(&(ns.clone(), task.clone()));
                engine
                    .inner
                    .failing
                    .store(counts.len(), std::sync::atomic::Ordering::Relaxed);
            }
            if let Err(e) = engine
                .set_subscription_state(&ns, &task, to, &[from], reason)
                .await
            {
                tracing::warn!(namespace = %ns, subscription = %task, error = %e, "breaker could not change the subscription's state");
            }
        });
    }

    /// Move tripped subscriptions whose probe time has come to `probing`
    /// (the webhook supervisor calls it on each look at the subscriptions).
    pub async fn probe_tripped(&self, subs: &[Subscription]) -> Result<()> {
        let now = now_ms();
        for sub in subs {
            if sub.state == SubscriptionState::Tripped
                && sub.breaker.probe_after_ms > 0
                && now.saturating_sub(sub.updated_at_ms) >= sub.breaker.probe_after_ms as i64
            {
                self.set_subscription_state(
                    &sub.namespace,
                    &sub.task_id,
                    SubscriptionState::Probing,
                    &[SubscriptionState::Tripped],
                    "probe",
                )
                .await?;
            }
        }
        Ok(())
    }
}
