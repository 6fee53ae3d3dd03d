//! In-process sliding-window log: exact for one engine process.
//!
//! Memory is bounded three ways: keys arrive already short (the engine
//! hashes long key values, `Engine::check_rate_limit`); a window whose
//! newest hit has left it is forgotten (swept at most once a second); and at
//! most `max_keys` windows are kept — past that, the windows idle longest
//! are forgotten first (which can only let a forgotten key through early,
//! never refuse a publish wrongly).

use super::{Decision, RateLimiter};
use crate::error::Result;
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hit times per key, oldest first. Memory is O(limit) per active key.
pub struct MemoryLimiter {
    max_keys: usize,
    state: Mutex<State>,
}

struct State {
    windows: HashMap<String, Window>,
    last_sweep: Instant,
}

struct Window {
    hits: VecDeque<Instant>,
    window: Duration,
}

impl Window {
    fn newest(&self) -> Option<Instant> {
        self.hits.back().copied()
    }
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new(crate::limits::Limits::default().limiter_max_keys)
    }
}

impl MemoryLimiter {
    /// A limiter keeping at most `max_keys` windows.
    pub fn new(max_keys: usize) -> Self {
        MemoryLimiter {
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                windows: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Windows held now (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .windows
            .len()
    }
}

impl State {
    /// Forget windows with no hit inside them.
    fn sweep(&mut self, now: Instant) {
        self.windows
            .retain(|_, w| w.newest().is_some_and(|t| now.duration_since(t) < w.window));
        self.last_sweep = now;
    }

    /// Make room for one more key: expired windows first, then the tenth
    /// idle longest.
    fn make_room(&mut self, now: Instant, max_keys: usize) {
        if self.windows.len() < max_keys {
            return;
        }
        self.sweep(now);
        if self.windows.len() < max_keys {
            return;
        }
        let mut idle: Vec<(Instant, String)> = self
            .windows
            .iter()
            .map(|(k, w)| (w.newest().unwrap_or(now), k.clone()))
            .collect();
        let evict = (max_keys / 10).max(1).min(idle.len());
        idle.select_nth_unstable(evict - 1);
        for (_, k) in idle.into_iter().take(evict) {
            self.windows.remove(&k);
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<Decision> {
        Ok(self.check_at(key, limit, window, Instant::now()))
    }
}

impl MemoryLimiter {
    /// [`RateLimiter::check`] at a given time (tests move the clock).
    fn check_at(&self, key: &str, limit: u32, window: Duration, now: Instant) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(state.last_sweep) >= Duration::from_secs(1) {
            state.sweep(now);
        }
        if !state.windows.contains_key(key) {
            state.make_room(now, self.max_keys);
        }
        let w = state.windows.entry(key.to_string()).or_insert(Window {
            hits: VecDeque::new(),
            window,
        });
        w.window = window;
        while w
            .hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            w.hits.pop_front();
        }
        if (w.hits.len() as u64) < u64::from(limit) {
            w.hits.push_back(now);
            return Decision::Allow;
        }
        let oldest = w.hits.front().copied().unwrap_or(now);
        let retry_after = window.saturating_sub(now.duration_since(oldest));
        Decision::Deny {
            retry_after: retry_after.max(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_forgotten_once_they_pass() {
        let l = MemoryLimiter::new(1_000);
        let t0 = Instant::now();
        let w = Duration::from_millis(100);
        for i in 0..300 {
            l.check_at(&format!("tenant-{i}"), 5, w, t0);
        }
        assert_eq!(l.keys(), 300);
        // Within the window and the sweep interval: all kept.
        l.check_at("another", 5, w, t0 + Duration::from_millis(50));
        assert_eq!(l.keys(), 301);
        // Two seconds on, every window has passed: the sweep forgets them.
        l.check_at("late", 5, w, t0 + Duration::from_secs(2));
        assert_eq!(l.keys(), 1);
    }

    #[tokio::test]
    async fn the_number_of_keys_is_capped() {
        let l = MemoryLimiter::new(100);
        for i in 0..10_000 {
            assert_eq!(
                l.check(&format!("k{i}"), 1, Duration::from_secs(3600))
                    .await
                    .unwrap(),
                Decision::Allow
            );
        }
        assert!(l.keys() <= 100, "{}", l.keys());
        // The newest keys are still counted.
        assert!(matches!(
            l.check("k9999", 1, Duration::from_secs(3600))
                .await
                .unwrap(),
            Decision::Deny { .. }
        ));
    }
}
