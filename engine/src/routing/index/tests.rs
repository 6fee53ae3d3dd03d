//! The index chooses exactly what evaluating every filter chooses.

use super::*;
use crate::model::{RetryPolicy, Subscription};
use proptest::prelude::*;
use serde_json::json;

fn live(i: usize, event: &str, group: &str, filter: Option<Value>) -> Option<LiveSub> {
    let filter = match filter {
        Some(f) => Some(Filter::compile(&f).ok()?),
        None => None,
    };
    Some(LiveSub {
        sub: Subscription {
            namespace: "default".into(),
            task_id: format!("t{i:03}"),
            event: event.into(),
            filter_json: String::new(),
            consumer_group: group.into(),
            retry: RetryPolicy::default(),
            lease_ms: 1000,
            updated_at_ms: 0,
            state: Default::default(),
            breaker: Default::default(),
            endpoint: None,
        },
        filter,
    })
}

/// Filters over a small vocabulary, so they often match: equality,
/// prefixes, numbers, nesting, arrays, anything-but, `$or`.
fn pattern() -> impl Strategy<Value = Option<Value>> {
    let word = prop::sample::select(vec!["acme", "ac", "globex", "a", "", "true"]);
    let leaf = prop_oneof![
        word.clone().prop_map(|w| json!(w)),
        any::<bool>().prop_map(|b| json!(b)),
        (0i64..4).prop_map(|n| json!(n)),
        word.clone().prop_map(|w| json!({"prefix": w})),
        (0i64..4).prop_map(|n| json!({"numeric": [">=", n]})),
        (0i64..4).prop_map(|n| json!({"numeric": ["<", n]})),
        (0i64..4).prop_map(|n| json!({"numeric": ["=", n]})),
        (0i64..3).prop_map(|n| json!({"numeric": [">", n, "<=", n + 1]})),
        (0i64..4).prop_map(|n| json!({"$lte": n as f64 + 0.5})),
        word.prop_map(|w| json!({"anything-but": [w]})),
        Just(json!({"exists": false})),
    ];
    let field = prop::collection::vec(leaf, 1..3).prop_map(Value::Array);
    let key = prop::sample::select(vec!["tenant", "type", "n"]);
    let flat = prop::collection::btree_map(key.clone(), field.clone(), 1..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    prop_oneof![
        Just(None),
        flat.clone().prop_map(Some),
        (key, flat.clone()).prop_map(|(k, inner)| Some(json!({ k: inner }))),
        (flat.clone(), flat).prop_map(|(a, b)| Some(json!({"$or": [a, b]}))),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        prop::sample::select(vec!["acme", "acme-eu", "ac", "globex", "a", "", "true"])
            .prop_map(|w| json!(w)),
        any::<bool>().prop_map(|b| json!(b)),
        (0i64..4).prop_map(|n| json!(n)),
        (0i64..4).prop_map(|n| json!(n as f64)),
        prop::sample::select(vec![-1.0, 1.5, 2.5]).prop_map(|x| json!(x)),
    ];
    let value = scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["tenant", "type", "n"]),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    });
    prop::collection::btree_map(
        prop::sample::select(vec!["tenant", "type", "n"]),
        value,
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn names(v: Vec<&LiveSub>) -> Vec<String> {
    v.into_iter().map(|s| s.sub.task_id.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_index_routes_exactly_as_evaluating_every_filter(
        specs in prop::collection::vec((pattern(), prop::sample::select(vec!["order.placed", "order.*", "other"]), prop::sample::select(vec!["", "", "g"])), 0..24),
        event in payload(),
        key in prop::sample::select(vec!["", "k1"]),
    ) {
        let subs: Vec<LiveSub> = specs
            .into_iter()
            .enumerate()
            .filter_map(|(i, (f, name, group))| live(i, name, group, f))
            .collect();
        let linear = names(super::super::route(&subs, "order.placed", &event, key, "evt-1"));
        let routes = Routes::new(subs.clone());
        let indexed = names(routes.route("order.placed", &event, key, "evt-1"));
        prop_assert_eq!(indexed, linear);
    }
}

#[test]
fn a_filter_is_filed_under_equality_then_prefix_then_range() {
    use super::super::filter::{Filing, Required};
    let f = |v: Value| Filter::compile(&v).unwrap().required();
    let filing = |required, exact| Some(Filing { required, exact });
    assert_eq!(
        f(json!({"n": [{"numeric": [">", 1]}], "tenant": ["acme", "globex"]})),
        filing(
            Required::Equal(vec!["tenant".into()], vec![json!("acme"), json!("globex")]),
            false
        )
    );
    assert_eq!(
        f(json!({"tenant": ["acme", true]})),
        filing(
            Required::Equal(vec!["tenant".into()], vec![json!("acme"), json!(true)]),
            true
        )
    );
    assert_eq!(
        f(json!({"customer": {"id": [{"prefix": "eu-"}]}})),
        filing(
            Required::Prefix(vec!["customer".into(), "id".into()], vec!["eu-".into()]),
            true
        )
    );
    // An equal string is its own prefix, but not all a prefix says.
    assert_eq!(
        f(json!({"id": [{"prefix": "eu-"}, "us"]})),
        filing(
            Required::Prefix(vec!["id".into()], vec!["eu-".into(), "us".into()]),
            false
        )
    );
    assert_eq!(
        f(json!({"n": [{"numeric": [">", 1, "<=", 5]}, {"$lt": 0}, 7]})),
        filing(
            Required::Range(
                vec!["n".into()],
                vec![(1.0, 5.0), (f64::NEG_INFINITY, 0.0), (7.0, 7.0)]
            ),
            false
        )
    );
    assert_eq!(f(json!({"n": [{"anything-but": [1]}]})), None);
    assert_eq!(f(json!({"$or": [{"a": ["x"]}, {"b": ["y"]}]})), None);
}

#[test]
fn numeric_ranges_are_found_in_an_interval_tree() {
    let subs: Vec<LiveSub> = [
        json!({"n": [{"numeric": [">=", 10]}]}),
        json!({"n": [{"numeric": ["<", 0]}]}),
        json!({"n": [{"numeric": [">", 0, "<", 5]}]}),
        json!({"n": [{"numeric": [">", 5]}]}),
    ]
    .into_iter()
    .enumerate()
    .filter_map(|(i, f)| live(i, "e", "", Some(f)))
    .collect();
    let routes = Routes::new(subs);
    let at = |n: Value| names(routes.route("e", &json!({ "n": n }), "", "x"));
    assert_eq!(at(json!(10)), vec!["t000", "t003"]);
    assert_eq!(at(json!(-0.5)), vec!["t001"]);
    assert_eq!(at(json!(5)), Vec::<String>::new());
    assert_eq!(at(json!(4.9)), vec!["t002"]);
    assert_eq!(at(json!([-1, 3])), vec!["t001", "t002"]);
    assert_eq!(at(json!("10")), Vec::<String>::new());
}

#[test]
fn the_interval_tree_finds_exactly_the_ranges_holding_a_value() {
    // 300 bands of assorted widths, some open at one end; every value
    // against a brute-force scan.
    let mut ranges = Ranges::default();
    let mut spans = Vec::new();
    for i in 0..300usize {
        let low = if i % 17 == 0 {
            f64::NEG_INFINITY
        } else {
            (i * 7 % 101) as f64
        };
        let high = if i % 13 == 0 {
            f64::INFINITY
        } else {
            low.max(0.0) + (i % 9) as f64
        };
        ranges.add((low, high), i);
        spans.push((low, high));
    }
    ranges.build();
    for x in (-20..130).map(|v| v as f64 / 1.5) {
        let mut found = Vec::new();
        ranges.candidates(x, &mut found);
        found.sort_unstable();
        let expected: Vec<usize> = (0..300)
            .filter(|&i| spans[i].0 <= x && x <= spans[i].1)
            .collect();
        assert_eq!(found, expected, "at {x}");
    }
}

#[test]
fn an_empty_prefix_is_every_string() {
    let subs: Vec<LiveSub> = [
        json!({"tenant": [{"prefix": ""}]}),
        json!({"tenant": [{"prefix": "ac"}]}),
    ]
    .into_iter()
    .enumerate()
    .filter_map(|(i, f)| live(i, "e", "", Some(f)))
    .collect();
    let routes = Routes::new(subs);
    assert_eq!(
        names(routes.route("e", &json!({"tenant": "acme"}), "", "x")),
        vec!["t000", "t001"]
    );
    assert_eq!(
        names(routes.route("e", &json!({"tenant": "x"}), "", "x")),
        vec!["t000"]
    );
    assert!(routes.route("e", &json!({"tenant": 1}), "", "x").is_empty());
}
