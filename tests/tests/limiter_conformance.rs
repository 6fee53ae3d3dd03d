//! Every rate limiter (in-process, Redis) passes the same tests.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::Error;
use fanout_engine::config::OnUnavailable;
use fanout_engine::health::State;
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

/// With Redis down, `connect` fails in one line, and a limiter started
/// degraded answers by its policy: `allow` lets every check through (even
/// over the limit) and reports itself degraded, `deny` refuses with
/// UNAVAILABLE naming the setting.
#[tokio::test]
async fn unreachable_redis_follows_the_policy() {
    // Nothing listens on port 1.
    let dead = "redis://127.0.0.1:1";
    let err = match RedisLimiter::connect(dead, OnUnavailable::Allow, "x:").await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e,
    };
    assert!(err.to_string().starts_with("redis:"), "{err}");
    assert!(!err.to_string().contains('\n'));

    let w = Duration::from_secs(60);
    let allow = RedisLimiter::connect_or_degrade(dead, OnUnavailable::Allow, "x:")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(allow.check("k", 1, w).await.unwrap(), Decision::Allow);
    }
    assert_eq!(allow.health().state, State::Degraded);

    let deny = RedisLimiter::connect_or_degrade(dead, OnUnavailable::Deny, "x:")
        .await
        .unwrap();
    match deny.check("k", 1, w).await {
        Err(e @ Error::Unavailable(_)) => {
            assert!(e.to_string().contains("on_unavailable = deny"), "{e}")
        }
        other => panic!("deny policy answered {other:?}"),
    }
}
