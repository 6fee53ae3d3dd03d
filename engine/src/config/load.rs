//! Loading the one [`Config`]: defaults → TOML file → `FANOUT_*`
//! environment → flags, each layer over the one before, then validated.
//! `fanout serve --dump-config` prints exactly what this returns.
//!
//! Every layer speaks the config's own keys (`[store]`, `[limits]`,
//! `FANOUT_LIMITS__MAX_TAGS`: `__` nests) and a few shorthands for the
//! common settings (`database_url`, `redis_url`, `clickhouse_url`, …,
//! [`SHORTHANDS`]), expanded into their sections within that layer.
//! Figment reads the file and the environment; the layering is ours,
//! because a backend section whose `kind` changes (SQLite → Postgres) must
//! be replaced whole, not merged key by key.

use super::{ArchiveConfig, Config, Problems, StoreConfig};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Shorthand keys, and the sections they set.
pub const SHORTHANDS: &[&str] = &[
    "database_url",
    "postgres_schema",
    "postgres_max_connections",
    "redis_url",
    "redis_on_unavailable",
    "clickhouse_url",
    "clickhouse_database",
    "clickhouse_user",
    "clickhouse_password",
];

/// The config's own top-level keys (what a layer may set besides the
/// shorthands).
fn own_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Load the config: `file` (TOML) if given, then the `FANOUT_*`
/// environment, then `flags` (an object of the same keys). Every problem
/// is reported, each naming its key.
pub fn load(file: Option<&Path>, flags: Value) -> Result<Config, Problems> {
    let mut layers = Vec::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(Problems(vec![format!(
                "config file {} does not exist",
                path.display()
            )]));
        }
        let layer = Figment::from(Toml::file(path))
            .extract::<Value>()
            .map_err(|e| Problems(vec![format!("{}: {e}", path.display())]))?;
        layers.push(layer);
    }
    let known = own_keys();
    let env = Env::prefixed("FANOUT_").split("__").filter(move |k| {
        // Seen after `split` maps `__` to `.` (and before, in some versions).
        let top = k.as_str().split('.').next().unwrap_or_default();
        let top = top.split("__").next().unwrap_or_default();
        known.iter().any(|o| o.eq_ignore_ascii_case(top))
            || SHORTHANDS.iter().any(|s| s.eq_ignore_ascii_case(top))
    });
    let layer = Figment::from(env)
        .extract::<Value>()
        .map_err(|e| Problems(vec![format!("environment: {e}")]))?;
    layers.push(layer);
    layers.push(flags);
    from_layers(layers)
}

/// Defaults, then each layer in order.
pub fn from_layers(layers: Vec<Value>) -> Result<Config, Problems> {
    let mut merged = serde_json::to_value(Config::default())
        .map_err(|e| Problems(vec![format!("defaults: {e}")]))?;
    for layer in layers {
        put(&mut merged, expand(layer));
    }
    let mut config: Config = serde_json::from_value(merged)
        .map_err(|e| Problems(vec![format!("configuration: {e}")]))?;
    // Embedded files follow `data_dir` unless their paths were set.
    let defaults = Config::default();
    if config.store == defaults.store
        && let StoreConfig::Sqlite { path } = &mut config.store
    {
        *path = config.data_dir.join("fanout.db");
    }
    if config.archive == defaults.archive
        && let ArchiveConfig::Local { path } = &mut config.archive
    {
        *path = config.data_dir.join("archive.db");
    }
    config.validate()?;
    Ok(config)
}

/// Put `top` over `base`: objects key by key, except that a section whose
/// `kind` differs is replaced whole; anything else is replaced.
fn put(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            let kind_changes = matches!(
                (b.get("kind"), t.get("kind")),
                (Some(old), Some(new)) if old != new
            );
            if kind_changes {
                *b = t;
                return;
            }
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => put(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, top) => *slot = top,
    }
}

/// Turn a layer's shorthands into the sections they stand for.
fn expand(layer: Value) -> Value {
    let Value::Object(mut m) = layer else {
        return layer;
    };
    // Env keys arrive lowercased; flags and files as written.
    let mut take = |k: &str| m.remove(k);
    let mut out = Map::new();
    let section = |name: &str, v: Value, out: &mut Map<String, Value>| {
        let slot = out.entry(name.to_string()).or_insert_with(|| json!({}));
        put(slot, v);
    };
    if let Some(url) = take("database_url").and_then(|v| v.as_str().map(str::to_string)) {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            json!({"kind": "postgres", "url": url})
        } else {
            json!({"kind": "sqlite", "path": url.trim_start_matches("sqlite://")})
        };
        section("store", store, &mut out);
    }
    if let Some(v) = take("postgres_schema") {
        section("store", json!({ "schema": v }), &mut out);
    }
    if let Some(v) = take("postgres_max_connections") {
        section("store", json!({ "max_connections": v }), &mut out);
    }
    if let Some(url) = take("redis_url") {
        section("limiter", json!({"kind": "redis", "url": url}), &mut out);
    }
    if let Some(v) = take("redis_on_unavailable") {
        section("limiter", json!({ "on_unavailable": v }), &mut out);
    }
    if let Some(url) = take("clickhouse_url") {
        section(
            "archive",
            json!({"kind": "clickhouse", "url": url, "database": "fanout"}),
            &mut out,
        );
    }
    for (short, key) in [
        ("clickhouse_database", "database"),
        ("clickhouse_user", "user"),
        ("clickhouse_password", "password"),
    ] {
        if let Some(v) = take(short) {
            section("archive", json!({ key: v }), &mut out);
        }
    }
    let mut layer = Value::Object(m);
    put(&mut layer, Value::Object(out));
    layer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LimiterConfig, OnUnavailable};

    #[test]
    fn later_layers_win_and_a_changed_kind_replaces_its_section() {
        let c = from_layers(vec![
            json!({"database_url": "postgres://file/db", "grpc_addr": "127.0.0.1:9999",
                   "limits": {"max_tags": 10}}),
            json!({"redis_url": "redis://env:6379", "limits": {"max_key_bytes": 64}}),
            json!({"grpc_addr": "127.0.0.1:8888", "postgres_schema": "flags"}),
        ])
        .expect("valid");
        assert_eq!(
            c.store,
            StoreConfig::Postgres {
                url: "postgres://file/db".into(),
                schema: "flags".into(),
                max_connections: 16,
            }
        );
        assert_eq!(
            c.limiter,
            LimiterConfig::Redis {
                url: "redis://env:6379".into(),
                on_unavailable: OnUnavailable::Allow,
            }
        );
        assert_eq!(c.grpc_addr, "127.0.0.1:8888");
        assert_eq!((c.limits.max_tags, c.limits.max_key_bytes), (10, 64));
    }

    #[test]
    fn data_dir_moves_the_embedded_files_unless_they_were_set() {
        let c = from_layers(vec![json!({"data_dir": "/srv/f"})]).unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Sqlite {
                path: "/srv/f/fanout.db".into()
            }
        );
        let c = from_layers(vec![json!({
            "data_dir": "/srv/f",
            "archive": {"kind": "local", "path": "/elsewhere/a.db"}
        })])
        .unwrap();
        assert_eq!(
            c.archive,
            ArchiveConfig::Local {
                path: "/elsewhere/a.db".into()
            }
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let e = from_layers(vec![json!({
            "default_lease_ms": 1,
            "archive_batch": 0,
            "redis_url": "http://x"
        })])
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        let e = from_layers(vec![json!({"no_such_key": 1})]).unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }
}
