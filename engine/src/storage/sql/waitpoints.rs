//! Waitpoints in SQL: creation (with the parent's suspension), completion
//! atomic with the last child's final state, timeouts, tokens, and the run
//! journal (memoized steps).
//!
//! Everything that finishes a waitpoint runs inside the transaction that
//! caused it (a child completing or dying, a token, a timeout) and re-queues
//! the suspended parent in that same transaction, so no waitpoint is left
//! hanging after a crash: either all of it committed or none of it did.

use super::SqlStore;
use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::model::*;
use crate::signal::Signal;
use crate::storage::WaitpointStore;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::BTreeMap;

/// Children that reached a final state in one transaction, per waitpoint.
#[derive(Default)]
pub(super) struct Children {
    counts: BTreeMap<String, i64>,
    /// The completed ones with their results, announced after the commit.
    completed: Vec<(String, ChildResult)>,
}

impl Children {
    pub(super) fn add(&mut self, waitpoint_id: &str) {
        if !waitpoint_id.is_empty() {
            *self.counts.entry(waitpoint_id.to_string()).or_default() += 1;
        }
    }

    /// A child completed with `child`'s result.
    pub(super) fn add_completed(&mut self, waitpoint_id: &str, child: ChildResult) {
        if !waitpoint_id.is_empty() {
            self.add(waitpoint_id);
            self.completed.push((waitpoint_id.to_string(), child));
        }
    }
}

/// A waitpoint row as `UPDATE … RETURNING` gives it (SQLite's `RETURNING`
/// takes no `table.*`).
const RETURNED: &str = "waitpoints.id AS id, waitpoints.namespace AS namespace, waitpoints.kind AS kind, \
    waitpoints.status AS status, waitpoints.pending AS pending, waitpoints.total AS total, \
    waitpoints.event_id AS event_id, waitpoints.parent_run_id AS parent_run_id, \
    waitpoints.timeout_at_ms AS timeout_at_ms, waitpoints.data_json AS data_json, \
    waitpoints.created_at_ms AS created_at_ms, waitpoints.completed_at_ms AS completed_at_ms";

pub(super) fn waitpoint_from_row(r: &AnyRow) -> Result<Waitpoint> {
    let kind: String = r.try_get("kind")?;
    Ok(Waitpoint {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        kind: WaitpointKind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("unknown waitpoint kind '{kind}'")))?,
        status: r.try_get::<String, _>("status")?.parse()?,
        pending: r.try_get("pending")?,
        total: r.try_get("total")?,
        event_id: r.try_get("event_id")?,
        parent_run_id: r.try_get("parent_run_id")?,
        timeout_at_ms: r.try_get("timeout_at_ms")?,
        data_json: r.try_get("data_json")?,
        created_at_ms: r.try_get("created_at_ms")?,
        completed_at_ms: r.try_get("completed_at_ms")?,
    })
}

impl SqlStore {
    /// Tell this process's engine what committed.
    pub(super) fn announce(&self, finished: Vec<String>) {
        if finished.is_empty() {
            return;
        }
        for id in finished {
            let _ = self.events.send(StoreEvent::WaitpointFinished(id));
        }
        let _ = self.events.send(StoreEvent::RunsResumed);
    }

    /// Tell this process's engine what a completion transaction committed:
    /// the completed children first, then the waitpoints they finished.
    pub(super) fn announce_children(&self, children: Children, finished: Vec<Waitpoint>) {
        for (wp, child) in children.completed {
            let _ = self
                .events
                .send(StoreEvent::ChildCompleted(wp, Box::new(child)));
        }
        if finished.is_empty() {
            return;
        }
        for wp in finished {
            let _ = self.events.send(StoreEvent::WaitpointDone(Box::new(wp)));
        }
        let _ = self.events.send(StoreEvent::RunsResumed);
    }

    /// Count children against their waitpoints; complete those with none
    /// pending and re-queue their parents. Returns the waitpoints finished,
    /// as their rows after the update.
    /// One statement per 400 waitpoints (count and finish together), then
    /// one for all parents and one for all notifications.
    pub(super) async fn finish_children(
        &self,
        tx: &mut Transaction<'static, Any>,
        children: &Children,
        now: i64,
    ) -> Result<Vec<Waitpoint>> {
        let mut finished: Vec<Waitpoint> = Vec::new();
        let mut parents = Vec::new();
        // Sorted ids (BTreeMap) and an `id IN (…)` list, which the primary
        // key walks in order: one lock order across concurrent transactions.
        let counts: Vec<(&String, &i64)> = children.counts.iter().collect();
        for chunk in counts.chunks(super::dialect::CHUNK) {
            let values = (0..chunk.len())
                .map(|i| format!("({})", self.dialect.list(i * 2 + 1, 2)))
                .collect::<Vec<_>>()
                .join(", ");
            let now_ph = self.dialect.list(chunk.len() * 2 + 1, 1);
            let ids = self.dialect.again(2, chunk.len());
            // SET expressions see the row before the update; RETURNING after.
            let sql = format!(
                "WITH v (id, n) AS (VALUES {values}) \
                 UPDATE waitpoints SET pending = waitpoints.pending - v.n, \
                 status = CASE WHEN waitpoints.pending - v.n <= 0 THEN 'completed' ELSE waitpoints.status END, \
                 completed_at_ms = CASE WHEN waitpoints.pending - v.n <= 0 THEN {now_ph} ELSE waitpoints.completed_at_ms END \
                 FROM v WHERE waitpoints.id IN ({ids}) AND waitpoints.id = v.id AND waitpoints.status = 'waiting' \
                 RETURNING {RETURNED}"
            );
            let mut q = sqlx::query(&sql);
            for (id, n) in chunk {
                q = q.bind(id.as_str()).bind(**n);
            }
            q = q.bind(now);
            if self.dialect.rebinds() {
                for (id, _) in chunk {
                    q = q.bind(id.as_str());
                }
            }
            for r in q.fetch_all(&mut **tx).await? {
                if r.try_get::<i64, _>("pending")? > 0 {
                    continue;
                }
                let wp = waitpoint_from_row(&r)?;
                if !wp.parent_run_id.is_empty() {
                    parents.push(wp.parent_run_id.clone());
                }
                finished.push(wp);
            }
        }
        // Announced in id order, whatever order the rows came back in.
        finished.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut signals: Vec<Signal> = finished
            .iter()
            .map(|w| Signal::WaitpointFinished(w.id.clone()))
            .collect();
        if !parents.is_empty() {
            self.resume_parents(tx, &parents, now).await?;
            signals.push(Signal::AnyRuns);
        }
        self.notify_all(tx, &signals).await?;
        Ok(finished)
    }

    /// Re-queue suspended parents whose waitpoints finished. Resuming is
    /// not a failed attempt: each gets its attempt back.
    async fn resume_parents(
        &self,
        tx: &mut Transaction<'static, Any>,
        parents: &[String],
        now: i64,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE runs SET status = 'queued', available_at_ms = $1, max_attempts = max_attempts + 1, \
             updated_at_ms = $1 WHERE id IN ({}) AND status = 'waiting'",
            // `$n` on both databases: SQLite numbers a bare `?` from the
            // first parameter, which here is `$1`.
            super::dialect::params(2, parents.len())
        );
        let mut q = sqlx::query(&sql).bind(now);
        for p in parents {
            q = q.bind(p);
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Mark a waitpoint final and re-queue its parent.
    async fn finish(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        status: WaitpointStatus,
        parent: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE waitpoints SET status = $2, completed_at_ms = $3 WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let mut signals = vec![Signal::WaitpointFinished(id.to_string())];
        if !parent.is_empty() {
            self.resume_parents(tx, &[parent.to_string()], now).await?;
            signals.push(Signal::AnyRuns);
        }
        self.notify_all(tx, &signals).await
    }

    /// Suspend `parent` on waitpoint `wp_id` if it still runs that attempt.
    /// Only the lease holder of the parent's current attempt, in the
    /// waitpoint's namespace, can suspend it (false otherwise).
    async fn suspend_parent(
        &self,
        tx: &mut Transaction<'static, Any>,
        namespace: &str,
        p: &ParentRef,
        wp_id: &str,
        now: i64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "UPDATE runs SET status = 'waiting', lease_expires_at_ms = 0, updated_at_ms = $3 \
             WHERE id = $1 AND status = 'running' AND attempts = $2 AND namespace = $4 \
             AND worker_id = $5 RETURNING worker_id, started_at_ms",
        )
        .bind(&p.run_id)
        .bind(p.attempt as i64)
        .bind(now)
        .bind(namespace)
        .bind(&p.worker_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(r) = row else { return Ok(false) };
        let output = serde_json::json!({ "suspended_on": wp_id }).to_string();
        sqlx::query(
            "INSERT INTO run_attempts (run_id, attempt, worker_id, started_at_ms, finished_at_ms, ok, output_json, error) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, '') ON CONFLICT (run_id, attempt) DO NOTHING",
        )
        .bind(&p.run_id)
        .bind(p.attempt as i64)
        .bind(r.try_get::<String, _>("worker_id")?)
        .bind(r.try_get::<i64, _>("started_at_ms")?)
        .bind(now)
        .bind(output)
        .execute(&mut **tx)
        .await?;
        Ok(true)
    }

    /// Is `p` running its attempt under its worker's lease in `namespace`?
    async fn holds_run(
        &self,
        tx: &mut Transaction<'static, Any>,
        namespace: &str,
        p: &ParentRef,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM runs WHERE id = $1 AND namespace = $2 AND status = 'running' \
             AND attempts = $3 AND worker_id = $4",
        )
        .bind(&p.run_id)
        .bind(namespace)
        .bind(p.attempt as i64)
        .bind(&p.worker_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.is_some())
    }

    async fn journal(
        &self,
        tx: &mut Transaction<'static, Any>,
        run_id: &str,
        key: &str,
        value: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO run_steps (run_id, step_key, value_json, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, step_key) DO NOTHING",
        )
        .bind(run_id)
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The waitpoint of a publish-and-wait, inside the publish transaction.
    /// Returns (parent suspended, waitpoint already complete).
    pub(super) async fn insert_runs_waitpoint(
        &self,
        tx: &mut Transaction<'static, Any>,
        ev: &NewEvent,
        wp: &NewWaitpoint,
        now: i64,
    ) -> Result<(bool, bool)> {
        let total = ev.runs.len() as i64;
        let done = total == 0;
        let mut parent_id = String::new();
        let mut suspended = false;
        if let Some(p) = &wp.parent {
            // Journal only into a run this caller holds: suspending checks
            // that; with nothing to wait for, the same check without it.
            let holds = if done {
                self.holds_run(tx, &wp.namespace, p).await?
            } else {
                self.suspend_parent(tx, &wp.namespace, p, &wp.id, now)
                    .await?
            };
            if holds {
                // With the publish's trace context: the parent's resumed
                // attempt links to it (the span its children link to).
                let mut value = serde_json::json!({ "waitpoint_id": wp.id });
                if !ev.trace.is_empty() {
                    value["traceparent"] = ev.trace.traceparent.clone().into();
                    value["tracestate"] = ev.trace.tracestate.clone().into();
                }
                let value = value.to_string();
                self.journal(tx, &p.run_id, &p.step_key, &value, now)
                    .await?;
                if !done {
                    parent_id = p.run_id.clone();
                    suspended = true;
                }
            }
        }
        sqlx::query(
            "INSERT INTO waitpoints (id, namespace, kind, status, pending, total, event_id, parent_run_id, \
             timeout_at_ms, created_at_ms, completed_at_ms) VALUES ($1, $2, 'runs', $3, $4, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&wp.id)
        .bind(&wp.namespace)
        .bind(
            if done {
                WaitpointStatus::Completed
            } else {
                WaitpointStatus::Waiting
            }
            .as_str(),
        )
        .bind(total)
        .bind(&ev.id)
        .bind(&parent_id)
        .bind(wp.timeout_at_ms)
        .bind(now)
        .bind(if done { now } else { 0 })
        .execute(&mut **tx)
        .await?;
        Ok((suspended, done))
    }
}

#[async_trait]
impl WaitpointStore for SqlStore {
    async fn get_waitpoint(
        &self,
        ns: &str,
        id: &str,
    ) -> Result<Option<(Waitpoint, Vec<ChildResult>)>> {
        // One statement for the waitpoint and its children: a waiter reads
        // this once per answer. The children are the runs of the waitpoint's
        // event (`runs_by_event`) that point back at it (a replay's runs of
        // that event do not).
        let rows = sqlx::query(
            "SELECT w.*, r.id AS child_id, r.task_id AS child_task, r.status AS child_status, \
             r.output_json AS child_output, r.last_error AS child_error FROM waitpoints w \
             LEFT JOIN runs r ON w.kind = 'runs' AND r.event_id = w.event_id AND r.waitpoint_id = w.id \
             WHERE w.namespace = $1 AND w.id = $2 ORDER BY r.task_id, r.id",
        )
        .bind(ns)
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let wp = waitpoint_from_row(first)?;
        let mut children = Vec::new();
        for r in &rows {
            let Some(run_id) = r.try_get::<Option<String>, _>("child_id")? else {
                continue;
            };
            let status: String = r.try_get("child_status")?;
            children.push(ChildResult {
                run_id,
                task_id: r.try_get("child_task")?,
                status: RunStatus::parse(&status)
                    .ok_or_else(|| Error::Internal(format!("bad status {status}")))?,
                output_json: r.try_get("child_output")?,
                error: r.try_get("child_error")?,
            });
        }
        Ok(Some((wp, children)))
    }

    async fn create_waitpoint(&self, wp: &NewWaitpoint, now: i64) -> Result<Waitpoint> {
        if wp.kind == WaitpointKind::Runs {
            return Err(Error::InvalidArgument(
                "runs waitpoints are created by publish-and-wait".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let mut parent_id = String::new();
        if let Some(p) = &wp.parent {
            if !self
                .suspend_parent(&mut tx, &wp.namespace, p, &wp.id, now)
                .await?
            {
                return Err(Error::FailedPrecondition(format!(
                    "run {} is not running attempt {} under this worker's lease in namespace '{}'; it cannot suspend",
                    p.run_id, p.attempt, wp.namespace
                )));
            }
            // With the span the wait began in, as publish-and-wait keeps
            // its child publish's: the resumed attempt links to it.
            let mut value = serde_json::json!({ "waitpoint_id": wp.id });
            if !wp.trace.is_empty() {
                value["traceparent"] = wp.trace.traceparent.clone().into();
                value["tracestate"] = wp.trace.tracestate.clone().into();
            }
            let value = value.to_string();
            self.journal(&mut tx, &p.run_id, &p.step_key, &value, now)
                .await?;
            parent_id = p.run_id.clone();
        }
        sqlx::query(
            "INSERT INTO waitpoints (id, namespace, kind, status, pending, total, event_id, parent_run_id, \
             timeout_at_ms, created_at_ms) VALUES ($1, $2, $3, 'waiting', 0, 0, '', $4, $5, $6)",
        )
        .bind(&wp.id)
        .bind(&wp.namespace)
        .bind(wp.kind.as_str())
        .bind(&parent_id)
        .bind(wp.timeout_at_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_waitpoint(&wp.namespace, &wp.id)
            .await?
            .map(|(w, _)| w)
            .ok_or_else(|| Error::Internal("waitpoint vanished after insert".into()))
    }

    async fn complete_token(&self, ns: &str, id: &str, data: &str, now: i64) -> Result<Waitpoint> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT kind, status, parent_run_id FROM waitpoints WHERE namespace = $1 AND id = $2{}",
            self.dialect.for_update()
        ))
        .bind(ns)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            Error::not_found(
                EntityKind::Waitpoint,
                id,
                format!("waitpoint '{id}' not found in namespace '{ns}'"),
            )
        })?;
        let kind: WaitpointKind = row.try_get::<String, _>("kind")?.parse()?;
        let status: WaitpointStatus = row.try_get::<String, _>("status")?.parse()?;
        if kind != WaitpointKind::Token {
            return Err(Error::FailedPrecondition(format!(
                "waitpoint '{id}' is a {kind} waitpoint; only token waitpoints are completed from outside"
            )));
        }
        if status != WaitpointStatus::Waiting {
            return Err(Error::FailedPrecondition(format!(
                "waitpoint '{id}' is already {status}"
            )));
        }
        sqlx::query("UPDATE waitpoints SET data_json = $2 WHERE id = $1")
            .bind(id)
            .bind(data)
            .execute(&mut *tx)
            .await?;
        self.finish(
            &mut tx,
            id,
            WaitpointStatus::Completed,
            &row.try_get::<String, _>("parent_run_id")?,
            now,
        )
        .await?;
        tx.commit().await?;
        self.announce(vec![id.to_string()]);
        self.get_waitpoint(ns, id)
            .await?
            .map(|(w, _)| w)
            .ok_or_else(|| Error::Internal("waitpoint vanished after completion".into()))
    }

    async fn expire_waitpoints(&self, now: i64) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "SELECT id, kind, parent_run_id FROM waitpoints WHERE status = 'waiting' AND timeout_at_ms > 0 \
             AND timeout_at_ms <= $1 ORDER BY id LIMIT 500{}",
            self.dialect.skip_locked()
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut finished = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            let kind: WaitpointKind = r.try_get::<String, _>("kind")?.parse()?;
            let status = if kind == WaitpointKind::Time {
                WaitpointStatus::Completed
            } else {
                WaitpointStatus::TimedOut
            };
            self.finish(
                &mut tx,
                &id,
                status,
                &r.try_get::<String, _>("parent_run_id")?,
                now,
            )
            .await?;
            finished.push(id);
        }
        tx.commit().await?;
        self.announce(finished.clone());
        Ok(finished)
    }

    async fn record_step(
        &self,
        namespace: &str,
        step: &ParentRef,
        value: &str,
        now: i64,
    ) -> Result<String> {
        let (run_id, attempt, key) = (&step.run_id, step.attempt, &step.step_key);
        let mut tx = self.begin_write().await?;
        let ok = sqlx::query(
            "SELECT 1 AS one FROM runs WHERE id = $1 AND namespace = $2 AND status = 'running' \
             AND attempts = $3 AND worker_id = $4",
        )
        .bind(run_id)
        .bind(namespace)
        .bind(attempt as i64)
        .bind(&step.worker_id)
        .fetch_optional(&mut *tx)
        .await?;
        if ok.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "run {run_id} is not running attempt {attempt} under this worker's lease in namespace '{namespace}'; its steps cannot be recorded"
            )));
        }
        self.journal(&mut tx, run_id, key, value, now).await?;
        let stored: String =
            sqlx::query("SELECT value_json FROM run_steps WHERE run_id = $1 AND step_key = $2")
                .bind(run_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?
                .try_get("value_json")?;
        tx.commit().await?;
        Ok(stored)
    }
}
