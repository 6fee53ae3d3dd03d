//! HTTP: `GET /healthz` now; the publish API and dashboard mount here.
//! Errors map to HTTP status codes once, in `IntoResponse for Error`.

use crate::engine::Engine;
use crate::error::{Error, retry_after_secs};
use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The HTTP router.
pub fn router(engine: Engine) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .with_state(engine)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::InvalidArgument(_) | Error::InvalidPayload { .. } => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::FailedPrecondition(_) => StatusCode::CONFLICT,
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
