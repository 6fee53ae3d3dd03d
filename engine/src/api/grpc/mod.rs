//! gRPC: the services of `fanout.v1` over the engine, plus the standard
//! health service. Each handler reads the namespace from metadata,
//! translates the request, calls [`Engine`], and maps errors through
//! `From<Error> for Status` (in `error.rs`) — nowhere else.

mod admin;
mod convert;
mod events;
pub mod keys;
mod replay;
mod waitpoints;
mod workers;

use crate::engine::Engine;
use crate::error::{Error, Result};
use fanout_proto::v1::admin_service_server::AdminServiceServer;
use fanout_proto::v1::event_service_server::EventServiceServer;
use fanout_proto::v1::replay_service_server::ReplayServiceServer;
use fanout_proto::v1::waitpoint_service_server::WaitpointServiceServer;
use fanout_proto::v1::worker_service_server::WorkerServiceServer;
use tokio_util::sync::CancellationToken;

/// The namespace a call is for: `x-fanout-namespace`, default `default`.
/// The caller's W3C trace context (`traceparent` / `tracestate` metadata).
pub fn trace_context<T>(req: &tonic::Request<T>) -> crate::telemetry::TraceContext {
    crate::telemetry::TraceContext::from_headers(|k| {
        req.metadata().get(k).and_then(|v| v.to_str().ok())
    })
}

pub fn namespace<T>(req: &tonic::Request<T>) -> Result<String> {
    let ns = match req.metadata().get(fanout_proto::NAMESPACE_HEADER) {
        None => return Ok(fanout_proto::DEFAULT_NAMESPACE.to_string()),
        Some(v) => v.to_str().map_err(|_| {
            Error::InvalidArgument(format!(
                "metadata {}: must be ASCII",
                fanout_proto::NAMESPACE_HEADER
            ))
        })?,
    };
    crate::routing::schema::check_identifier("namespace", ns)?;
    Ok(ns.to_string())
}

type Response = axum::http::Response<tonic::body::Body>;

/// The server's layers: request decoding errors get their proper codes.
pub type Layers = tower::layer::util::Stack<
    super::gate::GrpcGate,
    tower::layer::util::Stack<
        tower::util::MapResponseLayer<fn(Response) -> Response>,
        tower::layer::util::Identity,
    >,
>;

/// tonic answers an undecodable request with INTERNAL and an over-long one
/// with OUT_OF_RANGE; both are the client's fault: INVALID_ARGUMENT and
/// RESOURCE_EXHAUSTED (what gRPC specifies for a message over the
/// receiver's limit). Such errors end the call before any message, so the
/// status is in the response headers.
fn request_error_codes(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let code = h
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let message = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .replace("%20", " ");
    let fixed = match code {
        Some(c)
            if c == tonic::Code::OutOfRange as i32
                && message.contains("message length too large") =>
        {
            Some(tonic::Code::ResourceExhausted)
        }
        Some(c) if c == tonic::Code::Internal as i32 && message.contains("failed to decode") => {
            Some(tonic::Code::InvalidArgument)
        }
        _ => None,
    };
    if let Some(c) = fixed {
        h.insert("grpc-status", axum::http::HeaderValue::from(c as i32));
    }
    resp
}

/// Build the tonic router with every service. Each connection carries at
/// most `limits.grpc_max_streams_per_connection` streams and is pinged
/// every `limits.grpc_keepalive_ms`; a peer that does not answer a ping in
/// that time is dropped (a frozen or vanished worker).
pub fn router(
    engine: Engine,
    cancel: CancellationToken,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<tonic::transport::server::Router<Layers>> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // Serving from the start: `run` only builds the router once backends are up.
    drop(health_reporter);
    let limits = &engine.config().limits;
    let keepalive = std::time::Duration::from_millis(limits.grpc_keepalive_ms.max(1_000));
    let fix: fn(Response) -> Response = request_error_codes;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| Error::InvalidArgument(format!("tls: {e}")))?;
    }
    Ok(builder
        .max_concurrent_streams(Some(limits.grpc_max_streams_per_connection))
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .tcp_keepalive(Some(std::time::Duration::from_secs(60)))
        .layer(tower::util::MapResponseLayer::new(fix))
        .layer(super::gate::GrpcGate {
            keyring: engine.keyring().clone(),
        })
        .add_service(health_service)
        .add_service(EventServiceServer::new(events::EventsApi {
            engine: engine.clone(),
        }))
        .add_service(WorkerServiceServer::new(workers::WorkersApi {
            engine: engine.clone(),
            cancel,
        }))
        .add_service(WaitpointServiceServer::new(waitpoints::WaitpointsApi {
            engine: engine.clone(),
        }))
        .add_service(ReplayServiceServer::new(replay::ReplayApi {
            engine: engine.clone(),
        }))
        .add_service(AdminServiceServer::new(admin::AdminApi { engine })))
}
