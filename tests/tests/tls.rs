//! TLS on both listeners with certificates made here (a CA, the engine's
//! certificate for localhost, a client certificate): the SDK and an HTTPS
//! client connect; plain text and untrusted clients do not; with a client
//! CA, gRPC needs a client certificate.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout::{Client, Tls};
use fanout_tests::{TestEngine, backend};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: leaf(vec!["localhost".into(), "127.0.0.1".into()]),
        client: leaf(vec!["worker-1".into()]),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Pki {
    fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn config(&self, client_ca: bool) -> fanout_engine::config::TlsConfig {
        fanout_engine::config::TlsConfig {
            cert: Some(self.file("server.pem", &self.server.0)),
            key: Some(self.file("server.key", &self.server.1)),
            client_ca: client_ca.then(|| self.file("ca.pem", &self.ca_pem)),
        }
    }
}

#[tokio::test]
async fn both_listeners_serve_tls_and_refuse_plain_text() {
    let pki = pki();
    let mut config = backend("sqlite").await.config;
    config.tls = pki.config(false);
    let e = TestEngine::start(config).await;
    let grpc = e.grpc_url.replace("http://127.0.0.1", "https://localhost");
    let http = e.http_url.replace("http://127.0.0.1", "https://localhost");

    // The SDK over TLS, trusting the CA.
    let client = Client::connect_with_tls(&grpc, Tls::default().ca_pem(pki.ca_pem.clone()))
        .await
        .unwrap();
    let ev = fanout::Event::<serde_json::Value>::new("order.placed");
    ev.define(&client).await.unwrap();
    ev.publish(&client, &serde_json::json!({"id": 1}))
        .await
        .unwrap();
    // Not trusting it (the system's roots): the handshake fails.
    let untrusted = match Client::connect(&grpc).await {
        Err(e) => Err(e),
        Ok(c) => c.event_definitions().await.map(|_| ()),
    };
    assert!(untrusted.is_err(), "{untrusted:?}");
    // Plain text to the TLS port: nothing usable.
    let plain = match Client::connect(&e.grpc_url).await {
        Err(e) => Err(e),
        Ok(c) => c.event_definitions().await.map(|_| ()),
    };
    assert!(plain.is_err(), "{plain:?}");

    // HTTPS.
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = https.get(format!("{http}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = https
        .post(format!("{http}/api/v1/events/order.placed/publish"))
        .header("content-type", "application/json")
        .body(r#"{"payload":{"id":2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let plain_http = reqwest::Client::new()
        .get(format!("{}/healthz", e.http_url))
        .send()
        .await;
    assert!(plain_http.is_err() || plain_http.unwrap().status() != 200);
    e.stop().await;
}

#[tokio::test]
async fn with_a_client_ca_grpc_needs_a_client_certificate() {
    let pki = pki();
    let mut config = backend("sqlite").await.config;
    config.tls = pki.config(true);
    let e = TestEngine::start(config).await;
    let grpc = e.grpc_url.replace("http://127.0.0.1", "https://localhost");
    let trust = Tls::default().ca_pem(pki.ca_pem.clone());
    let anonymous = match Client::connect_with_tls(&grpc, trust.clone()).await {
        Err(e) => Err(e),
        Ok(c) => c.event_definitions().await.map(|_| ()),
    };
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let with_cert = trust.client_identity(pki.client.0.clone(), pki.client.1.clone());
    let client = Client::connect_with_tls(&grpc, with_cert).await.unwrap();
    assert!(client.event_definitions().await.unwrap().is_empty());
    e.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_start_naming_it() {
    let pki = pki();
    let mut config = backend("sqlite").await.config;
    config.tls = fanout_engine::config::TlsConfig {
        cert: Some(pki.file("server.pem", "not a certificate")),
        key: Some(pki.file("server.key", &pki.server.1)),
        client_ca: None,
    };
    let listeners = fanout_engine::Listeners::bind("127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let err = fanout_engine::spawn(config, listeners)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tls.cert") && err.contains("server.pem"),
        "{err}"
    );
}
