//! The outbox reaches the archive: on the embedded archive always, and on
//! ClickHouse (FANOUT_TEST_CLICKHOUSE_URL) including an outage, through a
//! TCP proxy the test can cut.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Event, PublishOptions};
use fanout_engine::archive::{
    Archive, ArchiveQuery, clickhouse::ClickhouseArchive, local::LocalArchive,
};
use fanout_engine::config::ArchiveConfig;
use fanout_tests::{TestEngine, backends, eventually, unique_schema};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Ping {
    n: u32,
}

fn all(ns: &str) -> ArchiveQuery {
    ArchiveQuery {
        namespace: ns.into(),
        events: vec![],
        from_ms: 0,
        to_ms: u64::MAX,
        after: None,
        limit: 10_000,
    }
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn every_event_reaches_the_local_archive(b) {
        let engine = TestEngine::start(b.config.clone()).await;
        let client = engine.client().await;
        let ev = Event::<Ping>::new("ping.sent");
        ev.define(&client).await.unwrap();
        for n in 0..20 {
            ev.publish(&client, &Ping { n })
                .ordering_key(format!("k{}", n % 2))
                .tags(["a"])
                .await
                .unwrap();
        }
        engine.stop().await;
        let ArchiveConfig::Local { path } = &b.config.archive else {
            unreachable!()
        };
        let archive = LocalArchive::open(path).await.unwrap();
        // Shipping may finish after stop only if the engine ships on its way out;
        // restart once to let the outbox drain, as a crashed engine would.
        let engine = TestEngine::start(b.config.clone()).await;
        let got = eventually(Duration::from_secs(10), "20 events archived", || async {
            let got = archive.read(&all("default")).await.unwrap();
            (got.len() == 20).then_some(got)
        })
        .await;
        assert_eq!(got[3].payload, r#"{"n":3}"#, "[{}] publish order", b.name);
        assert_eq!(got[3].ordering_key, "k1");
        assert_eq!(got[3].tags, vec!["a".to_string()]);
        assert_eq!(got[3].fan_out_count, 0, "no subscribers, still archived");
        engine.stop().await;
    }
}

/// A proxy to `target`: while `up` is false it refuses connections and cuts
/// the ones it carries (pooled keep-alive connections included).
async fn proxy(target: String, up: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                return;
            };
            if !up.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            let up = up.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(&target).await {
                    let cut = async {
                        while up.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = cut => {}
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
#[ignore = "service test: needs FANOUT_TEST_CLICKHOUSE_URL (.ci/run sets it)"]
async fn clickhouse_outage_loses_nothing() {
    let ch_url = std::env::var("FANOUT_TEST_CLICKHOUSE_URL")
        .expect("FANOUT_TEST_CLICKHOUSE_URL is not set: this test needs ClickHouse");
    let up = Arc::new(AtomicBool::new(true));
    let target = ch_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxied = proxy(target, up.clone()).await;
    let database = unique_schema();
    let mut b = backends().remove(0);
    b.config.archive = ArchiveConfig::Clickhouse {
        url: proxied,
        database: database.clone(),
        user: None,
        password: None,
    };
    let engine = TestEngine::start(b.config.clone()).await;
    let client = engine.client().await;
    let ev = Event::<Ping>::new("ping.sent");
    ev.define(&client).await.unwrap();
    for n in 0..10 {
        ev.publish(&client, &Ping { n }).await.unwrap();
    }
    let direct = ClickhouseArchive::connect(&ch_url, &database, None, None)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "first 10 archived", || async {
        (direct.read(&all("default")).await.unwrap().len() == 10).then_some(())
    })
    .await;

    // ClickHouse "down": publishes still succeed.
    up.store(false, Ordering::SeqCst);
    // The proxy polls the flag every 10 ms: let it cut live connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for n in 10..40 {
        client
            .publish_json(
                "ping.sent",
                &serde_json::json!({"n": n}),
                PublishOptions::default(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        direct.read(&all("default")).await.unwrap().len(),
        10,
        "nothing shipped while down"
    );

    // Back up: the backlog drains, in order, without duplicates.
    up.store(true, Ordering::SeqCst);
    let got = eventually(Duration::from_secs(30), "backlog drained", || async {
        let got = direct.read(&all("default")).await.unwrap();
        (got.len() == 40).then_some(got)
    })
    .await;
    let ns: Vec<u64> = got
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.payload).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ns, (0..40).collect::<Vec<_>>());
    engine.stop().await;
}
