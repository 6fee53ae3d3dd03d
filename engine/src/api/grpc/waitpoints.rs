//! `WaitpointService`: publish-and-wait, sleep, tokens, long-poll waits and
//! the run journal.

use super::{convert, namespace};
use crate::engine::{Engine, PublishInput};
use crate::error::Error;
use fanout_proto::v1 as pb;
use fanout_proto::v1::waitpoint_service_server::WaitpointService;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Longest a call is held waiting (`Wait`, `PublishAndWait.wait_ms`).
const MAX_WAIT_MS: u64 = 300_000;

pub struct WaitpointsApi {
    pub engine: Engine,
}

fn need_parent(p: Option<pb::ParentRun>, what: &str) -> Result<crate::model::ParentRef, Error> {
    convert::parent(p).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{what}: parent.run_id is required (only a running task can {what})"
        ))
    })
}

#[tonic::async_trait]
impl WaitpointService for WaitpointsApi {
    async fn publish_and_wait(
        &self,
        req: Request<pb::PublishAndWaitRequest>,
    ) -> Result<Response<pb::PublishAndWaitResponse>, Status> {
        let ns = namespace(&req)?;
        let trace = super::trace_context(&req);
        let r = req.into_inner();
        let p = r
            .publish
            .ok_or_else(|| Error::InvalidArgument("publish: required".into()))?;
        let input = PublishInput {
            event: p.event,
            payload_json: p.payload_json,
            idempotency_key: p.idempotency_key,
            ordering_key: p.ordering_key,
            tags: p.tags,
            publisher_run_id: r
                .parent
                .as_ref()
                .map(|p| p.run_id.clone())
                .unwrap_or_default(),
            trace,
        };
        let timeout = (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms));
        let hold = Duration::from_millis(r.wait_ms.min(MAX_WAIT_MS));
        let (published, done) = self
            .engine
            .publish_and_wait(&ns, input, timeout, convert::parent(r.parent), hold)
            .await?;
        Ok(Response::new(pb::PublishAndWaitResponse {
            waitpoint_id: published.waitpoint_id.clone(),
            suspended: published.suspended,
            published: Some(convert::published(published)),
            waitpoint: done.map(convert::waitpoint),
        }))
    }

    async fn sleep(
        &self,
        req: Request<pb::SleepRequest>,
    ) -> Result<Response<pb::WaitpointInfo>, Status> {
        let ns = namespace(&req)?;
        let trace = super::trace_context(&req);
        let r = req.into_inner();
        let parent = need_parent(r.parent, "sleep")?;
        let v = self
            .engine
            .sleep(&ns, parent, Duration::from_millis(r.duration_ms), trace)
            .await?;
        Ok(Response::new(convert::waitpoint(v)))
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::WaitpointInfo>, Status> {
        let ns = namespace(&req)?;
        let trace = super::trace_context(&req);
        let r = req.into_inner();
        let timeout = (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms));
        let v = self
            .engine
            .create_token(&ns, timeout, convert::parent(r.parent), trace)
            .await?;
        Ok(Response::new(convert::waitpoint(v)))
    }

    async fn complete_token(
        &self,
        req: Request<pb::CompleteTokenRequest>,
    ) -> Result<Response<pb::WaitpointInfo>, Status> {
        let ns = namespace(&req)?;
        let trace = super::trace_context(&req);
        let r = req.into_inner();
        let v = self
            .engine
            .complete_token(&ns, &r.id, &r.data_json, &trace)
            .await?;
        Ok(Response::new(convert::waitpoint(v)))
    }

    async fn get_waitpoint(
        &self,
        req: Request<pb::GetWaitpointRequest>,
    ) -> Result<Response<pb::WaitpointInfo>, Status> {
        let ns = namespace(&req)?;
        let v = self.engine.waitpoint(&ns, &req.into_inner().id).await?;
        Ok(Response::new(convert::waitpoint(v)))
    }

    async fn wait(
        &self,
        req: Request<pb::WaitRequest>,
    ) -> Result<Response<pb::WaitpointInfo>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let max = Duration::from_millis(if r.wait_ms == 0 {
            30_000
        } else {
            r.wait_ms.min(MAX_WAIT_MS)
        });
        let v = self.engine.wait(&ns, &r.id, max).await?;
        Ok(Response::new(convert::waitpoint(v)))
    }

    async fn record_step(
        &self,
        req: Request<pb::RecordStepRequest>,
    ) -> Result<Response<pb::RecordStepResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let step = crate::model::ParentRef {
            run_id: r.run_id,
            attempt: r.attempt,
            step_key: r.key,
            worker_id: r.worker_id,
        };
        let value_json = self.engine.record_step(&ns, &step, &r.value_json).await?;
        Ok(Response::new(pb::RecordStepResponse { value_json }))
    }
}
