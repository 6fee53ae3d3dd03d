//! The Fanout engine: durable fan-out of typed events to subscribed tasks.
//!
//! Start it with [`spawn`]: it validates a [`Config`], connects the
//! backends, and serves on already-bound listeners (so tests and benchmarks
//! bind port 0); [`Running::shutdown`] stops it and joins every task. The
//! map of the crate is in `ARCHITECTURE.md`; in short:
//!
//! - [`server`]: `spawn` and `Running`, the one entry point;
//! - [`engine`]: define / publish / complete, the core the APIs call;
//!   [`admin`]: the operator's reads and actions on it;
//! - [`routing`]: which subscribers an event reaches: registry cache,
//!   JSON Schema, content filters, event-name patterns;
//! - [`dispatch`]: worker sessions and leases;
//! - [`webhook`]: HTTP subscribers: the engine claims their runs through
//!   the same sessions and POSTs them, signed (Standard Webhooks);
//!   [`netguard`]: which addresses it may reach;
//! - [`wakeup`]: in-process signals: idle sessions, the deadline queue,
//!   waitpoint waiters;
//! - [`waitpoint`]: publish-and-wait, sleeps, tokens, the waiter hub;
//! - [`replay`]: replay jobs and their runner;
//! - [`storage`]: per-table store traits and their SQL implementation;
//! - [`archive`]: the event archive and the outbox shipper;
//! - [`ratelimit`]: sliding-window limiters;
//! - [`signal`]: the cross-replica signal vocabulary; [`peers`]: the
//!   Postgres listener acting on other replicas' signals;
//! - [`api`]: the gRPC and HTTP faces; [`auth`]: API keys, scopes, the
//!   caller of a request;
//! - [`config`], [`error`], [`limits`], [`model`], [`health`]: shared
//!   vocabulary.

pub mod activity;
pub mod admin;
pub mod api;
pub mod archive;
pub mod auth;
pub mod batch;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod netguard;
pub mod peers;
pub mod ratelimit;
pub mod replay;
pub mod roster;
pub mod routing;
pub mod server;
pub mod signal;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod waitpoint;
pub mod wakeup;
pub mod webhook;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
pub use server::{Backends, Listeners, Running, spawn, spawn_with};
