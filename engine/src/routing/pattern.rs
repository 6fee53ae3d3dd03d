//! Event-name patterns: `order.*` (one segment), `order.#` (any number of
//! segments, zero included), as in AMQP topics. Validation and matching live
//! here together so a pattern that passes one is understood by the other.
//!
//! Matching is a walk over the pattern keeping the set of name positions
//! reachable so far, so it costs O(pattern segments × name segments) for any
//! input (a backtracking matcher is exponential in the number of `#`).

use crate::error::{Error, Result};

/// Longest pattern accepted, in bytes (the same bound as event names).
pub const MAX_PATTERN_BYTES: usize = 200;

/// Is `pattern` a wildcard (rather than one event name)?
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '#'])
}

/// Check an event name or pattern named `field`: segments are event-name
/// segments, `*` or `#`.
pub fn check(field: &str, pattern: &str) -> Result<()> {
    if !is_pattern(pattern) {
        return crate::routing::schema::check_event_name(pattern)
            .map_err(|e| Error::InvalidArgument(format!("{field}: {e}")));
    }
    let ok = pattern.len() <= MAX_PATTERN_BYTES
        && pattern.split('.').all(|seg| {
            seg == "*" || seg == "#" || crate::routing::schema::check_event_name(seg).is_ok()
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{field}: pattern '{}' is invalid: at most {MAX_PATTERN_BYTES} bytes of dot-separated segments, each a name, '*' (one segment) or '#' (any number)",
            crate::error::clip(pattern, 120)
        )))
    }
}

/// Does an event name match a pattern (or equal a plain name)?
pub fn matches(pattern: &str, name: &str) -> bool {
    if !is_pattern(pattern) {
        return pattern == name;
    }
    let segs: Vec<&str> = name.split('.').collect();
    // reach[j]: the pattern read so far matches exactly the first j segments.
    let mut reach = vec![false; segs.len() + 1];
    reach[0] = true;
    let mut next = vec![false; segs.len() + 1];
    for p in pattern.split('.') {
        next.iter_mut().for_each(|r| *r = false);
        if p == "#" {
            let mut any = false;
            for (j, r) in reach.iter().enumerate() {
                any |= *r;
                next[j] = any;
            }
        } else {
            for (j, seg) in segs.iter().enumerate() {
                if reach[j] && (p == "*" || p == *seg) {
                    next[j + 1] = true;
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[segs.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn event_name_patterns() {
        assert!(matches("order.created", "order.created"));
        assert!(matches("order.*", "order.created"));
        assert!(!matches("order.*", "order.created.v2"));
        assert!(matches("order.#", "order.created.v2"));
        assert!(matches("order.#", "order"));
        assert!(matches("#", "anything.at.all"));
        assert!(matches("*.created", "user.created"));
        assert!(!matches("*.created", "user.deleted"));
        assert!(matches("#.created", "created"));
        assert!(matches("a.#.b.#.c", "a.x.b.y.z.c"));
        assert!(!matches("a.#.b.#.c", "a.x.c"));
        assert!(matches("#.#", "a"));
        assert!(!matches("*.*", "a"));
    }

    #[test]
    fn many_hashes_against_a_long_name_are_fast() {
        // Exponential for a backtracking matcher: 12 '#' against 100 segments.
        let pattern = format!("{}zz", "#.".repeat(12));
        let name = vec!["a"; 100].join(".");
        let started = Instant::now();
        assert!(!matches(&pattern, &name));
        assert!(matches(&pattern, &format!("{name}.zz")));
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn check_refuses_long_or_malformed_patterns() {
        assert!(check("event", "order.#").is_ok());
        assert!(check("event", "order..#").is_err());
        assert!(check("event", "Order.*").is_err());
        assert!(check("event", &"#.".repeat(101)).is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The obvious backtracking matcher: the reference for small inputs.
    fn reference(p: &[&str], n: &[&str]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(&"#"), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(&"*"), Some(_)) => reference(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &n[1..]),
            _ => false,
        }
    }

    fn segments(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(alphabet), 1..max).prop_map(|v| v.join("."))
    }

    proptest! {
        #[test]
        fn agrees_with_the_backtracking_reference(
            pattern in segments(&["a", "b", "*", "#"], 8),
            name in segments(&["a", "b", "c"], 10),
        ) {
            let p: Vec<&str> = pattern.split('.').collect();
            let n: Vec<&str> = name.split('.').collect();
            prop_assert_eq!(matches(&pattern, &name), reference(&p, &n));
        }

        #[test]
        fn any_input_is_checked_or_matched_quickly(pattern in ".{0,300}", name in ".{0,300}") {
            let started = std::time::Instant::now();
            let _ = check("event", &pattern);
            let _ = matches(&pattern, &name);
            prop_assert!(started.elapsed() < std::time::Duration::from_millis(250));
        }

        #[test]
        fn adversarial_hash_runs_stay_linear(hashes in 1usize..60, len in 1usize..100) {
            let pattern = format!("{}zz", "#.".repeat(hashes));
            let name = vec!["a"; len].join(".");
            let started = std::time::Instant::now();
            prop_assert!(!matches(&pattern, &name));
            prop_assert!(started.elapsed() < std::time::Duration::from_millis(250));
        }
    }
}
