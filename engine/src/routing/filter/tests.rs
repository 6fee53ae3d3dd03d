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
    assert!(
        Filter::compile(&json!({})).is_err(),
        "the empty pattern is refused"
    );
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
    assert!(e(json!({"ip": [{"cidr": "nope/8"}]})).contains("not an IP prefix"));
    assert!(e(json!({"ip": [{"cidr": "10.0.0.1"}]})).contains("no prefix length"));
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

/// Families where Fanout used to differ from EventBridge (issue 24), each
/// checked against the documented behaviour of `aws/event-ruler`.
#[test]
fn eventbridge_fidelity() {
    let refused = |p: Value| Filter::compile(&p).map(|_| ()).unwrap_err().to_string();
    // anything-but takes lists inside prefix / suffix / equals-ignore-case / wildcard.
    let p = json!({"src": [{"anything-but": {"prefix": ["aws.", "internal."]}}]});
    assert!(!m(p.clone(), json!({"src": "aws.ec2"})));
    assert!(!m(p.clone(), json!({"src": "internal.x"})));
    assert!(m(p, json!({"src": "shop.orders"})));
    let p = json!({"f": [{"anything-but": {"suffix": [".png", ".jpg"]}}]});
    assert!(!m(p.clone(), json!({"f": "a.png"})) && m(p, json!({"f": "a.txt"})));
    let p = json!({"c": [{"anything-but": {"equals-ignore-case": ["RED", "blue"]}}]});
    assert!(!m(p.clone(), json!({"c": "Blue"})) && m(p, json!({"c": "green"})));
    let p = json!({"k": [{"anything-but": {"wildcard": ["*.tmp", "tmp/*"]}}]});
    assert!(!m(p.clone(), json!({"k": "tmp/a"})) && m(p, json!({"k": "a.txt"})));
    assert!(refused(json!({"a": [{"anything-but": {"prefix": ""}}]})).contains("empty prefix"));
    assert!(refused(json!({"a": [{"anything-but": {"prefix": []}}]})).contains("at least one"));

    // Wildcard escapes: \* a literal star, \\ a backslash; `\**` is a star then a wildcard.
    let p = json!({"k": [{"wildcard": "a\\*b"}]});
    assert!(m(p.clone(), json!({"k": "a*b"})) && !m(p, json!({"k": "axb"})));
    let p = json!({"k": [{"wildcard": "a\\**"}]});
    assert!(m(p.clone(), json!({"k": "a*xyz"})) && !m(p, json!({"k": "axyz"})));
    assert!(m(
        json!({"k": [{"wildcard": "c:\\\\*"}]}),
        json!({"k": "c:\\dir"})
    ));
    assert!(refused(json!({"k": [{"wildcard": "a**"}]})).contains("consecutive"));
    assert!(refused(json!({"k": [{"wildcard": "a\\n"}]})).contains("invalid escape"));

    // Refused as the reference refuses them.
    assert!(refused(json!({"a": [{"anything-but": ["x", 1]}]})).contains("not a mix"));
    assert!(refused(json!({"a": [{"numeric": [">", 5, "<", 5]}]})).contains("empty"));
    assert!(refused(json!({"a": [{"numeric": [">", 10, "<", 5]}]})).contains("empty"));
    assert!(refused(json!({"a": [{"numeric": [">", 1, ">", 2]}]})).contains("one lower bound"));
    assert!(m(
        json!({"a": [{"numeric": [">=", 5, "<=", 5]}]}),
        json!({"a": 5})
    ));
    assert!(refused(json!({})).contains("empty pattern"));

    // Arrays of arrays in the event are flattened.
    assert!(m(json!({"a": [3]}), json!({"a": [[1, 2], [3]]})));
    assert!(m(
        json!({"a": [{"prefix": "x"}]}),
        json!({"a": [["y"], [["xz"]]]})
    ));

    // exists is about leaf values: an object or an empty array is not one.
    assert!(!m(json!({"a": [{"exists": true}]}), json!({"a": {"b": 1}})));
    assert!(m(json!({"a": [{"exists": false}]}), json!({"a": {"b": 1}})));
    assert!(!m(json!({"a": [{"exists": true}]}), json!({"a": []})));
    assert!(m(json!({"a": [{"exists": false}]}), json!({"a": []})));
    assert!(
        m(json!({"a": [{"exists": true}]}), json!({"a": null})),
        "null is a value"
    );
    assert!(m(json!({"a": [{"exists": true}]}), json!({"a": [1]})));

    // Exact numbers: integers compare exactly, beyond 2^53 too; 3 equals 3.0.
    assert!(!m(
        json!({"n": [9007199254740993u64]}),
        json!({"n": 9007199254740992u64})
    ));
    assert!(m(
        json!({"n": [9007199254740993u64]}),
        json!({"n": 9007199254740993u64})
    ));
    assert!(m(json!({"n": [3]}), json!({"n": 3.0})));
    assert!(!m(
        json!({"n": [-1]}),
        json!({"n": 18446744073709551615u64})
    ));

    // anything-but against an array: some element is not excluded.
    let p = json!({"tags": [{"anything-but": ["x"]}]});
    assert!(m(p.clone(), json!({"tags": ["x", "y"]})));
    assert!(!m(p.clone(), json!({"tags": ["x"]})));
    assert!(!m(p, json!({"tags": []})));
}
