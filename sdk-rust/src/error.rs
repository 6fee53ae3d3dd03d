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
    /// A name or key is taken (e.g. an event defined concurrently).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The call carried no valid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The credentials do not allow this call.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
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
    /// A task's Rust type derives a different schema than its event's
    /// defined one: payloads the engine accepts may not deserialize into
    /// the task's type. Define the new version deliberately
    /// (`event.define(&client)`), or start the worker with
    /// `Worker::allow_schema_mismatch()`.
    #[error(
        "task '{task}' expects a different schema than event '{event}' version {version} has: define the new version (event.define(&client)) or allow the mismatch (Worker::allow_schema_mismatch)"
    )]
    SchemaMismatch {
        /// The event.
        event: String,
        /// Its latest defined version.
        version: u32,
        /// The task whose type differs.
        task: String,
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
                tonic::Code::Unauthenticated => Error::Unauthenticated(message),
                tonic::Code::PermissionDenied => Error::PermissionDenied(message),
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
            ErrorCode::AlreadyExists => Error::AlreadyExists(message),
            ErrorCode::Unauthenticated => Error::Unauthenticated(message),
            ErrorCode::PermissionDenied => Error::PermissionDenied(message),
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

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_proto::v1;

    fn with_detail(code: tonic::Code, detail: v1::ErrorDetail) -> tonic::Status {
        let mut s = tonic::Status::new(code, detail.message.clone());
        fanout_proto::error_detail::attach(&mut s, &detail);
        s
    }

    #[test]
    fn variants_follow_the_detail_not_the_text() {
        // The message says "payload" but the detail says what it is.
        let s = with_detail(
            tonic::Code::NotFound,
            v1::ErrorDetail {
                code: ErrorCode::NotFound as i32,
                message: "payload for event 'x' is invalid".into(),
                entity: Some(v1::EntityRef {
                    kind: v1::EntityKind::Run as i32,
                    id: "r1".into(),
                    version: 0,
                }),
                ..Default::default()
            },
        );
        assert!(matches!(
            Error::from(s),
            Error::NotFound { kind: EntityKind::Run, id, .. } if id == "r1"
        ));
        let s = with_detail(
            tonic::Code::ResourceExhausted,
            v1::ErrorDetail {
                code: ErrorCode::RateLimited as i32,
                retry_after_ms: 1_500,
                ..Default::default()
            },
        );
        assert!(matches!(
            Error::from(s),
            Error::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(1_500)
        ));
        let s = with_detail(
            tonic::Code::AlreadyExists,
            v1::ErrorDetail {
                code: ErrorCode::AlreadyExists as i32,
                ..Default::default()
            },
        );
        assert!(matches!(Error::from(s), Error::AlreadyExists(_)));
    }

    #[test]
    fn statuses_without_a_detail_did_not_come_from_the_engine() {
        let cut = tonic::Status::unknown("transport error");
        assert!(matches!(Error::from(cut), Error::Unavailable(_)));
        let proxy = tonic::Status::unauthenticated("no token");
        assert!(matches!(Error::from(proxy), Error::Unauthenticated(_)));
        // Text alone never makes an invalid payload.
        let text =
            tonic::Status::invalid_argument("payload for event 'x' (schema v1) is invalid: /a: b");
        assert!(matches!(Error::from(text), Error::InvalidArgument(_)));
    }
}
