//! ClickHouse archive (`fanout.events`), written by the archiver in batches.
//!
//! Works on ClickHouse 18.16 (Debian's package) and current releases: no
//! DateTime64 (times are UInt64 epoch ms), no JSON type (payload is String),
//! no server-side parameters (the crate binds `?` on the client), and the
//! crate's schema validation off (18.16 lacks `RowBinaryWithNamesAndTypes`).
//! A batch shipped twice is harmless: the table is a `ReplacingMergeTree`
//! keyed on the event id, and reads take one row per id (`LIMIT 1 BY`).

use super::{Archive, ArchiveQuery};
use crate::error::{Error, Result};
use crate::model::ArchivedEvent;
use async_trait::async_trait;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

/// One archived event as a ClickHouse row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ChEvent {
    event_id: String,
    namespace: String,
    event_name: String,
    version: u32,
    payload: String,
    tags: Vec<String>,
    ordering_key: String,
    idempotency_key: String,
    fan_out_count: u32,
    published_at_ms: u64,
    publisher_run_id: String,
    traceparent: String,
    tracestate: String,
}

const COLUMNS: &str = "event_id, namespace, event_name, version, payload, tags, ordering_key, \
    idempotency_key, fan_out_count, published_at_ms, publisher_run_id, traceparent, tracestate";

/// Columns added after the table's first release: `(name, type)`, added to
/// an existing table at start (18.16 has no `ADD COLUMN IF NOT EXISTS`).
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("traceparent", "String DEFAULT ''"),
    ("tracestate", "String DEFAULT ''"),
];

/// `WHERE namespace, [from, to) [, has(names, event_name)]`; bind with
/// [`bind_range`] in the same order.
fn where_range(q: &ArchiveQuery) -> String {
    let mut w = " WHERE namespace = ? AND published_at_ms >= ? AND published_at_ms < ?".to_string();
    if !q.events.is_empty() {
        w += " AND has(?, event_name)";
    }
    w
}

fn bind_range(query: clickhouse::query::Query, q: &ArchiveQuery) -> clickhouse::query::Query {
    let query = query.bind(&q.namespace).bind(q.from_ms).bind(q.to_ms);
    if q.events.is_empty() {
        query
    } else {
        query.bind(&q.events)
    }
}

/// The ClickHouse archive.
pub struct ClickhouseArchive {
    client: Client,
    table: String,
    /// The database and table exist. The engine may start while ClickHouse
    /// is down: until they are created, every call tries again (at most
    /// once a second) and answers UNAVAILABLE meanwhile — the archiver
    /// keeps the outbox and retries.
    ready: tokio::sync::Mutex<Readiness>,
    url: String,
    database: String,
}

struct Readiness {
    done: bool,
    last_try: Option<std::time::Instant>,
}

fn ch_err(what: &str) -> impl Fn(clickhouse::error::Error) -> Error + '_ {
    move |e| Error::Unavailable(format!("clickhouse: {what}: {e}"))
}

impl ClickhouseArchive {
    /// Connect and create the database and table if missing.
    pub async fn connect(
        url: &str,
        database: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self> {
        if !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || database.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "archive.database '{database}' is invalid: use letters, digits and '_'"
            )));
        }
        let mut client = Client::default()
            .with_url(url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        if let Some(u) = user {
            client = client.with_user(u);
        }
        if let Some(p) = password {
            client = client.with_password(p);
        }
        let archive = ClickhouseArchive {
            // Inserts quote the table name whole, so select the database on
            // the client and use the bare table name.
            client: client.clone().with_database(database),
            table: "events".into(),
            ready: tokio::sync::Mutex::new(Readiness {
                done: false,
                last_try: None,
            }),
            url: url.to_string(),
            database: database.to_string(),
        };
        if let Err(e) = archive.ensure_ready().await {
            tracing::warn!(error = %e, "clickhouse unreachable at start; events wait in the outbox until it returns");
        }
        Ok(archive)
    }

    /// Create the database and table once ClickHouse answers.
    async fn ensure_ready(&self) -> Result<()> {
        let mut r = self.ready.lock().await;
        if r.done {
            return Ok(());
        }
        if r.last_try
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
        {
            return Err(Error::Unavailable(format!(
                "clickhouse: {} is not reachable yet",
                crate::error::redact_url(&self.url)
            )));
        }
        r.last_try = Some(std::time::Instant::now());
        Self::create_schema(&self.client, &self.url, &self.database).await?;
        r.done = true;
        tracing::info!("clickhouse archive ready");
        Ok(())
    }

    async fn create_schema(client: &Client, url: &str, database: &str) -> Result<()> {
        client
            .clone()
            .with_database("default")
            .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
            .execute()
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "clickhouse: cannot reach {}: {e}",
                    crate::error::redact_url(url)
                ))
            })?;
        let table = "events";
        client
            .query(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    event_id String,
                    namespace String,
                    event_name String,
                    version UInt32,
                    payload String,
                    tags Array(String),
                    ordering_key String,
                    idempotency_key String,
                    fan_out_count UInt32,
                    published_at_ms UInt64,
                    publisher_run_id String,
                    traceparent String DEFAULT '',
                    tracestate String DEFAULT ''
                ) ENGINE = ReplacingMergeTree()
                PARTITION BY toYYYYMM(toDateTime(intDiv(published_at_ms, 1000)))
                ORDER BY (namespace, published_at_ms, event_id)"
            ))
            .execute()
            .await
            .map_err(ch_err("create table"))?;
        for (name, ty) in ADDED_COLUMNS {
            let present = client
                .query(
                    "SELECT count() FROM system.columns WHERE database = currentDatabase() \
                     AND table = ? AND name = ?",
                )
                .bind(table)
                .bind(*name)
                .fetch_one::<u64>()
                .await
                .map_err(ch_err("read columns"))?;
            if present == 0 {
                client
                    .query(&format!("ALTER TABLE {table} ADD COLUMN {name} {ty}"))
                    .execute()
                    .await
                    .map_err(ch_err("add column"))?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Archive for ClickhouseArchive {
    async fn write(&self, events: &[ArchivedEvent]) -> Result<()> {
        self.ensure_ready().await?;
        if events.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert::<ChEvent>(&self.table)
            .await
            .map_err(ch_err("insert"))?;
        for e in events {
            let row = ChEvent {
                event_id: e.event_id.clone(),
                namespace: e.namespace.clone(),
                event_name: e.event_name.clone(),
                version: e.version,
                payload: e.payload.clone(),
                tags: e.tags.clone(),
                ordering_key: e.ordering_key.clone(),
                idempotency_key: e.idempotency_key.clone(),
                fan_out_count: e.fan_out_count,
                published_at_ms: e.published_at_ms,
                publisher_run_id: e.publisher_run_id.clone(),
                traceparent: e.traceparent.clone(),
                tracestate: e.tracestate.clone(),
            };
            insert.write(&row).await.map_err(ch_err("insert"))?;
        }
        insert.end().await.map_err(ch_err("insert"))
    }

    async fn read(&self, q: &ArchiveQuery) -> Result<Vec<ArchivedEvent>> {
        self.ensure_ready().await?;
        let mut sql = format!("SELECT {COLUMNS} FROM {}{}", self.table, where_range(q));
        if q.after.is_some() {
            sql += " AND (published_at_ms > ? OR (published_at_ms = ? AND event_id > ?))";
        }
        sql += " ORDER BY published_at_ms, event_id LIMIT 1 BY event_id LIMIT ?";
        let mut query = bind_range(self.client.query(&sql), q);
        if let Some((ms, id)) = &q.after {
            query = query.bind(*ms).bind(*ms).bind(id);
        }
        let rows = query
            .bind(q.limit.max(1) as u64)
            .fetch_all::<ChEvent>()
            .await
            .map_err(ch_err("read"))?;
        Ok(rows
            .into_iter()
            .map(|r| ArchivedEvent {
                event_id: r.event_id,
                namespace: r.namespace,
                event_name: r.event_name,
                version: r.version,
                payload: r.payload,
                tags: r.tags,
                ordering_key: r.ordering_key,
                idempotency_key: r.idempotency_key,
                fan_out_count: r.fan_out_count,
                published_at_ms: r.published_at_ms,
                publisher_run_id: r.publisher_run_id,
                traceparent: r.traceparent,
                tracestate: r.tracestate,
            })
            .collect())
    }

    async fn count(&self, q: &ArchiveQuery) -> Result<u64> {
        self.ensure_ready().await?;
        let sql = format!(
            "SELECT uniqExact(event_id) FROM {}{}",
            self.table,
            where_range(q)
        );
        let query = bind_range(self.client.query(&sql), q);
        query.fetch_one::<u64>().await.map_err(ch_err("count"))
    }
}
