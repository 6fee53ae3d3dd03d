//! Faults of the SQLite store itself, reproduced in-process.
//!
//! A full disk, simulated with SQLite's `max_page_count` on the writer
//! connection: writes fail with SQLITE_FULL (UNAVAILABLE), and once space
//! returns the store writes again by itself. Before, SQLite's automatic
//! rollback of the failed transaction left sqlx's transaction depth at 1,
//! and every later write failed with "attempted to call begin_with at
//! non-zero transaction depth" until a restart.

use super::SqlStore;
use crate::config::StoreConfig;
use crate::error::Error;
use crate::model::{NewEvent, new_id, now_ms};
use crate::storage::{Publish, RunQueue};
use sqlx::Row;

fn event(payload_bytes: usize) -> NewEvent {
    NewEvent {
        id: new_id(),
        namespace: "default".into(),
        name: "disk.test".into(),
        version: 1,
        payload_json: format!("\"{}\"", "x".repeat(payload_bytes)),
        ordering_key: String::new(),
        idempotency_key: String::new(),
        tags: vec![],
        published_at_ms: now_ms(),
        publisher_run_id: String::new(),
        dlq: true,
        runs: vec![],
        waitpoint: None,
        replay_of: String::new(),
        trace: Default::default(),
    }
}

#[tokio::test]
async fn writes_recover_when_space_returns() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SqlStore::connect(&StoreConfig::Sqlite {
        path: dir.path().join("fanout.db"),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    store
        .publish(&[event(10)], 60_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pages: i64 = sqlx::query("PRAGMA page_count")
        .fetch_one(&store.writer)
        .await
        .and_then(|r| r.try_get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(&store.writer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut failed = None;
    for _ in 0..50 {
        if let Err(e) = store.publish(&[event(64 * 1024)], 60_000).await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.unwrap_or_else(|| panic!("the disk never filled"));
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    // Still full (the cap set again: the failed connection was replaced):
    // still refused, with the cause.
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(&store.writer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = store
        .publish(&[event(64 * 1024)], 60_000)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    // Space returns (a fresh connection has no page cap): writes work.
    sqlx::query("PRAGMA max_page_count = 1073741823")
        .execute(&store.writer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .publish(&[event(64 * 1024)], 60_000)
        .await
        .unwrap_or_else(|e| panic!("writes did not recover: {e}"));
    store.close().await;
}

/// After a `kill -9`, a run that was running waited out its whole lease
/// (30 s by default) although no worker from before the crash could hold
/// it. On SQLite the data directory lock proves the old process is gone:
/// such runs are queued again at start, their attempt not charged.
#[tokio::test]
async fn runs_of_a_dead_engine_are_requeued_at_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = StoreConfig::Sqlite {
        path: dir.path().join("fanout.db"),
    };
    let store = SqlStore::connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ev = event(10);
    ev.runs.push(crate::model::NewRun {
        id: new_id(),
        task_id: "t".into(),
        consumer_group: String::new(),
        retry: Default::default(),
        lease_ms: 600_000,
    });
    store
        .publish(&[ev], 60_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = store
        .claim("default", &["t".into()], "old-session", 1, now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 1);
    // The process dies: nothing closes the store; its lock goes with it.
    drop(store);
    let store = SqlStore::connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = store
        .claim("default", &["t".into()], "new-session", 1, now_ms())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.len(), 1, "the run is claimable at once");
    assert_eq!(again[0].attempt, 1, "the lost attempt was not charged");
    store.close().await;
}
