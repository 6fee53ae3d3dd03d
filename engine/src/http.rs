//! HTTP: `GET /healthz` and the publish API for curl, webhooks and other
//! languages (`docs/openapi.yaml`). Errors map to HTTP status codes once, in
//! `IntoResponse for Error`.

use crate::engine::{Engine, PublishInput};
use crate::error::{Error, retry_after_secs};
use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

/// The HTTP router.
pub fn router(engine: Engine) -> axum::Router {
    // Leave room for the JSON envelope; the engine applies the real limit
    // to the payload and answers 413 itself.
    let body_limit = engine
        .config()
        .max_payload_bytes
        .saturating_mul(2)
        .max(64 * 1024);
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/events/{name}/publish", post(publish))
        .route("/api/v1/waitpoints/{id}/complete", post(complete_waitpoint))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(engine)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    payload: Value,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    ordering_key: String,
    #[serde(default)]
    tags: Vec<String>,
}

fn namespace(headers: &HeaderMap) -> Result<String, Error> {
    match headers.get(fanout_proto::NAMESPACE_HEADER) {
        None => Ok(fanout_proto::DEFAULT_NAMESPACE.into()),
        Some(v) => {
            let ns = v.to_str().map_err(|_| {
                Error::InvalidArgument("header x-fanout-namespace must be ASCII".into())
            })?;
            crate::schema::check_identifier("namespace", ns)?;
            Ok(ns.into())
        }
    }
}

async fn publish(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let body: PublishBody = serde_json::from_slice(&body).map_err(|e| {
        Error::InvalidArgument(format!(
            "request body must be {{\"payload\": …, \"idempotencyKey\"?, \"orderingKey\"?, \"tags\"?}}: {e}"
        ))
    })?;
    let p = engine
        .publish(
            &ns,
            PublishInput {
                event: name,
                payload_json: body.payload.to_string(),
                idempotency_key: body.idempotency_key,
                ordering_key: body.ordering_key,
                tags: body.tags,
                publisher_run_id: String::new(),
            },
        )
        .await?;
    let runs: Vec<Value> = p
        .runs
        .iter()
        .map(|(run_id, task_id, group)| json!({"runId": run_id, "taskId": task_id, "consumerGroup": group}))
        .collect();
    Ok(Json(
        json!({"eventId": p.event_id, "eventVersion": p.version, "runs": runs, "deduplicated": p.deduplicated}),
    ))
}

/// Complete a token waitpoint: body `{"data": …}` (optional).
async fn complete_waitpoint(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let data = if body.is_empty() {
        Value::Null
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            Error::InvalidArgument(format!("request body must be {{\"data\": …}}: {e}"))
        })?;
        v.get("data").cloned().unwrap_or(Value::Null)
    };
    let w = engine.complete_token(&ns, &id, &data.to_string()).await?;
    Ok(Json(
        json!({"waitpointId": w.waitpoint.id, "status": w.waitpoint.status}),
    ))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::InvalidArgument(_) | Error::InvalidPayload { .. } => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::FailedPrecondition(_) | Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut body = json!({"error": self.to_string()});
        if let Error::InvalidPayload { violations, .. } = &self {
            body["violations"] = json!(violations);
        }
        let mut resp = (status, Json(body)).into_response();
        if let Error::RateLimited { retry_after, .. } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs(*retry_after).to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}
