//! Every rate limiter (in-process, Redis) passes the same tests.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::config::OnUnavailable;
use fanout_engine::ratelimit::{Decision, RateLimiter, memory::MemoryLimiter, redis::RedisLimiter};
use std::sync::Arc;
use std::time::Duration;

/// One limiter by name: `memory` (always) or `redis` (needs
/// `FANOUT_TEST_REDIS_URL`), under a fresh key prefix.
async fn limiter(name: &str) -> (&'static str, Arc<dyn RateLimiter>) {
    if name != "redis" {
        return ("memory", Arc::new(MemoryLimiter::default()));
    }
    let url = std::env::var("FANOUT_TEST_REDIS_URL")
        .expect("FANOUT_TEST_REDIS_URL is not set: this test needs Redis");
    let prefix = format!("fanout-test:{}:", uuid::Uuid::now_v7().simple());
    let r = RedisLimiter::connect(&url, OnUnavailable::Deny, &prefix)
        .await
        .unwrap_or_else(|e| panic!("FANOUT_TEST_REDIS_URL={url} is set but unusable: {e}"));
    ("redis", Arc::new(r))
}

fanout_tests::per_backend! { limiter: memory, redis;
    async fn sliding_window_allows_the_limit_then_says_when((name, l)) {
    let w = Duration::from_millis(400);
    for i in 0..5 {
        assert_eq!(
            l.check("k", 5, w).await.unwrap(),
            Decision::Allow,
            "[{name}] hit {i}"
        );
    }
    match l.check("k", 5, w).await.unwrap() {
        Decision::Deny { retry_after } => assert!(
            retry_after <= w && retry_after > Duration::ZERO,
            "[{name}] {retry_after:?}"
        ),
        Decision::Allow => panic!("[{name}] sixth hit allowed"),
    }
    // Keys are independent.
    assert_eq!(l.check("other", 5, w).await.unwrap(), Decision::Allow);
    // The window slides: after it passes, hits are allowed again.
    tokio::time::sleep(w + Duration::from_millis(50)).await;
    assert_eq!(
        l.check("k", 5, w).await.unwrap(),
        Decision::Allow,
        "[{name}] window slid"
    );
    }
}

fanout_tests::per_backend! { limiter: memory, redis;
    async fn concurrent_checks_never_exceed_the_limit((name, l)) {
    let mut handles = Vec::new();
    for _ in 0..200 {
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            l.check("burst", 50, Duration::from_secs(30)).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for h in handles {
        if h.await.unwrap() == Decision::Allow {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50, "[{name}]");
    }
}

#[tokio::test]
async fn unreachable_redis_follows_the_policy() {
    // Nothing listens on port 1: connecting fails with a one-line error.
    let err = match RedisLimiter::connect("redis://127.0.0.1:1", OnUnavailable::Allow, "x:").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(err.to_string().starts_with("redis:"), "{err}");
    assert!(!err.to_string().contains('\n'));
}
