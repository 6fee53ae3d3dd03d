//! HTTP subscribers: the engine is their worker. For each subscription
//! with an endpoint, this replica runs one dispatch [`Session`] — the same
//! claim path, leases and results as an SDK worker's, so replicas share
//! the work, pausing and the breaker apply unchanged, and ordering keys
//! hold across retries — and POSTs each claimed run, signed
//! ([`sign`], Standard Webhooks), through one shared client ([`client`]:
//! pooled connections, the address guard). [`deliver`] turns the answer
//! into the attempt's outcome.
//!
//! # What a crash does
//! A delivery holds a lease like any attempt: a crash mid-POST leaves the
//! run `running` under this instance's worker id; on restart the engine
//! requeues it uncharged (SQLite: every lease at open; Postgres: this
//! instance's), or another replica's reaper fails it when the lease ends.
//! The receiver may therefore see a run twice: `webhook-id` (the run id) is
//! its idempotency key. A 2xx whose completion did not commit is the same
//! case. Nothing is lost: runs are created in the publish transaction.

pub mod client;
pub mod deliver;
pub mod sign;

use crate::dispatch::Session;
use crate::engine::Engine;
use crate::model::*;
use crate::ratelimit::Decision;
use crate::telemetry::span::{Delivery, Span};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the subscriptions are looked at when nothing local changed
/// (another replica's changes, the breaker's probe times).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One endpoint's deliverer on this replica.
struct Deliverer {
    /// The settings it runs with; a change restarts it.
    settings: String,
    cancel: CancellationToken,
}

/// Keep one deliverer per HTTP subscription running until cancelled; move
/// tripped subscriptions to probing when their time comes.
pub async fn supervisor(engine: Engine, cancel: CancellationToken) {
    let policy = crate::netguard::Policy::of(&engine.config().webhooks);
    let client = match client::build(policy) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; HTTP subscribers get no deliveries from this replica");
            return;
        }
    };
    let deliver = engine.config().webhooks.enabled;
    let mut running: HashMap<(String, String), Deliverer> = HashMap::new();
    loop {
        let changed = engine.subscriptions_changed().notified();
        match engine.store().list_watched_subscriptions().await {
            Ok(subs) => {
                if let Err(e) = engine.probe_tripped(&subs).await {
                    tracing::warn!(error = %e, "webhooks: breaker probe failed");
                }
                if deliver {
                    reconcile(&engine, &client, &subs, &mut running, &cancel);
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot list subscriptions"),
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = cancel.cancelled() => break,
        }
    }
    for d in running.values() {
        d.cancel.cancel();
    }
}

/// Start deliverers for new or changed endpoints, stop removed ones.
fn reconcile(
    engine: &Engine,
    client: &reqwest::Client,
    subs: &[Subscription],
    running: &mut HashMap<(String, String), Deliverer>,
    cancel: &CancellationToken,
) {
    let mut wanted = HashMap::new();
    for s in subs {
        if let Some(ep) = &s.endpoint {
            let settings = format!("{}|{}", ep.to_json(), s.lease_ms);
            wanted.insert((s.namespace.clone(), s.task_id.clone()), (settings, s));
        }
    }
    running.retain(|key, d| {
        let keep = wanted.get(key).is_some_and(|(s, _)| *s == d.settings);
        if !keep {
            d.cancel.cancel();
        }
        keep
    });
    for (key, (settings, sub)) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let token = cancel.child_token();
        tokio::spawn(run_deliverer(
            engine.clone(),
            client.clone(),
            sub.clone(),
            token.clone(),
        ));
        running.insert(
            key,
            Deliverer {
                settings,
                cancel: token,
            },
        );
    }
}

/// One endpoint: a session claims its runs; each is delivered in its own
/// task (the session's slots bound how many at once).
async fn run_deliverer(
    engine: Engine,
    client: reqwest::Client,
    sub: Subscription,
    cancel: CancellationToken,
) {
    let Some(ep) = sub.endpoint.clone() else {
        return;
    };
    let ep = Arc::new(ep);
    // `<instance>/…`: a restart of this instance requeues its leases.
    let worker_id = format!("{}/webhook/{}", engine.instance_id(), new_id());
    let session = Arc::new(Session::new(
        engine.clone(),
        sub.namespace.clone(),
        worker_id.clone(),
        format!("webhook {}", sub.task_id),
        vec![sub.task_id.clone()],
        ep.concurrency as usize,
    ));
    engine.workers().add(&worker_id, session.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel(ep.concurrency as usize);
    let claims = tokio::spawn(session.clone().dispatch_loop(tx, cancel.clone()));
    let mut deliveries = JoinSet::new();
    loop {
        tokio::select! {
            run = rx.recv() => match run {
                Some(run) => {
                    deliveries.spawn(deliver_one(
                        engine.clone(),
                        client.clone(),
                        session.clone(),
                        sub.task_id.clone(),
                        ep.clone(),
                        run,
                    ));
                }
                None => break,
            },
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    }
    let _ = claims.await;
    if engine.shutdown_token().is_cancelled() {
        // Engine shutdown: abandon the POSTs in flight (their leases are
        // requeued when this instance starts again, or reaped).
        deliveries.abort_all();
    }
    // Settings changed: let the deliveries in flight finish and report.
    while deliveries.join_next().await.is_some() {}
}

/// Wait for the endpoint's rate limit, POST, disable on 410, report.
async fn deliver_one(
    engine: Engine,
    client: reqwest::Client,
    session: Arc<Session>,
    id: String,
    ep: Arc<Endpoint>,
    run: ClaimedRun,
) {
    let ns = session.namespace.clone();
    if ep.rate_per_s > 0 {
        let key = format!("webhook:{ns}:{id}");
        loop {
            match engine
                .limiter()
                .check(&key, ep.rate_per_s, Duration::from_secs(1))
                .await
            {
                Ok(Decision::Allow) => break,
                Ok(Decision::Deny { retry_after }) => {
                    tokio::time::sleep(retry_after.max(Duration::from_millis(1))).await;
                    // A long wait keeps the lease.
                    if retry_after > Duration::from_secs(1) {
                        let _ = session
                            .on_heartbeat(std::slice::from_ref(&run.run_id))
                            .await;
                    }
                }
                Err(e) => {
                    // The limiter protects the endpoint; a limiter outage
                    // must not stall delivery (the concurrency cap holds).
                    tracing::warn!(namespace = %ns, subscription = %id, error = %e, "webhooks: rate limiter unavailable; delivering without it");
                    break;
                }
            }
        }
    }
    let max_output = engine.config().max_payload_bytes;
    let mut span = Span::deliver(
        &Delivery {
            event: &run.event,
            event_id: &run.event_id,
            subscription: &id,
            run_id: &run.run_id,
            attempt: run.attempt,
            url: &ep.url,
        },
        &run.trace,
    );
    let trace = match span.is_recording() {
        true => span.context(),
        false => run.trace.clone(),
    };
    let answer = deliver::deliver(&client, &ep, &run, &trace, max_output).await;
    if span.is_recording() {
        if answer.status > 0 {
            span.set("http.response.status_code", i64::from(answer.status));
        }
        match &answer.outcome {
            Outcome::Ok(_) => span.set("fanout.outcome", "ok"),
            Outcome::Failed { .. } => {
                span.set("fanout.outcome", "failed");
                span.fail(match answer.status {
                    0 => "transport".to_string(),
                    s => s.to_string(),
                });
            }
        }
    }
    // Ended before the result is recorded: `complete` follows it.
    let attempt_span = span.context();
    drop(span);
    if answer.gone {
        // Disabled before the failure is recorded, so its retry is not
        // claimed in between.
        if let Err(e) = engine
            .set_subscription_state(
                &ns,
                &id,
                SubscriptionState::Disabled,
                &[SubscriptionState::Active, SubscriptionState::Probing],
                "endpoint answered 410 Gone",
            )
            .await
        {
            tracing::warn!(namespace = %ns, subscription = %id, error = %e, "webhooks: could not disable the subscription");
        }
    }
    if let Outcome::Failed { message, .. } = &answer.outcome {
        tracing::debug!(namespace = %ns, subscription = %id, run_id = %run.run_id, attempt = run.attempt, error = %message, "webhook delivery failed");
    }
    if let Err(e) = session
        .on_result(
            run.run_id.clone(),
            run.attempt,
            answer.outcome,
            attempt_span,
        )
        .await
    {
        tracing::warn!(namespace = %ns, subscription = %id, run_id = %run.run_id, error = %e, "webhooks: could not record the attempt; its lease will expire");
    }
}
