//! [`Routes`]: a namespace's subscriptions indexed so a publish evaluates
//! only the filters that can match, instead of every filter in turn.
//!
//! Built once per load of the subscriptions (off the publish path: the
//! registry caches it until a subscription changes). Each filtered
//! subscription on an exact event name is filed under one condition its
//! filter *requires* ([`Filter::required`]) — a field that must equal one of
//! some strings (or booleans), start with one of some prefixes, or lie in
//! one of some numeric ranges. A publish gathers the payload's values at
//! each indexed path once and looks them up: a map for equality, every
//! prefix of the value for prefixes, an interval tree (sorted bounds) for
//! ranges. It evaluates the full filter of those candidates only — none at
//! all for a subscription whose condition is its whole filter — plus the
//! subscriptions nothing could be filed under (no filter, name patterns,
//! `anything-but`, `$or`, wildcards). Filing is a necessary condition (and
//! for exact filings a sufficient one), so the result is exactly
//! [`super::route`]'s: a property test checks it.
//!
//! The cost of a publish is then the number of indexed paths, the lookups
//! in them and the candidates found, not the number of subscriptions.

use super::filter::{Filing, Filter, Required, any_leaf};
use super::{Known, LiveSub, route_in};
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
    /// Path → subscriptions that need the field in a numeric range.
    range: HashMap<Path, Ranges>,
}

/// Numeric ranges of one path as a static interval tree: the ranges sorted
/// by low end, read as a balanced binary tree (each slice's middle is its
/// root) where every root knows the highest high end below it. A value
/// visits only subtrees that can hold it: O(log n + ranges found).
#[derive(Debug, Default)]
struct Ranges {
    /// (low, high, subscription), by low.
    spans: Vec<(f64, f64, usize)>,
    /// For the subtree rooted at each index: its highest high end.
    max_high: Vec<f64>,
}

impl Ranges {
    fn add(&mut self, (low, high): (f64, f64), sub: usize) {
        self.spans.push((low, high, sub));
    }

    fn build(&mut self) {
        self.spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.max_high = vec![f64::NEG_INFINITY; self.spans.len()];
        self.fill(0, self.spans.len());
    }

    fn fill(&mut self, lo: usize, hi: usize) -> f64 {
        if lo >= hi {
            return f64::NEG_INFINITY;
        }
        let mid = lo + (hi - lo) / 2;
        let m = self.spans[mid]
            .1
            .max(self.fill(lo, mid))
            .max(self.fill(mid + 1, hi));
        self.max_high[mid] = m;
        m
    }

    /// Every subscription with a range holding `x` (ranges are closed, so
    /// this is a superset where the pattern says `>`; the filter decides).
    fn candidates(&self, x: f64, out: &mut Vec<usize>) {
        self.visit(0, self.spans.len(), x, out);
    }

    fn visit(&self, lo: usize, hi: usize, x: f64, out: &mut Vec<usize>) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        if self.max_high[mid] < x {
            return;
        }
        self.visit(lo, mid, x, out);
        let (low, high, sub) = self.spans[mid];
        // Everything right of `mid` starts at or above `low`.
        if low <= x {
            if high >= x {
                out.push(sub);
            }
            self.visit(mid + 1, hi, x, out);
        }
    }
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
    /// Per subscription, what being a candidate says: its name (filed under
    /// it), a match (an exact filing), or nothing (a name pattern).
    known: Vec<Known>,
    /// Per subscription: does it belong to a consumer group?
    grouped: Vec<bool>,
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
        let mut known = vec![Known::Name; subs.len()];
        let grouped = subs
            .iter()
            .map(|s| !s.sub.consumer_group.is_empty())
            .collect();
        for (i, s) in subs.iter().enumerate() {
            if super::pattern::is_pattern(&s.sub.event) {
                patterns.push(i);
                known[i] = Known::Nothing;
                continue;
            }
            let slot = by_name.entry(s.sub.event.clone()).or_default();
            let Some(Filing { required, exact: e }) = s.filter.as_ref().and_then(Filter::required)
            else {
                slot.always.push(i);
                continue;
            };
            if e {
                known[i] = Known::Match;
            }
            match required {
                Required::Equal(path, values) => {
                    let map = slot.equal.entry(path).or_default();
                    for k in values.iter().filter_map(Key::of) {
                        map.entry(k).or_default().push(i);
                    }
                }
                Required::Prefix(path, prefixes) => {
                    let map = slot.prefix.entry(path).or_default();
                    for p in prefixes {
                        map.entry(p).or_default().push(i);
                    }
                }
                Required::Range(path, ranges) => {
                    let index = slot.range.entry(path).or_default();
                    for r in ranges {
                        index.add(r, i);
                    }
                }
            }
        }
        by_name
            .values_mut()
            .flat_map(|n| n.range.values_mut())
            .for_each(Ranges::build);
        Routes {
            subs,
            by_name,
            patterns,
            known,
            grouped,
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
            for (path, ranges) in &n.range {
                values.clear();
                values_at(payload, path, &mut values);
                for x in values.iter().filter_map(|v| v.as_f64()) {
                    ranges.candidates(x, &mut candidates);
                }
            }
        }
        // The routing order is the subscriptions' order; a subscription
        // filed under several hits is evaluated once.
        candidates.sort_unstable();
        candidates.dedup();
        route_in(
            candidates
                .into_iter()
                .map(|i| (&self.subs[i], self.known[i], self.grouped[i])),
            event,
            payload,
            ordering_key,
            event_id,
        )
    }
}

/// The leaf values at `path` as the filter sees them: an array on the way
/// is searched for objects (one level, as a nested pattern does), the
/// field's value gives its scalars with nested arrays flattened and objects
/// skipped — so an exact filing finds what the filter would match.
fn values_at<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((k, rest)) = path.split_first() else {
        return;
    };
    let Some(field) = v.as_object().and_then(|m| m.get(k)) else {
        return;
    };
    if rest.is_empty() {
        // The filter's own notion of a field's leaves.
        any_leaf(field, &mut |x| {
            out.push(x);
            false
        });
        return;
    }
    match field {
        // Only the array's objects can hold the field (one level).
        Value::Array(items) => items.iter().for_each(|i| values_at(i, rest, out)),
        object @ Value::Object(_) => values_at(object, rest, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
