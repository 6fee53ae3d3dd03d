//! Generated types and service stubs for the `fanout.v1` gRPC API.
//!
//! The engine implements the servers, the SDK and CLI use the clients; both
//! depend on this crate so the wire contract lives in exactly one place.

#![warn(missing_docs)]

/// `fanout.v1`: the only API version so far (generated; its docs are the
/// comments of `fanout/v1/fanout.proto`).
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fanout.v1");
}

pub mod error_detail;
pub mod traceparent;

/// Metadata key that selects the namespace of a call.
pub const NAMESPACE_HEADER: &str = "x-fanout-namespace";
/// Metadata key (and HTTP header) carrying seconds to wait after a rate limit.
pub const RETRY_AFTER_HEADER: &str = "retry-after";
/// Namespace used when a call names none.
pub const DEFAULT_NAMESPACE: &str = "default";
