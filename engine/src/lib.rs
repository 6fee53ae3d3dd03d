//! The Fanout engine: durable fan-out of typed events to subscribed tasks.
//!
//! Start it with [`run`]: it takes already-bound listeners (so tests and
//! benchmarks bind port 0), a [`Config`], and a shutdown future. The map of
//! the crate is in `ARCHITECTURE.md`; in short:
//!
//! - [`engine`]: define / publish / complete, the core the APIs call;
//! - [`storage`]: the durable store trait and its SQL implementation;
//! - [`dispatch`] + [`wakeup`]: pushing runs to worker streams, leases;
//! - [`archive`]: the event archive and the outbox shipper;
//! - [`ratelimit`]: sliding-window limiters;
//! - [`grpc`], [`http`]: the network faces.

pub mod archive;
pub mod batch;
pub mod config;
pub mod deadlines;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod filter;
pub mod grpc;
pub mod health;
pub mod http;
pub mod limits;
pub mod model;
pub mod notify;
pub mod pattern;
pub mod ratelimit;
pub mod registry;
pub mod replay;
pub mod routing;
pub mod schema;
pub mod signal;
pub mod storage;
pub mod waitpoint;
pub mod wakeup;

pub mod server;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
pub use server::{Backends, Listeners, Running, spawn, spawn_with};
