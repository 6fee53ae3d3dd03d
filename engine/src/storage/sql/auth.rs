//! API keys and the audit log.

use super::SqlStore;
use crate::error::{Error, Result};
use crate::model::{ApiKey, AuditEntry, AuditQuery, Scope};
use crate::signal::Signal;
use crate::storage::AuthStore;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

const KEY_COLUMNS: &str = "id, name, hash, namespace, scopes, events, created_by, created_at_ms, \
    expires_at_ms, revoked_at_ms, last_used_at_ms";

fn key_from_row(r: &AnyRow) -> Result<ApiKey> {
    let ns: String = r.try_get("namespace")?;
    let scopes: String = r.try_get("scopes")?;
    let events: String = r.try_get("events")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        hash: r.try_get("hash")?,
        namespace: (!ns.is_empty()).then_some(ns),
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse::<Scope>)
            .collect::<Result<_>>()?,
        events: serde_json::from_str(&events)
            .map_err(|e| Error::Internal(format!("api_keys.events: {e}")))?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
        last_used_at_ms: r.try_get("last_used_at_ms")?,
    })
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        namespace: r.try_get("namespace")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        detail: r.try_get("detail")?,
    })
}

#[async_trait]
impl AuthStore for SqlStore {
    async fn insert_key(&self, key: &ApiKey, only_if_none: bool) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        if only_if_none {
            let any = sqlx::query("SELECT 1 FROM api_keys LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
            if any.is_some() {
                return Ok(false);
            }
        }
        let scopes = key
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let events = serde_json::to_string(&key.events)
            .map_err(|e| Error::Internal(format!("api key events: {e}")))?;
        let sql = format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(&sql)
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.hash)
            .bind(key.namespace.as_deref().unwrap_or(""))
            .bind(scopes)
            .bind(events)
            .bind(&key.created_by)
            .bind(key.created_at_ms)
            .bind(key.expires_at_ms)
            .bind(key.revoked_at_ms)
            .bind(key.last_used_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| match Error::from(e) {
                Error::AlreadyExists(_) => Error::AlreadyExists(format!(
                    "an API key named '{}' already exists (names are unique; revoked keys keep theirs)",
                    key.name
                )),
                e => e,
            })?;
        self.notify(&mut tx, Signal::Keys).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_keys(&self, namespace: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = $1 ORDER BY created_at_ms DESC, id"
                ))
                .bind(ns)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_ms DESC, id"
                ))
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    async fn live_keys(&self, now_ms: i64) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at_ms = 0 \
             AND (expires_at_ms = 0 OR expires_at_ms > $1)"
        ))
        .bind(now_ms)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(
        &self,
        id_or_name: &str,
        namespace: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE api_keys SET revoked_at_ms = CASE WHEN revoked_at_ms = 0 THEN $1 ELSE revoked_at_ms END \
             WHERE (id = $2 OR name = $2) AND ($3 = '' OR namespace = $3) RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(now_ms)
            .bind(id_or_name)
            .bind(namespace.unwrap_or(""))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.notify(&mut tx, Signal::Keys).await?;
        tx.commit().await?;
        Ok(Some(key_from_row(&row)?))
    }

    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_relaxed("").await?;
        for (id, at) in used {
            sqlx::query(
                "UPDATE api_keys SET last_used_at_ms = $1 WHERE id = $2 AND last_used_at_ms < $1",
            )
            .bind(*at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_audit(&self, e: &AuditEntry) -> Result<()> {
        // Durable like a publish (the writer pool commits synchronously):
        // an audit trail that a power loss can trim is not one.
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_log (id, at_ms, namespace, actor, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(e.at_ms)
        .bind(&e.namespace)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let limit = i64::from(q.limit.clamp(1, 1000));
        let rows = sqlx::query(
            "SELECT id, at_ms, namespace, actor, action, target, detail FROM audit_log \
             WHERE ($1 = '' OR namespace = $1) AND at_ms >= $2 AND ($3 = '' OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(q.namespace.as_deref().unwrap_or(""))
        .bind(q.since_ms)
        .bind(&q.before_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
