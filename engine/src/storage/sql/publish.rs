//! The publish statements: multi-row inserts of events, their archive
//! outbox entries and their runs, shared by the transactional path (any
//! batch, both databases) and Postgres's single-statement path.
//!
//! Why a single statement: a publish batch in a transaction is six round
//! trips (`BEGIN`, events, outbox, runs, `NOTIFY`, `COMMIT`) before the
//! fsync. On Postgres the common batch (no idempotency keys, no parent to
//! suspend, one chunk) is instead one autocommit statement whose data-modifying
//! `WITH` parts insert everything atomically; the statement commits, with
//! `synchronous_commit` on, before it returns.

use super::SqlStore;
use super::dialect::{CHUNK, Dialect};
use super::errors::retry_conflicts;
use crate::error::Error;
use crate::error::Result;
use crate::model::*;
use crate::signal::Signal;
use crate::storage::Publish;
use async_trait::async_trait;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Row, Transaction};
use std::collections::HashMap;

type Q<'q> = Query<'q, Any, AnyArguments<'q>>;

const EVENT_PARAMS: usize = 14;
const RUN_PARAMS: usize = 19;

fn rows(dialect: Dialect, n: usize, per_row: usize, from: usize, suffix: &str) -> String {
    (0..n)
        .map(|i| format!("({}{suffix})", dialect.list(from + i * per_row, per_row)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO events` for `n` events, parameters from `$from`.
fn events_sql(dialect: Dialect, n: usize, from: usize) -> String {
    format!(
        "INSERT INTO events (id, namespace, name, version, payload, ordering_key, idempotency_key, tags, \
         fan_out_count, publisher_run_id, published_at_ms, replay_of, traceparent, tracestate) VALUES {}",
        rows(dialect, n, EVENT_PARAMS, from, "")
    )
}

fn bind_events<'q>(mut q: Q<'q>, events: &[&'q NewEvent]) -> Q<'q> {
    for ev in events {
        q = q
            .bind(&ev.id)
            .bind(&ev.namespace)
            .bind(&ev.name)
            .bind(ev.version as i64)
            .bind(&ev.payload_json)
            .bind(&ev.ordering_key)
            .bind(&ev.idempotency_key)
            .bind(serde_json::to_string(&ev.tags).unwrap_or_else(|_| "[]".into()))
            .bind(ev.runs.len() as i64)
            .bind(&ev.publisher_run_id)
            .bind(ev.published_at_ms)
            .bind(&ev.replay_of)
            .bind(&ev.trace.traceparent)
            .bind(&ev.trace.tracestate);
    }
    q
}

/// Ids of the events to archive: a replayed copy is not archived again.
fn originals<'a>(events: &[&'a NewEvent]) -> Vec<&'a str> {
    events
        .iter()
        .filter(|ev| ev.replay_of.is_empty())
        .map(|ev| ev.id.as_str())
        .collect()
}

fn outbox_sql(dialect: Dialect, n: usize, from: usize) -> String {
    format!(
        "INSERT INTO archive_outbox (event_id) VALUES {}",
        rows(dialect, n, 1, from, "")
    )
}

fn bind_ids<'q>(mut q: Q<'q>, ids: &[&'q str]) -> Q<'q> {
    for id in ids {
        q = q.bind(*id);
    }
    q
}

fn runs_sql(dialect: Dialect, n: usize, from: usize) -> String {
    format!(
        "INSERT INTO runs (id, namespace, event_id, event, task_id, max_attempts, initial_backoff_ms, \
         max_backoff_ms, backoff_multiplier, lease_ms, available_at_ms, ordering_key, consumer_group, \
         created_at_ms, updated_at_ms, dlq_enabled, attempt_budget, waitpoint_id, replay_of, status) VALUES {}",
        rows(dialect, n, RUN_PARAMS, from, ", 'queued'")
    )
}

fn bind_runs<'q>(mut q: Q<'q>, runs: &[(&'q NewEvent, &'q NewRun)], now: i64) -> Q<'q> {
    for (ev, r) in runs {
        q = q
            .bind(&r.id)
            .bind(&ev.namespace)
            .bind(&ev.id)
            .bind(&ev.name)
            .bind(&r.task_id)
            .bind(r.retry.max_attempts as i64)
            .bind(r.retry.initial_backoff_ms as i64)
            .bind(r.retry.max_backoff_ms as i64)
            .bind(r.retry.multiplier)
            .bind(r.lease_ms as i64)
            .bind(now)
            .bind(&ev.ordering_key)
            .bind(&r.consumer_group)
            .bind(now)
            .bind(now)
            .bind(ev.dlq as i64)
            .bind(r.retry.max_attempts as i64)
            .bind(ev.waitpoint.as_ref().map(|w| w.id.as_str()).unwrap_or(""))
            .bind(&ev.replay_of);
    }
    q
}

const WAITPOINT_PARAMS: usize = 7;

/// Publish-and-wait with no parent to suspend and at least one run: its
/// waitpoint is one plain row, waiting, inserted with the others of its
/// batch. (A parent needs its journal and suspension; a waitpoint on no
/// runs is finished at once: one by one, in `insert_runs_waitpoint`.)
pub(super) fn plain_waitpoint(ev: &NewEvent) -> bool {
    ev.waitpoint
        .as_ref()
        .is_some_and(|w| w.parent.is_none() && !ev.runs.is_empty())
}

/// `INSERT INTO waitpoints` for [`plain_waitpoint`]s: waiting on every run
/// of its event.
fn waitpoints_sql(dialect: Dialect, n: usize, from: usize) -> String {
    format!(
        "INSERT INTO waitpoints (id, namespace, pending, total, event_id, timeout_at_ms, created_at_ms, \
         kind, status, parent_run_id, completed_at_ms) VALUES {}",
        rows(
            dialect,
            n,
            WAITPOINT_PARAMS,
            from,
            ", 'runs', 'waiting', '', 0"
        )
    )
}

fn bind_waitpoints<'q>(mut q: Q<'q>, events: &[&'q NewEvent], now: i64) -> Q<'q> {
    for ev in events {
        if let Some(wp) = &ev.waitpoint {
            q = q
                .bind(&wp.id)
                .bind(&wp.namespace)
                .bind(ev.runs.len() as i64)
                .bind(ev.runs.len() as i64)
                .bind(&ev.id)
                .bind(wp.timeout_at_ms)
                .bind(now);
        }
    }
    q
}

/// Every run of these events, paired with its event.
pub(super) fn runs_of<'a>(events: &[&'a NewEvent]) -> Vec<(&'a NewEvent, &'a NewRun)> {
    events
        .iter()
        .flat_map(|ev| ev.runs.iter().map(move |r| (*ev, r)))
        .collect()
}

/// What the caller hears for a freshly stored event.
pub(super) fn published(ev: &NewEvent) -> Published {
    Published {
        event_id: ev.id.clone(),
        version: ev.version,
        runs: ev
            .runs
            .iter()
            .map(|r| (r.id.clone(), r.task_id.clone(), r.consumer_group.clone()))
            .collect(),
        deduplicated: false,
        waitpoint_id: ev
            .waitpoint
            .as_ref()
            .map(|w| w.id.clone())
            .unwrap_or_default(),
        suspended: false,
    }
}

impl SqlStore {
    /// Insert events, outbox entries and runs inside `tx`, in chunks.
    pub(super) async fn insert_published(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        fresh: &[&NewEvent],
        now: i64,
    ) -> Result<()> {
        for chunk in fresh.chunks(CHUNK) {
            let sql = events_sql(self.dialect, chunk.len(), 1);
            bind_events(sqlx::query(&sql), chunk)
                .execute(&mut **tx)
                .await?;
            let ids = originals(chunk);
            if !ids.is_empty() {
                let sql = outbox_sql(self.dialect, ids.len(), 1);
                bind_ids(sqlx::query(&sql), &ids).execute(&mut **tx).await?;
            }
        }
        let runs = runs_of(fresh);
        for chunk in runs.chunks(CHUNK) {
            let sql = runs_sql(self.dialect, chunk.len(), 1);
            bind_runs(sqlx::query(&sql), chunk, now)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Postgres, and a batch with nothing to look up or lock first (no
    /// idempotency keys, no parent to suspend) that fits one chunk: one
    /// statement will do. A waitpoint on no runs is finished at once, which
    /// the transactional path announces, so it goes there.
    pub(super) fn single_statement(&self, events: &[NewEvent]) -> bool {
        self.dialect == Dialect::Postgres
            && events.len() <= CHUNK
            && events.iter().map(|e| e.runs.len()).sum::<usize>() <= CHUNK
            && events.iter().all(|e| {
                e.idempotency_key.is_empty() && (e.waitpoint.is_none() || plain_waitpoint(e))
            })
    }

    /// Insert the waitpoints of publish-and-wait events without a parent
    /// (see [`plain_waitpoint`]), many rows per statement.
    pub(super) async fn insert_plain_waitpoints(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        events: &[&NewEvent],
        now: i64,
    ) -> Result<()> {
        for chunk in events.chunks(CHUNK) {
            let sql = waitpoints_sql(self.dialect, chunk.len(), 1);
            bind_waitpoints(sqlx::query(&sql), chunk, now)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The whole batch as one autocommit statement (see the module docs);
    /// the `NOTIFY` is part of it and delivered at its commit.
    pub(super) async fn publish_single_statement(
        &self,
        events: &[NewEvent],
        now: i64,
    ) -> Result<Vec<Published>> {
        let fresh: Vec<&NewEvent> = events.iter().collect();
        let ids = originals(&fresh);
        let runs = runs_of(&fresh);
        let d = self.dialect;
        let mut next = 1 + fresh.len() * EVENT_PARAMS;
        let mut parts = vec![format!("e AS ({})", events_sql(d, fresh.len(), 1))];
        if !ids.is_empty() {
            parts.push(format!("o AS ({})", outbox_sql(d, ids.len(), next)));
            next += ids.len();
        }
        if !runs.is_empty() {
            parts.push(format!("r AS ({})", runs_sql(d, runs.len(), next)));
            next += runs.len() * RUN_PARAMS;
        }
        let waiting = fresh.iter().filter(|e| e.waitpoint.is_some()).count();
        if waiting > 0 {
            parts.push(format!("w AS ({})", waitpoints_sql(d, waiting, next)));
            next += waiting * WAITPOINT_PARAMS;
        }
        let notify = self.channel.as_ref().filter(|_| !runs.is_empty());
        let signals = runs_signals(&fresh);
        let tail = match notify {
            Some(_) => format!(
                "SELECT {}",
                (0..signals.len())
                    .map(|i| format!("pg_notify(${next}, ${})", next + 1 + i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "SELECT 1".to_string(),
        };
        let sql = format!("WITH {} {tail}", parts.join(", "));
        let mut q = bind_runs(
            bind_ids(bind_events(sqlx::query(&sql), &fresh), &ids),
            &runs,
            now,
        );
        q = bind_waitpoints(q, &fresh, now);
        if let Some(channel) = notify {
            q = q.bind(channel);
            for s in &signals {
                q = q.bind(s.to_string());
            }
        }
        q.execute(&self.writer).await?;
        Ok(events.iter().map(published).collect())
    }
}

/// The `runs:<namespace>` notifications of a batch: one per namespace that
/// got runs, so other replicas wake only that namespace's sessions.
pub(super) fn runs_signals(events: &[&NewEvent]) -> Vec<Signal> {
    let namespaces: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| !e.runs.is_empty())
        .map(|e| e.namespace.as_str())
        .collect();
    namespaces
        .into_iter()
        .map(|ns| Signal::Runs(ns.to_string()))
        .collect()
}

#[async_trait]
impl Publish for SqlStore {
    async fn publish(
        &self,
        events: &[NewEvent],
        idempotency_window_ms: i64,
    ) -> Result<Vec<Published>> {
        retry_conflicts(|| self.publish_once(events, idempotency_window_ms)).await
    }
}

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

    /// The body of `publish`, inside a caller's transaction (replays reuse
    /// it). Returns the answers and the waitpoints finished on the spot.
    pub(super) async fn publish_in_tx(
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
            out.push(published(ev));
            fresh_at.push(out.len() - 1);
            fresh.push(ev);
        }

        self.insert_published(tx, &fresh, now).await?;
        let plain: Vec<&NewEvent> = fresh
            .iter()
            .copied()
            .filter(|ev| plain_waitpoint(ev))
            .collect();
        self.insert_plain_waitpoints(tx, &plain, now).await?;
        let mut finished = Vec::new();
        for (ev, at) in fresh.iter().zip(&fresh_at) {
            if plain_waitpoint(ev) {
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
        self.notify_all(tx, &runs_signals(&fresh)).await?;
        Ok((out, finished))
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
