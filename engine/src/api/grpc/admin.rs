//! `AdminService`: list and inspect runs and subscriptions.

use super::{convert, namespace};
use crate::admin::DeadLetterAction;
use crate::engine::Engine;
use crate::error::Error;
use crate::model::{DeadLetterSelector, LogQuery, RunQuery, RunStatus};
use fanout_proto::v1 as pb;
use fanout_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    pub engine: Engine,
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let status = match r.status.as_str() {
            "" => None,
            s => Some(RunStatus::parse(s).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "status '{s}' is invalid: expected one of queued, running, retrying, completed, dead"
                ))
            })?),
        };
        let q = RunQuery {
            event: opt(r.event),
            event_id: opt(r.event_id),
            task: opt(r.task),
            status,
            ordering_key: opt(r.ordering_key),
            error_prefix: None,
            created_from_ms: (r.created_from_ms > 0).then_some(r.created_from_ms),
            created_to_ms: (r.created_to_ms > 0).then_some(r.created_to_ms),
            before: opt(r.before),
            limit: r.limit,
        };
        let runs = self.engine.list_runs(&ns, &q).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: convert::runs_page(runs),
        }))
    }

    async fn get_run_logs(
        &self,
        req: Request<pb::GetRunLogsRequest>,
    ) -> Result<Response<pb::GetRunLogsResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let q = LogQuery {
            attempt: (r.attempt > 0).then_some(r.attempt),
            after: (r.after_attempt > 0).then_some((r.after_attempt, r.after_seq)),
            limit: r.limit,
        };
        let lines = self.engine.run_logs(&ns, &r.run_id, &q).await?;
        Ok(Response::new(pb::GetRunLogsResponse {
            lines: lines.into_iter().map(convert::run_log_line).collect(),
        }))
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::RunDetail>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let d = self.engine.get_run(&ns, &id).await?;
        // Attempts of a long-retried run are bounded like any answer.
        let mut budget = crate::limits::MAX_RESPONSE_BYTES.saturating_sub(d.payload_json.len());
        let attempts = d
            .attempts
            .into_iter()
            .take_while(|a| {
                let size = a.output_json.len() + a.error.len() + 128;
                let fits = size <= budget;
                budget = budget.saturating_sub(size);
                fits
            })
            .map(convert::attempt)
            .collect();
        Ok(Response::new(pb::RunDetail {
            run: Some(convert::run(d.run)),
            attempts,
            payload_json: d.payload_json,
            tags: d.tags,
            publisher_run_id: d.publisher_run_id,
        }))
    }

    async fn list_subscriptions(
        &self,
        req: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let ns = namespace(&req)?;
        let subs = self.engine.list_subscriptions(&ns).await?;
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: subs.into_iter().map(convert::subscription).collect(),
        }))
    }

    async fn list_dead_letters(
        &self,
        req: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let q = RunQuery {
            event: opt(r.event),
            task: opt(r.task),
            before: opt(r.before),
            limit: r.limit,
            ..RunQuery::default()
        };
        let runs = self.engine.list_dead_letters(&ns, &q).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: convert::runs_page(runs),
        }))
    }

    async fn retry_dead_letters(
        &self,
        req: Request<pb::DeadLetterSelector>,
    ) -> Result<Response<pb::DeadLetterActionResponse>, Status> {
        self.dead_letters(req, DeadLetterAction::Retry).await
    }

    async fn discard_dead_letters(
        &self,
        req: Request<pb::DeadLetterSelector>,
    ) -> Result<Response<pb::DeadLetterActionResponse>, Status> {
        self.dead_letters(req, DeadLetterAction::Discard).await
    }

    async fn set_subscription_paused(
        &self,
        req: Request<pb::SetSubscriptionPausedRequest>,
    ) -> Result<Response<pb::SetSubscriptionPausedResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        self.engine.set_paused(&ns, &r.task_id, r.paused).await?;
        Ok(Response::new(pb::SetSubscriptionPausedResponse {}))
    }

    async fn create_subscription(
        &self,
        req: Request<pb::SubscriptionSpec>,
    ) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
        let ns = namespace(&req)?;
        let spec = convert::subscription_spec(req.into_inner());
        let (sub, secret) = self.engine.create_subscription(&ns, spec).await?;
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(convert::subscription(sub)),
            secret,
        }))
    }

    async fn update_subscription(
        &self,
        req: Request<pb::SubscriptionSpec>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let ns = namespace(&req)?;
        let spec = convert::subscription_spec(req.into_inner());
        let sub = self.engine.update_subscription(&ns, spec).await?;
        Ok(Response::new(convert::subscription(sub)))
    }

    async fn get_subscription(
        &self,
        req: Request<pb::SubscriptionRef>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let ns = namespace(&req)?;
        let sub = self.engine.subscription(&ns, &req.into_inner().id).await?;
        Ok(Response::new(convert::subscription(sub)))
    }

    async fn delete_subscription(
        &self,
        req: Request<pb::SubscriptionRef>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let ns = namespace(&req)?;
        self.engine
            .delete_subscription(&ns, &req.into_inner().id)
            .await?;
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn rotate_subscription_secret(
        &self,
        req: Request<pb::RotateSecretRequest>,
    ) -> Result<Response<pb::RotateSecretResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let (secret, until) = self.engine.rotate_secret(&ns, &r.id, r.overlap_ms).await?;
        Ok(Response::new(pb::RotateSecretResponse {
            secret,
            previous_secret_until_ms: until,
        }))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        Ok(Response::new(
            super::keys::create(&self.engine, req.into_inner()).await?,
        ))
    }

    async fn list_api_keys(
        &self,
        _req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        Ok(Response::new(super::keys::list(&self.engine).await?))
    }

    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKeyInfo>, Status> {
        let key = self.engine.revoke_key(&req.into_inner().key).await?;
        Ok(Response::new(super::keys::key_info(key)))
    }

    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        Ok(Response::new(super::keys::audit(&self.engine, req).await?))
    }
}

impl AdminApi {
    async fn dead_letters(
        &self,
        req: Request<pb::DeadLetterSelector>,
        action: DeadLetterAction,
    ) -> Result<Response<pb::DeadLetterActionResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let dry_run = r.dry_run;
        let count = self
            .engine
            .act_on_dead_letters(&ns, &selector(r), action, dry_run)
            .await?;
        Ok(Response::new(pb::DeadLetterActionResponse { count }))
    }
}

fn selector(s: pb::DeadLetterSelector) -> DeadLetterSelector {
    DeadLetterSelector {
        ids: s.ids,
        all: s.all,
        event: opt(s.event),
        task: opt(s.task),
        error_prefix: opt(s.error_prefix),
    }
}
