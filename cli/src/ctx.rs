//! Where client commands connect: shared by every command module.

use anyhow::Result;
use fanout::Client;

/// Where client commands connect.
pub struct Ctx {
    pub server: String,
    pub namespace: String,
}

impl Ctx {
    pub async fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.server)
            .await?
            .with_namespace(&self.namespace)?)
    }
}
