//! The operator console's reads in SQL. Each listing is one index walk in
//! id order with a `LIMIT`; the counts are grouped reads.

use super::SqlStore;
use super::replay::{COLUMNS as REPLAY_COLUMNS, job_from_row};
use super::rows::{EVENT_COLUMNS, event_from_row};
use super::waitpoints::waitpoint_from_row;
use crate::error::{Error, Result};
use crate::model::*;
use crate::storage::{Console, EventQuery, GROUPED, WaitpointQuery};
use async_trait::async_trait;
use sqlx::Row;

/// A `LIMIT` for a page: 100 when unset, never more than 1,000.
fn page(limit: u32) -> u32 {
    if limit == 0 { 100 } else { limit.min(1_000) }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqlStore {
    /// `AND …` conditions narrowing dead letters to `sel` (without its ids),
    /// with their arguments, numbered from `$first`.
    pub(super) fn dead_letter_filter(
        sel: &DeadLetterSelector,
        first: usize,
    ) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut args = Vec::new();
        for (col, v) in [("event", &sel.event), ("task_id", &sel.task)] {
            if let Some(v) = v {
                args.push(v.clone());
                sql += &format!(" AND {col} = ${}", first + args.len() - 1);
            }
        }
        if let Some(prefix) = &sel.error_prefix {
            let chars = prefix.chars().count();
            args.push(prefix.clone());
            sql += &format!(
                " AND substr(last_error, 1, {chars}) = ${}",
                first + args.len() - 1
            );
        }
        (sql, args)
    }
}

impl SqlStore {
    /// `select` of namespace `ns`, narrowed by each `(column, value,
    /// operator)` that has a value, newest first, one page of `limit`.
    async fn newest_first<T>(
        &self,
        select: &str,
        ns: &str,
        conds: &[(&str, Option<&str>, &str)],
        limit: u32,
        row: fn(&sqlx::any::AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut sql = format!("{select} WHERE namespace = $1");
        let mut args = Vec::new();
        for (col, v, op) in conds {
            if let Some(v) = v {
                args.push(*v);
                sql += &format!(" AND {col} {op} ${}", args.len() + 1);
            }
        }
        sql += &format!(" ORDER BY id DESC LIMIT {}", page(limit));
        let mut query = sqlx::query(&sql).bind(ns);
        for a in args {
            query = query.bind(a);
        }
        query
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(row)
            .collect()
    }
}

#[async_trait]
impl Console for SqlStore {
    async fn run_counts(&self, ns: &str) -> Result<Vec<(RunStatus, u64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM runs WHERE namespace = $1 GROUP BY status ORDER BY status",
        )
        .bind(ns)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let status: String = r.try_get("status")?;
            let status = RunStatus::parse(&status)
                .ok_or_else(|| Error::Internal(format!("unknown run status '{status}'")))?;
            out.push((status, count(r.try_get("n")?)));
        }
        Ok(out)
    }

    async fn count_dead_letters(
        &self,
        ns: &str,
        sel: &DeadLetterSelector,
        cap: Option<u64>,
    ) -> Result<u64> {
        if !sel.all {
            let mut n = 0;
            for chunk in sel.ids.chunks(super::dialect::CHUNK) {
                let sql = format!(
                    "SELECT COUNT(*) AS n FROM runs WHERE namespace = $1 AND dlq = 1 AND id IN ({})",
                    super::dialect::params(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(ns);
                for id in chunk {
                    q = q.bind(id);
                }
                n += count(q.fetch_one(&self.reader).await?.try_get("n")?);
            }
            return Ok(n);
        }
        let (filter, args) = Self::dead_letter_filter(sel, 2);
        // With a cap the count stops past it: a page that only says "more
        // than 10,000" never walks a million dead letters.
        let limit = cap.map_or(String::new(), |c| format!(" LIMIT {}", c.saturating_add(1)));
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM runs WHERE namespace = $1 AND dlq = 1{filter}{limit}) d"
        );
        let mut q = sqlx::query(&sql).bind(ns);
        for a in &args {
            q = q.bind(a);
        }
        Ok(count(q.fetch_one(&self.reader).await?.try_get("n")?))
    }

    async fn dead_letter_groups(&self, ns: &str, limit: u32) -> Result<Vec<DeadLetterGroup>> {
        let n = DeadLetterGroup::FINGERPRINT_CHARS;
        let rows = sqlx::query(&format!(
            "SELECT task_id, substr(last_error, 1, {n}) AS fp, COUNT(*) AS n, MAX(id) AS newest, \
             MAX(updated_at_ms) AS newest_at FROM (SELECT task_id, last_error, id, updated_at_ms FROM runs \
             WHERE namespace = $1 AND dlq = 1 ORDER BY id DESC LIMIT {GROUPED}) d \
             GROUP BY task_id, substr(last_error, 1, {n}) ORDER BY COUNT(*) DESC, task_id LIMIT {}",
            page(limit)
        ))
        .bind(ns)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetterGroup {
                    task_id: r.try_get("task_id")?,
                    fingerprint: r.try_get("fp")?,
                    count: count(r.try_get("n")?),
                    newest_run_id: r.try_get("newest")?,
                    newest_at_ms: r.try_get("newest_at")?,
                })
            })
            .collect()
    }

    async fn list_replays(&self, ns: &str, limit: u32) -> Result<Vec<ReplayJob>> {
        sqlx::query(&format!(
            "SELECT {REPLAY_COLUMNS} FROM replays WHERE namespace = $1 ORDER BY id DESC LIMIT {}",
            page(limit)
        ))
        .bind(ns)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    async fn list_waitpoints(&self, ns: &str, q: &WaitpointQuery) -> Result<Vec<Waitpoint>> {
        let conds = [
            ("status", q.status.map(|s| s.as_str()), "="),
            ("kind", q.kind.map(|k| k.as_str()), "="),
            ("id", q.before.as_deref(), "<"),
        ];
        self.newest_first(
            "SELECT * FROM waitpoints",
            ns,
            &conds,
            q.limit,
            waitpoint_from_row,
        )
        .await
    }

    async fn waitpoints_of_run(&self, ns: &str, run_id: &str) -> Result<Vec<Waitpoint>> {
        // A run's journal records `{"waitpoint_id": …}` under the step key
        // of every waitpoint it made (in the same transaction), so no index
        // on `waitpoints.parent_run_id` is needed.
        let ids: Vec<String> = self
            .run_steps(run_id)
            .await?
            .iter()
            .filter_map(|s| {
                serde_json::from_str::<serde_json::Value>(&s.value_json)
                    .ok()?
                    .get("waitpoint_id")?
                    .as_str()
                    .map(String::from)
            })
            .take(100)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM waitpoints WHERE namespace = $1 AND id IN ({}) ORDER BY id",
            super::dialect::params(2, ids.len())
        );
        let mut q = sqlx::query(&sql).bind(ns);
        for id in &ids {
            q = q.bind(id);
        }
        q.fetch_all(&self.reader)
            .await?
            .iter()
            .map(waitpoint_from_row)
            .collect()
    }

    async fn get_event_record(&self, ns: &str, id: &str) -> Result<Option<ArchivedEvent>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND namespace = $2"
        ))
        .bind(id)
        .bind(ns)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
    }

    async fn list_event_records(&self, ns: &str, q: &EventQuery) -> Result<Vec<ArchivedEvent>> {
        let conds = [
            ("name", q.name.as_deref(), "="),
            ("id", q.before.as_deref(), "<"),
        ];
        let select = format!("SELECT {EVENT_COLUMNS} FROM events");
        self.newest_first(&select, ns, &conds, q.limit, event_from_row)
            .await
    }

    async fn run_steps(&self, run_id: &str) -> Result<Vec<Step>> {
        sqlx::query(
            "SELECT step_key, value_json, created_at_ms FROM run_steps WHERE run_id = $1 \
             ORDER BY created_at_ms, step_key LIMIT 1000",
        )
        .bind(run_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(Step {
                key: r.try_get("step_key")?,
                value_json: r.try_get("value_json")?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        })
        .collect()
    }
}
