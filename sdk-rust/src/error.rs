//! SDK errors: what a caller can match on, translated once from gRPC status.

use std::time::Duration;

/// Result alias for SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload failed the event's schema (client- or server-side).
    #[error("invalid payload for '{event}': {}{}", join(.violations), more(.violations.len(), *.violation_count))]
    InvalidPayload {
        /// The event's name.
        event: String,
        /// The schema version the payload was checked against (`None` when
        /// checked on the client, against the schema it was built with).
        version: Option<u32>,
        /// The first violations.
        violations: Vec<Violation>,
        /// How many violations there are in all (the engine sends at most
        /// a few dozen).
        violation_count: usize,
    },
    /// The request was malformed (the message names the field).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The event, run, waitpoint, replay or task does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// What kind of thing is missing.
        kind: EntityKind,
        /// Its id (event name, run id, …).
        id: String,
        /// The engine's message.
        message: String,
    },
    /// Over a rate limit: retry after `retry_after`.
    #[error("rate limited (retry after {retry_after:?}): {message}")]
    RateLimited {
        /// The engine's message.
        message: String,
        /// How long to wait before publishing again.
        retry_after: Duration,
    },
    /// The engine or a backend is unreachable, or the connection was cut;
    /// safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Could not connect to the engine at all.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The engine address.
        url: String,
        /// Why the connection failed.
        message: String,
    },
    /// A payload or output could not be (de)serialized.
    #[error("serialization: {0}")]
    Serialization(String),
    /// Any other status from the engine.
    #[error("{code:?}: {message}")]
    Server {
        /// The gRPC code.
        code: tonic::Code,
        /// The engine's message.
        message: String,
        /// The engine's error code, when the engine sent one.
        detail: Option<ErrorCode>,
    },
}

/// The engine's error codes (one per kind of engine error).
pub use fanout_proto::v1::ErrorCode;

/// What kind of thing a [`Error::NotFound`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityKind {
    /// An event definition.
    Event,
    /// A run.
    Run,
    /// A waitpoint.
    Waitpoint,
    /// A replay job.
    Replay,
    /// A task (subscription).
    Task,
    /// Not said by the engine.
    Unknown,
}

/// One place where a payload does not match its event's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the payload (`""`: the root).
    pub path: String,
    /// What was expected there.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn more(shown: usize, total: usize) -> String {
    if total > shown {
        format!("; … {} more", total - shown)
    } else {
        String::new()
    }
}

impl From<tonic::Status> for Error {
    /// Decided by the engine's error detail (binary metadata), never by the
    /// message text. A status without one did not come from the engine's
    /// handlers: a cut connection or a proxy.
    fn from(s: tonic::Status) -> Self {
        use fanout_proto::v1;
        let message = s.message().to_string();
        let Some(d) = fanout_proto::error_detail::decode(&s) else {
            return match s.code() {
                // A call cut by a dropped connection (the engine restarting)
                // surfaces as UNKNOWN or CANCELLED: retryable.
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                    Error::Unavailable(message)
                }
                tonic::Code::InvalidArgument => Error::InvalidArgument(message),
                code => Error::Server {
                    code,
                    message,
                    detail: None,
                },
            };
        };
        let code = ErrorCode::try_from(d.code).unwrap_or(ErrorCode::Unspecified);
        let entity = d.entity.unwrap_or_default();
        match code {
            ErrorCode::InvalidPayload => Error::InvalidPayload {
                event: entity.id,
                version: (entity.version > 0).then_some(entity.version),
                violation_count: (d.violation_count as usize).max(d.violations.len()),
                violations: d
                    .violations
                    .into_iter()
                    .map(|v| Violation {
                        path: v.path,
                        message: v.message,
                    })
                    .collect(),
            },
            ErrorCode::InvalidArgument
            | ErrorCode::PayloadTooLarge
            | ErrorCode::BodyTooLarge
            | ErrorCode::UnsupportedMediaType => Error::InvalidArgument(message),
            ErrorCode::NotFound => Error::NotFound {
                kind: match v1::EntityKind::try_from(entity.kind) {
                    Ok(v1::EntityKind::Event) => EntityKind::Event,
                    Ok(v1::EntityKind::Run) => EntityKind::Run,
                    Ok(v1::EntityKind::Waitpoint) => EntityKind::Waitpoint,
                    Ok(v1::EntityKind::Replay) => EntityKind::Replay,
                    Ok(v1::EntityKind::Task) => EntityKind::Task,
                    _ => EntityKind::Unknown,
                },
                id: entity.id,
                message,
            },
            ErrorCode::RateLimited => Error::RateLimited {
                message,
                retry_after: Duration::from_millis(d.retry_after_ms.max(1)),
            },
            ErrorCode::Unavailable => Error::Unavailable(message),
            code => Error::Server {
                code: s.code(),
                message,
                detail: Some(code),
            },
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialization(e.to_string())
    }
}
