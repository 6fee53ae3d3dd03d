//! [`Routes`]: a namespace's subscriptions indexed so a publish evaluates
//! only the filters that can match, instead of every filter in turn.
//!
//! Built once per load of the subscriptions (off the publish path: the
//! registry caches it until a subscription changes). Each filtered
//! subscription on an exact event name is filed under one condition its
//! filter *requires* — a field that must equal one of some strings (or
//! booleans), or start with one of some prefixes. A publish gathers the
//! payload's values at each indexed path once, looks them up (a map for
//! equality, every prefix of the value for prefixes), and evaluates the
//! full filter of those candidates only, plus the subscriptions nothing
//! could be filed under (no filter, name patterns, numeric-only or
//! `anything-but` filters). Filing is a necessary condition, so the result
//! is exactly [`super::route`]'s: a property test checks it.

use super::filter::Filter;
use super::{LiveSub, route_in};
use serde_json::Value;
use std::collections::HashMap;

/// A field path from the payload's root (`["customer", "tier"]`).
type Path = Vec<String>;

/// The subscriptions of one exact event name, by what their filters need.
#[derive(Debug, Default)]
struct ByName {
    /// Evaluated for every event: no filter, or nothing indexable.
    always: Vec<usize>,
    /// Path → value → subscriptions that need the field equal to it.
    equal: HashMap<Path, HashMap<Key, Vec<usize>>>,
    /// Path → prefix → subscriptions that need the field to start with it.
    prefix: HashMap<Path, HashMap<String, Vec<usize>>>,
}

/// An indexable scalar: strings and booleans (numbers compare by value
/// across integer and float spellings, so they are evaluated instead).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Bool(bool),
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
        match v {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Bool(b) => Some(Key::Bool(*b)),
            _ => None,
        }
    }
}

/// One namespace's subscriptions and their index.
#[derive(Debug, Default)]
pub struct Routes {
    subs: Vec<LiveSub>,
    by_name: HashMap<String, ByName>,
    /// Subscriptions on name patterns (`order.*`): evaluated for every event.
    patterns: Vec<usize>,
}

impl std::ops::Deref for Routes {
    type Target = [LiveSub];
    fn deref(&self) -> &[LiveSub] {
        &self.subs
    }
}

impl Routes {
    /// Index `subs` (their order is kept: it is the routing order).
    pub fn new(subs: Vec<LiveSub>) -> Self {
        let mut by_name: HashMap<String, ByName> = HashMap::new();
        let mut patterns = Vec::new();
        for (i, s) in subs.iter().enumerate() {
            if super::pattern::is_pattern(&s.sub.event) {
                patterns.push(i);
                continue;
            }
            let slot = by_name.entry(s.sub.event.clone()).or_default();
            match s.filter.as_ref().and_then(Filter::required) {
                Some(super::filter::Required::Equal(path, values)) => {
                    let keys: Vec<Key> = values.iter().filter_map(Key::of).collect();
                    let map = slot.equal.entry(path).or_default();
                    for k in keys {
                        map.entry(k).or_default().push(i);
                    }
                }
                Some(super::filter::Required::Prefix(path, prefixes)) => {
                    let map = slot.prefix.entry(path).or_default();
                    for p in prefixes {
                        map.entry(p).or_default().push(i);
                    }
                }
                None => slot.always.push(i),
            }
        }
        Routes {
            subs,
            by_name,
            patterns,
        }
    }

    /// The subscriptions that get a run, as [`super::route`] would choose.
    pub fn route(
        &self,
        event: &str,
        payload: &Value,
        ordering_key: &str,
        event_id: &str,
    ) -> Vec<&LiveSub> {
        let mut candidates: Vec<usize> = self.patterns.clone();
        if let Some(n) = self.by_name.get(event) {
            candidates.extend_from_slice(&n.always);
            let mut values = Vec::new();
            for (path, map) in &n.equal {
                values.clear();
                values_at(payload, path, &mut values);
                for v in &values {
                    if let Some(hit) = Key::of(v).and_then(|k| map.get(&k)) {
                        candidates.extend_from_slice(hit);
                    }
                }
            }
            for (path, map) in &n.prefix {
                values.clear();
                values_at(payload, path, &mut values);
                for v in &values {
                    let Some(s) = v.as_str() else { continue };
                    for (end, _) in s.char_indices().skip(1).chain([(s.len(), ' ')]) {
                        if let Some(hit) = map.get(&s[..end]) {
                            candidates.extend_from_slice(hit);
                        }
                    }
                    if let Some(hit) = map.get("") {
                        candidates.extend_from_slice(hit);
                    }
                }
            }
        }
        // The routing order is the subscriptions' order; a subscription
        // filed under several hits is evaluated once.
        candidates.sort_unstable();
        candidates.dedup();
        route_in(
            candidates.into_iter().map(|i| &self.subs[i]),
            event,
            payload,
            ordering_key,
            event_id,
        )
    }
}

/// The leaf values at `path`, descending through arrays at every level
/// (as the filter does: an array field matches when an element does).
fn values_at<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    match (path.split_first(), v) {
        (_, Value::Array(items)) => items.iter().for_each(|i| values_at(i, path, out)),
        (None, scalar) => out.push(scalar),
        (Some((k, rest)), Value::Object(m)) => {
            if let Some(inner) = m.get(k) {
                values_at(inner, rest, out);
            }
        }
        (Some(_), _) => {}
    }
}

#[cfg(test)]
mod tests;
