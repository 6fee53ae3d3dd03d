//! What a filter requires of one field, for the routing index
//! (`routing/index.rs`): a condition every matching payload meets and a map,
//! a prefix lookup or a sorted list can answer, so the index evaluates a
//! filter only for payloads that meet it — or, when the condition is the
//! whole filter ([`Filing::exact`]), not at all.

use super::{Cmp, Field, Filter, Leaf, Node};
use serde_json::Value;

/// What a filter requires of a field (see [`Filter::required`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Required {
    /// The field (path from the root) equals one of these strings/booleans.
    Equal(Vec<String>, Vec<Value>),
    /// The field (a string) starts with one of these.
    Prefix(Vec<String>, Vec<String>),
    /// The field (a number) lies in one of these closed intervals
    /// `(low, high)`, either end possibly infinite. Closed even where the
    /// pattern says `>`: a necessary condition, the filter decides.
    Range(Vec<String>, Vec<(f64, f64)>),
}

/// A filter's filing: what it requires, and whether meeting that *is*
/// matching (the pattern is that one field and nothing else, and the
/// condition loses nothing), so the index need not evaluate it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filing {
    pub required: Required,
    pub exact: bool,
}

/// A leaf's part of a condition, and whether it says all the leaf says.
type Part<T> = Option<(T, bool)>;

/// A field's path and the parts its alternatives made.
type Found<T> = (Vec<String>, Vec<(T, bool)>);

impl Filter {
    /// A field that must equal one of some strings or booleans, else one
    /// that must start with one of some prefixes (an equal string counts as
    /// its own prefix), else a number in one of some ranges. `None` when the
    /// filter requires none of these (`anything-but`, `$or`, wildcards, …):
    /// it is then evaluated for every event. Fields of nested objects count:
    /// a nested pattern fails on an absent or scalar value, so what it
    /// requires is required.
    pub fn required(&self) -> Option<Filing> {
        let equal = |l: &Leaf| match l {
            Leaf::Equals(v @ (Value::String(_) | Value::Bool(_))) => Some((v.clone(), true)),
            _ => None,
        };
        let prefix = |l: &Leaf| match l {
            Leaf::Prefix(p, false) => Some((p.clone(), true)),
            Leaf::Equals(Value::String(s)) => Some((s.clone(), false)),
            _ => None,
        };
        let range = |l: &Leaf| match l {
            Leaf::Num(cmps) => Some((interval(cmps), false)),
            // Exact integers compare exactly, but rounding to f64 keeps
            // order, so equal numbers land on the same point.
            Leaf::Equals(Value::Number(n)) => n.as_f64().map(|x| ((x, x), false)),
            _ => None,
        };
        let single = single_field(&self.root);
        first_field(&self.root, &mut Vec::new(), &equal)
            .map(|f| file(f, single, Required::Equal))
            .or_else(|| {
                first_field(&self.root, &mut Vec::new(), &prefix)
                    .map(|f| file(f, single, Required::Prefix))
            })
            .or_else(|| {
                first_field(&self.root, &mut Vec::new(), &range)
                    .map(|f| file(f, single, Required::Range))
            })
    }
}

/// A found field as a filing: exact when the pattern is that field alone
/// and every alternative's part says all the alternative says.
fn file<T>(
    (path, parts): Found<T>,
    single: bool,
    make: fn(Vec<String>, Vec<T>) -> Required,
) -> Filing {
    let exact = single && parts.iter().all(|(_, e)| *e);
    Filing {
        required: make(path, parts.into_iter().map(|(v, _)| v).collect()),
        exact,
    }
}

/// The closed interval a numeric leaf's comparisons allow.
fn interval(cmps: &[(Cmp, f64)]) -> (f64, f64) {
    cmps.iter().fold(
        (f64::NEG_INFINITY, f64::INFINITY),
        |(lo, hi), (c, b)| match c {
            Cmp::Gt | Cmp::Ge => (lo.max(*b), hi),
            Cmp::Lt | Cmp::Le => (lo, hi.min(*b)),
            Cmp::Eq => (lo.max(*b), hi.min(*b)),
        },
    )
}

/// Is the pattern one field (through nested objects) and nothing else?
fn single_field(node: &Node) -> bool {
    let Node::All { fields, ors } = node;
    match fields.as_slice() {
        [(_, Field::AnyOf(_))] => ors.is_empty(),
        [(_, Field::Nested(n))] => ors.is_empty() && single_field(n),
        _ => false,
    }
}

/// The first field (depth first, in pattern order) all of whose
/// alternatives `leaf` accepts, with what it made of each.
fn first_field<T>(
    node: &Node,
    path: &mut Vec<String>,
    leaf: &dyn Fn(&Leaf) -> Part<T>,
) -> Option<Found<T>> {
    let Node::All { fields, .. } = node;
    for (k, f) in fields {
        path.push(k.clone());
        let found = match f {
            Field::AnyOf(leaves) => leaves
                .iter()
                .map(leaf)
                .collect::<Option<Vec<_>>>()
                .map(|values| (path.clone(), values)),
            Field::Nested(n) => first_field(n, path, leaf),
        };
        path.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}
