//! Where client commands connect: shared by every command module.

use anyhow::{Context, Result};
use fanout::Client;
use std::path::PathBuf;

/// Where client commands connect, as whom.
pub struct Ctx {
    pub server: String,
    /// `None`: the key's own namespace (a bound key), else `default`.
    pub namespace: Option<String>,
    pub api_key: Option<String>,
    /// A CA to trust for https:// (PEM file).
    pub ca_cert: Option<PathBuf>,
    /// A client certificate and key (PEM files).
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

impl Ctx {
    pub async fn client(&self) -> Result<Client> {
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let mut tls = fanout::Tls::default();
        if let Some(ca) = &self.ca_cert {
            tls = tls.ca_pem(read(ca)?);
        }
        if let Some((cert, key)) = &self.client_identity {
            tls = tls.client_identity(read(cert)?, read(key)?);
        }
        let mut client = Client::connect_with_tls(&self.server, tls).await?;
        if let Some(key) = &self.api_key {
            client = client.api_key(key)?;
        }
        if let Some(ns) = &self.namespace {
            client = client.with_namespace(ns)?;
        }
        Ok(client)
    }
}
