//! # Fanout for Rust
//!
//! Define an event with a typed payload, subscribe tasks to it, publish with
//! one call; the engine creates one durable run per subscriber, retries it
//! and dead-letters it.
//!
//! ```no_run
//! use fanout::{Client, Event, Task, TaskError, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! #[serde(rename_all = "camelCase")]
//! struct OrderCreated { order_id: String, amount: f64, customer_id: String }
//!
//! # async fn demo() -> Result<(), fanout::Error> {
//! let client = Client::connect("http://127.0.0.1:7070").await?;
//! let order_created = Event::<OrderCreated>::new("order.created");
//! let receipt = Task::new("send-receipt", &order_created, |o: OrderCreated, _ctx| async move {
//!     Ok::<_, TaskError>(format!("receipt for {}", o.order_id))
//! });
//! let worker = Worker::new(client.clone()).task(receipt).start().await?;
//! order_created.publish(&client, &OrderCreated { order_id: "o-1".into(), amount: 500.0, customer_id: "c-1".into() }).await?;
//! worker.shutdown().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod error;
mod event;
mod task;
mod waitpoint;
mod worker;

pub use client::{Client, EventOptions, PublishOptions, Published, RunRef};
pub use error::{EntityKind, Error, ErrorCode, Result, Violation};
pub use event::{Event, EventPayload, Publish};
pub use task::{Retry, Task, TaskContext, TaskError, TaskResultExt};
pub use waitpoint::{
    PublishAndWait, Results, TaskOutcome, WaitResult, WaitpointState, WaitpointStatus,
};
pub use worker::{Worker, WorkerHandle};

/// The generated gRPC types, for admin calls.
pub use fanout_proto::v1 as proto;
/// Re-exported so users derive `JsonSchema` with the same version.
pub use schemars;
