//! `WorkerService.Session`: the worker's one bidirectional stream.
//!
//! Protocol: the first message is `Register` (tasks + concurrency); the
//! engine stores the subscriptions (they outlive the stream), answers
//! `Registered`, then pushes `RunAssignment`s while the worker sends
//! `RunResult`s and `Heartbeat`s. Stream end = worker gone: its runs fail
//! over to a retry at once.

use super::{convert, namespace};
use crate::dispatch::Session;
use crate::engine::Engine;
use crate::error::Error;
use crate::model::{Breaker, Outcome, Subscription, SubscriptionState, new_id, now_ms};
use fanout_proto::v1 as pb;
use fanout_proto::v1::worker_service_server::WorkerService;
use pb::{server_message::Msg as Out, worker_message::Msg as In};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

pub struct WorkersApi {
    pub engine: Engine,
    /// Engine shutdown: ends every session so graceful shutdown completes.
    pub cancel: CancellationToken,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

fn subscription(ns: &str, default_lease: u64, t: pb::TaskRegistration) -> Subscription {
    Subscription {
        namespace: ns.to_string(),
        task_id: t.id,
        event: t.event,
        filter_json: t.filter_json,
        consumer_group: t.consumer_group,
        retry: convert::retry_from_pb(t.retry),
        lease_ms: if t.lease_ms == 0 {
            default_lease
        } else {
            t.lease_ms
        },
        updated_at_ms: now_ms(),
        state: SubscriptionState::Active,
        breaker: Breaker::default(),
        endpoint: None,
    }
}

impl WorkersApi {
    /// Check and store a worker's task registrations (a session's first
    /// message or `RegisterTasks`): the subscriptions outlive the caller.
    async fn register(
        &self,
        ns: &str,
        tasks: Vec<pb::TaskRegistration>,
    ) -> Result<Vec<Subscription>, Status> {
        if tasks.len() > crate::limits::MAX_TASKS_PER_WORKER {
            return Err(Error::InvalidArgument(format!(
                "register.tasks: {} tasks is over the limit of {} per worker",
                tasks.len(),
                crate::limits::MAX_TASKS_PER_WORKER
            ))
            .into());
        }
        if tasks.is_empty() {
            return Err(Error::InvalidArgument(
                "register.tasks: a worker must register at least one task".into(),
            )
            .into());
        }
        let lease = self.engine.config().default_lease_ms;
        let subs: Vec<Subscription> = tasks
            .into_iter()
            .map(|t| subscription(ns, lease, t))
            .collect();
        self.engine.register_tasks(ns, &subs).await?;
        Ok(subs)
    }
}

#[tonic::async_trait]
impl WorkerService for WorkersApi {
    async fn register_tasks(
        &self,
        req: Request<pb::RegisterTasksRequest>,
    ) -> Result<Response<pb::RegisterTasksResponse>, Status> {
        let ns = namespace(&req)?;
        let subs = self.register(&ns, req.into_inner().tasks).await?;
        Ok(Response::new(pb::RegisterTasksResponse {
            task_ids: subs.into_iter().map(|s| s.task_id).collect(),
        }))
    }

    type SessionStream = OutStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let ns = namespace(&req)?;
        let who = crate::api::gate::caller_of(req.extensions());
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Error::InvalidArgument("stream closed before the register message".into())
        })?;
        let Some(In::Register(reg)) = first.msg else {
            return Err(Error::InvalidArgument(
                "the first message on a worker stream must be register".into(),
            )
            .into());
        };
        crate::limits::check_text(
            "register.worker_name",
            &reg.worker_name,
            crate::limits::MAX_WORKER_NAME_BYTES,
        )?;
        let concurrency = match reg.concurrency {
            0 => 10,
            n if n > 10_000 => {
                return Err(Error::InvalidArgument(format!(
                    "register.concurrency: {n} is over the maximum of 10000"
                ))
                .into());
            }
            n => n as usize,
        };
        let subs = self.register(&ns, reg.tasks).await?;

        // `<instance>/<session>`: a restart of this instance recognises
        // the leases its previous incarnation granted.
        let worker_id = format!("{}/{}", self.engine.instance_id(), new_id());
        tracing::info!(namespace = %ns, worker = %worker_id, name = %reg.worker_name, tasks = subs.len(), concurrency, "worker connected");
        let tasks = subs.iter().map(|s| s.task_id.clone()).collect();
        let session = Arc::new(Session::new(
            self.engine.clone(),
            ns.clone(),
            worker_id.clone(),
            reg.worker_name.clone(),
            tasks,
            concurrency,
        ));
        self.engine
            .workers()
            .add(&session.worker_id, session.clone());
        let (tx, rx) = mpsc::channel::<Result<pb::ServerMessage, Status>>(concurrency + 8);
        let _ = tx
            .send(Ok(pb::ServerMessage {
                msg: Some(Out::Registered(pb::Registered {
                    worker_id: worker_id.clone(),
                    namespace: ns,
                })),
            }))
            .await;

        let cancel = self.cancel.child_token();
        // A session outlives the call that opened it: it ends when its key
        // is revoked or expires (seen here within a second of the keyring).
        if self.engine.keyring().required() && !who.key_id.is_empty() {
            let keyring = self.engine.keyring().clone();
            let (end, out) = (cancel.clone(), tx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = end.cancelled() => return,
                    }
                    if !keyring.is_live(&who.key_id) {
                        tracing::info!(key = %who.key_id, "worker session ended: its api key was revoked or expired");
                        let _ = out
                            .send(Err(Error::Unauthenticated(format!(
                                "API key {} was revoked or has expired; this session ends",
                                who.key_id
                            ))
                            .into()))
                            .await;
                        end.cancel();
                        return;
                    }
                }
            });
        }
        // Claimed runs → stream.
        let (runs_tx, mut runs_rx) = mpsc::channel(concurrency);
        let dispatch = tokio::spawn(session.clone().dispatch_loop(runs_tx, cancel.clone()));
        let fwd = tx.clone();
        let fwd_cancel = cancel.clone();
        let assigned_to = worker_id.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    run = runs_rx.recv() => {
                        let Some(run) = run else { break };
                        let mut a = convert::assignment(run);
                        a.worker_id.clone_from(&assigned_to);
                        let msg = pb::ServerMessage { msg: Some(Out::Assignment(a)) };
                        if fwd.send(Ok(msg)).await.is_err() { break; }
                    }
                    _ = fwd_cancel.cancelled() => break,
                }
            }
        });
        // Stream → results and heartbeats.
        let max_output = self.engine.config().max_payload_bytes;
        let connected = self.engine.metrics().workers_connected.clone();
        connected.inc();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.message() => m,
                    _ = cancel.cancelled() => break,
                };
                match msg {
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Result(mut r)),
                    })) => {
                        let outcome = match r.outcome {
                            Some(pb::run_result::Outcome::Suspended(_)) => {
                                // The store already holds the run as waiting.
                                session.release_slot(&r.run_id);
                                continue;
                            }
                            Some(pb::run_result::Outcome::OutputJson(o))
                                if o.len() > max_output =>
                            {
                                // Kept bounded like a payload; the handler's
                                // side effects happened, so no retry.
                                Outcome::Failed {
                                    message: format!(
                                        "the handler's output is {} bytes, over the limit of {max_output} bytes (max_payload_bytes)",
                                        o.len()
                                    ),
                                    fatal: true,
                                    retry_after_ms: 0,
                                }
                            }
                            Some(pb::run_result::Outcome::OutputJson(o)) => Outcome::Ok(o),
                            Some(pb::run_result::Outcome::Failure(f)) => Outcome::Failed {
                                message: crate::limits::truncate(
                                    f.message,
                                    crate::limits::MAX_ERROR_TEXT_BYTES,
                                ),
                                fatal: f.fatal,
                                retry_after_ms: f
                                    .retry_after_ms
                                    .min(crate::limits::MAX_RETRY_AFTER_MS),
                            },
                            None => Outcome::Failed {
                                message: "worker sent a result with no outcome".into(),
                                fatal: false,
                                retry_after_ms: 0,
                            },
                        };
                        let s = session.clone();
                        // The attempt's `process` span: the parent of the
                        // engine's `complete` span.
                        let attempt_span = crate::telemetry::TraceContext {
                            traceparent: std::mem::take(&mut r.traceparent),
                            tracestate: String::new(),
                        };
                        tokio::spawn(async move {
                            if let Err(e) = s
                                .on_result(r.run_id.clone(), r.attempt, outcome, attempt_span)
                                .await
                            {
                                tracing::warn!(run_id = %r.run_id, error = %e, "could not record result; the lease will expire and the run retry");
                            }
                        });
                    }
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Logs(l)),
                    })) => {
                        // Handled in stream order: an attempt's last lines
                        // are stored before its result ends the lease.
                        let lines = l.lines.into_iter().map(convert::log_line_from_pb).collect();
                        if let Err(e) = session.on_logs(&l.run_id, l.attempt, lines).await {
                            tracing::warn!(run_id = %l.run_id, error = %e, "handler log lines not stored");
                        }
                    }
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Heartbeat(h)),
                    })) => {
                        if let Err(e) = session.on_heartbeat(&h.run_ids).await {
                            tracing::warn!(worker = %session.worker_id, error = %e, "heartbeat not recorded");
                        }
                    }
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Drain(_)),
                    })) => session.drain(),
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Release(r)),
                    })) => {
                        if let Err(e) = session.give_back(&r.run_ids).await {
                            tracing::warn!(worker = %session.worker_id, error = %e, "runs given back not requeued; their leases will expire");
                        }
                    }
                    Ok(Some(pb::WorkerMessage {
                        msg: Some(In::Register(_)),
                    })) => {
                        let _ = tx
                            .send(Err(Error::InvalidArgument(
                                "register may only be sent once per stream".into(),
                            )
                            .into()))
                            .await;
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // Stop dispatching and wait for a claim that may be in flight,
            // *then* release: otherwise a claim committing after the release
            // would leave a run leased to a gone worker until its lease ends.
            cancel.cancel();
            let _ = dispatch.await;
            session.close().await;
            connected.dec();
            tracing::info!(worker = %session.worker_id, "worker disconnected");
            // `tx` drops here: the response stream ends only now, so a
            // worker waiting for it knows its runs were released.
            drop(tx);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
