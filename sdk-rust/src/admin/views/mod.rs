//! Typed views of what the engine reports, converted once from the wire
//! (strings kept one release beside the enums are read as a fallback):
//! `runs.rs` (runs, attempts, log lines), `definitions.rs` (events and
//! subscriptions), `archive.rs` (archived events, replays).

mod archive;
mod definitions;
mod runs;

pub use archive::*;
pub use definitions::*;
pub use runs::*;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Epoch milliseconds as a time; 0 (unset) as `None`.
pub(crate) fn time(ms: i64) -> Option<SystemTime> {
    (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs()))
}

pub(super) fn time_or_epoch(ms: i64) -> SystemTime {
    time(ms).unwrap_or(UNIX_EPOCH)
}

pub(super) fn text(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) fn json(s: &str) -> Option<serde_json::Value> {
    if s.is_empty() {
        return None;
    }
    Some(serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string())))
}
