//! Replay, on every store and every archive (local; ClickHouse with
//! FANOUT_TEST_CLICKHOUSE_URL).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::proto as pb;
use fanout::{Client, Event, Task, TaskError, Worker};
use fanout_engine::config::ArchiveConfig;
use fanout_tests::{TestEngine, eventually, unique_schema};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Order {
    n: u32,
    region: String,
}

const WAIT: Duration = Duration::from_secs(30);

/// One (store, archive) combination: `sqlite_local` here always; the
/// others need their services.
async fn setup(name: &str) -> (String, fanout_tests::Backend) {
    let (store, archive) = name.split_once('_').unwrap();
    let mut b = fanout_tests::backend(store).await;
    if archive == "clickhouse" {
        let url = std::env::var("FANOUT_TEST_CLICKHOUSE_URL")
            .expect("FANOUT_TEST_CLICKHOUSE_URL is not set: this test needs ClickHouse");
        b.config.archive = ArchiveConfig::Clickhouse {
            url,
            database: unique_schema(),
            user: None,
            password: None,
        };
    }
    (format!("{}+{archive}", b.name), b)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn start(c: &Client, req: pb::StartReplayRequest) -> pb::ReplayJob {
    c.raw()
        .replay()
        .start_replay(c.raw().request(req))
        .await
        .unwrap()
        .into_inner()
}

async fn finished(c: &Client, id: &str) -> pb::ReplayJob {
    eventually(WAIT, "replay finished", || async {
        let j = c
            .raw()
            .replay()
            .get_replay(c.raw().request(pb::GetReplayRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner();
        (j.status != "running").then_some(j)
    })
    .await
}

async fn archived_count(c: &Client, event: &str, from: i64) -> usize {
    let req = pb::ListArchivedRequest {
        event: event.into(),
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
        .unwrap()
        .into_inner()
        .events
        .len()
}

async fn replay_runs(c: &Client, task: &str) -> Vec<fanout::Run> {
    c.runs()
        .task(task)
        .first(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.replay_of.is_some())
        .collect()
}

fanout_tests::per_backend! { setup: sqlite_local, postgres_local, sqlite_clickhouse, postgres_clickhouse;
    async fn replay_resends_a_range_through_todays_subscriptions((name, b)) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("order.created");
        let ok = |_: Order, _| async { Ok::<_, TaskError>(()) };
        // What the handler is told: (event id, the replayed original).
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let ship = move |_: Order, ctx: fanout::TaskContext| {
            s.lock().unwrap().push((ctx.event_id.clone(), ctx.replay_of.clone()));
            async { Ok::<_, TaskError>(()) }
        };
        let worker = Worker::new(client.clone()).define_events()
            .task(Task::new("ship", &ev, ship))
            .task(Task::new("bill", &ev, ok))
            .task(Task::new("g1", &ev, ok).consumer_group("grp"))
            .task(Task::new("g2", &ev, ok).consumer_group("grp"))
            .start()
            .await
            .unwrap();
        let from = now_ms() - 1;
        let mut first_choice = HashMap::new();
        for n in 0..30u32 {
            let region = if n % 3 == 0 { "eu" } else { "us" };
            let p = ev
                .publish(
                    &client,
                    &Order {
                        n,
                        region: region.into(),
                    },
                )
                .ordering_key(format!("k{}", n % 4))
                .tags(["t"])
                .await
                .unwrap();
            let g = p.runs.iter().find(|r| r.consumer_group == "grp").unwrap();
            first_choice.insert(p.event_id.clone(), g.task_id.clone());
        }
        eventually(WAIT, "archived", || async {
            (archived_count(&client, "order.created", from).await == 30).then_some(())
        })
        .await;
        let to = now_ms() + 1;
        let base = pb::StartReplayRequest {
            event: "order.*".into(),
            from_ms: from,
            to_ms: to,
            ..Default::default()
        };

        // Dry run: counts, creates nothing.
        let dry = finished(
            &client,
            &start(
                &client,
                pb::StartReplayRequest {
                    dry_run: true,
                    ..base.clone()
                },
            )
            .await
            .id,
        )
        .await;
        assert_eq!(
            (dry.events_replayed, dry.runs_created),
            (30, 90),
            "[{name}] {dry:?}"
        );
        let by_task: HashMap<String, u64> = serde_json::from_str(&dry.by_task_json).unwrap();
        assert_eq!(
            (
                by_task["ship"],
                by_task["bill"],
                by_task["g1"] + by_task["g2"]
            ),
            (30, 30, 30)
        );
        assert!(replay_runs(&client, "ship").await.is_empty());

        // --task and --filter narrow it.
        let j = start(
            &client,
            pb::StartReplayRequest {
                tasks: vec!["ship".into(), "g1".into(), "g2".into()],
                filter_json: r#"{"region":["eu"]}"#.into(),
                ..base.clone()
            },
        )
        .await;
        let j = finished(&client, &j.id).await;
        assert_eq!(
            (j.status.as_str(), j.events_replayed, j.runs_created),
            ("completed", 10, 20),
            "[{name}] {j:?}"
        );
        let shipped = replay_runs(&client, "ship").await;
        assert_eq!(shipped.len(), 10);
        assert!(
            replay_runs(&client, "bill").await.is_empty(),
            "only the named tasks"
        );
        assert!(
            shipped.iter().all(|r| r.ordering_key.is_some()),
            "ordering keys kept"
        );
        let grouped: Vec<fanout::Run> = [
            replay_runs(&client, "g1").await,
            replay_runs(&client, "g2").await,
        ]
        .concat();
        assert_eq!(grouped.len(), 10);
        for r in &grouped {
            assert_eq!(
                first_choice[r.replay_of.as_ref().unwrap()], r.task_id,
                "[{name}] same consumer-group member as the first time"
            );
        }
        let detail = client.run(&shipped[0].id).await.unwrap();
        assert_eq!(detail.payload["region"], "eu", "{:?}", detail.payload);

        // Again: deliberate, creates runs again — unless skipping.
        let j = finished(
            &client,
            &start(
                &client,
                pb::StartReplayRequest {
                    tasks: vec!["ship".into()],
                    ..base.clone()
                },
            )
            .await
            .id,
        )
        .await;
        assert_eq!(j.runs_created, 30);
        assert_eq!(replay_runs(&client, "ship").await.len(), 40);
        let j = finished(
            &client,
            &start(
                &client,
                pb::StartReplayRequest {
                    tasks: vec!["ship".into()],
                    skip_already_replayed: true,
                    ..base.clone()
                },
            )
            .await
            .id,
        )
        .await;
        assert_eq!(
            j.runs_created, 0,
            "[{name}] every pair was replayed already"
        );
        eventually(WAIT, "replayed runs complete", || async {
            let runs = replay_runs(&client, "ship").await;
            runs.iter().all(|r| r.status == fanout::RunStatus::Completed).then_some(())
        })
        .await;
        // Replayed copies are not archived again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(archived_count(&client, "order.created", from).await, 30);
        // Replayed runs say so, naming an original; the originals do not.
        // (Deliveries are at least once: count distinct events.)
        let seen: std::collections::HashSet<_> = seen.lock().unwrap().iter().cloned().collect();
        let replays: Vec<_> = seen.iter().filter_map(|(_, of)| of.clone()).collect();
        assert_eq!(replays.len(), 40, "[{name}]");
        assert!(replays.iter().all(|of| first_choice.contains_key(of)), "[{name}]");
        assert_eq!(seen.len() - replays.len(), 30, "[{name}] the originals");

        // Bad requests name the problem.
        let err = client
            .raw().replay()
            .start_replay(client.raw().request(pb::StartReplayRequest {
                tasks: vec!["ghost".into()],
                ..base.clone()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        let err = client
            .raw().replay()
            .start_replay(client.raw().request(pb::StartReplayRequest {
                from_ms: to,
                to_ms: from,
                ..base.clone()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

fanout_tests::per_backend! { setup: sqlite_local, postgres_local, sqlite_clickhouse, postgres_clickhouse;
    /// A throttled replay survives an engine restart (resumes at its cursor, no
    /// duplicates) and can be cancelled.
    async fn replay_is_a_durable_job_with_rate_resume_and_cancel((name, b)) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Order>::new("audit.entry");
        Worker::new(client.clone()).define_events()
            .task(Task::new("audit", &ev, |_: Order, _| async {
                Ok::<_, TaskError>(())
            }))
            .start()
            .await
            .unwrap()
            .shutdown()
            .await
            .unwrap();
        let from = now_ms() - 1;
        for n in 0..1200u32 {
            client
                .publish_json(
                    "audit.entry",
                    &serde_json::json!({"n": n, "region": "eu"}),
                    Default::default(),
                )
                .await
                .unwrap();
        }
        eventually(WAIT, "archived", || async {
            (archived_count(&client, "audit.entry", from).await == 1200).then_some(())
        })
        .await;
        let base = pb::StartReplayRequest {
            event: "audit.entry".into(),
            from_ms: from,
            to_ms: now_ms() + 1,
            ..Default::default()
        };
        // 500-event pages at 400/s: the first page lands, then the job sleeps.
        let j = start(
            &client,
            pb::StartReplayRequest {
                rate_per_sec: 400.0,
                ..base.clone()
            },
        )
        .await;
        assert_eq!(j.events_total, 1200);
        eventually(WAIT, "first page", || async {
            (replay_runs(&client, "audit").await.len() >= 500).then_some(())
        })
        .await;
        engine.stop().await;

        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let done = finished(&client, &j.id).await;
        assert_eq!(
            (done.status.as_str(), done.runs_created),
            ("completed", 1200),
            "[{name}]"
        );
        let runs = replay_runs(&client, "audit").await;
        assert_eq!(
            runs.len(),
            1200,
            "[{name}] resumed at the cursor: nothing twice, nothing lost"
        );
        let mut originals: Vec<&str> = runs.iter().map(|r| r.replay_of.as_deref().unwrap_or_default()).collect();
        originals.sort_unstable();
        originals.dedup();
        assert_eq!(originals.len(), 1200);

        let slow = start(
            &client,
            pb::StartReplayRequest {
                rate_per_sec: 50.0,
                ..base.clone()
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = client
            .raw().replay()
            .cancel_replay(client.raw().request(pb::GetReplayRequest {
                id: slow.id.clone(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(c.status, "cancelled");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = finished(&client, &slow.id).await;
        assert_eq!(after.status, "cancelled");
        assert!(
            after.runs_created < 1200,
            "[{name}] stopped early: {}",
            after.runs_created
        );
        engine.stop().await;
    }
}
