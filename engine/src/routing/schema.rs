//! Event schemas: compile once, validate payloads with every violation listed.
//!
//! Accepts what zod (`z.toJSONSchema`, draft-07 and 2020-12) and schemars
//! emit. The draft comes from `$schema` (default 2020-12); formats (email,
//! date-time, uuid, …) are checked in every draft.

use crate::error::{Error, Result, Violation, clip};
use crate::limits::{MAX_VIOLATION_BYTES, MAX_VIOLATIONS};
use serde_json::Value;
use std::time::Instant;

/// A compiled schema, ready to validate payloads.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
    /// The schema has user-written regexes (`pattern`, `patternProperties`),
    /// whose cost per string is not known in advance.
    has_patterns: bool,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Compile `schema`; a schema that is not valid JSON Schema is refused
    /// with the path inside the schema and the reason.
    pub fn compile(schema: &Value) -> Result<Self> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(Error::InvalidArgument(
                "schema_json must be a JSON object (a JSON Schema document)".into(),
            ));
        }
        // fancy-regex backtracks only for patterns with lookarounds or
        // backreferences; bound each match so one key or string cannot take
        // seconds (the whole validation also has a time budget, `publish`).
        let patterns = jsonschema::PatternOptions::fancy_regex()
            .backtrack_limit(20_000)
            .size_limit(1 << 20);
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_pattern_options(patterns)
            .build(schema)
            .map_err(|e| {
                let at = e.instance_path().as_str();
                let at = if at.is_empty() { "/" } else { at };
                Error::InvalidArgument(format!(
                    "schema_json is not a valid JSON Schema: at {at}: {e}"
                ))
            })?;
        Ok(CompiledSchema {
            validator,
            has_patterns: has_patterns(schema),
        })
    }

    /// Cheap enough to validate `payload_bytes` on the async runtime: small
    /// and without user regexes. Everything else goes to the blocking pool.
    pub fn is_cheap(&self, payload_bytes: usize) -> bool {
        !self.has_patterns && payload_bytes <= 4 * 1024
    }

    /// The first [`MAX_VIOLATIONS`] violations of `payload` in document
    /// order (each message cut to [`MAX_VIOLATION_BYTES`]: they quote the
    /// value) and how many there are in all; `(empty, 0)` when valid. Stops
    /// counting at `deadline`, which makes the count a lower bound.
    pub fn violations(&self, payload: &Value, deadline: Instant) -> (Vec<Violation>, usize) {
        let mut shown = Vec::new();
        let mut total = 0;
        for e in self.validator.iter_errors(payload) {
            total += 1;
            if shown.len() < MAX_VIOLATIONS {
                shown.push(Violation {
                    path: clip(e.instance_path().as_str(), MAX_VIOLATION_BYTES),
                    message: clip(&e.to_string(), MAX_VIOLATION_BYTES),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        (shown, total)
    }
}

fn has_patterns(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "pattern" || k == "patternProperties" || has_patterns(v)),
        Value::Array(a) => a.iter().any(has_patterns),
        _ => false,
    }
}

/// Parse JSON text named `field`, with line/column on error.
pub fn parse_json(field: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::InvalidArgument(format!(
            "{field} is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Parse a payload: JSON text whose objects have no duplicate keys. The
/// payload is stored as the text published, so the value validated (where a
/// repeated key keeps its last value) must be the only reading of it.
pub fn parse_payload(field: &str, text: &str) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed =
        serde::Deserialize::deserialize(&mut de).and_then(|Strict(v)| de.end().map(|()| v));
    parsed.map_err(|e| {
        Error::InvalidArgument(format!(
            "{field} is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A JSON value whose objects refuse a repeated key.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key '{}' in an object",
                    clip(&key, crate::limits::MAX_ECHO_BYTES)
                )));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The schema in a canonical text form (sorted keys, no whitespace), used to
/// decide whether a redefinition changes anything.
pub fn canonical(schema: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<_> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(schema).to_string()
}

/// Event names: lowercase, dot-separated segments of `[a-z0-9_-]`, each
/// starting with a letter or digit (`order.created`, `user.signed-up`).
pub fn check_event_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|seg| {
            seg.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "event name '{name}' is invalid: expected lowercase dot-separated segments of a-z, 0-9, '_' or '-', e.g. 'order.created'"
        )))
    }
}

/// Names starting with `fanout.` are Fanout's operational events: users
/// subscribe to them but neither define nor publish them.
pub fn check_not_reserved(name: &str) -> Result<()> {
    if name.starts_with("fanout.") {
        return Err(Error::InvalidArgument(format!(
            "event name '{name}': names starting with 'fanout.' are reserved for Fanout's operational events (fanout.subscription.paused, fanout.subscription.resumed, fanout.subscription.disabled, fanout.run.dead); subscribe to them instead"
        )));
    }
    Ok(())
}

/// Task ids and namespaces: `[A-Za-z0-9_.-]`, 1..=200 characters.
pub fn check_identifier(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{field} '{value}' is invalid: expected 1-200 characters of A-Z, a-z, 0-9, '_', '-', '.', ':'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_path_and_the_expectation() {
        let s = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"items": {"type": "array", "items": {
                "type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}}},
        }))
        .unwrap();
        let (v, total) = s.violations(&json!({"items": [{"qty": 0}]}), later());
        assert_eq!(v.len(), 1);
        assert_eq!(total, 1);
        assert_eq!(
            v[0].to_string(),
            "/items/0/qty: 0 is less than the minimum of 1"
        );
    }

    #[test]
    fn formats_are_checked_in_draft7_and_2020_12() {
        for draft in [
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2020-12/schema",
        ] {
            let s = CompiledSchema::compile(&json!({
                "$schema": draft, "type": "object",
                "properties": {"email": {"type": "string", "format": "email"},
                               "at": {"type": "string", "format": "date-time"}}
            }))
            .unwrap();
            let ok = json!({"email": "a@b.co", "at": "2026-01-01T00:00:00Z"});
            assert_eq!(s.violations(&ok, later()).1, 0);
            let bad = json!({"email": "nope", "at": "yesterday"});
            assert_eq!(s.violations(&bad, later()).1, 2, "{draft}");
        }
    }

    fn later() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    #[test]
    fn violations_are_bounded_and_counted() {
        let s = CompiledSchema::compile(&json!({"type": "array", "items": {"type": "integer"}}))
            .unwrap();
        let long = "x".repeat(10_000);
        let payload = json!(vec![long; 500]);
        let (shown, total) = s.violations(&payload, later());
        assert_eq!(total, 500);
        assert_eq!(shown.len(), MAX_VIOLATIONS);
        assert!(
            shown
                .iter()
                .all(|v| v.message.len() <= MAX_VIOLATION_BYTES + 32)
        );
    }

    #[test]
    fn payloads_keep_their_text_and_refuse_duplicate_keys() {
        let v = parse_payload(
            "payload",
            r#"{"n": 123456789012345678901234567890, "a": [1, {"b": 2}]}"#,
        )
        .unwrap();
        assert_eq!(v["a"][1]["b"], 2);
        let e = parse_payload("payload", r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key 'a'"), "{e}");
        let e = parse_payload("payload", r#"{"x": {"a": 1, "a": 2}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
        assert!(parse_payload("payload", "[1, 2] x").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_payload("payload", &deep).is_err());
    }

    #[test]
    fn invalid_schema_is_refused_with_reason() {
        let e = CompiledSchema::compile(&json!({"type": "strin"})).unwrap_err();
        assert!(e.to_string().contains("not a valid JSON Schema"), "{e}");
        assert!(CompiledSchema::compile(&json!("x")).is_err());
    }

    #[test]
    fn names() {
        assert!(check_event_name("order.created").is_ok());
        assert!(check_event_name("Order.Created").is_err());
        assert!(check_event_name("order..created").is_err());
        assert!(check_event_name("").is_err());
    }

    #[test]
    fn canonical_ignores_key_order() {
        assert_eq!(
            canonical(&json!({"a": 1, "b": 2})),
            canonical(&json!({"b": 2, "a": 1}))
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The publish payload parser: any text parses or is refused as
        /// INVALID_ARGUMENT, never a panic.
        #[test]
        fn payload_text_parses_or_is_invalid_argument(text in r#"[\[\]{}":,0-9a-z .eE+\-\\]{0,200}"#) {
            match parse_payload("payload", &text) {
                Ok(v) => prop_assert_eq!(v, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)),
                Err(e) => prop_assert!(matches!(e, Error::InvalidArgument(_))),
            }
        }
    }
}
