//! Every live API key of the store, in this replica's memory: checking a
//! key is a SHA-256 and a map lookup, never a store read. The ring is
//! reloaded whole when a key changes (`Signal::Keys` from any replica, or
//! this replica's own change) and every `RELOAD` regardless, so a
//! revocation takes effect everywhere within a few seconds even if a
//! notification is lost. `last_used_at` is kept in memory and written back
//! on the same tick.

use super::key;
use super::principal::Principal;
use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::storage::AuthStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a revoked key can still be used on a replica that missed
/// the change's notification.
pub const RELOAD: Duration = Duration::from_secs(3);

struct Entry {
    principal: Arc<Principal>,
    expires_at_ms: i64,
    /// Last use seen here (ms), and the value last written to the store.
    last_used: AtomicI64,
    written: AtomicI64,
}

/// The keys, and whether a request must present one.
pub struct Keyring {
    required: bool,
    keys: RwLock<Arc<HashMap<[u8; 32], Arc<Entry>>>>,
    reload: tokio::sync::Notify,
}

impl Keyring {
    /// An empty ring; `required`: requests without a valid key are refused.
    pub fn new(required: bool) -> Self {
        Keyring {
            required,
            keys: RwLock::new(Arc::default()),
            reload: tokio::sync::Notify::new(),
        }
    }

    /// Whether requests must present a key.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Ask the reload loop to read the keys again now.
    pub fn reload_soon(&self) {
        self.reload.notify_one();
    }

    /// The caller presenting `authorization` (an `Authorization` header's
    /// value). With auth off: [`Principal::anonymous`], whatever is sent.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Principal>> {
        if !self.required {
            return Ok(Principal::anonymous());
        }
        let Some(value) = authorization else {
            return Err(Error::Unauthenticated(
                "this engine requires an API key: send `authorization: Bearer fo_…` \
                 (SDK: Client::api_key or FANOUT_API_KEY; CLI: --api-key or FANOUT_API_KEY)"
                    .into(),
            ));
        };
        let text = std::str::from_utf8(value)
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                Error::Unauthenticated("authorization must be `Bearer <API key>`".into())
            })?;
        key::check(text)
            .map_err(|why| Error::Unauthenticated(format!("the API key is malformed: {why}")))?;
        let digest = key::digest(text);
        let entry = self
            .keys
            .read()
            .map_err(|_| Error::Internal("keyring lock poisoned".into()))?
            .get(&digest)
            .cloned();
        let Some(entry) = entry else {
            return Err(Error::Unauthenticated(format!(
                "API key {} is unknown or revoked",
                key::public_id(text)
            )));
        };
        let now = now_ms();
        if entry.expires_at_ms != 0 && entry.expires_at_ms <= now {
            return Err(Error::Unauthenticated(format!(
                "API key {} ('{}') has expired",
                entry.principal.key_id, entry.principal.name
            )));
        }
        // Written at most once a second per key: a shared line read by every
        // request is cheap, one written by every request is not.
        if now - entry.last_used.load(Ordering::Relaxed) > 1_000 {
            entry.last_used.store(now, Ordering::Relaxed);
        }
        Ok(entry.principal.clone())
    }

    /// Whether the key with this public id is still live here (long-lived
    /// worker sessions check it as they go).
    pub fn is_live(&self, key_id: &str) -> bool {
        if !self.required || key_id.is_empty() {
            return true;
        }
        let now = now_ms();
        self.keys.read().is_ok_and(|k| {
            k.values().any(|e| {
                e.principal.key_id == key_id && (e.expires_at_ms == 0 || e.expires_at_ms > now)
            })
        })
    }

    /// Replace the ring with the store's live keys (keeping unwritten
    /// last-use times).
    pub async fn load(&self, store: &dyn AuthStore) -> Result<usize> {
        // Keys expired in the last day stay, so their callers hear
        // "expired" rather than "unknown".
        let live = store.live_keys(now_ms() - 86_400_000).await?;
        let old = self
            .keys
            .read()
            .map_err(|_| Error::Internal("keyring lock poisoned".into()))?
            .clone();
        let mut map = HashMap::with_capacity(live.len());
        for k in live {
            let Some(digest) = key::parse_hex(&k.hash) else {
                tracing::warn!(key = %k.id, "api key with a malformed hash ignored");
                continue;
            };
            let (used, written) =
                old.get(&digest)
                    .map_or((k.last_used_at_ms, k.last_used_at_ms), |e| {
                        (
                            e.last_used.load(Ordering::Relaxed).max(k.last_used_at_ms),
                            e.written.load(Ordering::Relaxed).max(k.last_used_at_ms),
                        )
                    });
            map.insert(
                digest,
                Arc::new(Entry {
                    principal: Arc::new(Principal::from_key(&k)),
                    expires_at_ms: k.expires_at_ms,
                    last_used: AtomicI64::new(used),
                    written: AtomicI64::new(written),
                }),
            );
        }
        let n = map.len();
        *self
            .keys
            .write()
            .map_err(|_| Error::Internal("keyring lock poisoned".into()))? = Arc::new(map);
        Ok(n)
    }

    /// Write back last-use times that moved since the last write.
    async fn write_last_used(&self, store: &dyn AuthStore) -> Result<()> {
        let keys = self
            .keys
            .read()
            .map_err(|_| Error::Internal("keyring lock poisoned".into()))?
            .clone();
        let mut moved = Vec::new();
        for e in keys.values() {
            let used = e.last_used.load(Ordering::Relaxed);
            if used > e.written.load(Ordering::Relaxed) {
                moved.push((e.principal.key_id.clone(), used));
                e.written.store(used, Ordering::Relaxed);
            }
        }
        store.touch_keys(&moved).await
    }

    /// Reload on every change signal and every [`RELOAD`]; write last-use
    /// times on the way. Ends at `cancel` (after a last write).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn crate::storage::Store>,
        cancel: CancellationToken,
    ) {
        loop {
            let stop = tokio::select! {
                _ = self.reload.notified() => false,
                _ = tokio::time::sleep(RELOAD) => false,
                _ = cancel.cancelled() => true,
            };
            if let Err(e) = self.write_last_used(store.as_ref()).await {
                tracing::debug!(error = %e, "api key last-use write failed");
            }
            if stop {
                return;
            }
            if let Err(e) = self.load(store.as_ref()).await {
                tracing::warn!(error = %e, "api keys reload failed; keeping the loaded ones");
            }
        }
    }
}
