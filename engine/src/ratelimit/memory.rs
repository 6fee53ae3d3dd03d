//! In-process sliding-window log: exact for one engine process.

use super::{Decision, RateLimiter};
use crate::error::Result;
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hit times per key, oldest first. Memory is O(limit) per active key.
#[derive(Default)]
pub struct MemoryLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<Decision> {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let hits = map.entry(key.to_string()).or_default();
        while hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            hits.pop_front();
        }
        if (hits.len() as u64) < u64::from(limit) {
            hits.push_back(now);
            return Ok(Decision::Allow);
        }
        let oldest = hits.front().copied().unwrap_or(now);
        let retry_after = window.saturating_sub(now.duration_since(oldest));
        Ok(Decision::Deny {
            retry_after: retry_after.max(Duration::from_millis(1)),
        })
    }
}
