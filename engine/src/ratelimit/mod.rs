//! Rate limiting behind one trait: in-process windows for the embedded
//! engine, a Redis sliding window (one Lua script, one round trip) shared by
//! replicas in production. Both pass `tests/tests/limiter_conformance.rs`.

pub mod memory;
pub mod redis;

use crate::error::Result;
use async_trait::async_trait;
use std::time::Duration;

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted and allowed.
    Allow,
    /// Over the limit; the oldest counted hit leaves the window after this.
    Deny { retry_after: Duration },
}

/// A sliding-window limiter: at most `limit` hits per `window` per key.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count a hit for `key` if it fits, else say how long to wait.
    async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<Decision>;

    /// Whether the limiter's backend is reachable (in-process: always).
    fn health(&self) -> crate::health::Check {
        crate::health::Check::default()
    }
}
