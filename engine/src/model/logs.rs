//! What a handler logged during an attempt: lines the SDK worker captures
//! (`ctx.log`, `tracing` events under its log layer) and sends with the
//! attempt, kept beside the attempt's error and output.

use serde::{Deserialize, Serialize};

/// A log line's severity, as `tracing` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

wire_names!(LogLevel {
    Error = "error",
    Warn = "warn",
    Info = "info",
    Debug = "debug",
    Trace = "trace",
});

/// One captured line. `seq` numbers an attempt's lines from 0, so a line
/// sent twice (a flush repeated after a reconnect) is stored once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub seq: u32,
    pub at_ms: i64,
    pub level: LogLevel,
    pub message: String,
    /// The event's other fields as a JSON object ("" for none).
    pub fields_json: String,
}

/// A stored line and the attempt it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLogLine {
    pub attempt: u32,
    #[serde(flatten)]
    pub line: LogLine,
}

/// Which lines of a run to read: one attempt or all, after a cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogQuery {
    /// Only this attempt.
    pub attempt: Option<u32>,
    /// Lines after `(attempt, seq)` (following a run as it logs).
    pub after: Option<(u32, u32)>,
    pub limit: u32,
}
