//! Redis sliding-window limiter shared by every engine replica.
//!
//! One Lua script per check (one round trip, atomic): drop hits older than
//! the window from a sorted set, count, add if under the limit, else answer
//! when the oldest hit leaves. Time comes from the Redis server (`TIME`), so
//! replicas with skewed clocks still share one window.

use super::{Decision, RateLimiter};
use crate::config::OnUnavailable;
use crate::error::{Error, Result, redact_url};
use crate::health::{Check, State};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
    /// `None` until the first connection succeeds (the engine may start
    /// while Redis is down); afterwards the manager reconnects by itself.
    conn: Arc<RwLock<Option<ConnectionManager>>>,
    script: redis::Script,
    on_unavailable: OnUnavailable,
    prefix: String,
    /// Checks answered by policy because Redis could not be reached.
    pub unavailable_total: AtomicU64,
    /// The last check's outcome, for `/healthz`.
    failing: AtomicBool,
    last_error: Arc<Mutex<Check>>,
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
}

async fn open(client: &redis::Client, url: &str) -> Result<ConnectionManager> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ConnectionManager::new_with_config(client.clone(), manager_config()),
    )
    .await
    .map_err(|_| {
        Error::Unavailable(format!(
            "redis: timed out connecting to {}",
            redact_url(url)
        ))
    })?
    .map_err(|e| Error::Unavailable(format!("redis: cannot connect to {}: {e}", redact_url(url))))
}

impl RedisLimiter {
    fn new(conn: Option<ConnectionManager>, on_unavailable: OnUnavailable, prefix: &str) -> Self {
        RedisLimiter {
            failing: AtomicBool::new(conn.is_none()),
            conn: Arc::new(RwLock::new(conn)),
            script: redis::Script::new(SCRIPT),
            on_unavailable,
            prefix: prefix.to_string(),
            unavailable_total: AtomicU64::new(0),
            last_error: Arc::default(),
        }
    }

    /// Connect (failing fast, with a one-line error, if Redis is unreachable).
    pub async fn connect(url: &str, on_unavailable: OnUnavailable, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::Unavailable(format!("redis: invalid url {}: {e}", redact_url(url)))
        })?;
        let conn = open(&client, url).await?;
        Ok(Self::new(Some(conn), on_unavailable, prefix))
    }

    /// Connect, or — when Redis cannot be reached — start without it and
    /// keep connecting in the background (every 1 s, backing off to 10 s);
    /// meanwhile checks follow `on_unavailable`. Only a malformed URL is an
    /// error.
    pub async fn connect_or_degrade(
        url: &str,
        on_unavailable: OnUnavailable,
        prefix: &str,
    ) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::InvalidArgument(format!("redis: invalid url {}: {e}", redact_url(url)))
        })?;
        match open(&client, url).await {
            Ok(conn) => Ok(Self::new(Some(conn), on_unavailable, prefix)),
            Err(e) => {
                tracing::warn!(error = %e, policy = ?on_unavailable, "redis unreachable at start; rate limits follow limiter.on_unavailable until it connects");
                let me = Self::new(None, on_unavailable, prefix);
                me.record(Some(&e.to_string()));
                let slot = Arc::downgrade(&me.conn);
                let url = url.to_string();
                tokio::spawn(async move {
                    let mut wait = Duration::from_secs(1);
                    loop {
                        tokio::time::sleep(wait).await;
                        let Some(slot) = slot.upgrade() else { return };
                        match open(&client, &url).await {
                            Ok(conn) => {
                                *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(conn);
                                tracing::info!("redis connected; rate limits are shared again");
                                return;
                            }
                            Err(e) => tracing::debug!(error = %e, "redis still unreachable"),
                        }
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                });
                Ok(me)
            }
        }
    }

    /// Remember the last outcome (an error, or `None` for success).
    fn record(&self, error: Option<&str>) {
        let failing = error.is_some();
        if self.failing.swap(failing, Ordering::Relaxed) != failing || failing {
            let mut c = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
            if c.state == State::Ok && failing || c.state != State::Ok && !failing {
                c.since_ms = crate::model::now_ms();
            }
            c.state = if failing { State::Degraded } else { State::Ok };
            c.error = error.map(|e| format!("limiter: {e}")).unwrap_or_default();
        }
    }

    fn by_policy(&self, e: &str) -> Result<Decision> {
        let n = self.unavailable_total.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(error = %e, unavailable_total = n, policy = ?self.on_unavailable, "redis rate limiter unavailable");
        self.record(Some(e));
        match self.on_unavailable {
            OnUnavailable::Allow => Ok(Decision::Allow),
            OnUnavailable::Deny => Err(Error::Unavailable(format!(
                "rate limiter (redis) is unavailable and limiter.on_unavailable = deny: {e}"
            ))),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, limit: u32, window: Duration) -> Result<Decision> {
        let conn = self.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(mut conn) = conn else {
            return self.by_policy("not connected yet");
        };
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
            Ok((allowed, wait_ms)) => {
                if self.failing.load(Ordering::Relaxed) {
                    self.record(None);
                }
                if allowed == 1 {
                    Ok(Decision::Allow)
                } else {
                    Ok(Decision::Deny {
                        retry_after: Duration::from_millis(wait_ms.max(1) as u64),
                    })
                }
            }
            Err(e) => self.by_policy(&e.to_string()),
        }
    }

    fn health(&self) -> Check {
        self.last_error
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}
