//! Scatter-gather and durable waits.
//!
//! From a client: `event.publish_and_wait(&client, &payload).await` returns
//! every subscriber's outcome; `client.wait(id)` picks a wait up again.
//!
//! Inside a task, `ctx.publish_and_wait`, `ctx.sleep` and `ctx.step` make
//! the handler durable:
//!
//! * `publish_and_wait` and `sleep` **suspend** the run: the engine marks it
//!   waiting and the worker drops it (slot and memory freed). When the wait
//!   ends the engine schedules the run again and the SDK re-invokes the
//!   handler from the top with a *journal*; calls already in the journal
//!   return their recorded results at once instead of running again.
//! * `step("name", f)` runs `f` once and records its result; on a
//!   re-invocation it returns the recorded value without running `f`.
//!
//! ## Determinism rules
//! Between the start of the handler and its last `publish_and_wait` /
//! `sleep`, code runs again on every re-invocation. So:
//! 1. Put side effects (emails, charges, writes, random ids, clock reads
//!    that decide anything) inside `ctx.step`, with a name unique in the
//!    handler.
//! 2. Call `publish_and_wait` / `sleep` in the same order every time (don't
//!    branch on anything that is not itself a step result or the payload):
//!    the journal matches them by call order.
//! 3. Don't catch the error these calls return when they suspend: return it
//!    (`?`). It is how the worker learns the run was parked.
//! 4. Step values must round-trip through JSON.

use crate::client::{Client, PublishOptions};
use crate::context::{Backend, TaskContext};
use crate::error::{Error, Result};
use crate::event::{Event, EventPayload};
use crate::results::Results;
use crate::task_error::TaskError;
use fanout_proto::v1 as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

/// What a publish-and-wait returns.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitResult {
    /// The published event's id.
    pub event_id: String,
    /// The waitpoint that gathered the runs' results.
    pub waitpoint_id: String,
    /// `Completed` or `TimedOut`.
    pub status: WaitpointStatus,
    /// One outcome per subscribed task.
    pub results: Results,
}

/// A waitpoint's state.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitpointState {
    /// The waitpoint's id.
    pub id: String,
    /// `runs`, `time` or `token`.
    pub kind: String,
    /// Where it stands.
    pub status: WaitpointStatus,
    /// For `runs` waitpoints: the event whose runs it waits for.
    pub event_id: String,
    /// For `runs` waitpoints: one outcome per task so far.
    pub results: Results,
    /// Token data (JSON), `Null` otherwise.
    pub data: serde_json::Value,
}

impl WaitpointState {
    /// Completed or timed out: it will not change any more.
    pub fn is_final(&self) -> bool {
        self.status != WaitpointStatus::Waiting
    }
}

/// Where a waitpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitpointStatus {
    /// Not final yet.
    Waiting,
    /// Every child final, the time reached, or the token completed.
    Completed,
    /// The deadline passed first.
    TimedOut,
    /// A status this SDK does not know (a newer engine).
    Unknown,
}

impl WaitpointStatus {
    /// The wire spelling (`waiting`, `completed`, `timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            WaitpointStatus::Waiting => "waiting",
            WaitpointStatus::Completed => "completed",
            WaitpointStatus::TimedOut => "timed_out",
            WaitpointStatus::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for WaitpointStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The enum, or (from an engine older than the enum) the string.
fn status_of(w: &pb::WaitpointInfo) -> WaitpointStatus {
    match pb::WaitpointStatus::try_from(w.status_code) {
        Ok(pb::WaitpointStatus::Waiting) => WaitpointStatus::Waiting,
        Ok(pb::WaitpointStatus::Completed) => WaitpointStatus::Completed,
        Ok(pb::WaitpointStatus::TimedOut) => WaitpointStatus::TimedOut,
        _ => match w.status.as_str() {
            "waiting" => WaitpointStatus::Waiting,
            "completed" => WaitpointStatus::Completed,
            "timed_out" => WaitpointStatus::TimedOut,
            _ => WaitpointStatus::Unknown,
        },
    }
}

fn state(w: pb::WaitpointInfo) -> Result<WaitpointState> {
    let status = status_of(&w);
    Ok(WaitpointState {
        results: if w.results_json.is_empty() {
            Results::default()
        } else {
            serde_json::from_str(&w.results_json)?
        },
        data: if w.data_json.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&w.data_json)?
        },
        id: w.id,
        kind: w.kind,
        status,
        event_id: w.event_id,
    })
}

/// How long one call waits on the engine before asking again.
const LONG_POLL_MS: u64 = 30_000;

impl Client {
    pub(crate) fn waitpoints(
        &self,
    ) -> pb::waitpoint_service_client::WaitpointServiceClient<tonic::transport::Channel> {
        pb::waitpoint_service_client::WaitpointServiceClient::new(self.channel())
            .max_decoding_message_size(256 << 20)
    }

    /// Wait until waitpoint `id` is final (long polls; the engine answers
    /// when notified). Safe to call again after a disconnect.
    ///
    /// A lost connection (the engine restarting, a replica going away) is
    /// retried with backoff for up to 60 s (`RECONNECT_FOR`) since the last
    /// answer: the waitpoint is durable, so waiting again loses nothing.
    pub async fn wait(&self, id: &str) -> Result<WaitpointState> {
        let mut reconnect = Reconnect::new();
        loop {
            let w = match self
                .waitpoints()
                .wait(self.request(pb::WaitRequest {
                    id: id.into(),
                    wait_ms: LONG_POLL_MS,
                }))
                .await
            {
                Ok(w) => {
                    reconnect = Reconnect::new();
                    w.into_inner()
                }
                Err(s) => {
                    reconnect.again(Error::from(s)).await?;
                    continue;
                }
            };
            let s = state(w)?;
            if s.is_final() {
                return Ok(s);
            }
        }
    }

    /// A waitpoint's current state.
    pub async fn get_waitpoint(&self, id: &str) -> Result<WaitpointState> {
        state(
            self.waitpoints()
                .get_waitpoint(self.request(pb::GetWaitpointRequest { id: id.into() }))
                .await?
                .into_inner(),
        )
    }

    /// A token waitpoint to be completed from outside.
    pub async fn create_token(&self, timeout: Option<Duration>) -> Result<WaitpointState> {
        let req = pb::CreateTokenRequest {
            timeout_ms: timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
            parent: None,
        };
        state(
            self.waitpoints()
                .create_token(self.request(req))
                .await?
                .into_inner(),
        )
    }

    /// Complete a token waitpoint with data.
    pub async fn complete_token(
        &self,
        id: &str,
        data: &serde_json::Value,
    ) -> Result<WaitpointState> {
        let req = pb::CompleteTokenRequest {
            id: id.into(),
            data_json: data.to_string(),
        };
        state(
            self.waitpoints()
                .complete_token(self.request(req))
                .await?
                .into_inner(),
        )
    }

    /// Publish JSON and wait for every run's final outcome.
    ///
    /// Safe across a lost connection: without an idempotency key of the
    /// caller's, the call makes one, so sending it again (after the engine
    /// restarts, say) returns the original event and waitpoint instead of
    /// publishing twice; then it keeps waiting on that waitpoint.
    pub async fn publish_and_wait_json(
        &self,
        event: &str,
        payload: &serde_json::Value,
        mut opts: PublishOptions,
        timeout: Option<Duration>,
    ) -> Result<WaitResult> {
        if opts.idempotency_key.is_none() {
            opts.idempotency_key = Some(format!("paw:{:032x}", rand::random::<u128>()));
        }
        let mut reconnect = Reconnect::new();
        let resp = loop {
            match self
                .publish_and_wait_raw(event, payload, opts.clone(), timeout, None)
                .await
            {
                Ok(r) => break r,
                Err(e) => reconnect.again(e).await?,
            }
        };
        let event_id = resp.published.map(|p| p.event_id).unwrap_or_default();
        let s = match resp.waitpoint {
            Some(w) => state(w)?,
            None => self.wait(&resp.waitpoint_id).await?,
        };
        Ok(WaitResult {
            event_id,
            waitpoint_id: resp.waitpoint_id,
            status: s.status,
            results: s.results,
        })
    }

    async fn publish_and_wait_raw(
        &self,
        event: &str,
        payload: &serde_json::Value,
        opts: PublishOptions,
        timeout: Option<Duration>,
        parent: Option<pb::ParentRun>,
    ) -> Result<pb::PublishAndWaitResponse> {
        let req = pb::PublishAndWaitRequest {
            publish: Some(pb::PublishRequest {
                event: event.into(),
                payload_json: payload.to_string(),
                idempotency_key: opts.idempotency_key.unwrap_or_default(),
                ordering_key: opts.ordering_key.unwrap_or_default(),
                tags: opts.tags,
            }),
            timeout_ms: timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
            // A client waits in the same call (then `wait` if still open);
            // a task is suspended instead.
            wait_ms: if parent.is_none() { LONG_POLL_MS } else { 0 },
            parent,
        };
        Ok(self
            .waitpoints()
            .publish_and_wait(self.request(req))
            .await?
            .into_inner())
    }
}

impl<T: EventPayload> Event<T> {
    /// Publish and wait for every subscriber; `.timeout(d)` bounds the wait
    /// (unfinished runs then report `error: "timeout"` and go on).
    /// The builder owns a client clone: its future is `Send + 'static`.
    pub fn publish_and_wait(&self, client: &Client, payload: &T) -> PublishAndWait {
        PublishAndWait {
            client: client.clone(),
            event: self.name().to_string(),
            payload: self.validate(payload),
            timeout: None,
            opts: PublishOptions::default(),
        }
    }
}

/// A publish-and-wait being built; `.await` sends it and waits.
#[must_use = "does nothing until awaited"]
pub struct PublishAndWait {
    client: Client,
    event: String,
    payload: Result<serde_json::Value>,
    timeout: Option<Duration>,
    opts: PublishOptions,
}

impl PublishAndWait {
    /// Give up waiting after `t` (the runs keep going).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Runs with the same ordering key run one at a time, in publish order.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.opts.ordering_key = Some(key.into());
        self
    }
    /// Repeats within the engine's window return the original event and
    /// wait on its waitpoint (one is made up when none is given).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.opts.idempotency_key = Some(key.into());
        self
    }
    /// Labels stored with the event.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.opts.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

impl IntoFuture for PublishAndWait {
    type Output = Result<WaitResult>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<WaitResult>> + Send + 'static>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let payload = self.payload?;
            self.client
                .publish_and_wait_json(&self.event, &payload, self.opts, self.timeout)
                .await
        })
    }
}

pub(crate) fn sdk_err(e: Error) -> TaskError {
    match e {
        Error::InvalidPayload { .. } | Error::InvalidArgument(_) | Error::NotFound { .. } => {
            TaskError::fatal(e.to_string())
        }
        other => TaskError::retryable(other.to_string()),
    }
}

impl TaskContext {
    /// The engine this run's calls go to, and the lease holder to name.
    fn engine(&self) -> Option<(&Client, &str)> {
        match &self.backend {
            Backend::Engine { client, worker_id } => Some((client, worker_id)),
            Backend::Offline(_) => None,
        }
    }

    fn parent(&self, key: &str, worker_id: &str) -> pb::ParentRun {
        pb::ParentRun {
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            step_key: key.into(),
            worker_id: worker_id.into(),
        }
    }

    /// The waitpoint an earlier execution suspended on at `key`; the
    /// attempt's span links to it (this attempt resumes from it).
    fn journaled_waitpoint(&self, key: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.journal_get(key)?).ok()?;
        crate::trace::link_waitpoint(&self.span, &v);
        v["waitpoint_id"].as_str().map(str::to_string)
    }

    /// Results of a journaled waitpoint: at once if final; otherwise (rare:
    /// this execution is a retry that raced its own suspension) wait here.
    async fn finished(
        &self,
        client: &Client,
        id: &str,
    ) -> std::result::Result<WaitpointState, TaskError> {
        let s = client.get_waitpoint(id).await.map_err(sdk_err)?;
        if s.is_final() {
            Ok(s)
        } else {
            client.wait(id).await.map_err(sdk_err)
        }
    }

    /// Run `f` once per run: its result is recorded, and a re-invocation
    /// returns the recorded value without running `f` again.
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> std::result::Result<T, TaskError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, TaskError>>,
    {
        let key = format!("step:{name}");
        if let Some(v) = self.journal_get(&key) {
            return serde_json::from_str(&v).map_err(|e| {
                TaskError::fatal(format!(
                    "journaled step '{name}' no longer deserializes: {e}"
                ))
            });
        }
        let value = f().await?;
        let json = serde_json::to_string(&value).map_err(|e| {
            TaskError::fatal(format!("step '{name}' result does not serialize: {e}"))
        })?;
        let stored = match self.engine() {
            Some((client, worker_id)) => {
                let req = pb::RecordStepRequest {
                    run_id: self.run_id.clone(),
                    attempt: self.attempt,
                    key: key.clone(),
                    value_json: json,
                    worker_id: worker_id.into(),
                };
                client
                    .waitpoints()
                    .record_step(client.request(req))
                    .await
                    .map_err(|s| sdk_err(s.into()))?
                    .into_inner()
                    .value_json
            }
            None => json,
        };
        self.journal_put(&key, &stored);
        serde_json::from_str(&stored).map_err(|e| TaskError::fatal(e.to_string()))
    }

    /// Publish `payload` and suspend this run until every subscriber is done;
    /// returns their outcomes (on the re-invocation, at once).
    pub async fn publish_and_wait<T: EventPayload>(
        &self,
        event: &Event<T>,
        payload: &T,
    ) -> std::result::Result<Results, TaskError> {
        let key = format!("wait:{}", self.next_seq("wait"));
        let value = event.validate(payload).map_err(sdk_err)?;
        let (client, worker_id) = match &self.backend {
            Backend::Engine { client, worker_id } => (client, worker_id),
            Backend::Offline(stubs) => return stubs.publish_and_wait(event.name(), value),
        };
        if let Some(id) = self.journaled_waitpoint(&key) {
            return Ok(self.finished(client, &id).await?.results);
        }
        let resp = client
            .publish_and_wait_raw(
                event.name(),
                &value,
                PublishOptions::default(),
                None,
                Some(self.parent(&key, worker_id)),
            )
            .await
            .map_err(sdk_err)?;
        if let Some(w) = resp.waitpoint {
            return Ok(state(w).map_err(sdk_err)?.results);
        }
        if resp.suspended {
            return Err(TaskError::suspended(resp.waitpoint_id));
        }
        Ok(self.finished(client, &resp.waitpoint_id).await?.results)
    }

    /// Suspend this run for `duration` (durably: no worker slot is held).
    pub async fn sleep(&self, duration: Duration) -> std::result::Result<(), TaskError> {
        let key = format!("sleep:{}", self.next_seq("sleep"));
        let (client, worker_id) = match &self.backend {
            Backend::Engine { client, worker_id } => (client, worker_id),
            Backend::Offline(stubs) => {
                stubs.slept(duration);
                return Ok(());
            }
        };
        if let Some(id) = self.journaled_waitpoint(&key) {
            self.finished(client, &id).await?;
            return Ok(());
        }
        let req = pb::SleepRequest {
            parent: Some(self.parent(&key, worker_id)),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        };
        let w = client
            .waitpoints()
            .sleep(client.request(req))
            .await
            .map_err(|s| sdk_err(s.into()))?
            .into_inner();
        Err(TaskError::suspended(w.id))
    }
}

/// How long a call keeps reconnecting after the connection to the engine
/// is lost before it reports [`Error::Unavailable`].
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Retries of a call whose connection was lost: backoff from 100 ms to
/// 2 s, for at most [`RECONNECT_FOR`].
struct Reconnect {
    since: tokio::time::Instant,
    backoff: Duration,
}

impl Reconnect {
    fn new() -> Self {
        Reconnect {
            since: tokio::time::Instant::now(),
            backoff: Duration::from_millis(100),
        }
    }

    /// Wait before trying again if `e` is a lost connection and time is
    /// left; otherwise give `e` back.
    async fn again(&mut self, e: Error) -> Result<()> {
        if !matches!(e, Error::Unavailable(_)) || self.since.elapsed() >= RECONNECT_FOR {
            return Err(e);
        }
        tracing::debug!(error = %e, "connection to the engine lost; retrying");
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
        Ok(())
    }
}
