//! [`Client`]: one gRPC channel to the engine, with a namespace.

use crate::admin::{EventDefinition, RateLimit, Subscription};
use crate::error::{Error, Result};
use fanout_proto::v1 as pb;
use fanout_proto::v1::admin_service_client::AdminServiceClient;
use fanout_proto::v1::event_service_client::EventServiceClient;
use fanout_proto::v1::replay_service_client::ReplayServiceClient;
use fanout_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Options for one publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Repeats within the engine's window return the original event.
    pub idempotency_key: Option<String>,
    /// Runs with the same key execute one at a time, in publish order.
    pub ordering_key: Option<String>,
    /// Labels stored with the event (searchable in the archive).
    pub tags: Vec<String>,
}

/// What a publish created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's id (time ordered).
    pub event_id: String,
    /// The schema version the payload was validated against.
    pub event_version: u32,
    /// `(run id, task id)` for each run created.
    pub runs: Vec<RunRef>,
    /// True when an idempotency key matched an earlier publish.
    pub deduplicated: bool,
}

/// A run created by a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// The run's id.
    pub run_id: String,
    /// The subscribed task the run is for.
    pub task_id: String,
    /// The consumer group the run was chosen for ("" when ungrouped).
    pub consumer_group: String,
}

/// Per-event settings sent with a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOptions {
    /// Dead runs go to the dead-letter queue (default true).
    pub dlq: bool,
    /// At most `limit` publishes per `window`, optionally per value of a
    /// top-level payload field.
    pub rate_limit: Option<RateLimit>,
    /// What the event means, shown in `events list`.
    pub description: String,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            dlq: true,
            rate_limit: None,
            description: String::new(),
        }
    }
}

/// A connection to a Fanout engine. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    namespace: String,
    /// Sent only when chosen: with none, the engine acts in the key's own
    /// namespace (a bound key) or `default`.
    namespace_chosen: bool,
    /// `Bearer fo_…`, sent with every call.
    authorization: Option<tonic::metadata::AsciiMetadataValue>,
    url: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("api_key", &self.authorization.as_ref().map(|_| "fo_…"))
            .finish()
    }
}

/// TLS for `https://` URLs beyond the defaults (the system's root
/// certificates, no client certificate).
#[derive(Clone, Default)]
pub struct Tls {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("custom_ca", &self.ca_pem.is_some())
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

impl Tls {
    /// Trust this CA (PEM) instead of the system's roots (a private CA,
    /// a self-signed engine).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Present this certificate and key (PEM) to an engine that asks for
    /// client certificates (`--tls-client-ca`).
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// From the files named by `FANOUT_CA_CERT`, `FANOUT_CLIENT_CERT` and
    /// `FANOUT_CLIENT_KEY` (each optional).
    pub fn from_env() -> Result<Self> {
        let read = |var: &str| -> Result<Option<Vec<u8>>> {
            match std::env::var(var) {
                Ok(path) if !path.is_empty() => std::fs::read(&path).map(Some).map_err(|e| {
                    Error::InvalidArgument(format!("{var}={path}: cannot read it: {e}"))
                }),
                _ => Ok(None),
            }
        };
        let mut tls = Tls::default();
        if let Some(ca) = read("FANOUT_CA_CERT")? {
            tls = tls.ca_pem(ca);
        }
        match (read("FANOUT_CLIENT_CERT")?, read("FANOUT_CLIENT_KEY")?) {
            (Some(c), Some(k)) => tls = tls.client_identity(c, k),
            (None, None) => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "FANOUT_CLIENT_CERT and FANOUT_CLIENT_KEY go together".into(),
                ));
            }
        }
        Ok(tls)
    }
}

impl Client {
    /// Connect to `url` (e.g. `http://127.0.0.1:7070`, or `https://…`
    /// verified against the system's roots), namespace `default`.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::connect_with_tls(url, Tls::default()).await
    }

    /// [`Client::connect`] with TLS settings (a private CA, a client
    /// certificate); they apply to `https://` URLs.
    pub async fn connect_with_tls(url: impl Into<String>, tls: Tls) -> Result<Self> {
        let url = url.into();
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true)
            // A vanished engine (a dropped network, a frozen host) is
            // noticed in ~40 s rather than at the next TCP timeout, and the
            // worker reconnects elsewhere.
            .http2_keep_alive_interval(std::time::Duration::from_secs(20))
            .keep_alive_timeout(std::time::Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let mut cfg = tonic::transport::ClientTlsConfig::new();
            cfg = match &tls.ca_pem {
                Some(ca) => cfg.ca_certificate(tonic::transport::Certificate::from_pem(ca)),
                None => cfg.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                cfg = cfg.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(cfg).map_err(|e| Error::Connect {
                url: url.clone(),
                message: format!("tls: {e}"),
            })?;
        }
        let channel = endpoint.connect().await.map_err(|e| Error::Connect {
            url: url.clone(),
            message: format!("{e} (is the engine running? try `fanout dev`)"),
        })?;
        Ok(Client {
            channel,
            namespace: fanout_proto::DEFAULT_NAMESPACE.into(),
            namespace_chosen: false,
            authorization: None,
            url,
        })
    }

    /// Send this API key (`fo_…`, from `fanout keys create`) with every
    /// call. A key bound to a namespace acts there unless
    /// [`Client::with_namespace`] names it (naming another is refused).
    ///
    /// ```no_run
    /// # async fn demo() -> fanout::Result<()> {
    /// let client = fanout::Client::connect("https://fanout.internal:7070")
    ///     .await?
    ///     .api_key(std::env::var("FANOUT_API_KEY").unwrap_or_default())?;
    /// # Ok(()) }
    /// ```
    pub fn api_key(mut self, key: impl AsRef<str>) -> Result<Self> {
        let key = key.as_ref().trim();
        if key.is_empty() {
            self.authorization = None;
            return Ok(self);
        }
        if !key.starts_with("fo_") || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::InvalidArgument(
                "api key is malformed: expected fo_ followed by letters and digits (from `fanout keys create`)".into(),
            ));
        }
        self.authorization =
            Some(format!("Bearer {key}").parse().map_err(|_| {
                Error::InvalidArgument("api key is not a valid header value".into())
            })?);
        Ok(self)
    }

    /// Connect to `FANOUT_SERVER` (default `http://127.0.0.1:7070`), in
    /// `FANOUT_NAMESPACE` (default: the key's namespace, else `default`),
    /// with `FANOUT_API_KEY` when set.
    pub async fn from_env() -> Result<Self> {
        let url = std::env::var("FANOUT_SERVER").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
        let client = Client::connect_with_tls(url, Tls::from_env()?)
            .await?
            .api_key(std::env::var("FANOUT_API_KEY").unwrap_or_default())?;
        Ok(match std::env::var("FANOUT_NAMESPACE") {
            Ok(ns) if !ns.is_empty() => client.with_namespace(ns)?,
            _ => client,
        })
    }

    /// The same connection, acting in another namespace: 1-200 characters
    /// of `A-Z a-z 0-9 _ - . :` (an invalid name is an error here, never a
    /// silent fall-back to `default`).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Result<Self> {
        let ns = namespace.into();
        let ok = !ns.is_empty()
            && ns.len() <= 200
            && ns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "namespace '{ns}' is invalid: expected 1-200 characters of A-Z, a-z, 0-9, '_', '-', '.', ':'"
            )));
        }
        self.namespace = ns;
        self.namespace_chosen = true;
        Ok(self)
    }

    /// The namespace calls are made in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The engine address this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A request carrying this client's namespace.
    pub(crate) fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if self.namespace_chosen
            && let Ok(v) = self.namespace.parse()
        {
            req.metadata_mut().insert(fanout_proto::NAMESPACE_HEADER, v);
        }
        if let Some(auth) = &self.authorization {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        crate::trace::inject(req.metadata_mut());
        req
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(crate) fn events(&self) -> EventServiceClient<Channel> {
        EventServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    pub(crate) fn workers(&self) -> WorkerServiceClient<Channel> {
        WorkerServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    /// The generated gRPC clients, for what the typed API does not cover
    /// (their requests need [`RawClient::request`] to carry the namespace).
    pub fn raw(&self) -> RawClient<'_> {
        RawClient { client: self }
    }

    /// Store `tasks`' subscriptions without running them (a deploy step):
    /// each typed task's event must be defined with its type's schema
    /// ([`Error::SchemaMismatch`] otherwise). Runs are created for them from
    /// the next publish on, and wait until a worker serves the tasks.
    ///
    /// ```no_run
    /// # use fanout::{Client, Event, Task};
    /// # #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)] struct Order { id: String }
    /// # async fn demo(client: Client) -> fanout::Result<()> {
    /// let placed = Event::<Order>::new("order.placed");
    /// let receipt = Task::new("receipt", &placed, |o: Order, _| async move { Ok(o.id) });
    /// let audit = Task::on_pattern("audit", "order.#", |v, _| async move { Ok(v) });
    /// placed.define(&client).await?;
    /// client.register(&[&receipt, &audit]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn register(&self, tasks: &[&dyn crate::task::AnyTask]) -> Result<Vec<String>> {
        let specs: Vec<_> = tasks.iter().map(|t| t.spec().clone()).collect();
        crate::worker::check_schemas(self, &specs, false).await?;
        let req = pb::RegisterTasksRequest {
            tasks: specs.iter().map(|t| t.registration()).collect(),
        };
        Ok(self
            .workers()
            .register_tasks(self.request(req))
            .await?
            .into_inner()
            .task_ids)
    }

    /// Define an event from a JSON Schema; returns `(version, created)`.
    pub async fn define_event(
        &self,
        name: &str,
        schema: &serde_json::Value,
        description: &str,
    ) -> Result<(u32, bool)> {
        let opts = EventOptions {
            description: description.into(),
            ..EventOptions::default()
        };
        self.define_event_with(name, schema, &opts).await
    }

    /// Define an event with its options; returns `(version, created)`.
    pub async fn define_event_with(
        &self,
        name: &str,
        schema: &serde_json::Value,
        opts: &EventOptions,
    ) -> Result<(u32, bool)> {
        let resp = self
            .events()
            .define_event(self.request(pb::DefineEventRequest {
                name: name.into(),
                schema_json: schema.to_string(),
                description: opts.description.clone(),
                disable_dlq: !opts.dlq,
                rate_limit: opts.rate_limit.as_ref().map(|r| pb::RateLimit {
                    limit: r.limit,
                    window_ms: u64::try_from(r.window.as_millis()).unwrap_or(u64::MAX),
                    key_field: r.key_field.clone().unwrap_or_default(),
                }),
            }))
            .await?
            .into_inner();
        Ok((resp.event.map(|e| e.version).unwrap_or(0), resp.created))
    }

    /// Evaluate a filter pattern against a payload on the engine.
    pub async fn test_filter(
        &self,
        pattern: &serde_json::Value,
        payload: &serde_json::Value,
    ) -> Result<bool> {
        Ok(self
            .events()
            .test_filter(self.request(pb::TestFilterRequest {
                pattern_json: pattern.to_string(),
                payload_json: payload.to_string(),
            }))
            .await?
            .into_inner()
            .matches)
    }

    /// Pause a task's subscription: its runs are still created at publish,
    /// none is claimed until [`Client::resume`]; running attempts finish.
    pub async fn pause(&self, task_id: &str) -> Result<()> {
        self.set_paused(task_id, true).await
    }

    /// Resume a paused subscription: its queued runs are claimed again, in
    /// order.
    pub async fn resume(&self, task_id: &str) -> Result<()> {
        self.set_paused(task_id, false).await
    }

    async fn set_paused(&self, task_id: &str, paused: bool) -> Result<()> {
        self.raw()
            .admin()
            .set_subscription_paused(self.request(pb::SetSubscriptionPausedRequest {
                task_id: task_id.to_string(),
                paused,
            }))
            .await?;
        Ok(())
    }

    /// Publish a JSON payload to an event by name (untyped; see
    /// [`crate::Event::publish`] for the typed form).
    pub async fn publish_json(
        &self,
        event: &str,
        payload: &serde_json::Value,
        opts: PublishOptions,
    ) -> Result<Published> {
        self.publish_text(event, payload.to_string(), opts).await
    }

    /// Publish JSON text as given.
    pub async fn publish_text(
        &self,
        event: &str,
        payload_json: String,
        opts: PublishOptions,
    ) -> Result<Published> {
        let resp = self
            .events()
            .publish(self.request(pb::PublishRequest {
                event: event.into(),
                payload_json,
                idempotency_key: opts.idempotency_key.unwrap_or_default(),
                ordering_key: opts.ordering_key.unwrap_or_default(),
                tags: opts.tags,
            }))
            .await?
            .into_inner();
        Ok(Published {
            event_id: resp.event_id,
            event_version: resp.event_version,
            runs: resp
                .runs
                .into_iter()
                .map(|r| RunRef {
                    run_id: r.run_id,
                    task_id: r.task_id,
                    consumer_group: r.consumer_group,
                })
                .collect(),
            deduplicated: resp.deduplicated,
        })
    }

    /// Every event's latest definition.
    pub async fn event_definitions(&self) -> Result<Vec<EventDefinition>> {
        Ok(self
            .events()
            .list_events(self.request(pb::ListEventsRequest {}))
            .await?
            .into_inner()
            .events
            .into_iter()
            .map(EventDefinition::from)
            .collect())
    }

    /// One event definition: `version` or (`None`) the latest.
    pub async fn event_definition(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<EventDefinition> {
        Ok(self
            .events()
            .get_event(self.request(pb::GetEventRequest {
                name: name.into(),
                version: version.unwrap_or(0),
            }))
            .await?
            .into_inner()
            .into())
    }

    /// Every task subscription in the namespace.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        Ok(self
            .raw()
            .admin()
            .list_subscriptions(self.request(pb::ListSubscriptionsRequest::default()))
            .await?
            .into_inner()
            .subscriptions
            .into_iter()
            .map(Subscription::from)
            .collect())
    }
}

/// The generated gRPC clients on a [`Client`]'s channel. Requests made
/// through them carry the namespace only when built with
/// [`RawClient::request`].
#[derive(Debug, Clone, Copy)]
pub struct RawClient<'a> {
    client: &'a Client,
}

impl RawClient<'_> {
    /// A request carrying the client's namespace.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        self.client.request(msg)
    }

    /// The admin service (runs, dead letters, subscriptions).
    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.client.channel()).max_decoding_message_size(64 << 20)
    }

    /// The replay service (jobs, archive reads).
    pub fn replay(&self) -> ReplayServiceClient<Channel> {
        ReplayServiceClient::new(self.client.channel()).max_decoding_message_size(256 << 20)
    }

    /// The event service (definitions, publish, filters).
    pub fn events(&self) -> EventServiceClient<Channel> {
        self.client.events()
    }

    /// The waitpoint service.
    pub fn waitpoints(
        &self,
    ) -> fanout_proto::v1::waitpoint_service_client::WaitpointServiceClient<Channel> {
        self.client.waitpoints()
    }
}
