//! The process-level fault suite: the real `fanout` binary, killed with
//! SIGKILL under load and started again on the same data directory. Every
//! publish that was acknowledged must be there with its run, and every run
//! must complete after the restart. Figures (acked, lost, stored but never
//! acknowledged) are printed for the closing notes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Client, PublishOptions, Task, TaskError, Worker};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, grpc: u16, http: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "dev",
            "--data-dir",
            dir.to_str().unwrap(),
            "--grpc-addr",
            &format!("127.0.0.1:{grpc}"),
            "--http-addr",
            &format!("127.0.0.1:{http}"),
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Connect once the engine answers (it takes a moment to start).
async fn connect(grpc: u16) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = Client::connect(format!("http://127.0.0.1:{grpc}")).await
            && c.list_events().await.is_ok()
        {
            return c;
        }
        assert!(Instant::now() < deadline, "the engine did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_publish_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut engine = start(dir.path(), grpc, http);
    let client = connect(grpc).await;
    client
        .define_event("order.created", &json!({"type": "object"}), "")
        .await
        .unwrap();
    // A subscriber, so every event has a run (no worker runs it yet).
    let task = || {
        Task::on_pattern("bill", "order.created", |_: Value, _| async {
            Ok::<_, TaskError>(())
        })
    };
    Worker::new(client.clone())
        .task(task())
        .start()
        .await
        .unwrap()
        .abort();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..8 {
        let client = client.clone();
        let acked = acked.clone();
        publishers.push(tokio::spawn(async move {
            for n in 0.. {
                let key = format!("p{p}-{n}");
                let opts = PublishOptions {
                    idempotency_key: Some(key.clone()),
                    ..Default::default()
                };
                match client
                    .publish_json("order.created", &json!({"n": n}), opts)
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push(key),
                    Err(_) => return n,
                }
            }
            unreachable!()
        }));
    }
    // Kill the engine once it has acknowledged a few hundred publishes.
    while acked.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.kill().unwrap();
    engine.wait().unwrap();
    let mut attempted = 0;
    for p in publishers {
        attempted += p.await.unwrap() + 1;
    }
    let acked = acked.lock().unwrap().clone();

    let restarted = Instant::now();
    let mut engine = start(dir.path(), grpc, http);
    let client = connect(grpc).await;
    let recovered = restarted.elapsed();
    // An acknowledged key published again must be recognised as stored.
    let mut lost = Vec::new();
    for key in &acked {
        let opts = PublishOptions {
            idempotency_key: Some(key.clone()),
            ..Default::default()
        };
        let p = client
            .publish_json("order.created", &json!({}), opts)
            .await
            .unwrap();
        if !p.deduplicated || p.runs.len() != 1 {
            lost.push(key.clone());
        }
    }
    // Every stored event's run completes once a worker is there.
    let worker = Worker::new(client.clone())
        .task(task())
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (completed, total) = loop {
        let all = client
            .list_runs(fanout::proto::ListRunsRequest {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let done = all.iter().filter(|r| r.status == "completed").count();
        if done == all.len() || Instant::now() > deadline {
            break (done, all.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "kill -9 under load: attempted {attempted}, acked {}, lost {}, stored but unacknowledged {}, restart to serving {recovered:?}, runs completed {completed}/{total}",
        acked.len(),
        lost.len(),
        total.saturating_sub(acked.len()),
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(completed, total, "every run completes after the restart");
    assert!(total >= acked.len());
    worker.shutdown().await.unwrap();
    engine.kill().unwrap();
    engine.wait().unwrap();
}
