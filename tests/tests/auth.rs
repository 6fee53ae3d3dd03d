//! Authentication and isolation, end to end.
//!
//! The matrix tests are generated from the contract, not listed by hand:
//! every gRPC method of the proto's services and every HTTP route of
//! `docs/openapi.yaml` is called with no key, a malformed key, a key of
//! each scope and a key of another namespace, and must answer as its rule
//! in `auth::rules` says. A new method or route without a rule fails here.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::Client;
use fanout::proto as pb;
use fanout_engine::auth::rules::{self, Rule};
use fanout_engine::model::Scope;
use fanout_tests::{TestEngine, backend, eventually, http_with};
use std::str::FromStr;
use std::time::Duration;
use tonic::Code;

/// `(path, streaming)` of every method of the proto's services.
fn grpc_methods() -> Vec<(String, bool)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let fds = protox::compile(["fanout/v1/fanout.proto"], [root]).unwrap();
    let mut out = Vec::new();
    for file in &fds.file {
        for svc in &file.service {
            for m in &svc.method {
                out.push((
                    format!("/{}.{}/{}", file.package(), svc.name(), m.name()),
                    m.client_streaming() || m.server_streaming(),
                ));
            }
        }
    }
    out.push(("/grpc.health.v1.Health/Check".into(), false));
    out
}

/// `(method, path)` of every route in `docs/openapi.yaml`.
fn http_routes() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/openapi.yaml")).unwrap();
    let paths = doc
        .split("\npaths:\n")
        .nth(1)
        .unwrap()
        .split("\ncomponents:")
        .next()
        .unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in paths.lines() {
        if let Some(p) = line.strip_prefix("  /") {
            current = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ")
            && let Some(m) = m.strip_suffix(':')
            && ["get", "post", "patch", "delete", "put"].contains(&m)
        {
            out.push((m.to_uppercase(), current.clone()));
        }
    }
    out
}

/// The outcome of one call: its code, or `None` when it was admitted and
/// is still running after a few seconds (a long poll).
async fn grpc_call(
    url: &str,
    path: &str,
    streaming: bool,
    key: Option<&str>,
    ns: &str,
) -> Option<Code> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_str(path).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let meta = |m: &mut tonic::metadata::MetadataMap| {
        if let Some(k) = key {
            m.insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        m.insert("x-fanout-namespace", ns.parse().unwrap());
    };
    let call = async {
        grpc.ready().await.unwrap();
        if streaming {
            let mut req = tonic::Request::new(tokio_stream::empty::<()>());
            meta(req.metadata_mut());
            grpc.streaming(req, path, codec).await.map(|_| ()).err()
        } else {
            let mut req = tonic::Request::new(());
            meta(req.metadata_mut());
            grpc.unary(req, path, codec).await.map(|_| ()).err()
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(Some(status)) => Some(status.code()),
        Ok(None) => Some(Code::Ok),
        Err(_) => None,
    }
}

/// Keys bound to `shop`, one per scope, and an admin key bound to `bank`.
async fn keys(e: &TestEngine, admin: &str) -> (Vec<(Scope, String)>, String) {
    let client = Client::connect(&e.grpc_url)
        .await
        .unwrap()
        .api_key(admin)
        .unwrap();
    let make = |name: String, scope: Scope, ns: &str| {
        let client = client.clone();
        let ns = ns.to_string();
        async move {
            client
                .raw()
                .admin()
                .create_api_key(client.raw().request(pb::CreateApiKeyRequest {
                    name,
                    scopes: vec![scope.as_str().into()],
                    namespace: ns,
                    events: vec![],
                    expires_in_ms: 0,
                }))
                .await
                .unwrap()
                .into_inner()
                .secret
        }
    };
    let mut scoped = Vec::new();
    for s in Scope::ALL {
        scoped.push((*s, make(format!("shop-{s}"), *s, "shop").await));
    }
    (
        scoped,
        make("bank-admin".into(), Scope::Admin, "bank").await,
    )
}

fn allows(rule: Rule, scope: Scope) -> bool {
    match rule {
        Rule::Open => true,
        Rule::Any(scopes) => scope == Scope::Admin || scopes.contains(&scope),
    }
}

const MALFORMED: &str = "fo_0000000000000000000000000000000000000a";

#[tokio::test]
async fn every_grpc_method_answers_as_its_rule_says() {
    let b = backend("sqlite").await;
    let (e, admin) = TestEngine::start_with_auth(b.config.clone()).await;
    let (scoped, foreign) = keys(&e, &admin).await;
    let methods = grpc_methods();
    assert!(methods.len() >= 30, "{methods:?}");
    let mut problems = Vec::new();
    for (path, streaming) in &methods {
        let Some(rule) = rules::grpc(path) else {
            problems.push(format!("{path}: no rule in auth/rules.rs"));
            continue;
        };
        let url = &e.grpc_url;
        let refused =
            |c: Option<Code>| matches!(c, Some(Code::Unauthenticated | Code::PermissionDenied));
        let none = grpc_call(url, path, *streaming, None, "shop").await;
        let bad = grpc_call(url, path, *streaming, Some(MALFORMED), "shop").await;
        if rule == Rule::Open {
            if refused(none) {
                problems.push(format!("{path}: open, but no key got {none:?}"));
            }
            continue;
        }
        for (what, got) in [("no key", none), ("a malformed key", bad)] {
            if got != Some(Code::Unauthenticated) {
                problems.push(format!(
                    "{path}: {what} got {got:?}, expected Unauthenticated"
                ));
            }
        }
        for (scope, key) in &scoped {
            let got = grpc_call(url, path, *streaming, Some(key), "shop").await;
            let ok = allows(rule, *scope);
            if ok && refused(got) {
                problems.push(format!("{path}: scope {scope} is allowed but got {got:?}"));
            }
            if !ok && got != Some(Code::PermissionDenied) {
                problems.push(format!(
                    "{path}: scope {scope} must be refused, got {got:?}"
                ));
            }
        }
        let got = grpc_call(url, path, *streaming, Some(&foreign), "shop").await;
        if got != Some(Code::PermissionDenied) {
            problems.push(format!(
                "{path}: a key of namespace bank naming shop got {got:?}"
            ));
        }
    }
    e.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn every_http_route_answers_as_its_rule_says() {
    let b = backend("sqlite").await;
    let (e, admin) = TestEngine::start_with_auth(b.config.clone()).await;
    let (scoped, foreign) = keys(&e, &admin).await;
    let routes = http_routes();
    assert!(routes.len() >= 18, "{routes:?}");
    let mut problems = Vec::new();
    for (method, route) in &routes {
        let Some(rule) = rules::http(method, route, false) else {
            problems.push(format!("{method} {route}: no rule in auth/rules.rs"));
            continue;
        };
        let path = route.replace("{name}", "x").replace("{id}", "x");
        let body = if method == "GET" { "" } else { "{}" };
        let call = |key: Option<String>, ns: &'static str| {
            let (method, path, url) = (method.clone(), path.clone(), e.http_url.clone());
            async move {
                let mut h =
                    format!("Content-Type: application/json\r\nx-fanout-namespace: {ns}\r\n");
                if let Some(k) = key {
                    h.push_str(&format!("Authorization: Bearer {k}\r\n"));
                }
                http_with(&url, &method, &path, &h, body).await.0
            }
        };
        let none = call(None, "shop").await;
        if rule == Rule::Open {
            if none == 401 || none == 403 {
                problems.push(format!("{method} {route}: open, but no key got {none}"));
            }
            continue;
        }
        let bad = call(Some(MALFORMED.into()), "shop").await;
        for (what, got) in [("no key", none), ("a malformed key", bad)] {
            if got != 401 {
                problems.push(format!("{method} {route}: {what} got {got}, expected 401"));
            }
        }
        for (scope, key) in &scoped {
            let got = call(Some(key.clone()), "shop").await;
            let ok = allows(rule, *scope);
            if ok && (got == 401 || got == 403) {
                problems.push(format!(
                    "{method} {route}: scope {scope} is allowed but got {got}"
                ));
            }
            if !ok && got != 403 {
                problems.push(format!(
                    "{method} {route}: scope {scope} must be refused, got {got}"
                ));
            }
        }
        let got = call(Some(foreign.clone()), "shop").await;
        if got != 403 {
            problems.push(format!(
                "{method} {route}: a key of namespace bank naming shop got {got}"
            ));
        }
    }
    e.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A key made by `admin` with these scopes, bound to `ns` ("" = every).
async fn make_key(
    client: &Client,
    name: &str,
    scopes: &[&str],
    ns: &str,
    events: &[&str],
    expires_in_ms: u64,
) -> String {
    client
        .raw()
        .admin()
        .create_api_key(client.raw().request(pb::CreateApiKeyRequest {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            namespace: ns.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            expires_in_ms,
        }))
        .await
        .unwrap()
        .into_inner()
        .secret
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
}

fanout_tests::per_backend! { fanout_tests::backend: sqlite, postgres;
    async fn a_namespace_cannot_see_or_touch_another_namespaces_entities(b) {
        let (e, admin) = TestEngine::start_with_auth(b.config.clone()).await;
        let root = Client::connect(&e.grpc_url).await.unwrap().api_key(&admin).unwrap();
        let bank = root.clone().with_namespace("bank").unwrap();
        let ev = fanout::Event::<Order>::new("order.placed");
        ev.define(&bank).await.unwrap();
        let task = fanout::Task::new("settle", &ev, |o: Order, _| async move { Ok::<_, fanout::TaskError>(o.id) });
        bank.register(&[&task]).await.unwrap();
        let run_id = ev.publish(&bank, &Order { id: "1".into() }).await.unwrap().runs[0].run_id.clone();
        let token = bank
            .raw()
            .waitpoints()
            .create_token(bank.raw().request(pb::CreateTokenRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .id;

        // A shop admin, with no namespace named: acts in shop.
        let shop_key = make_key(&root, "shop-admin", &["admin"], "shop", &[], 0).await;
        let shop = Client::connect(&e.grpc_url).await.unwrap().api_key(&shop_key).unwrap();
        let not_found = |r: Result<(), fanout::Error>, what: &str| {
            assert!(matches!(r, Err(fanout::Error::NotFound { .. })), "[{}] {what}: {r:?}", b.name);
        };
        not_found(shop.run(&run_id).await.map(|_| ()), "run");
        not_found(
            shop.raw().admin().get_run_logs(shop.raw().request(pb::GetRunLogsRequest { run_id: run_id.clone(), ..Default::default() }))
                .await.map(|_| ()).map_err(fanout::Error::from),
            "run logs",
        );
        not_found(
            shop.raw().waitpoints().complete_token(shop.raw().request(pb::CompleteTokenRequest { id: token.clone(), data_json: "1".into() }))
                .await.map(|_| ()).map_err(fanout::Error::from),
            "token",
        );
        not_found(
            shop.raw().admin().get_subscription(shop.raw().request(pb::SubscriptionRef { id: "settle".into() }))
                .await.map(|_| ()).map_err(fanout::Error::from),
            "subscription",
        );
        let retried = shop
            .raw().admin()
            .retry_dead_letters(shop.raw().request(pb::DeadLetterSelector { ids: vec![run_id.clone()], ..Default::default() }))
            .await.unwrap().into_inner().count;
        assert_eq!(retried, 0);
        // Naming the other namespace is refused outright.
        let named = shop.clone().with_namespace("bank").unwrap().run(&run_id).await;
        assert!(matches!(named, Err(fanout::Error::PermissionDenied(ref m)) if m.contains("bound to namespace 'shop'")), "{named:?}");
        // The token is still there for its own namespace.
        let done = bank
            .raw().waitpoints()
            .complete_token(bank.raw().request(pb::CompleteTokenRequest { id: token.clone(), data_json: "1".into() }))
            .await.unwrap().into_inner();
        assert_eq!(done.status, "completed");
        // Token ids are random (UUIDv4), not time ordered.
        assert_eq!(uuid::Uuid::parse_str(&token).unwrap().get_version_num(), 4);
        e.stop().await;
    }

    async fn keys_are_scoped_limited_revoked_expired_and_audited(b) {
        let (e, admin) = TestEngine::start_with_auth(b.config.clone()).await;
        let root = Client::connect(&e.grpc_url).await.unwrap().api_key(&admin).unwrap();
        let ev = fanout::Event::<Order>::new("order.placed");
        ev.define(&root).await.unwrap();
        fanout::Event::<Order>::new("user.created").define(&root).await.unwrap();

        // No key, a typo'd key.
        let anon = Client::connect(&e.grpc_url).await.unwrap();
        let r = ev.publish(&anon, &Order { id: "1".into() }).await;
        assert!(matches!(r, Err(fanout::Error::Unauthenticated(ref m)) if m.contains("requires an API key")), "{r:?}");
        let mut typo = admin.clone().into_bytes();
        typo[5] = if typo[5] == b'x' { b'y' } else { b'x' };
        let typo = Client::connect(&e.grpc_url).await.unwrap().api_key(String::from_utf8(typo).unwrap()).unwrap();
        let r = ev.publish(&typo, &Order { id: "1".into() }).await;
        assert!(matches!(r, Err(fanout::Error::Unauthenticated(ref m)) if m.contains("checksum")), "{r:?}");

        // A publish key limited to order.*.
        let key = make_key(&root, "orders", &["publish"], "", &["order.*"], 0).await;
        let orders = Client::connect(&e.grpc_url).await.unwrap().api_key(&key).unwrap();
        ev.publish(&orders, &Order { id: "1".into() }).await.unwrap();
        let r = fanout::Event::<Order>::new("user.created").publish(&orders, &Order { id: "1".into() }).await;
        assert!(matches!(r, Err(fanout::Error::PermissionDenied(ref m)) if m.contains("order.*")), "{r:?}");
        // Over HTTP too.
        let h = format!("Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n");
        let (status, _, body) = http_with(&e.http_url, "POST", "/api/v1/events/user.created/publish", &h, r#"{"payload":{"id":"1"}}"#).await;
        assert_eq!(status, 403, "{body}");
        let (status, _, body) = http_with(&e.http_url, "POST", "/api/v1/events/order.placed/publish", &h, r#"{"payload":{"id":"2"}}"#).await;
        assert_eq!(status, 200, "{body}");
        // A read-only scope cannot publish.
        let reader = make_key(&root, "reader", &["read"], "", &[], 0).await;
        let reader = Client::connect(&e.grpc_url).await.unwrap().api_key(&reader).unwrap();
        let r = ev.publish(&reader, &Order { id: "1".into() }).await;
        assert!(matches!(r, Err(fanout::Error::PermissionDenied(ref m)) if m.contains("scope publish")), "{r:?}");

        // Last use is recorded (lazily).
        eventually(Duration::from_secs(10), "last_used_at written", || async {
            let keys = root.raw().admin().list_api_keys(root.raw().request(pb::ListApiKeysRequest {})).await.unwrap().into_inner().keys;
            keys.iter().find(|k| k.name == "orders").filter(|k| k.last_used_at_ms > 0).map(|_| ())
        })
        .await;
        // The store holds a hash, never the key.
        let listed = root.raw().admin().list_api_keys(root.raw().request(pb::ListApiKeysRequest {})).await.unwrap().into_inner().keys;
        assert!(listed.iter().all(|k| k.id.len() == 11 && key.starts_with(&k.id) == (k.name == "orders")));

        // Revocation: refused within the reload period.
        let revoked_at = std::time::Instant::now();
        root.raw().admin().revoke_api_key(root.raw().request(pb::RevokeApiKeyRequest { key: "orders".into() })).await.unwrap();
        eventually(Duration::from_secs(10), "revoked key refused", || async {
            matches!(ev.publish(&orders, &Order { id: "3".into() }).await, Err(fanout::Error::Unauthenticated(_))).then_some(())
        })
        .await;
        assert!(revoked_at.elapsed() <= fanout_engine::auth::RELOAD + Duration::from_secs(1));

        // An expired key.
        let short = make_key(&root, "short", &["publish"], "", &[], 1).await;
        let short = Client::connect(&e.grpc_url).await.unwrap().api_key(&short).unwrap();
        eventually(Duration::from_secs(5), "expired key refused", || async {
            matches!(ev.publish(&short, &Order { id: "4".into() }).await, Err(fanout::Error::Unauthenticated(ref m)) if m.contains("expired")).then_some(())
        })
        .await;

        // The audit log names the key behind each mutation.
        let entries = root
            .raw().admin()
            .list_audit(root.raw().request(pb::ListAuditRequest { all_namespaces: true, limit: 100, ..Default::default() }))
            .await.unwrap().into_inner().entries;
        let seen: Vec<(&str, &str)> = entries.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
        for want in [("event.define", "bootstrap-admin"), ("key.create", "bootstrap-admin"), ("key.revoke", "bootstrap-admin")] {
            assert!(seen.contains(&want), "[{}] {want:?} not in {seen:?}", b.name);
        }
        // A non-admin cannot read it.
        let r = reader.raw().admin().list_audit(reader.raw().request(pb::ListAuditRequest::default())).await;
        assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
        // The bootstrap happens once.
        assert!(e.engine().bootstrap_key().await.unwrap().is_none());
        e.stop().await;
    }
}

/// Two replicas on one database: a key revoked on one is refused by the
/// other within the reload period (the change is signalled, and reloaded
/// regardless every few seconds).
#[tokio::test]
#[ignore = "needs its service: --include-ignored with FANOUT_TEST_POSTGRES_URL set (.ci/run)"]
async fn revocation_reaches_every_replica() {
    let b = backend("postgres").await;
    let (a, admin) = TestEngine::start_with_auth(b.config.clone()).await;
    let mut config = b.config.clone();
    config.auth.mode = fanout_engine::config::AuthMode::Required;
    let other = TestEngine::start(config).await;
    let root = Client::connect(&a.grpc_url)
        .await
        .unwrap()
        .api_key(&admin)
        .unwrap();
    let key = make_key(&root, "reader", &["read"], "", &[], 0).await;
    let on_b = Client::connect(&other.grpc_url)
        .await
        .unwrap()
        .api_key(&key)
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "replica b knows the new key",
        || async {
            on_b.raw()
                .events()
                .list_events(on_b.raw().request(pb::ListEventsRequest {}))
                .await
                .ok()
        },
    )
    .await;
    let t = std::time::Instant::now();
    root.raw()
        .admin()
        .revoke_api_key(root.raw().request(pb::RevokeApiKeyRequest {
            key: "reader".into(),
        }))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "replica b refuses the revoked key",
        || async {
            let r = on_b
                .raw()
                .events()
                .list_events(on_b.raw().request(pb::ListEventsRequest {}))
                .await;
            (r.err()?.code() == Code::Unauthenticated).then_some(())
        },
    )
    .await;
    assert!(
        t.elapsed() <= fanout_engine::auth::RELOAD + Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    other.stop().await;
    a.stop().await;
}

/// A worker's session outlives the call that opened it; revoking its key
/// ends it (and its reconnects are refused).
#[tokio::test]
async fn revoking_a_worker_key_ends_its_session() {
    let b = backend("sqlite").await;
    let (e, admin) = TestEngine::start_with_auth(b.config.clone()).await;
    let root = Client::connect(&e.grpc_url)
        .await
        .unwrap()
        .api_key(&admin)
        .unwrap();
    let ev = fanout::Event::<Order>::new("order.placed");
    ev.define(&root).await.unwrap();
    let key = make_key(&root, "worker-1", &["worker"], "", &[], 0).await;
    let client = Client::connect(&e.grpc_url)
        .await
        .unwrap()
        .api_key(&key)
        .unwrap();
    let task = fanout::Task::new("settle", &ev, |o: Order, _| async move {
        Ok::<_, fanout::TaskError>(o.id)
    });
    let worker = fanout::Worker::new(client)
        .task(task)
        .start()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the worker is connected",
        || async { (!e.engine().workers().list(None).is_empty()).then_some(()) },
    )
    .await;
    root.raw()
        .admin()
        .revoke_api_key(root.raw().request(pb::RevokeApiKeyRequest {
            key: "worker-1".into(),
        }))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the revoked worker's session ends",
        || async { e.engine().workers().list(None).is_empty().then_some(()) },
    )
    .await;
    drop(worker);
    e.stop().await;
}
