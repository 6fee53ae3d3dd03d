//! One module per top-level path of the console.

pub(crate) mod dlq;
pub(crate) mod events;
pub(crate) mod log;
pub(crate) mod overview;
pub(crate) mod replays;
pub(crate) mod runs;
pub(crate) mod waitpoints;
pub(crate) mod workers;

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// After an action: back to `to` (303, so a reload does not repost).
pub(crate) fn see_other(to: &str) -> Response {
    (
        axum::http::StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
    )
        .into_response()
}

/// A query parameter from a raw query string.
pub(crate) fn param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
}
