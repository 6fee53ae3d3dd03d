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

    /// Create or replace subscriptions (keyed by namespace + task id).
    async fn upsert_subscriptions(&self, subs: &[Subscription]) -> Result<()>;

    /// All subscriptions of a namespace (`None`: of every namespace).
    async fn list_subscriptions(&self, namespace: Option<&str>) -> Result<Vec<Subscription>>;

    /// Pause or resume one subscription; `false` when there is none.
    async fn set_paused(&self, namespace: &str, task_id: &str, paused: bool) -> Result<bool>;
}
