//! Property tests: compiling never panics, matching stays fast.

use super::*;
use proptest::prelude::*;

/// Arbitrary JSON, small and deep enough to reach every operator shape.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "prefix",
            "suffix",
            "anything-but",
            "numeric",
            "exists",
            "cidr",
            "wildcard",
            "equals-ignore-case",
            "$gte",
            "$lt",
            "$between",
            "$in",
            "*",
            "a*b",
            "10.0.0.0/8",
            "<",
            ">=",
            "=",
            "",
        ])
        .prop_map(|s| Value::String(s.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "a",
                    "b",
                    "prefix",
                    "suffix",
                    "anything-but",
                    "numeric",
                    "exists",
                    "cidr",
                    "wildcard",
                    "equals-ignore-case",
                    "$gte",
                    "$between",
                    "$in",
                    "$or",
                ]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_compiler_never_panics_and_either_compiles_or_explains(pattern in json(), event in json()) {
        let started = std::time::Instant::now();
        match Filter::compile(&pattern) {
            Ok(f) => { let _ = f.matches(&event); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        prop_assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn text_patterns_never_panic(text in ".{0,200}") {
        let _ = Filter::parse(&text);
    }
}
