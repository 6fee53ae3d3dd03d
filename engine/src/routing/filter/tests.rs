//! Examples of every operator, and the errors that name their path.

use super::*;
use serde_json::json;

fn m(p: Value, v: Value) -> bool {
    Filter::compile(&p)
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(&v)
}

#[test]
fn fanout_operators() {
    assert!(m(
        json!({"currency": ["USD", "EUR"]}),
        json!({"currency": "EUR"})
    ));
    assert!(!m(
        json!({"currency": ["USD", "EUR"]}),
        json!({"currency": "GBP"})
    ));
    assert!(m(
        json!({"amount": [{"$gte": 1000}]}),
        json!({"amount": 1000})
    ));
    assert!(!m(
        json!({"amount": [{"$gte": 1000}]}),
        json!({"amount": 999.5})
    ));
    assert!(m(
        json!({"amount": [{"$gt": 1}, {"$lt": -1}]}),
        json!({"amount": -5})
    ));
    assert!(m(
        json!({"amount": [{"$between": [1, 5]}]}),
        json!({"amount": 5})
    ));
    assert!(m(
        json!({"sku": [{"$startsWith": "AB"}]}),
        json!({"sku": "ABC"})
    ));
    assert!(m(
        json!({"sku": [{"$endsWith": "BC"}]}),
        json!({"sku": "ABC"})
    ));
    assert!(m(
        json!({"c": [{"$ignoreCaseEquals": "usd"}]}),
        json!({"c": "USD"})
    ));
    assert!(m(json!({"c": [{"$exists": false}]}), json!({})));
    assert!(!m(json!({"c": [{"$exists": true}]}), json!({})));
    assert!(m(json!({"c": [{"$isNull": true}]}), json!({"c": null})));
    assert!(m(
        json!({"c": [{"$anythingBut": ["a", "b"]}]}),
        json!({"c": "z"})
    ));
    assert!(!m(json!({"c": [{"$anythingBut": "a"}]}), json!({"c": "a"})));
    assert!(m(
        json!({"tags": [{"$includes": "vip"}]}),
        json!({"tags": ["x", "vip"]})
    ));
}

#[test]
fn eventbridge_patterns() {
    assert!(m(json!({"s": [{"prefix": "ord"}]}), json!({"s": "order"})));
    assert!(m(
        json!({"s": [{"prefix": {"equals-ignore-case": "ORD"}}]}),
        json!({"s": "order"})
    ));
    assert!(m(json!({"s": [{"suffix": ".png"}]}), json!({"s": "a.png"})));
    assert!(m(
        json!({"s": [{"equals-ignore-case": "AbC"}]}),
        json!({"s": "aBc"})
    ));
    assert!(m(
        json!({"s": [{"anything-but": {"prefix": "test"}}]}),
        json!({"s": "prod"})
    ));
    assert!(!m(
        json!({"s": [{"anything-but": {"prefix": "test"}}]}),
        json!({"s": "test-1"})
    ));
    assert!(m(
        json!({"n": [{"numeric": [">", 0, "<=", 5]}]}),
        json!({"n": 5})
    ));
    assert!(!m(
        json!({"n": [{"numeric": [">", 0, "<=", 5]}]}),
        json!({"n": 0})
    ));
    assert!(m(
        json!({"n": [{"numeric": ["=", 300]}]}),
        json!({"n": 300.0})
    ));
    assert!(
        m(json!({"n": [300]}), json!({"n": 3.0e2})),
        "numbers compare by value"
    );
    assert!(m(
        json!({"f": [{"wildcard": "dir/*.png"}]}),
        json!({"f": "dir/a/b.png"})
    ));
    assert!(!m(
        json!({"f": [{"wildcard": "dir/*.png"}]}),
        json!({"f": "dir/a.jpg"})
    ));
    assert!(m(
        json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
        json!({"ip": "10.0.0.255"})
    ));
    assert!(!m(
        json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
        json!({"ip": "10.0.1.0"})
    ));
    assert!(m(json!({"x": [null]}), json!({"x": null})));
    assert!(
        !m(json!({"x": [null]}), json!({})),
        "null matches a present null only"
    );
    assert!(m(json!({"x": [{"exists": false}]}), json!({"y": 1})));
}

#[test]
fn structure() {
    // Keys AND.
    let p = json!({"a": [1], "b": [2]});
    assert!(m(p.clone(), json!({"a": 1, "b": 2})));
    assert!(!m(p, json!({"a": 1, "b": 3})));
    // Nested objects recurse; arrays of objects match if any element does.
    let p = json!({"customer": {"tier": ["gold"]}});
    assert!(m(p.clone(), json!({"customer": {"tier": "gold"}})));
    assert!(!m(p.clone(), json!({"customer": {"tier": "tin"}})));
    assert!(m(
        json!({"items": {"qty": [{"$gt": 5}]}}),
        json!({"items": [{"qty": 1}, {"qty": 9}]})
    ));
    // Payload arrays of scalars: any element.
    assert!(m(json!({"tags": ["vip"]}), json!({"tags": ["a", "vip"]})));
    // $or across fields.
    let p = json!({"$or": [{"a": [1]}, {"b": [{"$exists": true}]}]});
    assert!(m(p.clone(), json!({"b": 0})));
    assert!(m(p.clone(), json!({"a": 1})));
    assert!(!m(p, json!({"a": 2})));
    // Empty pattern matches everything.
    assert!(m(json!({}), json!({"anything": 1})));
}

#[test]
fn malformed_patterns_name_the_path() {
    let e = |p: Value| Filter::compile(&p).unwrap_err().to_string();
    assert_eq!(
        e(json!({"amount": [{"$gtee": 1}]}))
            .split(';')
            .next()
            .unwrap(),
        "/amount/0/$gtee: unknown operator '$gtee'"
    );
    assert!(e(json!({"amount": 5})).starts_with("/amount: expected an array of alternatives"));
    assert!(e(json!({"a": {"b": [{"numeric": [">"]}]}})).starts_with("/a/b/0/numeric:"));
    assert!(e(json!({"a": [{"$gt": "x"}]})).contains("expected a number"));
    assert!(e(json!({"a": []})).contains("empty array"));
    assert!(e(json!({"ip": [{"cidr": "nope"}]})).contains("not an IP prefix"));
    assert!(e(json!({"$or": [{"a": [1]}]})).contains("at least two"));
    assert!(e(json!([1])).contains("must be a JSON object"));
    assert!(
        Filter::parse("{bad")
            .unwrap_err()
            .message
            .contains("not valid JSON")
    );
    assert_eq!(Filter::parse("  ").unwrap(), None);
}
