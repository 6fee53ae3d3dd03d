//! Replay jobs in SQL. A page of a replay — its new events and runs, and
//! the job's cursor and counters — commits in one transaction, so a job
//! resumed after a crash neither skips nor repeats events.

use super::SqlStore;
use crate::error::Result;
use crate::model::*;
use crate::storage::ReplayStore;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(super) const COLUMNS: &str = "id, namespace, event_pattern, from_ms, to_ms, tasks_json, filter_json, dry_run, rate_per_sec, \
    skip_already_replayed, status, cursor_ms, cursor_id, events_total, events_scanned, events_replayed, runs_created, \
    by_task_json, error, created_at_ms, updated_at_ms, finished_at_ms";

pub(super) fn job_from_row(r: &AnyRow) -> Result<ReplayJob> {
    let tasks: String = r.try_get("tasks_json")?;
    let by_task: String = r.try_get("by_task_json")?;
    Ok(ReplayJob {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        event_pattern: r.try_get("event_pattern")?,
        from_ms: r.try_get("from_ms")?,
        to_ms: r.try_get("to_ms")?,
        tasks: serde_json::from_str(&tasks).unwrap_or_default(),
        filter_json: r.try_get("filter_json")?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        rate_per_sec: r.try_get("rate_per_sec")?,
        skip_already_replayed: r.try_get::<i64, _>("skip_already_replayed")? != 0,
        status: r.try_get::<String, _>("status")?.parse()?,
        cursor_ms: r.try_get("cursor_ms")?,
        cursor_id: r.try_get("cursor_id")?,
        events_total: r.try_get("events_total")?,
        events_scanned: r.try_get("events_scanned")?,
        events_replayed: r.try_get("events_replayed")?,
        runs_created: r.try_get("runs_created")?,
        by_task: serde_json::from_str(&by_task).unwrap_or_default(),
        error: r.try_get("error")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
    })
}

#[async_trait]
impl ReplayStore for SqlStore {
    async fn create_replay(&self, j: &ReplayJob) -> Result<()> {
        sqlx::query(
            "INSERT INTO replays (id, namespace, event_pattern, from_ms, to_ms, tasks_json, filter_json, dry_run, \
             rate_per_sec, skip_already_replayed, status, cursor_ms, cursor_id, events_total, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11, '', $12, $13, $13)",
        )
        .bind(&j.id)
        .bind(&j.namespace)
        .bind(&j.event_pattern)
        .bind(j.from_ms)
        .bind(j.to_ms)
        .bind(serde_json::to_string(&j.tasks).unwrap_or_else(|_| "[]".into()))
        .bind(&j.filter_json)
        .bind(i64::from(j.dry_run))
        .bind(j.rate_per_sec)
        .bind(i64::from(j.skip_already_replayed))
        .bind(j.cursor_ms)
        .bind(j.events_total)
        .bind(j.created_at_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_replay(&self, ns: &str, id: &str) -> Result<Option<ReplayJob>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM replays WHERE namespace = $1 AND id = $2"
        ))
        .bind(ns)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
    }

    async fn cancel_replay(&self, ns: &str, id: &str, now: i64) -> Result<Option<ReplayJob>> {
        sqlx::query(
            "UPDATE replays SET status = 'cancelled', finished_at_ms = $3, updated_at_ms = $3 \
             WHERE namespace = $1 AND id = $2 AND status = 'running'",
        )
        .bind(ns)
        .bind(id)
        .bind(now)
        .execute(&self.writer)
        .await?;
        self.get_replay(ns, id).await
    }

    async fn lease_replay(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ReplayJob>> {
        let sql = format!(
            "UPDATE replays SET owner = $1, lease_until_ms = $2 WHERE id = (SELECT id FROM replays \
             WHERE status = 'running' AND (lease_until_ms < $3 OR owner = $1) ORDER BY created_at_ms LIMIT 1{}) \
             RETURNING {COLUMNS}",
            self.dialect.skip_locked()
        );
        sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?
            .as_ref()
            .map(job_from_row)
            .transpose()
    }

    async fn replay_page(
        &self,
        j: &ReplayJob,
        owner: &str,
        events: &[NewEvent],
        now: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = j.status != ReplayStatus::Running;
        let updated = sqlx::query(
            "UPDATE replays SET cursor_ms = $3, cursor_id = $4, events_scanned = $5, events_replayed = $6, \
             runs_created = $7, by_task_json = $8, status = $9, error = $10, finished_at_ms = $11, updated_at_ms = $12, \
             lease_until_ms = $13 WHERE id = $1 AND owner = $2 AND status = 'running'",
        )
        .bind(&j.id)
        .bind(owner)
        .bind(j.cursor_ms)
        .bind(&j.cursor_id)
        .bind(j.events_scanned)
        .bind(j.events_replayed)
        .bind(j.runs_created)
        .bind(serde_json::to_string(&j.by_task).unwrap_or_else(|_| "{}".into()))
        .bind(j.status.as_str())
        .bind(&j.error)
        .bind(if done { now } else { 0 })
        .bind(now)
        .bind(now + lease_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            // Cancelled, or another engine took the job over: write nothing.
            return Ok(false);
        }
        let (_, finished) = self.publish_in_tx(&mut tx, events, 0, now).await?;
        tx.commit().await?;
        self.announce(finished);
        Ok(true)
    }

    async fn replayed_pairs(&self, ids: &[String]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT replay_of, task_id FROM runs WHERE replay_of <> '' AND replay_of IN ({})",
                self.dialect.list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.reader).await? {
                out.push((r.try_get("replay_of")?, r.try_get("task_id")?));
            }
        }
        Ok(out)
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
}
