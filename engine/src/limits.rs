//! Every bound on what a client can make the engine store, hold or echo, in
//! one place. A limit exists so that no request can grow the engine's
//! memory, the store or an answer without bound; the README's "Limits"
//! section lists them with their reasons. The ones users may need to move
//! are fields of [`Limits`] (config section `limits`); the rest are
//! constants here.

pub use crate::error::truncate;
use crate::error::{Error, Result, clip};
use serde::{Deserialize, Serialize};

/// Largest answer the engine builds for one call (an archive page, a runs
/// page, a publish-and-wait result): under the 4 MiB a standard gRPC client
/// accepts, with room for the envelope.
pub const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;
/// Schema violations listed in one error (the total is always said).
pub const MAX_VIOLATIONS: usize = 20;
/// Bytes of one violation message (they quote the offending value).
pub const MAX_VIOLATION_BYTES: usize = 300;
/// Bytes of client input quoted in any error message or log line.
pub const MAX_ECHO_BYTES: usize = 120;
/// Longest wait a handler may ask for before its run's next attempt
/// (`TaskFailure.retry_after_ms`): one day; longer asks are cut to it.
pub const MAX_RETRY_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// Bytes of one error message as a whole (see `error.rs`).
pub use crate::error::MAX_MESSAGE_BYTES;
/// Bytes of a tag.
pub const MAX_TAG_BYTES: usize = 200;
/// Bytes of a worker's name (written into a log line on every connect).
pub const MAX_WORKER_NAME_BYTES: usize = 200;
/// Bytes of a journal step key.
pub const MAX_STEP_KEY_BYTES: usize = 256;
/// Bytes of a failed attempt's error text kept (longer ones are cut, not
/// refused: the failure must still be recorded).
pub const MAX_ERROR_TEXT_BYTES: usize = 8 * 1024;
/// Bytes of an event's JSON Schema.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Bytes of an event's description.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Bytes of a subscription's filter pattern.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Longest timeout or sleep a caller may ask for (about a year); larger
/// values would overflow epoch arithmetic or mean "never" by accident.
pub const MAX_TIMEOUT_MS: u64 = 366 * 24 * 3_600_000;
/// Tasks one worker stream may register.
pub const MAX_TASKS_PER_WORKER: usize = 1_000;
/// Bytes of handler log (messages and fields) kept per attempt; past it
/// one truncation line is stored and the rest dropped.
pub const MAX_LOG_BYTES_PER_ATTEMPT: usize = 64 * 1024;
/// Bytes of one log line's message (longer ones are cut).
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;
/// Bytes of one log line's fields (JSON); larger fields are dropped.
pub const MAX_LOG_FIELDS_BYTES: usize = 4 * 1024;
/// Lines one flush may carry.
pub const MAX_LOG_LINES_PER_FLUSH: usize = 1_000;
/// Run ids one dead-letter retry or discard may name (more: select with `all`).
pub const MAX_SELECTOR_IDS: usize = 10_000;

/// The limits an operator may move (config section `limits`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Bytes of an ordering or idempotency key. Keys are indexed: Postgres
    /// refuses index entries over ~2.7 KB, and a key is an identifier.
    pub max_key_bytes: usize,
    /// Tags on one event.
    pub max_tags: usize,
    /// Time one payload's schema validation may take before the publish is
    /// refused with INVALID_ARGUMENT (validation runs off the async
    /// runtime, so a slow one never stalls other requests).
    pub validation_timeout_ms: u64,
    /// Schema validations running at once (threads of the blocking pool).
    pub validation_concurrency: usize,
    /// Distinct keys the in-process rate limiter tracks; past it, the keys
    /// idle longest are forgotten first.
    pub limiter_max_keys: usize,
    /// Open HTTP connections; more wait in the accept queue.
    pub http_max_connections: usize,
    /// Time a client has to send a request's headers (slowloris), and the
    /// longest an idle keep-alive connection stays open.
    pub http_header_timeout_ms: u64,
    /// Time a client has to send a request's body.
    pub http_body_timeout_ms: u64,
    /// Origins allowed to call the HTTP API from a browser (CORS); empty:
    /// none. `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Concurrent gRPC streams on one connection.
    pub grpc_max_streams_per_connection: u32,
    /// HTTP/2 keep-alive ping interval on gRPC connections; a peer that
    /// does not answer within the same time is dropped.
    pub grpc_keepalive_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_tags: 64,
            validation_timeout_ms: 1_000,
            validation_concurrency: 2,
            limiter_max_keys: 100_000,
            http_max_connections: 1_024,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            cors_allowed_origins: Vec::new(),
            grpc_max_streams_per_connection: 1_024,
            grpc_keepalive_ms: 20_000,
        }
    }
}

impl Limits {
    /// Every problem with the values, each naming its setting.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let positive: [(&str, u64); 8] = [
            ("limits.max_key_bytes", self.max_key_bytes as u64),
            ("limits.validation_timeout_ms", self.validation_timeout_ms),
            (
                "limits.validation_concurrency",
                self.validation_concurrency as u64,
            ),
            ("limits.limiter_max_keys", self.limiter_max_keys as u64),
            (
                "limits.http_max_connections",
                self.http_max_connections as u64,
            ),
            ("limits.http_header_timeout_ms", self.http_header_timeout_ms),
            ("limits.http_body_timeout_ms", self.http_body_timeout_ms),
            (
                "limits.grpc_max_streams_per_connection",
                u64::from(self.grpc_max_streams_per_connection),
            ),
        ];
        for (name, v) in positive {
            if v == 0 {
                out.push(format!("{name} must be greater than 0"));
            }
        }
        if self.max_key_bytes > 2_048 {
            out.push(format!(
                "limits.max_key_bytes: {} is over 2048 (keys are indexed)",
                self.max_key_bytes
            ));
        }
        out
    }
}

/// A free-text identifier from a client (ordering or idempotency key, tag,
/// step key): at most `max` bytes, no control characters (NUL included,
/// which Postgres text cannot hold and SQLite would store).
pub fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::InvalidArgument(format!(
            "{field} is {} bytes, over the limit of {max} bytes",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "{field} '{}' contains the control character {:?}; control characters are not allowed",
            clip(value, MAX_ECHO_BYTES),
            c
        )));
    }
    Ok(())
}

/// A timeout or duration in milliseconds from a client: at most
/// [`MAX_TIMEOUT_MS`].
pub fn check_timeout(field: &str, ms: u64) -> Result<()> {
    if ms > MAX_TIMEOUT_MS {
        return Err(Error::InvalidArgument(format!(
            "{field}: {ms} ms is over the maximum of {MAX_TIMEOUT_MS} ms (366 days)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_name_the_field() {
        assert!(check_text("ordering_key", "tenant-1", 512).is_ok());
        let e = check_text("ordering_key", &"k".repeat(600), 512).unwrap_err();
        assert!(e.to_string().contains("ordering_key is 600 bytes"), "{e}");
        let e = check_text("idempotency_key", "a\0b", 512).unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        assert!(e.to_string().contains("idempotency_key"), "{e}");
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(check_timeout("timeout_ms", 60_000).is_ok());
        assert!(check_timeout("timeout_ms", u64::MAX).is_err());
        assert!(check_timeout("timeout_ms", 1 << 63).is_err());
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        let s = truncate("é".repeat(10), 5);
        assert!(s.starts_with("éé"));
        assert!(s.ends_with("(truncated)"));
        assert_eq!(truncate("short".into(), 10), "short");
    }
}
