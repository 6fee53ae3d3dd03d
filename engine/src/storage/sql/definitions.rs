//! Event definitions (versioned schemas and options) and subscriptions.

use super::SqlStore;
use super::rows::{DEF_SELECT, def_from_row, sub_from_row};
use crate::error::{Error, Result};
use crate::model::*;
use crate::signal::Signal;
use crate::storage::Definitions;
use async_trait::async_trait;
use sqlx::Row;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `$1`..`$11` of both subscription statements: the fields a task's
/// registration sets (`$11` is the update time).
fn bind_task_fields<'q>(q: AnyQuery<'q>, s: &'q Subscription) -> AnyQuery<'q> {
    q.bind(&s.namespace)
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
}

#[async_trait]
impl Definitions for SqlStore {
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
            self.notify(&mut tx, Signal::Events(namespace.to_string()))
                .await?;
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
            let q = sqlx::query(
                "INSERT INTO subscriptions (namespace, task_id, event, filter_json, consumer_group, max_attempts, \
                 initial_backoff_ms, max_backoff_ms, backoff_multiplier, lease_ms, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 ON CONFLICT (namespace, task_id) DO UPDATE SET event = excluded.event, \
                 filter_json = excluded.filter_json, consumer_group = excluded.consumer_group, \
                 max_attempts = excluded.max_attempts, initial_backoff_ms = excluded.initial_backoff_ms, \
                 max_backoff_ms = excluded.max_backoff_ms, backoff_multiplier = excluded.backoff_multiplier, \
                 lease_ms = excluded.lease_ms, updated_at_ms = excluded.updated_at_ms \
                 WHERE subscriptions.endpoint_json = ''",
            );
            bind_task_fields(q, s).execute(&mut *tx).await?;
        }
        let mut namespaces: Vec<&str> = subs.iter().map(|s| s.namespace.as_str()).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        for ns in namespaces {
            self.notify(&mut tx, Signal::Subscriptions(ns.to_string()))
                .await?;
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

    async fn list_watched_subscriptions(&self) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(
            "SELECT * FROM subscriptions WHERE endpoint_json <> '' OR state = 'tripped' \
             ORDER BY namespace, task_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(sub_from_row).collect()
    }

    async fn save_subscription(&self, s: &Subscription, mode: SaveMode) -> Result<bool> {
        let sql = match mode {
            SaveMode::Create => {
                "INSERT INTO subscriptions (namespace, task_id, event, filter_json, consumer_group, max_attempts, \
                 initial_backoff_ms, max_backoff_ms, backoff_multiplier, lease_ms, created_at_ms, updated_at_ms, \
                 breaker_after, probe_after_ms, endpoint_json, state, paused) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (namespace, task_id) DO NOTHING"
            }
            SaveMode::Update => {
                "UPDATE subscriptions SET event = $3, filter_json = $4, consumer_group = $5, max_attempts = $6, \
                 initial_backoff_ms = $7, max_backoff_ms = $8, backoff_multiplier = $9, lease_ms = $10, \
                 updated_at_ms = $11, breaker_after = $12, probe_after_ms = $13, endpoint_json = $14 \
                 WHERE namespace = $1 AND task_id = $2"
            }
        };
        let mut tx = self.begin_write().await?;
        let q = bind_task_fields(sqlx::query(sql), s)
            .bind(i64::from(s.breaker.after_failures))
            .bind(s.breaker.probe_after_ms as i64)
            .bind(
                s.endpoint
                    .as_ref()
                    .map(Endpoint::to_json)
                    .unwrap_or_default(),
            );
        // Only a new subscription takes its state from the caller.
        let q = match mode {
            SaveMode::Create => q.bind(s.state.as_str()).bind(i64::from(s.paused())),
            SaveMode::Update => q,
        };
        let n = q.execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            self.notify(&mut tx, Signal::Subscriptions(s.namespace.clone()))
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_subscription(&self, namespace: &str, task_id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM subscriptions WHERE namespace = $1 AND task_id = $2")
            .bind(namespace)
            .bind(task_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            self.notify(&mut tx, Signal::Subscriptions(namespace.to_string()))
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_state(
        &self,
        namespace: &str,
        task_id: &str,
        to: SubscriptionState,
        from: &[SubscriptionState],
    ) -> Result<bool> {
        // The allowed prior states as one text list: a fixed statement
        // whatever their number.
        let from_list: String = from.iter().map(|s| format!(",{},", s.as_str())).collect();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE subscriptions SET state = $3, paused = $4, updated_at_ms = $5 \
             WHERE namespace = $1 AND task_id = $2 AND ($6 = '' OR $6 LIKE '%,' || state || ',%')",
        )
        .bind(namespace)
        .bind(task_id)
        .bind(to.as_str())
        .bind(i64::from(to.holds_runs()))
        .bind(now_ms())
        .bind(&from_list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            self.notify(&mut tx, Signal::Subscriptions(namespace.to_string()))
                .await?;
            if !to.holds_runs() {
                self.notify(&mut tx, Signal::Runs(namespace.to_string()))
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
