//! The embedded archive: a SQLite file of its own (`archive.db`), so the
//! archive has the same life as in production — written only by the
//! archiver, read by `events log` and replay — without a ClickHouse server.

use super::{Archive, ArchiveQuery};
use crate::error::{Error, Result};
use crate::model::ArchivedEvent;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::path::Path;

/// Epoch ms as SQLite's signed integer, saturating.
fn clamp(ms: u64) -> i64 {
    ms.min(i64::MAX as u64) as i64
}

/// `namespace = ? AND time in [from, to) [AND event_name IN (…)]`.
fn push_range<'a>(qb: &mut QueryBuilder<'a, Sqlite>, q: &'a ArchiveQuery) {
    qb.push("namespace = ").push_bind(&q.namespace);
    qb.push(" AND published_at_ms >= ")
        .push_bind(clamp(q.from_ms));
    qb.push(" AND published_at_ms < ").push_bind(clamp(q.to_ms));
    if !q.events.is_empty() {
        qb.push(" AND event_name IN (");
        let mut sep = qb.separated(", ");
        for e in &q.events {
            sep.push_bind(e);
        }
        qb.push(")");
    }
}

/// SQLite-backed archive.
pub struct LocalArchive {
    pool: SqlitePool,
}

const DDL: &str = "CREATE TABLE IF NOT EXISTS archived_events (
    event_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    event_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    payload TEXT NOT NULL,
    tags TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fan_out_count BIGINT NOT NULL,
    published_at_ms BIGINT NOT NULL,
    publisher_run_id TEXT NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    tracestate TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS archived_events_time ON archived_events (namespace, published_at_ms, event_id);";

impl LocalArchive {
    /// Open (creating if missing) the archive file.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Unavailable(format!("archive: cannot create {}: {e}", dir.display()))
            })?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("archive: cannot open {}: {e}", path.display()))
            })?;
        sqlx::raw_sql(DDL).execute(&pool).await?;
        // Columns added after the first release, onto an older file.
        let columns: Vec<String> =
            sqlx::query("SELECT name FROM pragma_table_info('archived_events')")
                .fetch_all(&pool)
                .await?
                .iter()
                .map(|r| r.try_get("name"))
                .collect::<std::result::Result<_, _>>()?;
        for name in ["traceparent", "tracestate"] {
            if !columns.iter().any(|c| c == name) {
                sqlx::query(&format!(
                    "ALTER TABLE archived_events ADD COLUMN {name} TEXT NOT NULL DEFAULT ''"
                ))
                .execute(&pool)
                .await?;
            }
        }
        Ok(LocalArchive { pool })
    }
}

#[async_trait]
impl Archive for LocalArchive {
    async fn write(&self, events: &[ArchivedEvent]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(500) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO archived_events (event_id, namespace, event_name, version, payload, tags, ordering_key, \
                 idempotency_key, fan_out_count, published_at_ms, publisher_run_id, traceparent, tracestate) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(&e.event_id)
                    .push_bind(&e.namespace)
                    .push_bind(&e.event_name)
                    .push_bind(e.version as i64)
                    .push_bind(&e.payload)
                    .push_bind(serde_json::to_string(&e.tags).unwrap_or_else(|_| "[]".into()))
                    .push_bind(&e.ordering_key)
                    .push_bind(&e.idempotency_key)
                    .push_bind(e.fan_out_count as i64)
                    .push_bind(e.published_at_ms as i64)
                    .push_bind(&e.publisher_run_id)
                    .push_bind(&e.traceparent)
                    .push_bind(&e.tracestate);
            });
            qb.push(" ON CONFLICT (event_id) DO NOTHING");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn read(&self, q: &ArchiveQuery) -> Result<Vec<ArchivedEvent>> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT * FROM archived_events WHERE ");
        push_range(&mut qb, q);
        if let Some((ms, id)) = &q.after {
            qb.push(" AND (published_at_ms > ").push_bind(*ms as i64);
            qb.push(" OR (published_at_ms = ").push_bind(*ms as i64);
            qb.push(" AND event_id > ").push_bind(id);
            qb.push("))");
        }
        qb.push(" ORDER BY published_at_ms, event_id LIMIT ")
            .push_bind(q.limit.max(1) as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let tags: String = r.try_get("tags")?;
                Ok(ArchivedEvent {
                    event_id: r.try_get("event_id")?,
                    namespace: r.try_get("namespace")?,
                    event_name: r.try_get("event_name")?,
                    version: r.try_get::<i64, _>("version")? as u32,
                    payload: r.try_get("payload")?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    ordering_key: r.try_get("ordering_key")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    fan_out_count: r.try_get::<i64, _>("fan_out_count")? as u32,
                    published_at_ms: r.try_get::<i64, _>("published_at_ms")? as u64,
                    publisher_run_id: r.try_get("publisher_run_id")?,
                    traceparent: r.try_get("traceparent")?,
                    tracestate: r.try_get("tracestate")?,
                })
            })
            .collect()
    }

    async fn count(&self, q: &ArchiveQuery) -> Result<u64> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT COUNT(*) AS n FROM archived_events WHERE ");
        push_range(&mut qb, q);
        let n: i64 = qb.build().fetch_one(&self.pool).await?.try_get("n")?;
        Ok(n.max(0) as u64)
    }
}
