//! PostgreSQL, for production: a schema per deployment (created once
//! here), a main pool, and a relaxed pool whose sessions commit without
//! waiting for the WAL flush (claims and completions, see
//! [`SqlStore::begin_relaxed`]). Replicas hear each other through
//! `LISTEN/NOTIFY` on [`notify_channel`].

use super::dialect::Dialect;
use super::{SqlStore, pool_options};
use crate::error::redact_url as redact;
use crate::error::{Error, Result};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use std::time::Duration;

/// Connect to `url`, create `schema` if needed, and migrate it.
pub(super) async fn open(url: &str, schema: &str, max_connections: u32) -> Result<SqlStore> {
    let schema = schema.to_string();
    // Create the schema once, before the pool sets search_path.
    {
        let boot = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("postgres: cannot connect to {}: {e}", redact(url)))
            })?;
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&schema));
        if let Err(e) = boot.execute(sql.as_str()).await {
            // Two replicas racing here: the loser sees a unique violation.
            if !matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation()) {
                return Err(Error::Unavailable(format!(
                    "postgres: cannot create schema {schema}: {e}"
                )));
            }
        }
        boot.close().await;
    }
    let set_path = format!("SET search_path TO {}", quote_ident(&schema));
    let pool = |settings: &'static str| {
        pool_options(max_connections, format!("{set_path}{settings}")).connect(url)
    };
    let unavailable = |e: sqlx::Error| {
        Error::Unavailable(format!("postgres: cannot connect to {}: {e}", redact(url)))
    };
    let main = pool("").await.map_err(unavailable)?;
    let relaxed = pool("; SET synchronous_commit = off")
        .await
        .map_err(unavailable)?;
    let store = SqlStore {
        writer: main.clone(),
        reader: main,
        relaxed,
        dialect: Dialect::Postgres,
        channel: Some(notify_channel(&schema)),
        events: tokio::sync::broadcast::channel(4096).0,
        wal: None,
        dir_lock: Default::default(),
        checkpointer: Default::default(),
    };
    store.migrate().await?;
    Ok(store)
}

/// Quote an identifier for Postgres.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The `LISTEN/NOTIFY` channel of the replicas sharing `schema`.
pub fn notify_channel(schema: &str) -> String {
    let mut c = format!("fanout_{schema}");
    c.truncate(63);
    c
}
