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
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The payload does not match the event's schema.
    #[error("payload for event '{event}' (schema v{version}) is invalid: {}{}", join(.violations), more(.violations.len(), *.total))]
    InvalidPayload {
        event: String,
        version: u32,
        /// The first violations (at most `limits::MAX_VIOLATIONS`).
        violations: Vec<Violation>,
        /// How many violations there are in all.
        total: usize,
    },
    /// The payload is larger than the configured limit.
    #[error("payload is {size} bytes, over the limit of {limit} bytes (max_payload_bytes)")]
    PayloadTooLarge { size: usize, limit: usize },
    /// A request body is larger than the HTTP API accepts.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// An HTTP request body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
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

fn more(shown: usize, total: usize) -> String {
    if total > shown {
        format!("; … and {} more ({total} violations in all)", total - shown)
    } else {
        String::new()
    }
}

/// Seconds to wait, rounded up, never 0 (HTTP `Retry-After` semantics).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// Client input echoed in a message or a log line: at most `max` bytes (cut
/// on a character boundary, with the full length said), control characters
/// escaped so a newline cannot forge a log line.
pub fn clip(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.char_indices() {
        if i >= max {
            out.push_str(&format!("…({} bytes)", s.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A URL fit for a message or log line: the password of its user info and
/// any `password=` query value replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

impl Error {
    /// Shorthand for [`Error::Internal`] from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}

impl Error {
    /// The one code table: each error's gRPC code and HTTP status.
    pub fn codes(&self) -> (tonic::Code, axum::http::StatusCode) {
        use axum::http::StatusCode as H;
        use tonic::Code as G;
        match self {
            Error::InvalidArgument(_) | Error::InvalidPayload { .. } => {
                (G::InvalidArgument, H::BAD_REQUEST)
            }
            Error::PayloadTooLarge { .. } | Error::BodyTooLarge { .. } => {
                (G::InvalidArgument, H::PAYLOAD_TOO_LARGE)
            }
            Error::UnsupportedMediaType(_) => (G::InvalidArgument, H::UNSUPPORTED_MEDIA_TYPE),
            Error::NotFound(_) => (G::NotFound, H::NOT_FOUND),
            Error::AlreadyExists(_) => (G::AlreadyExists, H::CONFLICT),
            Error::RateLimited { .. } => (G::ResourceExhausted, H::TOO_MANY_REQUESTS),
            Error::FailedPrecondition(_) => (G::FailedPrecondition, H::CONFLICT),
            Error::Conflict(_) => (G::Aborted, H::CONFLICT),
            Error::Unavailable(_) => (G::Unavailable, H::SERVICE_UNAVAILABLE),
            Error::Internal(_) => (G::Internal, H::INTERNAL_SERVER_ERROR),
        }
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> axum::http::StatusCode {
        self.codes().1
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let code = e.codes().0;
        // gRPC carries the message in a header (hard limit 16 KiB).
        let message = crate::limits::truncate(e.to_string(), crate::limits::MAX_MESSAGE_BYTES);
        let mut status = tonic::Status::new(code, message);
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

/// SQLSTATEs (Postgres) and result codes (SQLite, primary code in the low
/// byte) after which the same statement may succeed later.
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        return true;
    }
    // SQLite: BUSY 5, LOCKED 6, IOERR 10, FULL 13, CANTOPEN 14, READONLY 8.
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
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
            // Transient: the connection or the server went away, or the
            // database cannot write now (Postgres classes 08 connection,
            // 53 insufficient resources, 57P0x shutdown; SQLite BUSY, LOCKED,
            // IOERR, FULL). Retrying later is safe.
            sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => {
                Error::Unavailable(format!("database unavailable: {}", db.message()))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                Error::Unavailable(format!("database unavailable: {e}"))
            }
            sqlx::Error::RowNotFound => Error::NotFound("row not found".into()),
            _ => Error::Internal(format!("database: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_database_codes() {
        for c in ["08006", "08003", "57P01", "53300", "5", "13", "517", "10"] {
            assert!(is_transient(Some(c)), "{c}");
        }
        for c in ["23505", "40P01", "42P01", "19", "1"] {
            assert!(!is_transient(Some(c)), "{c}");
        }
        assert!(!is_transient(None));
    }

    #[test]
    fn one_code_table() {
        let e = Error::Unavailable("x".into());
        assert_eq!(
            e.codes(),
            (
                tonic::Code::Unavailable,
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            )
        );
        let e = Error::Conflict("x".into());
        assert_eq!(e.codes().0, tonic::Code::Aborted);
        assert_eq!(
            tonic::Status::from(Error::BodyTooLarge { limit: 1 }).code(),
            tonic::Code::InvalidArgument
        );
    }
}
