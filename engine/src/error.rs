//! The engine's one error type and its one code table ([`Error::codes`]):
//! each error's gRPC code and HTTP status. Storage, archive and limiter
//! errors are translated into it at their edges (for SQL:
//! `storage::sql::errors`), so handlers never see driver errors.

use fanout_proto::v1;
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

/// What kind of thing an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Event,
    Run,
    Waitpoint,
    Replay,
    Task,
    /// An HTTP route.
    Route,
}

/// The thing an error is about: its kind, id (event name, run id, …) and,
/// for an event, the schema version concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: EntityKind,
    pub id: String,
    pub version: Option<u32>,
}

impl Entity {
    /// `kind` `id`, no version.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Self {
        Entity {
            kind,
            id: id.into(),
            version: None,
        }
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
    #[error("{message}")]
    NotFound { entity: Entity, message: String },
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
    /// No valid API key came with the request.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key is valid but may not do this (scope, namespace, event).
    #[error("{0}")]
    PermissionDenied(String),
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

/// Bytes of one error message as a whole (gRPC carries it in a header, whose
/// hard limit is 16 KiB).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// `s` cut to at most `max` bytes on a character boundary (kept text that
/// must not be refused, such as a failure's message).
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" …(truncated)");
    }
    s
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

    /// [`Error::NotFound`] about `id` of `kind`, with the message a person reads.
    pub fn not_found(kind: EntityKind, id: &str, message: impl Into<String>) -> Self {
        Error::NotFound {
            entity: Entity::new(kind, id),
            message: message.into(),
        }
    }

    /// The structured detail carried with every gRPC error (binary metadata)
    /// and every HTTP error body: what clients decide on.
    pub fn detail(&self) -> v1::ErrorDetail {
        use v1::ErrorCode as C;
        let mut d = v1::ErrorDetail {
            message: truncate(self.to_string(), MAX_MESSAGE_BYTES),
            ..Default::default()
        };
        let code = match self {
            Error::InvalidArgument(_) => C::InvalidArgument,
            Error::InvalidPayload {
                event,
                version,
                violations,
                total,
            } => {
                d.violations = violations
                    .iter()
                    .map(|v| v1::SchemaViolation {
                        path: v.path.clone(),
                        message: v.message.clone(),
                    })
                    .collect();
                d.violation_count = u32::try_from(*total).unwrap_or(u32::MAX);
                d.entity = Some(entity_ref(&Entity {
                    kind: EntityKind::Event,
                    id: event.clone(),
                    version: Some(*version),
                }));
                C::InvalidPayload
            }
            Error::PayloadTooLarge { .. } => C::PayloadTooLarge,
            Error::BodyTooLarge { .. } => C::BodyTooLarge,
            Error::UnsupportedMediaType(_) => C::UnsupportedMediaType,
            Error::NotFound { entity, .. } => {
                d.entity = Some(entity_ref(entity));
                C::NotFound
            }
            Error::AlreadyExists(_) => C::AlreadyExists,
            Error::RateLimited { retry_after, .. } => {
                d.retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                C::RateLimited
            }
            Error::FailedPrecondition(_) => C::FailedPrecondition,
            Error::Conflict(_) => C::Conflict,
            Error::Unavailable(_) => C::Unavailable,
            Error::Internal(_) => C::Internal,
            Error::Unauthenticated(_) => C::Unauthenticated,
            Error::PermissionDenied(_) => C::PermissionDenied,
        };
        d.code = code as i32;
        d
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
            Error::NotFound { .. } => (G::NotFound, H::NOT_FOUND),
            Error::AlreadyExists(_) => (G::AlreadyExists, H::CONFLICT),
            Error::RateLimited { .. } => (G::ResourceExhausted, H::TOO_MANY_REQUESTS),
            Error::FailedPrecondition(_) => (G::FailedPrecondition, H::CONFLICT),
            Error::Conflict(_) => (G::Aborted, H::CONFLICT),
            Error::Unavailable(_) => (G::Unavailable, H::SERVICE_UNAVAILABLE),
            Error::Internal(_) => (G::Internal, H::INTERNAL_SERVER_ERROR),
            Error::Unauthenticated(_) => (G::Unauthenticated, H::UNAUTHORIZED),
            Error::PermissionDenied(_) => (G::PermissionDenied, H::FORBIDDEN),
        }
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> axum::http::StatusCode {
        self.codes().1
    }
}

fn entity_ref(e: &Entity) -> v1::EntityRef {
    use v1::EntityKind as K;
    let kind = match e.kind {
        EntityKind::Event => K::Event,
        EntityKind::Run => K::Run,
        EntityKind::Waitpoint => K::Waitpoint,
        EntityKind::Replay => K::Replay,
        EntityKind::Task => K::Task,
        EntityKind::Route => K::Route,
    };
    v1::EntityRef {
        kind: kind as i32,
        id: e.id.clone(),
        version: e.version.unwrap_or(0),
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let code = e.codes().0;
        let detail = e.detail();
        // gRPC carries the message in a header (hard limit 16 KiB): the
        // detail's message is already cut to MAX_MESSAGE_BYTES.
        let mut status = tonic::Status::new(code, detail.message.clone());
        fanout_proto::error_detail::attach(&mut status, &detail);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn detail_carries_what_clients_decide_on() {
        use v1::ErrorCode as C;
        let e = Error::InvalidPayload {
            event: "orders.created".into(),
            version: 2,
            violations: vec![Violation {
                path: "/qty".into(),
                message: "0 is less than 1".into(),
            }],
            total: 5,
        };
        let d = e.detail();
        assert_eq!(d.code, C::InvalidPayload as i32);
        assert_eq!(d.violation_count, 5);
        assert_eq!(d.violations[0].path, "/qty");
        let entity = d.entity.expect("the event");
        assert_eq!((entity.id.as_str(), entity.version), ("orders.created", 2));

        let e = Error::RateLimited {
            message: "over".into(),
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(e.detail().retry_after_ms, 1500);
        assert_eq!(e.detail().code, C::RateLimited as i32);

        let e = Error::not_found(EntityKind::Run, "r1", "run 'r1' not found");
        let status = tonic::Status::from(e.clone());
        assert_eq!(status.code(), tonic::Code::NotFound);
        let back = fanout_proto::error_detail::decode(&status).expect("a detail");
        assert_eq!(back, e.detail());
        assert_eq!(
            back.entity.expect("the run").kind,
            v1::EntityKind::Run as i32
        );
    }
}
