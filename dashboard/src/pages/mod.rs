//! One module per top-level path of the console.

pub(crate) mod audit;
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

/// The `since` parameter: one of `choices` (label, window in ms; 0: all
/// time), `default` when absent. Returns the label and the window.
pub(crate) fn since(
    query: Option<&str>,
    default: &str,
    choices: &[(&'static str, i64)],
) -> Result<(String, i64), fanout_engine::Error> {
    let label = param(query, "since").unwrap_or_else(|| default.to_string());
    match choices.iter().find(|(l, _)| *l == label) {
        Some((_, window)) => Ok((label, *window)),
        None => {
            let expected: Vec<&str> = choices.iter().map(|(l, _)| *l).collect();
            Err(fanout_engine::Error::InvalidArgument(format!(
                "since '{label}' is invalid: expected one of {}",
                expected.join(", ")
            )))
        }
    }
}
