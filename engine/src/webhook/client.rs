//! The one HTTP client every delivery shares: a connection pool per host
//! (HTTP/1.1 keep-alive, HTTP/2 over TLS when the server offers it), no
//! redirects, no proxy from the environment (a proxy would connect on our
//! behalf, out of the address check), and a resolver that drops every
//! address the [`Policy`] refuses — at connect time, so a name that
//! resolves (or re-resolves) to a private address is refused.

use crate::netguard::Policy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Resolves with the system resolver and keeps allowed addresses only.
struct GuardedResolver(Policy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.allows(a.ip()) {
                    Ok(()) => true,
                    Err(kind) => {
                        refused.get_or_insert((a.ip(), kind));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = match refused {
                    Some((ip, kind)) => format!(
                        "refused: '{host}' resolves to {ip}, which is {kind}; only public addresses are delivered to (allow_private_endpoints opens the others)"
                    ),
                    None => format!("'{host}' resolves to no address"),
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The shared client.
pub fn build(policy: Policy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("Fanout-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}
