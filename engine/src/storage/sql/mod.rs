//! [`Store`] over SQLite and PostgreSQL with one body of SQL.
//!
//! Both backends go through sqlx's `Any` driver with runtime queries. The SQL
//! stays in the subset both accept (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, `WITH … UPDATE … FROM`, partial indexes); [`Dialect`] adds
//! the few differences: row locks with `SKIP LOCKED` on Postgres, and a
//! single writer connection on SQLite (which has one writer anyway, and would
//! otherwise answer SQLITE_BUSY). The conformance suite runs every test on
//! both. Why not `query!`: it checks against one database per crate.

mod announce;
mod auth;
mod complete;
mod console;
mod definitions;
mod dialect;
mod errors;
#[cfg(test)]
mod faults;
mod logs;
mod migrations;
mod outbox;
mod postgres;
mod publish;
mod queue;
mod replay;
mod rows;
mod runs;
mod sqlite;
mod stats;
mod waitpoints;

pub use dialect::Dialect;
pub use postgres::notify_channel;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::model::*;
use crate::storage::{RunQueue, Store};
use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::time::Duration;

/// The SQL store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Transactions that write.
    writer: AnyPool,
    /// Reads (the same pool on Postgres).
    reader: AnyPool,
    /// Claims and completions (see [`SqlStore::begin_relaxed`]): on Postgres
    /// its connections run with `synchronous_commit = off`, so a claim is
    /// one statement, one round trip; on SQLite the writer.
    relaxed: AnyPool,
    dialect: Dialect,
    /// Postgres `NOTIFY` channel shared by the replicas on this schema.
    channel: Option<String>,
    /// Post-commit events for this process (waitpoints finished, …).
    events: tokio::sync::broadcast::Sender<StoreEvent>,
    /// SQLite: makes publishes durable after their commit.
    wal: Option<std::sync::Arc<sqlite::walsync::WalSync>>,
    /// SQLite: the checkpoint loop, stopped and joined on close.
    checkpointer: std::sync::Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// SQLite: the data directory's lock (`dirlock`), released on close.
    dir_lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

/// A pool of at most `max` connections, each running `setup` (session
/// settings) once when it connects.
fn pool_options(max: u32, setup: String) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A connection still "in a transaction" when taken from the pool is
        // broken: SQLite rolls a transaction back by itself on SQLITE_FULL
        // or IOERR, sqlx's ROLLBACK then fails and its depth stays at 1, so
        // every later BEGIN fails. Close it; the pool opens a fresh one.
        .before_acquire(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        .after_connect(move |conn, _| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(setup.as_str()).await?;
                Ok(())
            })
        })
}

impl SqlStore {
    /// Connect, apply migrations, and return a ready store. Errors name the
    /// backend and say what failed, in one line.
    pub async fn connect(cfg: &StoreConfig) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match cfg {
            StoreConfig::Sqlite { path } => sqlite::open(path).await,
            StoreConfig::Postgres {
                url,
                schema,
                max_connections,
            } => postgres::open(url, schema, *max_connections).await,
        }
    }

    /// Apply pending migrations. On failure the pool is closed, so a held
    /// advisory lock cannot block the next migrator (see FACTS.md).
    pub async fn migrate(&self) -> Result<()> {
        if let Err(e) = migrations::migrator(self.dialect).run(&self.writer).await {
            self.writer.close().await;
            return Err(Error::Unavailable(format!("migrations failed: {e}")));
        }
        Ok(())
    }

    /// SQLite: runs left `running` by a previous process. The data
    /// directory's lock proves that process is gone (one engine per
    /// directory), and its worker sessions with it: nobody can finish these
    /// attempts, so they go back to the queue at once instead of waiting
    /// out their leases — uncharged, since the handler did not fail. A
    /// late result from such an attempt is refused as stale (its session
    /// no longer exists).
    async fn requeue_orphans(&self) -> Result<u64> {
        self.requeue_leases_of("", now_ms()).await
    }

    /// Close all connections.
    pub async fn close(&self) {
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        if let Some(task) = checkpointer {
            task.abort();
            let _ = task.await;
        }
        self.writer.close().await;
        self.reader.close().await;
        self.relaxed.close().await;
        if let Ok(mut lock) = self.dir_lock.lock() {
            lock.take();
        }
    }

    /// Begin a write transaction on the writer (`BEGIN IMMEDIATE` on
    /// SQLite: take the write lock now, not at the first write). Its commit
    /// survives a process crash; for power loss see [`SqlStore::durable`].
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writer.begin().await?,
        })
    }

    /// Make what was just committed survive power loss: publishes, before
    /// the caller hears ok. Postgres: already so (`synchronous_commit` on
    /// the writer pool). SQLite: a group fsync of the WAL ([`walsync`]).
    pub(super) async fn durable(&self) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.sync().await,
            None => Ok(()),
        }
    }

    /// A transaction for claims and completions, which need not wait for
    /// the WAL flush: a crash can lose only the last ~0.6 s of them, and
    /// those runs then go back to their previous state and execute again
    /// (delivery is at-least-once; a late result is discarded as stale).
    /// Publishes keep `synchronous_commit`. On Postgres the relaxed pool's
    /// sessions carry the setting; `settings` (`SET LOCAL …`) travel with
    /// `BEGIN` in one round trip (the simple protocol takes several
    /// statements at once). SQLite: a plain write transaction.
    pub(super) async fn begin_relaxed(&self, settings: &str) -> Result<Transaction<'static, Any>> {
        match self.dialect {
            Dialect::Sqlite => self.begin_write().await,
            Dialect::Postgres if settings.is_empty() => Ok(self.relaxed.begin().await?),
            Dialect::Postgres => Ok(self
                .relaxed
                .begin_with(format!("BEGIN; {settings}"))
                .await?),
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn close(&self) {
        SqlStore::close(self).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DlqState, ReplayStatus, RunStatus, WaitpointStatus};

    /// Every SQL text of the store: statements and migrations.
    const SOURCES: &[(&str, &str)] = &[
        ("complete.rs", include_str!("complete.rs")),
        ("definitions.rs", include_str!("definitions.rs")),
        ("outbox.rs", include_str!("outbox.rs")),
        ("publish.rs", include_str!("publish.rs")),
        ("queue.rs", include_str!("queue.rs")),
        ("replay.rs", include_str!("replay.rs")),
        ("runs.rs", include_str!("runs.rs")),
        ("stats.rs", include_str!("stats.rs")),
        ("waitpoints.rs", include_str!("waitpoints.rs")),
        ("0001", include_str!("../../../../migrations/0001_init.sql")),
        (
            "0002",
            include_str!("../../../../migrations/0002_delivery.sql"),
        ),
        (
            "0003",
            include_str!("../../../../migrations/0003_waitpoints.sql"),
        ),
        (
            "0004",
            include_str!("../../../../migrations/0004_replay.sql"),
        ),
        (
            "0005",
            include_str!("../../../../migrations/postgres/0005_queue_tuning.sql"),
        ),
        (
            "0007",
            include_str!("../../../../migrations/0007_children_by_event.sql"),
        ),
    ];

    /// The quoted literals right after `at` (`'a'`, `('a', 'b')`), skipping
    /// an operator and blanks.
    fn literals_after(text: &str) -> Vec<&str> {
        let rest = text.trim_start();
        let rest = rest
            .strip_prefix(')')
            .map_or(rest, str::trim_start)
            .trim_start_matches(|c: char| "=<>!".contains(c))
            .trim_start();
        let rest = rest
            .strip_prefix("IN")
            .or_else(|| rest.strip_prefix("in"))
            .map_or(rest, str::trim_start);
        let rest = rest.strip_prefix('(').unwrap_or(rest);
        let mut out = Vec::new();
        let mut rest = rest.trim_start();
        while let Some(r) = rest.strip_prefix('\'') {
            let Some(end) = r.find('\'') else { break };
            out.push(&r[..end]);
            rest = r[end + 1..].trim_start();
            rest = rest.strip_prefix(',').map_or(rest, str::trim_start);
        }
        out
    }

    /// A status spelled inside SQL that its enum does not know would be a
    /// state no code path reads (or a typo no test would see).
    #[test]
    fn status_and_dlq_literals_in_sql_are_enum_values() {
        let known: Vec<&str> = RunStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(WaitpointStatus::ALL.iter().map(|s| s.as_str()))
            .chain(ReplayStatus::ALL.iter().map(|s| s.as_str()))
            .collect();
        let mut seen = 0;
        for (file, text) in SOURCES {
            for (i, _) in text.match_indices("status") {
                for lit in literals_after(&text[i + "status".len()..]) {
                    assert!(
                        known.contains(&lit),
                        "{file}: status '{lit}' is no enum value"
                    );
                    seen += 1;
                }
            }
            for (i, _) in text.match_indices("THEN '") {
                let lit = literals_after(&text[i + "THEN".len()..]);
                for lit in lit {
                    assert!(
                        known.contains(&lit),
                        "{file}: THEN '{lit}' is no enum value"
                    );
                    seen += 1;
                }
            }
            for (i, _) in text.match_indices("dlq = ") {
                let digits: String = text[i + 6..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(code) = digits.parse::<i64>() {
                    assert!(
                        DlqState::CODES.iter().any(|(_, c)| *c == code),
                        "{file}: dlq = {code} is no DlqState code"
                    );
                    seen += 1;
                }
            }
        }
        // The scan must find the literals it is checking.
        assert!(seen >= 30, "only {seen} literals found");
    }

    #[test]
    fn the_scanner_reads_lists_and_operators() {
        assert_eq!(
            literals_after(" IN ('queued', 'retrying') AND"),
            ["queued", "retrying"]
        );
        assert_eq!(literals_after(" = 'running') IS TRUE"), ["running"]);
        assert_eq!(literals_after(") = 'dead'"), ["dead"]);
        assert!(literals_after(" = $1").is_empty());
    }
}
