//! HTTP subscribers: subscribe a URL to an event as easily as a task. The
//! engine POSTs each run, signed per Standard Webhooks (`webhook-id` is the
//! run id — the receiver's idempotency key —, `webhook-timestamp`,
//! `webhook-signature`), retries on a schedule over hours, and pauses the
//! subscription when its breaker trips.
//!
//! ```no_run
//! use fanout::{Client, HttpSubscription};
//! use std::time::Duration;
//! # async fn demo(client: Client) -> fanout::Result<()> {
//! let created = client
//!     .create_subscription(
//!         HttpSubscription::new("crm-sync", "order.*", "https://crm.example.com/hooks")
//!             .filter(serde_json::json!({"total": [{"numeric": [">", 100]}]}))
//!             .timeout(Duration::from_secs(10))
//!             .rate_per_second(50),
//!     )
//!     .await?;
//! println!("verify with {}", created.secret); // shown this once
//! # Ok(()) }
//! ```

use super::Subscription;
use crate::{Client, Result, Retry};
use fanout_proto::v1 as pb;
use std::time::Duration;

/// A new HTTP subscriber, for [`Client::create_subscription`].
#[derive(Debug, Clone)]
pub struct HttpSubscription {
    spec: pb::SubscriptionSpec,
}

/// Changes to a subscription, for [`Client::update_subscription`]: unset
/// fields keep their value. A task's subscription takes only
/// [`SubscriptionUpdate::breaker`] (its worker defines the rest).
#[derive(Debug, Clone)]
pub struct SubscriptionUpdate {
    spec: pb::SubscriptionSpec,
}

/// What creating an HTTP subscriber returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreatedSubscription {
    /// The subscription as stored.
    pub subscription: Subscription,
    /// The `whsec_` signing secret: shown this once.
    pub secret: String,
}

fn retry_pb(r: Retry) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_attempts: r.max_attempts,
        initial_backoff_ms: r.initial_backoff.as_millis() as u64,
        max_backoff_ms: r.max_backoff.as_millis() as u64,
        multiplier: r.multiplier,
    }
}

fn breaker_pb(after_failures: u32, probe_after: Duration) -> pb::Breaker {
    pb::Breaker {
        after_failures,
        probe_after_ms: probe_after.as_millis() as u64,
    }
}

/// The setters both builders share.
macro_rules! spec_setters {
    () => {
        /// Only events whose payload matches this filter (Fanout `$`
        /// operators or an EventBridge pattern).
        pub fn filter(mut self, filter: serde_json::Value) -> Self {
            self.spec.filter_json = Some(filter.to_string());
            self
        }

        /// One member of the group gets each event (tasks and URLs may mix).
        pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
            self.spec.consumer_group = Some(group.into());
            self
        }

        /// The retry schedule (default for URLs: 8 attempts over ~15.6 h).
        pub fn retry(mut self, retry: Retry) -> Self {
            self.spec.retry = Some(retry_pb(retry));
            self
        }

        /// Per attempt, connect to last byte (default 15 s).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.spec.timeout_ms = Some(timeout.as_millis() as u64);
            self
        }

        /// Attempts in flight at once per engine replica (default 10).
        pub fn concurrency(mut self, n: u32) -> Self {
            self.spec.concurrency = Some(n);
            self
        }

        /// Deliveries per second across replicas (0: unlimited).
        pub fn rate_per_second(mut self, n: u32) -> Self {
            self.spec.rate_per_s = Some(n);
            self
        }

        /// Pause after `after_failures` consecutive failed attempts (0:
        /// never); once tripped, try one run after `probe_after` (zero:
        /// wait for an operator). URLs default to 20 and 5 minutes.
        pub fn breaker(mut self, after_failures: u32, probe_after: Duration) -> Self {
            self.spec.breaker = Some(breaker_pb(after_failures, probe_after));
            self
        }
    };
}

impl HttpSubscription {
    /// Deliver `event` (a name or a pattern such as `order.*`) to `url`.
    pub fn new(id: impl Into<String>, event: impl Into<String>, url: impl Into<String>) -> Self {
        HttpSubscription {
            spec: pb::SubscriptionSpec {
                id: id.into(),
                event: Some(event.into()),
                url: Some(url.into()),
                ..Default::default()
            },
        }
    }

    spec_setters!();

    /// Sign with this `whsec_` secret instead of a new random one (moving
    /// receivers over from another webhook sender).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.spec.secret = Some(secret.into());
        self
    }
}

impl SubscriptionUpdate {
    /// Change subscription `id`.
    pub fn new(id: impl Into<String>) -> Self {
        SubscriptionUpdate {
            spec: pb::SubscriptionSpec {
                id: id.into(),
                ..Default::default()
            },
        }
    }

    spec_setters!();

    /// Deliver another event or pattern.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.spec.event = Some(event.into());
        self
    }

    /// Deliver to another URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.spec.url = Some(url.into());
        self
    }
}

impl Client {
    /// Subscribe a URL to an event; the answer holds the signing secret,
    /// shown this once.
    pub async fn create_subscription(&self, sub: HttpSubscription) -> Result<CreatedSubscription> {
        let r = self
            .raw()
            .admin()
            .create_subscription(self.request(sub.spec))
            .await?
            .into_inner();
        Ok(CreatedSubscription {
            subscription: r.subscription.unwrap_or_default().into(),
            secret: r.secret,
        })
    }

    /// Change a subscription.
    pub async fn update_subscription(&self, update: SubscriptionUpdate) -> Result<Subscription> {
        Ok(self
            .raw()
            .admin()
            .update_subscription(self.request(update.spec))
            .await?
            .into_inner()
            .into())
    }

    /// One subscription.
    pub async fn subscription(&self, id: &str) -> Result<Subscription> {
        Ok(self
            .raw()
            .admin()
            .get_subscription(self.request(pb::SubscriptionRef { id: id.to_string() }))
            .await?
            .into_inner()
            .into())
    }

    /// Delete a subscription; its runs stay as they are.
    pub async fn delete_subscription(&self, id: &str) -> Result<()> {
        self.raw()
            .admin()
            .delete_subscription(self.request(pb::SubscriptionRef { id: id.to_string() }))
            .await?;
        Ok(())
    }

    /// A new signing secret for an HTTP subscriber; the old one keeps
    /// signing beside it for `overlap` (`None`: the engine's default, 24 h).
    pub async fn rotate_secret(&self, id: &str, overlap: Option<Duration>) -> Result<String> {
        Ok(self
            .raw()
            .admin()
            .rotate_subscription_secret(self.request(pb::RotateSecretRequest {
                id: id.to_string(),
                overlap_ms: overlap.map(|d| d.as_millis() as u64),
            }))
            .await?
            .into_inner()
            .secret)
    }
}
