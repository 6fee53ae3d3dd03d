//! Event schemas: compile once, validate payloads with every violation listed.
//!
//! Accepts what zod (`z.toJSONSchema`, draft-07 and 2020-12) and schemars
//! emit. The draft comes from `$schema` (default 2020-12); formats (email,
//! date-time, uuid, …) are checked in every draft.

use crate::error::{Error, Result, Violation};
use serde_json::Value;

/// A compiled schema, ready to validate payloads.
pub struct CompiledSchema {
    validator: jsonschema::Validator,
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
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| {
                let at = e.instance_path().as_str();
                let at = if at.is_empty() { "/" } else { at };
                Error::InvalidArgument(format!(
                    "schema_json is not a valid JSON Schema: at {at}: {e}"
                ))
            })?;
        Ok(CompiledSchema { validator })
    }

    /// Every violation of `payload`, in document order; empty when valid.
    pub fn violations(&self, payload: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(payload)
            .map(|e| Violation {
                path: e.instance_path().as_str().to_string(),
                message: e.to_string(),
            })
            .collect()
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
        let v = s.violations(&json!({"items": [{"qty": 0}]}));
        assert_eq!(v.len(), 1);
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
            assert!(
                s.violations(&json!({"email": "a@b.co", "at": "2026-01-01T00:00:00Z"}))
                    .is_empty()
            );
            assert_eq!(
                s.violations(&json!({"email": "nope", "at": "yesterday"}))
                    .len(),
                2,
                "{draft}"
            );
        }
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
