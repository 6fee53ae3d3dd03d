//! API keys (create, list, revoke) and the audit log on [`Engine`]. The
//! keyring itself is `crate::auth`; this is what gRPC, the CLI's direct
//! mode and the console call.

use super::Engine;
use crate::auth::{Principal, key};
use crate::error::{Error, Result};
use crate::model::{ApiKey, AuditEntry, AuditQuery, Scope, new_id, now_ms};
use std::sync::Arc;

/// At most this many event patterns on one key.
pub const MAX_KEY_EVENTS: usize = 50;
/// Longest lifetime a key can be given.
pub const MAX_KEY_LIFETIME_MS: i64 = 10 * 366 * 24 * 3_600_000;
/// Longest audit detail kept (bytes of JSON).
const MAX_DETAIL: usize = 4096;

/// What a new key may do.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// `None`: every namespace (only an unbound admin may make one).
    pub namespace: Option<String>,
    /// Event-name patterns `publish` is limited to (empty: any).
    pub events: Vec<String>,
    /// Lifetime from now, ms (0: never expires).
    pub expires_in_ms: i64,
}

impl KeySpec {
    /// Every problem with the spec, naming the field.
    fn check(&self) -> Result<()> {
        let n = &self.name;
        if n.is_empty()
            || n.len() > 100
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'))
        {
            return Err(Error::InvalidArgument(format!(
                "key.name '{}' is invalid: 1-100 characters of A-Z a-z 0-9 _ - . : @",
                crate::error::clip(n, 120)
            )));
        }
        if self.scopes.is_empty() {
            return Err(Error::InvalidArgument(
                "key.scopes: at least one of publish, worker, read, admin".into(),
            ));
        }
        if let Some(ns) = &self.namespace {
            crate::routing::schema::check_identifier("key.namespace", ns)?;
        }
        if self.events.len() > MAX_KEY_EVENTS {
            return Err(Error::InvalidArgument(format!(
                "key.events: at most {MAX_KEY_EVENTS} patterns, got {}",
                self.events.len()
            )));
        }
        for (i, e) in self.events.iter().enumerate() {
            crate::routing::pattern::check(&format!("key.events[{i}]"), e)?;
        }
        if !self.events.is_empty() && !self.scopes.contains(&Scope::Publish) {
            return Err(Error::InvalidArgument(
                "key.events limits what a publish key may publish: add --scope publish, or drop --events".into(),
            ));
        }
        if !(0..=MAX_KEY_LIFETIME_MS).contains(&self.expires_in_ms) {
            return Err(Error::InvalidArgument(format!(
                "key.expires_in_ms: between 0 (never) and {MAX_KEY_LIFETIME_MS} (10 years)"
            )));
        }
        Ok(())
    }
}

impl Engine {
    /// The in-memory keyring requests are checked against.
    pub fn keyring(&self) -> &Arc<crate::auth::Keyring> {
        &self.inner.keyring
    }

    /// Make a key; its text is in the answer only. A caller bound to a
    /// namespace makes keys bound to it.
    pub async fn create_key(&self, spec: KeySpec) -> Result<(ApiKey, String)> {
        let made = create_key(self.store().as_ref(), spec, caller_name(), false).await?;
        let (key, text) = made.ok_or_else(|| Error::Internal("key not stored".into()))?;
        // Usable on this replica when the caller hears of it.
        self.keyring().load(self.store().as_ref()).await?;
        self.audit(
            key.namespace.as_deref().unwrap_or(""),
            "key.create",
            &key.id,
            serde_json::json!({"name": key.name, "scopes": key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
        )
        .await;
        Ok((key, text))
    }

    /// Keys visible to the caller (a bound caller sees its namespace's).
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let scope = crate::auth::caller().and_then(|p| p.namespace.clone());
        self.store().list_keys(scope.as_deref()).await
    }

    /// Revoke a key by id (`fo_…`) or name; every replica refuses it within
    /// [`crate::auth::RELOAD`].
    pub async fn revoke_key(&self, id_or_name: &str) -> Result<ApiKey> {
        let scope = crate::auth::caller().and_then(|p| p.namespace.clone());
        let key = self
            .store()
            .revoke_key(id_or_name, scope.as_deref(), now_ms())
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    crate::error::EntityKind::Route,
                    id_or_name,
                    format!(
                        "no API key '{}' (give its id fo_… or its name; `fanout keys list`)",
                        crate::error::clip(id_or_name, 120)
                    ),
                )
            })?;
        self.keyring().load(self.store().as_ref()).await?;
        self.audit(
            key.namespace.as_deref().unwrap_or(""),
            "key.revoke",
            &key.id,
            serde_json::json!({"name": key.name}),
        )
        .await;
        Ok(key)
    }

    /// Record a mutation by the current caller ([`crate::auth::caller`];
    /// `engine` for background work). After the change committed: a failure
    /// here is logged, not returned (the change stands).
    pub async fn audit(
        &self,
        namespace: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let mut detail = detail.to_string();
        if detail.len() > MAX_DETAIL {
            detail = serde_json::json!({"truncated": crate::error::clip(&detail, MAX_DETAIL - 40)})
                .to_string();
        }
        let entry = AuditEntry {
            id: new_id(),
            at_ms: now_ms(),
            namespace: namespace.into(),
            actor: caller_name(),
            action: action.into(),
            target: crate::error::clip(target, 500).to_string(),
            detail,
        };
        if let Err(e) = self.store().record_audit(&entry).await {
            tracing::error!(error = %e, action, target, "audit entry not recorded");
        }
    }

    /// Audit entries, newest first; a bound caller sees its namespace's.
    pub async fn list_audit(&self, mut query: AuditQuery) -> Result<Vec<AuditEntry>> {
        if let Some(ns) = crate::auth::caller().and_then(|p| p.namespace.clone()) {
            query.namespace = Some(ns);
        }
        self.store().list_audit(&query).await
    }

    /// On a store with no key at all, make one admin key for every
    /// namespace and return its text (the first start of `serve`); `None`
    /// when keys exist (another replica may have just made it).
    pub async fn bootstrap_key(&self) -> Result<Option<String>> {
        let spec = KeySpec {
            name: "bootstrap-admin".into(),
            scopes: vec![Scope::Admin],
            ..KeySpec::default()
        };
        match create_key(self.store().as_ref(), spec, "bootstrap".into(), true).await {
            Ok(Some((key, text))) => {
                self.keyring().load(self.store().as_ref()).await?;
                let _ = key;
                Ok(Some(text))
            }
            Ok(None) | Err(Error::AlreadyExists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The current caller's name for the audit log.
fn caller_name() -> String {
    crate::auth::caller().map_or_else(|| "engine".into(), |p| p.name.clone())
}

/// Make and store a key (`only_if_none`: only on a store without keys;
/// `Ok(None)` otherwise). Used by the engine and by `fanout keys create
/// --database-url`, which works on the store with no engine running.
pub async fn create_key(
    store: &dyn crate::storage::AuthStore,
    mut spec: KeySpec,
    created_by: String,
    only_if_none: bool,
) -> Result<Option<(ApiKey, String)>> {
    if let Some(p) = crate::auth::caller() {
        bind_to_caller(&p, &mut spec)?;
    }
    spec.check()?;
    spec.scopes.sort();
    spec.scopes.dedup();
    let made = key::generate();
    let now = now_ms();
    let key = ApiKey {
        id: made.id,
        name: spec.name,
        hash: made.hash,
        namespace: spec.namespace,
        scopes: spec.scopes,
        events: spec.events,
        created_by,
        created_at_ms: now,
        expires_at_ms: if spec.expires_in_ms > 0 {
            now + spec.expires_in_ms
        } else {
            0
        },
        revoked_at_ms: 0,
        last_used_at_ms: 0,
    };
    Ok(store
        .insert_key(&key, only_if_none)
        .await?
        .then_some((key, made.text)))
}

/// A caller bound to a namespace makes keys bound to the same one.
fn bind_to_caller(p: &Principal, spec: &mut KeySpec) -> Result<()> {
    match (&p.namespace, &spec.namespace) {
        (None, _) => Ok(()),
        (Some(own), None) => {
            spec.namespace = Some(own.clone());
            Ok(())
        }
        (Some(own), Some(asked)) if own == asked => Ok(()),
        (Some(own), Some(asked)) => Err(Error::PermissionDenied(format!(
            "key '{}' is bound to namespace '{own}' and can make keys only there, not in '{}'",
            p.name,
            crate::error::clip(asked, 200)
        ))),
    }
}
