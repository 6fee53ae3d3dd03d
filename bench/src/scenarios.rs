//! The scenarios. Each returns a JSON summary; none asserts a timing.

use crate::harness::Bench;
use crate::stats::{percentiles, round, rss_bytes, rss_of};
use crate::{Args, Backend};
use fanout::{Client, Event, Task, TaskError, Worker};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Payload {
    n: u64,
}

fn backend(args: &Args) -> &'static str {
    if args.server.is_some() {
        "server"
    } else if args.backend == Backend::Postgres {
        "postgres"
    } else {
        "sqlite"
    }
}

/// No runs queued, running or retrying in the store.
async fn drained(client: &Client) -> anyhow::Result<bool> {
    use fanout::RunStatus;
    for status in [RunStatus::Queued, RunStatus::Running, RunStatus::Retrying] {
        if !client.runs().status(status).first(1).await?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn wait_count(counter: &AtomicU64, target: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while counter.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            anyhow::bail!(
                "timed out: {} of {target} runs done",
                counter.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// `s` no-op tasks on `ev` counting into `done`.
fn noop_worker(
    client: &Client,
    ev: &Event<Payload>,
    s: usize,
    prefix: &str,
    done: &Arc<AtomicU64>,
    filter: Option<Value>,
    slots: u32,
) -> Worker {
    let mut w = Worker::new(client.clone())
        .define_events()
        .concurrency(slots);
    for i in 0..s {
        let d = done.clone();
        let mut t = Task::new(format!("{prefix}-{i}"), ev, move |_: Payload, _| {
            d.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, TaskError>(()) }
        });
        if let Some(f) = &filter {
            t = t.filter(f.clone());
        }
        w = w.task(t);
    }
    w
}

/// Connections the scatter-gather callers spread over.
const CALLER_CONNECTIONS: usize = 4;

/// Publish `n` events from `p` concurrent publishers; returns ack latencies.
async fn publish_all(
    client: &Client,
    ev: &Event<Payload>,
    n: usize,
    p: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut handles = Vec::new();
    for k in 0..p.max(1) {
        let (c, e) = (client.clone(), ev.clone());
        let share = n / p.max(1) + usize::from(k < n % p.max(1));
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(share);
            for i in 0..share {
                let t = Instant::now();
                e.publish(
                    &c,
                    &Payload {
                        n: (k * 1_000_000 + i) as u64,
                    },
                )
                .await?;
                lat.push(t.elapsed());
            }
            Ok::<_, fanout::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await??);
    }
    Ok(all)
}

/// 1. End-to-end throughput.
pub async fn throughput(args: &Args) -> anyhow::Result<Value> {
    let bench = Bench::start(args, |_| {}).await?;
    let client = bench.client().await?;
    let ev = Event::<Payload>::new("bench.throughput");
    let done = Arc::new(AtomicU64::new(0));
    let worker = noop_worker(
        &client,
        &ev,
        args.subscribers,
        "sub",
        &done,
        None,
        args.worker_concurrency,
    )
    .start()
    .await?;
    let total = (args.events * args.subscribers) as u64;
    let t0 = Instant::now();
    let acks = publish_all(&client, &ev, args.events, args.publishers).await?;
    let published = t0.elapsed();
    wait_count(&done, total, Duration::from_secs(600)).await?;
    while !drained(&client).await? {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    worker.shutdown().await?;
    bench.stop().await;
    // What the handlers saw, not what was asked for: a lost or doubled
    // delivery shows here.
    let handled = done.load(Ordering::Relaxed);
    Ok(json!({
        "scenario": "throughput", "backend": backend(args), "events": args.events, "subscribers": args.subscribers,
        "publishers": args.publishers, "runs": handled, "seconds": round(elapsed),
        "runs_per_sec": round(total as f64 / elapsed), "events_per_sec": round(args.events as f64 / elapsed),
        "publish_events_per_sec": round(args.events as f64 / published.as_secs_f64()),
        "publish_ack": percentiles(acks),
    }))
}

/// 2. Latency on an idle engine.
pub async fn latency(args: &Args) -> anyhow::Result<Value> {
    let bench = Bench::start(args, |_| {}).await?;
    let client = bench.client().await?;
    let ev = Event::<Payload>::new("bench.latency");
    let starts: Arc<Mutex<HashMap<u64, Vec<Instant>>>> = Arc::default();
    let ends: Arc<Mutex<HashMap<u64, Vec<Instant>>>> = Arc::default();
    // Handlers report each finish here; the publisher blocks on it rather
    // than polling, so the load generator leaves both cores to the engine.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut w = Worker::new(client.clone())
        .define_events()
        .concurrency(args.worker_concurrency);
    for i in 0..args.subscribers {
        let (s, e, f) = (starts.clone(), ends.clone(), finished_tx.clone());
        w = w.task(Task::new(format!("lat-{i}"), &ev, move |p: Payload, _| {
            s.lock()
                .map(|mut m| m.entry(p.n).or_default().push(Instant::now()))
                .ok();
            let (e, f) = (e.clone(), f.clone());
            async move {
                e.lock()
                    .map(|mut m| m.entry(p.n).or_default().push(Instant::now()))
                    .ok();
                let _ = f.send(p.n);
                Ok::<_, TaskError>(())
            }
        }));
    }
    let worker = w.start().await?;
    let n = args.events.min(1000);
    let (mut ack, mut to_start, mut to_done) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n as u64 {
        let t = Instant::now();
        ev.publish(&client, &Payload { n: i }).await?;
        ack.push(t.elapsed());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut finished = 0;
        while finished < args.subscribers {
            match tokio::time::timeout_at(deadline, finished_rx.recv()).await {
                Ok(Some(n)) if n == i => finished += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => anyhow::bail!("event {i}: runs did not finish in 10 s"),
            }
        }
        let first = starts
            .lock()
            .ok()
            .and_then(|m| m.get(&i).and_then(|v| v.iter().min().copied()));
        let last = ends
            .lock()
            .ok()
            .and_then(|m| m.get(&i).and_then(|v| v.iter().max().copied()));
        if let (Some(f), Some(l)) = (first, last) {
            to_start.push(f - t);
            to_done.push(l - t);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown().await?;
    bench.stop().await;
    Ok(json!({
        "scenario": "latency", "backend": backend(args), "events": n, "subscribers": args.subscribers,
        "publish_ack": percentiles(ack), "publish_to_run_start": percentiles(to_start),
        "publish_to_all_runs_done": percentiles(to_done),
    }))
}

/// 3. Scatter-gather.
pub async fn scatter(args: &Args) -> anyhow::Result<Value> {
    let bench = Bench::start(args, |_| {}).await?;
    let client = bench.client().await?;
    let ev = Event::<Payload>::new("bench.scatter");
    let done = Arc::new(AtomicU64::new(0));
    // The worker has its own connection, as a worker process would: one
    // HTTP/2 connection carrying the callers and the worker stream is one
    // connection task on each side, and measured as the limit (~1.7k/s).
    let worker = noop_worker(
        &bench.client().await?,
        &ev,
        args.subscribers,
        "sg",
        &done,
        None,
        args.worker_concurrency,
    )
    .start()
    .await?;
    let n = args.events.min(500);
    let mut unloaded = Vec::new();
    for i in 0..n as u64 {
        let t = Instant::now();
        let r = ev.publish_and_wait(&client, &Payload { n: i }).await?;
        unloaded.push(t.elapsed());
        anyhow::ensure!(
            r.results.len() == args.subscribers,
            "expected {} results",
            args.subscribers
        );
    }
    let conc = args.publishers.max(1);
    let total = args.events;
    let t0 = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    // Callers spread over a few connections, like callers in several
    // processes.
    let mut clients = vec![client.clone()];
    for _ in 1..CALLER_CONNECTIONS {
        clients.push(bench.client().await?);
    }
    for i in 0..conc {
        let (c, e, next) = (clients[i % clients.len()].clone(), ev.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total as u64 {
                let t = Instant::now();
                e.publish_and_wait(&c, &Payload { n: 0 }).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, fanout::Error>(lat)
        }));
    }
    let mut loaded = Vec::new();
    for h in handles {
        loaded.extend(h.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    worker.shutdown().await?;
    bench.stop().await;
    Ok(json!({
        "scenario": "scatter", "backend": backend(args), "subscribers": args.subscribers,
        "unloaded": percentiles(unloaded), "concurrency": conc, "completions": total,
        "completions_per_sec": round(total as f64 / secs), "loaded": percentiles(loaded),
    }))
}

/// 4. Fan-out width.
pub async fn width(args: &Args) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    for filtered in [false, true] {
        for w in [1usize, 10, 100, 1000] {
            let bench = Bench::start(args, |_| {}).await?;
            let client = bench.client().await?;
            let ev = Event::<Payload>::new(format!("bench.width{w}"));
            let done = Arc::new(AtomicU64::new(0));
            let filter = filtered.then(|| json!({"n": [{"$gte": 0}], "$or": [{"n": [{"numeric": [">=", 0]}]}, {"m": [{"exists": true}]}]}));
            let worker = noop_worker(&client, &ev, w, "w", &done, filter, args.worker_concurrency)
                .start()
                .await?;
            let events = (args.events * 3 / w).clamp(20, args.events);
            let t0 = Instant::now();
            let acks = publish_all(&client, &ev, events, args.publishers.min(events)).await?;
            wait_count(&done, (events * w) as u64, Duration::from_secs(600)).await?;
            while !drained(&client).await? {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let secs = t0.elapsed().as_secs_f64();
            rows.push(json!({
                "subscribers": w, "filtered": filtered, "events": events, "runs": done.load(Ordering::Relaxed),
                "runs_per_sec": round((events * w) as f64 / secs), "publish_ack": percentiles(acks),
            }));
            worker.shutdown().await?;
            bench.stop().await;
        }
    }
    // The matcher alone: 1,000 compiled filters against one payload, the
    // work a publish does for 1,000 filtered subscriptions.
    let pattern = json!({"amount": [{"$gte": 1000}], "currency": ["USD", "EUR"], "customer": {"tier": [{"prefix": "gold"}]}});
    let filters: Vec<fanout_engine::routing::filter::Filter> = (0..1000)
        .map(|_| fanout_engine::routing::filter::Filter::compile(&pattern))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = json!({"amount": 1500, "currency": "EUR", "customer": {"tier": "gold-plus", "id": "c-1"}, "items": [1, 2, 3]});
    let rounds = 2000;
    let t0 = Instant::now();
    let mut matched = 0usize;
    for _ in 0..rounds {
        matched += filters
            .iter()
            .filter(|f| f.matches(std::hint::black_box(&payload)))
            .count();
    }
    let per_publish_us = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    anyhow::ensure!(matched == rounds * 1000, "every filter should match");
    Ok(
        json!({"scenario": "width", "backend": backend(args), "rows": rows,
              "filter_eval_1000_subscriptions_us": round(per_publish_us)}),
    )
}

/// 5. Suspended parents: memory with `--events` parents waiting.
pub async fn suspended(args: &Args) -> anyhow::Result<Value> {
    let bench = Bench::start(args, |_| {}).await?;
    let client = bench.client().await?;
    let parent_ev = Event::<Payload>::new("bench.parent");
    let child_ev = Event::<Payload>::new("bench.child");
    // The child is subscribed but no worker serves it: parents stay suspended.
    Worker::new(client.clone())
        .define_events()
        .task(Task::new("child", &child_ev, |_: Payload, _| async {
            Ok::<_, TaskError>(())
        }))
        .start()
        .await?
        .shutdown()
        .await?;
    let ce = child_ev.clone();
    let parked = Arc::new(AtomicU64::new(0));
    let p2 = parked.clone();
    let parent = Task::new("parent", &parent_ev, move |p: Payload, ctx| {
        let (ce, parked) = (ce.clone(), p2.clone());
        async move {
            // Returns (as a suspension) once the engine holds the parent as
            // waiting.
            let r = ctx.publish_and_wait(&ce, &p).await;
            parked.fetch_add(1, Ordering::Relaxed);
            Ok::<_, TaskError>(r?.len())
        }
    });
    let worker = Worker::new(client.clone())
        .define_events()
        .concurrency(args.worker_concurrency)
        .task(parent)
        .start()
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let engine = args.engine_pid.map(|p| p.to_string());
    let engine_rss = || engine.as_deref().map(rss_of);
    let (before, engine_before) = (rss_bytes(), engine_rss());
    let t0 = Instant::now();
    publish_all(&client, &parent_ev, args.events, args.publishers).await?;
    wait_count(&parked, args.events as u64, Duration::from_secs(600)).await?;
    let secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after, engine_after) = (rss_bytes(), engine_rss());
    // Checked after the memory reading: listing 10,000 runs allocates.
    // The engine answers at most 10,000 runs a page; page on by id.
    let waiting = {
        use futures::TryStreamExt;
        client
            .runs()
            .task("parent")
            .status(fanout::RunStatus::Waiting)
            .page_size(10_000)
            .stream()
            .try_fold(0usize, |n, _| async move { Ok(n + 1) })
            .await?
    };
    anyhow::ensure!(
        waiting >= args.events,
        "only {waiting} of {} parents are waiting in the store",
        args.events
    );
    worker.shutdown().await?;
    bench.stop().await;
    let mb = |b: u64| round(b as f64 / 1048576.0);
    let delta = |a: u64, b: u64| round((a as f64 - b as f64) / 1048576.0);
    let mut out = json!({
        "scenario": "suspended", "backend": backend(args), "parents": args.events, "waiting_in_store": waiting,
        "seconds_to_suspend_all": round(secs),
        "process_rss_before_mb": mb(before), "process_rss_after_mb": mb(after), "rss_delta_mb": delta(after, before),
    });
    if let (Some(b), Some(a)) = (engine_before, engine_after) {
        out["engine_rss_before_mb"] = mb(b).into();
        out["engine_rss_after_mb"] = mb(a).into();
        out["engine_rss_delta_mb"] = delta(a, b).into();
        out["note"] =
            "process_* is the worker and the load generator; engine_* the engine process".into();
    } else {
        out["note"] = "engine, worker and load generator share this process (use --server URL --engine-pid PID to separate)".into();
    }
    Ok(out)
}

/// 6. Publish cost with a Redis rate limit (never tripped) vs none.
pub async fn ratelimit(args: &Args) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    for limited in [false, true] {
        let redis = args.redis_url.clone();
        let bench = Bench::start(args, |c| {
            if limited {
                c.limiter = fanout_engine::config::LimiterConfig::Redis {
                    url: redis,
                    on_unavailable: Default::default(),
                };
            }
        })
        .await?;
        let client = bench.client().await?;
        let mut ev = Event::<Payload>::new("bench.limited");
        if limited {
            ev = ev.rate_limit(1_000_000_000, Duration::from_secs(60));
        }
        ev.define(&client).await?;
        let t0 = Instant::now();
        let acks = publish_all(&client, &ev, args.events, args.publishers).await?;
        let secs = t0.elapsed().as_secs_f64();
        rows.push(json!({"rate_limited": limited, "events_per_sec": round(args.events as f64 / secs), "publish_ack": percentiles(acks)}));
        bench.stop().await;
    }
    Ok(json!({"scenario": "ratelimit", "backend": backend(args), "limiter": "redis", "rows": rows}))
}

/// 7. Replay from the archive.
pub async fn replay(args: &Args) -> anyhow::Result<Value> {
    let ch = args.clickhouse_url.clone();
    let bench = Bench::start(args, |c| {
        if let Some(url) = ch {
            c.archive = fanout_engine::config::ArchiveConfig::Clickhouse {
                url,
                database: format!("bench_{}", uuid::Uuid::now_v7().simple()),
                user: None,
                password: None,
            };
        }
    })
    .await?;
    let client = bench.client().await?;
    let ev = Event::<Payload>::new("bench.replay");
    let done = Arc::new(AtomicU64::new(0));
    let worker = noop_worker(&client, &ev, 1, "rp", &done, None, args.worker_concurrency)
        .start()
        .await?;
    let from = now_ms() - 1;
    publish_all(&client, &ev, args.events, args.publishers).await?;
    let archived = |c: Client| async move {
        let req = fanout::proto::ListArchivedRequest {
            event: "bench.replay".into(),
            from_ms: from,
            to_ms: 0,
            limit: 10_000,
            after_ms: 0,
            after_id: String::new(),
        };
        c.raw()
            .replay()
            .list_archived(c.raw().request(req))
            .await
            .map(|r| r.into_inner().events.len())
    };
    while archived(client.clone()).await? < args.events.min(10_000) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let req = fanout::proto::StartReplayRequest {
        event: "bench.replay".into(),
        from_ms: from,
        to_ms: now_ms() + 1,
        ..Default::default()
    };
    let t0 = Instant::now();
    let job = client
        .raw()
        .replay()
        .start_replay(client.raw().request(req))
        .await?
        .into_inner();
    let job = loop {
        let j = client
            .raw()
            .replay()
            .get_replay(
                client
                    .raw()
                    .request(fanout::proto::GetReplayRequest { id: job.id.clone() }),
            )
            .await?
            .into_inner();
        if j.status != "running" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let scan_secs = t0.elapsed().as_secs_f64();
    wait_count(&done, (args.events * 2) as u64, Duration::from_secs(600)).await?;
    let all_secs = t0.elapsed().as_secs_f64();
    worker.shutdown().await?;
    bench.stop().await;
    Ok(json!({
        "scenario": "replay", "backend": backend(args), "archive": if args.clickhouse_url.is_some() { "clickhouse" } else { "local" },
        "events": job.events_replayed, "runs": job.runs_created, "status": job.status,
        "scan_and_dispatch_events_per_sec": round(job.events_replayed as f64 / scan_secs),
        "replayed_runs_completed_per_sec": round(job.runs_created as f64 / all_secs),
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
