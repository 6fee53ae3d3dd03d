//! HTTP routes for subscriptions: HTTP subscribers (create, show, update,
//! delete, rotate the secret), the list, and pause / resume for every
//! subscription — the same `Engine` methods gRPC, the CLI and the console
//! call (`docs/openapi.yaml`).

use super::{json_body, namespace};
use crate::engine::{Engine, SubscriptionSpec};
use crate::error::Error;
use crate::model::{Breaker, RetryPolicy, Subscription};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

/// Routes under `/api/v1/subscriptions`.
pub(super) fn routes() -> axum::Router<Engine> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/subscriptions", get(list).post(create))
        .route(
            "/api/v1/subscriptions/{id}",
            get(show).patch(update).delete(delete),
        )
        .route("/api/v1/subscriptions/{id}/rotate-secret", post(rotate))
        .route(
            "/api/v1/subscriptions/{id}/pause",
            post(|s, p, h| set_paused(s, p, h, true)),
        )
        .route(
            "/api/v1/subscriptions/{id}/resume",
            post(|s, p, h| set_paused(s, p, h, false)),
        )
}

/// The body of create (every field) and update (any field).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecBody {
    id: Option<String>,
    event: Option<String>,
    url: Option<String>,
    /// A content filter (a JSON object).
    filter: Option<Value>,
    consumer_group: Option<String>,
    retry: Option<RetryBody>,
    timeout_ms: Option<u64>,
    concurrency: Option<u32>,
    rate_per_s: Option<u32>,
    breaker: Option<BreakerBody>,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryBody {
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    multiplier: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BreakerBody {
    after_failures: u32,
    #[serde(default)]
    probe_after_ms: u64,
}

const SPEC_SHAPE: &str = "{\"id\", \"event\", \"url\", \"filter\"?, \"consumerGroup\"?, \"retry\"?: {\"maxAttempts\", \"initialBackoffMs\", \"maxBackoffMs\", \"multiplier\"}, \"timeoutMs\"?, \"concurrency\"?, \"ratePerS\"?, \"breaker\"?: {\"afterFailures\", \"probeAfterMs\"?}, \"secret\"?}";

impl SpecBody {
    fn spec(self, id: String) -> SubscriptionSpec {
        SubscriptionSpec {
            id,
            event: self.event,
            url: self.url,
            filter_json: self.filter.map(|f| f.to_string()),
            consumer_group: self.consumer_group,
            retry: self.retry.map(|r| RetryPolicy {
                max_attempts: r.max_attempts,
                initial_backoff_ms: r.initial_backoff_ms,
                max_backoff_ms: r.max_backoff_ms,
                multiplier: r.multiplier,
            }),
            timeout_ms: self.timeout_ms,
            concurrency: self.concurrency,
            rate_per_s: self.rate_per_s,
            breaker: self.breaker.map(|b| Breaker {
                after_failures: b.after_failures,
                probe_after_ms: b.probe_after_ms,
            }),
            secret: self.secret,
        }
    }
}

/// A subscription as HTTP shows it (never its secret).
pub(super) fn view(s: &Subscription) -> Value {
    json!({
        "id": s.task_id,
        "event": s.event,
        "filter": serde_json::from_str::<Value>(&s.filter_json).ok(),
        "consumerGroup": s.consumer_group,
        "retry": {
            "maxAttempts": s.retry.max_attempts,
            "initialBackoffMs": s.retry.initial_backoff_ms,
            "maxBackoffMs": s.retry.max_backoff_ms,
            "multiplier": s.retry.multiplier,
        },
        "state": s.state.as_str(),
        "paused": s.paused(),
        "breaker": {
            "afterFailures": s.breaker.after_failures,
            "probeAfterMs": s.breaker.probe_after_ms,
        },
        "endpoint": s.endpoint.as_ref().map(|e| json!({
            "url": e.url,
            "timeoutMs": e.timeout_ms,
            "concurrency": e.concurrency,
            "ratePerS": e.rate_per_s,
            "previousSecretUntilMs": if e.secrets.previous.is_empty() { 0 } else { e.secrets.previous_until_ms },
        })),
        "updatedAtMs": s.updated_at_ms,
    })
}

async fn list(State(engine): State<Engine>, headers: HeaderMap) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let subs = engine.list_subscriptions(&ns).await?;
    Ok(Json(
        json!({ "subscriptions": subs.iter().map(view).collect::<Vec<_>>() }),
    ))
}

async fn create(
    State(engine): State<Engine>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), Error> {
    let ns = namespace(&headers)?;
    let b: SpecBody = json_body(body, 64 * 1024, SPEC_SHAPE)
        .await?
        .ok_or_else(|| Error::InvalidArgument(format!("request body must be {SPEC_SHAPE}")))?;
    let id = b
        .id
        .clone()
        .ok_or_else(|| Error::InvalidArgument("id: required (the subscription's name)".into()))?;
    let (sub, secret) = engine.create_subscription(&ns, b.spec(id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "subscription": view(&sub), "secret": secret })),
    ))
}

async fn show(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    Ok(Json(view(&engine.subscription(&ns, &id).await?)))
}

async fn update(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let b: SpecBody = json_body(body, 64 * 1024, SPEC_SHAPE)
        .await?
        .unwrap_or_default();
    if b.id.as_ref().is_some_and(|i| *i != id) {
        return Err(Error::InvalidArgument(format!(
            "id: the body names '{}' but the path names '{id}'; a subscription cannot be renamed",
            b.id.unwrap_or_default()
        )));
    }
    Ok(Json(view(
        &engine.update_subscription(&ns, b.spec(id)).await?,
    )))
}

async fn delete(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Error> {
    let ns = namespace(&headers)?;
    engine.delete_subscription(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateBody {
    overlap_ms: Option<u64>,
}

async fn rotate(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let b: RotateBody = json_body(body, 1024, "{\"overlapMs\"?}")
        .await?
        .unwrap_or_default();
    let (secret, until) = engine.rotate_secret(&ns, &id, b.overlap_ms).await?;
    Ok(Json(
        json!({ "secret": secret, "previousSecretUntilMs": until }),
    ))
}

async fn set_paused(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    paused: bool,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    engine.set_paused(&ns, &id, paused).await?;
    Ok(Json(json!({"task": id, "paused": paused})))
}
