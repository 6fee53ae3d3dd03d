//! [`TaskError`]: how a handler failed, and whether retrying helps.

use std::sync::Arc;
use std::time::Duration;

/// How a handler failed. `?` on any error (anything that converts into
/// `Box<dyn std::error::Error + Send + Sync>`: `std` errors, `anyhow::Error`,
/// strings) gives a retryable failure that keeps its source chain; mark it
/// with [`TaskResultExt::fatal`] when retrying cannot help (the run goes dead
/// at once) or [`TaskResultExt::retry_after`] when the next attempt must
/// wait (an upstream said `Retry-After`).
///
/// ```
/// use fanout::{TaskError, TaskResultExt};
/// use std::time::Duration;
///
/// fn charge(ok: bool) -> anyhow::Result<u32> {
///     anyhow::ensure!(ok, "card declined");
///     Ok(7)
/// }
///
/// fn handler(ok: bool) -> Result<u32, TaskError> {
///     let receipt = charge(ok).fatal()?; // declined: no retry
///     let _ = std::fs::metadata("/").retry_after(Duration::from_secs(30))?;
///     Ok(receipt)
/// }
/// assert!(handler(false).unwrap_err().fatal);
/// ```
#[derive(Debug, Clone)]
pub struct TaskError {
    /// What went wrong, with its causes (`outer: cause: root`), stored as
    /// the attempt's error.
    pub message: String,
    /// Fatal: the run goes dead at once instead of retrying.
    pub fatal: bool,
    /// The next attempt no sooner than this (the backoff applies when it
    /// is longer; the engine caps it at a day).
    pub retry_after: Option<Duration>,
    /// The error this came from, if any.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Set by `ctx.publish_and_wait` / `ctx.sleep` when the run was parked
    /// on this waitpoint: not a failure. Return it with `?`.
    pub(crate) suspended_on: Option<String>,
}

impl PartialEq for TaskError {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.message,
            self.fatal,
            self.retry_after,
            &self.suspended_on,
        ) == (
            &other.message,
            other.fatal,
            other.retry_after,
            &other.suspended_on,
        )
    }
}

impl TaskError {
    /// Worth another attempt (after backoff).
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            fatal: false,
            retry_after: None,
            source: None,
            suspended_on: None,
        }
    }

    /// Not worth retrying: skip the remaining attempts.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError {
            fatal: true,
            ..TaskError::retryable(message)
        }
    }

    /// This failure, marked fatal.
    pub fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// This failure, with the next attempt no sooner than `after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The error this failure came from (its chain is in `message` too).
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    pub(crate) fn suspended(waitpoint_id: String) -> Self {
        TaskError {
            suspended_on: Some(waitpoint_id.clone()),
            ..TaskError::retryable(format!("suspended on waitpoint {waitpoint_id}"))
        }
    }

    /// True when this is the suspension signal, not a failure.
    pub fn is_suspension(&self) -> bool {
        self.suspended_on.is_some()
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            if self.fatal { "fatal: " } else { "" },
            self.message
        )
    }
}

impl<E> From<E> for TaskError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(e: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        let mut message = boxed.to_string();
        let mut cause = boxed.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // anyhow's context repeats nothing, but some errors print
            // their source themselves: do not say it twice.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        TaskError {
            source: Some(Arc::from(boxed)),
            ..TaskError::retryable(message)
        }
    }
}

/// Marks a failing `Result` for the engine: `.fatal()?` skips the remaining
/// attempts, `.retry_after(d)?` delays the next one.
pub trait TaskResultExt<T> {
    /// On error: a fatal failure (no more attempts).
    fn fatal(self) -> Result<T, TaskError>;
    /// On error: a retryable failure whose next attempt waits at least `after`.
    fn retry_after(self, after: Duration) -> Result<T, TaskError>;
}

impl<T, E: Into<TaskError>> TaskResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, TaskError> {
        self.map_err(|e| e.into().into_fatal())
    }

    fn retry_after(self, after: Duration) -> Result<T, TaskError> {
        self.map_err(|e| e.into().with_retry_after(after))
    }
}
