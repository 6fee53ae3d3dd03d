//! In-memory view of event definitions (with compiled schemas) and
//! subscriptions, so publish touches the store only to write.
//!
//! The store is the source of truth. Entries load on first use and are
//! dropped when this engine changes them, or when another replica announces
//! a change (Postgres `NOTIFY`, see `peers`). A load never re-inserts what
//! an invalidation removed while it read (a generation check), and no entry
//! is trusted for more than 10 s, so a missed notification cannot keep a
//! stale list.

use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::model::EventDef;
use crate::routing::LiveSub;
use crate::routing::filter::Filter;
use crate::routing::index::Routes;
use crate::routing::schema::{self, CompiledSchema};
use crate::storage::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// An event definition with its schema compiled once.
#[derive(Debug)]
pub struct LiveEvent {
    pub def: EventDef,
    pub schema: CompiledSchema,
}

/// How long an entry is trusted without news. Changes made through this
/// engine, and (on Postgres) through any replica, invalidate at once; this
/// bounds what a missed notification can cost.
const TTL: Duration = Duration::from_secs(10);

/// A cache whose loads cannot resurrect what an invalidation removed: a
/// loader notes the generation before reading the store and inserts only
/// if no invalidation happened meanwhile (both under the map's lock).
struct Cache<K, V> {
    map: RwLock<HashMap<K, (Instant, Arc<V>)>>,
    generation: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone, V> Cache<K, V> {
    fn new() -> Self {
        Cache {
            map: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self, key: &K) -> Result<Option<Arc<V>>> {
        let map = self.map.read().map_err(poisoned)?;
        Ok(map
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone()))
    }

    /// The generation to hand to [`Cache::insert`] after reading the store.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn insert(&self, key: K, value: Arc<V>, generation: u64) -> Result<()> {
        let mut map = self.map.write().map_err(poisoned)?;
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(key, (Instant::now(), value));
        }
        Ok(())
    }

    fn invalidate(&self, keep: impl Fn(&K) -> bool) {
        if let Ok(mut map) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.retain(|k, _| keep(k));
        }
    }
}

/// Cache of definitions and subscriptions per namespace.
pub struct Registry {
    store: Arc<dyn Store>,
    events: Cache<(String, String), LiveEvent>,
    subs: Cache<String, Routes>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            events: Cache::new(),
            subs: Cache::new(),
        }
    }

    /// The latest definition of an event, or NOT_FOUND naming it.
    pub async fn event(&self, ns: &str, name: &str) -> Result<Arc<LiveEvent>> {
        let key = (ns.to_string(), name.to_string());
        if let Some(e) = self.events.get(&key)? {
            return Ok(e);
        }
        let generation = self.events.generation();
        let def = self.store.get_event(ns, name, None).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Event,
                name,
                format!("event '{name}' is not defined in namespace '{ns}'"),
            )
        })?;
        let schema =
            CompiledSchema::compile(&schema::parse_json("schema_json", &def.schema_json)?)?;
        let live = Arc::new(LiveEvent { def, schema });
        self.events.insert(key, live.clone(), generation)?;
        Ok(live)
    }

    /// Subscriptions of a namespace, filters compiled.
    pub async fn subscriptions(&self, ns: &str) -> Result<Arc<Routes>> {
        if let Some(s) = self.subs.get(&ns.to_string())? {
            return Ok(s);
        }
        let generation = self.subs.generation();
        // Indexed here, when the list changes: never per publish.
        let subs = Arc::new(Routes::new(self.load_subscriptions(ns).await?));
        self.subs.insert(ns.to_string(), subs.clone(), generation)?;
        Ok(subs)
    }

    async fn load_subscriptions(&self, ns: &str) -> Result<Vec<LiveSub>> {
        let mut live = Vec::new();
        for sub in self.store.list_subscriptions(Some(ns)).await? {
            // Filters were validated at registration; one that no longer
            // compiles matches nothing (never "everything") and is reported.
            // `{}` was accepted (as "every event") before it was refused
            // like EventBridge does: kept with that meaning.
            let text = if sub.filter_json.trim() == "{}" {
                ""
            } else {
                sub.filter_json.as_str()
            };
            match Filter::parse(text) {
                Ok(filter) => live.push(LiveSub { sub, filter }),
                Err(e) => {
                    tracing::error!(task = %sub.task_id, error = %e, "stored filter does not compile; task skipped")
                }
            }
        }
        Ok(live)
    }

    /// Forget cached definitions of `ns` (or of all namespaces).
    pub fn invalidate_events(&self, ns: Option<&str>) {
        self.events
            .invalidate(|(n, _)| ns.is_some_and(|ns| ns != n));
    }

    /// Forget cached subscriptions of `ns` (or of all namespaces).
    pub fn invalidate_subscriptions(&self, ns: Option<&str>) {
        self.subs.invalidate(|n| ns.is_some_and(|ns| ns != n));
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("registry lock poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load that read the store before an invalidation must not put its
    /// stale answer back into the cache.
    #[test]
    fn a_load_racing_an_invalidation_is_not_kept() {
        let c: Cache<String, u32> = Cache::new();
        let before = c.generation();
        // ... the loader reads the store (old value) while a registration
        // commits and invalidates:
        c.invalidate(|_| false);
        c.insert("ns".into(), Arc::new(1), before).unwrap();
        assert!(c.get(&"ns".to_string()).unwrap().is_none());
        // A load that started after the invalidation is kept.
        let now = c.generation();
        c.insert("ns".into(), Arc::new(2), now).unwrap();
        assert_eq!(*c.get(&"ns".to_string()).unwrap().unwrap(), 2);
    }

    #[test]
    fn invalidation_is_per_namespace() {
        let c: Cache<String, u32> = Cache::new();
        c.insert("a".into(), Arc::new(1), c.generation()).unwrap();
        c.insert("b".into(), Arc::new(2), c.generation()).unwrap();
        c.invalidate(|k| k != "a");
        assert!(c.get(&"a".to_string()).unwrap().is_none());
        assert!(c.get(&"b".to_string()).unwrap().is_some());
    }
}
