//! HTTP: `GET /healthz` and the publish API for curl, webhooks and other
//! languages (`docs/openapi.yaml`). Errors map to HTTP status codes once, in
//! `IntoResponse for Error`, and every answer — 404, 405 and 413 included —
//! is JSON.
//!
//! A browser on another origin must not be able to act here: every POST
//! requires `Content-Type: application/json` (a cross-site "simple" request
//! cannot send it without a CORS preflight), and preflights are answered
//! only for `limits.cors_allowed_origins` (none by default). Connections are
//! capped and timed (`serve`), so slow or idle clients cannot hold the
//! engine's file descriptors.

mod admin;
mod subscriptions;

pub use admin::SelectorBody;

use crate::engine::{Engine, PublishInput};
use crate::error::EntityKind;
use crate::error::{Error, retry_after_secs};
use crate::limits::Limits;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Routes served beside the API on the HTTP listener (the console),
/// built once the engine exists. They must not overlap `/api/v1`,
/// `/healthz`, `/readyz`, `/livez` or `/metrics`.
pub type Mount = Box<dyn FnOnce(Engine) -> axum::Router + Send>;

/// The HTTP router: the API, plus `mount`'s routes when given.
pub fn router(engine: Engine, mount: Option<Mount>) -> axum::Router {
    let limits = engine.config().limits.clone();
    let extra = mount.map(|m| m(engine.clone()));
    let gate = (
        engine.keyring().clone(),
        engine.config().auth.protect_metrics,
    );
    let api = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .route("/api/v1/events/{name}/publish", post(publish))
        .route("/api/v1/waitpoints/{id}/complete", post(complete_waitpoint))
        .route("/api/v1/runs/{id}/logs", get(run_logs))
        .merge(admin::routes())
        .merge(subscriptions::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(json_only))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            super::gate::http,
        ))
        .layer(cors(&limits))
        .with_state(engine);
    let all = match extra {
        Some(extra) => api.merge(extra),
        None => api,
    };
    all.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        Duration::from_millis(limits.http_body_timeout_ms),
    ))
}

fn cors(limits: &Limits) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = &limits.cors_allowed_origins;
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PATCH,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static(fanout_proto::NAMESPACE_HEADER),
        ])
}

/// Readiness, with every dependency: 200 while the store works (the
/// archive or the limiter may be `degraded`), 503 while store writes fail.
/// Prometheus text exposition (version 0.0.4).
async fn metrics(State(engine): State<Engine>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        engine.metrics_text().await,
    )
        .into_response()
}

async fn healthz(State(engine): State<Engine>) -> Response {
    let report = engine.health_report();
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!(report))).into_response()
}

/// Liveness: the process serves requests.
async fn livez() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// Every request that changes something must say `Content-Type:
/// application/json`, body or not: a page on another origin can send a
/// bodiless "simple" POST (pause, resume, rotate-secret) without a CORS
/// preflight, but not one with this header.
async fn json_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let m = req.method();
    let reads = m == axum::http::Method::GET
        || m == axum::http::Method::HEAD
        || m == axum::http::Method::OPTIONS;
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if reads || json {
        return next.run(req).await;
    }
    Error::UnsupportedMediaType(format!(
        "{m} requests must send Content-Type: application/json (even without a body), so a page on another origin cannot make them"
    ))
    .into_response()
}

async fn not_found() -> Error {
    Error::not_found(
        EntityKind::Route,
        "",
        "no such route; the API is under /api/v1 (docs/openapi.yaml)",
    )
}

async fn method_not_allowed() -> Response {
    let mut r = Error::InvalidArgument("method not allowed on this route".into()).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    payload: Box<RawValue>,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    ordering_key: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

pub(super) fn namespace(headers: &HeaderMap) -> Result<String, Error> {
    match headers.get(fanout_proto::NAMESPACE_HEADER) {
        None => Ok(fanout_proto::DEFAULT_NAMESPACE.into()),
        Some(v) => {
            let ns = v.to_str().map_err(|_| {
                Error::InvalidArgument("header x-fanout-namespace must be ASCII".into())
            })?;
            crate::routing::schema::check_identifier("namespace", ns)?;
            Ok(ns.into())
        }
    }
}

/// The request body as a JSON object of shape `T`: at most `limit` bytes
/// (413 otherwise) and an object (serde would also take an array for a
/// struct). Its `Content-Type` was checked by [`json_only`], which guards
/// every route that takes a body.
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
    shape: &str,
) -> Result<Option<T>, Error> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` says an over-long body only through its message.
        if e.to_string().contains("length limit") {
            Error::BodyTooLarge { limit }
        } else {
            Error::InvalidArgument(format!("could not read the request body: {e}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::InvalidArgument(format!(
            "request body must be a JSON object {shape}"
        )));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::InvalidArgument(format!("request body must be {shape}: {e}")))
}

async fn publish(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    // Room for the envelope; the engine applies the real limit to the payload.
    let limit = engine
        .config()
        .max_payload_bytes
        .saturating_mul(2)
        .max(64 * 1024);
    let shape = "{\"payload\": …, \"idempotencyKey\"?, \"orderingKey\"?, \"tags\"?}";
    let body: PublishBody = json_body(body, limit, shape)
        .await?
        .ok_or_else(|| Error::InvalidArgument(format!("request body must be {shape}")))?;
    let p = engine
        .publish(
            &ns,
            PublishInput {
                event: name,
                payload_json: body.payload.get().to_string(),
                idempotency_key: body.idempotency_key,
                ordering_key: body.ordering_key,
                tags: body.tags,
                publisher_run_id: String::new(),
                trace: crate::telemetry::TraceContext::from_headers(|k| {
                    headers.get(k).and_then(|v| v.to_str().ok())
                }),
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
    body: axum::body::Body,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let limit = engine.config().max_payload_bytes.saturating_add(1024);
    let body: Option<CompleteBody> = json_body(body, limit, "{\"data\"?: …}").await?;
    let data = body
        .and_then(|b| b.data)
        .map_or_else(|| "null".to_string(), |d| d.get().to_string());
    let trace = crate::telemetry::TraceContext::from_headers(|k| {
        headers.get(k).and_then(|v| v.to_str().ok())
    });
    let w = engine.complete_token(&ns, &id, &data, &trace).await?;
    Ok(Json(
        json!({"waitpointId": w.waitpoint.id, "status": w.waitpoint.status}),
    ))
}

/// Pause (`paused`) or resume a task's subscription; paused, its runs are
/// kept and none is claimed.
/// Query of `GET /api/v1/runs/{id}/logs`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogsQuery {
    attempt: Option<u32>,
    after_attempt: Option<u32>,
    after_seq: Option<u32>,
    limit: Option<u32>,
}

async fn run_logs(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let axum::extract::Query(q) = query.map_err(|e| {
        Error::InvalidArgument(format!(
            "query: {e} (expected attempt, afterAttempt, afterSeq, limit as numbers)"
        ))
    })?;
    let lines = engine
        .run_logs(
            &ns,
            &id,
            &crate::model::LogQuery {
                attempt: q.attempt.filter(|a| *a > 0),
                after: q.after_attempt.map(|a| (a, q.after_seq.unwrap_or(0))),
                limit: q.limit.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(json!({ "runId": id, "lines": lines })))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.http_status();
        // The same detail gRPC carries in binary metadata, as JSON.
        let d = self.detail();
        let code = fanout_proto::v1::ErrorCode::try_from(d.code)
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("ERROR_CODE_")
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let mut body = json!({"error": d.message, "code": code});
        if let Error::InvalidPayload {
            violations, total, ..
        } = &self
        {
            body["violations"] = json!(violations);
            body["violationCount"] = json!(total);
        }
        if let Some(e) = &d.entity {
            let kind = fanout_proto::v1::EntityKind::try_from(e.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("ENTITY_KIND_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_default();
            body["entity"] = json!({"kind": kind, "id": e.id});
            if e.version > 0 {
                body["entity"]["version"] = json!(e.version);
            }
        }
        if d.retry_after_ms > 0 {
            body["retryAfterMs"] = json!(d.retry_after_ms);
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

/// Serve `router` on `listener` until `cancel`: at most
/// `limits.http_max_connections` open connections (more wait in the accept
/// queue), headers (and the wait for the next request on a kept-alive
/// connection) within `limits.http_header_timeout_ms`, bodies within
/// `limits.http_body_timeout_ms` (the router's layer). On cancel, open
/// connections finish their requests for up to 10 s.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let conns = Arc::new(tokio::sync::Semaphore::new(limits.http_max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_millis(limits.http_header_timeout_ms);
    // HTTP/1.1 only: protocol detection (h1 or h2) would wait for a first
    // byte without any timeout, so an idle connection would stay forever.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let permit = tokio::select! {
            p = conns.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            _ = cancel.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off, the
                    // engine itself stays up.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        match &tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                // The handshake is bounded like the headers; a failed one
                // closes the connection and nothing else.
                let (acceptor, builder) = (acceptor.clone(), builder.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = tokio::time::timeout(header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = tls {
                        let conn =
                            watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                        let _ = conn.await;
                    }
                    drop(permit);
                });
            }
        }
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("http connections still open after 10 s of shutdown; closing them");
        }
    }
    Ok(())
}
