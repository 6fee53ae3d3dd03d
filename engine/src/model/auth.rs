//! API keys and audit entries as stored. The key's text is never here:
//! only its SHA-256 (`auth/key.rs` makes and checks keys).

/// What a key may do. A key holds one or more; `admin` includes the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Publish events (optionally only some names: [`ApiKey::events`]),
    /// complete tokens.
    Publish,
    /// Register tasks, receive and complete runs, record steps, suspend.
    Worker,
    /// List and inspect everything in the key's namespace.
    Read,
    /// Define events, act on dead letters, replays, subscriptions, keys.
    Admin,
}

wire_names!(Scope {
    Publish = "publish",
    Worker = "worker",
    Read = "read",
    Admin = "admin",
});

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public prefix (`fo_` + 8 characters): shown, used to revoke.
    pub id: String,
    /// Unique, chosen by its creator; what the audit log names.
    pub name: String,
    /// SHA-256 of the key's text, lowercase hex.
    pub hash: String,
    /// The namespace it is bound to; `None`: every namespace.
    pub namespace: Option<String>,
    /// Sorted, no repeats, at least one.
    pub scopes: Vec<Scope>,
    /// Event-name patterns a `publish` scope is limited to (empty: any).
    pub events: Vec<String>,
    /// The key (or "bootstrap", "cli") that created it.
    pub created_by: String,
    pub created_at_ms: i64,
    /// 0: never.
    pub expires_at_ms: i64,
    /// 0: not revoked.
    pub revoked_at_ms: i64,
    /// Updated lazily (at most every `auth.touch_interval`), 0: never used.
    pub last_used_at_ms: i64,
}

impl ApiKey {
    /// Usable at `now`: not revoked, not expired.
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.revoked_at_ms == 0 && (self.expires_at_ms == 0 || self.expires_at_ms > now_ms)
    }
}

/// One recorded mutation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: String,
    pub at_ms: i64,
    /// Where it happened ('' for keys bound to every namespace).
    pub namespace: String,
    /// The acting key's name; `anonymous` with auth off.
    pub actor: String,
    /// A dotted verb: `event.define`, `dlq.retry`, `key.create`, …
    pub action: String,
    /// What it touched: an event name, a run id, a subscription, a key id.
    pub target: String,
    /// A short JSON object (at most 4 KiB).
    pub detail: String,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this namespace (`None`: all).
    pub namespace: Option<String>,
    /// At or after this time (epoch ms; 0: any).
    pub since_ms: i64,
    /// Strictly older than this entry id (paging; empty: from the newest).
    pub before_id: String,
    /// At most this many (clamped to 1..=1000).
    pub limit: u32,
}
