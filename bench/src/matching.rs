//! Scenario 8: what routing one event costs with many filtered
//! subscriptions on it — the index ([`Routes::route`]) against evaluating
//! every filter ([`route`]) — at 100 and 10,000 subscriptions. In-process
//! and CPU only: it times the matcher, not the store.
//!
//! The mix (realistic for multi-tenant fan-out): 60 % equality on a tenant
//! plus a numeric threshold, 25 % a prefix on a SKU, 10 % equality on an
//! event type, 5 % numeric-only (found by the range index); and the same
//! at 10,000 with value pools grown 100× ([`Pools::scaled`]), so each event
//! creates as many runs as at 100.

use fanout_engine::model::{RetryPolicy, Subscription};
use fanout_engine::routing::filter::Filter;
use fanout_engine::routing::index::Routes;
use fanout_engine::routing::{LiveSub, route};
use serde_json::{Value, json};
use std::time::Instant;

/// How many tenants, SKU prefixes and types the subscriptions and events
/// draw from: the mix (5,000 / 997 / 50 at any size: at 10,000
/// subscriptions ~20 share each type, so each event creates ~23 runs), or
/// pools grown with the subscriptions so each event creates as many runs
/// as at 100 (what matching costs apart from handing out more runs).
#[derive(Clone, Copy)]
struct Pools {
    tenants: usize,
    skus: usize,
    types: usize,
}

impl Pools {
    const SHARED: Pools = Pools {
        tenants: 5000,
        skus: 997,
        types: 50,
    };

    fn scaled(subs: usize) -> Pools {
        let k = (subs / 100).max(1);
        Pools {
            tenants: 5000 * k,
            skus: 997 * k,
            types: 50 * k,
        }
    }
}

fn subs(n: usize, pools: Pools) -> Vec<LiveSub> {
    (0..n)
        .map(|i| {
            let filter = match i % 20 {
                0..=11 => json!({"tenant": [format!("t{}", i % pools.tenants)], "amount": [{"numeric": [">", (i % 7) * 100]}]}),
                12..=16 => json!({"sku": [{"prefix": format!("S{}-", i % pools.skus)}]}),
                17 | 18 => json!({"type": [format!("type{}", i % pools.types)]}),
                _ => json!({"amount": [{"numeric": [">=", 100_000 + i]}]}),
            };
            LiveSub {
                sub: Subscription {
                    namespace: "default".into(),
                    task_id: format!("task-{i}"),
                    event: "order.placed".into(),
                    filter_json: filter.to_string(),
                    consumer_group: String::new(),
                    retry: RetryPolicy::default(),
                    lease_ms: 30_000,
                    updated_at_ms: 0,
                    state: Default::default(),
                    breaker: Default::default(),
                    endpoint: None,
                },
                filter: Filter::compile(&filter).ok(),
            }
        })
        .collect()
}

fn payloads(n: usize, pools: Pools) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"tenant": format!("t{}", (i * 7919) % pools.tenants), "amount": (i % 900) as f64,
                   "sku": format!("S{}-{}", (i * 31) % pools.skus, i), "type": format!("type{}", (i * 13) % pools.types),
                   "lines": [{"sku": "x", "qty": 1}]})
        })
        .collect()
}

/// Mean µs per event of `f` over the payloads (after one warm-up pass),
/// passing over them again until at least 200 ms are timed: a microsecond
/// per event over a few thousand events is too short a sample alone.
fn per_event(payloads: &[Value], mut f: impl FnMut(&Value) -> usize) -> (f64, usize) {
    let mut matched = 0;
    for p in payloads {
        matched += f(p);
    }
    let t0 = Instant::now();
    let mut passes = 0;
    while passes == 0 || t0.elapsed().as_secs_f64() < 0.2 {
        for p in payloads {
            std::hint::black_box(f(p));
        }
        passes += 1;
    }
    (
        t0.elapsed().as_secs_f64() * 1e6 / (payloads.len() * passes) as f64,
        matched,
    )
}

pub fn run(events: usize) -> Value {
    let events = events.max(100);
    let mut out = serde_json::Map::new();
    for (key, n, pools) in [
        ("subs_100", 100, Pools::SHARED),
        ("subs_10000", 10_000, Pools::SHARED),
        ("subs_10000_runs_held", 10_000, Pools::scaled(10_000)),
    ] {
        let payloads = payloads(events, pools);
        let list = subs(n, pools);
        let t0 = Instant::now();
        let routes = Routes::new(list.clone());
        let build_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (indexed, hits_i) = per_event(&payloads, |p| {
            routes.route("order.placed", p, "", "e").len()
        });
        let (linear, hits_l) = per_event(&payloads, |p| {
            route(&list, "order.placed", p, "", "e").len()
        });
        assert_eq!(
            hits_i, hits_l,
            "the index routes as evaluating every filter"
        );
        out.insert(
            key.into(),
            json!({"indexed_us_per_event": indexed, "every_filter_us_per_event": linear,
                   "runs_per_event": hits_i as f64 / events as f64, "index_build_ms": build_ms}),
        );
    }
    let us = |n: &str| out[n]["indexed_us_per_event"].as_f64().unwrap_or(f64::NAN);
    let growth = us("subs_10000") / us("subs_100");
    let held = us("subs_10000_runs_held") / us("subs_100");
    out.insert("indexed_growth_100_to_10000".into(), json!(growth));
    out.insert("indexed_growth_runs_held".into(), json!(held));
    out.insert("scenario".into(), json!("matching"));
    out.insert("events".into(), json!(events));
    Value::Object(out)
}
