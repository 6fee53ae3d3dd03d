//! Evaluating a compiled filter against a payload, with EventBridge's
//! semantics: leaf values (arrays flattened, objects not values), an
//! operator on an array satisfied by some element, exact integers.

use super::{Cmp, Field, Leaf, Node};
use serde_json::Value;
use std::net::IpAddr;

pub(super) fn node_matches(node: &Node, value: Option<&Value>) -> bool {
    let Node::All { fields, ors } = node;
    let obj = value.and_then(Value::as_object);
    fields
        .iter()
        .all(|(k, f)| field_matches(f, obj.and_then(|o| o.get(k))))
        && ors
            .iter()
            .all(|group| group.iter().any(|n| node_matches(n, value)))
}

fn field_matches(f: &Field, v: Option<&Value>) -> bool {
    match f {
        Field::Nested(n) => match v {
            Some(Value::Array(items)) => items.iter().any(|i| node_matches(n, Some(i))),
            Some(v @ Value::Object(_)) => node_matches(n, Some(v)),
            // Absent or scalar: only patterns satisfied by absence match.
            _ => node_matches(n, None),
        },
        Field::AnyOf(leaves) => leaves.iter().any(|l| leaf_on_field(l, v)),
    }
}

/// Does some leaf value of a field, as EventBridge sees them, satisfy `f`?
/// A scalar is one leaf, an array contributes its elements with nested
/// arrays flattened, an object (or an array's objects) none — objects are
/// matched by nested patterns, not by leaf operators. No allocation: this
/// runs for every candidate filter of every publish. The routing index
/// gathers values through it too, so both see the same leaves.
pub(crate) fn any_leaf<'a>(v: &'a Value, f: &mut impl FnMut(&'a Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| any_leaf(i, f)),
        Value::Object(_) => false,
        scalar => f(scalar),
    }
}

/// One alternative against the field (absent, scalar, or array).
fn leaf_on_field(l: &Leaf, v: Option<&Value>) -> bool {
    match (l, v) {
        (_, None) => matches!(l, Leaf::Exists(false)),
        // `$includes` (Fanout's own) looks at the array itself.
        (Leaf::Includes(x), Some(Value::Array(items))) => items.contains(x),
        (Leaf::Includes(Value::String(x)), Some(Value::String(s))) => s.contains(x.as_str()),
        (Leaf::Includes(_), _) => false,
        // Defined on leaf values: an object or an empty array has none, so
        // it does not "exist" as a value.
        (Leaf::Exists(want), Some(v)) => any_leaf(v, &mut |_| true) == *want,
        // Like every operator on an array: some element satisfies it
        // (EventBridge), i.e. some element is not excluded.
        (l, Some(v)) => any_leaf(v, &mut |x| leaf_on_value(l, x)),
    }
}

/// Exact numeric equality: two integers compare exactly (so 2^53 + 1 is
/// not 2^53), anything else as f64 (`3` equals `3.0`).
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    if (a.is_i64() || a.is_u64()) && (b.is_i64() || b.is_u64()) {
        // One negative i64, one u64 beyond i64: different.
        return false;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

fn leaf_on_value(l: &Leaf, v: &Value) -> bool {
    match l {
        Leaf::Equals(Value::Number(n)) => match v {
            Value::Number(m) => numbers_equal(n, m),
            _ => false,
        },
        Leaf::Equals(x) => x == v,
        Leaf::Null => v.is_null(),
        Leaf::IsNull(want) => v.is_null() == *want,
        Leaf::Exists(want) => *want,
        Leaf::Num(cmps) => v.as_f64().is_some_and(|x| {
            cmps.iter().all(|(c, b)| match c {
                Cmp::Gt => x > *b,
                Cmp::Ge => x >= *b,
                Cmp::Lt => x < *b,
                Cmp::Le => x <= *b,
                Cmp::Eq => x == *b,
            })
        }),
        Leaf::Prefix(p, ic) => v.as_str().is_some_and(|s| {
            if *ic {
                s.to_lowercase().starts_with(&p.to_lowercase())
            } else {
                s.starts_with(p.as_str())
            }
        }),
        Leaf::Suffix(p, ic) => v.as_str().is_some_and(|s| {
            if *ic {
                s.to_lowercase().ends_with(&p.to_lowercase())
            } else {
                s.ends_with(p.as_str())
            }
        }),
        Leaf::EqualsIgnoreCase(x) => v.as_str().is_some_and(|s| s.to_lowercase() == *x),
        Leaf::AnythingBut(not) => !not.iter().any(|n| leaf_on_value(n, v)),
        Leaf::Includes(_) => false,
        Leaf::Wildcard(parts) => v.as_str().is_some_and(|s| wildcard(parts, s)),
        Leaf::Cidr(net, bits) => v
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some_and(|ip| in_cidr(*net, *bits, ip)),
    }
}

fn wildcard(parts: &[String], s: &str) -> bool {
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return s.is_empty(),
    };
    if rest.is_empty() {
        return s == first;
    }
    let Some(mut s) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    let (last, middle) = rest.split_last().unwrap_or((first, &[]));
    for m in middle {
        match s.find(m.as_str()) {
            Some(i) => s = &s[i + m.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last.as_str())
}

fn in_cidr(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}
