//! Commands that talk to a running engine over gRPC, one file per command
//! group; output and input helpers shared by them here. Errors print the
//! server's message to stderr and exit non-zero.

use crate::ctx::Ctx;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fanout::PublishOptions;
use fanout::proto as pb;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

mod dlq;
mod events;
mod filter;
mod publish;
mod runs;
mod subscriptions;
mod waitpoint;

pub use dlq::{DlqCmd, dlq};
pub use events::{EventsCmd, events};
pub use filter::{FilterCmd, filter};
pub use publish::{PublishArgs, publish};
pub use runs::{RunsCmd, runs};
pub use subscriptions::{SubscriptionsCmd, subscriptions};
pub use waitpoint::{WaitArgs, WaitpointCmd, wait, waitpoint};

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn json_or_text(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn event_json(e: &pb::EventDefinition) -> Value {
    json!({
        "name": e.name, "version": e.version, "namespace": e.namespace,
        "description": e.description, "created_at": time(e.created_at_ms),
        "schema": json_or_text(&e.schema_json),
    })
}

fn run_json(r: &pb::Run) -> Value {
    json!({
        "id": r.id, "event": r.event, "event_id": r.event_id, "task": r.task, "status": r.status,
        "attempts": r.attempts, "max_attempts": r.max_attempts, "created_at": time(r.created_at_ms),
        "updated_at": time(r.updated_at_ms), "ordering_key": r.ordering_key,
        "consumer_group": r.consumer_group, "worker_id": r.worker_id, "dlq": r.dlq,
        "output": json_or_text(&r.output_json), "last_error": r.last_error,
        "available_at": time(r.available_at_ms), "started_at": time(r.started_at_ms),
        "lease_expires_at": time(r.lease_expires_at_ms),
        "replay_of": r.replay_of, "waitpoint_id": r.waitpoint_id, "namespace": r.namespace,
    })
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `100/1m` → (100, 60 s).
fn parse_rate(spec: &str) -> Result<(u32, Duration)> {
    let (limit, window) = spec
        .split_once('/')
        .with_context(|| format!("--rate-limit '{spec}': expected LIMIT/WINDOW, e.g. 100/1m"))?;
    let limit: u32 = limit
        .trim()
        .parse()
        .ok()
        .filter(|l| *l > 0)
        .with_context(|| format!("--rate-limit '{spec}': limit must be a positive integer"))?;
    let window = humantime::parse_duration(window.trim()).with_context(|| {
        format!("--rate-limit '{spec}': window must be a duration like 1s, 1m, 1h")
    })?;
    if window.is_zero() {
        anyhow::bail!("--rate-limit '{spec}': window must be greater than 0");
    }
    Ok((limit, window))
}

/// JSON text, or `@path` to read it from a file.
fn read_arg(s: &str) -> Result<String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a run has is in its JSON (replay_of was missing).
    #[test]
    fn run_json_has_every_field() {
        let r = pb::Run {
            id: "r1".into(),
            replay_of: "e0".into(),
            waitpoint_id: "w1".into(),
            started_at_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let v = run_json(&r);
        assert_eq!(v["replay_of"], "e0");
        assert_eq!(v["waitpoint_id"], "w1");
        assert!(
            v["started_at"]
                .as_str()
                .is_some_and(|s| s.starts_with("2023-"))
        );
        for key in [
            "lease_expires_at",
            "available_at",
            "namespace",
            "consumer_group",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
