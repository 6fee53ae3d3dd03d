//! `fanout subscriptions` against a real `fanout dev`: an HTTP subscriber
//! is created (its secret printed once), shown without its secret, paused,
//! and refused for a private address (dev allows loopback only).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

fn cli(grpc: u16, args: &[&str]) -> (i32, String, String) {
    common::cli(grpc, None, args)
}

#[test]
fn http_subscribers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, grpc, _) = common::start(dir.path());
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type":"object"}"#).unwrap();
    // The engine is up once a definition answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, _, err) = cli(
            grpc,
            &[
                "events",
                "define",
                "order.created",
                "--schema",
                schema.to_str().unwrap(),
            ],
        );
        if code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{err}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, out, err) = cli(
        grpc,
        &[
            "subscriptions",
            "create",
            "crm",
            "--event",
            "order.*",
            "--url",
            "http://127.0.0.1:9/hooks",
            "--rate",
            "50/s",
            "--breaker",
            "5",
            "--probe-after",
            "1m",
            "--timeout",
            "3s",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("signing secret (shown once): "))
        .unwrap_or_else(|| panic!("no secret in: {out}"));
    assert!(secret.starts_with("whsec_"), "{out}");

    let (code, out, err) = cli(grpc, &["subscriptions", "show", "crm", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("whsec_"),
        "the secret is not shown again: {out}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["endpoint"]["rate_per_s"], 50);
    assert_eq!(v["endpoint"]["timeout_ms"], 3000);
    assert_eq!(v["breaker"]["after_failures"], 5);
    assert_eq!(v["breaker"]["probe_after_ms"], 60_000);
    assert_eq!(v["state"], "active");

    let (code, _, err) = cli(grpc, &["subscriptions", "pause", "crm"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli(grpc, &["subscriptions", "list"]);
    assert!(
        out.contains("crm") && out.contains("paused") && out.contains("http://127.0.0.1:9/hooks"),
        "{out}"
    );

    let (code, _, err) = cli(
        grpc,
        &[
            "subscriptions",
            "create",
            "internal",
            "--event",
            "order.created",
            "--url",
            "http://10.1.2.3/hooks",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("10.1.2.3 is a private address"), "{err}");
    let (code, _, err) = cli(
        grpc,
        &[
            "subscriptions",
            "create",
            "bad",
            "--event",
            "order.created",
            "--url",
            "http://x/",
            "--rate",
            "fast",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--rate 'fast'"), "{err}");
}
