//! Routing: which subscriptions get a run for one event.
//!
//! A subscription takes part when its event pattern matches the name and its
//! filter matches the payload. Ungrouped subscriptions each get a run; each
//! consumer group gets exactly one run, given to one matching member: with
//! an ordering key, rendezvous hashing over (key, member) so the same key
//! always lands on the same member (and moves as little as possible when
//! members come and go); without one, a hash of the event id, which spreads
//! events evenly and gives a replay the same choice as the original.

pub mod filter;
pub mod index;
pub mod pattern;
pub mod registry;
pub mod schema;

use crate::model::Subscription;
use crate::routing::filter::Filter;
use crate::routing::pattern::matches as name_matches;
use serde_json::Value;
use std::collections::BTreeMap;

/// A subscription with its filter compiled once.
#[derive(Debug, Clone)]
pub struct LiveSub {
    pub sub: Subscription,
    pub filter: Option<Filter>,
}

/// The subscriptions that get a run, in a stable order: every filter
/// evaluated in turn ([`index::Routes::route`] evaluates only candidates,
/// with the same result).
pub fn route<'a>(
    subs: &'a [LiveSub],
    event: &str,
    payload: &Value,
    ordering_key: &str,
    event_id: &str,
) -> Vec<&'a LiveSub> {
    route_in(
        subs.iter()
            .map(|s| (s, Known::Nothing, !s.sub.consumer_group.is_empty())),
        event,
        payload,
        ordering_key,
        event_id,
    )
}

/// What the caller of [`route_in`] already knows of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Nothing,
    /// Its event name is the event's (filed under that exact name).
    Name,
    /// Name and filter match (the index found it by its whole filter).
    Match,
}

/// [`route`] over the given subscriptions, in their order, skipping the
/// checks each one's [`Known`] already answers; each comes with whether it
/// belongs to a consumer group, so a known match outside any group is
/// routed without reading the subscription at all (the index keeps that
/// flag in a compact array: at 10,000 subscriptions, touching each matched
/// one's record is most of what routing costs).
fn route_in<'a>(
    subs: impl Iterator<Item = (&'a LiveSub, Known, bool)>,
    event: &str,
    payload: &Value,
    ordering_key: &str,
    event_id: &str,
) -> Vec<&'a LiveSub> {
    // Sized for the index's candidates (a handful to a few dozen), not for
    // every subscription when called with all of them.
    let mut out = Vec::with_capacity(subs.size_hint().0.min(64));
    let mut groups: BTreeMap<&str, Vec<&LiveSub>> = BTreeMap::new();
    for (s, known, grouped) in subs {
        if known == Known::Nothing && !name_matches(&s.sub.event, event) {
            continue;
        }
        if known != Known::Match
            && let Some(f) = &s.filter
            && !f.matches(payload)
        {
            continue;
        }
        if !grouped {
            out.push(s);
        } else {
            groups
                .entry(s.sub.consumer_group.as_str())
                .or_default()
                .push(s);
        }
    }
    for (group, mut members) in groups {
        members.sort_by(|a, b| a.sub.task_id.cmp(&b.sub.task_id));
        let key = if ordering_key.is_empty() {
            event_id
        } else {
            ordering_key
        };
        let chosen = members
            .iter()
            .max_by_key(|m| fnv1a(&[group.as_bytes(), key.as_bytes(), m.sub.task_id.as_bytes()]))
            .copied();
        out.extend(chosen);
    }
    out
}

/// FNV-1a 64 over parts separated by 0xff, finished with murmur3's fmix64
/// so near-identical keys (sequential UUIDv7s) still spread evenly. Stable
/// across processes and versions, which a routing decision must be.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RetryPolicy;
    use serde_json::json;

    fn sub(task: &str, event: &str, group: &str, filter: Option<Value>) -> LiveSub {
        LiveSub {
            sub: Subscription {
                namespace: "default".into(),
                task_id: task.into(),
                event: event.into(),
                filter_json: String::new(),
                consumer_group: group.into(),
                retry: RetryPolicy::default(),
                lease_ms: 1000,
                updated_at_ms: 0,
                state: Default::default(),
                breaker: Default::default(),
                endpoint: None,
            },
            filter: filter.map(|f| Filter::compile(&f).unwrap()),
        }
    }

    fn ids(v: Vec<&LiveSub>) -> Vec<&str> {
        v.into_iter().map(|s| s.sub.task_id.as_str()).collect()
    }

    #[test]
    fn one_run_per_group_and_per_ungrouped_task() {
        let subs = vec![
            sub("a", "user.activity", "g", None),
            sub("b", "user.activity", "g", None),
            sub("analytics", "user.activity", "", None),
            sub("other", "order.created", "", None),
            sub("all-user", "user.*", "", None),
        ];
        let r = ids(route(&subs, "user.activity", &json!({}), "", "e1"));
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r.contains(&"analytics") && r.contains(&"all-user"));
        assert!(r.contains(&"a") ^ r.contains(&"b"));
    }

    #[test]
    fn same_key_same_member_and_spread_without_key() {
        let subs = vec![
            sub("a", "e.x", "g", None),
            sub("b", "e.x", "g", None),
            sub("c", "e.x", "g", None),
        ];
        for key in ["cust-1", "cust-2", "cust-3"] {
            let first = ids(route(&subs, "e.x", &json!({}), key, "e1"));
            for i in 0..20 {
                assert_eq!(
                    ids(route(&subs, "e.x", &json!({}), key, &format!("e{i}"))),
                    first
                );
            }
        }
        let mut counts = std::collections::HashMap::new();
        for _ in 0..30_000 {
            let id = uuid::Uuid::now_v7().to_string();
            *counts
                .entry(ids(route(&subs, "e.x", &json!({}), "", &id))[0])
                .or_insert(0) += 1;
        }
        for (k, n) in counts {
            // Expected 10,000 each; σ ≈ 82, so ±5% is over 6σ.
            assert!((9_500..10_500).contains(&n), "{k}: {n} of 30000");
        }
    }

    #[test]
    fn only_members_whose_filter_matches_are_candidates() {
        let subs = vec![
            sub("big", "e.x", "g", Some(json!({"amount": [{"$gte": 100}]}))),
            sub("small", "e.x", "g", Some(json!({"amount": [{"$lt": 100}]}))),
        ];
        assert_eq!(
            ids(route(&subs, "e.x", &json!({"amount": 5}), "", "e1")),
            vec!["small"]
        );
        assert_eq!(
            ids(route(&subs, "e.x", &json!({"amount": 500}), "", "e1")),
            vec!["big"]
        );
        assert!(route(&subs, "e.x", &json!({}), "", "e1").is_empty());
    }
}
