//! The storage edge for errors: sqlx errors become [`Error`]s by SQLSTATE
//! (Postgres) or result code (SQLite) here and nowhere else, and lost
//! concurrency conflicts are retried here.

use crate::error::Error;
use crate::error::Result;
use std::time::Duration;

/// Run a transaction again when it lost a deadlock or serialization
/// conflict (Postgres detects these and aborts one side); each try is a
/// fresh transaction, so retrying is safe. Up to 5 tries, with jitter.
pub(super) async fn retry_conflicts<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0u64;
    loop {
        match f().await {
            Err(Error::Conflict(e)) if tries < 4 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "retrying after a database conflict");
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10 * tries))).await;
            }
            other => return other,
        }
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
            // `fetch_one` found nothing where the SQL guarantees a row.
            sqlx::Error::RowNotFound => {
                Error::Internal("database: an expected row is missing".into())
            }
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
}
