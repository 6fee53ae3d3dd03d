//! Subscriptions an operator manages: HTTP subscribers (create, update,
//! delete, rotate the signing secret), every subscription's state (pause,
//! resume, the circuit breaker's trips and probes), and the operational
//! events (`fanout.subscription.*`, `fanout.run.dead`) those changes publish.
//! The circuit breaker that moves states on failures is `breaker.rs`.

use super::{Engine, PublishInput};
use crate::error::{EntityKind, Error, Result};
use crate::limits;
use crate::model::*;
use crate::routing::schema;
use base64::Engine as _;
use serde_json::json;

/// What `subscriptions create` / `update` give: unset fields keep their
/// value (update) or take the default (create).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionSpec {
    pub id: String,
    /// An event name or name pattern.
    pub event: Option<String>,
    pub url: Option<String>,
    pub filter_json: Option<String>,
    pub consumer_group: Option<String>,
    pub retry: Option<RetryPolicy>,
    pub timeout_ms: Option<u64>,
    pub concurrency: Option<u32>,
    pub rate_per_s: Option<u32>,
    pub breaker: Option<Breaker>,
    /// A `whsec_` secret to sign with (default: a new random one).
    pub secret: Option<String>,
}

/// The reserved operational events: name, schema.
pub const OPERATIONAL_EVENTS: &[(&str, &str)] = &[
    (SUBSCRIPTION_PAUSED, STATE_SCHEMA),
    (SUBSCRIPTION_RESUMED, STATE_SCHEMA),
    (SUBSCRIPTION_DISABLED, STATE_SCHEMA),
    (RUN_DEAD, RUN_DEAD_SCHEMA),
];
pub const SUBSCRIPTION_PAUSED: &str = "fanout.subscription.paused";
pub const SUBSCRIPTION_RESUMED: &str = "fanout.subscription.resumed";
pub const SUBSCRIPTION_DISABLED: &str = "fanout.subscription.disabled";
pub const RUN_DEAD: &str = "fanout.run.dead";
const STATE_SCHEMA: &str = r#"{"type":"object","required":["subscription","state","reason"],"properties":{"subscription":{"type":"string"},"state":{"type":"string"},"reason":{"type":"string"},"url":{"type":"string"}}}"#;
const RUN_DEAD_SCHEMA: &str = r#"{"type":"object","required":["run_id","subscription","event","error"],"properties":{"run_id":{"type":"string"},"subscription":{"type":"string"},"event":{"type":"string"},"error":{"type":"string"}}}"#;

/// Largest URL an endpoint may have.
const MAX_URL_BYTES: usize = 2048;

impl Engine {
    /// One subscription of `ns`.
    pub async fn subscription(&self, ns: &str, id: &str) -> Result<Subscription> {
        self.store()
            .list_subscriptions(Some(ns))
            .await?
            .into_iter()
            .find(|s| s.task_id == id)
            .ok_or_else(|| no_subscription(ns, id))
    }

    /// Create an HTTP subscriber; returns it and its signing secret (shown
    /// this once).
    pub async fn create_subscription(
        &self,
        ns: &str,
        spec: SubscriptionSpec,
    ) -> Result<(Subscription, String)> {
        let (Some(event), Some(url)) = (&spec.event, &spec.url) else {
            return Err(Error::InvalidArgument(
                "an HTTP subscription needs event (a name or pattern) and url".into(),
            ));
        };
        let secret = match &spec.secret {
            Some(s) => s.clone(),
            None => new_secret(),
        };
        let endpoint = Endpoint {
            url: url.clone(),
            timeout_ms: spec.timeout_ms.unwrap_or(Endpoint::DEFAULT_TIMEOUT_MS),
            concurrency: spec.concurrency.unwrap_or(Endpoint::DEFAULT_CONCURRENCY),
            rate_per_s: spec.rate_per_s.unwrap_or(0),
            secrets: Secrets {
                current: secret.clone(),
                previous: String::new(),
                previous_until_ms: 0,
            },
        };
        let sub = Subscription {
            namespace: ns.to_string(),
            task_id: spec.id.clone(),
            event: event.clone(),
            filter_json: spec.filter_json.clone().unwrap_or_default(),
            consumer_group: spec.consumer_group.clone().unwrap_or_default(),
            retry: spec.retry.unwrap_or(Endpoint::DEFAULT_RETRY),
            lease_ms: endpoint_lease(&endpoint),
            updated_at_ms: now_ms(),
            state: SubscriptionState::Active,
            breaker: spec.breaker.unwrap_or(Breaker::ENDPOINT_DEFAULT),
            endpoint: Some(endpoint),
        };
        self.check_subscription("subscription", &sub).await?;
        if !self
            .store()
            .save_subscription(&sub, SaveMode::Create)
            .await?
        {
            return Err(Error::AlreadyExists(format!(
                "subscription '{}' already exists in namespace '{ns}' (a task or an HTTP subscriber); update it or pick another id",
                spec.id
            )));
        }
        self.subscriptions_updated(ns);
        tracing::info!(namespace = %ns, subscription = %sub.task_id, event = %sub.event, "http subscription created");
        self.audit(
            ns,
            "subscription.create",
            &sub.task_id,
            json!({"event": sub.event, "url": url}),
        )
        .await;
        Ok((sub, secret))
    }

    /// Change an existing subscription. An HTTP subscriber takes every
    /// field; a task's subscription is its worker's to define, so only its
    /// breaker can be set here.
    pub async fn update_subscription(
        &self,
        ns: &str,
        spec: SubscriptionSpec,
    ) -> Result<Subscription> {
        let mut sub = self.subscription(ns, &spec.id).await?;
        match &mut sub.endpoint {
            None => {
                if spec.event.is_some()
                    || spec.url.is_some()
                    || spec.filter_json.is_some()
                    || spec.consumer_group.is_some()
                    || spec.retry.is_some()
                    || spec.timeout_ms.is_some()
                    || spec.concurrency.is_some()
                    || spec.rate_per_s.is_some()
                    || spec.secret.is_some()
                {
                    return Err(Error::FailedPrecondition(format!(
                        "'{}' is a task's subscription: its worker defines it when it registers; only the breaker can be changed here",
                        spec.id
                    )));
                }
            }
            Some(ep) => {
                if let Some(v) = &spec.url {
                    ep.url = v.clone();
                }
                if let Some(v) = spec.timeout_ms {
                    ep.timeout_ms = v;
                }
                if let Some(v) = spec.concurrency {
                    ep.concurrency = v;
                }
                if let Some(v) = spec.rate_per_s {
                    ep.rate_per_s = v;
                }
                if spec.secret.is_some() {
                    return Err(Error::InvalidArgument(
                        "secret: use rotate-secret to change a subscription's secret".into(),
                    ));
                }
                sub.lease_ms = endpoint_lease(ep);
            }
        }
        if let Some(v) = spec.event {
            sub.event = v;
        }
        if let Some(v) = spec.filter_json {
            sub.filter_json = v;
        }
        if let Some(v) = spec.consumer_group {
            sub.consumer_group = v;
        }
        if let Some(v) = spec.retry {
            sub.retry = v;
        }
        if let Some(v) = spec.breaker {
            sub.breaker = v;
        }
        sub.updated_at_ms = now_ms();
        self.check_subscription("subscription", &sub).await?;
        if !self
            .store()
            .save_subscription(&sub, SaveMode::Update)
            .await?
        {
            return Err(no_subscription(ns, &spec.id));
        }
        self.subscriptions_updated(ns);
        self.audit(
            ns,
            "subscription.update",
            &sub.task_id,
            json!({"event": sub.event}),
        )
        .await;
        Ok(sub)
    }

    /// Delete a subscription. Its runs stay where they are (queued ones
    /// wait for a subscription of the same id).
    pub async fn delete_subscription(&self, ns: &str, id: &str) -> Result<()> {
        if !self.store().delete_subscription(ns, id).await? {
            return Err(no_subscription(ns, id));
        }
        self.subscriptions_updated(ns);
        tracing::info!(namespace = %ns, subscription = %id, "subscription deleted");
        self.audit(ns, "subscription.delete", id, json!({})).await;
        Ok(())
    }

    /// Give an HTTP subscriber a new secret; the old one keeps signing
    /// beside it for `overlap_ms` (default: the configured overlap).
    /// Returns the new secret and when the old one stops signing.
    pub async fn rotate_secret(
        &self,
        ns: &str,
        id: &str,
        overlap_ms: Option<u64>,
    ) -> Result<(String, i64)> {
        let mut sub = self.subscription(ns, id).await?;
        let Some(ep) = &mut sub.endpoint else {
            return Err(Error::FailedPrecondition(format!(
                "'{id}' is a task's subscription; only HTTP subscribers have a signing secret"
            )));
        };
        let overlap = overlap_ms.unwrap_or(self.config().webhooks.rotation_overlap_ms);
        if overlap > 30 * 24 * 3_600_000 {
            return Err(Error::InvalidArgument(format!(
                "overlap_ms: {overlap} is over the limit of 30 days"
            )));
        }
        let secret = new_secret();
        let until = now_ms().saturating_add(overlap as i64);
        ep.secrets = Secrets {
            previous: std::mem::replace(&mut ep.secrets.current, secret.clone()),
            current: secret.clone(),
            previous_until_ms: until,
        };
        sub.updated_at_ms = now_ms();
        if !self
            .store()
            .save_subscription(&sub, SaveMode::Update)
            .await?
        {
            return Err(no_subscription(ns, id));
        }
        self.subscriptions_updated(ns);
        tracing::info!(namespace = %ns, subscription = %id, overlap_ms = overlap, "signing secret rotated");
        self.audit(
            ns,
            "subscription.rotate_secret",
            id,
            json!({"overlap_ms": overlap}),
        )
        .await;
        Ok((secret, until))
    }

    /// An operator pauses (`true`) or resumes a subscription. Paused: its
    /// runs are still created at publish, and none is claimed until it is
    /// resumed; running attempts finish. Resuming (from paused, tripped,
    /// probing or disabled) drains the waiting runs in order.
    pub async fn set_paused(&self, ns: &str, id: &str, paused: bool) -> Result<()> {
        let to = if paused {
            SubscriptionState::Paused
        } else {
            SubscriptionState::Active
        };
        if !self
            .set_subscription_state(ns, id, to, &[], "operator")
            .await?
        {
            return Err(no_subscription(ns, id));
        }
        Ok(())
    }

    /// Move a subscription's state (only from `from`, empty: any), then
    /// wake sessions and publish the operational event. `false` when it is
    /// absent or was in another state.
    pub(crate) async fn set_subscription_state(
        &self,
        ns: &str,
        id: &str,
        to: SubscriptionState,
        from: &[SubscriptionState],
        reason: &str,
    ) -> Result<bool> {
        if !self.store().set_state(ns, id, to, from).await? {
            return Ok(false);
        }
        self.subscriptions_updated(ns);
        if !to.holds_runs() {
            self.wakeup().namespace(ns);
        }
        tracing::info!(namespace = %ns, subscription = %id, state = %to, reason, "subscription state set");
        self.audit(
            ns,
            "subscription.state",
            id,
            json!({"state": to.as_str(), "reason": reason}),
        )
        .await;
        let name = match to {
            SubscriptionState::Active => Some(SUBSCRIPTION_RESUMED),
            SubscriptionState::Paused | SubscriptionState::Tripped => Some(SUBSCRIPTION_PAUSED),
            SubscriptionState::Disabled => Some(SUBSCRIPTION_DISABLED),
            SubscriptionState::Probing => None,
        };
        if let Some(name) = name {
            let url = self
                .registry()
                .subscriptions(ns)
                .await
                .ok()
                .and_then(|subs| {
                    subs.iter()
                        .find(|s| s.sub.task_id == id)
                        .and_then(|s| s.sub.endpoint.as_ref().map(|e| e.url.clone()))
                })
                .unwrap_or_default();
            self.emit(
                ns,
                name,
                json!({"subscription": id, "state": to.as_str(), "reason": reason, "url": url}),
            );
        }
        Ok(true)
    }

    /// A run died: tell `fanout.run.dead`'s subscribers.
    pub fn run_died(&self, ns: &str, run_id: &str, task: &str, event: &str, error: &str) {
        self.emit(
            ns,
            RUN_DEAD,
            json!({"run_id": run_id, "subscription": task, "event": event,
                   "error": crate::limits::truncate(error.to_string(), 4096)}),
        );
    }

    /// Publish an operational event in the background, if anything
    /// subscribes to it (so a dead-run storm with no listener costs no
    /// writes). Best effort: a crash before it commits loses the
    /// notification, never the state change it reports.
    fn emit(&self, ns: &str, name: &'static str, payload: serde_json::Value) {
        let engine = self.clone();
        let ns = ns.to_string();
        tokio::spawn(async move {
            let Ok(subs) = engine.registry().subscriptions(&ns).await else {
                return;
            };
            if subs.route(name, &payload, "", "").is_empty() {
                return;
            }
            let out = async {
                engine.ensure_operational_event(&ns, name).await?;
                engine
                    .publish_inner(
                        &ns,
                        PublishInput {
                            event: name.to_string(),
                            payload_json: payload.to_string(),
                            ..Default::default()
                        },
                        None,
                    )
                    .await
            }
            .await;
            if let Err(e) = out {
                tracing::warn!(namespace = %ns, event = name, error = %e, "operational event not published");
            }
        });
    }

    /// Define a reserved `fanout.*` event in `ns` if it is not yet.
    pub(super) async fn ensure_operational_event(&self, ns: &str, name: &str) -> Result<()> {
        let Some((_, schema_json)) = OPERATIONAL_EVENTS.iter().find(|(n, _)| *n == name) else {
            return Err(Error::not_found(
                EntityKind::Event,
                name,
                format!(
                    "'{name}' is in the reserved 'fanout.' namespace of names but is not one of Fanout's operational events ({})",
                    OPERATIONAL_EVENTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if self.registry().event(ns, name).await.is_ok() {
            return Ok(());
        }
        let value = schema::parse_json("schema_json", schema_json)?;
        self.store()
            .define_event(
                ns,
                name,
                schema_json,
                &schema::canonical(&value),
                "Fanout operational event",
                &EventOptions::default(),
            )
            .await?;
        self.registry().invalidate_events(Some(ns));
        Ok(())
    }

    /// Check an HTTP subscriber's endpoint settings.
    pub(super) fn check_endpoint(&self, label: &str, ep: &Endpoint) -> Result<()> {
        if ep.url.len() > MAX_URL_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{label}.url is {} bytes, over the limit of {MAX_URL_BYTES}",
                ep.url.len()
            )));
        }
        let url = reqwest::Url::parse(&ep.url).map_err(|e| {
            Error::InvalidArgument(format!(
                "{label}.url '{}' is not a URL: {e}; expected e.g. https://example.com/hooks",
                limits::truncate(ep.url.clone(), 200)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::InvalidArgument(format!(
                "{label}.url '{}': expected an http:// or https:// URL with a host",
                ep.url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::InvalidArgument(format!(
                "{label}.url: credentials in the URL are not allowed (they would be shown and logged); the endpoint verifies the signature instead"
            )));
        }
        if let Some(ip) = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        } && let Err(why) = crate::netguard::Policy::of(&self.config().webhooks).allows(ip)
        {
            return Err(Error::InvalidArgument(format!(
                "{label}.url: {ip} is {why}; this engine delivers only to public addresses (allow_private_endpoints opens the others)"
            )));
        }
        if !(100..=300_000).contains(&ep.timeout_ms) {
            return Err(Error::InvalidArgument(format!(
                "{label}.timeout_ms: {} is out of range 100..=300000",
                ep.timeout_ms
            )));
        }
        if !(1..=1000).contains(&ep.concurrency) {
            return Err(Error::InvalidArgument(format!(
                "{label}.concurrency: {} is out of range 1..=1000",
                ep.concurrency
            )));
        }
        if ep.rate_per_s > 100_000 {
            return Err(Error::InvalidArgument(format!(
                "{label}.rate_per_s: {} is over the limit of 100000 (0: unlimited)",
                ep.rate_per_s
            )));
        }
        check_secret(&format!("{label}.secret"), &ep.secrets.current)
    }
}

impl Engine {
    /// Drop the cached subscriptions of `ns` and tell the webhook
    /// supervisor.
    fn subscriptions_updated(&self, ns: &str) {
        self.registry().invalidate_subscriptions(Some(ns));
        self.inner.subscriptions_changed.notify_one();
    }
}

/// The lease of an HTTP attempt: its timeout plus room for the rate
/// limiter's wait, so a waiting delivery is not reaped.
fn endpoint_lease(ep: &Endpoint) -> u64 {
    ep.timeout_ms + 30_000
}

fn no_subscription(ns: &str, id: &str) -> Error {
    Error::not_found(
        EntityKind::Task,
        id,
        format!("no subscription '{id}' in namespace '{ns}'"),
    )
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A secret is `whsec_` and base64 of 24 to 64 bytes.
fn check_secret(label: &str, s: &str) -> Result<()> {
    let ok = s.strip_prefix("whsec_").is_some_and(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .is_ok_and(|k| (24..=64).contains(&k.len()))
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{label}: expected 'whsec_' followed by the base64 of 24 to 64 random bytes"
        )))
    }
}
