//! What a subscription delivers to and how it is kept healthy: an HTTP
//! endpoint (a signed webhook) instead of an SDK task, the subscription's
//! state (active, paused by an operator, tripped by its breaker, probing,
//! disabled by its endpoint) and the breaker's settings.

use serde::{Deserialize, Serialize};

/// Where a subscription stands. Runs are created at publish in every
/// state — nothing is lost — but only `Active` and `Probing` ones are
/// claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    #[default]
    Active,
    /// Paused by an operator (`fanout subscriptions pause`).
    Paused,
    /// Paused by its circuit breaker after consecutive failed attempts.
    Tripped,
    /// The breaker's half-open state: one trial attempt at a time; its
    /// success resumes the subscription, its failure trips it again.
    Probing,
    /// The endpoint answered `410 Gone`: paused until an operator resumes.
    Disabled,
}

wire_names!(SubscriptionState {
    Active = "active",
    Paused = "paused",
    Tripped = "tripped",
    Probing = "probing",
    Disabled = "disabled",
});

impl SubscriptionState {
    /// Whether its runs wait unclaimed.
    pub fn holds_runs(self) -> bool {
        matches!(
            self,
            SubscriptionState::Paused | SubscriptionState::Tripped | SubscriptionState::Disabled
        )
    }
}

/// The circuit breaker of a subscription (tasks and endpoints alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Breaker {
    /// Trip after this many consecutive failed attempts across runs (0: never).
    pub after_failures: u32,
    /// Once tripped, try one delivery after this long (0: stay paused until
    /// an operator resumes).
    pub probe_after_ms: u64,
}

impl Breaker {
    /// The default for HTTP subscribers: trip after 20 consecutive
    /// failures, probe every 5 minutes.
    pub const ENDPOINT_DEFAULT: Breaker = Breaker {
        after_failures: 20,
        probe_after_ms: 300_000,
    };
}

/// An HTTP endpoint a subscription's runs are POSTed to (Standard
/// Webhooks: `webhook-id` = run id, `webhook-timestamp`,
/// `webhook-signature`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http://` or `https://`; checked again on the resolved address at
    /// connect time.
    pub url: String,
    /// Per attempt, connect to last body byte.
    pub timeout_ms: u64,
    /// Attempts in flight at once, per engine replica.
    pub concurrency: u32,
    /// Deliveries per second across replicas (0: unlimited).
    pub rate_per_s: u32,
    /// The signing secrets; never shown after creation, never logged.
    pub secrets: Secrets,
}

/// `whsec_`-prefixed base64 keys: the current one and, during a rotation's
/// overlap, the previous one (both sign, so receivers can switch over).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    pub current: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous: String,
    /// The previous secret signs until this instant (epoch ms).
    #[serde(default)]
    pub previous_until_ms: i64,
}

impl Secrets {
    /// The secrets that sign at `now_ms`: the current one, then the
    /// previous one while its overlap lasts.
    pub fn signing(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(
            (!self.previous.is_empty() && now_ms < self.previous_until_ms)
                .then_some(self.previous.as_str()),
        )
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("concurrency", &self.concurrency)
            .field("rate_per_s", &self.rate_per_s)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Endpoint {
    /// Defaults for what `subscriptions create` leaves out.
    pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
    pub const DEFAULT_CONCURRENCY: u32 = 10;

    /// A webhook-style retry schedule over hours, not seconds: 5 s, 25 s,
    /// 2 min, 10 min, 52 min, 4.3 h, then 10 h (8 attempts, ~15.6 h).
    pub const DEFAULT_RETRY: super::RetryPolicy = super::RetryPolicy {
        max_attempts: 8,
        initial_backoff_ms: 5_000,
        max_backoff_ms: 36_000_000,
        multiplier: 5.0,
    };

    /// The stored form (the `subscriptions.endpoint_json` column).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether a save makes a new subscription or changes an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    Create,
    Update,
}
