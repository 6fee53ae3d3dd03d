//! Reading runs and managing dead letters: the operator's view.

use super::SqlStore;
use super::dialect::{CHUNK, params};
use super::rows::{RUN_COLUMNS, run_from_row, tags_from_json};
use crate::error::Result;
use crate::model::*;
use crate::storage::RunAdmin;
use async_trait::async_trait;
use sqlx::Row;

/// The smallest UUIDv7 text of an id made at `ms` (its first 48 bits are
/// the epoch ms): every id made at or after `ms` sorts at or above it.
fn id_floor(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1) as u64;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

impl SqlStore {
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
            ("event_id", query.event_id.as_deref(), "="),
            ("task_id", query.task.as_deref(), "="),
            ("status", status, "="),
            ("ordering_key", query.ordering_key.as_deref(), "="),
            ("id", query.before.as_deref(), "<"),
        ] {
            if let Some(v) = v {
                args.push(v);
                sql += &format!(" AND {col} {op} ${}", args.len() + 1);
            }
        }
        if let Some(prefix) = &query.error_prefix {
            args.push(prefix);
            sql += &format!(
                " AND substr(last_error, 1, {}) = ${}",
                prefix.chars().count(),
                args.len() + 1
            );
        }
        // Integers, not user text: inlined. Run ids are UUIDv7 (their text
        // starts with the creation ms in hex), so a time window is also an
        // id range: the index walk starts and stops at the window instead
        // of filtering every row of the namespace.
        if let Some(from) = query.created_from_ms {
            sql += &format!(
                " AND created_at_ms >= {from} AND id >= '{}'",
                id_floor(from)
            );
        }
        if let Some(to) = query.created_to_ms {
            sql += &format!(" AND created_at_ms < {to} AND id < '{}'", id_floor(to));
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
            let (filter, args) = Self::dead_letter_filter(sel, 3);
            loop {
                let sql = format!(
                    "UPDATE runs SET {set} WHERE id IN (SELECT id FROM runs WHERE namespace = $2 AND dlq = 1{filter} \
                     ORDER BY id LIMIT 500{})",
                    self.dialect.skip_locked()
                );
                let mut q = sqlx::query(&sql).bind(now).bind(namespace);
                for a in &args {
                    q = q.bind(a);
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
}

#[async_trait]
impl RunAdmin for SqlStore {
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
        let event = sqlx::query(
            "SELECT payload, tags, publisher_run_id, traceparent FROM events WHERE id = $1",
        )
        .bind(&run.event_id)
        .fetch_optional(&self.reader)
        .await?;
        let (payload_json, tags, publisher_run_id, traceparent) = match event {
            Some(e) => (
                e.try_get("payload")?,
                tags_from_json(&e.try_get::<String, _>("tags")?),
                e.try_get("publisher_run_id")?,
                e.try_get("traceparent")?,
            ),
            None => Default::default(),
        };
        Ok(Some(RunDetail {
            run,
            attempts,
            payload_json,
            tags,
            publisher_run_id,
            traceparent,
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_floor_orders_like_uuid_v7_ids() {
        let ms = crate::model::now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        assert!(super::id_floor(ms - 1_000) <= id, "{id}");
        assert!(super::id_floor(ms + 1_000) > id, "{id}");
        assert_eq!(super::id_floor(0), "00000000-0000-0000-0000-000000000000");
    }
}
