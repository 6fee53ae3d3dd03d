//! # Fanout for Rust
//!
//! Define an event with a typed payload, subscribe tasks to it, publish with
//! one call; the engine creates one durable run per subscriber, retries it,
//! dead-letters it, and can wait for all of them.
//!
//! ## Define
//! An [`Event<T>`] carries a name and the JSON Schema derived from `T`.
//! Defining it on the engine is deliberate ([`Event::define`], or
//! `fanout events define`); a worker only checks that its tasks' types
//! derive the defined schema ([`Error::SchemaMismatch`] otherwise) unless
//! told to define them ([`Worker::define_events`]).
//!
//! ## Subscribe
//! A [`Task<I, O>`] is an id, the event it is on and an async handler from
//! the payload `I` to an output `O`. Handlers return `Result<O, TaskError>`:
//! `?` works on any error (`std`, `anyhow`), keeping its cause chain;
//! [`TaskResultExt::fatal`] skips the remaining attempts and
//! [`TaskResultExt::retry_after`] delays the next one. Shared state is
//! given once ([`Worker::with_state`]) and borrowed with
//! [`TaskContext::state`]. [`Client::register`] stores subscriptions
//! without running a worker.
//!
//! ```no_run
//! use fanout::{Client, Event, Task, TaskResultExt, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! #[serde(rename_all = "camelCase")]
//! struct OrderCreated { order_id: String, amount: f64 }
//!
//! struct Mailer { from: String }
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let client = Client::connect("http://127.0.0.1:7070").await?;
//! let order_created = Event::<OrderCreated>::new("order.created");
//! order_created.define(&client).await?;
//!
//! let receipt = Task::new("send-receipt", &order_created, |o: OrderCreated, ctx| async move {
//!     let mailer = ctx.state::<Mailer>()?;
//!     let amount = u64::try_from(o.amount as i64).fatal()?; // no retry helps
//!     Ok(format!("{} sent a receipt for {} ({amount})", mailer.from, o.order_id))
//! });
//! let worker = Worker::new(client.clone())
//!     .with_state(Mailer { from: "shop@example.com".into() })
//!     .task(receipt)
//!     .start()
//!     .await?;
//!
//! // Publish: one durable run per subscriber.
//! let order = OrderCreated { order_id: "o-1".into(), amount: 500.0 };
//! let published = order_created.publish(&client, &order).ordering_key("cust-1").await?;
//! println!("event {} created {} runs", published.event_id, published.runs.len());
//! worker.shutdown().await?; // drains: running handlers finish first
//! # Ok(()) }
//! ```
//!
//! ## Publish and wait
//! [`Event::publish_and_wait`] publishes and waits for every subscriber;
//! each result is read back typed through its task:
//!
//! ```no_run
//! # use fanout::{Client, Event, Task};
//! # #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)] struct Order { id: String }
//! # async fn demo(client: Client) -> anyhow::Result<()> {
//! let placed = Event::<Order>::new("order.placed");
//! let reserve = Task::new("reserve", &placed, |o: Order, _| async move { Ok(vec![o.id]) });
//! let done = placed
//!     .publish_and_wait(&client, &Order { id: "o-1".into() })
//!     .timeout(std::time::Duration::from_secs(30))
//!     .await?;
//! let reserved: Vec<String> = done.results.get(&reserve).expect("subscribed")?;
//! # Ok(()) }
//! ```
//!
//! Inside a handler, [`TaskContext::publish_and_wait`] and
//! [`TaskContext::sleep`] suspend the run durably (no worker slot held),
//! and [`TaskContext::step`] runs a side effect once per run; see the
//! determinism rules on [`TaskContext::step`]'s module.
//!
//! ## Errors
//! Every call returns [`Error`], decoded from the engine's structured
//! detail: [`Error::InvalidPayload`] lists the schema violations,
//! [`Error::NotFound`] says what is missing, [`Error::RateLimited`] says
//! when to retry, [`Error::Unavailable`] is safe to retry.
//!
//! ## Operate
//! [`Client::runs`], [`Client::dead_letters`], [`Client::archive`],
//! [`Client::start_replay`], [`Client::event_definitions`] and
//! [`Client::subscriptions`] are the typed admin API (streams page by
//! cursor). [`Client::pause`] / [`Client::resume`] hold a subscription's
//! runs; [`Client::create_subscription`] subscribes a URL instead of a task
//! ([`HttpSubscription`]: signed webhooks the engine delivers, with a
//! breaker that pauses a failing endpoint).
//!
//! ## Test your handlers
//! [`testing::TestContext`] runs one handler in-process without an engine:
//! `task.call(payload, &TestContext::new()).await`.

#![warn(missing_docs)]

mod admin;
mod client;
mod context;
mod error;
mod event;
mod logs;
mod results;
mod task;
mod task_error;
pub mod testing;
mod trace;
mod waitpoint;
mod worker;

pub use admin::{
    ArchiveQuery, ArchivedEvent, Attempt, Breaker, CreatedSubscription, DeadLetterQuery, DlqState,
    Endpoint, EventDefinition, HttpSubscription, RateLimit, Replay, ReplaySpec, ReplayStatus, Run,
    RunDetail, RunLog, RunQuery, RunStatus, Subscription, SubscriptionState, SubscriptionUpdate,
};
pub use client::{Client, EventOptions, PublishOptions, Published, RawClient, RunRef, Tls};
pub use context::TaskContext;
pub use error::{EntityKind, Error, ErrorCode, Result, Violation};
pub use event::{Event, EventPayload, Publish};
pub use logs::{LogLayer, log_layer};
pub use results::{Results, TaskFailure, TaskOutcome};
pub use task::{AnyTask, Retry, Task};
pub use task_error::{TaskError, TaskResultExt};
pub use waitpoint::{PublishAndWait, WaitResult, WaitpointState, WaitpointStatus};
pub use worker::{Worker, WorkerHandle};

/// The generated gRPC types, for [`Client::raw`].
pub use fanout_proto::v1 as proto;
/// Re-exported so users derive `JsonSchema` with the same version.
pub use schemars;
