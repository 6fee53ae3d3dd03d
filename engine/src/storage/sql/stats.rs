//! Queue gauges: one grouped read of the live runs (queued, retrying,
//! waiting, dead letters: the partial indexes' rows, not the history) and
//! one of the outbox.

use super::SqlStore;
use crate::error::Result;
use crate::storage::{QueueStats, Stats, TaskStats};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl Stats for SqlStore {
    async fn queue_stats(&self, now_ms: i64, limit: usize) -> Result<QueueStats> {
        let rows = sqlx::query(
            "SELECT namespace, task_id, \
             SUM(CASE WHEN status IN ('queued', 'retrying') AND available_at_ms <= $1 THEN 1 ELSE 0 END) AS due, \
             MIN(CASE WHEN status IN ('queued', 'retrying') AND available_at_ms <= $1 THEN available_at_ms END) AS oldest, \
             SUM(CASE WHEN status = 'waiting' THEN 1 ELSE 0 END) AS waiting, \
             SUM(CASE WHEN dlq = 1 THEN 1 ELSE 0 END) AS dead_letters \
             FROM runs WHERE status IN ('queued', 'retrying', 'waiting') OR dlq = 1 \
             GROUP BY namespace, task_id ORDER BY COUNT(*) DESC, namespace, task_id LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        let count = |r: &sqlx::any::AnyRow, c: &str| -> Result<u64> {
            Ok(u64::try_from(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0)).unwrap_or(0))
        };
        let mut tasks = Vec::with_capacity(rows.len());
        for r in &rows {
            tasks.push(TaskStats {
                namespace: r.try_get("namespace")?,
                task_id: r.try_get("task_id")?,
                due: count(r, "due")?,
                oldest_due_at_ms: r.try_get("oldest")?,
                waiting: count(r, "waiting")?,
                dead_letters: count(r, "dead_letters")?,
            });
        }
        let outbox = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(events.published_at_ms) AS oldest FROM archive_outbox \
             JOIN events ON events.id = archive_outbox.event_id",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(QueueStats {
            tasks,
            outbox: u64::try_from(outbox.try_get::<i64, _>("n")?).unwrap_or(0),
            oldest_unarchived_ms: outbox.try_get("oldest")?,
        })
    }
}
