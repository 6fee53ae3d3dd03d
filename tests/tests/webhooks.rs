//! HTTP subscribers end to end, against real HTTP receivers started here
//! (axum on port 0): deliveries verified with an independent Standard
//! Webhooks verifier (the `standardwebhooks` crate), the answers (2xx
//! output, `Retry-After`, redirects, 410), the breaker, pausing through a
//! restart, consumer groups mixing a URL and a task, ordering keys across
//! retries, address refusals, secret rotation, the HTTP API.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use axum::http::{HeaderMap, StatusCode};
use fanout::{
    Error, Event, HttpSubscription, Retry, RunStatus, SubscriptionState, SubscriptionUpdate, Task,
    TaskError, Worker,
};
use fanout_tests::{TestEngine, eventually, http};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    path: String,
    headers: HeaderMap,
    raw: Vec<u8>,
    body: Value,
}

impl Hit {
    fn id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

type Answer = (u16, Vec<(&'static str, String)>, String);

/// An HTTP endpoint that records every request and answers with `answer`
/// (given the request and how many earlier requests had its webhook id).
struct Receiver {
    url: String,
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(answer: impl Fn(&Hit, usize) -> Answer + Send + Sync + 'static) -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let answer = Arc::new(answer);
        let recorded = hits.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let hits = recorded.clone();
                let answer = answer.clone();
                async move {
                    let hit = Hit {
                        at: Instant::now(),
                        path: uri.path().to_string(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        raw: body.to_vec(),
                    };
                    let (status, headers, text) = {
                        let mut all = hits.lock().unwrap();
                        let earlier = all.iter().filter(|h| h.id() == hit.id()).count();
                        let a = answer(&hit, earlier);
                        all.push(hit);
                        a
                    };
                    let mut res = axum::response::Response::new(axum::body::Body::from(text));
                    *res.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in headers {
                        res.headers_mut().insert(k, v.parse().unwrap());
                    }
                    res
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            port,
            hits,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, what: &str) -> Vec<Hit> {
        eventually(Duration::from_secs(30), what, || async {
            let h = self.hits();
            (h.len() >= n).then_some(h)
        })
        .await
    }
}

fn ok(body: &str) -> Answer {
    (
        200,
        vec![("content-type", "application/json".into())],
        body.into(),
    )
}

/// An engine that may deliver to loopback (as `fanout dev`).
fn loopback(mut c: fanout_engine::config::Config) -> fanout_engine::config::Config {
    c.webhooks.allow_loopback = true;
    c
}

async fn define(client: &fanout::Client, name: &str) -> Event<Value> {
    let ev = Event::<Value>::new(name);
    ev.define(client).await.unwrap();
    ev
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    /// Each run is one signed POST an independent verifier accepts; the
    /// body carries the event; a JSON answer is the run's output and what
    /// publish-and-wait returns; the secret is never shown again.
    async fn deliveries_are_signed_and_their_answers_are_outputs(b) {
        let engine = TestEngine::start(loopback(b.config.clone())).await;
        let client = engine.client().await;
        let ev = define(&client, "order.created").await;
        let rx = Receiver::start(|hit, _| ok(&json!({"seen": hit.body["data"]["n"]}).to_string())).await;
        let created = client
            .create_subscription(HttpSubscription::new("crm", "order.*", &rx.url))
            .await
            .unwrap();
        assert!(created.secret.starts_with("whsec_"));
        let shown = client.subscription("crm").await.unwrap();
        assert_eq!(shown.endpoint.as_ref().unwrap().url, rx.url);
        assert_eq!(shown.state, SubscriptionState::Active);
        assert_eq!(shown.retry.max_attempts, 8, "[{}] the webhook schedule", b.name);
        let (_, _, listed) = http(&engine.http_url, "GET", "/api/v1/subscriptions/crm", "").await;
        assert!(!listed.contains("whsec_"), "the secret is never shown again: {listed}");

        let p = ev.publish(&client, &json!({"n": 7})).ordering_key("k1").await.unwrap();
        let hits = rx.wait_for(1, "one delivery").await;
        let hit = &hits[0];
        standardwebhooks::Webhook::new(&created.secret)
            .unwrap()
            .verify(&hit.raw, &hit.headers)
            .expect("the independent verifier accepts the signature");
        assert!(standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .verify(&hit.raw, &hit.headers)
            .is_err(), "another secret does not verify");
        let run_id = &p.runs[0].run_id;
        assert_eq!(hit.id(), run_id, "webhook-id is the run id");
        assert_eq!(hit.body["type"], "order.created");
        assert_eq!(hit.body["data"], json!({"n": 7}));
        assert_eq!(hit.body["event_id"], p.event_id.as_str());
        assert_eq!(hit.body["ordering_key"], "k1");
        assert_eq!(hit.body["attempt"], 1);
        assert_eq!(hit.path, "/hooks");
        let run = eventually(Duration::from_secs(10), "the run completes", || async {
            let r = client.run(run_id).await.unwrap();
            (r.run.status == RunStatus::Completed).then_some(r)
        })
        .await;
        assert_eq!(run.run.output, Some(json!({"seen": 7})), "[{}]", b.name);

        // Publish and wait: the endpoint's answer is the result.
        let waited = client
            .publish_and_wait_json(
                "order.created",
                &json!({"n": 9}),
                fanout::PublishOptions::default(),
                Some(Duration::from_secs(20)),
            )
            .await
            .unwrap();
        let out = waited.results.outcome("crm").expect("the subscriber's outcome");
        assert!(out.ok, "{out:?}");
        assert_eq!(out.output, json!({"seen": 9}));

        // A task may not take an HTTP subscriber's id.
        let err = Worker::new(client.clone())
            .task(Task::new("crm", &ev, |_: Value, _| async { Ok::<_, TaskError>(()) }))
            .start()
            .await
            .err()
            .unwrap();
        assert!(matches!(&err, Error::Server { code: tonic::Code::FailedPrecondition, message, .. } if message.contains("HTTP subscription")), "{err:?}");
        engine.stop().await;
    }

    /// A paused HTTP subscriber keeps its runs through a restart and
    /// delivers them in order when resumed; a failing key parks only itself.
    async fn a_paused_endpoint_loses_nothing_and_keys_keep_order(b) {
        let config = loopback(b.config.clone());
        let engine = TestEngine::start(config.clone()).await;
        let client = engine.client().await;
        let ev = define(&client, "order.keyed").await;
        // k1's first event fails once; everything else succeeds.
        let rx = Receiver::start(|hit, earlier| {
            if hit.body["data"]["fail"] == json!(true) && earlier == 0 {
                (500, vec![], "boom".into())
            } else {
                ok("{}")
            }
        })
        .await;
        client
            .create_subscription(
                HttpSubscription::new("keyed", "order.keyed", &rx.url).retry(Retry {
                    max_attempts: 5,
                    initial_backoff: Duration::from_millis(700),
                    max_backoff: Duration::from_millis(700),
                    multiplier: 1.0,
                }),
            )
            .await
            .unwrap();
        ev.publish(&client, &json!({"n": 1, "fail": true})).ordering_key("k1").await.unwrap();
        ev.publish(&client, &json!({"n": 2})).ordering_key("k1").await.unwrap();
        ev.publish(&client, &json!({"n": 3})).ordering_key("k2").await.unwrap();
        let hits = rx.wait_for(4, "k1 twice, then k1 and k2").await;
        let seq: Vec<(String, i64)> = hits
            .iter()
            .map(|h| (h.body["ordering_key"].as_str().unwrap().to_string(), h.body["data"]["n"].as_i64().unwrap()))
            .collect();
        let k1: Vec<i64> = seq.iter().filter(|(k, _)| k == "k1").map(|(_, n)| *n).collect();
        assert_eq!(k1, vec![1, 1, 2], "[{}] k1 in order across the retry: {seq:?}", b.name);
        let k2_at = seq.iter().position(|(k, _)| k == "k2").unwrap();
        let retry_at = seq.iter().rposition(|(k, n)| k == "k1" && *n == 1).unwrap();
        assert!(k2_at < retry_at, "k2 flowed while k1 was parked: {seq:?}");

        // Pause, publish, restart the engine, resume: all delivered, in order.
        client.pause("keyed").await.unwrap();
        for n in 10..13 {
            ev.publish(&client, &json!({"n": n})).ordering_key("k3").await.unwrap();
        }
        engine.stop().await;
        let engine = TestEngine::start(config).await;
        let client = engine.client().await;
        assert_eq!(client.subscription("keyed").await.unwrap().state, SubscriptionState::Paused);
        assert_eq!(rx.hits().len(), 4, "[{}] nothing delivered while paused", b.name);
        client.resume("keyed").await.unwrap();
        let hits = rx.wait_for(7, "the held runs").await;
        let ns: Vec<i64> = hits[4..].iter().map(|h| h.body["data"]["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, vec![10, 11, 12], "[{}]", b.name);
        engine.stop().await;
    }

    /// A consumer group may mix a URL and a task: each event reaches one
    /// member, never both.
    async fn a_group_mixes_a_url_and_a_task(b) {
        let engine = TestEngine::start(loopback(b.config.clone())).await;
        let client = engine.client().await;
        let ev = define(&client, "order.grouped").await;
        let rx = Receiver::start(|_, _| ok("{}")).await;
        client
            .create_subscription(HttpSubscription::new("g-url", "order.grouped", &rx.url).consumer_group("g"))
            .await
            .unwrap();
        let worker = Worker::new(client.clone())
            .task(Task::new("g-task", &ev, |_: Value, _| async { Ok::<_, TaskError>(()) }).consumer_group("g"))
            .start()
            .await
            .unwrap();
        let mut published = 0;
        let mut by_url = 0;
        for n in 0..40 {
            let p = ev.publish(&client, &json!({"n": n})).await.unwrap();
            assert_eq!(p.runs.len(), 1, "one member per event");
            published += 1;
            by_url += usize::from(p.runs[0].task_id == "g-url");
        }
        assert!(by_url > 0 && by_url < published, "[{}] both members got events: {by_url}/{published}", b.name);
        rx.wait_for(by_url, "the URL's share").await;
        eventually(Duration::from_secs(20), "every run completes", || async {
            let done = fanout_tests::runs_with_status(&client, RunStatus::Completed).await.len();
            (done == published).then_some(())
        })
        .await;
        assert_eq!(rx.hits().len(), by_url);
        worker.shutdown().await.unwrap();
        engine.stop().await;
    }
}

/// `Retry-After` postpones the next attempt; a redirect is a failure and is
/// not followed; 410 disables the subscription and says so as an
/// operational event another endpoint receives.
#[tokio::test]
async fn answers_decide_what_happens_next() {
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(loopback(b.config.clone())).await;
    let client = engine.client().await;
    let ev = define(&client, "ping").await;
    let fast = Retry {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(50),
        multiplier: 1.0,
    };
    // 503 + Retry-After: 2, then 200.
    let rx = Receiver::start(|_, earlier| match earlier {
        0 => (503, vec![("retry-after", "2".into())], "busy".into()),
        _ => ok("{}"),
    })
    .await;
    client
        .create_subscription(HttpSubscription::new("busy", "ping", &rx.url).retry(fast))
        .await
        .unwrap();
    // Alerts: the operational events go to other endpoints.
    let alerts = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(HttpSubscription::new(
            "alerts",
            "fanout.subscription.*",
            &alerts.url,
        ))
        .await
        .unwrap();
    let deaths = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(HttpSubscription::new(
            "deaths",
            "fanout.run.dead",
            &deaths.url,
        ))
        .await
        .unwrap();
    let p = ev.publish(&client, &json!({})).await.unwrap();
    let busy_run = p
        .runs
        .iter()
        .find(|r| r.task_id == "busy")
        .unwrap()
        .run_id
        .clone();
    let hits = rx.wait_for(2, "the retry after Retry-After").await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 was honoured (gap {gap:?})"
    );
    let detail = client.run(&busy_run).await.unwrap();
    assert!(
        detail.attempts[0]
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("HTTP 503"),
        "the attempt keeps the answer: {:?}",
        detail.attempts[0]
    );
    assert!(
        detail.attempts[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("busy")
    );

    // A redirect fails the attempt and its target is never asked.
    let target = Receiver::start(|_, _| ok("{}")).await;
    let location = target.url.clone();
    let redirect =
        Receiver::start(move |_, _| (302, vec![("location", location.clone())], String::new()))
            .await;
    client
        .create_subscription(
            HttpSubscription::new("moved", "ping", &redirect.url).retry(Retry {
                max_attempts: 1,
                ..fast
            }),
        )
        .await
        .unwrap();
    // 410 Gone disables.
    let gone = Receiver::start(|_, _| (410, vec![], "gone".into())).await;
    client
        .create_subscription(HttpSubscription::new("gone", "ping", &gone.url).retry(fast))
        .await
        .unwrap();
    let p = ev.publish(&client, &json!({})).await.unwrap();
    let moved = p
        .runs
        .iter()
        .find(|r| r.task_id == "moved")
        .unwrap()
        .run_id
        .clone();
    let dead = eventually(
        Duration::from_secs(20),
        "the redirected run dies",
        || async {
            let r = client.run(&moved).await.unwrap();
            (r.run.status == RunStatus::Dead).then_some(r)
        },
    )
    .await;
    let err = dead.run.last_error.unwrap_or_default();
    assert!(
        err.contains("HTTP 302") && err.contains("not followed"),
        "{err}"
    );
    assert!(target.hits().is_empty(), "the redirect was not followed");
    let death = deaths
        .wait_for(1, "the fanout.run.dead event")
        .await
        .remove(0);
    assert_eq!(death.body["type"], "fanout.run.dead");
    assert_eq!(death.body["data"]["run_id"], moved.as_str());
    assert_eq!(death.body["data"]["subscription"], "moved");
    assert_eq!(death.body["data"]["event"], "ping");
    eventually(Duration::from_secs(20), "410 disables", || async {
        (client.subscription("gone").await.unwrap().state == SubscriptionState::Disabled)
            .then_some(())
    })
    .await;
    let alert = eventually(Duration::from_secs(20), "the disabled alert", || async {
        alerts
            .hits()
            .into_iter()
            .find(|h| h.body["type"] == "fanout.subscription.disabled")
    })
    .await;
    assert_eq!(alert.body["data"]["subscription"], "gone");
    assert_eq!(alert.body["data"]["url"], gone.url.as_str());
    // Disabled holds its runs: one attempt, then nothing more.
    assert_eq!(gone.hits().len(), 1);
    engine.stop().await;
}

/// Consecutive failures trip the breaker (other subscriptions of the event
/// unaffected); the half-open probe resumes it once a trial succeeds.
#[tokio::test]
async fn the_breaker_pauses_and_its_probe_resumes() {
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(loopback(b.config.clone())).await;
    let client = engine.client().await;
    let ev = define(&client, "tick").await;
    let healthy_now = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy_now.clone();
    let rx = Receiver::start(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            ok("{}")
        } else {
            (500, vec![], "down".into())
        }
    })
    .await;
    let other = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(
            HttpSubscription::new("flaky", "tick", &rx.url)
                .retry(Retry {
                    max_attempts: 10,
                    initial_backoff: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(20),
                    multiplier: 1.0,
                })
                .breaker(3, Duration::from_millis(500)),
        )
        .await
        .unwrap();
    client
        .create_subscription(HttpSubscription::new("steady", "tick", &other.url))
        .await
        .unwrap();
    let alerts = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(HttpSubscription::new(
            "alerts",
            "fanout.subscription.*",
            &alerts.url,
        ))
        .await
        .unwrap();
    for n in 0..3 {
        ev.publish(&client, &json!({"n": n})).await.unwrap();
    }
    eventually(Duration::from_secs(20), "the breaker trips", || async {
        let s = client.subscription("flaky").await.unwrap().state;
        matches!(s, SubscriptionState::Tripped | SubscriptionState::Probing).then_some(())
    })
    .await;
    other
        .wait_for(3, "the other subscription is unaffected")
        .await;
    healthy_now.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(Duration::from_secs(20), "the probe resumes it", || async {
        (client.subscription("flaky").await.unwrap().state == SubscriptionState::Active)
            .then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "every run completes", || async {
        let done = fanout_tests::runs_with_status(&client, RunStatus::Completed)
            .await
            .iter()
            .filter(|r| r.task_id == "flaky")
            .count();
        (done == 3).then_some(())
    })
    .await;
    let kinds: Vec<String> = alerts
        .wait_for(2, "paused and resumed alerts")
        .await
        .iter()
        .map(|h| h.body["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        kinds.contains(&"fanout.subscription.paused".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"fanout.subscription.resumed".to_string()),
        "{kinds:?}"
    );
    engine.stop().await;
}

/// By default only public addresses are delivered to: a loopback literal
/// is refused when saved, and a hostname that resolves to 127.0.0.1 is
/// refused at connect time (the receiver never hears of it).
#[tokio::test]
async fn private_destinations_are_refused() {
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(b.config.clone()).await;
    let client = engine.client().await;
    let ev = define(&client, "leak").await;
    let rx = Receiver::start(|_, _| ok("{}")).await;
    for url in [
        rx.url.clone(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://[::1]/x".to_string(),
    ] {
        let err = client
            .create_subscription(HttpSubscription::new("literal", "leak", &url))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("public addresses")),
            "{url}: {err:?}"
        );
    }
    let err = client
        .create_subscription(HttpSubscription::new("x", "leak", "ftp://example.com/"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("http://")),
        "{err:?}"
    );
    client
        .create_subscription(
            HttpSubscription::new(
                "by-name",
                "leak",
                format!("http://localhost:{}/hooks", rx.port),
            )
            .retry(Retry::attempts(1)),
        )
        .await
        .unwrap();
    let p = ev.publish(&client, &json!({})).await.unwrap();
    let dead = eventually(Duration::from_secs(20), "the attempt fails", || async {
        let r = client.run(&p.runs[0].run_id).await.unwrap();
        (r.run.status == RunStatus::Dead).then_some(r)
    })
    .await;
    let err = dead.run.last_error.unwrap_or_default();
    assert!(err.contains("refused") && err.contains("loopback"), "{err}");
    assert!(rx.hits().is_empty(), "nothing reached the receiver");
    engine.stop().await;
}

/// Rotation: during the overlap both secrets sign; afterwards only the new.
/// Updates change settings but not the state; the HTTP API creates, shows,
/// updates and deletes, with clear errors.
#[tokio::test]
async fn rotation_updates_and_the_http_api() {
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(loopback(b.config.clone())).await;
    let client = engine.client().await;
    let ev = define(&client, "rot").await;
    let rx = Receiver::start(|_, _| ok("{}")).await;
    let old = client
        .create_subscription(HttpSubscription::new("rot", "rot", &rx.url))
        .await
        .unwrap()
        .secret;
    let new = client
        .rotate_secret("rot", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_ne!(old, new);
    assert!(
        client
            .subscription("rot")
            .await
            .unwrap()
            .endpoint
            .unwrap()
            .previous_secret_until
            .is_some()
    );
    ev.publish(&client, &json!({})).await.unwrap();
    let hit = rx.wait_for(1, "a delivery").await.remove(0);
    let sig = hit
        .headers
        .get("webhook-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sig.split(' ').count(),
        2,
        "both secrets sign during the overlap: {sig}"
    );
    for s in [&old, &new] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&hit.raw, &hit.headers)
            .unwrap();
    }
    // Overlap 0: only the new secret signs.
    let newest = client
        .rotate_secret("rot", Some(Duration::ZERO))
        .await
        .unwrap();
    ev.publish(&client, &json!({})).await.unwrap();
    let hit = rx.wait_for(2, "a second delivery").await.remove(1);
    let sig = hit
        .headers
        .get("webhook-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(sig.split(' ').count(), 1, "{sig}");
    standardwebhooks::Webhook::new(&newest)
        .unwrap()
        .verify(&hit.raw, &hit.headers)
        .unwrap();

    // Update: settings change, the state stays.
    client.pause("rot").await.unwrap();
    let s = client
        .update_subscription(
            SubscriptionUpdate::new("rot")
                .timeout(Duration::from_secs(3))
                .concurrency(2),
        )
        .await
        .unwrap();
    assert_eq!(s.state, SubscriptionState::Paused);
    let ep = s.endpoint.unwrap();
    assert_eq!((ep.timeout, ep.concurrency), (Duration::from_secs(3), 2));
    let err = client
        .update_subscription(SubscriptionUpdate::new("rot").url("not a url"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("subscription.url")),
        "{err:?}"
    );

    // HTTP: create (201, secret once), duplicate (409), show, patch, delete.
    let body = json!({"id": "h", "event": "rot", "url": rx.url, "ratePerS": 5,
                      "breaker": {"afterFailures": 2}})
    .to_string();
    let (s, _, created) = http(&engine.http_url, "POST", "/api/v1/subscriptions", &body).await;
    assert_eq!(s, 201, "{created}");
    let v: Value = serde_json::from_str(&created).unwrap();
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(v["subscription"]["endpoint"]["ratePerS"], 5);
    assert_eq!(v["subscription"]["breaker"]["afterFailures"], 2);
    let (s, _, dup) = http(&engine.http_url, "POST", "/api/v1/subscriptions", &body).await;
    assert_eq!(s, 409, "{dup}");
    let (s, _, bad) = http(
        &engine.http_url,
        "POST",
        "/api/v1/subscriptions",
        &json!({"id": "nourl", "event": "rot"}).to_string(),
    )
    .await;
    assert_eq!(s, 400, "{bad}");
    assert!(bad.contains("url"), "{bad}");
    let (s, _, patched) = http(
        &engine.http_url,
        "PATCH",
        "/api/v1/subscriptions/h",
        &json!({"concurrency": 4}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert!(
        patched.contains("\"concurrency\":4") && !patched.contains("whsec_"),
        "{patched}"
    );
    // A bodiless POST from another origin's page cannot act: JSON only.
    let (s, _, refused) = fanout_tests::http_with(
        &engine.http_url,
        "POST",
        "/api/v1/subscriptions/h/rotate-secret",
        "Content-Type: text/plain\r\n",
        "",
    )
    .await;
    assert_eq!(s, 415, "{refused}");
    assert!(refused.contains("application/json"), "{refused}");
    let (s, _, _) = http(&engine.http_url, "DELETE", "/api/v1/subscriptions/h", "").await;
    assert_eq!(s, 204);
    let (s, _, gone) = http(&engine.http_url, "GET", "/api/v1/subscriptions/h", "").await;
    assert_eq!(s, 404, "{gone}");
    // Reserved names: neither defined nor published by users.
    let err = Event::<Value>::new("fanout.run.dead")
        .define(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("reserved")),
        "{err:?}"
    );
    engine.stop().await;
}

/// The breaker is not only for URLs: a task's subscription takes one
/// through `update` (its worker's registration keeps it), trips after its
/// consecutive failures, and an operator resumes it.
#[tokio::test]
async fn a_task_subscription_trips_too() {
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(b.config.clone()).await;
    let client = engine.client().await;
    let ev = define(&client, "job").await;
    let failing = Task::new("poisoned", &ev, |_: Value, _| async {
        Err::<(), _>(TaskError::retryable("upstream down"))
    })
    .retry(Retry {
        max_attempts: 50,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        multiplier: 1.0,
    });
    let healthy = Task::new("healthy", &ev, |_: Value, _| async {
        Ok::<_, TaskError>(())
    });
    client.register(&[&failing, &healthy]).await.unwrap();
    let s = client
        .update_subscription(SubscriptionUpdate::new("poisoned").breaker(4, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(s.breaker.after_failures, 4);
    let err = client
        .update_subscription(SubscriptionUpdate::new("poisoned").url("https://example.com/"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Server { code: tonic::Code::FailedPrecondition, message, .. } if message.contains("only the breaker")),
        "{err:?}"
    );
    let worker = Worker::new(client.clone())
        .task(failing)
        .task(healthy)
        .start()
        .await
        .unwrap();
    let p = ev.publish(&client, &json!({})).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "the task's breaker trips",
        || async {
            (client.subscription("poisoned").await.unwrap().state == SubscriptionState::Tripped)
                .then_some(())
        },
    )
    .await;
    // The trip commits after the fourth failure is recorded; an attempt
    // claimed meanwhile may still run, none after it.
    let run = p
        .runs
        .iter()
        .find(|r| r.task_id == "poisoned")
        .unwrap()
        .run_id
        .clone();
    let held = eventually(Duration::from_secs(20), "the run waits", || async {
        let r = client.run(&run).await.unwrap();
        (r.run.status == RunStatus::Retrying).then_some(r)
    })
    .await;
    assert!(
        (4..=5).contains(&held.attempts.len()),
        "{} attempts",
        held.attempts.len()
    );
    // A new event: its run is created and held; the other task's completes.
    let p2 = ev.publish(&client, &json!({})).await.unwrap();
    for p in [&p, &p2] {
        let other = p
            .runs
            .iter()
            .find(|r| r.task_id == "healthy")
            .unwrap()
            .run_id
            .clone();
        eventually(
            Duration::from_secs(20),
            "the healthy task is unaffected",
            || async {
                (client.run(&other).await.unwrap().run.status == RunStatus::Completed).then_some(())
            },
        )
        .await;
    }
    let held2 = p2
        .runs
        .iter()
        .find(|r| r.task_id == "poisoned")
        .unwrap()
        .run_id
        .clone();
    assert_eq!(
        client.run(&held2).await.unwrap().run.status,
        RunStatus::Queued
    );
    assert_eq!(
        client.run(&run).await.unwrap().attempts.len(),
        held.attempts.len()
    );
    client.resume("poisoned").await.unwrap();
    assert_eq!(
        client.subscription("poisoned").await.unwrap().state,
        SubscriptionState::Active
    );
    assert_eq!(
        client
            .subscription("poisoned")
            .await
            .unwrap()
            .breaker
            .after_failures,
        4
    );
    worker.shutdown().await.unwrap();
    engine.stop().await;
}

/// A slow endpoint is never hammered: at most `concurrency` requests in
/// flight, at most `rate` per second.
#[tokio::test]
async fn concurrency_and_rate_bound_an_endpoint() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(loopback(b.config.clone())).await;
    let client = engine.client().await;
    let ev = define(&client, "load").await;
    // A slow endpoint that counts how many requests overlap.
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n2, p2) = (now.clone(), peak.clone());
    let app = axum::Router::new().fallback(move || {
        let (now, peak) = (n2.clone(), p2.clone());
        async move {
            let in_flight = now.fetch_add(1, SeqCst) + 1;
            peak.fetch_max(in_flight, SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            now.fetch_sub(1, SeqCst);
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    client
        .create_subscription(HttpSubscription::new("slow", "load", &slow).concurrency(2))
        .await
        .unwrap();
    // A rate-limited one beside it.
    let rx = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(HttpSubscription::new("limited", "load", &rx.url).rate_per_second(5))
        .await
        .unwrap();
    for n in 0..12 {
        ev.publish(&client, &json!({"n": n})).await.unwrap();
    }
    let hits = rx.wait_for(12, "the limited deliveries").await;
    let spread = hits[11].at - hits[0].at;
    assert!(
        spread >= Duration::from_millis(1800),
        "12 at 5/s take two windows: {spread:?}"
    );
    eventually(Duration::from_secs(30), "the slow deliveries", || async {
        let done = fanout_tests::runs_with_status(&client, RunStatus::Completed)
            .await
            .iter()
            .filter(|r| r.task_id == "slow")
            .count();
        (done == 12).then_some(())
    })
    .await;
    let peak = peak.load(SeqCst);
    assert!((1..=2).contains(&peak), "at most 2 in flight, saw {peak}");
    engine.stop().await;
}

/// A run that dies because its last lease lapsed (a silent worker) is
/// reported on `fanout.run.dead` too.
#[tokio::test]
async fn a_run_dead_by_lease_is_reported() {
    use fanout_proto::v1 as pb;
    let b = fanout_tests::backend("sqlite").await;
    let engine = TestEngine::start(loopback(b.config.clone())).await;
    let client = engine.client().await;
    let ev = define(&client, "silent.job").await;
    let deaths = Receiver::start(|_, _| ok("{}")).await;
    client
        .create_subscription(HttpSubscription::new(
            "deaths",
            "fanout.run.dead",
            &deaths.url,
        ))
        .await
        .unwrap();
    let mut raw = pb::worker_service_client::WorkerServiceClient::connect(engine.grpc_url.clone())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Register(pb::Register {
            worker_name: "silent".into(),
            concurrency: 1,
            tasks: vec![pb::TaskRegistration {
                id: "silent".into(),
                event: "silent.job".into(),
                lease_ms: 300,
                retry: Some(pb::RetryPolicy {
                    max_attempts: 1,
                    initial_backoff_ms: 10,
                    max_backoff_ms: 10,
                    multiplier: 1.0,
                }),
                ..Default::default()
            }],
        })),
    })
    .await
    .unwrap();
    let mut inbound = raw
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    inbound.message().await.unwrap().unwrap(); // registered
    let p = ev.publish(&client, &json!({})).await.unwrap();
    let run_id = p
        .runs
        .iter()
        .find(|r| r.task_id == "silent")
        .unwrap()
        .run_id
        .clone();
    // Assigned, never answered.
    inbound.message().await.unwrap().unwrap();
    let death = deaths
        .wait_for(1, "the dead-by-lease report")
        .await
        .remove(0);
    assert_eq!(death.body["data"]["run_id"], run_id.as_str());
    assert_eq!(death.body["data"]["subscription"], "silent");
    assert!(
        death.body["data"]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{:?}",
        death.body
    );
    drop(tx);
    engine.stop().await;
}
