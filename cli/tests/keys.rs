//! `fanout dev --auth` as a child process: the first start prints an admin
//! key; `keys create|list|revoke`, `audit list` and `dashboard login` work
//! with it; a call without a key, or with a revoked one, is refused.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{cli, json_field};

#[test]
fn keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, grpc, _, admin) = common::start_with(dir.path(), &["--auth"]);
    let admin = admin.expect("the first start with --auth prints an admin key");
    assert!(admin.starts_with("fo_") && admin.len() == 41, "{admin}");

    let (code, _, err) = cli(grpc, None, &["events", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("requires an API key"), "{err}");

    let (code, out, err) = cli(
        grpc,
        Some(&admin),
        &[
            "keys",
            "create",
            "shop-reader",
            "--scope",
            "read",
            "--namespace",
            "shop",
            "--expires",
            "90d",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let reader = out.trim().to_string();
    assert!(reader.starts_with("fo_"), "{out}");
    assert!(err.contains("shown once"), "{err}");

    let (code, _, err) = cli(grpc, Some(&reader), &["events", "list"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        grpc,
        Some(&reader),
        &["--namespace", "bank", "events", "list"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("bound to namespace 'shop'"), "{err}");
    let (code, _, err) = cli(grpc, Some(&reader), &["keys", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("scope admin"), "{err}");

    let (code, out, err) = cli(grpc, Some(&admin), &["keys", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let names = json_field(&out, "name");
    assert_eq!(names, ["shop-reader", "bootstrap-admin"], "{out}");
    assert!(!out.contains(&reader), "a listing never shows a key");

    let (code, out, err) = cli(
        grpc,
        Some(&admin),
        &[
            "dashboard",
            "login",
            "--console-url",
            "http://console.example",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.trim()
            .starts_with("http://console.example/login?key=fo_"),
        "{out}"
    );

    let (code, _, err) = cli(grpc, Some(&admin), &["keys", "revoke", "shop-reader"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(grpc, Some(&reader), &["events", "list"]);
    assert_ne!(code, 0, "revoked on this replica at once");
    assert!(err.contains("unknown or revoked"), "{err}");

    let (code, out, err) = cli(
        grpc,
        Some(&admin),
        &["audit", "list", "--all-namespaces", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let actions = json_field(&out, "action");
    assert!(
        actions.contains(&"key.revoke".to_string()) && actions.contains(&"key.create".to_string()),
        "{out}"
    );
    drop(engine);

    // With no engine running: a key made straight in the store.
    let db = dir.path().join("fanout.db");
    let (code, out, err) = cli(
        grpc,
        None,
        &[
            "keys",
            "create",
            "break-glass",
            "--scope",
            "admin",
            "--database-url",
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("fo_"), "{out}");
    let (code, out, err) = cli(
        grpc,
        None,
        &["keys", "list", "--database-url", db.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("break-glass") && out.contains("revoked"),
        "{out}"
    );
}
