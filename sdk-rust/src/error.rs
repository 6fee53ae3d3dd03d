//! SDK errors: what a caller can match on, translated once from gRPC status.

use std::time::Duration;

/// Result alias for SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload failed the event's schema (client- or server-side); each
    /// entry is `path: what was expected`.
    #[error("invalid payload for '{event}': {}", .violations.join("; "))]
    InvalidPayload {
        event: String,
        violations: Vec<String>,
    },
    /// The request was malformed (the message names the field).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The event, run or task does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Over a rate limit: retry after `retry_after`.
    #[error("rate limited (retry after {retry_after:?}): {message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// The engine or a backend is unreachable; safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Could not connect to the engine at all.
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    /// A payload or output could not be (de)serialized.
    #[error("serialization: {0}")]
    Serialization(String),
    /// Any other status from the engine.
    #[error("{code:?}: {message}")]
    Server { code: tonic::Code, message: String },
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let message = s.message().to_string();
        match s.code() {
            tonic::Code::InvalidArgument if message.starts_with("payload for event") => {
                // "payload for event 'x' (schema vN) is invalid: a; b"
                let event = message.split('\'').nth(1).unwrap_or_default().to_string();
                let violations = message
                    .split_once("is invalid: ")
                    .map(|(_, v)| v.split("; ").map(str::to_string).collect())
                    .unwrap_or_else(|| vec![message.clone()]);
                Error::InvalidPayload { event, violations }
            }
            tonic::Code::InvalidArgument => Error::InvalidArgument(message),
            tonic::Code::NotFound => Error::NotFound(message),
            tonic::Code::ResourceExhausted => {
                let secs = s
                    .metadata()
                    .get(fanout_proto::RETRY_AFTER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                Error::RateLimited {
                    message,
                    retry_after: Duration::from_secs(secs),
                }
            }
            tonic::Code::Unavailable => Error::Unavailable(message),
            // A call cut by a dropped connection (the engine restarting)
            // surfaces as UNKNOWN "transport error" or CANCELLED: retryable.
            tonic::Code::Unknown | tonic::Code::Cancelled if is_transport(&s) => {
                Error::Unavailable(message)
            }
            code => Error::Server { code, message },
        }
    }
}

/// Was the call cut by the connection rather than answered by the engine?
fn is_transport(s: &tonic::Status) -> bool {
    let m = s.message().to_ascii_lowercase();
    std::error::Error::source(s).is_some()
        || [
            "transport error",
            "connection",
            "broken pipe",
            "h2 protocol",
            "stream closed",
            "operation was canceled",
        ]
        .iter()
        .any(|p| m.contains(p))
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialization(e.to_string())
    }
}
