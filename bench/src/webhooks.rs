//! Scenario 10: HTTP subscribers. A receiver in this process (axum on
//! port 0, answers `200 {}` at once) is subscribed to one event; the engine
//! delivers through its own claim path and HTTP client. Three phases:
//! drain — `--events` publishes made while the subscription is paused,
//! then resume, timed to the last POST received (deliveries/s, what the
//! delivery side sustains); live — `--events` more from `--publishers` at
//! once while delivering, first publish to last POST (bounded by the
//! publish rate: one run per event); latency — 200 sequential publishes on
//! the idle engine, publish call → POST received (p50/p95/p99). Nothing is
//! asserted.

use crate::Args;
use crate::harness::Bench;
use crate::stats::percentiles;
use fanout::{Event, HttpSubscription};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Counts POSTs; wakes the bench on each.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    arrived: Notify,
}

async fn receiver(received: Arc<Received>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move || {
        let r = received.clone();
        async move {
            r.count.fetch_add(1, Ordering::Relaxed);
            r.arrived.notify_waiters();
            ([("content-type", "application/json")], "{}")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Wait until `n` POSTs have arrived (or 600 s).
async fn until(received: &Received, n: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let arrived = received.arrived.notified();
        if received.count.load(Ordering::Relaxed) >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} deliveries after 600 s",
            received.count.load(Ordering::Relaxed)
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), arrived).await;
    }
}

/// Publish `n` events from `publishers` tasks at once.
async fn publish_all(
    client: &fanout::Client,
    ev: &Event<Value>,
    n: u64,
    publishers: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..publishers.max(1) {
        let (c, e, next) = (client.clone(), ev.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, fanout::Error>(());
                }
                e.publish(&c, &json!({"n": i, "tenant": format!("t-{}", i % 50)}))
                    .await?;
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.server.is_none(),
        "the webhooks scenario runs its own engine (it must allow loopback endpoints)"
    );
    let bench = Bench::start(args, |c| c.webhooks.allow_loopback = true).await?;
    let client = bench.client().await?;
    let received = Arc::new(Received::default());
    let url = receiver(received.clone()).await?;
    let ev = Event::<Value>::new("order.placed");
    ev.define(&client).await?;
    let concurrency = args.worker_concurrency.clamp(1, 1000);
    client
        .create_subscription(
            HttpSubscription::new("hook", "order.placed", &url).concurrency(concurrency),
        )
        .await?;
    // The supervisor starts the deliverer within a second of the change.
    let warm = ev.publish(&client, &json!({"n": -1})).await?;
    until(&received, 1).await?;
    drop(warm);

    let n = args.events as u64;
    // Drain: a backlog of n runs, delivered as fast as the engine can.
    client.pause("hook").await?;
    publish_all(&client, &ev, n, args.publishers).await?;
    let t_drain = Instant::now();
    client.resume("hook").await?;
    until(&received, n + 1).await?;
    let drain_s = t_drain.elapsed().as_secs_f64();

    // Live: publishing and delivering at once.
    let t0 = Instant::now();
    publish_all(&client, &ev, n, args.publishers).await?;
    let published_s = t0.elapsed().as_secs_f64();
    until(&received, 2 * n + 1).await?;
    let delivered_s = t0.elapsed().as_secs_f64();

    // Latency on the idle engine.
    let mut lat = Vec::new();
    for i in 0..200u64 {
        let before = received.count.load(Ordering::Relaxed);
        let t = Instant::now();
        ev.publish(&client, &json!({"n": i})).await?;
        until(&received, before + 1).await?;
        lat.push(t.elapsed());
    }
    bench.stop().await;
    Ok(json!({
        "scenario": "webhooks",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "events": n,
        "endpoint_concurrency": concurrency,
        "publishers": args.publishers,
        "drain_deliveries_per_s": crate::stats::round(n as f64 / drain_s),
        "live_published_per_s": crate::stats::round(n as f64 / published_s),
        "live_deliveries_per_s": crate::stats::round(n as f64 / delivered_s),
        "publish_to_delivery_ms": percentiles(lat),
    }))
}
