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
