//! The operator console's pages and actions over HTTP, as a browser without
//! JavaScript uses them: every page renders what it must, every action
//! refuses a form without the CSRF token and changes state with it, and the
//! HTTP API routes behind the same actions answer the same.

use fanout::{Event, Retry, RunStatus, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually, http, http_with, runs_with_status};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
    amount: f64,
}

/// A browser session: the CSRF cookie and the token the forms carry.
struct Session {
    base: String,
    cookie: String,
    token: String,
}

impl Session {
    /// Open `/` and keep the cookie and token it hands out.
    async fn open(base: &str, prefix: &str) -> Self {
        let (status, headers, body) = http_with(base, "GET", &format!("{prefix}/"), "", "").await;
        assert_eq!(status, 200, "{body}");
        let cookie = headers
            .iter()
            .find(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
            .expect("the console sets its CSRF cookie");
        assert!(
            headers.iter().any(|(k, v)| k == "set-cookie"
                && v.contains("HttpOnly")
                && v.contains("SameSite=Strict")),
            "{headers:?}"
        );
        let token = cookie
            .split_once('=')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        assert!(
            body.contains(&format!("name=\"csrf\" value=\"{token}\""))
                || !body.contains("name=\"csrf\""),
            "forms carry the cookie's token"
        );
        Session {
            base: base.to_string(),
            cookie,
            token,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (s, _, b) = http_with(
            &self.base,
            "GET",
            path,
            &format!("Cookie: {}\r\n", self.cookie),
            "",
        )
        .await;
        (s, b)
    }

    /// POST a form with the session's token (unless `csrf` is false).
    async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut f = form_urlencoded(fields);
        if csrf {
            f = format!("{f}&csrf={}", self.token);
        }
        http_with(
            &self.base,
            "POST",
            path,
            &format!(
                "Cookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n",
                self.cookie
            ),
            &f,
        )
        .await
    }
}

fn form_urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' =>
                            (b as char).to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn location(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// `order.placed` with `charge` (succeeds) and `legacy` (fails once, dead)
/// subscribed; three orders published with ordering keys. Returns the
/// worker (kept running) once the three dead letters exist.
async fn scenario(engine: &TestEngine) -> (fanout::Client, fanout::WorkerHandle) {
    let client = engine.client().await;
    let placed = Event::<Order>::new("order.placed").description("an order was placed");
    placed.define(&client).await.expect("define");
    let charge = Task::new("charge", &placed, |o: Order, _| async move { Ok(o.amount) });
    let legacy = Task::new("legacy", &placed, |_o: Order, _| async move {
        Err::<(), _>(TaskError::retryable("legacy system rejected the order"))
    })
    .retry(Retry::attempts(1));
    let worker = Worker::new(client.clone())
        .name("console-test")
        .task(charge)
        .task(legacy)
        .start()
        .await
        .expect("worker");
    for i in 0..3 {
        placed
            .publish(
                &client,
                &Order {
                    id: format!("o-{i}"),
                    amount: 10.0 * f64::from(i),
                },
            )
            .ordering_key(format!("cust-{i}"))
            .await
            .expect("publish");
    }
    eventually(
        WAIT,
        "three dead letters and three completed runs",
        || async {
            let dead = runs_with_status(&client, RunStatus::Dead).await.len();
            let done = runs_with_status(&client, RunStatus::Completed).await.len();
            (dead == 3 && done == 3).then_some(())
        },
    )
    .await;
    (client, worker)
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Every page answers 200 and shows the scenario's entities; a run's
    /// page shows its attempt, error, payload and actions.
    async fn every_page_shows_what_it_must(b) {
        let engine = TestEngine::start_console(b.config.clone(), "").await;
        let (client, worker) = scenario(&engine).await;
        let s = Session::open(&engine.http_url, "").await;

        let (_, overview) = s.get("/").await;
        assert!(overview.contains("DLQ depth") && overview.contains("<svg class=\"chart\""), "[{}] {overview}", b.name);
        assert!(overview.contains("legacy") && overview.contains("s-dead"), "[{}] overview lists the queue per task", b.name);

        let (_, events) = s.get("/events").await;
        for want in ["order.placed", "charge", "legacy", "an order was placed", "Test a filter"] {
            assert!(events.contains(want), "[{}] /events lacks {want}", b.name);
        }
        let (status, one) = s.get("/events/order.placed").await;
        assert_eq!(status, 200, "[{}] {one}", b.name);
        assert!(one.contains("Schema versions") && one.contains("&quot;amount&quot;") || one.contains("\"amount\""), "[{}] schema shown", b.name);
        assert!(one.contains("Recent events") && one.contains("cust-1"), "[{}] recent events", b.name);

        let (_, runs) = s.get("/runs?status=completed").await;
        assert_eq!(runs.matches("badge s-completed").count(), 3, "[{}] three completed rows", b.name);
        assert!(!runs.contains("badge s-dead"), "[{}] and no dead one", b.name);
        let (_, keyed) = s.get("/runs?key=cust-2").await;
        assert!(keyed.contains("cust-2") && !keyed.contains(">cust-1<"), "[{}] ordering-key filter", b.name);

        let dead = runs_with_status(&client, RunStatus::Dead).await;
        let (status, run) = s.get(&format!("/runs/{}", dead[0].id)).await;
        assert_eq!(status, 200, "[{}]", b.name);
        for want in ["legacy system rejected the order", "attempt 1", "<svg class=\"timeline\"", "Retry", "Discard", "&quot;amount&quot;"] {
            assert!(run.contains(want), "[{}] run page lacks {want}: {run}", b.name);
        }

        let (_, dlq) = s.get("/dlq").await;
        assert!(dlq.contains("By task and error") && dlq.contains("legacy system rejected the order"), "[{}]", b.name);
        assert!(dlq.contains("<strong id=\"matching\">3</strong>"), "[{}] count of the filter: {dlq}", b.name);

        let (_, workers) = s.get("/workers").await;
        assert!(workers.contains("console-test") && workers.contains("charge"), "[{}] {workers}", b.name);

        let event_id = dead[0].event_id.clone();
        let (status, ev) = s.get(&format!("/log/{event_id}")).await;
        assert_eq!(status, 200, "[{}]", b.name);
        assert!(ev.contains("Fan-out: 2 run(s)") && ev.contains("legacy") && ev.contains("charge"), "[{}] {ev}", b.name);
        let log = eventually(WAIT, "the events reach the archive", || async {
            let (_, log) = s.get("/log?event=order.*").await;
            log.contains(&event_id[event_id.len() - 12..]).then_some(log)
        })
        .await;
        assert!(log.contains("order.placed"), "[{}]", b.name);
        let (_, filtered) = s.get("/log?event=order.*&filter=%7B%22amount%22%3A%5B%7B%22numeric%22%3A%5B%22%3E%22%2C15%5D%7D%5D%7D").await;
        assert!(filtered.contains("1 matched"), "[{}] payload filter on the log: {filtered}", b.name);

        let (_, waitpoints) = s.get("/waitpoints").await;
        assert!(waitpoints.contains("No waitpoints match."), "[{}]", b.name);
        let (_, replays) = s.get("/replays").await;
        assert!(replays.contains("Start a replay") && replays.contains("No replays yet."), "[{}]", b.name);

        // Unknown entities and bad filters are pages with the engine's status.
        let (status, missing) = s.get("/runs/nope").await;
        assert_eq!(status, 404, "[{}] {missing}", b.name);
        assert!(missing.contains("run 'nope' not found"), "[{}]", b.name);
        let (status, _) = s.get("/runs?status=sleeping").await;
        assert_eq!(status, 400, "[{}]", b.name);
        worker.shutdown().await.expect("worker stop");
        engine.stop().await;
    }

    /// Retry and discard from the DLQ: one id, and everything matching a
    /// filter after a confirmation page with the count; a form without the
    /// token changes nothing.
    async fn dlq_actions_change_state_and_need_the_token(b) {
        let engine = TestEngine::start_console(b.config.clone(), "").await;
        let (client, worker) = scenario(&engine).await;
        worker.shutdown().await.expect("worker stop");
        let s = Session::open(&engine.http_url, "").await;
        let dead = runs_with_status(&client, RunStatus::Dead).await;

        let (status, _, body) = s.post("/dlq/retry", &[("ids", &dead[0].id)], false).await;
        assert_eq!(status, 403, "[{}] {body}", b.name);
        assert!(body.contains("CSRF"), "[{}]", b.name);
        assert_eq!(runs_with_status(&client, RunStatus::Dead).await.len(), 3, "[{}] nothing changed", b.name);

        let (status, headers, _) = s.post("/dlq/retry", &[("ids", &dead[0].id)], true).await;
        assert_eq!(status, 303, "[{}]", b.name);
        assert!(location(&headers).contains("done=Retried+1"), "[{}] {headers:?}", b.name);
        // `back` may only name a path on this host.
        for evil in ["//evil.example/x", "/\\evil.example/x", "https://evil.example/"] {
            let (status, headers, _) = s.post("/dlq/retry", &[("ids", &dead[0].id), ("back", evil)], true).await;
            assert_eq!(status, 303, "[{}]", b.name);
            assert!(location(&headers).starts_with("/dlq?"), "[{}] {evil} → {headers:?}", b.name);
        }
        let run = client.run(&dead[0].id).await.expect("run");
        assert_eq!(run.run.status, RunStatus::Queued, "[{}] retried run is queued", b.name);

        // Everything matching task=legacy and the error's fingerprint.
        let fields = [("all", "1"), ("task", "legacy"), ("error_prefix", "legacy system")];
        let (status, _, confirm) = s.post("/dlq/discard", &fields, true).await;
        assert_eq!(status, 200, "[{}]", b.name);
        assert!(confirm.contains("<strong id=\"confirm-count\">2</strong>"), "[{}] count before confirming: {confirm}", b.name);
        assert_eq!(runs_with_status(&client, RunStatus::Dead).await.len(), 2, "[{}] the confirmation page changes nothing", b.name);
        let mut confirmed = fields.to_vec();
        confirmed.push(("confirm", "1"));
        let (status, headers, _) = s.post("/dlq/discard", &confirmed, true).await;
        assert_eq!(status, 303, "[{}]", b.name);
        assert!(location(&headers).contains("Discarded+2"), "[{}] {headers:?}", b.name);
        let (_, dlq) = s.get("/dlq").await;
        assert!(dlq.contains("<strong id=\"matching\">0</strong>"), "[{}] {dlq}", b.name);
        let (status, _, _) = s.post("/dlq/retry", &[], true).await;
        assert_eq!(status, 400, "[{}] an empty selection is refused", b.name);
        engine.stop().await;
    }

    /// Replays (dry run, then cancel), pausing a subscription and completing
    /// a token from the console; the HTTP API behind the same actions.
    async fn replay_pause_and_token_actions(b) {
        let engine = TestEngine::start_console(b.config.clone(), "").await;
        let (client, worker) = scenario(&engine).await;
        let s = Session::open(&engine.http_url, "").await;

        let (status, headers, body) = s
            .post("/replays", &[("event", "order.*"), ("from", "-1h"), ("to", "now"), ("dry_run", "1")], true)
            .await;
        assert_eq!(status, 303, "[{}] {body}", b.name);
        assert!(location(&headers).contains("Dry+run"), "[{}] {headers:?}", b.name);
        let page = eventually(WAIT, "the dry run counts the six runs it would create", || async {
            let (_, page) = s.get("/replays").await;
            (page.contains("s-completed") && page.contains("charge: 3")).then_some(page)
        })
        .await;
        assert!(page.contains("dry-run"), "[{}]", b.name);
        let (status, _, body) = s.post("/replays", &[("event", "order.*"), ("from", "yesterday")], true).await;
        assert_eq!(status, 400, "[{}]", b.name);
        assert!(body.contains("from: &#39;yesterday&#39; is not a time") || body.contains("from: 'yesterday' is not a time"), "[{}] {body}", b.name);

        // Pause and resume `charge`.
        let (status, _, _) = s.post("/subscriptions/charge/pause", &[], true).await;
        assert_eq!(status, 303, "[{}]", b.name);
        let subs = client.subscriptions().await.expect("subs");
        assert!(subs.iter().any(|s| s.task_id == "charge" && s.paused), "[{}] paused", b.name);
        let (_, events) = s.get("/events").await;
        assert!(events.contains("s-paused"), "[{}]", b.name);
        s.post("/subscriptions/charge/resume", &[], true).await;
        let subs = client.subscriptions().await.expect("subs");
        assert!(subs.iter().any(|s| s.task_id == "charge" && !s.paused), "[{}] resumed", b.name);

        // A token completed with JSON data.
        let token = client.create_token(None).await.expect("token");
        let (_, page) = s.get("/waitpoints?kind=token").await;
        assert!(page.contains(&token.id[token.id.len() - 12..]), "[{}] open token listed", b.name);
        let path = format!("/waitpoints/{}/complete", token.id);
        let (status, _, _) = s.post(&path, &[("data", "not json")], true).await;
        assert_eq!(status, 400, "[{}]", b.name);
        let (status, _, _) = s.post(&path, &[("data", r#"{"approved":true}"#)], true).await;
        assert_eq!(status, 303, "[{}]", b.name);
        let done = client.get_waitpoint(&token.id).await.expect("waitpoint");
        assert_eq!(done.data, serde_json::json!({"approved": true}), "[{}]", b.name);

        // The same actions as API routes.
        let (status, _, body) = http(&engine.http_url, "POST", "/api/v1/dead-letters/retry", r#"{"all":true,"task":"legacy","dryRun":true}"#).await;
        assert_eq!((status, body.as_str()), (200, r#"{"count":3,"dryRun":true}"#), "[{}]", b.name);
        let (status, _, body) = http(&engine.http_url, "POST", "/api/v1/dead-letters/retry", r#"{"ids":["a"],"all":true}"#).await;
        assert_eq!(status, 400, "[{}] {body}", b.name);
        let (status, _, body) = http(&engine.http_url, "POST", "/api/v1/filters/test", r#"{"pattern":{"amount":[{"numeric":[">",5]}]},"payload":{"amount":7}}"#).await;
        assert_eq!((status, body.as_str()), (200, r#"{"matches":true}"#), "[{}]", b.name);
        let now = fanout_engine::model::now_ms();
        let (status, _, body) = http(&engine.http_url, "POST", "/api/v1/replays", &format!(r#"{{"event":"order.placed","fromMs":{},"toMs":{now},"dryRun":true}}"#, now - 3_600_000)).await;
        assert_eq!(status, 200, "[{}] {body}", b.name);
        let job: serde_json::Value = serde_json::from_str(&body).expect("json");
        let id = job["id"].as_str().expect("id");
        let (status, _, body) = http(&engine.http_url, "POST", &format!("/api/v1/replays/{id}/cancel"), "").await;
        assert_eq!(status, 200, "[{}] {body}", b.name);
        worker.shutdown().await.expect("worker stop");
        engine.stop().await;
    }
}

/// Under a base path every link and form points inside it, and the API
/// beside it is untouched; `/live` sends a change after a publish.
#[tokio::test]
async fn base_path_and_live_updates() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = fanout_engine::Config::embedded(dir.path());
    let engine = TestEngine::start_console(config, "/ops/fanout/").await;
    let (status, _, body) = http_with(&engine.http_url, "GET", "/ops/fanout/runs", "", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("href=\"/ops/fanout/dlq\"") && body.contains("/ops/fanout/assets/app.css"),
        "{body}"
    );
    let (status, _, _) = http_with(&engine.http_url, "GET", "/runs", "", "").await;
    assert_eq!(status, 404, "nothing at the root when a base path is set");
    let (status, _, _) = http_with(&engine.http_url, "GET", "/healthz", "", "").await;
    assert_eq!(status, 200);

    // Open the stream, publish, and read until a `change` arrives.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = engine.http_url.trim_start_matches("http://").to_string();
    let mut sse = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sse.write_all(
        format!(
            "GET /ops/fanout/live HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let client = engine.client().await;
    let ev = Event::<Order>::new("order.placed");
    ev.define(&client).await.expect("define");
    ev.publish(
        &client,
        &Order {
            id: "x".into(),
            amount: 1.0,
        },
    )
    .await
    .expect("publish");
    let mut seen = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = sse.read(&mut buf).await.expect("read");
            assert!(n > 0, "stream closed");
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("event: change") {
                return;
            }
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "no change event within 3 s: {}",
        String::from_utf8_lossy(&seen)
    );
    assert!(String::from_utf8_lossy(&seen).contains("text/event-stream"));
    drop(sse);
    engine.stop().await;
}

/// A session's cookies after logging in with `key` (the CSRF cookie from
/// the login page plus the session cookie the login sets).
async fn log_in(base: &str, key: &str) -> (u16, Session) {
    let (status, headers, body) = http_with(base, "GET", "/login", "", "").await;
    assert_eq!(status, 200, "{body}");
    let csrf = headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("fanout_csrf="))
        .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
        .expect("csrf cookie");
    let token = csrf
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let (status, headers, _) = http_with(
        base,
        "POST",
        "/login",
        &format!("Cookie: {csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
        &format!("csrf={token}&key={key}"),
    )
    .await;
    let session = headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("fanout_session="))
        .map(|(_, v)| {
            assert!(
                v.contains("HttpOnly") && v.contains("SameSite=Strict"),
                "{v}"
            );
            v.split(';').next().unwrap_or("").to_string()
        })
        .unwrap_or_default();
    (
        status,
        Session {
            base: base.to_string(),
            cookie: format!("{csrf}; {session}"),
            token,
        },
    )
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn with_keys_required_the_console_asks_for_one_and_honours_its_scopes(b) {
        let mut config = b.config.clone();
        config.auth.mode = fanout_engine::config::AuthMode::Required;
        let engine = TestEngine::start_console(config, "").await;
        let admin = engine.engine().bootstrap_key().await.unwrap().unwrap();
        let base = engine.http_url.clone();
        // No session: pages send the browser to the login form; actions are refused.
        let (status, headers, _) = http_with(&base, "GET", "/dlq", "", "").await;
        assert_eq!(status, 303);
        assert!(headers.iter().any(|(k, v)| k == "location" && v == "/login"), "{headers:?}");
        let (status, _, _) = http_with(&base, "POST", "/dlq/retry", "Content-Type: application/x-www-form-urlencoded\r\n", "ids=x").await;
        assert_eq!(status, 401);
        // A wrong key does not log in.
        let (status, s) = log_in(&base, "fo_0000000000000000000000000000000000000a").await;
        assert_eq!(status, 401);
        assert!(!s.cookie.contains("fanout_session=fo_"));

        let root = fanout::Client::connect(&engine.grpc_url).await.unwrap().api_key(&admin).unwrap();
        let make = |name: &'static str, scopes: Vec<String>, ns: &'static str| {
            let root = root.clone();
            async move {
                root.raw().admin()
                    .create_api_key(root.raw().request(fanout::proto::CreateApiKeyRequest {
                        name: name.into(), scopes, namespace: ns.into(), ..Default::default()
                    }))
                    .await.unwrap().into_inner().secret
            }
        };
        // Read-only: pages yes, no action forms, actions refused.
        let reader = make("console-reader", vec!["read".into()], "shop").await;
        let (status, s) = log_in(&base, &reader).await;
        assert_eq!(status, 303);
        let (status, body) = s.get("/dlq").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("class=\"readonly\"") && body.contains("console-reader"), "{body}");
        let (status, _, body) = s.post("/dlq/retry", &[("ids", "x")], true).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("scope admin"), "{body}");
        // Bound to shop: another namespace is refused, its own is the default.
        let (status, _) = s.get("/runs?ns=bank").await;
        assert_eq!(status, 403);
        let (_, body) = s.get("/runs").await;
        assert!(body.contains("value=\"shop\""), "the namespace field shows the key's own");

        // An admin acts, and the audit log names its key.
        let ops = make("console-ops", vec!["read".into(), "admin".into()], "").await;
        let (_, s) = log_in(&base, &ops).await;
        let (status, _, _) = s.post("/subscriptions/nothing/pause", &[], true).await;
        assert_eq!(status, 404, "an unknown subscription; but the action was admitted");
        root.raw().admin()
            .revoke_api_key(root.raw().request(fanout::proto::RevokeApiKeyRequest { key: "console-reader".into() }))
            .await.unwrap();
        let audit = root.raw().admin()
            .list_audit(root.raw().request(fanout::proto::ListAuditRequest { all_namespaces: true, limit: 50, ..Default::default() }))
            .await.unwrap().into_inner().entries;
        assert!(audit.iter().any(|e| e.action == "key.revoke" && e.actor == "bootstrap-admin"), "{audit:?}");
        // The audit page: admins only.
        let (status, body) = s.get("/audit?ns=").await;
        assert_eq!(status, 200, "{body}");
        let reader_page = log_in(&base, &make("console-reader-2", vec!["read".into()], "").await).await.1;
        assert_eq!(reader_page.get("/audit").await.0, 403);
        // The revoked key's session ends.
        let reader_session = log_in(&base, &reader).await;
        assert_eq!(reader_session.0, 401, "a revoked key cannot log in");
        engine.stop().await;
    }
}
