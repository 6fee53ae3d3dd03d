//! Event definitions (versioned schemas with options) and subscriptions.

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Event definitions (versioned schemas with options) and subscriptions.
#[async_trait]
pub trait Definitions: Send + Sync {
    /// Create version 1, or a new version when the schema differs from the
    /// latest; the same schema returns the latest with `created = false`.
    async fn define_event(
        &self,
        namespace: &str,
        name: &str,
        schema_json: &str,
        schema_canonical: &str,
        description: &str,
        options: &EventOptions,
    ) -> Result<(EventDef, bool)>;

    /// One version (`None`: the latest).
    async fn get_event(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDef>>;

    /// The latest version of every event in the namespace, by name.
    async fn list_events(&self, namespace: &str) -> Result<Vec<EventDef>>;

    /// Create or replace task subscriptions (keyed by namespace + task
    /// id). Their state, breaker and endpoint are left as they are, and an
    /// HTTP subscription of the same id is never overwritten.
    async fn upsert_subscriptions(&self, subs: &[Subscription]) -> Result<()>;

    /// Create a subscription with every field (`Create`: `false` when the
    /// id is taken) or replace an existing one's settings — everything but
    /// its state (`Update`: `false` when there is none).
    async fn save_subscription(&self, sub: &Subscription, mode: SaveMode) -> Result<bool>;

    /// Delete a subscription; its runs stay as they are. `false` when
    /// there is none.
    async fn delete_subscription(&self, namespace: &str, task_id: &str) -> Result<bool>;

    /// All subscriptions of a namespace (`None`: of every namespace).
    async fn list_subscriptions(&self, namespace: Option<&str>) -> Result<Vec<Subscription>>;

    /// What the webhook supervisor watches, in every namespace: HTTP
    /// subscribers and tripped subscriptions (a few rows, however many
    /// task subscriptions there are).
    async fn list_watched_subscriptions(&self) -> Result<Vec<Subscription>>;

    /// Move a subscription to `to`, only from one of `from` (empty: from
    /// any state), so replicas racing on a breaker agree; `false` when it
    /// is absent or in another state.
    async fn set_state(
        &self,
        namespace: &str,
        task_id: &str,
        to: SubscriptionState,
        from: &[SubscriptionState],
    ) -> Result<bool>;
}
