//! The overview's numbers, computed at most once per interval per
//! namespace and shared by every open page. They need grouped reads over
//! all runs (a million rows took ~2 s on SQLite), so a page never waits for
//! them once they exist: a stale value is served while one refresh runs in
//! the background (the page says how old the numbers are).

use fanout_engine::Engine;
use fanout_engine::admin::Overview;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Namespaces kept; past that the cache starts over.
const MAX_NAMESPACES: usize = 1_000;

struct Slot {
    at: Instant,
    value: Arc<Overview>,
    refreshing: bool,
}

/// Overviews by namespace.
pub(crate) struct Overviews {
    max_age: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Overviews {
    pub fn new(max_age: Duration) -> Self {
        Overviews {
            max_age,
            slots: Mutex::default(),
        }
    }

    /// `ns`'s overview and when it was computed: fresh, or stale while a
    /// refresh runs, or computed now when there is none yet.
    pub async fn get(
        self: &Arc<Self>,
        engine: &Engine,
        ns: &str,
    ) -> fanout_engine::Result<(Arc<Overview>, Instant)> {
        let stale = {
            let mut slots = self.slots.lock().map_err(|_| poisoned())?;
            match slots.get_mut(ns) {
                Some(s) if s.at.elapsed() < self.max_age => return Ok((s.value.clone(), s.at)),
                Some(s) => {
                    if !s.refreshing {
                        s.refreshing = true;
                        let (me, engine, ns) = (self.clone(), engine.clone(), ns.to_string());
                        tokio::spawn(async move { me.refresh(&engine, &ns).await });
                    }
                    Some((s.value.clone(), s.at))
                }
                None => None,
            }
        };
        match stale {
            Some(v) => Ok(v),
            None => {
                let value = Arc::new(engine.overview(ns).await?);
                let at = Instant::now();
                self.store(ns, value.clone(), at);
                Ok((value, at))
            }
        }
    }

    async fn refresh(&self, engine: &Engine, ns: &str) {
        match engine.overview(ns).await {
            Ok(v) => self.store(ns, Arc::new(v), Instant::now()),
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "console overview refresh failed");
                if let Ok(mut slots) = self.slots.lock()
                    && let Some(s) = slots.get_mut(ns)
                {
                    s.refreshing = false;
                }
            }
        }
    }

    fn store(&self, ns: &str, value: Arc<Overview>, at: Instant) {
        if let Ok(mut slots) = self.slots.lock() {
            if slots.len() >= MAX_NAMESPACES && !slots.contains_key(ns) {
                slots.clear();
            }
            slots.insert(
                ns.to_string(),
                Slot {
                    at,
                    value,
                    refreshing: false,
                },
            );
        }
    }
}

fn poisoned() -> fanout_engine::Error {
    fanout_engine::Error::Internal("console cache lock poisoned".into())
}
