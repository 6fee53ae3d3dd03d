//! HTTP routes for the operator's actions — dead letters, replays, filter
//! tests — so every action the console takes is also a documented API call
//! (`docs/openapi.yaml`) beside its gRPC and CLI equivalents.

use super::{json_body, namespace};
use crate::admin::DeadLetterAction;
use crate::engine::Engine;
use crate::error::Error;
use crate::model::DeadLetterSelector;
use crate::replay::ReplayRequest;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

/// Routes under `/api/v1` for the operator's actions.
pub(super) fn routes() -> axum::Router<Engine> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/api/v1/dead-letters/retry",
            post(|s, h, b| dead_letters(s, h, b, DeadLetterAction::Retry)),
        )
        .route(
            "/api/v1/dead-letters/discard",
            post(|s, h, b| dead_letters(s, h, b, DeadLetterAction::Discard)),
        )
        .route("/api/v1/replays", post(start_replay))
        .route("/api/v1/replays/{id}", get(get_replay))
        .route("/api/v1/replays/{id}/cancel", post(cancel_replay))
        .route("/api/v1/filters/test", post(test_filter))
        .route("/api/v1/audit", get(audit))
}

/// Query of `GET /api/v1/audit`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuditParams {
    since_ms: Option<i64>,
    before: Option<String>,
    limit: Option<u32>,
    all_namespaces: Option<bool>,
}

/// Every mutation, who made it, newest first.
async fn audit(
    State(engine): State<Engine>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let axum::extract::Query(q) = query.map_err(|e| {
        Error::InvalidArgument(format!(
            "query: {e} (expected sinceMs, before, limit, allNamespaces)"
        ))
    })?;
    let entries = engine
        .list_audit(crate::model::AuditQuery {
            namespace: (!q.all_namespaces.unwrap_or(false)).then_some(ns),
            since_ms: q.since_ms.unwrap_or(0),
            before_id: q.before.unwrap_or_default(),
            limit: q.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(json!({ "entries": entries })))
}

/// Body of the dead-letter actions.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorBody {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
    pub event: Option<String>,
    pub task: Option<String>,
    pub error_prefix: Option<String>,
    /// Count only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl SelectorBody {
    pub fn selector(self) -> DeadLetterSelector {
        let some = |s: Option<String>| s.filter(|s| !s.is_empty());
        DeadLetterSelector {
            ids: self.ids,
            all: self.all,
            event: some(self.event),
            task: some(self.task),
            error_prefix: some(self.error_prefix),
        }
    }
}

const SELECTOR_SHAPE: &str = "{\"ids\": [\"<run id>\", …]} or {\"all\": true, \"event\"?, \"task\"?, \"errorPrefix\"?}, with \"dryRun\"? to count only";

async fn dead_letters(
    State(engine): State<Engine>,
    headers: HeaderMap,
    body: axum::body::Body,
    action: DeadLetterAction,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let body: SelectorBody = json_body(body, 1024 * 1024, SELECTOR_SHAPE)
        .await?
        .ok_or_else(|| Error::InvalidArgument(format!("request body must be {SELECTOR_SHAPE}")))?;
    let dry_run = body.dry_run;
    let count = engine
        .act_on_dead_letters(&ns, &body.selector(), action, dry_run)
        .await?;
    Ok(Json(json!({ "count": count, "dryRun": dry_run })))
}

/// Body of `POST /api/v1/replays`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayBody {
    event: String,
    from_ms: i64,
    to_ms: i64,
    #[serde(default)]
    tasks: Vec<String>,
    /// A content filter (JSON object) on the archived payloads.
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    rate_per_sec: f64,
    #[serde(default)]
    skip_already_replayed: bool,
}

const REPLAY_SHAPE: &str = "{\"event\": \"<name or pattern>\", \"fromMs\": …, \"toMs\": …, \"tasks\"?, \"filter\"?, \"dryRun\"?, \"ratePerSec\"?, \"skipAlreadyReplayed\"?}";

async fn start_replay(
    State(engine): State<Engine>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    let b: ReplayBody = json_body(body, 256 * 1024, REPLAY_SHAPE)
        .await?
        .ok_or_else(|| Error::InvalidArgument(format!("request body must be {REPLAY_SHAPE}")))?;
    let job = engine
        .start_replay(
            &ns,
            ReplayRequest {
                event_pattern: b.event,
                from_ms: b.from_ms,
                to_ms: b.to_ms,
                tasks: b.tasks,
                filter_json: b.filter.map(|f| f.to_string()).unwrap_or_default(),
                dry_run: b.dry_run,
                rate_per_sec: b.rate_per_sec,
                skip_already_replayed: b.skip_already_replayed,
            },
        )
        .await?;
    Ok(Json(json!(job)))
}

async fn get_replay(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    Ok(Json(json!(engine.replay_status(&ns, &id).await?)))
}

async fn cancel_replay(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let ns = namespace(&headers)?;
    Ok(Json(json!(engine.cancel_replay(&ns, &id).await?)))
}

/// Body of `POST /api/v1/filters/test`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterTestBody {
    pattern: Value,
    payload: Value,
}

async fn test_filter(body: axum::body::Body) -> Result<Json<Value>, Error> {
    let shape = "{\"pattern\": {…}, \"payload\": …}";
    let b: FilterTestBody = json_body(body, 1024 * 1024, shape)
        .await?
        .ok_or_else(|| Error::InvalidArgument(format!("request body must be {shape}")))?;
    let matches = Engine::test_filter(&b.pattern.to_string(), &b.payload.to_string())?;
    Ok(Json(json!({ "matches": matches })))
}
