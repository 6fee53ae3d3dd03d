//! Redis sliding-window limiter shared by every engine replica.
//!
//! One Lua script per check (one round trip, atomic): drop hits older than
//! the window from a sorted set, count, add if under the limit, else answer
//! when the oldest hit leaves. Time comes from the Redis server (`TIME`), so
//! replicas with skewed clocks still share one window.

use super::{Decision, RateLimiter};
use crate::config::OnUnavailable;
use crate::error::{Error, Result, redact_url};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"#;

/// The Redis limiter.
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    on_unavailable: OnUnavailable,
    prefix: String,
    /// Checks answered by policy because Redis could not be reached.
    pub unavailable_total: AtomicU64,
}

impl RedisLimiter {
    /// Connect (failing fast, with a one-line error, if Redis is unreachable).
    pub async fn connect(url: &str, on_unavailable: OnUnavailable, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::Unavailable(format!("redis: invalid url {}: {e}", redact_url(url)))
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client, cfg),
        )
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "redis: timed out connecting to {}",
                redact_url(url)
            ))
        })?
        .map_err(|e| {
            Error::Unavailable(format!("redis: cannot connect to {}: {e}", redact_url(url)))
        })?;
        Ok(RedisLimiter {
            conn,
            script: redis::Script::new(SCRIPT),
            on_unavailable,
            prefix: prefix.to_string(),
            unavailable_total: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<Decision> {
        let mut conn = self.conn.clone();
        let member = uuid::Uuid::now_v7().simple().to_string();
        let res: redis::RedisResult<(i64, i64)> = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(window.as_millis() as u64)
            .arg(limit)
            .arg(member)
            .invoke_async(&mut conn)
            .await;
        match res {
            Ok((1, _)) => Ok(Decision::Allow),
            Ok((_, wait_ms)) => Ok(Decision::Deny {
                retry_after: Duration::from_millis(wait_ms.max(1) as u64),
            }),
            Err(e) => {
                let n = self.unavailable_total.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(error = %e, unavailable_total = n, policy = ?self.on_unavailable, "redis rate limiter unavailable");
                match self.on_unavailable {
                    OnUnavailable::Allow => Ok(Decision::Allow),
                    OnUnavailable::Deny => Err(Error::Unavailable(format!(
                        "rate limiter (redis) is unavailable and limiter.on_unavailable = deny: {e}"
                    ))),
                }
            }
        }
    }
}
