//! Handler logs: appended in one relaxed transaction per flush (a crash may
//! lose the last flush, as it may lose the attempt itself), only for the
//! lease holder of the running attempt, bounded per attempt.

use super::SqlStore;
use crate::error::Result;
use crate::model::{LogLevel, LogLine, LogQuery, RunLogLine};
use crate::storage::RunLogs;
use async_trait::async_trait;
use sqlx::Row;

/// The `seq` of the one truncation line an attempt may get: after every
/// real line, and stored once.
const TRUNCATED_SEQ: i64 = u32::MAX as i64;

#[async_trait]
impl RunLogs for SqlStore {
    async fn append_logs(
        &self,
        worker_id: &str,
        run_id: &str,
        attempt: u32,
        lines: &[LogLine],
        max_bytes: usize,
    ) -> Result<u64> {
        if lines.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_relaxed("").await?;
        let holder = sqlx::query(
            "SELECT 1 FROM runs WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'",
        )
        .bind(run_id)
        .bind(worker_id)
        .bind(i64::from(attempt))
        .fetch_optional(&mut *tx)
        .await?;
        if holder.is_none() {
            return Ok(0);
        }
        let used: i64 = sqlx::query(
            "SELECT COALESCE(SUM(LENGTH(message) + LENGTH(fields)), 0) AS used FROM run_logs \
             WHERE run_id = $1 AND attempt = $2",
        )
        .bind(run_id)
        .bind(i64::from(attempt))
        .fetch_one(&mut *tx)
        .await?
        .try_get("used")?;
        let mut budget = max_bytes.saturating_sub(usize::try_from(used).unwrap_or(usize::MAX));
        let mut stored = 0;
        let insert = "INSERT INTO run_logs (run_id, attempt, seq, at_ms, level, message, fields) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
        for line in lines {
            let size = line.message.len() + line.fields_json.len();
            let (seq, at_ms, level, message, fields) = if size <= budget {
                budget -= size;
                (
                    i64::from(line.seq),
                    line.at_ms,
                    line.level,
                    line.message.as_str(),
                    line.fields_json.as_str(),
                )
            } else {
                (
                    TRUNCATED_SEQ,
                    line.at_ms,
                    LogLevel::Warn,
                    "log truncated: this attempt logged more than the engine keeps",
                    "",
                )
            };
            stored += sqlx::query(insert)
                .bind(run_id)
                .bind(i64::from(attempt))
                .bind(seq)
                .bind(at_ms)
                .bind(level.as_str())
                .bind(message)
                .bind(fields)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if seq == TRUNCATED_SEQ {
                break;
            }
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn run_logs(
        &self,
        namespace: &str,
        run_id: &str,
        query: &LogQuery,
    ) -> Result<Option<Vec<RunLogLine>>> {
        let exists = sqlx::query("SELECT 1 FROM runs WHERE namespace = $1 AND id = $2")
            .bind(namespace)
            .bind(run_id)
            .fetch_optional(&self.reader)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let (after_attempt, after_seq) = query
            .after
            .map_or((-1, -1), |(a, s)| (i64::from(a), i64::from(s)));
        let limit = if query.limit == 0 {
            1_000
        } else {
            query.limit.min(10_000)
        };
        let rows = sqlx::query(&format!(
            "SELECT attempt, seq, at_ms, level, message, fields FROM run_logs \
             WHERE run_id = $1 AND ($2 = 0 OR attempt = $2) \
             AND (attempt > $3 OR (attempt = $3 AND seq > $4)) \
             ORDER BY attempt, seq LIMIT {limit}"
        ))
        .bind(run_id)
        .bind(i64::from(query.attempt.unwrap_or(0)))
        .bind(after_attempt)
        .bind(after_seq)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunLogLine {
                    attempt: u32::try_from(r.try_get::<i64, _>("attempt")?).unwrap_or(0),
                    line: LogLine {
                        seq: u32::try_from(r.try_get::<i64, _>("seq")?).unwrap_or(u32::MAX),
                        at_ms: r.try_get("at_ms")?,
                        level: LogLevel::parse(&r.try_get::<String, _>("level")?)
                            .unwrap_or(LogLevel::Info),
                        message: r.try_get("message")?,
                        fields_json: r.try_get("fields")?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
