//! The run queue: claiming due runs under a lease, heartbeats, giving runs
//! back uncharged, and the earliest due time of a worker's tasks.

use super::SqlStore;
use super::dialect::{Dialect, params};
use super::errors::retry_conflicts;
use super::rows::claimed_from_row;
use crate::error::Result;
use crate::model::*;
use crate::signal::Signal;
use crate::storage::RunQueue;
use async_trait::async_trait;
use sqlx::{Any, Row};
use std::collections::HashMap;

/// Put running runs back in the queue without charging their attempt
/// (`$1` = now); callers add which runs (`AND …`). A late result from the
/// attempt is refused as stale: its worker id no longer matches.
const REQUEUE_UNCHARGED: &str = "UPDATE runs SET status = 'queued', attempts = attempts - 1, \
    lease_expires_at_ms = 0, worker_id = '', available_at_ms = $1, updated_at_ms = $1 \
    WHERE status = 'running'";

/// Tasks per claim statement: one `UNION ALL` branch each (SQLite allows
/// 500 compound terms; a worker with more tasks claims in several
/// statements inside the same transaction).
const CLAIM_TASKS_PER_STATEMENT: usize = 32;

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
        // scalar subqueries in RETURNING (primary-key lookups, in-process).
        match self.dialect {
            Dialect::Postgres => format!(
                "WITH c AS ({update} RETURNING id, attempts, task_id, event, event_id, lease_ms, ordering_key, replay_of) \
                 SELECT c.*, COALESCE(e.payload, '') AS payload, COALESCE(e.tags, '[]') AS tags, \
                 COALESCE(e.published_at_ms, 0) AS published_at_ms, COALESCE(e.version, 0) AS event_version, \
                 COALESCE(e.traceparent, '') AS traceparent, COALESCE(e.tracestate, '') AS tracestate \
                 FROM c LEFT JOIN events e ON e.id = c.event_id"
            ),
            Dialect::Sqlite => format!(
                "{update} RETURNING id, attempts, task_id, event, event_id, lease_ms, ordering_key, replay_of, \
                 COALESCE((SELECT e.payload FROM events e WHERE e.id = runs.event_id), '') AS payload, \
                 COALESCE((SELECT e.tags FROM events e WHERE e.id = runs.event_id), '[]') AS tags, \
                 COALESCE((SELECT e.published_at_ms FROM events e WHERE e.id = runs.event_id), 0) AS published_at_ms, \
                 COALESCE((SELECT e.version FROM events e WHERE e.id = runs.event_id), 0) AS event_version, \
                 COALESCE((SELECT e.traceparent FROM events e WHERE e.id = runs.event_id), '') AS traceparent, \
                 COALESCE((SELECT e.tracestate FROM events e WHERE e.id = runs.event_id), '') AS tracestate"
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

#[async_trait]
impl RunQueue for SqlStore {
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
}

impl SqlStore {
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
        self.notify(&mut tx, Signal::AnyRuns).await?;
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
