//! API keys and the audit log. Keys are read whole into each replica's
//! memory (`auth::Keyring`), so checking one costs no store read; changes
//! are signalled to the other replicas (`Signal::Keys`).

use crate::error::Result;
use crate::model::{ApiKey, AuditEntry, AuditQuery};
use async_trait::async_trait;

#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Store a new key. `only_if_none`: only when no key exists at all
    /// (the bootstrap key; `Ok(false)` when one does). A taken name is
    /// `AlreadyExists`.
    async fn insert_key(&self, key: &ApiKey, only_if_none: bool) -> Result<bool>;

    /// Every key (revoked and expired included), newest first; only those
    /// bound to `namespace` when given.
    async fn list_keys(&self, namespace: Option<&str>) -> Result<Vec<ApiKey>>;

    /// Keys usable at `now_ms` (the keyring's load).
    async fn live_keys(&self, now_ms: i64) -> Result<Vec<ApiKey>>;

    /// Revoke the key with this id or name, if it is bound to `namespace`
    /// when given. `None`: no such key (there). Revoking twice keeps the
    /// first time.
    async fn revoke_key(
        &self,
        id_or_name: &str,
        namespace: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>>;

    /// Record when keys were last used (`(id, ms)`; never moves back).
    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<()>;

    /// Append one audit entry.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<()>;

    /// Audit entries, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}
