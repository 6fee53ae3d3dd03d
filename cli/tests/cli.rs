//! The `fanout` binary itself: exit codes and messages a script relies on.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

fn fanout(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(args)
        .env_remove("FANOUT_DATABASE_URL")
        .env_remove("FANOUT_REDIS_URL")
        .env_remove("FANOUT_CLICKHOUSE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn filter_test_exit_codes() {
    let (code, out, _) = fanout(&[
        "filter",
        "test",
        "--pattern",
        r#"{"amount":[{"$gte":1000}]}"#,
        "--payload",
        r#"{"amount":1500}"#,
    ]);
    assert_eq!((code, out.trim()), (0, "match"));
    let (code, out, _) = fanout(&[
        "filter",
        "test",
        "--pattern",
        r#"{"amount":[{"numeric":[">",0,"<=",5]}]}"#,
        "--payload",
        r#"{"amount":6}"#,
    ]);
    assert_eq!((code, out.trim()), (1, "no match"));
    let (code, _, err) = fanout(&[
        "filter",
        "test",
        "--pattern",
        r#"{"amount":[{"$gtee":1}]}"#,
        "--payload",
        "{}",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/amount/0/$gtee: unknown operator"), "{err}");
    // An invalid payload has its own code; both take @FILE.
    let dir = tempfile::tempdir().unwrap();
    let (pattern, payload) = (dir.path().join("p.json"), dir.path().join("e.json"));
    std::fs::write(&pattern, r#"{"a":[{"anything-but":{"prefix":["x","y"]}}]}"#).unwrap();
    std::fs::write(&payload, r#"{"a":"zed"}"#).unwrap();
    let at = |p: &std::path::Path| format!("@{}", p.display());
    let (code, out, err) = fanout(&[
        "filter",
        "test",
        "--pattern",
        &at(&pattern),
        "--payload",
        &at(&payload),
    ]);
    assert_eq!((code, out.trim()), (0, "match"), "{err}");
    let (code, _, err) = fanout(&[
        "filter",
        "test",
        "--pattern",
        &at(&pattern),
        "--payload",
        "{\"a\": ",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("payload"), "{err}");
}

#[test]
fn serve_layers_config_and_names_unreachable_backends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fanout.toml");
    std::fs::write(
        &file,
        "database_url = \"postgres://from-file/db\"\ngrpc_addr = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:8888",
            "--dump-config",
        ])
        .env("FANOUT_REDIS_URL", "redis://from-env:6379")
        .env_remove("FANOUT_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let dumped: fanout_engine::Config = toml::from_str(&text).expect("the dump is a config");
    assert_eq!(
        dumped.store,
        fanout_engine::config::StoreConfig::Postgres {
            url: "postgres://from-file/db".into(),
            schema: "fanout".into(),
            max_connections: 16,
        },
        "file layer: {text}"
    );
    assert!(
        matches!(&dumped.limiter, fanout_engine::config::LimiterConfig::Redis { url, .. } if url == "redis://from-env:6379"),
        "env layer: {text}"
    );
    assert_eq!(dumped.grpc_addr, "127.0.0.1:8888", "flags win: {text}");
    // The dump is the config that runs: loaded again, it is the same.
    let again = dir.path().join("dumped.toml");
    std::fs::write(&again, text.as_bytes()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args([
            "serve",
            "--config",
            again.to_str().unwrap(),
            "--dump-config",
        ])
        .env_remove("FANOUT_REDIS_URL")
        .env_remove("FANOUT_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    // A nested key from the environment (`__` nests).
    let out = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(["serve", "--dump-config"])
        .env("FANOUT_LIMITS__MAX_TAGS", "7")
        .output()
        .unwrap();
    let dumped: fanout_engine::Config =
        toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("a config");
    assert_eq!(dumped.limits.max_tags, 7);

    let (code, _, err) = fanout(&[
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("serve needs a PostgreSQL URL"), "{err}");

    let (code, _, err) = fanout(&[
        "serve",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: postgres: cannot connect to"),
        "{err}"
    );
}

#[test]
fn client_errors_are_the_servers_message_on_stderr() {
    let (code, _, err) = fanout(&["--server", "http://127.0.0.1:1", "events", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot connect to http://127.0.0.1:1"),
        "{err}"
    );
}

/// `--from -2h` (a value starting with '-') is a time, not a flag.
#[test]
fn relative_times_may_start_with_a_hyphen() {
    for args in [
        &["events", "log", "order.*", "--from", "-2h"][..],
        &["replay", "order.*", "--from", "-2h", "--to", "-1h"][..],
    ] {
        let mut all = vec!["--server", "http://127.0.0.1:1"];
        all.extend_from_slice(args);
        let (code, _, err) = fanout(&all);
        assert_ne!(code, 0, "{args:?}: no engine listens on port 1");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(!err.contains("Usage:"), "{args:?}: {err}");
    }
}

/// `serve` takes `--data-dir` as `dev` does, and `--dump-config` shows it
/// with the `[limits]` the engine will run with.
#[test]
fn serve_takes_a_data_dir() {
    let (code, out, err) = fanout(&["serve", "--dump-config", "--data-dir", "/srv/fanout"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("data_dir = \"/srv/fanout\""), "{out}");
    assert!(out.contains("path = \"/srv/fanout/archive.db\""), "{out}");
    assert!(out.contains("[limits]"), "{out}");
}

/// `--log-format json`: one JSON object per line, fields as keys, no colour
/// codes; SIGTERM stops the engine cleanly.
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fanout"))
        .args(["--log-format", "json", "dev", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(v["message"], "engine started", "{first}");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["grpc"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    assert!(!first.contains('\u{1b}'), "no escape codes: {first}");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let last = lines.map(|l| l.unwrap()).last().unwrap_or_default();
    assert!(last.contains("\"engine stopped\""), "{last}");
    assert!(child.wait().unwrap().success());
}
