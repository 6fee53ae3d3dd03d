//! Typed events: `Event<T>` carries the name and the JSON Schema derived
//! from `T` (schemars), and validates payloads before they leave the process.

use crate::client::{Client, EventOptions, PublishOptions, Published};
use crate::error::{Error, Result, Violation};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

/// What an event payload type must be: serializable both ways with a schema.
pub trait EventPayload: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static> EventPayload for T {}

/// A typed event definition.
pub struct Event<T> {
    name: String,
    schema: Arc<serde_json::Value>,
    validator: Arc<OnceLock<Option<jsonschema::Validator>>>,
    options: EventOptions,
    /// A `rate_limit_by` given before `rate_limit`.
    rate_key: Option<String>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Event<T> {
    fn clone(&self) -> Self {
        Event {
            name: self.name.clone(),
            schema: self.schema.clone(),
            validator: self.validator.clone(),
            options: self.options.clone(),
            rate_key: self.rate_key.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Event<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("name", &self.name).finish()
    }
}

impl<T: EventPayload> Event<T> {
    /// An event named `name` (lowercase, dot-separated: `order.created`)
    /// whose schema is derived from `T`.
    pub fn new(name: impl Into<String>) -> Self {
        let schema =
            serde_json::to_value(schemars::schema_for!(T)).unwrap_or(serde_json::Value::Bool(true));
        Event {
            name: name.into(),
            schema: Arc::new(schema),
            validator: Arc::default(),
            options: EventOptions::default(),
            rate_key: None,
            _t: PhantomData,
        }
    }

    /// At most `limit` publishes per `window` (enforced by the engine).
    pub fn rate_limit(mut self, limit: u32, window: std::time::Duration) -> Self {
        self.options.rate_limit = Some(crate::RateLimit {
            limit,
            window,
            key_field: self.rate_key.clone(),
        });
        self
    }

    /// Count the rate limit per value of this top-level payload field (in
    /// either order with [`Event::rate_limit`]; alone it limits nothing).
    pub fn rate_limit_by(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        if let Some(rl) = &mut self.options.rate_limit {
            rl.key_field = Some(field.clone());
        }
        self.rate_key = Some(field);
        self
    }

    /// Keep dead runs in the dead-letter queue (default true).
    pub fn dlq(mut self, enabled: bool) -> Self {
        self.options.dlq = enabled;
        self
    }

    /// A description shown by `fanout events show`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.options.description = text.into();
        self
    }

    /// The options sent with the definition.
    pub fn options(&self) -> &EventOptions {
        &self.options
    }

    /// The event's name, e.g. `order.created`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JSON Schema sent to the engine.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// Define (or redefine) the event on the engine; returns the version.
    pub async fn define(&self, client: &Client) -> Result<u32> {
        Ok(client
            .define_event_with(&self.name, &self.schema, &self.options)
            .await?
            .0)
    }

    /// Serialize and check `payload` against the schema, as the engine will.
    pub fn validate(&self, payload: &T) -> Result<serde_json::Value> {
        let value = serde_json::to_value(payload)?;
        let validator = self.validator.get_or_init(|| {
            jsonschema::options()
                .should_validate_formats(true)
                .build(&self.schema)
                .ok()
        });
        if let Some(v) = validator {
            let violations: Vec<Violation> = v
                .iter_errors(&value)
                .map(|e| Violation {
                    path: e.instance_path().as_str().to_string(),
                    message: e.to_string(),
                })
                .collect();
            if !violations.is_empty() {
                return Err(Error::InvalidPayload {
                    event: self.name.clone(),
                    version: None,
                    violation_count: violations.len(),
                    violations,
                });
            }
        }
        Ok(value)
    }

    /// Publish `payload`; `.await` it directly or set options first:
    /// `event.publish(&client, &p).ordering_key("cust-1").await`. The
    /// builder owns what it needs (a client clone, the validated payload),
    /// so its future is `Send + 'static`:
    /// `tokio::spawn(event.publish(&client, &p).into_future())`.
    pub fn publish(&self, client: &Client, payload: &T) -> Publish {
        Publish {
            client: client.clone(),
            event: self.name.clone(),
            payload: self.validate(payload),
            opts: PublishOptions::default(),
        }
    }
}

/// A publish being built; `.await` sends it.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish {
    client: Client,
    event: String,
    payload: Result<serde_json::Value>,
    opts: PublishOptions,
}

impl Publish {
    /// Publish at most once per key within the engine's idempotency window.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.opts.idempotency_key = Some(key.into());
        self
    }
    /// Runs with the same ordering key run one at a time, in publish order.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.opts.ordering_key = Some(key.into());
        self
    }
    /// Labels stored with the event.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.opts.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

impl IntoFuture for Publish {
    type Output = Result<Published>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Published>> + Send + 'static>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let payload = self.payload?;
            self.client
                .publish_json(&self.event, &payload, self.opts)
                .await
        })
    }
}
