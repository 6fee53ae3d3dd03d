//! Scenario 9: how fast the console's pages answer with a large store.
//!
//! Stores `--events` events × `--subscribers` runs through the engine's own
//! publish path (SDK, `--publishers` at once); the first subscriber fails
//! every run once (one attempt), so each event leaves one dead letter, and
//! the other runs stay queued (no worker takes them). Then it times page
//! requests — sequential, 5 warm-up then 40 timed per page — on the HTTP
//! listener the console is mounted on. Nothing is asserted.

use crate::Args;
use crate::harness::Bench;
use crate::stats::percentiles;
use fanout::{Event, Retry, Task, TaskError, Worker};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Order {
    n: u64,
    tenant: String,
    amount: f64,
}

/// One GET on a fresh connection; the status and body length.
async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, usize)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, raw.len()))
}

pub async fn run(args: &Args) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.server.is_none(),
        "the console scenario runs its own engine"
    );
    let bench = Bench::start_console(args).await?;
    let engine = bench.engine().expect("in-process");
    let addr = bench.http_addr().expect("in-process");
    let client = bench.client().await?;
    let ev = Event::<Order>::new("order.placed");
    ev.define(&client).await?;
    let subs = args.subscribers.max(1);
    let failing = Task::new("t-0", &ev, |_: Order, _| async move {
        Err::<(), _>(TaskError::retryable(
            "upstream refused: HTTP 503 from inventory",
        ))
    })
    .retry(Retry::attempts(1));
    let others: Vec<_> = (1..subs)
        .map(|i| Task::new(format!("t-{i}"), &ev, |_: Order, _| async move { Ok(()) }))
        .collect();
    let mut all: Vec<&dyn fanout::AnyTask> = vec![&failing];
    all.extend(others.iter().map(|t| t as &dyn fanout::AnyTask));
    client.register(&all).await?;
    let worker = Worker::new(client.clone())
        .concurrency(args.worker_concurrency)
        .task(failing.clone())
        .start()
        .await?;

    let n = args.events;
    let t0 = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..args.publishers.max(1) {
        let (c, e, next) = (client.clone(), ev.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n as u64 {
                    return Ok::<_, fanout::Error>(());
                }
                let o = Order {
                    n: i,
                    tenant: format!("tenant-{}", i % 50),
                    amount: (i % 1000) as f64,
                };
                e.publish(&c, &o)
                    .ordering_key(format!("cust-{}", i % 1000))
                    .await?;
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let published_s = t0.elapsed().as_secs_f64();
    // Every event's first run dies once; wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let dead = client.dead_letters().count().await?;
        if dead >= n as u64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {dead} of {n} runs dead after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.shutdown().await?;
    loop {
        let o = engine.overview("default").await?;
        if o.archive_backlog == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "archive backlog {} after 600 s",
            o.archive_backlog
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seeded_s = t0.elapsed().as_secs_f64();

    let dead = client.dead_letters().first(1).await?;
    let dead_id = dead.first().map(|r| r.id.clone()).unwrap_or_default();
    let older = client
        .runs()
        .first(60)
        .await?
        .last()
        .map(|r| r.id.clone())
        .unwrap_or_default();
    let pages: Vec<(&str, String)> = vec![
        ("/runs", "/runs".into()),
        ("/runs page 2", format!("/runs?before={older}")),
        ("/runs?status=dead", "/runs?status=dead".into()),
        (
            "/runs?status=queued&task=t-1",
            "/runs?status=queued&task=t-1".into(),
        ),
        ("/runs?key=cust-7", "/runs?key=cust-7".into()),
        ("/runs?since=15m", "/runs?since=15m".into()),
        ("/runs/{id}", format!("/runs/{dead_id}")),
        ("/dlq", "/dlq".into()),
        ("/dlq?task=t-0", "/dlq?task=t-0".into()),
        ("/log", "/log?event=order.*".into()),
        (
            "/log filtered",
            "/log?event=order.*&filter=%7B%22tenant%22%3A%5B%22tenant-7%22%5D%7D".into(),
        ),
        ("/", "/".into()),
        ("/events", "/events".into()),
        ("/events/order.placed", "/events/order.placed".into()),
        ("/waitpoints", "/waitpoints".into()),
        ("/replays", "/replays".into()),
    ];
    let mut before_analyze = None;
    if let Some((url, schema)) = bench.postgres_schema() {
        // Right after a bulk load Postgres has no statistics for the new
        // rows until autovacuum analyzes them (about a minute here), and its
        // plans are poor meanwhile: measure that, then the steady state.
        before_analyze = Some(pages_timed(addr, &pages).await?);
        use sqlx::Executor;
        let pool = sqlx::PgPool::connect(&url).await?;
        pool.execute(format!("ANALYZE \"{schema}\".runs").as_str())
            .await?;
        pool.close().await;
    }
    let out = pages_timed(addr, &pages).await?;
    let summary = json!({
        "scenario": "console",
        "backend": if args.backend == crate::Backend::Postgres { "postgres" } else { "sqlite" },
        "events": n,
        "runs": n * subs,
        "dead_letters": n,
        "publish_s": crate::stats::round(published_s),
        "seed_s": crate::stats::round(seeded_s),
        "pages": out,
        "pages_before_analyze": before_analyze,
    });
    bench.stop().await;
    Ok(summary)
}

/// Each page: 5 warm-up requests, then 40 timed, one at a time.
async fn pages_timed(
    addr: std::net::SocketAddr,
    pages: &[(&str, String)],
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for (name, path) in pages {
        for _ in 0..5 {
            get(addr, path).await?;
        }
        let mut lat = Vec::with_capacity(40);
        let mut bytes = 0;
        for _ in 0..40 {
            let t = Instant::now();
            let (status, len) = get(addr, path).await?;
            lat.push(t.elapsed());
            anyhow::ensure!(status == 200, "{path} answered {status}");
            bytes = len;
        }
        let mut p = percentiles(lat);
        p["bytes"] = bytes.into();
        out.insert((*name).to_string(), p);
    }
    Ok(out)
}
