//! In-memory view of event definitions (with compiled schemas) and
//! subscriptions, so publish touches the store only to write.
//!
//! The store is the source of truth. Entries load on first use and are
//! dropped when this engine changes them, or when another replica announces
//! a change (Postgres `NOTIFY`, see `notify`).

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::EventDef;
use crate::routing::LiveSub;
use crate::schema::{self, CompiledSchema};
use crate::storage::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// An event definition with its schema compiled once.
#[derive(Debug)]
pub struct LiveEvent {
    pub def: EventDef,
    pub schema: CompiledSchema,
}

/// Cache of definitions and subscriptions per namespace.
pub struct Registry {
    store: Arc<dyn Store>,
    events: RwLock<HashMap<(String, String), Arc<LiveEvent>>>,
    subs: RwLock<HashMap<String, Arc<Vec<LiveSub>>>>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            events: RwLock::default(),
            subs: RwLock::default(),
        }
    }

    /// The latest definition of an event, or NOT_FOUND naming it.
    pub async fn event(&self, ns: &str, name: &str) -> Result<Arc<LiveEvent>> {
        let key = (ns.to_string(), name.to_string());
        if let Some(e) = self.events.read().map_err(poisoned)?.get(&key) {
            return Ok(e.clone());
        }
        let def = self.store.get_event(ns, name, None).await?.ok_or_else(|| {
            Error::NotFound(format!("event '{name}' is not defined in namespace '{ns}'"))
        })?;
        let schema =
            CompiledSchema::compile(&schema::parse_json("schema_json", &def.schema_json)?)?;
        let live = Arc::new(LiveEvent { def, schema });
        self.events
            .write()
            .map_err(poisoned)?
            .insert(key, live.clone());
        Ok(live)
    }

    /// Subscriptions of a namespace, filters compiled.
    pub async fn subscriptions(&self, ns: &str) -> Result<Arc<Vec<LiveSub>>> {
        if let Some(s) = self.subs.read().map_err(poisoned)?.get(ns) {
            return Ok(s.clone());
        }
        let mut live = Vec::new();
        for sub in self.store.list_subscriptions(Some(ns)).await? {
            // Filters were validated at registration; one that no longer
            // compiles matches nothing (never "everything") and is reported.
            match Filter::parse(&sub.filter_json) {
                Ok(filter) => live.push(LiveSub { sub, filter }),
                Err(e) => {
                    tracing::error!(task = %sub.task_id, error = %e, "stored filter does not compile; task skipped")
                }
            }
        }
        let subs = Arc::new(live);
        self.subs
            .write()
            .map_err(poisoned)?
            .insert(ns.to_string(), subs.clone());
        Ok(subs)
    }

    /// Forget cached definitions of `ns` (or of all namespaces).
    pub fn invalidate_events(&self, ns: Option<&str>) {
        if let Ok(mut m) = self.events.write() {
            match ns {
                Some(ns) => m.retain(|(n, _), _| n != ns),
                None => m.clear(),
            }
        }
    }

    /// Forget cached subscriptions of `ns` (or of all namespaces).
    pub fn invalidate_subscriptions(&self, ns: Option<&str>) {
        if let Ok(mut m) = self.subs.write() {
            match ns {
                Some(ns) => {
                    m.remove(ns);
                }
                None => m.clear(),
            }
        }
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("registry lock poisoned".into())
}
