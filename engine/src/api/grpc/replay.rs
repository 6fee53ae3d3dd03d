//! `ReplayService`: start, inspect and cancel replay jobs; read the archive.

use super::namespace;
use crate::engine::Engine;
use crate::model::ReplayJob;
use crate::model::ReplayStatus;
use crate::replay::ReplayRequest;
use fanout_proto::v1 as pb;
use fanout_proto::v1::replay_service_server::ReplayService;
use tonic::{Request, Response, Status};

pub struct ReplayApi {
    pub engine: Engine,
}

fn job(j: ReplayJob) -> pb::ReplayJob {
    pb::ReplayJob {
        id: j.id,
        status: j.status.to_string(),
        status_code: match j.status {
            ReplayStatus::Running => pb::ReplayStatus::Running,
            ReplayStatus::Completed => pb::ReplayStatus::Completed,
            ReplayStatus::Cancelled => pb::ReplayStatus::Cancelled,
        } as i32,
        event: j.event_pattern,
        from_ms: j.from_ms,
        to_ms: j.to_ms,
        tasks: j.tasks,
        filter_json: j.filter_json,
        dry_run: j.dry_run,
        rate_per_sec: j.rate_per_sec,
        skip_already_replayed: j.skip_already_replayed,
        events_total: j.events_total.max(0) as u64,
        events_scanned: j.events_scanned.max(0) as u64,
        events_replayed: j.events_replayed.max(0) as u64,
        runs_created: j.runs_created.max(0) as u64,
        by_task_json: serde_json::to_string(&j.by_task).unwrap_or_else(|_| "{}".into()),
        error: j.error,
        created_at_ms: j.created_at_ms,
        updated_at_ms: j.updated_at_ms,
        finished_at_ms: j.finished_at_ms,
    }
}

#[tonic::async_trait]
impl ReplayService for ReplayApi {
    async fn start_replay(
        &self,
        req: Request<pb::StartReplayRequest>,
    ) -> Result<Response<pb::ReplayJob>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let j = self
            .engine
            .start_replay(
                &ns,
                ReplayRequest {
                    event_pattern: r.event,
                    from_ms: r.from_ms,
                    to_ms: r.to_ms,
                    tasks: r.tasks,
                    filter_json: r.filter_json,
                    dry_run: r.dry_run,
                    rate_per_sec: r.rate_per_sec,
                    skip_already_replayed: r.skip_already_replayed,
                },
            )
            .await?;
        Ok(Response::new(job(j)))
    }

    async fn get_replay(
        &self,
        req: Request<pb::GetReplayRequest>,
    ) -> Result<Response<pb::ReplayJob>, Status> {
        let ns = namespace(&req)?;
        Ok(Response::new(job(self
            .engine
            .replay_status(&ns, &req.into_inner().id)
            .await?)))
    }

    async fn cancel_replay(
        &self,
        req: Request<pb::GetReplayRequest>,
    ) -> Result<Response<pb::ReplayJob>, Status> {
        let ns = namespace(&req)?;
        Ok(Response::new(job(self
            .engine
            .cancel_replay(&ns, &req.into_inner().id)
            .await?)))
    }

    async fn list_archived(
        &self,
        req: Request<pb::ListArchivedRequest>,
    ) -> Result<Response<pb::ListArchivedResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let to = if r.to_ms == 0 { i64::MAX } else { r.to_ms };
        let after =
            (!r.after_id.is_empty()).then(|| (r.after_ms.max(0) as u64, r.after_id.clone()));
        let limit = if r.limit == 0 { 100 } else { r.limit as usize };
        let events = self
            .engine
            .archived(&ns, &r.event, r.from_ms, to, after, limit)
            .await?;
        Ok(Response::new(pb::ListArchivedResponse {
            events: events
                .into_iter()
                .map(|e| pb::ArchivedEvent {
                    event_id: e.event_id,
                    event: e.event_name,
                    version: e.version,
                    payload_json: e.payload,
                    tags: e.tags,
                    ordering_key: e.ordering_key,
                    idempotency_key: e.idempotency_key,
                    fan_out_count: e.fan_out_count,
                    published_at_ms: e.published_at_ms as i64,
                    publisher_run_id: e.publisher_run_id,
                    traceparent: e.traceparent,
                })
                .collect(),
        }))
    }
}
