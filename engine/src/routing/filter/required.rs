//! What a filter requires of one field, for the routing index
//! (`routing/index.rs`): a condition every matching payload meets and a map
//! can look up, so the index evaluates a filter only for payloads that
//! meet it.

use super::{Field, Filter, Leaf, Node};
use serde_json::Value;

/// What a filter requires of a field (see [`Filter::required`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Required {
    /// The field (path from the root) equals one of these strings/booleans.
    Equal(Vec<String>, Vec<Value>),
    /// The field (a string) starts with one of these.
    Prefix(Vec<String>, Vec<String>),
}

impl Filter {
    /// A field that must equal one of some strings or booleans, else one
    /// that must start with one of some prefixes (an equal string counts as
    /// its own prefix). `None` when the filter requires neither (numbers
    /// only, `anything-but`, `$or`, …): it is then evaluated for every
    /// event. Fields of nested objects count: a nested pattern fails on an
    /// absent or scalar value, so what it requires is required.
    pub fn required(&self) -> Option<Required> {
        let equal = |l: &Leaf| match l {
            Leaf::Equals(v @ (Value::String(_) | Value::Bool(_))) => Some(v.clone()),
            _ => None,
        };
        let prefix = |l: &Leaf| match l {
            Leaf::Prefix(p, false) => Some(p.clone()),
            Leaf::Equals(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        first_field(&self.root, &mut Vec::new(), &equal)
            .map(|(path, values)| Required::Equal(path, values))
            .or_else(|| {
                first_field(&self.root, &mut Vec::new(), &prefix)
                    .map(|(path, values)| Required::Prefix(path, values))
            })
    }
}

/// The first field (depth first, in pattern order) all of whose
/// alternatives `leaf` accepts, with what it made of each.
fn first_field<T>(
    node: &Node,
    path: &mut Vec<String>,
    leaf: &dyn Fn(&Leaf) -> Option<T>,
) -> Option<(Vec<String>, Vec<T>)> {
    let Node::All { fields, .. } = node;
    for (k, f) in fields {
        path.push(k.clone());
        let found = match f {
            Field::AnyOf(leaves) => leaves
                .iter()
                .map(leaf)
                .collect::<Option<Vec<T>>>()
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
