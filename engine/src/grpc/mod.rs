//! gRPC: the services of `fanout.v1` over the engine, plus the standard
//! health service. Each handler reads the namespace from metadata,
//! translates the request, calls [`Engine`], and maps errors through
//! `From<Error> for Status` (in `error.rs`) — nowhere else.

mod admin;
mod convert;
mod events;
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
    crate::schema::check_identifier("namespace", ns)?;
    Ok(ns.to_string())
}

/// Build the tonic router with every service.
pub fn router(engine: Engine, cancel: CancellationToken) -> tonic::transport::server::Router {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // Serving from the start: `run` only builds the router once backends are up.
    drop(health_reporter);
    tonic::transport::Server::builder()
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
        .add_service(AdminServiceServer::new(admin::AdminApi { engine }))
}
