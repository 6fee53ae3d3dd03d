//! Where client commands connect: shared by every command module.

use anyhow::Result;
use fanout::Client;

/// Where client commands connect, as whom.
pub struct Ctx {
    pub server: String,
    /// `None`: the key's own namespace (a bound key), else `default`.
    pub namespace: Option<String>,
    pub api_key: Option<String>,
}

impl Ctx {
    pub async fn client(&self) -> Result<Client> {
        let mut client = Client::connect(&self.server).await?;
        if let Some(key) = &self.api_key {
            client = client.api_key(key)?;
        }
        if let Some(ns) = &self.namespace {
            client = client.with_namespace(ns)?;
        }
        Ok(client)
    }
}
