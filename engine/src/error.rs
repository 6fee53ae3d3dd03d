//! The engine's one error type, mapped once to gRPC status codes (here) and
//! to HTTP status codes (in `http`). Storage, archive and limiter errors are
//! translated into it at their edges, so handlers never see driver errors.

use std::time::Duration;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One violation of an event schema: where in the payload, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer into the payload, e.g. `/items/0/qty` (empty for the root).
    pub path: String,
    /// What was wrong, e.g. `0 is less than the minimum of 1`.
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

/// Every failure a caller can see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The payload does not match the event's schema.
    #[error("payload for event '{event}' (schema v{version}) is invalid: {}", join(.violations))]
    InvalidPayload {
        event: String,
        version: u32,
        violations: Vec<Violation>,
    },
    /// The payload is larger than the configured limit.
    #[error("payload is {size} bytes, over the limit of {limit} bytes (max_payload_bytes)")]
    PayloadTooLarge { size: usize, limit: usize },
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique name or key is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// A rate limit was hit; retry after the given delay.
    #[error("{message}; retry after {}s", retry_after_secs(*.retry_after))]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// The request is valid but the state does not allow it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A transaction lost a concurrency conflict (deadlock, serialization
    /// failure); retrying it is safe. The store retries these itself.
    #[error("{0}")]
    Conflict(String),
    /// A backend (database, archive, limiter) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected backend answer.
    #[error("internal error: {0}")]
    Internal(String),
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Seconds to wait, rounded up, never 0 (HTTP `Retry-After` semantics).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl Error {
    /// Shorthand for [`Error::Internal`] from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Code;
        let code = match &e {
            Error::InvalidArgument(_) | Error::InvalidPayload { .. } => Code::InvalidArgument,
            Error::PayloadTooLarge { .. } => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::RateLimited { .. } => Code::ResourceExhausted,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Conflict(_) => Code::Aborted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        };
        let mut status = tonic::Status::new(code, e.to_string());
        if let Error::RateLimited { retry_after, .. } = &e
            && let Ok(v) = retry_after_secs(*retry_after).to_string().parse()
        {
            status
                .metadata_mut()
                .insert(fanout_proto::RETRY_AFTER_HEADER, v);
        }
        status
    }
}

impl From<sqlx::Error> for Error {
    /// Database errors are classified by SQLSTATE / driver kind at the edge.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::AlreadyExists(db.message().to_string())
            }
            // Postgres: deadlock_detected, serialization_failure.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("40P01" | "40001")) =>
            {
                Error::Conflict(format!("database conflict, retry: {}", db.message()))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable(format!("database unavailable: {e}")),
            sqlx::Error::RowNotFound => Error::NotFound("row not found".into()),
            _ => Error::Internal(format!("database: {e}")),
        }
    }
}
