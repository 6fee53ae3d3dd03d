//! TLS for both listeners from PEM files (`[tls]`, `--tls-cert`,
//! `--tls-key`, `--tls-client-ca`). gRPC uses tonic's rustls acceptor (and,
//! with a client CA, requires client certificates: mutual TLS); HTTP wraps
//! each accepted connection in a `tokio_rustls` acceptor (HTTP/1.1). One
//! crypto provider (ring) is compiled in, as reqwest's rustls uses.

use crate::config::TlsConfig;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the two listeners serve TLS with.
pub struct Tls {
    pub grpc: tonic::transport::ServerTlsConfig,
    pub http: tokio_rustls::TlsAcceptor,
}

fn read(what: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Load the configured files; `None` when TLS is off. Errors name the
/// file and what is wrong with it.
pub fn load(config: &TlsConfig) -> Result<Option<Tls>, String> {
    let (Some(cert_path), Some(key_path)) = (&config.cert, &config.key) else {
        return Ok(None);
    };
    let cert_pem = read("tls.cert", cert_path)?;
    let key_pem = read("tls.key", key_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "tls.cert {}: not PEM certificates: {e}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no CERTIFICATE block found",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls.key {}: no usable private key: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut http = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert / tls.key: {e}"))?;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut grpc = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(&cert_pem, &key_pem));
    if let Some(ca) = &config.client_ca {
        let ca_pem = read("tls.client_ca", ca)?;
        grpc = grpc.client_ca_root(tonic::transport::Certificate::from_pem(ca_pem));
    }
    Ok(Some(Tls {
        grpc,
        http: tokio_rustls::TlsAcceptor::from(Arc::new(http)),
    }))
}
