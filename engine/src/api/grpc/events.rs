//! `EventService`: define, get, list, publish.

use super::{convert, namespace};
use crate::engine::{Engine, PublishInput};
use fanout_proto::v1 as pb;
use fanout_proto::v1::event_service_server::EventService;
use tonic::{Request, Response, Status};

pub struct EventsApi {
    pub engine: Engine,
}

#[tonic::async_trait]
impl EventService for EventsApi {
    async fn define_event(
        &self,
        req: Request<pb::DefineEventRequest>,
    ) -> Result<Response<pb::DefineEventResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let options = convert::options(r.disable_dlq, r.rate_limit);
        let (def, created) = self
            .engine
            .define_event(&ns, &r.name, &r.schema_json, &r.description, &options)
            .await?;
        Ok(Response::new(pb::DefineEventResponse {
            event: Some(convert::event_def(def)),
            created,
        }))
    }

    async fn get_event(
        &self,
        req: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::EventDefinition>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let version = (r.version != 0).then_some(r.version);
        let def = self.engine.get_event(&ns, &r.name, version).await?;
        Ok(Response::new(convert::event_def(def)))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let ns = namespace(&req)?;
        let events = self.engine.list_events(&ns).await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(convert::event_def).collect(),
        }))
    }

    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let ns = namespace(&req)?;
        let trace = super::trace_context(&req);
        let r = req.into_inner();
        let p = self
            .engine
            .publish(
                &ns,
                PublishInput {
                    event: r.event,
                    payload_json: r.payload_json,
                    idempotency_key: r.idempotency_key,
                    ordering_key: r.ordering_key,
                    tags: r.tags,
                    publisher_run_id: String::new(),
                    trace,
                },
            )
            .await?;
        Ok(Response::new(convert::published(p)))
    }

    async fn test_filter(
        &self,
        req: Request<pb::TestFilterRequest>,
    ) -> Result<Response<pb::TestFilterResponse>, Status> {
        let r = req.into_inner();
        let matches = Engine::test_filter(&r.pattern_json, &r.payload_json)?;
        Ok(Response::new(pb::TestFilterResponse { matches }))
    }
}
