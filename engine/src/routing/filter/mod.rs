//! Content filters: which events a subscription wants, decided server-side
//! before a run is created.
//!
//! One language, two spellings, so patterns paste in from either world:
//! Fanout operators (`{"amount": [{"$gte": 1000}]}`) and EventBridge
//! patterns (`{"amount": [{"numeric": [">=", 1000]}]}`). Semantics follow
//! EventBridge: keys AND, the values in an array OR, nested objects recurse,
//! a payload array matches if any element matches, `exists: false` (or
//! `$exists: false`) matches an absent field, `$or` takes alternatives of
//! whole sub-patterns. A pattern is compiled once into a [`Filter`]; a
//! malformed one is refused with the path and the problem — never treated as
//! "match". `docs/filters.md` is the reference, with where Fanout differs
//! from EventBridge on purpose (exact integers) and why.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// All of these field conditions and all of these `$or` groups.
    All {
        fields: Vec<(String, Field)>,
        ors: Vec<Vec<Node>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    /// Nested object pattern.
    Nested(Node),
    /// Any of these leaf matchers.
    AnyOf(Vec<Leaf>),
}

#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    Equals(Value),
    Null,
    Exists(bool),
    IsNull(bool),
    Num(Vec<(Cmp, f64)>),
    Prefix(String, bool),
    Suffix(String, bool),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Leaf>),
    Includes(Value),
    Wildcard(Vec<String>),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

/// A refused pattern: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.path.is_empty() {
                "/"
            } else {
                &self.path
            },
            self.message
        )
    }
}

type R<T> = Result<T, FilterError>;

fn err<T>(path: &str, message: impl Into<String>) -> R<T> {
    Err(FilterError {
        path: path.to_string(),
        message: message.into(),
    })
}

const OPERATORS: &str = "$gt $gte $lt $lte $between $startsWith $endsWith $ignoreCaseEquals $exists $isNull \
     $anythingBut $includes, or EventBridge prefix suffix equals-ignore-case anything-but numeric exists wildcard cidr";

impl Filter {
    /// Compile a pattern (a JSON object).
    pub fn compile(pattern: &Value) -> R<Self> {
        let Value::Object(m) = pattern else {
            return err("", "a filter must be a JSON object of field patterns");
        };
        if m.is_empty() {
            return err(
                "",
                "an empty pattern {} is refused (as EventBridge does); omit the filter to receive every event",
            );
        }
        Ok(Filter {
            root: compile_object(m, "")?,
        })
    }

    /// Parse and compile JSON text; empty text means "no filter".
    pub fn parse(text: &str) -> R<Option<Self>> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(text).map_err(|e| FilterError {
            path: String::new(),
            message: format!("not valid JSON: {e}"),
        })?;
        Filter::compile(&v).map(Some)
    }

    /// Does `payload` match?
    pub fn matches(&self, payload: &Value) -> bool {
        node_matches(&self.root, Some(payload))
    }
}

fn compile_object(m: &Map<String, Value>, path: &str) -> R<Node> {
    let mut fields = Vec::new();
    let mut ors = Vec::new();
    for (k, v) in m {
        let p = format!("{path}/{k}");
        if k == "$or" {
            let Value::Array(alts) = v else {
                return err(&p, "$or takes an array of patterns");
            };
            if alts.len() < 2 {
                return err(&p, "$or needs at least two patterns");
            }
            let mut group = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                let Value::Object(am) = a else {
                    return err(
                        &format!("{p}/{i}"),
                        "each $or alternative must be an object pattern",
                    );
                };
                group.push(compile_object(am, path)?);
            }
            ors.push(group);
            continue;
        }
        let field = match v {
            Value::Object(inner) => Field::Nested(compile_object(inner, &p)?),
            Value::Array(alts) => {
                if alts.is_empty() {
                    return err(
                        &p,
                        "an empty array matches nothing; list at least one value",
                    );
                }
                let mut leaves = Vec::new();
                for (i, a) in alts.iter().enumerate() {
                    leaves.push(compile_leaf(a, &format!("{p}/{i}"))?);
                }
                Field::AnyOf(leaves)
            }
            other => {
                return err(
                    &p,
                    format!(
                        "expected an array of alternatives (e.g. [{other}]) or a nested object, got {other}"
                    ),
                );
            }
        };
        fields.push((k.clone(), field));
    }
    if fields.is_empty() && ors.is_empty() && !path.is_empty() {
        return err(path, "an empty nested pattern; remove it or add fields");
    }
    Ok(Node::All { fields, ors })
}

fn num(v: &Value, p: &str) -> R<f64> {
    v.as_f64()
        .map_or_else(|| err(p, format!("expected a number, got {v}")), Ok)
}

fn string<'a>(v: &'a Value, p: &str) -> R<&'a str> {
    v.as_str()
        .map_or_else(|| err(p, format!("expected a string, got {v}")), Ok)
}

fn boolean(v: &Value, p: &str) -> R<bool> {
    v.as_bool()
        .map_or_else(|| err(p, format!("expected true or false, got {v}")), Ok)
}

fn compile_leaf(v: &Value, p: &str) -> R<Leaf> {
    let m = match v {
        Value::Null => return Ok(Leaf::Null),
        Value::Object(m) => m,
        Value::Array(_) => {
            return err(
                p,
                "nested arrays are not a pattern; list alternatives in one array",
            );
        }
        scalar => return Ok(Leaf::Equals(scalar.clone())),
    };
    if m.len() != 1 {
        return err(
            p,
            format!(
                "an operator object has exactly one operator, got {}",
                m.len()
            ),
        );
    }
    let (op, arg) = m
        .iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .unwrap_or(("", &Value::Null));
    let at = format!("{p}/{op}");
    Ok(match op {
        "$gt" => Leaf::Num(vec![(Cmp::Gt, num(arg, &at)?)]),
        "$gte" => Leaf::Num(vec![(Cmp::Ge, num(arg, &at)?)]),
        "$lt" => Leaf::Num(vec![(Cmp::Lt, num(arg, &at)?)]),
        "$lte" => Leaf::Num(vec![(Cmp::Le, num(arg, &at)?)]),
        "$between" => match arg.as_array().map(Vec::as_slice) {
            Some([lo, hi]) => {
                let (lo, hi) = (num(lo, &at)?, num(hi, &at)?);
                if lo > hi {
                    return err(&at, format!("lower bound {lo} is above upper bound {hi}"));
                }
                Leaf::Num(vec![(Cmp::Ge, lo), (Cmp::Le, hi)])
            }
            _ => return err(&at, "expected [low, high]"),
        },
        "numeric" => {
            let Some(items) = arg.as_array() else {
                return err(&at, "expected [\">\", 0, \"<=\", 5]");
            };
            if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
                return err(
                    &at,
                    "expected one or two (operator, number) pairs, e.g. [\">\", 0, \"<=\", 5]",
                );
            }
            let mut cmps = Vec::new();
            for pair in items.chunks(2) {
                let cmp = match pair[0].as_str() {
                    Some(">") => Cmp::Gt,
                    Some(">=") => Cmp::Ge,
                    Some("<") => Cmp::Lt,
                    Some("<=") => Cmp::Le,
                    Some("=") => Cmp::Eq,
                    _ => {
                        return err(
                            &at,
                            format!(
                                "unknown comparison {}; expected one of > >= < <= =",
                                pair[0]
                            ),
                        );
                    }
                };
                cmps.push((cmp, num(&pair[1], &at)?));
            }
            check_range(&cmps, &at)?;
            Leaf::Num(cmps)
        }
        "$startsWith" => Leaf::Prefix(string(arg, &at)?.to_string(), false),
        "$endsWith" => Leaf::Suffix(string(arg, &at)?.to_string(), false),
        "prefix" | "suffix" => {
            let (s, ic) = match arg {
                Value::String(s) => (s.clone(), false),
                Value::Object(o) if o.len() == 1 && o.contains_key("equals-ignore-case") => {
                    (string(&o["equals-ignore-case"], &at)?.to_string(), true)
                }
                _ => return err(&at, "expected a string or {\"equals-ignore-case\": string}"),
            };
            if op == "prefix" {
                Leaf::Prefix(s, ic)
            } else {
                Leaf::Suffix(s, ic)
            }
        }
        "$ignoreCaseEquals" | "equals-ignore-case" => {
            Leaf::EqualsIgnoreCase(string(arg, &at)?.to_lowercase())
        }
        "$exists" | "exists" => Leaf::Exists(boolean(arg, &at)?),
        "$isNull" => Leaf::IsNull(boolean(arg, &at)?),
        "$anythingBut" | "anything-but" => {
            let inner = match arg {
                Value::Array(items) if !items.is_empty() => {
                    let strings = items.iter().filter(|x| x.is_string()).count();
                    let numbers = items.iter().filter(|x| x.is_number()).count();
                    if strings + numbers < items.len() || (strings > 0 && numbers > 0) {
                        return err(
                            &at,
                            "an anything-but list holds only strings or only numbers, not a mix (nor null, booleans or objects)",
                        );
                    }
                    items
                        .iter()
                        .map(|x| compile_leaf(x, &at))
                        .collect::<R<Vec<_>>>()?
                }
                Value::Array(_) => return err(&at, "expected at least one value"),
                Value::Object(o) if o.len() == 1 => {
                    let (k, _) = o
                        .iter()
                        .next()
                        .map(|(k, v)| (k.as_str(), v))
                        .unwrap_or(("", &Value::Null));
                    if !matches!(k, "prefix" | "suffix" | "equals-ignore-case" | "wildcard") {
                        return err(
                            &at,
                            format!(
                                "anything-but supports prefix, suffix, equals-ignore-case or wildcard, not {k}"
                            ),
                        );
                    }
                    let inner_at = format!("{at}/{k}");
                    // One value or a list of them: `{"prefix": ["a", "b"]}`.
                    let values: Vec<&Value> = match &o[k] {
                        Value::Array(list) if list.is_empty() => {
                            return err(&inner_at, "expected at least one value");
                        }
                        Value::Array(list) => list.iter().collect(),
                        one => vec![one],
                    };
                    let mut leaves = Vec::new();
                    for (i, v) in values.into_iter().enumerate() {
                        let s = string(v, &format!("{inner_at}/{i}"))?;
                        if s.is_empty() && matches!(k, "prefix" | "suffix") {
                            return err(
                                &inner_at,
                                format!(
                                    "an empty {k} inside anything-but would exclude everything"
                                ),
                            );
                        }
                        let mut one = Map::new();
                        one.insert(k.to_string(), v.clone());
                        leaves.push(compile_leaf(&Value::Object(one), &at)?);
                    }
                    leaves
                }
                Value::Object(_) => {
                    return err(
                        &at,
                        "expected a value, a list, or one of {prefix|suffix|equals-ignore-case: …}",
                    );
                }
                scalar => vec![compile_leaf(scalar, &at)?],
            };
            Leaf::AnythingBut(inner)
        }
        "$includes" => Leaf::Includes(arg.clone()),
        "wildcard" => Leaf::Wildcard(wildcard_parts(string(arg, &at)?, &at)?),
        "cidr" => {
            let s = string(arg, &at)?;
            let Some((ip, bits)) = s.split_once('/') else {
                return err(
                    &at,
                    format!(
                        "'{s}' has no prefix length; write it as 10.0.0.0/24 (or /32 for one address)"
                    ),
                );
            };
            let bits = Some(bits);
            let ip: IpAddr = ip.parse().map_or_else(
                |_| err(&at, format!("'{s}' is not an IP prefix like 10.0.0.0/24")),
                Ok,
            )?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .map_or_else(|| err(&at, format!("prefix length must be 0..={max}")), Ok)?,
            };
            Leaf::Cidr(ip, bits)
        }
        other => {
            return err(
                &at,
                format!("unknown operator '{other}'; expected one of {OPERATORS}"),
            );
        }
    })
}

/// A numeric condition is one range: at most one lower bound (`>`, `>=`)
/// and one upper (`<`, `<=`), or one `=`; a range no number satisfies
/// (`> 5, < 5`, `> 10, < 5`) is refused, not silently never matched.
fn check_range(cmps: &[(Cmp, f64)], at: &str) -> R<()> {
    let lower: Vec<&(Cmp, f64)> = cmps
        .iter()
        .filter(|(c, _)| matches!(c, Cmp::Gt | Cmp::Ge))
        .collect();
    let upper: Vec<&(Cmp, f64)> = cmps
        .iter()
        .filter(|(c, _)| matches!(c, Cmp::Lt | Cmp::Le))
        .collect();
    let eq = cmps.iter().filter(|(c, _)| *c == Cmp::Eq).count();
    if lower.len() > 1 || upper.len() > 1 || (eq > 0 && cmps.len() > 1) {
        return err(
            at,
            "expected one lower bound (> or >=) and/or one upper bound (< or <=), or a single =",
        );
    }
    if let (Some((lc, lo)), Some((uc, hi))) = (lower.first(), upper.first()) {
        let empty = lo > hi || (lo == hi && !(*lc == Cmp::Ge && *uc == Cmp::Le));
        if empty {
            return err(
                at,
                format!("the range is empty: no number is above {lo} and below {hi}"),
            );
        }
    }
    Ok(())
}

/// A wildcard pattern's literal parts between unescaped `*`s. `\*` is a
/// literal star and `\\` a literal backslash; any other escape, and two
/// unescaped stars in a row, are refused.
fn wildcard_parts(s: &str, at: &str) -> R<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    let mut last_was_star = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                match chars.next() {
                    Some(e @ ('*' | '\\')) => {
                        if let Some(p) = parts.last_mut() {
                            p.push(e)
                        }
                    }
                    other => {
                        return err(
                            at,
                            format!(
                                "invalid escape '\\{}' in wildcard: only \\* (a literal star) and \\\\ (a backslash) are escapes",
                                other.map(String::from).unwrap_or_default()
                            ),
                        );
                    }
                }
                last_was_star = false;
            }
            '*' => {
                if last_was_star {
                    return err(at, "consecutive '*' characters are not allowed");
                }
                parts.push(String::new());
                last_was_star = true;
            }
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
                last_was_star = false;
            }
        }
    }
    Ok(parts)
}

mod eval;
pub(crate) use eval::any_leaf;
use eval::node_matches;
mod required;
pub use required::{Filing, Required};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
