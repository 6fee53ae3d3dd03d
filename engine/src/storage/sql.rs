//! [`Store`] over SQLite and PostgreSQL with one body of SQL.
//!
//! Both backends go through sqlx's `Any` driver with runtime queries. The SQL
//! stays in the subset both accept (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, `WITH … UPDATE … FROM`, partial indexes); [`Dialect`] adds
//! the few differences: row locks with `SKIP LOCKED` on Postgres, and a
//! single writer connection on SQLite (which has one writer anyway, and would
//! otherwise answer SQLITE_BUSY). The conformance suite runs every test on
//! both. Why not `query!`: it checks against one database per crate.

mod checkpoint;
mod dirlock;
#[cfg(test)]
mod faults;
mod publish;
mod replay;
mod waitpoints;
mod walsync;

use super::Store;
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::model::*;
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Row-lock suffix for a claim subquery.
    fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }
    fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }
}

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
    wal: Option<std::sync::Arc<walsync::WalSync>>,
    /// SQLite: the data directory's lock (`dirlock`), released on close.
    dir_lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

/// `(version, description, sql)` per dialect, embedded at build time. The
/// schema is portable (`migrations/*.sql`, both dialects); Postgres adds its
/// storage tuning (`migrations/postgres/`).
macro_rules! migrations {
    ($(($v:literal, $name:literal, $file:literal)),* $(,)?) => {
        &[$(($v, $name, include_str!(concat!("../../../migrations/", $file)))),*]
    };
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!(
    (1, "init", "0001_init.sql"),
    (2, "delivery", "0002_delivery.sql"),
    (3, "waitpoints", "0003_waitpoints.sql"),
    (4, "replay", "0004_replay.sql"),
    (6, "outbox", "0006_outbox.sql"),
    (7, "children by event", "0007_children_by_event.sql"),
);
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!(
    (1, "init", "0001_init.sql"),
    (2, "delivery", "0002_delivery.sql"),
    (3, "waitpoints", "0003_waitpoints.sql"),
    (4, "replay", "0004_replay.sql"),
    (5, "queue tuning", "postgres/0005_queue_tuning.sql"),
    (6, "outbox", "0006_outbox.sql"),
    (7, "children by event", "0007_children_by_event.sql"),
);

fn migrator(dialect: Dialect) -> Migrator {
    let list = match dialect {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations = list
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
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

/// Quote an identifier for Postgres.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl SqlStore {
    /// Connect, apply migrations, and return a ready store. Errors name the
    /// backend and say what failed, in one line.
    pub async fn connect(cfg: &StoreConfig) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match cfg {
            StoreConfig::Sqlite { path } => {
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Unavailable(format!("sqlite: cannot create {}: {e}", dir.display()))
                    })?;
                }
                let dir_lock = dirlock::lock(path)?;
                let url = format!("sqlite://{}?mode=rwc", path.display());
                // WAL: readers never block the writer. NORMAL: commits
                // survive a process crash; a publish is synced after its
                // commit (`walsync`) so an acknowledged publish survives
                // power loss. Checkpoints: see `checkpoint`.
                let setup = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA wal_autocheckpoint = {};",
                    checkpoint::BACKSTOP_PAGES
                );
                let opts = |n: u32| pool_options(n, setup.clone()).min_connections(1);
                let writer = opts(1).connect(&url).await.map_err(|e| {
                    Error::Unavailable(format!("sqlite: cannot open {}: {e}", path.display()))
                })?;
                let reader = opts(4).connect(&url).await.map_err(|e| {
                    Error::Unavailable(format!("sqlite: cannot open {}: {e}", path.display()))
                })?;
                let store = SqlStore {
                    relaxed: writer.clone(),
                    writer,
                    reader,
                    dialect: Dialect::Sqlite,
                    channel: None,
                    events: tokio::sync::broadcast::channel(4096).0,
                    wal: Some(std::sync::Arc::new(walsync::WalSync::new(path))),
                    dir_lock: std::sync::Arc::new(std::sync::Mutex::new(Some(dir_lock))),
                };
                store.migrate().await?;
                store.requeue_orphans().await?;
                checkpoint::spawn(store.reader.clone());
                Ok(store)
            }
            StoreConfig::Postgres {
                url,
                schema,
                max_connections,
            } => {
                let schema = schema.clone();
                // Create the schema once, before the pool sets search_path.
                {
                    let boot = AnyPoolOptions::new()
                        .max_connections(1)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect(url)
                        .await
                        .map_err(|e| {
                            Error::Unavailable(format!(
                                "postgres: cannot connect to {}: {e}",
                                redact(url)
                            ))
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
                    pool_options(*max_connections, format!("{set_path}{settings}")).connect(url)
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
                };
                store.migrate().await?;
                Ok(store)
            }
        }
    }

    /// Apply pending migrations. On failure the pool is closed, so a held
    /// advisory lock cannot block the next migrator (see FACTS.md).
    pub async fn migrate(&self) -> Result<()> {
        if let Err(e) = migrator(self.dialect).run(&self.writer).await {
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
        self.writer.close().await;
        self.reader.close().await;
        self.relaxed.close().await;
        if let Ok(mut lock) = self.dir_lock.lock() {
            lock.take();
        }
    }
}

/// The `LISTEN/NOTIFY` channel of the replicas sharing `schema`.
pub fn notify_channel(schema: &str) -> String {
    let mut c = format!("fanout_{schema}");
    c.truncate(63);
    c
}

use crate::error::redact_url as redact;

impl Dialect {
    /// Placeholders for a statement whose parameters are *all* generated
    /// here and each used once, in text order: `$from…` on Postgres, plain
    /// `?` on SQLite. (sqlx resolves `$N` on SQLite through
    /// `sqlite3_bind_parameter_name`, a linear scan per parameter, which
    /// made 7,000-parameter inserts quadratic: 13% of CPU in a profile.)
    fn list(self, from: usize, n: usize) -> String {
        match self {
            Dialect::Postgres => params(from, n),
            Dialect::Sqlite => vec!["?"; n].join(", "),
        }
    }

    /// The first column of `n` rows bound `stride` parameters apart from
    /// `$1`, named again (for an `id IN (…)` beside a `VALUES` list):
    /// Postgres reuses the placeholders; on SQLite the caller binds the
    /// values again, after all the others ([`Dialect::rebinds`]).
    fn again(self, stride: usize, n: usize) -> String {
        match self {
            Dialect::Postgres => (0..n)
                .map(|i| format!("${}", i * stride + 1))
                .collect::<Vec<_>>()
                .join(", "),
            Dialect::Sqlite => self.list(0, n),
        }
    }

    /// Whether values named by [`Dialect::again`] must be bound again.
    fn rebinds(self) -> bool {
        self == Dialect::Sqlite
    }
}

/// `$from, $from+1, …` for `n` parameters.
fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row INSERT (keeps parameters well under both limits).
const CHUNK: usize = 400;

const DEF_SELECT: &str = "SELECT d.namespace, d.name, d.version, d.schema_json, d.description, d.created_at_ms, \
    o.dlq, o.rl_limit, o.rl_window_ms, o.rl_key FROM event_definitions d \
    LEFT JOIN event_options o ON o.namespace = d.namespace AND o.name = d.name";

fn def_from_row(r: &AnyRow) -> Result<EventDef> {
    let limit = r.try_get::<Option<i64>, _>("rl_limit")?.unwrap_or(0);
    Ok(EventDef {
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        version: r.try_get::<i64, _>("version")? as u32,
        schema_json: r.try_get("schema_json")?,
        description: r.try_get("description")?,
        created_at_ms: r.try_get("created_at_ms")?,
        options: EventOptions {
            dlq: r.try_get::<Option<i64>, _>("dlq")?.unwrap_or(1) != 0,
            rate_limit: (limit > 0)
                .then(|| -> Result<RateLimit> {
                    Ok(RateLimit {
                        limit: limit as u32,
                        window_ms: r.try_get::<Option<i64>, _>("rl_window_ms")?.unwrap_or(0) as u64,
                        key_field: r
                            .try_get::<Option<String>, _>("rl_key")?
                            .unwrap_or_default(),
                    })
                })
                .transpose()?,
        },
    })
}

fn sub_from_row(r: &AnyRow) -> Result<Subscription> {
    Ok(Subscription {
        namespace: r.try_get("namespace")?,
        task_id: r.try_get("task_id")?,
        event: r.try_get("event")?,
        filter_json: r.try_get("filter_json")?,
        consumer_group: r.try_get("consumer_group")?,
        retry: RetryPolicy {
            max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
            initial_backoff_ms: r.try_get::<i64, _>("initial_backoff_ms")? as u64,
            max_backoff_ms: r.try_get::<i64, _>("max_backoff_ms")? as u64,
            multiplier: r.try_get("backoff_multiplier")?,
        },
        lease_ms: r.try_get::<i64, _>("lease_ms")? as u64,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// Put running runs back in the queue without charging their attempt
/// (`$1` = now); callers add which runs (`AND …`). A late result from the
/// attempt is refused as stale: its worker id no longer matches.
const REQUEUE_UNCHARGED: &str = "UPDATE runs SET status = 'queued', attempts = attempts - 1, \
    lease_expires_at_ms = 0, worker_id = '', available_at_ms = $1, updated_at_ms = $1 \
    WHERE status = 'running'";

const RUN_COLUMNS: &str = "id, namespace, event_id, event, task_id, status, attempts, max_attempts, \
    created_at_ms, updated_at_ms, available_at_ms, output_json, last_error, worker_id, ordering_key, consumer_group, dlq, replay_of, \
    waitpoint_id, started_at_ms, lease_expires_at_ms";

fn run_from_row(r: &AnyRow) -> Result<Run> {
    let status: String = r.try_get("status")?;
    Ok(Run {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        event_id: r.try_get("event_id")?,
        event: r.try_get("event")?,
        task_id: r.try_get("task_id")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| Error::Internal(format!("unknown run status '{status}' in store")))?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        available_at_ms: r.try_get("available_at_ms")?,
        output_json: r.try_get("output_json")?,
        last_error: r.try_get("last_error")?,
        worker_id: r.try_get("worker_id")?,
        ordering_key: r.try_get("ordering_key")?,
        consumer_group: r.try_get("consumer_group")?,
        dlq: DlqState::from_code(r.try_get("dlq")?),
        replay_of: r.try_get("replay_of")?,
        waitpoint_id: r.try_get("waitpoint_id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        lease_expires_at_ms: r.try_get("lease_expires_at_ms")?,
    })
}

fn tags_from_json(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// A running run being failed: what the retry decision needs.
struct Failing {
    id: String,
    attempts: u32,
    worker_id: String,
    started_at_ms: i64,
    retry: RetryPolicy,
    /// The waitpoint this run is a child of ("" if none).
    waitpoint_id: String,
}

const FAILING_COLUMNS: &str = "id, attempts, worker_id, started_at_ms, max_attempts, initial_backoff_ms, max_backoff_ms, backoff_multiplier, waitpoint_id";

fn failing_from_row(r: &AnyRow) -> Result<Failing> {
    Ok(Failing {
        id: r.try_get("id")?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        worker_id: r.try_get("worker_id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        retry: RetryPolicy {
            max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
            initial_backoff_ms: r.try_get::<i64, _>("initial_backoff_ms")? as u64,
            max_backoff_ms: r.try_get::<i64, _>("max_backoff_ms")? as u64,
            multiplier: r.try_get("backoff_multiplier")?,
        },
        waitpoint_id: r.try_get("waitpoint_id")?,
    })
}

/// Record a failed attempt and move the run to `retrying` or `dead`.
async fn fail_run(
    tx: &mut Transaction<'static, Any>,
    f: &Failing,
    message: &str,
    fatal: bool,
    now: i64,
) -> Result<CompletionEffect> {
    let exhausted = f.attempts >= f.retry.max_attempts;
    let (status, at, effect) = if fatal || exhausted {
        (RunStatus::Dead, now, CompletionEffect::Dead)
    } else {
        let at = now + f.retry.backoff(f.attempts).as_millis() as i64;
        (
            RunStatus::Retrying,
            at,
            CompletionEffect::Retrying { at_ms: at },
        )
    };
    sqlx::query(
        "UPDATE runs SET status = $1, available_at_ms = $2, last_error = $3, updated_at_ms = $4, \
         lease_expires_at_ms = 0, dlq = CASE WHEN $1 = 'dead' THEN dlq_enabled ELSE 0 END WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(at)
    .bind(message)
    .bind(now)
    .bind(&f.id)
    .execute(&mut **tx)
    .await?;
    insert_attempt(
        tx,
        &f.id,
        f.attempts,
        &f.worker_id,
        f.started_at_ms,
        now,
        false,
        "",
        message,
    )
    .await?;
    Ok(effect)
}

#[allow(clippy::too_many_arguments)]
async fn insert_attempt(
    tx: &mut Transaction<'static, Any>,
    run_id: &str,
    attempt: u32,
    worker_id: &str,
    started: i64,
    finished: i64,
    ok: bool,
    output: &str,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_attempts (run_id, attempt, worker_id, started_at_ms, finished_at_ms, ok, output_json, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, attempt) DO NOTHING",
    )
    .bind(run_id)
    .bind(attempt as i64)
    .bind(worker_id)
    .bind(started)
    .bind(finished)
    .bind(ok as i64)
    .bind(output)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqlStore {
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

    /// Runs of a namespace matching `query` plus `extra` (a fixed SQL
    /// condition), newest first: `list_runs` and `list_dead_letters`.
    async fn select_runs(
        &self,
        namespace: &str,
        query: &RunQuery,
        extra: &str,
    ) -> Result<Vec<Run>> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE namespace = $1{extra}");
        let mut args: Vec<&str> = Vec::new();
        let status = query.status.map(RunStatus::as_str);
        for (col, v, op) in [
            ("event", query.event.as_deref(), "="),
            ("task_id", query.task.as_deref(), "="),
            ("status", status, "="),
            ("id", query.before.as_deref(), "<"),
        ] {
            if let Some(v) = v {
                args.push(v);
                sql += &format!(" AND {col} {op} ${}", args.len() + 1);
            }
        }
        let limit = if query.limit == 0 {
            100
        } else {
            query.limit.min(10_000)
        };
        sql += &format!(" ORDER BY id DESC LIMIT {limit}");
        let mut q = sqlx::query(&sql).bind(namespace);
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.reader)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    /// Tell other replicas (Postgres only), delivered at commit.
    async fn notify(&self, tx: &mut Transaction<'static, Any>, message: &str) -> Result<()> {
        self.notify_all(tx, &[message.to_string()]).await
    }

    /// Several notifications in one statement (Postgres; nothing on SQLite),
    /// delivered at commit.
    async fn notify_all(
        &self,
        tx: &mut Transaction<'static, Any>,
        messages: &[String],
    ) -> Result<()> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        if messages.is_empty() {
            return Ok(());
        }
        let calls = (0..messages.len())
            .map(|i| format!("pg_notify($1, ${})", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {calls}");
        let mut q = sqlx::query(&sql).bind(channel);
        for m in messages {
            q = q.bind(m);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Announce the earliest retry among `effects`.
    async fn notify_due(
        &self,
        tx: &mut Transaction<'static, Any>,
        effects: &[CompletionEffect],
    ) -> Result<()> {
        let due = effects
            .iter()
            .filter_map(|e| match e {
                CompletionEffect::Retrying { at_ms } => Some(*at_ms),
                _ => None,
            })
            .min();
        match due {
            Some(at) => self.notify(tx, &format!("due:{at}")).await,
            None => Ok(()),
        }
    }

    /// Apply `set` to the selected dead letters, 500 per transaction, until
    /// none is left: no cap on how many one call moves.
    async fn dead_letter_batches(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        set: &str,
        now: i64,
    ) -> Result<u64> {
        let mut total = 0u64;
        if !sel.all {
            for chunk in sel.ids.chunks(CHUNK) {
                let sql = format!(
                    "UPDATE runs SET {set} WHERE namespace = $2 AND dlq = 1 AND id IN ({})",
                    params(3, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(now).bind(namespace);
                for id in chunk {
                    q = q.bind(id);
                }
                total += q.execute(&self.writer).await?.rows_affected();
            }
        } else {
            let mut filter = String::new();
            let mut args: Vec<&str> = Vec::new();
            for (col, v) in [("event", &sel.event), ("task_id", &sel.task)] {
                if let Some(v) = v {
                    args.push(v);
                    filter += &format!(" AND {col} = ${}", args.len() + 2);
                }
            }
            loop {
                let sql = format!(
                    "UPDATE runs SET {set} WHERE id IN (SELECT id FROM runs WHERE namespace = $2 AND dlq = 1{filter} \
                     ORDER BY id LIMIT 500{})",
                    self.dialect.skip_locked()
                );
                let mut q = sqlx::query(&sql).bind(now).bind(namespace);
                for a in &args {
                    q = q.bind(*a);
                }
                let n = q.execute(&self.writer).await?.rows_affected();
                total += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// The body of `publish`, inside a caller's transaction (replays reuse
    /// it). Returns the answers and the waitpoints finished on the spot.
    async fn publish_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        events: &[NewEvent],
        idempotency_window_ms: i64,
        now: i64,
    ) -> Result<(Vec<Published>, Vec<String>)> {
        let mut out: Vec<Published> = Vec::with_capacity(events.len());
        let mut fresh: Vec<&NewEvent> = Vec::with_capacity(events.len());
        // Index in `out` of each fresh event.
        let mut fresh_at: Vec<usize> = Vec::with_capacity(events.len());
        // Keys claimed earlier in this same batch.
        let mut batch_keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for ev in events {
            if !ev.idempotency_key.is_empty() {
                let k = (
                    ev.namespace.as_str(),
                    ev.name.as_str(),
                    ev.idempotency_key.as_str(),
                );
                if let Some(&i) = batch_keys.get(&k) {
                    let mut p = out[i].clone();
                    p.deduplicated = true;
                    out.push(p);
                    continue;
                }
                // Take the key, or take it over if it expired; the unique key
                // decides between concurrent publishers.
                let won = sqlx::query(
                    "INSERT INTO idempotency_keys (namespace, event, key, event_id, expires_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, event, key) DO UPDATE \
                     SET event_id = excluded.event_id, expires_at_ms = excluded.expires_at_ms \
                     WHERE idempotency_keys.expires_at_ms < $6 RETURNING event_id",
                )
                .bind(&ev.namespace)
                .bind(&ev.name)
                .bind(&ev.idempotency_key)
                .bind(&ev.id)
                .bind(now + idempotency_window_ms)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                if won.is_none() {
                    let existing: String = sqlx::query(
                        "SELECT event_id FROM idempotency_keys WHERE namespace = $1 AND event = $2 AND key = $3",
                    )
                    .bind(&ev.namespace)
                    .bind(&ev.name)
                    .bind(&ev.idempotency_key)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("event_id")?;
                    out.push(Self::existing_publish(tx, &existing).await?);
                    continue;
                }
                batch_keys.insert(k, out.len());
            }
            out.push(publish::published(ev));
            fresh_at.push(out.len() - 1);
            fresh.push(ev);
        }

        self.insert_published(tx, &fresh, now).await?;
        let plain: Vec<&NewEvent> = fresh
            .iter()
            .copied()
            .filter(|ev| publish::plain_waitpoint(ev))
            .collect();
        self.insert_plain_waitpoints(tx, &plain, now).await?;
        let mut finished = Vec::new();
        for (ev, at) in fresh.iter().zip(&fresh_at) {
            if publish::plain_waitpoint(ev) {
                continue;
            }
            if let Some(wp) = &ev.waitpoint {
                let (suspended, done) = self.insert_runs_waitpoint(tx, ev, wp, now).await?;
                out[*at].suspended = suspended;
                if done {
                    finished.push(wp.id.clone());
                }
            }
        }
        self.notify_all(tx, &publish::runs_messages(&fresh)).await?;
        Ok((out, finished))
    }

    /// Fail every running run matching `cond` (with `$1` = now, `$2` = arg).
    async fn fail_running_where(
        &self,
        cond: &str,
        arg: &str,
        message: &str,
        now: i64,
    ) -> Result<Vec<CompletionEffect>> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT {FAILING_COLUMNS} FROM runs WHERE status = 'running' AND {cond} LIMIT 1000{}",
            self.dialect.skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(arg)
            .fetch_all(&mut *tx)
            .await?;
        let mut effects = Vec::with_capacity(rows.len());
        let mut children = waitpoints::Children::default();
        for r in &rows {
            let f = failing_from_row(r)?;
            let effect = fail_run(&mut tx, &f, message, false, now).await?;
            if effect == CompletionEffect::Dead {
                children.add(&f.waitpoint_id);
            }
            effects.push(effect);
        }
        self.notify_due(&mut tx, &effects).await?;
        let finished = self.finish_children(&mut tx, &children, now).await?;
        tx.commit().await?;
        self.announce_children(children, finished);
        Ok(effects)
    }

    async fn existing_publish(
        tx: &mut Transaction<'static, Any>,
        event_id: &str,
    ) -> Result<Published> {
        let ev = sqlx::query("SELECT version FROM events WHERE id = $1")
            .bind(event_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| {
                Error::Internal(format!(
                    "idempotency key points at missing event {event_id}"
                ))
            })?;
        let runs = sqlx::query(
            "SELECT id, task_id, consumer_group FROM runs WHERE event_id = $1 ORDER BY id",
        )
        .bind(event_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("task_id")?,
                r.try_get("consumer_group")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        let waitpoint_id = sqlx::query("SELECT id FROM waitpoints WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<String, _>("id"))
            .transpose()?
            .unwrap_or_default();
        Ok(Published {
            waitpoint_id,
            suspended: false,
            event_id: event_id.to_string(),
            version: ev.try_get::<i64, _>("version")? as u32,
            runs,
            deduplicated: true,
        })
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn define_event(
        &self,
        namespace: &str,
        name: &str,
        schema_json: &str,
        schema_canonical: &str,
        description: &str,
        options: &EventOptions,
    ) -> Result<(EventDef, bool)> {
        // Two definers racing on the same version: the loser retries against
        // the winner's row.
        for _ in 0..3 {
            let mut tx = self.begin_write().await?;
            let now = now_ms();
            let rl = options.rate_limit.clone().unwrap_or(RateLimit {
                limit: 0,
                window_ms: 0,
                key_field: String::new(),
            });
            sqlx::query(
                "INSERT INTO event_options (namespace, name, dlq, rl_limit, rl_window_ms, rl_key, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (namespace, name) DO UPDATE SET dlq = excluded.dlq, \
                 rl_limit = excluded.rl_limit, rl_window_ms = excluded.rl_window_ms, rl_key = excluded.rl_key, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(namespace)
            .bind(name)
            .bind(options.dlq as i64)
            .bind(rl.limit as i64)
            .bind(rl.window_ms as i64)
            .bind(&rl.key_field)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let latest = sqlx::query(&format!(
                "SELECT version, schema_canonical FROM event_definitions WHERE namespace = $1 AND name = $2 \
                 ORDER BY version DESC LIMIT 1{}",
                self.dialect.for_update()
            ))
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let (version, created) = match &latest {
                Some(r) if r.try_get::<String, _>("schema_canonical")? == schema_canonical => {
                    (r.try_get::<i64, _>("version")?, false)
                }
                Some(r) => (r.try_get::<i64, _>("version")? + 1, true),
                None => (1, true),
            };
            if created {
                let res = sqlx::query(
                    "INSERT INTO event_definitions (namespace, name, version, schema_json, schema_canonical, description, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(namespace)
                .bind(name)
                .bind(version)
                .bind(schema_json)
                .bind(schema_canonical)
                .bind(description)
                .bind(now)
                .execute(&mut *tx)
                .await;
                match res {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.notify(&mut tx, &format!("events:{namespace}")).await?;
            tx.commit().await?;
            let def = self
                .get_event(namespace, name, Some(version as u32))
                .await?
                .ok_or_else(|| {
                    Error::Internal(format!("event '{name}' v{version} vanished after define"))
                })?;
            return Ok((def, created));
        }
        Err(Error::Unavailable(format!(
            "event '{name}' is being redefined concurrently; try again"
        )))
    }

    async fn get_event(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDef>> {
        let row = match version {
            Some(v) => sqlx::query(&format!(
                "{DEF_SELECT} WHERE d.namespace = $1 AND d.name = $2 AND d.version = $3"
            ))
            .bind(namespace)
            .bind(name)
            .bind(v as i64)
            .fetch_optional(&self.reader)
            .await?,
            None => sqlx::query(&format!(
                "{DEF_SELECT} WHERE d.namespace = $1 AND d.name = $2 ORDER BY d.version DESC LIMIT 1"
            ))
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?,
        };
        row.as_ref().map(def_from_row).transpose()
    }

    async fn list_events(&self, namespace: &str) -> Result<Vec<EventDef>> {
        let rows = sqlx::query(&format!(
            "{DEF_SELECT} WHERE d.namespace = $1 AND d.version = \
             (SELECT MAX(version) FROM event_definitions x WHERE x.namespace = d.namespace AND x.name = d.name) \
             ORDER BY d.name"
        ))
        .bind(namespace)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(def_from_row).collect()
    }

    async fn upsert_subscriptions(&self, subs: &[Subscription]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for s in subs {
            sqlx::query(
                "INSERT INTO subscriptions (namespace, task_id, event, filter_json, consumer_group, max_attempts, \
                 initial_backoff_ms, max_backoff_ms, backoff_multiplier, lease_ms, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 ON CONFLICT (namespace, task_id) DO UPDATE SET event = excluded.event, \
                 filter_json = excluded.filter_json, consumer_group = excluded.consumer_group, \
                 max_attempts = excluded.max_attempts, initial_backoff_ms = excluded.initial_backoff_ms, \
                 max_backoff_ms = excluded.max_backoff_ms, backoff_multiplier = excluded.backoff_multiplier, \
                 lease_ms = excluded.lease_ms, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(&s.namespace)
            .bind(&s.task_id)
            .bind(&s.event)
            .bind(&s.filter_json)
            .bind(&s.consumer_group)
            .bind(s.retry.max_attempts as i64)
            .bind(s.retry.initial_backoff_ms as i64)
            .bind(s.retry.max_backoff_ms as i64)
            .bind(s.retry.multiplier)
            .bind(s.lease_ms as i64)
            .bind(s.updated_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        let mut namespaces: Vec<&str> = subs.iter().map(|s| s.namespace.as_str()).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        for ns in namespaces {
            self.notify(&mut tx, &format!("subs:{ns}")).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_subscriptions(&self, namespace: Option<&str>) -> Result<Vec<Subscription>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query("SELECT * FROM subscriptions WHERE namespace = $1 ORDER BY task_id")
                    .bind(ns)
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM subscriptions ORDER BY namespace, task_id")
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(sub_from_row).collect()
    }

    async fn publish(
        &self,
        events: &[NewEvent],
        idempotency_window_ms: i64,
    ) -> Result<Vec<Published>> {
        retry_conflicts(|| self.publish_once(events, idempotency_window_ms)).await
    }

    async fn claim(
        &self,
        namespace: &str,
        task_ids: &[String],
        worker_id: &str,
        limit: u32,
        now: i64,
    ) -> Result<Vec<ClaimedRun>> {
        retry_conflicts(|| self.claim_once(namespace, task_ids, worker_id, limit, now)).await
    }

    async fn complete(
        &self,
        completions: &[Completion],
        now: i64,
    ) -> Result<Vec<CompletionEffect>> {
        retry_conflicts(|| self.complete_once(completions, now)).await
    }

    async fn heartbeat(&self, worker_id: &str, run_ids: &[String], now: i64) -> Result<u64> {
        // A fixed lock order: heartbeats then never deadlock each other.
        let mut ids = run_ids.to_vec();
        ids.sort_unstable();
        retry_conflicts(|| self.heartbeat_once(worker_id, &ids, now)).await
    }

    async fn requeue_leases_of(&self, worker_prefix: &str, now: i64) -> Result<u64> {
        let n = sqlx::query(&format!(
            "{REQUEUE_UNCHARGED} AND substr(worker_id, 1, CAST($2 AS INTEGER)) = $3"
        ))
        .bind(now)
        .bind(worker_prefix.chars().count() as i64)
        .bind(worker_prefix)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if n > 0 {
            tracing::info!(
                runs = n,
                "requeued runs that were running when the engine stopped"
            );
            self.announce_requeued().await?;
        }
        Ok(n)
    }

    async fn give_back(&self, worker_id: &str, run_ids: &[String], now: i64) -> Result<u64> {
        let mut ids = run_ids.to_vec();
        ids.sort_unstable();
        retry_conflicts(|| self.give_back_once(worker_id, &ids, now)).await
    }

    async fn release_worker(&self, worker_id: &str, now: i64) -> Result<u64> {
        let effects = self
            .fail_running_where(
                "$1 >= 0 AND worker_id = $2",
                worker_id,
                "worker disconnected during the attempt",
                now,
            )
            .await?;
        Ok(effects.len() as u64)
    }

    async fn reap_expired(&self, now: i64) -> Result<Vec<CompletionEffect>> {
        self.fail_running_where(
            "lease_expires_at_ms < $1 AND $2 = ''",
            "",
            "lease expired: no result or heartbeat from the worker in time",
            now,
        )
        .await
    }

    async fn next_due(&self, namespace: &str, task_ids: &[String]) -> Result<Option<i64>> {
        if task_ids.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT MIN(available_at_ms) AS at FROM runs WHERE namespace = $1 AND status IN ('queued', 'retrying') \
             AND task_id IN ({})",
            params(2, task_ids.len())
        );
        let mut q = sqlx::query(&sql).bind(namespace);
        for t in task_ids {
            q = q.bind(t);
        }
        let row = q.fetch_one(&self.reader).await?;
        Ok(row.try_get::<Option<i64>, _>("at")?)
    }

    async fn list_runs(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>> {
        self.select_runs(namespace, query, "").await
    }

    async fn get_run(&self, namespace: &str, id: &str) -> Result<Option<RunDetail>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE namespace = $1 AND id = $2"
        ))
        .bind(namespace)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        let run = run_from_row(&row)?;
        let mut attempts =
            sqlx::query("SELECT * FROM run_attempts WHERE run_id = $1 ORDER BY attempt")
                .bind(id)
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| {
                    Ok(Attempt {
                        attempt: r.try_get::<i64, _>("attempt")? as u32,
                        worker_id: r.try_get("worker_id")?,
                        started_at_ms: r.try_get("started_at_ms")?,
                        finished_at_ms: r.try_get("finished_at_ms")?,
                        ok: r.try_get::<i64, _>("ok")? != 0,
                        output_json: r.try_get("output_json")?,
                        error: r.try_get("error")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        // A completion records its successful attempt on the run only.
        if run.status == RunStatus::Completed
            && attempts.last().is_none_or(|a| a.attempt < run.attempts)
        {
            attempts.push(Attempt {
                attempt: run.attempts,
                worker_id: run.worker_id.clone(),
                started_at_ms: row.try_get("started_at_ms")?,
                finished_at_ms: run.updated_at_ms,
                ok: true,
                output_json: run.output_json.clone(),
                error: String::new(),
            });
        }
        let event = sqlx::query("SELECT payload, tags, publisher_run_id FROM events WHERE id = $1")
            .bind(&run.event_id)
            .fetch_optional(&self.reader)
            .await?;
        let (payload_json, tags, publisher_run_id) = match event {
            Some(e) => (
                e.try_get("payload")?,
                tags_from_json(&e.try_get::<String, _>("tags")?),
                e.try_get("publisher_run_id")?,
            ),
            None => Default::default(),
        };
        Ok(Some(RunDetail {
            run,
            attempts,
            payload_json,
            tags,
            publisher_run_id,
        }))
    }

    async fn list_dead_letters(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>> {
        self.select_runs(namespace, query, " AND dlq = 1").await
    }

    async fn retry_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now: i64,
    ) -> Result<u64> {
        self.dead_letter_batches(
            namespace,
            sel,
            "status = 'queued', dlq = 0, max_attempts = attempts + attempt_budget, available_at_ms = $1, \
             updated_at_ms = $1, worker_id = ''",
            now,
        )
        .await
    }

    async fn discard_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now: i64,
    ) -> Result<u64> {
        self.dead_letter_batches(namespace, sel, "dlq = 2, updated_at_ms = $1", now)
            .await
    }

    async fn get_waitpoint(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<(Waitpoint, Vec<ChildResult>)>> {
        self.get_waitpoint_impl(namespace, id).await
    }

    async fn create_waitpoint(&self, wp: &NewWaitpoint, now: i64) -> Result<Waitpoint> {
        self.create_waitpoint_impl(wp, now).await
    }

    async fn complete_token(
        &self,
        namespace: &str,
        id: &str,
        data_json: &str,
        now: i64,
    ) -> Result<Waitpoint> {
        self.complete_token_impl(namespace, id, data_json, now)
            .await
    }

    async fn expire_waitpoints(&self, now: i64) -> Result<Vec<String>> {
        self.expire_waitpoints_impl(now).await
    }

    async fn record_step(
        &self,
        namespace: &str,
        step: &ParentRef,
        value_json: &str,
        now: i64,
    ) -> Result<String> {
        self.record_step_impl(namespace, step, value_json, now)
            .await
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn create_replay(&self, job: &ReplayJob) -> Result<()> {
        self.create_replay_impl(job).await
    }

    async fn get_replay(&self, namespace: &str, id: &str) -> Result<Option<ReplayJob>> {
        self.get_replay_impl(namespace, id).await
    }

    async fn cancel_replay(
        &self,
        namespace: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<ReplayJob>> {
        self.cancel_replay_impl(namespace, id, now).await
    }

    async fn lease_replay(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ReplayJob>> {
        self.lease_replay_impl(owner, now, lease_ms).await
    }

    async fn replay_page(
        &self,
        job: &ReplayJob,
        owner: &str,
        events: &[NewEvent],
        now: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        self.replay_page_impl(job, owner, events, now, lease_ms)
            .await
    }

    async fn close(&self) {
        SqlStore::close(self).await;
    }

    async fn release_replays(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE replays SET lease_until_ms = 0 WHERE owner = $1 AND status = 'running'",
        )
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn replayed_pairs(&self, original_ids: &[String]) -> Result<Vec<(String, String)>> {
        self.replayed_pairs_impl(original_ids).await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<ArchivedEvent>> {
        // Ids first, then their events by primary key. As one join,
        // Postgres merge-joined the outbox with *all* of `events` in id
        // order (or hash-joined a seq scan of it): 2.2 ms per call with
        // 10k events, 10 % of the database's time in a scatter-gather run.
        let ids: Vec<String> =
            sqlx::query("SELECT event_id FROM archive_outbox ORDER BY event_id LIMIT $1")
                .bind(limit as i64)
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| r.try_get("event_id"))
                .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, namespace, name, version, payload, tags, ordering_key, idempotency_key, \
                 fan_out_count, published_at_ms, publisher_run_id FROM events WHERE id IN ({}) ORDER BY id",
                self.dialect.list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.reader).await? {
                let tags: String = r.try_get("tags")?;
                out.push(ArchivedEvent {
                    event_id: r.try_get("id")?,
                    namespace: r.try_get("namespace")?,
                    event_name: r.try_get("name")?,
                    version: r.try_get::<i64, _>("version")? as u32,
                    payload: r.try_get("payload")?,
                    tags: tags_from_json(&tags),
                    ordering_key: r.try_get("ordering_key")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    fan_out_count: r.try_get::<i64, _>("fan_out_count")? as u32,
                    published_at_ms: r.try_get::<i64, _>("published_at_ms")? as u64,
                    publisher_run_id: r.try_get("publisher_run_id")?,
                });
            }
        }
        Ok(out)
    }

    async fn mark_archived(&self, event_ids: &[String]) -> Result<()> {
        for chunk in event_ids.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM archive_outbox WHERE event_id IN ({})",
                self.dialect.list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn unarchived_before(&self, namespace: &str, before_ms: i64) -> Result<bool> {
        // The outbox holds only unshipped events: a short join by key.
        let row = sqlx::query(
            "SELECT 1 AS one FROM archive_outbox JOIN events ON events.id = archive_outbox.event_id \
             WHERE events.namespace = $1 AND events.published_at_ms < $2 LIMIT 1",
        )
        .bind(namespace)
        .bind(before_ms)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.is_some())
    }
}

/// Tasks per claim statement: one `UNION ALL` branch each (SQLite allows
/// 500 compound terms; a worker with more tasks claims in several
/// statements inside the same transaction).
const CLAIM_TASKS_PER_STATEMENT: usize = 32;

/// `(runs.status = 'running') IS TRUE`, not `runs.status = 'running'`: the
/// plain form matches the partial index `runs_lease`, and the planner then
/// bitmap-scans every running row (and the index's dead entries) to update
/// a few runs by id. Measured on Postgres: 0.13 ms → 0.05 ms for one run,
/// 6.4 ms → 2 ms of row lookup for 600. Pair it with an `id IN (…)` list so
/// the primary key is the only way in. `status` is `NOT NULL`, so this is
/// the same condition.
const RUNNING: &str = "(runs.status = 'running') IS TRUE";

impl SqlStore {
    /// The claim statement for `n` tasks (`$5…`): one branch per task, each
    /// an index range scan of `runs_claim` in due order that stops after
    /// `$4` rows, under an outer `LIMIT $4` that stops the `UNION ALL`
    /// lazily, so later tasks are read only when earlier ones run short.
    /// (One `task_id IN (…)` scan had to read and sort the whole backlog on
    /// every claim: 6.3 ms per claim on Postgres with a few thousand queued
    /// runs, the engine's largest single cost.) Callers rotate the task
    /// order between claims so no task waits behind another's backlog.
    fn claim_sql(&self, n: usize) -> String {
        let lock = self.dialect.skip_locked();
        let branches = (0..n)
            .map(|i| {
                format!(
                    "SELECT id FROM (SELECT r.id FROM runs r WHERE r.namespace = $3 AND r.task_id = ${} \
                     AND r.status IN ('queued', 'retrying') AND r.available_at_ms <= $2 \
                     AND (r.ordering_key = '' OR NOT EXISTS (SELECT 1 FROM runs p WHERE p.namespace = r.namespace \
                          AND p.task_id = r.task_id AND p.ordering_key = r.ordering_key AND p.ordering_key <> '' \
                          AND p.status IN ('queued', 'running', 'retrying') AND p.id < r.id)) \
                     ORDER BY r.available_at_ms, r.id LIMIT $4{lock}) t{i}",
                    i + 5
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let update = format!(
            "UPDATE runs SET status = 'running', attempts = attempts + 1, worker_id = $1, \
             lease_expires_at_ms = $2 + lease_ms, started_at_ms = $2, updated_at_ms = $2 \
             WHERE id IN (SELECT id FROM ({branches}) due LIMIT $4)"
        );
        // The event's payload comes back with each run. Postgres joins it
        // once per run; SQLite cannot put an UPDATE in a CTE but takes
        // scalar subqueries in RETURNING (three cheap lookups in-process).
        match self.dialect {
            Dialect::Postgres => format!(
                "WITH c AS ({update} RETURNING id, attempts, task_id, event, event_id, lease_ms, ordering_key) \
                 SELECT c.*, COALESCE(e.payload, '') AS payload, COALESCE(e.tags, '[]') AS tags, \
                 COALESCE(e.published_at_ms, 0) AS published_at_ms FROM c LEFT JOIN events e ON e.id = c.event_id"
            ),
            Dialect::Sqlite => format!(
                "{update} RETURNING id, attempts, task_id, event, event_id, lease_ms, ordering_key, \
                 COALESCE((SELECT e.payload FROM events e WHERE e.id = runs.event_id), '') AS payload, \
                 COALESCE((SELECT e.tags FROM events e WHERE e.id = runs.event_id), '[]') AS tags, \
                 COALESCE((SELECT e.published_at_ms FROM events e WHERE e.id = runs.event_id), 0) AS published_at_ms"
            ),
        }
    }
}

/// Bind a claim statement built by `claim_sql` for `tasks`.
fn claim_query<'q>(
    sql: &'q str,
    namespace: &'q str,
    tasks: &'q [String],
    worker_id: &'q str,
    limit: u32,
    now: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql)
        .bind(worker_id)
        .bind(now)
        .bind(namespace)
        .bind(i64::from(limit));
    for t in tasks {
        q = q.bind(t.as_str());
    }
    q
}

/// A claimed run as the claim's `RETURNING` gives it, its event's payload
/// included; the journal is filled in by the caller.
fn claimed_from_row(r: &AnyRow) -> Result<ClaimedRun> {
    Ok(ClaimedRun {
        run_id: r.try_get("id")?,
        attempt: r.try_get::<i64, _>("attempts")? as u32,
        task_id: r.try_get("task_id")?,
        event: r.try_get("event")?,
        event_id: r.try_get("event_id")?,
        payload_json: r.try_get("payload")?,
        lease_ms: r.try_get::<i64, _>("lease_ms")? as u64,
        ordering_key: r.try_get("ordering_key")?,
        tags: tags_from_json(&r.try_get::<String, _>("tags")?),
        published_at_ms: r.try_get("published_at_ms")?,
        journal: Vec::new(),
    })
}

/// The bodies behind `Store::{publish, claim, complete, heartbeat}`, run by
/// [`retry_conflicts`].
impl SqlStore {
    async fn publish_once(
        &self,
        events: &[NewEvent],
        idempotency_window_ms: i64,
    ) -> Result<Vec<Published>> {
        let now = now_ms();
        if self.single_statement(events) {
            return self.publish_single_statement(events, now).await;
        }
        let mut tx = self.begin_write().await?;
        let (out, finished) = self
            .publish_in_tx(&mut tx, events, idempotency_window_ms, now)
            .await?;
        tx.commit().await?;
        self.durable().await?;
        self.announce(finished);
        Ok(out)
    }

    async fn claim_once(
        &self,
        namespace: &str,
        task_ids: &[String],
        worker_id: &str,
        limit: u32,
        now: i64,
    ) -> Result<Vec<ClaimedRun>> {
        if task_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut claimed = if task_ids.len() <= CLAIM_TASKS_PER_STATEMENT {
            // One statement is its own transaction: one round trip (on
            // Postgres through the relaxed pool, see `begin_relaxed`).
            let sql = self.claim_sql(task_ids.len());
            claim_query(&sql, namespace, task_ids, worker_id, limit, now)
                .fetch_all(&self.relaxed)
                .await?
                .iter()
                .map(claimed_from_row)
                .collect::<Result<Vec<_>>>()?
        } else {
            let mut tx = self.begin_relaxed("").await?;
            let mut claimed = Vec::new();
            for tasks in task_ids.chunks(CLAIM_TASKS_PER_STATEMENT) {
                let want = limit as usize - claimed.len();
                if want == 0 {
                    break;
                }
                let sql = self.claim_sql(tasks.len());
                for r in claim_query(&sql, namespace, tasks, worker_id, want as u32, now)
                    .fetch_all(&mut *tx)
                    .await?
                {
                    claimed.push(claimed_from_row(&r)?);
                }
            }
            tx.commit().await?;
            claimed
        };
        // Steps are written only by the attempt holding the lease, which is
        // now this one: reading them after the claim's commit is the same.
        self.attach_journals(&mut claimed).await?;
        claimed.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok(claimed)
    }

    /// Give each re-execution (attempt > 1, the only ones that can have
    /// one) its journal of recorded steps.
    async fn attach_journals(&self, claimed: &mut [ClaimedRun]) -> Result<()> {
        let again: Vec<&str> = claimed
            .iter()
            .filter(|c| c.attempt > 1)
            .map(|c| c.run_id.as_str())
            .collect();
        if again.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT run_id, step_key, value_json FROM run_steps WHERE run_id IN ({}) ORDER BY created_at_ms, step_key",
            self.dialect.list(1, again.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &again {
            q = q.bind(*id);
        }
        let mut journals: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in q.fetch_all(&self.reader).await? {
            journals
                .entry(r.try_get("run_id")?)
                .or_default()
                .push((r.try_get("step_key")?, r.try_get("value_json")?));
        }
        for c in claimed {
            if let Some(j) = journals.remove(&c.run_id) {
                c.journal = j;
            }
        }
        Ok(())
    }

    async fn complete_once(
        &self,
        completions: &[Completion],
        now: i64,
    ) -> Result<Vec<CompletionEffect>> {
        let mut effects = vec![CompletionEffect::Stale; completions.len()];
        let mut children = waitpoints::Children::default();
        // Postgres plans the VALUES join below against the statistics it
        // has; on a young or fast-growing table it expects one row and
        // picks a nested loop that rescans VALUES per run: O(n²), 20 ms of
        // a 35 ms statement for 100 completions (auto_explain). A hash
        // join on the ids is right at every size.
        let mut tx = self
            .begin_relaxed("SET LOCAL enable_nestloop = off")
            .await?;

        // Successes: one UPDATE and one INSERT per chunk.
        let oks: Vec<(usize, &Completion, &str)> = completions
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.outcome {
                Outcome::Ok(out) => Some((i, c, out.as_str())),
                Outcome::Failed { .. } => None,
            })
            .collect();
        for chunk in oks.chunks(CHUNK) {
            const N: usize = 4;
            let values = (0..chunk.len())
                .map(|i| format!("({})", self.dialect.list(i * N + 1, N)))
                .collect::<Vec<_>>()
                .join(", ");
            let now_ph = self.dialect.list(chunk.len() * N + 1, 1);
            // The ids again, for the primary-key lookup (see RUNNING).
            let ids = self.dialect.again(N, chunk.len());
            let sql = format!(
                "WITH v (id, attempt, worker_id, output) AS (VALUES {values}) \
                 UPDATE runs SET status = 'completed', output_json = v.output, last_error = '', \
                 updated_at_ms = {now_ph}, lease_expires_at_ms = 0 FROM v \
                 WHERE runs.id IN ({ids}) AND runs.id = v.id AND {RUNNING} AND runs.attempts = v.attempt \
                 AND runs.worker_id = v.worker_id RETURNING runs.id, runs.waitpoint_id, runs.task_id"
            );
            let mut q = sqlx::query(&sql);
            for (_, c, out) in chunk {
                q = q
                    .bind(&c.run_id)
                    .bind(c.attempt as i64)
                    .bind(&c.worker_id)
                    .bind(*out);
            }
            q = q.bind(now);
            if self.dialect.rebinds() {
                for (_, c, _) in chunk {
                    q = q.bind(&c.run_id);
                }
            }
            // The successful attempt is not copied into `run_attempts`: the
            // run's row holds it (worker, start, output, finish), and
            // `get_run` shows it from there. One statement less per batch.
            let outputs: HashMap<&str, &str> = chunk
                .iter()
                .map(|(_, c, out)| (c.run_id.as_str(), *out))
                .collect();
            let mut done: HashSet<String> = HashSet::new();
            for r in q.fetch_all(&mut *tx).await? {
                let run_id: String = r.try_get("id")?;
                let child = ChildResult {
                    output_json: outputs.get(run_id.as_str()).unwrap_or(&"").to_string(),
                    run_id: run_id.clone(),
                    task_id: r.try_get("task_id")?,
                    status: RunStatus::Completed,
                    error: String::new(),
                };
                children.add_completed(&r.try_get::<String, _>("waitpoint_id")?, child);
                done.insert(run_id);
            }
            for (i, c, _) in chunk {
                if done.contains(&c.run_id) {
                    effects[*i] = CompletionEffect::Completed;
                }
            }
        }

        // Failures: rarer; one decision each.
        let lock = self.dialect.for_update();
        for (i, c) in completions.iter().enumerate() {
            let Outcome::Failed { message, fatal } = &c.outcome else {
                continue;
            };
            let row = sqlx::query(&format!(
                "SELECT {FAILING_COLUMNS} FROM runs WHERE id = $1 AND status = 'running' AND attempts = $2 \
                 AND worker_id = $3{lock}"
            ))
            .bind(&c.run_id)
            .bind(c.attempt as i64)
            .bind(&c.worker_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                let f = failing_from_row(&r)?;
                effects[i] = fail_run(&mut tx, &f, message, *fatal, now).await?;
                if effects[i] == CompletionEffect::Dead {
                    children.add(&f.waitpoint_id);
                }
            }
        }
        self.notify_due(&mut tx, &effects).await?;
        let finished = self.finish_children(&mut tx, &children, now).await?;
        tx.commit().await?;
        self.announce_children(children, finished);
        Ok(effects)
    }

    async fn give_back_once(&self, worker_id: &str, run_ids: &[String], now: i64) -> Result<u64> {
        if run_ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "{REQUEUE_UNCHARGED} AND worker_id = $2 AND id IN ({})",
            params(3, run_ids.len())
        );
        let mut q = sqlx::query(&sql).bind(now).bind(worker_id);
        for id in run_ids {
            q = q.bind(id);
        }
        let n = q.execute(&self.writer).await?.rows_affected();
        if n > 0 {
            self.announce_requeued().await?;
        }
        Ok(n)
    }

    /// Postgres: tell the replicas' sessions that requeued runs exist
    /// (their own transaction: the requeue was one autocommit statement).
    async fn announce_requeued(&self) -> Result<()> {
        if self.channel.is_none() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        self.notify_all(&mut tx, &["runs".to_string()]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeat_once(&self, worker_id: &str, run_ids: &[String], now: i64) -> Result<u64> {
        if run_ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE runs SET lease_expires_at_ms = $1 + lease_ms WHERE status = 'running' AND worker_id = $2 \
             AND id IN ({})",
            params(3, run_ids.len())
        );
        let mut q = sqlx::query(&sql).bind(now).bind(worker_id);
        for id in run_ids {
            q = q.bind(id);
        }
        Ok(q.execute(&self.writer).await?.rows_affected())
    }
}

/// Run a transaction again when it lost a deadlock or serialization
/// conflict (Postgres detects these and aborts one side); each try is a
/// fresh transaction, so retrying is safe. Up to 5 tries, with jitter.
async fn retry_conflicts<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0u64;
    loop {
        match f().await {
            Err(Error::Conflict(e)) if tries < 4 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "retrying after a database conflict");
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10 * tries))).await;
            }
            other => return other,
        }
    }
}
