//! Per-attempt handler logs: `ctx.log(…)` lines, and `tracing` events a
//! handler emits when the process's subscriber includes [`log_layer`],
//! are buffered per attempt (64 KiB, then one truncation line), flushed to
//! the engine every second while the handler runs and before its result,
//! and kept with the attempt (`fanout runs logs RUN_ID`). A crashed
//! worker's attempt keeps what was flushed before the crash.

use fanout_proto::v1 as pb;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Bytes of log kept per attempt (the engine keeps no more either).
const MAX_BYTES: usize = 64 * 1024;

tokio::task_local! {
    /// The running attempt's buffer, for the log layer.
    static CURRENT: Arc<LogBuffer>;
}

#[derive(Default)]
struct State {
    lines: Vec<pb::LogLine>,
    next_seq: u32,
    bytes: usize,
    truncated: bool,
}

/// One attempt's captured lines not yet sent.
#[derive(Default)]
pub(crate) struct LogBuffer(Mutex<State>);

impl LogBuffer {
    pub(crate) fn push(&self, level: &str, message: String, fields_json: String) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.truncated {
            return;
        }
        let size = message.len() + fields_json.len();
        let (message, fields_json, level) = if s.bytes + size > MAX_BYTES {
            s.truncated = true;
            (
                format!("log truncated: this attempt logged more than {MAX_BYTES} bytes"),
                String::new(),
                "warn",
            )
        } else {
            s.bytes += size;
            (message, fields_json, level)
        };
        let seq = s.next_seq;
        s.next_seq += 1;
        s.lines.push(pb::LogLine {
            seq,
            at_ms: now_ms(),
            level: level.into(),
            message,
            fields_json,
        });
    }

    /// The lines not yet drained (tests).
    pub(crate) fn peek(&self) -> Vec<pb::LogLine> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lines
            .clone()
    }

    /// Everything captured since the last drain.
    pub(crate) fn drain(&self) -> Vec<pb::LogLine> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()).lines)
    }

    /// Run `fut` with this buffer as the current attempt's.
    pub(crate) async fn scope<F: std::future::Future>(self: Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

/// The wire spelling of a level (`info`), as the engine stores it.
pub(crate) fn level_name(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A `tracing` layer that captures the events a handler emits (on the
/// handler's task) into its attempt's log. Add it to the worker process's
/// subscriber:
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(fanout::log_layer());
/// # let _ = subscriber;
/// ```
pub fn log_layer() -> LogLayer {
    LogLayer
}

/// See [`log_layer`].
#[derive(Debug, Clone, Copy)]
pub struct LogLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        // The SDK's and the transport's own lines are not the handler's.
        if ["fanout::", "h2", "hyper", "tonic", "tower"]
            .iter()
            .any(|p| target.starts_with(p))
        {
            return;
        }
        let _ = CURRENT.try_with(|buf| {
            let mut v = Fields::default();
            event.record(&mut v);
            let level = level_name(*event.metadata().level());
            let fields = if v.fields.is_empty() {
                String::new()
            } else {
                serde_json::Value::Object(v.fields).to_string()
            };
            buf.push(level, v.message, fields);
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_keeps_64_kib_then_one_truncation_line() {
        let buf = LogBuffer::default();
        for _ in 0..100 {
            buf.push("info", "x".repeat(1024), String::new());
        }
        let lines = buf.drain();
        assert_eq!(lines.len(), 65, "64 lines of 1 KiB, then the marker");
        assert!(lines[64].message.starts_with("log truncated"));
        assert_eq!(
            lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            (0..65).collect::<Vec<_>>()
        );
        buf.push("info", "more".into(), String::new());
        assert!(buf.drain().is_empty(), "nothing after the marker");
    }
}
